//! The per-mount flags a bind mount gets from its `mounts[]` options, as runc 1.2+ sets them.
//!
//! mount(2) ignores ro, nosuid, ... with MS_BIND, so a bind whose options name any flag (or clear
//! one: `rw`, `suid`, ...) is remounted (MS_REMOUNT|MS_BIND) with exactly the flags asked for,
//! clearing what the source had and the options did not ask for (`mount --bind -o`'s intent).
//! Where the kernel refuses that (EPERM: a mount copied into a less privileged user namespace has
//! its ro, nosuid, nodev, noexec and atime flags locked, `can_change_locked_flags()`), the
//! source's lockable flags are added and the remount tried again, unless the options explicitly
//! cleared one of them, or asked for an access-time mode other than the source's: both would give
//! a mount other than the one asked for (MS_RELATIME is ignored next to an inherited MS_NOATIME,
//! MS_STRICTATIME overrides both), so the refusal stands, in runc's words.
//!
//! The source's flags come from statfs(2) of the new bind (a copy of the source mount, its flags
//! included). statfs works where stat does not: a FUSE mount (sshfs) of another user, without
//! `allow_other`, refuses every other uid, root included, with EACCES for getattr, but answers
//! statfs with zeroed counts and the real mount flags, which the VFS fills in.

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::MsFlags;

use crate::error::{Error, Result};
use crate::fs::mounts::remount_bind;

/// The access-time modes, of which a mount has exactly one (MS_STRICTATIME is none of the others).
const ATIME_MODES: MsFlags = MsFlags::MS_NOATIME
    .union(MsFlags::MS_RELATIME)
    .union(MsFlags::MS_STRICTATIME);
const ATIME: MsFlags = ATIME_MODES.union(MsFlags::MS_NODIRATIME);
/// What a copy into a less privileged user namespace locks (the kernel's MNT_LOCK_*).
pub const LOCKABLE: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC)
    .union(MsFlags::MS_NOSUID)
    .union(ATIME);
/// MS_NOSYMFOLLOW (5.10), which nix does not name.
const MS_NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(256);

/// Remounts the bind mount `fd` is on with the flags `asked` by its options, less `cleared`.
pub fn apply(fd: &OwnedFd, asked: MsFlags, cleared: MsFlags, shown: &Path) -> Result<()> {
    let asked = asked & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    let refused = match remount_bind(fd, asked) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    let src = mount_flags(fd).map_err(|e| Error::path("statfs", shown, e))?;
    let why = |what: &str, flags: MsFlags| Error::Sys {
        op: format!("remount bind {}: {what} {}", shown.display(), names(flags)),
        errno: refused,
    };
    let locked_cleared = src & cleared & LOCKABLE;
    if !locked_cleared.is_empty() {
        return Err(why("cannot clear locked flags", locked_cleared));
    }
    if !(asked & ATIME).is_empty() && asked & ATIME != src & ATIME {
        return Err(why("cannot change locked atime flags", src & ATIME));
    }
    remount_bind(fd, asked | (src & LOCKABLE)).map_err(|e| Error::path("remount bind", shown, e))
}

/// The MS_* flags of the mount `fd` is on (statfs's ST_* flags, `calculate_f_flags()`), with
/// MS_STRICTATIME when no other access-time mode is set: the kernel stores no such flag, and
/// repeating it in a remount is how to keep that mode.
pub fn mount_flags(fd: &OwnedFd) -> std::result::Result<MsFlags, Errno> {
    let st = nix::sys::statfs::fstatfs(fd)?;
    Ok(from_statfs_flags(st.flags().bits() as u64))
}

fn from_statfs_flags(f: u64) -> MsFlags {
    const ST: &[(u64, MsFlags)] = &[
        (0x0001, MsFlags::MS_RDONLY),
        (0x0002, MsFlags::MS_NOSUID),
        (0x0004, MsFlags::MS_NODEV),
        (0x0008, MsFlags::MS_NOEXEC),
        (0x0010, MsFlags::MS_SYNCHRONOUS),
        (0x0040, MsFlags::MS_MANDLOCK),
        (0x0400, MsFlags::MS_NOATIME),
        (0x0800, MsFlags::MS_NODIRATIME),
        (0x1000, MsFlags::MS_RELATIME),
        (0x2000, MS_NOSYMFOLLOW),
    ];
    let mut m = ST
        .iter()
        .filter(|(st, _)| f & st != 0)
        .fold(MsFlags::empty(), |m, (_, ms)| m | *ms);
    if (m & ATIME_MODES).is_empty() {
        m |= MsFlags::MS_STRICTATIME;
    }
    m
}

/// `MS_RDONLY|MS_NOSUID`, as runc names flags in this error.
fn names(flags: MsFlags) -> String {
    const NAMES: &[(MsFlags, &str)] = &[
        (MsFlags::MS_RDONLY, "MS_RDONLY"),
        (MsFlags::MS_NOSUID, "MS_NOSUID"),
        (MsFlags::MS_NODEV, "MS_NODEV"),
        (MsFlags::MS_NOEXEC, "MS_NOEXEC"),
        (MsFlags::MS_NOATIME, "MS_NOATIME"),
        (MsFlags::MS_NODIRATIME, "MS_NODIRATIME"),
        (MsFlags::MS_RELATIME, "MS_RELATIME"),
        (MsFlags::MS_STRICTATIME, "MS_STRICTATIME"),
    ];
    let v: Vec<&str> = NAMES
        .iter()
        .filter(|(f, _)| flags.contains(*f))
        .map(|(_, n)| *n)
        .collect();
    v.join("|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statfs_flags_become_mount_flags() {
        // ST_VALID (0x20) is not a mount flag.
        let m = from_statfs_flags(0x20 | 0x0002 | 0x0004 | 0x0400);
        assert_eq!(
            m,
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOATIME
        );
        assert_eq!(from_statfs_flags(0x1000), MsFlags::MS_RELATIME);
    }

    #[test]
    fn no_atime_mode_is_strictatime() {
        assert_eq!(
            from_statfs_flags(0x0001 | 0x0800),
            MsFlags::MS_RDONLY | MsFlags::MS_NODIRATIME | MsFlags::MS_STRICTATIME
        );
    }

    #[test]
    fn locked_flag_names() {
        assert_eq!(
            names(MsFlags::MS_RDONLY | MsFlags::MS_NOSUID),
            "MS_RDONLY|MS_NOSUID"
        );
    }
}
