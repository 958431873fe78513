//! The commands that act on a container's cgroups while it lives: pause, resume, ps, update.

use std::path::Path;

use hako_spec::state::Status;

use crate::cgroups::Cgroups;
use crate::container::lifecycle::{container_pids, locked, status_of};
use crate::error::{Error, Result};

/// `pause`: freeze every process of the container (v1 freezer.state, v2 cgroup.freeze).
pub fn pause(root: &Path, id: &str) -> Result<()> {
    let (_lock, rec) = locked(root, id)?;
    match status_of(&rec) {
        // runc pauses a created container too (its waiting init is frozen with the cgroup).
        Status::Running | Status::Created => Cgroups::from_record(rec.cgroup).freeze(true),
        // runc's words for pausing a paused container.
        Status::Paused => Err(Error::NotRunning),
        _ => Err(Error::NotRunning),
    }
}

pub fn resume(root: &Path, id: &str) -> Result<()> {
    let (_lock, rec) = locked(root, id)?;
    match status_of(&rec) {
        Status::Paused => Cgroups::from_record(rec.cgroup).freeze(false),
        _ => Err(Error::BadState("container not paused".into())),
    }
}

/// `ps`: host pids of every process in the container's cgroup.
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>> {
    let (_lock, rec) = locked(root, id)?;
    let mut v = container_pids(&rec);
    v.sort_unstable();
    Ok(v)
}

/// `update`: applies `r` to the live cgroups and records it, so the container's state shows the
/// limits in force.
pub fn update(root: &Path, id: &str, r: &hako_spec::oci::LinuxResources) -> Result<()> {
    let (lock, mut rec) = locked(root, id)?;
    if status_of(&rec) == Status::Stopped {
        return Err(Error::NotRunning);
    }
    if rec.cgroup.layout.is_empty() {
        return Err(Error::Usage(
            crate::cgroups::rootless::NO_CGROUP.replace("{what}", "update"),
        ));
    }
    let cg = Cgroups::from_record(rec.cgroup.clone());
    let mut linux = rec.config.linux().clone().unwrap_or_default();
    let recorded = linux.resources().clone().unwrap_or_default();
    // New device rules replace the old set: they need the default list too, as at create.
    cg.update(&Cgroups::with_default_devices(with_cpu_pair(r, &recorded)))?;
    let mut merged = recorded;
    merge_resources(&mut merged, r);
    linux.set_resources(Some(merged));
    rec.config.set_linux(Some(linux));
    lock.save(&rec)
}

/// runc's update rule for the CFS pair: when only one of quota and period is given, the other
/// keeps its recorded value, since cgroup v2's `cpu.max` takes both at once (on v1 rewriting
/// the recorded value changes nothing).
fn with_cpu_pair(
    r: &hako_spec::oci::LinuxResources,
    recorded: &hako_spec::oci::LinuxResources,
) -> hako_spec::oci::LinuxResources {
    let mut r = r.clone();
    let Some(mut c) = r.cpu().clone() else {
        return r;
    };
    let old = recorded.cpu().clone().unwrap_or_default();
    let (p, q) = (
        c.period().filter(|v| *v != 0),
        c.quota().filter(|v| *v != 0),
    );
    match (p, q) {
        (Some(_), None) => c.set_quota(old.quota()),
        (None, Some(_)) => c.set_period(old.period()),
        _ => return r,
    };
    r.set_cpu(Some(c));
    r
}

fn merge_resources(into: &mut hako_spec::oci::LinuxResources, r: &hako_spec::oci::LinuxResources) {
    let (mut a, b) = (
        serde_json::to_value(&*into).unwrap_or_default(),
        serde_json::to_value(r).unwrap_or_default(),
    );
    fn merge(a: &mut serde_json::Value, b: &serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) if !b.is_null() => *a = b.clone(),
            _ => {}
        }
    }
    merge(&mut a, &b);
    if let Ok(m) = serde_json::from_value(a) {
        *into = m;
    }
}
