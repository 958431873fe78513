//! `exec`: one more process in a running container.
//!
//! The runtime clones the process itself, exactly as it clones an init: the child already holds
//! the resolved `process`, joins every namespace of the container through a pidfd of its init
//! (`setns(pidfd, flags)` enters them all at once, the user namespace first, and cannot race with
//! pid reuse), is put in the container's cgroups by the runtime before it may go on, applies the
//! process's rlimits, attributes (crate::init::attrs, as the init does), capabilities, user and
//! no_new_privs, and execs. A pid namespace only applies
//! to children, so the runtime enters it just around the clone and the child is born inside it.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use hako_spec::oci::{Capability, LinuxNamespaceType, Process};
use hako_spec::state::{ContainerRecord, Status};
use nix::sched::CloneFlags;
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};

use crate::cgroups::Cgroups;
use crate::container::lifecycle::{init_pidfd, status_of};
use crate::container::store::{self, Store};
use crate::error::{Context, Error, Result};
use crate::fs::paths::Root;
use crate::init::channel::{self, Channel, Msg};
use crate::init::process;
use crate::sys;

#[derive(Debug, Default, Clone)]
pub struct ExecOptions {
    pub id: String,
    /// `--process F`: the whole process object; the flags below then do not apply.
    pub process_file: Option<PathBuf>,
    pub args: Vec<String>,
    pub tty: Option<bool>,
    pub console_socket: Option<PathBuf>,
    /// `--pidfd-socket`: receives a pidfd of the exec'd process (container::pidfd_socket).
    pub pidfd_socket: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub cwd: Option<PathBuf>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub preserve_fds: u32,
    pub ignore_paused: bool,
    pub apparmor: Option<String>,
    pub process_label: Option<String>,
    /// `--cgroup`: sub-cgroups of the container's to join (`SUB` or `CTRL[,CTRL]:SUB`).
    pub sub_cgroups: Vec<String>,
}

/// runc's `getProcess`: the container's process with the command line's overrides.
fn build_process(o: &ExecOptions, rec: &ContainerRecord) -> Result<Process> {
    if let Some(f) = &o.process_file {
        let (p, unknown_capabilities) = hako_spec::bundle::load_process(f)?;
        crate::init::attrs::caps::warn_unknown_capabilities(&unknown_capabilities);
        return Ok(p);
    }
    let mut p = rec.config.process().clone().unwrap_or_default();
    if o.args.is_empty() {
        return Err(Error::Usage("process.args: must not be empty".into()));
    }
    p.set_args(Some(o.args.clone()));
    if let Some(cwd) = &o.cwd {
        p.set_cwd(cwd.clone());
    }
    if !o.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        env.extend(o.env.iter().cloned());
        p.set_env(Some(env));
    }
    // Only `-t` asks for a terminal: the container's own `process.terminal` is the init's, and an
    // exec without `-t` into a terminal container gets plain stdio (runc).
    p.set_terminal(Some(o.tty.unwrap_or(false)));
    if o.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if o.apparmor.is_some() {
        p.set_apparmor_profile(o.apparmor.clone());
    }
    if o.process_label.is_some() {
        p.set_selinux_label(o.process_label.clone());
    }
    let mut user = p.user().clone();
    if let Some(u) = &o.user {
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (u.as_str(), None),
        };
        if let Some(g) = gid {
            user.set_gid(
                g.parse()
                    .map_err(|e| Error::Usage(format!("parsing {g} as int for gid failed: {e}")))?,
            );
        }
        user.set_uid(
            uid.parse()
                .map_err(|e| Error::Usage(format!("parsing {uid} as int for uid failed: {e}")))?,
        );
    }
    if !o.additional_gids.is_empty() {
        // Added to the container's, as runc appends them.
        let mut gids = user.additional_gids().clone().unwrap_or_default();
        gids.extend(o.additional_gids.iter().copied());
        user.set_additional_gids(Some(gids));
    }
    p.set_user(user);
    if !o.caps.is_empty() {
        // runc ≥ 1.1.2: added to bounding, effective and permitted, and to ambient only when the
        // process already has inheritable capabilities (ambient needs inheritable; adding to
        // inheritable itself was CVE-2022-29162).
        let mut c = p.capabilities().clone().unwrap_or_default();
        let add = |set: Option<std::collections::HashSet<Capability>>| -> Result<_> {
            let mut set = set.unwrap_or_default();
            for name in &o.caps {
                let cap: Capability = serde_json::from_value(serde_json::json!(name))
                    .map_err(|_| Error::Usage(format!("--cap: unknown capability {name:?}")))?;
                set.insert(cap);
            }
            Ok(Some(set))
        };
        c.set_bounding(add(c.bounding().clone())?);
        c.set_effective(add(c.effective().clone())?);
        c.set_permitted(add(c.permitted().clone())?);
        if c.inheritable().as_ref().is_some_and(|i| !i.is_empty()) {
            c.set_ambient(add(c.ambient().clone())?);
        }
        p.set_capabilities(Some(c));
    }
    hako_spec::validate::validate_process(&p)?;
    Ok(p)
}

