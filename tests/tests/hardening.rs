//! One regression test per known container-escape class (docs/security.md). Each one asserts the
//! effect an attack would have and fails on a runtime without the defence.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use hako_tests::*;

const T: Duration = Duration::from_secs(10);

/// A hook running `/bin/sh -c SCRIPT` with the host's shell.
fn sh_hook(script: &str) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", script]})
}

/// Class 1 — CVE-2019-5736: a container process must not reach the runtime binary through
/// /proc/<pid>/exe of a process that is still the runtime (the waiting init of a created
/// container). A readable exe can be reopened for writing once the runtime exits.
#[test]
fn runtime_binary_unreachable_through_proc_exe() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    b.set_args(&["sleep", "100"]);
    let id = h.new_id();
    h.create(&id, &b).assert_ok();
    let probe = "cat /proc/1/exe >/dev/null 2>&1 && echo READ-EXE; \
                 readlink /proc/1/exe >/dev/null 2>&1 && echo READLINK-EXE; \
                 (exec 3</proc/1/exe) 2>/dev/null && echo OPEN-EXE; echo done";
    let o = h.cmd(&["exec", &id, "sh", "-c", probe]);
    o.assert_ok();
    if testing_runc() {
        // runc's waiting init runs from a sealed memfd copy: reading it exposes nothing.
        eprintln!("runc: {}", o.stdout);
    } else {
        assert_eq!(o.stdout, "done\n", "the runtime's exe is reachable: {o:#?}");
    }
    // Control: once the container's own program runs, /proc/1/exe is readable as usual, so
    // the probe above can see an exe when there is one to see.
    h.start(&id).assert_ok();
    let o = h.cmd(&["exec", &id, "sh", "-c", probe]);
    assert!(o.stdout.contains("READ-EXE"), "{o:#?}");
}

/// Class 2a — CVE-2024-21626: `process.cwd` through a leaked fd (`/proc/self/fd/N`) must never leave
/// the process outside the rootfs.
#[test]
fn cwd_through_proc_self_fd_never_escapes() {
    require_root!();
    let h = Hako::new();
    for n in 3..=8 {
        let mut b = Bundle::new();
        b.config["process"]["cwd"] = json!(format!("/proc/self/fd/{n}"));
        b.set_args(&["sh", "-c", "readlink /proc/self/cwd; ls .. | head -3"]);
        let o = h.run(&h.new_id(), &b);
        if o.ok() {
            assert!(
                !o.stdout.contains("unreachable") && !o.stdout.contains("hako-test"),
                "fd {n}: cwd outside the rootfs: {o:#?}"
            );
        } else {
            assert!(!o.stderr.is_empty(), "fd {n}: failed without an error");
        }
    }
}

/// Class 2b — No fd of the runtime reaches the container, even one the caller leaked to it without
/// CLOEXEC (a directory fd on the host's `/` would be a way out).
#[test]
fn inherited_host_directory_fd_not_in_container() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    b.set_args(&["sh", "-c", "ls /proc/self/fd | tr '\\n' ' '"]);
    b.save();
    let host_root: std::os::fd::OwnedFd = fs::File::open("/").unwrap().into();
    let o = h.cmd_opts(
        &["run", "--bundle", b.path().to_str().unwrap(), &h.new_id()],
        CmdOpts {
            fds: vec![(host_root, 7)],
            ..Default::default()
        },
    );
    o.assert_ok();
    // 0-2 and ls's own directory fd (3).
    assert_eq!(o.stdout.trim(), "0 1 2 3", "{o:#?}");
}

/// Class 3 — CVE-2021-30465 class: readonlyPaths and maskedPaths that a symlink, swapped in during
/// setup (by a createRuntime hook, after the mounts), points elsewhere are resolved inside the
/// rootfs. A runtime resolving on the host would protect the host's /etc in its own mount
/// namespace and leave the container's writable.
#[test]
fn symlink_swapped_in_during_setup_resolves_inside_rootfs() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    b.config["root"]["readonly"] = json!(false);
    let rootfs = b.rootfs();
    fs::create_dir_all(rootfs.join("data")).unwrap();
    fs::write(rootfs.join("data2"), "placeholder").unwrap();
    let r = rootfs.display();
    b.config["hooks"] = json!({"createRuntime": [sh_hook(&format!(
        "rm -rf {r}/data {r}/data2; ln -s /etc {r}/data; ln -s /etc/passwd {r}/data2"
    ))]});
    b.config["linux"]["readonlyPaths"] = json!(["/data"]);
    b.config["linux"]["maskedPaths"] = json!(["/data2"]);
    let out = h.run_sh(
        &mut b,
        "touch /etc/new 2>/dev/null && echo WROTE-ETC; echo passwd=$(cat /etc/passwd | wc -c)",
    );
    assert!(!out.contains("WROTE-ETC"), "readonlyPaths escaped: {out}");
    assert!(out.contains("passwd=0"), "maskedPaths escaped: {out}");
    assert!(!read("/etc/passwd").is_empty());
}

