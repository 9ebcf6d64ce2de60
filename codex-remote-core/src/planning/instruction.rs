//! Rendering the instruction Codex receives: the seed's TASK / CONTEXT / REQUIREMENTS /
//! VERIFICATION text.
//!
//! Rendering is a pure function of its inputs (same input, same bytes), so instructions can be
//! snapshot-tested, diffed between runs and recorded with a run. Line endings are normalised to
//! `\n` and surrounding whitespace trimmed; nothing is escaped, because the text reaches Codex on
//! stdin and never passes through a shell.

use serde::Serialize;

use crate::policy::RestrictedFiles;
use crate::task::TaskSpec;

/// Why an entry was left out of the instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ExcludedEntry {
    /// The entry as written in the task.
    pub entry: String,
    /// The task field it was in (`scope.files` or `context`).
    pub field: &'static str,
    /// Why it was excluded (`restricted`).
    pub reason: &'static str,
}

/// A rendered instruction and what the restricted-file policy took out of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instruction {
    /// The text sent to Codex on stdin.
    pub text: String,
    /// Entries removed from scope and context by the restricted-file policy.
    pub excluded: Vec<ExcludedEntry>,
}

/// The project-relative path when a `standards` entry names a file under `.agent/standards/`.
pub fn standards_file(entry: &str) -> Option<&str> {
    let path = entry.trim().trim_start_matches("./");
    (path.starts_with(".agent/standards/")
        && !path.contains("..")
        && !path.contains(char::is_whitespace))
    .then_some(path)
}

/// What the instruction says about where the agent works: Codex runs in the run's own tree
/// on the host (a pool slot, not known until the run is prepared, and never the host's mirror),
/// so the instruction names the current directory rather than a path.
pub const WORKING_DIRECTORY: &str =
    "the current directory (the project's root, a git repository); make every change there";

/// Renders the instruction for `task`.
///
/// ```
/// use codex_remote_core::{instruction::render, policy::RestrictedFiles, task::TaskSpec};
/// let task = TaskSpec::parse_str("id: t\ntitle: Add a flag\ntype: feature\nrequirements: [Add --verbose]\n", "t.yaml").unwrap();
/// let instruction = render(&task, &RestrictedFiles::default());
/// assert!(instruction.text.starts_with("TASK: Add a flag\n\nCONTEXT:\n- Working directory: the current directory (the project's root, a git repository); make every change there\n"));
/// ```
pub fn render(task: &TaskSpec, restricted: &RestrictedFiles) -> Instruction {
    let (files, excluded_files) = restricted.partition(&task.scope.files);
    let (context, excluded_context) = restricted.partition(&task.context);
    let excluded = excluded_files
        .iter()
        .map(|e| ExcludedEntry {
            entry: e.to_string(),
            field: "scope.files",
            reason: "restricted",
        })
        .chain(excluded_context.iter().map(|e| ExcludedEntry {
            entry: e.to_string(),
            field: "context",
            reason: "restricted",
        }))
        .collect();

    let mut out = String::new();
    out.push_str("TASK: ");
    out.push_str(&one_line(&task.title));
    out.push_str("\n\nCONTEXT:\n");
    bullet(&mut out, &format!("Working directory: {WORKING_DIRECTORY}"));
    labelled_list(&mut out, "Files", files.iter().map(|s| s.as_str()));
    let mut constraints: Vec<String> = task
        .standards
        .iter()
        .map(|s| normalise(s))
        .filter(|s| !s.is_empty())
        .map(|s| match standards_file(&s) {
            // A file of the project's standards: it is pushed with the project, so the agent
            // reads it there.
            Some(path) => format!("Follow the standards in {path} (in the project)"),
            None => s,
        })
        .collect();
    if !restricted.patterns().is_empty() {
        constraints.push(format!(
            "Do not modify, and do not read into context, the restricted files: {}",
            restricted.patterns().join(", ")
        ));
    }
    labelled_list(
        &mut out,
        "Constraints",
        constraints.iter().map(String::as_str),
    );
    for entry in context {
        let entry = normalise(entry);
        if !entry.is_empty() {
            bullet(&mut out, &entry);
        }
    }

    out.push_str("\nREQUIREMENTS:\n");
    let requirements: Vec<String> = task
        .requirements
        .iter()
        .map(|r| normalise(r))
        .filter(|r| !r.is_empty())
        .collect();
    let width = requirements.len().to_string().len();
    for (i, requirement) in requirements.iter().enumerate() {
        let marker = format!("{:>width$}. ", i + 1);
        item(&mut out, &marker, requirement);
    }

    let verification: Vec<String> = task
        .verification
        .iter()
        .map(|v| normalise(v))
        .filter(|v| !v.is_empty())
        .collect();
    if !verification.is_empty() {
        out.push_str("\nVERIFICATION:\n");
        for check in &verification {
            bullet(&mut out, check);
        }
    }
    Instruction {
        text: out,
        excluded,
    }
}

/// Normalises line endings and trims surrounding whitespace (including trailing spaces on lines).
fn normalise(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

/// Collapses a value that must fit on one line (a title, a path).
fn one_line(text: &str) -> String {
    normalise(text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn bullet(out: &mut String, text: &str) {
    item(out, "- ", text);
}

/// Writes one list item; continuation lines are indented under the item's text.
fn item(out: &mut String, marker: &str, text: &str) {
    let indent = " ".repeat(marker.chars().count());
    for (i, line) in text.lines().enumerate() {
        if i == 0 {
            out.push_str(marker);
        } else if !line.is_empty() {
            out.push_str(&indent);
        }
        out.push_str(line);
        out.push('\n');
    }
}

/// `- Label: only` for one entry, a nested list for several, nothing for none.
fn labelled_list<'a>(out: &mut String, label: &str, entries: impl Iterator<Item = &'a str>) {
    let entries: Vec<String> = entries.map(normalise).filter(|e| !e.is_empty()).collect();
    match entries.as_slice() {
        [] => {}
        [only] if !only.contains('\n') => bullet(out, &format!("{label}: {only}")),
        many => {
            out.push_str(&format!("- {label}:\n"));
            for entry in many {
                item(out, "  - ", entry);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_handles_crlf_and_trailing_space() {
        assert_eq!(normalise("  a  \r\nb\rc\n\n"), "a\nb\nc");
    }

    #[test]
    fn continuation_lines_align_under_the_text() {
        let mut out = String::new();
        item(&mut out, "10. ", "first\nsecond");
        assert_eq!(out, "10. first\n    second\n");
    }
}
