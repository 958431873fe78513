//! cgroup v1 (one hierarchy per controller) and the v1 side of the hybrid layout. On a hybrid host
//! the only v2 controller may be hugetlb (as on our machines), which is then written there.

use std::path::Path;
use std::time::{Duration, Instant};

use hako_spec::oci::{LinuxDeviceCgroup, LinuxResources};
use hako_spec::state::CgroupRecord;

use super::emulator::{self, Emulator};
use super::manager::{pick_file, read, write, write_error};
use crate::error::{Error, Result};

/// Proportional blkio weights exist only with a scheduler that implements them: CFQ (removed in
/// 5.0) names them blkio.weight, BFQ blkio.bfq.weight. Block devices on mq-deadline or none (our
/// CI machines) have neither file, and the kernel has no weight to honour.
const WEIGHT_FILES: [&str; 2] = ["blkio.weight", "blkio.bfq.weight"];
const WEIGHT_DEVICE_FILES: [&str; 2] = ["blkio.weight_device", "blkio.bfq.weight_device"];
const NO_WEIGHTS: &str =
    "blkio weight is not supported by this kernel (it needs the BFQ or CFQ I/O scheduler)";

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

fn dir<'a>(rec: &'a CgroupRecord, ctrl: &str, field: &str) -> Result<&'a Path> {
    rec.v1
        .get(ctrl)
        .map(|p| p.as_path())
        .ok_or_else(|| Error::Usage(format!("{field}: this host has no {ctrl} cgroup hierarchy")))
}

fn num(v: i64) -> String {
    v.to_string()
}

