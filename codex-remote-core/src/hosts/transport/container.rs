//! The container transport: a host reached through a container engine's `exec`
//! (`podman exec -i`, `docker exec -i`, `kubectl exec -i … --`).
//!
//! Each command is one `exec` of `sh` in the container. The script that `sh` runs is built by
//! [`crate::shell::command_script`], exactly as for SSH, and travels on the exec's stdin ahead of
//! the command's own input ([`crate::shell::stdin_bootstrap`]), never in argv: the host's `env`
//! values (API keys among them) appear neither in the local `ps` nor in the container's. The
//! script announces its pid first; the engines start an exec'd process as the leader of a new
//! session, so that pid names the process group that cancelling terminates (with
//! [`super::KILL_GROUP_SCRIPT`], through a second exec).
//!
//! Commands start in the container user's home directory, as over SSH. A failure of the engine
//! itself (no such container, container stopped, no `sh`) is told apart from the command's own
//! exit status by the pid announcement: the engine's failures come before it.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt;
use tokio::sync::{oneshot, OnceCell};

use super::local::to_exit_status;
use super::ssh::strip_pid_marker;
use super::{
    BoxWriter, CommandSpec, ExitStatus, ProcessControl, RemoteProcess, RsyncRemote, Stdin,
    Transport, TransportError,
};
use crate::host::{ContainerEngine, HostKind, HostSpec};
use crate::shell::{command_script, stdin_bootstrap, ScriptParts};

/// How much of the engine's own error output is kept for the message.
const ENGINE_ERROR_LIMIT: usize = 4096;

/// The argv prefix that runs a program in the container, for example
/// `podman exec -i web` or `kubectl exec -i -n ns pod -c app --`; `tty` adds `-t`.
///
/// ```
/// use codex_remote_core::host::ContainerEngine;
/// use codex_remote_core::transport::container::exec_argv;
/// assert_eq!(exec_argv(ContainerEngine::Docker, "web", false), ["docker", "exec", "-i", "web"]);
/// assert_eq!(
///     exec_argv(ContainerEngine::Kubernetes, "ns/pod/app", true),
///     ["kubectl", "exec", "-i", "-t", "-n", "ns", "pod", "-c", "app", "--"]
/// );
/// ```
pub fn exec_argv(engine: ContainerEngine, target: &str, tty: bool) -> Vec<String> {
    let mut argv = vec![engine.program().to_string(), "exec".into(), "-i".into()];
    if tty {
        argv.push("-t".into());
    }
    match engine {
        ContainerEngine::Podman | ContainerEngine::Docker => argv.push(target.to_string()),
        ContainerEngine::Kubernetes => {
            let mut parts = target.splitn(3, '/');
            let namespace = parts.next().unwrap_or_default();
            let pod = parts.next().unwrap_or_default();
            argv.extend(["-n".into(), namespace.into(), pod.into()]);
            if let Some(container) = parts.next() {
                argv.extend(["-c".into(), container.into()]);
            }
            argv.push("--".into());
        }
    }
    argv
}

/// Runs commands in a container through its engine's `exec`.
#[derive(Debug)]
pub struct ContainerTransport {
    host: HostSpec,
    engine: ContainerEngine,
    target: String,
    program: String,
    has_rsync: OnceCell<bool>,
}

impl ContainerTransport {
    /// A transport for a host whose kind is [`HostKind::Container`].
    pub fn new(host: HostSpec) -> Result<Self, TransportError> {
        let HostKind::Container { engine, target } = &host.kind else {
            return Err(TransportError::Io {
                context: format!("host `{}` is not a container", host.name),
                source: std::io::Error::other("use the transport of its kind"),
            });
        };
        let (engine, target) = (*engine, target.clone());
        engine
            .check_target(&target)
            .map_err(|message| TransportError::Io {
                context: format!("host `{}`", host.name),
                source: std::io::Error::other(message),
            })?;
        Ok(Self {
            program: engine.program().to_string(),
            host,
            engine,
            target,
            has_rsync: OnceCell::new(),
        })
    }

    /// Uses another executable for the engine's command line (a wrapper, or a specific path).
    pub fn with_program(mut self, program: impl Into<String>) -> Self {
        self.program = program.into();
        self
    }

