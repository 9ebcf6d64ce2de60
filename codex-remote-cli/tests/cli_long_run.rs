//! Long runs end to end (issue 12): a usage limit parks the run on the host and the same Codex
//! thread resumes at the reset with no client connected; `max_wait` bounds the wait; stated
//! retry delays are honoured; token usage is counted across resumes; `notify` hears of it all.
//! Real sshd on loopback, the real Codex CLI, the scripted model server.

mod common;

use codex_remote_testkit::model_server::{request_user_texts, Reply};
use common::{setup, stderr, stdout, Setup};
use serde_json::Value;

/// Polls an observable condition (not a timer) until it holds; fails after 90 s.
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn agent_dir(s: &Setup, run_id: &str, attempt: u32) -> std::path::PathBuf {
    s.sshd
        .dir()
        .join(format!("ws/.codex-remote/myapp/agents/{run_id}/{attempt}"))
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Every `turn_context` Codex recorded for the run's thread: (sandbox type, model, cwd).
fn turn_contexts(s: &Setup) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    let mut dirs = vec![s.sshd.dir().join("codex-home/sessions")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                if v["type"] == "turn_context" {
                    let p = &v["payload"];
                    found.push((
                        p["sandbox_policy"]["type"]
                            .as_str()
                            .unwrap_or("")
                            .to_string(),
                        p["model"].as_str().unwrap_or("").to_string(),
                        p["cwd"].as_str().unwrap_or("").to_string(),
                    ));
                }
            }
        }
    }
    found
}

