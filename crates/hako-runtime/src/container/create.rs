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
use crate::cgroups::placement::{Join, Joined, Placement};
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
///
/// The phases (docs/architecture.md, *create*): the plan, the claim of `<root>/<id>` and the
/// record, then everything `create_locked` makes, undone if it fails.
fn create_inner(root: &Path, o: &CreateOptions, mode: Mode) -> Result<Released> {
    // With --debug, each phase's duration is one debug line when its span closes (log.rs).
    let _create = tracing::debug_span!("create").entered();
    let mut p = plan(root, o, mode)?;
    let lock = p.store.create(&o.id)?;
    crate::container::crash::point("create:claimed");
    let mut rec = record(o, &mut p);
    if let Err(e) = lock.save(&rec) {
        let _ = lock.remove();
        return Err(e);
    }
    crate::container::crash::point("create:recorded");
    let mut made = Made::default();
    let r = create_locked(
        Decided {
            lock: &lock,
            bundle: &p.bundle,
            plan: &p.ns,
            o,
            mode,
            caller: p.caller,
            attrs: &p.attrs,
            host_mounts: &p.host_mounts,
            idmapped: &p.idmapped,
            joined_uids: p.joined_userns.as_ref().map(|(u, _)| &u[..]),
        },
        p.planned.take().expect("planned"),
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
            undo(&made, &rec, &p.bundle, lock);
            Err(e)
        }
    }
}

/// What `plan` decided and checked before anything exists.
struct Planned {
    bundle: Bundle,
    attrs: crate::init::attrs::Plan,
    ns: namespaces::Plan,
    joined_userns: Option<(Vec<namespaces::IdRange>, Vec<namespaces::IdRange>)>,
    idmapped: Vec<crate::fs::idmapped::Wanted>,
    store: Store,
    caller: Option<crate::init::idmap::Caller>,
    host_mounts: Vec<crate::procinfo::Mount>,
    /// Taken by `create_locked`.
    planned: Option<Cgroups>,
    /// Taken by `record`.
    resctrl: Option<hako_spec::state::ResctrlRecord>,
}

/// The config loaded and everything decided from it, each bad value refused naming its field
/// before anything exists.
fn plan(root: &Path, o: &CreateOptions, mode: Mode) -> Result<Planned> {
    let _config = tracing::debug_span!("config").entered();
    hako_spec::id::validate_id(&o.id)?;
    let bundle = Bundle::load_with(&o.bundle, log::debug_enabled())?;
    for f in &bundle.unknown_fields {
        log::debug(&format!("config.json: ignoring unknown property {f}"));
    }
    crate::init::attrs::caps::warn_unknown_capabilities(&bundle.unknown_capabilities);
    crate::container::support::check(&bundle.spec)?;
    // Optional until `start` (runtime spec), which `run` is too: refused before anything exists.
    let process = bundle.spec.process().as_ref();
    let mut attrs = crate::init::attrs::Plan::for_init(process, bundle.spec.linux().as_ref())?;
    if mode == Mode::Run && process.is_none() {
        return Err(Error::Usage(entry::NO_PROCESS.into()));
    }
    let terminal = process.and_then(|p| p.terminal()).unwrap_or(false);
    crate::init::console::check_flags(terminal, !o.foreground, o.console_socket.is_some())?;
    let ns = namespaces::plan(&bundle.spec);
    let joined_userns = namespaces::joined_user_maps(&bundle.spec)?;
    let idmapped = crate::fs::idmapped::plan(
        &bundle.spec,
        &ns,
        &bundle.dir,
        nix::unistd::geteuid().as_raw(),
    )?;
    crate::fs::rootfs::verify_host_proc()?;
    let store = Store::open(root)?;
    // Compiled (or found in the cache under --root) before the container exists: a bad profile
    // fails here with the field named.
    attrs.compile_seccomp(root, &bundle.spec)?;
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
    attrs.allow_setgroups(!caller.is_some_and(|c| {
        ns.new_user && crate::init::idmap::denies_setgroups(&bundle.spec, c.egid)
    }));
    // Parsed once: the cgroup plan reads the host's hierarchies from it, and the init, whose
    // mount namespace starts as a copy of ours, its rootfs's parent mount and cgroup mounts.
    let host_mounts = crate::procinfo::mountinfo()?;
    let planned = plan_cgroups(&bundle, o, caller, euid, &host_mounts)?;
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
    Ok(Planned {
        bundle,
        attrs,
        ns,
        joined_userns,
        idmapped,
        store,
        caller,
        host_mounts,
        planned: Some(planned),
        resctrl,
    })
}

