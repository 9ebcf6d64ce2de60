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
    /// The account's usage limit was reached, and it does not reset within the run's
    /// `max_wait` (or the thread could not be resumed).
    UsageLimited {
        /// Codex's message.
        message: String,
        /// When the limit resets (Unix seconds), when known.
        resume_at: Option<u64>,
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
        if is_usage_limit(message) {
            ExecFailure::UsageLimited {
                message: message.to_string(),
                resume_at: None,
            }
        } else if lower.contains("429")
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

/// Whether `text` looks like a Codex thread id (letters, digits and `-`, at most 64): what
/// the host reports as one is untrusted.
pub fn is_thread_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Whether Codex's message says the account's usage limit (not a rate limit) was reached.
pub fn is_usage_limit(message: &str) -> bool {
    let lower = message.to_lowercase();
    lower.contains("usage limit") || lower.contains("usage_limit")
}

/// The delay a failure message states (`Please try again in 1.5s`, `try again in 20ms`,
/// `retry after 3 seconds`, `Retry-After: 2`), if any.
pub fn stated_delay(message: &str) -> Option<Duration> {
    let lower = message.to_ascii_lowercase();
    for marker in [
        "try again in ",
        "retry after ",
        "retry-after: ",
        "retry-after:",
    ] {
        let Some(at) = lower.find(marker) else {
            continue;
        };
        let rest = &lower[at + marker.len()..];
        // A Go-style duration (`1m30s`, `1.5s`, `250ms`) or a number of seconds.
        let token: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '.')
            .collect();
        let token = token.trim_end_matches('.');
        if let Ok(secs) = token.parse::<f64>() {
            return capped(secs);
        }
        let mut total = 0f64;
        let mut number = String::new();
        let mut chars = token.chars().peekable();
        let mut any = false;
        while let Some(c) = chars.next() {
            if c.is_ascii_digit() || c == '.' {
                number.push(c);
                continue;
            }
            let mut unit = c.to_string();
            while let Some(&n) = chars.peek() {
                if n.is_ascii_alphabetic() {
                    unit.push(n);
                    chars.next();
                } else {
                    break;
                }
            }
            let value: f64 = number.parse().ok()?;
            number.clear();
            total += value
                * match unit.as_str() {
                    "ms" => 0.001,
                    "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
                    "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
                    "h" | "hour" | "hours" => 3600.0,
                    _ => return None,
                };
            any = true;
        }
        if any && number.is_empty() {
            return capped(total);
        }
    }
    None
}

/// The longest stated delay honoured as is (the text comes from the host).
const MAX_STATED_DELAY: Duration = Duration::from_secs(3600);

