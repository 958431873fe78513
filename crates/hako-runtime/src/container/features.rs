//! `hako features`: the runtime-spec 1.3 features document (runc's `runc features`), generated
//! from what this build supports rather than from a fixed list. Field order and shape are the
//! spec's `specs-go/features` structs, as runc marshals them; the 1.3 additions runc 1.3.6 does
//! not print yet (it is built against spec 1.2.1) follow the spec.

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Features {
    pub oci_version_min: String,
    pub oci_version_max: String,
    pub hooks: Vec<&'static str>,
    pub mount_options: Vec<&'static str>,
    pub linux: Linux,
    pub annotations: BTreeMap<String, String>,
    /// Annotations of config.json that change what hako does, for callers that filter the
    /// annotations of untrusted workloads. runc lists `bundle` and `org.systemd.property.` too,
    /// which it reads and hako does not.
    pub potentially_unsafe_config_annotations: Vec<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Linux {
    pub namespaces: Vec<&'static str>,
    pub capabilities: Vec<String>,
    pub cgroup: Cgroup,
    pub seccomp: Seccomp,
    pub apparmor: Enabled,
    pub selinux: Enabled,
    pub intel_rdt: IntelRdt,
    pub memory_policy: MemoryPolicy,
    pub mount_extensions: MountExtensions,
    pub net_devices: Enabled,
}

/// `linux.memoryPolicy` (runtime-spec 1.3): every mode and flag hako passes to set_mempolicy,
/// sorted as runc (1.4, the first with memory policies) lists them. runc has no features entry
/// for `process.scheduler`, `ioPriority` or `execCPUAffinity`, and neither does the spec.
#[derive(Serialize)]
pub struct MemoryPolicy {
    pub modes: Vec<&'static str>,
    pub flags: Vec<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cgroup {
    pub v1: bool,
    pub v2: bool,
    pub systemd: bool,
    pub systemd_user: bool,
    pub rdma: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Seccomp {
    pub enabled: bool,
    pub actions: Vec<&'static str>,
    pub operators: Vec<&'static str>,
    pub archs: Vec<&'static str>,
    pub known_flags: Vec<&'static str>,
    pub supported_flags: Vec<&'static str>,
}

#[derive(Serialize)]
pub struct Enabled {
    pub enabled: bool,
}

/// `linux.intelRdt`: `schemata` (spec 1.2) and `enableMonitoring` (spec 1.3) are understood.
#[derive(Serialize)]
pub struct IntelRdt {
    pub enabled: bool,
    pub schemata: bool,
    pub monitoring: bool,
}

#[derive(Serialize)]
pub struct MountExtensions {
    pub idmap: Enabled,
}

/// Namespaces hako creates and joins (`linux.namespaces[].type`), sorted as runc lists them.
pub const NAMESPACES: &[&str] = &[
    "cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts",
];

pub fn features() -> Features {
    Features {
        oci_version_min: "1.0.0".into(),
        oci_version_max: hako_spec::SPEC_VERSION.to_string(),
        hooks: vec![
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop",
        ],
        mount_options: crate::fs::mounts::option_names(),
        linux: linux(),
        annotations: annotations(),
        potentially_unsafe_config_annotations: vec!["org.criu.config"],
    }
}

fn annotations() -> BTreeMap<String, String> {
    let mut annotations = BTreeMap::new();
    if let Ok(v) = libseccomp::ScmpVersion::current() {
        annotations.insert(
            "io.github.seccomp.libseccomp.version".into(),
            format!("{}.{}.{}", v.major, v.minor, v.micro),
        );
    }
    // runc's key, which tools read to learn that checkpoint/restore (CRIU) is built in; the CRIU
    // binary itself is only looked for when a checkpoint runs.
    annotations.insert(
        "org.opencontainers.runc.checkpoint.enabled".into(),
        "true".into(),
    );
    annotations.insert(
        "org.hako.version".into(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    annotations
}

fn linux() -> Linux {
    Linux {
        namespaces: NAMESPACES.to_vec(),
        capabilities: capabilities(),
        cgroup: cgroup(),
        seccomp: seccomp(),
        // The spec: whether the runtime supports them, "irrelevant to the availability"
        // on the host. This build applies both labels (security::lsm) where the host has
        // the LSM; a host without it refuses a profile (AppArmor) or ignores a label
        // (SELinux), at create.
        apparmor: Enabled { enabled: true },
        selinux: Enabled { enabled: true },
        // Applied through resctrl where it is mounted (crate::resctrl), refused naming the
        // field where it is not.
        intel_rdt: IntelRdt {
            enabled: true,
            schemata: true,
            monitoring: true,
        },
        memory_policy: memory_policy(),
        mount_extensions: MountExtensions {
            idmap: Enabled { enabled: true },
        },
        net_devices: Enabled { enabled: true },
    }
}

/// Every capability the running kernel knows, in the kernel's numbering order.
fn capabilities() -> Vec<String> {
    let mut caps: Vec<caps::Capability> =
        caps::runtime::thread_all_supported().into_iter().collect();
    caps.sort_by_key(|c| c.index());
    caps.iter().map(|c| c.to_string()).collect()
}

fn cgroup() -> Cgroup {
    Cgroup {
        v1: true,
        v2: true,
        // Only when systemd answers on the system bus: --systemd-cgroup fails otherwise.
        systemd: crate::cgroups::systemd::Systemd::connect().is_ok(),
        // The caller's own systemd instance answers on the user bus (found as runc
        // finds it, short of asking systemctl).
        systemd_user: crate::cgroups::systemd::booted()
            && crate::cgroups::systemd::user_bus_path_quick().is_some_and(|p| {
                crate::cgroups::dbus::Bus::connect_as(&p, crate::cgroups::systemd::owner_uid())
                    .is_ok()
            }),
        rdma: true,
    }
}

fn seccomp() -> Seccomp {
    let enabled = crate::security::seccomp::kernel_enabled();
    Seccomp {
        enabled,
        actions: crate::security::seccomp::ACTIONS.to_vec(),
        operators: crate::security::seccomp::OPERATORS.to_vec(),
        archs: crate::security::seccomp::supported_archs(),
        known_flags: crate::security::seccomp::KNOWN_FLAGS
            .iter()
            .map(|(n, _)| *n)
            .collect(),
        supported_flags: if enabled {
            crate::security::seccomp::supported_flags()
        } else {
            vec![]
        },
    }
}

fn memory_policy() -> MemoryPolicy {
    MemoryPolicy {
        modes: vec![
            "MPOL_BIND",
            "MPOL_DEFAULT",
            "MPOL_INTERLEAVE",
            "MPOL_LOCAL",
            "MPOL_PREFERRED",
            "MPOL_PREFERRED_MANY",
            "MPOL_WEIGHTED_INTERLEAVE",
        ],
        flags: vec![
            "MPOL_F_NUMA_BALANCING",
            "MPOL_F_RELATIVE_NODES",
            "MPOL_F_STATIC_NODES",
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_and_order() {
        let text = serde_json::to_string(&features()).unwrap();
        let keys = [
            "\"ociVersionMin\"",
            "\"ociVersionMax\"",
            "\"hooks\"",
            "\"mountOptions\"",
            "\"linux\"",
            "\"namespaces\"",
            "\"capabilities\"",
            "\"cgroup\"",
            "\"seccomp\"",
            "\"apparmor\"",
            "\"selinux\"",
            "\"intelRdt\"",
            "\"mountExtensions\"",
            "\"netDevices\"",
            "\"annotations\"",
            "\"potentiallyUnsafeConfigAnnotations\"",
        ];
        let pos: Vec<usize> = keys
            .iter()
            .map(|k| text.find(&format!("{k}:")).unwrap())
            .collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert!(text.contains("\"rro\""));
        assert!(text.contains("\"tmpcopyup\""));
    }
}
