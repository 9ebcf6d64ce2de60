//! `push`, `diff`, `pull` and `runs` through the real binary, against a real sshd and rsync.

mod common;

use std::sync::Arc;

use codex_remote_core::config::{Config, ConfigFile};
use codex_remote_core::transport::ssh::SshTransport;
use codex_remote_core::transport::SharedTransport;
use codex_remote_core::{Engine, PlanOverrides, RunRecord, TaskSpec};
use codex_remote_testkit::{sshd::ALIAS, ShellAgent, Sshd};
use common::{stderr, stdout, Env};

struct Setup {
    sshd: Sshd,
    env: Env,
    transport: SharedTransport,
    config: Config,
}

fn setup() -> Option<Setup> {
    let sshd = Sshd::start_or_skip()?;
    let env = Env::new()
        .var(
            "CODEX_REMOTE_SSH_CONFIG",
            sshd.ssh_config().display().to_string(),
        )
        .var("CODEX_REMOTE_HOST", ALIAS);
    // The agent here is a shell script (ShellAgent), but a run still checks the host's Codex
    // before pushing: a stand-in `codex` and an API key answer that check.
    let bin = sshd.dir().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("codex"), "#!/bin/sh\necho 'codex-cli 0.169.0'\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.join("codex"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }
    let config_text = format!(
        "[hosts.{ALIAS}]\nworkspace = \"{}\"\nshell_init = \"export PATH={}:$PATH\"\n[hosts.{ALIAS}.env]\nCODEX_API_KEY = \"test-key-not-secret\"\n",
        sshd.dir().join("ws").display(),
        bin.display()
    );
    env.write("codex-remote.toml", &config_text);
    env.write("src/app.ts", "export const a = 1;\n");
    env.write("README.md", "# app\n");
    env.write("package.json", "{}\n");
    let config = Config::from_files([ConfigFile::parse(&config_text, "t").unwrap()]).unwrap();
    let transport: SharedTransport =
        Arc::new(SshTransport::new(config.host(Some(ALIAS)).unwrap(), sshd.ssh_options()).unwrap());
    Some(Setup {
        sshd,
        env,
        transport,
        config,
    })
}

