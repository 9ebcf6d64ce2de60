//! `orchestrate`: run every pending `codex-remote` entry of a task_plan.json, up to N at once,
//! spread over hosts, each in its own run tree; apply results in plan order; keep every entry's
//! status true as it goes; pick up where an interrupted orchestration stopped.
//!
//! Resuming relies on the records: an entry marked `running` whose run is still going on a host
//! is re-attached (never started twice); one whose result was retrieved is applied; one with no
//! live run is started afresh.
//!
//! Usage limits: hosts are picked when a task starts, never in advance. A host whose run parked
//! at a usage limit (or whose run of this project is recorded `waiting`) gets no new task until
//! its reset; a task that parks while another host has quota is cancelled there and started
//! afresh on that host (its thread belongs to the parked account); when every host is parked,
//! the orchestrator says when it continues and waits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::{mpsc, Semaphore};

use crate::config::Config;
use crate::error::Error;
use crate::executor::Executor;
use crate::pipeline::{self, Project};
use crate::plan::{plan, PlanOverrides};
use crate::run::{follow_and_finish, start, RunEvent, RunOptions};
use crate::runs::{Phase, RunRecord};
use crate::taskplan::{self, TaskPlan};
use crate::transport::SharedTransport;

/// How to orchestrate.
#[derive(Debug, Clone)]
pub struct OrchestrateOptions {
    /// Runs at once.
    pub parallel: usize,
    /// Stop starting new tasks after the first failure.
    pub fail_fast: bool,
    /// Options for each run (`apply` is handled by the orchestrator, in plan order).
    pub run: RunOptions,
}

/// What orchestration reports as it goes.
#[derive(Debug, Clone)]
pub enum OrchestrateEvent {
    /// A task's run event.
    Task {
        /// The task.
        task_id: String,
        /// What happened.
        event: RunEvent,
    },
    /// A task was resumed from an earlier, interrupted orchestration.
    Resumed {
        /// The task.
        task_id: String,
        /// Its run.
        run_id: String,
    },
    /// A host reached its usage limit: no new task goes there until `until` (RFC 3339).
    HostParked {
        /// The host.
        host: String,
        /// When its limit resets.
        until: String,
    },
    /// Every host is parked: the orchestrator waits until `until` (RFC 3339) to start `task_id`.
    AllParked {
        /// The task waiting for a host.
        task_id: String,
        /// When the first host's limit resets.
        until: String,
    },
    /// A task that parked on `from` was cancelled there and starts afresh on `to`, which has
    /// quota.
    Moved {
        /// The task.
        task_id: String,
        /// The parked host.
        from: String,
        /// The host it moves to.
        to: String,
    },
    /// A task reached its end.
    Finished {
        /// The task.
        task_id: String,
        /// How it ended.
        outcome: TaskOutcome,
        /// Why, when not completed.
        reason: Option<String>,
    },
}

/// How an orchestrated task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TaskOutcome {
    /// Its result was applied (or it changed nothing).
    Completed,
    /// Its run failed.
    Failed,
    /// Its result was retrieved but not applied (conflict, restricted file).
    NotApplied,
    /// Not started, because an earlier task failed under `fail_fast`.
    Skipped,
}

impl std::fmt::Display for TaskOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TaskOutcome::Completed => "completed",
            TaskOutcome::Failed => "failed",
            TaskOutcome::NotApplied => "not-applied",
            TaskOutcome::Skipped => "skipped",
        })
    }
}

/// Why a task produced no result to apply.
enum Unsettled {
    /// Not started (fail-fast).
    Skipped,
    /// Its run failed.
    Failed(Error),
}

/// The end result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct OrchestrateSummary {
    /// Tasks completed (applied), in plan order.
    pub completed: Vec<String>,
    /// Tasks that failed, with the reason.
    pub failed: Vec<(String, String)>,
    /// Tasks whose result was retrieved but not applied, with the reason.
    pub not_applied: Vec<(String, String)>,
    /// Tasks not started because of --fail-fast.
    pub skipped: Vec<String>,
    /// Tokens used by the plan's runs (every run of the settled tasks, each thread once).
    pub usage: crate::events::Usage,
}

