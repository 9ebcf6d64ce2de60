//! The workflow's steps as library calls, so the CLI and embedders drive the same code:
//! push a project, start a run's isolated tree, retrieve its result, apply it.

use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use crate::config::Config;
use crate::error::Error;
use crate::layout::RemoteLayout;
use crate::patch::{ParsedPatch, PatchApplier};
use crate::runs::{new_run_id, now, Phase, RunRecord, RunStore};
use crate::sync::{syncer_for, PushProgress, PushReport, PushRequest};
use crate::transport::SharedTransport;
use crate::workspace;

/// A local project: its root and its remote workspace name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// The project root.
    pub root: PathBuf,
    /// The remote workspace name.
    pub name: String,
}

impl Project {
    /// The project at `root`, named after its directory unless `name` is given.
    pub fn new(root: &Path, name: Option<&str>) -> Self {
        let name = name.map(str::to_string).unwrap_or_else(|| {
            root.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "project".into())
        });
        Self {
            root: root.to_path_buf(),
            name,
        }
    }

    /// The run records of this project.
    pub fn runs(&self) -> RunStore {
        RunStore::new(&self.root)
    }
}

/// Pushes the project to the host's mirror with the default syncer for the transport.
pub async fn push(
    transport: SharedTransport,
    config: &Config,
    project: &Project,
    progress: Option<mpsc::Sender<PushProgress>>,
) -> Result<PushReport, Error> {
    push_with(
        syncer_for(transport.clone()).as_ref(),
        transport,
        config,
        project,
        progress,
    )
    .await
}

/// Pushes the project to the host's mirror with this syncer.
pub async fn push_with(
    syncer: &dyn crate::sync::Syncer,
    transport: SharedTransport,
    config: &Config,
    project: &Project,
    progress: Option<mpsc::Sender<PushProgress>>,
) -> Result<PushReport, Error> {
    let layout = RemoteLayout::new(transport.host(), &project.name);
    let request = PushRequest {
        local_root: project.root.clone(),
        remote_dir: layout.mirror.clone(),
        lock: layout.lock(),
        settings: config.sync(),
    };
    let host = transport.host().name.clone();
    syncer.push(&request, progress).await.map_err(|e| match &e {
        crate::sync::SyncError::Failed { stderr, .. } if workspace_unusable(stderr) => {
            workspace_missing(&host, stderr)
        }
        _ => e.into(),
    })
}

/// Records a new run and prepares its isolated tree on the host (after a push).
pub async fn start_run(
    transport: SharedTransport,
    config: &Config,
    project: &Project,
    task_id: &str,
) -> Result<RunRecord, Error> {
    let layout = RemoteLayout::new(transport.host(), &project.name);
    let created = now();
    let mut record = RunRecord {
        id: new_run_id(task_id),
        task_id: task_id.to_string(),
        host: transport.host().name.clone(),
        project: project.name.clone(),
        remote_mirror: layout.mirror.clone(),
        tree: None,
        phase: Phase::Pending,
        created_at: created.clone(),
        updated_at: created,
        applied_at: None,
        remote_removed: false,
        error: None,
        attempt: 0,
        attempt_log_start: 0,
        finish: None,
        resume_at: None,
        thread_id: None,
        usage: Default::default(),
    };
    let store = project.runs();
    store.save(&record)?;
    let prepared = workspace::prepare_run(
        transport.as_ref(),
        &layout,
        &record.id,
        &config.sync().exclude,
    )
    .await;
    record.tree = Some(prepared.map_err(|e| match &e {
        crate::transport::TransportError::CommandFailed { stderr, .. }
            if workspace_unusable(stderr) =>
        {
            workspace_missing(&transport.host().name, stderr)
        }
        _ => e.into(),
    })?);
    record.updated_at = now();
    store.save(&record)?;
    Ok(record)
}

/// Fetches the run's change (one round trip) and stores it as `result.patch` in the record.
pub async fn retrieve(
    transport: SharedTransport,
    project: &Project,
    record: &mut RunRecord,
) -> Result<ParsedPatch, Error> {
    let tree = record.tree.clone().ok_or_else(|| Error::Io {
        context: format!("run `{}` has no remote tree", record.id),
        source: std::io::Error::other("it was never started, or its tree was removed"),
    })?;
    let patch = workspace::retrieve_patch(transport.as_ref(), &tree).await?;
    let parsed = ParsedPatch::parse(&patch).map_err(crate::patch::ApplyError::from)?;
    let store = project.runs();
    store.write_patch(&record.id, &patch)?;
    record.updated_at = now();
    store.save(record)?;
    Ok(parsed)
}

/// Applies the stored patch to the project, all or nothing.
pub fn apply(
    config: &Config,
    project: &Project,
    record: &mut RunRecord,
    allow_restricted: bool,
) -> Result<ParsedPatch, Error> {
    let store = project.runs();
    let patch = store.read_patch(&record.id)?;
    let applier = PatchApplier::new(&project.root, config.restricted()?, allow_restricted);
    let parsed = applier.apply(&patch)?;
    record.applied_at = Some(now());
    record.updated_at = now();
    store.save(record)?;
    Ok(parsed)
}

/// Removes the run's tree from the host.
pub async fn remove_remote(
    transport: SharedTransport,
    project: &Project,
    record: &mut RunRecord,
) -> Result<(), Error> {
    let layout = RemoteLayout::new(transport.host(), &project.name);
    workspace::remove_run(transport.as_ref(), &layout, &record.id).await?;
    record.remote_removed = true;
    record.updated_at = now();
    project.runs().save(record)?;
    Ok(())
}

/// Whether a failure on the host means the workspace cannot be created or written.
fn workspace_unusable(stderr: &str) -> bool {
    [
        "Permission denied",
        "Read-only file system",
        "No such file or directory",
        "Not a directory",
        "No space left",
    ]
    .iter()
    .any(|marker| stderr.contains(marker))
}

fn workspace_missing(host: &str, stderr: &str) -> Error {
    Error::Exec {
        failure: crate::executor::ExecFailure::WorkspaceMissing {
            message: stderr.trim().lines().last().unwrap_or_default().to_string(),
        },
        host: host.to_string(),
        attempts: 0,
    }
}
