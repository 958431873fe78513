//! What `ps` shows for an init waiting for `start`. The init is a clone of `hako create`, not a
//! new program, so it would show the same command line as the runtime that made it (and that has
//! exited by the time anyone looks): runc's waiting init shows `runc init`. The argv strings are
//! rewritten in place, as setproctitle(3) does: a longer title cannot be given without
//! PR_SET_MM_ARG_START, which needs CAP_SYS_RESOURCE (not in our hosts' bounding set).

const TITLE: &[u8] = b"hako init";
/// The thread name (comm, at most 15 bytes), what `ps -o comm` and top show.
const COMM: &std::ffi::CStr = c"hako:[INIT]";

/// Best effort: a process whose /proc cannot be read keeps its title.
pub fn set() {
    let _ = nix::sys::prctl::set_name(COMM);
    let Some((start, end)) = crate::procinfo::own_argv_area() else {
        return;
    };
    let len = end.saturating_sub(start);
    if len < TITLE.len() + 2 {
        return;
    }
    // SAFETY: [start, end) is this process's own argv area on its initial stack, mapped
    // read-write by the kernel at execve; the init is single-threaded and nothing holds a
    // reference into it (Rust's std reads argv only when env::args() is called, which the init
    // never does).
    let area = unsafe { std::slice::from_raw_parts_mut(start as *mut u8, len) };
    area.fill(0);
    area[..TITLE.len()].copy_from_slice(TITLE);
    // A non-NUL last byte tells the kernel the area holds a title (its setproctitle rule):
    // /proc/PID/cmdline then reads up to and with the first NUL, "hako init\\0" without the padding.
    area[len - 1] = b' ';
}
