//! cpu: cpu.weight from shares, cpu.max from quota and period, burst, idle. v2 has no real-time
//! bandwidth, so those fields are refused (runc refuses them too).

use std::path::Path;

use hako_spec::oci::LinuxCpu;

use super::{max_or, shares_to_weight};
use crate::cgroups::manager::write;
use crate::error::{Error, Result};

pub(super) fn set(d: &Path, c: &LinuxCpu) -> Result<()> {
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        let w = shares_to_weight(s).to_string();
        write(d, "cpu.weight", &w, "linux.resources.cpu.shares")?;
    }
    if let Some(v) = cpu_max(c) {
        write(d, "cpu.max", &v, "linux.resources.cpu.quota")?;
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
    if c.realtime_runtime().is_some_and(|v| v != 0) || c.realtime_period().is_some_and(|v| v != 0) {
        return Err(Error::Usage(
            "linux.resources.cpu.realtimeRuntime: not supported on cgroup v2".into(),
        ));
    }
    Ok(())
}

/// `cpu.max` is "QUOTA PERIOD": a period alone keeps no quota ("max"), a quota alone gets the
/// kernel's default period.
fn cpu_max(c: &LinuxCpu) -> Option<String> {
    let quota = c.quota().filter(|v| *v != 0);
    let period = c.period().filter(|p| *p != 0);
    if quota.is_none() && period.is_none() {
        return None;
    }
    let quota = quota.map(max_or).unwrap_or_else(|| "max".into());
    Some(format!("{quota} {}", period.unwrap_or(100_000)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::scratch::Scratch;
    use hako_spec::oci::LinuxCpuBuilder;

    #[test]
    fn weight_max_burst_idle() {
        let s = Scratch::with(&[]);
        let c = LinuxCpuBuilder::default()
            .shares(1024u64)
            .quota(50_000)
            .burst(1000u64)
            .idle(0)
            .build()
            .unwrap();
        set(s.path(), &c).unwrap();
        assert_eq!(s.get("cpu.weight").unwrap(), "39");
        assert_eq!(s.get("cpu.max").unwrap(), "50000 100000");
        assert_eq!(s.get("cpu.max.burst").unwrap(), "1000");
        assert_eq!(s.get("cpu.idle").unwrap(), "0");
    }

    #[test]
    fn period_alone_and_realtime() {
        let c = LinuxCpuBuilder::default()
            .period(20_000u64)
            .build()
            .unwrap();
        assert_eq!(cpu_max(&c).unwrap(), "max 20000");
        let s = Scratch::with(&[]);
        let rt = LinuxCpuBuilder::default()
            .realtime_runtime(10)
            .build()
            .unwrap();
        let e = set(s.path(), &rt).unwrap_err().to_string();
        assert!(
            e.contains("realtimeRuntime: not supported on cgroup v2"),
            "{e}"
        );
    }
}
