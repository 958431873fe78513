//! Idmapped mounts (runtime-spec `uidMappings`/`gidMappings` on a mount, the `idmap` and `ridmap`
//! options): file owners as the container sees them and as the host sees what it wrote, the
//! cases of runc's tests/integration/idmap.bats, sources on several filesystems, and the errors.

use std::path::{Path, PathBuf};

use hako_tests::*;

const MAPPED: u32 = 100000;

/// The runtime under test announces idmapped mounts (`features`); runc 1.1 has none: SKIP.
fn supported(h: &Hako) -> bool {
    let out = h.cmd(&["features"]);
    let on = serde_json::from_str::<Value>(&out.stdout)
        .map(|v| v["linux"]["mountExtensions"]["idmap"]["enabled"] == json!(true))
        .unwrap_or(false);
    if !on {
        skip("the runtime has no idmapped mounts (features)");
    }
    on
}

/// hako's own error texts and refusals: other runtimes word them differently (runc 1.3 passes
/// every ownership test here).
fn hako_only() -> bool {
    if testing_runc() {
        skip("checks hako's own error text");
        return false;
    }
    true
}

fn overflow_uid() -> String {
    read("/proc/sys/kernel/overflowuid").trim().to_string()
}

/// A container in a user namespace mapping 0..65536 to MAPPED.., its rootfs owned accordingly.
fn userns_bundle(script: &str) -> Bundle {
    let mut b = Bundle::sh(script);
    b.in_user_namespace(MAPPED, MAPPED)
        .chown_rootfs(MAPPED, MAPPED);
    b
}

/// `<bundle>/NAME` with files `foo.txt`, `bar.txt`, `baz.txt` owned as given.
fn source(b: &Bundle, name: &str, owners: &[(u32, u32)]) -> PathBuf {
    let dir = b.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (f, (u, g)) in ["foo.txt", "bar.txt", "baz.txt"].iter().zip(owners) {
        let p = dir.join(f);
        std::fs::write(&p, "x").unwrap();
        std::os::unix::fs::chown(&p, Some(*u), Some(*g)).unwrap();
    }
    dir
}

fn maps(c: u32, h: u32, s: u32) -> Value {
    json!([{"containerID": c, "hostID": h, "size": s}])
}

/// `uid:gid` of each path as the container sees it, one `path:uid=gid` line each.
fn stat_script(paths: &str) -> String {
    format!("for f in {paths}; do stat -c '%n:%u=%g' $f; done")
}

fn host_owner(p: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(p).unwrap();
    (m.uid(), m.gid())
}

/// Unmounts a host mount made by a test, also when the test fails.
struct HostMount(PathBuf);

impl HostMount {
    fn new(fstype: &str, src: &str, target: &Path, data: Option<&str>) -> HostMount {
        std::fs::create_dir_all(target).unwrap();
        nix::mount::mount(
            Some(src),
            target,
            Some(fstype),
            nix::mount::MsFlags::empty(),
            data,
        )
        .unwrap_or_else(|e| panic!("mount {fstype} on {}: {e}", target.display()));
        HostMount(target.to_path_buf())
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// The mountinfo line of the mount at `dest`, as the container printed it.
fn mountinfo_line<'a>(out: &'a str, dest: &str) -> &'a str {
    out.lines()
        .find(|l| l.split(' ').nth(4) == Some(dest))
        .unwrap_or_else(|| panic!("no mount at {dest}: {out}"))
}