/// Class 4a — CVE-2025-31133: masking binds a verified /dev/null (char 1:3) from the host, never the
/// container's own /dev/null, which a hook (or the image) may have replaced.
#[test]
fn masked_paths_use_a_verified_dev_null() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let rootfs = b.rootfs();
    fs::write(rootfs.join("etc/secret"), "SECRET").unwrap();
    let r = rootfs.display();
    // createContainer runs in the container's mount namespace: /dev is the container's tmpfs.
    b.config["hooks"] = json!({"createContainer": [sh_hook(&format!(
        "rm -f {r}/dev/null; echo PLANTED > {r}/dev/null"
    ))]});
    let mut masked = b.config["linux"]["maskedPaths"].as_array().unwrap().clone();
    masked.push(json!("/etc/secret"));
    b.config["linux"]["maskedPaths"] = json!(masked);
    let out = h.run_sh(
        &mut b,
        "echo secret=$(cat /etc/secret); echo kcore=$(head -c 8 /proc/kcore); \
         stat -c 'type=%F %t:%T' /etc/secret",
    );
    if testing_runc() && !out.contains("type=character special file 1:3") {
        // runc 1.1.5 predates the fix: it masks with the container's /dev/null.
        eprintln!("runc: {out:?}");
        return;
    }
    assert!(out.contains("secret=\n"), "{out}");
    assert!(out.contains("kcore=\n"), "{out}");
    assert!(out.contains("type=character special file 1:3"), "{out}");
}

/// Class 4b — CVE-2025-52565: the console is bound onto /dev/console only if that is a plain file or
/// device of the container's /dev; a symlink planted there is refused, not followed.
#[test]
fn dev_console_symlink_is_refused() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    b.config["process"]["terminal"] = json!(true);
    b.config["root"]["readonly"] = json!(false);
    let rootfs = b.rootfs();
    fs::write(rootfs.join("etc/target"), "ORIG").unwrap();
    let r = rootfs.display();
    b.config["hooks"] = json!({"createContainer": [sh_hook(&format!(
        "rm -f {r}/dev/console; ln -s /etc/target {r}/dev/console"
    ))]});
    b.set_args(&["sh", "-c", "stat -c '%F' /etc/target; cat /etc/target"]);
    let sock = ConsoleSocket::listen(h.scratch());
    let id = h.new_id();
    let o = h.create_with(&id, &b, &["--console-socket", sock.path.to_str().unwrap()]);
    if o.ok() {
        let (_, fds) = sock.recv().expect("console");
        h.start(&id).assert_ok();
        let out = read_pty(&fds[0], T);
        if testing_runc() && !out.contains("ORIG") {
            // runc 1.1.5 predates the CVE-2025-52565 fix: it follows the symlink.
            eprintln!("runc: console bound through a symlink: {out:?}");
            return;
        }
        assert!(
            out.contains("regular file") && out.contains("ORIG"),
            "console bound through a symlink: {out:?}"
        );
    } else {
        assert!(o.stderr.contains("console"), "{o:#?}");
        assert!(!h.state_dir(&id).exists());
    }
    assert_eq!(read(rootfs.join("etc/target")), "ORIG");
}

