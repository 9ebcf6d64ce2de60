//! `codex-remote pull RUN [--apply] [--allow-restricted | --skip-restricted] [--allow-held-back] [--keep]`.

use codex_remote_core::pipeline;

use super::Context;
use crate::cli::PullArgs;
use crate::error::CliError;
use crate::{exit, output};

pub async fn run(ctx: &Context, args: PullArgs) -> Result<i32, CliError> {
    let config = ctx.config()?;
    let project = ctx.project(None);
    let store = project.runs();
    let mut record = store.load(&args.run)?;
    let transport = if record.remote_removed {
        None
    } else {
        Some(ctx.transport(config.host(Some(&record.host))?)?)
    };
    let parsed = match &transport {
        Some(transport) => pipeline::retrieve(transport.clone(), &project, &mut record).await?,
        None => {
            let path = store.patch_path(&record.id);
            if !path.exists() {
                store.read_patch(&record.id)?;
            }
            codex_remote_core::patch::ParsedPatch::read(&path)
                .map_err(|e| CliError::Core(e.into()))?
        }
    };
    let mut removed = false;
    let mut warnings = Vec::new();
    let mut skipped = Vec::new();
    let mut checkpoint = None;
    if args.apply {
        if record.applied_at.is_some() {
            return Err(CliError::Usage(format!(
                "run `{}` was already applied at {}",
                record.id,
                record.applied_at.clone().unwrap_or_default()
            )));
        }
        let options = pipeline::ApplyOptions {
            allow_restricted: args.allow_restricted,
            allow_held_back: args.allow_held_back,
            skip_restricted: args.skip_restricted,
        };
        let applied = pipeline::apply(&config, &project, &mut record, options)?;
        warnings = applied.warnings;
        skipped = applied.skipped;
        // Finish what the run asked for: its checklist item.
        if let Some(spec) = record.finish.as_ref().and_then(|f| f.checkpoint.clone()) {
            checkpoint = Some(
                codex_remote_core::checkpoint::mark_checkpoint(
                    &project.root.join(&spec.file),
                    &spec.item,
                    Some(&record.id),
                )
                .map_err(|e| CliError::Core(e.into()))?,
            );
        }
        if !args.keep {
            if let Some(transport) = &transport {
                pipeline::remove_remote(transport.clone(), &project, &mut record).await?;
                removed = true;
            }
        }
    }
    if ctx.json {
        output::print_json(&serde_json::json!({
            "run_id": record.id,
            "patch": store.patch_path(&record.id),
            "applied": args.apply,
            "remote_removed": removed,
            "files": output::file_summaries(&parsed),
            "warnings": warnings,
            "skipped": skipped,
            "checkpoint": checkpoint,
        }))?;
    } else if !ctx.quiet {
        let mut text = output::render_stat(&parsed);
        text.push_str(&output::render_taken_warnings(&warnings));
        if !skipped.is_empty() {
            text.push_str(&format!(
                "skipped restricted file(s): {} (their changes stay in {})\n",
                skipped.join(", "),
                store.patch_path(&record.id).display()
            ));
        }
        if let Some(codex_remote_core::checkpoint::CheckpointOutcome::Marked { line }) = &checkpoint
        {
            text.push_str(&format!("ticked the checklist item (line {line})\n"));
        }
        if args.apply {
            text.push_str(&format!(
                "applied run {} to {}\n",
                record.id,
                project.root.display()
            ));
        } else {
            text.push_str(&format!(
                "patch stored in {} (apply with `codex-remote pull {} --apply`)\n",
                store.patch_path(&record.id).display(),
                record.id
            ));
        }
        output::print_text(&text)?;
    }
    Ok(exit::OK)
}
