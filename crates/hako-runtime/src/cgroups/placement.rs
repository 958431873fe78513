//! The placement phase of a container's first process, shared by `create` (the init) and
//! `restore` (CRIU, which restores the processes in the cgroups it runs in): the systemd unit
//! when one is asked for (systemd makes its cgroup with the process in it), the directories,
//! their limits, then the process's move, in the way the caller's process can take it.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use hako_spec::oci::Spec;

use super::manager::{Cgroups, Part};
use crate::error::Result;

/// How the process gets into the directories once they exist and are limited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Join {
    /// It does not exist yet: it is born in the v2 directory (clone3's CLONE_INTO_CGROUP, no
    /// migration), whose fd [`Joined::BornIn`] carries.
    BornIn,
    /// The runtime writes its pid to every directory (systemd's, restore's CRIU).
    Procs,
    /// It moves itself into the v1 hierarchies through their `tasks` files
    /// ([`Cgroups::open_tasks`]); the v2 directory gets its pid unless it was born there.
    SelfTasks { born_in_unified: bool },
}

pub enum Joined {
    /// No cgroups (none planned, or a rootless runtime was refused them).
    Nothing,
    BornIn(OwnedFd),
    /// Joined by the runtime, but for these `tasks` files the process writes itself.
    Tasks(Vec<(PathBuf, OwnedFd)>),
}

/// Who places the process, and whether a permission error means "no cgroups" (a rootless
/// runtime without delegation: runc warns and goes on) rather than a failure.
pub struct Placement<'a> {
    pub spec: &'a Spec,
    pub id: &'a str,
    pub tolerate_denied: bool,
}

impl Placement<'_> {
    /// `pid` is the process once it exists (`None` for [`Join::BornIn`]). The limits go on with
    /// every part but the hybrid's v2 directory alone, which is limited with the v1 ones.
    pub fn place(
        &self,
        cg: &mut Cgroups,
        pid: Option<i32>,
        part: Part,
        join: Join,
    ) -> Result<Joined> {
        let r = Cgroups::resources(self.spec);
        if let Some(pid) = pid.filter(|_| part != Part::V1) {
            cg.start_unit(pid, r.as_ref(), self.id)?;
        }
        if !self.create(cg, part)? {
            return Ok(Joined::Nothing);
        }
        if let Some(r) = r.as_ref().filter(|_| part != Part::Unified) {
            cg.set(r)?;
        }
        Ok(match (join, pid) {
            (Join::BornIn, _) => Joined::BornIn(cg.open_unified()?),
            (Join::Procs, Some(pid)) => {
                cg.apply(pid)?;
                Joined::Tasks(Vec::new())
            }
            (Join::SelfTasks { born_in_unified }, Some(pid)) => {
                Joined::Tasks(cg.open_tasks(pid, born_in_unified)?)
            }
            (_, None) => Joined::Nothing,
        })
    }

    /// The directories of `part`; false when there are none to make or a tolerated permission
    /// error left the container without cgroups (the record then says so).
    fn create(&self, cg: &mut Cgroups, part: Part) -> Result<bool> {
        if cg.rec.layout.is_empty() {
            return Ok(false);
        }
        match cg.create_part(part) {
            Ok(()) => Ok(true),
            Err(e) if e.is_permission() && self.tolerate_denied => {
                super::rootless::warn_not_applied(self.spec, &e.to_string());
                cg.rec = hako_spec::state::CgroupRecord::default();
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}
