//! `checkpoint`: CRIU dumps the running container into the image directory; the container is
//! then deleted (runc's `destroy`) unless `--leave-running` or `--pre-dump`. A failed dump leaves
//! it running as it was: CRIU thaws what it froze, and nothing of ours changed.

use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use hako_spec::oci::LinuxNamespaceType;
use hako_spec::state::{ContainerRecord, Status};

use super::rpc::{CriuFeatures, CriuOpts, CriuPageServerInfo, CriuReq, CriuReqType};
use super::swrk::{self, Handler, Spawn};
use super::{base_opts, checked_version, extmnt, open_dir, with_log, CriuOptions, DESCRIPTORS};
use crate::container::lifecycle::{delete_locked, locked, status_of};
use crate::error::{Context, Error, Result};

#[derive(Debug, Clone)]
pub struct CheckpointOptions {
    pub id: String,
    pub criu: CriuOptions,
    /// `--parent-path`: relative to the image path (a previous pre-dump).
    pub parent_path: Option<String>,
    pub leave_running: bool,
    /// `--link-remap`: CRIU may link an open file whose name is gone back into the file system
    /// (a `link_remap.N` file it removes at restore) where it cannot copy it as a ghost file.
    pub link_remap: bool,
    pub pre_dump: bool,
    /// `--status-fd`: gets one `\0` once the lazy-pages server is ready (-1: none).
    pub status_fd: i32,
    /// `--page-server ADDRESS:PORT`.
    pub page_server: Option<String>,
}

impl Default for CheckpointOptions {
    fn default() -> Self {
        CheckpointOptions {
            id: String::new(),
            criu: CriuOptions::default(),
            parent_path: None,
            leave_running: false,
            link_remap: false,
            pre_dump: false,
            status_fd: -1,
            page_server: None,
        }
    }
}

const LOG: &str = "dump.log";

pub fn checkpoint(root: &Path, o: &CheckpointOptions) -> Result<()> {
    let (lock, rec) = locked(root, &o.id)?;
    let status = status_of(&rec);
    if matches!(status, Status::Created | Status::Stopped) {
        // runc's words.
        return Err(Error::BadState(format!(
            "Container cannot be checkpointed in {status} state"
        )));
    }
    super::refuse_idmapped(&rec.config, "checkpoint")?;
    let criu = swrk::resolve(&o.criu.criu)?;
    let version = checked_version(&criu)?;
    let images = o.criu.image_dir();
    mkdir_all(&images)?;
    if let Some(p) = &o.parent_path {
        check_parent(&images, p)?;
    }
    let images_fd = open_dir(&images)?;
    let work = match &o.criu.work_path {
        Some(w) => {
            mkdir_all(w)?;
            Some(open_dir(w)?)
        }
        None => None,
    };
    let mut opts = options(o, &rec, version, &images_fd, work.as_ref())?;
    let (kind, status_fd) = request_kind(o, &criu)?;
    if !o.pre_dump {
        opts.ext_mnt = extmnt::for_dump(&rec.config, rec.pid)?;
        write_descriptors(&images, rec.pid)?;
    }
    let req = CriuReq {
        r#type: kind as i32,
        opts: Some(opts),
        ..Default::default()
    };
    let spawn = Spawn {
        criu: &criu,
        inherit_stdio: false,
        extra: vec![],
        own_mount_ns: false,
    };
    let mut h = DumpEvents { status_fd };
    swrk::call(&spawn, req, &mut h).map_err(|e| with_log(e, &o.criu, LOG))?;
    if !(o.leave_running || o.pre_dump) {
        // CRIU has killed the processes; the rest of the container goes as with `delete`.
        delete_locked(&o.id, lock, rec, true)?;
    }
    Ok(())
}

