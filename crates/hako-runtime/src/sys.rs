//! Thin, documented wrappers for the syscalls nix does not cover (clone3, openat2, pidfds,
//! close_range, the new mount API). Everything else goes through nix.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;

/// statfs f_type of procfs: every place that must write to or through the kernel's own /proc
/// checks it (host /proc before fd-path mounts, LSM attr files, mount destinations).
pub const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// The most fds one of our SCM_RIGHTS messages carries (the kernel allows 253): more than the
/// v1 hierarchies a kernel has (about 15), whose `tasks` files the init gets in one message.
pub const MAX_FDS: usize = 32;

/// `struct clone_args` (include/uapi/linux/sched.h), version 2 (with cgroup).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

pub enum Forked {
    Parent { pid: i32 },
    Child,
}

/// fork(2) with namespace flags, through clone3 with no new stack: like fork, the child continues
/// on a copy of the parent's stack and returns from this function. That is only sound because the
/// runtime is single-threaded (no locks can be held by a thread that does not exist in the child).
/// `cgroup_fd`, when given, places the child in that cgroup v2 directory atomically
/// (CLONE_INTO_CGROUP), so no user code ever runs outside the container's cgroup.
///
/// # Safety
/// The caller must be single-threaded, and the child must only call async-signal-safe-in-practice
/// code paths of this crate before it execs or exits (we avoid allocator-heavy work under locks; Rust's
/// allocator has no lock held across fork in a single-threaded process).
pub unsafe fn clone3(flags: u64, cgroup_fd: Option<RawFd>) -> Result<Forked, Errno> {
    let mut args = CloneArgs {
        flags,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(fd) = cgroup_fd {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    let ret = libc::syscall(
        libc::SYS_clone3,
        &mut args as *mut CloneArgs,
        std::mem::size_of::<CloneArgs>(),
    );
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent { pid: pid as i32 }),
    }
}

/// `struct open_how` for openat2(2).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

pub const RESOLVE_NO_XDEV: u64 = 0x01;
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_BENEATH: u64 = 0x08;
pub const RESOLVE_IN_ROOT: u64 = 0x10;

pub fn openat2(
    dirfd: RawFd,
    path: &Path,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> Result<OwnedFd, Errno> {
    let c = cstr(path)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: mode as u64,
        resolve,
    };
    loop {
        // SAFETY: `c` (NUL-terminated) and `how` live across the call, and the size passed is
        // `how`'s.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd,
                c.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd >= 0 {
            // SAFETY: openat2 returned a fresh fd (checked >= 0) that nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
        }
        match Errno::last() {
            // The kernel returns EAGAIN when a concurrent rename/mount raced the lookup.
            Errno::EAGAIN => continue,
            e => return Err(e),
        }
    }
}

pub fn cstr(path: &Path) -> Result<CString, Errno> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

pub fn pidfd_open(pid: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open takes integer arguments and returns a new fd.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: pidfd_open returned a fresh fd (checked >= 0) that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

pub fn pidfd_send_signal(pidfd: &OwnedFd, sig: i32) -> Result<(), Errno> {
    // SAFETY: a borrowed, open pidfd and a null siginfo (the kernel then fills in a plain kill's).
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    Errno::result(r).map(drop)
}

/// Waits until the process behind `pidfd` has exited, or `timeout_ms` passed (-1: forever).
/// Returns true when it exited.
pub fn pidfd_wait(pidfd: &OwnedFd, timeout_ms: i32) -> Result<bool, Errno> {
    let mut pfd = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: `pfd` is one live pollfd and poll writes only its `revents`.
        let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if r < 0 {
            if Errno::last() == Errno::EINTR {
                continue;
            }
            return Err(Errno::last());
        }
        return Ok(r > 0);
    }
}

pub const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;

/// Marks (or closes) every fd >= `first`. Used right before execve so that nothing of the runtime's
/// (state dir fds, sockets, the host /proc) reaches the container: CVE-2024-21626 was exactly such a
/// leaked directory fd used as `process.cwd`.
pub fn close_range(first: u32, flags: u32) -> Result<(), Errno> {
    // SAFETY: close_range takes integers only; callers pass the first fd they no longer need.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, flags) };
    Errno::result(r).map(drop)
}

// The new mount API (Linux 5.2+): mounts attached through fds never re-resolve a path, so a symlink
// swapped in by the container between check and use cannot redirect them (CVE-2021-30465 class).
pub const OPEN_TREE_CLONE: u32 = 1;
pub const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x04;
pub const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;

pub fn open_tree(dirfd: RawFd, path: &Path, flags: u32) -> Result<OwnedFd, Errno> {
    let c = cstr(path)?;
    // SAFETY: `c` is a NUL-terminated copy of the path that outlives the call; a returned fd is
    // new.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            dirfd,
            c.as_ptr(),
            flags | libc::O_CLOEXEC as u32,
        )
    };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: open_tree returned a fresh fd (checked >= 0) that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Attaches the detached mount `from` on top of the object `to` refers to.
