//! Mounts whose source is the host's, which CRIU must not dump but name (runc's scheme, so images
//! are interchangeable): at dump each gets a key, at restore each key is mapped to a host path.
//!
//! | mount | dump key → name | restore name → host path |
//! |---|---|---|
//! | bind mount | destination → destination | destination → source |
//! | masked file (a `/dev/null` bind) | path → `/dev/null` | `/dev/null` → `/dev/null` |
//! | v1/hybrid cgroup binds (no cgroup namespace) | `<dest>/<hierarchy>` → same | → the new container's cgroup directory |
//! | `linux.devices` node | path → path | path → path |

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use hako_spec::oci::{LinuxNamespaceType, Mount, Spec};

use super::rpc::ExtMountMap;
use crate::cgroups::{hierarchies, own_path, Hierarchy};
use crate::error::{Error, Result};
use crate::fs::paths::{clean, Root};

fn map(key: impl Into<String>, val: impl Into<String>) -> ExtMountMap {
    ExtMountMap {
        key: key.into(),
        val: val.into(),
    }
}

fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .any(|o| o == "bind" || o == "rbind")
}

fn is_cgroup(m: &Mount) -> bool {
    matches!(m.typ().as_deref(), Some("cgroup") | Some("cgroup2"))
}

/// The destination as written: absolute and lexically clean.
fn dest(m: &Mount) -> String {
    format!("/{}", clean(m.destination()).to_string_lossy())
}

/// Where a bind's destination really is: a symlink in the image (`/link -> /real`) followed
/// inside `root`, as the mount was made. CRIU finds the mount point `/real` in mountinfo and
/// refused to dump it ("doesn't have a proper root mount") under a key named `/link`; runc 1.3
/// keys it by the resolved path, at dump and at restore alike, so images stay interchangeable.
/// `prefix` is what the resolved fd's path starts with on our side (the rootfs's host path, or
/// `/` for a container's own root, whose paths the kernel shows as the container sees them).
/// A destination that does not resolve keeps its lexical form.
struct Resolver {
    root: Option<Root>,
    prefix: PathBuf,
}

impl Resolver {
    fn new(root: &Path, prefix: &Path) -> Resolver {
        Resolver {
            root: Root::open(root).ok(),
            prefix: prefix.to_path_buf(),
        }
    }

    fn dest(&self, m: &Mount) -> String {
        let lexical = dest(m);
        let Some(root) = &self.root else {
            return lexical;
        };
        let Ok(fd) = root.open_path(Path::new(&lexical)) else {
            return lexical;
        };
        let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        match link.as_deref().map(|l| l.strip_prefix(&self.prefix)) {
            Ok(Ok(rel)) => format!("/{}", rel.to_string_lossy()),
            _ => lexical,
        }
    }
}

fn new_cgroup_ns(spec: &Spec) -> Result<bool> {
    let nss = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    match nss.iter().find(|n| n.typ() == LinuxNamespaceType::Cgroup) {
        // runc: CRIU has no code to join a cgroup namespace.
        Some(n) if n.path().is_some() => Err(Error::Usage(
            "linux.namespaces: a cgroup namespace given by path cannot be checkpointed or restored"
                .into(),
        )),
        Some(_) => Ok(true),
        None => Ok(false),
    }
}

/// The host's hierarchies as hako binds them into a container without a cgroup namespace
/// ([`crate::fs::cgroupfs::mount_in_container`]): one bind at `dest` on pure v2, else one per
/// hierarchy under a tmpfs at `dest`.
fn cgroup_binds(dest: &str) -> Result<Vec<(String, Hierarchy)>> {
    let info = crate::procinfo::mountinfo()?;
    let hs = hierarchies(&info);
    if hs.len() == 1 && hs[0].v2 {
        return Ok(vec![(dest.to_string(), hs[0].clone())]);
    }
    Ok(hs
        .into_iter()
        .filter_map(|h| {
            let name = h.mountpoint.file_name()?.to_string_lossy().into_owned();
            Some((format!("{}/{name}", dest.trim_end_matches('/')), h))
        })
        .collect())
}

