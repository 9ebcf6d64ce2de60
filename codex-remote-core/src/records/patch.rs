//! Result patches: reading a run's binary git patch exactly as git reads it, summarising it, and
//! applying it to the local tree all or nothing, without ever clobbering local work.
//!
//! Reading: git itself is the authority on what a patch touches. [`ParsedPatch::read`] asks
//! `git apply --numstat -z` (forwards and reversed, which yields each file's new and old name
//! byte for byte) and reads only the per-file header fields git does not print (preimage blob ids,
//! modes, new/deleted/copied) from the patch's own headers. The two views must name the same
//! files in the same order; a patch that git reads differently from its headers (a `diff --git`
//! line naming one file while `---`/`+++` name another, an appended plain diff) is refused.
//!
//! Applying ([`PatchApplier`]): every check runs before anything is written: protected paths
//! (never applied), restricted files (unless allowed), conflicts (every file the patch touches
//! must still be exactly what was pushed, new files must not exist, no path may lead through a
//! symlink), then `git apply` runs on copies of the touched files in a scratch directory. Results
//! that look destructive are held back (see [`HoldBackPolicy`]). Only then are the post-images
//! moved into the tree, each replaced file first moved aside; if any step fails, every step
//! already taken is undone, so the tree ends byte-identical to before.

use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Serialize;
use sha1::{Digest, Sha1};

use crate::policy::{fold_name, ProtectedPaths, RestrictedFiles};

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
    /// Whether the new path is a copy of the old one (which stays).
    pub copied: bool,
}

impl FileChange {
    /// The path to show: the new one, else the old one.
    pub fn path(&self) -> &str {
        self.new_path
            .as_deref()
            .or(self.old_path.as_deref())
            .unwrap_or_default()
    }

    /// `added`, `deleted`, `copied`, `renamed`, `mode` or `modified`.
    pub fn kind(&self) -> &'static str {
        match (&self.old_path, &self.new_path) {
            (None, _) => "added",
            (_, None) => "deleted",
            _ if self.copied => "copied",
            (Some(a), Some(b)) if a != b => "renamed",
            _ if self.old_blob == self.new_blob && self.old_mode != self.new_mode => "mode",
            _ => "modified",
        }
    }

    /// The paths this change reads or writes.
    fn touched(&self) -> impl Iterator<Item = &str> {
        [self.old_path.as_deref(), self.new_path.as_deref()]
            .into_iter()
            .flatten()
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
#[error("the result patch is malformed{}: {message}", line_suffix(*.line))]
pub struct PatchParseError {
    /// 1-based line, 0 when git did not say.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

fn line_suffix(line: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(" at line {line}")
    }
}

impl PatchParseError {
    fn new(line: usize, message: impl Into<String>) -> Self {
        Self {
            line,
            message: message.into(),
        }
    }
}

/// One file section's header fields as the patch writes them.
#[derive(Debug, Default)]
struct Section {
    /// 1-based line of its `diff --git`.
    line: usize,
    git_names: Option<(Vec<u8>, Vec<u8>)>,
    minus: Option<Option<Vec<u8>>>,
    plus: Option<Option<Vec<u8>>>,
    rename_from: Option<Vec<u8>>,
    rename_to: Option<Vec<u8>>,
    copy_from: Option<Vec<u8>>,
    copy_to: Option<Vec<u8>>,
    new_file_mode: Option<String>,
    deleted_file_mode: Option<String>,
    old_mode: Option<String>,
    new_mode: Option<String>,
    index: Option<(String, String, Option<String>)>,
    binary: bool,
}

impl Section {
    fn old_name(&self) -> Option<&[u8]> {
        if self.new_file_mode.is_some() {
            return None;
        }
        self.rename_from
            .as_deref()
            .or(self.copy_from.as_deref())
            .or(self
                .minus
                .as_ref()
                .map(|m| m.as_deref())
                .unwrap_or_else(|| self.git_names.as_ref().map(|(a, _)| a.as_slice())))
    }

    fn new_name(&self) -> Option<&[u8]> {
        if self.deleted_file_mode.is_some() {
            return None;
        }
        self.rename_to
            .as_deref()
            .or(self.copy_to.as_deref())
            .or(self
                .plus
                .as_ref()
                .map(|p| p.as_deref())
                .unwrap_or_else(|| self.git_names.as_ref().map(|(_, b)| b.as_slice())))
    }
}

/// Reads the header fields of every `diff --git` section, one line at a time (hunk bodies are
/// skipped, so memory does not grow with the patch).
fn read_sections(reader: impl BufRead) -> Result<Vec<Section>, PatchParseError> {
    let mut reader = reader;
    let mut sections: Vec<Section> = Vec::new();
    let mut in_header = false;
    let mut buf = Vec::new();
    let mut number = 0usize;
    loop {
        buf.clear();
        let read = read_line_capped(&mut reader, &mut buf)
            .map_err(|e| PatchParseError::new(number, format!("cannot read the patch: {e}")))?;
        if read == 0 {
            break;
        }
        number += 1;
        let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let error = |message: &str| PatchParseError::new(number, message);
        if let Some(rest) = line.strip_prefix(b"diff --git ") {
            sections.push(Section {
                line: number,
                git_names: split_diff_git(rest),
                ..Section::default()
            });
            in_header = true;
            continue;
        }
        let Some(section) = sections.last_mut() else {
            continue;
        };
        if !in_header {
            continue;
        }
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        let path = |bytes: &[u8]| unquote(bytes).ok_or_else(|| error("bad quoted path"));
        if let Some(mode) = line.strip_prefix(b"old mode ") {
            section.old_mode = Some(text(mode));
        } else if let Some(mode) = line.strip_prefix(b"new mode ") {
            section.new_mode = Some(text(mode));
        } else if let Some(mode) = line.strip_prefix(b"deleted file mode ") {
            section.deleted_file_mode = Some(text(mode));
        } else if let Some(mode) = line.strip_prefix(b"new file mode ") {
            section.new_file_mode = Some(text(mode));
        } else if let Some(name) = line.strip_prefix(b"rename from ") {
            section.rename_from = Some(path(name)?);
        } else if let Some(name) = line.strip_prefix(b"rename to ") {
            section.rename_to = Some(path(name)?);
        } else if let Some(name) = line.strip_prefix(b"copy from ") {
            section.copy_from = Some(path(name)?);
        } else if let Some(name) = line.strip_prefix(b"copy to ") {
            section.copy_to = Some(path(name)?);
        } else if let Some(rest) = line.strip_prefix(b"index ") {
            let rest = text(rest);
            let (range, mode) = rest
                .split_once(' ')
                .map_or((rest.as_str(), None), |(r, m)| (r, Some(m.to_string())));
            let (old, new) = range
                .split_once("..")
                .ok_or_else(|| error("bad index line"))?;
            section.index = Some((old.to_string(), new.to_string(), mode));
        } else if let Some(name) = line.strip_prefix(b"--- ") {
            section.minus = Some(header_name(name).map_err(|_| error("bad `---` line"))?);
        } else if let Some(name) = line.strip_prefix(b"+++ ") {
            section.plus = Some(header_name(name).map_err(|_| error("bad `+++` line"))?);
            in_header = false;
        } else if line == b"GIT binary patch" || line.starts_with(b"Binary files ") {
            section.binary = true;
            in_header = false;
        } else if line.starts_with(b"@@") {
            in_header = false;
        }
    }
    Ok(sections)
}

/// The longest line prefix kept: header lines are far shorter; hunk lines (which can be as long as
/// a file) only need their first bytes.
const LINE_CAP: usize = 64 * 1024;

/// Reads one line (with its `\n`) into `buf`, keeping at most [`LINE_CAP`] bytes of it, so memory
/// stays bounded however long the line. Returns the bytes consumed (0 at the end).
fn read_line_capped(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut consumed = 0;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(consumed);
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = LINE_CAP.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..take.min(room)]);
        reader.consume(take);
        consumed += take;
        if done {
            return Ok(consumed);
        }
    }
}

