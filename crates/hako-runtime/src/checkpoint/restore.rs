//! `restore`: a new container (the same or another id) from an image directory. hako makes what
//! CRIU cannot — the state directory, the cgroups with the bundle's limits, mount points, a bind of
//! the rootfs CRIU can use as its root — and CRIU brings back the processes, their namespaces
//! and mounts. The restored init is our child (`rst_sibling`), recorded in state.json at CRIU's
//! post-restore callback. A failed restore removes everything it made.
//!
//! Without `--detach` the runtime stays, as `run` does: forwarding signals, owning the terminal
//! when there is no console socket, and deleting the container when its init exits.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use hako_spec::bundle::Bundle;
use hako_spec::oci::LinuxNamespaceType;
use hako_spec::state::{ContainerRecord, Status};
use nix::mount::MsFlags;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::dump::{ext_key, ns_path};
use super::rpc::{CgroupRoot, CriuReq, CriuReqType, InheritFd, JoinNamespace};
use super::swrk::{self, Handler, Spawn};
use super::{
    base_opts, checked_version, criu_config, extmnt, open_dir, with_log, CriuOptions, DESCRIPTORS,
};
use crate::cgroups::manager::Part;
use crate::cgroups::placement::{Join, Placement};
use crate::cgroups::Cgroups;
use crate::container::hooks;
use crate::container::store::{self, Locked, Store};
use crate::error::{Context, Error, Result};

#[derive(Debug, Default, Clone)]
pub struct RestoreOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub criu: CriuOptions,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    /// Accepted as runc does: CRIU restores the mount namespace and root itself.
    pub no_pivot: bool,
    pub no_subreaper: bool,
    pub lsm_profile: Option<String>,
    pub lsm_mount_context: Option<String>,
    pub systemd_cgroup: bool,
    pub rootless: bool,
}

const LOG: &str = "restore.log";
/// In the state directory: the rootfs bound where CRIU wants its root (a mount point whose parent
/// is not overmounted), as runc does.
const CRIU_ROOT: &str = "criu-root";

/// Restores; returns the exit status to exit with (0 when detached, else the init's).
///
/// The phases: the plan, the claim of `<root>/<id>`, everything `restore_locked` makes (undone
/// if it fails), and in the foreground the wait and the delete.
pub fn restore(root: &Path, o: &RestoreOptions) -> Result<i32> {
    let p = plan(o)?;
    let store = Store::open(root)?;
    // An id in use first, as `create` (its cgroup would be reported as busy otherwise).
    if std::fs::symlink_metadata(store.dir(&o.id)).is_ok() {
        return Err(Error::Exists(o.id.clone()));
    }
    p.planned.check_before_create(&p.bundle.spec)?;
    let lock = store.create(&o.id)?;
    let cgroup = hako_spec::state::CgroupRecord {
        created: p.planned.may_create(),
        ..p.planned.rec.clone()
    };
    if let Err(e) = lock.save(&record(&p.bundle, o, cgroup, 0, Status::Creating)) {
        let _ = lock.remove();
        return Err(e);
    }
    // Before CRIU is forked: a signal sent meanwhile stays queued for the wait loop.
    let forwarded = if o.detach {
        None
    } else {
        let f = crate::container::foreground::prepare()?;
        if o.no_subreaper {
            nix::sys::prctl::set_child_subreaper(false).op("prctl(PR_SET_CHILD_SUBREAPER)")?;
        }
        Some(f)
    };
    let mut made = Made::default();
    let r = restore_locked(
        &lock,
        &p.bundle,
        o,
        &p.criu,
        &p.images_fd,
        &p.descriptors,
        p.planned,
        &mut made,
    );
    if let Some(dir) = made.criu_root.take() {
        let _ = nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&dir);
    }
    let (rec, console) = match r.and_then(|(rec, console)| {
        if let Some(pf) = &o.pid_file {
            store::write_atomic(pf, &rec.pid.to_string())?;
        }
        Ok((rec, console))
    }) {
        Ok(x) => x,
        Err(e) => {
            made.undo();
            let _ = lock.remove();
            return Err(with_log(e, &o.criu, LOG));
        }
    };
    let Some(forwarded) = forwarded else {
        return Ok(0);
    };
    // `state`, `kill`, `exec` get through while we wait.
    drop(lock);
    let code = crate::container::foreground::wait(rec.pid, &forwarded, console)?;
    if let Ok(lock) = Store::existing(root).lock(&o.id) {
        let _ = crate::container::lifecycle::delete_locked(&o.id, lock, rec, true);
    }
    Ok(code)
}