#[test]
fn idmap_of_the_containers_own_mapping() {
    require_root!();
    let h = Hako::new();
    if !supported(&h) {
        return;
    }
    let mut b = userns_bundle(&format!(
        "{}; touch /m/new; stat -c '%n:%u=%g' /m/new; cat /proc/self/mountinfo",
        stat_script("/m/foo.txt /plain/foo.txt")
    ));
    let src = source(&b, "src", &[(0, 0)]);
    b.add_mount(json!({"destination": "/m", "type": "bind", "source": src,
                       "options": ["bind", "idmap"]}));
    // The same directory without the idmap: the host's root is nobody in the container.
    b.add_mount(
        json!({"destination": "/plain", "type": "bind", "source": src,
                       "options": ["bind"]}),
    );
    let out = h.run(&h.new_id(), &b);
    out.assert_ok();
    assert!(out.stdout.contains("/m/foo.txt:0=0\n"), "{out:#?}");
    let nobody = overflow_uid();
    assert!(
        out.stdout
            .contains(&format!("/plain/foo.txt:{nobody}={nobody}\n")),
        "{out:#?}"
    );
    assert!(out.stdout.contains("/m/new:0=0\n"), "{out:#?}");
    // Written by the container's root, owned by the host's root (not by MAPPED).
    assert_eq!(host_owner(&src.join("new")), (0, 0));
    let line = mountinfo_line(&out.stdout, "/m");
    assert!(line.contains("idmapped"), "{line}");
    assert!(
        !mountinfo_line(&out.stdout, "/plain").contains("idmapped"),
        "{out:#?}"
    );
    assert!(
        mounts_under(b.path()).is_empty(),
        "{:?}",
        mounts_under(b.path())
    );
}

#[test]
fn explicit_mapping_equal_to_the_containers() {
    require_root!();
    let h = Hako::new();
    if !supported(&h) {
        return;
    }
    let mut b = userns_bundle(&stat_script("/m/foo.txt /m/bar.txt"));
    let src = source(&b, "src", &[(0, 0), (1, 1)]);
    b.add_mount(
        json!({"destination": "/m", "type": "bind", "source": src, "options": ["bind"],
                       "uidMappings": maps(0, MAPPED, 65536),
                       "gidMappings": maps(0, MAPPED, 65536)}),
    );
    let out = h.run(&h.new_id(), &b);
    out.assert_ok();
    assert!(out.stdout.contains("/m/foo.txt:0=0\n"), "{out:#?}");
    assert!(out.stdout.contains("/m/bar.txt:1=1\n"), "{out:#?}");
}

/// runc's "multiple idmap mounts (different mappings) [userns]": mappings other than the
/// container's, uid and gid maps differing too; two mounts share one mapping.
#[test]
fn mappings_other_than_the_containers() {
    require_root!();
    let mut h = Hako::new();
    if !supported(&h) {
        return;
    }
    let mut b = userns_bundle(&stat_script(
        "/m1/foo.txt /m1/bar.txt /m1/baz.txt /m1b/foo.txt /m2/foo.txt /m2/baz.txt /m3/foo.txt \
         /m3/bar.txt /own/foo.txt",
    ));
    let m1 = source(&b, "multi1", &[(100, 211), (101, 222), (102, 233)]);
    let m2 = source(&b, "multi2", &[(200, 211), (201, 222), (202, 233)]);
    let m3 = source(&b, "multi3", &[(5000528, 6000491), (5000133, 6000337)]);
    for (dest, src, u, g) in [
        ("/m1", &m1, maps(100, 101100, 3), maps(200, 101900, 50)),
        // The same mapping again: one helper user namespace for both.
        ("/m1b", &m1, maps(100, 101100, 3), maps(200, 101900, 50)),
        ("/m2", &m2, maps(200, 102200, 3), maps(200, 102900, 100)),
        (
            "/m3",
            &m3,
            maps(5000000, 103000, 1000),
            maps(6000000, 103000, 500),
        ),
        // The container's own mapping: its user namespace, no helper.
        ("/own", &m1, maps(0, MAPPED, 65536), maps(0, MAPPED, 65536)),
    ] {
        b.add_mount(json!({"destination": dest, "type": "bind", "source": src,
                           "options": ["bind"], "uidMappings": u, "gidMappings": g}));
    }
    let log = h.scratch().join("debug.log");
    if !testing_runc() {
        h.global = vec!["--debug".into(), "--log".into(), log.display().to_string()];
    }
    let out = h.run(&h.new_id(), &b);
    out.assert_ok();
    if !testing_runc() {
        // One helper user namespace per distinct mapping: three for five mounts.
        let helpers = read(&log).matches("helper user namespace").count();
        assert_eq!(helpers, 3, "{}", read(&log));
    }
    for want in [
        "/m1/foo.txt:1100=1911",
        "/m1/bar.txt:1101=1922",
        "/m1/baz.txt:1102=1933",
        "/m1b/foo.txt:1100=1911",
        "/m2/foo.txt:2200=2911",
        "/m2/baz.txt:2202=2933",
        "/m3/foo.txt:3528=3491",
        "/m3/bar.txt:3133=3337",
        "/own/foo.txt:100=211",
    ] {
        assert!(
            out.stdout.contains(&format!("{want}\n")),
            "{want}: {out:#?}"
        );
    }
}

