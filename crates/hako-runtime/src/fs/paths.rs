//! Resolving paths *inside* the container's rootfs. Every lookup goes through openat2 with
//! RESOLVE_IN_ROOT from an fd on the rootfs, so `..` and absolute symlinks in the image are clamped
//! to the rootfs instead of escaping to the host (CVE-2021-30465 and the runc 2019 symlink-exchange
//! attacks). What we mount onto is the fd we resolved, never the path string again.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error::{Context, Result};
use crate::sys::{self, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS};

pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Dir,
    File,
}

/// `/a/./b/../c` → `a/c`: the lexical form used when creating missing components. `..` cannot climb
/// above the root (it is clamped, as RESOLVE_IN_ROOT clamps it at lookup).
pub fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

impl Root {
    pub fn open(path: &Path) -> Result<Root> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx("open rootfs", path)?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub fn host_path(&self, p: &Path) -> PathBuf {
        self.path.join(clean(p))
    }

    /// Opens `p` (container-absolute) as an O_PATH fd, resolved inside the root.
    pub fn open_path(&self, p: &Path) -> std::result::Result<OwnedFd, Errno> {
        self.open_with(p, libc::O_PATH)
    }

    pub fn open_with(&self, p: &Path, flags: i32) -> std::result::Result<OwnedFd, Errno> {
        let rel = clean(p);
        let rel = if rel.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            rel
        };
        sys::openat2(
            self.fd.as_raw_fd(),
            &rel,
            flags,
            0,
            RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        )
    }

    /// Makes sure `p` exists inside the root, creating missing directories (mode 0755) and, when
    /// `kind` is File, an empty regular file as the last component. Returns an O_PATH fd on it.
    pub fn ensure(&self, p: &Path, kind: Kind) -> Result<OwnedFd> {
        self.ensure_depth(p, kind, 0)
    }

    fn ensure_depth(&self, p: &Path, kind: Kind, depth: u32) -> Result<OwnedFd> {
        let rel = clean(p);
        let err = |e| crate::Error::path("create mount point", self.host_path(p), e);
        match self.open_path(&rel) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(err(e)),
        }
        if depth > 40 {
            return Err(err(Errno::ELOOP));
        }
        let comps: Vec<_> = rel.components().collect();
        let mut prefix = PathBuf::new();
        for (i, c) in comps.iter().enumerate() {
            let last = i + 1 == comps.len();
            let parent = self.open_path(&prefix).map_err(err)?;
            let here = prefix.clone();
            prefix.push(c);
            match self.open_path(&prefix) {
                Ok(_) => continue,
                Err(Errno::ENOENT) => {}
                Err(e) => return Err(err(e)),
            }
            let name = Path::new(c.as_os_str());
            // A dangling symlink (`/var/run -> /run` before /run exists): create its target,
            // itself resolved inside the root.
            if let Ok(target) = nix::fcntl::readlinkat(&parent, name) {
                let target = Path::new(&target);
                let dest = if target.is_absolute() {
                    target.to_path_buf()
                } else {
                    here.join(target)
                };
                let k = if last { kind } else { Kind::Dir };
                self.ensure_depth(&Path::new("/").join(dest), k, depth + 1)?;
                continue;
            }
            let made = if last && kind == Kind::File {
                nix::fcntl::openat(
                    &parent,
                    name,
                    OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_WRONLY
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o644),
                )
                .map(drop)
            } else {
                nix::sys::stat::mkdirat(&parent, name, Mode::from_bits_truncate(0o755))
            };
            match made {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(err(e)),
            }
        }
        self.open_path(&rel).map_err(err)
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_clamps_dotdot() {
        assert_eq!(clean(Path::new("/a/./b/../c")), PathBuf::from("a/c"));
        assert_eq!(clean(Path::new("/../../etc")), PathBuf::from("etc"));
        assert_eq!(clean(Path::new("rel/x")), PathBuf::from("rel/x"));
    }

    #[test]
    fn symlinks_stay_inside_root() {
        let dir = std::env::temp_dir().join(format!("hako-paths-{}", std::process::id()));
        let root = dir.join("root");
        let outside = dir.join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("up")).unwrap();
        let r = Root::open(&root).unwrap();
        r.ensure(Path::new("/escape/x"), Kind::Dir).unwrap();
        r.ensure(Path::new("/up/y"), Kind::File).unwrap();
        // The absolute symlink was followed as if the rootfs were '/': inside the root.
        assert!(!outside.join("x").exists());
        assert!(root
            .join(outside.strip_prefix("/").unwrap())
            .join("x")
            .is_dir());
        assert!(root.join("y").is_file());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
