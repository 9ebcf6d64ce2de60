//! `codex-remote`: a thin clap layer over `codex-remote-core`. Parse, call core, render.

// Errors carry locations and hints for the user; they are cold-path values, so their size
// does not matter more than their clarity.
#![allow(clippy::result_large_err)]

mod cli;
mod commands;
mod error;
mod exit;
mod mcp;
mod output;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::error::CliError;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    init_tracing(cli.verbose, cli.quiet);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    let json = cli.json;
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            output::report_error(&e, json);
            exit::for_kind(e.kind())
        }
    };
    // Do not wait for background tasks (stdin forwarding) to notice the end.
    runtime.shutdown_background();
    std::process::exit(code);
}

fn init_tracing(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("CODEX_REMOTE_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!(
                "codex_remote_core={level},codex_remote={level}"
            ))
        });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

async fn run(cli: Cli) -> Result<i32, CliError> {
    let ctx = commands::Context::new(&cli)?;
    match cli.command {
        Command::Plan(args) => commands::plan::run(&ctx, args),
        Command::Run(args) => commands::run::run(&ctx, *args).await,
        Command::Demo(args) => commands::demo::run(&ctx, args).await,
        Command::Exec(args) => commands::exec::run(&ctx, args).await,
        Command::Attach(args) => commands::attach::attach(&ctx, args).await,
        Command::Status(args) => commands::attach::status(&ctx, args).await,
        Command::Logs(args) => commands::attach::logs(&ctx, args).await,
        Command::Cancel(args) => commands::attach::cancel(&ctx, args).await,
        Command::Orchestrate(args) => commands::orchestrate::run(&ctx, args).await,
        Command::Checkpoint(args) => commands::checkpoint::run(&ctx, args),
        Command::Doctor(args) => commands::doctor::doctor(&ctx, args).await,
        Command::Interactive(args) => commands::doctor::interactive(&ctx, args).await,
        Command::Push(args) => commands::push::run(&ctx, args).await,
        Command::Diff(args) => commands::diff::run(&ctx, args).await,
        Command::Pull(args) => commands::pull::run(&ctx, args).await,
        Command::Runs(args) => commands::runs::run(&ctx, args).await,
        Command::Schema(args) => commands::schema::run(&ctx, args),
        Command::Skill(args) => commands::skill::run(&ctx, args),
        Command::Mcp => {
            let config = ctx.config()?;
            mcp::serve(ctx.engine(config))
                .await
                .map_err(CliError::io("serving MCP on stdio"))?;
            Ok(exit::OK)
        }
        Command::Init(args) => commands::init::run(&ctx, args),
        Command::Completions(args) => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(
                args.shell,
                &mut command,
                "codex-remote",
                &mut std::io::stdout(),
            );
            Ok(exit::OK)
        }
    }
}
