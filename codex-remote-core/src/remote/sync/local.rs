//! The `local` host's push: a copy on this machine, reflinked (copy-on-write) where the file
//! system supports it, skipping files whose size and modification time are unchanged.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{select_files, PushProgress, PushReport, PushRequest, SelectedFile, SyncError, Syncer};
use crate::transport::local::expand_home;

/// Copies the project into a directory on this machine.
pub struct LocalCopySyncer;

#[async_trait]
impl Syncer for LocalCopySyncer {
    fn name(&self) -> &'static str {
        "local-copy"
    }

    async fn push(
        &self,
        request: &PushRequest,
        progress: Option<mpsc::Sender<PushProgress>>,
    ) -> Result<PushReport, SyncError> {
        let request = request.clone();
        tokio::task::spawn_blocking(move || copy_tree(&request, progress))
            .await
            .map_err(|e| SyncError::Io {
                context: "copying the project".into(),
                source: std::io::Error::other(e.to_string()),
            })?
    }
}

fn copy_tree(
    request: &PushRequest,
    progress: Option<mpsc::Sender<PushProgress>>,
) -> Result<PushReport, SyncError> {
    let started = Instant::now();
    let source = &request.local_root;
    let dest = expand_home(&request.remote_dir);
    let lock_path = expand_home(&request.lock);
    if let Some(parent) = lock_path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(SyncError::io(format!("creating {}", parent.display())))?;
    }
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(SyncError::io("opening the push lock"))?;
    lock.lock().map_err(SyncError::io("taking the push lock"))?;
    if dest.starts_with(source) || source.starts_with(&dest) {
        return Err(SyncError::Io {
            context: format!(
                "the workspace {} overlaps the project {}",
                dest.display(),
                source.display()
            ),
            source: std::io::Error::other(
                "choose a workspace outside the project (hosts.local.workspace)",
            ),
        });
    }
    std::fs::create_dir_all(&dest)
        .map_err(SyncError::io(format!("creating {}", dest.display())))?;
    let files = select_files(source, &request.settings)?;
    let total_bytes: u64 = files.iter().map(|f| f.size).sum();
    let mut transferred = 0u64;
    let mut bytes = 0u64;
    for file in &files {
        if copy_one(source, &dest, file)? {
            transferred += 1;
        }
        bytes += file.size;
        if let Some(tx) = &progress {
            let percent = (total_bytes > 0).then(|| ((bytes * 100) / total_bytes) as u8);
            let _ = tx.try_send(PushProgress { bytes, percent });
        }
    }
    let keep: BTreeSet<&str> = files.iter().map(|f| f.relative.as_str()).collect();
    remove_extraneous(&dest, &dest, &keep)?;
    Ok(PushReport {
        remote_dir: request.remote_dir.clone(),
        method: "local-copy",
        files: files.len() as u64,
        files_transferred: transferred,
        total_bytes,
        duration: started.elapsed(),
    })
}

/// Copies one file or link if it changed; true when something was written.
fn copy_one(source_root: &Path, dest_root: &Path, file: &SelectedFile) -> Result<bool, SyncError> {
    let from = source_root.join(&file.relative);
    let to = dest_root.join(&file.relative);
    let context = || format!("copying {}", file.relative);
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(SyncError::io(context()))?;
    }
    if file.symlink {
        let target = std::fs::read_link(&from).map_err(SyncError::io(context()))?;
        if std::fs::read_link(&to).ok().as_ref() == Some(&target) {
            return Ok(false);
        }
        remove_any(&to).map_err(SyncError::io(context()))?;
        std::os::unix::fs::symlink(&target, &to).map_err(SyncError::io(context()))?;
        return Ok(true);
    }
    let meta = std::fs::metadata(&from).map_err(SyncError::io(context()))?;
    if let Ok(existing) = std::fs::symlink_metadata(&to) {
        if existing.is_file()
            && existing.len() == meta.len()
            && existing.modified().ok() == meta.modified().ok()
            && existing.permissions() == meta.permissions()
        {
            return Ok(false);
        }
    }
    // Copy beside the target and rename, so a reader never sees half a file.
    let temp: PathBuf = to.with_file_name(format!(
        ".{}.codex-remote-tmp",
        to.file_name().unwrap_or_default().to_string_lossy()
    ));
    let _ = std::fs::remove_file(&temp);
    reflink_copy::reflink_or_copy(&from, &temp).map_err(SyncError::io(context()))?;
    std::fs::set_permissions(&temp, meta.permissions()).map_err(SyncError::io(context()))?;
    if let Ok(modified) = meta.modified() {
        let handle = std::fs::File::options()
            .write(true)
            .open(&temp)
            .map_err(SyncError::io(context()))?;
        handle
            .set_modified(modified)
            .map_err(SyncError::io(context()))?;
    }
    remove_any(&to).map_err(SyncError::io(context()))?;
    std::fs::rename(&temp, &to).map_err(SyncError::io(context()))?;
    Ok(true)
}

fn remove_any(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Deletes what is not in `keep` (never the top-level `.git`); returns whether `dir` is empty.
fn remove_extraneous(root: &Path, dir: &Path, keep: &BTreeSet<&str>) -> Result<bool, SyncError> {
    let mut empty = true;
    for entry in
        std::fs::read_dir(dir).map_err(SyncError::io(format!("reading {}", dir.display())))?
    {
        let entry = entry.map_err(SyncError::io("reading the mirror"))?;
        let path = entry.path();
        let relative = path
            .strip_prefix(root)
            .expect("under root")
            .to_string_lossy()
            .into_owned();
        if relative == ".git" {
            empty = false;
            continue;
        }
        let file_type = entry
            .file_type()
            .map_err(SyncError::io("reading the mirror"))?;
        if file_type.is_dir() {
            if remove_extraneous(root, &path, keep)? {
                std::fs::remove_dir(&path)
                    .map_err(SyncError::io(format!("removing {relative}")))?;
            } else {
                empty = false;
            }
        } else if keep.contains(relative.as_str()) {
            empty = false;
        } else {
            std::fs::remove_file(&path).map_err(SyncError::io(format!("removing {relative}")))?;
        }
    }
    Ok(empty)
}
