//! create / start / state / kill / delete / run / list, as runc's create.bats, start.bats,
//! state.bats, delete.bats, kill.bats, run.bats and list.bats check them.

use std::fs;
use std::time::Duration;

use hako_tests::*;

const T: Duration = Duration::from_secs(10);

/// A container whose process (`true`) has exited: `run -d`, then `stopped`. The bundle must
/// outlive the container.
#[track_caller]
fn stopped_container(h: &Hako) -> (Bundle, String) {
    let b = Bundle::sh("true");
    let id = h.new_id();
    h.run_with(&id, &b, &["-d"]).assert_ok();
    assert!(h.wait_status(&id, "stopped", T));
    (b, id)
}

#[test]
fn create_start_stopped_delete() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let out = b.out_dir();
    b.set_sh("echo ran > /out/ran");
    let id = h.new_id();
    h.create(&id, &b).assert_ok();

    let st = h.state(&id);
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["id"], id.as_str());
    // The runtime-spec version the runtime implements (runc 1.3 prints its 1.2.1), not the
    // config's (the bundle says 1.0.2-dev).
    if !testing_runc() {
        assert_eq!(st["ociVersion"], "1.3.0", "{st}");
    }
    let pid = st["pid"].as_i64().unwrap() as i32;
    assert!(pid > 0, "{st}");
    assert!(
        pid_alive(pid),
        "init process {pid} of a created container must exist"
    );
    assert_eq!(
        fs::canonicalize(st["bundle"].as_str().unwrap()).unwrap(),
        fs::canonicalize(b.path()).unwrap()
    );
    assert!(st["rootfs"].as_str().unwrap().ends_with("rootfs"), "{st}");
    assert!(st["created"].as_str().unwrap().contains('T'), "{st}");
    assert!(h.state_dir(&id).is_dir(), "<root>/<id> exists after create");
    // The user command has not run yet.
    std::thread::sleep(Duration::from_millis(100));
    assert!(!out.join("ran").exists(), "process ran before start");

    h.start(&id).assert_ok();
    assert!(
        wait_for(T, || read(out.join("ran")) == "ran\n"),
        "process did not run after start"
    );
    assert!(h.wait_status(&id, "stopped", T), "{}", h.state(&id));
    assert_eq!(h.state(&id)["pid"], 0);
    assert!(!pid_alive(pid));

    h.delete(&id).assert_ok();
    assert!(
        !h.state_dir(&id).exists(),
        "<root>/<id> remains after delete"
    );
    let st = h.cmd(&["state", &id]);
    st.assert_err();
    assert!(st.stderr.contains("does not exist"), "{st:?}");
}

/// A created container's waiting init shows as what it is, as runc's shows `runc init`: it is
/// a clone of `hako create`, and showed that command line (with the id) until start.
#[test]
fn waiting_init_is_named_in_ps() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    b.set_sh("sleep 100");
    let id = h.new_id();
    h.create(&id, &b).assert_ok();
    let pid = h.pid(&id);
    let cmdline = read(format!("/proc/{pid}/cmdline"));
    let comm = read(format!("/proc/{pid}/comm"));
    if testing_runc() {
        assert_eq!(cmdline, "runc\0init\0");
    } else {
        assert_eq!(cmdline, "hako init\0");
        assert_eq!(comm.trim(), "hako:[INIT]");
    }
    let ps = std::process::Command::new("ps")
        .args(["-o", "args=", "-p", &pid.to_string()])
        .output()
        .unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    assert!(ps.trim().ends_with(" init"), "ps shows {ps:?}");
    assert!(
        !ps.contains(&id),
        "ps shows the create command line: {ps:?}"
    );
    h.start(&id).assert_ok();
    assert!(
        wait_for(T, || read(format!("/proc/{pid}/cmdline"))
            .starts_with("sleep\0")),
        "the started process keeps the title"
    );
}

