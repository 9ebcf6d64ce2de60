//! Codex's `exec --json` events, typed.
//!
//! `codex exec --json` prints JSON Lines: `thread.started`, `turn.started`, `item.started` /
//! `item.updated` / `item.completed` (agent messages, reasoning, command executions, file
//! changes, MCP and web-search calls, to-do lists, errors), `turn.completed` (token usage),
//! `turn.failed` and `error`. [`CodexEvent::parse`] never fails: a type we do not know, or a
//! line that is not JSON at all, is kept as a raw event, so a newer Codex cannot break a run.

use serde::Serialize;
use serde_json::Value;

/// Token usage (of a turn, or in all).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(default)]
pub struct Usage {
    /// Input tokens.
    pub input_tokens: u64,
    /// Of which served from cache.
    pub cached_input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Reasoning output tokens (newer Codex versions).
    pub reasoning_output_tokens: u64,
}

/// Totals Codex's usage over a run's events. `turn.completed.usage` is cumulative per thread
/// (a resumed thread reports its whole history), so each thread counts once, with its last
/// figures; threads started afresh (a relaunch, a retry) add up.
#[derive(Debug, Clone, Default)]
pub struct UsageTally {
    thread: String,
    per_thread: std::collections::BTreeMap<String, Usage>,
}

impl UsageTally {
    /// Takes one event into account.
    pub fn observe(&mut self, event: &CodexEvent) {
        match event {
            CodexEvent::ThreadStarted { thread_id } => self.thread = thread_id.clone(),
            CodexEvent::TurnCompleted { usage } => {
                let entry = self.per_thread.entry(self.thread.clone()).or_default();
                // Cumulative: the later figure includes the earlier one (max guards against a
                // Codex that reports per turn after all).
                // (Saturating: the figures come from the host.)
                *entry = if usage.input_tokens.saturating_add(usage.output_tokens)
                    >= entry.input_tokens.saturating_add(entry.output_tokens)
                {
                    *usage
                } else {
                    let mut sum = *entry;
                    sum.add(usage);
                    sum
                };
            }
            _ => {}
        }
    }

    /// The total so far.
    pub fn total(&self) -> Usage {
        let mut total = Usage::default();
        for usage in self.per_thread.values() {
            total.add(usage);
        }
        total
    }
}

impl Usage {
    /// Adds another turn's usage (saturating: the counts are the agent's word, not ours).
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.cached_input_tokens = self
            .cached_input_tokens
            .saturating_add(other.cached_input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.reasoning_output_tokens = self
            .reasoning_output_tokens
            .saturating_add(other.reasoning_output_tokens);
    }
}

/// One file touched by a `file_change` item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct FileChangeEntry {
    /// The path.
    pub path: String,
    /// `add`, `delete` or `update`.
    pub kind: String,
}

/// What a thread item is.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ItemKind {
    /// The agent's reply.
    AgentMessage {
        /// Its text.
        text: String,
    },
    /// A reasoning summary.
    Reasoning {
        /// Its text.
        text: String,
    },
    /// A shell command the agent ran.
    CommandExecution {
        /// The command line.
        command: String,
        /// Output so far.
        aggregated_output: String,
        /// Exit code, once finished.
        exit_code: Option<i64>,
        /// `in_progress`, `completed`, `failed`, `declined`.
        status: String,
    },
    /// Files the agent changed.
    FileChange {
        /// The files.
        changes: Vec<FileChangeEntry>,
        /// `in_progress`, `completed`, `failed`.
        status: String,
    },
    /// A call to an MCP tool.
    McpToolCall {
        /// Server name.
        server: String,
        /// Tool name.
        tool: String,
        /// Its status.
        status: String,
    },
    /// A web search.
    WebSearch {
        /// The query.
        query: String,
    },
    /// The agent's to-do list.
    TodoList {
        /// (text, completed) pairs.
        items: Vec<(String, bool)>,
    },
    /// A non-fatal error.
    Error {
        /// The message.
        message: String,
    },
    /// An item type we do not know; the whole item is kept.
    Other {
        /// The item's `type`.
        item_type: String,
        /// The raw item.
        raw: Value,
    },
}

