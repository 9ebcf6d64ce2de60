//! `codex-remote watch [PLAN]`: a live full-screen view of the project's runs (and of a
//! task_plan.json's entries), with keys to follow a run's events, see its diff, apply it, cancel
//! it. Plain lines when stdout is not a terminal. Everything shown comes from the local run
//! records, so it is as live as whoever follows the runs (`run`, `attach`, `orchestrate`).

pub mod model;
mod tui;

use std::io::IsTerminal;
use std::path::Path;
use std::time::SystemTime;

use codex_remote_core::Project;

use super::Context;
use crate::cli::WatchArgs;
use crate::error::CliError;
use crate::{exit, output};
use model::{plain_line, Watcher};

pub async fn run(ctx: &Context, args: WatchArgs) -> Result<i32, CliError> {
    let project = ctx.project(None)?;
    // As the user named it (relative to the working directory), which is how it is shown.
    let plan = args.plan.clone();
    if let Some(plan) = &plan {
        // A broken plan is an error up front, not a blank panel.
        codex_remote_core::TaskPlan::load(plan)?;
    }
    let watcher = Watcher::new(project.runs());
    if std::io::stdout().is_terminal() && !ctx.json {
        tui::run(ctx, project, plan, watcher, args.interval).await
    } else {
        plain(ctx, plan.as_deref(), watcher, args.interval).await
    }
}

/// Without a terminal: one line per run, then a line each time a run changes, until no run is
/// active (or at once with --json, which prints the records' views once).
async fn plain(
    ctx: &Context,
    plan: Option<&Path>,
    mut watcher: Watcher,
    interval: std::time::Duration,
) -> Result<i32, CliError> {
    let mut shown = std::collections::HashMap::<String, String>::new();
    // Asks the hosts of running runs about their agents, as `status` does: a detached run
    // nobody follows records nothing here. Without a config, the local record alone is shown.
    let engine = ctx.config().ok().map(|c| ctx.engine(c));
    let result = loop {
        let mut views = watcher.refresh();
        if let Some(engine) = &engine {
            let answers = probe_agents(engine, probe_ids(&views)).await;
            if !answers.is_empty() {
                for (id, agent) in answers {
                    watcher.note_agent(&id, agent);
                }
                views = watcher.refresh();
            }
        }
        if ctx.json {
            let runs: Vec<serde_json::Value> = views
                .iter()
                .map(|v| {
                    serde_json::json!({
                        "run_id": v.record.id, "task_id": v.record.task_id, "host": v.record.host,
                        "phase": v.record.phase, "elapsed_secs": v.elapsed.as_secs(),
                        "tokens": v.tokens, "files_changed": v.files_changed, "events": v.events,
                        "state": v.state, "last_activity": v.last_activity,
                    })
                })
                .collect();
            let _ = crate::output::print_json(&serde_json::json!({ "runs": runs }));
            break Ok(exit::OK);
        }
        let mut text = String::new();
        if shown.is_empty() && views.is_empty() {
            text.push_str("no runs recorded in this project\n");
        }
        if let Some(plan) = plan {
            if shown.is_empty() {
                for line in plan_lines(plan) {
                    text.push_str(&line);
                    text.push('\n');
                }
            }
        }
        let now = SystemTime::now();
        // Oldest first, as a log reads.
        for view in views.iter().rev() {
            // Elapsed time and activity ages change every second; a line is printed again when
            // what the run did changes.
            let key = format!(
                "{:?}{}{}{}{}",
                view.record.phase, view.state, view.tokens, view.files_changed, view.events
            );
            if shown.get(&view.record.id) != Some(&key) {
                text.push_str(&plain_line(view, now));
                text.push('\n');
                shown.insert(view.record.id.clone(), key);
            }
        }
        shown.entry(String::new()).or_default();
        if !text.is_empty() {
            if let Err(e) = output::print_text(&text) {
                break Err(e);
            }
        }
        // A run whose agent ended on its host with nobody following changes no more here.
        if !views.iter().any(|v| v.is_active() && !v.ended_unfollowed()) {
            break Ok(exit::OK);
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = tokio::signal::ctrl_c() => break Ok(exit::OK),
        }
    };
    if let Some(engine) = engine {
        engine.close().await;
    }
    result
}