/// What `plan` read and checked before anything exists.
struct Planned {
    bundle: Bundle,
    criu: PathBuf,
    images_fd: OwnedFd,
    descriptors: Vec<String>,
    planned: Cgroups,
}

/// The bundle, CRIU and the image directory, each refused before anything exists.
fn plan(o: &RestoreOptions) -> Result<Planned> {
    hako_spec::id::validate_id(&o.id)?;
    let bundle = Bundle::load_with(&o.bundle, crate::log::debug_enabled())?;
    crate::container::support::check(&bundle.spec)?;
    super::refuse_idmapped(&bundle.spec, "restore")?;
    if bundle
        .spec
        .linux()
        .as_ref()
        .is_some_and(|l| l.intel_rdt().is_some())
    {
        // create places the init in its resctrl group (crate::resctrl); restore does not yet.
        return Err(Error::Usage(
            "linux.intelRdt: not applied by restore in this version of hako".into(),
        ));
    }
    let terminal = bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    crate::init::console::check_flags(terminal, o.detach, o.console_socket.is_some())?;
    let criu = swrk::resolve(&o.criu.criu)?;
    let version = checked_version(&criu)?;
    super::netlock::require_tools(
        &bundle.spec,
        criu_config(&bundle.spec).as_deref(),
        "restore",
    )?;
    if o.lsm_profile.is_some() {
        swrk::require(version, 31600, "--lsm-profile")?;
    }
    if o.lsm_mount_context.is_some() {
        swrk::require(version, 31600, "--lsm-mount-context")?;
    }
    let images = o.criu.image_dir();
    let images_fd = open_dir(&images)?;
    let desc_path = images.join(DESCRIPTORS);
    let descriptors: Vec<String> = serde_json::from_slice(
        &std::fs::read(&desc_path).ctx("read checkpoint descriptors", &desc_path)?,
    )
    .map_err(|e| Error::Usage(format!("{}: {e}", desc_path.display())))?;
    let planned = Cgroups::plan(&bundle.spec, &o.id, o.systemd_cgroup)?;
    Ok(Planned {
        bundle,
        criu,
        images_fd,
        descriptors,
        planned,
    })
}

/// What a restore has made so far: undone when it fails.
#[derive(Default)]
struct Made {
    pid: Option<i32>,
    cgroups: Option<Cgroups>,
    criu_root: Option<PathBuf>,
}

impl Made {
    fn undo(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
        }
        if let Some(cg) = self.cgroups.take() {
            let _ = cg.kill_all();
            let _ = cg.destroy();
        }
    }
}

/// The phases (docs/architecture.md, *checkpoint and restore*): mounts (mount points and CRIU's
/// root), the request (options, namespaces, stdio), then CRIU with our callbacks: the cgroups
/// (`spawned`), hooks and the record (`notify`).
#[allow(clippy::too_many_arguments)]
fn restore_locked(
    lock: &Locked,
    bundle: &Bundle,
    o: &RestoreOptions,
    criu: &Path,
    images_fd: &OwnedFd,
    descriptors: &[String],
    planned: Cgroups,
    made: &mut Made,
) -> Result<(ContainerRecord, Option<OwnedFd>)> {
    let spec = &bundle.spec;
    let plan = crate::init::namespaces::plan(spec);
    // Made (and limited) once CRIU runs, which is moved in: it restores the processes there.
    made.cgroups = Some(planned);
    let criu_root = mounts(lock, bundle, made)?;
    // `work` stays open until CRIU is done: the request names its fd.
    let (req, extra, _work) = request(o, spec, images_fd, descriptors, &criu_root)?;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let spawn = Spawn {
        criu,
        inherit_stdio: !terminal,
        extra: extra.iter().map(|f| f.as_fd()).collect(),
        own_mount_ns: plan.private_mount,
    };
    let mut events = RestoreEvents {
        lock,
        bundle,
        cgroups: made.cgroups.as_mut().expect("planned above"),
        console_socket: o.console_socket.as_deref(),
        o,
        pid: None,
        rec: None,
        master: None,
    };
    let r = swrk::call(&spawn, req, &mut events);
    made.pid = events.pid;
    let resp = r?;
    let (Some(rec), master) = (events.rec.take(), events.master.take()) else {
        let pid = resp.restore.map(|r| r.pid).unwrap_or(0);
        return Err(Error::Usage(format!(
            "criu restored pid {pid} without the post-restore notification"
        )));
    };
    Ok((rec, master))
}

