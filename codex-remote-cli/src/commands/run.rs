//! `codex-remote run TASK [--host H] [--model M] [--no-apply] ...`: the whole pipeline.

use codex_remote_core::plan::PlanOverrides;
use codex_remote_core::{Event, EventKind, RunSummary};

use super::{load_task, progress, Context};
use crate::cli::RunArgs;
use crate::error::CliError;
use crate::{exit, output};

pub async fn run(ctx: &Context, args: RunArgs) -> Result<i32, CliError> {
    // The task first: a broken task file is reported before a broken config.
    let task = match (&args.plan, &args.task_id) {
        (Some(_), Some(_)) => None,
        _ => Some(load_task(&args.task)?),
    };
    let config = ctx.config()?;
    let engine = ctx.engine(config);
    let overrides = PlanOverrides {
        host: args.host.as_deref(),
        model: args.model.as_deref(),
    };
    let plan = match (task, &args.plan, &args.task_id) {
        (Some(task), _, _) => engine.plan(task, &overrides)?,
        (None, Some(path), Some(id)) => engine.plan_entry(path, id, &overrides)?,
        (None, _, _) => unreachable!("a task or a plan entry"),
    };
    let mut options = engine.run_options();
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
    if let Some(retries) = args.retries {
        options.retries = retries;
    }
    args.long_run.apply(&mut options);
    if args.detach {
        let record = engine.start_detached(&plan, options).await;
        engine.close().await;
        let record = record?;
        if ctx.json {
            println!(
                "{}",
                progress::json_line(&Event::from(EventKind::Detached {
                    run_id: record.id.clone(),
                    host: record.host.clone(),
                }))
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
        return Ok(exit::OK);
    }
    let mut handle = engine.start(&plan, options).await;
    let display = tokio::spawn(progress::render(
        handle.as_mut().ok().and_then(|h| h.events()),
        progress::Mode::for_context(ctx),
        ctx.verbose,
    ));
    let result = match handle {
        Ok(handle) => {
            // Ctrl-C ends the agent too: nothing keeps running unobserved.
            let canceller = handle.canceller();
            let wait = handle.wait();
            tokio::pin!(wait);
            tokio::select! {
                result = &mut wait => result,
                _ = tokio::signal::ctrl_c() => {
                    canceller.cancel();
                    wait.await
                }
            }
        }
        Err(e) => Err(e),
    };
    let _ = display.await;
    engine.close().await;
    print_summary(ctx, &result?.summary, Some(&plan))?;
    Ok(exit::OK)
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
        out.push_str(&output::render_stat(&summary.files));
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