/// A task parked at a usage limit moves to a host with quota only when its reset is further away
/// than this; a nearer one is waited for (moving starts the task over).
const MOVE_WHEN_RESET_BEYOND: Duration = Duration::from_secs(15 * 60);

/// Which hosts have quota: each host's usage-limit reset, when it is parked.
struct Board {
    hosts: Vec<SharedTransport>,
    parked: Mutex<Vec<Option<SystemTime>>>,
    next: std::sync::atomic::AtomicUsize,
    changed: tokio::sync::Notify,
}

impl Board {
    fn new(hosts: Vec<SharedTransport>) -> Self {
        let parked = Mutex::new(vec![None; hosts.len()]);
        Self {
            hosts,
            parked,
            next: Default::default(),
            changed: Default::default(),
        }
    }

    fn index_of(&self, host: &str) -> Option<usize> {
        self.hosts.iter().position(|t| t.host().name == host)
    }

    /// Marks `host` parked until `until`.
    fn park(&self, host: &str, until: SystemTime) {
        if let Some(i) = self.index_of(host) {
            let mut parked = self.parked.lock().expect("board lock");
            parked[i] = Some(parked[i].map_or(until, |t| t.max(until)));
        }
    }

    /// Marks `host` as having quota again (a run of it resumed).
    fn unpark(&self, host: &str) {
        if let Some(i) = self.index_of(host) {
            self.parked.lock().expect("board lock")[i] = None;
            self.changed.notify_waiters();
        }
    }

    /// A host with quota (round-robin), or the earliest reset when there is none.
    fn try_pick(&self, except: Option<&str>) -> Result<SharedTransport, Option<SystemTime>> {
        let now = SystemTime::now();
        let parked = self.parked.lock().expect("board lock");
        let n = self.hosts.len();
        let start = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        for k in 0..n {
            let i = (start + k) % n;
            if parked[i].is_none_or(|t| t <= now)
                && Some(self.hosts[i].host().name.as_str()) != except
            {
                return Ok(self.hosts[i].clone());
            }
        }
        Err(parked.iter().flatten().min().copied())
    }

    /// A host with quota; when every host is parked, says so and waits for the first reset.
    async fn pick(
        &self,
        task_id: &str,
        events: &mpsc::Sender<OrchestrateEvent>,
    ) -> SharedTransport {
        loop {
            let earliest = match self.try_pick(None) {
                Ok(host) => return host,
                Err(earliest) => earliest.unwrap_or_else(SystemTime::now),
            };
            let _ = events
                .send(OrchestrateEvent::AllParked {
                    task_id: task_id.to_string(),
                    until: humantime::format_rfc3339_seconds(earliest).to_string(),
                })
                .await;
            let wait = earliest
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.changed.notified() => {}
            }
        }
    }
}

enum Work {
    Start,
    Attach(RunRecord),
    Apply(RunRecord),
}

/// What to do with each entry, in plan order.
fn plan_work(path: &Path, project: &Project) -> Result<Vec<(String, Work)>, Error> {
    let plan = TaskPlan::load(path)?;
    let records = project.runs().list()?;
    let mut work = Vec::new();
    for task in plan.tasks() {
        if task["executor"] != "codex-remote" {
            continue;
        }
        let id = task["task_id"].as_str().unwrap_or_default().to_string();
        match task["status"].as_str() {
            Some("pending") => work.push((id, Work::Start)),
            Some("running") => {
                let run_id = task.get("run_id").and_then(|v| v.as_str());
                let record = records
                    .iter()
                    .rev()
                    .find(|r| {
                        Some(r.id.as_str()) == run_id || (run_id.is_none() && r.task_id == id)
                    })
                    .cloned();
                match record {
                    Some(r)
                        if matches!(
                            r.phase,
                            Phase::Running | Phase::Waiting | Phase::Retrieving
                        ) =>
                    {
                        work.push((id, Work::Attach(r)))
                    }
                    Some(r)
                        if matches!(r.phase, Phase::Completed | Phase::Refused)
                            && r.applied_at.is_none() =>
                    {
                        work.push((id, Work::Apply(r)))
                    }
                    _ => work.push((id, Work::Start)),
                }
            }
            _ => {}
        }
    }
    Ok(work)
}

