//! Namespaces, hostname, user/time namespaces, sysctl.

use std::fs;

use hako_tests::*;

const NS: [&str; 6] = ["pid", "net", "ipc", "uts", "mnt", "cgroup"];

fn host_ns(kind: &str) -> String {
    ns_of("self", kind)
}

/// What `/proc/PID/ns/KIND` reads as (`kind:[inode]`): the namespace a process is in.
fn ns_of(pid: impl std::fmt::Display, kind: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .to_string()
}

/// A detached container on `b` whose namespaces the tests join: its id and host pid.
/// `b` must outlive the holder: `run -d` returns once the process is released, before its
/// execve and the shell's exec of the command, which a removed rootfs would make fail.
fn start_holder(h: &Hako, b: &Bundle) -> (String, i32) {
    let hid = h.new_id();
    h.run_with(&hid, b, &["-d"]).assert_ok();
    let hpid = h.pid(&hid);
    (hid, hpid)
}

/// Nothing stays mounted under the bundle (runc 1.3 leaves the mounts it made on the host
/// without a mount namespace: tolerated with runc); what is left is detached first.
#[track_caller]
fn no_mounts_left(b: &Bundle) {
    let left = mounts_under(b.path());
    for m in &left {
        let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
    assert!(
        left.is_empty() || testing_runc(),
        "left on the host: {left:?}"
    );
}

/// `run` of `b` is refused with exit status 1 and `want` in its error, and no state is left.
#[track_caller]
fn refused(h: &Hako, b: &Bundle, want: &str) {
    let id = h.new_id();
    let o = h.run(&id, b);
    o.assert_err();
    assert!(o.stderr.contains(want), "want {want:?}: {o:?}");
    assert!(!h.state_dir(&id).exists());
}

/// Runs `b` and returns what it sees of time: its time namespace and the lines of
/// /proc/self/timens_offsets, split into words.
fn time_ns_and_offsets(h: &Hako, b: &mut Bundle) -> (String, Vec<Vec<String>>) {
    let out = h.run_sh(
        b,
        "readlink /proc/self/ns/time; cat /proc/self/timens_offsets",
    );
    let mut lines = out.lines();
    let ns = lines.next().expect("the time namespace line").to_string();
    let offsets = lines
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    (ns, offsets)
}

fn container_ns(h: &Hako, b: &mut Bundle) -> Vec<(String, String)> {
    let script = NS
        .iter()
        .map(|k| format!("echo {k} $(readlink /proc/self/ns/{k})"))
        .collect::<Vec<_>>()
        .join("; ");
    let v: Vec<(String, String)> = h
        .run_sh(b, &script)
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    assert_eq!(v.len(), NS.len(), "{v:?}");
    v
}

/// runc 1.3: a namespace entry whose `path` is empty is a new namespace, as without `path`
/// (hako before: "is not an absolute path").
#[test]
fn empty_namespace_path_means_a_new_one() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    b.config["linux"]["namespaces"] = json!([
        {"type": "pid", "path": ""}, {"type": "network", "path": ""}, {"type": "ipc"},
        {"type": "uts", "path": ""}, {"type": "mount", "path": ""}
    ]);
    for (k, v) in container_ns(&h, &mut b) {
        if k != "cgroup" {
            assert_ne!(v, host_ns(&k), "{k} is the host's");
        }
    }
}

#[test]
fn default_namespaces_are_private() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    for (k, v) in container_ns(&h, &mut b) {
        // runc spec asks for pid, network, ipc, uts, mount: cgroup is shared.
        if k == "cgroup" {
            assert_eq!(v, host_ns(&k), "cgroup ns not requested but differs");
        } else {
            assert!(v.starts_with(&format!("{k}:[")), "{k}: {v}");
            assert_ne!(v, host_ns(&k), "{k} namespace is the host's");
        }
    }
}