impl Setup {
    /// A run whose "agent" changed its remote tree with `script`; its result not yet retrieved.
    async fn run_with(&self, script: &str) -> RunRecord {
        let transport = self.transport.clone();
        let engine = Engine::new(self.config.clone(), &self.env.project)
            .with_transports(move |_host| Ok(transport.clone()))
            .with_executor(ShellAgent::new(script));
        let task = TaskSpec::parse_str(
            "id: t\ntitle: T\ntype: quick-fix\nrequirements: [Change it]\n",
            "t.yaml",
        )
        .unwrap();
        let plan = engine.plan(task, &PlanOverrides::on_host(ALIAS)).unwrap();
        let mut options = engine.run_options();
        // The test pushed already.
        options.skip_push = true;
        engine.start_detached(&plan, options).await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_prints_the_remote_directory() {
    let Some(s) = setup() else { return };
    let out = s.env.run(&["push"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let remote = s.sshd.dir().join("ws/myapp");
    assert_eq!(stdout(&out), format!("{}\n", remote.display()));
    assert_eq!(
        std::fs::read_to_string(remote.join("src/app.ts")).unwrap(),
        "export const a = 1;\n"
    );
    let out = s.env.run(&["push", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["method"].as_str(), v["files_transferred"].as_u64()),
        (Some("rsync"), Some(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_then_pull_apply_brings_the_change_home() {
    let Some(s) = setup() else { return };
    assert!(s.env.run(&["push"]).status.success());
    let record = s.run_with("printf 'export const a = 2;\\n' > src/app.ts; printf 'new\\n' > src/new.ts; rm README.md").await;
    let out = s.env.run(&["diff", &record.id, "--color", "never"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let stat_end = text.find("\ndiff --git").unwrap();
    insta::assert_snapshot!(&text[..stat_end]);
    assert!(
        text.contains("-export const a = 1;\n+export const a = 2;"),
        "{text}"
    );
    let colored = stdout(&s.env.run(&["diff", &record.id, "--color", "always"]));
    assert!(colored.contains("\x1b[32m+export const a = 2;\x1b[0m"));

    let out = s.env.run(&["pull", &record.id, "--apply"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(s.env.project.join("src/app.ts")).unwrap(),
        "export const a = 2;\n"
    );
    assert_eq!(
        std::fs::read_to_string(s.env.project.join("src/new.ts")).unwrap(),
        "new\n"
    );
    assert!(!s.env.project.join("README.md").exists());
    assert!(s
        .env
        .project
        .join(format!(".codex-remote/runs/{}/result.patch", record.id))
        .exists());
    // After a successful apply the run's tree goes back to the pool (its lease is dropped);
    // `runs --prune` removes idle trees.
    let tree = record.tree.as_ref().unwrap().dir.clone();
    let slot = std::path::Path::new(&tree).parent().unwrap().to_path_buf();
    assert!(std::path::Path::new(&tree).exists());
    assert!(
        !slot.with_extension("lease").exists(),
        "the tree is released after a successful apply"
    );
    let out = s.env.run(&["pull", &record.id, "--apply"]);
    assert_eq!(out.status.code(), Some(2), "applying twice is refused");

    let out = s.env.run(&["runs", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["runs"][0]["id"], record.id.as_str());
    assert!(v["runs"][0]["applied_at"].is_string());
    let out = s.env.run(&["runs", "--prune", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["idle_trees_removed"][0]["trees"], 1, "{v}");
    assert!(
        !std::path::Path::new(&tree).exists(),
        "idle trees are pruned"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_edit_is_a_conflict_exit_6_and_bytes_stay() {
    let Some(s) = setup() else { return };
    assert!(s.env.run(&["push"]).status.success());
    let record = s.run_with("printf 'remote\\n' > src/app.ts").await;
    s.env.write("src/app.ts", "my unsaved local work\n");
    let out = s.env.run(&["pull", &record.id, "--apply", "--json"]);
    assert_eq!(out.status.code(), Some(6), "{}", stdout(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["conflicts"][0]["path"], "src/app.ts");
    assert_eq!(
        std::fs::read_to_string(s.env.project.join("src/app.ts")).unwrap(),
        "my unsaved local work\n"
    );
    assert!(
        s.env
            .project
            .join(format!(".codex-remote/runs/{}/result.patch", record.id))
            .exists(),
        "the patch stays in the record"
    );
    let tree = record.tree.as_ref().unwrap().dir.clone();
    assert!(
        std::path::Path::new(&tree).exists(),
        "the remote tree is kept when nothing was applied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restricted_changes_need_allow_restricted() {
    let Some(s) = setup() else { return };
    assert!(s.env.run(&["push"]).status.success());
    let record = s
        .run_with("printf '{\"dependencies\":{}}\\n' > package.json")
        .await;
    let out = s.env.run(&["pull", &record.id, "--apply"]);
    assert_eq!(out.status.code(), Some(6));
    assert!(
        stderr(&out).contains("restricted")
            && stderr(&out).contains("--allow-restricted")
            && stderr(&out).contains("--skip-restricted"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(s.env.project.join("package.json")).unwrap(),
        "{}\n"
    );
    let out = s.env.run(&[
        "pull",
        &record.id,
        "--apply",
        "--allow-restricted",
        "--keep",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(s.env.project.join("package.json")).unwrap(),
        "{\"dependencies\":{}}\n"
    );
    assert!(
        std::path::Path::new(&record.tree.as_ref().unwrap().dir).exists(),
        "--keep keeps the remote tree"
    );
    let out = s.env.run(&["runs", "--prune"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("pruned the remote tree of {}", record.id)));
    assert!(!std::path::Path::new(&record.tree.as_ref().unwrap().dir).exists());
}

#[test]
fn unknown_runs_are_bad_input() {
    let env = Env::new();
    let out = env.run(&["diff", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("codex-remote runs"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_workspace_exits_4_with_the_fix() {
    let Some(s) = setup() else { return };
    // Nothing can be created under /proc, not even by root.
    s.env.write(
        "codex-remote.toml",
        &format!("[hosts.{ALIAS}]\nworkspace = \"/proc/codex-remote-nowhere\"\n"),
    );
    let out = s.env.run(&["push"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("workspace"), "{}", stderr(&out));
}
