//! The workflow's steps as library calls, so the CLI and embedders drive the same code:
//! push a project, start a run's isolated tree, retrieve its result, apply it.

use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use crate::config::Config;
use crate::error::Error;
use crate::layout::RemoteLayout;
use crate::names::{Name, NameError};
use crate::patch::{Applied, ParsedPatch, PatchApplier};
use crate::policy::ProtectedPaths;
use crate::runs::{new_run_id, now, Phase, RunRecord, RunStore};
use crate::sync::{syncer_for, PushProgress, PushReport, PushRequest, PushScope, RootOrigin};
use crate::transport::SharedTransport;
use crate::workspace;

/// A local project: its root and its remote workspace name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// The project root.
    pub root: PathBuf,
    /// The remote workspace name.
    pub name: Name,
    /// Where the root came from (for the checks made before pushing).
    pub origin: RootOrigin,
    /// The user confirmed pushing this root whatever it is and however large
    /// (`--confirm-push`).
    pub push_confirmed: bool,
}

impl Project {
    /// The project at `root`, named `name` when given (refused unless it is a valid
    /// [`Name`]), else after its directory (made valid with [`Name::derive`]).
    pub fn new(root: &Path, name: Option<&str>) -> Result<Self, NameError> {
        let name = match name {
            Some(name) => Name::parse(name)?,
            None => Name::derive(
                &root
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                "project",
            ),
        };
        Ok(Self {
            root: root.to_path_buf(),
            name,
            origin: RootOrigin {
                found_from: None,
                home: std::env::var_os("HOME").map(PathBuf::from),
            },
            push_confirmed: false,
        })
    }

    /// The project holding `start` (see [`crate::plan::find_project_root`]), remembering
    /// where it was found from so a push can refuse a root that is too wide.
    pub fn find(start: &Path, name: Option<&str>) -> Result<Self, NameError> {
        let mut project = Self::new(&crate::plan::find_project_root(start), name)?;
        project.origin.found_from = Some(start.to_path_buf());
        Ok(project)
    }

    /// The run records of this project.
    pub fn runs(&self) -> RunStore {
        RunStore::new(&self.root)
    }
}

