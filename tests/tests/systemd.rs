//! The systemd cgroup driver (`--systemd-cgroup`): the container is a transient scope unit that
//! systemd itself created, which is checked from systemd's side (`systemctl show`) and from the
//! cgroup files. These need a host booted with systemd on cgroup v2: `make test-systemd` runs
//! them in a QEMU guest with the real systemd as PID 1 (on a real systemd host they run as
//! they are). Without systemd only the failures that need none run (bad slice names, and the
//! missing-systemd error itself); the others say they are skipped.
//!
//! Set `HAKO_TEST_SLOW=1` (the VM does) to stretch every wait.

use std::fs;
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
            eprintln!(
                "skipping: needs a host booted with systemd on cgroup v2 (make test-systemd)"
            );
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
    let pidfile = h.scratch().join("exec.pid");
    h.cmd(&[
        "exec",
        "-d",
        "--pid-file",
        &pidfile.to_string_lossy(),
        &id,
        "sleep",
        "1000",
    ])
    .assert_ok();
    let epid = read(&pidfile).trim().to_string();
    assert_eq!(
        read(format!("/proc/{epid}/cgroup")).trim(),
        format!("0::{cg}")
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
    failed(&h, &second, &o, "unable to start unit");
    assert!(
        o.stderr
            .contains(&format!("Unit {unit} was already loaded")),
        "{o:?}"
    );
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
