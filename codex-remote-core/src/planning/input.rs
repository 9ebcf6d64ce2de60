//! Errors in user-written input (task files, config files, plans), located precisely.
//!
//! Every parser in this crate reports bad input as an [`InputError`] so the user is told the file,
//! line, column and field at fault, and how to fix it, in one consistent shape.

use std::fmt;

/// A problem in a file (or other source) the user wrote.
///
/// Its `Display` reads like a compiler diagnostic:
/// `tasks/auth.yaml:4:7: field `type`: unknown task type `refactr``; its [`hint`](Self::hint)
/// (`did you mean `refactor`?`) is kept apart, for the caller to show as it sees fit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InputError {
    /// Where the input came from: a path, `<stdin>`, `<command line>` or an environment variable.
    pub source_name: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// The dotted path of the field at fault (`scope.files[2]`), when known.
    pub field: Option<String>,
    /// What is wrong, lower-case, without trailing punctuation.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl InputError {
    /// A problem with no location yet; add one with the builder methods.
    pub fn new(source_name: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            source_name: source_name.into(),
            line: None,
            column: None,
            field: None,
            message: message.into(),
            hint: None,
        }
    }

    /// Sets the 1-based line and column.
    pub fn at(mut self, line: usize, column: usize) -> Self {
        self.line = Some(line);
        self.column = Some(column);
        self
    }

    /// Sets the line and column when known.
    pub fn at_opt(mut self, position: Option<(usize, usize)>) -> Self {
        if let Some((line, column)) = position {
            self = self.at(line, column);
        }
        self
    }

    /// Names the field at fault.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        let field = field.into();
        // serde_path_to_error writes `?` for a position it cannot name, and `.` for the root.
        if !field.is_empty() && field != "." && field != "?" {
            self.field = Some(field);
        }
        self
    }

    /// Adds advice on how to fix it.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source_name)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": ")?;
        if let Some(field) = &self.field {
            write!(f, "field `{field}`: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for InputError {}

/// Converts a byte offset into a 1-based (line, column), counting columns in characters.
pub(crate) fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Finds where a top-level key is written, for errors found after parsing (such as an empty
/// `requirements` list) that the parser itself could not locate.
///
/// Works for YAML (`key:` at column 1), JSON (`"key"` anywhere) and TOML (`key =` or `[key]`).
pub(crate) fn locate_top_level_key(source: &str, key: &str) -> Option<(usize, usize)> {
    let json_key = format!("\"{key}\"");
    for (index, line) in source.lines().enumerate() {
        let yaml_like = line.strip_prefix(key).is_some_and(|rest| {
            rest.trim_start().starts_with(':') || rest.trim_start().starts_with('=')
        });
        let toml_table = line.trim() == format!("[{key}]");
        if yaml_like || toml_table {
            return Some((index + 1, 1));
        }
        if let Some(col) = line.find(&json_key) {
            return Some((index + 1, line[..col].chars().count() + 1));
        }
    }
    None
}

/// Finds the line of a dotted field path (`scope.files[2]`) in block-style YAML, for errors
/// the YAML parser reports without a usable position. Sequence indexes resolve to their parent.
pub(crate) fn locate_yaml_path(source: &str, path: &str) -> Option<(usize, usize)> {
    let keys: Vec<&str> = path
        .split('.')
        .map(|seg| seg.split('[').next().unwrap_or(seg))
        .filter(|k| !k.is_empty())
        .collect();
    let lines: Vec<&str> = source.lines().collect();
    let (mut from, mut min_indent, mut found) = (0usize, 0usize, None);
    for key in keys {
        let hit = lines.iter().enumerate().skip(from).find_map(|(i, line)| {
            let indent = line.len() - line.trim_start().len();
            let rest = line.trim_start().trim_start_matches("- ");
            let matches = rest.strip_prefix(key).is_some_and(|r| r.starts_with(':'))
                || rest
                    .strip_prefix(&format!("\"{key}\""))
                    .is_some_and(|r| r.trim_start().starts_with(':'));
            (indent >= min_indent && matches).then_some((i, indent))
        })?;
        found = Some((hit.0 + 1, hit.1 + 1));
        from = hit.0 + 1;
        min_indent = hit.1 + 1;
    }
    found
}

/// Suggests the closest of `candidates` to a misspelt `input`, if any is close enough.
pub(crate) fn nearest<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(input, c), c))
        .filter(|(score, _)| *score > 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// For serde's ``unknown field `x`, expected one of `a`, `b` `` message: the expected field
/// closest to `x`, if one is close enough.
pub(crate) fn nearest_expected_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, rest) = rest.split_once('`')?;
    let (_, expected) = rest.split_once("expected")?;
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    nearest(unknown, candidates).map(str::to_string)
}

