//! The front door: one [`Engine`] per project, built from a [`Config`] with every part
//! injectable (how hosts are reached, how the project is pushed, how the agent runs, how the
//! model is chosen) and real defaults for each.
//!
//! ```no_run
//! # async fn demo() -> Result<(), codex_remote_core::Error> {
//! use codex_remote_core::{Config, Engine, PlanOverrides, TaskSpec};
//! let engine = Engine::new(Config::builtin(), "/src/app");
//! let task = TaskSpec::load(std::path::Path::new("task.yaml"))?;
//! let plan = engine.plan(task, &PlanOverrides { host: Some("gpu-box"), model: None })?;
//! let mut options = engine.run_options();
//! options.apply = false;
//! let done = engine.start(&plan, options).await?.wait().await?;
//! println!("{} files changed; patch of {} bytes", done.summary.files.len(), done.patch.len());
//! # Ok(()) }
//! ```
//!
//! Everything the engine does is recorded under the project's `.codex-remote/runs/`, so a run
//! started by one engine (or the CLI) can be attached to, diffed, applied or pruned by another.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::error::Error;
use crate::events::CodexEvent;
use crate::executor::{AgentState, CodexExecutor, Executor};
use crate::host::HostSpec;
use crate::input::InputError;
use crate::layout::RemoteLayout;
use crate::model::ModelSelector;
use crate::orchestrate::{OrchestrateOptions, OrchestrateSummary};
use crate::patch::{FileChange, ParsedPatch};
use crate::pipeline::{self, Project};
use crate::plan::{PlanOverrides, RunPlan};
use crate::progress::{Event, EventKind};
use crate::run::{RunEvent, RunOptions, RunSummary};
use crate::runs::{Phase, RunRecord};
use crate::sync::{PushProgress, PushReport, Syncer};
use crate::task::TaskSpec;
use crate::transport::ssh::SshOptions;
use crate::transport::{SharedTransport, TransportError};

/// Reaches a host: the engine asks it for a transport once per host and reuses it.
pub trait TransportFactory: Send + Sync {
    /// A transport for this host.
    fn connect(&self, host: HostSpec) -> Result<SharedTransport, TransportError>;
}

impl<F> TransportFactory for F
where
    F: Fn(HostSpec) -> Result<SharedTransport, TransportError> + Send + Sync,
{
    fn connect(&self, host: HostSpec) -> Result<SharedTransport, TransportError> {
        self(host)
    }
}

/// The default: local processes for the `local` host, OpenSSH for the others.
#[derive(Debug, Clone, Default)]
pub struct DefaultTransports(pub SshOptions);

/// Environment variable naming an ssh config file to use instead of `~/.ssh/config`.
pub const ENV_SSH_CONFIG: &str = "CODEX_REMOTE_SSH_CONFIG";

impl DefaultTransports {
    /// SSH options from the environment ([`ENV_SSH_CONFIG`]).
    pub fn from_env() -> Self {
        DefaultTransports(SshOptions {
            config_file: std::env::var_os(ENV_SSH_CONFIG).map(PathBuf::from),
            ..SshOptions::default()
        })
    }
}

impl TransportFactory for DefaultTransports {
    fn connect(&self, host: HostSpec) -> Result<SharedTransport, TransportError> {
        crate::transport::for_host(host, self.0.clone())
    }
}

/// Chooses how the project is pushed over a transport.
pub trait SyncerFactory: Send + Sync {
    /// The syncer for this transport.
    fn syncer(&self, transport: SharedTransport) -> Arc<dyn Syncer>;
}

impl<F> SyncerFactory for F
where
    F: Fn(SharedTransport) -> Arc<dyn Syncer> + Send + Sync,
{
    fn syncer(&self, transport: SharedTransport) -> Arc<dyn Syncer> {
        self(transport)
    }
}

/// The default: a local copy for `local`, rsync over SSH (with the tar fallback) otherwise.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultSyncers;

impl SyncerFactory for DefaultSyncers {
    fn syncer(&self, transport: SharedTransport) -> Arc<dyn Syncer> {
        crate::sync::syncer_for(transport)
    }
}

/// The workflow for one project: plan, run, attach, diff, apply, list, prune, orchestrate.
/// Cheap to clone (clones share connections).
#[derive(Clone)]
pub struct Engine {
    config: Config,
    root: PathBuf,
    project_name: Option<String>,
    /// The directory the root was found from, for the checks before pushing.
    found_from: Option<PathBuf>,
    /// The user confirmed pushing the root whatever it is and however large.
    push_confirmed: bool,
    transports: Arc<dyn TransportFactory>,
    syncers: Arc<dyn SyncerFactory>,
    executor: Arc<dyn Executor>,
    models: Arc<dyn ModelSelector>,
    connections: Arc<Mutex<HashMap<String, SharedTransport>>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("root", &self.root)
            .field("project_name", &self.project_name)
            .finish_non_exhaustive()
    }
}

