//! `--log FILE --log-format json` as containerd and podman use it.

use std::fs;

use hako_tests::*;

fn json_log(h: &mut Hako) -> std::path::PathBuf {
    let log = h.scratch().join(format!("log-{}.json", unique()));
    h.global = vec![
        "--log".into(),
        log.to_string_lossy().to_string(),
        "--log-format".into(),
        "json".into(),
    ];
    log
}

/// Exactly one line, a JSON object with level "error" and a non-empty msg; returns msg.
#[track_caller]
fn single_error(log: &std::path::Path) -> String {
    let text = fs::read_to_string(log).expect("log file exists");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "want exactly one log line: {text:?}");
    let v: Value = serde_json::from_str(lines[0])
        .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {text:?}"));
    // podman parses the whole file as one JSON value.
    let whole: Value = serde_json::from_str(&text).expect("whole file is one JSON value");
    assert_eq!(whole, v);
    assert_eq!(v["level"], "error", "{v}");
    assert!(v["time"].is_string(), "{v}");
    let msg = v["msg"].as_str().expect("msg").to_string();
    assert!(!msg.is_empty());
    msg
}

#[test]
fn failure_writes_one_json_error() {
    require_root!();
    let mut h = Hako::new();
    let log = json_log(&mut h);
    let mut b = Bundle::new();
    b.set_args(&["/no/such"]);
    let id = h.new_id();
    let o = h.create(&id, &b);
    o.assert_err();
    let msg = single_error(&log);
    assert!(msg.contains("no such file or directory"), "{msg}");
    assert!(!h.state_dir(&id).exists());
}

#[test]
fn config_error_in_json_log() {
    require_root!();
    let mut h = Hako::new();
    let log = json_log(&mut h);
    let mut b = Bundle::new();
    b.config["process"]["user"]["uid"] = json!("root");
    let o = h.run(&h.new_id(), &b);
    o.assert_err();
    let msg = single_error(&log);
    assert!(msg.contains("process.user.uid"), "{msg}");
}

#[test]
fn unknown_container_in_json_log() {
    require_root!();
    let mut h = Hako::new();
    let log = json_log(&mut h);
    let o = h.cmd(&["state", "no-such-container"]);
    o.assert_err();
    let msg = single_error(&log);
    assert!(msg.contains("does not exist"), "{msg}");
    let o = h.cmd(&["delete", "no-such-container"]);
    o.assert_err();
}

#[test]
fn log_file_exists_on_success() {
    require_root!();
    let mut h = Hako::new();
    let log = json_log(&mut h);
    let b = Bundle::sh("echo hi");
    let o = h.run(&h.new_id(), &b);
    o.assert_ok();
    assert_eq!(o.stdout, "hi\n");
    assert!(log.is_file(), "log file not created on success");
    // Whatever is in it is JSON lines, none of them an error.
    for l in read(&log).lines() {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert_ne!(v["level"], "error", "{v}");
    }
}

#[test]
fn create_success_is_silent() {
    require_root!();
    let mut h = Hako::new();
    let log = json_log(&mut h);
    let b = Bundle::sh("sleep 100");
    let id = h.new_id();
    let o = h.create(&id, &b);
    o.assert_ok();
    // containerd hands its pipes to the container: the runtime itself prints nothing.
    assert_eq!(o.stdout, "");
    assert_eq!(o.stderr, "");
    assert!(log.is_file());
    h.start(&id).assert_ok();
    h.delete_force(&id).assert_ok();
}

#[test]
fn text_errors_go_to_stderr() {
    require_root!();
    let h = Hako::new();
    let o = h.cmd(&["state", "no-such-container"]);
    o.assert_err();
    assert!(o.stderr.contains("does not exist"), "{o:?}");
    assert_eq!(o.stdout, "");
}

