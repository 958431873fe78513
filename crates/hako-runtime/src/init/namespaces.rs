//! Which namespaces a container gets, and how: created by the one clone3 call where possible,
//! joined by `path` with setns, or unshared later where the kernel needs it (cgroup: only after
//! the init sits in its cgroup, so that becomes the namespace root; time: offsets must be written
//! before any process enters).

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use hako_spec::oci::{LinuxNamespaceType, Spec};
use nix::sched::CloneFlags;

use crate::error::{Context, Result};

pub const CLONE_NEWTIME: i32 = 0x80;

pub fn flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(CLONE_NEWTIME),
    }
}

/// The namespace plan for one container.
#[derive(Debug, Clone)]
pub struct Plan {
    /// New namespaces to create in clone3 (never cgroup or time, see module doc).
    pub clone: CloneFlags,
    /// New namespaces to unshare in the init after joining a user namespace by path (they must be
    /// owned by that user namespace, so they cannot be created by the runtime's clone).
    pub unshare: CloneFlags,
    /// Namespaces to join, user first (it decides what we may join next).
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
    /// A pid namespace to join: setns in the runtime before clone (it only affects children).
    pub join_pid: Option<PathBuf>,
    pub new_user: bool,
    pub new_cgroup: bool,
    pub new_time: bool,
    /// A new pid namespace that can only be entered by one more fork (user ns joined by path).
    pub fork_for_pid: bool,
    pub private_pid: bool,
    pub private_mount: bool,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            clone: CloneFlags::empty(),
            unshare: CloneFlags::empty(),
            join: vec![],
            join_pid: None,
            new_user: false,
            new_cgroup: false,
            new_time: false,
            fork_for_pid: false,
            private_pid: false,
            private_mount: false,
        }
    }
}

pub fn plan(spec: &Spec) -> Plan {
    let mut p = Plan::default();
    let nss = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    let user_join = nss
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_some());
    let mut new = CloneFlags::empty();
    for n in &nss {
        match (n.typ(), n.path()) {
            (LinuxNamespaceType::Pid, Some(path)) => p.join_pid = Some(path.clone()),
            (t, Some(path)) => p.join.push((t, path.clone())),
            (LinuxNamespaceType::Cgroup, None) => p.new_cgroup = true,
            (LinuxNamespaceType::Time, None) => p.new_time = true,
            (t, None) => new |= flag(t),
        }
        match n.typ() {
            LinuxNamespaceType::Pid => p.private_pid = true,
            LinuxNamespaceType::Mount => p.private_mount = true,
            _ => {}
        }
    }
    p.join.sort_by_key(|(t, _)| *t != LinuxNamespaceType::User);
    p.new_user = new.contains(CloneFlags::CLONE_NEWUSER);
    if user_join {
        p.fork_for_pid = new.contains(CloneFlags::CLONE_NEWPID);
        p.unshare = new & !CloneFlags::CLONE_NEWPID;
        if p.fork_for_pid {
            p.unshare |= CloneFlags::CLONE_NEWPID;
        }
    } else {
        // Only what must exist at birth is cloned: the pid namespace (the init must be its pid 1)
        // and the user namespace (it owns everything created after it). The init unshares the
        // rest itself, on its own CPU, while the runtime sets up cgroups: creating a network
        // namespace alone costs hundreds of microseconds.
        let at_birth = CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUSER;
        p.clone = new & at_birth;
        p.unshare = new & !at_birth;
    }
    p
}

/// The runtime inside another pid namespace for its *children* only (setns(CLONE_NEWPID) moves
/// nobody but the next child): entered just before a clone, left right after it.
pub struct PidNsForChildren {
    own: std::fs::File,
}

impl PidNsForChildren {
    /// `ns`: a pid namespace fd, or a pidfd of a process in it; `what` names it in errors.
    pub fn enter(ns: std::os::fd::BorrowedFd, what: &Path) -> Result<PidNsForChildren> {
        let own = std::fs::File::open("/proc/self/ns/pid").ctx("open", "/proc/self/ns/pid")?;
        nix::sched::setns(ns, CloneFlags::CLONE_NEWPID).ctx("setns", what)?;
        Ok(PidNsForChildren { own })
    }

    /// Back to the runtime's own pid namespace. Only ever in the parent: the child's *active*
    /// pid namespace is the entered one, and an ancestor namespace cannot be entered.
    pub fn leave(self) -> Result<()> {
        nix::sched::setns(self.own.as_fd(), CloneFlags::CLONE_NEWPID).op("restore pid namespace")
    }
}

pub fn setns_path(t: LinuxNamespaceType, path: &Path) -> Result<()> {
    let fd = std::fs::File::open(path).ctx("open namespace", path)?;
    nix::sched::setns(fd.as_fd(), flag(t)).ctx("setns", path)?;
    Ok(())
}

/// One line of a uid_map or gid_map: container id, host id, size.
pub type IdRange = [u32; 3];

