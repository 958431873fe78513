//! The last steps of the container process before execve: its attributes (from the
//! [`crate::init::attrs`] plan), cwd, fds, environment and the executable lookup.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::fd::RawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use hako_spec::oci::Process;

use crate::init::attrs::Plan;
use crate::security::seccomp::Placement;

use crate::error::{Context, Error, Result};

/// The process's environment as runc 1.3's prepareEnv makes it: `env` (the config's, then
/// `exec --env`'s and LISTEN_FDS, in that order) with each name once, at the place of its last
/// occurrence and with its last value (glibc's getenv takes the first, so a duplicate left in
/// would let the config's value beat `exec --env`), and HOME from the container's /etc/passwd
/// (`/` without an entry) when it is missing or empty: many images rely on it.
pub fn environment(env: impl IntoIterator<Item = String>, uid: u32) -> Vec<String> {
    let env: Vec<String> = env.into_iter().collect();
    let name = |kv: &str| kv.split_once('=').map_or(kv, |(k, _)| k).to_string();
    let mut seen = HashSet::new();
    let mut out: Vec<String> = env
        .into_iter()
        .rev()
        .filter(|kv| seen.insert(name(kv)))
        .collect();
    out.reverse();
    if !out
        .iter()
        .any(|e| e.len() > "HOME=".len() && e.starts_with("HOME="))
    {
        out.retain(|e| e != "HOME=");
        let home = home_of(uid).unwrap_or_else(|| "/".into());
        out.push(format!("HOME={home}"));
    }
    out
}

fn home_of(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[5].to_string())
    })
}

/// Finds the executable the way runc (Go's exec.LookPath) does, with the container's PATH, and
/// words the failure as runc does: podman maps these texts to exit codes 126/127.
pub fn lookup(arg0: &str, env: &[String]) -> Result<PathBuf> {
    let check = |p: &Path| -> std::result::Result<(), std::io::Error> {
        let m = std::fs::metadata(p)?;
        if m.is_dir() || m.permissions().mode() & 0o111 == 0 {
            return Err(std::io::Error::from_raw_os_error(libc::EACCES));
        }
        Ok(())
    };
    if arg0.contains('/') {
        return match check(Path::new(arg0)) {
            Ok(()) => Ok(PathBuf::from(arg0)),
            Err(e) => Err(Error::Init(format!(
                "exec: {arg0:?}: stat {arg0}: {}",
                io_text(&e)
            ))),
        };
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("");
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = Path::new(dir).join(arg0);
        if check(&cand).is_ok() {
            return Ok(cand);
        }
    }
    Err(Error::Init(format!(
        "exec: {arg0:?}: executable file not found in $PATH"
    )))
}

/// Go's wording of common errnos (lowercase, no "(os error N)").
pub fn io_text(e: &std::io::Error) -> String {
    hako_spec::error::io_text(e)
}

pub fn cstrings(v: &[String]) -> Result<Vec<CString>> {
    v.iter()
        .map(|s| {
            CString::new(s.as_bytes())
                .map_err(|_| Error::Usage(format!("{s:?} contains a NUL byte")))
        })
        .collect()
}

/// A fresh anonymous session keyring, so the process cannot read the keys of the host session it
/// was started from.
pub fn join_session_keyring() -> Result<()> {
    let name = c"_ses.hako";
    // SAFETY: `name` is a static NUL-terminated string, read by the kernel only.
    let r = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            1, /* KEYCTL_JOIN_SESSION_KEYRING */
            name.as_ptr(),
        )
    };
    if r < 0 && nix::errno::Errno::last() != nix::errno::Errno::ENOSYS {
        return Err(Error::sys(
            "join session keyring",
            nix::errno::Errno::last(),
        ));
    }
    Ok(())
}

/// A process whose credentials, limits, cwd and seccomp filter are in place; only execve is left.
pub struct Ready {
    pub exe: PathBuf,
    pub argv: Vec<String>,
    pub env: Vec<String>,
}

/// Which fds cross execve: stdio and `preserve` fds from 3 on, except `skip` (the runtime's own,
/// which stay close-on-exec).
pub struct PassFds<'a> {
    pub preserve: u32,
    pub skip: &'a [RawFd],
}

/// Marks every fd but stdio and the preserved ones close-on-exec, and the preserved ones not.
/// Done before the seccomp filter goes on, which may deny close_range (an older profile): an fd
/// from the caller must never reach the container because a syscall failed. Anything opened
/// after this is close-on-exec already (Rust opens everything O_CLOEXEC).
pub fn mark_cloexec(fds: &PassFds) {
    let keep_end = 3 + fds.preserve;
    for fd in 3..keep_end as RawFd {
        if !fds.skip.contains(&fd) {
            // SAFETY: F_SETFD on a number only changes that fd's flags (EBADF if it is not open).
            unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        }
    }
    if crate::sys::close_range(keep_end, crate::sys::CLOSE_RANGE_CLOEXEC).is_err() {
        // Kernels before 5.11: one fcntl per open fd.
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            let fds: Vec<RawFd> = dir
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .filter(|fd| *fd >= keep_end as RawFd)
                .collect();
            for fd in fds {
                // SAFETY: F_SETFD on a number only changes that fd's flags (EBADF if it is not
                // open).
                unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            }
        }
    }
}

