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
    /// Classifies the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Input(_) => ErrorKind::BadInput,
            Error::Transport(e) if e.is_connection() => ErrorKind::Connection,
            Error::Transport(TransportError::CommandNotFound { .. }) => ErrorKind::Prerequisite,
            Error::Transport(TransportError::InvalidCommand(_)) => ErrorKind::BadInput,
            Error::Transport(_) => ErrorKind::TaskFailed,
            Error::Io { .. } => ErrorKind::TaskFailed,
        }
    }
}
