//! The process attributes of runtime-spec 1.1–1.3 that are plain values until the kernel sees
//! them: `process.scheduler`, `process.ioPriority`, `process.execCPUAffinity` and
//! `linux.memoryPolicy`. Their rules are runc's (`libcontainer/configs/validate`, `specconv`);
//! the kernel work is hako-runtime's `init::attrs`.

use oci_spec::runtime::{LinuxMemoryPolicy, LinuxSchedulerPolicy, MemoryPolicyModeType, Process};

use crate::{Result, SpecError};

/// The highest CPU or node number a list may name. The kernel's masks are smaller (NR_CPUS is at
/// most 8192); this only bounds the mask a hostile config could make us allocate.
pub const MAX_LIST_ENTRY: u32 = 65_535;

/// Parses the kernel's list format (`0-3,7`, as in /sys/devices/system/cpu/online and cpuset
/// files), naming `field` in the error. Empty and whitespace-only lists are empty.
pub fn parse_list(field: &str, s: &str) -> Result<Vec<u32>> {
    let bad = |why: String| SpecError::invalid(field, format!("{s:?}: {why}"));
    let mut out = Vec::new();
    if s.trim().is_empty() {
        return Ok(out);
    }
    for part in s.split(',') {
        let part = part.trim();
        let num = |n: &str| -> Result<u32> {
            let v: u32 = n
                .parse()
                .map_err(|_| bad(format!("{n:?} is not a number")))?;
            if v > MAX_LIST_ENTRY {
                return Err(bad(format!("{v} is larger than {MAX_LIST_ENTRY}")));
            }
            Ok(v)
        };
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let v = num(part)?;
                (v, v)
            }
        };
        if lo > hi {
            return Err(bad(format!("range {lo}-{hi} is reversed")));
        }
        out.extend(lo..=hi);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The kernel's name of a policy, as config.json spells it.
pub fn policy_name(p: LinuxSchedulerPolicy) -> &'static str {
    use LinuxSchedulerPolicy::*;
    match p {
        SchedOther => "SCHED_OTHER",
        SchedFifo => "SCHED_FIFO",
        SchedRr => "SCHED_RR",
        SchedBatch => "SCHED_BATCH",
        SchedIso => "SCHED_ISO",
        SchedIdle => "SCHED_IDLE",
        SchedDeadline => "SCHED_DEADLINE",
    }
}

/// runc's `scheduler` check (sched_setattr(2)'s rules that do not need the kernel), plus the one
/// policy oci-spec knows and Linux does not (SCHED_ISO was never merged).
fn scheduler(p: &Process) -> Result<()> {
    let Some(s) = p.scheduler() else {
        return Ok(());
    };
    use LinuxSchedulerPolicy::*;
    let policy = *s.policy();
    if policy == SchedIso {
        return Err(SpecError::invalid(
            "process.scheduler.policy",
            "SCHED_ISO is not a Linux scheduling policy",
        ));
    }
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        return Err(SpecError::invalid(
            "process.scheduler.nice",
            format!("{nice} is outside -20..19"),
        ));
    }
    let priority = s.priority().unwrap_or(0);
    if priority != 0 && !matches!(policy, SchedFifo | SchedRr) {
        return Err(SpecError::invalid(
            "process.scheduler.priority",
            "can only be specified for SCHED_FIFO or SCHED_RR",
        ));
    }
    if !(0..=99).contains(&priority) {
        return Err(SpecError::invalid(
            "process.scheduler.priority",
            format!("{priority} is outside 0..99"),
        ));
    }
    let dl = [s.runtime(), s.deadline(), s.period()];
    if policy != SchedDeadline && dl.iter().any(|v| v.is_some_and(|v| v != 0)) {
        return Err(SpecError::invalid(
            "process.scheduler",
            "runtime/deadline/period can only be specified for SCHED_DEADLINE",
        ));
    }
    Ok(())
}

