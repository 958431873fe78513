//! OCI hooks: order, state JSON on stdin, failures, timeouts (runc's hooks.bats).

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use hako_tests::*;

const T: Duration = Duration::from_secs(10);

/// A hook running `/bin/sh -c SCRIPT` (host dash or container busybox, depending on the hook).
fn sh_hook(script: &str) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", script]})
}

/// Hook recording its name in `log` and its stdin in `dir/NAME.json`.
fn recording_hook(name: &str, dir: &str) -> Value {
    sh_hook(&format!(
        "echo {name} >> {dir}/hooks.log; cat > {dir}/{name}.json"
    ))
}

fn hook_state(dir: &Path, name: &str) -> Value {
    let text = read(dir.join(format!("{name}.json")));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{name} stdin is not JSON ({e}): {text:?}"))
}

#[test]
fn all_hooks_in_order_with_state() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let out = b.out_dir();
    let host = out.to_str().unwrap().to_string();
    b.config["hooks"] = json!({
        "prestart": [recording_hook("prestart", &host)],
        "createRuntime": [recording_hook("createRuntime", &host)],
        "createContainer": [recording_hook("createContainer", &host)],
        // Runs inside the container, after pivot_root: container paths.
        "startContainer": [recording_hook("startContainer", "/out")],
        "poststart": [recording_hook("poststart", &host)],
        "poststop": [recording_hook("poststop", &host)]
    });
    b.set_sh("echo process >> /out/hooks.log; sleep 100");
    let id = h.new_id();
    h.create(&id, &b).assert_ok();
    let log = read(out.join("hooks.log"));
    let runc_poststart_at_create = testing_runc() && log.ends_with("poststart\n");
    if runc_poststart_at_create {
        // runc 1.1 runs poststart hooks during create (fixed in runc 1.2).
        eprintln!("runc 1.1 ran poststart during create");
        fs::write(out.join("hooks.log"), log.replace("poststart\n", "")).unwrap();
    } else {
        assert_eq!(log, "prestart\ncreateRuntime\ncreateContainer\n");
    }
    let pid = h.pid(&id);
    for name in ["prestart", "createRuntime", "createContainer"] {
        let st = hook_state(&out, name);
        assert_eq!(st["id"], id.as_str(), "{name}: {st}");
        let hook_pid = st["pid"].as_i64().unwrap() as i32;
        if name == "createContainer" {
            // Runs in the container's namespaces: runc reports the pid seen there (1).
            assert!(hook_pid == pid || hook_pid == 1, "{name}: {st}");
        } else {
            assert_eq!(hook_pid, pid, "{name}: {st}");
        }
        // crun and the runtime-tools validation: `created`; runc 1.1 and 1.3: `creating`.
        let want = if testing_runc() {
            "creating"
        } else {
            "created"
        };
        assert_eq!(st["status"], want, "{name}: {st}");
        assert_eq!(
            fs::canonicalize(st["bundle"].as_str().unwrap()).unwrap(),
            fs::canonicalize(b.path()).unwrap(),
            "{name}: {st}"
        );
        assert!(st["ociVersion"].is_string(), "{name}: {st}");
    }

    h.start(&id).assert_ok();
    assert!(wait_for(T, || read(out.join("hooks.log")).contains("process\n")));
    if !runc_poststart_at_create {
        assert!(wait_for(T, || read(out.join("hooks.log")).contains("poststart\n")));
    }
    let log = read(out.join("hooks.log"));
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        &lines[..4],
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer"
        ],
        "{log}"
    );
    let st = hook_state(&out, "startContainer");
    assert_eq!(st["id"], id.as_str());
    if !runc_poststart_at_create {
        assert!(lines.contains(&"poststart"), "{log}");
        let st = hook_state(&out, "poststart");
        assert_eq!(st["id"], id.as_str());
        assert_eq!(st["status"], "running", "{st}");
        assert_eq!(st["pid"].as_i64().unwrap() as i32, pid);
    }

    h.kill(&id, "KILL").assert_ok();
    assert!(h.wait_status(&id, "stopped", T));
    assert!(!read(out.join("hooks.log")).contains("poststop"));
    h.delete(&id).assert_ok();
    let log = read(out.join("hooks.log"));
    assert!(log.ends_with("poststop\n"), "{log}");
    let st = hook_state(&out, "poststop");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["status"], "stopped", "{st}");
}

