//! Root filesystem: mounts, binds, read-only root, masked and read-only paths, propagation,
//! /dev contents and linux.devices, --no-pivot (runc's mask.bats, mounts.bats, dev.bats).

use std::fs;

use hako_tests::*;

/// (mount point, mount options, optional fields, fs type, super options) of a mountinfo text.
struct Mnt {
    point: String,
    opts: String,
    optional: String,
    fstype: String,
    sopts: String,
}

fn parse_mountinfo(text: &str) -> Vec<Mnt> {
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            Some(Mnt {
                point: f[4].to_string(),
                opts: f[5].to_string(),
                optional: f[6..].join(" "),
                fstype: r[0].to_string(),
                sopts: r.get(2).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

fn find<'a>(mounts: &'a [Mnt], point: &str) -> &'a Mnt {
    mounts
        .iter()
        .rev()
        .find(|m| m.point == point)
        .unwrap_or_else(|| panic!("no mount at {point}"))
}

fn has_opt(opts: &str, o: &str) -> bool {
    opts.split(',').any(|x| x == o)
}

#[test]
fn default_mounts() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let mi = parse_mountinfo(&h.run_sh(&mut b, "cat /proc/self/mountinfo"));
    let root = find(&mi, "/");
    assert!(has_opt(&root.opts, "ro"), "root.readonly: {}", root.opts);
    assert_eq!(find(&mi, "/proc").fstype, "proc");
    let dev = find(&mi, "/dev");
    assert_eq!(dev.fstype, "tmpfs");
    assert!(has_opt(&dev.opts, "nosuid"));
    assert!(has_opt(&dev.sopts, "mode=755"), "{}", dev.sopts);
    assert_eq!(find(&mi, "/dev/pts").fstype, "devpts");
    let shm = find(&mi, "/dev/shm");
    assert_eq!(shm.fstype, "tmpfs");
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(has_opt(&shm.opts, o), "/dev/shm lacks {o}: {}", shm.opts);
    }
    assert!(has_opt(&shm.sopts, "size=65536k"), "{}", shm.sopts);
    assert_eq!(find(&mi, "/dev/mqueue").fstype, "mqueue");
    let sys = find(&mi, "/sys");
    assert_eq!(sys.fstype, "sysfs");
    assert!(has_opt(&sys.opts, "ro"));
    // Nothing of the host's mount table is visible (no pivot leftovers such as /tmp/...).
    for m in &mi {
        assert!(
            !m.point.contains("hako-test-bundle"),
            "host path visible in container: {}",
            m.point
        );
    }
}

/// runc 1.2+: a tmpfs without `mode=` takes the mode (special bits too) of the directory it
/// covers, an explicit `mode=` wins (runc 1.1: the covered directory's mode always), and a
/// directory made for the mount gets tmpfs's 1777.
#[test]
fn tmpfs_mode_is_the_covered_directorys() {
    require_root!();
    use std::os::unix::fs::PermissionsExt;
    let h = Hako::new();
    let mut b = Bundle::new();
    for (d, mode) in [("m711", 0o711), ("m2775", 0o2775), ("explicit", 0o711)] {
        let p = b.rootfs().join(d);
        fs::create_dir(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }
    for (dest, opts) in [
        ("/m711", json!(["nosuid"])),
        ("/m2775", json!(["size=1m"])),
        ("/explicit", json!(["mode=750"])),
        ("/made", json!([])),
    ] {
        b.add_mount(
            json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": opts}),
        );
    }
    let out = h.run_sh(&mut b, "stat -c '%n %a' /m711 /m2775 /explicit /made /dev");
    assert_eq!(
        out, "/m711 711\n/m2775 2775\n/explicit 750\n/made 1777\n/dev 755\n",
        "/dev keeps its mode=755"
    );
}

/// Relative `maskedPaths` / `readonlyPaths` entries are inside the rootfs, as runc and youki
/// take them (hako before: refused as not absolute); `..` stays inside too.
#[test]
fn relative_masked_and_readonly_paths_are_in_the_rootfs() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    fs::create_dir_all(b.rootfs().join("secret/dir")).unwrap();
    fs::write(b.rootfs().join("secret/f"), "secret\n").unwrap();
    fs::write(b.rootfs().join("secret/dir/g"), "").unwrap();
    b.config["root"]["readonly"] = json!(false);
    b.config["linux"]["maskedPaths"] = json!(["secret/f", "../../secret/dir"]);
    b.config["linux"]["readonlyPaths"] = json!(["etc"]);
    let out = h.run_sh(
        &mut b,
        "cat /secret/f; ls /secret/dir; touch /etc/x 2>/dev/null || echo etc-ro; touch /tmp/y && echo tmp-rw",
    );
    assert_eq!(out, "etc-ro\ntmp-rw\n");
}

