//! Idmapped bind mounts (runtime-spec 1.1 `uidMappings`/`gidMappings` on a mount, 1.2 the `idmap`
//! and `ridmap` options), made by the runtime and attached by the init.
//!
//! MOUNT_ATTR_IDMAP needs CAP_SYS_ADMIN in the user namespace that owns the *source's* superblock
//! (the host's initial one for a host filesystem) and a mount that is still detached. The init,
//! already inside the container's user namespace, has neither over a host filesystem; the runtime
//! (root) has. So, as runc 1.2+ does (`mountFd`), the runtime enters the init's mount namespace
//! (where the bind sources are opened anyway, see [`crate::fs::bind_sources`]), clones each source
//! with `open_tree(OPEN_TREE_CLONE)`, sets the idmap on the clone with `mount_setattr`, and sends
//! the detached mount to the init, which attaches it with `move_mount`. Cloned in the init's
//! namespace, the copy keeps the flags the kernel locked for it.
//!
//! The mapping is a user namespace fd: the container's own (`/proc/<init>/ns/user`) for `idmap`
//! without mappings or for mappings equal to the container's, otherwise one helper namespace per
//! distinct mapping (a forked child that is born in a new user namespace, gets the maps written,
//! and is killed once its namespace is opened: runc and crun do the same).

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use hako_spec::oci::{LinuxIdMapping, LinuxNamespaceType, Mount, Spec};
use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::error::{Context, Error, Result};
use crate::init::idmap::Caller;
use crate::init::namespaces::Plan;
use crate::sys;

const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// Whose ids a mount is mapped with.
#[derive(Debug, Clone, PartialEq)]
pub enum Maps {
    /// `idmap`/`ridmap` without mappings: the container's user namespace.
    Own,
    /// `uidMappings` and `gidMappings` of the mount.
    Given {
        uid: Vec<LinuxIdMapping>,
        gid: Vec<LinuxIdMapping>,
    },
}

/// One idmapped mount of `mounts[]`, as the runtime makes it.
#[derive(Debug, Clone)]
pub struct Wanted {
    /// Its index in `mounts[]`: the init attaches it in place of the bind.
    pub index: usize,
    /// `mounts[i] (destination)`, for errors.
    pub shown: String,
    pub source: PathBuf,
    /// `rbind`: the submounts of the source come along (open_tree AT_RECURSIVE).
    pub rbind: bool,
    /// `ridmap`: the submounts are idmapped too (mount_setattr AT_RECURSIVE); `idmap` and plain
    /// mappings map the top mount only (runc).
    pub recursive: bool,
    pub maps: Maps,
}

fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind")
}

/// The idmapped mounts of `spec`, checked before anything exists: each error names the mount and
/// says why. `euid` is the runtime's.
pub fn plan(spec: &Spec, ns: &Plan, bundle: &Path, euid: u32) -> Result<Vec<Wanted>> {
    let userns = ns.new_user || ns.join.iter().any(|(t, _)| *t == LinuxNamespaceType::User);
    let own = spec.linux().as_ref().map(|l| {
        (
            l.uid_mappings().as_deref().unwrap_or(&[]),
            l.gid_mappings().as_deref().unwrap_or(&[]),
        )
    });
    let mut out = vec![];
    for (index, m) in spec.mounts().iter().flatten().enumerate() {
        let shown = format!("mounts[{index}] ({})", m.destination().display());
        let Some(w) = wanted(m, index, &shown, bundle, own)? else {
            continue;
        };
        if !is_bind(m) {
            return Err(Error::Usage(format!(
                "{shown}: idmapped mounts are only supported for bind mounts (type {:?})",
                m.typ().as_deref().unwrap_or("")
            )));
        }
        if w.maps == Maps::Own && !userns {
            return Err(Error::Usage(format!(
                "{shown}: option {:?} without uidMappings/gidMappings maps ids as the container's \
                 user namespace does, but the container has no user namespace",
                if w.recursive { "ridmap" } else { "idmap" }
            )));
        }
        if euid != 0 {
            return Err(Error::Usage(format!(
                "{shown}: idmapped mounts need a runtime running as root (in its user namespace): \
                 the runtime makes them from the container's mount namespace"
            )));
        }
        if let Maps::Given { uid, gid } = &w.maps {
            within_own_ids(&shown, "uidMappings", uid, "/proc/self/uid_map")?;
            within_own_ids(&shown, "gidMappings", gid, "/proc/self/gid_map")?;
        }
        out.push(w);
    }
    Ok(out)
}

