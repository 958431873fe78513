//! `events --stats`: the container's resource usage in runc's `types.Stats` shape, read from
//! whichever layout holds each controller (v1 files, v2 files, or both on the hybrid).

use std::collections::BTreeMap;
use std::path::Path;

use hako_spec::state::CgroupRecord;
use serde::Serialize;

fn zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Serialize, Default, Debug)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    pub intel_rdt: serde_json::Map<String, serde_json::Value>,
    pub network_interfaces: Option<Vec<()>>,
}

#[derive(Serialize, Default, Debug)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

#[derive(Serialize, Default, Debug)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Serialize, Default, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(skip_serializing_if = "zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "zero")]
    pub throttled_periods: u64,
    #[serde(skip_serializing_if = "zero")]
    pub throttled_time: u64,
}

#[derive(Serialize, Default, Debug)]
pub struct CpuSet {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

#[derive(Serialize, Default, Debug)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Serialize, Default, Debug)]
pub struct Memory {
    #[serde(skip_serializing_if = "zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Serialize, Default, Debug)]
pub struct Pids {
    #[serde(skip_serializing_if = "zero")]
    pub current: u64,
    #[serde(skip_serializing_if = "zero")]
    pub limit: u64,
}

#[derive(Serialize, Default, Debug, Clone)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "zero")]
    pub value: u64,
}

#[derive(Serialize, Default, Debug)]
pub struct Blkio {
    #[serde(
        rename = "ioServiceBytesRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes: Vec<BlkioEntry>,
    #[serde(rename = "ioServicedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_serviced: Vec<BlkioEntry>,
}

#[derive(Serialize, Default, Debug)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

fn text(d: &Path, f: &str) -> Option<String> {
    std::fs::read_to_string(d.join(f))
        .ok()
        .map(|s| s.trim().to_string())
}

/// A number file; `max` (v2's "no limit") reads as v1's unlimited value so limits compare alike.
fn num(d: &Path, f: &str) -> u64 {
    match text(d, f).as_deref() {
        Some("max") => i64::MAX as u64 & !4095,
        Some(s) => s.parse().unwrap_or(0),
        None => 0,
    }
}

/// `key value` lines (memory.stat, cpu.stat, memory.events).
fn kv(d: &Path, f: &str) -> BTreeMap<String, u64> {
    text(d, f)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// `0-3,5` → [0, 1, 2, 3, 5].
pub fn parse_list(s: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<u16>().ok()),
        }
    }
    out
}

/// Hugepage sizes the kernel offers, as cgroup file infixes (`2MB`, `1GB`).
fn hugepage_sizes() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/sys/kernel/mm/hugepages")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let kb: u64 = e
                .file_name()
                .to_str()?
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            Some(match kb {
                k if k >= 1 << 20 => format!("{}GB", k >> 20),
                k if k >= 1 << 10 => format!("{}MB", k >> 10),
                k => format!("{k}KB"),
            })
        })
        .collect();
    v.sort();
    v
}

fn v1<'a>(rec: &'a CgroupRecord, c: &str) -> Option<&'a Path> {
    rec.v1.get(c).map(|p| p.as_path())
}

/// Reads every controller of the container's cgroups.
pub fn collect(rec: &CgroupRecord) -> Stats {
    let mut s = Stats::default();
    let unified = rec.unified.as_deref();
    if rec.layout == "v2" {
        if let Some(d) = unified {
            v2_stats(d, &mut s);
        }
        return s;
    }
    if let Some(d) = v1(rec, "cpuacct") {
        s.cpu.usage = cpu_usage_v1(d);
    }
    if let Some(d) = v1(rec, "cpu") {
        s.cpu.throttling = throttling_v1(d);
    }
    if let Some(d) = v1(rec, "cpuset") {
        s.cpuset = cpuset_v1(d);
    }
    if let Some(d) = v1(rec, "memory") {
        s.memory = memory_v1(d);
    }
    if let Some(d) = v1(rec, "pids") {
        s.pids = pids(d);
    }
    if let Some(d) = v1(rec, "blkio") {
        s.blkio = blkio_v1(d);
    }
    // Hugetlb: a v1 controller, or (on this project's hybrid hosts) only in the v2 hierarchy.
    match (v1(rec, "hugetlb"), unified) {
        (Some(d), _) => hugetlb_v1(d, &mut s),
        (None, Some(d)) => hugetlb_v2(d, &mut s),
        _ => {}
    }
    s
}

fn cpu_usage_v1(d: &Path) -> CpuUsage {
    let mut u = CpuUsage {
        total: num(d, "cpuacct.usage"),
        percpu: text(d, "cpuacct.usage_percpu")
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect(),
        ..Default::default()
    };
    // cpuacct.usage_all: "cpu user system" per CPU, in nanoseconds.
    for l in text(d, "cpuacct.usage_all")
        .unwrap_or_default()
        .lines()
        .skip(1)
    {
        let f: Vec<u64> = l
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        if f.len() == 3 {
            u.percpu_user.push(f[1]);
            u.percpu_kernel.push(f[2]);
        }
    }
    // cpuacct.stat is in USER_HZ ticks (100/s on Linux): runc reports nanoseconds.
    let st = kv(d, "cpuacct.stat");
    u.user = st.get("user").copied().unwrap_or(0) * 10_000_000;
    u.kernel = st.get("system").copied().unwrap_or(0) * 10_000_000;
    u
}

