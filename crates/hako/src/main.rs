//! The `hako` binary: parse runc's command line, call hako-runtime, print what runc prints.
//! `anyhow` lives only here; the library returns typed errors.

mod checkpoint;
mod cli;
mod output;
mod update;

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Parser;
use hako_runtime::container::exec::ExecOptions;
use hako_runtime::container::lifecycle::{self, CreateOptions};
use hako_runtime::init::rootless;
use hako_runtime::log;

use cli::{Cli, Command, CreateArgs};

fn main() -> ExitCode {
    let args = cli::normalize(std::env::args());
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    let format = match cli.log_format {
        cli::LogFormat::Text => log::Format::Text,
        cli::LogFormat::Json => log::Format::Json,
    };
    // The log file is created (or truncated) first, even when nothing goes wrong: callers open it
    // afterwards and treat a missing file as a runtime failure.
    if let Err(e) = log::init(cli.log.as_deref(), format, cli.debug) {
        eprintln!(
            "open log file {}: {e}",
            cli.log.as_deref().unwrap_or_else(|| "".as_ref()).display()
        );
        return ExitCode::from(1);
    }
    // What runs, for `--debug` (nothing is printed without it: callers read stdout and stderr).
    log::debug(&format!(
        "hako {}: {}",
        env!("CARGO_PKG_VERSION"),
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    ));
    match dispatch(&cli) {
        Ok(code) => {
            log::debug(&format!("done, exit status {code}"));
            ExitCode::from(code)
        }
        Err(e) => {
            // Exactly one error line per failure (podman parses the whole file as one JSON value).
            let msg = e.to_string();
            log::error(&msg);
            if log::to_file() {
                eprintln!("{msg}");
            }
            ExitCode::from(e.downcast_ref::<Exit>().map_or(1, |x| x.code))
        }
    }
}