/// The mount's idmap request, if it has one. `own` are the container's mappings (for a podman
/// `idmap=` option that names only one of the two).
fn wanted(
    m: &Mount,
    index: usize,
    shown: &str,
    bundle: &Path,
    own: Option<Own>,
) -> Result<Option<Wanted>> {
    let opts = m.options().as_deref().unwrap_or(&[]);
    // The last of `idmap`/`ridmap` wins, as for every other pair of options.
    let option = opts
        .iter()
        .rev()
        .find(|o| *o == "idmap" || *o == "ridmap")
        .map(|o| o == "ridmap");
    let podman = opts.iter().rev().find_map(|o| o.strip_prefix("idmap="));
    let mut uid = m.uid_mappings().clone().unwrap_or_default();
    let mut gid = m.gid_mappings().clone().unwrap_or_default();
    let listed = m.uid_mappings().is_some() || m.gid_mappings().is_some();
    if option.is_none() && !listed && podman.is_none() {
        return Ok(None);
    }
    if let Some(spec) = podman.filter(|_| !listed) {
        (uid, gid) = podman_option(spec, shown, own)?;
    }
    let maps = match (uid.is_empty(), gid.is_empty()) {
        (true, true) if option.is_some() || podman.is_some() => Maps::Own,
        (false, false) => Maps::Given { uid, gid },
        _ => {
            return Err(Error::Usage(format!(
                "{shown}: an idmapped mount needs both uidMappings and gidMappings (or neither, \
                 with option \"idmap\", for the container's own)"
            )))
        }
    };
    let src = m.source().clone().unwrap_or_default();
    let rbind = crate::fs::mounts::parse_options(opts)
        .flags
        .contains(MsFlags::MS_REC);
    Ok(Some(Wanted {
        index,
        shown: shown.to_string(),
        source: if src.is_absolute() {
            src
        } else {
            bundle.join(src)
        },
        rbind,
        recursive: option == Some(true),
        maps,
    }))
}

/// The container's uid and gid mappings.
type Own<'a> = (&'a [LinuxIdMapping], &'a [LinuxIdMapping]);

/// podman's (and crun's) `idmap=uids=FS-HOST-SIZE#…;gids=FS-HOST-SIZE#…` mount option, which podman
/// 4.3 passes through for `-v SRC:DST:idmap=…`: the first id of each triplet is the filesystem's
/// (the mapping's container side), the second the host's. A list left out is the container's own.
fn podman_option(
    spec: &str,
    shown: &str,
    own: Option<Own>,
) -> Result<(Vec<LinuxIdMapping>, Vec<LinuxIdMapping>)> {
    let bad = |why: &str| {
        Error::Usage(format!(
            "{shown}: mount option \"idmap={spec}\": {why} (expected uids=FS-HOST-SIZE#...;gids=FS-HOST-SIZE#...)"
        ))
    };
    let (mut uid, mut gid) = (None, None);
    for part in spec.split(';').filter(|p| !p.is_empty()) {
        let (which, list) = match part.split_once('=') {
            Some(("uids", l)) => (&mut uid, l),
            Some(("gids", l)) => (&mut gid, l),
            _ => return Err(bad(&format!("unknown part {part:?}"))),
        };
        let maps = list
            .split('#')
            .map(|t| {
                let v: Vec<u32> = t.split('-').filter_map(|x| x.parse().ok()).collect();
                match v[..] {
                    [c, h, n] if n > 0 => serde_json::from_value(serde_json::json!(
                        {"containerID": c, "hostID": h, "size": n}
                    ))
                    .map_err(|e| bad(&e.to_string())),
                    _ => Err(bad(&format!("{t:?} is not FS-HOST-SIZE"))),
                }
            })
            .collect::<Result<Vec<LinuxIdMapping>>>()?;
        *which = Some(maps);
    }
    let (own_uid, own_gid) = own.unwrap_or((&[], &[]));
    Ok((
        uid.unwrap_or_else(|| own_uid.to_vec()),
        gid.unwrap_or_else(|| own_gid.to_vec()),
    ))
}