/// The mount points CRIU needs in the rootfs, and the rootfs bound at `<dir>/criu-root`, CRIU's
/// root. Returns that path.
fn mounts(lock: &Locked, bundle: &Bundle, made: &mut Made) -> Result<PathBuf> {
    let rootfs = crate::fs::paths::Root::open(&bundle.rootfs)?;
    extmnt::make_mountpoints(&bundle.spec, &rootfs, &bundle.dir)?;
    drop(rootfs);
    let criu_root = std::fs::canonicalize(&lock.dir)
        .ctx("resolve", &lock.dir)?
        .join(CRIU_ROOT);
    std::fs::create_dir(&criu_root).ctx("create", &criu_root)?;
    made.criu_root = Some(criu_root.clone());
    nix::mount::mount(
        Some(&bundle.rootfs),
        &criu_root,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx("bind rootfs for criu", &criu_root)?;
    Ok(criu_root)
}

/// CRIU's restore request, the namespace files it inherits as fds 4, 5, …, and the work
/// directory whose fd the request names.
fn request(
    o: &RestoreOptions,
    spec: &hako_spec::oci::Spec,
    images_fd: &OwnedFd,
    descriptors: &[String],
    criu_root: &Path,
) -> Result<(CriuReq, Vec<std::fs::File>, Option<OwnedFd>)> {
    let work = match &o.criu.work_path {
        Some(w) => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .create(w)
                .ctx("create directory", w)?;
            Some(open_dir(w)?)
        }
        None => None,
    };
    let mut opts = base_opts(&o.criu, spec, images_fd, work.as_ref(), LOG)?;
    opts.evasive_devices = Some(true);
    opts.rst_sibling = Some(true);
    opts.root = Some(criu_root.to_string_lossy().into_owned());
    opts.lsm_profile = o.lsm_profile.clone();
    opts.lsm_mount_context = o.lsm_mount_context.clone();
    let extra = namespaces(spec, &mut opts)?;
    // The init's stdio pipes are replaced by ours (CRIU's 0-2), as runc does.
    for (i, s) in descriptors.iter().enumerate().take(3) {
        if s.contains("pipe:") {
            opts.inherit_fd.push(InheritFd {
                key: s.clone(),
                fd: i as i32,
            });
        }
    }
    let req = CriuReq {
        r#type: CriuReqType::Restore as i32,
        opts: Some(opts),
        ..Default::default()
    };
    Ok((req, extra, work))
}

/// Namespaces given by path: net and pid were dumped as external (runc's keys) and are handed
/// over as fds 4, 5, … (returned, opened); the others CRIU joins itself.
fn namespaces(
    spec: &hako_spec::oci::Spec,
    opts: &mut super::rpc::CriuOpts,
) -> Result<Vec<std::fs::File>> {
    let mut extra: Vec<std::fs::File> = Vec::new();
    for n in spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default()
    {
        let Some(path) = n.path().clone() else {
            continue;
        };
        match n.typ() {
            LinuxNamespaceType::Network | LinuxNamespaceType::Pid => {
                let key = if n.typ() == LinuxNamespaceType::Network {
                    "net"
                } else {
                    "pid"
                };
                debug_assert_eq!(ns_path(spec, n.typ()).as_ref(), Some(&path));
                let f = std::fs::File::open(&path).map_err(|e| {
                    Error::Usage(format!(
                        "Requested {key} namespace {} does not exist: {}",
                        path.display(),
                        hako_spec::error::io_text(&e)
                    ))
                })?;
                opts.inherit_fd.push(InheritFd {
                    key: ext_key(key),
                    fd: 4 + extra.len() as i32,
                });
                extra.push(f);
            }
            LinuxNamespaceType::Cgroup => {
                return Err(Error::Usage(
                    "linux.namespaces: a cgroup namespace given by path cannot be restored".into(),
                ))
            }
            t => opts.join_ns.push(JoinNamespace {
                ns: ns_name(t).into(),
                ns_file: path.to_string_lossy().into_owned(),
                extra_opt: None,
            }),
        }
    }
    Ok(extra)
}

/// CRIU's (and runc's) namespace names.
fn ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Time => "time",
    }
}

struct RestoreEvents<'a> {
    lock: &'a Locked,
    bundle: &'a Bundle,
    cgroups: &'a mut Cgroups,
    console_socket: Option<&'a Path>,
    o: &'a RestoreOptions,
    /// The restored init, once CRIU named it.
    pid: Option<i32>,
    rec: Option<ContainerRecord>,
    /// The new pty master, when no console socket takes it (foreground restore).
    master: Option<OwnedFd>,
}

