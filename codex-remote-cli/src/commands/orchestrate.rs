//! `codex-remote orchestrate task_plan.json [--hosts H1,H2] [--parallel N] [--fail-fast]`.

use std::io::IsTerminal;
use std::sync::Arc;

use codex_remote_core::events::{CodexEvent, ItemKind};
use codex_remote_core::executor::CodexExecutor;
use codex_remote_core::orchestrate::{orchestrate, OrchestrateEvent, OrchestrateOptions};
use codex_remote_core::run::{RunEvent, RunOptions};
use tokio::sync::mpsc;

use super::{progress, Context};
use crate::cli::OrchestrateArgs;
use crate::error::CliError;
use crate::{exit, output};

pub async fn run(ctx: &Context, args: OrchestrateArgs) -> Result<i32, CliError> {
    let config = ctx.config()?;
    let project = ctx.project(None);
    let names: Vec<Option<String>> = if args.hosts.is_empty() {
        vec![None]
    } else {
        args.hosts.iter().cloned().map(Some).collect()
    };
    let mut hosts = Vec::new();
    for name in &names {
        hosts.push(ctx.transport(config.host(name.as_deref())?)?);
    }
    let mut run = RunOptions::from_config(&config);
    run.allow_restricted = args.allow_restricted;
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
        result = orchestrate(&args.plan, &config, &project, hosts.clone(), Arc::new(CodexExecutor), &options, tx) => Some(result),
        _ = tokio::signal::ctrl_c() => None,
    };
    let _ = display.await;
    for host in &hosts {
        let _ = host.close().await;
    }
    let Some(result) = result else {
        eprintln!("interrupted: runs in progress keep going on their hosts; run the same command again to pick up where this stopped");
        return Ok(exit::INTERRUPTED);
    };
    let summary = result?;
    if ctx.json {
        let mut value = serde_json::to_value(&summary).expect("serialisable");
        value["event"] = "summary".into();
        println!("{value}");
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
        for (task, reason) in summary.failed.iter().chain(&summary.not_applied) {
            text.push_str(&format!("  {task}: {reason}\n"));
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
async fn render(mut rx: mpsc::Receiver<OrchestrateEvent>, mode: progress::Mode) {
    let multi = (mode == progress::Mode::Tty).then(indicatif::MultiProgress::new);
    let mut bars: std::collections::BTreeMap<String, indicatif::ProgressBar> = Default::default();
    let style = indicatif::ProgressStyle::with_template("{spinner} {prefix:20} {elapsed:>4} {msg}")
        .expect("valid template");
    while let Some(event) = rx.recv().await {
        if mode == progress::Mode::Json {
            let value = match &event {
                OrchestrateEvent::Task { task_id, event } => {
                    let mut v = progress::event_json(event);
                    v["task_id"] = task_id.clone().into();
                    v
                }
                OrchestrateEvent::Resumed { task_id, run_id } => {
                    serde_json::json!({ "event": "resumed", "task_id": task_id, "run_id": run_id })
                }
                OrchestrateEvent::Finished {
                    task_id,
                    outcome,
                    reason,
                } => {
                    serde_json::json!({ "event": "finished", "task_id": task_id, "outcome": outcome, "reason": reason })
                }
                OrchestrateEvent::HostParked { host, until } => {
                    serde_json::json!({ "event": "host_parked", "host": host, "until": until })
                }
                OrchestrateEvent::AllParked { task_id, until } => {
                    serde_json::json!({ "event": "all_parked", "task_id": task_id, "until": until })
                }
                OrchestrateEvent::Moved { task_id, from, to } => {
                    serde_json::json!({ "event": "moved", "task_id": task_id, "from": from, "to": to })
                }
            };
            println!("{value}");
            continue;
        }
        let (task_id, line) = match &event {
            OrchestrateEvent::Task { task_id, event } => (task_id, describe(event)),
            OrchestrateEvent::Resumed { task_id, run_id } => {
                (task_id, Some(format!("resumed run {run_id}")))
            }
            OrchestrateEvent::Finished {
                task_id,
                outcome,
                reason,
            } => (
                task_id,
                Some(match reason {
                    Some(r) => format!("{outcome}: {r}"),
                    None => outcome.to_string(),
                }),
            ),
            OrchestrateEvent::HostParked { host, until } => {
                if mode == progress::Mode::Plain || multi.is_some() {
                    let line = format!(
                        "host {host} reached its usage limit: no new task goes there until {until}"
                    );
                    match &multi {
                        Some(multi) => {
                            let _ = multi.println(line);
                        }
                        None => eprintln!("{line}"),
                    }
                }
                continue;
            }
            OrchestrateEvent::AllParked { task_id, until } => (
                task_id,
                Some(format!(
                    "every host is at its usage limit; waiting, continues at {until}"
                )),
            ),
            OrchestrateEvent::Moved { task_id, from, to } => (
                task_id,
                Some(format!("{from} is parked; moved to {to}, starting afresh")),
            ),
        };
        let Some(line) = line else { continue };
        match &multi {
            Some(multi) => {
                let bar = bars.entry(task_id.clone()).or_insert_with(|| {
                    let bar = multi.add(indicatif::ProgressBar::new_spinner());
                    bar.set_style(style.clone());
                    bar.set_prefix(task_id.clone());
                    bar.enable_steady_tick(std::time::Duration::from_millis(150));
                    bar
                });
                if let OrchestrateEvent::Finished { .. } = event {
                    bar.finish_with_message(line);
                } else {
                    bar.set_message(line);
                }
            }
            None if mode == progress::Mode::Plain => eprintln!("[{task_id}] {line}"),
            None => {}
        }
    }
    let _ = std::io::stderr().is_terminal();
}

fn describe(event: &RunEvent) -> Option<String> {
    match event {
        RunEvent::Started { run_id, .. } => Some(format!("run {run_id} started")),
        RunEvent::Waiting { resume_at, .. } => {
            Some(format!("usage limit: parked until {resume_at}"))
        }
        RunEvent::Resumed { reason, .. } => Some(format!("resumed ({reason})")),
        RunEvent::Retrying {
            attempt, of, delay, ..
        } => Some(format!(
            "rate limited; retry {attempt}/{of} in {:.1}s",
            delay.as_secs_f64()
        )),
        RunEvent::Codex(exec) => match &exec.event {
            CodexEvent::ItemStarted { item } => match &item.kind {
                ItemKind::CommandExecution { command, .. } => {
                    Some(format!("$ {}", command.lines().next().unwrap_or_default()))
                }
                _ => None,
            },
            CodexEvent::TurnFailed { message } => Some(format!("turn failed: {message}")),
            _ => None,
        },
        RunEvent::Phase(phase) => Some(serde_json::to_value(phase).ok()?.as_str()?.to_string()),
        _ => None,
    }
}
