//! `mounts[]` of config.json: option parsing (runc's table) and mounting onto fds resolved inside
//! the rootfs.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use hako_spec::oci::Mount;
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};

use crate::error::{Context, Error, Result};
use crate::fs::paths::{Kind, Root};
use crate::sys;

/// A spec mount's options, sorted into what mount(2), the propagation call and mount_setattr(2)
/// each take.
#[derive(Debug, PartialEq)]
pub struct Options {
    pub flags: MsFlags,
    /// Flags the options explicitly cleared (`rw`, `suid`, ...), so a remount does not keep them.
    pub cleared: MsFlags,
    pub propagation: Vec<MsFlags>,
    /// mount_setattr attributes to set / clear recursively (`rro`, `rnosuid`, ...).
    pub attr_set: u64,
    pub attr_clr: u64,
    pub data: Vec<String>,
    /// runc's `tmpcopyup`: a new tmpfs starts with a copy of the directory it covers.
    pub copy_up: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: vec![],
            attr_set: 0,
            attr_clr: 0,
            data: vec![],
            copy_up: false,
        }
    }
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x01;
pub const MOUNT_ATTR_NOSUID: u64 = 0x02;
pub const MOUNT_ATTR_NODEV: u64 = 0x04;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x08;
pub const MOUNT_ATTR__ATIME: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x00;
const MOUNT_ATTR_NOATIME: u64 = 0x10;
const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

/// The per-mount attributes (`MOUNT_ATTR_*`, for fsmount and mount_setattr) of the MS_* flags
/// ro, nosuid, nodev and noexec.
pub fn attrs_of(flags: MsFlags) -> u64 {
    [
        (MsFlags::MS_RDONLY, MOUNT_ATTR_RDONLY),
        (MsFlags::MS_NOSUID, MOUNT_ATTR_NOSUID),
        (MsFlags::MS_NODEV, MOUNT_ATTR_NODEV),
        (MsFlags::MS_NOEXEC, MOUNT_ATTR_NOEXEC),
    ]
    .iter()
    .filter(|(f, _)| flags.contains(*f))
    .fold(0, |a, (_, m)| a | m)
}

/// The recursive (`r`-prefixed) options runc accepts, applied with mount_setattr(AT_RECURSIVE).
/// `true` sets the attribute, `false` clears it.
pub const RECURSIVE: &[(&str, bool, u64)] = &[
    ("rro", true, MOUNT_ATTR_RDONLY),
    ("rrw", false, MOUNT_ATTR_RDONLY),
    ("rnosuid", true, MOUNT_ATTR_NOSUID),
    ("rsuid", false, MOUNT_ATTR_NOSUID),
    ("rnodev", true, MOUNT_ATTR_NODEV),
    ("rdev", false, MOUNT_ATTR_NODEV),
    ("rnoexec", true, MOUNT_ATTR_NOEXEC),
    ("rexec", false, MOUNT_ATTR_NOEXEC),
    ("rnodiratime", true, MOUNT_ATTR_NODIRATIME),
    ("rdiratime", false, MOUNT_ATTR_NODIRATIME),
    ("rrelatime", true, MOUNT_ATTR_RELATIME),
    ("rnorelatime", false, MOUNT_ATTR_RELATIME),
    ("rnoatime", true, MOUNT_ATTR_NOATIME),
    ("ratime", false, MOUNT_ATTR_NOATIME),
    ("rstrictatime", true, MOUNT_ATTR_STRICTATIME),
    ("rnostrictatime", false, MOUNT_ATTR_STRICTATIME),
    ("rnosymfollow", true, MOUNT_ATTR_NOSYMFOLLOW),
    ("rsymfollow", false, MOUNT_ATTR_NOSYMFOLLOW),
];

