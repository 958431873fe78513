//! `linux.seccomp`: filters observed from inside busybox containers (errno values, SIGSYS, the
//! status line), a seccomp agent receiving the notify fd, podman's real default profile, and bad
//! profiles failing `create` cleanly.

use std::fs;
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hako_tests::*;

/// A bundle running `sh -c script` with a writable rootfs and `seccomp` as `linux.seccomp`.
fn bundle(script: &str, seccomp: Value) -> Bundle {
    let mut b = Bundle::sh(script);
    b.config["root"]["readonly"] = json!(false);
    b.config["linux"]["seccomp"] = seccomp;
    b
}

fn run_ok(h: &Hako, b: &Bundle) -> String {
    let id = h.new_id();
    let o = h.run(&id, b);
    o.assert_ok();
    o.stdout
}

/// podman's default profile as podman 4.3 passes it to the runtime (tests/fixtures, captured from
/// a real `podman run`): defaultAction ERRNO (ENOSYS), an allow-list, argument rules.
fn podman_profile() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/podman-seccomp.json");
    serde_json::from_str(&fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn status_says_filter_mode() {
    require_root!();
    let h = Hako::new();
    let b = bundle(
        "grep '^Seccomp:' /proc/self/status",
        json!({"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"}]}),
    );
    let out = run_ok(&h, &b);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["Seccomp:", "2"]
    );
}

#[test]
fn errno_with_custom_errno_ret() {
    require_root!();
    let h = Hako::new();
    let b = bundle(
        "mkdir /tmp/a 2>&1; echo mkdir=$?; touch /tmp/f && echo touch ok; \
         chmod 600 /tmp/f 2>&1; echo chmod=$?; \
         mkdir /tmp/a 2>/dev/null || test -d /tmp/a || echo no dir",
        json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
          {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
          {"names": ["chmod", "fchmodat", "fchmodat2"], "action": "SCMP_ACT_ERRNO"}
        ]}),
    );
    let out = run_ok(&h, &b);
    assert!(
        out.contains("Permission denied"),
        "EACCES from errnoRet 13: {out}"
    );
    assert!(out.contains("mkdir=1"), "{out}");
    assert!(out.contains("touch ok"), "other syscalls unaffected: {out}");
    // No errnoRet: EPERM, as runc.
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.contains("chmod=1"), "{out}");
    assert!(out.contains("no dir"), "{out}");
}

#[test]
fn kill_is_sigsys() {
    require_root!();
    let h = Hako::new();
    for action in [
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
    ] {
        let mut b = bundle(
            "",
            json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["mkdir", "mkdirat"], "action": action}]}),
        );
        b.set_args(&["mkdir", "/tmp/k"]);
        let id = h.new_id();
        let o = h.run(&id, &b);
        assert_eq!(o.code, 128 + libc::SIGSYS, "{action}: {o:?}");
        assert!(!b.rootfs().join("tmp/k").exists());
        // From a shell: the child dies of SIGSYS, the shell lives on.
        let b = bundle(
            "mkdir /tmp/k; echo status=$?",
            json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["mkdir", "mkdirat"], "action": action}]}),
        );
        let out = run_ok(&h, &b);
        assert!(out.contains("status=159"), "{action}: {out}");
    }
}

#[test]
fn log_and_trace_actions() {
    require_root!();
    let h = Hako::new();
    // LOG: the syscall runs (and is logged by the kernel).
    let mut profile = json!({"defaultAction": "SCMP_ACT_ALLOW",
           "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
           "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_LOG"}]});
    if testing_runc() {
        eprintln!("runc 1.1: \"seccomp flags are not yet supported by runc\"");
        profile.as_object_mut().unwrap().remove("flags");
    }
    let b = bundle("mkdir /tmp/l && echo made", profile);
    assert!(run_ok(&h, &b).contains("made"));
    // TRACE without a tracer: the syscall fails with ENOSYS.
    let b = bundle(
        "mkdir /tmp/t 2>&1; echo status=$?",
        json!({"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_TRACE"}]}),
    );
    let out = run_ok(&h, &b);
    assert!(out.contains("status=1"), "{out}");
}

