//! `codex-remote mcp`: the workflow as Model Context Protocol tools over stdio, built with the
//! official Rust SDK (`rmcp`) on the core [`Engine`] (no shelling out to the CLI).
//!
//! Tools: `plan`, `run`, `status`, `wait`, `logs`, `diff`, `apply`, `cancel`, `checkpoint`,
//! `orchestrate`. Their input and output schemas are generated with `schemars` from the types
//! below, which reuse core's own schema types (the task file's `TaskSpec`, `Event`,
//! `FileChange`, `Phase`, `Usage`). A failure is a tool error whose structured content carries
//! the same classification as the CLI's exit codes. Runs are also resources:
//! `codex-remote://runs/<id>` reads as the run's record, patch and events.
//!
//! stdout is the protocol stream: nothing else may be written there. Logs go to stderr.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use codex_remote_core::task::{TaskSpec, TaskType};
use codex_remote_core::Phase;
use codex_remote_core::PlanOverrides;
use codex_remote_core::{Engine, Error, Event, EventKind};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, ListResourcesResult, PaginatedRequestParams,
    ProgressNotificationParam, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    RequestMetaObject, Resource, ResourceContents, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_handler, tool_router, ErrorData, Json, Peer, RoleServer, ServerHandler};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::exit;

/// The URI scheme of run resources.
pub const RESOURCE_PREFIX: &str = "codex-remote://runs/";

/// A failed tool call, classified like the CLI's exit codes.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ToolFailure {
    /// `bad-input`, `connection`, `prerequisite`, `rate-limited`, `not-applied`,
    /// `task-failed` or `cancelled`, as in `--json` error lines.
    pub kind: String,
    /// The exit code `codex-remote` would end with (2, 3, 4, 5, 6, 1, 130).
    pub exit_code: i32,
    /// What went wrong.
    pub message: String,
    /// How to fix it, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// More about it: the conflicting or refused files, as `--json` errors carry them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl From<Error> for ToolFailure {
    /// The same object as a `--json` error line (see docs/cli.md), so an agent reads one shape.
    fn from(error: Error) -> Self {
        let json = crate::error::CliError::Core(error).to_json();
        // `--json` prints `{"error": {...}}`; the object inside is the failure.
        let json = json.get("error").cloned().unwrap_or(json);
        let mut details = json.clone();
        if let Some(map) = details.as_object_mut() {
            for key in ["kind", "exit_code", "message", "hint"] {
                map.remove(key);
            }
        }
        ToolFailure {
            kind: json["kind"].as_str().unwrap_or("task-failed").to_string(),
            exit_code: json["exit_code"].as_i64().unwrap_or(1) as i32,
            message: json["message"].as_str().unwrap_or_default().to_string(),
            hint: json["hint"].as_str().map(str::to_string),
            details: details
                .as_object()
                .filter(|m| !m.is_empty())
                .map(|_| details.clone()),
        }
    }
}

impl ToolFailure {
    fn bad_input(message: impl Into<String>, hint: Option<&str>) -> Self {
        ToolFailure {
            kind: "bad-input".into(),
            exit_code: exit::USAGE,
            message: message.into(),
            hint: hint.map(str::to_string),
            details: None,
        }
    }

    /// The MCP tool error (`isError: true`): the failure as one JSON object in a text block, so
    /// an agent reads what went wrong, its class and its fix.
    fn into_error(self) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text(
            serde_json::to_string(&self).expect("serialises"),
        )])
    }
}

fn fail(error: Error) -> CallToolResult {
    ToolFailure::from(error).into_error()
}

/// Resource handlers answer with protocol errors.
fn protocol_error(error: Error) -> ErrorData {
    let failure = ToolFailure::from(error);
    ErrorData::internal_error(failure.message.clone(), serde_json::to_value(&failure).ok())
}

