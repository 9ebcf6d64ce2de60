//! The behavioural suite every [`Transport`] must pass: the same checks run against the fake,
//! the local transport and the SSH transport against a real sshd.
//!
//! Each check panics with a message naming what broke. Checks that need real processes (process
//! groups, 200 MiB streams) live with the real transports' tests instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use codex_remote_core::transport::{
    CommandSpec, ExitStatus, Transport, TransportError, TransportExt,
};

/// Strings that break naive quoting. Each must arrive byte-exact.
pub fn hostile_strings() -> Vec<String> {
    vec![
        String::new(),
        " ".into(),
        "plain".into(),
        "'".into(),
        "\"".into(),
        "''".into(),
        "it's \"quoted\"".into(),
        "'; touch /tmp/pwned; '".into(),
        "\"; touch /tmp/pwned; \"".into(),
        "$(touch /tmp/pwned)".into(),
        "`touch /tmp/pwned`".into(),
        "${HOME}".into(),
        "$HOME".into(),
        "a;b&&c||d|e".into(),
        "line1\nline2\n".into(),
        "\r\n\t".into(),
        "*".into(),
        "?[a-z]{1,2}".into(),
        "~".into(),
        "~/x".into(),
        "-n".into(),
        "--help".into(),
        "-e \\n".into(),
        "back\\slash\\".into(),
        "!!".into(),
        "#comment".into(),
        "ünïcødé ✓ 日本語 🚀".into(),
        "%s%d%%".into(),
        "\u{1e}codex-remote-pid 1".into(),
        "<(echo x) >(echo y) > /tmp/pwned".into(),
    ]
}

/// A name unique within this machine for this run.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Echoes `args` back through `printf '%s\0'` and splits them again.
async fn echo_args(t: &dyn Transport, args: &[String]) -> Vec<String> {
    let output = t
        .run(
            CommandSpec::new("printf")
                .arg("%s\\0")
                .args(args.iter().cloned()),
        )
        .await
        .expect("printf runs");
    assert!(
        output.status.success(),
        "printf failed: {}",
        output.stderr_text()
    );
    let mut parts: Vec<String> = output
        .stdout
        .split(|b| *b == 0)
        .map(|p| String::from_utf8(p.to_vec()).expect("utf-8"))
        .collect();
    assert_eq!(parts.pop().as_deref(), Some(""), "output ends with NUL");
    parts
}

/// Hostile arguments come back byte-exact.
pub async fn arguments_are_byte_exact(t: &dyn Transport) {
    let args = hostile_strings();
    assert_eq!(echo_args(t, &args).await, args);
}

/// Hostile text around 1 MiB in total passes through argv (16 arguments of 64 KiB each: Linux
/// caps one argument at 128 KiB).
pub async fn a_mebibyte_of_arguments_is_byte_exact(t: &dyn Transport) {
    let pattern: String = hostile_strings().concat();
    let chunk: String = pattern.chars().cycle().take(64 * 1024).collect();
    let args: Vec<String> = (0..16).map(|i| format!("{i}{chunk}")).collect();
    let total: usize = args.iter().map(String::len).sum();
    assert!(total >= 1 << 20, "payload is {total} bytes");
    assert_eq!(echo_args(t, &args).await, args);
}

/// Returns paths that injection payloads would create; the caller checks they do not exist.
pub async fn injection_payloads_are_inert(t: &dyn Transport) -> Vec<String> {
    let marker = format!("/tmp/{}", unique("codex-remote-pwned"));
    let payloads = vec![
        format!("'; touch {marker}; '"),
        format!("\"; touch {marker}; \""),
        format!("$(touch {marker})"),
        format!("`touch {marker}`"),
        format!("x\ntouch {marker}\n"),
    ];
    assert_eq!(echo_args(t, &payloads).await, payloads);
    // The same payloads as environment values, working directory and program name.
    for payload in &payloads {
        let output = t
            .run(CommandSpec::new("true").env("CODEX_REMOTE_PAYLOAD", payload.clone()))
            .await
            .expect("runs");
        assert!(
            output.status.success(),
            "env payload broke the command: {}",
            output.stderr_text()
        );
        let output = t
            .run(CommandSpec::new(payload.clone()))
            .await
            .expect("spawns");
        assert_eq!(
            output.status,
            ExitStatus::Code(127),
            "a payload as program name must be looked up, not run"
        );
    }
    vec![marker]
}

/// Exit codes are reported; a missing program is 127 and `run_checked` names it.
pub async fn exit_statuses_are_reported(t: &dyn Transport) {
    assert_eq!(
        t.run(CommandSpec::new("true")).await.unwrap().status,
        ExitStatus::Code(0)
    );
    assert_eq!(
        t.run(CommandSpec::new("false")).await.unwrap().status,
        ExitStatus::Code(1)
    );
    let missing = "codex-remote-no-such-program";
    assert_eq!(
        t.run(CommandSpec::new(missing)).await.unwrap().status,
        ExitStatus::Code(127)
    );
    match t.run_checked(CommandSpec::new(missing)).await {
        Err(TransportError::CommandNotFound { program, .. }) => assert_eq!(program, missing),
        other => panic!("expected CommandNotFound, got {other:?}"),
    }
}

