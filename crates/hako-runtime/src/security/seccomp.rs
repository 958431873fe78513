//! `linux.seccomp`: the OCI profile compiled to a classic BPF program with libseccomp, and loaded
//! with seccomp(2) by the container init.
//!
//! Compiling happens in the runtime before the clone, so a bad profile fails `create` with the
//! field named and nothing left behind; the init only holds the bytes and loads them as late as it
//! may (see [`Placement`]). The semantics are runc's (libcontainer/seccomp): `SCMP_ACT_KILL` is
//! kill-thread, ERRNO and TRACE default to EPERM, a rule whose action is the default action is
//! skipped, a syscall name libseccomp does not know is skipped (logged at debug), and several
//! conditions on the same argument index become one rule each (OR) instead of one rule with all
//! of them (AND). The exported program gets runc's -ENOSYS stub in front ([`crate::security::enosys`]).
//! Loading the program ourselves (as runc's patchbpf does) lets the init pass seccomp(2) flags
//! libseccomp 2.5 does not know and get the notify fd.

use std::io::{Read, Seek};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use hako_spec::oci::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
    LinuxSyscall,
};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use nix::errno::Errno;

use crate::error::{Error, Result};

// seccomp(2) flags (linux/seccomp.h).
pub const FLAG_TSYNC: u32 = 1 << 0;
pub const FLAG_LOG: u32 = 1 << 1;
pub const FLAG_SPEC_ALLOW: u32 = 1 << 2;
pub const FLAG_NEW_LISTENER: u32 = 1 << 3;
pub const FLAG_WAIT_KILLABLE_RECV: u32 = 1 << 5;
const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
const SECCOMP_GET_ACTION_AVAIL: libc::c_ulong = 2;

/// The actions, operators, architectures and flags hako accepts, in the spelling of the spec
/// (also what `hako features` reports).
pub const ACTIONS: &[&str] = &[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
];
pub const OPERATORS: &[&str] = &[
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];
pub const KNOWN_FLAGS: &[(&str, u32)] = &[
    ("SECCOMP_FILTER_FLAG_TSYNC", FLAG_TSYNC),
    ("SECCOMP_FILTER_FLAG_LOG", FLAG_LOG),
    ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", FLAG_SPEC_ALLOW),
    (
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
        FLAG_WAIT_KILLABLE_RECV,
    ),
];

/// Architectures libseccomp can add to a filter, with their spec names.
pub fn archs() -> Vec<(&'static str, ScmpArch)> {
    vec![
        ("SCMP_ARCH_AARCH64", ScmpArch::Aarch64),
        ("SCMP_ARCH_ARM", ScmpArch::Arm),
        ("SCMP_ARCH_LOONGARCH64", ScmpArch::Loongarch64),
        ("SCMP_ARCH_M68K", ScmpArch::M68k),
        ("SCMP_ARCH_MIPS", ScmpArch::Mips),
        ("SCMP_ARCH_MIPS64", ScmpArch::Mips64),
        ("SCMP_ARCH_MIPS64N32", ScmpArch::Mips64N32),
        ("SCMP_ARCH_MIPSEL", ScmpArch::Mipsel),
        ("SCMP_ARCH_MIPSEL64", ScmpArch::Mipsel64),
        ("SCMP_ARCH_MIPSEL64N32", ScmpArch::Mipsel64N32),
        ("SCMP_ARCH_PARISC", ScmpArch::Parisc),
        ("SCMP_ARCH_PARISC64", ScmpArch::Parisc64),
        ("SCMP_ARCH_PPC", ScmpArch::Ppc),
        ("SCMP_ARCH_PPC64", ScmpArch::Ppc64),
        ("SCMP_ARCH_PPC64LE", ScmpArch::Ppc64Le),
        ("SCMP_ARCH_RISCV64", ScmpArch::Riscv64),
        ("SCMP_ARCH_S390", ScmpArch::S390),
        ("SCMP_ARCH_S390X", ScmpArch::S390X),
        ("SCMP_ARCH_SH", ScmpArch::Sh),
        ("SCMP_ARCH_SHEB", ScmpArch::Sheb),
        ("SCMP_ARCH_X32", ScmpArch::X32),
        ("SCMP_ARCH_X86", ScmpArch::X86),
        ("SCMP_ARCH_X86_64", ScmpArch::X8664),
    ]
}