#[test]
fn only_requested_namespaces() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    b.config["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "cgroup"}]);
    b.config.as_object_mut().unwrap().remove("hostname");
    for (k, v) in container_ns(&h, &mut b) {
        if k == "mnt" || k == "cgroup" {
            assert_ne!(v, host_ns(&k), "{k}");
        } else {
            assert_eq!(v, host_ns(&k), "{k} should be shared with the host");
        }
    }
}

#[test]
fn hostname_and_domainname() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    assert_eq!(h.run_sh(&mut b, "hostname"), "runc\n");
    b.config["hostname"] = json!("box.example");
    b.config["domainname"] = json!("example.org");
    let out = h.run_sh(&mut b, "hostname; cat /proc/sys/kernel/domainname");
    if testing_runc() && out == "box.example\n(none)\n" {
        eprintln!("runc 1.1 ignores domainname (added in runc 1.2)");
    } else {
        assert_eq!(out, "box.example\nexample.org\n");
    }
    // The host's hostname is unchanged.
    assert_ne!(
        nix::unistd::gethostname().unwrap().to_string_lossy(),
        "box.example"
    );
}

#[test]
fn hostname_without_uts_namespace_fails() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    b.config["linux"]["namespaces"] = json!([{"type": "mount"}]);
    refused(
        &h,
        &b,
        "unable to set hostname without a private UTS namespace",
    );
}

#[test]
fn network_namespace_has_only_lo() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let out = h.run_sh(&mut b, "ls /sys/class/net");
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["lo"]);
}

#[test]
fn join_namespace_by_path() {
    require_root!();
    let h = Hako::new();
    let hb = Bundle::sh("sleep 100");
    let (_, hpid) = start_holder(&h, &hb);

    let mut b = Bundle::new();
    b.config["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "ipc"}, {"type": "mount"},
        {"type": "network", "path": format!("/proc/{hpid}/ns/net")},
        {"type": "uts", "path": format!("/proc/{hpid}/ns/uts")}
    ]);
    // No hostname: the joined UTS namespace keeps the one the holder set.
    b.config.as_object_mut().unwrap().remove("hostname");
    let out = h.run_sh(
        &mut b,
        "readlink /proc/self/ns/net; readlink /proc/self/ns/uts; hostname",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], ns_of(hpid, "net"));
    assert_eq!(lines[1], ns_of(hpid, "uts"));
    assert_eq!(lines[2], "runc", "hostname of the joined UTS namespace");
}

#[test]
fn join_pid_namespace_by_path() {
    require_root!();
    let h = Hako::new();
    let hb = Bundle::sh("sleep 100");
    let (hid, hpid) = start_holder(&h, &hb);
    let mut b = Bundle::new();
    b.config["linux"]["namespaces"] = json!([
        {"type": "pid", "path": format!("/proc/{hpid}/ns/pid")},
        {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}
    ]);
    // The joined namespace's pid 1 is the holder's sleep; this container's process is not 1.
    let out = h.run_sh(
        &mut b,
        "readlink /proc/self/ns/pid; echo $$; cat /proc/1/cmdline",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], ns_of(hpid, "pid"));
    assert_ne!(lines[1], "1", "{out}");
    assert!(lines[2].starts_with("sleep"), "{out:?}");
    // The runtime went back to its own pid namespace: the container is still manageable.
    assert_eq!(h.status(&hid), "running");
}

#[test]
fn user_namespace_mappings() {
    require_root!();
    let h = Hako::new();
    let mut b = userns_bundle("true");
    let out = h.run_sh(
        &mut b,
        "cat /proc/self/uid_map /proc/self/gid_map; id -u; readlink /proc/self/ns/user",
    );
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["0", "100000", "65536"], "{out}");
    assert_eq!(lines[1], ["0", "200000", "65536"], "{out}");
    assert_eq!(lines[2], ["0"]);
    assert_ne!(lines[3][0], host_ns("user"));
}