    /// The full argv that starts `sh` in the container with a script of `len` bytes on stdin.
    fn argv(&self, script_len: usize) -> Vec<String> {
        let mut argv = exec_argv(self.engine, &self.target, false);
        argv[0] = self.program.clone();
        // `stdin_bootstrap` is shell code that reads the script from stdin and runs it in the
        // shell that reads it: here `sh` gets it as its `-c` text.
        argv.extend(["sh".into(), "-c".into(), stdin_bootstrap(script_len)]);
        argv
    }

    /// How to get a container that the engine cannot reach running again.
    fn unavailable_hint(&self) -> String {
        match self.engine {
            ContainerEngine::Kubernetes => format!(
                "check the pod with `kubectl get pod -n {}`; the container needs `sh`",
                self.target.split('/').next().unwrap_or_default()
            ),
            engine => format!(
                "is the container running? `{program} ps -a --filter name={target}` tells, `{program} start {target}` starts it; the container needs `sh`",
                program = engine.program(),
                target = self.target,
            ),
        }
    }

    async fn probe_rsync(&self) -> Result<bool, TransportError> {
        use super::TransportExt;
        let output = self
            .run(CommandSpec::script(
                "command -v rsync >/dev/null 2>&1 && command -v flock >/dev/null 2>&1",
                &[],
            ))
            .await?;
        Ok(output.status.success())
    }
}

#[async_trait]
impl Transport for ContainerTransport {
    fn host(&self) -> &HostSpec {
        &self.host
    }

    async fn spawn(&self, spec: CommandSpec) -> Result<RemoteProcess, TransportError> {
        spec.validate()?;
        let mut env = self.host.env.clone();
        env.extend(spec.env.clone());
        let script = command_script(&ScriptParts {
            program: &spec.program,
            args: &spec.args,
            env: &env,
            // An exec starts wherever the image says; commands start in the home directory, as
            // over SSH, so `~/`-relative paths mean the same on every host.
            cwd: Some(spec.cwd.as_deref().unwrap_or("~")),
            shell_init: self.host.shell_init.as_deref().filter(|_| spec.shell_init),
            announce_pid: true,
        })?;
        let argv = self.argv(script.len());
        let mut command = tokio::process::Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                TransportError::ContainerUnavailable {
                    host: self.host.name.clone(),
                    detail: format!("`{}` is not installed here", self.program),
                    hint: format!("install {} on this machine", self.engine.program()),
                }
            } else {
                TransportError::Io {
                    context: format!("starting `{}`", self.program),
                    source: e,
                }
            }
        })?;
        let mut stdin = child.stdin.take();
        {
            let pipe = stdin.as_mut().expect("stdin is piped");
            pipe.write_all(script.as_bytes())
                .await
                .map_err(TransportError::io(format!(
                    "sending the script to `{}`",
                    self.program
                )))?;
        }
        match &spec.stdin {
            Stdin::Bytes(bytes) => {
                let mut pipe = stdin.take().expect("stdin is piped");
                let bytes = bytes.clone();
                tokio::spawn(async move {
                    let _ = pipe.write_all(&bytes).await;
                    let _ = pipe.shutdown().await;
                });
            }
            Stdin::Null => {
                if let Some(mut pipe) = stdin.take() {
                    let _ = pipe.shutdown().await;
                }
            }
            Stdin::Piped => {}
        }
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (pid_tx, pid_rx) = oneshot::channel();
        let early = Arc::new(Mutex::new(Vec::new()));
        let stderr = strip_pid_marker(Box::new(stderr), pid_tx, Some(early.clone()));
        let pgid = child.id().map(|id| Pid::from_raw(id as i32));
        let control = ContainerControl {
            transport: ContainerExec {
                argv: exec_argv(self.engine, &self.target, false),
                program: self.program.clone(),
            },
            child,
            local_pgid: pgid,
            pid: PidState::Pending(pid_rx),
            early,
            finished: None,
            host: self.host.name.clone(),
            hint: self.unavailable_hint(),
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

    async fn rsync_remote(&self) -> Result<Option<RsyncRemote>, TransportError> {
        // rsync rides `ENGINE exec -i` only where the container has rsync (and flock for the
        // project's lock); elsewhere the tar fallback pushes through ordinary commands.
        let usable = *self
            .has_rsync
            .get_or_try_init(|| self.probe_rsync())
            .await?;
        if !usable {
            return Ok(None);
        }
        let mut command = exec_argv(self.engine, &self.target, false);
        command[0] = self.program.clone();
        Ok(Some(RsyncRemote {
            ssh_command: command,
            destination: super::EXEC_RSYNC_MACHINE.to_string(),
            via_shell: false,
        }))
    }
}

