//! The systemd cgroup driver (`--systemd-cgroup`), as runc's libcontainer/cgroups/systemd: the
//! container's cgroup is a transient unit (`prefix-name.scope`, or a slice) that systemd creates
//! over D-Bus with `Delegate=yes`, so systemd knows the cgroup is there and leaves its inside to
//! the runtime. Limits go to the unit as properties (what systemd re-applies on a reload) and then
//! to the cgroup files directly (what systemd has no property for), as runc does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hako_spec::oci::{LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxMemory, LinuxResources};

use crate::cgroups::dbus::{Bus, DbusError, Value};
use crate::error::{Error, Result};

/// runc's wording, which callers match on.
pub const NOT_RUNNING: &str =
    "systemd not running on this host, cannot use systemd cgroups manager";

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
/// runc's timeout for a start or stop job.
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

/// Where `slice:prefix:name` puts the container.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    /// The unit hako creates: `prefix-name.scope`, or `name` itself when it is a slice.
    pub unit: String,
    /// The parent slice, as systemd names it (`system.slice`, `machine-app.slice`).
    pub slice: String,
    /// The unit's cgroup below a hierarchy's root: `/machine.slice/machine-app.slice/x.scope`.
    pub path: PathBuf,
}

fn field_err(msg: String) -> Error {
    Error::Usage(format!("linux.cgroupsPath: {msg}"))
}

/// systemd nests slices by name: `test-a-b.slice` is `/test.slice/test-a.slice/test-a-b.slice`
/// (runc's ExpandSlice, with its errors).
pub fn expand_slice(slice: &str) -> Result<PathBuf> {
    let invalid = || field_err(format!("invalid slice name: {slice}"));
    let name = slice
        .strip_suffix(".slice")
        .filter(|_| !slice.contains('/'))
        .ok_or_else(invalid)?;
    let mut out = PathBuf::from("/");
    if name == "-" {
        return Ok(out);
    }
    let mut prefix = String::new();
    for part in name.split('-') {
        if part.is_empty() {
            return Err(invalid());
        }
        prefix.push_str(part);
        out.push(format!("{prefix}.slice"));
        prefix.push('-');
    }
    Ok(out)
}

/// Parses `linux.cgroupsPath` by runc's rules: `slice:prefix:name`; an empty path is
/// `:hako:<id>` (runc uses its own name as the prefix); an empty slice is `system.slice`
/// (`user.slice` rootless); a name ending in `.slice` makes the unit that slice.
pub fn parse(raw: &str, id: &str, rootless: bool) -> Result<Place> {
    let parts: Vec<&str> = if raw.is_empty() {
        vec!["", "hako", id]
    } else {
        raw.split(':').collect()
    };
    let [slice, prefix, name] = parts[..] else {
        return Err(field_err(format!(
            "expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups, got {raw:?} instead"
        )));
    };
    let slice = match slice {
        "" if rootless => "user.slice",
        "" => "system.slice",
        s => s,
    };
    let unit = if name.ends_with(".slice") {
        expand_slice(name)?;
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    if name.is_empty() || unit.contains('/') || unit.chars().any(char::is_whitespace) {
        return Err(field_err(format!("invalid unit name {unit:?}")));
    }
    // systemd places a slice where its own name says (`a-b.slice` below `a.slice`), whatever
    // parent Wants= names; a scope goes into the slice it is given.
    let path = if unit.ends_with(".slice") {
        expand_slice(&unit)?
    } else {
        expand_slice(slice)?.join(&unit)
    };
    Ok(Place {
        unit,
        slice: slice.to_string(),
        path,
    })
}

/// Whether this host was booted with systemd (sd_booted(3): /run/systemd/system is a
/// directory), which is what runc checks before anything else.
pub fn booted() -> bool {
    std::fs::symlink_metadata("/run/systemd/system").is_ok_and(|m| m.is_dir())
}

/// runc's wording for a user instance that cannot be reached (`--systemd-cgroup` rootless): the
/// hint names the package that gives a user its bus, and the document runc points to.
pub const USER_BUS_HINT: &str = "failed to connect to dbus (hint: for rootless containers, maybe you need to install dbus-user-session package, see https://github.com/opencontainers/runc/blob/master/docs/cgroup-v2.md)";

/// runc's words for a rootless `--systemd-cgroup` on a host whose controllers are v1.
pub const USER_ON_V1: &str = "cannot use rootless systemd cgroups manager on cgroup v1";

/// A connection to systemd's manager object: PID 1's on the system bus, or a user's own systemd
/// instance on that user's bus.
pub struct Systemd {
    bus: Bus,
    version: Option<u32>,
    watching_jobs: bool,
    /// The user instance's bus socket; None for the system instance.
    user_bus: Option<PathBuf>,
}

fn remote_name(e: &DbusError) -> &str {
    match e {
        DbusError::Remote { name, .. } => name,
        _ => "",
    }
}

/// The user bus's address, as runc 1.3 finds it (DetectUserDbusSessionBusAddress):
/// `$DBUS_SESSION_BUS_ADDRESS`, else `$XDG_RUNTIME_DIR/bus` when it exists. runc 1.1 asked
/// `systemctl --user show-environment` last; runc 1.2+ no longer runs anything.
pub fn user_bus_address() -> std::result::Result<String, String> {
    if let Some(a) = std::env::var("DBUS_SESSION_BUS_ADDRESS")
        .ok()
        .filter(|a| !a.is_empty())
    {
        return Ok(a);
    }
    if let Some(xdg) = std::env::var_os("XDG_RUNTIME_DIR").filter(|x| !x.is_empty()) {
        let bus = PathBuf::from(xdg).join("bus");
        if bus.exists() {
            return Ok(format!("unix:path={}", bus.display()));
        }
    }
    Err(
        "could not detect DBUS_SESSION_BUS_ADDRESS from the environment; make sure you have \
         installed the dbus-user-session or dbus-daemon package; note you may need to re-login"
            .into(),
    )
}

/// The user bus's socket from `$DBUS_SESSION_BUS_ADDRESS` or `$XDG_RUNTIME_DIR/bus` only (no
/// `systemctl`): for `features`, which must stay quick.
pub fn user_bus_path_quick() -> Option<PathBuf> {
    match std::env::var("DBUS_SESSION_BUS_ADDRESS") {
        Ok(a) if !a.is_empty() => crate::cgroups::dbus::unix_path(&a),
        _ => std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|x| !x.is_empty())
            .map(|x| PathBuf::from(x).join("bus"))
            .filter(|p| p.exists()),
    }
}

