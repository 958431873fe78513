//! The one typed source for what hako reads from /proc: the `procfs` crate's parsers
//! (mountinfo, stat) behind a few functions, so no module splits those lines by hand.
//! The files are read with one `read` each plus the one that sees EOF ([`read`]: no directory
//! fd, no size query, no extra syscalls on the hot path) and handed to the crate's parsers.

use std::path::PathBuf;

use procfs::process::{MountInfo, Stat};
use procfs::{FromBufRead, FromRead, ProcessCGroup, ProcessCGroups};

use crate::error::{Context, Result};

/// One line of /proc/self/mountinfo.
pub type Mount = MountInfo;

/// A /proc file, whole: open, reads into a 16 KiB buffer (grown if it fills) until EOF, close.
/// std's `read_to_string` first asks for the size (procfs says 0) and then reads in
/// 32-byte-and-doubling steps: ten syscalls for a mountinfo that fits in one read.
pub fn read(path: impl AsRef<std::path::Path>) -> std::io::Result<String> {
    String::from_utf8(read_bytes(path)?)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// [`read`] without the UTF-8 check: /proc/PID/stat holds the process's name, any bytes.
pub fn read_bytes(path: impl AsRef<std::path::Path>) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 16 << 10];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    Ok(buf)
}

/// Every mount of this process's mount namespace, in the kernel's order.
pub fn mountinfo() -> Result<Vec<Mount>> {
    let text = read("/proc/self/mountinfo").ctx("read", "/proc/self/mountinfo")?;
    Ok(parse_mountinfo(&text))
}

/// The lines of a mountinfo text; one the parser does not understand is skipped, as the kernel
/// never writes one and a runtime must not stop on a future field.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| MountInfo::from_line(l).ok())
        .collect()
}

/// The mount point of `m` as a path: mountinfo escapes space, tab, newline and backslash as
/// \ooo, which the parser leaves as they are.
pub fn mount_point(m: &Mount) -> PathBuf {
    PathBuf::from(crate::fs::rootfs::unescape(
        &m.mount_point.to_string_lossy(),
    ))
}

/// The super options of `m` as the kernel wrote them (`name=systemd`, `cpu`), sorted: the
/// parser keeps them in a map.
pub fn super_options(m: &Mount) -> Vec<String> {
    let mut v: Vec<String> = m
        .super_options
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k.clone(),
        })
        .collect();
    v.sort();
    v
}

/// The lines of a /proc/PID/cgroup text (`3:cpu,cpuacct:/a`, `0::/b`); one the parser does not
/// understand is skipped.
pub fn parse_cgroups(text: &str) -> Vec<ProcessCGroup> {
    text.lines()
        .filter_map(|l| ProcessCGroups::from_buf_read(l.as_bytes()).ok())
        .flat_map(|c| c.0)
        .collect()
}

/// The state letter and start time (clock ticks since boot, field 22) of process `pid`. A pid
/// whose start time differs from the one recorded at create is a recycled pid.
pub fn stat(pid: i32) -> Option<(char, u64)> {
    let bytes = read_bytes(format!("/proc/{pid}/stat")).ok()?;
    let s = Stat::from_read(&bytes[..]).ok()?;
    Some((s.state, s.starttime))
}

/// Where this process's argv strings live in its memory: `[arg_start, arg_end)` (fields 48-49).
pub fn own_argv_area() -> Option<(usize, usize)> {
    let bytes = read_bytes("/proc/self/stat").ok()?;
    let s = Stat::from_read(&bytes[..]).ok()?;
    Some((s.arg_start? as usize, s.arg_end? as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_mount_point_and_super_options() {
        let m = parse_mountinfo(
            "31 30 0:27 / /a\\040b rw,relatime shared:7 - cgroup cgroup rw,cpuacct,cpu\nbad line",
        );
        assert_eq!(m.len(), 1);
        assert_eq!(mount_point(&m[0]), PathBuf::from("/a b"));
        assert_eq!(super_options(&m[0]), vec!["cpu", "cpuacct", "rw"]);
        assert_eq!(m[0].fs_type, "cgroup");
    }

    #[test]
    fn cgroup_lines() {
        let c = parse_cgroups("3:cpu,cpuacct:/a/b\n1:name=systemd:/s\n0::/u b\n");
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(c[1].controllers, vec!["name=systemd"]);
        assert!(c[2].controllers.is_empty());
        assert_eq!(c[2].pathname, "/u b");
    }
}
