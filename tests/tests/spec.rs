//! `spec`: runc's default config.json (and `--rootless`), usable as is.

use std::fs;

use hako_tests::*;

fn spec_in(h: &Hako, extra: &[&str]) -> (TempDir, Value) {
    let dir = TempDir::new("hako-spec");
    let mut args = vec!["spec", "--bundle", dir.path().to_str().unwrap()];
    args.extend_from_slice(extra);
    h.cmd(&args).assert_ok();
    let v: Value = serde_json::from_str(&read(dir.path().join("config.json"))).unwrap();
    (dir, v)
}

/// The `type` of each entry of `linux.namespaces`, in order.
fn namespace_types(v: &Value) -> Vec<&str> {
    v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect()
}

#[test]
fn default_spec_is_runcs() {
    require_root!();
    let h = Hako::new();
    let (dir, v) = spec_in(&h, &[]);
    assert_eq!(v["process"]["args"], json!(["sh"]));
    assert_eq!(v["process"]["terminal"], true);
    assert_eq!(v["root"], json!({"path": "rootfs", "readonly": true}));
    assert_eq!(v["process"]["noNewPrivileges"], true);
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    for set in ["bounding", "effective", "permitted"] {
        assert_eq!(v["process"]["capabilities"][set], caps, "{set}");
    }
    let ns = namespace_types(&v);
    for t in ["pid", "network", "ipc", "uts", "mount"] {
        assert!(ns.contains(&t), "{t} missing: {ns:?}");
    }
    assert!(v["linux"]["maskedPaths"]
        .as_array()
        .unwrap()
        .contains(&json!("/proc/kcore")));
    // Same mounts, masked and read-only paths as runc's own `spec`.
    if let Ok(runc) = which("runc") {
        let rd = TempDir::new("runc-spec");
        let st = std::process::Command::new(runc)
            .arg("spec")
            .current_dir(rd.path())
            .status()
            .unwrap();
        assert!(st.success());
        let r: Value = serde_json::from_str(&read(rd.path().join("config.json"))).unwrap();
        let dests = |v: &Value| -> Vec<String> {
            v["mounts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["destination"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(dests(&v), dests(&r));
        assert_eq!(v["linux"]["maskedPaths"], r["linux"]["maskedPaths"]);
        assert_eq!(v["linux"]["readonlyPaths"], r["linux"]["readonlyPaths"]);
    }
    // A second `spec` refuses to overwrite (runc's wording), and leaves the file alone.
    let before = read(dir.path().join("config.json"));
    let o = h.cmd(&["spec", "--bundle", dir.path().to_str().unwrap()]);
    o.assert_err();
    assert!(
        o.stderr
            .contains("File config.json exists. Remove it first"),
        "{o:#?}"
    );
    assert_eq!(read(dir.path().join("config.json")), before);
}

#[test]
fn spec_bundle_runs() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::new(); // for its busybox rootfs
    let (_dir, mut v) = spec_in(&h, &[]);
    v["process"]["terminal"] = json!(false);
    v["process"]["args"] = json!(["sh", "-c", "echo spec-ok; hostname"]);
    fs::write(b.config_path(), v.to_string()).unwrap();
    let o = h.cmd(&["run", "--bundle", b.path().to_str().unwrap(), &h.new_id()]);
    o.assert_ok();
    assert!(o.stdout.starts_with("spec-ok\n"), "{o:#?}");
}

#[test]
fn rootless_spec_maps_the_caller() {
    require_root!();
    let h = Hako::new();
    for extra in [&["--rootless"][..], &[][..]] {
        let (_dir, v) = if extra.is_empty() {
            // The Go-style global spelling runc users have in scripts: `-rootless` after spec.
            spec_in(&h, &["-rootless"])
        } else {
            spec_in(&h, extra)
        };
        let ns = namespace_types(&v);
        assert!(ns.contains(&"user") && !ns.contains(&"network"), "{ns:?}");
        // SAFETY: geteuid has no arguments and cannot fail.
        let uid = unsafe { libc::geteuid() };
        assert_eq!(
            v["linux"]["uidMappings"],
            json!([{"containerID": 0, "hostID": uid, "size": 1}])
        );
        assert!(v["linux"].get("resources").is_none());
    }
}

fn which(name: &str) -> Result<String, ()> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| format!("{d}/{name}"))
        .find(|p| std::path::Path::new(p).is_file())
        .ok_or(())
}

