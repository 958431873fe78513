//! `create` and `run`: the runtime clones the container init and answers its messages until the
//! init waits for `start` (docs/architecture.md has the choreography).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use hako_spec::bundle::Bundle;
use hako_spec::state::{ContainerRecord, Status};
use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::cgroups::manager::Part;
use crate::cgroups::Cgroups;
use crate::container::hooks;
use crate::container::lifecycle::{delete_locked, sock_path};
use crate::container::store::{self, Locked, Store};
use crate::error::{Context, Error, Result};
use crate::init::channel::{self, Msg};
use crate::init::entry::{self, InitArgs};
use crate::init::namespaces;
use crate::log;
use crate::sys;

#[derive(Debug, Default, Clone)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    /// `--pidfd-socket`: receives a pidfd of the init (container::pidfd_socket).
    pub pidfd_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    pub systemd_cgroup: bool,
    /// `--rootless`: how cgroups the caller cannot write are treated (crate::init::rootless).
    pub rootless: crate::init::rootless::Mode,
    /// `run` without `--detach`: the runtime stays the init's parent and may own the terminal.
    pub foreground: bool,
}

/// The outcome of `create`, for `run`.
pub struct Created {
    pub pid: i32,
    /// The pty master, when `run` in the foreground owns the container's terminal.
    pub console: Option<OwnedFd>,
}

/// Which command creates: `create` leaves the init waiting on the start socket for `start`;
/// `run` releases it over the channel at once (no socket, no `created` record in between).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Create,
    Run,
}

