//! Checks that turn a typed-but-wrong config.json into one precise error before any kernel work.
//! The rules mirror runc's `libcontainer/configs/validate` where runc has one, so a config that runc
//! rejects is rejected here with the field named.

use std::collections::HashSet;
use std::path::Path;

use oci_spec::runtime::{Linux, LinuxNamespaceType, Spec};

use crate::{Result, SpecError};

/// The runtime-spec major version hako implements.
pub const SUPPORTED_MAJOR: &str = "1";

pub fn validate(spec: &Spec) -> Result<()> {
    version(spec.version())?;
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| SpecError::invalid("root", "is required"))?;
    if root.path().as_os_str().is_empty() {
        return Err(SpecError::invalid("root.path", "is required"));
    }
    process(spec)?;
    mounts(spec)?;
    linux(spec)?;
    net_devices(spec)?;
    intel_rdt(spec)?;
    hooks(spec)?;
    Ok(())
}

fn version(v: &str) -> Result<()> {
    if v.is_empty() {
        return Err(SpecError::invalid("ociVersion", "is required"));
    }
    let major = v.split('.').next().unwrap_or_default();
    if major != SUPPORTED_MAJOR || v.split('.').count() < 2 {
        return Err(SpecError::invalid(
            "ociVersion",
            format!("unsupported version {v:?} (hako implements runtime-spec 1.x)"),
        ));
    }
    Ok(())
}

/// The spec makes `process` required only when `start` is called: `create` goes without one and
/// `start` refuses.
fn process(spec: &Spec) -> Result<()> {
    match spec.process() {
        Some(p) => validate_process(p),
        None => Ok(()),
    }
}

/// The rules for one `process` object: the container's, or an `exec --process` file's.
pub fn validate_process(p: &oci_spec::runtime::Process) -> Result<()> {
    if p.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(SpecError::invalid("process.args", "must not be empty"));
    }
    if !p.cwd().is_absolute() {
        return Err(SpecError::invalid(
            "process.cwd",
            format!("{:?} is not an absolute path", p.cwd()),
        ));
    }
    if let Some(env) = p.env() {
        for (i, e) in env.iter().enumerate() {
            if !e.contains('=') || e.starts_with('=') {
                return Err(SpecError::invalid(
                    format!("process.env[{i}]"),
                    format!("{e:?} is not of the form KEY=VALUE"),
                ));
            }
        }
    }
    if let Some(adj) = p.oom_score_adj() {
        if !(-1000..=1000).contains(&adj) {
            return Err(SpecError::invalid(
                "process.oomScoreAdj",
                format!("{adj} is outside -1000..1000"),
            ));
        }
    }
    if let Some(rlimits) = p.rlimits() {
        let mut seen = HashSet::new();
        for (i, r) in rlimits.iter().enumerate() {
            if r.soft() > r.hard() {
                return Err(SpecError::invalid(
                    format!("process.rlimits[{i}]"),
                    format!("soft limit {} exceeds hard limit {}", r.soft(), r.hard()),
                ));
            }
            if !seen.insert(format!("{:?}", r.typ())) {
                return Err(SpecError::invalid(
                    format!("process.rlimits[{i}]"),
                    format!("duplicate type {:?}", r.typ()),
                ));
            }
        }
    }
    if let Some(umask) = p.user().umask() {
        if umask > 0o777 {
            return Err(SpecError::invalid(
                "process.user.umask",
                format!("{umask:#o} is not a permission mask"),
            ));
        }
    }
    crate::attrs::validate_process(p)
}

fn mounts(spec: &Spec) -> Result<()> {
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if m.destination().as_os_str().is_empty() {
            return Err(SpecError::invalid(
                format!("mounts[{i}].destination"),
                "is required",
            ));
        }
        let bind = m
            .options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind")
            || m.typ().as_deref() == Some("bind");
        if !bind && m.typ().as_deref().is_none_or(str::is_empty) {
            return Err(SpecError::invalid(
                format!("mounts[{i}].type"),
                format!("is required for {:?} (not a bind mount)", m.destination()),
            ));
        }
        if bind && m.source().as_ref().is_none_or(|s| s.as_os_str().is_empty()) {
            return Err(SpecError::invalid(
                format!("mounts[{i}].source"),
                "is required for a bind mount",
            ));
        }
    }
    Ok(())
}

fn has_ns(spec: &Spec, t: LinuxNamespaceType) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == t))
}