/// An error with runc's exit status for it (`exec` fails with 255, so a caller can tell a failed
/// exec from a process that exited 1).
#[derive(Debug)]
struct Exit {
    code: u8,
    msg: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Exit {}

fn exec_options(a: &cli::ExecArgs) -> ExecOptions {
    ExecOptions {
        id: a.id.clone(),
        process_file: a.process.clone(),
        args: a.command.clone(),
        tty: a.tty.then_some(true),
        console_socket: a.console_socket.clone(),
        pidfd_socket: a.pidfd_socket.clone(),
        detach: a.detach,
        pid_file: a.pid_file.clone(),
        cwd: a.cwd.clone(),
        env: a.env.clone(),
        user: a.user.clone(),
        additional_gids: a.additional_gids.clone(),
        caps: a.cap.clone(),
        no_new_privs: a.no_new_privs,
        preserve_fds: a.preserve_fds,
        ignore_paused: a.ignore_paused,
        apparmor: a.apparmor.clone(),
        process_label: a.process_label.clone(),
        sub_cgroups: a.cgroup.clone(),
    }
}

fn create_options(cli: &Cli, a: &CreateArgs, foreground: bool) -> Result<CreateOptions> {
    Ok(CreateOptions {
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        pidfd_socket: a.pidfd_socket.clone(),
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
        systemd_cgroup: cli.systemd_cgroup,
        rootless: rootless::Mode::parse(cli.rootless.as_deref())?,
        foreground,
    })
}

fn dispatch(cli: &Cli) -> Result<u8> {
    if cli.version {
        print_version()?;
        return Ok(0);
    }
    let Some(cmd) = &cli.command else {
        bail!("no command given; see hako --help");
    };
    let root = &state_root(cli, cmd)?;
    match cmd {
        Command::Create(a) => {
            lifecycle::create(root, &create_options(cli, a, false)?)?;
        }
        Command::Start { id } => lifecycle::start(root, id)?,
        Command::State { id } => {
            let s = lifecycle::state(root, id)?;
            output::emit(&(serde_json::to_string_pretty(&s)? + "\n"))?;
        }
        Command::Kill { all, id, signal } => {
            let sig = output::parse_signal(signal)?;
            lifecycle::kill(root, id, sig, *all)?;
        }
        Command::Delete { force, id } => lifecycle::delete(root, id, *force)?,
        Command::Run {
            detach,
            keep,
            create,
        } => {
            let code =
                lifecycle::run(root, &create_options(cli, create, !detach)?, *detach, *keep)?;
            return Ok(u8::try_from(code).unwrap_or(255));
        }
        Command::List { format, quiet } => {
            // runc 1.2+: a missing default root means no container yet, a missing `--root` is
            // an error (runc 1.1 printed an empty list for both).
            if cli.root.is_some() && !root.exists() {
                bail!("open {}: no such file or directory", root.display());
            }
            let items = lifecycle::list(root)?;
            output::emit(&output::list(&items, *format, *quiet)?)?;
        }
        Command::Spec { bundle } => write_spec(cli, bundle)?,
        Command::Pause { id } => lifecycle::pause(root, id)?,
        Command::Resume { id } => lifecycle::resume(root, id)?,
        Command::Ps {
            format,
            id,
            ps_args,
        } => {
            let pids = lifecycle::pids(root, id)?;
            output::emit(&output::ps(&pids, *format, ps_args)?)?;
        }
        Command::Update(u) => {
            let r = update::resources(u)?;
            lifecycle::update(root, &u.id, &r)?;
        }
        Command::Exec(a) => return exec(root, a),
        Command::Events {
            stats,
            interval,
            id,
        } => {
            let every = events_interval(interval)?;
            hako_runtime::container::events::events(root, id, *stats, every, &mut output::Stdout)?;
        }
        Command::Features => {
            let f = hako_runtime::container::features::features();
            output::emit(&(serde_json::to_string_pretty(&f)? + "\n"))?;
        }
        Command::Checkpoint(a) => {
            let o = checkpoint::checkpoint_options(&cli.criu, a);
            hako_runtime::checkpoint::checkpoint(root, &o)?;
        }
        Command::Restore(a) => return restore(cli, root, a),
        Command::Other(args) => {
            let name = args.first().map(String::as_str).unwrap_or("");
            bail!("command {name:?} is not implemented by hako yet");
        }
    }
    Ok(0)
}

/// `hako exec`: the process's exit status, or 255 when hako fails (runc's status for it).
fn exec(root: &std::path::Path, a: &cli::ExecArgs) -> Result<u8> {
    let code = hako_runtime::container::exec::exec(root, &exec_options(a)).map_err(|e| Exit {
        code: 255,
        msg: format!("exec failed: {e}"),
    })?;
    Ok(u8::try_from(code).unwrap_or(255))
}

fn restore(cli: &Cli, root: &std::path::Path, a: &cli::RestoreArgs) -> Result<u8> {
    let rootless = rootless::Mode::parse(cli.rootless.as_deref())? == rootless::Mode::On;
    let o = checkpoint::restore_options(&cli.criu, a, cli.systemd_cgroup, rootless);
    let code = hako_runtime::checkpoint::restore(root, &o)?;
    Ok(u8::try_from(code).unwrap_or(255))
}

fn print_version() -> Result<()> {
    // The runtime-spec version hako implements, as in `features`' ociVersionMax and
    // `state`'s ociVersion (runc prints the one it is built against).
    output::emit(&format!(
        "hako version {}\nspec: {}\n",
        env!("CARGO_PKG_VERSION"),
        hako_spec::SPEC_VERSION
    ))
}

/// `--root`, else the default for who runs hako.
fn state_root(cli: &Cli, cmd: &Command) -> Result<std::path::PathBuf> {
    Ok(match (&cli.root, cmd) {
        (Some(r), _) => r.clone(),
        // These never touch the state root.
        (None, Command::Spec { .. } | Command::Features | Command::Other(_)) => {
            std::path::PathBuf::from("/run/hako")
        }
        (None, _) => rootless::default_root(nix::unistd::geteuid().as_raw())?,
    })
}

/// `hako spec`: the default config.json (the rootless one with `--rootless true`) in `bundle`.
fn write_spec(cli: &Cli, bundle: &std::path::Path) -> Result<()> {
    let rootless = (cli.rootless.as_deref() == Some("true")).then(|| {
        (
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    });
    let path = bundle.join("config.json");
    if path.exists() {
        // runc's wording, which names the file as the user sees it in the bundle.
        bail!("File config.json exists. Remove it first");
    }
    let text = hako_spec::defaults::default_spec_text(rootless);
    std::fs::write(&path, text).map_err(|e| anyhow::anyhow!("write {}: {e}", path.display()))?;
    Ok(())
}

fn events_interval(interval: &str) -> Result<std::time::Duration> {
    let every = humantime::parse_duration(interval)
        .map_err(|e| anyhow::anyhow!("invalid --interval {interval:?}: {e}"))?;
    if every.is_zero() {
        bail!("duration interval must be greater than 0");
    }
    Ok(every)
}