#[test]
fn argument_conditions() {
    require_root!();
    let h = Hako::new();
    // personality(PER_LINUX32) denied, personality(PER_LINUX) allowed.
    let b = bundle(
        "linux32 true; echo l32=$?; linux64 true; echo l64=$?",
        json!({"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]}),
    );
    let out = run_ok(&h, &b);
    assert!(out.contains("l32=1") && out.contains("l64=0"), "{out}");
    // Two conditions on the same index are OR'ed (runc adds one rule each).
    let b = bundle(
        "linux32 true; echo l32=$?; linux64 true; echo l64=$?",
        json!({"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                                      {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]}]}),
    );
    let out = run_ok(&h, &b);
    assert!(out.contains("l32=1") && out.contains("l64=1"), "{out}");
    // Conditions on different indexes are AND'ed: socket(AF_INET, SOCK_STREAM) denied with
    // EAFNOSUPPORT; the same rule for SOCK_DGRAM leaves nc's TCP socket alone (it then fails to
    // connect: the container's loopback is down).
    for (typ, denied) in [(1, true), (2, false)] {
        let b = bundle(
            "nc 127.0.0.1 9 </dev/null 2>&1; true",
            json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 97,
                                 "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
                                          {"index": 1, "value": typ, "op": "SCMP_CMP_EQ"}]}]}),
        );
        let out = run_ok(&h, &b);
        assert_eq!(
            out.contains("Address family not supported"),
            denied,
            "type {typ}: {out}"
        );
    }
    if testing_runc() {
        // runc 1.1 loads the filter before opening its exec fifo O_WRONLY: it would deny itself.
        eprintln!("runc 1.1: skipping the MASKED_EQ openat case");
        return;
    }
    // MASKED_EQ: (flags & O_ACCMODE) == O_WRONLY denied for openat; reading still works.
    let b = bundle(
        "cat /etc/passwd | wc -l && echo read ok; echo x > /tmp/w; echo write=$?",
        json!({"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["open", "openat"], "action": "SCMP_ACT_ERRNO",
                             "args": [{"index": 2, "value": 3, "valueTwo": 1,
                                       "op": "SCMP_CMP_MASKED_EQ"}]}]}),
    );
    let out = run_ok(&h, &b);
    assert!(out.contains("read ok") && out.contains("write=1"), "{out}");
}

#[test]
fn default_errno_with_allow_list() {
    require_root!();
    let h = Hako::new();
    // podman's profile (default ERRNO, an allow-list) without mkdir/mkdirat, and
    // defaultErrnoRet EACCES instead of ENOSYS.
    let mut p = podman_profile();
    p["defaultErrnoRet"] = json!(13);
    for sc in p["syscalls"].as_array_mut().unwrap() {
        sc["names"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n != "mkdir" && n != "mkdirat");
    }
    let b = bundle(
        "echo hello; ls / >/dev/null && echo ls ok; mkdir /tmp/d 2>&1; echo mkdir=$?",
        p,
    );
    let out = run_ok(&h, &b);
    assert!(out.contains("hello") && out.contains("ls ok"), "{out}");
    assert!(
        out.contains("Permission denied") && out.contains("mkdir=1"),
        "{out}"
    );
}

#[test]
fn podman_default_profile() {
    require_root!();
    let h = Hako::new();
    let script = "grep '^Seccomp:' /proc/self/status; id -u; mkdir /tmp/p && echo mkdir ok; \
                  ls /bin | wc -l; echo $((6*7)); grep '^Seccomp_filters:' /proc/self/status";
    // podman runs without noNewPrivileges (the filter goes on before the capabilities drop) and
    // with it (right before execve).
    for nnp in [false, true] {
        let mut b = bundle(script, podman_profile());
        b.config["process"]["noNewPrivileges"] = json!(nnp);
        let out = run_ok(&h, &b);
        assert!(out.contains("Seccomp:\t2"), "nnp {nnp}: {out}");
        assert!(
            out.contains("mkdir ok") && out.contains("42"),
            "nnp {nnp}: {out}"
        );
        assert!(out.contains("Seccomp_filters:\t1"), "nnp {nnp}: {out}");
    }
}

