//! [`CodexExecutor`]: the real Codex CLI, launched detached under a supervisor on the host,
//! followed, probed and cancelled through the fixed scripts in `scripts.rs`.

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::events::CodexEvent;
use crate::transport::{script_names, CommandSpec, ExitStatus, Transport, TransportError};

use super::lines::{self, LogLine, MAX_EVENT_LINE};
use super::*;

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
            .args(["--sandbox", &request.sandbox])
            // The run tree's own git directory: writable, so the agent's git commands work.
            .args(["-c", crate::workspace::TREE_GIT_WRITABLE]);
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

    /// The command that resumes a thread of `request`'s agent: `codex exec resume --json -m
    /// MODEL`, the run tree's writable `.git` (as [`Self::command`]), the reasoning effort, the request's extra arguments (translated where `exec
    /// resume` lacks the option: `--sandbox M` becomes `-c sandbox_mode="M"`; `--cd` and
    /// `--profile` are dropped), and last `-c sandbox_mode="MODE"` (`exec resume` has no `-s`
    /// and no `-C`: the sandbox is pinned by config, last so it wins, and it runs from the run's
    /// directory). The thread id and `-` (prompt on stdin) come after, on the host.
    pub fn resume_command(codex: &str, request: &ExecRequest) -> CommandSpec {
        let mut spec = CommandSpec::new(codex)
            .args(["exec", "resume", "--json", "-m", &request.model.model])
            // As for the first launch: the run tree's own git directory stays writable.
            .args(["-c", crate::workspace::TREE_GIT_WRITABLE]);
        if let Some(effort) = &request.model.reasoning_effort {
            spec = spec
                .arg("-c")
                .arg(format!("model_reasoning_effort={}", toml_string(effort)));
        }
        let mut extra = request.extra_args.iter();
        while let Some(arg) = extra.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) if name.starts_with("--") => (name, Some(value.to_string())),
                _ => (arg.as_str(), None),
            };
            match name {
                "-s" | "--sandbox" => {
                    if let Some(mode) = inline.or_else(|| extra.next().cloned()) {
                        spec = spec
                            .arg("-c")
                            .arg(format!("sandbox_mode={}", toml_string(&mode)));
                    }
                }
                "-C" | "--cd" | "-p" | "--profile" => {
                    if inline.is_none() {
                        extra.next();
                    }
                }
                _ => spec = spec.arg(arg.clone()),
            }
        }
        // Last, so it wins over any `-c sandbox_mode` before it, as `--sandbox` does for `exec`.
        spec = spec
            .arg("-c")
            .arg(format!("sandbox_mode={}", toml_string(&request.sandbox)));
        spec.cwd = Some(request.dir.clone());
        spec.shell_init = true;
        spec
    }
}

/// A TOML basic string (for `-c key=value`, whose value Codex parses as TOML).
pub(super) fn toml_string(text: &str) -> String {
    serde_json::to_string(text).expect("strings serialise")
}

/// The prompt a resumed thread gets after a usage-limit park.
pub const CONTINUE_AFTER_LIMIT: &str = "Your previous turn stopped because the account's usage limit was reached; the limit has reset. Continue the task from where you stopped: the work you did so far is in the working directory.";

/// The prompt a resumed thread gets after its agent was interrupted (host reboot, OOM kill,
/// crash).
pub const CONTINUE_AFTER_INTERRUPTION: &str = "Your previous turn was interrupted (the agent's process ended unexpectedly). Continue the task from where you stopped: check the state of the working directory first, then finish the task.";

/// The default `max_wait` in seconds, when the request does not say.
pub(super) const DEFAULT_MAX_WAIT_SECS: u64 = 6 * 3600;

