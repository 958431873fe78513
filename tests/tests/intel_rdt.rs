//! `linux.intelRdt` through resctrl (runc's libcontainer/intelrdt). The writes themselves are
//! checked on a resctrl-shaped directory in hako-runtime's unit tests (src/resctrl.rs); here,
//! a real container: refused on a host without resctrl, placed in its group on one with it.

use std::fs;
use std::path::PathBuf;

use hako_tests::*;

/// Where the host mounts resctrl, if it does.
fn resctrl_root() -> Option<PathBuf> {
    read("/proc/self/mountinfo").lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.split(' ').next() == Some("resctrl"))
            .then(|| PathBuf::from(left.split(' ').nth(4).unwrap()))
    })
}

/// No resctrl here: `create` fails naming the field and saying why (not "not supported by
/// hako"), and leaves nothing behind.
#[test]
fn refused_without_resctrl_naming_the_field() {
    require_root!();
    if resctrl_root().is_some() {
        skip("this host has resctrl");
        return;
    }
    let h = Hako::new();
    for rdt in [
        json!({"l3CacheSchema": "L3:0=f"}),
        json!({"closID": "guaranteed", "enableMonitoring": true}),
    ] {
        let mut b = Bundle::sh("true");
        b.config["linux"]["intelRdt"] = rdt.clone();
        let id = h.new_id();
        let o = h.create(&id, &b);
        o.assert_err();
        assert!(o.stderr.contains("linux.intelRdt: "), "{rdt}: {o:?}");
        assert!(
            o.stderr.contains("no resctrl filesystem is mounted"),
            "{o:?}"
        );
        assert!(!o.stderr.contains("not supported"), "{o:?}");
        assert!(!h.state_dir(&id).exists());
        assert!(wait_for(std::time::Duration::from_secs(10), || {
            processes_using(b.path()).is_empty()
        }));
    }
}

/// With resctrl: the init is in a group named after the container (its `tasks` lists it, as
/// does a MON group with `enableMonitoring` where the host can monitor), and the groups go at
/// delete.
#[test]
fn placed_in_its_group_and_removed_at_delete() {
    require_root!();
    let Some(root) = resctrl_root() else {
        skip("no resctrl on this host");
        return;
    };
    let h = Hako::new();
    let mut b = Bundle::sh("sleep 100");
    let monitoring = root.join("info/L3_MON").is_dir();
    b.config["linux"]["intelRdt"] = json!({ "enableMonitoring": monitoring });
    let id = h.new_id();
    h.create(&id, &b).assert_ok();
    let pid = h.pid(&id).to_string();
    let group = root.join(&id);
    let tasks = |d: &PathBuf| fs::read_to_string(d.join("tasks")).unwrap_or_default();
    assert!(tasks(&group).lines().any(|l| l == pid), "{}", tasks(&group));
    let mon = group.join("mon_groups").join(&id);
    if monitoring {
        assert!(tasks(&mon).lines().any(|l| l == pid), "{}", tasks(&mon));
    }
    // An exec'd process joins the group too.
    let o = h.cmd(&["exec", "-d", &id, "sleep", "100"]);
    o.assert_ok();
    assert!(tasks(&group).lines().count() >= 2, "{}", tasks(&group));
    h.delete_force(&id).assert_ok();
    assert!(!group.exists(), "resctrl group left behind");
}
