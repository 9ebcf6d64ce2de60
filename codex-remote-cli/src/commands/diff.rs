//! `codex-remote diff RUN [--stat] [--color WHEN]`.

use std::io::IsTerminal;

use codex_remote_core::patch::ParsedPatch;
use codex_remote_core::pipeline;

use super::Context;
use crate::cli::{ColorChoice, DiffArgs};
use crate::error::CliError;
use crate::{exit, output};

pub async fn run(ctx: &Context, args: DiffArgs) -> Result<i32, CliError> {
    let project = ctx.project(None)?;
    let store = project.runs();
    let mut record = store.load(&args.run)?;
    let patch = match store.read_patch(&record.id) {
        Ok(patch) => patch,
        // Not retrieved yet: fetch it now (one round trip), as `pull` would.
        Err(_) => {
            let config = ctx.config()?;
            let transport = ctx.transport(config.host(Some(&record.host))?)?;
            pipeline::retrieve(transport, &project, &mut record).await?;
            store.read_patch(&record.id)?
        }
    };
    let parsed = ParsedPatch::parse(&patch)
        .map_err(|e| CliError::Core(codex_remote_core::patch::ApplyError::from(e).into()))?;
    if ctx.json {
        output::print_json(&serde_json::json!({
            "run_id": record.id,
            "files": output::file_summaries(&parsed),
            "patch": String::from_utf8_lossy(&patch),
        }))?;
        return Ok(exit::OK);
    }
    let color = match args.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    };
    let mut out = output::render_stat(&parsed);
    if !args.stat {
        out.push('\n');
        out.push_str(&output::render_patch(
            &String::from_utf8_lossy(&patch),
            color,
        ));
    }
    output::print_text(&out)?;
    Ok(exit::OK)
}
