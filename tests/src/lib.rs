//! Test harness for the hako integration tests: see tests/README.md.
//!
//! Every test builds a [`Bundle`] (a busybox-static rootfs plus the config.json `runc spec`
//! generates, with `terminal: false`) and drives the binary through [`Hako`], which owns a private
//! `--root` directory and force-deletes every container it created when dropped.
//!
//! Tests need root: start each with [`require_root!`], which prints a line and returns otherwise.

pub mod fuzz;
pub mod oom;

use std::cell::RefCell;
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use serde_json::{json, Value};

/// How long any single runtime command may take before the test fails.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(30);

/// Return early from a test (after printing why) when not running as root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::is_root() {
            $crate::skip("needs root");
            return;
        }
    };
}

/// Says that the running test (its thread carries the test's name) does not run, or runs only
/// in part, on this host, and why: `SKIP <test>: <reason>`, the line CI logs are searched for.
pub fn skip(reason: &str) {
    skip_line("", reason);
}

/// Says that a part of the running test does not run on this host, and why:
/// `SKIP <test> (<part> part): <reason>`.
pub fn skip_part(part: &str, reason: &str) {
    skip_line(&format!(" ({part} part)"), reason);
}

fn skip_line(part: &str, reason: &str) {
    let t = std::thread::current();
    let name = t.name().unwrap_or("?");
    let name = name.rsplit("::").next().unwrap_or(name);
    // Straight to fd 2, not eprintln!: libtest captures the print macros of a passing test, and
    // the line must reach the CI log whatever the outcome.
    let line = format!("SKIP {name}{part}: {reason}\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
}

/// Whether a new cgroup of this host gets `file` from controller `ctrl`, probed in a cgroup of
/// its own (some files exist only below the root: BFQ's blkio weights): the v1 hierarchy holding
/// `ctrl`, else the cgroup2 one (where `ctrl` must be enabled at the root, as on any v2 host with
/// delegation). Kernel options and boot flags decide it: memory.memsw.* and memory.swap.max need
/// swap accounting, cpu.rt_runtime_us CONFIG_RT_GROUP_SCHED, blkio weights BFQ.
pub fn host_cgroup_has(ctrl: &str, file: &str) -> bool {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let (mut v1, mut v2) = (None, None);
    for l in info.lines() {
        let Some((pre, post)) = l.split_once(" - ") else {
            continue;
        };
        let mp = pre.split(' ').nth(4).unwrap_or("");
        if !mp.starts_with("/sys/fs/cgroup") {
            continue;
        }
        let f: Vec<&str> = post.split(' ').collect();
        match (f.first().copied(), f.get(2)) {
            (Some("cgroup"), Some(o)) if o.split(',').any(|o| o == ctrl) => v1 = Some(mp),
            (Some("cgroup2"), _) => v2 = Some(mp),
            _ => {}
        }
    }
    let Some(mp) = v1.or(v2) else {
        return false;
    };
    let probe = Path::new(mp).join(format!("hako-test-probe-{}", unique()));
    if fs::create_dir(&probe).is_err() {
        return false;
    }
    let found = probe.join(file).exists();
    let _ = fs::remove_dir(&probe);
    found
}

/// The first directory of `$PATH` holding an executable `tool`, as execvp finds it.
pub fn in_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file() && nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok())
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The runtime under test: `$HAKO_BIN`, else `<workspace>/target/debug/hako`.
pub fn hako_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("HAKO_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("debug")
        .join("hako")
}

/// True when the binary under test is runc (used only to document known runc differences).
pub fn testing_runc() -> bool {
    hako_bin()
        .file_name()
        .map(|n| n.to_string_lossy().contains("runc"))
        .unwrap_or(false)
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A process-unique, test-unique name component: `<pid>-<n>`.
pub fn unique() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

fn tmp_base() -> PathBuf {
    std::env::var_os("TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"))
}

/// A directory removed on drop. Anything still mounted below it is detached first so that
/// removal can never reach into a host directory that a leaked bind mount exposes.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let path = tmp_base().join(format!("hako-test-{prefix}-{}", unique()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        // World-traversable so a container running as another uid can reach binds in it.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let mut leaked = mounts_under(&self.path);
        // Deepest first.
        leaked.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in &leaked {
            eprintln!("warning: detaching leaked mount {m}");
            let _ = nix::mount::umount2(Path::new(m), nix::mount::MntFlags::MNT_DETACH);
        }
        if mounts_under(&self.path).is_empty() {
            let _ = fs::remove_dir_all(&self.path);
        } else {
            eprintln!(
                "warning: not removing {} (still mounted)",
                self.path.display()
            );
        }
    }
}

