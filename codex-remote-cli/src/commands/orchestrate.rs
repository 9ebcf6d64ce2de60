//! `codex-remote orchestrate task_plan.json [--hosts H1,H2] [--parallel N] [--fail-fast]`.

use codex_remote_core::events::{CodexEvent, ItemKind};
use codex_remote_core::OrchestrateOptions;
use codex_remote_core::{Event, EventKind};
use tokio::sync::mpsc;

use super::{progress, Context};
use crate::cli::OrchestrateArgs;
use crate::error::CliError;
use crate::{exit, output};

pub async fn run(ctx: &Context, args: OrchestrateArgs) -> Result<i32, CliError> {
    let config = ctx.config()?;
    let hosts = if args.hosts.is_empty() {
        vec![config.host(None)?.name]
    } else {
        args.hosts.clone()
    };
    let engine = ctx.engine(config).with_push_confirmed(args.confirm_push);
    ctx.check_push(&engine, true)?;
    let mut run = engine.run_options();
    run.allow_restricted = args.allow_restricted;
    run.allow_held_back = args.allow_held_back;
    run.keep = args.keep;
    if let Some(retries) = args.retries {
        run.retries = retries;
    }
    args.long_run.apply(&mut run);
    let options = OrchestrateOptions {
        parallel: args.parallel,
        fail_fast: args.fail_fast,
        run,
    };
    let (tx, rx) = mpsc::channel(1024);
    let mode = progress::Mode::for_context(ctx);
    let display = tokio::spawn(render(rx, mode));
    let result = tokio::select! {
        result = engine.orchestrate(&args.plan, &hosts, options, Some(tx)) => Some(result),
        _ = tokio::signal::ctrl_c() => None,
    };
    let resumed = display.await.unwrap_or_default();
    engine.close().await;
    let Some(result) = result else {
        eprintln!("{}", super::interrupt::orchestrate_detached(&args.plan));
        return Ok(exit::INTERRUPTED);
    };
    let summary = result?;
    if ctx.json {
        let event = Event::from(EventKind::OrchestrateSummary(summary.clone()));
        output::print_text(&format!("{}\n", progress::json_line(&event)))?;
    } else if !ctx.quiet {
        let mut text = format!("{} completed", summary.completed.len());
        if !summary.failed.is_empty() {
            text.push_str(&format!(", {} failed", summary.failed.len()));
        }
        if !summary.not_applied.is_empty() {
            text.push_str(&format!(", {} not applied", summary.not_applied.len()));
        }
        if !summary.skipped.is_empty() {
            text.push_str(&format!(", {} skipped", summary.skipped.len()));
        }
        text.push('\n');
        text.push_str(&format!(
            "tokens {}\n",
            super::run::render_usage(&summary.usage)
        ));
        for (task, run) in &resumed {
            text.push_str(&format!(
                "  {task}: resumed run {run} from an interrupted orchestration\n"
            ));
        }
        for (task, reason) in &summary.failed {
            text.push_str(&format!("  {task}: {reason}\n"));
        }
        let plan = codex_remote_core::TaskPlan::load(&args.plan).ok();
        for (task, reason) in &summary.not_applied {
            text.push_str(&format!("  {task}: {reason}\n"));
            let run = plan.as_ref().and_then(|p| {
                p.task(task)
                    .ok()?
                    .get("run_id")?
                    .as_str()
                    .map(str::to_string)
            });
            if let Some(run) = run {
                text.push_str(&format!(
                    "    review it with `codex-remote diff {run}`, apply it with `codex-remote pull {run} --apply`\n"
                ));
            }
        }
        output::print_text(&text)?;
    }
    Ok(if !summary.failed.is_empty() {
        exit::TASK_FAILED
    } else if !summary.not_applied.is_empty() {
        exit::NOT_APPLIED
    } else {
        exit::OK
    })
}