/// A task: a task object, a task file, or a prompt with its type.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskInput {
    /// A task, as in a task file (see `codex-remote schema task`).
    #[serde(default)]
    #[schemars(with = "Option<TaskSpec>")]
    pub task: Option<serde_json::Value>,
    /// A task file (YAML or JSON), relative to the project.
    #[serde(default)]
    pub task_file: Option<String>,
    /// A one-off prompt (with `type`).
    #[serde(default)]
    pub prompt: Option<String>,
    /// The task type of a prompt.
    #[serde(default, rename = "type")]
    pub task_type: Option<TaskType>,
    /// Files in scope of a prompt (globs).
    #[serde(default)]
    pub files: Vec<String>,
    /// The host (a config name, `local`, an ssh destination, a container URL).
    #[serde(default)]
    pub host: Option<String>,
    /// The Codex model, overriding the selection.
    #[serde(default)]
    pub model: Option<String>,
}

/// `run`'s input.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct RunInput {
    /// What to run.
    #[serde(flatten)]
    pub task: TaskInput,
    /// Apply the result to the project when the run ends (default true; applied by `wait`).
    #[serde(default = "yes")]
    pub apply: bool,
}

fn yes() -> bool {
    true
}

/// One run.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct RunId {
    /// The run id (or `last`).
    pub run_id: String,
}

/// `status`'s input.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct StatusInput {
    /// A run id, or an orchestration id; all runs when absent.
    #[serde(default)]
    pub run_id: Option<String>,
}

/// `wait`'s input.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct WaitInput {
    /// The run id.
    pub run_id: String,
    /// Seconds to wait at most (default 600); the run goes on afterwards.
    #[serde(default)]
    pub timeout_secs: Option<f64>,
}

/// `logs`'s input.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct LogsInput {
    /// The run id.
    pub run_id: String,
    /// Skip this many recorded events (from a previous call's `next_offset`).
    #[serde(default)]
    pub offset: usize,
}

/// `apply`'s input, as `pull RUN --apply`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct ApplyInput {
    /// The run id.
    pub run_id: String,
    /// Apply even if restricted files changed (never protected ones).
    #[serde(default)]
    pub allow_restricted: bool,
    /// Keep the run's tree on the host.
    #[serde(default)]
    pub keep: bool,
}

/// `checkpoint`'s input.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct CheckpointInput {
    /// The spec file, relative to the project.
    pub file: String,
    /// The checklist item, exactly as written.
    pub item: String,
    /// The run to credit in the note.
    #[serde(default)]
    pub run_id: Option<String>,
}

/// `orchestrate`'s input.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct OrchestrateInput {
    /// The task_plan.json, relative to the project.
    pub plan: String,
    /// Hosts to spread the tasks over (default: the default host).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Runs at once (default 1).
    #[serde(default)]
    pub parallel: Option<usize>,
}

/// A started run.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Started {
    /// The run id: give it to `wait`, `status`, `logs`, `diff`, `apply`, `cancel`.
    pub run_id: String,
    /// The host it runs on.
    pub host: String,
    /// The model chosen.
    pub model: String,
}

/// A run as recorded.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RunView {
    /// The run id.
    pub run_id: String,
    /// The task id.
    pub task_id: String,
    /// The host.
    pub host: String,
    /// Where the run is.
    pub phase: Phase,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it was applied, if it was.
    pub applied_at: Option<String>,
    /// Why it failed or was refused, if it did.
    pub error: Option<String>,
}

impl From<&codex_remote_core::RunRecord> for RunView {
    fn from(r: &codex_remote_core::RunRecord) -> Self {
        RunView {
            run_id: r.id.clone(),
            task_id: r.task_id.clone(),
            host: r.host.clone(),
            phase: r.phase,
            created_at: r.created_at.clone(),
            applied_at: r.applied_at.clone(),
            error: r.error.clone(),
        }
    }
}

