//! `run`: the whole workflow in one call: push, prepare the run's tree, execute the agent
//! (retrying rate limits with bounded backoff), retrieve the change, apply it.
//!
//! Everything about the run is recorded in `.codex-remote/runs/<run-id>/`: `run.json` (phase and
//! timestamps), `task.json`, `instruction.txt`, `events.jsonl` (Codex's raw event stream,
//! verbatim), `result.patch` and `last-message.txt`.

use std::io::Write;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::atomic::write_atomic;
use crate::config::Config;
use crate::error::Error;
use crate::events::Usage;
use crate::executor::{backoff, ExecEvent, ExecFailure, ExecOutcome, ExecRequest, Executor};
use crate::patch::ParsedPatch;
use crate::pipeline::{self, Project};
use crate::plan::RunPlan;
use crate::runs::{now, Phase, RunRecord};
use crate::sync::PushReport;
use crate::transport::SharedTransport;

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
    /// An event from Codex.
    Codex(ExecEvent),
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
    /// The model used.
    pub model: String,
    /// Where the model choice came from.
    pub model_source: crate::model::ModelSource,
    /// The host.
    pub host: String,
    /// Tokens used.
    pub usage: Usage,
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
}

fn record_io(context: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { context, source }
}

/// Runs a planned task end to end.
pub async fn run(
    plan: &RunPlan,
    config: &Config,
    project: &Project,
    transport: SharedTransport,
    executor: &dyn Executor,
    options: &RunOptions,
    events: mpsc::Sender<RunEvent>,
) -> Result<RunSummary, Error> {
    let _ = events.send(RunEvent::Phase(Phase::Syncing)).await;
    let pushed = pipeline::push(transport.clone(), config, project, None).await?;
    let _ = events.send(RunEvent::Pushed(pushed)).await;
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
    let tree = record.tree.clone().expect("start_run prepares the tree");
    let _ = events
        .send(RunEvent::Started {
            run_id: record.id.clone(),
            dir: tree.dir.clone(),
        })
        .await;

    set_phase(&store, &mut record, Phase::Running, &events).await?;
    let request = ExecRequest {
        dir: tree.dir.clone(),
        instruction: plan.instruction.text.clone(),
        model: plan.model.clone(),
        sandbox: options.sandbox.clone(),
        extra_args: options.extra_args.clone(),
        timeout: options.timeout,
    };
    let mut attempts = 0;
    let outcome = loop {
        attempts += 1;
        let outcome = execute_recorded(executor, &transport, &request, &dir, &events).await;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(e) => {
                fail(&store, &mut record, &e.to_string())?;
                return Err(e);
            }
        };
        match &outcome.failure {
            Some(ExecFailure::RateLimited { message }) if attempts <= options.retries => {
                let delay = backoff(attempts - 1, options.initial_delay, options.max_delay);
                let _ = events
                    .send(RunEvent::Retrying {
                        attempt: attempts,
                        of: options.retries,
                        delay,
                        reason: message.clone(),
                    })
                    .await;
                tokio::time::sleep(delay).await;
            }
            Some(failure) => {
                let failure = failure.clone();
                fail(
                    &store,
                    &mut record,
                    &serde_json::to_string(&failure).unwrap_or_default(),
                )?;
                return Err(Error::Exec {
                    failure,
                    host: transport.host().name.clone(),
                    attempts,
                });
            }
            None => break outcome,
        }
    };
    if let Some(message) = &outcome.last_message {
        write_atomic(&dir.join("last-message.txt"), message.as_bytes())
            .map_err(record_io("writing last-message.txt".into()))?;
    }

    set_phase(&store, &mut record, Phase::Retrieving, &events).await?;
    let parsed: ParsedPatch = pipeline::retrieve(transport.clone(), project, &mut record).await?;
    set_phase(&store, &mut record, Phase::Completed, &events).await?;
    let mut applied = false;
    if options.apply && !parsed.files.is_empty() {
        pipeline::apply(config, project, &mut record, options.allow_restricted)?;
        applied = true;
    }
    if (applied || parsed.files.is_empty()) && options.apply && !options.keep {
        pipeline::remove_remote(transport.clone(), project, &mut record).await?;
    }
    Ok(RunSummary {
        run_id: record.id.clone(),
        task_id: record.task_id.clone(),
        model: plan.model.model.clone(),
        model_source: plan.model.source,
        host: record.host.clone(),
        usage: outcome.usage,
        last_message: outcome.last_message,
        files: parsed.files,
        applied,
        patch: store.patch_path(&record.id),
        attempts,
    })
}

/// Runs the agent once, appending every raw event line to `events.jsonl` as it arrives.
async fn execute_recorded(
    executor: &dyn Executor,
    transport: &SharedTransport,
    request: &ExecRequest,
    dir: &std::path::Path,
    events: &mpsc::Sender<RunEvent>,
) -> Result<ExecOutcome, Error> {
    let path = dir.join("events.jsonl");
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(record_io(format!("opening {}", path.display())))?;
    let (tx, mut rx) = mpsc::channel::<ExecEvent>(256);
    let forward = events.clone();
    let writer = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            let _ = writeln!(log, "{}", event.raw);
            let _ = log.flush();
            let _ = forward.send(RunEvent::Codex(event)).await;
        }
    });
    let outcome = executor.execute(transport.as_ref(), request, tx).await;
    let _ = writer.await;
    Ok(outcome?)
}

async fn set_phase(
    store: &crate::runs::RunStore,
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

fn fail(store: &crate::runs::RunStore, record: &mut RunRecord, error: &str) -> Result<(), Error> {
    record.phase = Phase::Failed;
    record.error = Some(error.to_string());
    record.updated_at = now();
    store.save(record)?;
    Ok(())
}
