//! `linux.resources.unified`: raw v2 files, by name.

use std::collections::HashMap;
use std::path::Path;

use crate::cgroups::manager::write;
use crate::error::{Error, Result};

/// `linux.resources.unified`: raw v2 files. Keys are file names of this cgroup, never paths.
pub(super) fn set(d: &Path, u: &HashMap<String, String>) -> Result<()> {
    for (k, v) in u {
        let field = format!("linux.resources.unified.{k}");
        if k.contains('/') || k.starts_with('.') || !k.contains('.') {
            return Err(Error::Usage(format!("{field}: not a cgroup file name")));
        }
        // Membership and lifetime files are not resources: "cgroup.procs": "1" would move the
        // host's init into the container's cgroup.
        if [
            "cgroup.procs",
            "cgroup.threads",
            "cgroup.kill",
            "cgroup.subtree_control",
        ]
        .contains(&k.as_str())
        {
            return Err(Error::Usage(format!("{field}: not a resource file")));
        }
        if !d.join(k).exists() {
            return Err(Error::Usage(format!(
                "{field}: unknown cgroup v2 file ({} does not exist)",
                d.join(k).display()
            )));
        }
        write(d, k, v, &field)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::scratch::Scratch;

    fn one(k: &str) -> HashMap<String, String> {
        HashMap::from([(k.to_string(), "1".to_string())])
    }

    #[test]
    fn existing_resource_files_only() {
        let s = Scratch::with(&["memory.high", "cgroup.procs"]);
        set(s.path(), &one("memory.high")).unwrap();
        assert_eq!(s.get("memory.high").unwrap(), "1");
        for (k, why) in [
            ("cgroup.procs", "not a resource file"),
            ("../memory.high", "not a cgroup file name"),
            ("memory.nope", "unknown cgroup v2 file"),
        ] {
            let e = set(s.path(), &one(k)).unwrap_err().to_string();
            assert!(e.contains(why), "{k}: {e}");
        }
    }
}
