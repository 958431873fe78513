//! A runtime killed at any instant leaves nothing `delete --force` cannot remove (issue 12).
//!
//! A debug build of hako SIGKILLs itself at the step named by `HAKO_TEST_CRASH_AT`
//! (crates/hako-runtime/src/crash.rs): for every step of create, start, exec and delete the test
//! kills it there, runs `delete --force` (twice: the second must finish or find nothing) and
//! checks the host: no cgroup directory, no process, no mount, nothing under `--root`. The
//! randomized variant sends a real SIGKILL to `run -d` at a random moment instead.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use hako_tests::*;
use serde_json::json;

const T: Duration = Duration::from_secs(10);
const KILLED: i32 = 128 + libc::SIGKILL;

/// A cgroup parent of this test in every hierarchy: `/hako-crash-<unique>`, made by hako.
struct Place {
    name: String,
}

impl Place {
    fn new() -> Place {
        Place {
            name: format!("hako-crash-{}", unique()),
        }
    }
    fn cgroups_path(&self) -> String {
        format!("/{}/c", self.name)
    }
    /// Directories of ours that still exist, in every mounted hierarchy.
    fn leftovers(&self) -> Vec<PathBuf> {
        cgroup_mounts()
            .into_iter()
            .map(|m| m.join(&self.name))
            .filter(|d| d.exists())
            .collect()
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        for d in self.leftovers() {
            let _ = fs::remove_dir(d.join("c"));
            let _ = fs::remove_dir(d);
        }
    }
}

fn cgroup_mounts() -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let fstype = post.split(' ').next()?;
            let mp = PathBuf::from(pre.split(' ').nth(4)?);
            (fstype == "cgroup" || fstype == "cgroup2").then_some(mp)
        })
        .filter(|p| p.starts_with("/sys/fs/cgroup"))
        .collect();
    v.sort();
    v.dedup();
    v
}

fn bundle(place: &Place, script: &str) -> Bundle {
    let mut b = Bundle::sh(script);
    b.config["linux"]["cgroupsPath"] = json!(place.cgroups_path());
    b
}

/// The bundle for a crash at `step`: `create:hooks` is reached only when the spec has a hook
/// that needs the runtime between the init's mounts and `Created` (a spec without any skips
/// that round trip), so that step gets a prestart hook that does nothing.
fn bundle_for(place: &Place, script: &str, step: &str) -> Bundle {
    let mut b = bundle(place, script);
    if step == "create:hooks" {
        b.config["hooks"] = json!({"prestart": [{"path": "/bin/true"}]});
    }
    b
}

fn crash_opts(step: &str) -> CmdOpts {
    CmdOpts {
        env: vec![("HAKO_TEST_CRASH_AT".into(), Some(step.into()))],
        ..Default::default()
    }
}

/// Everything the host must not keep once `delete --force` returned.
#[track_caller]
fn assert_clean(h: &Hako, b: &Bundle, place: &Place, what: &str) {
    let procs_gone = wait_for(T, || processes_using(b.path()).is_empty());
    assert!(
        procs_gone,
        "{what}: container processes left: {:?}",
        processes_using(b.path())
    );
    assert_eq!(
        place.leftovers(),
        Vec::<PathBuf>::new(),
        "{what}: cgroup dirs left"
    );
    assert_eq!(
        mounts_under(b.path()),
        Vec::<String>::new(),
        "{what}: mounts left"
    );
    let files: Vec<_> = fs::read_dir(h.root())
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(files.is_empty(), "{what}: left under --root: {files:?}");
}

/// `delete --force` after the crash, then again: both succeed.
#[track_caller]
fn force_delete_twice(h: &Hako, id: &str, what: &str) {
    let d = h.delete_force(id);
    assert_eq!(d.code, 0, "{what}: delete -f: {}", d.stderr);
    let d = h.delete_force(id);
    assert_eq!(d.code, 0, "{what}: second delete -f: {}", d.stderr);
    let s = h.cmd(&["state", id]);
    assert_eq!(s.code, 1, "{what}: state after delete: {}", s.stdout);
}

