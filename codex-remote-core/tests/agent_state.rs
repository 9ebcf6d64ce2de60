//! How the host's agent files are read (`probe`, `follow`): the recorded status first, liveness
//! as the fallback with a zombie dead, and agent-written files never trusted to name other
//! processes. On this machine through the local transport.

use codex_remote_core::config::Config;
use codex_remote_core::executor::{AgentState, CodexExecutor, Executor};
use codex_remote_core::transport::local::LocalTransport;

fn transport() -> LocalTransport {
    LocalTransport::new(Config::builtin().host(Some("local")).unwrap())
}

fn agent_dir(pid: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pid"), pid).unwrap();
    std::fs::write(
        dir.path().join("events.jsonl"),
        "{\"type\":\"turn.started\"}\n",
    )
    .unwrap();
    dir
}

#[tokio::test]
async fn a_zombie_supervisor_is_dead_and_a_recorded_status_wins() {
    let t = transport();
    let mut supervisor = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap();
    let dir = agent_dir(&format!("{}\n", supervisor.id()));
    let path = dir.path().display().to_string();
    assert_eq!(
        CodexExecutor.probe(&t, &path).await.unwrap(),
        AgentState::Running {
            pid: supervisor.id()
        }
    );
    // Killed and not reaped: a zombie, which has ended.
    supervisor.kill().unwrap();
    let zombie = format!("/proc/{}/stat", supervisor.id());
    while !std::fs::read_to_string(&zombie)
        .unwrap()
        .rsplit_once(')')
        .unwrap()
        .1
        .trim_start()
        .starts_with('Z')
    {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        CodexExecutor.probe(&t, &path).await.unwrap(),
        AgentState::Vanished
    );
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let end = CodexExecutor.follow(&t, &path, 0, tx).await.unwrap();
    assert!(end.vanished, "{end:?}");
    assert!(rx.recv().await.unwrap().raw.contains("turn.started"));
    std::fs::write(dir.path().join("status"), "0\n").unwrap();
    assert_eq!(
        CodexExecutor.probe(&t, &path).await.unwrap(),
        AgentState::Finished { code: 0 }
    );
    supervisor.wait().unwrap();
}

#[tokio::test]
async fn a_pid_file_naming_pid_1_or_garbage_names_no_process() {
    let t = transport();
    // PID 1 is alive; an agent that wrote it there must not make `cancel` signal `-1` (every
    // process of the user) nor the run look alive for ever.
    for pid in ["1\n", "0\n", "-1\n", "1 2\n", "$(true)\n"] {
        let dir = agent_dir(pid);
        let path = dir.path().display().to_string();
        let state = CodexExecutor.probe(&t, &path).await.unwrap();
        assert!(
            !matches!(state, AgentState::Running { .. }),
            "{pid:?}: {state:?}"
        );
    }
}

#[tokio::test]
async fn a_launch_on_a_full_disk_says_so_in_the_hosts_words() {
    let t = transport();
    let disk = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(disk.path())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        mounted || std::env::var_os("CI").is_none(),
        "CI needs to mount a tmpfs (run as root)"
    );
    if !mounted {
        return;
    }
    let _ = std::process::Command::new("sh")
        .args(["-c", "cat /dev/zero > \"$1\"/filler 2>/dev/null", "sh"])
        .arg(disk.path())
        .status();
    let request = codex_remote_core::executor::ExecRequest {
        dir: disk.path().display().to_string(),
        instruction: "x".repeat(100_000),
        model: codex_remote_core::model::ModelChoice {
            model: "m".into(),
            source: codex_remote_core::model::ModelSource::Default,
            reasoning_effort: None,
        },
        sandbox: "workspace-write".into(),
        extra_args: Vec::new(),
        timeout: None,
        stall_timeout: None,
        max_wait_secs: None,
        resume_thread: None,
    };
    let agent = disk.path().join("agents/r/1").display().to_string();
    let result = CodexExecutor.launch(&t, &agent, &request).await;
    let _ = std::process::Command::new("umount")
        .arg("-l")
        .arg(disk.path())
        .status();
    let error = codex_remote_core::Error::from(result.unwrap_err()).on_host("local");
    assert!(
        matches!(error, codex_remote_core::Error::HostDiskFull { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("No space left on device"),
        "{error}"
    );
    assert!(!error.to_string().contains("already launched"), "{error}");
}
