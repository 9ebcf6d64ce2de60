//! Running the agent: the [`Executor`] trait and [`CodexExecutor`], which runs the real Codex CLI
//! non-interactively in a run's tree and streams its events.
//!
//! `codex exec --json --model <model> --cd <dir> --sandbox workspace-write -` runs after the host's
//! shell init (which typically puts `codex` on `PATH`), with the instruction on **stdin**: never
//! in argv, never in a shell string. Its stdout is JSON Lines, parsed into [`CodexEvent`]s as they
//! arrive; the raw lines travel along so they can be recorded verbatim.

use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use crate::events::{CodexEvent, ItemKind, Usage};
use crate::model::ModelChoice;
use crate::transport::{CommandSpec, ExitStatus, Transport, TransportError};

/// What to run.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    /// The run's tree on the host.
    pub dir: String,
    /// The instruction (sent on stdin).
    pub instruction: String,
    /// The model.
    pub model: ModelChoice,
    /// Sandbox mode (`workspace-write` by default).
    pub sandbox: String,
    /// Extra `codex exec` arguments (`-c key=value`, `--profile`, ...).
    pub extra_args: Vec<String>,
    /// Cancel the agent after this long.
    pub timeout: Option<Duration>,
}

/// One line of the agent's output: verbatim and parsed.
#[derive(Debug, Clone)]
pub struct ExecEvent {
    /// The line as printed (without its newline).
    pub raw: String,
    /// What it means.
    pub event: CodexEvent,
}

/// Why an agent run failed, classified so the caller can act (retry, or tell the user the fix).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ExecFailure {
    /// The model provider answered 429 Too Many Requests (after Codex's own retries).
    RateLimited {
        /// Codex's message.
        message: String,
    },
    /// Authentication was refused (401/403): not logged in, or the login expired.
    AuthExpired {
        /// Codex's message.
        message: String,
    },
    /// `codex` is not on the host's PATH.
    CodexNotFound {
        /// What the shell said.
        message: String,
    },
    /// The run's directory does not exist on the host.
    WorkspaceMissing {
        /// What the shell said.
        message: String,
    },
    /// The turn failed for another reason.
    TurnFailed {
        /// Codex's message.
        message: String,
    },
    /// Codex exited unsuccessfully without saying why.
    Exited {
        /// Its exit status.
        code: i32,
        /// The end of its stderr.
        stderr: String,
    },
}

impl ExecFailure {
    /// Classifies a failed turn's message.
    pub fn from_message(message: &str) -> ExecFailure {
        let lower = message.to_ascii_lowercase();
        if lower.contains("429")
            || lower.contains("too many requests")
            || lower.contains("rate limit")
            || lower.contains("usage limit")
        {
            ExecFailure::RateLimited {
                message: message.to_string(),
            }
        } else if lower.contains("401")
            || lower.contains("403")
            || lower.contains("unauthorized")
            || lower.contains("not logged in")
            || lower.contains("token expired")
        {
            ExecFailure::AuthExpired {
                message: message.to_string(),
            }
        } else {
            ExecFailure::TurnFailed {
                message: message.to_string(),
            }
        }
    }
}

/// How an agent run ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExecOutcome {
    /// Codex's exit status.
    pub status: ExitStatus,
    /// The thread id (to resume).
    pub thread_id: Option<String>,
    /// Tokens used over all turns.
    pub usage: Usage,
    /// The agent's last message.
    pub last_message: Option<String>,
    /// Files the agent reported changing (its own `file_change` items).
    pub files_reported: Vec<String>,
    /// Why it failed, if it did.
    pub failure: Option<ExecFailure>,
}

/// Runs an agent on a host.
#[async_trait]
pub trait Executor: Send + Sync {
    /// Runs the agent to completion, sending every event to `events` as it arrives.
    async fn execute(
        &self,
        transport: &dyn Transport,
        request: &ExecRequest,
        events: mpsc::Sender<ExecEvent>,
    ) -> Result<ExecOutcome, TransportError>;
}

/// The real Codex CLI.
#[derive(Debug, Clone, Default)]
pub struct CodexExecutor;

impl CodexExecutor {
    /// The command that runs Codex for `request` on `codex` (the host's binary).
    pub fn command(codex: &str, request: &ExecRequest) -> CommandSpec {
        let mut spec = CommandSpec::new(codex)
            .args([
                "exec",
                "--json",
                "--model",
                &request.model.model,
                "--cd",
                ".",
            ])
            .args(["--sandbox", &request.sandbox]);
        if let Some(effort) = &request.model.reasoning_effort {
            spec = spec
                .arg("-c")
                .arg(format!("model_reasoning_effort=\"{effort}\""));
        }
        spec = spec.args(request.extra_args.iter().cloned()).arg("-");
        spec.cwd = Some(request.dir.clone());
        spec.shell_init = true;
        spec.stdin = crate::transport::Stdin::Bytes(request.instruction.clone().into_bytes());
        spec
    }
}