/// Options mount(2) understands as flags: (name, clear?, flag).
pub const FLAGS: &[(&str, bool, MsFlags)] = &[
    ("async", true, MsFlags::MS_SYNCHRONOUS),
    ("atime", true, MsFlags::MS_NOATIME),
    ("bind", false, MsFlags::MS_BIND),
    ("defaults", false, MsFlags::empty()),
    ("dev", true, MsFlags::MS_NODEV),
    ("diratime", true, MsFlags::MS_NODIRATIME),
    ("dirsync", false, MsFlags::MS_DIRSYNC),
    ("exec", true, MsFlags::MS_NOEXEC),
    ("iversion", false, MsFlags::MS_I_VERSION),
    ("lazytime", false, MsFlags::MS_LAZYTIME),
    ("loud", true, MsFlags::MS_SILENT),
    ("mand", false, MsFlags::MS_MANDLOCK),
    ("noatime", false, MsFlags::MS_NOATIME),
    ("nodev", false, MsFlags::MS_NODEV),
    ("nodiratime", false, MsFlags::MS_NODIRATIME),
    ("noexec", false, MsFlags::MS_NOEXEC),
    ("noiversion", true, MsFlags::MS_I_VERSION),
    ("nolazytime", true, MsFlags::MS_LAZYTIME),
    ("nomand", true, MsFlags::MS_MANDLOCK),
    ("norelatime", true, MsFlags::MS_RELATIME),
    ("nostrictatime", true, MsFlags::MS_STRICTATIME),
    ("nosuid", false, MsFlags::MS_NOSUID),
    ("nosymfollow", false, MsFlags::from_bits_retain(256)), // MS_NOSYMFOLLOW
    ("rbind", false, MsFlags::MS_BIND.union(MsFlags::MS_REC)),
    ("relatime", false, MsFlags::MS_RELATIME),
    ("remount", false, MsFlags::MS_REMOUNT),
    ("ro", false, MsFlags::MS_RDONLY),
    ("rw", true, MsFlags::MS_RDONLY),
    ("silent", false, MsFlags::MS_SILENT),
    ("strictatime", false, MsFlags::MS_STRICTATIME),
    ("suid", true, MsFlags::MS_NOSUID),
    ("symfollow", true, MsFlags::from_bits_retain(256)), // clears MS_NOSYMFOLLOW
    ("sync", false, MsFlags::MS_SYNCHRONOUS),
];

pub const PROPAGATION: &[(&str, MsFlags)] = &[
    ("private", MsFlags::MS_PRIVATE),
    ("rprivate", MsFlags::MS_PRIVATE.union(MsFlags::MS_REC)),
    ("shared", MsFlags::MS_SHARED),
    ("rshared", MsFlags::MS_SHARED.union(MsFlags::MS_REC)),
    ("slave", MsFlags::MS_SLAVE),
    ("rslave", MsFlags::MS_SLAVE.union(MsFlags::MS_REC)),
    ("unbindable", MsFlags::MS_UNBINDABLE),
    ("runbindable", MsFlags::MS_UNBINDABLE.union(MsFlags::MS_REC)),
];

/// Every option name `mounts[].options` understands (flags, propagation, recursive attributes),
/// sorted: what `hako features` reports as `mountOptions`. Anything else is passed to the
/// filesystem as data; `tmpcopyup`, `idmap` and `ridmap` are extensions handled on their own.
pub fn option_names() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = FLAGS
        .iter()
        .map(|(n, _, _)| *n)
        .chain(PROPAGATION.iter().map(|(n, _)| *n))
        .chain(RECURSIVE.iter().map(|(n, _, _)| *n))
        .chain(["tmpcopyup"])
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

pub fn propagation_flag(name: &str) -> Option<MsFlags> {
    PROPAGATION
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
}

