//! The CLI's error type.

use codex_remote_core::{ErrorKind, InputError};

/// What a command can fail with; each maps to one exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Anything from the core library.
    #[error(transparent)]
    Core(#[from] codex_remote_core::Error),
    /// Bad usage the parser could not catch.
    #[error("{0}")]
    Usage(String),
    /// Local I/O (writing output or files).
    #[error("{context}: {source}")]
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

impl From<codex_remote_core::runs::RunStoreError> for CliError {
    fn from(e: codex_remote_core::runs::RunStoreError) -> Self {
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
            CliError::Io { .. } => ErrorKind::TaskFailed,
        }
    }

    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| CliError::Io { context, source }
    }

    /// The `--json` error object (see docs/cli.md).
    pub fn to_json(&self) -> serde_json::Value {
        let mut error = serde_json::json!({
            "kind": self.kind(),
            "exit_code": crate::exit::for_kind(self.kind()),
            "message": self.to_string(),
        });
        if let CliError::Core(codex_remote_core::Error::Apply(
            codex_remote_core::patch::ApplyError::Conflicts(conflicts),
        )) = self
        {
            error["conflicts"] = serde_json::to_value(conflicts).expect("serialisable");
        }
        if let CliError::Core(codex_remote_core::Error::Apply(
            codex_remote_core::patch::ApplyError::Restricted(paths),
        )) = self
        {
            error["restricted"] = serde_json::to_value(paths).expect("serialisable");
        }
        if let CliError::Core(codex_remote_core::Error::Apply(
            codex_remote_core::patch::ApplyError::Protected(paths),
        )) = self
        {
            error["protected"] = serde_json::to_value(paths).expect("serialisable");
        }
        if let CliError::Core(codex_remote_core::Error::Apply(
            codex_remote_core::patch::ApplyError::HeldBack(warnings),
        )) = self
        {
            error["warnings"] = serde_json::to_value(warnings).expect("serialisable");
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