/// Class 4c — CVE-2025-52881: sysctl writes go to the kernel's own /proc/sys, never to whatever the
/// container's mounts put at that path inside the rootfs.
#[test]
fn sysctl_writes_cannot_be_redirected_by_mounts() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let decoy = h.scratch().join("decoy");
    fs::write(&decoy, "0\n").unwrap();
    b.add_mount(json!({
        "destination": "/proc/sys/net/ipv4/ip_forward", "type": "bind",
        "source": decoy.to_str().unwrap(), "options": ["bind"]
    }));
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    // Refused like runc ("cannot be mounted because it is inside /proc"); either way the
    // kernel's file, not the decoy, is what a sysctl write may reach.
    let o = h.run(&h.new_id(), &b);
    assert_eq!(o.code, 1, "{o:#?}");
    assert!(o.stderr.contains("inside /proc"), "{o:#?}");
    assert_eq!(
        read(&decoy),
        "0\n",
        "the sysctl write landed in the decoy file"
    );
    // Through a symlink into /proc, the same.
    let mut b = Bundle::new();
    std::os::unix::fs::symlink("/proc/sys/net/ipv4", b.rootfs().join("ipv4")).unwrap();
    b.add_mount(json!({
        "destination": "/ipv4/ip_forward", "type": "bind",
        "source": decoy.to_str().unwrap(), "options": ["bind"]
    }));
    let o = h.run(&h.new_id(), &b);
    assert_eq!(o.code, 1, "{o:#?}");
    assert!(o.stderr.contains("inside /proc"), "{o:#?}");
}

/// A static program printing its effective uid, installed setuid-root in the rootfs.
fn install_euid_probe(rootfs: &Path) -> bool {
    let src = rootfs.join("probe.c");
    fs::write(
        &src,
        "#include <stdio.h>\n#include <unistd.h>\nint main(void){printf(\"euid=%d\\n\",(int)geteuid());return 0;}\n",
    )
    .unwrap();
    let bin = rootfs.join("bin/euid-probe");
    let ok = std::process::Command::new("gcc")
        .args([
            "-static",
            "-O1",
            "-o",
            bin.to_str().unwrap(),
            src.to_str().unwrap(),
        ])
        .status()
        .is_ok_and(|s| s.success());
    fs::remove_file(&src).unwrap();
    if ok {
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o4755)).unwrap();
    }
    ok
}

/// Class 5a — With noNewPrivileges a setuid-root binary gains nothing; without it, it does (the
/// control that shows the probe works).
#[test]
fn no_new_privileges_defeats_setuid() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    assert!(
        install_euid_probe(&b.rootfs()),
        "gcc -static failed (make deps installs it)"
    );
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b.config["process"]["noNewPrivileges"] = json!(true);
    b.set_args(&["/bin/euid-probe"]);
    let o = h.run(&h.new_id(), &b);
    o.assert_ok();
    assert_eq!(o.stdout, "euid=1000\n");
    b.config["process"]["noNewPrivileges"] = json!(false);
    b.config["process"]["capabilities"]["bounding"] = json!(["CAP_SETUID", "CAP_SETGID"]);
    let o = h.run(&h.new_id(), &b);
    o.assert_ok();
    assert_eq!(o.stdout, "euid=0\n");
}

/// Class 5b — CVE-2022-29162: inheritable capabilities are exactly the configured ones (none by
/// default), and a dropped bounding capability is really gone (mount needs CAP_SYS_ADMIN).
#[test]
fn inheritable_only_as_configured_and_bounding_really_dropped() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    b.config["process"]["capabilities"]["inheritable"] = json!([]);
    let out = h.run_sh(
        &mut b,
        "grep -E '^Cap(Inh|Bnd)' /proc/self/status; \
         mount -t tmpfs t /tmp 2>/dev/null && echo MOUNTED; true",
    );
    assert_eq!(
        status_field(&out, "CapInh"),
        Some("0000000000000000"),
        "{out}"
    );
    assert!(!cap_set(status_field(&out, "CapBnd").unwrap()).contains(&21));
    assert!(!out.contains("MOUNTED"), "{out}");
    let b2 = Bundle::sh("sleep 100");
    let id = h.new_id();
    h.run_with(&id, &b2, &["-d"]).assert_ok();
    let o = h.cmd(&[
        "exec",
        "--cap",
        "CAP_SYS_ADMIN",
        "--user",
        "1000",
        &id,
        "cat",
        "/proc/self/status",
    ]);
    o.assert_ok();
    assert_eq!(status_field(&o.stdout, "CapInh"), Some("0000000000000000"));
}