fn throttling_v1(d: &Path) -> Throttling {
    let st = kv(d, "cpu.stat");
    Throttling {
        periods: st.get("nr_periods").copied().unwrap_or(0),
        throttled_periods: st.get("nr_throttled").copied().unwrap_or(0),
        throttled_time: st.get("throttled_time").copied().unwrap_or(0),
    }
}

fn cpuset_v1(d: &Path) -> CpuSet {
    CpuSet {
        cpus: parse_list(&text(d, "cpuset.cpus").unwrap_or_default()),
        mems: parse_list(&text(d, "cpuset.mems").unwrap_or_default()),
        cpu_exclusive: num(d, "cpuset.cpu_exclusive"),
        mem_hardwall: num(d, "cpuset.mem_hardwall"),
        mem_exclusive: num(d, "cpuset.mem_exclusive"),
        memory_migrate: num(d, "cpuset.memory_migrate"),
        memory_spread_page: num(d, "cpuset.memory_spread_page"),
        memory_spread_slab: num(d, "cpuset.memory_spread_slab"),
        memory_pressure: num(d, "cpuset.memory_pressure"),
        sched_load_balance: num(d, "cpuset.sched_load_balance"),
        sched_relax_domain_level: text(d, "cpuset.sched_relax_domain_level")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    }
}

fn memory_v1(d: &Path) -> Memory {
    let raw = kv(d, "memory.stat");
    let entry = |prefix: &str| MemoryEntry {
        limit: num(d, &format!("{prefix}.limit_in_bytes")),
        usage: num(d, &format!("{prefix}.usage_in_bytes")),
        max: num(d, &format!("{prefix}.max_usage_in_bytes")),
        failcnt: num(d, &format!("{prefix}.failcnt")),
    };
    Memory {
        cache: raw.get("cache").copied().unwrap_or(0),
        usage: entry("memory"),
        swap: entry("memory.memsw"),
        kernel: entry("memory.kmem"),
        kernel_tcp: entry("memory.kmem.tcp"),
        raw,
    }
}

/// The same files in v1 and v2.
fn pids(d: &Path) -> Pids {
    Pids {
        current: num(d, "pids.current"),
        limit: match text(d, "pids.max").as_deref() {
            Some("max") | None => 0,
            Some(v) => v.parse().unwrap_or(0),
        },
    }
}

fn blkio_v1(d: &Path) -> Blkio {
    Blkio {
        io_service_bytes: blkio_v1_file(d, "blkio.throttle.io_service_bytes_recursive")
            .or_else(|| blkio_v1_file(d, "blkio.throttle.io_service_bytes"))
            .unwrap_or_default(),
        io_serviced: blkio_v1_file(d, "blkio.throttle.io_serviced_recursive")
            .or_else(|| blkio_v1_file(d, "blkio.throttle.io_serviced"))
            .unwrap_or_default(),
    }
}

fn hugetlb_v1(d: &Path, s: &mut Stats) {
    for size in hugepage_sizes() {
        s.hugetlb.insert(
            size.clone(),
            Hugetlb {
                usage: num(d, &format!("hugetlb.{size}.usage_in_bytes")),
                max: num(d, &format!("hugetlb.{size}.max_usage_in_bytes")),
                failcnt: num(d, &format!("hugetlb.{size}.failcnt")),
            },
        );
    }
}

fn blkio_v1_file(d: &Path, f: &str) -> Option<Vec<BlkioEntry>> {
    let t = text(d, f)?;
    let v: Vec<BlkioEntry> = t
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() != 3 {
                return None;
            }
            let (major, minor) = f[0].split_once(':')?;
            Some(BlkioEntry {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                op: f[1].to_string(),
                value: f[2].parse().ok()?,
            })
        })
        .collect();
    Some(v)
}

fn hugetlb_v2(d: &Path, s: &mut Stats) {
    for size in hugepage_sizes() {
        if !d.join(format!("hugetlb.{size}.current")).exists() {
            continue;
        }
        let events = kv(d, &format!("hugetlb.{size}.events"));
        s.hugetlb.insert(
            size.clone(),
            Hugetlb {
                usage: num(d, &format!("hugetlb.{size}.current")),
                max: 0,
                failcnt: events.get("max").copied().unwrap_or(0),
            },
        );
    }
}

