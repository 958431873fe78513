//! A process's attributes: rlimits, capabilities and no_new_privs (applied by
//! [`crate::init::process::prepare`] around the credential change), personality, scheduler, I/O
//! priority, NUMA memory policy and CPU affinity. One [`Plan`], made by the runtime from the
//! config before anything exists (so bad values fail `create` or `exec` naming the field),
//! applied by the container's init and by every `exec`'d process alike, in the same phases:
//!
//! * [`Plan::apply_initial`]: `execCPUAffinity.initial`, as early as the process exists (exec only);
//! * [`Plan::reset_affinity`]: once in the container's cgroups, without `initial`, the affinity
//!   becomes the cgroup's cpuset, not the runtime's (runc's tryResetCPUAffinity);
//! * [`Plan::apply`]: personality, scheduler, I/O priority, memory policy, while still
//!   privileged (an RT policy needs CAP_SYS_NICE);
//! * [`Plan::apply_final`]: `execCPUAffinity.final`, the last step before the seccomp filter
//!   (which may deny sched_setaffinity) and execve (exec only).
//!
//! `process.execCPUAffinity` does not apply to the container's init (runtime-spec; runc 1.3
//! ignores it there too), only to `exec`.

use hako_spec::oci::{
    IOPriorityClass, Linux, LinuxPersonalityDomain, LinuxSchedulerFlag, LinuxSchedulerPolicy,
    MemoryPolicyFlagType, MemoryPolicyModeType, Process,
};
use nix::errno::Errno;

use crate::error::{Error, Result};

/// A CPU or node mask as the kernel takes it: bit N of word N/64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask(Vec<u64>);

impl Mask {
    fn from_list(field: &str, list: &str) -> Result<Mask> {
        let ids = hako_spec::attrs::parse_list(field, list)?;
        let words = ids.last().map_or(0, |m| *m as usize / 64 + 1);
        let mut w = vec![0u64; words];
        for id in ids {
            w[id as usize / 64] |= 1 << (id % 64);
        }
        Ok(Mask(w))
    }

    /// Every CPU the kernel may have (NR_CPUS is at most 8192): intersected with the cpuset.
    fn all_cpus() -> Mask {
        Mask(vec![u64::MAX; 8192 / 64])
    }
}

/// `struct sched_attr` of sched_setattr(2), SCHED_ATTR_SIZE_VER1 (with the utilization clamps).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

#[derive(Debug, Clone)]
struct MemPolicy {
    name: String,
    mode: i32,
    nodes: Mask,
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    rlimits: Vec<crate::init::process::Rlimit>,
    caps: crate::init::process::CapPlan,
    no_new_privs: bool,
    personality: Option<libc::c_ulong>,
    scheduler: Option<(&'static str, SchedAttr)>,
    ioprio: Option<i32>,
    mempolicy: Option<MemPolicy>,
    initial: Option<Mask>,
    final_: Option<Mask>,
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
                plan.mempolicy = Some(mem_policy(m)?);
            }
        }
        let Some(p) = p else { return Ok(plan) };
        hako_spec::attrs::validate_process(p)?;
        plan.rlimits = crate::init::process::rlimit_plan(p)?;
        plan.caps = crate::init::process::process_cap_plan(p);
        plan.no_new_privs = p.no_new_privileges() == Some(true);
        let scheduler =
            (p.scheduler().as_ref()).or_else(|| container.and_then(|c| c.scheduler().as_ref()));
        let io_priority =
            (p.io_priority().as_ref()).or_else(|| container.and_then(|c| c.io_priority().as_ref()));
        let affinity = (p.exec_cpu_affinity().as_ref())
            .or_else(|| container.and_then(|c| c.exec_cpu_affinity().as_ref()));
        plan.scheduler = scheduler.map(sched_attr);
        plan.ioprio = io_priority.map(|io| {
            let class = match io.class() {
                IOPriorityClass::IoprioClassRt => 1,
                IOPriorityClass::IoprioClassBe => 2,
                IOPriorityClass::IoprioClassIdle => 3,
            };
            class << 13 | io.priority() as i32
        });
        if let Some(a) = affinity {
            let mask = |field, l: &Option<String>| -> Result<Option<Mask>> {
                l.as_deref().map(|l| Mask::from_list(field, l)).transpose()
            };
            plan.initial = mask("process.execCPUAffinity.initial", a.initial())?;
            plan.final_ = mask("process.execCPUAffinity.final", a.cpu_affinity_final())?;
        }
        Ok(plan)
    }

    pub fn rlimits(&self) -> &[crate::init::process::Rlimit] {
        &self.rlimits
    }

    /// Bounding, effective, permitted, inheritable and ambient sets, resolved for this kernel.
    pub fn caps(&self) -> &crate::init::process::CapPlan {
        &self.caps
    }

    pub fn no_new_privs(&self) -> bool {
        self.no_new_privs
    }

    /// `execCPUAffinity.initial`, before the process joins the container's cgroups and sets
    /// itself up, so that work runs on those CPUs.
    pub fn apply_initial(&self) -> Result<()> {
        match &self.initial {
            Some(m) => set_affinity("process.execCPUAffinity.initial", m),
            None => Ok(()),
        }
    }

    /// In the container's cgroups: without `initial`, the process must not keep the runtime's
    /// affinity (a caller pinned to one CPU would pin the container): all CPUs, which the kernel
    /// intersects with the cgroup's cpuset. Best effort, as runc's tryResetCPUAffinity.
    pub fn reset_affinity(&self) {
        if self.initial.is_none() {
            if let Err(e) = set_affinity("CPU affinity", &Mask::all_cpus()) {
                crate::log::debug(&format!("resetting the CPU affinity: {e}"));
            }
        }
    }

    /// Personality, scheduler, I/O priority and memory policy: before the capabilities are
    /// dropped (an RT or DEADLINE policy and IOPRIO_CLASS_RT need CAP_SYS_NICE / CAP_SYS_ADMIN).
    pub fn apply(&self) -> Result<()> {
        if let Some(d) = self.personality {
            // SAFETY: personality takes one integer and touches no memory.
            let r = unsafe { libc::personality(d) };
            Errno::result(r).map_err(|e| Error::sys("linux.personality: personality", e))?;
        }
        if let Some((name, attr)) = &self.scheduler {
            // SAFETY: `attr` is a live sched_attr whose `size` field is its size; the kernel only
            // reads it.
            let r =
                unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr as *const SchedAttr, 0) };
            Errno::result(r)
                .map_err(|e| Error::sys(format!("process.scheduler: sched_setattr {name}"), e))?;
        }
        if let Some(prio) = self.ioprio {
            // SAFETY: ioprio_set takes integers only (IOPRIO_WHO_PROCESS, 0 = ourselves).
            let r = unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, prio) };
            Errno::result(r).map_err(|e| Error::sys("process.ioPriority: ioprio_set", e))?;
        }
        if let Some(m) = &self.mempolicy {
            set_mempolicy(m)?;
        }
        Ok(())
    }

    /// `execCPUAffinity.final`: the CPUs the process runs on, once set up.
    pub fn apply_final(&self) -> Result<()> {
        match &self.final_ {
            Some(m) => set_affinity("process.execCPUAffinity.final", m),
            None => Ok(()),
        }
    }
}