/// `status`'s answer.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StatusOutput {
    /// The runs asked about (one, or all of the project's).
    pub runs: Vec<RunView>,
    /// The orchestration asked about, when the id named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orchestration: Option<OrchestrationView>,
}

/// A run's end, as `wait` reports it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct WaitOutput {
    /// The run id.
    pub run_id: String,
    /// Whether the run has ended (false: the timeout came first; call `wait` again).
    pub finished: bool,
    /// Where the run is.
    pub phase: Phase,
    /// The files changed.
    pub files: Vec<codex_remote_core::FileChange>,
    /// Whether the result was applied to the project.
    pub applied: bool,
    /// The agent's last message.
    pub last_message: Option<String>,
    /// Tokens used.
    pub usage: Option<codex_remote_core::events::Usage>,
    /// Why it failed, when it did (the same classification as the CLI's exit codes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<ToolFailure>,
}

/// `logs`'s answer.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LogsOutput {
    /// The events from `offset` on.
    pub events: Vec<Event>,
    /// The offset to ask from next time.
    pub next_offset: usize,
}

/// `diff`'s answer.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DiffOutput {
    /// The run id.
    pub run_id: String,
    /// The files changed.
    pub files: Vec<codex_remote_core::FileChange>,
    /// The patch (a git patch; binary parts are base85 as git writes them).
    pub patch: String,
}

/// `apply`'s answer.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ApplyOutput {
    /// The run id.
    pub run_id: String,
    /// The files applied.
    pub files: Vec<codex_remote_core::FileChange>,
    /// Whether the host's tree was removed.
    pub remote_removed: bool,
}

/// `cancel`'s answer.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CancelOutput {
    /// The run, as recorded after cancelling.
    pub run: RunView,
}

/// `checkpoint`'s answer.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CheckpointOutput {
    /// `marked` (ticked now) or `already` (it was ticked).
    pub outcome: String,
}

/// An orchestration started by `orchestrate`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct OrchestrationView {
    /// Its id (give it to `status`).
    pub id: String,
    /// Whether it has ended.
    pub finished: bool,
    /// Tasks completed, in plan order.
    pub completed: Vec<String>,
    /// Tasks that failed or were not applied, with why.
    pub failed: Vec<(String, String)>,
    /// Why the whole orchestration failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<ToolFailure>,
}

type Outcome<T> = Option<Result<T, ToolFailure>>;

/// The MCP server: one engine for the project it was started in.
#[derive(Clone)]
pub struct McpServer {
    engine: Engine,
    root: PathBuf,
    tool_router: ToolRouter<Self>,
    /// One follower per run, shared by every `wait` on it.
    follows: Arc<Mutex<HashMap<String, watch::Receiver<Outcome<WaitOutput>>>>>,
    orchestrations: Arc<Mutex<HashMap<String, watch::Receiver<OrchestrationView>>>>,
}

impl McpServer {
    /// A server for the project at `root`.
    pub fn new(engine: Engine) -> Self {
        let root = engine.root().to_path_buf();
        McpServer {
            engine,
            root,
            tool_router: Self::tool_router(),
            follows: Arc::default(),
            orchestrations: Arc::default(),
        }
    }

    /// Every tool's name and description (for the agent skill).
    pub fn tool_list() -> Vec<(String, String)> {
        Self::tool_router()
            .list_all()
            .into_iter()
            .map(|t| {
                (
                    t.name.to_string(),
                    t.description.map(|d| d.to_string()).unwrap_or_default(),
                )
            })
            .collect()
    }

    fn resolve(&self, run_id: &str) -> Result<String, CallToolResult> {
        let runs = self.engine.list().map_err(fail)?;
        if run_id == "last" {
            return runs
                .last()
                .map(|r| r.id.clone())
                .ok_or_else(|| ToolFailure::bad_input("there are no runs yet", None).into_error());
        }
        Ok(run_id.to_string())
    }

