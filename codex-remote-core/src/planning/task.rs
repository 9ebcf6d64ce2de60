//! Task files: what one delegated task is, parsed strictly from YAML or JSON.
//!
//! ```
//! use codex_remote_core::task::{TaskSpec, TaskType};
//! let yaml = "id: fix-typo\ntitle: Fix the typo in README\ntype: quick-fix\nrequirements: [Fix it]\n";
//! let task = TaskSpec::parse_str(yaml, "inline.yaml").unwrap();
//! assert_eq!(task.task_type, TaskType::QuickFix);
//! ```

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::input::{self, InputError};

/// The kind of work, which decides the default model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TaskType {
    /// Restructure code without changing behaviour.
    Refactor,
    /// Move code to a new API, framework or pattern (callbacks to async/await).
    Migration,
    /// Write tests for existing code.
    TestGen,
    /// Build something new.
    Feature,
    /// Find and fix the root cause of a bug (deep reasoning).
    Debug,
    /// A small, well-understood change.
    QuickFix,
    /// Generate boilerplate or a skeleton.
    Scaffold,
}

impl TaskType {
    /// Every task type, in documentation order.
    pub const ALL: [TaskType; 7] = [
        TaskType::Refactor,
        TaskType::Migration,
        TaskType::TestGen,
        TaskType::Feature,
        TaskType::Debug,
        TaskType::QuickFix,
        TaskType::Scaffold,
    ];

    /// The name used in task files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskType::Refactor => "refactor",
            TaskType::Migration => "migration",
            TaskType::TestGen => "test-gen",
            TaskType::Feature => "feature",
            TaskType::Debug => "debug",
            TaskType::QuickFix => "quick-fix",
            TaskType::Scaffold => "scaffold",
        }
    }

    /// The error message for a name that is not a task type, listing the valid ones and the
    /// nearest match.
    fn unknown_message(name: &str) -> String {
        let valid: Vec<&str> = Self::ALL.iter().map(|t| t.as_str()).collect();
        let mut message = format!(
            "unknown task type `{name}`, expected one of: {}",
            valid.join(", ")
        );
        if let Some(near) = input::nearest(name, valid.iter().copied()) {
            message.push_str(&format!(" (did you mean `{near}`?)"));
        }
        message
    }
}

impl fmt::Display for TaskType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TaskType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| Self::unknown_message(s))
    }
}

impl<'de> Deserialize<'de> for TaskType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// Which files the task is about. Written `scope: {files: [...]}`, or as the workflow document
/// sketches it, a list `scope: [- files: [...]]` whose file lists are joined.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, from = "ScopeForm")]
pub struct Scope {
    /// Project-relative paths or globs (`src/auth/*.js`).
    #[serde(default)]
    pub files: Vec<String>,
}

/// The two ways a scope is written. Deserialised by shape (a mapping or a list), so errors inside
/// either keep their path (`scope.files`).
#[derive(JsonSchema)]
#[serde(untagged)]
enum ScopeForm {
    /// `{files: [...]}`.
    One(ScopeFields),
    /// `[{files: [...]}, ...]`, as the workflow document sketches it.
    Many(Vec<ScopeFields>),
}

/// The files the task is about.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ScopeFields {
    /// Project-relative paths or globs (`src/auth/*.js`).
    #[serde(default)]
    files: Vec<String>,
}

impl<'de> Deserialize<'de> for ScopeForm {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Shape;
        impl<'de> serde::de::Visitor<'de> for Shape {
            type Value = ScopeForm;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a mapping with `files`, or a list of such mappings")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ScopeForm, A::Error> {
                ScopeFields::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(ScopeForm::One)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<ScopeForm, A::Error> {
                Vec::<ScopeFields>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(ScopeForm::Many)
            }
        }
        deserializer.deserialize_any(Shape)
    }
}

impl From<ScopeForm> for Scope {
    fn from(form: ScopeForm) -> Self {
        match form {
            ScopeForm::One(one) => Scope { files: one.files },
            ScopeForm::Many(many) => Scope {
                files: many.into_iter().flat_map(|s| s.files).collect(),
            },
        }
    }
}