/// The caller's uid as the bus daemon sees it: the effective uid, through this process's user
/// namespace's map when it has one (root in rootless podman's namespace is the user outside).
/// runc asks `busctl --user status` for the same number (OwnerUID); the map needs no process.
pub fn owner_uid() -> u32 {
    let euid = nix::unistd::geteuid().as_raw();
    std::fs::read_to_string("/proc/self/uid_map")
        .ok()
        .and_then(|m| host_uid(&m, euid))
        .unwrap_or(euid)
}

/// `id` through a uid_map's lines (`inside outside count`).
fn host_uid(map: &str, id: u32) -> Option<u32> {
    map.lines().find_map(|l| {
        let f: Vec<u64> = l
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        let [inside, outside, count] = f[..] else {
            return None;
        };
        let off = (id as u64).checked_sub(inside)?;
        (off < count).then(|| (outside + off) as u32)
    })
}

impl Systemd {
    /// Connects to the system bus. Fails with runc's wording when systemd is not there.
    pub fn connect() -> Result<Systemd> {
        if !booted() {
            return Err(Error::Systemd(NOT_RUNNING.into()));
        }
        let bus = Bus::connect(&crate::cgroups::dbus::system_bus_path())
            .map_err(|e| Error::Systemd(format!("{NOT_RUNNING}: {e}")))?;
        Ok(Systemd {
            bus,
            version: None,
            watching_jobs: false,
            user_bus: None,
        })
    }

    /// Connects to the caller's own systemd instance over the user bus ([`user_bus_address`]),
    /// authenticating as [`owner_uid`], as runc does for a rootless `--systemd-cgroup`. Every
    /// failure to reach it is runc's one error with its hint.
    pub fn connect_user() -> Result<Systemd> {
        if !booted() {
            return Err(Error::Systemd(NOT_RUNNING.into()));
        }
        let fail = |e: String| Error::Systemd(format!("{USER_BUS_HINT}: {e}"));
        let addr = user_bus_address().map_err(fail)?;
        let path = crate::cgroups::dbus::unix_path(&addr).ok_or_else(|| {
            fail(format!(
                "error while dialing {addr:?}: only unix:path= addresses are supported"
            ))
        })?;
        Systemd::connect_user_at(&path, &addr)
    }

    /// The user instance whose bus socket is `path` (recorded at create: later commands find
    /// the unit where it was made, whatever their environment). `addr` names it in errors.
    pub fn connect_user_at(path: &Path, addr: &str) -> Result<Systemd> {
        let uid = owner_uid();
        let bus = Bus::connect_as(path, uid).map_err(|e| {
            Error::Systemd(format!(
                "{USER_BUS_HINT}: {}",
                match e {
                    DbusError::Connect { path, source } => format!(
                        "error while dialing {addr:?}: dial unix {}: connect: {}",
                        path.display(),
                        hako_spec::error::io_text(&source)
                    ),
                    e => format!(
                        "error while authenticating connection (address={addr:?}, UID={uid}): {e}"
                    ),
                }
            ))
        })?;
        Ok(Systemd {
            bus,
            version: None,
            watching_jobs: false,
            user_bus: Some(path.to_path_buf()),
        })
    }

