//! `exec` (runc's exec.bats): the new process is inside every namespace and cgroup of the
//! container, gets the container's (or the flags') credentials, and exits with its own status.

use std::time::Duration;

use hako_tests::*;

const T: Duration = Duration::from_secs(10);

fn sleeper() -> Bundle {
    let mut b = Bundle::sh("echo init-was-here > /dev/shm/marker; exec sleep 1000");
    b.config["process"]["noNewPrivileges"] = json!(false);
    b
}

#[test]
fn exec_joins_every_namespace_and_exits_with_its_status() {
    require_root!();
    let h = Hako::new();
    let mut b = sleeper();
    b.config["hostname"] = json!("exec-host");
    let id = h.run_detached(&b);
    let init = h.pid(&id);
    let o = h.exec(&[
        &id,
        "sh",
        "-c",
        "hostname; cat /dev/shm/marker; for n in pid mnt net ipc uts cgroup; do \
             echo $n=$(readlink /proc/self/ns/$n); done; ps -o pid,args; exit 7",
    ]);
    assert_eq!(o.code, 7, "{o:#?}");
    let out = &o.stdout;
    assert!(out.contains("exec-host\n"), "{out}");
    assert!(out.contains("init-was-here\n"), "same mount ns: {out}");
    for ns in ["pid", "mnt", "net", "ipc", "uts", "cgroup"] {
        let theirs = std::fs::read_link(format!("/proc/{init}/ns/{ns}")).unwrap();
        let line = format!("{ns}={}\n", theirs.display());
        assert!(out.contains(&line), "{ns} differs: {out}");
    }
    // Inside the container's pid namespace: the init is 1 and `ps` sees itself.
    assert!(out.contains("    1 sleep 1000"), "{out}");
    h.kill(&id, "KILL").assert_ok();
}

#[test]
fn exec_status_of_a_signal_is_128_plus_n() {
    require_root!();
    let h = Hako::new();
    let b = sleeper(); // lives as long as the container: dropping it removes the rootfs
    let id = h.run_detached(&b);
    let o = h.exec(&[&id, "sh", "-c", "kill -9 $$"]);
    assert_eq!(o.code, 137, "{o:#?}");
}

#[test]
fn detached_exec_writes_pid_file_and_joins_cgroups() {
    require_root!();
    let h = Hako::new();
    let b = sleeper(); // lives as long as the container: dropping it removes the rootfs
    let id = h.run_detached(&b);
    let init = h.pid(&id);
    let pf = h.scratch().join("exec.pid");
    h.exec(&[
        "--detach",
        "--pid-file",
        pf.to_str().unwrap(),
        &id,
        "sleep",
        "100",
    ])
    .assert_ok();
    let text = read(&pf);
    assert!(!text.ends_with('\n'), "pid file has a trailing newline");
    let pid: i32 = text.parse().unwrap();
    assert!(pid_alive(pid));
    // Same cgroups as the init, controller by controller (host view).
    assert_eq!(
        read(format!("/proc/{pid}/cgroup")),
        read(format!("/proc/{init}/cgroup"))
    );
    let ps = h.cmd(&["ps", "--format", "json", &id]);
    ps.assert_ok();
    let pids: Vec<i32> = serde_json::from_str(&ps.stdout).unwrap();
    assert!(pids.contains(&pid) && pids.contains(&init), "{pids:?}");
}

#[test]
fn exec_user_env_cwd_and_groups() {
    require_root!();
    let h = Hako::new();
    let b = sleeper(); // lives as long as the container: dropping it removes the rootfs
    let id = h.run_detached(&b);
    let o = h.exec(&[
        "--user",
        "65534:100",
        "--additional-gids",
        "5",
        "--env",
        "FOO=bar baz",
        "--cwd",
        "/tmp",
        &id,
        "sh",
        "-c",
        "id -u; id -g; id -G; pwd; echo \"$FOO\"; echo $PATH",
    ]);
    o.assert_ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines[0], "65534");
    assert_eq!(lines[1], "100");
    assert!(lines[2].split(' ').any(|g| g == "5"), "{lines:?}");
    assert_eq!(lines[3], "/tmp");
    assert_eq!(lines[4], "bar baz");
    assert!(lines[5].contains("/bin"), "container env kept: {lines:?}");
}

