//! `codex-remote run TASK [--host H] [--model M] [--no-apply] ...`: the whole pipeline.

use codex_remote_core::PlanOverrides;
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
    let engine = ctx.engine(config).with_push_confirmed(args.confirm_push);
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
    options.allow_held_back = args.allow_held_back;
    options.keep = args.keep;
    options.timeout = args.timeout;
    if let Some(stall) = args.stall_timeout {
        options.stall_timeout = (!stall.is_zero()).then_some(stall);
    }
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
    ctx.check_push(&engine, true)?;
    if let Some(retries) = args.retries {
        options.retries = retries;
    }
    args.long_run.apply(&mut options);
    if args.detach {
        let record = engine.start_detached(&plan, options).await;
        engine.close().await;
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                return Err(super::codex_cache::hint_local_codex(e, &plan.host)
                    .await
                    .into())
            }
        };
        if ctx.json {
            output::print_json_line(&progress::json_line(&Event::from(EventKind::Detached {
                run_id: record.id.clone(),
                host: record.host.clone(),
            })))?;
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
            let run_id = handle.id().to_string();
            let canceller = handle.canceller();
            let wait = handle.wait();
            tokio::pin!(wait);
            tokio::select! {
                result = &mut wait => result.map_err(|e| (e, Some(run_id))),
                _ = tokio::signal::ctrl_c() => {
                    eprintln!("{}", super::interrupt::cancelling(&run_id));
                    canceller.cancel();
                    let result = wait.await;
                    if let Err(codex_remote_core::Error::Cancelled { .. }) = &result {
                        let _ = display.await;
                        engine.close().await;
                        eprintln!("cancelled run {run_id}");
                        return Ok(exit::INTERRUPTED);
                    }
                    result.map_err(|e| (e, Some(run_id)))
                }
            }
        }
        // Not started: a missing codex on this machine may be the demo's, on PATH.
        Err(e) => Err((
            super::codex_cache::hint_local_codex(e, &plan.host).await,
            None,
        )),
    };
    let _ = display.await;
    engine.close().await;
    let result =
        result.map_err(|(e, run_id)| super::hints::name_run(e.into(), run_id.as_deref()))?;
    print_summary(ctx, &result.summary, Some(&plan))?;
    Ok(exit::OK)
}

/// Prints the final summary (a JSON line with --json).
pub fn print_summary(
    ctx: &Context,
    summary: &RunSummary,
    plan: Option<&codex_remote_core::RunPlan>,
) -> Result<(), CliError> {
    if ctx.json {
        let event = Event::from(EventKind::RunSummary(summary.clone()));
        output::print_text(&format!("{}\n", progress::json_line(&event)))?;
    } else if ctx.quiet {
        // Quiet still says which run it was, for scripts: `id=$(codex-remote run -q ...)`.
        output::print_text(&format!("{}\n", summary.run_id))?;
    } else {
        let checkpoint = ctx
            .project(None)?
            .runs()
            .load(&summary.run_id)
            .ok()
            .and_then(|r| r.finish)
            .and_then(|f| f.checkpoint);
        output::print_text(&render_summary(plan, summary, checkpoint.as_ref()))?;
    }
    Ok(())
}

fn render_summary(
    plan: Option<&codex_remote_core::RunPlan>,
    summary: &RunSummary,
    checkpoint: Option<&codex_remote_core::task::Checkpoint>,
) -> String {
    let state = if summary.applied {
        "applied".to_string()
    } else if summary.files.is_empty() && !summary.warnings.is_empty() {
        "no changes; see the warnings below".to_string()
    } else if summary.files.is_empty() {
        "no changes".to_string()
    } else {
        format!(
            "not applied; review with `codex-remote diff {0}`, apply with `codex-remote pull {0} --apply`",
            summary.run_id
        )
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
    if let Some(outcome) = &summary.checkpoint {
        use codex_remote_core::CheckpointOutcome;
        let (file, item) = checkpoint
            .map(|c| (c.file.as_str(), c.item.trim()))
            .unwrap_or(("the spec", ""));
        out.push_str(&match outcome {
            CheckpointOutcome::Marked { line } => {
                format!("spec     ticked `{item}` in {file}:{line}\n")
            }
            CheckpointOutcome::AlreadyDone { line } => {
                format!("spec     `{item}` was already ticked in {file}:{line}\n")
            }
        });
    }
    if let Some(message) = &summary.last_message {
        out.push_str(&format!("message  {}\n", message.trim()));
    }
    for warning in &summary.warnings {
        out.push_str(&format!("warning  {}\n", warning.message));
        for path in warning.paths.iter().take(10) {
            out.push_str(&format!("         - {path}\n"));
        }
        if warning.paths.len() > 10 {
            out.push_str(&format!("         ({} more)\n", warning.paths.len() - 10));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use codex_remote_core::RunWarning;

    #[test]
    fn the_text_summary_shows_each_warning_and_its_files() {
        let claimed: Vec<String> = (0..12).map(|i| format!("/w/t/f{i}.txt")).collect();
        let summary = RunSummary {
            run_id: "r1".into(),
            task_id: "t".into(),
            host: "h".into(),
            model: "m".into(),
            usage: Default::default(),
            thread_id: None,
            resumes: 0,
            last_message: Some("Created the files".into()),
            files: Vec::new(),
            applied: false,
            patch: "p".into(),
            attempts: 1,
            checkpoint: None,
            warnings: vec![
                RunWarning::changed_outside_tree("~/ws/app", &["?? leak.txt".to_string()]),
                RunWarning::claimed_changes_missing(&claimed),
            ],
        };
        insta::assert_snapshot!(render_summary(None, &summary, None));
    }
}
