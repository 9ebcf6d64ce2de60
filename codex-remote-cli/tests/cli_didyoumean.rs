//! Did you mean: misspelt host names and task fields get a suggestion; `--file` paths are taken
//! relative to the current directory (a subdirectory of the project) and checked to exist.

mod common;

use common::{redact, stderr, Env};

#[test]
fn a_misspelt_host_is_refused_with_the_configured_name_it_resembles() {
    let env = Env::new();
    env.write(
        "codex-remote.toml",
        "[hosts.penguin]\nssh = \"me@100.116.204.95\"\n",
    );
    let args = ["plan", "--prompt", "x", "--type", "quick-fix", "--host"];
    let out = env.run(&[&args[..], &["pengiun"]].concat());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    insta::assert_snapshot!("misspelt_host", stderr(&out));
    // A name far from every configured one is an ssh destination, as before.
    let out = env.run(&[&args[..], &["buildfarm"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    // So is one the user's ssh config names, however close.
    env.write("ssh_config", "Host pengiun\n  HostName 127.0.0.1\n");
    let out = env
        .command(&[&args[..], &["pengiun"]].concat())
        .env("CODEX_REMOTE_SSH_CONFIG", env.project.join("ssh_config"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_misspelt_task_field_gets_the_field_it_resembles() {
    let env = Env::new();
    let task = env.write(
        "task.yaml",
        "id: t\ntitle: T\ntype: feature\nrequirments:\n  - do it\n",
    );
    let out = env.run(&["plan", task.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!("misspelt_task_field", redact(&env, &stderr(&out)));
}

#[test]
fn file_paths_are_relative_to_the_current_directory_and_must_exist() {
    let env = Env::new();
    env.write("src/app.ts", "export const a = 1;\n");
    let src = env.project.join("src");
    let plan = |file: &str| {
        env.command(&[
            "plan",
            "--json",
            "--prompt",
            "Fix it",
            "--type",
            "quick-fix",
            "--file",
            file,
        ])
        .current_dir(&src)
        .output()
        .unwrap()
    };
    let out = plan("app.ts");
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let instruction = v["instruction"].as_str().unwrap();
    assert!(instruction.contains("src/app.ts"), "{instruction}");
    let out = plan("*.ts");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["instruction"].as_str().unwrap().contains("src/*.ts"));

    let out = env
        .command(&[
            "plan",
            "--prompt",
            "Fix it",
            "--type",
            "quick-fix",
            "--file",
            "ap.ts",
        ])
        .current_dir(&src)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!("missing_file", stderr(&out));
}