/// A `---`/`+++` name: None for `/dev/null`, else the path without its first component.
fn header_name(name: &[u8]) -> Result<Option<Vec<u8>>, ()> {
    let name = if name.starts_with(b"\"") {
        unquote(name).ok_or(())?
    } else {
        let end = name.iter().position(|&b| b == b'\t').unwrap_or(name.len());
        name[..end].to_vec()
    };
    if name == b"/dev/null" {
        return Ok(None);
    }
    let slash = name.iter().position(|&b| b == b'/').ok_or(())?;
    Ok(Some(name[slash + 1..].to_vec()))
}

/// `a/X b/Y` (possibly quoted) into (X, Y), when git could read it: quoted names, or the same
/// unquoted name twice. Renames and copies name their paths on their own lines.
fn split_diff_git(rest: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let strip = |name: Vec<u8>, prefix: &[u8]| name.strip_prefix(prefix).map(<[u8]>::to_vec);
    if rest.starts_with(b"\"") {
        let (a, remainder) = take_quoted(rest)?;
        let remainder = remainder.strip_prefix(b" ")?;
        let b = if remainder.starts_with(b"\"") {
            take_quoted(remainder)?.0
        } else {
            remainder.to_vec()
        };
        return Some((strip(a, b"a/")?, strip(b, b"b/")?));
    }
    if rest.ends_with(b"\"") {
        let start = rest.windows(2).rposition(|w| w == b" \"")?;
        let b = take_quoted(&rest[start + 1..])?.0;
        return Some((strip(rest[..start].to_vec(), b"a/")?, strip(b, b"b/")?));
    }
    if rest.len().is_multiple_of(2) {
        return None;
    }
    let half = rest.len() / 2;
    let (a, b) = (&rest[..half], &rest[half + 1..]);
    if rest[half] != b' ' {
        return None;
    }
    let (a, b) = (a.strip_prefix(b"a/")?, b.strip_prefix(b"b/")?);
    (a == b).then(|| (a.to_vec(), b.to_vec()))
}

/// Reads a C-quoted string at the start of `s`; returns it and the rest.
fn take_quoted(s: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let body = s.strip_prefix(b"\"")?;
    let mut bytes = Vec::new();
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'"' => return Some((bytes, &body[i + 1..])),
            b'\\' => {
                let e = *body.get(i + 1)?;
                i += 2;
                match e {
                    b'n' => bytes.push(b'\n'),
                    b't' => bytes.push(b'\t'),
                    b'r' => bytes.push(b'\r'),
                    b'a' => bytes.push(7),
                    b'b' => bytes.push(8),
                    b'f' => bytes.push(12),
                    b'v' => bytes.push(11),
                    b'"' => bytes.push(b'"'),
                    b'\\' => bytes.push(b'\\'),
                    b'0'..=b'3' => {
                        let digits = body.get(i..i + 2)?;
                        let mut value = u32::from(e - b'0');
                        for &d in digits {
                            if !(b'0'..=b'7').contains(&d) {
                                return None;
                            }
                            value = value * 8 + u32::from(d - b'0');
                        }
                        bytes.push(u8::try_from(value).ok()?);
                        i += 2;
                    }
                    _ => return None,
                }
            }
            c => {
                bytes.push(c);
                i += 1;
            }
        }
    }
    None
}

/// A path as git prints it: quoted or not.
fn unquote(path: &[u8]) -> Option<Vec<u8>> {
    if path.starts_with(b"\"") {
        take_quoted(path).map(|(p, _)| p)
    } else {
        Some(path.to_vec())
    }
}

