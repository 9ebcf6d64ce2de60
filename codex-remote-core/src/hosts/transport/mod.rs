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

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, BufReader};
use tokio::sync::mpsc;

use crate::host::HostSpec;
use crate::shell::ScriptError;

/// Boxed async reader for a command's output.
pub type BoxReader = Box<dyn AsyncRead + Send + Unpin>;
/// Boxed async writer for a command's input.
pub type BoxWriter = Box<dyn AsyncWrite + Send + Unpin>;

/// What a command reads on stdin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Stdin {
    /// Nothing (`/dev/null`).
    #[default]
    Null,
    /// These bytes, then end of file.
    Bytes(Vec<u8>),
    /// A pipe the caller writes to through [`RemoteProcess::stdin`]; dropping it closes stdin.
    Piped,
}

/// One command to run: program and arguments as separate strings.
///
/// ```
/// use codex_remote_core::transport::CommandSpec;
/// let spec = CommandSpec::new("git").arg("status").cwd("~/workspace/app").with_shell_init();
/// assert_eq!(spec.args, vec!["status"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandSpec {
    /// The program, found on the host's `PATH`.
    pub program: String,
    /// Its arguments, each passed byte-exact.
    pub args: Vec<String>,
    /// Extra environment variables (the host's configured env is applied first).
    pub env: BTreeMap<String, String>,
    /// Working directory on the host; `~/` means the host user's home.
    pub cwd: Option<String>,
    /// Run the host's shell init first (e.g. sourcing nvm to put `codex` on `PATH`).
    pub shell_init: bool,
    /// What the command reads.
    pub stdin: Stdin,
    /// Cancel the command when it runs longer than this.
    pub timeout: Option<Duration>,
    /// The name of the fixed script this command runs (`write-atomic`, `prepare-run`, ...; see
    /// [`CommandSpec::named`]), so fakes and logs recognise it without reading the script text.
    pub name: Option<&'static str>,
}

impl CommandSpec {
    /// A command with no arguments.
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            ..Self::default()
        }
    }

    /// A fixed shell script run by `sh -c`, its data passed as positional parameters (`$1`...),
    /// never spliced into the script text.
    ///
    /// ```
    /// use codex_remote_core::transport::CommandSpec;
    /// let spec = CommandSpec::script("printf '%s' \"$1\"", &["it's"]);
    /// assert_eq!(spec.args, vec!["-c", "printf '%s' \"$1\"", "sh", "it's"]);
    /// ```
    pub fn script(body: &str, args: &[&str]) -> Self {
        Self::new("sh")
            .arg("-c")
            .arg(body)
            .arg("sh")
            .args(args.iter().map(|a| a.to_string()))
    }

    /// Names the fixed script this command runs. Every fixed script of the crate carries its
    /// name; a fake transport answers by name, never by comparing script text.
    ///
    /// ```
    /// use codex_remote_core::transport::CommandSpec;
    /// let spec = CommandSpec::script("true", &[]).named("noop");
    /// assert_eq!(spec.name, Some("noop"));
    /// ```
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        self
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(name.into(), value.into());
        self
    }

    /// Sets the working directory.
    pub fn cwd(mut self, dir: impl Into<String>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Runs the host's shell init first.
    pub fn with_shell_init(mut self) -> Self {
        self.shell_init = true;
        self
    }

    /// Feeds these bytes on stdin.
    pub fn stdin_bytes(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Stdin::Bytes(bytes.into());
        self
    }

    /// Gives the caller a pipe to stdin.
    pub fn stdin_piped(mut self) -> Self {
        self.stdin = Stdin::Piped;
        self
    }

    /// Bounds the run time.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Checks that the command can be expressed at all (no NUL bytes, valid env names), so a
    /// transport can refuse bad input before touching the network.
    pub fn validate(&self) -> Result<(), ScriptError> {
        crate::shell::command_script(&crate::shell::ScriptParts {
            program: &self.program,
            args: &self.args,
            env: &self.env,
            cwd: self.cwd.as_deref(),
            shell_init: None,
            announce_pid: false,
        })
        .map(|_| ())
    }

    /// The command as a user would read it (for messages, not for execution).
    pub fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| crate::shell::quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "value")]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal (0 when the signal is not known, as over an SSH mux).
    Signal(i32),
}

impl ExitStatus {
    /// Exit code 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }

