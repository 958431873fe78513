//! AppArmor profile and SELinux process label, applied on exec: both are "change on the next
//! execve" attributes of the calling thread, written just before execve like runc does.
//!
//! The attribute files are opened through the process's own procfs and checked to *be* procfs
//! files: a file the container put in their place (a bind over /proc/self/attr, the
//! CVE-2025-52881 class) would take the label and leave the process unconfined. support.rs has
//! already refused an AppArmor profile the host cannot apply; an SELinux label without SELinux
//! is ignored.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use hako_spec::oci::Process;

use crate::error::{Context, Error, Result};

fn write_attr(candidates: &[&str], value: &str) -> Result<()> {
    let mut last = None;
    for path in candidates {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(path);
        let mut f = match f {
            Ok(f) => f,
            Err(e) => {
                last = Some((path, e));
                continue;
            }
        };
        let fs = nix::sys::statfs::fstatfs(&f).ctx("statfs", path)?;
        if fs.filesystem_type().0 as i64 != crate::sys::PROC_SUPER_MAGIC {
            return Err(Error::Usage(format!(
                "{path}: not a procfs file; refusing to write a security label there"
            )));
        }
        return f.write_all(value.as_bytes()).ctx("write", path);
    }
    match last {
        Some((path, e)) => Err(Error::io("open", path, e)),
        None => Ok(()),
    }
}

pub fn set_exec_labels(p: &Process) -> Result<()> {
    if let Some(profile) = p.apparmor_profile().as_deref().filter(|s| !s.is_empty()) {
        // The LSM-specific directory (Linux ≥ 5.8) first; the shared one on older kernels.
        write_attr(
            &[
                "/proc/thread-self/attr/apparmor/exec",
                "/proc/thread-self/attr/exec",
            ],
            &format!("exec {profile}"),
        )?;
    }
    // Without SELinux on the host the label is ignored (support.rs).
    if let Some(label) = p
        .selinux_label()
        .as_deref()
        .filter(|s| !s.is_empty() && crate::container::support::selinux_enabled())
    {
        write_attr(&["/proc/thread-self/attr/exec"], label)?;
    }
    Ok(())
}
