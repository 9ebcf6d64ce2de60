//! `codex-remote run TASK [--host H] [--model M] [--no-apply] ...`: the whole pipeline.

use std::io::IsTerminal;
use std::time::Instant;

use codex_remote_core::events::{CodexEvent, ItemKind};
use codex_remote_core::executor::CodexExecutor;
use codex_remote_core::plan::{plan, PlanOverrides};
use codex_remote_core::run::{run as run_pipeline, RunEvent, RunOptions, RunSummary};
use tokio::sync::mpsc;

use super::{load_task, Context};
use crate::cli::RunArgs;
use crate::error::CliError;
use crate::{exit, output};

pub async fn run(ctx: &Context, args: RunArgs) -> Result<i32, CliError> {
    let task = load_task(&args.task)?;
    let config = ctx.config()?;
    let project = ctx.project(task.project.as_deref());
    let overrides = PlanOverrides {
        host: args.host.as_deref(),
        model: args.model.as_deref(),
    };
    let plan = plan(
        task,
        &config,
        &config.model_selector(),
        &overrides,
        &project.root,
    )?;
    let transport = ctx.transport(plan.host.clone())?;
    let mut options = RunOptions::from_config(&config);
    options.apply = !args.no_apply;
    options.allow_restricted = args.allow_restricted;
    options.keep = args.keep;
    options.timeout = args.timeout;
    options.sandbox = args.sandbox.clone();
    options.extra_args = args.codex_args.clone();
    if let Some(retries) = args.retries {
        options.retries = retries;
    }
    let (tx, rx) = mpsc::channel(256);
    let mode = if ctx.json {
        Mode::Json
    } else if ctx.quiet {
        Mode::Quiet
    } else if std::io::stderr().is_terminal() {
        Mode::Tty
    } else {
        Mode::Plain
    };
    let display = tokio::spawn(render(rx, mode, ctx.verbose));
    let result = run_pipeline(
        &plan,
        &config,
        &project,
        transport.clone(),
        &CodexExecutor,
        &options,
        tx,
    )
    .await;
    let _ = display.await;
    let _ = transport.close().await;
    let summary = result?;
    if ctx.json {
        let mut value = serde_json::to_value(&summary).expect("summaries serialise");
        value["event"] = "summary".into();
        println!("{value}");
    } else if !ctx.quiet {
        output::print_text(&render_summary(&plan, &summary))?;
    }
    Ok(exit::OK)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Json,
    Tty,
    Plain,
    Quiet,
}