    /// The exit code a shell would report (128 + signal for signals).
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Code(code) => code,
            ExitStatus::Signal(signal) => 128 + signal,
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Code(code) => write!(f, "exit code {code}"),
            ExitStatus::Signal(0) => write!(f, "killed by a signal"),
            ExitStatus::Signal(signal) => write!(f, "killed by signal {signal}"),
        }
    }
}

/// Everything a finished command printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// How it ended.
    pub status: ExitStatus,
    /// Its stdout.
    pub stdout: Vec<u8>,
    /// Its stderr.
    pub stderr: Vec<u8>,
}

impl Output {
    /// Stdout as text (lossy).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Stderr as text (lossy).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

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

/// Controls a running command: wait for it or cancel it. Implemented by each backend.
#[async_trait]
pub trait ProcessControl: Send {
    /// Waits for the command to end.
    async fn wait(&mut self) -> Result<ExitStatus, TransportError>;
    /// Terminates the command and its whole process group on the host (TERM, then KILL).
    async fn cancel(&mut self) -> Result<(), TransportError>;
}

/// A command running on a host.
pub struct RemoteProcess {
    /// Its stdin, when the spec asked for [`Stdin::Piped`].
    pub stdin: Option<BoxWriter>,
    /// Its stdout.
    pub stdout: BoxReader,
    /// Its stderr.
    pub stderr: BoxReader,
    control: Box<dyn ProcessControl>,
    command: String,
    deadline: Option<(Instant, Duration)>,
}

/// Which stream a chunk of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// How output is cut into chunks for [`RemoteProcess::stream`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunking {
    /// One chunk per line, newline included (the last line may lack one).
    Lines,
    /// Chunks as they arrive.
    Bytes,
}

/// A piece of a command's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputChunk {
    /// Where it came from.
    pub stream: StreamKind,
    /// The bytes.
    pub data: Vec<u8>,
}

impl RemoteProcess {
    /// Assembles a process from a backend's parts.
    pub fn new(
        command: String,
        stdin: Option<BoxWriter>,
        stdout: BoxReader,
        stderr: BoxReader,
        control: Box<dyn ProcessControl>,
        timeout: Option<Duration>,
    ) -> Self {
        Self {
            stdin,
            stdout,
            stderr,
            control,
            command,
            deadline: timeout.map(|t| (Instant::now() + t, t)),
        }
    }

    /// Waits for the command to end, cancelling it at its timeout.
    ///
    /// Read stdout and stderr first (or use [`RemoteProcess::output`]): a command blocked on a
    /// full pipe never ends.
    pub async fn wait(&mut self) -> Result<ExitStatus, TransportError> {
        self.stdin = None;
        match self.deadline {
            None => self.control.wait().await,
            Some((deadline, after)) => {
                match tokio::time::timeout_at(deadline.into(), self.control.wait()).await {
                    Ok(result) => result,
                    Err(_) => {
                        self.control.cancel().await?;
                        Err(TransportError::TimedOut {
                            command: self.command.clone(),
                            after,
                        })
                    }
                }
            }
        }
    }

    /// Terminates the command and everything it started on the host.
    pub async fn cancel(&mut self) -> Result<(), TransportError> {
        self.control.cancel().await
    }

    /// Collects all output and the exit status. Memory grows with the output: use
    /// [`RemoteProcess::stream`] for large outputs.
    pub async fn output(mut self) -> Result<Output, TransportError> {
        let mut stdout = std::mem::replace(&mut self.stdout, Box::new(tokio::io::empty()));
        let mut stderr = std::mem::replace(&mut self.stderr, Box::new(tokio::io::empty()));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let read_both = async {
            let (a, b) = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
            a.and(b).map(|_| ())
        };
        let read = match self.deadline {
            None => read_both.await,
            Some((deadline, after)) => {
                match tokio::time::timeout_at(deadline.into(), read_both).await {
                    Ok(read) => read,
                    Err(_) => {
                        self.control.cancel().await?;
                        return Err(TransportError::TimedOut {
                            command: self.command.clone(),
                            after,
                        });
                    }
                }
            }
        };
        read.map_err(TransportError::io(format!(
            "reading the output of `{}`",
            self.command
        )))?;
        let status = self.wait().await?;
        Ok(Output {
            status,
            stdout: out,
            stderr: err,
        })
    }

