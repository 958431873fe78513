//! Rootless: hako run by a real unprivileged user (`hakotest`, created by the harness with
//! /etc/subuid and /etc/subgid entries), every behaviour observed in a real container.
//! docs/rootless.md describes what these pin.

use std::fs;
use std::path::Path;

use std::os::unix::process::CommandExt;

use hako_tests::*;

/// The config `runc spec --rootless` would give: a user namespace mapping the caller to root, no
/// network namespace, no gid=5 on devpts (gid 5 is not mapped), no resources.
fn rootless_bundle(script: &str) -> Bundle {
    let mut b = Bundle::sh(script);
    b.set_namespaces(&["pid", "ipc", "uts", "mount"])
        .in_user_namespace_of(test_user());
    b.config["linux"]
        .as_object_mut()
        .unwrap()
        .remove("resources");
    b
}

/// The caller's own id and a subordinate range: what newuidmap/newgidmap are needed for.
fn map_subids(b: &mut Bundle) {
    let u = test_user();
    b.config["linux"]["uidMappings"] = json!([
        {"containerID": 0, "hostID": u.uid, "size": 1},
        {"containerID": 1, "hostID": u.subuid.0, "size": u.subuid.1}
    ]);
    b.config["linux"]["gidMappings"] = json!([
        {"containerID": 0, "hostID": u.gid, "size": 1},
        {"containerID": 1, "hostID": u.subgid.0, "size": u.subgid.1}
    ]);
}

fn run_ok(h: &Hako, b: &Bundle) -> String {
    let id = h.new_id();
    let out = h.run(&id, b);
    out.assert_ok();
    out.stdout
}

/// Nothing of a failed create remains: no state dir, no process on the bundle.
#[track_caller]
fn nothing_left(h: &Hako, id: &str, b: &Bundle) {
    assert!(!h.state_dir(id).exists(), "state dir left behind");
    assert!(
        processes_using(b.path()).is_empty(),
        "processes left behind"
    );
}

#[test]
fn unprivileged_user_runs_a_container_as_root_inside() {
    require_root!();
    let u = test_user();
    let h = Hako::rootless();
    let b = rootless_bundle(
        "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups",
    );
    let out = run_ok(&h, &b);
    let lines: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(lines[0], "0");
    assert_eq!(lines[1], "0");
    assert_eq!(lines[2], format!("0 {} 1", u.uid));
    assert_eq!(lines[3], format!("0 {} 1", u.gid));
    // Only the caller's own gid mapped: setgroups had to be denied before gid_map.
    assert_eq!(lines[4], "deny");
}

#[test]
fn lifecycle_commands_as_the_user() {
    require_root!();
    let u = test_user();
    let h = Hako::rootless();
    let b = rootless_bundle("echo ready; exec sleep 60");
    let id = h.new_id();
    h.create(&id, &b).assert_ok();
    // The state belongs to the user.
    let meta = fs::metadata(h.state_dir(&id)).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), u.uid);
    assert_eq!(h.status(&id), "created");
    h.start(&id).assert_ok();
    assert_eq!(h.status(&id), "running");
    let state = h.state(&id);
    assert_eq!(state["owner"], "");
    let list = h.list(&["--format", "json"]);
    list.assert_ok();
    assert!(list.stdout.contains(&id), "{}", list.stdout);
    let ps = h.cmd(&["ps", "--format", "json", &id]);
    ps.assert_ok();
    let pid = h.pid(&id);
    assert!(ps.stdout.contains(&pid.to_string()), "ps: {}", ps.stdout);
    // exec joins the container's user and pid namespaces (a double fork for an unprivileged
    // runtime): pid 1 is the container's sleep, and the exec'd shell is root inside.
    let ex = h.cmd(&[
        "exec",
        &id,
        "sh",
        "-c",
        "id -u; cat /proc/1/cmdline | tr '\\0' ' '; echo; grep NSpid /proc/self/status",
    ]);
    ex.assert_ok();
    let l: Vec<&str> = ex.stdout.lines().collect();
    assert_eq!(l[0], "0", "{}", ex.stdout);
    assert!(l[1].starts_with("sleep 60"), "{}", ex.stdout);
    // The container's procfs shows /proc/self (one NSpid level) only to its own pid namespace.
    assert_eq!(
        l[2].split_whitespace().count(),
        2,
        "exec'd process in the container's pid namespace: {}",
        ex.stdout
    );
    h.kill(&id, "KILL").assert_ok();
    assert!(h.wait_status(&id, "stopped", CMD_TIMEOUT));
    h.delete(&id).assert_ok();
    assert!(!h.state_dir(&id).exists());
}