/// The namespaces of the init that differ from the runtime's own, as setns flags. Joining a
/// namespace we are already in is skipped (for a user namespace it would even be EINVAL).
fn namespaces_of(pid: i32) -> Result<(CloneFlags, bool)> {
    use std::os::unix::fs::MetadataExt;
    let mut flags = CloneFlags::empty();
    let mut pidns = false;
    for (name, t) in [
        ("user", LinuxNamespaceType::User),
        ("ipc", LinuxNamespaceType::Ipc),
        ("uts", LinuxNamespaceType::Uts),
        ("net", LinuxNamespaceType::Network),
        ("mnt", LinuxNamespaceType::Mount),
        ("cgroup", LinuxNamespaceType::Cgroup),
        ("time", LinuxNamespaceType::Time),
        ("pid", LinuxNamespaceType::Pid),
    ] {
        let theirs = format!("/proc/{pid}/ns/{name}");
        let ours = format!("/proc/self/ns/{name}");
        // Only a namespace type this kernel lacks may be passed over: any other failure (say,
        // EACCES from a user namespace that does not own the container) would run the process
        // outside the container's namespaces.
        let (a, b) = match (std::fs::metadata(&theirs), std::fs::metadata(&ours)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io("open namespace", theirs, e))
            }
            _ => continue,
        };
        if (a.dev(), a.ino()) == (b.dev(), b.ino()) {
            continue;
        }
        if t == LinuxNamespaceType::Pid {
            pidns = true;
        } else {
            flags |= crate::init::namespaces::flag(t);
        }
    }
    Ok((flags, pidns))
}

/// Runs the exec. Returns the status the CLI exits with: the process's (128+N for signal N) in
/// the foreground, 0 once it runs with `--detach`.
///
/// The phases (docs/architecture.md, *exec*): the record, the plan, the runtime's ends, the
/// clone, then with the child its cgroups and the hand-over (`release`), and the wait.
pub fn exec(root: &Path, o: &ExecOptions) -> Result<i32> {
    let rec = record(root, o)?;
    let mut plan = plan(root, o, &rec)?;
    let ends = ends(o, plan.terminal)?;
    let c = clone(o, &rec, &mut plan, ends)?;
    crate::container::crash::point("exec:cloned");
    let mut pid = c.pid;
    let r = (|| {
        oom_score_adj(&rec, &plan.process, pid)?;
        let first = cgroups(&rec, &c, pid)?;
        release(&rec, &plan, &c, first, &mut pid)
    })();
    if let Err(e) = r {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        return Err(e);
    }
    wait(o, pid, c.forwarded, c.own_console)
}

