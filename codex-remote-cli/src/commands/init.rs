//! `codex-remote init`: write a commented starter config, never over an existing one.

use std::io::Write;
use std::path::PathBuf;

use codex_remote_core::config::{user_config_path, PROJECT_FILE, STARTER_CONFIG};

use super::Context;
use crate::cli::InitArgs;
use crate::error::CliError;
use crate::{exit, output};

pub fn run(ctx: &Context, args: InitArgs) -> Result<i32, CliError> {
    let project_file = args.path.is_none() && !args.user;
    let path: PathBuf = match (args.path, args.user) {
        (Some(path), _) => path,
        (None, true) => user_config_path().ok_or_else(|| {
            CliError::Usage(
                "cannot find the user config directory: set HOME, or XDG_CONFIG_HOME to an absolute path"
                    .into(),
            )
        })?,
        (None, false) => ctx.cwd.join(PROJECT_FILE),
    };
    if path.exists() {
        return Err(CliError::Usage(format!(
            "{} already exists; not overwriting it (edit it, or remove it first)",
            path.display()
        )));
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| ctx.cwd.clone());
    std::fs::create_dir_all(&dir)
        .map_err(CliError::io(format!("cannot create {}", dir.display())))?;
    // Write beside the target, then link it into place: the file appears whole or not at all,
    // and an existing file (created meanwhile) is never replaced.
    let mut temp = tempfile::NamedTempFile::new_in(&dir)
        .map_err(CliError::io(format!("cannot write in {}", dir.display())))?;
    temp.write_all(STARTER_CONFIG.as_bytes())
        .map_err(CliError::io("writing the starter config"))?;
    temp.as_file()
        .sync_all()
        .map_err(CliError::io("writing the starter config"))?;
    temp.persist_noclobber(&path).map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            CliError::Usage(format!(
                "{} already exists; not overwriting it",
                path.display()
            ))
        } else {
            CliError::Io {
                context: format!("cannot create {}", path.display()),
                source: e.error,
            }
        }
    })?;
    // The project's run records and locks stay out of git.
    let ignored = if project_file {
        ignore_records(&dir)?
    } else {
        None
    };
    if ctx.json {
        output::print_json(&serde_json::json!({ "written": path, "gitignore": ignored }))?;
    } else if !ctx.quiet {
        let mut text = format!("wrote {}\n", path.display());
        if let Some(gitignore) = &ignored {
            text.push_str(&format!(
                "added {RECORDS_ENTRY} to {}\n",
                gitignore.display()
            ));
        }
        output::print_text(&text)?;
    }
    Ok(exit::OK)
}

/// The `.gitignore` line that keeps the project's run records and locks out of git.
const RECORDS_ENTRY: &str = ".codex-remote/";

/// Adds [`RECORDS_ENTRY`] to `dir/.gitignore` (creating it) unless a line already ignores the
/// directory; returns the file when it was changed. Its other bytes are kept.
fn ignore_records(dir: &std::path::Path) -> Result<Option<PathBuf>, CliError> {
    let path = dir.join(".gitignore");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(CliError::io(format!("reading {}", path.display()))(e)),
    };
    let present = text.lines().any(|l| {
        matches!(
            l.trim(),
            ".codex-remote"
                | ".codex-remote/"
                | "/.codex-remote"
                | "/.codex-remote/"
                | ".codex-remote/*"
                | ".codex-remote/**"
        )
    });
    if present {
        return Ok(None);
    }
    let mut new = text;
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    new.push_str(RECORDS_ENTRY);
    new.push('\n');
    codex_remote_core::write_atomic(&path, new.as_bytes())
        .map_err(CliError::io(format!("writing {}", path.display())))?;
    Ok(Some(path))
}
