//! One conversation with `criu swrk`, the way runc has it: CRIU runs as our child with one end of
//! a SOCK_SEQPACKET pair as fd 3, reads one `CriuReq`, and answers with `CriuResp` messages. The
//! ones of type NOTIFY are callbacks (network lock/unlock, setup-namespaces, post-restore,
//! orphan-pts-master carrying an fd) that must be acknowledged before CRIU goes on; the last one
//! is the answer to the request.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, send, socketpair, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};
use prost::Message;

use super::rpc::{CriuReq, CriuReqType, CriuResp};
use crate::error::{Context, Error, Result};

/// What the caller does at each step of the conversation.
pub trait Handler {
    /// CRIU runs (as `pid`) but has not read the request yet: restore puts it into the
    /// container's cgroups here and fills in what depends on them.
    fn spawned(&mut self, _pid: i32, _req: &mut CriuReq) -> Result<()> {
        Ok(())
    }
    /// A NOTIFY message: `script` names the event, `pid` is the restored init's (host) pid where
    /// CRIU gives one, `fds` are the descriptors it carried (orphan-pts-master).
    fn notify(&mut self, _script: &str, _pid: i32, _fds: Vec<OwnedFd>) -> Result<()> {
        Ok(())
    }
}

/// No callbacks (version and feature queries).
pub struct Quiet;
impl Handler for Quiet {}

/// Where CRIU's fds 0-2 go, and the extra fds it gets as 4, 5, … (3 is the RPC socket).
pub struct Spawn<'a> {
    pub criu: &'a Path,
    /// The runtime's own stdio (restore: the restored process inherits pipes through it), or
    /// /dev/null.
    pub inherit_stdio: bool,
    pub extra: Vec<BorrowedFd<'a>>,
    /// Restore of a container with a mount namespace: CRIU runs in a mount namespace of its own
    /// ([`private_mounts`]).
    pub own_mount_ns: bool,
}

/// The binary that `--criu` names: a path, or a name looked up in PATH (runc's default `criu`).
pub fn resolve(criu: &Path) -> Result<PathBuf> {
    if criu.components().count() > 1 {
        return Ok(criu.to_path_buf());
    }
    in_path(criu).ok_or_else(|| {
        Error::Usage(format!(
            "CRIU version check failed: exec: {:?}: executable file not found in $PATH \
                 (install CRIU, or name it with --criu PATH)",
            criu.display().to_string()
        ))
    })
}

/// `name` as execvp finds it in our PATH (the one CRIU inherits), if it is there.
pub fn in_path(name: &Path) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            nix::unistd::access(p.as_path(), nix::unistd::AccessFlags::X_OK).is_ok() && p.is_file()
        })
}

/// Runs one request to completion; returns CRIU's final answer.
pub fn call(spawn: &Spawn, mut req: CriuReq, h: &mut dyn Handler) -> Result<CriuResp> {
    let (client, server) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .op("socketpair for criu swrk")?;
    let mut child = start(spawn, &server)?;
    drop(server);
    // From here CRIU must be waited for whatever happens, and its end of the socket closed first
    // so it cannot block on us.
    let pid = child.id() as i32;
    let r = (|| {
        let _dirs = if spawn.own_mount_ns {
            dirs_in_its_namespace(pid, &mut req)?
        } else {
            Vec::new()
        };
        converse(&client, pid, &mut req, h)
    })();
    let _ = nix::sys::socket::shutdown(client.as_raw_fd(), nix::sys::socket::Shutdown::Write);
    drop(client);
    let status = child.wait().op("wait for criu")?;
    let resp = r?;
    let kind = req.r#type();
    // CRIU in pre-dump mode waits for more requests and is ended by our hang-up.
    if !status.success() && kind != CriuReqType::PreDump {
        return Err(Error::Usage(format!("criu failed: {status}")));
    }
    Ok(resp)
}