/// How to apply a run's result.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Apply even if restricted files changed.
    pub allow_restricted: bool,
    /// Apply even a result that looks destructive (see [`crate::patch::HoldBackPolicy`]).
    pub allow_held_back: bool,
    /// Leave out the changes to restricted files and apply the rest.
    pub skip_restricted: bool,
    /// Keep the run's tree on the host afterwards.
    pub keep: bool,
}

/// Which runs to prune.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Runs created longer ago than this lose their host tree even when not applied (applied
    /// runs always do).
    pub older_than: Duration,
}

/// A run's change.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    /// The run.
    pub run_id: String,
    /// The files changed.
    pub files: Vec<FileChange>,
    /// The patch (a binary git patch; empty when nothing changed).
    #[serde(skip)]
    pub patch: Vec<u8>,
    /// Where it is stored.
    pub patch_path: PathBuf,
}

/// What applying did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Applied {
    /// The run.
    pub run_id: String,
    /// Where its patch is stored.
    pub patch_path: PathBuf,
    /// The files changed.
    pub files: Vec<FileChange>,
    /// Whether the host's tree is gone (given back to the pool, or removed with its container),
    /// by this apply or before it (e.g. when the run ended without `keep`).
    pub remote_removed: bool,
    /// What would have held the result back, taken because the options allowed it.
    pub warnings: Vec<crate::patch::Warning>,
    /// Restricted paths left out (`skip_restricted`).
    pub skipped: Vec<String>,
    /// What ticking the run's checklist item did, when it has one.
    pub checkpoint: Option<crate::checkpoint::CheckpointOutcome>,
}

/// What is known about a run: its record, its agent (probed only when it may be alive) and
/// its recorded events.
#[derive(Debug, Clone, Serialize)]
pub struct RunStatus {
    /// The record.
    pub run: RunRecord,
    /// The agent's state on the host, when the run is running.
    pub agent: Option<AgentState>,
    /// Codex events recorded locally.
    pub events_recorded: usize,
    /// The last meaningful one.
    pub last_event: Option<CodexEvent>,
}

/// A finished run: its summary and its patch.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// What happened (files, usage, last message, whether applied).
    pub summary: RunSummary,
    /// The run's change as a binary git patch (empty when nothing changed).
    pub patch: Vec<u8>,
}

/// A run in progress: follow its events, cancel it, or wait for its result.
///
/// Events are buffered until [`RunHandle::events`] takes them or [`RunHandle::wait`] drops
/// them; a caller that wants no events just waits.
#[derive(Debug)]
pub struct RunHandle {
    run_id: String,
    host: String,
    events: Option<mpsc::Receiver<Event>>,
    cancel: watch::Sender<bool>,
    task: JoinHandle<Result<RunResult, Error>>,
}

impl RunHandle {
    /// The run id.
    pub fn id(&self) -> &str {
        &self.run_id
    }

    /// The host it runs on.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The run's events, from its start (once: later calls return `None`).
    pub fn events(&mut self) -> Option<mpsc::Receiver<Event>> {
        self.events.take()
    }

    /// Asks for the run to be cancelled: its agent and everything it started end on the host,
    /// and [`RunHandle::wait`] returns [`Error::Cancelled`].
    pub fn cancel(&self) {
        let _ = self.cancel.send(true);
    }

    /// A handle that can cancel the run from elsewhere while this one waits.
    pub fn canceller(&self) -> Canceller {
        Canceller(self.cancel.clone())
    }

    /// Waits for the run to finish: retrieved, applied if asked, host tree returned to the pool
    /// unless kept.
    pub async fn wait(mut self) -> Result<RunResult, Error> {
        drop(self.events.take());
        self.task.await.map_err(|e| Error::Io {
            context: format!("following run `{}`", self.run_id),
            source: std::io::Error::other(e),
        })?
    }
}

/// Cancels a run from elsewhere (see [`RunHandle::canceller`]).
#[derive(Debug, Clone)]
pub struct Canceller(watch::Sender<bool>);

impl Canceller {
    /// Asks for the run to be cancelled.
    pub fn cancel(&self) {
        let _ = self.0.send(true);
    }
}

impl Engine {
    /// An engine for the project at `project_root`, with the real parts: SSH (or local)
    /// transports, rsync/tar/local-copy syncers, the Codex CLI, and the config's model table.
    pub fn new(config: Config, project_root: impl Into<PathBuf>) -> Self {
        let models = Arc::new(config.model_selector());
        Self {
            config,
            root: project_root.into(),
            project_name: None,
            found_from: None,
            push_confirmed: false,
            transports: Arc::new(DefaultTransports::default()),
            syncers: Arc::new(DefaultSyncers),
            executor: Arc::new(CodexExecutor),
            models,
            connections: Arc::default(),
        }
    }

