//! cpuset: the CPUs and memory nodes of `linux.resources.cpu`.

use hako_spec::oci::LinuxCpu;

use super::Dir;
use crate::cgroups::manager::write;
use crate::error::Result;

pub(super) fn set(d: &Dir, c: &LinuxCpu) -> Result<()> {
    for (v, file, field) in crate::cgroups::cpuset_lists(c) {
        write(d.get(field)?, file, v, field)?;
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
            .cpus("0-1")
            .mems("")
            .build()
            .unwrap();
        set(&Dir::at(s.path()), &c).unwrap();
        assert_eq!(s.get("cpuset.cpus").unwrap(), "0-1");
        assert_eq!(s.get("cpuset.mems"), None, "empty is not set");
    }
}
