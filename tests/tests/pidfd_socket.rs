//! `--pidfd-socket` (runc 1.2+) for `create`, `run` and `exec`: the caller receives a pidfd of
//! the container's process on the AF_UNIX socket, one SCM_RIGHTS message whose payload names
//! the kind of process as runc's (`standard` for the init, `setns` for an exec'd process).
//! Checked as a caller would use it: /proc/self/fdinfo's `Pid:` of the fd (only a pidfd has
//! one) is the process's pid, and pidfd_send_signal through it kills that very process.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use hako_tests::*;

const T: Duration = Duration::from_secs(10);

/// The one fd of the message, checked to be a pidfd of `pid`, and the payload.
#[track_caller]
fn pidfd_of(msg: ConsoleMessage, pid: i32) -> (String, OwnedFd) {
    let (payload, mut fds) = msg;
    assert_eq!(fds.len(), 1, "exactly one fd");
    let fd = fds.pop().unwrap();
    let info = read(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()));
    assert_eq!(
        status_field(&info, "Pid"),
        Some(pid.to_string().as_str()),
        "not a pidfd of {pid}: {info}"
    );
    (String::from_utf8(payload).unwrap(), fd)
}

fn kill_through(pidfd: &OwnedFd) {
    // SAFETY: pidfd_send_signal takes a pidfd we own, a signal number and null info.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "pidfd_send_signal: {}",
        std::io::Error::last_os_error()
    );
}

#[test]
fn create_and_exec_send_pidfds() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::sh("sleep 1000");
    let id = h.new_id();
    let sock = ConsoleSocket::listen(h.scratch());
    h.create_with(&id, &b, &["--pidfd-socket", sock.path.to_str().unwrap()])
        .assert_ok();
    let pid = h.pid(&id);
    let (name, init_fd) = pidfd_of(sock.recv().expect("pidfd message"), pid);
    assert_eq!(name, "standard");
    h.start(&id).assert_ok();

    let sock = ConsoleSocket::listen(h.scratch());
    let pf = h.scratch().join(format!("exec-{}.pid", unique()));
    h.cmd(&[
        "exec",
        "-d",
        "--pidfd-socket",
        sock.path.to_str().unwrap(),
        "--pid-file",
        pf.to_str().unwrap(),
        &id,
        "sleep",
        "1000",
    ])
    .assert_ok();
    let epid: i32 = read(&pf).trim().parse().unwrap();
    let (name, exec_fd) = pidfd_of(sock.recv().expect("pidfd message"), epid);
    assert_eq!(name, "setns");
    kill_through(&exec_fd);
    assert!(wait_for(T, || !pid_alive(epid) || proc_state(epid) == Some('Z')));
    assert_eq!(
        h.status(&id),
        "running",
        "the exec's pidfd reached the init"
    );
    kill_through(&init_fd);
    assert!(h.wait_status(&id, "stopped", T));
}

#[test]
fn run_sends_the_init_pidfd() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::sh("sleep 1000");
    let id = h.new_id();
    let sock = ConsoleSocket::listen(h.scratch());
    h.run_with(
        &id,
        &b,
        &["-d", "--pidfd-socket", sock.path.to_str().unwrap()],
    )
    .assert_ok();
    let pid = h.pid(&id);
    let (name, fd) = pidfd_of(sock.recv().expect("pidfd message"), pid);
    assert_eq!(name, "standard");
    kill_through(&fd);
    assert!(h.wait_status(&id, "stopped", T));
}

/// A socket nobody listens on: the create fails before anything exists.
#[test]
fn pidfd_socket_that_cannot_be_reached() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::sh("true");
    let id = h.new_id();
    let missing = h.scratch().join("nobody.sock");
    let o = h.create_with(&id, &b, &["--pidfd-socket", missing.to_str().unwrap()]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("nobody.sock"), "{o:?}");
    let o = h.cmd(&["state", &id]);
    assert!(!o.ok(), "{o:?}");
}
