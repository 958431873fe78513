//! `process.rlimits`: resolved by the runtime (an unknown type fails `create` naming it), set by
//! the process while it is still privileged (raising a hard limit needs CAP_SYS_RESOURCE).

use hako_spec::oci::{PosixRlimitType, Process};

use crate::error::{Error, Result};

pub fn rlimit_resource(t: PosixRlimitType) -> Option<libc::__rlimit_resource_t> {
    use PosixRlimitType::*;
    Some(match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

/// One `process.rlimits` entry, resolved to the kernel's resource.
#[derive(Debug, Clone)]
pub struct Rlimit {
    name: String,
    resource: libc::__rlimit_resource_t,
    soft: u64,
    hard: u64,
}

pub fn plan(p: &Process) -> Result<Vec<Rlimit>> {
    p.rlimits()
        .iter()
        .flatten()
        .map(|r| {
            let name = serde_json::to_string(&r.typ()).unwrap_or_default();
            let name = name.trim_matches('"').to_string();
            let resource = rlimit_resource(r.typ())
                .ok_or_else(|| Error::Usage(format!("process.rlimits: unsupported {name}")))?;
            Ok(Rlimit {
                name,
                resource,
                soft: r.soft(),
                hard: r.hard(),
            })
        })
        .collect()
}

pub fn set(rlimits: &[Rlimit]) -> Result<()> {
    for r in rlimits {
        let lim = libc::rlimit {
            rlim_cur: r.soft,
            rlim_max: r.hard,
        };
        // SAFETY: `lim` is a live rlimit that setrlimit only reads.
        if unsafe { libc::setrlimit(r.resource, &lim) } != 0 {
            return Err(Error::sys(
                format!("setrlimit {} (soft {}, hard {})", r.name, r.soft, r.hard),
                nix::errno::Errno::last(),
            ));
        }
    }
    Ok(())
}
