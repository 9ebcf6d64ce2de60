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
use crate::transport::{script_names, CommandSpec, ExitStatus, Transport, TransportError};

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
}

/// Why an agent run failed, classified so the caller can act (retry, or tell the user the fix).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
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
    /// The agent's process disappeared without recording how it ended (killed, host rebooted).
    AgentVanished {
        /// What is known.
        message: String,
    },
    /// The agent showed no progress (no event) for `stall_timeout` and was ended.
    Stalled {
        /// How long it was silent.
        after_secs: u64,
        /// Codex's last notice (such as "Reconnecting... 2/5 (...)"), when it gave one.
        last_notice: Option<String>,
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
pub(crate) struct ExecOutcome {
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

/// Accumulates what a run's events say: thread, usage, last message, reported files, failure.
#[derive(Debug, Clone, Default)]
pub(crate) struct OutcomeBuilder {
    outcome: Option<ExecOutcome>,
}

impl OutcomeBuilder {
    /// Takes one event into account.
    pub fn observe(&mut self, event: &CodexEvent) {
        let outcome = self.outcome.get_or_insert_with(|| ExecOutcome {
            status: ExitStatus::Code(0),
            thread_id: None,
            usage: Usage::default(),
            last_message: None,
            files_reported: Vec::new(),
            failure: None,
        });
        match event {
            CodexEvent::ThreadStarted { thread_id } => outcome.thread_id = Some(thread_id.clone()),
            CodexEvent::TurnCompleted { usage } => outcome.usage.add(usage),
            CodexEvent::TurnFailed { message } => {
                outcome.failure = Some(ExecFailure::from_message(message))
            }
            CodexEvent::ItemCompleted { item } => match &item.kind {
                ItemKind::AgentMessage { text } => outcome.last_message = Some(text.clone()),
                ItemKind::FileChange { changes, .. } => outcome
                    .files_reported
                    .extend(changes.iter().map(|c| c.path.clone())),
                _ => {}
            },
            _ => {}
        }
    }

    /// The outcome, given how the agent exited and what it printed on stderr.
    pub fn finish(self, status: ExitStatus, stderr: &str) -> ExecOutcome {
        let mut outcome = self.outcome.unwrap_or(ExecOutcome {
            status,
            thread_id: None,
            usage: Usage::default(),
            last_message: None,
            files_reported: Vec::new(),
            failure: None,
        });
        outcome.status = status;
        if !status.success() && outcome.failure.is_none() {
            outcome.failure = Some(classify_exit(status, stderr));
        }
        outcome
    }
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
}

/// Starts the supervisor detached (systemd-run --user where the user manager runs, so that
/// logind's KillUserProcesses does not end it at logout; else setsid nohup). The supervisor
/// records its pid, marks its environment with the attempt's random marker (inherited by the
/// agent and everything it starts, whatever process group or session they move to, so `cancel`
/// can find them all), runs the agent script with the instruction on stdin and its events
/// appended to events.jsonl, then records the exit status. Args: agent dir, agent script, then
/// the names of the environment variables the agent inherits from this command (their values
/// are in its environment, never in an argument); stdin: the instruction. Prints the
/// supervisor's pid.
const LAUNCH_SCRIPT: &str = r#"set -e
dir=$1; script=$2; shift 2
mkdir -p -- "$dir"
if ! err=$(mkdir -- "$dir/launched" 2>&1); then
  [ -d "$dir/launched" ] || { printf '%s\n' "$err" >&2; exit 1; }
  echo "codex-remote: this run's agent was already launched; attach to it instead" >&2; exit 75
fi
cat > "$dir/instruction"
: > "$dir/events.jsonl"
od -An -N12 -tx1 /dev/urandom | tr -d ' \n' > "$dir/marker"
# The agent script runs in the login shell, like every ssh command: the user's shell_init is
# written for it (`source` is not POSIX).
shell=${SHELL:-/bin/sh}
supervise='dir=$1; script=$2; shell=$3; echo $$ > "$dir/pid.tmp"; mv -f "$dir/pid.tmp" "$dir/pid"; CODEX_REMOTE_AGENT=$(cat "$dir/marker"); export CODEX_REMOTE_AGENT; "$shell" -c "$script" < "$dir/instruction" >> "$dir/events.jsonl" 2>> "$dir/stderr.log"; echo $? > "$dir/status.tmp"; mv -f "$dir/status.tmp" "$dir/status"'
if command -v systemd-run >/dev/null 2>&1 && systemctl --user is-system-running >/dev/null 2>&1; then
  unit="codex-remote-$(date +%s)-$$"
  printf '%s\n' "$unit" > "$dir/unit"
  # The user manager does not inherit this environment: hand over each variable by name
  # (systemd-run takes the value from its own environment, so no value is on its command line).
  n=$#; for name do set -- "$@" "--setenv=$name"; done; shift "$n"
  systemd-run --user --quiet --collect --unit="$unit" "$@" sh -c "$supervise" supervise "$dir" "$script" "$shell"
else
  setsid nohup sh -c "$supervise" supervise "$dir" "$script" "$shell" >/dev/null 2>&1 < /dev/null &
fi
i=0
while [ ! -s "$dir/pid" ] && [ "$i" -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
cat "$dir/pid"
"#;

/// Shell functions shared by the follow, probe and cancel scripts. They expect `dir` (the agent
/// dir) to be set, and set `pid` (the supervisor's) and `token` (the attempt's marker).
///
/// The agent has ended when its supervisor recorded a status: that is read first. Liveness is
/// only the fallback, and a zombie counts as dead (it has exited; only its parent, often a PID 1
/// that reaps late or never, has not collected it yet).
const AGENT_FUNCTIONS: &str = r#"pid=$(cat "$dir/pid" 2>/dev/null || true)
token=$(cat "$dir/marker" 2>/dev/null || true)
# The agent dir is the agent's to write under danger-full-access: only a pid above 1 is a
# supervisor (never `kill -- -1`, every process of the user), only hex is a marker (never a
# pattern that matches other processes).
case $pid in ''|*[!0-9]*) pid= ;; esac
if [ -n "$pid" ] && [ "$pid" -le 1 ]; then pid=; fi
case $token in *[!0-9a-f]*) token= ;; esac
# alive PID: the process exists and is not a zombie.
alive() {
  case $1 in ''|*[!0-9]*) return 1 ;; esac
  [ "$1" -gt 0 ] || return 1
  if [ -r /proc/self/stat ]; then
    s=
    { read -r s < "/proc/$1/stat"; } 2>/dev/null || return 1
    s=${s##*) }
    case $s in Z*|X*|x*) return 1 ;; esac
    return 0
  fi
  kill -s 0 "$1" 2>/dev/null || return 1
  case $(ps -o stat= -p "$1" 2>/dev/null) in Z*) return 1 ;; esac
  return 0
}
# marked: the pids of the live processes carrying this attempt's marker, wherever they moved.
marked() {
  [ -n "$token" ] && [ -r /proc/self/environ ] || return 0
  grep -lzxF -e "CODEX_REMOTE_AGENT=$token" /proc/[0-9]*/environ 2>/dev/null | sed -n 's|^/proc/\([0-9]*\)/environ$|\1|p'
}
# agent_alive: the supervisor, or a process of its group (Codex itself), still runs.
agent_alive() {
  alive "$pid" && return 0
  for p in $(marked); do
    s=
    { read -r s < "/proc/$p/stat"; } 2>/dev/null || continue
    set -- ${s##*) }
    [ "$3" = "$pid" ] && [ "$1" != Z ] && return 0
  done
  return 1
}
# live: no status recorded and the agent still runs.
live() { [ ! -e "$dir/status" ] && agent_alive; }
"#;

/// Prints events.jsonl from byte $2 on, following it while the agent lives; then a marker line,
/// how the agent stands (its exit status, `running` when only the stream stopped, or
/// `vanished`) and the end of its stderr, all on stdout so one ordered stream says where the
/// events end. The follow ends as soon as the status is recorded (a watcher polls it; `tail`
/// stops when the watcher does, after reading the file to its end).
const FOLLOW_SCRIPT: &str = r#"
from=$(($2 + 1))
if live; then
  ( while live; do sleep 0.02; done ) & watcher=$!
  tail -c +"$from" -s 0.01 --pid="$watcher" -f "$dir/events.jsonl"
  kill "$watcher" 2>/dev/null
else
  tail -c +"$from" "$dir/events.jsonl"
fi
printf '\n\036codex-remote-follow-end\n'
if [ -e "$dir/status" ]; then cat "$dir/status"
elif agent_alive; then echo running
elif [ -e "$dir/status" ]; then cat "$dir/status"
else echo vanished; fi
tail -c 4000 "$dir/stderr.log" 2>/dev/null || true
"#;

/// The line that ends the event stream of a follow.
const FOLLOW_END: &str = "\u{1e}codex-remote-follow-end";

/// Prints `running PID`, `finished CODE`, `vanished` or `not-started`.
const PROBE_SCRIPT: &str = r#"
if [ -e "$dir/status" ]; then echo "finished $(cat "$dir/status")"
elif agent_alive; then echo "running $pid"
elif [ -e "$dir/status" ]; then echo "finished $(cat "$dir/status")"
elif [ -n "$pid" ]; then echo vanished
else echo not-started; fi
"#;

/// Ends every process of the attempt: the supervisor's process group, its systemd unit (its
/// cgroup) when it runs under `systemd-run --user`, and every process that carries the attempt's
/// marker (children that left the group or the session: `setsid`, `nohup cmd &`, daemons).
/// TERM, up to 2 s, then KILL until none is left; fails, naming the survivors, if any remain.
const CANCEL_SCRIPT: &str = r#"
unit=$(cat "$dir/unit" 2>/dev/null || true)
case $unit in codex-remote-[0-9]*) ;; *) unit= ;; esac
signal() {
  if [ -n "$pid" ]; then kill -s "$1" -- "-$pid" 2>/dev/null || true; fi
  if [ -n "$unit" ]; then systemctl --user kill --signal="$1" -- "$unit" >/dev/null 2>&1 || true; fi
  for p in $(marked); do kill -s "$1" "$p" 2>/dev/null || true; done
}
remaining() { alive "$pid" || [ -n "$(marked)" ]; }
signal TERM
i=0
while remaining && [ "$i" -lt 20 ]; do sleep 0.1; i=$((i + 1)); done
i=0
while remaining && [ "$i" -lt 40 ]; do signal KILL; sleep 0.05; i=$((i + 1)); done
if remaining; then
  echo "processes of the agent survived SIGKILL: $pid $(marked)" >&2
  exit 1
