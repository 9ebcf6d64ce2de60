//! `plan`: everything a run would do, decided up front and shown before anything is sent.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{Config, PROJECT_FILE};
use crate::host::{HostKind, HostSpec};
use crate::input::InputError;
use crate::instruction::{self, ExcludedEntry, Instruction};
use crate::model::{ModelChoice, ModelRequest, ModelSelector, ModelSource};
use crate::task::TaskSpec;

/// The version of the `plan --json` shape; bumped only on incompatible changes.
pub const PLAN_SCHEMA_VERSION: u32 = 1;

/// What a run of a task will do.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// The task.
    pub task: TaskSpec,
    /// The model and why.
    pub model: ModelChoice,
    /// Where it runs.
    pub host: HostSpec,
    /// The remote workspace name.
    pub project: String,
    /// `<workspace>/<project>` on the host.
    pub remote_dir: String,
    /// The instruction for Codex.
    pub instruction: Instruction,
    /// The restricted patterns in force.
    pub restricted: Vec<String>,
}

/// Inputs to planning that come from flags rather than files.
#[derive(Debug, Clone, Default)]
pub struct PlanOverrides<'a> {
    /// `--host`.
    pub host: Option<&'a str>,
    /// `--model`.
    pub model: Option<&'a str>,
}

impl<'a> PlanOverrides<'a> {
    /// Run on this host (a name from the config).
    pub fn on_host(host: &'a str) -> Self {
        Self {
            host: Some(host),
            model: None,
        }
    }
}

/// Plans a run.
pub fn plan(
    task: TaskSpec,
    config: &Config,
    selector: &dyn ModelSelector,
    overrides: &PlanOverrides<'_>,
    project_root: &Path,
) -> Result<RunPlan, InputError> {
    if let Some(model) = overrides.model {
        if model.trim().is_empty() || model.chars().any(char::is_whitespace) {
            return Err(InputError::new(
                "--model",
                format!("`{model}` is not a model name"),
            ));
        }
    }
    let host = config.host(overrides.host)?;
    let restricted = config.restricted()?;
    let model = selector.select(&ModelRequest {
        task_type: task.task_type,
        task_model: task.model.as_deref(),
        flag_model: overrides.model,
    });
    let project = task.project_name(project_root);
    let remote_dir = host.project_dir(&project);
    let instruction = instruction::render(&task, &restricted);
    Ok(RunPlan {
        task,
        model,
        host,
        project,
        remote_dir,
        instruction,
        restricted: restricted.patterns().to_vec(),
    })
}

/// The project root: the nearest directory holding `codex-remote.toml`, else a `.git`, else
/// `start` itself.
pub fn find_project_root(start: &Path) -> PathBuf {
    for marker in [PROJECT_FILE, ".git"] {
        if let Some(dir) = start.ancestors().find(|dir| dir.join(marker).exists()) {
            return dir.to_path_buf();
        }
    }
    start.to_path_buf()
}

/// The stable `plan --json` object. Field names and meanings only ever grow.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PlanReport<'a> {
    /// Always [`PLAN_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The task's id.
    pub task_id: &'a str,
    /// The task's title.
    pub title: &'a str,
    /// The task type.
    #[serde(rename = "type")]
    pub task_type: &'static str,
    /// The chosen model.
    pub model: &'a str,
    /// flag | task | config | default.
    pub model_source: ModelSource,
    /// The reasoning effort, or null.
    pub reasoning_effort: Option<&'a str>,
    /// Host name.
    pub host: &'a str,
    /// `local`, `ssh`, `podman`, `docker`, `kubernetes`, or `on-demand` (a fresh container per
    /// run).
    pub host_kind: &'static str,
    /// The ssh destination, or null for other hosts.
    pub ssh_destination: Option<&'a str>,
    /// The container (`NAMESPACE/POD[/CONTAINER]` for kubernetes); absent for other hosts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<&'a str>,
    /// The remote workspace name.
    pub project: &'a str,
    /// The project's directory on the host.
    pub remote_dir: &'a str,
    /// Entries the restricted-file policy removed.
    pub excluded: &'a [ExcludedEntry],
    /// The restricted patterns in force.
    pub restricted: &'a [String],
    /// The exact instruction text.
    pub instruction: &'a str,
    /// The checklist item ticked once the result is applied (`{file, item}`), or null.
    pub checkpoint: Option<&'a crate::task::Checkpoint>,
}

impl RunPlan {
    /// The `--json` view.
    pub fn report(&self) -> PlanReport<'_> {
        let (host_kind, ssh_destination, container) = match &self.host.kind {
            HostKind::Local => ("local", None, None),
            HostKind::Ssh { destination } => ("ssh", Some(destination.as_str()), None),
            HostKind::Container { engine, target } => (engine.key(), None, Some(target.as_str())),
            HostKind::OnDemand(_) => ("on-demand", None, None),
        };
        PlanReport {
            schema_version: PLAN_SCHEMA_VERSION,
            task_id: &self.task.id,
            title: &self.task.title,
            task_type: self.task.task_type.as_str(),
            model: &self.model.model,
            model_source: self.model.source,
            reasoning_effort: self.model.reasoning_effort.as_deref(),
            host: &self.host.name,
            host_kind,
            ssh_destination,
            container,
            project: &self.project,
            remote_dir: &self.remote_dir,
            excluded: &self.instruction.excluded,
            restricted: &self.restricted,
            instruction: &self.instruction.text,
            checkpoint: self.task.checkpoint.as_ref(),
        }
    }

    /// Why this model: a sentence for humans.
    pub fn model_reason(&self) -> String {
        match self.model.source {
            ModelSource::Flag => "from --model".to_string(),
            ModelSource::Task => "from the task file".to_string(),
            ModelSource::Config => format!("config [models] table for {}", self.task.task_type),
            ModelSource::Default => format!("built-in default for {}", self.task.task_type),
        }
    }
}
