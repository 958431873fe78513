//! The systemd cgroup driver (`--systemd-cgroup`): the container is a transient scope unit that
//! systemd itself created, which is checked from systemd's side (`systemctl show`) and from the
//! cgroup files. These need a host booted with systemd on cgroup v2: `make test-systemd` runs
//! them in a QEMU guest with the real systemd as PID 1 (on a real systemd host they run as
//! they are). Without systemd only the failures that need none run (bad slice names, and the
//! missing-systemd error itself); the others say they are skipped.
//!
//! Set `HAKO_TEST_SLOW=1` (the VM does) to stretch every wait.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hako_tests::*;
use serde_json::json;

fn t(secs: u64) -> Duration {
    let slow = std::env::var_os("HAKO_TEST_SLOW").is_some_and(|v| !v.is_empty() && v != "0");
    Duration::from_secs(if slow { secs * 15 } else { secs })
}

/// sd_booted(3), as the runtime checks it.
fn systemd_booted() -> bool {
    fs::symlink_metadata("/run/systemd/system").is_ok_and(|m| m.is_dir())
}

macro_rules! require_systemd {
    () => {
        require_root!();
        if !systemd_booted() || !pure_v2() {
            skip("needs a host booted with systemd on cgroup v2 (make test-systemd)");
            return;
        }
    };
}

fn pure_v2() -> bool {
    let info = read("/proc/self/mountinfo");
    info.contains(" - cgroup2 ") && !info.contains(" - cgroup ")
}

