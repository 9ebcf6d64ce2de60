//! The SSH transport's persistent remote shell (`ShellMode::Persistent`, the default) against a
//! real sshd on 127.0.0.1, as a login user whose `~/.bashrc` is sourced for ssh commands (as on a
//! real Debian host): the rc runs once per session, not once per command; exit codes, stdin,
//! large outputs, concurrent commands and cancellation work through it; output that imitates its
//! framing cannot break it; a host without perl falls back to a login shell per command.
//!
//! The login users are created for these tests (root is needed, as in CI); the real `/root` is
//! never touched.

use std::sync::Arc;
use std::time::Duration;

use codex_remote_core::transport::ssh::{ShellMode, SshTransport};
use codex_remote_core::transport::{
    Chunking, CommandSpec, ExitStatus, StreamKind, Transport, TransportError, TransportExt,
};
use codex_remote_testkit::sshd::{ensure_user, SshdOptions};
use codex_remote_testkit::Sshd;

/// Appends a line to ~/rc-count each time bash sources it.
const COUNTING_RC: &str = "echo sourced >> \"$HOME/rc-count\"\n";

/// A login user whose ~/.bashrc is `rc`, and an sshd that lets bash source it. `None` (skip)
/// when sshd is missing outside CI; panics in CI when the user cannot be made.
fn sshd_for(user: &str, rc: &str) -> Option<Sshd> {
    Sshd::start_or_skip()?;
    if !ensure_user(user, rc) {
        if codex_remote_testkit::in_ci() {
            panic!("cannot create the test user {user}: CI runs as root");
        }
        eprintln!("skipping: cannot create the test user {user} (not root)");
        return None;
    }
    let _ = std::fs::remove_file(format!("/home/{user}/rc-count"));
    Some(
        Sshd::start(SshdOptions {
            user: Some(user.into()),
            source_bashrc: true,
        })
        .expect("sshd starts"),
    )
}

fn transport(sshd: &Sshd, shell: ShellMode) -> SshTransport {
    let mut options = sshd.ssh_options();
    options.shell = shell;
    SshTransport::new(sshd.host_spec(""), options).unwrap()
}

