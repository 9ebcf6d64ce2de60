//! The command line, declared with clap. Every flag here is public contract: see docs/cli.md.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use codex_remote_core::task::TaskType;

/// Hand a coding task to the OpenAI Codex CLI on another machine, and bring the change back safely.
#[derive(Debug, Parser)]
#[command(name = "codex-remote", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Print machine-readable JSON instead of text (shapes in docs/cli.md).
    #[arg(long, global = true)]
    pub json: bool,
    /// Print less.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more (repeat for debug logs).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Use this user config file instead of $XDG_CONFIG_HOME/codex-remote/config.toml.
    #[arg(long, global = true, value_name = "FILE", env = "CODEX_REMOTE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what a run would do: task, model and why, host, remote directory, excluded files, instruction.
    Plan(PlanArgs),
    /// Run a task end to end: push, run Codex on the host, retrieve the change, apply it.
    Run(Box<RunArgs>),
    /// See the whole workflow work: a throwaway project on this machine, the real Codex CLI
    /// (fetched from npm once), a scripted model server standing in for OpenAI.
    Demo(DemoArgs),
    /// Run one command on a host (after its shell init) and exit with its status.
    Exec(ExecArgs),
    /// Follow a run from where the local record stopped, then retrieve (and apply) as `run` would.
    Attach(RunRefArgs),
    /// Show where a run stands (all runs without RUN).
    Status(StatusArgs),
    /// Print a run's recorded events; --follow streams new ones until the agent ends.
    Logs(LogsArgs),
    /// Stop a run's agent and everything it started on the host.
    Cancel(RunRefArgs),
    /// A live full-screen view of the project's runs (and of a plan): follow, diff, apply, cancel.
    Watch(WatchArgs),
    /// Run every pending codex-remote entry of a task_plan.json, in parallel over hosts.
    Orchestrate(OrchestrateArgs),
    /// Tick a markdown checklist item: `- [ ] ITEM` becomes `- [x] ITEM ← Completed via Codex`.
    Checkpoint(CheckpointArgs),
    /// Check a host for the usual failures, one line per check with its fix.
    Doctor(HostArgs),
    /// Open the Codex TUI in a run tree of its own over a TTY (`ssh -t`); what it changes comes
    /// back as a run (`diff RUN`, `pull RUN --apply`).
    Interactive(HostArgs),
    /// Sync the project to the host's workspace and print the remote directory.
    Push(PushArgs),
    /// Show a run's result patch, coloured, with a stat summary.
    Diff(DiffArgs),
    /// Retrieve a run's result patch; with --apply, apply it to the local tree.
    Pull(PullArgs),
    /// List run records; --prune releases old runs' trees and removes idle trees on the hosts.
    Runs(RunsArgs),
    /// Print the JSON Schema of a file format.
    Schema(SchemaArgs),
    /// Serve the workflow as MCP tools over stdio (plan, run, status, wait, logs, diff, apply, cancel, checkpoint, orchestrate).
    Mcp,
    /// Print the Agent Skill (SKILL.md) for orchestrating agents; --install writes it.
    Skill(SkillArgs),
    /// Write a commented starter config file.
    Init(InitArgs),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
}

/// Where the task comes from: a file, or a one-off prompt.
#[derive(Debug, Args)]
pub struct TaskArgs {
    /// Task file (.yaml, .yml or .json); `-` reads stdin.
    #[arg(value_name = "TASK")]
    pub task: Option<PathBuf>,
    /// A one-off task (with --type), or the title and requirement completing a task sketch file.
    #[arg(long, value_name = "TEXT")]
    pub prompt: Option<String>,
    /// The task type of a --prompt task.
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_task_type, requires = "prompt", conflicts_with = "task")]
    pub task_type: Option<TaskType>,
    /// Scope file or glob of a --prompt task (repeatable).
    #[arg(long = "file", value_name = "GLOB", requires = "prompt")]
    pub files: Vec<String>,
}

