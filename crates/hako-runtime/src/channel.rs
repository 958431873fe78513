//! The parent/child choreography of `create` runs over one SOCK_SEQPACKET socketpair: every message
//! is one datagram, so there is no framing to get wrong, and a peer that dies shows up as EOF.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub enum Msg {
    /// runtime → init: id maps written, cgroups joined, oom_score_adj set; go on.
    Go,
    /// intermediate → runtime: the real init's host pid (only when a pid namespace has to be
    /// entered after joining a user namespace by path, which needs one more fork).
    InitPid(i32),
    /// init → runtime: namespaces and mounts are ready, run prestart/createRuntime hooks now.
    RunRuntimeHooks,
    /// runtime → init: hooks ran; the state (as JSON) the createContainer/startContainer hooks get.
    HooksDone { state: String },
    /// init → runtime: the seccomp filter is loaded; this is the notify fd's number in the init
    /// (the runtime copies it with pidfd_getfd and hands it to the agent).
    SeccompFd(i32),
    /// runtime → init: the agent has the seccomp fd.
    SeccompDone,
    /// init → runtime: everything but `process.args` is applied; waiting for `start`.
    Created,
    /// either way: the operation failed; the text is the whole error.
    Error(String),
}

pub struct Channel {
    fd: OwnedFd,
}

pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .op("socketpair")?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    pub fn send(&self, msg: &Msg) -> Result<()> {
        let buf = serde_json::to_vec(msg).expect("messages serialize");
        crate::sys::retry(|| socket::send(self.fd.as_raw_fd(), &buf, MsgFlags::MSG_NOSIGNAL))
            .op("send to container init")?;
        Ok(())
    }

    /// Receives one message; the peer exiting without a word is an error naming `peer`.
    pub fn recv(&self, peer: &str) -> Result<Msg> {
        let mut buf = vec![0u8; 1 << 16];
        let n =
            crate::sys::retry(|| socket::recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()))
                .op(format!("receive from {peer}"))?;
        if n == 0 {
            return Err(Error::Init(format!("{peer} exited unexpectedly")));
        }
        serde_json::from_slice(&buf[..n])
            .map_err(|e| Error::Init(format!("bad message from {peer}: {e}")))
    }

    /// Receives and turns an `Error` message into `Err`.
    pub fn expect(&self, peer: &str) -> Result<Msg> {
        match self.recv(peer)? {
            Msg::Error(e) => Err(Error::Init(e)),
            m => Ok(m),
        }
    }

    pub fn raw(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_eof() {
        let (a, b) = pair().unwrap();
        a.send(&Msg::HooksDone { state: "{}".into() }).unwrap();
        assert_eq!(
            b.recv("peer").unwrap(),
            Msg::HooksDone { state: "{}".into() }
        );
        a.send(&Msg::Error("boom".into())).unwrap();
        assert!(matches!(b.expect("peer"), Err(Error::Init(e)) if e == "boom"));
        drop(a);
        assert!(b.recv("peer").unwrap_err().to_string().contains("exited"));
    }
}