/// runc 1.3: `exec --env` comes after the container's env and the last of each name wins (runc
/// 1.1 passed both, and the config's came first); HOME is the exec user's when the result has
/// none or an empty one.
#[test]
fn exec_env_overrides_the_containers() {
    require_root!();
    let h = Hako::new();
    let mut b = sleeper();
    b.config["process"]["env"] = json!(["PATH=/bin", "A=1", "HOME=/h", "B=b"]);
    let id = h.run_detached(&b);
    let lines = |o: Output| -> Vec<String> {
        o.assert_ok();
        o.stdout.lines().map(str::to_string).collect()
    };
    let o = h.exec(&["--env", "A=x", "--env", "A=y", "--env", "HOME=", &id, "env"]);
    assert_eq!(lines(o), ["PATH=/bin", "B=b", "A=y", "HOME=/root"]);
    let o = h.exec(&["--env", "B=c", &id, "env"]);
    assert_eq!(lines(o), ["PATH=/bin", "A=1", "HOME=/h", "B=c"]);
    let o = h.exec(&["--user", "65534", "--env", "HOME=", &id, "env"]);
    assert_eq!(lines(o), ["PATH=/bin", "A=1", "B=b", "HOME=/nonexistent"]);
    h.kill(&id, "KILL").assert_ok();
}

/// `exec` into a container whose env has no HOME: the exec user's home, as for the init.
#[test]
fn exec_without_home_gets_the_users() {
    require_root!();
    let h = Hako::new();
    let mut b = sleeper();
    b.config["process"]["env"] = json!(["PATH=/bin"]);
    let id = h.run_detached(&b);
    let o = h.exec(&["--user", "65534", &id, "sh", "-c", "echo $HOME"]);
    o.assert_ok();
    assert_eq!(o.stdout, "/nonexistent\n");
    h.kill(&id, "KILL").assert_ok();
}

/// runc 1.3's words for a failing execve in `exec` too (see process.rs).
#[test]
fn exec_failing_execve_words_like_runc_13() {
    require_root!();
    let h = Hako::new();
    let b = sleeper();
    bad_interpreter_script(&b.rootfs().join("run.sh"));
    let id = h.run_detached(&b);
    let o = h.exec(&[&id, "/run.sh"]);
    assert_eq!(o.code, 255, "{o:#?}");
    assert!(
        o.stderr.contains("exec /run.sh: no such file or directory"),
        "{o:#?}"
    );
    h.kill(&id, "KILL").assert_ok();
}

#[test]
fn exec_caps_and_no_new_privs() {
    require_root!();
    let h = Hako::new();
    let b = sleeper(); // lives as long as the container: dropping it removes the rootfs
    let id = h.run_detached(&b);
    let status = |extra: &[&str]| {
        let mut v: Vec<&str> = extra.to_vec();
        v.extend_from_slice(&[&id, "cat", "/proc/self/status"]);
        let o = h.exec(&v);
        o.assert_ok();
        o.stdout
    };
    let plain = status(&[]);
    let eff = cap_set(status_field(&plain, "CapEff").unwrap());
    assert!(!eff.contains(&21), "CAP_SYS_ADMIN without --cap: {eff:?}");
    assert_eq!(status_field(&plain, "NoNewPrivs"), Some("0"));
    let more = status(&["--cap", "CAP_SYS_ADMIN", "--no-new-privs"]);
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        assert!(
            cap_set(status_field(&more, set).unwrap()).contains(&21),
            "{set} lacks CAP_SYS_ADMIN: {more}"
        );
    }
    // runc (CVE-2022-29162): --cap never adds inheritable capabilities.
    assert!(!cap_set(status_field(&more, "CapInh").unwrap()).contains(&21));
    assert_eq!(status_field(&more, "NoNewPrivs"), Some("1"));
}

#[test]
fn exec_rlimits_from_config() {
    require_root!();
    let h = Hako::new();
    let mut b = sleeper();
    b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 321, "soft": 123}]);
    let id = h.run_detached(&b);
    let o = h.exec(&[&id, "sh", "-c", "ulimit -n; ulimit -Hn"]);
    o.assert_ok();
    if testing_runc() && o.stdout == "321\n321\n" {
        // runc 1.1.5 leaves the exec'd process with soft = hard; the config says 123.
        eprintln!("runc: exec rlimit soft limit not applied");
        return;
    }
    assert_eq!(o.stdout, "123\n321\n");
}