    /// The engine for the project holding `dir` (the nearest directory with a
    /// `codex-remote.toml`, else a `.git`, else `dir`), configured as the `codex-remote` command
    /// is: the user's config file, the project's `codex-remote.toml`, `CODEX_REMOTE_*`
    /// variables, and the real parts.
    pub fn from_env(dir: &Path) -> Result<Self, Error> {
        let config = crate::config::ConfigLoader::from_env(dir.to_path_buf()).load()?;
        Ok(Self::found_from(config, dir).with_transports(DefaultTransports::from_env()))
    }

    /// An engine for the project holding `dir` (see [`crate::plan::find_project_root`]),
    /// remembering `dir` so a push can refuse a root that is wider than the project (see
    /// [`crate::sync::check_push`]).
    pub fn found_from(config: Config, dir: &Path) -> Self {
        let mut engine = Self::new(config, crate::plan::find_project_root(dir));
        engine.found_from = Some(dir.to_path_buf());
        engine
    }

    /// Pushes the root even when it is the home directory, `/`, a commitless repository above
    /// the working directory, or above `sync.max_push_files` / `sync.max_push_bytes` (the
    /// user's `--confirm-push`).
    pub fn with_push_confirmed(mut self, confirmed: bool) -> Self {
        self.push_confirmed = confirmed;
        self
    }

    /// Reaches hosts through this factory.
    pub fn with_transports(mut self, transports: impl TransportFactory + 'static) -> Self {
        self.transports = Arc::new(transports);
        self
    }

    /// Pushes the project with syncers from this factory.
    pub fn with_syncers(mut self, syncers: impl SyncerFactory + 'static) -> Self {
        self.syncers = Arc::new(syncers);
        self
    }

    /// Runs the agent with this executor.
    pub fn with_executor(mut self, executor: impl Executor + 'static) -> Self {
        self.executor = Arc::new(executor);
        self
    }

    /// Chooses models with this selector.
    pub fn with_model_selector(mut self, models: impl ModelSelector + 'static) -> Self {
        self.models = Arc::new(models);
        self
    }