#[test]
fn run_runs_poststop_after_exit() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let out = b.out_dir();
    let host = out.to_str().unwrap().to_string();
    b.config["hooks"] = json!({
        "prestart": [recording_hook("prestart", &host)],
        "poststart": [recording_hook("poststart", &host)],
        "poststop": [recording_hook("poststop", &host)]
    });
    b.set_sh("echo process >> /out/hooks.log");
    let id = h.new_id();
    h.run(&id, &b).assert_ok();
    let log = read(out.join("hooks.log"));
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.first(), Some(&"prestart"), "{log}");
    assert_eq!(lines.last(), Some(&"poststop"), "{log}");
    assert!(
        lines.contains(&"process") && lines.contains(&"poststart"),
        "{log}"
    );
}

/// `run` meets the init between its mounts and `Created` only for hooks that need it: a spec
/// with exactly one hook of each kind still runs it, with the state of its moment, before the
/// process (poststart: once it runs), and a spec with none runs the process alone.
#[test]
fn run_with_one_hook_of_each_kind() {
    require_root!();
    let h = Hako::new();
    for kind in [
        "",
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
    ] {
        let mut b = Bundle::new();
        let out = b.out_dir();
        let host = out.to_str().unwrap().to_string();
        if !kind.is_empty() {
            // startContainer runs inside the container, after pivot_root.
            let dir = if kind == "startContainer" {
                "/out"
            } else {
                &host
            };
            b.config["hooks"] = json!({ kind: [recording_hook(kind, dir)] });
        }
        b.set_sh("echo process >> /out/hooks.log");
        let id = h.new_id();
        h.run(&id, &b).assert_ok();
        let log = read(out.join("hooks.log"));
        if kind.is_empty() {
            assert_eq!(log, "process\n");
            continue;
        }
        if kind == "poststart" {
            // Runs once the process runs: in either order with its output.
            let mut lines: Vec<&str> = log.lines().collect();
            lines.sort();
            assert_eq!(lines, ["poststart", "process"], "{kind}: {log}");
        } else {
            assert_eq!(log, format!("{kind}\nprocess\n"), "{kind}");
        }
        let st = hook_state(&out, kind);
        assert_eq!(st["id"], id.as_str(), "{kind}: {st}");
        let want = if kind == "poststart" {
            "running"
        } else if testing_runc() {
            "creating"
        } else {
            "created"
        };
        if kind != "startContainer" {
            assert_eq!(st["status"], want, "{kind}: {st}");
        }
        assert_nothing_left(&h, &id, &b);
    }
}

/// A failing startContainer hook through `run`: the init reports it over its channel (no start
/// socket), `run` fails with the hook's words, the process never ran and nothing is left.
#[test]
fn failing_start_container_hook_fails_run() {
    require_root!();
    let h = Hako::new();
    for detach in [false, true] {
        let mut b = Bundle::new();
        let out = b.out_dir();
        b.config["hooks"] = json!({ "startContainer": [sh_hook("echo no-start >&2; exit 4")] });
        b.set_sh("echo ran > /out/ran");
        let id = h.new_id();
        let o = if detach {
            h.run_with(&id, &b, &["-d"])
        } else {
            h.run(&id, &b)
        };
        if testing_runc() && o.code == 0 {
            eprintln!("runc 1.1: run succeeds although the startContainer hook failed");
            continue;
        }
        o.assert_err();
        assert!(
            o.stderr.contains("startContainer") && o.stderr.contains("no-start"),
            "{o:?}"
        );
        assert!(!out.join("ran").exists(), "the process ran");
        assert_nothing_left(&h, &id, &b);
    }
}