#[test]
fn loads_before_dropping_privileges() {
    require_root!();
    let h = Hako::new();
    // Without no_new_privs loading needs CAP_SYS_ADMIN: a non-root process without any
    // capability must still get its filter.
    let mut b = bundle(
        "id -u; grep '^Seccomp:' /proc/self/status; mkdir /tmp/u 2>&1; echo mkdir=$?",
        json!({"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                             "errnoRet": 22}]}),
    );
    b.config["process"]["noNewPrivileges"] = json!(false);
    b.config["process"]["user"] = json!({"uid": 65534, "gid": 65534});
    fs::set_permissions(
        b.rootfs().join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    let out = run_ok(&h, &b);
    assert!(out.starts_with("65534\n"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(
        out.contains("Invalid argument") && out.contains("mkdir=1"),
        "{out}"
    );
}

#[test]
fn create_then_start_applies_filter() {
    require_root!();
    let h = Hako::new();
    let mut b = bundle(
        "mkdir /out/x 2>&1; grep '^Seccomp:' /proc/self/status",
        json!({"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}),
    );
    let out_dir = b.out_dir();
    b.set_sh("mkdir /out/x 2>/out/err; grep '^Seccomp:' /proc/self/status > /out/status");
    let id = h.new_id();
    h.create(&id, &b).assert_ok();
    h.start(&id).assert_ok();
    assert!(h.wait_status(&id, "stopped", Duration::from_secs(10)));
    assert!(!out_dir.join("x").exists());
    assert!(read(out_dir.join("err")).contains("Operation not permitted"));
    assert!(read(out_dir.join("status")).contains("Seccomp:\t2"));
}

// --- SCMP_ACT_NOTIFY --------------------------------------------------------------------------

#[repr(C)]
#[derive(Default)]
struct SeccompData {
    nr: i32,
    arch: u32,
    ip: u64,
    args: [u64; 6],
}

#[repr(C)]
#[derive(Default)]
struct Notif {
    id: u64,
    pid: u32,
    flags: u32,
    data: SeccompData,
}

#[repr(C)]
struct NotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

const NOTIF_RECV: libc::c_ulong = 0xc050_2100; // _IOWR('!', 0, struct seccomp_notif)
const NOTIF_SEND: libc::c_ulong = 0xc018_2101; // _IOWR('!', 1, struct seccomp_notif_resp)

/// What the agent saw: the state JSON and the syscall numbers it answered.
struct AgentReport {
    state: Value,
    answered: Vec<i32>,
}

/// A seccomp agent: accepts one connection on `path`, takes the fd and JSON (one SCM_RIGHTS
/// message), then answers every mkdir with `-EXDEV` (and lets anything else run) until the
/// filter's users are gone.
fn agent(path: PathBuf) -> std::thread::JoinHandle<Result<AgentReport, String>> {
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        let (conn, _) = listener.accept().map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 1 << 16];
        let mut cmsg = nix::cmsg_space!([i32; 4]);
        let (n, fd) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = recvmsg::<()>(
                conn.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::empty(),
            )
            .map_err(|e| e.to_string())?;
            let mut fd = None;
            for c in msg.cmsgs().map_err(|e| e.to_string())? {
                if let ControlMessageOwned::ScmRights(fds) = c {
                    // SAFETY: SCM_RIGHTS just installed this fd in our table; we are its only
                    // owner.
                    fd = fds.first().map(|f| unsafe { OwnedFd::from_raw_fd(*f) });
                }
            }
            (msg.bytes, fd.ok_or("no fd in the message")?)
        };
        let state: Value = serde_json::from_slice(&buf[..n]).map_err(|e| e.to_string())?;
        let mut answered = Vec::new();
        loop {
            let mut pfd = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: `pfd` is one live pollfd and poll writes only its `revents`.
            let r = unsafe { libc::poll(&mut pfd, 1, 20_000) };
            if r <= 0 {
                return Err(format!("poll on the notify fd: {r}"));
            }
            if pfd.revents & libc::POLLIN == 0 {
                break; // POLLHUP: every process using the filter is gone
            }
            let mut req = Notif::default();
            // SAFETY: NOTIF_RECV writes one seccomp_notif into `req`, a #[repr(C)] struct of the
            // kernel's size.
            if unsafe { libc::ioctl(fd.as_raw_fd(), NOTIF_RECV, &mut req) } != 0 {
                continue; // the target died meanwhile
            }
            answered.push(req.data.nr);
            // mkdir gets EXDEV; anything else runs as asked (SECCOMP_USER_NOTIF_FLAG_CONTINUE),
            // as runc's test agent does.
            let mkdir =
                req.data.nr == libc::SYS_mkdir as i32 || req.data.nr == libc::SYS_mkdirat as i32;
            let resp = NotifResp {
                id: req.id,
                val: 0,
                error: if mkdir { -libc::EXDEV } else { 0 },
                flags: if mkdir { 0 } else { 1 },
            };
            // SAFETY: NOTIF_SEND reads one seccomp_notif_resp from `resp`, which lives across the
            // call.
            unsafe { libc::ioctl(fd.as_raw_fd(), NOTIF_SEND, &resp) };
        }
        Ok(AgentReport { state, answered })
    })
}

#[test]
fn notify_sends_fd_and_state_to_agent() {
    require_root!();
    let h = Hako::new();
    let sock = h.scratch().join("agent.sock");
    let b = bundle(
        "mkdir /tmp/n 2>&1; echo mkdir=$?; test -d /tmp/n || echo absent",
        json!({"defaultAction": "SCMP_ACT_ALLOW",
               "listenerPath": sock.to_string_lossy(),
               "listenerMetadata": "hako-test-metadata",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}),
    );
    let agent = agent(sock);
    let id = h.new_id();
    let o = h.run(&id, &b);
    o.assert_ok();
    assert!(
        o.stdout.contains("Invalid cross-device link"),
        "the agent's answer: {o:?}"
    );
    assert!(
        o.stdout.contains("mkdir=1") && o.stdout.contains("absent"),
        "{o:?}"
    );
    let r = agent.join().unwrap().unwrap();
    assert!(!r.answered.is_empty());
    let s = &r.state;
    assert_eq!(s["fds"], json!(["seccompFd"]), "{s}");
    assert_eq!(s["metadata"], "hako-test-metadata", "{s}");
    assert!(s["ociVersion"].is_string(), "{s}");
    assert!(s["pid"].as_i64().unwrap() > 0, "{s}");
    assert_eq!(s["state"]["id"], id, "{s}");
    assert_eq!(s["state"]["pid"], s["pid"], "{s}");
    assert_eq!(s["state"]["status"], "creating", "{s}");
    assert_eq!(
        s["state"]["bundle"],
        b.path().to_string_lossy().as_ref(),
        "{s}"
    );
}

// --- bad profiles -----------------------------------------------------------------------------

#[track_caller]
fn fails_cleanly(b: &Bundle, needles: &[&str]) {
    let h = Hako::new();
    let id = h.new_id();
    let o = h.create(&id, b);
    o.assert_err();
    if testing_runc() {
        // runc 1.1 does not name the field ("string X is not a valid action for seccomp").
        eprintln!("runc: {}", o.stderr.trim());
    }
    for n in needles.iter().filter(|_| !testing_runc()) {
        assert!(o.stderr.contains(n), "stderr should mention {n:?}: {o:?}");
    }
    h.assert_nothing_left(&id, b.path(), "");
}

#[test]
fn bad_profiles_fail_create() {
    require_root!();
    let ok = json!({"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"});
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [ok, ok, ok, {"names": ["getcwd"], "action": "SCMP_ACT_BOGUS"}]}),
            vec![
                "linux.seccomp.syscalls[3].action",
                "string SCMP_ACT_BOGUS is not a valid action for seccomp",
            ],
        ),
        (
            json!({"defaultAction": "SCMP_ACT_NOPE"}),
            vec!["linux.seccomp.defaultAction"],
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]}),
            vec![
                "linux.seccomp.architectures[0]",
                "string SCMP_ARCH_VAX is not a valid arch for seccomp",
            ],
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NOPE"]}),
            vec!["linux.seccomp.flags[0]"],
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ALMOST"}]}]}),
            vec![
                "linux.seccomp.syscalls[0].args[0].op",
                "string SCMP_CMP_ALMOST is not a valid operator for seccomp",
            ],
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            vec!["linux.seccomp.listenerPath", "listenerPath is not set"],
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "",
                   "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            vec!["linux.seccomp.listenerPath", "listenerPath is not set"],
        ),
    ];
    for (profile, needles) in cases {
        let b = bundle("true", profile);
        fails_cleanly(&b, &needles);
    }
}

