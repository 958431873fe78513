//! memory: memory.low, memory.swap.max (OCI's memory+swap less the memory), memory.max; the v1
//! fields v2 has no file for are warned about, as runc does.

use std::path::Path;

use hako_spec::oci::LinuxMemory;

use super::{max_or, swap_max};
use crate::cgroups::manager::write;
use crate::error::Result;

pub(super) fn set(d: &Path, m: &LinuxMemory) -> Result<()> {
    let set = |v: Option<i64>| v.filter(|v| *v != 0);
    if let Some(v) = set(m.reservation()) {
        write(
            d,
            "memory.low",
            &max_or(v),
            "linux.resources.memory.reservation",
        )?;
    }
    if let Some(v) = swap_max(set(m.limit()), set(m.swap()))? {
        set_swap_max(d, &v)?;
    }
    if let Some(v) = set(m.limit()) {
        write(d, "memory.max", &max_or(v), "linux.resources.memory.limit")?;
    }
    warn_v1_only(m);
    Ok(())
}

/// Without swap accounting (no memory.swap.max: swapaccount=0, no CONFIG_SWAP) "max" and "0"
/// ask for what the kernel does anyway: ignored, as runc does (`update --memory -1` lifts swap
/// too, and a swap equal to the memory limit is "0"). Any other value needs the file.
fn set_swap_max(d: &Path, v: &str) -> Result<()> {
    if (v == "max" || v == "0") && !d.join("memory.swap.max").exists() {
        return Ok(());
    }
    write(d, "memory.swap.max", v, "linux.resources.memory.swap")
}

fn warn_v1_only(m: &LinuxMemory) {
    if m.swappiness().is_some() {
        crate::log::warn(
            "linux.resources.memory.swappiness: not supported on cgroup v2, ignored (as runc)",
        );
    }
    #[allow(deprecated)]
    if m.kernel().is_some() || m.kernel_tcp().is_some() {
        crate::log::warn("linux.resources.memory.kernel/kernelTCP: not supported on cgroup v2, ignored (as runc)");
    }
    if m.disable_oom_killer() == Some(true) {
        crate::log::warn("linux.resources.memory.disableOOMKiller: not supported on cgroup v2, ignored (as runc)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::scratch::Scratch;
    use hako_spec::oci::LinuxMemoryBuilder;

    #[test]
    fn limit_swap_and_reservation() {
        let s = Scratch::with(&[]);
        let m = LinuxMemoryBuilder::default()
            .limit(100)
            .swap(300)
            .reservation(-1)
            .build()
            .unwrap();
        set(s.path(), &m).unwrap();
        assert_eq!(s.get("memory.max").unwrap(), "100");
        assert_eq!(s.get("memory.swap.max").unwrap(), "200");
        assert_eq!(s.get("memory.low").unwrap(), "max");
    }

    #[test]
    fn no_swap_accounting_takes_max_and_zero() {
        let s = Scratch::with(&[]);
        for v in ["max", "0"] {
            set_swap_max(s.path(), v).unwrap();
            assert_eq!(s.get("memory.swap.max"), None, "{v} written");
        }
    }

    #[test]
    fn zero_is_not_set() {
        let s = Scratch::with(&[]);
        let m = LinuxMemoryBuilder::default()
            .limit(0)
            .swap(0)
            .build()
            .unwrap();
        set(s.path(), &m).unwrap();
        assert_eq!(std::fs::read_dir(s.path()).unwrap().count(), 0);
    }
}
