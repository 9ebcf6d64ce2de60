//! `codex-remote runs [--prune [--older-than DAYS]]`.

use std::time::{Duration, SystemTime};

use codex_remote_core::pipeline;

use super::Context;
use crate::cli::RunsArgs;
use crate::error::CliError;
use crate::{exit, output};

pub async fn run(ctx: &Context, args: RunsArgs) -> Result<i32, CliError> {
    let project = ctx.project(None);
    let store = project.runs();
    let mut records = store.list()?;
    let mut pruned = Vec::new();
    if args.prune {
        let config = ctx.config()?;
        let cutoff = SystemTime::now() - Duration::from_secs(args.older_than * 24 * 3600);
        for record in records
            .iter_mut()
            .filter(|r| r.tree.is_some() && !r.remote_removed)
        {
            let old = humantime::parse_rfc3339(&record.created_at)
                .map(|t| t < cutoff)
                .unwrap_or(false);
            if record.applied_at.is_some() || old {
                let transport = ctx.transport(config.host(Some(&record.host))?)?;
                pipeline::remove_remote(transport, &project, record).await?;
                pruned.push(record.id.clone());
            }
        }
    }
    if ctx.json {
        output::print_json(&serde_json::json!({ "runs": records, "pruned": pruned }))?;
        return Ok(exit::OK);
    }
    let mut text = String::new();
    if records.is_empty() {
        text.push_str("no runs recorded in this project\n");
    }
    for r in &records {
        let applied = if r.applied_at.is_some() {
            "applied"
        } else {
            ""
        };
        let remote = if r.remote_removed {
            ""
        } else if r.tree.is_some() {
            "remote tree kept"
        } else {
            ""
        };
        let phase = serde_json::to_value(r.phase)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let mut applied = applied.to_string();
        if let (codex_remote_core::runs::Phase::Waiting, Some(at)) = (r.phase, &r.resume_at) {
            applied = format!("until {at}");
        }
        if r.usage.input_tokens + r.usage.output_tokens > 0 {
            applied = format!("{applied} {}", super::run::render_usage(&r.usage))
                .trim()
                .to_string();
        }
        let line = format!(
            "{}  {:<10}  {:<10}  {}  {} {}",
            r.id, phase, r.host, r.created_at, applied, remote
        );
        text.push_str(line.trim_end());
        text.push('\n');
    }
    for id in &pruned {
        text.push_str(&format!("pruned the remote tree of {id}\n"));
    }
    output::print_text(&text)?;
    Ok(exit::OK)
}
