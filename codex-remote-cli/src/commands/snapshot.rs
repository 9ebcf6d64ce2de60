//! What a running run's agent has written on the host that the local record does not hold yet,
//! read once (no follow) and never recorded: `logs RUN` of a detached run shows it without
//! taking over the follower's job of recording events exactly once.

use codex_remote_core::Project;
use codex_remote_core::RunRecord;

use super::Context;
use crate::error::CliError;

/// The whole lines of the current attempt's events past what the local record holds.
pub async fn unrecorded_events(
    ctx: &Context,
    project: &Project,
    record: &RunRecord,
) -> Result<codex_remote_core::Unrecorded, CliError> {
    let config = ctx.config()?;
    let transport = ctx.transport(config.host(Some(&record.host))?)?;
    unrecorded_events_over(transport, project, record).await
}

/// [`unrecorded_events`] over a transport made already (so it can run in a task of its own).
pub async fn unrecorded_events_over(
    transport: codex_remote_core::transport::SharedTransport,
    project: &Project,
    record: &RunRecord,
) -> Result<codex_remote_core::Unrecorded, CliError> {
    let events = codex_remote_core::unrecorded_events(&transport, project, record).await;
    let _ = transport.close().await;
    Ok(events?)
}
