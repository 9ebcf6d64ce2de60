//! Local run records: `.codex-remote/runs/<run-id>/` in the project, holding `run.json` (what
//! the run is and where it stands) and `result.patch` (its change, once retrieved). Every write
//! is atomic.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;
use crate::names::Name;
use crate::workspace::RunTree;

/// Where run records live, relative to the project root.
pub const RUNS_DIR: &str = ".codex-remote/runs";

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Recorded, nothing done yet.
    Pending,
    /// Pushing the project.
    Syncing,
    /// The agent is working.
    Running,
    /// Parked at a usage limit: the host-side supervisor resumes the same Codex thread at
    /// `resume_at`.
    Waiting,
    /// Fetching the result.
    Retrieving,
    /// Finished; the result patch is in the record.
    Completed,
    /// Failed.
    Failed,
    /// Cancelled.
    Cancelled,
    /// The result was retrieved but refused (restricted or protected files, a conflict with
    /// local changes, a result held back): nothing applied; `error` says why. `pull RUN --apply`
    /// can still take it once the cause is fixed.
    Refused,
}

impl Phase {
    /// Whether the run is over (nothing of it runs on the host any more).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            Phase::Completed | Phase::Failed | Phase::Cancelled | Phase::Refused
        )
    }
}

/// One run, as recorded locally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run id.
    pub id: String,
    /// The task's id.
    pub task_id: String,
    /// The host's name.
    pub host: String,
    /// The remote workspace name.
    pub project: String,
    /// The host's mirror of the project.
    pub remote_mirror: String,
    /// The run's own tree and baseline on the host, once prepared.
    pub tree: Option<RunTree>,
    /// Where it stands.
    pub phase: Phase,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last changed (RFC 3339).
    pub updated_at: String,
    /// When the result was applied locally (RFC 3339).
    #[serde(default)]
    pub applied_at: Option<String>,
    /// Whether the run gave its remote tree back (returned to the pool, or removed).
    #[serde(default)]
    pub remote_removed: bool,
    /// Why it failed or was refused, when it was.
    #[serde(default)]
    pub error: Option<String>,
    /// The agent attempt in progress or last made (1-based; 0 before launch).
    #[serde(default)]
    pub attempt: u32,
    /// Size of the local `events.jsonl` when the current attempt began: events past it belong
    /// to that attempt, and their count in bytes is where a follow resumes.
    #[serde(default)]
    pub attempt_log_start: u64,
    /// Where the local `events.jsonl` and the host's event log of the current attempt last
    /// parted ways (a skipped oversized line, a redacted secret), so a follow resumes at the
    /// right byte of the host's log; `None` while the attempt's lines are recorded verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_mark: Option<EventsMark>,
    /// How the run was asked to finish, so `attach` can finish it the same way.
    #[serde(default)]
    pub finish: Option<FinishOptions>,
    /// While `waiting`: when the run resumes (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_at: Option<String>,
    /// The Codex thread the run's agent works in (what a resume continues).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// Tokens used so far, over every attempt and resume.
    #[serde(default)]
    pub usage: crate::events::Usage,
    /// What about the result deserves the user's attention (set when it is retrieved).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<RunWarning>,
    /// The run's own container, when its host is made on demand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<crate::ondemand::RunContainer>,
    /// How the agent ran: `exec` (headless, the default; absent from older records) or
    /// `interactive` (the Codex TUI over a terminal).
    #[serde(default, skip_serializing_if = "RunKind::is_exec")]
    pub kind: RunKind,
}

/// A point where the local `events.jsonl` and the host's event log of the current attempt line
/// up, saved (before a batch of lines is appended) whenever a batch holds a line recorded
/// otherwise than the host has it: the lines recorded after the batch are verbatim, so the
/// host's offset follows from the local length. One save per batch, not per line: an agent
/// writing thousands of such lines costs a few record writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsMark {
    /// The local log's length once the batch is recorded.
    pub local: u64,
    /// The host log's offset (from the attempt's start) after the batch.
    pub remote: u64,
    /// The local log's length before the batch's first differing line (where it is cut back
    /// to if the batch never wholly made it).
    pub local_before: u64,
    /// The host log's offset before that line.
    pub remote_before: u64,
}