/// podman 4.3 passes `-v SRC:DST:idmap=uids=…;gids=…` through as that mount option (crun's
/// syntax: FS-HOST-SIZE triplets, `#` between them); a list left out is the container's own.
#[test]
fn podman_idmap_option_with_a_mapping() {
    require_root!();
    let h = Hako::new();
    if !hako_only() || !supported(&h) {
        return;
    }
    let mut b = userns_bundle(&format!(
        "{}; touch /m/new",
        stat_script("/m/foo.txt /m/bar.txt /g/foo.txt")
    ));
    let src = source(&b, "src", &[(1000, 2000), (0, 0)]);
    // The directory is the container root's through the mapping: it may write there.
    std::os::unix::fs::chown(&src, Some(1000), Some(2000)).unwrap();
    b.add_mount(json!({"destination": "/m", "type": "bind", "source": src,
        "options": [format!("idmap=uids=1000-{MAPPED}-1#0-{}-1;gids=2000-{MAPPED}-1", MAPPED + 5),
                    "rw", "rprivate", "rbind"]}));
    b.add_mount(json!({"destination": "/g", "type": "bind", "source": src,
        "options": [format!("idmap=uids=1000-{MAPPED}-1"), "rbind"]}));
    let out = h.run(&h.new_id(), &b);
    out.assert_ok();
    let nobody = overflow_uid();
    for want in [
        "/m/foo.txt:0=0".to_string(),
        format!("/m/bar.txt:5={nobody}"),
        // gids left out: the container's (the filesystem's 2000 is its 2000).
        "/g/foo.txt:0=2000".to_string(),
    ] {
        assert!(
            out.stdout.contains(&format!("{want}\n")),
            "{want}: {out:#?}"
        );
    }
    // The container's root writes as the filesystem's 1000.
    assert_eq!(host_owner(&src.join("new")), (1000, 2000));
}

/// runc's "[no userns]" cases: explicit mappings need no user namespace of the container; the
/// host's ids are shown, and a file of an unmapped id cannot be created (EOVERFLOW).
#[test]
fn explicit_mapping_without_a_user_namespace() {
    require_root!();
    let h = Hako::new();
    if !supported(&h) {
        return;
    }
    let mut b = Bundle::sh(&format!(
        "{}; touch /m/new 2>&1 || echo refused",
        stat_script("/m/foo.txt /m/bar.txt")
    ));
    let src = source(&b, "src", &[(100, 211), (101, 222)]);
    b.add_mount(
        json!({"destination": "/m", "type": "bind", "source": src, "options": ["bind"],
                       "uidMappings": maps(100, 1100, 3), "gidMappings": maps(200, 1900, 50)}),
    );
    let out = h.run(&h.new_id(), &b);
    out.assert_ok();
    assert!(out.stdout.contains("/m/foo.txt:1100=1911\n"), "{out:#?}");
    assert!(out.stdout.contains("/m/bar.txt:1101=1922\n"), "{out:#?}");
    assert!(out.stdout.contains("refused"), "{out:#?}");
    assert!(!src.join("new").exists());
}

