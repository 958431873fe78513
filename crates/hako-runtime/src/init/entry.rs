//! The container init, from the moment clone3 returns in the child until execve of
//! `process.args`. Runs in the child's copy of the runtime's memory: it already has the parsed
//! config, so nothing is re-read or re-exec'd. Every failure is sent to the runtime as one message
//! and the child exits; the runtime turns it into the single error the caller sees.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use hako_spec::oci::Spec;
use nix::sched::CloneFlags;
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};

use crate::container::hooks;
use crate::error::{Context, Error, Result};
use crate::fs::paths::Root;
use crate::fs::rootfs;
use crate::init::channel::{Channel, Msg};
use crate::init::namespaces::{self, Plan};
use crate::init::process;
use crate::sys;

/// Everything the init needs, prepared by the runtime before clone.
pub struct InitArgs<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub plan: &'a Plan,
    pub channel: Channel,
    /// `create`: the start socket `start` connects to. `run` has none: the runtime releases the
    /// init with `Start` over the channel.
    pub listener: Option<UnixListener>,
    pub console: Option<OwnedFd>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// Number of fds from 3 on that the process keeps (`--preserve-fds` + LISTEN_FDS).
    pub preserve_fds: u32,
    /// Extra environment (LISTEN_FDS/LISTEN_PID).
    pub extra_env: Vec<String>,
    /// fds of the runtime that must not stay open in the init (the state-dir lock!).
    pub close: Vec<RawFd>,
    /// uid allowed to connect to the start socket: the creator's, as the init's user namespace
    /// sees it (peer credentials are translated into the reader's namespace).
    pub owner_uid: u32,
    /// The process's attributes (crate::init::attrs), checked by the runtime, with the compiled
    /// seccomp filter and whether setgroups is allowed.
    pub attrs: &'a crate::init::attrs::Plan,
    /// Whose fds the init's stdio are, for giving them to `process.user`.
    pub stdio: crate::init::stdio::Origin,
    /// Bind sources the runtime opens for us in our mount namespace (`bind_sources::wanted`).
    pub bind_sources: &'a [PathBuf],
    /// The idmapped mounts the runtime makes for us (`fs::idmapped::plan`).
    pub idmapped: &'a [crate::fs::idmapped::Wanted],
    /// The runtime's pid, for checking that it is still our parent once the parent-death
    /// signal is armed.
    pub runtime_pid: i32,
    /// The runtime's mount namespace as it parsed /proc/self/mountinfo before the clone: ours is
    /// a copy of it (unless joined by path), so the init does not read and parse it again.
    pub host_mounts: &'a [crate::procinfo::Mount],
}

/// Never returns: exits the child with 0 only through execve.
pub fn main(args: InitArgs) -> ! {
    // Until the record says `created`, the init dies with its runtime: SIGKILL when it goes
    // (whatever step we are blocked in), and exit on EOF at every channel read.
    if !sys::parent_death_signal(Some(libc::SIGKILL), args.runtime_pid) {
        // SAFETY: leaves without running the runtime's destructors.
        unsafe { libc::_exit(1) }
    }
    for fd in &args.close {
        let _ = nix::unistd::close(*fd);
    }
    // `create`: this process waits for `start` and should not look like its runtime meanwhile.
    if args.listener.is_some() {
        super::title::set();
    }
    // The runtime blocks signals it forwards (`run`); the container starts with none blocked.
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    let code = match setup(&args) {
        Ok(ready) => wait_and_exec(&args, ready),
        Err(e) => {
            let _ = args.channel.send(&Msg::Error(e.to_string()));
            1
        }
    };
    // SAFETY: _exit ends the cloned init without running destructors or atexit handlers that belong
    // to the parent runtime.
    unsafe { libc::_exit(code) }
}