/// A `run`'s container, recorded `running` and released (`Start` sent), its exec not yet
/// confirmed: the lock and the channel the init answers on.
struct Released {
    created: Created,
    lock: Locked,
    rec: ContainerRecord,
    channel: channel::Channel,
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

pub fn create(root: &Path, o: &CreateOptions) -> Result<Created> {
    create_inner(root, o, Mode::Create).map(|r| r.created)
}

/// `create` or the creating part of `run`, also handing back the locked state directory and the
/// record (so `run` goes on without reading back what it just wrote) and the channel.
fn create_inner(root: &Path, o: &CreateOptions, mode: Mode) -> Result<Released> {
    // With --debug, each phase's duration is one debug line when its span closes (log.rs).
    let _create = tracing::debug_span!("create").entered();
    let config = tracing::debug_span!("config").entered();
    hako_spec::id::validate_id(&o.id)?;
    let bundle = Bundle::load_with(&o.bundle, log::debug_enabled())?;
    for f in &bundle.unknown_fields {
        log::debug(&format!("config.json: ignoring unknown property {f}"));
    }
    crate::init::process::warn_unknown_capabilities(&bundle.unknown_capabilities);
    crate::container::support::check(&bundle.spec)?;
    // Optional until `start` (runtime spec), which `run` is too: refused before anything exists.
    let process = bundle.spec.process().as_ref();
    let attrs = crate::init::attrs::Plan::for_init(process, bundle.spec.linux().as_ref())?;
    if mode == Mode::Run && process.is_none() {
        return Err(Error::Usage(entry::NO_PROCESS.into()));
    }
    let terminal = process.and_then(|p| p.terminal()).unwrap_or(false);
    crate::init::console::check_flags(terminal, !o.foreground, o.console_socket.is_some())?;
    let plan = namespaces::plan(&bundle.spec);
    let joined_userns = namespaces::joined_user_maps(&bundle.spec)?;
    let idmapped = crate::fs::idmapped::plan(
        &bundle.spec,
        &plan,
        &bundle.dir,
        nix::unistd::geteuid().as_raw(),
    )?;
    crate::fs::rootfs::verify_host_proc()?;
    let store = Store::open(root)?;
    // Compiled (or found in the cache under --root) before the container exists: a bad profile
    // fails here with the field named.
    let seccomp = crate::security::seccomp::for_spec(
        root,
        &bundle.spec,
        process.and_then(|p| p.no_new_privileges()).unwrap_or(false),
    )?;
    let euid = nix::unistd::geteuid().as_raw();
    // An unprivileged runtime: the id maps it may write (or the helpers), and what it cannot do
    // refused now, naming the field. Root pays nothing for this.
    let caller = if euid != 0 {
        let egid = nix::unistd::getegid().as_raw();
        crate::init::rootless::check(&bundle.spec, egid)?;
        Some(crate::init::idmap::Caller { euid, egid })
    } else {
        None
    };
    // Parsed once: the cgroup plan reads the host's hierarchies from it, and the init, whose
    // mount namespace starts as a copy of ours, its rootfs's parent mount and cgroup mounts.
    let host_mounts = crate::procinfo::mountinfo()?;
    // Decided (and the path validated) before anything exists.
    let planned = if o.systemd_cgroup && crate::init::rootless::systemd_user(o.rootless, euid) {
        Cgroups::plan_systemd_user(&bundle.spec, &o.id)?
    } else if caller.is_some() && o.rootless != crate::init::rootless::Mode::Off {
        let p = crate::cgroups::rootless::plan(&bundle.spec, &o.id, euid, &host_mounts)?;
        if p.rec.layout.is_empty() {
            crate::cgroups::rootless::warn_not_applied(
                &bundle.spec,
                "the caller cannot write the cgroup hierarchy (cgroup v1, or v2 without a delegated subtree)",
            );
        }
        p
    } else {
        Cgroups::plan_with(&bundle.spec, &o.id, o.systemd_cgroup, &host_mounts)?
    };
    // An id in use is reported as such before its cgroup (which its container may well fill) is
    // looked at, as runc stats the state dir first; the mkdir below still settles a race.
    if std::fs::symlink_metadata(store.dir(&o.id)).is_ok() {
        return Err(Error::Exists(o.id.clone()));
    }
    planned.check_before_create(&bundle.spec)?;
    let resctrl = crate::resctrl::plan(
        &bundle.spec,
        &o.id,
        crate::resctrl::root(&host_mounts).as_deref(),
    )?;
    drop(config);
    let lock = store.create(&o.id)?;
    crate::container::crash::point("create:claimed");
    // The record comes before anything on the host: a runtime killed from here on leaves a
    // `creating` container that `list` shows and `delete --force` removes, cgroups listed as
    // they may exist, the init's pid as soon as there is one.
    let mut rec = ContainerRecord {
        id: o.id.clone(),
        pid: 0,
        init_start_time: 0,
        status: Status::Creating,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: now_rfc3339(),
        owner: String::new(),
        private_pid_ns: plan.private_pid,
        systemd_cgroup: o.systemd_cgroup,
        rootless: caller.is_some() || o.rootless == crate::init::rootless::Mode::On,
        cgroup: hako_spec::state::CgroupRecord {
            created: planned.may_create(),
            ..planned.rec.clone()
        },
        resctrl,
        host_mounts_before: mounts_on_host(&bundle, &plan)
            .then(|| crate::fs::host_mounts::before(&bundle.rootfs, &host_mounts)),
        config: bundle.spec.clone(),
    };
    if let Err(e) = lock.save(&rec) {
        let _ = lock.remove();
        return Err(e);
    }
    crate::container::crash::point("create:recorded");
    let mut made = Made::default();
    let r = create_locked(
        &lock,
        &bundle,
        &plan,
        o,
        Decided {
            mode,
            planned,
            caller,
            seccomp: seccomp.as_ref(),
            attrs: &attrs,
            host_mounts: &host_mounts,
            idmapped: &idmapped,
            joined_uids: joined_userns.as_ref().map(|(u, _)| &u[..]),
        },
        &mut made,
        &mut rec,
    );
    match r {
        Ok((created, channel)) => Ok(Released {
            created,
            lock,
            rec,
            channel,
        }),
        Err(e) => {
            if let Some(pid) = made.child {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
                let _ = waitpid(Pid::from_raw(pid), None);
            }
            if let Some(cg) = &made.cgroups {
                let _ = cg.kill_all();
                let _ = cg.destroy();
            }
            let _ = crate::resctrl::remove(rec.resctrl.as_ref());
            if let Some(before) = &rec.host_mounts_before {
                let _ = crate::fs::host_mounts::undo(&bundle.rootfs, before);
            }
            let _ = lock.remove();
            Err(e)
        }
    }
}

/// Without a mount namespace of its own, `mounts[]` are made in the host's (runc 1.3).
fn mounts_on_host(bundle: &Bundle, plan: &namespaces::Plan) -> bool {
    !plan.private_mount && bundle.spec.mounts().as_ref().is_some_and(|m| !m.is_empty())
}

/// Decided before anything exists: which command creates, where the cgroups go, and who the
/// runtime is (`None` for root; an unprivileged caller's ids otherwise, see
/// crate::init::rootless).
struct Decided<'a> {
    mode: Mode,
    planned: Cgroups,
    caller: Option<crate::init::idmap::Caller>,
    /// `linux.seccomp`, compiled.
    seccomp: Option<&'a crate::security::seccomp::Compiled>,
    /// The process attributes (crate::init::attrs), checked.
    attrs: &'a crate::init::attrs::Plan,
    /// /proc/self/mountinfo, parsed once for the plan and the init.
    host_mounts: &'a [crate::procinfo::Mount],
    /// The idmapped mounts, checked.
    idmapped: &'a [crate::fs::idmapped::Wanted],
    /// The uid mappings of a user namespace joined by path.
    joined_uids: Option<&'a [namespaces::IdRange]>,
}

