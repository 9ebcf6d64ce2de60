//! Test fixtures for codex-remote.
//!
//! - [`FakeTransport`]: an in-memory host (file system, scripted commands, a log of every
//!   command) for fast, deterministic tests of core logic with no processes.
//! - [`FakeExecutor`]: a scripted agent (events, change, how it ends), so the run pipeline and
//!   orchestration are tested in milliseconds over the fake transport.
//! - [`sshd::Sshd`]: a real OpenSSH server on 127.0.0.1 with throwaway keys, for testing the SSH
//!   transport for real.
//! - [`suite`]: the behavioural test suite every `Transport` must pass.

pub mod counting;
pub mod executor;
pub mod fake;
pub mod model_server;
pub mod podman;
pub mod sshd;
pub mod suite;

pub use executor::{AgentEnd, FakeAttempt, FakeExecutor, Gate, ShellAgent, FAKE_PATCH_FILE};
pub use fake::{FakeOutput, FakeTransport};
pub use sshd::Sshd;

/// True when running under CI (`CI=true`), where a missing real component is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}
