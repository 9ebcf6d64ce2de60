//! The one place that writes shell code.
//!
//! `sshd` runs every command through the remote user's login shell as a single string, so a
//! remote command line has to be shell code. Everything that builds such a line goes through
//! [`quote`], [`quote_path`] and [`command_script`]; nothing else in the crate formats shell
//! syntax. Arguments are always single-quoted (the only POSIX quoting with no special characters
//! inside), and a `'` in the text becomes `'\''`. The property tests in `tests/shell_quoting.rs`
//! run hostile strings through a real `sh` and get them back byte-exact.
//!
//! The remote login shell must be POSIX-compatible (bash, zsh, dash, ksh); fish and csh are not
//! supported as login shells.

use std::collections::BTreeMap;

/// The marker line with which an SSH command announces its process id on stderr, so that it can
/// be cancelled later. Starts with a control character that no normal output begins with.
pub const PID_MARKER: &str = "\u{1e}codex-remote-pid ";

/// Quotes `word` so that a POSIX shell reads it back as exactly one word, byte for byte.
///
/// ```
/// use codex_remote_core::shell::quote;
/// assert_eq!(quote("plain"), "'plain'");
/// assert_eq!(quote("it's"), r"'it'\''s'");
/// assert_eq!(quote(""), "''");
/// ```
pub fn quote(word: &str) -> String {
    let mut out = String::with_capacity(word.len() + 2);
    out.push('\'');
    for c in word.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Quotes a path, letting a leading `~` or `~/` expand to the remote `$HOME`.
///
/// ```
/// use codex_remote_core::shell::quote_path;
/// assert_eq!(quote_path("~/workspace/my app"), r#""$HOME"/'workspace/my app'"#);
/// assert_eq!(quote_path("~"), r#""$HOME""#);
/// assert_eq!(quote_path("/tmp/x"), "'/tmp/x'");
/// assert_eq!(quote_path("~user/x"), "'~user/x'");
/// ```
pub fn quote_path(path: &str) -> String {
    if path == "~" {
        "\"$HOME\"".to_string()
    } else if let Some(rest) = path.strip_prefix("~/") {
        format!("\"$HOME\"/{}", quote(rest))
    } else {
        quote(path)
    }
}

/// Whether `name` is a valid shell variable name.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// What a remote command line is made of.
#[derive(Debug, Clone, Copy)]
pub struct ScriptParts<'a> {
    /// The program (looked up on the remote `PATH`).
    pub program: &'a str,
    /// Its arguments.
    pub args: &'a [String],
    /// Environment variables to export.
    pub env: &'a BTreeMap<String, String>,
    /// Directory to run in; may start with `~/`.
    pub cwd: Option<&'a str>,
    /// The host's shell init (trusted shell code from the user's config), run first.
    pub shell_init: Option<&'a str>,
    /// Print [`PID_MARKER`] and the shell's pid on stderr first.
    pub announce_pid: bool,
}

/// Why a command cannot be expressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    /// A NUL byte cannot be passed in an argument, a name or a value.
    #[error("{what} contains a NUL byte, which no command line can carry")]
    Nul {
        /// Which part.
        what: String,
    },
    /// An environment variable name that is not an identifier.
    #[error("`{0}` is not a valid environment variable name")]
    BadEnvName(String),
    /// A word rsync's `-e` option cannot carry (it holds both kinds of quote).
    #[error("`{0}` holds both kinds of quote, which rsync's -e option cannot carry")]
    Unquotable(String),
    /// The program name is empty.
    #[error("the program name is empty")]
    EmptyProgram,
}

/// Builds the shell script that runs one command: announce the pid, run the shell init, change
/// directory, export the environment and `exec` the program with its arguments.
///
/// ```
/// use codex_remote_core::shell::{command_script, ScriptParts};
/// let args = vec!["status".to_string()];
/// let env = Default::default();
/// let script = command_script(&ScriptParts {
///     program: "git", args: &args, env: &env, cwd: Some("~/workspace/app"),
///     shell_init: Some("source ~/.config/nvm/nvm.sh"), announce_pid: false,
/// }).unwrap();
/// assert_eq!(script, "source ~/.config/nvm/nvm.sh\ncd \"$HOME\"/'workspace/app' || exit 1\nexec 'git' 'status'\n");
/// ```
pub fn command_script(parts: &ScriptParts<'_>) -> Result<String, ScriptError> {
    script_with_env_file(parts, None)
}

