//! `run`: the whole workflow: push, prepare the run's tree, launch the agent detached on the
//! host, follow its events, retry rate limits with bounded backoff, retrieve the change, apply it.
//!
//! The agent always runs detached from the connection (its own process group, output to files
//! beside the run's tree), and the local side *follows* it from a byte offset. So a dropped
//! connection or a killed client loses nothing: `attach` resumes following exactly where the
//! local record stopped, and never starts a second agent for a run whose agent is alive.
//!
//! Everything about the run is recorded in `.codex-remote/runs/<run-id>/`: `run.json` (phase,
//! timestamps, attempt), `task.json`, `instruction.txt`, `events.jsonl` (Codex's raw event
//! stream, verbatim, each line once), `result.patch` and `last-message.txt`.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::atomic::write_atomic;
use crate::config::Config;
use crate::error::Error;
use crate::events::{CodexEvent, Usage};
use crate::executor::{
    backoff, AgentState, ExecEvent, ExecFailure, ExecOutcome, ExecRequest, Executor, OutcomeBuilder,
};
use crate::layout::RemoteLayout;
use crate::patch::ParsedPatch;
use crate::pipeline::{self, Project};
use crate::plan::RunPlan;
use crate::runs::{now, FinishOptions, Phase, RunRecord, RunStore};
use crate::sync::PushReport;
use crate::transport::{SharedTransport, TransportError};

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Apply the result locally when it arrives.
    pub apply: bool,
    /// Apply even if restricted files changed.
    pub allow_restricted: bool,
    /// Apply even a result that looks destructive (see [`crate::patch::HoldBackPolicy`]).
    pub allow_held_back: bool,
    /// Keep the run's tree on the host after applying.
    pub keep: bool,
    /// Retries of a rate-limited run.
    pub retries: u32,
    /// First retry delay.
    pub initial_delay: Duration,
    /// Largest retry delay.
    pub max_delay: Duration,
    /// Cancel the agent after this long.
    pub timeout: Option<Duration>,
    /// End the run when the agent shows no progress (no event) for this long; `None` never.
    pub stall_timeout: Option<Duration>,
    /// Codex sandbox mode.
    pub sandbox: String,
    /// Extra `codex exec` arguments.
    pub extra_args: Vec<String>,
    /// The checklist item to tick once the result is applied (spec path relative to the project).
    pub checkpoint: Option<crate::task::Checkpoint>,
    /// The task_plan.json entry whose status this run keeps true.
    pub task_plan: Option<(std::path::PathBuf, String)>,
    /// Skip the push (the caller pushed this project to the host already, as `orchestrate`
    /// does once per host for all its runs).
    pub skip_push: bool,
    /// How long the run may stay parked at usage limits, in all (config `max_wait`,
    /// `--max-wait`); past it the run fails with exit 5.
    pub max_wait: Duration,
    /// A local command (program and arguments) run with the run's summary JSON on stdin when
    /// it ends, parks or fails (config `notify`, `--notify`).
    pub notify: Option<Vec<String>>,
}

impl RunOptions {
    /// Defaults from the config's retry policy.
    pub fn from_config(config: &Config) -> Self {
        let retry = config.retry();
        Self {
            apply: true,
            allow_restricted: false,
            allow_held_back: false,
            keep: false,
            retries: retry.retries,
            initial_delay: retry.initial_delay,
            max_delay: retry.max_delay,
            timeout: None,
            stall_timeout: config.stall_timeout(),
            sandbox: "workspace-write".into(),
            extra_args: Vec::new(),
            checkpoint: None,
            task_plan: None,
            skip_push: false,
            max_wait: config.max_wait(),
            notify: config.notify(),
        }
    }

    fn finish(&self) -> FinishOptions {
        FinishOptions {
            apply: self.apply,
            allow_restricted: self.allow_restricted,
            allow_held_back: self.allow_held_back,
            keep: self.keep,
            retries: self.retries,
            checkpoint: self.checkpoint.clone(),
            task_plan: self.task_plan.clone(),
            notify: self.notify.clone(),
        }
    }
}

