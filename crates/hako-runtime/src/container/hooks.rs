//! OCI hooks: each gets the container state on stdin, runs with its own env and args, and is
//! killed when it outlives its `timeout`. Runs without threads: one poll loop over the hook's
//! stdout, stderr and pidfd.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hako_spec::oci::{Hook, Hooks};

use crate::error::{Error, Result};
use crate::sys;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Prestart => "prestart",
            Kind::CreateRuntime => "createRuntime",
            Kind::CreateContainer => "createContainer",
            Kind::StartContainer => "startContainer",
            Kind::Poststart => "poststart",
            Kind::Poststop => "poststop",
        }
    }

    pub fn of(self, h: &Hooks) -> Vec<Hook> {
        match self {
            Kind::Prestart => {
                #[allow(deprecated)]
                let v = h.prestart().clone();
                v
            }
            Kind::CreateRuntime => h.create_runtime().clone(),
            Kind::CreateContainer => h.create_container().clone(),
            Kind::StartContainer => h.start_container().clone(),
            Kind::Poststart => h.poststart().clone(),
            Kind::Poststop => h.poststop().clone(),
        }
        .unwrap_or_default()
    }
}

/// Whether the runtime and the init must meet between the init's mounts and its `Created`
/// (RunRuntimeHooks/HooksDone): only for hooks that run there, or that need the state the
/// runtime hands over then (createContainer and startContainer hooks get it on stdin).
pub fn need_create_round_trip(hooks: Option<&Hooks>) -> bool {
    hooks.is_some_and(|h| {
        [
            Kind::Prestart,
            Kind::CreateRuntime,
            Kind::CreateContainer,
            Kind::StartContainer,
        ]
        .into_iter()
        .any(|k| !k.of(h).is_empty())
    })
}

/// Runs every hook of `kind` in order; the first failure stops the rest and is returned. `cwd`:
/// the hooks' working directory (runc's: the bundle for the runtime's hooks at create, the
/// container's root for createContainer); None keeps ours.
pub fn run_all(hooks: Option<&Hooks>, kind: Kind, state: &str, cwd: Option<&Path>) -> Result<()> {
    run_all_in(hooks, kind, state, cwd, &[])
}

/// [`run_all`] for hooks that inherit `env` when they have no `env` of their own: runc 1.3 runs
/// startContainer hooks from its init, whose environment is the container process's by then
/// (Go's exec passes the caller's when a command's is nil).
pub fn run_all_in(
    hooks: Option<&Hooks>,
    kind: Kind,
    state: &str,
    cwd: Option<&Path>,
    env: &[String],
) -> Result<()> {
    let Some(h) = hooks else { return Ok(()) };
    for (i, hook) in kind.of(h).iter().enumerate() {
        run(hook, state, cwd, env)
            .map_err(|e| Error::Hook(format!("error running {} hook #{i}: {e}", kind.name())))?;
    }
    Ok(())
}

/// Runs every hook of `kind` even when one fails, logging each failure as a warning: what the
/// spec asks for poststart and poststop hooks.
pub fn run_all_warn(hooks: Option<&Hooks>, kind: Kind, state: &str) {
    let Some(h) = hooks else { return };
    for (i, hook) in kind.of(h).iter().enumerate() {
        crate::log::debug(&format!(
            "running {} hook #{i}: {}",
            kind.name(),
            hook.path().display()
        ));
        if let Err(e) = run(hook, state, None, &[]) {
            crate::log::warn(&format!("error running {} hook #{i}: {e}", kind.name()));
        }
    }
}

fn pipe() -> std::result::Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