fn capped(secs: f64) -> Option<Duration> {
    if !(secs.is_finite() && secs >= 0.0) {
        return None;
    }
    Some(Duration::try_from_secs_f64(secs).map_or(MAX_STATED_DELAY, |d| d.min(MAX_STATED_DELAY)))
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
    usage: crate::events::UsageTally,
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
        self.usage.observe(event);
        outcome.usage = self.usage.total();
        match event {
            CodexEvent::ThreadStarted { thread_id } => outcome.thread_id = Some(thread_id.clone()),
            CodexEvent::TurnFailed { message } => {
                outcome.failure = Some(ExecFailure::from_message(message))
            }
            // The thread goes on: what failed before the park is behind it.
            CodexEvent::Resumed { .. } => outcome.failure = None,
            CodexEvent::PolicyChanged { expected, seen } => {
                outcome.failure = Some(ExecFailure::TurnFailed {
                    message: format!(
                        "the resumed Codex thread ran under the sandbox(es) `{seen}`, not the run's `{expected}`; its result is not trusted (hint: check `codex_args` / `--codex-arg` for sandbox settings)"
                    ),
                })
            }
            CodexEvent::GaveUp { resume_at, .. } => {
                if let Some(ExecFailure::UsageLimited { resume_at: at, .. }) = &mut outcome.failure
                {
                    *at = Some(*resume_at);
                }
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
fn toml_string(text: &str) -> String {
    serde_json::to_string(text).expect("strings serialise")
}

/// The prompt a resumed thread gets after a usage-limit park.
pub const CONTINUE_AFTER_LIMIT: &str = "Your previous turn stopped because the account's usage limit was reached; the limit has reset. Continue the task from where you stopped: the work you did so far is in the working directory.";

/// The prompt a resumed thread gets after its agent was interrupted (host reboot, OOM kill,
/// crash).
pub const CONTINUE_AFTER_INTERRUPTION: &str = "Your previous turn was interrupted (the agent's process ended unexpectedly). Continue the task from where you stopped: check the state of the working directory first, then finish the task.";

/// The default `max_wait` in seconds, when the request does not say.
const DEFAULT_MAX_WAIT_SECS: u64 = 6 * 3600;

/// Starts the supervisor detached (systemd-run --user where the user manager runs, so that
/// logind's KillUserProcesses does not end it at logout; else setsid nohup). The supervisor
/// ([`SUPERVISE_SCRIPT`]) marks its environment with the attempt's random marker (inherited by
/// the agent and everything it starts, whatever process group or session they move to, so
/// `cancel` can find them all). Args: agent dir, agent script, resume script, resume-at script,
/// max wait (s), thread to resume first (or empty), its prompt, the prompt after a usage limit,
/// the supervisor's own script, the sandbox mode, then the names of the environment variables
/// the agent inherits from this command (their values are in its environment, never in an
/// argument); stdin: the instruction. Prints the supervisor's pid.
const LAUNCH_SCRIPT: &str = r#"set -e
dir=$1; script=$2; resume=$3; at_script=$4; max_wait=$5; first=$6; prompt=$7; limit_prompt=$8; supervise=$9; sandbox=${10}; shift 10
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
if command -v systemd-run >/dev/null 2>&1 && systemctl --user is-system-running >/dev/null 2>&1; then
  unit="codex-remote-$(date +%s)-$$"
  printf '%s\n' "$unit" > "$dir/unit"
  # The user manager does not inherit this environment: hand over each variable by name
  # (systemd-run takes the value from its own environment, so no value is on its command line).
  n=$#; for name do set -- "$@" "--setenv=$name"; done; shift "$n"
  systemd-run --user --quiet --collect --unit="$unit" "$@" sh -c "$supervise" supervise "$dir" "$script" "$resume" "$at_script" "$shell" "$max_wait" "$first" "$prompt" "$limit_prompt" "$sandbox"
else
  setsid nohup sh -c "$supervise" supervise "$dir" "$script" "$resume" "$at_script" "$shell" "$max_wait" "$first" "$prompt" "$limit_prompt" "$sandbox" >/dev/null 2>&1 < /dev/null &
fi
i=0
while [ ! -s "$dir/pid" ] && [ "$i" -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
cat "$dir/pid"
"#;

/// The host-side supervisor: records its pid, runs the agent (or resumes the thread `$7`), and
/// while the agent ends at a usage limit, parks: works out when the limit resets (the resume-at
/// script), appends a `codex-remote.parked` line to the event log, sleeps until then and
/// resumes the same thread with `codex exec resume` (a `codex-remote.resumed` line) — all on
/// the host, with no client connected. A reset past `max_wait` (counted from the first park)
/// appends `codex-remote.gave_up` instead. A Codex that was killed or crashed mid-thread is
/// resumed the same way (at most twice; its leftover processes ended first). Finally records
/// Codex's exit status.
const SUPERVISE_SCRIPT: &str = r#"dir=$1; script=$2; resume=$3; at_script=$4; shell=$5; max_wait=$6; thread=$7; prompt=$8; limit_prompt=$9; sandbox=${10}
cat /proc/sys/kernel/random/boot_id > "$dir/boot_id" 2>/dev/null || rm -f "$dir/boot_id"
echo $$ > "$dir/pid.tmp"; mv -f "$dir/pid.tmp" "$dir/pid"
# The attempt's marker, inherited by Codex and everything it starts (see CANCEL_SCRIPT).
CODEX_REMOTE_AGENT=$(cat "$dir/marker"); export CODEX_REMOTE_AGENT
log=$dir/events.jsonl
valid_thread() { case $1 in ''|*[!A-Za-z0-9-]*) return 1 ;; esac; }
# Resumes thread $1 with the prompt $2, then checks in the thread's session file that every turn
# ran under the run's sandbox (exit status 97 and a policy_changed line otherwise).
resume_thread() {
  start=$(wc -c < "$log")
  printf '%s\n' "$2" | "$shell" -c "$resume" sh "$1" - >> "$log" 2>> "$dir/stderr.log"
  rc=$?
  seen=$(CODEX_REMOTE_THREAD=$1 CODEX_REMOTE_SANDBOXES=1 "$shell" -c "$at_script" 2>> "$dir/stderr.log" | sed -n 's/^codex-remote-sandboxes: //p' | tail -n 1)
  case $seen in
    ''|"$sandbox") ;;
    *[!a-z,-]*) rc=97 ;;
    *) printf '{"type":"codex-remote.policy_changed","expected":"%s","seen":"%s"}\n' "$sandbox" "$seen" >> "$log"; rc=97 ;;
  esac
}
start=$(wc -c < "$log")
if valid_thread "$thread"; then
  printf '{"type":"codex-remote.resumed","thread_id":"%s","reason":"interrupted"}\n' "$thread" >> "$log"
  resume_thread "$thread" "$prompt"
