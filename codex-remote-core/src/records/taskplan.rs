//! The orchestration file `task_plan.json`: entries `{"task_id", "executor": "codex-remote",
//! "instruction", "status"}` in a top-level array or under a `tasks` key.
//!
//! Updates keep every unknown field and the order of keys, are written atomically, and take an
//! exclusive lock (`task_plan.json.lock`) around read-modify-write so concurrent writers never
//! lose each other's updates. A malformed plan is an error naming line and column; the file is
//! left untouched.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::atomic::write_atomic;
use crate::input::InputError;

/// One entry, as documented (other fields are allowed and kept).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TaskPlanEntry {
    /// The task's id.
    pub task_id: String,
    /// Who executes it; codex-remote takes entries whose executor is `codex-remote`.
    pub executor: String,
    /// The instruction to send as-is (or name a `task_file`).
    #[serde(default)]
    pub instruction: Option<String>,
    /// A task file (relative to the plan) to run instead of a raw instruction.
    #[serde(default)]
    pub task_file: Option<String>,
    /// pending | running | completed | failed.
    pub status: String,
    /// Written by codex-remote: the run id.
    #[serde(default)]
    pub run_id: Option<String>,
    /// Written by codex-remote: when the run started (RFC 3339).
    #[serde(default)]
    pub started_at: Option<String>,
    /// Written by codex-remote: when it ended (RFC 3339).
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Written by codex-remote: why it failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// The whole file: an array of entries, or an object with a `tasks` array.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(title = "codex-remote task_plan.json")]
pub enum TaskPlanDocument {
    /// `[ {...}, ... ]`
    List(Vec<TaskPlanEntry>),
    /// `{ "tasks": [ {...}, ... ], ... }`
    Object {
        /// The entries.
        tasks: Vec<TaskPlanEntry>,
    },
}

/// The JSON Schema of task_plan.json.
pub fn schema() -> Value {
    serde_json::to_value(schemars::schema_for!(TaskPlanDocument)).expect("schemas serialise")
}

/// A loaded plan.
#[derive(Debug, Clone)]
pub struct TaskPlan {
    path: PathBuf,
    value: Value,
    trailing_newline: bool,
}

fn parse(path: &Path, text: &str) -> Result<Value, InputError> {
    let name = path.display().to_string();
    let value: Value = serde_json::from_str(text).map_err(|e| {
        InputError::new(
            &name,
            format!(
                "not valid JSON: {}",
                crate::input::strip_position_suffix(&e.to_string())
            ),
        )
        .at(e.line(), e.column())
        .hint("the plan was not changed; fix the JSON and try again")
    })?;
    let entries = match &value {
        Value::Array(entries) => entries,
        Value::Object(map) => match map.get("tasks") {
            Some(Value::Array(entries)) => entries,
            _ => {
                return Err(InputError::new(
                    &name,
                    "expected a top-level array of tasks or a `tasks` array",
                )
                .field("tasks"))
            }
        },
        _ => {
            return Err(InputError::new(
                &name,
                "expected a top-level array of tasks or an object with `tasks`",
            ))
        }
    };
    for (i, entry) in entries.iter().enumerate() {
        let field = |f: &str| format!("tasks[{i}].{f}");
        let Some(map) = entry.as_object() else {
            return Err(
                InputError::new(&name, "each task must be an object").field(format!("tasks[{i}]"))
            );
        };
        for key in ["task_id", "executor", "status"] {
            if !map.get(key).is_some_and(Value::is_string) {
                return Err(InputError::new(&name, format!("`{key}` must be a string"))
                    .field(field(key))
                    .at_opt(crate::input::locate_top_level_key(text, key)));
            }
        }
    }
    Ok(value)
}

