//! `plan`, `schema`, `init`, `completions` and input errors, through the real binary.

mod common;

use common::{examples_dir, redact, stderr, stdout, Env};

#[test]
fn plan_works_on_every_example_and_snapshots_its_output() {
    let env = Env::new();
    let mut names: Vec<String> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".json"))
        .collect();
    names.sort();
    assert_eq!(
        names.len(),
        7,
        "one example per task type plus the seed's: {names:?}"
    );
    for name in names {
        let path = examples_dir().join(&name);
        let text = env.run(&["plan", path.to_str().unwrap()]);
        assert!(text.status.success(), "{name}: {}", stderr(&text));
        insta::assert_snapshot!(format!("plan_text_{name}"), stdout(&text));
        let json = env.run(&["plan", "--json", path.to_str().unwrap()]);
        assert!(json.status.success(), "{name}: {}", stderr(&json));
        let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        insta::assert_json_snapshot!(format!("plan_json_{name}"), value);
    }
}

#[test]
fn model_precedence_is_flag_task_config_default() {
    let env = Env::new();
    env.write(
        "codex-remote.toml",
        "[models]\nquick-fix = \"from-config\"\ndebug = { reasoning_effort = \"high\" }\n",
    );
    let plan = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["plan", "--json"];
        all.extend_from_slice(args);
        let out = env.run(&all);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let fix = examples_dir().join("quick-fix.yaml");
    let fix = fix.to_str().unwrap();
    assert_eq!(plan(&[fix])["model"], "from-config");
    assert_eq!(plan(&[fix])["model_source"], "config");
    assert_eq!(plan(&[fix, "--model", "from-flag"])["model_source"], "flag");
    let with_model = env.write(
        "t.yaml",
        "id: t\ntitle: T\ntype: quick-fix\nmodel: from-task\nrequirements: [x]\n",
    );
    let v = plan(&[with_model.to_str().unwrap()]);
    assert_eq!(
        (v["model"].as_str(), v["model_source"].as_str()),
        (Some("from-task"), Some("task"))
    );
    let debug = examples_dir().join("debug.yaml");
    let v = plan(&[debug.to_str().unwrap()]);
    assert_eq!(
        (
            v["model"].as_str(),
            v["model_source"].as_str(),
            v["reasoning_effort"].as_str()
        ),
        (Some("gpt-5.1-codex-max"), Some("default"), Some("high"))
    );
}

