//! The process's stdio become its user's, as runc's `fixStdioPermissions` makes them: a process
//! running as a non-root uid can then reopen them (`/dev/stdout`, `/proc/self/fd/1`), and its
//! terminal is its own (`stat $(tty)` shows its uid; the group stays devpts's `gid=`, the tty
//! group).

use std::os::fd::BorrowedFd;

use nix::errno::Errno;
use nix::sys::stat::{major, minor, SFlag};

use crate::error::{Error, Result};

const PIPEFS_MAGIC: i64 = 0x5049_5045;
const SOCKFS_MAGIC: i64 = 0x534F_434B;

/// Whose stdio the process holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Handed over for the container to keep (a detached process, or its own pty): runc chowns
    /// whatever they are.
    Given,
    /// The foreground caller's own fds. runc gives such a process pipes of its own instead, so only
    /// anonymous pipes and sockets are changed; a file or terminal of the caller's never is.
    Caller,
}

/// Changes the owner (uid only) of fds 0, 1 and 2 to `uid`. Must run while still privileged. A
/// `/dev/null` (1:3) is never touched: the host's is what a caller usually passes (runc#3674).
/// An fd whose owner or group is not mapped in our user namespace is skipped, as runc does.
pub fn give_to_user(uid: u32, origin: Origin) -> Result<()> {
    for fd in 0..3 {
        // SAFETY: fds 0-2 are only borrowed for the fstat/fchown below; a closed one fails EBADF.
        let bfd = unsafe { BorrowedFd::borrow_raw(fd) };
        let st = match nix::sys::stat::fstat(bfd) {
            Ok(st) => st,
            Err(Errno::EBADF) => continue,
            Err(e) => return Err(Error::sys(format!("fstat fd {fd}"), e)),
        };
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        if kind == SFlag::S_IFCHR && (major(st.st_rdev), minor(st.st_rdev)) == (1, 3) {
            continue;
        }
        if origin == Origin::Caller {
            let anonymous = nix::sys::statfs::fstatfs(bfd)
                .map(|f| matches!(f.filesystem_type().0, PIPEFS_MAGIC | SOCKFS_MAGIC))
                .unwrap_or(false);
            if !anonymous {
                continue;
            }
        }
        if st.st_uid == uid {
            continue;
        }
        // SAFETY: plain syscall on a borrowed fd; gid -1 keeps the group.
        let r = unsafe { libc::fchown(fd, uid, u32::MAX) };
        match Errno::result(r) {
            Ok(_) | Err(Errno::EINVAL) | Err(Errno::EPERM) => {}
            Err(e) => return Err(Error::sys(format!("fchown fd {fd}"), e)),
        }
    }
    Ok(())
}

/// Stdio that is the host's `/dev/null` is replaced by the container's own, as runc's
/// `reOpenDevNull` does after pivot_root: an fd on a mount outside the container's mount namespace
/// is one CRIU cannot checkpoint ("Can't lookup mount"). Without a `/dev/null` in the container
/// nothing changes.
pub fn reopen_dev_null() -> Result<()> {
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::{fstat, Mode};
    use std::os::fd::AsRawFd;
    let null = match open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()) {
        Ok(f) => f,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(Error::sys("open /dev/null in the container", e)),
    };
    let want = fstat(&null)
        .map_err(|e| Error::sys("stat /dev/null", e))?
        .st_rdev;
    for fd in 0..3 {
        // SAFETY: fds 0-2 stay open for the duration of this call; only their metadata is read.
        let b = unsafe { BorrowedFd::borrow_raw(fd) };
        let Ok(st) = fstat(b) else { continue };
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR
            && st.st_rdev == want
        {
            // SAFETY: dup3 onto a stdio number we own replaces it atomically.
            Errno::result(unsafe { libc::dup3(null.as_raw_fd(), fd, 0) })
                .map_err(|e| Error::sys(format!("reopen /dev/null as fd {fd}"), e))?;
        }
    }
    Ok(())
}