/// The markdown checklist item to tick when the task's result is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The spec file holding the checklist, relative to the project root.
    pub file: String,
    /// The item's text, matched exactly (ignoring the checkbox and surrounding whitespace).
    pub item: String,
}

/// One delegated task, as written in a task file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "codex-remote task file")]
pub struct TaskSpec {
    /// Editor hint for JSON task files (`"$schema": "..."`); ignored.
    #[serde(rename = "$schema", default, skip_serializing)]
    #[schemars(skip)]
    pub schema: Option<String>,
    /// Stable identifier: 1 to 128 letters, digits, `.`, `_` and `-`, starting with a letter, a digit or `_`.
    #[schemars(
        length(min = 1, max = 128),
        regex(pattern = r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
    )]
    pub id: String,
    /// One-line summary; becomes the TASK line of the instruction.
    pub title: String,
    /// The kind of work; decides the default model.
    #[serde(rename = "type")]
    pub task_type: TaskType,
    /// The Codex model to use, overriding the model table (the `--model` flag overrides this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Remote workspace name (a name: letters, digits, `.`, `_`, `-`; no leading `.` or `-`); default: the local project directory's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 128),
        regex(pattern = r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
    )]
    pub project: Option<String>,
    /// The files the task is about.
    #[serde(default)]
    pub scope: Scope,
    /// Standards and constraints to respect (for example from `.agent/standards/`).
    #[serde(default)]
    pub standards: Vec<String>,
    /// Extra context for the agent, one entry per line of the CONTEXT section.
    #[serde(default)]
    pub context: Vec<String>,
    /// What must be done; at least one.
    pub requirements: Vec<String>,
    /// How to verify success (`npm test passes`).
    #[serde(default)]
    pub verification: Vec<String>,
    /// The checklist item to tick when the result is applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
}

/// The syntax of a task file, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskFormat {
    /// `.yaml` / `.yml`.
    Yaml,
    /// `.json`.
    Json,
}

impl TaskFormat {
    /// The format for a file name, or an error that says which extensions are understood.
    pub fn from_path(path: &Path) -> Result<Self, InputError> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("yaml" | "yml") => Ok(TaskFormat::Yaml),
            Some("json") => Ok(TaskFormat::Json),
            _ => Err(InputError::new(
                path.display().to_string(),
                "cannot tell the task file's format from its name",
            )
            .hint("name it *.yaml, *.yml or *.json")),
        }
    }

    /// Guesses the format of unnamed input (stdin): JSON if it starts with `{`.
    pub fn sniff(text: &str) -> Self {
        if text.trim_start().starts_with('{') {
            TaskFormat::Json
        } else {
            TaskFormat::Yaml
        }
    }
}