/// Where the cgroups go: decided (and the path validated) before anything exists.
fn plan_cgroups(
    bundle: &Bundle,
    o: &CreateOptions,
    caller: Option<crate::init::idmap::Caller>,
    euid: u32,
    host_mounts: &[crate::procinfo::Mount],
) -> Result<Cgroups> {
    Ok(
        if o.systemd_cgroup && crate::init::rootless::systemd_user(o.rootless, euid) {
            Cgroups::plan_systemd_user(&bundle.spec, &o.id)?
        } else if caller.is_some() && o.rootless != crate::init::rootless::Mode::Off {
            let p = crate::cgroups::rootless::plan(&bundle.spec, &o.id, euid, host_mounts)?;
            if p.rec.layout.is_empty() {
                crate::cgroups::rootless::warn_not_applied(
                    &bundle.spec,
                    "the caller cannot write the cgroup hierarchy (cgroup v1, or v2 without a delegated subtree)",
                );
            }
            p
        } else {
            Cgroups::plan_with(&bundle.spec, &o.id, o.systemd_cgroup, host_mounts)?
        },
    )
}

/// The `creating` record, for the claimed directory.
fn record(o: &CreateOptions, p: &mut Planned) -> ContainerRecord {
    let planned = p.planned.as_ref().expect("planned");
    // The record comes before anything on the host: a runtime killed from here on leaves a
    // `creating` container that `list` shows and `delete --force` removes, cgroups listed as
    // they may exist, the init's pid as soon as there is one.
    ContainerRecord {
        id: o.id.clone(),
        pid: 0,
        init_start_time: 0,
        status: Status::Creating,
        bundle: p.bundle.dir.clone(),
        rootfs: p.bundle.rootfs.clone(),
        created: now_rfc3339(),
        owner: String::new(),
        private_pid_ns: p.ns.private_pid,
        systemd_cgroup: o.systemd_cgroup,
        rootless: p.caller.is_some() || o.rootless == crate::init::rootless::Mode::On,
        cgroup: hako_spec::state::CgroupRecord {
            created: planned.may_create(),
            ..planned.rec.clone()
        },
        resctrl: p.resctrl.take(),
        host_mounts_before: mounts_on_host(&p.bundle, &p.ns)
            .then(|| crate::fs::host_mounts::before(&p.bundle.rootfs, &p.host_mounts)),
        config: p.bundle.spec.clone(),
    }
}

/// A failed create: what it made goes, the claimed directory last.
fn undo(made: &Made, rec: &ContainerRecord, bundle: &Bundle, lock: Locked) {
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
}

/// Without a mount namespace of its own, `mounts[]` are made in the host's (runc 1.3).
fn mounts_on_host(bundle: &Bundle, plan: &namespaces::Plan) -> bool {
    !plan.private_mount && bundle.spec.mounts().as_ref().is_some_and(|m| !m.is_empty())
}

/// Decided before anything exists, the same for every phase of `create_locked`: which command
/// creates, for which bundle and claimed directory, and who the runtime is (`None` for root; an
/// unprivileged caller's ids otherwise, see crate::init::rootless).
struct Decided<'a> {
    lock: &'a Locked,
    bundle: &'a Bundle,
    plan: &'a namespaces::Plan,
    o: &'a CreateOptions,
    mode: Mode,
    caller: Option<crate::init::idmap::Caller>,
    /// The process attributes (crate::init::attrs), checked, with the compiled seccomp filter.
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