/// A `git` command that sees no repository: it runs in `cwd` and may not look above it.
fn bare_git(cwd: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .current_dir(cwd)
        .env("GIT_CEILING_DIRECTORIES", cwd.parent().unwrap_or(cwd))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("LC_ALL", "C")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// One file as `git apply --numstat -z` reports it.
#[derive(Debug)]
struct GitStat {
    added: Option<u64>,
    removed: Option<u64>,
    name: Vec<u8>,
}

/// `git apply --numstat -z [-R] PATCH`, run where no repository is seen.
fn git_numstat(patch: &Path, reverse: bool) -> Result<Vec<GitStat>, ApplyError> {
    let cwd = tempfile::tempdir().map_err(|e| ApplyError::Io {
        context: "creating a scratch directory".into(),
        source: e,
    })?;
    let mut command = bare_git(cwd.path());
    command.args(["apply", "--numstat", "-z"]);
    if reverse {
        command.arg("-R");
    }
    command.arg(patch);
    let output = command.output().map_err(|e| ApplyError::Io {
        context: "running git apply (is git installed?)".into(),
        source: e,
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        let line = stderr
            .split("line ")
            .nth(1)
            .and_then(|rest| {
                rest.split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or(0);
        return Err(PatchParseError::new(line, format!("git cannot read it: {stderr}")).into());
    }
    let mut stats = Vec::new();
    for record in output.stdout.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        let mut fields = record.splitn(3, |&b| b == b'\t');
        let number = |field: Option<&[u8]>| {
            std::str::from_utf8(field.unwrap_or_default())
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
        };
        let added = number(fields.next());
        let removed = number(fields.next());
        let name = fields.next().unwrap_or_default().to_vec();
        stats.push(GitStat {
            added,
            removed,
            name,
        });
    }
    Ok(stats)
}

fn utf8_path(bytes: &[u8], line: usize) -> Result<String, PatchParseError> {
    let path = String::from_utf8(bytes.to_vec()).map_err(|_| {
        PatchParseError::new(
            line,
            format!(
                "path `{}` is not UTF-8",
                String::from_utf8_lossy(bytes).escape_debug()
            ),
        )
    })?;
    let leaves = path.starts_with('/')
        || path.is_empty()
        || path
            .split('/')
            .any(|c| c == ".." || c == "." || c.is_empty());
    if leaves {
        return Err(PatchParseError::new(
            line,
            format!("path `{}` leaves the project", path.escape_debug()),
        ));
    }
    Ok(path)
}

impl ParsedPatch {
    /// Reads a patch held in memory (see [`ParsedPatch::read`]).
    pub fn parse(patch: &[u8]) -> Result<Self, ApplyError> {
        let mut file = tempfile::NamedTempFile::new().map_err(|e| ApplyError::Io {
            context: "writing the patch to a scratch file".into(),
            source: e,
        })?;
        std::io::Write::write_all(&mut file, patch).map_err(|e| ApplyError::Io {
            context: "writing the patch to a scratch file".into(),
            source: e,
        })?;
        Self::read(file.path())
    }

    /// Reads the patch stored at `path` the way git reads it (see the module docs).
    pub fn read(path: &Path) -> Result<Self, ApplyError> {
        let file = std::fs::File::open(path).map_err(|e| ApplyError::Io {
            context: format!("reading {}", path.display()),
            source: e,
        })?;
        let meaningful = {
            let mut reader = std::io::BufReader::new(&file);
            let mut any = false;
            loop {
                let chunk = reader.fill_buf().map_err(|e| ApplyError::Io {
                    context: format!("reading {}", path.display()),
                    source: e,
                })?;
                if chunk.is_empty() {
                    break;
                }
                if chunk.iter().any(|b| !b.is_ascii_whitespace()) {
                    any = true;
                    break;
                }
                let n = chunk.len();
                reader.consume(n);
            }
            any
        };
        if !meaningful {
            return Ok(Self::default());
        }
        let sections = read_sections(std::io::BufReader::new(std::fs::File::open(path).map_err(
            |e| ApplyError::Io {
                context: format!("reading {}", path.display()),
                source: e,
            },
        )?))?;
        let forward = git_numstat(path, false)?;
        // Reversed, git also lists the files in reverse order.
        let mut reverse = git_numstat(path, true)?;
        reverse.reverse();
        if forward.len() != sections.len() || reverse.len() != sections.len() {
            return Err(ApplyError::Ambiguous(format!(
                "git reads {} file(s) in it where its `diff --git` headers name {}",
                forward.len(),
                sections.len()
            )));
        }
        let mut files = Vec::with_capacity(sections.len());
        for ((section, ahead), back) in sections.iter().zip(&forward).zip(&reverse) {
            let (old, new) = (section.old_name(), section.new_name());
            let ours_forward = new.or(old);
            let ours_back = old.or(new);
            if ours_forward != Some(ahead.name.as_slice())
                || ours_back != Some(back.name.as_slice())
            {
                return Err(ApplyError::Ambiguous(format!(
                    "at line {}, git reads `{}` -> `{}` where the headers say `{}` -> `{}`",
                    section.line,
                    String::from_utf8_lossy(&back.name).escape_debug(),
                    String::from_utf8_lossy(&ahead.name).escape_debug(),
                    String::from_utf8_lossy(ours_back.unwrap_or(b"?")).escape_debug(),
                    String::from_utf8_lossy(ours_forward.unwrap_or(b"?")).escape_debug(),
                )));
            }
            let binary = ahead.added.is_none() || section.binary;
            let (old_blob, new_blob, index_mode) = match &section.index {
                Some((o, n, m)) => (
                    (o != NULL_BLOB).then(|| o.clone()),
                    (n != NULL_BLOB).then(|| n.clone()),
                    m.clone(),
                ),
                None => (None, None, None),
            };
            files.push(FileChange {
                old_path: old.map(|p| utf8_path(p, section.line)).transpose()?,
                new_path: new.map(|p| utf8_path(p, section.line)).transpose()?,
                old_blob,
                new_blob,
                old_mode: section
                    .old_mode
                    .clone()
                    .or(section.deleted_file_mode.clone())
                    .or(index_mode.clone()),
                new_mode: section
                    .new_mode
                    .clone()
                    .or(section.new_file_mode.clone())
                    .or(index_mode),
                added: ahead.added.unwrap_or(0),
                removed: ahead.removed.unwrap_or(0),
                binary,
                copied: section.copy_from.is_some(),
            });
        }
        Ok(Self { files })
    }

    /// Every path the patch touches (old and new).
    pub fn paths(&self) -> Vec<&str> {
        let set: BTreeSet<&str> = self.files.iter().flat_map(FileChange::touched).collect();
        set.into_iter().collect()
    }
}

/// Git's blob id of a local file (or symlink), or None when it does not exist.
pub fn local_blob_id(path: &Path) -> std::io::Result<Option<String>> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(20) => return Ok(None), // ENOTDIR: a parent is a file
        Err(e) => return Err(e),
    };
    let mut hasher = Sha1::new();
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path)?
            .into_os_string()
            .into_encoded_bytes();
        hasher.update(format!("blob {}\0", target.len()).as_bytes());
        hasher.update(&target);
    } else if meta.is_dir() {
        return Ok(Some("directory".to_string()));
    } else {
        hasher.update(format!("blob {}\0", meta.len()).as_bytes());
        let mut file = std::fs::File::open(path)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = std::io::Read::read(&mut file, &mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
    }
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

/// Something about a result that looks destructive; such results are held back (not applied)
/// unless the user takes them. Same JSON shape as the run's other warnings
/// (`{"kind", "message", "paths"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// `deletes-most-files`, `patch-too-large`, `symlink-outside`, `ignore-file` or
    /// `agent-config`.
    pub kind: String,
    /// Why it was held back, in words.
    pub message: String,
    /// The files concerned (empty for a rule about the whole patch).
    pub paths: Vec<String>,
}

impl Warning {
    fn new(kind: &str, message: String, path: Option<&str>) -> Self {
        Self {
            kind: kind.to_string(),
            message,
            paths: path.map(str::to_string).into_iter().collect(),
        }
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.paths.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.paths.join(", "), self.message)
        }
    }
}

