//! The SSH transport, built on the `openssh` crate.
//!
//! One master connection per host per transport, opened lazily and shared by every command
//! (multiplexed over the ControlMaster socket; with native mux a command is a new channel on
//! that socket, with no `ssh` process spawned per command). A master that died or whose socket
//! went stale is detected on the next command and replaced.
//!
//! `sshd` runs every command through the user's login shell, which on Debian sources `~/.bashrc`
//! even for ssh commands (0.25 s and more when it sets up nvm or pyenv). So by default a session
//! starts one persistent remote shell ([`ShellMode::Persistent`], module `persistent`) through the
//! login shell once, and every command runs through it over one channel. Without `perl` on the
//! host, or with [`ShellMode::PerCommand`], each command is its own channel and login shell:
//!
//! Each command becomes a script built by [`crate::shell::command_script`] (the same script in
//! both modes). Per command, the script first announces its pid on stderr; the
//! transport strips that line and keeps the pid to cancel the command's process group later
//! (`sshd` makes each session's shell a process-group leader). Scripts longer than one exec
//! argument may be (Linux: 128 KiB), and every script that exports environment values (the
//! host's `env`, API keys among them), are sent on stdin ahead of the command's own input, so
//! no value is ever on a command line on the host.

mod persistent;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{oneshot, Mutex};

use super::{
    BoxReader, BoxWriter, CommandSpec, ExitStatus, ProcessControl, RemoteProcess, Stdin, Transport,
    TransportError,
};
use crate::host::{HostKeyPolicy, HostKind, HostSpec};
use crate::shell::{command_script, stdin_bootstrap, ScriptParts, PID_MARKER};

/// Scripts up to this size travel as the ssh command string; larger ones on stdin.
const MAX_INLINE_SCRIPT: usize = 96 * 1024;
/// How long the master stays up with no command running, should this process die without
/// closing it.
const CONTROL_PERSIST_IDLE_SECS: usize = 300;

/// How commands are multiplexed over the master connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MuxMode {
    /// Speak the mux protocol on the control socket directly (no process per command). Default:
    /// measured faster, see docs/performance.md.
    #[default]
    Native,
    /// Spawn `ssh -S socket` per command.
    Process,
}

/// How commands reach the host's shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShellMode {
    /// One small remote process per session (Perl, see `ssh/shell_agent.pl`), started once
    /// through the login shell (so the user's `~/.bashrc` is paid once), runs every command of
    /// the session from framed requests over one channel. Default. Falls back to
    /// [`ShellMode::PerCommand`] when the host cannot run it (no `perl`).
    #[default]
    Persistent,
    /// Every command is its own channel and login shell (pays `~/.bashrc` every time).
    PerCommand,
}

/// Knobs beyond the host spec, mostly for tests and unusual setups.
#[derive(Debug, Clone, Default)]
pub struct SshOptions {
    /// An ssh config file used instead of `~/.ssh/config` (`ssh -F`).
    pub config_file: Option<PathBuf>,
    /// A known_hosts file used instead of the user's.
    pub known_hosts_file: Option<PathBuf>,
    /// The only identity to offer.
    pub identity_file: Option<PathBuf>,
    /// Where the control socket lives (default: openssh's state directory).
    pub control_dir: Option<PathBuf>,
    /// Multiplexing backend.
    pub mux: MuxMode,
    /// How commands reach the host's shell.
    pub shell: ShellMode,
}

/// Runs commands on a host over SSH.
pub struct SshTransport {
    host: HostSpec,
    destination: String,
    options: SshOptions,
    session: Mutex<Option<Arc<Session>>>,
    agent: Mutex<AgentState>,
}

/// The session's persistent remote shell.
enum AgentState {
    /// Not started yet (or ended: start it again).
    None,
    Running(Arc<persistent::ShellAgent>),
    /// The host cannot run it: every command gets its own login shell.
    Unavailable,
}

impl std::fmt::Debug for SshTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshTransport")
            .field("host", &self.host.name)
            .field("destination", &self.destination)
            .finish()
    }
}

impl SshTransport {
    /// A transport for an SSH host. Connects on first use.
    pub fn new(host: HostSpec, options: SshOptions) -> Result<Self, TransportError> {
        let HostKind::Ssh { destination } = &host.kind else {
            return Err(TransportError::Ssh {
                host: host.name.clone(),
                detail: "the host is not an ssh host".into(),
            });
        };
        let destination = destination.clone();
        Ok(Self {
            host,
            destination,
            options,
            session: Mutex::new(None),
            agent: Mutex::new(AgentState::None),
        })
    }

