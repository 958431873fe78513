//! Container records under `--root`: `<root>/<id>/state.json`, written atomically (temp file +
//! rename), one flock per container directory so concurrent commands on one id serialize.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use hako_spec::state::ContainerRecord;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;

use crate::error::{Context, Error, Result};

pub const STATE_FILE: &str = "state.json";
/// The unix socket the created init listens on; `start` connects to it.
pub const START_SOCKET: &str = "start.sock";

pub struct Store {
    root: PathBuf,
}

/// A container directory held under its exclusive lock (released on drop).
pub struct Locked {
    pub id: String,
    pub dir: PathBuf,
    _lock: Flock<OwnedFd>,
}

impl Store {
    /// Opens (creating, mode 0700) the state root.
    pub fn open(root: &Path) -> Result<Store> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .ctx("create state root", root)?;
        let probe = root.join(".hako-probe");
        // Fail now, naming --root, rather than half-way through a create.
        nix::unistd::access(root, nix::unistd::AccessFlags::W_OK)
            .ctx("state root not writable", root)?;
        let _ = probe;
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    /// Opens the store without creating it: read-only commands on a missing root see no containers.
    pub fn existing(root: &Path) -> Store {
        Store {
            root: root.to_path_buf(),
        }
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Claims `id`: mkdir is atomic, so two concurrent creates of one id cannot both succeed.
    pub fn create(&self, id: &str) -> Result<Locked> {
        let dir = self.dir(id);
        match std::fs::DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::Exists(id.to_string()))
            }
            Err(e) => return Err(Error::io("create container state dir", dir, e)),
        }
        self.lock_dir(id, dir)
    }

    pub fn lock(&self, id: &str) -> Result<Locked> {
        let dir = self.dir(id);
        if !dir.join(STATE_FILE).exists() {
            return Err(Error::NotExist(id.to_string()));
        }
        self.lock_dir(id, dir)
    }

    /// Locks `id`'s directory whether or not it has a record yet (`delete` of what a create
    /// killed between claiming the id and writing its record left). Waits while a live create
    /// holds it.
    pub fn lock_claimed(&self, id: &str) -> Result<Locked> {
        self.lock_dir(id, self.dir(id))
    }

    /// Reads `id`'s record without the lock: records are replaced by rename, so a reader sees
    /// the old one or the new one, never a torn one (`state` of a container whose create is
    /// still running must not wait for it).
    pub fn read(&self, id: &str) -> Result<ContainerRecord> {
        let p = self.dir(id).join(STATE_FILE);
        let text = std::fs::read(&p).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotExist(id.to_string()),
            _ => Error::io("read", p.clone(), e),
        })?;
        serde_json::from_slice(&text)
            .map_err(|e| Error::BadState(format!("{}: corrupt state: {e}", p.display())))
    }

    fn lock_dir(&self, id: &str, dir: PathBuf) -> Result<Locked> {
        let fd = nix::fcntl::open(
            &dir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            if e == Errno::ENOENT {
                Error::NotExist(id.to_string())
            } else {
                Error::path("open", &dir, e)
            }
        })?;
        let lock = Flock::lock(fd, FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::path("lock", &dir, e))?;
        Ok(Locked {
            id: id.to_string(),
            dir,
            _lock: lock,
        })
    }

    /// Ids with a state record, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join(STATE_FILE).exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        ids
    }
}

impl Locked {
    pub fn load(&self) -> Result<ContainerRecord> {
        let p = self.dir.join(STATE_FILE);
        let text = std::fs::read(&p).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotExist(self.id.clone()),
            _ => Error::io("read", p.clone(), e),
        })?;
        serde_json::from_slice(&text)
            .map_err(|e| Error::BadState(format!("{}: corrupt state: {e}", p.display())))
    }

    pub fn save(&self, rec: &ContainerRecord) -> Result<()> {
        self.write_as(rec, ".state.json.tmp")?.commit()
    }

    /// Writes `rec` now under a name no reader looks at; [`Staged::commit`] puts it in place
    /// later with one rename. `create` writes its next record while the init sets up on the
    /// other CPU, so only the rename is left between the init's `Created` and its release. A
    /// runtime killed in between leaves the staged file in the directory `delete` removes.
    pub fn stage(&self, rec: &ContainerRecord) -> Result<Staged> {
        self.write_as(rec, ".state.json.next")
    }

    fn write_as(&self, rec: &ContainerRecord, name: &str) -> Result<Staged> {
        let tmp = self.dir.join(name);
        let text = serde_json::to_vec(rec).expect("record serializes");
        std::fs::write(&tmp, text).ctx("write", &tmp)?;
        Ok(Staged {
            tmp,
            path: self.dir.join(STATE_FILE),
        })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Lets the lock go while the command waits on the container's processes: they may be frozen
    /// (a paused container), and `resume`, `kill` and `delete --force` must get through meanwhile.
    pub fn unlock(self) -> Unlocked {
        Unlocked {
            id: self.id,
            dir: self.dir,
        }
    }

    /// Removes the directory, never anything beyond it. `restore` binds the rootfs at
    /// `criu-root` in here for CRIU, and a restore killed meanwhile leaves it mounted: a
    /// recursive removal would go through that mount and empty the bundle's rootfs. Whatever is
    /// mounted on an entry was mounted by us and is detached; directories (only `criu-root`) are
    /// removed only when empty, so nothing else is ever deleted through one.
    pub fn remove(self) -> Result<()> {
        let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if gone(&e) => return Ok(()),
            Err(e) => return Err(Error::io("remove", self.dir.clone(), e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("remove", self.dir.clone(), e))?;
            let p = entry.path();
            let r = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                detach_all(&p);
                std::fs::remove_dir(&p)
            } else {
                std::fs::remove_file(&p)
            };
            match r {
                Err(e) if !gone(&e) => return Err(Error::io("remove", p, e)),
                _ => {}
            }
        }
        match std::fs::remove_dir(&self.dir) {
            Err(e) if !gone(&e) => Err(Error::io("remove", self.dir.clone(), e)),
            _ => Ok(()),
        }
    }

    pub fn lock_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self._lock.as_fd()
    }
}