/// One property of a unit, as systemctl prints it.
fn prop(unit: &str, name: &str) -> String {
    let out = Command::new("systemctl")
        .args(["show", "--value", "-p", name, unit])
        .output()
        .expect("systemctl runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// True once systemd has no unit of that name any more.
fn unit_gone(unit: &str) -> bool {
    prop(unit, "LoadState") == "not-found"
}

/// `exec -d ID sleep 1000` (no --systemd-cgroup: podman's exec does not pass it); the exec'd
/// process's pid and its /proc/PID/cgroup.
fn exec_cgroup(h: &Hako, id: &str) -> (String, String) {
    let pidfile = h.scratch().join("exec.pid");
    h.cmd(&[
        "exec",
        "-d",
        "--pid-file",
        &pidfile.to_string_lossy(),
        id,
        "sleep",
        "1000",
    ])
    .assert_ok();
    let epid = read(&pidfile).trim().to_string();
    let cg = read(format!("/proc/{epid}/cgroup")).trim().to_string();
    (epid, cg)
}

fn cgroup_dir(rel: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'))
}

/// `--systemd-cgroup create` (the flag before the subcommand, where runc requires it).
fn sd_create(h: &Hako, id: &str, b: &Bundle) -> Output {
    h.track(id);
    b.save();
    h.cmd_opts(
        &["create", "--bundle", &b.path().to_string_lossy(), id],
        CmdOpts {
            global: vec!["--systemd-cgroup".into()],
            ..Default::default()
        },
    )
}

fn bundle_in(cgroups_path: &str, resources: serde_json::Value) -> Bundle {
    let mut b = Bundle::new();
    b.set_args(&["sleep", "1000"]);
    b.config["linux"]["cgroupsPath"] = json!(cgroups_path);
    b.config["linux"]["resources"] = resources;
    b
}

#[test]
fn scope_unit_holds_the_init_with_its_limits_and_is_stopped_at_delete() {
    require_systemd!();
    let h = Hako::new();
    let id = h.new_id();
    // A slice two levels deep that does not exist yet: systemd makes the parents.
    let b = bundle_in(
        &format!("system-hakotest.slice:hakotest:{id}"),
        json!({
            "memory": {"limit": 67108864},
            "pids": {"limit": 50},
            "cpu": {"quota": 50000, "period": 100000, "shares": 1024, "cpus": "0"},
        }),
    );
    sd_create(&h, &id, &b).assert_ok();
    let unit = format!("hakotest-{id}.scope");
    let cg = format!("/system.slice/system-hakotest.slice/{unit}");
    assert_eq!(prop(&unit, "ActiveState"), "active");
    assert_eq!(prop(&unit, "Delegate"), "yes");
    assert_eq!(prop(&unit, "Slice"), "system-hakotest.slice");
    assert_eq!(prop(&unit, "ControlGroup"), cg);
    assert_eq!(prop(&unit, "DefaultDependencies"), "no");
    let pid = h.pid(&id);
    assert_eq!(
        read(format!("/proc/{pid}/cgroup")).trim(),
        format!("0::{cg}")
    );
    // The limits are systemd's (what it re-applies on a reload) and the kernel's.
    assert_eq!(prop(&unit, "MemoryMax"), "67108864");
    assert_eq!(prop(&unit, "TasksMax"), "50");
    assert_eq!(prop(&unit, "CPUQuotaPerSecUSec"), "500ms");
    assert_eq!(prop(&unit, "CPUWeight"), "39");
    assert_eq!(prop(&unit, "AllowedCPUs"), "0");
    let dir = cgroup_dir(&cg);
    assert_eq!(read(dir.join("memory.max")).trim(), "67108864");
    assert_eq!(read(dir.join("pids.max")).trim(), "50");
    assert_eq!(read(dir.join("cpu.max")).trim(), "50000 100000");
    assert_eq!(read(dir.join("cpu.weight")).trim(), "39");

    // Later commands get no --systemd-cgroup (podman's exec does not pass it).
    h.start(&id).assert_ok();
    let (epid, exec_cg) = exec_cgroup(&h, &id);
    assert_eq!(exec_cg, format!("0::{cg}"));

    h.cmd(&[
        "update",
        "--memory",
        "134217728",
        "--pids-limit",
        "60",
        "--cpu-quota",
        "25000",
        &id,
    ])
    .assert_ok();
    assert_eq!(prop(&unit, "MemoryMax"), "134217728");
    assert_eq!(prop(&unit, "TasksMax"), "60");
    assert_eq!(prop(&unit, "CPUQuotaPerSecUSec"), "250ms");
    assert_eq!(read(dir.join("memory.max")).trim(), "134217728");
    assert_eq!(read(dir.join("pids.max")).trim(), "60");
    assert_eq!(read(dir.join("cpu.max")).trim(), "25000 100000");

    h.cmd(&["pause", &id]).assert_ok();
    assert_eq!(read(dir.join("cgroup.freeze")).trim(), "1");
    h.cmd(&["resume", &id]).assert_ok();
    assert_eq!(read(dir.join("cgroup.freeze")).trim(), "0");

    h.delete_force(&id).assert_ok();
    assert!(
        unit_gone(&unit),
        "unit left: {}",
        prop(&unit, "ActiveState")
    );
    assert!(!dir.exists(), "cgroup left: {}", dir.display());
    assert!(!pid_alive(pid) && !pid_alive(epid.parse().unwrap()));
}

#[test]
fn a_container_that_exits_leaves_no_unit_after_delete() {
    require_systemd!();
    let h = Hako::new();
    let id = h.new_id();
    let mut b = bundle_in(&format!(":hakotest:{id}"), json!({}));
    b.set_args(&["true"]);
    sd_create(&h, &id, &b).assert_ok();
    let unit = format!("hakotest-{id}.scope");
    assert_eq!(prop(&unit, "Slice"), "system.slice");
    h.start(&id).assert_ok();
    assert!(h.wait_status(&id, "stopped", t(10)));
    h.delete(&id).assert_ok();
    assert!(unit_gone(&unit));
    assert!(!cgroup_dir(&format!("/system.slice/{unit}")).exists());
}

/// A name ending in `.slice` makes the unit that slice (runc): systemd creates it with the
/// parent as Wants=, and the init goes into its cgroup.
#[test]
fn a_slice_name_makes_a_slice_unit() {
    require_systemd!();
    let h = Hako::new();
    let id = h.new_id();
    // Slice names nest by their dashes: one without any below system.slice.
    let unit = format!("system-hakotest{}.slice", std::process::id());
    let b = bundle_in(
        &format!("system.slice:unused:{unit}"),
        json!({"pids": {"limit": 20}}),
    );
    sd_create(&h, &id, &b).assert_ok();
    let cg = format!("/system.slice/{unit}");
    assert_eq!(prop(&unit, "ActiveState"), "active");
    assert_eq!(prop(&unit, "ControlGroup"), cg);
    assert_eq!(prop(&unit, "TasksMax"), "20");
    let pid = h.pid(&id);
    assert_eq!(
        read(format!("/proc/{pid}/cgroup")).trim(),
        format!("0::{cg}")
    );
    h.delete_force(&id).assert_ok();
    // systemd loads any slice name on demand (asking about it loads it), so a stopped slice
    // shows as loaded: what must be gone is the transient unit, its activity and its cgroup.
    assert_eq!(prop(&unit, "ActiveState"), "inactive");
    assert_eq!(prop(&unit, "Transient"), "no");
    assert!(!cgroup_dir(&cg).exists());
}

/// A slice's place follows its own name, not the parent given for Wants=: `hakotestN-k.slice`
/// below `system.slice` is `/hakotestN.slice/hakotestN-k.slice`, and the init must be there, in
/// the unit's cgroup (hako before: in `/system.slice/hakotestN-k.slice`, outside the unit).
#[test]
fn a_slice_name_places_the_init_where_systemd_puts_the_slice() {
    require_systemd!();
    let h = Hako::new();
    let id = h.new_id();
    let parent = format!("hakotest{}.slice", std::process::id());
    let unit = parent.replace(".slice", "-k.slice");
    let b = bundle_in(&format!("system.slice:unused:{unit}"), json!({}));
    sd_create(&h, &id, &b).assert_ok();
    let cg = format!("/{parent}/{unit}");
    assert_eq!(prop(&unit, "ControlGroup"), cg);
    let pid = h.pid(&id);
    assert_eq!(
        read(format!("/proc/{pid}/cgroup")).trim(),
        format!("0::{cg}")
    );
    assert!(!cgroup_dir(&format!("/system.slice/{unit}")).exists());
    h.delete_force(&id).assert_ok();
    assert_eq!(prop(&unit, "ActiveState"), "inactive");
    assert!(!cgroup_dir(&cg).exists());
    // The parent slice systemd made for it is ours too.
    let _ = Command::new("systemctl").args(["stop", &parent]).status();
}

/// Status 1, the needle in the one error line, no state left.
#[track_caller]
fn failed(h: &Hako, id: &str, o: &Output, needle: &str) {
    o.assert_err();
    assert!(
        o.stderr.contains(needle),
        "stderr should say {needle:?}: {o:?}"
    );
    // Warnings may come first (runc too warns that an existing unit's cgroup has processes).
    let errors = o
        .stderr
        .lines()
        .filter(|l| l.contains("level=error"))
        .count();
    assert_eq!(errors, 1, "one error line: {o:?}");
    assert!(!h.state_dir(id).exists(), "state dir left behind");
}

#[test]
fn bad_cgroups_paths_fail_before_anything_exists() {
    require_root!();
    let h = Hako::new();
    for (path, needle) in [
        ("bad--name.slice:p:x", "invalid slice name: bad--name.slice"),
        ("notaslice:p:x", "invalid slice name: notaslice"),
        ("/a/b", "slice:prefix:name"),
    ] {
        let id = h.new_id();
        let b = bundle_in(path, json!({}));
        let o = sd_create(&h, &id, &b);
        failed(&h, &id, &o, needle);
    }
}

#[test]
fn no_systemd_is_one_clear_error() {
    require_root!();
    let h = Hako::new();
    let id = h.new_id();
    let b = bundle_in(&format!(":hakotest:{id}"), json!({}));
    b.save();
    // On a systemd host, a bus that is not there stands for the missing systemd.
    let out = Command::new(hako_bin())
        .arg("--root")
        .arg(h.root())
        .arg("--systemd-cgroup")
        .args(["create", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .output()
        .unwrap();
    let o = Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
        stdout_path: PathBuf::new(),
        stderr_path: PathBuf::new(),
    };
    failed(&h, &id, &o, "systemd not running on this host");
    assert!(!cgroup_dir(&format!("/system.slice/hakotest-{id}.scope")).exists());
    if !systemd_booted() {
        // features agrees: no systemd driver here.
        let f = h.cmd(&["features"]);
        let v: serde_json::Value = serde_json::from_str(&f.stdout).unwrap();
        assert_eq!(v["linux"]["cgroup"]["systemd"], json!(false));
    }
}

#[test]
fn features_reports_the_systemd_driver_when_the_bus_answers() {
    require_systemd!();
    let h = Hako::new();
    let f = h.cmd(&["features"]);
    let v: serde_json::Value = serde_json::from_str(&f.stdout).unwrap();
    assert_eq!(v["linux"]["cgroup"]["systemd"], json!(true));
}

#[test]
fn a_unit_that_exists_is_refused_and_left_alone() {
    require_systemd!();
    let h = Hako::new();
    let first = h.new_id();
    let path = format!(":hakotest:{first}");
    let unit = format!("hakotest-{first}.scope");
    sd_create(&h, &first, &bundle_in(&path, json!({}))).assert_ok();
    let pid = h.pid(&first);
    let second = h.new_id();
    let o = sd_create(&h, &second, &bundle_in(&path, json!({})));
    if testing_runc() && o.stderr.contains("unable to start unit") {
        // runc 1.1 asks systemd, which refuses the unit it has.
        assert!(
            o.stderr
                .contains(&format!("Unit {unit} was already loaded")),
            "{o:?}"
        );
    } else {
        // runc 1.2+ (and hako) refuse a cgroup that holds processes before asking systemd.
        failed(
            &h,
            &second,
            &o,
            "container's cgroup is not empty: 1 process(es) found",
        );
    }
    // The other container's unit and init are untouched.
    assert_eq!(prop(&unit, "ActiveState"), "active");
    assert!(pid_alive(pid));
    assert_eq!(h.status(&first), "created");
    h.delete_force(&first).assert_ok();
    assert!(unit_gone(&unit));
}

#[test]
fn a_create_that_fails_after_the_unit_stops_it() {
    require_systemd!();
    let h = Hako::new();
    let id = h.new_id();
    // systemd has no property for it and the file does not exist: the unit is made, then the
    // write fails.
    let b = bundle_in(
        &format!(":hakotest:{id}"),
        json!({"unified": {"memory.nosuchfile": "1"}}),
    );
    let o = sd_create(&h, &id, &b);
    failed(&h, &id, &o, "memory.nosuchfile");
    let unit = format!("hakotest-{id}.scope");
    assert!(
        unit_gone(&unit),
        "unit left: {}",
        prop(&unit, "ActiveState")
    );
    assert!(!cgroup_dir(&format!("/system.slice/{unit}")).exists());
}

/// The cgroupfs driver pays nothing for the systemd one: without `--systemd-cgroup`, a whole
/// `run` never connects to the system bus (here a socket of the test's, named by
/// DBUS_SYSTEM_BUS_ADDRESS as libdbus would read it).
#[test]
fn without_the_flag_nothing_connects_to_the_bus() {
    require_root!();
    let h = Hako::new();
    let sock = h.scratch().join("bus");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    listener.set_nonblocking(true).unwrap();
    let id = h.new_id();
    let mut b = Bundle::new();
    b.set_args(&["true"]);
    b.save();
    let out = Command::new(hako_bin())
        .arg("--root")
        .arg(h.root())
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .env(
            "DBUS_SYSTEM_BUS_ADDRESS",
            format!("unix:path={}", sock.display()),
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        r => panic!("the runtime connected to the bus without --systemd-cgroup: {r:?}"),
    }
}

// ---- rootless: the user's own systemd instance, over the user bus ----

/// The test user's own systemd instance (`user@UID.service`, with its user bus at
/// `/run/user/UID/bus`), kept running by lingering while this lives: what a login session gives
/// a real user. Lingering is switched off again at drop unless it was on before.
struct UserManager {
    uid: u32,
    name: String,
    lingered_before: bool,
}

impl UserManager {
    fn start() -> UserManager {
        let u = test_user();
        let lingered_before = Path::new("/var/lib/systemd/linger").join(&u.name).exists();
        let out = Command::new("loginctl")
            .args(["enable-linger", &u.name])
            .output()
            .expect("loginctl runs");
        assert!(out.status.success(), "enable-linger: {out:?}");
        let m = UserManager {
            uid: u.uid,
            name: u.name.clone(),
            lingered_before,
        };
        let bus = m.runtime_dir().join("bus");
        assert!(
            wait_for(t(20), || bus.exists()
                && prop(&format!("user@{}.service", m.uid), "ActiveState")
                    == "active"),
            "the user manager of {} did not come up",
            m.name
        );
        m
    }

    /// `/run/user/UID`: the user's $XDG_RUNTIME_DIR.
    fn runtime_dir(&self) -> PathBuf {
        PathBuf::from(format!("/run/user/{}", self.uid))
    }

    /// One property of a unit of the user's instance (`systemctl --user -M user@`).
    fn prop(&self, unit: &str, name: &str) -> String {
        let out = Command::new("systemctl")
            .args(["--user", "-M", &format!("{}@", self.name)])
            .args(["show", "--value", "-p", name, unit])
            .output()
            .expect("systemctl runs");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The instance's own cgroup, below which its units live.
    fn cgroup(&self) -> String {
        format!("/user.slice/user-{0}.slice/user@{0}.service", self.uid)
    }
}

impl Drop for UserManager {
    fn drop(&mut self) {
        if !self.lingered_before {
            let _ = Command::new("loginctl")
                .args(["disable-linger", &self.name])
                .status();
        }
    }
}

/// A bundle the test user can run, shaped as `runc spec --rootless` writes it: its own ids
/// mapped to root in a user namespace, a cgroup namespace, no network namespace (so /sys is an
/// rbind of the host's), devpts without gid=5.
fn rootless_bundle_in(cgroups_path: &str, resources: serde_json::Value) -> Bundle {
    let u = test_user();
    let mut b = bundle_in(cgroups_path, resources);
    let c = &mut b.config;
    c["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "user"},
        {"type": "cgroup"}
    ]);
    for m in c["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/sys" {
            *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                        "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
        }
    }
    u.map_as_root(c);
    b
}

/// One environment change: set (`Some`) or removed (`None`).
type Env<'a> = (&'a str, Option<String>);

/// `--systemd-cgroup create` as the test user with `env` changes.
fn sd_create_env(h: &Hako, id: &str, b: &Bundle, env: &[Env]) -> Output {
    h.track(id);
    b.save();
    h.cmd_opts(
        &["create", "--bundle", &b.path().to_string_lossy(), id],
        CmdOpts {
            global: vec!["--systemd-cgroup".into()],
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            ..Default::default()
        },
    )
}

/// runc 1.1 with `--systemd-cgroup` run by an unprivileged user: the scope is the user's own
/// systemd instance's (user bus, `user.slice` of that instance, `Delegate=yes`), its cgroup
/// below `user@UID.service` with the limits that instance's delegation allows (systemd 252's
/// user@.service delegates cpu, memory and pids), and every later command finds it there.
#[test]
fn rootless_scope_is_the_user_instance_s_with_its_limits_until_delete() {
    require_systemd!();
    let um = UserManager::start();
    let h = Hako::rootless();
    let id = h.new_id();
    // The config's device rules stay: an unprivileged runtime cannot load a device program,
    // and skips it as runc does (its nodes are the host's, bound).
    let b = rootless_bundle_in(
        &format!(":hakotest:{id}"),
        json!({
            "devices": [{"allow": false, "access": "rwm"}],
            "memory": {"limit": 67108864},
            "pids": {"limit": 50},
            "cpu": {"quota": 50000, "period": 100000, "shares": 1024},
        }),
    );
    // The bus found at $XDG_RUNTIME_DIR/bus (no DBUS_SESSION_BUS_ADDRESS).
    let xdg = um.runtime_dir().to_string_lossy().to_string();
    sd_create_env(
        &h,
        &id,
        &b,
        &[
            ("XDG_RUNTIME_DIR", Some(xdg)),
            ("DBUS_SESSION_BUS_ADDRESS", None),
        ],
    )
    .assert_ok();
    let unit = format!("hakotest-{id}.scope");
    let cg = format!("{}/user.slice/{unit}", um.cgroup());
    // Not PID 1's: the user's instance has it.
    assert!(unit_gone(&unit), "a system unit {unit} exists");
    assert_eq!(um.prop(&unit, "ActiveState"), "active");
    assert_eq!(um.prop(&unit, "Delegate"), "yes");
    assert_eq!(um.prop(&unit, "Slice"), "user.slice");
    assert_eq!(um.prop(&unit, "ControlGroup"), cg);
    assert_eq!(um.prop(&unit, "DefaultDependencies"), "no");
    let pid = h.pid(&id);
    assert_eq!(
        read(format!("/proc/{pid}/cgroup")).trim(),
        format!("0::{cg}")
    );
    assert_eq!(um.prop(&unit, "MemoryMax"), "67108864");
    assert_eq!(um.prop(&unit, "TasksMax"), "50");
    assert_eq!(um.prop(&unit, "CPUQuotaPerSecUSec"), "500ms");
    assert_eq!(um.prop(&unit, "CPUWeight"), "39");
    let dir = cgroup_dir(&cg);
    assert_eq!(read(dir.join("memory.max")).trim(), "67108864");
    assert_eq!(read(dir.join("pids.max")).trim(), "50");
    assert_eq!(read(dir.join("cpu.max")).trim(), "50000 100000");
    assert_eq!(read(dir.join("cpu.weight")).trim(), "39");

    // features says the user's instance answers, for this user with this environment.
    let f = h.cmd_opts(
        &["features"],
        CmdOpts {
            env: vec![(
                "XDG_RUNTIME_DIR".into(),
                Some(um.runtime_dir().to_string_lossy().into()),
            )],
            ..Default::default()
        },
    );
    let v: serde_json::Value = serde_json::from_str(&f.stdout).unwrap();
    assert_eq!(v["linux"]["cgroup"]["systemdUser"], json!(true), "{f:?}");
    // Later commands: no flag and no bus in their environment (the record names it).
    h.start(&id).assert_ok();
    // Runtime started outside the user's subtree: systemd moved the exec'd process in.
    let (epid, exec_cg) = exec_cgroup(&h, &id);
    assert_eq!(exec_cg, format!("0::{cg}"));
    // Inside: the container's /sys/fs/cgroup is its own cgroup (a fresh cgroupfs cannot go on
    // the host's /sys bound there: the bind of the scope's directory, as runc), at the root of
    // its cgroup namespace.
    let inside = h.cmd(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cat /proc/self/cgroup /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max",
    ]);
    inside.assert_ok();
    assert_eq!(
        inside.stdout.split_whitespace().collect::<Vec<_>>(),
        ["0::/", "67108864", "50"],
        "{inside:?}"
    );
    let ps = h.cmd(&["ps", "--format", "json", &id]);
    ps.assert_ok();
    let pids: Vec<i32> = serde_json::from_str(ps.stdout.trim()).unwrap();
    assert!(
        pids.contains(&pid) && pids.contains(&epid.parse().unwrap()),
        "{pids:?}"
    );

    h.cmd(&[
        "update",
        "--memory",
        "134217728",
        "--pids-limit",
        "60",
        "--cpu-quota",
        "25000",
        &id,
    ])
    .assert_ok();
    assert_eq!(um.prop(&unit, "MemoryMax"), "134217728");
    assert_eq!(um.prop(&unit, "TasksMax"), "60");
    assert_eq!(um.prop(&unit, "CPUQuotaPerSecUSec"), "250ms");
    assert_eq!(read(dir.join("memory.max")).trim(), "134217728");
    assert_eq!(read(dir.join("pids.max")).trim(), "60");
    assert_eq!(read(dir.join("cpu.max")).trim(), "25000 100000");

    h.cmd(&["pause", &id]).assert_ok();
    assert_eq!(h.status(&id), "paused");
    assert_eq!(read(dir.join("cgroup.freeze")).trim(), "1");
    h.cmd(&["resume", &id]).assert_ok();
    assert_eq!(h.status(&id), "running");
    assert_eq!(read(dir.join("cgroup.freeze")).trim(), "0");

    let ev = h.cmd(&["events", "--stats", &id]);
    ev.assert_ok();
    let v: serde_json::Value = serde_json::from_str(ev.stdout.trim()).unwrap();
    assert_eq!(v["data"]["pids"]["limit"], 60, "{}", ev.stdout);
    assert!(
        v["data"]["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0,
        "{}",
        ev.stdout
    );

    h.delete_force(&id).assert_ok();
    assert_eq!(um.prop(&unit, "LoadState"), "not-found");
    assert!(!dir.exists(), "cgroup left: {}", dir.display());
    assert!(!pid_alive(pid) && !pid_alive(epid.parse().unwrap()));

    // The bus named by DBUS_SESSION_BUS_ADDRESS (whatever XDG_RUNTIME_DIR says), a slice of
    // the user's own below user.slice, and a container that exits: its unit goes at delete.
    let id = h.new_id();
    let mut b = rootless_bundle_in(&format!("user-hako.slice:hakotest:{id}"), json!({}));
    b.set_args(&["true"]);
    let bus = format!("unix:path={}/bus", um.runtime_dir().display());
    sd_create_env(&h, &id, &b, &[("DBUS_SESSION_BUS_ADDRESS", Some(bus))]).assert_ok();
    let unit = format!("hakotest-{id}.scope");
    assert_eq!(um.prop(&unit, "Slice"), "user-hako.slice");
    let cg = format!("{}/user.slice/user-hako.slice/{unit}", um.cgroup());
    assert_eq!(um.prop(&unit, "ControlGroup"), cg);
    h.start(&id).assert_ok();
    assert!(h.wait_status(&id, "stopped", t(10)));
    h.delete(&id).assert_ok();
    assert_eq!(um.prop(&unit, "LoadState"), "not-found");
    assert!(!cgroup_dir(&cg).exists());

    // A limit the user's delegation does not allow (user@.service gives no cpuset): the unit
    // exists when its file is written, so the failed create stops it; one error names the field.
    let id = h.new_id();
    let b = rootless_bundle_in(&format!(":hakotest:{id}"), json!({"cpu": {"cpus": "0"}}));
    let xdg = um.runtime_dir().to_string_lossy().to_string();
    let o = sd_create_env(&h, &id, &b, &[("XDG_RUNTIME_DIR", Some(xdg))]);
    failed(&h, &id, &o, "linux.resources.cpu.cpus");
    let unit = format!("hakotest-{id}.scope");
    assert_eq!(um.prop(&unit, "LoadState"), "not-found");
    assert!(!cgroup_dir(&format!("{}/user.slice/{unit}", um.cgroup())).exists());
    assert!(processes_using(b.path()).is_empty(), "processes left");
}

/// Every directory below `dir` whose name is `name`.
fn find_dirs(dir: &Path, name: &str, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            if e.file_name().to_string_lossy() == name {
                out.push(e.path());
            }
            find_dirs(&e.path(), name, out);
        }
    }
}