/// Everything from the start socket to the init waiting for `start` (or released, for `run`).
fn create_locked(
    d: Decided,
    planned: Cgroups,
    made: &mut Made,
    rec: &mut ContainerRecord,
) -> Result<(Created, channel::Channel)> {
    let mut planned = Some(planned);
    let e = ends(&d)?;
    let c = clone(&d, &mut planned, made, e)?;
    let ch = &c.parent_ch;
    userns(&d, c.pid)?;
    oom_score_adj(&d, c.pid)?;
    let pid = go(&d, ch, c.pid, made)?;
    mounts(&d, ch, pid, &c.bind_sources)?;
    let mut tasks = cgroups(&d, &mut planned, made, pid, c.born_in_unified, ch)?;
    record_cgroups(&d, rec, made, pid)?;
    // The record as it will be once the init is ready (nothing else in it changes until then),
    // written now while the init sets up: after its `Created` only a rename is left.
    let next = match d.mode {
        Mode::Create => Status::Created,
        Mode::Run => Status::Running,
    };
    rec.status = next;
    let staged = d.lock.stage(rec);
    rec.status = Status::Creating;
    let staged = staged?;
    hooks(&d, rec, ch, &mut tasks, pid)?;
    process(&d, rec, ch, &mut tasks, pid)?;
    release(&d, rec, c, staged, next, pid)
}

/// The runtime's ends of what the init is connected to, and what it is given to open.
struct Ends {
    listener: Option<UnixListener>,
    terminal: bool,
    own_console: Option<OwnedFd>,
    console: Option<OwnedFd>,
    pidfd_socket: Option<OwnedFd>,
    parent_ch: channel::Channel,
    child_ch: channel::Channel,
    preserve: u32,
    extra_env: Vec<String>,
    bind_sources: Vec<PathBuf>,
}

