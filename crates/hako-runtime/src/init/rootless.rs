//! Rootless mode: hako run by an unprivileged user (docs/rootless.md).
//!
//! runc's `--rootless auto|true|false` decides only how cgroups are treated (a hierarchy the
//! caller cannot write is skipped, not an error); the rest follows from the runtime's euid, as in
//! runc: an unprivileged runtime writes the id maps it may or calls newuidmap/newgidmap
//! ([`crate::init::idmap`]), and what no unprivileged process can do is checked here, before anything
//! exists, with an error naming the config field. Nothing in this module runs when the runtime's
//! euid is 0 and `--rootless` is not `true`, so root mode pays no extra syscall.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::PathBuf;

use hako_spec::oci::{Linux, LinuxIdMapping, Process, Spec, User};

use crate::error::{Error, Result};

/// `--rootless`: runc's values (`auto` is also what an absent flag means).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Auto,
    On,
    Off,
}

impl Mode {
    /// runc's parseBoolOrAuto: `auto` or empty, else Go's strconv.ParseBool spellings.
    pub fn parse(s: Option<&str>) -> Result<Mode> {
        Ok(match s.unwrap_or("") {
            "" | "auto" | "AUTO" | "Auto" => Mode::Auto,
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Mode::On,
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Mode::Off,
            other => {
                return Err(Error::Usage(format!(
                    "invalid --rootless value {other:?}: want true, false or auto"
                )))
            }
        })
    }

    /// Whether cgroups are handled rootless (runc's shouldUseRootlessCgroupManager): `auto` is
    /// on for a non-root euid, or inside a user namespace that is not the initial one (unless
    /// systemd manages the cgroups). Only called for `auto` once it matters.
    pub fn cgroups(self, euid: u32, systemd: bool) -> bool {
        match self {
            Mode::On => true,
            Mode::Off => false,
            Mode::Auto => euid != 0 || (!systemd && in_user_namespace()),
        }
    }
}

/// With `--systemd-cgroup`: whether the unit is the caller's own systemd instance's, over the
/// user bus, rather than PID 1's (runc's shouldUseRootlessCgroupManager with the systemd
/// driver): `auto` is on for a non-root euid, and for root inside a user namespace whose root
/// is an unprivileged user outside (rootless podman's; runc asks `busctl --user status` for
/// that OwnerUID, hako reads its uid map).
pub fn systemd_user(mode: Mode, euid: u32) -> bool {
    match mode {
        Mode::On => true,
        Mode::Off => false,
        Mode::Auto => {
            euid != 0 || (in_user_namespace() && crate::cgroups::systemd::owner_uid() != 0)
        }
    }
}

/// True inside a user namespace other than the initial one (whose uid map is the full range).
pub fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| {
            let f: Vec<&str> = m.split_whitespace().collect();
            f != ["0", "0", "4294967295"]
        })
        .unwrap_or(false)
}

/// The default `--root`: `/run/hako` for root, `$XDG_RUNTIME_DIR/hako` for everyone else (and for
/// root inside a user namespace when the variable is set), as runc does with `runc`. An unset or
/// unusable variable is an error naming it: falling back to a shared directory would mix users'
/// containers or fail later with a less useful message.
pub fn default_root(euid: u32) -> Result<PathBuf> {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty());
    if euid == 0 {
        // Only a root runtime with XDG_RUNTIME_DIR set pays for the user namespace check.
        let in_ns = xdg.is_some()
            && std::env::var("USER").map_or(true, |u| u != "root")
            && in_user_namespace();
        if !in_ns {
            return Ok(PathBuf::from("/run/hako"));
        }
    }
    let Some(xdg) = xdg else {
        return Err(Error::Usage(
            "rootless: XDG_RUNTIME_DIR is not set: set it to a directory the user owns \
             (e.g. /run/user/$(id -u)) or pass --root"
                .into(),
        ));
    };
    let root = PathBuf::from(xdg).join("hako");
    let unusable = |e: std::io::Error| {
        Error::Usage(format!(
            "rootless: the path in $XDG_RUNTIME_DIR must be writable by the user: {}: {}",
            root.display(),
            hako_spec::error::io_text(&e)
        ))
    };
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&root)
    {
        Ok(()) => {}
        Err(e) => return Err(unusable(e)),
    }
    // runc's mode for it: private, and sticky so the tmpfs cleaner of a user session leaves it.
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o1700)).map_err(unusable)?;
    Ok(root)
}

