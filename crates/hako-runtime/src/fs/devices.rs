//! Device nodes in the container's /dev: runc's default set plus `linux.devices`, and the /dev
//! symlinks every container expects.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use hako_spec::oci::{LinuxDevice, LinuxDeviceType};
use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sys::stat::{makedev, mknodat, Mode, SFlag};
use nix::unistd::{fchownat, Gid, Uid};

use crate::error::{Context, Error, Result};
use crate::fs::paths::{Kind, Root};

#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub path: PathBuf,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The devices every container gets (runc's AllowedDevices with a node), before `linux.devices`.
pub fn defaults() -> Vec<Device> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .into_iter()
    .map(|(n, major, minor)| Device {
        path: Path::new("/dev").join(n),
        kind: SFlag::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

pub fn from_spec(d: &LinuxDevice) -> Device {
    let kind = match d.typ() {
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        _ => SFlag::S_IFCHR,
    };
    Device {
        path: d.path().clone(),
        kind,
        major: d.major() as u64,
        minor: d.minor() as u64,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    }
}

/// Default devices with `linux.devices` overriding the entry of the same path.
pub fn wanted(spec: &[LinuxDevice]) -> Vec<Device> {
    let mut all = defaults();
    for d in spec.iter().map(from_spec) {
        all.retain(|x| x.path != d.path);
        all.push(d);
    }
    all
}

/// Creates the nodes. In a user namespace mknod is refused, so (like runc) the host's node is
/// bind-mounted instead.
pub fn create(root: &Root, devices: &[Device], in_userns: bool) -> Result<()> {
    // The directory of the previous node: the defaults all go into /dev, resolved once.
    let mut last: Option<(&Path, OwnedFd)> = None;
    for d in devices {
        let shown = root.host_path(&d.path);
        let parent = d.path.parent().unwrap_or(Path::new("/"));
        let name = d
            .path
            .file_name()
            .ok_or_else(|| Error::path("create device", &shown, Errno::EINVAL))?;
        let dir = match last.take() {
            Some((p, fd)) if p == parent => fd,
            _ => root.ensure(parent, Kind::Dir)?,
        };
        let dir = &last.insert((parent, dir)).1;
        let bind_host = || -> Result<()> {
            let target = root.ensure(&d.path, Kind::File)?;
            let host = d.path.to_string_lossy();
            nix::mount::mount(
                Some(host.as_ref()),
                crate::sys::fd_path(target.as_raw_fd()).as_str(),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .ctx("bind device", &shown)
        };
        if in_userns {
            bind_host()?;
            continue;
        }
        let dev = makedev(d.major, d.minor);
        match mknodat(dir, name, d.kind, Mode::from_bits_truncate(d.mode), dev) {
            Ok(()) => {}
            // A node already in the image (e.g. a /dev that is not a tmpfs) is kept, as runc does.
            Err(Errno::EEXIST) => continue,
            // Root only inside a user namespace it did not create (rootless podman runs the
            // runtime so): no mknod there either, so the host's node, as runc does.
            Err(Errno::EPERM) => {
                bind_host()?;
                continue;
            }
            Err(e) => return Err(Error::path("mknod", shown, e)),
        }
        chown_at(dir, name.as_ref(), d.uid, d.gid).ctx("chown device", &shown)?;
    }
    Ok(())
}

fn chown_at(dir: &OwnedFd, name: &Path, uid: u32, gid: u32) -> std::result::Result<(), Errno> {
    fchownat(
        dir,
        name,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
}

/// /dev/fd, /dev/std{in,out,err}, /dev/ptmx → pts/ptmx, and /dev/core when the host has kcore.
pub fn symlinks(root: &Root) -> Result<()> {
    let dev = root.ensure(Path::new("/dev"), Kind::Dir)?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        match nix::unistd::symlinkat(target, &dev, name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => {
                return Err(Error::path(
                    "symlink",
                    root.host_path(&Path::new("/dev").join(name)),
                    e,
                ))
            }
        }
    }
    // A /dev/ptmx node from the image would reach the host's pty instance; the container's own
    // devpts instance is the only one it may use.
    match nix::unistd::unlinkat(&dev, "ptmx", nix::unistd::UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => {
            return Err(Error::path(
                "remove",
                root.host_path(Path::new("/dev/ptmx")),
                e,
            ))
        }
    }
    nix::unistd::symlinkat("pts/ptmx", &dev, "ptmx")
        .ctx("symlink", root.host_path(Path::new("/dev/ptmx")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_devices_override_defaults() {
        let d: LinuxDevice = serde_json::from_str(
            r#"{"path":"/dev/null","type":"c","major":1,"minor":3,"fileMode":384,"uid":5,"gid":6}"#,
        )
        .unwrap();
        let w = wanted(&[d]);
        assert_eq!(w.len(), 6);
        let null = w.iter().find(|x| x.path == Path::new("/dev/null")).unwrap();
        assert_eq!((null.mode, null.uid, null.gid), (0o600, 5, 6));
    }
}