fn ends(d: &Decided) -> Result<Ends> {
    let (lock, o, spec) = (d.lock, d.o, &d.bundle.spec);
    let listener = match d.mode {
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
    let bind_sources = crate::fs::bind_sources::wanted(spec, d.plan, &d.bundle.dir);
    Ok(Ends {
        listener,
        terminal,
        own_console,
        console,
        pidfd_socket,
        parent_ch,
        child_ch,
        preserve,
        extra_env,
        bind_sources,
    })
}

/// The runtime's side once the init is cloned.
struct Cloned {
    /// The clone's pid (not yet the init's, when the init forks into its pid namespace).
    pid: i32,
    own_console: Option<OwnedFd>,
    pidfd_socket: Option<OwnedFd>,
    parent_ch: channel::Channel,
    bind_sources: Vec<PathBuf>,
    born_in_unified: bool,
}

/// Clones the init (in a pid namespace joined by path, born in its v2 cgroup where it can be);
/// the child goes on in `init` and never returns here.
fn clone(d: &Decided, planned: &mut Option<Cgroups>, made: &mut Made, e: Ends) -> Result<Cloned> {
    // Joining a pid namespace by path: entered for the clone only, so hooks run in the runtime's
    // own namespace.
    let pid_ns = match &d.plan.join_pid {
        Some(p) => {
            let ns = std::fs::File::open(p).ctx("open namespace", p)?;
            Some(namespaces::PidNsForChildren::enter(ns.as_fd(), p)?)
        }
        None => None,
    };
    let into = cgroups_before_clone(d, planned, made)?;
    let born_in_unified = into.is_some();
    let runtime_pid = std::process::id() as i32;
    let clone = tracing::debug_span!("clone").entered();
    // SAFETY: the runtime is single-threaded (no other thread can hold a lock the child would
    // inherit), and the child only runs init::run, which execs or _exits.
    let forked = unsafe {
        sys::clone3(
            d.plan.clone.bits() as u64,
            into.as_ref().map(|f| f.as_raw_fd()),
        )
    };
    drop(into);
    let pid = match forked.op("clone container init")? {
        sys::Forked::Child => init(d, e, runtime_pid),
        sys::Forked::Parent { pid } => pid,
    };
    made.child = Some(pid);
    log::debug(&format!(
        "create {}: container init cloned, pid {pid}",
        d.o.id
    ));
    if let Some(ns) = pid_ns {
        ns.leave()?;
    }
    drop(e.child_ch);
    drop(e.listener);
    drop(e.console);

    drop(clone);
    Ok(Cloned {
        pid,
        own_console: e.own_console,
        pidfd_socket: e.pidfd_socket,
        parent_ch: e.parent_ch,
        bind_sources: e.bind_sources,
        born_in_unified,
    })
}

/// Pure cgroup v2 and the hybrid's v2 directory, made before the clone: the fd the init is born
/// in, if any.
fn cgroups_before_clone(
    d: &Decided,
    planned: &mut Option<Cgroups>,
    made: &mut Made,
) -> Result<Option<OwnedFd>> {
    let (spec, o) = (&d.bundle.spec, d.o);
    // Pure cgroup v2: the cgroup is made and limited now and the init is *born* in it
    // (CLONE_INTO_CGROUP): no migration, so none of cgroup_threadgroup_rwsem's grace periods.
    // The hybrid's v2 directory too (made now, limited with the v1 ones after Go: the init runs
    // nothing before it may go on). The v1 hierarchies have no such flag: the runtime makes
    // them after Go, in parallel with the init's own setup, and the init moves itself in
    // (`JoinCgroups`). Neither has systemd: it creates the unit's cgroup with the init in it (the
    // PIDs property), so the init must exist first.
    let layout = planned.as_ref().map(|c| c.rec.layout.clone());
    let part = match layout.as_deref() {
        Some("v2") if !o.systemd_cgroup => Part::All,
        // Not where a refused v1 directory would mean no cgroups at all (rootless cgroups): the
        // init, born in the v2 one, could not be taken out again.
        Some("hybrid")
            if !o.systemd_cgroup && !o.rootless.cgroups(d.caller.map_or(0, |c| c.euid), false) =>
        {
            Part::Unified
        }
        _ => return Ok(None),
    };
    // The spans' names as `make bench`'s phase table reads them.
    let _cgroups = match part {
        Part::Unified => tracing::debug_span!("cgroups v2").entered(),
        _ => tracing::debug_span!("cgroups").entered(),
    };
    let cg = made.cgroups.insert(planned.take().expect("planned"));
    Ok(
        match placement(spec, o).place(cg, None, part, Join::BornIn)? {
            Joined::BornIn(fd) => Some(fd),
            _ => None,
        },
    )
}

/// The cgroup placement phase as `create` does it (shared with `restore`). A runtime that is
/// root only inside a user namespace (rootless podman runs it so) cannot write the host's
/// hierarchy: when cgroups are rootless by runc's rule, that refusal means no cgroup and one
/// warning, not an error.
fn placement<'a>(spec: &'a hako_spec::oci::Spec, o: &'a CreateOptions) -> Placement<'a> {
    Placement {
        spec,
        id: &o.id,
        tolerate_denied: o.rootless.cgroups(0, o.systemd_cgroup),
    }
}

/// The cloned child: the container init (init::entry).
fn init(d: &Decided, e: Ends, runtime_pid: i32) -> ! {
    let (spec, plan, o, caller) = (&d.bundle.spec, d.plan, d.o, d.caller);
    drop(e.parent_ch);
    entry::main(InitArgs {
        spec,
        rootfs: &d.bundle.rootfs,
        bundle: &d.bundle.dir,
        plan,
        channel: e.child_ch,
        listener: e.listener,
        console: e.console,
        no_pivot: o.no_pivot,
        no_new_keyring: o.no_new_keyring,
        preserve_fds: e.preserve,
        extra_env: e.extra_env,
        close: std::iter::once(d.lock.lock_fd().as_raw_fd())
            .chain(e.own_console.as_ref().map(|f| f.as_raw_fd()))
            .collect(),
        owner_uid: {
            let euid = caller.map_or(0, |c| c.euid);
            match (
                spec.linux().as_ref().filter(|_| plan.new_user),
                d.joined_uids,
            ) {
                (Some(l), _) => crate::init::idmap::uid_seen_inside(
                    l.uid_mappings().as_deref().unwrap_or(&[]),
                    euid,
                ),
                (None, Some(maps)) => namespaces::uid_inside(maps, euid),
                (None, None) => euid,
            }
        },
        attrs: d.attrs,
        stdio: if o.foreground && !e.terminal {
            crate::init::stdio::Origin::Caller
        } else {
            crate::init::stdio::Origin::Given
        },
        bind_sources: &e.bind_sources,
        idmapped: d.idmapped,
        runtime_pid,
        host_mounts: d.host_mounts,
    })
}

/// The new user namespace's uid_map and gid_map.
fn userns(d: &Decided, pid: i32) -> Result<()> {
    if d.plan.new_user {
        let _userns = tracing::debug_span!("userns").entered();
        let l = d
            .bundle
            .spec
            .linux()
            .as_ref()
            .expect("user ns implies linux");
        crate::init::idmap::write(
            pid,
            l.uid_mappings().as_deref().unwrap_or(&[]),
            l.gid_mappings().as_deref().unwrap_or(&[]),
            d.caller,
        )?;
    }
    Ok(())
}

fn oom_score_adj(d: &Decided, pid: i32) -> Result<()> {
    if let Some(adj) = d
        .bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.oom_score_adj())
        .filter(|a| d.caller.is_none() || crate::init::rootless::oom_score_adj_allowed(*a))
    {
        let p = format!("/proc/{pid}/oom_score_adj");
        std::fs::write(&p, adj.to_string()).ctx("write", p)?;
    }
    Ok(())
}

