//! Pushing the local project to the host's mirror: the [`Syncer`] trait and its
//! implementations.
//!
//! - [`rsync::RsyncSyncer`]: the real `rsync`, riding the transport's SSH master connection
//!   (no second login), delta transfer, `--delete` confined to the mirror.
//! - [`tar::TarSyncer`]: needs only a POSIX shell and `tar` on the host; streams a tar archive
//!   through the [`Transport`] (works over any transport, including the fake).
//! - [`local::LocalCopySyncer`]: the `local` host: a copy on this machine, reflinked where the
//!   file system can.
//!
//! All honour `.gitignore` (when configured) and the exclude list, never follow symlinks (links
//! pointing outside the project are skipped), keep file modes, and never touch the mirror's own
//! `.git` (the baseline repository of the runs).

pub mod local;
pub mod rsync;
pub mod tar;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::config::SyncSettings;
use crate::transport::{SharedTransport, TransportError};

/// What to push where.
#[derive(Debug, Clone)]
pub struct PushRequest {
    /// The local project root.
    pub local_root: PathBuf,
    /// The mirror directory on the host (may start with `~/`).
    pub remote_dir: String,
    /// A lock file on the host that serialises writers of the mirror.
    pub lock: String,
    /// Excludes and `.gitignore` handling.
    pub settings: SyncSettings,
}

/// Progress of a push, for display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushProgress {
    /// Bytes sent so far.
    pub bytes: u64,
    /// Percent done, when known.
    pub percent: Option<u8>,
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct PushReport {
    /// The mirror directory on the host.
    pub remote_dir: String,
    /// Which syncer did it (`rsync`, `tar`, `local-copy`).
    pub method: &'static str,
    /// Files in the pushed set.
    pub files: u64,
    /// Files actually transferred (changed since the last push).
    pub files_transferred: u64,
    /// Bytes of file content in the pushed set.
    pub total_bytes: u64,
    /// How long it took, in seconds.
    #[serde(serialize_with = "serialize_secs")]
    #[schemars(with = "f64")]
    pub duration: Duration,
}

fn serialize_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// Reaching the host failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A program the syncer needs is not installed.
    #[error("`{program}` is not installed {place}")]
    MissingProgram {
        /// The program.
        program: String,
        /// `on this machine` or `on host X`.
        place: String,
        /// How to fix it.
        hint: String,
    },
    /// The sync program failed.
    #[error("{program} failed with exit code {code}: {stderr}")]
    Failed {
        /// The program.
        program: String,
        /// Its exit code.
        code: i32,
        /// What it said.
        stderr: String,
    },
    /// Local file system trouble.
    #[error("{context}")]
    Io {
        /// What we were doing.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// The project root is not a directory.
    #[error("the project root `{0}` is not a directory")]
    NotADirectory(PathBuf),
    /// The project root is one that is never pushed without confirmation.
    #[error("refusing to push {}: {reason}", .root.display())]
    RootRefused {
        /// The root found.
        root: PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// The push is larger than the configured limits.
    #[error("refusing to push {}: {files} files, {bytes} bytes is above the limit of {max_files} files or {max_bytes} bytes", .root.display())]
    TooLarge {
        /// The root.
        root: PathBuf,
        /// Files selected.
        files: u64,
        /// Bytes selected.
        bytes: u64,
        /// `sync.max_push_files`.
        max_files: u64,
        /// `sync.max_push_bytes`.
        max_bytes: u64,
    },
}

impl SyncError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| SyncError::Io { context, source }
    }
}

/// Pushes a local tree to a host.
#[async_trait]
pub trait Syncer: Send + Sync {
    /// Short name for reports (`rsync`, `tar`, `local-copy`).
    fn name(&self) -> &'static str;

    /// Makes the mirror equal to the selected local files (deleting what is gone), leaving the
    /// mirror's `.git` alone. Progress goes to `progress` when given.
    async fn push(
        &self,
        request: &PushRequest,
        progress: Option<mpsc::Sender<PushProgress>>,
    ) -> Result<PushReport, SyncError>;
}

/// The syncer for a transport: a local copy for `local`, rsync over SSH (falling back to tar
/// when the host or this machine lacks rsync).
pub fn syncer_for(transport: SharedTransport) -> Arc<dyn Syncer> {
    if transport.host().is_local() {
        Arc::new(local::LocalCopySyncer)
    } else {
        Arc::new(rsync::RsyncSyncer::new(transport))
    }
}

