//! A running command: [`RemoteProcess`] with its streams, exit status and cancellation, and
//! collected [`Output`].

use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::sync::mpsc;

use super::*;

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

pub(super) async fn pump(
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
