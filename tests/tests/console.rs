//! process.terminal with --console-socket (runc's tty.bats), and the flag rules around it.

use std::os::fd::AsRawFd;
use std::time::Duration;

use hako_tests::*;

const T: Duration = Duration::from_secs(10);

fn tty_bundle(script: &str) -> Bundle {
    let mut b = Bundle::sh(script);
    b.config["process"]["terminal"] = json!(true);
    b
}

#[test]
fn console_socket_receives_pty_master() {
    require_root!();
    let h = Hako::new();
    let mut b = tty_bundle(
        "tty; test -t 0 && echo in-is-tty; test -t 1 && echo out-is-tty; stty size; \
         ls -l /dev/console | cut -c1",
    );
    b.config["process"]["consoleSize"] = json!({"height": 30, "width": 100});
    let sock = ConsoleSocket::listen(h.scratch());
    let id = h.new_id();
    h.create_with(&id, &b, &["--console-socket", sock.path.to_str().unwrap()])
        .assert_ok();
    let (payload, fds) = sock.recv().expect("console message");
    assert!(
        !payload.is_empty(),
        "SCM_RIGHTS message with an empty payload"
    );
    assert_eq!(fds.len(), 1, "exactly one fd");
    let master = &fds[0];
    // It is a pty master: TIOCGPTN works on it.
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one c_uint into `n`, which we own.
    let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) };
    assert_eq!(r, 0, "received fd is not a pty master");
    assert_eq!(h.status(&id), "created");
    h.start(&id).assert_ok();
    let out = read_pty(master, T);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("/dev/pts/"), "{out:?}");
    assert!(lines.contains(&"in-is-tty"), "{out:?}");
    assert!(lines.contains(&"out-is-tty"), "{out:?}");
    assert!(
        lines.contains(&"30 100"),
        "consoleSize not applied: {out:?}"
    );
    // /dev/console is the pty (a character device).
    assert_eq!(lines.last(), Some(&"c"), "{out:?}");
    assert!(h.wait_status(&id, "stopped", T));
}

#[test]
fn console_input_reaches_process() {
    require_root!();
    let h = Hako::new();
    let b = tty_bundle("read line; echo \"got:$line\"");
    let (id, master) = h.run_with_console(&b);
    nix::unistd::write(&master, b"hello\n").unwrap();
    let out = read_pty(&master, T);
    assert!(out.contains("got:hello"), "{out:?}");
    assert!(h.wait_status(&id, "stopped", T));
}

#[test]
fn terminal_detached_without_console_socket_fails() {
    require_root!();
    let h = Hako::new();
    let b = tty_bundle("true");
    for cmd in ["create", "run-d"] {
        let id = h.new_id();
        let o = if cmd == "create" {
            h.create(&id, &b)
        } else {
            h.run_with(&id, &b, &["-d"])
        };
        o.assert_err();
        assert!(
            o.stderr
                .contains("cannot allocate tty if runc will detach without setting console socket"),
            "{cmd}: {o:?}"
        );
        assert!(!h.state_dir(&id).exists(), "{cmd}");
    }
}

#[test]
fn console_socket_without_terminal_fails() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::sh("true");
    let sock = h.scratch().join("unused.sock");
    let id = h.new_id();
    let o = h.create_with(&id, &b, &["--console-socket", sock.to_str().unwrap()]);
    o.assert_err();
    assert!(
        o.stderr
            .contains("cannot use console socket if runc will not detach or allocate tty"),
        "{o:?}"
    );
    assert!(!h.state_dir(&id).exists());
}

#[test]
fn console_socket_missing_fails_cleanly() {
    require_root!();
    let h = Hako::new();
    let b = tty_bundle("true");
    let sock = h.scratch().join("nobody-listens.sock");
    let id = h.new_id();
    let o = h.create_with(&id, &b, &["--console-socket", sock.to_str().unwrap()]);
    o.assert_err();
    assert!(o.stderr.contains(sock.to_str().unwrap()), "{o:?}");
    assert!(!h.state_dir(&id).exists());
    assert!(
        wait_for(T, || processes_using(b.path()).is_empty()),
        "leftover processes: {:?}",
        processes_using(b.path())
    );
}

#[test]
fn run_foreground_with_terminal_proxies_output() {
    require_root!();
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::{Command, Stdio};
    let h = Hako::new();
    let b = tty_bundle("tty; test -t 1 && echo out-is-tty; exit 4");
    b.save();
    let id = h.new_id();
    // The runtime needs a controlling terminal of its own, as in an interactive shell.
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave = std::fs::File::from(pty.slave);
    let mut c = Command::new(hako_bin());
    c.arg("--root")
        .arg(h.root())
        .args(["run", "--bundle", b.path().to_str().unwrap(), &id])
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave));
    // SAFETY: the closure runs in the forked child before exec and only calls setsid and ioctl
    // (async-signal-safe).
    unsafe {
        c.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = c.spawn().expect("spawn");
    drop(c);
    let master = pty.master;
    let reader = std::thread::spawn(move || read_pty(&master, T));
    assert!(
        wait_for(T, || child.try_wait().unwrap().is_some()),
        "run with a terminal did not finish"
    );
    let st = child.wait().unwrap();
    let out = reader.join().unwrap();
    assert_eq!(st.code(), Some(4), "{st:?} {:?}: {out:?}", st.signal());
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines.first().is_some_and(|l| l.starts_with("/dev/pts/")),
        "{out:?}"
    );
    assert!(lines.contains(&"out-is-tty"), "{out:?}");
}

/// A read-only /dev still gets /dev/console (bound before /dev turns read-only) and its pty.
#[test]
fn console_with_readonly_dev() {
    require_root!();
    let h = Hako::new();
    let mut b = tty_bundle("test -c /dev/console && echo console-ok; touch /dev/x 2>&1; true");
    for m in b.config["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/dev" {
            m["options"].as_array_mut().unwrap().push(json!("ro"));
        }
    }
    let (id, master) = h.run_with_console(&b);
    let out = read_pty(&master, T);
    assert!(out.contains("console-ok"), "{out:?}");
    assert!(out.contains("Read-only file system"), "{out:?}");
    assert!(h.wait_status(&id, "stopped", T));
}
