//! Bind mounts into a user-namespace container whose sources the container's (mapped) root cannot
//! reach but the runtime can: runc 1.1 opens them as the runtime, inside the container's mount
//! namespace, and mounts from the fds.

use std::os::unix::fs::PermissionsExt;

use hako_tests::*;

const MAPPED: u32 = 200000;

fn userns_bundle(script: &str) -> Bundle {
    let mut b = Bundle::sh(script);
    b.in_user_namespace(MAPPED, MAPPED)
        .chown_rootfs(MAPPED, MAPPED);
    b
}

#[test]
fn bind_sources_behind_a_directory_the_mapped_root_cannot_enter() {
    require_root!();
    let h = Hako::new();
    let mut b = userns_bundle(
        "cat /data/file; cat /one-file; grep -E ' /(data|ro|one-file) ' /proc/self/mountinfo | \
         cut -d' ' -f5,6; touch /ro/x 2>/dev/null && echo ro-writable || echo ro-refused",
    );
    // <bundle>/private is root's, mode 0700: the container's root (uid 200000 on the host) cannot
    // even look inside; what is bound from it is world-readable.
    let private = b.path().join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let data = private.join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(data.join("file"), "from-private-dir\n").unwrap();
    std::fs::write(private.join("single"), "single-file\n").unwrap();
    std::fs::set_permissions(
        private.join("single"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    b.add_mount(
        json!({"destination": "/data", "type": "bind", "source": data,
                       "options": ["rbind"]}),
    );
    // Relative to the bundle, read-only.
    b.add_mount(
        json!({"destination": "/ro", "type": "bind", "source": "private/data",
                       "options": ["rbind", "ro"]}),
    );
    b.add_mount(json!({"destination": "/one-file", "type": "bind",
                       "source": private.join("single"), "options": ["bind"]}));
    let out = h.run(&h.new_id(), &b);
    out.assert_ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "from-private-dir", "{out:#?}");
    assert_eq!(lines[1], "single-file", "{out:#?}");
    for (dest, opts) in [("/data", "rw"), ("/ro", "ro"), ("/one-file", "rw")] {
        assert!(
            lines.iter().any(
                |l| *l == format!("{dest} {opts}") || l.starts_with(&format!("{dest} {opts},"))
            ),
            "{dest} not mounted {opts}: {out:#?}"
        );
    }
    assert_eq!(lines.last(), Some(&"ro-refused"), "{out:#?}");
    // Nothing is left mounted on the host.
    assert!(
        mounts_under(b.path()).is_empty(),
        "{:?}",
        mounts_under(b.path())
    );
}

#[test]
fn missing_bind_source_in_a_user_namespace_is_one_clear_error() {
    require_root!();
    let h = Hako::new();
    let mut b = userns_bundle("true");
    let missing = b.path().join("no-such-dir");
    b.add_mount(
        json!({"destination": "/data", "type": "bind", "source": missing,
                       "options": ["rbind"]}),
    );
    let id = h.new_id();
    let o = h.run(&id, &b);
    o.assert_err();
    assert!(o.stderr.contains("no-such-dir"), "{o:#?}");
    assert!(
        o.stderr
            .to_lowercase()
            .contains("no such file or directory"),
        "{o:#?}"
    );
    assert!(!h.state_dir(&id).exists());
    assert!(
        processes_using(b.path()).is_empty(),
        "{:?}",
        processes_using(b.path())
    );
}

/// Unmounts a host mount made by a test, also when the test fails.
struct HostMount(std::path::PathBuf);

impl Drop for HostMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn bind_of_a_read_only_host_mount_stays_locked_read_only() {
    require_root!();
    let h = Hako::new();
    let mut b = userns_bundle(
        "mount -o remount,bind,rw /romnt 2>/dev/null && echo remounted || echo locked; \
         touch /romnt/new 2>/dev/null && echo wrote || echo read-only",
    );
    let caps = json!(["CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE"]);
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set] = caps.clone();
    }
    // A tmpfs read-only only at the mount level (its superblock is writable), inside a directory
    // the container's root cannot enter.
    let private = b.path().join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let ro = private.join("romnt");
    std::fs::create_dir(&ro).unwrap();
    use nix::mount::{mount, MsFlags};
    mount(
        Some("tmpfs"),
        &ro,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("size=1m,mode=1777"),
    )
    .unwrap();
    let _guard = HostMount(ro.clone());
    mount(
        None::<&str>,
        &ro,
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .unwrap();
    b.add_mount(
        json!({"destination": "/romnt", "type": "bind", "source": ro,
                       "options": ["rbind"]}),
    );
    let out = h.run(&h.new_id(), &b);
    out.assert_ok();
    // The kernel locked the flag when it copied the host's mounts for the user namespace; a bind
    // of that copy keeps the lock, so the container's root cannot make it writable.
    assert_eq!(out.stdout, "locked\nread-only\n", "{out:#?}");
    assert!(!ro.join("new").exists());
}

/// Mounts are made in order, each seeing the ones before it (runc 1.2+): a bind whose source
/// lies inside an earlier mount of the same container — its own tmpfs, its own bind of a host
/// directory, both reached through the bundle's rootfs path — binds what that mount shows,
/// not the directory underneath; with and without a user namespace.
#[test]
fn bind_sources_see_earlier_mounts_of_the_container() {
    require_root!();
    let h = Hako::new();
    for userns in [false, true] {
        let script = "echo fresh > /a/f && cat /b/f; cat /d/g; ls /c/under 2>&1; ls /b/under 2>&1";
        let mut b = if userns {
            userns_bundle(script)
        } else {
            Bundle::sh(script)
        };
        let rootfs = b.rootfs();
        // Underneath the mounts, in the image: what a bind that ignored them would show.
        for d in ["a", "b", "c", "d"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::write(rootfs.join("a/under"), "image\n").unwrap();
        std::fs::write(rootfs.join("c/under"), "image\n").unwrap();
        let host = b.path().join("host");
        std::fs::create_dir(&host).unwrap();
        std::fs::write(host.join("g"), "from-host\n").unwrap();
        b.add_mount(
            json!({"destination": "/a", "type": "tmpfs", "source": "tmpfs",
                           "options": ["mode=1777"]}),
        );
        b.add_mount(
            json!({"destination": "/b", "type": "bind", "source": rootfs.join("a"),
                           "options": ["rbind"]}),
        );
        b.add_mount(json!({"destination": "/c", "type": "bind", "source": host,
                           "options": ["rbind"]}));
        b.add_mount(
            json!({"destination": "/d", "type": "bind", "source": rootfs.join("c"),
                           "options": ["rbind"]}),
        );
        if userns {
            let _ = std::process::Command::new("chown")
                .args(["-R", &format!("{MAPPED}:{MAPPED}")])
                .arg(b.path().join("host"))
                .status();
        }
        let id = h.new_id();
        let o = h.run(&id, &b);
        assert!(
            o.stdout.contains("fresh\n"),
            "userns {userns}: the tmpfs not seen: {o:?}"
        );
        assert!(
            o.stdout.contains("from-host\n"),
            "userns {userns}: the bind not seen: {o:?}"
        );
        assert!(
            !o.stdout.contains("\n/c/under") && !o.stdout.contains("\n/b/under"),
            "userns {userns}: {o:?}"
        );
        assert!(!o.stdout.contains("image"), "userns {userns}: {o:?}");
    }
}
