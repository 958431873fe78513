//! memory: limit and memory+swap in the order the kernel accepts, soft limit, kmem, swappiness,
//! the OOM killer switch.

use std::path::Path;

use hako_spec::oci::LinuxMemory;

use super::Dir;
use crate::cgroups::manager::{read, write};
use crate::error::{Error, Result};

const MEMSW: &str = "memory.memsw.limit_in_bytes";

pub(super) fn set(d: &Dir, m: &LinuxMemory) -> Result<()> {
    let f = "linux.resources.memory";
    if let Some(v) = m.reservation().filter(|v| *v != 0) {
        let field = "linux.resources.memory.reservation";
        write(
            d.get(field)?,
            "memory.soft_limit_in_bytes",
            &v.to_string(),
            field,
        )?;
    }
    if m.limit().is_some_and(|v| v != 0) || m.swap().is_some_and(|v| v != 0) {
        set_memory_and_swap(d.get(f)?, m.limit(), m.swap())?;
    }
    #[allow(deprecated)]
    let kmem = [
        (m.kernel(), "memory.kmem.limit_in_bytes", "kernel"),
        (
            m.kernel_tcp(),
            "memory.kmem.tcp.limit_in_bytes",
            "kernelTCP",
        ),
    ];
    for (v, file, name) in kmem {
        if let Some(v) = v.filter(|v| *v != 0) {
            let field = format!("{f}.{name}");
            write(d.get(&field)?, file, &v.to_string(), &field)?;
        }
    }
    if let Some(v) = m.swappiness() {
        let field = "linux.resources.memory.swappiness";
        if v > 100 {
            return Err(Error::Usage(format!("{field}: {v} is not in 0..100")));
        }
        write(d.get(field)?, "memory.swappiness", &v.to_string(), field)?;
    }
    if m.disable_oom_killer() == Some(true) {
        let field = "linux.resources.memory.disableOOMKiller";
        write(d.get(field)?, "memory.oom_control", "1", field)?;
    }
    if let Some(v) = m.use_hierarchy() {
        let field = "linux.resources.memory.useHierarchy";
        write(
            d.get(field)?,
            "memory.use_hierarchy",
            if v { "1" } else { "0" },
            field,
        )?;
    }
    Ok(())
}

/// runc's setMemoryAndSwap. memory.memsw.limit_in_bytes (memory+swap) may never be below
/// memory.limit_in_bytes, so when both change the order of the writes depends on where they go:
/// swap first when it is to be unlimited or above the current limit, else the limit first.
/// `-1` for the limit alone lifts both, as in runc (`update --memory -1`).
fn set_memory_and_swap(d: &Path, limit: Option<i64>, swap: Option<i64>) -> Result<()> {
    let limit = limit.filter(|v| *v != 0);
    let mut swap = swap.filter(|v| *v != 0);
    if limit == Some(-1) && swap.is_none() && d.join(MEMSW).exists() {
        swap = Some(-1);
    }
    let set_limit = || -> Result<()> {
        match limit {
            Some(v) => write(
                d,
                "memory.limit_in_bytes",
                &v.to_string(),
                "linux.resources.memory.limit",
            ),
            None => Ok(()),
        }
    };
    let set_swap = || -> Result<()> {
        match swap {
            Some(v) => write(d, MEMSW, &v.to_string(), "linux.resources.memory.swap"),
            None => Ok(()),
        }
    };
    if let (Some(_), Some(s)) = (limit, swap) {
        let cur = read(d, "memory.limit_in_bytes")?
            .parse::<u64>()
            .unwrap_or(u64::MAX);
        if s == -1 || cur < s as u64 {
            set_swap()?;
            return set_limit();
        }
    }
    set_limit()?;
    set_swap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::scratch::Scratch;
    use hako_spec::oci::LinuxMemoryBuilder;

    #[test]
    fn limits_and_zero_values() {
        let s = Scratch::with(&[MEMSW]);
        std::fs::write(
            s.path().join("memory.limit_in_bytes"),
            "9223372036854771712",
        )
        .unwrap();
        let m = LinuxMemoryBuilder::default()
            .limit(64 << 20)
            .swap(128 << 20)
            .reservation(0)
            .swappiness(10u64)
            .build()
            .unwrap();
        set(&Dir::at(s.path()), &m).unwrap();
        assert_eq!(s.get("memory.limit_in_bytes").unwrap(), "67108864");
        assert_eq!(s.get(MEMSW).unwrap(), "134217728");
        assert_eq!(s.get("memory.swappiness").unwrap(), "10");
        assert_eq!(s.get("memory.soft_limit_in_bytes"), None, "0 is not set");
    }

    #[test]
    fn unlimited_memory_lifts_swap_too() {
        let s = Scratch::with(&[MEMSW]);
        std::fs::write(s.path().join("memory.limit_in_bytes"), "1048576").unwrap();
        let m = LinuxMemoryBuilder::default().limit(-1).build().unwrap();
        set(&Dir::at(s.path()), &m).unwrap();
        assert_eq!(s.get("memory.limit_in_bytes").unwrap(), "-1");
        assert_eq!(s.get(MEMSW).unwrap(), "-1");
    }

    #[test]
    fn swappiness_over_100_is_refused() {
        let s = Scratch::with(&[]);
        let m = LinuxMemoryBuilder::default()
            .swappiness(101u64)
            .build()
            .unwrap();
        let e = set(&Dir::at(s.path()), &m).unwrap_err().to_string();
        assert!(e.contains("linux.resources.memory.swappiness"), "{e}");
    }
}
