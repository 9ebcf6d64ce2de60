//! The full-screen view (ratatui over crossterm).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use codex_remote_core::Project;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;
use tokio::sync::mpsc;

use super::model::{activity_words, short_duration, RunView, Watcher};
use super::Context;
use crate::error::CliError;
use crate::exit;

enum View {
    List,
    Events {
        id: String,
        scroll: u16,
    },
    Diff {
        id: String,
        text: String,
        scroll: u16,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Apply,
    Cancel,
}

/// What the agent of the followed run wrote on its host past the local record (a run nobody
/// follows records nothing locally), fetched now and then in a task of its own.
#[derive(Default)]
struct Remote {
    run_id: String,
    lines: Vec<String>,
    fetching: bool,
    fetched_at: Option<std::time::Instant>,
}

type Fetched = (String, Result<Vec<String>, String>);

type Probed = Vec<(String, codex_remote_core::executor::AgentState)>;

struct App {
    remote: Remote,
    /// When the hosts of running runs were last asked about their agents, and whether an ask
    /// is under way.
    probed_at: Option<std::time::Instant>,
    probing: bool,
    project: Project,
    plan: Option<PathBuf>,
    watcher: Watcher,
    views: Vec<RunView>,
    table: TableState,
    view: View,
    confirm: Option<(Action, String)>,
    message: String,
}

impl App {
    fn selected(&self) -> Option<&RunView> {
        self.table.selected().and_then(|i| self.views.get(i))
    }