/// Environment variables and the working directory reach the command.
pub async fn env_and_cwd_apply(t: &dyn Transport) {
    let value = "it's $(not run) `x` \"q\" ✓";
    let output = t
        .run(CommandSpec::new("env").env("CODEX_REMOTE_TEST", value))
        .await
        .unwrap();
    assert!(
        output
            .stdout_text()
            .lines()
            .any(|l| l == format!("CODEX_REMOTE_TEST={value}")),
        "env: {}",
        output.stdout_text()
    );
    let output = t.run(CommandSpec::new("pwd").cwd("/tmp")).await.unwrap();
    assert_eq!(output.stdout_text(), "/tmp\n");
}

/// Stdin, as bytes or as a pipe, arrives byte-exact (1 MiB of hostile text).
pub async fn stdin_is_byte_exact(t: &dyn Transport) {
    let text: Vec<u8> = hostile_strings()
        .concat()
        .bytes()
        .cycle()
        .take(1 << 20)
        .collect();
    let output = t
        .run(CommandSpec::new("cat").stdin_bytes(text.clone()))
        .await
        .unwrap();
    assert_eq!(output.stdout.len(), text.len());
    assert!(output.stdout == text, "stdin bytes differ");

    let mut process = t
        .spawn(CommandSpec::new("cat").stdin_piped())
        .await
        .unwrap();
    let mut stdin = process.stdin.take().expect("piped stdin");
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        for chunk in b"first\nsecond\n\0third".chunks(5) {
            stdin.write_all(chunk).await.unwrap();
        }
        stdin.shutdown().await.unwrap();
    });
    let output = process.output().await.unwrap();
    writer.await.unwrap();
    assert_eq!(output.stdout, b"first\nsecond\n\0third");
}

/// Files written atomically read back the same, including awkward names; overwrites replace.
pub async fn files_round_trip(t: &dyn Transport) {
    let dir = format!("/tmp/{}", unique("codex-remote-suite"));
    let path = format!("{dir}/sub dir/it's a \"file\" $(x).txt");
    let contents: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    t.write_file_atomic(&path, &contents).await.expect("write");
    assert_eq!(t.read_file(&path).await.expect("read"), contents);
    t.write_file_atomic(&path, b"second")
        .await
        .expect("overwrite");
    assert_eq!(t.read_file(&path).await.unwrap(), b"second");
    match t.read_file(&format!("{dir}/missing")).await {
        Err(TransportError::CommandFailed { .. }) => {}
        other => panic!("reading a missing file must fail, got {other:?}"),
    }
}

/// The host answers a ping.
pub async fn ping_answers(t: &dyn Transport) {
    let rtt = t.ping().await.expect("ping");
    assert!(rtt < Duration::from_secs(30));
}

/// A command past its timeout is cancelled and reported.
pub async fn timeouts_cancel(t: &dyn Transport) {
    let spec = CommandSpec::new("sleep")
        .arg("300")
        .timeout(Duration::from_millis(300));
    match t.run(spec).await {
        Err(TransportError::TimedOut { .. }) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
}

/// 16 commands at once all succeed with their own output.
pub async fn parallel_commands_succeed(t: &dyn Transport) {
    let runs = (0..16).map(|i| async move {
        let output = t
            .run(
                CommandSpec::new("printf")
                    .arg("%s")
                    .arg(format!("command {i}")),
            )
            .await
            .expect("runs");
        (i, output)
    });
    for (i, output) in futures_join_all(runs).await {
        assert!(
            output.status.success(),
            "command {i}: {}",
            output.stderr_text()
        );
        assert_eq!(output.stdout_text(), format!("command {i}"));
    }
}

async fn futures_join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut outputs = Vec::new();
    let futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    // Poll all concurrently on this task.
    let mut pending: Vec<_> = futures.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut all_done = true;
        for slot in pending.iter_mut() {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => {
                        outputs.push(value);
                        *slot = None;
                    }
                    std::task::Poll::Pending => all_done = false,
                }
            }
        }
        if all_done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs
}

/// Runs every check that any transport must pass. Returns paths that must not exist afterwards
/// (injection markers) for transports whose host is this machine.
pub async fn run_all(t: &dyn Transport) -> Vec<String> {
    arguments_are_byte_exact(t).await;
    a_mebibyte_of_arguments_is_byte_exact(t).await;
    exit_statuses_are_reported(t).await;
    env_and_cwd_apply(t).await;
    stdin_is_byte_exact(t).await;
    files_round_trip(t).await;
    ping_answers(t).await;
    timeouts_cancel(t).await;
    parallel_commands_succeed(t).await;
    injection_payloads_are_inert(t).await
}
