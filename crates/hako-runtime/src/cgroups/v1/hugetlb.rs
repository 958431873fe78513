//! hugetlb: a limit per page size, in the v1 hierarchy or, on the hybrid where only cgroup2 has
//! the controller (our machines), in the v2 directory.

use std::path::Path;

use hako_spec::oci::LinuxHugepageLimit;
use hako_spec::state::CgroupRecord;

use crate::cgroups::manager::write;
use crate::error::{Error, Result};

const FIELD: &str = "linux.resources.hugepageLimits";

pub(super) fn set(rec: &CgroupRecord, limits: &[LinuxHugepageLimit]) -> Result<()> {
    let target = match (rec.v1.get("hugetlb"), rec.unified.as_deref()) {
        (Some(d), _) => Some((d.as_path(), "limit_in_bytes")),
        (None, Some(u)) => Some((u, "max")),
        _ => None,
    };
    for h in limits {
        let Some((d, suffix)) = target else {
            return Err(Error::Usage(format!(
                "{FIELD}: this host has no hugetlb cgroup"
            )));
        };
        write_limit(d, suffix, h)?;
    }
    Ok(())
}

fn write_limit(d: &Path, suffix: &str, h: &LinuxHugepageLimit) -> Result<()> {
    let file = format!("hugetlb.{}.{suffix}", h.page_size());
    write(d, &file, &h.limit().to_string(), FIELD)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::scratch::Scratch;
    use hako_spec::oci::LinuxHugepageLimitBuilder;

    #[test]
    fn v1_file_or_the_hybrids_v2_file() {
        let h = LinuxHugepageLimitBuilder::default()
            .page_size("2MB")
            .limit(4 << 20)
            .build()
            .unwrap();
        let s = Scratch::with(&[]);
        let mut rec = CgroupRecord {
            unified: Some(s.path().to_path_buf()),
            ..Default::default()
        };
        set(&rec, std::slice::from_ref(&h)).unwrap();
        assert_eq!(s.get("hugetlb.2MB.max").unwrap(), "4194304");
        rec.v1.insert("hugetlb".into(), s.path().to_path_buf());
        set(&rec, std::slice::from_ref(&h)).unwrap();
        assert_eq!(s.get("hugetlb.2MB.limit_in_bytes").unwrap(), "4194304");
        let e = set(&CgroupRecord::default(), &[h]).unwrap_err().to_string();
        assert!(e.contains("no hugetlb cgroup"), "{e}");
    }
}