pub fn set(rec: &CgroupRecord, r: &LinuxResources) -> Result<()> {
    // runc's rule: unified keys need a cgroup v2 host, even on the hybrid whose v2 hierarchy
    // exists (it holds no controller a container is limited by). Checked before any write.
    if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(Error::Usage(super::manager::V1_NO_UNIFIED.into()));
    }
    // A 0 means "not set" wherever runc's Go zero value does: memory.{limit,reservation,swap,
    // kernel,kernelTCP}, cpu.{shares,quota,period,realtimePeriod,realtimeRuntime}, pids.limit,
    // blockIO.{weight,leafWeight} and a weightDevice's weight, network.classID. docker fills
    // every field it leaves unset with 0: written, a 0 limit would OOM-kill the init as it
    // starts and a 0 blkio weight is out of range (ERANGE).
    if let Some(m) = r.memory() {
        let d = || dir(rec, "memory", "linux.resources.memory");
        if let Some(v) = m.reservation().filter(|v| *v != 0) {
            write(
                d()?,
                "memory.soft_limit_in_bytes",
                &num(v),
                "linux.resources.memory.reservation",
            )?;
        }
        set_memory_and_swap(d()?, m.limit(), m.swap())?;
        #[allow(deprecated)]
        if let Some(v) = m.kernel().filter(|v| *v != 0) {
            write(
                d()?,
                "memory.kmem.limit_in_bytes",
                &num(v),
                "linux.resources.memory.kernel",
            )?;
        }
        #[allow(deprecated)]
        if let Some(v) = m.kernel_tcp().filter(|v| *v != 0) {
            write(
                d()?,
                "memory.kmem.tcp.limit_in_bytes",
                &num(v),
                "linux.resources.memory.kernelTCP",
            )?;
        }
        if let Some(v) = m.swappiness() {
            if v > 100 {
                return Err(Error::Usage(format!(
                    "linux.resources.memory.swappiness: {v} is not in 0..100"
                )));
            }
            write(
                d()?,
                "memory.swappiness",
                &v.to_string(),
                "linux.resources.memory.swappiness",
            )?;
        }
        if m.disable_oom_killer() == Some(true) {
            write(
                d()?,
                "memory.oom_control",
                "1",
                "linux.resources.memory.disableOOMKiller",
            )?;
        }
        if let Some(v) = m.use_hierarchy() {
            write(
                d()?,
                "memory.use_hierarchy",
                if v { "1" } else { "0" },
                "linux.resources.memory.useHierarchy",
            )?;
        }
    }
    if let Some(c) = r.cpu() {
        let d = || dir(rec, "cpu", "linux.resources.cpu");
        if let Some(v) = c.shares().filter(|v| *v != 0) {
            let field = "linux.resources.cpu.shares";
            write(d()?, "cpu.shares", &v.to_string(), field)?;
            // The kernel clamps instead of refusing: read back, and say so as runc does.
            let got = read(d()?, "cpu.shares")?.parse::<u64>().unwrap_or(v);
            if v > got {
                return Err(Error::Usage(format!(
                    "{field}: the maximum allowed cpu-shares is {got}"
                )));
            } else if v < got {
                return Err(Error::Usage(format!(
                    "{field}: the minimum allowed cpu-shares is {got}"
                )));
            }
        }
        set_period_and_quota(d()?, c.period(), c.quota())?;
        if let Some(v) = c.burst() {
            write(
                d()?,
                "cpu.cfs_burst_us",
                &v.to_string(),
                "linux.resources.cpu.burst",
            )?;
        }
        if let Some(v) = c.realtime_period().filter(|v| *v != 0) {
            write(
                d()?,
                "cpu.rt_period_us",
                &v.to_string(),
                "linux.resources.cpu.realtimePeriod",
            )?;
        }
        if let Some(v) = c.realtime_runtime().filter(|v| *v != 0) {
            write(
                d()?,
                "cpu.rt_runtime_us",
                &v.to_string(),
                "linux.resources.cpu.realtimeRuntime",
            )?;
        }
        if let Some(v) = c.idle() {
            write(d()?, "cpu.idle", &v.to_string(), "linux.resources.cpu.idle")?;
        }
        if let Some(v) = c.cpus().as_deref().filter(|v| !v.is_empty()) {
            write(
                dir(rec, "cpuset", "linux.resources.cpu.cpus")?,
                "cpuset.cpus",
                v,
                "linux.resources.cpu.cpus",
            )?;
        }
        if let Some(v) = c.mems().as_deref().filter(|v| !v.is_empty()) {
            write(
                dir(rec, "cpuset", "linux.resources.cpu.mems")?,
                "cpuset.mems",
                v,
                "linux.resources.cpu.mems",
            )?;
        }
    }
    if let Some(p) = r.pids().filter(|p| p.limit() != 0) {
        let v = if p.limit() > 0 {
            p.limit().to_string()
        } else {
            "max".into()
        };
        write(
            dir(rec, "pids", "linux.resources.pids")?,
            "pids.max",
            &v,
            "linux.resources.pids.limit",
        )?;
    }
    if let Some(b) = r.block_io() {
        let d = || dir(rec, "blkio", "linux.resources.blockIO");
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            let dd = d()?;
            let field = "linux.resources.blockIO.weight";
            let f = pick_file(dd, &WEIGHT_FILES, field, NO_WEIGHTS)?;
            write(dd, f, &w.to_string(), field)?;
        }
        if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
            write(
                d()?,
                "blkio.leaf_weight",
                &w.to_string(),
                "linux.resources.blockIO.leafWeight",
            )?;
        }
        for wd in b.weight_device().iter().flatten() {
            if let Some(w) = wd.weight().filter(|w| *w != 0) {
                let dd = d()?;
                let field = "linux.resources.blockIO.weightDevice";
                let f = pick_file(dd, &WEIGHT_DEVICE_FILES, field, NO_WEIGHTS)?;
                write(dd, f, &format!("{}:{} {w}", wd.major(), wd.minor()), field)?;
            }
        }
        let throttles = [
            (
                "blkio.throttle.read_bps_device",
                "throttleReadBpsDevice",
                b.throttle_read_bps_device(),
            ),
            (
                "blkio.throttle.write_bps_device",
                "throttleWriteBpsDevice",
                b.throttle_write_bps_device(),
            ),
            (
                "blkio.throttle.read_iops_device",
                "throttleReadIOPSDevice",
                b.throttle_read_iops_device(),
            ),
            (
                "blkio.throttle.write_iops_device",
                "throttleWriteIOPSDevice",
                b.throttle_write_iops_device(),
            ),
        ];
        for (file, name, list) in throttles {
            for t in list.iter().flatten() {
                let field = format!("linux.resources.blockIO.{name}");
                write(
                    d()?,
                    file,
                    &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
                    &field,
                )?;
            }
        }
    }
    for h in r.hugepage_limits().iter().flatten() {
        let field = "linux.resources.hugepageLimits";
        match (rec.v1.get("hugetlb"), rec.unified.as_deref()) {
            (Some(d), _) => write(
                d,
                &format!("hugetlb.{}.limit_in_bytes", h.page_size()),
                &h.limit().to_string(),
                field,
            )?,
            (None, Some(u)) => write(
                u,
                &format!("hugetlb.{}.max", h.page_size()),
                &h.limit().to_string(),
                field,
            )?,
            _ => {
                return Err(Error::Usage(format!(
                    "{field}: this host has no hugetlb cgroup"
                )))
            }
        }
    }
    if let Some(n) = r.network() {
        if let Some(id) = n.class_id().filter(|id| *id != 0) {
            write(
                dir(rec, "net_cls", "linux.resources.network.classID")?,
                "net_cls.classid",
                &id.to_string(),
                "linux.resources.network.classID",
            )?;
        }
        for p in n.priorities().iter().flatten() {
            let field = "linux.resources.network.priorities";
            write(
                dir(rec, "net_prio", field)?,
                "net_prio.ifpriomap",
                &format!("{} {}", p.name(), p.priority()),
                field,
            )?;
        }
    }
    for (dev, limit) in r.rdma().iter().flatten() {
        let v = super::rdma_line(dev, limit);
        write(
            dir(rec, "rdma", "linux.resources.rdma")?,
            "rdma.max",
            &v,
            "linux.resources.rdma",
        )?;
    }
    if let Some(devs) = r.devices() {
        if let Some(d) = rec.v1.get("devices") {
            set_devices(d, devs)?;
        }
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
                &num(v),
                "linux.resources.memory.limit",
            ),
            None => Ok(()),
        }
    };
    let set_swap = || -> Result<()> {
        match swap {
            Some(v) => write(d, MEMSW, &num(v), "linux.resources.memory.swap"),
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

const MEMSW: &str = "memory.memsw.limit_in_bytes";

/// runc's order for the CFS bandwidth: the period first, but when the kernel refuses it (EINVAL:
/// the old quota over the new period would exceed what a parent cgroup, a pod with its own
/// limit, allows) and a quota is coming, the quota goes first and the period is written again.
fn set_period_and_quota(d: &Path, period: Option<u64>, quota: Option<i64>) -> Result<()> {
    let quota = quota.filter(|v| *v != 0);
    let mut retry = None;
    if let Some(p) = period.filter(|v| *v != 0) {
        let v = p.to_string();
        match std::fs::write(d.join("cpu.cfs_period_us"), &v) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && quota.is_some() => retry = Some(v),
            r => write_error(d, "cpu.cfs_period_us", &v, "linux.resources.cpu.period", r)?,
        }
    }
    if let Some(q) = quota {
        write(
            d,
            "cpu.cfs_quota_us",
            &q.to_string(),
            "linux.resources.cpu.quota",
        )?;
        if let Some(v) = retry {
            write(d, "cpu.cfs_period_us", &v, "linux.resources.cpu.period")?;
        }
    }
    Ok(())
}

/// v1 devices: from what `devices.list` says now to what the rules say, writing only the
/// difference (see [`super::emulator`]); then read back, as runc does, since the kernel
/// silently ignores some writes (an exception a parent does not allow).
fn set_devices(d: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
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