fn linux(spec: &Spec) -> Result<()> {
    if let Some(m) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.memory_policy().as_ref())
    {
        crate::attrs::validate_memory_policy(m)?;
    }
    uts_names(spec)?;
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    namespaces(linux)?;
    id_mappings(spec, linux)?;
    time_offsets(linux)?;
    rootfs_propagation(linux)?;
    masked_and_readonly_paths(linux)?;
    devices(linux)?;
    for key in linux.sysctl().iter().flatten().map(|(k, _)| k) {
        sysctl(spec, key)?;
    }
    without_mount_ns(spec, linux)
}

fn uts_names(spec: &Spec) -> Result<()> {
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty())
        && !has_ns(spec, LinuxNamespaceType::Uts)
    {
        return Err(SpecError::invalid(
            "hostname",
            "unable to set hostname without a private UTS namespace",
        ));
    }
    if spec.domainname().as_ref().is_some_and(|h| !h.is_empty())
        && !has_ns(spec, LinuxNamespaceType::Uts)
    {
        return Err(SpecError::invalid(
            "domainname",
            "unable to set domainname without a private UTS namespace",
        ));
    }
    Ok(())
}

/// Each namespace type once, joined by an absolute path.
fn namespaces(linux: &Linux) -> Result<()> {
    let mut seen = HashSet::new();
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        if !seen.insert(ns.typ()) {
            return Err(SpecError::invalid(
                format!("linux.namespaces[{i}]"),
                // runc's words (Go's print of its namespace struct).
                format!(
                    "malformed spec file: duplicated ns {{\"{}\" \"{}\"}}",
                    serde_json::to_value(ns.typ())
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    ns.path()
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                ),
            ));
        }
        if let Some(p) = ns.path() {
            if !p.is_absolute() {
                return Err(SpecError::invalid(
                    format!("linux.namespaces[{i}].path"),
                    format!("{p:?} is not an absolute path"),
                ));
            }
        }
    }
    Ok(())
}

/// Mappings only with a user namespace, and both of them (non-empty) for a new one.
fn id_mappings(spec: &Spec, linux: &Linux) -> Result<()> {
    let user_ns = has_ns(spec, LinuxNamespaceType::User);
    let new_user_ns = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
    let maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if maps && !user_ns {
        return Err(SpecError::invalid(
            "linux.uidMappings",
            // runc 1.3's words (it ignores such mappings: hako refuses rather than drop them).
            "user namespace mappings specified, but user namespace isn't enabled in the config",
        ));
    }
    // runc 1.3's words for each.
    for (field, maps, what) in [
        ("linux.uidMappings", linux.uid_mappings(), "uid"),
        ("linux.gidMappings", linux.gid_mappings(), "gid"),
    ] {
        if new_user_ns && maps.as_ref().is_none_or(|m| m.is_empty()) {
            return Err(SpecError::invalid(
                field,
                format!("user namespaces enabled, but no {what} mappings found"),
            ));
        }
    }
    for (field, maps) in [
        ("linux.uidMappings", linux.uid_mappings()),
        ("linux.gidMappings", linux.gid_mappings()),
    ] {
        for (i, m) in maps.iter().flatten().enumerate() {
            if m.size() == 0 {
                return Err(SpecError::invalid(
                    format!("{field}[{i}].size"),
                    "must be greater than 0",
                ));
            }
        }
    }
    Ok(())
}

fn time_offsets(linux: &Linux) -> Result<()> {
    if linux.time_offsets().as_ref().is_none_or(|t| t.is_empty()) {
        return Ok(());
    }
    // runc 1.3's words. Offsets can only be written into a namespace nobody has entered: a
    // joined one has its own (ignoring these would lie about the container's clocks).
    let time = linux
        .namespaces()
        .as_ref()
        .and_then(|ns| ns.iter().find(|n| n.typ() == LinuxNamespaceType::Time));
    match time {
        None => {
            return Err(SpecError::invalid(
                "linux.timeOffsets",
                "time namespace offsets specified, but time namespace isn't enabled in the config",
            ))
        }
        Some(n) if n.path().as_ref().is_some_and(|p| !p.as_os_str().is_empty()) => {
            return Err(SpecError::invalid(
                "linux.timeOffsets",
                "time namespace enabled, but both namespace path and time offsets specified -- you may only provide one",
            ))
        }
        Some(_) => {}
    }
    for clock in linux.time_offsets().iter().flatten().map(|(k, _)| k) {
        if clock != "monotonic" && clock != "boottime" {
            return Err(SpecError::invalid(
                format!("linux.timeOffsets.{clock}"),
                "only monotonic and boottime clocks can be offset",
            ));
        }
    }
    Ok(())
}