/// The architectures this libseccomp build knows. A filter holds only architectures of one
/// endianness: libseccomp refuses the others with EDOM, which still means it knows them (runc
/// lists them too); an architecture it does not know at all is EINVAL.
pub fn supported_archs() -> Vec<&'static str> {
    archs()
        .into_iter()
        .filter(|(_, a)| {
            match ScmpFilterContext::new(ScmpAction::Allow)
                .and_then(|mut f| f.add_arch(*a).map(drop))
            {
                Ok(()) => true,
                Err(e) => e.errno() == Some(libseccomp::error::SeccompErrno::EDOM),
            }
        })
        .map(|(n, _)| n)
        .collect()
}

/// Known flags the running kernel accepts (probed with seccomp(2) itself: an unknown flag is
/// EINVAL, a known one with a NULL program is EFAULT).
pub fn supported_flags() -> Vec<&'static str> {
    KNOWN_FLAGS
        .iter()
        .filter(|(_, f)| {
            // WAIT_KILLABLE_RECV is only valid together with NEW_LISTENER.
            let probe = if *f == FLAG_WAIT_KILLABLE_RECV {
                *f | FLAG_NEW_LISTENER
            } else {
                *f
            };
            // SAFETY: a null filter pointer makes the kernel validate the flags and fail with
            // EFAULT; nothing is loaded.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    SECCOMP_SET_MODE_FILTER,
                    probe as libc::c_ulong,
                    std::ptr::null::<libc::c_void>(),
                )
            };
            r < 0 && Errno::last() == Errno::EFAULT
        })
        .map(|(n, _)| *n)
        .collect()
}

/// True when the kernel has seccomp filters at all (SECCOMP_GET_ACTION_AVAIL answers).
pub fn kernel_enabled() -> bool {
    let allow: u32 = 0x7fff_0000;
    // SAFETY: `allow` is a live u32 the kernel only reads.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_GET_ACTION_AVAIL,
            0 as libc::c_ulong,
            &allow as *const u32,
        )
    };
    r == 0
}

/// When the init (or an exec'd process) loads the filter. Always after the cwd is entered and
/// checked, so a profile that denies getcwd cannot break the start (crun's order), and always at
/// the end of `create`, so startContainer hooks, the start handshake and `execve` run under it
/// (runc's order). Without no_new_privs, seccomp(2) needs CAP_SYS_ADMIN, which the process is
/// about to drop: the filter goes on right before the capabilities and uid change. With it, it goes
/// on last, after no_new_privs is set. A notifying filter's fd is handed to the agent right there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    BeforeCaps,
    AfterNoNewPrivs,
}

fn placement(no_new_privileges: bool) -> Placement {
    if no_new_privileges {
        Placement::AfterNoNewPrivs
    } else {
        Placement::BeforeCaps
    }
}

/// A compiled profile: the BPF program and how to load it.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// `struct sock_filter[]`, as libseccomp exported it.
    pub program: Vec<u8>,
    /// seccomp(2) flags (NEW_LISTENER when a rule notifies).
    pub flags: u32,
    pub placement: Placement,
    pub listener_path: Option<PathBuf>,
    pub listener_metadata: Option<String>,
    /// Syscall names libseccomp did not know (skipped, as runc does).
    pub skipped: Vec<String>,
}

impl Compiled {
    pub fn notifies(&self) -> bool {
        self.flags & FLAG_NEW_LISTENER != 0
    }
}

fn name_of<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn action(a: LinuxSeccompAction, errno_ret: Option<u32>) -> ScmpAction {
    use LinuxSeccompAction::*;
    let ret = errno_ret.map(|r| r as i32).unwrap_or(libc::EPERM);
    match a {
        ScmpActKill | ScmpActKillThread => ScmpAction::KillThread,
        ScmpActKillProcess => ScmpAction::KillProcess,
        ScmpActTrap => ScmpAction::Trap,
        ScmpActErrno => ScmpAction::Errno(ret),
        ScmpActNotify => ScmpAction::Notify,
        ScmpActTrace => ScmpAction::Trace(ret as u16),
        ScmpActLog => ScmpAction::Log,
        ScmpActAllow => ScmpAction::Allow,
    }
}