#[test]
fn hook_args_and_env() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let out = b.out_dir();
    let f = out.join("env");
    b.config["hooks"] = json!({
        "createRuntime": [{
            "path": "/bin/sh",
            "args": ["sh", "-c", "echo \"$0 $1 FOO=$FOO\" > \"$OUT\"", "zero", "one"],
            "env": ["FOO=bar", format!("OUT={}", f.display())]
        }]
    });
    h.run(&h.new_id(), &b).assert_ok();
    assert_eq!(read(&f), "zero one FOO=bar\n");
}

/// runc 1.3 runs startContainer hooks from its init once the process's environment is set: a
/// hook without `env` inherits it (deduplicated, HOME filled in); one with `env` gets only that.
#[test]
fn start_container_hook_inherits_the_process_env() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let out = b.out_dir();
    b.config["process"]["env"] = json!(["PATH=/bin", "A=1", "A=2"]);
    b.config["hooks"] = json!({ "startContainer": [
        sh_hook("env > /out/inherited"),
        { "path": "/bin/sh", "args": ["sh", "-c", "env > /out/own"], "env": ["Q=1"] },
    ]});
    h.run(&h.new_id(), &b).assert_ok();
    let vars = |name: &str| -> Vec<String> {
        let mut v: Vec<String> = read(out.join(name))
            .lines()
            .filter(|l| !l.starts_with("PWD=") && !l.starts_with("SHLVL="))
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    assert_eq!(vars("inherited"), ["A=2", "HOME=/root", "PATH=/bin"]);
    // busybox sh sets a default PATH when it has none.
    let own = vars("own");
    assert!(own.contains(&"Q=1".to_string()), "{own:?}");
    assert!(
        !own.iter()
            .any(|l| l.starts_with("A=") || l.starts_with("HOME=")),
        "{own:?}"
    );
}

fn assert_nothing_left(h: &Hako, id: &str, b: &Bundle) {
    h.assert_nothing_left(id, b.path(), "");
    let st = h.cmd(&["state", id]);
    st.assert_err();
    assert!(st.stderr.contains("does not exist"), "{st:?}");
}

#[test]
fn failing_prestart_fails_create() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let out = b.out_dir();
    b.config["hooks"] = json!({
        "prestart": [sh_hook("echo hook-stderr-text >&2; exit 3")],
        "poststart": [recording_hook("poststart", out.to_str().unwrap())]
    });
    b.set_sh("echo ran > /out/ran");
    let id = h.new_id();
    let o = h.create(&id, &b);
    o.assert_err();
    assert!(o.stderr.contains("hook"), "{o:?}");
    assert_nothing_left(&h, &id, &b);
    assert!(!out.join("ran").exists());
    assert!(!out.join("hooks.log").exists());

    // Same through run.
    let id = h.new_id();
    let o = h.run(&id, &b);
    o.assert_err();
    assert_nothing_left(&h, &id, &b);
}

#[test]
fn failing_create_runtime_and_create_container_hooks() {
    require_root!();
    let h = Hako::new();
    for kind in ["createRuntime", "createContainer"] {
        let mut b = Bundle::sh("true");
        b.config["hooks"] = json!({ kind: [sh_hook("exit 1")] });
        let id = h.new_id();
        let o = h.create(&id, &b);
        o.assert_err();
        assert_nothing_left(&h, &id, &b);
    }
}

#[test]
fn failing_start_container_hook_fails_start() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let out = b.out_dir();
    b.config["hooks"] = json!({ "startContainer": [sh_hook("exit 1")] });
    b.set_sh("echo ran > /out/ran");
    let id = h.new_id();
    h.create(&id, &b).assert_ok();
    let o = h.start(&id);
    if testing_runc() && o.code == 0 {
        eprintln!("runc 1.1: start succeeds although the startContainer hook failed");
    } else {
        o.assert_err();
    }
    assert!(
        h.wait_status(&id, "stopped", T),
        "container not stopped after failing hook"
    );
    assert!(
        !out.join("ran").exists(),
        "process ran despite failing startContainer hook"
    );
}