fn start(spawn: &Spawn, server: &OwnedFd) -> Result<Child> {
    let mut cmd = Command::new(spawn.criu);
    cmd.args(["swrk", "3"]);
    if !spawn.inherit_stdio {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    }
    let own_mount_ns = spawn.own_mount_ns;
    let mut wanted: Vec<RawFd> = vec![server.as_raw_fd()];
    wanted.extend(spawn.extra.iter().map(|f| f.as_raw_fd()));
    // SAFETY: the closure runs in the forked child before exec and only calls async-signal-safe
    // libc functions (fcntl, dup2, sigprocmask) on fds and a mask it owns; the runtime is
    // single-threaded, so no lock can be held at fork.
    unsafe {
        cmd.pre_exec(move || {
            // First out of the way (above any target number), then into place as 3, 4, …: a
            // source that already sits on a target number cannot be clobbered.
            let mut high = Vec::with_capacity(wanted.len());
            for fd in &wanted {
                let h = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 100);
                if h < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                high.push(h);
            }
            for (i, h) in high.iter().enumerate() {
                if libc::dup2(*h, 3 + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // CRIU relies on SIGCHLD; a foreground restore has blocked it in the runtime.
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            if own_mount_ns {
                private_mounts()?;
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(|e| {
        Error::Usage(format!(
            "CRIU version check failed: exec {}: {}",
            spawn.criu.display(),
            hako_spec::error::io_text(&e)
        ))
    })
}

/// Puts the forked CRIU into a mount namespace of its own whose mounts are slaves of the
/// runtime's. CRIU's restore mounts scaffolding where the runtime would see it: a tmpfs on
/// `/tmp/.criu.mntns.*` (mounted by the restored root task, in a namespace cloned from CRIU's),
/// the cgroup yard in the work directory, a proc mount. Where the runtime's mounts are shared (`/`
/// is on any systemd host) the yard's tmpfs propagates back, and a restore that fails before
/// CRIU opened the restored namespace (a bind source gone, a mount CRIU cannot make) unmounts it
/// only there: the tmpfs stayed on the host. As slaves nothing propagates out, the host's
/// unmounts still propagate in, and everything CRIU mounted goes with its namespace. Only for
/// containers with a mount namespace: without one the restored processes stay in CRIU's.
///
/// Runs between fork and exec (async-signal-safe syscalls only).
fn private_mounts() -> std::io::Result<()> {
    // SAFETY: plain syscalls on constant arguments; the child is single-threaded.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let flags = libc::MS_REC | libc::MS_SLAVE;
        let root = c"/";
        if libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            flags,
            std::ptr::null(),
        ) < 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The image and work directories opened again, in the mount namespace of CRIU (`pid`), and
/// named in the request instead of ours. CRIU opens them through our descriptors
/// (`/proc/<runtime>/fd/N`), so they would stay on the runtime's mounts, and a mount on a mount
/// of another namespace fails with EINVAL (CRIU's cgroup yard goes into the work directory).
/// The returned descriptors must stay open until CRIU is done.
fn dirs_in_its_namespace(pid: i32, req: &mut CriuReq) -> Result<Vec<OwnedFd>> {
    let mut kept = Vec::new();
    let Some(opts) = req.opts.as_mut() else {
        return Ok(kept);
    };
    for fd in [Some(&mut opts.images_dir_fd), opts.work_dir_fd.as_mut()]
        .into_iter()
        .flatten()
        .filter(|fd| **fd >= 0)
    {
        let ours = PathBuf::from(format!("/proc/self/fd/{fd}"));
        let dir = std::fs::read_link(&ours).ctx("readlink", &ours)?;
        let theirs =
            PathBuf::from(format!("/proc/{pid}/root")).join(dir.strip_prefix("/").map_err(
                |_| Error::Usage(format!("criu directory {} is not absolute", dir.display())),
            )?);
        let f = nix::fcntl::open(
            &theirs,
            nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ctx("open", &theirs)?;
        *fd = f.as_raw_fd();
        kept.push(f);
    }
    Ok(kept)
}

fn converse(
    client: &OwnedFd,
    pid: i32,
    req: &mut CriuReq,
    h: &mut dyn Handler,
) -> Result<CriuResp> {
    h.spawned(pid, req)?;
    send_req(client, req)?;
    let mut buf = vec![0u8; 10 * 4096];
    loop {
        let (n, fds) = recv(client, &mut buf)?;
        if n == 0 {
            return Err(Error::Usage(
                "criu failed: unexpected EOF on the swrk socket".into(),
            ));
        }
        if n == buf.len() {
            return Err(Error::Usage("criu failed: response too large".into()));
        }
        let resp = CriuResp::decode(&buf[..n])
            .map_err(|e| Error::Usage(format!("criu failed: bad response: {e}")))?;
        let t = resp.r#type();
        if !resp.success {
            // runc's words; CRIU's own first error (cr_errmsg) is often a harmless one, so the
            // caller quotes the log instead.
            return Err(Error::Usage(format!(
                "criu failed: type {} errno {}",
                t.as_str_name(),
                resp.cr_errno()
            )));
        }
        if t != CriuReqType::Notify {
            return Ok(resp);
        }
        let notify = resp.notify.clone().unwrap_or_default();
        h.notify(notify.script(), notify.pid(), fds)?;
        let ack = CriuReq {
            r#type: CriuReqType::Notify as i32,
            notify_success: Some(true),
            ..Default::default()
        };
        send_req(client, &ack)?;
    }
}

fn send_req(client: &OwnedFd, req: &CriuReq) -> Result<()> {
    let data = req.encode_to_vec();
    send(client.as_raw_fd(), &data, MsgFlags::empty()).op("send request to criu")?;
    Ok(())
}

fn recv(client: &OwnedFd, buf: &mut [u8]) -> Result<(usize, Vec<OwnedFd>)> {
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let msg = loop {
        match recvmsg::<()>(
            client.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue,
            r => break r.op("read criu response")?,
        }
    };
    let mut fds = Vec::new();
    for c in msg.cmsgs().op("read criu response")? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: SCM_RIGHTS gave us these fds; nobody else owns them.
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    Ok((msg.bytes, fds))
}

/// CRIU's version as runc compares it: major*10000 + minor*100 + sublevel.
pub fn version(criu: &Path) -> Result<u32> {
    let spawn = Spawn {
        criu,
        inherit_stdio: false,
        extra: vec![],
        own_mount_ns: false,
    };
    let req = CriuReq {
        r#type: CriuReqType::Version as i32,
        ..Default::default()
    };
    let resp = call(&spawn, req, &mut Quiet).map_err(|e| match e {
        Error::Usage(m) if m.starts_with("CRIU version check failed") => Error::Usage(m),
        e => Error::Usage(format!("CRIU version check failed: {e}")),
    })?;
    let v = resp.version.ok_or_else(|| {
        Error::Usage("CRIU version check failed: criu sent no version (older than 3.0?)".into())
    })?;
    Ok(v.major_number as u32 * 10000 + v.minor_number as u32 * 100 + v.sublevel() as u32)
}

/// runc's wording for a CRIU that is too old for something.
pub fn require(have: u32, min: u32, what: &str) -> Result<()> {
    if have < min {
        return Err(Error::Usage(format!(
            "CRIU version {have} must be {min} or higher ({what})"
        )));
    }
    Ok(())
}