fn v2_stats(d: &Path, s: &mut Stats) {
    let cpu = kv(d, "cpu.stat");
    let g = |k: &str| cpu.get(k).copied().unwrap_or(0);
    s.cpu.usage.total = g("usage_usec") * 1000;
    s.cpu.usage.user = g("user_usec") * 1000;
    s.cpu.usage.kernel = g("system_usec") * 1000;
    s.cpu.throttling.periods = g("nr_periods");
    s.cpu.throttling.throttled_periods = g("nr_throttled");
    s.cpu.throttling.throttled_time = g("throttled_usec") * 1000;
    s.cpuset.cpus = parse_list(&text(d, "cpuset.cpus.effective").unwrap_or_default());
    s.cpuset.mems = parse_list(&text(d, "cpuset.mems.effective").unwrap_or_default());
    let m = &mut s.memory;
    m.raw = kv(d, "memory.stat");
    m.cache = m.raw.get("file").copied().unwrap_or(0);
    let events = kv(d, "memory.events");
    m.usage = MemoryEntry {
        limit: num(d, "memory.max"),
        usage: num(d, "memory.current"),
        max: num(d, "memory.peak"),
        failcnt: events.get("max").copied().unwrap_or(0),
    };
    // runc reports swap as memory+swap, the v1 meaning.
    m.swap = MemoryEntry {
        limit: num(d, "memory.swap.max"),
        usage: num(d, "memory.swap.current") + m.usage.usage,
        max: 0,
        failcnt: 0,
    };
    s.pids = pids(d);
    s.blkio = io_stat_v2(&text(d, "io.stat").unwrap_or_default());
    hugetlb_v2(d, s);
}

/// io.stat's `MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=..` lines as v1's entries.
fn io_stat_v2(io_stat: &str) -> Blkio {
    let mut b = Blkio::default();
    for l in io_stat.lines() {
        let mut it = l.split_whitespace();
        let Some((major, minor)) = it.next().and_then(|dev| dev.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
            continue;
        };
        for kvp in it {
            let Some((k, v)) = kvp.split_once('=') else {
                continue;
            };
            let value = v.parse().unwrap_or(0);
            let e = |op: &str| BlkioEntry {
                major,
                minor,
                op: op.into(),
                value,
            };
            match k {
                "rbytes" => b.io_service_bytes.push(e("Read")),
                "wbytes" => b.io_service_bytes.push(e("Write")),
                "rios" => b.io_serviced.push(e("Read")),
                "wios" => b.io_serviced.push(e("Write")),
                _ => {}
            }
        }
    }
    b
}

/// The count of OOM kills in the container's memory cgroup (v1 memory.oom_control's `oom_kill`,
/// v2 memory.events' `oom_kill`): `events` reports an OOM whenever it grows.
pub fn oom_kills(rec: &CgroupRecord) -> u64 {
    if rec.layout == "v2" {
        return rec
            .unified
            .as_deref()
            .map(|d| kv(d, "memory.events").get("oom_kill").copied().unwrap_or(0))
            .unwrap_or(0);
    }
    rec.v1
        .get("memory")
        .map(|d| {
            kv(d, "memory.oom_control")
                .get("oom_kill")
                .copied()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_list("0-3,5"), vec![0, 1, 2, 3, 5]);
        assert_eq!(parse_list(""), Vec::<u16>::new());
        assert_eq!(parse_list("7\n"), vec![7]);
    }

    #[test]
    fn io_stat_becomes_v1_entries() {
        let b = io_stat_v2(
            "8:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\nbogus\n253:1 wbytes=512\n",
        );
        let v = serde_json::to_value(&b).unwrap();
        assert_eq!(
            v["ioServiceBytesRecursive"],
            serde_json::json!([
                {"major": 8, "op": "Read", "value": 4096},
                {"major": 8, "op": "Write"},
                {"major": 253, "minor": 1, "op": "Write", "value": 512},
            ])
        );
        assert_eq!(v["ioServicedRecursive"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn v1_cpuacct_ticks_become_nanoseconds() {
        let d = std::env::temp_dir().join(format!("hako-stats-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("cpuacct.stat"), "user 3\nsystem 2\n").unwrap();
        std::fs::write(
            d.join("cpuacct.usage_all"),
            "cpu user system\n0 10 20\n1 30 40\n",
        )
        .unwrap();
        let u = cpu_usage_v1(&d);
        let _ = std::fs::remove_dir_all(&d);
        assert_eq!((u.user, u.kernel), (30_000_000, 20_000_000));
        assert_eq!(
            (u.percpu_user, u.percpu_kernel),
            (vec![10, 30], vec![20, 40])
        );
    }

    #[test]
    fn runc_shape_of_empty_stats() {
        let v = serde_json::to_value(Stats::default()).unwrap();
        assert_eq!(v["network_interfaces"], serde_json::Value::Null);
        assert_eq!(v["blkio"], serde_json::json!({}));
        assert_eq!(v["cpu"]["throttling"], serde_json::json!({}));
        assert_eq!(
            v["memory"]["usage"],
            serde_json::json!({"limit": 0, "failcnt": 0})
        );
    }
}
