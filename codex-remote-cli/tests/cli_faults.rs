//! Faults end cleanly and truthfully (issue 9, D13-D19; issue 12 item 5): a broken follow is not a
//! vanished agent, cancel leaves nothing behind, refused runs say so, `--json` stays JSON Lines.
//! Real sshd, the real Codex CLI and the scripted model server wherever a run is involved.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use codex_remote_testkit::model_server::Reply;
use common::{setup, stderr, stdout, Setup};

/// Polls an observable condition (not a timer) until it holds; fails after 60 s.
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn agents_dir(s: &Setup) -> PathBuf {
    s.sshd.dir().join("ws/.codex-remote/myapp/agents")
}

/// The one run's id (the project has exactly one).
fn only_run(s: &Setup) -> Option<String> {
    let dir = s.env.project.join(".codex-remote/runs");
    let mut ids: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
        .collect();
    assert!(ids.len() <= 1, "{ids:?}");
    ids.pop()
}

fn record(s: &Setup, run_id: &str) -> serde_json::Value {
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

/// Every live (non-zombie) process: (pid, argv, environ).
fn processes() -> Vec<(u32, Vec<String>, Vec<String>)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_string();
            if state == "Z" {
                return None;
            }
            let split = |bytes: Vec<u8>| -> Vec<String> {
                bytes
                    .split(|b| *b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect()
            };
            let argv = split(std::fs::read(format!("/proc/{pid}/cmdline")).ok()?);
            let env = split(std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default());
            Some((pid, argv, env))
        })
        .collect()
}

/// The host-side `tail` following this project's agents (started by the follow script).
fn follow_tails(agents: &Path) -> Vec<u32> {
    let agents = agents.display().to_string();
    processes()
        .into_iter()
        .filter(|(_, argv, _)| {
            argv.first()
                .is_some_and(|a| a == "tail" || a.ends_with("/tail"))
                && argv.iter().any(|a| a == "-f")
                && argv.iter().any(|a| a.contains(&agents))
        })
        .map(|(pid, _, _)| pid)
        .collect()
}

/// The live processes carrying an attempt's marker (the agent and all it started).
#[allow(dead_code)]
fn marked(agent_dir: &Path) -> Vec<(u32, Vec<String>)> {
    let Ok(token) = std::fs::read_to_string(agent_dir.join("marker")) else {
        return Vec::new();
    };
    let needle = format!("CODEX_REMOTE_AGENT={}", token.trim());
    processes()
        .into_iter()
        .filter(|(_, _, env)| env.iter().any(|e| *e == needle))
        .map(|(pid, argv, _)| (pid, argv))
        .collect()
}

#[test]
fn a_follow_whose_tail_is_killed_is_followed_again_and_never_relaunches_the_agent() {
    let Some(s) = setup(
        vec![
            Reply::exec("c1", "printf 'edit\\n' >> edits.txt"),
            Reply::exec("c2", "printf 'more\\n' >> more.txt"),
            Reply::message("edited once"),
        ],
        true,
    ) else {
        return;
    };
    s.server.set_delay(Duration::from_millis(800));
    let child = s
        .env
        .command(&[
            "run",
            "--keep",
            "--prompt",
            "append one line",
            "--type",
            "feature",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Mid-run: the agent has made its edit, and the follow's tail on the host is running.
    let agents = agents_dir(&s);
    wait_until("the agent has made its edit", || {
        only_run(&s).is_some_and(|id| {
            std::fs::read_to_string(agents.join(&id).join("1/events.jsonl"))
                .is_ok_and(|e| e.contains("edits.txt") && e.contains("item.completed"))
        })
    });
    let tails = follow_tails(&agents);
    assert_eq!(tails.len(), 1, "one follow runs: {tails:?}");
    let killed = std::process::Command::new("kill")
        .args(["-9", &tails[0].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    let run_id = only_run(&s).unwrap();
    // One agent: one attempt, the edit applied once.
    assert_eq!(record(&s, &run_id)["attempt"], 1);
    assert!(
        !agents.join(&run_id).join("2").exists(),
        "a second agent was launched"
    );
    assert_eq!(
        std::fs::read_to_string(s.env.project.join("edits.txt")).unwrap(),
        "edit\n"
    );
    assert_eq!(
        std::fs::read_to_string(s.env.project.join("more.txt")).unwrap(),
        "more\n"
    );
    // Every event recorded exactly once, in order, across the two follows.
    assert_eq!(
        std::fs::read_to_string(
            s.env
                .project
                .join(format!(".codex-remote/runs/{run_id}/events.jsonl"))
        )
        .unwrap(),
        std::fs::read_to_string(agents.join(&run_id).join("1/events.jsonl")).unwrap()
    );
}