    /// Opens the master connection now (it is otherwise opened by the first command).
    pub async fn connect(&self) -> Result<(), TransportError> {
        self.session().await.map(|_| ())
    }

    async fn session(&self) -> Result<Arc<Session>, TransportError> {
        let mut guard = self.session.lock().await;
        if let Some(session) = guard.as_ref() {
            return Ok(session.clone());
        }
        let session = Arc::new(self.open().await?);
        *guard = Some(session.clone());
        Ok(session)
    }

    /// Drops a master that failed, so the next command opens a fresh one.
    async fn discard(&self, failed: &Arc<Session>) {
        let mut guard = self.session.lock().await;
        if guard.as_ref().is_some_and(|s| Arc::ptr_eq(s, failed)) {
            *guard = None;
        }
    }

    async fn open(&self) -> Result<Session, TransportError> {
        let mut builder = SessionBuilder::default();
        builder
            .known_hosts_check(match self.host.host_key_policy {
                HostKeyPolicy::Strict => KnownHosts::Strict,
                // openssh calls accept-new `Add`; its `Accept` is StrictHostKeyChecking=no.
                HostKeyPolicy::AcceptNew => KnownHosts::Add,
            })
            .connect_timeout(self.host.connect_timeout)
            .server_alive_interval(Duration::from_secs(15))
            .control_persist(openssh::ControlPersist::IdleFor(
                std::num::NonZeroUsize::new(CONTROL_PERSIST_IDLE_SECS).expect("non-zero"),
            ));
        if let Some(path) = &self.options.config_file {
            builder.config_file(path);
        }
        if let Some(path) = &self.options.known_hosts_file {
            builder.user_known_hosts_file(path);
        }
        if let Some(path) = &self.options.identity_file {
            builder.keyfile(path);
        }
        if let Some(dir) = &self.options.control_dir {
            builder.control_directory(dir);
        }
        let connected = match self.options.mux {
            MuxMode::Native => builder.connect_mux(&self.destination).await,
            MuxMode::Process => builder.connect(&self.destination).await,
        };
        connected.map_err(|e| classify_connect_error(&self.host, e))
    }

    /// The script that runs `spec` on the host (the same whether it runs in its own login shell
    /// or in the session's persistent shell).
    fn script(&self, spec: &CommandSpec, announce_pid: bool) -> Result<String, TransportError> {
        let mut env = self.host.env.clone();
        env.extend(spec.env.clone());
        Ok(command_script(&ScriptParts {
            program: &spec.program,
            args: &spec.args,
            env: &env,
            cwd: spec.cwd.as_deref(),
            shell_init: self.host.shell_init.as_deref().filter(|_| spec.shell_init),
            announce_pid,
        })?)
    }

    /// The session's persistent shell, started on first use; `None` when the host cannot run
    /// it (then commands run one login shell each).
    async fn agent(&self) -> Result<Option<Arc<persistent::ShellAgent>>, TransportError> {
        let mut state = self.agent.lock().await;
        match &*state {
            AgentState::Running(agent) if agent.is_alive() => {
                // A master that died takes the shell's channel with it, which the shell's
                // reader may not have seen yet: ask the master (a local round trip) first.
                let session = self.session().await?;
                if session.check().await.is_ok() {
                    return Ok(Some(agent.clone()));
                }
                self.discard(&session).await;
            }
            AgentState::Unavailable => return Ok(None),
            _ => {}
        }
        // Generous: the login shell's rc runs first, and may be slow.
        let wait = self.host.connect_timeout + Duration::from_secs(60);
        let mut retried = false;
        loop {
            let session = self.session().await?;
            match persistent::ShellAgent::start(&self.host.name, session.clone(), wait).await {
                Ok(agent) => {
                    *state = AgentState::Running(agent.clone());
                    return Ok(Some(agent));
                }
                Err(persistent::StartError::Unavailable(why)) => {
                    tracing::debug!(host = %self.host.name, %why, "no persistent shell; one login shell per command");
                    *state = AgentState::Unavailable;
                    return Ok(None);
                }
                Err(persistent::StartError::Session(e)) if !retried => {
                    tracing::debug!(host = %self.host.name, error = %e, "starting the shell failed; reconnecting");
                    retried = true;
                    self.discard(&session).await;
                }
                Err(persistent::StartError::Session(e)) => {
                    return Err(classify_session_error(&self.host, e))
                }
            }
        }
    }