/// A runtime that is root only inside a user namespace (rootless podman runs it so) can write a
/// helper namespace's maps only with ids its own namespace has: say which ones it lacks before
/// anything exists, not with the kernel's EPERM on uid_map later. In the initial namespace every
/// id is there and nothing is checked.
fn within_own_ids(shown: &str, field: &str, maps: &[LinuxIdMapping], own: &str) -> Result<()> {
    let text = std::fs::read_to_string(own).ctx("read", own)?;
    let ranges: Vec<(u64, u64)> = text
        .lines()
        .filter_map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (v.len() == 3).then(|| (v[0], v[0] + v[2]))
        })
        .collect();
    for m in maps {
        let (lo, hi) = (m.host_id() as u64, m.host_id() as u64 + m.size() as u64);
        if !ranges.iter().any(|(a, b)| *a <= lo && hi <= *b) {
            return Err(Error::Usage(format!(
                "{shown}.{field}: host ids {lo}-{} are not mapped in the runtime's user namespace \
                 ({own}): a rootless runtime can only idmap to ids it has",
                hi.saturating_sub(1)
            )));
        }
    }
    Ok(())
}

/// The user namespace fds of the mappings asked for, one per distinct mapping.
pub struct Userns {
    own: Option<OwnedFd>,
    given: HashMap<String, OwnedFd>,
}

fn key(uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> String {
    let one = |v: &[LinuxIdMapping]| {
        let mut s: Vec<String> = v
            .iter()
            .map(|m| format!("{}:{}:{}", m.container_id(), m.host_id(), m.size()))
            .collect();
        // The kernel does not care about the order of the lines: neither do we.
        s.sort();
        s.join(",")
    };
    format!("uid={};gid={}", one(uid), one(gid))
}

impl Userns {
    /// Opens (and creates, for mappings other than the container's) the namespaces `wanted`
    /// needs. `init` is the container init, whose user namespace exists with its maps written
    /// when it has one (`own_maps`: the container's uid and gid mappings).
    pub fn prepare(
        wanted: &[Wanted],
        init: i32,
        own_maps: Option<(&[LinuxIdMapping], &[LinuxIdMapping])>,
        caller: Option<Caller>,
    ) -> Result<Userns> {
        let init_ns = || {
            let p = format!("/proc/{init}/ns/user");
            std::fs::File::open(&p).map(OwnedFd::from).ctx("open", p)
        };
        let mut u = Userns {
            own: None,
            given: HashMap::new(),
        };
        let own_key = own_maps.map(|(uid, gid)| key(uid, gid));
        for w in wanted {
            match &w.maps {
                // Mappings equal to the container's share its namespace: no helper.
                Maps::Given { uid, gid } if Some(key(uid, gid)) != own_key => {
                    if let std::collections::hash_map::Entry::Vacant(e) =
                        u.given.entry(key(uid, gid))
                    {
                        let fd = helper(uid, gid, caller)
                            .map_err(|e| Error::Usage(format!("{}: {e}", w.shown)))?;
                        e.insert(fd);
                    }
                }
                _ => {
                    if u.own.is_none() {
                        u.own = Some(init_ns()?);
                    }
                }
            }
        }
        Ok(u)
    }

    fn get(&self, maps: &Maps) -> BorrowedFd<'_> {
        let fd = match maps {
            Maps::Given { uid, gid } => self.given.get(&key(uid, gid)),
            Maps::Own => None,
        };
        fd.or(self.own.as_ref())
            .expect("prepared for every mount")
            .as_fd()
    }
}

/// Kills and reaps the helper whatever happens: its namespace lives on through the opened fd.
struct Helper(i32);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(Pid::from_raw(self.0), Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(Pid::from_raw(self.0), None);
    }
}

/// A new user namespace with `uid`/`gid` as its maps: a child born in it (clone3 CLONE_NEWUSER)
/// that only waits, its maps written like the container's, its namespace opened, the child killed.
fn helper(
    uid: &[LinuxIdMapping],
    gid: &[LinuxIdMapping],
    caller: Option<Caller>,
) -> Result<OwnedFd> {
    let runtime = std::process::id() as i32;
    // SAFETY: the runtime is single-threaded, and the child only arms its parent-death signal and
    // sleeps until it is killed; it never returns into the runtime's code.
    let forked = unsafe { sys::clone3(libc::CLONE_NEWUSER as u64, None) }
        .op("clone the id-mapping helper")?;
    let pid = match forked {
        sys::Forked::Child => {
            if !sys::parent_death_signal(Some(libc::SIGKILL), runtime) {
                // SAFETY: leaves without running the runtime's destructors.
                unsafe { libc::_exit(1) }
            }
            loop {
                // SAFETY: pause has no arguments; the loop ends only with SIGKILL.
                unsafe { libc::pause() };
            }
        }
        sys::Forked::Parent { pid } => pid,
    };
    let _reap = Helper(pid);
    crate::log::debug(&format!(
        "idmapped mounts: helper user namespace (pid {pid}) for {}",
        key(uid, gid)
    ));
    crate::init::idmap::write(pid, uid, gid, caller)?;
    let p = format!("/proc/{pid}/ns/user");
    std::fs::File::open(&p).map(OwnedFd::from).ctx("open", p)
}

