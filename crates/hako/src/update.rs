//! `update`'s flags turned into a LinuxResources, the way runc reads them.

use anyhow::{bail, Context, Result};
use hako_spec::oci::LinuxResources;
use serde_json::{json, Value};

use crate::cli::UpdateArgs;

/// `100`, `512k`, `64m`, `1g` (binary units, as docker's RAMInBytes), `-1` for unlimited.
pub fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num.parse().with_context(|| format!("invalid size {s:?}"))?;
    if n < 0.0 {
        bail!("invalid size {s:?}");
    }
    Ok((n * mult as f64) as i64)
}

pub fn resources(u: &UpdateArgs) -> Result<LinuxResources> {
    let mut v: Value = match u.resources.as_deref() {
        Some("-") => serde_json::from_reader(std::io::stdin()).context("--resources: stdin")?,
        Some(f) => {
            let text = std::fs::read_to_string(f).with_context(|| format!("--resources {f}"))?;
            serde_json::from_str(&text).with_context(|| format!("--resources {f}"))?
        }
        None => json!({}),
    };
    // As runc: the file is a LinuxResources before any flag is applied to it (`[]` or
    // `{"memory": 5}` with --memory panicked here, found by tests/fuzz.rs).
    serde_json::from_value::<LinuxResources>(v.clone())
        .context("--resources: not a LinuxResources object")?;
    let mut set = |path: &[&str], val: Value| {
        let mut cur = &mut v;
        for p in path {
            // Valid above, so a non-object here is a null the file left: the flag fills it.
            if !cur.is_object() {
                *cur = json!({});
            }
            let Value::Object(o) = cur else {
                unreachable!("made an object above")
            };
            cur = o.entry(*p).or_insert(Value::Null);
        }
        *cur = val;
    };
    if let Some(x) = &u.memory {
        set(&["memory", "limit"], json!(parse_bytes(x)?));
    }
    if let Some(x) = &u.memory_reservation {
        set(&["memory", "reservation"], json!(parse_bytes(x)?));
    }
    if let Some(x) = &u.memory_swap {
        set(&["memory", "swap"], json!(parse_bytes(x)?));
    }
    if let Some(x) = &u.kernel_memory {
        set(&["memory", "kernel"], json!(parse_bytes(x)?));
    }
    if let Some(x) = &u.kernel_memory_tcp {
        set(&["memory", "kernelTCP"], json!(parse_bytes(x)?));
    }
    if let Some(x) = u.cpu_share {
        set(&["cpu", "shares"], json!(x));
    }
    if let Some(x) = u.cpu_quota {
        set(&["cpu", "quota"], json!(x));
    }
    if let Some(x) = u.cpu_period {
        set(&["cpu", "period"], json!(x));
    }
    if let Some(x) = u.cpu_burst {
        set(&["cpu", "burst"], json!(x));
    }
    if let Some(x) = u.cpu_idle {
        set(&["cpu", "idle"], json!(x));
    }
    if let Some(x) = u.cpu_rt_period {
        set(&["cpu", "realtimePeriod"], json!(x));
    }
    if let Some(x) = u.cpu_rt_runtime {
        set(&["cpu", "realtimeRuntime"], json!(x));
    }
    if let Some(x) = &u.cpuset_cpus {
        set(&["cpu", "cpus"], json!(x));
    }
    if let Some(x) = &u.cpuset_mems {
        set(&["cpu", "mems"], json!(x));
    }
    if let Some(x) = u.pids_limit {
        set(&["pids", "limit"], json!(x));
    }
    if let Some(x) = u.blkio_weight {
        set(&["blockIO", "weight"], json!(x));
    }
    serde_json::from_value(v).context("--resources: not a LinuxResources object")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("100").unwrap(), 100);
        assert_eq!(parse_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        assert!(parse_bytes("lots").is_err());
    }
}
