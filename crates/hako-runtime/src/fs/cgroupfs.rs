//! The container's own view of cgroups: the `cgroup`/`cgroup2` entries of `mounts[]` (the
//! cgroupfs mounted, or the host's hierarchies bound, inside the new root).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use hako_spec::oci::Mount;
use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sys::stat::Mode;

use super::mounts::{MountCtx, Options};
use crate::cgroups::{hierarchies, own_path, Hierarchy};
use crate::error::{Context, Error, Result};

/// /proc/self/cgroup as the init read it just before it unshared its cgroup namespace: the host
/// paths of its cgroups, which inside the namespace all read `/`.
static BEFORE_CGROUPNS: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Called by the init right before it unshares its cgroup namespace (see `BEFORE_CGROUPNS`).
pub fn remember_host_cgroups() {
    if let Ok(t) = crate::procinfo::read("/proc/self/cgroup") {
        let _ = BEFORE_CGROUPNS.set(t);
    }
}

/// A `cgroup`/`cgroup2` entry of `mounts[]`. With a private cgroup namespace a fresh mount shows
/// only the namespace's subtree; without one we bind the container's own cgroup directories so the
/// host hierarchy above them is not exposed.
///
/// On v1 and the hybrid every hierarchy goes into one tmpfs made with fsopen/fsmount: its mount
/// points are made with `mkdirat` on the fd of that fresh tmpfs (nothing else can reach it
/// before it is attached, and nothing of the image is in it), and each hierarchy is attached
/// there by name: no path inside the rootfs is resolved again per hierarchy.
///
/// `target` is the destination, resolved (and made if missing) inside the rootfs.
pub fn mount_in_container(
    ctx: &MountCtx,
    m: &Mount,
    opts: &Options,
    target: OwnedFd,
) -> Result<()> {
    let dest = m.destination();
    let shown = ctx.root.host_path(dest);
    // Read here, not taken from the runtime: the init's view differs from the runtime's. The
    // runtime has just moved us into the container's cgroups, and with a cgroup namespace of our
    // own every path reads as `/`.
    let own = crate::procinfo::read("/proc/self/cgroup").ctx("read", "/proc/self/cgroup")?;
    let cgroupns = crate::procinfo::parse_cgroups(&own)
        .iter()
        .all(|c| c.pathname == "/");
    // The host's hierarchies only: a /sys bound from the host (rootless, no private network
    // namespace) brings copies of them under the rootfs, which the tmpfs below covers.
    let rootfs = ctx.root.host_path(Path::new("/"));
    let mut hs: Vec<Hierarchy> = hierarchies(ctx.host_mounts)
        .into_iter()
        .filter(|h| !h.mountpoint.starts_with(&rootfs))
        .collect();
    // The hybrid's cgroup2 hierarchy (/sys/fs/cgroup/unified) stays out, as runc 1.1 and 1.3
    // leave it out: a container sees the v1 controllers, and CRIU images of it map onto runc's.
    if hs.iter().any(|h| !h.v2) {
        hs.retain(|h| !h.v2);
    }
    let flags = opts.flags
        & (MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC
            | MsFlags::MS_RELATIME
            | MsFlags::MS_RDONLY);
    let one = One {
        ctx,
        own: &own,
        cgroupns,
        flags,
    };
    if hs.len() == 1 && hs[0].v2 {
        return one.mount(&target, None, &hs[0], &shown);
    }
    // v1 or hybrid: a tmpfs holding one directory per hierarchy, like the host's /sys/fs/cgroup.
    let tmpfs_flags = flags & !MsFlags::MS_RDONLY;
    let tmpfs = crate::sys::fs_mount(
        "tmpfs",
        "tmpfs",
        &[("mode", "755")],
        crate::fs::mounts::attrs_of(tmpfs_flags),
    )
    .ctx("mount cgroup tmpfs", &shown)?;
    crate::sys::move_mount_fd(&tmpfs, target.as_raw_fd()).ctx("mount cgroup tmpfs", &shown)?;
    for h in &hs {
        let Some(name) = h.mountpoint.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let shown = shown.join(name);
        match nix::sys::stat::mkdirat(&tmpfs, name, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(Error::path("create mount point", &shown, e)),
        }
        one.mount(&tmpfs, Some(name), h, &shown)?;
    }
    co_mounted_links(&tmpfs, &hs, &shown)?;
    if flags.contains(MsFlags::MS_RDONLY) {
        // A remount of the superblock too (mountinfo shows `tmpfs ro`), through the fd of the
        // mount's root: mount_setattr alone would leave the superblock writable.
        let at = crate::sys::fd_path(tmpfs.as_raw_fd());
        nix::mount::mount(
            None::<&str>,
            at.as_str(),
            None::<&str>,
            MsFlags::MS_REMOUNT | tmpfs_flags | MsFlags::MS_RDONLY,
            Some("mode=755"),
        )
        .ctx("remount cgroup tmpfs read-only", &shown)?;
    }
    Ok(())
}