/// What the init resolved at create time and uses at start.
struct Ready {
    /// None for a config without `process` (allowed until `start`, which refuses it).
    process: Option<process::Ready>,
    state: String,
    /// `run`: the runtime sent `Start` (the record says `running`), no start socket to wait on.
    started: bool,
}

/// The init's phases (docs/architecture.md, *create*), each a span with `--debug`: namespaces,
/// mounts, the cgroup join, hooks, paths, pivot, the process, and the hand-over to the runtime.
fn setup(a: &InitArgs) -> Result<Ready> {
    let spec = a.spec;
    // Device nodes and mount points get exactly the configured modes; process.user.umask is set
    // right before exec.
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    match a.channel.expect("runtime")? {
        Msg::Go => {}
        m => return Err(Error::Init(format!("unexpected message {m:?}"))),
    }
    let (bind_fds, in_userns) = namespaces(a)?;
    let linux = spec.linux().clone().unwrap_or_default();
    let propagation = linux.rootfs_propagation().as_deref();
    let mut cgroups = CgroupJoin {
        a,
        in_userns,
        done: false,
    };
    let root = mounts(a, propagation, in_userns, &bind_fds, &mut cgroups)?;
    cgroups.join()?;
    // In the container's cpuset now: not the runtime's affinity but the cgroup's (runc).
    a.attrs.reset_affinity();
    let state = hooks(a)?;
    let console_peer = paths(a, &linux, root)?;
    pivot(a, propagation)?;
    // Our stderr may become the container's terminal or /dev/null now.
    crate::log::timings_to_file_only();
    let process = process(a, console_peer)?;
    let started = release(a)?;
    Ok(Ready {
        process,
        state,
        started,
    })
}

/// Right after our mount namespace exists: asks the runtime for the bind sources and idmapped
/// mounts (`fs::bind_sources`) and receives them, one message each, in the order asked.
fn receive_mount_fds(a: &InitArgs) -> Result<crate::fs::bind_sources::Opened> {
    let asked = crate::fs::bind_sources::Asked {
        sources: a.bind_sources,
        idmapped: a.idmapped,
    };
    if asked.is_empty() {
        return Ok(Default::default());
    }
    a.channel.send(&Msg::MountNsReady)?;
    let recv = |want: Msg, n: usize| -> Result<Vec<OwnedFd>> {
        (0..n)
            .map(|_| match a.channel.recv_fd("runtime")? {
                (m, fd) if m == want => Ok(fd),
                (m, _) => Err(Error::Init(format!("unexpected message {m:?}"))),
            })
            .collect()
    };
    let sources = recv(Msg::BindSource, asked.sources.len())?;
    let idmapped = recv(Msg::IdmappedMount, asked.idmapped.len())?;
    Ok(crate::fs::bind_sources::Opened::new(
        &asked, sources, idmapped,
    ))
}

