//! Placement and lifetime of one container's cgroups, for every layout. Limits are written by the
//! layout's driver ([`super::v1`], [`super::v2`]).

use std::cell::RefCell;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use hako_spec::oci::{LinuxResources, Spec};
use hako_spec::state::CgroupRecord;
use nix::errno::Errno;

use super::systemd::{Place, Systemd};
use super::{hierarchies, Hierarchy};
use crate::error::{Context, Error, Result};

/// runc's words for `linux.resources.unified` on a host whose controllers are v1.
pub const V1_NO_UNIFIED: &str = "invalid configuration: cannot use unified on cgroup v1";

/// Which of a container's cgroup directories [`Cgroups::create_part`] makes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Part {
    All,
    /// The cgroup v2 directory only (the hybrid's, made before the clone: the init is born in it).
    Unified,
    /// The v1 hierarchies only.
    V1,
}

/// One of the container's cgroup directories as the plan found it: what [`Cgroups::create_part`]
/// makes of it.
struct Target {
    dir: PathBuf,
    v2: bool,
    cpuset: bool,
    /// The directories that did not exist at plan time, parents first, down to `dir`.
    missing: Vec<PathBuf>,
}

impl Target {
    /// Every directory of `rec` (the v1 hierarchies', then the unified one), looked at now.
    fn all_of(rec: &CgroupRecord) -> Vec<Target> {
        let v1 = rec.v1.iter().map(|(name, d)| (d, false, name == "cpuset"));
        let unified = rec.unified.iter().map(|d| (d, true, false));
        v1.chain(unified)
            .map(|(dir, v2, cpuset)| {
                let mut missing: Vec<PathBuf> = dir
                    .ancestors()
                    .take_while(|a| !a.exists())
                    .map(Path::to_path_buf)
                    .collect();
                missing.reverse();
                Target {
                    dir: dir.clone(),
                    v2,
                    cpuset,
                    missing,
                }
            })
            .collect()
    }

    fn in_part(&self, part: Part) -> bool {
        match part {
            Part::All => true,
            Part::Unified => self.v2,
            Part::V1 => !self.v2,
        }
    }
}

pub struct Cgroups {
    pub rec: CgroupRecord,
    /// The directories as [`Cgroups::plan`] found them: the record lists their missing ones
    /// ([`Cgroups::may_create`]) and `create` makes those, no others. Empty for a record read
    /// back (`from_record`): such a container's cgroups exist already.
    targets: Vec<Target>,
    /// `--systemd-cgroup` at create: the unit to start (its name goes to `rec.systemd_unit` once
    /// it exists).
    unit: Option<Place>,
    /// The bus connection, made at plan (so a host without systemd fails before anything
    /// exists) or when a later command first needs it. Never for the cgroupfs driver.
    systemd: RefCell<Option<Systemd>>,
}

/// Reads a cgroup file, trimmed.
pub fn read(dir: &Path, file: &str) -> Result<String> {
    let p = dir.join(file);
    Ok(std::fs::read_to_string(&p)
        .ctx("read", &p)?
        .trim()
        .to_string())
}

/// The first of `files` that exists in `dir`: a controller file whose name depends on the kernel
/// (blkio.weight with CFQ, blkio.bfq.weight with BFQ). None of them means this kernel cannot
/// honour `field`, which gets `why` instead of a failed write to a name it does not have.
pub fn pick_file<'a>(dir: &Path, files: &[&'a str], field: &str, why: &str) -> Result<&'a str> {
    files
        .iter()
        .find(|f| dir.join(f).exists())
        .copied()
        .ok_or_else(|| {
            Error::Usage(format!(
                "{field}: {why} (none of {} exists in {})",
                files.join(", "),
                dir.display()
            ))
        })
}

/// Writes a cgroup file. A missing file means the host cannot honour `field`: say which file.
pub fn write(dir: &Path, file: &str, value: &str, field: &str) -> Result<()> {
    write_error(
        dir,
        file,
        value,
        field,
        std::fs::write(dir.join(file), value),
    )
}

