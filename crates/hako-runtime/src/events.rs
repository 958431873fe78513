//! `events`: runc's envelope `{"type":"stats"|"oom","id":ID,"data":…}`, one JSON object per line.
//!
//! Streaming stays single-threaded: one poll on a pidfd of the init with a short timeout. Each
//! wake-up compares the memory cgroup's OOM-kill counter with the last one seen (an OOM event per
//! increase) and prints stats when the interval has passed; the init exiting ends the stream.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use hako_spec::state::Status;
use serde::Serialize;

use crate::cgroups::stats;
use crate::container::{init_pidfd, status_of};
use crate::error::{Context, Error, Result};
use crate::store::Store;

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

/// How often the OOM counter is looked at while streaming.
const OOM_POLL: Duration = Duration::from_millis(100);

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
    let mut ooms = stats::oom_kills(&rec.cgroup);
    let mut next = Instant::now() + interval;
    loop {
        let wait = next.saturating_duration_since(Instant::now()).min(OOM_POLL);
        let exited = crate::sys::pidfd_wait(&pidfd, wait.as_millis() as i32)
            .op("wait for container init")?;
        let now = stats::oom_kills(&rec.cgroup);
        for _ in ooms..now {
            emit::<()>(out, "oom", id, None)?;
        }
        ooms = ooms.max(now);
        if exited {
            return Ok(());
        }
        if Instant::now() >= next {
            emit(out, "stats", id, Some(stats::collect(&rec.cgroup)))?;
            next += interval;
        }
    }
}
