//! `process.user`: the ids and groups the process runs as and its umask. The runtime decides
//! whether setgroups(2) is allowed (a user namespace whose gid map was written after
//! `setgroups` was denied forbids it); the process switches with keepcaps so that
//! [`super::caps::apply`] can then set exactly the configured sets for a non-zero uid.

use hako_spec::oci::Process;
use nix::unistd::{Gid, Uid};

use crate::error::{Context, Error, Result};

#[derive(Debug, Clone, Default)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: u32,
    pub setgroups_allowed: bool,
}

impl User {
    pub fn of(p: &Process) -> User {
        let u = p.user();
        User {
            uid: u.uid(),
            gid: u.gid(),
            additional_gids: u.additional_gids().clone().unwrap_or_default(),
            umask: u.umask().unwrap_or(0o022),
            setgroups_allowed: true,
        }
    }

    /// setgroups, setresgid, setresuid. With `keep_caps` the permitted set survives the switch
    /// to a non-zero uid.
    pub fn switch(&self, keep_caps: bool) -> Result<()> {
        if keep_caps {
            nix::sys::prctl::set_keepcaps(true).op("prctl(PR_SET_KEEPCAPS)")?;
        }
        if self.setgroups_allowed {
            self.set_groups()?;
        }
        let gid = Gid::from_raw(self.gid);
        nix::unistd::setresgid(gid, gid, gid).op(format!("setresgid {}", self.gid))?;
        let uid = Uid::from_raw(self.uid);
        nix::unistd::setresuid(uid, uid, uid).op(format!("setresuid {}", self.uid))?;
        if keep_caps {
            nix::sys::prctl::set_keepcaps(false).op("prctl(PR_SET_KEEPCAPS)")?;
        }
        Ok(())
    }

    fn set_groups(&self) -> Result<()> {
        let groups: Vec<Gid> = self
            .additional_gids
            .iter()
            .map(|g| Gid::from_raw(*g))
            .collect();
        match nix::unistd::setgroups(&groups) {
            Ok(()) => Ok(()),
            // A user namespace whose setgroups is denied, which the runtime did not create (root
            // only there, as under rootless podman): runc leaves the groups then, and only
            // refuses supplementary groups that were asked for.
            Err(nix::errno::Errno::EPERM)
                if groups.is_empty()
                    && std::fs::read_to_string("/proc/self/setgroups")
                        .is_ok_and(|s| s.trim() == "deny") =>
            {
                Ok(())
            }
            Err(e) => Err(Error::sys("setgroups", e)),
        }
    }

    pub fn set_umask(&self) {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(
            self.umask as libc::mode_t,
        ));
    }
}
