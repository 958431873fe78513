//! `events`: runc's envelope `{"type":"stats"|"oom","id":ID,"data":…}`, one JSON object per line.
//!
//! Streaming stays single-threaded: one poll on a pidfd of the init and the memory cgroup's OOM
//! notifier ([`crate::cgroups::oom`]: an eventfd on v1, inotify on v2), with the time left to the
//! next stats line as its timeout. An OOM is reported the moment the kernel signals it; the init
//! exiting ends the stream.

use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use hako_spec::state::Status;
use serde::Serialize;

use crate::cgroups::oom::OomWatch;
use crate::cgroups::stats;
use crate::container::lifecycle::{init_pidfd, status_of};
use crate::container::store::Store;
use crate::error::{Context, Error, Result};

#[derive(Serialize)]
struct Event<'a, T: Serialize> {
    #[serde(rename = "type")]
    typ: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<T>,
}

fn emit<T: Serialize>(out: &mut dyn Write, typ: &str, id: &str, data: Option<T>) -> Result<()> {
    let line = serde_json::to_string(&Event { typ, id, data }).expect("events serialize");
    writeln!(out, "{line}")
        .and_then(|_| out.flush())
        .op("write event")
}

pub fn events(
    root: &Path,
    id: &str,
    stats_only: bool,
    interval: Duration,
    out: &mut dyn Write,
) -> Result<()> {
    hako_spec::id::validate_id(id)?;
    let rec = Store::existing(root).lock(id)?.load()?;
    if status_of(&rec) == Status::Stopped {
        return Err(Error::BadState(format!(
            "container with id {id} is not running"
        )));
    }
    if stats_only {
        return emit(out, "stats", id, Some(stats::collect(&rec.cgroup)));
    }
    let pidfd = init_pidfd(&rec)?;
    // Without a notifier (no memory cgroup of its own, or one the caller may not watch) the
    // stream still carries stats.
    let mut watch = OomWatch::new(&rec.cgroup).unwrap_or_else(|e| {
        crate::log::warn(&format!("events: no OOM notifications: {e}"));
        None
    });
    let mut next = Instant::now() + interval;
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        let (exited, oom) = wait_either(&pidfd, watch.as_ref().map(|w| w.fd()), wait)?;
        // Also after the init exited: the OOM that killed it is signalled before its death.
        if oom || exited {
            for _ in 0..watch.as_mut().map_or(0, |w| w.take()) {
                emit::<()>(out, "oom", id, None)?;
            }
        }
        if exited {
            return Ok(());
        }
        if Instant::now() >= next {
            emit(out, "stats", id, Some(stats::collect(&rec.cgroup)))?;
            next += interval;
        }
    }
}

/// poll(2) on the init's pidfd and the OOM notifier for at most `wait`: (init exited, OOM news).
fn wait_either(
    pidfd: &OwnedFd,
    oom: Option<BorrowedFd<'_>>,
    wait: Duration,
) -> Result<(bool, bool)> {
    let mut fds = [
        libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: oom.map_or(-1, |f| f.as_raw_fd()),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
    loop {
        // SAFETY: `fds` is a valid array of 2 pollfds for the duration of the call; a negative
        // fd is ignored by the kernel.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
        if r < 0 {
            match nix::errno::Errno::last() {
                nix::errno::Errno::EINTR => continue,
                e => return Err(Error::sys("wait for container init", e)),
            }
        }
        return Ok((fds[0].revents != 0, fds[1].revents != 0));
    }
}
