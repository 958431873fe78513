//! The parent/child choreography of `create` runs over one SOCK_SEQPACKET socketpair: every message
//! is one datagram, so there is no framing to get wrong, and a peer that dies shows up as EOF.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub enum Msg {
    /// runtime → init: id maps written, cgroups joined, oom_score_adj set; go on.
    Go,
    /// runtime → init: the init is in its cgroups (created and limited); it may unshare its cgroup
    /// namespace and mount cgroupfs. Sent after `Go` so the runtime's cgroup work overlaps the
    /// init's namespace and mount work.
    CgroupsJoined,
    /// runtime → init (or exec child): the cgroups exist and are limited; the attached fds are the
    /// `tasks` files of the v1 hierarchies it moves itself into by writing `0`
    /// ([`crate::cgroups::Cgroups::open_tasks`]); it is already in every other one.
    JoinCgroups,
    /// init (or exec child) → runtime: writing `0` into these of the attached `tasks` files
    /// (indices) failed; the runtime writes the pid into their `cgroup.procs` as it otherwise
    /// would (its error is the one reported) and answers `CgroupsJoined`.
    CgroupsNotJoined(Vec<usize>),
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
    /// runtime → init: the record says `created`; the init may outlive the runtime now. Until
    /// this arrives an init whose runtime died exits (EOF), so nothing runs without a record.
    Keep,
    /// runtime → init (`run` instead of `Keep`): the record says `running`; run the
    /// startContainer hooks and exec now, with no start socket in between. From here the init
    /// reports a failure as one `Error` (written with write(2)) and EOF means it exec'd.
    Start,
    /// exec child → runtime: everything is applied, only execve is left.
    ExecReady,
    /// runtime → exec child: go on and exec; without it (EOF: the runtime died before the
    /// hand-over) the child exits and the user's command never runs.
    Proceed,
    /// init → runtime: its mount namespace exists; open the bind sources (user-namespace
    /// containers) and make the idmapped mounts in it (see `bind_sources`).
    MountNsReady,
    /// runtime → init: one bind source's O_PATH fd, attached (SCM_RIGHTS), in the order asked.
    BindSource,
    /// runtime → init: one detached idmapped mount (open_tree + mount_setattr), attached, in the
    /// order asked (`fs::idmapped`).
    IdmappedMount,
    /// either way: the operation failed; the text is the whole error.
    Error(String),
}