pub fn parse_options(opts: &[String]) -> Options {
    let mut o = Options::default();
    for opt in opts {
        if let Some((_, clear, f)) = FLAGS.iter().find(|(n, _, _)| n == opt) {
            if *clear {
                o.flags.remove(*f);
                o.cleared.insert(*f);
            } else {
                o.flags.insert(*f);
                o.cleared.remove(*f);
            }
        } else if let Some(p) = propagation_flag(opt) {
            o.propagation.push(p);
        } else if let Some((_, set, a)) = RECURSIVE.iter().find(|(n, _, _)| n == opt) {
            let is_atime = matches!(
                *a,
                MOUNT_ATTR_RELATIME | MOUNT_ATTR_NOATIME | MOUNT_ATTR_STRICTATIME
            );
            if is_atime {
                o.attr_clr |= MOUNT_ATTR__ATIME;
                if *set {
                    o.attr_set |= *a;
                }
            } else if *set {
                o.attr_set |= *a;
            } else {
                o.attr_clr |= *a;
            }
        } else if opt == "tmpcopyup" {
            o.copy_up = true;
        } else if opt == "idmap" || opt == "ridmap" || opt.starts_with("idmap=") {
            // Not for mount(2): the runtime made the mount idmapped ([`crate::fs::idmapped`]).
        } else {
            o.data.push(opt.clone());
        }
    }
    o
}

/// The flags of the mount `fd` is on, as MS_* flags a bind remount must repeat: in a user namespace
/// the kernel refuses a remount that would drop nosuid/nodev/noexec/atime flags it locked.
pub fn locked_flags(fd: &OwnedFd) -> MsFlags {
    super::bind_flags::mount_flags(fd).map_or(MsFlags::empty(), |m| {
        m & super::bind_flags::LOCKABLE & !MsFlags::MS_STRICTATIME
    })
}

/// Remounts the bind mount `fd` is on with `flags` (bind remounts replace the per-mount flags, so
/// callers start from [`locked_flags`]).
pub fn remount_bind(fd: &OwnedFd, flags: MsFlags) -> std::result::Result<(), Errno> {
    mnt(
        None,
        fd,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
        None,
    )
}

fn mnt(
    src: Option<&str>,
    target_fd: &OwnedFd,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> std::result::Result<(), Errno> {
    let target = sys::fd_path(target_fd.as_raw_fd());
    mount(src, target.as_str(), fstype, flags, data)
}

/// Applies propagation flags and recursive attributes to the mount now at `dest`.
fn finish(root: &Root, dest: &Path, o: &Options, shown: &Path) -> Result<()> {
    if o.propagation.is_empty() && o.attr_set == 0 && o.attr_clr == 0 {
        return Ok(());
    }
    let fd = root.open_path(dest).ctx("reopen mount", shown)?;
    for p in &o.propagation {
        mnt(None, &fd, None, *p, None).ctx("set mount propagation", shown)?;
    }
    if o.attr_set != 0 || o.attr_clr != 0 {
        setattr(&fd, o.attr_set, o.attr_clr, true).ctx("mount_setattr", shown)?;
    }
    Ok(())
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

pub fn setattr(
    fd: &OwnedFd,
    set: u64,
    clr: u64,
    recursive: bool,
) -> std::result::Result<(), Errno> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: `attr` is a live mount_attr of the size passed, and the empty path is a static C
    // string.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(r).map(drop)
}

/// Context a spec mount needs from the rest of rootfs setup.
pub struct MountCtx<'a> {
    pub root: &'a Root,
    pub bundle: &'a Path,
    /// In a new user namespace mounting sysfs/mqueue can be refused; runc falls back to binds.
    pub in_userns: bool,
    /// Bind sources the runtime opened for us (user namespaces): bound from the fd, not the path.
    pub bind_fds: &'a crate::fs::bind_sources::Opened,
    /// This mount namespace's mounts as the runtime parsed them before the clone (the init's
    /// namespace is a copy of that one): where the host's cgroup hierarchies are.
    pub host_mounts: &'a [crate::procinfo::Mount],
}

