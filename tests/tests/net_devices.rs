//! `linux.netDevices` (runtime-spec 1.3): host interfaces moved into the container's network
//! namespace, renamed, with their addresses, up; the errors name the field.

use std::process::Command;

use hako_tests::*;

/// A veth pair made for one test, removed on drop whatever the test did (a pair moved into a
/// container is destroyed with its namespace; removing it again just fails).
struct Veth {
    a: String,
    b: String,
}

impl Veth {
    /// None (the test skips) when this kernel cannot make a veth pair.
    fn new(tag: &str) -> Option<Veth> {
        let n = std::process::id() % 100_000;
        let v = Veth {
            a: format!("hkt{n}{tag}a"),
            b: format!("hkt{n}{tag}b"),
        };
        let ok = ip(&["link", "add", &v.a, "type", "veth", "peer", "name", &v.b]);
        ok.then_some(v)
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        ip(&["link", "del", &self.a]);
        ip(&["link", "del", &self.b]);
    }
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn on_host(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// Both ends of a pair go in: one renamed (`ctr0`), one under its own name. Inside: both up,
/// the global address moved along, the host-scope one not (runc's rule: only permanent global
/// addresses). On the host they are gone while the container runs, and with a veth the kernel
/// destroys the pair when the namespace goes (runc leaves it to the kernel too).
#[test]
fn devices_are_moved_renamed_with_addresses_and_up() {
    require_root!();
    let Some(v) = Veth::new("m") else {
        skip("no veth support");
        return;
    };
    assert!(ip(&["addr", "add", "10.199.7.1/24", "dev", &v.a]));
    assert!(ip(&[
        "addr",
        "add",
        "10.198.7.1/32",
        "scope",
        "host",
        "dev",
        &v.a
    ]));
    let h = Hako::new();
    let mut b = Bundle::sh(&format!(
        "ip -o link show ctr0; ip -o link show {}; ip -o addr show dev ctr0; ls /sys/class/net | sort | tr '\\n' ' '",
        v.b
    ));
    b.config["linux"]["netDevices"] = json!({ &v.a: {"name": "ctr0"}, &v.b: {} });
    let id = h.new_id();
    let o = h.run_with(&id, &b, &["-d"]);
    if testing_runc() && o.ok() && !wait_for(T, || o.stdout_now().contains("ctr0")) {
        eprintln!("runc 1.3 ignores linux.netDevices (runc 1.4 moves them)");
        return;
    }
    o.assert_ok();
    assert!(
        wait_for(T, || o.stdout_now().ends_with(' ')),
        "{}",
        o.stdout_now()
    );
    let out = o.stdout_now();
    let lines: Vec<&str> = out.lines().collect();
    let up = |l: &str| {
        l.split_once('<')
            .and_then(|(_, r)| r.split_once('>'))
            .is_some_and(|(flags, _)| flags.split(',').any(|f| f == "UP"))
    };
    assert!(lines[0].contains("ctr0") && up(lines[0]), "{out}");
    assert!(lines[1].contains(&v.b) && up(lines[1]), "{out}");
    assert!(out.contains("inet 10.199.7.1/24"), "{out}");
    assert!(
        !out.contains("10.198.7.1"),
        "a host-scope address moved: {out}"
    );
    let last = lines.last().unwrap();
    assert_eq!(
        last.split_whitespace().collect::<Vec<_>>(),
        {
            let mut want = vec!["ctr0", v.b.as_str(), "lo"];
            want.sort();
            want
        },
        "{out}"
    );
    assert!(!on_host(&v.a) && !on_host(&v.b), "still on the host");
    assert!(h.wait_status(&id, "stopped", T));
    h.delete(&id).assert_ok();
    assert!(
        wait_for(T, || !on_host(&v.a) && !on_host(&v.b)),
        "a veth pair outlived the container's namespace"
    );
}

const T: std::time::Duration = std::time::Duration::from_secs(10);

/// A device the host does not have: `create` fails naming it in the field, and nothing is left.
#[test]
fn missing_device_is_refused_naming_it() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::sh("true");
    b.config["linux"]["netDevices"] = json!({ "hkt-none0": {} });
    let id = h.new_id();
    let o = h.create(&id, &b);
    o.assert_err();
    assert!(
        o.stderr.contains(r#"linux.netDevices[\"hkt-none0\"]"#)
            || o.stderr.contains(r#"linux.netDevices["hkt-none0"]"#),
        "{o:?}"
    );
    assert!(o.stderr.contains("no network interface"), "{o:?}");
    assert!(!h.state_dir(&id).exists());
    assert!(wait_for(T, || processes_using(b.path()).is_empty()));
}

/// Without a network namespace of its own (or with one joined by path) there is nowhere to
/// move them: refused before anything exists, naming the field; the device stays on the host.
#[test]
fn devices_need_a_new_network_namespace() {
    require_root!();
    let Some(v) = Veth::new("n") else {
        skip("no veth support");
        return;
    };
    let h = Hako::new();
    for joined in [false, true] {
        let mut b = Bundle::sh("true");
        let ns = b.config["linux"]["namespaces"].as_array_mut().unwrap();
        if joined {
            for n in ns.iter_mut().filter(|n| n["type"] == "network") {
                n["path"] = json!("/proc/1/ns/net");
            }
        } else {
            ns.retain(|n| n["type"] != "network");
        }
        b.config["linux"]["netDevices"] = json!({ &v.a: {} });
        let id = h.new_id();
        let o = h.create(&id, &b);
        o.assert_err();
        assert!(
            o.stderr.contains("linux.netDevices") && o.stderr.contains("network namespace"),
            "{o:?}"
        );
        assert!(!h.state_dir(&id).exists());
        assert!(on_host(&v.a));
    }
}

/// The spec: a `name` with `%d` is a template the kernel completes with a free number, and
/// several devices may share it (both ends of a pair here: `net0` and `net1`, up).
#[test]
fn template_names_are_completed_by_the_kernel() {
    require_root!();
    let Some(v) = Veth::new("t") else {
        skip("no veth support");
        return;
    };
    let h = Hako::new();
    let mut b = Bundle::sh("for n in /sys/class/net/net*; do echo ${n##*/} $(cat $n/flags); done");
    b.config["linux"]["netDevices"] = json!({ &v.a: {"name": "net%d"}, &v.b: {"name": "net%d"} });
    let o = h.run(&h.new_id(), &b);
    if testing_runc() && o.ok() && o.stdout.is_empty() {
        eprintln!("runc 1.3 ignores linux.netDevices");
        return;
    }
    o.assert_ok();
    let devs: Vec<(&str, u32)> = o
        .stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, f)| {
            (
                n,
                u32::from_str_radix(f.trim_start_matches("0x"), 16).unwrap(),
            )
        })
        .collect();
    let names: Vec<&str> = devs.iter().map(|d| d.0).collect();
    assert_eq!(names, ["net0", "net1"], "{o:?}");
    // IFF_UP
    assert!(devs.iter().all(|d| d.1 & 1 == 1), "{o:?}");
}