fn arch(a: Arch) -> Option<ScmpArch> {
    let name = name_of(&a);
    if name == "SCMP_ARCH_NATIVE" {
        return Some(ScmpArch::Native);
    }
    archs()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, a)| a)
}

fn operator(op: LinuxSeccompOperator, value: u64, value_two: Option<u64>) -> (ScmpCompareOp, u64) {
    use LinuxSeccompOperator::*;
    match op {
        ScmpCmpNe => (ScmpCompareOp::NotEqual, value),
        ScmpCmpLt => (ScmpCompareOp::Less, value),
        ScmpCmpLe => (ScmpCompareOp::LessOrEqual, value),
        ScmpCmpEq => (ScmpCompareOp::Equal, value),
        ScmpCmpGe => (ScmpCompareOp::GreaterEqual, value),
        ScmpCmpGt => (ScmpCompareOp::Greater, value),
        // libseccomp: (arg & mask) == datum; the spec's value is the mask, valueTwo the datum.
        ScmpCmpMaskedEq => (ScmpCompareOp::MaskedEqual(value), value_two.unwrap_or(0)),
    }
}

fn bad(field: String, what: impl std::fmt::Display) -> Error {
    Error::Usage(format!("{field}: {what}"))
}

/// Compiles `linux.seccomp` for the native architecture plus `architectures`.
pub fn compile(s: &LinuxSeccomp, no_new_privileges: bool) -> Result<Compiled> {
    let (mut f, default) = new_filter(s)?;
    let archs = add_archs(&mut f, s)?;
    let mut flags = filter_flags(s)?;
    let syscalls = s.syscalls().as_deref().unwrap_or(&[]);
    if syscalls.len() > 32 {
        // A binary tree of syscalls instead of a linear list (runc does the same).
        if let Err(e) = f.set_ctl_optimize(2) {
            crate::log::debug(&format!(
                "seccomp binary tree optimization not available: {e}"
            ));
        }
    }
    let mut skipped = Vec::new();
    let mut notify = false;
    for (i, sc) in syscalls.iter().enumerate() {
        notify |= add_syscall_rules(&mut f, default, i, sc, &mut skipped)?;
    }
    flags = listener_flags(s, notify, flags)?;
    let stub = crate::security::enosys::stub(s, &archs)
        .map_err(|e| bad("linux.seccomp".into(), format!("-ENOSYS stub: {e}")))?;
    let mut program = crate::security::enosys::to_bytes(&stub);
    program.extend(export(&f)?);
    Ok(Compiled {
        program,
        flags,
        placement: placement(no_new_privileges),
        listener_path: s.listener_path().clone(),
        listener_metadata: s.listener_metadata().clone(),
        skipped,
    })
}

/// The filter with its default action, which runc too refuses to be SCMP_ACT_NOTIFY.
fn new_filter(s: &LinuxSeccomp) -> Result<(ScmpFilterContext, ScmpAction)> {
    let default = action(s.default_action(), s.default_errno_ret());
    if default == ScmpAction::Notify {
        return Err(bad(
            "linux.seccomp.defaultAction".into(),
            "SCMP_ACT_NOTIFY cannot be used as default action",
        ));
    }
    let f = ScmpFilterContext::new(default)
        .map_err(|e| bad("linux.seccomp.defaultAction".into(), e))?;
    Ok((f, default))
}

fn add_archs(f: &mut ScmpFilterContext, s: &LinuxSeccomp) -> Result<Vec<ScmpArch>> {
    let mut archs = Vec::new();
    for (i, a) in s.architectures().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.architectures[{i}]");
        let sa = arch(*a).ok_or_else(|| bad(field.clone(), "unknown architecture"))?;
        f.add_arch(sa)
            .map_err(|e| bad(field, format!("add architecture {}: {e}", name_of(a))))?;
        archs.push(sa);
    }
    Ok(archs)
}