#[test]
fn running_then_kill() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::sh("sleep 100");
    let id = h.new_id();
    h.create(&id, &b).assert_ok();
    h.start(&id).assert_ok();
    assert_eq!(h.status(&id), "running");
    let pid = h.pid(&id);
    assert!(pid_alive(pid));
    // sleep as pid 1 ignores SIGTERM (no handler, pid-ns init): KILL always works.
    h.kill(&id, "KILL").assert_ok();
    assert!(h.wait_status(&id, "stopped", T));
    assert!(wait_for(T, || !pid_alive(pid)));
    h.delete(&id).assert_ok();
    assert!(!h.state_dir(&id).exists());
}

#[test]
fn kill_signal_spellings() {
    require_root!();
    let h = Hako::new();
    for sig in ["KILL", "SIGKILL", "9"] {
        let b = Bundle::sh("sleep 100");
        let id = h.new_id();
        h.run_with(&id, &b, &["--detach"]).assert_ok();
        assert_eq!(h.status(&id), "running");
        h.kill(&id, sig).assert_ok();
        assert!(
            h.wait_status(&id, "stopped", T),
            "signal {sig} did not stop the container"
        );
        h.delete(&id).assert_ok();
    }
}

#[test]
fn kill_default_is_sigterm_and_handled() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let out = b.out_dir();
    // pid 1 only gets signals it has a handler for.
    b.set_sh(
        "trap 'echo term > /out/sig; exit 0' TERM; echo up > /out/up; while :; do sleep 0.05; done",
    );
    let id = h.new_id();
    h.run_with(&id, &b, &["-d"]).assert_ok();
    assert!(wait_for(T, || out.join("up").exists()));
    h.cmd(&["kill", &id]).assert_ok();
    assert!(wait_for(T, || read(out.join("sig")) == "term\n"));
    assert!(h.wait_status(&id, "stopped", T));
}

#[test]
fn kill_bad_signal_fails() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::sh("sleep 100");
    let id = h.new_id();
    h.run_with(&id, &b, &["-d"]).assert_ok();
    let o = h.kill(&id, "SIGNOPE");
    o.assert_err();
    // runc: unknown signal "SIGNOPE"
    assert!(o.stderr.contains("unknown signal"), "{o:?}");
    assert_eq!(h.status(&id), "running");
}

/// runc takes any number: 0 only checks that the init is alive, an unknown one fails when sent.
#[test]
fn kill_signal_zero_probes_the_init() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let out = b.out_dir();
    b.set_sh("trap 'echo got > /out/sig' USR1; touch /out/up; while :; do sleep 1; done");
    let id = h.new_id();
    h.run_with(&id, &b, &["-d"]).assert_ok();
    assert!(wait_for(T, || out.join("up").exists()));
    h.kill(&id, "0").assert_ok();
    assert_eq!(h.status(&id), "running");
    let o = h.kill(&id, "99");
    o.assert_err();
    assert!(
        o.stderr.contains("unable to signal init: invalid argument"),
        "{o:?}"
    );
    // A number reaches the process as that signal (10 is SIGUSR1 on x86 and arm).
    h.kill(&id, "10").assert_ok();
    assert!(wait_for(T, || read(out.join("sig")) == "got\n"));
    h.kill(&id, "KILL").assert_ok();
    assert!(h.wait_status(&id, "stopped", T));
    let o = h.kill(&id, "0");
    o.assert_err();
    assert!(o.stderr.contains("container not running"), "{o:?}");
}

#[test]
fn kill_all() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let out = b.out_dir();
    // Share the host pid namespace so kill --all has to find the processes by cgroup.
    b.config["linux"]["namespaces"] = json!([
        {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}
    ]);
    b.set_sh("sleep 100 & echo $! > /out/child; wait");
    let id = h.new_id();
    h.run_with(&id, &b, &["-d"]).assert_ok();
    assert!(wait_for(T, || read(out.join("child"))
        .trim()
        .parse::<i32>()
        .is_ok()));
    let child: i32 = read(out.join("child")).trim().parse().unwrap();
    let init = h.pid(&id);
    assert!(pid_alive(child) && pid_alive(init));
    h.cmd(&["kill", "--all", &id, "KILL"]).assert_ok();
    assert!(
        wait_for(T, || !pid_alive(child)),
        "child survived kill --all"
    );
    assert!(h.wait_status(&id, "stopped", T));
}