fn parse_task_type(s: &str) -> Result<TaskType, String> {
    s.parse()
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub task: TaskArgs,
    /// Host to run on: a name from the config, `local`, an ssh destination or a container (`podman://NAME`, `docker://NAME`, `k8s://NAMESPACE/POD[/CONTAINER]`).
    #[arg(long, value_name = "HOST", env = "CODEX_REMOTE_HOST")]
    pub host: Option<String>,
    /// Model to use, overriding the task file and the model table.
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub task: TaskArgs,
    /// Host to run on: a name from the config, `local`, an ssh destination or a container (`podman://NAME`, `docker://NAME`, `k8s://NAMESPACE/POD[/CONTAINER]`).
    #[arg(long, value_name = "HOST", env = "CODEX_REMOTE_HOST")]
    pub host: Option<String>,
    /// Model to use, overriding the task file and the model table.
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Start the agent on the host and return at once with the run id; it keeps running when
    /// the connection drops. Follow and finish it with `attach RUN`.
    #[arg(long)]
    pub detach: bool,
    /// Retrieve the result but do not apply it (apply later with `pull RUN --apply`).
    #[arg(long)]
    pub no_apply: bool,
    /// Apply even when the result changes restricted files.
    #[arg(long)]
    pub allow_restricted: bool,
    /// Apply even a result that looks destructive and would be held back (see `[apply]` in the config).
    #[arg(long)]
    pub allow_held_back: bool,
    /// Keep the run's tree on the host (by default it goes back to the host's pool once the result
    /// is retrieved); on a host made on demand, keep the run's container.
    #[arg(long)]
    pub keep: bool,
    /// Retries of a rate-limited run (default: the config's `retry.retries`).
    #[arg(long, value_name = "N", env = "CODEX_REMOTE_RETRIES")]
    pub retries: Option<u32>,
    /// Cancel the agent after this long (`90s`, `30m`, `2h`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// End the run when the agent shows no progress for this long (default: the config's
    /// `stall_timeout`, 10m; `0s` never).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub stall_timeout: Option<std::time::Duration>,
    /// Codex sandbox mode.
    #[arg(long, value_name = "MODE", default_value = "workspace-write", value_parser = ["read-only", "workspace-write", "danger-full-access"])]
    pub sandbox: String,
    /// Take the task from this orchestration plan (with --task-id) and keep its entry's status true.
    #[arg(long, value_name = "task_plan.json", requires = "task_id", conflicts_with_all = ["task", "prompt"])]
    pub plan: Option<std::path::PathBuf>,
    /// The plan entry to run (with --plan).
    #[arg(long, value_name = "ID", requires = "plan")]
    pub task_id: Option<String>,
    /// Tick this spec's checklist item when the result is applied (with --item; overrides the task's `checkpoint`).
    #[arg(long, value_name = "SPEC.md", requires = "item")]
    pub checkpoint: Option<std::path::PathBuf>,
    /// The checklist item's text for --checkpoint.
    #[arg(long, value_name = "TEXT", requires = "checkpoint")]
    pub item: Option<String>,
    /// Extra argument for `codex exec`, e.g. `--codex-arg=-c --codex-arg=model_verbosity="low"` (repeatable).
    #[arg(long = "codex-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub codex_args: Vec<String>,
    /// Push the project root even when it is the home directory, `/`, a repository above the
    /// working directory with no commit, or above sync.max_push_files / sync.max_push_bytes.
    #[arg(long)]
    pub confirm_push: bool,
    #[command(flatten)]
    pub long_run: LongRunArgs,
}

/// Usage-limit parking and notifications, shared by `run` and `orchestrate`.
#[derive(Debug, Args)]
pub struct LongRunArgs {
    /// How long a run may stay parked at usage limits, in all (`90m`, `6h`, `0s`; default: the
    /// config's `max_wait`, else 6h). A reset further away fails the run with exit 5.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub max_wait: Option<std::time::Duration>,
    /// Run this local command when a run ends, parks or fails, with its summary JSON on stdin
    /// (split on whitespace, no shell; default: the config's `notify`).
    #[arg(long, value_name = "CMD")]
    pub notify: Option<String>,
}

impl LongRunArgs {
    /// Lays the flags over the config's defaults in `options`.
    pub fn apply(&self, options: &mut codex_remote_core::RunOptions) {
        if let Some(max_wait) = self.max_wait {
            options.max_wait = max_wait;
        }
        if let Some(notify) = &self.notify {
            let argv: Vec<String> = notify.split_whitespace().map(str::to_string).collect();
            options.notify = (!argv.is_empty()).then_some(argv);
        }
    }
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration like 90s, 30m or 2h: {e}"))
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Host to run on: a name from the config, `local`, an ssh destination or a container (`podman://NAME`, `docker://NAME`, `k8s://NAMESPACE/POD[/CONTAINER]`).
    #[arg(long, value_name = "HOST", env = "CODEX_REMOTE_HOST")]
    pub host: Option<String>,
    /// Directory to run in on the host (`~/` is the remote home); relative paths are relative to the workspace.
    #[arg(long = "cd", value_name = "DIR")]
    pub cd: Option<String>,
    /// Cancel the command (and everything it started) after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// The program and its arguments, each passed as-is (no shell).
    #[arg(last = true, required = true, value_name = "PROGRAM [ARGS]")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct OrchestrateArgs {
    /// The orchestration plan.
    pub plan: std::path::PathBuf,
    /// Hosts to spread the runs over (comma-separated; default: the default host).
    #[arg(long, value_name = "H1,H2,...", value_delimiter = ',')]
    pub hosts: Vec<String>,
    /// Runs at once.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub parallel: usize,
    /// Stop starting new tasks after the first failure.
    #[arg(long)]
    pub fail_fast: bool,
    /// Retries of a rate-limited run (default: the config's `retry.retries`).
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// Apply even when a result changes restricted files.
    #[arg(long)]
    pub allow_restricted: bool,
    /// Apply even results that look destructive and would be held back (see `[apply]` in the config).
    #[arg(long)]
    pub allow_held_back: bool,
    /// Keep the runs' trees on the hosts (by default they go back to the pools once retrieved), and
    /// on hosts made on demand the runs' containers.
    #[arg(long)]
    pub keep: bool,
    /// Push the project root even when it is the home directory, `/`, a repository above the
    /// working directory with no commit, or above sync.max_push_files / sync.max_push_bytes.
    #[arg(long)]
    pub confirm_push: bool,
    #[command(flatten)]
    pub long_run: LongRunArgs,
}