/// Joined or new namespaces, the user namespace's credentials, hostname. Returns the bind
/// sources the runtime opened for us and whether we are in a user namespace.
fn namespaces(a: &InitArgs) -> Result<(crate::fs::bind_sources::Opened, bool)> {
    let spec = a.spec;
    let _namespaces = tracing::debug_span!("namespaces").entered();
    for (t, path) in &a.plan.join {
        namespaces::setns_path(*t, path)?;
    }
    if !a.plan.unshare.is_empty() {
        nix::sched::unshare(a.plan.unshare).op("unshare namespaces")?;
    }
    if a.plan.fork_for_pid {
        fork_into_pid_ns(a)?;
    }
    // Our mount namespace exists now: the runtime opens the bind sources its root may reach and
    // ours may not, and makes the idmapped mounts, which need its privilege over the sources.
    let bind_fds = receive_mount_fds(a)?;
    let in_userns = a.plan.new_user
        || a.plan
            .join
            .iter()
            .any(|(t, _)| *t == hako_spec::oci::LinuxNamespaceType::User);
    if a.plan.new_time {
        // Before the setresuid below: changing credentials clears the dumpable flag, after which
        // /proc/self/timens_offsets belongs to a uid the user namespace cannot write as.
        namespaces::enter_time_ns(spec)?;
    }
    // CVE-2019-5736: until execve this process is a copy of the runtime, and /proc/<pid>/exe is
    // the hako binary on the host. Not dumpable, nothing in the container (not even its root
    // with the same capabilities) may open it, read it or ptrace us. execve of the container's
    // program makes it dumpable again.
    // SAFETY: prctl(PR_SET_DUMPABLE) takes integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if in_userns {
        // Become the namespace's root so that everything below runs with its full capabilities.
        nix::unistd::setresgid(0.into(), 0.into(), 0.into()).op("setresgid 0 in user namespace")?;
        nix::unistd::setresuid(0.into(), 0.into(), 0.into()).op("setresuid 0 in user namespace")?;
        // The credential change cleared the parent-death signal.
        if !sys::parent_death_signal(Some(libc::SIGKILL), a.runtime_pid) {
            return Err(Error::Init("the runtime exited".into()));
        }
    }
    nix::unistd::setsid().op("setsid")?;
    if !a.no_new_keyring {
        process::join_session_keyring()?;
    }
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).op(format!("sethostname {h:?}"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        // SAFETY: `d` is a live &str and its exact length is passed; no NUL terminator is needed.
        let r = unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) };
        nix::errno::Errno::result(r).op(format!("setdomainname {d:?}"))?;
    }
    Ok((bind_fds, in_userns))
}

/// unshare(CLONE_NEWPID) only moves our children: fork the real init into it. This process
/// reports the init's pid and leaves; only the real init returns.
fn fork_into_pid_ns(a: &InitArgs) -> Result<()> {
    // The real init speaks on the channel only once that is sent (the runtime reads InitPid
    // first), and arms its parent-death signal only once it has a new parent: it waits until
    // this process is gone. Not on EOF of a pipe: the kernel closes an exiting task's files
    // before it reparents its children, and a signal armed in between is sent at once when the
    // reparenting happens.
    let me = sys::pidfd_open(nix::unistd::getpid().as_raw()).op("pidfd_open")?;
    // SAFETY: this process is single-threaded (cloned from the single-threaded runtime); the
    // child continues in this function and execs or _exits.
    match unsafe { sys::clone3(0, None) }.op("fork into pid namespace")? {
        sys::Forked::Parent { pid } => {
            let _ = a.channel.send(&Msg::InitPid(pid));
            // SAFETY: the intermediate process leaves without running destructors that the real
            // init (its child) still relies on.
            unsafe { libc::_exit(0) }
        }
        sys::Forked::Child => {
            // A pidfd polls readable once its process exited and its children were moved.
            let mut fds = [nix::poll::PollFd::new(
                std::os::fd::AsFd::as_fd(&me),
                nix::poll::PollFlags::POLLIN,
            )];
            sys::retry(|| nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE))
                .op("wait for the intermediate process")?;
            drop(me);
        }
    }
    Ok(())
}

/// The runtime makes our cgroups in parallel with our namespaces and mounts; we wait for that
/// only where it matters (the cgroup namespace is rooted at the cgroup we are in when we unshare
/// it): before the first cgroup mount, or after the mounts.
struct CgroupJoin<'a, 'b> {
    a: &'a InitArgs<'b>,
    in_userns: bool,
    done: bool,
}

impl CgroupJoin<'_, '_> {
    fn join(&mut self) -> Result<()> {
        if self.done {
            return Ok(());
        }
        join_own_cgroups(&self.a.channel)?;
        if self.a.plan.new_cgroup {
            if self.in_userns {
                // Only a user namespace may be refused a fresh cgroupfs (fs::cgroupfs).
                crate::fs::cgroupfs::remember_host_cgroups();
            }
            nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP).op("unshare cgroup namespace")?;
        }
        self.done = true;
        Ok(())
    }
}

