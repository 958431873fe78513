//! blkio: proportional weights (where the I/O scheduler has them) and throttles.

use hako_spec::oci::LinuxBlockIo;

use super::Dir;
use crate::cgroups::manager::{pick_file, write};
use crate::error::Result;

/// Proportional blkio weights exist only with a scheduler that implements them: CFQ (removed in
/// 5.0) names them blkio.weight, BFQ blkio.bfq.weight. Block devices on mq-deadline or none (our
/// CI machines) have neither file, and the kernel has no weight to honour.
const WEIGHT_FILES: [&str; 2] = ["blkio.weight", "blkio.bfq.weight"];
const WEIGHT_DEVICE_FILES: [&str; 2] = ["blkio.weight_device", "blkio.bfq.weight_device"];
const NO_WEIGHTS: &str =
    "blkio weight is not supported by this kernel (it needs the BFQ or CFQ I/O scheduler)";

pub(super) fn set(d: &Dir, b: &LinuxBlockIo) -> Result<()> {
    let f = |name: &str| format!("linux.resources.blockIO.{name}");
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        let (field, dd) = (f("weight"), d.get(&f("weight"))?);
        let file = pick_file(dd, &WEIGHT_FILES, &field, NO_WEIGHTS)?;
        write(dd, file, &w.to_string(), &field)?;
    }
    if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
        let field = f("leafWeight");
        write(d.get(&field)?, "blkio.leaf_weight", &w.to_string(), &field)?;
    }
    for wd in b.weight_device().iter().flatten() {
        if let Some(w) = wd.weight().filter(|w| *w != 0) {
            let (field, dd) = (f("weightDevice"), d.get(&f("weightDevice"))?);
            let file = pick_file(dd, &WEIGHT_DEVICE_FILES, &field, NO_WEIGHTS)?;
            write(
                dd,
                file,
                &format!("{}:{} {w}", wd.major(), wd.minor()),
                &field,
            )?;
        }
    }
    let throttles = [
        (
            "read_bps_device",
            "throttleReadBpsDevice",
            b.throttle_read_bps_device(),
        ),
        (
            "write_bps_device",
            "throttleWriteBpsDevice",
            b.throttle_write_bps_device(),
        ),
        (
            "read_iops_device",
            "throttleReadIOPSDevice",
            b.throttle_read_iops_device(),
        ),
        (
            "write_iops_device",
            "throttleWriteIOPSDevice",
            b.throttle_write_iops_device(),
        ),
    ];
    for (file, name, list) in throttles {
        for t in list.iter().flatten() {
            let field = f(name);
            let line = format!("{}:{} {}", t.major(), t.minor(), t.rate());
            write(
                d.get(&field)?,
                &format!("blkio.throttle.{file}"),
                &line,
                &field,
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::scratch::Scratch;
    use hako_spec::oci::{LinuxBlockIoBuilder, LinuxThrottleDeviceBuilder};

    fn weight(w: u16) -> LinuxBlockIo {
        LinuxBlockIoBuilder::default().weight(w).build().unwrap()
    }

    #[test]
    fn weight_goes_where_the_scheduler_has_it() {
        let bfq = Scratch::with(&["blkio.bfq.weight"]);
        set(&Dir::at(bfq.path()), &weight(300)).unwrap();
        assert_eq!(bfq.get("blkio.bfq.weight").unwrap(), "300");
        let cfq = Scratch::with(&["blkio.weight", "blkio.bfq.weight"]);
        set(&Dir::at(cfq.path()), &weight(300)).unwrap();
        assert_eq!(cfq.get("blkio.weight").unwrap(), "300");
    }

    #[test]
    fn no_weight_file_says_the_kernel_lacks_it() {
        let s = Scratch::with(&[]);
        let e = set(&Dir::at(s.path()), &weight(300))
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux.resources.blockIO.weight"), "{e}");
        assert!(e.contains("not supported by this kernel"), "{e}");
        // 0 is docker's "not set": nothing to refuse.
        set(&Dir::at(s.path()), &weight(0)).unwrap();
    }

    #[test]
    fn throttles() {
        let s = Scratch::with(&[]);
        let t = LinuxThrottleDeviceBuilder::default()
            .major(8)
            .minor(0)
            .rate(1_048_576u64)
            .build()
            .unwrap();
        let b = LinuxBlockIoBuilder::default()
            .throttle_read_bps_device(vec![t])
            .build()
            .unwrap();
        set(&Dir::at(s.path()), &b).unwrap();
        assert_eq!(
            s.get("blkio.throttle.read_bps_device").unwrap(),
            "8:0 1048576"
        );
    }
}