/// The error `write` reports for the outcome `r` of writing `value` to `dir/file`.
pub fn write_error(
    dir: &Path,
    file: &str,
    value: &str,
    field: &str,
    r: std::io::Result<()>,
) -> Result<()> {
    let p = dir.join(file);
    r.map_err(|e| match e.kind() {
        // cgroupfs refuses to create a file with EACCES, not ENOENT: a write to a file this
        // kernel does not have (blkio.weight without BFQ/CFQ) would read "permission denied".
        _ if !p.exists() => Error::Usage(format!(
            "{field}: this host cannot set it ({} does not exist)",
            p.display()
        )),
        std::io::ErrorKind::NotFound => Error::Usage(format!(
            "{field}: this host cannot set it ({} does not exist)",
            p.display()
        )),
        _ => Error::Usage(format!(
            "{field}: write {value:?} to {}: {}",
            p.display(),
            hako_spec::error::io_text(&e)
        )),
    })
}

/// The cgroup path inside each hierarchy, by runc's rules: absolute paths are from the hierarchy
/// root, relative ones from the runtime's own cgroup, and an empty one is `/hako/<id>` (a parent
/// hako owns). With `--systemd-cgroup`, `slice:prefix:name` is where systemd puts the unit
/// (`/<slice path>/<prefix>-<name>.scope`, see [`super::systemd::parse`]).
pub fn inner_path(spec: &Spec, id: &str, systemd: bool) -> Result<(PathBuf, bool)> {
    let raw = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone())
        .unwrap_or_default();
    let raw_s = raw.to_string_lossy().to_string();
    if systemd {
        return Ok((super::systemd::parse(&raw_s, id, false)?.path, true));
    }
    if raw.components().any(|c| c == Component::ParentDir) {
        return Err(Error::Usage(format!(
            "linux.cgroupsPath: {raw_s:?} must not contain \"..\""
        )));
    }
    if raw_s.is_empty() {
        return Ok((PathBuf::from("/hako").join(id), true));
    }
    Ok((raw.clone(), raw.is_absolute()))
}

fn layout_of(hs: &[Hierarchy]) -> &'static str {
    match (hs.iter().any(|h| !h.v2), hs.iter().any(|h| h.v2)) {
        (false, true) => "v2",
        (true, true) => "hybrid",
        (true, false) => "v1",
        (false, false) => "",
    }
}

impl Cgroups {
    pub fn from_record(rec: CgroupRecord) -> Cgroups {
        Cgroups {
            rec,
            targets: Vec::new(),
            unit: None,
            systemd: RefCell::new(None),
        }
    }

    /// A new container's plan made outside [`Cgroups::plan`] (the rootless placement in a
    /// delegated subtree): its directories are looked at now, and [`Cgroups::create_part`] makes the
    /// missing ones. ([`Cgroups::from_record`] is for a container whose cgroups exist.)
    pub fn from_plan(rec: CgroupRecord) -> Cgroups {
        Cgroups {
            targets: Target::all_of(&rec),
            rec,
            unit: None,
            systemd: RefCell::new(None),
        }
    }

