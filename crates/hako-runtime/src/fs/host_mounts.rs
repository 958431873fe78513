//! A container without a mount namespace gets its `mounts[]` below the rootfs in the host's
//! mount namespace, as runc 1.3 makes them. runc leaves them there; hako takes away exactly what
//! appeared below the rootfs since `create` began, at `delete` and when `create` fails.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::fs::paths::Root;
use crate::procinfo::{self, Mount};

/// The ids of the mounts below (or on) `rootfs` now: those were there before the container.
pub fn before(rootfs: &Path, mounts: &[Mount]) -> Vec<i32> {
    below(rootfs, mounts).map(|(m, _)| m.mnt_id).collect()
}

fn below<'a>(rootfs: &'a Path, mounts: &'a [Mount]) -> impl Iterator<Item = (&'a Mount, PathBuf)> {
    mounts.iter().filter_map(move |m| {
        let p = procinfo::mount_point(m);
        p.starts_with(rootfs).then_some((m, p))
    })
}

/// Unmounts every mount below `rootfs` whose id is not in `before`, the deepest (and, at one
/// place, the latest) first. Each is opened inside the rootfs (symlinks resolved in it, never
/// out of it) and unmounted through its fd only when that fd is on the very mount mountinfo
/// listed: something the container swapped in meanwhile is never followed to the host.
pub fn undo(rootfs: &Path, before: &[i32]) -> Result<()> {
    let rootfs = std::fs::canonicalize(rootfs).unwrap_or_else(|_| rootfs.to_path_buf());
    let now = procinfo::mountinfo()?;
    let mut ours: Vec<(i32, PathBuf)> = below(&rootfs, &now)
        .filter(|(m, p)| !before.contains(&m.mnt_id) && *p != rootfs)
        .map(|(m, p)| (m.mnt_id, p))
        .collect();
    if ours.is_empty() {
        return Ok(());
    }
    ours.reverse();
    ours.sort_by_key(|(_, p)| std::cmp::Reverse(p.components().count()));
    let root = Root::open(&rootfs)?;
    let mut first_err = None;
    for (id, p) in ours {
        let rel = p.strip_prefix(&rootfs).unwrap_or(&p);
        let r = unmount_if(&root, rel, id);
        if let Err(e) = r {
            crate::log::warn(&format!("unmount {}: {e}", p.display()));
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

fn unmount_if(root: &Root, rel: &Path, id: i32) -> Result<()> {
    use crate::error::Context;
    let Ok(fd) = root.open_path(rel) else {
        return Ok(()); // gone with a parent already
    };
    let fdinfo = format!("/proc/self/fdinfo/{}", fd.as_raw_fd());
    let text = std::fs::read_to_string(&fdinfo).unwrap_or_default();
    let on = text
        .lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse::<i32>().ok());
    if on != Some(id) {
        return Ok(()); // not that mount any more (detached with a parent, or a swapped path)
    }
    let magic = format!("/proc/self/fd/{}", fd.as_raw_fd());
    nix::mount::umount2(magic.as_str(), nix::mount::MntFlags::MNT_DETACH)
        .ctx("unmount", root.host_path(rel))
}