/// The id `id` in the container, on the host, per `maps`; None when unmapped.
fn host_id(maps: &[LinuxIdMapping], id: u32) -> Option<u32> {
    maps.iter().find_map(|m| {
        let off = id.checked_sub(m.container_id())?;
        (off < m.size()).then(|| m.host_id() + off)
    })
}

/// What an unprivileged runtime cannot do, refused before anything exists, naming the field:
/// the process's ids must be mapped, supplementary groups need `setgroups` (denied when only the
/// caller's own gid is mapped), and no rlimit may exceed the caller's hard limit (raising one
/// needs CAP_SYS_RESOURCE in the initial user namespace).
pub fn check(spec: &Spec, egid: u32) -> Result<()> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    let new_user = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == hako_spec::oci::LinuxNamespaceType::User && n.path().is_none());
    let Some(process) = spec.process().as_ref() else {
        return Ok(());
    };
    if new_user {
        check_ids_mapped(spec, linux, process.user(), egid)?;
        check_devices_on_host(linux)?;
    }
    check_rlimits(process)
}

/// The process's uid, gid and additional gids must have a host id in the new user namespace.
fn check_ids_mapped(spec: &Spec, linux: &Linux, u: &User, egid: u32) -> Result<()> {
    let uids = linux.uid_mappings().as_deref().unwrap_or(&[]);
    let gids = linux.gid_mappings().as_deref().unwrap_or(&[]);
    if host_id(uids, u.uid()).is_none() {
        return Err(Error::Usage(format!(
            "process.user.uid: {} is not mapped in linux.uidMappings (rootless)",
            u.uid()
        )));
    }
    if host_id(gids, u.gid()).is_none() {
        return Err(Error::Usage(format!(
            "process.user.gid: {} is not mapped in linux.gidMappings (rootless)",
            u.gid()
        )));
    }
    let extra = u.additional_gids().as_deref().unwrap_or(&[]);
    if crate::init::idmap::denies_setgroups(spec, egid) && !extra.is_empty() {
        return Err(Error::Usage(
            "process.user.additionalGids: cannot set any additional groups in a rootless \
             container that maps only the caller's own gid (map a subgid range instead)"
                .into(),
        ));
    }
    if let Some(g) = extra.iter().find(|g| host_id(gids, **g).is_none()) {
        return Err(Error::Usage(format!(
            "process.user.additionalGids: {g} is not mapped in linux.gidMappings (rootless)"
        )));
    }
    Ok(())
}

/// No mknod in a user namespace: each node is the host's, bind-mounted (devices.rs).
fn check_devices_on_host(linux: &Linux) -> Result<()> {
    for (i, d) in linux.devices().iter().flatten().enumerate() {
        let want = crate::fs::devices::from_spec(d);
        if !host_has_node(&want) {
            return Err(Error::Usage(format!(
                "linux.devices[{i}]: {}: a rootless container gets the host's device node \
                 bind-mounted (mknod needs privilege), and the host has no such node ({}:{})",
                want.path.display(),
                want.major,
                want.minor
            )));
        }
    }
    Ok(())
}

/// Whether the host has `want`'s node, of its kind and (but for a FIFO) its numbers.
fn host_has_node(want: &crate::fs::devices::Device) -> bool {
    std::fs::metadata(&want.path).is_ok_and(|m| {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let t = m.file_type();
        let kind_ok = match want.kind {
            nix::sys::stat::SFlag::S_IFBLK => t.is_block_device(),
            nix::sys::stat::SFlag::S_IFIFO => t.is_fifo(),
            _ => t.is_char_device(),
        };
        kind_ok
            && (want.kind == nix::sys::stat::SFlag::S_IFIFO
                || m.rdev() == nix::sys::stat::makedev(want.major, want.minor))
    })
}

