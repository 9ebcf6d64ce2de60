//! The SSH transport against a real sshd on 127.0.0.1: cancellation, connection errors a user
//! can act on, host key policy, recovery from a dead master, shell init.

use std::time::Duration;

use codex_remote_core::config::Config;
use codex_remote_core::transport::local::LocalTransport;
use codex_remote_core::transport::ssh::SshTransport;
use codex_remote_core::transport::{CommandSpec, Transport, TransportError, TransportExt};
use codex_remote_testkit::{suite::unique, Sshd};

/// Processes on this machine whose command line is exactly `argv`.
fn processes_with_cmdline(argv: &[&str]) -> Vec<u32> {
    let wanted: Vec<u8> = argv
        .iter()
        .flat_map(|a| a.bytes().chain(std::iter::once(0)))
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted))
        .collect()
}

/// Pids of live (not zombie) processes.
fn live_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| stat_fields(*pid).is_some_and(|f| f[0] != "Z"))
        .collect()
}

/// Fields of /proc/PID/stat after the command name: state, ppid, pgrp, ...
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    Some(after.split_whitespace().map(str::to_string).collect())
}

fn process_group(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(2)?.parse().ok()
}

/// Starts two background shells that each say `ready` once running, cancels the command, and
/// checks that no process of the group survives. Processes are found by a unique tag in their
/// command line; readiness is their own output, not a timer.
async fn cancel_kills_the_process_group(t: &dyn Transport) {
    let tag = unique("codex-remote-cancel");
    let worker = "echo ready; while :; do sleep 1; done";
    let mut process = t
        .spawn(CommandSpec::new("sh").args([
            "-c",
            "sh -c \"$1\" \"$2\" & sh -c \"$1\" \"$2\" & wait",
            "sh",
            worker,
            &tag,
        ]))
        .await
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut stdout = tokio::io::BufReader::new(std::mem::replace(
        &mut process.stdout,
        Box::new(tokio::io::empty()),
    ));
    for _ in 0..2 {
        let mut line = String::new();
        stdout.read_line(&mut line).await.unwrap();
        assert_eq!(line, "ready\n");
    }
    let workers = ["sh", "-c", worker, tag.as_str()];
    // The loop forks for each `sleep`, so a moment's count can exceed two.
    let found = processes_with_cmdline(&workers);
    assert!(found.len() >= 2, "both workers run: {found:?}");
    let groups: Vec<u32> = found.iter().filter_map(|pid| process_group(*pid)).collect();
    process.cancel().await.unwrap();
    let survivors: Vec<u32> = live_pids()
        .into_iter()
        .filter(|pid| process_group(*pid).is_some_and(|g| groups.contains(&g)))
        .collect();
    assert!(
        survivors.is_empty(),
        "cancel left processes of the group behind: {survivors:?}"
    );
    assert!(
        processes_with_cmdline(&workers).is_empty(),
        "cancel left workers behind"
    );
}