fn rootfs_propagation(linux: &Linux) -> Result<()> {
    const OK: &[&str] = &[
        "",
        "private",
        "rprivate",
        "slave",
        "rslave",
        "shared",
        "rshared",
        "unbindable",
        "runbindable",
    ];
    match linux.rootfs_propagation() {
        Some(p) if !OK.contains(&p.as_str()) => Err(SpecError::invalid(
            "linux.rootfsPropagation",
            format!("unknown propagation {p:?}"),
        )),
        _ => Ok(()),
    }
}

fn masked_and_readonly_paths(linux: &Linux) -> Result<()> {
    for (field, paths) in [
        ("linux.maskedPaths", linux.masked_paths()),
        ("linux.readonlyPaths", linux.readonly_paths()),
    ] {
        for (i, p) in paths.iter().flatten().enumerate() {
            if !p.starts_with('/') {
                return Err(SpecError::invalid(
                    format!("{field}[{i}]"),
                    format!("{p:?} is not an absolute path"),
                ));
            }
        }
    }
    Ok(())
}

fn devices(linux: &Linux) -> Result<()> {
    for (i, d) in linux.devices().iter().flatten().enumerate() {
        if !d.path().is_absolute() || d.path().starts_with("/dev/..") {
            return Err(SpecError::invalid(
                format!("linux.devices[{i}].path"),
                format!("{:?} is not an absolute path", d.path()),
            ));
        }
        if d.major() < 0 || d.minor() < 0 {
            return Err(SpecError::invalid(
                format!("linux.devices[{i}]"),
                "major and minor must not be negative",
            ));
        }
    }
    Ok(())
}

/// The host's mount namespace is inherited when `linux.namespaces` has no "mount" (the spec);
/// then nothing may be mounted or remounted, which would change the host's mounts (and stay
/// there): runc's error for masked and read-only paths, one naming the field for the rest.
fn without_mount_ns(spec: &Spec, linux: &Linux) -> Result<()> {
    if has_ns(spec, LinuxNamespaceType::Mount) {
        return Ok(());
    }
    for (field, paths) in [
        ("linux.maskedPaths", linux.masked_paths()),
        ("linux.readonlyPaths", linux.readonly_paths()),
    ] {
        if paths.as_ref().is_some_and(|p| !p.is_empty()) {
            return Err(SpecError::invalid(
                field,
                "unable to restrict sys entries without a private MNT namespace",
            ));
        }
    }
    let needs = |field: &str, what: &str| {
        Err(SpecError::invalid(
            field,
            format!("{what} needs a private mount namespace (linux.namespaces has no \"mount\"); the host's would be changed"),
        ))
    };
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        return needs("root.readonly", "a read-only root");
    }
    if linux.devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return needs("linux.devices", "creating device nodes");
    }
    if linux
        .rootfs_propagation()
        .as_ref()
        .is_some_and(|p| !p.is_empty())
    {
        return needs("linux.rootfsPropagation", "a rootfs propagation");
    }
    if spec.process().as_ref().and_then(|p| p.terminal()) == Some(true) {
        return needs(
            "process.terminal",
            "a terminal (the container's own devpts)",
        );
    }
    Ok(())
}