pub fn move_mount_fd(from: &OwnedFd, to: RawFd) -> Result<(), Errno> {
    let empty = c"";
    // SAFETY: both paths are the static empty C string; the fds are borrowed and stay open across
    // the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            empty.as_ptr(),
            to,
            empty.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    Errno::result(r).map(drop)
}

/// Recursive variant of open_tree / mount_setattr (`AT_RECURSIVE`).
pub const AT_RECURSIVE: u32 = 0x8000;

/// Attaches the detached mount `from` on the entry `name` of directory `dir` (no symlink at
/// `name` is followed: move_mount without MOVE_MOUNT_T_SYMLINKS).
pub fn move_mount_at(from: &OwnedFd, dir: RawFd, name: &str) -> Result<(), Errno> {
    let c = CString::new(name).map_err(|_| Errno::EINVAL)?;
    // SAFETY: the from-path is the static empty C string and `c` a NUL-terminated copy of `name`
    // that outlives the call; the fds are borrowed and stay open across it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            dir,
            c.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    Errno::result(r).map(drop)
}

const FSCONFIG_SET_STRING: u32 = 1;
const FSCONFIG_CMD_CREATE: u32 = 6;
const FSOPEN_CLOEXEC: u32 = 1;
const FSMOUNT_CLOEXEC: u32 = 1;

/// A new, still detached instance of filesystem `fstype` (fsopen, fsconfig, fsmount) with
/// `source` as mountinfo shows it, the string options `opts` and the per-mount attributes `attr`
/// (`MOUNT_ATTR_*`). The fd is the root of the new mount: directories made through it exist
/// before anything can see the mount, and it is attached with [`move_mount_fd`].
pub fn fs_mount(
    fstype: &str,
    source: &str,
    opts: &[(&str, &str)],
    attr: u64,
) -> Result<OwnedFd, Errno> {
    let t = CString::new(fstype).map_err(|_| Errno::EINVAL)?;
    // SAFETY: `t` is a NUL-terminated string that outlives the call; a returned fd is new.
    let fs = unsafe { libc::syscall(libc::SYS_fsopen, t.as_ptr(), FSOPEN_CLOEXEC) };
    if fs < 0 {
        return Err(Errno::last());
    }
    // SAFETY: fsopen returned a fresh fd (checked >= 0) that nothing else owns.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as RawFd) };
    let set = |k: &str, v: &str| -> Result<(), Errno> {
        let k = CString::new(k).map_err(|_| Errno::EINVAL)?;
        let v = CString::new(v).map_err(|_| Errno::EINVAL)?;
        // SAFETY: key and value are NUL-terminated strings that outlive the call; the fs context
        // fd is borrowed.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_SET_STRING,
                k.as_ptr(),
                v.as_ptr(),
                0,
            )
        };
        Errno::result(r).map(drop)
    };
    set("source", source)?;
    for (k, v) in opts {
        set(k, v)?;
    }
    // SAFETY: CMD_CREATE takes no key or value (null pointers, aux 0); the fd is borrowed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    Errno::result(r)?;
    // SAFETY: fsmount takes the context fd and two integer flag words; a returned fd is new.
    let m = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            attr as libc::c_uint,
        )
    };
    if m < 0 {
        return Err(Errno::last());
    }
    // SAFETY: fsmount returned a fresh fd (checked >= 0) that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(m as RawFd) })
}

/// Path through which the kernel reaches the object behind `fd` without re-resolving any name.
/// Only used while the host's /proc (verified procfs) is this process's /proc.
pub fn fd_path(fd: RawFd) -> String {
    format!("/proc/self/fd/{fd}")
}

/// Field 22 of `/proc/<pid>/stat` (start time in clock ticks since boot), and the state letter.
/// A pid whose start time differs from the one recorded at create is a recycled pid.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    crate::procinfo::stat(pid)
}

/// Runs `f` on EINTR until it completes.
pub fn retry<T>(mut f: impl FnMut() -> Result<T, Errno>) -> Result<T, Errno> {
    loop {
        match f() {
            Err(Errno::EINTR) => continue,
            r => return r,
        }
    }
}

/// Arms (`Some(signal)`) or clears (`None`) the parent-death signal. The kernel clears it at
/// every credential change, so the container init arms it again after becoming root in its user
/// namespace. `runtime` is our parent's pid as the runtime saw itself before the clone: a parent
/// that died before the signal was armed shows as another parent (0 across a pid namespace,
/// which then proves nothing; the next channel read's EOF covers that case).
pub fn parent_death_signal(sig: Option<i32>, runtime: i32) -> bool {
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            sig.unwrap_or(0) as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if sig.is_none() {
        return true;
    }
    let ppid = nix::unistd::getppid().as_raw();
    ppid == 0 || ppid == runtime
}

#[cfg(test)]
mod tests {
    #[test]
    fn proc_stat_of_self() {
        let (state, start) = super::proc_stat(std::process::id() as i32).unwrap();
        assert!(state == 'R' || state == 'S', "{state}");
        assert!(start > 0);
    }
}