impl TaskSpec {
    /// Reads a task file; `-` reads standard input.
    pub fn load(path: &Path) -> Result<Self, InputError> {
        if path == Path::new("-") {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).map_err(|e| {
                InputError::new(
                    "<stdin>",
                    format!("cannot read the task from standard input: {e}"),
                )
            })?;
            return Self::parse(&text, "<stdin>", TaskFormat::sniff(&text));
        }
        let name = path.display().to_string();
        let format = TaskFormat::from_path(path)?;
        let text = std::fs::read_to_string(path).map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                "check the path"
            } else {
                "check the file's permissions and that it is utf-8 text"
            };
            InputError::new(&name, format!("cannot read the task file: {e}")).hint(hint)
        })?;
        Self::parse(&text, &name, format)
    }

    /// Parses task text whose format follows from `source_name`'s extension.
    pub fn parse_str(text: &str, source_name: &str) -> Result<Self, InputError> {
        let format = TaskFormat::from_path(Path::new(source_name))
            .unwrap_or_else(|_| TaskFormat::sniff(text));
        Self::parse(text, source_name, format)
    }

    /// Parses and validates task text.
    pub fn parse(text: &str, source_name: &str, format: TaskFormat) -> Result<Self, InputError> {
        Self::parse_with_prompt(text, source_name, format, None)
    }

    /// Parses task text that may be the workflow document's sketch: a `task:` mapping (`type`,
    /// `model`, `scope`, `standards`) completed by the document's own `title` and
    /// `requirements`, or by `prompt` (its first line the title, the whole prompt the
    /// requirement). The id, when absent, is derived from the title.
    pub fn parse_with_prompt(
        text: &str,
        source_name: &str,
        format: TaskFormat,
        prompt: Option<&str>,
    ) -> Result<Self, InputError> {
        if let Some(sketch) = sketch_value(text, format, prompt) {
            let task: TaskSpec = serde_path_to_error::deserialize(sketch).map_err(|e| {
                let path = e.path().to_string();
                let position = input::locate_yaml_path(text, &format!("task.{path}"))
                    .or_else(|| input::locate_yaml_path(text, &path));
                located(
                    source_name,
                    &path,
                    input::strip_position_suffix(&e.into_inner().to_string()),
                    position,
                )
            })?;
            task.validate(text, source_name)?;
            return Ok(task);
        }
        if prompt.is_some() {
            return Err(InputError::new(
                source_name,
                "--prompt completes a task sketch (a `task:` mapping), and this file is a whole task",
            )
            .hint("drop --prompt, or write the file as a `task:` sketch"));
        }
        let task: TaskSpec = match format {
            TaskFormat::Yaml => parse_yaml(text, source_name)?,
            TaskFormat::Json => parse_json(text, source_name)?,
        };
        task.validate(text, source_name)?;
        Ok(task)
    }

    /// A one-off task from the command line (`--prompt TEXT --type T --file GLOB`).
    ///
    /// The first line of the prompt is the title; the whole prompt is the requirement. The id is
    /// derived from the prompt so the same prompt always gets the same id.
    pub fn from_prompt(
        prompt: &str,
        task_type: TaskType,
        files: Vec<String>,
    ) -> Result<Self, InputError> {
        let prompt = prompt.replace("\r\n", "\n");
        let title = prompt
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or_default()
            .to_string();
        let task = TaskSpec {
            schema: None,
            id: prompt_slug(&prompt),
            title,
            task_type,
            model: None,
            project: None,
            scope: Scope { files },
            standards: Vec::new(),
            context: Vec::new(),
            requirements: vec![prompt.trim().to_string()],
            verification: Vec::new(),
            checkpoint: None,
        };
        task.validate("", "<command line>")?;
        Ok(task)
    }

    /// The remote workspace name: `project`, or the local project directory's name.
    /// The explicit name was validated when the task was loaded; a directory name is made
    /// valid with [`crate::names::Name::derive`].
    pub fn project_name(&self, project_root: &Path) -> String {
        self.project.clone().unwrap_or_else(|| {
            crate::names::Name::derive(
                &project_root
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                "project",
            )
            .into_string()
        })
    }

    fn validate(&self, text: &str, source_name: &str) -> Result<(), InputError> {
        let err = |field: &str, message: String| {
            let top = field.split(['.', '[']).next().unwrap_or(field);
            InputError::new(source_name, message)
                .field(field)
                .at_opt(input::locate_top_level_key(text, top))
        };
        if self.id.trim().is_empty() {
            return Err(err("id", "must not be empty".into())
                .hint("give the task a short name such as `auth-migration`"));
        }
        if let Err(e) = crate::names::Name::parse(&self.id) {
            return Err(err("id", e.to_string())
                .hint("the id names files and remote directories: use 1 to 128 letters, digits, `.`, `_` and `-`, starting with a letter, a digit or `_`"));
        }
        if self.title.trim().is_empty() {
            return Err(err("title", "must not be empty".into())
                .hint("write a one-line summary of the task"));
        }
        if self.requirements.is_empty() {
            return Err(
                err("requirements", "must list at least one requirement".into())
                    .hint("add a list item under `requirements:` saying what must be done"),
            );
        }
        if let Some(i) = self.requirements.iter().position(|r| r.trim().is_empty()) {
            return Err(
                err(&format!("requirements[{i}]"), "must not be empty".into())
                    .hint("remove the empty entry or write the requirement"),
            );
        }
        for (i, file) in self.scope.files.iter().enumerate() {
            let field = format!("scope.files[{i}]");
            let path = Path::new(file);
            if file.trim().is_empty() {
                return Err(err(&field, "must not be empty".into()));
            }
            if path.is_absolute()
                || path
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                return Err(err(&field, format!("`{file}` is outside the project"))
                    .hint("scope paths are relative to the project root and may not use `..`"));
            }
            if let Err(e) = globset::Glob::new(file) {
                return Err(err(
                    &field,
                    format!("`{file}` is not a valid glob: {}", e.kind()),
                ));
            }
        }
        if let Some(model) = &self.model {
            if model.trim().is_empty() || model.chars().any(char::is_whitespace) {
                return Err(err("model", format!("`{model}` is not a model name"))
                    .hint("write a name such as `gpt-5.3-codex`, or remove the key"));
            }
        }
        if let Some(project) = &self.project {
            if let Err(e) = crate::names::Name::parse(project) {
                return Err(err("project", e.to_string()).hint(
                    "name the remote workspace directory: letters, digits, `.`, `_` and `-`, starting with a letter, a digit or `_`",
                ));
            }
        }
        Ok(())
    }
}