/// In the init's mount namespace: the detached, idmapped clone of each wanted source, in order.
pub fn make_all(wanted: &[Wanted], userns: &Userns) -> Result<Vec<OwnedFd>> {
    wanted
        .iter()
        .map(|w| make(w, userns.get(&w.maps)))
        .collect()
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn setattr(fd: &OwnedFd, attr: &MountAttr, recursive: bool) -> std::result::Result<(), Errno> {
    let flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: `attr` is a live mount_attr of the size passed and the path the static empty string.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(r).map(drop)
}

fn make(w: &Wanted, userns: BorrowedFd) -> Result<OwnedFd> {
    let mut flags = sys::OPEN_TREE_CLONE;
    if w.rbind {
        flags |= sys::AT_RECURSIVE;
    }
    let tree = sys::open_tree(libc::AT_FDCWD, &w.source, flags)
        .map_err(|e| failed(w, "open_tree(OPEN_TREE_CLONE)", e))?;
    // The clone is a peer of its source, which may be shared with the host (the init has not made
    // its mounts slave yet): slave first, so nothing mounted below it inside the container
    // propagates out (crun's issue 2097).
    let slave = MountAttr {
        attr_set: 0,
        attr_clr: 0,
        propagation: libc::MS_SLAVE,
        userns_fd: 0,
    };
    setattr(&tree, &slave, true).map_err(|e| failed(w, "make slave", e))?;
    let idmap = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    setattr(&tree, &idmap, w.recursive).map_err(|e| explain(w, &tree, e))?;
    Ok(tree)
}

fn failed(w: &Wanted, op: &str, e: Errno) -> Error {
    Error::Usage(format!(
        "{}: {op} {}: {}",
        w.shown,
        w.source.display(),
        crate::error::errno_text(e)
    ))
}

/// mount_setattr(MOUNT_ATTR_IDMAP) refusals in words: EINVAL is a filesystem without idmap
/// support (FS_ALLOW_IDMAP) on this kernel, EPERM a filesystem owned by a user namespace the
/// runtime has no CAP_SYS_ADMIN in, or a source that is itself idmapped.
fn explain(w: &Wanted, tree: &OwnedFd, e: Errno) -> Error {
    let fs = nix::sys::statfs::fstatfs(tree)
        .map(|s| fs_name(s.filesystem_type().0))
        .unwrap_or_else(|_| "?".into());
    let why = match e {
        Errno::EINVAL => format!("filesystem {fs} does not support idmapped mounts on this kernel"),
        Errno::EPERM => format!(
            "not permitted: the source is already idmapped, or its filesystem ({fs}) belongs to \
             a user namespace the runtime has no CAP_SYS_ADMIN in (a rootless runtime can idmap \
             only filesystems mounted in its own user namespace)"
        ),
        e => crate::error::errno_text(e),
    };
    Error::Usage(format!(
        "{}: idmapped mount of {}: {why}",
        w.shown,
        w.source.display()
    ))
}

fn fs_name(magic: i64) -> String {
    let known: &[(i64, &str)] = &[
        (0xEF53, "ext4"),
        (0x0102_1994, "tmpfs"),
        (0x858458f6, "ramfs"),
        (0x794c_7630, "overlay"),
        (0x5846_5342, "xfs"),
        (0x9123_683e, "btrfs"),
        (0x6969, "nfs"),
        (0x6573_5546, "fuse"),
        (0x6265_6572, "sysfs"),
        (0x9fa0, "proc"),
        (0x0102_1997, "9p"),
    ];
    known
        .iter()
        .find(|(m, _)| *m == magic)
        .map_or_else(|| format!("0x{magic:x}"), |(_, n)| (*n).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(mounts: serde_json::Value, userns: bool) -> (Spec, Plan) {
        let mut ns = vec![serde_json::json!({"type": "mount"})];
        if userns {
            ns.push(serde_json::json!({"type": "user"}));
        }
        let s: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.2.0",
            "root": {"path": "rootfs"},
            "mounts": mounts,
            "linux": {"namespaces": ns,
                "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
                "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}
        }))
        .unwrap();
        let p = crate::init::namespaces::plan(&s);
        (s, p)
    }

    fn err(r: Result<Vec<Wanted>>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn options_and_mappings() {
        let (s, p) = spec(
            serde_json::json!([
                {"destination": "/a", "type": "bind", "source": "/x", "options": ["rbind", "idmap"]},
                {"destination": "/b", "source": "rel", "options": ["rbind", "ridmap"]},
                {"destination": "/c", "source": "/x", "options": ["bind"],
                 "uidMappings": [{"containerID": 0, "hostID": 1, "size": 2}],
                 "gidMappings": [{"containerID": 0, "hostID": 1, "size": 2}]},
                {"destination": "/d", "source": "/x", "options": ["bind"]}
            ]),
            true,
        );
        let w = plan(&s, &p, Path::new("/bundle"), 0).unwrap();
        assert_eq!(w.len(), 3);
        assert_eq!((w[0].index, w[0].rbind, w[0].recursive), (0, true, false));
        assert_eq!(w[0].maps, Maps::Own);
        assert_eq!(w[1].source, Path::new("/bundle/rel"));
        assert!(w[1].recursive);
        assert!(matches!(w[2].maps, Maps::Given { .. }));
        assert!(!w[2].rbind && !w[2].recursive);
    }

    #[test]
    fn refusals_name_the_mount() {
        let (s, p) = spec(
            serde_json::json!([{"destination": "/t", "type": "tmpfs", "source": "tmpfs",
                                "options": ["idmap"]}]),
            true,
        );
        let e = err(plan(&s, &p, Path::new("/b"), 0));
        assert!(
            e.contains("mounts[0] (/t)") && e.contains("only supported for bind"),
            "{e}"
        );
        let (s, p) = spec(
            serde_json::json!([{"destination": "/a", "source": "/x", "options": ["bind", "idmap"]}]),
            false,
        );
        let e = err(plan(&s, &p, Path::new("/b"), 0));
        assert!(e.contains("no user namespace"), "{e}");
        let (s, p) = spec(
            serde_json::json!([{"destination": "/a", "source": "/x", "options": ["bind"],
                 "uidMappings": [{"containerID": 0, "hostID": 1, "size": 2}]}]),
            true,
        );
        let e = err(plan(&s, &p, Path::new("/b"), 0));
        assert!(e.contains("both uidMappings and gidMappings"), "{e}");
        let (s, p) = spec(
            serde_json::json!([{"destination": "/a", "source": "/x", "options": ["bind", "idmap"]}]),
            true,
        );
        let e = err(plan(&s, &p, Path::new("/b"), 1000));
        assert!(e.contains("root"), "{e}");
    }

    #[test]
    fn podman_idmap_option() {
        let (s, p) = spec(
            serde_json::json!([
                {"destination": "/a", "source": "/x",
                 "options": ["idmap=uids=0-1-10#10-11-10;gids=0-100-10", "rw", "rbind"]},
                {"destination": "/b", "source": "/x", "options": ["idmap=gids=5-6-7", "rbind"]}
            ]),
            true,
        );
        let w = plan(&s, &p, Path::new("/b"), 0).unwrap();
        let Maps::Given { uid, gid } = &w[0].maps else {
            panic!("{w:?}")
        };
        assert_eq!(
            (uid.len(), uid[1].container_id(), uid[1].host_id()),
            (2, 10, 11)
        );
        assert_eq!(
            (gid[0].container_id(), gid[0].host_id(), gid[0].size()),
            (0, 100, 10)
        );
        assert!(w[0].rbind && !w[0].recursive);
        // uids left out: the container's own.
        let Maps::Given { uid, gid } = &w[1].maps else {
            panic!("{w:?}")
        };
        assert_eq!((uid[0].host_id(), uid[0].size()), (100000, 65536));
        assert_eq!(gid[0].host_id(), 6);
        let (s, p) = spec(
            serde_json::json!([{"destination": "/a", "source": "/x",
                                "options": ["idmap=uids=0-1", "bind"]}]),
            true,
        );
        let e = err(plan(&s, &p, Path::new("/b"), 0));
        assert!(
            e.contains("(/a)") && e.contains("\"0-1\" is not FS-HOST-SIZE"),
            "{e}"
        );
    }

    #[test]
    fn mapping_key_ignores_order() {
        let m = |c, h, s| -> LinuxIdMapping {
            serde_json::from_value(serde_json::json!({"containerID": c, "hostID": h, "size": s}))
                .unwrap()
        };
        let a = [m(0, 1, 1), m(1, 5, 1)];
        let b = [m(1, 5, 1), m(0, 1, 1)];
        assert_eq!(key(&a, &a), key(&b, &b));
        assert_ne!(key(&a, &a), key(&a, &b[..1]));
    }
}