#[test]
fn time_namespace_offsets() {
    require_root!();
    if !std::path::Path::new("/proc/self/ns/time").exists() {
        skip("no time namespaces in this kernel (CONFIG_TIME_NS off)");
        return;
    }
    let h = Hako::new();
    let mut b = Bundle::new();
    b.add_namespace("time");
    b.config["linux"]["timeOffsets"] = json!({
        "monotonic": {"secs": 86400, "nanosecs": 123456789},
        "boottime": {"secs": 172800, "nanosecs": 5000}
    });
    let id = h.new_id();
    b.set_sh("cat /proc/self/timens_offsets");
    let o = h.run(&id, &b);
    if testing_runc() && o.code != 0 {
        eprintln!("runc 1.1 does not support time namespaces: {}", o.stderr);
        return;
    }
    o.assert_ok();
    let offs: Vec<Vec<&str>> = o
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    // runtime-spec's field is `nanosecs` (a misspelt one would be ignored and read 0 here).
    assert!(
        offs.contains(&vec!["monotonic", "86400", "123456789"]),
        "{}",
        o.stdout
    );
    assert!(
        offs.contains(&vec!["boottime", "172800", "5000"]),
        "{}",
        o.stdout
    );
}

#[test]
fn sysctl() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    b.config["linux"]["sysctl"] = json!({
        "net.ipv4.ip_forward": "1",
        "kernel.shmmni": "1234"
    });
    let out = h.run_sh(
        &mut b,
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni",
    );
    assert_eq!(out, "1\n1234\n");
}

#[test]
fn sysctl_outside_namespace_rejected() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    // A net sysctl without a private network namespace would change the host.
    b.config["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "uts"}, {"type": "pid"}]);
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    let before = read("/proc/sys/net/ipv4/ip_forward");
    refused(&h, &b, "sysctl");
    assert_eq!(read("/proc/sys/net/ipv4/ip_forward"), before);
}

/// The spec: a namespace not listed is the host's. A config listing none (and asking for nothing
/// that needs a private one) runs in every namespace of the host, with the rootfs as its root
/// directory only; an exec lands in the same root.
#[test]
fn no_namespaces_listed_inherits_the_hosts() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::sh("echo ran > /ran; exec sleep 100");
    b.set_namespaces(&[])
        .without_private_mount_and_uts_settings();
    b.config["mounts"] = json!([]);
    let id = h.new_id();
    let o = h.run_with(&id, &b, &["-d"]);
    if testing_runc() && o.code != 0 {
        // runc 1.1 needs /proc mounted ("error closing exec fds"), which a container without a
        // mount namespace could only get by mounting it on the host.
        eprintln!("runc: {}", o.stderr);
        return;
    }
    o.assert_ok();
    let pid = h.pid(&id);
    assert!(wait_for(std::time::Duration::from_secs(10), || read(
        b.rootfs().join("ran")
    )
        == "ran\n"));
    for ns in ["pid", "net", "ipc", "uts", "mnt", "cgroup", "user"] {
        let theirs = fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        assert_eq!(theirs.to_string_lossy(), host_ns(ns), "{ns}");
    }
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/root")).unwrap(),
        fs::canonicalize(b.rootfs()).unwrap()
    );
    // Nothing was mounted on the host.
    assert!(
        mounts_under(b.path()).is_empty(),
        "{:?}",
        mounts_under(b.path())
    );
    let o = h.cmd(&["exec", &id, "cat", "/ran"]);
    o.assert_ok();
    assert_eq!(o.stdout, "ran\n");
    h.kill(&id, "KILL").assert_ok();
    assert!(h.wait_status(&id, "stopped", std::time::Duration::from_secs(10)));
    h.delete(&id).assert_ok();
}

/// Leaving one namespace out (here the network one) gives the host's for that one only.
#[test]
fn a_namespace_left_out_is_the_hosts() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    b.config["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}
    ]);
    let v = container_ns(&h, &mut b);
    for (k, id) in v {
        if k == "net" || k == "cgroup" {
            assert_eq!(id, host_ns(&k), "{k}");
        } else {
            assert_ne!(id, host_ns(&k), "{k}");
        }
    }
}

