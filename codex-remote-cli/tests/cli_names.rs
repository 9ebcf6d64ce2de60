//! Names that become paths, and what a push may send: the adversary's names (task files,
//! plans, flags, planted run records) never reach outside the tool's directories, and a push
//! never takes a root wider than the project. All on the `local` host: no Codex is needed,
//! because every one of these is refused before an agent would start.

mod common;

use std::path::{Path, PathBuf};

use common::{stderr, stdout, Env};

/// The built-in local host's workspace under the sealed HOME.
fn local_workspace(env: &Env) -> PathBuf {
    env.home.path().join(".local/share/codex-remote/workspace")
}

/// A directory with a file in it, whose survival the test asserts.
fn victim(path: &Path) -> PathBuf {
    std::fs::create_dir_all(path).unwrap();
    let keep = path.join("keep");
    std::fs::write(&keep, "precious\n").unwrap();
    keep
}

fn task(env: &Env, extra: &str) -> PathBuf {
    env.write(
        "task.yaml",
        &format!("id: t\ntitle: T\ntype: feature\nrequirements: [Do it]\n{extra}"),
    )
}

#[test]
fn a_task_project_of_dot_codex_remote_is_refused_and_the_hosts_state_survives() {
    let env = Env::new();
    env.write("src/a.txt", "a\n");
    let state = victim(&local_workspace(&env).join(".codex-remote/other-project/runs/r1"));
    task(&env, "project: .codex-remote\n");
    for args in [
        &["run", "task.yaml", "--host", "local"][..],
        &["plan", "task.yaml", "--host", "local"][..],
        &["push", "--host", "local", "--project", ".codex-remote"][..],
    ] {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("`.codex-remote` is not a valid name: it starts with `.`"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert_eq!(std::fs::read_to_string(&state).unwrap(), "precious\n");
    }
    assert!(!local_workspace(&env).join(".codex-remote/src").exists());
}

#[test]
fn push_project_outside_the_workspace_is_refused_and_a_good_one_works() {
    let env = Env::new();
    env.write("src/a.txt", "a\n");
    let workspace = local_workspace(&env);
    std::fs::create_dir_all(&workspace).unwrap();
    let keep = victim(&workspace.parent().unwrap().join("victim2"));
    for name in ["../victim2", "..", ".", "a/b", "-rf", ""] {
        let out = env.run(&["push", "--host", "local", &format!("--project={name}")]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains("--project"), "{}", stderr(&out));
        assert_eq!(std::fs::read_to_string(&keep).unwrap(), "precious\n");
    }
    let out = env.run(&["push", "--host", "local", "--project", "ok"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(workspace.join("ok/src/a.txt").is_file());
    assert_eq!(std::fs::read_to_string(&keep).unwrap(), "precious\n");
}

#[test]
fn a_plan_task_id_that_climbs_out_writes_nothing_anywhere() {
    let env = Env::new();
    env.write("src/a.txt", "a\n");
    let plan = env.write(
        "task_plan.json",
        r#"[
  { "task_id": "../../../../escaped-run", "executor": "codex-remote", "instruction": "Do it", "status": "pending" }
]
"#,
    );
    let before = std::fs::read(&plan).unwrap();
    for args in [
        &["orchestrate", "task_plan.json", "--hosts", "local"][..],
        &[
            "run",
            "--plan",
            "task_plan.json",
            "--task-id",
            "../../../../escaped-run",
            "--host",
            "local",
        ][..],
    ] {
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("tasks[0].task_id") && stderr(&out).contains("contains `/`"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // `.codex-remote/runs/../../../../escaped-run` from the project is beside the sealed HOME.
    let outside = env.home.path().parent().unwrap().join("escaped-run");
    assert!(!outside.exists());
    assert!(!env.project.join(".codex-remote/runs").exists());
    assert!(!local_workspace(&env).exists());
    assert_eq!(std::fs::read(&plan).unwrap(), before);
}

#[test]
fn a_planted_record_with_a_climbing_id_is_never_loaded_and_prune_deletes_nothing_outside() {
    let env = Env::new();
    let workspace = local_workspace(&env);
    // Everywhere the planted id could reach: the workspace's parent (runs/../../../../victim
    // from the runs and agents directories), the home directory and the project's parent.
    let victims: Vec<PathBuf> = [
        workspace.parent().unwrap().join("victim"),
        env.home.path().join("victim"),
        workspace.join("victim"),
    ]
    .iter()
    .map(|p| victim(p))
    .collect();
    std::fs::create_dir_all(workspace.join("myapp")).unwrap();
    let record = serde_json::json!({
        "id": "../../../../victim",
        "task_id": "t",
        "host": "local",
        "project": "myapp",
        "remote_mirror": "~/.local/share/codex-remote/workspace/myapp",
        "tree": { "dir": "~/.local/share/codex-remote/workspace/.codex-remote/myapp/runs/../../../../victim", "baseline": "0000000000000000000000000000000000000000" },
        "phase": "completed",
        "created_at": "2020-01-01T00:00:00Z",
        "updated_at": "2020-01-01T00:00:00Z",
        "applied_at": "2020-01-01T00:00:00Z",
        "remote_removed": false,
        "error": null
    });
    env.write(".codex-remote/runs/zz/run.json", &record.to_string());
    let out = env.run(&["--json", "runs", "--prune", "--older-than", "0"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let listed: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(listed["runs"], serde_json::json!([]), "{listed}");
    assert_eq!(listed["pruned"], serde_json::json!([]), "{listed}");
    for keep in &victims {
        assert_eq!(
            std::fs::read_to_string(keep).unwrap(),
            "precious\n",
            "{}",
            keep.display()
        );
    }
    // Asked for by its folder, the record is an error that says why.
    let out = env.run(&["diff", "zz"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("does not match its folder `zz`"),
        "{}",
        stderr(&out)
    );
    // Asked for by the id it claims, it is not a run id at all.
    let out = env.run(&["diff", "../../../../victim"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is not a run id"), "{}", stderr(&out));
}

#[test]
fn a_record_naming_another_workspace_is_followed_only_into_a_state_directory_of_ours() {
    let env = Env::new();
    let home = env.home.path();
    let record = |id: &str, mirror: &str, phase: &str| {
        let mut r = serde_json::json!({
            "id": id, "task_id": "t", "host": "local", "project": "myapp",
            "remote_mirror": mirror,
            "tree": { "dir": format!("{mirror}/../.codex-remote/myapp/trees/0/myapp"), "baseline": "0000000000000000000000000000000000000000", "slot": 0, "mirror": mirror, "run_id": id },
            "phase": phase, "created_at": "2020-01-01T00:00:00Z", "updated_at": "2020-01-01T00:00:00Z",
            "applied_at": "2020-01-01T00:00:00Z", "remote_removed": false, "error": null, "attempt": 1
        });
        if phase == "running" {
            r["applied_at"] = serde_json::Value::Null;
        }
        env.write(&format!(".codex-remote/runs/{id}/run.json"), &r.to_string());
    };
    // A run started with the home directory as workspace: its mirror is ~/myapp.
    record("home-run", "~/myapp", "completed");
    // A mirror that climbs is not followed: the configured workspace is used instead.
    record(
        "climbing-run",
        "~/.local/share/codex-remote/workspace/../../../../myapp",
        "completed",
    );
    // A running run whose workspace holds nothing of it.
    record("running-run", "~/elsewhere/myapp", "running");
    let victims: Vec<PathBuf> = [
        home.join("myapp"),
        home.join("victim"),
        // Another project's state beside it.
        home.join(".codex-remote/otherapp/trees/0"),
        // Where the climbing record would lead.
        home.join(".codex-remote/myapp/agents/climbing-run"),
        home.join("elsewhere"),
    ]
    .iter()
    .map(|p| victim(p))
    .collect();
    // What is the home run's own, under its workspace's state directory.
    let own = home.join(".codex-remote/myapp/agents/home-run/1");
    std::fs::create_dir_all(&own).unwrap();
    std::fs::write(own.join("events.jsonl"), "{}\n").unwrap();

    let out = env.run(&["--json", "runs", "--prune", "--older-than", "0"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let listed: serde_json::Value =
        serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
    assert_eq!(
        listed["pruned"],
        // (The running run's agent is nowhere: nothing works in its tree.)
        serde_json::json!(["climbing-run", "home-run", "running-run"]),
        "{listed}"
    );
    assert!(
        !own.exists(),
        "the run's own files were not released where it ran"
    );
    for keep in &victims {
        assert_eq!(
            std::fs::read_to_string(keep).unwrap(),
            "precious\n",
            "{}",
            keep.display()
        );
    }
    // Cancelling the run whose workspace holds nothing of it ends nothing and says so.
    let out = env.run(&["cancel", "running-run"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("found no agent of run `running-run`")
            && stderr(&out).contains("elsewhere/.codex-remote/myapp/agents/running-run/1"),
        "{}",
        stderr(&out)
    );
    let saved: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.project.join(".codex-remote/runs/running-run/run.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(saved["phase"], "running");
}

/// A directory under the sealed HOME with no project marker of its own.
fn bare_dir(env: &Env, relative: &str) -> PathBuf {
    let dir = env.home.path().join(relative);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "n\n").unwrap();
    dir
}

fn git(dir: &Path, args: &[&str]) {
    let status = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "commit.gpgSign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

fn push_from(env: &Env, cwd: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["push", "--host", "local"];
    args.extend_from_slice(extra);
    env.command(&args).current_dir(cwd).output().unwrap()
}

#[test]
fn an_empty_git_directory_above_does_not_widen_the_project() {
    let env = Env::new();
    let outer = env.home.path().join("tmp");
    std::fs::create_dir_all(outer.join(".git")).unwrap();
    std::fs::write(outer.join("id_ed25519"), "host key\n").unwrap();
    let cwd = bare_dir(&env, "tmp/work");
    let out = push_from(&env, &cwd, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("refusing to push {}", outer.display()))
            && err.contains("no commit")
            && err.contains("codex-remote init")
            && err.contains("--confirm-push"),
        "{err}"
    );
    assert!(!local_workspace(&env).exists());
    // `codex-remote init` anchors the project where the user is.
    let out = env.command(&["init"]).current_dir(&cwd).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = push_from(&env, &cwd, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // notes.txt and the .gitignore `init` wrote (never codex-remote.toml: it is the user's).
    assert!(
        stderr(&out).contains(&format!("project to push: {} (2 files,", cwd.display())),
        "{}",
        stderr(&out)
    );
    assert!(local_workspace(&env).join("work/notes.txt").is_file());
    assert!(!local_workspace(&env).join("work/id_ed25519").exists());
}

#[test]
fn a_brand_new_repository_in_the_working_directory_is_a_normal_project() {
    let env = Env::new();
    let cwd = bare_dir(&env, "fresh");
    git(&cwd, &["init", "-q"]);
    let out = push_from(&env, &cwd, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(local_workspace(&env).join("fresh/notes.txt").is_file());
}

#[test]
fn a_dotfiles_repository_in_home_is_refused() {
    let env = Env::new();
    let home = env.home.path();
    std::fs::write(home.join(".bashrc"), "# dotfiles\n").unwrap();
    git(home, &["init", "-q"]);
    git(home, &["add", ".bashrc"]);
    git(home, &["commit", "-qm", "dotfiles"]);
    let cwd = bare_dir(&env, "scratch");
    let out = push_from(&env, &cwd, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("it is your home directory"),
        "{}",
        stderr(&out)
    );
    assert!(!local_workspace(&env).exists());
}

#[test]
fn the_file_system_root_is_refused() {
    let env = Env::new();
    let out = push_from(&env, Path::new("/"), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("refusing to push /: it is the file system's root"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn pushes_above_the_limits_need_confirm_push() {
    let env = Env::new();
    for i in 0..5 {
        env.write(&format!("src/f{i}.txt"), "0123456789\n");
    }
    env.write(
        "codex-remote.toml",
        "[sync]\nmax_push_files = 3\nmax_push_bytes = 1000000\n",
    );
    let out = env.run(&["push", "--host", "local"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("5 files, ")
            && stderr(&out).contains("bytes is above the limit of 3 files or 1000000 bytes"),
        "{}",
        stderr(&out)
    );
    assert!(!local_workspace(&env).exists());
    env.write(
        "codex-remote.toml",
        "[sync]\nmax_push_files = 100\nmax_push_bytes = 20\n",
    );
    let out = env.run(&["push", "--host", "local"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("max_push_bytes"), "{}", stderr(&out));
    let out = env.run(&["push", "--host", "local", "--confirm-push"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(local_workspace(&env).join("myapp/src/f4.txt").is_file());
}

#[test]
fn a_checkpoint_outside_the_project_is_refused_before_anything_is_sent() {
    let env = Env::new();
    let outside = env.home.path().join("x.md");
    std::fs::write(&outside, "- [ ] Auth\n").unwrap();
    env.write("docs/escape.md", "");
    std::fs::remove_file(env.project.join("docs/escape.md")).unwrap();
    std::os::unix::fs::symlink(&outside, env.project.join("docs/escape.md")).unwrap();
    for file in [
        "../x.md".to_string(),
        outside.display().to_string(),
        "docs/escape.md".to_string(),
    ] {
        task(
            &env,
            &format!("checkpoint:\n  file: {file:?}\n  item: Auth\n"),
        );
        let out = env.run(&["run", "task.yaml", "--host", "local"]);
        assert_eq!(out.status.code(), Some(2), "{file}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("is outside the project"),
            "{file}: {}",
            stderr(&out)
        );
        assert!(
            !local_workspace(&env).exists(),
            "{file}: something was sent"
        );
        assert!(!env.project.join(".codex-remote/runs").exists());
    }
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "- [ ] Auth\n");
}

#[test]
fn ticking_a_symlinked_spec_keeps_the_link() {
    let env = Env::new();
    env.write("specs/real.md", "# Spec\n- [ ] Auth\n");
    std::os::unix::fs::symlink("specs/real.md", env.project.join("SPEC.md")).unwrap();
    let out = env.run(&["checkpoint", "SPEC.md", "--item", "Auth"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(env.project.join("SPEC.md").is_symlink());
    assert_eq!(
        std::fs::read_to_string(env.project.join("specs/real.md")).unwrap(),
        "# Spec\n- [x] Auth ← Completed via Codex\n"
    );
}

#[test]
fn a_checkpoint_run_id_is_a_name() {
    let env = Env::new();
    let spec = env.write("SPEC.md", "- [ ] Auth\n");
    let out = env.run(&[
        "checkpoint",
        "SPEC.md",
        "--item",
        "Auth",
        "--run",
        "r1)\n- [ ] injected (",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--run"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&spec).unwrap(), "- [ ] Auth\n");
}