/// Class 6 — The host's /proc/kcore, /sys/firmware and the other paths podman masks are unreadable.
#[test]
fn podman_masked_defaults_unreadable() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    // containers/common's DefaultMaskedPaths.
    let masked = [
        "/proc/acpi",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/sys/firmware",
        "/sys/fs/selinux",
        "/sys/dev/block",
        "/sys/devices/virtual/powercap",
        "/proc/interrupts",
    ];
    b.config["linux"]["maskedPaths"] = json!(masked);
    let script = masked
        .iter()
        .map(|p| {
            format!(
                "if [ -d {p} ]; then echo {p}=$(ls -A {p} | wc -l); \
                 elif [ -e {p} ]; then echo {p}=$(head -c 64 {p} | wc -c); fi"
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let out = h.run_sh(&mut b, &script);
    let mut seen = 0;
    for p in masked {
        if let Some(line) = out.lines().find(|l| l.starts_with(&format!("{p}="))) {
            seen += 1;
            assert_eq!(line, format!("{p}=0"), "{p} readable: {out}");
        }
    }
    // /proc/kcore and /sys/firmware exist on every kernel here: the checks above did run.
    assert!(seen >= 2, "{out}");
}

/// What is outside the rootfs and could be written through a followed link: the bundle dir's
/// entries, and the victim directory's entries, mode and mtime.
fn outside_rootfs(b: &Bundle, victim: &Path) -> (Vec<String>, Vec<String>, String) {
    let names = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let m = fs::metadata(victim).unwrap();
    let meta = format!("{:o} {:?}", m.permissions().mode(), m.modified().unwrap());
    (names(b.path()), names(victim), meta)
}

/// Class 7 — CVE-2026-41579: the image's `/dev` (or `/dev/pts`, `/dev/shm`, `/dev/mqueue`) is a
/// symlink, absolute or climbing with `..`, to a host directory; runc before 1.3.6/1.4.3 made
/// device nodes, mount points or links through it on the host. hako resolves every step inside
/// the rootfs: the mount lands where the link points *inside* the container, and nothing
/// outside the rootfs is created or changed.
fn dev_symlink_stays_in_rootfs(target: &str, fstype: &str) {
    require_root!();
    let h = Hako::new();
    for absolute in [true, false] {
        let mut b = Bundle::new();
        let victim = b.path().join("victim");
        fs::create_dir(&victim).unwrap();
        if target != "dev" {
            // With a /dev tmpfs the image's /dev/* would be covered: use the image's /dev.
            let mounts = b.config["mounts"].as_array_mut().unwrap();
            mounts.retain(|m| m["destination"] != "/dev");
        }
        let link = b.rootfs().join(target);
        let _ = fs::remove_dir(&link);
        let points_to = match absolute {
            true => victim.display().to_string(),
            false => format!("../../../../../../../..{}", victim.display()),
        };
        std::os::unix::fs::symlink(&points_to, &link).unwrap();
        let before = outside_rootfs(&b, &victim);
        b.set_sh("stat -c %t:%T /dev/null; cat /proc/self/mountinfo");
        let o = h.run(&h.new_id(), &b);
        let what = format!("/{target} -> {points_to}");
        o.assert_ok();
        assert_eq!(
            outside_rootfs(&b, &victim),
            before,
            "{what}: written outside"
        );
        assert!(mounts_under(&victim).is_empty(), "{what}: host mounts");
        // The mount is where the link leads inside the container.
        let inside = victim.display().to_string();
        let mounted = o.stdout.lines().any(|l| {
            let (pre, post) = l.split_once(" - ").unwrap_or(("", ""));
            pre.split(' ').nth(4) == Some(inside.as_str())
                && post.starts_with(&format!("{fstype} "))
        });
        assert!(mounted, "{what}: no {fstype} at {inside}: {}", o.stdout);
        assert!(o.stdout.starts_with("1:3\n"), "{what}: {}", o.stdout);
    }
}

#[test]
fn dev_symlink_stays_in_rootfs_dev() {
    dev_symlink_stays_in_rootfs("dev", "tmpfs");
}

#[test]
fn dev_symlink_stays_in_rootfs_dev_pts() {
    dev_symlink_stays_in_rootfs("dev/pts", "devpts");
}

#[test]
fn dev_symlink_stays_in_rootfs_dev_shm() {
    dev_symlink_stays_in_rootfs("dev/shm", "tmpfs");
}

#[test]
fn dev_symlink_stays_in_rootfs_dev_mqueue() {
    dev_symlink_stays_in_rootfs("dev/mqueue", "mqueue");
}
