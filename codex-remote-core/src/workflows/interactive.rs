//! `interactive`: the Codex TUI in a run tree of its own, over the user's terminal, with its
//! result coming back like any run's.
//!
//! [`Engine::start_interactive`] checks the agent's prerequisites, pushes, records a run (kind
//! `interactive`), prepares its tree from the pushed baseline exactly as `run` does, and gives
//! back the command that opens `codex` there over a terminal (`ssh -t`, the container engine's
//! `exec -it`, or the local shell, which inherits this terminal). The caller runs it with its own
//! terminal. [`Engine::finish_interactive`] then ends whatever the session left running on the
//! host and retrieves the tree's change into the run's record, so `diff RUN` and
//! `pull RUN --apply` take it, with the same checks as any run's result.
//!
//! What the session leaves running: Codex 0.169.0's TUI starts a shared background app-server
//! (`codex app-server --listen unix:// --managed-daemon`, and its `daemon pid-update-loop`), each
//! in a session of its own, which outlive the TUI. The session is launched with `--no-daemon`
//! (and a `-c` override, which also makes Codex embed its app-server in the TUI's process), and
//! every process it starts carries the run's `CODEX_REMOTE_AGENT` marker in its environment: at
//! the end, every process carrying the marker is ended, as `cancel` does, whatever session it
//! moved to. A daemon started by someone else carries no marker and is never touched.

use std::path::Path;

use crate::error::Error;
use crate::executor::{CodexExecutor, Executor};
use crate::layout::RemoteLayout;
use crate::patch::FileChange;
use crate::pipeline::{self, Project};
use crate::runs::{now, Phase, RunKind, RunRecord, RunWarning};
use crate::transport::{SharedTransport, TransportError, TransportExt};
use crate::Engine;

/// The task id of interactive runs (their ids start with it).
pub const INTERACTIVE_TASK_ID: &str = "interactive";

/// An interactive session ready to open: its run and the command to run with a terminal.
#[derive(Debug)]
pub struct InteractiveSession {
    /// The run (phase `running`, its tree prepared).
    pub record: RunRecord,
    /// The command that opens Codex in the run's tree; run it with the terminal as stdin,
    /// stdout and stderr.
    pub command: std::process::Command,
}

/// What an interactive session left.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct InteractiveSummary {
    /// The run id.
    pub run_id: String,
    /// The host.
    pub host: String,
    /// The files changed in the run's tree (from the stored patch).
    pub files: Vec<FileChange>,
    /// The stored patch.
    pub patch: std::path::PathBuf,
    /// What about the result is not a clean success (also kept in the run record).
    pub warnings: Vec<RunWarning>,
    /// Whether the host's tree went back to the pool (a result with warnings keeps it).
    pub remote_removed: bool,
}

/// The TUI's arguments. The host's `codex_args` are for `codex exec` (some, such as
/// `--skip-git-repo-check`, exist only there), so they are not passed.
fn codex_args() -> Vec<String> {
    vec![
        "--no-daemon".to_string(),
        "--sandbox".into(),
        "workspace-write".into(),
        // The run tree's own git directory: writable, so the agent's git commands work.
        "-c".into(),
        crate::workspace::TREE_GIT_WRITABLE.into(),
    ]
}

