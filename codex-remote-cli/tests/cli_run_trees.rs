//! Where the agent works, end to end: a real sshd, the real Codex CLI under its sandbox, a
//! scripted model that follows the instruction, git used inside the run's tree.

mod common;

use codex_remote_testkit::model_server::{request_user_texts, FakeModelServer, Reply};
use common::{setup_with, stderr, stdout};

/// How many commands Codex has run for this conversation so far.
fn step(request: &serde_json::Value) -> usize {
    request["input"].as_array().map_or(0, |items| {
        items
            .iter()
            .filter(|i| i["type"] == "function_call_output")
            .count()
    })
}

fn summary_of(out: &std::process::Output) -> serde_json::Value {
    let text = stdout(out);
    let last = text.lines().last().unwrap_or_default();
    let summary: serde_json::Value = serde_json::from_str(last).unwrap_or_default();
    assert_eq!(summary["event"], "summary", "{text}\n{}", stderr(out));
    summary
}

/// Every command the agent ran succeeded (a git write failing on a read-only `.git` would not).
fn assert_commands_succeeded(s: &common::Setup, run_id: &str) {
    let events = std::fs::read_to_string(
        s.env
            .project
            .join(format!(".codex-remote/runs/{run_id}/events.jsonl")),
    )
    .unwrap();
    let mut ran = 0;
    for line in events.lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        let item = &event["item"];
        if event["type"] == "item.completed" && item["type"] == "command_execution" {
            ran += 1;
            assert_eq!(item["exit_code"], 0, "{}", item["aggregated_output"]);
        }
    }
    assert!(ran > 0, "{events}");
}

#[test]
fn the_agent_follows_the_working_directory_and_git_writes_work_in_its_tree() {
    // The model does what the instruction's working-directory line says: a path is cd'ed to,
    // the current directory needs nothing.
    let server = FakeModelServer::start_routed(|request| {
        let instruction = request_user_texts(request).join("\n");
        let dir = instruction
            .lines()
            .find_map(|l| l.strip_prefix("- Working directory: "))
            .unwrap_or_default()
            .to_string();
        let cd = if dir.starts_with('/') || dir.starts_with('~') {
            format!("cd {dir} && ")
        } else {
            String::new()
        };
        let steps = [
            // B7: git writes under the default sandbox (add, mv, commit, a branch, stash and pop).
            format!("{cd}set -e; printf 'new\\n' > added.txt; git add added.txt; git mv src/app.ts src/main.ts; git commit -qm 'agent work'; git checkout -q -b feature; printf 'more\\n' >> added.txt; git stash -q; git stash pop -q; git status --short"),
            // A5: a nested repository, committed and not.
            format!("{cd}set -e; mkdir -p lib/deeper; cd lib; git init -q; printf 'nested\\n' > a.txt; git add a.txt; git commit -qm nested; cd deeper; git init -q; printf 'deeper\\n' > b.txt"),
        ];
        match steps.get(step(request)) {
            Some(cmd) => Reply::exec(&format!("c{}", step(request)), cmd),
            None => Reply::message("done"),
        }
    });
    let Some(s) = setup_with(server, true) else {
        return;
    };
    let out = s.env.run(&[
        "run",
        "--json",
        "--prompt",
        "add a file with git",
        "--type",
        "quick-fix",
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let summary = summary_of(&out);
    assert_commands_succeeded(&s, summary["run_id"].as_str().unwrap());
    assert_eq!(summary["applied"], true);
    assert!(
        summary["warnings"].as_array().is_none_or(|w| w.is_empty()),
        "{summary}"
    );
    let read = |p: &str| std::fs::read_to_string(s.env.project.join(p)).ok();
    assert_eq!(read("added.txt").as_deref(), Some("new\nmore\n"));
    assert_eq!(
        read("src/main.ts").as_deref(),
        Some("export const a = 1;\n")
    );
    assert_eq!(read("src/app.ts"), None, "git mv came back as a rename");
    assert_eq!(read("lib/a.txt").as_deref(), Some("nested\n"));
    assert_eq!(read("lib/deeper/b.txt").as_deref(), Some("deeper\n"));

    // B6: the instruction names no host path (never the mirror) and Codex ran in the tree.
    let mirror = s.sshd.dir().join("ws/myapp").display().to_string();
    let instruction = s
        .server
        .user_texts()
        .into_iter()
        .find(|t| t.starts_with("TASK: "))
        .unwrap();
    assert!(
        instruction.contains("- Working directory: the current directory"),
        "{instruction}"
    );
    assert!(!instruction.contains(&mirror), "{instruction}");
    assert!(!s.sshd.dir().join("ws/myapp/added.txt").exists());
}

#[test]
fn changes_outside_the_tree_and_claimed_changes_that_are_missing_are_reported() {
    // The mirror's path is known once the sshd exists, after the server starts.
    let leak_target = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let target = leak_target.clone();
    let server = FakeModelServer::start_routed(move |request| {
        let mirror = target.lock().unwrap().clone();
        let steps = [
            // Codex reports this as a file_change item.
            "apply_patch <<'EOF'\n*** Begin Patch\n*** Add File: hello.txt\n+hello\n*** End Patch\nEOF"
                .to_string(),
            // Then the edit is stashed away and a file written in the host's mirror.
            format!("git stash -u -q && printf 'leak\\n' > '{mirror}/leak.txt'"),
        ];
        match steps.get(step(request)) {
            Some(cmd) => Reply::exec(&format!("c{}", step(request)), cmd),
            None => Reply::message("Created hello.txt"),
        }
    });
    let Some(s) = setup_with(server, true) else {
        return;
    };
    *leak_target.lock().unwrap() = s.sshd.dir().join("ws/myapp").display().to_string();
    let out = s.env.run(&[
        "run",
        "--json",
        "--prompt",
        "create hello.txt",
        "--type",
        "quick-fix",
        "--sandbox",
        "danger-full-access",
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let summary = summary_of(&out);
    assert_eq!(summary["files"].as_array().map(Vec::len), Some(0));
    let warnings = summary["warnings"].as_array().cloned().unwrap_or_default();
    let kinds: Vec<&str> = warnings.iter().filter_map(|w| w["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        ["changed-outside-tree", "claimed-changes-missing"],
        "{summary}"
    );
    assert_eq!(warnings[0]["paths"], serde_json::json!(["leak.txt"]));
    assert!(warnings[1]["paths"][0]
        .as_str()
        .unwrap()
        .ends_with("hello.txt"));
    // The run record keeps them.
    let run_id = summary["run_id"].as_str().unwrap();
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            s.env
                .project
                .join(format!(".codex-remote/runs/{run_id}/run.json")),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(record["warnings"], summary["warnings"]);
    // Its tree stays on the host for a look (the stash is there), held by the run.
    assert_eq!(record["remote_removed"], false);
    let tree = std::path::PathBuf::from(record["tree"]["dir"].as_str().unwrap());
    assert!(tree.join(".git/refs/stash").exists(), "{}", tree.display());
}
