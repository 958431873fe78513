//! The container process: capabilities, no_new_privs, user, groups, rlimits, umask, cwd, env,
//! oom_score_adj, --preserve-fds (runc's cwd.bats, run.bats, umask and capabilities checks).

use std::fs;
use std::os::fd::OwnedFd;
use std::time::Duration;

use hako_tests::*;

fn proc_status(h: &Hako, b: &mut Bundle) -> String {
    h.run_sh(b, "cat /proc/self/status")
}

#[test]
fn default_capabilities_and_no_new_privs() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let st = proc_status(&h, &mut b);
    let want = vec![CAP_KILL, CAP_NET_BIND_SERVICE, CAP_AUDIT_WRITE];
    for key in ["CapEff", "CapPrm", "CapBnd"] {
        let v = status_field(&st, key).unwrap_or_else(|| panic!("{key} missing: {st}"));
        assert_eq!(cap_set(v), want, "{key} = {v}");
    }
    // Ambient capabilities need the inheritable set too, which runc spec leaves out: the
    // kernel refuses to raise them and runc carries on (CapAmb stays empty).
    assert_eq!(status_field(&st, "CapAmb").map(cap_set), Some(vec![]));
    assert_eq!(status_field(&st, "CapInh").map(cap_set), Some(vec![]));
    assert_eq!(status_field(&st, "NoNewPrivs"), Some("1"));
    assert_eq!(status_field(&st, "Uid"), Some("0\t0\t0\t0"));
    assert_eq!(status_field(&st, "Gid"), Some("0\t0\t0\t0"));
}

#[test]
fn capabilities_custom_and_no_new_privs_off() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    b.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_KILL"],
        "effective": ["CAP_CHOWN", "CAP_SYS_ADMIN"],
        "permitted": ["CAP_CHOWN", "CAP_SYS_ADMIN"],
        "inheritable": ["CAP_CHOWN"]
    });
    b.config["process"]["noNewPrivileges"] = json!(false);
    let st = proc_status(&h, &mut b);
    assert_eq!(
        status_field(&st, "CapBnd").map(cap_set),
        Some(vec![CAP_CHOWN, CAP_KILL, CAP_SYS_ADMIN])
    );
    // uid 0 without SECBIT_NOROOT: execve makes permitted = effective = bounding.
    assert_eq!(
        status_field(&st, "CapEff").map(cap_set),
        Some(vec![CAP_CHOWN, CAP_KILL, CAP_SYS_ADMIN])
    );
    assert_eq!(
        status_field(&st, "CapInh").map(cap_set),
        Some(vec![CAP_CHOWN])
    );
    assert_eq!(status_field(&st, "CapAmb").map(cap_set), Some(vec![]));
    assert_eq!(status_field(&st, "NoNewPrivs"), Some("0"));
}

#[test]
fn non_root_capabilities_and_ambient() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    // Without ambient capabilities a non-root process has none after execve.
    let st = proc_status(&h, &mut b);
    assert_eq!(status_field(&st, "CapEff").map(cap_set), Some(vec![]));
    assert_eq!(status_field(&st, "CapPrm").map(cap_set), Some(vec![]));
    assert_eq!(
        status_field(&st, "CapBnd").map(cap_set),
        Some(vec![CAP_KILL, CAP_NET_BIND_SERVICE, CAP_AUDIT_WRITE])
    );
    let nbs = ["CAP_NET_BIND_SERVICE"];
    b.config["process"]["capabilities"] = json!({
        "bounding": nbs, "effective": nbs, "permitted": nbs, "inheritable": nbs, "ambient": nbs
    });
    let st = proc_status(&h, &mut b);
    for key in ["CapEff", "CapPrm", "CapAmb", "CapInh", "CapBnd"] {
        assert_eq!(
            status_field(&st, key).map(cap_set),
            Some(vec![CAP_NET_BIND_SERVICE]),
            "{key}"
        );
    }
}