/// What makes a result look destructive. Config keys under `[apply]` (docs/config.md).
#[derive(Debug, Clone, PartialEq)]
pub struct HoldBackPolicy {
    /// A patch larger than this many bytes is held back.
    pub max_patch_bytes: u64,
    /// Deleting more than this share of the project's files is held back.
    pub max_deleted_share: f64,
    /// Changes to `.gitignore` files are held back.
    pub ignore_files: bool,
    /// Symlinks that point outside the project are held back.
    pub outside_symlinks: bool,
    /// Changes to files that make the user's own tools run code or steer the user's own agents
    /// ([`AGENT_CONFIG_DIRS`], [`AGENT_CONFIG_FILES`]) are held back.
    pub agent_config: bool,
    /// More such files (`apply.agent_config_files`: globs as in `restricted.files`).
    pub agent_config_files: RestrictedFiles,
}

/// Directories (at any depth) whose files configure an agent or editor that runs code or takes
/// instructions on the user's machine: hooks, MCP servers, tasks, rules.
pub const AGENT_CONFIG_DIRS: [&str; 11] = [
    ".codex",
    ".agents",
    ".agent",
    ".claude",
    ".cursor",
    ".gemini",
    ".vscode",
    ".devcontainer",
    ".husky",
    ".windsurf",
    ".continue",
];

/// File names (at any depth) that do the same: MCP server lists, direnv scripts, agent
/// instructions, commit hooks.
pub const AGENT_CONFIG_FILES: [&str; 10] = [
    ".mcp.json",
    ".envrc",
    "agents.md",
    "agents.override.md",
    "claude.md",
    "gemini.md",
    ".cursorrules",
    ".windsurfrules",
    ".pre-commit-config.yaml",
    "copilot-instructions.md",
];

impl HoldBackPolicy {
    /// Whether a project-relative path is agent or tool config (names folded as for protected
    /// paths, so case and invisible characters do not hide one).
    pub fn is_agent_config(&self, path: &str) -> bool {
        let components: Vec<String> = path.split('/').map(fold_name).collect();
        components
            .iter()
            .any(|c| AGENT_CONFIG_DIRS.contains(&c.as_str()))
            || components
                .last()
                .is_some_and(|name| AGENT_CONFIG_FILES.contains(&name.as_str()))
            || self.agent_config_files.is_restricted(path)
    }
}

/// Default of `apply.max_patch_bytes`: 100 MiB.
pub const DEFAULT_MAX_PATCH_BYTES: u64 = 100 * 1024 * 1024;
/// Default of `apply.max_stored_patch_bytes`: 1 GiB.
pub const DEFAULT_MAX_STORED_PATCH_BYTES: u64 = 1 << 30;

/// The most bytes of a result patch retrieved and stored: `apply.max_stored_patch_bytes`, never
/// below `apply.max_patch_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredPatchLimit {
    /// The limit in force.
    pub bytes: u64,
    /// The configured value, when it was below `apply.max_patch_bytes` and so raised to it.
    pub configured: Option<u64>,
}

impl StoredPatchLimit {
    /// A limit as configured (or defaulted), with nothing raised.
    pub fn of(bytes: u64) -> Self {
        Self {
            bytes,
            configured: None,
        }
    }

    /// How an error names it: `1000`, or `10 configured, raised to apply.max_patch_bytes: 1000`.
    pub fn words(&self) -> String {
        match self.configured {
            Some(configured) => format!(
                "{configured} configured, raised to apply.max_patch_bytes: {}",
                self.bytes
            ),
            None => self.bytes.to_string(),
        }
    }
}
/// Default of `apply.max_deleted_share`.
pub const DEFAULT_MAX_DELETED_SHARE: f64 = 0.5;

impl Default for HoldBackPolicy {
    fn default() -> Self {
        Self {
            max_patch_bytes: DEFAULT_MAX_PATCH_BYTES,
            max_deleted_share: DEFAULT_MAX_DELETED_SHARE,
            ignore_files: true,
            outside_symlinks: true,
            agent_config: true,
            agent_config_files: RestrictedFiles::new(Vec::new()).expect("no patterns"),
        }
    }
}

/// Ignore files whose change alters what the next push sends.
pub const IGNORE_FILES: [&str; 1] = [".gitignore"];