impl TaskPlan {
    /// Reads and checks a plan.
    pub fn load(path: &Path) -> Result<Self, InputError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            InputError::new(
                path.display().to_string(),
                format!("cannot read the plan: {e}"),
            )
        })?;
        let value = parse(path, &text)?;
        Ok(Self {
            path: path.to_path_buf(),
            value,
            trailing_newline: text.ends_with('\n'),
        })
    }

    fn entries(&self) -> &Vec<Value> {
        match &self.value {
            Value::Array(entries) => entries,
            Value::Object(map) => map["tasks"].as_array().expect("checked on load"),
            _ => unreachable!("checked on load"),
        }
    }

    fn entries_mut(&mut self) -> &mut Vec<Value> {
        match &mut self.value {
            Value::Array(entries) => entries,
            Value::Object(map) => map
                .get_mut("tasks")
                .and_then(Value::as_array_mut)
                .expect("checked on load"),
            _ => unreachable!("checked on load"),
        }
    }

    /// All entries, as maps (unknown fields included).
    pub fn tasks(&self) -> Vec<&Map<String, Value>> {
        self.entries().iter().filter_map(Value::as_object).collect()
    }

    /// The entry with this id.
    pub fn task(&self, task_id: &str) -> Result<&Map<String, Value>, InputError> {
        self.tasks()
            .into_iter()
            .find(|t| t["task_id"] == task_id)
            .ok_or_else(|| {
                let ids: Vec<String> = self
                    .tasks()
                    .iter()
                    .filter_map(|t| t["task_id"].as_str().map(str::to_string))
                    .collect();
                InputError::new(
                    self.path.display().to_string(),
                    format!("no task `{task_id}`; tasks: {}", ids.join(", ")),
                )
                .field("task_id")
            })
    }

    /// Ids of `pending` entries whose executor is `codex-remote`, in plan order.
    pub fn pending(&self) -> Vec<String> {
        self.tasks()
            .iter()
            .filter(|t| t["executor"] == "codex-remote" && t["status"] == "pending")
            .filter_map(|t| t["task_id"].as_str().map(str::to_string))
            .collect()
    }

    fn render(&self) -> Vec<u8> {
        let mut text = serde_json::to_vec_pretty(&self.value).expect("values serialise");
        if self.trailing_newline {
            text.push(b'\n');
        }
        text
    }
}

/// Updates one entry under the plan's lock: re-reads the file, applies `update` to the entry's
/// map (keeping its other fields and key order), writes atomically.
pub fn update_task(
    path: &Path,
    task_id: &str,
    update: impl FnOnce(&mut Map<String, Value>),
) -> Result<(), crate::Error> {
    let lock_path = lock_path(path);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| crate::Error::Io {
            context: format!("opening {}", lock_path.display()),
            source,
        })?;
    lock.lock().map_err(|source| crate::Error::Io {
        context: format!("locking {}", lock_path.display()),
        source,
    })?;
    let mut plan = TaskPlan::load(path)?;
    plan.task(task_id)?;
    let entry = plan
        .entries_mut()
        .iter_mut()
        .filter_map(Value::as_object_mut)
        .find(|t| t["task_id"] == task_id)
        .expect("checked above");
    update(entry);
    write_atomic(path, &plan.render()).map_err(|source| crate::Error::Io {
        context: format!("writing {}", path.display()),
        source,
    })?;
    Ok(())
}

/// The task of a plan entry: its `task_file` (relative to the plan), or its `instruction`, which
/// is returned too so it can be sent verbatim.
pub fn task_spec(
    path: &Path,
    task_id: &str,
) -> Result<(crate::task::TaskSpec, Option<String>), InputError> {
    let plan = TaskPlan::load(path)?;
    let entry = plan.task(task_id)?;
    let source = path.display().to_string();
    if let Some(file) = entry.get("task_file").and_then(Value::as_str) {
        let file = path.parent().unwrap_or(Path::new(".")).join(file);
        return Ok((crate::task::TaskSpec::load(&file)?, None));
    }
    let instruction = entry
        .get("instruction")
        .and_then(Value::as_str)
        .filter(|i| !i.trim().is_empty())
        .ok_or_else(|| {
            InputError::new(
                &source,
                format!("task `{task_id}` has neither an `instruction` nor a `task_file`"),
            )
            .field("instruction")
        })?;
    let task_type = match entry.get("type").and_then(Value::as_str) {
        Some(t) => t
            .parse()
            .map_err(|m: String| InputError::new(&source, m).field("type"))?,
        None => crate::task::TaskType::Feature,
    };
    let mut task = crate::task::TaskSpec::from_prompt(instruction, task_type, Vec::new())?;
    task.id = task_id.to_string();
    task.model = entry
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok((task, Some(instruction.to_string())))
}

/// Marks an entry `running` (clearing a previous outcome).
pub fn mark_running(path: &Path, task_id: &str, run_id: Option<&str>) -> Result<(), crate::Error> {
    update_task(path, task_id, |t| {
        t.insert("status".into(), "running".into());
        t.insert("started_at".into(), crate::runs::now().into());
        if let Some(run_id) = run_id {
            t.insert("run_id".into(), run_id.into());
        }
        t.remove("error");
        t.remove("hint");
        t.remove("finished_at");
    })
}

