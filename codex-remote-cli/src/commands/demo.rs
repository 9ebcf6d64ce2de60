//! `codex-remote demo`: the whole workflow end to end on this machine, in a throwaway project,
//! with the real pipeline and the real Codex CLI (the pinned version, fetched from npm into a
//! cache the first time), and the built-in scripted model server standing in for OpenAI.
//!
//! Only this command ever talks to the scripted server: `run` always uses the host's own Codex
//! configuration and fails before pushing when Codex cannot authenticate there.

use std::path::Path;

use codex_remote_core::config::{Config, ConfigFile};
use codex_remote_core::model_server::{Reply, ScriptedModelServer};
use codex_remote_core::{DefaultTransports, Engine, Event, EventKind, PlanOverrides, TaskSpec};

use super::interrupt::Listener;
use super::{codex_cache, progress, Context};
use crate::cli::DemoArgs;
use crate::error::CliError;
use crate::{exit, output};

const TASK: &str = "id: demo
title: Add a greet() helper and bump the version
type: feature
scope:
  files: [src/]
requirements:
  - Add src/greet.ts exporting greet(name)
  - Bump the version in src/version.ts to 2
";

/// What the scripted model answers: one shell command for Codex to run, then a final message.
fn script() -> Vec<Reply> {
    vec![
        Reply::exec(
            "call_1",
            "printf 'export function greet(name: string): string {\\n  return `Hello, ${name}!`;\\n}\\n' > src/greet.ts && printf 'export const version = 2;\\n' > src/version.ts",
        ),
        Reply::message("Added src/greet.ts and bumped the version to 2."),
    ]
}

/// `demo --config FILE` is refused: the demo reads no config (it makes its own for its
/// throwaway project), so a file given on the command line would be silently ignored.
/// `CODEX_REMOTE_CONFIG` in the environment is ignored (it is meant for every command).
pub fn refuse_config(config: Option<&Path>) -> Result<(), CliError> {
    let Some(config) = config else { return Ok(()) };
    let from_env = std::env::var_os(codex_remote_core::config::ENV_CONFIG)
        .is_some_and(|v| Path::new(&v) == config);
    if from_env {
        return Ok(());
    }
    Err(CliError::Usage(format!(
        "`demo` reads no config file: it runs on a throwaway project with a config of its own, so --config {} would be ignored; drop --config (run `codex-remote run ... --config FILE` for real work)",
        config.display()
    )))
}

pub async fn run(ctx: &Context, args: DemoArgs) -> Result<i32, CliError> {
    let say = |text: &str| {
        if !ctx.json && !ctx.quiet {
            println!("{text}");
        }
    };
    // Ctrl-C from here on cancels what the demo started and removes what it made.
    let mut interrupt = Listener::new().map_err(CliError::io("listening for Ctrl-C"))?;
    say(
        "codex-remote demo: the whole workflow on this machine, in a throwaway project.\n\
         A scripted model server on 127.0.0.1 stands in for OpenAI (no account or API key needed);\n\
         the Codex CLI, the push, the run tree, the patch and the apply are all real.\n",
    );
    let Some(codex) = codex_cache::ensure(ctx.quiet, &mut interrupt).await? else {
        eprintln!(
            "interrupted: the demo stopped while fetching the Codex CLI; npm was ended and its download removed"
        );
        return Ok(exit::INTERRUPTED);
    };
    let server = ScriptedModelServer::try_start(script()).map_err(CliError::io(
        "starting the scripted model server on 127.0.0.1",
    ))?;
    let scratch = tempfile::Builder::new()
        .prefix("codex-remote-demo-")
        .tempdir()
        .map_err(CliError::io("creating the demo's scratch directory"))?;
    let root = scratch.path().join("demo-app");
    write_project(&root).map_err(CliError::io("writing the demo project"))?;
    let codex_home = server
        .try_write_codex_home(&scratch.path().join("codex-home"))
        .map_err(CliError::io("writing the demo's CODEX_HOME"))?;
    let config = demo_config(&codex, &codex_home, &scratch.path().join("workspace"))?;
    let task = TaskSpec::parse_str(TASK, "demo.yaml")?;
    let engine = Engine::new(config, &root).with_transports(DefaultTransports(ctx.ssh_options()));
    let plan = engine.plan(task, &PlanOverrides::on_host("local"))?;
    say(&format!(
        "project  {} (its package.json is restricted: kept out of the agent's context, never changed)\n\
         codex    {} (scripted model server at {})\n\
         model    {} ({})\n\ninstruction sent to Codex:\n{}",
        root.display(),
        codex.display(),
        server.base_url(),
        plan.model.model,
        plan.model_reason(),
        indent(&plan.instruction.text)
    ));
    // The check every run makes before pushing (the run below finds it remembered). Its
    // commands are not ended when their future is dropped (local commands outlive their caller
    // by design), so a Ctrl-C during it is acted on once it has finished.
    let checked = engine
        .check_prerequisites(engine.transport(&plan.host)?.as_ref())
        .await;
    if interrupt.was_heard().await {
        engine.close().await;
        return stopped(server, scratch, args.keep, None);
    }
    let known = checked?;
    say(&format!(
        "checked  {} found on `local`; {}\n",
        known.codex_version,
        known.auth.describe()
    ));
    // Not interruptible half-way (the agent may be launched without a handle to cancel it by):
    // a Ctrl-C meanwhile is kept, and cancels the run as soon as it has started.
    let mut handle = engine.start(&plan, engine.run_options()).await;
    let display = tokio::spawn(progress::render(
        handle.as_mut().ok().and_then(|h| h.events()),
        progress::Mode::for_context(ctx),
        ctx.verbose,
    ));
    let result = match handle {
        Ok(handle) => {
            let run_id = handle.id().to_string();
            let canceller = handle.canceller();
            let wait = handle.wait();
            tokio::pin!(wait);
            tokio::select! {
                result = &mut wait => result,
                _ = interrupt.heard() => {
                    canceller.cancel();
                    let result = wait.await;
                    if let Err(codex_remote_core::Error::Cancelled { .. }) = &result {
                        let _ = display.await;
                        engine.close().await;
                        return stopped(server, scratch, args.keep, Some(&run_id));
                    }
                    result
                }
            }
        }
        Err(e) => Err(e),
    };
    let _ = display.await;
    engine.close().await;
    let summary = result?.summary;
    super::run::print_summary(ctx, &summary, Some(&plan))?;
    let greet = std::fs::read_to_string(root.join("src/greet.ts")).unwrap_or_default();
    say(&format!(
        "\nsrc/greet.ts in the project now reads:\n{}",
        indent(&greet)
    ));
    let model_server = server.base_url();
    drop(server);
    let project = root.display().to_string();
    if args.keep {
        let _ = scratch.keep();
        say(&format!("kept the demo project in {project}"));
    } else {
        let place = scratch.path().display().to_string();
        scratch.close().map_err(CliError::io(format!(
            "removing the demo's directory {place}"
        )))?;
        say(&format!(
            "removed the demo project (it was in {project}; `demo --keep` keeps it)"
        ));
    }
    if ctx.json {
        output::print_json_line(&progress::json_line(&Event::from(EventKind::Demo {
            scripted_model: true,
            model_server,
            project,
            kept: args.keep,
        })))?;
    }
    say(
        "That was the whole workflow. For real work: `codex-remote init`, then\n\
         `codex-remote doctor --host HOST` and `codex-remote run TASK --host HOST`; a real run\n\
         uses Codex's own login on the host, never this scripted server.",
    );
    Ok(exit::OK)
}