/// [`command_script`] that also reads its environment from a file on the host, removing the
/// file once read, where the exports would be (after the shell init and `cd`; an `EXIT` trap set
/// first removes it too when the init or the `cd` fails). For commands
/// whose stdin is not ours to use (a TTY): the values travel in a 0600 file written through
/// stdin (see [`export_lines`]) instead of on the command line.
///
/// ```
/// use codex_remote_core::shell::{command_script_with_env_file, ScriptParts};
/// let env = Default::default();
/// let script = command_script_with_env_file(&ScriptParts {
///     program: "codex", args: &[], env: &env, cwd: Some("~/w/app"),
///     shell_init: None, announce_pid: false,
/// }, "~/w/.codex-remote/env.1").unwrap();
/// assert_eq!(script, "codex_remote_env=\"$HOME\"/'w/.codex-remote/env.1'; \
///     trap 'rm -f -- \"$codex_remote_env\"' EXIT\n\
///     cd \"$HOME\"/'w/app' || exit 1\n\
///     . \"$codex_remote_env\"; rm -f -- \"$codex_remote_env\"\nexec 'codex'\n");
/// ```
pub fn command_script_with_env_file(
    parts: &ScriptParts<'_>,
    env_file: &str,
) -> Result<String, ScriptError> {
    check_nul("the environment file", env_file)?;
    script_with_env_file(parts, Some(env_file))
}

/// `export NAME='value'` lines for `env`: the content of an environment file.
pub fn export_lines(env: &BTreeMap<String, String>) -> Result<String, ScriptError> {
    let mut lines = String::new();
    for (name, value) in env {
        if !is_identifier(name) {
            return Err(ScriptError::BadEnvName(name.clone()));
        }
        check_nul(&format!("environment variable {name}"), value)?;
        lines.push_str(&format!("export {name}={}\n", quote(value)));
    }
    Ok(lines)
}

fn script_with_env_file(
    parts: &ScriptParts<'_>,
    env_file: Option<&str>,
) -> Result<String, ScriptError> {
    if parts.program.is_empty() {
        return Err(ScriptError::EmptyProgram);
    }
    check_nul("the program", parts.program)?;
    for (i, arg) in parts.args.iter().enumerate() {
        check_nul(&format!("argument {}", i + 1), arg)?;
    }
    let mut script = String::new();
    if parts.announce_pid {
        script.push_str(&format!("printf '{}%s\\n' \"$$\" >&2\n", PID_MARKER));
    }
    if let Some(file) = env_file {
        // The secrets' file goes whatever happens next (a failing init or `cd` exits first).
        script.push_str(&format!(
            "codex_remote_env={}; trap 'rm -f -- \"$codex_remote_env\"' EXIT\n",
            quote_path(file)
        ));
    }
    if let Some(init) = parts.shell_init {
        check_nul("the shell init", init)?;
        // On its own line, so a comment or a missing `;` in the user's init cannot swallow ours.
        script.push_str(init.trim_end());
        script.push('\n');
    }
    if let Some(cwd) = parts.cwd {
        check_nul("the working directory", cwd)?;
        script.push_str(&format!("cd {} || exit 1\n", quote_path(cwd)));
    }
    script.push_str(&export_lines(parts.env)?);
    if env_file.is_some() {
        script.push_str(". \"$codex_remote_env\"; rm -f -- \"$codex_remote_env\"\n");
    }
    script.push_str("exec ");
    // `--`-style protection is the program's business; here a leading `-` is just a word.
    script.push_str(&quote(parts.program));
    for arg in parts.args {
        script.push(' ');
        script.push_str(&quote(arg));
    }
    script.push('\n');
    Ok(script)
}

/// [`command_script`] whose program also gets the script's own positional arguments (`"$@"`)
/// after its fixed ones: for values known only on the host, such as a Codex thread id, which
/// thus travel as argv words and are never parsed as shell code.
///
/// ```
/// use codex_remote_core::shell::{command_script_passing_args, ScriptParts};
/// let args = vec!["resume".to_string()];
/// let env = Default::default();
/// let script = command_script_passing_args(&ScriptParts {
///     program: "codex", args: &args, env: &env, cwd: None, shell_init: None, announce_pid: false,
/// }).unwrap();
/// assert_eq!(script, "exec 'codex' 'resume' \"$@\"\n");
/// ```
pub fn command_script_passing_args(parts: &ScriptParts<'_>) -> Result<String, ScriptError> {
    let mut script = command_script(parts)?;
    script.pop();
    script.push_str(" \"$@\"\n");
    Ok(script)
}

/// The short command that reads a script of `len` bytes from stdin and runs it in the login
/// shell itself (as an inline script would run), leaving the rest of stdin to the script's
/// program. Used when a script is too long for one exec argument (Linux refuses a single
/// argument over 128 KiB), and whenever it carries environment values: a command line is
/// visible to every user of the host in `ps`, stdin is not.
///
/// ```
/// assert_eq!(codex_remote_core::shell::stdin_bootstrap(42), r#"eval "$(head -c 42)""#);
/// ```
pub fn stdin_bootstrap(len: usize) -> String {
    format!("eval \"$(head -c {len})\"")
}