impl RunRecord {
    /// Where a follow of the current attempt resumes in the host's event log, given the local
    /// log's length: (host offset, the local length that agrees with it). The second is
    /// shorter than `local_len` only when the client stopped while recording a line that
    /// differs from the host's (the rest of that line is then to be cut off and read again).
    pub fn follow_offset(&self, local_len: u64) -> (u64, u64) {
        match self.events_mark {
            Some(m) if local_len >= m.local => (m.remote + (local_len - m.local), local_len),
            Some(m) if local_len >= m.local_before => (m.remote_before, m.local_before),
            _ => (local_len.saturating_sub(self.attempt_log_start), local_len),
        }
    }
}

/// How a run's agent ran.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum RunKind {
    /// `codex exec`, headless, detached from the connection.
    #[default]
    Exec,
    /// The Codex TUI, over the user's terminal (`codex-remote interactive`).
    Interactive,
}

impl RunKind {
    /// Whether this is the default kind (left out of the record).
    pub fn is_exec(&self) -> bool {
        *self == RunKind::Exec
    }
}

/// Something about a run's result that is not a clean success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunWarning {
    /// `changed-outside-tree` (files changed in the host's mirror during the run: not part of
    /// the result, and the next push overwrites them) or `claimed-changes-missing` (the agent
    /// reported changing files but its tree has no changes), or `patch-not-stored` (the result
    /// patch was larger than `apply.max_stored_patch_bytes`: not retrieved).
    pub kind: String,
    /// What happened and what to do, in words.
    pub message: String,
    /// The files concerned (at most 50).
    #[serde(default)]
    pub paths: Vec<String>,
}

impl From<crate::patch::Warning> for RunWarning {
    fn from(w: crate::patch::Warning) -> Self {
        RunWarning {
            kind: w.kind,
            message: w.message,
            paths: w.paths,
        }
    }
}

impl RunWarning {
    /// Files changed in the mirror, from `git status --porcelain` lines.
    pub fn changed_outside_tree(mirror: &str, status_lines: &[String]) -> Self {
        let paths: Vec<String> = status_lines
            .iter()
            .map(|l| l.get(3..).unwrap_or(l).to_string())
            .collect();
        Self {
            kind: "changed-outside-tree".into(),
            message: format!(
                "{} file(s) changed in the host's mirror {mirror} during the run, outside the run's tree: they are not part of the result and the next push overwrites them (the agent must work in its current directory)",
                paths.len()
            ),
            paths,
        }
    }

    /// The agent reported changing `claimed` files, yet its tree has no changes.
    pub fn claimed_changes_missing(claimed: &[String]) -> Self {
        let mut paths = claimed.to_vec();
        paths.dedup();
        paths.truncate(50);
        Self {
            kind: "claimed-changes-missing".into(),
            message: format!(
                "the agent reported changing {} file(s), but its tree has no changes (it may have written outside its tree, or stashed or reverted its edits)",
                paths.len()
            ),
            paths,
        }
    }
}

/// How a run finishes once its agent is done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishOptions {
    /// Apply the result locally.
    pub apply: bool,
    /// Apply even if restricted files changed.
    pub allow_restricted: bool,
    /// Apply even a result that looks destructive.
    #[serde(default)]
    pub allow_held_back: bool,
    /// Keep the host tree after applying.
    pub keep: bool,
    /// Retries of a rate-limited agent.
    pub retries: u32,
    /// The checklist item to tick once the result is applied.
    #[serde(default)]
    pub checkpoint: Option<crate::task::Checkpoint>,
    /// The orchestration plan entry to keep true: (task_plan.json path, task id).
    #[serde(default)]
    pub task_plan: Option<(PathBuf, String)>,
    /// The local command told when the run ends, parks or fails (program and arguments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<Vec<String>>,
}

/// The current time as RFC 3339 (UTC, seconds).
pub fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Unix seconds as RFC 3339 (UTC).
///
/// The figure may come from the host: one past the year 9999 is shown as 9999-12-31T23:59:59Z,
/// never a panic.
pub fn rfc3339_of(epoch_secs: u64) -> String {
    const LAST: u64 = 253_402_300_799;
    humantime::format_rfc3339_seconds(
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(epoch_secs.min(LAST)),
    )
    .to_string()
}

