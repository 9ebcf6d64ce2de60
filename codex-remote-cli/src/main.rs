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
            if !e.use_stderr() {
                // --help, --version: text for people, whatever else was asked.
                let _ = output::print_text(&e.render().to_string());
                std::process::exit(exit::OK);
            }
            let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
            if json_requested(args.iter().cloned()) {
                let _ = output::print_json(&usage_error_json(&e, &args));
            } else {
                // Prefixed as every other error is (docs/cli.md), then clap's usage and advice.
                eprint!("{}", usage_error_text(&e));
            }
            std::process::exit(exit::USAGE);
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
        // The reader of stdout went away (`| head -1`): what it wanted was printed; end quietly.
        Err(e) if e.is_broken_pipe() => exit::OK,
        Err(e) => {
            output::report_error(&e, json);
            exit::for_kind(e.kind())
        }
    };
    // Do not wait for background tasks (stdin forwarding) to notice the end.
    runtime.shutdown_background();
    std::process::exit(code);
}

/// Whether `--json` is among the arguments (before a `--`), for errors found before parsing ends.
fn json_requested(args: impl IntoIterator<Item = std::ffi::OsString>) -> bool {
    args.into_iter()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

/// A usage error from the argument parser as text: `codex-remote: error: ...`, as every error.
fn usage_error_text(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let body = rendered.strip_prefix("error: ").unwrap_or(&rendered);
    format!("codex-remote: error: {body}")
}

/// The usage line of the (sub)command named in `args`, as clap renders it (without `Usage: `).
fn usage_of(args: &[std::ffi::OsString]) -> String {
    let mut command = <Cli as clap::CommandFactory>::command();
    command.build();
    let mut current = &command;
    for arg in args.iter().skip(1).take_while(|a| *a != "--") {
        let Some(name) = arg.to_str() else { continue };
        if let Some(sub) = current.find_subcommand(name) {
            current = sub;
        }
    }
    let usage = current.clone().render_usage().to_string();
    let usage = usage.trim();
    usage.strip_prefix("Usage: ").unwrap_or(usage).to_string()
}

/// A usage error from the argument parser as the `--json` error object (see docs/cli.md): its
/// `usage` is the command's usage line, whether or not clap showed it.
fn usage_error_json(e: &clap::Error, args: &[std::ffi::OsString]) -> serde_json::Value {
    let rendered = e.render().to_string();
    let mut lines = rendered.lines().map(str::trim).filter(|l| !l.is_empty());
    let message = lines
        .next()
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ")
        .to_string();
    let usage = lines
        .find_map(|l| l.strip_prefix("Usage: "))
        .map(str::to_string)
        .unwrap_or_else(|| usage_of(args));
    serde_json::json!({
        "error": {
            "kind": codex_remote_core::ErrorKind::BadInput,
            "exit_code": exit::USAGE,
            "message": message,
            "usage": usage,
            "hint": "see `codex-remote help` or the command's --help",
        }
    })
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
        Command::Demo(args) => {
            commands::demo::refuse_config(cli.config.as_deref())?;
            commands::demo::run(&ctx, args).await
        }
        Command::Exec(args) => commands::exec::run(&ctx, args).await,
        Command::Attach(args) => commands::attach::attach(&ctx, args).await,
        Command::Status(args) => commands::attach::status(&ctx, args).await,
        Command::Logs(args) => commands::attach::logs(&ctx, args).await,
        Command::Cancel(args) => commands::attach::cancel(&ctx, args).await,
        Command::Watch(args) => commands::watch::run(&ctx, args).await,
        Command::Orchestrate(args) => commands::orchestrate::run(&ctx, args).await,
        Command::Checkpoint(args) => commands::checkpoint::run(&ctx, args),
        Command::Doctor(args) => commands::doctor::doctor(&ctx, args).await,
        Command::Interactive(args) => commands::interactive::run(&ctx, args).await,
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
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut command, "codex-remote", &mut script);
            output::print_text(&String::from_utf8_lossy(&script))?;
            Ok(exit::OK)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_requested_only_before_a_double_dash() {
        let args = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert!(json_requested(args(&[
            "codex-remote",
            "run",
            "--json",
            "--bogus"
        ])));
        assert!(!json_requested(args(&[
            "codex-remote",
            "exec",
            "--",
            "x",
            "--json"
        ])));
        assert!(!json_requested(args(&["--json"])), "argv[0] is not a flag");
    }

    #[test]
    fn usage_errors_become_one_json_object() {
        let argv = ["codex-remote", "run", "--bogus"];
        let e = <Cli as clap::Parser>::try_parse_from(argv).unwrap_err();
        let v = usage_error_json(&e, &argv.map(Into::into));
        assert_eq!(v["error"]["exit_code"], exit::USAGE);
        assert_eq!(v["error"]["kind"], "bad-input");
        assert_eq!(v["error"]["message"], "unexpected argument '--bogus' found");
        assert!(!v.to_string().contains('\n'));
    }

    /// Every usage error carries its command's usage line, also when clap did not show it (an
    /// invalid value), and reads `codex-remote: error: ...` as text.
    #[test]
    fn usage_errors_carry_the_usage_and_the_prefix() {
        let argv = ["codex-remote", "--json", "schema", "bogus"];
        let e = <Cli as clap::Parser>::try_parse_from(argv).unwrap_err();
        let v = usage_error_json(&e, &argv.map(Into::into));
        assert_eq!(
            v["error"]["usage"], "codex-remote schema [OPTIONS] <KIND>",
            "{v}"
        );
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("invalid value 'bogus'"),
            "{v}"
        );
        let text = usage_error_text(&e);
        assert!(
            text.starts_with("codex-remote: error: invalid value 'bogus'"),
            "{text}"
        );
        let argv = ["codex-remote", "frobnicate"];
        let e = <Cli as clap::Parser>::try_parse_from(argv).unwrap_err();
        let v = usage_error_json(&e, &argv.map(Into::into));
        assert_eq!(
            v["error"]["usage"], "codex-remote [OPTIONS] <COMMAND>",
            "{v}"
        );
        assert!(usage_error_text(&e).starts_with("codex-remote: error: unrecognized subcommand"));
    }
}