#[async_trait]
impl Executor for CodexExecutor {
    async fn execute(
        &self,
        transport: &dyn Transport,
        request: &ExecRequest,
        events: mpsc::Sender<ExecEvent>,
    ) -> Result<ExecOutcome, TransportError> {
        let spec = Self::command(&transport.host().codex, request);
        let mut process = transport.spawn(spec).await?;
        let stdout = std::mem::replace(&mut process.stdout, Box::new(tokio::io::empty()));
        let mut stderr = std::mem::replace(&mut process.stderr, Box::new(tokio::io::empty()));
        let collect_stderr = tokio::spawn(async move {
            let mut all = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut stderr, &mut all).await;
            String::from_utf8_lossy(&all).into_owned()
        });
        let mut outcome = ExecOutcome {
            status: ExitStatus::Code(0),
            thread_id: None,
            usage: Usage::default(),
            last_message: None,
            files_reported: Vec::new(),
            failure: None,
        };
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let read_all = async {
            while let Some(line) = lines
                .next_line()
                .await
                .map_err(TransportError::io("reading Codex's output"))?
            {
                if line.trim().is_empty() {
                    continue;
                }
                let event = CodexEvent::parse(&line);
                match &event {
                    CodexEvent::ThreadStarted { thread_id } => {
                        outcome.thread_id = Some(thread_id.clone())
                    }
                    CodexEvent::TurnCompleted { usage } => outcome.usage.add(usage),
                    CodexEvent::TurnFailed { message } => {
                        outcome.failure = Some(ExecFailure::from_message(message))
                    }
                    CodexEvent::ItemCompleted { item } => match &item.kind {
                        ItemKind::AgentMessage { text } => {
                            outcome.last_message = Some(text.clone())
                        }
                        ItemKind::FileChange { changes, .. } => outcome
                            .files_reported
                            .extend(changes.iter().map(|c| c.path.clone())),
                        _ => {}
                    },
                    _ => {}
                }
                // A closed receiver just means nobody is watching; keep draining.
                let _ = events.send(ExecEvent { raw: line, event }).await;
            }
            Ok::<_, TransportError>(())
        };
        match request.timeout {
            None => read_all.await?,
            Some(after) => {
                if tokio::time::timeout(after, read_all).await.is_err() {
                    process.cancel().await?;
                    return Err(TransportError::TimedOut {
                        command: "codex exec".into(),
                        after,
                    });
                }
            }
        }
        outcome.status = process.wait().await?;
        let stderr = collect_stderr.await.unwrap_or_default();
        if !outcome.status.success() && outcome.failure.is_none() {
            outcome.failure = Some(classify_exit(outcome.status, &stderr));
        }
        Ok(outcome)
    }
}

/// Classifies an exit without a `turn.failed` event.
fn classify_exit(status: ExitStatus, stderr: &str) -> ExecFailure {
    let tail: String = stderr
        .trim()
        .lines()
        .rev()
        .take(5)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    let lower = stderr.to_ascii_lowercase();
    if status == ExitStatus::Code(127) || lower.contains("command not found") {
        ExecFailure::CodexNotFound { message: tail }
    } else if status == ExitStatus::Code(1)
        && (lower.contains("can't cd")
            || lower.contains("no such file or directory") && lower.contains("cd"))
    {
        ExecFailure::WorkspaceMissing { message: tail }
    } else if lower.contains("not logged in") || lower.contains("401") {
        ExecFailure::AuthExpired { message: tail }
    } else {
        ExecFailure::Exited {
            code: status.code(),
            stderr: tail,
        }
    }
}

/// The delay before retry number `attempt` (0-based): exponential from `initial`, capped at
/// `max`, with jitter in [50%, 100%] so that parallel runs do not retry in lockstep.
pub fn backoff(attempt: u32, initial: Duration, max: Duration) -> Duration {
    let exponential = initial
        .saturating_mul(2u32.saturating_pow(attempt.min(16)))
        .min(max);
    let jitter: f64 = 0.5 + rand::random::<f64>() * 0.5;
    exponential.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelSource;

    #[test]
    fn classifies_codex_messages() {
        assert!(matches!(
            ExecFailure::from_message("exceeded retry limit, last status: 429 Too Many Requests"),
            ExecFailure::RateLimited { .. }
        ));
        assert!(matches!(
            ExecFailure::from_message("unexpected status 401 Unauthorized: bad key"),
            ExecFailure::AuthExpired { .. }
        ));
        assert!(matches!(
            ExecFailure::from_message("stream disconnected"),
            ExecFailure::TurnFailed { .. }
        ));
        assert!(matches!(
            classify_exit(ExitStatus::Code(127), "sh: 1: exec: codex: not found"),
            ExecFailure::CodexNotFound { .. }
        ));
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        let (initial, max) = (Duration::from_secs(1), Duration::from_secs(10));
        for attempt in 0..8 {
            let d = backoff(attempt, initial, max);
            let ceiling = initial.saturating_mul(1 << attempt).min(max);
            assert!(d <= ceiling && d >= ceiling / 2, "attempt {attempt}: {d:?}");
        }
    }

    #[test]
    fn the_instruction_goes_on_stdin_never_in_argv() {
        let request = ExecRequest {
            dir: "~/w/runs/r1".into(),
            instruction: "TASK: '; rm -rf / #".into(),
            model: ModelChoice {
                model: "gpt-5.3-codex".into(),
                source: ModelSource::Default,
                reasoning_effort: Some("high".into()),
            },
            sandbox: "workspace-write".into(),
            extra_args: vec!["--skip-git-repo-check".into()],
            timeout: None,
        };
        let spec = CodexExecutor::command("codex", &request);
        assert_eq!(
            spec.args,
            [
                "exec",
                "--json",
                "--model",
                "gpt-5.3-codex",
                "--cd",
                ".",
                "--sandbox",
                "workspace-write",
                "-c",
                "model_reasoning_effort=\"high\"",
                "--skip-git-repo-check",
                "-"
            ]
        );
        assert!(!spec.args.iter().any(|a| a.contains("rm -rf")));
        assert_eq!(
            spec.stdin,
            crate::transport::Stdin::Bytes(request.instruction.into_bytes())
        );
        assert!(spec.shell_init);
        assert_eq!(spec.cwd.as_deref(), Some("~/w/runs/r1"));
    }
}