/// A fresh run id: `<task-id>-<utc timestamp>-<random>`, sortable by time. The task id part
/// is cut so the whole id stays a valid [`Name`] for any valid task id.
pub fn new_run_id(task_id: &str) -> String {
    let task_id: String = task_id.chars().take(Name::MAX_LEN - 25).collect();
    let stamp: String = now()
        .chars()
        .filter(|c| c.is_ascii_digit())
        .take(14)
        .collect();
    let suffix: u16 = rand::random();
    format!("{task_id}-{}-{}-{suffix:04x}", &stamp[..8], &stamp[8..])
}

/// The records of one project.
#[derive(Debug, Clone)]
pub struct RunStore {
    dir: PathBuf,
}

/// Why a record could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunStoreError {
    /// No such run.
    #[error("no run `{id}` in {dir}")]
    NotFound {
        /// The id asked for.
        id: String,
        /// Where we looked.
        dir: String,
    },
    /// A run id that is not a valid name (see [`crate::names`]).
    #[error("`{}` is not a run id: {reason}", .id.escape_debug())]
    InvalidId {
        /// The id given.
        id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The record is unreadable.
    #[error("the run record {path} is damaged: {message}")]
    Damaged {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// I/O failed.
    #[error("{context}")]
    Io {
        /// What we were doing.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

impl RunStore {
    /// The store of the project at `project_root`.
    pub fn new(project_root: &Path) -> Self {
        Self {
            dir: project_root.join(RUNS_DIR),
        }
    }

    /// The directory of one run.
    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Where a run's patch is stored.
    pub fn patch_path(&self, id: &str) -> PathBuf {
        self.run_dir(id).join("result.patch")
    }

    /// Saves a record (creating its directory). A record whose id, task id or project is not a
    /// valid [`Name`] is refused: nothing is written.
    pub fn save(&self, record: &RunRecord) -> Result<(), RunStoreError> {
        check_names(record).map_err(|message| RunStoreError::Damaged {
            path: self.dir.display().to_string(),
            message,
        })?;
        let path = self.run_dir(&record.id).join("run.json");
        #[cfg(test)]
        SAVES.with(|saves| saves.set(saves.get() + 1));
        let mut json = serde_json::to_vec_pretty(record).expect("records serialise");
        json.push(b'\n');
        write_atomic(&path, &json).map_err(|source| RunStoreError::Io {
            context: format!("writing {}", path.display()),
            source,
        })
    }

    /// Loads a record, only from the folder named by `id` (a valid [`Name`]); a record whose
    /// own id differs from its folder, or whose project or task id is not a valid name, is
    /// damaged, never used.
    pub fn load(&self, id: &str) -> Result<RunRecord, RunStoreError> {
        let id = Name::parse(id).map_err(|e| RunStoreError::InvalidId {
            id: e.name,
            reason: e.reason,
        })?;
        let path = self.run_dir(&id).join("run.json");
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RunStoreError::NotFound {
                    id: id.into_string(),
                    dir: self.dir.display().to_string(),
                })
            }
            Err(source) => {
                return Err(RunStoreError::Io {
                    context: format!("reading {}", path.display()),
                    source,
                })
            }
        };
        let damaged = |message: String| RunStoreError::Damaged {
            path: path.display().to_string(),
            message,
        };
        let record: RunRecord =
            serde_json::from_slice(&text).map_err(|e| damaged(e.to_string()))?;
        if record.id != *id {
            return Err(damaged(format!(
                "its id `{}` does not match its folder `{id}`, so it is never used",
                record.id.escape_debug()
            )));
        }
        check_names(&record).map_err(damaged)?;
        Ok(record)
    }

    /// Stores the result patch.
    pub fn write_patch(&self, id: &str, patch: &[u8]) -> Result<(), RunStoreError> {
        let path = self.patch_path(id);
        write_atomic(&path, patch).map_err(|source| RunStoreError::Io {
            context: format!("writing {}", path.display()),
            source,
        })
    }

    /// Reads the result patch.
    pub fn read_patch(&self, id: &str) -> Result<Vec<u8>, RunStoreError> {
        let path = self.patch_path(id);
        std::fs::read(&path).map_err(|source| RunStoreError::Io {
            context: format!("reading {} (was the result retrieved?)", path.display()),
            source,
        })
    }

    /// Every record, oldest first. Damaged ones are skipped.
    pub fn list(&self) -> Result<Vec<RunRecord>, RunStoreError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(RunStoreError::Io {
                    context: format!("reading {}", self.dir.display()),
                    source,
                })
            }
        };
        let mut records: Vec<RunRecord> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| self.load(&e.file_name().to_string_lossy()).ok())
            .collect();
        records.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(records)
    }
}

