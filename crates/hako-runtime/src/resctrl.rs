//! `linux.intelRdt` through the resctrl filesystem, as runc's libcontainer/intelrdt does: the
//! init joins a CTRL_MON group (`closID`, or one named after the container), whose `schemata`
//! hako writes when it made the group; `enableMonitoring` adds a MON group of its own under
//! it. Placed while the init sets up (before any user code), removed at delete. The resctrl
//! root is a parameter so that the writes can be checked on an ordinary directory.

use std::path::{Path, PathBuf};

use hako_spec::oci::{LinuxIntelRdt, Spec};
use hako_spec::state::ResctrlRecord;

use crate::error::{Context, Error, Result};

const FIELD: &str = "linux.intelRdt";

fn refuse(field: &str, why: impl std::fmt::Display) -> Error {
    Error::Usage(format!("{field}: {why}"))
}

/// Where resctrl is mounted, from the runtime's mountinfo (runc looks for the first `resctrl`).
pub fn root(mounts: &[crate::procinfo::Mount]) -> Option<PathBuf> {
    mounts
        .iter()
        .find(|m| m.fs_type == "resctrl")
        .map(crate::procinfo::mount_point)
}

fn rdt(spec: &Spec) -> Option<&LinuxIntelRdt> {
    spec.linux().as_ref().and_then(|l| l.intel_rdt().as_ref())
}

#[allow(deprecated)] // enableCMT/enableMBM: spec 1.3 folds them into enableMonitoring.
fn monitoring(r: &LinuxIntelRdt) -> bool {
    r.enable_monitoring().unwrap_or(false)
        || r.enable_cmt().unwrap_or(false)
        || r.enable_mbm().unwrap_or(false)
}

/// Decided before anything exists: the group, whether hako makes it, the MON group; the
/// host's resctrl checked for what the config asks (runc's validator: CAT for `l3CacheSchema`,
/// MBA for `memBwSchema`, a monitoring-capable resctrl for `enableMonitoring`).
pub fn plan(spec: &Spec, id: &str, root: Option<&Path>) -> Result<Option<ResctrlRecord>> {
    let Some(r) = rdt(spec) else { return Ok(None) };
    let Some(root) = root else {
        return Err(refuse(
            FIELD,
            "Intel RDT is not available on this host: no resctrl filesystem is mounted (resctrl needs a CPU with RDT and CONFIG_X86_CPU_RESCTRL)",
        ));
    };
    let needs = [
        (
            r.l3_cache_schema().is_some(),
            "info/L3",
            "l3CacheSchema",
            "cache allocation (CAT)",
        ),
        (
            r.mem_bw_schema().is_some(),
            "info/MB",
            "memBwSchema",
            "memory bandwidth allocation (MBA)",
        ),
        (
            monitoring(r),
            "info/L3_MON",
            "enableMonitoring",
            "monitoring",
        ),
    ];
    for (asked, dir, field, what) in needs {
        if asked && !root.join(dir).is_dir() {
            return Err(refuse(
                &format!("{FIELD}.{field}"),
                format!(
                    "resctrl at {} offers no {what} ({dir} is missing)",
                    root.display()
                ),
            ));
        }
    }
    let group = root.join(r.clos_id().as_deref().unwrap_or(id));
    // A CLOS named by closID that exists is someone's (another container's, the admin's):
    // joined as it is. Otherwise hako makes it, and it is the container's own.
    let created = !(r.clos_id().is_some() && group.is_dir());
    let mon_group = monitoring(r).then(|| group.join("mon_groups").join(id));
    Ok(Some(ResctrlRecord {
        group,
        created,
        mon_group,
    }))
}

/// The `schemata` text: `l3CacheSchema`, `memBwSchema`, then the `schemata` lines (the kernel
/// takes the last line for a resource, so `schemata` overrides the other two, as the spec says).
fn schemata(r: &LinuxIntelRdt) -> String {
    let lines: Vec<&str> = r
        .l3_cache_schema()
        .as_deref()
        .into_iter()
        .chain(r.mem_bw_schema().as_deref())
        .chain(r.schemata().iter().flatten().map(String::as_str))
        .collect();
    lines.join("\n")
}