/// After a Ctrl-C: the model server stopped, the scratch directory removed (kept with
/// `--keep`), one line on stderr, exit 130.
fn stopped(
    server: ScriptedModelServer,
    scratch: tempfile::TempDir,
    keep: bool,
    cancelled_run: Option<&str>,
) -> Result<i32, CliError> {
    drop(server);
    let project = if keep {
        format!(
            "its project kept in {}",
            scratch.keep().join("demo-app").display()
        )
    } else {
        let place = scratch.path().display().to_string();
        scratch.close().map_err(CliError::io(format!(
            "removing the demo's directory {place}"
        )))?;
        format!("{place} removed")
    };
    eprintln!(
        "{}",
        super::interrupt::demo_stopped(cancelled_run, &project)
    );
    Ok(exit::INTERRUPTED)
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

fn write_project(root: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(root.join("src"))?;
    std::fs::write(root.join("src/version.ts"), "export const version = 1;\n")?;
    std::fs::write(root.join("package.json"), "{\"name\":\"demo-app\"}\n")?;
    std::fs::write(root.join("README.md"), "# demo-app\n")?;
    // Marks the project root (a stray .git in a parent directory cannot move it).
    std::fs::write(root.join("codex-remote.toml"), "# the demo's project\n")
}

/// A config with one host, `local`, whose shell init puts the cached Codex on PATH and whose
/// Codex talks to the scripted server. Nothing of the user's own config is read.
fn demo_config(codex: &Path, codex_home: &Path, workspace: &Path) -> Result<Config, CliError> {
    let toml_string =
        |p: &Path| serde_json::to_string(&p.display().to_string()).expect("strings serialise");
    let bin_dir = codex.parent().unwrap_or(Path::new("."));
    let shell_init = format!(
        "export PATH={}:\"$PATH\"",
        codex_remote_core::shell_quote(&bin_dir.display().to_string())
    );
    let text = format!(
        "[hosts.local]\nworkspace = {}\nshell_init = {}\n[hosts.local.env]\nCODEX_HOME = {}\n",
        toml_string(workspace),
        serde_json::to_string(&shell_init).expect("strings serialise"),
        toml_string(codex_home),
    );
    Ok(Config::from_files([ConfigFile::parse(
        &text,
        "the demo's config",
    )?])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_quotes_hostile_paths() {
        let config = demo_config(
            Path::new("/tmp/a'b \"c/node_modules/.bin/codex"),
            Path::new("/tmp/x\"y"),
            Path::new("/tmp/w s"),
        )
        .unwrap();
        let host = config.host(Some("local")).unwrap();
        assert_eq!(host.workspace, "/tmp/w s");
        assert_eq!(host.env["CODEX_HOME"], "/tmp/x\"y");
        assert_eq!(
            host.shell_init.as_deref(),
            Some("export PATH='/tmp/a'\\''b \"c/node_modules/.bin':\"$PATH\"")
        );
    }
}