    /// The user instance's bus socket, None for the system instance.
    pub fn user_bus(&self) -> Option<&Path> {
        self.user_bus.as_deref()
    }

    /// The manager's own cgroup (`/user.slice/user-1000.slice/user@1000.service` for a user
    /// instance): a user instance's slices and units live below it.
    pub fn manager_cgroup(&mut self) -> Result<PathBuf> {
        self.bus
            .call(
                DEST,
                PATH,
                "org.freedesktop.DBus.Properties",
                "Get",
                &[Value::str(MANAGER), Value::str("ControlGroup")],
            )
            .ok()
            .and_then(|b| b.first().and_then(Value::as_str).map(PathBuf::from))
            .filter(|p| p.is_absolute())
            .ok_or_else(|| {
                Error::Systemd("unable to get the systemd manager's ControlGroup".into())
            })
    }

    /// `AttachProcessesToUnit(unit, "", [pid])`: systemd moves `pid` into the unit's cgroup. A user
    /// instance asks PID 1 to do it when it may not itself, so an unprivileged runtime gets a
    /// process into a unit it could not write into from where it runs.
    pub fn attach(&mut self, unit: &str, pid: i32) -> Result<()> {
        self.call(
            "AttachProcessesToUnit",
            &[
                Value::str(unit),
                Value::str(""),
                Value::Array("u".into(), vec![Value::U32(pid as u32)]),
            ],
        )
        .map(drop)
        .map_err(|e| Error::Systemd(format!("attach process {pid} to unit {unit:?}: {e}")))
    }

    fn call(&mut self, member: &str, args: &[Value]) -> std::result::Result<Vec<Value>, DbusError> {
        self.bus.call(DEST, PATH, MANAGER, member, args)
    }

    /// systemd's version number (`252` of "252.19-1"), or 0 when it cannot be read.
    pub fn version(&mut self) -> u32 {
        if let Some(v) = self.version {
            return v;
        }
        let v = self
            .bus
            .call(
                DEST,
                PATH,
                "org.freedesktop.DBus.Properties",
                "Get",
                &[Value::str(MANAGER), Value::str("Version")],
            )
            .ok()
            .and_then(|b| b.first().and_then(Value::as_str).map(version_number))
            .unwrap_or(0);
        self.version = Some(v);
        v
    }

    /// JobRemoved is broadcast to the job's requester: match it before the job exists, so it
    /// cannot arrive unseen.
    fn watch_jobs(&mut self) -> Result<()> {
        if !self.watching_jobs {
            self.bus
                .add_match(&format!(
                    "type='signal',sender='{DEST}',path='{PATH}',interface='{MANAGER}',member='JobRemoved'"
                ))
                .map_err(|e| Error::Systemd(format!("watch systemd jobs: {e}")))?;
            self.watching_jobs = true;
        }
        Ok(())
    }

    /// Waits for the job `job` to finish and returns its result (`done`, `failed`, ...).
    fn wait_job(&mut self, job: &str, what: &str) -> std::result::Result<String, DbusError> {
        self.bus
            .wait_signal(Instant::now() + JOB_TIMEOUT, what, |m| {
                if m.member.as_deref() != Some("JobRemoved") {
                    return None;
                }
                // JobRemoved(u id, o job, s unit, s result)
                match &m.body[..] {
                    [_, Value::Path(p), _, Value::Str(result)] if p == job => Some(result.clone()),
                    _ => None,
                }
            })
    }

