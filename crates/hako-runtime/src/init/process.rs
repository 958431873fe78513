//! The last steps of the container process before execve: rlimits, user and groups,
//! capabilities, no_new_privs, environment and the executable lookup.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::fd::RawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use caps::{CapSet, Capability as Cap, CapsHashSet};
use hako_spec::oci::{Capabilities, LinuxCapabilities, PosixRlimitType, Process};
use nix::unistd::{Gid, Uid};

use crate::error::{Context, Error, Result};

pub fn rlimit_resource(t: PosixRlimitType) -> Option<libc::__rlimit_resource_t> {
    use PosixRlimitType::*;
    Some(match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

/// One `process.rlimits` entry, resolved to the kernel's resource.
#[derive(Debug, Clone)]
pub struct Rlimit {
    name: String,
    resource: libc::__rlimit_resource_t,
    soft: u64,
    hard: u64,
}

/// `process.rlimits` resolved (by the runtime, before anything exists): an unknown type fails
/// naming it.
pub fn rlimit_plan(p: &Process) -> Result<Vec<Rlimit>> {
    p.rlimits()
        .iter()
        .flatten()
        .map(|r| {
            let name = serde_json::to_string(&r.typ()).unwrap_or_default();
            let name = name.trim_matches('"').to_string();
            let resource = rlimit_resource(r.typ())
                .ok_or_else(|| Error::Usage(format!("process.rlimits: unsupported {name}")))?;
            Ok(Rlimit {
                name,
                resource,
                soft: r.soft(),
                hard: r.hard(),
            })
        })
        .collect()
}

/// Set while still privileged: raising a hard limit needs CAP_SYS_RESOURCE.
pub fn set_rlimits(rlimits: &[Rlimit]) -> Result<()> {
    for r in rlimits {
        let lim = libc::rlimit {
            rlim_cur: r.soft,
            rlim_max: r.hard,
        };
        // SAFETY: `lim` is a live rlimit that setrlimit only reads.
        if unsafe { libc::setrlimit(r.resource, &lim) } != 0 {
            return Err(Error::sys(
                format!("setrlimit {} (soft {}, hard {})", r.name, r.soft, r.hard),
                nix::errno::Errno::last(),
            ));
        }
    }
    Ok(())
}

/// The kernel's highest capability number (/proc/sys/kernel/cap_last_cap, which the caps crate
/// would otherwise probe with one prctl per capability, every time it is asked).
fn last_cap() -> u8 {
    static LAST: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *LAST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| {
                caps::runtime::thread_all_supported()
                    .iter()
                    .map(|c| c.index())
                    .max()
                    .unwrap_or(0)
            })
    })
}

fn to_caps(set: &Option<Capabilities>, unknown: &mut Vec<String>) -> CapsHashSet {
    let mut out = HashSet::new();
    for c in set.iter().flatten() {
        let name = serde_json::to_value(c)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        match Cap::from_str(&name) {
            Ok(cap) if cap.index() <= last_cap() => {
                out.insert(cap);
            }
            _ => unknown.push(name),
        }
    }
    out
}

/// Capabilities the config asks for, resolved against what this kernel knows. Unknown ones are
/// reported back so the caller can warn (runc ignores them with a warning too).
#[derive(Debug, Clone, Default)]
pub struct CapPlan {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub permitted: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub ambient: CapsHashSet,
    pub unknown: Vec<String>,
}

/// No `capabilities` object means no capabilities at all (runc), not "keep root's".
pub fn process_cap_plan(p: &Process) -> CapPlan {
    p.capabilities().as_ref().map(cap_plan).unwrap_or_default()
}

pub fn cap_plan(c: &LinuxCapabilities) -> CapPlan {
    let mut unknown = Vec::new();
    let plan = CapPlan {
        bounding: to_caps(c.bounding(), &mut unknown),
        effective: to_caps(c.effective(), &mut unknown),
        permitted: to_caps(c.permitted(), &mut unknown),
        inheritable: to_caps(c.inheritable(), &mut unknown),
        ambient: to_caps(c.ambient(), &mut unknown),
        unknown: vec![],
    };
    unknown.sort();
    unknown.dedup();
    CapPlan { unknown, ..plan }
}

