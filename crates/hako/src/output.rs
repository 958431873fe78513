//! What runc prints: `list` as Go's tabwriter lays it out, signals by name or number.

use anyhow::{bail, Result};
use hako_spec::state::StateView;
use nix::sys::signal::Signal;

use crate::cli::ListFormat;

/// `9`, `KILL`, `SIGKILL`, `kill`: runc upper-cases and strips `SIG`. A number is taken as it
/// is, as runc does: `0` checks that the init is alive, real-time signals pass, and one the
/// kernel does not know fails when sent ("invalid argument").
/// Writes a command's output to stdout (see [`Stdout`]).
pub fn emit(text: &str) -> Result<()> {
    use std::io::Write;
    Ok(Stdout
        .write_all(text.as_bytes())
        .and_then(|()| Stdout.flush())?)
}

/// stdout for a command's output. A reader that went away (`hako state ID | grep -q …`, an
/// `events` consumer that quit) ends the process by SIGPIPE, as it ends runc: not a panic of
/// `println!`, and not an error line. SIGPIPE stays ignored everywhere else, so the runtime
/// survives a hook that does not read the state on its stdin.
pub struct Stdout;

impl std::io::Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        died_of_sigpipe(std::io::stdout().lock().write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        died_of_sigpipe(std::io::stdout().lock().flush())
    }
}

fn died_of_sigpipe<T>(r: std::io::Result<T>) -> std::io::Result<T> {
    if matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe) {
        // SAFETY: signal(2) and raise(3) with a valid signal number; the process is
        // single-threaded and ends here.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::raise(libc::SIGPIPE);
        }
        std::process::exit(141)
    }
    r
}

pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let up = s.to_ascii_uppercase();
    let name = format!("SIG{}", up.strip_prefix("SIG").unwrap_or(&up));
    match name.parse::<Signal>() {
        Ok(sig) => Ok(sig as i32),
        Err(_) => bail!("unknown signal {s:?}"),
    }
}

/// Go's text/tabwriter with runc's settings (minwidth 12, tabwidth 1, padding 3, ' ').
pub fn tabwriter(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate().take(cols.saturating_sub(1)) {
            widths[i] = widths[i].max((c.chars().count() + 3).max(12));
        }
    }
    let mut out = String::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i + 1 < r.len() {
                out.push_str(&format!("{c:<w$}", w = widths[i]));
            } else {
                out.push_str(c);
            }
        }
        out.push('\n');
    }
    out
}

pub fn list(items: &[StateView], format: ListFormat, quiet: bool) -> Result<String> {
    if quiet {
        return Ok(items.iter().map(|s| format!("{}\n", s.id)).collect());
    }
    match format {
        // runc encodes a nil slice: `null` when there are no containers.
        ListFormat::Json if items.is_empty() => Ok("null\n".into()),
        ListFormat::Json => Ok(serde_json::to_string(items)? + "\n"),
        ListFormat::Table => {
            let mut rows = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
                .map(String::from)
                .to_vec()];
            for s in items {
                rows.push(vec![
                    s.id.clone(),
                    s.pid.to_string(),
                    s.status.to_string(),
                    s.bundle.display().to_string(),
                    s.created.clone(),
                    s.owner.clone(),
                ]);
            }
            Ok(tabwriter(&rows))
        }
    }
}

/// `ps`: json is a bare array of host pids (containerd parses it); the table is ps(1)'s own
/// output filtered to the container's pids, as runc prints it.
pub fn ps(pids: &[i32], format: ListFormat, args: &[String]) -> Result<String> {
    if format == ListFormat::Json {
        return Ok(serde_json::to_string(pids)? + "\n");
    }
    let args: Vec<String> = if args.is_empty() {
        vec!["-ef".into()]
    } else {
        args.to_vec()
    };
    let out = std::process::Command::new("ps").args(&args).output()?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| anyhow::anyhow!("ps output has no PID column"))?;
    let mut res = format!("{header}\n");
    for l in lines {
        if let Some(p) = l
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok())
        {
            if pids.contains(&p) {
                res.push_str(l);
                res.push('\n');
            }
        }
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        for s in ["9", "KILL", "SIGKILL", "kill", "sigkill"] {
            assert_eq!(parse_signal(s).unwrap(), Signal::SIGKILL as i32, "{s}");
        }
        assert!(parse_signal("NOPE").is_err());
        // Numbers go to the kernel as they are (runc): 0 probes, 99 fails when sent.
        assert_eq!(parse_signal("0").unwrap(), 0);
        assert_eq!(parse_signal("99").unwrap(), 99);
    }

    #[test]
    fn tab_layout_like_go() {
        let t = tabwriter(&[
            vec!["ID".into(), "PID".into(), "OWNER".into()],
            vec!["a-very-long-id".into(), "1".into(), "root".into()],
        ]);
        // Column width is max(text + padding 3, minwidth 12): 17 for the id column, 12 for PID.
        let want = format!(
            "{}{}{}\n{}{}{}\n",
            "ID".to_owned() + &" ".repeat(15),
            "PID".to_owned() + &" ".repeat(9),
            "OWNER",
            "a-very-long-id   ",
            "1".to_owned() + &" ".repeat(11),
            "root"
        );
        assert_eq!(t, want);
    }
}
