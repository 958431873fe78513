//! cgroups: the host layout (v1, v2 or the v1 hybrid, read from mountinfo), where a container's
//! cgroups go (runc's `cgroupsPath` rules), and one driver per layout for limits ([`v1`], [`v2`]).
//! Only directories hako created are ever removed.

pub mod bpf;
pub mod dbus;
pub mod emulator;
pub mod exec_cgroup;
pub mod manager;
pub mod oom;
pub mod placement;
pub mod rootless;
#[cfg(test)]
mod scratch;
pub mod stats;
pub mod systemd;
pub mod v1;
pub mod v2;

use std::path::PathBuf;

use crate::procinfo::{self, Mount};

pub use manager::Cgroups;

/// The cpuset files `linux.resources.cpu` sets, with their values and fields (same names on v1
/// and v2); an empty list is "not set", as in runc.
pub fn cpuset_lists(
    c: &hako_spec::oci::LinuxCpu,
) -> impl Iterator<Item = (&str, &'static str, &'static str)> {
    [
        (c.cpus(), "cpuset.cpus", "linux.resources.cpu.cpus"),
        (c.mems(), "cpuset.mems", "linux.resources.cpu.mems"),
    ]
    .into_iter()
    .filter_map(|(v, file, field)| Some((v.as_deref().filter(|v| !v.is_empty())?, file, field)))
}

/// One `rdma.max` line (same format on v1 and v2): `mlx4_0 hca_handle=2 hca_object=2000`.
pub fn rdma_line(dev: &str, limit: &hako_spec::oci::LinuxRdma) -> String {
    let mut v = dev.to_string();
    if let Some(h) = limit.hca_handles() {
        v.push_str(&format!(" hca_handle={h}"));
    }
    if let Some(o) = limit.hca_objects() {
        v.push_str(&format!(" hca_object={o}"));
    }
    v
}

/// One mounted cgroup hierarchy of the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Hierarchy {
    pub mountpoint: PathBuf,
    /// v1 controllers from the super options (`["cpu"]`, `["name=systemd"]`); empty for cgroup2.
    pub controllers: Vec<String>,
    pub v2: bool,
}

/// This process's cgroup path in `h`, from /proc/self/cgroup.
pub fn own_path(h: &Hierarchy, proc_cgroup: &str) -> PathBuf {
    for c in crate::procinfo::parse_cgroups(proc_cgroup) {
        let matches = if h.v2 {
            c.controllers.is_empty()
        } else {
            let mut a: Vec<_> = c.controllers.iter().map(String::as_str).collect();
            let mut b: Vec<_> = h.controllers.iter().map(String::as_str).collect();
            a.sort();
            b.sort();
            a == b
        };
        if matches {
            return PathBuf::from(c.pathname);
        }
    }
    PathBuf::from("/")
}

/// What is mounted on this host, from /proc/self/mountinfo (never guessed from paths). Each
/// hierarchy once, at its first mount point: a later mount of the same hierarchy is someone
/// else's (CRIU mounts a "cgroup yard" of every hierarchy under its image directory while it
/// works, in the host's mount namespace) and must not redirect where containers go.
pub fn hierarchies(mounts: &[Mount]) -> Vec<Hierarchy> {
    // The same hierarchy can be mounted more than once: CRIU mounts every one under a
    // temporary "cgyard" while it dumps, other tools do the like. The instance under
    // /sys/fs/cgroup is the one that stays; elsewhere the first one seen.
    let canonical = |h: &Hierarchy| h.mountpoint.starts_with("/sys/fs/cgroup");
    let mut out: Vec<Hierarchy> = Vec::new();
    for h in all_mounts(mounts) {
        let mut key = h.controllers.clone();
        key.sort();
        let seen = out.iter().position(|o| {
            let mut k = o.controllers.clone();
            k.sort();
            o.v2 == h.v2 && k == key
        });
        match seen {
            None => out.push(h),
            Some(i) if canonical(&h) && !canonical(&out[i]) => out[i] = h,
            Some(_) => {}
        }
    }
    out
}

fn all_mounts(mounts: &[Mount]) -> Vec<Hierarchy> {
    const V1_OPTS: &[&str] = &[
        "rw",
        "ro",
        "nosuid",
        "nodev",
        "noexec",
        "relatime",
        "noatime",
        "clone_children",
        "xattr",
    ];
    let mut out = Vec::new();
    for m in mounts {
        match m.fs_type.as_str() {
            "cgroup2" => out.push(Hierarchy {
                mountpoint: procinfo::mount_point(m),
                controllers: vec![],
                v2: true,
            }),
            "cgroup" => out.push(Hierarchy {
                mountpoint: procinfo::mount_point(m),
                controllers: procinfo::super_options(m)
                    .into_iter()
                    .filter(|o| !V1_OPTS.contains(&o.as_str()) && !o.starts_with("release_agent="))
                    .collect(),
                v2: false,
            }),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub const HYBRID: &str = "\
30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
33 30 0:29 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw";

    #[test]
    fn second_mount_of_a_hierarchy_is_ignored() {
        let info = format!(
            "{HYBRID}\n90 33 0:27 / /img/.criu.cgyard.x/cpu rw - cgroup cgroup rw,cpu\n\
             91 33 0:29 / /img/.criu.cgyard.x/unified rw - cgroup2 cgroup2 rw"
        );
        let hs = hierarchies(&procinfo::parse_mountinfo(&info));
        assert_eq!(hs.len(), 3);
        assert_eq!(hs[0].mountpoint, PathBuf::from("/sys/fs/cgroup/cpu"));
        assert_eq!(hs[2].mountpoint, PathBuf::from("/sys/fs/cgroup/unified"));
    }

    #[test]
    fn the_sys_fs_cgroup_instance_wins_even_when_listed_later() {
        let info = format!(
            "90 25 0:27 / /img/.criu.cgyard.x/cpu rw - cgroup cgroup rw,cpu\n\
             91 25 0:29 / /img/.criu.cgyard.x/unified rw - cgroup2 cgroup2 rw\n{HYBRID}"
        );
        let hs = hierarchies(&procinfo::parse_mountinfo(&info));
        assert_eq!(hs.len(), 3);
        assert!(
            hs.iter()
                .all(|h| h.mountpoint.starts_with("/sys/fs/cgroup")),
            "{hs:?}"
        );
    }

    #[test]
    fn reads_hybrid_layout() {
        let hs = hierarchies(&procinfo::parse_mountinfo(HYBRID));
        assert_eq!(hs.len(), 3);
        assert_eq!(hs[0].controllers, vec!["cpu"]);
        assert_eq!(hs[1].controllers, vec!["name=systemd"]);
        assert!(hs[2].v2);
    }

    #[test]
    fn own_paths() {
        let hs = hierarchies(&crate::procinfo::parse_mountinfo(HYBRID));
        let own = "3:cpu:/a/b\n1:name=systemd:/s\n0::/u\n";
        assert_eq!(own_path(&hs[0], own), PathBuf::from("/a/b"));
        assert_eq!(own_path(&hs[1], own), PathBuf::from("/s"));
        assert_eq!(own_path(&hs[2], own), PathBuf::from("/u"));
    }
}