/// Shows the run as it goes: a live status line on a terminal, plain lines otherwise, our typed
/// events as JSON Lines with --json.
async fn render(mut rx: mpsc::Receiver<RunEvent>, mode: Mode, verbose: u8) {
    let started = Instant::now();
    let spinner = (mode == Mode::Tty).then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                .expect("valid template"),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    });
    let mut tokens = 0u64;
    let mut files = std::collections::BTreeSet::new();
    let mut current = String::new();
    while let Some(event) = rx.recv().await {
        if mode == Mode::Json {
            println!("{}", event_json(&event));
            continue;
        }
        let line: Option<String> = match &event {
            RunEvent::Phase(phase) => {
                current = format!("{phase:?}").to_lowercase();
                (verbose > 0).then(|| format!("phase: {current}"))
            }
            RunEvent::Pushed(report) => Some(format!(
                "pushed {} files ({} changed) to {}",
                report.files, report.files_transferred, report.remote_dir
            )),
            RunEvent::Started { run_id, dir } => Some(format!("run {run_id} started in {dir}")),
            RunEvent::Retrying {
                attempt,
                of,
                delay,
                reason,
            } => Some(format!(
                "rate limited ({reason}); retry {attempt}/{of} in {:.1}s",
                delay.as_secs_f64()
            )),
            RunEvent::Codex(exec) => match &exec.event {
                CodexEvent::ItemStarted { item } => match &item.kind {
                    ItemKind::CommandExecution { command, .. } => {
                        current = format!("$ {}", command.lines().next().unwrap_or_default());
                        Some(current.clone())
                    }
                    _ => None,
                },
                CodexEvent::ItemCompleted { item } => match &item.kind {
                    ItemKind::CommandExecution {
                        exit_code,
                        aggregated_output,
                        ..
                    } => {
                        let mut text = format!(
                            "  exit {}",
                            exit_code.map_or("?".to_string(), |c| c.to_string())
                        );
                        if verbose > 0 && !aggregated_output.is_empty() {
                            text.push('\n');
                            text.push_str(aggregated_output.trim_end());
                        }
                        Some(text)
                    }
                    ItemKind::FileChange { changes, .. } => {
                        files.extend(changes.iter().map(|c| c.path.clone()));
                        Some(
                            changes
                                .iter()
                                .map(|c| format!("  {} {}", c.kind, c.path))
                                .collect::<Vec<_>>()
                                .join("\n"),
                        )
                    }
                    ItemKind::AgentMessage { text } => Some(format!("agent: {}", text.trim())),
                    ItemKind::Reasoning { text } if verbose > 0 => {
                        Some(format!("thinking: {}", text.trim()))
                    }
                    ItemKind::Error { message } if verbose > 0 => Some(format!("codex: {message}")),
                    _ => None,
                },
                CodexEvent::TurnCompleted { usage } => {
                    tokens += usage.input_tokens + usage.output_tokens;
                    None
                }
                CodexEvent::TurnFailed { message } => Some(format!("turn failed: {message}")),
                CodexEvent::Error { message } if verbose > 0 => Some(format!("codex: {message}")),
                _ => None,
            },
        };
        match (&spinner, line) {
            (Some(bar), line) => {
                if let Some(line) = line {
                    bar.println(line);
                }
                bar.set_message(format!(
                    "{current} | {tokens} tokens | {} files changed",
                    files.len()
                ));
            }
            (None, Some(line)) if mode == Mode::Plain => eprintln!("{line}"),
            _ => {}
        }
    }
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    let _ = started;
}

/// Our typed events as one JSON object per line (see docs/cli.md).
fn event_json(event: &RunEvent) -> serde_json::Value {
    match event {
        RunEvent::Phase(phase) => serde_json::json!({ "event": "phase", "phase": phase }),
        RunEvent::Pushed(report) => serde_json::json!({ "event": "pushed", "push": report }),
        RunEvent::Started { run_id, dir } => {
            serde_json::json!({ "event": "started", "run_id": run_id, "remote_dir": dir })
        }
        RunEvent::Retrying {
            attempt,
            of,
            delay,
            reason,
        } => {
            serde_json::json!({ "event": "retrying", "attempt": attempt, "of": of, "delay_secs": delay.as_secs_f64(), "reason": reason })
        }
        RunEvent::Codex(exec) => serde_json::json!({ "event": "codex", "codex": exec.event }),
    }
}

fn render_summary(plan: &codex_remote_core::plan::RunPlan, summary: &RunSummary) -> String {
    let patch = codex_remote_core::patch::ParsedPatch {
        files: summary.files.clone(),
    };
    let state = if summary.applied {
        "applied"
    } else if summary.files.is_empty() {
        "no changes"
    } else {
        "not applied; apply with `codex-remote pull RUN --apply`"
    };
    let mut out = format!("run      {} ({state})\n", summary.run_id);
    out.push_str(&format!(
        "model    {} ({})\n",
        summary.model,
        plan.model_reason()
    ));
    out.push_str(&format!(
        "tokens   {} in, {} out\n",
        summary.usage.input_tokens, summary.usage.output_tokens
    ));
    out.push_str(&format!("files    {} changed\n", summary.files.len()));
    if !summary.files.is_empty() {
        out.push_str(&output::render_stat(&patch));
    }
    if let Some(message) = &summary.last_message {
        out.push_str(&format!("message  {}\n", message.trim()));
    }
    out
}