/// Mount points in the test process's mount namespace at or below `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().to_string();
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
        .collect()
}

fn unescape_mountinfo(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Host pids of processes that look like leftovers of a container on `bundle`: their root or
/// cwd is inside it, or their mount namespace has something mounted from inside it.
pub fn processes_using(bundle: &Path) -> Vec<i32> {
    let prefix = bundle.to_string_lossy().to_string();
    let inside = |p: &str| p == prefix || p.starts_with(&format!("{prefix}/"));
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let base = e.path();
        let hit = ["root", "cwd"].iter().any(|l| {
            fs::read_link(base.join(l))
                .map(|t| inside(&t.to_string_lossy()))
                .unwrap_or(false)
        }) || fs::read_to_string(base.join("mountinfo"))
            .map(|mi| mi.contains(&prefix))
            .unwrap_or(false);
        if hit && !is_zombie(pid) {
            out.push(pid);
        }
    }
    out
}

fn is_zombie(pid: i32) -> bool {
    proc_state(pid)
        .map(|s| s == 'Z' || s == 'X')
        .unwrap_or(true)
}

/// Single-letter state of a host process (`R`, `S`, `Z`, ...), None when it is gone.
pub fn proc_state(pid: i32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.trim_start().chars().next()
}

/// True if `pid` names a live (non-zombie) process.
pub fn pid_alive(pid: i32) -> bool {
    pid > 0 && !is_zombie(pid)
}

/// Poll `f` every 10ms until it is true or `timeout` passes; returns the last result.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn busybox_applets() -> &'static Vec<String> {
    static APPLETS: OnceLock<Vec<String>> = OnceLock::new();
    APPLETS.get_or_init(|| {
        let out = Command::new("/bin/busybox")
            .arg("--list")
            .output()
            .expect("run /bin/busybox --list (install busybox-static)");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && !s.contains('/'))
            .collect()
    })
}

