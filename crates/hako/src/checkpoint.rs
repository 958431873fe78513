//! `checkpoint` and `restore`: runc's flags ([`crate::cli`]) into hako-runtime's options.

use std::path::Path;

use hako_runtime::checkpoint::{CheckpointOptions, CriuOptions, RestoreOptions};

use crate::cli::{CheckpointArgs, CriuArgs, RestoreArgs};

pub fn checkpoint_options(criu: &Path, a: &CheckpointArgs) -> CheckpointOptions {
    CheckpointOptions {
        id: a.id.clone(),
        criu: criu_options(criu, &a.criu),
        parent_path: a
            .parent_path
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        leave_running: a.leave_running,
        link_remap: a.link_remap,
        pre_dump: a.pre_dump,
        status_fd: a.status_fd.unwrap_or(-1),
        page_server: a.page_server.clone(),
    }
}

pub fn restore_options(
    criu: &Path,
    a: &RestoreArgs,
    systemd_cgroup: bool,
    rootless: bool,
) -> RestoreOptions {
    RestoreOptions {
        id: a.id.clone(),
        // runc: the bundle defaults to the current directory.
        bundle: a.bundle.clone().unwrap_or_else(|| ".".into()),
        criu: criu_options(criu, &a.criu),
        detach: a.detach,
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        no_pivot: a.no_pivot,
        no_subreaper: a.no_subreaper,
        lsm_profile: a.lsm_profile.clone(),
        lsm_mount_context: a.lsm_mount_context.clone(),
        systemd_cgroup,
        rootless,
    }
}

fn criu_options(criu: &Path, c: &CriuArgs) -> CriuOptions {
    CriuOptions {
        criu: criu.to_path_buf(),
        image_path: c.image_path.clone(),
        work_path: c.work_path.clone(),
        tcp_established: c.tcp_established,
        ext_unix_sk: c.ext_unix_sk,
        shell_job: c.shell_job,
        file_locks: c.file_locks,
        manage_cgroups_mode: c.manage_cgroups_mode.clone(),
        empty_ns: c.empty_ns.clone(),
        auto_dedup: c.auto_dedup,
        lazy_pages: c.lazy_pages,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{normalize, Cli, Command};

    /// containerd's shim (go-runc) spells `-no-subreaper` with one dash, Go style.
    #[test]
    fn parses_containerd_restore() {
        let args = [
            "hako",
            "--root",
            "/run/containerd/runc/k8s.io",
            "--log",
            "/b/log.json",
            "--log-format",
            "json",
            "restore",
            "--detach",
            "--pid-file",
            "/b/init.pid",
            "--bundle",
            "/b",
            "--image-path",
            "/img",
            "--work-path",
            "/work",
            "-no-subreaper",
            "c1",
        ]
        .map(String::from);
        let cli = Cli::try_parse_from(normalize(args)).unwrap();
        let Some(Command::Restore(r)) = &cli.command else {
            panic!("{:?}", cli.command);
        };
        let o = super::restore_options(&cli.criu, r, false, false);
        assert!(o.no_subreaper && o.detach);
        assert_eq!(o.id, "c1");
        assert_eq!(o.criu.criu, std::path::PathBuf::from("criu"));
        assert_eq!(o.criu.image_path.unwrap(), std::path::PathBuf::from("/img"));
    }

    #[test]
    fn checkpoint_flags() {
        let args = [
            "hako",
            "--criu",
            "/opt/criu",
            "checkpoint",
            "--image-path",
            "/img",
            "--leave-running",
            // podman repeats it; urfave/cli takes that.
            "--leave-running",
            "--empty-ns",
            "network",
            "--empty-ns",
            "network",
            "--manage-cgroups-mode",
            "soft",
            "c1",
        ]
        .map(String::from);
        let cli = Cli::try_parse_from(normalize(args)).unwrap();
        let Some(Command::Checkpoint(a)) = &cli.command else {
            panic!("{:?}", cli.command);
        };
        let o = super::checkpoint_options(&cli.criu, a);
        assert!(o.leave_running);
        assert_eq!(o.status_fd, -1);
        // A slice flag, as runc's: every occurrence counts.
        assert_eq!(o.criu.empty_ns, vec!["network".to_string(); 2]);
        assert_eq!(o.criu.criu, std::path::PathBuf::from("/opt/criu"));
    }
}