    fn refresh(&mut self) {
        let selected = self.selected().map(|v| v.record.id.clone());
        self.views = self.watcher.refresh();
        // Keep the same run selected as runs come and go.
        let index = selected
            .and_then(|id| self.views.iter().position(|v| v.record.id == id))
            .or((!self.views.is_empty()).then_some(0));
        self.table.select(index);
    }
}

pub async fn run(
    ctx: &Context,
    project: Project,
    plan: Option<PathBuf>,
    watcher: Watcher,
    interval: Duration,
) -> Result<i32, CliError> {
    let mut app = App {
        remote: Remote::default(),
        probed_at: None,
        probing: false,
        project,
        plan,
        watcher,
        views: Vec::new(),
        table: TableState::default(),
        view: View::List,
        confirm: None,
        message: String::new(),
    };
    app.refresh();
    let mut terminal = ratatui::init();
    let (tx, mut keys) = mpsc::channel(32);
    // Terminal input is blocking: read it on its own thread until the receiver goes away.
    let reader = tokio::task::spawn_blocking(move || loop {
        // Checked on every turn: a terminal that keeps sending events (resizes, focus, mouse)
        // must not keep this thread, and so the program, alive after quitting.
        if tx.is_closed() {
            return;
        }
        match event::poll(Duration::from_millis(100)) {
            Ok(true) => match event::read() {
                Ok(Event::Key(key)) if key.kind == KeyEventKind::Press => {
                    if tx.blocking_send(key).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            },
            Ok(false) if tx.is_closed() => return,
            Ok(false) => {}
            Err(_) => return,
        }
    });
    let mut tick = tokio::time::interval(interval);
    let (fetched_tx, mut fetched) = mpsc::channel::<Fetched>(4);
    let (probed_tx, mut probed) = mpsc::channel::<Probed>(2);
    let result = loop {
        if let Err(e) = terminal.draw(|frame| draw(frame, &mut app)) {
            break Err(CliError::io("drawing the terminal")(e));
        }
        tokio::select! {
            _ = tick.tick() => {
                app.refresh();
                fetch_remote(ctx, &mut app, &fetched_tx);
                probe(ctx, &mut app, &probed_tx);
            }
            Some(answers) = probed.recv() => {
                app.probing = false;
                for (id, agent) in answers {
                    app.watcher.note_agent(&id, agent);
                }
                app.refresh();
            }
            Some((id, result)) = fetched.recv() => {
                app.remote.fetching = false;
                if id == app.remote.run_id {
                    match result {
                        Ok(lines) => app.remote.lines = lines,
                        Err(e) => app.message = format!("cannot read the agent's events on its host: {e}"),
                    }
                }
            }
            key = keys.recv() => {
                let Some(key) = key else { break Ok(()) };
                let ctrl_c = key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c');
                if ctrl_c || handle_key(ctx, &mut app, key.code, &mut terminal).await {
                    break Ok(());
                }
            }
        }
    };
    drop(keys);
    ratatui::restore();
    // The reader ends within one poll; never let it hold the program past that.
    let _ = tokio::time::timeout(Duration::from_secs(1), reader).await;
    if result.is_ok() {
        // Quitting ends the program here: nothing started for the view (fetches of a run's
        // events over SSH, their connections) may keep the terminal waiting.
        use std::io::Write;
        let _ = std::io::stdout().flush();
        std::process::exit(exit::OK);
    }
    result.map(|()| exit::OK)
}

/// Asks the hosts of running runs about their agents, as `status` does (a detached run nobody
/// follows records nothing here), at most every 3 s, in a task of its own.
fn probe(ctx: &Context, app: &mut App, done: &mpsc::Sender<Probed>) {
    let due = app
        .probed_at
        .is_none_or(|at| at.elapsed() >= Duration::from_secs(3));
    let ids = super::probe_ids(&app.views);
    if app.probing || !due || ids.is_empty() {
        return;
    }
    let Ok(config) = ctx.config() else {
        return;
    };
    let engine = ctx.engine(config);
    app.probing = true;
    app.probed_at = Some(std::time::Instant::now());
    let done = done.clone();
    tokio::spawn(async move {
        let answers = super::probe_agents(&engine, ids).await;
        engine.close().await;
        let _ = done.send(answers).await;
    });
}

/// While an active run is followed, fetches what its agent wrote on the host past the local
/// record, at most every 2 s, in a task of its own.
fn fetch_remote(ctx: &Context, app: &mut App, done: &mpsc::Sender<Fetched>) {
    let View::Events { id, .. } = &app.view else {
        return;
    };
    let Some(view) = app.views.iter().find(|v| &v.record.id == id) else {
        return;
    };
    if app.remote.run_id != *id {
        app.remote = Remote {
            run_id: id.clone(),
            ..Remote::default()
        };
    }
    let due = app
        .remote
        .fetched_at
        .is_none_or(|at| at.elapsed() >= Duration::from_secs(2));
    let running = view.record.phase == codex_remote_core::Phase::Running && view.record.attempt > 0;
    if !running || app.remote.fetching || !due {
        return;
    }
    let transport = match ctx
        .config()
        .and_then(|c| Ok(c.host(Some(&view.record.host))?))
        .and_then(|h| ctx.transport(h))
    {
        Ok(t) => t,
        Err(e) => {
            app.message = format!("cannot reach the run's host: {e}");
            return;
        }
    };
    app.remote.fetching = true;
    app.remote.fetched_at = Some(std::time::Instant::now());
    let (project, record, done) = (app.project.clone(), view.record.clone(), done.clone());
    tokio::spawn(async move {
        let result =
            super::super::snapshot::unrecorded_events_over(transport.clone(), &project, &record)
                .await
                .map(|found| found.lines)
                .map_err(|e| e.to_string());
        let _ = transport.close().await;
        let _ = done.send((record.id, result)).await;
    });
}

/// Handles one key; true to quit.
async fn handle_key(
    ctx: &Context,
    app: &mut App,
    code: KeyCode,
    terminal: &mut ratatui::DefaultTerminal,
) -> bool {
    if let Some((action, id)) = app.confirm.take() {
        if matches!(code, KeyCode::Char('y') | KeyCode::Char('Y')) {
            app.message = match action {
                Action::Apply => format!("applying run {id}..."),
                Action::Cancel => format!("cancelling run {id}..."),
            };
            let _ = terminal.draw(|frame| draw(frame, app));
            let result = match action {
                Action::Apply => super::apply(ctx, &app.project, &id).await,
                Action::Cancel => super::cancel(ctx, &app.project, &id).await,
            };
            app.message = result.unwrap_or_else(|e| format!("error: {e}"));
            app.refresh();
        } else {
            app.message = "nothing done".into();
        }
        return false;
    }
    match &mut app.view {
        View::Events { scroll, .. } | View::Diff { scroll, .. } => match code {
            KeyCode::Char('q') => return true,
            KeyCode::Esc | KeyCode::Backspace | KeyCode::Left => app.view = View::List,
            KeyCode::Down | KeyCode::Char('j') => *scroll = scroll.saturating_add(1),
            KeyCode::Up | KeyCode::Char('k') => *scroll = scroll.saturating_sub(1),
            KeyCode::PageDown | KeyCode::Char(' ') => *scroll = scroll.saturating_add(20),
            KeyCode::PageUp => *scroll = scroll.saturating_sub(20),
            _ => {}
        },
        View::List => {
            let selected = app.selected().map(|v| (v.record.id.clone(), v.is_active()));
            match (code, selected) {
                (KeyCode::Char('q') | KeyCode::Esc, _) => return true,
                (KeyCode::Down | KeyCode::Char('j'), _) => app.table.select_next(),
                (KeyCode::Up | KeyCode::Char('k'), _) => app.table.select_previous(),
                (KeyCode::Enter | KeyCode::Char('f'), Some((id, _))) => {
                    app.view = View::Events { id, scroll: 0 };
                }
                (KeyCode::Char('d'), Some((id, _))) => {
                    app.message = format!("fetching the diff of run {id}...");
                    let _ = terminal.draw(|frame| draw(frame, app));
                    match super::diff_text(ctx, &app.project, &id).await {
                        Ok(text) => {
                            app.message.clear();
                            app.view = View::Diff {
                                id,
                                text,
                                scroll: 0,
                            };
                        }
                        Err(e) => app.message = format!("error: {e}"),
                    }
                }
                (KeyCode::Char('a'), Some((id, active))) => {
                    if active {
                        app.message = format!("run {id} has not finished; nothing to apply yet");
                    } else {
                        app.message = format!("apply run {id} to the local tree? (y/n)");
                        app.confirm = Some((Action::Apply, id));
                    }
                }
                (KeyCode::Char('c'), Some((id, active))) => {
                    if active {
                        app.message = format!("cancel run {id} and everything it started? (y/n)");
                        app.confirm = Some((Action::Cancel, id));
                    } else {
                        app.message = format!("run {id} has ended; nothing to cancel");
                    }
                }
                _ => {}
            }
        }
    }
    false
}

const HELP: &str = "↑/↓ select  f/enter follow  d diff  a apply  c cancel  q quit";

fn draw(frame: &mut Frame, app: &mut App) {
    let plan_lines = app
        .plan
        .as_deref()
        .map(super::plan_lines)
        .unwrap_or_default();
    let plan_height = if plan_lines.is_empty() {
        0
    } else {
        plan_lines.len().min(10) as u16 + 2
    };
    let [header, plan_area, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(plan_height),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let active = app.views.iter().filter(|v| v.is_active()).count();
    frame.render_widget(
        Paragraph::new(format!(
            "codex-remote watch  {}  {} runs, {} active",
            app.project.root.display(),
            app.views.len(),
            active
        ))
        .style(Style::default().add_modifier(Modifier::BOLD)),
        header,
    );
    if plan_height > 0 {
        frame.render_widget(
            Paragraph::new(plan_lines.join("\n")).block(Block::default().borders(Borders::ALL)),
            plan_area,
        );
    }
    let footer_text = if app.message.is_empty() {
        match &app.view {
            View::List => HELP.to_string(),
            _ => "↑/↓ scroll  esc back  q quit".to_string(),
        }
    } else {
        app.message.clone()
    };
    frame.render_widget(
        Paragraph::new(crate::output::safe(&footer_text).into_owned()),
        footer,
    );
    match &app.view {
        View::List => draw_list(frame, app, body),
        View::Events { id, scroll } => {
            let remote: &[String] = if app.remote.run_id == *id {
                &app.remote.lines
            } else {
                &[]
            };
            let remote = remote.iter().filter_map(|l| {
                super::model::describe(&codex_remote_core::events::CodexEvent::parse(l))
            });
            let lines: Vec<Line> = app
                .watcher
                .lines(id)
                .iter()
                .cloned()
                .chain(remote)
                // The agent's words are shown, never sent to the terminal as escapes.
                .map(|l| Line::raw(crate::output::safe(&l).into_owned()))
                .collect();
            let text = if lines.is_empty() {
                vec![Line::raw("no events recorded yet")]
            } else {
                lines
            };
            frame.render_widget(
                Paragraph::new(text)
                    .wrap(Wrap { trim: false })
                    .scroll((*scroll, 0))
                    .block(
                        Block::default()
                            .borders(Borders::ALL)
                            .title(format!(" events of {id} ")),
                    ),
                body,
            );
        }
        View::Diff { id, text, scroll } => {
            frame.render_widget(
                Paragraph::new(crate::output::safe(text).into_owned())
                    .scroll((*scroll, 0))
                    .block(
                        Block::default()
                            .borders(Borders::ALL)
                            .title(format!(" diff of {id} ")),
                    ),
                body,
            );
        }
    }
}

fn draw_list(frame: &mut Frame, app: &mut App, area: ratatui::layout::Rect) {
    let now = SystemTime::now();
    let header = Row::new([
        "RUN",
        "TASK",
        "HOST",
        "PHASE",
        "ELAPSED",
        "TOKENS",
        "FILES",
        "STATE",
        "LAST ACTIVITY",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let rows: Vec<Row> = app
        .views
        .iter()
        .map(|v| {
            Row::new([
                v.record.id.clone(),
                v.record.task_id.clone(),
                v.record.host.clone(),
                v.phase().to_string(),
                short_duration(v.elapsed),
                v.tokens.to_string(),
                v.files_changed.to_string(),
                v.state.clone(),
                crate::output::safe(&activity_words(v, now)).into_owned(),
            ])
        })
        .collect();
    let widths = [
        Constraint::Max(40),
        Constraint::Max(20),
        Constraint::Max(12),
        Constraint::Length(10),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(5),
        Constraint::Max(36),
        Constraint::Fill(1),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .highlight_symbol("> ")
        .block(Block::default().borders(Borders::ALL).title(" runs "));
    if app.views.is_empty() {
        frame.render_widget(
            Paragraph::new("no runs recorded in this project yet")
                .block(Block::default().borders(Borders::ALL).title(" runs ")),
            area,
        );
    } else {
        frame.render_stateful_widget(table, area, &mut app.table);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codex_remote_core::RunRecord;
    use ratatui::backend::TestBackend;

    fn record(id: &str, phase: &str, created: &str, updated: &str) -> RunRecord {
        serde_json::from_value(serde_json::json!({
            "id": id, "task_id": "fix-login", "host": "penguin", "project": "myapp",
            "remote_mirror": "m", "tree": null, "phase": phase, "created_at": created,
            "updated_at": updated, "attempt": 1,
        }))
        .unwrap()
    }

    fn screen(app: &mut App, width: u16, height: u16) -> String {
        let mut terminal = ratatui::Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|frame| draw(frame, app)).unwrap();
        let buffer = terminal.backend().buffer();
        (0..height)
            .map(|y| {
                let line: String = (0..width).map(|x| buffer[(x, y)].symbol()).collect();
                line.trim_end().to_string()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_list_and_the_events_of_a_run_render_in_words() {
        let dir = tempfile::tempdir().unwrap();
        let project = Project::new(dir.path(), Some("myapp")).unwrap();
        let store = project.runs();
        let done = record(
            "fix-login-20260101-100000-ab12",
            "completed",
            "2026-01-01T10:00:00Z",
            "2026-01-01T10:03:05Z",
        );
        store.save(&done).unwrap();
        std::fs::write(
            store.run_dir(&done.id).join("events.jsonl"),
            concat!(
                r#"{"type":"item.completed","item":{"id":"1","type":"command_execution","command":"npm test","aggregated_output":"","exit_code":0,"status":"completed"}}"#,
                "\n",
                r#"{"type":"item.completed","item":{"id":"2","type":"file_change","changes":[{"path":"src/login.ts","kind":"update"}],"status":"completed"}}"#,
                "\n",
                r#"{"type":"turn.completed","usage":{"input_tokens":1200,"output_tokens":34}}"#,
                "\n",
                r#"{"type":"item.completed","item":{"id":"3","type":"agent_message","text":"Fixed the redirect"}}"#,
                "\n",
            ),
        )
        .unwrap();
        let mut failed = record(
            "fix-login-20260101-090000-cd34",
            "failed",
            "2026-01-01T09:00:00Z",
            "2026-01-01T09:00:40Z",
        );
        failed.error = Some("codex was not found on penguin".into());
        store.save(&failed).unwrap();
        let mut app = App {
            remote: Remote::default(),
            probed_at: None,
            probing: false,
            project: project.clone(),
            plan: None,
            watcher: Watcher::new(store),
            views: Vec::new(),
            table: TableState::default(),
            view: View::List,
            confirm: None,
            message: String::new(),
        };
        app.refresh();
        // Ages of activity depend on the clock: shown without them here.
        for view in &mut app.views {
            view.last_event_at = None;
        }
        let list = screen(&mut app, 180, 7).replace(&dir.path().display().to_string(), "[project]");
        insta::assert_snapshot!("watch_list", list);
        app.view = View::Events {
            id: done.id.clone(),
            scroll: 0,
        };
        insta::assert_snapshot!(
            "watch_events",
            screen(&mut app, 60, 8).replace(&dir.path().display().to_string(), "[project]")
        );
    }
}
