//! What `watch` shows of each run, derived from the local record alone: `run.json`, the
//! `events.jsonl` recorded so far (read incrementally) and `result.patch` once retrieved.

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use codex_remote_core::events::{CodexEvent, ItemKind};
use codex_remote_core::executor::AgentState;
use codex_remote_core::{Phase, RunRecord, RunStore};

/// One run as the watch shows it.
#[derive(Debug, Clone)]
pub struct RunView {
    pub record: RunRecord,
    /// Time since it was created (until its last change once it ended).
    pub elapsed: Duration,
    /// The last thing the agent did, in words.
    pub last_activity: Option<String>,
    /// When the last event was recorded.
    pub last_event_at: Option<SystemTime>,
    /// Input + output tokens of every turn recorded.
    pub tokens: u64,
    /// Files changed: from the patch once retrieved, else from the agent's file changes.
    pub files_changed: usize,
    /// Events recorded.
    pub events: usize,
    /// Waiting, parked, applied or failed: the part of its state the phase does not say.
    pub state: String,
    /// What its host said of its agent when last asked (as `status` asks), for a running run.
    pub agent: Option<AgentState>,
}

impl RunView {
    pub fn phase(&self) -> String {
        phase_word(self.record.phase)
    }

    pub fn is_active(&self) -> bool {
        is_active(self.record.phase)
    }

    /// Active in the record, but its agent ended on the host and nobody here retrieved it yet
    /// (a detached run nobody follows): it changes no more until someone attaches.
    pub fn ended_unfollowed(&self) -> bool {
        self.is_active()
            && matches!(
                self.agent,
                Some(AgentState::Finished { .. } | AgentState::Vanished)
            )
    }

    /// Whether its host is worth asking about its agent (as `status` does).
    pub fn wants_probe(&self) -> bool {
        matches!(self.record.phase, Phase::Running | Phase::Waiting) && self.record.attempt > 0
    }
}

/// Whether the run may still change (every phase but the ends, so phases added later, such as
/// parking on a usage limit, count as active).
pub fn is_active(phase: Phase) -> bool {
    !phase.is_finished()
}

