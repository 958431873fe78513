//! cpuset: the CPUs and memory nodes of `linux.resources.cpu`.

use std::path::Path;

use hako_spec::oci::LinuxCpu;

use crate::cgroups::manager::write;
use crate::error::Result;

pub(super) fn set(d: &Path, c: &LinuxCpu) -> Result<()> {
    for (v, file, field) in crate::cgroups::cpuset_lists(c) {
        write(d, file, v, field)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::scratch::Scratch;
    use hako_spec::oci::LinuxCpuBuilder;

    #[test]
    fn cpus_and_mems() {
        let s = Scratch::with(&[]);
        let c = LinuxCpuBuilder::default()
            .cpus("")
            .mems("0")
            .build()
            .unwrap();
        set(s.path(), &c).unwrap();
        assert_eq!(s.get("cpuset.cpus"), None, "empty is not set");
        assert_eq!(s.get("cpuset.mems").unwrap(), "0");
    }
}