/// Mounts entry `index` of `mounts[]`.
pub fn mount_one(ctx: &MountCtx, index: usize, m: &Mount) -> Result<()> {
    let dest = m.destination();
    let shown = ctx.root.host_path(dest);
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
    let typ = m.typ().as_deref().unwrap_or("");
    // The destination, when it exists, opened once: checked, then mounted on.
    let opened = check_proc(ctx, m, typ, &shown)?;
    let is_bind = opts.flags.contains(MsFlags::MS_BIND) || typ == "bind";
    if let Some(tree) = ctx.bind_fds.idmapped(index).filter(|_| is_bind) {
        return attach_idmapped(ctx, tree, dest, opened, &opts, &shown);
    }
    if is_bind {
        let src = m.source().as_ref().expect("validated: bind needs source");
        let src: PathBuf = if src.is_absolute() {
            src.clone()
        } else {
            ctx.bundle.join(src)
        };
        return bind_onto(ctx, &src, dest, opened, &opts, &shown);
    }
    if typ == "cgroup" || typ == "cgroup2" {
        let target = opened.ensure(ctx.root, dest, Kind::Dir)?;
        return super::cgroupfs::mount_in_container(ctx, m, &opts, target);
    }
    mount_fs(ctx, m, typ, &opts, opened, &shown)
}

/// A filesystem of its own (tmpfs, proc, sysfs, mqueue, devpts, ...) on `m`'s destination.
fn mount_fs(
    ctx: &MountCtx,
    m: &Mount,
    typ: &str,
    opts: &Options,
    opened: Probed,
    shown: &Path,
) -> Result<()> {
    let dest = m.destination();
    let opened = match ordinary_directory(ctx.root, dest, typ)? {
        Some(fd) => Probed::Exists(fd),
        None => opened,
    };
    let mut data = opts.data.clone();
    if typ == "tmpfs" && !data.iter().any(|d| d.starts_with("mode=")) {
        data.extend(covered_mode(&opened).map(|m| format!("mode={m:o}")));
    }
    let data = data.join(",");
    let data = (!data.is_empty()).then_some(data.as_str());
    let target = opened.ensure(ctx.root, dest, Kind::Dir)?;
    let src = m
        .source()
        .as_ref()
        .map(|s| s.to_string_lossy().into_owned());
    let mut flags = opts.flags & !MsFlags::MS_REMOUNT;
    if is_dev(m) {
        // /dev gets its mount points (pts, shm, mqueue), device nodes and /dev/console first;
        // a read-only /dev turns read-only at the end ([`readonly_dev`]), as in runc.
        flags.remove(MsFlags::MS_RDONLY);
    }
    if opts.copy_up && typ == "tmpfs" {
        return tmpfs_copy_up(ctx, dest, &target, flags, data, opts, shown);
    }
    let r = mnt(
        Some(src.as_deref().unwrap_or(typ)),
        &target,
        Some(typ),
        flags,
        data,
    );
    match r {
        // A user namespace that does not own the network (sysfs) or ipc (mqueue) namespace may not
        // mount a fresh instance (the container's own user namespace, or the one a rootless
        // podman runs the runtime in); runc binds the runtime's own then, and so do we.
        Err(Errno::EPERM) if typ == "sysfs" || typ == "mqueue" => {
            let host = if typ == "sysfs" {
                "/sys"
            } else {
                "/dev/mqueue"
            };
            let mut o = Options {
                flags: flags | MsFlags::MS_BIND | MsFlags::MS_REC,
                ..Default::default()
            };
            o.propagation.clone_from(&opts.propagation);
            bind_onto(
                ctx,
                Path::new(host),
                dest,
                Probed::Exists(target),
                &o,
                shown,
            )
        }
        Err(e) => Err(Error::path("mount", shown, e)),
        Ok(()) => finish(ctx.root, dest, opts, shown),
    }
}

/// The mode of the directory a tmpfs without `mode=` covers, for its root: runc 1.2+ passes
/// it as `mode=` (so `/var/empty` stays 0711, a setgid dir stays setgid). A directory made for
/// the mount keeps tmpfs's own default, 1777, as in runc.
fn covered_mode(opened: &Probed) -> Option<u32> {
    let Probed::Exists(fd) = opened else {
        return None;
    };
    let st = nix::sys::stat::fstat(fd).ok()?;
    (st.st_mode & libc::S_IFMT == libc::S_IFDIR).then_some(st.st_mode & 0o7777)
}