/// The container's record, if its status admits an exec.
fn record(root: &Path, o: &ExecOptions) -> Result<ContainerRecord> {
    hako_spec::id::validate_id(&o.id)?;
    let lock = Store::existing(root).lock(&o.id)?;
    let rec = lock.load()?;
    // Not held past reading the record: the process may wait a long time (forever, in a paused
    // container with --ignore-paused) before it runs, and `resume`, `kill` and `delete --force`
    // must get through meanwhile. The pidfd below pins the init we read about.
    drop(lock);
    match status_of(&rec) {
        Status::Stopped => {
            return Err(Error::BadState("cannot exec in a stopped container".into()))
        }
        Status::Paused if !o.ignore_paused => {
            return Err(Error::BadState(
                "cannot exec in a paused container (use --ignore-paused to override)".into(),
            ))
        }
        _ => {}
    }
    Ok(rec)
}

/// What the runtime decides before anything exists: a bad value fails here.
struct Plan {
    process: Process,
    terminal: bool,
    attrs: crate::init::attrs::Plan,
    pidfd: OwnedFd,
    flags: CloneFlags,
    join_pid: bool,
    chroot: Option<OwnedFd>,
}

fn plan(root: &Path, o: &ExecOptions, rec: &ContainerRecord) -> Result<Plan> {
    let process = build_process(o, rec)?;
    let terminal = process.terminal().unwrap_or(false);
    crate::init::console::check_flags(terminal, o.detach, o.console_socket.is_some())?;
    crate::container::support::check_labels(&process)?;
    // The exec's own process attributes (or the container's), the container's personality and
    // memory policy.
    let mut attrs = crate::init::attrs::Plan::for_exec(
        &process,
        rec.config.process().as_ref(),
        rec.config.linux().as_ref(),
    )?;
    // Compiled by the runtime with this process's no_new_privs: a bad profile fails here.
    attrs.compile_seccomp(root, &rec.config)?;
    let pidfd = init_pidfd(rec)?;
    let (flags, join_pid) = namespaces_of(rec.pid)?;
    let chroot = chroot_of(rec.pid, flags)?;
    // A user namespace whose gid map was written after `setgroups` was denied forbids setgroups.
    attrs.allow_setgroups(
        std::fs::read_to_string(format!("/proc/{}/setgroups", rec.pid))
            .map(|s| s.trim() != "deny")
            .unwrap_or(true),
    );
    Ok(Plan {
        process,
        terminal,
        attrs,
        pidfd,
        flags,
        join_pid,
        chroot,
    })
}

/// The runtime's ends of what the process is connected to.
struct Ends {
    /// The signals a foreground exec forwards (blocked from here on).
    forwarded: Option<SigSet>,
    own_console: Option<OwnedFd>,
    console: Option<OwnedFd>,
    pidfd_socket: Option<OwnedFd>,
    parent_ch: Channel,
    child_ch: Channel,
}

fn ends(o: &ExecOptions, terminal: bool) -> Result<Ends> {
    let forwarded = if o.detach {
        None
    } else {
        Some(crate::container::foreground::prepare()?)
    };
    let (own_console, console) = crate::init::console::ends(o.console_socket.as_deref(), terminal)?;
    let pidfd_socket = o
        .pidfd_socket
        .as_deref()
        .map(crate::container::pidfd_socket::connect)
        .transpose()?;
    let (parent_ch, child_ch) = channel::pair()?;
    Ok(Ends {
        forwarded,
        own_console,
        console,
        pidfd_socket,
        parent_ch,
        child_ch,
    })
}

/// The runtime's side once the process is cloned.
struct Cloned {
    pid: i32,
    forwarded: Option<SigSet>,
    own_console: Option<OwnedFd>,
    pidfd_socket: Option<OwnedFd>,
    parent_ch: Channel,
    cg: Cgroups,
    /// Cloned outside the cgroup: systemd moves it before it may go on.
    via_systemd: bool,
    born_in_unified: bool,
    fork_for_pid: bool,
}

