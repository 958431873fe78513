//! Fields of config.json this build of hako does not implement. Each is refused with its name
//! before anything is created, rather than ignored: a container that silently runs without the
//! limit it asked for is worse than one that does not start.

use std::path::Path;

use hako_spec::oci::Spec;

use crate::error::{Error, Result};

fn unsupported(field: &str, why: &str) -> Error {
    Error::Usage(format!("{field}: {why}"))
}

pub fn check(spec: &Spec) -> Result<()> {
    if let Some(l) = spec.linux() {
        if l.memory_policy().is_some() {
            return Err(unsupported(
                "linux.memoryPolicy",
                "memory policies are not supported by hako",
            ));
        }
        // linux.mountLabel: an SELinux context for the container's mounts. Without SELinux on the
        // host there is nothing to label and the field is ignored, as crun does (images and
        // callers set it unconditionally).
    }
    if let Some(p) = spec.process() {
        if p.scheduler().is_some() {
            return Err(unsupported(
                "process.scheduler",
                "scheduler settings are not supported by hako",
            ));
        }
        if p.io_priority().is_some() {
            return Err(unsupported(
                "process.ioPriority",
                "I/O priority is not supported by hako",
            ));
        }
        if p.exec_cpu_affinity().is_some() {
            return Err(unsupported(
                "process.execCPUAffinity",
                "CPU affinity is not supported by hako",
            ));
        }
        check_labels(p)?;
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if m.uid_mappings().is_some() || m.gid_mappings().is_some() {
            return Err(unsupported(
                &format!("mounts[{i}]"),
                "idmapped mounts are not supported by this version of hako",
            ));
        }
    }
    Ok(())
}

/// A process's security labels, which [`crate::security::lsm`] applies (a container's `process` and an
/// `exec` process alike). An AppArmor profile the host cannot apply is refused; an SELinux label
/// on a host without SELinux is ignored, as crun does (there is no policy that could confine
/// the process differently).
pub fn check_labels(p: &hako_spec::oci::Process) -> Result<()> {
    if p.apparmor_profile()
        .as_deref()
        .is_some_and(|a| !a.is_empty())
        && !apparmor_enabled()
    {
        return Err(unsupported(
            "process.apparmorProfile",
            "apparmor profile specified but AppArmor is not enabled on this host",
        ));
    }
    Ok(())
}

pub fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.starts_with('Y'))
}