#[test]
fn unknown_syscall_names_are_skipped() {
    require_root!();
    let mut h = Hako::new();
    let log = h.scratch().join("log.json");
    h.global = vec![
        "--debug".into(),
        "--log".into(),
        log.to_string_lossy().into(),
        "--log-format".into(),
        "json".into(),
    ];
    let b = bundle(
        "mkdir /tmp/s 2>&1; echo mkdir=$?",
        json!({"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["hako_no_such_syscall", "mkdir", "mkdirat"],
                             "action": "SCMP_ACT_ERRNO"}]}),
    );
    let out = run_ok(&h, &b);
    assert!(out.contains("mkdir=1"), "{out}");
    if !testing_runc() {
        let l = read(&log);
        assert!(
            l.contains("hako_no_such_syscall"),
            "debug log names it: {l}"
        );
    }
}

#[test]
fn compiled_profiles_are_cached_under_root() {
    require_root!();
    if testing_runc() {
        return;
    }
    let h = Hako::new();
    let b = bundle(
        "rmdir /tmp/c 2>/dev/null; mkdir /tmp/c 2>&1; echo mkdir=$?",
        podman_profile(),
    );
    let cache = h.root().join("@seccomp");
    for _ in 0..2 {
        let out = run_ok(&h, &b);
        assert!(out.contains("mkdir=0"), "{out}");
    }
    assert_eq!(
        fs::read_dir(&cache).unwrap().count(),
        1,
        "one entry per profile"
    );
    // A cached program behaves like a fresh one.
    let b = bundle(
        "mkdir /tmp/d 2>&1; echo mkdir=$?",
        json!({"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}),
    );
    for _ in 0..2 {
        let out = run_ok(&h, &b);
        assert!(out.contains("mkdir=1"), "{out}");
    }
    assert_eq!(fs::read_dir(&cache).unwrap().count(), 2);
    // Not a container.
    let l = h.list(&["-q"]);
    l.assert_ok();
    assert!(l.stdout.trim().is_empty(), "{l:?}");
}

// --- where the filter goes on ------------------------------------------------------------------

/// A profile that makes getcwd fail must not break the start: the cwd is entered and checked
/// before the filter goes on (crun's order), with and without noNewPrivileges. (runc checks it
/// under the filter without noNewPrivileges, and fails.)
#[test]
fn getcwd_denied_does_not_break_start() {
    require_root!();
    let h = Hako::new();
    for nnp in [false, true] {
        let mut b = bundle(
            "echo started; grep '^Seccomp:' /proc/self/status",
            json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2}]}),
        );
        b.config["process"]["noNewPrivileges"] = json!(nnp);
        b.config["process"]["cwd"] = json!("/tmp");
        if testing_runc() && !nnp {
            // Debian's runc 1.1.5 checks the cwd (CVE-2024-21626 backport) under the filter.
            eprintln!("runc: {:?}", h.run(&h.new_id(), &b).stderr);
            continue;
        }
        let out = run_ok(&h, &b);
        assert!(out.contains("started"), "nnp {nnp}: {out}");
        // The filter is on for the container's program.
        assert!(out.contains("Seccomp:\t2"), "nnp {nnp}: {out}");
    }
}

