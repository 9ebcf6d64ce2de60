//! `codex-remote runs [--prune [--older-than DAYS]]`.

use std::time::Duration;

use codex_remote_core::PruneOptions;

use super::Context;
use crate::cli::RunsArgs;
use crate::error::CliError;
use crate::{exit, output};

pub async fn run(ctx: &Context, args: RunsArgs) -> Result<i32, CliError> {
    let mut pruned = Vec::new();
    let mut idle_trees = Vec::new();
    let records = if args.prune {
        let engine = ctx.engine(ctx.config()?);
        let options = PruneOptions {
            older_than: Duration::from_secs(args.older_than * 24 * 3600),
        };
        let result = engine.prune(&options).await;
        // Then the idle run trees of each host the project's runs used.
        let idle = match &result {
            Ok(_) => engine.prune_idle_trees().await,
            Err(_) => Ok(Vec::new()),
        };
        engine.close().await;
        pruned = result?;
        idle_trees = idle?
            .into_iter()
            .map(|(host, trees)| serde_json::json!({ "host": host, "trees": trees }))
            .collect();
        engine.list()?
    } else {
        // Listing needs no config: the records are local.
        ctx.engine(codex_remote_core::Config::builtin()).list()?
    };
    if ctx.json {
        output::print_json(
            &serde_json::json!({ "runs": records, "pruned": pruned, "idle_trees_removed": idle_trees }),
        )?;
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
        let phase = r.phase.to_string();
        let mut applied = applied.to_string();
        if let (codex_remote_core::Phase::Waiting, Some(at)) = (r.phase, &r.resume_at) {
            applied = format!("until {at}");
        }
        if r.usage.input_tokens.saturating_add(r.usage.output_tokens) > 0 {
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
    for entry in &idle_trees {
        text.push_str(&format!(
            "removed {} idle run tree(s) on {}\n",
            entry["trees"],
            entry["host"].as_str().unwrap_or_default()
        ));
    }
    output::print_text(&text)?;
    Ok(exit::OK)
}
