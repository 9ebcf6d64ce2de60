//! # codex-remote-core
//!
//! Hand a heavy coding task to the OpenAI Codex CLI on another machine (or this one) and bring
//! the result back safely. This crate is the whole workflow as a library: task files
//! ([`task`]), model selection ([`model`]), instruction rendering ([`instruction`]) under the
//! restricted-file policy ([`policy`]), layered configuration ([`config`]), planning ([`plan`]),
//! and running commands on hosts ([`transport`]) with one audited shell-quoting module
//! ([`shell`]). The `codex-remote` binary is a thin layer over it.
//!
//! ```
//! use codex_remote_core::{config::Config, plan::{plan, PlanOverrides}, task::TaskSpec};
//! let task = TaskSpec::parse_str(
//!     "id: t\ntitle: Add a flag\ntype: feature\nrequirements: [Add --verbose]\n", "t.yaml").unwrap();
//! let config = Config::builtin();
//! let plan = plan(task, &config, &config.model_selector(), &PlanOverrides::default(),
//!                 std::path::Path::new("/src/app")).unwrap();
//! assert_eq!(plan.model.model, "gpt-5.3-codex");
//! assert!(plan.instruction.text.contains("REQUIREMENTS:\n1. Add --verbose"));
//! ```

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
pub mod notify;

pub use agent::{events, executor, model_server};
pub use hosts::{host, shell, transport};
pub use planning::{input, instruction, model, plan, policy, schema, task};
pub use records::{checkpoint, patch, runs, taskplan};
pub use remote::{layout, sync, workspace};
pub use workflows::{doctor, engine, orchestrate, pipeline, prerequisites, progress, run};

pub use config::Config;
pub use engine::{
    Applied, ApplyOptions, Canceller, DefaultSyncers, DefaultTransports, Diff, Engine,
    PruneOptions, RunHandle, RunResult, RunStatus, SyncerFactory, TransportFactory,
};
pub use error::{Error, ErrorKind};
pub use input::InputError;
pub use plan::{PlanOverrides, RunPlan};
pub use progress::{Event, EventKind};
pub use run::{RunOptions, RunSummary};
pub use task::TaskSpec;