/// The sketch as a whole task (`task:`'s keys lifted to the top, then the title, requirements
/// and id filled in), or `None` when the text is not a sketch.
fn sketch_value(text: &str, format: TaskFormat, prompt: Option<&str>) -> Option<serde_json::Value> {
    let value: serde_json::Value = match format {
        TaskFormat::Yaml => serde_yaml_ng::from_str(text).ok()?,
        TaskFormat::Json => serde_json::from_str(text).ok()?,
    };
    let serde_json::Value::Object(mut outer) = value else {
        return None;
    };
    let serde_json::Value::Object(inner) = outer.remove("task")? else {
        return None;
    };
    for (key, value) in inner {
        outer.entry(key).or_insert(value);
    }
    if let Some(prompt) = prompt.map(|p| p.replace("\r\n", "\n")) {
        let title = prompt
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or_default()
            .to_string();
        outer.entry("title").or_insert(title.into());
        outer
            .entry("requirements")
            .or_insert(serde_json::json!([prompt.trim()]));
    }
    if !outer.contains_key("id") {
        // Without a title there is no id to derive: a placeholder lets the error name the title.
        outer.insert("id".into(), "task".into());
        if let Some(title) = outer.get("title").and_then(|t| t.as_str()) {
            let slug: String = title
                .to_ascii_lowercase()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect::<String>()
                .split('-')
                .filter(|w| !w.is_empty())
                .take(6)
                .collect::<Vec<_>>()
                .join("-");
            let id = if slug.is_empty() {
                "task".to_string()
            } else {
                slug
            };
            outer.insert("id".into(), id.into());
        }
    }
    Some(serde_json::Value::Object(outer))
}

fn parse_yaml(text: &str, source_name: &str) -> Result<TaskSpec, InputError> {
    if text.trim().is_empty() {
        return Err(InputError::new(source_name, "the task file is empty")
            .hint("see docs/task-file.md for the format"));
    }
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let position = inner.location().map(|l| (l.line(), l.column()));
        // Errors raised by our own deserializers (an unknown `type`) come back positioned at the
        // document start; find the field's line instead.
        let position = match position {
            Some((1, 1)) | None if !path.is_empty() && path != "." => {
                input::locate_yaml_path(text, &path).or(position)
            }
            other => other,
        };
        located(
            source_name,
            &path,
            input::strip_position_suffix(&inner.to_string()),
            position,
        )
    })
}

fn parse_json(text: &str, source_name: &str) -> Result<TaskSpec, InputError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let task = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let position = (inner.line() > 0).then(|| (inner.line(), inner.column()));
        located(
            source_name,
            &path,
            input::strip_position_suffix(&inner.to_string()),
            position,
        )
    })?;
    deserializer.end().map_err(|e| {
        located(
            source_name,
            "",
            "unexpected text after the task object",
            Some((e.line(), e.column())),
        )
    })?;
    Ok(task)
}

fn located(
    source_name: &str,
    path: &str,
    message: &str,
    position: Option<(usize, usize)>,
) -> InputError {
    // serde_yaml prefixes nested errors with their path; the error carries the field already.
    let message = message
        .strip_prefix(&format!("{path}: "))
        .unwrap_or(message);
    let mut error = InputError::new(source_name, message.to_string())
        .field(path)
        .at_opt(position);
    if message.starts_with("unknown field") {
        error = error.hint(match input::nearest_expected_field(message) {
            Some(near) => format!("did you mean `{near}`? the task file schema lists every field"),
            None => "remove it or check its spelling; the task file schema lists every field"
                .to_string(),
        });
    } else if message.starts_with("missing field") {
        error = error.hint("add it; see docs/task-file.md");
    } else if message.starts_with("invalid type") {
        error = error.hint("the task file schema gives each field's type");
    }
    error
}

