//! A directory standing in for a cgroup in unit tests: each controller's writes land in plain
//! files, which the test reads back (cgroupfs's own checks are the integration tests' job).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct Scratch(PathBuf);

impl Scratch {
    /// An empty directory holding `files` (a controller's files that must exist beforehand).
    pub fn with(files: &[&str]) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let d = std::env::temp_dir().join(format!(
            "hako-cg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        for f in files {
            std::fs::write(d.join(f), "").unwrap();
        }
        Scratch(d)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The last value written to `file`, or None when nothing was.
    pub fn get(&self, file: &str) -> Option<String> {
        std::fs::read_to_string(self.0.join(file))
            .ok()
            .filter(|s| !s.is_empty())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
