//! `codex-remote interactive [--host H]`: the Codex TUI in a run tree of its own, over this
//! terminal; what it changes comes back as a run (`diff RUN`, `pull RUN --apply`).

use std::io::IsTerminal;

use super::Context;
use crate::cli::HostArgs;
use crate::error::CliError;
use crate::{exit, output};

pub async fn run(ctx: &Context, args: HostArgs) -> Result<i32, CliError> {
    // Before anything is pushed or recorded: the TUI needs this terminal.
    if let Some(which) = missing_terminal(
        std::io::stdin().is_terminal(),
        std::io::stdout().is_terminal(),
    ) {
        return Err(codex_remote_core::InputError::new(
            "codex-remote interactive",
            format!("{which} not a terminal; the Codex TUI needs one (nothing was pushed)"),
        )
        .hint("run it from a terminal; for a headless run use `codex-remote run --prompt TEXT --type TYPE`")
        .into());
    }
    let engine = ctx.engine(ctx.config()?);
    let session = engine
        .start_interactive(
            args.host.as_deref(),
            ctx.ssh_options().config_file.as_deref(),
        )
        .await;
    let session = match session {
        Ok(session) => session,
        Err(e) => {
            engine.close().await;
            return Err(e.into());
        }
    };
    let mut record = session.record;
    let mut command = session.command;
    if !ctx.quiet {
        let line = format!(
            "codex-remote: interactive run {} in {} on {}; its changes come back when Codex exits",
            record.id,
            record.tree.as_ref().map(|t| t.dir.as_str()).unwrap_or("?"),
            record.host
        );
        eprintln!("{}", output::safe(&line));
    }
    // The terminal is the session's until it ends: raw from here (Ctrl-C goes to Codex, even
    // before ssh is up), and given back as it was found afterwards, even when the session's
    // ssh died without restoring it (a dropped connection).
    let raw = ratatui::crossterm::terminal::enable_raw_mode().is_ok();
    let status = tokio::task::spawn_blocking(move || command.status()).await;
    if raw {
        let _ = ratatui::crossterm::terminal::disable_raw_mode();
        let _ = ratatui::crossterm::execute!(
            std::io::stdout(),
            ratatui::crossterm::terminal::LeaveAlternateScreen,
            ratatui::crossterm::cursor::Show
        );
    }
    let status = status
        .map_err(|e| CliError::Usage(format!("the session's waiter failed: {e}")))?
        .map_err(CliError::io("starting the interactive session"))?;
    let finished = engine.finish_interactive(&mut record).await;
    engine.close().await;
    let summary = finished.map_err(|e| {
        CliError::Hinted {
            source: Box::new(e.into()),
            hint: format!(
                "the session's tree is kept: `codex-remote diff {0}` retrieves what it did, `codex-remote cancel {0}` ends what it left running",
                record.id
            ),
        }
    })?;
    if ctx.json {
        output::print_json(&serde_json::json!({
            "run_id": summary.run_id,
            "host": summary.host,
            "kind": "interactive",
            "session_exit_code": status.code(),
            "files": summary.files,
            "patch": summary.patch,
            "warnings": summary.warnings,
            "remote_removed": summary.remote_removed,
        }))?;
    } else if !ctx.quiet {
        let mut text = if summary.files.is_empty() {
            format!("run      {} (no changes)\n", summary.run_id)
        } else {
            format!(
                "run      {0} (not applied; review with `codex-remote diff {0}`, apply with `codex-remote pull {0} --apply`)\nfiles    {1} changed\n{2}",
                summary.run_id,
                summary.files.len(),
                output::render_stat(&summary.files)
            )
        };
        for warning in &summary.warnings {
            text.push_str(&format!("warning  {}\n", warning.message));
        }
        output::print_text(&text)?;
    }
    // ssh says 255 when the connection failed or dropped: the session may not have run at all.
    Ok(if status.code() == Some(255) {
        exit::CONNECTION
    } else {
        exit::OK
    })
}

/// Which of stdin and stdout is not a terminal, in words, if one is not.
fn missing_terminal(stdin: bool, stdout: bool) -> Option<&'static str> {
    match (stdin, stdout) {
        (true, true) => None,
        (false, true) => Some("stdin is"),
        (true, false) => Some("stdout is"),
        (false, false) => Some("stdin and stdout are"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_terminal_is_named() {
        assert_eq!(missing_terminal(true, true), None);
        assert_eq!(missing_terminal(false, true), Some("stdin is"));
        assert_eq!(missing_terminal(true, false), Some("stdout is"));
        assert_eq!(missing_terminal(false, false), Some("stdin and stdout are"));
    }
}