/// chdir to the cwd, then make sure it is inside our root: CVE-2024-21626, a cwd reached through
/// a leaked host fd is outside it, and getcwd reports that as ENOENT ("(unreachable)"). With
/// `may_defer`, a permission error is not fatal: runc tries again after the uid change (a volume
/// only the container user may enter).
fn enter_cwd(cwd: &Path, may_defer: bool) -> Result<bool> {
    match nix::unistd::chdir(cwd) {
        Ok(()) => {}
        Err(nix::errno::Errno::EACCES | nix::errno::Errno::EPERM) if may_defer => return Ok(false),
        Err(e) => return Err(e).ctx("chdir to cwd", cwd),
    }
    nix::unistd::getcwd().map_err(|_| {
        Error::Init(format!(
            "cwd {} is outside the container root",
            cwd.display()
        ))
    })?;
    Ok(true)
}

/// The process set up for execve: the [`crate::init::attrs`] plan's phases, in the order the
/// kernel needs them, around what belongs to the program itself (its cwd, fds, environment and
/// executable). The cwd is entered while still privileged and checked to be inside the root
/// (CVE-2024-21626); a permission error is retried as the user.
pub fn prepare(
    p: &Process,
    attrs: &Plan,
    extra_env: &[String],
    fds: &PassFds,
    notify: &mut dyn FnMut(std::os::fd::OwnedFd) -> Result<()>,
) -> Result<Ready> {
    attrs.apply_privileged()?;
    let in_cwd = enter_cwd(p.cwd(), true)?;
    mark_cloexec(fds);
    attrs.apply_final()?;
    attrs.load_seccomp(Placement::BeforeCaps, notify)?;
    attrs.become_user()?;
    if !in_cwd {
        enter_cwd(p.cwd(), false)?;
    }
    attrs.apply_caps()?;
    let configured = p.env().iter().flatten().chain(extra_env);
    let env = environment(configured.cloned(), attrs.uid());
    let argv = p.args().clone().unwrap_or_default();
    let exe = lookup(&argv[0], &env)
        .map_err(|e| Error::Init(format!("unable to start container process: {e}")))?;
    attrs.apply_exec_attrs()?;
    attrs.load_seccomp(Placement::AfterNoNewPrivs, notify)?;
    Ok(Ready { exe, argv, env })
}

impl Ready {
    /// execve; returns only on failure.
    pub fn exec(self) -> Error {
        let (Ok(argv), Ok(env), Ok(exe)) = (
            cstrings(&self.argv),
            cstrings(&self.env),
            crate::sys::cstr(&self.exe),
        ) else {
            return Error::Usage("argument contains a NUL byte".into());
        };
        let err = nix::unistd::execve(&exe, &argv, &env).unwrap_err();
        exec_failed(&self.exe, err)
    }
}

/// A failed execve in runc 1.3's words (Go's `*os.PathError` of op "exec" on the looked-up
/// path: `exec /run.sh: no such file or directory` for a missing interpreter); podman maps the
/// errno text to 126/127.
fn exec_failed(exe: &Path, err: nix::errno::Errno) -> Error {
    let e = std::io::Error::from_raw_os_error(err as i32);
    Error::Init(format!("exec {}: {}", exe.display(), io_text(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_words_like_runc() {
        let env = vec!["PATH=/usr/bin:/bin".to_string()];
        assert!(lookup("sh", &env).unwrap().is_absolute());
        let e = lookup("no-such-cmd-hako", &env).unwrap_err().to_string();
        assert_eq!(
            e,
            "exec: \"no-such-cmd-hako\": executable file not found in $PATH"
        );
        let e = lookup("/no/such", &env).unwrap_err().to_string();
        assert_eq!(
            e,
            "exec: \"/no/such\": stat /no/such: no such file or directory"
        );
    }

    #[test]
    fn exec_failure_words_like_runc_13() {
        let e = exec_failed(Path::new("/run.sh"), nix::errno::Errno::ENOENT);
        assert_eq!(e.to_string(), "exec /run.sh: no such file or directory");
    }

    #[test]
    fn environment_keeps_the_last_of_each_name() {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let env = environment(v(&["A=1", "HOME=/h", "B=b", "A=2"]), 0);
        assert_eq!(env, v(&["HOME=/h", "B=b", "A=2"]));
        // An empty HOME, last of several, is replaced (uid 4242 has no entry here: `/`).
        let env = environment(v(&["HOME=/x", "P=1", "HOME=", "Z=1"]), 4242);
        assert_eq!(env, v(&["P=1", "Z=1", "HOME=/"]));
        let env = environment(v(&["HOME=", "HOME=/y"]), 4242);
        assert_eq!(env, v(&["HOME=/y"]));
    }
}