/// Lets the init go on; returns its pid (the real init's, when the clone forks into its pid
/// namespace).
fn go(d: &Decided, ch: &channel::Channel, pid: i32, made: &mut Made) -> Result<i32> {
    ch.send(&Msg::Go)?;
    crate::container::crash::point("create:cloned");
    if !d.plan.fork_for_pid {
        return Ok(pid);
    }
    let Msg::InitPid(real) = ch.expect("container init")? else {
        return Err(Error::Init("container init sent no pid".into()));
    };
    let _ = waitpid(Pid::from_raw(pid), None);
    made.child = Some(real);
    Ok(real)
}

/// The bind sources and idmapped mounts the init asked for, opened in its mount namespace.
fn mounts(d: &Decided, ch: &channel::Channel, pid: i32, bind_sources: &[PathBuf]) -> Result<()> {
    let asked = crate::fs::bind_sources::Asked {
        sources: bind_sources,
        idmapped: d.idmapped,
    };
    if !asked.is_empty() {
        let l = d.bundle.spec.linux().as_ref();
        let own = l.filter(|_| d.plan.new_user).map(|l| {
            (
                l.uid_mappings().as_deref().unwrap_or(&[]),
                l.gid_mappings().as_deref().unwrap_or(&[]),
            )
        });
        let userns = crate::fs::idmapped::Userns::prepare(d.idmapped, pid, own, d.caller)?;
        match ch.expect("container init")? {
            Msg::MountNsReady => {}
            m => return Err(Error::Init(format!("unexpected message {m:?}"))),
        }
        let (sources, trees) = crate::fs::bind_sources::open(pid, &asked, &userns)?;
        for fd in sources {
            ch.send_fd(&Msg::BindSource, fd.as_fd())?;
        }
        for fd in trees {
            ch.send_fd(&Msg::IdmappedMount, fd.as_fd())?;
        }
    }
    Ok(())
}