#[async_trait]
impl Executor for CodexExecutor {
    async fn launch(
        &self,
        transport: &dyn Transport,
        agent_dir: &str,
        request: &ExecRequest,
    ) -> Result<u32, TransportError> {
        // The host's configured arguments first, the run's own after (they win where Codex
        // lets a later option override an earlier one).
        let mut request = request.clone();
        let mut extra = transport.host().codex_args.clone();
        extra.append(&mut request.extra_args);
        request.extra_args = extra;
        let host = transport.host();
        // The agent's own command lines, built by the one quoting function; shell init first.
        // They carry no environment values: those (the host's `env`, API keys among them) are
        // set on the launch command by the transport, off every command line, and the
        // supervisor, Codex, its resumes and the resume-at script inherit them; only their
        // names are passed, for systemd-run's `--setenv=NAME`.
        let no_env = Default::default();
        let script_for = |spec: &CommandSpec, passing_args: bool| {
            let parts = crate::shell::ScriptParts {
                program: &spec.program,
                args: &spec.args,
                env: &no_env,
                cwd: spec.cwd.as_deref(),
                shell_init: host.shell_init.as_deref(),
                announce_pid: false,
            };
            if passing_args {
                crate::shell::command_script_passing_args(&parts)
            } else {
                crate::shell::command_script(&parts)
            }
        };
        let codex = Self::command(&host.codex, &request);
        let script = script_for(&codex, false)?;
        let resume = script_for(&Self::resume_command(&host.codex, &request), true)?;
        let at_script = script_for(
            &CommandSpec::new("sh").args(["-c", RESUME_AT_SCRIPT]),
            false,
        )?;
        let max_wait = request
            .max_wait_secs
            .unwrap_or(DEFAULT_MAX_WAIT_SECS)
            .to_string();
        let first = request.resume_thread.clone().unwrap_or_default();
        let dir = crate::layout::home_relative(agent_dir);
        let names: Vec<&str> = host
            .env
            .keys()
            .chain(codex.env.keys())
            .map(String::as_str)
            .collect();
        let mut args = vec![
            dir,
            &script,
            &resume,
            &at_script,
            &max_wait,
            &first,
            CONTINUE_AFTER_INTERRUPTION,
            CONTINUE_AFTER_LIMIT,
            SUPERVISE_SCRIPT,
            &request.sandbox,
        ];
        args.extend(names);
        let mut spec = agent_script(script_names::LAUNCH_AGENT, LAUNCH_SCRIPT, &args)
            .stdin_bytes(request.instruction.clone().into_bytes());
        spec.env = codex.env.clone();
        let output = crate::transport::TransportExt::run_checked(transport, spec).await?;
        output
            .stdout_text()
            .trim()
            .parse()
            .map_err(|_| TransportError::CommandFailed {
                host: host.name.clone(),
                command: "launch the agent".into(),
                status: output.status,
                stderr: format!(
                    "the agent did not report its pid: {}",
                    output.stderr_text().trim()
                ),
            })
    }