/// Runs the plan.
pub async fn orchestrate(
    plan_path: &Path,
    config: &Config,
    project: &Project,
    hosts: Vec<SharedTransport>,
    executor: Arc<dyn Executor>,
    options: &OrchestrateOptions,
    events: mpsc::Sender<OrchestrateEvent>,
) -> Result<OrchestrateSummary, Error> {
    if hosts.is_empty() {
        return Err(crate::input::InputError::new(
            plan_path.display().to_string(),
            "there are no hosts to run the plan's tasks on",
        )
        .hint("name at least one host")
        .into());
    }
    let work = plan_work(plan_path, project)?;
    let board = Arc::new(Board::new(hosts.clone()));
    // A run of this project parked on a host (this plan's, resumed, or another) says the host
    // has no quota until its reset.
    for record in project.runs().list()? {
        if let (Phase::Waiting, Some(at)) = (record.phase, &record.resume_at) {
            if let Ok(at) = humantime::parse_rfc3339(at) {
                board.park(&record.host, at);
            }
        }
    }
    // One push per host serves every run: runs of one project share the host's mirror, and
    // each still gets its own tree and baseline. (`skip_push`: the caller pushed already.)
    // The agent's prerequisites are checked on every host before the first push.
    if !options.run.skip_push && work.iter().any(|(_, w)| matches!(w, Work::Start)) {
        let cache = crate::prerequisites::PrerequisiteCache::new(&project.root);
        for transport in &hosts {
            crate::prerequisites::ensure(transport.as_ref(), &cache).await?;
            pipeline::while_warming(
                transport.as_ref(),
                pipeline::push(transport.clone(), config, project, None),
            )
            .await?;
        }
    }
    let semaphore = Arc::new(Semaphore::new(options.parallel.max(1)));
    let failed_fast = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (done_tx, mut done_rx) =
        mpsc::channel::<(usize, String, Result<RunRecord, Unsettled>)>(work.len().max(1));
    let order: Vec<String> = work.iter().map(|(id, _)| id.clone()).collect();
    // Dropping this future (Ctrl-C) stops every task at once: none waiting starts, and the
    // running ones stop following, their agents going on (the next orchestration resumes them).
    let mut tasks = AbortOnDrop(Vec::new(), semaphore.clone());
    for (index, (task_id, item)) in work.into_iter().enumerate() {
        let ctx = TaskContext {
            board: board.clone(),
            plan_path: plan_path.to_path_buf(),
            config: config.clone(),
            project: project.clone(),
            executor: executor.clone(),
            options: options.run.clone(),
            events: events.clone(),
        };
        let semaphore = semaphore.clone();
        let done = done_tx.clone();
        let failed_fast = failed_fast.clone();
        let fail_fast = options.fail_fast;
        tasks.0.push(tokio::spawn(async move {
            // Closed: the orchestration was dropped (Ctrl-C); this task never starts.
            let Ok(_permit) = semaphore.acquire_owned().await else {
                return;
            };
            if fail_fast && failed_fast.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = done.send((index, task_id, Err(Unsettled::Skipped))).await;
                return;
            }
            let result = ctx.run_task(&task_id, item).await;
            if result.is_err() {
                failed_fast.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            let _ = done.send((index, task_id, result)).await;
        }));
    }
    drop(done_tx);

    // Apply in plan order: a result waits until every earlier task has been settled.
    let mut summary = OrchestrateSummary::default();
    let mut ready: BTreeMap<usize, (String, Result<RunRecord, Unsettled>)> = BTreeMap::new();
    let mut next = 0;
    let mut cleanups = Vec::new();
    while next < order.len() {
        let Some((index, task_id, result)) = done_rx.recv().await else {
            break;
        };
        ready.insert(index, (task_id, result));
        while let Some((task_id, result)) = ready.remove(&next) {
            settle_one(
                plan_path,
                config,
                project,
                &hosts,
                &task_id,
                result,
                options,
                &events,
                &mut summary,
                &mut cleanups,
            )
            .await?;
            next += 1;
        }
    }
    for cleanup in cleanups {
        cleanup.await.map_err(|e| Error::Io {
            context: "cleaning a run's tree".into(),
            source: std::io::Error::other(e),
        })??;
    }
    Ok(summary)
}

