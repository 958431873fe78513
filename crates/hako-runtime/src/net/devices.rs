//! `linux.netDevices` (runtime-spec 1.3): each named host interface is moved into the
//! container's new network namespace, renamed when `name` says so, with its permanent global
//! addresses, and set up, as runc does (libcontainer/network_linux.go). Nothing moves them back
//! (the spec: the runtime MUST NOT; their lifecycle is the namespace owner's): when the
//! namespace goes, the kernel returns physical devices to the host's namespace and destroys
//! virtual ones (veth, macvlan, dummy).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use hako_spec::oci::{LinuxNetDevice, Spec};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;

use super::rtnl::{Addr, Rtnl};
use crate::error::{Context, Error, Result};

/// Whether `create` has devices to move (the init then waits for the runtime after its mounts).
pub fn wanted(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.net_devices().as_ref())
        .is_some_and(|d| !d.is_empty())
}

/// Moves every device of `linux.netDevices` into the network namespace of the init `pid`.
pub fn move_into(spec: &Spec, pid: i32) -> Result<()> {
    let Some(devs) = spec.linux().as_ref().and_then(|l| l.net_devices().clone()) else {
        return Ok(());
    };
    let path = format!("/proc/{pid}/ns/net");
    let target = nix::fcntl::open(
        path.as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx("open", &path)?;
    let own = nix::fcntl::open(
        "/proc/self/ns/net",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx("open", "/proc/self/ns/net")?;
    let mut host = Rtnl::open().map_err(|e| Error::sys("open a netlink socket", e))?;
    // In name order: the spec's map has none, and errors should not depend on hashing.
    let devs: BTreeMap<String, LinuxNetDevice> = devs.into_iter().collect();
    for (host_name, dev) in &devs {
        let field = format!("linux.netDevices[{host_name:?}]");
        let name = dev.name().as_deref().unwrap_or(host_name);
        move_one(&mut host, host_name, name, &target, &own)
            .map_err(|e| Error::Usage(format!("{field}: {e}")))?;
    }
    Ok(())
}

fn index_of(name: &str) -> std::result::Result<i32, String> {
    let c = CString::new(name).map_err(|_| "a name with a NUL byte".to_string())?;
    // SAFETY: c is a NUL-terminated string that outlives the call.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(format!(
            "no network interface {name:?}: {}",
            Errno::last().desc().to_lowercase()
        )),
        i => Ok(i as i32),
    }
}

fn failed(what: &str, e: Errno) -> String {
    format!("{what}: {}", e.desc().to_lowercase())
}

/// Down on the host (nothing there keeps using it meanwhile), its addresses noted, moved and
/// renamed in one request, then addresses and up inside.
fn move_one(
    host: &mut Rtnl,
    host_name: &str,
    name: &str,
    target: &OwnedFd,
    own: &OwnedFd,
) -> std::result::Result<(), String> {
    let index = index_of(host_name)?;
    host.set_up(index, false)
        .map_err(|e| failed("set the link down", e))?;
    let addrs: Vec<Addr> = host
        .addresses(index)
        .map_err(|e| failed("list its addresses", e))?
        .into_iter()
        .filter(Addr::movable)
        .collect();
    // The spec: a name with `%d` is a template the kernel completes; the device is then found
    // as the one link that was not there before.
    let template = name.contains("%d");
    let before = if template {
        in_netns(target, own, links_inside)?
    } else {
        vec![]
    };
    host.move_to(index, name, target.as_raw_fd()).map_err(|e| {
        failed(
            &format!("move it into the container's network namespace as {name:?}"),
            e,
        )
    })?;
    in_netns(target, own, || {
        let mut inside = Rtnl::open().map_err(|e| failed("open a netlink socket", e))?;
        let (index, name) = if template {
            let after = inside.links().map_err(|e| failed("list the links", e))?;
            after
                .into_iter()
                .find(|l| !before.contains(l))
                .ok_or_else(|| format!("moved as {name:?}, then not found"))?
        } else {
            (index_of(name)?, name.to_string())
        };
        for a in &addrs {
            inside
                .add_address(index, a)
                .map_err(|e| failed(&format!("add address {a:?} to {name:?}"), e))?;
        }
        inside
            .set_up(index, true)
            .map_err(|e| failed(&format!("set {name:?} up"), e))
    })
}

fn links_inside() -> std::result::Result<Vec<(i32, String)>, String> {
    Rtnl::open()
        .and_then(|mut r| r.links())
        .map_err(|e| failed("list the container's links", e))
}

/// Runs `f` in the network namespace `target` and comes back to `own`: the runtime is
/// single-threaded, so setns moves all of it, and only for this while.
fn in_netns<T>(
    target: &OwnedFd,
    own: &OwnedFd,
    f: impl FnOnce() -> std::result::Result<T, String>,
) -> std::result::Result<T, String> {
    nix::sched::setns(target.as_fd(), CloneFlags::CLONE_NEWNET)
        .map_err(|e| failed("enter the container's network namespace", e))?;
    let r = f();
    nix::sched::setns(own.as_fd(), CloneFlags::CLONE_NEWNET)
        .map_err(|e| failed("return to the runtime's network namespace", e))?;
    r
}