fn io_priority(p: &Process) -> Result<()> {
    let Some(io) = p.io_priority() else {
        return Ok(());
    };
    // IOPRIO_CLASS_IDLE has no levels; the kernel takes (and ignores) 0..7 there too.
    if !(0..=7).contains(&io.priority()) {
        return Err(SpecError::invalid(
            "process.ioPriority.priority",
            format!("{} is outside 0..7", io.priority()),
        ));
    }
    Ok(())
}

/// oci-spec refuses a list that is not in the list format while typing it (naming the field);
/// the lists must also name at least one CPU. Which CPUs exist is the kernel's answer when
/// they are applied (as in runc: CPUs that do not exist are dropped, none left is EINVAL).
fn exec_cpu_affinity(p: &Process) -> Result<()> {
    let Some(a) = p.exec_cpu_affinity() else {
        return Ok(());
    };
    for (field, list) in [
        ("process.execCPUAffinity.initial", a.initial()),
        ("process.execCPUAffinity.final", a.cpu_affinity_final()),
    ] {
        if let Some(list) = list {
            if parse_list(field, list)?.is_empty() {
                return Err(SpecError::invalid(field, "names no CPU"));
            }
        }
    }
    Ok(())
}

/// A process's attributes (the container's, or an `exec --process` file's).
pub fn validate_process(p: &Process) -> Result<()> {
    scheduler(p)?;
    io_priority(p)?;
    exec_cpu_affinity(p)
}

/// runtime-spec 1.3 "Memory policy" with runc's rules: MPOL_DEFAULT and MPOL_LOCAL take no
/// nodes, BIND, INTERLEAVE, WEIGHTED_INTERLEAVE and PREFERRED_MANY at least one, PREFERRED zero
/// (local allocation) or more; STATIC_NODES and RELATIVE_NODES exclude each other.
pub fn validate_memory_policy(m: &LinuxMemoryPolicy) -> Result<()> {
    use oci_spec::runtime::MemoryPolicyFlagType as F;
    use MemoryPolicyModeType::*;
    let nodes = parse_list(
        "linux.memoryPolicy.nodes",
        m.nodes().as_deref().unwrap_or(""),
    )?;
    let mode = m.mode();
    match mode {
        MpolDefault | MpolLocal if !nodes.is_empty() => Err(SpecError::invalid(
            "linux.memoryPolicy.nodes",
            format!("{mode} takes no nodes"),
        )),
        MpolBind | MpolInterleave | MpolWeightedInterleave | MpolPreferredMany
            if nodes.is_empty() =>
        {
            Err(SpecError::invalid(
                "linux.memoryPolicy.nodes",
                format!("{mode} needs at least one node"),
            ))
        }
        _ => Ok(()),
    }?;
    let flags = m.flags().clone().unwrap_or_default();
    if flags.contains(&F::MpolFStaticNodes) && flags.contains(&F::MpolFRelativeNodes) {
        return Err(SpecError::invalid(
            "linux.memoryPolicy.flags",
            "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other",
        ));
    }
    Ok(())
}

