//! Ticking a markdown checklist item when a run's result lands:
//! `- [ ] Auth module migration` becomes
//! `- [x] Auth module migration ← Completed via Codex (run <id>)`.
//!
//! Matching is exact on the item's text (ignoring surrounding whitespace and the checkbox).
//! Lines inside fenced code blocks are never touched. Exactly one open item must match; none or
//! several is an error listing the candidates, and nothing is written. The file is rewritten
//! atomically with every other byte unchanged (line endings, final newline, unicode).
//!
//! A run's spec ([`mark_checkpoint_in`]) must be inside the project: a path with `..` or an
//! absolute path leading out, or a symlink resolving outside, is refused. A spec that is a
//! symlink stays one: the tick is written atomically to the file it points to.

use std::path::{Path, PathBuf};

use crate::atomic::write_atomic;

/// What marking did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointOutcome {
    /// The item was ticked (1-based line).
    Marked {
        /// The line.
        line: usize,
    },
    /// It was ticked already; nothing changed.
    AlreadyDone {
        /// The line.
        line: usize,
    },
}

/// Why an item could not be ticked. The file is untouched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// No checklist item has that text.
    #[error("{file}: no checklist item reads `{item}`{}", candidates_text(.candidates))]
    NoMatch {
        /// The spec file.
        file: String,
        /// The text looked for.
        item: String,
        /// Open items, for the user to pick from.
        candidates: Vec<String>,
    },
    /// Several open items have that text.
    #[error("{file}: {} open checklist items read `{item}` (lines {}); make the text unique", .lines.len(), .lines.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(", "))]
    Ambiguous {
        /// The spec file.
        file: String,
        /// The text.
        item: String,
        /// Their lines.
        lines: Vec<usize>,
    },
    /// The spec is not inside the project.
    #[error("the checkpoint file `{file}` is outside the project {}{how}", .root.display())]
    OutsideProject {
        /// The spec file as given.
        file: String,
        /// The project root.
        root: PathBuf,
        /// How it leaves: `` or ` through a symlink`.
        how: &'static str,
    },
    /// The file could not be read or written.
    #[error("{file}")]
    Io {
        /// The spec file.
        file: String,
        /// The error.
        source: std::io::Error,
    },
}