/// runc 1.2+: `kill --all` of a stopped container is no error (runc 1.1: "container not
/// running").
#[test]
fn kill_all_of_a_stopped_container_succeeds() {
    require_root!();
    let h = Hako::new();
    let (_b, id) = stopped_container(&h);
    h.cmd(&["kill", "-a", &id, "0"]).assert_ok();
    h.cmd(&["kill", "--all", &id, "KILL"]).assert_ok();
}

/// A background child of a container sharing the host's pid namespace; returns its host pid.
fn shared_pid_ns_child(h: &Hako, b: &mut Bundle, id: &str, then: &str) -> i32 {
    let out = b.out_dir();
    b.config["linux"]["namespaces"] = json!([
        {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}
    ]);
    b.set_sh(&format!("sleep 100 & echo $! > /out/child; {then}"));
    h.run_with(id, b, &["-d"]).assert_ok();
    assert!(wait_for(T, || read(out.join("child"))
        .trim()
        .parse::<i32>()
        .is_ok()));
    let child = read(out.join("child")).trim().parse().unwrap();
    assert!(pid_alive(child));
    child
}

/// runc 1.2+: SIGKILL to a container without its own pid namespace goes to every process of its
/// cgroup (with one, the kernel does that when the init dies), also once the init is gone
/// (runc 1.1 and hako before: the init only, or "container not running").
#[test]
fn kill_without_pid_ns_kills_the_whole_cgroup() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let id = h.new_id();
    let child = shared_pid_ns_child(&h, &mut b, &id, "exec sleep 100");
    h.kill(&id, "KILL").assert_ok();
    assert!(wait_for(T, || !pid_alive(child)), "child survived KILL");
    assert!(h.wait_status(&id, "stopped", T));

    let mut b = Bundle::new();
    let id = h.new_id();
    let child = shared_pid_ns_child(&h, &mut b, &id, "exit 0");
    assert!(h.wait_status(&id, "stopped", T));
    assert!(pid_alive(child), "the child outlives the init");
    h.kill(&id, "KILL").assert_ok();
    assert!(wait_for(T, || !pid_alive(child)), "child survived KILL");
    // Other signals still need a running init.
    let o = h.kill(&id, "TERM");
    assert!(o.stderr.contains("container not running"), "{o:?}");
}

#[test]
fn kill_stopped_container_fails() {
    require_root!();
    let h = Hako::new();
    let (_b, id) = stopped_container(&h);
    let o = h.kill(&id, "KILL");
    o.assert_err();
    assert!(o.stderr.contains("container not running"), "{o:?}");
}

#[test]
fn start_requires_created() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::sh("sleep 100");
    let id = h.new_id();
    h.create(&id, &b).assert_ok();
    h.start(&id).assert_ok();
    let again = h.start(&id);
    again.assert_err();
    assert!(
        again
            .stderr
            .contains("cannot start an already running container"),
        "{again:?}"
    );
    assert_eq!(h.status(&id), "running");

    let unknown = h.start("no-such-container");
    unknown.assert_err();
    assert!(unknown.stderr.contains("does not exist"), "{unknown:?}");
}

#[test]
fn start_stopped_fails() {
    require_root!();
    let h = Hako::new();
    let (_b, id) = stopped_container(&h);
    let o = h.start(&id);
    o.assert_err();
    assert!(
        o.stderr
            .contains("cannot start a container that has stopped"),
        "{o:?}"
    );
}

#[test]
fn delete_running_needs_force() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::sh("sleep 100");
    let id = h.new_id();
    h.run_with(&id, &b, &["-d"]).assert_ok();
    let pid = h.pid(&id);
    let o = h.delete(&id);
    o.assert_err();
    // runc: "cannot delete container ID that is not stopped: running"
    assert!(o.stderr.contains("not stopped: running"), "{o:?}");
    assert_eq!(h.status(&id), "running");
    assert!(pid_alive(pid));

    h.delete_force(&id).assert_ok();
    assert!(!h.state_dir(&id).exists());
    assert!(
        wait_for(T, || !pid_alive(pid)),
        "init survived delete --force"
    );
    assert!(h.cmd(&["state", &id]).stderr.contains("does not exist"));
}