/// The mappings of the user namespace joined by `path` (`None`: none is joined), read as runc
/// 1.3 reads them. Mappings in the config as well (containerd and CRI-O write both) must be
/// those, or the config is refused in runc's words.
pub fn joined_user_maps(spec: &Spec) -> Result<Option<(Vec<IdRange>, Vec<IdRange>)>> {
    let Some(l) = spec.linux().as_ref() else {
        return Ok(None);
    };
    let Some(path) = l.namespaces().iter().flatten().find_map(|n| {
        (n.typ() == LinuxNamespaceType::User)
            .then(|| n.path().clone())
            .flatten()
    }) else {
        return Ok(None);
    };
    let (uid, gid) = read_userns_maps(&path)?;
    let parse = |text: &str| -> Vec<IdRange> {
        let mut v: Vec<IdRange> = text
            .lines()
            .filter_map(|l| {
                let f: Vec<u32> = l
                    .split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect();
                (f.len() == 3).then(|| [f[0], f[1], f[2]])
            })
            .collect();
        v.sort_unstable();
        v
    };
    let (uid, gid) = (parse(&uid), parse(&gid));
    if l.uid_mappings().is_none() && l.gid_mappings().is_none() {
        return Ok(Some((uid, gid)));
    }
    let same = |want: &Option<Vec<hako_spec::oci::LinuxIdMapping>>, have: &[IdRange]| {
        let mut want: Vec<IdRange> = want
            .iter()
            .flatten()
            .map(|m| [m.container_id(), m.host_id(), m.size()])
            .collect();
        want.sort_unstable();
        want == have
    };
    if !same(l.uid_mappings(), &uid) || !same(l.gid_mappings(), &gid) {
        return Err(crate::error::Error::Usage(
            "user namespaces enabled, but both namespace path and non-matching mapping specified -- you may only provide one"
                .into(),
        ));
    }
    crate::log::warn(
        "config.json has both a userns path to join and a matching userns mapping specified -- you may only provide one",
    );
    Ok(Some((uid, gid)))
}

/// `host_uid` as a process inside a namespace with these uid mappings sees it.
pub fn uid_inside(maps: &[IdRange], host_uid: u32) -> u32 {
    maps.iter()
        .find_map(|[inside, host, size]| {
            let off = host_uid.checked_sub(*host)?;
            (off < *size).then(|| inside + off)
        })
        .unwrap_or(crate::init::idmap::OVERFLOW_ID)
}

/// The uid_map and gid_map of the user namespace at `path`, as its parent namespace sees them:
/// read by a child that joined it (a file under /proc/<pid> shows the parent's ids to a reader
/// inside the same namespace), as runc does for a path that is not /proc/<pid>/ns/user.
fn read_userns_maps(path: &Path) -> Result<(String, String)> {
    use std::io::Read;
    let ns = std::fs::File::open(path).ctx("open namespace", path)?;
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).op("pipe")?;
    // SAFETY: the runtime is single-threaded; the child only joins, reads, writes and _exits.
    match unsafe { crate::sys::clone3(0, None) }.op("fork to read user namespace mappings")? {
        crate::sys::Forked::Child => {
            drop(r);
            let mut text = String::new();
            if nix::sched::setns(ns.as_fd(), CloneFlags::CLONE_NEWUSER).is_ok() {
                for f in ["/proc/self/uid_map", "/proc/self/gid_map"] {
                    text.push_str(&std::fs::read_to_string(f).unwrap_or_default());
                    text.push('\0');
                }
            }
            let _ = nix::unistd::write(&w, text.as_bytes());
            // SAFETY: leaves the forked child without running the runtime's destructors.
            unsafe { libc::_exit(0) }
        }
        crate::sys::Forked::Parent { pid } => {
            drop(w);
            let mut text = String::new();
            let _ = std::fs::File::from(r).read_to_string(&mut text);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            let mut parts = text.split('\0');
            match (parts.next(), parts.next()) {
                (Some(u), Some(g)) => Ok((u.to_string(), g.to_string())),
                _ => Err(crate::error::Error::Usage(format!(
                    "linux.namespaces: cannot read the mappings of user namespace {}",
                    path.display()
                ))),
            }
        }
    }
}

/// Enters a new time namespace with the configured offsets. The offsets can only be written while
/// the namespace is empty, hence unshare (which affects children only), write, then setns into
/// our own `time_for_children`.
pub fn enter_time_ns(spec: &Spec) -> Result<()> {
    nix::sched::unshare(CloneFlags::from_bits_retain(CLONE_NEWTIME))
        .op("unshare time namespace")?;
    let offsets = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().clone())
        .unwrap_or_default();
    let mut text = String::new();
    for (clock, off) in &offsets {
        text.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    if !text.is_empty() {
        std::fs::write("/proc/self/timens_offsets", text)
            .ctx("write", "/proc/self/timens_offsets")?;
    }
    let fd = std::fs::File::open("/proc/self/ns/time_for_children")
        .ctx("open", "/proc/self/ns/time_for_children")?;
    nix::sched::setns(fd.as_fd(), CloneFlags::from_bits_retain(CLONE_NEWTIME))
        .op("setns time namespace")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ns: &str) -> Spec {
        serde_json::from_str(&format!(
            r#"{{"ociVersion":"1.0.2","linux":{{"namespaces":{ns}}}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn common_case_is_one_clone_and_the_init_unshares_the_rest() {
        let p = plan(&spec(
            r#"[{"type":"pid"},{"type":"network"},{"type":"mount"},{"type":"cgroup"},{"type":"time"},{"type":"user"}]"#,
        ));
        // Since 51952ce only pid and user are cloned; the init unshares the others itself.
        assert_eq!(
            p.clone,
            CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUSER
        );
        assert_eq!(
            p.unshare,
            CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS
        );
        assert!(p.new_cgroup && p.new_time && p.new_user && !p.fork_for_pid);
    }

    #[test]
    fn joined_user_ns_moves_creation_into_the_init() {
        let p = plan(&spec(
            r#"[{"type":"network","path":"/n"},{"type":"pid"},{"type":"user","path":"/u"},{"type":"uts"}]"#,
        ));
        assert!(p.clone.is_empty());
        assert_eq!(p.join[0].0, LinuxNamespaceType::User);
        assert!(p.fork_for_pid);
        assert_eq!(
            p.unshare,
            CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUTS
        );
    }
}