/// A bundle whose startContainer hook runs `script` (in the container) and whose own process
/// records that it ran.
fn hooked(script: &str, seccomp: Value, nnp: bool) -> (Bundle, PathBuf) {
    let mut b = bundle("echo main > /out/main", seccomp);
    let out = b.out_dir();
    b.config["process"]["noNewPrivileges"] = json!(nnp);
    b.config["hooks"] =
        json!({"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]});
    (b, out)
}

/// startContainer hooks run under the container's filter (runc loads it at create): a syscall
/// the filter kills kills the hook and fails the start with runc's words.
#[test]
fn start_container_hook_killed_by_the_filter() {
    require_root!();
    let h = Hako::new();
    for nnp in [false, true] {
        let (b, out) = hooked(
            "mkdir /tmp/hk",
            json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}]}),
            nnp,
        );
        let id = h.new_id();
        h.create(&id, &b).assert_ok();
        let o = h.start(&id);
        if testing_runc() {
            // runc 1.1.5 reports the hook's failure from its init, after `start` returned 0.
            eprintln!("runc start: {o:?}");
        } else {
            o.assert_err();
            assert!(
                o.stderr.contains("error running")
                    && o.stderr.contains("hook")
                    && o.stderr.contains("bad system call"),
                "nnp {nnp}: {o:?}"
            );
        }
        assert!(h.wait_status(&id, "stopped", Duration::from_secs(10)));
        assert!(!b.rootfs().join("tmp/hk").exists(), "nnp {nnp}");
        assert!(
            !out.join("main").exists(),
            "nnp {nnp}: the process must not run"
        );
    }
}