/// `idmap` maps the top mount of an rbind only, `ridmap` the submounts too.
#[test]
fn ridmap_maps_submounts_and_idmap_does_not() {
    require_root!();
    let h = Hako::new();
    if !supported(&h) {
        return;
    }
    let mut b = userns_bundle(&stat_script(
        "/top/foo.txt /top/sub/foo.txt /rtop/foo.txt /rtop/sub/foo.txt",
    ));
    let src = source(&b, "src", &[(0, 0)]);
    let _sub = HostMount::new("tmpfs", "tmpfs", &src.join("sub"), Some("mode=755"));
    std::fs::write(src.join("sub/foo.txt"), "x").unwrap();
    b.add_mount(json!({"destination": "/top", "type": "bind", "source": src,
                       "options": ["rbind", "idmap"]}));
    b.add_mount(
        json!({"destination": "/rtop", "type": "bind", "source": src,
                       "options": ["rbind", "ridmap"]}),
    );
    let out = h.run(&h.new_id(), &b);
    out.assert_ok();
    let nobody = overflow_uid();
    for want in [
        "/top/foo.txt:0=0".to_string(),
        format!("/top/sub/foo.txt:{nobody}={nobody}"),
        "/rtop/foo.txt:0=0".to_string(),
        "/rtop/sub/foo.txt:0=0".to_string(),
    ] {
        assert!(
            out.stdout.contains(&format!("{want}\n")),
            "{want}: {out:#?}"
        );
    }
}

/// Mounts below an idmapped mount keep their own mapping, and an idmapped mount below a plain
/// one has its own.
#[test]
fn nested_mounts_below_and_above_an_idmapped_mount() {
    require_root!();
    let h = Hako::new();
    if !supported(&h) {
        return;
    }
    let mut b = userns_bundle(&stat_script(
        "/m/foo.txt /m/inner/foo.txt /p/foo.txt /p/inner/foo.txt",
    ));
    let a = source(&b, "a", &[(0, 0)]);
    let c = source(&b, "c", &[(0, 0)]);
    std::fs::create_dir(a.join("inner")).unwrap();
    std::fs::create_dir(c.join("inner")).unwrap();
    b.add_mount(json!({"destination": "/m", "type": "bind", "source": a,
                       "options": ["bind", "idmap"]}));
    b.add_mount(
        json!({"destination": "/m/inner", "type": "bind", "source": c,
                       "options": ["bind"]}),
    );
    b.add_mount(json!({"destination": "/p", "type": "bind", "source": c,
                       "options": ["bind"]}));
    b.add_mount(
        json!({"destination": "/p/inner", "type": "bind", "source": a,
                       "options": ["bind", "idmap"]}),
    );
    let out = h.run(&h.new_id(), &b);
    out.assert_ok();
    let nobody = overflow_uid();
    for want in [
        "/m/foo.txt:0=0".to_string(),
        format!("/m/inner/foo.txt:{nobody}={nobody}"),
        format!("/p/foo.txt:{nobody}={nobody}"),
        "/p/inner/foo.txt:0=0".to_string(),
    ] {
        assert!(
            out.stdout.contains(&format!("{want}\n")),
            "{want}: {out:#?}"
        );
    }
}

/// Sources on tmpfs and on the filesystem of the temp dir (ext4 here): each one idmapped, and a
/// file written through it owned by the host's root.
#[test]
fn sources_on_tmpfs_and_ext4() {
    require_root!();
    let h = Hako::new();
    if !supported(&h) {
        return;
    }
    let mut b =
        userns_bundle("for d in tmp disk; do stat -c \"$d:%u=%g\" /$d/foo.txt; touch /$d/w; done");
    let tmp = b.path().join("tmpfs");
    let _t = HostMount::new("tmpfs", "tmpfs", &tmp, Some("mode=755"));
    let disk = source(&b, "disk", &[(0, 0)]);
    std::fs::write(tmp.join("foo.txt"), "x").unwrap();
    for (dest, src) in [("/tmp", &tmp), ("/disk", &disk)] {
        b.add_mount(json!({"destination": dest, "type": "bind", "source": src,
                           "options": ["rbind", "idmap"]}));
    }
    let out = h.run(&h.new_id(), &b);
    out.assert_ok();
    for want in ["tmp:0=0", "disk:0=0"] {
        assert!(
            out.stdout.contains(&format!("{want}\n")),
            "{want}: {out:#?}"
        );
    }
    for dir in [&tmp, &disk] {
        assert_eq!(host_owner(&dir.join("w")), (0, 0), "{}", dir.display());
    }
}