    /// Streams stdout and stderr as chunks through a bounded channel (so a slow reader slows
    /// the command instead of filling memory), then yields the exit status.
    ///
    /// Returns the receiver of chunks and a handle resolving to the exit status once both
    /// streams are drained.
    pub fn stream(
        mut self,
        chunking: Chunking,
    ) -> (
        mpsc::Receiver<OutputChunk>,
        tokio::task::JoinHandle<Result<ExitStatus, TransportError>>,
    ) {
        let (tx, rx) = mpsc::channel(64);
        let stdout = std::mem::replace(&mut self.stdout, Box::new(tokio::io::empty()));
        let stderr = std::mem::replace(&mut self.stderr, Box::new(tokio::io::empty()));
        let handle = tokio::spawn(async move {
            let pump_out = pump(stdout, StreamKind::Stdout, chunking, tx.clone());
            let pump_err = pump(stderr, StreamKind::Stderr, chunking, tx);
            let drained = async {
                let (a, b) = tokio::join!(pump_out, pump_err);
                a.and(b)
            };
            // The deadline covers the output too: a command that keeps its pipes open (every
            // command does, until it ends) is cancelled at the deadline, not when it ends.
            let drained = match self.deadline {
                None => drained.await,
                Some((deadline, after)) => {
                    match tokio::time::timeout_at(deadline.into(), drained).await {
                        Ok(drained) => drained,
                        Err(_) => {
                            self.control.cancel().await?;
                            return Err(TransportError::TimedOut {
                                command: self.command.clone(),
                                after,
                            });
                        }
                    }
                }
            };
            drained.map_err(TransportError::io(format!(
                "reading the output of `{}`",
                self.command
            )))?;
            self.wait().await
        });
        (rx, handle)
    }
}

async fn pump(
    reader: BoxReader,
    stream: StreamKind,
    chunking: Chunking,
    tx: mpsc::Sender<OutputChunk>,
) -> std::io::Result<()> {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    loop {
        let data = match chunking {
            Chunking::Lines => {
                let mut line = Vec::new();
                if reader.read_until(b'\n', &mut line).await? == 0 {
                    return Ok(());
                }
                line
            }
            Chunking::Bytes => {
                let buf = reader.fill_buf().await?;
                if buf.is_empty() {
                    return Ok(());
                }
                let data = buf.to_vec();
                reader.consume(data.len());
                data
            }
        };
        if tx.send(OutputChunk { stream, data }).await.is_err() {
            // The receiver is gone; keep draining so the command is not blocked on a full pipe.
            let mut sink = tokio::io::sink();
            tokio::io::copy(&mut reader, &mut sink).await?;
            return Ok(());
        }
    }
}

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

    /// Releases the connection (closes the SSH master). Further use reconnects.
    async fn close(&self) -> Result<(), TransportError> {
        Ok(())
    }
}

/// Helpers every transport gets.
#[async_trait]
pub trait TransportExt: Transport {
    /// Runs a command to completion and collects its output.
    async fn run(&self, spec: CommandSpec) -> Result<Output, TransportError> {
        self.spawn(spec).await?.output().await
    }

    /// Runs a command and fails unless it exits 0; exit 127 becomes
    /// [`TransportError::CommandNotFound`].
    async fn run_checked(&self, spec: CommandSpec) -> Result<Output, TransportError> {
        let program = spec.program.clone();
        let command = spec.display();
        let output = self.run(spec).await?;
        check_status(self.host(), &program, &command, output)
    }

    /// Runs a command and fails unless it exits 0 (as [`TransportExt::run_checked`]), writing
    /// its stdout to the local file `file` as it arrives, so memory stays bounded whatever its
    /// size. The returned output's `stdout` is empty; its `stderr` keeps the first 1 MiB.
    async fn run_checked_to_file(
        &self,
        spec: CommandSpec,
        file: &std::path::Path,
    ) -> Result<Output, TransportError> {
        use tokio::io::AsyncWriteExt;
        const STDERR_KEPT: usize = 1024 * 1024;
        let program = spec.program.clone();
        let command = spec.display();
        let mut out = tokio::fs::File::create(file)
            .await
            .map_err(TransportError::io(format!("creating {}", file.display())))?;
        let (mut chunks, status) = self.spawn(spec).await?.stream(Chunking::Bytes);
        let mut stderr = Vec::new();
        let mut write_error = None;
        while let Some(chunk) = chunks.recv().await {
            match chunk.stream {
                StreamKind::Stdout if write_error.is_none() => {
                    if let Err(e) = out.write_all(&chunk.data).await {
                        // Keep draining: the command must not block on a full pipe.
                        write_error = Some(e);
                    }
                }
                StreamKind::Stdout => {}
                StreamKind::Stderr => {
                    let room = STDERR_KEPT.saturating_sub(stderr.len());
                    stderr.extend_from_slice(&chunk.data[..chunk.data.len().min(room)]);
                }
            }
        }
        let status = status.await.map_err(|e| {
            TransportError::io(format!("running `{command}`"))(std::io::Error::other(e))
        })??;
        if let Some(e) = write_error {
            return Err(TransportError::io(format!("writing {}", file.display()))(e));
        }
        out.flush()
            .await
            .and(out.sync_all().await)
            .map_err(TransportError::io(format!("writing {}", file.display())))?;
        check_status(
            self.host(),
            &program,
            &command,
            Output {
                status,
                stdout: Vec::new(),
                stderr,
            },
        )
    }