fn candidates_text(candidates: &[String]) -> String {
    if candidates.is_empty() {
        "; the file has no open checklist items".to_string()
    } else {
        format!(
            "; open items: {}",
            candidates
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// A checklist line, split around its checkbox.
struct ChecklistLine<'a> {
    /// Everything up to and including `[`.
    before: &'a str,
    /// ` `, `x` or `X`.
    mark: char,
    /// Everything after `]`, without the line ending.
    after: &'a str,
}

fn parse_checklist_line(line: &str) -> Option<ChecklistLine<'_>> {
    let indent = line.len() - line.trim_start().len();
    let rest = &line[indent..];
    let bullet = rest.chars().next()?;
    let rest = if matches!(bullet, '-' | '*' | '+') {
        rest[1..].strip_prefix(' ')?
    } else {
        // Ordered lists: `1. [ ] item` / `1) [ ] item`.
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest[digits..].strip_prefix(['.', ')'])?.strip_prefix(' ')?
    };
    let rest_start = line.len() - rest.len();
    let mut chars = rest.chars();
    if chars.next()? != '[' {
        return None;
    }
    let mark = chars.next()?;
    if !matches!(mark, ' ' | 'x' | 'X') || chars.next()? != ']' {
        return None;
    }
    let after = &rest[3..];
    if !(after.is_empty() || after.starts_with(' ')) {
        return None;
    }
    Some(ChecklistLine {
        before: &line[..rest_start + 1],
        mark,
        after,
    })
}

/// The item's text: after the checkbox, trimmed, without a previous completion note.
fn item_text(after: &str) -> &str {
    let text = after.trim();
    text.split(" ← Completed via Codex")
        .next()
        .unwrap_or(text)
        .trim()
}

/// Ticks `item` in the markdown text; returns the new text and what happened.
pub fn mark_in_text(
    text: &str,
    file: &str,
    item: &str,
    run_id: Option<&str>,
) -> Result<(String, CheckpointOutcome), CheckpointError> {
    let wanted = item.trim();
    let mut open = Vec::new();
    let mut done = None;
    let mut candidates = Vec::new();
    let mut fence: Option<String> = None;
    let mut offset = 0;
    for (index, raw) in text.split_inclusive('\n').enumerate() {
        let line = raw.trim_end_matches(['\n', '\r']);
        let trimmed = line.trim_start();
        let fence_marker: String = trimmed
            .chars()
            .take_while(|c| *c == '`' || *c == '~')
            .collect();
        if fence_marker.len() >= 3
            && fence_marker
                .chars()
                .all(|c| c == fence_marker.chars().next().unwrap())
        {
            match &fence {
                None => fence = Some(fence_marker),
                Some(open_fence)
                    if fence_marker.starts_with(open_fence.as_str())
                        && trimmed[fence_marker.len()..].trim().is_empty() =>
                {
                    fence = None
                }
                Some(_) => {}
            }
        } else if fence.is_none() {
            if let Some(parsed) = parse_checklist_line(line) {
                let text_here = item_text(parsed.after);
                if parsed.mark == ' ' {
                    candidates.push(text_here.to_string());
                    if text_here == wanted {
                        open.push((index + 1, offset, parsed.before.len(), line.len()));
                    }
                } else if text_here == wanted && done.is_none() {
                    done = Some(index + 1);
                }
            }
        }
        offset += raw.len();
    }
    match open.as_slice() {
        [] => match done {
            Some(line) => Ok((text.to_string(), CheckpointOutcome::AlreadyDone { line })),
            None => Err(CheckpointError::NoMatch {
                file: file.to_string(),
                item: wanted.to_string(),
                candidates,
            }),
        },
        [(line, start, mark_at, len)] => {
            let mut out = String::with_capacity(text.len() + 64);
            out.push_str(&text[..start + mark_at]);
            out.push('x');
            out.push_str(text[start + mark_at + 1..start + len].trim_end());
            match run_id {
                Some(run_id) => out.push_str(&format!(" ← Completed via Codex (run {run_id})")),
                None => out.push_str(" ← Completed via Codex"),
            }
            // Trailing spaces of the line are dropped before the note; the line ending stays.
            out.push_str(&text[start + len..]);
            Ok((out, CheckpointOutcome::Marked { line: *line }))
        }
        many => Err(CheckpointError::Ambiguous {
            file: file.to_string(),
            item: wanted.to_string(),
            lines: many.iter().map(|m| m.0).collect(),
        }),
    }
}

/// The spec `file` of a run (relative to the project `root`, or absolute) as the real path it
/// names, refused unless that is inside the project, symlinks resolved.
pub fn spec_in_project(root: &Path, file: &str) -> Result<PathBuf, CheckpointError> {
    let outside = |how| CheckpointError::OutsideProject {
        file: file.to_string(),
        root: root.to_path_buf(),
        how,
    };
    let io = |source| CheckpointError::Io {
        file: file.to_string(),
        source,
    };
    let joined = root.join(file);
    // Lexically first, so `../x.md` is refused whether or not it exists.
    let mut depth: Vec<&std::ffi::OsStr> = Vec::new();
    let relative = joined.strip_prefix(root).map_err(|_| outside(""))?;
    for component in relative.components() {
        match component {
            std::path::Component::Normal(part) => depth.push(part),
            std::path::Component::ParentDir if depth.pop().is_some() => {}
            std::path::Component::CurDir => {}
            _ => return Err(outside("")),
        }
    }
    let real_root = root.canonicalize().map_err(io)?;
    let real = joined.canonicalize().map_err(io)?;
    if !real.starts_with(&real_root) {
        return Err(outside(" through a symlink"));
    }
    Ok(real)
}

/// Ticks `item` in the run's spec `file`, which must be inside the project at `root` (see
/// [`spec_in_project`]).
pub fn mark_checkpoint_in(
    root: &Path,
    file: &str,
    item: &str,
    run_id: Option<&str>,
) -> Result<CheckpointOutcome, CheckpointError> {
    spec_in_project(root, file)?;
    mark_checkpoint(&root.join(file), item, run_id)
}

/// Ticks `item` in the spec file at `path`, atomically. A symlink is followed: the file it
/// points to is rewritten and the link stays a link.
pub fn mark_checkpoint(
    path: &Path,
    item: &str,
    run_id: Option<&str>,
) -> Result<CheckpointOutcome, CheckpointError> {
    let file = path.display().to_string();
    let target = if path.is_symlink() {
        path.canonicalize().map_err(|source| CheckpointError::Io {
            file: file.clone(),
            source,
        })?
    } else {
        path.to_path_buf()
    };
    let path = target.as_path();
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
        file: file.clone(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| CheckpointError::Io {
        file: file.clone(),
        source: std::io::Error::other(format!("not utf-8 text: {e}")),
    })?;
    let (new_text, outcome) = mark_in_text(&text, &file, item, run_id)?;
    if matches!(outcome, CheckpointOutcome::Marked { .. }) {
        write_atomic(path, new_text.as_bytes())
            .map_err(|source| CheckpointError::Io { file, source })?;
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(text: &str, item: &str) -> Result<(String, CheckpointOutcome), CheckpointError> {
        mark_in_text(text, "SPEC.md", item, Some("r1"))
    }

    #[test]
    fn ticks_the_item_and_keeps_everything_else() {
        let text = "# Spec\r\n\r\n## Checkpoints\r\n- [ ] Auth module migration\r\n- [ ] Tests ✓\r\n  - [ ] nested item\r\n";
        let (out, outcome) = mark(text, "  Auth module migration ").unwrap();
        assert_eq!(outcome, CheckpointOutcome::Marked { line: 4 });
        assert_eq!(out, "# Spec\r\n\r\n## Checkpoints\r\n- [x] Auth module migration ← Completed via Codex (run r1)\r\n- [ ] Tests ✓\r\n  - [ ] nested item\r\n");
        let (out, _) = mark(text, "nested item").unwrap();
        assert!(out.contains("  - [x] nested item ← Completed via Codex (run r1)\r\n"));
    }

    #[test]
    fn no_trailing_newline_stays_so() {
        let (out, _) = mark("* [ ] last", "last").unwrap();
        assert_eq!(out, "* [x] last ← Completed via Codex (run r1)");
    }

    #[test]
    fn code_blocks_are_not_checklists() {
        let text = "```markdown\n- [ ] Auth\n```\n~~~\n- [ ] Auth\n~~~\n- [ ] Auth\n";
        let (out, outcome) = mark(text, "Auth").unwrap();
        assert_eq!(outcome, CheckpointOutcome::Marked { line: 7 });
        assert!(out.starts_with("```markdown\n- [ ] Auth\n```\n~~~\n- [ ] Auth\n~~~\n- [x] Auth"));
    }

    #[test]
    fn no_match_and_ambiguity_list_candidates() {
        match mark("- [ ] Alpha\n- [ ] Beta\n", "Gamma") {
            Err(e @ CheckpointError::NoMatch { .. }) => {
                assert!(e.to_string().contains("`Alpha`, `Beta`"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        match mark("- [ ] Alpha\n1. [ ] Alpha\n", "Alpha") {
            Err(CheckpointError::Ambiguous { lines, .. }) => assert_eq!(lines, vec![1, 2]),
            other => panic!("{other:?}"),
        }
        assert!(
            mark("- [ ] Alpha beta\n", "Alpha").is_err(),
            "matching is exact, not a prefix"
        );
    }

    #[test]
    fn already_ticked_is_no_change() {
        let text = "- [x] Auth ← Completed via Codex (run r0)\n";
        assert_eq!(
            mark(text, "Auth").unwrap(),
            (text.to_string(), CheckpointOutcome::AlreadyDone { line: 1 })
        );
        assert_eq!(
            mark("- [X] Auth\n", "Auth").unwrap().1,
            CheckpointOutcome::AlreadyDone { line: 1 }
        );
    }

    #[test]
    fn specs_outside_the_project_are_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("app");
        std::fs::create_dir_all(root.join("docs")).unwrap();
        let outside = dir.path().join("x.md");
        std::fs::write(&outside, "- [ ] Auth\n").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("docs/escape.md")).unwrap();
        std::os::unix::fs::symlink("../x.md", root.join("relative-escape.md")).unwrap();
        for file in [
            "../x.md".to_string(),
            "docs/../../x.md".to_string(),
            outside.display().to_string(),
            "docs/escape.md".to_string(),
            "relative-escape.md".to_string(),
        ] {
            let e = mark_checkpoint_in(&root, &file, "Auth", Some("r1")).unwrap_err();
            assert!(
                matches!(e, CheckpointError::OutsideProject { .. }),
                "{file}: {e}"
            );
        }
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "- [ ] Auth\n");
        // Inside is fine, however it is written.
        std::fs::write(root.join("docs/SPEC.md"), "- [ ] Auth\n").unwrap();
        for file in [
            "docs/SPEC.md".to_string(),
            root.join("docs/./SPEC.md").display().to_string(),
        ] {
            assert!(spec_in_project(&root, &file).is_ok(), "{file}");
        }
    }

    #[test]
    fn a_symlinked_spec_stays_a_symlink_and_its_target_is_ticked() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("specs")).unwrap();
        std::fs::write(root.join("specs/real.md"), "# S\n- [ ] Auth\n").unwrap();
        std::os::unix::fs::symlink("specs/real.md", root.join("SPEC.md")).unwrap();
        let outcome = mark_checkpoint_in(root, "SPEC.md", "Auth", Some("r1")).unwrap();
        assert_eq!(outcome, CheckpointOutcome::Marked { line: 2 });
        assert!(root.join("SPEC.md").is_symlink(), "the link was replaced");
        assert_eq!(
            std::fs::read_link(root.join("SPEC.md")).unwrap(),
            Path::new("specs/real.md")
        );
        assert_eq!(
            std::fs::read_to_string(root.join("specs/real.md")).unwrap(),
            "# S\n- [x] Auth ← Completed via Codex (run r1)\n"
        );
        let names: Vec<_> = std::fs::read_dir(root.join("specs")).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary left beside the target");
    }

    #[test]
    fn not_checklists_are_ignored() {
        assert!(mark("- [link](x) Auth\n-[ ] Auth\n- [ ]Auth\n", "Auth").is_err());
    }
}
