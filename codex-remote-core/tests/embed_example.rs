//! `examples/embed.rs` against a real sshd, the real Codex CLI and the scripted model server:
//! the patch on stdout, one summary line on stderr, nothing applied, nothing left on the host,
//! and a non-zero exit on failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use codex_remote_testkit::model_server::{codex_binary, FakeModelServer, Reply};
use codex_remote_testkit::{sshd::ALIAS, Sshd};

/// The example's binary, brought up to date (a no-op when `cargo test` built it already).
fn example() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "-q",
            "-p",
            "codex-remote-core",
            "--example",
            "embed",
        ])
        .status()
        .unwrap();
    assert!(status.success(), "building the example");
    let deps = std::env::current_exe().unwrap();
    deps.parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples/embed")
}

#[test]
fn docs_embedding_walks_through_the_example_as_it_is() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(root.join("examples/embed.rs")).unwrap();
    let docs = std::fs::read_to_string(root.join("../docs/embedding.md")).unwrap();
    let body = &example[example.find("use codex_remote_core").unwrap()..];
    assert!(
        docs.contains(body),
        "docs/embedding.md shows a stale copy of examples/embed.rs"
    );
    assert!(
        example.lines().count() <= 30,
        "the example stays within 30 lines"
    );
}

#[test]
fn the_embed_example_prints_the_patch_applies_nothing_and_cleans_the_host() {
    let Some(codex) = codex_binary() else { return };
    let Some(sshd) = Sshd::start_or_skip() else {
        return;
    };
    let server = FakeModelServer::start(vec![
        Reply::exec("c1", "printf 'hi\\n' > hi.txt"),
        Reply::message("done"),
    ]);
    let codex_home = server.write_codex_home(&sshd.dir().join("codex-home"));
    let home = tempfile::tempdir().unwrap();
    let project = home.path().join("app");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("README.md"), "# app\n").unwrap();
    let workspace = sshd.dir().join("ws");
    std::fs::write(
        project.join("codex-remote.toml"),
        format!(
            "[hosts.{ALIAS}]\nworkspace = \"{}\"\nshell_init = \"export PATH='{}':$PATH\"\n[hosts.{ALIAS}.env]\nCODEX_HOME = \"{}\"\n",
            workspace.display(),
            codex.parent().unwrap().display(),
            codex_home.display()
        ),
    )
    .unwrap();
    std::fs::write(
        project.join("task.yaml"),
        "id: hi\ntitle: Say hi\ntype: quick-fix\nrequirements: [Write hi.txt]\n",
    )
    .unwrap();
    let example = example();
    let run = |args: &[&str]| {
        Command::new(&example)
            .args(args)
            .current_dir(&project)
            .env("HOME", home.path())
            .env("CODEX_REMOTE_SSH_CONFIG", sshd.ssh_config())
            .env_remove("CODEX_REMOTE_CONFIG")
            .env_remove("CODEX_REMOTE_HOST")
            .output()
            .unwrap()
    };

    let out = run(&["task.yaml", ALIAS]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("diff --git a/hi.txt b/hi.txt\n") && stdout.contains("+hi\n"),
        "{stdout}"
    );
    assert_eq!(stderr.lines().count(), 1, "one summary line: {stderr}");
    assert!(stderr.contains("1 file(s) changed"), "{stderr}");
    assert!(!project.join("hi.txt").exists(), "nothing applied");
    let runs = workspace.join(".codex-remote/app/runs");
    let left: Vec<_> = std::fs::read_dir(&runs)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "run trees left on the host: {left:?}");

    let out = run(&["task.yaml", "no-such-host"]);
    assert!(!out.status.success(), "a failure exits non-zero");
    // Errors read as the command's do: the message (and its hint), never Rust's debug form.
    let out = run(&["missing.yaml", ALIAS]);
    assert!(!out.status.success(), "a bad task file exits non-zero");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("missing.yaml"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("InputError") && !stderr.contains(" { "),
        "{stderr}"
    );
    let out = run(&["task.yaml"]);
    assert!(!out.status.success(), "a usage error exits non-zero");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: usage: embed TASK_FILE HOST\n"
    );
}