#[test]
fn cgroup_mount_is_readonly_and_populated() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let out = h.run_sh(
        &mut b,
        "ls /sys/fs/cgroup; touch /sys/fs/cgroup/x 2>/dev/null && echo WROTE; true",
    );
    assert!(!out.contains("WROTE"), "{out}");
    let entries: Vec<&str> = out.split_whitespace().collect();
    // cgroup v1 (hybrid): one directory per controller; cgroup v2: cgroup.controllers.
    assert!(
        entries.contains(&"memory") || entries.contains(&"cgroup.controllers"),
        "{out}"
    );
}

#[test]
fn readonly_root() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let out = h.run_sh(&mut b, "touch /newfile 2>&1; echo rc=$?");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(out.ends_with("rc=1\n"));
    assert!(!b.rootfs().join("newfile").exists());

    b.config["root"]["readonly"] = json!(false);
    let out = h.run_sh(&mut b, "echo hi > /newfile; echo rc=$?");
    assert_eq!(out, "rc=0\n");
    assert_eq!(read(b.rootfs().join("newfile")), "hi\n");
}

#[test]
fn bind_mount_visible_on_host() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let host = b.out_dir();
    fs::write(host.join("from-host"), "host\n").unwrap();
    let out = h.run_sh(
        &mut b,
        "cat /out/from-host; echo container > /out/from-container",
    );
    assert_eq!(out, "host\n");
    assert_eq!(read(host.join("from-container")), "container\n");
}

#[test]
fn readonly_bind_refuses_writes() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let host = b.path().join("ro");
    fs::create_dir(&host).unwrap();
    fs::write(host.join("f"), "orig\n").unwrap();
    b.add_mount(json!({
        "destination": "/ro", "type": "bind", "source": host.to_str().unwrap(),
        "options": ["rbind", "ro"]
    }));
    let out = h.run_sh(
        &mut b,
        "cat /ro/f; echo new > /ro/f 2>&1; echo rc=$?; touch /ro/g 2>&1; grep ' /ro ' /proc/self/mountinfo",
    );
    assert!(out.starts_with("orig\n"), "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(!out.contains("rc=0"), "{out}");
    assert_eq!(read(host.join("f")), "orig\n");
    assert!(!host.join("g").exists());
    let line = out.lines().last().unwrap();
    assert!(has_opt(line.split(' ').nth(5).unwrap(), "ro"), "{line}");
}

#[test]
fn bind_mount_of_file() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let f = b.path().join("hosts-file");
    fs::write(&f, "10.0.0.1 thing\n").unwrap();
    b.add_mount(json!({
        "destination": "/etc/hosts", "type": "bind", "source": f.to_str().unwrap(),
        "options": ["bind", "ro"]
    }));
    assert_eq!(h.run_sh(&mut b, "cat /etc/hosts"), "10.0.0.1 thing\n");
    // The destination file was created inside the rootfs, not on the host.
    assert!(b.rootfs().join("etc/hosts").exists());
}

#[test]
fn tmpfs_mount_with_options() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    b.add_mount(json!({
        "destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "noexec", "mode=1777", "size=1m"]
    }));
    let out = h.run_sh(
        &mut b,
        "stat -c %a /scratch; echo x > /scratch/f && cat /scratch/f; grep ' /scratch ' /proc/self/mountinfo",
    );
    let mut l = out.lines();
    assert_eq!(l.next(), Some("1777"));
    assert_eq!(l.next(), Some("x"));
    let m = &parse_mountinfo(l.next().unwrap())[0];
    assert_eq!(m.fstype, "tmpfs");
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(has_opt(&m.opts, o), "{}", m.opts);
    }
    assert!(has_opt(&m.sopts, "size=1024k"), "{}", m.sopts);
}

