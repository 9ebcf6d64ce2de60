//! What a run or an orchestration reports as it goes: one serialisable [`Event`], the same for
//! embedders (the [`RunHandle`](crate::engine::RunHandle)'s stream) and for `--json` (one event
//! per line). Its JSON Schema is published (`codex-remote schema events`,
//! `docs/schema/events.schema.json`), generated from these types so it cannot drift.
//!
//! Also here: the one JSON shape of a changed file ([`FileChange`]), used by events, summaries,
//! `diff`, `pull` and `status` alike.
//!
//! ```
//! use codex_remote_core::{Event, EventKind, runs::Phase};
//! let event = Event::from(EventKind::Phase { phase: Phase::Running });
//! assert_eq!(serde_json::to_string(&event).unwrap(), r#"{"event":"phase","phase":"running"}"#);
//! ```

use schemars::JsonSchema;
use serde::Serialize;

use crate::events::CodexEvent;
use crate::orchestrate::{OrchestrateEvent, OrchestrateSummary, TaskOutcome};
use crate::patch::FileChange;
use crate::run::{RunEvent, RunSummary};
use crate::runs::Phase;
use crate::sync::PushReport;

/// One thing that happened: what it is, and the task it belongs to when several run at once.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Event {
    /// The task, in an orchestration (absent for a single run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

impl From<EventKind> for Event {
    fn from(kind: EventKind) -> Self {
        Event {
            task_id: None,
            kind,
        }
    }
}

/// What happened. Serialised with its name in the `event` field.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// The run entered a phase.
    Phase {
        /// The phase.
        phase: Phase,
    },
    /// The project was pushed to the host.
    Pushed {
        /// What the push did.
        push: PushReport,
    },
    /// The run was recorded and its tree prepared on the host.
    Started {
        /// The run id.
        run_id: String,
        /// The run's tree on the host.
        remote_dir: String,
    },
    /// The agent was launched.
    Launched {
        /// The attempt (1-based).
        attempt: u32,
        /// The supervisor's pid on the host.
        pid: u32,
    },
    /// An event from Codex (`codex exec --json`), typed.
    Codex {
        /// The event.
        codex: CodexEvent,
    },
    /// A rate-limited attempt will be retried.
    Retrying {
        /// The retry about to happen (1-based).
        attempt: u32,
        /// Retries allowed.
        of: u32,
        /// The wait before it, in seconds.
        delay_secs: f64,
        /// Why.
        reason: String,
    },
    /// `logs` of a running run stopped reading what its agent wrote on the host and nobody
    /// recorded yet at `limit` bytes (32 MiB: every byte read, and a little per line shown):
    /// the listing before it is cut short. `attach` records it all.
    EventsCut {
        /// Bytes of the host's log read (whole lines).
        read: u64,
        /// The limit.
        limit: u64,
    },
    /// The run was started detached: its agent keeps going on the host.
    Detached {
        /// The run id.
        run_id: String,
        /// The host.
        host: String,
    },
    /// An orchestration resumed a task's run from an earlier, interrupted orchestration.
    Resumed {
        /// The run id.
        run_id: String,
    },
    /// The run parked at a usage limit; the host resumes the same Codex thread at `resume_at`.
    Waiting {
        /// When it resumes (RFC 3339).
        resume_at: String,
        /// Where that time came from: `session`, `message` or `fallback`.
        source: String,
        /// The thread it resumes.
        thread_id: String,
    },
    /// The run's Codex thread was resumed (after a usage-limit park, or an interrupted agent).
    ThreadResumed {
        /// The thread.
        thread_id: String,
        /// `usage-limit` or `interrupted`.
        reason: String,
    },
    /// An orchestration's host reached its usage limit: no new task goes there until `until`.
    HostParked {
        /// The host.
        host: String,
        /// When its limit resets (RFC 3339).
        until: String,
    },
    /// Every host of an orchestration is parked: the task waits until `until` to start.
    AllParked {
        /// When the first host's limit resets (RFC 3339).
        until: String,
    },
    /// A task parked on `from` was cancelled there and starts afresh on `to`, which has quota.
    Moved {
        /// The parked host.
        from: String,
        /// The host it moves to.
        to: String,
    },
    /// An orchestrated task reached its end.
    Finished {
        /// How it ended.
        outcome: TaskOutcome,
        /// Why, when it did not complete.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// `codex-remote demo`'s last line, after its run's summary: what stood in for OpenAI and
    /// what became of the throwaway project.
    Demo {
        /// Always `true`: the model that answered was the built-in scripted server, not OpenAI.
        scripted_model: bool,
        /// The scripted server's base URL (on 127.0.0.1; stopped when the demo ends).
        model_server: String,
        /// The throwaway project's directory.
        project: String,
        /// Whether the project was kept (`--keep`); otherwise it was removed.
        kept: bool,
    },
    /// A run's end: the last line of `run --json` and `attach --json`.
    #[serde(rename = "summary")]
    RunSummary(RunSummary),
    /// An orchestration's end: the last line of `orchestrate --json`.
    #[serde(rename = "summary")]
    OrchestrateSummary(OrchestrateSummary),
}

