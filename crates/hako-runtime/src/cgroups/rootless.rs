//! Where an unprivileged runtime puts a container's cgroup. It can only write a hierarchy it was
//! given: on cgroup v2, a subtree delegated to it (systemd's `user@UID.service`, or any directory
//! chowned to the user with its `cgroup.procs` and `cgroup.subtree_control`). The container's
//! cgroup goes at the top of that subtree (the highest ancestor of the caller's own cgroup that the
//! caller owns), under runc's path rules there: the caller's own cgroup is a leaf holding
//! processes, in which no controller can be enabled for a child ("no internal processes"). With no
//! such subtree (v1, the hybrid, v2 without delegation) the container gets no cgroup, as with runc
//! and crun, and one warning says that the requested limits were not applied.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use hako_spec::oci::Spec;
use hako_spec::state::CgroupRecord;

use super::manager::{inner_path, Cgroups};
use crate::error::{Context, Result};

/// The error for a command that needs the container's cgroup when it has none (`{what}`: the
/// command).
pub const NO_CGROUP: &str = "{what}: the container has no cgroup of its own (rootless, and the \
     caller cannot write the cgroup hierarchy: cgroup v1, or v2 without a delegated subtree)";

/// The highest directory from `own` upwards (not above `mountpoint`) owned by `euid` whose
/// `cgroup.procs` it may write.
pub fn delegation_root(mountpoint: &Path, own: &Path, euid: u32) -> Option<PathBuf> {
    let owned = |d: &Path| {
        std::fs::metadata(d).is_ok_and(|m| m.uid() == euid)
            && nix::unistd::access(&d.join("cgroup.procs"), nix::unistd::AccessFlags::W_OK).is_ok()
    };
    let mut best = None;
    let mut cur = mountpoint.join(own.strip_prefix("/").unwrap_or(own));
    while cur.starts_with(mountpoint) && cur != mountpoint && owned(&cur) {
        best = Some(cur.clone());
        match cur.parent() {
            Some(p) => cur = p.to_path_buf(),
            None => break,
        }
    }
    best
}

/// The plan for an unprivileged runtime (euid != 0): a v2 directory inside the delegated subtree,
/// or no cgroup (layout "").
pub fn plan(spec: &Spec, id: &str, euid: u32, info: &[crate::procinfo::Mount]) -> Result<Cgroups> {
    let (inner, _absolute) = inner_path(spec, id, false)?;
    let hs = super::hierarchies(info);
    let none = Cgroups::from_record(CgroupRecord::default());
    // Pure v2 only (a hybrid's unified hierarchy has no controllers to limit with).
    if hs.iter().any(|h| !h.v2) {
        return Ok(none);
    }
    let Some(h) = hs.first() else {
        return Ok(none);
    };
    let own = crate::procinfo::read("/proc/self/cgroup").ctx("read", "/proc/self/cgroup")?;
    let own = super::own_path(h, &own);
    let Some(base) = delegation_root(&h.mountpoint, &own, euid) else {
        return Ok(none);
    };
    let rel = inner.strip_prefix("/").unwrap_or(&inner);
    let dir = base.join(rel);
    let mut rec = CgroupRecord {
        layout: "v2".into(),
        unified: Some(dir),
        ..Default::default()
    };
    if rel == Path::new("hako").join(id) {
        rec.shared_parents.push(base.join("hako"));
    }
    Ok(Cgroups::from_plan(rec))
}

/// True when `spec` asks for limits (anything in `linux.resources` but device rules, which a
/// rootless container does not need: its device nodes are the host's, bind-mounted).
pub fn limits_requested(spec: &Spec) -> bool {
    let Some(r) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) else {
        return false;
    };
    let Ok(serde_json::Value::Object(mut v)) = serde_json::to_value(r) else {
        return false;
    };
    v.remove("devices");
    v.values().any(|x| !x.is_null())
}

/// The one warning for limits that were asked for and not applied.
pub fn warn_not_applied(spec: &Spec, why: &str) {
    if limits_requested(spec) {
        crate::log::warn(&format!(
            "rootless: linux.resources not applied: {why}; the container runs without a cgroup of its own"
        ));
    }
}