/// overlayfs itself cannot be idmapped (it takes idmapped layers instead, and has no
/// FS_ALLOW_IDMAP on this kernel), nor can ramfs: the kernel's EINVAL in words, naming the
/// filesystem; nothing left behind.
#[test]
fn a_filesystem_without_idmap_support_is_named() {
    require_root!();
    let h = Hako::new();
    if !hako_only() || !supported(&h) {
        return;
    }
    // The test's own mounts live outside the bundle, whose leftovers are checked.
    let host = TempDir::new("idmap-src");
    let mut b = userns_bundle("true");
    let ram = host.path().join("ram");
    let _r = HostMount::new("ramfs", "ramfs", &ram, None);
    b.add_mount(json!({"destination": "/r", "type": "bind", "source": ram,
                       "options": ["bind", "idmap"]}));
    assert_refused(
        &h,
        &b,
        &[
            "(/r)",
            "ramfs does not support idmapped mounts on this kernel",
        ],
    );
    let mut b = userns_bundle("true");
    let lower = host.path().join("lower");
    for d in ["lower", "upper", "work"] {
        std::fs::create_dir(host.path().join(d)).unwrap();
    }
    let ovl = host.path().join("ovl");
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        host.path().join("upper").display(),
        host.path().join("work").display()
    );
    let _o = HostMount::new("overlay", "overlay", &ovl, Some(&data));
    b.add_mount(json!({"destination": "/ovl", "type": "bind", "source": ovl,
                       "options": ["rbind", "idmap"]}));
    assert_refused(
        &h,
        &b,
        &[
            "(/ovl)",
            "overlay does not support idmapped mounts on this kernel",
        ],
    );
}

#[test]
fn read_only_and_shared_idmapped_mounts() {
    require_root!();
    let h = Hako::new();
    if !supported(&h) {
        return;
    }
    let mut b = userns_bundle(
        "stat -c '%u=%g' /ro/foo.txt; touch /ro/x 2>/dev/null && echo ro-writable || \
         echo ro-refused; cat /proc/self/mountinfo",
    );
    let src = source(&b, "src", &[(0, 0)]);
    b.add_mount(json!({"destination": "/ro", "type": "bind", "source": src,
                       "options": ["bind", "idmap", "ro"]}));
    b.add_mount(json!({"destination": "/sh", "type": "bind", "source": src,
                       "options": ["bind", "idmap", "shared"]}));
    let out = h.run(&h.new_id(), &b);
    out.assert_ok();
    assert!(out.stdout.starts_with("0=0\nro-refused\n"), "{out:#?}");
    let ro = mountinfo_line(&out.stdout, "/ro");
    assert!(ro.split(' ').nth(5).unwrap().starts_with("ro"), "{ro}");
    assert!(ro.contains("idmapped"), "{ro}");
    let sh = mountinfo_line(&out.stdout, "/sh");
    assert!(sh.contains(" shared:"), "{sh}");
    assert!(!src.join("x").exists());
}

/// One error naming the mount and why; nothing left behind.
fn assert_refused(h: &Hako, b: &Bundle, words: &[&str]) {
    let id = h.new_id();
    let o = h.run(&id, b);
    o.assert_err();
    for w in words {
        assert!(o.stderr.contains(w), "{w:?} not in {o:#?}");
    }
    assert!(!h.state_dir(&id).exists());
    assert!(
        mounts_under(b.path()).is_empty(),
        "{:?}",
        mounts_under(b.path())
    );
    assert!(processes_using(b.path()).is_empty());
}

#[test]
fn errors_name_the_mount_and_the_reason() {
    require_root!();
    let h = Hako::new();
    if !hako_only() || !supported(&h) {
        return;
    }
    // Not a bind mount.
    let mut b = userns_bundle("true");
    b.add_mount(
        json!({"destination": "/t", "type": "tmpfs", "source": "tmpfs",
                       "options": ["idmap"]}),
    );
    let n = b.config["mounts"].as_array().unwrap().len() - 1;
    assert_refused(
        &h,
        &b,
        &[
            &format!("mounts[{n}] (/t)"),
            "only supported for bind mounts",
        ],
    );
    // `idmap` without mappings and no user namespace to take them from.
    let mut b = Bundle::new();
    let src = source(&b, "src", &[(0, 0)]);
    b.add_mount(json!({"destination": "/m", "type": "bind", "source": src,
                       "options": ["bind", "idmap"]}));
    assert_refused(&h, &b, &["(/m)", "no user namespace"]);
    // Only one of the two mappings.
    let mut b = userns_bundle("true");
    let src = source(&b, "src", &[(0, 0)]);
    b.add_mount(
        json!({"destination": "/m", "type": "bind", "source": src, "options": ["bind"],
                       "uidMappings": maps(0, 1, 1)}),
    );
    assert_refused(&h, &b, &["(/m)", "both uidMappings and gidMappings"]);
}