/// ALLOW rules of a default-deny profile let the hook run, and what they leave out fails in the
/// hook as in the container (podman's profile without mkdir: ENOSYS).
#[test]
fn start_container_hook_under_an_allow_list() {
    require_root!();
    let h = Hako::new();
    let mut p = podman_profile();
    for sc in p["syscalls"].as_array_mut().unwrap() {
        sc["names"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n != "mkdir" && n != "mkdirat");
    }
    for nnp in [false, true] {
        let (b, out) = hooked(
            "mkdir /out/h 2>/out/hook-err; echo ran > /out/hook",
            p.clone(),
            nnp,
        );
        let id = h.new_id();
        h.create(&id, &b).assert_ok();
        h.start(&id).assert_ok();
        assert!(h.wait_status(&id, "stopped", Duration::from_secs(10)));
        assert_eq!(read(out.join("hook")), "ran\n", "nnp {nnp}");
        assert!(!out.join("h").exists(), "nnp {nnp}");
        assert!(
            read(out.join("hook-err")).contains("Function not implemented"),
            "nnp {nnp}: {}",
            read(out.join("hook-err"))
        );
        assert_eq!(read(out.join("main")), "main\n", "nnp {nnp}");
    }
}

/// A NOTIFY rule catches the hook's syscall too: the agent answers it.
#[test]
fn start_container_hook_notifies_the_agent() {
    require_root!();
    let h = Hako::new();
    for nnp in [false, true] {
        let sock = h.scratch().join(format!("agent-hook-{nnp}.sock"));
        let (b, out) = hooked(
            "mkdir /out/n 2>/out/hook-err; echo ran > /out/hook",
            json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "listenerPath": sock.to_string_lossy(),
                   "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}),
            nnp,
        );
        let agent = agent(sock);
        let id = h.new_id();
        h.create(&id, &b).assert_ok();
        h.start(&id).assert_ok();
        assert!(h.wait_status(&id, "stopped", Duration::from_secs(10)));
        assert_eq!(read(out.join("hook")), "ran\n", "nnp {nnp}");
        assert!(
            read(out.join("hook-err")).contains("Invalid cross-device link"),
            "nnp {nnp}: the agent's answer"
        );
        assert!(!out.join("n").exists());
        let r = agent.join().unwrap().unwrap();
        assert!(
            r.answered
                .iter()
                .any(|nr| *nr == libc::SYS_mkdir as i32 || *nr == libc::SYS_mkdirat as i32),
            "nnp {nnp}: {:?}",
            r.answered
        );
    }
}

/// runc's "important syscalls" case: the runtime's own last syscalls (read, close, openat,
/// execve) may be notified; the agent gets them after it has the fd, so nothing waits forever.
#[test]
fn notify_important_syscalls() {
    require_root!();
    let h = Hako::new();
    for nnp in [false, true] {
        let sock = h.scratch().join(format!("agent-imp-{nnp}.sock"));
        let mut b = bundle(
            "",
            json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "listenerPath": sock.to_string_lossy(),
                   "syscalls": [{"names": ["execve", "openat", "open", "read", "close"],
                                 "action": "SCMP_ACT_NOTIFY"}]}),
        );
        b.set_args(&["/bin/true"]);
        b.config["process"]["noNewPrivileges"] = json!(nnp);
        let agent = agent(sock);
        let o = h.run(&h.new_id(), &b);
        o.assert_ok();
        let r = agent.join().unwrap().unwrap();
        assert!(
            r.answered.contains(&(libc::SYS_execve as i32)),
            "nnp {nnp}: {:?}",
            r.answered
        );
    }
}