    /// StartTransientUnit(name, "replace", properties) and waits for its job. A unit of that name
    /// left failed by an earlier container is reset and the start tried once more (runc).
    /// `started` is called once the unit exists and is hako's to stop, even if the job fails.
    pub fn start(
        &mut self,
        unit: &str,
        props: Vec<(String, Value)>,
        started: impl FnOnce(),
    ) -> Result<()> {
        self.watch_jobs()?;
        let props = Value::Array(
            "(sv)".into(),
            props
                .into_iter()
                .map(|(k, v)| Value::Struct(vec![Value::Str(k), Value::variant(v)]))
                .collect(),
        );
        let args = [
            Value::str(unit),
            Value::str("replace"),
            props,
            Value::Array("(sa(sv))".into(), vec![]),
        ];
        let fail = |e: String| Error::Systemd(format!("unable to start unit {unit:?}: {e}"));
        let mut r = self.call("StartTransientUnit", &args);
        if r.as_ref()
            .is_err_and(|e| remote_name(e) == "org.freedesktop.systemd1.UnitExists")
        {
            self.reset_failed(unit);
            r = self.call("StartTransientUnit", &args);
        }
        let job = match r {
            Ok(body) => body
                .first()
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| fail("no job in systemd's reply".into()))?,
            Err(e) => return Err(fail(e.to_string())),
        };
        started();
        match self.wait_job(&job, &format!("systemd to create {unit}")) {
            Ok(result) if result == "done" => Ok(()),
            Ok(result) => {
                self.reset_failed(unit);
                Err(Error::Systemd(format!(
                    "error creating systemd unit `{unit}`: got `{result}`"
                )))
            }
            Err(DbusError::Timeout(_)) => {
                self.reset_failed(unit);
                Err(Error::Systemd(format!(
                    "Timeout waiting for systemd to create {unit}"
                )))
            }
            Err(e) => Err(fail(e.to_string())),
        }
    }

    /// StopUnit(name, "replace") and waits for its job; a unit systemd already unloaded (its last
    /// process exited) is not an error. A failed unit is reset so nothing of it stays.
    pub fn stop(&mut self, unit: &str) -> Result<()> {
        self.watch_jobs()?;
        let r = match self.call("StopUnit", &[Value::str(unit), Value::str("replace")]) {
            Ok(body) => match body.first().and_then(Value::as_str).map(str::to_string) {
                Some(job) => match self.wait_job(&job, &format!("systemd to remove {unit}")) {
                    Ok(result) if result != "done" => {
                        crate::log::warn(&format!(
                            "error removing unit `{unit}`: got `{result}`. Continuing..."
                        ));
                        Ok(())
                    }
                    Ok(_) => Ok(()),
                    Err(DbusError::Timeout(_)) => Err(Error::Systemd(format!(
                        "Timed out while waiting for systemd to remove {unit}"
                    ))),
                    Err(e) => Err(Error::Systemd(format!("stop unit {unit:?}: {e}"))),
                },
                None => Ok(()),
            },
            Err(e) if remote_name(&e) == "org.freedesktop.systemd1.NoSuchUnit" => Ok(()),
            Err(e) => Err(Error::Systemd(format!("stop unit {unit:?}: {e}"))),
        };
        self.reset_failed(unit);
        r
    }

    /// ResetFailedUnit: lets systemd unload a failed unit. Errors (not failed, not loaded) are
    /// expected and ignored.
    pub fn reset_failed(&mut self, unit: &str) {
        let _ = self.call("ResetFailedUnit", &[Value::str(unit)]);
    }

    /// SetUnitProperties(name, runtime=true, properties): `update`, lost at reboot like the
    /// container itself.
    pub fn set_properties(&mut self, unit: &str, props: Vec<(String, Value)>) -> Result<()> {
        if props.is_empty() {
            return Ok(());
        }
        let props = Value::Array(
            "(sv)".into(),
            props
                .into_iter()
                .map(|(k, v)| Value::Struct(vec![Value::Str(k), Value::variant(v)]))
                .collect(),
        );
        self.call(
            "SetUnitProperties",
            &[Value::str(unit), Value::Bool(true), props],
        )
        .map(drop)
        .map_err(|e| Error::Systemd(format!("unable to set unit properties: {e}")))
    }
}

/// "252.19-1.fc38", "v245.4" → 252, 245.
fn version_number(s: &str) -> u32 {
    let s = s.trim_start_matches(['"', 'v']);
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s[..end].parse().unwrap_or(0)
}

/// The unit's own properties (runc's Apply): where it lives, that the runtime owns what is
/// inside its cgroup, the init in it, no implicit dependencies, and accounting on so every
/// controller is enabled for it.
pub fn unit_properties(place: &Place, pid: i32, v2: bool, id: &str) -> Vec<(String, Value)> {
    let b = |k: &str, v: bool| (k.to_string(), Value::Bool(v));
    let mut p = vec![(
        "Description".to_string(),
        Value::str(format!("hako container {id}")),
    )];
    if place.unit.ends_with(".slice") {
        // A slice's parent is named by Wants= (runc); systemd derives the nesting from the name.
        p.push((
            "Wants".into(),
            Value::Array("s".into(), vec![Value::str(&place.slice)]),
        ));
    } else {
        p.push(("Slice".into(), Value::str(&place.slice)));
        p.push(b("Delegate", true));
        // A slice takes no processes from systemd: the init is written into its cgroup after.
        p.push((
            "PIDs".into(),
            Value::Array("u".into(), vec![Value::U32(pid as u32)]),
        ));
    }
    p.push(b("MemoryAccounting", true));
    p.push(b("CPUAccounting", true));
    p.push(b(
        if v2 {
            "IOAccounting"
        } else {
            "BlockIOAccounting"
        },
        true,
    ));
    p.push(b("TasksAccounting", true));
    p.push(b("DefaultDependencies", false));
    p
}