/// runc 1.2+: a capability name nobody knows is left out with one warning naming it (runc 1.1
/// refused the config), and an ambient capability that is not inheritable is a warning in
/// runc's words; the container runs with the rest.
#[test]
fn unknown_capability_and_ambient_without_inheritable_warn() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::sh("grep Cap /proc/self/status");
    b.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_KILL", "CAP_BOGUS", "CAP_CHOWN"],
        "effective": ["CAP_KILL", "CAP_BOGUS"],
        "permitted": ["CAP_KILL", "CAP_BOGUS", "CAP_CHOWN"],
        "inheritable": ["CAP_KILL"],
        "ambient": ["CAP_KILL", "CAP_CHOWN"]
    });
    let o = h.run(&h.new_id(), &b);
    o.assert_ok();
    assert!(
        o.stderr
            .contains("ignoring unknown or unavailable capabilities: [CAP_BOGUS]"),
        "{o:#?}"
    );
    assert!(
        o.stderr
            .contains("can't raise ambient capability CAP_CHOWN: operation not permitted"),
        "{o:#?}"
    );
    let both = Some(vec![CAP_CHOWN, CAP_KILL]);
    assert_eq!(status_field(&o.stdout, "CapBnd").map(cap_set), both);
    assert_eq!(status_field(&o.stdout, "CapPrm").map(cap_set), both);
    assert_eq!(
        status_field(&o.stdout, "CapAmb").map(cap_set),
        Some(vec![CAP_KILL])
    );
}

#[test]
fn no_capabilities_object_leaves_them_alone() {
    // runc 1.2+ leaves the capabilities as they are without a `capabilities` object (runc 1.1
    // dropped them all): root keeps the runtime's sets, another uid has none after execve.
    require_root!();
    let h = Hako::new();
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    let own_bnd = status_field(&own, "CapBnd").map(cap_set);
    assert_ne!(own_bnd, Some(vec![]), "the test runs with capabilities");
    let mut b = Bundle::new();
    b.config["process"]
        .as_object_mut()
        .unwrap()
        .remove("capabilities");
    let st = proc_status(&h, &mut b);
    assert_eq!(status_field(&st, "CapEff").map(cap_set), own_bnd);
    assert_eq!(status_field(&st, "CapBnd").map(cap_set), own_bnd);
    assert_eq!(status_field(&st, "CapInh").map(cap_set), Some(vec![]));
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let st = proc_status(&h, &mut b);
    assert_eq!(status_field(&st, "CapEff").map(cap_set), Some(vec![]));
    assert_eq!(status_field(&st, "CapPrm").map(cap_set), Some(vec![]));
    assert_eq!(status_field(&st, "CapBnd").map(cap_set), own_bnd);
}

#[test]
fn user_uid_gid_additional_groups() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1001, "additionalGids": [10, 20]});
    let st = proc_status(&h, &mut b);
    assert_eq!(status_field(&st, "Uid"), Some("1000\t1000\t1000\t1000"));
    assert_eq!(status_field(&st, "Gid"), Some("1001\t1001\t1001\t1001"));
    let mut groups: Vec<&str> = status_field(&st, "Groups")
        .unwrap()
        .split_whitespace()
        .collect();
    groups.sort();
    assert_eq!(groups, ["10", "20"]);
    let out = h.run_sh(&mut b, "id -u; id -g");
    assert_eq!(out, "1000\n1001\n");
}

#[test]
fn user_nobody_id() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    b.config["process"]["user"] = json!({"uid": 65534, "gid": 65534});
    let out = h.run_sh(&mut b, "id");
    assert!(
        out.starts_with("uid=65534(nobody) gid=65534(nogroup)"),
        "{out:?}"
    );
}

#[test]
fn root_has_no_supplementary_groups_by_default() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let st = proc_status(&h, &mut b);
    assert_eq!(status_field(&st, "Groups"), Some(""));
}

#[test]
fn rlimits() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    b.config["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "hard": 1000, "soft": 900},
        {"type": "RLIMIT_CORE", "hard": 4096, "soft": 1024}
    ]);
    let out = h.run_sh(&mut b, "ulimit -n; ulimit -Hn; cat /proc/self/limits");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("900"));
    assert_eq!(lines.next(), Some("1000"));
    let core = out
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let cols: Vec<&str> = core.split_whitespace().collect();
    // "Max core file size  1024  4096  bytes"
    assert_eq!(&cols[4..6], ["1024", "4096"], "{core}");
}

#[test]
fn default_nofile_is_1024() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    assert_eq!(h.run_sh(&mut b, "ulimit -n"), "1024\n");
}

