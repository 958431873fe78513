//! The tools CRIU runs to lock a container's network. CRIU cuts a dumped network namespace off
//! while it freezes the processes (and keeps a restored one cut off until they run) by running
//! `iptables-restore` and, where IPv6 exists, `ip6tables-restore` inside it, looked up in the
//! PATH it inherits from us. Without them it fails half-way with only its own `execvp` line in
//! its log; naming the missing tool before CRIU starts leaves nothing half-done.

use std::path::Path;

use hako_spec::oci::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

/// Refuses a checkpoint or restore (`what`) of `spec` when CRIU would need a lock tool that is
/// not in PATH. Only a container with a network namespace other than the host's is locked; a CRIU
/// configuration file may choose another method (`network-lock nftables|skip`), which we trust.
pub fn require_tools(spec: &Spec, config_file: Option<&str>, what: &str) -> Result<()> {
    if !has_own_netns(spec) || config_sets_lock(config_file) {
        return Ok(());
    }
    let missing: Vec<&str> = needed(Path::new("/proc/sys/net/ipv6").exists())
        .into_iter()
        .filter(|tool| super::swrk::in_path(Path::new(tool)).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{what}: CRIU locks the container's network namespace with {}, which {} not in $PATH \
         (install iptables)",
        missing.join(" and "),
        if missing.len() == 1 { "is" } else { "are" }
    )))
}

fn needed(ipv6: bool) -> Vec<&'static str> {
    if ipv6 {
        vec!["iptables-restore", "ip6tables-restore"]
    } else {
        vec!["iptables-restore"]
    }
}

fn has_own_netns(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::Network))
}

fn config_sets_lock(config_file: Option<&str>) -> bool {
    config_file
        .and_then(|f| std::fs::read_to_string(f).ok())
        .is_some_and(|c| {
            c.lines()
                .any(|l| l.trim_start().starts_with("network-lock"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_needs_both_tools() {
        assert_eq!(needed(false), ["iptables-restore"]);
        assert_eq!(needed(true), ["iptables-restore", "ip6tables-restore"]);
    }

    #[test]
    fn a_config_file_choosing_the_lock_is_trusted() {
        let d = std::env::temp_dir().join(format!("hako-netlock-{}", std::process::id()));
        std::fs::write(&d, "tcp-established\nnetwork-lock nftables\n").unwrap();
        assert!(config_sets_lock(d.to_str()));
        std::fs::write(&d, "tcp-established\n").unwrap();
        assert!(!config_sets_lock(d.to_str()));
        let _ = std::fs::remove_file(&d);
        assert!(!config_sets_lock(None));
    }
}