#[test]
fn exec_process_file() {
    require_root!();
    let h = Hako::new();
    let b = sleeper(); // lives as long as the container: dropping it removes the rootfs
    let id = h.run_detached(&b);
    let f = h.scratch().join("process.json");
    std::fs::write(
        &f,
        r#"{"terminal": false, "user": {"uid": 1234, "gid": 1234}, "cwd": "/etc",
            "args": ["sh", "-c", "id -u; pwd; echo $X"], "env": ["PATH=/bin", "X=from-file"]}"#,
    )
    .unwrap();
    let o = h.exec(&["--process", f.to_str().unwrap(), &id]);
    o.assert_ok();
    assert_eq!(o.stdout, "1234\n/etc\nfrom-file\n");
    // A field of the wrong type is named, and it is an exec failure (255, like runc).
    std::fs::write(
        &f,
        r#"{"user": {"uid": "x", "gid": 0}, "cwd": "/", "args": ["true"]}"#,
    )
    .unwrap();
    let o = h.exec(&["--process", f.to_str().unwrap(), &id]);
    assert_eq!(o.code, 255, "{o:#?}");
    assert!(o.stderr.contains("user.uid"), "{o:#?}");
}

#[test]
fn exec_only_stdio_and_preserved_fds() {
    require_root!();
    let h = Hako::new();
    let b = sleeper(); // lives as long as the container: dropping it removes the rootfs
    let id = h.run_detached(&b);
    let o = h.exec(&[&id, "ls", "/proc/self/fd"]);
    o.assert_ok();
    // ls's own directory fd is 3.
    assert_eq!(
        o.stdout.split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "2", "3"]
    );
    let (r, w) = pipe();
    drop(r);
    let o = h.cmd_opts(
        &[
            "exec",
            "--preserve-fds",
            "1",
            &id,
            "sh",
            "-c",
            "ls /proc/self/fd",
        ],
        CmdOpts {
            fds: vec![(w, 3)],
            ..Default::default()
        },
    );
    o.assert_ok();
    assert!(o.stdout.split_whitespace().any(|f| f == "3"), "{o:#?}");
}

#[test]
fn exec_with_tty_through_console_socket() {
    require_root!();
    let h = Hako::new();
    let b = sleeper(); // lives as long as the container: dropping it removes the rootfs
    let id = h.run_detached(&b);
    let sock = ConsoleSocket::listen(h.scratch());
    let pf = h.scratch().join("tty.pid");
    h.exec(&[
        "--tty",
        "--detach",
        "--console-socket",
        sock.path.to_str().unwrap(),
        "--pid-file",
        pf.to_str().unwrap(),
        &id,
        "sh",
        "-c",
        "tty; test -t 0 && echo stdin-tty",
    ])
    .assert_ok();
    let (payload, fds) = sock.recv().expect("console message");
    assert!(!payload.is_empty());
    assert_eq!(fds.len(), 1);
    let out = read_pty(&fds[0], T);
    assert!(out.starts_with("/dev/pts/"), "{out:?}");
    assert!(out.contains("stdin-tty"), "{out:?}");
    // --tty with --detach needs a console socket (runc's wording).
    let o = h.exec(&["--tty", "--detach", &id, "true"]);
    assert_eq!(o.code, 255);
    assert!(
        o.stderr.contains("cannot allocate tty if runc will detach"),
        "{o:#?}"
    );
}

#[test]
fn exec_refusals_use_runc_wording() {
    require_root!();
    let h = Hako::new();
    let b = sleeper(); // lives as long as the container: dropping it removes the rootfs
    let id = h.run_detached(&b);
    let o = h.exec(&[&id, "no-such-binary"]);
    assert_eq!(o.code, 255, "{o:#?}");
    assert!(
        o.stderr.contains("executable file not found in $PATH"),
        "{o:#?}"
    );
    let o = h.exec(&["nope", "true"]);
    assert_eq!(o.code, 255);
    assert!(o.stderr.contains("does not exist"), "{o:#?}");

    h.cmd(&["pause", &id]).assert_ok();
    let o = h.exec(&[&id, "true"]);
    assert_eq!(o.code, 255);
    assert!(
        o.stderr.contains("cannot exec in a paused container"),
        "{o:#?}"
    );
    h.cmd(&["resume", &id]).assert_ok();
    h.exec(&[&id, "true"]).assert_ok();

    h.kill(&id, "KILL").assert_ok();
    assert!(h.wait_status(&id, "stopped", T));
    let o = h.exec(&[&id, "true"]);
    assert_eq!(o.code, 255);
    assert!(
        o.stderr.contains("cannot exec in a stopped container"),
        "{o:#?}"
    );
}

