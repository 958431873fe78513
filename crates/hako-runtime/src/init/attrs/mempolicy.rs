//! `linux.memoryPolicy`: the NUMA policy set with set_mempolicy(2), inherited across execve.

use hako_spec::oci::{LinuxMemoryPolicy, MemoryPolicyFlagType, MemoryPolicyModeType};
use nix::errno::Errno;

use super::sched::Mask;
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct MemPolicy {
    name: String,
    mode: i32,
    nodes: Mask,
}

pub fn plan(m: &LinuxMemoryPolicy) -> Result<MemPolicy> {
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

pub fn set(m: &MemPolicy) -> Result<()> {
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
