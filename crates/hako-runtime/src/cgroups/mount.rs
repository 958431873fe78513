//! The container's own view of cgroups: the `cgroup`/`cgroup2` entries of `mounts[]`.

use std::path::{Path, PathBuf};

use hako_spec::oci::Mount;
use nix::mount::MsFlags;

use super::{hierarchies, Hierarchy};
use crate::error::{Context, Result};
use crate::fs::mounts::{MountCtx, Options};
use crate::fs::paths::Kind;

/// This process's cgroup path in `h`, from /proc/self/cgroup.
pub fn own_path(h: &Hierarchy, proc_cgroup: &str) -> PathBuf {
    for c in crate::procinfo::parse_cgroups(proc_cgroup) {
        let matches = if h.v2 {
            c.controllers.is_empty()
        } else {
            let mut a: Vec<_> = c.controllers.iter().map(String::as_str).collect();
            let mut b: Vec<_> = h.controllers.iter().map(String::as_str).collect();
            a.sort();
            b.sort();
            a == b
        };
        if matches {
            return PathBuf::from(c.pathname);
        }
    }
    PathBuf::from("/")
}

/// /proc/self/cgroup as the init read it just before it unshared its cgroup namespace: the host
/// paths of its cgroups, which inside the namespace all read `/`.
static BEFORE_CGROUPNS: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Called by the init right before it unshares its cgroup namespace (see [`BEFORE_CGROUPNS`]).
pub fn remember_host_cgroups() {
    if let Ok(t) = std::fs::read_to_string("/proc/self/cgroup") {
        let _ = BEFORE_CGROUPNS.set(t);
    }
}

/// A `cgroup`/`cgroup2` entry of `mounts[]`. With a private cgroup namespace a fresh mount shows
/// only the namespace's subtree; without one we bind the container's own cgroup directories so the
/// host hierarchy above them is not exposed.
pub fn mount_in_container(ctx: &MountCtx, m: &Mount, opts: &Options) -> Result<()> {
    let dest = m.destination();
    let shown = ctx.root.host_path(dest);
    let info = crate::procinfo::mountinfo()?;
    let own = std::fs::read_to_string("/proc/self/cgroup").ctx("read", "/proc/self/cgroup")?;
    let cgroupns = crate::procinfo::parse_cgroups(&own)
        .iter()
        .all(|c| c.pathname == "/");
    // The host's hierarchies only: a /sys bound from the host (rootless, no private network
    // namespace) brings copies of them under the rootfs, which the tmpfs below covers.
    let rootfs = ctx.root.host_path(Path::new("/"));
    let hs: Vec<Hierarchy> = hierarchies(&info)
        .into_iter()
        .filter(|h| !h.mountpoint.starts_with(&rootfs))
        .collect();
    let flags = opts.flags
        & (MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC
            | MsFlags::MS_RELATIME
            | MsFlags::MS_RDONLY);
    let pure_v2 = hs.len() == 1 && hs[0].v2;
    let mount_at = |target: &Path, h: &Hierarchy| -> Result<()> {
        let shown = ctx.root.host_path(target);
        if cgroupns {
            let fd = ctx.root.ensure(target, Kind::Dir)?;
            let at = crate::sys::fd_path(std::os::fd::AsRawFd::as_raw_fd(&fd));
            let (fstype, data) = if h.v2 {
                ("cgroup2", String::new())
            } else {
                ("cgroup", h.controllers.join(","))
            };
            match nix::mount::mount(
                Some(fstype),
                at.as_str(),
                Some(fstype),
                flags,
                Some(data.as_str()),
            ) {
                Ok(()) => return Ok(()),
                // A user namespace that does not own the cgroup namespace (rootless, whose
                // caller sits at the root of one it does not own) may not mount a fresh
                // instance (EPERM); and a /sys bound from the host (rootless without a network
                // namespace) already has this hierarchy's superblock at the target, where the
                // kernel refuses the same one again (EBUSY). Either way: bind the container's
                // own cgroup instead, as runc does.
                Err(nix::errno::Errno::EPERM | nix::errno::Errno::EBUSY) => {}
                Err(e) => return Err(crate::error::Error::path("mount cgroup", &shown, e)),
            }
        }
        {
            // Inside a cgroup namespace every path reads `/`: the host path is the one read
            // before the unshare, else the bind would show the whole hierarchy.
            let host = if cgroupns {
                BEFORE_CGROUPNS.get().unwrap_or(&own)
            } else {
                &own
            };
            let rel = own_path(h, host);
            let src = h
                .mountpoint
                .join(rel.strip_prefix("/").unwrap_or(Path::new("")));
            let o = Options {
                flags: MsFlags::MS_BIND | MsFlags::MS_REC | flags,
                ..Default::default()
            };
            crate::fs::mounts::bind(ctx, &src, target, &o, &shown)
        }
    };
    if pure_v2 {
        return mount_at(dest, &hs[0]);
    }
    // v1 or hybrid: a tmpfs holding one directory per hierarchy, like the host's /sys/fs/cgroup.
    let fd = ctx.root.ensure(dest, Kind::Dir)?;
    let at = crate::sys::fd_path(std::os::fd::AsRawFd::as_raw_fd(&fd));
    let tmpfs_flags = flags & !MsFlags::MS_RDONLY;
    nix::mount::mount(
        Some("tmpfs"),
        at.as_str(),
        Some("tmpfs"),
        tmpfs_flags,
        Some("mode=755"),
    )
    .ctx("mount cgroup tmpfs", &shown)?;
    for h in &hs {
        let Some(name) = h.mountpoint.file_name() else {
            continue;
        };
        mount_at(&dest.join(name), h)?;
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        let fd = ctx.root.open_path(dest).ctx("reopen", &shown)?;
        let at = crate::sys::fd_path(std::os::fd::AsRawFd::as_raw_fd(&fd));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::tests::HYBRID;

    #[test]
    fn own_paths() {
        let hs = hierarchies(&crate::procinfo::parse_mountinfo(HYBRID));
        let own = "3:cpu:/a/b\n1:name=systemd:/s\n0::/u\n";
        assert_eq!(own_path(&hs[0], own), PathBuf::from("/a/b"));
        assert_eq!(own_path(&hs[1], own), PathBuf::from("/s"));
        assert_eq!(own_path(&hs[2], own), PathBuf::from("/u"));
    }
}