/// What needs a private namespace is refused without one, in runc's words, before anything
/// exists.
#[test]
fn what_needs_a_private_namespace_is_refused_without_it() {
    require_root!();
    let h = Hako::new();
    let bare = || {
        let mut b = Bundle::sh("true");
        b.set_namespaces(&[])
            .without_private_mount_and_uts_settings();
        b.config["mounts"] = json!([]);
        b
    };
    type Edit = Box<dyn Fn(&mut Bundle)>;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|b| b.config["linux"]["maskedPaths"] = json!(["/proc/kcore"])),
            "unable to restrict sys entries without a private MNT namespace",
        ),
        (
            Box::new(|b| b.config["linux"]["readonlyPaths"] = json!(["/proc/sys"])),
            "unable to restrict sys entries without a private MNT namespace",
        ),
        (
            Box::new(|b| b.config["hostname"] = json!("x")),
            "unable to set hostname without a private UTS namespace",
        ),
        (
            Box::new(|b| b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"})),
            "net.ipv4.ip_forward\\\" not allowed in host network namespace",
        ),
        (
            Box::new(|b| b.config["linux"]["sysctl"] = json!({"kernel.msgmax": "8192"})),
            "kernel.msgmax\\\" is not allowed in the hosts ipc namespace",
        ),
    ];
    for (edit, want) in cases {
        let mut b = bare();
        edit(&mut b);
        refused(&h, &b, want);
    }
    // `mounts[]` are made on the host's side: no_mount_namespace_with_mounts.
}

/// prestart and createRuntime hooks run in the runtime's own network namespace (runc's) and
/// find the container's new one through /proc/PID/ns/net, as CNI-style hooks do; the container
/// sees only its loopback in /sys (sysfs captures the namespace of the task that mounts it) and
/// its net.* sysctls are its own. Whoever makes the namespace (the init now; the runtime was
/// tried, docs/architecture.md), it must exist and be entered before all of these.
#[test]
fn hooks_run_in_the_host_network_namespace_and_see_the_containers() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let out = h.scratch().join("hooks");
    let hook = |kind: &str| {
        json!({"path": "/bin/sh", "args": ["sh", "-c", format!(
            r#"pid=$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p'); echo {kind} $(readlink /proc/self/ns/net) $(readlink /proc/$pid/ns/net) >> {}"#,
            out.display()
        )]})
    };
    b.config["hooks"] =
        json!({"prestart": [hook("prestart")], "createRuntime": [hook("createRuntime")]});
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    let host = fs::read_link("/proc/self/ns/net").unwrap();
    let host = host.to_str().unwrap();
    let inside = h.run_sh(
        &mut b,
        "readlink /proc/self/ns/net; ls /sys/class/net; cat /proc/sys/net/ipv4/ip_forward",
    );
    let inside: Vec<&str> = inside.split_whitespace().collect();
    assert_eq!(inside[1..], ["lo", "1"], "{inside:?}");
    let container = inside[0];
    assert_ne!(container, host);
    let lines = read(&out);
    let lines: Vec<Vec<&str>> = lines.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(
        lines,
        [
            vec!["prestart", host, container],
            vec!["createRuntime", host, container]
        ]
    );
}

/// A user namespace mapping root to 100000 (uids) and 200000 (gids). The rootfs stays the host
/// root's (world-readable is enough); cgroup (v1) cannot be mounted in a userns without a cgroup
/// ns: the cgroup mount goes, as runc's userns.bats does not need it.
fn userns_bundle(script: &str) -> Bundle {
    let mut b = Bundle::sh(script);
    b.in_user_namespace(100000, 200000).remove_mounts("cgroup");
    b
}

