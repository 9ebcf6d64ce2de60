//! Choosing the Codex model for a task.
//!
//! Precedence, highest first: the `--model` flag, the task file's `model`, the config's model
//! table, the built-in table. The choice carries its source so users can see why.
//!
//! ```
//! use codex_remote_core::model::{ModelRequest, ModelSelector, ModelSource, TableModelSelector};
//! use codex_remote_core::task::TaskType;
//! let selector = TableModelSelector::builtin();
//! let choice = selector.select(&ModelRequest { task_type: TaskType::Debug, task_model: None, flag_model: None });
//! assert_eq!((choice.model.as_str(), choice.source), ("gpt-5.1-codex-max", ModelSource::Default));
//! ```

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::task::TaskType;

/// Where a model choice came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModelSource {
    /// The `--model` flag.
    Flag,
    /// The task file's `model` key.
    Task,
    /// The config's `[models]` table.
    Config,
    /// The built-in table.
    Default,
}

impl ModelSource {
    /// The name used in `--json` output (`model_source`).
    pub fn as_str(self) -> &'static str {
        match self {
            ModelSource::Flag => "flag",
            ModelSource::Task => "task",
            ModelSource::Config => "config",
            ModelSource::Default => "default",
        }
    }
}

/// The model chosen for a run, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelChoice {
    /// The model name passed to `codex exec --model`.
    pub model: String,
    /// Where the choice came from.
    pub source: ModelSource,
    /// Reasoning effort (`-c model_reasoning_effort=...`), when the table sets one for the type.
    pub reasoning_effort: Option<String>,
}

/// What the selector chooses from.
#[derive(Debug, Clone)]
pub struct ModelRequest<'a> {
    /// The task's type.
    pub task_type: TaskType,
    /// The task file's `model`, if any.
    pub task_model: Option<&'a str>,
    /// The `--model` flag, if given.
    pub flag_model: Option<&'a str>,
}

/// Picks the Codex model for a task. Embedders can supply their own policy.
pub trait ModelSelector: Send + Sync {
    /// Chooses a model for the request.
    fn select(&self, request: &ModelRequest<'_>) -> ModelChoice;
}

/// One row of a model table: a model and an optional reasoning effort.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ModelEntry {
    /// Just a model name: `debug = "gpt-5.1-codex-max"`.
    Name(String),
    /// A model with options: `debug = { model = "gpt-5.1-codex-max", reasoning_effort = "high" }`.
    Detailed {
        /// Model name; when absent the built-in model for the type is kept.
        #[serde(default)]
        model: Option<String>,
        /// Reasoning effort: minimal, low, medium, high or xhigh.
        #[serde(default)]
        reasoning_effort: Option<String>,
    },
}

impl ModelEntry {
    fn model(&self) -> Option<&str> {
        match self {
            ModelEntry::Name(name) => Some(name),
            ModelEntry::Detailed { model, .. } => model.as_deref(),
        }
    }

    fn reasoning_effort(&self) -> Option<&str> {
        match self {
            ModelEntry::Name(_) => None,
            ModelEntry::Detailed {
                reasoning_effort, ..
            } => reasoning_effort.as_deref(),
        }
    }
}

/// The seed workflow's table: latest model for building, deep reasoning for debugging, the small
/// model for quick work.
pub(crate) fn builtin_model(task_type: TaskType) -> &'static str {
    match task_type {
        TaskType::Feature | TaskType::Refactor | TaskType::Migration | TaskType::TestGen => {
            "gpt-5.3-codex"
        }
        TaskType::Debug => "gpt-5.1-codex-max",
        TaskType::QuickFix | TaskType::Scaffold => "gpt-5.1-codex-mini",
    }
}

/// The standard selector: a configurable table over the built-in one.
#[derive(Debug, Clone, Default)]
pub struct TableModelSelector {
    configured: BTreeMap<TaskType, ModelEntry>,
}

impl TableModelSelector {
    /// The built-in table only.
    pub fn builtin() -> Self {
        Self::default()
    }

    /// The built-in table overridden by configured rows.
    pub fn with_table(configured: BTreeMap<TaskType, ModelEntry>) -> Self {
        Self { configured }
    }
}

impl ModelSelector for TableModelSelector {
    fn select(&self, request: &ModelRequest<'_>) -> ModelChoice {
        let row = self.configured.get(&request.task_type);
        let reasoning_effort = row
            .and_then(ModelEntry::reasoning_effort)
            .map(str::to_string);
        let (model, source) = if let Some(flag) = request.flag_model {
            (flag.to_string(), ModelSource::Flag)
        } else if let Some(task) = request.task_model {
            (task.to_string(), ModelSource::Task)
        } else if let Some(configured) = row.and_then(ModelEntry::model) {
            (configured.to_string(), ModelSource::Config)
        } else {
            (
                builtin_model(request.task_type).to_string(),
                ModelSource::Default,
            )
        };
        ModelChoice {
            model,
            source,
            reasoning_effort,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        task_model: Option<&'static str>,
        flag_model: Option<&'static str>,
    ) -> ModelRequest<'static> {
        ModelRequest {
            task_type: TaskType::Feature,
            task_model,
            flag_model,
        }
    }

    #[test]
    fn builtin_table_follows_the_seed() {
        let s = TableModelSelector::builtin();
        let expected = [
            (TaskType::Feature, "gpt-5.3-codex"),
            (TaskType::Refactor, "gpt-5.3-codex"),
            (TaskType::Migration, "gpt-5.3-codex"),
            (TaskType::TestGen, "gpt-5.3-codex"),
            (TaskType::Debug, "gpt-5.1-codex-max"),
            (TaskType::QuickFix, "gpt-5.1-codex-mini"),
            (TaskType::Scaffold, "gpt-5.1-codex-mini"),
        ];
        for (task_type, model) in expected {
            let choice = s.select(&ModelRequest {
                task_type,
                task_model: None,
                flag_model: None,
            });
            assert_eq!(
                (choice.model.as_str(), choice.source),
                (model, ModelSource::Default),
                "{task_type}"
            );
        }
    }

    #[test]
    fn precedence_is_flag_task_config_default() {
        let table = BTreeMap::from([(TaskType::Feature, ModelEntry::Name("cfg-model".into()))]);
        let s = TableModelSelector::with_table(table);
        assert_eq!(
            s.select(&request(Some("task-model"), Some("flag-model")))
                .source,
            ModelSource::Flag
        );
        assert_eq!(
            s.select(&request(Some("task-model"), None)).model,
            "task-model"
        );
        assert_eq!(s.select(&request(None, None)).model, "cfg-model");
        assert_eq!(s.select(&request(None, None)).source, ModelSource::Config);
        assert_eq!(
            TableModelSelector::builtin()
                .select(&request(None, None))
                .source,
            ModelSource::Default
        );
    }

    #[test]
    fn a_row_with_only_an_effort_keeps_the_builtin_model() {
        let row = ModelEntry::Detailed {
            model: None,
            reasoning_effort: Some("high".into()),
        };
        let s = TableModelSelector::with_table(BTreeMap::from([(TaskType::Debug, row)]));
        let choice = s.select(&ModelRequest {
            task_type: TaskType::Debug,
            task_model: None,
            flag_model: None,
        });
        assert_eq!(choice.model, "gpt-5.1-codex-max");
        assert_eq!(choice.source, ModelSource::Default);
        assert_eq!(choice.reasoning_effort.as_deref(), Some("high"));
    }
}