#[test]
fn delete_created_container() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let out = b.out_dir();
    b.set_sh("echo ran > /out/ran");
    let id = h.new_id();
    h.create(&id, &b).assert_ok();
    let pid = h.pid(&id);
    // runc deletes a created container without --force, killing its init.
    h.delete(&id).assert_ok();
    assert!(!h.state_dir(&id).exists());
    assert!(wait_for(T, || !pid_alive(pid)));
    assert!(
        !out.join("ran").exists(),
        "deleting a created container ran it"
    );
}

#[test]
fn delete_unknown() {
    require_root!();
    let h = Hako::new();
    let o = h.delete("no-such-container");
    o.assert_err();
    assert!(o.stderr.contains("does not exist"), "{o:?}");
    // --force of an unknown container succeeds quietly (runc).
    h.delete_force("no-such-container").assert_ok();
}

#[test]
fn run_exit_code_passthrough() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::sh("exit 7");
    let id = h.new_id();
    assert_eq!(h.run(&id, &b).code, 7);
    assert!(
        !h.state_dir(&id).exists(),
        "run without --keep leaves state"
    );

    let b = Bundle::sh("exit 0");
    assert_eq!(h.run(&h.new_id(), &b).code, 0);
}

#[test]
fn run_killed_by_signal_is_128_plus() {
    require_root!();
    let h = Hako::new();
    // Without a pid namespace the shell is not an init, so it can kill itself.
    let mut b = Bundle::sh("kill -9 $$");
    b.config["linux"]["namespaces"] = json!([{"type": "mount"}]);
    b.config.as_object_mut().unwrap().remove("hostname");
    let o = h.run(&h.new_id(), &b);
    assert_eq!(o.code, 137, "{o:?}");
    let mut b = Bundle::sh("kill -TERM $$");
    b.config["linux"]["namespaces"] = json!([{"type": "mount"}]);
    b.config.as_object_mut().unwrap().remove("hostname");
    let o = h.run(&h.new_id(), &b);
    assert_eq!(o.code, 143, "{o:?}");
}

#[test]
fn run_stdout_stderr() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::sh("echo out; echo err >&2");
    let o = h.run(&h.new_id(), &b);
    o.assert_ok();
    assert_eq!(o.stdout, "out\n");
    assert_eq!(o.stderr, "err\n");
}

#[test]
fn run_stdin() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::sh("cat");
    let id = h.new_id();
    h.track(&id);
    b.save();
    let o = h.cmd_opts(
        &["run", "--bundle", b.path().to_str().unwrap(), &id],
        CmdOpts {
            stdin: Some(b"hello stdin\n".to_vec()),
            ..Default::default()
        },
    );
    o.assert_ok();
    assert_eq!(o.stdout, "hello stdin\n");
}

#[test]
fn run_detach() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::sh("echo detached; sleep 100");
    let id = h.new_id();
    let o = h.run_with(&id, &b, &["--detach"]);
    o.assert_ok();
    assert_eq!(h.status(&id), "running");
    assert!(
        wait_for(T, || o.stdout_now() == "detached\n"),
        "{:?}",
        o.stdout_now()
    );
    h.kill(&id, "9").assert_ok();
    assert!(h.wait_status(&id, "stopped", T));
    h.delete(&id).assert_ok();
}