#[tokio::test]
async fn local_cancel_kills_the_process_group() {
    let t = LocalTransport::new(Config::builtin().host(None).unwrap());
    cancel_kills_the_process_group(&t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_cancel_kills_the_remote_process_group() {
    let Some(sshd) = Sshd::start_or_skip() else {
        return;
    };
    let t = SshTransport::new(sshd.host_spec(""), sshd.ssh_options()).unwrap();
    cancel_kills_the_process_group(&t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_init_runs_first_and_only_when_asked() {
    let Some(sshd) = Sshd::start_or_skip() else {
        return;
    };
    let bin = sshd.dir().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    sshd.write_file("bin/fake-codex", "#!/bin/sh\necho \"fake codex $*\"\n");
    let init = sshd.write_file(
        "init.sh",
        &format!(
            "export PATH=\"{}:$PATH\"\n# a trailing comment without newline",
            bin.display()
        ),
    );
    let config = format!(
        "[hosts.testhost]\nshell_init = \". '{}'\"\n",
        init.display()
    );
    let t = SshTransport::new(sshd.host_spec(&config), sshd.ssh_options()).unwrap();
    let out = t
        .run(
            CommandSpec::new("fake-codex")
                .arg("--version")
                .with_shell_init(),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "fake codex --version\n");
    let out = t.run(CommandSpec::new("fake-codex")).await.unwrap();
    assert_eq!(
        out.status.code(),
        127,
        "without the init, the program is not on PATH"
    );
    match t.run_checked(CommandSpec::new("fake-codex")).await {
        Err(e @ TransportError::CommandNotFound { .. }) => {
            assert!(e.hint().unwrap().contains("shell init"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_host_keys_are_refused_by_default_and_accepted_when_configured() {
    let Some(sshd) = Sshd::start_or_skip() else {
        return;
    };
    // Forget the host key.
    std::fs::write(sshd.dir().join("known_hosts"), "").unwrap();
    let t = SshTransport::new(sshd.host_spec(""), sshd.ssh_options()).unwrap();
    match t.ping().await {
        Err(e @ TransportError::HostKey { .. }) => {
            assert!(e.hint().unwrap().contains("accept_new_host_keys"), "{e}");
            assert!(e.is_connection());
        }
        other => panic!("expected a host key error, got {other:?}"),
    }
    let accepting = SshTransport::new(
        sshd.host_spec("[hosts.testhost]\naccept_new_host_keys = true\n"),
        sshd.ssh_options(),
    )
    .unwrap();
    accepting.ping().await.expect("accept-new connects");
    let known = std::fs::read_to_string(sshd.dir().join("known_hosts")).unwrap();
    assert!(
        known.contains("127.0.0.1"),
        "accept-new records the key: {known:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_host_keys_are_refused() {
    let Some(sshd) = Sshd::start_or_skip() else {
        return;
    };
    // A valid key that is not the server's.
    let user_key = std::fs::read_to_string(sshd.dir().join("id_ed25519.pub")).unwrap();
    let other_key: Vec<&str> = user_key.split_whitespace().take(2).collect();
    std::fs::write(
        sshd.dir().join("known_hosts"),
        format!("[127.0.0.1]:{} {}\n", sshd.port(), other_key.join(" ")),
    )
    .unwrap();
    let t = SshTransport::new(
        sshd.host_spec("[hosts.testhost]\naccept_new_host_keys = true\n"),
        sshd.ssh_options(),
    )
    .unwrap();
    match t.ping().await {
        Err(e @ TransportError::HostKey { .. }) => {
            assert!(e.to_string().contains("does not match"), "{e}")
        }
        other => panic!(
            "expected a host key mismatch, got {other:?}; known_hosts: {}",
            std::fs::read_to_string(sshd.dir().join("known_hosts")).unwrap()
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_is_an_authentication_error() {
    let Some(sshd) = Sshd::start_or_skip() else {
        return;
    };
    std::fs::write(sshd.dir().join("authorized_keys"), "").unwrap();
    let t = SshTransport::new(sshd.host_spec(""), sshd.ssh_options()).unwrap();
    match t.ping().await {
        Err(e @ TransportError::AuthenticationFailed { .. }) => {
            assert!(e.hint().unwrap().contains("authorized_keys"), "{e}")
        }
        other => panic!("expected an authentication error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_host_says_so() {
    let Some(sshd) = Sshd::start_or_skip() else {
        return;
    };
    // A port on loopback with nobody listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = std::fs::read_to_string(sshd.ssh_config())
        .unwrap()
        .replace(&format!("Port {}", sshd.port()), &format!("Port {port}"));
    std::fs::write(sshd.ssh_config(), config).unwrap();
    let t = SshTransport::new(sshd.host_spec(""), sshd.ssh_options()).unwrap();
    match t.ping().await {
        Err(e @ TransportError::HostUnreachable { .. }) => {
            assert!(e.hint().unwrap().contains("tailscale"), "{e}")
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_master_is_replaced() {
    let Some(sshd) = Sshd::start_or_skip() else {
        return;
    };
    let control_dir = tempfile::tempdir().unwrap();
    let mut options = sshd.ssh_options();
    options.control_dir = Some(control_dir.path().to_path_buf());
    let t = SshTransport::new(sshd.host_spec(""), options).unwrap();
    t.ping().await.unwrap();
    // Kill the master ssh process behind the control socket, leaving a stale socket file.
    let socket_dir = std::fs::read_dir(control_dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let socket = socket_dir.join("master");
    let status = std::process::Command::new("ssh")
        .arg("-F")
        .arg(sshd.ssh_config())
        .arg("-S")
        .arg(&socket)
        .args(["-O", "exit", "testhost"])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let out = t
        .run_checked(CommandSpec::new("printf").arg("%s").arg("again"))
        .await
        .expect("reconnects");
    assert_eq!(out.stdout_text(), "again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_working_directory_fails_the_command() {
    let Some(sshd) = Sshd::start_or_skip() else {
        return;
    };
    let t = SshTransport::new(sshd.host_spec(""), sshd.ssh_options()).unwrap();
    let dir = format!("/tmp/{}", unique("codex-remote-missing"));
    let out = t.run(CommandSpec::new("true").cwd(dir)).await.unwrap();
    assert_eq!(out.status.code(), 1);
    assert!(
        out.stderr_text().contains("can't cd") || out.stderr_text().contains("No such file"),
        "{}",
        out.stderr_text()
    );
    let _ = Duration::ZERO;
}