/// What `checkpoint` tells CRIU about the container whose init is `pid`.
pub fn for_dump(spec: &Spec, pid: i32) -> Result<Vec<ExtMountMap>> {
    let mut out = Vec::new();
    let cgroupns = new_cgroup_ns(spec)?;
    let inside = Resolver::new(Path::new(&format!("/proc/{pid}/root")), Path::new("/"));
    for m in spec.mounts().as_deref().unwrap_or(&[]) {
        if is_bind(m) {
            let d = inside.dest(m);
            out.push(map(d.clone(), d));
        } else if is_cgroup(m) && !cgroupns {
            for (key, _) in cgroup_binds(&dest(m))? {
                out.push(map(key.clone(), key));
            }
        }
    }
    let linux = spec.linux().as_ref();
    for p in linux
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default()
    {
        // Directories are masked with a tmpfs, which CRIU dumps itself.
        let inside = format!("/proc/{pid}/root/{}", p.trim_start_matches('/'));
        match std::fs::metadata(&inside) {
            Ok(md) if !md.is_dir() => out.push(map(p, "/dev/null")),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("stat masked path", inside, e)),
        }
    }
    for d in linux.and_then(|l| l.devices().clone()).unwrap_or_default() {
        let p = d.path().to_string_lossy().into_owned();
        out.push(map(p.clone(), p));
    }
    Ok(out)
}

/// What `restore` tells CRIU: `criu_cgroup` is `/proc/<criu>/cgroup` once CRIU was moved into the
/// new container's cgroups, whose directories the cgroup binds now point at.
pub fn for_restore(
    spec: &Spec,
    bundle: &Path,
    rootfs: &Path,
    criu_cgroup: &str,
) -> Result<Vec<ExtMountMap>> {
    let mut out = Vec::new();
    let cgroupns = new_cgroup_ns(spec)?;
    let image = Resolver::new(rootfs, rootfs);
    for m in spec.mounts().as_deref().unwrap_or(&[]) {
        if is_bind(m) {
            let Some(src) = m.source().as_ref() else {
                continue;
            };
            let src: PathBuf = if src.is_absolute() {
                src.clone()
            } else {
                bundle.join(src)
            };
            out.push(map(image.dest(m), src.to_string_lossy()));
        } else if is_cgroup(m) && !cgroupns {
            for (key, h) in cgroup_binds(&dest(m))? {
                let rel = own_path(&h, criu_cgroup);
                let src = h
                    .mountpoint
                    .join(rel.strip_prefix("/").unwrap_or(Path::new("")));
                out.push(map(key, src.to_string_lossy()));
            }
        }
    }
    let linux = spec.linux().as_ref();
    if linux
        .and_then(|l| l.masked_paths().as_ref())
        .is_some_and(|m| !m.is_empty())
    {
        out.push(map("/dev/null", "/dev/null"));
    }
    for d in linux.and_then(|l| l.devices().clone()).unwrap_or_default() {
        let p = d.path().to_string_lossy().into_owned();
        out.push(map(p.clone(), p));
    }
    Ok(out)
}

/// Mount points of the config that are missing in the rootfs (a fresh rootfs, as podman's
/// `--import` gives) are made as `create` would, except under a tmpfs, whose contents CRIU
/// restores itself.
pub fn make_mountpoints(spec: &Spec, root: &crate::fs::paths::Root, bundle: &Path) -> Result<()> {
    use crate::fs::paths::Kind;
    let mounts = spec.mounts().as_deref().unwrap_or(&[]);
    let tmpfs: Vec<String> = mounts
        .iter()
        .filter(|m| m.typ().as_deref() == Some("tmpfs"))
        .map(dest)
        .collect();
    for m in mounts {
        let d = dest(m);
        if is_cgroup(m) || tmpfs.iter().any(|t| d.starts_with(&format!("{t}/"))) {
            continue;
        }
        let kind = if is_bind(m) {
            let src = m.source().clone().unwrap_or_default();
            let src = if src.is_absolute() {
                src
            } else {
                bundle.join(src)
            };
            if std::fs::metadata(&src).is_ok_and(|md| !md.is_dir()) {
                Kind::File
            } else {
                Kind::Dir
            }
        } else {
            Kind::Dir
        };
        root.ensure(Path::new(&d), kind)?;
    }
    Ok(())
}
