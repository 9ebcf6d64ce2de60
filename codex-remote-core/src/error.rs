//! The crate's error type and the classification callers map to exit codes.

use crate::executor::ExecFailure;
use crate::input::InputError;
use crate::transport::TransportError;

/// Everything `codex-remote-core` can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    #[error("the disk is full on host `{host}`: {detail}")]
    HostDiskFull {
        /// The host.
        host: String,
        /// What the host said (the line naming the full disk).
        detail: String,
    },
    /// Something the agent needs on the host is missing: found by the check before a run
    /// pushes anything (see [`crate::prerequisites`]). The fix is its [`Error::hint`].
    #[error("{problem} on `{host}`: {detail}")]
    Prerequisite {
        /// The host.
        host: String,
        /// What is wrong (`codex was not found`, `codex cannot authenticate`).
        problem: String,
        /// What the host said.
        detail: String,
        /// How to fix it.
        fix: String,
    },
    /// The run was cancelled (its agent ended on the host) before it finished.
    #[error("run `{run_id}` was cancelled")]
    Cancelled {
        /// The run.
        run_id: String,
    },
    /// The run's agent is not running, so there is nothing to follow.
    #[error("run `{run_id}` is {phase}; there is nothing to attach to")]
    NotRunning {
        /// The run.
        run_id: String,
        /// Where it stands (`completed`, `failed`, ...).
        phase: String,
    },
    /// The run's record says its agent works, but the host has no trace of it where the run
    /// started (its agent directory holds neither a pid, a marker nor an exit status): nothing
    /// was ended, and the record was left as it was.
    #[error("found no agent of run `{run_id}` on `{host}` (nothing in {agent_dir}); nothing was cancelled and the run is still recorded as {phase}")]
    AgentNotFound {
        /// The run.
        run_id: String,
        /// The host.
        host: String,
        /// Where the agent's files were looked for.
        agent_dir: String,
        /// What the record says (`running`, `waiting`).
        phase: String,
    },
    /// Local file system trouble.
    #[error("{context}")]
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
// Deliberately exhaustive: each kind is an exit code, and a caller maps every one.
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

    /// How to fix it, when there is advice to give (kept apart from the message, which says
    /// what went wrong). Worded for any caller: a front end may add its own.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Input(e) => e.hint.clone(),
            Error::Transport(e) | Error::Sync(crate::sync::SyncError::Transport(e)) => e.hint(),
            Error::Sync(crate::sync::SyncError::MissingProgram { hint, .. }) => Some(hint.clone()),
            Error::Apply(crate::patch::ApplyError::Restricted(_)) => {
                Some("review the change, then allow restricted files to apply it anyway".into())
            }
            Error::Apply(crate::patch::ApplyError::HeldBack(_)) => Some(
                "review the change, then allow held-back results to apply it anyway".into(),
            ),
            Error::Apply(crate::patch::ApplyError::NotStored { .. }) => Some(
                "look at the change in the run's tree on the host, or raise apply.max_stored_patch_bytes (and apply.max_patch_bytes, above which it is held back) and retrieve it again".into(),
            ),
            Error::Apply(crate::patch::ApplyError::Protected(_)) => Some(
                "review the change and make the changes you want yourself; no option applies it"
                    .into(),
            ),
            Error::Apply(crate::patch::ApplyError::WriteFailed { .. }) => Some(
                "fix what stopped the write (permissions, immutable files, free space), then apply again"
                    .into(),
            ),
            Error::Apply(crate::patch::ApplyError::Conflicts(_)) => Some(
                "keep or stash the local edits, then apply again; the result stays in the run's record"
                    .into(),
            ),
            Error::Checkpoint(crate::checkpoint::CheckpointError::NoMatch { .. }) => {
                Some("the match is exact, apart from surrounding whitespace".into())
            }
            Error::Runs(crate::runs::RunStoreError::NotFound { .. })
            | Error::Runs(crate::runs::RunStoreError::InvalidId { .. }) => {
                Some("list the project's runs to find its id".into())
            }
            Error::Runs(crate::runs::RunStoreError::Damaged { .. }) => Some(
                "a record that is not what its folder says (or unreadable) is never used; remove its folder".into(),
            ),
            Error::Sync(crate::sync::SyncError::RootRefused { .. }) => Some(
                "anchor the project in its own directory with a codex-remote.toml, or confirm the push of this root".into(),
            ),
            Error::Sync(crate::sync::SyncError::TooLarge { .. }) => Some(
                "exclude what the agent does not need ([sync] exclude, .gitignore), raise sync.max_push_files / sync.max_push_bytes, anchor the project in its own directory with a codex-remote.toml, or confirm the push".into(),
            ),
            Error::Checkpoint(crate::checkpoint::CheckpointError::OutsideProject { .. }) => {
                Some("name a spec file inside the project, relative to its root".into())
            }
            Error::Exec { failure, host, .. } => exec_hint(failure, host),
            Error::HostDiskFull { host, .. } => Some(format!(
                "free space in the workspace on `{host}` (`df -h` there), or set `workspace` under [hosts.{host}] to a larger disk; then start the run again"
            )),
            Error::Prerequisite { fix, .. } => Some(fix.clone()),
            Error::AgentNotFound { host, .. } => Some(format!(
                "the run's files on `{host}` were moved or removed, or the run is only now launching its agent; ask the host how the run stands before anything else"
            )),
            _ => None,
        }
    }

    /// The message followed by its causes (`what: why: why`), each once: for records and logs
    /// that keep one string.
    pub fn full_message(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            // `io::Error::other(e)` shows `e` and also returns it as its source.
            let cause_text = cause.to_string();
            if !text.ends_with(&cause_text) {
                text.push_str(": ");
                text.push_str(&cause_text);
            }
            source = cause.source();
        }
        text
    }

    /// Classifies the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Input(_) => ErrorKind::BadInput,
            Error::Transport(e) => Error::transport_kind(e),
            Error::Sync(crate::sync::SyncError::Transport(e)) => Error::transport_kind(e),
            Error::Sync(crate::sync::SyncError::MissingProgram { .. }) => ErrorKind::Prerequisite,
            Error::Sync(
                crate::sync::SyncError::NotADirectory(_)
                | crate::sync::SyncError::RootRefused { .. }
                | crate::sync::SyncError::TooLarge { .. },
            ) => ErrorKind::BadInput,
            Error::Sync(_) => ErrorKind::TaskFailed,
            Error::Apply(
                crate::patch::ApplyError::Conflicts(_)
                | crate::patch::ApplyError::Restricted(_)
                | crate::patch::ApplyError::Protected(_)
                | crate::patch::ApplyError::Ambiguous(_)
                | crate::patch::ApplyError::HeldBack(_)
                | crate::patch::ApplyError::WriteFailed { .. }
                | crate::patch::ApplyError::Parse(_)
                | crate::patch::ApplyError::Refused(_)
                | crate::patch::ApplyError::NotStored { .. },
            ) => ErrorKind::NotApplied,
            Error::Apply(_) => ErrorKind::TaskFailed,
            Error::Checkpoint(crate::checkpoint::CheckpointError::Io { .. }) => {
                ErrorKind::TaskFailed
            }
            Error::Checkpoint(_) => ErrorKind::BadInput,
            Error::Runs(
                crate::runs::RunStoreError::NotFound { .. }
                | crate::runs::RunStoreError::InvalidId { .. },
            ) => ErrorKind::BadInput,
            Error::Runs(_) => ErrorKind::TaskFailed,
            Error::Exec { failure, .. } => match failure {
                ExecFailure::RateLimited { .. } | ExecFailure::UsageLimited { .. } => {
                    ErrorKind::RateLimited
                }
                ExecFailure::AuthExpired { .. }
                | ExecFailure::CodexNotFound { .. }
                | ExecFailure::WorkspaceMissing { .. } => ErrorKind::Prerequisite,
                ExecFailure::TurnFailed { .. }
                | ExecFailure::Stalled { .. }
                | ExecFailure::Exited { .. }
                | ExecFailure::AgentVanished { .. } => ErrorKind::TaskFailed,
            },
            Error::HostDiskFull { .. } => ErrorKind::Prerequisite,
            Error::Prerequisite { .. } => ErrorKind::Prerequisite,
            Error::Cancelled { .. } => ErrorKind::Cancelled,
            Error::NotRunning { .. } => ErrorKind::BadInput,
            Error::AgentNotFound { .. } => ErrorKind::Prerequisite,
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

