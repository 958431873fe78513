//! cpu: shares (read back, since the kernel clamps), CFS bandwidth, burst, real-time bandwidth
//! and idle.

use std::path::Path;

use hako_spec::oci::LinuxCpu;

use super::Dir;
use crate::cgroups::manager::{read, write, write_error};
use crate::error::{Error, Result};

pub(super) fn set(d: &Dir, c: &LinuxCpu) -> Result<()> {
    let f = "linux.resources.cpu";
    if let Some(v) = c.shares().filter(|v| *v != 0) {
        set_shares(d.get(f)?, v)?;
    }
    let quota = c.quota().filter(|v| *v != 0).map(|v| v.to_string());
    let period = c.period().filter(|v| *v != 0).map(|v| v.to_string());
    if quota.is_some() || period.is_some() {
        let period = period.map(|v| ("cpu.cfs_period_us", v, "period"));
        let quota = quota.map(|v| ("cpu.cfs_quota_us", v, "quota"));
        set_interdependent(d.get(f)?, period, quota)?;
    }
    if let Some(v) = c.burst() {
        let field = "linux.resources.cpu.burst";
        write(d.get(field)?, "cpu.cfs_burst_us", &v.to_string(), field)?;
    }
    let rt_period = c.realtime_period().filter(|v| *v != 0);
    let rt_runtime = c.realtime_runtime().filter(|v| *v != 0);
    if rt_period.is_some() || rt_runtime.is_some() {
        let period = rt_period.map(|v| ("cpu.rt_period_us", v.to_string(), "realtimePeriod"));
        let runtime = rt_runtime.map(|v| ("cpu.rt_runtime_us", v.to_string(), "realtimeRuntime"));
        set_interdependent(d.get(f)?, period, runtime)?;
    }
    if let Some(v) = c.idle() {
        let field = "linux.resources.cpu.idle";
        write(d.get(field)?, "cpu.idle", &v.to_string(), field)?;
    }
    Ok(())
}

/// The kernel clamps cpu.shares instead of refusing: read back, and say so as runc does.
fn set_shares(d: &Path, v: u64) -> Result<()> {
    let field = "linux.resources.cpu.shares";
    write(d, "cpu.shares", &v.to_string(), field)?;
    let got = read(d, "cpu.shares")?.parse::<u64>().unwrap_or(v);
    if v > got {
        return Err(Error::Usage(format!(
            "{field}: the maximum allowed cpu-shares is {got}"
        )));
    } else if v < got {
        return Err(Error::Usage(format!(
            "{field}: the minimum allowed cpu-shares is {got}"
        )));
    }
    Ok(())
}

/// A period and the budget spent in it, `(file, value, field name)` each: CFS
/// (cfs_period_us, cfs_quota_us) or real-time (rt_period_us, rt_runtime_us). runc's order: the
/// period first, but when the kernel refuses it (EINVAL: the old budget over the new period
/// would exceed what the parent allows, a pod with its own limit, or the RT budget would not fit)
/// and a budget is coming, the budget goes first and the period is written again.
fn set_interdependent(
    d: &Path,
    period: Option<(&str, String, &str)>,
    budget: Option<(&str, String, &str)>,
) -> Result<()> {
    let field = |name: &str| format!("linux.resources.cpu.{name}");
    let mut retry = None;
    if let Some((file, v, name)) = period {
        match std::fs::write(d.join(file), &v) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && budget.is_some() => {
                retry = Some((file, v, name))
            }
            r => write_error(d, file, &v, &field(name), r)?,
        }
    }
    if let Some((file, v, name)) = budget {
        write(d, file, &v, &field(name))?;
        if let Some((file, v, name)) = retry {
            write(d, file, &v, &field(name))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::scratch::Scratch;
    use hako_spec::oci::LinuxCpuBuilder;

    #[test]
    fn bandwidth_and_rt() {
        let s = Scratch::with(&[]);
        let c = LinuxCpuBuilder::default()
            .shares(512u64)
            .quota(50_000)
            .period(100_000u64)
            .realtime_period(1_000_000u64)
            .realtime_runtime(950_000)
            .idle(1)
            .build()
            .unwrap();
        set(&Dir::at(s.path()), &c).unwrap();
        assert_eq!(s.get("cpu.shares").unwrap(), "512");
        assert_eq!(s.get("cpu.cfs_quota_us").unwrap(), "50000");
        assert_eq!(s.get("cpu.cfs_period_us").unwrap(), "100000");
        assert_eq!(s.get("cpu.rt_period_us").unwrap(), "1000000");
        assert_eq!(s.get("cpu.rt_runtime_us").unwrap(), "950000");
        assert_eq!(s.get("cpu.idle").unwrap(), "1");
    }

    #[test]
    fn zero_values_are_not_written() {
        let s = Scratch::with(&[]);
        let c = LinuxCpuBuilder::default()
            .shares(0u64)
            .quota(0)
            .period(0u64)
            .realtime_period(0u64)
            .realtime_runtime(0)
            .build()
            .unwrap();
        set(&Dir::at(s.path()), &c).unwrap();
        assert_eq!(std::fs::read_dir(s.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_period_refused_for_another_reason_stops_there() {
        // A directory named like the period file makes its first write fail (EISDIR is not
        // EINVAL): the error names the field, and nothing after it is written.
        let s = Scratch::with(&[]);
        std::fs::create_dir(s.path().join("cpu.rt_period_us")).unwrap();
        let period = Some(("cpu.rt_period_us", "1".into(), "realtimePeriod"));
        let budget = Some(("cpu.rt_runtime_us", "2".into(), "realtimeRuntime"));
        let e = set_interdependent(s.path(), period, budget)
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux.resources.cpu.realtimePeriod"), "{e}");
        assert_eq!(s.get("cpu.rt_runtime_us"), None);
    }
}
