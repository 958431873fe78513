use std::path::PathBuf;

use nix::errno::Errno;

/// hako-runtime's one error type. Every variant that touches the kernel carries the operation, the
/// path or object, and the errno, so the single line a caller sees is enough to act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Spec(#[from] hako_spec::SpecError),
    #[error("{op} {}: {}", path.display(), errno_text(*errno))]
    Path {
        op: &'static str,
        path: PathBuf,
        errno: Errno,
    },
    #[error("{op}: {}", errno_text(*errno))]
    Sys { op: String, errno: Errno },
    #[error("{op} {}: {}", path.display(), hako_spec::error::io_text(source))]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// runc's words: callers and scripts match "failed to connect with seccomp agent".
    #[error(
        "failed to connect with seccomp agent specified in the seccomp profile: dial unix {}: connect: {}",
        path.display(),
        hako_spec::error::io_text(source)
    )]
    SeccompAgent {
        path: PathBuf,
        source: std::io::Error,
    },
    /// runc's words (scripts match the whole text; the id is the caller's own argument).
    #[error("container does not exist")]
    NotExist(String),
    #[error("container with given ID already exists")]
    Exists(String),
    #[error("container not running")]
    NotRunning,
    #[error("{0}")]
    BadState(String),
    #[error("{0}")]
    Usage(String),
    /// A failure reported by the container init (or an exec'd process) before it ran user code.
    #[error("{0}")]
    Init(String),
    #[error("{0}")]
    Hook(String),
    /// The systemd cgroup driver: the bus or systemd refused, with the unit named.
    #[error("{0}")]
    Systemd(String),
}

/// "operation not permitted", "no such file or directory": Go's lowercase strerror, which is what
/// callers of runc match on.
pub fn errno_text(e: Errno) -> String {
    e.desc().to_lowercase()
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn path(op: &'static str, path: impl Into<PathBuf>, errno: Errno) -> Self {
        Error::Path {
            op,
            path: path.into(),
            errno,
        }
    }
    pub fn sys(op: impl Into<String>, errno: Errno) -> Self {
        Error::Sys {
            op: op.into(),
            errno,
        }
    }
    /// A refusal for lack of privilege (EACCES, EPERM, EROFS), however it was reported.
    pub fn is_permission(&self) -> bool {
        let denied = |e: Errno| matches!(e, Errno::EACCES | Errno::EPERM | Errno::EROFS);
        match self {
            Error::Path { errno, .. } | Error::Sys { errno, .. } => denied(*errno),
            Error::Io { source, .. } => source
                .raw_os_error()
                .is_some_and(|r| denied(Errno::from_raw(r))),
            // cgroup file writes report the field and the kernel's words.
            Error::Usage(m) => {
                m.ends_with(": permission denied")
                    || m.ends_with(": operation not permitted")
                    || m.ends_with(": read-only file system")
            }
            _ => false,
        }
    }
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// `result.ctx("mount", path)?`: attach the operation and the path to an errno.
pub trait Context<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
    fn op(self, op: impl Into<String>) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, Errno> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::path(op, path, e))
    }
    fn op(self, op: impl Into<String>) -> Result<T> {
        self.map_err(|e| Error::sys(op, e))
    }
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
    fn op(self, op: impl Into<String>) -> Result<T> {
        self.map_err(|e| Error::Sys {
            op: op.into(),
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        })
    }
}
