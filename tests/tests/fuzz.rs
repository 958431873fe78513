//! Fuzzed input never panics (issue 12): config.json, `exec --process` files, `update
//! --resources` JSON and command lines, mutated from valid ones (tests/src/fuzz.rs, seeded and
//! reproducible). The bulk runs through hako's parse and validate layers in-process; a few
//! hundred cases go through the binary, which must answer with exit 1 and one error line (or
//! succeed) and leave nothing behind.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Duration;

use hako_tests::fuzz::{mutated_text, Rng};
use hako_tests::*;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(10);

fn seed() -> u64 {
    std::env::var("HAKO_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234)
}

/// Everything `create` does to a config before it touches the host.
fn check_config(text: &str, root: &Path) -> Result<(), String> {
    let (spec, _) =
        hako_spec::bundle::parse_spec_with(text, true).map_err(|(f, m)| format!("{f}: {m}"))?;
    hako_spec::validate::validate(&spec).map_err(|e| e.to_string())?;
    hako_runtime::container::support::check(&spec).map_err(|e| e.to_string())?;
    let _ = hako_runtime::init::namespaces::plan(&spec);
    hako_runtime::init::rootless::check(&spec, 1000).map_err(|e| e.to_string())?;
    hako_runtime::cgroups::manager::Cgroups::plan(&spec, "fuzz", false)
        .map_err(|e| e.to_string())?;
    let _ = hako_runtime::cgroups::manager::Cgroups::resources(&spec);
    hako_runtime::security::seccomp::for_spec(root, &spec, false).map_err(|e| e.to_string())?;
    Ok(())
}

#[track_caller]
fn one_line(what: &str, err: &str) {
    assert!(
        !err.trim().is_empty() && !err.trim().contains('\n'),
        "{what}: not one error line: {err:?}"
    );
}

#[test]
fn config_mutations_in_process() {
    let base = Bundle::new().config.clone();
    let root = TempDir::new("fuzz-root");
    let mut r = Rng::new(seed());
    let (mut ok, mut err) = (0, 0);
    for i in 0..4000 {
        let text = mutated_text(&base, &mut r);
        let res = catch_unwind(AssertUnwindSafe(|| check_config(&text, root.path())));
        match res {
            Ok(Ok(())) => ok += 1,
            Ok(Err(e)) => {
                one_line(&format!("case {i}: {text}"), &e);
                err += 1
            }
            Err(_) => panic!("case {i} (seed {}) panicked on config.json: {text}", seed()),
        }
    }
    eprintln!("config.json: {ok} accepted, {err} refused");
    assert!(err > 0 && ok > 0, "the mutations must hit both sides");
}

fn base_process() -> Value {
    json!({
        "terminal": false,
        "user": {"uid": 0, "gid": 0, "additionalGids": [1]},
        "args": ["true"],
        "env": ["PATH=/bin:/usr/bin", "TERM=xterm"],
        "cwd": "/",
        "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": true
    })
}

#[test]
fn process_json_mutations_in_process() {
    let dir = TempDir::new("fuzz-process");
    let p = dir.path().join("process.json");
    let mut r = Rng::new(seed() ^ 1);
    for i in 0..2000 {
        let text = mutated_text(&base_process(), &mut r);
        fs::write(&p, &text).unwrap();
        match catch_unwind(AssertUnwindSafe(|| hako_spec::bundle::load_process(&p))) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => one_line(&format!("case {i}: {text}"), &e.to_string()),
            Err(_) => panic!("case {i} panicked on process.json: {text}"),
        }
    }
}

/// Nothing of a refused command may stay: no state, no process, no mount.
#[track_caller]
fn assert_nothing_left(h: &Hako, b: &Bundle, what: &str) {
    let left: Vec<_> = fs::read_dir(h.root())
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{what}: left under --root: {left:?}");
    assert!(
        wait_for(T, || processes_using(b.path()).is_empty()),
        "{what}: processes left: {:?}",
        processes_using(b.path())
    );
    assert_eq!(
        mounts_under(b.path()),
        Vec::<String>::new(),
        "{what}: mounts left"
    );
}

/// The one error line (after any warnings), exit 1, no panic.
#[track_caller]
fn refused_cleanly(o: &Output, what: &str) {
    assert!(
        !o.stderr.contains("panicked"),
        "{what}: panic: {}",
        o.stderr
    );
    assert_eq!(o.code, 1, "{what}: exit code; stderr: {}", o.stderr);
    let errors = o
        .stderr
        .lines()
        .filter(|l| !l.contains("level=warning"))
        .count();
    assert_eq!(errors, 1, "{what}: not one error line: {}", o.stderr);
}

