//! DEMO: the whole `run` pipeline on this machine (`--host local`) with the real Codex CLI,
//! driven by the testkit's scripted model server instead of OpenAI: no credentials needed.
//!
//! `cargo run -q -p codex-remote-cli --example demo`
//!
//! Needs the Codex CLI: on PATH, or named by CODEX_REMOTE_TEST_CODEX
//! (`npm install --prefix ~/.cache/codex @openai/codex@0.169.0`).

use std::io::Write;

use codex_remote_core::config::{Config, ConfigFile};
use codex_remote_core::events::{CodexEvent, ItemKind};
use codex_remote_core::executor::CodexExecutor;
use codex_remote_core::pipeline::Project;
use codex_remote_core::plan::{plan, PlanOverrides};
use codex_remote_core::run::{run, RunEvent, RunOptions};
use codex_remote_core::task::TaskSpec;
use codex_remote_core::transport::for_host;
use codex_remote_testkit::model_server::{codex_binary, FakeModelServer, Reply};

#[tokio::main]
async fn main() {
    println!("codex-remote DEMO: a scripted model server stands in for OpenAI; Codex and everything else are real.\n");
    let Some(codex) = codex_binary() else {
        eprintln!("install the Codex CLI first: npm install --prefix ~/.cache/codex @openai/codex@0.169.0\nthen: CODEX_REMOTE_TEST_CODEX=~/.cache/codex/node_modules/.bin/codex cargo run -q -p codex-remote-cli --example demo");
        std::process::exit(4);
    };
    let server = FakeModelServer::start(vec![
        Reply::exec("call_1", "printf 'export function greet(name: string) {\\n  return `Hello, ${name}!`;\\n}\\n' > src/greet.ts && sed -i 's/1;/2;/' src/version.ts"),
        Reply::message("Added src/greet.ts and bumped the version."),
    ]);
    let scratch = tempfile::tempdir().expect("temp dir");
    let root = scratch.path().join("demo-app");
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(root.join("src/version.ts"), "export const version = 1;\n").unwrap();
    std::fs::write(root.join("package.json"), "{\"name\":\"demo-app\"}\n").unwrap();
    let codex_home = server.write_codex_home(&scratch.path().join("codex-home"));
    let config_text = format!(
        "[hosts.local]\nworkspace = \"{}\"\nshell_init = \"export PATH='{}':$PATH\"\n[hosts.local.env]\nCODEX_HOME = \"{}\"\n",
        scratch.path().join("workspace").display(),
        codex.parent().unwrap().display(),
        codex_home.display()
    );
    let config = Config::from_files([ConfigFile::parse(&config_text, "demo").unwrap()]).unwrap();
    let task = TaskSpec::parse_str(
        "id: demo\ntitle: Add a greet() helper and bump the version\ntype: feature\nscope:\n  files: [src/]\nrequirements:\n  - Add src/greet.ts exporting greet(name)\n  - Bump the version in src/version.ts\n",
        "demo.yaml",
    )
    .unwrap();
    let plan = plan(
        task,
        &config,
        &config.model_selector(),
        &PlanOverrides {
            host: Some("local"),
            model: None,
        },
        &root,
    )
    .unwrap();
    println!(
        "project  {}\nmodel    {} ({})\n\n{}",
        root.display(),
        plan.model.model,
        plan.model_reason(),
        plan.instruction.text
    );
    let transport = for_host(plan.host.clone(), Default::default()).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let printer = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            let line = match event {
                RunEvent::Pushed(p) => format!("pushed {} files with {}", p.files, p.method),
                RunEvent::Started { run_id, .. } => format!("run {run_id} started"),
                RunEvent::Codex(e) => match e.event {
                    CodexEvent::ItemStarted { item } => match item.kind {
                        ItemKind::CommandExecution { command, .. } => format!("$ {command}"),
                        _ => continue,
                    },
                    CodexEvent::ItemCompleted { item } => match item.kind {
                        ItemKind::AgentMessage { text } => format!("agent: {text}"),
                        _ => continue,
                    },
                    _ => continue,
                },
                _ => continue,
            };
            println!("{line}");
            let _ = std::io::stdout().flush();
        }
    });
    let project =
        Project::new(&root, None).expect("a directory name is always a valid project name");
    let summary = run(
        &plan,
        &config,
        &project,
        transport,
        &CodexExecutor,
        &RunOptions::from_config(&config),
        tx,
    )
    .await;
    let _ = printer.await;
    match summary {
        Ok(summary) => {
            println!(
                "\napplied {} file(s) to {}:",
                summary.files.len(),
                root.display()
            );
            for file in &summary.files {
                println!("  {} {}", file.kind(), file.path());
            }
            println!(
                "\nsrc/greet.ts now reads:\n{}",
                std::fs::read_to_string(root.join("src/greet.ts")).unwrap_or_default()
            );
        }
        Err(e) => {
            eprintln!("demo failed: {e}");
            std::process::exit(1);
        }
    }
}