/// No user bus: runc's error (its hint, then what failed), exit 1, nothing left. Without
/// systemd at all (these development hosts) it is the missing-systemd error instead.
#[test]
fn a_missing_user_bus_is_runc_s_one_error_and_leaves_nothing() {
    require_root!();
    let h = Hako::rootless();
    let nobus = h.scratch().join("nobus");
    let cases: Vec<(Vec<Env>, &str)> = vec![
        (
            vec![(
                "DBUS_SESSION_BUS_ADDRESS",
                Some(format!("unix:path={}", nobus.display())),
            )],
            "error while dialing",
        ),
        // $XDG_RUNTIME_DIR holds no bus either: runc 1.2+ asks nothing else (runc 1.1 ran
        // `systemctl --user show-environment`).
        (
            vec![("DBUS_SESSION_BUS_ADDRESS", None)],
            "could not detect DBUS_SESSION_BUS_ADDRESS from the environment; make sure you have \
             installed the dbus-user-session or dbus-daemon package; note you may need to re-login",
        ),
    ];
    for (env, needle) in cases {
        let id = h.new_id();
        let b = rootless_bundle_in(&format!(":hakotest:{id}"), json!({"pids": {"limit": 10}}));
        let o = sd_create_env(&h, &id, &b, &env);
        if systemd_booted() {
            failed(&h, &id, &o, "failed to connect to dbus (hint: for rootless containers, maybe you need to install dbus-user-session package");
            assert!(o.stderr.contains(needle), "{o:?}");
        } else {
            failed(&h, &id, &o, "systemd not running on this host");
        }
        let mut left = Vec::new();
        find_dirs(
            Path::new("/sys/fs/cgroup"),
            &format!("hakotest-{id}.scope"),
            &mut left,
        );
        assert!(left.is_empty(), "cgroups left: {left:?}");
        assert!(processes_using(b.path()).is_empty(), "processes left");
    }
    let f = h.cmd(&["features"]);
    let v: serde_json::Value = serde_json::from_str(&f.stdout).unwrap();
    assert_eq!(v["linux"]["cgroup"]["systemdUser"], json!(false), "{f:?}");
}

/// A rootless run without `--systemd-cgroup` never touches the user bus either.
#[test]
fn without_the_flag_a_rootless_run_never_connects_to_the_user_bus() {
    require_root!();
    let h = Hako::rootless();
    let sock = h.scratch().join("bus");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    listener.set_nonblocking(true).unwrap();
    // Anyone may connect, so a connection attempt would show.
    fs::set_permissions(&sock, fs::Permissions::from_mode(0o777)).unwrap();
    let id = h.new_id();
    let mut b = rootless_bundle_in("", json!({}));
    b.config["linux"]
        .as_object_mut()
        .unwrap()
        .remove("cgroupsPath");
    b.config["linux"]
        .as_object_mut()
        .unwrap()
        .remove("resources");
    b.set_args(&["true"]);
    b.save();
    h.cmd_opts(
        &["run", "--bundle", &b.path().to_string_lossy(), &id],
        CmdOpts {
            env: vec![(
                "DBUS_SESSION_BUS_ADDRESS".into(),
                Some(format!("unix:path={}", sock.display())),
            )],
            ..Default::default()
        },
    )
    .assert_ok();
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        r => panic!("the runtime connected to the user bus without --systemd-cgroup: {r:?}"),
    }
}
