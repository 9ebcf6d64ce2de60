//! Running the agent: the [`Executor`] trait and [`CodexExecutor`], which runs the real Codex CLI
//! non-interactively in a run's tree and streams its events.
//!
//! `codex exec --json --model <model> --cd <dir> --sandbox workspace-write -` runs after the host's
//! shell init (which typically puts `codex` on `PATH`), with the instruction on **stdin**: never
//! in argv, never in a shell string. Its stdout is JSON Lines, parsed into [`CodexEvent`]s as they
//! arrive; the raw lines travel along so they can be recorded verbatim.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::events::CodexEvent;
use crate::model::ModelChoice;
use crate::transport::{ExitStatus, Transport, TransportError};

// Split by job: failures, the outcome of a run's events, the Codex CLI executor and its host
// scripts.
mod codex;
mod failure;
mod lines;
mod outcome;
mod scripts;

pub use codex::*;
pub use failure::*;
pub use lines::MAX_EVENT_LINE;
pub(crate) use lines::{next_line, oversized_line, LogLine};
pub(crate) use outcome::*;
use scripts::*;

/// What to run. Serialisable (without the instruction, which is kept as its own file) so a run
/// can record it and relaunch exactly the same agent later.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ExecRequest {
    /// The run's tree on the host.
    pub dir: String,
    /// The instruction (sent on stdin).
    #[serde(skip)]
    pub instruction: String,
    /// The model.
    pub model: ModelChoice,
    /// Sandbox mode (`workspace-write` by default).
    pub sandbox: String,
    /// Extra `codex exec` arguments (`-c key=value`, `--profile`, ...).
    pub extra_args: Vec<String>,
    /// Cancel the agent after this long.
    pub timeout: Option<Duration>,
    /// How long the host-side supervisor may keep the run parked at usage limits, in all
    /// (seconds; `None`: the built-in default).
    #[serde(default)]
    pub max_wait_secs: Option<u64>,
    /// Resume this Codex thread instead of starting afresh (a relaunch after the agent was
    /// interrupted); not recorded: it belongs to one attempt.
    #[serde(skip)]
    pub resume_thread: Option<String>,
    /// End the run when the agent shows no progress (no event) for this long; `None` never.
    /// Records made before this setting existed get the default.
    #[serde(default = "default_stall_timeout")]
    pub stall_timeout: Option<Duration>,
}

/// The default `stall_timeout`: 10 minutes.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(600);

fn default_stall_timeout() -> Option<Duration> {
    Some(DEFAULT_STALL_TIMEOUT)
}

/// One line of the agent's output: verbatim and parsed.
#[derive(Debug, Clone)]
pub struct ExecEvent {
    /// The line as printed (without its newline).
    pub raw: String,
    /// What it means.
    pub event: CodexEvent,
    /// How many bytes of the host's event log it stands for, its newline included (a line
    /// longer than [`MAX_EVENT_LINE`] is skipped: `raw` is then codex-remote's
    /// `codex-remote.oversized_event` line instead, and a redacted line is shorter or longer
    /// than it was), so a follow resumes at the right byte.
    pub log_bytes: u64,
}

/// What is known about an agent on the host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AgentState {
    /// Never launched (no pid recorded).
    NotStarted,
    /// Its process is alive.
    Running {
        /// The supervisor's pid (leader of the agent's process group).
        pid: u32,
    },
    /// Parked at a usage limit: the supervisor waits on the host and resumes the thread at
    /// `resume_at`.
    Waiting {
        /// The supervisor's pid.
        pid: u32,
        /// When it resumes (Unix seconds).
        resume_at: u64,
        /// The thread it resumes (checked to be a plain id).
        thread_id: Option<String>,
    },
    /// It finished with this status.
    Finished {
        /// Codex's exit code.
        code: i32,
    },
    /// Its process is gone without recording a status (killed, host rebooted).
    Vanished,
}