#[test]
fn umask() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    // runc's default umask is 0022.
    assert_eq!(h.run_sh(&mut b, "umask"), "0022\n");
    b.config["process"]["user"]["umask"] = json!(0o077);
    assert_eq!(h.run_sh(&mut b, "umask"), "0077\n");
}

#[test]
fn cwd() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    b.config["process"]["cwd"] = json!("/tmp");
    assert_eq!(h.run_sh(&mut b, "pwd"), "/tmp\n");
    // A missing cwd is created (runc's cwd.bats).
    b.config["process"]["cwd"] = json!("/does/not/exist");
    b.config["root"]["readonly"] = json!(false);
    assert_eq!(h.run_sh(&mut b, "pwd"), "/does/not/exist\n");
    assert!(b.rootfs().join("does/not/exist").is_dir());
}

#[test]
fn cwd_owned_by_other_user_is_enterable() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let d = b.rootfs().join("home/u");
    fs::create_dir_all(&d).unwrap();
    std::os::unix::fs::chown(&d, Some(1000), Some(1000)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).unwrap();
    b.config["process"]["cwd"] = json!("/home/u");
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    assert_eq!(h.run_sh(&mut b, "pwd"), "/home/u\n");
}

#[test]
fn env() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    b.config["process"]["env"] = json!(["PATH=/bin:/usr/bin", "FOO=bar baz", "EMPTY="]);
    let out = h.run_sh(&mut b, "env");
    let mut vars: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with("PWD=") && !l.starts_with("SHLVL="))
        .collect();
    vars.sort();
    // runc adds HOME (from /etc/passwd) when it is not set.
    assert_eq!(
        vars,
        ["EMPTY=", "FOO=bar baz", "HOME=/root", "PATH=/bin:/usr/bin"]
    );
}

#[test]
fn env_home_of_user() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    b.config["process"]["user"] = json!({"uid": 65534, "gid": 65534});
    assert_eq!(h.run_sh(&mut b, "echo $HOME"), "/nonexistent\n");
    b.config["process"]["env"] = json!(["PATH=/bin", "HOME=/custom"]);
    assert_eq!(h.run_sh(&mut b, "echo $HOME"), "/custom\n");
}

/// The env lines of `env` run as the process, in order (the shell's own PWD and SHLVL left out).
fn env_lines(h: &Hako, b: &mut Bundle) -> Vec<String> {
    b.set_args(&["env"]);
    let o = h.run(&h.new_id(), b);
    o.assert_ok();
    o.stdout.lines().map(str::to_string).collect()
}

/// runc 1.3 (prepareEnv): a name given twice is set once, with its last value, where it last
/// appeared; runc 1.1 passed both (and the first won in the process).
#[test]
fn env_duplicates_keep_the_last() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    b.config["process"]["env"] = json!(["A=1", "PATH=/bin", "B=b", "A=2", "HOME=/h"]);
    assert_eq!(
        env_lines(&h, &mut b),
        ["PATH=/bin", "B=b", "A=2", "HOME=/h"]
    );
}

/// runc 1.3: an empty HOME (the last of several too) is the user's home from the container's
/// /etc/passwd, moved to the end; a non-empty one is kept.
#[test]
fn env_empty_home_is_the_users() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    b.config["process"]["env"] = json!(["HOME=", "PATH=/bin", "Z=1"]);
    assert_eq!(env_lines(&h, &mut b), ["PATH=/bin", "Z=1", "HOME=/root"]);
    b.config["process"]["env"] = json!(["HOME=/x", "PATH=/bin", "HOME="]);
    b.config["process"]["user"] = json!({"uid": 65534, "gid": 65534});
    assert_eq!(env_lines(&h, &mut b), ["PATH=/bin", "HOME=/nonexistent"]);
    b.config["process"]["env"] = json!(["HOME=", "PATH=/bin", "HOME=/y"]);
    assert_eq!(env_lines(&h, &mut b), ["PATH=/bin", "HOME=/y"]);
    // A user without an entry: `/`.
    b.config["process"]["env"] = json!(["PATH=/bin", "HOME="]);
    b.config["process"]["user"] = json!({"uid": 4242, "gid": 4242});
    assert_eq!(env_lines(&h, &mut b), ["PATH=/bin", "HOME=/"]);
}

