//! What to run: [`CommandSpec`] (program and arguments, never a joined string) and [`Stdin`].

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::shell::ScriptError;

/// Boxed async reader for a command's output.
pub type BoxReader = Box<dyn AsyncRead + Send + Unpin>;
/// Boxed async writer for a command's input.
pub type BoxWriter = Box<dyn AsyncWrite + Send + Unpin>;

/// What a command reads on stdin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Stdin {
    /// Nothing (`/dev/null`).
    #[default]
    Null,
    /// These bytes, then end of file.
    Bytes(Vec<u8>),
    /// A pipe the caller writes to through [`RemoteProcess::stdin`]; dropping it closes stdin.
    Piped,
}

/// One command to run: program and arguments as separate strings.
///
/// ```
/// use codex_remote_core::transport::CommandSpec;
/// let spec = CommandSpec::new("git").arg("status").cwd("~/workspace/app").with_shell_init();
/// assert_eq!(spec.args, vec!["status"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandSpec {
    /// The program, found on the host's `PATH`.
    pub program: String,
    /// Its arguments, each passed byte-exact.
    pub args: Vec<String>,
    /// Extra environment variables (the host's configured env is applied first).
    pub env: BTreeMap<String, String>,
    /// Working directory on the host; `~/` means the host user's home.
    pub cwd: Option<String>,
    /// Run the host's shell init first (e.g. sourcing nvm to put `codex` on `PATH`).
    pub shell_init: bool,
    /// What the command reads.
    pub stdin: Stdin,
    /// Cancel the command when it runs longer than this.
    pub timeout: Option<Duration>,
    /// The name of the fixed script this command runs (`write-atomic`, `prepare-run`, ...; see
    /// [`CommandSpec::named`]), so fakes and logs recognise it without reading the script text.
    pub name: Option<&'static str>,
}

impl CommandSpec {
    /// A command with no arguments.
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            ..Self::default()
        }
    }

    /// A fixed shell script run by `sh -c`, its data passed as positional parameters (`$1`...),
    /// never spliced into the script text.
    ///
    /// ```
    /// use codex_remote_core::transport::CommandSpec;
    /// let spec = CommandSpec::script("printf '%s' \"$1\"", &["it's"]);
    /// assert_eq!(spec.args, vec!["-c", "printf '%s' \"$1\"", "sh", "it's"]);
    /// ```
    pub fn script(body: &str, args: &[&str]) -> Self {
        Self::new("sh")
            .arg("-c")
            .arg(body)
            .arg("sh")
            .args(args.iter().map(|a| a.to_string()))
    }

    /// Names the fixed script this command runs. Every fixed script of the crate carries its
    /// name; a fake transport answers by name, never by comparing script text.
    ///
    /// ```
    /// use codex_remote_core::transport::CommandSpec;
    /// let spec = CommandSpec::script("true", &[]).named("noop");
    /// assert_eq!(spec.name, Some("noop"));
    /// ```
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        self
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(name.into(), value.into());
        self
    }

    /// Sets the working directory.
    pub fn cwd(mut self, dir: impl Into<String>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Runs the host's shell init first.
    pub fn with_shell_init(mut self) -> Self {
        self.shell_init = true;
        self
    }

    /// Feeds these bytes on stdin.
    pub fn stdin_bytes(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Stdin::Bytes(bytes.into());
        self
    }

    /// Gives the caller a pipe to stdin.
    pub fn stdin_piped(mut self) -> Self {
        self.stdin = Stdin::Piped;
        self
    }

    /// Bounds the run time.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Checks that the command can be expressed at all (no NUL bytes, valid env names), so a
    /// transport can refuse bad input before touching the network.
    pub fn validate(&self) -> Result<(), ScriptError> {
        crate::shell::command_script(&crate::shell::ScriptParts {
            program: &self.program,
            args: &self.args,
            env: &self.env,
            cwd: self.cwd.as_deref(),
            shell_init: None,
            announce_pid: false,
        })
        .map(|_| ())
    }

    /// The command as a user would read it (for messages, not for execution).
    pub fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| crate::shell::quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    }
}