/// What a `create` has brought into existence so far: undone if it fails.
#[derive(Default)]
struct Made {
    child: Option<i32>,
    cgroups: Option<Cgroups>,
}

fn create_locked(
    lock: &Locked,
    bundle: &Bundle,
    plan: &namespaces::Plan,
    o: &CreateOptions,
    decided: Decided,
    made: &mut Made,
    rec: &mut ContainerRecord,
) -> Result<(Created, channel::Channel)> {
    let Decided {
        mode,
        planned,
        caller,
        seccomp,
        attrs,
        host_mounts,
        idmapped,
        joined_uids,
    } = decided;
    let spec = &bundle.spec;
    let listener = match mode {
        Mode::Create => Some(
            UnixListener::bind(sock_path(lock)).ctx("listen", lock.path(store::START_SOCKET))?,
        ),
        Mode::Run => None,
    };
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let (own_console, console) = crate::init::console::ends(o.console_socket.as_deref(), terminal)?;
    let pidfd_socket = o
        .pidfd_socket
        .as_deref()
        .map(crate::container::pidfd_socket::connect)
        .transpose()?;
    let (parent_ch, child_ch) = channel::pair()?;
    let (preserve, extra_env) = preserved_fds(o.preserve_fds);
    let bind_sources = crate::fs::bind_sources::wanted(spec, plan, &bundle.dir);

    // Joining a pid namespace by path: entered for the clone only, so hooks run in the runtime's
    // own namespace.
    let pid_ns = match &plan.join_pid {
        Some(p) => {
            let ns = std::fs::File::open(p).ctx("open namespace", p)?;
            Some(namespaces::PidNsForChildren::enter(ns.as_fd(), p)?)
        }
        None => None,
    };
    // Pure cgroup v2: the cgroup is made and limited now and the init is *born* in it
    // (CLONE_INTO_CGROUP): no migration, so none of cgroup_threadgroup_rwsem's grace periods.
    // The hybrid's v2 directory too (made now, limited with the v1 ones after Go: the init runs
    // nothing before it may go on). The v1 hierarchies have no such flag: the runtime makes
    // them after Go, in parallel with the init's own setup, and the init moves itself in
    // (`JoinCgroups`). Neither has systemd: it creates the unit's cgroup with the init in it (the
    // PIDs property), so the init must exist first.
    let mut planned = Some(planned);
    let layout = planned.as_ref().map(|c| c.rec.layout.clone());
    let into = match layout.as_deref() {
        Some("v2") if !o.systemd_cgroup => {
            let _cgroups = tracing::debug_span!("cgroups").entered();
            let cg = made.cgroups.insert(planned.take().expect("planned"));
            if made_or_skipped(cg, spec, o, Part::All)? {
                if let Some(r) = Cgroups::resources(spec) {
                    cg.set(&r)?;
                }
                Some(cg.open_unified()?)
            } else {
                None
            }
        }
        // Not where a refused v1 directory would mean no cgroups at all (rootless cgroups): the
        // init, born in the v2 one, could not be taken out again.
        Some("hybrid")
            if !o.systemd_cgroup && !o.rootless.cgroups(caller.map_or(0, |c| c.euid), false) =>
        {
            let _cgroups = tracing::debug_span!("cgroups v2").entered();
            let cg = made.cgroups.insert(planned.take().expect("planned"));
            if made_or_skipped(cg, spec, o, Part::Unified)? {
                Some(cg.open_unified()?)
            } else {
                None
            }
        }
        _ => None,
    };
    let born_in_unified = into.is_some();
    let runtime_pid = std::process::id() as i32;
    let clone = tracing::debug_span!("clone").entered();
    // SAFETY: the runtime is single-threaded (no other thread can hold a lock the child would
    // inherit), and the child only runs init::run, which execs or _exits.
    let forked = unsafe {
        sys::clone3(
            plan.clone.bits() as u64,
            into.as_ref().map(|f| f.as_raw_fd()),
        )
    };
    drop(into);
    let mut pid = match forked.op("clone container init")? {
        sys::Forked::Child => {
            drop(parent_ch);
            entry::main(InitArgs {
                spec,
                rootfs: &bundle.rootfs,
                bundle: &bundle.dir,
                plan,
                channel: child_ch,
                listener,
                console,
                no_pivot: o.no_pivot,
                no_new_keyring: o.no_new_keyring,
                preserve_fds: preserve,
                extra_env,
                close: std::iter::once(lock.lock_fd().as_raw_fd())
                    .chain(own_console.as_ref().map(|f| f.as_raw_fd()))
                    .collect(),
                owner_uid: {
                    let euid = caller.map_or(0, |c| c.euid);
                    match (spec.linux().as_ref().filter(|_| plan.new_user), joined_uids) {
                        (Some(l), _) => crate::init::idmap::uid_seen_inside(
                            l.uid_mappings().as_deref().unwrap_or(&[]),
                            euid,
                        ),
                        (None, Some(maps)) => namespaces::uid_inside(maps, euid),
                        (None, None) => euid,
                    }
                },
                seccomp,
                attrs,
                stdio: if o.foreground && !terminal {
                    crate::init::stdio::Origin::Caller
                } else {
                    crate::init::stdio::Origin::Given
                },
                setgroups_allowed: !caller.is_some_and(|c| {
                    plan.new_user && crate::init::idmap::denies_setgroups(spec, c.egid)
                }),
                bind_sources: &bind_sources,
                idmapped,
                runtime_pid,
                host_mounts,
            })
        }
        sys::Forked::Parent { pid } => pid,
    };
    made.child = Some(pid);
    log::debug(&format!(
        "create {}: container init cloned, pid {pid}",
        o.id
    ));
    if let Some(ns) = pid_ns {
        ns.leave()?;
    }
    drop(child_ch);
    drop(listener);
    drop(console);

    drop(clone);
    if plan.new_user {
        let _userns = tracing::debug_span!("userns").entered();
        let l = spec.linux().as_ref().expect("user ns implies linux");
        crate::init::idmap::write(
            pid,
            l.uid_mappings().as_deref().unwrap_or(&[]),
            l.gid_mappings().as_deref().unwrap_or(&[]),
            caller,
        )?;
    }
    if let Some(adj) = spec
        .process()
        .as_ref()
        .and_then(|p| p.oom_score_adj())
        .filter(|a| caller.is_none() || crate::init::rootless::oom_score_adj_allowed(*a))
    {
        let p = format!("/proc/{pid}/oom_score_adj");
        std::fs::write(&p, adj.to_string()).ctx("write", p)?;
    }
    parent_ch.send(&Msg::Go)?;
    crate::container::crash::point("create:cloned");
    if plan.fork_for_pid {
        let Msg::InitPid(real) = parent_ch.expect("container init")? else {
            return Err(Error::Init("container init sent no pid".into()));
        };
        let _ = waitpid(Pid::from_raw(pid), None);
        pid = real;
        made.child = Some(pid);
    }
    let asked = crate::fs::bind_sources::Asked {
        sources: &bind_sources,
        idmapped,
    };
    if !asked.is_empty() {
        let l = spec.linux().as_ref();
        let own = l.filter(|_| plan.new_user).map(|l| {
            (
                l.uid_mappings().as_deref().unwrap_or(&[]),
                l.gid_mappings().as_deref().unwrap_or(&[]),
            )
        });
        let userns = crate::fs::idmapped::Userns::prepare(idmapped, pid, own, caller)?;
        crate::fs::bind_sources::send(&parent_ch, pid, &asked, &userns)?;
    }
    // While the init builds its namespaces and mounts on the other CPU: its cgroups, limits set
    // before it joins, and it joined before it may unshare its cgroup namespace (rooted there) or
    // run anything of the user's. The v1 hierarchies it joins itself (`Cgroups::open_tasks`).
    let mut tasks = Vec::new();
    let r = Cgroups::resources(spec);
    if let Some(planned) = planned.take() {
        let _cgroups = tracing::debug_span!("cgroups").entered();
        let cg = made.cgroups.insert(planned);
        cg.start_unit(pid, r.as_ref(), &o.id)?;
        if made_or_skipped(cg, spec, o, Part::All)? {
            if let Some(r) = &r {
                cg.set(r)?;
            }
            if o.systemd_cgroup {
                cg.apply(pid)?;
            } else {
                tasks = cg.open_tasks(pid, false)?;
            }
        }
    } else if let Some(cg) = made.cgroups.as_mut().filter(|c| c.rec.layout == "hybrid") {
        // The hybrid's v2 directory exists and the init was born in it: the v1 part now.
        let _cgroups = tracing::debug_span!("cgroups").entered();
        if made_or_skipped(cg, spec, o, Part::V1)? {
            if let Some(r) = &r {
                cg.set(r)?;
            }
            tasks = cg.open_tasks(pid, born_in_unified)?;
        }
    }
    let cgroups = made.cgroups.as_ref().expect("cgroups are set up");
    if tasks.is_empty() {
        parent_ch.send(&Msg::CgroupsJoined)?;
    } else {
        let fds: Vec<_> = tasks.iter().map(|(_, f)| f.as_fd()).collect();
        parent_ch.send_fds(&Msg::JoinCgroups, &fds)?;
    }
    // What exists now (a systemd unit's name included) replaces what might; written after the
    // init was released, off its critical path (the `creating` record already lists every
    // directory this create may make).
    // The pid (read from /proc) only now, too: the init waits for the message above.
    record_pid(rec, pid);
    rec.cgroup = cgroups.rec.clone();
    lock.save(rec)?;
    crate::container::crash::point("create:cgroups");
    // Before any user code (the init waits for us before `Created`), as runc joins it with the
    // cgroups; the record has listed the group since before it existed.
    if let Some(r) = &rec.resctrl {
        crate::resctrl::apply(spec, r, pid)?;
    }
    // The record as it will be once the init is ready (nothing else in it changes until then),
    // written now while the init sets up: after its `Created` only a rename is left.
    let next = match mode {
        Mode::Create => Status::Created,
        Mode::Run => Status::Running,
    };
    rec.status = next;
    let staged = lock.stage(rec);
    rec.status = Status::Creating;
    let staged = staged?;
    // What prestart, createRuntime and createContainer hooks read says `created`, as crun and the
    // OCI runtime-tools validation (hooks_stdin) have it: the hooks run once everything of the
    // container but its process exists. runc 1.1 and 1.3 send their internal `creating`.
    let state = serde_json::to_string(&rec.hook_state(Status::Created)).expect("serializes");
    // The init asks only when a hook or a network device needs us here (the same test on its
    // side).
    if hooks::need_create_round_trip(spec.hooks().as_ref()) || crate::net::devices::wanted(spec) {
        match next_msg(&parent_ch, &mut tasks, pid)? {
            Msg::RunRuntimeHooks => {}
            m => return Err(Error::Init(format!("unexpected message {m:?}"))),
        }
        // The init has its network namespace by now; the devices are there before any hook
        // (a prestart hook configuring the network sees them), as in runc.
        crate::net::devices::move_into(spec, pid)?;
        crate::container::crash::point("create:hooks");
        // runc runs these in the bundle (`create` chdirs there).
        let dir = Some(bundle.dir.as_path());
        let hooks_span = tracing::debug_span!("hooks prestart+createRuntime").entered();
        hooks::run_all(spec.hooks().as_ref(), hooks::Kind::Prestart, &state, dir)?;
        hooks::run_all(
            spec.hooks().as_ref(),
            hooks::Kind::CreateRuntime,
            &state,
            dir,
        )?;
        drop(hooks_span);
        parent_ch.send(&Msg::HooksDone {
            state: state.clone(),
        })?;
    }
    // The init's remaining setup (its own phases are logged by the init).
    let _init = tracing::debug_span!("init").entered();
    loop {
        match next_msg(&parent_ch, &mut tasks, pid)? {
            Msg::Created => break,
            Msg::SeccompFd(fd) => {
                // The agent gets runc's ContainerProcessState, whose status runc sends as
                // `creating` (agents written for runc may check it).
                let agent = rec.hook_state(Status::Creating);
                let agent = serde_json::to_string(&agent).expect("serializes");
                crate::security::seccomp::give_to_agent(seccomp, pid, fd, &agent)?;
                parent_ch.send(&Msg::SeccompDone)?;
            }
            m => return Err(Error::Init(format!("unexpected message {m:?}"))),
        }
    }
    crate::container::crash::point("create:init-ready");
    if let Some(s) = &pidfd_socket {
        crate::container::pidfd_socket::send(s, pid, crate::container::pidfd_socket::INIT)?;
    }
    let console = own_console
        .map(|s| crate::init::console::recv_master(&s))
        .transpose()?;
    if mode == Mode::Run {
        // Straight from `creating` to `running`: no caller of `run` can start it, so a `created`
        // record (and its rename) would only be a window for `state` to look through. Still
        // recorded before the init may exec, which it does on `Start` and never on EOF.
        let _start = tracing::debug_span!("start").entered();
        staged.commit()?;
        rec.status = next;
        crate::container::crash::point("run:saved");
        parent_ch.send(&Msg::Start)?;
        log::debug(&format!("run {}: released, init pid {pid}", o.id));
        return Ok((Created { pid, console }, parent_ch));
    }
    staged.commit()?;
    rec.status = next;
    crate::container::crash::point("create:saved");
    // Only now may the init outlive us: until it reads this it exits on EOF (see init::main).
    parent_ch.send(&Msg::Keep)?;
    log::debug(&format!("create {}: created, init pid {pid}", o.id));
    if let Some(pf) = &o.pid_file {
        store::write_atomic(pf, &pid.to_string())?;
    }
    Ok((Created { pid, console }, parent_ch))
}