/// Asks the host of each run named about its agent (as `status` does, which also records a
/// park at a usage limit). A host that cannot be reached gives no answer: the local record's
/// words stay.
pub async fn probe_agents(
    engine: &codex_remote_core::Engine,
    ids: Vec<String>,
) -> Vec<(String, codex_remote_core::executor::AgentState)> {
    let mut answers = Vec::new();
    for id in ids {
        if let Ok(codex_remote_core::RunStatus {
            agent: Some(agent), ..
        }) = engine.status(&id).await
        {
            answers.push((id, agent));
        }
    }
    answers
}

/// The runs whose hosts are worth asking about their agents.
pub fn probe_ids(views: &[model::RunView]) -> Vec<String> {
    views
        .iter()
        .filter(|v| v.wants_probe())
        .map(|v| v.record.id.clone())
        .collect()
}

/// The plan's codex-remote entries, one line each.
pub fn plan_lines(path: &Path) -> Vec<String> {
    let Ok(plan) = codex_remote_core::TaskPlan::load(path) else {
        return vec![format!("plan {}: unreadable", path.display())];
    };
    let tasks: Vec<_> = plan
        .tasks()
        .into_iter()
        .filter(|t| t["executor"] == "codex-remote")
        .collect();
    let count = |s: &str| tasks.iter().filter(|t| t["status"] == s).count();
    let mut lines = vec![format!(
        "plan {}: {} pending, {} running, {} completed, {} failed",
        path.display(),
        count("pending"),
        count("running"),
        count("completed"),
        count("failed")
    )];
    for t in &tasks {
        let field = |k: &str| t.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
        let run = field("run_id");
        lines.push(
            format!(
                "  {:<20} {:<10} {}",
                field("task_id"),
                field("status"),
                if run.is_empty() { "-".into() } else { run }
            )
            .trim_end()
            .to_string(),
        );
    }
    lines
}

/// The patch of a run, retrieved from the host first when it is not in the record yet.
async fn diff_text(ctx: &Context, _project: &Project, id: &str) -> Result<String, CliError> {
    let engine = ctx.engine(ctx.config()?);
    let diff = engine.diff(id).await;
    engine.close().await;
    let diff = diff?;
    if diff.patch.is_empty() {
        return Ok("(the run changed nothing)".into());
    }
    Ok(String::from_utf8_lossy(&diff.patch).into_owned())
}

/// Applies a finished run's result, as `pull RUN --apply --keep` would, and ticks the run's
/// checklist item (its task's `checkpoint`) as `run` would have.
async fn apply(ctx: &Context, project: &Project, id: &str) -> Result<String, CliError> {
    let record = project.runs().load(id)?;
    if record.applied_at.is_some() {
        return Ok(format!("run {id} was already applied"));
    }
    let engine = ctx.engine(ctx.config()?);
    let options = codex_remote_core::ApplyOptions {
        keep: true,
        ..Default::default()
    };
    let applied = engine.apply(id, &options).await;
    engine.close().await;
    let applied = applied?;
    let mut said = format!("applied run {id} to {}", project.root.display());
    let item = record.finish.and_then(|f| f.checkpoint);
    if let (Some(outcome), Some(spec)) = (applied.checkpoint, item) {
        let (codex_remote_core::CheckpointOutcome::Marked { line }
        | codex_remote_core::CheckpointOutcome::AlreadyDone { line }) = outcome;
        said.push_str(&format!(
            "; ticked `{}` in {}:{line}",
            spec.item.trim(),
            spec.file
        ));
    }
    Ok(said)
}

/// Cancels a run's agent, as `cancel RUN` would.
async fn cancel(ctx: &Context, _project: &Project, id: &str) -> Result<String, CliError> {
    let engine = ctx.engine(ctx.config()?);
    let cancelled = engine.cancel(id).await;
    engine.close().await;
    cancelled?;
    Ok(format!("cancelled run {id}"))
}
