//! [`TransportError`]: what went wrong reaching a host or running a command there, classified.

use std::time::Duration;

use crate::shell::ScriptError;

use super::*;

/// Something that went wrong reaching a host or running a command on it. Hints (how to fix
/// it) are kept apart from the message: [`TransportError::hint`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The host did not answer.
    #[error("cannot reach host `{host}`: {detail}")]
    HostUnreachable {
        /// The host's name.
        host: String,
        /// What ssh said.
        detail: String,
    },
    /// Connecting took longer than the connect timeout.
    #[error("connecting to host `{host}` timed out after {after:?}")]
    ConnectTimeout {
        /// The host's name.
        host: String,
        /// The timeout.
        after: Duration,
    },
    /// The host refused our credentials.
    #[error("host `{host}` refused authentication: {detail}")]
    AuthenticationFailed {
        /// The host's name.
        host: String,
        /// What ssh said.
        detail: String,
    },
    /// The host key differs from the known one, or is unknown under strict checking.
    #[error("host key for `{host}` {detail}")]
    HostKey {
        /// The host's name.
        host: String,
        /// `does not match known_hosts` or `is not known`.
        detail: String,
        /// How to fix it.
        hint: String,
    },
    /// The connection dropped while in use.
    #[error("the connection to host `{host}` was lost: {detail}")]
    Disconnected {
        /// The host's name.
        host: String,
        /// What happened.
        detail: String,
    },
    /// The session's persistent remote shell broke its protocol (sent more than its
    /// flow-control window allows, a frame too large or of an unknown type): it was dropped,
    /// with every command running through it.
    #[error("the remote shell on host `{host}` broke its protocol and was dropped: {detail}")]
    ShellBroken {
        /// The host's name.
        host: String,
        /// What it did.
        detail: String,
    },
    /// The container engine could not run a command in the container (no such container, not
    /// running, no `sh` in it, the engine's program missing here).
    #[error("cannot run commands in container host `{host}`: {detail}")]
    ContainerUnavailable {
        /// The host's name.
        host: String,
        /// What the engine said.
        detail: String,
        /// How to fix it.
        hint: String,
    },
    /// Any other ssh failure.
    #[error("ssh to host `{host}` failed: {detail}")]
    Ssh {
        /// The host's name.
        host: String,
        /// What happened.
        detail: String,
    },
    /// The command does not exist on the host.
    #[error("`{program}` was not found on host `{host}`")]
    CommandNotFound {
        /// The host's name.
        host: String,
        /// The program.
        program: String,
        /// How to fix it.
        hint: String,
    },
    /// The command ran longer than its timeout and was cancelled.
    #[error("`{command}` did not finish within {after:?} and was cancelled")]
    TimedOut {
        /// The command.
        command: String,
        /// The timeout.
        after: Duration,
    },
    /// The command cannot be expressed (NUL bytes, bad env names).
    #[error("invalid command: {0}")]
    InvalidCommand(#[from] ScriptError),
    /// A command a helper ran failed.
    #[error("`{command}` failed on host `{host}` with {status}: {stderr}")]
    CommandFailed {
        /// The host's name.
        host: String,
        /// The command.
        command: String,
        /// How it ended.
        status: ExitStatus,
        /// What it printed on stderr (trimmed).
        stderr: String,
    },
    /// Local I/O with the process failed.
    #[error("{context}")]
    Io {
        /// What we were doing.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

impl TransportError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| TransportError::Io { context, source }
    }

    /// How to fix it, when there is advice to give.
    pub fn hint(&self) -> Option<String> {
        match self {
            TransportError::HostUnreachable { host, .. } => Some(format!(
                "is the host up and the VPN / tailscale connected? try `ssh {host} true`"
            )),
            TransportError::ConnectTimeout { .. } => {
                Some("is the VPN / tailscale up? `tailscale status` tells".into())
            }
            TransportError::AuthenticationFailed { .. } => Some(
                "check the key in ~/.ssh/config and that it is in the host's authorized_keys"
                    .into(),
            ),
            TransportError::ShellBroken { .. } => Some(
                "codex-remote's shell on the host (`perl -e`, started through the login shell) \
                 ignored its flow control: is the `perl` on the host's PATH (or the login shell's \
                 rc) replaced? check `command -v perl` there"
                    .into(),
            ),
            TransportError::HostKey { hint, .. }
            | TransportError::CommandNotFound { hint, .. }
            | TransportError::ContainerUnavailable { hint, .. } => Some(hint.clone()),
            _ => None,
        }
    }

    /// Whether the failure is about reaching the host (exit code 3) rather than the command.
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            TransportError::HostUnreachable { .. }
                | TransportError::ContainerUnavailable { .. }
                | TransportError::ConnectTimeout { .. }
                | TransportError::AuthenticationFailed { .. }
                | TransportError::HostKey { .. }
                | TransportError::Disconnected { .. }
                | TransportError::Ssh { .. }
        )
    }
}
