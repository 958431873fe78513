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
        if l.intel_rdt().is_some() {
            return Err(unsupported(
                "linux.intelRdt",
                "Intel RDT is not supported by hako",
            ));
        }
        if l.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
            return Err(unsupported(
                "linux.netDevices",
                "moving network devices is not supported by hako",
            ));
        }
        // linux.mountLabel: an SELinux context for the container's mounts. Without SELinux on the
        // host there is nothing to label and the field is ignored, as crun does (images and
        // callers set it unconditionally).
    }
    if let Some(p) = spec.process() {
        check_labels(p)?;
    }
    // Idmapped mounts are checked with what they need (fs::idmapped::plan).
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
