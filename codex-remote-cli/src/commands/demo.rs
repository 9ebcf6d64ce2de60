//! `codex-remote demo`: the whole workflow end to end on this machine, in a throwaway project,
//! with the real pipeline and the real Codex CLI (the pinned version, fetched from npm into a
//! cache the first time), and the built-in scripted model server standing in for OpenAI.
//!
//! Only this command ever talks to the scripted server: `run` always uses the host's own Codex
//! configuration and fails before pushing when Codex cannot authenticate there.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use codex_remote_core::config::{Config, ConfigFile};
use codex_remote_core::model_server::{Reply, ScriptedModelServer};
use codex_remote_core::{DefaultTransports, Engine, PlanOverrides, TaskSpec};

use super::{progress, Context};
use crate::cli::DemoArgs;
use crate::error::CliError;
use crate::exit;

/// The Codex CLI version the demo runs (the same pin as `.ci/run`).
pub const CODEX_VERSION: &str = "0.169.0";

/// The npm package of the Codex CLI.
const CODEX_PACKAGE: &str = "@openai/codex";

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

pub async fn run(ctx: &Context, args: DemoArgs) -> Result<i32, CliError> {
    let say = |text: &str| {
        if !ctx.json && !ctx.quiet {
            println!("{text}");
        }
    };
    say(
        "codex-remote demo: the whole workflow on this machine, in a throwaway project.\n\
         A scripted model server on 127.0.0.1 stands in for OpenAI (no account or API key needed);\n\
         the Codex CLI, the push, the run tree, the patch and the apply are all real.\n",
    );
    let codex = ensure_codex(ctx).await?;
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
    // The check every run makes before pushing (the run below finds it remembered).
    let known = engine
        .check_prerequisites(engine.transport(&plan.host)?.as_ref())
        .await?;
    say(&format!(
        "checked  {} found on `local`; {}\n",
        known.codex_version,
        known.auth.describe()
    ));
    let mut handle = engine.start(&plan, engine.run_options()).await;
    let display = tokio::spawn(progress::render(
        handle.as_mut().ok().and_then(|h| h.events()),
        progress::Mode::for_context(ctx),
        ctx.verbose,
    ));
    let result = match handle {
        Ok(handle) => handle.wait().await,
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
    if args.keep {
        let kept = scratch.keep();
        say(&format!(
            "kept the demo project in {}",
            kept.join("demo-app").display()
        ));
    }
    say(
        "That was the whole workflow. For real work: `codex-remote init`, then\n\
         `codex-remote doctor --host HOST` and `codex-remote run TASK --host HOST`; a real run\n\
         uses Codex's own login on the host, never this scripted server.",
    );
    Ok(exit::OK)
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

/// Where the pinned Codex CLI is cached: `$XDG_CACHE_HOME/codex-remote/codex-VERSION`, else
/// `~/.cache/codex-remote/codex-VERSION`.
pub fn codex_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(
        base.join("codex-remote")
            .join(format!("codex-{CODEX_VERSION}")),
    )
}

/// The cached Codex CLI, fetched from npm first when it is missing.
async fn ensure_codex(ctx: &Context) -> Result<PathBuf, CliError> {
    let prerequisite = |detail: String, fix: &str| {
        CliError::Core(codex_remote_core::Error::Prerequisite {
            host: "local".into(),
            problem: "the demo cannot get the Codex CLI".into(),
            detail,
            fix: fix.into(),
        })
    };
    let dir = codex_cache_dir().ok_or_else(|| {
        prerequisite(
            "neither XDG_CACHE_HOME nor HOME is set".into(),
            "set HOME (the Codex CLI is cached under ~/.cache/codex-remote)",
        )
    })?;
    let codex = dir.join("node_modules/.bin/codex");
    if codex.exists() {
        return Ok(codex);
    }
    if !ctx.quiet {
        eprintln!(
            "fetching the Codex CLI {CODEX_VERSION} from npm into {} (first run only)...",
            dir.display()
        );
    }
    let started = Instant::now();
    let parent = dir.parent().expect("the cache dir has a parent");
    std::fs::create_dir_all(parent).map_err(CliError::io(format!(
        "creating the cache directory {}",
        parent.display()
    )))?;
    // Installed beside its final place and renamed into it, so an interrupted fetch never
    // leaves a half-installed Codex that looks complete.
    let partial = tempfile::Builder::new()
        .prefix(&format!(".codex-{CODEX_VERSION}-partial-"))
        .tempdir_in(parent)
        .map_err(CliError::io("creating the download directory"))?;
    let output = tokio::process::Command::new("npm")
        .args(["install", "--prefix"])
        .arg(partial.path())
        .args(["--no-audit", "--no-fund", "--loglevel=error"])
        .arg(format!("{CODEX_PACKAGE}@{CODEX_VERSION}"))
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| {
            prerequisite(
                format!("`npm` could not be started: {e}"),
                "install Node.js and npm (https://nodejs.org), then run the demo again",
            )
        })?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        return Err(prerequisite(
            format!(
                "`npm install {CODEX_PACKAGE}@{CODEX_VERSION}` failed ({}): {}",
                output.status,
                said.trim().lines().last().unwrap_or_default()
            ),
            "check that the npm registry is reachable (npm config get registry), then run the demo again",
        ));
    }
    let fetched = partial.keep();
    if let Err(e) = std::fs::rename(&fetched, &dir) {
        let _ = std::fs::remove_dir_all(&fetched);
        // Another demo fetched it at the same time: theirs is as good.
        if !codex.exists() {
            return Err(CliError::io(format!("moving Codex into {}", dir.display()))(e));
        }
    }
    if !ctx.quiet {
        eprintln!(
            "fetched the Codex CLI {CODEX_VERSION} in {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(codex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pin_is_the_one_ci_installs() {
        let ci = include_str!("../../../.ci/run");
        assert!(
            ci.contains(&format!("CODEX_VERSION={CODEX_VERSION}\n")),
            "the demo's Codex pin ({CODEX_VERSION}) differs from .ci/run's"
        );
    }

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