    /// Names the project's remote workspace (default: the task's `project`, else the root's
    /// directory name).
    pub fn with_project_name(mut self, name: impl Into<String>) -> Self {
        self.project_name = Some(name.into());
        self
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The project root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Run options with the config's defaults (apply, return the host tree to the pool, retry
    /// policy).
    pub fn run_options(&self) -> RunOptions {
        RunOptions::from_config(&self.config)
    }

    /// The transport for a host, connected once and reused.
    pub fn transport(&self, host: &HostSpec) -> Result<SharedTransport, Error> {
        let mut connections = self.connections.lock().expect("not poisoned");
        if let Some(transport) = connections.get(&host.name) {
            return Ok(transport.clone());
        }
        let transport = self.transports.connect(host.clone())?;
        connections.insert(host.name.clone(), transport.clone());
        Ok(transport)
    }

    fn transport_named(&self, host: &str) -> Result<SharedTransport, Error> {
        self.transport(&self.config.host(Some(host))?)
    }

    /// The transport that reaches a run: its own container when its host is made on demand.
    fn transport_of(&self, record: &RunRecord) -> Result<SharedTransport, Error> {
        crate::ondemand::for_run(record, self.transport_named(&record.host)?)
    }

    /// Closes every connection the engine opened (later use reconnects).
    pub async fn close(&self) {
        let connections: Vec<SharedTransport> = self
            .connections
            .lock()
            .expect("not poisoned")
            .drain()
            .map(|(_, t)| t)
            .collect();
        for transport in connections {
            let _ = transport.close().await;
        }
    }

    pub(crate) fn project(&self, name: Option<&str>) -> Result<Project, Error> {
        let mut project = Project::new(&self.root, name.or(self.project_name.as_deref()))
            .map_err(|e| e.input("<project name>", "project"))?;
        project.origin.found_from = self.found_from.clone();
        project.push_confirmed = self.push_confirmed;
        Ok(project)
    }

    /// What a push would send (root, files, bytes), or why it is refused; checked again by
    /// every push.
    pub fn push_scope(&self) -> Result<crate::sync::PushScope, Error> {
        pipeline::push_scope(&self.config, &self.project(None)?)
    }

    /// The project's remote workspace name.
    pub fn project_name(&self) -> Result<String, Error> {
        Ok(self.project(None)?.name.into_string())
    }

    /// Plans a task: host, model (with why), instruction, restricted files.
    pub fn plan(&self, task: TaskSpec, overrides: &PlanOverrides<'_>) -> Result<RunPlan, Error> {
        let mut plan = crate::plan::plan(
            task,
            &self.config,
            self.models.as_ref(),
            overrides,
            &self.root,
        )?;
        if let Some(name) = &self.project_name {
            plan.project = name.clone();
            plan.remote_dir = plan.host.project_dir(name);
        }
        Ok(plan)
    }

    /// Plans the entry `task_id` of a task_plan.json: its `task_file`, or its `instruction`,
    /// which is then sent exactly as the plan's author wrote it.
    pub fn plan_entry(
        &self,
        plan_path: &Path,
        task_id: &str,
        overrides: &PlanOverrides<'_>,
    ) -> Result<RunPlan, Error> {
        let (task, raw) = crate::taskplan::task_spec(plan_path, task_id)?;
        let mut plan = self.plan(task, overrides)?;
        if let Some(raw) = raw {
            plan.instruction.text = raw;
        }
        Ok(plan)
    }

    /// Pushes the project to a host (the default host when `None`).
    pub async fn push(
        &self,
        host: Option<&str>,
        progress: Option<mpsc::Sender<PushProgress>>,
    ) -> Result<PushReport, Error> {
        let transport = self.transport(&self.config.host(host)?)?;
        let project = self.project(None)?;
        self.push_to(transport, &project, progress).await
    }

    async fn push_to(
        &self,
        transport: SharedTransport,
        project: &Project,
        progress: Option<mpsc::Sender<PushProgress>>,
    ) -> Result<PushReport, Error> {
        let syncer = self.syncers.syncer(transport.clone());
        pipeline::push_with(syncer.as_ref(), transport, &self.config, project, progress).await
    }

    /// Checks the agent's prerequisites on a host (codex found after the shell init, Codex able
    /// to authenticate), from the project's per-host memory when it is fresh: see
    /// [`crate::prerequisites`].
    pub async fn check_prerequisites(
        &self,
        transport: &dyn crate::transport::Transport,
    ) -> Result<crate::prerequisites::Prerequisites, Error> {
        let cache = crate::prerequisites::PrerequisiteCache::new(&self.root);
        crate::prerequisites::ensure(transport, &cache).await
    }

    /// Starts a planned run: pushes (unless `options.skip_push`), prepares the run's tree,
    /// launches the agent, and follows it in the background. With `options.task_plan`, the
    /// entry is kept true throughout.
    pub async fn start(&self, plan: &RunPlan, options: RunOptions) -> Result<RunHandle, Error> {
        let (tx, rx) = mpsc::channel(1024);
        let retry = (options.initial_delay, options.max_delay);
        let (record, transport) = self.launch(plan, options, &tx).await?;
        Ok(self.follow(record, transport, retry, tx, rx))
    }

    /// Starts a planned run and leaves its agent working on the host: follow it later with
    /// [`Engine::attach`].
    pub async fn start_detached(
        &self,
        plan: &RunPlan,
        options: RunOptions,
    ) -> Result<RunRecord, Error> {
        // Nobody listens: events are dropped as they come.
        let (tx, _) = mpsc::channel(1);
        Ok(self.launch(plan, options, &tx).await?.0)
    }

    async fn launch(
        &self,
        plan: &RunPlan,
        mut options: RunOptions,
        events: &mpsc::Sender<Event>,
    ) -> Result<(RunRecord, SharedTransport), Error> {
        let project = self.project(Some(&plan.project))?;
        // Refused before anything is sent: the spec a run ticks is inside the project.
        if let Some(spec) = &options.checkpoint {
            crate::checkpoint::spec_in_project(&project.root, &spec.file)?;
        }
        let entry = options.task_plan.clone();
        if let Some((path, id)) = &entry {
            crate::taskplan::mark_running(path, id, None)?;
        }
        let started = async {
            let transport = self.transport(&plan.host)?;
            // A host made on demand has no container yet: the run starts its own, and checks and
            // pushes there.
            let on_demand = crate::ondemand::spec_of(&plan.host).is_some();
            // Before anything is pushed: codex on the host and a way for it to authenticate.
            if !on_demand {
                self.check_prerequisites(transport.as_ref()).await?;
            }
            if !options.skip_push && !on_demand {
                let _ = events
                    .send(
                        EventKind::Phase {
                            phase: Phase::Syncing,
                        }
                        .into(),
                    )
                    .await;
                let push = match pipeline::while_warming(
                    transport.as_ref(),
                    self.push_to(transport.clone(), &project, None),
                )
                .await
                {
                    Ok(push) => push,
                    Err(e) => {
                        return Err(crate::run::push_failed(
                            &project,
                            transport.as_ref(),
                            &plan.task.id,
                            e,
                        ))
                    }
                };
                let _ = events.send(EventKind::Pushed { push }.into()).await;
                options.skip_push = true;
            }
            let (run_tx, run_rx) = mpsc::channel(64);
            let forward = forward(run_rx, events.clone());
            let record = crate::run::start(
                plan,
                &self.config,
                &project,
                transport.clone(),
                self.executor.as_ref(),
                &options,
                &run_tx,
            )
            .await;
            drop(run_tx);
            let _ = forward.await;
            Ok::<_, Error>((record?, transport))
        }
        .await;
        if let Some((path, id)) = &entry {
            match &started {
                Ok((record, _)) => crate::taskplan::set_run_id(path, id, &record.id)?,
                Err(_) => {
                    let run_id = latest_run_of(&project, &plan.task.id);
                    crate::taskplan::settle_run(path, id, run_id.as_deref(), &started)?
                }
            }
        }
        started
    }

    /// Follows a run whose agent is working on the host (started detached, or whose client went
    /// away), from where the local record stopped, and finishes it as it was asked to.
    pub async fn attach(&self, run_id: &str) -> Result<RunHandle, Error> {
        let project = self.project(None)?;
        let record = project.runs().load(run_id)?;
        // A run that failed on the host's full disk says so again, as that failure.
        if let Some(full) = (record.phase == Phase::Failed)
            .then(|| Error::recorded_disk_full(&record.host, record.error.as_deref()?))
            .flatten()
        {
            return Err(full);
        }
        if record.kind == crate::runs::RunKind::Interactive {
            // Its agent was the TUI on a terminal: nothing to follow; its result is retrieved.
            return Err(InputError::new(
                format!("run `{}`", record.id),
                "it is an interactive session: there is no agent to attach to",
            )
            .hint(format!(
                "`codex-remote diff {0}` retrieves what it did; `codex-remote pull {0} --apply` applies it",
                record.id
            ))
            .into());
        }
        if !matches!(
            record.phase,
            Phase::Running | Phase::Waiting | Phase::Retrieving
        ) {
            return Err(Error::NotRunning {
                run_id: record.id.clone(),
                phase: record.phase.to_string(),
            });
        }
        let transport = self.transport_of(&record)?;
        let (tx, rx) = mpsc::channel(1024);
        let retry = self.config.retry();
        Ok(self.follow(
            record,
            transport,
            (retry.initial_delay, retry.max_delay),
            tx,
            rx,
        ))
    }

    fn follow(
        &self,
        mut record: RunRecord,
        transport: SharedTransport,
        retry: (Duration, Duration),
        events: mpsc::Sender<Event>,
        receiver: mpsc::Receiver<Event>,
    ) -> RunHandle {
        let (cancel_tx, mut cancel_rx) = watch::channel(false);
        let engine = self.clone();
        let (run_id, host) = (record.id.clone(), record.host.clone());
        let id = run_id.clone();
        let task = tokio::spawn(async move {
            let project = engine.project(Some(&record.project))?;
            let (run_tx, run_rx) = mpsc::channel(256);
            let forward = forward(run_rx, events);
            let followed = crate::run::follow_and_finish(
                &project,
                &engine.config,
                &mut record,
                transport.clone(),
                engine.executor.as_ref(),
                retry,
                &run_tx,
            );
            let result = tokio::select! {
                result = followed => result,
                // A dropped handle does not cancel: the agent lives on the host by design.
                _ = async {
                    if cancel_rx.wait_for(|c| *c).await.is_err() {
                        std::future::pending::<()>().await
                    }
                } => {
                    let mut latest = project.runs().load(&id)?;
                    crate::run::cancel(&project, &mut latest, transport.clone(), engine.executor.as_ref()).await?;
                    Err(Error::Cancelled { run_id: id.clone() })
                }
            };
            drop(run_tx);
            let _ = forward.await;
            if let Err(e) = &result {
                // Codex vanished or its credentials were refused: the next run checks again.
                crate::prerequisites::PrerequisiteCache::new(&project.root)
                    .forget_on(transport.host(), e);
            }
            let result = result.and_then(|summary| {
                let patch = project.runs().read_patch(&summary.run_id)?;
                Ok(RunResult { summary, patch })
            });
            let entry = project
                .runs()
                .load(&id)
                .ok()
                .and_then(|r| r.finish)
                .and_then(|f| f.task_plan);
            if let Some((path, entry_id)) = entry {
                crate::taskplan::settle_run(&path, &entry_id, Some(&id), &result)?;
            }
            result
        });
        RunHandle {
            run_id,
            host,
            events: Some(receiver),
            cancel: cancel_tx,
            task,
        }
    }

    /// A run's record, its agent's state (asked of the host only while it may be alive) and
    /// its recorded events.
    pub async fn status(&self, run_id: &str) -> Result<RunStatus, Error> {
        let project = self.project(None)?;
        let mut record = project.runs().load(run_id)?;
        // Read a line at a time: the log is as long as the agent made it.
        let (mut events_recorded, mut last_event) = (0, None);
        for line in
            crate::run::event_log_lines(&project.runs().run_dir(&record.id).join("events.jsonl"), 0)
        {
            events_recorded += 1;
            let event = CodexEvent::parse(&line);
            if !matches!(event, CodexEvent::Other { .. }) {
                last_event = Some(event);
            }
        }
        // (An interactive session has no supervised agent to probe: its terminal is the user's.)
        let agent = if matches!(record.phase, Phase::Running | Phase::Waiting)
            && record.attempt > 0
            && record.kind == crate::runs::RunKind::Exec
        {
            let transport = self.transport_of(&record)?;
            let dir = RemoteLayout::of_run(transport.host(), &record)
                .agent_dir(&record.id, record.attempt);
            let state = self.executor.probe(transport.as_ref(), &dir).await?;
            // The host knows best whether the run is parked (it parks with no client connected):
            // its answer is recorded.
            let (phase, resume_at) = match &state {
                crate::executor::AgentState::Waiting {
                    resume_at,
                    thread_id,
                    ..
                } => {
                    if record.thread_id.is_none() {
                        record.thread_id = thread_id.clone();
                    }
                    (Phase::Waiting, Some(crate::runs::rfc3339_of(*resume_at)))
                }
                _ => (Phase::Running, None),
            };
            if (phase, &resume_at) != (record.phase, &record.resume_at) {
                record.phase = phase;
                record.resume_at = resume_at;
                record.updated_at = crate::runs::now();
                project.runs().save(&record)?;
            }
            Some(state)
        } else {
            None
        };
        Ok(RunStatus {
            run: record,
            agent,
            events_recorded,
            last_event,
        })
    }

    /// Sends the run's recorded Codex events to `events`, then, with `follow` and while its
    /// agent works, the new ones as they come (recorded too), without finishing the run.
    pub async fn logs(
        &self,
        run_id: &str,
        follow: bool,
        events: mpsc::Sender<Event>,
    ) -> Result<(), Error> {
        let project = self.project(None)?;
        let store = project.runs();
        let mut record = store.load(run_id)?;
        for line in crate::run::event_log_lines(&store.run_dir(&record.id).join("events.jsonl"), 0)
        {
            let codex = CodexEvent::parse(&line);
            let _ = events.send(EventKind::Codex { codex }.into()).await;
        }
        if follow && matches!(record.phase, Phase::Running | Phase::Waiting) {
            let transport = self.transport_of(&record)?;
            let (tx, rx) = mpsc::channel(256);
            let forwarder = forward(rx, events);
            let followed = crate::run::follow_attempt(
                &store,
                &mut record,
                transport.as_ref(),
                self.executor.as_ref(),
                &tx,
            )
            .await;
            drop(tx);
            let _ = forwarder.await;
            followed?;
        }
        Ok(())
    }

    /// Cancels a run's agent (its whole process group on the host) and records it; its
    /// task_plan.json entry, if any, becomes `failed` ("cancelled").
    pub async fn cancel(&self, run_id: &str) -> Result<RunRecord, Error> {
        let project = self.project(None)?;
        let mut record = project.runs().load(run_id)?;
        let transport = self.transport_named(&record.host)?;
        crate::run::cancel(&project, &mut record, transport, self.executor.as_ref()).await?;
        if let Some((path, id)) = record.finish.as_ref().and_then(|f| f.task_plan.clone()) {
            let cancelled: Result<(), Error> = Err(Error::Cancelled {
                run_id: record.id.clone(),
            });
            crate::taskplan::settle_run(&path, &id, Some(&record.id), &cancelled)?;
        }
        Ok(record)
    }

    /// The run's change: the stored patch, fetched from the host first if it was not yet.
    pub async fn diff(&self, run_id: &str) -> Result<Diff, Error> {
        let project = self.project(None)?;
        let store = project.runs();
        let record = store.load(run_id)?;
        match store.read_patch(&record.id) {
            Ok(patch) => diff_of(&project, &record.id, patch),
            Err(_) => self.retrieve(run_id).await,
        }
    }

    /// Fetches the run's change from the host into its record, within the stored-patch limit.
    async fn retrieve_into(
        &self,
        project: &Project,
        record: &mut RunRecord,
    ) -> Result<crate::patch::ParsedPatch, Error> {
        let transport = self.transport_of(record)?;
        pipeline::retrieve_within(transport, project, record, self.config.stored_patch_limit())
            .await
    }

    /// Fetches the run's change from the host again (when its tree is still there) and stores
    /// it in the record.
    pub async fn retrieve(&self, run_id: &str) -> Result<Diff, Error> {
        let project = self.project(None)?;
        let store = project.runs();
        let mut record = store.load(run_id)?;
        if !record.remote_removed {
            self.retrieve_into(&project, &mut record).await?;
            // Retrieved: a finished run made on demand needs its container no more.
            let keep = record.finish.as_ref().is_some_and(|f| f.keep);
            if !keep && record.phase.is_finished() {
                crate::ondemand::release(&store, &mut record).await?;
            }
        }
        diff_of(&project, &record.id, store.read_patch(&record.id)?)
    }

    /// Applies the run's change to the project, all or nothing; then returns the host's tree
    /// to the pool unless `keep`. A run is applied at most once.
    pub async fn apply(&self, run_id: &str, options: &ApplyOptions) -> Result<Applied, Error> {
        let project = self.project(None)?;
        let store = project.runs();
        let mut record = store.load(run_id)?;
        if let Some(at) = &record.applied_at {
            return Err(InputError::new(
                format!("run `{}`", record.id),
                format!("it was already applied at {at}"),
            )
            .into());
        }
        // Retrieved to disk and applied from there: memory does not grow with the patch.
        if !record.remote_removed {
            self.retrieve_into(&project, &mut record).await?;
        }
        let applied = pipeline::apply(
            &self.config,
            &project,
            &mut record,
            pipeline::ApplyOptions {
                allow_restricted: options.allow_restricted,
                allow_held_back: options.allow_held_back,
                skip_restricted: options.skip_restricted,
            },
        )?;
        // Finish what the run asked for: its checklist item.
        let mut checkpoint = None;
        if let Some(spec) = record.finish.as_ref().and_then(|f| f.checkpoint.clone()) {
            checkpoint = Some(crate::checkpoint::mark_checkpoint_in(
                &project.root,
                &spec.file,
                &spec.item,
                Some(&record.id),
            )?);
        }
        if record.container.as_ref().is_some_and(|c| !c.removed) {
            // A run made on demand: its container goes, its tree with it (never under an agent
            // still working there: `attach` finishes that run).
            if !options.keep && !self.agent_may_be_working(&record).await {
                crate::ondemand::release(&store, &mut record).await?;
            }
        } else if !options.keep && !record.remote_removed {
            let transport = self.transport_named(&record.host)?;
            // The host layout is named after the run's own project.
            let project = self.project(Some(&record.project))?;
            pipeline::remove_remote(transport, &project, &mut record).await?;
        }
        Ok(Applied {
            patch_path: store.patch_path(&record.id),
            // The truth, whoever gave the tree back (this apply, or the run's own end).
            remote_removed: record.remote_removed,
            run_id: record.id,
            files: applied.patch.files,
            warnings: applied.warnings,
            skipped: applied.skipped,
            checkpoint,
        })
    }

    /// Whether the run's agent may still be working on its host (asked of the host while the
    /// record says it runs or is parked; an unanswered question counts as yes).
    async fn agent_may_be_working(&self, record: &RunRecord) -> bool {
        if !matches!(record.phase, Phase::Running | Phase::Waiting) || record.attempt == 0 {
            return false;
        }
        let Ok(transport) = self.transport_of(record) else {
            return true;
        };
        let dir =
            RemoteLayout::of_run(transport.host(), record).agent_dir(&record.id, record.attempt);
        !matches!(
            self.executor.probe(transport.as_ref(), &dir).await,
            Ok(AgentState::Finished { .. } | AgentState::Vanished | AgentState::NotStarted)
        )
    }

    /// Every run recorded in the project, oldest first.
    pub fn list(&self) -> Result<Vec<RunRecord>, Error> {
        Ok(self.project(None)?.runs().list()?)
    }

    /// Removes the host trees of applied runs, and of runs older than `older_than`. Returns the
    /// ids pruned.
    pub async fn prune(&self, options: &PruneOptions) -> Result<Vec<String>, Error> {
        let cutoff = SystemTime::now() - options.older_than;
        let mut pruned = Vec::new();
        for mut record in self.list()? {
            let old = humantime::parse_rfc3339(&record.created_at)
                .map(|t| t < cutoff)
                .unwrap_or(false);
            // A container made on demand that was left (kept, or its removal failed): it goes
            // once its run is over or retrieved.
            if record.container.as_ref().is_some_and(|c| !c.removed)
                && (record.phase.is_finished() || record.applied_at.is_some() || old)
            {
                crate::ondemand::release(&self.project(None)?.runs(), &mut record).await?;
                pruned.push(record.id.clone());
                continue;
            }
            if record.tree.is_none() || record.remote_removed {
                continue;
            }
            // A run whose agent may still work there keeps its tree, however old (never a
            // tree handed to the next run under a live agent, nor its files removed).
            if (record.applied_at.is_some() || old) && !self.agent_may_be_working(&record).await {
                let transport = self.transport_named(&record.host)?;
                let project = self.project(Some(&record.project))?;
                pipeline::remove_remote(transport, &project, &mut record).await?;
                pruned.push(record.id.clone());
            }
        }
        Ok(pruned)
    }

    /// Removes the idle run trees (trees no run holds) of the project's pool on every
    /// configured host its runs used (and of the pools its runs started in, in the workspace
    /// each run's record saved), and lets git collect the mirrors' unreachable objects.
    /// Returns `(host, trees removed)` for each host where some were.
    pub async fn prune_idle_trees(&self) -> Result<Vec<(String, usize)>, Error> {
        let project = self.project(None)?;
        let runs = self.list()?;
        let mut hosts: Vec<String> = runs.iter().map(|r| r.host.clone()).collect();
        hosts.sort();
        hosts.dedup();
        let mut removed = Vec::new();
        for host in hosts {
            // A host since removed from the config has nothing we could reach.
            let Ok(spec) = self.config.host(Some(&host)) else {
                continue;
            };
            // A host made on demand keeps no pool: each run's container went with it.
            if crate::ondemand::spec_of(&spec).is_some() {
                continue;
            }
            let on_host: Vec<RunRecord> = runs.iter().filter(|r| r.host == host).cloned().collect();
            let count =
                pipeline::prune_idle_trees(self.transport(&spec)?, &project, &on_host).await?;
            if count > 0 {
                removed.push((host, count));
            }
        }
        Ok(removed)
    }

    /// Runs every pending `codex-remote` entry of a task_plan.json over `hosts` (names from the
    /// config), applying results in plan order. Events, each with its task id, go to `events`.
    pub async fn orchestrate(
        &self,
        plan_path: &Path,
        hosts: &[String],
        mut options: OrchestrateOptions,
        events: Option<mpsc::Sender<Event>>,
    ) -> Result<OrchestrateSummary, Error> {
        let project = self.project(None)?;
        let mut transports = Vec::new();
        for name in hosts {
            transports.push(self.transport_named(name)?);
        }
        let plan = crate::taskplan::TaskPlan::load(plan_path)?;
        let has_work = !plan.pending().is_empty()
            || plan
                .tasks()
                .iter()
                .any(|t| t["executor"] == "codex-remote" && t["status"] == "running");
        if has_work && !transports.is_empty() {
            // One push per host serves every run of the plan; every host's agent prerequisites
            // are checked before the first push.
            // Hosts made on demand are checked and pushed to in each run's own container.
            let reached = || {
                transports
                    .iter()
                    .filter(|t| crate::ondemand::spec_of(t.host()).is_none())
            };
            for transport in reached() {
                self.check_prerequisites(transport.as_ref()).await?;
            }
            for transport in reached() {
                self.push_to(transport.clone(), &project, None).await?;
            }
        }
        options.run.skip_push = true;
        let (tx, mut rx) = mpsc::channel(1024);
        let forwarder = tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                if let Some(events) = &events {
                    let _ = events.send(Event::from(event)).await;
                }
            }
        });
        let result = crate::orchestrate::orchestrate(
            plan_path,
            &self.config,
            &project,
            transports,
            self.executor.clone(),
            &options,
            tx,
        )
        .await;
        let _ = forwarder.await;
        result
    }
}

/// Converts the run's internal events to [`Event`]s for the caller.
fn forward(mut rx: mpsc::Receiver<RunEvent>, events: mpsc::Sender<Event>) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            // A caller that dropped the stream does not hold up the run.
            if events.is_closed() {
                continue;
            }
            let _ = events.send(Event::from(event)).await;
        }
    })
}

fn diff_of(project: &Project, run_id: &str, patch: Vec<u8>) -> Result<Diff, Error> {
    let parsed = ParsedPatch::parse(&patch)?;
    Ok(Diff {
        run_id: run_id.to_string(),
        files: parsed.files,
        patch,
        patch_path: project.runs().patch_path(run_id),
    })
}

fn latest_run_of(project: &Project, task_id: &str) -> Option<String> {
    project
        .runs()
        .list()
        .ok()?
        .into_iter()
        .rev()
        .find(|r| r.task_id == task_id)
        .map(|r| r.id)
}