/// How a follow ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowEnd {
    /// The agent's exit status, when it finished; `None` when the stream stopped first.
    pub status: Option<ExitStatus>,
    /// The agent's process is gone without a recorded status.
    pub vanished: bool,
    /// The end of the agent's stderr.
    pub stderr: String,
}

/// Runs an agent on a host, detached from the connection: launched once, followed any number of
/// times (each follow resumes from a byte offset of the agent's event log), cancelled.
#[async_trait]
pub trait Executor: Send + Sync {
    /// Starts the agent in its own process group on the host, writing its events to
    /// `agent_dir/events.jsonl`. Refuses while an agent of that directory is alive.
    async fn launch(
        &self,
        transport: &dyn Transport,
        agent_dir: &str,
        request: &ExecRequest,
    ) -> Result<u32, TransportError>;

    /// Streams the agent's events from byte `offset` until it exits (or the stream breaks),
    /// sending each complete line to `events`.
    async fn follow(
        &self,
        transport: &dyn Transport,
        agent_dir: &str,
        offset: u64,
        events: mpsc::Sender<ExecEvent>,
    ) -> Result<FollowEnd, TransportError>;

    /// What the agent is doing.
    async fn probe(
        &self,
        transport: &dyn Transport,
        agent_dir: &str,
    ) -> Result<AgentState, TransportError>;