/// runc refuses idmapped mounts for an unprivileged runtime; so do we, before anything exists.
#[test]
fn rootless_runtime_is_refused_with_the_reason() {
    require_root!();
    let user = test_user();
    let h = Hako::rootless();
    if !hako_only() || !supported(&h) {
        return;
    }
    let mut b = Bundle::sh("true");
    b.in_user_namespace_of(user);
    let src = source(&b, "src", &[(user.uid, user.gid)]);
    b.add_mount(json!({"destination": "/m", "type": "bind", "source": src,
                       "options": ["bind", "idmap"]}));
    let id = h.new_id();
    let o = h.run(&id, &b);
    o.assert_err();
    assert!(o.stderr.contains("(/m)"), "{o:#?}");
    assert!(
        o.stderr.contains("need a runtime running as root"),
        "{o:#?}"
    );
    assert!(!h.state_dir(&id).exists());
}

/// What containerd 2's CRI plugin writes for a `hostUsers: false` pod's container: it joins the
/// sandbox's user namespace by path, repeats its mappings, and gives each volume mount the same
/// mappings explicitly (rbind, rprivate). Debian's containerd 1.6 cannot make this, so it is run
/// directly: a sandbox container holds the user namespace, the app container joins it.
#[test]
fn containerd_cri_host_users_false_pod() {
    require_root!();
    let h = Hako::new();
    if !supported(&h) {
        return;
    }
    let mut sandbox = userns_bundle("sleep 60");
    sandbox.config["process"]["args"] = json!(["sleep", "60"]);
    let sid = h.new_id();
    h.run_with(&sid, &sandbox, &["-d"]).assert_ok();
    let spid = h.pid(&sid);
    let mut app = Bundle::sh(&format!(
        "{}; touch /vol/new; stat -c '%n:%u=%g' /vol/new",
        stat_script("/vol/foo.txt")
    ));
    app.chown_rootfs(MAPPED, MAPPED);
    let nss = app.config["linux"]["namespaces"].as_array_mut().unwrap();
    nss.push(json!({"type": "user", "path": format!("/proc/{spid}/ns/user")}));
    app.config["linux"]["uidMappings"] = maps(0, MAPPED, 65536);
    app.config["linux"]["gidMappings"] = maps(0, MAPPED, 65536);
    let vol = source(&app, "volume", &[(0, 0)]);
    app.add_mount(json!({"destination": "/vol", "type": "bind", "source": vol,
                         "options": ["rbind", "rprivate", "rw"],
                         "uidMappings": maps(0, MAPPED, 65536),
                         "gidMappings": maps(0, MAPPED, 65536)}));
    let out = h.run(&h.new_id(), &app);
    out.assert_ok();
    assert!(out.stdout.contains("/vol/foo.txt:0=0\n"), "{out:#?}");
    assert!(out.stdout.contains("/vol/new:0=0\n"), "{out:#?}");
    assert_eq!(host_owner(&vol.join("new")), (0, 0));
}

