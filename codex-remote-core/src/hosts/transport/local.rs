//! The local transport: the same trait over `tokio::process`, so `--host local` runs the whole
//! pipeline on this machine.
//!
//! No shell is involved unless the host has a shell init; then the program runs as
//! `bash -c '<init>; exec "$@"' sh PROGRAM ARGS...`, arguments still passed as separate argv
//! entries. Each command leads its own process group so that cancelling it ends everything it
//! started.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt;

use super::{
    CommandSpec, ExitStatus, ProcessControl, RemoteProcess, Stdin, Transport, TransportError,
};
use crate::host::HostSpec;
use crate::shell::{is_identifier, ScriptError};

/// Grace period between SIGTERM and SIGKILL on cancel.
const CANCEL_GRACE: Duration = Duration::from_secs(2);

/// Runs commands on this machine.
#[derive(Debug, Clone)]
pub struct LocalTransport {
    host: HostSpec,
}

impl LocalTransport {
    /// A transport for a resolved local host.
    pub fn new(host: HostSpec) -> Self {
        Self { host }
    }
}

/// Expands a leading `~` to `$HOME`.
pub(crate) fn expand_home(path: &str) -> PathBuf {
    let home = || {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/"))
    };
    if path == "~" {
        home()
    } else if let Some(rest) = path.strip_prefix("~/") {
        home().join(rest)
    } else {
        PathBuf::from(path)
    }
}

#[async_trait]
impl Transport for LocalTransport {
    fn host(&self) -> &HostSpec {
        &self.host
    }

    async fn spawn(&self, spec: CommandSpec) -> Result<RemoteProcess, TransportError> {
        if spec.program.is_empty() {
            return Err(ScriptError::EmptyProgram.into());
        }
        let init = self.host.shell_init.as_deref().filter(|_| spec.shell_init);
        let mut command = match init {
            Some(init) => {
                let shell = if std::path::Path::new("/bin/bash").exists() {
                    "/bin/bash"
                } else {
                    "/bin/sh"
                };
                let mut c = tokio::process::Command::new(shell);
                c.arg("-c")
                    .arg(format!("{}\nexec \"$@\"", init.trim_end()))
                    .arg("sh")
                    .arg(&spec.program);
                c
            }
            None => tokio::process::Command::new(&spec.program),
        };
        command.args(&spec.args);
        for (name, value) in self.host.env.iter().chain(&spec.env) {
            if !is_identifier(name) {
                return Err(ScriptError::BadEnvName(name.clone()).into());
            }
            command.env(name, value);
        }
        if let Some(cwd) = &spec.cwd {
            command.current_dir(expand_home(cwd));
        }
        command
            .stdin(if spec.stdin == Stdin::Null {
                Stdio::null()
            } else {
                Stdio::piped()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        let display = spec.display();
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Same behaviour as a shell: a missing program or directory is exit 127 / an error.
                if let Some(cwd) = spec.cwd.as_ref().filter(|cwd| !expand_home(cwd).is_dir()) {
                    return Err(TransportError::Io {
                        context: format!("cannot enter directory `{cwd}`"),
                        source: e,
                    });
                }
                return Ok(not_found_process(display, &spec.program));
            }
            Err(e) => {
                return Err(TransportError::Io {
                    context: format!("cannot start `{display}`"),
                    source: e,
                })
            }
        };
        let pgid = child.id().map(|id| Pid::from_raw(id as i32));
        let mut stdin = child.stdin.take();
        if let Stdin::Bytes(bytes) = spec.stdin {
            let mut pipe = stdin.take().expect("stdin is piped");
            tokio::spawn(async move {
                // A command that does not read its stdin closes the pipe; that is not an error.
                let _ = pipe.write_all(&bytes).await;
                let _ = pipe.shutdown().await;
            });
        }
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        Ok(RemoteProcess::new(
            display,
            stdin.map(|s| Box::new(s) as super::BoxWriter),
            Box::new(stdout),
            Box::new(stderr),
            Box::new(LocalControl {
                child,
                pgid,
                finished: None,
            }),
            spec.timeout,
        ))
    }
}

/// A process that was never started because its program does not exist: exit 127 with the
/// shell's message, so callers handle both transports alike.
fn not_found_process(display: String, program: &str) -> RemoteProcess {
    let message = format!("{program}: command not found\n").into_bytes();
    RemoteProcess::new(
        display,
        None,
        Box::new(tokio::io::empty()),
        Box::new(std::io::Cursor::new(message)),
        Box::new(Finished(ExitStatus::Code(127))),
        None,
    )
}

struct Finished(ExitStatus);

#[async_trait]
impl ProcessControl for Finished {
    async fn wait(&mut self) -> Result<ExitStatus, TransportError> {
        Ok(self.0)
    }

    async fn cancel(&mut self) -> Result<(), TransportError> {
        Ok(())
    }
}

struct LocalControl {
    child: tokio::process::Child,
    pgid: Option<Pid>,
    finished: Option<ExitStatus>,
}

pub(super) fn to_exit_status(status: std::process::ExitStatus) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitStatus::Code(code),
        (None, Some(signal)) => ExitStatus::Signal(signal),
        (None, None) => ExitStatus::Signal(0),
    }
}

#[async_trait]
impl ProcessControl for LocalControl {
    async fn wait(&mut self) -> Result<ExitStatus, TransportError> {
        if let Some(status) = self.finished {
            return Ok(status);
        }
        let status = self
            .child
            .wait()
            .await
            .map_err(TransportError::io("waiting for a local command"))?;
        let status = to_exit_status(status);
        self.finished = Some(status);
        Ok(status)
    }

    async fn cancel(&mut self) -> Result<(), TransportError> {
        let Some(pgid) = self.pgid else { return Ok(()) };
        // ESRCH (already gone) is success.
        let _ = killpg(pgid, Signal::SIGTERM);
        if let Ok(Ok(status)) = tokio::time::timeout(CANCEL_GRACE, self.child.wait()).await {
            self.finished.get_or_insert(to_exit_status(status));
        }
        // The leader may be gone while children it started linger in the group.
        if killpg(pgid, None).is_ok() {
            let _ = killpg(pgid, Signal::SIGKILL);
            // Signals are asynchronous: wait (bounded) until the kernel has removed them, so
            // that "cancelled" means gone.
            for _ in 0..100 {
                if killpg(pgid, None).is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if self.finished.is_none() {
            let status = self
                .child
                .wait()
                .await
                .map_err(TransportError::io("waiting for a cancelled command"))?;
            self.finished = Some(to_exit_status(status));
        }
        Ok(())
    }
}
