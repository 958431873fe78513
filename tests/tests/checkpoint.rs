//! checkpoint and restore through CRIU (runc's checkpoint.bats, observed from inside): a counter
//! whose token lives only in the shell's memory goes on after restore, under the same or a new
//! id; `--leave-running`; a restored container checkpointed again; cgroup limits, hostname and
//! mounts the same; a terminal handed back through `--console-socket`; a foreground restore; a
//! failed checkpoint leaves the container running, a failed restore leaves nothing behind.
//!
//! CRIU comes from `HAKO_CRIU`, else the build `../shared/criu/install.sh` leaves in
//! /var/cache (`make integration-tests` runs the script first); without either the tests say so
//! and skip.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hako_tests::*;
use serde_json::json;

const CACHED_CRIU: &str = "/var/cache/criu-v4.2/criu-v4.2/criu/criu";
const WAIT: Duration = Duration::from_secs(20);

/// The token is made once and kept only in the shell's memory: a restarted container would show
/// another one, a restored one the same, with the count going on.
const COUNTER: &str = "exec </dev/null >/dev/null 2>&1; v=$(cat /proc/sys/kernel/random/uuid); \
     i=0; while :; do i=$((i+1)); echo \"$v $i\" > /out/count.tmp; mv /out/count.tmp /out/count; \
     sleep 0.1; done";

fn criu() -> Option<String> {
    if let Ok(p) = std::env::var("HAKO_CRIU") {
        assert!(
            Path::new(&p).exists(),
            "HAKO_CRIU={p} does not exist (../shared/criu/install.sh prints the path)"
        );
        return Some(p);
    }
    Path::new(CACHED_CRIU)
        .exists()
        .then(|| CACHED_CRIU.to_string())
}

/// A `Hako` passing `--criu`, or `None` (printed) when the test cannot run here.
fn setup() -> Option<Hako> {
    let h = setup_criu()?;
    // CRIU locks a dumped network namespace with iptables-restore and ip6tables-restore
    // (`make test` installs iptables for this).
    if let Some(t) = missing_lock_tool() {
        skip(&format!("CRIU's network lock needs {t} (install iptables)"));
        return None;
    }
    if let Some(why) = lock_tool_refused() {
        skip(&why);
        return None;
    }
    Some(h)
}

/// The lock tools installed but refused by this kernel (iptables-nft needs nf_tables, the legacy
/// variant ip_tables): an empty filter table applied in a throw-away network namespace.
fn lock_tool_refused() -> Option<String> {
    use std::io::Write;
    ["iptables-restore", "ip6tables-restore"]
        .into_iter()
        .find_map(|t| {
            let mut c = std::process::Command::new("unshare")
                .args(["--net", t])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .ok()?;
            let _ = c.stdin.take()?.write_all(b"*filter\nCOMMIT\n");
            let o = c.wait_with_output().ok()?;
            (!o.status.success()).then(|| {
                format!(
                    "{t} does not work in a new network namespace (no nf_tables/ip_tables \
                     in this kernel?): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                )
            })
        })
}

/// `setup` without the network lock's tools.
fn setup_criu() -> Option<Hako> {
    if !is_root() {
        skip("checkpoint/restore needs root");
        return None;
    }
    let Some(c) = criu() else {
        skip("no CRIU (run ../shared/criu/install.sh, or set HAKO_CRIU)");
        return None;
    };
    let mut h = Hako::new();
    h.global = vec!["--criu".into(), c];
    Some(h)
}

fn missing_lock_tool() -> Option<&'static str> {
    ["iptables-restore", "ip6tables-restore"]
        .into_iter()
        .find(|t| in_path(t).is_none())
}

fn counter_bundle() -> (Bundle, PathBuf) {
    let mut b = Bundle::sh(COUNTER);
    let out = b.out_dir();
    (b, out)
}

/// `(token, count)` the container last wrote.
fn count(out: &Path) -> Option<(String, u64)> {
    let t = fs::read_to_string(out.join("count")).ok()?;
    let (v, i) = t.trim().split_once(' ')?;
    Some((v.to_string(), i.parse().ok()?))
}

/// Waits until the counter shows `token` (any, when None) with a count above `above`.
#[track_caller]
fn wait_count(out: &Path, token: Option<&str>, above: u64) -> (String, u64) {
    let mut last = None;
    let ok = wait_for(WAIT, || {
        last = count(out);
        matches!(&last, Some((v, i)) if token.is_none_or(|t| t == v) && *i > above)
    });
    assert!(
        ok,
        "counter never showed token {token:?} above {above}: last {last:?}"
    );
    last.unwrap()
}