#[test]
fn default_root_is_under_xdg_runtime_dir() {
    require_root!();
    let h = Hako::rootless();
    let b = rootless_bundle("exec sleep 60");
    let id = h.new_id();
    let bundle = b.path().to_string_lossy().to_string();
    b.save();
    let no_root = |env: Vec<(String, Option<String>)>, args: &[&str]| {
        h.cmd_opts(
            args,
            CmdOpts {
                no_root: true,
                env,
                ..Default::default()
            },
        )
    };
    no_root(vec![], &["create", "--bundle", &bundle, &id]).assert_ok();
    let dir = h.xdg_runtime_dir().join("hako");
    assert!(dir.join(&id).join("state.json").exists());
    let mode = std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&dir).unwrap().permissions());
    assert_eq!(mode & 0o7777, 0o1700, "runc's mode for the rootless root");
    no_root(vec![], &["delete", "--force", &id]).assert_ok();
    assert!(!dir.join(&id).exists());

    let unset = no_root(vec![("XDG_RUNTIME_DIR".into(), None)], &["list"]);
    unset.assert_err();
    assert!(unset.stderr.contains("XDG_RUNTIME_DIR"), "{}", unset.stderr);
    let unusable = no_root(
        vec![("XDG_RUNTIME_DIR".into(), Some("/proc/nonexistent".into()))],
        &["create", "--bundle", &bundle, &id],
    );
    unusable.assert_err();
    assert!(
        unusable.stderr.contains("XDG_RUNTIME_DIR"),
        "{}",
        unusable.stderr
    );
}

#[test]
fn rootless_flag_takes_runcs_values() {
    require_root!();
    let h = Hako::rootless();
    let b = rootless_bundle("true");
    b.save();
    let run = |v: &str, id: &str| {
        h.cmd_opts(
            &["run", "--bundle", &b.path().to_string_lossy(), id],
            CmdOpts {
                global: vec![format!("--rootless={v}")],
                ..Default::default()
            },
        )
    };
    for v in ["true", "auto", "1"] {
        run(v, &h.new_id()).assert_ok();
    }
    // Not rootless cgroups, as runc: the user cannot create the container's cgroups on this
    // host (v1, or v2 without delegation) and that is an error then.
    let id = h.new_id();
    let out = run("false", &id);
    out.assert_err();
    assert!(
        out.stderr.contains("cgroup") && out.stderr.contains("permission denied"),
        "{}",
        out.stderr
    );
    nothing_left(&h, &id, &b);
    let id = h.new_id();
    let bad = h.cmd_opts(
        &["run", "--bundle", &b.path().to_string_lossy(), &id],
        CmdOpts {
            global: vec!["--rootless=maybe".into()],
            ..Default::default()
        },
    );
    bad.assert_err();
    assert!(bad.stderr.contains("--rootless"), "{}", bad.stderr);
    nothing_left(&h, &id, &b);
}

#[test]
fn subordinate_ids_go_through_newuidmap() {
    require_root!();
    let u = test_user();
    let h = Hako::rootless();
    let mut b = rootless_bundle(
        "cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; id -G; \
         touch /dev/shm/f && chown 1000:1000 /dev/shm/f && stat -c %u:%g /dev/shm/f",
    );
    map_subids(&mut b);
    b.config["process"]["user"]["additionalGids"] = json!([5]);
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set] = json!(["CAP_CHOWN"]);
    }
    let out = run_ok(&h, &b);
    let lines: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(lines[0], format!("0 {} 1", u.uid));
    assert_eq!(lines[1], format!("1 {} {}", u.subuid.0, u.subuid.1));
    assert_eq!(lines[2], format!("0 {} 1", u.gid));
    assert_eq!(lines[3], format!("1 {} {}", u.subgid.0, u.subgid.1));
    // newgidmap leaves setgroups allowed, so supplementary groups work.
    assert_eq!(lines[4], "allow");
    assert_eq!(lines[5], "0 5");
    assert_eq!(lines[6], "1000:1000");
}

