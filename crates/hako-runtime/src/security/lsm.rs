//! AppArmor profile and SELinux process label, applied on exec: both are "change on the next
//! execve" attributes of the calling thread, written just before execve like runc does.
//!
//! The attribute files are opened through the process's own procfs and checked to *be* procfs
//! files: a file the container put in their place (a bind over /proc/self/attr, the
//! CVE-2025-52881 class) would take the label and leave the process unconfined. support.rs has
//! already refused an AppArmor profile the host cannot apply; an SELinux label without SELinux
//! is ignored.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use hako_spec::oci::Process;

use crate::error::{Context, Error, Result};

fn write_attr(candidates: &[&str], value: &str) -> Result<()> {
    let mut last = None;
    for path in candidates {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(path);
        let mut f = match f {
            Ok(f) => f,
            Err(e) => {
                last = Some((path, e));
                continue;
            }
        };
        let fs = nix::sys::statfs::fstatfs(&f).ctx("statfs", path)?;
        if fs.filesystem_type().0 as i64 != crate::sys::PROC_SUPER_MAGIC {
            return Err(Error::Usage(format!(
                "{path}: not a procfs file; refusing to write a security label there"
            )));
        }
        return f.write_all(value.as_bytes()).ctx("write", path);
    }
    match last {
        Some((path, e)) => Err(Error::io("open", path, e)),
        None => Ok(()),
    }
}

/// The labels a process execs into, chosen by the runtime: an empty string is none, and an
/// SELinux label on a host without SELinux is left out (support.rs).
#[derive(Debug, Clone, Default)]
pub struct Labels {
    apparmor: Option<String>,
    selinux: Option<String>,
}

impl Labels {
    pub fn of(p: &Process) -> Labels {
        let set = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        Labels {
            apparmor: set(p.apparmor_profile()),
            selinux: set(p.selinux_label())
                .filter(|_| crate::container::support::selinux_enabled()),
        }
    }

    /// Written last before execve: both take effect on the next execve of this thread.
    pub fn apply(&self) -> Result<()> {
        if let Some(profile) = &self.apparmor {
            // The LSM-specific directory (Linux ≥ 5.8) first; the shared one on older kernels.
            write_attr(
                &[
                    "/proc/thread-self/attr/apparmor/exec",
                    "/proc/thread-self/attr/exec",
                ],
                &format!("exec {profile}"),
            )?;
        }
        if let Some(label) = &self.selinux {
            write_attr(&["/proc/thread-self/attr/exec"], label)?;
        }
        Ok(())
    }
}