/// One word of an `rsync -e` command. rsync splits that option on spaces and honours single and
/// double quotes but not backslashes, so a word is single-quoted, or double-quoted when it holds a
/// `'`; a word holding both kinds cannot be expressed and is refused.
pub fn rsync_e_word(word: &str) -> Result<String, ScriptError> {
    check_nul("an rsync -e word", word)?;
    if !word.contains('\'') {
        Ok(format!("'{word}'"))
    } else if !word.contains('"') {
        Ok(format!("\"{word}\""))
    } else {
        Err(ScriptError::Unquotable(word.to_string()))
    }
}

/// The `--rsync-path` that runs the remote rsync under an exclusive `flock` on `lock` (when the
/// host has flock), creating the lock's directory first. `lock` is relative to the remote home
/// or absolute.
///
/// ```
/// use codex_remote_core::shell::rsync_path_with_lock;
/// assert!(rsync_path_with_lock("workspace/.codex-remote/app/lock").ends_with(" './workspace/.codex-remote/app/lock'"));
/// ```
pub fn rsync_path_with_lock(lock: &str) -> String {
    let lock = if lock.starts_with('/') {
        lock.to_string()
    } else {
        format!("./{lock}")
    };
    format!("sh -c {} {}", quote(LOCKED_RSYNC_SCRIPT), quote(&lock))
}

/// The words that end an `rsync -e` command running through a container engine's `exec`: the
/// remote rsync runs from the home directory under an exclusive `flock` on `lock` (relative to the
/// home directory, or absolute). rsync appends a placeholder machine name and then its own
/// command; the script drops the placeholder. The lock's path is an argument, never spliced in.
///
/// ```
/// use codex_remote_core::shell::exec_rsync_lock_words;
/// let words = exec_rsync_lock_words("workspace/.codex-remote/app/lock");
/// assert_eq!(words[..2], ["sh", "-c"]);
/// assert_eq!(words[3], "workspace/.codex-remote/app/lock");
/// ```
pub fn exec_rsync_lock_words(lock: &str) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        EXEC_LOCKED_RSYNC_SCRIPT.into(),
        lock.into(),
    ]
}

const EXEC_LOCKED_RSYNC_SCRIPT: &str = r#"cd || exit 1; lock=$0; shift; mkdir -p -- "$(dirname -- "$lock")" || exit 1; exec flock "$lock" "$@""#;

const LOCKED_RSYNC_SCRIPT: &str = r#"mkdir -p -- "$(dirname -- "$0")" || exit 1
if command -v flock >/dev/null 2>&1; then exec flock "$0" rsync "$@"; else exec rsync "$@"; fi"#;

fn check_nul(what: &str, text: &str) -> Result<(), ScriptError> {
    if text.contains('\0') {
        Err(ScriptError::Nul {
            what: what.to_string(),
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(is_identifier("NODE_OPTIONS"));
        assert!(is_identifier("_x1"));
        assert!(!is_identifier("1x"));
        assert!(!is_identifier("A-B"));
        assert!(!is_identifier(""));
        assert!(!is_identifier("A;rm"));
    }

    #[test]
    fn nul_bytes_are_refused() {
        let args = vec!["a\0b".to_string()];
        let env = BTreeMap::new();
        let parts = ScriptParts {
            program: "echo",
            args: &args,
            env: &env,
            cwd: None,
            shell_init: None,
            announce_pid: false,
        };
        assert_eq!(
            command_script(&parts),
            Err(ScriptError::Nul {
                what: "argument 1".into()
            })
        );
    }

    #[test]
    fn bad_env_names_are_refused() {
        let env = BTreeMap::from([("A;touch x".to_string(), "v".to_string())]);
        let parts = ScriptParts {
            program: "env",
            args: &[],
            env: &env,
            cwd: None,
            shell_init: None,
            announce_pid: false,
        };
        assert!(matches!(
            command_script(&parts),
            Err(ScriptError::BadEnvName(_))
        ));
    }

    #[test]
    fn pid_announcement_comes_first() {
        let env = BTreeMap::new();
        let parts = ScriptParts {
            program: "true",
            args: &[],
            env: &env,
            cwd: None,
            shell_init: Some("echo hi"),
            announce_pid: true,
        };
        let script = command_script(&parts).unwrap();
        assert!(
            script.starts_with("printf '\u{1e}codex-remote-pid %s\\n' \"$$\" >&2\necho hi\n"),
            "{script}"
        );
    }
}