/// `linux.seccomp.flags` as seccomp(2) flags.
fn filter_flags(s: &LinuxSeccomp) -> Result<u32> {
    let mut flags = 0;
    for (i, fl) in s.flags().iter().flatten().enumerate() {
        flags |= match fl {
            // Like runc: the init is single-threaded, there is nothing to synchronize.
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 0,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => FLAG_WAIT_KILLABLE_RECV,
            #[allow(unreachable_patterns)]
            _ => {
                return Err(bad(
                    format!("linux.seccomp.flags[{i}]"),
                    format!("seccomp flag {} is not known to hako", name_of(fl)),
                ))
            }
        };
    }
    Ok(flags)
}

/// Adds `linux.seccomp.syscalls[i]`, one rule per name; whether it notifies.
fn add_syscall_rules(
    f: &mut ScmpFilterContext,
    default: ScmpAction,
    i: usize,
    sc: &LinuxSyscall,
    skipped: &mut Vec<String>,
) -> Result<bool> {
    let field = format!("linux.seccomp.syscalls[{i}]");
    let act = action(sc.action(), sc.errno_ret());
    let notify = act == ScmpAction::Notify;
    if notify && sc.names().iter().any(|n| n == "write") {
        return Err(bad(
            format!("{field}.names"),
            "SCMP_ACT_NOTIFY cannot be used for the write syscall",
        ));
    }
    let (conds, or) = conditions(&field, sc)?;
    if act == default {
        // Redundant with the default action (libseccomp would refuse it).
        return Ok(notify);
    }
    for name in sc.names() {
        let Ok(nr) = ScmpSyscall::from_name(name) else {
            crate::log::debug(&format!("unknown seccomp syscall {name:?} ignored"));
            skipped.push(name.clone());
            continue;
        };
        let r = if conds.is_empty() {
            f.add_rule(act, nr).map(drop)
        } else if or {
            conds
                .iter()
                .try_for_each(|c| f.add_rule_conditional(act, nr, &[*c]).map(drop))
        } else {
            f.add_rule_conditional(act, nr, &conds).map(drop)
        };
        r.map_err(|e| bad(field.clone(), format!("add rule for syscall {name}: {e}")))?;
    }
    Ok(notify)
}

/// The rule's argument conditions, and whether they are to be ORed: several conditions on one
/// argument can't be ANDed by libseccomp, so runc adds one rule per condition, which ORs them.
fn conditions(field: &str, sc: &LinuxSyscall) -> Result<(Vec<ScmpArgCompare>, bool)> {
    let mut conds = Vec::new();
    let mut per_index = [0u32; 6];
    for (j, a) in sc.args().iter().flatten().enumerate() {
        if a.index() >= 6 {
            return Err(bad(
                format!("{field}.args[{j}].index"),
                format!("{} is not a syscall argument index (0-5)", a.index()),
            ));
        }
        per_index[a.index()] += 1;
        let (op, datum) = operator(a.op(), a.value(), a.value_two());
        conds.push(ScmpArgCompare::new(a.index() as u32, op, datum));
    }
    Ok((conds, per_index.iter().any(|n| *n > 1)))
}

/// The flags once every rule is known: a notifying rule needs the agent's socket and a listener.
fn listener_flags(s: &LinuxSeccomp, notify: bool, mut flags: u32) -> Result<u32> {
    if notify {
        if s.listener_path()
            .as_ref()
            .is_none_or(|p| p.as_os_str().is_empty())
        {
            return Err(bad(
                "linux.seccomp.listenerPath".into(),
                "listenerPath is not set (SCMP_ACT_NOTIFY needs a seccomp agent socket)",
            ));
        }
        flags |= FLAG_NEW_LISTENER;
    } else if flags & FLAG_WAIT_KILLABLE_RECV != 0 {
        // Only meaningful (and only accepted by the kernel) with a listener.
        crate::log::debug(
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV ignored: no SCMP_ACT_NOTIFY rule",
        );
        flags &= !FLAG_WAIT_KILLABLE_RECV;
    }
    Ok(flags)
}

/// Where compiled programs are kept, under `--root`: `@` cannot start a container id, so the
/// directory never collides with a container's (and `list` skips it: it has no state.json).
pub const CACHE_DIR: &str = "@seccomp";
/// Entries kept before the cache is emptied (each is one distinct profile, ~10-30 KiB).
const CACHE_MAX: usize = 64;