/// The rootfs and `mounts[]`: the container's root (None without a mount namespace or mounts).
fn mounts(
    a: &InitArgs,
    propagation: Option<&str>,
    in_userns: bool,
    bind_fds: &crate::fs::bind_sources::Opened,
    cgroups: &mut CgroupJoin,
) -> Result<Option<Root>> {
    let spec = a.spec;
    let mut join_cgroups = || cgroups.join();
    let _mounts = tracing::debug_span!("mounts").entered();
    let root = if a.plan.private_mount {
        // A mount namespace joined by path is not the runtime's: only then read its mountinfo.
        let joined;
        let host_mounts = if a
            .plan
            .join
            .iter()
            .any(|(t, _)| *t == hako_spec::oci::LinuxNamespaceType::Mount)
        {
            joined = crate::procinfo::mountinfo()?;
            &joined[..]
        } else {
            a.host_mounts
        };
        rootfs::prepare(a.rootfs, propagation, host_mounts)?;
        let root = Root::open(a.rootfs)?;
        rootfs::mount_all(
            spec,
            &root,
            a.bundle,
            in_userns,
            bind_fds,
            host_mounts,
            &mut join_cgroups,
        )?;
        // runc creates a missing cwd (resolved inside the rootfs, before it may turn read-only).
        if let Some(p) = spec.process().as_ref() {
            root.ensure(p.cwd(), crate::fs::paths::Kind::Dir)?;
        }
        Some(root)
    } else if spec.mounts().as_ref().is_some_and(|m| !m.is_empty()) {
        // No mount namespace of our own: `mounts[]` go below the rootfs in the host's, as runc
        // 1.3 makes them (resolved inside the rootfs all the same). The runtime takes them away
        // at delete or when create fails (fs::host_mounts); no propagation change, no bind of
        // the rootfs onto itself: nothing of the host's but what lies below the rootfs.
        let root = Root::open(a.rootfs)?;
        rootfs::mount_all(
            spec,
            &root,
            a.bundle,
            in_userns,
            bind_fds,
            a.host_mounts,
            &mut join_cgroups,
        )?;
        Some(root)
    } else {
        None
    };
    Ok(root)
}

/// The runtime's prestart and createRuntime hooks (a round trip), then createContainer hooks
/// here. Returns the state the hooks read.
fn hooks(a: &InitArgs) -> Result<String> {
    let spec = a.spec;
    // Without hooks that run here or later at create/start, or network devices for the runtime
    // to move into our namespace, nothing needs the runtime between the mounts and `Created`
    // (the state is only for those hooks' stdin): no round trip.
    let state = if hooks::need_create_round_trip(spec.hooks().as_ref())
        || crate::net::devices::wanted(spec)
    {
        a.channel.send(&Msg::RunRuntimeHooks)?;
        match a.channel.expect("runtime")? {
            Msg::HooksDone { state } => state,
            m => return Err(Error::Init(format!("unexpected message {m:?}"))),
        }
    } else {
        String::new()
    };
    // runc's working directory for these: the container's root, with its mounts (before
    // pivot_root, seen from the host's side).
    let _hooks = tracing::debug_span!("hooks createContainer").entered();
    hooks::run_all(
        spec.hooks().as_ref(),
        hooks::Kind::CreateContainer,
        &state,
        Some(a.rootfs),
    )?;
    Ok(state)
}