const CREATE_STEPS: &[&str] = &[
    "create:claimed",
    "create:recorded",
    "create:cloned",
    "create:cgroups",
    "create:hooks",
    "create:init-ready",
    "create:saved",
];

#[test]
fn killed_during_create_leaves_nothing_after_delete_force() {
    require_root!();
    for step in CREATE_STEPS {
        let h = Hako::new();
        let place = Place::new();
        let b = bundle_for(&place, "sleep 1000", step);
        let id = h.new_id();
        h.track(&id);
        b.save();
        let out = h.cmd_opts(
            &["create", "--bundle", &b.path().to_string_lossy(), &id],
            crash_opts(step),
        );
        assert_eq!(
            out.code, KILLED,
            "{step}: create was not killed: {}",
            out.stderr
        );
        // The record exists before anything on the host: `state` and `list` see it.
        if *step == "create:saved" {
            // Recorded `created`, but killed before it told the init to stay: the init exits.
            assert!(
                h.wait_status(&id, "stopped", T),
                "{step}: init outlived its runtime"
            );
        } else if *step != "create:claimed" {
            assert_eq!(h.state(&id)["status"], "creating", "{step}");
            let l = h.list(&["-q"]);
            assert_eq!(l.stdout.trim(), id, "{step}: list");
        }
        force_delete_twice(&h, &id, step);
        assert_clean(&h, &b, &place, step);
    }
}

/// `run` shares create's steps up to the init's `Created`, then records `running` and releases
/// the init over the channel (no `created` record, no start socket): `run:saved` is after that
/// record and before `Start`, `run:released` after the init exec'd.
const RUN_STEPS: &[&str] = &[
    "create:claimed",
    "create:recorded",
    "create:cloned",
    "create:cgroups",
    "create:hooks",
    "create:init-ready",
    "run:saved",
    "run:released",
];

#[test]
fn killed_during_run_leaves_nothing_after_delete_force() {
    require_root!();
    for step in RUN_STEPS {
        for detach in [true, false] {
            let what = format!("{step} (detach: {detach})");
            let h = Hako::new();
            let place = Place::new();
            let mut b = bundle_for(&place, "touch /out/ran; exec sleep 1000", step);
            let out = b.out_dir();
            let id = h.new_id();
            h.track(&id);
            b.save();
            let mut args = vec!["run", "--bundle"];
            let bundle = b.path().to_string_lossy().to_string();
            args.push(&bundle);
            if detach {
                args.push("-d");
            }
            args.push(&id);
            let o = h.cmd_opts(&args, crash_opts(step));
            assert_eq!(o.code, KILLED, "{what}: run was not killed: {}", o.stderr);
            match *step {
                "create:claimed" => {}
                // Recorded `running` but killed before `Start`: the init exits (EOF) and never
                // ran the user's process.
                "run:saved" => {
                    assert!(
                        h.wait_status(&id, "stopped", T),
                        "{what}: init outlived its runtime"
                    );
                    assert!(!out.join("ran").exists(), "{what}: the process ran");
                }
                // Released: the container runs, recorded with its pid, and outlives the runtime.
                "run:released" => {
                    assert_eq!(h.status(&id), "running", "{what}");
                    let pid = h.pid(&id);
                    assert!(pid_alive(pid), "{what}: init {pid} died with `run`");
                    assert!(wait_for(T, || out.join("ran").exists()), "{what}");
                }
                _ => {
                    assert_eq!(h.state(&id)["status"], "creating", "{what}");
                    assert!(!out.join("ran").exists(), "{what}: the process ran");
                }
            }
            force_delete_twice(&h, &id, &what);
            assert_clean(&h, &b, &place, &what);
        }
    }
}