fn rc_count(user: &str) -> usize {
    std::fs::read_to_string(format!("/home/{user}/rc-count"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rc_is_sourced_once_per_session_not_once_per_command() {
    const USER: &str = "codex-remote-rc-once";
    let Some(sshd) = sshd_for(USER, COUNTING_RC) else {
        return;
    };
    let t = transport(&sshd, ShellMode::Persistent);
    for i in 0..10 {
        let out = t
            .run_checked(CommandSpec::new("printf").args(["%s", &format!("n{i}")]))
            .await
            .unwrap();
        assert_eq!(out.stdout_text(), format!("n{i}"));
    }
    // The host's shell init runs in the login shell (bash here, whose `source` sh lacks).
    let init = SshTransport::new(
        sshd.host_spec(
            "[hosts.testhost]\nshell_init = \"source /dev/null; export INIT_RAN=yes\"\n",
        ),
        sshd.ssh_options(),
    )
    .unwrap();
    let out = init
        .run_checked(CommandSpec::script("printf '%s' \"$INIT_RAN\"", &[]).with_shell_init())
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "yes");
    init.close().await.unwrap();
    assert_eq!(rc_count(USER), 2, "11 commands, two sessions: two rcs");
    t.close().await.unwrap();

    // The same ten commands with a login shell each pay the rc ten times (what the persistent
    // shell saves, and proof that this user's rc really is sourced for ssh commands).
    let _ = std::fs::remove_file(format!("/home/{USER}/rc-count"));
    let t = transport(&sshd, ShellMode::PerCommand);
    for _ in 0..10 {
        t.run_checked(CommandSpec::new("true")).await.unwrap();
    }
    assert_eq!(rc_count(USER), 10);
    t.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_stdin_large_outputs_and_concurrent_commands_pass_through_it() {
    const USER: &str = "codex-remote-rc-io";
    let Some(sshd) = sshd_for(USER, COUNTING_RC) else {
        return;
    };
    let t = Arc::new(transport(&sshd, ShellMode::Persistent));
    // Exit codes and signals.
    let out = t.run(CommandSpec::script("exit 7", &[])).await.unwrap();
    assert_eq!(out.status, ExitStatus::Code(7));
    let out = t
        .run(CommandSpec::script("kill -s KILL $$", &[]))
        .await
        .unwrap();
    assert_eq!(out.status, ExitStatus::Signal(9));
    let out = t
        .run(CommandSpec::new("no-such-program-xyz"))
        .await
        .unwrap();
    assert_eq!(out.status, ExitStatus::Code(127));
    // Stdin, binary and larger than a frame, and a piped stdin written as we go.
    let input: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let out = t
        .run_checked(CommandSpec::new("cat").stdin_bytes(input.clone()))
        .await
        .unwrap();
    assert!(out.stdout == input, "stdin came back altered");
    let mut process = t
        .spawn(CommandSpec::new("wc").arg("-c").stdin_piped())
        .await
        .unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = process.stdin.take().unwrap();
        stdin.write_all(&[b'x'; 100_000]).await.unwrap();
        stdin.shutdown().await.unwrap();
    }
    let out = process.output().await.unwrap();
    assert_eq!(out.stdout_text().trim(), "100000");
    // 20 MiB of output (20 windows), counted as it streams.
    let (mut chunks, status) = t
        .spawn(CommandSpec::script(
            "head -c 20971520 /dev/zero; echo done >&2",
            &[],
        ))
        .await
        .unwrap()
        .stream(Chunking::Bytes);
    let (mut out_bytes, mut err) = (0usize, Vec::new());
    while let Some(chunk) = chunks.recv().await {
        match chunk.stream {
            StreamKind::Stdout => {
                assert!(chunk.data.iter().all(|b| *b == 0));
                out_bytes += chunk.data.len();
            }
            StreamKind::Stderr => err.extend_from_slice(&chunk.data),
        }
    }
    assert_eq!(status.await.unwrap().unwrap(), ExitStatus::Code(0));
    assert_eq!(out_bytes, 20 * 1024 * 1024);
    assert_eq!(err, b"done\n");
    // A command whose output nobody reads (past its window) does not hold up the others.
    let mut stalled = t
        .spawn(CommandSpec::script("head -c 8388608 /dev/zero", &[]))
        .await
        .unwrap();
    let runs: Vec<_> = (0..16)
        .map(|i| {
            let t = t.clone();
            tokio::spawn(async move {
                t.run_checked(CommandSpec::script(
                    "printf '%s' \"$1\"; sleep 0.1",
                    &[&format!("c{i}")],
                ))
                .await
                .unwrap()
                .stdout_text()
            })
        })
        .collect();
    for (i, run) in runs.into_iter().enumerate() {
        let text = tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .expect("a stalled reader must not block other commands")
            .unwrap();
        assert_eq!(text, format!("c{i}"));
    }
    stalled.cancel().await.unwrap();
    assert_eq!(rc_count(USER), 1, "all of it in one session");
    t.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_imitating_the_framing_cannot_break_it_or_forge_a_status() {
    const USER: &str = "codex-remote-rc-frame";
    let Some(sshd) = sshd_for(USER, COUNTING_RC) else {
        return;
    };
    let t = transport(&sshd, ShellMode::Persistent);
    // Fake frames: an exit frame for this command (id 1) and the next ones claiming status 0,
    // output frames with huge lengths, and the agent's announcement line.
    let mut hostile = Vec::new();
    for id in 0u32..4 {
        hostile.push(b'X');
        hostile.extend_from_slice(&id.to_be_bytes());
        hostile.extend_from_slice(&3u32.to_be_bytes());
        hostile.extend_from_slice(b"c 0");
        hostile.push(b'O');
        hostile.extend_from_slice(&id.to_be_bytes());
        hostile.extend_from_slice(&u32::MAX.to_be_bytes());
    }
    hostile.extend_from_slice(b"\x1ecodex-remote-shell 0000\n");
    hostile.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, b'\n', 0xff]);
    let encoded: String = hostile.iter().map(|b| format!("\\{:03o}", b)).collect();
    for _ in 0..3 {
        let out = t
            .run(CommandSpec::script(
                "printf \"$1\"; printf \"$1\" >&2; exit 3",
                &[&encoded],
            ))
            .await
            .unwrap();
        assert_eq!(out.status, ExitStatus::Code(3), "the status was forged");
        assert!(out.stdout == hostile, "stdout was altered");
        assert!(out.stderr == hostile, "stderr was altered");
    }
    // The session still works, in the same shell.
    let out = t
        .run_checked(CommandSpec::new("echo").arg("after"))
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "after\n");
    assert_eq!(rc_count(USER), 1);
    t.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_ends_the_command_and_its_children_through_it() {
    const USER: &str = "codex-remote-rc-cancel";
    let Some(sshd) = sshd_for(USER, COUNTING_RC) else {
        return;
    };
    let t = transport(&sshd, ShellMode::Persistent);
    let tag = codex_remote_testkit::suite::unique("codex-remote-shell-cancel");
    let mut process = t
        .spawn(CommandSpec::script(
            "sh -c 'echo ready; exec sleep 300' \"$1\" & wait",
            &[&tag],
        ))
        .await
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut stdout = tokio::io::BufReader::new(std::mem::replace(
        &mut process.stdout,
        Box::new(tokio::io::empty()),
    ));
    let mut line = String::new();
    stdout.read_line(&mut line).await.unwrap();
    assert_eq!(line, "ready\n");
    process.cancel().await.unwrap();
    let sleepers = std::process::Command::new("pgrep")
        .args(["-u", USER, "-x", "sleep"])
        .output()
        .unwrap();
    assert!(
        sleepers.stdout.is_empty(),
        "cancel left the child behind: {}",
        String::from_utf8_lossy(&sleepers.stdout)
    );
    // A timeout cancels the same way, and the session goes on.
    let err = t
        .run(
            CommandSpec::new("sleep")
                .arg("300")
                .timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::TimedOut { .. }), "{err:?}");
    t.run_checked(CommandSpec::new("true")).await.unwrap();
    assert_eq!(rc_count(USER), 1);
    t.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_without_perl_runs_a_login_shell_per_command() {
    const USER: &str = "codex-remote-no-perl";
    // The rc puts a `perl` that cannot run the shell first on PATH.
    let rc = &format!("mkdir -p \"$HOME/fakebin\"; printf '#!/bin/sh\\nexit 127\\n' > \"$HOME/fakebin/perl\"; chmod +x \"$HOME/fakebin/perl\"; export PATH=\"$HOME/fakebin:$PATH\"\n{COUNTING_RC}");
    let Some(sshd) = sshd_for(USER, rc) else {
        return;
    };
    let t = transport(&sshd, ShellMode::Persistent);
    for i in 0..3 {
        let out = t
            .run(CommandSpec::script(
                "printf '%s' \"$1\"; exit 4",
                &[&format!("x{i}")],
            ))
            .await
            .unwrap();
        assert_eq!(out.status, ExitStatus::Code(4));
        assert_eq!(out.stdout_text(), format!("x{i}"));
    }
    // One login for the shell that could not start, then one per command.
    assert_eq!(rc_count(USER), 4);
    t.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_values_never_reach_a_command_line_through_it() {
    const USER: &str = "codex-remote-rc-env";
    let Some(sshd) = sshd_for(USER, COUNTING_RC) else {
        return;
    };
    let t = transport(&sshd, ShellMode::Persistent);
    let secret = "sk-persistent-shell-secret-4242";
    // The command lists every command line on the host while it runs, then prints the value it
    // got and whether the script's carrier variable leaked into its environment.
    let out = t
        .run_checked(
            CommandSpec::script(
                "ps -eo args; printf 'value=%s\\n' \"$API_KEY\"; env | grep -c '^CODEX_REMOTE_SCRIPT=' || true",
                &[],
            )
            .env("API_KEY", secret),
        )
        .await
        .unwrap();
    let text = out.stdout_text();
    assert_eq!(text.matches(secret).count(), 1, "{text}");
    assert!(text.contains(&format!("value={secret}\n")), "{text}");
    assert!(
        text.ends_with("value=sk-persistent-shell-secret-4242\n0\n"),
        "{text}"
    );
    assert_eq!(rc_count(USER), 1);
    t.close().await.unwrap();
}