    /// Reads a file on the host. `~/` at the start means the host user's home.
    async fn read_file(&self, path: &str) -> Result<Vec<u8>, TransportError> {
        let (cwd, relative) = split_home(path);
        let mut spec = CommandSpec::new("cat").arg("--").arg(relative);
        spec.cwd = cwd;
        Ok(self.run_checked(spec).await?.stdout)
    }

    /// Writes a file on the host atomically: the bytes go to a temporary file beside it, which
    /// is then renamed over the target, so readers see the old file or the new one, never half.
    /// Missing parent directories are created.
    async fn write_file_atomic(&self, path: &str, contents: &[u8]) -> Result<(), TransportError> {
        let (cwd, relative) = split_home(path);
        let mut spec = CommandSpec::script(WRITE_ATOMIC_SCRIPT, &[relative])
            .named(script_names::WRITE_ATOMIC)
            .stdin_bytes(contents.to_vec());
        spec.cwd = cwd;
        self.run_checked(spec).await.map(|_| ())
    }

    /// Checks that the host answers, returning the round-trip time of a trivial command.
    async fn ping(&self) -> Result<Duration, TransportError> {
        let started = Instant::now();
        self.run_checked(CommandSpec::new("true")).await?;
        Ok(started.elapsed())
    }
}

impl<T: Transport + ?Sized> TransportExt for T {}

/// The names of the crate's fixed scripts ([`CommandSpec::name`]), with what each one's
/// positional arguments (after `sh -c BODY sh`) and stdin are, so a fake host can play them.
pub mod script_names {
    /// Writes stdin to `$1` atomically.
    pub const WRITE_ATOMIC: &str = "write-atomic";
    /// Replaces the mirror `$1` with the tar archive on stdin (lock `$2`).
    pub const TAR_PUSH: &str = "tar-push";
    /// Prepares a run tree: mirror `$1`, lock `$2`, trees dir `$3`, project name `$4`, run id
    /// `$5`, excludes after. Leases the lowest free slot `<trees>/<n>` (`<n>.lease/run` holds
    /// the run id), moves `<trees>/<n>/<project>` to the baseline and prints `<n> <baseline>`.
    pub const PREPARE_RUN: &str = "prepare-run";
    /// Prints the run's change: tree `$1`, baseline `$2`, mirror `$3`, slot dir `$4`, run id
    /// `$5` (stderr: `codex-remote-outside: <status line>` per file changed in the mirror); or,
    /// for a run prepared before pooling, run dir `$1`, baseline `$2`.
    pub const RETRIEVE_PATCH: &str = "retrieve-patch";
    /// Returns a run's tree to the pool: mirror `$1`, trees dir `$2`, run id `$3`, agent dir
    /// `$4`, pre-pooling run dir `$5` (removed).
    pub const REMOVE_RUN: &str = "remove-run";
    /// Removes the pool's idle trees: trees dir `$1`, lock `$2`, mirror `$3`; prints the slots.
    pub const PRUNE_TREES: &str = "prune-trees";
    /// Launches the agent detached: agent dir `$1`, agent command `$2`; prints its pid.
    pub const LAUNCH_AGENT: &str = "launch-agent";
    /// Follows the agent's events: agent dir `$1`, byte offset `$2`.
    pub const FOLLOW_AGENT: &str = "follow-agent";
    /// Reports the agent's state: agent dir `$1`.
    pub const PROBE_AGENT: &str = "probe-agent";
    /// Ends a process group: pid `$1`.
    pub const KILL_GROUP: &str = "kill-group";
    /// Ends every process of an agent (its group, its unit, every process carrying its
    /// marker): agent dir `$1`.
    pub const CANCEL_AGENT: &str = "cancel-agent";
    /// Writes 64 KiB beside the agent's files and prints what the host says if it cannot (a
    /// full disk): agent dir `$1`.
    pub const DISK_CHECK: &str = "disk-check";
    /// Reports codex's version and login, the set env names and Codex's config: codex `$1`,
    /// config size limit `$2` (see `prerequisites`).
    pub const PREREQUISITE_PROBE: &str = "prerequisite-probe";
}