/// `inherited`: the environment of a hook without `env` (an empty `env` is an empty one).
pub fn run(
    hook: &Hook,
    state: &str,
    cwd: Option<&Path>,
    inherited: &[String],
) -> std::result::Result<(), String> {
    let mut cmd = command(hook, cwd, inherited);
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::from(out_w))
        .stderr(Stdio::from(err_w));
    let mut child = cmd.spawn().map_err(|e| {
        format!(
            "{}: {}",
            hook.path().display(),
            crate::init::process::io_text(&e)
        )
    })?;
    drop(cmd);
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is allowed: ignore EPIPE.
        let _ = stdin.write_all(state.as_bytes());
    }
    let deadline = hook
        .timeout()
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let output = collect(&child, [out_r, err_r], deadline);
    let Ok(Some((out, err))) = output else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(output.err().unwrap_or_else(|| {
            format!(
                "hook ran past specified timeout of {:.1}s",
                hook.timeout().unwrap_or(0) as f64
            )
        }));
    };
    let status = child.wait().map_err(|e| format!("wait: {e}"))?;
    if status.success() {
        return Ok(());
    }
    Err(failure(status, &out, &err))
}

/// The hook's command: its args (args[0] as argv[0]), its env or `inherited`, its cwd, and no fd
/// of the runtime's (or the init's) but stdin, stdout and stderr.
fn command(hook: &Hook, cwd: Option<&Path>, inherited: &[String]) -> Command {
    let mut cmd = Command::new(hook.path());
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    // SAFETY: the closure runs in the forked child before execve and makes only syscalls (no
    // allocation, no locks).
    unsafe {
        // Every fd from 3 on is close-on-exec (marked, not closed, so std's exec-error pipe
        // works). startContainer hooks run under the container's seccomp filter, which may deny
        // close_range: then one fcntl per possible fd.
        cmd.pre_exec(|| {
            if sys::close_range(3, sys::CLOSE_RANGE_CLOEXEC).is_err() {
                let mut lim = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
                for fd in 3..lim.rlim_cur.min(1 << 20) as i32 {
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
            Ok(())
        });
    }
    if let Some((first, rest)) = hook.args().as_deref().and_then(|a| a.split_first()) {
        cmd.arg0(first).args(rest);
    }
    cmd.env_clear();
    for kv in hook.env().as_deref().unwrap_or(inherited) {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd
}

/// A hook's stdout and stderr.
type Output = (Vec<u8>, Vec<u8>);

/// The hook's stdout and stderr, read until both are closed and the hook has exited, or until
/// `deadline` (then `None`): one poll loop over the pipes and the hook's pidfd, no threads.
fn collect(
    child: &std::process::Child,
    pipes: [OwnedFd; 2],
    deadline: Option<Instant>,
) -> std::result::Result<Option<Output>, String> {
    let pidfd = sys::pidfd_open(child.id() as i32).map_err(|e| format!("pidfd_open: {e}"))?;
    let [out_r, err_r] = pipes;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut open = [Some(out_r), Some(err_r)];
    loop {
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if remaining == Some(Duration::ZERO) {
            return Ok(None);
        }
        // The pipes while either is open; then the pidfd, readable once the hook has exited.
        let watched: Vec<&OwnedFd> = match open.iter().flatten().collect::<Vec<_>>() {
            fds if fds.is_empty() => vec![&pidfd],
            fds => fds,
        };
        let ms = remaining.map_or(-1, |d| d.as_millis().min(i32::MAX as u128) as i32);
        let ready = poll_in(&watched, ms)?;
        if open.iter().all(Option::is_none) {
            if !ready.is_empty() {
                return Ok(Some((out, err)));
            }
            continue;
        }
        for (slot, buf) in open.iter_mut().zip([&mut out, &mut err]) {
            let Some(fd) = slot.as_ref().filter(|fd| ready.contains(&fd.as_raw_fd())) else {
                continue;
            };
            let mut chunk = [0u8; 4096];
            match nix::unistd::read(fd, &mut chunk) {
                Ok(0) | Err(_) => *slot = None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// poll(2) for input on `fds` for up to `ms` (-1: no limit; at least 1 ms otherwise, so a
/// deadline less than a millisecond away does not spin): the raw fds that have an event (EINTR:
/// none).
fn poll_in(fds: &[&OwnedFd], ms: i32) -> std::result::Result<Vec<i32>, String> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = if ms < 0 { -1 } else { ms.max(1) };
    // SAFETY: `p` is a live Vec of pollfd and `len` is its length; poll writes only `revents`.
    let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, ms) };
    if r < 0 {
        return match nix::errno::Errno::last() {
            nix::errno::Errno::EINTR => Ok(vec![]),
            e => Err(format!("poll: {e}")),
        };
    }
    Ok(p.iter().filter(|p| p.revents != 0).map(|p| p.fd).collect())
}

/// A failed hook in runc's words (callers match "error running hook" and Go's signal texts).
fn failure(status: std::process::ExitStatus, out: &[u8], err: &[u8]) -> String {
    let how = match (
        status.code(),
        std::os::unix::process::ExitStatusExt::signal(&status),
    ) {
        (Some(c), _) => format!("exit status {c}"),
        (_, Some(s)) => format!("signal: {}", signal_text(s)),
        _ => "failed".into(),
    };
    format!(
        "error running hook: {how}, stdout: {}, stderr: {}",
        String::from_utf8_lossy(out).trim_end(),
        String::from_utf8_lossy(err).trim_end()
    )
}

/// A signal as Go prints it ("bad system call", "killed"): the C library's description with a
/// lowercase first letter.
fn signal_text(sig: i32) -> String {
    // SAFETY: strsignal returns a pointer to a static or thread-local NUL-terminated string (or
    // NULL); it is copied out at once, and the runtime has no other threads.
    let p = unsafe { libc::strsignal(sig) };
    if p.is_null() {
        return format!("signal {sig}");
    }
    // SAFETY: `p` is non-null and points at strsignal's NUL-terminated string, copied before any
    // other strsignal call.
    let text = unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy();
    let mut c = text.chars();
    match c.next() {
        Some(first) => first.to_lowercase().chain(c).collect(),
        None => format!("signal {sig}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: &str) -> Hook {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn round_trip_only_for_hooks_of_create_and_start() {
        let hooks = |json: &str| -> Hooks { serde_json::from_str(json).unwrap() };
        assert!(!need_create_round_trip(None));
        assert!(!need_create_round_trip(Some(&hooks("{}"))));
        let none_there = r#"{"prestart":[],"poststart":[{"path":"/bin/true"}],"poststop":[{"path":"/bin/true"}]}"#;
        assert!(!need_create_round_trip(Some(&hooks(none_there))));
        for kind in [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
        ] {
            let h = hooks(&format!(r#"{{"{kind}":[{{"path":"/bin/true"}}]}}"#));
            assert!(need_create_round_trip(Some(&h)), "{kind}");
        }
    }

    #[test]
    fn state_on_stdin_and_failure_text() {
        let h =
            hook(r#"{"path":"/bin/sh","args":["sh","-c","read s; echo \"got $s\" >&2; exit 3"]}"#);
        let e = run(&h, "{\"id\":\"x\"}\n", None, &[]).unwrap_err();
        assert_eq!(
            e,
            "error running hook: exit status 3, stdout: , stderr: got {\"id\":\"x\"}"
        );
    }

    #[test]
    fn signal_words_like_go() {
        assert_eq!(signal_text(libc::SIGSYS), "bad system call");
        assert_eq!(signal_text(libc::SIGKILL), "killed");
        let h = hook(r#"{"path":"/bin/sh","args":["sh","-c","kill -SYS $$"]}"#);
        let e = run(&h, "", None, &[]).unwrap_err();
        assert!(
            e.starts_with("error running hook: signal: bad system call"),
            "{e}"
        );
    }

    #[test]
    fn timeout_kills() {
        let h = hook(r#"{"path":"/bin/sh","args":["sh","-c","sleep 10"],"timeout":1}"#);
        let t = Instant::now();
        let e = run(&h, "", None, &[]).unwrap_err();
        assert!(e.contains("timeout of 1.0s"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn env_is_only_the_hooks() {
        let h = hook(
            r#"{"path":"/bin/sh","args":["sh","-c","test \"$A\" = b && test -z \"$HOME\""],"env":["A=b"]}"#,
        );
        run(&h, "", None, &[]).unwrap();
    }
}
