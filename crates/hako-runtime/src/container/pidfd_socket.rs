//! `--pidfd-socket PATH` (runc 1.2+, `create`, `run`, `exec`): the caller gets a pidfd of the
//! container's process as one SCM_RIGHTS message on the AF_UNIX socket, its payload naming the
//! kind of process as runc's does (`standard` for an init, `setns` for an exec). The socket is
//! connected before anything is cloned, so a bad path fails with nothing made.
//!
//! runc's init opens the pidfd of itself and sends it; here the runtime opens it (the process
//! is its child, or the grandchild it learned the pid of, waiting to be let go, so the pid
//! cannot have been reused) and sends it before the process may run the user's program.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

use crate::error::{Context, Result};
use crate::sys;

/// The payload naming an init's pidfd, as runc's.
pub const INIT: &str = "standard";
/// The payload naming an exec'd process's pidfd, as runc's.
pub const EXEC: &str = "setns";

pub fn connect(path: &Path) -> Result<OwnedFd> {
    let s = std::os::unix::net::UnixStream::connect(path).ctx("connect pidfd socket", path)?;
    Ok(OwnedFd::from(s))
}

/// Opens a pidfd of `pid` and sends it on `socket` with `name` as the payload.
pub fn send(socket: &OwnedFd, pid: i32, name: &str) -> Result<()> {
    let pidfd = sys::pidfd_open(pid).op("pidfd_open")?;
    let fds = [pidfd.as_raw_fd()];
    let iov = [IoSlice::new(name.as_bytes())];
    let sent = sendmsg::<()>(
        socket.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    );
    sent.op("send pidfd on socket")?;
    Ok(())
}