    fn path_in_project(&self, relative: &str, what: &str) -> Result<PathBuf, CallToolResult> {
        let path = Path::new(relative);
        let joined = if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.root.join(path)
        };
        if !joined.exists() {
            return Err(ToolFailure::bad_input(
                format!("{what} `{relative}` does not exist"),
                Some("give a path relative to the project root"),
            )
            .into_error());
        }
        // The calling agent may have been steered by what it read: it reaches files of this
        // project only (no absolute path, `..` or symlink leading out).
        let inside = match (joined.canonicalize(), self.root.canonicalize()) {
            (Ok(real), Ok(root)) => real.starts_with(&root),
            _ => false,
        };
        if !inside {
            return Err(ToolFailure::bad_input(
                format!("{what} `{relative}` is outside the project"),
                Some("give a path inside the project, relative to its root"),
            )
            .into_error());
        }
        Ok(joined)
    }

    fn load_task(&self, input: &TaskInput) -> Result<TaskSpec, CallToolResult> {
        let loaded = match (&input.task, &input.task_file, &input.prompt) {
            (Some(task), None, None) if !task.is_object() => {
                return Err(ToolFailure::bad_input(
                    "argument `task`: must be a task object, not a string or other value",
                    Some("give `task` as an object ({\"title\", \"type\", \"requirements\", ...}), or a task in words as `prompt` with `type`"),
                )
                .into_error())
            }
            // Named as the argument it came from; a line and column in its one-line JSON would
            // point nowhere useful (the field path says where).
            (Some(task), None, None) => TaskSpec::parse(
                &task.to_string(),
                "argument `task`",
                codex_remote_core::task::TaskFormat::Json,
            )
            .map_err(|mut e| {
                (e.line, e.column) = (None, None);
                e
            }),
            (None, Some(file), None) => {
                TaskSpec::load(&self.path_in_project(file, "the task file")?)
            }
            (None, None, Some(prompt)) => match input.task_type {
                Some(task_type) => TaskSpec::from_prompt(prompt, task_type, input.files.clone()),
                None => {
                    return Err(ToolFailure::bad_input(
                        "a prompt needs its `type`",
                        Some("add `type`, e.g. \"quick-fix\" or \"feature\""),
                    )
                    .into_error())
                }
            },
            _ => {
                return Err(ToolFailure::bad_input(
                    "give exactly one of `task`, `task_file` and `prompt`",
                    None,
                )
                .into_error())
            }
        };
        loaded.map_err(|e| fail(e.into()))
    }

    fn plan_of(&self, input: &TaskInput) -> Result<codex_remote_core::RunPlan, CallToolResult> {
        let task = self.load_task(input)?;
        self.engine
            .plan(
                task,
                &PlanOverrides {
                    host: input.host.as_deref(),
                    model: input.model.as_deref(),
                },
            )
            .map_err(fail)
    }

    /// The shared follower of a run: attaches once, finishes the run as it was asked to.
    fn follower(&self, run_id: &str) -> watch::Receiver<Outcome<WaitOutput>> {
        let mut follows = self.follows.lock().expect("not poisoned");
        if let Some(rx) = follows.get(run_id) {
            return rx.clone();
        }
        let (tx, rx) = watch::channel(None);
        follows.insert(run_id.to_string(), rx.clone());
        let engine = self.engine.clone();
        let id = run_id.to_string();
        tokio::spawn(async move {
            let outcome = follow(&engine, &id).await;
            let _ = tx.send(Some(outcome));
        });
        rx
    }

    fn view(&self, run_id: &str) -> Result<RunView, CallToolResult> {
        let record = self
            .engine
            .list()
            .map_err(fail)?
            .into_iter()
            .find(|r| r.id == run_id)
            .ok_or_else(|| {
                ToolFailure::bad_input(format!("there is no run `{run_id}`"), None).into_error()
            })?;
        Ok(RunView::from(&record))
    }
}

