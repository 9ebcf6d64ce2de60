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
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::atomic::write_atomic;
use crate::config::Config;
use crate::error::Error;
use crate::events::{CodexEvent, Usage};
use crate::executor::{
    backoff, ExecEvent, ExecFailure, ExecOutcome, ExecRequest, Executor, OutcomeBuilder,
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
            keep: false,
            retries: retry.retries,
            initial_delay: retry.initial_delay,
            max_delay: retry.max_delay,
            timeout: None,
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
#[derive(Debug, Clone, Serialize)]
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
    // Before anything is pushed: codex on the host and a way for it to authenticate.
    let cache = crate::prerequisites::PrerequisiteCache::new(&project.root);
    crate::prerequisites::ensure(transport.as_ref(), &cache).await?;
    if !options.skip_push {
        let _ = events.send(RunEvent::Phase(Phase::Syncing)).await;
        let pushed = pipeline::push(transport.clone(), config, project, None).await?;
        let _ = events.send(RunEvent::Pushed(pushed)).await;
    }
    let mut record = pipeline::start_run(transport.clone(), config, project, &plan.task.id).await?;
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

fn layout_of(transport: &dyn crate::transport::Transport, record: &RunRecord) -> RemoteLayout {
    RemoteLayout::new(transport.host(), &record.project)
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
    record.phase = Phase::Running;
    record.updated_at = now();
    store.save(record)?;
    let agent_dir = layout_of(transport, record).agent_dir(&record.id, record.attempt);
    let pid = match executor.launch(transport, &agent_dir, request).await {
        Ok(pid) => pid,
        Err(e) => {
            fail(store, record, &e.to_string())?;
            return Err(e.into());
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
/// `notify` command, if any, hears of parks, the end and failures.
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
        follow_and_finish_inner(project, config, record, transport, executor, retry, events).await;
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
        keep: false,
        retries: 0,
        checkpoint: None,
        task_plan: None,
        notify: None,
    });
    let mut request = read_request(&store, &record.id)?;
    let timeout = request.timeout;
    let mut relaunched_vanished = false;
    let outcome = loop {
        let followed = follow_attempt(&store, record, transport.as_ref(), executor, events);
        let outcome = match timeout {
            None => followed.await?,
            Some(after) => match tokio::time::timeout(after, followed).await {
                Ok(outcome) => outcome?,
                Err(_) => {
                    let agent_dir =
                        layout_of(transport.as_ref(), record).agent_dir(&record.id, record.attempt);
                    executor.cancel(transport.as_ref(), &agent_dir).await?;
                    let error = TransportError::TimedOut {
                        command: "codex exec".into(),
                        after,
                    };
                    fail(&store, record, &error.to_string())?;
                    return Err(error.into());
                }
            },
        };
        request.resume_thread = None;
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
                // Whatever outlived its supervisor goes first: never two live agents.
                let old =
                    layout_of(transport.as_ref(), record).agent_dir(&record.id, record.attempt);
                executor.cancel(transport.as_ref(), &old).await?;
                request.resume_thread = record.thread_id.clone();
            }
            Some(failure) => {
                let failure = failure.clone();
                fail(
                    &store,
                    record,
                    &serde_json::to_string(&failure).unwrap_or_default(),
                )?;
                return Err(Error::Exec {
                    failure,
                    host: transport.host().name.clone(),
                    attempts: record.attempt,
                });
            }
            None => break outcome,
        }
        // Both retry arms above end here: a fresh attempt of the same agent.
        launch(
            &store,
            record,
            transport.as_ref(),
            executor,
            &request,
            events,
        )
        .await?;
    };
    let dir = store.run_dir(&record.id);
    if let Some(message) = &outcome.last_message {
        write_atomic(&dir.join("last-message.txt"), message.as_bytes())
            .map_err(record_io("writing last-message.txt".into()))?;
    }
    set_phase(&store, record, Phase::Retrieving, events).await?;
    let parsed: ParsedPatch = pipeline::retrieve(transport.clone(), project, record).await?;
    set_phase(&store, record, Phase::Completed, events).await?;
    // The result is in the local record now: the host's tree goes unless asked to stay,
    // whether or not the result is applied (a later `apply` works from the record).
    if !finish.keep {
        pipeline::remove_remote(transport.clone(), project, record).await?;
    }
    let mut applied = false;
    if finish.apply && !parsed.files.is_empty() {
        pipeline::apply(config, project, record, finish.allow_restricted)?;
        applied = true;
    }
    let mut checkpoint = None;
    if let (true, Some(spec)) = (applied, &finish.checkpoint) {
        checkpoint = Some(crate::checkpoint::mark_checkpoint(
            &project.root.join(&spec.file),
            &spec.item,
            Some(&record.id),
        )?);
    }
    let history = run_history(&dir.join("events.jsonl"));
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
    let bytes = std::fs::read(path).unwrap_or_default();
    let mut tally = crate::events::UsageTally::default();
    let mut resumes = 0;
    for line in String::from_utf8_lossy(&bytes).lines() {
        let event = CodexEvent::parse(line);
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

/// Follows the current attempt to its end, appending each new complete line to the local
/// `events.jsonl` exactly once, and returns its outcome (from all of the attempt's events).
/// The supervisor's park and resume lines move the record to `waiting` (with `resume_at`) and
/// back to `running` as they arrive.
pub async fn follow_attempt(
    store: &RunStore,
    record: &mut RunRecord,
    transport: &dyn crate::transport::Transport,
    executor: &dyn Executor,
    events: &mpsc::Sender<RunEvent>,
) -> Result<ExecOutcome, Error> {
    let dir = store.run_dir(&record.id);
    let path = dir.join("events.jsonl");
    let offset = local_log_len(store, &record.id).saturating_sub(record.attempt_log_start);
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(record_io(format!("opening {}", path.display())))?;
    let (tx, mut rx) = mpsc::channel::<ExecEvent>(256);
    let agent_dir = layout_of(transport, record).agent_dir(&record.id, record.attempt);
    let notify = record.finish.as_ref().and_then(|f| f.notify.clone());
    let mut tally = {
        let mut tally = crate::events::UsageTally::default();
        let bytes = std::fs::read(&path).unwrap_or_default();
        for line in String::from_utf8_lossy(&bytes).lines() {
            tally.observe(&CodexEvent::parse(line));
        }
        tally
    };
    let consume = async {
        while let Some(event) = rx.recv().await {
            // Written before it is shown: what was displayed is always in the record.
            let _ = writeln!(log, "{}", event.raw);
            let _ = log.flush();
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
                if let (Some(command), RunEvent::Waiting { .. }, true) = (&notify, &update, ahead) {
                    crate::notify::run(command, &crate::notify::parked(record)).await;
                }
                let _ = events.send(update).await;
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
        return Ok(ExecOutcome {
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
        });
    }
    let Some(status) = end.status else {
        return Err(Error::Transport(TransportError::Disconnected {
            host: transport.host().name.clone(),
            detail: format!(
                "the event stream of run `{}` stopped before the agent finished; it keeps running on the host (hint: `codex-remote attach {}` resumes where this stopped)",
                record.id, record.id
            ),
        }));
    };
    Ok(attempt_outcome(
        &path,
        record.attempt_log_start,
        status,
        &end.stderr,
    ))
}

/// The outcome of an attempt from its events in the local log.
fn attempt_outcome(
    path: &Path,
    start: u64,
    status: crate::transport::ExitStatus,
    stderr: &str,
) -> ExecOutcome {
    let bytes = std::fs::read(path).unwrap_or_default();
    let mut builder = OutcomeBuilder::default();
    for line in String::from_utf8_lossy(&bytes[(start as usize).min(bytes.len())..]).lines() {
        builder.observe(&CodexEvent::parse(line));
    }
    builder.finish(status, stderr)
}

/// Runs a planned task end to end (start, then follow and finish).
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

/// Cancels a run's agent (its whole process group on the host) and records it.
pub async fn cancel(
    project: &Project,
    record: &mut RunRecord,
    transport: SharedTransport,
    executor: &dyn Executor,
) -> Result<(), Error> {
    if record.attempt > 0 {
        let agent_dir = layout_of(transport.as_ref(), record).agent_dir(&record.id, record.attempt);
        executor.cancel(transport.as_ref(), &agent_dir).await?;
    }
    record.phase = Phase::Cancelled;
    record.updated_at = now();
    project.runs().save(record)?;
    Ok(())
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