/// What a run reports as it goes, for display.
#[derive(Debug, Clone)]
pub enum RunEvent {
    /// Entered a phase.
    Phase(Phase),
    /// The project was pushed.
    Pushed(PushReport),
    /// The run was recorded and its tree prepared.
    Started {
        /// The run id.
        run_id: String,
        /// Its tree on the host.
        dir: String,
    },
    /// The agent was launched (attempt is 1-based).
    Launched {
        /// The attempt.
        attempt: u32,
        /// The supervisor's pid on the host.
        pid: u32,
    },
    /// An event from Codex.
    Codex(ExecEvent),
    /// The run parked at a usage limit; the host resumes the same thread at `resume_at`.
    Waiting {
        /// When it resumes (RFC 3339).
        resume_at: String,
        /// Where that time came from (`session`, `message`, `fallback`).
        source: String,
        /// The thread it resumes.
        thread_id: String,
    },
    /// The run's thread was resumed (after a park, or an interrupted agent).
    Resumed {
        /// The thread.
        thread_id: String,
        /// `usage-limit` or `interrupted`.
        reason: String,
    },
    /// A rate-limited attempt will be retried.
    Retrying {
        /// The retry about to happen (1-based).
        attempt: u32,
        /// Retries allowed.
        of: u32,
        /// The wait before it.
        delay: Duration,
        /// Why.
        reason: String,
    },
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct RunSummary {
    /// The run id.
    pub run_id: String,
    /// The task id.
    pub task_id: String,
    /// The host.
    pub host: String,
    /// The model.
    pub model: String,
    /// Tokens used by the whole run (every attempt and resume; each thread counted once).
    pub usage: Usage,
    /// The Codex thread of the run's agent.
    pub thread_id: Option<String>,
    /// How many times the thread was resumed (usage-limit parks and interruptions).
    pub resumes: u32,
    /// The agent's last message.
    pub last_message: Option<String>,
    /// The files changed by the run (from the patch).
    pub files: Vec<crate::patch::FileChange>,
    /// Whether the result was applied locally.
    pub applied: bool,
    /// The stored patch.
    pub patch: std::path::PathBuf,
    /// How many attempts it took.
    pub attempts: u32,
    /// What ticking the checklist item did, when the run had one.
    pub checkpoint: Option<crate::checkpoint::CheckpointOutcome>,
    /// What about the result is not a clean success (also kept in the run record).
    pub warnings: Vec<crate::runs::RunWarning>,
}

fn record_io(context: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { context, source }
}

/// Checks the agent's prerequisites on the host (see [`crate::prerequisites`]), pushes,
/// prepares the run's tree, records the task and launches the agent. Returns the record
/// of a run whose agent is running; follow it with [`follow_and_finish`].
pub async fn start(
    plan: &RunPlan,
    config: &Config,
    project: &Project,
    transport: SharedTransport,
    executor: &dyn Executor,
    options: &RunOptions,
    events: &mpsc::Sender<RunEvent>,
) -> Result<RunRecord, Error> {
    // Refused before anything is sent: the spec a run ticks is inside the project.
    if let Some(spec) = &options.checkpoint {
        crate::checkpoint::spec_in_project(&project.root, &spec.file)?;
    }
    if crate::ondemand::spec_of(transport.host()).is_some() {
        return start_on_demand(plan, config, project, transport, executor, options, events).await;
    }
    start_as(
        plan, config, project, transport, executor, options, events, None,
    )
    .await
}

/// [`start`] on a host made on demand: the run's own container first, then everything in it
/// (its push included: a fresh container has no mirror). A start that fails removes the
/// container.
async fn start_on_demand(
    plan: &RunPlan,
    config: &Config,
    project: &Project,
    transport: SharedTransport,
    executor: &dyn Executor,
    options: &RunOptions,
    events: &mpsc::Sender<RunEvent>,
) -> Result<RunRecord, Error> {
    // A push that would be refused is refused before any container starts.
    pipeline::push_scope(config, project)?;
    let mut record = pipeline::new_record(transport.as_ref(), project, &plan.task.id);
    let container = crate::ondemand::start(transport.host(), &record.id, &project.name).await?;
    record.container = Some(container.clone());
    // Recorded at once: whatever happens next, `runs --prune` finds the container.
    let store = project.runs();
    if let Err(e) = store.save(&record) {
        crate::ondemand::remove(&container).await?;
        return Err(e.into());
    }
    let inside = crate::ondemand::for_run(&record, transport)?;
    let options = RunOptions {
        skip_push: false,
        ..options.clone()
    };
    let id = record.id.clone();
    let started = start_as(
        plan,
        config,
        project,
        inside,
        executor,
        &options,
        events,
        Some(record),
    )
    .await;
    if let Err(e) = &started {
        match store.load(&id) {
            Ok(mut saved) => {
                // Recorded, so `status` says why it never ran.
                if !saved.phase.is_finished() {
                    saved.phase = Phase::Failed;
                    saved.error = Some(e.to_string());
                    saved.updated_at = now();
                }
                crate::ondemand::release(&store, &mut saved).await?;
            }
            Err(_) => crate::ondemand::remove(&container).await?,
        }
    }
    started
}

#[allow(clippy::too_many_arguments)]
async fn start_as(
    plan: &RunPlan,
    config: &Config,
    project: &Project,
    transport: SharedTransport,
    executor: &dyn Executor,
    options: &RunOptions,
    events: &mpsc::Sender<RunEvent>,
    made: Option<RunRecord>,
) -> Result<RunRecord, Error> {
    let host = transport.host().name.clone();
    // Before anything is pushed: codex on the host and a way for it to authenticate.
    let cache = crate::prerequisites::PrerequisiteCache::new(&project.root);
    crate::prerequisites::ensure(transport.as_ref(), &cache).await?;
    if !options.skip_push {
        let _ = events.send(RunEvent::Phase(Phase::Syncing)).await;
        let pushed = match pipeline::while_warming(
            transport.as_ref(),
            pipeline::push(transport.clone(), config, project, None),
        )
        .await
        {
            Ok(pushed) => pushed,
            Err(e) => return Err(push_failed(project, transport.as_ref(), &plan.task.id, e)),
        };
        let _ = events.send(RunEvent::Pushed(pushed)).await;
    }
    let made =
        made.unwrap_or_else(|| pipeline::new_record(transport.as_ref(), project, &plan.task.id));
    let mut record = pipeline::start_run_as(transport.clone(), config, project, made)
        .await
        .map_err(|e| e.on_host(&host))?;
    let store = project.runs();
    let dir = store.run_dir(&record.id);
    write_atomic(
        &dir.join("task.json"),
        &serde_json::to_vec_pretty(&plan.task).expect("tasks serialise"),
    )
    .map_err(record_io("writing task.json".into()))?;
    write_atomic(
        &dir.join("instruction.txt"),
        plan.instruction.text.as_bytes(),
    )
    .map_err(record_io("writing instruction.txt".into()))?;
    let request = request_for(plan, &record, options);
    write_atomic(
        &dir.join("exec.json"),
        &serde_json::to_vec_pretty(&request).expect("serialises"),
    )
    .map_err(record_io("writing exec.json".into()))?;
    record.finish = Some(options.finish());
    let tree = record.tree.clone().expect("start_run prepares the tree");
    let _ = events
        .send(RunEvent::Started {
            run_id: record.id.clone(),
            dir: tree.dir.clone(),
        })
        .await;
    launch(
        &store,
        &mut record,
        transport.as_ref(),
        executor,
        &request,
        events,
    )
    .await?;
    Ok(record)
}

/// A push that failed before the run was recorded: on the host's full disk, a failed record
/// is written all the same, so `status` and `attach` say why the run never ran. Returns the
/// error to report.
pub(crate) fn push_failed(
    project: &Project,
    transport: &dyn crate::transport::Transport,
    task_id: &str,
    error: Error,
) -> Error {
    let error = error.on_host(&transport.host().name);
    if matches!(error, Error::HostDiskFull { .. }) {
        let mut record = pipeline::new_record(transport, project, task_id);
        record.phase = Phase::Failed;
        record.error = Some(error.to_string());
        if let Err(e) = project.runs().save(&record) {
            return e.into();
        }
    }
    error
}

/// The agent's request for a run (recorded in `exec.json`, the instruction beside it).
fn request_for(plan: &RunPlan, record: &RunRecord, options: &RunOptions) -> ExecRequest {
    ExecRequest {
        dir: record.tree.as_ref().expect("prepared").dir.clone(),
        instruction: plan.instruction.text.clone(),
        model: plan.model.clone(),
        sandbox: options.sandbox.clone(),
        extra_args: options.extra_args.clone(),
        timeout: options.timeout,
        max_wait_secs: Some(options.max_wait.as_secs()),
        resume_thread: None,
        stall_timeout: options.stall_timeout,
    }
}

/// The recorded request, so `attach` and retries relaunch exactly the same agent.
fn read_request(store: &RunStore, run_id: &str) -> Result<ExecRequest, Error> {
    let dir = store.run_dir(run_id);
    let json =
        std::fs::read(dir.join("exec.json")).map_err(record_io("reading exec.json".into()))?;
    let mut request: ExecRequest = serde_json::from_slice(&json).map_err(|e| Error::Io {
        context: "reading exec.json".into(),
        source: std::io::Error::other(e),
    })?;
    request.instruction = std::fs::read_to_string(dir.join("instruction.txt"))
        .map_err(record_io("reading instruction.txt".into()))?;
    Ok(request)
}

/// Where the run's files are on the host: under the workspace it started in (see
/// [`RemoteLayout::of_run`]).
fn layout_of(transport: &dyn crate::transport::Transport, record: &RunRecord) -> RemoteLayout {
    RemoteLayout::of_run(transport.host(), record)
}

async fn launch(
    store: &RunStore,
    record: &mut RunRecord,
    transport: &dyn crate::transport::Transport,
    executor: &dyn Executor,
    request: &ExecRequest,
    events: &mpsc::Sender<RunEvent>,
) -> Result<(), Error> {
    record.attempt += 1;
    record.attempt_log_start = local_log_len(store, &record.id);
    record.events_mark = None;
    record.phase = Phase::Running;
    record.updated_at = now();
    store.save(record)?;
    let agent_dir = layout_of(transport, record).agent_dir(&record.id, record.attempt);
    let pid = match executor.launch(transport, &agent_dir, request).await {
        Ok(pid) => pid,
        Err(e) => {
            let e = Error::from(e).on_host(&transport.host().name);
            fail(store, record, &e.to_string())?;
            return Err(e);
        }
    };
    let _ = events
        .send(RunEvent::Launched {
            attempt: record.attempt,
            pid,
        })
        .await;
    let _ = events.send(RunEvent::Phase(Phase::Running)).await;
    Ok(())
}

fn local_log_len(store: &RunStore, run_id: &str) -> u64 {
    std::fs::metadata(store.run_dir(run_id).join("events.jsonl"))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// Follows the run's agent from where the local record stopped until it finishes, retrying a
/// rate-limited agent, then retrieves and (as the run asked) applies the result. A usage limit
/// parks the run on the host (phase `waiting`) and the follow goes on through the resume; the
/// `notify` command, if any, hears of parks, the end and failures. A run made on demand is
/// followed in its own container, which goes once the run is over (unless kept).
pub async fn follow_and_finish(
    project: &Project,
    config: &Config,
    record: &mut RunRecord,
    transport: SharedTransport,
    executor: &dyn Executor,
    retry: (Duration, Duration),
    events: &mpsc::Sender<RunEvent>,
) -> Result<RunSummary, Error> {
    let notify = record.finish.as_ref().and_then(|f| f.notify.clone());
    let result =
        follow_and_finish_in(project, config, record, transport, executor, retry, events).await;
    if let Some(command) = &notify {
        let payload = match &result {
            Ok(summary) => crate::notify::ended(summary),
            // A broken stream is not the run's end: the agent goes on.
            Err(Error::Transport(e)) if e.is_connection() => return result,
            Err(e) => crate::notify::failed(record, e),
        };
        crate::notify::run(command, &payload).await;
    }
    result
}

async fn follow_and_finish_in(
    project: &Project,
    config: &Config,
    record: &mut RunRecord,
    transport: SharedTransport,
    executor: &dyn Executor,
    retry: (Duration, Duration),
    events: &mpsc::Sender<RunEvent>,
) -> Result<RunSummary, Error> {
    let transport = crate::ondemand::for_run(record, transport)?;
    let finished =
        follow_and_finish_inner(project, config, record, transport, executor, retry, events).await;
    // Over (its result retrieved, or failed, refused, cancelled): nothing of it stays. A run
    // still running or not yet retrieved keeps its container for `attach` and `pull`.
    let keep = record.finish.as_ref().is_some_and(|f| f.keep);
    if !keep && record.phase.is_finished() {
        let released = crate::ondemand::release(&project.runs(), record).await;
        if finished.is_ok() {
            released?;
        }
    }
    finished
}

async fn follow_and_finish_inner(
    project: &Project,
    config: &Config,
    record: &mut RunRecord,
    transport: SharedTransport,
    executor: &dyn Executor,
    retry: (Duration, Duration),
    events: &mpsc::Sender<RunEvent>,
) -> Result<RunSummary, Error> {
    let store = project.runs();
    let finish = record.finish.clone().unwrap_or(FinishOptions {
        apply: true,
        allow_restricted: false,
        allow_held_back: false,
        keep: false,
        retries: 0,
        checkpoint: None,
        task_plan: None,
        notify: None,
    });
    let request = read_request(&store, &record.id)?;
    // Everything shown goes through one forwarder that notes the agent's progress (for the
    // stall watchdog) and keeps the order of what is shown.
    let progress = std::sync::Arc::new(tokio::sync::watch::channel(Instant::now()).0);
    // A park never holds the stall clock back longer than the run may wait (the time comes
    // from the host).
    let max_park = Duration::from_secs(request.max_wait_secs.unwrap_or(6 * 3600));
    let (forward_tx, mut forward_rx) = mpsc::channel::<RunEvent>(256);
    let forwarder = {
        let (progress, events) = (progress.clone(), events.clone());
        tokio::spawn(async move {
            while let Some(event) = forward_rx.recv().await {
                // Codex's notices ("Reconnecting... waiting for network") are not progress: with
                // the provider unreachable it repeats them for as long as it is left running.
                if matches!(&event, RunEvent::Codex(e) if !matches!(e.event, CodexEvent::Error { .. }))
                {
                    progress.send_replace(Instant::now());
                }
                // A run parked at a usage limit is silent until its reset: the stall clock
                // starts again from `resume_at`.
                if let RunEvent::Codex(ExecEvent {
                    event: CodexEvent::Parked { resume_at, .. },
                    ..
                }) = &event
                {
                    progress.send_replace(Instant::now() + until_epoch(*resume_at).min(max_park));
                }
                let _ = events.send(event).await;
            }
        })
    };
    let result = follow_to_outcome(
        &store,
        record,
        transport.as_ref(),
        executor,
        &request,
        &finish,
        retry,
        &progress,
        &forward_tx,
    )
    .await;
    drop(forward_tx);
    let _ = forwarder.await;
    let outcome = result?;
    let dir = store.run_dir(&record.id);
    if let Some(message) = &outcome.last_message {
        write_atomic(&dir.join("last-message.txt"), message.as_bytes())
            .map_err(record_io("writing last-message.txt".into()))?;
    }
    set_phase(&store, record, Phase::Retrieving, events).await?;
    let max_bytes = config.stored_patch_limit();
    let parsed: ParsedPatch =
        match pipeline::retrieve_within(transport.clone(), project, record, max_bytes).await {
            Ok(parsed) => parsed,
            Err(e) => {
                // A full disk fails the run; a result refused as retrieved is recorded
                // `refused`; anything else (the connection, a local read) leaves it
                // `retrieving` for a retry.
                let e = e.on_host(&transport.host().name);
                if matches!(e, Error::HostDiskFull { .. }) {
                    fail(&store, record, &e.to_string())?;
                } else if refused_as_retrieved(&e) {
                    record.error = Some(e.to_string());
                    set_phase(&store, record, Phase::Refused, events).await?;
                }
                return Err(e);
            }
        };
    record
        .warnings
        .retain(|w| w.kind != "claimed-changes-missing");
    if parsed.files.is_empty() && !outcome.files_reported.is_empty() {
        record
            .warnings
            .push(crate::runs::RunWarning::claimed_changes_missing(
                &outcome.files_reported,
            ));
    }
    // The result is in the local record now: the host's tree goes back to the pool unless
    // asked to stay, whether or not the result is applied (a later `apply` works from the
    // record). A result with warnings keeps its tree, for a look at what happened there.
    if !finish.keep && record.warnings.is_empty() {
        pipeline::remove_remote(transport.clone(), project, record).await?;
    }
    let mut applied = false;
    if finish.apply && !parsed.files.is_empty() {
        let options = pipeline::ApplyOptions {
            allow_restricted: finish.allow_restricted,
            allow_held_back: finish.allow_held_back,
            skip_restricted: false,
        };
        let taken = pipeline::apply(config, project, record, options);
        if let Ok(taken) = &taken {
            // What would have held the result back, taken because the run allowed it.
            record.warnings.extend(
                taken
                    .warnings
                    .iter()
                    .cloned()
                    .map(crate::runs::RunWarning::from),
            );
        }
        if let Err(e) = taken {
            // A refused result is recorded as refused, with its reason; other failures leave a
            // completed run whose patch `pull --apply` can still take.
            if e.kind() == crate::error::ErrorKind::NotApplied {
                record.error = Some(e.to_string());
                set_phase(&store, record, Phase::Refused, events).await?;
            } else {
                set_phase(&store, record, Phase::Completed, events).await?;
            }
            return Err(e);
        }
        applied = true;
    }
    set_phase(&store, record, Phase::Completed, events).await?;
    let history = run_history(&dir.join("events.jsonl"));
    let mut checkpoint = None;
    if let (true, Some(spec)) = (applied, &finish.checkpoint) {
        checkpoint = Some(crate::checkpoint::mark_checkpoint_in(
            &project.root,
            &spec.file,
            &spec.item,
            Some(&record.id),
        )?);
    }
    Ok(RunSummary {
        run_id: record.id.clone(),
        task_id: record.task_id.clone(),
        host: record.host.clone(),
        model: request.model.model.clone(),
        usage: history.usage,
        thread_id: record.thread_id.clone(),
        resumes: history.resumes,
        last_message: outcome.last_message,
        files: parsed.files,
        applied,
        patch: store.patch_path(&record.id),
        attempts: record.attempt,
        checkpoint,
        warnings: record.warnings.clone(),
    })
}

/// Follows the agent until an attempt succeeds: retries a rate-limited attempt, relaunches a
/// vanished agent once (only once the previous attempt is proven gone), and ends the run at its
/// timeout or when it stalls.
#[allow(clippy::too_many_arguments)]
async fn follow_to_outcome(
    store: &RunStore,
    record: &mut RunRecord,
    transport: &dyn crate::transport::Transport,
    executor: &dyn Executor,
    request: &ExecRequest,
    finish: &FinishOptions,
    retry: (Duration, Duration),
    progress: &tokio::sync::watch::Sender<Instant>,
    events: &mpsc::Sender<RunEvent>,
) -> Result<ExecOutcome, Error> {
    let mut request = request.clone();
    let request = &mut request;
    let mut relaunched_vanished = false;
    loop {
        progress.send_replace(Instant::now());
        let ended = {
            let followed = follow_until_end(store, record, transport, executor, events);
            let timed_out = async {
                match request.timeout {
                    Some(after) => tokio::time::sleep(after).await,
                    None => std::future::pending().await,
                }
            };
            let stalled = async {
                match request.stall_timeout {
                    Some(after) => stall(progress.subscribe(), after).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                outcome = followed => Ok(outcome?),
                _ = timed_out => Err(Cut::TimedOut(request.timeout.unwrap_or_default())),
                _ = stalled => Err(Cut::Stalled(request.stall_timeout.unwrap_or_default())),
            }
        };
        let outcome = match ended {
            Ok(outcome) => outcome,
            Err(cut) => {
                let agent_dir = layout_of(transport, record).agent_dir(&record.id, record.attempt);
                executor.cancel(transport, &agent_dir).await?;
                let error: Error = match cut {
                    Cut::TimedOut(after) => TransportError::TimedOut {
                        command: "codex exec".into(),
                        after,
                    }
                    .into(),
                    Cut::Stalled(after) => Error::Exec {
                        failure: ExecFailure::Stalled {
                            after_secs: after.as_secs(),
                            last_notice: last_notice(store, record),
                        },
                        host: transport.host().name.clone(),
                        attempts: record.attempt,
                    },
                };
                let message = match &error {
                    Error::Exec { failure, .. } => {
                        serde_json::to_string(failure).unwrap_or_default()
                    }
                    e => e.to_string(),
                };
                fail(store, record, &message)?;
                return Err(error);
            }
        };
        request.resume_thread = None;
        if outcome.failure.is_some() {
            // An agent that failed or vanished on a full disk: say so, and relaunch nothing.
            if let Some(full) = host_disk_full(transport, record).await {
                fail(store, record, &full.to_string())?;
                return Err(full);
            }
        }
        match &outcome.failure {
            Some(ExecFailure::RateLimited { message }) if record.attempt <= finish.retries => {
                // A delay the provider stated (through Codex's message) is honoured as is;
                // otherwise the bounded exponential backoff.
                let delay = crate::executor::stated_delay(message)
                    .unwrap_or_else(|| backoff(record.attempt - 1, retry.0, retry.1));
                let _ = events
                    .send(RunEvent::Retrying {
                        attempt: record.attempt,
                        of: finish.retries,
                        delay,
                        reason: message.clone(),
                    })
                    .await;
                tokio::time::sleep(delay).await;
            }
            // The agent died with its host (reboot), was OOM-killed or crashed: start it
            // again, once, resuming its thread when it has one (the conversation so far is
            // kept, and the run's tree still holds whatever it had done).
            Some(ExecFailure::AgentVanished { .. }) if !relaunched_vanished => {
                relaunched_vanished = true;
                // (What outlived its supervisor is ended below, before the relaunch.)
                request.resume_thread = record.thread_id.clone();
            }
            Some(failure) => {
                let failure = failure.clone();
                fail(
                    store,
                    record,
                    &serde_json::to_string(&failure).unwrap_or_default(),
                )?;
                return Err(Error::Exec {
                    failure,
                    host: transport.host().name.clone(),
                    attempts: record.attempt,
                });
            }
            None => return Ok(outcome),
        }
        // Both retry arms above end here. One run never has two live agents: the previous
        // attempt's processes (the agent and anything it left behind) are ended, and proven
        // gone, before a fresh attempt of the same agent starts.
        let previous = layout_of(transport, record).agent_dir(&record.id, record.attempt);
        executor.cancel(transport, &previous).await?;
        if let AgentState::Running { pid } | AgentState::Waiting { pid, .. } =
            executor.probe(transport, &previous).await?
        {
            let error = TransportError::CommandFailed {
                host: transport.host().name.clone(),
                command: "end the previous agent".into(),
                status: crate::transport::ExitStatus::Code(1),
                stderr: format!("its process {pid} is still running; not starting a second agent"),
            };
            fail(store, record, &error.to_string())?;
            return Err(error.into());
        }
        launch(store, record, transport, executor, request, events).await?;
    }
}

/// Why an attempt was cut short.
enum Cut {
    /// `--timeout` passed.
    TimedOut(Duration),
    /// No progress for `stall_timeout`.
    Stalled(Duration),
}

/// Writes 64 KiB beside the agent's files and reads what the host says when it cannot (a full
/// disk, in its own words). Arg: the agent dir.
const DISK_CHECK_SCRIPT: &str = r#"cd -- "$1" 2>/dev/null || exit 0
f=.codex-remote-space-check.$$
dd if=/dev/zero of="$PWD/$f" bs=65536 count=1 2>&1 >/dev/null | grep -v records
rm -f -- "$f"
"#;

/// [`Error::HostDiskFull`] when the disk holding the run's agent files is full.
async fn host_disk_full(
    transport: &dyn crate::transport::Transport,
    record: &RunRecord,
) -> Option<Error> {
    let agent_dir = layout_of(transport, record).agent_dir(&record.id, record.attempt);
    let spec = crate::transport::CommandSpec::script(
        DISK_CHECK_SCRIPT,
        &[crate::layout::home_relative(&agent_dir)],
    )
    .cwd("~");
    let output = crate::transport::TransportExt::run(transport, spec)
        .await
        .ok()?;
    let detail = crate::error::disk_full_words(&output.stdout_text())?;
    Some(Error::HostDiskFull {
        host: transport.host().name.clone(),
        detail,
    })
}

/// How long until the Unix time `epoch` (zero when it is past).
fn until_epoch(epoch: u64) -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    Duration::from_secs(epoch.saturating_sub(now))
}

/// Resolves when no progress was noted for `after`.
async fn stall(mut progress: tokio::sync::watch::Receiver<Instant>, after: Duration) {
    loop {
        let last = *progress.borrow_and_update();
        tokio::time::sleep_until((last + after).into()).await;
        if !progress.has_changed().unwrap_or(false) {
            return;
        }
    }
}

/// Whether a retrieval error refuses the result itself (the run is then `refused`, its tree kept
/// on the host for a look): a patch too large to store, or one that is not a patch as git
/// writes them (retrieving it again gives the same bytes). A failure to reach the host or to
/// read the local file is not the result's doing: the run stays `retrieving` for a retry.
fn refused_as_retrieved(e: &Error) -> bool {
    matches!(
        e,
        Error::Apply(
            crate::patch::ApplyError::NotStored { .. } | crate::patch::ApplyError::Parse(_)
        )
    )
}

/// The lines of a local `events.jsonl` from byte `start`, read a line at a time (the file is
/// as long as the agent made it: never held whole), each as `str::lines` gives it.
pub fn event_log_lines(path: &Path, start: u64) -> impl Iterator<Item = String> {
    use std::io::{BufRead, Seek};
    std::fs::File::open(path)
        .ok()
        .and_then(|mut file| {
            file.seek(std::io::SeekFrom::Start(start))
                .ok()
                .map(|_| file)
        })
        .into_iter()
        .flat_map(|file| std::io::BufReader::new(file).split(b'\n'))
        .map_while(Result::ok)
        .map(|mut line| {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            String::from_utf8_lossy(&line).into_owned()
        })
}

/// Codex's last notice of the current attempt (an `error` event, such as "Reconnecting... 2/5"),
/// to say why a stalled run stalled.
fn last_notice(store: &RunStore, record: &RunRecord) -> Option<String> {
    let path = store.run_dir(&record.id).join("events.jsonl");
    event_log_lines(&path, record.attempt_log_start)
        .filter_map(|line| match CodexEvent::parse(&line) {
            CodexEvent::Error { message } => Some(message),
            _ => None,
        })
        .last()
}

/// How one follow of the current attempt ended.
enum Followed {
    /// The agent ended (or vanished, proven by the host): its outcome.
    Ended(ExecOutcome),
    /// The stream stopped while the agent may still run (its `tail` killed, the connection lost).
    Broken,
}

/// Follows the current attempt until its end is known. A stream that stops early is never taken
/// for the agent's end: the host is asked how the agent stands, and a live (or finished) agent
/// is followed again from where the record stopped. Fails with a connection error, the run
/// left `running`, when the host cannot tell.
async fn follow_until_end(
    store: &RunStore,
    record: &mut RunRecord,
    transport: &dyn crate::transport::Transport,
    executor: &dyn Executor,
    events: &mpsc::Sender<RunEvent>,
) -> Result<ExecOutcome, Error> {
    let mut fruitless = 0u32;
    loop {
        let before = local_log_len(store, &record.id);
        match follow_once(store, record, transport, executor, events).await {
            Ok(Followed::Ended(outcome)) => return Ok(outcome),
            Ok(Followed::Broken) => {}
            Err(Error::Transport(e))
                if e.is_connection() || matches!(e, TransportError::Io { .. }) => {}
            Err(e) => return Err(e),
        }
        let agent_dir = layout_of(transport, record).agent_dir(&record.id, record.attempt);
        match executor.probe(transport, &agent_dir).await {
            Ok(
                AgentState::Running { .. }
                | AgentState::Waiting { .. }
                | AgentState::Finished { .. },
            ) => {}
            Ok(AgentState::Vanished | AgentState::NotStarted) => return Ok(vanished(record)),
            Err(_) => return Err(broken_stream(transport, record)),
        }
        if local_log_len(store, &record.id) > before {
            fruitless = 0;
        } else {
            fruitless += 1;
            if fruitless > 5 {
                return Err(broken_stream(transport, record));
            }
            tokio::time::sleep(backoff(
                fruitless - 1,
                Duration::from_millis(200),
                Duration::from_secs(3),
            ))
            .await;
        }
    }
}

fn broken_stream(transport: &dyn crate::transport::Transport, record: &RunRecord) -> Error {
    Error::Transport(TransportError::Disconnected {
        host: transport.host().name.clone(),
        detail: format!(
            "the event stream of run `{}` stopped before the agent finished; it keeps running on the host (hint: `codex-remote attach {}` resumes where this stopped)",
            record.id, record.id
        ),
    })
}

/// What a run's whole local event log says: its token usage (each thread once) and how many
/// times its thread was resumed.
#[derive(Debug, Clone, Default)]
pub struct RunHistory {
    /// Tokens used, over every attempt and resume.
    pub usage: Usage,
    /// Resumes of the thread.
    pub resumes: u32,
}

/// Reads [`RunHistory`] from a run's `events.jsonl`.
pub fn run_history(path: &Path) -> RunHistory {
    let mut tally = crate::events::UsageTally::default();
    let mut resumes = 0;
    for line in event_log_lines(path, 0) {
        let event = CodexEvent::parse(&line);
        if matches!(event, CodexEvent::Resumed { .. }) {
            resumes += 1;
        }
        tally.observe(&event);
    }
    RunHistory {
        usage: tally.total(),
        resumes,
    }
}

fn vanished(record: &RunRecord) -> ExecOutcome {
    ExecOutcome {
        status: crate::transport::ExitStatus::Signal(0),
        thread_id: None,
        usage: Default::default(),
        last_message: None,
        files_reported: Vec::new(),
        failure: Some(ExecFailure::AgentVanished {
            message: format!(
                "the agent of run `{}` (attempt {}) is gone without an exit status",
                record.id, record.attempt
            ),
        }),
    }
}

/// Follows the current attempt to its end, appending each new complete line to the local
/// `events.jsonl` exactly once, and returns its outcome (from all of the attempt's events). A
/// stream that breaks while the agent lives is followed again (see `follow_until_end`). The
/// supervisor's park and resume lines move the record to `waiting` (with `resume_at`) and back
/// to `running` as they arrive.
pub(crate) async fn follow_attempt(
    store: &RunStore,
    record: &mut RunRecord,
    transport: &dyn crate::transport::Transport,
    executor: &dyn Executor,
    events: &mpsc::Sender<RunEvent>,
) -> Result<ExecOutcome, Error> {
    follow_until_end(store, record, transport, executor, events).await
}

/// At most this many bytes of event lines are taken as one batch by a follow.
const EVENT_BATCH_BYTES: usize = 1 << 20;

async fn follow_once(
    store: &RunStore,
    record: &mut RunRecord,
    transport: &dyn crate::transport::Transport,
    executor: &dyn Executor,
    events: &mpsc::Sender<RunEvent>,
) -> Result<Followed, Error> {
    let dir = store.run_dir(&record.id);
    let path = dir.join("events.jsonl");
    let local_len = local_log_len(store, &record.id);
    let (offset, agreed) = record.follow_offset(local_len);
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(record_io(format!("opening {}", path.display())))?;
    if agreed < local_len {
        // A line that differs from the host's was cut off mid-write: it is read again.
        log.set_len(agreed)
            .map_err(record_io(format!("truncating {}", path.display())))?;
    }
    // (local length, host offset) after the last recorded line.
    let mut position = (agreed, offset);
    let (tx, mut rx) = mpsc::channel::<ExecEvent>(256);
    let agent_dir = layout_of(transport, record).agent_dir(&record.id, record.attempt);
    let notify = record.finish.as_ref().and_then(|f| f.notify.clone());
    let mut tally = {
        let mut tally = crate::events::UsageTally::default();
        for line in event_log_lines(&path, 0) {
            tally.observe(&CodexEvent::parse(&line));
        }
        tally
    };
    let consume = async {
        while let Some(first) = rx.recv().await {
            // What has arrived is taken as one batch (bounded), recorded before it is shown.
            let mut batch = vec![first];
            let mut batch_bytes = batch[0].raw.len();
            while batch_bytes < EVENT_BATCH_BYTES {
                let Ok(event) = rx.try_recv() else { break };
                batch_bytes += event.raw.len();
                batch.push(event);
            }
            // A line recorded otherwise than the host has it (skipped for its size, redacted):
            // where the two logs line up around the batch is saved first (once per batch, not
            // per line), so a later follow resumes at the right byte of the host's log: after
            // the batch once it is wholly written, else at its first such line (read again).
            let mut end = position;
            let mut first_differing = None;
            for event in &batch {
                let line_len = event.raw.len() as u64 + 1;
                if line_len != event.log_bytes && first_differing.is_none() {
                    first_differing = Some(end);
                }
                end = (end.0 + line_len, end.1 + event.log_bytes);
            }
            if let Some(before) = first_differing {
                record.events_mark = Some(crate::runs::EventsMark {
                    local: end.0,
                    remote: end.1,
                    local_before: before.0,
                    remote_before: before.1,
                });
                let _ = store.save(record);
            }
            position = end;
            // Written before it is shown: what was displayed is always in the record.
            let mut text = String::with_capacity(batch_bytes + batch.len());
            for event in &batch {
                text.push_str(&event.raw);
                text.push('\n');
            }
            let _ = log.write_all(text.as_bytes());
            let _ = log.flush();
            for event in batch {
                tally.observe(&event.event);
                let update = match &event.event {
                    CodexEvent::ThreadStarted { thread_id }
                        if record.thread_id.as_deref() != Some(thread_id)
                            && crate::executor::is_thread_id(thread_id) =>
                    {
                        record.thread_id = Some(thread_id.clone());
                        None
                    }
                    CodexEvent::TurnCompleted { .. } => {
                        record.usage = tally.total();
                        None
                    }
                    CodexEvent::Parked {
                        thread_id,
                        resume_at,
                        source,
                    } => {
                        let at = crate::runs::rfc3339_of(*resume_at);
                        record.phase = Phase::Waiting;
                        record.resume_at = Some(at.clone());
                        Some(RunEvent::Waiting {
                            resume_at: at,
                            source: source.clone(),
                            thread_id: thread_id.clone(),
                        })
                    }
                    CodexEvent::Resumed { thread_id, reason } => {
                        record.phase = Phase::Running;
                        record.resume_at = None;
                        Some(RunEvent::Resumed {
                            thread_id: thread_id.clone(),
                            reason: reason.clone(),
                        })
                    }
                    _ => None,
                };
                // A park replayed after it ended (an `attach` afterwards) is not news.
                let ahead = matches!(&event.event, CodexEvent::Parked { resume_at, .. }
                if crate::runs::rfc3339_of(*resume_at) > now());
                let _ = events.send(RunEvent::Codex(event)).await;
                if let Some(update) = update {
                    record.updated_at = now();
                    let _ = store.save(record);
                    if let (Some(command), RunEvent::Waiting { .. }, true) =
                        (&notify, &update, ahead)
                    {
                        crate::notify::run(command, &crate::notify::parked(record)).await;
                    }
                    let _ = events.send(update).await;
                }
            }
        }
    };
    let (end, ()) = tokio::join!(executor.follow(transport, &agent_dir, offset, tx), consume);
    if record.usage != tally.total() {
        record.usage = tally.total();
        let _ = store.save(record);
    }
    let end = end?;
    if end.vanished {
        return Ok(Followed::Ended(vanished(record)));
    }
    let Some(status) = end.status else {
        return Ok(Followed::Broken);
    };
    Ok(Followed::Ended(attempt_outcome(
        &path,
        record.attempt_log_start,
        status,
        &end.stderr,
    )))
}

/// The outcome of an attempt from its events in the local log.
fn attempt_outcome(
    path: &Path,
    start: u64,
    status: crate::transport::ExitStatus,
    stderr: &str,
) -> ExecOutcome {
    let mut builder = OutcomeBuilder::default();
    for line in event_log_lines(path, start) {
        builder.observe(&CodexEvent::parse(&line));
    }
    builder.finish(status, stderr)
}

/// Runs a planned task end to end (start, then follow and finish). Kept for tests and benches;
/// the front door is `Engine::start`.
#[cfg_attr(not(feature = "test-internals"), allow(dead_code))]
pub async fn run(
    plan: &RunPlan,
    config: &Config,
    project: &Project,
    transport: SharedTransport,
    executor: &dyn Executor,
    options: &RunOptions,
    events: mpsc::Sender<RunEvent>,
) -> Result<RunSummary, Error> {
    let mut record = start(
        plan,
        config,
        project,
        transport.clone(),
        executor,
        options,
        &events,
    )
    .await?;
    let host = transport.host().clone();
    let finished = follow_and_finish(
        project,
        config,
        &mut record,
        transport,
        executor,
        (options.initial_delay, options.max_delay),
        &events,
    )
    .await;
    if let Err(e) = &finished {
        // Codex vanished or its credentials were refused: the next run checks the host again.
        crate::prerequisites::PrerequisiteCache::new(&project.root).forget_on(&host, e);
    }
    finished
}

/// Cancels a run's agent (every process of it on the host) and records it. A finished run
/// (completed, failed, cancelled or refused) is refused, its record untouched.
pub async fn cancel(
    project: &Project,
    record: &mut RunRecord,
    transport: SharedTransport,
    executor: &dyn Executor,
) -> Result<(), Error> {
    if record.phase.is_finished() {
        return Err(crate::input::InputError::new(
            format!("run `{}`", record.id),
            format!(
                "the run is already {}; there is nothing to cancel",
                record.phase
            ),
        )
        .hint(format!(
            "`codex-remote status {}` shows how it ended",
            record.id
        ))
        .into());
    }
    let container_gone = record.container.as_ref().is_some_and(|c| c.removed);
    if record.attempt > 0 && !container_gone {
        let transport = crate::ondemand::for_run(record, transport)?;
        let agent_dir = layout_of(transport.as_ref(), record).agent_dir(&record.id, record.attempt);
        // Never a cancel that ends nothing and says it did: the agent must be where the run
        // started it (a pid, or an interactive session's marker, or its recorded end).
        if !agent_found(transport.as_ref(), executor, record, &agent_dir).await? {
            return Err(Error::AgentNotFound {
                run_id: record.id.clone(),
                host: transport.host().name.clone(),
                agent_dir,
                phase: record.phase.to_string(),
            });
        }
        executor.cancel(transport.as_ref(), &agent_dir).await?;
    }
    record.phase = Phase::Cancelled;
    record.updated_at = now();
    project.runs().save(record)?;
    // A run made on demand takes its container with it, unless asked to keep it.
    if !record.finish.as_ref().is_some_and(|f| f.keep) {
        crate::ondemand::release(&project.runs(), record).await?;
    }
    Ok(())
}

/// Whether the host holds a trace of the run's current agent in `agent_dir`: a supervisor's pid
/// or recorded end (asked of the executor), or, for an interactive session (which has no
/// supervisor), the marker its processes carry.
async fn agent_found(
    transport: &dyn crate::transport::Transport,
    executor: &dyn Executor,
    record: &RunRecord,
    agent_dir: &str,
) -> Result<bool, Error> {
    if record.kind == crate::runs::RunKind::Interactive {
        use crate::transport::TransportExt;
        return match transport.read_file(&format!("{agent_dir}/marker")).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_connection() => Err(e.into()),
            Err(_) => Ok(false),
        };
    }
    Ok(!matches!(
        executor.probe(transport, agent_dir).await?,
        AgentState::NotStarted
    ))
}

async fn set_phase(
    store: &RunStore,
    record: &mut RunRecord,
    phase: Phase,
    events: &mpsc::Sender<RunEvent>,
) -> Result<(), Error> {
    record.phase = phase;
    record.updated_at = now();
    store.save(record)?;
    let _ = events.send(RunEvent::Phase(phase)).await;
    Ok(())
}

fn fail(store: &RunStore, record: &mut RunRecord, error: &str) -> Result<(), Error> {
    record.phase = Phase::Failed;
    record.error = Some(error.to_string());
    record.updated_at = now();
    store.save(record)?;
    Ok(())
}

/// How much of the host's event log `logs`' look at unrecorded events reads at most: 32 MiB,
/// counting every byte read (blank and oversized lines too) and [`LINE_OVERHEAD`] per line kept.
pub const UNRECORDED_LIMIT: u64 = 32 * 1024 * 1024;

/// What each line kept by the look counts against [`UNRECORDED_LIMIT`] besides its bytes (the
/// memory of holding it), so a log of tiny lines is bounded too.
const LINE_OVERHEAD: u64 = 128;

/// What [`unrecorded_events`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unrecorded {
    /// The lines, as shown (host secrets redacted, an oversized line as its notice).
    pub lines: Vec<String>,
    /// Bytes of the host's log read past what the local record holds.
    pub read: u64,
    /// Whether the look stopped at [`UNRECORDED_LIMIT`] with more (maybe) to read.
    pub cut: bool,
}