/// `run` releases the init over its channel: the container is `running` with the init's pid
/// as soon as `run -d` returns (the pid file says the same), there is no start socket to connect
/// to, and `start` refuses it as runc does a running container.
#[test]
fn run_detach_is_running_with_its_pid_and_no_start_socket() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::sh("echo $$ > /out/pid; exec sleep 100");
    let out = b.out_dir();
    let id = h.new_id();
    // What the state directory holds while the init sets up (a createContainer hook runs on the
    // host's side of the mounts): `create` makes the start socket there, `run` has no use for it.
    b.config["hooks"] = json!({"createContainer": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("ls -A {} > {}/ls", h.state_dir(&id).display(), out.display())],
    }]});
    let pf = h.scratch().join("run.pid");
    h.run_with(&id, &b, &["-d", "--pid-file", pf.to_str().unwrap()])
        .assert_ok();
    let st = h.state(&id);
    assert_eq!(st["status"], "running", "{st}");
    let pid = st["pid"].as_i64().unwrap() as i32;
    assert_eq!(read(&pf), pid.to_string());
    assert!(pid_alive(pid));
    // The recorded pid is the container's init (pid 1 inside), and it runs the user's process.
    assert!(wait_for(T, || read(out.join("pid")).trim() == "1"));
    assert!(
        wait_for(T, || {
            fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.starts_with("sleep\0"))
        }),
        "pid {pid} is not the container's process"
    );
    let listed = read(out.join("ls"));
    assert!(listed.contains("state.json"), "{listed:?}");
    if !testing_runc() {
        assert!(
            !listed.contains("start.sock"),
            "run made a start socket: {listed:?}"
        );
    }
    let o = h.start(&id);
    o.assert_err();
    assert!(
        o.stderr
            .contains("cannot start an already running container"),
        "{o:?}"
    );
    h.delete_force(&id).assert_ok();
}

#[test]
fn run_keep_keeps_state() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::sh("exit 3");
    let id = h.new_id();
    let o = h.run_with(&id, &b, &["--keep"]);
    assert_eq!(o.code, 3);
    assert_eq!(h.status(&id), "stopped");
    h.delete(&id).assert_ok();
}

#[test]
fn pid_file() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::sh("sleep 100");
    let id = h.new_id();
    let pf = h.scratch().join("init.pid");
    h.create_with(&id, &b, &["--pid-file", pf.to_str().unwrap()])
        .assert_ok();
    let text = read(&pf);
    assert!(
        !text.ends_with('\n'),
        "pid file has a trailing newline: {text:?}"
    );
    assert_eq!(text.parse::<i32>().unwrap(), h.pid(&id));

    let b2 = Bundle::sh("sleep 100");
    let id2 = h.new_id();
    let pf2 = h.scratch().join("run.pid");
    h.run_with(&id2, &b2, &["-d", "--pid-file", pf2.to_str().unwrap()])
        .assert_ok();
    assert_eq!(read(&pf2), h.pid(&id2).to_string());
}

#[test]
fn relative_pid_file_and_default_bundle() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::sh("sleep 100");
    let id = h.new_id();
    // No --bundle: the bundle is the cwd. A relative --pid-file is relative to the cwd too.
    let o = h.cmd_opts(
        &["create", "--pid-file", "rel.pid", &id],
        CmdOpts {
            cwd: Some(b.path().to_path_buf()),
            ..Default::default()
        },
    );
    o.assert_ok();
    assert_eq!(read(b.path().join("rel.pid")), h.pid(&id).to_string());
    let st = h.state(&id);
    assert_eq!(
        fs::canonicalize(st["bundle"].as_str().unwrap()).unwrap(),
        fs::canonicalize(b.path()).unwrap()
    );
    // state.bundle is absolute even when given as ".".
    assert!(st["bundle"].as_str().unwrap().starts_with('/'), "{st}");
}

#[test]
fn kill_created_container() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let out = b.out_dir();
    b.set_sh("echo ran > /out/ran");
    let id = h.new_id();
    h.create(&id, &b).assert_ok();
    let pid = h.pid(&id);
    h.kill(&id, "KILL").assert_ok();
    assert!(h.wait_status(&id, "stopped", T));
    assert!(wait_for(T, || !pid_alive(pid)));
    assert_eq!(h.state(&id)["pid"], 0);
    assert!(!out.join("ran").exists());
    // A stopped container cannot be started, but can be deleted without --force.
    h.start(&id).assert_err();
    h.delete(&id).assert_ok();
}

#[test]
fn list_shows_stopped_with_pid_0() {
    require_root!();
    let h = Hako::new();
    let (_b, id) = stopped_container(&h);
    let t = h.list(&[]);
    t.assert_ok();
    let line = t
        .stdout
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{}", t.stdout));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&cols[1..3], ["0", "stopped"], "{line}");
}