/// The init dies with its runtime while it is blocked in a step that reads no channel: a
/// createContainer hook that never returns (the parent-death signal, not EOF, ends it).
#[test]
fn init_blocked_in_a_hook_dies_with_its_runtime() {
    require_root!();
    let h = Hako::new();
    let place = Place::new();
    let mut b = bundle(&place, "sleep 1000");
    let marker = h.scratch().join("hook-ran");
    b.config["hooks"] = json!({"createContainer": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("touch {} && exec sleep 1000", marker.display())],
    }]});
    let id = h.new_id();
    h.track(&id);
    b.save();
    let mut c = Command::new(hako_bin());
    c.arg("--root")
        .arg(h.root())
        .args(["create", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    assert!(wait_for(T, || marker.exists()), "the hook did not run");
    let init = h.state(&id)["pid"].as_i64().unwrap() as i32;
    assert!(init > 0 && pid_alive(init));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        wait_for(T, || !pid_alive(init) || proc_state(init) == Some('Z')),
        "init {init} outlived its runtime"
    );
    force_delete_twice(&h, &id, "hook");
    assert_clean(&h, &b, &place, "hook");
}

#[test]
fn killed_during_start_leaves_nothing_after_delete_force() {
    require_root!();
    let h = Hako::new();
    let place = Place::new();
    let b = bundle(&place, "sleep 1000");
    let id = h.new_id();
    h.create(&id, &b).assert_ok();
    let out = h.cmd_opts(&["start", &id], crash_opts("start:released"));
    assert_eq!(out.code, KILLED, "start was not killed: {}", out.stderr);
    // The init was released before the runtime died: it runs, and outlives its runtime.
    let pid = h.pid(&id);
    assert!(pid_alive(pid), "init {pid} died with `start`");
    force_delete_twice(&h, &id, "start");
    assert_clean(&h, &b, &place, "start");
}

#[test]
fn killed_exec_runs_nothing_and_leaves_nothing() {
    require_root!();
    for step in ["exec:cloned", "exec:ready"] {
        let h = Hako::new();
        let place = Place::new();
        let mut b = bundle(&place, "sleep 1000");
        let out = b.out_dir();
        let id = h.new_id();
        h.run_with(&id, &b, &["-d"]).assert_ok();
        let r = h.cmd_opts(
            &["exec", "-d", &id, "sh", "-c", "touch /out/ran"],
            crash_opts(step),
        );
        assert_eq!(r.code, KILLED, "{step}: exec was not killed: {}", r.stderr);
        // The exec child is gone (only the init is left in the container)...
        let procs = || -> usize {
            let p = cgroup_mounts()
                .into_iter()
                .map(|m| {
                    m.join(place.cgroups_path().trim_start_matches('/'))
                        .join("cgroup.procs")
                })
                .find(|p| p.exists())
                .expect("the container's cgroup");
            fs::read_to_string(p).unwrap_or_default().lines().count()
        };
        assert!(wait_for(T, || procs() == 1), "{step}: exec child left");
        // ... and never ran the command.
        assert!(!out.join("ran").exists(), "{step}: the command ran");
        force_delete_twice(&h, &id, step);
        assert_clean(&h, &b, &place, step);
    }
}

#[test]
fn killed_during_delete_is_finished_by_the_next_delete_force() {
    require_root!();
    for step in ["delete:killed", "delete:cgroups"] {
        let h = Hako::new();
        let place = Place::new();
        let b = bundle(&place, "sleep 1000");
        let id = h.new_id();
        h.run_with(&id, &b, &["-d"]).assert_ok();
        let out = h.cmd_opts(&["delete", "--force", &id], crash_opts(step));
        assert_eq!(
            out.code, KILLED,
            "{step}: delete was not killed: {}",
            out.stderr
        );
        force_delete_twice(&h, &id, step);
        assert_clean(&h, &b, &place, step);
    }
}

/// Real SIGKILLs at random moments of `run -d` (a shim timing out), then `delete --force`.
#[test]
fn run_killed_at_random_moments() {
    require_root!();
    let mut seed = std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    for i in 0..20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_micros(seed % 30_000);
        let h = Hako::new();
        let place = Place::new();
        let b = bundle(&place, "sleep 1000");
        let id = h.new_id();
        h.track(&id);
        b.save();
        let mut child = Command::new(hako_bin())
            .arg("--root")
            .arg(h.root())
            .args(["run", "-d", "--bundle"])
            .arg(b.path())
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        child.wait().unwrap();
        let what = format!("run #{i} killed after {delay:?}");
        force_delete_twice(&h, &id, &what);
        assert_clean(&h, &b, &place, &what);
    }
}

