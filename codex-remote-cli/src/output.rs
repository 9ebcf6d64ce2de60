//! Rendering: text for people, JSON for programs. Only this module and the commands print.
//!
//! Text from the host and the agent (events, messages, file names, patches, error text) is
//! untrusted: an escape sequence in it could rewrite what the user sees (erase the line above,
//! retitle the terminal, write the clipboard). Every line printed for people goes through
//! [`safe`], which shows control characters instead of sending them; JSON escapes them too.

use std::borrow::Cow;
use std::io::Write;

use serde::Serialize;

use crate::error::CliError;

/// Whether the terminal would act on `c` instead of showing it: C0 controls but newline and
/// tab, DEL, C1 controls (`U+009B` is a CSI on some terminals), and the bidirectional
/// overrides and isolates that reorder what is shown.
fn is_control(c: char) -> bool {
    (c < ' ' && c != '\n' && c != '\t')
        || ('\u{7f}'..='\u{9f}').contains(&c)
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// Whether `c` may join what comes before it into one visible character: the zero-width
/// non-joiner and joiner (Persian and Indic text, emoji sequences), variation selectors and tag
/// characters (emoji presentation, flags). Invisible, but part of ordinary text after a
/// non-ASCII letter or emoji; after ASCII (`package\u{200d}.json`) or on their own they only
/// disguise, and are shown.
fn joins_previous(c: char) -> bool {
    matches!(
        c as u32,
        0x200C..=0x200D | 0xFE00..=0xFE0F | 0xE0020..=0xE007F | 0xE0100..=0xE01EF
    )
}

/// `text` with every control character shown as an escape (`\x1b`, `\u{202e}`) instead of
/// being sent to the terminal; newlines and tabs stay. Invisible characters (Unicode's
/// default-ignorable code points, [`codex_remote_core::is_default_ignorable`]: a
/// zero-width space, a direction mark) are shown the same way, so a name such as
/// `package\u{200b}.json` cannot pass for `package.json`; only the joiners and selectors of
/// [`joins_previous`] stay as they are right after a non-ASCII character (emoji, Persian).
pub fn safe(text: &str) -> Cow<'_, str> {
    let hidden = hidden_chars(text);
    let Some(&first) = hidden.first() else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 8 * hidden.len());
    out.push_str(&text[..first]);
    for (at, c) in text[first..].char_indices() {
        if hidden.binary_search(&(first + at)).is_ok() {
            if (c as u32) < 0x100 {
                out.push_str(&format!("\\x{:02x}", c as u32));
            } else {
                out.push_str(&format!("\\u{{{:x}}}", c as u32));
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The byte offsets of the characters of `text` that [`safe`] shows as escapes.
fn hidden_chars(text: &str) -> Vec<usize> {
    let mut hidden = Vec::new();
    // The last character shown as it is, if it is one a joiner may follow.
    let mut joinable = false;
    for (at, c) in text.char_indices() {
        let escape = is_control(c)
            || (codex_remote_core::is_default_ignorable(c) && !(joins_previous(c) && joinable));
        if escape {
            hidden.push(at);
        }
        joinable = !escape && !c.is_ascii() && !c.is_whitespace();
    }
    hidden
}

/// `text` with each control character (see [`is_control`]) replaced by `escape(c)`.
fn escape_controls(text: &str, escape: impl Fn(char) -> String) -> Cow<'_, str> {
    if !text.chars().any(is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_control(c) {
            out.push_str(&escape(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Prints one JSON value as one line (JSON Lines: every line on stdout is one object).
pub fn print_json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let line = serde_json::to_string(value).map_err(|e| CliError::Io {
        context: "writing JSON".into(),
        source: e.into(),
    })?;
    print_json_line(&line)
}

/// Prints one line of JSON made already (an event's `--json` line), escaped like [`print_json`].
pub fn print_json_line(json: &str) -> Result<(), CliError> {
    let mut line = json_safe(json).into_owned().into_bytes();
    line.push(b'\n');
    write_stdout(&line)
}

/// serde_json escapes C0 controls but sends DEL, C1 and bidi controls raw; outside strings JSON
/// is plain ASCII, so escaping them as `\uXXXX` keeps the same JSON value.
fn json_safe(json: &str) -> Cow<'_, str> {
    escape_controls(json, |c| format!("\\u{:04x}", c as u32))
}

/// Prints a JSON document for people to read (indented), such as a schema without `--json`.
pub fn print_json_document<T: Serialize>(value: &T) -> Result<(), CliError> {
    let mut text = serde_json::to_vec_pretty(value).map_err(|e| CliError::Io {
        context: "writing JSON".into(),
        source: e.into(),
    })?;
    text.push(b'\n');
    write_stdout(&text)
}

/// Prints text to stdout, its control characters shown (see [`safe`]).
pub fn print_text(text: &str) -> Result<(), CliError> {
    write_stdout(safe(text).as_bytes())
}

/// Prints text to stdout as it is: only for text whose untrusted parts were made [`safe`]
/// already, or a patch going to a program rather than a terminal.
pub fn print_raw(text: &str) -> Result<(), CliError> {
    write_stdout(text.as_bytes())
}

/// Prints one line to stdout, its control characters shown (see [`safe`]).
pub fn print_line(line: &str) -> Result<(), CliError> {
    let line = safe(line);
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    write_stdout(&bytes)
}

fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(CliError::io("writing to stdout"))
}

/// Reports an error: one JSON object on one line on stdout with `--json` (see docs/cli.md),
/// else a line on stderr. Nothing when stdout was closed by its reader.
pub fn report_error(error: &CliError, json: bool) {
    if error.is_broken_pipe() {
        return;
    }
    if json {
        let _ = print_json(&error.to_json());
    } else {
        eprintln!("{}", safe(&error.render()));
    }
}

/// `1.5 MiB`-style sizes.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// What would have held a result back, when the user took it anyway (empty when nothing did).
pub fn render_taken_warnings(warnings: &[codex_remote_core::ApplyWarning]) -> String {
    warnings
        .iter()
        .map(|w| format!("warning: applied despite: {w}\n"))
        .collect()
}

/// A `git diff --stat`-like summary.
pub fn render_stat(files: &[codex_remote_core::FileChange]) -> String {
    let mut out = String::new();
    let width = files
        .iter()
        .map(|f| display_path(f).chars().count())
        .max()
        .unwrap_or(0);
    let (mut added, mut removed) = (0, 0);
    for file in files {
        let change = if file.binary {
            "binary".to_string()
        } else if file.kind() == "mode" {
            format!(
                "mode {} -> {}",
                file.old_mode.as_deref().unwrap_or("?"),
                file.new_mode.as_deref().unwrap_or("?")
            )
        } else {
            format!("+{} -{}", file.added, file.removed)
        };
        out.push_str(&format!(
            " {:<width$} | {:<8} {}\n",
            display_path(file),
            file.kind(),
            change
        ));
        added += file.added;
        removed += file.removed;
    }
    out.push_str(&format!(
        " {} file(s) changed, {added} insertion(s)(+), {removed} deletion(s)(-)\n",
        files.len()
    ));
    out
}

fn display_path(file: &codex_remote_core::FileChange) -> String {
    match (&file.old_path, &file.new_path) {
        (Some(a), Some(b)) if a != b => format!("{} => {}", a.escape_debug(), b.escape_debug()),
        _ => file.path().escape_debug().to_string(),
    }
}

/// Colours a patch like `git diff --color`; with `escape` (it goes to a terminal, or to a pager
/// that reads colours) its control characters are shown instead of sent.
pub fn render_patch(patch: &str, color: bool, escape: bool) -> String {
    let patch = if escape {
        safe(patch)
    } else {
        Cow::Borrowed(patch)
    };
    if !color {
        return patch.into_owned();
    }
    let mut out = String::with_capacity(patch.len() + patch.len() / 8);
    for line in patch.split_inclusive('\n') {
        let code = if line.starts_with("diff --git")
            || line.starts_with("index ")
            || line.starts_with("--- ")
            || line.starts_with("+++ ")
        {
            "1"
        } else if line.starts_with("@@") {
            "36"
        } else if line.starts_with('+') {
            "32"
        } else if line.starts_with('-') {
            "31"
        } else {
            ""
        };
        if code.is_empty() {
            out.push_str(line);
        } else {
            let (body, newline) = line.strip_suffix('\n').map_or((line, ""), |b| (b, "\n"));
            out.push_str(&format!("\x1b[{code}m{body}\x1b[0m{newline}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refusal naming a restricted file disguised by a zero-width space: people see the
    /// disguise, programs get the name exactly.
    #[test]
    fn a_disguised_restricted_name_is_shown_with_its_invisible_character() {
        let error = CliError::Core(
            codex_remote_core::ApplyError::Restricted(vec![
                "package\u{200b}.json".into(),
                "\u{feff}src/package-lock.json\u{200e}".into(),
            ])
            .into(),
        );
        let shown = safe(&error.render()).into_owned();
        assert!(!shown.contains('\u{200b}') && !shown.contains('\u{feff}'));
        insta::assert_snapshot!("restricted_refusal_shown", shown);
        // JSON: the same value, byte for byte once parsed (serde_json leaves U+200B raw).
        let line = json_safe(&serde_json::to_string(&error.to_json()).unwrap()).into_owned();
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["error"]["restricted"][0], "package\u{200b}.json");
        assert_eq!(
            back["error"]["restricted"][1],
            "\u{feff}src/package-lock.json\u{200e}"
        );
    }

    #[test]
    fn invisible_characters_are_shown_but_joiners_in_words_and_emoji_stay() {
        for (text, shown) in [
            ("a\u{200b}b", "a\\u{200b}b"),
            ("\u{ad}x\u{2060}", "\\xadx\\u{2060}"),
            ("package\u{200d}.json", "package\\u{200d}.json"),
            ("x\u{fe0f} \u{200c}", "x\\u{fe0f} \\u{200c}"),
            ("\u{e0041}", "\\u{e0041}"),
            ("\u{1b}[2K\u{202e}", "\\x1b[2K\\u{202e}"),
            // Emoji sequences and Persian words: the joiner follows a non-ASCII character.
            ("👨\u{200d}👩\u{200d}👧", "👨\u{200d}👩\u{200d}👧"),
            ("ok ❤\u{fe0f}", "ok ❤\u{fe0f}"),
            ("می\u{200c}خواهم", "می\u{200c}خواهم"),
            (
                "🏴\u{e0067}\u{e0062}\u{e007f}",
                "🏴\u{e0067}\u{e0062}\u{e007f}",
            ),
            // ... but never a zero-width space, whatever precedes it.
            ("é\u{200b}", "é\\u{200b}"),
            ("plain text\n\ttab", "plain text\n\ttab"),
        ] {
            assert_eq!(safe(text), shown, "{text:?}");
        }
        assert!(matches!(safe("plain"), Cow::Borrowed(_)));
    }
}