/// The config.json `runc spec` generates (runc 1.1), with `process.terminal` false and, as runc
/// 1.3's, no ambient set (ambient without inheritable gets one warning per capability since
/// runc 1.2).
pub fn default_config() -> Value {
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [
                { "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }
            ],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": true },
        "hostname": "runc",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs",
              "options": ["nosuid", "noexec", "nodev", "ro"] },
            { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
              "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
        ],
        "linux": {
            "resources": {
                "devices": [ { "allow": false, "access": "rwm" } ]
            },
            "namespaces": [
                { "type": "pid" },
                { "type": "network" },
                { "type": "ipc" },
                { "type": "uts" },
                { "type": "mount" }
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// An OCI bundle in a temp dir: `rootfs/` with busybox-static, and `config` (saved to
/// `config.json` by [`Bundle::save`], which every [`Hako`] command taking a bundle calls).
pub struct Bundle {
    dir: TempDir,
    pub config: Value,
    /// When set, `save` leaves config.json alone (tests writing it by hand).
    pub raw_config: bool,
}

impl Bundle {
    /// A bundle whose process is `sh -c true`.
    pub fn new() -> Bundle {
        let dir = TempDir::new("bundle");
        let rootfs = dir.path().join("rootfs");
        make_rootfs(&rootfs);
        let mut config = default_config();
        config["process"]["args"] = json!(["sh", "-c", "true"]);
        let b = Bundle {
            dir,
            config,
            raw_config: false,
        };
        b.save();
        b
    }

    /// A bundle whose process is `sh -c SCRIPT`.
    pub fn sh(script: &str) -> Bundle {
        let mut b = Bundle::new();
        b.set_sh(script);
        b
    }

    pub fn set_sh(&mut self, script: &str) {
        self.config["process"]["args"] = json!(["sh", "-c", script]);
    }

    pub fn set_args(&mut self, args: &[&str]) {
        self.config["process"]["args"] = json!(args);
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.json")
    }

    /// Write `config` to config.json (no-op when `raw_config`).
    pub fn save(&self) {
        if self.raw_config {
            return;
        }
        fs::write(
            self.config_path(),
            serde_json::to_string_pretty(&self.config).unwrap(),
        )
        .expect("write config.json");
    }

    /// Replace config.json with arbitrary text; `save` will not overwrite it.
    pub fn write_raw_config(&mut self, text: &str) {
        self.raw_config = true;
        fs::write(self.config_path(), text).expect("write config.json");
    }

    /// Append an entry to `mounts`.
    pub fn add_mount(&mut self, m: Value) {
        self.config["mounts"].as_array_mut().unwrap().push(m);
    }

    /// Create `<bundle>/NAME` on the host (mode 0777) and bind-mount it read-write at `dest`.
    /// Returns the host path.
    pub fn host_dir(&mut self, name: &str, dest: &str) -> PathBuf {
        let host = self.path().join(name);
        fs::create_dir_all(&host).unwrap();
        fs::set_permissions(&host, fs::Permissions::from_mode(0o777)).unwrap();
        self.add_mount(json!({
            "destination": dest,
            "type": "bind",
            "source": host.to_string_lossy(),
            "options": ["rbind", "rw"]
        }));
        host
    }

    /// A host-visible scratch dir bound at `/out` in the container.
    pub fn out_dir(&mut self) -> PathBuf {
        self.host_dir("out", "/out")
    }

    /// Append a new namespace of `kind` (`"user"`, `"time"`, ...) to `linux.namespaces`.
    pub fn add_namespace(&mut self, kind: &str) -> &mut Bundle {
        self.config["linux"]["namespaces"]
            .as_array_mut()
            .expect("linux.namespaces is a list")
            .push(json!({ "type": kind }));
        self
    }

    /// A new user namespace (appended to `linux.namespaces`) mapping the container's ids
    /// 0..65536 to the host's `host_uid..` and `host_gid..`. Nothing else changes: a test whose
    /// mapped root must own the rootfs adds [`Bundle::chown_rootfs`], one that wants no cgroup
    /// mount [`Bundle::remove_mounts`]`("cgroup")`.
    pub fn in_user_namespace(&mut self, host_uid: u32, host_gid: u32) -> &mut Bundle {
        self.add_namespace("user");
        self.config["linux"]["uidMappings"] =
            json!([{"containerID": 0, "hostID": host_uid, "size": 65536}]);
        self.config["linux"]["gidMappings"] =
            json!([{"containerID": 0, "hostID": host_gid, "size": 65536}]);
        self
    }

    /// A new user namespace whose root is `user` (one id each way, devpts without `gid=5`): see
    /// [`TestUser::map_as_root`].
    pub fn in_user_namespace_of(&mut self, user: &TestUser) -> &mut Bundle {
        self.add_namespace("user");
        user.map_as_root(&mut self.config);
        self
    }

    /// Only new namespaces of `kinds`, in that order (`[]`: every namespace is the host's).
    pub fn set_namespaces(&mut self, kinds: &[&str]) -> &mut Bundle {
        let list: Vec<Value> = kinds.iter().map(|k| json!({ "type": k })).collect();
        self.config["linux"]["namespaces"] = json!(list);
        self
    }

    /// No masked or read-only paths, a writable root and no hostname: what runc refuses
    /// without private mount and UTS namespaces, for configs that share the host's.
    pub fn without_private_mount_and_uts_settings(&mut self) -> &mut Bundle {
        self.config["linux"]["maskedPaths"] = json!([]);
        self.config["linux"]["readonlyPaths"] = json!([]);
        self.config["root"]["readonly"] = json!(false);
        self.config.as_object_mut().unwrap().remove("hostname");
        self
    }

    /// Drop every entry of `mounts` whose `type` is `kind`.
    pub fn remove_mounts(&mut self, kind: &str) -> &mut Bundle {
        self.config["mounts"]
            .as_array_mut()
            .expect("mounts is a list")
            .retain(|m| m["type"] != kind);
        self
    }

    /// `chown -R -h uid:gid` the rootfs, for a user namespace's mapped ids to own it.
    pub fn chown_rootfs(&mut self, uid: u32, gid: u32) -> &mut Bundle {
        chown_tree(&self.rootfs(), uid, gid);
        self
    }
}

/// `chown -R -h uid:gid PATH` (symlinks themselves, not their targets), asserting success.
#[track_caller]
pub fn chown_tree(path: &Path, uid: u32, gid: u32) {
    let st = Command::new("chown")
        .args(["-R", "-h", &format!("{uid}:{gid}")])
        .arg(path)
        .status()
        .expect("run chown");
    assert!(st.success(), "chown -R {uid}:{gid} {}", path.display());
}

impl Default for Bundle {
    fn default() -> Self {
        Bundle::new()
    }
}

fn make_rootfs(rootfs: &Path) {
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "etc", "root", "home",
        "var", "run", "mnt",
    ] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("copy /bin/busybox");
    for applet in busybox_applets() {
        if applet == "busybox" {
            continue;
        }
        let link = rootfs.join("bin").join(applet);
        let _ = std::os::unix::fs::symlink("busybox", link);
    }
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    fs::write(
        rootfs.join("etc/group"),
        "root:x:0:\ntty:x:5:\nusers:x:100:\nnogroup:x:65534:\n",
    )
    .unwrap();
    fs::write(rootfs.join("etc/hostname"), "bundle\n").unwrap();
}

/// Result of one runtime invocation.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code, or 128+N when killed by signal N.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Where the command's stdout/stderr went: a detached container keeps writing there.
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.code == 0
    }

    /// Panic with the full output unless the command succeeded.
    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.code, 0, "command failed: {self:#?}");
        self
    }

    /// Panic unless the command failed with exit status 1.
    #[track_caller]
    pub fn assert_err(&self) -> &Self {
        assert_eq!(self.code, 1, "expected exit status 1: {self:#?}");
        self
    }

    /// Current content of the stdout file (for detached containers that wrote later).
    pub fn stdout_now(&self) -> String {
        fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    pub fn stderr_now(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

/// Options for [`Hako::cmd_opts`].
#[derive(Default)]
pub struct CmdOpts {
    /// Bytes fed to the command's stdin (default: /dev/null).
    pub stdin: Option<Vec<u8>>,
    /// `(fd, target)`: make `fd` appear as `target` (without CLOEXEC) in the runtime.
    pub fds: Vec<(OwnedFd, RawFd)>,
    /// Arguments placed before the subcommand in addition to `--root`.
    pub global: Vec<String>,
    /// Do not pass `--root` at all.
    pub no_root: bool,
    pub timeout: Option<Duration>,
    /// Working directory of the runtime (default: the test's).
    pub cwd: Option<PathBuf>,
    /// Environment changes: `(name, Some(value))` sets, `(name, None)` removes.
    pub env: Vec<(String, Option<String>)>,
}

/// Drives the runtime binary with a private `--root`.
pub struct Hako {
    root: TempDir,
    scratch: TempDir,
    ids: RefCell<Vec<String>>,
    /// Global arguments added to every command (e.g. `--log F --log-format json`).
    pub global: Vec<String>,
    /// Set by [`Hako::rootless`]: every command runs as this unprivileged user.
    pub user: Option<&'static TestUser>,
    /// Rootless only: every command starts in this cgroup v2 directory (moved there as root,
    /// then switched to the user), as in a delegated systemd session.
    pub cgroup: Option<PathBuf>,
    /// Rootless only: a command the runtime runs under, e.g. `unshare --user --map-root-user`
    /// (root in a user namespace of the user's own, as rootless podman runs its runtime).
    pub wrap: Vec<String>,
}

impl Hako {
    pub fn new() -> Hako {
        Hako {
            root: TempDir::new("root"),
            scratch: TempDir::new("out"),
            ids: RefCell::new(Vec::new()),
            global: Vec::new(),
            user: None,
            cgroup: None,
            wrap: Vec::new(),
        }
    }

    /// A `Hako` whose commands run as the unprivileged [`test_user`] (no sudo, no setuid hako):
    /// its `--root`, scratch dir and `$XDG_RUNTIME_DIR` (`<scratch>/xdg`) belong to that user.
    pub fn rootless() -> Hako {
        let u = test_user();
        let mut h = Hako::new();
        let xdg = h.scratch.path().join("xdg");
        fs::create_dir_all(&xdg).unwrap();
        fs::set_permissions(&xdg, fs::Permissions::from_mode(0o700)).unwrap();
        for d in [h.root.path(), h.scratch.path(), xdg.as_path()] {
            std::os::unix::fs::chown(d, Some(u.uid), Some(u.gid)).unwrap();
        }
        h.user = Some(u);
        h
    }

    /// `$XDG_RUNTIME_DIR` of a rootless `Hako`.
    pub fn xdg_runtime_dir(&self) -> PathBuf {
        self.scratch.path().join("xdg")
    }

    /// The command line for `args`, as the test user when rootless.
    fn command(&self, opts: &CmdOpts) -> Command {
        let Some(u) = self.user else {
            let mut c = Command::new(hako_bin());
            for (k, v) in &opts.env {
                match v {
                    Some(v) => c.env(k, v),
                    None => c.env_remove(k),
                };
            }
            return c;
        };
        let mut c = match &self.cgroup {
            // Moved into the cgroup while still root (the move needs write access to the common
            // ancestor), then the user's ids.
            Some(cg) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(
                        r#"echo $$ > "$1/cgroup.procs" && uid=$2 gid=$3 bin=$4 && shift 4 &&
                        exec setpriv --reuid="$uid" --regid="$gid" --clear-groups -- "$bin" "$@""#,
                    )
                    .arg("sh");
                c.arg(cg)
                    .arg(u.uid.to_string())
                    .arg(u.gid.to_string())
                    .arg(rootless_bin());
                c
            }
            None if !self.wrap.is_empty() => {
                let mut c = Command::new(&self.wrap[0]);
                c.args(&self.wrap[1..]).arg(rootless_bin());
                c.uid(u.uid).gid(u.gid);
                c
            }
            None => {
                let mut c = Command::new(rootless_bin());
                c.uid(u.uid).gid(u.gid);
                c
            }
        };
        c.env("XDG_RUNTIME_DIR", self.xdg_runtime_dir())
            .env("HOME", self.scratch.path())
            .env("USER", &u.name);
        for (k, v) in &opts.env {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// A directory for test files (removed on drop).
    pub fn scratch(&self) -> &Path {
        self.scratch.path()
    }

    /// A fresh container id, registered for cleanup.
    pub fn new_id(&self) -> String {
        let id = format!("hako-test-{}", unique());
        self.track(&id);
        id
    }

    /// Register an id for `delete --force` on drop.
    pub fn track(&self, id: &str) {
        let mut ids = self.ids.borrow_mut();
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_string());
        }
    }

    /// `hako --root R ARGS...`
    pub fn cmd<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        self.cmd_opts(args, CmdOpts::default())
    }

    pub fn cmd_opts<S: AsRef<OsStr>>(&self, args: &[S], opts: CmdOpts) -> Output {
        let n = unique();
        let stdout_path = self.scratch.path().join(format!("stdout-{n}"));
        let stderr_path = self.scratch.path().join(format!("stderr-{n}"));
        let stdout = fs::File::create(&stdout_path).unwrap();
        let stderr = fs::File::create(&stderr_path).unwrap();
        let mut c = self.command(&opts);
        if !opts.no_root {
            c.arg("--root").arg(self.root.path());
        }
        c.args(&self.global);
        c.args(&opts.global);
        c.args(args);
        c.stdout(stdout).stderr(stderr);
        if let Some(d) = &opts.cwd {
            c.current_dir(d);
        }
        // Files, never pipes: a detached container inherits these and would keep a pipe open.
        let stdin_path = if let Some(data) = &opts.stdin {
            let p = self.scratch.path().join(format!("stdin-{n}"));
            fs::write(&p, data).unwrap();
            c.stdin(fs::File::open(&p).unwrap());
            Some(p)
        } else {
            c.stdin(Stdio::null());
            None
        };
        let pairs: Vec<(RawFd, RawFd)> =
            opts.fds.iter().map(|(f, t)| (f.as_raw_fd(), *t)).collect();
        if !pairs.is_empty() {
            // SAFETY: the closure runs in the forked child before exec and only calls dup2/fcntl
            // (async-signal-safe); `pairs` was copied in before the fork.
            unsafe {
                c.pre_exec(move || {
                    for &(src, target) in &pairs {
                        if src == target {
                            let fl = libc::fcntl(src, libc::F_GETFD);
                            if libc::fcntl(src, libc::F_SETFD, fl & !libc::FD_CLOEXEC) < 0 {
                                return Err(std::io::Error::last_os_error());
                            }
                        } else if libc::dup2(src, target) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
        }
        let mut child = c
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", hako_bin().display()));
        drop(opts.fds);
        let timeout = opts.timeout.unwrap_or(CMD_TIMEOUT);
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} {:?} did not finish within {timeout:?}; stderr: {}",
                    hako_bin().display(),
                    args.iter()
                        .map(|a| a.as_ref().to_owned())
                        .collect::<Vec<_>>(),
                    fs::read_to_string(&stderr_path).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        if let Some(p) = stdin_path {
            let _ = fs::remove_file(p);
        }
        let code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        let mut out = String::new();
        fs::File::open(&stdout_path)
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        Output {
            code,
            stdout: out,
            stderr: fs::read_to_string(&stderr_path).unwrap_or_default(),
            stdout_path,
            stderr_path,
        }
    }

    fn bundle_args(id: &str, bundle: &Bundle, extra: &[&str]) -> Vec<String> {
        let mut v = vec![
            "--bundle".to_string(),
            bundle.path().to_string_lossy().to_string(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v.push(id.to_string());
        v
    }

    /// `run --bundle B ID` in the foreground.
    pub fn run(&self, id: &str, bundle: &Bundle) -> Output {
        self.run_with(id, bundle, &[])
    }

    /// `run --bundle B EXTRA... ID`
    pub fn run_with(&self, id: &str, bundle: &Bundle, extra: &[&str]) -> Output {
        self.track(id);
        bundle.save();
        let mut args = vec!["run".to_string()];
        args.extend(Self::bundle_args(id, bundle, extra));
        self.cmd(&args)
    }

    /// `create` of `bundle` under a new id, then `check("create", id, output)`; then the same
    /// for `run`: both ways in must treat a config alike (refusals, what is left behind).
    pub fn create_then_run(&self, bundle: &Bundle, mut check: impl FnMut(&str, &str, &Output)) {
        for cmd in ["create", "run"] {
            let id = self.new_id();
            let o = if cmd == "create" {
                self.create(&id, bundle)
            } else {
                self.run(&id, bundle)
            };
            check(cmd, &id, &o);
        }
    }

    /// `run --detach` of a fresh container on `bundle`, asserting it runs; returns its id.
    #[track_caller]
    pub fn run_detached(&self, bundle: &Bundle) -> String {
        let id = self.new_id();
        self.run_with(&id, bundle, &["--detach"]).assert_ok();
        assert_eq!(self.status(&id), "running");
        id
    }

    /// `exec ARGS...`
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut v = vec!["exec"];
        v.extend_from_slice(args);
        self.cmd(&v)
    }

    /// `run -d --console-socket` of a bundle whose process has a terminal, as runc's tty.bats
    /// drive it: the new container's id and the pty master the runtime sent (keep it open: the
    /// process's terminal hangs up when it closes).
    #[track_caller]
    pub fn run_with_console(&self, bundle: &Bundle) -> (String, OwnedFd) {
        let sock = ConsoleSocket::listen(self.scratch());
        let id = self.new_id();
        let sock_path = sock.path.to_str().unwrap().to_string();
        self.run_with(&id, bundle, &["-d", "--console-socket", &sock_path])
            .assert_ok();
        let (_, mut fds) = sock.recv().expect("console message");
        (id, fds.remove(0))
    }

    /// Run `sh -c SCRIPT` in a fresh container on `bundle`, asserting success; returns stdout.
    #[track_caller]
    pub fn run_sh(&self, bundle: &mut Bundle, script: &str) -> String {
        bundle.set_sh(script);
        let id = self.new_id();
        let out = self.run(&id, bundle);
        out.assert_ok();
        out.stdout
    }

    /// `create --bundle B ID`
    pub fn create(&self, id: &str, bundle: &Bundle) -> Output {
        self.create_with(id, bundle, &[])
    }

    /// `create --bundle B EXTRA... ID`
    pub fn create_with(&self, id: &str, bundle: &Bundle, extra: &[&str]) -> Output {
        self.track(id);
        bundle.save();
        let mut args = vec!["create".to_string()];
        args.extend(Self::bundle_args(id, bundle, extra));
        self.cmd(&args)
    }

    pub fn start(&self, id: &str) -> Output {
        self.cmd(&["start", id])
    }

    /// `state ID` parsed; panics if the command fails or prints something else than JSON.
    #[track_caller]
    pub fn state(&self, id: &str) -> Value {
        let out = self.cmd(&["state", id]);
        out.assert_ok();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("state output is not JSON ({e}): {:?}", out.stdout))
    }

    /// `status` field of `state ID`.
    #[track_caller]
    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"]
            .as_str()
            .expect("state.status is a string")
            .to_string()
    }

    /// `pid` field of `state ID`.
    #[track_caller]
    pub fn pid(&self, id: &str) -> i32 {
        self.state(id)["pid"]
            .as_i64()
            .expect("state.pid is a number") as i32
    }

    /// Poll `state ID` until `status` is `want`; false after `timeout`.
    pub fn wait_status(&self, id: &str, want: &str, timeout: Duration) -> bool {
        wait_for(timeout, || {
            let out = self.cmd(&["state", id]);
            out.ok()
                && serde_json::from_str::<Value>(&out.stdout)
                    .map(|v| v["status"] == want)
                    .unwrap_or(false)
        })
    }

    pub fn kill(&self, id: &str, signal: &str) -> Output {
        self.cmd(&["kill", id, signal])
    }

    pub fn delete(&self, id: &str) -> Output {
        self.cmd(&["delete", id])
    }

    pub fn delete_force(&self, id: &str) -> Output {
        self.cmd(&["delete", "--force", id])
    }

    /// `list EXTRA...`
    pub fn list(&self, extra: &[&str]) -> Output {
        let mut args = vec!["list"];
        args.extend_from_slice(extra);
        self.cmd(&args)
    }

    /// Nothing of container `id` on the bundle at `bundle_dir` remains: no state directory, no
    /// process using the bundle (a killed init may take a moment to go: waited for up to 10 s),
    /// no mount below it. `what` prefixes the failure message.
    #[track_caller]
    pub fn assert_nothing_left(&self, id: &str, bundle_dir: &Path, what: &str) {
        assert!(
            !self.state_dir(id).exists(),
            "{what}<root>/{id} left behind"
        );
        assert!(
            wait_for(Duration::from_secs(10), || processes_using(bundle_dir)
                .is_empty()),
            "{what}leftover processes: {:?}",
            processes_using(bundle_dir)
        );
        let leaked = mounts_under(bundle_dir);
        assert!(leaked.is_empty(), "{what}leftover host mounts: {leaked:?}");
    }

    /// Path of the container's state directory, `<root>/<id>`.
    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.root.path().join(id)
    }
}

impl Default for Hako {
    fn default() -> Self {
        Hako::new()
    }
}

impl Drop for Hako {
    fn drop(&mut self) {
        let ids = self.ids.borrow().clone();
        for id in ids {
            // Never hand a path-like id to `delete --force`.
            let safe = !id.is_empty()
                && id != "."
                && id != ".."
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
            if safe && self.root.path().join(&id).exists() {
                let mut c = self.command(&CmdOpts::default());
                c.arg("--root")
                    .arg(self.root.path())
                    .args(["delete", "--force", &id])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                if let Ok(mut child) = c.spawn() {
                    let ok = wait_for(CMD_TIMEOUT, || child.try_wait().ok().flatten().is_some());
                    if !ok {
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                }
            }
        }
    }
}

/// Text of a host file, or "" if unreadable.
pub fn read(path: impl AsRef<Path>) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// Parse `Key:\tvalue` lines of /proc/PID/status output into (key, value) pairs.
pub fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == key).then(|| v.trim())
    })
}

