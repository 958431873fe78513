//! `exec --cgroup` (runc 1.1+, parsed as runc 1.3): the exec'd process joins a sub-cgroup of the container's cgroup
//! that already exists. `SUB` means SUB below the container's cgroup in every hierarchy (the
//! hybrid's v2 one included); `CTRL[,CTRL]:SUB` only in those controllers' v1 hierarchies, the
//! others staying at the container's own level. On pure v2 only the first form exists.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use hako_spec::state::CgroupRecord;

use super::Hierarchy;
use crate::error::{Error, Result};

/// runc 1.3's getSubCgroupPaths: controller ("" for all) → sub path. The first `:` separates
/// the controllers from the path (runc 1.1 refused a second one).
pub fn parse(args: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for a in args {
        let Some((ctrls, sub)) = a.split_once(':') else {
            if args.len() != 1 {
                return Err(Error::Usage(format!(
                    "invalid --cgroup argument: {a} (missing <controller>: prefix)"
                )));
            }
            out.insert(String::new(), a.to_string());
            continue;
        };
        for c in ctrls.split(',') {
            if c.is_empty() {
                return Err(Error::Usage(format!(
                    "invalid --cgroup argument: {a} (empty <controller> prefix)"
                )));
            }
            if out.insert(c.to_string(), sub.to_string()).is_some() {
                return Err(Error::Usage(format!(
                    "invalid --cgroup argument(s): controller {c} specified multiple times"
                )));
            }
        }
    }
    Ok(out)
}

/// `base` joined with `sub` the way Go's path.Join cleans it; a result outside `base` is refused.
fn below(base: &Path, sub: &str) -> Result<PathBuf> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in Path::new(sub).components() {
        match c {
            Component::Normal(n) => parts.push(n),
            // (The guard's pop is the step up; nothing to pop means above `base`.)
            Component::ParentDir if parts.pop().is_none() => {
                return Err(Error::Usage(format!("{sub} is not a sub cgroup path")));
            }
            _ => {}
        }
    }
    Ok(parts.iter().fold(base.to_path_buf(), |p, n| p.join(n)))
}

/// The container's cgroup record with its directories moved to the sub-cgroups `args` name.
/// Errors past the parsing in runc 1.3's words, which come from its parent-process setup.
pub fn record(rec: &CgroupRecord, hs: &[Hierarchy], args: &[String]) -> Result<CgroupRecord> {
    let subs = parse(args)?;
    moved(rec, hs, &subs)
        .map_err(|e| Error::Usage(format!("unable to create new parent process: {e}")))
}

fn moved(
    rec: &CgroupRecord,
    hs: &[Hierarchy],
    subs: &BTreeMap<String, String>,
) -> Result<CgroupRecord> {
    let mut out = rec.clone();
    if let Some(sub) = subs.get("") {
        for d in out.v1.values_mut().chain(out.unified.iter_mut()) {
            *d = below(d, sub)?;
        }
        return Ok(out);
    }
    for (ctrl, sub) in subs {
        let key = hs
            .iter()
            .filter(|h| !h.v2 && h.controllers.iter().any(|c| c == ctrl))
            .find_map(|h| h.mountpoint.file_name())
            .map(|n| n.to_string_lossy().into_owned());
        match key.and_then(|k| out.v1.get_mut(&k)) {
            Some(d) => *d = below(d, sub)?,
            None => {
                return Err(Error::Usage(format!(
                    "unknown controller {ctrl} in SubCgroupPaths"
                )))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn runc_forms() {
        let m = parse(&args(&["memory:a", "pids,cpu:b/c"])).unwrap();
        assert_eq!(m["memory"], "a");
        assert_eq!(m["pids"], "b/c");
        assert_eq!(m["cpu"], "b/c");
        assert_eq!(parse(&args(&["sub"])).unwrap()[""], "sub");
        assert_eq!(parse(&args(&["a:b:c"])).unwrap()["a"], "b:c");
        assert!(parse(&args(&["sub", "memory:x"])).is_err());
        let e = parse(&args(&[":x"])).unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid --cgroup argument: :x (empty <controller> prefix)"
        );
        let e = parse(&args(&["memory:x", "pids,memory:y"]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "invalid --cgroup argument(s): controller memory specified multiple times"
        );
    }

    #[test]
    fn stays_below() {
        let base = Path::new("/sys/fs/cgroup/memory/c");
        assert_eq!(below(base, "/a/./b").unwrap(), base.join("a/b"));
        assert_eq!(below(base, "a/../b").unwrap(), base.join("b"));
        assert!(below(base, "../x").is_err());
    }

    #[test]
    fn per_controller() {
        let hs = crate::cgroups::hierarchies(&crate::procinfo::parse_mountinfo(
            crate::cgroups::tests::HYBRID,
        ));
        let mut rec = CgroupRecord {
            layout: "hybrid".into(),
            ..Default::default()
        };
        rec.v1.insert("cpu".into(), "/sys/fs/cgroup/cpu/c".into());
        rec.v1
            .insert("systemd".into(), "/sys/fs/cgroup/systemd/c".into());
        rec.unified = Some("/sys/fs/cgroup/unified/c".into());
        let r = record(&rec, &hs, &args(&["cpu:s"])).unwrap();
        assert_eq!(r.v1["cpu"], Path::new("/sys/fs/cgroup/cpu/c/s"));
        assert_eq!(r.v1["systemd"], Path::new("/sys/fs/cgroup/systemd/c"));
        assert_eq!(
            r.unified.as_deref(),
            Some(Path::new("/sys/fs/cgroup/unified/c"))
        );
        let r = record(&rec, &hs, &args(&["s"])).unwrap();
        assert_eq!(
            r.unified.as_deref(),
            Some(Path::new("/sys/fs/cgroup/unified/c/s"))
        );
        assert!(record(&rec, &hs, &args(&["memory:s"])).is_err());
    }
}
