//! The crate's error type and the classification callers map to exit codes.

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
    /// A run record is missing or unreadable.
    #[error(transparent)]
    Runs(#[from] crate::runs::RunStoreError),
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
            Error::Runs(crate::runs::RunStoreError::NotFound { .. }) => ErrorKind::BadInput,
            Error::Runs(_) => ErrorKind::TaskFailed,
            Error::Io { .. } => ErrorKind::TaskFailed,
        }
    }
}
