//! Ctrl-C means one thing per command, and says it: a real SIGINT to the real binary, over real
//! runs (real Codex CLI, real sshd, scripted model server).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use codex_remote_testkit::model_server::Reply;
use common::{setup, stderr, stdout, Setup};

/// Polls an observable condition until it holds; fails after 60 s.
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn(s: &Setup, args: &[&str]) -> Child {
    s.env
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn sigint(child: &Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn local_events(s: &Setup, run_id: &str) -> String {
    std::fs::read_to_string(
        s.env
            .project
            .join(format!(".codex-remote/runs/{run_id}/events.jsonl")),
    )
    .unwrap_or_default()
}

fn only_run(s: &Setup) -> Option<String> {
    let runs = std::fs::read_dir(s.env.project.join(".codex-remote/runs")).ok()?;
    runs.filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
}

/// Codex hands a long command back to the model after a while; holding the model's next answer
/// keeps the agent alive until the test has seen what it wants.
fn hold_the_model(s: &Setup) {
    s.server.set_delay(Duration::from_secs(600));
}

fn status(s: &Setup, run_id: &str) -> serde_json::Value {
    serde_json::from_slice(&s.env.run(&["status", run_id, "--json"]).stdout).unwrap()
}

#[test]
fn ctrl_c_on_run_cancels_its_agent_and_says_so() {
    let Some(s) = setup(
        vec![Reply::exec("c1", "sleep 300"), Reply::message("never")],
        true,
    ) else {
        return;
    };
    let child = spawn(&s, &["run", "--prompt", "Sleep", "--type", "debug"]);
    let mut run_id = String::new();
    wait_until("the agent runs its command", || {
        run_id = only_run(&s).unwrap_or_default();
        !run_id.is_empty() && local_events(&s, &run_id).contains("sleep 300")
    });
    hold_the_model(&s);
    sigint(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("interrupted: cancelling run {run_id}"))
            && err.contains(&format!("cancelled run {run_id}")),
        "{err}"
    );
    assert_eq!(status(&s, &run_id)["run"]["phase"], "cancelled");
}

#[test]
fn ctrl_c_on_attach_detaches_and_says_how_to_cancel() {
    let Some(s) = setup(
        vec![Reply::exec("c1", "sleep 300"), Reply::message("never")],
        true,
    ) else {
        return;
    };
    let out = s
        .env
        .run(&["run", "--detach", "--prompt", "Sleep", "--type", "debug"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run_id = stdout(&out).trim().to_string();
    let child = spawn(&s, &["attach", "last"]);
    wait_until("attach records the agent's command", || {
        local_events(&s, &run_id).contains("sleep 300")
    });
    hold_the_model(&s);
    sigint(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "detached from run {run_id}; its agent keeps running"
        )) && err.contains(&format!("`codex-remote cancel {run_id}`")),
        "{err}"
    );
    let v = status(&s, &run_id);
    assert_eq!(v["run"]["phase"], "running", "{v}");
    assert_eq!(v["agent"]["state"], "running", "{v}");
    assert!(s.env.run(&["cancel", &run_id]).status.success());
}

#[test]
fn ctrl_c_on_orchestrate_stops_starting_tasks_and_the_next_run_reports_what_it_resumed() {
    let Some(s) = setup(
        vec![
            Reply::exec("c1", "sleep 6 && printf 'one\\n' > one.txt"),
            Reply::message("one done"),
            Reply::exec("c2", "printf 'two\\n' > two.txt"),
            Reply::message("two done"),
        ],
        true,
    ) else {
        return;
    };
    let plan = s.env.write(
        "task_plan.json",
        "[\n  {\"task_id\": \"one\", \"executor\": \"codex-remote\", \"instruction\": \"TASK: one\", \"status\": \"pending\"},\n  {\"task_id\": \"two\", \"executor\": \"codex-remote\", \"instruction\": \"TASK: two\", \"status\": \"pending\"}\n]\n",
    );
    let entry = |id: &str| -> serde_json::Value {
        let plan: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
        plan.as_array()
            .unwrap()
            .iter()
            .find(|e| e["task_id"] == id)
            .unwrap()
            .clone()
    };
    let args = ["orchestrate", "task_plan.json", "--parallel", "1"];
    let mut child = spawn(&s, &args);
    // `--parallel 1`: one task at a time, whichever the scheduler takes first.
    let (mut first, mut run_id) = (String::new(), String::new());
    wait_until("the first task's agent runs", || {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("orchestrate ended early ({status}): {err}");
        }
        for id in ["one", "two"] {
            let run = entry(id)["run_id"].as_str().unwrap_or("").to_string();
            if !run.is_empty() && local_events(&s, &run).contains("sleep 6") {
                (first, run_id) = (id.to_string(), run);
                return true;
            }
        }
        false
    });
    let second = if first == "one" { "two" } else { "one" };
    // The first run must not finish (and let the scheduler start the second) before the
    // interrupt lands: its agent waits on the model until released.
    s.server.hold();
    sigint(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("interrupted: no new task will start")
            && err.contains(&format!(
                "{first}: run {run_id} (stop it with `codex-remote cancel {run_id}`)"
            ))
            && err.contains("`codex-remote orchestrate task_plan.json` again"),
        "{err}"
    );
    assert_eq!(entry(second)["status"], "pending", "no new task started");
    assert_eq!(entry(&first)["status"], "running");

    // The next orchestration resumes the first run (never starting it twice), then does the
    // second task.
    s.server.release();
    let out = s.env.run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "{first}: resumed run {run_id} from an interrupted orchestration"
        )),
        "{text}"
    );
    assert_eq!(entry(&first)["status"], "completed");
    assert_eq!(entry(&first)["run_id"], run_id.as_str());
    assert_eq!(entry(second)["status"], "completed");
    assert_eq!(
        std::fs::read_to_string(s.env.project.join("one.txt")).unwrap(),
        "one\n"
    );
    assert_eq!(
        std::fs::read_to_string(s.env.project.join("two.txt")).unwrap(),
        "two\n"
    );
}