/// A mount of /dev itself that is not a bind (a bound /dev comes whole from elsewhere).
fn is_dev(m: &Mount) -> bool {
    crate::fs::paths::clean(m.destination()) == Path::new("dev")
        && m.typ().as_deref() != Some("bind")
        && !m
            .options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind")
}

/// The last step on /dev: a `ro` /dev mount in `mounts[]` was mounted writable so that its mount
/// points, device nodes and /dev/console could be made; now it becomes read-only (runc's
/// finalizeRootfs: a bind remount, which keeps the flags a user namespace locked).
pub fn readonly_dev(root: &Root, mounts: &[Mount]) -> Result<()> {
    let Some(m) = mounts.iter().find(|m| is_dev(m)) else {
        return Ok(());
    };
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
    if !opts.flags.contains(MsFlags::MS_RDONLY) {
        return Ok(());
    }
    let shown = root.host_path(Path::new("/dev"));
    let fd = root.open_path(Path::new("/dev")).ctx("open", &shown)?;
    remount_bind(&fd, locked_flags(&fd) | MsFlags::MS_RDONLY).ctx("remount /dev read-only", &shown)
}

/// procfs and sysfs go only onto a real directory (or where nothing is yet): an image whose
/// /proc or /sys is a symlink would otherwise get them somewhere else, out from under the
/// masked and read-only paths meant for them (CVE-2019-19921). runc's rule and words.
/// Returns the directory (opened without following a last symlink) when it exists; nothing for
/// other types.
fn ordinary_directory(root: &Root, dest: &Path, typ: &str) -> Result<Option<OwnedFd>> {
    if typ != "proc" && typ != "sysfs" {
        return Ok(None);
    }
    let flags = libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let fd = match root.open_with(dest, flags) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(e) => {
            return Err(Error::path(
                "open mount destination",
                root.host_path(dest),
                e,
            ))
        }
    };
    let st = nix::sys::stat::fstat(&fd).ctx("stat mount destination", root.host_path(dest))?;
    let kind =
        nix::sys::stat::SFlag::from_bits_truncate(st.st_mode) & nix::sys::stat::SFlag::S_IFMT;
    if kind != nix::sys::stat::SFlag::S_IFDIR {
        return Err(Error::Usage(format!(
            "error mounting {typ:?} to rootfs at {:?}: filesystem {typ:?} must be mounted on ordinary directory",
            dest.display().to_string()
        )));
    }
    Ok(Some(fd))
}

/// Files under /proc that may be mounted over (what lxcfs emulates), as runc allows.
const PROC_MOUNTABLE: &[&str] = &[
    "proc/cpuinfo",
    "proc/diskstats",
    "proc/meminfo",
    "proc/stat",
    "proc/swaps",
    "proc/uptime",
    "proc/loadavg",
    "proc/slabinfo",
    "proc/net/dev",
    "proc/sys/kernel/ns_last_pid",
];

/// runc's rule: nothing is mounted inside the container's procfs but the lxcfs files above, and
/// only procfs on /proc itself. A mount over, say, /proc/sys/kernel/core_pattern or
/// /proc/self/attr would hide the kernel's file behind one the container controls (the
/// CVE-2025-52881 class). Decided on where the destination *resolves*, so a symlink into
/// /proc does not get around it.
/// What [`check_proc`] found of the destination.
enum Probed {
    /// Not looked up.
    Unknown,
    /// It exists: its fd.
    Exists(OwnedFd),
    /// Missing (ENOENT all the way): its deepest existing ancestor and that one's fd.
    Missing(PathBuf, OwnedFd),
}

impl Probed {
    /// The destination, created (inside the root) when missing.
    fn ensure(self, root: &Root, dest: &Path, kind: Kind) -> Result<OwnedFd> {
        match self {
            Probed::Exists(fd) => Ok(fd),
            Probed::Missing(ancestor, fd) => root.ensure_below(dest, kind, &ancestor, fd),
            Probed::Unknown => root.ensure(dest, kind),
        }
    }
}

