//! Run ids people can use (`last`, `last~N`, readable prompt-run ids, `-q` printing the id,
//! hints naming the run) and words rather than raw data in text mode; over real runs (real
//! Codex CLI, real sshd, scripted model server).

mod common;

use codex_remote_testkit::model_server::Reply;
use common::{setup, stderr, stdout};

#[test]
fn run_ids_read_and_last_names_the_newest_runs_everywhere() {
    let Some(s) = setup(
        vec![
            Reply::exec(
                "c1",
                "printf '{\"name\":\"x\"}\\n' > package.json && printf 'export const a = 2;\\n' > src/app.ts",
            ),
            Reply::message("Bumped a and touched package.json"),
            Reply::exec("c2", "printf 'b\\n' > b.txt"),
            Reply::message("Made b"),
        ],
        true,
    ) else {
        return;
    };
    // -q --no-apply prints the run id, and nothing else; the id reads.
    let out = s.env.run(&[
        "run",
        "-q",
        "--no-apply",
        "--prompt",
        "Bump a, touch package.json",
        "--type",
        "quick-fix",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let first = stdout(&out);
    assert_eq!(first.lines().count(), 1, "{first:?}");
    let first = first.trim().to_string();
    assert!(
        first.starts_with("bump-a-touch-package-json-"),
        "a readable id: {first}"
    );

    // The text summary says the checkpoint was ticked.
    s.env.write("SPEC.md", "# Spec\n- [ ] Make b\n");
    let out = s.env.run(&[
        "run",
        "--prompt",
        "Make b",
        "--type",
        "quick-fix",
        "--checkpoint",
        "SPEC.md",
        "--item",
        "Make b",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = stdout(&out);
    let second = summary
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .to_string();
    assert!(second.starts_with("make-b-"), "{summary}");
    assert!(
        summary.contains("spec     ticked `Make b` in ") && summary.contains("SPEC.md:2"),
        "{summary}"
    );

    // `last` and `last~1` wherever a run id is taken.
    let out = s.env.run(&["status", "last"]);
    let status = stdout(&out);
    assert!(
        status.starts_with(&format!("run       {second}\n")),
        "{status}"
    );
    assert!(status.contains("\nlast      agent: Made b\n"), "{status}");
    let out = s.env.run(&["diff", "last~1", "--stat"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("package.json"), "{}", stdout(&out));
    let out = s.env.run(&["logs", "last~1"]);
    assert!(stdout(&out).contains("agent: Bumped a"), "{}", stdout(&out));
    let out = s.env.run(&["status", "last~2"]);
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!("last_past_the_oldest", stderr(&out));

    // An apply refused for a restricted file: the hint names the run.
    let out = s.env.run(&["pull", "last~1", "--apply"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("hint: review it with `codex-remote diff {first}`"))
            && err.contains(&format!(
                "`codex-remote pull {first} --apply --allow-restricted`"
            ))
            && err.contains(&format!(
                "`codex-remote pull {first} --apply --skip-restricted`"
            )),
        "{err}"
    );
    let out = s.env.run(&["pull", "last~1", "--apply", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["error"]["hint"].as_str().unwrap().contains(&first), "{v}");
    assert_eq!(v["error"]["restricted"][0], "package.json", "{v}");
}

#[test]
fn status_and_logs_of_a_detached_run_speak_words_and_show_what_exists() {
    let Some(s) = setup(
        vec![Reply::exec("c1", "sleep 300"), Reply::message("never")],
        true,
    ) else {
        return;
    };
    let out = s.env.run(&[
        "run",
        "--detach",
        "--prompt",
        "Sleep a while",
        "--type",
        "debug",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run_id = stdout(&out).trim().to_string();
    assert!(run_id.starts_with("sleep-a-while-"), "{run_id}");
    // Nobody follows this run, so the local record holds no events; `logs` (no --follow) shows
    // what the agent wrote on the host so far: poll until Codex reports the command.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let logs = loop {
        let out = s.env.run(&["logs", "last"]);
        assert!(out.status.success(), "{}", stderr(&out));
        if stdout(&out).contains("sleep 300") {
            // Codex hands a long command back to the model after a while: the model's next
            // answer is held, so the agent is still alive for the checks below.
            s.server.set_delay(std::time::Duration::from_secs(600));
            break stdout(&out);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "logs never showed the agent's command: {}",
            stdout(&out)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(!logs.contains('{'), "words, not JSON: {logs}");
    // ...without recording them (the follower records each event once).
    let local = s
        .env
        .project
        .join(format!(".codex-remote/runs/{run_id}/events.jsonl"));
    assert_eq!(std::fs::read_to_string(local).unwrap_or_default(), "");

    let out = s.env.run(&["status", "last"]);
    let text = stdout(&out);
    let agent = text
        .lines()
        .find(|l| l.starts_with("agent "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        agent.starts_with("agent     running (pid ") && agent.ends_with(" on the host)"),
        "{agent}"
    );
    assert!(!text.contains('{'), "{text}");
    let out = s.env.run(&["cancel", "last"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn an_orchestrated_result_left_unapplied_names_its_run_in_the_next_steps() {
    let Some(s) = setup(
        vec![
            Reply::exec("c1", "printf '{\"x\":1}\\n' > package.json"),
            Reply::message("touched package.json"),
        ],
        true,
    ) else {
        return;
    };
    s.env.write(
        "task_plan.json",
        "[{\"task_id\":\"pkg\",\"executor\":\"codex-remote\",\"instruction\":\"TASK: x\",\"status\":\"pending\"}]\n",
    );
    let out = s.env.run(&["orchestrate", "task_plan.json"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(s.env.project.join("task_plan.json")).unwrap(),
    )
    .unwrap();
    let run = plan[0]["run_id"].as_str().unwrap();
    assert!(
        stdout(&out).contains(&format!(
            "review it with `codex-remote diff {run}`, apply it with `codex-remote pull {run} --apply`"
        )),
        "{}",
        stdout(&out)
    );
}
