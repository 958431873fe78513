//! A process's attributes, for the container's init and every `exec`'d process alike: user and
//! groups, capabilities, rlimits, no_new_privs, personality, scheduler, I/O priority, NUMA
//! memory policy, CPU affinity, seccomp filter, umask and security labels.
//!
//! One [`Plan`], made by the runtime from the config before anything exists (so a bad value
//! fails `create` or `exec` naming its field, and the process itself only makes syscalls), is
//! applied by the process in phases whose order the kernel dictates
//! ([`crate::init::process::prepare`] calls them):
//!
//! * [`Plan::apply_initial`]: `execCPUAffinity.initial`, as early as the process exists (exec
//!   only);
//! * [`Plan::reset_affinity`]: once in the container's cgroups, without `initial`, the affinity
//!   becomes the cgroup's cpuset, not the runtime's (runc's tryResetCPUAffinity);
//! * [`Plan::apply_privileged`]: rlimits, personality, scheduler, I/O priority, memory policy,
//!   while still privileged (raising a hard limit needs CAP_SYS_RESOURCE, an RT policy
//!   CAP_SYS_NICE, IOPRIO_CLASS_RT CAP_SYS_ADMIN);
//! * [`Plan::apply_final`]: `execCPUAffinity.final` (exec only), before the seccomp filter, which
//!   may deny sched_setaffinity;
//! * [`Plan::load_seccomp`] with [`Placement::BeforeCaps`]: without no_new_privs the filter must
//!   go on while CAP_SYS_ADMIN is held;
//! * [`Plan::become_user`]: the bounding set (needs CAP_SETPCAP, so before the uid change), then
//!   groups, gid and uid with keepcaps;
//! * [`Plan::apply_caps`]: effective, permitted, inheritable and ambient, exactly as configured;
//! * [`Plan::apply_exec_attrs`]: umask, labels (effective on execve) and no_new_privs;
//! * [`Plan::load_seccomp`] with [`Placement::AfterNoNewPrivs`]: last, so the filter need not
//!   allow anything the runtime does.
//!
//! `process.execCPUAffinity` does not apply to the container's init (runtime-spec; runc 1.3
//! ignores it there too), only to `exec`.

pub mod caps;
pub mod mempolicy;
pub mod rlimits;
pub mod sched;
pub mod user;

use std::os::fd::OwnedFd;

use hako_spec::oci::{Linux, LinuxPersonalityDomain, Process, Spec};
use nix::errno::Errno;

use crate::error::{Context, Error, Result};
use crate::security::lsm::Labels;
use crate::security::seccomp::{Compiled, Placement};
use sched::{Mask, SchedAttr};

#[derive(Debug, Clone, Default)]
pub struct Plan {
    user: user::User,
    rlimits: Vec<rlimits::Rlimit>,
    /// None: no `capabilities` object, the process's capabilities are left alone.
    caps: Option<caps::CapPlan>,
    no_new_privs: bool,
    personality: Option<libc::c_ulong>,
    scheduler: Option<(&'static str, SchedAttr)>,
    ioprio: Option<i32>,
    mempolicy: Option<mempolicy::MemPolicy>,
    initial: Option<Mask>,
    final_: Option<Mask>,
    labels: Labels,
    seccomp: Option<Compiled>,
}

impl Plan {
    /// The container's init: `process` and `linux` of config.json, no execCPUAffinity.
    pub fn for_init(p: Option<&Process>, linux: Option<&Linux>) -> Result<Plan> {
        let mut plan = Plan::with(p, None, linux)?;
        plan.initial = None;
        plan.final_ = None;
        Ok(plan)
    }

    /// An `exec`: its own `process`, whose missing scheduler, ioPriority and execCPUAffinity are
    /// the container's `process`'s (runc 1.3 does the same for `exec --process`), and the
    /// container's `linux` (personality, memory policy).
    pub fn for_exec(
        p: &Process,
        container: Option<&Process>,
        linux: Option<&Linux>,
    ) -> Result<Plan> {
        Plan::with(Some(p), container, linux)
    }

    fn with(
        p: Option<&Process>,
        container: Option<&Process>,
        linux: Option<&Linux>,
    ) -> Result<Plan> {
        let mut plan = Plan::default();
        if let Some(l) = linux {
            plan.personality = l.personality().as_ref().map(|p| match p.domain() {
                LinuxPersonalityDomain::PerLinux => 0x0000,
                LinuxPersonalityDomain::PerLinux32 => 0x0008,
            });
            if let Some(m) = l.memory_policy() {
                hako_spec::attrs::validate_memory_policy(m)?;
                plan.mempolicy = Some(mempolicy::plan(m)?);
            }
        }
        let Some(p) = p else { return Ok(plan) };
        hako_spec::attrs::validate_process(p)?;
        plan.user = user::User::of(p);
        plan.rlimits = rlimits::plan(p)?;
        plan.caps = caps::plan_of(p);
        plan.no_new_privs = p.no_new_privileges() == Some(true);
        plan.labels = Labels::of(p);
        let scheduler =
            (p.scheduler().as_ref()).or_else(|| container.and_then(|c| c.scheduler().as_ref()));
        let io_priority =
            (p.io_priority().as_ref()).or_else(|| container.and_then(|c| c.io_priority().as_ref()));
        let affinity = (p.exec_cpu_affinity().as_ref())
            .or_else(|| container.and_then(|c| c.exec_cpu_affinity().as_ref()));
        plan.scheduler = scheduler.map(sched::sched_attr);
        plan.ioprio = io_priority.map(sched::ioprio);
        if let Some(a) = affinity {
            let mask = |field, l: &Option<String>| -> Result<Option<Mask>> {
                l.as_deref().map(|l| Mask::from_list(field, l)).transpose()
            };
            plan.initial = mask("process.execCPUAffinity.initial", a.initial())?;
            plan.final_ = mask("process.execCPUAffinity.final", a.cpu_affinity_final())?;
        }
        Ok(plan)
    }

