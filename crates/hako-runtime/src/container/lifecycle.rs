//! The lifecycle after `create`, as the runtime process sees it: every command here works from
//! the container's record in the state store (`create` and `run` are in [`crate::container::create`], the
//! cgroup commands in [`crate::container::control`]).

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use hako_spec::state::{ContainerRecord, StateView, Status};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::cgroups::Cgroups;
use crate::container::hooks;
use crate::container::store::{self, Locked, Store};
use crate::error::{Context, Error, Result};
use crate::sys;

pub use crate::container::control::{pause, pids, resume, update};
pub use crate::container::create::{create, run, CreateOptions, Created};

/// Path through which a unix socket in the state dir is reached: via the locked dir fd, so a long
/// `--root` cannot overflow sun_path (108 bytes).
pub(crate) fn sock_path(lock: &Locked) -> PathBuf {
    PathBuf::from(format!(
        "/proc/self/fd/{}/{}",
        lock.lock_fd().as_raw_fd(),
        store::START_SOCKET
    ))
}

/// Live status of a recorded container: the recorded one, unless the init is gone, a zombie, or
/// its pid now belongs to another process (start time differs).
pub fn status_of(rec: &ContainerRecord) -> Status {
    // A create still running, or one whose runtime died: `delete` tells them apart by the lock.
    if rec.status == Status::Creating {
        return Status::Creating;
    }
    if rec.pid <= 0 {
        return Status::Stopped;
    }
    match sys::proc_stat(rec.pid) {
        Some((st, start)) if start == rec.init_start_time && st != 'Z' && st != 'X' => {
            if matches!(rec.status, Status::Running | Status::Created)
                && Cgroups::from_record(rec.cgroup.clone()).frozen()
            {
                Status::Paused
            } else {
                rec.status
            }
        }
        _ => Status::Stopped,
    }
}

pub(crate) fn locked(root: &Path, id: &str) -> Result<(Locked, ContainerRecord)> {
    hako_spec::id::validate_id(id)?;
    let lock = Store::existing(root).lock(id)?;
    let rec = lock.load()?;
    Ok((lock, rec))
}

pub fn state(root: &Path, id: &str) -> Result<StateView> {
    hako_spec::id::validate_id(id)?;
    let rec = Store::existing(root).read(id)?;
    Ok(rec.view(status_of(&rec)))
}

pub fn list(root: &Path) -> Result<Vec<StateView>> {
    let store = Store::existing(root);
    let mut out = Vec::new();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    for id in store.ids() {
        let p = store.dir(&id).join(store::STATE_FILE);
        let Ok(text) = std::fs::read(&p) else {
            continue;
        };
        let Ok(rec) = serde_json::from_slice::<ContainerRecord>(&text) else {
            continue;
        };
        let mut view = rec.view(status_of(&rec));
        // Like runc: OWNER is the user owning the state directory (`#uid` when unnamed), while
        // `state` leaves it empty.
        if let Ok(m) = std::fs::metadata(store.dir(&id)) {
            use std::os::unix::fs::MetadataExt;
            view.owner = user_name(&passwd, m.uid()).unwrap_or_else(|| format!("#{}", m.uid()));
        }
        out.push(view);
    }
    Ok(out)
}

/// The name of `uid` in /etc/passwd, as runc's `list` finds it (libcontainer/user reads the file).
/// Not getpwuid(3): the release binary is statically linked, and glibc's name-service switch
/// would dlopen modules of whatever glibc the host has at run time.
fn user_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)?.parse() == Ok(uid)).then(|| name.to_string())
    })
}

