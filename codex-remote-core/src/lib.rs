//! # codex-remote-core
//!
//! Hand a heavy coding task to the OpenAI Codex CLI on another machine (or this one) and bring
//! the result back safely. This crate is the whole workflow as a library; the `codex-remote`
//! command is a thin layer over it.
//!
//! The front door is the [`Engine`]: one per project, built from a [`Config`], with every part
//! injectable — how hosts are reached ([`TransportFactory`], default SSH or local processes),
//! how the project is pushed ([`SyncerFactory`], default rsync / tar / local copy), how the agent
//! runs ([`executor::Executor`], default the Codex CLI) and how the model is chosen
//! ([`model::ModelSelector`], default the config's table).
//!
//! ```
//! use codex_remote_core::{Config, Engine, PlanOverrides, TaskSpec};
//! let engine = Engine::new(Config::builtin(), "/src/app");
//! let task = TaskSpec::parse_str(
//!     "id: t\ntitle: Add a flag\ntype: feature\nrequirements: [Add --verbose]\n", "t.yaml").unwrap();
//! let plan = engine.plan(task, &PlanOverrides::default()).unwrap();
//! assert_eq!(plan.model.model, "gpt-5.3-codex");
//! assert!(plan.instruction.text.contains("REQUIREMENTS:\n1. Add --verbose"));
//! ```
//!
//! Running it (see `examples/embed.rs` and `docs/embedding.md`):
//!
//! ```no_run
//! # async fn demo(engine: codex_remote_core::Engine, plan: codex_remote_core::RunPlan)
//! # -> Result<(), codex_remote_core::Error> {
//! let mut handle = engine.start(&plan, engine.run_options()).await?;
//! let mut events = handle.events().expect("taken once");
//! tokio::spawn(async move { while let Some(event) = events.recv().await { println!("{event:?}") } });
//! let done = handle.wait().await?;
//! println!("{} file(s) changed; {} patch bytes", done.summary.files.len(), done.patch.len());
//! # Ok(()) }
//! ```
//!
//! Public modules are the four trait families with their implementations ([`transport`],
//! [`sync`], [`executor`], [`model`]) and the formats an embedder reads or writes ([`config`],
//! [`host`], [`task`], [`events`], [`schema`]); [`doctor`] checks a host. Everything else is
//! reached through the crate root's re-exports below.

#![warn(missing_docs)]
// Errors carry locations and hints for the user; they are cold-path values, so their size
// does not matter more than their clarity.
#![allow(clippy::result_large_err)]

// The folders follow the data: the task side, reaching hosts, the host side, the agent, what
// comes home, and the workflows over them. Module paths stay flat (`crate::task`, ...).
mod agent;
mod hosts;
mod planning;
mod records;
mod remote;
mod workflows;

pub mod atomic;
pub mod config;
pub mod error;

// The public families: the four traits with their implementations, and the formats an
// embedder reads or writes.
pub use agent::{events, executor, model_server};
pub use hosts::{host, shell, transport};
pub use planning::{input, instruction, model, plan, policy, schema, task};
use records::json_edit;
pub use records::{checkpoint, patch, runs, taskplan};
pub use remote::{layout, sync, workspace};
pub use workflows::{
    doctor, engine, interactive, orchestrate, pipeline, prerequisites, progress, run,
};

pub use atomic::write_atomic;
pub use checkpoint::{mark_checkpoint, CheckpointError, CheckpointOutcome};
pub use config::Config;
pub use engine::{
    Applied, ApplyOptions, Canceller, DefaultSyncers, DefaultTransports, Diff, Engine,
    PruneOptions, RunHandle, RunResult, RunStatus, SyncerFactory, TransportFactory, ENV_SSH_CONFIG,
};
pub use error::{Error, ErrorKind};
pub use input::InputError;
pub use instruction::{ExcludedEntry, Instruction};
pub use orchestrate::{OrchestrateOptions, OrchestrateSummary, TaskOutcome};
pub use patch::{ApplyError, Conflict, FileChange, PatchParseError};
pub use plan::{find_project_root, PlanOverrides, PlanReport, RunPlan, PLAN_SCHEMA_VERSION};
pub use policy::RestrictedFiles;
pub use progress::{Event, EventKind};
pub use run::{RunOptions, RunSummary};
pub use runs::{FinishOptions, Phase, RunRecord, RunStoreError};
pub use shell::{quote as shell_quote, ScriptError};
pub use task::TaskSpec;
pub use workspace::RunTree;