/// What cancelling needs to run a second exec in the same container.
struct ContainerExec {
    argv: Vec<String>,
    program: String,
}

enum PidState {
    Pending(oneshot::Receiver<u32>),
    Known(u32),
    Unknown,
}

struct ContainerControl {
    transport: ContainerExec,
    child: tokio::process::Child,
    local_pgid: Option<Pid>,
    pid: PidState,
    early: Arc<Mutex<Vec<u8>>>,
    finished: Option<ExitStatus>,
    host: String,
    hint: String,
}

impl ContainerControl {
    /// Whether the command in the container ever started (its pid was announced). Only asked
    /// once the exec has ended, when the announcement has either come or never will.
    async fn started(&mut self) -> bool {
        if let PidState::Pending(rx) = &mut self.pid {
            self.pid = match rx.await {
                Ok(pid) => PidState::Known(pid),
                Err(_) => PidState::Unknown,
            };
        }
        matches!(self.pid, PidState::Known(_))
    }
}

#[async_trait]
impl ProcessControl for ContainerControl {
    async fn wait(&mut self) -> Result<ExitStatus, TransportError> {
        if let Some(status) = self.finished {
            return Ok(status);
        }
        let status = to_exit_status(self.child.wait().await.map_err(TransportError::io(
            format!("waiting for `{}`", self.transport.program),
        ))?);
        if !status.success() && !self.started().await {
            let detail = {
                let early = self.early.lock().expect("not poisoned");
                String::from_utf8_lossy(&early).into_owned()
            };
            return Err(TransportError::ContainerUnavailable {
                host: self.host.clone(),
                detail: if detail.trim().is_empty() {
                    format!(
                        "`{} exec` ended with {status} before the command started",
                        self.transport.program
                    )
                } else {
                    detail.trim().to_string()
                },
                hint: self.hint.clone(),
            });
        }
        self.finished = Some(status);
        Ok(status)
    }

    async fn cancel(&mut self) -> Result<(), TransportError> {
        if self.finished.is_some() {
            return Ok(());
        }
        if let PidState::Pending(rx) = &mut self.pid {
            self.pid = match tokio::time::timeout(Duration::from_secs(10), rx).await {
                Ok(Ok(pid)) => PidState::Known(pid),
                _ => PidState::Unknown,
            };
        }
        if let PidState::Known(pid) = self.pid {
            // The group lives in the container: a second exec signals it there and waits until
            // it is gone. Ending the local `exec` client alone would leave it running.
            let mut argv = self.transport.argv.clone();
            argv[0] = self.transport.program.clone();
            let status = tokio::process::Command::new(&argv[0])
                .args(&argv[1..])
                .args(["sh", "-c", super::KILL_GROUP_SCRIPT, "sh", &pid.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await
                .map_err(TransportError::io(format!(
                    "starting `{}`",
                    self.transport.program
                )))?;
            if !status.success() {
                tracing::debug!(?status, "killing the process group in the container failed");
            }
        }
        if let Some(pgid) = self.local_pgid {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        let status = self.child.wait().await.map_err(TransportError::io(format!(
            "waiting for `{}`",
            self.transport.program
        )))?;
        self.finished = Some(to_exit_status(status));
        Ok(())
    }
}

/// Keeps at most [`ENGINE_ERROR_LIMIT`] bytes of what came before the pid announcement.
pub(super) fn keep_early(buffer: &Mutex<Vec<u8>>, line: &[u8]) {
    let mut early = buffer.lock().expect("not poisoned");
    let room = ENGINE_ERROR_LIMIT.saturating_sub(early.len());
    early.extend_from_slice(&line[..line.len().min(room)]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_puts_the_target_where_each_engine_wants_it() {
        assert_eq!(
            exec_argv(ContainerEngine::Podman, "web", false),
            ["podman", "exec", "-i", "web"]
        );
        assert_eq!(
            exec_argv(ContainerEngine::Kubernetes, "ns/pod", false),
            ["kubectl", "exec", "-i", "-n", "ns", "pod", "--"]
        );
    }

    #[test]
    fn the_script_never_travels_in_argv() {
        let host = crate::config::Config::builtin()
            .host(Some("podman://web"))
            .unwrap();
        let transport = ContainerTransport::new(host).unwrap();
        let argv = transport.argv(1234);
        assert_eq!(
            argv,
            [
                "podman",
                "exec",
                "-i",
                "web",
                "sh",
                "-c",
                "eval \"$(head -c 1234)\""
            ]
        );
    }
}
