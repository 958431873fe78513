//! cgroup v2 (unified): v1-style OCI values converted the way runc and crun convert them. One
//! module per controller, as runc's fs2/ has them; [`set`] calls them in runc's order.

mod cpu;
mod cpuset;
mod io;
mod memory;
mod pids;
mod unified;

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

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// Writes `r` into the container's v2 cgroup, one controller at a time as runc's fs2 does. 0
/// means "not set" for memory.{limit,reservation,swap}, cpu.{shares,quota,period,realtime*},
/// pids.limit and the blockIO weights, as in runc (see [`super::v1::set`]: docker sends 0 for all
/// of them).
pub fn set(d: &Path, r: &LinuxResources) -> Result<()> {
    if let Some(m) = r.memory() {
        memory::set(d, m)?;
    }
    if let Some(c) = r.cpu() {
        cpu::set(d, c)?;
        cpuset::set(d, c)?;
    }
    if let Some(p) = r.pids() {
        pids::set(d, p)?;
    }
    if let Some(b) = r.block_io() {
        io::set(d, b)?;
    }
    for h in r.hugepage_limits().iter().flatten() {
        let file = format!("hugetlb.{}.max", h.page_size());
        write(
            d,
            &file,
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
        unified::set(d, u)?;
    }
    if let Some(devs) = r.devices() {
        // v2 has no devices files: an eBPF program decides (replacing one attached before).
        super::bpf::apply(d, devs)?;
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
}