/// After `Start`: EOF means the init exec'd (the channel is close-on-exec), an `Error` is why it
/// could not (a startContainer hook, execve).
fn exec_verdict(ch: &channel::Channel) -> Result<()> {
    match ch.recv_or_eof("container init")? {
        None => Ok(()),
        Some(Msg::Error(e)) => Err(Error::Init(e)),
        Some(m) => Err(Error::Init(format!("unexpected message {m:?}"))),
    }
}

/// Notes the init's pid and start time in the record, written with the cgroups right after the
/// init was released to run: before that it runs nothing of the user's or the hooks', and until
/// `Keep` it dies with the runtime (parent-death signal, EOF on the channel). One save instead
/// of two: each rename of state.json costs `run` about 0.2 ms here.
fn record_pid(rec: &mut ContainerRecord, pid: i32) {
    rec.pid = pid;
    rec.init_start_time = sys::proc_stat(pid).map(|s| s.1).unwrap_or(0);
}

/// The init's next message. Before it, the init may report the v1 hierarchies it could not move
/// itself into (`CgroupsNotJoined`, indices into `tasks`): the runtime writes its pid into their
/// `cgroup.procs` as it otherwise would (that error if it fails too) and answers
/// `CgroupsJoined`. The `tasks` files are closed once the init is in.
fn next_msg(ch: &channel::Channel, tasks: &mut Vec<(PathBuf, OwnedFd)>, pid: i32) -> Result<Msg> {
    let msg = ch.expect("container init")?;
    let Msg::CgroupsNotJoined(failed) = &msg else {
        tasks.clear();
        return Ok(msg);
    };
    Cgroups::join_dirs(
        failed.iter().filter_map(|i| tasks.get(*i).map(|t| &t.0)),
        pid,
    )?;
    tasks.clear();
    ch.send(&Msg::CgroupsJoined)?;
    ch.expect("container init")
}