/// An executable whose interpreter is missing: execve fails with ENOENT after the lookup found
/// the file, and the error is runc 1.3's `exec PATH: ERRNO` (runc 1.1: `exec: "PATH": ...`);
/// "no such file or directory" is what podman maps to 127.
#[test]
fn failing_execve_words_like_runc_13() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    bad_interpreter_script(&b.rootfs().join("run.sh"));
    b.set_args(&["/run.sh"]);
    let o = h.run(&h.new_id(), &b);
    assert!(!o.ok(), "{o:#?}");
    assert!(
        o.stderr.contains("exec /run.sh: no such file or directory"),
        "{o:#?}"
    );
    b.set_args(&["run.sh"]);
    b.config["process"]["env"] = json!(["PATH=/"]);
    let o = h.run(&h.new_id(), &b);
    assert!(
        o.stderr.contains("exec /run.sh: no such file or directory"),
        "{o:#?}"
    );
}

#[test]
fn args_via_path_lookup() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    b.set_args(&["echo", "a b", "c"]);
    let o = h.run(&h.new_id(), &b);
    o.assert_ok();
    assert_eq!(o.stdout, "a b c\n");
    b.set_args(&["/bin/echo", "abs"]);
    let o = h.run(&h.new_id(), &b);
    assert_eq!(o.stdout, "abs\n");
}

#[test]
fn oom_score_adj() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    b.config["process"]["oomScoreAdj"] = json!(123);
    assert_eq!(h.run_sh(&mut b, "cat /proc/self/oom_score_adj"), "123\n");
}

#[test]
fn pid_is_1_in_pid_namespace() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    assert_eq!(h.run_sh(&mut b, "echo $$"), "1\n");
}

#[test]
fn preserve_fds() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::sh("cat /proc/self/fd/3; cat <&4");
    let file = h.scratch().join("fd3");
    fs::write(&file, "from fd 3\n").unwrap();
    let f3: OwnedFd = fs::File::open(&file).unwrap().into();
    let (r, w) = pipe();
    nix::unistd::write(&w, b"from a pipe on fd 4\n").unwrap();
    drop(w);
    let id = h.new_id();
    b.save();
    let o = h.cmd_opts(
        &[
            "run",
            "--preserve-fds",
            "2",
            "--bundle",
            b.path().to_str().unwrap(),
            &id,
        ],
        CmdOpts {
            fds: vec![(f3, 3), (r, 4)],
            ..Default::default()
        },
    );
    o.assert_ok();
    assert_eq!(o.stdout, "from fd 3\nfrom a pipe on fd 4\n");
}

#[test]
fn extra_fds_not_leaked_without_preserve_fds() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::sh("ls /proc/self/fd");
    let file = h.scratch().join("fd3");
    fs::write(&file, "x").unwrap();
    let f3: OwnedFd = fs::File::open(&file).unwrap().into();
    let id = h.new_id();
    b.save();
    let o = h.cmd_opts(
        &["run", "--bundle", b.path().to_str().unwrap(), &id],
        CmdOpts {
            fds: vec![(f3, 3)],
            ..Default::default()
        },
    );
    o.assert_ok();
    // ls itself opens the directory as fd 3; nothing above that may be inherited.
    let fds: Vec<u32> = o
        .stdout
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    assert!(fds.starts_with(&[0, 1, 2]), "{fds:?}");
    assert!(fds.iter().all(|&fd| fd <= 3), "leaked fds: {fds:?}");
}

/// The fds of the shell running this script, from 0 on, as one line (`[ -e ]` is a builtin: the
/// probe opens nothing itself, and /proc/self is the shell; not /proc/$$, which a createContainer
/// hook would look up in the host's procfs with its pid of the container's namespace).
fn fd_listing(out: &str) -> String {
    format!(
        "l=''; n=0; while [ $n -lt 1100 ]; do [ -e /proc/self/fd/$n ] && l=\"$l $n\"; n=$((n+1)); \
         done; echo \"$l\" > {out}"
    )
}

