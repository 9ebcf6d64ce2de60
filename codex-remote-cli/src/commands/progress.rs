//! Showing a run as it goes: a live status line on a terminal, plain lines otherwise, core's
//! [`Event`]s as JSON Lines with --json. Shared by `run`, `attach` and `logs`.

use std::io::IsTerminal;

use codex_remote_core::events::{CodexEvent, ItemKind};
use codex_remote_core::{Event, EventKind};
use tokio::sync::mpsc;

use super::Context;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Json,
    Tty,
    Plain,
    /// Plain lines on stdout (for `logs`).
    Stdout,
    Quiet,
}

impl Mode {
    pub fn for_context(ctx: &Context) -> Mode {
        if ctx.json {
            Mode::Json
        } else if ctx.quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Tty
        } else {
            Mode::Plain
        }
    }
}

/// One event as its `--json` line (the published schema: `codex-remote schema events`).
pub fn json_line(event: &Event) -> String {
    serde_json::to_string(event).expect("events serialise")
}

/// Shows the run as it goes: a live status line on a terminal, plain lines otherwise, our typed
/// events as JSON Lines with --json.
pub async fn render(rx: Option<mpsc::Receiver<Event>>, mode: Mode, verbose: u8) {
    let Some(mut rx) = rx else { return };
    let spinner = (mode == Mode::Tty).then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                .expect("valid template"),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    });
    let mut tokens = 0u64;
    let mut files = std::collections::BTreeSet::new();
    let mut current = String::new();
    while let Some(event) = rx.recv().await {
        if mode == Mode::Json {
            // A closed stdout does not stop the run: the record keeps every event.
            let _ = crate::output::print_json_line(&json_line(&event));
            continue;
        }
        let line: Option<String> = match &event.kind {
            EventKind::Phase { phase } => {
                current = format!("{phase:?}").to_lowercase();
                (verbose > 0).then(|| format!("phase: {current}"))
            }
            EventKind::Pushed { push } => Some(format!(
                "pushed {} files ({} changed) to {}",
                push.files, push.files_transferred, push.remote_dir
            )),
            EventKind::Started { run_id, remote_dir } => {
                Some(format!("run {run_id} started in {remote_dir}"))
            }
            EventKind::Launched { attempt, pid } => (verbose > 0 || *attempt > 1)
                .then(|| format!("agent launched (attempt {attempt}, pid {pid})")),
            EventKind::Retrying {
                attempt,
                of,
                delay_secs,
                reason,
            } => Some(format!(
                "rate limited ({reason}); retry {attempt}/{of} in {delay_secs:.1}s"
            )),
            EventKind::Waiting {
                resume_at, source, ..
            } => {
                current = format!("waiting until {resume_at}");
                Some(format!(
                    "usage limit reached: parked until {resume_at} ({source}); the host resumes the same thread then, with or without this client"
                ))
            }
            EventKind::ThreadResumed { thread_id, reason } => {
                current = "running".into();
                Some(format!("resumed thread {thread_id} ({reason})"))
            }
            EventKind::EventsCut { read, limit } => Some(format!(
                "the listing stops here: {read} bytes of the agent's unrecorded events read, \
                 the most one look reads is {limit} bytes (`attach` records them all)"
            )),
            EventKind::Codex { codex } => match codex {
                CodexEvent::ItemStarted { item } => match &item.kind {
                    ItemKind::CommandExecution { command, .. } => {
                        current = format!("$ {}", command.lines().next().unwrap_or_default());
                        Some(current.clone())
                    }
                    _ => None,
                },
                CodexEvent::ItemCompleted { item } => match &item.kind {
                    ItemKind::CommandExecution {
                        exit_code,
                        aggregated_output,
                        ..
                    } => {
                        let mut text = format!(
                            "  exit {}",
                            exit_code.map_or("?".to_string(), |c| c.to_string())
                        );
                        if verbose > 0 && !aggregated_output.is_empty() {
                            text.push('\n');
                            text.push_str(aggregated_output.trim_end());
                        }
                        Some(text)
                    }
                    ItemKind::FileChange { changes, .. } => {
                        files.extend(changes.iter().map(|c| c.path.clone()));
                        Some(
                            changes
                                .iter()
                                .map(|c| format!("  {} {}", c.kind, c.path))
                                .collect::<Vec<_>>()
                                .join("\n"),
                        )
                    }
                    ItemKind::AgentMessage { text } => Some(format!("agent: {}", text.trim())),
                    ItemKind::Reasoning { text } if verbose > 0 => {
                        Some(format!("thinking: {}", text.trim()))
                    }
                    ItemKind::Error { message } if verbose > 0 => Some(format!("codex: {message}")),
                    _ => None,
                },
                CodexEvent::TurnCompleted { usage } => {
                    // Cumulative per thread: the latest figure is the thread's total.
                    tokens = usage.input_tokens.saturating_add(usage.output_tokens);
                    None
                }
                CodexEvent::TurnFailed { message } => Some(format!("turn failed: {message}")),
                // Codex's own notices ("Reconnecting... 2/5 (...)") say why a run is slow.
                CodexEvent::Error { message } => Some(format!("codex: {message}")),
                CodexEvent::OversizedEvent { .. } => super::watch::model::describe(codex),
                _ => None,
            },
            _ => None,
        };
        // Event text is the agent's: shown, never sent to the terminal as control sequences.
        let line = line.map(|l| crate::output::safe(&l).into_owned());
        let current = crate::output::safe(&current);
        match (&spinner, line) {
            (Some(bar), line) => {
                if let Some(line) = line {
                    bar.println(line);
                }
                bar.set_message(format!(
                    "{current} | {tokens} tokens | {} files changed",
                    files.len()
                ));
            }
            (None, Some(line)) if mode == Mode::Plain => eprintln!("{line}"),
            (None, Some(line)) if mode == Mode::Stdout => {
                let _ = crate::output::print_line(&line);
            }
            _ => {}
        }
    }
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
}
