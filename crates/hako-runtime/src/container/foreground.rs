//! A foreground `run` or `exec`: the runtime stays the process's parent, forwards the signals it
//! receives, proxies its terminal, reaps orphans, and exits with the process's status.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::{Context, Result};
use crate::init::console::Proxy;

/// Becomes a child subreaper (orphaned grandchildren, or a process forked by an intermediate, are
/// reaped here) and blocks every forwardable signal. Call it *before* the clone so no signal sent
/// in the window between clone and the wait loop is lost: blocked signals stay queued.
pub fn prepare() -> Result<SigSet> {
    let mut forwarded = SigSet::all();
    for s in [
        Signal::SIGKILL,
        Signal::SIGSTOP,
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGILL,
        Signal::SIGFPE,
        Signal::SIGTTIN,
        Signal::SIGTTOU,
        Signal::SIGTSTP,
    ] {
        forwarded.remove(s);
    }
    nix::sys::prctl::set_child_subreaper(true).op("prctl(PR_SET_CHILD_SUBREAPER)")?;
    forwarded.thread_block().op("sigprocmask")?;
    Ok(forwarded)
}

/// Waits for `pid` to exit, forwarding signals and pumping the terminal (if `console` is the pty
/// master). Returns the exit status, 128+N for a signal N.
pub fn wait(pid: i32, forwarded: &SigSet, console: Option<OwnedFd>) -> Result<i32> {
    let sfd = SignalFd::with_flags(forwarded, SfdFlags::SFD_CLOEXEC).op("signalfd")?;
    let mut proxy = console.map(Proxy::new);
    let mut master_open = proxy.is_some();
    let code = loop {
        let mut fds = vec![libc::pollfd {
            fd: sfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if let (Some(p), true) = (&proxy, master_open) {
            fds.extend(p.poll_fds().into_iter().map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            }));
        }
        // SAFETY: `fds` is a live Vec of pollfd and `len` is its length; poll writes only
        // `revents`.
        if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) } < 0 {
            continue;
        }
        if let Some(p) = proxy.as_mut() {
            for f in &fds[1..] {
                if f.revents != 0 && !p.pump(f.fd) && f.fd == p.master.as_raw_fd() {
                    master_open = false;
                }
            }
        }
        if fds[0].revents == 0 {
            continue;
        }
        let Some(info) = sfd.read_signal().op("read signalfd")? else {
            continue;
        };
        let sig = info.ssi_signo as i32;
        if sig == libc::SIGWINCH {
            if let Some(p) = &proxy {
                p.resize();
                continue;
            }
        }
        if sig == libc::SIGCHLD {
            if let Some(c) = reap(pid) {
                break c;
            }
            continue;
        }
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::try_from(sig).ok());
    };
    if let Some(p) = proxy.as_mut() {
        p.drain();
    }
    Ok(code)
}

/// Reaps every exited child; `Some(status)` once `pid` is among them.
fn reap(pid: i32) -> Option<i32> {
    let mut done = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, c)) if p.as_raw() == pid => done = Some(c),
            Ok(WaitStatus::Signaled(p, s, _)) if p.as_raw() == pid => done = Some(128 + s as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => break,
            Ok(_) => {}
        }
    }
    done
}
