//! Published JSON Schemas of the file formats, generated from the types that parse them (so they
//! cannot drift). Usable by yaml-language-server and JSON editors for completion.

use crate::config::ConfigFile;
use crate::task::TaskSpec;

/// The JSON Schema of task files.
pub fn task_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(TaskSpec)).expect("schemas serialise")
}

/// The JSON Schema of config files.
pub fn config_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(ConfigFile)).expect("schemas serialise")
}

/// The JSON Schema of task_plan.json.
pub fn plan_schema() -> serde_json::Value {
    crate::taskplan::schema()
}

/// The JSON Schema of the run events (`--json` lines and the engine's event stream).
pub fn events_schema() -> serde_json::Value {
    crate::progress::events_schema()
}