/// No rlimit above the caller's own hard limit.
fn check_rlimits(process: &Process) -> Result<()> {
    for (i, r) in process.rlimits().iter().flatten().enumerate() {
        let Some(res) = crate::init::attrs::rlimits::rlimit_resource(r.typ()) else {
            continue;
        };
        let mut own = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one rlimit struct we own.
        if unsafe { libc::getrlimit(res, &mut own) } != 0 {
            continue;
        }
        if r.hard() > own.rlim_max {
            let name = serde_json::to_string(&r.typ()).unwrap_or_default();
            return Err(Error::Usage(format!(
                "process.rlimits[{i}]: {} hard limit {} is above the caller's hard limit {}: \
                 an unprivileged runtime cannot raise it",
                name.trim_matches('"'),
                r.hard(),
                own.rlim_max
            )));
        }
    }
    Ok(())
}

/// `process.oomScoreAdj` for an unprivileged runtime: it may raise the score, never lower it
/// below its own (the kernel refuses with EACCES). runc and crun leave it then; so does hako,
/// with a warning, since podman passes its own value and a lower one cannot be honoured.
pub fn oom_score_adj_allowed(want: i32) -> bool {
    let own = std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .unwrap_or(0);
    if want < own {
        crate::log::warn(&format!(
            "process.oomScoreAdj: {want} is below the runtime's own {own}; an unprivileged \
             runtime cannot lower it, left at {own}"
        ));
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_runc_values() {
        assert_eq!(Mode::parse(None).unwrap(), Mode::Auto);
        assert_eq!(Mode::parse(Some("auto")).unwrap(), Mode::Auto);
        assert_eq!(Mode::parse(Some("true")).unwrap(), Mode::On);
        assert_eq!(Mode::parse(Some("0")).unwrap(), Mode::Off);
        assert!(Mode::parse(Some("maybe"))
            .unwrap_err()
            .to_string()
            .contains("--rootless"));
    }

    fn rootless_spec(user: &str, devices: &str) -> Spec {
        serde_json::from_str(&format!(
            r#"{{"ociVersion":"1.3.0","root":{{"path":"rootfs"}},
            "process":{{"cwd":"/","args":["true"],"user":{user}}},
            "linux":{{"namespaces":[{{"type":"user"}},{{"type":"mount"}}],
                "uidMappings":[{{"containerID":0,"hostID":1000,"size":1}}],
                "gidMappings":[{{"containerID":0,"hostID":1000,"size":1}}],
                "devices":{devices}}}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn unmapped_ids_and_missing_host_nodes_are_refused() {
        let null = r#"[{"path":"/dev/null","type":"c","major":1,"minor":3}]"#;
        check(&rootless_spec(r#"{"uid":0,"gid":0}"#, null), 1000).unwrap();
        let e = check(&rootless_spec(r#"{"uid":0,"gid":5}"#, null), 1000).unwrap_err();
        assert_eq!(
            e.to_string(),
            "process.user.gid: 5 is not mapped in linux.gidMappings (rootless)"
        );
        let wrong = r#"[{"path":"/dev/null","type":"c","major":1,"minor":5}]"#;
        let e = check(&rootless_spec(r#"{"uid":0,"gid":0}"#, wrong), 1000).unwrap_err();
        assert!(
            e.to_string().starts_with("linux.devices[0]: /dev/null: "),
            "{e}"
        );
    }

    #[test]
    fn maps_ids() {
        let m: Vec<LinuxIdMapping> = serde_json::from_str(
            r#"[{"containerID":0,"hostID":1000,"size":1},{"containerID":1,"hostID":100000,"size":65536}]"#,
        )
        .unwrap();
        assert_eq!(host_id(&m, 0), Some(1000));
        assert_eq!(host_id(&m, 1), Some(100000));
        assert_eq!(host_id(&m, 65536), Some(165535));
        assert_eq!(host_id(&m, 65537), None);
    }
}