/// The id of a one-off prompt's task: its first words, lower-cased and joined by `-` (at most
/// 6 words and 40 characters), so run ids read (`fix-the-login-redirect-20260101-…`); `prompt`
/// when it has no ASCII letters or digits.
pub fn prompt_slug(prompt: &str) -> String {
    let mut slug = String::new();
    let words = prompt
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(6);
    for word in words {
        let word = word.to_ascii_lowercase();
        if !slug.is_empty() && slug.len() + 1 + word.len() > 40 {
            break;
        }
        if !slug.is_empty() {
            slug.push('-');
        }
        slug.extend(word.chars().take(40));
    }
    if slug.is_empty() {
        "prompt".to_string()
    } else {
        slug
    }
}

/// Where a task comes from: a file (or `-`), or the command line.
#[derive(Debug, Clone)]
pub enum TaskSource {
    /// A task file; `-` is standard input.
    File(PathBuf),
    /// `--prompt TEXT --type T [--file GLOB...]`.
    Prompt {
        /// The prompt text.
        prompt: String,
        /// The task type.
        task_type: TaskType,
        /// Scope files.
        files: Vec<String>,
    },
}

impl TaskSource {
    /// Loads the task.
    pub fn load(&self) -> Result<TaskSpec, InputError> {
        match self {
            TaskSource::File(path) => TaskSpec::load(path),
            TaskSource::Prompt {
                prompt,
                task_type,
                files,
            } => TaskSpec::from_prompt(prompt, *task_type, files.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "id: auth\ntitle: Migrate auth\ntype: migration\nscope:\n  files: [src/auth/*.js]\nrequirements:\n  - Convert callbacks\n";

    #[test]
    fn parses_a_good_yaml_task() {
        let task = TaskSpec::parse_str(GOOD, "t.yaml").unwrap();
        assert_eq!(task.id, "auth");
        assert_eq!(task.task_type, TaskType::Migration);
        assert_eq!(task.scope.files, vec!["src/auth/*.js"]);
    }

    #[test]
    fn the_workflow_document_s_sketch_is_a_task() {
        let sketch = "task:\n  type: refactor\n  model: gpt-5.3-codex\n  scope:\n    - files: [src/a.ts, src/b.ts]\n    - files: [src/c.ts]\n  standards:\n    - .agent/standards/typescript.md\ntitle: Split the auth module\nrequirements:\n  - Move login into its own file\n";
        let task = TaskSpec::parse_str(sketch, "sketch.yaml").unwrap();
        assert_eq!(task.id, "split-the-auth-module");
        assert_eq!(task.task_type, TaskType::Refactor);
        assert_eq!(task.model.as_deref(), Some("gpt-5.3-codex"));
        assert_eq!(task.scope.files, ["src/a.ts", "src/b.ts", "src/c.ts"]);
        assert_eq!(task.standards, [".agent/standards/typescript.md"]);
        // Without a title and requirements, a prompt completes it.
        let bare = "task:\n  type: test-gen\n  scope:\n    - files: [src/util.ts]\n";
        let e = TaskSpec::parse_str(bare, "bare.yaml").unwrap_err();
        assert!(e.to_string().contains("title"), "{e}");
        let task = TaskSpec::parse_with_prompt(
            bare,
            "bare.yaml",
            TaskFormat::Yaml,
            Some("Cover util.ts\nwith edge cases"),
        )
        .unwrap();
        assert_eq!(task.title, "Cover util.ts");
        assert_eq!(task.requirements, ["Cover util.ts\nwith edge cases"]);
        assert_eq!(task.scope.files, ["src/util.ts"]);
        // A sketch's unknown key is still refused, and named.
        let typo = "task:\n  type: refactor\n  scop: []\ntitle: t\nrequirements: [r]\n";
        let e = TaskSpec::parse_str(typo, "typo.yaml").unwrap_err();
        assert!(e.to_string().contains("scop"), "{e}");
        // A whole task with --prompt is a contradiction, said so.
        assert!(TaskSpec::parse_with_prompt(GOOD, "t.yaml", TaskFormat::Yaml, Some("x")).is_err());
    }

    #[test]
    fn yaml_and_json_give_the_same_task() {
        let json = r#"{"id":"auth","title":"Migrate auth","type":"migration","scope":{"files":["src/auth/*.js"]},"requirements":["Convert callbacks"]}"#;
        assert_eq!(
            TaskSpec::parse_str(json, "t.json").unwrap(),
            TaskSpec::parse_str(GOOD, "t.yaml").unwrap()
        );
    }

    #[test]
    fn prompt_ids_are_slugs_of_the_prompt() {
        assert_eq!(
            prompt_slug("Fix the login redirect!"),
            "fix-the-login-redirect"
        );
        assert_eq!(
            prompt_slug("Refactor src/auth.ts to async/await, keep the API and the tests"),
            "refactor-src-auth-ts-to-async"
        );
        assert_eq!(prompt_slug("ünïcødé $(rm -rf /)"), "n-c-d-rm-rf");
        assert_eq!(prompt_slug("日本語"), "prompt");
        assert_eq!(prompt_slug(&"x".repeat(100)), "x".repeat(40));
        let task = TaskSpec::from_prompt("Bump a to 2", TaskType::QuickFix, vec![]).unwrap();
        assert_eq!(task.id, "bump-a-to-2");
    }

    #[test]
    fn unknown_field_is_located() {
        let text = "id: a\ntitle: b\ntype: feature\nrequirements: [x]\nmodle: gpt\n";
        let e = TaskSpec::parse_str(text, "t.yaml").unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.message.contains("unknown field `modle`"), "{e}");
    }

    #[test]
    fn unknown_type_suggests_the_nearest() {
        let text = "id: a\ntitle: b\ntype: refactr\nrequirements: [x]\n";
        let e = TaskSpec::parse_str(text, "t.yaml").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("type"));
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("did you mean `refactor`"), "{e}");
        assert!(e.message.contains("quick-fix"), "{e}");
    }