fn sched_attr(s: &hako_spec::oci::Scheduler) -> (&'static str, SchedAttr) {
    use LinuxSchedulerFlag::*;
    use LinuxSchedulerPolicy::*;
    let policy = match s.policy() {
        SchedOther | SchedIso => 0,
        SchedFifo => 1,
        SchedRr => 2,
        SchedBatch => 3,
        SchedIdle => 5,
        SchedDeadline => 6,
    };
    let flags = s.flags().iter().flatten().fold(0u64, |f, flag| {
        f | match flag {
            SchedResetOnFork => 0x01,
            SchedFlagReclaim => 0x02,
            SchedFlagDLOverrun => 0x04,
            SchedFlagKeepPolicy => 0x08,
            SchedFlagKeepParams => 0x10,
            SchedFlagUtilClampMin => 0x20,
            SchedFlagUtilClampMax => 0x40,
        }
    });
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice: s.nice().unwrap_or(0),
        priority: s.priority().unwrap_or(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
        // The clamps' defaults: the whole range (1024 is SCHED_CAPACITY_SCALE).
        util_min: 0,
        util_max: 1024,
    };
    (hako_spec::attrs::policy_name(*s.policy()), attr)
}

fn mem_policy(m: &hako_spec::oci::LinuxMemoryPolicy) -> Result<MemPolicy> {
    use MemoryPolicyModeType::*;
    let mode = match m.mode() {
        MpolDefault => 0,
        MpolPreferred => 1,
        MpolBind => 2,
        MpolInterleave => 3,
        MpolLocal => 4,
        MpolPreferredMany => 5,
        MpolWeightedInterleave => 6,
    };
    let flags = m.flags().iter().flatten().fold(0, |f, flag| {
        f | match flag {
            MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
            MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
            MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
        }
    });
    let nodes = m.nodes().as_deref().unwrap_or("");
    Ok(MemPolicy {
        name: format!("{} nodes {nodes:?}", m.mode()),
        mode: mode | flags,
        nodes: Mask::from_list("linux.memoryPolicy.nodes", nodes)?,
    })
}

fn set_mempolicy(m: &MemPolicy) -> Result<()> {
    let (ptr, maxnode) = match m.nodes.0.len() {
        0 => (std::ptr::null(), 0),
        // The kernel reads maxnode - 1 bits (an off-by-one kept for compatibility).
        n => (m.nodes.0.as_ptr(), (n * 64 + 1) as libc::c_ulong),
    };
    // SAFETY: `ptr` is null or points at `maxnode - 1` bits of a live Vec, which the kernel only
    // reads.
    let r = unsafe { libc::syscall(libc::SYS_set_mempolicy, m.mode, ptr, maxnode) };
    Errno::result(r)
        .map_err(|e| Error::sys(format!("linux.memoryPolicy: set_mempolicy {}", m.name), e))?;
    Ok(())
}

fn set_affinity(field: &str, m: &Mask) -> Result<()> {
    // SAFETY: the mask is a live Vec of `len * 8` bytes that the kernel only reads.
    let r = unsafe { libc::syscall(libc::SYS_sched_setaffinity, 0, m.0.len() * 8, m.0.as_ptr()) };
    Errno::result(r).map_err(|e| {
        let why = if e == Errno::EINVAL {
            ": none of these CPUs exists or is in the container's cpuset"
        } else {
            ""
        };
        Error::sys(format!("{field}: sched_setaffinity{why}"), e)
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_from_lists() {
        assert_eq!(Mask::from_list("f", "0-2,65").unwrap().0, vec![0b111, 0b10]);
        assert_eq!(Mask::from_list("f", "").unwrap().0, Vec::<u64>::new());
        assert!(Mask::from_list("f", "2-1").is_err());
    }

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