/// `tmpcopyup`, which podman puts on the tmpfs it mounts over /tmp, /run and /var/tmp for
/// `podman run --read-only`: the tmpfs starts with a copy of the directory it covers (files,
/// directories, symlinks, modes, owners), and `ro` applies after the copy.
#[test]
fn tmpfs_copy_up() {
    require_root!();
    use std::os::unix::fs::{chown, symlink, PermissionsExt};
    let h = Hako::new();
    let mut b = Bundle::new();
    let seed = b.rootfs().join("seed");
    fs::create_dir_all(seed.join("sub")).unwrap();
    fs::write(seed.join("sub/file"), "from the image\n").unwrap();
    fs::set_permissions(seed.join("sub/file"), fs::Permissions::from_mode(0o640)).unwrap();
    chown(seed.join("sub"), Some(65534), Some(65534)).unwrap();
    symlink("sub/file", seed.join("link")).unwrap();
    b.add_mount(json!({
        "destination": "/seed", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "tmpcopyup", "ro"]
    }));
    let out = h.run_sh(
        &mut b,
        "cat /seed/link; readlink /seed/link; stat -c '%a %u' /seed/sub/file /seed/sub; \
         touch /seed/new 2>/dev/null || echo read-only; grep ' /seed ' /proc/self/mountinfo",
    );
    let mut l = out.lines();
    assert_eq!(l.next(), Some("from the image"));
    assert_eq!(l.next(), Some("sub/file"));
    assert_eq!(l.next(), Some("640 0"));
    assert_eq!(l.next(), Some("755 65534"));
    assert_eq!(l.next(), Some("read-only"));
    let m = &parse_mountinfo(l.next().unwrap())[0];
    assert_eq!(m.fstype, "tmpfs");
    assert!(has_opt(&m.opts, "ro"), "{}", m.opts);
    // The image's directory is untouched underneath.
    assert!(!seed.join("new").exists());
}

#[test]
fn mount_destination_symlink_stays_in_rootfs() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let name = format!("hako-escape-{}", unique());
    std::os::unix::fs::symlink("/", b.rootfs().join("escape")).unwrap();
    b.add_mount(json!({
        "destination": format!("/escape/tmp/{name}"), "type": "tmpfs", "source": "tmpfs",
        "options": ["size=1m"]
    }));
    let id = h.new_id();
    b.set_sh(&format!("grep -c ' /tmp/{name} ' /proc/self/mountinfo"));
    let o = h.run(&id, &b);
    let on_host = std::path::Path::new("/tmp").join(&name);
    let escaped = on_host.exists();
    if escaped {
        let _ = fs::remove_dir(&on_host);
    }
    assert!(
        !escaped,
        "mount destination escaped the rootfs to {}",
        on_host.display()
    );
    o.assert_ok();
    assert_eq!(o.stdout, "1\n");
    assert!(b.rootfs().join("tmp").join(&name).is_dir());
}

#[test]
fn masked_paths() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let masked_dir = b.rootfs().join("masked-dir");
    fs::create_dir(&masked_dir).unwrap();
    fs::write(masked_dir.join("secret"), "secret\n").unwrap();
    fs::write(b.rootfs().join("masked-file"), "secret\n").unwrap();
    let mut masked = b.config["linux"]["maskedPaths"].as_array().unwrap().clone();
    masked.push(json!("/masked-dir"));
    masked.push(json!("/masked-file"));
    masked.push(json!("/does-not-exist"));
    b.config["linux"]["maskedPaths"] = json!(masked);
    let out = h.run_sh(
        &mut b,
        "echo kcore=$(head -c 16 /proc/kcore | wc -c); echo keys=$(cat /proc/keys | wc -c); \
         echo dir=$(ls /masked-dir); echo file=$(cat /masked-file); \
         echo fw=$(ls /sys/firmware); \
         echo w=$(echo x > /masked-file 2>&1 && echo WROTE); \
         touch /masked-dir/new 2>/dev/null && echo TOUCHED; true",
    );
    assert!(out.contains("kcore=0\n"), "{out}");
    assert!(out.contains("keys=0\n"), "{out}");
    assert!(out.contains("dir=\n"), "{out}");
    assert!(out.contains("file=\n"), "{out}");
    assert!(out.contains("fw=\n"), "{out}");
    assert!(!out.contains("TOUCHED"), "{out}");
    assert_eq!(read(b.rootfs().join("masked-file")), "secret\n");
}