/// runc only lets a container set sysctls that are namespaced by a namespace the container owns,
/// otherwise a container would change the host's kernel settings.
fn sysctl(spec: &Spec, key: &str) -> Result<()> {
    let field = || format!("linux.sysctl.{key}");
    let ns_for = |k: &str| -> Option<LinuxNamespaceType> {
        const IPC: &[&str] = &[
            "kernel.msgmax",
            "kernel.msgmnb",
            "kernel.msgmni",
            "kernel.sem",
            "kernel.shmall",
            "kernel.shmmax",
            "kernel.shmmni",
            "kernel.shm_rmid_forced",
        ];
        if IPC.contains(&k) || k.starts_with("fs.mqueue.") {
            Some(LinuxNamespaceType::Ipc)
        } else if k.starts_with("net.") {
            Some(LinuxNamespaceType::Network)
        } else if k == "kernel.hostname" || k == "kernel.domainname" {
            Some(LinuxNamespaceType::Uts)
        } else {
            None
        }
    };
    if key.contains("..") || key.contains('/') && key.contains('.') {
        return Err(SpecError::invalid(field(), "malformed sysctl name"));
    }
    let normal = key.replace('/', ".");
    // runc's words.
    match ns_for(&normal) {
        Some(LinuxNamespaceType::Uts)
            if normal == "kernel.hostname" && has_ns(spec, LinuxNamespaceType::Uts) =>
        {
            Err(SpecError::invalid(
                field(),
                format!(
                    "sysctl {key:?} is not allowed as it conflicts with the OCI \"hostname\" field"
                ),
            ))
        }
        Some(t) if has_ns(spec, t) => Ok(()),
        Some(LinuxNamespaceType::Ipc) => Err(SpecError::invalid(
            field(),
            format!("sysctl {key:?} is not allowed in the hosts ipc namespace"),
        )),
        Some(LinuxNamespaceType::Network) => Err(SpecError::invalid(
            field(),
            format!("sysctl {key:?} not allowed in host network namespace"),
        )),
        _ => Err(SpecError::invalid(
            field(),
            format!("sysctl {key:?} is not in a separate kernel namespace"),
        )),
    }
}

fn hooks(spec: &Spec) -> Result<()> {
    let Some(h) = spec.hooks() else { return Ok(()) };
    let sets = [
        ("prestart", h.prestart()),
        ("createRuntime", h.create_runtime()),
        ("createContainer", h.create_container()),
        ("startContainer", h.start_container()),
        ("poststart", h.poststart()),
        ("poststop", h.poststop()),
    ];
    for (name, hooks) in sets {
        for (i, hook) in hooks.iter().flatten().enumerate() {
            if !Path::new(hook.path()).is_absolute() {
                return Err(SpecError::invalid(
                    format!("hooks.{name}[{i}].path"),
                    format!("{:?} is not an absolute path", hook.path()),
                ));
            }
            if hook.timeout().is_some_and(|t| t <= 0) {
                return Err(SpecError::invalid(
                    format!("hooks.{name}[{i}].timeout"),
                    "must be a positive number of seconds",
                ));
            }
        }
    }
    Ok(())
}

/// An interface name the kernel accepts (`dev_valid_name`): 1 to 15 bytes, not `.` or `..`, no
/// `/`, `:` or whitespace.
fn valid_ifname(n: &str) -> bool {
    !n.is_empty()
        && n.len() < 16
        && n != "."
        && n != ".."
        && !n.chars().any(|c| c == '/' || c == ':' || c.is_whitespace())
}

/// `linux.netDevices` (spec 1.3): the devices go into the container's own network namespace, so
/// there must be a new one (moving them into a namespace joined by path, or the host's, is not
/// what the field means); names must be ones the kernel takes, and no two devices may end up
/// with the same name inside.
fn net_devices(spec: &Spec) -> Result<()> {
    let Some(devs) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.net_devices().as_ref())
        .filter(|d| !d.is_empty())
    else {
        return Ok(());
    };
    let new_netns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter()
                .any(|n| n.typ() == LinuxNamespaceType::Network && n.path().is_none())
        });
    if !new_netns {
        return Err(SpecError::invalid(
            "linux.netDevices",
            "requires a new network namespace (a \"network\" entry without a path in linux.namespaces)",
        ));
    }
    let mut inside = HashSet::new();
    let mut names: Vec<_> = devs.iter().collect();
    names.sort_by(|a, b| a.0.cmp(b.0));
    for (host, dev) in names {
        let field = format!("linux.netDevices[{host:?}]");
        if !valid_ifname(host) {
            return Err(SpecError::invalid(field, "is not a valid interface name"));
        }
        let name = dev.name().as_deref().unwrap_or(host);
        if !valid_ifname(name) {
            return Err(SpecError::invalid(
                format!("{field}.name"),
                format!("{name:?} is not a valid interface name"),
            ));
        }
        // `%d` is a template the kernel completes with a free number (spec 1.3): several
        // devices may share one.
        if !name.contains("%d") && !inside.insert(name) {
            return Err(SpecError::invalid(
                format!("{field}.name"),
                format!("{name:?} is the name of another device in the container"),
            ));
        }
    }
    Ok(())
}