    /// Ends the agent and everything it started.
    async fn cancel(
        &self,
        transport: &dyn Transport,
        agent_dir: &str,
    ) -> Result<(), TransportError>;
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
        // A port or a path that holds the digits is no status (the scripted server's port was
        // 44429 once, and a 401 read as a rate limit).
        assert!(matches!(
            ExecFailure::from_message(
                "unexpected status 401 Unauthorized: bad key, url: http://127.0.0.1:44429/v1/responses"
            ),
            ExecFailure::AuthExpired { .. }
        ));
        assert!(matches!(
            ExecFailure::from_message("stream error at http://h:4290/429/x.429"),
            ExecFailure::TurnFailed { .. }
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
    fn usage_limits_are_told_from_rate_limits() {
        let limit = "You’ve hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro), visit https://chatgpt.com/settings/usage to purchase more credits or try again at 9:42 AM.";
        assert!(matches!(
            ExecFailure::from_message(limit),
            ExecFailure::UsageLimited {
                resume_at: None,
                ..
            }
        ));
        assert!(matches!(
            ExecFailure::from_message("rate limit exceeded: Please try again in 1.5s."),
            ExecFailure::RateLimited { .. }
        ));
    }

    #[test]
    fn stated_delays_are_read_and_bounded() {
        let secs = |m: &str| stated_delay(m).map(|d| d.as_secs_f64());
        assert_eq!(
            secs("Rate limit reached. Please try again in 1.5s. Visit ..."),
            Some(1.5)
        );
        assert_eq!(secs("try again in 250ms"), Some(0.25));
        assert_eq!(secs("Please try again in 1m30s."), Some(90.0));
        assert_eq!(secs("retry after 3 seconds"), Some(3.0));
        assert_eq!(secs("Retry-After: 2"), Some(2.0));
        assert_eq!(
            secs("exceeded retry limit, last status: 429 Too Many Requests"),
            None
        );
        assert_eq!(secs("try again at 9:42 AM."), None);
        assert_eq!(secs("try again in soon"), None);
        // Hostile figures: never a panic, never more than an hour.
        assert_eq!(secs("try again in 1e300s"), None);
        assert_eq!(secs("try again in 1e300"), Some(3600.0));
        assert_eq!(secs("try again in 99999999999h"), Some(3600.0));
        assert_eq!(secs("try again in NaN"), None);
    }

    /// Runs the resume-at rule with a session dir and an event log; returns (epoch, source).
    fn resume_at(session: Option<&str>, failed: &str) -> (i64, String) {
        let dir = tempfile::tempdir().unwrap();
        let thread = "01a21215-4f74-7383-9b55-d58d986f9953";
        if let Some(line) = session {
            let sessions = dir.path().join("home/sessions/2026/11/25");
            std::fs::create_dir_all(&sessions).unwrap();
            std::fs::write(
                sessions.join(format!("rollout-2026-11-25T09-41-56-{thread}.jsonl")),
                format!("{{\"type\":\"session_meta\"}}\n{line}\n"),
            )
            .unwrap();
        }
        let log = dir.path().join("events.jsonl");
        std::fs::write(
            &log,
            format!("{{\"type\":\"thread.started\",\"thread_id\":\"{thread}\"}}\n{{\"type\":\"turn.failed\",\"error\":{{\"message\":\"{failed}\"}}}}\n"),
        )
        .unwrap();
        let out = std::process::Command::new("sh")
            .args(["-c", RESUME_AT_SCRIPT])
            .env("CODEX_HOME", dir.path().join("home"))
            .env("CODEX_REMOTE_LOG", &log)
            .env("CODEX_REMOTE_FROM", "0")
            .env("CODEX_REMOTE_THREAD", thread)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let (at, source) = text
            .trim()
            .strip_prefix("codex-remote-resume-at: ")
            .unwrap()
            .split_once(' ')
            .unwrap();
        (at.parse().unwrap(), source.to_string())
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn date(text: &str) -> i64 {
        let out = std::process::Command::new("date")
            .args(["-d", text, "+%s"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    #[test]
    fn resume_at_prefers_the_session_snapshot_of_an_exhausted_window() {
        let reset = now() + 120;
        let weekly = now() + 7 * 86400;
        let snapshot = format!(
            r#"{{"type":"event_msg","payload":{{"type":"token_count","info":null,"rate_limits":{{"limit_id":"codex","primary":{{"used_percent":100.0,"window_minutes":300,"resets_at":{reset}}},"secondary":{{"used_percent":40.0,"window_minutes":10080,"resets_at":{weekly}}}}}}}}}"#
        );
        let message = "You hit your usage limit. try again at 9:42 AM.";
        assert_eq!(
            resume_at(Some(&snapshot), message),
            (reset, "session".into())
        );
        // A window not at 100 % says nothing about this limit; a reset in the past neither.
        let half = snapshot.replace("100.0", "50.0");
        assert_eq!(resume_at(Some(&half), "no time here").1, "fallback");
        let past = snapshot.replace(&reset.to_string(), "1000");
        assert_eq!(resume_at(Some(&past), "no time here").1, "fallback");
    }

    #[test]
    fn host_given_thread_ids_and_resets_are_checked() {
        assert!(is_thread_id("01a21215-4f74-7383-9b55-d58d986f9953"));
        for hostile in ["", "a b", "$(reboot)", "x;y", "../x", "*", &"a".repeat(65)] {
            assert!(!is_thread_id(hostile), "{hostile}");
        }
        // A session file whose reset is not a number is not believed.
        let hostile = r#"{"type":"event_msg","payload":{"type":"token_count","rate_limits":{"primary":{"used_percent":100.0,"window_minutes":300,"resets_at":"$(touch /tmp/pwned)"}}}}"#;
        assert_eq!(resume_at(Some(hostile), "no time here").1, "fallback");
    }

    #[test]
    fn the_sandboxes_of_a_thread_are_read_from_its_session_file() {
        let sandboxes = |lines: &[&str]| {
            let dir = tempfile::tempdir().unwrap();
            let thread = "01a2-beef";
            let sessions = dir.path().join("sessions/2026/11/25");
            std::fs::create_dir_all(&sessions).unwrap();
            std::fs::write(
                sessions.join(format!("rollout-x-{thread}.jsonl")),
                lines.join("\n") + "\n",
            )
            .unwrap();
            let out = std::process::Command::new("sh")
                .args(["-c", RESUME_AT_SCRIPT])
                .env("CODEX_HOME", dir.path())
                .env("CODEX_REMOTE_THREAD", thread)
                .env("CODEX_REMOTE_SANDBOXES", "1")
                .output()
                .unwrap();
            String::from_utf8(out.stdout)
                .unwrap()
                .trim()
                .strip_prefix("codex-remote-sandboxes: ")
                .unwrap()
                .to_string()
        };
        let turn = |mode: &str| {
            format!(
                r#"{{"type":"turn_context","payload":{{"cwd":"/w","approval_policy":"never","sandbox_policy":{{"type":"{mode}","network_access":false}},"model":"m"}}}}"#
            )
        };
        let (ww, ro) = (turn("workspace-write"), turn("read-only"));
        assert_eq!(
            sandboxes(&[&ww, r#"{"type":"event_msg"}"#, &ww]),
            "workspace-write"
        );
        assert_eq!(sandboxes(&[&ww, &ro]), "read-only,workspace-write");
    }

    #[test]
    fn a_policy_change_after_a_resume_fails_the_run() {
        let mut builder = OutcomeBuilder::default();
        for line in [
            r#"{"type":"codex-remote.resumed","thread_id":"t","reason":"usage-limit"}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":1,"output_tokens":1}}"#,
            r#"{"type":"codex-remote.policy_changed","expected":"workspace-write","seen":"danger-full-access,workspace-write"}"#,
        ] {
            builder.observe(&CodexEvent::parse(line));
        }
        let outcome = builder.finish(ExitStatus::Code(97), "");
        assert!(
            matches!(&outcome.failure, Some(ExecFailure::TurnFailed { message }) if message.contains("danger-full-access")),
            "{outcome:?}"
        );
    }

    #[test]
    fn resume_at_reads_the_message_time_in_the_host_zone() {
        let (at, source) = resume_at(
            None,
            "You hit your usage limit. Visit x or try again at 9:42 AM.",
        );
        assert_eq!(source, "message");
        let mut expected = date("9:42 AM") + 60;
        if expected <= now() {
            expected += 86400;
        }
        assert_eq!(at, expected);
        let (at, source) = resume_at(
            None,
            "You hit your usage limit. Visit x or try again at Sep 15th, 2030 7:59 PM.",
        );
        assert_eq!(
            (at, source.as_str()),
            (date("Sep 15, 2030 7:59 PM") + 60, "message")
        );
        let (at, source) = resume_at(None, "You hit your usage limit. Try again later.");
        assert_eq!(source, "fallback");
        assert!((at - now() - 600).abs() <= 2, "{at}");
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
            max_wait_secs: None,
            resume_thread: None,
            stall_timeout: None,
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
                "sandbox_workspace_write.writable_roots=[\".git\"]",
                "-c",
                "model_reasoning_effort=\"high\"",
                "--skip-git-repo-check",
                "-"
            ]
        );
        assert!(!spec.args.iter().any(|a| a.contains("rm -rf")));
        assert_eq!(
            spec.stdin,
            crate::transport::Stdin::Bytes(request.instruction.clone().into_bytes())
        );
        assert!(spec.shell_init);
        assert_eq!(spec.cwd.as_deref(), Some("~/w/runs/r1"));

        // The resume pins what `exec resume` cannot take as flags, and runs from the same dir.
        let mut request = request;
        request.extra_args = [
            "--sandbox",
            "read-only",
            "--cd",
            "x",
            "--profile=p",
            "--skip-git-repo-check",
        ]
        .map(String::from)
        .to_vec();
        let spec = CodexExecutor::resume_command("codex", &request);
        assert_eq!(
            spec.args,
            [
                "exec",
                "resume",
                "--json",
                "-m",
                "gpt-5.3-codex",
                "-c",
                "sandbox_workspace_write.writable_roots=[\".git\"]",
                "-c",
                "model_reasoning_effort=\"high\"",
                "-c",
                "sandbox_mode=\"read-only\"",
                "--skip-git-repo-check",
                "-c",
                "sandbox_mode=\"workspace-write\"",
            ]
        );
        assert_eq!(spec.cwd.as_deref(), Some("~/w/runs/r1"));
    }
}