#[test]
fn duplicate_id_rejected() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::sh("sleep 100");
    let id = h.new_id();
    h.create(&id, &b).assert_ok();
    let pid = h.pid(&id);
    let o = h.create(&id, &b);
    o.assert_err();
    assert!(o.stderr.contains("already exists"), "{o:?}");
    // The first container is untouched.
    assert_eq!(h.status(&id), "created");
    assert_eq!(h.pid(&id), pid);
    let o = h.run(&id, &b);
    o.assert_err();
    assert!(o.stderr.contains("already exists"), "{o:?}");
}

#[test]
fn state_unknown() {
    require_root!();
    let h = Hako::new();
    let o = h.cmd(&["state", "no-such-container"]);
    o.assert_err();
    assert!(o.stderr.contains("does not exist"), "{o:?}");
    assert!(o.stdout.is_empty());
}

#[test]
fn state_annotations() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::sh("sleep 100");
    b.config["annotations"] = json!({"org.example.key": "value"});
    let id = h.new_id();
    h.create(&id, &b).assert_ok();
    let st = h.state(&id);
    assert_eq!(st["annotations"]["org.example.key"], "value", "{st}");
}

#[test]
fn list_formats() {
    require_root!();
    let h = Hako::new();
    let empty = h.list(&[]);
    empty.assert_ok();
    let header: Vec<&str> = empty
        .stdout
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    );

    let b = Bundle::sh("sleep 100");
    let ids: Vec<String> = (0..2).map(|_| h.new_id()).collect();
    h.run_with(&ids[0], &b, &["-d"]).assert_ok();
    h.create(&ids[1], &b).assert_ok();

    let t = h.list(&[]);
    t.assert_ok();
    let lines: Vec<&str> = t.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", t.stdout);
    let bundle = b.path().to_string_lossy().to_string();
    for (id, status) in [(&ids[0], "running"), (&ids[1], "created")] {
        let line = lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(id.as_str()))
            .unwrap_or_else(|| panic!("{id} not listed: {}", t.stdout));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols.len(), 6, "{line}");
        assert_eq!(cols[1], h.pid(id).to_string());
        assert_eq!(cols[2], status);
        assert_eq!(cols[3], bundle);
        assert!(cols[4].contains('T'), "{line}");
        assert_eq!(cols[5], "root");
    }

    let q = h.list(&["-q"]);
    q.assert_ok();
    let mut got: Vec<&str> = q.stdout.lines().collect();
    got.sort();
    let mut want: Vec<&str> = ids.iter().map(|s| s.as_str()).collect();
    want.sort();
    assert_eq!(got, want);

    let j = h.list(&["--format", "json"]);
    j.assert_ok();
    let v: Value = serde_json::from_str(&j.stdout).expect("list --format json is JSON");
    let arr = v.as_array().expect("array");
    assert_eq!(arr.len(), 2);
    for c in arr {
        let id = c["id"].as_str().unwrap();
        assert!(ids.iter().any(|i| i == id));
        assert_eq!(c["pid"].as_i64().unwrap() as i32, h.pid(id));
        assert_eq!(c["bundle"], bundle.as_str());
        assert_eq!(c["owner"], "root");
        assert!(c["created"].is_string());
        assert!(c["ociVersion"].is_string());
        assert!(c["rootfs"].is_string());
    }
    let s = |id: &str| arr.iter().find(|c| c["id"] == id).unwrap()["status"].clone();
    assert_eq!(s(&ids[0]), "running");
    assert_eq!(s(&ids[1]), "created");
}

#[test]
fn list_empty_json() {
    require_root!();
    let h = Hako::new();
    let j = h.list(&["--format", "json"]);
    j.assert_ok();
    // runc prints "null" for an empty list.
    let v: Value = serde_json::from_str(&j.stdout).expect("JSON");
    assert!(v.is_null() || v == json!([]), "{v}");
    let q = h.list(&["-q"]);
    q.assert_ok();
    assert_eq!(q.stdout, "");
}