/// CRIU would restore the mount as a plain bind: checkpoint and restore refuse before anything is
/// dumped or created, naming the mount, and the container runs on.
#[test]
fn checkpoint_and_restore_refuse_idmapped_mounts() {
    require_root!();
    let h = Hako::new();
    if !hako_only() || !supported(&h) {
        return;
    }
    let mut b = userns_bundle("sleep 60");
    b.config["process"]["args"] = json!(["sleep", "60"]);
    let src = source(&b, "src", &[(0, 0)]);
    b.add_mount(json!({"destination": "/m", "type": "bind", "source": src,
                       "options": ["bind", "idmap"]}));
    let n = b.config["mounts"].as_array().unwrap().len() - 1;
    let id = h.new_id();
    h.run_with(&id, &b, &["-d"]).assert_ok();
    let img = b.path().join("image");
    let o = h.cmd(&["checkpoint", "--image-path", img.to_str().unwrap(), &id]);
    o.assert_err();
    assert!(
        o.stderr
            .contains(&format!("mounts[{n}] (/m) is an idmapped mount")),
        "{o:#?}"
    );
    assert_eq!(h.status(&id), "running");
    assert!(std::fs::read_dir(&img).map_or(true, |mut d| d.next().is_none()));
    let rid = h.new_id();
    h.track(&rid);
    let bundle = b.path().to_str().unwrap();
    std::fs::create_dir_all(&img).unwrap();
    let o = h.cmd(&[
        "restore",
        "-d",
        "--image-path",
        img.to_str().unwrap(),
        "--bundle",
        bundle,
        &rid,
    ]);
    o.assert_err();
    assert!(o.stderr.contains("restore: mounts["), "{o:#?}");
    assert!(!h.state_dir(&rid).exists());
}

/// A runtime that is root only in a user namespace of its own (rootless podman runs it so, with a
/// mount namespace of that user namespace): it may idmap to ids its namespace has, on a
/// filesystem mounted in it; a mapping to ids it lacks is refused before anything exists, and a
/// host filesystem is the kernel's EPERM, explained. `unshare -U -r -m` makes such a runtime
/// (only id 0 mapped, to the host's 0).
#[test]
fn root_in_a_user_namespace_idmaps_only_what_it_owns() {
    require_root!();
    let h = Hako::new();
    if !hako_only() || !supported(&h) {
        return;
    }
    let mut b = Bundle::sh("stat -c '%n:%u:%g' /m/f /p/f; grep ' /m ' /proc/self/mountinfo");
    b.add_namespace("user");
    b.config["linux"]["uidMappings"] = maps(0, 0, 1);
    b.config["linux"]["gidMappings"] = maps(0, 0, 1);
    // No cgroup limits (the device rules cannot be written from there), no devpts gid 5.
    b.config["linux"]
        .as_object_mut()
        .unwrap()
        .remove("resources");
    devpts_without_gid5(&mut b.config);
    let src = b.path().join("own-tmpfs");
    std::fs::create_dir(&src).unwrap();
    let run_in = |b: &Bundle, mount_tmpfs: bool, mount_ns: bool| {
        b.save();
        let hako = hako_bin();
        let script = format!(
            "{} exec {} --root {} run --bundle {} c-{}",
            if mount_tmpfs {
                format!(
                    "mount -t tmpfs tmpfs {0} && echo x >{0}/f &&",
                    src.display()
                )
            } else {
                String::new()
            },
            hako.display(),
            h.scratch().join("root").display(),
            b.path().display(),
            unique()
        );
        let ns = if mount_ns { "-Urm" } else { "-Ur" };
        std::process::Command::new("unshare")
            .args([ns, "--", "sh", "-c", &script])
            .output()
            .unwrap()
    };
    let run = |b: &Bundle, mount_tmpfs: bool| run_in(b, mount_tmpfs, true);
    // gid 0 of the tmpfs is mapped to nothing in the mount's mapping (5 -> 0): nobody there, 0
    // through the plain bind.
    b.add_mount(
        json!({"destination": "/m", "type": "bind", "source": src, "options": ["bind"],
                       "uidMappings": maps(0, 0, 1), "gidMappings": maps(5, 0, 1)}),
    );
    b.add_mount(json!({"destination": "/p", "type": "bind", "source": src, "options": ["bind"]}));
    let o = run(&b, true);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{o:?}");
    let nobody = overflow_uid();
    assert!(out.contains(&format!("/m/f:0:{nobody}\n")), "{out}");
    assert!(out.contains("/p/f:0:0\n"), "{out}");
    assert!(out.contains("idmapped"), "{out}");
    // The host's filesystem: EPERM, in words.
    let o = run(&b, false);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("(/m)") && err.contains("has no CAP_SYS_ADMIN in"),
        "{err}"
    );
    // Without a mount namespace of its user namespace it could enter the container's but not
    // come back: refused before it goes.
    let o = run_in(&b, false, false);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("needs a mount namespace of that user namespace"),
        "{err}"
    );
    // Ids the runtime's namespace does not have.
    let last = b.config["mounts"].as_array().unwrap().len() - 2;
    b.config["mounts"][last]["uidMappings"] = maps(0, MAPPED, 10);
    let o = run(&b, true);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains(&format!(
            "mounts[{last}] (/m).uidMappings: host ids {MAPPED}-{} are not mapped in the runtime's user namespace",
            MAPPED + 9
        )),
        "{err}"
    );
    assert!(
        mounts_under(b.path()).is_empty(),
        "{:?}",
        mounts_under(b.path())
    );
}