pub fn start(root: &Path, id: &str) -> Result<()> {
    hako_spec::id::validate_id(id)?;
    let store = Store::existing(root);
    let lock = store.lock(id)?;
    let mut rec = lock.load()?;
    match status_of(&rec) {
        Status::Created => {}
        Status::Stopped => {
            return Err(Error::BadState(
                "cannot start a container that has stopped".into(),
            ))
        }
        Status::Running => {
            return Err(Error::BadState(
                "cannot start an already running container".into(),
            ))
        }
        s => {
            return Err(Error::BadState(format!(
                "cannot start a container in the {s} state"
            )))
        }
    }
    start_locked(lock, &mut rec)
}

/// `start` of a created container whose state directory we hold. The lock is let go while the
/// init execs (a container paused meanwhile would hold us until `resume`, which needs the lock)
/// and while the poststart hooks run (a hook may call `hako state`).
pub(crate) fn start_locked(lock: Locked, rec: &mut ContainerRecord) -> Result<()> {
    if rec.config.process().is_none() {
        // The spec makes `process` optional until `start`; runc refuses the same way.
        return Err(Error::Usage(crate::init::entry::NO_PROCESS.into()));
    }
    let conn = release(&lock)?;
    let unlocked = lock.unlock();
    verdict(conn)?;
    crate::log::debug(&format!(
        "start {}: container init {} exec'd",
        unlocked.id, rec.pid
    ));
    crate::container::crash::point("start:released");
    let lock = unlocked.lock()?;
    rec.status = Status::Running;
    lock.save(rec)?;
    drop(lock);
    poststart(rec)
}

/// Runs the poststart hooks of a container whose process was just exec'd. runtime-spec 1.3: a
/// failing one is an error, the container is stopped (its init killed) and the lifecycle goes
/// on to delete, whose poststop hooks still run; the later poststart hooks do not (runc 1.3 stops
/// at the first failure and kills the init the same way, only it runs them at `create`).
pub(crate) fn poststart(rec: &ContainerRecord) -> Result<()> {
    let state = serde_json::to_string(&rec.hook_state(Status::Running)).expect("serializes");
    let failed = match hooks::run_all(
        rec.config.hooks().as_ref(),
        hooks::Kind::Poststart,
        &state,
        None,
    ) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    if let Err(e) = kill_and_wait(rec) {
        crate::log::warn(&format!(
            "stop container after a failed poststart hook: {e}"
        ));
    }
    Err(failed)
}

/// Tells the waiting init to exec. Only one `start` gets through: the socket is removed.
fn release(lock: &Locked) -> Result<UnixStream> {
    let path = sock_path(lock);
    let mut conn = UnixStream::connect(&path)
        .ctx("connect to container init", lock.path(store::START_SOCKET))?;
    use std::io::Write;
    conn.write_all(b"s")
        .ctx("release container init", lock.path(store::START_SOCKET))?;
    let _ = std::fs::remove_file(lock.path(store::START_SOCKET));
    Ok(conn)
}

/// The init's verdict: EOF means execve succeeded (the connection was close-on-exec), text is
/// the init's error.
fn verdict(mut conn: UnixStream) -> Result<()> {
    use std::io::Read;
    let mut msg = String::new();
    let _ = conn.read_to_string(&mut msg);
    if !msg.is_empty() {
        return Err(Error::Init(msg));
    }
    Ok(())
}

/// A pidfd on the init, verified to still be the process we created (pid reuse guard).
pub(crate) fn init_pidfd(rec: &ContainerRecord) -> Result<OwnedFd> {
    let fd = sys::pidfd_open(rec.pid).map_err(|_| Error::NotRunning)?;
    // Checked after opening the pidfd: from here the fd pins the process we verified.
    match sys::proc_stat(rec.pid) {
        Some((st, start)) if start == rec.init_start_time && st != 'Z' => Ok(fd),
        _ => Err(Error::NotRunning),
    }
}

/// Signal `sig` (0: only check that the init is alive) to the init, through a verified pidfd.
fn signal_init(rec: &ContainerRecord, sig: i32) -> Result<OwnedFd> {
    let fd = init_pidfd(rec)?;
    sys::pidfd_send_signal(&fd, sig).map_err(|e| match e {
        Errno::ESRCH => Error::NotRunning,
        // runc's words.
        e => Error::sys("unable to signal init", e),
    })?;
    Ok(fd)
}