/// Podman pods and Kubernetes sandboxes: a second container joins the first one's user
/// namespace by path (and its network namespace), with new pid, ipc, uts and mount namespaces
/// owned by that user namespace. runc 1.3 reads the mappings from the joined namespace.
#[test]
fn join_user_namespace_of_another_container() {
    require_root!();
    let h = Hako::new();
    let holder = userns_bundle("sleep 100");
    let (hid, hpid) = start_holder(&h, &holder);
    let want_user = ns_of(hpid, "user");

    let joiner = || {
        let mut b = userns_bundle("true");
        b.config["linux"]
            .as_object_mut()
            .unwrap()
            .retain(|k, _| k != "uidMappings" && k != "gidMappings");
        b.config["linux"]["namespaces"] = json!([
            {"type": "user", "path": format!("/proc/{hpid}/ns/user")},
            {"type": "network", "path": format!("/proc/{hpid}/ns/net")},
            {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}
        ]);
        b
    };
    let mut b = joiner();
    // A bind mount too: the runtime opens its source in the init's mount namespace.
    let out_dir = b.out_dir();
    // The rootfs is the host root's: its mapped root may not make the mount point.
    fs::create_dir_all(b.rootfs().join("out")).unwrap();
    let out = h.run_sh(
        &mut b,
        "readlink /proc/self/ns/user; readlink /proc/self/ns/net; cat /proc/self/uid_map; id -u; echo $$; \
         ls /sys/class/net; echo hi > /out/f",
    );
    assert_eq!(read(out_dir.join("f")), "hi\n");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], want_user, "{out}");
    assert_eq!(lines[1], ns_of(hpid, "net"), "{out}");
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"],
        "{out}"
    );
    assert_eq!(lines[3], "0", "{out}");
    assert_eq!(lines[4], "1", "a new pid namespace: {out}");
    assert_eq!(lines[5], "lo", "{out}");

    // The same mappings alongside the path (containerd and CRI-O write both): accepted.
    let mut same = joiner();
    same.config["linux"]["uidMappings"] = holder.config["linux"]["uidMappings"].clone();
    same.config["linux"]["gidMappings"] = holder.config["linux"]["gidMappings"].clone();
    let out = h.run_sh(&mut same, "cat /proc/self/uid_map");
    assert!(out.contains("100000"), "{out}");
    // Other mappings: runc 1.3's error, nothing created.
    same.config["linux"]["uidMappings"] =
        json!([{"containerID": 0, "hostID": 300000, "size": 65536}]);
    refused(
        &h,
        &same,
        "user namespaces enabled, but both namespace path and non-matching mapping specified",
    );
    assert_eq!(h.status(&hid), "running");

    // Every namespace but the mount one joined (a pod sharing its pid namespace), and an exec
    // into that container lands in all of them.
    let mut all = joiner();
    all.set_sh("exec sleep 100");
    let mut ns = all.config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .clone();
    for n in ns.iter_mut() {
        let t = n["type"].as_str().unwrap().to_string();
        if t != "mount" {
            let file = if t == "network" { "net".to_string() } else { t };
            n["path"] = json!(format!("/proc/{hpid}/ns/{file}"));
        }
    }
    all.config["linux"]["namespaces"] = json!(ns);
    all.config.as_object_mut().unwrap().remove("hostname");
    // create, then start: the start socket's peer (the runtime, root outside) is checked as
    // the joined user namespace sees it.
    let id = h.new_id();
    h.create(&id, &all).assert_ok();
    h.start(&id).assert_ok();
    assert_eq!(h.status(&id), "running");
    let o = h.cmd(&[
        "exec",
        &id,
        "sh",
        "-c",
        "readlink /proc/self/ns/user; readlink /proc/self/ns/pid; id -u; cat /proc/1/cmdline",
    ]);
    o.assert_ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines[0], want_user, "{o:?}");
    assert_eq!(lines[1], ns_of(hpid, "pid"), "{o:?}");
    assert_eq!(lines[2], "0", "{o:?}");
    assert!(lines[3].starts_with("sleep"), "the holder is pid 1: {o:?}");
}