#[test]
fn failing_poststop_hook_is_a_warning() {
    require_root!();
    let h = Hako::new();
    // The spec: a failing poststop hook is a warning, and the hooks after it still run.
    let mut b = Bundle::sh("true");
    let out = b.out_dir();
    let host = out.to_str().unwrap().to_string();
    b.config["hooks"] = json!({ "poststop": [
        sh_hook("echo first-poststop-failing >&2; exit 1"),
        sh_hook(&format!("echo second > {host}/poststop2"))
    ] });
    let id = h.new_id();
    h.create(&id, &b).assert_ok();
    h.start(&id).assert_ok();
    assert!(h.wait_status(&id, "stopped", T));
    let o = h.delete(&id);
    o.assert_ok();
    assert!(!h.state_dir(&id).exists());
    assert_eq!(read(out.join("poststop2")), "second\n", "{o:?}");
    assert!(o.stderr.contains("first-poststop-failing"), "{o:?}");
}

/// runtime-spec 1.3: a failing poststart hook is an error. `start` fails with the hook's words,
/// the later poststart hooks do not run, the container is stopped (its init killed, not left
/// running) and stays until `delete`, whose poststop hooks run.
#[test]
fn failing_poststart_hook_stops_the_container() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::sh("sleep 100");
    let out = b.out_dir();
    let host = out.to_str().unwrap().to_string();
    b.config["hooks"] = json!({
        "poststart": [
            sh_hook("echo poststart-says-no >&2; exit 1"),
            sh_hook(&format!("echo second > {host}/poststart2"))
        ],
        "poststop": [sh_hook(&format!("echo ran > {host}/poststop"))]
    });
    let id = h.new_id();
    let o = h.create(&id, &b);
    if testing_runc() && o.code != 0 {
        // runc (1.1 to 1.3) runs poststart hooks during create.
        eprintln!(
            "runc runs poststart during create: create failed: {}",
            o.stderr
        );
        return;
    }
    o.assert_ok();
    let pid = h.pid(&id);
    let o = h.start(&id);
    o.assert_err();
    assert!(
        o.stderr.contains("poststart hook #0") && o.stderr.contains("poststart-says-no"),
        "{o:?}"
    );
    assert!(
        !out.join("poststart2").exists(),
        "a later poststart hook ran"
    );
    assert!(!pid_alive(pid), "the container's init {pid} still runs");
    assert_eq!(h.status(&id), "stopped");
    assert!(!out.join("poststop").exists(), "poststop before delete");
    h.delete(&id).assert_ok();
    assert_eq!(read(out.join("poststop")), "ran\n");
    assert_nothing_left(&h, &id, &b);
}

/// The same through `run` (foreground and `-d`): `run` fails, and as the caller that deletes
/// its container it does so, poststop hooks included; with `--keep` the stopped container stays.
#[test]
fn failing_poststart_hook_fails_run() {
    require_root!();
    let h = Hako::new();
    for extra in [&[][..], &["-d"][..], &["--keep"][..]] {
        let mut b = Bundle::sh("sleep 100");
        let out = b.out_dir();
        let host = out.to_str().unwrap().to_string();
        b.config["hooks"] = json!({
            "poststart": [sh_hook("echo poststart-says-no >&2; exit 1")],
            "poststop": [sh_hook(&format!("echo ran > {host}/poststop"))]
        });
        let id = h.new_id();
        let o = h.run_with(&id, &b, extra);
        o.assert_err();
        assert!(o.stderr.contains("poststart-says-no"), "{extra:?}: {o:?}");
        if extra == ["--keep"] {
            assert_eq!(h.status(&id), "stopped");
            assert!(processes_using(b.path()).is_empty());
            h.delete(&id).assert_ok();
        }
        assert_eq!(read(out.join("poststop")), "ran\n", "{extra:?}");
        assert_nothing_left(&h, &id, &b);
    }
}