else
  "$shell" -c "$script" < "$dir/instruction" >> "$log" 2>> "$dir/stderr.log"
  rc=$?
fi
parked=; crashes=0
while [ "$rc" -ne 0 ] && [ "$rc" -ne 97 ]; do
  thread=$(sed -n 's/^{"type":"thread.started","thread_id":"\([A-Za-z0-9-]*\)"}$/\1/p' "$log" | head -n 1)
  valid_thread "$thread" || break
  # Codex killed (OOM killer, a signal) or crashed (a Rust panic exits 101): what it left
  # running goes, then the same thread resumes; at most twice.
  if [ "$rc" -gt 128 ] || [ "$rc" -eq 101 ]; then
    crashes=$((crashes + 1)); [ "$crashes" -le 2 ] || break
    others=$(ps -eo pid=,pgid= 2>/dev/null | awk -v g="$$" '$2 == g && $1 != g { print $1 }')
    for p in $others; do kill -s KILL "$p" 2>/dev/null; done
    printf '{"type":"codex-remote.resumed","thread_id":"%s","reason":"interrupted"}\n' "$thread" >> "$log"
    resume_thread "$thread" "$prompt"
    continue
  fi
  # Only a usage limit parks: the last turn.failed of this attempt says so.
  tail -c +"$((start + 1))" "$log" | grep '^{"type":"turn.failed"' | tail -n 1 | grep -qi 'usage.limit' || break
  now=$(date +%s)
  [ -n "$parked" ] || parked=$now
  out=$(CODEX_REMOTE_LOG=$log CODEX_REMOTE_FROM=$start CODEX_REMOTE_THREAD=$thread "$shell" -c "$at_script" 2>> "$dir/stderr.log" | sed -n 's/^codex-remote-resume-at: //p' | tail -n 1)
  at=${out%% *}; source=${out#* }
  case $at in ''|*[!0-9]*) at=$((now + 600)); source=fallback ;; esac
  case $source in session|message|fallback) ;; *) source=fallback ;; esac
  # Never a hot loop of resumes against a limit that has not reset yet.
  [ "$at" -ge $((now + 2)) ] || at=$((now + 2))
  if [ "$at" -gt $((parked + max_wait)) ]; then
    printf '{"type":"codex-remote.gave_up","resume_at":%s,"max_wait_secs":%s}\n' "$at" "$max_wait" >> "$log"
    break
  fi
  printf '%s %s\n' "$at" "$thread" > "$dir/waiting.tmp"; mv -f "$dir/waiting.tmp" "$dir/waiting"
  printf '{"type":"codex-remote.parked","thread_id":"%s","resume_at":%s,"source":"%s"}\n' "$thread" "$at" "$source" >> "$log"
  while now=$(date +%s); [ "$now" -lt "$at" ]; do
    left=$((at - now)); [ "$left" -gt 60 ] && left=60
    sleep "$left"
  done
  rm -f "$dir/waiting"
  printf '{"type":"codex-remote.resumed","thread_id":"%s","reason":"usage-limit"}\n' "$thread" >> "$log"
  resume_thread "$thread" "$limit_prompt"
done
echo "$rc" > "$dir/status.tmp"; mv -f "$dir/status.tmp" "$dir/status"
"#;

