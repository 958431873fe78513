//! An OOM kill inside a running container and an `events` stream watching for it: the set-up
//! tests/events.rs shares between the periodic and the kernel-notified paths.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::{hako_bin, host_cgroup_has, read, skip_part, wait_for, Bundle, Hako};

/// 32 MiB of memory, and of memory+swap where the host accounts swap (memory.memsw.* on v1,
/// memory.swap.max on v2; a swap limit is refused without), so `tail` cannot escape to swap.
pub fn oom_limits() -> Value {
    let v2 = !read("/proc/self/mountinfo").contains(" - cgroup ");
    let swap_file = if v2 {
        "memory.swap.max"
    } else {
        "memory.memsw.limit_in_bytes"
    };
    if host_cgroup_has("memory", swap_file) {
        return json!({"memory": {"limit": 33554432, "swap": 33554432}});
    }
    skip_part(
        "swap limit",
        &format!("no {swap_file} (swap accounting off: swapaccount=0 or no CONFIG_SWAP)"),
    );
    json!({"memory": {"limit": 33554432}})
}

/// A detached container under [`oom_limits`] whose shell runs `tail /dev/zero` (which keeps the
/// whole newline-free input in memory: OOM-killed at the limit) only after [`OomContainer::go`],
/// then lives on. An OOM before a watcher is ready is no event (in runc too), hence the wait.
pub struct OomContainer {
    pub id: String,
    go: PathBuf,
    // The container runs on it: kept until the test ends.
    _bundle: Bundle,
}

impl OomContainer {
    #[track_caller]
    pub fn start(h: &Hako) -> OomContainer {
        let mut b =
            Bundle::sh("while [ ! -e /out/go ]; do sleep 0.1; done; tail /dev/zero; sleep 100");
        let go = b.out_dir().join("go");
        b.config["linux"]["resources"] = oom_limits();
        let id = h.new_id();
        h.run_with(&id, &b, &["-d"]).assert_ok();
        OomContainer { id, go, _bundle: b }
    }

    /// Lets the shell start `tail`.
    pub fn go(&self) {
        std::fs::write(&self.go, "").unwrap();
    }
}

/// `events --interval INTERVAL ID` in the background, its stdout in a file of the scratch dir.
pub struct EventStream {
    pub child: Child,
    out: PathBuf,
}

impl EventStream {
    pub fn spawn(h: &Hako, id: &str, interval: &str) -> EventStream {
        let out = h.scratch().join(format!("events-{}.out", crate::unique()));
        let root = h.root().to_str().unwrap().to_string();
        let child = Command::new(hako_bin())
            .args(["--root", &root, "events", "--interval", interval, id])
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        EventStream { child, out }
    }

    /// What it printed so far.
    pub fn text(&self) -> String {
        read(&self.out)
    }

    /// Waits up to `timeout` for an `oom` line naming container `id`.
    pub fn wait_for_oom(&self, id: &str, timeout: Duration) -> bool {
        wait_for(timeout, || {
            self.text().lines().any(|l| {
                serde_json::from_str::<Value>(l).is_ok_and(|v| v["type"] == "oom" && v["id"] == id)
            })
        })
    }

    /// Kills and reaps it (a no-op when it already ended).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