type Properties = Vec<(String, Value)>;

fn push_u64(p: &mut Properties, k: &str, v: u64) {
    p.push((k.to_string(), Value::U64(v)));
}

/// The CPU limits systemd takes as several properties at once: gathered from
/// `linux.resources.cpu`, then overridden by the unified keys for the same files.
#[derive(Default)]
struct CpuLimits {
    quota: i64,
    period: u64,
    cpus: Option<String>,
    mems: Option<String>,
}

/// The unit properties systemd has for `r` (runc's genV1/genV2ResourcesProperties). Whatever has
/// none (swappiness, hugetlb, rdma, unified keys systemd does not know) is only written to the
/// cgroup files. `version` is asked only when a property depends on systemd's age.
pub fn resource_properties(
    r: &LinuxResources,
    v2: bool,
    mut version: impl FnMut() -> u32,
) -> Result<Properties> {
    let mut p = Properties::new();
    if let Some(m) = r.memory() {
        memory_properties(m, v2, &mut p)?;
    }
    let mut cpu = CpuLimits::default();
    if let Some(c) = r.cpu() {
        cpu = cpu_properties(c, v2, &mut p);
    }
    if let Some(w) = r
        .block_io()
        .as_ref()
        .and_then(|b| b.weight())
        .filter(|w| *w != 0)
    {
        if v2 {
            push_u64(&mut p, "IOWeight", super::v2::blkio_to_io_weight(w));
        } else {
            push_u64(&mut p, "BlockIOWeight", w as u64);
        }
    }
    if let Some(l) = r
        .pids()
        .as_ref()
        .map(|p| p.limit())
        .filter(|l| *l > 0 || *l == -1)
    {
        push_u64(&mut p, "TasksMax", l as u64);
    }
    if let Some(u) = r.unified().as_ref().filter(|_| v2) {
        unified_properties(u, &mut cpu, &mut p)?;
    }
    cpu_quota_properties(&cpu, &mut version, &mut p);
    cpuset_properties(cpu, &mut version, &mut p)?;
    if let Some(rules) = r.devices() {
        p.extend(device_properties(rules));
    }
    Ok(p)
}

fn memory_properties(m: &LinuxMemory, v2: bool, p: &mut Properties) -> Result<()> {
    let set = |v: Option<i64>| v.filter(|v| *v != 0);
    if v2 {
        if let Some(l) = set(m.limit()) {
            push_u64(p, "MemoryMax", l as u64);
        }
        if let Some(l) = set(m.reservation()) {
            push_u64(p, "MemoryLow", l as u64);
        }
        if let Some(s) = super::v2::swap_max(set(m.limit()), set(m.swap()))? {
            push_u64(p, "MemorySwapMax", s.parse().unwrap_or(u64::MAX));
        }
    } else if let Some(l) = set(m.limit()) {
        push_u64(p, "MemoryLimit", l as u64);
    }
    Ok(())
}

/// The CPU weight as a property now; the quota and the cpusets are returned, to become
/// properties once the unified keys have had their say.
fn cpu_properties(c: &LinuxCpu, v2: bool, p: &mut Properties) -> CpuLimits {
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        if v2 {
            push_u64(p, "CPUWeight", super::v2::shares_to_weight(s));
        } else {
            push_u64(p, "CPUShares", s);
        }
    }
    CpuLimits {
        quota: c.quota().unwrap_or(0),
        period: c.period().unwrap_or(0),
        cpus: c.cpus().clone().filter(|s| !s.is_empty()),
        mems: c.mems().clone().filter(|s| !s.is_empty()),
    }
}

/// The unified keys systemd has a property for (cgroup v2 only).
fn unified_properties(
    u: &HashMap<String, String>,
    cpu: &mut CpuLimits,
    p: &mut Properties,
) -> Result<()> {
    for (k, v) in u {
        let v = v.trim();
        let num = || -> Option<u64> {
            if v == "max" {
                Some(u64::MAX)
            } else {
                v.parse().ok()
            }
        };
        let prop = match k.as_str() {
            "memory.high" => "MemoryHigh",
            "memory.low" => "MemoryLow",
            "memory.min" => "MemoryMin",
            "memory.max" => "MemoryMax",
            "memory.swap.max" => "MemorySwapMax",
            "pids.max" => "TasksMax",
            "cpu.weight" => "CPUWeight",
            "cpu.max" => {
                let mut f = v.split_whitespace();
                cpu.quota = match f.next() {
                    Some("max") | None => 0,
                    Some(q) => q.parse().map_err(|_| bad_unified(k, v))?,
                };
                cpu.period = match f.next() {
                    Some(p) => p.parse().map_err(|_| bad_unified(k, v))?,
                    None => 100_000,
                };
                continue;
            }
            "cpuset.cpus" => {
                cpu.cpus = Some(v.to_string());
                continue;
            }
            "cpuset.mems" => {
                cpu.mems = Some(v.to_string());
                continue;
            }
            // Written to the file only (runc does the same).
            _ => continue,
        };
        push_u64(p, prop, num().ok_or_else(|| bad_unified(k, v))?);
    }
    Ok(())
}