/// `--debug` gives debug lines for every command (text to stderr, or JSON lines in `--log`),
/// and without it a successful command prints nothing of its own (containerd reads the output).
#[test]
fn debug_lines_for_every_command_and_silence_without() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::sh("exec sleep 100");
    let id = h.new_id();
    let spec_dir = TempDir::new("debug-spec");
    let spec = spec_dir.path().to_str().unwrap().to_string();
    let bundle = b.path().to_str().unwrap().to_string();
    b.save();
    let commands: Vec<Vec<&str>> = vec![
        vec!["run", "-d", "--bundle", &bundle, &id],
        vec!["state", &id],
        vec!["list"],
        vec!["exec", &id, "true"],
        vec!["exec", "-d", &id, "true"],
        vec!["ps", "--format", "json", &id],
        vec!["pause", &id],
        vec!["resume", &id],
        vec!["update", "--pids-limit", "100", &id],
        vec!["events", "--stats", &id],
        vec!["kill", &id, "0"],
        vec!["features"],
        vec!["spec", "--bundle", &spec],
        vec!["delete", "--force", &id],
    ];
    for (mode, global) in [
        ("quiet", vec![]),
        ("text", vec!["--debug".to_string()]),
        (
            "json",
            vec![
                "--debug".into(),
                "--log-format".into(),
                "json".into(),
                "--log".into(),
            ],
        ),
    ] {
        let _ = fs::remove_file(spec_dir.path().join("config.json"));
        for args in &commands {
            let log = h.scratch().join(format!("debug-{}.log", unique()));
            let mut global = global.clone();
            if global.last().map(String::as_str) == Some("--log") {
                global.push(log.to_string_lossy().to_string());
            }
            let o = h.cmd_opts(
                args,
                CmdOpts {
                    global,
                    ..Default::default()
                },
            );
            assert_eq!(o.code, 0, "{mode} {args:?}: {o:?}");
            if testing_runc() && mode != "quiet" {
                continue; // runc 1.1 has debug lines for some commands only
            }
            match mode {
                "quiet" => assert_eq!(o.stderr_now(), "", "{args:?} printed on success"),
                "text" => assert!(
                    o.stderr.lines().any(|l| l.contains(" level=debug msg=")),
                    "{args:?}: {o:?}"
                ),
                _ => {
                    let text = read(&log);
                    let lines: Vec<Value> = text
                        .lines()
                        .map(|l| serde_json::from_str(l).expect("a JSON line"))
                        .collect();
                    assert!(
                        lines
                            .iter()
                            .any(|v| v["level"] == "debug" && v["msg"].is_string()),
                        "{args:?}: {text}"
                    );
                    assert_eq!(
                        o.stderr_now(),
                        "",
                        "{args:?}: with --log, nothing on stderr"
                    );
                }
            }
        }
    }
}

/// `--debug` times create's phases (tracing spans, written by the same formatter): one debug
/// line per phase, in runc's text and JSON shapes exactly, in the runtime's and the init's order.
#[test]
fn debug_times_create_phases_in_runc_formats() {
    require_root!();
    if testing_runc() {
        return; // runc has no phase timings
    }
    let h = Hako::new();
    let b = Bundle::new();
    b.save();
    let bundle = b.path().to_str().unwrap().to_string();
    let phases = [
        "config",
        "clone",
        "namespaces",
        "cgroups",
        "mounts",
        "pivot",
        "exec",
        "init",
        "create",
    ];
    for json in [false, true] {
        let log = h.scratch().join(format!("phases-{}.log", unique()));
        let mut global = vec![
            "--debug".to_string(),
            "--log".into(),
            log.to_string_lossy().to_string(),
        ];
        if json {
            global.extend(["--log-format".into(), "json".into()]);
        }
        let id = h.new_id();
        let o = h.cmd_opts(
            &["run", "--bundle", &bundle, &id],
            CmdOpts {
                global,
                ..Default::default()
            },
        );
        assert_eq!(o.code, 0, "{o:?}");
        let text = read(&log);
        let mut msgs = Vec::new();
        for l in text.lines() {
            if json {
                let v: Value = serde_json::from_str(l).expect("a JSON line");
                let keys: Vec<&String> = v.as_object().expect("an object").keys().collect();
                assert_eq!(keys, ["level", "msg", "time"], "{l}");
                msgs.push((v["level"].clone(), v["msg"].as_str().unwrap().to_string()));
            } else {
                let rest = l.strip_prefix("time=\"").expect(l);
                let (time, rest) = rest.split_once("\" level=").expect(l);
                assert_eq!(time.len(), "2026-11-30T00:00:00Z".len(), "{l}");
                let (level, msg) = rest.split_once(" msg=").expect(l);
                let msg: String = serde_json::from_str(msg).expect("msg is a quoted string");
                msgs.push((json!(level), msg));
            }
        }
        let at = |p: &str| {
            msgs.iter()
                .position(|(lv, m)| {
                    lv == "debug"
                        && m.starts_with(&format!("phase {p}: "))
                        && m.ends_with("ms")
                        && m.is_ascii()
                })
                .unwrap_or_else(|| panic!("no 'phase {p}' line: {text}"))
        };
        let order: Vec<usize> = phases.iter().map(|p| at(p)).collect();
        // The init's phases in its order, and the whole create closing after all of them.
        assert!(
            order[2] < order[4] && order[4] < order[5] && order[5] < order[6],
            "{text}"
        );
        assert!(order.iter().all(|i| *i <= order[8]), "{text}");
    }
}