#[test]
fn hook_timeout() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::sh("true");
    // `exec`: runc 1.1 waits for the hook's stdout to close, which a grandchild would hold.
    let mut hook = sh_hook("exec sleep 20");
    hook["timeout"] = json!(1);
    b.config["hooks"] = json!({ "createRuntime": [hook] });
    let id = h.new_id();
    let t0 = Instant::now();
    let o = h.create(&id, &b);
    let took = t0.elapsed();
    o.assert_err();
    assert!(
        took < Duration::from_secs(10),
        "hook timeout not enforced: {took:?}"
    );
    assert!(o.stderr.contains("timeout"), "{o:?}");
    assert_nothing_left(&h, &id, &b);
}

#[test]
fn hook_missing_binary_fails() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::sh("true");
    b.config["hooks"] = json!({ "prestart": [{"path": "/no/such/hook"}] });
    let id = h.new_id();
    let o = h.create(&id, &b);
    o.assert_err();
    assert_nothing_left(&h, &id, &b);
}

/// Shell (dash on the host, busybox in the container) that writes its working directory and the
/// numbers of its open fds above 2 to `OUT.pwd` / `OUT.fds`. Builtins only: nothing it runs
/// opens an fd of its own in the shell.
fn cwd_and_fds_hook(out: &str) -> Value {
    sh_hook(&format!(
        "l=''; n=3; while [ $n -lt 1100 ]; do [ -e /proc/$$/fd/$n ] && l=\"$l $n\"; n=$((n+1)); \
         done; echo \"$l\" > {out}.fds; pwd -P > {out}.pwd"
    ))
}

/// runc's working directories (the bundle for the runtime's hooks at create, the container's
/// root for createContainer, the process's cwd for startContainer), and no fd but stdio, even
/// when the runtime itself was handed more.
#[test]
fn hooks_cwd_and_only_stdio() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::sh("true");
    let out = b.out_dir();
    let host = out.to_str().unwrap().to_string();
    b.config["hooks"] = json!({
        "prestart": [cwd_and_fds_hook(&format!("{host}/prestart"))],
        "createRuntime": [cwd_and_fds_hook(&format!("{host}/createRuntime"))],
        "createContainer": [cwd_and_fds_hook(&format!("{host}/createContainer"))],
        "startContainer": [cwd_and_fds_hook("/out/startContainer")],
        "poststart": [cwd_and_fds_hook(&format!("{host}/poststart"))],
        "poststop": [cwd_and_fds_hook(&format!("{host}/poststop"))]
    });
    let id = h.new_id();
    // An fd the runtime inherits without close-on-exec must not reach the hooks either.
    let (r, _w) = pipe();
    b.save();
    let o = h.cmd_opts(
        &["run", "--bundle", b.path().to_str().unwrap(), &id],
        CmdOpts {
            fds: vec![(r, 7)],
            ..Default::default()
        },
    );
    h.track(&id);
    o.assert_ok();
    let bundle = std::fs::canonicalize(b.path()).unwrap();
    let rootfs = std::fs::canonicalize(b.rootfs()).unwrap();
    for (name, cwd) in [
        ("prestart", Some(bundle.to_str().unwrap())),
        ("createRuntime", Some(bundle.to_str().unwrap())),
        ("createContainer", Some(rootfs.to_str().unwrap())),
        ("startContainer", Some("/")),
        ("poststart", None),
        ("poststop", None),
    ] {
        let listing: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            read(out.join(format!("{name}.fds"))),
            "\n",
            "{name}: fds {listing:?} {o:?}"
        );
        if let Some(cwd) = cwd {
            assert_eq!(
                read(out.join(format!("{name}.pwd"))),
                format!("{cwd}\n"),
                "{name}"
            );
        }
    }
}
