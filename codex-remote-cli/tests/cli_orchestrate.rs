//! `orchestrate` end to end: real sshd, real Codex CLI, a routed model server so that concurrent
//! runs each get their own conversation.

mod common;

use codex_remote_testkit::model_server::{write_file_server, FakeModelServer};
use common::{setup_with, stderr, stdout, Setup};

fn router() -> FakeModelServer {
    write_file_server()
}

fn write_plan(s: &Setup, tasks: &[(&str, &str)]) -> std::path::PathBuf {
    let mut entries: Vec<serde_json::Value> = tasks
        .iter()
        .map(|(id, instruction)| serde_json::json!({ "task_id": id, "executor": "codex-remote", "instruction": instruction, "status": "pending" }))
        .collect();
    entries.push(serde_json::json!({ "task_id": "by-hand", "executor": "human", "status": "pending", "note": "keep me" }));
    s.env.write(
        "task_plan.json",
        &serde_json::to_string_pretty(&serde_json::json!({ "tasks": entries })).unwrap(),
    )
}

fn plan_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn runs_every_pending_entry_and_keeps_statuses_true() {
    let Some(s) = setup_with(router(), true) else {
        return;
    };
    let plan = write_plan(
        &s,
        &[
            ("t1", "TASK: WRITE one.txt"),
            ("t2", "TASK: WRITE two.txt"),
            ("t3", "TASK: WRITE three.txt"),
        ],
    );
    let out = s
        .env
        .run(&["orchestrate", plan.to_str().unwrap(), "--parallel", "3"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    for name in ["one.txt", "two.txt", "three.txt"] {
        assert_eq!(
            std::fs::read_to_string(s.env.project.join(name)).unwrap(),
            format!("{name}\n")
        );
    }
    let v = plan_json(&plan);
    for i in 0..3 {
        assert_eq!(v["tasks"][i]["status"], "completed", "{v}");
        assert!(v["tasks"][i]["run_id"].is_string());
    }
    assert_eq!(v["tasks"][3]["status"], "pending");
    assert_eq!(v["tasks"][3]["note"], "keep me");
}

#[test]
fn a_failing_task_does_not_stop_the_others_and_exits_1() {
    let Some(s) = setup_with(router(), true) else {
        return;
    };
    let plan = write_plan(
        &s,
        &[("ok", "TASK: WRITE ok.txt"), ("bad", "TASK: FAIL please")],
    );
    let out = s.env.run(&[
        "orchestrate",
        plan.to_str().unwrap(),
        "--parallel",
        "2",
        "--retries",
        "0",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let v = plan_json(&plan);
    assert_eq!(v["tasks"][0]["status"], "completed");
    assert_eq!(v["tasks"][1]["status"], "failed");
    assert!(
        v["tasks"][1]["error"]
            .as_str()
            .unwrap()
            .contains("not logged in"),
        "{v}"
    );
    assert!(
        v["tasks"][1]["hint"]
            .as_str()
            .unwrap()
            .contains("codex login"),
        "the advice is kept apart: {v}"
    );
    assert!(s.env.project.join("ok.txt").exists());
}

#[test]
fn killed_mid_plan_and_started_again_every_task_completes_exactly_once() {
    let Some(s) = setup_with(router(), true) else {
        return;
    };
    s.server.set_delay(std::time::Duration::from_millis(600));
    let tasks: Vec<(String, String)> = (1..=4)
        .map(|i| (format!("t{i}"), format!("TASK: WRITE f{i}.txt")))
        .collect();
    let refs: Vec<(&str, &str)> = tasks
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let plan = write_plan(&s, &refs);
    let mut child = s
        .env
        .command(&["orchestrate", plan.to_str().unwrap(), "--parallel", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once two runs are under way (their ids are in the plan).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let started = loop {
        let v = plan_json(&plan);
        let running: Vec<String> = v["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["status"] == "running" && t["run_id"].is_string())
            .map(|t| t["run_id"].as_str().unwrap().to_string())
            .collect();
        if running.len() >= 2 {
            break running;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "runs never started: {v}"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "orchestrate ended early"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    child.kill().unwrap();
    child.wait().unwrap();

    let out = s
        .env
        .run(&["orchestrate", plan.to_str().unwrap(), "--parallel", "2"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let v = plan_json(&plan);
    let final_ids: Vec<String> = v["tasks"].as_array().unwrap()[..4]
        .iter()
        .map(|t| {
            assert_eq!(t["status"], "completed", "{v}");
            t["run_id"].as_str().unwrap().to_string()
        })
        .collect();
    for id in &started {
        assert!(
            final_ids.contains(id),
            "run {id} was resumed, not replaced: {final_ids:?}"
        );
    }
    for i in 1..=4 {
        assert_eq!(
            std::fs::read_to_string(s.env.project.join(format!("f{i}.txt"))).unwrap(),
            format!("f{i}.txt\n")
        );
    }
    // One run record per task, and one agent launch per run.
    let records = std::fs::read_dir(s.env.project.join(".codex-remote/runs"))
        .unwrap()
        .count();
    assert_eq!(records, 4, "exactly one run per task");
    for id in &final_ids {
        let record: serde_json::Value = serde_json::from_slice(
            &std::fs::read(
                s.env
                    .project
                    .join(format!(".codex-remote/runs/{id}/run.json")),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(record["attempt"], 1, "run {id} launched one agent");
    }
}