use crate::sys::MAX_FDS;

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
    /// Sends one message. A peer that already failed has left its `Error` queued before exiting:
    /// that error, not our EPIPE, is what the caller must report.
    pub fn send(&self, msg: &Msg) -> Result<()> {
        let buf = serde_json::to_vec(msg).expect("messages serialize");
        match crate::sys::retry(|| socket::send(self.fd.as_raw_fd(), &buf, MsgFlags::MSG_NOSIGNAL))
        {
            Ok(_) => Ok(()),
            Err(e) => match self.recv_or_eof("container init") {
                Ok(Some(Msg::Error(text))) => Err(Error::Init(text)),
                _ => Err(Error::sys("send to container init", e)),
            },
        }
    }

    /// Receives one message; the peer exiting without a word is an error naming `peer`.
    pub fn recv(&self, peer: &str) -> Result<Msg> {
        self.recv_or_eof(peer)?
            .ok_or_else(|| Error::Init(format!("{peer} exited unexpectedly")))
    }

    /// One datagram, into a buffer sized by peeking first: a 64 KiB zeroed buffer per message
    /// costs sixteen page faults, which shows in `hako run`'s start-up time.
    ///
    /// A peer that exits while a message we sent is still unread in its queue (the init failed
    /// before reading `CgroupsJoined`) leaves ECONNRESET pending on our end, and the kernel reports
    /// that before the datagrams queued ahead of it — the init's `Error`. The first recv consumes
    /// the pending error, so recv once more to get the init's own message (or EOF): podman and
    /// containerd show the caller that text, "connection reset by peer" tells nobody anything.
    fn recv_raw(&self, peer: &str) -> Result<Vec<u8>> {
        let fd = self.fd.as_raw_fd();
        let n = past_reset(|| {
            // SAFETY: a zero-length peek with a null buffer: MSG_TRUNC makes the kernel report the
            // size without writing.
            let r = unsafe {
                libc::recv(
                    fd,
                    std::ptr::null_mut(),
                    0,
                    libc::MSG_PEEK | libc::MSG_TRUNC,
                )
            };
            nix::errno::Errno::result(r).map(|r| r as usize)
        })
        .op(format!("receive from {peer}"))?;
        let mut buf = vec![0u8; n.max(1)];
        // The peer can exit between the peek and this recv: the same pending reset.
        let got = past_reset(|| socket::recv(fd, &mut buf, MsgFlags::empty()))
            .op(format!("receive from {peer}"))?;
        buf.truncate(got);
        Ok(buf)
    }

    /// Like `recv`, but the peer closing its end (an exec'd process: the socket is close-on-exec)
    /// is `None`, not an error.
    pub fn recv_or_eof(&self, peer: &str) -> Result<Option<Msg>> {
        let buf = self.recv_raw(peer)?;
        if buf.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(&buf)
            .map(Some)
            .map_err(|e| Error::Init(format!("bad message from {peer}: {e}")))
    }

    /// Receives and turns an `Error` message into `Err`.
    pub fn expect(&self, peer: &str) -> Result<Msg> {
        match self.recv(peer)? {
            Msg::Error(e) => Err(Error::Init(e)),
            m => Ok(m),
        }
    }

    /// Init or exec child, after its seccomp filter may be loaded: send `msg` (if any) and wait
    /// for `want` with plain write(2)/read(2), which no usable profile denies (send/recv may be).
    /// False when the runtime went away (EOF or any other message).
    pub fn handshake_raw(&self, msg: Option<&Msg>, want: &Msg) -> bool {
        self.reply_raw(msg).as_ref() == Some(want)
    }

    /// Like [`Channel::handshake_raw`], but returns the runtime's answer (one of several
    /// allowed); `None` when the runtime went away or sent something unreadable.
    pub fn reply_raw(&self, msg: Option<&Msg>) -> Option<Msg> {
        if let Some(m) = msg {
            if !self.send_raw(m) {
                return None;
            }
        }
        // Only the short answers come this way (`Keep`, `Start`, `Proceed`).
        let mut buf = [0u8; 64];
        let n = crate::sys::retry(|| nix::unistd::read(&self.fd, &mut buf)).ok()?;
        serde_json::from_slice(&buf[..n]).ok()
    }

    /// Sends `msg` with plain write(2), for a process whose seccomp filter may deny send(2);
    /// false when it could not.
    pub fn send_raw(&self, msg: &Msg) -> bool {
        let buf = serde_json::to_vec(msg).expect("messages serialize");
        crate::sys::retry(|| nix::unistd::write(&self.fd, &buf)).is_ok()
    }

    /// Init or exec child: a seccomp listener fd for the agent. The runtime copies it
    /// (pidfd_getfd), hands it over, and answers `SeccompDone`; then the process goes on.
    ///
    /// The message goes out with write(2), like runc's sync with its parent: a profile may not
    /// notify `write` (compile refuses it), while send/sendto could be notified, and the process
    /// would then wait on an agent that cannot have the fd yet. The answer may be notified: it
    /// waits in the queue until the agent has the fd.
    pub fn hand_over_seccomp_fd(&self, fd: OwnedFd) -> Result<()> {
        let buf = serde_json::to_vec(&Msg::SeccompFd(fd.as_raw_fd())).expect("messages serialize");
        crate::sys::retry(|| nix::unistd::write(&self.fd, &buf)).op("send seccomp fd number")?;
        match self.expect("runtime")? {
            Msg::SeccompDone => Ok(()),
            m => Err(Error::Init(format!("unexpected message {m:?}"))),
        }
    }

    /// Sends `msg` with `fd` attached (SCM_RIGHTS); the peer takes both with `recv_fd`.
    pub fn send_fd(&self, msg: &Msg, fd: BorrowedFd) -> Result<()> {
        self.send_fds(msg, &[fd])
    }

    /// Sends `msg` with `fds` attached (SCM_RIGHTS; none: a plain message); the peer takes them
    /// with `recv_fds`.
    pub fn send_fds(&self, msg: &Msg, fds: &[BorrowedFd]) -> Result<()> {
        let buf = serde_json::to_vec(msg).expect("messages serialize");
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let iov = [std::io::IoSlice::new(&buf)];
        let rights = [socket::ControlMessage::ScmRights(&raw)];
        let cmsg: &[socket::ControlMessage] = if raw.is_empty() { &[] } else { &rights };
        match crate::sys::retry(|| {
            socket::sendmsg::<()>(
                self.fd.as_raw_fd(),
                &iov,
                cmsg,
                MsgFlags::MSG_NOSIGNAL,
                None,
            )
        }) {
            Ok(_) => Ok(()),
            // As in `send`: an init that failed (say, on a symlinked /proc) left its `Error`
            // queued before it exited; that, not our EPIPE, is what the caller must see.
            Err(e) => match self.recv_or_eof("container init") {
                Ok(Some(Msg::Error(text))) => Err(Error::Init(text)),
                _ => Err(Error::sys("send fd to container init", e)),
            },
        }
    }

    /// One message and the fd attached to it; an `Error` from the peer is `Err`.
    pub fn recv_fd(&self, peer: &str) -> Result<(Msg, OwnedFd)> {
        match self.recv_fds(peer)? {
            (m, fds) if fds.is_empty() => {
                Err(Error::Init(format!("{peer} sent {m:?} without an fd")))
            }
            (m, fds) => Ok((m, fds.into_iter().next().expect("one fd"))),
        }
    }

    /// One message and the fds attached to it (up to [`MAX_FDS`], received close-on-exec); an
    /// `Error` from the peer is `Err`.
    pub fn recv_fds(&self, peer: &str) -> Result<(Msg, Vec<OwnedFd>)> {
        let mut buf = vec![0u8; 4096];
        let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
        let (n, fds) = {
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let msg = loop {
                match socket::recvmsg::<()>(
                    self.fd.as_raw_fd(),
                    &mut iov,
                    Some(&mut space),
                    MsgFlags::MSG_CMSG_CLOEXEC,
                ) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    r => break r.op(format!("receive from {peer}"))?,
                }
            };
            let mut fds = Vec::new();
            for c in msg.cmsgs().op(format!("receive from {peer}"))? {
                if let socket::ControlMessageOwned::ScmRights(v) = c {
                    for raw in v {
                        // SAFETY: SCM_RIGHTS just installed `raw` in our table; we own it now.
                        fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
                    }
                }
            }
            (msg.bytes, fds)
        };
        if n == 0 {
            return Err(Error::Init(format!("{peer} exited unexpectedly")));
        }
        let msg: Msg = serde_json::from_slice(&buf[..n])
            .map_err(|e| Error::Init(format!("bad message from {peer}: {e}")))?;
        match msg {
            Msg::Error(e) => Err(Error::Init(e)),
            m => Ok((m, fds)),
        }
    }

    pub fn raw(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

/// `f` (a recv) retried on EINTR, and once more after ECONNRESET, which only reports the peer's
/// exit once (see `recv_raw`); what follows is the peer's queued messages, then EOF.
fn past_reset<T>(
    mut f: impl FnMut() -> std::result::Result<T, nix::errno::Errno>,
) -> std::result::Result<T, nix::errno::Errno> {
    match crate::sys::retry(&mut f) {
        Err(nix::errno::Errno::ECONNRESET) => crate::sys::retry(f),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

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

    #[test]
    fn fd_travels_with_its_message() {
        use std::io::{Read, Write};
        let (a, b) = pair().unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        a.send_fd(&Msg::BindSource, std::os::fd::AsFd::as_fd(&w))
            .unwrap();
        drop(w);
        let (m, fd) = b.recv_fd("peer").unwrap();
        assert_eq!(m, Msg::BindSource);
        std::fs::File::from(fd).write_all(b"payload").unwrap();
        let mut s = String::new();
        std::fs::File::from(r).read_to_string(&mut s).unwrap();
        assert_eq!(s, "payload");
        a.send(&Msg::Error("boom".into())).unwrap();
        assert!(matches!(b.recv_fd("peer"), Err(Error::Init(e)) if e == "boom"));
    }

    #[test]
    fn several_fds_or_none() {
        use std::io::Read;
        let (a, b) = pair().unwrap();
        let pipes: Vec<_> = (0..9).map(|_| nix::unistd::pipe().unwrap()).collect();
        let ws: Vec<_> = pipes.iter().map(|(_, w)| w.as_fd()).collect();
        a.send_fds(&Msg::JoinCgroups, &ws).unwrap();
        let (m, fds) = b.recv_fds("peer").unwrap();
        assert_eq!(m, Msg::JoinCgroups);
        assert_eq!(fds.len(), 9);
        for (i, fd) in fds.into_iter().enumerate() {
            nix::unistd::write(&fd, format!("{i}").as_bytes()).unwrap();
        }
        for (i, (r, w)) in pipes.into_iter().enumerate() {
            drop(w);
            let mut s = String::new();
            std::fs::File::from(r).read_to_string(&mut s).unwrap();
            assert_eq!(s, i.to_string());
        }
        a.send_fds(&Msg::CgroupsJoined, &[]).unwrap();
        let (m, fds) = b.recv_fds("peer").unwrap();
        assert_eq!((m, fds.len()), (Msg::CgroupsJoined, 0));
        a.send(&Msg::CgroupsJoined).unwrap();
        assert!(b.recv_fd("peer").is_err());
    }

    /// The init failed (a symlinked /proc in the image) and exited before the runtime sent it its
    /// cgroups' fds: the caller gets the init's error, not "send fd to container init: broken
    /// pipe" (rootfs.rs's proc_or_sys_symlink_is_refused saw that about 1 run in 3).
    #[test]
    fn fds_to_a_peer_that_failed_give_its_error() {
        let (runtime, init) = pair().unwrap();
        init.send(&Msg::Error("mount /proc: boom".into())).unwrap();
        drop(init);
        let (_r, w) = nix::unistd::pipe().unwrap();
        let e = runtime
            .send_fds(&Msg::JoinCgroups, &[std::os::fd::AsFd::as_fd(&w)])
            .unwrap_err();
        assert!(
            matches!(&e, Error::Init(t) if t == "mount /proc: boom"),
            "{e}"
        );
    }

    /// The init failed before reading `CgroupsJoined`: it queued its error and exited with our
    /// message unread, which leaves ECONNRESET pending ahead of its error (about 1 `create` in 30
    /// lost the init's text to "connection reset by peer" under podman).
    #[test]
    fn error_of_a_peer_that_exited_with_unread_messages() {
        let (runtime, init) = pair().unwrap();
        runtime.send(&Msg::CgroupsJoined).unwrap();
        init.send(&Msg::Error("mount /run: boom".into())).unwrap();
        drop(init);
        assert!(matches!(runtime.expect("init"), Err(Error::Init(e)) if e == "mount /run: boom"));
        assert!(runtime
            .recv("init")
            .unwrap_err()
            .to_string()
            .contains("exited"));
    }
}