/// runc 1.3 also allows a bind of a procfs on /proc: how a container sharing the host's pid
/// namespace gets /proc where a fresh procfs may not be mounted (a user namespace, a host
/// procfs with `hidepid=`/`subset=`). A procfs that is not the root of one only gets runc's
/// warning.
fn bind_of_procfs(ctx: &MountCtx, m: &Mount, typ: &str, shown: &Path) -> Result<bool> {
    let bind = typ == "bind"
        || m.options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind");
    let Some(src) = m.source().as_ref().filter(|_| bind) else {
        return Ok(false);
    };
    let src = if src.is_absolute() {
        src.clone()
    } else {
        ctx.bundle.join(src)
    };
    let fd = match ctx.bind_fds.get(&src) {
        Some(fd) => nix::unistd::dup(fd).ctx("dup bind source", &src)?,
        None => nix::fcntl::open(
            &src,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ctx("open bind source", &src)?,
    };
    let fs = nix::sys::statfs::fstatfs(&fd).ctx("statfs", &src)?;
    if fs.filesystem_type().0 as i64 != crate::sys::PROC_SUPER_MAGIC {
        return Ok(false);
    }
    let st = nix::sys::stat::fstat(&fd).ctx("stat", &src)?;
    if st.st_ino != 1 {
        crate::log::warn(&format!(
            "bind-mount {} (source {}) is of type procfs but is not the root of a procfs (inode {})",
            shown.display(),
            src.display(),
            st.st_ino
        ));
    }
    Ok(true)
}

fn check_proc(ctx: &MountCtx, m: &Mount, typ: &str, shown: &Path) -> Result<Probed> {
    let rel = crate::fs::paths::clean(m.destination());
    if PROC_MOUNTABLE.iter().any(|p| rel == Path::new(p)) {
        return Ok(Probed::Unknown);
    }
    if rel == Path::new("proc") {
        if typ == "proc" || bind_of_procfs(ctx, m, typ, shown)? {
            return Ok(Probed::Unknown);
        }
        return Err(Error::Usage(format!(
            "{} cannot be mounted because it is not of type proc",
            shown.display()
        )));
    }
    // The destination, or its deepest existing ancestor: is it on a procfs?
    let mut probe = rel.as_path();
    let mut all_enoent = true;
    let fd = loop {
        match ctx.root.open_path(probe) {
            Ok(fd) => break fd,
            Err(e) => {
                all_enoent &= e == Errno::ENOENT;
                match probe.parent() {
                    Some(p) => probe = p,
                    None => return Ok(Probed::Unknown),
                }
            }
        }
    };
    let fs = nix::sys::statfs::fstatfs(&fd).ctx("statfs", shown)?;
    if fs.filesystem_type().0 as i64 == crate::sys::PROC_SUPER_MAGIC {
        return Err(Error::Usage(format!(
            "{} cannot be mounted because it is inside /proc",
            shown.display()
        )));
    }
    Ok(if probe == rel.as_path() {
        Probed::Exists(fd)
    } else if all_enoent {
        Probed::Missing(Path::new("/").join(probe), fd)
    } else {
        Probed::Unknown
    })
}

/// A tmpfs with `tmpcopyup`. podman puts it on the tmpfs it mounts over /tmp, /run and /var/tmp for
/// `podman run --read-only` (`read_only_tmpfs`), so that a read-only image keeps what it ships there;
/// runc copies the covered directory into the new tmpfs, and so do we: through an fd on the covered
/// directory opened (inside the root) before the mount, entry by entry with *at calls that never
/// follow a symlink. A read-only tmpfs is mounted writable for the copy and remounted read-only.
fn tmpfs_copy_up(
    ctx: &MountCtx,
    dest: &Path,
    target: &OwnedFd,
    flags: MsFlags,
    data: Option<&str>,
    opts: &Options,
    shown: &Path,
) -> Result<()> {
    let dir_flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    let under = ctx
        .root
        .open_with(dest, dir_flags)
        .ctx("open tmpcopyup source", shown)?;
    mnt(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        flags & !MsFlags::MS_RDONLY,
        data,
    )
    .map_err(|e| Error::path("mount", shown, e))?;
    let top = ctx
        .root
        .open_with(dest, dir_flags)
        .ctx("reopen mount", shown)?;
    copy_dir(&under, &top).ctx("tmpcopyup", shown)?;
    if flags.contains(MsFlags::MS_RDONLY) {
        let fd = ctx.root.open_path(dest).ctx("reopen mount", shown)?;
        mnt(None, &fd, None, flags | MsFlags::MS_REMOUNT, data).ctx("remount tmpfs", shown)?;
    }
    finish(ctx.root, dest, opts, shown)
}

/// Copies the entries of directory `from` into directory `to` (recursively), keeping type, mode,
/// owner and times. Symlinks are copied, never followed.
fn copy_dir(from: &OwnedFd, to: &OwnedFd) -> std::result::Result<(), Errno> {
    use nix::fcntl::{openat, readlinkat, AtFlags, OFlag};
    use nix::sys::stat::{fchmodat, fstatat, mkdirat, mknodat, utimensat, FchmodatFlags};
    use nix::sys::stat::{Mode, SFlag, UtimensatFlags};
    use nix::sys::time::TimeSpec;
    use nix::unistd::{fchownat, symlinkat, Gid, Uid};

    let dir = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let names: Vec<std::ffi::CString> = {
        let mut d = nix::dir::Dir::openat(from, ".", dir, Mode::empty())?;
        d.iter()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_owned())
            .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
            .collect()
    };
    for name in &names {
        let name = name.as_c_str();
        let st = fstatat(from, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
        let perm = Mode::from_bits_truncate(st.st_mode & 0o7777);
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        match kind {
            SFlag::S_IFDIR => {
                mkdirat(to, name, Mode::S_IRWXU)?;
                let sub_from = openat(from, name, dir, Mode::empty())?;
                let sub_to = openat(to, name, dir, Mode::empty())?;
                copy_dir(&sub_from, &sub_to)?;
            }
            SFlag::S_IFREG => {
                let src = openat(
                    from,
                    name,
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )?;
                let dst = openat(
                    to,
                    name,
                    OFlag::O_WRONLY
                        | OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::S_IRUSR | Mode::S_IWUSR,
                )?;
                std::io::copy(&mut std::fs::File::from(src), &mut std::fs::File::from(dst))
                    .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
            }
            SFlag::S_IFLNK => symlinkat(readlinkat(from, name)?.as_os_str(), to, name)?,
            _ => mknodat(to, name, kind, perm, st.st_rdev)?,
        }
        let (uid, gid) = (Uid::from_raw(st.st_uid), Gid::from_raw(st.st_gid));
        fchownat(to, name, Some(uid), Some(gid), AtFlags::AT_SYMLINK_NOFOLLOW)?;
        if kind != SFlag::S_IFLNK {
            // After the chown, which clears set-id bits; creation modes were masked by the umask.
            fchmodat(to, name, perm, FchmodatFlags::FollowSymlink)?;
        }
        let atime = TimeSpec::new(st.st_atime, st.st_atime_nsec);
        let mtime = TimeSpec::new(st.st_mtime, st.st_mtime_nsec);
        utimensat(to, name, &atime, &mtime, UtimensatFlags::NoFollowSymlink)?;
    }
    Ok(())
}

/// A bind mount: the source (a host path, or relative to the bundle) onto the resolved target;
/// mount(2) ignores MS_RDONLY and friends with MS_BIND, so they need a remount of the new mount.
/// `opened` is the destination already resolved inside the root, when it exists.
fn bind_onto(
    ctx: &MountCtx,
    src: &Path,
    dest: &Path,
    opened: Probed,
    o: &Options,
    shown: &Path,
) -> Result<()> {
    // By path whenever the init can reach it, as runc 1.2+ asks its parent only for a source it
    // cannot stat: the path resolves now, through the mounts made before this one (a bind of
    // something inside the container's own tmpfs or bind shows that mount), while the fd was
    // opened before any of them.
    let fd = ctx
        .bind_fds
        .get(src)
        .filter(|_| std::fs::metadata(src).is_err());
    // The source's type is only needed to make a missing destination: a FUSE mount of another
    // user (sshfs without `allow_other`) refuses stat to everyone else, root included (EACCES),
    // yet binds. runc 1.3 stats it only then too. Any other failure (ENOENT) names the source.
    let target = match (opened, source_kind(fd, src)) {
        (Probed::Exists(fd), Ok(_) | Err(Errno::EACCES)) => fd,
        (_, Err(e)) => return Err(Error::path("stat bind source", src, e)),
        (missing, Ok(kind)) => missing.ensure(ctx.root, dest, kind)?,
    };
    let rec = o.flags & MsFlags::MS_REC;
    let src_s = match fd {
        // The host's procfs (verified, not pivoted yet) resolves this to the opened source.
        Some(fd) => sys::fd_path(fd.as_raw_fd()),
        None => src.to_string_lossy().into_owned(),
    };
    mnt(Some(&src_s), &target, None, MsFlags::MS_BIND | rec, None).ctx("bind mount", shown)?;
    remount_flags(ctx, dest, o, shown)?;
    finish(ctx.root, dest, o, shown)
}

/// Whether the bind source (`fd` when the runtime opened it) is a directory or a file.
fn source_kind(fd: Option<&OwnedFd>, src: &Path) -> std::result::Result<Kind, Errno> {
    let st = match fd {
        Some(fd) => nix::sys::stat::fstat(fd)?,
        None => nix::sys::stat::stat(src)?,
    };
    Ok(if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        Kind::Dir
    } else {
        Kind::File
    })
}

