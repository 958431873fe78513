//! cgroups. This scope is only what every container needs without resource limits: reading
//! the host layout (v1, v2, hybrid) from mountinfo and giving the container its /sys/fs/cgroup.
//! Placement and limits plug in behind a manager (one driver per layout) in the cgroups issue.

use std::path::{Path, PathBuf};

use hako_spec::oci::Mount;
use nix::mount::MsFlags;

use crate::error::{Context, Result};
use crate::mounts::{MountCtx, Options};
use crate::paths::Kind;

/// One mounted cgroup hierarchy of the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Hierarchy {
    pub mountpoint: PathBuf,
    /// v1 controllers from the super options (`["cpu"]`, `["name=systemd"]`); empty for cgroup2.
    pub controllers: Vec<String>,
    pub v2: bool,
}

/// What is mounted on this host, from /proc/self/mountinfo (never guessed from paths).
pub fn hierarchies(mountinfo: &str) -> Vec<Hierarchy> {
    const V1_OPTS: &[&str] = &[
        "rw",
        "ro",
        "nosuid",
        "nodev",
        "noexec",
        "relatime",
        "noatime",
        "clone_children",
        "xattr",
    ];
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post = post.split(' ');
        let fstype = post.next().unwrap_or("");
        let _src = post.next();
        let sopts = post.next().unwrap_or("");
        let Some(mp) = pre.split(' ').nth(4) else {
            continue;
        };
        let mountpoint = PathBuf::from(crate::rootfs::unescape(mp));
        match fstype {
            "cgroup2" => out.push(Hierarchy {
                mountpoint,
                controllers: vec![],
                v2: true,
            }),
            "cgroup" => out.push(Hierarchy {
                mountpoint,
                controllers: sopts
                    .split(',')
                    .filter(|o| !V1_OPTS.contains(o) && !o.starts_with("release_agent="))
                    .map(str::to_string)
                    .collect(),
                v2: false,
            }),
            _ => {}
        }
    }
    out
}

/// This process's cgroup path in `h`, from /proc/self/cgroup.
fn own_path(h: &Hierarchy, proc_cgroup: &str) -> PathBuf {
    for line in proc_cgroup.lines() {
        let mut it = line.splitn(3, ':');
        let (_, ctrls, path) = (it.next(), it.next().unwrap_or(""), it.next().unwrap_or("/"));
        let matches = if h.v2 {
            ctrls.is_empty()
        } else {
            let mut a: Vec<_> = ctrls.split(',').collect();
            let mut b: Vec<_> = h.controllers.iter().map(String::as_str).collect();
            a.sort();
            b.sort();
            a == b
        };
        if matches {
            return PathBuf::from(path);
        }
    }
    PathBuf::from("/")
}

/// A `cgroup`/`cgroup2` entry of `mounts[]`. With a private cgroup namespace a fresh mount shows
/// only the namespace's subtree; without one we bind the container's own cgroup directories so the
/// host hierarchy above them is not exposed.
pub fn mount_in_container(ctx: &MountCtx, m: &Mount, opts: &Options) -> Result<()> {
    let dest = m.destination();
    let shown = ctx.root.host_path(dest);
    let info =
        std::fs::read_to_string("/proc/self/mountinfo").ctx("read", "/proc/self/mountinfo")?;
    let own = std::fs::read_to_string("/proc/self/cgroup").ctx("read", "/proc/self/cgroup")?;
    let cgroupns = own.lines().all(|l| l.ends_with(":/"));
    let hs = hierarchies(&info);
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
            nix::mount::mount(
                Some(fstype),
                at.as_str(),
                Some(fstype),
                flags,
                Some(data.as_str()),
            )
            .ctx("mount cgroup", &shown)
        } else {
            let rel = own_path(h, &own);
            let src = h
                .mountpoint
                .join(rel.strip_prefix("/").unwrap_or(Path::new("")));
            let o = Options {
                flags: MsFlags::MS_BIND | MsFlags::MS_REC | flags,
                ..Default::default()
            };
            crate::mounts::bind(ctx, &src, target, &o, &shown)
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

    const HYBRID: &str = "\
30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
33 30 0:29 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw";

    #[test]
    fn reads_hybrid_layout() {
        let hs = hierarchies(HYBRID);
        assert_eq!(hs.len(), 3);
        assert_eq!(hs[0].controllers, vec!["cpu"]);
        assert_eq!(hs[1].controllers, vec!["name=systemd"]);
        assert!(hs[2].v2);
        let own = "3:cpu:/a/b\n1:name=systemd:/s\n0::/u\n";
        assert_eq!(own_path(&hs[0], own), PathBuf::from("/a/b"));
        assert_eq!(own_path(&hs[1], own), PathBuf::from("/s"));
        assert_eq!(own_path(&hs[2], own), PathBuf::from("/u"));
    }
}