#[test]
fn a_mapping_the_helper_refuses_is_one_error_quoting_it() {
    require_root!();
    let u = test_user();
    let h = Hako::rootless();
    let mut b = rootless_bundle("true");
    // Beyond the user's subordinate range.
    b.config["linux"]["uidMappings"] = json!([
        {"containerID": 0, "hostID": u.uid, "size": 1},
        {"containerID": 1, "hostID": u.subuid.0 + u.subuid.1, "size": 10}
    ]);
    let id = h.new_id();
    let out = h.run(&id, &b);
    out.assert_err();
    assert!(
        out.stderr.contains("linux.uidMappings") && out.stderr.contains("newuidmap"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("not allowed"),
        "helper's text: {}",
        out.stderr
    );
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    nothing_left(&h, &id, &b);
}

#[test]
fn device_nodes_are_the_hosts_bind_mounted() {
    require_root!();
    let h = Hako::rootless();
    let mut b = rootless_bundle(
        "stat -c '%t:%T' /dev/null /dev/zero; echo x > /dev/null && echo wrote; \
         grep -c ' /dev/null ' /proc/self/mountinfo; head -c 4 /dev/zero | wc -c",
    );
    b.config["linux"]["devices"] =
        json!([{"path": "/dev/zero", "type": "c", "major": 1, "minor": 5}]);
    let out = run_ok(&h, &b);
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[..5], ["1:3", "1:5", "wrote", "1", "4"], "{out}");
}

#[test]
fn a_device_the_host_lacks_is_an_error_naming_it() {
    require_root!();
    let h = Hako::rootless();
    let mut b = rootless_bundle("true");
    b.config["linux"]["devices"] =
        json!([{"path": "/dev/hako-missing", "type": "c", "major": 1, "minor": 3}]);
    let id = h.new_id();
    let out = h.run(&id, &b);
    out.assert_err();
    assert!(out.stderr.contains("linux.devices[0]"), "{}", out.stderr);
    nothing_left(&h, &id, &b);
}

#[test]
fn sys_is_bound_from_the_host_without_a_network_namespace() {
    require_root!();
    let h = Hako::rootless();
    // The config asks for a fresh sysfs; without a network namespace of its own the user
    // namespace may not mount one, so the host's /sys is bound (read-only, as asked).
    let b = rootless_bundle(
        "grep ' /sys ' /proc/self/mountinfo | head -1; ls /sys/class/net | sort | tr '\\n' ' '; echo; \
         touch /sys/x 2>/dev/null && echo writable || echo ro",
    );
    let out = run_ok(&h, &b);
    let l: Vec<&str> = out.lines().collect();
    assert!(l[0].contains(" - sysfs "), "{out}");
    let host: Vec<String> = {
        let mut v: Vec<String> = fs::read_dir("/sys/class/net")
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(l[1].split_whitespace().collect::<Vec<_>>(), host, "{out}");
    assert_eq!(l[2], "ro");

    // With its own network namespace (owned by its user namespace) sysfs is mounted fresh: only
    // that namespace's loopback shows.
    let mut b = rootless_bundle("ls /sys/class/net | tr '\\n' ' '");
    b.add_namespace("network");
    assert_eq!(run_ok(&h, &b).trim(), "lo");
}

#[test]
fn locked_mount_flags_are_kept() {
    require_root!();
    let h = Hako::rootless();
    // A host mount with nosuid, nodev and noexec: a bind of it in an unprivileged user namespace
    // may not drop them, and the container's "ro" remount must keep them rather than fail.
    let host = TempDir::new("locked");
    nix::mount::mount(
        Some("tmpfs"),
        host.path(),
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC,
        Some("mode=755"),
    )
    .unwrap();
    struct Umount<'a>(&'a Path);
    impl Drop for Umount<'_> {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let _u = Umount(host.path());
    fs::write(host.path().join("f"), "hello").unwrap();
    let mut b = rootless_bundle("cat /mnt/f; echo; grep ' /mnt ' /proc/self/mountinfo");
    b.add_mount(json!({
        "destination": "/mnt", "type": "bind",
        "source": host.path().to_string_lossy(), "options": ["rbind", "ro"]
    }));
    let out = run_ok(&h, &b);
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "hello");
    let opts = l[1].split_whitespace().nth(5).unwrap();
    for o in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(opts.split(',').any(|x| x == o), "{o} missing: {}", l[1]);
    }
}

