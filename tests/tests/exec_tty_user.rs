//! `exec` as runc's exec.bats and tty.bats drive it: a terminal only when asked for, the user's
//! cwd, stdio and terminal ownership, `--additional-gids`, `--preserve-fds`, a process.json with
//! defaults, and `consoleSize` for exec'd processes.

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use hako_tests::*;

const T: Duration = Duration::from_secs(10);

/// A running container whose config says `terminal: true` (as runc's bats use it: `run -d
/// --console-socket`). Returns the id and the init's pty master, which must stay open.
fn running_with_terminal(h: &Hako, b: &mut Bundle) -> (String, std::os::fd::OwnedFd) {
    b.config["process"]["terminal"] = json!(true);
    b.set_sh("exec sleep 1000");
    h.run_with_console(b)
}

#[test]
fn exec_gets_a_terminal_only_when_asked() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let (id, _master) = running_with_terminal(&h, &mut b);
    // No -t: plain stdio, whatever the container's own process says (no "\r\n" from a pty).
    let o = h.exec(&[
        &id,
        "sh",
        "-c",
        "test -t 1 && echo tty || echo no-tty; echo done",
    ]);
    o.assert_ok();
    assert_eq!(o.stdout, "no-tty\ndone\n", "{o:#?}");
    // So a detached exec needs no console socket.
    let pf = h.scratch().join("d.pid");
    h.exec(&["-d", "--pid-file", pf.to_str().unwrap(), &id, "sleep", "10"])
        .assert_ok();
    assert!(read(&pf).parse::<i32>().is_ok());
    // -t in the foreground: the runtime owns the pty (stdin is /dev/null, as in tty.bats).
    let o = h.exec(&["-t", &id, "sh", "-c", "readlink /proc/self/fd/1"]);
    if testing_runc() && o.stderr.contains("open /dev/tty") {
        eprintln!("runc: exec -t in the foreground needs a controlling terminal of its own");
    } else {
        o.assert_ok();
        assert!(o.stdout.starts_with("/dev/pts/"), "{o:#?}");
    }
    // runc's flag rules, in runc's words: -t -d without a socket, a socket in the foreground.
    let o = h.exec(&["-t", "-d", &id, "true"]);
    assert_eq!(o.code, 255, "{o:#?}");
    assert!(
        o.stderr
            .contains("cannot allocate tty if runc will detach without setting console socket"),
        "{o:#?}"
    );
    let sock = ConsoleSocket::listen(h.scratch());
    let o = h.exec(&[
        "-t",
        "--console-socket",
        sock.path.to_str().unwrap(),
        &id,
        "true",
    ]);
    assert_eq!(o.code, 255, "{o:#?}");
    assert!(
        o.stderr
            .contains("cannot use console socket if runc will not detach or allocate tty"),
        "{o:#?}"
    );
    // A process.json asking for a terminal, detached without a socket: the same refusal.
    let f = h.scratch().join("tty-process.json");
    std::fs::write(&f, r#"{"terminal": true, "args": ["true"], "cwd": "/"}"#).unwrap();
    let o = h.exec(&["-d", "-p", f.to_str().unwrap(), &id]);
    assert_eq!(o.code, 255, "{o:#?}");
    assert!(o.stderr.contains("cannot allocate tty"), "{o:#?}");
}

#[test]
fn exec_user_gets_a_cwd_only_root_can_enter() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::sh("exec sleep 1000");
    let secret = b.rootfs().join("secret");
    std::fs::create_dir(&secret).unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let id = h.run_detached(&b);
    // runc changes directory before the id change (and again after it, if the first failed).
    let o = h.exec(&[
        "--user",
        "1000",
        "--cwd",
        "/secret",
        &id,
        "sh",
        "-c",
        "pwd; id -u",
    ]);
    o.assert_ok();
    assert_eq!(o.stdout, "/secret\n1000\n", "{o:#?}");
    // The same for the container's own process.
    let mut b2 = Bundle::sh("pwd; id -u");
    let d = b2.rootfs().join("secret");
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    b2.config["process"]["cwd"] = json!("/secret");
    b2.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let o = h.run(&h.new_id(), &b2);
    o.assert_ok();
    assert_eq!(o.stdout, "/secret\n1000\n", "{o:#?}");
}