/// Unmounts everything stacked on `dir` (EINVAL once nothing is).
fn detach_all(dir: &Path) {
    while nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH).is_ok() {}
}

/// A record written by [`Locked::stage`], not yet the container's.
#[must_use = "a staged record is not the container's until committed"]
pub struct Staged {
    tmp: PathBuf,
    path: PathBuf,
}

impl Staged {
    /// Makes the staged record the container's (atomically: readers see the old or the new).
    pub fn commit(self) -> Result<()> {
        // The old record is swapped to the temporary name, not unlinked: a rename over an
        // existing file costs ext4 (auto_da_alloc) a flush of the new one and the eviction of
        // the old one, 0.1-0.3 ms here (with the init waiting on it after `Created`); the
        // exchange costs tens of microseconds. The old record stays under that name, which no
        // reader looks at, until the next save or `delete` (the directory goes whole).
        let cwd = nix::fcntl::AT_FDCWD;
        match nix::fcntl::renameat2(
            cwd,
            &self.tmp,
            cwd,
            &self.path,
            nix::fcntl::RenameFlags::RENAME_EXCHANGE,
        ) {
            Ok(()) => return Ok(()),
            // No record yet, or a filesystem without exchange: a plain rename.
            Err(Errno::ENOENT | Errno::EINVAL | Errno::ENOSYS) => {}
            Err(e) => return Err(Error::path("rename", &self.path, e)),
        }
        std::fs::rename(&self.tmp, &self.path).ctx("rename", &self.path)
    }
}

/// A container directory whose lock was let go by [`Locked::unlock`].
pub struct Unlocked {
    pub id: String,
    pub dir: PathBuf,
}

impl Unlocked {
    /// Takes the lock again; `NotExist` when the container was deleted meanwhile.
    pub fn lock(&self) -> Result<Locked> {
        let root = self.dir.parent().unwrap_or(Path::new("/"));
        Store::existing(root).lock(&self.id)
    }
}

/// Writes `text` to `path` atomically (temp file in the same directory, then rename), as the pid
/// file contract requires: a reader never sees a partial pid.
pub fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    std::fs::write(&tmp, text).ctx("write", &tmp)?;
    std::fs::rename(&tmp, path).ctx("rename", path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hako_spec::state::Status;

    fn record(status: &str) -> ContainerRecord {
        serde_json::from_value(serde_json::json!({
            "id": "c", "pid": 0, "init_start_time": 0, "status": status, "bundle": "/b",
            "rootfs": "/b/rootfs", "created": "", "owner": "", "private_pid_ns": true,
            "config": {"ociVersion": "1.0.2"},
        }))
        .unwrap()
    }

    /// A staged record becomes the container's only when committed (by exchange over an
    /// existing one, by rename when there is none), and saves replace it the same way, also
    /// when an exchanged-out record sits under their temporary name.
    #[test]
    fn staged_record_is_committed_whole() {
        let root = std::env::temp_dir().join(format!("hako-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let store = Store::open(&root).unwrap();
        let lock = store.create("c").unwrap();
        // No record yet: the commit is a plain rename.
        lock.stage(&record("creating")).unwrap().commit().unwrap();
        assert_eq!(store.read("c").unwrap().status, Status::Creating);
        let staged = lock.stage(&record("running")).unwrap();
        assert_eq!(store.read("c").unwrap().status, Status::Creating);
        staged.commit().unwrap();
        assert_eq!(store.read("c").unwrap().status, Status::Running);
        // Exchanged, not renamed over: the old record sits under the staged name, which no
        // reader looks at (the rename over it cost ext4 a flush and an eviction).
        let old: ContainerRecord =
            serde_json::from_slice(&std::fs::read(lock.path(".state.json.next")).unwrap()).unwrap();
        assert_eq!(old.status, Status::Creating);
        lock.save(&record("created")).unwrap();
        assert_eq!(lock.load().unwrap().status, Status::Created);
        let old: ContainerRecord =
            serde_json::from_slice(&std::fs::read(lock.path(".state.json.tmp")).unwrap()).unwrap();
        assert_eq!(old.status, Status::Running);
        lock.save(&record("stopped")).unwrap();
        assert_eq!(lock.load().unwrap().status, Status::Stopped);
        lock.remove().unwrap();
        assert!(store.ids().is_empty());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
