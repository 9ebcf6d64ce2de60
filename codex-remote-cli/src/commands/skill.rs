//! `codex-remote skill [--install] [--dir DIR]`: an Agent Skill (`SKILL.md`) telling an
//! orchestrating agent when and how to delegate. Generated from the CLI's own definitions (clap's
//! subcommands), the task file's schema, the MCP server's tools, the exit-code table and the
//! built-in restricted files, so it cannot drift from what the binary does.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::cli::{Cli, SkillArgs};
use crate::error::CliError;
use crate::{exit, output};

use super::Context;

/// Where `--install` writes without `--dir`.
pub const DEFAULT_DIR: &str = ".agent/skills";

pub fn run(ctx: &Context, args: SkillArgs) -> Result<i32, CliError> {
    let text = render();
    if !args.install {
        output::print_text(&text)?;
        return Ok(exit::OK);
    }
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
    let dir = ctx.cwd.join(dir).join("codex-remote");
    std::fs::create_dir_all(&dir).map_err(CliError::io(format!("creating {}", dir.display())))?;
    let path = dir.join("SKILL.md");
    codex_remote_core::write_atomic(&path, text.as_bytes())
        .map_err(CliError::io(format!("writing {}", path.display())))?;
    if !ctx.quiet {
        eprintln!("wrote {}", path.display());
    }
    Ok(exit::OK)
}

/// The skill's text.
pub fn render() -> String {
    let mut out = String::new();
    let _ = writeln!(out, "---");
    let _ = writeln!(out, "name: codex-remote");
    let _ = writeln!(
        out,
        "description: Delegate a heavy, well-specified coding task (a migration, a refactor, a feature, tests, a debug session) to the OpenAI Codex CLI on another machine or container with codex-remote, and bring the change back safely as one patch applied all-or-nothing. Use it when the work is large enough to hand off, can be described as requirements and verification, and should not block you."
    );
    let _ = writeln!(out, "---");
    let _ = writeln!(out);
    let _ = writeln!(out, "# codex-remote");
    let _ = writeln!(out);
    let _ = writeln!(out, "## When to delegate");
    let _ = writeln!(out);
    for line in [
        "- The task is self-contained and can be stated as requirements and a way to verify them.",
        "- It would take many steps or minutes (a migration, a refactor across files, test generation, a scaffold).",
        "- You can keep working (or orchestrate other tasks) while it runs: runs are detached and survive disconnects.",
        "- Do not delegate work that needs the restricted files changed, or that needs your conversation's context you cannot write down.",
    ] {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "## The task file");
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "A YAML or JSON file (`codex-remote schema task` prints its JSON Schema), or a one-off `--prompt TEXT --type TYPE`. Fields:"
    );
    let _ = writeln!(out);
    let schema = codex_remote_core::schema::task_schema();
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    if let Some(properties) = schema["properties"].as_object() {
        for (name, property) in properties {
            let description = property["description"]
                .as_str()
                .unwrap_or_default()
                .replace('\n', " ");
            let mark = if required.contains(&name.as_str()) {
                " (required)"
            } else {
                ""
            };
            let _ = writeln!(out, "- `{name}`{mark}: {description}");
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Task types: {}.",
        codex_remote_core::task::TaskType::ALL
            .iter()
            .map(|t| format!("`{}`", t.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "## MCP tools (`codex-remote mcp`)");
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "When codex-remote is configured as an MCP server, prefer its tools: `run` then `wait` (or `apply`)."
    );
    let _ = writeln!(out);
    let mut tools = crate::mcp::McpServer::tool_list();
    tools.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, description) in tools {
        let _ = writeln!(out, "- `{name}`: {description}");
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "## Commands");
    let _ = writeln!(out);
    let command = <Cli as clap::CommandFactory>::command();
    for sub in command.get_subcommands() {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        let _ = writeln!(out, "- `codex-remote {}`: {about}", sub.get_name());
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Typical use: `codex-remote run task.yaml --host HOST` (follows to the end and applies), or `codex-remote run --detach ...` then `codex-remote attach RUN`. Add `--json` for one JSON object per line."
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "## Exit codes");
    let _ = writeln!(out);
    for (code, meaning) in exit::TABLE {
        let _ = writeln!(out, "- `{code}`: {meaning}");
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "## What is restricted");
    let _ = writeln!(out);
    let restricted = codex_remote_core::RestrictedFiles::default();
    let _ = writeln!(
        out,
        "- Restricted files never enter the agent's context and a result that changes them is refused (exit 6) unless the user passes `--allow-restricted`: {} by default (`[restricted] files` in the config).",
        restricted
            .patterns()
            .iter()
            .map(|p| format!("`{p}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        out,
        "- codex-remote's own state (`.codex-remote/`) and its project config (`codex-remote.toml`) are protected: a result touching them is always refused."
    );
    let _ = writeln!(
        out,
        "- A result that conflicts with local edits is refused and nothing is written; the patch stays in the run record (`codex-remote diff RUN`)."
    );
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_skill_is_generated_from_the_binary_s_definitions() {
        let text = super::render();
        assert!(text.starts_with("---\nname: codex-remote\ndescription: "));
        insta::assert_snapshot!(text);
    }
}