fn describe_warnings(warnings: &[Warning]) -> String {
    warnings
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why a patch was not applied. The local tree is untouched in every case but
/// [`ApplyError::RollbackFailed`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// Files changed locally since the push (or exist where the patch creates them).
    #[error("{} conflicting file(s); nothing was applied: {}", .0.len(), describe(.0))]
    Conflicts(Vec<Conflict>),
    /// The patch touches restricted files.
    #[error("the result changes restricted file(s) {}; nothing was applied", .0.join(", "))]
    Restricted(Vec<String>),
    /// The patch touches codex-remote's own state or config: never applied.
    #[error("the result changes codex-remote's own state or config ({}); nothing was applied, and such a result is never applied", .0.join(", "))]
    Protected(Vec<String>),
    /// Git reads the patch differently from its headers: crafted, or corrupt.
    #[error("the result patch says one thing and git reads another; nothing was applied: {0}")]
    Ambiguous(String),
    /// The result looks destructive and was held back.
    #[error("the result was held back; nothing was applied: {}", describe_warnings(.0))]
    HeldBack(Vec<Warning>),
    /// `git apply` refused it.
    #[error("git apply refused the patch; nothing was applied: {0}")]
    Refused(String),
    /// The patch grew past `apply.max_stored_patch_bytes` while it was retrieved: its retrieval
    /// stopped there and nothing of it was kept.
    #[error("the result patch is at least {at_least} bytes, above apply.max_stored_patch_bytes ({}); it was not stored and nothing was applied", StoredPatchLimit { bytes: *.limit, configured: *.configured }.words())]
    NotStored {
        /// Bytes received before the retrieval stopped (the patch is at least this long).
        at_least: u64,
        /// The limit.
        limit: u64,
        /// The `apply.max_stored_patch_bytes` configured, when it was below
        /// `apply.max_patch_bytes` and so raised to it (`limit`).
        configured: Option<u64>,
    },
    /// The patch is malformed.
    #[error(transparent)]
    Parse(#[from] PatchParseError),
    /// Writing the result failed part-way; every change was undone.
    #[error("writing `{path}` failed; every change was undone, nothing was applied")]
    WriteFailed {
        /// The file being written.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Writing failed part-way and undoing it failed too: the tree is not as it was.
    #[error("writing `{path}` failed and undoing it failed too, so these paths may be left changed: {} (their previous versions are in {})", .left.join(", "), .backup.display())]
    RollbackFailed {
        /// The file being written.
        path: String,
        /// The error.
        source: std::io::Error,
        /// Paths that could not be restored.
        left: Vec<String>,
        /// Where the previous versions were kept.
        backup: PathBuf,
    },
    /// Local I/O failed before anything was written.
    #[error("{context}; nothing was applied")]
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

/// A result that was applied (or found empty).
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// The patch as git read it.
    pub patch: ParsedPatch,
    /// What would have held it back, taken because the user said so.
    pub warnings: Vec<Warning>,
    /// Restricted paths left out (`skip_restricted`): their changes stay in the stored patch.
    pub skipped: Vec<String>,
}

/// Applies result patches to a local tree, all or nothing.
#[derive(Debug, Clone)]
pub struct PatchApplier {
    root: PathBuf,
    restricted: RestrictedFiles,
    allow_restricted: bool,
    protected: ProtectedPaths,
    hold_back: HoldBackPolicy,
    allow_held_back: bool,
    skip_restricted: bool,
    project_files: Option<usize>,
}

impl PatchApplier {
    /// An applier for the tree at `root`, with the fixed protected paths and the default
    /// hold-back policy.
    pub fn new(
        root: impl Into<PathBuf>,
        restricted: RestrictedFiles,
        allow_restricted: bool,
    ) -> Self {
        Self {
            root: root.into(),
            restricted,
            allow_restricted,
            protected: ProtectedPaths::default(),
            hold_back: HoldBackPolicy::default(),
            allow_held_back: false,
            skip_restricted: false,
            project_files: None,
        }
    }

    /// Leaves out every change that touches a restricted file and applies the rest (protected
    /// paths still refuse the whole result).
    pub fn skip_restricted(mut self, skip: bool) -> Self {
        self.skip_restricted = skip;
        self
    }

    /// Protects these paths too (config files loaded from the project).
    pub fn protected(mut self, protected: ProtectedPaths) -> Self {
        self.protected = protected;
        self
    }

    /// What counts as destructive, and whether to apply such results anyway.
    pub fn hold_back(mut self, policy: HoldBackPolicy, allow: bool) -> Self {
        self.hold_back = policy;
        self.allow_held_back = allow;
        self
    }

    /// How many files the project has (what a push sends), for the deleted-share rule; without
    /// it the applier counts the files under the root itself.
    pub fn project_files(mut self, count: usize) -> Self {
        self.project_files = Some(count);
        self
    }

    /// Checks the patch against the local tree without writing anything: protected paths,
    /// restricted files, then conflicts.
    pub fn check(&self, patch: &ParsedPatch) -> Result<(), ApplyError> {
        self.check_protected(patch)?;
        let paths = patch.paths();
        if !self.allow_restricted {
            let restricted: Vec<String> = paths
                .iter()
                .filter(|p| self.restricted.is_restricted(p))
                .map(|p| p.to_string())
                .collect();
            if !restricted.is_empty() {
                return Err(ApplyError::Restricted(restricted));
            }
        }
        let blob = |path: &str| {
            local_blob_id(&self.root.join(path)).map_err(|e| ApplyError::Io {
                context: format!("reading {path}"),
                source: e,
            })
        };
        let olds: BTreeSet<&str> = patch
            .files
            .iter()
            .filter_map(|f| f.old_path.as_deref())
            .collect();
        // Without the full preimage id a content change cannot be checked against local edits
        // (our retrieval always writes it: `--full-index`), so such a patch is not applied.
        if let Some(file) = patch.files.iter().find(|f| {
            f.old_path.is_some()
                && (f.added > 0 || f.removed > 0 || f.binary)
                && !f.old_blob.as_deref().is_some_and(is_full_blob_id)
        }) {
            return Err(PatchParseError::new(
                0,
                format!(
                    "`{}` changes content without its full preimage blob id (an `index` line with 40 hex digits), so it cannot be checked against local edits",
                    file.old_path.as_deref().unwrap_or_default().escape_debug()
                ),
            )
            .into());
        }
        let mut conflicts = Vec::new();
        for path in &paths {
            if let Some(link) = self.symlinked_parent(path) {
                conflicts.push(Conflict {
                    path: path.to_string(),
                    reason: format!("`{link}` is a symlink locally"),
                });
            }
        }
        for file in &patch.files {
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
                if !olds.contains(new.as_str()) && blob(new)?.is_some() {
                    conflicts.push(Conflict {
                        path: new.clone(),
                        reason: "created locally since the push".into(),
                    });
                }
            }
        }
        conflicts.dedup();
        if conflicts.is_empty() {
            Ok(())
        } else {
            Err(ApplyError::Conflicts(conflicts))
        }
    }

    fn check_protected(&self, patch: &ParsedPatch) -> Result<(), ApplyError> {
        let protected: Vec<String> = patch
            .paths()
            .into_iter()
            .filter(|p| self.protected.is_protected(p))
            .map(str::to_string)
            .collect();
        if protected.is_empty() {
            Ok(())
        } else {
            Err(ApplyError::Protected(protected))
        }
    }

    /// Whether a change keeping a file (under its name or another) wipes its contents: the new
    /// version is empty while the local one is not, or a rename removes every line.
    fn wipes(&self, change: &FileChange, old: &str, new: &str, tree: &Path) -> bool {
        let Ok(before) = std::fs::symlink_metadata(self.root.join(old)) else {
            return false;
        };
        if !before.is_file() || before.len() == 0 {
            return false;
        }
        let emptied = std::fs::symlink_metadata(tree.join(new))
            .is_ok_and(|after| after.is_file() && after.len() == 0);
        let renamed_away = old != new
            && !change.binary
            && change.removed > 0
            && std::fs::read(self.root.join(old)).is_ok_and(|bytes| {
                let lines = bytes.iter().filter(|&&b| b == b'\n').count() as u64
                    + u64::from(!bytes.ends_with(b"\n"));
                change.removed >= lines
            });
        emptied || renamed_away
    }

    /// Where a symlink at `path` pointing at `target` leads, project-relative, in the tree as it
    /// will be once the patch is applied; None when it leaves the project or when a component
    /// on the way is itself a symlink (locally, or as the patch makes it), so where it leads
    /// cannot be known from the names alone (`d -> .` makes `d/d/../../..` climb out).
    fn resolve_link(
        &self,
        path: &str,
        target: &Path,
        patch: &ParsedPatch,
        post: &BTreeSet<&str>,
        tree: &Path,
    ) -> Option<String> {
        let touched: BTreeSet<&str> = patch.files.iter().flat_map(FileChange::touched).collect();
        let is_link = |prefix: &str| {
            let place = if touched.contains(prefix) {
                if !post.contains(prefix) {
                    return false;
                }
                tree.join(prefix)
            } else {
                self.root.join(prefix)
            };
            std::fs::symlink_metadata(place).is_ok_and(|m| m.file_type().is_symlink())
        };
        let mut stack: Vec<String> = path.split('/').map(str::to_string).collect();
        stack.pop();
        for component in target.components() {
            match component {
                std::path::Component::CurDir => {}
                std::path::Component::ParentDir => {
                    stack.pop()?;
                }
                std::path::Component::Normal(name) => {
                    stack.push(name.to_str()?.to_string());
                    if is_link(&stack.join("/")) {
                        return None;
                    }
                }
                _ => return None,
            }
        }
        Some(stack.join("/"))
    }

    /// Symlinks the result makes whose target is protected (tool state or config): refused like
    /// a protected path, since writing or ticking through them would change that state.
    fn check_link_targets(
        &self,
        patch: &ParsedPatch,
        post: &BTreeSet<&str>,
        tree: &Path,
    ) -> Result<(), ApplyError> {
        let mut protected = Vec::new();
        for path in post {
            let Ok(target) = std::fs::read_link(tree.join(path)) else {
                continue;
            };
            let lexical = target.to_string_lossy();
            let resolved = self.resolve_link(path, &target, patch, post, tree);
            if self.protected.is_protected(&lexical)
                || resolved.is_some_and(|r| !r.is_empty() && self.protected.is_protected(&r))
            {
                protected.push(format!("{path} -> {lexical}"));
            }
        }
        if protected.is_empty() {
            Ok(())
        } else {
            Err(ApplyError::Protected(protected))
        }
    }

    /// The first ancestor of `path` (inside the root) that is a symlink locally.
    fn symlinked_parent(&self, path: &str) -> Option<String> {
        let mut prefix = PathBuf::new();
        let components: Vec<&str> = path.split('/').collect();
        for component in &components[..components.len().saturating_sub(1)] {
            prefix.push(component);
            match std::fs::symlink_metadata(self.root.join(&prefix)) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Some(prefix.to_string_lossy().into_owned())
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }

    /// Checks, then applies a patch held in memory. On any error the tree is untouched.
    #[cfg_attr(not(feature = "test-internals"), allow(dead_code))] // for tests and benches
    pub fn apply(&self, patch_bytes: &[u8]) -> Result<Applied, ApplyError> {
        let mut file = tempfile::NamedTempFile::new().map_err(|e| ApplyError::Io {
            context: "writing the patch to a scratch file".into(),
            source: e,
        })?;
        std::io::Write::write_all(&mut file, patch_bytes).map_err(|e| ApplyError::Io {
            context: "writing the patch to a scratch file".into(),
            source: e,
        })?;
        self.apply_file(file.path())
    }

    /// Checks, then applies the patch stored at `patch_path`. On any error the tree is
    /// untouched (unless undoing a failed write failed too: [`ApplyError::RollbackFailed`]).
    pub fn apply_file(&self, patch_path: &Path) -> Result<Applied, ApplyError> {
        // Held back before git reads it: git holds a whole patch in memory.
        let size = std::fs::metadata(patch_path).map(|m| m.len()).unwrap_or(0);
        if size > self.hold_back.max_patch_bytes && !self.allow_held_back {
            return Err(ApplyError::HeldBack(vec![too_large(
                size,
                self.hold_back.max_patch_bytes,
            )]));
        }
        let full = ParsedPatch::read(patch_path)?;
        self.check_protected(&full)?;
        let (kept, left_out): (Vec<FileChange>, Vec<FileChange>) =
            full.files.iter().cloned().partition(|f| {
                !self.skip_restricted || !f.touched().any(|p| self.restricted.is_restricted(p))
            });
        let skipped: Vec<String> = ParsedPatch {
            files: left_out.clone(),
        }
        .paths()
        .into_iter()
        .map(str::to_string)
        .collect();
        let patch = ParsedPatch { files: kept };
        if patch.files.is_empty() {
            return Ok(Applied {
                patch: full,
                warnings: Vec::new(),
                skipped,
            });
        }
        self.check(&patch)?;
        let scratch = self.scratch_dir()?;
        let tree = scratch.path().join("tree");
        let io = |context: String| move |source| ApplyError::Io { context, source };
        std::fs::create_dir(&tree).map_err(io("creating a scratch directory".into()))?;
        let olds: BTreeSet<&str> = patch
            .files
            .iter()
            .filter_map(|f| f.old_path.as_deref())
            .collect();
        for old in &olds {
            copy_entry(&self.root.join(old), &tree.join(old))
                .map_err(io(format!("copying {old} to a scratch directory")))?;
        }
        // What git works on must still be what was pushed (the user may have saved a file since
        // the check), and what is later moved aside must be exactly what git worked on.
        let mut preimages = std::collections::BTreeMap::new();
        for old in &olds {
            let blob =
                local_blob_id(&tree.join(old)).map_err(io(format!("reading the copy of {old}")))?;
            preimages.insert(old.to_string(), blob);
        }
        let changed: Vec<Conflict> = patch
            .files
            .iter()
            .filter_map(|f| Some((f.old_path.as_deref()?, f.old_blob.as_deref()?)))
            .filter(|(old, blob)| preimages.get(*old).cloned().flatten().as_deref() != Some(*blob))
            .map(|(old, _)| Conflict {
                path: old.to_string(),
                reason: "changed locally while applying".into(),
            })
            .collect();
        if !changed.is_empty() {
            return Err(ApplyError::Conflicts(changed));
        }
        let mut command = bare_git(&tree);
        command.args(["apply", "--binary", "--whitespace=nowarn"]);
        // git filters by the name it reads (the new one, else the old one), as a wildmatch
        // pattern: escaped, so it matches that name only. What git then writes is checked
        // against the kept files below.
        for change in &left_out {
            command.arg(format!("--exclude={}", wildmatch_literal(change.path())));
        }
        command.arg(patch_path);
        let output = command
            .output()
            .map_err(io("running git apply (is git installed?)".into()))?;
        if !output.status.success() {
            return Err(ApplyError::Refused(
                String::from_utf8_lossy(&output.stderr).trim().to_string(),
            ));
        }
        let paths: BTreeSet<&str> = patch.paths().into_iter().collect();
        let mut written = Vec::new();
        list_entries(&tree, &tree, &mut written)
            .map_err(io("reading the scratch result".into()))?;
        if let Some(stray) = written.iter().find(|p| !paths.contains(p.as_str())) {
            return Err(ApplyError::Ambiguous(format!(
                "git wrote `{stray}`, which the patch does not list"
            )));
        }
        let post: BTreeSet<&str> = written
            .iter()
            .filter_map(|w| paths.get(w.as_str()).copied())
            .collect();
        self.check_link_targets(&patch, &post, &tree)?;
        let warnings = self.warnings(&patch, &post, &tree, size);
        if !warnings.is_empty() && !self.allow_held_back {
            return Err(ApplyError::HeldBack(warnings));
        }
        let mut transaction = Transaction {
            root: &self.root,
            tree: &tree,
            backup: scratch.path().join("backup"),
            preimages: &preimages,
            moved_aside: Vec::new(),
            placed: Vec::new(),
            created_dirs: Vec::new(),
        };
        let displaced: Vec<&str> = olds.iter().copied().collect();
        let placed: Vec<&str> = post.iter().copied().collect();
        if let Err(failure) = transaction.run(&displaced, &placed) {
            let left = transaction.undo();
            let (path, source) = match failure {
                StepFailure::Changed(path) if left.is_empty() => {
                    return Err(ApplyError::Conflicts(vec![Conflict {
                        path,
                        reason: "changed locally while applying".into(),
                    }]))
                }
                StepFailure::Changed(path) => {
                    let e = std::io::Error::other("it changed locally while applying");
                    (path, e)
                }
                StepFailure::Io(path, e) => (path, e),
            };
            if left.is_empty() {
                return Err(ApplyError::WriteFailed { path, source });
            }
            // Keep the previous versions where the message says they are.
            let backup = scratch.keep();
            return Err(ApplyError::RollbackFailed {
                path,
                source,
                left,
                backup: backup.join("backup"),
            });
        }
        // Like git: directories emptied by deletions go too.
        for old in olds.iter().filter(|o| !post.contains(*o)) {
            let mut dir = Path::new(old).parent();
            while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
                if std::fs::remove_dir(self.root.join(d)).is_err() {
                    break;
                }
                dir = d.parent();
            }
        }
        drop(scratch);
        // The scratch area goes when it is empty (another apply may be using it).
        let _ = std::fs::remove_dir(self.root.join(".codex-remote").join("tmp"));
        Ok(Applied {
            patch: full,
            warnings,
            skipped,
        })
    }

    /// A scratch directory on the project's file system when possible (so results are moved,
    /// not copied, into place), else in the system's temporary directory.
    fn scratch_dir(&self) -> Result<tempfile::TempDir, ApplyError> {
        let local = self.root.join(".codex-remote").join("tmp");
        if std::fs::create_dir_all(&local).is_ok() {
            if let Ok(dir) = tempfile::Builder::new().prefix("apply-").tempdir_in(&local) {
                return Ok(dir);
            }
        }
        tempfile::Builder::new()
            .prefix("codex-remote-apply-")
            .tempdir()
            .map_err(|e| ApplyError::Io {
                context: "creating a scratch directory".into(),
                source: e,
            })
    }

    fn warnings(
        &self,
        patch: &ParsedPatch,
        post: &BTreeSet<&str>,
        tree: &Path,
        size: u64,
    ) -> Vec<Warning> {
        let policy = &self.hold_back;
        let mut warnings = Vec::new();
        if size > policy.max_patch_bytes {
            warnings.push(too_large(size, policy.max_patch_bytes));
        }
        // A file emptied, or renamed with every line removed (`mv a trash/a` with 0% similarity),
        // is as gone as a deleted one.
        let deleted = patch
            .files
            .iter()
            .filter(|f| !f.copied)
            .filter_map(|f| Some((f, f.old_path.as_deref()?)))
            .filter(|(f, old)| match f.new_path.as_deref() {
                None => !post.contains(old),
                Some(new) => self.wipes(f, old, new, tree),
            })
            .count();
        let total = self
            .project_files
            .unwrap_or_else(|| count_files(&self.root));
        if deleted > 1 && (deleted as f64) > policy.max_deleted_share * (total.max(1) as f64) {
            warnings.push(Warning::new(
                "deletes-most-files",
                format!(
                    "it deletes {deleted} of the project's {total} files, more than apply.max_deleted_share ({})",
                    policy.max_deleted_share
                ),
                None,
            ));
        }
        for path in patch.paths() {
            let name = path.rsplit('/').next().unwrap_or(path);
            if policy.ignore_files && IGNORE_FILES.contains(&name) {
                warnings.push(Warning::new(
                    "ignore-file",
                    "it changes what the next push leaves out (secrets listed there would be sent to the host)".into(),
                    Some(path),
                ));
            }
            if policy.agent_config && policy.is_agent_config(path) {
                warnings.push(Warning::new(
                    "agent-config",
                    "it changes config that makes the user's own tools run code or steers the user's own agents".into(),
                    Some(path),
                ));
            }
            if policy.outside_symlinks && post.contains(path) {
                if let Ok(target) = std::fs::read_link(tree.join(path)) {
                    if self
                        .resolve_link(path, &target, patch, post, tree)
                        .is_none()
                    {
                        warnings.push(Warning::new(
                            "symlink-outside",
                            format!(
                                "a symlink to `{}`, outside the project (or through another symlink, so where it leads cannot be known)",
                                target.display()
                            ),
                            Some(path),
                        ));
                    }
                }
            }
        }
        warnings
    }
}

fn too_large(size: u64, limit: u64) -> Warning {
    Warning::new(
        "patch-too-large",
        format!("the patch is {size} bytes, above apply.max_patch_bytes ({limit})"),
        None,
    )
}

/// A wildmatch pattern matching exactly `path`.
fn wildmatch_literal(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whether `id` is a full (40 hex digit) git blob id.
fn is_full_blob_id(id: &str) -> bool {
    id.len() == 40 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Files under `root`, `.git` and `.codex-remote` left out (used when the caller gave no count).
fn count_files(root: &Path) -> usize {
    let mut files = Vec::new();
    let _ = list_entries(root, root, &mut files);
    files.len()
}

/// Every non-directory entry under `dir`, as `/`-separated paths relative to `base`.
fn list_entries(base: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if path
            .file_name()
            .is_some_and(|n| n == ".git" || n == ".codex-remote")
            && dir == base
        {
            continue;
        }
        if entry.file_type()?.is_dir() {
            list_entries(base, &path, out)?;
        } else {
            let relative = path.strip_prefix(base).unwrap_or(&path);
            out.push(
                relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/"),
            );
        }
    }
    Ok(())
}

/// Copies a file or symlink (never following it), creating parents, keeping the mode.
fn copy_entry(from: &Path, to: &Path) -> std::io::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let meta = std::fs::symlink_metadata(from)?;
    if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(from)?, to)
    } else {
        std::fs::copy(from, to).map(|_| ())
    }
}