/// The phase's name as recorded (`running`, `completed`...).
pub fn phase_word(phase: Phase) -> String {
    serde_json::to_value(phase)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// One line in words for an event worth showing, or `None`.
pub fn describe(event: &CodexEvent) -> Option<String> {
    let first_line = |s: &str| s.trim().lines().next().unwrap_or_default().to_string();
    match event {
        CodexEvent::ThreadStarted { .. } => Some("agent started".into()),
        CodexEvent::ItemStarted { item } => match &item.kind {
            ItemKind::CommandExecution { command, .. } => {
                Some(format!("$ {}", first_line(command)))
            }
            _ => None,
        },
        CodexEvent::ItemCompleted { item } => match &item.kind {
            ItemKind::CommandExecution {
                command, exit_code, ..
            } => Some(format!(
                "$ {} (exit {})",
                first_line(command),
                exit_code.map_or("?".to_string(), |c| c.to_string())
            )),
            ItemKind::FileChange { changes, .. } => Some(
                changes
                    .iter()
                    .map(|c| format!("{} {}", c.kind, c.path))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            ItemKind::AgentMessage { text } => Some(format!("agent: {}", first_line(text))),
            ItemKind::Reasoning { text } => Some(format!("thinking: {}", first_line(text))),
            ItemKind::McpToolCall { server, tool, .. } => Some(format!("tool {server}/{tool}")),
            ItemKind::WebSearch { query } => Some(format!("web search: {query}")),
            ItemKind::Error { message } => Some(format!("codex: {}", first_line(message))),
            _ => None,
        },
        CodexEvent::TurnFailed { message } => Some(format!("turn failed: {}", first_line(message))),
        CodexEvent::Error { message } => Some(format!("codex: {}", first_line(message))),
        CodexEvent::OversizedEvent { bytes, limit } => Some(format!(
            "oversized event skipped: a line of {bytes} bytes in the agent's event log, over the {limit}-byte limit"
        )),
        _ => None,
    }
}

/// The agent's state on the host, in words (for `status`).
pub fn agent_words(agent: &codex_remote_core::executor::AgentState, run_id: &str) -> String {
    use codex_remote_core::executor::AgentState;
    match agent {
        AgentState::NotStarted => "not started yet".into(),
        AgentState::Running { pid } => format!("running (pid {pid} on the host)"),
        AgentState::Waiting { pid, resume_at, .. } => format!(
            "parked at a usage limit (pid {pid} on the host), resumes at {}",
            codex_remote_core::rfc3339_of(*resume_at)
        ),
        AgentState::Finished { code: 0 } => {
            format!("finished successfully; `codex-remote attach {run_id}` retrieves the result")
        }
        AgentState::Finished { code } => format!(
            "finished with exit code {code}; `codex-remote attach {run_id}` records the outcome"
        ),
        AgentState::Vanished => format!(
            "gone without an exit status (killed, or the host rebooted); `codex-remote attach {run_id}` launches it again once"
        ),
        #[allow(unreachable_patterns)]
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v["state"].as_str().map(|s| s.replace('_', " ")))
            .unwrap_or_else(|| "unknown".into()),
    }
}

/// What has been read of one run's events so far.
#[derive(Debug, Default)]
struct EventTally {
    offset: u64,
    events: usize,
    tokens: u64,
    /// Codex's usage is cumulative per thread (a resumed thread reports its whole history):
    /// each thread counts once.
    usage: codex_remote_core::events::UsageTally,
    files: BTreeSet<String>,
    last_activity: Option<String>,
    lines: Vec<String>,
}

impl EventTally {
    fn read_more(&mut self, path: &Path) {
        let Ok(mut file) = std::fs::File::open(path) else {
            return;
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            // Rewritten: start over.
            *self = EventTally::default();
        }
        if len == self.offset || file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut bytes = Vec::new();
        if file.read_to_end(&mut bytes).is_err() {
            return;
        }
        // Only whole lines: a partial last line is read again next time.
        let Some(end) = bytes.iter().rposition(|b| *b == b'\n') else {
            return;
        };
        self.offset += end as u64 + 1;
        for line in String::from_utf8_lossy(&bytes[..end]).lines() {
            if line.trim().is_empty() {
                continue;
            }
            self.events += 1;
            let event = CodexEvent::parse(line);
            self.usage.observe(&event);
            match &event {
                CodexEvent::TurnCompleted { .. } => {
                    let total = self.usage.total();
                    self.tokens = total.input_tokens.saturating_add(total.output_tokens);
                }
                CodexEvent::ItemCompleted { item } => {
                    if let ItemKind::FileChange { changes, .. } = &item.kind {
                        self.files.extend(changes.iter().map(|c| c.path.clone()));
                    }
                }
                _ => {}
            }
            if let Some(text) = describe(&event) {
                self.last_activity = Some(text.clone());
                self.lines.push(text);
            }
        }
    }
}

/// The project's runs, re-read on every refresh; events are read only past what was read before.
pub struct Watcher {
    store: RunStore,
    tallies: HashMap<String, EventTally>,
    patch_files: HashMap<String, usize>,
    agents: HashMap<String, AgentState>,
}

impl Watcher {
    pub fn new(store: RunStore) -> Self {
        Self {
            store,
            tallies: HashMap::new(),
            patch_files: HashMap::new(),
            agents: HashMap::new(),
        }
    }

    /// Records what run `id`'s host said of its agent (shown until the record moves on).
    pub fn note_agent(&mut self, id: &str, agent: AgentState) {
        self.agents.insert(id.to_string(), agent);
    }

    fn events_path(&self, id: &str) -> PathBuf {
        self.store.run_dir(id).join("events.jsonl")
    }

    /// Every run, newest first.
    pub fn refresh(&mut self) -> Vec<RunView> {
        let records = self.store.list().unwrap_or_default();
        let now = SystemTime::now();
        let mut views: Vec<RunView> = records
            .into_iter()
            .map(|record| {
                let path = self.events_path(&record.id);
                let tally = self.tallies.entry(record.id.clone()).or_default();
                tally.read_more(&path);
                let last_event_at = std::fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .ok()
                    .filter(|_| tally.events > 0);
                let patch_path = self.store.patch_path(&record.id);
                let files_changed = match self.patch_files.get(&record.id) {
                    Some(n) => *n,
                    None => match std::fs::read(&patch_path) {
                        Ok(patch) => {
                            let n = codex_remote_core::ParsedPatch::parse(&patch)
                                .map(|p| p.files.len())
                                .unwrap_or(0);
                            self.patch_files.insert(record.id.clone(), n);
                            n
                        }
                        Err(_) => tally.files.len(),
                    },
                };
                let created = humantime::parse_rfc3339(&record.created_at).ok();
                let end = if is_active(record.phase) {
                    Some(now)
                } else {
                    humantime::parse_rfc3339(&record.updated_at).ok()
                };
                let elapsed = match (created, end) {
                    (Some(a), Some(b)) => b.duration_since(a).unwrap_or_default(),
                    _ => Duration::ZERO,
                };
                let agent = self
                    .agents
                    .get(&record.id)
                    .filter(|_| matches!(record.phase, Phase::Running | Phase::Waiting))
                    .cloned();
                let state = state_words(&record, agent.as_ref(), tally.events, files_changed, now);
                RunView {
                    elapsed,
                    last_activity: tally.last_activity.clone(),
                    last_event_at,
                    tokens: tally.tokens,
                    files_changed,
                    events: tally.events,
                    state,
                    agent,
                    record,
                }
            })
            .collect();
        views.reverse();
        views
    }

    /// The run's events in words, as read so far.
    pub fn lines(&self, id: &str) -> &[String] {
        self.tallies
            .get(id)
            .map(|t| t.lines.as_slice())
            .unwrap_or(&[])
    }
}

/// The part of a run's state the phase does not say. `agent` is what its host said of its agent
/// (as `status` asks), when asked: without it, nothing is claimed that the local record cannot
/// know (a detached run nobody follows records no events here).
pub fn state_words(
    record: &RunRecord,
    agent: Option<&AgentState>,
    events: usize,
    files: usize,
    now: SystemTime,
) -> String {
    // A run parked on a usage limit records when it resumes (`resume_at`, RFC 3339).
    if let Some(resume_at) = record.resume_at.as_deref() {
        if is_active(record.phase) {
            return match humantime::parse_rfc3339(resume_at) {
                Ok(at) if at > now => format!(
                    "parked: usage limit, resumes in {}",
                    short_duration(at.duration_since(now).unwrap_or_default())
                ),
                _ => format!("parked: usage limit, resumes at {resume_at}"),
            };
        }
    }
    match record.phase {
        Phase::Pending | Phase::Syncing => "preparing".into(),
        Phase::Running if record.attempt == 0 => "launching the agent".into(),
        Phase::Running => match agent {
            Some(AgentState::Finished { code: 0 }) => "agent done on the host: `attach` it".into(),
            Some(AgentState::Finished { code }) => {
                format!("agent exited {code} on host: `attach` it")
            }
            Some(AgentState::Vanished) => "agent gone on the host: `attach` it".into(),
            _ if events == 0 && agent.is_some() => "working on the host; no events here yet".into(),
            _ if events == 0 => "launched; no events recorded here yet".into(),
            _ if record.attempt > 1 => format!("working (attempt {})", record.attempt),
            _ => "working".into(),
        },
        Phase::Retrieving => "fetching the result".into(),
        Phase::Completed if record.applied_at.is_some() => "applied".into(),
        Phase::Completed if files == 0 => "no changes".into(),
        Phase::Completed => "ready to apply (press a)".into(),
        Phase::Failed => format!(
            "failed: {}",
            record
                .error
                .as_deref()
                .unwrap_or("no reason recorded")
                .lines()
                .next()
                .unwrap_or_default()
        ),
        Phase::Cancelled => "cancelled".into(),
        #[allow(unreachable_patterns)]
        other => phase_word(other),
    }
}

/// `4s`, `3m05s`, `2h10m`.
pub fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

/// `12s ago: agent: done`.
pub fn activity_words(view: &RunView, now: SystemTime) -> String {
    match (&view.last_activity, view.last_event_at) {
        (Some(text), Some(at)) => format!(
            "{} ago: {text}",
            short_duration(now.duration_since(at).unwrap_or_default())
        ),
        (Some(text), None) => text.clone(),
        _ => "-".into(),
    }
}

/// One plain line per run (when stdout is not a terminal).
pub fn plain_line(view: &RunView, now: SystemTime) -> String {
    format!(
        "{}  task={}  host={}  phase={}  elapsed={}  tokens={}  files={}  state={}  last={}",
        view.record.id,
        view.record.task_id,
        view.record.host,
        view.phase(),
        short_duration(view.elapsed),
        view.tokens,
        view.files_changed,
        view.state,
        activity_words(view, now),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_short() {
        assert_eq!(short_duration(Duration::from_secs(4)), "4s");
        assert_eq!(short_duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(short_duration(Duration::from_secs(7800)), "2h10m");
    }

    #[test]
    fn events_are_read_incrementally_and_partial_lines_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let turn = r#"{"type":"turn.completed","usage":{"input_tokens":10,"output_tokens":5}}"#;
        let change = r#"{"type":"item.completed","item":{"id":"i","type":"file_change","changes":[{"path":"a.ts","kind":"update"}],"status":"completed"}}"#;
        std::fs::write(&path, format!("{turn}\n{change}\n{{\"type\":\"turn.comp")).unwrap();
        let mut tally = EventTally::default();
        tally.read_more(&path);
        assert_eq!((tally.events, tally.tokens, tally.files.len()), (2, 15, 1));
        assert_eq!(tally.last_activity.as_deref(), Some("update a.ts"));
        // The partial line completes: it is counted once, nothing before it twice.
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(r#"leted","usage":{"input_tokens":1,"output_tokens":1}}"#);
        text.push('\n');
        std::fs::write(&path, text).unwrap();
        tally.read_more(&path);
        assert_eq!((tally.events, tally.tokens), (3, 17));
    }

    /// A detached run nobody follows records no events here: the state never claims the agent
    /// has not spoken yet, and says what its host says once asked (as `status` does).
    #[test]
    fn a_running_run_says_only_what_is_known_and_what_its_host_said() {
        let record: RunRecord = serde_json::from_value(serde_json::json!({
            "id": "r", "task_id": "t", "host": "h", "project": "p", "remote_mirror": "m",
            "tree": null, "phase": "running", "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z", "attempt": 1,
        }))
        .unwrap();
        let now = SystemTime::now();
        let words =
            |agent: Option<&AgentState>, events| state_words(&record, agent, events, 0, now);
        let unknown = words(None, 0);
        assert_eq!(unknown, "launched; no events recorded here yet");
        assert!(!unknown.contains("waiting for the agent"), "{unknown}");
        let done = words(Some(&AgentState::Finished { code: 0 }), 0);
        assert_eq!(done, "agent done on the host: `attach` it");
        assert!(words(Some(&AgentState::Finished { code: 3 }), 5).contains("exited 3 on host"));
        assert!(words(Some(&AgentState::Vanished), 0).contains("gone on the host"));
        assert_eq!(
            words(Some(&AgentState::Running { pid: 7 }), 0),
            "working on the host; no events here yet"
        );
        assert_eq!(words(Some(&AgentState::Running { pid: 7 }), 4), "working");
    }
}
