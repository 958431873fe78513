//! The container's filesystem view, built in its new mount namespace before pivot_root:
//! propagation, the rootfs bind, `mounts[]` in order, /dev, masked and read-only paths. All of it
//! happens while this process's /proc is still the host's (verified) procfs, so the fd-based
//! mount targets (/proc/self/fd/N) cannot be redirected by anything in the image.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use hako_spec::oci::Spec;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{fstat, Mode, SFlag};

use crate::error::{Context, Error, Result};
use crate::fs::devices;
use crate::fs::mounts::{self, MountCtx};
use crate::fs::paths::Root;
use crate::sys;

/// Refuses to go on unless /proc is a real procfs: every fd-path mount relies on it.
pub fn verify_host_proc() -> Result<()> {
    let st = nix::sys::statfs::statfs("/proc").ctx("statfs", "/proc")?;
    if st.filesystem_type().0 as i64 != crate::sys::PROC_SUPER_MAGIC {
        return Err(Error::path("verify procfs", "/proc", Errno::EXDEV));
    }
    Ok(())
}

/// Step 1: make the whole tree slave (or the configured propagation) so nothing the container
/// mounts propagates back to the host, then make the rootfs's parent mount private, which
/// pivot_root requires.
pub fn prepare(
    rootfs: &Path,
    propagation: Option<&str>,
    mounts: &[crate::procinfo::Mount],
) -> Result<()> {
    let flag = propagation
        .filter(|p| !p.is_empty())
        .and_then(mounts::propagation_flag)
        .unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        flag | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx("make / propagation", "/")?;
    if let Some(parent) = parent_mount(rootfs, mounts) {
        // Only needed when the parent is shared (rshared root propagation); harmless otherwise.
        mount(
            None::<&str>,
            parent.as_str(),
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .ctx("make rootfs parent private", parent.as_str())?;
    }
    let r = rootfs.to_string_lossy();
    mount(
        Some(r.as_ref()),
        r.as_ref(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx("bind rootfs", rootfs)?;
    Ok(())
}

/// The mount point (of `mounts`, this namespace's mountinfo) that contains `path`.
fn parent_mount(path: &Path, mounts: &[crate::procinfo::Mount]) -> Option<String> {
    mounts
        .iter()
        .map(|m| {
            crate::procinfo::mount_point(m)
                .to_string_lossy()
                .into_owned()
        })
        .filter(|mp| path.starts_with(mp))
        .max_by_key(|mp| mp.len())
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Step 2: `mounts[]` in order, then /dev content unless /dev is bound from the host.
/// `before_cgroup` runs once before the first cgroup mount: the init must be in its cgroups (and
/// its cgroup namespace) by then, and nothing before that needs them.
pub fn mount_all(
    spec: &Spec,
    root: &Root,
    bundle: &Path,
    in_userns: bool,
    bind_fds: &crate::fs::bind_sources::Opened,
    host_mounts: &[crate::procinfo::Mount],
    before_cgroup: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    let ctx = MountCtx {
        root,
        bundle,
        in_userns,
        bind_fds,
        host_mounts,
    };
    let spec_mounts = spec.mounts().as_deref().unwrap_or(&[]);
    for (i, m) in spec_mounts.iter().enumerate() {
        if matches!(m.typ().as_deref(), Some("cgroup" | "cgroup2")) {
            before_cgroup()?;
        }
        mounts::mount_one(&ctx, i, m)?;
    }
    let dev_from_host = spec_mounts.iter().any(|m| {
        crate::fs::paths::clean(m.destination()) == Path::new("dev")
            && (m.typ().as_deref() == Some("bind")
                || m.options()
                    .iter()
                    .flatten()
                    .any(|o| o == "bind" || o == "rbind"))
    });
    if !dev_from_host {
        let linux_devs = spec
            .linux()
            .as_ref()
            .and_then(|l| l.devices().clone())
            .unwrap_or_default();
        devices::create(root, &devices::wanted(&linux_devs), in_userns)?;
        devices::symlinks(root)?;
    }
    Ok(())
}

/// An O_PATH fd on the host's /dev/null, verified to be the 1:3 character device: masking binds
/// this very inode, never whatever the image put at its own /dev/null (CVE-2025-31133).
pub fn host_dev_null() -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        "/dev/null",
        OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
    .ctx("open", "/dev/null")?;
    let st = fstat(&fd).ctx("stat", "/dev/null")?;
    let rdev = st.st_rdev;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFCHR
        || nix::sys::stat::major(rdev) != 1
        || nix::sys::stat::minor(rdev) != 3
    {
        return Err(Error::path("verify /dev/null", "/dev/null", Errno::ENODEV));
    }
    Ok(fd)
}

/// Step 3: maskedPaths. A file is covered by the verified /dev/null, a directory by an empty
/// read-only tmpfs (runc's: it lists as empty, writes fail with EROFS); a path that does not
/// exist is skipped (runc's behaviour).
pub fn mask(root: &Root, paths: &[String], dev_null: &OwnedFd) -> Result<()> {
    for p in paths {
        let shown = root.host_path(Path::new(p));
        let fd = match root.open_path(Path::new(p)) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(Error::path("open masked path", shown, e)),
        };
        let st = fstat(&fd).ctx("stat masked path", &shown)?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
            mount(
                Some("tmpfs"),
                sys::fd_path(fd.as_raw_fd()).as_str(),
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                // tmpfs's default root mode (1777), as runc: `ls` of a masked directory shows it
                // empty instead of failing, and read-only keeps anything from being put there.
                Some("size=0k"),
            )
            .ctx("mask", &shown)?;
        } else {
            let tree = sys::open_tree(
                dev_null.as_raw_fd(),
                Path::new(""),
                sys::OPEN_TREE_CLONE | libc::AT_EMPTY_PATH as u32,
            )
            .ctx("clone /dev/null mount", "/dev/null")?;
            sys::move_mount_fd(&tree, fd.as_raw_fd()).ctx("mask", &shown)?;
        }
    }
    Ok(())
}

/// Step 4: readonlyPaths, each bound onto itself and remounted read-only (keeping the flags a user
/// namespace locked).
pub fn readonly(root: &Root, paths: &[String]) -> Result<()> {
    for p in paths {
        let shown = root.host_path(Path::new(p));
        let fd = match root.open_path(Path::new(p)) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(Error::path("open readonly path", shown, e)),
        };
        let at = sys::fd_path(fd.as_raw_fd());
        mount(
            Some(at.as_str()),
            at.as_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx("bind readonly path", &shown)?;
        let fd = root
            .open_path(Path::new(p))
            .ctx("reopen readonly path", &shown)?;
        mounts::remount_bind(&fd, mounts::locked_flags(&fd) | MsFlags::MS_RDONLY)
            .ctx("remount readonly path", &shown)?;
    }
    Ok(())
}

/// Step 5: make the rootfs `/`. pivot_root(".", ".") stacks the old root on top of the new one;
/// detaching it leaves only the rootfs (the trick runc uses: no temporary directory in the image).
pub fn pivot(rootfs: &Path) -> Result<()> {
    let old = nix::fcntl::open(
        "/",
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx("open", "/")?;
    let new = nix::fcntl::open(
        rootfs,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx("open rootfs", rootfs)?;
    nix::unistd::fchdir(&new).ctx("chdir", rootfs)?;
    nix::unistd::pivot_root(".", ".").ctx("pivot_root", rootfs)?;
    nix::unistd::fchdir(&old).ctx("chdir", "old root")?;
    // The old root may be shared with the host: slave it before detaching so the unmount does not
    // propagate back out.
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx("make old root slave", "/")?;
    umount2(".", MntFlags::MNT_DETACH).ctx("detach old root", "/")?;
    nix::unistd::chdir("/").ctx("chdir", "/")?;
    drop((old.as_fd(), new));
    Ok(())
}

/// `--no-pivot`: move the rootfs mount over / and chroot. Weaker (the old root stays reachable to a
/// process with CAP_SYS_CHROOT), but works where pivot_root cannot (an initramfs root).
pub fn move_root(rootfs: &Path) -> Result<()> {
    hide_host_proc_and_sys(rootfs)?;
    nix::unistd::chdir(rootfs).ctx("chdir", rootfs)?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .ctx("move rootfs to /", rootfs)?;
    nix::unistd::chroot(".").ctx("chroot", rootfs)?;
    nix::unistd::chdir("/").ctx("chdir", "/")?;
    Ok(())
}

/// runc's msMoveRoot: without pivot_root the host's mounts stay in the container's mount
/// namespace, out of sight but not out of the kernel's reach. A new procfs (or sysfs) may be
/// mounted in a user namespace only where an unmasked one is already visible *anywhere* in the
/// mount namespace (mount_too_revealing), so the host's full /proc would let a process in the
/// container (`unshare -mrpf`, then `mount -t proc`) get a /proc without the container's masks.
/// Every full procfs and sysfs mount outside the rootfs is detached, or covered by an empty tmpfs
/// where it cannot be (locked in a user namespace). Nothing after this needs the host's /proc:
/// every mount of the rootfs is done by now.
fn hide_host_proc_and_sys(rootfs: &Path) -> Result<()> {
    let rootfs = std::fs::canonicalize(rootfs).unwrap_or_else(|_| rootfs.to_path_buf());
    let full: Vec<String> = crate::procinfo::mountinfo()?
        .iter()
        .filter_map(|m| {
            let point = crate::procinfo::mount_point(m);
            (m.root == "/"
                && (m.fs_type == "proc" || m.fs_type == "sysfs")
                && !point.starts_with(&rootfs))
            .then(|| point.to_string_lossy().into_owned())
        })
        .collect();
    for p in &full {
        // Slave first, so the unmount does not propagate to the host.
        match mount(
            None::<&str>,
            p.as_str(),
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        ) {
            // Gone with a parent detached before it.
            Err(Errno::ENOENT) => continue,
            r => r.ctx("make slave", p.as_str())?,
        }
        match umount2(p.as_str(), MntFlags::MNT_DETACH) {
            Ok(()) => {}
            Err(Errno::EINVAL | Errno::EPERM) => mount(
                Some("tmpfs"),
                p.as_str(),
                Some("tmpfs"),
                MsFlags::empty(),
                None::<&str>,
            )
            .ctx("cover with tmpfs", p.as_str())?,
            Err(e) => return Err(Error::path("unmount", p.as_str(), e)),
        }
    }
    Ok(())
}

/// No mount namespace of its own (the host's is inherited, as the spec says): the container
/// only gets the rootfs as its root directory, as runc does then. Nothing is mounted, so nothing
/// is left on the host.
pub fn chroot_only(rootfs: &Path) -> Result<()> {
    nix::unistd::chdir(rootfs).ctx("chdir", rootfs)?;
    nix::unistd::chroot(".").ctx("chroot", rootfs)?;
    nix::unistd::chdir("/").ctx("chdir", "/")?;
    Ok(())
}

/// Step 6, after the switch: `rootfsPropagation` on the new / and `root.readonly`.
pub fn finish(propagation: Option<&str>, readonly: bool) -> Result<()> {
    if let Some(flag) = propagation
        .filter(|p| !p.is_empty())
        .and_then(mounts::propagation_flag)
    {
        mount(None::<&str>, "/", None::<&str>, flag, None::<&str>)
            .ctx("set rootfs propagation", "/")?;
    }
    if readonly {
        let fd = nix::fcntl::open("/", OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .ctx("open", "/")?;
        let flags = mounts::locked_flags(&fd) | MsFlags::MS_RDONLY;
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
            None::<&str>,
        )
        .ctx("remount / read-only", "/")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn unescape_mountinfo() {
        assert_eq!(super::unescape(r"/a\040b\134c"), "/a b\\c");
    }
}