/// Moves `from` to `to`; across file systems, copies to a temporary name beside `to` and
/// renames that, so `to` appears whole or not at all.
fn move_entry(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.raw_os_error() == Some(18) => {
            // EXDEV
            let parent = to.parent().unwrap_or(Path::new("."));
            let name = to.file_name().unwrap_or_default().to_string_lossy();
            let temporary = parent.join(format!(".{name}.codex-remote-{}", std::process::id()));
            let copied = copy_entry(from, &temporary).and_then(|()| {
                std::fs::rename(&temporary, to)?;
                std::fs::remove_file(from)
            });
            if copied.is_err() {
                let _ = std::fs::remove_file(&temporary);
            }
            copied
        }
        other => other,
    }
}

/// The first of `dir` and its ancestors below `root` that is a symlink.
fn symlink_ancestor(root: &Path, dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .take_while(|d| *d != root && d.starts_with(root))
        .find(|d| std::fs::symlink_metadata(d).is_ok_and(|m| m.file_type().is_symlink()))
        .map(Path::to_path_buf)
}

/// Why a step of the transaction failed.
enum StepFailure {
    /// Writing this path failed.
    Io(String, std::io::Error),
    /// This path changed locally after git worked on its copy.
    Changed(String),
}

/// The steps of moving post-images into the tree, remembered so they can be undone.
struct Transaction<'a> {
    root: &'a Path,
    tree: &'a Path,
    backup: PathBuf,
    /// The blob id of each displaced path as git worked on it.
    preimages: &'a std::collections::BTreeMap<String, Option<String>>,
    /// Paths moved from the tree to the backup.
    moved_aside: Vec<String>,
    /// Paths moved from the scratch result into the tree.
    placed: Vec<String>,
    /// Directories created in the tree, in creation order.
    created_dirs: Vec<PathBuf>,
}