/// Every process of the container: its cgroup's members; without a cgroup of its own, the
/// members of its private pid namespace.
pub fn container_pids(rec: &ContainerRecord) -> Vec<i32> {
    if !rec.cgroup.layout.is_empty() {
        return Cgroups::from_record(rec.cgroup.clone()).pids();
    }
    let Ok(ns) = std::fs::read_link(format!("/proc/{}/ns/pid", rec.pid)) else {
        return vec![];
    };
    if !rec.private_pid_ns {
        return vec![rec.pid];
    }
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            std::fs::read_link(format!("/proc/{p}/ns/pid"))
                .ok()
                .as_ref()
                == Some(&ns)
        })
        .collect()
}

/// `kill`: `sig` is a raw number, as runc takes it (0 checks that the init is alive, real-time
/// signals pass through).
pub fn kill(root: &Path, id: &str, sig: i32, all: bool) -> Result<()> {
    hako_spec::id::validate_id(id)?;
    let (lock, rec) = locked(root, id)?;
    // Signals need no lock: the pidfd is verified against the init's start time.
    drop(lock);
    let stopped = status_of(&rec) == Status::Stopped;
    // runc 1.2+: `--all` of a stopped container is no error, and SIGKILL to a container without
    // its own pid namespace goes to every process of its cgroup (with its own, the kernel kills
    // them with the init), even once the init is gone: nothing may be left behind.
    if all || (sig == libc::SIGKILL && !rec.private_pid_ns) {
        // Without a cgroup the pids come from the init's, which is no more once stopped.
        if !(stopped && rec.cgroup.layout.is_empty()) {
            signal_all(&rec, sig);
        }
        return Ok(());
    }
    if stopped {
        return Err(Error::NotRunning);
    }
    crate::log::debug(&format!("kill {id}: signal {sig} to init {}", rec.pid));
    signal_init(&rec, sig).map(drop)
}

/// `sig` to every process of the container; for SIGKILL a second pass gets what was forked
/// meanwhile (runc freezes the cgroup instead; a frozen v1 task would take SIGKILL only once
/// thawed).
fn signal_all(rec: &ContainerRecord, sig: i32) {
    let passes = if sig == libc::SIGKILL { 2 } else { 1 };
    for _ in 0..passes {
        for p in container_pids(rec) {
            // SAFETY: kill(2) with a plain pid and signal number touches no memory.
            unsafe { libc::kill(p, sig) };
        }
    }
}

/// Kills the init (and, without a private pid namespace, every process we can find) and waits
/// until it is gone.
fn kill_and_wait(rec: &ContainerRecord) -> Result<()> {
    let others = if rec.private_pid_ns {
        vec![]
    } else {
        container_pids(rec)
    };
    let fd = match signal_init(rec, libc::SIGKILL) {
        Ok(fd) => fd,
        Err(Error::NotRunning) => return Ok(()),
        Err(e) => return Err(e),
    };
    for p in others {
        let _ = nix::sys::signal::kill(Pid::from_raw(p), Signal::SIGKILL);
    }
    // A paused container (`delete --force`): a v1-frozen task takes its SIGKILL only once thawed.
    let cg = Cgroups::from_record(rec.cgroup.clone());
    if cg.frozen() {
        let _ = cg.freeze(false);
    }
    if !sys::pidfd_wait(&fd, 10_000).op("wait for container init")? {
        return Err(Error::Init(format!(
            "container init {} did not die after SIGKILL",
            rec.pid
        )));
    }
    Ok(())
}

