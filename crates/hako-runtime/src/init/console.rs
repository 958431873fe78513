//! `process.terminal`: a pty from the container's own devpts instance, whose master goes to the
//! caller's `--console-socket` (one SCM_RIGHTS message, one fd, a non-empty payload) and whose
//! peer becomes the process's stdio and controlling terminal.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

use crate::error::{Context, Error, Result};
use crate::fs::paths::{Kind, Root};

const DEVPTS_SUPER_MAGIC: i64 = 0x1cd1;
const TIOCGPTPEER: libc::c_ulong = 0x5441;

/// runc's rules for `process.terminal` against `--console-socket` (`detached`: the runtime will
/// not stay to own the terminal), in runc's words, which callers match.
pub fn check_flags(terminal: bool, detached: bool, socket: bool) -> Result<()> {
    if terminal && detached && !socket {
        return Err(Error::Usage(
            "cannot allocate tty if runc will detach without setting console socket".into(),
        ));
    }
    // The socket is only for a terminal nobody in the runtime stays to own.
    if (!terminal || !detached) && socket {
        return Err(Error::Usage(
            "cannot use console socket if runc will not detach or allocate tty".into(),
        ));
    }
    Ok(())
}

/// Where the container's pty master goes: `(ours, theirs)`. `theirs` is what the process
/// being set up sends the master on: the caller's `--console-socket`, or, with a terminal and no
/// socket (a foreground `run`/`exec`), one end of a socketpair whose other end, `ours`, the
/// runtime receives it from.
pub fn ends(socket: Option<&Path>, terminal: bool) -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    match socket {
        Some(p) => Ok((None, Some(connect(p)?))),
        None if terminal => {
            let (ours, theirs) = nix::sys::socket::socketpair(
                nix::sys::socket::AddressFamily::Unix,
                nix::sys::socket::SockType::Stream,
                None,
                nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            )
            .op("socketpair")?;
            Ok((Some(ours), Some(theirs)))
        }
        None => Ok((None, None)),
    }
}

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
    // SAFETY: TIOCSPTLCK reads one c_int from `unlock`, which we own.
    Errno::result(unsafe { libc::ioctl(fd, libc::TIOCSPTLCK, &mut unlock) }).op("unlockpt")?;
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one c_uint into `n`, which we own.
    Errno::result(unsafe { libc::ioctl(fd, libc::TIOCGPTN, &mut n) }).op("ptsname")?;
    // SAFETY: TIOCGPTPEER takes open flags as an integer argument and returns a new fd.
    let peer = Errno::result(unsafe {
        libc::ioctl(
            fd,
            TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    })
    .op("ioctl(TIOCGPTPEER)")?;
    // SAFETY: TIOCGPTPEER returned a fresh fd that nothing else owns.
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
    // SAFETY: TIOCSWINSZ reads one winsize from `ws`, which lives across the call.
    Errno::result(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) })
        .op("set console size")?;
    Ok(())
}

/// Bind the pty peer on the rootfs's /dev/console (init only, as runc does). The target must be
/// a plain file or device node *in* the container's /dev: a symlink planted there would send the
/// bind onto whatever it names — a /proc file, defeating masked and read-only paths
/// (CVE-2025-52565) — so it is refused, never followed.
pub fn bind_console(root: &Root, peer: &OwnedFd) -> Result<()> {
    let shown = root.host_path(Path::new("/dev/console"));
    let dev = root.ensure(Path::new("/dev"), Kind::Dir)?;
    let open = || {
        nix::fcntl::openat(
            &dev,
            "console",
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_NOFOLLOW
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
    };
    let target = match open() {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => {
            let created = nix::fcntl::openat(
                &dev,
                "console",
                nix::fcntl::OFlag::O_CREAT
                    | nix::fcntl::OFlag::O_EXCL
                    | nix::fcntl::OFlag::O_NOFOLLOW
                    | nix::fcntl::OFlag::O_WRONLY
                    | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::from_bits_truncate(0o600),
            )
            .ctx("create", &shown)?;
            drop(created);
            open().ctx("open", &shown)?
        }
        Err(e) => return Err(Error::path("open", &shown, e)),
    };
    let st = nix::sys::stat::fstat(&target).ctx("stat", &shown)?;
    let fmt = st.st_mode & libc::S_IFMT;
    if fmt != libc::S_IFREG && fmt != libc::S_IFCHR {
        return Err(Error::Usage(format!(
            "{}: refusing to bind the console onto something that is not a file or a device",
            shown.display()
        )));
    }
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
    // SAFETY: TIOCSCTTY takes an integer argument, no memory is passed.
    Errno::result(unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) }).op("ioctl(TIOCSCTTY)")?;
    Ok(())
}