/// A time namespace: what the container sees in /proc/self/timens_offsets, as runc 1.3 (no
/// offsets: zeros; offsets: those; with a user namespace too), and its namespace is not the
/// host's.
#[test]
fn time_namespace_variants() {
    require_root!();
    if !std::path::Path::new("/proc/self/ns/time").exists() {
        skip("no time namespaces in this kernel (CONFIG_TIME_NS off)");
        return;
    }
    let h = Hako::new();
    let offsets = json!({
        "monotonic": {"secs": 7200, "nanosecs": 5},
        "boottime": {"secs": 3600, "nanosecs": 0}
    });
    for (userns, offs) in [
        (false, None),
        (false, Some(offsets.clone())),
        (true, None),
        (true, Some(offsets.clone())),
    ] {
        let mut b = if userns {
            userns_bundle("true")
        } else {
            Bundle::new()
        };
        b.add_namespace("time");
        if let Some(o) = &offs {
            b.config["linux"]["timeOffsets"] = o.clone();
        }
        let (ns, got) = time_ns_and_offsets(&h, &mut b);
        eprintln!("userns {userns} offsets {offs:?}: {ns} {got:?}");
        assert_ne!(ns, host_ns("time"), "{got:?}");
        let want: Vec<Vec<&str>> = if offs.is_some() {
            vec![
                vec!["monotonic", "7200", "5"],
                vec!["boottime", "3600", "0"],
            ]
        } else {
            vec![vec!["monotonic", "0", "0"], vec!["boottime", "0", "0"]]
        };
        assert_eq!(got, want, "userns {userns}: {ns}");
    }
}

/// Time offsets without a new time namespace are refused in runc 1.3's words, and a time
/// namespace joined by path is the other container's, with its offsets.
#[test]
fn time_namespace_by_path_and_refusals() {
    require_root!();
    if !std::path::Path::new("/proc/self/ns/time").exists() {
        skip("no time namespaces in this kernel (CONFIG_TIME_NS off)");
        return;
    }
    let h = Hako::new();
    let offsets = json!({"monotonic": {"secs": 7200, "nanosecs": 0}});
    let mut holder = Bundle::sh("sleep 100");
    holder.add_namespace("time");
    holder.config["linux"]["timeOffsets"] = offsets.clone();
    let (_, hpid) = start_holder(&h, &holder);
    let path = format!("/proc/{hpid}/ns/time");

    let joining = || {
        let mut b = Bundle::new();
        b.config["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "time", "path": path}));
        b
    };
    let (ns, offs) = time_ns_and_offsets(&h, &mut joining());
    assert_eq!(ns, ns_of(hpid, "time"), "{offs:?}");
    assert_eq!(offs[0], ["monotonic", "7200", "0"], "{ns}");

    let mut joined_with_offsets = joining();
    joined_with_offsets.config["linux"]["timeOffsets"] = offsets.clone();
    let mut no_ns = Bundle::new();
    no_ns.config["linux"]["timeOffsets"] = offsets.clone();
    for (b, want) in [
        (
            joined_with_offsets,
            "time namespace enabled, but both namespace path and time offsets specified -- you may only provide one",
        ),
        (
            no_ns,
            "time namespace offsets specified, but time namespace isn't enabled in the config",
        ),
    ] {
        refused(&h, &b, want);
    }
}

/// With the host's pid namespace a new procfs would show the host's processes anyway, and the
/// kernel may refuse it (a procfs mounted with hidepid= or subset= elsewhere, a user namespace):
/// runc 1.3 binds the host's /proc there. The container sees the host's pids in its /proc.
#[test]
fn host_pid_namespace_gets_proc() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    b.config["linux"]["namespaces"] = json!([
        {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}
    ]);
    let out = h.run_sh(
        &mut b,
        "grep ' /proc ' /proc/self/mountinfo; test -d /proc/1 && echo host1; \
         readlink /proc/self/ns/pid; ls /proc/sys/kernel/hostname",
    );
    eprintln!("{out}");
    let lines: Vec<&str> = out.lines().collect();
    let proc_line: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(proc_line[4], "/proc", "{out}");
    assert!(proc_line.contains(&"proc"), "{out}");
    assert!(out.contains("host1"), "{out}");
    assert!(out.contains(&host_ns("pid")), "{out}");
    assert!(out.contains("/proc/sys/kernel/hostname"), "{out}");
    assert!(mounts_under(b.path()).is_empty());

    // The host's /proc bound there instead (what podman does where a new procfs is refused).
    let mut mounts = b.config["mounts"].as_array().unwrap().clone();
    mounts[0] = json!({"destination": "/proc", "type": "bind", "source": "/proc",
                       "options": ["rbind", "nosuid", "noexec", "nodev"]});
    b.config["mounts"] = json!(mounts);
    let out = h.run_sh(
        &mut b,
        "grep ' /proc ' /proc/self/mountinfo; test -d /proc/1 && echo host1",
    );
    let proc_line: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(proc_line[3], "/", "the root of the host's procfs: {out}");
    assert_eq!(proc_line[4], "/proc", "{out}");
    assert!(
        proc_line.contains(&"nosuid") || out.contains("nosuid"),
        "{out}"
    );
    assert!(out.contains("host1"), "{out}");

    // Not a procfs (a tmpfs directory of the bundle): refused as before, in runc's words.
    let other = b.host_dir("notproc", "/unused");
    let mut mounts = b.config["mounts"].as_array().unwrap().clone();
    mounts.pop();
    mounts[0]["source"] = json!(other.to_str().unwrap());
    b.config["mounts"] = json!(mounts);
    refused(&h, &b, "cannot be mounted because it is not of type proc");
    assert!(mounts_under(b.path()).is_empty());
}