/// CRIU's options for dumping the container of `rec`: the common ones, its root and init, the
/// namespaces it joined (external to the image), the freezer, the parent image.
fn options(
    o: &CheckpointOptions,
    rec: &ContainerRecord,
    version: u32,
    images_fd: &OwnedFd,
    work: Option<&OwnedFd>,
) -> Result<CriuOpts> {
    let ps = o.page_server.as_deref().map(page_server).transpose()?;
    let mut opts = base_opts(&o.criu, &rec.config, images_fd, work, LOG)?;
    if !o.pre_dump {
        super::netlock::require_tools(&rec.config, opts.config_file.as_deref(), "checkpoint")?;
    }
    opts.root = Some(rec.rootfs.to_string_lossy().into_owned());
    opts.pid = Some(rec.pid);
    opts.leave_running = Some(o.leave_running);
    opts.link_remap = Some(o.link_remap);
    opts.ps = ps;
    for (t, min, key) in [
        (LinuxNamespaceType::Network, 31100, "net"),
        (LinuxNamespaceType::Pid, 31500, "pid"),
    ] {
        if let Some(path) = ns_path(&rec.config, t) {
            swrk::require(version, min, &format!("an external {key} namespace"))?;
            let ino = nix::sys::stat::stat(&path)
                .ctx("stat namespace", &path)?
                .st_ino;
            opts.external.push(format!("{key}[{ino}]:{}", ext_key(key)));
        }
    }
    opts.freeze_cgroup = freezer(rec, version);
    if let Some(p) = &o.parent_path {
        opts.parent_img = Some(p.clone());
        opts.track_mem = Some(true);
    }
    Ok(opts)
}

/// CRIU freezes through the freezer cgroup when it has one (else with ptrace); the v2 freezer
/// needs CRIU 3.14.
fn freezer(rec: &ContainerRecord, version: u32) -> Option<String> {
    let dir = if rec.cgroup.layout == "v2" {
        rec.cgroup.unified.as_ref().filter(|_| version >= 31400)
    } else {
        rec.cgroup.v1.get("freezer")
    };
    dir.map(|p| p.to_string_lossy().into_owned())
}

/// Dump or pre-dump (which needs memory tracking), and the status fd of a lazy-pages dump.
fn request_kind(o: &CheckpointOptions, criu: &Path) -> Result<(CriuReqType, Option<i32>)> {
    let kind = if o.pre_dump {
        let mem_track = CriuFeatures {
            mem_track: Some(true),
            ..Default::default()
        };
        require_features(criu, mem_track)?;
        CriuReqType::PreDump
    } else {
        CriuReqType::Dump
    };
    let status_fd = if o.lazy_pages() {
        let lazy = CriuFeatures {
            lazy_pages: Some(true),
            ..Default::default()
        };
        require_features(criu, lazy)?;
        checked_status_fd(o.status_fd)?
    } else {
        None
    };
    Ok((kind, status_fd))
}

impl CheckpointOptions {
    fn lazy_pages(&self) -> bool {
        self.criu.lazy_pages
    }
}

/// runc's key for an external namespace of type `t` (`extRootNetNS`, `extRootPidNS`).
pub(super) fn ext_key(t: &str) -> String {
    let mut c = t.chars();
    let title: String = c
        .next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default();
    format!("extRoot{title}NS")
}

pub(super) fn ns_path(
    spec: &hako_spec::oci::Spec,
    t: LinuxNamespaceType,
) -> Option<std::path::PathBuf> {
    spec.linux()
        .as_ref()?
        .namespaces()
        .as_ref()?
        .iter()
        .find(|n| n.typ() == t)?
        .path()
        .clone()
}

fn mkdir_all(p: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .ctx("create directory", p)
}

/// runc's rules: relative to the image path, an existing directory.
fn check_parent(images: &Path, parent: &str) -> Result<()> {
    if Path::new(parent).is_absolute() {
        return Err(Error::Usage("--parent-path must be relative".into()));
    }
    let real = images.join(parent);
    match std::fs::metadata(&real) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::Usage(format!(
            "invalid --parent-path: {}: not a directory",
            real.display()
        ))),
        Err(e) => Err(Error::Usage(format!(
            "invalid --parent-path: stat {}: {}",
            real.display(),
            hako_spec::error::io_text(&e)
        ))),
    }
}

