//! The orchestration file `task_plan.json`: entries `{"task_id", "executor": "codex-remote",
//! "instruction", "status"}` in a top-level array or under a `tasks` key.
//!
//! Updates keep every unknown field, the order of keys and the file's own formatting (only the
//! changed values' bytes change), are written atomically, and take an exclusive lock around
//! read-modify-write so concurrent writers never lose each other's updates. The lock lives in the
//! project's `.codex-remote/locks/`, never beside the user's files. A malformed plan is an error
//! naming line and column; the file is left untouched.

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
    /// The task type of an `instruction` entry (default `feature`); it picks the model.
    #[serde(default, rename = "type")]
    pub task_type: Option<crate::task::TaskType>,
    /// The model of an `instruction` entry, overriding the model table.
    #[serde(default)]
    pub model: Option<String>,
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
        // The ids of the entries codex-remote runs name run records and remote directories.
        if map["executor"] == "codex-remote" {
            let id = map["task_id"].as_str().expect("checked above");
            if let Err(e) = crate::names::Name::parse(id) {
                return Err(e
                    .input(&name, &field("task_id"))
                    .at_opt(locate_literal(text, id)));
            }
        }
    }
    Ok(value)
}

/// Where a string value is written in the JSON text (1-based line and column).
fn locate_literal(text: &str, value: &str) -> Option<(usize, usize)> {
    let literal = serde_json::to_string(value).ok()?;
    text.lines().enumerate().find_map(|(index, line)| {
        line.find(&literal)
            .map(|col| (index + 1, line[..col].chars().count() + 1))
    })
}

impl TaskPlan {
    /// Reads and checks a plan.
    pub fn load(path: &Path) -> Result<Self, InputError> {
        Self::load_text(path).map(|(plan, _)| plan)
    }