#[derive(Debug, Args)]
pub struct CheckpointArgs {
    /// The markdown spec file.
    pub spec: std::path::PathBuf,
    /// The item's exact text (surrounding whitespace and the checkbox ignored).
    #[arg(long, value_name = "TEXT")]
    pub item: String,
    /// The run to name in the note.
    #[arg(long, value_name = "RUN")]
    pub run: Option<String>,
}

#[derive(Debug, Args)]
pub struct HostArgs {
    /// Host: a name from the config, `local`, an ssh destination or a container (`podman://NAME`, `docker://NAME`, `k8s://NAMESPACE/POD[/CONTAINER]`).
    #[arg(long, value_name = "HOST", env = "CODEX_REMOTE_HOST")]
    pub host: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunRefArgs {
    /// The run id (see `codex-remote runs`), `last` or `last~N`.
    pub run: String,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The run id, `last` or `last~N`; all runs when omitted.
    pub run: Option<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The run id, `last` or `last~N`.
    pub run: String,
    /// Keep streaming new events until the agent ends.
    #[arg(short, long)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Also show this orchestration plan's entries (task_plan.json).
    #[arg(value_name = "PLAN")]
    pub plan: Option<PathBuf>,
    /// How often to re-read the run records (`500ms`, `2s`).
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_duration)]
    pub interval: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Host to push to: a name from the config, `local`, an ssh destination or a container (`podman://NAME`, `docker://NAME`, `k8s://NAMESPACE/POD[/CONTAINER]`).
    #[arg(long, value_name = "HOST", env = "CODEX_REMOTE_HOST")]
    pub host: Option<String>,
    /// Remote workspace name (default: the project directory's name).
    #[arg(long, value_name = "NAME")]
    pub project: Option<String>,
    /// Push the project root even when it is the home directory, `/`, a repository above the
    /// working directory with no commit, or above sync.max_push_files / sync.max_push_bytes.
    #[arg(long)]
    pub confirm_push: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour when stdout is a terminal and NO_COLOR is unset.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The run id (see `codex-remote runs`), `last` or `last~N`.
    pub run: String,
    /// Only the stat summary.
    #[arg(long)]
    pub stat: bool,
    /// Colour the patch.
    #[arg(long, value_enum, default_value = "auto")]
    pub color: ColorChoice,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// The run id (see `codex-remote runs`), `last` or `last~N`.
    pub run: String,
    /// Apply the result to the local tree (all or nothing; local edits are never overwritten).
    #[arg(long)]
    pub apply: bool,
    /// Apply even when the result changes restricted files.
    #[arg(long, requires = "apply")]
    pub allow_restricted: bool,
    /// Apply even a result that looks destructive and would be held back (see `[apply]` in the config).
    #[arg(long, requires = "apply")]
    pub allow_held_back: bool,
    /// Apply everything but the changes to restricted files, and list what was skipped.
    #[arg(long, requires = "apply", conflicts_with = "allow_restricted")]
    pub skip_restricted: bool,
    /// Keep the run's tree on the host after a successful apply (by default it goes back to the
    /// host's pool); on a host made on demand, keep the run's container.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Remove the host trees of applied runs and of runs older than --older-than.
    #[arg(long)]
    pub prune: bool,
    /// Age in days after which --prune removes a run's tree.
    #[arg(long, value_name = "DAYS", default_value_t = 7, requires = "prune")]
    pub older_than: u64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SchemaKind {
    /// Task files.
    Task,
    /// Config files.
    Config,
    /// Orchestration plans (task_plan.json).
    Plan,
    /// The events of `--json` output (one per line) and of the library's event stream.
    Events,
}

#[derive(Debug, Args)]
pub struct SkillArgs {
    /// Write it to DIR/codex-remote/SKILL.md (default DIR: .agent/skills).
    #[arg(long)]
    pub install: bool,
    /// The skills directory for --install, e.g. .claude/skills.
    #[arg(long, value_name = "DIR", requires = "install")]
    pub dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which format.
    pub kind: SchemaKind,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Write the user file ($XDG_CONFIG_HOME/codex-remote/config.toml) instead of ./codex-remote.toml.
    #[arg(long)]
    pub user: bool,
    /// Write to this path instead.
    #[arg(long, value_name = "FILE", conflicts_with = "user")]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the throwaway project (and print where it is) instead of removing it.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}
