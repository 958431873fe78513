//! The container record kept under `--root/<id>/state.json`, and the runc-shaped `state` output.

use std::collections::HashMap;
use std::path::PathBuf;

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What `hako state` prints: the same keys, order and omissions as runc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateView {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<HashMap<String, String>>,
    pub owner: String,
}

/// The OCI `state` object handed to hooks on stdin (runtime-spec `state` schema).
#[derive(Debug, Clone, Serialize)]
pub struct HookState<'a> {
    #[serde(rename = "ociVersion")]
    pub oci_version: &'a str,
    pub id: &'a str,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    pub bundle: &'a std::path::Path,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<&'a HashMap<String, String>>,
}

/// The container's cgroups as placed at create: later commands get no `--systemd-cgroup` flag
/// and must find (and only ever remove) exactly these.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupRecord {
    /// `v1`, `v2` or `hybrid`; empty when the container has no cgroups of its own.
    pub layout: String,
    /// v1 hierarchy mountpoint name (`memory`, `cpu`, `systemd`, ...) → absolute directory.
    #[serde(default)]
    pub v1: std::collections::BTreeMap<String, PathBuf>,
    /// The cgroup v2 directory (the only one on v2; the `unified` one on a hybrid host).
    #[serde(default)]
    pub unified: Option<PathBuf>,
    /// Directories hako created, parents first; removed deepest first on delete.
    #[serde(default)]
    pub created: Vec<PathBuf>,
    /// hako's own default parent (`/hako`) in each hierarchy, when the container was placed
    /// there: removed at delete once empty, whichever hako container happened to create it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_parents: Vec<PathBuf>,
    /// `--systemd-cgroup`: the transient unit systemd created for the container (`x.scope`),
    /// stopped at delete. Set once the unit exists, so a failed create stops only its own unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_unit: Option<String>,
    /// The bus socket of the user's own systemd instance that owns `systemd_unit` (rootless
    /// `--systemd-cgroup`); absent for PID 1's units on the system bus. Later commands reach
    /// the unit here whatever their environment says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_user_bus: Option<PathBuf>,
}

/// `linux.intelRdt` as placed at create: the resctrl group the init joined, and what of it
/// hako made (and removes at delete).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResctrlRecord {
    /// The CTRL_MON group: `<resctrl>/<closID>`, or `<resctrl>/<id>` without one.
    pub group: PathBuf,
    /// hako made the group (it did not exist before): its schemata were written and it goes
    /// at delete. A group named by `closID` that existed is joined only.
    pub created: bool,
    /// `enableMonitoring`: the MON group `<group>/mon_groups/<id>`, always hako's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mon_group: Option<PathBuf>,
}

/// Everything a later command (start, kill, delete, state) needs, since it gets no bundle argument.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    /// Host pid of the container init; 0 before it exists.
    pub pid: i32,
    /// `starttime` (field 22 of /proc/<pid>/stat) of the init: a pid whose start time differs is a
    /// recycled pid and the container is stopped.
    pub init_start_time: u64,
    /// Last status hako itself set (created, running); liveness and the freezer refine it.
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 with nanoseconds, UTC.
    pub created: String,
    pub owner: String,
    /// Whether the container has its own pid namespace; without one, killing the init does not kill
    /// the other processes and `kill --all`/`delete` must signal each process.
    pub private_pid_ns: bool,
    /// `--systemd-cgroup` as given to create; exec/update/delete are not told again.
    #[serde(default)]
    pub systemd_cgroup: bool,
    /// Created by an unprivileged runtime (or with `--rootless=true`): exec then forks into the
    /// container's pid namespace and never lowers oom_score_adj (docs/rootless.md).
    #[serde(default)]
    pub rootless: bool,
    /// Where the container's cgroups are, and which of those directories hako created.
    #[serde(default)]
    pub cgroup: CgroupRecord,
    /// `linux.intelRdt`: listed before anything of it exists, like the cgroups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resctrl: Option<ResctrlRecord>,
    /// Without a mount namespace (its `mounts[]` go below the rootfs in the host's): the ids of
    /// the mounts that were below the rootfs before `create`, so `delete` takes away exactly
    /// the others. `None`: nothing was mounted on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_mounts_before: Option<Vec<i32>>,
    /// The config as it was at create: poststop hooks and annotations come from here, not from a
    /// bundle that may have changed since.
    pub config: Spec,
}

impl ContainerRecord {
    pub fn view(&self, status: Status) -> StateView {
        StateView {
            oci_version: crate::SPEC_VERSION.to_string(),
            id: self.id.clone(),
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status,
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            owner: self.owner.clone(),
            annotations: self.config.annotations().clone(),
        }
    }

    pub fn hook_state(&self, status: Status) -> HookState<'_> {
        HookState {
            oci_version: crate::SPEC_VERSION,
            id: &self.id,
            status,
            pid: (self.pid > 0 && status != Status::Stopped).then_some(self.pid),
            bundle: &self.bundle,
            annotations: self.config.annotations().as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_matches_runc_shape() {
        let spec: Spec =
            serde_json::from_str(r#"{"ociVersion":"1.0.2","annotations":{"a":"b"}}"#).unwrap();
        let rec = ContainerRecord {
            id: "c1".into(),
            pid: 42,
            init_start_time: 7,
            status: Status::Running,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "2026-11-22T13:00:00.000000001Z".into(),
            owner: "".into(),
            private_pid_ns: true,
            systemd_cgroup: false,
            rootless: false,
            host_mounts_before: None,
            cgroup: CgroupRecord::default(),
            resctrl: None,
            config: spec,
        };
        let v = serde_json::to_value(rec.view(Status::Stopped)).unwrap();
        assert_eq!(v["pid"], 0);
        assert_eq!(v["status"], "stopped");
        // runc 1.3 prints the spec version it implements, not the config's.
        assert_eq!(v["ociVersion"], crate::SPEC_VERSION);
        assert_eq!(v["annotations"]["a"], "b");
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        for k in [
            "ociVersion",
            "id",
            "pid",
            "status",
            "bundle",
            "rootfs",
            "created",
            "owner",
        ] {
            assert!(keys.contains(&k.to_string()), "{k}");
        }
    }
}