/// sysctls, readonly and masked paths, the console, a read-only /dev. Returns the console's
/// peer, which becomes our stdio after the pivot.
fn paths(
    a: &InitArgs,
    linux: &hako_spec::oci::Linux,
    root: Option<Root>,
) -> Result<Option<OwnedFd>> {
    let spec = a.spec;
    let mut console_peer = None;
    let _paths = tracing::debug_span!("paths").entered();
    for (k, v) in linux.sysctl().iter().flatten() {
        // /proc/sys resolves against the writer's namespaces, so the host's verified procfs
        // reaches the container's own net/ipc/uts settings.
        let p = PathBuf::from("/proc/sys").join(k.replace('.', "/"));
        std::fs::write(&p, v).ctx("write sysctl", &p)?;
    }
    if let Some(root) = &root {
        rootfs::readonly(root, linux.readonly_paths().as_deref().unwrap_or(&[]))?;
        let null = rootfs::host_dev_null()?;
        rootfs::mask(root, linux.masked_paths().as_deref().unwrap_or(&[]), &null)?;
    }
    if let Some(sock) = &a.console {
        let root = root
            .as_ref()
            .ok_or_else(|| Error::Usage("a terminal needs a mount namespace".into()))?;
        let (master, peer, name) = crate::init::console::open_pty(root)?;
        if let Some(size) = spec.process().as_ref().and_then(|p| p.console_size()) {
            crate::init::console::set_size(&master, size.height() as u16, size.width() as u16)?;
        }
        crate::init::console::bind_console(root, &peer)?;
        crate::init::console::send_master(sock, &master, &name)?;
        console_peer = Some(peer);
    }
    if let Some(root) = &root {
        crate::fs::mounts::readonly_dev(root, spec.mounts().as_deref().unwrap_or(&[]))?;
    }
    drop(root);
    Ok(console_peer)
}

/// pivot_root (or a move, or only a chroot without a mount namespace), then root.readonly.
fn pivot(a: &InitArgs, propagation: Option<&str>) -> Result<()> {
    let _pivot = tracing::debug_span!("pivot").entered();
    if a.plan.private_mount {
        if a.no_pivot {
            rootfs::move_root(a.rootfs)?;
        } else {
            rootfs::pivot(a.rootfs)?;
        }
        rootfs::finish(
            propagation,
            a.spec
                .root()
                .as_ref()
                .and_then(|r| r.readonly())
                .unwrap_or(false),
        )?;
    } else {
        rootfs::chroot_only(a.rootfs)?;
    }
    Ok(())
}

/// Everything up to execve but the wait for `start`: stdio, the process attributes
/// (personality, scheduler, ...), capabilities, seccomp, the user's credentials, fds — the same
/// `process::prepare` as every exec'd process.
fn process(a: &InitArgs, console_peer: Option<OwnedFd>) -> Result<Option<process::Ready>> {
    let process = a.spec.process().as_ref();
    let _exec = tracing::debug_span!("exec").entered();
    crate::init::stdio::reopen_dev_null()?;
    if let Some(peer) = &console_peer {
        crate::init::console::make_stdio(peer)?;
    }
    drop(console_peer);
    if let Some(p) = process {
        crate::init::stdio::give_to_user(p.user().uid(), a.stdio)?;
    }
    let mut notify = |fd: OwnedFd| a.channel.hand_over_seccomp_fd(fd);
    let fds = process::PassFds {
        preserve: a.preserve_fds,
        skip: &[
            a.listener.as_ref().map_or(-1, |l| l.as_raw_fd()),
            a.channel.raw(),
        ],
    };
    // In a user namespace whose gid map was written without setgroups "deny" we may setgroups.
    // The seccomp filter is on when this returns: the start handshake and startContainer hooks
    // run under it, as in runc.
    // From here the channel alone ties us to the runtime: the seccomp filter may deny prctl,
    // and process.user's credentials would clear the signal anyway. Every read below (seccomp
    // hand-over, `Keep`) ends us on EOF.
    sys::parent_death_signal(None, a.runtime_pid);
    process
        .map(|p| process::prepare(p, a.attrs, &a.extra_env, &fds, &mut notify))
        .transpose()
}

