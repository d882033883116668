//! Fault injection for the crash tests.
//!
//! When `GRAFT_TEST_KILL_AT` names a point the pipeline passes, the process
//! sends itself SIGKILL there: no destructor, no flush, exactly what a power
//! cut or `kill -9` does to Graft. The journal names each point
//! `<step>:before` (begin row written, work not started) and `<step>:after`
//! (work done, end row not written); a few steps have inner points (such
//! as `land:merged`). Without the variable this is one cached lookup.
//!
//! `GRAFT_TEST_FAIL_AT` names a ledger write that should fail as if the
//! disk or the database refused it ([`write_point`]), to prove that a
//! failed write is never ignored where it matters.

use std::sync::OnceLock;

pub const ENV: &str = "GRAFT_TEST_KILL_AT";
pub const FAIL_ENV: &str = "GRAFT_TEST_FAIL_AT";
/// A file where the instant of a kill at `GRAFT_TEST_KILL_AT` is written.
pub const MARK_ENV: &str = "GRAFT_TEST_KILL_MARK";

/// Die here if asked to.
pub fn point(name: &str) {
    static TARGET: OnceLock<Option<String>> = OnceLock::new();
    let target = TARGET.get_or_init(|| std::env::var(ENV).ok().filter(|s| !s.is_empty()));
    if target.as_deref() == Some(name) {
        // When it died, for tests that measure what happened before and
        // after: CLOCK_MONOTONIC in nanoseconds, the same in every process.
        if let Some(mark) = std::env::var_os(MARK_ENV)
            && let Ok(t) = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        {
            let ns = t.tv_sec() as i128 * 1_000_000_000 + t.tv_nsec() as i128;
            let _ = std::fs::write(mark, ns.to_string());
        }
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

/// Fail the ledger write named `name` if asked to.
pub fn write_point(name: &str) -> Result<(), String> {
    static TARGET: OnceLock<Option<String>> = OnceLock::new();
    let target = TARGET.get_or_init(|| std::env::var(FAIL_ENV).ok().filter(|s| !s.is_empty()));
    if target.as_deref() == Some(name) {
        return Err(format!("{FAIL_ENV}={name}: the write failed on purpose"));
    }
    Ok(())
}
