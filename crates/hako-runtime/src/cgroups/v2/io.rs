//! io: the v1 blkio fields in v2's files: weights (BFQ's own scale in io.bfq.weight, else
//! converted for io.weight, as runc) and io.max throttles.

use std::path::Path;

use hako_spec::oci::LinuxBlockIo;

use super::blkio_to_io_weight;
use crate::cgroups::manager::write;
use crate::error::Result;

pub(super) fn set(d: &Path, b: &LinuxBlockIo) -> Result<()> {
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        let (file, v) = if d.join("io.bfq.weight").exists() {
            ("io.bfq.weight", w as u64)
        } else {
            ("io.weight", blkio_to_io_weight(w))
        };
        write(d, file, &v.to_string(), "linux.resources.blockIO.weight")?;
    }
    if b.leaf_weight().is_some_and(|w| w != 0) {
        crate::log::warn(
            "linux.resources.blockIO.leafWeight: not supported on cgroup v2, ignored (as runc)",
        );
    }
    for wd in b.weight_device().iter().flatten() {
        if let Some(w) = wd.weight().filter(|w| *w != 0) {
            let line = format!("{}:{} {}", wd.major(), wd.minor(), blkio_to_io_weight(w));
            write(
                d,
                "io.weight",
                &line,
                "linux.resources.blockIO.weightDevice",
            )?;
        }
    }
    let throttles = [
        ("rbps", b.throttle_read_bps_device()),
        ("wbps", b.throttle_write_bps_device()),
        ("riops", b.throttle_read_iops_device()),
        ("wiops", b.throttle_write_iops_device()),
    ];
    for (key, list) in throttles {
        for t in list.iter().flatten() {
            let line = format!("{}:{} {key}={}", t.major(), t.minor(), t.rate());
            write(d, "io.max", &line, "linux.resources.blockIO")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::scratch::Scratch;
    use hako_spec::oci::{LinuxBlockIoBuilder, LinuxThrottleDeviceBuilder};

    #[test]
    fn weight_scale_follows_the_file() {
        let b = LinuxBlockIoBuilder::default()
            .weight(500u16)
            .build()
            .unwrap();
        let bfq = Scratch::with(&["io.bfq.weight"]);
        set(bfq.path(), &b).unwrap();
        assert_eq!(bfq.get("io.bfq.weight").unwrap(), "500");
        let cost = Scratch::with(&[]);
        set(cost.path(), &b).unwrap();
        assert_eq!(
            cost.get("io.weight").unwrap(),
            blkio_to_io_weight(500).to_string()
        );
    }

    #[test]
    fn throttles_in_io_max() {
        let t = LinuxThrottleDeviceBuilder::default()
            .major(8)
            .minor(0)
            .rate(100u64)
            .build()
            .unwrap();
        let b = LinuxBlockIoBuilder::default()
            .throttle_write_iops_device(vec![t])
            .build()
            .unwrap();
        let s = Scratch::with(&[]);
        set(s.path(), &b).unwrap();
        assert_eq!(s.get("io.max").unwrap(), "8:0 wiops=100");
    }
}