/// runc's mask.bats, as it runs them: the default config (read-only root, runc's capabilities,
/// no CAP_DAC_OVERRIDE), commands through `exec`. A masked file reads empty and cannot be
/// removed or unmounted; a masked directory lists empty (a mode-000 tmpfs made `ls` fail) and
/// cannot be written, removed or unmounted.
#[test]
fn masked_paths_as_runc_mask_bats() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::sh("sleep 100");
    fs::create_dir(b.rootfs().join("testdir")).unwrap();
    fs::write(b.rootfs().join("testfile"), "Forbidden information!\n").unwrap();
    let mut masked = b.config["linux"]["maskedPaths"].as_array().unwrap().clone();
    masked.push(json!("/testdir"));
    masked.push(json!("/testfile"));
    b.config["linux"]["maskedPaths"] = json!(masked);
    let id = h.new_id();
    h.run_with(&id, &b, &["-d"]).assert_ok();
    let exec = |args: &[&str]| {
        let mut v = vec!["exec", id.as_str()];
        v.extend_from_slice(args);
        let o = h.cmd(&v);
        (o.code, format!("{}{}", o.stdout, o.stderr))
    };
    assert_eq!(exec(&["cat", "/testfile"]), (0, String::new()));
    let (code, out) = exec(&["rm", "-f", "/testfile"]);
    assert!(code != 0 && out.contains("Read-only file system"), "{out}");
    let (code, out) = exec(&["umount", "/testfile"]);
    assert!(
        code != 0 && out.contains("Operation not permitted"),
        "{out}"
    );
    assert_eq!(exec(&["ls", "/testdir"]), (0, String::new()));
    let (code, out) = exec(&["touch", "/testdir/foo"]);
    assert!(code != 0 && out.contains("Read-only file system"), "{out}");
    let (code, out) = exec(&["rm", "-rf", "/testdir"]);
    assert!(code != 0 && out.contains("Read-only file system"), "{out}");
    let (code, out) = exec(&["umount", "/testdir"]);
    assert!(
        code != 0 && out.contains("Operation not permitted"),
        "{out}"
    );
    assert_eq!(
        read(b.rootfs().join("testfile")),
        "Forbidden information!\n"
    );
}

/// CVE-2019-19921 class: an image whose /proc or /sys is a symlink would get procfs or sysfs
/// mounted wherever it points, away from the masked and read-only paths meant for it. Refused
/// with runc's words, and nothing is created where the link points.
#[test]
fn proc_or_sys_symlink_is_refused() {
    require_root!();
    let h = Hako::new();
    for (dir, fs_name) in [("proc", "proc"), ("sys", "sysfs")] {
        let b = Bundle::new();
        fs::remove_dir(b.rootfs().join(dir)).unwrap();
        std::os::unix::fs::symlink("/symlink", b.rootfs().join(dir)).unwrap();
        let id = h.new_id();
        let o = h.run(&id, &b);
        o.assert_err();
        if !testing_runc() || dir == "proc" {
            // (runc on cgroup v1 may fail /sys earlier, with other words: its bats test too.)
            assert!(
                o.stderr.contains("must be mounted on ordinary directory")
                    && o.stderr.contains(fs_name),
                "{o:?}"
            );
        }
        assert!(
            !b.rootfs().join("symlink").exists(),
            "{dir}: followed the link"
        );
        assert!(!h.state_dir(&id).exists());
        assert!(mounts_under(b.path()).is_empty(), "leftover mounts");
    }
}

#[test]
fn readonly_paths() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    b.config["root"]["readonly"] = json!(false);
    fs::create_dir(b.rootfs().join("rodir")).unwrap();
    let mut ro = b.config["linux"]["readonlyPaths"]
        .as_array()
        .unwrap()
        .clone();
    ro.push(json!("/rodir"));
    b.config["linux"]["readonlyPaths"] = json!(ro);
    let out = h.run_sh(
        &mut b,
        "{ echo 1 > /proc/sys/kernel/shmmni; } 2>&1; touch /rodir/x 2>&1; touch /rwfile && echo rw-ok; \
         grep -E ' /proc/sys | /rodir ' /proc/self/mountinfo",
    );
    assert_eq!(out.matches("Read-only file system").count(), 2, "{out}");
    assert!(out.contains("rw-ok"));
    for l in out.lines().filter(|l| l.contains(" - ")) {
        let m = &parse_mountinfo(l)[0];
        assert!(has_opt(&m.opts, "ro"), "{l}");
    }
    assert!(!b.rootfs().join("rodir/x").exists());
}