#[test]
fn a_usage_limit_parks_the_detached_run_and_the_host_resumes_the_same_thread() {
    let script = vec![
        Reply::exec("c1", "printf 'before\\n' > before.txt"),
        Reply::UsageLimit {
            resets_in_seconds: 4,
        },
        Reply::exec("c2", "printf 'after\\n' > after.txt"),
        Reply::message("both files written"),
    ];
    let Some(s) = setup(script, true) else { return };
    let notified = s.env.home.path().join("notified.jsonl");
    let notify = s.env.write(
        "notify.sh",
        &format!("#!/bin/sh\ncat >> '{}'\n", notified.display()),
    );
    std::fs::set_permissions(&notify, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = s.env.run(&[
        "run",
        "--detach",
        "--keep",
        "--notify",
        &notify.display().to_string(),
        // A config override that `exec`'s `--sandbox` beats: the resume must beat it too.
        "--codex-arg=-c",
        "--codex-arg=sandbox_mode=\"read-only\"",
        "--prompt",
        "write before.txt, then after.txt",
        "--type",
        "feature",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run_id = stdout(&out).trim().to_string();
    let agent = agent_dir(&s, &run_id, 1);

    // No client is connected: the host parks the run...
    wait_until("the host parks the run", || agent.join("waiting").exists());
    let status = s.env.run(&["status", &run_id, "--json"]);
    assert!(status.status.success(), "{}", stderr(&status));
    let status: Value = serde_json::from_str(&stdout(&status)).unwrap();
    if agent.join("waiting").exists() || status["agent"]["state"] == "waiting" {
        assert_eq!(status["agent"]["state"], "waiting", "{status}");
        assert_eq!(status["run"]["phase"], "waiting", "{status}");
        assert!(status["run"]["resume_at"].is_string(), "{status}");
        let runs = s.env.run(&["runs", "--json"]);
        let runs: Value = serde_json::from_str(&stdout(&runs)).unwrap();
        assert_eq!(runs["runs"][0]["phase"], "waiting", "{runs}");
        let text = stdout(&s.env.run(&["status", &run_id]));
        assert!(text.contains("resumes"), "{text}");
    }
    // ...and resumes it, still with no client, to the end.
    wait_until("the host finishes the run", || {
        agent.join("status").exists()
    });
    assert_eq!(
        std::fs::read_to_string(agent.join("status"))
            .unwrap()
            .trim(),
        "0",
        "{}",
        std::fs::read_to_string(agent.join("stderr.log")).unwrap_or_default()
    );

    let out = s.env.run(&["attach", &run_id, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let events = json_lines(&stdout(&out));
    let waiting = events
        .iter()
        .find(|e| e["event"] == "waiting")
        .expect("a waiting event");
    assert_eq!(waiting["source"], "session", "{waiting}");
    assert!(events
        .iter()
        .any(|e| e["event"] == "thread_resumed" && e["reason"] == "usage-limit"));
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["resumes"], 1, "{summary}");
    assert_eq!(
        summary["attempts"], 1,
        "one agent, never restarted: {summary}"
    );
    // Three completed model requests, 100 in / 20 out each (the server's figures); Codex's
    // cumulative per-thread usage must not be counted twice.
    assert_eq!(summary["usage"]["input_tokens"], 300, "{summary}");
    assert_eq!(summary["usage"]["output_tokens"], 60, "{summary}");
    for (name, text) in [("before.txt", "before\n"), ("after.txt", "after\n")] {
        assert_eq!(
            std::fs::read_to_string(s.env.project.join(name)).unwrap(),
            text
        );
    }

    // The same thread throughout: one thread id, and the resumed request carries the earlier
    // conversation (the instruction and the first command's output).
    let remote = std::fs::read_to_string(agent.join("events.jsonl")).unwrap();
    let threads: std::collections::BTreeSet<String> = json_lines(&remote)
        .iter()
        .filter(|e| e["type"] == "thread.started")
        .map(|e| e["thread_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(threads.len(), 1, "{remote}");
    assert_eq!(
        summary["thread_id"].as_str(),
        threads.iter().next().map(String::as_str)
    );
    let requests = s.server.requests();
    let resumed = requests
        .iter()
        .find(|r| {
            request_user_texts(r)
                .iter()
                .any(|t| t.contains("usage limit was reached"))
        })
        .expect("a request after the resume");
    let texts = request_user_texts(resumed).join("\n");
    assert!(
        texts.contains("write before.txt, then after.txt"),
        "{texts}"
    );
    assert!(
        resumed["input"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["type"] == "function_call_output" && i["call_id"] == "c1"),
        "the first command's output is in the resumed conversation"
    );
    // The effective policy is unchanged by the resume: same sandbox, model and directory.
    let contexts = turn_contexts(&s);
    assert!(contexts.len() >= 2, "{contexts:?}");
    assert!(
        contexts
            .iter()
            .all(|c| c == &contexts[0] && c.0 == "workspace-write"),
        "{contexts:?}"
    );

    // notify heard the end (the park happened with no client to hear it).
    let told = json_lines(&std::fs::read_to_string(&notified).unwrap());
    assert!(
        told.iter()
            .any(|t| t["event"] == "ended" && t["run_id"] == run_id.as_str()),
        "{told:?}"
    );
}

#[test]
fn a_limit_resetting_after_max_wait_fails_the_run_with_exit_5() {
    let Some(s) = setup(
        vec![Reply::UsageLimit {
            resets_in_seconds: 3600,
        }],
        true,
    ) else {
        return;
    };
    let notified = s.env.home.path().join("notified.jsonl");
    // Top-level keys first, before the file's tables.
    let config = format!(
        "max_wait = \"10m\"\nnotify = [\"sh\", \"-c\", \"cat >> '{}'\"]\n{}",
        notified.display(),
        std::fs::read_to_string(s.env.project.join("codex-remote.toml")).unwrap()
    );
    s.env.write("codex-remote.toml", &config);
    let out = s
        .env
        .run(&["run", "--prompt", "anything", "--type", "quick-fix"]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "stdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(err.contains("usage limit"), "{err}");
    assert!(err.contains("max_wait"), "{err}");
    let told = json_lines(&std::fs::read_to_string(&notified).unwrap());
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0]["event"], "failed");
    assert_eq!(told[0]["error_kind"], "rate-limited");
}

#[test]
fn a_stated_retry_delay_replaces_the_backoff() {
    let Some(s) = setup(
        vec![
            Reply::RateLimitFailed(
                "Rate limit reached for gpt-5 on tokens per min. Please try again in 1s.".into(),
            ),
            Reply::message("done"),
        ],
        true,
    ) else {
        return;
    };
    // Codex gives up on the first failed stream (no retries of its own), so the one failure
    // reaches codex-remote.
    let codex_config = s.sshd.dir().join("codex-home/config.toml");
    let mut text = std::fs::read_to_string(&codex_config).unwrap();
    text.push_str("stream_max_retries = 0\n");
    std::fs::write(&codex_config, text).unwrap();
    // A backoff of 60 s would stand out; Codex's stated delay is 1 s.
    let config = std::fs::read_to_string(s.env.project.join("codex-remote.toml"))
        .unwrap()
        .replace("initial_delay_secs = 0.05", "initial_delay_secs = 60")
        .replace("max_delay_secs = 0.2", "max_delay_secs = 120");
    s.env.write("codex-remote.toml", &config);
    let out = s.env.run(&[
        "run",
        "--json",
        "--retries",
        "1",
        "--prompt",
        "anything",
        "--type",
        "quick-fix",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let events = json_lines(&stdout(&out));
    let retrying = events
        .iter()
        .find(|e| e["event"] == "retrying")
        .expect("a retry");
    assert_eq!(retrying["delay_secs"], 1.0, "{retrying}");
}

#[test]
fn an_interrupted_agent_is_resumed_on_its_thread_not_restarted() {
    use codex_remote_testkit::model_server::{has_tool_output, FakeModelServer};
    let server = FakeModelServer::start_routed(|request| {
        let texts = request_user_texts(request).join("\n");
        let outputs: Vec<String> = request["input"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|i| i["type"] == "function_call_output")
            .filter_map(|i| i["call_id"].as_str().map(str::to_string))
            .collect();
        if texts.contains("was interrupted") {
            Reply::message("finished after the interruption")
        } else if outputs.iter().any(|c| c == "c1") {
            Reply::exec("c2", "sleep 300")
        } else if has_tool_output(request) {
            Reply::message("unexpected")
        } else {
            Reply::exec("c1", "printf 'first\\n' > first.txt")
        }
    });
    let Some(s) = common::setup_with(server, true) else {
        return;
    };
    let out = s.env.run(&[
        "run",
        "--detach",
        "--keep",
        "--prompt",
        "write first.txt, then wait",
        "--type",
        "feature",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run_id = stdout(&out).trim().to_string();
    let first = agent_dir(&s, &run_id, 1);
    wait_until("the agent runs its second command", || {
        std::fs::read_to_string(first.join("events.jsonl")).is_ok_and(|e| e.contains("sleep 300"))
    });
    // What a reboot does to it: the whole group gone, no exit status recorded, and after the
    // reboot its pid names an unrelated live process.
    let pid = std::fs::read_to_string(first.join("pid")).unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-9", "--", &format!("-{}", pid.trim())])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut unrelated = std::process::Command::new("setsid")
        .args(["sleep", "120"])
        .spawn()
        .unwrap();
    std::fs::write(first.join("pid"), format!("{}\n", unrelated.id())).unwrap();
    std::fs::write(first.join("boot_id"), "another-boot\n").unwrap();

    let out = s.env.run(&["attach", &run_id, "--json"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let events = json_lines(&stdout(&out));
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "thread_resumed" && e["reason"] == "interrupted"),
        "{}",
        stdout(&out)
    );
    let summary = events.last().unwrap();
    assert_eq!(summary["attempts"], 2, "{summary}");
    assert_eq!(summary["resumes"], 1, "{summary}");
    assert_eq!(
        summary["last_message"], "finished after the interruption",
        "{summary}"
    );
    assert_eq!(
        std::fs::read_to_string(s.env.project.join("first.txt")).unwrap(),
        "first\n"
    );
    // One thread across both attempts, and the resumed request carries the conversation.
    let threads: std::collections::BTreeSet<String> = [1, 2]
        .iter()
        .flat_map(|a| {
            json_lines(
                &std::fs::read_to_string(agent_dir(&s, &run_id, *a).join("events.jsonl")).unwrap(),
            )
        })
        .filter(|e| e["type"] == "thread.started")
        .map(|e| e["thread_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(threads.len(), 1, "{threads:?}");
    let resumed = s
        .server
        .requests()
        .into_iter()
        .find(|r| request_user_texts(r).join("\n").contains("was interrupted"))
        .expect("a resumed request");
    assert!(request_user_texts(&resumed)
        .join("\n")
        .contains("write first.txt, then wait"));
    // Never two live agents: the first attempt's agent stays gone; and the process that took
    // its pid after the "reboot" was neither followed nor killed.
    assert!(!first.join("status").exists());
    assert!(
        unrelated.try_wait().unwrap().is_none(),
        "an unrelated process was killed"
    );
    unrelated.kill().unwrap();
    unrelated.wait().unwrap();
}

#[test]
fn a_supervisor_killed_alone_leaves_no_second_agent_behind() {
    use codex_remote_testkit::model_server::{has_tool_output, FakeModelServer};
    let server = FakeModelServer::start_routed(|request| {
        let texts = request_user_texts(request).join("\n");
        if texts.contains("was interrupted") {
            Reply::message("resumed")
        } else if has_tool_output(request) {
            Reply::message("the first agent is done")
        } else {
            Reply::exec("c1", "sleep 3.07")
        }
    });
    let Some(s) = common::setup_with(server, true) else {
        return;
    };
    let out = s
        .env
        .run(&["run", "--detach", "--prompt", "wait", "--type", "feature"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run_id = stdout(&out).trim().to_string();
    let first = agent_dir(&s, &run_id, 1);
    let sleeping = || {
        let ps = std::process::Command::new("ps")
            .args(["-eo", "args"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&ps.stdout)
            .lines()
            .any(|l| l.trim() == "sleep 3.07")
    };
    wait_until("the agent's command runs", sleeping);
    // Only the supervisor dies (an OOM kill picks one process): Codex and its command live on,
    // and nothing records how the attempt ended.
    let pid = std::fs::read_to_string(first.join("pid")).unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = s.env.run(&["attach", &run_id, "--json"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    // The relaunch came only once nothing of the first attempt ran: its command is gone, and
    // the second attempt resumed the thread.
    assert!(
        !sleeping(),
        "the first agent's command outlived the relaunch"
    );
    let summary = json_lines(&stdout(&out)).pop().unwrap();
    assert_eq!(summary["attempts"], 2, "{summary}");
    assert_eq!(summary["last_message"], "resumed", "{summary}");
}

fn write_plan(s: &Setup, tasks: &[(&str, &str)]) -> std::path::PathBuf {
    let entries: Vec<Value> = tasks
        .iter()
        .map(|(id, instruction)| serde_json::json!({ "task_id": id, "executor": "codex-remote", "instruction": instruction, "status": "pending" }))
        .collect();
    s.env.write(
        "task_plan.json",
        &serde_json::to_string_pretty(&serde_json::json!({ "tasks": entries })).unwrap(),
    )
}

fn run_record(s: &Setup, run_id: &str) -> Value {
    serde_json::from_slice(
        &std::fs::read(
            s.env
                .project
                .join(format!(".codex-remote/runs/{run_id}/run.json")),
        )
        .unwrap(),
    )
    .unwrap()
}

#[test]
fn orchestrate_over_two_hosts_with_one_parked_finishes_every_task_on_the_other() {
    use codex_remote_testkit::model_server::{write_file_server, FakeModelServer};
    let Some(s) = common::setup_with(write_file_server(), true) else {
        return;
    };
    // A second host on the same sshd, whose account is at its usage limit for an hour.
    let limited = FakeModelServer::start(vec![Reply::UsageLimit {
        resets_in_seconds: 3600,
    }]);
    let limited_home = limited.write_codex_home(&s.sshd.dir().join("codex-home-limited"));
    let config = std::fs::read_to_string(s.env.project.join("codex-remote.toml")).unwrap();
    let shell_init = config
        .lines()
        .find(|l| l.starts_with("shell_init"))
        .unwrap()
        .to_string();
    s.env.write(
        "codex-remote.toml",
        &format!(
            "{config}[hosts.parked]\nssh = \"{}\"\nworkspace = \"{}\"\n{shell_init}\n[hosts.parked.env]\nCODEX_HOME = \"{}\"\n",
            codex_remote_testkit::sshd::ALIAS,
            s.sshd.dir().join("ws-parked").display(),
            limited_home.display()
        ),
    );
    let plan = write_plan(
        &s,
        &[
            ("t1", "TASK: WRITE one.txt"),
            ("t2", "TASK: WRITE two.txt"),
            ("t3", "TASK: WRITE three.txt"),
        ],
    );
    let hosts = format!("parked,{}", codex_remote_testkit::sshd::ALIAS);
    let out = s.env.run(&[
        "orchestrate",
        plan.to_str().unwrap(),
        "--hosts",
        &hosts,
        "--parallel",
        "2",
        "--json",
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let events = json_lines(&stdout(&out));
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "host_parked" && e["host"] == "parked"),
        "{}",
        stdout(&out)
    );
    assert!(events
        .iter()
        .any(|e| e["event"] == "moved" && e["from"] == "parked"));
    let plan: Value = serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    for (i, name) in ["one.txt", "two.txt", "three.txt"].iter().enumerate() {
        assert_eq!(plan["tasks"][i]["status"], "completed", "{plan}");
        let record = run_record(&s, plan["tasks"][i]["run_id"].as_str().unwrap());
        assert_eq!(
            record["host"],
            codex_remote_testkit::sshd::ALIAS,
            "{record}"
        );
        assert_eq!(
            std::fs::read_to_string(s.env.project.join(name)).unwrap(),
            format!("{name}\n")
        );
    }
    // Each task's tokens are counted in the plan's total: two model requests of 100 input
    // tokens per task (the parked runs completed none).
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["usage"]["input_tokens"], 3 * 200, "{summary}");
    // The runs that parked were cancelled on the parked host, not left waiting there.
    for record in std::fs::read_dir(s.env.project.join(".codex-remote/runs")).unwrap() {
        let id = record.unwrap().file_name().to_string_lossy().to_string();
        let record = run_record(&s, &id);
        if record["host"] == "parked" {
            assert_eq!(record["phase"], "cancelled", "{record}");
        }
    }
}

#[test]
fn when_every_host_is_parked_orchestrate_says_when_and_waits() {
    let script = vec![
        Reply::UsageLimit {
            resets_in_seconds: 5,
        },
        Reply::message("the parked run is done"),
    ];
    let Some(s) = setup(script, true) else { return };
    let out = s.env.run(&[
        "run",
        "--detach",
        "--prompt",
        "park me",
        "--type",
        "quick-fix",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run_id = stdout(&out).trim().to_string();
    let agent = agent_dir(&s, &run_id, 1);
    wait_until("the host parks the run", || agent.join("waiting").exists());
    // `status` records the park, as an interrupted orchestration's records would.
    let status = s.env.run(&["status", &run_id, "--json"]);
    let status: Value = serde_json::from_str(&stdout(&status)).unwrap();
    let resume_at = status["run"]["resume_at"].as_str().unwrap().to_string();

    let plan = write_plan(&s, &[("later", "TASK: write nothing")]);
    let out = s
        .env
        .run(&["orchestrate", plan.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let events = json_lines(&stdout(&out));
    let all_parked = events
        .iter()
        .find(|e| e["event"] == "all_parked")
        .unwrap_or_else(|| panic!("{}", stdout(&out)));
    assert_eq!(all_parked["until"], resume_at.as_str());
    let plan: Value = serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    assert_eq!(plan["tasks"][0]["status"], "completed", "{plan}");
    let record = run_record(&s, plan["tasks"][0]["run_id"].as_str().unwrap());
    assert!(
        record["created_at"].as_str().unwrap() >= resume_at.as_str(),
        "started only after the reset: {record}"
    );
    // The parked run resumes on the host by itself, and with the model's script used up it would
    // go on resuming long after the test (its host and model server gone): end it.
    let _ = s.env.run(&["cancel", &run_id]);
}

#[test]
fn notify_hears_a_followed_run_park_and_end_with_its_summary_on_stdin() {
    let script = vec![
        Reply::UsageLimit {
            resets_in_seconds: 8,
        },
        Reply::message("done after the reset"),
    ];
    let Some(s) = setup(script, true) else { return };
    // A chatty shell init (nvm prints such lines) must not be taken for the host's answers.
    let init = s.sshd.dir().join("nvm.sh");
    let mut text = std::fs::read_to_string(&init).unwrap();
    text.push_str("echo 'Now using node v20 (npm v10)'\necho 1700000000 session\n");
    std::fs::write(&init, text).unwrap();
    let told = s.env.home.path().join("told.jsonl");
    // The command is argv: an argument with spaces and quotes stays one word, never shell code.
    let hostile = "x'; touch pwned; echo '";
    s.env.write(
        "notify.sh",
        &format!(
            "#!/bin/sh\n[ \"$1\" = \"$2\" ] || exit 1\n{{ cat; echo; }} | head -n 1 >> '{}'\n",
            told.display()
        ),
    );
    let notify = s.env.project.join("notify.sh");
    std::fs::set_permissions(&notify, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = format!(
        "notify = [{:?}, {hostile:?}, {hostile:?}]\n{}",
        notify.display().to_string(),
        std::fs::read_to_string(s.env.project.join("codex-remote.toml")).unwrap()
    );
    s.env.write("codex-remote.toml", &config);
    // A park is no stall: the stall clock starts again at the reset (the park is longer than
    // the stall timeout).
    let out = s.env.run(&[
        "run",
        "--stall-timeout",
        "5s",
        "--prompt",
        "anything",
        "--type",
        "quick-fix",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("parked until"), "{}", stderr(&out));
    // The text summary counts the resumed thread once, in every kind of token.
    let summary = stdout(&out);
    assert!(
        summary.contains("tokens   100 in (0 cached), 20 out (0 reasoning)"),
        "{summary}"
    );
    assert!(summary.contains("resumed  1 time(s), thread "), "{summary}");
    let runs = stdout(&s.env.run(&["runs"]));
    assert!(
        runs.contains("100 in (0 cached), 20 out (0 reasoning)"),
        "{runs}"
    );
    assert!(!s.env.project.join("pwned").exists());
    let told = json_lines(&std::fs::read_to_string(&told).unwrap());
    assert_eq!(told.len(), 2, "{told:?}");
    assert_eq!(told[0]["event"], "parked");
    assert!(told[0]["resume_at"].is_string(), "{}", told[0]);
    assert_eq!(told[1]["event"], "ended");
    assert_eq!(told[1]["last_message"], "done after the reset");
    assert_eq!(told[1]["resumes"], 1);
}

#[test]
fn a_killed_codex_is_resumed_on_the_host_and_its_leftovers_end() {
    use codex_remote_testkit::model_server::FakeModelServer;
    let server = FakeModelServer::start_routed(|request| {
        let texts = request_user_texts(request).join("\n");
        if texts.contains("was interrupted") {
            Reply::message("resumed after the kill")
        } else {
            Reply::exec("c1", "sleep 309")
        }
    });
    let Some(s) = common::setup_with(server, true) else {
        return;
    };
    let out = s.env.run(&[
        "run", "--detach", "--keep", "--prompt", "wait", "--type", "feature",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run_id = stdout(&out).trim().to_string();
    let agent = agent_dir(&s, &run_id, 1);
    let processes = || {
        let ps = std::process::Command::new("ps")
            .args(["-eo", "pid=,ppid=,args="])
            .output()
            .unwrap();
        String::from_utf8_lossy(&ps.stdout)
            .lines()
            .map(|l| {
                let mut words = l.split_whitespace();
                let pid = words.next().unwrap().to_string();
                let ppid = words.next().unwrap().to_string();
                (pid, ppid, words.collect::<Vec<_>>().join(" "))
            })
            .collect::<Vec<_>>()
    };
    wait_until("the agent's command runs", || {
        processes().iter().any(|(_, _, args)| args == "sleep 309")
    });
    // What the OOM killer does: Codex (the supervisor's child) dies; its command lives on.
    let supervisor = std::fs::read_to_string(agent.join("pid"))
        .unwrap()
        .trim()
        .to_string();
    let codex = processes()
        .into_iter()
        .find(|(_, ppid, _)| *ppid == supervisor)
        .expect("codex runs under the supervisor")
        .0;
    let killed = std::process::Command::new("kill")
        .args(["-9", &codex])
        .status()
        .unwrap();
    assert!(killed.success());
    // The host resumes the thread by itself, with no client connected.
    wait_until("the host finishes the run", || {
        agent.join("status").exists()
    });
    assert!(
        !processes().iter().any(|(_, _, args)| args == "sleep 309"),
        "the killed agent's command outlived the resume"
    );
    let out = s.env.run(&["attach", &run_id, "--json"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let summary = json_lines(&stdout(&out)).pop().unwrap();
    assert_eq!(summary["attempts"], 1, "{summary}");
    assert_eq!(summary["resumes"], 1, "{summary}");
    assert_eq!(
        summary["last_message"], "resumed after the kill",
        "{summary}"
    );
}