/// A user namespace with `0 outer 65536` as both maps, from a child of `unshare -U` (killed on
/// drop): what a caller passes to mount_setattr.
struct HelperUserns(std::process::Child, std::fs::File);

impl HelperUserns {
    fn new(outer: u32) -> HelperUserns {
        let child = std::process::Command::new("unshare")
            .args(["-U", "--", "sleep", "60"])
            .spawn()
            .unwrap();
        let pid = child.id();
        let mine = std::fs::read_link("/proc/self/ns/user").unwrap();
        assert!(wait_for(std::time::Duration::from_secs(5), || {
            std::fs::read_link(format!("/proc/{pid}/ns/user")).is_ok_and(|n| n != mine)
        }));
        for f in ["uid_map", "gid_map"] {
            std::fs::write(format!("/proc/{pid}/{f}"), format!("0 {outer} 65536\n")).unwrap();
        }
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/user")).unwrap();
        HelperUserns(child, ns)
    }
}

impl Drop for HelperUserns {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What podman 5 does for `--rootfs PATH:idmap` (podman 4.3 has no such option): it mounts PATH
/// idmapped itself and passes it as `root.path`. The rootfs bind keeps the mapping: the image's
/// root-owned files are the container's root's, and what it writes is the host's root's.
#[test]
fn rootfs_idmapped_by_the_caller() {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    require_root!();
    let h = Hako::new();
    if !supported(&h) {
        return;
    }
    let mut b =
        userns_bundle("stat -c '%u:%g' /bin/busybox; touch /written && cat /proc/self/uid_map");
    // The image as a caller stores it: owned by the host's root.
    b.chown_rootfs(0, 0);
    let target = b.path().join("idmapped-rootfs");
    std::fs::create_dir(&target).unwrap();
    let userns = HelperUserns::new(MAPPED);
    let src = std::ffi::CString::new(b.rootfs().to_str().unwrap()).unwrap();
    // SAFETY: open_tree with a live NUL-terminated path; the fd returned is new.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            src.as_ptr(),
            1 | libc::O_CLOEXEC as u32 | libc::AT_RECURSIVE as u32, // OPEN_TREE_CLONE
        )
    };
    assert!(fd >= 0, "open_tree: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh fd from open_tree.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let attr: [u64; 4] = [0x0010_0000, 0, 0, userns.1.as_raw_fd() as u64]; // MOUNT_ATTR_IDMAP
                                                                           // SAFETY: a live mount_attr of the size passed, the static empty path.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            attr.as_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    assert_eq!(r, 0, "mount_setattr: {}", std::io::Error::last_os_error());
    let to = std::ffi::CString::new(target.to_str().unwrap()).unwrap();
    // SAFETY: live NUL-terminated paths, a borrowed fd.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            4, // MOVE_MOUNT_F_EMPTY_PATH
        )
    };
    assert_eq!(r, 0, "move_mount: {}", std::io::Error::last_os_error());
    let _mounted = HostMount(target.clone());
    b.config["root"] = json!({"path": target, "readonly": false});
    let out = h.run(&h.new_id(), &b);
    out.assert_ok();
    assert!(out.stdout.starts_with("0:0\n"), "{out:#?}");
    assert!(
        out.stdout.contains(&format!("0     {MAPPED}"))
            || out.stdout.contains(&format!(" {MAPPED} ")),
        "{out:#?}"
    );
    assert_eq!(host_owner(&b.rootfs().join("written")), (0, 0));
}