/// The container's `linux.seccomp`, if any, compiled (from the cache under `root` when it can)
/// for a process with `no_new_privileges`.
pub fn for_spec(
    root: &std::path::Path,
    spec: &hako_spec::oci::Spec,
    no_new_privileges: bool,
) -> Result<Option<Compiled>> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .map(|s| compile_cached(root, s, no_new_privileges))
        .transpose()
}

/// [`compile`], memoized per profile under `<root>/@seccomp`: libseccomp's BPF generation is most
/// of `create`'s CPU time for a large profile such as podman's default one. An entry holds the
/// whole key (hako and libseccomp versions, architecture, no_new_privs and the profile JSON) and
/// is used only when the key matches byte for byte, so a hash collision can never select another
/// profile's program. Any cache trouble falls back to compiling.
pub fn compile_cached(
    root: &std::path::Path,
    s: &LinuxSeccomp,
    no_new_privileges: bool,
) -> Result<Compiled> {
    use std::hash::{Hash, Hasher};
    let lib = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default();
    let key = format!(
        "hako {} enosys-stub 1 libseccomp {lib} arch {} nnp {no_new_privileges}\n{}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        serde_json::to_string(s).unwrap_or_default()
    );
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    let dir = root.join(CACHE_DIR);
    let path = dir.join(format!("{:016x}", h.finish()));
    if let Some(c) = std::fs::read(&path)
        .ok()
        .and_then(|b| decode(&b, &key, s, no_new_privileges))
    {
        for name in &c.skipped {
            crate::log::debug(&format!("unknown seccomp syscall {name:?} ignored"));
        }
        return Ok(c);
    }
    let c = compile(s, no_new_privileges)?;
    if let Err(e) = save(&dir, &path, &key, &c) {
        crate::log::debug(&format!("seccomp cache {}: {e}", path.display()));
    }
    Ok(c)
}

fn take<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
    let n = u32::from_le_bytes(b.get(..4)?.try_into().ok()?) as usize;
    let v = b.get(4..4 + n)?;
    *b = &b[4 + n..];
    Some(v)
}

fn decode(mut b: &[u8], key: &str, s: &LinuxSeccomp, nnp: bool) -> Option<Compiled> {
    if take(&mut b)? != key.as_bytes() {
        return None;
    }
    let flags = u32::from_le_bytes(take(&mut b)?.try_into().ok()?);
    let skipped: Vec<String> = serde_json::from_slice(take(&mut b)?).ok()?;
    let program = take(&mut b)?.to_vec();
    if program.is_empty() || program.len() % 8 != 0 || !b.is_empty() {
        return None;
    }
    Some(Compiled {
        program,
        flags,
        placement: placement(nnp),
        listener_path: s.listener_path().clone(),
        listener_metadata: s.listener_metadata().clone(),
        skipped,
    })
}

fn save(
    dir: &std::path::Path,
    path: &std::path::Path,
    key: &str,
    c: &Compiled,
) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .or_else(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Ok(())
            } else {
                Err(e)
            }
        })?;
    if std::fs::read_dir(dir)?.count() >= CACHE_MAX {
        for e in std::fs::read_dir(dir)?.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let mut out = Vec::with_capacity(key.len() + c.program.len() + 64);
    let skipped = serde_json::to_vec(&c.skipped).unwrap_or_default();
    for part in [
        key.as_bytes(),
        &c.flags.to_le_bytes()[..],
        &skipped[..],
        &c.program[..],
    ] {
        out.extend_from_slice(&(part.len() as u32).to_le_bytes());
        out.extend_from_slice(part);
    }
    // Written aside and renamed: a concurrent create reads the old entry or the whole new one.
    let tmp = dir.join(format!(".tmp-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&out)?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// libseccomp 2.5 exports only to an fd: a memfd, read back.
fn export(f: &ScmpFilterContext) -> Result<Vec<u8>> {
    // SAFETY: the name is a static NUL-terminated string; a returned fd is new.
    let raw = unsafe { libc::memfd_create(c"hako-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if raw < 0 {
        return Err(Error::sys("memfd_create", Errno::last()));
    }
    // SAFETY: memfd_create returned a fresh fd (checked >= 0) that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    f.export_bpf(&fd)
        .map_err(|e| Error::Init(format!("export seccomp filter: {e}")))?;
    let mut file = std::fs::File::from(fd);
    file.rewind()
        .map_err(|e| Error::Init(format!("read seccomp filter: {e}")))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)
        .map_err(|e| Error::Init(format!("read seccomp filter: {e}")))?;
    Ok(buf)
}

#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const u8,
}

/// Loads the program into the calling thread. Returns the notify fd when the filter has a
/// listener. Does nothing but syscalls (safe to call right before execve).
pub fn load(c: &Compiled) -> Result<Option<OwnedFd>> {
    let prog = SockFprog {
        len: (c.program.len() / 8) as libc::c_ushort,
        filter: c.program.as_ptr(),
    };
    // SAFETY: `prog` points at `c.program`, which holds `len` sock_filter entries and outlives the
    // call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            c.flags as libc::c_ulong,
            &prog as *const SockFprog,
        )
    };
    if r < 0 {
        return Err(Error::sys("load seccomp filter", Errno::last()));
    }
    if c.notifies() {
        // SAFETY: with NEW_LISTENER the kernel returns a fresh notification fd that nothing else
        // owns.
        Ok(Some(unsafe { OwnedFd::from_raw_fd(r as RawFd) }))
    } else {
        Ok(None)
    }
}

