//! An agent that writes one enormous line into its event log while the client follows it (over
//! a real sshd, with the real follow script) costs the client bounded memory: the line is
//! counted and skipped as it streams past, shown as one `oversized_event`, and the events after
//! it still arrive; a follow resumed from the byte the first one reached starts at the next
//! line; `logs`' look at unrecorded events and the follow's trailer (the agent's status file)
//! are bounded too. Peak RSS (VmHWM from /proc/self/status) stays under 64 MiB for a 100 MiB
//! line (before the bound, a 150 MB line took 750 MB). Its own test binary, so no other test's
//! allocations count.

use std::io::Write;
use std::sync::Arc;

use codex_remote_core::events::CodexEvent;
use codex_remote_core::executor::{CodexExecutor, ExecEvent, Executor, MAX_EVENT_LINE};
use codex_remote_core::pipeline::Project;
use codex_remote_core::transport::ssh::SshTransport;
use codex_remote_core::transport::{ExitStatus, Transport};
use codex_remote_core::{unrecorded_events, RunRecord, UNRECORDED_LIMIT};
use codex_remote_testkit::Sshd;
use tokio::sync::mpsc;

const HUGE: u64 = 100 * 1024 * 1024;

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Writes `unit` `times` times to `path` without holding it all (the test's memory counts).
fn write_repeated(path: &std::path::Path, unit: &[u8], times: usize) {
    let chunk = unit.repeat(64 * 1024);
    let mut file = std::fs::File::create(path).unwrap();
    for _ in 0..times / (64 * 1024) {
        file.write_all(&chunk).unwrap();
    }
    file.write_all(&unit.repeat(times % (64 * 1024))).unwrap();
}

fn append(path: &std::path::Path, bytes: &[u8]) {
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enormous_event_line_is_skipped_in_bounded_memory_and_the_follow_goes_on() {
    let Some(sshd) = Sshd::start_or_skip() else {
        return;
    };
    let workspace = sshd.dir().join("ws");
    let host = sshd.host_spec(&format!(
        "[hosts.testhost]\nworkspace = \"{}\"\n",
        workspace.display()
    ));
    let transport: Arc<dyn Transport> =
        Arc::new(SshTransport::new(host, sshd.ssh_options()).unwrap());
    // A live "agent" of run `run` of project `app`: its supervisor pid is a process that runs
    // until the test ends it.
    let agent_dir = workspace.join(".codex-remote/app/agents/run/1");
    std::fs::create_dir_all(&agent_dir).unwrap();
    let mut supervisor = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap();
    std::fs::write(agent_dir.join("pid"), format!("{}\n", supervisor.id())).unwrap();
    let log = agent_dir.join("events.jsonl");
    let first = r#"{"type":"thread.started","thread_id":"t1"}"#;
    let after = r#"{"type":"turn.started"}"#;
    std::fs::write(&log, format!("{first}\n")).unwrap();

    let (tx, mut rx) = mpsc::channel::<ExecEvent>(16);
    let follow = {
        let (transport, dir) = (transport.clone(), agent_dir.display().to_string());
        tokio::spawn(async move { CodexExecutor.follow(transport.as_ref(), &dir, 0, tx).await })
    };
    let thread = rx.recv().await.unwrap();
    assert_eq!(thread.raw, first);
    assert_eq!(thread.log_bytes, first.len() as u64 + 1);

    // The hostile line arrives while the follow streams, a mebibyte at a time.
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..HUGE / chunk.len() as u64 {
        append(&log, &chunk);
    }
    append(&log, format!("\n{after}\n").as_bytes());
    let skipped = rx.recv().await.unwrap();
    assert_eq!(
        skipped.event,
        CodexEvent::OversizedEvent {
            bytes: HUGE,
            limit: MAX_EVENT_LINE as u64
        }
    );
    assert_eq!(skipped.log_bytes, HUGE + 1);
    assert!(skipped.raw.len() < 200, "{}", skipped.raw);
    let next = rx.recv().await.unwrap();
    assert_eq!(next.raw, after);
    assert_eq!(next.event, CodexEvent::TurnStarted);

    // The agent ends: the follow does too, with its status.
    std::fs::write(agent_dir.join("status.tmp"), "0\n").unwrap();
    std::fs::rename(agent_dir.join("status.tmp"), agent_dir.join("status")).unwrap();
    supervisor.kill().unwrap();
    supervisor.wait().unwrap();
    let end = follow.await.unwrap().unwrap();
    assert_eq!(end.status, Some(ExitStatus::Code(0)));
    assert!(rx.recv().await.is_none());

    let peak_mib = peak_rss_kib() / 1024;
    eprintln!("peak RSS following a {HUGE}-byte event line: {peak_mib} MiB");
    assert!(peak_mib < 64, "peak RSS {peak_mib} MiB is not under 64 MiB");

    // A follow resumed where the first one had reached after the skipped line (what `attach`
    // does after a drop) starts at the next line.
    let offset = thread.log_bytes + skipped.log_bytes;
    let (tx, mut rx) = mpsc::channel::<ExecEvent>(16);
    let end = CodexExecutor
        .follow(
            transport.as_ref(),
            &agent_dir.display().to_string(),
            offset,
            tx,
        )
        .await
        .unwrap();
    assert_eq!(end.status, Some(ExitStatus::Code(0)));
    let again: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok())
        .map(|e| e.raw)
        .collect();
    assert_eq!(again, vec![after.to_string()]);
    // From the start, the skipped line is skipped again, never held.
    let (tx, mut rx) = mpsc::channel::<ExecEvent>(16);
    CodexExecutor
        .follow(transport.as_ref(), &agent_dir.display().to_string(), 0, tx)
        .await
        .unwrap();
    let all: Vec<CodexEvent> = std::iter::from_fn(|| rx.try_recv().ok())
        .map(|e| e.event)
        .collect();
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(matches!(
        all[1],
        CodexEvent::OversizedEvent { bytes: HUGE, .. }
    ));

    // `logs`' look at what nobody recorded yet streams with the same bound.
    let local = tempfile::tempdir().unwrap();
    let project = Project::new(local.path(), Some("app")).unwrap();
    let record: RunRecord = serde_json::from_value(serde_json::json!({
        "id": "run", "task_id": "t", "host": "testhost", "project": "app",
        "remote_mirror": "m", "tree": null, "phase": "running", "created_at": "c",
        "updated_at": "u", "attempt": 1,
    }))
    .unwrap();
    // It stops reading at 32 MiB, inside the enormous line, and says the listing was cut.
    let found = unrecorded_events(&transport, &project, &record)
        .await
        .unwrap();
    assert_eq!(found.lines, vec![first.to_string()]);
    assert_eq!(found.read, first.len() as u64 + 1);
    assert!(found.cut);

    // The agent (under danger-full-access) can write its own status file too: what the follow
    // reads after the events is kept to 64 KiB, however long.
    let mut status = std::fs::File::create(agent_dir.join("status")).unwrap();
    status.write_all(b"0\n").unwrap();
    let line = format!("{}\n", "y".repeat(1023));
    for _ in 0..40 * 1024 {
        status.write_all(line.as_bytes()).unwrap();
    }
    drop(status);
    let (tx, _rx) = mpsc::channel::<ExecEvent>(16);
    let end = CodexExecutor
        .follow(
            transport.as_ref(),
            &agent_dir.display().to_string(),
            offset + next.log_bytes,
            tx,
        )
        .await
        .unwrap();
    assert_eq!(end.status, Some(ExitStatus::Code(0)));
    assert!(end.stderr.len() <= 64 * 1024, "{}", end.stderr.len());

    // A log of tiny lines: every byte read and a little per line shown count against the
    // look's limit (counting only the text of the lines shown, `a\n` × 34 M took 1.8 GiB).
    write_repeated(&log, b"a\n", 8_000_000);
    let found = unrecorded_events(&transport, &project, &record)
        .await
        .unwrap();
    assert!(found.cut);
    assert!(found.read < 16_000_000, "{} bytes read", found.read);
    assert!(found.lines.iter().all(|l| l == "a"));
    let shown = found.lines.len() as u64;
    assert!(
        (200_000..=UNRECORDED_LIMIT / 131 + 1).contains(&shown),
        "{shown} lines shown"
    );
    drop(found);
    // Blank lines are never shown, but read: the look stops at the limit all the same.
    write_repeated(&log, b"\n", 40 << 20);
    let found = unrecorded_events(&transport, &project, &record)
        .await
        .unwrap();
    assert_eq!(
        (found.lines.len(), found.read, found.cut),
        (0, UNRECORDED_LIMIT, true)
    );
    // Below the limit nothing is cut.
    std::fs::write(&log, format!("{first}\n\n{after}\npartial")).unwrap();
    let found = unrecorded_events(&transport, &project, &record)
        .await
        .unwrap();
    assert_eq!(found.lines, vec![first.to_string(), after.to_string()]);
    assert!(!found.cut);

    let peak_mib = peak_rss_kib() / 1024;
    eprintln!("peak RSS after the looks at unrecorded events: {peak_mib} MiB");
    assert!(peak_mib < 64, "peak RSS {peak_mib} MiB is not under 64 MiB");
}
