//! `codex-remote plan TASK`.

use std::fmt::Write;

use codex_remote_core::host::HostKind;
use codex_remote_core::{PlanOverrides, RunPlan};

use super::{load_task, Context};
use crate::cli::PlanArgs;
use crate::error::CliError;
use crate::{exit, output};

pub fn run(ctx: &Context, args: PlanArgs) -> Result<i32, CliError> {
    let task = load_task(&args.task)?;
    let config = ctx.config()?;
    let overrides = PlanOverrides {
        host: args.host.as_deref(),
        model: args.model.as_deref(),
    };
    let plan = ctx.engine(config).plan(task, &overrides)?;
    if ctx.json {
        output::print_json(&plan.report())?;
    } else {
        output::print_text(&render(&plan))?;
    }
    Ok(exit::OK)
}

/// The human view of a plan.
pub fn render(plan: &RunPlan) -> String {
    let mut out = String::new();
    let task = &plan.task;
    let _ = writeln!(out, "task        {} ({})", task.id, task.task_type);
    let _ = writeln!(out, "title       {}", task.title);
    let effort = plan
        .model
        .reasoning_effort
        .as_deref()
        .map(|e| format!(", reasoning effort {e}"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "model       {} ({}{effort})",
        plan.model.model,
        plan.model_reason()
    );
    let host = match &plan.host.kind {
        HostKind::Local => format!("{} (this machine)", plan.host.name),
        HostKind::Ssh { destination } if destination == &plan.host.name => {
            format!("{} (ssh)", plan.host.name)
        }
        HostKind::Ssh { destination } => format!("{} (ssh {destination})", plan.host.name),
        HostKind::Container { engine, target } => {
            format!("{} ({engine} exec {target})", plan.host.name)
        }
        HostKind::OnDemand(made) => format!(
            "{} (a fresh {} container of {} per run)",
            plan.host.name, made.engine, made.image
        ),
    };
    let _ = writeln!(out, "host        {host}");
    let _ = writeln!(out, "remote dir  {}", plan.remote_dir);
    if let Some(init) = &plan.host.shell_init {
        let _ = writeln!(out, "shell init  {init}");
    }
    if plan.instruction.excluded.is_empty() {
        let _ = writeln!(out, "excluded    none");
    } else {
        for (i, excluded) in plan.instruction.excluded.iter().enumerate() {
            let label = if i == 0 { "excluded   " } else { "           " };
            let _ = writeln!(
                out,
                "{label} {} ({} in {})",
                excluded.entry, excluded.reason, excluded.field
            );
        }
    }
    let restricted = if plan.restricted.is_empty() {
        "none".to_string()
    } else {
        plan.restricted.join(", ")
    };
    let _ = writeln!(out, "restricted  {restricted}");
    if let Some(checkpoint) = &task.checkpoint {
        let _ = writeln!(out, "checkpoint  {}: {}", checkpoint.file, checkpoint.item);
    }
    let _ = writeln!(out, "\n--- instruction ---");
    out.push_str(&plan.instruction.text);
    out
}
