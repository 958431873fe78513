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

/// What the runtime opens or makes in the init's mount namespace: bind sources ([`wanted`]) and
/// idmapped mounts ([`crate::fs::idmapped::plan`]).
pub struct Asked<'a> {
    pub sources: &'a [PathBuf],
    pub idmapped: &'a [crate::fs::idmapped::Wanted],
}

impl Asked<'_> {
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty() && self.idmapped.is_empty()
    }
}

/// Runtime side, once the init reported its new mount namespace: opens the sources and makes
/// the idmapped mounts in it, in the order asked; the caller sends them. `userns` are the
/// idmapped mounts' user namespaces, opened before (a helper namespace is forked from the
/// runtime's own mount namespace, not the init's).
pub fn open(
    init: i32,
    asked: &Asked,
    userns: &crate::fs::idmapped::Userns,
) -> Result<(Vec<OwnedFd>, Vec<OwnedFd>)> {
    in_mount_ns_of(init, || {
        let opened = asked
            .sources
            .iter()
            .map(|src| {
                nix::fcntl::open(src, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
                    .ctx("open bind source", src)
            })
            .collect::<Result<Vec<_>>>()?;
        let trees = crate::fs::idmapped::make_all(asked.idmapped, userns)?;
        Ok((opened, trees))
    })
}

/// O_PATH fds on bind sources, by their absolute source path, and the detached idmapped mounts,
/// by their index in `mounts[]`.
#[derive(Default)]
pub struct Opened {
    sources: Vec<(PathBuf, OwnedFd)>,
    idmapped: Vec<(usize, OwnedFd)>,
}

impl Opened {
    /// The fds the runtime sent for `asked` ([`open`]), in its order.
    pub fn new(asked: &Asked, sources: Vec<OwnedFd>, idmapped: Vec<OwnedFd>) -> Opened {
        Opened {
            sources: asked.sources.iter().cloned().zip(sources).collect(),
            idmapped: asked
                .idmapped
                .iter()
                .map(|w| w.index)
                .zip(idmapped)
                .collect(),
        }
    }

    pub fn get(&self, src: &Path) -> Option<&OwnedFd> {
        self.sources
            .iter()
            .find(|(p, _)| p == src)
            .map(|(_, fd)| fd)
    }

    pub fn idmapped(&self, index: usize) -> Option<&OwnedFd> {
        self.idmapped
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, fd)| fd)
    }
}

/// setns into `pid`'s mount namespace, run `f` there, and back. The runtime is single-threaded,
/// as setns(CLONE_NEWNS) requires; entering resets root and cwd, so both come back from fds taken
/// before.
fn in_mount_ns_of<T>(pid: i32, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let own = std::fs::File::open("/proc/self/ns/mnt").ctx("open", "/proc/self/ns/mnt")?;
    let cwd = nix::fcntl::open(
        ".",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx("open", ".")?;
    let theirs_path = format!("/proc/{pid}/ns/mnt");
    let theirs = std::fs::File::open(&theirs_path).ctx("open", &theirs_path)?;
    // Entering our own namespace is what coming back takes: a runtime that is root only in a user
    // namespace but runs in a mount namespace of its parent's (`unshare -U` without `-m`) could
    // go but not return. Refused here, with why, before it goes.
    nix::sched::setns(own.as_fd(), CloneFlags::CLONE_NEWNS).map_err(|e| {
        Error::Usage(format!(
            "the runtime could not enter the container's mount namespace and return to its own: \
             setns /proc/self/ns/mnt: {} (a runtime in a user namespace needs a mount namespace \
             of that user namespace, as rootless podman gives it)",
            crate::error::errno_text(e)
        ))
    })?;
    nix::sched::setns(theirs.as_fd(), CloneFlags::CLONE_NEWNS).ctx("setns", &theirs_path)?;
    let r = f();
    // Back home whatever happened: everything after this runs in the runtime's namespace.
    nix::sched::setns(own.as_fd(), CloneFlags::CLONE_NEWNS).op("restore mount namespace")?;
    nix::unistd::fchdir(&cwd).op("restore working directory")?;
    r
}
