//! pids: the task limit (negative: unlimited).

use hako_spec::oci::LinuxPids;

use super::Dir;
use crate::cgroups::manager::write;
use crate::error::Result;

pub(super) fn set(d: &Dir, p: &LinuxPids) -> Result<()> {
    let field = "linux.resources.pids.limit";
    let v = match p.limit() {
        0 => return Ok(()),
        l if l > 0 => l.to_string(),
        _ => "max".into(),
    };
    write(d.get("linux.resources.pids")?, "pids.max", &v, field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::scratch::Scratch;
    use hako_spec::oci::LinuxPidsBuilder;

    #[test]
    fn limit_unlimited_and_unset() {
        for (limit, want) in [(50, Some("50")), (-1, Some("max")), (0, None)] {
            let s = Scratch::with(&[]);
            let p = LinuxPidsBuilder::default().limit(limit).build().unwrap();
            set(&Dir::at(s.path()), &p).unwrap();
            assert_eq!(s.get("pids.max").as_deref(), want, "{limit}");
        }
    }
}
