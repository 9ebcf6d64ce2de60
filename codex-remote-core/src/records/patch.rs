//! Result patches: parsing a run's binary git patch, summarising it, and applying it to the local
//! tree without ever clobbering local work.
//!
//! [`PatchApplier`] checks everything before writing anything: every file the patch touches must
//! still be exactly what was pushed (its git blob id equals the patch's preimage id), new files
//! must not exist locally, and restricted files may not be touched unless allowed. Only then is
//! the patch applied, by `git apply` (which handles binary deltas, renames and modes, and works
//! outside a repository), itself all-or-nothing.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::Serialize;
use sha1::{Digest, Sha1};

use crate::policy::RestrictedFiles;

const NULL_BLOB: &str = "0000000000000000000000000000000000000000";

/// One file's change in a patch. Serialised in one shape everywhere (see `progress.rs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileChange {
    /// The path before (None for a new file).
    pub old_path: Option<String>,
    /// The path after (None for a deleted file).
    pub new_path: Option<String>,
    /// The preimage blob id (None for a new file).
    pub old_blob: Option<String>,
    /// The postimage blob id (None for a deleted file).
    pub new_blob: Option<String>,
    /// Mode before, when known.
    pub old_mode: Option<String>,
    /// Mode after, when it changed or the file is new.
    pub new_mode: Option<String>,
    /// Lines added (text changes).
    pub added: u64,
    /// Lines removed (text changes).
    pub removed: u64,
    /// Whether the change is binary.
    pub binary: bool,
}

impl FileChange {
    /// The path to show: the new one, else the old one.
    pub fn path(&self) -> &str {
        self.new_path
            .as_deref()
            .or(self.old_path.as_deref())
            .unwrap_or_default()
    }

    /// `added`, `deleted`, `renamed`, `mode` or `modified`.
    pub fn kind(&self) -> &'static str {
        match (&self.old_path, &self.new_path) {
            (None, _) => "added",
            (_, None) => "deleted",
            (Some(a), Some(b)) if a != b => "renamed",
            _ if self.old_blob == self.new_blob && self.old_mode != self.new_mode => "mode",
            _ => "modified",
        }
    }
}

/// A parsed patch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ParsedPatch {
    /// Its files, in patch order.
    pub files: Vec<FileChange>,
}

/// Why a patch could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the result patch is malformed at line {line}: {message}")]
pub struct PatchParseError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl ParsedPatch {
    /// Parses `git diff --binary --full-index` output.
    pub fn parse(patch: &[u8]) -> Result<Self, PatchParseError> {
        let text = String::from_utf8_lossy(patch);
        let mut files: Vec<FileChange> = Vec::new();
        let mut in_header = false;
        for (index, line) in text.split('\n').enumerate() {
            let error = |message: &str| PatchParseError {
                line: index + 1,
                message: message.to_string(),
            };
            if let Some(rest) = line.strip_prefix("diff --git ") {
                let (a, b) = split_diff_git(rest)
                    .ok_or_else(|| error("cannot read the paths of `diff --git`"))?;
                files.push(FileChange {
                    old_path: Some(a),
                    new_path: Some(b),
                    ..FileChange::default()
                });
                in_header = true;
                continue;
            }
            let Some(file) = files.last_mut() else {
                if line.is_empty() {
                    continue;
                }
                return Err(error("text before the first `diff --git`"));
            };
            if in_header {
                if let Some(mode) = line.strip_prefix("old mode ") {
                    file.old_mode = Some(mode.to_string());
                } else if let Some(mode) = line.strip_prefix("new mode ") {
                    file.new_mode = Some(mode.to_string());
                } else if let Some(mode) = line.strip_prefix("deleted file mode ") {
                    file.old_mode = Some(mode.to_string());
                    file.new_path = None;
                } else if let Some(mode) = line.strip_prefix("new file mode ") {
                    file.new_mode = Some(mode.to_string());
                    file.old_path = None;
                } else if let Some(path) = line.strip_prefix("rename from ") {
                    file.old_path = Some(unquote(path).ok_or_else(|| error("bad quoted path"))?);
                } else if let Some(path) = line.strip_prefix("rename to ") {
                    file.new_path = Some(unquote(path).ok_or_else(|| error("bad quoted path"))?);
                } else if let Some(rest) = line.strip_prefix("index ") {
                    let (range, mode) = rest
                        .split_once(' ')
                        .map_or((rest, None), |(r, m)| (r, Some(m)));
                    let (old, new) = range
                        .split_once("..")
                        .ok_or_else(|| error("bad index line"))?;
                    file.old_blob = (old != NULL_BLOB).then(|| old.to_string());
                    file.new_blob = (new != NULL_BLOB).then(|| new.to_string());
                    if let Some(mode) = mode {
                        file.old_mode.get_or_insert_with(|| mode.to_string());
                        file.new_mode.get_or_insert_with(|| mode.to_string());
                    }
                } else if line == "GIT binary patch" || line.starts_with("Binary files ") {
                    file.binary = true;
                    in_header = false;
                } else if line.starts_with("--- ") || line.starts_with("@@") {
                    in_header = line.starts_with("--- ");
                } else if line.starts_with("+++ ") {
                    in_header = false;
                }
                continue;
            }
            if !file.binary {
                if line.starts_with('+') {
                    file.added += 1;
                } else if line.starts_with('-') {
                    file.removed += 1;
                }
            }
        }
        for file in &files {
            for path in [&file.old_path, &file.new_path].into_iter().flatten() {
                if path.starts_with('/') || path.split('/').any(|c| c == "..") {
                    return Err(PatchParseError {
                        line: 0,
                        message: format!("path `{path}` leaves the project"),
                    });
                }
            }
        }
        Ok(Self { files })
    }

