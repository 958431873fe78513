//! OOM notifications for `events`, woken by the kernel instead of a timer: on v1 (and the
//! hybrid, whose memory controller is v1) an eventfd registered for `memory.oom_control` through
//! `cgroup.event_control`, as runc's notifyOnOOM; on v2 an inotify watch on `memory.events`
//! whose `oom_kill` counter is read on each change, as runc's notifyOnOOMV2.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use hako_spec::state::CgroupRecord;
use nix::errno::Errno;

use super::manager::write;
use crate::error::{Context, Error, Result};

pub enum OomWatch {
    V1 {
        efd: OwnedFd,
        /// Kept open: the registration lives as long as this fd.
        _control: File,
        dir: PathBuf,
    },
    V2 {
        inotify: OwnedFd,
        dir: PathBuf,
        seen: u64,
    },
}

impl OomWatch {
    /// The watch for the container's memory cgroup; `None` when it has none.
    pub fn new(rec: &CgroupRecord) -> Result<Option<OomWatch>> {
        if rec.layout == "v2" {
            let Some(dir) = rec.unified.clone() else {
                return Ok(None);
            };
            let file = dir.join("memory.events");
            // SAFETY: plain syscall; the fd it returns is owned right below.
            let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
            if fd < 0 {
                return Err(Error::sys("inotify_init1", Errno::last()));
            }
            // SAFETY: `fd` is a new descriptor nothing else owns.
            let inotify = unsafe { OwnedFd::from_raw_fd(fd) };
            let c = std::ffi::CString::new(file.as_os_str().as_encoded_bytes())
                .map_err(|_| Error::path("watch", &file, Errno::EINVAL))?;
            // SAFETY: `c` is a NUL-terminated path that outlives the call.
            let wd = unsafe { libc::inotify_add_watch(fd, c.as_ptr(), libc::IN_MODIFY) };
            if wd < 0 {
                return Err(Error::path("watch", file, Errno::last()));
            }
            let seen = super::stats::oom_kills(rec);
            return Ok(Some(OomWatch::V2 { inotify, dir, seen }));
        }
        let Some(dir) = rec.v1.get("memory").cloned() else {
            return Ok(None);
        };
        let control = File::open(dir.join("memory.oom_control"))
            .ctx("open", dir.join("memory.oom_control"))?;
        // SAFETY: plain syscall; the fd it returns is owned right below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(Error::sys("eventfd", Errno::last()));
        }
        // SAFETY: `fd` is a new descriptor nothing else owns.
        let efd = unsafe { OwnedFd::from_raw_fd(fd) };
        write(
            &dir,
            "cgroup.event_control",
            &format!("{} {}", efd.as_raw_fd(), control.as_raw_fd()),
            "memory.oom_control",
        )?;
        Ok(Some(OomWatch::V1 {
            efd,
            _control: control,
            dir,
        }))
    }

    /// The fd that becomes readable on news.
    pub fn fd(&self) -> BorrowedFd<'_> {
        match self {
            OomWatch::V1 { efd, .. } => efd.as_fd(),
            OomWatch::V2 { inotify, .. } => inotify.as_fd(),
        }
    }

    /// How many OOM events happened since the last call (never blocks).
    pub fn take(&mut self) -> u64 {
        match self {
            OomWatch::V1 { efd, dir, .. } => {
                let mut n = [0u8; 8];
                // SAFETY: reads at most 8 bytes into `n`, which has 8.
                let r = unsafe { libc::read(efd.as_raw_fd(), n.as_mut_ptr().cast(), 8) };
                // The eventfd also fires when the cgroup is removed: that is no OOM (runc).
                if r != 8 || !Path::new(dir).join("cgroup.event_control").exists() {
                    return 0;
                }
                // One event per wake-up, as runc reports them.
                1
            }
            OomWatch::V2 { inotify, dir, seen } => {
                let mut buf = [0u8; 4096];
                // SAFETY: reads at most buf.len() bytes into `buf`. Only drains the queue.
                while unsafe { libc::read(inotify.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) }
                    > 0
                {}
                let rec = CgroupRecord {
                    layout: "v2".into(),
                    unified: Some(dir.clone()),
                    ..Default::default()
                };
                let now = super::stats::oom_kills(&rec);
                let new = now.saturating_sub(*seen);
                *seen = (*seen).max(now);
                new
            }
        }
    }
}
