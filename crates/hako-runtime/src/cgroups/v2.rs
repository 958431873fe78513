//! cgroup v2 (unified): v1-style OCI values converted the way runc and crun convert them.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use hako_spec::oci::LinuxResources;

use super::manager::{read, write};
use crate::error::{Error, Result};

/// Makes `parent`'s controllers available to its children (cgroup.subtree_control).
pub fn delegate(parent: &Path) -> Result<()> {
    let Ok(avail) = read(parent, "cgroup.controllers") else {
        return Ok(());
    };
    let enabled = read(parent, "cgroup.subtree_control").unwrap_or_default();
    let want: Vec<String> = avail
        .split_whitespace()
        .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
        .map(|c| format!("+{c}"))
        .collect();
    if want.is_empty() {
        return Ok(());
    }
    write(
        parent,
        "cgroup.subtree_control",
        &want.join(" "),
        "cgroup.subtree_control",
    )
}

/// cpu.shares (2..262144) → cpu.weight (1..10000), runc's formula.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

/// blkio.weight (10..1000) → io.weight (1..10000), runc's formula.
pub fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + ((w.clamp(10, 1000) as u64 - 10) * 9999) / 990
}

/// OCI `swap` is memory+swap (v1 memsw); v2's memory.swap.max is swap alone.
pub fn swap_max(limit: Option<i64>, swap: Option<i64>) -> Result<Option<String>> {
    match (limit, swap) {
        // runc: an unlimited memory with no word on swap lifts swap too, as on v1.
        (Some(-1), None) => Ok(Some("max".into())),
        (_, None) => Ok(None),
        (_, Some(-1)) => Ok(Some("max".into())),
        (None, Some(_)) | (Some(-1), Some(_)) => Err(Error::Usage(
            "linux.resources.memory.swap: needs memory.limit on cgroup v2".into(),
        )),
        (Some(l), Some(s)) if s < l => Err(Error::Usage(format!(
            "linux.resources.memory.swap: {s} is lower than memory.limit {l}"
        ))),
        (Some(l), Some(s)) => Ok(Some((s - l).to_string())),
    }
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

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

pub fn set(d: &Path, r: &LinuxResources) -> Result<()> {
    // 0 means "not set" for memory.{limit,reservation,swap}, cpu.{shares,quota,period,realtime*},
    // pids.limit and the blockIO weights, as in runc (see v1::set: docker sends 0 for all of them).
    let set = |v: Option<i64>| v.filter(|v| *v != 0);
    if let Some(m) = r.memory() {
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
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares().filter(|s| *s != 0) {
            write(
                d,
                "cpu.weight",
                &shares_to_weight(s).to_string(),
                "linux.resources.cpu.shares",
            )?;
        }
        let period = c.period().filter(|p| *p != 0);
        if set(c.quota()).is_some() || period.is_some() {
            let quota = set(c.quota()).map(max_or).unwrap_or_else(|| "max".into());
            let period = period.unwrap_or(100_000);
            write(
                d,
                "cpu.max",
                &format!("{quota} {period}"),
                "linux.resources.cpu.quota",
            )?;
        }
        if let Some(b) = c.burst() {
            write(
                d,
                "cpu.max.burst",
                &b.to_string(),
                "linux.resources.cpu.burst",
            )?;
        }
        if let Some(i) = c.idle() {
            write(d, "cpu.idle", &i.to_string(), "linux.resources.cpu.idle")?;
        }
        if c.realtime_runtime().is_some_and(|v| v != 0)
            || c.realtime_period().is_some_and(|v| v != 0)
        {
            return Err(Error::Usage(
                "linux.resources.cpu.realtimeRuntime: not supported on cgroup v2".into(),
            ));
        }
        if let Some(v) = c.cpus().as_deref().filter(|v| !v.is_empty()) {
            write(d, "cpuset.cpus", v, "linux.resources.cpu.cpus")?;
        }
        if let Some(v) = c.mems().as_deref().filter(|v| !v.is_empty()) {
            write(d, "cpuset.mems", v, "linux.resources.cpu.mems")?;
        }
    }
    if let Some(p) = r.pids().filter(|p| p.limit() != 0) {
        let v = if p.limit() > 0 {
            p.limit().to_string()
        } else {
            "max".into()
        };
        write(d, "pids.max", &v, "linux.resources.pids.limit")?;
    }
    if let Some(b) = r.block_io() {
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            let f = if d.join("io.bfq.weight").exists() {
                "io.bfq.weight"
            } else {
                "io.weight"
            };
            let v = if f == "io.bfq.weight" {
                w as u64
            } else {
                blkio_to_io_weight(w)
            };
            write(d, f, &v.to_string(), "linux.resources.blockIO.weight")?;
        }
        if b.leaf_weight().is_some_and(|w| w != 0) {
            crate::log::warn(
                "linux.resources.blockIO.leafWeight: not supported on cgroup v2, ignored (as runc)",
            );
        }
        for wd in b.weight_device().iter().flatten() {
            if let Some(w) = wd.weight().filter(|w| *w != 0) {
                write(
                    d,
                    "io.weight",
                    &format!("{}:{} {}", wd.major(), wd.minor(), blkio_to_io_weight(w)),
                    "linux.resources.blockIO.weightDevice",
                )?;
            }
        }
        let throttles = [
            ("rbps", b.throttle_read_bps_device()),
            ("wbps", b.throttle_write_bps_device()),
            ("riops", b.throttle_read_iops_device()),
            ("wiops", b.throttle_write_iops_device()),
        ];
        for (key, list) in throttles {
            for t in list.iter().flatten() {
                write(
                    d,
                    "io.max",
                    &format!("{}:{} {key}={}", t.major(), t.minor(), t.rate()),
                    "linux.resources.blockIO",
                )?;
            }
        }
    }
    for h in r.hugepage_limits().iter().flatten() {
        write(
            d,
            &format!("hugetlb.{}.max", h.page_size()),
            &h.limit().to_string(),
            "linux.resources.hugepageLimits",
        )?;
    }
    if r.network().is_some() {
        crate::log::warn("linux.resources.network: net_cls/net_prio do not exist on cgroup v2, ignored (as runc)");
    }
    for (dev, limit) in r.rdma().iter().flatten() {
        let v = super::rdma_line(dev, limit);
        write(d, "rdma.max", &v, "linux.resources.rdma")?;
    }
    if let Some(u) = r.unified() {
        set_unified(d, u)?;
    }
    if let Some(devs) = r.devices() {
        // v2 has no devices files: an eBPF program decides (replacing one attached before).
        super::bpf::apply(d, devs)?;
    }
    Ok(())
}