impl Engine {
    /// Checks the agent's prerequisites on the host, pushes the project, records an interactive
    /// run and prepares its tree; returns the command that opens Codex's TUI in that tree over
    /// a terminal (the caller runs it), then call [`Engine::finish_interactive`].
    pub async fn start_interactive(
        &self,
        host: Option<&str>,
        ssh_config: Option<&Path>,
    ) -> Result<InteractiveSession, Error> {
        let host = self.config().host(host)?;
        if let crate::host::HostKind::OnDemand(_) = &host.kind {
            return Err(crate::input::InputError::new(
                format!("host `{}`", host.name),
                "the host is made on demand: it has no container to open a session in",
            )
            .hint("run a task on it, or open a session in a running container with `--host podman://NAME`")
            .into());
        }
        let transport = self.transport(&host)?;
        self.check_prerequisites(transport.as_ref()).await?;
        let project = self.project(None)?;
        if let Err(e) = self.push(Some(&host.name), None).await {
            return Err(crate::run::push_failed(
                &project,
                transport.as_ref(),
                INTERACTIVE_TASK_ID,
                e,
            ));
        }
        let mut record = pipeline::start_run(
            transport.clone(),
            self.config(),
            &project,
            INTERACTIVE_TASK_ID,
        )
        .await?;
        record.kind = RunKind::Interactive;
        record.attempt = 1;
        let store = project.runs();
        // The marker every process of the session inherits, so all of them can be ended.
        let marker: String = rand::random::<[u8; 12]>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let agent_dir =
            RemoteLayout::of_run(transport.host(), &record).agent_dir(&record.id, record.attempt);
        if let Err(e) = transport
            .write_file_atomic(&format!("{agent_dir}/marker"), marker.as_bytes())
            .await
        {
            let e = Error::from(e).on_host(&host.name);
            fail(&project, &mut record, &e.to_string())?;
            return Err(e);
        }
        record.phase = Phase::Running;
        record.updated_at = now();
        store.save(&record)?;
        let tree = record.tree.as_ref().expect("start_run prepares the tree");
        // The marker is no secret: it goes on the command line. The host's env values do not:
        // locally they are the shell's environment; elsewhere they go through a 0600 file
        // written through stdin, which the session reads and removes.
        let marker_env =
            std::collections::BTreeMap::from([("CODEX_REMOTE_AGENT".to_string(), marker)]);
        let args = codex_args();
        let parts = crate::shell::ScriptParts {
            program: &host.codex,
            args: &args,
            env: &marker_env,
            cwd: Some(&tree.dir),
            shell_init: host.shell_init.as_deref(),
            announce_pid: false,
        };
        if let crate::host::HostKind::Local = &host.kind {
            let script = crate::shell::command_script(&parts).map_err(TransportError::from)?;
            let mut command = std::process::Command::new(
                std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into()),
            );
            command.arg("-c").arg(&script).envs(&host.env);
            return Ok(InteractiveSession { record, command });
        }
        let staged = crate::transport::stage_env_file(transport.as_ref())
            .await
            .map_err(|e| Error::from(e).on_host(&host.name));
        let script = match staged {
            Ok(None) => crate::shell::command_script(&parts),
            Ok(Some(file)) => crate::shell::command_script_with_env_file(&parts, &file),
            Err(e) => {
                fail(&project, &mut record, &e.to_string())?;
                return Err(e);
            }
        }
        .map_err(TransportError::from)?;
        let command = match &host.kind {
            crate::host::HostKind::Ssh { destination } => {
                let mut command = std::process::Command::new("ssh");
                if let Some(file) = ssh_config {
                    command.arg("-F").arg(file);
                }
                command.arg("-t").arg("--").arg(destination).arg(&script);
                command
            }
            crate::host::HostKind::Container { engine, target } => {
                let argv = crate::transport::container::exec_argv(*engine, target, true);
                let mut command = std::process::Command::new(&argv[0]);
                command.args(&argv[1..]).arg("sh").arg("-c").arg(&script);
                command
            }
            crate::host::HostKind::Local | crate::host::HostKind::OnDemand(_) => {
                unreachable!("handled above")
            }
        };
        // The session may last hours: [`Engine::finish_interactive`] connects afresh rather
        // than trusting a connection left idle that long.
        self.close().await;
        Ok(InteractiveSession { record, command })
    }

    /// After the session's terminal closed: ends every process the session left on the host
    /// (its app-server included), retrieves the tree's change into the run's record and gives
    /// the tree back to the pool (unless the result has warnings). The result is not applied:
    /// `pull RUN --apply` does that, with the same checks as any run's.
    pub async fn finish_interactive(
        &self,
        record: &mut RunRecord,
    ) -> Result<InteractiveSummary, Error> {
        let project = self.project(Some(&record.project))?;
        let host = self.config().host(Some(&record.host))?;
        let transport: SharedTransport = self.transport(&host)?;
        let agent_dir = RemoteLayout::of_run(transport.host(), record).agent_dir(&record.id, 1);
        CodexExecutor
            .cancel(transport.as_ref(), &agent_dir)
            .await
            .map_err(|e| Error::from(e).on_host(&host.name))?;
        let store = project.runs();
        // `cancel RUN` from elsewhere may have ended the session: it stays cancelled, but what
        // it did is retrieved all the same.
        if let Ok(latest) = store.load(&record.id) {
            *record = latest;
        }
        let cancelled = record.phase == Phase::Cancelled;
        if !cancelled {
            record.phase = Phase::Retrieving;
            record.updated_at = now();
            store.save(record)?;
        }
        let max_bytes = self.config().stored_patch_limit();
        let parsed = pipeline::retrieve_within(transport.clone(), &project, record, max_bytes)
            .await
            .map_err(|e| e.on_host(&host.name))?;
        let mut remote_removed = false;
        if record.warnings.is_empty() {
            pipeline::remove_remote(transport, &project, record).await?;
            remote_removed = true;
        }
        if !cancelled {
            record.phase = Phase::Completed;
        }
        record.updated_at = now();
        store.save(record)?;
        Ok(InteractiveSummary {
            run_id: record.id.clone(),
            host: record.host.clone(),
            files: parsed.files,
            patch: store.patch_path(&record.id),
            warnings: record.warnings.clone(),
            remote_removed,
        })
    }
}

fn fail(project: &Project, record: &mut RunRecord, error: &str) -> Result<(), Error> {
    record.phase = Phase::Failed;
    record.error = Some(error.to_string());
    record.updated_at = now();
    project.runs().save(record)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_runs_embedded_with_its_tree_git_writable() {
        let args = codex_args();
        assert_eq!(args[0], "--no-daemon");
        assert!(args
            .windows(2)
            .any(|w| w[0] == "-c" && w[1] == crate::workspace::TREE_GIT_WRITABLE));
        assert!(args
            .windows(2)
            .any(|w| w[0] == "--sandbox" && w[1] == "workspace-write"));
    }
}
