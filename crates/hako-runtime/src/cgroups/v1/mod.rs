//! cgroup v1 (one hierarchy per controller) and the v1 side of the hybrid layout. On a hybrid host
//! the only v2 controller may be hugetlb (as on our machines), which is then written there.
//! One module per controller, as runc's fs/ has them; [`set`] calls them in runc's order.

mod blkio;
mod cpu;
mod cpuset;
mod devices;
mod hugetlb;
mod memory;
mod net;
mod pids;
mod rdma;

use std::path::Path;
use std::time::{Duration, Instant};

use hako_spec::oci::LinuxResources;
use hako_spec::state::CgroupRecord;

use super::manager::{read, write};
use crate::error::{Error, Result};

/// A new cpuset cgroup starts with empty cpus and mems and refuses tasks (ENOSPC on join): copy
/// the parent's. Levels above may be empty too: a shared parent (`/hako`) that a concurrent create
/// made a moment ago and has not filled yet, or a pod cgroup some caller made without filling it
/// (`cgroup.clone_children` is 0 by default). So fill from the nearest non-empty ancestor down,
/// as runc's cpusetEnsureParent does.
pub fn inherit_cpuset(dir: &Path) -> Result<()> {
    for f in ["cpuset.cpus", "cpuset.mems"] {
        ensure_cpuset_file(dir, f)?;
    }
    Ok(())
}

fn ensure_cpuset_file(dir: &Path, f: &str) -> Result<String> {
    let cur = read(dir, f)?;
    if !cur.is_empty() {
        return Ok(cur);
    }
    let parent = dir.parent().unwrap_or(Path::new("/"));
    // The hierarchy's root always has cpus and mems; a missing file means we walked past it.
    if !parent.join(f).exists() {
        return Ok(cur);
    }
    let v = ensure_cpuset_file(parent, f)?;
    write(dir, f, &v, f)?;
    Ok(v)
}

/// A controller's directory, looked up only when a field is to be written there: a host without
/// that hierarchy refuses the fields that need it, not a resources object that merely mentions
/// the controller (docker sends every field, unset ones as 0).
pub(super) struct Dir<'a> {
    path: Option<&'a Path>,
    ctrl: &'static str,
}

impl<'a> Dir<'a> {
    fn of(rec: &'a CgroupRecord, ctrl: &'static str) -> Dir<'a> {
        Dir {
            path: rec.v1.get(ctrl).map(|p| p.as_path()),
            ctrl,
        }
    }

    #[cfg(test)]
    pub(super) fn at(path: &'a Path) -> Dir<'a> {
        Dir {
            path: Some(path),
            ctrl: "test",
        }
    }

    /// The directory, or the error naming `field`.
    fn get(&self, field: &str) -> Result<&'a Path> {
        self.path.ok_or_else(|| {
            Error::Usage(format!(
                "{field}: this host has no {} cgroup hierarchy",
                self.ctrl
            ))
        })
    }
}

/// Writes `r` into the container's v1 cgroups. A 0 means "not set" wherever runc's Go zero value
/// does: memory.{limit,reservation,swap,kernel,kernelTCP}, cpu.{shares,quota,period,
/// realtimePeriod,realtimeRuntime}, pids.limit, blockIO.{weight,leafWeight} and a weightDevice's
/// weight, network.classID. docker fills every field it leaves unset with 0: written, a 0 limit
/// would OOM-kill the init as it starts and a 0 blkio weight is out of range (ERANGE).
pub fn set(rec: &CgroupRecord, r: &LinuxResources) -> Result<()> {
    // runc's rule: unified keys need a cgroup v2 host, even on the hybrid whose v2 hierarchy
    // exists (it holds no controller a container is limited by). Checked before any write.
    if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(Error::Usage(super::manager::V1_NO_UNIFIED.into()));
    }
    if let Some(m) = r.memory() {
        memory::set(&Dir::of(rec, "memory"), m)?;
    }
    if let Some(c) = r.cpu() {
        cpu::set(&Dir::of(rec, "cpu"), c)?;
        cpuset::set(&Dir::of(rec, "cpuset"), c)?;
    }
    if let Some(p) = r.pids() {
        pids::set(&Dir::of(rec, "pids"), p)?;
    }
    if let Some(b) = r.block_io() {
        blkio::set(&Dir::of(rec, "blkio"), b)?;
    }
    if let Some(h) = r.hugepage_limits() {
        hugetlb::set(rec, h)?;
    }
    if let Some(n) = r.network() {
        net::set(&Dir::of(rec, "net_cls"), &Dir::of(rec, "net_prio"), n)?;
    }
    if let Some(l) = r.rdma() {
        rdma::set(&Dir::of(rec, "rdma"), l)?;
    }
    if let (Some(devs), Some(d)) = (r.devices(), rec.v1.get("devices")) {
        devices::set(d, devs)?;
    }
    Ok(())
}

pub fn freeze(d: &Path, on: bool) -> Result<()> {
    let want = if on { "FROZEN" } else { "THAWED" };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        write(d, "freezer.state", want, "freezer.state")?;
        if read(d, "freezer.state")? == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Usage(format!(
                "freezer.state: cgroup {} did not reach {want}",
                d.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
