//! runc's command line, flag for flag. Callers (containerd's shim, conmon, podman) pass exactly
//! these spellings, so new names are never invented here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "hako",
    about = "hako: an OCI container runtime",
    disable_version_flag = true
)]
pub struct Cli {
    /// Root directory for container state (tmpfs recommended; default /run/hako, or
    /// $XDG_RUNTIME_DIR/hako for an unprivileged user).
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,
    /// Log file (default: stderr).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long = "log-format", global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Enable debug logging.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd for cgroups (recorded in the container state).
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Rootless cgroup handling: true, false or auto (default: on for a non-root user).
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<String>,
    /// Path to the criu binary used for checkpoint and restore.
    #[arg(long, global = true, default_value = "criu")]
    pub criu: PathBuf,
    /// Print the version.
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// Path to the bundle directory.
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// File to write the init's pid to.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// AF_UNIX socket that receives the master end of the console's pseudoterminal.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Do not use pivot_root to jail the process inside the rootfs (rootfs on a ramdisk).
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring for the container.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N more file descriptors to the container (stdio + $LISTEN_FDS + N in total).
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// The container's id.
    pub id: String,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a container (everything but the process).
    Create(CreateArgs),
    /// Start the process of a created container.
    Start { id: String },
    /// Print the state of a container as JSON.
    State { id: String },
    /// Send a signal to the container's init (default SIGTERM).
    Kill {
        /// Send the signal to every process of the container.
        #[arg(short = 'a', long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container and everything it had.
    Delete {
        /// Kill the container first if it is running.
        #[arg(short = 'f', long)]
        force: bool,
        id: String,
    },
    /// Create and start a container, and wait for it unless detached.
    Run {
        /// Detach from the container's process.
        #[arg(short = 'd', long)]
        detach: bool,
        /// Keep the container's state after it exits (runc's --keep).
        #[arg(long)]
        keep: bool,
        #[command(flatten)]
        create: CreateArgs,
    },
    /// List containers.
    List {
        /// table or json.
        #[arg(short = 'f', long, value_enum, default_value = "table")]
        format: ListFormat,
        /// Print only the container ids.
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Write a default config.json (runc's) into the bundle directory.
    Spec {
        /// (`spec --rootless`: a user namespace mapping the caller to root, as in runc.)
        #[arg(short = 'b', long, default_value = ".")]
        bundle: PathBuf,
    },
    /// Freeze every process of the container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// List the container's processes (`--format json`: a JSON array of host pids).
    Ps {
        /// table or json.
        #[arg(short = 'f', long, value_enum, default_value = "table")]
        format: ListFormat,
        id: String,
        /// Options passed to ps(1) for the table format (default -ef).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Change the resource limits of a running container.
    Update(Box<UpdateArgs>),
    /// Run a new process inside a running container.
    Exec(Box<ExecArgs>),
    /// Resource usage (`--stats`: once) and OOM notifications, as JSON lines.
    Events {
        /// Print the container's stats once, then exit.
        #[arg(long)]
        stats: bool,
        /// Interval between stats while streaming (Go duration: 5s, 500ms, 1m).
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// Print the runtime-spec features document (what this hako supports) as JSON.
    Features,
    /// Checkpoint a running container with CRIU.
    // A flag given twice is Go's "last one wins" (podman passes --leave-running twice).
    #[command(args_override_self = true)]
    Checkpoint(Box<CheckpointArgs>),
    /// Restore a container from a checkpoint with CRIU.
    #[command(args_override_self = true)]
    Restore(Box<RestoreArgs>),
    #[command(external_subcommand)]
    Other(Vec<String>),
}

/// runc's `update` flags; `--resources` takes a LinuxResources JSON file (or `-` for stdin) and
/// the per-field flags override it. `-1` (unlimited) is a value, not a flag, wherever runc takes
/// it: the sizes, `--cpu-quota`, `--cpu-rt-runtime` and `--pids-limit`.
#[derive(Args, Debug, Clone, Default)]
pub struct UpdateArgs {
    #[arg(short = 'r', long)]
    pub resources: Option<String>,
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    #[arg(long = "cpu-quota", allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    #[arg(long = "cpu-share")]
    pub cpu_share: Option<u64>,
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime", allow_negative_numbers = true)]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    #[arg(long = "kernel-memory", allow_hyphen_values = true)]
    pub kernel_memory: Option<String>,
    #[arg(long = "kernel-memory-tcp", allow_hyphen_values = true)]
    pub kernel_memory_tcp: Option<String>,
    #[arg(long = "pids-limit", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    pub id: String,
}

/// runc's `exec` flags. With `--process F` the process comes from F and the flags that shape it
/// are ignored, as in runc.
#[derive(Args, Debug, Clone, Default)]
pub struct ExecArgs {
    /// Path to a process.json (the process's whole spec).
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    /// AF_UNIX socket that receives the master end of the console's pseudoterminal.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Working directory in the container.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable (KEY=VALUE).
    #[arg(short = 'e', long)]
    pub env: Vec<String>,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// UID (format: <uid>[:<gid>]).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Additional gids.
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Detach from the process.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// File to write the process's pid to.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// SELinux label for the process.
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// AppArmor profile for the process.
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Set no_new_privs for the process.
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Add a capability to the process's bounding, effective and permitted sets.
    #[arg(short = 'c', long)]
    pub cap: Vec<String>,
    /// Pass N more file descriptors to the process (stdio + $LISTEN_FDS + N in total).
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Allow exec in a paused container.
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// Run in a sub-cgroup of the container's: `SUB` (every hierarchy) or `CTRL[,CTRL]:SUB`
    /// (cgroup v1), repeatable (runc 1.1).
    #[arg(long = "cgroup")]
    pub cgroup: Vec<String>,
    /// Accepted for runc compatibility (the shim is the subreaper).
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
    pub id: String,
    /// The command and its arguments (everything after the id).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// The CRIU flags `checkpoint` and `restore` share, as runc names them.
#[derive(Args, Debug, Clone, Default)]
pub struct CriuArgs {
    /// Path for criu image files (written by checkpoint, read by restore).
    #[arg(long = "image-path")]
    pub image_path: Option<PathBuf>,
    /// Path for saving work files and logs.
    #[arg(long = "work-path")]
    pub work_path: Option<PathBuf>,
    /// Allow open tcp connections.
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// Allow external unix sockets.
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    /// Allow shell jobs.
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    /// Handle file locks.
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    /// cgroups mode: soft, full or strict.
    #[arg(long = "manage-cgroups-mode")]
    pub manage_cgroups_mode: Option<String>,
    /// Create a namespace, but do not restore its properties.
    #[arg(long = "empty-ns")]
    pub empty_ns: Vec<String>,
    /// Enable auto deduplication of memory images.
    #[arg(long = "auto-dedup")]
    pub auto_dedup: bool,
    /// Use userfaultfd to lazily restore memory pages.
    #[arg(long = "lazy-pages")]
    pub lazy_pages: bool,
}

/// runc's `checkpoint` flags.
#[derive(Args, Debug, Clone, Default)]
pub struct CheckpointArgs {
    #[command(flatten)]
    pub criu: CriuArgs,
    /// Path for previous criu image files in pre-dump.
    #[arg(long = "parent-path")]
    pub parent_path: Option<PathBuf>,
    /// Leave the process running after checkpointing.
    #[arg(long = "leave-running")]
    pub leave_running: bool,
    /// Allow one to link unlinked files back when possible (runc 1.2+).
    #[arg(long = "link-remap")]
    pub link_remap: bool,
    /// criu writes \0 to this fd once lazy-pages is ready.
    #[arg(long = "status-fd", allow_hyphen_values = true)]
    pub status_fd: Option<i32>,
    /// ADDRESS:PORT of the page server.
    #[arg(long = "page-server")]
    pub page_server: Option<String>,
    /// Dump the container's memory only, leave it running.
    #[arg(long = "pre-dump")]
    pub pre_dump: bool,
    pub id: String,
}

/// runc's `restore` flags (see [`CheckpointArgs`]).
#[derive(Args, Debug, Clone, Default)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub criu: CriuArgs,
    /// AF_UNIX socket that receives the master end of the console's pseudoterminal.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Path to the root of the bundle directory.
    #[arg(short = 'b', long)]
    pub bundle: Option<PathBuf>,
    /// Detach from the container's process.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// File to write the process id to.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Do not use a subreaper to reap reparented processes.
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
    /// Do not use pivot_root to jail the process inside the rootfs.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// An LSM profile for the restore, TYPE:NAME.
    #[arg(long = "lsm-profile")]
    pub lsm_profile: Option<String>,
    /// An LSM mount context for the restore.
    #[arg(long = "lsm-mount-context")]
    pub lsm_mount_context: Option<String>,
    pub id: String,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListFormat {
    Table,
    Json,
}

/// Long flags that Go's flag parsing (urfave/cli) also accepts with one dash: `-bundle x`,
/// `-no-subreaper`. Callers use both spellings, so rewrite them before clap sees them.
const LONG_FLAGS: &[&str] = &[
    "root",
    "log",
    "log-format",
    "debug",
    "systemd-cgroup",
    "rootless",
    "bundle",
    "pid-file",
    "console-socket",
    "no-pivot",
    "no-new-keyring",
    "preserve-fds",
    "detach",
    "keep",
    "force",
    "all",
    "format",
    "quiet",
    "no-subreaper",
    "criu",
    "image-path",
    "work-path",
    "parent-path",
    "leave-running",
    "link-remap",
    "tcp-established",
    "ext-unix-sk",
    "shell-job",
    "lazy-pages",
    "status-fd",
    "page-server",
    "file-locks",
    "pre-dump",
    "manage-cgroups-mode",
    "empty-ns",
    "auto-dedup",
    "lsm-profile",
    "lsm-mount-context",
    "process",
    "cwd",
    "env",
    "tty",
    "user",
    "additional-gids",
    "process-label",
    "apparmor",
    "no-new-privs",
    "cap",
    "ignore-paused",
    "cgroup",
    "stats",
    "interval",
    "version",
    "help",
];

pub fn normalize(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut passthrough = false;
    for a in args {
        if a == "--" {
            passthrough = true;
        }
        if !passthrough && a.starts_with('-') && !a.starts_with("--") && a.len() > 2 {
            let name = a[1..].split('=').next().unwrap_or("");
            if LONG_FLAGS.contains(&name) {
                out.push(format!("-{a}"));
                continue;
            }
        }
        out.push(a);
    }
    // runc's `spec --rootless` is a switch of `spec`, while the global `--rootless` takes a
    // value: after `spec`, a bare `--rootless` means `--rootless=true`.
    if let Some(at) = out.iter().position(|a| a == "spec") {
        for a in &mut out[at + 1..] {
            if a == "--rootless" {
                *a = "--rootless=true".to_string();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_flags() {
        let v =
            normalize(["hako", "-root", "/r", "create", "-bundle=/b", "-d", "x"].map(String::from));
        assert_eq!(
            v,
            ["hako", "--root", "/r", "create", "--bundle=/b", "-d", "x"]
        );
    }

    #[test]
    fn update_takes_minus_one() {
        let cli = Cli::try_parse_from(normalize(
            [
                "hako",
                "update",
                "--memory-swap",
                "-1",
                "--memory",
                "-1",
                "--cpu-quota",
                "-1",
                "--pids-limit",
                "-1",
                "--cpu-rt-runtime",
                "-1",
                "c1",
            ]
            .map(String::from),
        ))
        .unwrap();
        let Some(Command::Update(u)) = cli.command else {
            panic!("not update");
        };
        assert_eq!(u.memory_swap.as_deref(), Some("-1"));
        assert_eq!(u.memory.as_deref(), Some("-1"));
        assert_eq!(
            (u.cpu_quota, u.pids_limit, u.cpu_rt_runtime),
            (Some(-1), Some(-1), Some(-1))
        );
        assert_eq!(u.id, "c1");
    }

    #[test]
    fn parses_containerd_create() {
        let v = normalize(
            [
                "hako",
                "--root",
                "/run/containerd/runc/default",
                "--log",
                "/b/log.json",
                "--log-format",
                "json",
                "create",
                "--bundle",
                "/b",
                "--pid-file",
                "/b/init.pid",
                "c1",
            ]
            .map(String::from),
        );
        let cli = Cli::try_parse_from(v).unwrap();
        assert_eq!(cli.log_format, LogFormat::Json);
        match cli.command {
            Some(Command::Create(c)) => {
                assert_eq!(c.id, "c1");
                assert_eq!(c.pid_file.unwrap(), PathBuf::from("/b/init.pid"));
            }
            other => panic!("{other:?}"),
        }
    }
}