/// Clones the process in the container's pid namespace and v2 cgroup; the child goes on in
/// `child` and never returns here.
fn clone(o: &ExecOptions, rec: &ContainerRecord, plan: &mut Plan, e: Ends) -> Result<Cloned> {
    // An unprivileged runtime cannot enter a pid namespace that the container's user namespace
    // owns from outside it: the child joins the user and pid namespaces together and forks the
    // real process into the pid namespace (runc's nsexec does the same double fork).
    let fork_for_pid =
        plan.join_pid && plan.flags.contains(CloneFlags::CLONE_NEWUSER) && rec.rootless;
    let pid_ns = if plan.join_pid && !fork_for_pid {
        Some(crate::init::namespaces::PidNsForChildren::enter(
            plan.pidfd.as_fd(),
            Path::new(&format!("/proc/{}/ns/pid", rec.pid)),
        )?)
    } else {
        None
    };
    let runtime_pid = std::process::id() as i32;
    let (forked, cg, via_systemd, born_in_unified) = clone_into_cgroup(o, rec)?;
    let pid = match forked.op("clone exec process")? {
        sys::Forked::Child => {
            drop(e.parent_ch);
            let close = e
                .own_console
                .as_ref()
                .map(|f| f.as_raw_fd())
                .into_iter()
                .collect::<Vec<_>>();
            child(Child {
                process: &plan.process,
                pidfd: &plan.pidfd,
                flags: if fork_for_pid {
                    plan.flags | CloneFlags::CLONE_NEWPID
                } else {
                    plan.flags
                },
                fork_for_pid,
                channel: e.child_ch,
                console: e.console,
                preserve_fds: o.preserve_fds,
                stdio: if o.detach || plan.terminal {
                    crate::init::stdio::Origin::Given
                } else {
                    crate::init::stdio::Origin::Caller
                },
                close,
                attrs: &plan.attrs,
                chroot: plan.chroot.take(),
                runtime_pid,
            })
        }
        sys::Forked::Parent { pid } => pid,
    };
    if let Some(ns) = pid_ns {
        match ns.leave() {
            // Root only inside a user namespace (rootless podman runs the runtime so) may enter
            // the container's pid namespace, owned by that namespace, but not go back to its
            // own, owned by the initial one. Only children are affected, and exec forks no
            // more of them: the runtime's own pid namespace never changed.
            Err(e) if e.is_permission() => {}
            r => r?,
        }
    }
    drop(e.child_ch);
    drop(e.console);
    Ok(Cloned {
        pid,
        forwarded: e.forwarded,
        own_console: e.own_console,
        pidfd_socket: e.pidfd_socket,
        parent_ch: e.parent_ch,
        cg,
        via_systemd,
        born_in_unified,
        fork_for_pid,
    })
}

/// clone3, born in the container's v2 cgroup where it can be: the forked result, the cgroups,
/// whether systemd must move the process, whether it was born in the v2 (or hybrid's) directory.
fn clone_into_cgroup(
    o: &ExecOptions,
    rec: &ContainerRecord,
) -> Result<(nix::Result<sys::Forked>, Cgroups, bool, bool)> {
    // Born in the container's v2 cgroup (CLONE_INTO_CGROUP: pure v2, and the hybrid's v2
    // directory); the v1 hierarchies it moves itself into after `Go` (`JoinCgroups`).
    let cg = Cgroups::from_record(rec.cgroup.clone()).for_exec(&o.sub_cgroups)?;
    let into = match (cg.rec.layout.as_str(), &cg.rec.unified) {
        ("v2", _) => Some(cg.open_unified()?),
        ("hybrid", Some(_)) => Some(cg.open_unified()?),
        _ => None,
    };
    // SAFETY: the runtime is single-threaded, so the child may go on like a fork's.
    let mut forked = unsafe { sys::clone3(0, into.as_ref().map(|f| f.as_raw_fd())) };
    if forked
        .as_ref()
        .is_err_and(|e| *e == nix::errno::Errno::EBUSY)
        && o.sub_cgroups.is_empty()
    {
        // v2 refuses a process in a cgroup that hands domain controllers to its children: the
        // container moved its init down and enabled some. Join the init's cgroup, as runc does.
        if let Some(fd) = Cgroups::open_cgroup_of(rec.pid) {
            crate::log::debug(
                "exec: the container's cgroup takes no process (EBUSY); joining the init's",
            );
            // SAFETY: as above.
            forked = unsafe { sys::clone3(0, Some(fd.as_raw_fd())) };
        }
    }
    // An unprivileged runtime may not be born in a user instance's unit from where it runs (the
    // move needs write access to the common ancestor of both cgroups): then systemd moves the
    // process before it may go on (below). runc leaves it in the caller's cgroup.
    let mut via_systemd = false;
    if forked
        .as_ref()
        .is_err_and(|e| matches!(e, nix::errno::Errno::EACCES | nix::errno::Errno::EPERM))
        && into.is_some()
        && o.sub_cgroups.is_empty()
        && cg.rec.systemd_user_bus.is_some()
    {
        via_systemd = true;
        // SAFETY: as above.
        forked = unsafe { sys::clone3(0, None) };
    }
    let mut born_in_unified = into.is_some() && !via_systemd;
    if forked.is_err() && cg.rec.layout == "hybrid" {
        // Whatever the hybrid's v2 directory refused, the runtime's write below says it as
        // before (it moved every exec'd process itself).
        // SAFETY: as above.
        forked = unsafe { sys::clone3(0, None) };
        born_in_unified = false;
    }
    drop(into);
    Ok((forked, cg, via_systemd, born_in_unified))
}

