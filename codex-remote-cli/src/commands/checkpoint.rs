//! `codex-remote checkpoint SPEC.md --item TEXT [--run RUN]`.

use codex_remote_core::{mark_checkpoint, CheckpointOutcome};

use super::Context;
use crate::cli::CheckpointArgs;
use crate::error::CliError;
use crate::{exit, output};

pub fn run(ctx: &Context, args: CheckpointArgs) -> Result<i32, CliError> {
    let run = match &args.run {
        Some(run) => {
            let run = super::runref::resolve(&ctx.project(None)?.runs(), run)?;
            // A run id is a name like any other: it goes into the spec, so never a line break.
            codex_remote_core::Name::parse(&run)
                .map_err(|e| CliError::from(e.input("<command line>", "--run")))?;
            Some(run)
        }
        None => None,
    };
    let outcome = mark_checkpoint(&args.spec, &args.item, run.as_deref())
        .map_err(|e| CliError::Core(e.into()))?;
    if ctx.json {
        output::print_json(
            &serde_json::json!({ "file": args.spec, "item": args.item.trim(), "outcome": outcome }),
        )?;
    } else if !ctx.quiet {
        let text = match outcome {
            CheckpointOutcome::Marked { line } => format!(
                "ticked {}:{line}: {}\n",
                args.spec.display(),
                args.item.trim()
            ),
            CheckpointOutcome::AlreadyDone { line } => format!(
                "already ticked at {}:{line}; nothing changed\n",
                args.spec.display()
            ),
        };
        output::print_text(&text)?;
    }
    Ok(exit::OK)
}