/// A hierarchy of several controllers (`cpu,cpuacct`, as systemd mounts them on v1 hosts) is
/// also reachable inside by each controller's name, as on the host and as runc makes it:
/// `cpu -> cpu,cpuacct`. A name that is already taken stays what it is.
fn co_mounted_links(tmpfs: &OwnedFd, hs: &[Hierarchy], shown: &Path) -> Result<()> {
    for h in hs {
        let Some(name) = h.mountpoint.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        for part in name.split(',').filter(|p| !p.is_empty() && *p != name) {
            match nix::unistd::symlinkat(name, tmpfs, part) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(Error::path("create symlink", shown.join(part), e)),
            }
        }
    }
    Ok(())
}

/// What every hierarchy of one `mounts[]` entry shares.
struct One<'a> {
    ctx: &'a MountCtx<'a>,
    /// /proc/self/cgroup as the init sees it.
    own: &'a str,
    cgroupns: bool,
    /// ro, nosuid, nodev, noexec, relatime of the entry's options.
    flags: MsFlags,
}

impl One<'_> {
    /// Hierarchy `h` on entry `name` of directory `dir` (a fresh tmpfs's root), or on `dir`
    /// itself when `name` is None (pure v2: the destination, resolved inside the rootfs).
    fn mount(&self, dir: &OwnedFd, name: Option<&str>, h: &Hierarchy, shown: &Path) -> Result<()> {
        if self.cgroupns && self.mount_fresh(dir, name, h, shown)? {
            return Ok(());
        }
        self.bind_own(dir, name, h, shown)
    }

    /// A fresh instance of the hierarchy, rooted at the container's cgroup namespace; false when
    /// the kernel refuses one where runc binds the container's own cgroup instead.
    fn mount_fresh(
        &self,
        dir: &OwnedFd,
        name: Option<&str>,
        h: &Hierarchy,
        shown: &Path,
    ) -> Result<bool> {
        let mut at = crate::sys::fd_path(dir.as_raw_fd());
        if let Some(n) = name {
            at = format!("{at}/{n}");
        }
        let (fstype, data) = if h.v2 {
            ("cgroup2", String::new())
        } else {
            ("cgroup", h.controllers.join(","))
        };
        match nix::mount::mount(
            Some(fstype),
            at.as_str(),
            Some(fstype),
            self.flags,
            Some(data.as_str()),
        ) {
            Ok(()) => Ok(true),
            // A user namespace that does not own the cgroup namespace (rootless, whose caller
            // sits at the root of one it does not own) may not mount a fresh instance (EPERM);
            // and a /sys bound from the host (rootless without a network namespace) already has
            // this hierarchy's superblock at the target, where the kernel refuses the same one
            // again (EBUSY). Either way: bind the container's own cgroup instead, as runc does.
            Err(Errno::EPERM | Errno::EBUSY) => Ok(false),
            Err(e) => Err(Error::path("mount cgroup", shown, e)),
        }
    }

    /// The container's own cgroup directory, bound.
    fn bind_own(
        &self,
        dir: &OwnedFd,
        name: Option<&str>,
        h: &Hierarchy,
        shown: &Path,
    ) -> Result<()> {
        // The container's own cgroup directory, cloned (recursively, as an rbind) into a
        // detached mount, given its flags there and attached: one lookup of the source, none of
        // the target. mount_setattr only adds attributes, so whatever a user namespace locked
        // stays; the access time mode becomes relatime, as the bind remount it replaces made it,
        // unless the host's mount is noatime.
        // Inside a cgroup namespace every path reads `/`: the host path is the one read before
        // the unshare, else the bind would show the whole hierarchy.
        let host = if self.cgroupns {
            BEFORE_CGROUPNS.get().map_or(self.own, String::as_str)
        } else {
            self.own
        };
        let rel = own_path(h, host);
        let src = h
            .mountpoint
            .join(rel.strip_prefix("/").unwrap_or(Path::new("")));
        let tree = crate::sys::open_tree(
            libc::AT_FDCWD,
            &src,
            crate::sys::OPEN_TREE_CLONE | crate::sys::AT_RECURSIVE,
        )
        .ctx("bind mount", shown)?;
        let noatime = self
            .ctx
            .host_mounts
            .iter()
            .find(|m| crate::procinfo::mount_point(m) == h.mountpoint)
            .is_some_and(|m| m.mount_options.contains_key("noatime"));
        let clr = if noatime {
            0
        } else {
            crate::fs::mounts::MOUNT_ATTR__ATIME
        };
        let set = crate::fs::mounts::attrs_of(self.flags)
            | if noatime {
                0
            } else {
                crate::fs::mounts::MOUNT_ATTR_RELATIME
            };
        // Without options the bind keeps the source's flags as they are.
        let mut remount = false;
        if !self.flags.is_empty() {
            match crate::fs::mounts::setattr(&tree, set, clr, false) {
                Ok(()) => {}
                // A kernel before 5.12 has no mount_setattr: the bind remount, once attached.
                Err(Errno::ENOSYS) => remount = true,
                Err(e) => return Err(Error::path("remount bind", shown, e)),
            }
        }
        match name {
            Some(n) => crate::sys::move_mount_at(&tree, dir.as_raw_fd(), n),
            None => crate::sys::move_mount_fd(&tree, dir.as_raw_fd()),
        }
        .ctx("bind mount", shown)?;
        if remount {
            // `tree` is the attached mount now; its flags plus ours, as a user namespace locked
            // them.
            let flags = crate::fs::mounts::locked_flags(&tree) | self.flags;
            crate::fs::mounts::remount_bind(&tree, flags).ctx("remount bind", shown)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// runc's links for co-mounted controllers, made on a directory fd as on the container's
    /// cgroup tmpfs. (A real co-mount cannot be made for a test on a host that mounts every
    /// controller apart without changing every process's /proc/self/cgroup for seconds.)
    #[test]
    fn co_mounted_hierarchies_are_linked_by_each_controller() {
        let dir = std::env::temp_dir().join(format!("hako-links-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        let h = |name: &str| Hierarchy {
            mountpoint: Path::new("/sys/fs/cgroup").join(name),
            controllers: name.split(',').map(String::from).collect(),
            v2: false,
        };
        let hs = [
            h("cpu,cpuacct"),
            h("memory"),
            h("systemd"),
            h("net_cls,net_prio"),
        ];
        for name in [
            "cpu,cpuacct",
            "memory",
            "systemd",
            "net_cls,net_prio",
            "net_prio",
        ] {
            std::fs::create_dir(dir.join(name)).unwrap();
        }
        let fd: OwnedFd = std::fs::File::open(&dir).unwrap().into();
        co_mounted_links(&fd, &hs, Path::new("/sys/fs/cgroup")).unwrap();
        let link = |n: &str| std::fs::read_link(dir.join(n)).ok();
        assert_eq!(link("cpu"), Some(PathBuf::from("cpu,cpuacct")));
        assert_eq!(link("cpuacct"), Some(PathBuf::from("cpu,cpuacct")));
        assert_eq!(link("net_cls"), Some(PathBuf::from("net_cls,net_prio")));
        // A name already there (a hierarchy of its own) is left alone, as runc leaves it.
        assert_eq!(link("net_prio"), None);
        assert!(dir.join("net_prio").is_dir());
        assert_eq!(link("memory"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
