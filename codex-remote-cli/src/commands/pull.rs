//! `codex-remote pull RUN [--apply] [--allow-restricted] [--keep]`.

use codex_remote_core::ApplyOptions;

use super::Context;
use crate::cli::PullArgs;
use crate::error::CliError;
use crate::{exit, output};

pub async fn run(ctx: &Context, args: PullArgs) -> Result<i32, CliError> {
    let engine = ctx.engine(ctx.config()?);
    let result = if args.apply {
        let options = ApplyOptions {
            allow_restricted: args.allow_restricted,
            keep: args.keep,
        };
        engine
            .apply(&args.run, &options)
            .await
            .map(|a| (a.run_id, a.patch_path, a.files, a.remote_removed))
    } else {
        engine
            .retrieve(&args.run)
            .await
            .map(|d| (d.run_id, d.patch_path, d.files, false))
    };
    engine.close().await;
    let (run_id, patch_path, files, removed) = result?;
    if ctx.json {
        output::print_json(&serde_json::json!({
            "run_id": run_id,
            "patch": patch_path,
            "applied": args.apply,
            "remote_removed": removed,
            "files": files,
        }))?;
    } else if !ctx.quiet {
        let mut text = output::render_stat(&files);
        if args.apply {
            text.push_str(&format!(
                "applied run {run_id} to {}\n",
                engine.root().display()
            ));
        } else {
            text.push_str(&format!(
                "patch stored in {} (apply with `codex-remote pull {run_id} --apply`)\n",
                patch_path.display(),
            ));
        }
        output::print_text(&text)?;
    }
    Ok(exit::OK)
}