    /// Every path the patch touches (old and new).
    pub fn paths(&self) -> Vec<&str> {
        let mut paths: Vec<&str> = self
            .files
            .iter()
            .flat_map(|f| [f.old_path.as_deref(), f.new_path.as_deref()])
            .flatten()
            .collect();
        paths.sort_unstable();
        paths.dedup();
        paths
    }
}

/// `a/X b/Y` (possibly quoted) into (X, Y).
fn split_diff_git(rest: &str) -> Option<(String, String)> {
    if rest.starts_with('"') {
        let (a, remainder) = take_quoted(rest)?;
        let remainder = remainder.strip_prefix(' ')?;
        let b = if remainder.starts_with('"') {
            take_quoted(remainder)?.0
        } else {
            remainder.to_string()
        };
        return Some((
            a.strip_prefix("a/")?.to_string(),
            b.strip_prefix("b/")?.to_string(),
        ));
    }
    if rest.ends_with('"') {
        let start = rest.rfind(" \"")?;
        let b = take_quoted(&rest[start + 1..])?.0;
        return Some((
            rest[..start].strip_prefix("a/")?.to_string(),
            b.strip_prefix("b/")?.to_string(),
        ));
    }
    // Unquoted: the same path twice (renames are read from `rename from/to`).
    let half = (rest.len().checked_sub(1)?) / 2;
    let (a, b) = (rest.get(..half)?, rest.get(half + 1..)?);
    if a.strip_prefix("a/")? == b.strip_prefix("b/")? && rest.as_bytes().get(half) == Some(&b' ') {
        return Some((a[2..].to_string(), b[2..].to_string()));
    }
    // Different unquoted paths with no spaces.
    let (a, b) = rest.split_once(" b/")?;
    Some((a.strip_prefix("a/")?.to_string(), b.to_string()))
}