fn page_server(v: &str) -> Result<CriuPageServerInfo> {
    let bad = || Error::Usage("Use --page-server ADDRESS:PORT to specify page server".into());
    let (addr, port) = v.rsplit_once(':').ok_or_else(bad)?;
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    if addr.is_empty() || port.is_empty() {
        return Err(bad());
    }
    let port: i32 = port
        .parse()
        .map_err(|_| Error::Usage("Invalid port number".into()))?;
    Ok(CriuPageServerInfo {
        address: Some(addr.to_string()),
        port: Some(port),
        ..Default::default()
    })
}

/// Asks CRIU whether this kernel and build have `want`; names what is missing (runc's words,
/// plus what it takes).
/// (runc 1.1's capital "CRIU is missing features".)
fn require_features(criu: &Path, want: CriuFeatures) -> Result<()> {
    let spawn = Spawn {
        criu,
        inherit_stdio: false,
        extra: vec![],
        own_mount_ns: false,
    };
    let req = CriuReq {
        r#type: CriuReqType::FeatureCheck as i32,
        features: Some(want),
        ..Default::default()
    };
    let resp = swrk::call(&spawn, req, &mut swrk::Quiet)
        .map_err(|e| Error::Usage(format!("CRIU feature check failed: {e}")))?;
    let have = resp.features.unwrap_or_default();
    let mut missing = Vec::new();
    if want.mem_track == Some(true) && have.mem_track == Some(false) {
        missing.push("MemTrack");
    }
    if want.lazy_pages == Some(true) && have.lazy_pages == Some(false) {
        missing.push("LazyPages");
    }
    if missing.is_empty() {
        return Ok(());
    }
    let why = if missing.contains(&"MemTrack") {
        " (--pre-dump and --parent-path need the kernel's soft-dirty page tracking, \
         CONFIG_MEM_SOFT_DIRTY, which this kernel lacks)"
    } else {
        " (--lazy-pages needs userfaultfd)"
    };
    Err(Error::Usage(format!(
        "CRIU is missing features: [{}]{why}",
        missing.join(" ")
    )))
}

/// `--status-fd` must be an open, writable fd of ours (runc checks the same).
fn checked_status_fd(fd: i32) -> Result<Option<i32>> {
    if fd < 0 {
        return Ok(None);
    }
    // SAFETY: F_GETFL on a number only reads the fd's flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(Error::Usage(format!(
            "invalid --status-fd argument {fd}: bad file descriptor"
        )));
    }
    if flags & (libc::O_WRONLY | libc::O_RDWR) == 0 {
        return Err(Error::Usage(format!(
            "invalid --status-fd argument {fd}: not writable"
        )));
    }
    Ok(Some(fd))
}

/// The init's stdio as the host sees it, for restore to re-plumb pipes (runc's
/// descriptors.json).
fn write_descriptors(images: &Path, pid: i32) -> Result<()> {
    let fds: Vec<String> = (0..3)
        .map(|n| {
            std::fs::read_link(format!("/proc/{pid}/fd/{n}"))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    let p = images.join(DESCRIPTORS);
    std::fs::write(&p, serde_json::to_string(&fds).expect("serializes")).ctx("write", &p)
}

struct DumpEvents {
    status_fd: Option<i32>,
}

impl Handler for DumpEvents {
    fn notify(&mut self, script: &str, _pid: i32, _fds: Vec<OwnedFd>) -> Result<()> {
        if script == "status-ready" {
            if let Some(fd) = self.status_fd.take() {
                // SAFETY: the caller handed us this fd (--status-fd) to write one byte to and
                // close, as runc does.
                unsafe {
                    libc::write(fd, [0u8].as_ptr().cast(), 1);
                    libc::close(fd);
                }
            }
        }
        // network-lock/unlock: hako manages no network devices (like runc with an OCI config).
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_page_server() {
        assert_eq!(ext_key("net"), "extRootNetNS");
        assert_eq!(ext_key("pid"), "extRootPidNS");
        let ps = page_server("10.0.0.1:27").unwrap();
        assert_eq!(ps.port, Some(27));
        assert!(page_server("nope").is_err());
        assert!(page_server("a:b").unwrap_err().to_string().contains("port"));
    }
}
