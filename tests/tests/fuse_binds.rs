//! Binds of a FUSE (sshfs) mount, as runc 1.3 makes them (runc's mounts_sshfs.bats): a bind whose
//! options name flags gets exactly those (the source's others cleared) where the kernel lets it,
//! and keeps the source's locked flags (ro, nosuid, nodev, noexec, atime) where it does not (a user
//! namespace), unless the options explicitly clear one; `rbind` with recursive (`r…`) options
//! reaches every submount. An sshfs of another user cannot even be stat'ed by root (EACCES), so
//! the runtime must bind it onto an existing destination without looking at it.
//!
//! sshfs talks to `sftp-server` directly (its `ssh_command` is a script that runs it), no sshd.

use std::path::{Path, PathBuf};
use std::process::Command;

use hako_tests::*;

const SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";
const MAPPED: u32 = 200000;

/// An sshfs mount of `<dir>/remote` on `<dir>/mnt`, unmounted (only it) on drop.
struct Sshfs {
    dir: TempDir,
}

impl Sshfs {
    /// Mounted by the test user (`as_user`, so root cannot stat it; fusermount3 adds nosuid,nodev)
    /// or by root, with `opts`. `None` (after a SKIP line) where sshfs cannot work here.
    fn mount(as_user: bool, opts: &str, prepare: impl FnOnce(&Path)) -> Option<Sshfs> {
        for tool in ["sshfs", "fusermount3"] {
            if in_path(tool).is_none() {
                skip(&format!("{tool} is missing (Debian: sshfs; make deps)"));
                return None;
            }
        }
        if !Path::new(SFTP_SERVER).exists() || !Path::new("/dev/fuse").exists() {
            skip("needs /dev/fuse and openssh-sftp-server");
            return None;
        }
        let dir = TempDir::new("sshfs");
        let remote = dir.path().join("remote");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&remote).unwrap();
        std::fs::create_dir(&mnt).unwrap();
        std::fs::write(remote.join("file"), "over-sftp\n").unwrap();
        prepare(&remote);
        let wrapper = write_script(dir.path(), "sftp.sh", &format!("exec {SFTP_SERVER}"));
        let mut cmd = if as_user {
            let u = test_user();
            for p in [&remote, &mnt] {
                Command::new("chown")
                    .args(["-R", &format!("{}:{}", u.uid, u.gid)])
                    .arg(p)
                    .status()
                    .unwrap();
            }
            let mut c = Command::new("setpriv");
            c.args([
                &format!("--reuid={}", u.uid),
                &format!("--regid={}", u.gid),
                "--clear-groups",
                "sshfs",
            ]);
            c
        } else {
            Command::new("sshfs")
        };
        let out = cmd
            .arg("-o")
            .arg(format!("ssh_command={}", wrapper.display()))
            .args(["-o", opts])
            .arg(format!("localhost:{}", remote.display()))
            .arg(&mnt)
            .output()
            .unwrap();
        let fs = Sshfs { dir };
        if !out.status.success() || !is_sshfs(&mnt) {
            skip(&format!(
                "sshfs did not mount: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            return None;
        }
        Some(fs)
    }

    fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }
}

