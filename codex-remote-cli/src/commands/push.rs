//! `codex-remote push [--host H] [--project NAME]`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::Context;
use crate::cli::PushArgs;
use crate::error::CliError;
use crate::{exit, output};

pub async fn run(ctx: &Context, args: PushArgs) -> Result<i32, CliError> {
    let mut engine = ctx
        .engine(ctx.config()?)
        .with_push_confirmed(args.confirm_push);
    if let Some(name) = &args.project {
        codex_remote_core::Name::parse(name)
            .map_err(|e| CliError::from(e.input("<command line>", "--project")))?;
        engine = engine.with_project_name(name);
    }
    ctx.check_push(&engine, false)?;
    let (tx, rx) = mpsc::channel(16);
    let show = !ctx.quiet && !ctx.json && std::io::stderr().is_terminal();
    let display = tokio::spawn(show_progress(rx, show));
    let report = engine.push(args.host.as_deref(), Some(tx)).await;
    let _ = display.await;
    engine.close().await;
    let report = report?;
    if ctx.json {
        output::print_json(&report)?;
    } else {
        output::print_text(&format!("{}\n", report.remote_dir))?;
        if !ctx.quiet {
            eprintln!(
                "pushed {} files ({} changed, {}) with {} in {:.2}s",
                report.files,
                report.files_transferred,
                output::human_bytes(report.total_bytes),
                report.method,
                report.duration.as_secs_f64()
            );
        }
    }
    Ok(exit::OK)
}

/// Shows a bar only when the push is slow enough to need one (quiet when fast).
async fn show_progress(mut rx: mpsc::Receiver<codex_remote_core::sync::PushProgress>, show: bool) {
    let started = Instant::now();
    let mut bar: Option<indicatif::ProgressBar> = None;
    while let Some(progress) = rx.recv().await {
        if !show || started.elapsed() < Duration::from_millis(500) {
            continue;
        }
        let bar = bar.get_or_insert_with(|| {
            let bar = indicatif::ProgressBar::new(100);
            bar.set_style(
                indicatif::ProgressStyle::with_template("pushing {bar:30} {pos:>3}% {msg}")
                    .expect("valid template"),
            );
            bar
        });
        bar.set_position(progress.percent.unwrap_or(0).into());
        bar.set_message(output::human_bytes(progress.bytes));
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}