/// What pushing the project would send, or why it is refused: `/`, the home directory, a
/// repository above the working directory with no commit and no `codex-remote.toml`, or more
/// than `sync.max_push_files` / `sync.max_push_bytes`, unless [`Project::push_confirmed`].
pub fn push_scope(config: &Config, project: &Project) -> Result<PushScope, Error> {
    Ok(crate::sync::check_push(
        &project.root,
        &project.origin,
        &config.sync(),
        config.push_limits(),
        project.push_confirmed,
    )?)
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

/// Runs `push` while the transport warms up for the commands after it (over SSH the persistent
/// shell's login and rsync's are each a login: a heavy `~/.bashrc` is paid once in parallel, not
/// twice in a row).
pub(crate) async fn while_warming<T>(
    transport: &dyn crate::transport::Transport,
    push: impl std::future::Future<Output = T>,
) -> T {
    let (pushed, ()) = tokio::join!(push, transport.warm_up());
    pushed
}

/// Pushes the project to the host's mirror with this syncer.
pub async fn push_with(
    syncer: &dyn crate::sync::Syncer,
    transport: SharedTransport,
    config: &Config,
    project: &Project,
    progress: Option<mpsc::Sender<PushProgress>>,
) -> Result<PushReport, Error> {
    // Refused before anything is sent, whichever syncer sends it.
    push_scope(config, project)?;
    let layout = RemoteLayout::new(transport.host(), &project.name);
    let request = PushRequest {
        local_root: project.root.clone(),
        remote_dir: layout.mirror.clone(),
        lock: layout.lock(),
        settings: config.sync(),
    };
    let host = transport.host().name.clone();
    syncer.push(&request, progress).await.map_err(|e| match &e {
        crate::sync::SyncError::Failed { stderr, .. }
            if crate::error::disk_full_words(stderr).is_none() && workspace_unusable(stderr) =>
        {
            workspace_missing(&host, stderr)
        }
        _ => Error::from(e).on_host(&host),
    })
}

/// Records a new run and prepares its isolated tree on the host (after a push).
#[cfg_attr(not(feature = "test-internals"), allow(dead_code))]
pub async fn start_run(
    transport: SharedTransport,
    config: &Config,
    project: &Project,
    task_id: &str,
) -> Result<RunRecord, Error> {
    let record = new_record(transport.as_ref(), project, task_id);
    start_run_as(transport, config, project, record).await
}

/// [`start_run`] for a record made beforehand (a run whose container was started for it).
pub async fn start_run_as(
    transport: SharedTransport,
    config: &Config,
    project: &Project,
    mut record: RunRecord,
) -> Result<RunRecord, Error> {
    let layout = RemoteLayout::new(transport.host(), &project.name);
    let store = project.runs();
    store.save(&record)?;
    let prepared = workspace::prepare_run(
        transport.as_ref(),
        &layout,
        &record.id,
        &config.sync().exclude,
    )
    .await;
    let prepared = prepared.map_err(|e| match &e {
        crate::transport::TransportError::CommandFailed { stderr, .. }
            if crate::error::disk_full_words(stderr).is_none() && workspace_unusable(stderr) =>
        {
            workspace_missing(&transport.host().name, stderr)
        }
        _ => Error::from(e).on_host(&transport.host().name),
    });
    record.tree = match prepared {
        Ok(tree) => Some(tree),
        Err(e) => {
            // Recorded, so `status` and `attach` say why it never ran.
            record.phase = Phase::Failed;
            record.error = Some(e.to_string());
            record.updated_at = now();
            store.save(&record)?;
            return Err(e);
        }
    };
    record.updated_at = now();
    store.save(&record)?;
    Ok(record)
}

/// A new run's record (not saved): pending, nothing prepared.
pub fn new_record(
    transport: &dyn crate::transport::Transport,
    project: &Project,
    task_id: &str,
) -> RunRecord {
    let layout = RemoteLayout::new(transport.host(), &project.name);
    let created = now();
    RunRecord {
        id: new_run_id(task_id),
        task_id: task_id.to_string(),
        host: transport.host().name.clone(),
        project: project.name.to_string(),
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
        events_mark: None,
        finish: None,
        resume_at: None,
        thread_id: None,
        usage: Default::default(),
        warnings: Vec::new(),
        container: None,
        kind: Default::default(),
    }
}

/// Fetches the run's change (one round trip) and stores it as `result.patch` in the record.
///
/// The patch is stored before it is read, so a patch that cannot be read (or that git reads
/// differently from its headers) is kept for review.
#[cfg_attr(not(feature = "test-internals"), allow(dead_code))] // for tests and benches
pub async fn retrieve(
    transport: SharedTransport,
    project: &Project,
    record: &mut RunRecord,
) -> Result<ParsedPatch, Error> {
    retrieve_within(
        transport,
        project,
        record,
        crate::patch::StoredPatchLimit::of(crate::patch::DEFAULT_MAX_STORED_PATCH_BYTES),
    )
    .await
}

/// [`retrieve`], storing at most `max_bytes` of patch (`apply.max_stored_patch_bytes`): a larger
/// one stops being read there, is not stored (a previous `result.patch` of the run is removed
/// too, being stale), and fails with [`crate::patch::ApplyError::NotStored`] saying how large it
/// is at least; the record keeps that as a `patch-not-stored` warning.
pub async fn retrieve_within(
    transport: SharedTransport,
    project: &Project,
    record: &mut RunRecord,
    limit: crate::patch::StoredPatchLimit,
) -> Result<ParsedPatch, Error> {
    let max_bytes = limit.bytes;
    let tree = record.tree.clone().ok_or_else(|| Error::Io {
        context: format!("run `{}` has no remote tree", record.id),
        source: std::io::Error::other("it was never started, or its tree was removed"),
    })?;
    let store = project.runs();
    let path = store.patch_path(&record.id);
    // Streamed to disk, then renamed into place: memory does not grow with the patch, and the
    // record's patch is whole or absent.
    let partial = path.with_extension("patch.part");
    let retrieved =
        workspace::retrieve_patch_to_file_within(transport.as_ref(), &tree, &partial, max_bytes)
            .await;
    record.warnings.retain(|w| w.kind != "patch-not-stored");
    let outside = match retrieved {
        Ok(Ok(outside)) => outside,
        Ok(Err(at_least)) => {
            let _ = std::fs::remove_file(&path);
            let error = crate::patch::ApplyError::NotStored {
                at_least,
                limit: max_bytes,
                configured: limit.configured,
            };
            record.warnings.push(crate::runs::RunWarning {
                kind: "patch-not-stored".into(),
                message: error.to_string(),
                paths: Vec::new(),
            });
            record.updated_at = now();
            store.save(record)?;
            return Err(error.into());
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e.into());
        }
    };
    std::fs::rename(&partial, &path).map_err(|source| Error::Io {
        context: format!("writing {}", path.display()),
        source,
    })?;
    record.warnings.retain(|w| w.kind != "changed-outside-tree");
    if !outside.is_empty() {
        record
            .warnings
            .push(crate::runs::RunWarning::changed_outside_tree(
                tree.mirror.as_deref().unwrap_or(&record.remote_mirror),
                &outside,
            ));
    }
    record.updated_at = now();
    store.save(record)?;
    Ok(ParsedPatch::read(&path)?)
}