/// An agent that cannot be reached: runc's words, and nothing left behind.
#[test]
fn notify_agent_unreachable() {
    require_root!();
    let h = Hako::new();
    let b = bundle(
        "true",
        json!({"defaultAction": "SCMP_ACT_ALLOW",
               "listenerPath": h.scratch().join("nobody-listens.sock").to_string_lossy(),
               "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
    );
    let id = h.new_id();
    let o = h.create(&id, &b);
    o.assert_err();
    assert!(
        o.stderr.contains("failed to connect with seccomp agent"),
        "{o:?}"
    );
    assert!(o.stderr.contains("nobody-listens.sock"), "{o:?}");
    assert!(!h.state_dir(&id).exists(), "state dir left behind");
    assert!(
        wait_for(Duration::from_secs(5), || processes_using(b.path())
            .is_empty()),
        "leftover processes"
    );
}

// --- the -ENOSYS stub --------------------------------------------------------------------------

/// A static program calling each syscall number it is given (with a bad fd as first argument)
/// and printing `NR=ok` or `NR=ERRNONAME`.
fn install_syscall_probe(rootfs: &Path) {
    let src = rootfs.join("probe.c");
    fs::write(
        &src,
        r#"#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    long nr = strtol(argv[i], NULL, 0);
    errno = 0;
    long r = syscall(nr, -1L, 0L, 0L, 0L, 0L, 0L);
    printf("%ld=%s\n", nr, r < 0 ? strerrorname_np(errno) : "ok");
  }
  return 0;
}
"#,
    )
    .unwrap();
    let bin = rootfs.join("bin/sysprobe");
    let ok = std::process::Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .is_ok_and(|s| s.success());
    fs::remove_file(&src).unwrap();
    assert!(ok, "gcc -static failed (make deps installs it)");
}

/// runc's -ENOSYS stub: under a default-deny profile that lists architectures, a syscall number
/// above every one the profile names (newer than the profile, or than libseccomp) fails with
/// ENOSYS, so glibc falls back to older syscalls; one the profile merely leaves out gets the
/// default action. Without `architectures` runc makes no stub, and neither does hako.
#[test]
fn newer_syscalls_get_enosys() {
    require_root!();
    let h = Hako::new();
    // podman's profile with the default errno EPERM instead of ENOSYS.
    let mut p = podman_profile();
    p.as_object_mut().unwrap().remove("defaultErrnoRet");
    // 1000: no syscall at all yet; 174: create_module (x86_64), removed long ago and in no list.
    let args = ["/bin/sysprobe", "1000", "174"];
    for nnp in [false, true] {
        let mut b = bundle("", p.clone());
        install_syscall_probe(&b.rootfs());
        b.set_args(&args);
        b.config["process"]["noNewPrivileges"] = json!(nnp);
        let out = run_ok(&h, &b);
        assert_eq!(out, "1000=ENOSYS\n174=EPERM\n", "nnp {nnp}");
    }
    let mut no_archs = p.clone();
    no_archs.as_object_mut().unwrap().remove("architectures");
    let mut b = bundle("", no_archs);
    install_syscall_probe(&b.rootfs());
    b.set_args(&args);
    assert_eq!(run_ok(&h, &b), "1000=EPERM\n174=EPERM\n");
    // Allow by default: nothing to patch, the kernel's own ENOSYS.
    let mut b = bundle(
        "",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
               "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}),
    );
    install_syscall_probe(&b.rootfs());
    b.set_args(&args);
    assert_eq!(run_ok(&h, &b), "1000=ENOSYS\n174=ENOSYS\n");
}