fi
"#;

/// One of the scripts above with the shared functions first; `$1` is the agent dir.
fn agent_dir_script(name: &'static str, body: &str, dir: &str, args: &[&str]) -> CommandSpec {
    let script = format!("dir=$1\n{AGENT_FUNCTIONS}{body}");
    let mut all = vec![dir];
    all.extend_from_slice(args);
    agent_script(name, &script, &all)
}

fn agent_script(name: &'static str, body: &str, args: &[&str]) -> CommandSpec {
    CommandSpec::script(body, args).named(name).cwd("~")
}

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
        let codex = Self::command(&transport.host().codex, &request);
        let host = transport.host();
        // The agent's own command line, built by the one quoting function; shell init first.
        // It carries no environment values: those (the host's `env`, API keys among them) are
        // set on the launch command by the transport, off every command line, and the agent
        // inherits them; only their names are passed, for systemd-run's `--setenv=NAME`.
        let no_env = Default::default();
        let script = crate::shell::command_script(&crate::shell::ScriptParts {
            program: &codex.program,
            args: &codex.args,
            env: &no_env,
            cwd: codex.cwd.as_deref(),
            shell_init: host.shell_init.as_deref(),
            announce_pid: false,
        })?;
        let dir = crate::layout::home_relative(agent_dir);
        let names: Vec<&str> = host
            .env
            .keys()
            .chain(codex.env.keys())
            .map(String::as_str)
            .collect();
        let mut args = vec![dir, script.as_str()];
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
        let mut line = Vec::new();
        let mut trailer: Option<Vec<String>> = None;
        // The trailer's marker starts with a newline (to end a partial last line); the empty line
        // that makes after a complete one is not an event, so an empty line is held back until
        // the next line shows which it was.
        let mut held_empty = false;
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .await
                .map_err(TransportError::io("reading the agent's events"))?;
            // Only complete lines count: a partial last line is read again by the next follow.
            if n == 0 || line.last() != Some(&b'\n') {
                break;
            }
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            if let Some(trailer) = trailer.as_mut() {
                trailer.push(text);
                continue;
            }
            if text.ends_with(FOLLOW_END) {
                // Whatever precedes the marker on its line is a partial event: not counted.
                trailer = Some(Vec::new());
                continue;
            }
            if std::mem::take(&mut held_empty) {
                let _ = events
                    .send(ExecEvent {
                        raw: String::new(),
                        event: CodexEvent::parse(""),
                    })
                    .await;
            }
            if text.is_empty() {
                held_empty = true;
                continue;
            }
            // The agent's output may quote its environment: no host secret is recorded.
            let text = transport.host().redact(&text);
            let event = CodexEvent::parse(&text);
            let _ = events.send(ExecEvent { raw: text, event }).await;
        }
        if held_empty && trailer.is_none() {
            let _ = events
                .send(ExecEvent {
                    raw: String::new(),
                    event: CodexEvent::parse(""),
                })
                .await;
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
pub(crate) fn backoff(attempt: u32, initial: Duration, max: Duration) -> Duration {
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
            crate::transport::Stdin::Bytes(request.instruction.into_bytes())
        );
        assert!(spec.shell_init);
        assert_eq!(spec.cwd.as_deref(), Some("~/w/runs/r1"));
    }
}