impl From<RunEvent> for EventKind {
    fn from(event: RunEvent) -> Self {
        match event {
            RunEvent::Phase(phase) => EventKind::Phase { phase },
            RunEvent::Pushed(push) => EventKind::Pushed { push },
            RunEvent::Started { run_id, dir } => EventKind::Started {
                run_id,
                remote_dir: dir,
            },
            RunEvent::Launched { attempt, pid } => EventKind::Launched { attempt, pid },
            RunEvent::Codex(exec) => EventKind::Codex { codex: exec.event },
            RunEvent::Waiting {
                resume_at,
                source,
                thread_id,
            } => EventKind::Waiting {
                resume_at,
                source,
                thread_id,
            },
            RunEvent::Resumed { thread_id, reason } => {
                EventKind::ThreadResumed { thread_id, reason }
            }
            RunEvent::Retrying {
                attempt,
                of,
                delay,
                reason,
            } => EventKind::Retrying {
                attempt,
                of,
                delay_secs: delay.as_secs_f64(),
                reason,
            },
        }
    }
}

impl From<RunEvent> for Event {
    fn from(event: RunEvent) -> Self {
        Event::from(EventKind::from(event))
    }
}

impl From<OrchestrateEvent> for Event {
    fn from(event: OrchestrateEvent) -> Self {
        let (task_id, kind) = match event {
            OrchestrateEvent::Task { task_id, event } => (task_id, event.into()),
            OrchestrateEvent::Resumed { task_id, run_id } => {
                (task_id, EventKind::Resumed { run_id })
            }
            OrchestrateEvent::Finished {
                task_id,
                outcome,
                reason,
            } => (task_id, EventKind::Finished { outcome, reason }),
            OrchestrateEvent::HostParked { host, until } => {
                return Event::from(EventKind::HostParked { host, until })
            }
            OrchestrateEvent::AllParked { task_id, until } => {
                (task_id, EventKind::AllParked { until })
            }
            OrchestrateEvent::Moved { task_id, from, to } => {
                (task_id, EventKind::Moved { from, to })
            }
        };
        Event {
            task_id: Some(task_id),
            kind,
        }
    }
}

/// A phase by its recorded name (`running`, `completed`, ...).
impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(name)) => f.write_str(&name),
            _ => write!(f, "{self:?}"),
        }
    }
}

/// The JSON Schema of [`Event`] (one line of `--json` output while a run goes).
pub fn events_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Event)).expect("schemas serialise")
}

/// How a changed file is shown to programs: everywhere a file list appears.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "FileChange")]
struct FileChangeJson<'a> {
    /// The path (the new one for a rename).
    path: &'a str,
    /// The path before a rename or deletion.
    old_path: Option<&'a str>,
    /// `added`, `deleted`, `renamed`, `copied`, `mode` or `modified`.
    kind: &'static str,
    /// Lines added (text changes).
    added: u64,
    /// Lines removed (text changes).
    removed: u64,
    /// Whether the change is binary.
    binary: bool,
    /// Mode before, when known.
    old_mode: Option<&'a str>,
    /// Mode after, when it changed or the file is new.
    new_mode: Option<&'a str>,
}

impl<'a> From<&'a FileChange> for FileChangeJson<'a> {
    fn from(f: &'a FileChange) -> Self {
        FileChangeJson {
            path: f.path(),
            old_path: f.old_path.as_deref(),
            kind: f.kind(),
            added: f.added,
            removed: f.removed,
            binary: f.binary,
            old_mode: f.old_mode.as_deref(),
            new_mode: f.new_mode.as_deref(),
        }
    }
}

impl Serialize for FileChange {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        FileChangeJson::from(self).serialize(serializer)
    }
}

impl JsonSchema for FileChange {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        FileChangeJson::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        FileChangeJson::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_change_has_one_json_shape() {
        let change = FileChange {
            old_path: Some("a.rs".into()),
            new_path: Some("b.rs".into()),
            added: 2,
            ..FileChange::default()
        };
        let json = serde_json::to_value(&change).unwrap();
        assert_eq!(json["path"], "b.rs");
        assert_eq!(json["old_path"], "a.rs");
        assert_eq!(json["kind"], "renamed");
        assert_eq!(json["added"], 2);
        let schema = serde_json::to_value(schemars::schema_for!(FileChange)).unwrap();
        let properties = schema["properties"].as_object().unwrap();
        for key in json.as_object().unwrap().keys() {
            assert!(properties.contains_key(key), "schema documents `{key}`");
        }
    }

    #[test]
    fn summaries_are_events_too() {
        let summary = OrchestrateSummary {
            completed: vec!["t1".into()],
            ..Default::default()
        };
        let json =
            serde_json::to_value(Event::from(EventKind::OrchestrateSummary(summary))).unwrap();
        assert_eq!(json["event"], "summary");
        assert_eq!(json["completed"][0], "t1");
    }

    #[test]
    fn events_name_themselves_and_their_task() {
        let event = Event::from(OrchestrateEvent::Finished {
            task_id: "t1".into(),
            outcome: TaskOutcome::NotApplied,
            reason: Some("conflict".into()),
        });
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({"task_id": "t1", "event": "finished", "outcome": "not-applied", "reason": "conflict"})
        );
        let schema = events_schema().to_string();
        for name in [
            "phase", "pushed", "started", "launched", "codex", "retrying", "finished", "summary",
        ] {
            assert!(
                schema.contains(&format!("\"{name}\"")),
                "schema names `{name}`"
            );
        }
    }
}