    /// The systemd connection (made on first use).
    fn systemd(&self) -> Result<std::cell::RefMut<'_, Systemd>> {
        let mut s = self.systemd.borrow_mut();
        if s.is_none() {
            *s = Some(match &self.rec.systemd_user_bus {
                Some(p) => Systemd::connect_user_at(p, &format!("unix:path={}", p.display()))?,
                None => Systemd::connect()?,
            });
        }
        Ok(std::cell::RefMut::map(s, |s| {
            s.as_mut().expect("connected")
        }))
    }

    /// Decides the container's cgroup directories on this host. Creates nothing.
    pub fn plan(spec: &Spec, id: &str, systemd: bool) -> Result<Cgroups> {
        Self::plan_with(spec, id, systemd, &crate::procinfo::mountinfo()?)
    }

    /// [`Cgroups::plan`] with this mount namespace's mountinfo already parsed (`create` hands the
    /// same parse to the init).
    pub fn plan_with(
        spec: &Spec,
        id: &str,
        systemd: bool,
        info: &[crate::procinfo::Mount],
    ) -> Result<Cgroups> {
        let (inner, absolute) = inner_path(spec, id, systemd)?;
        let unit = if systemd {
            let raw = spec
                .linux()
                .as_ref()
                .and_then(|l| l.cgroups_path().clone())
                .unwrap_or_default();
            Some(super::systemd::parse(&raw.to_string_lossy(), id, false)?)
        } else {
            None
        };
        // Before anything exists: no systemd is one clear error and nothing to undo.
        let bus = if systemd {
            Some(Systemd::connect()?)
        } else {
            None
        };
        let own = crate::procinfo::read("/proc/self/cgroup").ctx("read", "/proc/self/cgroup")?;
        let hs = hierarchies(info);
        let mut rec = CgroupRecord {
            layout: layout_of(&hs).to_string(),
            ..Default::default()
        };
        let rel = inner.strip_prefix("/").unwrap_or(&inner).to_path_buf();
        let default_parent = !systemd && rel == Path::new("hako").join(id);
        for h in &hs {
            let base = if absolute {
                h.mountpoint.clone()
            } else {
                let o = super::own_path(h, &own);
                h.mountpoint.join(o.strip_prefix("/").unwrap_or(&o))
            };
            let dir = base.join(&rel);
            if default_parent {
                if let Some(p) = dir.parent() {
                    rec.shared_parents.push(p.to_path_buf());
                }
            }
            if h.v2 {
                rec.unified = Some(dir);
            } else if let Some(name) = h.mountpoint.file_name() {
                rec.v1.insert(name.to_string_lossy().into_owned(), dir);
            }
        }
        Ok(Cgroups {
            targets: Target::all_of(&rec),
            rec,
            unit,
            systemd: RefCell::new(bus),
        })
    }

    /// `--systemd-cgroup` for a rootless caller (runc's rule, [`crate::init::rootless::systemd_user`]):
    /// the unit is the user's own systemd instance's, reached over the user bus, in `user.slice`
    /// by default, below that instance's cgroup
    /// (`/user.slice/user-UID.slice/user@UID.service/user.slice/x.scope`). Pure cgroup v2 only,
    /// as with runc. Connects now: a missing user bus is one error before anything exists.
    pub fn plan_systemd_user(spec: &Spec, id: &str) -> Result<Cgroups> {
        let raw = spec
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().clone())
            .unwrap_or_default();
        let mut place = super::systemd::parse(&raw.to_string_lossy(), id, true)?;
        if !super::systemd::booted() {
            return Err(Error::Systemd(super::systemd::NOT_RUNNING.into()));
        }
        let info = crate::procinfo::mountinfo()?;
        let hs = hierarchies(&info);
        let mountpoint = match &hs[..] {
            [h] if h.v2 => h.mountpoint.clone(),
            _ => return Err(Error::Systemd(super::systemd::USER_ON_V1.into())),
        };
        let mut bus = Systemd::connect_user()?;
        let manager = bus.manager_cgroup()?;
        place.path = manager.join(place.path.strip_prefix("/").unwrap_or(&place.path));
        let rec = CgroupRecord {
            layout: "v2".into(),
            unified: Some(mountpoint.join(place.path.strip_prefix("/").unwrap_or(&place.path))),
            systemd_user_bus: bus.user_bus().map(Path::to_path_buf),
            ..Default::default()
        };
        Ok(Cgroups {
            targets: Target::all_of(&rec),
            rec,
            unit: Some(place),
            systemd: RefCell::new(Some(bus)),
        })
    }

    /// Has systemd move `pid` into the container's unit (an `exec` that could not be born in
    /// the unit's cgroup: an unprivileged runtime outside the user's delegated subtree).
    pub fn attach_via_systemd(&self, pid: i32) -> Result<()> {
        let unit = self
            .rec
            .systemd_unit
            .as_deref()
            .ok_or_else(|| Error::Usage("the container has no systemd unit".into()))?;
        self.systemd()?.attach(unit, pid)
    }

    /// `--systemd-cgroup`: has systemd create the container's unit with `pid` in it and the
    /// properties of `r`, and waits for the job. From the moment the unit exists it is recorded,
    /// so a failure after it (or a later `delete`) stops it. Without the flag: nothing.
    pub fn start_unit(&mut self, pid: i32, r: Option<&LinuxResources>, id: &str) -> Result<()> {
        let Some(place) = self.unit.clone() else {
            return Ok(());
        };
        let v2 = self.rec.layout == "v2";
        let mut bus = self.systemd()?;
        let mut props = super::systemd::unit_properties(&place, pid, v2, id);
        if let Some(r) = r {
            props.extend(super::systemd::resource_properties(r, v2, || {
                bus.version()
            })?);
        }
        let mut unit = None;
        let r = bus.start(&place.unit, props, || unit = Some(place.unit.clone()));
        drop(bus);
        self.rec.systemd_unit = unit;
        r
    }

    /// `update`: the unit's properties first (runtime only, as runc), then the files.
    pub fn update(&self, r: &LinuxResources) -> Result<()> {
        if let Some(unit) = &self.rec.systemd_unit {
            let v2 = self.rec.layout == "v2";
            let mut bus = self.systemd()?;
            let props = super::systemd::resource_properties(r, v2, || bus.version())?;
            bus.set_properties(unit, props)?;
        }
        self.set(r)
    }

    /// runc's checks before a container goes into cgroups that may already exist: resources
    /// only cgroup v2 can take are refused on v1 and the hybrid, and so are processes already
    /// there; a frozen cgroup is refused, since the init would freeze in it before it
    /// could report anything and `create` would wait forever.
    pub fn check_before_create(&self, spec: &Spec) -> Result<()> {
        let unified = spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.unified().as_ref())
            .is_some_and(|u| !u.is_empty());
        if unified && self.rec.layout != "v2" && !self.rec.layout.is_empty() {
            return Err(Error::Usage(V1_NO_UNIFIED.into()));
        }
        // runc 1.2+ refuses (1.1 warned): the container's limits, freezer and `kill` would act on
        // processes that are not its own.
        let n = self.pids().len();
        if n > 0 {
            return Err(Error::Usage(format!(
                "container's cgroup is not empty: {n} process(es) found"
            )));
        }
        if self.frozen_or_will_be() {
            return Err(Error::Usage(
                "container's cgroup unexpectedly frozen".into(),
            ));
        }
        Ok(())
    }

    /// Whether the container's cgroup (or, when it does not exist yet, the nearest existing
    /// ancestor it would inherit the state from) is frozen.
    fn frozen_or_will_be(&self) -> bool {
        let nearest = |d: &Path| d.ancestors().find(|a| a.exists()).map(Path::to_path_buf);
        if self.rec.layout == "v2" {
            let Some(d) = self.rec.unified.as_deref().and_then(nearest) else {
                return false;
            };
            // cgroup.events says whether the cgroup is frozen, by itself or by an ancestor.
            return read(&d, "cgroup.freeze").is_ok_and(|v| v == "1")
                || read(&d, "cgroup.events").is_ok_and(|e| e.lines().any(|l| l == "frozen 1"));
        }
        self.rec
            .v1
            .get("freezer")
            .and_then(|d| nearest(d))
            .and_then(|d| read(&d, "freezer.state").ok())
            .is_some_and(|v| v == "FROZEN" || v == "FREEZING")
    }

    fn dirs(&self) -> impl Iterator<Item = &PathBuf> {
        self.rec.v1.values().chain(self.rec.unified.iter())
    }

    /// What [`Cgroups::create_part`] may make, parents first: the directories the plan found missing.
    /// The record a `create` writes before it makes anything lists these, so `delete --force`
    /// after a runtime killed half-way removes whatever of them exists (a directory that existed
    /// before is not listed).
    pub fn may_create(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for d in self.targets.iter().flat_map(|t| &t.missing) {
            if !out.contains(d) {
                out.push(d.clone());
            }
        }
        out
    }

    /// Creates the directories of `part` the plan found missing and prepares them: v1 cpuset
    /// levels get their parent's cpus/mems (an empty cpuset refuses tasks), v2 parents delegate
    /// their controllers to the new level. The ones it makes are added to `rec.created`, and on
    /// failure the ones it made are removed again.
    pub fn create_part(&mut self, part: Part) -> Result<()> {
        let mut created = std::mem::take(&mut self.rec.created);
        let before = created.len();
        let r = self
            .targets
            .iter()
            .filter(|t| t.in_part(part))
            .try_for_each(|t| {
                for d in &t.missing {
                    make_dir(d, t.v2, &mut created, 0)?;
                }
                if t.cpuset {
                    super::v1::inherit_cpuset(&t.dir)?;
                }
                Ok(())
            });
        if r.is_err() {
            // Only what this call made: an earlier part may hold the init already (the hybrid's
            // v2 directory), which the caller removes once it has killed it; a busy directory
            // would have us retry for seconds.
            let earlier = created.drain(..before).collect();
            self.rec.created = created;
            let _ = self.destroy();
            self.rec.created = earlier;
        } else {
            self.rec.created = created;
        }
        r
    }

    /// The cgroups an exec'd process joins: the container's, or the sub-cgroups of it that
    /// `exec --cgroup` names (see [`super::exec_cgroup`]).
    pub fn for_exec(&self, sub: &[String]) -> Result<Cgroups> {
        if sub.is_empty() {
            return Ok(Cgroups::from_record(self.rec.clone()));
        }
        let info = crate::procinfo::mountinfo()?;
        let rec = super::exec_cgroup::record(&self.rec, &hierarchies(&info), sub)?;
        Ok(Cgroups::from_record(rec))
    }

    /// An fd on the v2 cgroup `pid` is in, for an exec that cannot join the container's own
    /// (runc's fallback: the container moved its init into a sub-cgroup and enabled domain
    /// controllers, so its top cgroup may hold no process).
    pub fn open_cgroup_of(pid: i32) -> Option<std::os::fd::OwnedFd> {
        let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let rel = crate::procinfo::parse_cgroups(&own)
            .into_iter()
            .find(|c| c.hierarchy == 0 && c.controllers.is_empty())?
            .pathname;
        let info = crate::procinfo::mountinfo().ok()?;
        let mp = hierarchies(&info).into_iter().find(|h| h.v2)?.mountpoint;
        let d = mp.join(rel.trim_start_matches('/'));
        nix::fcntl::open(
            &d,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ok()
    }

    /// An fd on the v2 directory, for clone3's CLONE_INTO_CGROUP.
    pub fn open_unified(&self) -> Result<std::os::fd::OwnedFd> {
        let d = self
            .rec
            .unified
            .as_deref()
            .ok_or_else(|| Error::Usage("no cgroup v2 directory".into()))?;
        nix::fcntl::open(
            d,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ctx("open cgroup", d)
    }

    /// Moves `pid` into every directory.
    pub fn apply(&self, pid: i32) -> Result<()> {
        for d in self.dirs() {
            join(d, pid)?;
        }
        Ok(())
    }

    /// For a single-threaded `pid` that moves itself into the v1 hierarchies: each one's `tasks`
    /// file, opened for writing, with its directory. Writing `0` there moves only the writing
    /// thread, which the kernel does without taking cgroup_threadgroup_rwsem for writing; a pid
    /// written to `cgroup.procs` takes it, and on a host idle for a moment that waits for an RCU
    /// grace period (10–13 ms here for 9 hierarchies, against 0.3 ms for the 9 self-moves). v1
    /// checks the credentials the file was opened with, not the writer's, so the process may
    /// write from inside its user namespace. A hierarchy whose `tasks` cannot be opened, and the
    /// hybrid's v2 directory unless `pid` was born in it (`born_in_unified`), get `pid` written
    /// now, as [`Cgroups::apply`] would.
    pub fn open_tasks(&self, pid: i32, born_in_unified: bool) -> Result<Vec<(PathBuf, OwnedFd)>> {
        let mut out = Vec::new();
        for d in self.rec.v1.values() {
            let opened = nix::fcntl::open(
                &d.join("tasks"),
                nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            );
            match opened {
                Ok(fd) if out.len() < crate::sys::MAX_FDS => out.push((d.clone(), fd)),
                _ => join(d, pid)?,
            }
        }
        if let Some(u) = self.rec.unified.as_ref().filter(|_| !born_in_unified) {
            join(u, pid)?;
        }
        Ok(out)
    }

    /// The runtime's own write for the hierarchies a process could not move itself into
    /// (`CgroupsNotJoined`): `pid` into each directory's `cgroup.procs`, as [`Cgroups::apply`].
    pub fn join_dirs<'a>(dirs: impl IntoIterator<Item = &'a PathBuf>, pid: i32) -> Result<()> {
        for d in dirs {
            join(d, pid)?;
        }
        Ok(())
    }

    /// The resources of `spec`, with the device rules every container needs appended (runc's
    /// AllowedDevices), since a config that denies all devices still expects /dev/null to work.
    /// Nodes of `linux.devices` are *not* allowed implicitly: like runc, only the rules decide.
    pub fn resources(spec: &Spec) -> Option<LinuxResources> {
        let linux = spec.linux().as_ref()?;
        Some(Self::with_default_devices(linux.resources().clone()?))
    }

    /// `r` with runc's AllowedDevices appended to its device rules (when it has any): for
    /// `create`, and for `update`, which replaces the whole device rule set.
    pub fn with_default_devices(mut r: LinuxResources) -> LinuxResources {
        if let Some(rules) = r.devices().clone() {
            let mut rules = rules;
            let extra: Vec<serde_json::Value> = [
                ("c", None, None, "m"),
                ("b", None, None, "m"),
                ("c", Some(1), Some(3), "rwm"),
                ("c", Some(1), Some(5), "rwm"),
                ("c", Some(1), Some(7), "rwm"),
                ("c", Some(1), Some(8), "rwm"),
                ("c", Some(1), Some(9), "rwm"),
                ("c", Some(5), Some(0), "rwm"),
                // Not /dev/console (5:1), the host's console: runc 1.1 and 1.3 leave it out; a
                // container's /dev/console is a bind of its pty (136:N).
                ("c", Some(5), Some(2), "rwm"),
                ("c", Some(136), None, "rwm"),
                ("c", Some(10), Some(200), "rwm"),
            ]
            .into_iter()
            .map(|(t, ma, mi, a)| serde_json::json!({"allow": true, "type": t, "major": ma, "minor": mi, "access": a}))
            .collect();
            rules.extend(
                extra
                    .into_iter()
                    .filter_map(|v| serde_json::from_value(v).ok()),
            );
            r.set_devices(Some(rules));
        }
        r
    }

    pub fn set(&self, r: &LinuxResources) -> Result<()> {
        let without_devices;
        let r = if self.rec.systemd_user_bus.is_some() && r.devices().is_some() {
            // An unprivileged runtime cannot load a device program (BPF needs privilege), and
            // its device nodes are the host's, bound: runc ignores the device rules' errors when
            // rootless. The unit's DevicePolicy/DeviceAllow are still systemd's.
            let mut c = r.clone();
            c.set_devices(None);
            without_devices = c;
            &without_devices
        } else {
            r
        };
        match self.rec.layout.as_str() {
            "v2" => super::v2::set(
                self.rec.unified.as_deref().expect("v2 has a unified dir"),
                r,
            ),
            "v1" | "hybrid" => super::v1::set(&self.rec, r),
            _ => Ok(()),
        }
    }

    /// The directory listing the container's processes.
    fn procs_dir(&self) -> Option<&PathBuf> {
        if self.rec.layout == "v2" {
            return self.rec.unified.as_ref();
        }
        ["pids", "freezer", "devices", "memory", "cpu"]
            .iter()
            .find_map(|c| self.rec.v1.get(*c))
            .or_else(|| self.rec.v1.values().next())
    }

    /// Every pid in the container's cgroup (and below it).
    pub fn pids(&self) -> Vec<i32> {
        fn walk(d: &Path, out: &mut Vec<i32>) {
            if let Ok(t) = std::fs::read_to_string(d.join("cgroup.procs")) {
                out.extend(t.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path(), out);
                }
            }
        }
        let mut out = Vec::new();
        if let Some(d) = self.procs_dir() {
            walk(d, &mut out);
        }
        out
    }

    pub fn freeze(&self, on: bool) -> Result<()> {
        if self.rec.layout == "v2" {
            return super::v2::freeze(self.rec.unified.as_deref().expect("v2 dir"), on);
        }
        if self.rec.layout.is_empty() {
            let what = if on { "pause" } else { "resume" };
            return Err(Error::Usage(
                super::rootless::NO_CGROUP.replace("{what}", what),
            ));
        }
        let d = self
            .rec
            .v1
            .get("freezer")
            .ok_or_else(|| Error::Usage("this host has no freezer cgroup".into()))?;
        super::v1::freeze(d, on)
    }

    pub fn frozen(&self) -> bool {
        if self.rec.layout == "v2" {
            return self
                .rec
                .unified
                .as_deref()
                .and_then(|d| read(d, "cgroup.freeze").ok())
                .is_some_and(|v| v == "1");
        }
        self.rec
            .v1
            .get("freezer")
            .and_then(|d| read(d, "freezer.state").ok())
            .is_some_and(|v| v == "FROZEN" || v == "FREEZING")
    }

    /// SIGKILL to everything in the cgroup. v2 has cgroup.kill; on v1 the cgroup is frozen first
    /// so a fork bomb cannot outrun the loop, then thawed so the signals are delivered.
    pub fn kill_all(&self) -> Result<()> {
        if self.unit.is_some() && self.rec.systemd_unit.is_none() {
            // The unit was never started (a unit of that name already exists): the directories
            // are someone else's.
            return Ok(());
        }
        if let Some(d) = self
            .rec
            .unified
            .as_deref()
            .filter(|_| self.rec.layout == "v2")
        {
            if d.join("cgroup.kill").exists() {
                return write(d, "cgroup.kill", "1", "cgroup.kill");
            }
        }
        if self.pids().is_empty() {
            // The common case at delete: nothing left. Skip the freeze/thaw round trip.
            return Ok(());
        }
        let freezer = self.rec.v1.contains_key("freezer") && self.freeze(true).is_ok();
        // Read again once frozen: whatever forked since the check above is in this list.
        for p in self.pids() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if freezer {
            self.freeze(false)?;
        }
        Ok(())
    }

    /// Removes the directories hako created, deepest first. The container's own directory may be
    /// busy for a moment while its last task exits: retry briefly. A parent it created (`/hako`)
    /// may meanwhile hold other containers: it is left alone then.
    pub fn destroy(&self) -> Result<()> {
        if let Some(unit) = &self.rec.systemd_unit {
            // systemd removes the unit's cgroup (with anything the container made below it).
            self.systemd()?.stop(unit)?;
            // What may be left is an empty directory of a v1 hierarchy systemd does not manage
            // (those hako made are also in `created`, removed below with retries).
            for d in self.dirs() {
                let _ = std::fs::remove_dir(d);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        let own: Vec<&PathBuf> = self.dirs().collect();
        let mut dirs = self.rec.created.clone();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            let leaf = own.contains(&&d);
            // Sub-cgroups are rare: look for them only when the plain rmdir is refused (a
            // listing of every hierarchy's directory cost `run` a few hundred microseconds).
            if leaf && std::fs::remove_dir(&d).is_ok() {
                continue;
            }
            if leaf {
                remove_children(&d, deadline)?;
            }
            rmdir(&d, leaf, deadline)?;
        }
        // Only ever an empty directory: rmdir fails (and is ignored) while any container, of
        // this hako or another, is still below it. One this create made was tried above.
        for p in self
            .rec
            .shared_parents
            .iter()
            .filter(|p| !self.rec.created.contains(p))
        {
            let _ = std::fs::remove_dir(p);
        }
        Ok(())
    }
}

