//! `codex-remote run TASK [--host H] [--model M] [--no-apply] ...`: the whole pipeline.

use codex_remote_core::executor::CodexExecutor;
use codex_remote_core::plan::{plan, PlanOverrides};
use codex_remote_core::run::{run as run_pipeline, start, RunOptions, RunSummary};
use tokio::sync::mpsc;

use super::{load_task, progress, Context};
use crate::cli::RunArgs;
use crate::error::CliError;
use crate::{exit, output};

pub async fn run(ctx: &Context, args: RunArgs) -> Result<i32, CliError> {
    let from_plan = match (&args.plan, &args.task_id) {
        (Some(path), Some(id)) => Some(codex_remote_core::taskplan::task_spec(path, id)?),
        _ => None,
    };
    let (task, raw_instruction) = match from_plan {
        Some((task, raw)) => (task, raw),
        None => (load_task(&args.task)?, None),
    };
    let config = ctx.config()?;
    let project = ctx.project(task.project.as_deref());
    let overrides = PlanOverrides {
        host: args.host.as_deref(),
        model: args.model.as_deref(),
    };
    let mut plan = plan(
        task,
        &config,
        &config.model_selector(),
        &overrides,
        &project.root,
    )?;
    if let Some(raw) = raw_instruction {
        // The orchestrator wrote the instruction: it is sent as written.
        plan.instruction.text = raw;
    }
    let transport = ctx.transport(plan.host.clone())?;
    let mut options = RunOptions::from_config(&config);
    options.apply = !args.no_apply;
    options.allow_restricted = args.allow_restricted;
    options.keep = args.keep;
    options.timeout = args.timeout;
    options.sandbox = args.sandbox.clone();
    options.extra_args = args.codex_args.clone();
    options.checkpoint = match (&args.checkpoint, &args.item) {
        (Some(spec), Some(item)) => Some(codex_remote_core::task::Checkpoint {
            file: ctx.cwd.join(spec).display().to_string(),
            item: item.clone(),
        }),
        _ => plan.task.checkpoint.clone(),
    };
    options.task_plan = args.plan.clone().zip(args.task_id.clone());
    if let Some((path, id)) = &options.task_plan {
        codex_remote_core::taskplan::mark_running(path, id, None)?;
    }
    if let Some(retries) = args.retries {
        options.retries = retries;
    }
    args.long_run.apply(&mut options);
    let (tx, rx) = mpsc::channel(256);
    let display = tokio::spawn(progress::render(
        rx,
        progress::Mode::for_context(ctx),
        ctx.verbose,
    ));
    let executor = CodexExecutor;
    let result = if args.detach {
        start(
            &plan,
            &config,
            &project,
            transport.clone(),
            &executor,
            &options,
            &tx,
        )
        .await
        .map(|record| Outcome::Detached(Box::new(record)))
    } else {
        let interrupted = tokio::signal::ctrl_c();
        tokio::select! {
            result = run_pipeline(&plan, &config, &project, transport.clone(), &executor, &options, tx.clone()) => result.map(|s| Outcome::Finished(Box::new(s))),
            _ = interrupted => Ok(Outcome::Interrupted),
        }
    };
    drop(tx);
    let _ = display.await;
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(e) => {
            let _ = transport.close().await;
            let run_id = project.runs().list().ok().and_then(|runs| {
                runs.into_iter()
                    .rev()
                    .find(|r| r.task_id == plan.task.id)
                    .map(|r| r.id)
            });
            settle_plan(
                options.task_plan.as_ref(),
                run_id.as_deref(),
                Err(&e.to_string()),
            )?;
            return Err(e.into());
        }
    };
    let code = match outcome {
        Outcome::Detached(record) => {
            if let Some((path, id)) = &options.task_plan {
                codex_remote_core::taskplan::set_run_id(path, id, &record.id)?;
            }
            if ctx.json {
                println!(
                    "{}",
                    serde_json::json!({ "event": "detached", "run_id": record.id, "host": record.host })
                );
            } else {
                output::print_text(&format!("{}\n", record.id))?;
                if !ctx.quiet {
                    eprintln!(
                        "run {} is running detached on {}; follow it with `codex-remote attach {}`",
                        record.id, record.host, record.id
                    );
                }
            }
            exit::OK
        }
        Outcome::Interrupted => {
            // Ctrl-C ends the agent too: nothing keeps running unobserved.
            let store = project.runs();
            let running = store.list()?.into_iter().rev().find(|r| {
                r.task_id == plan.task.id && r.phase == codex_remote_core::runs::Phase::Running
            });
            settle_plan(
                options.task_plan.as_ref(),
                running.as_ref().map(|r| r.id.as_str()),
                Err("interrupted"),
            )?;
            if let Some(mut record) = running {
                codex_remote_core::run::cancel(&project, &mut record, transport.clone(), &executor)
                    .await?;
                eprintln!("interrupted: cancelled run {}", record.id);
            }
            exit::INTERRUPTED
        }
        Outcome::Finished(summary) => {
            settle_plan(options.task_plan.as_ref(), Some(&summary.run_id), Ok(()))?;
            print_summary(ctx, &summary, Some(&plan))?;
            exit::OK
        }
    };
    let _ = transport.close().await;
    Ok(code)
}

enum Outcome {
    Detached(Box<codex_remote_core::runs::RunRecord>),
    Finished(Box<RunSummary>),
    Interrupted,
}

/// Prints the final summary (a JSON line with --json).
pub fn print_summary(
    ctx: &Context,
    summary: &RunSummary,
    plan: Option<&codex_remote_core::plan::RunPlan>,
) -> Result<(), CliError> {
    if ctx.json {
        let mut value = serde_json::to_value(summary).expect("summaries serialise");
        value["event"] = "summary".into();
        println!("{value}");
    } else if !ctx.quiet {
        output::print_text(&render_summary(plan, summary))?;
    }
    Ok(())
}

fn render_summary(plan: Option<&codex_remote_core::plan::RunPlan>, summary: &RunSummary) -> String {
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
        "model    {}{}\n",
        summary.model,
        plan.map(|p| format!(" ({})", p.model_reason()))
            .unwrap_or_default()
    ));
    out.push_str(&format!("tokens   {}\n", render_usage(&summary.usage)));
    if summary.resumes > 0 {
        out.push_str(&format!(
            "resumed  {} time(s), thread {}\n",
            summary.resumes,
            summary.thread_id.as_deref().unwrap_or("?")
        ));
    }
    out.push_str(&format!("files    {} changed\n", summary.files.len()));
    if !summary.files.is_empty() {
        out.push_str(&output::render_stat(&patch));
    }
    if let Some(message) = &summary.last_message {
        out.push_str(&format!("message  {}\n", message.trim()));
    }
    out
}

/// `1200 in (800 cached), 300 out (120 reasoning)`.
pub fn render_usage(usage: &codex_remote_core::events::Usage) -> String {
    format!(
        "{} in ({} cached), {} out ({} reasoning)",
        usage.input_tokens,
        usage.cached_input_tokens,
        usage.output_tokens,
        usage.reasoning_output_tokens
    )
}

/// Moves the plan entry to `completed` or `failed`, with the run id, time and reason.
pub fn settle_plan(
    task_plan: Option<&(std::path::PathBuf, String)>,
    run_id: Option<&str>,
    result: Result<(), &str>,
) -> Result<(), CliError> {
    if let Some((path, id)) = task_plan {
        codex_remote_core::taskplan::settle(path, id, run_id, result)?;
    }
    Ok(())
}