/// runc's warning for capabilities it leaves out (unknown to it or to this kernel), the names as
/// Go prints a slice: `[CAP_A CAP_B]`.
pub fn warn_unknown_capabilities(names: &[String]) {
    if !names.is_empty() {
        crate::log::warn(&format!(
            "ignoring unknown or unavailable capabilities: [{}]",
            names.join(" ")
        ));
    }
}

/// Drops the bounding set. Must run before the uid switch: dropping needs CAP_SETPCAP.
pub fn apply_bounding(plan: &CapPlan) -> Result<()> {
    for cap in caps::all().into_iter().filter(|c| c.index() <= last_cap()) {
        if !plan.bounding.contains(&cap) {
            // SAFETY: PR_CAPBSET_DROP takes integer arguments only.
            let r = unsafe {
                libc::prctl(libc::PR_CAPBSET_DROP, cap.index() as libc::c_ulong, 0, 0, 0)
            };
            nix::errno::Errno::result(r).op(format!("drop bounding capability {cap}"))?;
        }
    }
    Ok(())
}

fn mask(set: &CapsHashSet) -> u64 {
    set.iter().fold(0u64, |m, c| m | (1u64 << c.index()))
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Sets effective, permitted and inheritable in one capset(2) (set by set, an intermediate state
/// with effective ⊄ permitted is refused), then raises ambient. Inheritable is exactly what is
/// configured, never more (CVE-2022-29162: runc used to leave inheritable = bounding).
pub fn apply_caps(plan: &CapPlan) -> Result<()> {
    let (e, p, i) = (
        mask(&plan.effective),
        mask(&plan.permitted),
        mask(&plan.inheritable),
    );
    let hdr = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    };
    let data = [
        CapData {
            effective: e as u32,
            permitted: p as u32,
            inheritable: i as u32,
        },
        CapData {
            effective: (e >> 32) as u32,
            permitted: (p >> 32) as u32,
            inheritable: (i >> 32) as u32,
        },
    ];
    // SAFETY: `hdr` and `data` (two cap_user_data_t, as _LINUX_CAPABILITY_VERSION_3 expects) live
    // across the call and are only read.
    let r = unsafe { libc::syscall(libc::SYS_capset, &hdr as *const CapHeader, data.as_ptr()) };
    nix::errno::Errno::result(r).op("capset")?;
    caps::clear(None, CapSet::Ambient)
        .map_err(|x| Error::Init(format!("clear ambient capabilities: {x}")))?;
    for cap in &plan.ambient {
        // The kernel refuses an ambient cap that is not both permitted and inheritable (EPERM);
        // runc 1.2+ tries each one and warns about a refusal, the container still runs.
        // SAFETY: PR_CAP_AMBIENT takes integer arguments only.
        let r = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                cap.index() as libc::c_ulong,
                0,
                0,
            )
        };
        if let Err(e) = nix::errno::Errno::result(r) {
            crate::log::warn(&format!(
                "can't raise ambient capability {cap}: {}",
                crate::error::errno_text(e)
            ));
        }
    }
    Ok(())
}