    #[test]
    fn empty_requirements_is_located() {
        let text = "id: a\ntitle: b\ntype: feature\nrequirements: []\n";
        let e = TaskSpec::parse_str(text, "t.yaml").unwrap_err();
        assert_eq!(
            (e.field.as_deref(), e.line),
            (Some("requirements"), Some(4))
        );
    }

    #[test]
    fn wrong_type_in_nested_field_names_the_path() {
        let text = "id: a\ntitle: b\ntype: feature\nscope:\n  files: 3\nrequirements: [x]\n";
        let e = TaskSpec::parse_str(text, "t.yaml").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("scope.files"));
        assert_eq!(e.line, Some(5));
    }

    #[test]
    fn json_errors_are_located() {
        let text = "{\n  \"id\": \"a\",\n  \"title\": 5\n}";
        let e = TaskSpec::parse_str(text, "t.json").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("title"));
        assert_eq!(e.line, Some(3));
    }

    #[test]
    fn scope_may_not_leave_the_project() {
        let text =
            "id: a\ntitle: b\ntype: feature\nscope: {files: [../etc/passwd]}\nrequirements: [x]\n";
        let e = TaskSpec::parse_str(text, "t.yaml").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("scope.files[0]"));
    }

    #[test]
    fn prompt_tasks_have_stable_ids() {
        let a =
            TaskSpec::from_prompt("Fix the typo\nin README", TaskType::QuickFix, vec![]).unwrap();
        let b =
            TaskSpec::from_prompt("Fix the typo\r\nin README", TaskType::QuickFix, vec![]).unwrap();
        assert_eq!(a.id, b.id);
        assert_eq!(a.title, "Fix the typo");
        assert!(TaskSpec::from_prompt("  ", TaskType::QuickFix, vec![]).is_err());
    }

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(
            TaskFormat::from_path(Path::new("a.YML")).unwrap(),
            TaskFormat::Yaml
        );
        assert!(TaskFormat::from_path(Path::new("a.txt")).is_err());
    }
}