#[test]
fn exec_user_owns_stdio_but_never_dev_null() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::sh("exec sleep 1000");
    let id = h.run_detached(&b);
    let before = std::fs::metadata("/dev/null").unwrap();
    assert_eq!((before.uid(), before.gid()), (0, 0), "host /dev/null");
    // runc's exec.bats (runc#3674): stdin is the host's /dev/null.
    let pf = h.scratch().join("null.pid");
    h.exec(&[
        "-d",
        "--pid-file",
        pf.to_str().unwrap(),
        "--user",
        "1000:1000",
        &id,
        "id",
    ])
    .assert_ok();
    let after = std::fs::metadata("/dev/null").unwrap();
    assert_eq!((after.uid(), after.gid()), (0, 0), "host /dev/null chowned");
    // Detached, the caller's stdio become the container user's, so it may reopen them
    // (/dev/stdout) as runc's process may; /dev/null stays usable.
    let pf = h.scratch().join("user.pid");
    let o = h.exec(&[
        "-d",
        "--pid-file",
        pf.to_str().unwrap(),
        "--user",
        "1000:1000",
        &id,
        "sh",
        "-c",
        "echo via-dev-stderr > /dev/stderr; cat /dev/null; echo x > /dev/null && echo null-ok",
    ]);
    o.assert_ok();
    let pid: i32 = read(&pf).parse().unwrap();
    assert!(
        wait_for(T, || !pid_alive(pid)),
        "exec'd process did not end"
    );
    assert_eq!(o.stdout_now(), "null-ok\n", "{o:#?}");
    assert_eq!(o.stderr_now(), "via-dev-stderr\n", "{o:#?}");
    for f in [&o.stdout_path, &o.stderr_path] {
        let owner = std::fs::metadata(f).unwrap();
        assert_eq!(
            owner.uid(),
            1000,
            "{} belongs to the container user",
            f.display()
        );
    }
    // In the foreground a file of the caller's is never given away (runc hands the process pipes
    // of its own there).
    let o = h.exec(&["--user", "1000:1000", &id, "echo", "fg"]);
    o.assert_ok();
    assert_eq!(o.stdout, "fg\n");
    assert_eq!(std::fs::metadata(&o.stdout_path).unwrap().uid(), 0);
    let after = std::fs::metadata("/dev/null").unwrap();
    assert_eq!((after.uid(), after.gid()), (0, 0), "host /dev/null chowned");
}

#[test]
fn exec_additional_gids_are_added_to_the_configured_ones() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::sh("exec sleep 1000");
    b.config["process"]["user"]["additionalGids"] = json!([7]);
    let id = h.run_detached(&b);
    let o = h.exec(&[
        "--user",
        "1000:1000",
        "--additional-gids",
        "100",
        "--additional-gids",
        "65534",
        &id,
        "id",
        "-G",
    ]);
    o.assert_ok();
    assert_eq!(o.stdout.trim(), "1000 7 100 65534", "{o:#?}");
}

#[test]
fn exec_preserve_fds_passes_fd_4() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::sh("exec sleep 1000");
    let id = h.run_detached(&b);
    let f = h.scratch().join("preserve-fds.test");
    std::fs::write(&f, "hello\n").unwrap();
    let (r3, w3) = pipe();
    drop(w3);
    let file = std::fs::File::open(&f).unwrap();
    let o = h.cmd_opts(
        &["exec", "--preserve-fds=2", &id, "cat", "/proc/self/fd/4"],
        CmdOpts {
            fds: vec![(r3, 3), (std::os::fd::OwnedFd::from(file), 4)],
            ..Default::default()
        },
    );
    o.assert_ok();
    assert_eq!(o.stdout, "hello\n", "{o:#?}");
}

#[test]
fn exec_process_json_without_user_runs_as_root() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::sh("exec sleep 1000");
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let id = h.run_detached(&b);
    let f = h.scratch().join("process.json");
    std::fs::write(
        &f,
        r#"{"args": ["sh", "-c", "id -u; id -g"], "cwd": "/", "env": ["PATH=/bin"]}"#,
    )
    .unwrap();
    let o = h.exec(&["-p", f.to_str().unwrap(), &id]);
    o.assert_ok();
    assert_eq!(o.stdout, "0\n0\n", "{o:#?}");
}