    async fn spawn_on(
        &self,
        session: Arc<Session>,
        spec: &CommandSpec,
    ) -> Result<RemoteProcess, openssh::Error> {
        let script = self
            .script(spec, true)
            .map_err(|_| openssh::Error::InvalidCommand)?;
        // Environment values (API keys) never travel on the command line, which sshd hands to
        // the login shell as an argument that every user of the host can read in `ps`.
        let has_env = !self.host.env.is_empty() || !spec.env.is_empty();
        let (line, prefix) = if script.len() > MAX_INLINE_SCRIPT || has_env {
            (stdin_bootstrap(script.len()), Some(script.into_bytes()))
        } else {
            (script, None)
        };
        let mut command = session.clone().arc_raw_command(line);
        let stdin_piped = prefix.is_some() || spec.stdin != Stdin::Null;
        command
            .stdin(if stdin_piped {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().await?;
        let mut stdin = child.stdin().take();
        if let Some(prefix) = prefix {
            let pipe = stdin.as_mut().expect("stdin is piped");
            pipe.write_all(&prefix)
                .await
                .map_err(openssh::Error::ChildIo)?;
        }
        if let Stdin::Bytes(bytes) = &spec.stdin {
            let mut pipe = stdin.take().expect("stdin is piped");
            let bytes = bytes.clone();
            tokio::spawn(async move {
                let _ = pipe.write_all(&bytes).await;
                let _ = pipe.shutdown().await;
            });
        } else if spec.stdin == Stdin::Null {
            if let Some(mut pipe) = stdin.take() {
                let _ = pipe.shutdown().await;
            }
        }
        let stdout = child.stdout().take().expect("stdout is piped");
        let stderr = child.stderr().take().expect("stderr is piped");
        let (pid_tx, pid_rx) = oneshot::channel();
        let stderr = strip_pid_marker(Box::new(stderr), pid_tx, None);
        let control = SshControl {
            host: self.host.name.clone(),
            child: Some(child),
            session,
            pid: PidSlot::Pending(pid_rx),
            finished: None,
        };
        Ok(RemoteProcess::new(
            spec.display(),
            stdin.map(|s| Box::new(s) as BoxWriter),
            Box::new(stdout),
            stderr,
            Box::new(control),
            spec.timeout,
        ))
    }
}

#[async_trait]
impl Transport for SshTransport {
    fn host(&self) -> &HostSpec {
        &self.host
    }

    async fn spawn(&self, spec: CommandSpec) -> Result<RemoteProcess, TransportError> {
        // Validate before touching the network so bad input is never a connection problem.
        spec.validate()?;
        if self.options.shell == ShellMode::Persistent {
            if let Some(agent) = self.agent().await? {
                return agent.spawn(&spec, self.script(&spec, false)?);
            }
        }
        let session = self.session().await?;
        match self.spawn_on(session.clone(), &spec).await {
            Ok(process) => Ok(process),
            Err(first) => {
                // A master that exited (idle persist ran out, network change, killed) leaves a
                // stale socket: replace it once, then give up with a classified error.
                tracing::debug!(host = %self.host.name, error = %first, "spawn failed; reconnecting");
                self.discard(&session).await;
                let session = self.session().await?;
                self.spawn_on(session, &spec)
                    .await
                    .map_err(|e| classify_session_error(&self.host, e))
            }
        }
    }

    async fn rsync_remote(&self) -> Result<Option<super::RsyncRemote>, TransportError> {
        let session = self.session().await?;
        let mut ssh_command = vec!["ssh".to_string()];
        if let Some(config) = &self.options.config_file {
            ssh_command.extend(["-F".to_string(), config.display().to_string()]);
        }
        // Through the master's socket: no second login, no second host-key prompt.
        ssh_command.extend([
            "-S".to_string(),
            session.control_socket().display().to_string(),
            "-o".to_string(),
            "ControlMaster=no".to_string(),
            "-o".to_string(),
            "BatchMode=yes".to_string(),
        ]);
        // rsync's `HOST:path` cannot hold an ssh:// URL; pass its parts as options instead.
        let mut destination = self.destination.clone();
        if let Some(rest) = self.destination.strip_prefix("ssh://") {
            let (user, host_port) = match rest.rsplit_once('@') {
                Some((user, host_port)) => (Some(user), host_port),
                None => (None, rest),
            };
            let (host, port) = match host_port.rsplit_once(':') {
                Some((host, port)) if port.parse::<u16>().is_ok() => (host, Some(port)),
                _ => (host_port, None),
            };
            if let Some(user) = user {
                ssh_command.extend(["-l".to_string(), user.to_string()]);
            }
            if let Some(port) = port {
                ssh_command.extend(["-p".to_string(), port.to_string()]);
            }
            destination = host.to_string();
        }
        Ok(Some(super::RsyncRemote {
            ssh_command,
            destination,
            via_shell: true,
        }))
    }

    async fn warm_up(&self) {
        if self.options.shell == ShellMode::Persistent {
            let _ = self.agent().await;
        }
    }

    async fn close(&self) -> Result<(), TransportError> {
        let agent = std::mem::replace(&mut *self.agent.lock().await, AgentState::None);
        if let AgentState::Running(agent) = agent {
            // Commands still running keep the shell (and the master) until the last one ends.
            if Arc::strong_count(&agent) == 1 {
                agent.stop().await;
            }
        }
        let session = self.session.lock().await.take();
        // While commands still hold the session, the master goes when the last one is dropped.
        if let Some(Ok(session)) = session.map(Arc::try_unwrap) {
            session
                .close()
                .await
                .map_err(|e| classify_session_error(&self.host, e))?;
        }
        Ok(())
    }
}

/// Forwards stderr without the pid announcement, handing the pid to the canceller.
/// Removes the pid announcement from a command's stderr and sends the pid. Lines before it (the
/// user's rc files over SSH; the engine's own errors for containers) pass through, and are also
/// kept in `early` when given.
pub(super) fn strip_pid_marker(
    stderr: BoxReader,
    pid_tx: oneshot::Sender<u32>,
    early: Option<std::sync::Arc<std::sync::Mutex<Vec<u8>>>>,
) -> BoxReader {
    let (mut writer, reader) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let mut stderr = BufReader::new(stderr);
        let mut pid_tx = Some(pid_tx);
        let mut line = Vec::new();
        let mut forward = true;
        // Lines before the marker come from the user's rc files; pass them through.
        while pid_tx.is_some() {
            line.clear();
            match stderr.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line);
            if let Some(pid) = text
                .strip_prefix(PID_MARKER)
                .and_then(|rest| rest.trim().parse::<u32>().ok())
            {
                let _ = pid_tx.take().expect("checked").send(pid);
            } else {
                if let Some(early) = &early {
                    super::container::keep_early(early, &line);
                }
                if forward && writer.write_all(&line).await.is_err() {
                    forward = false;
                }
            }
        }
        if forward {
            let _ = tokio::io::copy(&mut stderr, &mut writer).await;
        } else {
            let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
        }
    });
    Box::new(reader)
}