#[test]
fn oom_score_adj_is_never_lowered() {
    require_root!();
    let h = Hako::rootless();
    let own: i32 = read("/proc/self/oom_score_adj").trim().parse().unwrap();
    let mut b = rootless_bundle("cat /proc/self/oom_score_adj");
    // Raising is allowed.
    b.config["process"]["oomScoreAdj"] = json!(own + 100);
    assert_eq!(run_ok(&h, &b).trim(), (own + 100).to_string());
    // Lowering needs CAP_SYS_RESOURCE: left where it is, the container still runs.
    b.config["process"]["oomScoreAdj"] = json!(own - 100);
    assert_eq!(run_ok(&h, &b).trim(), own.to_string());
}

#[test]
fn rlimits_above_the_callers_hard_limit_are_an_error() {
    require_root!();
    let h = Hako::rootless();
    let mut hard = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    assert_eq!(
        // SAFETY: getrlimit writes one rlimit into `hard`, which we own.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut hard) },
        0
    );
    let mut b = rootless_bundle("ulimit -Hn");
    // Within the caller's hard limit: applied.
    let want = hard.rlim_max.min(1024) - 1;
    b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": want, "soft": want}]);
    assert_eq!(run_ok(&h, &b).trim(), want.to_string());
    b.config["process"]["rlimits"] = json!([
        {"type": "RLIMIT_CORE", "hard": 0, "soft": 0},
        {"type": "RLIMIT_NOFILE", "hard": hard.rlim_max + 1, "soft": 1024}
    ]);
    let id = h.new_id();
    let out = h.run(&id, &b);
    out.assert_err();
    assert!(
        out.stderr.contains("process.rlimits[1]") && out.stderr.contains("RLIMIT_NOFILE"),
        "{}",
        out.stderr
    );
    nothing_left(&h, &id, &b);
}

#[test]
fn ids_outside_the_mapping_are_errors_naming_the_field() {
    require_root!();
    let h = Hako::rootless();
    for (field, set) in [
        ("process.user.uid", json!({"uid": 1000, "gid": 0})),
        ("process.user.gid", json!({"uid": 0, "gid": 1000})),
        (
            "process.user.additionalGids",
            json!({"uid": 0, "gid": 0, "additionalGids": [5]}),
        ),
    ] {
        let mut b = rootless_bundle("true");
        b.config["process"]["user"] = set;
        let id = h.new_id();
        let out = h.run(&id, &b);
        out.assert_err();
        assert!(out.stderr.contains(field), "{field}: {}", out.stderr);
        nothing_left(&h, &id, &b);
    }
}

#[test]
fn sysctls_only_in_the_containers_namespaces() {
    require_root!();
    let h = Hako::rootless();
    // No network namespace: a net.* sysctl would be the host's.
    let mut b = rootless_bundle("true");
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    let id = h.new_id();
    let out = h.run(&id, &b);
    out.assert_err();
    assert!(
        out.stderr.contains("linux.sysctl.net.ipv4.ip_forward"),
        "{}",
        out.stderr
    );
    nothing_left(&h, &id, &b);
    // Its own network namespace (owned by its user namespace): set.
    b.add_namespace("network");
    b.set_sh("cat /proc/sys/net/ipv4/ip_forward");
    assert_eq!(run_ok(&h, &b).trim(), "1");
}