/// What a push would send, checked before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PushScope {
    /// The local project root.
    pub root: PathBuf,
    /// Files selected.
    pub files: u64,
    /// Bytes of file content selected.
    pub bytes: u64,
}

/// Where a project root came from, for [`check_push`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RootOrigin {
    /// The directory the root was found from (the working directory), when it was searched
    /// for rather than given.
    pub found_from: Option<PathBuf>,
    /// The user's home directory.
    pub home: Option<PathBuf>,
}

/// Decides whether `root` may be pushed, and how much it is: refuses `/`, the home directory
/// and any directory holding it, and a repository above the directory it was found from that has no commit and no
/// `codex-remote.toml` (an empty `/tmp/.git` left by a sandbox), then a selection above
/// `limits`. `confirmed` (the user's `--confirm-push`) lifts every refusal.
pub fn check_push(
    root: &Path,
    origin: &RootOrigin,
    settings: &SyncSettings,
    limits: crate::config::PushLimits,
    confirmed: bool,
) -> Result<PushScope, SyncError> {
    if !confirmed {
        if let Some(reason) = refused_root(root, origin) {
            return Err(SyncError::RootRefused {
                root: root.to_path_buf(),
                reason,
            });
        }
    }
    let files = select_files(root, settings)?;
    let scope = PushScope {
        root: root.to_path_buf(),
        files: files.len() as u64,
        bytes: files.iter().map(|f| f.size).sum(),
    };
    if !confirmed && (scope.files > limits.max_files || scope.bytes > limits.max_bytes) {
        return Err(SyncError::TooLarge {
            root: scope.root,
            files: scope.files,
            bytes: scope.bytes,
            max_files: limits.max_files,
            max_bytes: limits.max_bytes,
        });
    }
    Ok(scope)
}

fn refused_root(root: &Path, origin: &RootOrigin) -> Option<String> {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let real = canonical(root);
    if real.parent().is_none() {
        return Some("it is the file system's root `/`".into());
    }
    if let Some(home) = origin.home.as_deref().map(canonical) {
        if home == real {
            return Some("it is your home directory".into());
        }
        if home.starts_with(&real) {
            return Some(format!("it holds your home directory {}", home.display()));
        }
    }
    let found_from = origin.found_from.as_deref().map(canonical)?;
    if found_from != real
        && root.join(".git").exists()
        && !root.join(crate::config::PROJECT_FILE).exists()
        && !has_commit(root)
    {
        return Some(format!(
            "it is a repository above {} with no commit and no {} (such as an empty .git a sandbox left behind)",
            found_from.display(),
            crate::config::PROJECT_FILE
        ));
    }
    None
}