impl Transaction<'_> {
    /// Moves every displaced path aside, then every post-image into place.
    fn run(&mut self, displaced: &[&str], placed: &[&str]) -> Result<(), StepFailure> {
        for path in displaced {
            let aside = self.backup.join(path);
            if let Some(parent) = aside.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| StepFailure::Io(path.to_string(), e))?;
            }
            move_entry(&self.root.join(path), &aside)
                .map_err(|e| StepFailure::Io(path.to_string(), e))?;
            self.moved_aside.push(path.to_string());
            // Saved over since the copy was taken: not ours to replace.
            let now = local_blob_id(&aside).map_err(|e| StepFailure::Io(path.to_string(), e))?;
            if self.preimages.get(*path) != Some(&now) {
                return Err(StepFailure::Changed(path.to_string()));
            }
        }
        for path in placed {
            let target = self.root.join(path);
            let mut missing = Vec::new();
            let mut dir = target.parent();
            while let Some(d) = dir.filter(|d| *d != self.root) {
                if std::fs::symlink_metadata(d).is_ok() {
                    break;
                }
                missing.push(d.to_path_buf());
                dir = d.parent();
            }
            // Never through a symlink, whoever made it (git refuses too; this holds whatever git
            // did).
            if let Some(link) = dir.and_then(|d| symlink_ancestor(self.root, d)) {
                return Err(StepFailure::Io(
                    path.to_string(),
                    std::io::Error::other(format!("`{}` is a symlink", link.display())),
                ));
            }
            for d in missing.into_iter().rev() {
                std::fs::create_dir(&d).map_err(|e| StepFailure::Io(path.to_string(), e))?;
                self.created_dirs.push(d);
            }
            move_entry(&self.tree.join(path), &target)
                .map_err(|e| StepFailure::Io(path.to_string(), e))?;
            self.placed.push(path.to_string());
        }
        Ok(())
    }

    /// Undoes every step taken, newest first; returns the paths it could not restore.
    fn undo(&mut self) -> Vec<String> {
        let mut left = Vec::new();
        for path in self.placed.drain(..).rev() {
            let back = self.tree.join(&path);
            if move_entry(&self.root.join(&path), &back).is_err() {
                left.push(path);
            }
        }
        for dir in self.created_dirs.drain(..).rev() {
            if std::fs::remove_dir(&dir).is_err() {
                left.push(dir.display().to_string());
            }
        }
        for path in self.moved_aside.drain(..).rev() {
            if move_entry(&self.backup.join(&path), &self.root.join(&path)).is_err() {
                left.push(path);
            }
        }
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquotes_c_style_paths() {
        assert_eq!(
            take_quoted(br#""a/sp ace \"q\" \303\274\n" rest"#),
            Some((
                "a/sp ace \"q\" ü\n".as_bytes().to_vec(),
                b" rest".as_slice()
            ))
        );
    }

    #[test]
    fn splits_diff_git_lines_git_can_read() {
        assert_eq!(
            split_diff_git(b"a/x y b/x y"),
            Some((b"x y".to_vec(), b"x y".to_vec()))
        );
        assert_eq!(
            split_diff_git(br#""a/q\"" "b/q\"""#),
            Some((b"q\"".to_vec(), b"q\"".to_vec()))
        );
        // Different unquoted names are ambiguous; renames carry their own lines.
        assert_eq!(split_diff_git(b"a/src/tax.js b/src/taxes.js"), None);
    }

    #[test]
    fn long_lines_are_read_whole_but_kept_short() {
        let long = vec![b'+'; LINE_CAP * 3];
        let mut text = long.clone();
        text.extend_from_slice(b"\ndiff --git a/x b/x\n");
        let mut reader = std::io::BufReader::with_capacity(1000, text.as_slice());
        let mut buf = Vec::new();
        assert_eq!(
            read_line_capped(&mut reader, &mut buf).unwrap(),
            long.len() + 1
        );
        assert_eq!(buf.len(), LINE_CAP);
        buf.clear();
        read_line_capped(&mut reader, &mut buf).unwrap();
        assert_eq!(buf, b"diff --git a/x b/x\n");
        buf.clear();
        assert_eq!(read_line_capped(&mut reader, &mut buf).unwrap(), 0);
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
