//! `codex-remote watch` in a real terminal (tmux), over runs made by the real Codex CLI against a
//! real sshd and the scripted model server; and its plain-lines form when stdout is a pipe.

mod common;

use std::time::{Duration, Instant};

use codex_remote_testkit::model_server::Reply;
use common::{setup, stderr, stdout, Tmux};

/// A tmux server of its own (its own socket), torn down on drop.

#[test]
fn watch_shows_runs_live_and_follows_diffs_applies_and_cancels_in_a_real_terminal() {
    let edit = "printf 'export const a = 2;\\n' > src/app.ts";
    let Some(s) = setup(
        vec![
            Reply::exec("c1", edit),
            Reply::message("Bumped a to 2"),
            Reply::exec("c2", "sleep 300"),
            Reply::message("never"),
        ],
        true,
    ) else {
        return;
    };
    // A finished run whose result waits to be applied (and its checklist item ticked)...
    s.env.write("SPEC.md", "- [ ] Bump a\n");
    let out = s.env.run(&[
        "run",
        "--prompt",
        "Bump a to 2",
        "--type",
        "quick-fix",
        "--no-apply",
        "--checkpoint",
        "SPEC.md",
        "--item",
        "Bump a",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // ...and one whose agent is still working, detached.
    let out = s.env.run(&[
        "run",
        "--detach",
        "--prompt",
        "Sleep a while",
        "--type",
        "debug",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let sleeping = stdout(&out).trim().to_string();
    let runs: serde_json::Value =
        serde_json::from_slice(&s.env.run(&["runs", "--json"]).stdout).unwrap();
    let finished = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .find(|id| *id != sleeping)
        .unwrap();

    // A real terminal: tmux, with the sealed environment.
    let mut vars = s.env.vars.clone();
    vars.push(("HOME".into(), s.env.home.path().display().to_string()));
    let binary = env!("CARGO_BIN_EXE_codex-remote");
    let tmux = Tmux::start(
        "watch",
        &s.env.project,
        &vars,
        &[binary, "watch", "--interval", "200ms"],
    );

    let screen = tmux.wait_for("both runs listed", |screen| {
        screen.contains("RUN") && screen.contains(&finished[..20]) && screen.contains("running")
    });
    assert!(screen.contains("ready to apply"), "{screen}");
    assert!(screen.contains("completed"), "{screen}");

    // Follow the finished run's events: it is the older one, so the second row.
    let row = |screen: &str, id: &str| {
        screen
            .lines()
            .any(|l| l.contains("> ") && l.contains(&id[..20]))
    };
    if !row(&tmux.screen(), &finished) {
        tmux.keys(&["Down"]);
    }
    tmux.wait_for("the finished run selected", |screen| row(screen, &finished));
    tmux.keys(&["f"]);
    let screen = tmux.wait_for("its events", |screen| screen.contains("┌ events of"));
    assert!(screen.contains("agent: Bumped a to 2"), "{screen}");
    assert!(screen.contains("$ "), "{screen}");
    tmux.keys(&["Escape"]);
    tmux.wait_for("the list again", |screen| screen.contains("LAST ACTIVITY"));

    // Its diff.
    tmux.keys(&["d"]);
    let screen = tmux.wait_for("its diff", |screen| screen.contains("┌ diff of"));
    assert!(screen.contains("+export const a = 2;"), "{screen}");
    tmux.keys(&["Escape"]);
    tmux.wait_for("the list again", |screen| screen.contains("LAST ACTIVITY"));

    // Apply it (after a confirmation).
    tmux.keys(&["a"]);
    tmux.wait_for("the apply question", |screen| screen.contains("(y/n)"));
    tmux.keys(&["y"]);
    let screen = tmux.wait_for("the apply", |screen| screen.contains("applied run"));
    assert_eq!(
        std::fs::read_to_string(s.env.project.join("src/app.ts")).unwrap(),
        "export const a = 2;\n",
        "{screen}"
    );
    assert!(screen.contains("ticked `Bump a` in "), "{screen}");
    assert_eq!(
        std::fs::read_to_string(s.env.project.join("SPEC.md")).unwrap(),
        format!("- [x] Bump a ← Completed via Codex (run {finished})\n")
    );
    tmux.wait_for("the applied state", |screen| {
        screen
            .lines()
            .any(|l| l.contains(&finished[..20]) && l.contains("applied"))
    });

    // Follow the detached one: nobody records its events locally, so they come from its host.
    tmux.keys(&["Up"]);
    tmux.wait_for("the running run selected", |screen| row(screen, &sleeping));
    tmux.keys(&["f"]);
    tmux.wait_for("its events, read on its host", |screen| {
        screen.contains(&format!("┌ events of {sleeping}")) && screen.contains("sleep 300")
    });
    tmux.keys(&["Escape"]);
    tmux.wait_for("the list again", |screen| screen.contains("LAST ACTIVITY"));

    // Cancel it.
    tmux.keys(&["c"]);
    tmux.wait_for("the cancel question", |screen| screen.contains("(y/n)"));
    tmux.keys(&["y"]);
    tmux.wait_for("the cancel", |screen| screen.contains("cancelled run"));
    let status: serde_json::Value =
        serde_json::from_slice(&s.env.run(&["status", &sleeping, "--json"]).stdout).unwrap();
    assert_eq!(status["run"]["phase"], "cancelled");

    // Quit: the view goes, the terminal is given back and the program ends. (It once seemed to
    // linger under load: tmux had left the exited program unreaped; its status is now recorded
    // by the shell the pane runs it under.)
    tmux.keys(&["q"]);
    tmux.wait_for("the terminal given back", |screen| {
        !screen.contains("LAST ACTIVITY")
    });
    assert_eq!(tmux.wait_exit(30), 0, "{}", tmux.screen());

    // Without a terminal: one plain line per run, and the command ends (no run is active now).
    let out = s.env.run(&["watch"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let line = |id: &str| {
        text.lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("no line for {id}: {text}"))
            .to_string()
    };
    let applied = line(&finished);
    assert!(
        applied.contains("phase=completed")
            && applied.contains("files=1")
            && applied.contains("state=applied")
            && applied.contains("last=")
            && applied.contains("agent: Bumped a to 2"),
        "{applied}"
    );
    assert!(line(&sleeping).contains("phase=cancelled"), "{text}");
    assert!(
        !text.contains('\x1b'),
        "no terminal escapes in plain mode: {text:?}"
    );

    // With a plan: its codex-remote entries first, with their status and run.
    s.env.write(
        "task_plan.json",
        &format!("[{{\"task_id\":\"bump\",\"executor\":\"codex-remote\",\"instruction\":\"x\",\"status\":\"completed\",\"run_id\":\"{finished}\"}},{{\"task_id\":\"later\",\"executor\":\"codex-remote\",\"instruction\":\"y\",\"status\":\"pending\"}},{{\"task_id\":\"mine\",\"executor\":\"human\",\"status\":\"pending\"}}]\n"),
    );
    let out = s.env.run(&["watch", "task_plan.json"]);
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "plan task_plan.json: 1 pending, 0 running, 1 completed, 0 failed",
        "{text}"
    );
    assert!(
        lines
            .next()
            .unwrap()
            .contains(&format!("bump                 completed  {finished}")),
        "{text}"
    );
    assert!(
        lines
            .next()
            .unwrap()
            .contains("later                pending    -"),
        "{text}"
    );
    assert!(!text.contains("mine"), "{text}");
}

/// A detached run nobody follows records nothing here: `watch` asks its host, as `status` does,
/// so it says the agent is done (not that it waits for a first event), and the plain form ends
/// (the run changes no more until someone attaches).
#[test]
fn watch_says_what_the_host_says_of_a_detached_run_nobody_follows() {
    let Some(s) = setup(vec![Reply::message("All done")], true) else {
        return;
    };
    let out = s.env.run(&[
        "run", "-q", "--detach", "--prompt", "Say done", "--type", "debug",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    // Poll until the host says the agent finished (no sleep stands in for the event).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status: serde_json::Value =
            serde_json::from_slice(&s.env.run(&["status", &id, "--json"]).stdout).unwrap();
        if status["agent"]["state"] == "finished" {
            assert_eq!(status["agent"]["code"], 0, "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "never finished: {status}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = s.env.run(&["watch", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = &v["runs"][0];
    assert_eq!(run["run_id"], id.as_str(), "{v}");
    assert_eq!(run["phase"], "running", "{v}");
    assert_eq!(run["state"], "agent done on the host: `attach` it", "{v}");
    // Plain lines: the same words, and the command ends by itself.
    let out = s.env.run(&["watch"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("agent done on the host") && !text.contains("waiting for the agent"),
        "{text}"
    );
}
