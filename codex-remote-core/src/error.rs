//! The crate's error type and the classification callers map to exit codes.

use crate::executor::ExecFailure;
use crate::input::InputError;
use crate::transport::TransportError;

/// Everything `codex-remote-core` can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A task file, config file or flag is wrong.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Reaching the host or running a command on it failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Pushing the project failed.
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),
    /// The result could not be applied (the local tree is untouched).
    #[error(transparent)]
    Apply(#[from] crate::patch::ApplyError),
    /// The checklist item could not be ticked (the spec is untouched).
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    /// A run record is missing or unreadable.
    #[error(transparent)]
    Runs(#[from] crate::runs::RunStoreError),
    /// The agent's run failed.
    #[error("{}", exec_message(.failure, .host, *.attempts))]
    Exec {
        /// Why.
        failure: crate::executor::ExecFailure,
        /// The host.
        host: String,
        /// Attempts made.
        attempts: u32,
    },
    /// Local file system trouble.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

/// What kind of failure an error is, for exit codes and retry decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// Bad usage or bad input.
    BadInput,
    /// The host could not be reached or the connection failed.
    Connection,
    /// Something the run needs on the host is missing.
    Prerequisite,
    /// Still rate-limited after retries.
    RateLimited,
    /// Results retrieved but not applied.
    NotApplied,
    /// The delegated work failed.
    TaskFailed,
    /// Interrupted or cancelled.
    Cancelled,
}

impl Error {
    fn transport_kind(e: &TransportError) -> ErrorKind {
        match e {
            e if e.is_connection() => ErrorKind::Connection,
            TransportError::CommandNotFound { .. } => ErrorKind::Prerequisite,
            TransportError::InvalidCommand(_) => ErrorKind::BadInput,
            _ => ErrorKind::TaskFailed,
        }
    }

    /// Classifies the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Input(_) => ErrorKind::BadInput,
            Error::Transport(e) => Error::transport_kind(e),
            Error::Sync(crate::sync::SyncError::Transport(e)) => Error::transport_kind(e),
            Error::Sync(crate::sync::SyncError::MissingProgram { .. }) => ErrorKind::Prerequisite,
            Error::Sync(crate::sync::SyncError::NotADirectory(_)) => ErrorKind::BadInput,
            Error::Sync(_) => ErrorKind::TaskFailed,
            Error::Apply(
                crate::patch::ApplyError::Conflicts(_)
                | crate::patch::ApplyError::Restricted(_)
                | crate::patch::ApplyError::Refused(_),
            ) => ErrorKind::NotApplied,
            Error::Apply(_) => ErrorKind::TaskFailed,
            Error::Checkpoint(crate::checkpoint::CheckpointError::Io { .. }) => {
                ErrorKind::TaskFailed
            }
            Error::Checkpoint(_) => ErrorKind::BadInput,
            Error::Runs(crate::runs::RunStoreError::NotFound { .. }) => ErrorKind::BadInput,
            Error::Runs(_) => ErrorKind::TaskFailed,
            Error::Exec { failure, .. } => match failure {
                ExecFailure::RateLimited { .. } | ExecFailure::UsageLimited { .. } => {
                    ErrorKind::RateLimited
                }
                ExecFailure::AuthExpired { .. }
                | ExecFailure::CodexNotFound { .. }
                | ExecFailure::WorkspaceMissing { .. } => ErrorKind::Prerequisite,
                ExecFailure::TurnFailed { .. }
                | ExecFailure::Exited { .. }
                | ExecFailure::AgentVanished { .. } => ErrorKind::TaskFailed,
            },
            Error::Io { .. } => ErrorKind::TaskFailed,
        }
    }
}

/// What to tell the user about a failed agent run, with the fix.
fn exec_message(failure: &ExecFailure, host: &str, attempts: u32) -> String {
    match failure {
        ExecFailure::RateLimited { message } => format!(
            "still rate-limited after {attempts} attempt(s) on `{host}`: {message} (hint: wait for the quota to reset, or raise --retries / [retry] in the config)"
        ),
        ExecFailure::UsageLimited { message, resume_at } => format!(
            "the Codex usage limit is reached on `{host}`{}: {message} (hint: the run waits for a reset only up to `max_wait`; raise it (`--max-wait`, config `max_wait`) or run the task again after the reset)",
            resume_at
                .map(|at| format!(
                    " and resets only at {}, past the run's max_wait",
                    crate::runs::rfc3339_of(at)
                ))
                .unwrap_or_default()
        ),
        ExecFailure::AuthExpired { message } => {
            format!("codex is not logged in on `{host}` or its login expired: {message} (hint: run `codex login` on {host})")
        }
        ExecFailure::CodexNotFound { message } => format!(
            "codex was not found on `{host}`: {message} (hint: if it comes from nvm, set `shell_init = \"source ~/.config/nvm/nvm.sh\"` under [hosts.{host}], or install it with `npm install -g @openai/codex`)"
        ),
        ExecFailure::WorkspaceMissing { message } => {
            format!("the run's workspace is missing on `{host}`: {message} (hint: check the host's `workspace` setting and that it is writable)")
        }
        ExecFailure::TurnFailed { message } => format!("the agent's turn failed on `{host}`: {message}"),
        ExecFailure::AgentVanished { message } => format!("{message} on `{host}`, twice (hint: check the host's memory and logs)"),
        ExecFailure::Exited { code, stderr } => format!("codex exited with code {code} on `{host}`: {stderr}"),
    }
}