    fn load_text(path: &Path) -> Result<(Self, String), InputError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            InputError::new(
                path.display().to_string(),
                format!("cannot read the plan: {e}"),
            )
        })?;
        let plan = Self::from_text(path, &text)?;
        Ok((plan, text))
    }

    fn from_text(path: &Path, text: &str) -> Result<Self, InputError> {
        let value = parse(path, text)?;
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
    let lock_path = lock_path(path)?;
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
    let (mut plan, text) = TaskPlan::load_text(path)?;
    plan.task(task_id)?;
    let entry = plan
        .entries_mut()
        .iter_mut()
        .filter_map(Value::as_object_mut)
        .find(|t| t["task_id"] == task_id)
        .expect("checked above");
    let before = entry.clone();
    update(entry);
    let mut changes: Vec<(String, Option<Value>)> = entry
        .iter()
        .filter(|(k, v)| before.get(k.as_str()) != Some(v))
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    changes.extend(
        before
            .keys()
            .filter(|k| !entry.contains_key(k.as_str()))
            .map(|k| (k.clone(), None)),
    );
    // In place, keeping the file's own formatting; a pretty rewrite only if the text defeats
    // that (it cannot for a plan that parsed, but a rewrite is still a true plan).
    let new_text = crate::json_edit::edit_object(&text, |root| find_entry(root, task_id), &changes)
        .filter(|t| TaskPlan::from_text(path, t).is_ok())
        .map(String::into_bytes)
        .unwrap_or_else(|| plan.render());
    write_atomic(path, &new_text).map_err(|source| crate::Error::Io {
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

/// The entry object with this `task_id` in the document's syntax tree.
fn find_entry<'b, 'a>(
    root: &'b jsonc_parser::ast::Value<'a>,
    task_id: &str,
) -> Option<&'b jsonc_parser::ast::Object<'a>> {
    let entries = match root {
        jsonc_parser::ast::Value::Array(array) => &array.elements,
        jsonc_parser::ast::Value::Object(object) => &object.get_array("tasks")?.elements,
        _ => return None,
    };
    entries.iter().find_map(|e| {
        let object = e.as_object()?;
        (object.get_string("task_id")?.value == task_id).then_some(object)
    })
}

/// The plan's lock: `<project>/.codex-remote/locks/<plan path in the project, `/` as `%`>.lock`,
/// so no lock file is ever left beside the user's files.
fn lock_path(path: &Path) -> Result<PathBuf, crate::Error> {
    let absolute = std::fs::canonicalize(path).map_err(|source| crate::Error::Io {
        context: format!("reading {}", path.display()),
        source,
    })?;
    let dir = absolute.parent().unwrap_or(Path::new("/"));
    let root = crate::plan::find_project_root(dir);
    let relative = absolute.strip_prefix(&root).unwrap_or(&absolute);
    let name: String = relative
        .to_string_lossy()
        .chars()
        .map(|c| if c == '/' { '%' } else { c })
        .collect();
    let locks = root.join(".codex-remote/locks");
    std::fs::create_dir_all(&locks).map_err(|source| crate::Error::Io {
        context: format!("creating {}", locks.display()),
        source,
    })?;
    Ok(locks.join(format!("{name}.lock")))
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
    fn task_ids_that_would_leave_the_project_are_refused_with_their_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("task_plan.json");
        let plan = "[\n  { \"task_id\": \"ok\", \"executor\": \"human\", \"status\": \"pending\" },\n  { \"task_id\": \"../../../../escaped-run\", \"executor\": \"codex-remote\", \"instruction\": \"x\", \"status\": \"pending\" }\n]\n";
        std::fs::write(&path, plan).unwrap();
        let e = TaskPlan::load(&path).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("tasks[1].task_id"), "{e}");
        assert_eq!((e.line, e.column), (Some(3), Some(16)), "{e}");
        assert!(e.message.contains("contains `/`"), "{e}");
        assert!(task_spec(&path, "../../../../escaped-run").is_err());
        // An entry someone else executes may use any id: it never becomes a path.
        std::fs::write(
            &path,
            "[{ \"task_id\": \"../human\", \"executor\": \"human\", \"status\": \"pending\" }]",
        )
        .unwrap();
        assert!(TaskPlan::load(&path).is_ok());
    }

    #[test]
    fn updates_keep_the_files_own_formatting_and_leave_no_lock_beside_it() {
        for indent in ["  ", "    ", "\t"] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("codex-remote.toml"), "").unwrap();
            std::fs::create_dir(dir.path().join("plans")).unwrap();
            let path = dir.path().join("plans/task_plan.json");
            let i = indent;
            let original = format!(
                "{{\n{i}\"version\": 2,\n{i}\"tasks\": [\n{i}{i}{{\n{i}{i}{i}\"zeta\": 1,\n{i}{i}{i}\"task_id\": \"a\",\n{i}{i}{i}\"executor\": \"codex-remote\",\n{i}{i}{i}\"instruction\": \"TASK: A\",\n{i}{i}{i}\"status\": \"pending\"\n{i}{i}}},\n{i}{i}{{ \"task_id\": \"b\", \"executor\": \"human\", \"status\": \"pending\" }}\n{i}]\n}}"
            );
            std::fs::write(&path, &original).unwrap();
            mark_running(&path, "a", Some("a-run")).unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            let expected = original.replace(
                "\"status\": \"pending\"\n",
                &format!("\"status\": \"running\",\n{i}{i}{i}\"started_at\": \"STAMP\",\n{i}{i}{i}\"run_id\": \"a-run\"\n"),
            );
            let stamp = TaskPlan::load(&path).unwrap().task("a").unwrap()["started_at"]
                .as_str()
                .unwrap()
                .to_string();
            assert_eq!(text, expected.replace("STAMP", &stamp), "indent {indent:?}");
            // No final newline before, none after; the single-line entry keeps its line.
            settle(&path, "b", Some("b-run"), Err("boom")).unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(!text.ends_with('\n'));
            assert!(
                text.contains("{ \"task_id\": \"b\", \"executor\": \"human\", \"status\": \"failed\", \"run_id\": \"b-run\", \"finished_at\": \""),
                "{text}"
            );
            // Back to running: `error` and `finished_at` go, with their commas.
            mark_running(&path, "b", None).unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.contains("{ \"task_id\": \"b\", \"executor\": \"human\", \"status\": \"running\", \"run_id\": \"b-run\", \"started_at\": \""),
                "{text}"
            );
            serde_json::from_str::<Value>(&text).unwrap();
            let beside: Vec<_> = std::fs::read_dir(dir.path().join("plans"))
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(beside, vec![std::ffi::OsString::from("task_plan.json")]);
            assert!(dir
                .path()
                .join(".codex-remote/locks/plans%task_plan.json.lock")
                .exists());
        }
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