/// Makes the planned directory `d`, adding it to `created` when this call made it; one that
/// exists by now (a parent another container made, the unit systemd made) is left as it is. A v2
/// parent delegates its controllers to what we made. A parent that another container created
/// and its delete removed since the plan (`/hako`) is made again, a few times at most.
fn make_dir(d: &Path, v2: bool, created: &mut Vec<PathBuf>, attempts: u32) -> Result<()> {
    match std::fs::create_dir(d) {
        Ok(()) => {
            created.push(d.to_path_buf());
            match d.parent() {
                Some(parent) if v2 => super::v2::delegate(parent),
                _ => Ok(()),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempts < 5 => match d.parent() {
            Some(parent) => {
                make_dir(parent, v2, created, attempts + 1)?;
                make_dir(d, v2, created, attempts + 1)
            }
            None => Err(Error::io("create cgroup", d.to_path_buf(), e)),
        },
        Err(e) => Err(Error::io("create cgroup", d.to_path_buf(), e)),
    }
}

/// Moves `pid` (the whole process) into the cgroup directory `d`.
fn join(d: &Path, pid: i32) -> Result<()> {
    let p = d.join("cgroup.procs");
    std::fs::write(&p, pid.to_string()).ctx("join cgroup", &p)
}

/// The calling thread (single-threaded process: the process) into the v1 hierarchy whose `tasks`
/// file is `fd` ([`Cgroups::open_tasks`]): no pid, no path, nothing but one write. For the init
/// and exec children; the runtime falls back to its own write when this fails.
pub fn join_self(fd: &OwnedFd) -> bool {
    crate::sys::retry(|| nix::unistd::write(fd, b"0")).is_ok()
}

/// Removes a cgroup directory. The container's own (`leaf`) may be busy for a moment while its
/// last task exits: retried until `deadline`. A parent that is busy or not empty holds other
/// containers: left alone.
fn rmdir(d: &Path, leaf: bool, deadline: Instant) -> Result<()> {
    loop {
        let r = std::fs::remove_dir(d)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)));
        match r {
            Ok(()) | Err(Errno::ENOENT) => return Ok(()),
            Err(Errno::EBUSY) | Err(Errno::ENOTEMPTY) if !leaf => return Ok(()),
            Err(Errno::EBUSY) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => return Err(Error::path("remove cgroup", d, e)),
        }
    }
}

