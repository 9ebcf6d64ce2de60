//! Rendering: text for people, JSON for programs. Only this module and the commands print.

use std::io::Write;

use serde::Serialize;

use crate::error::CliError;

/// Prints one JSON value on its own line.
pub fn print_json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, value).map_err(|e| CliError::Io {
        context: "writing JSON".into(),
        source: e.into(),
    })?;
    writeln!(stdout).map_err(CliError::io("writing to stdout"))
}

/// Prints text to stdout.
pub fn print_text(text: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .map_err(CliError::io("writing to stdout"))
}

/// Reports an error: a JSON object on stdout with `--json`, else a line on stderr.
pub fn report_error(error: &CliError, json: bool) {
    if json {
        let _ = print_json(&error.to_json());
    } else {
        eprintln!("{}", error.render());
    }
}

/// `1.5 MiB`-style sizes.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A `git diff --stat`-like summary.
pub fn render_stat(files: &[codex_remote_core::patch::FileChange]) -> String {
    let mut out = String::new();
    let width = files
        .iter()
        .map(|f| display_path(f).chars().count())
        .max()
        .unwrap_or(0);
    let (mut added, mut removed) = (0, 0);
    for file in files {
        let change = if file.binary {
            "binary".to_string()
        } else if file.kind() == "mode" {
            format!(
                "mode {} -> {}",
                file.old_mode.as_deref().unwrap_or("?"),
                file.new_mode.as_deref().unwrap_or("?")
            )
        } else {
            format!("+{} -{}", file.added, file.removed)
        };
        out.push_str(&format!(
            " {:<width$} | {:<8} {}\n",
            display_path(file),
            file.kind(),
            change
        ));
        added += file.added;
        removed += file.removed;
    }
    out.push_str(&format!(
        " {} file(s) changed, {added} insertion(s)(+), {removed} deletion(s)(-)\n",
        files.len()
    ));
    out
}

fn display_path(file: &codex_remote_core::patch::FileChange) -> String {
    match (&file.old_path, &file.new_path) {
        (Some(a), Some(b)) if a != b => format!("{} => {}", a.escape_debug(), b.escape_debug()),
        _ => file.path().escape_debug().to_string(),
    }
}

/// Colours a patch like `git diff --color`.
pub fn render_patch(patch: &str, color: bool) -> String {
    if !color {
        return patch.to_string();
    }
    let mut out = String::with_capacity(patch.len() + patch.len() / 8);
    for line in patch.split_inclusive('\n') {
        let code = if line.starts_with("diff --git")
            || line.starts_with("index ")
            || line.starts_with("--- ")
            || line.starts_with("+++ ")
        {
            "1"
        } else if line.starts_with("@@") {
            "36"
        } else if line.starts_with('+') {
            "32"
        } else if line.starts_with('-') {
            "31"
        } else {
            ""
        };
        if code.is_empty() {
            out.push_str(line);
        } else {
            let (body, newline) = line.strip_suffix('\n').map_or((line, ""), |b| (b, "\n"));
            out.push_str(&format!("\x1b[{code}m{body}\x1b[0m{newline}"));
        }
    }
    out
}
