//! `features`: the runtime-spec features document, checked against what real containers accept.

use std::fs;
use std::path::Path;

use hako_tests::*;

fn features(h: &Hako) -> (Value, String) {
    let o = h.cmd(&["features"]);
    o.assert_ok();
    let v: Value = serde_json::from_str(&o.stdout)
        .unwrap_or_else(|e| panic!("features is not JSON ({e}): {}", o.stdout));
    (v, o.stdout)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// Each of `keys` (quoted) is in `text`, in that order.
#[track_caller]
fn assert_key_order(text: &str, keys: &[&str]) {
    let pos: Vec<usize> = keys
        .iter()
        .map(|k| {
            text.find(&format!("{k}:"))
                .unwrap_or_else(|| panic!("{k} missing"))
        })
        .collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "key order: {text}");
}

#[test]
fn shape_and_key_order() {
    require_root!();
    let h = Hako::new();
    let (f, text) = features(&h);
    assert_eq!(f["ociVersionMin"], "1.0.0");
    assert!(f["ociVersionMax"].as_str().unwrap().starts_with("1."));
    assert_eq!(
        strings(&f["hooks"]),
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ]
    );
    // runc's order (Go marshals struct fields in declaration order).
    let order = [
        "\"ociVersionMin\"",
        "\"ociVersionMax\"",
        "\"hooks\"",
        "\"mountOptions\"",
        "\"linux\"",
        "\"namespaces\"",
        "\"capabilities\"",
        "\"cgroup\"",
        "\"seccomp\"",
        "\"apparmor\"",
        "\"selinux\"",
        "\"annotations\"",
    ];
    assert_key_order(&text, &order);
    let l = &f["linux"];
    assert_eq!(l["cgroup"]["v1"], true);
    assert_eq!(l["cgroup"]["v2"], true);
    assert!(strings(&l["seccomp"]["actions"]).contains(&"SCMP_ACT_NOTIFY".to_string()));
    assert!(strings(&f["mountOptions"]).contains(&"rro".to_string()));
    // checkpoint/restore through CRIU (tests/checkpoint.rs), announced with runc's key.
    assert_eq!(
        f["annotations"]["org.opencontainers.runc.checkpoint.enabled"],
        "true"
    );
    if testing_runc() {
        eprintln!("runc 1.1: no intelRdt/mountExtensions, lists unsupported options; stop here");
        return;
    }
    // The spec version hako declares, and its additions after runc's fields.
    assert_eq!(f["ociVersionMax"], "1.3.0");
    let order = [
        "\"selinux\"",
        "\"intelRdt\"",
        "\"mountExtensions\"",
        "\"netDevices\"",
        "\"annotations\"",
        "\"potentiallyUnsafeConfigAnnotations\"",
    ];
    assert_key_order(&text, &order);
    // Idmapped mounts (tests/idmap.rs), as runc 1.2+ reports them.
    assert_eq!(l["mountExtensions"]["idmap"]["enabled"], true);
    assert_eq!(l["seccomp"]["enabled"], true);
    assert_eq!(l["cgroup"]["rdma"], true);
    // tests/net_devices.rs, tests/intel_rdt.rs
    assert_eq!(l["netDevices"]["enabled"], true);
    assert_eq!(
        l["intelRdt"],
        json!({"enabled": true, "schemata": true, "monitoring": true})
    );
    assert!(f["annotations"]["io.github.seccomp.libseccomp.version"].is_string());
    // The spec: whether the runtime supports them, whatever the host has (this one has
    // neither AppArmor nor SELinux).
    assert_eq!(l["apparmor"]["enabled"], true);
    assert_eq!(l["selinux"]["enabled"], true);
    // The one annotation that changes what hako does (checkpoint's CRIU configuration file).
    assert_eq!(
        strings(&f["potentiallyUnsafeConfigAnnotations"]),
        ["org.criu.config"]
    );
}

/// runc 1.3 (the contract), when there is one to ask: hako lists at least its hooks,
/// namespaces and mount options (`tmpcopyup` included).
#[test]
fn covers_runc_13s_features() {
    require_root!();
    let runc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/runc-1.3/runc");
    if !runc.is_file() {
        skip(&format!("no runc 1.3 at {}", runc.display()));
        return;
    }
    let o = std::process::Command::new(&runc)
        .arg("features")
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let h = Hako::new();
    let (f, _) = features(&h);
    for key in ["/hooks", "/mountOptions", "/linux/namespaces"] {
        let ours = strings(f.pointer(key).unwrap());
        for x in strings(r.pointer(key).unwrap()) {
            assert!(
                ours.contains(&x),
                "{key}: runc 1.3 lists {x}, hako does not: {ours:?}"
            );
        }
    }
    assert!(strings(&f["mountOptions"]).contains(&"tmpcopyup".to_string()));
}

#[test]
fn capabilities_are_the_kernels() {
    require_root!();
    let h = Hako::new();
    let (f, _) = features(&h);
    let caps = strings(&f["linux"]["capabilities"]);
    let last: usize = read("/proc/sys/kernel/cap_last_cap")
        .trim()
        .parse()
        .unwrap();
    if !testing_runc() {
        assert_eq!(caps.len(), last + 1, "{caps:?}");
    }
    assert_eq!(caps[0], "CAP_CHOWN");
    assert!(caps.contains(&"CAP_SYS_ADMIN".to_string()));
    // Each is accepted in a bounding set without an "unknown capability" warning.
    let mut b = Bundle::sh("grep CapBnd /proc/self/status");
    b.config["process"]["capabilities"]["bounding"] = json!(caps);
    let id = h.new_id();
    let o = h.run(&id, &b);
    o.assert_ok();
    assert!(!o.stderr.contains("unknown"), "{o:?}");
    // All of them, within what the host's own bounding set still has (no CAP_SYS_RESOURCE on
    // these machines).
    let bnd = o.stdout.split_whitespace().nth(1).unwrap().to_string();
    let host = read("/proc/self/status");
    let host = status_field(&host, "CapBnd").unwrap().trim().to_string();
    assert_eq!(cap_set(&bnd), cap_set(&host), "{bnd} vs host {host}");
}