fn dup2(from: RawFd, to: RawFd) -> Result<()> {
    // SAFETY: dup2 only manipulates the fd table; callers own `to` and replace it on purpose.
    Errno::result(unsafe { libc::dup2(from, to) }).op(format!("dup2 {from} {to}"))?;
    Ok(())
}

/// Receives the master the init sent over our own socketpair (foreground `run` with a terminal).
pub fn recv_master(sock: &OwnedFd) -> Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned};
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .op("receive console master")?;
    for c in msg.cmsgs().op("receive console master")? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: SCM_RIGHTS just installed this fd in our table; we are its only owner.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(Error::Init("container init sent no console".into()))
}

/// The runtime's end of a foreground terminal: stdin → master, master → stdout, window size
/// follows SIGWINCH. The caller's terminal is raw while the container runs, restored on drop.
pub struct Proxy {
    pub master: OwnedFd,
    saved: Option<nix::sys::termios::Termios>,
    stdin_open: bool,
}

impl Proxy {
    pub fn new(master: OwnedFd) -> Proxy {
        use nix::sys::termios;
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(&stdin).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            termios::cfmakeraw(&mut raw);
            let _ = termios::tcsetattr(&stdin, termios::SetArg::TCSANOW, &raw);
        }
        let p = Proxy {
            master,
            saved,
            stdin_open: true,
        };
        p.resize();
        p
    }

    /// Copies the caller's window size to the container's terminal.
    pub fn resize(&self) {
        // SAFETY: winsize is a plain C struct of integers, all-zero is a valid value.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ writes one winsize into `ws`, which we own.
        if unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } == 0 {
            let _ = set_size(&self.master, ws.ws_row, ws.ws_col);
        }
    }

    /// The fds to poll: stdin while it is open, and the master.
    pub fn poll_fds(&self) -> Vec<RawFd> {
        let mut v = vec![self.master.as_raw_fd()];
        if self.stdin_open {
            v.push(0);
        }
        v
    }

    /// Moves whatever is readable on `fd`; returns false when the master is finished.
    pub fn pump(&mut self, fd: RawFd) -> bool {
        let mut buf = [0u8; 8192];
        if fd == 0 {
            match nix::unistd::read(std::io::stdin(), &mut buf) {
                Ok(0) | Err(_) => self.stdin_open = false,
                Ok(n) => {
                    let _ = write_all(self.master.as_raw_fd(), &buf[..n]);
                }
            }
            return true;
        }
        match nix::unistd::read(&self.master, &mut buf) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                let _ = write_all(1, &buf[..n]);
                true
            }
        }
    }

    /// After the process exited: copy what is still buffered in the pty.
    pub fn drain(&mut self) {
        let fd = self.master.as_raw_fd();
        let _ = nix::fcntl::fcntl(
            &self.master,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        while self.pump(fd) {}
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                t,
            );
        }
    }
}

fn write_all(fd: RawFd, mut b: &[u8]) -> std::result::Result<(), Errno> {
    while !b.is_empty() {
        // SAFETY: `b` is a live slice; write reads at most `b.len()` bytes from it.
        let n = Errno::result(unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) })?;
        b = &b[n as usize..];
    }
    Ok(())
}