/// runc 1.2+: a `--root` that does not exist is an error for `list` (runc 1.1 printed `null`);
/// only the default root may be missing (no container made yet).
#[test]
fn list_with_a_missing_root_fails() {
    require_root!();
    let h = Hako::new();
    let missing = h.scratch().join("no-such-root");
    let o = h.cmd_opts(
        &[
            "--root",
            missing.to_str().unwrap(),
            "list",
            "--format",
            "json",
        ],
        CmdOpts {
            no_root: true,
            ..Default::default()
        },
    );
    o.assert_err();
    assert!(
        o.stderr.contains(&format!(
            "open {}: no such file or directory",
            missing.display()
        )),
        "{}",
        o.stderr
    );
    assert!(!missing.exists(), "list made the root");
}

#[test]
fn created_container_survives_runtime_exit() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::sh("sleep 100");
    let id = h.new_id();
    h.create(&id, &b).assert_ok();
    let pid = h.pid(&id);
    // The init is not a child of the test process (the runtime exited and it was reparented).
    let ppid = status_field(&read(format!("/proc/{pid}/status")), "PPid")
        .unwrap()
        .to_string();
    assert_ne!(ppid, std::process::id().to_string());
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(h.status(&id), "created");
}

#[test]
fn short_flags_and_go_style_flags() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::sh("exit 5");
    let id = h.new_id();
    h.track(&id);
    b.save();
    let o = h.cmd(&["run", "-b", b.path().to_str().unwrap(), &id]);
    assert_eq!(o.code, 5, "{o:?}");
    let id = h.new_id();
    let o = h.cmd(&["run", "-bundle", b.path().to_str().unwrap(), &id]);
    assert_eq!(o.code, 5, "{o:?}");
}

/// The runtime spec: `process` is required only when `start` is called.
#[test]
fn create_without_process_then_start_fails() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let out = b.out_dir();
    let host = out.to_str().unwrap().to_string();
    b.config.as_object_mut().unwrap().remove("process");
    // The container is set up all the same: its hooks see it.
    b.config["hooks"] = json!({"createRuntime": [{"path": "/bin/sh",
        "args": ["sh", "-c", format!("cat > {host}/state.json")]}]});
    let id = h.new_id();
    let o = h.create(&id, &b);
    if testing_runc() && o.code == 1 {
        // runc 1.1: "process property must not be empty", against the spec.
        eprintln!("runc 1.1 refuses a config without process: {}", o.stderr);
        return;
    }
    o.assert_ok();
    assert_eq!(h.status(&id), "created");
    let st: Value = serde_json::from_str(&read(out.join("state.json"))).unwrap();
    assert_eq!(st["pid"].as_i64().unwrap() as i32, h.pid(&id));
    let o = h.start(&id);
    o.assert_err();
    assert!(
        o.stderr.contains("process: not set in config.json"),
        "{o:?}"
    );
    assert_eq!(h.status(&id), "created");
    h.delete(&id).assert_ok();
    assert!(!h.state_dir(&id).exists());
    // `run` is create + start: it fails the same way and leaves nothing.
    let id = h.new_id();
    let o = h.run(&id, &b);
    o.assert_err();
    assert!(o.stderr.contains("process: not set"), "{o:?}");
    assert!(!h.state_dir(&id).exists());
}

#[test]
fn pause_and_resume_a_created_container() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::sh("echo ran");
    let id = h.new_id();
    h.create(&id, &b).assert_ok();
    h.cmd(&["pause", &id]).assert_ok();
    assert_eq!(h.status(&id), "paused");
    let o = h.start(&id);
    o.assert_err();
    assert!(
        o.stderr
            .contains("cannot start a container in the paused state"),
        "{o:?}"
    );
    h.cmd(&["resume", &id]).assert_ok();
    // Back to where it was, as runc reports it.
    assert_eq!(h.status(&id), "created");
    h.start(&id).assert_ok();
    assert!(h.wait_status(&id, "stopped", std::time::Duration::from_secs(10)));
}