enum PidSlot {
    Pending(oneshot::Receiver<u32>),
    Known(u32),
    Unknown,
}

struct SshControl {
    host: String,
    child: Option<openssh::Child<Arc<Session>>>,
    session: Arc<Session>,
    pid: PidSlot,
    finished: Option<ExitStatus>,
}

#[async_trait]
impl ProcessControl for SshControl {
    async fn wait(&mut self) -> Result<ExitStatus, TransportError> {
        if let Some(status) = self.finished {
            return Ok(status);
        }
        let Some(child) = self.child.take() else {
            return Ok(ExitStatus::Signal(0));
        };
        let status = match child.wait().await {
            Ok(status) => {
                use std::os::unix::process::ExitStatusExt;
                match (status.code(), status.signal()) {
                    (Some(code), _) => ExitStatus::Code(code),
                    (None, Some(signal)) => ExitStatus::Signal(signal),
                    (None, None) => ExitStatus::Signal(0),
                }
            }
            // openssh turns the shell's "command not found" status into an error; keep it a status
            // so every transport reports a missing program alike.
            Err(openssh::Error::Remote(_)) => ExitStatus::Code(127),
            // The mux protocol cannot tell a remote signal from a dropped connection.
            Err(openssh::Error::RemoteProcessTerminated) => match self.session.check().await {
                Ok(()) => ExitStatus::Signal(0),
                Err(e) => {
                    return Err(TransportError::Disconnected {
                        host: self.host.clone(),
                        detail: e.to_string(),
                    })
                }
            },
            Err(e) => {
                return Err(TransportError::Disconnected {
                    host: self.host.clone(),
                    detail: e.to_string(),
                })
            }
        };
        self.finished = Some(status);
        Ok(status)
    }