/// How to apply a stored result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Apply even when restricted files change.
    pub allow_restricted: bool,
    /// Apply even what looks destructive (see [`crate::patch::HoldBackPolicy`]).
    pub allow_held_back: bool,
    /// Leave out the changes to restricted files and apply the rest.
    pub skip_restricted: bool,
}

/// The applier for this project: its restricted files, protected paths (including the config
/// files loaded from inside it) and hold-back policy.
pub fn applier(
    config: &Config,
    project: &Project,
    options: ApplyOptions,
) -> Result<PatchApplier, Error> {
    let files = crate::sync::select_files(&project.root, &config.sync())
        .map(|files| files.len())
        .unwrap_or(0);
    Ok(PatchApplier::new(
        &project.root,
        config.restricted()?,
        options.allow_restricted,
    )
    .protected(ProtectedPaths::for_project(&project.root, &config.sources))
    .hold_back(config.hold_back(), options.allow_held_back)
    .skip_restricted(options.skip_restricted)
    .project_files(files))
}

/// Applies the stored patch to the project, all or nothing.
pub fn apply(
    config: &Config,
    project: &Project,
    record: &mut RunRecord,
    options: ApplyOptions,
) -> Result<Applied, Error> {
    let store = project.runs();
    let path = store.patch_path(&record.id);
    if !path.exists() {
        // The store's own error says what is missing and why.
        store.read_patch(&record.id)?;
    }
    let applied = applier(config, project, options)?.apply_file(&path)?;
    if record.phase == crate::runs::Phase::Refused {
        // Taken after all (`pull --apply` once the cause was fixed).
        record.phase = crate::runs::Phase::Completed;
        record.error = None;
    }
    record.applied_at = Some(now());
    record.updated_at = now();
    store.save(record)?;
    Ok(applied)
}

/// Returns the run's tree to the host's pool of run trees (it no longer holds it; the next run
/// reuses it) and drops its baseline ref and agent files, in the workspace the run started in
/// (see [`RemoteLayout::of_run`]).
pub async fn remove_remote(
    transport: SharedTransport,
    project: &Project,
    record: &mut RunRecord,
) -> Result<(), Error> {
    // Built only from names validated here, whatever the record says: what is removed is under
    // `<workspace>/.codex-remote/<project>/` (the workspace the run started in, read from a
    // plain saved mirror path) and named by the run id, nothing else.
    let invalid = |field: &str, e: NameError| {
        Error::Runs(crate::runs::RunStoreError::Damaged {
            path: project
                .runs()
                .run_dir(&record.id)
                .join("run.json")
                .display()
                .to_string(),
            message: format!("field `{field}`: {e}; nothing was removed"),
        })
    };
    let run_id = Name::parse(&record.id).map_err(|e| invalid("id", e))?;
    Name::parse(&record.project).map_err(|e| invalid("project", e))?;
    let layout = RemoteLayout::of_run(transport.host(), record);
    workspace::remove_run(transport.as_ref(), &layout, &run_id).await?;
    record.remote_removed = true;
    record.updated_at = now();
    project.runs().save(record)?;
    Ok(())
}

/// Removes the idle run trees (trees no run holds) of the project's pool on the host, and of
/// the pools `runs` (runs on this host) started in (another workspace, when the host's setting
/// changed since; see [`RemoteLayout::of_run`]), and lets git collect the mirrors' unreachable
/// objects. Returns how many trees were removed.
pub async fn prune_idle_trees(
    transport: SharedTransport,
    project: &Project,
    runs: &[RunRecord],
) -> Result<usize, Error> {
    let mut layouts = vec![RemoteLayout::new(transport.host(), &project.name)];
    for record in runs {
        let layout = RemoteLayout::of_run(transport.host(), record);
        if !layouts.contains(&layout) {
            layouts.push(layout);
        }
    }
    let mut removed = 0;
    for layout in &layouts {
        removed += workspace::prune_idle_trees(transport.as_ref(), layout)
            .await?
            .len();
    }
    Ok(removed)
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
