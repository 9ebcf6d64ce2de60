//! The task side: a task file or prompt ([`task`], located errors in [`input`]) becomes a plan
//! ([`plan`]) with its model ([`model`]) and its instruction ([`instruction`]) under the
//! restricted-file policy ([`policy`]); [`schema`] publishes the formats' JSON Schemas.

pub mod input;
pub mod instruction;
pub mod model;
pub mod plan;
pub mod policy;
pub mod schema;
pub mod task;