#[cfg(test)]
thread_local! {
    /// How many records this thread saved (tests count `run.json` writes with it).
    pub(crate) static SAVES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Every name in a record that becomes a path is a valid [`Name`].
fn check_names(record: &RunRecord) -> Result<(), String> {
    for (field, value) in [
        ("id", &record.id),
        ("task_id", &record.task_id),
        ("project", &record.project),
    ] {
        Name::parse(value).map_err(|e| format!("field `{field}`: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> RunRecord {
        RunRecord {
            id: id.into(),
            task_id: "t".into(),
            host: "local".into(),
            project: "app".into(),
            remote_mirror: "~/workspace/app".into(),
            tree: None,
            phase: Phase::Completed,
            created_at: now(),
            updated_at: now(),
            applied_at: Some(now()),
            remote_removed: false,
            error: None,
            attempt: 1,
            attempt_log_start: 0,
            events_mark: None,
            finish: None,
            resume_at: None,
            thread_id: None,
            usage: Default::default(),
            warnings: Vec::new(),
            container: None,
            kind: RunKind::Exec,
        }
    }

    #[test]
    fn a_follow_resumes_at_the_hosts_byte_even_where_the_local_log_differs() {
        let mut r = record("r");
        r.attempt_log_start = 100;
        // Verbatim: the local bytes of the attempt are the host's.
        assert_eq!(r.follow_offset(150), (50, 150));
        // A 10 MB line recorded as a 90-byte notice at local 150 (host 50).
        r.events_mark = Some(EventsMark {
            local: 241,
            remote: 10_000_051,
            local_before: 150,
            remote_before: 50,
        });
        assert_eq!(r.follow_offset(241), (10_000_051, 241));
        assert_eq!(r.follow_offset(300), (10_000_110, 300));
        // The client stopped before the notice was (wholly) written: cut back, read it again.
        assert_eq!(r.follow_offset(150), (50, 150));
        assert_eq!(r.follow_offset(200), (50, 150));
    }

    #[test]
    fn host_given_times_never_panic() {
        assert_eq!(rfc3339_of(1_795_600_436), "2026-11-25T09:53:56Z");
        assert_eq!(rfc3339_of(u64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339_of(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn a_record_is_loaded_only_from_the_folder_named_by_its_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path());
        store.save(&record("good")).unwrap();
        // A planted record whose id climbs out of the runs directory.
        let planted = store.run_dir("zz");
        std::fs::create_dir_all(&planted).unwrap();
        let mut json = serde_json::to_value(record("good")).unwrap();
        json["id"] = "../../../../victim".into();
        std::fs::write(planted.join("run.json"), json.to_string()).unwrap();
        let e = store.load("zz").unwrap_err();
        assert!(
            matches!(&e, RunStoreError::Damaged { message, .. } if message.contains("does not match its folder `zz`")),
            "{e}"
        );
        // A copy of a good record in another folder is not that run either.
        std::fs::create_dir_all(store.run_dir("copy")).unwrap();
        std::fs::copy(
            store.run_dir("good").join("run.json"),
            store.run_dir("copy").join("run.json"),
        )
        .unwrap();
        assert!(store.load("copy").is_err());
        let ids: Vec<String> = store.list().unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(ids, vec!["good"]);
    }

    #[test]
    fn hostile_ids_and_names_are_refused_before_any_file_is_touched() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path());
        for id in ["../x", "..", ".", "", "a/b", "-x"] {
            assert!(
                matches!(store.load(id), Err(RunStoreError::InvalidId { .. })),
                "{id}"
            );
        }
        for (field, bad) in [
            ("id", "../../escaped"),
            ("project", ".codex-remote"),
            ("task_id", "../t"),
        ] {
            let mut r = record("ok");
            match field {
                "id" => r.id = bad.into(),
                "project" => r.project = bad.into(),
                _ => r.task_id = bad.into(),
            }
            let e = store.save(&r).unwrap_err();
            assert!(e.to_string().contains(field), "{e}");
        }
        assert!(!dir.path().join(".codex-remote").exists());
        assert!(!dir.path().join("escaped").exists());
    }

    #[test]
    fn run_ids_of_the_longest_task_ids_are_names() {
        let id = new_run_id(&"t".repeat(Name::MAX_LEN));
        assert!(Name::parse(&id).is_ok(), "{id}");
    }
}
