//! Writing a new user namespace's uid and gid maps, the way an unprivileged process is allowed to.
//!
//! As root (in the initial user namespace, or with the mapped ids in ours) the runtime writes
//! `/proc/PID/uid_map` and `gid_map` itself. An unprivileged runtime may write them itself only
//! when the map is its *own* id, mapped once, and — for the gid map — after `deny` was written to
//! `/proc/PID/setgroups` (otherwise the container could drop a group that guards a file against
//! it). Anything wider (a range from /etc/subuid) goes through the setuid helpers `newuidmap` and
//! `newgidmap` (Debian package `uidmap`), which check the ranges, as runc and crun do.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use hako_spec::oci::LinuxIdMapping;

use crate::error::{Context, Error, Result};

/// Which ids the runtime itself holds: what it may map without the helpers.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub euid: u32,
    pub egid: u32,
}

fn text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// True when `maps` is exactly the caller's own `id`, once: what the kernel lets an unprivileged
/// process write.
fn only_own(maps: &[LinuxIdMapping], id: u32) -> bool {
    matches!(maps, [m] if m.host_id() == id && m.size() == 1)
}

/// True when an unprivileged runtime (egid `egid`) will deny setgroups in the container's new user
/// namespace: its gid map is only the caller's own gid.
pub fn denies_setgroups(spec: &hako_spec::oci::Spec, egid: u32) -> bool {
    let gids = spec
        .linux()
        .as_ref()
        .and_then(|l| l.gid_mappings().as_deref())
        .unwrap_or(&[]);
    only_own(gids, egid)
}

/// The kernel's overflow uid (its default; `/proc/sys/kernel/overflowuid`): what an id unmapped in
/// a user namespace reads as there.
pub const OVERFLOW_ID: u32 = 65534;

/// `host_uid` as a process inside the container's new user namespace sees it (SO_PEERCRED is
/// translated into the reader's namespace): the start socket's peer check compares with this.
pub fn uid_seen_inside(maps: &[LinuxIdMapping], host_uid: u32) -> u32 {
    maps.iter()
        .find_map(|m| {
            let off = host_uid.checked_sub(m.host_id())?;
            (off < m.size()).then(|| m.container_id() + off)
        })
        .unwrap_or(OVERFLOW_ID)
}

/// Writes both maps for `pid`, a child just cloned into a new user namespace. `caller` is `None`
/// for a privileged runtime (euid 0), which writes the files directly as it always has.
pub fn write(
    pid: i32,
    uid: &[LinuxIdMapping],
    gid: &[LinuxIdMapping],
    caller: Option<Caller>,
) -> Result<()> {
    let base = PathBuf::from(format!("/proc/{pid}"));
    let direct = |name: &str, maps: &[LinuxIdMapping]| {
        let p = base.join(name);
        std::fs::write(&p, text(maps)).ctx("write", p)
    };
    let Some(c) = caller else {
        direct("uid_map", uid)?;
        return direct("gid_map", gid);
    };
    if only_own(uid, c.euid) {
        direct("uid_map", uid)?;
    } else {
        helper("newuidmap", "linux.uidMappings", pid, uid)?;
    }
    if only_own(gid, c.egid) {
        // Required before an unprivileged gid_map write (user_namespaces(7)).
        let p = base.join("setgroups");
        std::fs::write(&p, "deny").ctx("write", p)?;
        direct("gid_map", gid)?;
    } else {
        helper("newgidmap", "linux.gidMappings", pid, gid)?;
    }
    Ok(())
}

/// `newuidmap PID ID HOSTID COUNT...`; its refusal is quoted, with the field it was asked for.
fn helper(prog: &str, field: &str, pid: i32, maps: &[LinuxIdMapping]) -> Result<()> {
    let mut cmd = Command::new(prog);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([
            m.container_id().to_string(),
            m.host_id().to_string(),
            m.size().to_string(),
        ]);
    }
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                " (install the uidmap package)"
            } else {
                ""
            };
            Error::Usage(format!(
                "{field}: mapping more than the caller's own id needs {prog}: {}{hint}",
                hako_spec::error::io_text(&e)
            ))
        })?;
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr);
    let said = said.trim().replace('\n', "; ");
    Err(Error::Usage(format!(
        "{field}: {prog} refused the mapping {:?} ({}): {said}",
        text(maps).trim_end().replace('\n', ", "),
        out.status
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maps(v: &[(u32, u32, u32)]) -> Vec<LinuxIdMapping> {
        v.iter()
            .map(|&(c, h, s)| {
                serde_json::from_value(
                    serde_json::json!({"containerID": c, "hostID": h, "size": s}),
                )
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn host_ids_seen_inside() {
        let m = maps(&[(0, 1000, 1), (1, 100000, 65536)]);
        assert_eq!(uid_seen_inside(&m, 1000), 0);
        assert_eq!(uid_seen_inside(&m, 100005), 6);
        assert_eq!(uid_seen_inside(&m, 0), 65534);
    }

    #[test]
    fn only_the_callers_own_id_once_is_written_directly() {
        assert!(only_own(&maps(&[(0, 1000, 1)]), 1000));
        assert!(!only_own(&maps(&[(0, 1000, 2)]), 1000));
        assert!(!only_own(&maps(&[(0, 1001, 1)]), 1000));
        assert!(!only_own(&maps(&[(0, 1000, 1), (1, 100000, 65536)]), 1000));
    }
}
