//! `codex-remote diff RUN [--stat] [--color WHEN]`.

use std::io::IsTerminal;

use super::Context;
use crate::cli::{ColorChoice, DiffArgs};
use crate::error::CliError;
use crate::{exit, output};

pub async fn run(ctx: &Context, args: DiffArgs) -> Result<i32, CliError> {
    // The stored patch needs no config; fetching one does.
    let config = ctx
        .config()
        .unwrap_or_else(|_| codex_remote_core::Config::builtin());
    let engine = ctx.engine(config);
    let run = super::runref::resolve(&ctx.project(None)?.runs(), &args.run)?;
    let diff = engine.diff(&run).await;
    engine.close().await;
    let diff = diff?;
    if ctx.json {
        output::print_json(&serde_json::json!({
            "run_id": diff.run_id,
            "files": diff.files,
            "patch": String::from_utf8_lossy(&diff.patch),
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
    let mut out = output::safe(&output::render_stat(&diff.files)).into_owned();
    if !args.stat {
        out.push('\n');
        // Raw bytes only for a program reading the patch (`diff RUN > change.patch`).
        let escape = color || std::io::stdout().is_terminal();
        out.push_str(&output::render_patch(
            &String::from_utf8_lossy(&diff.patch),
            color,
            escape,
        ));
    }
    output::print_raw(&out)?;
    Ok(exit::OK)
}