/// `create` (then `start`) leaks no fd of the runtime's: the waiting init holds only stdio, the
/// preserved fd and its own close-on-exec ones (channel, start socket); the container gets stdio
/// and the preserved fd; every hook, stdio only. The runtime is handed a preserved fd 3 and a
/// stray fd 9 without close-on-exec.
#[test]
fn create_leaks_no_fd_into_the_container_or_hooks() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::new();
    let out = b.out_dir();
    let host = out.to_str().unwrap().to_string();
    b.set_sh(&fd_listing("/out/container"));
    let hook = |script: String| json!({"path": "/bin/sh", "args": ["sh", "-c", script]});
    b.config["hooks"] = json!({
        "prestart": [hook(fd_listing(&format!("{host}/prestart")))],
        "createRuntime": [hook(fd_listing(&format!("{host}/createRuntime")))],
        "createContainer": [hook(fd_listing(&format!("{host}/createContainer")))],
        "startContainer": [hook(fd_listing("/out/startContainer"))],
    });
    b.save();
    let file = h.scratch().join("fd3");
    fs::write(&file, "x").unwrap();
    let f3: OwnedFd = fs::File::open(&file).unwrap().into();
    let (stray, _w) = pipe();
    let id = h.new_id();
    let o = h.cmd_opts(
        &[
            "create",
            "--preserve-fds",
            "1",
            "--bundle",
            b.path().to_str().unwrap(),
            &id,
        ],
        CmdOpts {
            fds: vec![(f3, 3), (stray, 9)],
            ..Default::default()
        },
    );
    h.track(&id);
    o.assert_ok();
    let init = h.pid(&id);
    for entry in fs::read_dir(format!("/proc/{init}/fd")).unwrap() {
        let fd: i32 = entry
            .unwrap()
            .file_name()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        if fd > 3 {
            let info = read(format!("/proc/{init}/fdinfo/{fd}"));
            let flags = status_field(&info, "flags").unwrap().trim();
            let flags = u32::from_str_radix(flags, 8).unwrap();
            let target = fs::read_link(format!("/proc/{init}/fd/{fd}")).unwrap();
            assert!(
                flags & libc::O_CLOEXEC as u32 != 0,
                "init fd {fd} ({}) crosses execve",
                target.display()
            );
        }
    }
    h.start(&id).assert_ok();
    assert!(h.wait_status(&id, "stopped", Duration::from_secs(10)));
    let fds = |name: &str| read(out.join(name));
    assert_eq!(fds("container"), " 0 1 2 3\n", "the container's fds");
    for name in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
    ] {
        assert_eq!(fds(name), " 0 1 2\n", "{name}'s fds");
    }
}

/// SELinux labels on a host without SELinux: nothing can apply them, so they are ignored (as
/// crun), for the container and for an exec alike.
#[test]
fn selinux_labels_ignored_without_selinux() {
    require_root!();
    if std::path::Path::new("/sys/fs/selinux/enforce").exists() {
        skip("SELinux is enabled on this host (the test is for hosts without)");
        return;
    }
    let h = Hako::new();
    let mut b = Bundle::sh("echo labelled-ok; exec sleep 100");
    b.config["linux"]["mountLabel"] = json!("system_u:object_r:container_file_t:s0:c1,c2");
    b.config["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0:c1,c2");
    let id = h.new_id();
    let o = h.run_with(&id, &b, &["-d"]);
    if testing_runc() && o.code == 1 {
        eprintln!(
            "runc 1.1 refuses SELinux labels without SELinux: {}",
            o.stderr
        );
        return;
    }
    o.assert_ok();
    assert!(wait_for(std::time::Duration::from_secs(10), || o
        .stdout_now()
        .contains("labelled-ok")));
    let e = h.cmd(&[
        "exec",
        "--process-label",
        "system_u:system_r:container_t:s0",
        &id,
        "true",
    ]);
    e.assert_ok();
    h.kill(&id, "KILL").assert_ok();
}

/// A config.json whose `process` has no `user` runs as 0:0, as in runc (its `User` is a plain
/// struct); hako refused it with "missing field `user`".
#[test]
fn process_without_user_runs_as_root() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::sh("id -u; id -g");
    b.config["process"].as_object_mut().unwrap().remove("user");
    let o = h.run(&h.new_id(), &b);
    o.assert_ok();
    assert_eq!(o.stdout, "0\n0\n", "{o:#?}");
}
