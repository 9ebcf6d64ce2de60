//! `notify`: a local command told when a run ends, parks at a usage limit or fails.
//!
//! The command is trusted configuration (config key `notify`, flag `--notify`): a program and
//! its arguments, run directly (no shell), with one JSON object on stdin (the run's summary
//! and an `event` field: `ended`, `parked` or `failed`) and `CODEX_REMOTE_EVENT` /
//! `CODEX_REMOTE_RUN_ID` in its environment. Nothing from the host or the agent ever becomes
//! part of its command line. A command that fails, hangs (killed after 30 s) or is missing
//! never fails the run.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::run::RunSummary;
use crate::runs::RunRecord;

/// How long a notify command may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// What a finished run says: its summary, with `"event": "ended"`.
pub fn ended(summary: &RunSummary) -> Value {
    let mut value = serde_json::to_value(summary).expect("summaries serialise");
    value["event"] = "ended".into();
    value
}

/// What a parked run says: `"event": "parked"`, the run and when it resumes.
pub fn parked(record: &RunRecord) -> Value {
    json!({
        "event": "parked",
        "run_id": record.id,
        "task_id": record.task_id,
        "host": record.host,
        "phase": record.phase,
        "resume_at": record.resume_at,
        "thread_id": record.thread_id,
        "usage": record.usage,
    })
}

/// What a failed run says: `"event": "failed"`, the run and the error.
pub fn failed(record: &RunRecord, error: &crate::Error) -> Value {
    json!({
        "event": "failed",
        "run_id": record.id,
        "task_id": record.task_id,
        "host": record.host,
        "phase": record.phase,
        "error": error.to_string(),
        "error_kind": error.kind(),
        "thread_id": record.thread_id,
        "usage": record.usage,
    })
}

/// Runs `command` with `payload` on stdin and waits for it (at most 30 s). Returns whether it
/// ran and exited successfully; a failure is never the run's failure.
pub async fn run(command: &[String], payload: &Value) -> bool {
    let Some((program, args)) = command.split_first() else {
        return false;
    };
    let mut child = match tokio::process::Command::new(program)
        .args(args)
        .env(
            "CODEX_REMOTE_EVENT",
            payload["event"].as_str().unwrap_or_default(),
        )
        .env(
            "CODEX_REMOTE_RUN_ID",
            payload["run_id"].as_str().unwrap_or_default(),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(_) => return false,
    };
    if let Some(mut stdin) = child.stdin.take() {
        let mut line = payload.to_string();
        line.push('\n');
        // A command that does not read its stdin is fine.
        let _ = stdin.write_all(line.as_bytes()).await;
    }
    match tokio::time::timeout(TIMEOUT, child.wait()).await {
        Ok(Ok(status)) => status.success(),
        _ => {
            let _ = child.kill().await;
            false
        }
    }
}