#[test]
fn rootfs_propagation() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let script = "awk '$5 == \"/\"' /proc/self/mountinfo";
    for (prop, field) in [("shared", "shared:"), ("private", "")] {
        b.config["linux"]["rootfsPropagation"] = json!(prop);
        let line = h.run_sh(&mut b, script);
        let mi = parse_mountinfo(&line);
        assert_eq!(mi.len(), 1, "{line}");
        let m = &mi[0];
        if field.is_empty() {
            assert!(
                !m.optional.contains("shared:") && !m.optional.contains("master:"),
                "{prop}: {line}"
            );
        } else if testing_runc() && !m.optional.contains(field) {
            // runc 1.1 applies rootfsPropagation before pivot_root (fixed in runc 1.2).
            eprintln!("runc: rootfsPropagation {prop} not visible on /: {line}");
        } else {
            assert!(m.optional.contains(field), "{prop}: {line}");
        }
    }
}

#[test]
fn container_mounts_not_visible_on_host() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    b.out_dir();
    b.set_sh("sleep 100");
    let id = h.new_id();
    h.run_with(&id, &b, &["-d"]).assert_ok();
    assert_eq!(h.status(&id), "running");
    // The container does have mounts from the bundle, in its own namespace.
    let pid = h.pid(&id);
    let theirs = read(format!("/proc/{pid}/mountinfo"));
    assert!(theirs.contains(" /out "), "{theirs}");
    let leaked = mounts_under(b.path());
    assert!(
        leaked.is_empty(),
        "container mounts on the host: {leaked:?}"
    );
    h.delete_force(&id).assert_ok();
    assert!(mounts_under(b.path()).is_empty());
}

fn dev_entry(out: &str, name: &str) -> String {
    out.lines()
        .find(|l| l.split(' ').next() == Some(name))
        .unwrap_or_else(|| panic!("{name} missing in /dev: {out}"))
        .to_string()
}

#[test]
fn default_devices_and_symlinks() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let out = h.run_sh(
        &mut b,
        "cd /dev && for f in null zero full random urandom tty; do stat -c '%n %F %t:%T %a' $f; done; \
         for l in fd stdin stdout stderr ptmx; do echo \"$l -> $(readlink $l)\"; done; \
         echo hi > /dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c",
    );
    for (name, majmin) in [
        ("null", "1:3"),
        ("zero", "1:5"),
        ("full", "1:7"),
        ("random", "1:8"),
        ("urandom", "1:9"),
        ("tty", "5:0"),
    ] {
        let e = dev_entry(&out, name);
        assert_eq!(e, format!("{name} character special file {majmin} 666"));
    }
    for (l, t) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        assert!(out.contains(&format!("{l} -> {t}\n")), "{l}: {out}");
    }
    assert!(out.ends_with("4\n4\n"), "{out}");
}

#[test]
fn linux_devices_created_and_cgroup_enforced() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    // /dev/kmsg (1:11) is not among the default allowed devices. Opening it write-only needs
    // no capability, so only the device cgroup decides (nothing is written).
    b.config["linux"]["devices"] = json!([
        {"path": "/dev/kmsg-alias", "type": "c", "major": 1, "minor": 11, "fileMode": 0o640,
         "uid": 0, "gid": 0},
        {"path": "/dev/sub/null2", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600,
         "uid": 1000, "gid": 1000}
    ]);
    let script = "stat -c '%n %F %t:%T %a %u:%g' /dev/kmsg-alias /dev/sub/null2; \
                  ( : > /dev/kmsg-alias ) 2>/dev/null && echo kmsg-open || echo kmsg-denied";
    let out = h.run_sh(&mut b, script);
    assert!(
        out.contains("/dev/kmsg-alias character special file 1:b 640 0:0\n"),
        "{out}"
    );
    assert!(
        out.contains("/dev/sub/null2 character special file 1:3 600 1000:1000\n"),
        "{out}"
    );
    assert!(
        out.contains("kmsg-denied"),
        "device cgroup did not deny 1:11: {out}"
    );

    // Allowed explicitly: now it opens.
    b.config["linux"]["resources"]["devices"] = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "rwm"}
    ]);
    let out = h.run_sh(&mut b, script);
    assert!(out.contains("kmsg-open"), "{out}");
}

