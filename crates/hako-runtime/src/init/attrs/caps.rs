//! `process.capabilities`: resolved against this kernel by the runtime (unknown names are
//! warned about and left out, as runc 1.2+), then applied in two steps around the credential
//! change: the bounding set while CAP_SETPCAP is still held, the other sets after it (through
//! keepcaps, see [`super::user`]).

use std::collections::HashSet;
use std::str::FromStr;

use caps::{CapSet, Capability as Cap, CapsHashSet};
use hako_spec::oci::{Capabilities, LinuxCapabilities, Process};

use crate::error::{Context, Error, Result};

/// The kernel's highest capability number (/proc/sys/kernel/cap_last_cap, which the caps crate
/// would otherwise probe with one prctl per capability, every time it is asked).
fn last_cap() -> u8 {
    static LAST: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *LAST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| {
                caps::runtime::thread_all_supported()
                    .iter()
                    .map(|c| c.index())
                    .max()
                    .unwrap_or(0)
            })
    })
}

fn to_caps(set: &Option<Capabilities>, unknown: &mut Vec<String>) -> CapsHashSet {
    let mut out = HashSet::new();
    for c in set.iter().flatten() {
        let name = serde_json::to_value(c)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        match Cap::from_str(&name) {
            Ok(cap) if cap.index() <= last_cap() => {
                out.insert(cap);
            }
            _ => unknown.push(name),
        }
    }
    out
}

/// Capabilities the config asks for, resolved against what this kernel knows. Unknown ones are
/// reported back so the caller can warn (runc ignores them with a warning too).
#[derive(Debug, Clone, Default)]
pub struct CapPlan {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub permitted: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub ambient: CapsHashSet,
    pub unknown: Vec<String>,
}

/// No `capabilities` object: the capabilities are left as they are (runc 1.2+; runc 1.1 dropped
/// them all). Root keeps the runtime's sets; another uid loses them at the uid change and
/// execve, as the kernel's rules for a non-root process give.
pub fn plan_of(p: &Process) -> Option<CapPlan> {
    p.capabilities().as_ref().map(plan)
}

pub fn plan(c: &LinuxCapabilities) -> CapPlan {
    let mut unknown = Vec::new();
    let plan = CapPlan {
        bounding: to_caps(c.bounding(), &mut unknown),
        effective: to_caps(c.effective(), &mut unknown),
        permitted: to_caps(c.permitted(), &mut unknown),
        inheritable: to_caps(c.inheritable(), &mut unknown),
        ambient: to_caps(c.ambient(), &mut unknown),
        unknown: vec![],
    };
    unknown.sort();
    unknown.dedup();
    CapPlan { unknown, ..plan }
}

/// runc's warning for capabilities it leaves out (unknown to it or to this kernel), the names as
/// Go prints a slice: `[CAP_A CAP_B]`.
pub fn warn_unknown_capabilities(names: &[String]) {
    if !names.is_empty() {
        crate::log::warn(&format!(
            "ignoring unknown or unavailable capabilities: [{}]",
            names.join(" ")
        ));
    }
}

/// Drops the bounding set. Must run before the uid switch: dropping needs CAP_SETPCAP.
pub fn apply_bounding(plan: &CapPlan) -> Result<()> {
    for cap in caps::all().into_iter().filter(|c| c.index() <= last_cap()) {
        if !plan.bounding.contains(&cap) {
            // SAFETY: PR_CAPBSET_DROP takes integer arguments only.
            let r = unsafe {
                libc::prctl(libc::PR_CAPBSET_DROP, cap.index() as libc::c_ulong, 0, 0, 0)
            };
            nix::errno::Errno::result(r).op(format!("drop bounding capability {cap}"))?;
        }
    }
    Ok(())
}

fn mask(set: &CapsHashSet) -> u64 {
    set.iter().fold(0u64, |m, c| m | (1u64 << c.index()))
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Sets effective, permitted and inheritable in one capset(2) (set by set, an intermediate state
/// with effective ⊄ permitted is refused), then raises ambient. Inheritable is exactly what is
/// configured, never more (CVE-2022-29162: runc used to leave inheritable = bounding).
pub fn apply(plan: &CapPlan) -> Result<()> {
    let (e, p, i) = (
        mask(&plan.effective),
        mask(&plan.permitted),
        mask(&plan.inheritable),
    );
    let hdr = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    };
    let data = [
        CapData {
            effective: e as u32,
            permitted: p as u32,
            inheritable: i as u32,
        },
        CapData {
            effective: (e >> 32) as u32,
            permitted: (p >> 32) as u32,
            inheritable: (i >> 32) as u32,
        },
    ];
    // SAFETY: `hdr` and `data` (two cap_user_data_t, as _LINUX_CAPABILITY_VERSION_3 expects) live
    // across the call and are only read.
    let r = unsafe { libc::syscall(libc::SYS_capset, &hdr as *const CapHeader, data.as_ptr()) };
    nix::errno::Errno::result(r).op("capset")?;
    caps::clear(None, CapSet::Ambient)
        .map_err(|x| Error::Init(format!("clear ambient capabilities: {x}")))?;
    for cap in &plan.ambient {
        // The kernel refuses an ambient cap that is not both permitted and inheritable (EPERM);
        // runc 1.2+ tries each one and warns about a refusal, the container still runs.
        // SAFETY: PR_CAP_AMBIENT takes integer arguments only.
        let r = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                cap.index() as libc::c_ulong,
                0,
                0,
            )
        };
        if let Err(e) = nix::errno::Errno::result(r) {
            crate::log::warn(&format!(
                "can't raise ambient capability {cap}: {}",
                crate::error::errno_text(e)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_capabilities_are_reported() {
        let c: LinuxCapabilities = serde_json::from_str(
            r#"{"bounding":["CAP_CHOWN","CAP_KILL"],"effective":["CAP_CHOWN"]}"#,
        )
        .unwrap();
        let p = plan(&c);
        assert_eq!(p.bounding.len(), 2);
        assert!(p.unknown.is_empty());
        assert_eq!(mask(&p.effective), 1 << Cap::CAP_CHOWN.index());
    }
}