fn oom_score_adj(rec: &ContainerRecord, process: &Process, pid: i32) -> Result<()> {
    if let Some(adj) = process
        .oom_score_adj()
        .filter(|a| !rec.rootless || crate::init::rootless::oom_score_adj_allowed(*a))
    {
        let p = format!("/proc/{pid}/oom_score_adj");
        std::fs::write(&p, adj.to_string()).ctx("write", p)?;
    }
    Ok(())
}

/// Puts the child in the container's v1 cgroups (it moves itself, `JoinCgroups`), its systemd
/// unit and resctrl group, and sends `Go`. Returns the child's first message after that.
fn cgroups(rec: &ContainerRecord, c: &Cloned, pid: i32) -> Result<Option<Msg>> {
    let tasks = if c.cg.rec.layout != "v2" {
        c.cg.open_tasks(pid, c.born_in_unified)?
    } else {
        Vec::new()
    };
    if c.via_systemd {
        if let Err(e) = c.cg.attach_via_systemd(pid) {
            crate::log::warn(&format!(
                "exec: the process stays in the caller's cgroup: {e}"
            ));
        }
    }
    if let Some(r) = &rec.resctrl {
        crate::resctrl::join(r, pid)?;
    }
    c.parent_ch.send(&Msg::Go)?;
    let fds: Vec<_> = tasks.iter().map(|(_, f)| f.as_fd()).collect();
    c.parent_ch.send_fds(
        if fds.is_empty() {
            &Msg::CgroupsJoined
        } else {
            &Msg::JoinCgroups
        },
        &fds,
    )?;
    drop(fds);
    // What the child could not move itself into, the runtime moves it into (its own error
    // if that fails too); the answer comes before anything else the child sends.
    let mut first = c.parent_ch.recv_or_eof("exec process")?;
    if let Some(Msg::CgroupsNotJoined(failed)) = &first {
        Cgroups::join_dirs(
            failed.iter().filter_map(|i| tasks.get(*i).map(|t| &t.0)),
            pid,
        )?;
        c.parent_ch.send(&Msg::CgroupsJoined)?;
        first = c.parent_ch.recv_or_eof("exec process")?;
    }
    drop(tasks);
    Ok(first)
}