/// `linux.resources.unified`: raw v2 files. Keys are file names of this cgroup, never paths.
pub fn set_unified(d: &Path, u: &HashMap<String, String>) -> Result<()> {
    for (k, v) in u {
        let field = format!("linux.resources.unified.{k}");
        if k.contains('/') || k.starts_with('.') || !k.contains('.') {
            return Err(Error::Usage(format!("{field}: not a cgroup file name")));
        }
        // Membership and lifetime files are not resources: "cgroup.procs": "1" would move the
        // host's init into the container's cgroup.
        if [
            "cgroup.procs",
            "cgroup.threads",
            "cgroup.kill",
            "cgroup.subtree_control",
        ]
        .contains(&k.as_str())
        {
            return Err(Error::Usage(format!("{field}: not a resource file")));
        }
        if !d.join(k).exists() {
            return Err(Error::Usage(format!(
                "{field}: unknown cgroup v2 file ({} does not exist)",
                d.join(k).display()
            )));
        }
        write(d, k, v, &field)?;
    }
    Ok(())
}

pub fn freeze(d: &Path, on: bool) -> Result<()> {
    write(
        d,
        "cgroup.freeze",
        if on { "1" } else { "0" },
        "cgroup.freeze",
    )?;
    let want = if on { "frozen 1" } else { "frozen 0" };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !read(d, "cgroup.events")?.lines().any(|l| l == want) {
        if Instant::now() > deadline {
            return Err(Error::Usage(format!(
                "cgroup.freeze: {} did not reach {want}",
                d.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_match_runc() {
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
        assert_eq!(swap_max(Some(100), Some(300)).unwrap(), Some("200".into()));
        assert_eq!(swap_max(Some(100), Some(-1)).unwrap(), Some("max".into()));
        assert!(swap_max(Some(300), Some(100)).is_err());
    }

    #[test]
    fn no_swap_accounting_takes_max_and_zero() {
        let d = std::env::temp_dir().join(format!("hako-v2-swap-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        for v in ["max", "0"] {
            set_swap_max(&d, v).unwrap();
            assert!(!d.join("memory.swap.max").exists(), "{v} written");
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}