#[test]
fn without_a_writable_hierarchy_no_cgroup_and_one_warning() {
    require_root!();
    // The test user's cgroup is the test's own (root's, not delegated to it), on this v1 host as
    // in the v2 VM: the container gets no cgroup and the limits are not applied.
    let h = Hako::rootless();
    let log = h.scratch().join("log.json");
    let mut b = rootless_bundle("cat /proc/self/cgroup");
    b.config["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 50}});
    b.save();
    let id = h.new_id();
    let out = h.cmd_opts(
        &["run", "--bundle", &b.path().to_string_lossy(), &id],
        CmdOpts {
            global: vec![
                "--log".into(),
                log.to_string_lossy().into(),
                "--log-format".into(),
                "json".into(),
            ],
            ..Default::default()
        },
    );
    out.assert_ok();
    // No cgroup namespace and no cgroup of its own: the init sits where its caller (a child of
    // this test) was.
    assert_eq!(out.stdout, read("/proc/self/cgroup"));
    let log = read(&log);
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("\"warning\"")).collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("linux.resources"), "{log}");

    // pause and update have nothing to act on: a clear error.
    let mut b = rootless_bundle("exec sleep 60");
    b.config["linux"]["resources"] = json!({"pids": {"limit": 50}});
    let id = h.new_id();
    h.run_with(&id, &b, &["--detach"]).assert_ok();
    let p = h.cmd(&["pause", &id]);
    p.assert_err();
    assert!(p.stderr.contains("no cgroup"), "{}", p.stderr);
    let u = h.cmd(&["update", "--pids-limit", "10", &id]);
    u.assert_err();
    assert!(u.stderr.contains("no cgroup"), "{}", u.stderr);
    h.delete_force(&id).assert_ok();
}

fn cgroup_v2_only() -> bool {
    let info = read("/proc/self/mountinfo");
    info.contains(" - cgroup2 ") && !info.contains(" - cgroup cgroup ")
}

/// A subtree delegated to the test user as systemd's `user@.service` is: the directory, its
/// `cgroup.procs`, `cgroup.subtree_control` and `cgroup.threads` chowned to the user, and the
/// user's session in a leaf below it. Removed on drop (after the containers in it).
struct Delegated {
    dir: std::path::PathBuf,
}

impl Delegated {
    fn new() -> Delegated {
        let u = test_user();
        let root = Path::new("/sys/fs/cgroup");
        // The controllers the container needs, enabled for the children of the root (as systemd
        // does on every v2 host).
        let _ = fs::write(root.join("cgroup.subtree_control"), "+memory +pids +cpu");
        let dir = root.join(format!("hako-test-rootless-{}", unique()));
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("cgroup.subtree_control"), "+memory +pids +cpu").unwrap();
        let session = dir.join("session");
        fs::create_dir(&session).unwrap();
        for d in [&dir, &session] {
            for f in [
                "",
                "cgroup.procs",
                "cgroup.subtree_control",
                "cgroup.threads",
            ] {
                let p = if f.is_empty() { d.clone() } else { d.join(f) };
                std::os::unix::fs::chown(&p, Some(u.uid), Some(u.gid)).unwrap();
            }
        }
        Delegated { dir }
    }

    fn session(&self) -> std::path::PathBuf {
        self.dir.join("session")
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        // Deepest first; only what this test made.
        let mut dirs: Vec<std::path::PathBuf> = Vec::new();
        fn walk(d: &Path, out: &mut Vec<std::path::PathBuf>) {
            for e in fs::read_dir(d).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path(), out);
                }
            }
            out.push(d.to_path_buf());
        }
        walk(&self.dir, &mut dirs);
        for d in dirs {
            let _ = fs::remove_dir(&d);
        }
    }
}