/// The child's real pid (after its fork into the pid namespace), the pidfd socket, the seccomp
/// agent, and `Proceed` on `ExecReady`: returns once the process exec'd.
fn release(
    rec: &ContainerRecord,
    plan: &Plan,
    c: &Cloned,
    first: Option<Msg>,
    pid: &mut i32,
) -> Result<()> {
    let mut first = Some(first);
    let mut next = || match first.take() {
        Some(m) => Ok(m),
        None => c.parent_ch.recv_or_eof("exec process"),
    };
    if c.fork_for_pid {
        match next()? {
            Some(Msg::InitPid(real)) => {
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(*pid), None);
                *pid = real;
            }
            Some(Msg::Error(e)) => return Err(Error::Init(e)),
            m => return Err(Error::Init(format!("unexpected message {m:?}"))),
        }
    }
    let pid = *pid;
    if let Some(s) = &c.pidfd_socket {
        crate::container::pidfd_socket::send(s, pid, crate::container::pidfd_socket::EXEC)?;
    }
    // Nothing comes back when execve succeeds: the channel is close-on-exec.
    loop {
        match next()? {
            None => return Ok(()),
            Some(Msg::Error(e)) => return Err(Error::Init(e)),
            // A notifying filter: the agent gets the fd with the container's state, as
            // for the init.
            Some(Msg::ExecReady) => {
                crate::container::crash::point("exec:ready");
                c.parent_ch.send(&Msg::Proceed)?;
            }
            Some(Msg::SeccompFd(fd)) => {
                let state =
                    serde_json::to_string(&rec.hook_state(status_of(rec))).expect("serializes");
                crate::security::seccomp::give_to_agent(plan.attrs.seccomp(), pid, fd, &state)?;
                c.parent_ch.send(&Msg::SeccompDone)?;
            }
            Some(m) => return Err(Error::Init(format!("unexpected message {m:?}"))),
        }
    }
}

/// The console master, --pid-file, and in the foreground the wait for the process.
fn wait(
    o: &ExecOptions,
    pid: i32,
    forwarded: Option<SigSet>,
    own_console: Option<OwnedFd>,
) -> Result<i32> {
    let master = own_console
        .map(|s| crate::init::console::recv_master(&s))
        .transpose()?;
    if let Some(pf) = &o.pid_file {
        store::write_atomic(pf, &pid.to_string())?;
    }
    match forwarded {
        None => {
            crate::log::debug(&format!("exec {}: detached process {pid}", o.id));
            Ok(0)
        }
        Some(f) => {
            crate::log::debug(&format!("exec {}: process {pid}, waiting", o.id));
            let code = crate::container::foreground::wait(pid, &f, master)?;
            crate::log::debug(&format!(
                "exec {}: process {pid} exited, status {code}",
                o.id
            ));
            Ok(code)
        }
    }
}

struct Child<'a> {
    process: &'a Process,
    pidfd: &'a OwnedFd,
    flags: CloneFlags,
    /// Fork once more after joining: the pid namespace applies to children only.
    fork_for_pid: bool,
    channel: Channel,
    console: Option<OwnedFd>,
    preserve_fds: u32,
    stdio: crate::init::stdio::Origin,
    close: Vec<RawFd>,
    /// User, capabilities, rlimits, scheduler, CPU affinity, seccomp, ... (crate::init::attrs).
    attrs: &'a crate::init::attrs::Plan,
    /// The init's root, when it is only a chroot in our own mount namespace.
    chroot: Option<OwnedFd>,
    /// Our parent, checked once the parent-death signal is armed.
    runtime_pid: i32,
}