/// Creates the container's cgroups; true when it has them. A runtime that is root only inside a
/// user namespace (rootless podman runs it so) cannot write the host's hierarchy: when cgroups
/// are rootless by runc's rule, that refusal means no cgroup and one warning, not an error. The
/// user namespace check runs only then, so root pays nothing for it.
fn made_or_skipped(
    cg: &mut Cgroups,
    spec: &hako_spec::oci::Spec,
    o: &CreateOptions,
    part: Part,
) -> Result<bool> {
    if cg.rec.layout.is_empty() {
        return Ok(false);
    }
    match cg.create_part(part) {
        Ok(()) => Ok(true),
        Err(e) if e.is_permission() && o.rootless.cgroups(0, o.systemd_cgroup) => {
            crate::cgroups::rootless::warn_not_applied(spec, &e.to_string());
            cg.rec = hako_spec::state::CgroupRecord::default();
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// `--preserve-fds N` plus systemd socket activation: when the runtime itself was started with
/// LISTEN_FDS, those fds follow the container and the process is told so (as runc does).
fn preserved_fds(preserve: u32) -> (u32, Vec<String>) {
    let listen = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(0);
    let env = if listen > 0 {
        vec![format!("LISTEN_FDS={listen}"), "LISTEN_PID=1".to_string()]
    } else {
        vec![]
    };
    (preserve + listen, env)
}

/// `run`: create, start and (unless detached) wait, forwarding signals; returns the exit status
/// the CLI must exit with (128+N for a signal N).
pub fn run(root: &Path, o: &CreateOptions, detach: bool, keep: bool) -> Result<i32> {
    let forwarded = if detach {
        None
    } else {
        Some(crate::container::foreground::prepare()?)
    };
    // The record stays in memory from create to delete: nothing is read back from disk.
    let Released {
        created,
        lock,
        rec,
        channel,
    } = create_inner(root, o, Mode::Run)?;
    // `state`, `kill`, `exec` … take the lock while the container runs; let go before the wait
    // for the exec (a container paused meanwhile would hold us until `resume`).
    drop(lock.unlock());
    let wait = tracing::debug_span!("start wait").entered();
    let verdict = exec_verdict(&channel);
    drop(wait);
    if let Err(e) = verdict.and_then(|()| {
        crate::container::crash::point("run:released");
        log::debug(&format!(
            "run {}: container init {} exec'd",
            o.id, created.pid
        ));
        match &o.pid_file {
            Some(pf) => store::write_atomic(pf, &created.pid.to_string()),
            None => Ok(()),
        }
    }) {
        if let Ok(lock) = Store::existing(root).lock(&o.id) {
            let _ = delete_locked(&o.id, lock, rec, true);
        }
        return Err(e);
    }
    drop(channel);
    if let Err(e) = crate::container::lifecycle::poststart(&rec) {
        // Stopped by now; `run` is the caller that would delete it, so it does (poststop hooks
        // run), unless asked to keep the stopped container.
        if !keep {
            if let Ok(lock) = Store::existing(root).lock(&o.id) {
                let _ = delete_locked(&o.id, lock, rec, true);
            }
        }
        return Err(e);
    }
    let Some(forwarded) = forwarded else {
        return Ok(0);
    };
    let code = crate::container::foreground::wait(created.pid, &forwarded, created.console)?;
    if !keep {
        if let Ok(lock) = Store::existing(root).lock(&o.id) {
            let _ = delete_locked(&o.id, lock, rec, true);
        }
    }
    Ok(code)
}