/// A thread item with its id.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Item {
    /// The item id (`item_3`).
    pub id: String,
    /// What it is.
    #[serde(flatten)]
    pub kind: ItemKind,
}

/// One event of a Codex run.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum CodexEvent {
    /// The thread started.
    ThreadStarted {
        /// Its id (for resuming).
        thread_id: String,
    },
    /// A turn started.
    TurnStarted,
    /// A turn finished.
    TurnCompleted {
        /// Token usage.
        usage: Usage,
    },
    /// A turn failed (after Codex's own retries).
    TurnFailed {
        /// Why.
        message: String,
    },
    /// An item appeared.
    ItemStarted {
        /// The item.
        item: Item,
    },
    /// An item changed.
    ItemUpdated {
        /// The item.
        item: Item,
    },
    /// An item finished.
    ItemCompleted {
        /// The item.
        item: Item,
    },
    /// A stream error (Codex also reports its reconnect attempts this way).
    Error {
        /// The message.
        message: String,
    },
    /// codex-remote's host-side supervisor parked the run at a usage limit (a
    /// `codex-remote.parked` line it appends to the agent's log).
    Parked {
        /// The thread it will resume.
        thread_id: String,
        /// When it resumes (Unix seconds).
        resume_at: u64,
        /// Where `resume_at` came from: `session` (Codex's rate-limit snapshot), `message`
        /// (the "try again at" time of Codex's message) or `fallback`.
        source: String,
    },
    /// The supervisor resumed the thread (`codex exec resume`) after a park or an interruption.
    Resumed {
        /// The thread resumed.
        thread_id: String,
        /// `usage-limit` or `interrupted`.
        reason: String,
    },
    /// After a resume, the thread's session file showed a turn under another sandbox than the
    /// run's: the supervisor stopped, and the result is not trusted.
    PolicyChanged {
        /// The run's sandbox mode.
        expected: String,
        /// The modes the thread's turns ran under, comma-separated.
        seen: String,
    },
    /// The supervisor gave up waiting: the limit resets after the run's `max_wait`.
    GaveUp {
        /// When the limit resets (Unix seconds).
        resume_at: u64,
        /// The run's `max_wait`, in seconds.
        max_wait_secs: u64,
    },
    /// A line of the agent's event log longer than the limit (1 MiB): skipped as it streamed
    /// past, never held whole; the events after it follow as usual. Recorded as a
    /// `codex-remote.oversized_event` line in place of the original.
    OversizedEvent {
        /// The skipped line's length in bytes (without its newline).
        bytes: u64,
        /// The limit it was over.
        limit: u64,
    },
    /// An event type we do not know, kept whole.
    Other {
        /// Its `type`, if it had one.
        event_type: Option<String>,
        /// The raw event (or the line as a string when it was not JSON).
        raw: Value,
    },
}

