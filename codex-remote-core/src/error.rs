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
    /// The host's disk is full (or the user's quota reached): preparing, launching, running or
    /// retrieving the run could not write there. `detail` is the host's own words.
    #[error("the disk is full on host `{host}`: {detail} (hint: free space in the host's workspace (`df -h` there), or set `workspace` under [hosts.{host}] to a larger disk; then start the run again)")]
    HostDiskFull {
        /// The host.
        host: String,
        /// What the host said (the line naming the full disk).
        detail: String,
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
                ExecFailure::RateLimited { .. } => ErrorKind::RateLimited,
                ExecFailure::AuthExpired { .. }
                | ExecFailure::CodexNotFound { .. }
                | ExecFailure::WorkspaceMissing { .. } => ErrorKind::Prerequisite,
                ExecFailure::TurnFailed { .. }
                | ExecFailure::Stalled { .. }
                | ExecFailure::Exited { .. }
                | ExecFailure::AgentVanished { .. } => ErrorKind::TaskFailed,
            },
            Error::HostDiskFull { .. } => ErrorKind::Prerequisite,
            Error::Io { .. } => ErrorKind::TaskFailed,
        }
    }

    /// The same error as [`Error::HostDiskFull`] when what the host said is that its disk is
    /// full (only errors from the host are looked at: a full local disk is not the host's).
    pub fn on_host(self, host: &str) -> Error {
        let from_host = matches!(
            self,
            Error::Transport(_) | Error::Sync(_) | Error::Exec { .. }
        );
        if !from_host {
            return self;
        }
        match disk_full_words(&self.to_string()) {
            Some(detail) => Error::HostDiskFull {
                host: host.to_string(),
                detail,
            },
            None => self,
        }
    }
}

/// The line of a host's message that says its disk is full, if one does.
pub fn disk_full_words(text: &str) -> Option<String> {
    const MARKERS: [&str; 2] = ["No space left on device", "Disk quota exceeded"];
    text.lines()
        .map(str::trim)
        .find(|line| MARKERS.iter().any(|m| line.contains(m)))
        .map(|line| line.chars().take(400).collect())
}

/// What to tell the user about a failed agent run, with the fix.
fn exec_message(failure: &ExecFailure, host: &str, attempts: u32) -> String {
    match failure {
        ExecFailure::RateLimited { message } => format!(
            "still rate-limited after {attempts} attempt(s) on `{host}`: {message} (hint: wait for the quota to reset, or raise --retries / [retry] in the config)"
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
        ExecFailure::Stalled { after_secs, last_notice } => format!(
            "the agent on `{host}` made no progress for {} and was stopped{} (hint: check that `{host}` reaches the model provider; raise `stall_timeout` or --stall-timeout for steps that stay silent longer)",
            humantime::format_duration(std::time::Duration::from_secs(*after_secs)),
            last_notice.as_ref().map(|n| format!("; Codex last said: {n}")).unwrap_or_default()
        ),
        ExecFailure::Exited { code, stderr } => format!("codex exited with code {code} on `{host}`: {stderr}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_read_from_the_hosts_words_and_only_from_the_host() {
        let stderr = "rsync: [receiver] write failed on \"/w/a\": No space left on device (28)\nrsync error: error in file IO (code 11)";
        assert_eq!(
            disk_full_words(stderr).as_deref(),
            Some("rsync: [receiver] write failed on \"/w/a\": No space left on device (28)")
        );
        assert_eq!(disk_full_words("permission denied"), None);
        let from_host = Error::Transport(TransportError::CommandFailed {
            host: "h".into(),
            command: "cat".into(),
            status: crate::transport::ExitStatus::Code(1),
            stderr: "cat: write error: Disk quota exceeded".into(),
        })
        .on_host("h");
        assert!(matches!(from_host, Error::HostDiskFull { .. }));
        assert_eq!(from_host.kind(), ErrorKind::Prerequisite);
        // A full local disk is not the host's.
        let local = Error::Io {
            context: "writing run.json".into(),
            source: std::io::Error::other("No space left on device"),
        }
        .on_host("h");
        assert!(matches!(local, Error::Io { .. }));
    }
}