/// The sub-cgroups made inside the container's own cgroup (by a systemd or a nested runtime in
/// it, or for `exec --cgroup`), deepest first: the container's directory cannot go before them,
/// as runc's RemovePath knows. Their processes were killed with the container's.
fn remove_children(d: &Path, deadline: Instant) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(d) else {
        return Ok(());
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            let c = e.path();
            remove_children(&c, deadline)?;
            rmdir(&c, true, deadline)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rootless placement builds its record itself: `create` must still make its missing
    /// directories (a plan read back from a record makes none).
    #[test]
    fn a_plan_from_a_record_makes_its_missing_directories() {
        let s = super::super::scratch::Scratch::with(&[]);
        let dir = s.path().join("hako").join("c1");
        let rec = CgroupRecord {
            layout: "v2".into(),
            unified: Some(dir.clone()),
            ..Default::default()
        };
        assert!(Cgroups::from_record(rec.clone()).may_create().is_empty());
        let mut planned = Cgroups::from_plan(rec);
        assert_eq!(planned.may_create(), [s.path().join("hako"), dir.clone()]);
        planned.create_part(Part::All).unwrap();
        assert!(dir.is_dir());
        assert_eq!(planned.rec.created, [s.path().join("hako"), dir]);
    }

    fn spec(path: &str) -> Spec {
        serde_json::from_str(&format!(
            r#"{{"ociVersion":"1.0.2","linux":{{"cgroupsPath":{path:?}}}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn runc_path_rules() {
        assert_eq!(
            inner_path(&spec(""), "c1", false).unwrap(),
            (PathBuf::from("/hako/c1"), true)
        );
        assert_eq!(
            inner_path(&spec("/a/b"), "c1", false).unwrap(),
            (PathBuf::from("/a/b"), true)
        );
        assert_eq!(
            inner_path(&spec("a/b"), "c1", false).unwrap(),
            (PathBuf::from("a/b"), false)
        );
        assert!(inner_path(&spec("/a/../../etc"), "c1", false).is_err());
    }

    #[test]
    fn only_the_default_parent_is_shared() {
        let default = Cgroups::plan(&spec(""), "c1", false).unwrap().rec;
        assert_eq!(
            default.shared_parents.len(),
            default.v1.len() + default.unified.iter().count()
        );
        assert!(default.shared_parents.iter().all(|p| p.ends_with("hako")));
        let own = Cgroups::plan(&spec("/mine/c1"), "c1", false).unwrap().rec;
        assert!(own.shared_parents.is_empty());
    }

    #[test]
    fn systemd_paths() {
        assert_eq!(
            inner_path(&spec("machine-app.slice:libpod:abc"), "c1", true)
                .unwrap()
                .0,
            PathBuf::from("/machine.slice/machine-app.slice/libpod-abc.scope")
        );
        assert_eq!(
            inner_path(&spec(":hako:c1"), "c1", true).unwrap().0,
            PathBuf::from("/system.slice/hako-c1.scope")
        );
        assert!(inner_path(&spec("nocolons"), "c1", true).is_err());
    }
}