/// Writes stdin to "$1" through a temporary sibling and a rename. Constant text: the path comes
/// in as a positional argument, never spliced into the script.
pub(crate) const WRITE_ATOMIC_SCRIPT: &str = r#"set -e
target=$1
case $target in */*) dir=${target%/*}; [ -n "$dir" ] || dir=/ ;; *) dir=. ;; esac
mkdir -p -- "$dir"
tmp=$(mktemp -- "$dir/.codex-remote-tmp.XXXXXXXX")
trap 'rm -f -- "$tmp"' EXIT
cat > "$tmp"
if [ -e "$target" ]; then chmod --reference="$target" -- "$tmp" 2>/dev/null || true; fi
mv -f -- "$tmp" "$target"
trap - EXIT
"#;

/// Writes the host's `env` as `export` lines into a fresh 0600 file in the host's state
/// directory (`<workspace>/.codex-remote/env.<random>`), sent through stdin, for a command whose
/// own stdin is not ours to use (a TTY session): it reads and removes the file (see
/// [`crate::shell::command_script_with_env_file`]). `None` when the host has no env.
pub async fn stage_env_file(transport: &dyn Transport) -> Result<Option<String>, TransportError> {
    let host = transport.host();
    if host.env.is_empty() {
        return Ok(None);
    }
    let exports = crate::shell::export_lines(&host.env)?;
    let file = format!(
        "{}/.codex-remote/env.{:016x}",
        host.workspace.trim_end_matches('/'),
        rand::random::<u64>()
    );
    transport
        .write_file_atomic(&file, exports.as_bytes())
        .await?;
    Ok(Some(file))
}

/// Signals a remote process group: TERM, up to 2 s for it to go, then KILL and up to 2 s more,
/// so that when it returns the group is gone. Constant script; the pid arrives as an argument.
/// `kill -s SIG --` is the form dash's builtin also accepts.
pub(crate) const KILL_GROUP_SCRIPT: &str = r#"pg=$1
gone() { ! kill -s 0 -- "-$pg" 2>/dev/null; }
kill -s TERM -- "-$pg" 2>/dev/null || exit 0
i=0
while ! gone && [ "$i" -lt 20 ]; do sleep 0.1; i=$((i + 1)); done
gone && exit 0
kill -s KILL -- "-$pg" 2>/dev/null
i=0
while ! gone && [ "$i" -lt 20 ]; do sleep 0.1; i=$((i + 1)); done
"#;

/// Splits `~/rel` into (`~`, `rel`) so the home directory is expanded through the working
/// directory rather than by quoting tricks.
fn split_home(path: &str) -> (Option<String>, &str) {
    match path.strip_prefix("~/") {
        Some(rest) => (Some("~".to_string()), rest),
        None => (None, path),
    }
}

/// Turns a non-zero exit into an error.
pub(crate) fn check_status(
    host: &HostSpec,
    program: &str,
    command: &str,
    output: Output,
) -> Result<Output, TransportError> {
    match output.status {
        ExitStatus::Code(0) => Ok(output),
        ExitStatus::Code(127) => Err(TransportError::CommandNotFound {
            host: host.name.clone(),
            program: program.to_string(),
            hint: not_found_hint(host, program),
        }),
        status => Err(TransportError::CommandFailed {
            host: host.name.clone(),
            command: host.redact(command),
            status,
            stderr: host.redact(output.stderr_text().trim()),
        }),
    }
}

/// Advice for a program that is not on the host's `PATH`.
pub(crate) fn not_found_hint(host: &HostSpec, program: &str) -> String {
    match &host.shell_init {
        None => format!(
            "install it on `{}`, or if it comes from nvm set `shell_init = \"source ~/.config/nvm/nvm.sh\"` under [hosts.{}]",
            host.name, host.name
        ),
        Some(init) => format!("install `{program}` on `{}`, or check that the shell init `{init}` puts it on PATH", host.name),
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