/// Reads a C-quoted string at the start of `s`; returns it and the rest.
fn take_quoted(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let mut bytes = Vec::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((String::from_utf8(bytes).ok()?, &body[i + 1..])),
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    'n' => bytes.push(b'\n'),
                    't' => bytes.push(b'\t'),
                    'r' => bytes.push(b'\r'),
                    'a' => bytes.push(7),
                    'b' => bytes.push(8),
                    'f' => bytes.push(12),
                    'v' => bytes.push(11),
                    '"' => bytes.push(b'"'),
                    '\\' => bytes.push(b'\\'),
                    '0'..='7' => {
                        let (_, d2) = chars.next()?;
                        let (_, d3) = chars.next()?;
                        let octal: String = [e, d2, d3].iter().collect();
                        bytes.push(u8::from_str_radix(&octal, 8).ok()?);
                    }
                    _ => return None,
                }
            }
            c => {
                let mut buf = [0u8; 4];
                bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    None
}

/// A path as git prints it: quoted or not.
fn unquote(path: &str) -> Option<String> {
    if path.starts_with('"') {
        take_quoted(path).map(|(p, _)| p)
    } else {
        Some(path.to_string())
    }
}

/// Git's blob id of a local file (or symlink), or None when it does not exist.
pub fn local_blob_id(path: &Path) -> std::io::Result<Option<String>> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let content = if meta.file_type().is_symlink() {
        std::fs::read_link(path)?
            .into_os_string()
            .into_encoded_bytes()
    } else if meta.is_dir() {
        return Ok(Some("directory".to_string()));
    } else {
        std::fs::read(path)?
    };
    let mut hasher = Sha1::new();
    hasher.update(format!("blob {}\0", content.len()).as_bytes());
    hasher.update(&content);
    Ok(Some(
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    ))
}