fn start_counter(h: &Hako, b: &Bundle, out: &Path) -> (String, (String, u64)) {
    let id = h.new_id();
    h.run_with(&id, b, &["-d"]).assert_ok();
    let c = wait_count(out, None, 2);
    (id, c)
}

fn image(h: &Hako, name: &str) -> PathBuf {
    h.scratch().join(name)
}

#[track_caller]
fn checkpoint(h: &Hako, id: &str, img: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["checkpoint", "--image-path", img.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push(id);
    h.cmd(&args)
}

#[track_caller]
fn restore(h: &Hako, id: &str, b: &Bundle, img: &Path, extra: &[&str]) -> Output {
    h.track(id);
    let mut args = vec![
        "restore",
        "-d",
        "--bundle",
        b.path().to_str().unwrap(),
        "--image-path",
        img.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.push(id);
    h.cmd(&args)
}

fn gone(h: &Hako, id: &str) -> bool {
    let out = h.cmd(&["state", id]);
    !out.ok() && out.stderr.contains("does not exist")
}

#[test]
fn restore_same_id_memory_survives() {
    let Some(h) = setup() else { return };
    let (b, out) = counter_bundle();
    let (id, _) = start_counter(&h, &b, &out);
    let old = h.pid(&id);
    let img = image(&h, "img");
    checkpoint(&h, &id, &img, &[]).assert_ok();
    // Without --leave-running the container is gone, as with runc.
    assert!(gone(&h, &id), "checkpointed container still recorded");
    assert!(wait_for(WAIT, || !pid_alive(old)), "init {old} survived");
    let (token, n) = count(&out).expect("a count before the dump");
    assert!(img.join("descriptors.json").exists());

    restore(&h, &id, &b, &img, &[]).assert_ok();
    let st = h.state(&id);
    assert_eq!(st["status"], "running", "{st}");
    let pid = st["pid"].as_i64().unwrap() as i32;
    assert!(pid_alive(pid));
    assert_eq!(
        read(format!("/proc/{pid}/cmdline"))
            .replace('\0', " ")
            .trim(),
        format!("sh -c {COUNTER}")
    );
    // Same token (memory came back), count goes on from the dump.
    wait_count(&out, Some(&token), n);
    // Nothing of the restore's scaffolding stays mounted.
    assert!(
        mounts_under(h.root()).is_empty(),
        "{:?}",
        mounts_under(h.root())
    );
    h.delete_force(&id).assert_ok();
    assert!(wait_for(WAIT, || !pid_alive(pid)));
}

#[test]
fn leave_running_then_restore_as_new_id() {
    let Some(h) = setup() else { return };
    let (b, out) = counter_bundle();
    let (id, _) = start_counter(&h, &b, &out);
    let pid = h.pid(&id);
    let img = image(&h, "img");
    checkpoint(&h, &id, &img, &["--leave-running"]).assert_ok();
    // Still running, the same process, still counting.
    assert_eq!(h.status(&id), "running");
    assert_eq!(h.pid(&id), pid);
    let (token, n) = count(&out).unwrap();
    wait_count(&out, Some(&token), n + 2);
    h.delete_force(&id).assert_ok();
    assert!(wait_for(WAIT, || !pid_alive(pid)));
    let (_, n) = count(&out).unwrap();

    let id2 = h.new_id();
    restore(&h, &id2, &b, &img, &[]).assert_ok();
    assert_eq!(h.status(&id2), "running");
    assert!(gone(&h, &id));
    // The image is from the --leave-running dump: the same token, counting on from the dump
    // (which was before the last value the first container wrote).
    let (_, m) = wait_count(&out, Some(&token), 0);
    assert!(
        m <= n + 50,
        "count {m} after the restore; the dump was before {n}"
    );
    wait_count(&out, Some(&token), m + 1);
}

#[test]
fn restored_container_checkpoints_again() {
    let Some(h) = setup() else { return };
    let (b, out) = counter_bundle();
    let (id, _) = start_counter(&h, &b, &out);
    let img = image(&h, "img1");
    checkpoint(&h, &id, &img, &[]).assert_ok();
    let (token, n) = count(&out).unwrap();
    let id2 = h.new_id();
    restore(&h, &id2, &b, &img, &[]).assert_ok();
    let (_, n) = wait_count(&out, Some(&token), n + 1);

    let img2 = image(&h, "img2");
    checkpoint(&h, &id2, &img2, &[]).assert_ok();
    assert!(gone(&h, &id2));
    let (_, m) = count(&out).unwrap();
    assert!(m >= n);
    let id3 = h.new_id();
    restore(&h, &id3, &b, &img2, &[]).assert_ok();
    wait_count(&out, Some(&token), m);
}

/// Mount points of the container, as its processes see them.
fn mount_points(h: &Hako, id: &str) -> Vec<String> {
    let out = h.cmd(&["exec", id, "cat", "/proc/self/mountinfo"]);
    out.assert_ok();
    let mut v: Vec<String> = out
        .stdout
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .collect();
    v.sort();
    v
}

fn exec_out(h: &Hako, id: &str, script: &str) -> String {
    let out = h.cmd(&["exec", id, "sh", "-c", script]);
    format!("{}{}", out.stdout.trim(), out.stderr.trim())
}

const LIMITS: &str = "if [ -e /sys/fs/cgroup/memory.max ]; then \
     cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; else \
     cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; fi";

#[test]
fn limits_hostname_and_mounts_survive() {
    let Some(h) = setup() else { return };
    let (mut b, out) = counter_bundle();
    b.config["hostname"] = json!("ckpt-host");
    b.config["linux"]["resources"]["memory"] = json!({"limit": 67108864});
    b.config["linux"]["resources"]["pids"] = json!({"limit": 64});
    let (id, _) = start_counter(&h, &b, &out);
    let mounts = mount_points(&h, &id);
    assert_eq!(exec_out(&h, &id, LIMITS), "67108864\n64");
    let img = image(&h, "img");
    checkpoint(&h, &id, &img, &[]).assert_ok();
    let (token, n) = count(&out).unwrap();

    let id2 = h.new_id();
    restore(&h, &id2, &b, &img, &[]).assert_ok();
    wait_count(&out, Some(&token), n);
    assert_eq!(exec_out(&h, &id2, "hostname"), "ckpt-host");
    assert_eq!(mount_points(&h, &id2), mounts);
    // The limits are the new cgroups', seen from inside (the cgroup binds follow them)...
    let limits = exec_out(&h, &id2, LIMITS);
    if testing_runc() && limits != "67108864\n64" {
        // runc 1.1.5 restores the v1 cgroup binds of this bundle (from the image) pointing
        // at other directories.
        eprintln!("runc: limits seen after restore: {limits:?}");
    } else {
        assert_eq!(limits, "67108864\n64");
    }
    // ...and the restored init is in cgroups named for the new id.
    let pid = h.pid(&id2);
    let cg = read(format!("/proc/{pid}/cgroup"));
    assert!(
        cg.lines().all(|l| l.ends_with(&format!("/{id2}"))),
        "restored init not in {id2}'s cgroups:\n{cg}"
    );
}

/// Bind mounts nested below another bind mount, and one whose destination is a symlink inside
/// the rootfs, come back at their places (runc 1.3's checkpoint.bats "with nested bind mounts";
/// CRIU failed with "Can't stat mountpoint .../for/nested" and "doesn't have a proper root
/// mount").
#[test]
fn nested_and_symlinked_bind_mounts_survive() {
    let Some(h) = setup() else { return };
    let (mut b, out) = counter_bundle();
    let host = TempDir::new("ckpt-binds");
    // As checkpoint.bats has it: the nested destination is two levels below the outer bind's
    // source, which has neither (create makes them in the source).
    for d in ["outer", "inner", "linked"] {
        fs::create_dir_all(host.path().join(d)).unwrap();
    }
    fs::write(host.path().join("inner/mark"), "inner\n").unwrap();
    fs::write(host.path().join("linked/mark"), "linked\n").unwrap();
    fs::create_dir_all(b.rootfs().join("real")).unwrap();
    std::os::unix::fs::symlink("/real", b.rootfs().join("link")).unwrap();
    let bind = |src: &str, dst: &str| {
        json!({"source": host.path().join(src), "destination": dst, "type": "bind",
               "options": ["rbind", "rw"]})
    };
    for m in [
        bind("outer", "/test"),
        bind("inner", "/test/for/nested"),
        bind("linked", "/link"),
    ] {
        b.config["mounts"].as_array_mut().unwrap().push(m);
    }
    let (id, _) = start_counter(&h, &b, &out);
    let script = "cat /test/for/nested/mark /real/mark";
    assert_eq!(exec_out(&h, &id, script), "inner\nlinked");
    let mounts = mount_points(&h, &id);
    let img = image(&h, "img");
    checkpoint(&h, &id, &img, &[]).assert_ok();
    let (token, n) = count(&out).unwrap();
    let id2 = h.new_id();
    restore(&h, &id2, &b, &img, &[]).assert_ok();
    wait_count(&out, Some(&token), n);
    assert_eq!(exec_out(&h, &id2, script), "inner\nlinked");
    assert_eq!(mount_points(&h, &id2), mounts);
}

/// Reads the pty until `needle` shows up.
fn read_until(master: &OwnedFd, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    let mut seen = String::new();
    while Instant::now() < deadline && !seen.contains(needle) {
        seen.push_str(&read_pty(master, Duration::from_millis(200)));
    }
    seen
}

fn type_line(master: &OwnedFd, line: &str) {
    nix::unistd::write(master, format!("{line}\n").as_bytes()).expect("write to pty");
}

#[test]
fn tty_container_through_console_socket() {
    let Some(h) = setup() else { return };
    let mut b = Bundle::sh(
        "v=$(cat /proc/sys/kernel/random/uuid); echo ready; \
         while read l; do echo \"got $v $l\"; done",
    );
    b.config["process"]["terminal"] = json!(true);
    let id = h.new_id();
    let sock = ConsoleSocket::listen(h.scratch());
    h.run_with(
        &id,
        &b,
        &["-d", "--console-socket", sock.path.to_str().unwrap()],
    )
    .assert_ok();
    let (_, mut fds) = sock.recv().expect("console master");
    let master = fds.remove(0);
    assert!(read_until(&master, "ready").contains("ready"));
    type_line(&master, "one");
    let seen = read_until(&master, " one");
    let token = seen
        .lines()
        .find_map(|l| l.strip_prefix("got ")?.strip_suffix(" one"))
        .unwrap_or_else(|| panic!("no answer on the tty: {seen:?}"))
        .to_string();

    let img = image(&h, "img");
    checkpoint(&h, &id, &img, &[]).assert_ok();
    drop(master);
    let id2 = h.new_id();
    let sock2 = ConsoleSocket::listen(h.scratch());
    restore(
        &h,
        &id2,
        &b,
        &img,
        &["--console-socket", sock2.path.to_str().unwrap()],
    )
    .assert_ok();
    let (_, mut fds) = sock2.recv().expect("restored console master");
    let master = fds.remove(0);
    type_line(&master, "two");
    let seen = read_until(&master, &format!("got {token} two"));
    assert!(
        seen.contains(&format!("got {token} two")),
        "restored tty answered {seen:?}"
    );
}

#[test]
fn foreground_restore_waits_and_cleans_up() {
    let Some(h) = setup() else { return };
    let (b, out) = counter_bundle();
    let (id, _) = start_counter(&h, &b, &out);
    let img = image(&h, "img");
    checkpoint(&h, &id, &img, &[]).assert_ok();
    let (token, n) = count(&out).unwrap();
    // Not through `h.cmd`, which waits: this restore stays until the container exits.
    let mut child = std::process::Command::new(hako_bin())
        .args(&h.global)
        .arg("--root")
        .arg(h.root())
        .args(["restore", "--bundle"])
        .arg(b.path())
        .arg("--image-path")
        .arg(&img)
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    h.track(&id);
    wait_count(&out, Some(&token), n);
    assert_eq!(h.status(&id), "running");
    h.kill(&id, "KILL").assert_ok();
    let mut status = None;
    assert!(wait_for(WAIT, || {
        status = child.try_wait().unwrap();
        status.is_some()
    }));
    let st = status.unwrap();
    assert_eq!(st.code(), Some(137), "{st:?}");
    // As `run`: the container is deleted once its init is gone.
    assert!(gone(&h, &id));
}

#[test]
fn checkpoint_of_created_container_is_refused() {
    let Some(h) = setup() else { return };
    let (b, _out) = counter_bundle();
    let id = h.new_id();
    h.create(&id, &b).assert_ok();
    let img = image(&h, "img");
    let out = checkpoint(&h, &id, &img, &[]);
    out.assert_err();
    assert!(
        out.stderr
            .contains("Container cannot be checkpointed in created state"),
        "{}",
        out.stderr
    );
    assert_eq!(h.status(&id), "created");
}

#[test]
fn failed_checkpoint_leaves_container_running() {
    let Some(h) = setup() else { return };
    let (b, out) = counter_bundle();
    let id = h.new_id();
    // An fd on a host file the container cannot see: CRIU refuses to dump it.
    let f = fs::File::create(h.scratch().join("held")).unwrap();
    let args: Vec<String> = [
        "run",
        "-d",
        "--preserve-fds",
        "1",
        "--bundle",
        b.path().to_str().unwrap(),
        &id,
    ]
    .map(String::from)
    .to_vec();
    b.save();
    h.cmd_opts(
        &args,
        CmdOpts {
            fds: vec![(OwnedFd::from(f), 3)],
            ..Default::default()
        },
    )
    .assert_ok();
    let pid = h.pid(&id);
    wait_count(&out, None, 2);
    let img = image(&h, "img");
    let r = checkpoint(&h, &id, &img, &[]);
    r.assert_err();
    assert!(r.stderr.contains("criu failed"), "{}", r.stderr);
    assert_eq!(h.status(&id), "running");
    assert_eq!(h.pid(&id), pid);
    let (token, n) = count(&out).unwrap();
    wait_count(&out, Some(&token), n + 2);
}

/// Without iptables CRIU fails half-way through a dump with only `execvp("ip6tables-restore")`
/// in its log: hako names the missing tool before CRIU starts, and the container runs on.
#[test]
fn checkpoint_without_iptables_names_the_tool() {
    let Some(h) = setup_criu() else { return };
    let (b, out) = counter_bundle();
    let (id, _) = start_counter(&h, &b, &out);
    let img = image(&h, "img");
    // A PATH of one empty directory: hako and CRIU are named by absolute paths.
    let empty = TempDir::new("empty-path");
    let r = h.cmd_opts(
        &["checkpoint", "--image-path", img.to_str().unwrap(), &id],
        CmdOpts {
            env: vec![("PATH".into(), Some(empty.path().display().to_string()))],
            ..Default::default()
        },
    );
    r.assert_err();
    if testing_runc() {
        assert!(r.stderr.contains("criu failed"), "{}", r.stderr);
    } else {
        assert!(
            r.stderr.contains("iptables-restore") && r.stderr.contains("install iptables"),
            "{}",
            r.stderr
        );
        assert!(!img.join("inventory.img").exists(), "dumped anyway");
    }
    assert_eq!(h.status(&id), "running");
    let (token, n) = count(&out).unwrap();
    wait_count(&out, Some(&token), n + 2);
}

/// `--link-remap` (runc 1.2+) reaches CRIU, and a file the container holds open after unlinking
/// it survives checkpoint and restore behind the same descriptor.
#[test]
fn link_remap_keeps_an_unlinked_open_file() {
    let Some(h) = setup() else { return };
    let mut b = Bundle::new();
    b.config["root"]["readonly"] = json!(false);
    b.set_sh(
        "exec </dev/null >/dev/null 2>&1; echo kept > /held; exec 3</held; rm /held; \
         exec sleep 1000",
    );
    let id = h.new_id();
    h.run_with(&id, &b, &["-d"]).assert_ok();
    assert!(wait_for(WAIT, || !b.rootfs().join("held").exists()));
    let img = image(&h, "img");
    checkpoint(&h, &id, &img, &["--link-remap"]).assert_ok();
    let log = read(img.join("dump.log"));
    if !testing_runc() {
        // CRIU's own line for the option (a file with no link left is still a ghost file in
        // the image; link remap is for one whose name moved).
        assert!(log.contains("Will allow link remaps"), "option not passed");
    }
    let id2 = h.new_id();
    restore(&h, &id2, &b, &img, &[]).assert_ok();
    assert_eq!(exec_out(&h, &id2, "cat /proc/1/fd/3"), "kept");
    // Nothing CRIU made to restore it stays in the rootfs.
    assert!(!b.rootfs().join("held").exists());
    let left: Vec<_> = fs::read_dir(b.rootfs())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("link_remap"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Directories named `name` under the host's cgroup hierarchies (test ids are unique).
fn cgroup_dirs_named(name: &str) -> Vec<PathBuf> {
    fn walk(d: &Path, name: &str, out: &mut Vec<PathBuf>, depth: u32) {
        let Ok(rd) = fs::read_dir(d) else { return };
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                let p = e.path();
                if e.file_name() == name {
                    out.push(p.clone());
                }
                if depth < 6 {
                    walk(&p, name, out, depth + 1);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), name, &mut out, 0);
    out
}

#[test]
fn failed_restore_leaves_nothing_behind() {
    let Some(h) = setup() else { return };
    let (b, out) = counter_bundle();
    let (id, _) = start_counter(&h, &b, &out);
    let img = image(&h, "img");
    checkpoint(&h, &id, &img, &[]).assert_ok();
    // Memory pages missing: CRIU fails late, after it made the processes.
    let mut removed = 0;
    for e in fs::read_dir(&img).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with("pages-") {
            fs::remove_file(e.path()).unwrap();
            removed += 1;
        }
    }
    assert!(removed > 0, "no pages-*.img in the image");
    let id2 = h.new_id();
    let r = restore(&h, &id2, &b, &img, &[]);
    r.assert_err();
    assert!(r.stderr.contains("criu failed"), "{}", r.stderr);
    assert!(gone(&h, &id2));
    assert!(!h.state_dir(&id2).exists());
    assert!(
        mounts_under(h.root()).is_empty(),
        "{:?}",
        mounts_under(h.root())
    );
    assert!(
        cgroup_dirs_named(&id2).is_empty(),
        "{:?}",
        cgroup_dirs_named(&id2)
    );
    assert!(
        wait_for(WAIT, || processes_using(b.path()).is_empty()),
        "{:?}",
        processes_using(b.path())
    );

    // And a missing image directory is named.
    let r = restore(&h, &id2, &b, &h.scratch().join("nowhere"), &[]);
    r.assert_err();
    assert!(r.stderr.contains("nowhere"), "{}", r.stderr);
    assert!(!h.state_dir(&id2).exists());
}

#[test]
fn pre_dump_needs_soft_dirty() {
    let Some(h) = setup() else { return };
    let (b, out) = counter_bundle();
    let (id, _) = start_counter(&h, &b, &out);
    let tracks = std::process::Command::new(criu().unwrap())
        .args(["check", "--feature", "mem_dirty_track"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let img = image(&h, "pre");
    let r = checkpoint(&h, &id, &img, &["--pre-dump"]);
    if tracks {
        r.assert_ok();
    } else {
        // The refusal is checked instead.
        skip_part(
            "pre-dump",
            "CRIU finds no soft-dirty tracking (CONFIG_MEM_SOFT_DIRTY off): a pre-dump cannot work",
        );
        r.assert_err();
        // runc 1.1.5 does not name the feature.
        assert!(
            r.stderr.contains("MemTrack") || testing_runc(),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr.contains("CRIU is missing features"),
            "{}",
            r.stderr
        );
    }
    // Either way the container runs on.
    assert_eq!(h.status(&id), "running");
    let (token, n) = count(&out).unwrap();
    wait_count(&out, Some(&token), n + 1);
}

/// The host's `/dev/null` as stdin (what the harness passes) becomes the container's own: an fd
/// on a mount outside the container is one CRIU cannot dump (runc's reOpenDevNull).
#[test]
fn host_dev_null_stdio_is_reopened_inside() {
    require_root!();
    let h = Hako::new();
    let b = Bundle::sh("sleep 1000");
    let id = h.new_id();
    h.run_with(&id, &b, &["-d"]).assert_ok();
    let pid = h.pid(&id);
    let mnt_id = |fd: u32| -> String {
        read(format!("/proc/{pid}/fdinfo/{fd}"))
            .lines()
            .find_map(|l| l.strip_prefix("mnt_id:").map(|v| v.trim().to_string()))
            .expect("mnt_id in fdinfo")
    };
    let inside: Vec<String> = read(format!("/proc/{pid}/mountinfo"))
        .lines()
        .filter_map(|l| l.split(' ').next().map(str::to_string))
        .collect();
    let fd0 = mnt_id(0);
    assert!(
        inside.contains(&fd0),
        "stdin is on mount {fd0}, not one of the container's: {inside:?}"
    );
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/fd/0")).unwrap(),
        PathBuf::from("/dev/null")
    );
    // stdout is the harness's file: left alone.
    assert!(!inside.contains(&mnt_id(1)) || testing_runc());
}

/// A network namespace given by path is dumped as external (runc's `extRootNetNS`) and the
/// restored container is put back into that same namespace, not into a new empty one.
#[test]
fn network_namespace_by_path_is_rejoined() {
    let Some(h) = setup() else { return };
    // The namespace's owner: another container that stays up.
    let holder = h.new_id();
    // Kept until the end: `run -d` returns before the process has exec'd sleep from this
    // rootfs (a temporary bundle, removed at once, made it fail now and then in the VM).
    let holder_bundle = Bundle::sh("exec sleep 1000");
    h.run_with(&holder, &holder_bundle, &["-d"]).assert_ok();
    let ns = format!("/proc/{}/ns/net", h.pid(&holder));
    let want = fs::read_link(&ns).unwrap();
    let (mut b, out) = counter_bundle();
    for n in b.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if n["type"] == "network" {
            n["path"] = json!(ns);
        }
    }
    let (id, _) = start_counter(&h, &b, &out);
    assert_eq!(
        fs::read_link(format!("/proc/{}/ns/net", h.pid(&id))).unwrap(),
        want
    );
    let img = image(&h, "img");
    checkpoint(&h, &id, &img, &[]).assert_ok();
    let (token, n) = count(&out).unwrap();
    let id2 = h.new_id();
    restore(&h, &id2, &b, &img, &[]).assert_ok();
    wait_count(&out, Some(&token), n);
    assert_eq!(
        fs::read_link(format!("/proc/{}/ns/net", h.pid(&id2))).unwrap(),
        want,
        "the restored init is not in the namespace given by path"
    );
}

/// Restore runs the prestart and createRuntime hooks (runc, at CRIU's setup-namespaces), with
/// the restored init's pid in the state they read.
#[test]
fn restore_runs_prestart_and_create_runtime_hooks() {
    let Some(h) = setup() else { return };
    let (mut b, out) = counter_bundle();
    let log = h.scratch().join("hooks.log");
    let hook = |kind: &str| {
        json!([{
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("echo \"{kind} $(cat)\" >> {}", log.display())]
        }])
    };
    b.config["hooks"] = json!({
        "prestart": hook("prestart"),
        "createRuntime": hook("createRuntime"),
    });
    let (id, _) = start_counter(&h, &b, &out);
    let img = image(&h, "img");
    checkpoint(&h, &id, &img, &[]).assert_ok();
    fs::remove_file(&log).unwrap();
    let id2 = h.new_id();
    restore(&h, &id2, &b, &img, &[]).assert_ok();
    let pid = h.pid(&id2);
    let text = read(&log);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for (line, kind) in lines.iter().zip(["prestart", "createRuntime"]) {
        let (k, state) = line.split_once(' ').unwrap();
        assert_eq!(k, kind, "{text}");
        let v: serde_json::Value = serde_json::from_str(state).unwrap();
        assert_eq!(v["id"], id2.as_str(), "{state}");
        assert_eq!(v["pid"], pid, "{state}");
    }
}

/// `hako ARGS` as this test's `Hako` would run it, for a command run under another program.
fn hako_argv(h: &Hako, args: &[&str]) -> Vec<String> {
    let mut v = vec![
        hako_bin().to_string_lossy().into_owned(),
        "--root".into(),
        h.root().to_string_lossy().into_owned(),
    ];
    v.extend(h.global.iter().cloned());
    v.extend(args.iter().map(|s| s.to_string()));
    v
}

/// The `/tmp/.criu.mntns.*` directories a CRIU log names (its mount-namespace yard).
fn mntns_yards(log: &str) -> Vec<String> {
    let mut out: Vec<String> = log
        .split(|c: char| c.is_whitespace() || c == ':')
        .filter_map(|w| w.find("/tmp/.criu.mntns.").map(|i| &w[i..]))
        .map(|w| w.split('/').take(3).collect::<Vec<_>>().join("/"))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A restore that fails in CRIU's mount stage (a bind source gone since the checkpoint), run
/// where the runtime's mounts are shared, as `/` is on every systemd host: CRIU's restored root
/// task mounts its yard, a tmpfs on `/tmp/.criu.mntns.*`, in a namespace cloned from CRIU's,
/// and the mount propagated back. CRIU unmounts it only in the restored namespace, which a
/// failure this early never opened, so the tmpfs stayed in the runtime's namespace (and the
/// directory in /tmp). hako runs CRIU's restore in a mount namespace of its own.
/// The command line of `restore -d` of `img` as `id`, for tests that run it themselves.
fn detached_restore_argv(h: &Hako, b: &Bundle, img: &Path, id: &str) -> Vec<String> {
    let (bundle, img) = (b.path().to_str().unwrap(), img.to_str().unwrap());
    hako_argv(
        h,
        &["restore", "-d", "--bundle", bundle, "--image-path", img, id],
    )
}

#[test]
fn failed_restore_on_shared_mounts_leaves_no_criu_tmpfs() {
    let Some(h) = setup() else { return };
    if in_path("unshare").is_none() {
        skip("no unshare(1) (util-linux) to make the runtime's mounts shared");
        return;
    }
    let (b, out) = counter_bundle();
    let (id, _) = start_counter(&h, &b, &out);
    let img = image(&h, "img");
    checkpoint(&h, &id, &img, &[]).assert_ok();
    let moved = b.path().join("out.gone");
    fs::rename(&out, &moved).unwrap();
    let id2 = h.new_id();
    h.track(&id2);
    let argv = detached_restore_argv(&h, &b, &img, &id2);
    // The restore, then what is mounted from CRIU's yard in its (the runtime's) namespace.
    let script = r#""$@"; rc=$?; grep -F /.criu.mntns. /proc/self/mountinfo >&2; exit $rc"#;
    let stdout = fs::File::create(h.scratch().join("unshare.out")).unwrap();
    let stderr = fs::File::create(h.scratch().join("unshare.err")).unwrap();
    let status = std::process::Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "shared",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .args(&argv)
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .status()
        .unwrap();
    fs::rename(&moved, &out).unwrap();
    let err = read(h.scratch().join("unshare.err"));
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("criu failed"), "{err}");
    assert!(
        !err.contains("/.criu.mntns."),
        "CRIU's yard stayed mounted in the runtime's namespace: {err}"
    );
    let yards = mntns_yards(&read(img.join("restore.log")));
    assert!(!yards.is_empty(), "restore.log names no mount yard");
    for y in yards {
        assert!(!Path::new(&y).exists(), "{y} stayed");
    }
    assert!(!h.state_dir(&id2).exists());
}

/// A restore killed while CRIU runs (here: during its prestart hook) leaves the rootfs bound at
/// `<root>/<id>/criu-root`; `delete --force` then detaches it and removes only the state
/// directory. A recursive removal went through the mount and emptied the bundle's rootfs.
#[test]
fn killed_restore_then_delete_keeps_the_rootfs() {
    let Some(h) = setup() else { return };
    let (mut b, out) = counter_bundle();
    let (id, _) = start_counter(&h, &b, &out);
    let img = image(&h, "img");
    checkpoint(&h, &id, &img, &[]).assert_ok();
    let entered = h.scratch().join("hook.entered");
    let release = h.scratch().join("hook.release");
    b.config["hooks"] = json!({ "prestart": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", format!(
            "touch {0}; while [ ! -e {1} ]; do sleep 0.1; done; rm {0}",
            entered.display(), release.display()
        )]
    }]});
    b.save();
    let id2 = h.new_id();
    h.track(&id2);
    let argv = detached_restore_argv(&h, &b, &img, &id2);
    let mut child = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .stdout(fs::File::create(h.scratch().join("restore.out")).unwrap())
        .stderr(fs::File::create(h.scratch().join("restore.err")).unwrap())
        .spawn()
        .unwrap();
    let hooked = wait_for(WAIT, || entered.exists());
    child.kill().unwrap();
    child.wait().unwrap();
    fs::write(&release, "").unwrap();
    assert!(hooked, "{}", read(h.scratch().join("restore.err")));
    // The hook outlived the killed runtime: gone before the scratch directory (and `release`
    // with it) is removed, or it would wait forever.
    assert!(wait_for(WAIT, || !entered.exists()), "the hook did not end");
    // What the killed runtime left: its bind of the rootfs for CRIU.
    assert!(
        !mounts_under(&h.state_dir(&id2)).is_empty(),
        "nothing mounted under {}",
        h.state_dir(&id2).display()
    );
    h.delete_force(&id2).assert_ok();
    assert!(
        b.rootfs().join("bin/busybox").exists(),
        "the bundle's rootfs was emptied"
    );
    assert!(
        mounts_under(h.root()).is_empty(),
        "{:?}",
        mounts_under(h.root())
    );
    assert!(!h.state_dir(&id2).exists());
    // The record written before CRIU ran lists the cgroups the restore may make: delete
    // removed them (hako before: nothing told delete about them).
    assert_eq!(cgroup_dirs_named(&id2), Vec::<PathBuf>::new());
}