#[test]
fn concurrent_runs_sharing_a_cgroup_parent() {
    require_root!();
    // Containers placed under one parent cgroup that none of them finds in place: whichever
    // creates the parent removes it at its delete when it is empty, and that must never make
    // another's create (racing to mkdir below it) fail. hako's default `/hako/<id>` is this case.
    let parent = format!("hako-race-{}", std::process::id());
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let parent = parent.clone();
            std::thread::spawn(move || {
                let h = Hako::new();
                let mut b = Bundle::sh("true");
                (0..25)
                    .filter_map(|_| {
                        let id = h.new_id();
                        b.config["linux"]["cgroupsPath"] = json!(format!("/{parent}/{id}"));
                        let o = h.run(&id, &b);
                        (!o.ok()).then_some(o.stderr)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let failures: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    // Whatever is left of the parent (a create may have found it in place and so not own it).
    for d in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = fs::remove_dir(d.path().join(&parent));
    }
    let _ = fs::remove_dir(format!("/sys/fs/cgroup/unified/{parent}"));
    assert!(failures.is_empty(), "{failures:?}");
}

/// `-h` and `--help` work for every command (exit 0) and list the command's flags, as runc's.
#[test]
fn help_for_every_command() {
    let h = Hako::new();
    let cases: &[(&str, &[&str])] = &[
        (
            "",
            &[
                "--root",
                "--log",
                "--log-format",
                "--debug",
                "--systemd-cgroup",
            ],
        ),
        (
            "create",
            &[
                "--bundle",
                "--console-socket",
                "--pid-file",
                "--no-pivot",
                "--no-new-keyring",
                "--preserve-fds",
            ],
        ),
        (
            "run",
            &[
                "--bundle",
                "--detach",
                "--keep",
                "--pid-file",
                "--console-socket",
                "--no-pivot",
            ],
        ),
        ("start", &[]),
        ("state", &[]),
        ("kill", &["--all"]),
        ("delete", &["--force"]),
        ("list", &["--format", "--quiet"]),
        ("spec", &["--bundle"]),
        ("pause", &[]),
        ("resume", &[]),
        ("ps", &["--format"]),
        (
            "update",
            &["--resources", "--memory", "--cpu-quota", "--pids-limit"],
        ),
        (
            "exec",
            &[
                "--process",
                "--tty",
                "--detach",
                "--user",
                "--cwd",
                "--env",
                "--cap",
                "--ignore-paused",
                "--preserve-fds",
            ],
        ),
        ("events", &["--stats", "--interval"]),
        ("features", &[]),
        // Through CRIU, with runc's flags.
        (
            "checkpoint",
            &["--image-path", "--leave-running", "--work-path"],
        ),
        (
            "restore",
            &["--image-path", "--bundle", "--detach", "--no-subreaper"],
        ),
    ];
    for (cmd, flags) in cases {
        for help in ["-h", "--help"] {
            let args: Vec<&str> = [*cmd, help].into_iter().filter(|a| !a.is_empty()).collect();
            let o = h.cmd(&args);
            assert_eq!(o.code, 0, "{args:?}: {o:?}");
            let text = format!("{}{}", o.stdout, o.stderr);
            for f in *flags {
                assert!(text.contains(f), "{args:?} does not list {f}: {text}");
            }
        }
    }
}

/// `hako state ID | grep -q …`: a reader that is gone ends hako by SIGPIPE, as it ends runc,
/// with nothing on stderr (it was a panic of println!, "failed printing to stdout").
#[test]
fn output_to_a_closed_pipe_ends_by_sigpipe_quietly() {
    require_root!();
    use std::os::unix::process::ExitStatusExt;
    let h = Hako::new();
    let b = Bundle::sh("sleep 100");
    let id = h.new_id();
    h.create(&id, &b).assert_ok();
    for args in [
        vec!["state", id.as_str()],
        vec!["list"],
        vec!["--version"],
        vec!["events", "--interval", "100ms", id.as_str()],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = std::process::Command::new(hako_bin())
            .arg("--root")
            .arg(h.root())
            .args(&args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGPIPE),
            "{args:?}: {:?}",
            out.status
        );
        assert!(
            out.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
