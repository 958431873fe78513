//! rdma: HCA handle and object limits per device.

use std::collections::HashMap;

use hako_spec::oci::LinuxRdma;

use super::Dir;
use crate::cgroups::manager::write;
use crate::error::Result;

pub(super) fn set(d: &Dir, limits: &HashMap<String, LinuxRdma>) -> Result<()> {
    let field = "linux.resources.rdma";
    for (dev, limit) in limits {
        let line = crate::cgroups::rdma_line(dev, limit);
        write(d.get(field)?, "rdma.max", &line, field)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::scratch::Scratch;
    use hako_spec::oci::LinuxRdmaBuilder;

    #[test]
    fn one_line_per_device() {
        let s = Scratch::with(&[]);
        let l = LinuxRdmaBuilder::default()
            .hca_handles(2u32)
            .hca_objects(2000u32)
            .build()
            .unwrap();
        set(
            &Dir::at(s.path()),
            &HashMap::from([("mlx4_0".to_string(), l)]),
        )
        .unwrap();
        assert_eq!(
            s.get("rdma.max").unwrap(),
            "mlx4_0 hca_handle=2 hca_object=2000"
        );
        let e = set(
            &Dir::of(&Default::default(), "rdma"),
            &HashMap::from([(
                "mlx4_0".to_string(),
                LinuxRdmaBuilder::default().build().unwrap(),
            )]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no rdma cgroup hierarchy"), "{e}");
    }
}