/// `Created`, and the runtime's answer: whether it started us (`run`) or we wait for `start`.
fn release(a: &InitArgs) -> Result<bool> {
    a.channel.send(&Msg::Created)?;
    // `Keep` (create: wait for `start` on the socket) or `Start` (run: exec now), each sent only
    // once the record says `created` or `running`.
    Ok(match (a.channel.reply_raw(None), &a.listener) {
        (Some(Msg::Keep), Some(_)) => false,
        (Some(Msg::Start), None) => true,
        // The runtime died before it recorded the container: nothing may run unrecorded.
        // SAFETY: leaves without running the runtime's destructors.
        _ => unsafe { libc::_exit(1) },
    })
}

/// Waits for the runtime's `CgroupsJoined`, or for `JoinCgroups` and moves itself into the v1
/// hierarchies whose `tasks` files came with it (this process is single-threaded: the kernel's
/// fast path, see `Cgroups::open_tasks`). What it could not join the runtime joins it to.
pub fn join_own_cgroups(ch: &Channel) -> Result<()> {
    // With --debug: the wait for the runtime's cgroups and the moves, on the init's critical path.
    let _span = tracing::debug_span!("cgroups wait+join").entered();
    let failed: Vec<usize> = match ch.recv_fds("runtime")? {
        (Msg::CgroupsJoined, _) => return Ok(()),
        (Msg::JoinCgroups, tasks) => tasks
            .iter()
            .enumerate()
            .filter(|(_, fd)| !crate::cgroups::manager::join_self(fd))
            .map(|(i, _)| i)
            .collect(),
        (m, _) => return Err(Error::Init(format!("unexpected message {m:?}"))),
    };
    if failed.is_empty() {
        return Ok(());
    }
    ch.send(&Msg::CgroupsNotJoined(failed))?;
    match ch.expect("runtime")? {
        Msg::CgroupsJoined => Ok(()),
        m => Err(Error::Init(format!("unexpected message {m:?}"))),
    }
}

/// `start` of a container created from a config without `process`.
pub const NO_PROCESS: &str =
    "process: not set in config.json: a container without a process cannot be started";

/// Blocks until `start` connects to the start socket (`run`: goes on at once), then runs
/// startContainer hooks and execs.
fn wait_and_exec(a: &InitArgs, ready: Ready) -> i32 {
    if ready.started {
        // EOF on the channel (close-on-exec) tells `run` the exec happened; a failure is one
        // `Error`, written with write(2), which no usable seccomp profile denies.
        let e = start_and_exec(a, ready);
        let _ = a.channel.send_raw(&Msg::Error(e));
        return 1;
    }
    let Some(listener) = &a.listener else {
        return 1;
    };
    let conn = loop {
        let conn = match listener.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return 1,
        };
        // Only the container's owner may start it; the socket lives in a 0711 dir, this is the
        // belt to those braces.
        let ok = nix::sys::socket::getsockopt(&conn, nix::sys::socket::sockopt::PeerCredentials)
            .map(|c| c.uid() == 0 || c.uid() == a.owner_uid)
            .unwrap_or(false);
        if ok {
            break conn;
        }
    };
    let fail = |msg: String| -> i32 {
        use std::io::Write;
        let _ = (&conn).write_all(msg.as_bytes());
        1
    };
    let mut b = [0u8; 1];
    if std::io::Read::read(&mut &conn, &mut b).unwrap_or(0) != 1 {
        return 1;
    }
    fail(start_and_exec(a, ready))
}

/// startContainer hooks, then execve; returns only on failure, with the error's text. Only
/// stdio and the preserved fds cross execve (marked at create; the start connection is
/// close-on-exec from accept4, the channel from socketpair).
fn start_and_exec(a: &InitArgs, ready: Ready) -> String {
    let env = ready.process.as_ref().map_or(&[][..], |p| &p.env[..]);
    if let Err(e) = hooks::run_all_in(
        a.spec.hooks().as_ref(),
        hooks::Kind::StartContainer,
        &ready.state,
        None,
        env,
    ) {
        return e.to_string();
    }
    let Some(process) = ready.process else {
        return NO_PROCESS.into();
    };
    process.exec().to_string()
}