fn cpu_quota_properties(cpu: &CpuLimits, version: &mut impl FnMut() -> u32, p: &mut Properties) {
    if cpu.period != 0 && version() >= 242 {
        push_u64(p, "CPUQuotaPeriodUSec", cpu.period);
    }
    if cpu.quota != 0 || cpu.period != 0 {
        push_u64(
            p,
            "CPUQuotaPerSecUSec",
            cpu_quota_per_sec(cpu.quota, cpu.period),
        );
    }
}

fn cpuset_properties(
    cpu: CpuLimits,
    version: &mut impl FnMut() -> u32,
    p: &mut Properties,
) -> Result<()> {
    if (cpu.cpus.is_none() && cpu.mems.is_none()) || version() < 244 {
        return Ok(());
    }
    for (prop, list, field) in [
        ("AllowedCPUs", cpu.cpus, "cpus"),
        ("AllowedMemoryNodes", cpu.mems, "mems"),
    ] {
        if let Some(list) = list {
            let bits = range_to_bits(&list).ok_or_else(|| {
                Error::Usage(format!(
                    "linux.resources.cpu.{field}: {list:?} is not a list of ranges"
                ))
            })?;
            p.push((
                prop.into(),
                Value::Array("y".into(), bits.into_iter().map(Value::Byte).collect()),
            ));
        }
    }
    Ok(())
}

fn bad_unified(k: &str, v: &str) -> Error {
    Error::Usage(format!("linux.resources.unified.{k}: invalid value {v:?}"))
}

/// systemd keeps a CPU quota as microseconds per second and turns it into a percentage: round up
/// to the next 10 ms so the cgroup's own cpu.max stays reachable (runc's addCpuQuota). No quota
/// with a period is "infinity".
fn cpu_quota_per_sec(quota: i64, period: u64) -> u64 {
    if quota <= 0 {
        return u64::MAX;
    }
    let period = if period == 0 { 100_000 } else { period };
    let us = (quota as u64 * 1_000_000) / period;
    us.div_ceil(10_000) * 10_000
}

/// "0-3,8" → systemd's CPU set bytes: bit n of byte n/8 is CPU n (runc's RangeToBits).
pub fn range_to_bits(list: &str) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::new();
    for part in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<usize>().ok()?, b.trim().parse().ok()?),
            None => {
                let n = part.parse().ok()?;
                (n, n)
            }
        };
        if b < a || b > 1 << 16 {
            return None;
        }
        for n in a..=b {
            if out.len() <= n / 8 {
                out.resize(n / 8 + 1, 0);
            }
            out[n / 8] |= 1 << (n % 8);
        }
    }
    if out.is_empty() {
        out.push(0);
    }
    Some(out)
}

/// Device rules as systemd's DevicePolicy/DeviceAllow, when the list has a form systemd can say:
/// "deny all" followed by allows (what every caller sends) is `strict` with one entry per allow;
/// anything systemd cannot express (a deny after an allow-all) leaves systemd's policy open
/// (`auto`, no entries). hako's own eBPF program, written with the files, enforces the exact
/// rules either way; this keeps systemd's program, re-attached on a reload, from being narrower.
fn device_properties(rules: &[LinuxDeviceCgroup]) -> Properties {
    let names = std::fs::read_to_string("/proc/devices").unwrap_or_default();
    let mut strict = false;
    let mut allow: Vec<(String, String)> = Vec::new();
    for r in rules {
        let typ = r.typ().unwrap_or(LinuxDeviceType::A);
        let major = r.major().filter(|m| *m >= 0);
        let minor = r.minor().filter(|m| *m >= 0);
        let access: String = r
            .access()
            .clone()
            .unwrap_or_else(|| "rwm".into())
            .chars()
            .filter(|c| "rwm".contains(*c))
            .collect();
        let wildcard = matches!(typ, LinuxDeviceType::A) && major.is_none() && minor.is_none();
        if wildcard && access.len() == 3 {
            // Everything allowed, or everything denied: what came before no longer matters.
            strict = !r.allow();
            allow.clear();
            continue;
        }
        if !r.allow() {
            if strict {
                // Denying within deny-all only matters if an earlier allow covered it: drop an
                // identical entry, else nothing to do.
                if let Some(e) = entry(typ, major, minor, &names) {
                    allow.retain(|(p, _)| *p != e);
                }
                continue;
            }
            return open_device_policy();
        }
        if !strict || access.is_empty() {
            continue;
        }
        match entry(typ, major, minor, &names) {
            Some(e) => allow.push((e, access)),
            None if matches!(typ, LinuxDeviceType::A) => {
                allow.push(("char-*".into(), access.clone()));
                allow.push(("block-*".into(), access));
            }
            None => return open_device_policy(),
        }
    }
    if !strict {
        return open_device_policy();
    }
    strict_device_policy(allow)
}