impl Error {
    /// [`Error::HostDiskFull`] again from a run record's `error`, when that is what it says.
    pub fn recorded_disk_full(host: &str, recorded: &str) -> Option<Error> {
        let line = disk_full_words(recorded)?;
        let prefix = format!("the disk is full on host `{host}`: ");
        Some(Error::HostDiskFull {
            host: host.to_string(),
            detail: line.strip_prefix(&prefix).unwrap_or(&line).to_string(),
        })
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

/// What to tell the user about a failed agent run.
fn exec_message(failure: &ExecFailure, host: &str, attempts: u32) -> String {
    match failure {
        ExecFailure::RateLimited { message } => {
            format!("still rate-limited after {attempts} attempt(s) on `{host}`: {message}")
        }
        ExecFailure::UsageLimited { message, resume_at } => format!(
            "the Codex usage limit is reached on `{host}`{}: {message}",
            resume_at
                .map(|at| format!(
                    " and resets only at {}, past the run's max_wait",
                    crate::runs::rfc3339_of(at)
                ))
                .unwrap_or_default()
        ),
        ExecFailure::AuthExpired { message } => {
            format!("codex's credentials were refused on `{host}` (not logged in, login expired, or a bad API key): {message}")
        }
        ExecFailure::CodexNotFound { message } => {
            format!("codex was not found on `{host}`: {message}")
        }
        ExecFailure::WorkspaceMissing { message } => {
            format!("the run's workspace is missing on `{host}`: {message}")
        }
        ExecFailure::TurnFailed { message } => {
            format!("the agent's turn failed on `{host}`: {message}")
        }
        ExecFailure::AgentVanished { message } => format!("{message} on `{host}`, twice"),
        ExecFailure::Exited { code, stderr } => {
            format!("codex exited with code {code} on `{host}`: {stderr}")
        }
        ExecFailure::Stalled {
            after_secs,
            last_notice,
        } => format!(
            "the agent on `{host}` made no progress for {} and was stopped{}",
            humantime::format_duration(std::time::Duration::from_secs(*after_secs)),
            last_notice
                .as_ref()
                .map(|n| format!("; Codex last said: {n}"))
                .unwrap_or_default()
        ),
    }
}

/// How to fix a failed agent run.
fn exec_hint(failure: &ExecFailure, host: &str) -> Option<String> {
    Some(match failure {
        ExecFailure::RateLimited { .. } => {
            "wait for the quota to reset, or allow more retries ([retry] in the config)".into()
        }
        ExecFailure::UsageLimited { .. } => "the run waits for a reset only up to `max_wait`; raise it (config `max_wait`) or run the task again after the reset".into(),
        ExecFailure::AuthExpired { .. } => {
            format!("run `codex login` on {host}, or check the CODEX_API_KEY it runs with")
        }
        ExecFailure::CodexNotFound { .. } => format!(
            "if it comes from nvm, set `shell_init = \"source ~/.config/nvm/nvm.sh\"` under [hosts.{host}], or install it with `{}` (the version codex-remote supports)",
            crate::prerequisites::CODEX_INSTALL
        ),
        ExecFailure::WorkspaceMissing { .. } => {
            "check the host's `workspace` setting and that it is writable".into()
        }
        ExecFailure::AgentVanished { .. } => "check the host's memory and logs".into(),
        ExecFailure::Stalled { .. } => format!(
            "check that `{host}` reaches the model provider; raise `stall_timeout` for steps that stay silent longer"
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io() -> std::io::Error {
        std::io::Error::other("disk full")
    }

    #[test]
    fn display_leaves_the_source_to_source() {
        let errors: Vec<Error> = vec![
            Error::Io {
                context: "writing run.json".into(),
                source: io(),
            },
            crate::runs::RunStoreError::Io {
                context: "writing run.json".into(),
                source: io(),
            }
            .into(),
            crate::sync::SyncError::Io {
                context: "listing files".into(),
                source: io(),
            }
            .into(),
            crate::patch::ApplyError::Io {
                context: "reading a.txt".into(),
                source: io(),
            }
            .into(),
            crate::checkpoint::CheckpointError::Io {
                file: "SPEC.md".into(),
                source: io(),
            }
            .into(),
            TransportError::Io {
                context: "reading output".into(),
                source: io(),
            }
            .into(),
        ];
        for error in errors {
            let source = std::error::Error::source(&error).expect("the cause is the source");
            assert!(source.to_string().contains("disk full"));
            assert!(
                !error.to_string().contains("disk full"),
                "`{error}` repeats its source"
            );
        }
    }

    #[test]
    fn hints_are_apart_from_messages_and_name_no_command_line() {
        let errors: Vec<Error> = vec![
            TransportError::HostUnreachable {
                host: "gpu".into(),
                detail: "refused".into(),
            }
            .into(),
            crate::patch::ApplyError::Restricted(vec!["package.json".into()]).into(),
            crate::runs::RunStoreError::NotFound {
                id: "r".into(),
                dir: "d".into(),
            }
            .into(),
            Error::Exec {
                failure: ExecFailure::RateLimited {
                    message: "429".into(),
                },
                host: "gpu".into(),
                attempts: 2,
            },
        ];
        for error in errors {
            let hint = error.hint().expect("a hint");
            assert!(!error.to_string().contains("hint"), "{error}");
            assert!(
                !hint.contains("codex-remote ") && !hint.contains("--"),
                "core's hint names CLI options: {hint}"
            );
        }
    }

    #[test]
    fn cancelled_is_produced_as_its_own_kind() {
        let error = Error::Cancelled { run_id: "r".into() };
        assert_eq!(error.kind(), ErrorKind::Cancelled);
    }

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