#[test]
fn no_pivot() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::sh("cat /marker; awk '$5 == \"/\"' /proc/self/mountinfo | wc -l; hostname");
    fs::write(b.rootfs().join("marker"), "in rootfs\n").unwrap();
    let o = h.run_with(&h.new_id(), &b, &["--no-pivot"]);
    o.assert_ok();
    assert_eq!(o.stdout, "in rootfs\n1\nrunc\n");
}

/// `--no-pivot` keeps the host's mounts in the container's mount namespace. The kernel lets a
/// user namespace mount a new procfs only where a full (unmasked) one is visible anywhere in the
/// mount namespace, so the host's /proc must not stay there: with it, `unshare -mrpf` + `mount -t
/// proc` gets a /proc without the container's masks. runc 1.1 detaches it (msMoveRoot).
#[test]
fn no_pivot_leaves_no_full_proc_behind() {
    require_root!();
    let h = Hako::new();
    let mut b =
        Bundle::sh("unshare -mrpf sh -c 'mount -t proc none /proc && echo MOUNTED' 2>&1; true");
    // unshare -r maps root: the kernel wants CAP_SETFCAP at unshare time (podman grants it).
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_SETFCAP"));
    }
    for args in [&["--no-pivot"][..], &[]] {
        let o = h.run_with(&h.new_id(), &b, args);
        o.assert_ok();
        assert!(
            o.stdout.contains("permission denied") && !o.stdout.contains("MOUNTED"),
            "{args:?}: {o:?}"
        );
    }
    // The control: with nothing masked in the container's own /proc, the same mount works, so
    // the refusal above is the kernel's rule at work, not a failing probe.
    b.config["linux"]["maskedPaths"] = json!([]);
    b.config["linux"]["readonlyPaths"] = json!([]);
    let o = h.run_with(&h.new_id(), &b, &["--no-pivot"]);
    o.assert_ok();
    assert!(o.stdout.contains("MOUNTED"), "{o:?}");
}

/// A read-only `/dev` in `mounts[]` still gets its mount points (/dev/pts, /dev/shm, /dev/mqueue),
/// device nodes and symlinks: it turns read-only only after all of them are made, as in runc.
#[test]
fn readonly_dev_mount_still_gets_pts_shm_and_devices() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::sh(
        "grep -E ' /dev(/pts|/shm|/mqueue)? ' /proc/self/mountinfo; \
         test -c /dev/null && echo x > /dev/null && echo null-ok; test -c /dev/zero && echo zero-ok; \
         test -L /dev/fd && echo fd-link; touch /dev/x 2>&1; true",
    );
    for m in b.config["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/dev" {
            m["options"].as_array_mut().unwrap().push(json!("ro"));
        }
    }
    let id = h.new_id();
    let o = h.run(&id, &b);
    o.assert_ok();
    let mounts = parse_mountinfo(&o.stdout);
    let dev = find(&mounts, "/dev");
    assert!(has_opt(&dev.opts, "ro"), "{}", o.stdout);
    assert_eq!(find(&mounts, "/dev/pts").fstype, "devpts");
    assert_eq!(find(&mounts, "/dev/shm").fstype, "tmpfs");
    assert_eq!(find(&mounts, "/dev/mqueue").fstype, "mqueue");
    for want in ["null-ok", "zero-ok", "fd-link", "Read-only file system"] {
        assert!(o.stdout.contains(want), "{want}: {}", o.stdout);
    }
}

#[test]
fn proc_is_the_containers() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    // Only the shell and ps are visible in the private pid namespace.
    let out = h.run_sh(&mut b, "ls /proc | grep -c '^[0-9]'");
    let n: u32 = out.trim().parse().unwrap();
    assert!(n <= 3, "{n} processes visible");
}