/// Many lifecycles at once in one `--root` and one cgroup parent: all succeed (the per-container
/// lock, atomic records, and the shared parent created and removed by whichever container
/// comes first and last).
#[test]
fn parallel_lifecycles_share_root_and_parent() {
    require_root!();
    let h = Hako::new();
    let place = Place::new();
    let b = bundle(&place, "sleep 1000");
    b.save();
    let root = h.root().to_path_buf();
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let root = root.clone();
            let bundle = b.path().to_path_buf();
            let parent = place.name.clone();
            std::thread::spawn(move || {
                for i in 0..4 {
                    let id = format!("par-{t}-{i}");
                    // Every container its own config (its own cgroup under the shared parent).
                    let dir = bundle.with_file_name(format!("{}-{id}", bundle.display()));
                    let _ = fs::create_dir(&dir);
                    let mut cfg: serde_json::Value = serde_json::from_str(
                        &fs::read_to_string(bundle.join("config.json")).unwrap(),
                    )
                    .unwrap();
                    cfg["root"]["path"] = json!(bundle.join("rootfs"));
                    cfg["linux"]["cgroupsPath"] = json!(format!("/{parent}/{id}"));
                    fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
                    // stderr to a file: a detached container keeps a pipe open forever.
                    let err = dir.join("stderr");
                    let run = |args: &[&str]| {
                        let st = Command::new(hako_bin())
                            .arg("--root")
                            .arg(&root)
                            .args(args)
                            .stdin(Stdio::null())
                            .stdout(Stdio::null())
                            .stderr(fs::File::create(&err).unwrap())
                            .status()
                            .unwrap();
                        assert!(
                            st.success(),
                            "{args:?}: {}",
                            fs::read_to_string(&err).unwrap_or_default()
                        );
                    };
                    run(&["run", "-d", "--bundle", &dir.to_string_lossy(), &id]);
                    run(&["exec", &id, "true"]);
                    run(&["state", &id]);
                    run(&["delete", "-f", &id]);
                    let _ = fs::remove_dir_all(&dir);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a lifecycle failed");
    }
    // The parent is the caller's (cgroupsPath), shared: whichever container made it cannot remove
    // it while others are below it, and no other lists it. No container's own directory stays.
    let leaves: Vec<PathBuf> = place
        .leftovers()
        .iter()
        .flat_map(|d| fs::read_dir(d).unwrap().flatten())
        .filter(|e| e.path().is_dir())
        .map(|e| e.path())
        .collect();
    assert_eq!(
        leaves,
        Vec::<PathBuf>::new(),
        "parallel: container cgroups left"
    );
    assert!(wait_for(T, || processes_using(b.path()).is_empty()));
    let files: Vec<_> = fs::read_dir(h.root())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(files.is_empty(), "parallel: left under --root: {files:?}");
}

/// Without a mount namespace the init's mounts are the host's: a create killed at any step
/// leaves them, and `delete --force` takes them away (the record lists what was there before).
#[test]
fn killed_during_create_without_mount_namespace_leaves_no_mount() {
    require_root!();
    for step in CREATE_STEPS {
        let h = Hako::new();
        let place = Place::new();
        let mut b = bundle_for(&place, "sleep 1000", step);
        b.set_namespaces(&["pid", "ipc"])
            .without_private_mount_and_uts_settings()
            .remove_mounts("cgroup")
            .remove_mounts("sysfs");
        let id = h.new_id();
        h.track(&id);
        b.save();
        let out = h.cmd_opts(
            &["create", "--bundle", &b.path().to_string_lossy(), &id],
            crash_opts(step),
        );
        assert_eq!(out.code, KILLED, "{step}: {}", out.stderr);
        // (processes_using would list every host process while the host has mounts there.)
        force_delete_twice(&h, &id, step);
        let left = mounts_under(b.path());
        for m in &left {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        assert!(left.is_empty(), "{step}: mounts left on the host: {left:?}");
        assert_clean(&h, &b, &place, step);
    }
}