/// A container without a mount namespace of its own has the rootfs as its root directory only
/// (a chroot in the host's mount namespace): joining namespaces does not bring the exec there, so
/// it enters the init's root itself. None when the mount namespace is joined or the roots agree.
fn chroot_of(pid: i32, flags: CloneFlags) -> Result<Option<OwnedFd>> {
    use std::os::unix::fs::MetadataExt;
    if flags.contains(CloneFlags::CLONE_NEWNS) {
        return Ok(None);
    }
    let theirs = format!("/proc/{pid}/root");
    let (Ok(a), Ok(b)) = (std::fs::metadata(&theirs), std::fs::metadata("/")) else {
        return Ok(None);
    };
    if (a.dev(), a.ino()) == (b.dev(), b.ino()) {
        return Ok(None);
    }
    let fd = nix::fcntl::open(
        theirs.as_str(),
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx("open", &theirs)?;
    Ok(Some(fd))
}

fn child(c: Child) -> ! {
    // CVE-2019-5736: until execve this process *is* the runtime binary. Not dumpable, so nothing
    // in the container can open /proc/<pid>/exe (or ptrace us) while we are in its namespaces.
    // SAFETY: prctl(PR_SET_DUMPABLE) takes integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    // Dies with the runtime until the hand-over (`Proceed`): a killed `exec` runs nothing.
    if !sys::parent_death_signal(Some(libc::SIGKILL), c.runtime_pid) {
        // SAFETY: leaves without running the runtime's destructors.
        unsafe { libc::_exit(1) }
    }
    for fd in &c.close {
        let _ = nix::unistd::close(*fd);
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    let err = match setup(&c) {
        Ok(ready) => {
            // The runtime's word that it is still there; EOF means it died: exit, run nothing.
            if !c
                .channel
                .handshake_raw(Some(&Msg::ExecReady), &Msg::Proceed)
            {
                // SAFETY: leaves without running the runtime's destructors.
                unsafe { libc::_exit(1) }
            }
            ready.exec()
        }
        Err(e) => e,
    };
    let _ = c.channel.send(&Msg::Error(err.to_string()));
    // SAFETY: _exit ends this cloned child without running the parent's destructors or atexit
    // handlers, which belong to the runtime process.
    unsafe { libc::_exit(1) }
}

fn setup(c: &Child) -> Result<process::Ready> {
    // Before the cgroups and everything else (runc applies it to its exec child at once).
    c.attrs.apply_initial()?;
    match c.channel.expect("runtime")? {
        Msg::Go => {}
        m => return Err(Error::Init(format!("unexpected message {m:?}"))),
    }
    // Into the container's v1 cgroups, before anything joins its namespaces or changes our
    // credentials (single-threaded: the kernel's fast path).
    crate::init::entry::join_own_cgroups(&c.channel)?;
    c.attrs.reset_affinity();
    if !c.flags.is_empty() {
        nix::sched::setns(c.pidfd.as_fd(), c.flags).op("join the container's namespaces")?;
        // Joining a user namespace changes credentials, which clears the signal: arm it again
        // (our parent is outside any pid namespace we joined, so this checks nothing more).
        sys::parent_death_signal(Some(libc::SIGKILL), c.runtime_pid);
    }
    if let Some(root) = &c.chroot {
        nix::unistd::fchdir(root).op("chdir to the container's root")?;
        nix::unistd::chroot(".").op("chroot to the container's root")?;
        nix::unistd::chdir("/").op("chdir /")?;
    }
    if c.fork_for_pid {
        // SAFETY: this child is single-threaded, like the runtime it was cloned from.
        match unsafe { sys::clone3(0, None) }.op("fork into the pid namespace")? {
            sys::Forked::Parent { pid } => {
                let _ = c.channel.send(&Msg::InitPid(pid));
                // SAFETY: leaves without running the runtime's atexit handlers or destructors.
                unsafe { libc::_exit(0) }
            }
            sys::Forked::Child => {}
        }
    }
    nix::unistd::setsid().op("setsid")?;
    process::join_session_keyring()?;
    if let Some(sock) = &c.console {
        // The mount namespace's root is the container's root now: /dev/pts/ptmx is resolved in it
        // and verified to be devpts.
        let root = Root::open(Path::new("/"))?;
        let (master, peer, name) = crate::init::console::open_pty(&root)?;
        if let Some(size) = c.process.console_size() {
            crate::init::console::set_size(&master, size.height() as u16, size.width() as u16)?;
        }
        crate::init::console::send_master(sock, &master, &name)?;
        crate::init::console::make_stdio(&peer)?;
    }
    crate::init::stdio::give_to_user(c.process.user().uid(), c.stdio)?;
    let mut notify = |fd: OwnedFd| c.channel.hand_over_seccomp_fd(fd);
    let fds = process::PassFds {
        preserve: c.preserve_fds,
        skip: &[c.channel.raw()],
    };
    // The seccomp filter may deny prctl and process.user's ids clear the signal anyway: from
    // here the channel ties us to the runtime (the `Proceed` read ends us on EOF).
    sys::parent_death_signal(None, c.runtime_pid);
    process::prepare(c.process, c.attrs, &[], &fds, &mut notify)
}
