//! `codex-remote pull RUN [--apply] [--allow-restricted] [--keep]`.

use codex_remote_core::pipeline;

use super::Context;
use crate::cli::PullArgs;
use crate::error::CliError;
use crate::{exit, output};

pub async fn run(ctx: &Context, args: PullArgs) -> Result<i32, CliError> {
    let config = ctx.config()?;
    let project = ctx.project(None)?;
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
            let patch = store.read_patch(&record.id)?;
            codex_remote_core::patch::ParsedPatch::parse(&patch)
                .map_err(|e| CliError::Core(codex_remote_core::patch::ApplyError::from(e).into()))?
        }
    };
    let mut removed = false;
    if args.apply {
        if record.applied_at.is_some() {
            return Err(CliError::Usage(format!(
                "run `{}` was already applied at {}",
                record.id,
                record.applied_at.clone().unwrap_or_default()
            )));
        }
        pipeline::apply(&config, &project, &mut record, args.allow_restricted)?;
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
        }))?;
    } else if !ctx.quiet {
        let mut text = output::render_stat(&parsed);
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
