//! Running commands on a host: the [`Transport`] trait and its implementations.
//!
//! Everything that touches another machine goes through [`Transport::spawn`]: a command is a
//! program plus arguments ([`CommandSpec`]), never a pre-joined shell string. Backends live in
//! their own modules ([`local`], [`ssh`]); callers hold a `Arc<dyn Transport>` and never see which.
//! Helpers for reading and writing files and checking the host are built on `spawn`, so every
//! backend gets them for free.

pub mod container;
pub mod local;
pub mod ssh;

// Split by job: what to run, a running command, errors, and the helpers built on `spawn`.
mod command;
mod error;
mod ext;
mod process;

pub use command::*;
pub use error::*;
pub use ext::*;
pub use process::*;

use std::sync::Arc;

use async_trait::async_trait;

use crate::host::HostSpec;

/// What `rsync` needs to ride an existing connection to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsyncRemote {
    /// The remote shell command for `rsync -e`, as argv (joined with rsync's own quoting).
    pub ssh_command: Vec<String>,
    /// The ssh destination, used as `DEST:path`.
    pub destination: String,
    /// Whether the far side hands rsync's command line to a shell (ssh does), so that
    /// `--rsync-path` may be shell code. A container engine's `exec` runs it as argv instead: then
    /// the command already names the container, `destination` is [`EXEC_RSYNC_MACHINE`], and the
    /// syncer puts the lock into the remote command itself.
    pub via_shell: bool,
}

/// The placeholder "machine" in `rsync -e 'ENGINE exec -i CONTAINER …' MACHINE:path`: rsync
/// insists on a `MACHINE:` part and passes it to the remote command, whose locking script drops
/// it (see [`crate::shell::exec_rsync_lock_words`]).
pub const EXEC_RSYNC_MACHINE: &str = "codex-remote";

/// A way to run commands on one host. Object-safe: hold it as `Arc<dyn Transport>`.
#[async_trait]
pub trait Transport: Send + Sync {
    /// The host this transport reaches.
    fn host(&self) -> &HostSpec;

    /// Starts a command.
    async fn spawn(&self, spec: CommandSpec) -> Result<RemoteProcess, TransportError>;

    /// How an external `rsync` can reach this host over the connection already open, if the
    /// transport has one: the `-e` command and the destination prefix. `None` for hosts that are
    /// not reached over SSH.
    async fn rsync_remote(&self) -> Result<Option<RsyncRemote>, TransportError> {
        Ok(None)
    }

    /// Readies the transport for the commands to come, so that the work overlaps with other
    /// traffic (a run warms it up while rsync pushes). Over SSH with the persistent remote shell
    /// this starts that shell, paying the login shell's rc now rather than at the next command;
    /// elsewhere it does nothing. Failures are left for the next command to report.
    async fn warm_up(&self) {}

    /// Releases the connection (closes the SSH master). Further use reconnects.
    async fn close(&self) -> Result<(), TransportError> {
        Ok(())
    }
}

/// A shared transport.
pub type SharedTransport = Arc<dyn Transport>;

/// The transport for a resolved host: local processes for `local`, the container engine's `exec`
/// for containers, OpenSSH otherwise.
///
/// ```
/// use codex_remote_core::{config::Config, transport::{for_host, ssh::SshOptions}};
/// let transport = for_host(Config::builtin().host(None).unwrap(), SshOptions::default()).unwrap();
/// assert_eq!(transport.host().name, "local");
/// ```
pub fn for_host(
    host: HostSpec,
    ssh_options: ssh::SshOptions,
) -> Result<SharedTransport, TransportError> {
    Ok(match host.kind {
        crate::host::HostKind::Local => Arc::new(local::LocalTransport::new(host)),
        crate::host::HostKind::Ssh { .. } => Arc::new(ssh::SshTransport::new(host, ssh_options)?),
        crate::host::HostKind::Container { .. } => {
            Arc::new(container::ContainerTransport::new(host)?)
        }
        crate::host::HostKind::OnDemand(_) => Arc::new(crate::ondemand::OnDemandHost::new(host)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_home_moves_the_tilde_to_the_cwd() {
        assert_eq!(split_home("~/a b/c"), (Some("~".into()), "a b/c"));
        assert_eq!(split_home("/abs"), (None, "/abs"));
        assert_eq!(split_home("~user/x"), (None, "~user/x"));
    }

    #[test]
    fn exit_status_codes() {
        assert!(ExitStatus::Code(0).success());
        assert_eq!(ExitStatus::Signal(9).code(), 137);
        assert_eq!(ExitStatus::Code(3).to_string(), "exit code 3");
    }
}