/// Whether the repository at `root` has a commit (asked of git itself; no git, or no
/// repository git recognises, is no commit).
fn has_commit(root: &Path) -> bool {
    std::process::Command::new("git")
        .arg("--git-dir")
        .arg(root.join(".git"))
        .args(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// One file (or symlink) selected for pushing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedFile {
    /// Path relative to the project root, `/`-separated.
    pub relative: String,
    /// Size in bytes (0 for links).
    pub size: u64,
    /// Whether it is a symlink (copied as a link, never followed).
    pub symlink: bool,
}

/// Walks the project like the syncers do: `.gitignore` (if configured), the excludes, no `.git`,
/// no `.codex-remote/` or root `codex-remote.toml`, no symlinks that point outside the project, never following links.
pub fn select_files(root: &Path, settings: &SyncSettings) -> Result<Vec<SelectedFile>, SyncError> {
    if !root.is_dir() {
        return Err(SyncError::NotADirectory(root.to_path_buf()));
    }
    let mut excludes = ignore::gitignore::GitignoreBuilder::new(root);
    for pattern in settings
        .exclude
        .iter()
        .map(String::as_str)
        // Our config is the user's, not the agent's: it may hold other hosts' env secrets.
        .chain([".git", ".codex-remote/", "/codex-remote.toml"])
    {
        excludes
            .add_line(None, pattern)
            .map_err(|e| SyncError::Io {
                context: format!("bad exclude pattern `{pattern}`"),
                source: std::io::Error::other(e.to_string()),
            })?;
    }
    let excludes = excludes.build().map_err(|e| SyncError::Io {
        context: "building excludes".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .parents(false)
        .ignore(false)
        .git_global(false)
        .git_ignore(settings.respect_gitignore)
        .git_exclude(settings.respect_gitignore)
        .require_git(false)
        .follow_links(false)
        .filter_entry(move |entry| {
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            !excludes.matched(entry.path(), is_dir).is_ignore()
        })
        .build();
    let mut files = Vec::new();
    for entry in walker {
        let entry = entry.map_err(|e| SyncError::Io {
            context: "walking the project".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let Some(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_dir() {
            continue;
        }
        let relative = entry
            .path()
            .strip_prefix(root)
            .expect("walk stays under root")
            .to_string_lossy()
            .replace('\\', "/");
        if file_type.is_symlink() {
            if link_stays_inside(root, entry.path()) {
                files.push(SelectedFile {
                    relative,
                    size: 0,
                    symlink: true,
                });
            }
        } else if file_type.is_file() {
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            files.push(SelectedFile {
                relative,
                size,
                symlink: false,
            });
        }
    }
    files.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(files)
}

/// Whether a symlink's target, resolved lexically from its directory, stays under `root`
/// (rsync's `--safe-links` rule: absolute targets are unsafe).
pub(crate) fn link_stays_inside(root: &Path, link: &Path) -> bool {
    let Ok(target) = std::fs::read_link(link) else {
        return false;
    };
    if target.is_absolute() {
        return false;
    }
    let mut depth: i64 = link
        .parent()
        .and_then(|p| p.strip_prefix(root).ok())
        .map_or(0, |p| p.components().count() as i64);
    for component in target.components() {
        match component {
            std::path::Component::ParentDir => depth -= 1,
            std::path::Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(exclude: &[&str], gitignore: bool) -> SyncSettings {
        SyncSettings {
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            respect_gitignore: gitignore,
        }
    }

    #[test]
    fn roots_holding_home_are_refused_and_confirmation_lifts_every_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home/me");
        let project = home.join("src/app");
        std::fs::create_dir_all(&project).unwrap();
        std::fs::write(project.join("a.txt"), "a").unwrap();
        let origin = RootOrigin {
            found_from: Some(project.clone()),
            home: Some(home.clone()),
        };
        let limits = crate::config::PushLimits {
            max_files: 10,
            max_bytes: 10,
        };
        let check = |root: &Path, confirmed| {
            check_push(root, &origin, &settings(&[], false), limits, confirmed)
        };
        for (root, reason) in [
            (home.as_path(), "your home directory"),
            (
                dir.path().join("home").as_path(),
                "holds your home directory",
            ),
        ] {
            match check(root, false) {
                Err(SyncError::RootRefused { reason: r, .. }) => assert!(r.contains(reason), "{r}"),
                other => panic!("{}: {other:?}", root.display()),
            }
        }
        let scope = check(&project, false).unwrap();
        assert_eq!((scope.files, scope.bytes), (1, 1));
        assert_eq!(check(&home, true).unwrap().files, 1);
    }

    #[test]
    fn selection_honours_gitignore_excludes_and_safe_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for path in [
            "src/a.rs",
            "target/debug/x",
            "node_modules/m/i.js",
            "notes.log",
            ".git/HEAD",
            "sub/.hidden",
        ] {
            std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
            std::fs::write(root.join(path), "x").unwrap();
        }
        std::fs::write(root.join(".gitignore"), "*.log\n").unwrap();
        std::os::unix::fs::symlink("a.rs", root.join("src/inside")).unwrap();
        std::os::unix::fs::symlink("../../etc/passwd", root.join("src/outside")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("absolute")).unwrap();
        let names: Vec<String> = select_files(root, &settings(&["target/", "node_modules/"], true))
            .unwrap()
            .into_iter()
            .map(|f| f.relative)
            .collect();
        assert_eq!(
            names,
            vec![".gitignore", "src/a.rs", "src/inside", "sub/.hidden"]
        );
        let names: Vec<String> = select_files(root, &settings(&[], false))
            .unwrap()
            .into_iter()
            .map(|f| f.relative)
            .collect();
        assert!(
            names.contains(&"notes.log".to_string())
                && names.contains(&"target/debug/x".to_string())
        );
        assert!(!names.iter().any(|n| n.starts_with(".git/")));
    }
}
