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
        // The deepest ancestor that resolves (usually the parent), found from the bottom up:
        // every name below it is missing or a dangling symlink.
        let mut have = comps.len().saturating_sub(1);
        let parent = loop {
            let prefix: PathBuf = comps[..have].iter().collect();
            match self.open_path(&prefix) {
                Ok(fd) => break fd,
                Err(Errno::ENOENT) if have > 0 => have -= 1,
                Err(e) => return Err(err(e)),
            }
        };
        self.make_below(p, kind, depth, have, parent)
    }

    /// [`Root::ensure`] of `p`, known to be missing, whose deepest existing ancestor `ancestor`
    /// (container-absolute, resolved inside the root like everything here) is open as `fd`:
    /// what a caller that probed the path already knows is not looked up again.
    pub fn ensure_below(
        &self,
        p: &Path,
        kind: Kind,
        ancestor: &Path,
        fd: OwnedFd,
    ) -> Result<OwnedFd> {
        let have = clean(ancestor).components().count();
        if !clean(p).starts_with(clean(ancestor)) || have >= clean(p).components().count() {
            return self.ensure(p, kind);
        }
        self.make_below(p, kind, 0, have, fd)
    }

    /// Creates the components of `p` from index `have` on, `parent` being the directory of the
    /// first of them.
    fn make_below(
        &self,
        p: &Path,
        kind: Kind,
        depth: u32,
        have: usize,
        mut parent: OwnedFd,
    ) -> Result<OwnedFd> {
        let rel = clean(p);
        let err = |e| crate::Error::path("create mount point", self.host_path(p), e);
        let comps: Vec<_> = rel.components().collect();
        let mut prefix: PathBuf = comps[..have].iter().collect();
        // Set once we made a directory: nothing else is in it, so no name there is a symlink.
        let mut fresh = false;
        for (i, c) in comps.iter().enumerate().skip(have) {
            let last = i + 1 == comps.len();
            let here = prefix.clone();
            prefix.push(c);
            let name = Path::new(c.as_os_str());
            // A dangling symlink (`/var/run -> /run` before /run exists): create its target,
            // itself resolved inside the root.
            let link = if fresh {
                None
            } else {
                nix::fcntl::readlinkat(&parent, name).ok()
            };
            if let Some(target) = link {
                let target = Path::new(&target);
                let dest = if target.is_absolute() {
                    target.to_path_buf()
                } else {
                    here.join(target)
                };
                let k = if last { kind } else { Kind::Dir };
                self.ensure_depth(&Path::new("/").join(dest), k, depth + 1)?;
            } else {
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
                    Ok(()) => fresh = true,
                    Err(Errno::EEXIST) => {}
                    Err(e) => return Err(err(e)),
                }
            }
            if !last {
                // Resolved from the root again, never from the name just made: a symlink swapped
                // in meanwhile is followed inside the root like any other.
                parent = self.open_path(&prefix).map_err(err)?;
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

    #[test]
    fn ensure_makes_missing_levels_and_dangling_link_targets() {
        let dir = std::env::temp_dir().join(format!("hako-paths-deep-{}", std::process::id()));
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("var")).unwrap();
        // A dangling absolute link, and a relative one whose target is two levels down.
        std::os::unix::fs::symlink("/run", root.join("var/run")).unwrap();
        std::os::unix::fs::symlink("deep/er", root.join("rel")).unwrap();
        let r = Root::open(&root).unwrap();
        r.ensure(Path::new("/a/b/c"), Kind::Dir).unwrap();
        r.ensure(Path::new("/var/run/lock/f"), Kind::File).unwrap();
        r.ensure(Path::new("/rel/x"), Kind::Dir).unwrap();
        assert!(root.join("a/b/c").is_dir());
        assert!(root.join("run/lock/f").is_file());
        assert!(root.join("deep/er/x").is_dir());
        // Existing: the same object, nothing new.
        r.ensure(Path::new("/a/b"), Kind::File).unwrap();
        assert!(root.join("a/b").is_dir());
        // From an ancestor a probe already opened; one that is not an ancestor is ignored.
        let a = r.open_path(Path::new("/a")).unwrap();
        r.ensure_below(Path::new("/a/n/m"), Kind::Dir, Path::new("/a"), a)
            .unwrap();
        assert!(root.join("a/n/m").is_dir());
        let a = r.open_path(Path::new("/a")).unwrap();
        r.ensure_below(Path::new("/z/y"), Kind::File, Path::new("/a"), a)
            .unwrap();
        assert!(root.join("z/y").is_file() && !root.join("a/z").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