#[test]
fn plan_reads_stdin_and_one_off_prompts() {
    let env = Env::new();
    let mut child = env
        .command(&["plan", "--json", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"{\"id\":\"s\",\"title\":\"From stdin\",\"type\":\"scaffold\",\"requirements\":[\"x\"]}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["title"], "From stdin");

    env.write("README.md", "# Readme with a typo\n");
    let out = env.run(&[
        "plan",
        "--prompt",
        "Fix the typo in README",
        "--type",
        "quick-fix",
        "--file",
        "README.md",
        "--host",
        "penguin",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    insta::assert_snapshot!(stdout(&out));
}

#[test]
fn hosts_come_from_config_or_are_ssh_destinations() {
    let env = Env::new();
    env.write(
        "codex-remote.toml",
        "default_host = \"penguin\"\n[hosts.penguin]\nssh = \"me@100.116.204.95\"\nshell_init = \"source ~/.config/nvm/nvm.sh\"\n",
    );
    let task = examples_dir().join("quick-fix.yaml");
    let out = env.run(&["plan", "--json", task.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["host"].as_str(), v["ssh_destination"].as_str()),
        (Some("penguin"), Some("me@100.116.204.95"))
    );
    assert_eq!(v["remote_dir"], "~/workspace/myapp");
    let out = env.run(&[
        "plan",
        "--json",
        "--host",
        "ssh://u@box:2222",
        task.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["host_kind"].as_str(), v["ssh_destination"].as_str()),
        (Some("ssh"), Some("ssh://u@box:2222"))
    );
    let out =
        env.var("CODEX_REMOTE_HOST", "local")
            .run(&["plan", "--json", task.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["host"], "local",
        "the environment overrides the project file"
    );
}

/// Bad input exits 2 and says file, line, column, field and a fix.
#[test]
fn bad_task_files_and_configs_are_located() {
    let env = Env::new();
    let cases: Vec<(&str, &str, &str)> = vec![
        (
            "unknown_type",
            "t.yaml",
            "id: t\ntitle: T\ntype: refactr\nrequirements: [x]\n",
        ),
        (
            "unknown_field",
            "t.yaml",
            "id: t\ntitle: T\ntype: feature\nrequirements: [x]\nverfication: [y]\n",
        ),
        (
            "empty_requirements",
            "t.yaml",
            "id: t\ntitle: T\ntype: feature\nrequirements: []\n",
        ),
        (
            "wrong_type",
            "t.yaml",
            "id: t\ntitle: T\ntype: feature\nscope:\n  files: src/\nrequirements: [x]\n",
        ),
        (
            "missing_field",
            "t.json",
            "{\n  \"id\": \"t\",\n  \"type\": \"feature\",\n  \"requirements\": [\"x\"]\n}\n",
        ),
        (
            "bad_json",
            "t.json",
            "{\n  \"id\": \"t\",\n  \"title\": \"T\",,\n}\n",
        ),
        ("bad_extension", "t.txt", "id: t\n"),
        (
            "bad_id",
            "t.yaml",
            "id: \"a/b\"\ntitle: T\ntype: feature\nrequirements: [x]\n",
        ),
    ];
    for (name, file, contents) in cases {
        let path = env.write(file, contents);
        let out = env.run(&["plan", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        insta::assert_snapshot!(format!("task_error_{name}"), redact(&env, &stderr(&out)));
    }
    std::fs::remove_file(env.project.join("t.yaml")).unwrap();
    let task = examples_dir().join("quick-fix.yaml");
    let configs = [
        ("unknown_key", "[hosts.penguin]\nworkspac = \"~/w\"\n"),
        (
            "hostile_destination",
            "[hosts.penguin]\nssh = \"-oProxyCommand=touch /tmp/pwned\"\n",
        ),
        ("bad_glob", "[restricted]\nfiles = [\"a[\"]\n"),
        ("bad_toml", "default_host = \n"),
        ("bad_model_table", "[models]\nrefactr = \"x\"\n"),
    ];
    for (name, contents) in configs {
        env.write("codex-remote.toml", contents);
        let out = env.run(&["plan", task.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        insta::assert_snapshot!(format!("config_error_{name}"), redact(&env, &stderr(&out)));
    }
}

#[test]
fn json_errors_are_objects_on_stdout() {
    let env = Env::new();
    let path = env.write(
        "t.yaml",
        "id: t\ntitle: T\ntype: refactr\nrequirements: [x]\n",
    );
    let out = env.run(&["plan", "--json", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["error"]["location"]["source"] = "[t.yaml]".into();
    v["error"]["message"] = redact(&env, v["error"]["message"].as_str().unwrap()).into();
    insta::assert_json_snapshot!(v);
}

#[test]
fn schemas_are_published_and_current() {
    let env = Env::new();
    for kind in ["task", "config", "plan", "events"] {
        let out = env.run(&["schema", kind]);
        assert!(out.status.success());
        let generated: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let published_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../docs/schema/{kind}.schema.json"));
        let published: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&published_path).unwrap_or_default())
                .unwrap_or(serde_json::Value::Null);
        assert_eq!(
            generated, published,
            "docs/schema/{kind}.schema.json is stale: run `cargo run -q -- schema {kind} > docs/schema/{kind}.schema.json`"
        );
    }
    let task_schema: serde_json::Value =
        serde_json::from_slice(&env.run(&["schema", "task"]).stdout).unwrap();
    let types = task_schema.to_string();
    for t in [
        "refactor",
        "migration",
        "test-gen",
        "feature",
        "debug",
        "quick-fix",
        "scaffold",
    ] {
        assert!(types.contains(&format!("\"{t}\"")), "schema lists {t}");
    }
}

#[test]
fn init_writes_a_starter_file_and_refuses_to_overwrite() {
    let env = Env::new();
    std::fs::remove_file(env.project.join("codex-remote.toml")).unwrap();
    let out = env.run(&["init"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let written = std::fs::read_to_string(env.project.join("codex-remote.toml")).unwrap();
    assert!(written.contains("[hosts.penguin]"));
    std::fs::write(env.project.join("codex-remote.toml"), "# mine\n").unwrap();
    let out = env.run(&["init"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(env.project.join("codex-remote.toml")).unwrap(),
        "# mine\n",
        "untouched"
    );
    let out = env.run(&["init", "--user"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(env
        .home
        .path()
        .join(".config/codex-remote/config.toml")
        .exists());
}

#[test]
fn completions_are_printed() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = env.run(&["completions", shell]);
        assert!(out.status.success());
        assert!(stdout(&out).contains("codex-remote"));
    }
}

#[test]
fn usage_errors_exit_2() {
    let env = Env::new();
    assert_eq!(env.run(&["plan"]).status.code(), Some(2));
    let out = env.run(&["plan", "--prompt", "x"]);
    assert_eq!(out.status.code(), Some(2), "--prompt needs --type");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs --type TYPE, one of: refactor, migration, test-gen, feature, debug, quick-fix, scaffold"),
        "{err}"
    );
    // An empty prompt points at --prompt, not at a task file's field.
    let out = env.run(&["plan", "--prompt", "", "--type", "debug"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--prompt is empty"), "{err}");
    assert!(!err.contains("title"), "{err}");
    assert_eq!(env.run(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        env.run(&[
            "--config",
            "/nonexistent/c.toml",
            "plan",
            "--prompt",
            "x",
            "--type",
            "debug"
        ])
        .status
        .code(),
        Some(2)
    );
}

#[test]
fn plan_json_has_the_checkpoint_and_schema_plan_has_type_and_model() {
    let env = Env::new();
    let task = env.write(
        "task.yaml",
        "id: t\ntitle: T\ntype: feature\nrequirements: [do it]\ncheckpoint:\n  file: SPEC.md\n  item: Do it\n",
    );
    let out = env.run(&["plan", "--json", task.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["checkpoint"],
        serde_json::json!({ "file": "SPEC.md", "item": "Do it" })
    );
    let out = env.run(&["plan", "--json", "--prompt", "x", "--type", "debug"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["checkpoint"].is_null(), "{v}");

    let out = env.run(&["schema", "plan"]);
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let entry = &schema["$defs"]["TaskPlanEntry"]["properties"];
    assert!(entry["model"].is_object(), "{schema}");
    let task_type = entry["type"].to_string();
    for name in ["refactor", "quick-fix", "test-gen"] {
        assert!(
            task_type.contains(name) || schema.to_string().contains(name),
            "{schema}"
        );
    }
    // What the schema promises, a plan accepts: an entry with `type` and `model` runs with them.
    let plan = env.write(
        "task_plan.json",
        "[{\"task_id\":\"a\",\"executor\":\"codex-remote\",\"instruction\":\"TASK: x\",\"status\":\"pending\",\"type\":\"quick-fix\",\"model\":\"gpt-x\"}]\n",
    );
    let (task, _) = codex_remote_core::taskplan::task_spec(&plan, "a").unwrap();
    assert_eq!(task.task_type.as_str(), "quick-fix");
    assert_eq!(task.model.as_deref(), Some("gpt-x"));
}