/// Without a mount namespace runc 1.3 makes `mounts[]` (the default /proc and /dev among them)
/// below the rootfs in the host's mount namespace; they must be gone after `delete`.
#[test]
fn no_mount_namespace_with_mounts() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::sh("echo ran > /ran; exec sleep 100");
    b.set_namespaces(&["pid", "ipc"])
        .without_private_mount_and_uts_settings()
        .remove_mounts("cgroup")
        .remove_mounts("sysfs");
    let id = h.new_id();
    h.run_with(&id, &b, &["-d"]).assert_ok();
    let pid = h.pid(&id);
    assert!(wait_for(std::time::Duration::from_secs(10), || read(
        b.rootfs().join("ran")
    )
        == "ran\n"));
    let under = mounts_under(b.path());
    assert!(
        under.iter().any(|m| m.ends_with("rootfs/proc")),
        "{under:?}"
    );
    assert!(under.iter().any(|m| m.ends_with("rootfs/dev")), "{under:?}");
    // runc's exec stays in the host's root directory; hako's enters the container's.
    if !testing_runc() {
        let o = h.cmd(&[
            "exec",
            &id,
            "sh",
            "-c",
            "ls /proc/1/ns >/dev/null && cat /ran",
        ]);
        o.assert_ok();
        assert_eq!(o.stdout, "ran\n");
    }
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/ns/mnt"))
            .unwrap()
            .to_string_lossy(),
        host_ns("mnt")
    );
    h.kill(&id, "KILL").assert_ok();
    assert!(h.wait_status(&id, "stopped", std::time::Duration::from_secs(10)));
    h.delete(&id).assert_ok();
    // runc 1.3 leaves them (and its bind of the rootfs onto itself) on the host.
    no_mounts_left(&b);

    // A create that fails after some mounts were made (a bind whose source is missing, last)
    // leaves nothing either.
    b.add_mount(json!({"destination": "/mnt", "type": "bind",
                       "source": "/nonexistent-hako-test", "options": ["rbind"]}));
    refused(&h, &b, "nonexistent-hako-test");
    no_mounts_left(&b);
}

/// No namespaces at all (podman's `--pid=host --network=host … --mount-ns=host`-like configs):
/// the host's /proc bound in, /dev a tmpfs, hooks run; `run` deletes it and nothing stays.
#[test]
fn no_namespaces_with_proc_bind_and_hooks() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    b.set_namespaces(&[])
        .without_private_mount_and_uts_settings();
    b.config["mounts"] = json!([
        {"destination": "/proc", "type": "bind", "source": "/proc", "options": ["rbind"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]}
    ]);
    let log = h.scratch().join("hooks.log");
    let hook = |kind: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo {kind} >> {}", log.display())]});
    b.config["hooks"] = json!({
        "prestart": [hook("prestart")], "createContainer": [hook("createContainer")],
        "poststop": [hook("poststop")]
    });
    let out = h.run_sh(
        &mut b,
        "test -d /proc/1 && echo proc; test -c /dev/null && echo null; readlink /proc/self/ns/pid",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["proc", "null"], "{out}");
    assert_eq!(lines[2], host_ns("pid"), "{out}");
    assert_eq!(read(&log), "prestart\ncreateContainer\npoststop\n");
    no_mounts_left(&b);
}