/// runc's `specs.ContainerProcessState`: what a seccomp agent receives with the notify fd.
pub fn process_state(state: &str, pid: i32, metadata: Option<&str>) -> String {
    let state: serde_json::Value = serde_json::from_str(state).unwrap_or_default();
    // Field order as Go marshals the struct.
    let mut out = format!(
        "{{\"ociVersion\":{},\"fds\":[\"seccompFd\"],\"pid\":{pid}",
        serde_json::Value::String(hako_spec::oci::VERSION.to_string())
    );
    if let Some(m) = metadata.filter(|m| !m.is_empty()) {
        out.push_str(&format!(
            ",\"metadata\":{}",
            serde_json::Value::String(m.into())
        ));
    }
    out.push_str(&format!(",\"state\":{state}}}"));
    out
}

/// Connects to the agent's socket and sends the state JSON with the notify fd (one message,
/// SCM_RIGHTS), as runc's sendContainerProcessState does.
pub fn send_to_agent(path: &std::path::Path, json: &str, fd: RawFd) -> Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let sock =
        std::os::unix::net::UnixStream::connect(path).map_err(|source| Error::SeccompAgent {
            path: path.into(),
            source,
        })?;
    let iov = [std::io::IoSlice::new(json.as_bytes())];
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    crate::sys::retry(|| {
        sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)
    })
    .map_err(|e| Error::path("cannot send seccomp fd to", path, e))?;
    Ok(())
}

/// Runtime side of `SeccompFd(fd)` from process `pid` (an init or an exec child): copies the
/// listener fd and sends it to the profile's agent with the container's `state` JSON.
pub fn give_to_agent(c: Option<&Compiled>, pid: i32, fd: i32, state: &str) -> Result<()> {
    let c = c.ok_or_else(|| Error::Init("unexpected seccomp fd".into()))?;
    let path = c.listener_path.as_deref().expect("compile checked");
    let ours = fd_of(pid, fd)?;
    let json = process_state(state, pid, c.listener_metadata.as_deref());
    send_to_agent(path, &json, ours.as_raw_fd())
}