/// Aborts its tasks when dropped. The semaphore that lets them start is closed first: a running
/// task aborted before a waiting one would hand its permit on, and the waiting task could
/// start (on another worker thread) before its own abort lands.
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>, Arc<Semaphore>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.1.close();
        for task in &self.0 {
            task.abort();
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn settle_one(
    plan_path: &Path,
    config: &Config,
    project: &Project,
    hosts: &[SharedTransport],
    task_id: &str,
    result: Result<RunRecord, Unsettled>,
    options: &OrchestrateOptions,
    events: &mpsc::Sender<OrchestrateEvent>,
    summary: &mut OrchestrateSummary,
    cleanups: &mut Vec<tokio::task::JoinHandle<Result<(), Error>>>,
) -> Result<(), Error> {
    // Every run of the task counts (one cancelled on a parked host and started again elsewhere
    // spent tokens too).
    for record in project.runs().list()? {
        if record.task_id == task_id {
            summary.usage.add(&record.usage);
        }
    }
    let (outcome, reason) = match result {
        Err(Unsettled::Skipped) => {
            summary.skipped.push(task_id.to_string());
            (
                TaskOutcome::Skipped,
                Some("an earlier task failed (fail-fast)".to_string()),
            )
        }
        Err(Unsettled::Failed(error)) => {
            let reason = error.full_message();
            let run_id = project
                .runs()
                .list()?
                .into_iter()
                .rev()
                .find(|r| r.task_id == task_id)
                .map(|r| r.id);
            // The one rule: a lost connection leaves the entry running (the agent goes on, and
            // the next orchestration re-attaches); any other failure settles it.
            let failed: Result<(), Error> = Err(error);
            taskplan::settle_run(plan_path, task_id, run_id.as_deref(), &failed)?;
            summary.failed.push((task_id.to_string(), reason.clone()));
            (TaskOutcome::Failed, Some(reason))
        }
        Ok(mut record) => {
            let has_changes = std::fs::metadata(project.runs().patch_path(&record.id))
                .map(|m| m.len() > 0)
                .unwrap_or(false);
            let applied = if has_changes {
                pipeline::apply(
                    config,
                    project,
                    &mut record,
                    pipeline::ApplyOptions {
                        allow_restricted: options.run.allow_restricted,
                        allow_held_back: options.run.allow_held_back,
                        skip_restricted: false,
                    },
                )
            } else {
                Ok(Default::default())
            };
            match applied {
                Ok(_) => {
                    if !options.run.keep && !record.remote_removed {
                        if let Some(transport) = hosts.iter().find(|t| t.host().name == record.host)
                        {
                            // Cleaning the host need not hold up the next apply.
                            let (transport, project, mut record) =
                                (transport.clone(), project.clone(), record.clone());
                            cleanups.push(tokio::spawn(async move {
                                pipeline::remove_remote(transport, &project, &mut record).await
                            }));
                        }
                    }
                    let checkpoint = record
                        .finish
                        .as_ref()
                        .and_then(|f| f.checkpoint.clone())
                        .or_else(|| options.run.checkpoint.clone());
                    if let Some(spec) = checkpoint {
                        crate::checkpoint::mark_checkpoint_in(
                            &project.root,
                            &spec.file,
                            &spec.item,
                            Some(&record.id),
                        )?;
                    }
                    taskplan::settle(plan_path, task_id, Some(&record.id), Ok(()))?;
                    summary.completed.push(task_id.to_string());
                    (TaskOutcome::Completed, None)
                }
                Err(e) => {
                    let reason = format!("retrieved but not applied: {e}");
                    taskplan::settle(plan_path, task_id, Some(&record.id), Err(&reason))?;
                    summary
                        .not_applied
                        .push((task_id.to_string(), reason.clone()));
                    (TaskOutcome::NotApplied, Some(reason))
                }
            }
        }
    };
    let _ = events
        .send(OrchestrateEvent::Finished {
            task_id: task_id.to_string(),
            outcome,
            reason,
        })
        .await;
    Ok(())
}

struct TaskContext {
    board: Arc<Board>,
    plan_path: PathBuf,
    config: Config,
    project: Project,
    executor: Arc<dyn Executor>,
    options: RunOptions,
    events: mpsc::Sender<OrchestrateEvent>,
}

impl TaskContext {
    /// Runs (or resumes) one task up to a retrieved result; applying is the orchestrator's.
    async fn run_task(&self, task_id: &str, mut work: Work) -> Result<RunRecord, Unsettled> {
        let mut prefer: Option<SharedTransport> = None;
        loop {
            let transport = match &work {
                Work::Start => match prefer.take() {
                    Some(host) => host,
                    None => self.board.pick(task_id, &self.events).await,
                },
                Work::Attach(record) | Work::Apply(record) => {
                    match self.board.index_of(&record.host) {
                        Some(i) => self.board.hosts[i].clone(),
                        None => {
                            return Err(Unsettled::Failed(Error::Input(
                                crate::input::InputError::new(
                                    "--hosts",
                                    format!(
                                        "task `{task_id}`'s run `{}` is on host `{}`, which is not among the hosts",
                                        record.id, record.host
                                    ),
                                )
                                .hint("add that host to --hosts to pick the run up"),
                            )))
                        }
                    }
                }
            };
            let host = transport.host().name.clone();
            let (tx, mut rx) = mpsc::channel::<RunEvent>(256);
            let (move_tx, move_rx) = tokio::sync::oneshot::channel::<SharedTransport>();
            let forward = self.events.clone();
            let board = self.board.clone();
            let id = task_id.to_string();
            let parked_host = host.clone();
            let forwarder = tokio::spawn(async move {
                let mut move_tx = Some(move_tx);
                while let Some(event) = rx.recv().await {
                    match &event {
                        RunEvent::Waiting { resume_at, .. } => {
                            let at = humantime::parse_rfc3339(resume_at).ok();
                            if let Some(at) = at {
                                board.park(&parked_host, at);
                            }
                            // A reset close at hand is worth waiting for: moving redoes the
                            // task from the start.
                            let far = at.is_none_or(|at| {
                                at.duration_since(SystemTime::now())
                                    .is_ok_and(|left| left > MOVE_WHEN_RESET_BEYOND)
                            });
                            let _ = forward
                                .send(OrchestrateEvent::HostParked {
                                    host: parked_host.clone(),
                                    until: resume_at.clone(),
                                })
                                .await;
                            // Another host has quota: the task moves there.
                            if let (true, Ok(to)) = (far, board.try_pick(Some(&parked_host))) {
                                if let Some(move_tx) = move_tx.take() {
                                    let _ = move_tx.send(to);
                                }
                            }
                        }
                        RunEvent::Resumed { reason, .. } if reason == "usage-limit" => {
                            board.unpark(&parked_host)
                        }
                        _ => {}
                    }
                    let _ = forward
                        .send(OrchestrateEvent::Task {
                            task_id: id.clone(),
                            event,
                        })
                        .await;
                }
            });
            let result = self
                .drive(task_id, work, transport.clone(), &tx, move_rx)
                .await;
            drop(tx);
            let _ = forwarder.await;
            match result {
                Ok(Driven::Done(record)) => return Ok(record),
                Ok(Driven::Moved(mut record, to)) => {
                    crate::run::cancel(
                        &self.project,
                        &mut record,
                        transport,
                        self.executor.as_ref(),
                    )
                    .await
                    .map_err(Unsettled::Failed)?;
                    let _ = self
                        .events
                        .send(OrchestrateEvent::Moved {
                            task_id: task_id.to_string(),
                            from: host,
                            to: to.host().name.clone(),
                        })
                        .await;
                    prefer = Some(to);
                    work = Work::Start;
                }
                Err(e) => return Err(Unsettled::Failed(e)),
            }
        }
    }

    async fn drive(
        &self,
        task_id: &str,
        work: Work,
        transport: SharedTransport,
        tx: &mpsc::Sender<RunEvent>,
        moved: tokio::sync::oneshot::Receiver<SharedTransport>,
    ) -> Result<Driven, Error> {
        let retry = (self.options.initial_delay, self.options.max_delay);
        let mut record = match work {
            Work::Apply(record) => return Ok(Driven::Done(record)),
            Work::Attach(record) => {
                let _ = self
                    .events
                    .send(OrchestrateEvent::Resumed {
                        task_id: task_id.to_string(),
                        run_id: record.id.clone(),
                    })
                    .await;
                record
            }
            Work::Start => {
                let (task, raw) = taskplan::task_spec(&self.plan_path, task_id)?;
                let overrides = PlanOverrides {
                    host: Some(&transport.host().name),
                    model: None,
                };
                let mut run_plan = plan(
                    task,
                    &self.config,
                    &self.config.model_selector(),
                    &overrides,
                    &self.project.root,
                )?;
                if let Some(raw) = raw {
                    run_plan.instruction.text = raw;
                }
                taskplan::mark_running(&self.plan_path, task_id, None)?;
                let mut options = self.options.clone();
                options.apply = false;
                options.keep = true;
                options.skip_push = true;
                // Ticked by the orchestrator once the result is applied in plan order.
                options.checkpoint = run_plan.task.checkpoint.clone().map(|mut c| {
                    c.file = self.project.root.join(&c.file).display().to_string();
                    c
                });
                let record = start(
                    &run_plan,
                    &self.config,
                    &self.project,
                    transport.clone(),
                    self.executor.as_ref(),
                    &options,
                    tx,
                )
                .await?;
                taskplan::set_run_id(&self.plan_path, task_id, &record.id)?;
                record
            }
        };
        let finished = follow_and_finish(
            &self.project,
            &self.config,
            &mut record,
            transport,
            self.executor.as_ref(),
            retry,
            tx,
        );
        tokio::select! {
            result = finished => {
                // A run made on demand has its result in the local record now (or is over):
                // its container goes, unless kept (`--keep`). Applying works from the local
                // record.
                if !self.options.keep && (result.is_ok() || record.phase.is_finished()) {
                    let released =
                        crate::ondemand::release(&self.project.runs(), &mut record).await;
                    if result.is_ok() {
                        released?;
                    }
                }
                result?;
                Ok(Driven::Done(record))
            }
            Ok(to) = moved => {
                // The record on disk is the truth (the follow saved its park there).
                let record = self.project.runs().load(&record.id)?;
                Ok(Driven::Moved(record, to))
            }
        }
    }
}

/// How driving a task ended.
enum Driven {
    /// Its run finished (its result retrieved).
    Done(RunRecord),
    /// Its run parked while another host had quota: cancel it, start afresh there.
    Moved(RunRecord, SharedTransport),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(names: &[&str]) -> Board {
        let config = Config::builtin();
        Board::new(
            names
                .iter()
                .map(|name| {
                    Arc::new(crate::transport::local::LocalTransport::new(
                        config.host(Some(name)).unwrap(),
                    )) as SharedTransport
                })
                .collect(),
        )
    }

    #[tokio::test]
    async fn a_parked_host_gets_no_task_until_its_reset() {
        let board = board(&["a", "b"]);
        let soon = SystemTime::now() + Duration::from_secs(3600);
        board.park("a", soon);
        for _ in 0..4 {
            assert_eq!(board.try_pick(None).unwrap().host().name, "b");
        }
        assert!(board.try_pick(Some("b")).is_err());
        // Every host parked: the earliest reset is when it continues.
        let sooner = SystemTime::now() + Duration::from_secs(60);
        board.park("b", sooner);
        assert_eq!(board.try_pick(None).err(), Some(Some(sooner)));
        // A reset in the past, or a resumed run, gives the host its quota back.
        board.park("b", SystemTime::now() - Duration::from_secs(1));
        assert!(board.try_pick(None).is_err(), "a park only ever extends");
        board.unpark("b");
        assert_eq!(board.try_pick(None).unwrap().host().name, "b");
    }

    #[tokio::test]
    async fn when_every_host_is_parked_pick_says_when_and_waits_for_the_reset() {
        let board = board(&["a"]);
        let reset = SystemTime::now() + Duration::from_millis(300);
        board.park("a", reset);
        let (tx, mut rx) = mpsc::channel(8);
        let picked = board.pick("t1", &tx).await;
        assert_eq!(picked.host().name, "a");
        assert!(SystemTime::now() >= reset);
        match rx.recv().await {
            Some(OrchestrateEvent::AllParked { task_id, until }) => {
                assert_eq!(task_id, "t1");
                assert_eq!(until, humantime::format_rfc3339_seconds(reset).to_string());
            }
            _ => panic!("no all-parked event"),
        }
    }
}