#[test]
fn exec_in_a_user_namespace_container() {
    require_root!();
    let h = Hako::new();
    let mut b = sleeper();
    // The rootfs must be usable by the mapped root.
    b.in_user_namespace(200000, 200000)
        .chown_rootfs(200000, 200000);
    let id = h.run_detached(&b);
    let o = h.exec(&[&id, "sh", "-c", "id -u; cat /proc/self/uid_map"]);
    o.assert_ok();
    let mut lines = o.stdout.lines();
    assert_eq!(lines.next(), Some("0"));
    let map: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(map, ["0", "200000", "65536"]);
    let o = h.exec(&["--user", "1000", "--detach", &id, "sleep", "50"]);
    o.assert_ok();
    // Host view: the process runs as the mapped uid.
    let pids: Vec<i32> =
        serde_json::from_str(&h.cmd(&["ps", "--format", "json", &id]).stdout).unwrap();
    let uids: Vec<String> = pids
        .iter()
        .filter_map(|p| {
            std::fs::read_to_string(format!("/proc/{p}/status"))
                .ok()
                .and_then(|s| {
                    status_field(&s, "Uid")
                        .map(|u| u.split_whitespace().next().unwrap().to_string())
                })
        })
        .collect();
    assert!(uids.contains(&"201000".to_string()), "{uids:?}");
}

#[test]
fn exec_gets_the_containers_seccomp_filter() {
    require_root!();
    let h = Hako::new();
    let mut b = sleeper();
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    let id = h.run_detached(&b);
    for nnp in [false, true] {
        let mut args = vec![];
        if nnp {
            args.push("--no-new-privs");
        }
        args.extend_from_slice(&[
            id.as_str(),
            "sh",
            "-c",
            "grep '^Seccomp:' /proc/self/status; mkdir /dev/shm/x 2>&1 || echo refused",
        ]);
        let o = h.exec(&args);
        o.assert_ok();
        assert!(o.stdout.contains("Seccomp:\t2"), "nnp={nnp}: {o:#?}");
        assert!(o.stdout.contains("refused"), "nnp={nnp}: {o:#?}");
    }
}

/// `hako exec ARGS...` started in the background (stdout and stderr to files in the scratch
/// dir), returned once it has cloned its process: from then on it waits for that process.
fn exec_in_background(h: &Hako, args: &[&str]) -> (std::process::Child, std::path::PathBuf) {
    let out = h.scratch().join(format!("bg-exec-{}", unique()));
    let mut c = std::process::Command::new(hako_bin());
    c.arg("--root").arg(h.root()).arg("exec").args(args);
    c.stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(out.with_extension("err")).unwrap());
    let child = c.spawn().unwrap();
    let pid = child.id();
    let children = format!("/proc/{pid}/task/{pid}/children");
    assert!(
        wait_for(T, || !read(&children).trim().is_empty()),
        "exec never cloned its process"
    );
    (child, out)
}

fn wait_child(c: &mut std::process::Child) -> Option<std::process::ExitStatus> {
    let mut st = None;
    wait_for(T, || {
        st = c.try_wait().unwrap();
        st.is_some()
    });
    st
}

/// The deadlock of issue 8: an exec into a paused container (`--ignore-paused`) waits for a
/// process that cannot run until `resume`; it must not keep `resume` out meanwhile.
#[test]
fn exec_ignore_paused_lets_resume_through() {
    require_root!();
    let h = Hako::new();
    let b = sleeper();
    let id = h.run_detached(&b);
    h.cmd(&["pause", &id]).assert_ok();
    let (mut ex, out) = exec_in_background(&h, &["--ignore-paused", &id, "echo", "ran"]);
    // Every command on the container still gets through (each panics after 30 s otherwise).
    assert_eq!(h.status(&id), "paused");
    h.kill(&id, "0").assert_ok();
    h.cmd(&["resume", &id]).assert_ok();
    let st = wait_child(&mut ex).expect("exec did not finish after resume");
    assert!(st.success(), "{st:?}: {}", read(out.with_extension("err")));
    assert_eq!(read(&out), "ran\n");
    assert_eq!(h.status(&id), "running");
}

#[test]
fn exec_ignore_paused_lets_delete_force_through() {
    require_root!();
    let h = Hako::new();
    let b = sleeper();
    let id = h.run_detached(&b);
    h.cmd(&["pause", &id]).assert_ok();
    let (mut ex, _) = exec_in_background(&h, &["--ignore-paused", &id, "sleep", "1000"]);
    h.kill(&id, "KILL").assert_ok();
    h.delete_force(&id).assert_ok();
    assert!(!h.state_dir(&id).exists());
    // The exec's process died with the container, so the exec ends too.
    let st = wait_child(&mut ex).expect("exec outlived delete --force");
    assert!(!st.success(), "{st:?}");
}