/// oci-spec 0.10 spells two `process.scheduler.flags` otherwise than the runtime-spec does
/// (its serde names are `SCHED_RESET_ON_FORK` and `SCHED_FLAG_D_L_OVERRUN`): the spec's names are
/// rewritten to the crate's before typing, so a valid config parses (and the record, written by
/// the crate, reads back).
pub fn crate_flag_names(value: &mut serde_json::Value) {
    let Some(flags) = value
        .pointer_mut("/scheduler/flags")
        .and_then(|f| f.as_array_mut())
    else {
        return;
    };
    for f in flags {
        let name = match f.as_str() {
            Some("SCHED_FLAG_RESET_ON_FORK") => "SCHED_RESET_ON_FORK",
            Some("SCHED_FLAG_DL_OVERRUN") => "SCHED_FLAG_D_L_OVERRUN",
            _ => continue,
        };
        *f = serde_json::Value::String(name.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_in_the_kernels_format() {
        assert_eq!(parse_list("f", "0-3,7").unwrap(), vec![0, 1, 2, 3, 7]);
        assert_eq!(parse_list("f", "7, 1,1").unwrap(), vec![1, 7]);
        assert_eq!(parse_list("f", "").unwrap(), Vec::<u32>::new());
        assert_eq!(parse_list("f", " ").unwrap(), Vec::<u32>::new());
        for bad in ["1-", "-1", "a", "3-1", "1,,2", "99999999", "1-70000"] {
            let e = parse_list("process.execCPUAffinity.final", bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains("process.execCPUAffinity.final"), "{bad}: {e}");
        }
    }

    fn process(json: serde_json::Value) -> Result<()> {
        let mut v = serde_json::json!({"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}});
        v.as_object_mut()
            .unwrap()
            .extend(json.as_object().unwrap().clone());
        crate_flag_names(&mut v);
        let p: Process = serde_json::from_value(v).expect("typed");
        validate_process(&p)
    }

    #[test]
    fn scheduler_rules_are_runcs() {
        use serde_json::json;
        let ok = [
            json!({"scheduler": {"policy": "SCHED_OTHER", "nice": -20}}),
            json!({"scheduler": {"policy": "SCHED_FIFO", "priority": 99}}),
            json!({"scheduler": {"policy": "SCHED_DEADLINE", "runtime": 1, "deadline": 2, "period": 3}}),
            json!({"scheduler": {"policy": "SCHED_BATCH",
                "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_DL_OVERRUN", "SCHED_FLAG_RECLAIM"]}}),
        ];
        for c in ok {
            process(c.clone()).unwrap_or_else(|e| panic!("{c}: {e}"));
        }
        let bad = [
            (
                json!({"scheduler": {"policy": "SCHED_OTHER", "nice": 20}}),
                "nice",
            ),
            (
                json!({"scheduler": {"policy": "SCHED_OTHER", "priority": 1}}),
                "priority",
            ),
            (
                json!({"scheduler": {"policy": "SCHED_RR", "priority": 100}}),
                "priority",
            ),
            (
                json!({"scheduler": {"policy": "SCHED_FIFO", "runtime": 5}}),
                "scheduler",
            ),
            (json!({"scheduler": {"policy": "SCHED_ISO"}}), "policy"),
            (
                json!({"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 8}}),
                "ioPriority",
            ),
        ];
        for (c, field) in bad {
            let e = process(c.clone()).unwrap_err().to_string();
            assert!(e.contains(field), "{c}: {e}");
        }
    }

    #[test]
    fn memory_policy_nodes_follow_the_mode() {
        let mp = |mode: &str, nodes: Option<&str>, flags: &[&str]| {
            let mut v = serde_json::json!({"mode": mode, "flags": flags});
            if let Some(n) = nodes {
                v["nodes"] = n.into();
            }
            validate_memory_policy(&serde_json::from_value(v).unwrap())
        };
        assert!(mp("MPOL_DEFAULT", None, &[]).is_ok());
        assert!(mp("MPOL_DEFAULT", Some("0"), &[]).is_err());
        assert!(mp("MPOL_LOCAL", Some(""), &[]).is_ok());
        assert!(mp("MPOL_BIND", None, &[]).is_err());
        assert!(mp("MPOL_INTERLEAVE", Some(""), &[]).is_err());
        assert!(mp("MPOL_BIND", Some("0-1"), &["MPOL_F_STATIC_NODES"]).is_ok());
        assert!(mp("MPOL_PREFERRED", None, &[]).is_ok());
        assert!(mp("MPOL_PREFERRED_MANY", Some("x"), &[]).is_err());
        let e = mp(
            "MPOL_BIND",
            Some("0"),
            &["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("linux.memoryPolicy.flags"), "{e}");
    }
}
