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
    /// Root directory for container state (tmpfs recommended).
    #[arg(long, global = true, default_value = "/run/hako")]
    pub root: PathBuf,
    /// Log file (default: stderr).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    #[arg(long = "log-format", global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd for cgroups (recorded in the container state).
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Rootless mode: true, false or auto (recorded; acted on by later issues).
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<String>,
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
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
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
        #[arg(short = 'a', long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container and everything it had.
    Delete {
        #[arg(short = 'f', long)]
        force: bool,
        id: String,
    },
    /// Create and start a container, and wait for it unless detached.
    Run {
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
        #[arg(short = 'f', long, value_enum, default_value = "table")]
        format: ListFormat,
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
        #[arg(long)]
        stats: bool,
        /// Interval between stats while streaming (Go duration: 5s, 500ms, 1m).
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// Print the runtime-spec features document (what this hako supports) as JSON.
    Features,
    #[command(external_subcommand)]
    Other(Vec<String>),
}

/// runc's `update` flags; `--resources` takes a LinuxResources JSON file (or `-` for stdin) and
/// the per-field flags override it.
#[derive(Args, Debug, Clone, Default)]
pub struct UpdateArgs {
    #[arg(short = 'r', long)]
    pub resources: Option<String>,
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    #[arg(long = "cpu-share")]
    pub cpu_share: Option<u64>,
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime")]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    #[arg(long)]
    pub memory: Option<String>,
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    #[arg(long = "memory-swap")]
    pub memory_swap: Option<String>,
    #[arg(long = "kernel-memory")]
    pub kernel_memory: Option<String>,
    #[arg(long = "kernel-memory-tcp")]
    pub kernel_memory_tcp: Option<String>,
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    pub id: String,
}

/// runc's `exec` flags. With `--process F` the process comes from F and the flags that shape it
/// are ignored, as in runc.
#[derive(Args, Debug, Clone, Default)]
pub struct ExecArgs {
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    #[arg(short = 'e', long)]
    pub env: Vec<String>,
    #[arg(short = 't', long)]
    pub tty: bool,
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    #[arg(long)]
    pub apparmor: Option<String>,
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    #[arg(short = 'c', long)]
    pub cap: Vec<String>,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// Accepted for runc compatibility (the shim is the subreaper).
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
    pub id: String,
    /// The command and its arguments (everything after the id).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
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
