//! What a run's events add up to: thread, usage, last message, reported files, failure.

use crate::events::{CodexEvent, ItemKind, Usage};
use crate::transport::ExitStatus;

use super::*;

/// How an agent run ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct ExecOutcome {
    /// Codex's exit status.
    pub status: ExitStatus,
    /// The thread id (to resume).
    pub thread_id: Option<String>,
    /// Tokens used over all turns.
    pub usage: Usage,
    /// The agent's last message.
    pub last_message: Option<String>,
    /// Files the agent reported changing (its own `file_change` items).
    pub files_reported: Vec<String>,
    /// Why it failed, if it did.
    pub failure: Option<ExecFailure>,
}

/// Accumulates what a run's events say: thread, usage, last message, reported files, failure.
#[derive(Debug, Clone, Default)]
pub(crate) struct OutcomeBuilder {
    outcome: Option<ExecOutcome>,
    usage: crate::events::UsageTally,
}

impl OutcomeBuilder {
    /// Takes one event into account.
    pub fn observe(&mut self, event: &CodexEvent) {
        let outcome = self.outcome.get_or_insert_with(|| ExecOutcome {
            status: ExitStatus::Code(0),
            thread_id: None,
            usage: Usage::default(),
            last_message: None,
            files_reported: Vec::new(),
            failure: None,
        });
        self.usage.observe(event);
        outcome.usage = self.usage.total();
        match event {
            CodexEvent::ThreadStarted { thread_id } => outcome.thread_id = Some(thread_id.clone()),
            CodexEvent::TurnFailed { message } => {
                outcome.failure = Some(ExecFailure::from_message(message))
            }
            // The thread goes on: what failed before the park is behind it.
            CodexEvent::Resumed { .. } => outcome.failure = None,
            CodexEvent::PolicyChanged { expected, seen } => {
                outcome.failure = Some(ExecFailure::TurnFailed {
                    message: format!(
                        "the resumed Codex thread ran under the sandbox(es) `{seen}`, not the run's `{expected}`; its result is not trusted (hint: check `codex_args` / `--codex-arg` for sandbox settings)"
                    ),
                })
            }
            CodexEvent::GaveUp { resume_at, .. } => {
                if let Some(ExecFailure::UsageLimited { resume_at: at, .. }) = &mut outcome.failure
                {
                    *at = Some(*resume_at);
                }
            }
            CodexEvent::ItemCompleted { item } => match &item.kind {
                ItemKind::AgentMessage { text } => outcome.last_message = Some(text.clone()),
                ItemKind::FileChange { changes, .. } => outcome
                    .files_reported
                    .extend(changes.iter().map(|c| c.path.clone())),
                _ => {}
            },
            _ => {}
        }
    }

    /// The outcome, given how the agent exited and what it printed on stderr.
    pub fn finish(self, status: ExitStatus, stderr: &str) -> ExecOutcome {
        let mut outcome = self.outcome.unwrap_or(ExecOutcome {
            status,
            thread_id: None,
            usage: Usage::default(),
            last_message: None,
            files_reported: Vec::new(),
            failure: None,
        });
        outcome.status = status;
        if !status.success() && outcome.failure.is_none() {
            outcome.failure = Some(classify_exit(status, stderr));
        }
        outcome
    }
}