/// The cgroups made after the clone (v1, systemd, the hybrid's v1 part) and the init's join:
/// the v1 `tasks` files it writes itself.
fn cgroups(
    d: &Decided,
    planned: &mut Option<Cgroups>,
    made: &mut Made,
    pid: i32,
    born_in_unified: bool,
    ch: &channel::Channel,
) -> Result<Vec<(PathBuf, OwnedFd)>> {
    let (spec, o) = (&d.bundle.spec, d.o);
    // While the init builds its namespaces and mounts on the other CPU: its cgroups, limits set
    // before it joins, and it joined before it may unshare its cgroup namespace (rooted there) or
    // run anything of the user's. The v1 hierarchies it joins itself (`Cgroups::open_tasks`).
    let placement = placement(spec, o);
    let joined = if let Some(planned) = planned.take() {
        let _cgroups = tracing::debug_span!("cgroups").entered();
        let cg = made.cgroups.insert(planned);
        let join = if o.systemd_cgroup {
            Join::Procs
        } else {
            Join::SelfTasks {
                born_in_unified: false,
            }
        };
        placement.place(cg, Some(pid), Part::All, join)?
    } else if let Some(cg) = made.cgroups.as_mut().filter(|c| c.rec.layout == "hybrid") {
        // The hybrid's v2 directory exists and the init was born in it: the v1 part now.
        let _cgroups = tracing::debug_span!("cgroups").entered();
        let join = Join::SelfTasks { born_in_unified };
        placement.place(cg, Some(pid), Part::V1, join)?
    } else {
        Joined::Nothing
    };
    let tasks = match joined {
        Joined::Tasks(t) => t,
        _ => Vec::new(),
    };
    if tasks.is_empty() {
        ch.send(&Msg::CgroupsJoined)?;
    } else {
        let fds: Vec<_> = tasks.iter().map(|(_, f)| f.as_fd()).collect();
        ch.send_fds(&Msg::JoinCgroups, &fds)?;
    }
    Ok(tasks)
}

/// The init's pid and the cgroups that exist, recorded; its resctrl group joined.
fn record_cgroups(d: &Decided, rec: &mut ContainerRecord, made: &Made, pid: i32) -> Result<()> {
    let cgroups = made.cgroups.as_ref().expect("cgroups are set up");
    // What exists now (a systemd unit's name included) replaces what might; written after the
    // init was released, off its critical path (the `creating` record already lists every
    // directory this create may make).
    // The pid (read from /proc) only now, too: the init waits for the message above.
    record_pid(rec, pid);
    rec.cgroup = cgroups.rec.clone();
    d.lock.save(rec)?;
    crate::container::crash::point("create:cgroups");
    // Before any user code (the init waits for us before `Created`), as runc joins it with the
    // cgroups; the record has listed the group since before it existed.
    if let Some(r) = &rec.resctrl {
        crate::resctrl::apply(&d.bundle.spec, r, pid)?;
    }
    Ok(())
}

