//! devices: from what `devices.list` says now to what the rules say, writing only the difference
//! (see [`crate::cgroups::emulator`]).

use std::path::Path;

use hako_spec::oci::LinuxDeviceCgroup;

use crate::cgroups::emulator::{self, Emulator};
use crate::cgroups::manager::{read, write_error};
use crate::error::{Error, Result};

/// Then read back, as runc does, since the kernel silently ignores some writes (an exception a
/// parent does not allow).
pub(super) fn set(d: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let field = "linux.resources.devices";
    let target = Emulator::from_rules(rules)?;
    let current = Emulator::from_list(&read(d, "devices.list")?)?;
    // Each file opened once and written once per rule (the kernel reads one rule per write):
    // the default rules are a dozen writes, on the path the container init waits on.
    let (mut allow_f, mut deny_f) = (None, None);
    for (allow, node, p) in current.transition(&target) {
        let (file, slot) = if allow {
            ("devices.allow", &mut allow_f)
        } else {
            ("devices.deny", &mut deny_f)
        };
        let line = emulator::rule_line(&node, p);
        let f = match slot {
            Some(f) => f,
            None => match std::fs::File::create(d.join(file)) {
                Ok(f) => slot.insert(f),
                Err(e) => return write_error(d, file, &line, field, Err(e)),
            },
        };
        let r = std::io::Write::write(f, line.as_bytes()).map(drop);
        write_error(d, file, &line, field, r)?;
    }
    let after = Emulator::from_list(&read(d, "devices.list")?)?;
    if !after.matches(&target) {
        return Err(Error::Usage(format!(
            "{field}: the devices cgroup {} does not match the rules after the update",
            d.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::scratch::Scratch;
    use hako_spec::oci::LinuxDeviceCgroupBuilder;

    #[test]
    fn writes_the_difference_and_checks_what_the_kernel_kept() {
        let s = Scratch::with(&[]);
        std::fs::write(s.path().join("devices.list"), "a *:* rwm\n").unwrap();
        let deny_all = LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .unwrap();
        // A plain file keeps saying "a *:* rwm", as a kernel that ignored the write would.
        let e = set(s.path(), std::slice::from_ref(&deny_all))
            .unwrap_err()
            .to_string();
        assert_eq!(s.get("devices.deny").unwrap(), "a *:* rwm");
        assert!(e.contains("does not match the rules"), "{e}");
        // Nothing to change: nothing written, and the read-back agrees.
        let s = Scratch::with(&[]);
        std::fs::write(s.path().join("devices.list"), "").unwrap();
        set(s.path(), &[deny_all]).unwrap();
        assert_eq!(s.get("devices.deny"), None);
    }
}
