//! net_cls and net_prio: the class id of the container's packets and per-interface priorities.

use hako_spec::oci::LinuxNetwork;

use super::Dir;
use crate::cgroups::manager::write;
use crate::error::Result;

pub(super) fn set(cls: &Dir, prio: &Dir, n: &LinuxNetwork) -> Result<()> {
    if let Some(id) = n.class_id().filter(|id| *id != 0) {
        let field = "linux.resources.network.classID";
        write(cls.get(field)?, "net_cls.classid", &id.to_string(), field)?;
    }
    for p in n.priorities().iter().flatten() {
        let field = "linux.resources.network.priorities";
        let line = format!("{} {}", p.name(), p.priority());
        write(prio.get(field)?, "net_prio.ifpriomap", &line, field)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::scratch::Scratch;
    use hako_spec::oci::{LinuxInterfacePriorityBuilder, LinuxNetworkBuilder};

    #[test]
    fn class_id_and_priorities() {
        let s = Scratch::with(&[]);
        let p = LinuxInterfacePriorityBuilder::default()
            .name("lo")
            .priority(5u32)
            .build()
            .unwrap();
        let n = LinuxNetworkBuilder::default()
            .class_id(0x100001u32)
            .priorities(vec![p])
            .build()
            .unwrap();
        set(&Dir::at(s.path()), &Dir::at(s.path()), &n).unwrap();
        assert_eq!(s.get("net_cls.classid").unwrap(), "1048577");
        assert_eq!(s.get("net_prio.ifpriomap").unwrap(), "lo 5");
    }
}