#[test]
fn every_mount_option_is_accepted() {
    require_root!();
    if testing_runc() {
        eprintln!("runc 1.1 lists acl/noacl/tmpcopyup, which tmpfs here does not take: skipped");
        return;
    }
    let h = Hako::new();
    let (f, _) = features(&h);
    let opts = strings(&f["mountOptions"]);
    assert!(opts.len() > 40, "{opts:?}");
    let mut b = Bundle::sh("grep -c ' /m/' /proc/self/mountinfo");
    let src = b.path().join("src");
    fs::create_dir_all(&src).unwrap();
    for (i, o) in opts.iter().enumerate() {
        // bind/rbind make it a bind mount; everything else goes on a fresh tmpfs.
        let m = if o == "bind" || o == "rbind" {
            json!({"destination": format!("/m/{i}"), "type": "bind",
                   "source": src.to_string_lossy(), "options": [o]})
        } else {
            json!({"destination": format!("/m/{i}"), "type": "tmpfs", "source": "tmpfs",
                   "options": [o]})
        };
        b.add_mount(m);
    }
    let id = h.new_id();
    let o = h.run(&id, &b);
    o.assert_ok();
    assert_eq!(o.stdout.trim(), opts.len().to_string(), "{o:?}");
}

#[test]
fn listed_namespaces_can_all_be_created() {
    require_root!();
    let h = Hako::new();
    let (f, _) = features(&h);
    let ns = strings(&f["linux"]["namespaces"]);
    for n in ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"] {
        assert!(ns.contains(&n.to_string()), "{n} missing: {ns:?}");
    }
    if testing_runc() {
        return;
    }
    // The list is the runtime's (runc's too), not the kernel's: a kernel without
    // CONFIG_TIME_NS cannot make a time namespace.
    let mut kinds = vec!["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"];
    let mut ns = ns;
    if !Path::new("/proc/self/ns/time").exists() {
        skip_part(
            "time",
            "no time namespaces in this kernel (CONFIG_TIME_NS off)",
        );
        kinds.retain(|k| *k != "time");
        ns.retain(|n| n != "time");
    }
    let mut b = Bundle::sh(&format!(
        "for n in {}; do readlink /proc/self/ns/$n; done",
        kinds.join(" ")
    ));
    // Every listed namespace new, the user one among them (root mapped to the host's root).
    b.set_namespaces(&ns.iter().map(String::as_str).collect::<Vec<_>>());
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 0, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 0, "size": 65536}]);
    // A user namespace may not mount a cgroup fs of another cgroup namespace's owner: drop it.
    b.remove_mounts("cgroup");
    let id = h.new_id();
    let o = h.run(&id, &b);
    o.assert_ok();
    let inside: Vec<&str> = o.stdout.lines().collect();
    for (i, n) in kinds.iter().enumerate() {
        let host = fs::read_link(format!("/proc/self/ns/{n}")).unwrap();
        assert_ne!(
            inside[i],
            host.to_string_lossy(),
            "{n} namespace is the host's: {o:?}"
        );
    }
}

#[test]
fn listed_seccomp_features_are_accepted() {
    require_root!();
    let h = Hako::new();
    let (f, _) = features(&h);
    let s = &f["linux"]["seccomp"];
    let actions = strings(&s["actions"]);
    let operators = strings(&s["operators"]);
    let archs = strings(&s["archs"]);
    assert!(archs.contains(&"SCMP_ARCH_X86_64".to_string()) || !cfg!(target_arch = "x86_64"));
    // One rule per action (except NOTIFY, which needs an agent: tests/seccomp.rs), one condition
    // per operator, on syscalls busybox's sh never makes.
    let mut rules: Vec<Value> = actions
        .iter()
        .filter(|a| *a != "SCMP_ACT_NOTIFY" && *a != "SCMP_ACT_ALLOW")
        .zip([
            "kexec_load",
            "swapon",
            "swapoff",
            "acct",
            "reboot",
            "init_module",
            "delete_module",
            "pivot_root",
        ])
        .map(|(a, name)| json!({"names": [name], "action": a}))
        .collect();
    for (i, op) in operators.iter().enumerate() {
        rules.push(json!({"names": ["quotactl"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": i % 6, "value": 1, "valueTwo": 1, "op": op}]}));
    }
    let mut profile = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules});
    if !testing_runc() {
        profile["flags"] = s["supportedFlags"].clone();
        assert!(strings(&s["knownFlags"]).contains(&"SECCOMP_FILTER_FLAG_LOG".to_string()));
    }
    let mut b = Bundle::sh("grep '^Seccomp:' /proc/self/status");
    b.config["linux"]["seccomp"] = profile;
    let id = h.new_id();
    let o = h.run(&id, &b);
    o.assert_ok();
    assert!(o.stdout.contains("Seccomp:\t2"), "{o:?}");
}
