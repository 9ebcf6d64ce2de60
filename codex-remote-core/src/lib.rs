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

/// Internal modules: reachable inside the crate by their flat paths (`crate::runs`), public
/// only under the `test-internals` feature, which this workspace's own integration tests and
/// benchmarks turn on (hidden from the docs; not an API). An embedder uses the crate root's
/// re-exports and the public modules above.
macro_rules! internal {
    ($($folder:ident::{$($name:ident),* $(,)?});* $(;)?) => {$(
        #[cfg(feature = "test-internals")]
        #[doc(hidden)]
        pub use $folder::{$($name),*};
        #[cfg(not(feature = "test-internals"))]
        #[allow(unused_imports)]
        use $folder::{$($name),*};
    )*};
}

#[cfg(feature = "test-internals")]
#[doc(hidden)]
pub mod atomic;
#[cfg(not(feature = "test-internals"))]
mod atomic;
pub mod config;
#[cfg(feature = "test-internals")]
#[doc(hidden)]
pub mod error;
#[cfg(not(feature = "test-internals"))]
mod error;
#[cfg(feature = "test-internals")]
#[doc(hidden)]
pub mod names;
#[cfg(not(feature = "test-internals"))]
mod names;
#[cfg(feature = "test-internals")]
#[doc(hidden)]
pub mod notify;
#[cfg(not(feature = "test-internals"))]
mod notify;

// The public families: the four traits with their implementations (transport, sync, executor,
// model), the formats an embedder reads or writes (config, host, task, events, schema), doctor's
// checks, and the scripted model server that `codex-remote demo` and tests stand in for the
// provider with.
pub use agent::{events, executor, model_server};
pub use hosts::{host, transport};
pub use planning::{model, schema, task};
pub use remote::sync;
pub use workflows::doctor;

internal! {
    hosts::{ondemand, shell};
    planning::{input, instruction, plan, policy};
    records::{checkpoint, patch, runs, taskplan};
    remote::{layout, workspace};
    workflows::{engine, interactive, orchestrate, pipeline, prerequisites, progress, run};
}
use records::json_edit;

pub use atomic::write_atomic;
pub use checkpoint::{mark_checkpoint, mark_checkpoint_in, CheckpointError, CheckpointOutcome};
pub use config::Config;
pub use engine::{
    Applied, ApplyOptions, Canceller, DefaultSyncers, DefaultTransports, Diff, Engine,
    PruneOptions, RunHandle, RunResult, RunStatus, SyncerFactory, TransportFactory, ENV_SSH_CONFIG,
};
pub use error::{Error, ErrorKind};
pub use input::InputError;
pub use instruction::{ExcludedEntry, Instruction};
pub use interactive::{InteractiveSession, InteractiveSummary};
pub use names::{Name, NameError};
pub use ondemand::RunContainer;
pub use orchestrate::{OrchestrateOptions, OrchestrateSummary, TaskOutcome};
pub use patch::{
    ApplyError, Conflict, FileChange, ParsedPatch, PatchParseError, StoredPatchLimit,
    Warning as ApplyWarning,
};
pub use pipeline::Project;
pub use plan::{find_project_root, PlanOverrides, PlanReport, RunPlan, PLAN_SCHEMA_VERSION};
pub use policy::{is_default_ignorable, RestrictedFiles};
pub use prerequisites::{PrerequisiteCache, CODEX_INSTALL, CODEX_NOT_FOUND, CODEX_VERSION};
pub use progress::{Event, EventKind};
pub use run::{
    event_log_lines, unrecorded_events, RunOptions, RunSummary, Unrecorded, UNRECORDED_LIMIT,
};
pub use runs::{
    rfc3339_of, FinishOptions, Phase, RunKind, RunRecord, RunStore, RunStoreError, RunWarning,
};
pub use shell::{quote as shell_quote, ScriptError};
pub use task::TaskSpec;
pub use taskplan::TaskPlan;
pub use workspace::RunTree;