/// The container may move what lies above its mounts (it shares the host's mount namespace and
/// owns its rootfs): `delete` unmounts by what mountinfo says now, through fds opened inside the
/// rootfs, and a symlink left where a mount used to be is never followed to the host.
#[test]
fn no_mount_namespace_mounts_moved_by_the_container_are_still_undone() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::sh("mv /a /a2 && ln -s ../../../../../../.. /a && exec sleep 100");
    b.set_namespaces(&["pid"])
        .without_private_mount_and_uts_settings();
    b.config["mounts"] = json!([
        {"destination": "/a/b", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]},
        {"destination": "/a/b/c", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]}
    ]);
    let id = h.new_id();
    let o = h.run_with(&id, &b, &["-d"]);
    if testing_runc() && o.code != 0 {
        // runc reads /proc/sys/kernel/cap_last_cap after its chroot: it needs a /proc mount.
        eprintln!("runc: {}", o.stderr);
        return;
    }
    o.assert_ok();
    assert!(wait_for(std::time::Duration::from_secs(10), || b
        .rootfs()
        .join("a2")
        .exists()));
    let under = mounts_under(b.path());
    assert!(
        under.iter().any(|m| m.ends_with("rootfs/a2/b/c")),
        "{under:?}"
    );
    h.kill(&id, "KILL").assert_ok();
    assert!(h.wait_status(&id, "stopped", std::time::Duration::from_secs(10)));
    h.delete(&id).assert_ok();
    no_mounts_left(&b);
}

/// A user namespace with the host's pid namespace: the kernel refuses a fresh procfs there (the
/// pid namespace is not the user namespace's), so /proc must come from a bind of the host's.
#[test]
fn user_namespace_with_host_pid_namespace_gets_proc() {
    require_root!();
    let h = Hako::new();
    let mut b = userns_bundle("true");
    b.config["linux"]["namespaces"] = json!([
        {"type": "user"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}
    ]);
    b.remove_mounts("sysfs");
    b.config["mounts"][0] = json!({"destination": "/proc", "type": "bind", "source": "/proc",
                                   "options": ["rbind", "nosuid", "noexec", "nodev"]});
    let out = h.run_sh(
        &mut b,
        "test -d /proc/1 && echo host1; readlink /proc/self/ns/pid; id -u",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["host1", &host_ns("pid"), "0"], "{out}");
}

/// Mappings and user namespaces that do not go together are refused in runc 1.3's words, before
/// anything exists.
#[test]
fn user_namespace_mapping_refusals() {
    require_root!();
    let h = Hako::new();
    let mut no_maps = userns_bundle("true");
    let l = no_maps.config["linux"].as_object_mut().unwrap();
    l.remove("uidMappings");
    l.remove("gidMappings");
    let mut no_userns = Bundle::new();
    no_userns.config["linux"]["uidMappings"] =
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    no_userns.config["linux"]["gidMappings"] =
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    for (b, want) in [
        (
            no_maps,
            "user namespaces enabled, but no uid mappings found",
        ),
        (
            no_userns,
            "user namespace mappings specified, but user namespace isn't enabled in the config",
        ),
    ] {
        let id = h.new_id();
        let o = h.run(&id, &b);
        if testing_runc() && o.code == 0 {
            // runc 1.3 ignores mappings without a user namespace; hako refuses them.
            eprintln!("runc accepted a config hako refuses with {want:?}");
            continue;
        }
        o.assert_err();
        assert!(o.stderr.contains(want), "want {want:?}: {o:?}");
        assert!(!h.state_dir(&id).exists());
    }
}
