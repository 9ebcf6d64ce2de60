//! `attach`, `status`, `logs` and `cancel`: working with runs whose agent lives on the host.

use tokio::sync::mpsc;

use super::{progress, Context};
use crate::cli::{LogsArgs, RunRefArgs, StatusArgs};
use crate::error::CliError;
use crate::{exit, output};

pub async fn attach(ctx: &Context, args: RunRefArgs) -> Result<i32, CliError> {
    let engine = ctx.engine(ctx.config()?);
    let mut handle = engine.attach(&args.run).await?;
    let display = tokio::spawn(progress::render(
        handle.events(),
        progress::Mode::for_context(ctx),
        ctx.verbose,
    ));
    let result = handle.wait().await;
    let _ = display.await;
    engine.close().await;
    super::run::print_summary(ctx, &result?.summary, None)?;
    Ok(exit::OK)
}

pub async fn status(ctx: &Context, args: StatusArgs) -> Result<i32, CliError> {
    let Some(run) = args.run else {
        return super::runs::run(
            ctx,
            crate::cli::RunsArgs {
                prune: false,
                older_than: 7,
            },
        )
        .await;
    };
    let engine = ctx.engine(ctx.config()?);
    let status = engine.status(&run).await;
    engine.close().await;
    let status = status?;
    if ctx.json {
        output::print_json(&status)?;
        return Ok(exit::OK);
    }
    let record = &status.run;
    let mut text = format!(
        "run       {}\ntask      {}\nhost      {}\nphase     {}\n",
        record.id,
        record.task_id,
        record.host,
        record.phase.to_string()
    );
    text.push_str(&format!(
        "created   {}\nupdated   {}\n",
        record.created_at, record.updated_at
    ));
    if let (codex_remote_core::runs::Phase::Waiting, Some(at)) = (record.phase, &record.resume_at) {
        text.push_str(&format!(
            "resumes   {at} (parked at a usage limit; the host resumes thread {} then)\n",
            record.thread_id.as_deref().unwrap_or("?")
        ));
    }
    if record.attempt > 0 {
        text.push_str(&format!("attempt   {}\n", record.attempt));
    }
    if let Some(thread) = &record.thread_id {
        text.push_str(&format!("thread    {thread}\n"));
    }
    text.push_str(&format!(
        "tokens    {}\n",
        super::run::render_usage(&record.usage)
    ));
    if let Some(agent) = &status.agent {
        text.push_str(&format!(
            "agent     {}\n",
            serde_json::to_value(agent)
                .map(|v| v.to_string())
                .unwrap_or_default()
        ));
    }
    text.push_str(&format!("events    {} recorded\n", status.events_recorded));
    if let Some(applied) = &record.applied_at {
        text.push_str(&format!("applied   {applied}\n"));
    }
    if let Some(error) = &record.error {
        text.push_str(&format!("error     {error}\n"));
    }
    output::print_text(&text)?;
    Ok(exit::OK)
}

pub async fn logs(ctx: &Context, args: LogsArgs) -> Result<i32, CliError> {
    // Following needs the host; replaying the record needs no config at all.
    let config = if args.follow {
        ctx.config()?
    } else {
        ctx.config()
            .unwrap_or_else(|_| codex_remote_core::Config::builtin())
    };
    let engine = ctx.engine(config);
    let (tx, rx) = mpsc::channel(256);
    let mode = if ctx.json {
        progress::Mode::Json
    } else {
        progress::Mode::Stdout
    };
    let display = tokio::spawn(progress::render(Some(rx), mode, ctx.verbose.max(1)));
    let result = engine.logs(&args.run, args.follow, tx).await;
    let _ = display.await;
    engine.close().await;
    result?;
    Ok(exit::OK)
}

pub async fn cancel(ctx: &Context, args: RunRefArgs) -> Result<i32, CliError> {
    let engine = ctx.engine(ctx.config()?);
    let record = engine.cancel(&args.run).await;
    engine.close().await;
    let record = record?;
    if ctx.json {
        output::print_json(&serde_json::json!({ "run_id": record.id, "phase": record.phase }))?;
    } else if !ctx.quiet {
        output::print_text(&format!("cancelled run {}\n", record.id))?;
    }
    Ok(exit::OK)
}
