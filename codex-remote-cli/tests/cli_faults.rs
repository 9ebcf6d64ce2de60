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
fn marked(agent_dir: &Path) -> Vec<(u32, Vec<String>)> {
    let Ok(token) = std::fs::read_to_string(agent_dir.join("marker")) else {
        return Vec::new();
    };
    let needle = format!("CODEX_REMOTE_AGENT={}", token.trim());
    processes()
        .into_iter()
        .filter(|(_, _, env)| env.contains(&needle))
        .map(|(pid, argv, _)| (pid, argv))
        .collect()
}

#[test]
fn a_follow_broken_by_a_killed_tail_or_a_lost_connection_is_resumed_and_never_relaunches_the_agent()
{
    let Some(s) = setup(
        vec![
            Reply::exec("c1", "printf 'edit\\n' >> edits.txt"),
            Reply::exec("c2", "printf 'more\\n' >> more.txt"),
            Reply::exec("c3", "printf 'last\\n' >> last.txt"),
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

    // Then the connection itself: the local ssh master carrying the follow dies.
    wait_until("the agent has made its second edit", || {
        only_run(&s).is_some_and(|id| {
            std::fs::read_to_string(agents.join(&id).join("1/events.jsonl"))
                .is_ok_and(|e| e.contains("more.txt") && e.matches("item.completed").count() >= 3)
        })
    });
    let config = s.sshd.ssh_config().display().to_string();
    let masters: Vec<u32> = processes()
        .into_iter()
        .filter(|(_, argv, _)| {
            argv.first()
                .is_some_and(|a| a == "ssh" || a.ends_with("/ssh"))
                && argv.iter().any(|a| a == "-M")
                && argv.contains(&config)
        })
        .map(|(pid, _, _)| pid)
        .collect();
    assert_eq!(masters.len(), 1, "one ssh master: {masters:?}");
    let killed = std::process::Command::new("kill")
        .args(["-9", &masters[0].to_string()])
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
    assert_eq!(
        std::fs::read_to_string(s.env.project.join("last.txt")).unwrap(),
        "last\n"
    );
    // An applied run cannot be cancelled, and its record is not rewritten.
    let path = s
        .env
        .project
        .join(format!(".codex-remote/runs/{run_id}/run.json"));
    let before = std::fs::read(&path).unwrap();
    let out = s.env.run(&["cancel", &run_id]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("already completed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // Every event recorded exactly once, in order, across the follows.
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

fn supervisor_pid(agent_dir: &Path) -> u32 {
    std::fs::read_to_string(agent_dir.join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn process_group(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

#[test]
fn cancel_ends_children_that_left_the_process_group_and_a_finished_run_cannot_be_cancelled() {
    let Some(s) = setup(
        vec![
            Reply::exec(
                "c1",
                "nohup sleep 3001 >/dev/null 2>&1 & setsid sleep 3002 >/dev/null 2>&1 < /dev/null & sleep 3003",
            ),
            Reply::message("never"),
        ],
        true,
    ) else {
        return;
    };
    let out = s.env.run(&[
        "run",
        "--detach",
        "--sandbox",
        "danger-full-access",
        "--prompt",
        "start background work",
        "--type",
        "debug",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run_id = stdout(&out).trim().to_string();
    let agent_dir = agents_dir(&s).join(&run_id).join("1");
    let sleeps = |processes: &[(u32, Vec<String>)]| -> Vec<u32> {
        processes
            .iter()
            .filter(|(_, argv)| {
                argv.first().is_some_and(|a| a.ends_with("sleep"))
                    && argv
                        .iter()
                        .any(|a| ["3001", "3002", "3003"].contains(&a.as_str()))
            })
            .map(|(pid, _)| *pid)
            .collect()
    };
    wait_until("the agent runs its three sleeps", || {
        sleeps(&marked(&agent_dir)).len() == 3
    });
    // At least one of them left the agent's process group (`setsid`).
    let group = supervisor_pid(&agent_dir);
    let escaped: Vec<u32> = sleeps(&marked(&agent_dir))
        .into_iter()
        .filter(|pid| process_group(*pid).is_some_and(|g| g != group))
        .collect();
    assert!(!escaped.is_empty(), "no child left the group");

    let out = s.env.run(&["cancel", &run_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let all: Vec<(u32, Vec<String>)> = processes()
        .into_iter()
        .map(|(pid, argv, _)| (pid, argv))
        .collect();
    assert!(sleeps(&all).is_empty(), "survivors: {:?}", sleeps(&all));
    assert!(marked(&agent_dir).is_empty(), "{:?}", marked(&agent_dir));
    assert_eq!(record(&s, &run_id)["phase"], "cancelled");

    // Cancelling it again is refused and rewrites nothing.
    let path = s
        .env
        .project
        .join(format!(".codex-remote/runs/{run_id}/run.json"));
    let before = std::fs::read(&path).unwrap();
    let out = s.env.run(&["cancel", &run_id]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("already cancelled"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn a_refused_result_is_recorded_as_refused_and_cannot_be_cancelled() {
    let Some(s) = setup(
        vec![
            Reply::exec("c1", "printf '{\"name\":\"changed\"}\\n' > package.json"),
            Reply::message("changed package.json"),
        ],
        true,
    ) else {
        return;
    };
    let out = s
        .env
        .run(&["run", "--prompt", "change deps", "--type", "feature"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let run_id = only_run(&s).unwrap();
    let rec = record(&s, &run_id);
    assert_eq!(rec["phase"], "refused", "{rec}");
    assert!(
        rec["error"].as_str().unwrap().contains("package.json"),
        "{rec}"
    );
    assert_eq!(
        std::fs::read_to_string(s.env.project.join("package.json")).unwrap(),
        "{}\n"
    );
    let status = s.env.run(&["status", &run_id]);
    assert!(
        stdout(&status).contains("phase     refused"),
        "{}",
        stdout(&status)
    );

    let path = s
        .env
        .project
        .join(format!(".codex-remote/runs/{run_id}/run.json"));
    let before = std::fs::read(&path).unwrap();
    let out = s.env.run(&["cancel", &run_id, "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let error: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(error["error"]["exit_code"], 2);
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn exec_timeout_ends_the_command_at_the_deadline() {
    let Some(s) = setup(vec![Reply::message("unused")], true) else {
        return;
    };
    let started = Instant::now();
    let out = s
        .env
        .run(&["exec", "--timeout", "1", "--", "sleep", "3011"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("did not finish within 1s"),
        "{}",
        stderr(&out)
    );
    // Ended by the deadline, long before the command would have.
    assert!(started.elapsed() < Duration::from_secs(60));
    let left: Vec<u32> = processes()
        .into_iter()
        .filter(|(_, argv, _)| argv.iter().any(|a| a == "3011"))
        .map(|(pid, _, _)| pid)
        .collect();
    assert!(left.is_empty(), "the command survived: {left:?}");
}

#[test]
fn json_mode_prints_only_json_lines_even_for_errors() {
    let Some(s) = setup(vec![Reply::message("unused")], false) else {
        return;
    };
    // A run that fails (codex missing on the host): events, then the error, one object per line.
    let out = s.env.run(&[
        "run",
        "--json",
        "--prompt",
        "anything",
        "--type",
        "quick-fix",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect();
    let last = lines.last().unwrap();
    assert_eq!(last["error"]["exit_code"], 4, "{last}");
    assert_eq!(last["error"]["kind"], "prerequisite", "{last}");
    assert!(last["error"]["message"].as_str().unwrap().contains("codex"));

    // A usage error, as JSON too.
    let out = s.env.run(&["run", "--json", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    let error: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(error["error"]["kind"], "bad-input");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--no-such-flag"));
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let env = common::Env::new();
    for args in [&["schema", "plan"][..], &["schema", "plan", "--json"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = env
            .command(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(stderr(&out), "", "{args:?}");
    }
}

/// Whether this machine can make a PID namespace (root, or user namespaces); under CI it must.
fn pid_namespaces_work() -> bool {
    let works = std::process::Command::new("unshare")
        .args(["--fork", "--pid", "--mount-proc", "true"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        works || std::env::var_os("CI").is_none(),
        "CI needs `unshare --fork --pid --mount-proc` (run as root)"
    );
    works
}

#[test]
fn a_run_ends_when_its_agent_does_on_a_host_whose_pid_1_never_reaps() {
    let Some(codex) = codex_remote_testkit::model_server::codex_binary() else {
        return;
    };
    if !pid_namespaces_work() {
        return;
    }
    let server = codex_remote_testkit::model_server::FakeModelServer::start(vec![
        Reply::exec("c1", "printf 'reaped or not\\n' > zombie.txt"),
        Reply::message("done"),
    ]);
    let env = common::Env::new();
    let codex_home = server.write_codex_home(&env.home.path().join("codex-home"));
    env.write(
        "codex-remote.toml",
        &format!(
            "[hosts.local]\nworkspace = \"{}\"\nshell_init = \"export PATH='{}':$PATH\"\n[hosts.local.env]\nCODEX_HOME = \"{}\"\n",
            env.home.path().join("ws").display(),
            codex.parent().unwrap().display(),
            codex_home.display()
        ),
    );
    // codex-remote is PID 1 of a fresh PID namespace: the agent's supervisor, orphaned by the
    // launch, is reparented to it, and it never reaps orphans (it waits only for its own
    // children), so the supervisor stays a zombie after it exits, forever.
    let inner = env.command(&[
        "run",
        "--host",
        "local",
        "--prompt",
        "write zombie.txt",
        "--type",
        "quick-fix",
    ]);
    let mut command = std::process::Command::new("unshare");
    command
        .args(["--fork", "--pid", "--mount-proc", "--kill-child"])
        .arg(inner.get_program())
        .args(inner.get_args())
        .current_dir(inner.get_current_dir().unwrap())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => command.env(k, v),
            None => command.env_remove(k),
        };
    }
    let mut child = command.spawn().unwrap();
    // Not a timing assertion: a bound so that a follow that never ends fails instead of hanging.
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the run never ended (its agent's supervisor is a zombie no one reaps)\nstderr: {}",
                stderr(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(env.project.join("zombie.txt")).unwrap(),
        "reaped or not\n"
    );
}

#[test]
fn a_silent_agent_is_ended_at_the_stall_timeout_and_codex_notices_are_shown() {
    let Some(s) = setup(vec![Reply::message("unused")], true) else {
        return;
    };
    // The model provider is down: Codex says it is reconnecting, and waits for ever.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        s.sshd.dir().join("codex-home/config.toml"),
        format!("model_provider = \"fake\"\n\n[model_providers.fake]\nname = \"fake\"\nbase_url = \"http://127.0.0.1:{closed_port}/v1\"\nwire_api = \"responses\"\nrequires_openai_auth = false\n"),
    )
    .unwrap();
    let out = s.env.run(&[
        "run",
        "--stall-timeout",
        "8s",
        "--prompt",
        "anything",
        "--type",
        "quick-fix",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    let err = stderr(&out);
    // Codex's own notice is in the normal output, and in the error that ends the run.
    assert!(err.contains("codex: Reconnecting"), "{err}");
    assert!(err.contains("made no progress for 8s"), "{err}");
    assert!(err.contains("Codex last said: Reconnecting"), "{err}");
    let run_id = only_run(&s).unwrap();
    let rec = record(&s, &run_id);
    assert_eq!(rec["phase"], "failed");
    assert!(rec["error"].as_str().unwrap().contains("stalled"), "{rec}");
    let agent_dir = agents_dir(&s).join(&run_id).join("1");
    assert!(marked(&agent_dir).is_empty(), "{:?}", marked(&agent_dir));
}

/// A tiny tmpfs mounted over a directory of the host (root only), unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            mounted || std::env::var_os("CI").is_none(),
            "CI needs to mount a tmpfs (run as root)"
        );
        mounted.then(|| SmallDisk(dir.to_path_buf()))
    }

    /// Fills it to the last byte.
    fn fill(&self) {
        let _ = std::process::Command::new("sh")
            .args(["-c", "cat /dev/zero > \"$1\" 2>/dev/null", "sh"])
            .arg(self.0.join("filler"))
            .status();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

fn assert_disk_full_reported(s: &Setup, out: &std::process::Output) {
    assert_eq!(
        out.status.code(),
        Some(4),
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
    assert!(
        stderr(out).contains("No space left on device"),
        "{}",
        stderr(out)
    );
    let run_id = only_run(s).expect("the run is recorded");
    let rec = record(s, &run_id);
    assert_eq!(rec["phase"], "failed", "{rec}");
    assert!(
        rec["error"]
            .as_str()
            .unwrap()
            .contains("No space left on device"),
        "{rec}"
    );
    let status = s.env.run(&["status", &run_id]);
    assert!(status.status.success(), "{}", stderr(&status));
    assert!(
        stdout(&status).contains("phase     failed")
            && stdout(&status).contains("No space left on device"),
        "{}",
        stdout(&status)
    );
    let attach = s.env.run(&["attach", &run_id]);
    assert_eq!(attach.status.code(), Some(4), "{}", stderr(&attach));
    assert!(
        stderr(&attach).contains("No space left on device"),
        "{}",
        stderr(&attach)
    );
}

#[test]
fn a_disk_that_fills_during_the_run_ends_it_with_exit_4_and_a_true_record() {
    let Some(s) = setup(
        vec![
            Reply::exec("c1", "cat /dev/zero > filler.bin"),
            Reply::message("filled the disk"),
        ],
        true,
    ) else {
        return;
    };
    let Some(_disk) = SmallDisk::mount(&s.sshd.dir().join("ws"), "4m") else {
        return;
    };
    let out = s
        .env
        .run(&["run", "--prompt", "fill it", "--type", "quick-fix"]);
    assert_disk_full_reported(&s, &out);
}

#[test]
fn a_full_disk_before_the_run_ends_it_with_exit_4_and_a_true_record() {
    let Some(s) = setup(vec![Reply::message("unused")], true) else {
        return;
    };
    let Some(disk) = SmallDisk::mount(&s.sshd.dir().join("ws"), "1m") else {
        return;
    };
    disk.fill();
    let out = s
        .env
        .run(&["run", "--prompt", "anything", "--type", "quick-fix"]);
    assert_disk_full_reported(&s, &out);
}