    async fn follow(
        &self,
        transport: &dyn Transport,
        agent_dir: &str,
        offset: u64,
        events: mpsc::Sender<ExecEvent>,
    ) -> Result<FollowEnd, TransportError> {
        let dir = crate::layout::home_relative(agent_dir);
        let mut process = transport
            .spawn(agent_dir_script(
                script_names::FOLLOW_AGENT,
                FOLLOW_SCRIPT,
                dir,
                &[&offset.to_string()],
            ))
            .await?;
        let stdout = std::mem::replace(&mut process.stdout, Box::new(tokio::io::empty()));
        let mut reader = tokio::io::BufReader::new(stdout);
        let mut trailer: Option<Vec<String>> = None;
        // The trailer is the agent's status file and stderr, read on the host (the agent's to
        // write under danger-full-access): at most this much of it is kept.
        const TRAILER_KEPT: usize = 64 * 1024;
        let mut trailer_len = 0;
        // The trailer's marker starts with a newline (to end a partial last line), so the line
        // just before it is not a whole line of the log: the empty line that newline makes after
        // a complete one, or a partial line it ended. Such a line (an empty one, or one whose
        // newline is followed at once by the marker's first byte) is held back until the next
        // line shows which it was.
        let mut held: Option<ExecEvent> = None;
        loop {
            let line = lines::next_line(&mut reader, MAX_EVENT_LINE)
                .await
                .map_err(TransportError::io("reading the agent's events"))?;
            // Only complete lines count: a partial last line is read again by the next follow.
            let LogLine::Complete { bytes, len } = line else {
                break;
            };
            let text = bytes.map(|b| String::from_utf8_lossy(&b).into_owned());
            if let Some(trailer) = trailer.as_mut() {
                if let Some(text) = text.filter(|t| trailer_len + t.len() <= TRAILER_KEPT) {
                    trailer_len += text.len();
                    trailer.push(text);
                }
                continue;
            }
            if text.as_deref().is_some_and(|t| t.ends_with(FOLLOW_END)) {
                // Whatever precedes the marker on its line is a partial event: not counted.
                trailer = Some(Vec::new());
                continue;
            }
            if let Some(event) = held.take() {
                let _ = events.send(event).await;
            }
            let event = match text {
                // Too long to hold: counted, skipped, and shown as skipped.
                None => {
                    let raw = lines::oversized_line(len);
                    ExecEvent {
                        event: CodexEvent::parse(&raw),
                        raw,
                        log_bytes: len + 1,
                    }
                }
                Some(text) => {
                    // The agent's output may quote its environment: no host secret is recorded.
                    let text = transport.host().redact(&text);
                    ExecEvent {
                        event: CodexEvent::parse(&text),
                        raw: text,
                        log_bytes: len + 1,
                    }
                }
            };
            let marker_next = reader.buffer().first() == FOLLOW_END.as_bytes().first();
            if event.raw.is_empty() || marker_next {
                held = Some(event);
                continue;
            }
            let _ = events.send(event).await;
        }
        if let Some(mut event) = held {
            let finished = trailer
                .as_ref()
                .is_some_and(|t| t.first().map(|l| l.trim()) != Some("running"));
            match &trailer {
                // A whole line after all (the stream broke before any marker).
                None => {
                    let _ = events.send(event).await;
                }
                // The log's last line, unfinished by an agent that ended: its newline was ours.
                Some(_) if finished && !event.raw.is_empty() => {
                    event.log_bytes -= 1;
                    let _ = events.send(event).await;
                }
                // A partial line while the agent runs: the next follow reads it whole.
                Some(_) => {}
            }
        }
        let _ = process.wait().await;
        let Some(trailer) = trailer else {
            return Ok(FollowEnd {
                status: None,
                vanished: false,
                stderr: String::new(),
            });
        };
        let first = trailer.first().map(|l| l.trim());
        let status = match first {
            Some("vanished") | None => None,
            Some(code) => code.parse().ok().map(ExitStatus::Code),
        };
        Ok(FollowEnd {
            status,
            vanished: first == Some("vanished"),
            stderr: transport.host().redact(
                &trailer
                    .iter()
                    .skip(1)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        })
    }

    async fn probe(
        &self,
        transport: &dyn Transport,
        agent_dir: &str,
    ) -> Result<AgentState, TransportError> {
        let dir = crate::layout::home_relative(agent_dir);
        let output = crate::transport::TransportExt::run_checked(
            transport,
            agent_dir_script(script_names::PROBE_AGENT, PROBE_SCRIPT, dir, &[]),
        )
        .await?;
        let text = output.stdout_text();
        let mut words = text.split_whitespace();
        Ok(
            match (
                words.next(),
                words.next().and_then(|w| w.parse::<i64>().ok()),
            ) {
                (Some("finished"), Some(code)) => AgentState::Finished { code: code as i32 },
                (Some("running"), Some(pid)) => AgentState::Running { pid: pid as u32 },
                (Some("waiting"), Some(pid)) => match words.next().and_then(|w| w.parse().ok()) {
                    Some(resume_at) => AgentState::Waiting {
                        pid: pid as u32,
                        resume_at,
                        thread_id: words.next().filter(|t| is_thread_id(t)).map(str::to_string),
                    },
                    None => AgentState::Running { pid: pid as u32 },
                },
                (Some("vanished"), _) => AgentState::Vanished,
                _ => AgentState::NotStarted,
            },
        )
    }

    async fn cancel(
        &self,
        transport: &dyn Transport,
        agent_dir: &str,
    ) -> Result<(), TransportError> {
        let dir = crate::layout::home_relative(agent_dir);
        crate::transport::TransportExt::run_checked(
            transport,
            agent_dir_script(script_names::CANCEL_AGENT, CANCEL_SCRIPT, dir, &[]),
        )
        .await?;
        Ok(())
    }
}