/// Follows a run to its end (attaching when its agent still works) and reports it.
async fn follow(engine: &Engine, run_id: &str) -> Result<WaitOutput, ToolFailure> {
    let status = engine.status(run_id).await.map_err(ToolFailure::from)?;
    if matches!(status.run.phase, Phase::Running | Phase::Retrieving) {
        let handle = engine.attach(run_id).await.map_err(ToolFailure::from)?;
        return match handle.wait().await {
            Ok(done) => Ok(WaitOutput {
                run_id: run_id.to_string(),
                finished: true,
                phase: engine
                    .status(run_id)
                    .await
                    .map(|s| s.run.phase)
                    .unwrap_or(Phase::Completed),
                files: done.summary.files,
                applied: done.summary.applied,
                last_message: done.summary.last_message,
                usage: Some(done.summary.usage),
                failure: None,
            }),
            Err(e) => {
                let phase = engine
                    .status(run_id)
                    .await
                    .map(|s| s.run.phase)
                    .unwrap_or(Phase::Failed);
                Ok(WaitOutput {
                    run_id: run_id.to_string(),
                    finished: true,
                    phase,
                    files: Vec::new(),
                    applied: false,
                    last_message: None,
                    usage: None,
                    failure: Some(ToolFailure::from(e)),
                })
            }
        };
    }
    // Already ended: report what the record and the stored patch say.
    let files = engine
        .diff(run_id)
        .await
        .map(|d| d.files)
        .unwrap_or_default();
    Ok(WaitOutput {
        run_id: run_id.to_string(),
        finished: true,
        phase: status.run.phase,
        files,
        applied: status.run.applied_at.is_some(),
        last_message: None,
        usage: None,
        failure: status.run.error.as_ref().map(|e| ToolFailure {
            kind: "task-failed".into(),
            exit_code: exit::TASK_FAILED,
            message: e.clone(),
            hint: None,
            details: None,
        }),
    })
}

fn short(event: &Event) -> String {
    let json = serde_json::to_value(event).unwrap_or_default();
    let name = json["event"].as_str().unwrap_or("event").to_string();
    match &event.kind {
        EventKind::Phase { phase } => {
            format!("phase {phase}")
        }
        _ => name,
    }
}

/// The `plan` tool's result: `plan --json`'s object. The report borrows its plan, so the value is
/// carried serialised and its schema is the report's own.
#[derive(Debug, Serialize)]
#[serde(transparent)]
struct PlanOutput(serde_json::Value);

impl JsonSchema for PlanOutput {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        codex_remote_core::PlanReport::<'static>::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        codex_remote_core::PlanReport::<'static>::json_schema(generator)
    }
}