/// runtime-spec 1.2: a relative `destination` is taken relative to the container's root, as if
/// it started with `/` (runc does the same), whatever the runtime's or the process's cwd.
#[test]
fn relative_mount_destination() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    b.config["process"]["cwd"] = json!("/etc");
    b.add_mount(json!({
        "destination": "rel/scratch", "type": "tmpfs", "source": "tmpfs",
        "options": ["size=1m"]
    }));
    b.host_dir("bound", "bound");
    let out = h.run_sh(
        &mut b,
        "grep -cE ' /rel/scratch | /bound ' /proc/self/mountinfo",
    );
    assert_eq!(out, "2\n");
    assert!(!b.rootfs().join("etc/rel").exists());
    assert!(b.rootfs().join("rel/scratch").is_dir());
}

/// runtime-tools' linux_rootfs_propagation, inside a privileged container with a writable root:
/// `shared`: a recursive bind of / (a peer of /) receives a mount made afterwards elsewhere
/// under /; `slave` and `private`: it does not; `unbindable`: binding / fails with EINVAL,
/// while the container itself (its maskedPaths bound from /dev/null, its /sys/fs/cgroup)
/// still starts, as in runc 1.3. Also in a user namespace (rootless podman's root).
#[test]
fn rootfs_propagation_as_runtime_tools_checks() {
    require_root!();
    let h = Hako::new();
    let script = "mkdir /target /mnt1 /test && touch /test/example && \
        if mount --rbind / /target 2>/tmp/err; then echo bind=ok; else echo bind=failed; cat /tmp/err; fi; \
        mount --rbind /test /mnt1 && if test -e /target/mnt1/example; then echo seen; else echo unseen; fi";
    for userns in [false, true] {
        for (prop, want) in [
            ("shared", "\nseen"),
            ("slave", "unseen"),
            ("private", "unseen"),
            ("unbindable", "Invalid argument"),
        ] {
            let mut b = Bundle::new();
            b.config["root"]["readonly"] = json!(false);
            b.config["linux"]["rootfsPropagation"] = json!(prop);
            for set in ["bounding", "effective", "permitted"] {
                b.config["process"]["capabilities"][set]
                    .as_array_mut()
                    .unwrap()
                    .push(json!("CAP_SYS_ADMIN"));
            }
            if userns {
                b.in_user_namespace_of(test_user());
                let _ = std::process::Command::new("chmod")
                    .args(["-R", "a+rwX", b.rootfs().to_str().unwrap()])
                    .status();
            }
            let id = h.new_id();
            b.set_sh(script);
            let o = h.run(&id, &b);
            let all = format!("{}{}", o.stdout, o.stderr);
            assert!(all.contains(want), "{prop} (userns {userns}): {o:?}");
            if prop != "unbindable" {
                assert!(
                    o.stdout.contains("bind=ok"),
                    "{prop} (userns {userns}): {o:?}"
                );
            } else {
                assert!(
                    o.stdout.contains("bind=failed"),
                    "{prop} (userns {userns}): {o:?}"
                );
            }
        }
    }
}

/// Masked directories share one read-only tmpfs (runc 1.3.6: Kubernetes masks a sysfs
/// directory per CPU, and a superblock each is costly): every masked directory's mountinfo
/// line names the same device (major:minor); each lists empty and refuses writes; a masked
/// file is still /dev/null.
#[test]
fn masked_directories_share_one_tmpfs() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let dirs = [
        "/proc/acpi",
        "/sys/firmware",
        "/sys/devices/system/cpu/cpu0",
        "/sys/kernel",
    ];
    let mut masked: Vec<Value> = dirs.iter().map(|d| json!(d)).collect();
    masked.push(json!("/proc/version"));
    b.config["linux"]["maskedPaths"] = json!(masked);
    let out = h.run_sh(
        &mut b,
        "cat /proc/self/mountinfo; for d in /sys/kernel /sys/firmware; do \
         echo \"ls $d: $(ls -A $d | wc -l)\"; touch $d/x 2>/dev/null || echo \"$d: refused\"; done; \
         stat -c 'version %t:%T' /proc/version",
    );
    // (mount point, major:minor, fstype, options) of the last mount at each point.
    let line_of = |point: &str| {
        out.lines().rev().find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            (f.get(4) == Some(&point)).then(|| {
                (
                    f[2].to_string(),
                    right.split(' ').next().unwrap_or("").to_string(),
                    f[5].to_string(),
                )
            })
        })
    };
    let mut devs = Vec::new();
    for d in dirs {
        if !std::path::Path::new(d).exists() {
            continue;
        }
        let (dev, fstype, opts) = line_of(d).unwrap_or_else(|| panic!("{d} not masked: {out}"));
        assert_eq!(fstype, "tmpfs", "{d}: {out}");
        assert!(has_opt(&opts, "ro"), "{d}: {out}");
        devs.push((d, dev));
    }
    assert!(devs.len() >= 3, "{devs:?}\n{out}");
    assert!(
        devs.iter().all(|(_, dev)| *dev == devs[0].1),
        "masked directories on different superblocks: {devs:?}"
    );
    for d in ["/sys/kernel", "/sys/firmware"] {
        assert!(out.contains(&format!("ls {d}: 0")), "{out}");
        assert!(out.contains(&format!("{d}: refused")), "{out}");
    }
    assert!(out.contains("version 1:3"), "{out}");
}

