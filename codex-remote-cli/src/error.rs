//! The CLI's error type.

use codex_remote_core::executor::ExecFailure;
use codex_remote_core::ApplyError;
use codex_remote_core::RunStoreError;
use codex_remote_core::{Error, ErrorKind, InputError};

/// What a command can fail with; each maps to one exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Anything from the core library.
    #[error(transparent)]
    Core(#[from] codex_remote_core::Error),
    /// Bad usage the parser could not catch.
    #[error("{0}")]
    Usage(String),
    /// An error with a next step that names what it happened to (the run), shown after it.
    #[error("{source}")]
    Hinted {
        /// The error.
        source: Box<CliError>,
        /// The next step.
        hint: String,
    },
    /// Local I/O (writing output or files).
    #[error("{context}")]
    Io {
        /// What we were doing.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

impl From<InputError> for CliError {
    fn from(e: InputError) -> Self {
        CliError::Core(e.into())
    }
}

impl From<codex_remote_core::RunStoreError> for CliError {
    fn from(e: codex_remote_core::RunStoreError) -> Self {
        CliError::Core(e.into())
    }
}

impl From<codex_remote_core::transport::TransportError> for CliError {
    fn from(e: codex_remote_core::transport::TransportError) -> Self {
        CliError::Core(e.into())
    }
}

impl CliError {
    /// Classifies the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CliError::Core(e) => e.kind(),
            CliError::Usage(_) => ErrorKind::BadInput,
            CliError::Hinted { source, .. } => source.kind(),
            CliError::Io { .. } => ErrorKind::TaskFailed,
        }
    }

    /// Whether the error is stdout closed by its reader (`| head`): the command ends quietly.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }

    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| CliError::Io { context, source }
    }

    /// What went wrong, followed by its causes (`what: why: why`): each error's message says
    /// only its own part, so the chain is walked here, once.
    pub fn message(&self) -> String {
        match self {
            CliError::Core(error) => error.full_message(),
            CliError::Usage(message) => message.clone(),
            CliError::Hinted { source, .. } => source.message(),
            CliError::Io { context, source } => format!("{context}: {source}"),
        }
    }

    /// How to fix it, in this command line's words where core's advice names a library option.
    pub fn hint(&self) -> Option<String> {
        if let CliError::Hinted { hint, .. } = self {
            return Some(hint.clone());
        }
        let CliError::Core(error) = self else {
            return None;
        };
        match error {
            Error::Apply(ApplyError::Restricted(_)) => Some(
                "review it with `codex-remote diff RUN`, then pass --skip-restricted to apply the rest without the restricted files, or --allow-restricted to apply all of it anyway"
                    .into(),
            ),
            Error::Apply(ApplyError::Conflicts(_)) => Some(
                "keep or stash the local edits, then `codex-remote pull RUN --apply` again".into(),
            ),
            Error::Apply(ApplyError::HeldBack(_)) => Some(
                "review it with `codex-remote diff RUN`, then `codex-remote pull RUN --apply --allow-held-back` to apply it anyway"
                    .into(),
            ),
            Error::Apply(ApplyError::NotStored { .. }) => Some(
                "the run's tree stays on the host: raise apply.max_stored_patch_bytes (and apply.max_patch_bytes, above which a result is held back) in the config, then `codex-remote pull RUN` retrieves it again"
                    .into(),
            ),
            Error::Apply(ApplyError::Protected(_)) => Some(
                "review it with `codex-remote diff RUN` and make the changes you want yourself; no flag applies it"
                    .into(),
            ),
            Error::Runs(RunStoreError::NotFound { .. } | RunStoreError::InvalidId { .. }) => {
                Some("`codex-remote runs` lists them".into())
            }
            Error::Sync(codex_remote_core::sync::SyncError::RootRefused { .. }) => Some(
                "run `codex-remote init` in your project's directory to anchor the project there, or pass --confirm-push to push this root anyway".into(),
            ),
            Error::Sync(codex_remote_core::sync::SyncError::TooLarge { .. }) => Some(
                "exclude what the agent does not need under [sync] exclude or .gitignore, raise sync.max_push_files / sync.max_push_bytes, run `codex-remote init` in the project's own directory if this root is too wide, or pass --confirm-push".into(),
            ),
            Error::Exec {
                failure: ExecFailure::RateLimited { .. },
                ..
            } => Some(
                "wait for the quota to reset, or raise --retries / [retry] in the config".into(),
            ),
            Error::Exec {
                failure: ExecFailure::Stalled { .. },
                host,
                ..
            } => Some(format!(
                "check that `{host}` reaches the model provider; raise --stall-timeout (or `stall_timeout` in the config) for steps that stay silent longer"
            )),
            Error::NotRunning { run_id, .. } => Some(format!("see `codex-remote status {run_id}`")),
            Error::AgentNotFound { run_id, host, .. } => Some(format!(
                "the run's files on `{host}` were moved or removed, or the run is only now launching its agent: `codex-remote status {run_id}` asks the host how it stands"
            )),
            error => error.hint(),
        }
    }

    /// The error as shown on stderr: the message, then the hint on its own line.
    pub fn render(&self) -> String {
        match self.hint() {
            Some(hint) => format!("codex-remote: error: {}\nhint: {hint}", self.message()),
            None => format!("codex-remote: error: {}", self.message()),
        }
    }

    /// The `--json` error object (see docs/cli.md).
    pub fn to_json(&self) -> serde_json::Value {
        if let CliError::Hinted { source, hint } = self {
            let mut value = source.to_json();
            value["error"]["hint"] = hint.as_str().into();
            return value;
        }
        let mut error = serde_json::json!({
            "kind": self.kind(),
            "exit_code": crate::exit::for_kind(self.kind()),
            "message": self.message(),
        });
        if let Some(hint) = self.hint() {
            error["hint"] = hint.into();
        }
        if let CliError::Core(codex_remote_core::Error::Apply(
            codex_remote_core::ApplyError::Conflicts(conflicts),
        )) = self
        {
            error["conflicts"] = serde_json::to_value(conflicts).expect("serialisable");
        }
        if let CliError::Core(codex_remote_core::Error::Apply(
            codex_remote_core::ApplyError::Restricted(paths),
        )) = self
        {
            error["restricted"] = serde_json::to_value(paths).expect("serialisable");
        }
        if let CliError::Core(codex_remote_core::Error::Exec { failure, .. }) = self {
            error["failure"] = serde_json::to_value(failure).expect("serialisable");
        }
        if let CliError::Core(codex_remote_core::Error::HostDiskFull { host, detail }) = self {
            error["disk_full"] = serde_json::json!({ "host": host, "detail": detail });
        }
        if let CliError::Core(codex_remote_core::Error::Apply(
            codex_remote_core::ApplyError::Protected(paths),
        )) = self
        {
            error["protected"] = serde_json::to_value(paths).expect("serialisable");
        }
        if let CliError::Core(codex_remote_core::Error::Apply(
            codex_remote_core::ApplyError::HeldBack(warnings),
        )) = self
        {
            error["warnings"] = serde_json::to_value(warnings).expect("serialisable");
        }
        if let CliError::Core(codex_remote_core::Error::Apply(
            codex_remote_core::ApplyError::NotStored {
                at_least,
                limit,
                configured,
            },
        )) = self
        {
            error["patch_not_stored"] = serde_json::json!({ "at_least": at_least, "limit": limit });
            if let Some(configured) = configured {
                error["patch_not_stored"]["configured"] = (*configured).into();
            }
        }
        if let CliError::Core(codex_remote_core::Error::Input(input)) = self {
            error["location"] = serde_json::json!({
                "source": input.source_name,
                "line": input.line,
                "column": input.column,
                "field": input.field,
            });
        }
        serde_json::json!({ "error": error })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use codex_remote_core::transport::{ExitStatus, TransportError};

    use super::*;

    fn transport(error: TransportError) -> String {
        CliError::Core(error.into()).render()
    }

    fn exec(failure: ExecFailure) -> String {
        CliError::Core(Error::Exec {
            failure,
            host: "gpu".into(),
            attempts: 3,
        })
        .render()
    }

    #[test]
    fn transport_errors_render_with_their_hint_apart() {
        insta::assert_snapshot!(
            "transport_errors",
            [
                transport(TransportError::HostUnreachable {
                    host: "gpu".into(),
                    detail: "ssh: connect to host gpu port 22: Connection refused".into(),
                }),
                transport(TransportError::ConnectTimeout {
                    host: "gpu".into(),
                    after: Duration::from_secs(10),
                }),
                transport(TransportError::AuthenticationFailed {
                    host: "gpu".into(),
                    detail: "Permission denied (publickey)".into(),
                }),
                transport(TransportError::CommandNotFound {
                    host: "gpu".into(),
                    program: "rsync".into(),
                    hint: "install it on `gpu`".into(),
                }),
                transport(TransportError::CommandFailed {
                    host: "gpu".into(),
                    command: "git status".into(),
                    status: ExitStatus::Code(128),
                    stderr: "fatal: not a git repository".into(),
                }),
                transport(TransportError::Io {
                    context: "reading the output of `cat`".into(),
                    source: std::io::Error::other("broken pipe"),
                }),
            ]
            .join("\n\n")
        );
    }

    #[test]
    fn exec_errors_render_with_their_hint_apart() {
        insta::assert_snapshot!(
            "exec_errors",
            [
                exec(ExecFailure::RateLimited {
                    message: "429 Too Many Requests".into()
                }),
                exec(ExecFailure::AuthExpired {
                    message: "401 Unauthorized".into()
                }),
                exec(ExecFailure::CodexNotFound {
                    message: "sh: 1: codex: not found".into()
                }),
                exec(ExecFailure::WorkspaceMissing {
                    message: "cd: can't cd to ~/ws/app".into()
                }),
                exec(ExecFailure::TurnFailed {
                    message: "stream disconnected".into()
                }),
                exec(ExecFailure::AgentVanished {
                    message: "the agent of run `r1` (attempt 2) is gone without an exit status"
                        .into()
                }),
                exec(ExecFailure::Exited {
                    code: 2,
                    stderr: "error: unexpected argument".into()
                }),
            ]
            .join("\n\n")
        );
    }

    #[test]
    fn prerequisite_errors_render_with_their_fix_as_the_hint() {
        let error = CliError::Core(Error::Prerequisite {
            host: "gpu".into(),
            problem: "codex cannot authenticate".into(),
            detail: "Not logged in".into(),
            fix: "run `codex login` on gpu, or set CODEX_API_KEY under [hosts.gpu.env] or in its shell_init".into(),
        });
        insta::assert_snapshot!("prerequisite_error", error.render());
        assert_eq!(error.kind(), codex_remote_core::ErrorKind::Prerequisite);
    }

    #[test]
    fn a_cause_is_shown_once() {
        let error = CliError::Core(Error::Io {
            context: "writing run.json".into(),
            source: std::io::Error::other("disk full"),
        });
        assert_eq!(error.message(), "writing run.json: disk full");
        assert_eq!(error.message().matches("disk full").count(), 1);
    }
}