    async fn cancel(&mut self) -> Result<(), TransportError> {
        if self.finished.is_some() {
            return Ok(());
        }
        if let PidSlot::Pending(rx) = &mut self.pid {
            // The announcement is the script's first action; if it never comes the command
            // never started.
            self.pid = match tokio::time::timeout(Duration::from_secs(10), rx).await {
                Ok(Ok(pid)) => PidSlot::Known(pid),
                _ => PidSlot::Unknown,
            };
        }
        if let PidSlot::Known(pid) = self.pid {
            let mut kill = self.session.clone().arc_raw_command(format!(
                "sh -c {} sh {pid}",
                crate::shell::quote(super::KILL_GROUP_SCRIPT)
            ));
            kill.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            kill.status()
                .await
                .map_err(|e| TransportError::Disconnected {
                    host: self.host.clone(),
                    detail: e.to_string(),
                })?;
        }
        let _ = self.wait().await;
        self.finished.get_or_insert(ExitStatus::Signal(15));
        Ok(())
    }
}

/// Maps a failure to open the master into something a user can act on.
fn classify_connect_error(host: &HostSpec, error: openssh::Error) -> TransportError {
    let detail = match &error {
        openssh::Error::Connect(io) | openssh::Error::Master(io) => io.to_string(),
        other => other.to_string(),
    };
    classify_ssh_message(host, &detail)
}

/// Classifies ssh's own words (its stderr).
pub(crate) fn classify_ssh_message(host: &HostSpec, detail: &str) -> TransportError {
    let name = host.name.clone();
    let lower = detail.to_ascii_lowercase();
    let detail = detail
        .trim()
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string();
    if lower.contains("remote host identification has changed") {
        TransportError::HostKey {
            host: name.clone(),
            detail: "does not match the one in known_hosts (it changed, or someone is intercepting)".into(),
            hint: format!("if the host was reinstalled, remove the old key with `ssh-keygen -R <hostname>` and connect once with `ssh {name}` to check the new one"),
        }
    } else if lower.contains("host key verification failed")
        || lower.contains("no ") && lower.contains("host key is known")
    {
        TransportError::HostKey {
            host: name.clone(),
            detail: "is not known and strict host key checking is on".into(),
            hint: format!("connect once with `ssh {name}` and verify the fingerprint, or set `accept_new_host_keys = true` under [hosts.{name}]"),
        }
    } else if lower.contains("permission denied")
        || lower.contains("too many authentication failures")
    {
        TransportError::AuthenticationFailed { host: name, detail }
    } else if lower.contains("timed out") {
        TransportError::ConnectTimeout {
            host: name,
            after: host.connect_timeout,
        }
    } else if lower.contains("could not resolve")
        || lower.contains("connection refused")
        || lower.contains("no route to host")
        || lower.contains("network is unreachable")
        || lower.contains("connection closed")
        || lower.contains("connection reset")
    {
        TransportError::HostUnreachable { host: name, detail }
    } else {
        TransportError::Ssh { host: name, detail }
    }
}

fn classify_session_error(host: &HostSpec, error: openssh::Error) -> TransportError {
    match error {
        openssh::Error::InvalidCommand => TransportError::Ssh {
            host: host.name.clone(),
            detail: "the command contains a NUL byte".into(),
        },
        openssh::Error::Connect(_) | openssh::Error::Master(_) => {
            classify_connect_error(host, error)
        }
        other => TransportError::Disconnected {
            host: host.name.clone(),
            detail: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn classifies_ssh_messages() {
        let host = Config::builtin().host(Some("penguin")).unwrap();
        let cases = [
            ("ssh: connect to host 100.1.1.1 port 22: Connection timed out", "ConnectTimeout"),
            ("ssh: Could not resolve hostname penguin: Name or service not known", "HostUnreachable"),
            ("ssh: connect to host 127.0.0.1 port 1: Connection refused", "HostUnreachable"),
            ("me@127.0.0.1: Permission denied (publickey).", "AuthenticationFailed"),
            ("No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\r\nHost key verification failed.", "HostKey"),
            ("@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@", "HostKey"),
            ("something odd", "Ssh"),
        ];
        for (message, expected) in cases {
            let error = classify_ssh_message(&host, message);
            let debug = format!("{error:?}");
            assert!(debug.starts_with(expected), "{message} -> {debug}");
        }
    }
}