#[test]
fn delegated_cgroup_v2_subtree_gets_the_limits() {
    require_root!();
    if !cgroup_v2_only() {
        skip("needs a pure cgroup v2 host (make test-cgroupv2 runs it in the VM)");
        return;
    }
    let deleg = Delegated::new();
    let mut h = Hako::rootless();
    h.cgroup = Some(deleg.session());
    let mut b = rootless_bundle("exec sleep 60");
    b.config["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 50}});
    let id = h.new_id();
    h.run_with(&id, &b, &["--detach"]).assert_ok();
    // At the top of the delegated subtree, under hako's default parent.
    let cg = deleg.dir.join("hako").join(&id);
    assert_eq!(read(cg.join("memory.max")).trim(), "67108864");
    assert_eq!(read(cg.join("pids.max")).trim(), "50");
    let pid = h.pid(&id);
    assert!(
        read(cg.join("cgroup.procs")).contains(&pid.to_string()),
        "init in its cgroup"
    );
    // exec is born in the same cgroup.
    let ex = h.cmd(&["exec", &id, "cat", "/proc/self/cgroup"]);
    ex.assert_ok();
    let rel = cg.strip_prefix("/sys/fs/cgroup").unwrap();
    assert_eq!(ex.stdout.trim(), format!("0::/{}", rel.display()));
    // pause / resume through cgroup.freeze.
    h.cmd(&["pause", &id]).assert_ok();
    assert_eq!(h.status(&id), "paused");
    assert_eq!(read(cg.join("cgroup.freeze")).trim(), "1");
    h.cmd(&["resume", &id]).assert_ok();
    assert_eq!(h.status(&id), "running");
    // update and events.
    h.cmd(&["update", "--memory", "134217728", "--pids-limit", "20", &id])
        .assert_ok();
    assert_eq!(read(cg.join("memory.max")).trim(), "134217728");
    assert_eq!(read(cg.join("pids.max")).trim(), "20");
    let ev = h.cmd(&["events", "--stats", &id]);
    ev.assert_ok();
    let v: Value = serde_json::from_str(ev.stdout.trim()).unwrap();
    assert_eq!(v["type"], "stats", "{}", ev.stdout);
    assert!(
        v["data"]["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0,
        "{}",
        ev.stdout
    );
    assert_eq!(v["data"]["pids"]["limit"], 20, "{}", ev.stdout);
    h.delete_force(&id).assert_ok();
    assert!(!cg.exists(), "container cgroup removed");
    assert!(
        !deleg.dir.join("hako").exists(),
        "hako's empty parent removed"
    );

    // Outside a delegated subtree (the test's own cgroup is root's): no cgroup, as on v1.
    let plain = Hako::rootless();
    let id = plain.new_id();
    plain.run_with(&id, &b, &["--detach"]).assert_ok();
    let p = plain.cmd(&["pause", &id]);
    p.assert_err();
    assert!(p.stderr.contains("no cgroup"), "{}", p.stderr);
    plain.delete_force(&id).assert_ok();
}

#[test]
fn root_in_the_users_own_user_namespace_as_rootless_podman_runs_it() {
    require_root!();
    // Rootless podman runs the runtime as root of a user namespace the user made: euid 0, but no
    // mknod, no write to the host's cgroups, no fresh sysfs without a network namespace.
    // One user namespace for every command, as podman's pause process keeps one: held by a
    // sleeping process of the user, entered with nsenter.
    let u = test_user();
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let holder = Reap(
        std::process::Command::new("unshare")
            .args(["--user", "--map-root-user", "sleep", "300"])
            .uid(u.uid)
            .gid(u.gid)
            .spawn()
            .unwrap(),
    );
    let hpid = holder.0.id();
    let own_ns = fs::read_link("/proc/self/ns/user").unwrap();
    assert!(wait_for(CMD_TIMEOUT, || {
        fs::read_link(format!("/proc/{hpid}/ns/user")).is_ok_and(|n| n != own_ns)
            && read(format!("/proc/{hpid}/uid_map"))
                .trim()
                .starts_with('0')
    }));
    let mut h = Hako::rootless();
    h.wrap = [
        "nsenter",
        "--user",
        "--preserve-credentials",
        "-t",
        &hpid.to_string(),
        "--",
    ]
    .map(String::from)
    .to_vec();
    // rootless_bundle's config without a user namespace of its own (podman's default).
    let podman_like = |script: &str| {
        let mut b = rootless_bundle(script);
        b.config["linux"]["namespaces"] = json!([
            {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}
        ]);
        for k in ["uidMappings", "gidMappings"] {
            b.config["linux"].as_object_mut().unwrap().remove(k);
        }
        b
    };
    let mut b = podman_like(
        "id -u; stat -c '%t:%T' /dev/null; grep -c ' /dev/null ' /proc/self/mountinfo; \
         grep ' /sys ' /proc/self/mountinfo | grep -c sysfs",
    );
    b.config["linux"]["resources"] = json!({"pids": {"limit": 50}});
    b.save();
    let log = h.scratch().join("log.json");
    let run = |extra: &[&str], id: &str| {
        let mut g = vec![
            "--log".to_string(),
            log.to_string_lossy().into(),
            "--log-format".into(),
            "json".into(),
        ];
        g.extend(extra.iter().map(|s| s.to_string()));
        h.cmd_opts(
            &["run", "--bundle", &b.path().to_string_lossy(), id],
            CmdOpts {
                global: g,
                ..Default::default()
            },
        )
    };
    let out = run(&[], &h.new_id());
    out.assert_ok();
    let l: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(l, ["0", "1:3", "1", "1"], "{}", out.stdout);
    let text = read(&log);
    assert!(
        text.contains("\"warning\"") && text.contains("linux.resources"),
        "{text}"
    );
    // --rootless=false: runc's meaning, cgroups are required, and the host refuses them.
    let id = h.new_id();
    let out = run(&["--rootless=false"], &id);
    out.assert_err();
    assert!(out.stderr.contains("permission denied"), "{}", out.stderr);
    nothing_left(&h, &id, &b);
    // exec enters the container's pid namespace (owned by the user's namespace) and cannot go
    // back to the initial one: only its child needed it.
    let sleeper = podman_like("exec sleep 60");
    let id = h.new_id();
    h.run_with(&id, &sleeper, &["--detach"]).assert_ok();
    // The container's pid 1 by its command line: `sleep 60` before and after its `sh -c exec`
    // (its comm is still `sh` for a moment after `run --detach` returns).
    let ex = h.cmd(&[
        "exec",
        &id,
        "sh",
        "-c",
        "id -u; tr '\\0' ' ' < /proc/1/cmdline",
    ]);
    ex.assert_ok();
    assert!(ex.stdout.starts_with("0\n"), "{ex:?}");
    assert!(ex.stdout.contains("sleep 60"), "{ex:?}");
    // From another user namespace, which cannot see (or enter) the container's namespaces: an
    // error, never a process outside them.
    let nsenter = std::mem::replace(
        &mut h.wrap,
        ["unshare", "--user", "--map-root-user", "--"]
            .map(String::from)
            .to_vec(),
    );
    let ex = h.cmd(&["exec", &id, "cat", "/proc/1/comm"]);
    assert_eq!(ex.code, 255, "{ex:?}");
    assert!(ex.stdout.is_empty(), "{ex:?}");
    h.wrap = nsenter;
    h.delete_force(&id).assert_ok();
}

#[test]
fn spec_rootless_then_run_as_the_user() {
    require_root!();
    let u = test_user();
    // The first try: `hako spec --rootless && hako run`, as the user, unchanged but for
    // the process (no terminal here).
    let h = Hako::rootless();
    let dir = TempDir::new("rl-spec");
    std::os::unix::fs::chown(dir.path(), Some(u.uid), Some(u.gid)).unwrap();
    h.cmd(&[
        "spec",
        "--rootless",
        "--bundle",
        &dir.path().to_string_lossy(),
    ])
    .assert_ok();
    let spec: Value = serde_json::from_str(&read(dir.path().join("config.json"))).unwrap();
    assert_eq!(spec["linux"]["uidMappings"][0]["hostID"], u.uid);
    let mut b = Bundle::new();
    b.config = spec;
    b.config["process"]["terminal"] = json!(false);
    b.config["process"]["args"] = json!(["sh", "-c", "id -u; hostname"]);
    assert_eq!(run_ok(&h, &b), "0\nrunc\n");
}

/// An unprivileged user may not join a user namespace another user owns (here root's
/// container's): refused, naming the namespace path, and nothing is left.
#[test]
fn joining_another_users_user_namespace_is_refused() {
    require_root!();
    let root = Hako::new();
    let mut holder = Bundle::sh("sleep 100");
    holder
        .in_user_namespace(100000, 100000)
        .remove_mounts("cgroup");
    let hid = root.new_id();
    root.run_with(&hid, &holder, &["-d"]).assert_ok();
    let hpid = root.pid(&hid);

    let h = Hako::rootless();
    let mut b = rootless_bundle("true");
    let l = b.config["linux"].as_object_mut().unwrap();
    l.remove("uidMappings");
    l.remove("gidMappings");
    let userns = format!("/proc/{hpid}/ns/user");
    b.config["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
        {"type": "user", "path": userns}
    ]);
    let id = h.new_id();
    let o = h.run(&id, &b);
    o.assert_err();
    // runc 1.3 gets further and fails on its exec fifo: `fchown fd 7: operation not permitted`.
    assert!(o.stderr.contains(&userns), "{o:?}");
    nothing_left(&h, &id, &b);
    assert_eq!(root.status(&hid), "running");
}
