//! 8 tasks with `--parallel 8` over one host against the slowest single task, the model server
//! adding a fixed delay to every reply. Real sshd, real Codex CLI.
//!
//! Run: `CODEX_REMOTE_TEST_CODEX=/path/to/codex cargo bench -p codex-remote-core --bench orchestrate`

use std::sync::Arc;
use std::time::{Duration, Instant};

use codex_remote_core::config::{Config, ConfigFile};
use codex_remote_core::executor::CodexExecutor;
use codex_remote_core::orchestrate::{orchestrate, OrchestrateOptions};
use codex_remote_core::pipeline::Project;
use codex_remote_core::run::RunOptions;
use codex_remote_core::transport::ssh::SshTransport;
use codex_remote_core::transport::SharedTransport;
use codex_remote_testkit::model_server::{codex_binary, write_file_server};
use codex_remote_testkit::sshd::{ensure_user, SshdOptions, ALIAS};
use codex_remote_testkit::Sshd;

fn delay() -> Duration {
    Duration::from_millis(
        std::env::var("BENCH_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1500),
    )
}

fn main() {
    let Some(codex) = codex_binary() else { return };
    if Sshd::start_or_skip().is_none() {
        return;
    }
    // A login user with an empty ~/.bashrc, so the developer's rc files (pyenv, nvm) are not
    // what is measured; falls back to the current user when not root.
    const USER: &str = "codex-remote-light";
    let light = ensure_user(USER, "");
    let sshd = Sshd::start(SshdOptions {
        user: light.then(|| USER.to_string()),
        source_bashrc: true,
    })
    .unwrap();
    let home = if light {
        std::path::PathBuf::from(format!("/home/{USER}"))
    } else {
        sshd.dir().to_path_buf()
    };
    let server = write_file_server();
    server.set_delay(delay());
    let _ = std::fs::remove_dir_all(home.join("orchestrate-bench"));
    let codex_home = server.write_codex_home(&home.join("orchestrate-bench/codex-home"));
    if light {
        std::process::Command::new("chown")
            .args(["-R", &format!("{USER}:{USER}")])
            .arg(home.join("orchestrate-bench"))
            .status()
            .unwrap();
    }
    let config_text = format!(
        "[hosts.{ALIAS}]\nworkspace = \"{}\"\nshell_init = \"export PATH='{}':$PATH\"\n[hosts.{ALIAS}.env]\nCODEX_HOME = \"{}\"\n",
        home.join("orchestrate-bench/ws").display(),
        codex.parent().unwrap().display(),
        codex_home.display()
    );
    let config = Config::from_files([ConfigFile::parse(&config_text, "bench").unwrap()]).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let run_plan = |tasks: usize, label: &str| -> Duration {
        let local = tempfile::tempdir().unwrap();
        std::fs::write(local.path().join("README.md"), "# bench\n").unwrap();
        // The login user reads the pushed tree through rsync; keep it world-readable.
        std::process::Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(local.path())
            .status()
            .unwrap();
        let entries: Vec<serde_json::Value> = (0..tasks)
            .map(|i| serde_json::json!({ "task_id": format!("{label}{i}"), "executor": "codex-remote", "instruction": format!("TASK: WRITE f{i}.txt"), "status": "pending" }))
            .collect();
        let plan = local.path().join("task_plan.json");
        std::fs::write(&plan, serde_json::to_string(&entries).unwrap()).unwrap();
        let transport: SharedTransport = Arc::new(
            SshTransport::new(config.host(Some(ALIAS)).unwrap(), sshd.ssh_options()).unwrap(),
        );
        let project = Project::new(local.path(), Some(label)).unwrap();
        let options = OrchestrateOptions {
            parallel: tasks,
            fail_fast: false,
            run: RunOptions::from_config(&config),
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        let started = Instant::now();
        let summary = rt.block_on(async {
            let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
            let summary = orchestrate(
                &plan,
                &config,
                &project,
                vec![transport.clone()],
                Arc::new(CodexExecutor),
                &options,
                tx,
            )
            .await;
            drain.await.unwrap();
            let _ = transport.close().await;
            summary
        });
        let elapsed = started.elapsed();
        let summary = summary.unwrap();
        assert_eq!(summary.completed.len(), tasks, "{summary:?}");
        elapsed
    };

    let singles: Vec<Duration> = (0..3)
        .map(|i| run_plan(1, &format!("single{i}-")))
        .collect();
    let slowest = *singles.iter().max().unwrap();
    let eight = run_plan(8, "eight-");
    let s = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    println!(
        "model server delay {} per reply (2 replies per task)\n",
        s(delay())
    );
    println!("| single task (3 runs) | slowest single | 8 tasks, --parallel 8, one host | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| {} | {} | {} | {:.2} |",
        singles.iter().map(|d| s(*d)).collect::<Vec<_>>().join(", "),
        s(slowest),
        s(eight),
        eight.as_secs_f64() / slowest.as_secs_f64()
    );
}
