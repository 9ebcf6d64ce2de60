//! `attach`, `status`, `logs` and `cancel`: working with runs whose agent lives on the host.

use codex_remote_core::events::CodexEvent;
use codex_remote_core::executor::{AgentState, CodexExecutor, Executor};
use codex_remote_core::layout::RemoteLayout;
use codex_remote_core::run::{cancel as cancel_run, follow_and_finish, follow_attempt, RunEvent};
use codex_remote_core::runs::{rfc3339_of, Phase, RunRecord};
use tokio::sync::mpsc;

use super::{progress, Context};
use crate::cli::{LogsArgs, RunRefArgs, StatusArgs};
use crate::error::CliError;
use crate::{exit, output};

fn load(
    ctx: &Context,
    run: &str,
) -> Result<(codex_remote_core::pipeline::Project, RunRecord), CliError> {
    let project = ctx.project(None);
    let record = project.runs().load(run)?;
    Ok((project, record))
}

pub async fn attach(ctx: &Context, args: RunRefArgs) -> Result<i32, CliError> {
    let config = ctx.config()?;
    let (project, mut record) = load(ctx, &args.run)?;
    match record.phase {
        Phase::Running | Phase::Waiting | Phase::Retrieving => {}
        phase => {
            return Err(CliError::Usage(format!(
                "run `{}` is {}; there is nothing to attach to (see `codex-remote status {}`)",
                record.id,
                serde_json::to_value(phase)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                record.id
            )))
        }
    }
    let transport = ctx.transport(config.host(Some(&record.host))?)?;
    let (tx, rx) = mpsc::channel(256);
    let display = tokio::spawn(progress::render(
        rx,
        progress::Mode::for_context(ctx),
        ctx.verbose,
    ));
    let retry = config.retry();
    let result = follow_and_finish(
        &project,
        &config,
        &mut record,
        transport.clone(),
        &CodexExecutor,
        (retry.initial_delay, retry.max_delay),
        &tx,
    )
    .await;
    drop(tx);
    let _ = display.await;
    let _ = transport.close().await;
    let task_plan = record.finish.as_ref().and_then(|f| f.task_plan.clone());
    match &result {
        Ok(summary) => super::run::settle_plan(task_plan.as_ref(), Some(&summary.run_id), Ok(()))?,
        // A broken stream is not a failed task: the agent goes on, and the entry stays running.
        Err(codex_remote_core::Error::Transport(e)) if e.is_connection() => {}
        Err(e) => {
            super::run::settle_plan(task_plan.as_ref(), Some(&record.id), Err(&e.to_string()))?
        }
    }
    let summary = result?;
    super::run::print_summary(ctx, &summary, None)?;
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
    let config = ctx.config()?;
    let (project, record) = load(ctx, &run)?;
    let events_path = project.runs().run_dir(&record.id).join("events.jsonl");
    let events = std::fs::read_to_string(&events_path).unwrap_or_default();
    let last = events
        .lines()
        .rev()
        .map(CodexEvent::parse)
        .find(|e| !matches!(e, CodexEvent::Other { .. }));
    // Only a run whose agent may be alive is worth a round trip to the host.
    let mut record = record;
    let agent = if matches!(record.phase, Phase::Running | Phase::Waiting) && record.attempt > 0 {
        let transport = ctx.transport(config.host(Some(&record.host))?)?;
        let dir = RemoteLayout::new(transport.host(), &record.project)
            .agent_dir(&record.id, record.attempt);
        let state = CodexExecutor.probe(transport.as_ref(), &dir).await?;
        let _ = transport.close().await;
        // The host knows best whether the run is parked (it parks with no client connected).
        let (phase, resume_at) = match &state {
            AgentState::Waiting {
                resume_at,
                thread_id,
                ..
            } => {
                if record.thread_id.is_none() {
                    record.thread_id = thread_id.clone();
                }
                (Phase::Waiting, Some(rfc3339_of(*resume_at)))
            }
            _ => (Phase::Running, None),
        };
        if (phase, &resume_at) != (record.phase, &record.resume_at) {
            record.phase = phase;
            record.resume_at = resume_at;
            record.updated_at = codex_remote_core::runs::now();
            project.runs().save(&record)?;
        }
        Some(state)
    } else {
        None
    };
    if ctx.json {
        output::print_json(&serde_json::json!({
            "run": record,
            "agent": agent,
            "events_recorded": events.lines().count(),
            "last_event": last,
        }))?;
        return Ok(exit::OK);
    }
    let phase = serde_json::to_value(record.phase)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut text = format!(
        "run       {}\ntask      {}\nhost      {}\nphase     {phase}\n",
        record.id, record.task_id, record.host
    );
    text.push_str(&format!(
        "created   {}\nupdated   {}\n",
        record.created_at, record.updated_at
    ));
    if let (Phase::Waiting, Some(at)) = (record.phase, &record.resume_at) {
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
    if let Some(agent) = &agent {
        text.push_str(&format!(
            "agent     {}\n",
            serde_json::to_value(agent)
                .map(|v| v.to_string())
                .unwrap_or_default()
        ));
    }
    text.push_str(&format!("events    {} recorded\n", events.lines().count()));
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
    let (project, mut record) = load(ctx, &args.run)?;
    let store = project.runs();
    let path = store.run_dir(&record.id).join("events.jsonl");
    let recorded = std::fs::read_to_string(&path).unwrap_or_default();
    let (tx, rx) = mpsc::channel(256);
    let mode = if ctx.json {
        progress::Mode::Json
    } else {
        progress::Mode::Stdout
    };
    let display = tokio::spawn(progress::render(rx, mode, ctx.verbose.max(1)));
    for line in recorded.lines() {
        let event = CodexEvent::parse(line);
        let _ = tx
            .send(RunEvent::Codex(codex_remote_core::executor::ExecEvent {
                raw: line.to_string(),
                event,
            }))
            .await;
    }
    let mut result = Ok(());
    if args.follow && matches!(record.phase, Phase::Running | Phase::Waiting) {
        let config = ctx.config()?;
        let transport = ctx.transport(config.host(Some(&record.host))?)?;
        result = follow_attempt(&store, &mut record, transport.as_ref(), &CodexExecutor, &tx)
            .await
            .map(|_| ());
        let _ = transport.close().await;
    }
    drop(tx);
    let _ = display.await;
    result?;
    Ok(exit::OK)
}

pub async fn cancel(ctx: &Context, args: RunRefArgs) -> Result<i32, CliError> {
    let config = ctx.config()?;
    let (project, mut record) = load(ctx, &args.run)?;
    let transport = ctx.transport(config.host(Some(&record.host))?)?;
    cancel_run(&project, &mut record, transport.clone(), &CodexExecutor).await?;
    let _ = transport.close().await;
    if ctx.json {
        output::print_json(&serde_json::json!({ "run_id": record.id, "phase": record.phase }))?;
    } else if !ctx.quiet {
        output::print_text(&format!("cancelled run {}\n", record.id))?;
    }
    Ok(exit::OK)
}