/// A file the patch may not be applied to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// The path.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// Why a patch was not applied. The local tree is untouched in every case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// Files changed locally since the push (or exist where the patch creates them).
    #[error("{} conflicting file(s); nothing was applied: {}", .0.len(), describe(.0))]
    Conflicts(Vec<Conflict>),
    /// The patch touches restricted files.
    #[error("the result changes restricted file(s) {}; nothing was applied", .0.join(", "))]
    Restricted(Vec<String>),
    /// `git apply` refused it.
    #[error("git apply refused the patch; nothing was applied: {0}")]
    Refused(String),
    /// The patch is malformed.
    #[error(transparent)]
    Parse(#[from] PatchParseError),
    /// Local I/O failed.
    #[error("{context}")]
    Io {
        /// What we were doing.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

fn describe(conflicts: &[Conflict]) -> String {
    conflicts
        .iter()
        .map(|c| format!("{} ({})", c.path, c.reason))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Applies result patches to a local tree, all or nothing.
#[derive(Debug, Clone)]
pub struct PatchApplier {
    root: PathBuf,
    restricted: RestrictedFiles,
    allow_restricted: bool,
}

impl PatchApplier {
    /// An applier for the tree at `root`.
    pub fn new(
        root: impl Into<PathBuf>,
        restricted: RestrictedFiles,
        allow_restricted: bool,
    ) -> Self {
        Self {
            root: root.into(),
            restricted,
            allow_restricted,
        }
    }

    /// Checks the patch against the local tree without writing anything.
    pub fn check(&self, patch: &ParsedPatch) -> Result<(), ApplyError> {
        if !self.allow_restricted {
            let restricted: Vec<String> = patch
                .paths()
                .into_iter()
                .filter(|p| self.restricted.is_restricted(p))
                .map(str::to_string)
                .collect();
            if !restricted.is_empty() {
                return Err(ApplyError::Restricted(restricted));
            }
        }
        let mut conflicts = Vec::new();
        for file in &patch.files {
            let blob = |path: &str| {
                local_blob_id(&self.root.join(path)).map_err(|e| ApplyError::Io {
                    context: format!("reading {path}"),
                    source: e,
                })
            };
            if let Some(old) = &file.old_path {
                let local = blob(old)?;
                match (&local, &file.old_blob) {
                    (None, _) => conflicts.push(Conflict {
                        path: old.clone(),
                        reason: "deleted locally since the push".into(),
                    }),
                    (Some(local), Some(expected)) if local != expected => {
                        conflicts.push(Conflict {
                            path: old.clone(),
                            reason: "changed locally since the push".into(),
                        })
                    }
                    _ => {}
                }
            }
            if let Some(new) = &file.new_path {
                if file.old_path.as_deref() != Some(new.as_str()) && blob(new)?.is_some() {
                    conflicts.push(Conflict {
                        path: new.clone(),
                        reason: "created locally since the push".into(),
                    });
                }
            }
        }
        if conflicts.is_empty() {
            Ok(())
        } else {
            Err(ApplyError::Conflicts(conflicts))
        }
    }

    /// Checks, then applies. On any error the tree is untouched.
    pub fn apply(&self, patch_bytes: &[u8]) -> Result<ParsedPatch, ApplyError> {
        let patch = ParsedPatch::parse(patch_bytes)?;
        if patch.files.is_empty() {
            return Ok(patch);
        }
        self.check(&patch)?;
        self.git_apply(patch_bytes, true)?;
        self.git_apply(patch_bytes, false)?;
        Ok(patch)
    }

    fn git_apply(&self, patch: &[u8], check_only: bool) -> Result<(), ApplyError> {
        use std::io::Write;
        let mut command = std::process::Command::new("git");
        command.args(["apply", "--binary", "--whitespace=nowarn"]);
        if check_only {
            command.arg("--check");
        }
        // Never discover a repository above the project: paths are relative to the project root
        // whether or not it is a git repository.
        let ceiling = self.root.parent().unwrap_or(&self.root);
        command
            .arg("-")
            .current_dir(&self.root)
            .env("GIT_CEILING_DIRECTORIES", ceiling)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|e| ApplyError::Io {
            context: "running git apply (is git installed?)".into(),
            source: e,
        })?;
        let mut stdin = child.stdin.take().expect("piped");
        let bytes = patch.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&bytes));
        let output = child.wait_with_output().map_err(|e| ApplyError::Io {
            context: "running git apply".into(),
            source: e,
        })?;
        let _ = writer.join();
        if output.status.success() {
            Ok(())
        } else {
            Err(ApplyError::Refused(
                String::from_utf8_lossy(&output.stderr).trim().to_string(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquotes_c_style_paths() {
        assert_eq!(
            take_quoted(r#""a/sp ace \"q\" \303\274\n" rest"#),
            Some(("a/sp ace \"q\" ü\n".to_string(), " rest"))
        );
    }

    #[test]
    fn splits_diff_git_lines() {
        assert_eq!(
            split_diff_git("a/x y b/x y"),
            Some(("x y".into(), "x y".into()))
        );
        assert_eq!(
            split_diff_git(r#""a/q\"" "b/q\"""#),
            Some(("q\"".into(), "q\"".into()))
        );
        assert_eq!(
            split_diff_git("a/old b/new"),
            Some(("old".into(), "new".into()))
        );
    }

    #[test]
    fn parses_kinds_and_counts() {
        let patch = b"diff --git a/f b/f\nindex 1111111111111111111111111111111111111111..2222222222222222222222222222222222222222 100644\n--- a/f\n+++ b/f\n@@ -1 +1,2 @@\n-x\n+y\n+z\ndiff --git a/n b/n\nnew file mode 100755\nindex 0000000000000000000000000000000000000000..3333333333333333333333333333333333333333\nGIT binary patch\nliteral 3\nKcmZ?wbN>{dAnit bit\n\n";
        let parsed = ParsedPatch::parse(patch).unwrap();
        assert_eq!(parsed.files.len(), 2);
        assert_eq!(
            (
                parsed.files[0].kind(),
                parsed.files[0].added,
                parsed.files[0].removed
            ),
            ("modified", 2, 1)
        );
        assert_eq!(
            (parsed.files[1].kind(), parsed.files[1].binary),
            ("added", true)
        );
    }

    #[test]
    fn blob_ids_match_git() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "hello\n").unwrap();
        // `echo hello | git hash-object --stdin`
        assert_eq!(
            local_blob_id(&dir.path().join("f")).unwrap().as_deref(),
            Some("ce013625030ba8dba906f756967f9e9ca394464a")
        );
        assert_eq!(local_blob_id(&dir.path().join("missing")).unwrap(), None);
    }
}
