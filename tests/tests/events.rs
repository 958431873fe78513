//! `events`: runc's stats envelope with real cgroup figures, and OOM notifications while
//! streaming.

use std::time::Duration;

use hako_tests::oom::{EventStream, OomContainer};
use hako_tests::*;

#[test]
fn stats_once_in_runc_shape() {
    require_root!();
    let h = Hako::new();
    let mut b = Bundle::sh("sleep 100");
    b.config["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 50}});
    let id = h.new_id();
    h.run_with(&id, &b, &["-d"]).assert_ok();
    let o = h.cmd(&["events", "--stats", &id]);
    o.assert_ok();
    assert_eq!(o.stdout.lines().count(), 1, "one line: {o:#?}");
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["type"], "stats");
    assert_eq!(v["id"], id.as_str());
    let d = &v["data"];
    assert_eq!(d["memory"]["usage"]["limit"], 67108864);
    assert!(d["memory"]["usage"]["usage"].as_u64().unwrap() > 0, "{d}");
    assert_eq!(d["pids"]["current"], 1);
    assert_eq!(d["pids"]["limit"], 50);
    assert!(d["cpu"]["usage"]["total"].as_u64().unwrap() > 0, "{d}");
    assert!(!d["cpuset"]["cpus"].as_array().unwrap().is_empty());
    for key in ["blkio", "hugetlb", "intel_rdt"] {
        assert!(d[key].is_object(), "{key} missing: {d}");
    }
    assert!(d["network_interfaces"].is_null());

    h.kill(&id, "KILL").assert_ok();
    assert!(h.wait_status(&id, "stopped", Duration::from_secs(10)));
    let o = h.cmd(&["events", "--stats", &id]);
    o.assert_err();
    assert!(o.stderr.contains("is not running"), "{o:#?}");
}

#[test]
fn streaming_reports_oom_kill() {
    require_root!();
    let h = Hako::new();
    // `tail` starts only once `events` streams: a fixed delay lost that race in the emulated v2
    // VM under load.
    let c = OomContainer::start(&h);
    let mut ev = EventStream::spawn(&h, &c.id, "200ms");
    let streaming = wait_for(Duration::from_secs(30), || {
        ev.text().contains("{\"type\":\"stats\"")
    });
    assert!(streaming, "events printed no stats: {}", ev.text());
    c.go();
    let saw_oom = ev.wait_for_oom(&c.id, Duration::from_secs(20));
    ev.stop();
    let text = ev.text();
    assert!(saw_oom, "no oom event: {text}");
    // Stats lines kept coming meanwhile, and every line is the runc envelope.
    assert!(
        text.lines().any(|l| l.starts_with("{\"type\":\"stats\"")),
        "{text}"
    );
    // The container lives on (its shell survived the OOM kill of `tail`).
    assert_eq!(h.status(&c.id), "running");
}

/// The kernel wakes `events` for an OOM, as runc's notifiers do (an eventfd registered on
/// memory.oom_control on v1 and the hybrid, inotify on memory.events on v2): with an interval
/// of an hour nothing else wakes it, yet the OOM line comes, and the stream ends with the init.
#[test]
fn oom_is_reported_by_the_kernels_notification() {
    require_root!();
    let h = Hako::new();
    let c = OomContainer::start(&h);
    let id = c.id.clone();
    let mut ev = EventStream::spawn(&h, &id, "1h");
    // Registered once the notifier fd exists (an OOM before that is no event, in runc too).
    let notifier = |pid: u32| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .any(|l| {
                let l = l.to_string_lossy();
                l.contains("[eventfd]") || l.contains("inotify")
            })
    };
    let ready = wait_for(Duration::from_secs(30), || notifier(ev.child.id()));
    if !ready {
        ev.stop();
    }
    assert!(ready, "events holds no eventfd/inotify notifier");
    c.go();
    let saw_oom = ev.wait_for_oom(&id, Duration::from_secs(30));
    // The stream ends with the init (hako; see below for runc).
    h.kill(&id, "KILL").assert_ok();
    let ended = wait_for(Duration::from_secs(30), || {
        ev.child.try_wait().ok().flatten().is_some()
    });
    ev.stop();
    let text = ev.text();
    assert!(saw_oom, "no oom event: {text}");
    if testing_runc() {
        // runc 1.1 notices the container is gone only at its next stats tick.
        eprintln!("runc: events ended with the container: {ended}");
    } else {
        assert!(ended, "events did not end with the container");
    }
    assert!(!text.contains("\"type\":\"stats\""), "{text}");
}