/// An idmapped mount the runtime made (detached, [`crate::fs::idmapped`]) attached on the
/// destination, then given the flags, propagation and recursive attributes of a bind.
fn attach_idmapped(
    ctx: &MountCtx,
    tree: &OwnedFd,
    dest: &Path,
    opened: Probed,
    o: &Options,
    shown: &Path,
) -> Result<()> {
    let st = nix::sys::stat::fstat(tree).ctx("stat idmapped mount", shown)?;
    let kind = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        Kind::Dir
    } else {
        Kind::File
    };
    let target = opened.ensure(ctx.root, dest, kind)?;
    sys::move_mount_fd(tree, target.as_raw_fd()).ctx("attach idmapped mount", shown)?;
    remount_flags(ctx, dest, o, shown)?;
    finish(ctx.root, dest, o, shown)
}

/// mount(2) ignores MS_RDONLY and friends with MS_BIND: a bind remount of the new mount applies
/// them ([`crate::fs::bind_flags`]). Options that name no flag keep the source's, as runc.
fn remount_flags(ctx: &MountCtx, dest: &Path, o: &Options, shown: &Path) -> Result<()> {
    let extra = o.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if !extra.is_empty() || !o.cleared.is_empty() {
        let fd = ctx.root.open_path(dest).ctx("reopen mount", shown)?;
        crate::fs::bind_flags::apply(&fd, extra, o.cleared, shown)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn sorts_options() {
        let o = parse_options(&s(&[
            "rbind", "ro", "nosuid", "rslave", "mode=755", "size=1k", "rro",
        ]));
        assert!(o.flags.contains(
            MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID
        ));
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert_eq!(o.data, s(&["mode=755", "size=1k"]));
        assert_eq!(o.attr_set, MOUNT_ATTR_RDONLY);
    }

    #[test]
    fn tmpcopyup_is_not_mount_data() {
        let o = parse_options(&s(&["rw", "tmpcopyup", "mode=1777"]));
        assert!(o.copy_up);
        assert_eq!(o.data, s(&["mode=1777"]));
    }

    #[test]
    fn later_option_wins() {
        let o = parse_options(&s(&["ro", "rw"]));
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
        assert!(o.cleared.contains(MsFlags::MS_RDONLY));
    }
}