/// Bind targets reached through dangling symlinks in the image are created inside the rootfs,
/// where the links lead when resolved with the rootfs as `/` (runc 1.3's MkdirAllInRoot), and
/// never on the host: an absolute link to a missing directory, a relative one climbing above
/// `/`, a link as a middle component, a trailing link to a missing file for a file bind.
#[test]
fn bind_targets_through_dangling_symlinks_stay_inside() {
    require_root!();
    dangling_symlink_targets(false);
    dangling_symlink_targets(true);
}

fn dangling_symlink_targets(userns: bool) {
    let h = Hako::new();
    let mut b = Bundle::new();
    if userns {
        b.in_user_namespace_of(test_user());
    }
    let u = unique().replace('-', "_");
    let rootfs = b.rootfs();
    let link = |name: &str, to: &str| {
        std::os::unix::fs::symlink(to, rootfs.join(name)).unwrap();
    };
    let (m1, m2, m3, m4) = (
        format!("m1-{u}"),
        format!("m2-{u}"),
        format!("m3-{u}"),
        format!("m4-{u}"),
    );
    link("l1", &format!("/{m1}/a/b"));
    link("l2", &format!("../../../../../{m2}"));
    link("l3", &format!("/{m3}"));
    link("l4", &format!("/{m4}/file"));
    let (m5, m6) = (format!("m5-{u}"), format!("m6-{u}"));
    link("l5", &m5);
    std::fs::create_dir(rootfs.join("deep")).unwrap();
    link("deep/l6", &format!("../../../{m6}/x"));
    let dir = b.path().join("src");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("seen"), "bound\n").unwrap();
    let file = b.path().join("single");
    std::fs::write(&file, "a file\n").unwrap();
    for dest in ["/l1", "/l2", "/l3/sub/dir", "/l5", "/deep/l6"] {
        b.add_mount(
            json!({"destination": dest, "type": "bind", "source": dir, "options": ["rbind"]}),
        );
    }
    b.add_mount(json!({"destination": "/l4", "type": "bind", "source": file, "options": ["bind"]}));
    if userns {
        let _ = std::process::Command::new("chmod")
            .args(["-R", "a+rwX", b.path().to_str().unwrap()])
            .status();
    }
    let out = h.run_sh(
        &mut b,
        &format!(
            "cat /{m1}/a/b/seen /{m2}/seen /{m3}/sub/dir/seen /{m4}/file /{m5}/seen /{m6}/x/seen"
        ),
    );
    assert_eq!(out, "bound\nbound\nbound\na file\nbound\nbound\n");
    assert!(rootfs.join(&m5).is_dir() && rootfs.join(&m6).join("x").is_dir());
    assert!(rootfs.join(&m1).join("a/b").is_dir());
    assert!(rootfs.join(&m2).is_dir());
    assert!(rootfs.join(&m3).join("sub/dir").is_dir());
    assert!(rootfs.join(&m4).join("file").is_file());
    let outside: Vec<_> = [&m1, &m2, &m3, &m4, &m5, &m6]
        .iter()
        .flat_map(|m| {
            [
                std::path::PathBuf::from("/").join(m),
                b.path().join(m),
                std::path::PathBuf::from("/tmp").join(m),
            ]
        })
        .filter(|p| p.exists())
        .collect();
    assert!(
        outside.is_empty(),
        "created outside the rootfs: {outside:?}"
    );
}