    /// `linux.seccomp`, compiled with this process's no_new_privs (which decides where the
    /// filter goes on), or found in the cache under `root`: a bad profile fails here.
    pub fn compile_seccomp(&mut self, root: &std::path::Path, spec: &Spec) -> Result<()> {
        self.seccomp = crate::security::seccomp::for_spec(root, spec, self.no_new_privs)?;
        Ok(())
    }

    /// Whether setgroups(2) may be called: the runtime knows (the user namespace it made or
    /// joined), the process could not tell a denied setgroups from a refused group list.
    pub fn allow_setgroups(&mut self, allowed: bool) {
        self.user.setgroups_allowed = allowed;
    }

    pub fn seccomp(&self) -> Option<&Compiled> {
        self.seccomp.as_ref()
    }

    pub fn uid(&self) -> u32 {
        self.user.uid
    }

    /// `execCPUAffinity.initial`, before the process joins the container's cgroups and sets
    /// itself up, so that work runs on those CPUs.
    pub fn apply_initial(&self) -> Result<()> {
        match &self.initial {
            Some(m) => sched::set_affinity("process.execCPUAffinity.initial", m),
            None => Ok(()),
        }
    }

    /// In the container's cgroups: without `initial`, the process must not keep the runtime's
    /// affinity (a caller pinned to one CPU would pin the container): all CPUs, which the kernel
    /// intersects with the cgroup's cpuset. Best effort, as runc's tryResetCPUAffinity.
    pub fn reset_affinity(&self) {
        if self.initial.is_none() {
            if let Err(e) = sched::set_affinity("CPU affinity", &Mask::all_cpus()) {
                crate::log::debug(&format!("resetting the CPU affinity: {e}"));
            }
        }
    }

    /// rlimits, personality, scheduler, I/O priority and memory policy, while the process still
    /// holds every capability the values may need.
    pub fn apply_privileged(&self) -> Result<()> {
        rlimits::set(&self.rlimits)?;
        if let Some(d) = self.personality {
            // SAFETY: personality takes one integer and touches no memory.
            let r = unsafe { libc::personality(d) };
            Errno::result(r).map_err(|e| Error::sys("linux.personality: personality", e))?;
        }
        if let Some((name, attr)) = &self.scheduler {
            sched::set_scheduler(name, attr)?;
        }
        if let Some(prio) = self.ioprio {
            sched::set_ioprio(prio)?;
        }
        if let Some(m) = &self.mempolicy {
            mempolicy::set(m)?;
        }
        Ok(())
    }

    /// `execCPUAffinity.final`: the CPUs the process runs on, once set up.
    pub fn apply_final(&self) -> Result<()> {
        match &self.final_ {
            Some(m) => sched::set_affinity("process.execCPUAffinity.final", m),
            None => Ok(()),
        }
    }

    /// The seccomp filter, if its placement is `at`; a notifying filter's listener fd goes to
    /// `notify` before the process goes on.
    pub fn load_seccomp(
        &self,
        at: Placement,
        notify: &mut dyn FnMut(OwnedFd) -> Result<()>,
    ) -> Result<()> {
        let Some(c) = self.seccomp.as_ref().filter(|c| c.placement == at) else {
            return Ok(());
        };
        match crate::security::seccomp::load(c)? {
            Some(fd) => notify(fd),
            None => Ok(()),
        }
    }

    /// The bounding set, then groups, gid and uid, keeping the permitted set for
    /// [`Plan::apply_caps`].
    pub fn become_user(&self) -> Result<()> {
        if let Some(c) = &self.caps {
            caps::warn_unknown_capabilities(&c.unknown);
            caps::apply_bounding(c)?;
        }
        self.user.switch(true)
    }

    pub fn apply_caps(&self) -> Result<()> {
        match &self.caps {
            Some(c) => caps::apply(c),
            None => Ok(()),
        }
    }

    /// umask, the security labels the execve takes on, and no_new_privs.
    pub fn apply_exec_attrs(&self) -> Result<()> {
        self.user.set_umask();
        self.labels.apply()?;
        if self.no_new_privs {
            nix::sys::prctl::set_no_new_privs().op("prctl(PR_SET_NO_NEW_PRIVS)")?;
        }
        Ok(())
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_for_init_ignores_exec_affinity() {
        let p: Process = serde_json::from_value(serde_json::json!({
            "cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0},
            "execCPUAffinity": {"initial": "0", "final": "0-1"},
            "scheduler": {"policy": "SCHED_FIFO", "priority": 3},
            "ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 0}
        }))
        .unwrap();
        let init = Plan::for_init(Some(&p), None).unwrap();
        assert!(init.initial.is_none() && init.final_.is_none());
        assert_eq!(init.ioprio, Some(3 << 13));
        let (name, attr) = init.scheduler.unwrap();
        assert_eq!((name, attr.policy, attr.priority), ("SCHED_FIFO", 1, 3));
        let exec = Plan::for_exec(&p, None, None).unwrap();
        assert_eq!(exec.final_, Some(Mask(vec![0b11])));
    }
}
