//! Exit codes: the one place errors become process statuses. Documented in docs/cli.md.

use codex_remote_core::ErrorKind;

/// Success.
pub const OK: i32 = 0;
/// The delegated task failed.
pub const TASK_FAILED: i32 = 1;
/// Bad usage or bad input.
pub const USAGE: i32 = 2;
/// Connection or transport failure.
pub const CONNECTION: i32 = 3;
/// A remote prerequisite is missing (codex not found, not logged in, workspace missing).
pub const PREREQUISITE: i32 = 4;
/// Still rate-limited after retries.
pub const RATE_LIMITED: i32 = 5;
/// Results retrieved but not applied (conflict or restricted file).
pub const NOT_APPLIED: i32 = 6;
/// Interrupted or cancelled.
pub const INTERRUPTED: i32 = 130;

/// Every exit code with its meaning (docs/cli.md, the agent skill).
pub const TABLE: [(i32, &str); 8] = [
    (OK, "ok"),
    (TASK_FAILED, "the delegated task failed"),
    (USAGE, "bad usage or bad input (task file, config, flags)"),
    (CONNECTION, "connection or transport failure (unreachable, timed out, authentication refused, host key)"),
    (PREREQUISITE, "a remote prerequisite is missing (codex not found, not logged in, workspace missing)"),
    (RATE_LIMITED, "still rate-limited after retries"),
    (NOT_APPLIED, "results retrieved but not applied (conflict, restricted or protected file)"),
    (INTERRUPTED, "interrupted or cancelled"),
];

/// The exit code for a kind of failure.
pub fn for_kind(kind: ErrorKind) -> i32 {
    match kind {
        ErrorKind::BadInput => USAGE,
        ErrorKind::Connection => CONNECTION,
        ErrorKind::Prerequisite => PREREQUISITE,
        ErrorKind::RateLimited => RATE_LIMITED,
        ErrorKind::NotApplied => NOT_APPLIED,
        ErrorKind::TaskFailed => TASK_FAILED,
        ErrorKind::Cancelled => INTERRUPTED,
    }
}