#[test]
fn config_mutations_through_the_binary() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::sh("sleep 1000");
    let base = b.config.clone();
    let mut r = Rng::new(seed() ^ 2);
    let (mut ok, mut refused) = (0, 0);
    for i in 0..150 {
        // Only what keeps the host safe is pinned: the rootfs, and the cgroup under hako's own
        // parent (a fuzzed `/` would be the host's root cgroup, which delete would empty).
        let text = mutated_text(&base, &mut r);
        let text = match serde_json::from_str::<Value>(&text) {
            Ok(mut v) if v.is_object() => {
                v["root"] = json!({"path": "rootfs"});
                if v["linux"].is_object() {
                    v["linux"]["cgroupsPath"] = json!(format!("/hako-fuzz-{}/c{i}", unique()));
                    v["linux"]
                        .as_object_mut()
                        .unwrap()
                        .remove("rootfsPropagation");
                }
                v.as_object_mut().unwrap().remove("hooks");
                serde_json::to_string(&v).unwrap()
            }
            _ => text,
        };
        b.write_raw_config(&text);
        let id = h.new_id();
        let o = h.create(&id, &b);
        let what = format!("case {i}: {text}");
        if o.code == 0 {
            h.delete_force(&id).assert_ok();
            ok += 1;
        } else {
            refused_cleanly(&o, &what);
            refused += 1;
        }
        assert_nothing_left(&h, &b, &what);
    }
    eprintln!("create: {ok} created, {refused} refused");
}

#[test]
fn exec_update_and_argument_mutations_through_the_binary() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::sh("sleep 1000");
    let id = h.new_id();
    h.run_with(&id, &b, &["-d"]).assert_ok();
    let f = h.scratch().join("fuzz.json");
    let mut r = Rng::new(seed() ^ 3);
    for i in 0..100 {
        let text = mutated_text(&base_process(), &mut r);
        fs::write(&f, &text).unwrap();
        let o = h.cmd(&["exec", "--process", &f.to_string_lossy(), &id]);
        let what = format!("exec case {i}: {text}");
        assert!(!o.stderr.contains("panicked"), "{what}: {}", o.stderr);
        // runc's exit status for an exec that failed to start is 255; 0 or the process's own.
        if o.code != 0 && !o.stderr.is_empty() {
            assert!([1, 255].contains(&o.code), "{what}: exit {}", o.code);
            let errors = o
                .stderr
                .lines()
                .filter(|l| l.contains("level=error"))
                .count();
            assert_eq!(errors, 1, "{what}: {}", o.stderr);
        }
    }
    let base_res = json!({"memory": {"limit": 268435456}, "cpu": {"shares": 512, "quota": 50000, "period": 100000}, "pids": {"limit": 200}});
    for i in 0..100 {
        let text = mutated_text(&base_res, &mut r);
        fs::write(&f, &text).unwrap();
        let mut args = vec![
            "update".to_string(),
            "-r".into(),
            f.to_string_lossy().into(),
        ];
        if r.chance(3) {
            args.extend(["--memory".into(), "300M".into()]);
        }
        args.push(id.clone());
        let o = h.cmd(&args);
        let what = format!("update case {i}: {text}");
        assert!(!o.stderr.contains("panicked"), "{what}: {}", o.stderr);
        if o.code != 0 {
            refused_cleanly(&o, &what);
        }
    }
    // Whatever was refused or applied, the container still has only its init.
    assert_eq!(h.status(&id), "running");
    let words = [
        "state",
        "list",
        "kill",
        "delete",
        "pause",
        "resume",
        "ps",
        "events",
        "update",
        "exec",
        "start",
        "features",
        "-f",
        "--force",
        "-a",
        "--all",
        "--format",
        "json",
        "table",
        "-9",
        "KILL",
        "SIGBOGUS",
        "99",
        "--stats",
        "--interval",
        "0s",
        "--memory",
        "-1",
        "1x",
        "--pids-limit",
        "",
        "-",
        "--",
        "nonexistent",
        "../x",
        "a/b",
        "--root",
        "--log-format",
        "--cwd",
        "-t",
        "--detach",
        "--pid-file",
        "/nonexistent/dir/pid",
        "\u{1F600}",
        "-e",
        "=",
    ];
    for i in 0..200 {
        let n = 1 + r.below(5);
        let mut args: Vec<String> = (0..n)
            .map(|_| words[r.below(words.len())].to_string())
            .collect();
        // Never the running container itself for what would end it: the rest may be anything.
        if r.chance(3) {
            args.push(format!("fuzz-{i}"));
        }
        let o = h.cmd_opts(
            &args,
            CmdOpts {
                timeout: Some(Duration::from_secs(20)),
                cwd: Some(h.scratch().to_path_buf()),
                ..Default::default()
            },
        );
        let what = format!("args {args:?}");
        assert!(!o.stderr.contains("panicked"), "{what}: {}", o.stderr);
        // runc's status for a failed exec is 255 ("exec failed: ..."), 1 for everything else.
        let exec = args.first().is_some_and(|a| a == "exec") && o.code == 255;
        assert!(
            [0, 1].contains(&o.code) || exec,
            "{what}: exit {}: {}",
            o.code,
            o.stderr
        );
    }
    let _ = b;
}
