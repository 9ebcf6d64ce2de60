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
        eprintln!("codex-remote: error: {error}");
    }
}