impl RestoreEvents<'_> {
    fn record(&self, pid: i32, status: Status) -> ContainerRecord {
        let cgroup = self.cgroups.rec.clone();
        record(self.bundle, self.o, cgroup, pid, status)
    }
}

/// The container's record: before CRIU runs (pid 0, `creating`, the cgroups it may make), at
/// setup-namespaces (the init's pid) and at post-restore (`running`), so a runtime killed at
/// any point leaves a container that `delete --force` removes with its cgroups, as `create`'s.
fn record(
    bundle: &Bundle,
    o: &RestoreOptions,
    cgroup: hako_spec::state::CgroupRecord,
    pid: i32,
    status: Status,
) -> ContainerRecord {
    ContainerRecord {
        id: o.id.clone(),
        pid,
        init_start_time: (pid > 0)
            .then(|| crate::sys::proc_stat(pid).map(|s| s.1))
            .flatten()
            .unwrap_or(0),
        status,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
        owner: String::new(),
        private_pid_ns: crate::init::namespaces::plan(&bundle.spec).private_pid,
        systemd_cgroup: o.systemd_cgroup,
        rootless: o.rootless,
        cgroup,
        resctrl: None,
        host_mounts_before: None,
        config: bundle.spec.clone(),
    }
}

impl Handler for RestoreEvents<'_> {
    /// CRIU joins the container's cgroups (already limited) so that it restores the processes
    /// there; its cgroup paths become the roots CRIU maps the image's cgroups onto, and the
    /// sources of the container's cgroup bind mounts.
    fn spawned(&mut self, pid: i32, req: &mut CriuReq) -> Result<()> {
        // As `create` does for the init (runc: cgroupManager.Apply on CRIU's pid): a systemd
        // unit first when asked for, then the directories, the limits, the move.
        let placement = Placement {
            spec: &self.bundle.spec,
            id: &self.o.id,
            tolerate_denied: false,
        };
        placement.place(self.cgroups, Some(pid), Part::All, Join::Procs)?;
        let p = format!("/proc/{pid}/cgroup");
        let own = std::fs::read_to_string(&p).ctx("read", &p)?;
        let opts = req.opts.as_mut().expect("restore has options");
        for cg in crate::procinfo::parse_cgroups(&own) {
            // The cgroup2 line (`0::/path`) names no controller: CRIU's root for it is "".
            let ctrls = if cg.controllers.is_empty() {
                vec![String::new()]
            } else {
                cg.controllers
            };
            for c in ctrls {
                opts.cg_root.push(CgroupRoot {
                    ctrl: Some(c),
                    path: cg.pathname.clone(),
                });
            }
        }
        let b = &self.bundle;
        opts.ext_mnt = extmnt::for_restore(&b.spec, &b.dir, &b.rootfs, &own)?;
        Ok(())
    }

    fn notify(&mut self, script: &str, pid: i32, fds: Vec<OwnedFd>) -> Result<()> {
        match script {
            // Namespaces exist, nothing runs yet: runc runs prestart and createRuntime here.
            "setup-namespaces" => {
                self.pid = Some(pid);
                let rec = self.record(pid, Status::Creating);
                self.lock.save(&rec)?;
                let state =
                    serde_json::to_string(&rec.hook_state(Status::Created)).expect("serializes");
                let h = self.bundle.spec.hooks().as_ref();
                let dir = Some(self.bundle.dir.as_path());
                hooks::run_all(h, hooks::Kind::Prestart, &state, dir)?;
                hooks::run_all(h, hooks::Kind::CreateRuntime, &state, dir)?;
            }
            "post-restore" => {
                self.pid = Some(pid);
                let rec = self.record(pid, Status::Running);
                self.lock.save(&rec)?;
                self.rec = Some(rec);
            }
            // The restored terminal: CRIU made a new pty pair and hands us the master.
            "orphan-pts-master" => {
                let Some(master) = fds.into_iter().next() else {
                    return Err(Error::Usage(
                        "criu sent orphan-pts-master without a descriptor".into(),
                    ));
                };
                match self.console_socket {
                    Some(p) => {
                        let sock = crate::init::console::connect(p)?;
                        crate::init::console::send_master(&sock, &master, "orphan-pts-master")?;
                    }
                    None => self.master = Some(master),
                }
            }
            // network-lock/unlock: hako configures no network devices (like runc with an OCI
            // config); status-ready is for dumps.
            _ => {}
        }
        Ok(())
    }
}
