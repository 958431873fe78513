//! `process.terminal`: a pty from the container's own devpts instance, whose master goes to the
//! caller's `--console-socket` (one SCM_RIGHTS message, one fd, a non-empty payload) and whose
//! peer becomes the process's stdio and controlling terminal.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

use crate::error::{Context, Error, Result};
use crate::paths::{Kind, Root};

const DEVPTS_SUPER_MAGIC: i64 = 0x1cd1;
const TIOCGPTPEER: libc::c_ulong = 0x5441;

pub fn connect(path: &Path) -> Result<OwnedFd> {
    let s = std::os::unix::net::UnixStream::connect(path).ctx("connect console socket", path)?;
    Ok(OwnedFd::from(s))
}

/// A pty from the rootfs's /dev/pts/ptmx. Verified to be a devpts node so a container that planted
/// something else at that path cannot get us to hand out (or bind) a host object (CVE-2025-52565).
pub fn open_pty(root: &Root) -> Result<(OwnedFd, OwnedFd, String)> {
    let master = root
        .open_with(Path::new("/dev/pts/ptmx"), libc::O_RDWR | libc::O_NOCTTY)
        .ctx("open", root.host_path(Path::new("/dev/pts/ptmx")))?;
    let fs = nix::sys::statfs::fstatfs(&master).op("fstatfs ptmx")?;
    if fs.filesystem_type().0 as i64 != DEVPTS_SUPER_MAGIC {
        return Err(Error::path(
            "verify devpts",
            root.host_path(Path::new("/dev/pts/ptmx")),
            Errno::EXDEV,
        ));
    }
    let fd = master.as_raw_fd();
    let mut unlock: libc::c_int = 0;
    Errno::result(unsafe { libc::ioctl(fd, libc::TIOCSPTLCK, &mut unlock) }).op("unlockpt")?;
    let mut n: libc::c_uint = 0;
    Errno::result(unsafe { libc::ioctl(fd, libc::TIOCGPTN, &mut n) }).op("ptsname")?;
    let peer = Errno::result(unsafe {
        libc::ioctl(
            fd,
            TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    })
    .op("ioctl(TIOCGPTPEER)")?;
    let peer = unsafe { OwnedFd::from_raw_fd(peer) };
    Ok((master, peer, format!("/dev/pts/{n}")))
}

pub fn set_size(master: &OwnedFd, height: u16, width: u16) -> Result<()> {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    Errno::result(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) })
        .op("set console size")?;
    Ok(())
}

/// Bind the pty peer on the rootfs's /dev/console (init only, as runc does).
pub fn bind_console(root: &Root, peer: &OwnedFd) -> Result<()> {
    let target = root.ensure(Path::new("/dev/console"), Kind::File)?;
    let src = crate::sys::fd_path(peer.as_raw_fd());
    nix::mount::mount(
        Some(src.as_str()),
        crate::sys::fd_path(target.as_raw_fd()).as_str(),
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx("bind console", root.host_path(Path::new("/dev/console")))
}

/// Sends the master with the pty name as payload; callers (go-runc's console receiver, conmon)
/// reject an empty payload.
pub fn send_master(socket: &OwnedFd, master: &OwnedFd, name: &str) -> Result<()> {
    let fds = [master.as_raw_fd()];
    let iov = [IoSlice::new(name.as_bytes())];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .op("send console master")?;
    Ok(())
}

/// Makes `peer` fds 0, 1, 2 and the controlling terminal (the caller already called setsid).
pub fn make_stdio(peer: &OwnedFd) -> Result<()> {
    for fd in 0..3 {
        dup2(peer.as_raw_fd(), fd)?;
    }
    Errno::result(unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) }).op("ioctl(TIOCSCTTY)")?;
    Ok(())
}

fn dup2(from: RawFd, to: RawFd) -> Result<()> {
    Errno::result(unsafe { libc::dup2(from, to) }).op(format!("dup2 {from} {to}"))?;
    Ok(())
}