/// Removes a trailing ` at line N column M` (or `, line N column M`) that serde_yaml and friends
/// append to messages, since [`InputError`] carries the position itself.
pub(crate) fn strip_position_suffix(message: &str) -> &str {
    for marker in [" at line ", ", line "] {
        if let Some(index) = message.rfind(marker) {
            let tail = &message[index + marker.len()..];
            if tail
                .split_whitespace()
                .next()
                .is_some_and(|n| n.parse::<usize>().is_ok())
            {
                return &message[..index];
            }
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_get_the_nearest_expected_one() {
        assert_eq!(
            nearest_expected_field(
                "unknown field `requirments`, expected one of `id`, `title`, `requirements`"
            )
            .as_deref(),
            Some("requirements")
        );
        assert_eq!(
            nearest_expected_field("unknown field `fils`, expected `files`").as_deref(),
            Some("files")
        );
        assert_eq!(
            nearest_expected_field("unknown field `zzzzzz`, expected `id` or `title`"),
            None
        );
    }

    #[test]
    fn line_column_counts_characters_not_bytes() {
        let source = "a: 1\nbé: x\n";
        assert_eq!(line_column(source, 0), (1, 1));
        assert_eq!(line_column(source, 5), (2, 1));
        // "bé: " is 5 bytes but 4 characters
        assert_eq!(line_column(source, 10), (2, 5));
    }

    #[test]
    fn locates_keys_in_each_syntax() {
        assert_eq!(
            locate_top_level_key("id: x\nrequirements: []\n", "requirements"),
            Some((2, 1))
        );
        assert_eq!(
            locate_top_level_key("{\n  \"requirements\": []\n}", "requirements"),
            Some((2, 3))
        );
        assert_eq!(
            locate_top_level_key("a = 1\n[retry]\n", "retry"),
            Some((2, 1))
        );
        assert_eq!(
            locate_top_level_key("  requirements: []\n", "requirements"),
            None
        );
    }

    #[test]
    fn locates_nested_yaml_paths() {
        let text = "id: a\nscope:\n  files:\n    - x\ntype: bad\n";
        assert_eq!(locate_yaml_path(text, "type"), Some((5, 1)));
        assert_eq!(locate_yaml_path(text, "scope.files[0]"), Some((3, 3)));
        assert_eq!(locate_yaml_path(text, "nope"), None);
    }

    #[test]
    fn suggests_nearest() {
        assert_eq!(nearest("refactr", ["refactor", "debug"]), Some("refactor"));
        assert_eq!(nearest("zzz", ["refactor", "debug"]), None);
    }

    #[test]
    fn strips_yaml_position_suffix() {
        assert_eq!(
            strip_position_suffix("unknown field `x` at line 3 column 1"),
            "unknown field `x`"
        );
        assert_eq!(strip_position_suffix("plain message"), "plain message");
    }

    #[test]
    fn display_reads_like_a_diagnostic() {
        let e = InputError::new("t.yaml", "must not be empty")
            .at(3, 1)
            .field("requirements")
            .hint("add one");
        assert_eq!(
            e.to_string(),
            "t.yaml:3:1: field `requirements`: must not be empty"
        );
        assert_eq!(e.hint.as_deref(), Some("add one"), "the hint is kept apart");
    }
}