impl Drop for Sshfs {
    fn drop(&mut self) {
        // Submounts first (a test's tmpfs below it), then the FUSE mount; sshfs then exits.
        let mut ours = mounts_under(&self.mnt());
        ours.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in ours {
            let _ = nix::mount::umount2(Path::new(&m), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn is_sshfs(mnt: &Path) -> bool {
    let text = read("/proc/self/mountinfo");
    let want = mnt.to_string_lossy();
    text.lines().any(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        f.get(4) == Some(&&*want) && l.contains(" - fuse.sshfs ")
    })
}

/// A container printing `<mount point> <mount options>` for every mount at or below `dests`,
/// which are made in its rootfs beforehand (an sshfs of another user cannot be stat'ed to make
/// them, by runc 1.3 either).
fn bundle(dests: &[&str], userns: bool) -> Bundle {
    let pattern = dests
        .iter()
        .map(|d| d.trim_start_matches('/'))
        .collect::<Vec<_>>()
        .join("|");
    let mut b = Bundle::sh(&format!(
        "cut -d' ' -f5,6 /proc/self/mountinfo | grep -E '^/({pattern})(/| )'"
    ));
    for d in dests {
        std::fs::create_dir_all(b.rootfs().join(d.trim_start_matches('/'))).unwrap();
    }
    if userns {
        b.config["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        let map = json!([{"containerID": 0, "hostID": MAPPED, "size": 65536}]);
        b.config["linux"]["uidMappings"] = map.clone();
        b.config["linux"]["gidMappings"] = map;
        let st = Command::new("chown")
            .args(["-R", "-h", &format!("{MAPPED}:{MAPPED}")])
            .arg(b.rootfs())
            .status()
            .unwrap();
        assert!(st.success());
    }
    b
}

fn bind(b: &mut Bundle, src: &Path, dest: &str, opts: &[&str]) {
    b.add_mount(json!({"destination": dest, "type": "bind", "source": src, "options": opts}));
}

/// The mount options of `point` in the container's output.
fn flags<'a>(out: &'a Output, point: &str) -> Vec<&'a str> {
    let line = out
        .stdout
        .lines()
        .find(|l| l.split(' ').next() == Some(point));
    let line = line.unwrap_or_else(|| panic!("{point} not mounted: {out:#?}"));
    line.split(' ').nth(1).unwrap_or("").split(',').collect()
}

fn assert_flags(out: &Output, point: &str, has: &[&str], lacks: &[&str]) {
    let f = flags(out, point);
    for h in has {
        assert!(f.contains(h), "{point} lacks {h}: {f:?}\n{out:#?}");
    }
    for l in lacks {
        assert!(!f.contains(l), "{point} has {l}: {f:?}\n{out:#?}");
    }
}

#[test]
fn fuse_of_another_user_bound_with_and_without_options() {
    require_root!();
    // fusermount3 makes it nosuid,nodev; noatime asked.
    let Some(fs) = Sshfs::mount(true, "noatime", |_| {}) else {
        return;
    };
    let h = Hako::new();
    let mut b = bundle(&["/plain", "/ro", "/noexec", "/dev-suid"], false);
    bind(&mut b, &fs.mnt(), "/plain", &["bind"]);
    bind(&mut b, &fs.mnt(), "/ro", &["rbind", "ro"]);
    bind(&mut b, &fs.mnt(), "/noexec", &["bind", "nosuid", "noexec"]);
    bind(
        &mut b,
        &fs.mnt(),
        "/dev-suid",
        &["rbind", "rw", "dev", "suid"],
    );
    let out = h.run(&h.new_id(), &b);
    out.assert_ok();
    // No flag named: the source's flags as they are.
    assert_flags(&out, "/plain", &["rw", "nosuid", "nodev", "noatime"], &[]);
    // Flags named: exactly those (root may clear the source's), the access time mode kept.
    assert_flags(&out, "/ro", &["ro", "noatime"], &["nosuid", "nodev"]);
    assert_flags(
        &out,
        "/noexec",
        &["rw", "nosuid", "noexec", "noatime"],
        &["nodev"],
    );
    assert_flags(&out, "/dev-suid", &["rw", "noatime"], &["nosuid", "nodev"]);
}

#[test]
fn fuse_in_a_user_namespace_keeps_its_locked_flags() {
    require_root!();
    let Some(fs) = Sshfs::mount(true, "noatime", |_| {}) else {
        return;
    };
    let h = Hako::new();
    let mut b = bundle(&["/plain", "/ro", "/noexec"], true);
    bind(&mut b, &fs.mnt(), "/plain", &["bind"]);
    bind(&mut b, &fs.mnt(), "/ro", &["rbind", "ro"]);
    bind(&mut b, &fs.mnt(), "/noexec", &["bind", "noexec"]);
    let out = h.run(&h.new_id(), &b);
    out.assert_ok();
    // nosuid, nodev and noatime are locked in the container's user namespace: kept.
    let locked = ["nosuid", "nodev", "noatime"];
    assert_flags(&out, "/plain", &[&["rw"][..], &locked].concat(), &[]);
    assert_flags(&out, "/ro", &[&["ro"][..], &locked].concat(), &[]);
    assert_flags(&out, "/noexec", &[&["noexec"][..], &locked].concat(), &[]);

    // Options clearing a locked flag, or asking for another access time mode, are refused in
    // runc 1.3's words, and nothing is left.
    for (opts, words) in [
        (["rbind", "suid"], "cannot clear locked flags MS_NOSUID"),
        (
            ["bind", "relatime"],
            "cannot change locked atime flags MS_NOATIME",
        ),
    ] {
        let mut b = bundle(&["/m"], true);
        bind(&mut b, &fs.mnt(), "/m", &opts);
        let id = h.new_id();
        let out = h.run(&id, &b);
        out.assert_err();
        assert!(out.stderr.contains(words), "{opts:?}: {out:#?}");
        assert!(out.stderr.contains("operation not permitted"), "{out:#?}");
        assert!(!h.state_dir(&id).exists(), "{opts:?}");
        assert!(mounts_under(b.path()).is_empty(), "{opts:?}");
    }
}

#[test]
fn fuse_rbind_recursive_flags_reach_every_submount() {
    require_root!();
    // Mounted by root, so that a tmpfs can go below it (relatime: the default).
    let Some(fs) = Sshfs::mount(false, "nosuid,nodev", |remote| {
        std::fs::create_dir(remote.join("sub")).unwrap();
    }) else {
        return;
    };
    let sub = fs.mnt().join("sub");
    nix::mount::mount(
        Some("tmpfs"),
        &sub,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOEXEC,
        Some("size=1m"),
    )
    .unwrap();
    let h = Hako::new();
    let mut b = bundle(&["/noatime", "/rro"], false);
    bind(
        &mut b,
        &fs.mnt(),
        "/noatime",
        &["rbind", "rnoatime", "nosuid"],
    );
    bind(&mut b, &fs.mnt(), "/rro", &["rbind", "rro", "rnodiratime"]);
    let out = h.run(&h.new_id(), &b);
    out.assert_ok();
    // The plain flags are the top mount's only (a bind remount is never recursive); the `r…`
    // ones are every submount's.
    assert_flags(
        &out,
        "/noatime",
        &["rw", "nosuid", "noatime"],
        &["nodev", "relatime"],
    );
    assert_flags(
        &out,
        "/noatime/sub",
        &["rw", "noexec", "noatime"],
        &["relatime"],
    );
    assert_flags(&out, "/rro", &["ro", "nosuid", "nodev", "nodiratime"], &[]);
    assert_flags(&out, "/rro/sub", &["ro", "noexec", "nodiratime"], &[]);

    // In a user namespace every submount's flags are locked: `rro` only adds, and goes through;
    // a recursive access-time mode the submounts do not have is refused (as by runc 1.3).
    let mut b = bundle(&["/rro"], true);
    bind(&mut b, &fs.mnt(), "/rro", &["rbind", "rro"]);
    let out = h.run(&h.new_id(), &b);
    out.assert_ok();
    assert_flags(&out, "/rro", &["ro", "nosuid", "nodev", "relatime"], &[]);
    assert_flags(&out, "/rro/sub", &["ro", "noexec", "relatime"], &[]);
    let mut b = bundle(&["/noatime"], true);
    bind(&mut b, &fs.mnt(), "/noatime", &["rbind", "rnoatime"]);
    let id = h.new_id();
    let out = h.run(&id, &b);
    out.assert_err();
    assert!(out.stderr.contains("operation not permitted"), "{out:#?}");
    assert!(!h.state_dir(&id).exists());
}