fn write(dir: &Path, file: &str, data: &str, field: &str) -> Result<()> {
    let path = dir.join(file);
    std::fs::write(&path, format!("{data}\n")).map_err(|e| {
        // The kernel explains a refused schemata in info/last_cmd_status.
        let status = dir
            .ancestors()
            .find_map(|d| std::fs::read_to_string(d.join("info/last_cmd_status")).ok())
            .map(|s| format!(" ({})", s.trim()))
            .unwrap_or_default();
        refuse(field, format!("write {}: {e}{status}", path.display()))
    })
}

/// Puts the init `pid` where `rec` says: the group made and its schemata written (when hako
/// makes it), the pid in its `tasks`, then in the MON group's (which must be a child of the
/// task's CTRL_MON group).
pub fn apply(spec: &Spec, rec: &ResctrlRecord, pid: i32) -> Result<()> {
    let Some(r) = rdt(spec) else { return Ok(()) };
    if rec.created {
        std::fs::create_dir(&rec.group).ctx("create resctrl group", &rec.group)?;
        let text = schemata(r);
        if !text.is_empty() {
            write(&rec.group, "schemata", &text, FIELD)?;
        }
    }
    write(&rec.group, "tasks", &pid.to_string(), FIELD)?;
    match &rec.mon_group {
        Some(mon) => join_mon(mon, pid),
        None => Ok(()),
    }
}

/// An `exec`'d process into the container's groups (it is the runtime's clone, not a child of
/// the init, so it inherits nothing of the init's; runc's exec joins them too).
pub fn join(rec: &ResctrlRecord, pid: i32) -> Result<()> {
    write(&rec.group, "tasks", &pid.to_string(), FIELD)?;
    match &rec.mon_group {
        Some(mon) => write(mon, "tasks", &pid.to_string(), FIELD),
        None => Ok(()),
    }
}

/// `enableMonitoring`: a MON group of the container's own under `mon_groups/` (which the
/// kernel makes in every CTRL_MON group), the pid in its `tasks`.
fn join_mon(mon: &Path, pid: i32) -> Result<()> {
    std::fs::create_dir(mon).ctx("create resctrl monitoring group", mon)?;
    write(
        mon,
        "tasks",
        &pid.to_string(),
        &format!("{FIELD}.enableMonitoring"),
    )
}

