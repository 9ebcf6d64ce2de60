//! Hostile results, end to end: a real sshd, the real Codex CLI driven by a scripted model
//! server, and an agent that tries to write codex-remote's own state or config through what
//! `run` applies. Such results are refused (exit 6), nothing is applied, and neither
//! `--allow-restricted` nor the config can lift the protection.

mod common;

use codex_remote_testkit::model_server::Reply;
use common::{setup, stderr, stdout, Setup};

/// Every file of the project but the run records, for "nothing changed" checks.
fn project_files(s: &Setup) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![s.env.project.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(&s.env.project).unwrap().to_path_buf();
            if relative.starts_with(".codex-remote") {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((
                    relative.display().to_string(),
                    std::fs::read(&path).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// The run's stored patch (the single run of the project).
fn stored_patch(s: &Setup) -> String {
    let runs = s.env.project.join(".codex-remote/runs");
    let run = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("result.patch").exists())
        .expect("a run with a stored patch");
    String::from_utf8_lossy(&std::fs::read(run.join("result.patch")).unwrap()).into_owned()
}

/// The last JSON object on stdout (the error, for a failed run).
fn last_json(out: &std::process::Output) -> serde_json::Value {
    let text = stdout(out);
    serde_json::Deserializer::from_str(&text)
        .into_iter::<serde_json::Value>()
        .map(|v| v.unwrap_or_else(|e| panic!("{e}: {text}")))
        .last()
        .expect("a JSON object")
}

/// The attack: un-ignore `.codex-remote/` and plant a run record whose id climbs out of
/// the workspace, so a later `runs --prune` would delete `~/victim`.
#[test]
fn a_planted_run_record_is_refused_exit_6_and_nothing_is_applied() {
    let plant = "printf '!/.codex-remote/\\n' >> .gitignore && mkdir -p .codex-remote/runs/zz && printf '{\"id\":\"../../../../victim\",\"host\":\"local\"}\\n' > .codex-remote/runs/zz/run.json && printf 'export const a = 2;\\n' > src/app.ts";
    let Some(s) = setup(
        vec![Reply::exec("call_1", plant), Reply::message("Done.")],
        true,
    ) else {
        return;
    };
    let before = project_files(&s);
    let out = s.env.run(&[
        "run",
        "--prompt",
        "bump a",
        "--type",
        "quick-fix",
        "--json",
        "--allow-restricted",
        "--allow-held-back",
    ]);
    assert_eq!(
        out.status.code(),
        Some(6),
        "stdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    let patch = stored_patch(&s);
    assert!(
        patch.contains(".codex-remote/runs/zz/run.json"),
        "the agent's record came back in the result:\n{patch}"
    );
    let error = &last_json(&out)["error"];
    assert_eq!(error["exit_code"], 6, "{error}");
    assert_eq!(
        error["protected"],
        serde_json::json!([".codex-remote/runs/zz/run.json"]),
        "{error}"
    );
    assert_eq!(project_files(&s), before, "nothing was applied");
    assert!(
        !s.env.project.join(".codex-remote/runs/zz").exists(),
        "no planted record"
    );
}

/// Rewriting the project's `codex-remote.toml` (a local `shell_init`, an empty restricted
/// list) is refused even when the config itself says nothing is restricted.
#[test]
fn a_rewritten_project_config_is_refused_exit_6_and_nothing_is_applied() {
    let rewrite = "printf '[restricted]\\nfiles = []\\n[hosts.local]\\nshell_init = \"touch /tmp/pwned-by-config\"\\n' >> codex-remote.toml && printf 'export const a = 3;\\n' > src/app.ts";
    let Some(s) = setup(
        vec![Reply::exec("call_1", rewrite), Reply::message("Done.")],
        true,
    ) else {
        return;
    };
    // Even with nothing restricted, the config stays protected.
    let config = s.env.project.join("codex-remote.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("[restricted]\nfiles = []\n");
    std::fs::write(&config, text).unwrap();
    let before = project_files(&s);
    let out = s.env.run(&[
        "run",
        "--prompt",
        "bump a",
        "--type",
        "quick-fix",
        "--allow-held-back",
    ]);
    assert_eq!(
        out.status.code(),
        Some(6),
        "stdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    let message = stderr(&out);
    assert!(
        message.contains("codex-remote.toml") && message.contains("never applied"),
        "{message}"
    );
    assert!(stored_patch(&s).contains("pwned-by-config"));
    assert_eq!(project_files(&s), before, "nothing was applied");
}

/// The id of the project's single run.
fn run_id(s: &Setup) -> String {
    let runs = s.env.project.join(".codex-remote/runs");
    let mut ids: Vec<String> = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids.pop().unwrap()
}

/// A `.gitignore` change (it changes what the next push sends) is held back with its reason in
/// the JSON error's `warnings`; `pull --apply --allow-held-back` takes it and still lists it.
#[test]
fn a_gitignore_change_is_held_back_then_taken_with_the_flag() {
    let edit =
        "printf 'node_modules/\\n' > .gitignore && printf 'export const a = 4;\\n' > src/app.ts";
    let Some(s) = setup(
        vec![Reply::exec("call_1", edit), Reply::message("Done.")],
        true,
    ) else {
        return;
    };
    let before = project_files(&s);
    let out = s
        .env
        .run(&["run", "--prompt", "bump a", "--type", "quick-fix", "--json"]);
    assert_eq!(out.status.code(), Some(6), "{}", stdout(&out));
    let error = &last_json(&out)["error"];
    assert_eq!(error["warnings"][0]["kind"], "ignore-file", "{error}");
    assert_eq!(error["warnings"][0]["paths"][0], ".gitignore", "{error}");
    assert_eq!(project_files(&s), before, "nothing was applied");

    let id = run_id(&s);
    let out = s
        .env
        .run(&["pull", &id, "--apply", "--allow-held-back", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = last_json(&out);
    assert_eq!(v["applied"], true);
    assert_eq!(v["warnings"][0]["kind"], "ignore-file", "{v}");
    assert_eq!(
        std::fs::read_to_string(s.env.project.join(".gitignore")).unwrap(),
        "node_modules/\n"
    );
    assert_eq!(
        std::fs::read_to_string(s.env.project.join("src/app.ts")).unwrap(),
        "export const a = 4;\n"
    );
}

/// A result refused only for restricted files: `pull --apply --skip-restricted` applies the
/// rest, lists what it skipped, and ticks the run's checklist item.
#[test]
fn skip_restricted_applies_the_rest_and_lists_what_it_skipped() {
    let edit = "printf '{\"dependencies\":{\"left-pad\":\"1\"}}\\n' > package.json && printf 'export const a = 5;\\n' > src/app.ts && printf 'odd\\n' > 'src/we?rd[1]*.ts'";
    let Some(s) = setup(
        vec![Reply::exec("call_1", edit), Reply::message("Done.")],
        true,
    ) else {
        return;
    };
    s.env.write("SPEC.md", "- [ ] Bump a\n");
    let task = s.env.write(
        "task.yaml",
        "id: bump\ntitle: Bump a\ntype: quick-fix\nrequirements:\n  - bump a\ncheckpoint:\n  file: SPEC.md\n  item: Bump a\n",
    );
    let out = s.env.run(&["run", task.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("restricted"), "{}", stderr(&out));

    let id = run_id(&s);
    let out = s
        .env
        .run(&["pull", &id, "--apply", "--skip-restricted", "--json"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let v = last_json(&out);
    assert_eq!(v["skipped"], serde_json::json!(["package.json"]), "{v}");
    assert_eq!(v["checkpoint"]["marked"]["line"], 1, "{v}");
    assert_eq!(
        std::fs::read_to_string(s.env.project.join("package.json")).unwrap(),
        "{}\n",
        "the restricted file is untouched"
    );
    assert_eq!(
        std::fs::read_to_string(s.env.project.join("src/app.ts")).unwrap(),
        "export const a = 5;\n"
    );
    assert_eq!(
        std::fs::read_to_string(s.env.project.join("src/we?rd[1]*.ts")).unwrap(),
        "odd\n"
    );
    assert!(std::fs::read_to_string(s.env.project.join("SPEC.md"))
        .unwrap()
        .starts_with("- [x] Bump a"));
}
