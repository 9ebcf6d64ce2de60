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
    let mut text = render(&records);
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

/// The records as a table: a header row, then one row per run, each column as wide as its
/// widest cell.
pub fn render(records: &[codex_remote_core::RunRecord]) -> String {
    if records.is_empty() {
        return "no runs recorded in this project\n".into();
    }
    let mut rows = vec![[
        "RUN".to_string(),
        "PHASE".to_string(),
        "HOST".to_string(),
        "CREATED".to_string(),
        "NOTES".to_string(),
    ]];
    for r in records {
        let mut notes = Vec::new();
        if r.applied_at.is_some() {
            notes.push("applied".to_string());
        }
        if let (codex_remote_core::Phase::Waiting, Some(at)) = (r.phase, &r.resume_at) {
            notes.push(format!("until {at}"));
        }
        if r.usage.input_tokens.saturating_add(r.usage.output_tokens) > 0 {
            notes.push(super::run::render_usage(&r.usage));
        }
        if !r.remote_removed && r.tree.is_some() {
            notes.push("remote tree kept".to_string());
        }
        rows.push([
            r.id.clone(),
            r.phase.to_string(),
            r.host.clone(),
            r.created_at.clone(),
            notes.join(", "),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            rows.iter()
                .map(|row| row[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in &rows {
        let line = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ");
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        id: &str,
        phase: &str,
        host: &str,
        extra: serde_json::Value,
    ) -> codex_remote_core::RunRecord {
        let mut v = serde_json::json!({
            "id": id, "task_id": "t", "host": host, "project": "p", "remote_mirror": "m",
            "tree": null, "phase": phase, "created_at": "2026-01-01T10:00:00Z",
            "updated_at": "2026-01-01T10:05:00Z", "attempt": 1,
        });
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    /// A header row, and columns as wide as their content, however long the ids.
    #[test]
    fn runs_are_a_table_with_a_header_sized_to_its_content() {
        let records = [
            record(
                "fix-it-20260101-100000-ab12",
                "completed",
                "penguin",
                serde_json::json!({"applied_at": "2026-01-01T10:06:00Z", "remote_removed": true}),
            ),
            record(
                "a-much-longer-task-name-for-the-login-page-20260101-110000-cd34",
                "running",
                "a-build-host-with-a-long-name",
                serde_json::json!({}),
            ),
            record(
                "parked-20260101-120000-ef56",
                "waiting",
                "local",
                serde_json::json!({"resume_at": "2026-01-01T15:00:00Z"}),
            ),
        ];
        let text = render(&records);
        insta::assert_snapshot!("runs_table", text);
        // Every row's columns start where the header's do.
        let lines: Vec<&str> = text.lines().collect();
        let phase_at = lines[0].find("PHASE").unwrap();
        for line in &lines[1..] {
            assert_eq!(line.as_bytes()[phase_at - 1], b' ', "{line}");
            assert_ne!(line.as_bytes()[phase_at], b' ', "{line}");
        }
    }
}