/// `stat -c %u:%g $(tty)` through the container's terminal: the owner is the process's uid, the
/// group the devpts `gid=5` (tty) of the default config, as runc's tty.bats expects.
fn tty_owner_via_socket(h: &Hako, id: &str, user: Option<&str>) -> String {
    let sock = ConsoleSocket::listen(h.scratch());
    let pf = h.scratch().join(format!("tty-{}.pid", unique()));
    let mut args = vec![
        "-t",
        "-d",
        "--console-socket",
        sock.path.to_str().unwrap(),
        "--pid-file",
        pf.to_str().unwrap(),
    ];
    if let Some(u) = user {
        args.extend_from_slice(&["--user", u]);
    }
    args.extend_from_slice(&[id, "sh", "-c", "stat -c %u:%g $(tty)"]);
    h.exec(&args).assert_ok();
    let (_, fds) = sock.recv().expect("console message");
    read_pty(&fds[0], T).trim().to_string()
}

#[test]
fn terminal_belongs_to_the_container_user() {
    require_root!();
    let h = Hako::new();
    // run: the init's terminal.
    let mut b = Bundle::sh("stat -c %u:%g $(tty)");
    b.config["process"]["terminal"] = json!(true);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 100});
    let (_, master) = h.run_with_console(&b);
    assert_eq!(read_pty(&master, T).trim(), "1000:5");
    // exec: as the container's user, and as the one --user names.
    let mut b = Bundle::sh("exec sleep 1000");
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 100});
    let id = h.run_detached(&b);
    assert_eq!(tty_owner_via_socket(&h, &id, None), "1000:5");
    assert_eq!(tty_owner_via_socket(&h, &id, Some("1234:1234")), "1234:5");
    assert_eq!(tty_owner_via_socket(&h, &id, Some("0")), "0:5");
}

#[test]
fn exec_console_size_from_process_json() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::sh("exec sleep 1000");
    let id = h.run_detached(&b);
    let f = h.scratch().join("size.json");
    std::fs::write(
        &f,
        r#"{"terminal": true, "consoleSize": {"height": 10, "width": 110},
            "args": ["stty", "size"], "cwd": "/", "env": ["PATH=/bin"]}"#,
    )
    .unwrap();
    let sock = ConsoleSocket::listen(h.scratch());
    h.exec(&[
        "-d",
        "--console-socket",
        sock.path.to_str().unwrap(),
        "-p",
        f.to_str().unwrap(),
        &id,
    ])
    .assert_ok();
    let (_, fds) = sock.recv().expect("console message");
    assert_eq!(read_pty(&fds[0], T).trim(), "10 110");
}

#[test]
fn exec_user_gets_a_cwd_only_the_user_can_enter() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::sh("exec sleep 1000");
    b.in_user_namespace(200000, 200000)
        .chown_rootfs(200000, 200000);
    // Owned by a host uid the container does not map, group = the container's gid 1000, 0770:
    // the container's root has no override on it (its owner is not mapped) and is not in the
    // group; the user with gid 1000 may enter. runc tries again after the id change.
    let d = b.rootfs().join("groupdir");
    std::fs::create_dir(&d).unwrap();
    std::os::unix::fs::chown(&d, Some(100), Some(201000)).unwrap();
    std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o770)).unwrap();
    let id = h.run_detached(&b);
    let o = h.exec(&[
        "--user",
        "1000:1000",
        "--cwd",
        "/groupdir",
        &id,
        "sh",
        "-c",
        "pwd; id -u",
    ]);
    o.assert_ok();
    assert_eq!(o.stdout, "/groupdir\n1000\n", "{o:#?}");
    // And root, who may not enter it, gets runc's failure.
    let o = h.exec(&["--cwd", "/groupdir", &id, "true"]);
    assert_eq!(o.code, 255, "{o:#?}");
    assert!(o.stderr.contains("permission denied"), "{o:#?}");
}