/// Works out when a usage limit resets; prints `codex-remote-resume-at: EPOCH SOURCE` (with
/// `CODEX_REMOTE_SANDBOXES` set instead: `codex-remote-sandboxes: ` and the sandbox modes the
/// thread's turns ran under, comma-separated; nothing when its session file is not found). The
/// prefix tells the answer from whatever the user's shell init prints. Runs in the user's shell after
/// the shell init and the host's environment (for `CODEX_HOME`), with the event log, the byte
/// where the failed attempt began and the thread in `CODEX_REMOTE_LOG`, `CODEX_REMOTE_FROM`
/// and `CODEX_REMOTE_THREAD`. The rule (docs/cli.md, "Usage limits"): (1) the rate-limit
/// snapshot Codex recorded in the thread's session file (`token_count.rate_limits`): the latest
/// `resets_at` of a window at 100 %, if still ahead; (2) the time in Codex's message ("try again
/// at 9:01 AM" / "at Sep 15th, 2026 7:59 PM", host's time zone, GNU or busybox `date -d`), plus
/// one minute as Codex shows only the minute, a bare time already past meaning tomorrow;
/// (3) ten minutes from now.
const RESUME_AT_SCRIPT: &str = r#"now=$(date +%s)
home=${CODEX_HOME:-$HOME/.codex}
file=$(find "$home/sessions" -type f -name "rollout-*-$CODEX_REMOTE_THREAD.jsonl" 2>/dev/null | head -n 1)
if [ -n "$CODEX_REMOTE_SANDBOXES" ]; then
  # The other question: the sandbox modes the thread's turns ran under, comma-separated.
  [ -n "$file" ] || exit 0
  printf 'codex-remote-sandboxes: %s\n' "$(grep '"type":"turn_context"' "$file" \
    | sed -n 's/.*"sandbox_policy":{"type":"\([a-z-]*\)".*/\1/p' | sort -u | paste -s -d , -)"
  exit 0
fi
if [ -n "$file" ]; then
  at=$(grep '"type":"token_count"' "$file" | grep '"rate_limits"' | tail -n 1 | awk '{
    n = split($0, parts, "{"); best = 0
    for (i = 1; i <= n; i++) {
      p = parts[i]
      if (!match(p, /"used_percent":[0-9.]+/)) continue
      u = substr(p, RSTART + 15, RLENGTH - 15) + 0
      if (!match(p, /"resets_at":[0-9]+/)) continue
      r = substr(p, RSTART + 12, RLENGTH - 12) + 0
      if (u >= 100 && r > best) best = r
    }
    if (best > 0) printf "%d\n", best
  }')
  case $at in ''|*[!0-9]*) ;; *) if [ "$at" -gt "$now" ]; then echo "codex-remote-resume-at: $at session"; exit 0; fi ;; esac
fi
when=$(tail -c +"$((CODEX_REMOTE_FROM + 1))" "$CODEX_REMOTE_LOG" | grep '^{"type":"turn.failed"' | tail -n 1 \
  | sed -n 's/.*try again at \([A-Za-z0-9:, ]*[AP]M\)\..*/\1/p' \
  | sed -e 's/\([0-9]\)st,/\1,/' -e 's/\([0-9]\)nd,/\1,/' -e 's/\([0-9]\)rd,/\1,/' -e 's/\([0-9]\)th,/\1,/')
if [ -n "$when" ] && t=$(date -d "$when" +%s 2>/dev/null); then
  t=$((t + 60))
  case $when in *,*) ;; *) if [ "$t" -le "$now" ]; then t=$((t + 86400)); fi ;; esac
  echo "codex-remote-resume-at: $t message"; exit 0
fi
echo "codex-remote-resume-at: $((now + 600)) fallback"
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
# same_boot: the host has not rebooted since the launch (where it has a boot id). After a reboot
# nothing of the attempt runs, and its recorded pid may name an unrelated process by now: it is
# never taken as alive nor signalled.
# (Both read once: the follow's watcher asks every 20 ms, and this boot cannot change under it.)
booted=$(cat "$dir/boot_id" 2>/dev/null || true)
boot=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || true)
same_boot() { [ -z "$booted" ] || [ "$booted" = "$boot" ]; }
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
  same_boot || return 1
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

/// Prints `running PID`, `waiting PID RESUME_AT THREAD`, `finished CODE`, `vanished` or
/// `not-started`.
const PROBE_SCRIPT: &str = r#"
if [ -e "$dir/status" ]; then echo "finished $(cat "$dir/status")"
elif agent_alive; then
  if [ -s "$dir/waiting" ]; then echo "waiting $pid $(cat "$dir/waiting")"; else echo "running $pid"; fi
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
same_boot || { pid=; unit=; }
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