/// setgroups, setresgid, setresuid. With `keep_caps` the permitted set survives the switch to a
/// non-zero uid so apply_caps can then set exactly the configured sets.
pub fn switch_user(p: &Process, setgroups_allowed: bool, keep_caps: bool) -> Result<()> {
    let u = p.user();
    if keep_caps {
        nix::sys::prctl::set_keepcaps(true).op("prctl(PR_SET_KEEPCAPS)")?;
    }
    if setgroups_allowed {
        let groups: Vec<Gid> = u
            .additional_gids()
            .iter()
            .flatten()
            .map(|g| Gid::from_raw(*g))
            .collect();
        match nix::unistd::setgroups(&groups) {
            Ok(()) => {}
            // A user namespace whose setgroups is denied, which the runtime did not create (root
            // only there, as under rootless podman): runc leaves the groups then, and only
            // refuses supplementary groups that were asked for.
            Err(nix::errno::Errno::EPERM)
                if groups.is_empty()
                    && std::fs::read_to_string("/proc/self/setgroups")
                        .is_ok_and(|s| s.trim() == "deny") => {}
            Err(e) => return Err(Error::sys("setgroups", e)),
        }
    }
    let gid = Gid::from_raw(u.gid());
    nix::unistd::setresgid(gid, gid, gid).op(format!("setresgid {}", u.gid()))?;
    let uid = Uid::from_raw(u.uid());
    nix::unistd::setresuid(uid, uid, uid).op(format!("setresuid {}", u.uid()))?;
    if keep_caps {
        nix::sys::prctl::set_keepcaps(false).op("prctl(PR_SET_KEEPCAPS)")?;
    }
    Ok(())
}

pub fn set_no_new_privs() -> Result<()> {
    nix::sys::prctl::set_no_new_privs().op("prctl(PR_SET_NO_NEW_PRIVS)")
}

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

/// rlimits and the other attributes of the [`crate::init::attrs`] plan, cwd, fds, bounding set,
/// user and groups, capabilities, environment, executable lookup, umask, no_new_privs and the
/// seccomp filter, in the order the kernel needs them (attributes while privileged; bounding
/// before the uid switch, which needs CAP_SETPCAP; caps after it, through keepcaps).
///
/// `seccomp` is loaded where its placement says (see [`crate::security::seccomp::Placement`]): always after
/// the cwd checks and before this returns; a notifying filter's listener fd is handed to `notify`
/// before the process goes on.
pub fn prepare(
    p: &Process,
    attrs: &crate::init::attrs::Plan,
    setgroups_allowed: bool,
    extra_env: &[String],
    fds: &PassFds,
    seccomp: Option<&crate::security::seccomp::Compiled>,
    notify: &mut dyn FnMut(std::os::fd::OwnedFd) -> Result<()>,
) -> Result<Ready> {
    use crate::security::seccomp::Placement;
    let mut load = |c: &crate::security::seccomp::Compiled| -> Result<()> {
        if let Some(fd) = crate::security::seccomp::load(c)? {
            notify(fd)?;
        }
        Ok(())
    };
    set_rlimits(attrs.rlimits())?;
    attrs.apply()?;
    let cwd = p.cwd();
    let in_cwd = enter_cwd(cwd, true)?;
    mark_cloexec(fds);
    attrs.apply_final()?;
    if let Some(c) = seccomp.filter(|c| c.placement == Placement::BeforeCaps) {
        load(c)?;
    }
    let plan = attrs.caps();
    warn_unknown_capabilities(&plan.unknown);
    apply_bounding(plan)?;
    switch_user(p, setgroups_allowed, true)?;
    if !in_cwd {
        enter_cwd(cwd, false)?;
    }
    apply_caps(plan)?;
    let configured = p.env().iter().flatten().chain(extra_env);
    let env = environment(configured.cloned(), p.user().uid());
    let argv = p.args().clone().unwrap_or_default();
    let exe = lookup(&argv[0], &env)
        .map_err(|e| Error::Init(format!("unable to start container process: {e}")))?;
    let umask = p.user().umask().unwrap_or(0o022);
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(
        umask as libc::mode_t,
    ));
    crate::security::lsm::set_exec_labels(p)?;
    if attrs.no_new_privs() {
        set_no_new_privs()?;
    }
    if let Some(c) = seccomp.filter(|c| c.placement == Placement::AfterNoNewPrivs) {
        load(c)?;
    }
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

    #[test]
    fn unknown_capabilities_are_reported() {
        let c: LinuxCapabilities = serde_json::from_str(
            r#"{"bounding":["CAP_CHOWN","CAP_KILL"],"effective":["CAP_CHOWN"]}"#,
        )
        .unwrap();
        let p = cap_plan(&c);
        assert_eq!(p.bounding.len(), 2);
        assert!(p.unknown.is_empty());
    }
}