/// [`kill_and_wait`] without the lock (the wait may be long, and nothing else may be kept out
/// meanwhile), then the lock again: `None` when another command deleted the container meanwhile.
fn kill_unlocked(lock: Locked, rec: &ContainerRecord) -> Result<Option<Locked>> {
    let unlocked = lock.unlock();
    kill_and_wait(rec)?;
    let lock = match unlocked.lock() {
        Ok(l) => l,
        Err(Error::NotExist(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    match lock.load() {
        // Still ours, not a new container that took the id meanwhile.
        Ok(r) if r.pid == rec.pid && r.init_start_time == rec.init_start_time => Ok(Some(lock)),
        Ok(_) | Err(Error::NotExist(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    hako_spec::id::validate_id(id)?;
    let store = Store::existing(root);
    let missing = || {
        if force {
            Ok(())
        } else {
            Err(Error::NotExist(id.to_string()))
        }
    };
    let lock = match store.lock(id) {
        Ok(l) => l,
        Err(Error::NotExist(_)) if store.dir(id).exists() => {
            // A directory without a record: a create claimed the id and has not written it yet,
            // or was killed in between. The lock waits for a live one; a dead one's is free.
            let lock = match store.lock_claimed(id) {
                Ok(l) => l,
                Err(Error::NotExist(_)) => return missing(),
                Err(e) => return Err(e),
            };
            if !lock.path(store::STATE_FILE).exists() {
                lock.remove()?;
                // As runc: the directory is cleared, and without --force the id still did not
                // exist.
                return missing();
            }
            lock
        }
        Err(Error::NotExist(_)) => return missing(),
        Err(e) => return Err(e),
    };
    let rec = match lock.load() {
        Ok(r) => r,
        // A failed create removed it while we waited for the lock.
        Err(Error::NotExist(_)) => return missing(),
        Err(e) => return Err(e),
    };
    delete_locked(id, lock, rec, force)
}

/// `delete` of the container whose state directory we hold, as `rec` describes it.
pub(crate) fn delete_locked(
    id: &str,
    lock: Locked,
    rec: ContainerRecord,
    force: bool,
) -> Result<()> {
    let lock = match status_of(&rec) {
        Status::Stopped => lock,
        // `creating` under our lock: its runtime died (a live one holds the lock until the
        // record says `created` or the directory is gone). What the record says may exist goes.
        Status::Created | Status::Creating => match kill_unlocked(lock, &rec)? {
            Some(l) => l,
            None => return Ok(()),
        },
        _ if force => match kill_unlocked(lock, &rec)? {
            Some(l) => l,
            None => return Ok(()),
        },
        s => {
            return Err(Error::BadState(format!(
                "cannot delete container {id} that is not stopped: {s}"
            )))
        }
    };
    crate::container::crash::point("delete:killed");
    let cg = Cgroups::from_record(rec.cgroup.clone());
    // Leftovers of a container that shared the host pid namespace (or forked daemons) die too.
    let _ = cg.kill_all();
    cg.destroy()?;
    crate::resctrl::remove(rec.resctrl.as_ref())?;
    crate::container::crash::point("delete:cgroups");
    if let Some(before) = &rec.host_mounts_before {
        crate::fs::host_mounts::undo(&rec.rootfs, before)?;
    }
    lock.remove()?;
    crate::log::debug(&format!("delete {id}: state and cgroups removed"));
    // As runc: poststop hooks run once the state is gone (and without the lock, so a hook may
    // call the runtime). The spec: every one runs, a failure is a warning.
    let state = serde_json::to_string(&rec.hook_state(Status::Stopped)).expect("serializes");
    hooks::run_all_warn(rec.config.hooks().as_ref(), hooks::Kind::Poststop, &state);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::user_name;

    #[test]
    fn owner_names_come_from_etc_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n# comment\nbroken\nalice:x:1000:1000::/home/alice:/bin/sh\n";
        assert_eq!(user_name(passwd, 0).as_deref(), Some("root"));
        assert_eq!(user_name(passwd, 1000).as_deref(), Some("alice"));
        assert_eq!(user_name(passwd, 1001), None);
    }
}