/// One line per task on a terminal (kept up to date), plain lines otherwise, JSON Lines with
/// --json (our run events, each with its `task_id`).
async fn render(mut rx: mpsc::Receiver<Event>, mode: progress::Mode) -> Vec<(String, String)> {
    let mut resumed = Vec::new();
    let multi = (mode == progress::Mode::Tty).then(indicatif::MultiProgress::new);
    let mut bars: std::collections::BTreeMap<String, indicatif::ProgressBar> = Default::default();
    let style = indicatif::ProgressStyle::with_template("{spinner} {prefix:20} {elapsed:>4} {msg}")
        .expect("valid template");
    while let Some(event) = rx.recv().await {
        if let EventKind::Resumed { run_id } = &event.kind {
            resumed.push((event.task_id.clone().unwrap_or_default(), run_id.clone()));
        }
        if mode == progress::Mode::Json {
            let _ = output::print_json_line(&progress::json_line(&event));
            continue;
        }
        let task_id = event.task_id.clone().unwrap_or_default();
        let finished = matches!(event.kind, EventKind::Finished { .. });
        let Some(line) = describe(&event.kind) else {
            continue;
        };
        let line = output::safe(&line).into_owned();
        match &multi {
            Some(multi) => {
                let bar = bars.entry(task_id.clone()).or_insert_with(|| {
                    let bar = multi.add(indicatif::ProgressBar::new_spinner());
                    bar.set_style(style.clone());
                    bar.set_prefix(task_id.clone());
                    bar.enable_steady_tick(std::time::Duration::from_millis(150));
                    bar
                });
                if finished {
                    bar.finish_with_message(line);
                } else {
                    bar.set_message(line);
                }
            }
            None if mode == progress::Mode::Plain => eprintln!("[{task_id}] {line}"),
            None => {}
        }
    }
    resumed
}

/// The one-line view of a task's event.
fn describe(event: &EventKind) -> Option<String> {
    match event {
        EventKind::Started { run_id, .. } => Some(format!("run {run_id} started")),
        EventKind::Resumed { run_id } => Some(format!("resumed run {run_id}")),
        EventKind::Finished { outcome, reason } => Some(match reason {
            Some(r) => format!("{outcome}: {r}"),
            None => outcome.to_string(),
        }),
        EventKind::Retrying {
            attempt,
            of,
            delay_secs,
            ..
        } => Some(format!(
            "rate limited; retry {attempt}/{of} in {delay_secs:.1}s"
        )),
        EventKind::Waiting { resume_at, .. } => {
            Some(format!("usage limit: parked until {resume_at}"))
        }
        EventKind::ThreadResumed { reason, .. } => Some(format!("resumed ({reason})")),
        EventKind::HostParked { host, until } => Some(format!(
            "host {host} reached its usage limit: no new task goes there until {until}"
        )),
        EventKind::AllParked { until } => Some(format!(
            "every host is at its usage limit; waiting, continues at {until}"
        )),
        EventKind::Moved { from, to } => {
            Some(format!("{from} is parked; moved to {to}, starting afresh"))
        }
        EventKind::Codex { codex } => match codex {
            CodexEvent::ItemStarted { item } => match &item.kind {
                ItemKind::CommandExecution { command, .. } => {
                    Some(format!("$ {}", command.lines().next().unwrap_or_default()))
                }
                _ => None,
            },
            CodexEvent::TurnFailed { message } => Some(format!("turn failed: {message}")),
            _ => None,
        },
        // A task's end is said once, by its `Finished` event (with the reason).
        EventKind::Phase { phase } if phase.is_finished() => None,
        EventKind::Phase { phase } => Some(phase.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codex_remote_core::Phase;

    /// A task's end comes as its run's last phase and as the task's end: said once.
    #[test]
    fn a_tasks_end_is_said_once() {
        let ended = [
            EventKind::Phase {
                phase: Phase::Running,
            },
            EventKind::Phase {
                phase: Phase::Completed,
            },
            EventKind::Finished {
                outcome: codex_remote_core::TaskOutcome::Completed,
                reason: None,
            },
        ];
        let lines: Vec<String> = ended.iter().filter_map(describe).collect();
        assert_eq!(lines, ["running", "completed"]);
    }
}
