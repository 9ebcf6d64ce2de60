//! What Ctrl-C means, per command, and the words that say so (docs/cli.md, "Ctrl-C"):
//! `run` cancels its agent; `attach` and `logs --follow` detach, leaving the agent running;
//! `orchestrate` stops starting tasks at once and detaches the running ones, which the next
//! `orchestrate` of the same plan resumes.

use std::path::Path;

/// `attach` / `logs --follow`: the agent goes on.
pub fn detached(run_id: &str, host: &str) -> String {
    format!(
        "interrupted: detached from run {run_id}; its agent keeps running on {host}. Follow it again with `codex-remote attach {run_id}`, stop it with `codex-remote cancel {run_id}`"
    )
}

/// `run`, about to cancel its agent.
pub fn cancelling(run_id: &str) -> String {
    format!(
        "interrupted: cancelling run {run_id} (Ctrl-C cancels a foreground run; `run --detach` leaves one running)"
    )
}

/// `orchestrate`: what was left running, from the plan's entries, and how to go on.
pub fn orchestrate_detached(plan: &Path) -> String {
    let running: Vec<(String, String)> = codex_remote_core::TaskPlan::load(plan)
        .map(|p| {
            p.tasks()
                .iter()
                .filter(|t| t["executor"] == "codex-remote" && t["status"] == "running")
                .map(|t| {
                    let field =
                        |k: &str| t.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
                    (field("task_id"), field("run_id"))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut text = String::from("interrupted: no new task will start");
    if running.is_empty() {
        text.push_str("; no run was in progress");
    } else {
        text.push_str(&format!(
            "; {} run(s) keep going on their hosts (detached):",
            running.len()
        ));
        for (task, run) in &running {
            if run.is_empty() {
                text.push_str(&format!("\n  {task}"));
            } else {
                text.push_str(&format!(
                    "\n  {task}: run {run} (stop it with `codex-remote cancel {run}`)"
                ));
            }
        }
    }
    text.push_str(&format!(
        "\nrun `codex-remote orchestrate {}` again to resume them and start the rest",
        plan.display()
    ));
    text
}

/// Ctrl-C (SIGINT) heard from the moment this is made, for commands that must clean up on it
/// (`demo`): a SIGINT that comes while nothing waits is kept for the next wait, and no longer
/// ends the process on the spot.
pub struct Listener(tokio::signal::unix::Signal);

impl Listener {
    pub fn new() -> std::io::Result<Listener> {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).map(Listener)
    }

    /// Whether a Ctrl-C came since the last wait (without waiting for one).
    pub async fn was_heard(&mut self) -> bool {
        tokio::select! {
            biased;
            _ = self.heard() => true,
            _ = std::future::ready(()) => false,
        }
    }

    /// Completes on a Ctrl-C (at once if one came since the last wait).
    pub async fn heard(&mut self) {
        if self.0.recv().await.is_none() {
            // The signal driver is gone (the runtime is shutting down): no Ctrl-C will come.
            std::future::pending::<()>().await;
        }
    }
}

/// `demo`: what its Ctrl-C stopped and cleaned up.
pub fn demo_stopped(cancelled_run: Option<&str>, project: &str) -> String {
    let run = match cancelled_run {
        Some(run) => format!("cancelled its run {run} (its agent has ended)"),
        None => "no agent had started".to_string(),
    };
    format!("interrupted: the demo stopped; {run}, its scripted model server stopped, {project}")
}