/// The whole lines of a running run's current attempt that its agent has written on the host
/// and the local record does not hold yet, read once (no follow) and never recorded: a look at
/// a detached run that leaves recording events exactly once to whoever follows it. It reads at
/// most [`UNRECORDED_LIMIT`] (say so with `cut`).
pub async fn unrecorded_events(
    transport: &SharedTransport,
    project: &Project,
    record: &RunRecord,
) -> Result<Unrecorded, Error> {
    use tokio::io::AsyncReadExt;
    let dir = layout_of(transport.as_ref(), record).agent_dir(&record.id, record.attempt);
    let local_len = local_log_len(&project.runs(), &record.id);
    let (offset, _) = record.follow_offset(local_len);
    let path = format!("{dir}/events.jsonl");
    // Streamed a line at a time: a line over the limit is skipped, never held whole.
    let mut process = transport
        .spawn(
            crate::transport::CommandSpec::new("tail")
                .args(["-c", &format!("+{}", offset + 1), "--"])
                .arg(crate::layout::home_relative(&path))
                .cwd("~"),
        )
        .await?;
    let stdout = std::mem::replace(&mut process.stdout, Box::new(tokio::io::empty()));
    let mut stderr = std::mem::replace(&mut process.stderr, Box::new(tokio::io::empty()));
    let read_lines = async {
        // A look, not a record: reading stops at the limit (the follower records it all).
        let mut reader = tokio::io::BufReader::new(stdout.take(UNRECORDED_LIMIT));
        let mut found = Unrecorded::default();
        let mut counted: u64 = 0;
        loop {
            let line =
                crate::executor::next_line(&mut reader, crate::executor::MAX_EVENT_LINE).await?;
            // A partial last line is still being written: left for next time, unless the
            // limit cut it.
            let crate::executor::LogLine::Complete { bytes, len } = line else {
                found.cut = reader.get_ref().limit() == 0;
                return Ok(found);
            };
            found.read += len + 1;
            counted += len + 1;
            let line = match bytes {
                None => crate::executor::oversized_line(len),
                Some(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => continue,
                // The agent's output may quote its environment: no host secret is shown.
                Some(bytes) => transport.host().redact(&String::from_utf8_lossy(&bytes)),
            };
            counted += line.len() as u64 + LINE_OVERHEAD;
            found.lines.push(line);
            if counted >= UNRECORDED_LIMIT {
                found.cut = true;
                return Ok(found);
            }
        }
    };
    let stderr = tokio::spawn(async move {
        let mut text = Vec::new();
        let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut text).await;
        let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
        text
    });
    let found = read_lines
        .await
        .map_err(crate::transport::TransportError::io(
            "reading the agent's events",
        ))?;
    if found.cut {
        stderr.abort();
        process.cancel().await?;
        return Ok(found);
    }
    let status = process.wait().await?;
    let stderr = stderr.await.unwrap_or_default();
    if !status.success() {
        return Err(crate::transport::TransportError::CommandFailed {
            host: transport.host().name.clone(),
            command: format!("tail -c +{} -- {path}", offset + 1),
            status,
            stderr: String::from_utf8_lossy(&stderr).trim().to_string(),
        }
        .into());
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::FollowEnd;
    use crate::transport::{ExitStatus, Transport};
    use std::sync::Mutex;

    /// An agent whose host log is `lines` (each as recorded locally, and how many bytes of the
    /// host's log it stands for); each follow sends the lines from its offset, the first ones
    /// stopping (a broken stream) after as many lines as `breaks` says.
    struct HostLog {
        lines: Vec<(String, u64)>,
        breaks: Mutex<std::collections::VecDeque<usize>>,
    }

    #[async_trait::async_trait]
    impl Executor for HostLog {
        async fn launch(
            &self,
            _: &dyn Transport,
            _: &str,
            _: &ExecRequest,
        ) -> Result<u32, TransportError> {
            unreachable!("only followed")
        }

        async fn follow(
            &self,
            _: &dyn Transport,
            _: &str,
            offset: u64,
            events: mpsc::Sender<ExecEvent>,
        ) -> Result<FollowEnd, TransportError> {
            let limit = self.breaks.lock().unwrap().pop_front();
            let mut position = 0;
            let mut sent = 0;
            for (raw, log_bytes) in &self.lines {
                if position >= offset {
                    if Some(sent) == limit {
                        return Ok(FollowEnd {
                            status: None,
                            vanished: false,
                            stderr: String::new(),
                        });
                    }
                    let event = ExecEvent {
                        raw: raw.clone(),
                        event: CodexEvent::parse(raw),
                        log_bytes: *log_bytes,
                    };
                    events.send(event).await.unwrap();
                    sent += 1;
                }
                position += log_bytes;
            }
            Ok(FollowEnd {
                status: Some(ExitStatus::Code(0)),
                vanished: false,
                stderr: String::new(),
            })
        }

        async fn probe(&self, _: &dyn Transport, _: &str) -> Result<AgentState, TransportError> {
            unreachable!("only followed")
        }

        async fn cancel(&self, _: &dyn Transport, _: &str) -> Result<(), TransportError> {
            unreachable!("only followed")
        }
    }

    #[test]
    fn only_a_result_refused_as_retrieved_makes_the_run_refused() {
        use crate::patch::{ApplyError, PatchParseError};
        let too_large = ApplyError::NotStored {
            at_least: 11,
            limit: 10,
            configured: None,
        };
        assert!(refused_as_retrieved(&too_large.into()));
        let malformed = ApplyError::Parse(PatchParseError {
            line: 3,
            message: "not a patch".into(),
        });
        assert!(refused_as_retrieved(&malformed.into()));
        // Not the result's doing: left `retrieving` for a retry.
        let unreadable = ApplyError::Io {
            context: "reading result.patch".into(),
            source: std::io::Error::other("permission denied"),
        };
        assert!(!refused_as_retrieved(&unreadable.into()));
        let lost = TransportError::io("reading the patch")(std::io::Error::other("broken pipe"));
        assert!(!refused_as_retrieved(&lost.into()));
    }

    #[test]
    fn the_local_log_is_read_a_line_at_a_time_as_str_lines_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let bytes = b"one\r\n\xff two\n\nthree\npartial";
        std::fs::write(&path, bytes).unwrap();
        let text = String::from_utf8_lossy(bytes);
        let expected: Vec<&str> = text.lines().collect();
        assert_eq!(event_log_lines(&path, 0).collect::<Vec<_>>(), expected);
        let from: Vec<&str> = text[5..].lines().collect();
        assert_eq!(event_log_lines(&path, 5).collect::<Vec<_>>(), from);
        assert_eq!(event_log_lines(&path, 1000).count(), 0);
        assert_eq!(event_log_lines(&dir.path().join("none"), 0).count(), 0);
    }

    /// An agent appending `\xff` lines to its own log (each recorded as U+FFFD, 3 bytes for the
    /// host's 2) made one `run.json` write per line (20 000 lines: 11.6 s instead of 1.2 s):
    /// the mark is saved once per batch, and a follow resumed after a drop, or after a client
    /// that died in the middle of a batch, records every line exactly once.
    #[tokio::test]
    async fn lines_recorded_otherwise_than_the_host_has_them_cost_one_save_per_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path());
        let transport = crate::transport::local::LocalTransport::new(
            Config::builtin().host(Some("local")).unwrap(),
        );
        const LINES: usize = 20_000;
        let lines: Vec<(String, u64)> = (0..LINES)
            .map(|i| match i % 3 {
                0 => (format!(r#"{{"type":"verbatim","n":{i}}}"#), 0),
                _ => ("\u{fffd}".to_string(), 2),
            })
            .map(|(raw, bytes)| {
                let bytes = if bytes == 0 {
                    raw.len() as u64 + 1
                } else {
                    bytes
                };
                (raw, bytes)
            })
            .collect();
        let expected: String = lines.iter().map(|(raw, _)| format!("{raw}\n")).collect();
        let executor = HostLog {
            lines,
            breaks: Mutex::new([7_000].into()),
        };
        let mut record: RunRecord = serde_json::from_value(serde_json::json!({
            "id": "t-1", "task_id": "t", "host": "local", "project": "app",
            "remote_mirror": "~/workspace/app", "phase": "running",
            "created_at": now(), "updated_at": now(), "attempt": 1,
        }))
        .unwrap();
        store.save(&record).unwrap();
        let (events, mut shown) = mpsc::channel(4 * LINES);
        let log = store.run_dir("t-1").join("events.jsonl");
        let saves = || crate::runs::SAVES.with(|s| s.get());

        // The stream breaks after 7 000 lines; the next follow resumes where it stopped.
        let before = saves();
        let first = follow_once(&store, &mut record, &transport, &executor, &events)
            .await
            .unwrap();
        assert!(matches!(first, Followed::Broken));
        let second = follow_once(&store, &mut record, &transport, &executor, &events)
            .await
            .unwrap();
        assert!(matches!(second, Followed::Ended(_)));
        let saved = saves() - before;
        assert_eq!(std::fs::read_to_string(&log).unwrap(), expected);
        // 13 334 differing lines: one save per batch (a batch is what has arrived, up to the
        // channel's 256 lines), nowhere near one per line.
        assert!(
            (1..=LINES as u64 / 50).contains(&saved),
            "{saved} saves of run.json for {LINES} lines"
        );
        let mut shown_lines = 0;
        while let Ok(event) = shown.try_recv() {
            shown_lines += usize::from(matches!(event, RunEvent::Codex(_)));
        }
        assert_eq!(shown_lines, LINES);

        // A client that died while writing its last batch (the mark saved, the batch half
        // written): cut back to the batch's first differing line and read again from there.
        let mark = crate::runs::RunStore::new(dir.path())
            .load("t-1")
            .unwrap()
            .events_mark
            .expect("a mark");
        assert_eq!(mark.local, expected.len() as u64);
        assert!(mark.local_before < mark.local);
        let cut = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
        cut.set_len((mark.local_before + mark.local) / 2 + 1)
            .unwrap();
        let mut record = store.load("t-1").unwrap();
        let third = follow_once(&store, &mut record, &transport, &executor, &events)
            .await
            .unwrap();
        assert!(matches!(third, Followed::Ended(_)));
        assert_eq!(std::fs::read_to_string(&log).unwrap(), expected);
    }
}
