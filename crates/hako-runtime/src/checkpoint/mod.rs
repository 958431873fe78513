//! `checkpoint` and `restore` through CRIU, as runc does them: one `criu swrk` child per
//! operation, spoken to in CRIU's RPC protobuf messages ([`rpc`], [`swrk`]). What CRIU cannot
//! know — which mounts are the host's, which namespaces were joined by path, where the new
//! cgroups are, where a restored terminal goes — is told to it here, in runc's terms, so
//! images move between hako and runc.

pub mod dump;
pub mod extmnt;
mod netlock;
pub mod restore;
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod rpc;
pub mod swrk;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use hako_spec::oci::Spec;

use crate::error::{Context, Error, Result};
use rpc::{CriuCgMode, CriuOpts};

pub use dump::{checkpoint, CheckpointOptions};
pub use restore::{restore, RestoreOptions};

/// The file (in the image directory) that records the init's stdio at dump, so restore can hand
/// pipes over (runc's name and format, a JSON array of `readlink /proc/<pid>/fd/N`).
pub const DESCRIPTORS: &str = "descriptors.json";

/// runc needs CRIU 3.0 for the version RPC itself.
const MIN_VERSION: u32 = 30000;

/// The options `checkpoint` and `restore` share (runc's flag names).
#[derive(Debug, Default, Clone)]
pub struct CriuOptions {
    /// `--criu`: a path, or a name looked up in PATH.
    pub criu: PathBuf,
    /// `--image-path` (default: `./checkpoint`).
    pub image_path: Option<PathBuf>,
    pub work_path: Option<PathBuf>,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub manage_cgroups_mode: Option<String>,
    /// `--empty-ns network`: the only one runc knows.
    pub empty_ns: Vec<String>,
    pub auto_dedup: bool,
    pub lazy_pages: bool,
}

impl CriuOptions {
    pub fn image_dir(&self) -> PathBuf {
        self.image_path.clone().unwrap_or_else(|| {
            std::env::current_dir()
                .unwrap_or_default()
                .join("checkpoint")
        })
    }
}

/// runc's `--manage-cgroups-mode` values.
fn cg_mode(v: Option<&str>) -> Result<CriuCgMode> {
    Ok(match v.unwrap_or("") {
        "" => CriuCgMode::Default,
        "soft" => CriuCgMode::Soft,
        "full" => CriuCgMode::Full,
        "strict" => CriuCgMode::Strict,
        "ignore" => CriuCgMode::Ignore,
        _ => return Err(Error::Usage("Invalid manage-cgroups-mode value".into())),
    })
}

/// runc never lets CRIU restore the network namespace's contents (it does not manage network
/// devices): CLONE_NEWNET is always in the mask; `--empty-ns network` only repeats it.
fn empty_ns_mask(names: &[String]) -> Result<u32> {
    let mut mask = libc::CLONE_NEWNET as u32;
    for n in names {
        match n.as_str() {
            "network" => mask |= libc::CLONE_NEWNET as u32,
            _ => return Err(Error::Usage(format!("namespace {n:?} is not supported"))),
        }
    }
    Ok(mask)
}

/// A directory opened for CRIU (which gets it as an fd number of ours: swrk inherits nothing
/// else, so the fd must survive exec).
fn open_dir(p: &Path) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        p,
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_RDONLY,
        nix::sys::stat::Mode::empty(),
    )
    .ctx("open", p)?;
    Ok(fd)
}

/// The options both requests carry, with the image (and work) directory fds.
fn base_opts(
    o: &CriuOptions,
    spec: &Spec,
    images: &OwnedFd,
    work: Option<&OwnedFd>,
    log_file: &str,
) -> Result<CriuOpts> {
    use std::os::fd::AsRawFd;
    let mode = cg_mode(o.manage_cgroups_mode.as_deref())?;
    let mut opts = CriuOpts {
        images_dir_fd: images.as_raw_fd(),
        work_dir_fd: work.map(|w| w.as_raw_fd()),
        log_level: Some(4),
        log_file: Some(log_file.into()),
        manage_cgroups: Some(true),
        notify_scripts: Some(true),
        shell_job: Some(o.shell_job),
        tcp_established: Some(o.tcp_established),
        ext_unix_sk: Some(o.ext_unix_sk),
        file_locks: Some(o.file_locks),
        empty_ns: Some(empty_ns_mask(&o.empty_ns)?),
        orphan_pts_master: Some(true),
        auto_dedup: Some(o.auto_dedup),
        lazy_pages: Some(o.lazy_pages),
        ..Default::default()
    };
    opts.set_manage_cgroups_mode(mode);
    opts.config_file = criu_config(spec);
    Ok(opts)
}