/// The round trip for prestart and createRuntime hooks (and network devices), when wanted.
fn hooks(
    d: &Decided,
    rec: &ContainerRecord,
    ch: &channel::Channel,
    tasks: &mut Vec<(PathBuf, OwnedFd)>,
    pid: i32,
) -> Result<()> {
    let spec = &d.bundle.spec;
    // What prestart, createRuntime and createContainer hooks read says `created`, as crun and the
    // OCI runtime-tools validation (hooks_stdin) have it: the hooks run once everything of the
    // container but its process exists. runc 1.1 and 1.3 send their internal `creating`.
    let state = serde_json::to_string(&rec.hook_state(Status::Created)).expect("serializes");
    // The init asks only when a hook or a network device needs us here (the same test on its
    // side).
    if hooks::need_create_round_trip(spec.hooks().as_ref()) || crate::net::devices::wanted(spec) {
        match next_msg(ch, tasks, pid)? {
            Msg::RunRuntimeHooks => {}
            m => return Err(Error::Init(format!("unexpected message {m:?}"))),
        }
        // The init has its network namespace by now; the devices are there before any hook
        // (a prestart hook configuring the network sees them), as in runc.
        crate::net::devices::move_into(spec, pid)?;
        crate::container::crash::point("create:hooks");
        // runc runs these in the bundle (`create` chdirs there).
        let dir = Some(d.bundle.dir.as_path());
        let hooks_span = tracing::debug_span!("hooks prestart+createRuntime").entered();
        hooks::run_all(spec.hooks().as_ref(), hooks::Kind::Prestart, &state, dir)?;
        hooks::run_all(
            spec.hooks().as_ref(),
            hooks::Kind::CreateRuntime,
            &state,
            dir,
        )?;
        drop(hooks_span);
        ch.send(&Msg::HooksDone {
            state: state.clone(),
        })?;
    }
    Ok(())
}

/// The init's remaining setup, up to its process ready to exec (`Created`); the seccomp agent
/// gets its listener meanwhile.
fn process(
    d: &Decided,
    rec: &ContainerRecord,
    ch: &channel::Channel,
    tasks: &mut Vec<(PathBuf, OwnedFd)>,
    pid: i32,
) -> Result<()> {
    // The init's remaining setup (its own phases are logged by the init).
    let _init = tracing::debug_span!("init").entered();
    loop {
        match next_msg(ch, tasks, pid)? {
            Msg::Created => break,
            Msg::SeccompFd(fd) => {
                // The agent gets runc's ContainerProcessState, whose status runc sends as
                // `creating` (agents written for runc may check it).
                let agent = rec.hook_state(Status::Creating);
                let agent = serde_json::to_string(&agent).expect("serializes");
                crate::security::seccomp::give_to_agent(d.attrs.seccomp(), pid, fd, &agent)?;
                ch.send(&Msg::SeccompDone)?;
            }
            m => return Err(Error::Init(format!("unexpected message {m:?}"))),
        }
    }
    crate::container::crash::point("create:init-ready");
    Ok(())
}

/// The init's pidfd and console master handed out, the staged record committed, and the init
/// released: `Keep` (it waits for `start`) or, for `run`, `Start`.
fn release(
    d: &Decided,
    rec: &mut ContainerRecord,
    c: Cloned,
    staged: store::Staged,
    next: Status,
    pid: i32,
) -> Result<(Created, channel::Channel)> {
    let parent_ch = c.parent_ch;
    if let Some(s) = &c.pidfd_socket {
        crate::container::pidfd_socket::send(s, pid, crate::container::pidfd_socket::INIT)?;
    }
    let console = c
        .own_console
        .map(|s| crate::init::console::recv_master(&s))
        .transpose()?;
    if d.mode == Mode::Run {
        // Straight from `creating` to `running`: no caller of `run` can start it, so a `created`
        // record (and its rename) would only be a window for `state` to look through. Still
        // recorded before the init may exec, which it does on `Start` and never on EOF.
        let _start = tracing::debug_span!("start").entered();
        staged.commit()?;
        rec.status = next;
        crate::container::crash::point("run:saved");
        parent_ch.send(&Msg::Start)?;
        log::debug(&format!("run {}: released, init pid {pid}", d.o.id));
        return Ok((Created { pid, console }, parent_ch));
    }
    staged.commit()?;
    rec.status = next;
    crate::container::crash::point("create:saved");
    // Only now may the init outlive us: until it reads this it exits on EOF (see init::main).
    parent_ch.send(&Msg::Keep)?;
    log::debug(&format!("create {}: created, init pid {pid}", d.o.id));
    if let Some(pf) = &d.o.pid_file {
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