/// A startContainer hook under a profile that denies close_range still gets only stdin, stdout
/// and stderr (a preserved fd is the container's, not the hook's), and the container still gets
/// its preserved fd.
#[test]
fn start_container_hook_fds_without_close_range() {
    require_root!();
    if testing_runc() {
        return; // runc 1.1.5 leaks its own fds into hooks
    }
    let h = Hako::new();
    let (mut b, out) = hooked(
        "ls /proc/self/fd > /out/hook-fds",
        json!({"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["close_range"], "action": "SCMP_ACT_ERRNO"}]}),
        true,
    );
    b.set_sh("ls /proc/self/fd > /out/main-fds");
    b.save();
    let (r, w) = pipe();
    drop(r);
    let id = h.new_id();
    h.track(&id);
    let o = h.cmd_opts(
        &[
            "run",
            "--bundle",
            b.path().to_str().unwrap(),
            "--preserve-fds",
            "1",
            &id,
        ],
        CmdOpts {
            fds: vec![(w, 3)],
            ..Default::default()
        },
    );
    o.assert_ok();
    // ls's own directory fd is 3 in both.
    let hook: Vec<String> = read(out.join("hook-fds"))
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(hook, ["0", "1", "2", "3"], "hook fds");
    let main = read(out.join("main-fds"));
    assert!(
        main.split_whitespace().any(|f| f == "3") && main.split_whitespace().any(|f| f == "4"),
        "the container keeps its preserved fd 3: {main}"
    );
}

/// The kernel's audit records (type 1326, SECCOMP) of `pid`, from the kernel log.
fn audit_records_of(pid: i32) -> Vec<String> {
    let o = std::process::Command::new("dmesg").output().expect("dmesg");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.contains("type=1326") && l.contains(&format!(" pid={pid} ")))
        .map(str::to_string)
        .collect()
}

/// A container whose init execs `mkdir /tmp/x` under `profile`: its pid, once it exited.
fn mkdir_pid(h: &Hako, profile: Value) -> i32 {
    let b = bundle("exec mkdir /tmp/x", profile);
    let id = h.new_id();
    h.create(&id, &b).assert_ok();
    let pid = h.pid(&id);
    h.start(&id).assert_ok();
    assert!(h.wait_status(&id, "stopped", Duration::from_secs(10)));
    pid
}

/// `linux.seccomp.flags` as runc 1.3 applies them (its patchbpf loads the program with them):
/// SECCOMP_FILTER_FLAG_LOG makes the kernel audit-log every action but ALLOW (here an ERRNO
/// that is otherwise silent), TSYNC is accepted and changes nothing (one thread), SPEC_ALLOW
/// leaves the speculative store bypass mitigation as the host has it instead of forcing it on
/// the process (observable only where the host mitigates through seccomp). The filter is one
/// (Seccomp_filters: 1) with every flag. runc 1.1 refused any flag.
#[test]
fn filter_flags_take_effect() {
    require_root!();
    let h = Hako::new();
    let rules =
        json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]);
    let all = json!({"defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        "syscalls": rules});
    let b = bundle(
        "grep -E '^(Seccomp_filters|Speculation_Store_Bypass):' /proc/self/status; \
         mkdir /tmp/y 2>/dev/null; echo mkdir=$?",
        all,
    );
    let out = run_ok(&h, &b);
    assert!(out.contains("Seccomp_filters:\t1"), "{out}");
    assert!(out.contains("mkdir=1"), "{out}");
    let host_ssb = read("/sys/devices/system/cpu/vulnerabilities/spec_store_bypass");
    if host_ssb.contains("seccomp") {
        assert!(
            !out.contains("force mitigated"),
            "SPEC_ALLOW ignored: {out}"
        );
    } else {
        skip_part("SPEC_ALLOW", &format!("host SSB is {host_ssb:?}"));
    }

    let quiet = mkdir_pid(
        &h,
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}),
    );
    let logged = mkdir_pid(
        &h,
        json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG"],
               "syscalls": rules}),
    );
    // The kernel rate-limits its log (printk_ratelimit) while other tests write to it.
    assert!(
        wait_for(Duration::from_secs(10), || !audit_records_of(logged)
            .is_empty()),
        "no audit record of the ERRNO with SECCOMP_FILTER_FLAG_LOG"
    );
    let rec = audit_records_of(logged).join("\n");
    assert!(
        rec.contains("comm=\"mkdir\"") && rec.contains("code=0x5"),
        "{rec}"
    );
    assert!(
        audit_records_of(quiet).is_empty(),
        "an ERRNO without the flag was logged"
    );
}