/// Copies fd `fd` of process `pid` into this process (pidfd_getfd).
pub fn fd_of(pid: i32, fd: i32) -> Result<OwnedFd> {
    // SAFETY: pidfd_open takes integer arguments and returns a new fd.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        return Err(Error::sys("pidfd_open", Errno::last()));
    }
    // SAFETY: pidfd_open returned a fresh fd (checked >= 0) that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
    // SAFETY: pidfd_getfd takes integer arguments and returns a new fd.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if r < 0 {
        return Err(Error::sys("pidfd_getfd (seccomp fd)", Errno::last()));
    }
    // SAFETY: pidfd_getfd returned a fresh fd (checked >= 0) that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn compiles_and_skips_unknown_names() {
        let c = compile(
            &profile(
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["mkdir","mkdirat","no_such_syscall_hako"],"action":"SCMP_ACT_ERRNO","errnoRet":1},
                {"names":["getpid"],"action":"SCMP_ACT_ALLOW"},
                {"names":["personality"],"action":"SCMP_ACT_ERRNO","args":[
                    {"index":0,"value":1,"op":"SCMP_CMP_EQ"},{"index":0,"value":2,"op":"SCMP_CMP_EQ"}]}]}"#,
            ),
            true,
        )
        .unwrap();
        assert_eq!(c.skipped, vec!["no_such_syscall_hako".to_string()]);
        assert!(!c.program.is_empty());
        assert_eq!(c.program.len() % 8, 0);
        assert_eq!(c.placement, Placement::AfterNoNewPrivs);
        assert_eq!(c.flags, 0);
    }

    #[test]
    fn notify_needs_listener_and_not_write() {
        let e = compile(
            &profile(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#),
            true,
        )
        .unwrap_err();
        assert!(e.to_string().contains("linux.seccomp.listenerPath"), "{e}");
        let e = compile(
            &profile(r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/x","syscalls":[{"names":["write"],"action":"SCMP_ACT_NOTIFY"}]}"#),
            true,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("linux.seccomp.syscalls[0].names"),
            "{e}"
        );
        let c = compile(
            &profile(r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/x","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#),
            true,
        )
        .unwrap();
        assert!(c.notifies());
        assert_eq!(c.placement, Placement::AfterNoNewPrivs);
    }

    #[test]
    fn bad_arg_index_names_field() {
        let e = compile(
            &profile(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","args":[{"index":7,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#),
            false,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("linux.seccomp.syscalls[0].args[0].index"),
            "{e}"
        );
    }

    #[test]
    fn cache_roundtrip() {
        let dir = std::env::temp_dir().join(format!("hako-seccomp-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","nope_hako"],"action":"SCMP_ACT_ERRNO"}]}"#,
        );
        let a = compile_cached(&dir, &p, true).unwrap();
        let b = compile_cached(&dir, &p, true).unwrap();
        assert_eq!(a.program, b.program);
        assert_eq!(b.skipped, vec!["nope_hako".to_string()]);
        assert_eq!(b.placement, Placement::AfterNoNewPrivs);
        let c = compile_cached(&dir, &p, false).unwrap();
        assert_eq!(c.placement, Placement::BeforeCaps);
        assert_eq!(std::fs::read_dir(dir.join(CACHE_DIR)).unwrap().count(), 2);
        // A corrupt entry is ignored (and replaced).
        for e in std::fs::read_dir(dir.join(CACHE_DIR)).unwrap().flatten() {
            std::fs::write(e.path(), b"junk").unwrap();
        }
        assert_eq!(compile_cached(&dir, &p, true).unwrap().program, a.program);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn flags_and_conditions() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_TSYNC","SECCOMP_FILTER_FLAG_LOG","SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],"syscalls":[
                {"names":["personality"],"action":"SCMP_ACT_ERRNO","args":[
                    {"index":0,"value":1,"op":"SCMP_CMP_EQ"},{"index":0,"value":2,"op":"SCMP_CMP_EQ"}]},
                {"names":["personality"],"action":"SCMP_ACT_ERRNO","args":[
                    {"index":0,"value":1,"op":"SCMP_CMP_EQ"},{"index":1,"value":2,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        let flags = filter_flags(&p).unwrap();
        assert_eq!(flags, FLAG_LOG | FLAG_WAIT_KILLABLE_RECV);
        // Without a notifying rule the kernel would refuse WAIT_KILLABLE_RECV.
        assert_eq!(listener_flags(&p, false, flags).unwrap(), FLAG_LOG);
        let sc = p.syscalls().as_deref().unwrap();
        let (conds, or) = conditions("f", &sc[0]).unwrap();
        assert_eq!((conds.len(), or), (2, true));
        let (conds, or) = conditions("f", &sc[1]).unwrap();
        assert_eq!((conds.len(), or), (2, false));
    }

    #[test]
    fn process_state_shape() {
        let s = process_state(
            r#"{"ociVersion":"1.0.2","id":"x","status":"creating","pid":5,"bundle":"/b"}"#,
            5,
            Some("m"),
        );
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["fds"][0], "seccompFd");
        assert_eq!(v["pid"], 5);
        assert_eq!(v["metadata"], "m");
        assert_eq!(v["state"]["id"], "x");
    }
}