/// systemd's own policy, left open: hako's program alone decides.
fn open_device_policy() -> Properties {
    vec![
        ("DevicePolicy".to_string(), Value::str("auto")),
        (
            "DeviceAllow".to_string(),
            Value::Array("(ss)".into(), vec![]),
        ),
    ]
}

fn strict_device_policy(allow: Vec<(String, String)>) -> Properties {
    vec![
        ("DevicePolicy".to_string(), Value::str("strict")),
        (
            "DeviceAllow".to_string(),
            Value::Array(
                "(ss)".into(),
                allow
                    .into_iter()
                    .map(|(p, a)| Value::Struct(vec![Value::Str(p), Value::Str(a)]))
                    .collect(),
            ),
        ),
    ]
}

/// systemd's name for one rule's devices: `/dev/char/1:3`, `char-pts` (a major, by the driver
/// name in /proc/devices), `block-*`.
fn entry(
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    proc_devices: &str,
) -> Option<String> {
    let kind = match typ {
        LinuxDeviceType::C | LinuxDeviceType::U => "char",
        LinuxDeviceType::B => "block",
        _ => return None,
    };
    match (major, minor) {
        (None, None) => Some(format!("{kind}-*")),
        (Some(ma), Some(mi)) => Some(format!("/dev/{kind}/{ma}:{mi}")),
        (Some(ma), None) => {
            let section = if kind == "char" {
                "Character devices:"
            } else {
                "Block devices:"
            };
            proc_devices
                .split("\n\n")
                .find(|s| s.trim_start().starts_with(section))?
                .lines()
                .skip(1)
                .find_map(|l| {
                    let (n, name) = l.trim().split_once(' ')?;
                    (n.parse::<i64>().ok()? == ma).then(|| format!("{kind}-{name}"))
                })
        }
        (None, Some(_)) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_nest_as_runc_expands_them() {
        assert_eq!(
            expand_slice("test-a-b.slice").unwrap(),
            PathBuf::from("/test.slice/test-a.slice/test-a-b.slice")
        );
        assert_eq!(expand_slice("-.slice").unwrap(), PathBuf::from("/"));
        for bad in [
            "test--a.slice",
            "-test.slice",
            ".slice",
            "a/b.slice",
            "system",
        ] {
            let e = expand_slice(bad).unwrap_err().to_string();
            assert!(e.contains("invalid slice name"), "{bad}: {e}");
        }
    }

    #[test]
    fn parses_slice_prefix_name() {
        let p = parse("machine-app.slice:libpod:abc", "c1", false).unwrap();
        assert_eq!(p.unit, "libpod-abc.scope");
        assert_eq!(p.slice, "machine-app.slice");
        assert_eq!(
            p.path,
            PathBuf::from("/machine.slice/machine-app.slice/libpod-abc.scope")
        );
        let d = parse("", "c1", false).unwrap();
        assert_eq!(
            (d.unit.as_str(), d.slice.as_str()),
            ("hako-c1.scope", "system.slice")
        );
        assert_eq!(parse(":p:n", "c1", true).unwrap().slice, "user.slice");
        let s = parse("system.slice:x:sub-k.slice", "c1", false).unwrap();
        assert_eq!(s.unit, "sub-k.slice");
        assert_eq!(s.path, PathBuf::from("/sub.slice/sub-k.slice"));
        assert!(parse("nocolons", "c1", false)
            .unwrap_err()
            .to_string()
            .contains("slice:prefix:name"));
        assert!(parse("bad:p:n", "c1", false).is_err());
    }

    #[test]
    fn the_owner_uid_comes_through_the_uid_map() {
        assert_eq!(host_uid("0 0 4294967295\n", 1000), Some(1000));
        // Root of rootless podman's namespace: the user outside, then its subordinate range.
        let map = "         0       1000          1\n         1     100000      65536\n";
        assert_eq!(host_uid(map, 0), Some(1000));
        assert_eq!(host_uid(map, 1), Some(100000));
        assert_eq!(host_uid(map, 65537), None);
    }

    #[test]
    fn cpu_conversions_match_runc() {
        assert_eq!(cpu_quota_per_sec(50_000, 100_000), 500_000);
        assert_eq!(cpu_quota_per_sec(12_345, 100_000), 130_000);
        assert_eq!(cpu_quota_per_sec(-1, 100_000), u64::MAX);
        assert_eq!(range_to_bits("0-3,9").unwrap(), vec![0x0f, 0x02]);
        assert_eq!(range_to_bits("").unwrap(), vec![0]);
        assert!(range_to_bits("3-1").is_none());
        assert_eq!(version_number("252.19-1~deb12u1"), 252);
        assert_eq!(version_number("\"v245.4-1.fc32\""), 245);
    }

    #[test]
    fn resources_become_properties() {
        let r: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 67108864, "swap": 134217728},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0"},
            "pids": {"limit": 99},
        }))
        .unwrap();
        let p = resource_properties(&r, true, || 252).unwrap();
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("MemoryMax"), Some(Value::U64(67108864)));
        assert_eq!(get("MemorySwapMax"), Some(Value::U64(67108864)));
        assert_eq!(get("CPUWeight"), Some(Value::U64(39)));
        assert_eq!(get("CPUQuotaPerSecUSec"), Some(Value::U64(500_000)));
        assert_eq!(get("CPUQuotaPeriodUSec"), Some(Value::U64(100_000)));
        assert_eq!(get("TasksMax"), Some(Value::U64(99)));
        assert_eq!(
            get("AllowedCPUs"),
            Some(Value::Array("y".into(), vec![Value::Byte(1)]))
        );
        let v1 = resource_properties(&r, false, || 219).unwrap();
        let names: Vec<&str> = v1.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["MemoryLimit", "CPUShares", "TasksMax", "CPUQuotaPerSecUSec"]
        );
    }

    #[test]
    fn unified_keys_override_the_cpu_limits() {
        let u: HashMap<String, String> = [
            ("cpu.max", "20000 50000"),
            ("memory.high", " max "),
            ("cpuset.cpus", "1"),
            ("memory.stat", "ignored"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut cpu = CpuLimits {
            quota: 10_000,
            period: 100_000,
            cpus: Some("0".into()),
            mems: None,
        };
        let mut p = Properties::new();
        unified_properties(&u, &mut cpu, &mut p).unwrap();
        assert_eq!(p, [("MemoryHigh".to_string(), Value::U64(u64::MAX))]);
        assert_eq!((cpu.quota, cpu.period), (20_000, 50_000));
        assert_eq!(cpu.cpus.as_deref(), Some("1"));
        cpu_quota_properties(&cpu, &mut || 241, &mut p);
        assert_eq!(
            p[1],
            ("CPUQuotaPerSecUSec".to_string(), Value::U64(400_000))
        );
        // An old systemd gets no cpuset properties, and is not asked twice for its version.
        let mut asked = 0;
        cpuset_properties(
            cpu,
            &mut || {
                asked += 1;
                243
            },
            &mut p,
        )
        .unwrap();
        assert_eq!((p.len(), asked), (2, 1));
        let bad: HashMap<String, String> = [("memory.high".to_string(), "lots".to_string())].into();
        let e = unified_properties(&bad, &mut CpuLimits::default(), &mut p).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.unified.memory.high: invalid value \"lots\""
        );
    }

    #[test]
    fn device_rules_become_a_strict_allow_list() {
        let rules: Vec<LinuxDeviceCgroup> = serde_json::from_value(serde_json::json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "access": "m"},
        ]))
        .unwrap();
        let p = device_properties(&rules);
        assert_eq!(p[0].1, Value::str("strict"));
        let Value::Array(_, entries) = &p[1].1 else {
            panic!()
        };
        assert_eq!(
            entries[0],
            Value::Struct(vec![Value::str("/dev/char/1:3"), Value::str("rwm")])
        );
        assert_eq!(
            entries[1],
            Value::Struct(vec![Value::str("char-*"), Value::str("m")])
        );
        let open: Vec<LinuxDeviceCgroup> = serde_json::from_value(serde_json::json!([
            {"allow": true, "access": "rwm"},
            {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        ]))
        .unwrap();
        assert_eq!(device_properties(&open)[0].1, Value::str("auto"));
        let devices = "Character devices:\n  1 mem\n136 pts\n\nBlock devices:\n  8 sd\n";
        assert_eq!(
            entry(LinuxDeviceType::C, Some(136), None, devices).as_deref(),
            Some("char-pts")
        );
        assert_eq!(
            entry(LinuxDeviceType::B, Some(8), None, devices).as_deref(),
            Some("block-sd")
        );
    }
}