/// `spec` in `dir` as `uid`/`gid` (euid and egid), by `bin`; the bytes written.
fn spec_bytes(
    bin: &str,
    dir: &std::path::Path,
    ids: Option<(u32, u32)>,
    extra: &[&str],
) -> Vec<u8> {
    use std::os::unix::process::CommandExt;
    let _ = fs::remove_file(dir.join("config.json"));
    let mut c = std::process::Command::new(bin);
    c.arg("spec").args(extra).current_dir(dir);
    if let Some((u, g)) = ids {
        c.uid(u).gid(g);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{bin} spec {extra:?}: {o:?}");
    fs::read(dir.join("config.json")).unwrap()
}

/// The runc whose `spec` hako's is compared with: runc 1.3 (the contract), from
/// `HAKO_RUNC13` or ../shared/runc-1.3/runc next to the workspace.
fn runc13() -> Option<String> {
    let p = std::env::var("HAKO_RUNC13")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/runc-1.3/runc")
        });
    p.is_file().then(|| p.to_string_lossy().into_owned())
}

/// `ociVersion` is the version each runtime implements (runc 1.3.6: 1.2.1, hako: 1.3.0); the
/// rest is compared byte for byte.
fn without_oci_version(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    let (head, rest) = text.split_once('\n').unwrap();
    let (line, rest) = rest.split_once('\n').unwrap();
    assert!(line.starts_with("\t\"ociVersion\": \""), "{line}");
    format!("{head}\n\"ociVersion\"\n{rest}")
}

/// Scripts diff, sed and patch the file `runc spec` writes: hako writes the same bytes as runc
/// 1.3, for `--rootless` too (with the caller's ids), but for `ociVersion`.
#[test]
fn spec_is_byte_for_byte_runcs() {
    require_root!();
    let Some(runc) = runc13() else {
        skip("no runc 1.3 to compare with (../shared/runc-1.3/runc, or HAKO_RUNC13)");
        return;
    };
    let hako = hako_bin();
    let hako = hako.to_str().unwrap();
    let dir = TempDir::new("spec-bytes");
    fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    for (ids, extra) in [
        (None, &[][..]),
        (None, &["--rootless"][..]),
        (Some((1000, 1001)), &["--rootless"][..]),
    ] {
        let theirs = spec_bytes(&runc, dir.path(), ids, extra);
        let ours = spec_bytes(hako, dir.path(), ids, extra);
        assert!(
            ours.starts_with(b"{\n\t\"ociVersion\": \"1.3.0\",\n"),
            "{}",
            String::from_utf8_lossy(&ours)
        );
        let (ours, theirs) = (without_oci_version(&ours), without_oci_version(&theirs));
        assert!(
            ours == theirs,
            "{ids:?} {extra:?}: hako wrote\n{ours}\nrunc wrote\n{theirs}"
        );
    }
}

/// A script adding a namespace to the default spec (here the cgroup one, which runc's spec
/// lacks) gets a config that runs: no duplicate namespace.
#[test]
fn spec_patched_with_a_cgroup_namespace_runs() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::new();
    let (_dir, mut v) = spec_in(&h, &[]);
    v["process"]["terminal"] = json!(false);
    v["process"]["args"] = json!(["sh", "-c", "readlink /proc/self/ns/cgroup"]);
    v["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "cgroup"}));
    fs::write(b.config_path(), v.to_string()).unwrap();
    let o = h.cmd(&["run", "--bundle", b.path().to_str().unwrap(), &h.new_id()]);
    o.assert_ok();
    let host = fs::read_link("/proc/self/ns/cgroup").unwrap();
    assert_ne!(o.stdout.trim(), host.to_str().unwrap(), "{o:?}");
    // One already there, added again: refused in runc's words, nothing left.
    v["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "network"}));
    fs::write(b.config_path(), v.to_string()).unwrap();
    let id = h.new_id();
    let o = h.cmd(&["run", "--bundle", b.path().to_str().unwrap(), &id]);
    o.assert_err();
    assert!(
        o.stderr
            .contains(r#"malformed spec file: duplicated ns {\"network\" \"\"}"#),
        "{o:?}"
    );
    assert!(!h.state_dir(&id).exists());
}
