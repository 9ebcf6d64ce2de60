//! `codex-remote pull RUN [--apply] [--allow-restricted | --skip-restricted] [--allow-held-back] [--keep]`.

use codex_remote_core::ApplyOptions;

use super::Context;
use crate::cli::PullArgs;
use crate::error::CliError;
use crate::{exit, output};

pub async fn run(ctx: &Context, args: PullArgs) -> Result<i32, CliError> {
    let engine = ctx.engine(ctx.config()?);
    let store = ctx.project(None)?.runs();
    let run = super::runref::resolve(&store, &args.run)?;
    let result = if args.apply {
        let options = ApplyOptions {
            allow_restricted: args.allow_restricted,
            allow_held_back: args.allow_held_back,
            skip_restricted: args.skip_restricted,
            keep: args.keep,
        };
        engine.apply(&run, &options).await
    } else {
        engine
            .retrieve(&run)
            .await
            .map(|d| codex_remote_core::Applied {
                // Whether the tree is gone, as the record says.
                remote_removed: store.load(&d.run_id).is_ok_and(|r| r.remote_removed),
                run_id: d.run_id,
                patch_path: d.patch_path,
                files: d.files,
                ..Default::default()
            })
    };
    engine.close().await;
    let pulled = result.map_err(|e| super::hints::name_run(e.into(), Some(&run)))?;
    if ctx.json {
        output::print_json(&serde_json::json!({
            "run_id": pulled.run_id,
            "patch": pulled.patch_path,
            "applied": args.apply,
            "remote_removed": pulled.remote_removed,
            "files": pulled.files,
            "warnings": pulled.warnings,
            "skipped": pulled.skipped,
            "checkpoint": pulled.checkpoint,
        }))?;
    } else if !ctx.quiet {
        let mut text = output::render_stat(&pulled.files);
        text.push_str(&output::render_taken_warnings(&pulled.warnings));
        if !pulled.skipped.is_empty() {
            text.push_str(&format!(
                "skipped restricted file(s): {} (their changes stay in {})\n",
                pulled.skipped.join(", "),
                pulled.patch_path.display()
            ));
        }
        if let Some(codex_remote_core::CheckpointOutcome::Marked { line }) = &pulled.checkpoint {
            text.push_str(&format!("ticked the checklist item (line {line})\n"));
        }
        if args.apply {
            text.push_str(&format!(
                "applied run {} to {}\n",
                pulled.run_id,
                engine.root().display()
            ));
        } else {
            text.push_str(&format!(
                "patch stored in {} (apply with `codex-remote pull {} --apply`)\n",
                pulled.patch_path.display(),
                pulled.run_id
            ));
        }
        output::print_text(&text)?;
    }
    Ok(exit::OK)
}
