//! A host's `env` values (API keys) never appear on a command line on the host, in a message,
//! a run record, task_plan.json or the recorded events: over a real sshd, with the real Codex CLI.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;

use codex_remote_testkit::model_server::Reply;
use codex_remote_testkit::sshd::{ensure_user, ALIAS};
use common::{setup, stderr, stdout, Setup};

const SECRET: &str = "sk-codexremote-test-SECRET-4f2a9c71";
/// Another user of the host, who must not see the secret.
const OTHER_USER: &str = "crnosy";

/// Adds the secret to the host's env in the project config.
fn with_secret(s: &Setup) {
    let path = s.env.project.join("codex-remote.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let section = format!("[hosts.{ALIAS}.env]\n");
    assert!(text.contains(&section));
    let text = text.replace(
        &section,
        &format!("{section}OPENAI_API_KEY = \"{SECRET}\"\n"),
    );
    std::fs::write(path, text).unwrap();
}

/// `ps -eo args` as another user; `None` when no such user can be made (not root, outside CI).
fn ps_as_other_user() -> Option<String> {
    if !ensure_user(OTHER_USER, "") {
        assert!(
            !codex_remote_testkit::in_ci(),
            "cannot create the user {OTHER_USER} (tests run as root in CI)"
        );
        return None;
    }
    let id = |flag: &str| -> u32 {
        let out = std::process::Command::new("id")
            .args([flag, OTHER_USER])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    let out = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .uid(id("-u"))
        .gid(id("-g"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
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

/// Every file under `dir` holding the secret.
fn files_with_secret(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_with_secret(&path));
        } else if std::fs::read(&path)
            .unwrap_or_default()
            .windows(SECRET.len())
            .any(|w| w == SECRET.as_bytes())
        {
            found.push(path.display().to_string());
        }
    }
    found
}

#[test]
fn another_user_never_sees_the_hosts_env_values_during_a_run() {
    let Some(s) = setup(
        vec![
            Reply::exec("c1", "sleep 300 # codex-remote-secret-test"),
            Reply::message("never"),
        ],
        true,
    ) else {
        return;
    };
    with_secret(&s);
    let out = s.env.run(&[
        "run",
        "--detach",
        "--prompt",
        "print the key",
        "--type",
        "debug",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run_id = stdout(&out).trim().to_string();
    // Whatever happens below, the agent does not outlive the test.
    let _cancel = CancelOnDrop(&s, run_id.clone());
    let events = s.sshd.dir().join(format!(
        "ws/.codex-remote/myapp/agents/{run_id}/1/events.jsonl"
    ));
    wait_until("codex runs the agent's sleep", || {
        std::fs::read_to_string(&events)
            .unwrap_or_default()
            .contains("codex-remote-secret-test")
    });
    let Some(ps) = ps_as_other_user() else {
        return;
    };
    // The other user does see the run's processes (so the check below means something)...
    assert!(
        ps.contains("codex-remote-secret-test") && ps.contains(&run_id),
        "the run's processes are not visible to {OTHER_USER}:\n{ps}"
    );
    // ...but not the key, though the agent has it.
    assert!(
        !ps.contains(SECRET),
        "the secret is on a command line:\n{}",
        ps.lines()
            .filter(|l| l.contains(SECRET))
            .collect::<Vec<_>>()
            .join("\n")
    );
    drop(_cancel);
    assert_eq!(
        files_with_secret(&s.env.project.join(".codex-remote")),
        Vec::<String>::new()
    );
}

struct CancelOnDrop<'a>(&'a Setup, String);

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        let out = self.0.env.run(&["cancel", &self.1]);
        if !std::thread::panicking() {
            assert!(out.status.success(), "{}", stderr(&out));
        }
    }
}

#[test]
fn a_failed_launch_records_no_secret() {
    let Some(s) = setup(vec![Reply::message("unused")], true) else {
        return;
    };
    with_secret(&s);
    // The agents' directory cannot be made: the launch fails on the host.
    let blocked = s.sshd.dir().join("ws/.codex-remote/myapp/agents");
    std::fs::create_dir_all(blocked.parent().unwrap()).unwrap();
    std::fs::write(&blocked, "not a directory\n").unwrap();
    let plan = s.env.write(
        "task_plan.json",
        "[{\"task_id\":\"t\",\"executor\":\"codex-remote\",\"instruction\":\"TASK: x\",\"status\":\"pending\"}]\n",
    );
    let out = s
        .env
        .run(&["run", "--plan", plan.to_str().unwrap(), "--task-id", "t"]);
    assert!(!out.status.success());
    assert!(!stderr(&out).contains(SECRET), "{}", stderr(&out));
    let after: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    assert_eq!(after[0]["status"], "failed", "{after}");
    let error = after[0]["error"].as_str().unwrap();
    assert!(error.contains("agents"), "the reason is kept: {error}");
    assert!(!error.contains(SECRET), "{error}");
    let runs = s.env.project.join(".codex-remote/runs");
    let record: serde_json::Value = std::fs::read_dir(&runs)
        .unwrap()
        .flatten()
        .map(|e| {
            serde_json::from_slice(&std::fs::read(e.path().join("run.json")).unwrap()).unwrap()
        })
        .next()
        .expect("the failed run is recorded");
    assert_eq!(record["phase"], "failed", "{record}");
    assert_eq!(
        files_with_secret(&s.env.project.join(".codex-remote")),
        Vec::<String>::new()
    );
    assert!(!std::fs::read_to_string(&plan).unwrap().contains(SECRET));
}

#[test]
fn an_interactive_session_gets_the_env_from_a_file_never_the_command_line() {
    let Some(s) = setup(vec![Reply::message("unused")], true) else {
        return;
    };
    with_secret(&s);
    // The TUI stands in as a script that records what every user could see, and what it got
    // (the prerequisite check still meets the real Codex).
    let seen = s.sshd.dir().join("seen");
    std::fs::create_dir_all(&seen).unwrap();
    let codex = codex_remote_testkit::model_server::codex_binary().unwrap();
    let fake = s.sshd.write_file(
        "fake-codex",
        &format!(
            "#!/bin/sh\n[ \"$1\" = --no-daemon ] || exec '{1}' \"$@\"\nps -eo args > '{0}/ps.txt'\nprintf '%s' \"$OPENAI_API_KEY\" > '{0}/key.txt'\n",
            seen.display(),
            codex.display()
        ),
    );
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = s.env.project.join("codex-remote.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("[hosts.{ALIAS}]\n"),
        &format!("[hosts.{ALIAS}]\ncodex = \"{}\"\n", fake.display()),
    );
    std::fs::write(&config, text).unwrap();
    let out = s.env.run(&["push"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // In a terminal (tmux), as the session needs one.
    let mut vars = s.env.vars.clone();
    vars.push(("HOME".into(), s.env.home.path().display().to_string()));
    let binary = env!("CARGO_BIN_EXE_codex-remote");
    let tmux = common::Tmux::start("secrets", &s.env.project, &vars, &[binary, "interactive"]);
    let status = tmux.wait_exit(60);
    assert_eq!(status, 0, "{}", tmux.screen());
    assert_eq!(
        std::fs::read_to_string(seen.join("key.txt")).unwrap(),
        SECRET,
        "the session has the host's env"
    );
    let ps = std::fs::read_to_string(seen.join("ps.txt")).unwrap();
    assert!(ps.contains("fake-codex"), "{ps}");
    assert!(
        !ps.contains(SECRET),
        "the secret is on a command line:\n{ps}"
    );
    let state = s.sshd.dir().join("ws/.codex-remote");
    let left: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("env."))
        .collect();
    assert!(left.is_empty(), "the env file was not removed: {left:?}");
}