/// Capability numbers of a hex mask from /proc/PID/status.
pub fn cap_set(hex: &str) -> Vec<u32> {
    let v = u64::from_str_radix(hex.trim(), 16).expect("hex capability mask");
    (0..64).filter(|i| v & (1u64 << i) != 0).collect()
}

pub const CAP_KILL: u32 = 5;
pub const CAP_NET_BIND_SERVICE: u32 = 10;
pub const CAP_AUDIT_WRITE: u32 = 29;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_CHOWN: u32 = 0;

/// An open pipe; `(read end, write end)`, both CLOEXEC.
pub fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe2")
}

/// Write a host-side shell script (mode 0755) and return its path.
pub fn write_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// An executable file whose `#!` interpreter does not exist: execve of it fails with ENOENT.
pub fn bad_interpreter_script(path: &Path) {
    fs::write(path, "#!/no/such/interpreter\n").unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// What a console socket receives: the message payload and the passed fds.
pub type ConsoleMessage = (Vec<u8>, Vec<OwnedFd>);

/// A `--console-socket` listener: accepts one connection and receives the pty master sent
/// with SCM_RIGHTS, as containerd's shim and conmon do.
pub struct ConsoleSocket {
    pub path: PathBuf,
    handle: Option<std::thread::JoinHandle<Result<ConsoleMessage, String>>>,
}

impl ConsoleSocket {
    /// Listen on `dir/console-<n>.sock` in a background thread that waits up to `CMD_TIMEOUT`.
    pub fn listen(dir: &Path) -> ConsoleSocket {
        use std::os::unix::net::UnixListener;
        let path = dir.join(format!("console-{}.sock", unique()));
        let listener = UnixListener::bind(&path).expect("bind console socket");
        listener.set_nonblocking(true).unwrap();
        let handle = std::thread::spawn(move || {
            let deadline = Instant::now() + CMD_TIMEOUT;
            let stream = loop {
                match listener.accept() {
                    Ok((s, _)) => break s,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if Instant::now() >= deadline {
                            return Err("no connection on the console socket".to_string());
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => return Err(format!("accept: {e}")),
                }
            };
            stream.set_nonblocking(false).unwrap();
            stream.set_read_timeout(Some(CMD_TIMEOUT)).unwrap();
            recv_fds(stream.as_raw_fd())
        });
        ConsoleSocket {
            path,
            handle: Some(handle),
        }
    }

    /// Wait for the message: (payload, received fds).
    pub fn recv(mut self) -> Result<ConsoleMessage, String> {
        self.handle
            .take()
            .unwrap()
            .join()
            .map_err(|_| "receiver panicked".to_string())?
    }
}

fn recv_fds(fd: RawFd) -> Result<ConsoleMessage, String> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
    use std::io::IoSliceMut;
    use std::os::fd::FromRawFd;
    let mut buf = vec![0u8; 4096];
    let mut cmsg = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<UnixAddr>(fd, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(|e| format!("recvmsg: {e}"))?;
    let mut fds = Vec::new();
    for c in msg.cmsgs().map_err(|e| format!("cmsgs: {e}"))? {
        if let ControlMessageOwned::ScmRights(v) = c {
            // SAFETY: SCM_RIGHTS just installed these fds in our table; we are their only owner.
            fds.extend(v.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
        }
    }
    let n = msg.bytes;
    buf.truncate(n);
    Ok((buf, fds))
}

/// Read a pty master until the slave side is closed (EIO/EOF) or `timeout` passes.
pub fn read_pty(master: &OwnedFd, timeout: Duration) -> String {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut pfd = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        match poll(
            &mut pfd,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(0) => break,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
        let mut buf = [0u8; 4096];
        match nix::unistd::read(master, &mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => continue,
            Err(_) => break, // EIO: every slave fd is closed
        }
    }
    String::from_utf8_lossy(&out).replace("\r\n", "\n")
}

/// The unprivileged user the rootless tests run hako as, with a subordinate id range.
#[derive(Debug)]
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// `(start, count)` from /etc/subuid and /etc/subgid.
    pub subuid: (u32, u32),
    pub subgid: (u32, u32),
}

/// Creates (once, under a lock, idempotently) the user `hakotest` with entries in /etc/subuid and
/// /etc/subgid, as a fresh machine needs for rootless containers. Needs root and the `uidmap`
/// package (newuidmap/newgidmap), which `make deps` installs.
impl TestUser {
    /// The user's own ids mapped to root in the config's user namespace, as `runc spec --rootless`
    /// maps them; devpts loses `gid=5` (gid 5 is not mapped, and the mount would fail).
    pub fn map_as_root(&self, config: &mut Value) {
        config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": self.uid, "size": 1}]);
        config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": self.gid, "size": 1}]);
        devpts_without_gid5(config);
    }
}

/// devpts without `gid=5`, for a user namespace that does not map gid 5 (the mount would fail).
pub fn devpts_without_gid5(config: &mut Value) {
    for m in config["mounts"].as_array_mut().unwrap() {
        if m["type"] == "devpts" {
            m["options"]
                .as_array_mut()
                .unwrap()
                .retain(|o| o != "gid=5");
        }
    }
}

pub fn test_user() -> &'static TestUser {
    static USER: OnceLock<TestUser> = OnceLock::new();
    USER.get_or_init(|| {
        let script = r#"set -e
name=hakotest
id -u $name >/dev/null 2>&1 || useradd -M -d /nonexistent -s /usr/sbin/nologin -U $name
for f in /etc/subuid /etc/subgid; do
  touch $f
  if ! grep -q "^$name:" $f; then
    start=$(awk -F: 'BEGIN{m=100000} {e=$2+$3; if (e>m) m=e} END{print m}' $f)
    echo "$name:$start:65536" >> $f
  fi
done
echo "$(id -u $name) $(id -g $name) $(grep "^$name:" /etc/subuid | head -1 | cut -d: -f2,3) $(grep "^$name:" /etc/subgid | head -1 | cut -d: -f2,3)"
"#;
        let out = Command::new("flock")
            .args(["/run/hako-test-user.lock", "sh", "-c", script])
            .output()
            .expect("run flock (util-linux)");
        assert!(
            out.status.success(),
            "creating the test user failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let f: Vec<&str> = text.split_whitespace().collect();
        let range = |s: &str| {
            let (a, b) = s.split_once(':').expect("subid range");
            (a.parse().unwrap(), b.parse().unwrap())
        };
        assert!(
            Path::new("/usr/bin/newuidmap").exists(),
            "newuidmap is missing: install the uidmap package (make deps)"
        );
        TestUser {
            name: "hakotest".into(),
            uid: f[0].parse().unwrap(),
            gid: f[1].parse().unwrap(),
            subuid: range(f[2]),
            subgid: range(f[3]),
        }
    })
}

/// The binary under test, copied where any user can run it (the checkout may be under a
/// directory only root can enter, such as /root).
pub fn rootless_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let base = tmp_base().join("hako-test-bin");
        // Copies of test processes that have ended go.
        for e in fs::read_dir(&base).into_iter().flatten().flatten() {
            let pid = e.file_name().to_string_lossy().parse::<i32>().unwrap_or(0);
            if pid > 0 && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = fs::remove_dir_all(e.path());
            }
        }
        let dir = base.join(std::process::id().to_string());
        fs::create_dir_all(&dir).unwrap();
        for d in [&base, &dir] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let name = hako_bin()
            .file_name()
            .map(|n| n.to_owned())
            .unwrap_or_else(|| "hako".into());
        let dst = dir.join(name);
        fs::copy(hako_bin(), &dst).expect("copy the binary under test");
        fs::set_permissions(&dst, fs::Permissions::from_mode(0o755)).unwrap();
        dst
    })
    .clone()
}
