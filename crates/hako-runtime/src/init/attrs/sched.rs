//! Scheduling attributes of a process: `process.scheduler` (sched_setattr), `process.ioPriority`
//! (ioprio_set) and `process.execCPUAffinity` (sched_setaffinity), as the kernel takes them.

use hako_spec::oci::{
    IOPriorityClass, LinuxIOPriority, LinuxSchedulerFlag, LinuxSchedulerPolicy, Scheduler,
};
use nix::errno::Errno;

use crate::error::{Error, Result};

/// A CPU or node mask as the kernel takes it: bit N of word N/64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask(pub(super) Vec<u64>);

impl Mask {
    pub fn from_list(field: &str, list: &str) -> Result<Mask> {
        let ids = hako_spec::attrs::parse_list(field, list)?;
        let words = ids.last().map_or(0, |m| *m as usize / 64 + 1);
        let mut w = vec![0u64; words];
        for id in ids {
            w[id as usize / 64] |= 1 << (id % 64);
        }
        Ok(Mask(w))
    }

    /// Every CPU the kernel may have (NR_CPUS is at most 8192): intersected with the cpuset.
    pub fn all_cpus() -> Mask {
        Mask(vec![u64::MAX; 8192 / 64])
    }
}

/// `struct sched_attr` of sched_setattr(2), SCHED_ATTR_SIZE_VER1 (with the utilization clamps).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct SchedAttr {
    size: u32,
    pub(super) policy: u32,
    flags: u64,
    nice: i32,
    pub(super) priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

pub fn sched_attr(s: &Scheduler) -> (&'static str, SchedAttr) {
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

/// `ioprio_set`'s value: the class in the top bits (IOPRIO_CLASS_SHIFT 13), the level below.
pub fn ioprio(io: &LinuxIOPriority) -> i32 {
    let class = match io.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    class << 13 | io.priority() as i32
}

pub fn set_scheduler(name: &str, attr: &SchedAttr) -> Result<()> {
    // SAFETY: `attr` is a live sched_attr whose `size` field is its size; the kernel only reads
    // it.
    let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr as *const SchedAttr, 0) };
    Errno::result(r)
        .map_err(|e| Error::sys(format!("process.scheduler: sched_setattr {name}"), e))?;
    Ok(())
}

pub fn set_ioprio(prio: i32) -> Result<()> {
    // SAFETY: ioprio_set takes integers only (IOPRIO_WHO_PROCESS, 0 = ourselves).
    let r = unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, prio) };
    Errno::result(r).map_err(|e| Error::sys("process.ioPriority: ioprio_set", e))?;
    Ok(())
}

pub fn set_affinity(field: &str, m: &Mask) -> Result<()> {
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
}