/// Records a run id on an entry.
pub fn set_run_id(path: &Path, task_id: &str, run_id: &str) -> Result<(), crate::Error> {
    update_task(path, task_id, |t| {
        t.insert("run_id".into(), run_id.into());
    })
}

/// Moves an entry to `completed`, or to `failed` with the reason.
pub fn settle(
    path: &Path,
    task_id: &str,
    run_id: Option<&str>,
    result: Result<(), &str>,
) -> Result<(), crate::Error> {
    update_task(path, task_id, |t| {
        if let Some(run_id) = run_id {
            t.insert("run_id".into(), run_id.into());
        }
        t.insert("finished_at".into(), crate::runs::now().into());
        match result {
            Ok(()) => {
                t.insert("status".into(), "completed".into());
                t.remove("error");
                t.remove("hint");
            }
            Err(reason) => {
                t.insert("status".into(), "failed".into());
                t.insert("error".into(), reason.into());
            }
        }
    })
}

/// Keeps an entry true once a run stops: `completed` when it succeeded, `failed` with the
/// reason when it failed or was cancelled; left `running` when only the connection was lost
/// (the agent goes on, and attaching picks it up). The one rule `run --plan`, `attach` and
/// the engine follow.
pub fn settle_run<T>(
    path: &Path,
    task_id: &str,
    run_id: Option<&str>,
    result: &Result<T, crate::Error>,
) -> Result<(), crate::Error> {
    match result {
        Ok(_) => settle(path, task_id, run_id, Ok(())),
        Err(crate::Error::Transport(e)) if e.is_connection() => Ok(()),
        Err(e) => {
            settle(path, task_id, run_id, Err(&e.full_message()))?;
            // The advice, apart from the reason (absent when there is none).
            let hint = e.hint();
            update_task(path, task_id, |t| match hint {
                Some(hint) => {
                    t.insert("hint".into(), hint.into());
                }
                None => {
                    t.remove("hint");
                }
            })
        }
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = r#"{
  "version": 2,
  "tasks": [
    { "task_id": "a", "executor": "codex-remote", "instruction": "TASK: A", "status": "pending", "zeta": 1, "alpha": 2 },
    { "task_id": "b", "executor": "human", "status": "pending" }
  ]
}
"#;

    #[test]
    fn updates_keep_unknown_fields_and_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("task_plan.json");
        std::fs::write(&path, PLAN).unwrap();
        assert_eq!(TaskPlan::load(&path).unwrap().pending(), vec!["a"]);
        update_task(&path, "a", |t| {
            t.insert("status".into(), "running".into());
            t.insert("run_id".into(), "r1".into());
        })
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let a = text.find("\"zeta\"").unwrap();
        assert!(
            a < text.find("\"alpha\"").unwrap(),
            "key order kept: {text}"
        );
        assert!(text.contains("\"version\": 2") && text.ends_with("}\n"));
        assert!(text.contains("\"status\": \"running\"") && text.contains("\"run_id\": \"r1\""));
    }

    #[test]
    fn malformed_plans_are_located_and_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("task_plan.json");
        let broken = "[\n  { \"task_id\": \"a\", \"executor\": \"codex-remote\", \"status\": \"pending\" },,\n]\n";
        std::fs::write(&path, broken).unwrap();
        let e = TaskPlan::load(&path).unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        let err = update_task(&path, "a", |_| {}).unwrap_err();
        assert!(
            err.to_string().contains("line") || err.to_string().contains(":2:"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), broken);
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("task_plan.json");
        let entries: Vec<String> = (0..16)
            .map(|i| {
                format!(
                    "{{\"task_id\":\"t{i}\",\"executor\":\"codex-remote\",\"status\":\"pending\"}}"
                )
            })
            .collect();
        std::fs::write(&path, format!("[{}]", entries.join(","))).unwrap();
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    update_task(&path, &format!("t{i}"), |t| {
                        t.insert("status".into(), "completed".into());
                    })
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
        let plan = TaskPlan::load(&path).unwrap();
        assert!(
            plan.tasks().iter().all(|t| t["status"] == "completed"),
            "every update landed"
        );
    }
}
