//! Bind-mount sources of a user-namespace container, opened by the runtime.
//!
//! The init sets its mounts up as the root of the container's user namespace: a source below a
//! directory that uid (a mapped host uid) may not enter cannot even be looked up, though the
//! runtime — real root — was asked to bind it. So, as runc 1.1 does (`mountFds`), the runtime
//! enters the init's new mount namespace, opens every bind source there with O_PATH and hands the
//! fds to the init, which mounts `/proc/self/fd/N` instead of the path.
//!
//! They are opened in the init's mount namespace, not the runtime's: a bind must come from a mount
//! of the namespace it is made in, and binding the init's copy keeps what the kernel locked when it
//! copied the host's mounts for a less privileged user namespace (read-only, nosuid, ... flags the
//! container's root may not clear; mounts it may not lift to look underneath). A detached copy
//! made in the runtime's namespace (`open_tree`) would carry no such locks.
//!
//! The fds are only a fallback: a source the init can reach itself is bound by path when its turn
//! comes (runc 1.2+ asks its parent only for what it cannot stat), so it sees the container's
//! earlier mounts, which the fds, opened before any of them, do not.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use hako_spec::oci::{LinuxNamespaceType, Spec};
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;

use crate::error::{Context, Error, Result};
use crate::init::channel::{Channel, Msg};
use crate::init::namespaces::Plan;

/// The absolute sources of the bind mounts in `mounts[]` that the runtime opens: only when the
/// container gets a new mount namespace inside a user namespace, and only for a real-root runtime
/// (entering the init's mount namespace needs CAP_SYS_ADMIN over its user namespace). Empty
/// otherwise: the init then binds by path, as ever.
pub fn wanted(spec: &Spec, plan: &Plan, bundle: &Path) -> Vec<PathBuf> {
    let joins = |t| plan.join.iter().any(|(jt, _)| *jt == t);
    let userns = plan.new_user || joins(LinuxNamespaceType::User);
    if !userns
        || !plan.private_mount
        || joins(LinuxNamespaceType::Mount)
        || !nix::unistd::geteuid().is_root()
    {
        return vec![];
    }
    let mut out: Vec<PathBuf> = vec![];
    for m in spec.mounts().iter().flatten() {
        let bind = m.typ().as_deref() == Some("bind")
            || m.options()
                .iter()
                .flatten()
                .any(|o| o == "bind" || o == "rbind");
        let Some(src) = m.source().as_ref().filter(|_| bind) else {
            continue;
        };
        let src = if src.is_absolute() {
            src.clone()
        } else {
            bundle.join(src)
        };
        if !out.contains(&src) {
            out.push(src);
        }
    }
    out
}

/// Runtime side: waits for the init to report its new mount namespace, opens `sources` in it,
/// and sends the fds, one message each, in order.
pub fn send(channel: &Channel, init: i32, sources: &[PathBuf]) -> Result<()> {
    match channel.expect("container init")? {
        Msg::MountNsReady => {}
        m => return Err(Error::Init(format!("unexpected message {m:?}"))),
    }
    for fd in open_in_mount_ns_of(init, sources)? {
        channel.send_fd(&Msg::BindSource, fd.as_fd())?;
    }
    Ok(())
}

/// Init side, right after its mount namespace exists: asks for the fds and receives them.
pub fn receive(channel: &Channel, sources: &[PathBuf]) -> Result<Opened> {
    if sources.is_empty() {
        return Ok(Opened(vec![]));
    }
    channel.send(&Msg::MountNsReady)?;
    let mut v = Vec::with_capacity(sources.len());
    for src in sources {
        match channel.recv_fd("runtime")? {
            (Msg::BindSource, fd) => v.push((src.clone(), fd)),
            (m, _) => return Err(Error::Init(format!("unexpected message {m:?}"))),
        }
    }
    Ok(Opened(v))
}

/// O_PATH fds on bind sources, by their absolute source path.
#[derive(Default)]
pub struct Opened(Vec<(PathBuf, OwnedFd)>);

impl Opened {
    pub fn get(&self, src: &Path) -> Option<&OwnedFd> {
        self.0.iter().find(|(p, _)| p == src).map(|(_, fd)| fd)
    }
}

/// setns into `pid`'s mount namespace, open every source with O_PATH, and back. The runtime is
/// single-threaded, as setns(CLONE_NEWNS) requires; entering resets root and cwd, so both come
/// back from fds taken before.
fn open_in_mount_ns_of(pid: i32, sources: &[PathBuf]) -> Result<Vec<OwnedFd>> {
    let own = std::fs::File::open("/proc/self/ns/mnt").ctx("open", "/proc/self/ns/mnt")?;
    let cwd = nix::fcntl::open(
        ".",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx("open", ".")?;
    let theirs_path = format!("/proc/{pid}/ns/mnt");
    let theirs = std::fs::File::open(&theirs_path).ctx("open", &theirs_path)?;
    nix::sched::setns(theirs.as_fd(), CloneFlags::CLONE_NEWNS).ctx("setns", &theirs_path)?;
    let opened = sources
        .iter()
        .map(|src| {
            nix::fcntl::open(src, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
                .ctx("open bind source", src)
        })
        .collect::<Result<Vec<_>>>();
    // Back home whatever happened: everything after this runs in the runtime's namespace.
    nix::sched::setns(own.as_fd(), CloneFlags::CLONE_NEWNS).op("restore mount namespace")?;
    nix::unistd::fchdir(&cwd).op("restore working directory")?;
    opened
}