fn text(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn number(value: &Value, key: &str) -> u64 {
    value.get(key).and_then(Value::as_u64).unwrap_or(0)
}

impl Item {
    fn from_value(item: &Value) -> Item {
        let item_type = text(item, "type");
        let kind = match item_type.as_str() {
            "agent_message" => ItemKind::AgentMessage {
                text: text(item, "text"),
            },
            "reasoning" => ItemKind::Reasoning {
                text: text(item, "text"),
            },
            "command_execution" => ItemKind::CommandExecution {
                command: text(item, "command"),
                aggregated_output: text(item, "aggregated_output"),
                exit_code: item.get("exit_code").and_then(Value::as_i64),
                status: text(item, "status"),
            },
            "file_change" => ItemKind::FileChange {
                changes: item
                    .get("changes")
                    .and_then(Value::as_array)
                    .map(|changes| {
                        changes
                            .iter()
                            .map(|c| FileChangeEntry {
                                path: text(c, "path"),
                                kind: text(c, "kind"),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                status: text(item, "status"),
            },
            "mcp_tool_call" => ItemKind::McpToolCall {
                server: text(item, "server"),
                tool: text(item, "tool"),
                status: text(item, "status"),
            },
            "web_search" => ItemKind::WebSearch {
                query: text(item, "query"),
            },
            "todo_list" => ItemKind::TodoList {
                items: item
                    .get("items")
                    .and_then(Value::as_array)
                    .map(|items| {
                        items
                            .iter()
                            .map(|i| {
                                (
                                    text(i, "text"),
                                    i.get("completed").and_then(Value::as_bool).unwrap_or(false),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            "error" => ItemKind::Error {
                message: text(item, "message"),
            },
            _ => ItemKind::Other {
                item_type,
                raw: item.clone(),
            },
        };
        Item {
            id: text(item, "id"),
            kind,
        }
    }
}

impl CodexEvent {
    /// Parses one line of `codex exec --json` output. Never fails.
    pub fn parse(line: &str) -> CodexEvent {
        let Ok(value) = serde_json::from_str::<Value>(line) else {
            return CodexEvent::Other {
                event_type: None,
                raw: Value::String(line.to_string()),
            };
        };
        let event_type = value
            .get("type")
            .and_then(Value::as_str)
            .map(str::to_string);
        let item = || value.get("item").map(Item::from_value);
        let parsed = match event_type.as_deref() {
            Some("thread.started") => Some(CodexEvent::ThreadStarted {
                thread_id: text(&value, "thread_id"),
            }),
            Some("turn.started") => Some(CodexEvent::TurnStarted),
            Some("turn.completed") => value.get("usage").map(|u| CodexEvent::TurnCompleted {
                usage: Usage {
                    input_tokens: number(u, "input_tokens"),
                    cached_input_tokens: number(u, "cached_input_tokens"),
                    output_tokens: number(u, "output_tokens"),
                    reasoning_output_tokens: number(u, "reasoning_output_tokens"),
                },
            }),
            Some("turn.failed") => Some(CodexEvent::TurnFailed {
                message: value
                    .get("error")
                    .map(|e| text(e, "message"))
                    .unwrap_or_default(),
            }),
            Some("item.started") => item().map(|item| CodexEvent::ItemStarted { item }),
            Some("item.updated") => item().map(|item| CodexEvent::ItemUpdated { item }),
            Some("item.completed") => item().map(|item| CodexEvent::ItemCompleted { item }),
            Some("error") => Some(CodexEvent::Error {
                message: text(&value, "message"),
            }),
            Some("codex-remote.parked") => Some(CodexEvent::Parked {
                thread_id: text(&value, "thread_id"),
                resume_at: number(&value, "resume_at"),
                source: text(&value, "source"),
            }),
            Some("codex-remote.resumed") => Some(CodexEvent::Resumed {
                thread_id: text(&value, "thread_id"),
                reason: text(&value, "reason"),
            }),
            Some("codex-remote.policy_changed") => Some(CodexEvent::PolicyChanged {
                expected: text(&value, "expected"),
                seen: text(&value, "seen"),
            }),
            Some("codex-remote.oversized_event") => Some(CodexEvent::OversizedEvent {
                bytes: number(&value, "bytes"),
                limit: number(&value, "limit"),
            }),
            Some("codex-remote.gave_up") => Some(CodexEvent::GaveUp {
                resume_at: number(&value, "resume_at"),
                max_wait_secs: number(&value, "max_wait_secs"),
            }),
            _ => None,
        };
        parsed.unwrap_or(CodexEvent::Other {
            event_type,
            raw: value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real `codex exec --json` run (0.169.0), from shared/codex-cli-facts.md.
    const REAL_RUN: &str = r#"{"type":"thread.started","thread_id":"01a20baf-60a7-7b71-864f-70e1bce3d5a6"}
{"type":"item.completed","item":{"id":"item_0","type":"error","message":"Model metadata for `gpt-5.3-codex` not found. Defaulting to fallback metadata; this can degrade performance and cause issues."}}
{"type":"turn.started"}
{"type":"item.started","item":{"id":"item_1","type":"command_execution","command":"/bin/bash -c \"printf 'export const x = 1;\\\\n' > hello.ts && echo done\"","aggregated_output":"","exit_code":null,"status":"in_progress"}}
{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":"/bin/bash -c \"printf 'export const x = 1;\\\\n' > hello.ts && echo done\"","aggregated_output":"done\n","exit_code":0,"status":"completed"}}
{"type":"item.completed","item":{"id":"item_2","type":"agent_message","text":"Created hello.ts"}}
{"type":"turn.completed","usage":{"input_tokens":20,"cached_input_tokens":0,"cache_write_input_tokens":0,"output_tokens":10,"reasoning_output_tokens":0}}"#;

    #[test]
    fn parses_a_real_run() {
        let events: Vec<CodexEvent> = REAL_RUN.lines().map(CodexEvent::parse).collect();
        assert!(
            matches!(&events[0], CodexEvent::ThreadStarted { thread_id } if thread_id.starts_with("01a20baf"))
        );
        assert!(matches!(
            &events[1],
            CodexEvent::ItemCompleted {
                item: Item {
                    kind: ItemKind::Error { .. },
                    ..
                }
            }
        ));
        assert_eq!(events[2], CodexEvent::TurnStarted);
        match &events[4] {
            CodexEvent::ItemCompleted {
                item:
                    Item {
                        kind:
                            ItemKind::CommandExecution {
                                exit_code,
                                status,
                                aggregated_output,
                                ..
                            },
                        ..
                    },
            } => {
                assert_eq!(
                    (*exit_code, status.as_str(), aggregated_output.as_str()),
                    (Some(0), "completed", "done\n")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            events[6],
            CodexEvent::TurnCompleted {
                usage: Usage {
                    input_tokens: 20,
                    output_tokens: 10,
                    ..Usage::default()
                }
            }
        );
    }

    #[test]
    fn unknown_and_broken_lines_are_kept_raw() {
        assert!(
            matches!(CodexEvent::parse(r#"{"type":"item.plan.delta","item_id":"x","delta":"y"}"#), CodexEvent::Other { event_type: Some(t), .. } if t == "item.plan.delta")
        );
        assert!(matches!(
            CodexEvent::parse("not json"),
            CodexEvent::Other {
                event_type: None,
                ..
            }
        ));
        let item = CodexEvent::parse(
            r#"{"type":"item.completed","item":{"id":"i","type":"collab_tool_call","tool":"wait"}}"#,
        );
        assert!(matches!(
            item,
            CodexEvent::ItemCompleted {
                item: Item {
                    kind: ItemKind::Other { .. },
                    ..
                }
            }
        ));
    }

    #[test]
    fn usage_counts_each_thread_once_across_resumes() {
        let log = [
            r#"{"type":"thread.started","thread_id":"t1"}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":100,"cached_input_tokens":10,"output_tokens":20,"reasoning_output_tokens":5}}"#,
            r#"{"type":"codex-remote.parked","thread_id":"t1","resume_at":1795600436,"source":"session"}"#,
            r#"{"type":"codex-remote.resumed","thread_id":"t1","reason":"usage-limit"}"#,
            r#"{"type":"thread.started","thread_id":"t1"}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":250,"cached_input_tokens":90,"output_tokens":50,"reasoning_output_tokens":7}}"#,
            // A fresh thread (a retry) adds up.
            r#"{"type":"thread.started","thread_id":"t2"}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":1,"cached_input_tokens":0,"output_tokens":2,"reasoning_output_tokens":0}}"#,
        ];
        let mut tally = UsageTally::default();
        let events: Vec<CodexEvent> = log.iter().map(|l| CodexEvent::parse(l)).collect();
        for event in &events {
            tally.observe(event);
        }
        assert_eq!(
            tally.total(),
            Usage {
                input_tokens: 251,
                cached_input_tokens: 90,
                output_tokens: 52,
                reasoning_output_tokens: 7
            }
        );
        assert_eq!(
            events[2],
            CodexEvent::Parked {
                thread_id: "t1".into(),
                resume_at: 1795600436,
                source: "session".into()
            }
        );
    }

    #[test]
    fn failures_carry_their_message() {
        let e = CodexEvent::parse(
            r#"{"type":"turn.failed","error":{"message":"exceeded retry limit, last status: 429 Too Many Requests"}}"#,
        );
        assert_eq!(
            e,
            CodexEvent::TurnFailed {
                message: "exceeded retry limit, last status: 429 Too Many Requests".into()
            }
        );
    }
}
