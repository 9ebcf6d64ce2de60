//! What a running run's agent has written on the host that the local record does not hold yet,
//! read once (no follow) and never recorded: `logs RUN` of a detached run shows it without
//! taking over the follower's job of recording events exactly once.

use codex_remote_core::layout::RemoteLayout;
use codex_remote_core::pipeline::Project;
use codex_remote_core::runs::RunRecord;
use codex_remote_core::transport::TransportExt;

use super::Context;
use crate::error::CliError;

/// The whole lines of the current attempt's events past what the local record holds.
pub async fn unrecorded_events(
    ctx: &Context,
    project: &Project,
    record: &RunRecord,
) -> Result<Vec<String>, CliError> {
    let config = ctx.config()?;
    let transport = ctx.transport(config.host(Some(&record.host))?)?;
    unrecorded_events_over(transport, project, record).await
}

/// [`unrecorded_events`] over a transport made already (so it can run in a task of its own).
pub async fn unrecorded_events_over(
    transport: codex_remote_core::transport::SharedTransport,
    project: &Project,
    record: &RunRecord,
) -> Result<Vec<String>, CliError> {
    let dir =
        RemoteLayout::new(transport.host(), &record.project).agent_dir(&record.id, record.attempt);
    let remote = transport.read_file(&format!("{dir}/events.jsonl")).await;
    let _ = transport.close().await;
    let remote = remote?;
    let local_len = std::fs::metadata(project.runs().run_dir(&record.id).join("events.jsonl"))
        .map(|m| m.len())
        .unwrap_or(0);
    let offset = local_len.saturating_sub(record.attempt_log_start) as usize;
    let rest = remote.get(offset..).unwrap_or_default();
    // A partial last line is still being written: leave it for next time.
    let end = rest.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    Ok(String::from_utf8_lossy(&rest[..end])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect())
}
