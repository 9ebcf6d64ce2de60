//! `codex-remote run` end to end: a real sshd, a remote shell init that puts the real Codex CLI
//! (from npm) on PATH, and a scripted model server on loopback.

mod common;

use codex_remote_testkit::model_server::Reply;
use common::{setup, stderr, stdout, Setup};

#[test]
fn a_run_edits_and_creates_files_and_the_patch_is_applied_locally() {
    let edit = "printf 'export const a = 2;\\n' > src/app.ts && mkdir -p src/new && printf 'created\\n' > src/new/file.ts";
    let Some(s) = setup(
        vec![
            Reply::exec("call_1", edit),
            Reply::message("Updated app.ts and added src/new/file.ts"),
        ],
        true,
    ) else {
        return;
    };
    let hostile =
        "TASK with 'quotes' \"double\" $(touch /tmp/pwned) `id` ; && ünïcødé\nsecond line";
    let task = s.env.write(
        "task.yaml",
        &format!(
            "id: e2e\ntitle: Bump a\ntype: feature\nscope:\n  files: [src/app.ts]\nrequirements:\n  - {}\ncheckpoint:\n  file: SPEC.md\n  item: Bump a\n",
            serde_json::to_string(hostile).unwrap()
        ),
    );
    s.env.write(
        "SPEC.md",
        "## Checkpoints\n- [ ] Bump a\n- [ ] Something else\n",
    );
    let out = s.env.run(&["run", task.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(s.env.project.join("src/app.ts")).unwrap(),
        "export const a = 2;\n"
    );
    assert_eq!(
        std::fs::read_to_string(s.env.project.join("src/new/file.ts")).unwrap(),
        "created\n"
    );
    let text = stdout(&out);
    assert!(
        text.contains("applied")
            && text.contains("gpt-5.3-codex")
            && text.contains("src/new/file.ts"),
        "{text}"
    );
    assert!(text.contains("Updated app.ts"), "{text}");

    // The instruction reached the model byte-exact (through stdin, ssh and Codex).
    let instruction_sent = s
        .server
        .user_texts()
        .into_iter()
        .find(|t| t.starts_with("TASK: Bump a"))
        .expect("the instruction was sent");
    let run_dir = std::fs::read_dir(s.env.project.join(".codex-remote/runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let recorded = std::fs::read_to_string(run_dir.join("instruction.txt")).unwrap();
    assert_eq!(instruction_sent, recorded);
    assert!(
        recorded.contains(hostile.lines().next().unwrap()),
        "{recorded}"
    );
    assert!(!std::path::Path::new("/tmp/pwned").exists());

    // The record holds the raw event stream and the patch.
    let events = std::fs::read_to_string(run_dir.join("events.jsonl")).unwrap();
    assert!(
        events.lines().any(|l| l.contains("\"thread.started\"")),
        "{events}"
    );
    assert!(
        events.lines().any(|l| l.contains("\"command_execution\"")),
        "{events}"
    );
    assert!(run_dir.join("result.patch").exists());
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(record["phase"], "completed");
    assert_eq!(record["remote_removed"], true);
    let run_id = record["id"].as_str().unwrap();
    // SPEC.md was pushed before the run, so the checkpoint is ticked after the apply.
    assert_eq!(
        std::fs::read_to_string(s.env.project.join("SPEC.md")).unwrap(),
        format!("## Checkpoints\n- [x] Bump a ← Completed via Codex (run {run_id})\n- [ ] Something else\n")
    );
}

#[test]
fn json_mode_streams_typed_events_then_a_summary() {
    let Some(s) = setup(
        vec![
            Reply::exec("c1", "printf 'x\\n' > out.txt"),
            Reply::message("done"),
        ],
        true,
    ) else {
        return;
    };
    let out = s.env.run(&[
        "run",
        "--json",
        "--prompt",
        "write out.txt",
        "--type",
        "quick-fix",
        "--no-apply",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"phase"));
    // Every line, the summary included, is an event of the published schema.
    let schema = String::from_utf8(s.env.run(&["schema", "events"]).stdout).unwrap();
    for kind in &kinds {
        assert!(
            schema.contains(&format!("\"const\": \"{kind}\"")),
            "`{kind}` is not in the events schema"
        );
    }
    assert!(kinds.contains(&"started") && kinds.contains(&"codex"));
    let summary = lines.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["applied"], false);
    assert_eq!(summary["model"], "gpt-5.1-codex-mini");
    assert_eq!(summary["files"][0]["path"], "out.txt");
    assert_eq!(summary["files"][0]["kind"], "added");
    assert!(
        !s.env.project.join("out.txt").exists(),
        "--no-apply leaves the tree alone"
    );
    let run_id = summary["run_id"].as_str().unwrap();
    // The recorded events can be read back, as lines or as our JSON Lines.
    let logs = s.env.run(&["logs", run_id]);
    assert!(logs.status.success(), "{}", stderr(&logs));
    assert!(
        stdout(&logs)
            .lines()
            .any(|l| l.starts_with("$ ") && l.contains("out.txt")),
        "{}",
        stdout(&logs)
    );
    let logs_json = s.env.run(&["logs", run_id, "--json"]);
    assert!(stdout(&logs_json)
        .lines()
        .all(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["event"] == "codex"));
    let pulled = s.env.run(&["pull", run_id, "--apply"]);
    assert!(pulled.status.success(), "{}", stderr(&pulled));
    assert_eq!(
        std::fs::read_to_string(s.env.project.join("out.txt")).unwrap(),
        "x\n"
    );
}

#[test]
fn a_rate_limited_run_is_retried_then_exits_5() {
    let Some(s) = setup(
        vec![Reply::Status(
            429,
            "{\"error\":{\"message\":\"slow down\"}}".into(),
        )],
        true,
    ) else {
        return;
    };
    let out = s.env.run(&[
        "run",
        "--retries",
        "1",
        "--prompt",
        "anything",
        "--type",
        "quick-fix",
    ]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "stdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(err.contains("retry 1/1"), "{err}");
    assert!(err.contains("rate-limited after 2 attempt(s)"), "{err}");
}

#[test]
fn codex_missing_exits_4_with_the_nvm_hint() {
    let Some(s) = setup(vec![Reply::message("unused")], false) else {
        return;
    };
    let out = s
        .env
        .run(&["run", "--prompt", "anything", "--type", "quick-fix"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("nvm"), "{}", stderr(&out));
    // Found before doing any work: nothing was pushed, no run tree, no run recorded.
    assert!(
        !s.sshd.dir().join("ws").exists(),
        "the host's workspace was touched"
    );
    assert!(!s.env.project.join(".codex-remote/runs").exists());
}

/// Makes the host's Codex use its default provider (OpenAI), with no login.
fn without_login(s: &Setup) {
    std::fs::write(s.sshd.dir().join("codex-home/config.toml"), "").unwrap();
}

#[test]
fn without_a_codex_login_a_run_fails_before_pushing_with_the_fix() {
    let Some(s) = setup(vec![Reply::message("unused")], true) else {
        return;
    };
    without_login(&s);
    let out = s
        .env
        .run(&["run", "--prompt", "anything", "--type", "quick-fix"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("codex cannot authenticate on `testhost`"),
        "{err}"
    );
    assert!(err.contains("run `codex login` on testhost"), "{err}");
    assert!(err.contains("CODEX_API_KEY"), "{err}");
    assert!(
        !s.sshd.dir().join("ws").exists(),
        "the host's workspace was touched"
    );
    assert!(!s.env.project.join(".codex-remote/runs").exists());
    // The model server never heard from a run.
    assert!(s.server.requests().is_empty());
}

#[test]
fn a_run_refused_for_credentials_forgets_what_was_remembered_about_the_host() {
    let Some(s) = setup(
        vec![Reply::Status(
            401,
            "{\"error\":{\"message\":\"bad key\"}}".into(),
        )],
        true,
    ) else {
        return;
    };
    let out = s
        .env
        .run(&["run", "--prompt", "anything", "--type", "quick-fix"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("credentials were refused on `testhost`"),
        "{err}"
    );
    // It got past the check (the project was pushed), and the check's answer is forgotten, so
    // the next run asks the host again.
    assert!(s.sshd.dir().join("ws").exists());
    let hosts = s.env.project.join(".codex-remote/hosts");
    let remembered = std::fs::read_dir(&hosts).map_or(0, |d| d.count());
    assert_eq!(
        remembered, 0,
        "the host's prerequisites are still remembered"
    );
}

#[test]
fn doctor_accepts_an_api_key_in_the_host_env_and_never_prints_it() {
    let Some(s) = setup(vec![Reply::message("unused")], true) else {
        return;
    };
    without_login(&s);
    let auth_check = |out: &std::process::Output| {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "codex authenticated")
            .cloned()
            .unwrap_or_else(|| panic!("no auth check: {v}"))
    };
    let out = s.env.run(&["doctor", "--json"]);
    assert_eq!(out.status.code(), Some(4));
    let check = auth_check(&out);
    assert_eq!(check["ok"], false, "{check}");
    assert!(
        check["fix"].as_str().unwrap().contains("codex login"),
        "{check}"
    );

    // OPENAI_API_KEY alone: Codex 0.169.0's exec does not read it; doctor says how to use it.
    let config_path = s.env.project.join("codex-remote.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    let with = |line: &str| {
        config.replace(
            "[hosts.testhost.env]\n",
            &format!("[hosts.testhost.env]\n{line}\n"),
        )
    };
    std::fs::write(&config_path, with("OPENAI_API_KEY = \"sk-secret-openai\"")).unwrap();
    let out = s.env.run(&["doctor", "--json"]);
    assert_eq!(out.status.code(), Some(4));
    let check = auth_check(&out);
    assert!(
        check["fix"]
            .as_str()
            .unwrap()
            .contains("codex login --with-api-key"),
        "{check}"
    );

    std::fs::write(&config_path, with("CODEX_API_KEY = \"sk-secret-codex\"")).unwrap();
    let out = s.env.run(&["doctor", "--json"]);
    let check = auth_check(&out);
    assert_eq!(check["ok"], true, "{check}");
    assert_eq!(check["detail"], "API key in $CODEX_API_KEY");
    let text = s.env.run(&["doctor"]);
    assert!(
        stdout(&text).contains("ok   codex authenticated"),
        "{}",
        stdout(&text)
    );
    for out in [&out, &text] {
        let all = format!("{}{}", stdout(out), stderr(out));
        assert!(!all.contains("sk-secret"), "a key leaked: {all}");
    }
    // The key may as well come from the host's shell init (as nvm's PATH does).
    std::fs::write(&config_path, &config).unwrap();
    let init = s.sshd.dir().join("nvm.sh");
    let mut script = std::fs::read_to_string(&init).unwrap();
    script.push_str("export CODEX_API_KEY=sk-secret-from-init\n");
    std::fs::write(&init, script).unwrap();
    let from_init = s.env.run(&["doctor", "--json"]);
    assert_eq!(auth_check(&from_init)["ok"], true, "{}", stdout(&from_init));
    assert!(!stdout(&from_init).contains("sk-secret"));
    // What doctor learned is remembered for the next run, without the key.
    let hosts = s.env.project.join(".codex-remote/hosts");
    let remembered: Vec<_> = std::fs::read_dir(&hosts).unwrap().collect();
    assert_eq!(remembered.len(), 1);
    let text = std::fs::read_to_string(remembered[0].as_ref().unwrap().path()).unwrap();
    assert!(
        text.contains("CODEX_API_KEY") && !text.contains("sk-secret"),
        "{text}"
    );
}

/// Polls an observable condition (not a timer) until it holds; fails after 60 s.
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The agent's event log on the host, for exactly-once comparisons.
fn remote_events(s: &Setup, run_id: &str) -> String {
    let path = s.sshd.dir().join(format!(
        "ws/.codex-remote/myapp/agents/{run_id}/1/events.jsonl"
    ));
    std::fs::read_to_string(path).unwrap()
}

fn local_events(s: &Setup, run_id: &str) -> String {
    std::fs::read_to_string(
        s.env
            .project
            .join(format!(".codex-remote/runs/{run_id}/events.jsonl")),
    )
    .unwrap_or_default()
}

#[test]
fn a_detached_run_survives_a_killed_client_and_attach_completes_it_exactly_once() {
    let script = vec![
        Reply::exec("c1", "printf 'one\\n' > one.txt"),
        Reply::exec("c2", "printf 'two\\n' > two.txt"),
        Reply::exec("c3", "printf 'three\\n' > three.txt"),
        Reply::message("three files written"),
    ];
    let Some(s) = setup(script, true) else { return };
    s.server.set_delay(std::time::Duration::from_millis(700));
    let out = s.env.run(&[
        "run",
        "--detach",
        "--keep",
        "--prompt",
        "write three files",
        "--type",
        "scaffold",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run_id = stdout(&out).trim().to_string();

    // Attach, and kill the client once it has recorded at least one event.
    let mut child = s
        .env
        .command(&["attach", &run_id])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until("attach records an event", || {
        assert!(
            child.try_wait().unwrap().is_none(),
            "attach ended before it was killed"
        );
        local_events(&s, &run_id).lines().count() >= 2
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = local_events(&s, &run_id).lines().count();

    let out = s.env.run(&["attach", &run_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    for (name, text) in [
        ("one.txt", "one\n"),
        ("two.txt", "two\n"),
        ("three.txt", "three\n"),
    ] {
        assert_eq!(
            std::fs::read_to_string(s.env.project.join(name)).unwrap(),
            text
        );
    }
    let local = local_events(&s, &run_id);
    assert!(
        local.lines().count() > partial,
        "the second attach added the rest"
    );
    assert_eq!(
        local,
        remote_events(&s, &run_id),
        "every event recorded exactly once, in order"
    );
    let out = s.env.run(&["attach", &run_id]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a finished run cannot be attached again"
    );
}

#[test]
fn cancel_leaves_no_agent_process_behind() {
    let Some(s) = setup(
        vec![Reply::exec("c1", "sleep 300"), Reply::message("never")],
        true,
    ) else {
        return;
    };
    let out = s
        .env
        .run(&["run", "--detach", "--prompt", "sleep", "--type", "debug"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run_id = stdout(&out).trim().to_string();
    let agent_dir = s
        .sshd
        .dir()
        .join(format!("ws/.codex-remote/myapp/agents/{run_id}/1"));
    // Wait until Codex is running the agent's `sleep 300` (its own event says so).
    wait_until("codex runs the sleep", || {
        remote_events(&s, &run_id).contains("sleep 300")
    });
    let pid: u32 = std::fs::read_to_string(agent_dir.join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let out = s.env.run(&["cancel", &run_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let in_group = live_in_group(pid);
    assert!(
        in_group.is_empty(),
        "processes of the agent's group survived: {in_group:?}"
    );
    let status = s.env.run(&["status", &run_id, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["run"]["phase"], "cancelled");
}

/// The live (not zombie) processes of process group `pgid` on this machine (the sshd host).
fn live_in_group(pgid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().collect())
                .unwrap_or_default();
            fields.get(2) == Some(&pgid.to_string().as_str()) && fields.first() != Some(&"Z")
        })
        .collect()
}

/// Ends the agents' process groups when a test fails before it ended them itself (so a failed
/// test leaves no Codex waiting on the machine).
struct EndOnFailure(Vec<u32>);

impl Drop for EndOnFailure {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for pgid in self.0.iter().filter(|p| !live_in_group(**p).is_empty()) {
            let _ = std::process::Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{pgid}")])
                .status();
        }
    }
}

/// The supervisor's pid of a run's first attempt, read from the host's agent dir (under the
/// workspace `ws` of the sshd's directory).
fn agent_pid(s: &Setup, ws: &str, run_id: &str) -> u32 {
    let path = s
        .sshd
        .dir()
        .join(format!("{ws}/.codex-remote/myapp/agents/{run_id}/1/pid"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .unwrap()
}

fn record_phase(s: &Setup, run_id: &str) -> serde_json::Value {
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            s.env
                .project
                .join(format!(".codex-remote/runs/{run_id}/run.json")),
        )
        .unwrap(),
    )
    .unwrap();
    record["phase"].clone()
}

/// Starts a detached run with `prompt` and waits until its agent (the real Codex) has asked
/// the model, whose replies the test holds.
fn start_held(s: &Setup, prompt: &str) -> String {
    let out = s
        .env
        .run(&["run", "--detach", "--prompt", prompt, "--type", "feature"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run_id = stdout(&out).trim().to_string();
    wait_until("the agent asks the model", || {
        s.server.user_texts().iter().any(|t| t.contains(prompt))
    });
    run_id
}

#[test]
fn a_run_is_found_where_it_started_after_the_workspace_setting_changes() {
    use codex_remote_testkit::model_server::{has_tool_output, FakeModelServer};
    let server = FakeModelServer::start_routed(|request| {
        if has_tool_output(request) {
            Reply::message("wrote moved.txt")
        } else {
            Reply::exec("c1", "printf 'moved\\n' > moved.txt")
        }
    });
    let Some(s) = common::setup_with(server, true) else {
        return;
    };
    s.server.hold();
    let kept = start_held(&s, "first task");
    let cancelled = start_held(&s, "second task");
    let (kept_pid, cancelled_pid) = (agent_pid(&s, "ws", &kept), agent_pid(&s, "ws", &cancelled));
    let _cleanup = EndOnFailure(vec![kept_pid, cancelled_pid]);
    // The host's workspace setting changes while both run (as after editing the config, or for
    // runs `demo` or another `--config` started).
    let config = s.env.project.join("codex-remote.toml");
    let old = std::fs::read_to_string(&config).unwrap();
    let ws = s.sshd.dir().join("ws").display().to_string();
    let moved_to = s.sshd.dir().join("ws-new");
    std::fs::write(&config, old.replace(&ws, &moved_to.display().to_string())).unwrap();
    assert!(!std::fs::read_to_string(&config)
        .unwrap()
        .contains(&format!("{ws}\"")));

    // `status` asks the host where the run is: its agent runs, with the pid the host recorded.
    let out = s.env.run(&["status", &kept, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["agent"]["state"], "running", "{v}");
    assert_eq!(v["agent"]["pid"], kept_pid, "{v}");

    // However old, a run whose agent works keeps its tree and files.
    let out = s
        .env
        .run(&["--json", "runs", "--prune", "--older-than", "0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pruned: serde_json::Value =
        serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
    assert_eq!(pruned["pruned"], serde_json::json!([]), "{pruned}");
    assert_eq!(agent_pid(&s, "ws", &kept), kept_pid);

    // `cancel` ends the agent where it runs, and says so truly.
    let out = s.env.run(&["cancel", &cancelled]);
    assert!(out.status.success(), "{}", stderr(&out));
    let survivors = live_in_group(cancelled_pid);
    assert!(
        survivors.is_empty(),
        "the cancelled agent's processes survived: {survivors:?}"
    );
    assert_eq!(record_phase(&s, &cancelled), "cancelled");
    assert!(
        !live_in_group(kept_pid).is_empty(),
        "the other run's agent was ended too"
    );

    // `attach` follows the other run there to its end, applies its result and gives its tree
    // back in the workspace it started in.
    s.server.release();
    let out = s.env.run(&["attach", &kept]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(
        std::fs::read_to_string(s.env.project.join("moved.txt")).unwrap(),
        "moved\n"
    );
    assert_eq!(record_phase(&s, &kept), "completed");
    assert!(
        !s.sshd
            .dir()
            .join(format!("ws/.codex-remote/myapp/agents/{kept}"))
            .exists(),
        "the run's agent files were not released where it ran"
    );
    // Pruning releases the cancelled run's tree there too, and empties that pool.
    let out = s
        .env
        .run(&["--json", "runs", "--prune", "--older-than", "0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pruned: serde_json::Value =
        serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
    assert_eq!(
        pruned["pruned"],
        serde_json::json!([cancelled.as_str()]),
        "{pruned}"
    );
    assert_eq!(
        pruned["idle_trees_removed"],
        serde_json::json!([{ "host": codex_remote_testkit::sshd::ALIAS, "trees": 2 }]),
        "{pruned}"
    );
    let trees = s.sshd.dir().join("ws/.codex-remote/myapp/trees");
    assert_eq!(
        std::fs::read_dir(&trees).unwrap().count(),
        0,
        "{}",
        trees.display()
    );
    assert!(
        !moved_to.exists(),
        "nothing of these runs belongs in the new workspace"
    );
}

#[test]
fn cancel_that_finds_no_agent_fails_and_leaves_the_run_running() {
    let Some(s) = setup(vec![Reply::message("done")], true) else {
        return;
    };
    s.server.hold();
    let run_id = start_held(&s, "wait here");
    let pid = agent_pid(&s, "ws", &run_id);
    let _cleanup = EndOnFailure(vec![pid]);
    // The host loses the run's agent files (a cleaned workspace, a moved disk).
    let agents = s
        .sshd
        .dir()
        .join(format!("ws/.codex-remote/myapp/agents/{run_id}"));
    let aside = s.sshd.dir().join("agents-aside");
    std::fs::rename(&agents, &aside).unwrap();

    let out = s.env.run(&["cancel", &run_id]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("found no agent of run `{run_id}`"))
            && err.contains("nothing was cancelled")
            && err.contains("hint: "),
        "{err}"
    );
    assert!(
        err.contains(&format!("`codex-remote status {run_id}`")),
        "{err}"
    );
    assert!(!stdout(&out).contains("cancelled run"), "{}", stdout(&out));
    assert_eq!(record_phase(&s, &run_id), "running");
    assert!(!live_in_group(pid).is_empty(), "the agent was not touched");
    let out = s.env.run(&["cancel", &run_id, "--json"]);
    assert_eq!(out.status.code(), Some(4));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["kind"], "prerequisite", "{v}");
    assert_eq!(v["error"]["exit_code"], 4, "{v}");
    assert_eq!(record_phase(&s, &run_id), "running");

    // Its files back, the same command ends it.
    std::fs::rename(&aside, &agents).unwrap();
    let out = s.env.run(&["cancel", &run_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        live_in_group(pid).is_empty(),
        "the agent survived its cancel"
    );
    assert_eq!(record_phase(&s, &run_id), "cancelled");
    s.server.release();
}

#[test]
fn doctor_reports_each_check_with_its_fix() {
    let Some(s) = setup(vec![Reply::message("unused")], true) else {
        return;
    };
    let out = s.env.run(&["doctor", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = |name: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no check {name}: {v}"))
    };
    for name in [
        "ssh reachable",
        "host key known",
        "shell init works",
        "codex found",
        "workspace writable",
        "git present",
        "rsync present",
        "free disk",
    ] {
        assert_eq!(check(name)["ok"], true, "{name}: {}", check(name));
    }
    assert!(check("codex found")["detail"]
        .as_str()
        .unwrap()
        .contains("0.169.0"));
    // No login in the test CODEX_HOME, but its model provider needs none: runs work, so the
    // check passes and says why.
    assert_eq!(check("codex authenticated")["ok"], true);
    assert_eq!(
        check("codex authenticated")["detail"],
        "model provider `fake` needs no login"
    );
    assert_eq!(out.status.code(), Some(0), "{v}");
    let text = stdout(&s.env.run(&["doctor"]));
    assert!(
        text.lines().any(|l| l.starts_with("ok   ssh reachable")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("ok   codex authenticated")),
        "{text}"
    );
}

#[test]
fn doctor_without_codex_suggests_the_nvm_shell_init() {
    let Some(s) = setup(vec![Reply::message("unused")], false) else {
        return;
    };
    let out = s.env.run(&["doctor", "--json"]);
    assert_eq!(out.status.code(), Some(4));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let codex = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "codex found")
        .unwrap()
        .clone();
    assert_eq!(codex["ok"], false);
    assert!(
        codex["fix"].as_str().unwrap().contains("shell init"),
        "{codex}"
    );
}

#[test]
fn doctor_on_an_unreachable_host_exits_3() {
    let Some(s) = setup(vec![Reply::message("unused")], true) else {
        return;
    };
    std::fs::write(s.sshd.dir().join("authorized_keys"), "").unwrap();
    let out = s.env.run(&["doctor"]);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("FAIL ssh reachable"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn run_from_a_plan_entry_keeps_its_status_true() {
    let Some(s) = setup(
        vec![
            Reply::exec("c1", "printf 'planned\\n' > planned.txt"),
            Reply::message("done"),
        ],
        true,
    ) else {
        return;
    };
    let instruction =
        "TASK: Write planned.txt\n\nREQUIREMENTS:\n1. Write it, with 'quotes' and $(no expansion)";
    let plan = serde_json::json!({
        "orchestrator": { "owner": "agent-7" },
        "tasks": [
            { "task_id": "write-planned", "executor": "codex-remote", "instruction": instruction, "status": "pending", "zz_custom": true, "aa_custom": 1 },
            { "task_id": "by-hand", "executor": "human", "status": "pending" }
        ]
    });
    let path = s.env.write(
        "task_plan.json",
        &format!("{}\n", serde_json::to_string_pretty(&plan).unwrap()),
    );
    let out = s.env.run(&[
        "run",
        "--plan",
        path.to_str().unwrap(),
        "--task-id",
        "write-planned",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(s.env.project.join("planned.txt")).unwrap(),
        "planned\n"
    );
    assert!(
        s.server.user_texts().iter().any(|t| t == instruction),
        "the plan's instruction is sent verbatim"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let after: serde_json::Value = serde_json::from_str(&text).unwrap();
    let entry = &after["tasks"][0];
    assert_eq!(entry["status"], "completed");
    assert!(entry["run_id"]
        .as_str()
        .unwrap()
        .starts_with("write-planned-"));
    assert!(entry["started_at"].is_string() && entry["finished_at"].is_string());
    assert_eq!(
        after["tasks"][1]["status"], "pending",
        "other entries untouched"
    );
    assert_eq!(after["orchestrator"]["owner"], "agent-7");
    assert!(
        text.find("zz_custom").unwrap() < text.find("aa_custom").unwrap(),
        "key order kept"
    );
    assert!(
        !s.env.project.join("task_plan.json.lock").exists(),
        "no lock beside the user's files"
    );
}

#[test]
fn a_failed_plan_run_records_the_reason() {
    let Some(s) = setup(vec![Reply::message("unused")], false) else {
        return;
    };
    let path = s.env.write("task_plan.json", "[{\"task_id\":\"t\",\"executor\":\"codex-remote\",\"instruction\":\"TASK: x\",\"status\":\"pending\"}]");
    let out = s
        .env
        .run(&["run", "--plan", path.to_str().unwrap(), "--task-id", "t"]);
    assert_eq!(out.status.code(), Some(4));
    let after: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(after[0]["status"], "failed");
    assert!(
        after[0]["error"]
            .as_str()
            .unwrap()
            .contains("codex was not found"),
        "{after}"
    );
}

#[test]
fn an_agent_killed_with_its_host_is_relaunched_by_attach() {
    let Some(s) = common::setup_with(
        codex_remote_testkit::model_server::write_file_server(),
        true,
    ) else {
        return;
    };
    s.server.set_delay(std::time::Duration::from_millis(1500));
    let out = s.env.run(&[
        "run",
        "--detach",
        "--keep",
        "--prompt",
        "TASK: WRITE survivor.txt",
        "--type",
        "feature",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run_id = stdout(&out).trim().to_string();
    let pid_file = s
        .sshd
        .dir()
        .join(format!("ws/.codex-remote/myapp/agents/{run_id}/1/pid"));
    wait_until("the agent records its pid", || {
        std::fs::read_to_string(&pid_file).is_ok_and(|p| !p.trim().is_empty())
    });
    // What a reboot does to it: the whole group gone, no exit status recorded.
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_string();
    let killed = std::process::Command::new("kill")
        .args(["-9", "--", &format!("-{pid}")])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = s.env.run(&["attach", &run_id]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(
        std::fs::read_to_string(s.env.project.join("survivor.txt")).unwrap(),
        "survivor.txt\n"
    );
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            s.env
                .project
                .join(format!(".codex-remote/runs/{run_id}/run.json")),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(record["attempt"], 2, "relaunched once");
}