/// As runc: the `org.criu.config` annotation names a CRIU configuration file (empty: none);
/// without it, runc's own file, so settings made for runc apply to hako too.
fn criu_config(spec: &Spec) -> Option<String> {
    let annotated = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get("org.criu.config").cloned());
    match annotated {
        Some(f) if f.is_empty() => None,
        Some(f) => Some(f),
        None => Some("/etc/criu/runc.conf".into()),
    }
}

/// The log CRIU wrote, for the error line: where it is, and its first error.
fn log_hint(o: &CriuOptions, log_file: &str) -> String {
    let dir = o.work_path.clone().unwrap_or_else(|| o.image_dir());
    let path = dir.join(log_file);
    // CRIU logs a few errors it survives (raising RLIMIT_NOFILE without CAP_SYS_RESOURCE);
    // the ones that matter come last, just before "FAILED".
    let errors: Vec<String> = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("Error") && !l.contains("rlimit:") && !l.contains("FAILED"))
        .map(|l| l.trim().to_string())
        .collect();
    let quoted: Vec<&str> = errors
        .iter()
        .skip(errors.len().saturating_sub(3))
        .map(String::as_str)
        .collect();
    if quoted.is_empty() {
        format!("log file: {}", path.display())
    } else {
        format!("log file: {}: {}", path.display(), quoted.join("; "))
    }
}

/// Wraps a failed CRIU call's error with where its log is (runc: "criu failed: … log file: …").
fn with_log(e: Error, o: &CriuOptions, log_file: &str) -> Error {
    match e {
        Error::Usage(m) if m.starts_with("criu failed") => {
            Error::Usage(format!("{m}\n{}", log_hint(o, log_file)))
        }
        e => e,
    }
}

/// The version, refusing one older than runc's minimum.
fn checked_version(criu: &Path) -> Result<u32> {
    let v = swrk::version(criu)?;
    swrk::require(v, MIN_VERSION, "the version RPC")?;
    Ok(v)
}

/// Containers with idmapped mounts are refused before CRIU is asked anything: CRIU dumps a bind
/// mount of the host as an external mount and restore binds its source again, plainly, so the
/// restored container would see every file of it owned by nobody (or, without a user namespace,
/// by the host's ids). Nothing is dumped, and the container runs on.
pub fn refuse_idmapped(spec: &Spec, what: &str) -> Result<()> {
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let idmapped = m.uid_mappings().is_some()
            || m.gid_mappings().is_some()
            || m.options()
                .iter()
                .flatten()
                .any(|o| o == "idmap" || o == "ridmap" || o.starts_with("idmap="));
        if idmapped {
            return Err(Error::Usage(format!(
                "{what}: mounts[{i}] ({}) is an idmapped mount, which CRIU cannot {what} (its \
                 restore would bind the source without the id mapping)",
                m.destination().display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manage_cgroups_modes() {
        assert_eq!(cg_mode(None).unwrap(), CriuCgMode::Default);
        assert_eq!(cg_mode(Some("strict")).unwrap(), CriuCgMode::Strict);
        assert!(cg_mode(Some("bogus"))
            .unwrap_err()
            .to_string()
            .contains("manage-cgroups-mode"));
    }

    #[test]
    fn empty_ns_only_network() {
        assert_eq!(empty_ns_mask(&[]).unwrap(), libc::CLONE_NEWNET as u32);
        assert!(empty_ns_mask(&["pid".into()])
            .unwrap_err()
            .to_string()
            .contains("\"pid\" is not supported"));
    }

    #[test]
    fn request_round_trips() {
        use prost::Message;
        let req = rpc::CriuReq {
            r#type: rpc::CriuReqType::Dump as i32,
            opts: Some(CriuOpts {
                images_dir_fd: 7,
                ext_mnt: vec![rpc::ExtMountMap {
                    key: "/a".into(),
                    val: "/a".into(),
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let back = rpc::CriuReq::decode(req.encode_to_vec().as_slice()).unwrap();
        assert_eq!(back, req);
    }
}