#[tool_router]
impl McpServer {
    /// What a run of this task would do, without contacting the host.
    #[tool(
        name = "plan",
        description = "Plan a task without running it: the model and why, the host and remote directory, the restricted files, and the exact instruction Codex would get. Give a task object, a task_file, or a prompt with its type."
    )]
    async fn plan(
        &self,
        Parameters(input): Parameters<TaskInput>,
    ) -> Result<Json<PlanOutput>, CallToolResult> {
        let plan = self.plan_of(&input)?;
        Ok(Json(PlanOutput(
            serde_json::to_value(plan.report()).expect("plan reports serialise"),
        )))
    }

    /// Starts a run detached and returns its id at once.
    #[tool(
        name = "run",
        description = "Delegate a coding task to Codex on a host: pushes the project, starts the agent detached and returns the run id at once. Then call `wait` (the result is applied when `apply` is true), or `status`, `logs`, `diff`, `apply`, `cancel`."
    )]
    async fn run(
        &self,
        Parameters(input): Parameters<RunInput>,
    ) -> Result<Json<Started>, CallToolResult> {
        let plan = self.plan_of(&input.task)?;
        let mut options = self.engine.run_options();
        options.apply = input.apply;
        options.checkpoint = plan.task.checkpoint.clone();
        let record = self
            .engine
            .start_detached(&plan, options)
            .await
            .map_err(fail)?;
        Ok(Json(Started {
            run_id: record.id,
            host: record.host,
            model: plan.model.model.clone(),
        }))
    }

    /// One run, an orchestration, or every run of the project.
    #[tool(
        name = "status",
        description = "Where runs are: one run (run_id), an orchestration (its id from `orchestrate`), or every run of the project."
    )]
    async fn status(
        &self,
        Parameters(input): Parameters<StatusInput>,
    ) -> Result<Json<StatusOutput>, CallToolResult> {
        if let Some(id) = &input.run_id {
            let orchestration = self
                .orchestrations
                .lock()
                .expect("not poisoned")
                .get(id)
                .map(|rx| rx.borrow().clone());
            if let Some(view) = orchestration {
                return Ok(Json(StatusOutput {
                    runs: Vec::new(),
                    orchestration: Some(view),
                }));
            }
            let id = self.resolve(id)?;
            let status = self.engine.status(&id).await.map_err(fail)?;
            return Ok(Json(StatusOutput {
                runs: vec![RunView::from(&status.run)],
                orchestration: None,
            }));
        }
        let runs = self.engine.list().map_err(fail)?;
        Ok(Json(StatusOutput {
            runs: runs.iter().map(RunView::from).collect(),
            orchestration: None,
        }))
    }

    /// Waits for a run to end (progress notifications while waiting).
    #[tool(
        name = "wait",
        description = "Wait for a run to end, up to timeout_secs (default 600): its files, whether it was applied, the agent's last message and tokens. Sends progress notifications while waiting. finished=false means the timeout came first: call again."
    )]
    async fn wait(
        &self,
        Parameters(input): Parameters<WaitInput>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
    ) -> Result<Json<WaitOutput>, CallToolResult> {
        let id = self.resolve(&input.run_id)?;
        self.view(&id)?;
        let timeout =
            Duration::from_secs_f64(input.timeout_secs.unwrap_or(600.0).clamp(0.0, 86_400.0));
        let mut rx = self.follower(&id);
        let token = meta.get_progress_token();
        // Progress: the run's recorded events as they grow.
        let progress = {
            let engine = self.engine.clone();
            let id = id.clone();
            let peer = peer.clone();
            tokio::spawn(async move {
                let Some(token) = token else { return };
                let mut seen = 0usize;
                loop {
                    let (tx, mut events) = tokio::sync::mpsc::channel(1024);
                    let _ = engine.logs(&id, false, tx).await;
                    let mut all = Vec::new();
                    while let Ok(e) = events.try_recv() {
                        all.push(e);
                    }
                    if all.len() > seen {
                        let message = all.last().map(short).unwrap_or_default();
                        seen = all.len();
                        let _ = peer
                            .notify_progress(
                                ProgressNotificationParam::new(token.clone(), seen as f64)
                                    .with_message(message),
                            )
                            .await;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            })
        };
        let ended = tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await;
        progress.abort();
        match ended {
            Ok(Ok(outcome)) => match outcome.clone().expect("waited for some") {
                Ok(done) => Ok(Json(done)),
                Err(failure) => Err(failure.into_error()),
            },
            Ok(Err(_)) => {
                Err(ToolFailure::bad_input("the run's follower went away", None).into_error())
            }
            Err(_) => {
                let view = self.view(&id)?;
                Ok(Json(WaitOutput {
                    run_id: id,
                    finished: false,
                    phase: view.phase,
                    files: Vec::new(),
                    applied: false,
                    last_message: None,
                    usage: None,
                    failure: None,
                }))
            }
        }
    }

    /// A run's recorded events from an offset.
    #[tool(
        name = "logs",
        description = "A run's events recorded so far (Codex's typed events), from `offset`; `next_offset` continues."
    )]
    async fn logs(
        &self,
        Parameters(input): Parameters<LogsInput>,
    ) -> Result<Json<LogsOutput>, CallToolResult> {
        let id = self.resolve(&input.run_id)?;
        let (tx, mut rx) = tokio::sync::mpsc::channel(usize::MAX >> 4);
        self.engine.logs(&id, false, tx).await.map_err(fail)?;
        let mut events = Vec::new();
        while let Ok(event) = rx.try_recv() {
            events.push(event);
        }
        let next_offset = events.len();
        Ok(Json(LogsOutput {
            events: events.into_iter().skip(input.offset).collect(),
            next_offset,
        }))
    }

    /// A run's change: the patch and its files.
    #[tool(
        name = "diff",
        description = "A run's change: the git patch and the files it touches."
    )]
    async fn diff(
        &self,
        Parameters(input): Parameters<RunId>,
    ) -> Result<Json<DiffOutput>, CallToolResult> {
        let id = self.resolve(&input.run_id)?;
        let diff = self.engine.diff(&id).await.map_err(fail)?;
        Ok(Json(DiffOutput {
            run_id: diff.run_id,
            files: diff.files,
            patch: String::from_utf8_lossy(&diff.patch).into_owned(),
        }))
    }

    /// Applies a run's change to the project, all or nothing.
    #[tool(
        name = "apply",
        description = "Apply a run's change to the project, all or nothing (as `pull RUN --apply`). A conflict with local edits or a restricted or protected file is refused with the details (exit code 6) and nothing is written."
    )]
    async fn apply(
        &self,
        Parameters(input): Parameters<ApplyInput>,
    ) -> Result<Json<ApplyOutput>, CallToolResult> {
        let id = self.resolve(&input.run_id)?;
        let applied = self
            .engine
            .apply(
                &id,
                &codex_remote_core::ApplyOptions {
                    allow_restricted: input.allow_restricted,
                    keep: input.keep,
                    ..Default::default()
                },
            )
            .await
            .map_err(fail)?;
        Ok(Json(ApplyOutput {
            run_id: applied.run_id,
            files: applied.files,
            remote_removed: applied.remote_removed,
        }))
    }

    /// Cancels a run's agent.
    #[tool(
        name = "cancel",
        description = "Cancel a run: its agent and everything it started end on the host. When the host holds no trace of the agent where the run started, nothing is cancelled: an error (kind `prerequisite`) and the run stays as recorded."
    )]
    async fn cancel(
        &self,
        Parameters(input): Parameters<RunId>,
    ) -> Result<Json<CancelOutput>, CallToolResult> {
        let id = self.resolve(&input.run_id)?;
        let record = self.engine.cancel(&id).await.map_err(fail)?;
        Ok(Json(CancelOutput {
            run: RunView::from(&record),
        }))
    }

    /// Ticks a spec's checklist item.
    #[tool(
        name = "checkpoint",
        description = "Tick a checklist item (`- [ ] item`) in a spec file of the project, exactly as written, atomically."
    )]
    async fn checkpoint(
        &self,
        Parameters(input): Parameters<CheckpointInput>,
    ) -> Result<Json<CheckpointOutput>, CallToolResult> {
        self.path_in_project(&input.file, "the spec file")?;
        let run_id = match &input.run_id {
            Some(run_id) => {
                let run_id = self.resolve(run_id)?;
                // The run id goes into the spec: a name like any other, never a line break.
                codex_remote_core::Name::parse(&run_id).map_err(|e| {
                    ToolFailure::bad_input(format!("`run_id`: {e}"), None).into_error()
                })?;
                Some(run_id)
            }
            None => None,
        };
        // Only a spec inside the project, symlinks resolved.
        let outcome = codex_remote_core::mark_checkpoint_in(
            &self.root,
            &input.file,
            &input.item,
            run_id.as_deref(),
        )
        .map_err(|e| fail(e.into()))?;
        let outcome = match outcome {
            codex_remote_core::CheckpointOutcome::Marked { .. } => "marked",
            _ => "already",
        };
        Ok(Json(CheckpointOutput {
            outcome: outcome.into(),
        }))
    }

    /// Starts a task_plan.json's pending entries and returns an id for `status`.
    #[tool(
        name = "orchestrate",
        description = "Run every pending `\"executor\": \"codex-remote\"` entry of a task_plan.json over hosts, N at once, applying results in plan order and keeping each entry's status true. Returns at once with an id that `status` understands."
    )]
    async fn orchestrate(
        &self,
        Parameters(input): Parameters<OrchestrateInput>,
    ) -> Result<Json<OrchestrationView>, CallToolResult> {
        let plan = self.path_in_project(&input.plan, "the plan")?;
        let hosts = if input.hosts.is_empty() {
            vec![
                self.engine
                    .config()
                    .host(None)
                    .map_err(|e| fail(e.into()))?
                    .name,
            ]
        } else {
            input.hosts.clone()
        };
        let id = format!(
            "orchestrate-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis()
        );
        let view = OrchestrationView {
            id: id.clone(),
            finished: false,
            completed: Vec::new(),
            failed: Vec::new(),
            failure: None,
        };
        let (tx, rx) = watch::channel(view.clone());
        self.orchestrations
            .lock()
            .expect("not poisoned")
            .insert(id.clone(), rx);
        let engine = self.engine.clone();
        let mut options = codex_remote_core::OrchestrateOptions {
            parallel: input.parallel.unwrap_or(1).max(1),
            fail_fast: false,
            run: engine.run_options(),
        };
        options.run.apply = true;
        tokio::spawn(async move {
            let result = engine.orchestrate(&plan, &hosts, options, None).await;
            tx.send_modify(|view| {
                view.finished = true;
                match result {
                    Ok(summary) => {
                        view.completed = summary.completed;
                        view.failed = summary.failed;
                        view.failed.extend(summary.not_applied);
                    }
                    Err(e) => view.failure = Some(ToolFailure::from(e)),
                }
            });
        });
        Ok(Json(view))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        );
        info = info.with_server_info(rmcp::model::Implementation::new(
            "codex-remote",
            env!("CARGO_PKG_VERSION"),
        ));
        info.instructions = Some(
            "Delegate heavy coding tasks to the OpenAI Codex CLI on another machine (or this one) and bring the result back safely: `run` then `wait` (or `apply`). Restricted files (package.json, package-lock.json) are never changed.".into(),
        );
        info
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let runs = self.engine.list().map_err(protocol_error)?;
        Ok(ListResourcesResult::with_all_items(
            runs.iter()
                .map(|r| {
                    Resource::new(format!("{RESOURCE_PREFIX}{}", r.id), r.id.clone())
                        .with_mime_type("application/json")
                })
                .collect(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let Some(id) = request.uri.strip_prefix(RESOURCE_PREFIX) else {
            return Err(ErrorData::resource_not_found(
                format!("no resource `{}`", request.uri),
                None,
            ));
        };
        let record = self
            .engine
            .list()
            .map_err(protocol_error)?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| ErrorData::resource_not_found(format!("no run `{id}`"), None))?;
        let dir = self.root.join(".codex-remote/runs").join(&record.id);
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let uri = &request.uri;
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(
                serde_json::to_string_pretty(&record).unwrap_or_default(),
                format!("{uri}/record"),
            ),
            ResourceContents::text(read("result.patch"), format!("{uri}/patch")),
            ResourceContents::text(read("events.jsonl"), format!("{uri}/events")),
        ])
        .into())
    }
}

/// Serves MCP on stdin/stdout until the client goes away.
pub async fn serve(engine: Engine) -> Result<(), std::io::Error> {
    use rmcp::ServiceExt;
    let server = McpServer::new(engine);
    let service = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(std::io::Error::other)?;
    service.waiting().await.map_err(std::io::Error::other)?;
    Ok(())
}
