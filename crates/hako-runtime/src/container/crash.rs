//! Fault injection for tests/crash.rs: `HAKO_TEST_CRASH_AT=<step>` makes the runtime SIGKILL
//! itself when it reaches the named step, so a test can prove that `delete --force` cleans up
//! after a runtime killed at that exact point (docs/reliability.md lists the steps).
//!
//! Compiled only into debug builds: a release binary ignores the variable, so no environment an
//! operator passes along can make production hako kill itself.

/// Dies here (SIGKILL, as an OOM kill or a shim timeout would) when the test asked for `step`.
#[inline]
pub fn point(step: &str) {
    #[cfg(debug_assertions)]
    if std::env::var_os("HAKO_TEST_CRASH_AT").is_some_and(|v| v == step) {
        // SAFETY: kill(2) of our own pid with a constant signal touches no memory.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
    #[cfg(not(debug_assertions))]
    let _ = step;
}
