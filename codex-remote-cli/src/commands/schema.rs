//! `codex-remote schema task|config|plan|events`.

use codex_remote_core::schema;

use super::Context;
use crate::cli::{SchemaArgs, SchemaKind};
use crate::error::CliError;
use crate::{exit, output};

pub fn run(ctx: &Context, args: SchemaArgs) -> Result<i32, CliError> {
    let schema = match args.kind {
        SchemaKind::Task => schema::task_schema(),
        SchemaKind::Config => schema::config_schema(),
        SchemaKind::Plan => schema::plan_schema(),
        SchemaKind::Events => schema::events_schema(),
    };
    if ctx.json {
        output::print_json(&schema)?;
    } else {
        output::print_json_document(&schema)?;
    }
    Ok(exit::OK)
}