/// `linux.intelRdt.closID` names a directory right under the resctrl root (runc's rule: one
/// path component, not `.` or `..`); a `schemata` line is one line of the `schemata` file.
fn intel_rdt(spec: &Spec) -> Result<()> {
    let Some(r) = spec.linux().as_ref().and_then(|l| l.intel_rdt().as_ref()) else {
        return Ok(());
    };
    if let Some(id) = r.clos_id() {
        if id.is_empty() || id == "." || id == ".." || id.contains('/') || id.contains('\0') {
            return Err(SpecError::invalid(
                "linux.intelRdt.closID",
                format!("{id:?} is not a valid resctrl group name"),
            ));
        }
    }
    for (i, line) in r.schemata().iter().flatten().enumerate() {
        if line.contains('\n') {
            return Err(SpecError::invalid(
                format!("linux.intelRdt.schemata[{i}]"),
                "must be a single line",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::parse_spec;

    fn check(json: &str) -> Result<()> {
        validate(&parse_spec(json).unwrap().0)
    }

    const BASE: &str = r#""ociVersion":"1.0.2","root":{"path":"rootfs"}"#;

    fn with(extra: &str, process: &str) -> String {
        format!(r#"{{{BASE},"process":{{"cwd":"/","user":{{}},"args":["sh"]{process}}}{extra}}}"#)
    }

    fn field(r: Result<()>) -> String {
        match r {
            Err(SpecError::Invalid { field, .. }) => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn net_devices_need_a_new_netns_and_valid_names() {
        let ns = r#","linux":{"namespaces":[{"type":"network"}],"netDevices":"#;
        assert!(check(&with(
            &format!(r#"{ns}{{"eth1":{{"name":"ctr0"}},"eth2":{{}}}}}}"#),
            ""
        ))
        .is_ok());
        // A `%d` template may be shared.
        let shared = format!(r#"{ns}{{"eth1":{{"name":"net%d"}},"eth2":{{"name":"net%d"}}}}}}"#);
        assert!(check(&with(&shared, "")).is_ok());
        let none = r#","linux":{"netDevices":{"eth1":{}}}"#;
        assert_eq!(field(check(&with(none, ""))), "linux.netDevices");
        let joined = r#","linux":{"namespaces":[{"type":"network","path":"/proc/1/ns/net"}],"netDevices":{"eth1":{}}}"#;
        assert_eq!(field(check(&with(joined, ""))), "linux.netDevices");
        for (devs, f) in [
            (
                r#"{"eth1":{"name":"a/b"}}"#,
                r#"linux.netDevices["eth1"].name"#,
            ),
            (
                r#"{"eth1":{"name":"0123456789abcdef"}}"#,
                r#"linux.netDevices["eth1"].name"#,
            ),
            (r#"{"e th":{}}"#, r#"linux.netDevices["e th"]"#),
            (
                r#"{"eth1":{"name":"x"},"eth2":{"name":"x"}}"#,
                r#"linux.netDevices["eth2"].name"#,
            ),
            (
                r#"{"eth1":{},"eth2":{"name":"eth1"}}"#,
                r#"linux.netDevices["eth2"].name"#,
            ),
        ] {
            assert_eq!(
                field(check(&with(&format!("{ns}{devs}}}"), ""))),
                f,
                "{devs}"
            );
        }
    }

    #[test]
    fn intel_rdt_clos_id_is_one_component() {
        let ok = r#","linux":{"intelRdt":{"closID":"guaranteed","schemata":["L3:0=f"]}}"#;
        assert!(check(&with(ok, "")).is_ok());
        for bad in ["..", "a/b", ""] {
            let j = format!(r#","linux":{{"intelRdt":{{"closID":"{bad}"}}}}"#);
            assert_eq!(
                field(check(&with(&j, ""))),
                "linux.intelRdt.closID",
                "{bad}"
            );
        }
        let j = r#","linux":{"intelRdt":{"schemata":["L3:0=f\nMB:0=1"]}}"#;
        assert_eq!(field(check(&with(j, ""))), "linux.intelRdt.schemata[0]");
    }

    #[test]
    fn minimal_ok() {
        check(&with("", "")).unwrap();
    }

    #[test]
    fn version_rules() {
        let j = with("", "").replace("1.0.2", "2.0.0");
        assert_eq!(field(check(&j)), "ociVersion");
        let j = with("", "").replace("\"1.0.2\"", "\"\"");
        assert_eq!(field(check(&j)), "ociVersion");
    }

    #[test]
    fn process_rules() {
        let j = with("", "").replace(r#""args":["sh"]"#, r#""args":[]"#);
        assert_eq!(field(check(&j)), "process.args");
        let j = with("", "").replace(r#""cwd":"/""#, r#""cwd":"rel""#);
        assert_eq!(field(check(&j)), "process.cwd");
        let j = with("", r#","oomScoreAdj":5000"#);
        assert_eq!(field(check(&j)), "process.oomScoreAdj");
        let j = with(
            "",
            r#","rlimits":[{"type":"RLIMIT_NOFILE","soft":10,"hard":5}]"#,
        );
        assert_eq!(field(check(&j)), "process.rlimits[0]");
    }

    #[test]
    fn namespace_rules() {
        let j = with(
            r#","linux":{"namespaces":[{"type":"pid"},{"type":"pid"}]}"#,
            "",
        );
        assert_eq!(field(check(&j)), "linux.namespaces[1]");
        let j = with(r#","linux":{"namespaces":[{"type":"user"}]}"#, "");
        assert_eq!(field(check(&j)), "linux.uidMappings");
        let j = with(r#","hostname":"h""#, "");
        assert_eq!(field(check(&j)), "hostname");
        let j = with(r#","linux":{"sysctl":{"kernel.panic":"1"}}"#, "");
        assert_eq!(field(check(&j)), "linux.sysctl.kernel.panic");
        let j = with(r#","linux":{"sysctl":{"net.ipv4.ip_forward":"1"}}"#, "");
        assert_eq!(field(check(&j)), "linux.sysctl.net.ipv4.ip_forward");
        let j = with(
            r#","linux":{"namespaces":[{"type":"network"}],"sysctl":{"net.ipv4.ip_forward":"1"}}"#,
            "",
        );
        check(&j).unwrap();
    }

    #[test]
    fn linux_part_rules() {
        let userns = r#"{"type":"user"},{"type":"mount"}"#;
        for (linux, f) in [
            (
                r#"{"uidMappings":[{"containerID":0,"hostID":0,"size":1}]}"#,
                "linux.uidMappings",
            ),
            (
                &format!(
                    r#"{{"namespaces":[{userns}],"uidMappings":[{{"containerID":0,"hostID":0,"size":1}}],"gidMappings":[{{"containerID":0,"hostID":0,"size":0}}]}}"#
                ),
                "linux.gidMappings[0].size",
            ),
            (
                r#"{"namespaces":[{"type":"mount","path":"rel"}]}"#,
                "linux.namespaces[0].path",
            ),
            (
                r#"{"timeOffsets":{"monotonic":{"secs":1}}}"#,
                "linux.timeOffsets",
            ),
            (
                r#"{"namespaces":[{"type":"time","path":"/proc/1/ns/time"}],"timeOffsets":{"monotonic":{"secs":1}}}"#,
                "linux.timeOffsets",
            ),
            (
                r#"{"namespaces":[{"type":"time"}],"timeOffsets":{"realtime":{"secs":1}}}"#,
                "linux.timeOffsets.realtime",
            ),
            (
                r#"{"namespaces":[{"type":"mount"}],"rootfsPropagation":"sideways"}"#,
                "linux.rootfsPropagation",
            ),
            (
                r#"{"namespaces":[{"type":"mount"}],"readonlyPaths":["/proc/sys","sys"]}"#,
                "linux.readonlyPaths[1]",
            ),
            (
                r#"{"namespaces":[{"type":"mount"}],"devices":[{"path":"/dev/../etc/x","type":"c","major":1,"minor":3}]}"#,
                "linux.devices[0].path",
            ),
            (
                r#"{"namespaces":[{"type":"mount"}],"devices":[{"path":"/dev/x","type":"c","major":-1,"minor":3}]}"#,
                "linux.devices[0]",
            ),
            (r#"{"maskedPaths":["/proc/kcore"]}"#, "linux.maskedPaths"),
        ] {
            assert_eq!(
                field(check(&with(&format!(r#","linux":{linux}"#), ""))),
                f,
                "{linux}"
            );
        }
        let ok = r#","linux":{"namespaces":[{"type":"time"},{"type":"mount"}],"timeOffsets":{"boottime":{"secs":1}},"rootfsPropagation":"rslave"}"#;
        check(&with(ok, "")).unwrap();
    }

    #[test]
    fn mount_rules() {
        let j = with(r#","mounts":[{"destination":"/x","source":"/y"}]"#, "");
        assert_eq!(field(check(&j)), "mounts[0].type");
        let j = with(r#","mounts":[{"destination":"/x","options":["bind"]}]"#, "");
        assert_eq!(field(check(&j)), "mounts[0].source");
    }
}
