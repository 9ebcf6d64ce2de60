//! `attach`, `status`, `logs` and `cancel`: working with runs whose agent lives on the host.

use codex_remote_core::events::CodexEvent;
use codex_remote_core::EventKind;
use codex_remote_core::Phase;
use tokio::sync::mpsc;

use super::{progress, Context};
use crate::cli::{LogsArgs, RunRefArgs, StatusArgs};
use crate::error::CliError;
use crate::{exit, output};

/// The run id a reference (`last`, `last~N` or an id) names.
fn run_id(ctx: &Context, reference: &str) -> Result<String, CliError> {
    super::runref::resolve(&ctx.project(None)?.runs(), reference)
}

pub async fn attach(ctx: &Context, args: RunRefArgs) -> Result<i32, CliError> {
    let run = run_id(ctx, &args.run)?;
    let engine = ctx.engine(ctx.config()?);
    let mut handle = engine.attach(&run).await?;
    let host = handle.host().to_string();
    let display = tokio::spawn(progress::render(
        handle.events(),
        progress::Mode::for_context(ctx),
        ctx.verbose,
    ));
    // Ctrl-C detaches: the agent goes on, and `attach` resumes where this stopped.
    let result = tokio::select! {
        result = handle.wait() => Some(result),
        _ = tokio::signal::ctrl_c() => None,
    };
    let Some(result) = result else {
        engine.close().await;
        eprintln!("{}", super::interrupt::detached(&run, &host));
        return Ok(exit::INTERRUPTED);
    };
    let _ = display.await;
    engine.close().await;
    let result = result.map_err(|e| super::hints::name_run(e.into(), Some(&run)))?;
    super::run::print_summary(ctx, &result.summary, None)?;
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
    let run = run_id(ctx, &run)?;
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
        record.id, record.task_id, record.host, record.phase
    );
    text.push_str(&format!(
        "created   {}\nupdated   {}\n",
        record.created_at, record.updated_at
    ));
    if let (codex_remote_core::Phase::Waiting, Some(at)) = (record.phase, &record.resume_at) {
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
            super::watch::model::agent_words(agent, &record.id)
        ));
    }
    text.push_str(&format!("events    {} recorded\n", status.events_recorded));
    let events = ctx
        .project(None)?
        .runs()
        .run_dir(&record.id)
        .join("events.jsonl");
    let last_words = codex_remote_core::event_log_lines(&events, 0)
        .filter_map(|l| super::watch::model::describe(&CodexEvent::parse(&l)))
        .last();
    if let Some(last) = last_words {
        text.push_str(&format!("last      {last}\n"));
    }
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
    let run = run_id(ctx, &args.run)?;
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
    let project = ctx.project(None)?;
    let record = project.runs().load(&run)?;
    let result = if args.follow {
        // Ctrl-C detaches: the agent goes on.
        tokio::select! {
            result = engine.logs(&run, true, tx) => result,
            _ = tokio::signal::ctrl_c() => {
                engine.close().await;
                eprintln!("{}", super::interrupt::detached(&run, &record.host));
                return Ok(exit::INTERRUPTED);
            }
        }
    } else {
        let result = engine.logs(&run, false, tx.clone()).await;
        if result.is_ok() && record.phase == Phase::Running && record.attempt > 0 {
            // A detached run: what its agent wrote so far, though nobody recorded it yet.
            match super::snapshot::unrecorded_events(ctx, &project, &record).await {
                Ok(more) => {
                    for line in more.lines {
                        let codex = CodexEvent::parse(&line);
                        let _ = tx.send(EventKind::Codex { codex }.into()).await;
                    }
                    if more.cut {
                        let cut = EventKind::EventsCut {
                            read: more.read,
                            limit: codex_remote_core::UNRECORDED_LIMIT,
                        };
                        let _ = tx.send(cut.into()).await;
                    }
                }
                Err(e) if !ctx.json => {
                    eprintln!(
                        "codex-remote: showing the recorded events only: {}",
                        crate::output::safe(&e.to_string())
                    )
                }
                Err(_) => {}
            }
        }
        drop(tx);
        result
    };
    let _ = display.await;
    engine.close().await;
    result?;
    Ok(exit::OK)
}

pub async fn cancel(ctx: &Context, args: RunRefArgs) -> Result<i32, CliError> {
    let run = run_id(ctx, &args.run)?;
    let engine = ctx.engine(ctx.config()?);
    let record = engine.cancel(&run).await;
    engine.close().await;
    let record = record?;
    if ctx.json {
        output::print_json(&serde_json::json!({ "run_id": record.id, "phase": record.phase }))?;
    } else if !ctx.quiet {
        output::print_text(&format!("cancelled run {}\n", record.id))?;
    }
    Ok(exit::OK)
}