/// Removes what hako made: the MON group, then the group if it was hako's. resctrl removes a
/// group's files with it on rmdir (and moves any task left to the parent); a group already
/// gone is fine (a failed create, a second delete).
pub fn remove(rec: Option<&ResctrlRecord>) -> Result<()> {
    let Some(rec) = rec else { return Ok(()) };
    let dirs = rec
        .mon_group
        .iter()
        .chain(rec.created.then_some(&rec.group));
    for d in dirs {
        match std::fs::remove_dir(d) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io("remove resctrl group", d, e));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(rdt: &str) -> Spec {
        serde_json::from_str(&format!(
            r#"{{"ociVersion":"1.3.0","linux":{{"intelRdt":{rdt}}}}}"#
        ))
        .unwrap()
    }

    /// A resctrl-shaped directory: info/ with the features the test names.
    fn fake_root(tag: &str, features: &[&str]) -> PathBuf {
        let root = std::env::temp_dir().join(format!("hako-resctrl-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for f in features {
            std::fs::create_dir_all(root.join("info").join(f)).unwrap();
        }
        root
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap()
    }

    /// On the real filesystem rmdir takes the group's files along; here the test does.
    fn kernel_files_gone(dir: &Path) {
        for f in ["schemata", "tasks"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        let _ = std::fs::remove_dir(dir.join("mon_groups"));
    }

    #[test]
    fn no_resctrl_names_the_field_and_says_why() {
        let e = plan(&spec(r#"{"l3CacheSchema":"L3:0=f"}"#), "c1", None).unwrap_err();
        let e = e.to_string();
        assert!(e.starts_with("linux.intelRdt: "), "{e}");
        assert!(e.contains("no resctrl filesystem is mounted"), "{e}");
        assert!(!e.contains("not supported by hako"), "{e}");
        assert!(plan(&spec("{}"), "c1", None).is_err());
        let none: Spec = serde_json::from_str(r#"{"ociVersion":"1.3.0"}"#).unwrap();
        assert_eq!(plan(&none, "c1", None).unwrap(), None);
    }

    #[test]
    fn missing_features_name_their_field() {
        let root = fake_root("feat", &["L3"]);
        let e = plan(&spec(r#"{"memBwSchema":"MB:0=50"}"#), "c1", Some(&root)).unwrap_err();
        assert!(
            e.to_string().starts_with("linux.intelRdt.memBwSchema: "),
            "{e}"
        );
        let e = plan(&spec(r#"{"enableMonitoring":true}"#), "c1", Some(&root)).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("linux.intelRdt.enableMonitoring: "),
            "{e}"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// Without closID: a group named after the container, schemata (l3, MB, then the
    /// `schemata` lines), the pid in tasks, a MON group with the pid; all gone at remove.
    #[test]
    fn own_group_written_joined_and_removed() {
        let root = fake_root("own", &["L3", "MB", "L3_MON"]);
        let s = spec(
            r#"{"l3CacheSchema":"L3:0=f0","memBwSchema":"MB:0=50","schemata":["L3:0=ff"],"enableMonitoring":true}"#,
        );
        let rec = plan(&s, "c1", Some(&root)).unwrap().unwrap();
        assert_eq!(rec.group, root.join("c1"));
        assert!(rec.created);
        assert_eq!(rec.mon_group, Some(root.join("c1/mon_groups/c1")));
        // The CTRL_MON part, then the MON part once the kernel's mon_groups/ is there.
        let ctrl = ResctrlRecord {
            mon_group: None,
            ..rec.clone()
        };
        apply(&s, &ctrl, 42).unwrap();
        assert_eq!(
            read(&root.join("c1/schemata")),
            "L3:0=f0\nMB:0=50\nL3:0=ff\n"
        );
        assert_eq!(read(&root.join("c1/tasks")), "42\n");
        std::fs::create_dir(root.join("c1/mon_groups")).unwrap();
        let mon = rec.mon_group.clone().unwrap();
        join_mon(&mon, 42).unwrap();
        assert_eq!(read(&mon.join("tasks")), "42\n");
        kernel_files_gone(&mon);
        // The MON group first (the kernel's mon_groups/ goes with its CTRL_MON group only).
        remove(Some(&ResctrlRecord {
            created: false,
            ..rec.clone()
        }))
        .unwrap();
        assert!(!mon.exists() && root.join("c1").is_dir());
        kernel_files_gone(&root.join("c1"));
        remove(Some(&rec)).unwrap();
        assert!(!root.join("c1").exists());
        remove(Some(&rec)).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// A closID naming an existing group: joined as it is (no schemata written), kept at
    /// remove; a closID with no group yet: made like the container's own.
    #[test]
    fn existing_clos_is_joined_not_written_nor_removed() {
        let root = fake_root("clos", &["L3"]);
        std::fs::create_dir(root.join("shared")).unwrap();
        std::fs::write(root.join("shared/schemata"), "L3:0=3\n").unwrap();
        let s = spec(r#"{"closID":"shared","l3CacheSchema":"L3:0=f"}"#);
        let rec = plan(&s, "c2", Some(&root)).unwrap().unwrap();
        assert_eq!(rec.group, root.join("shared"));
        assert!(!rec.created);
        apply(&s, &rec, 7).unwrap();
        assert_eq!(read(&root.join("shared/schemata")), "L3:0=3\n");
        assert_eq!(read(&root.join("shared/tasks")), "7\n");
        join(&rec, 8).unwrap();
        assert_eq!(read(&root.join("shared/tasks")), "8\n");
        remove(Some(&rec)).unwrap();
        assert!(root.join("shared").is_dir());
        let fresh = plan(&spec(r#"{"closID":"new"}"#), "c3", Some(&root))
            .unwrap()
            .unwrap();
        assert!(fresh.created && fresh.group == root.join("new"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
