//! [`TransportExt`]: helpers every backend gets from `spawn` (run, read and write files
//! atomically, ping), the fixed scripts they run, and exit-status checks.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::host::HostSpec;

use super::*;

/// Helpers every transport gets.
#[async_trait]
pub trait TransportExt: Transport {
    /// Runs a command to completion and collects its output.
    async fn run(&self, spec: CommandSpec) -> Result<Output, TransportError> {
        self.spawn(spec).await?.output().await
    }

    /// Runs a command and fails unless it exits 0; exit 127 becomes
    /// [`TransportError::CommandNotFound`].
    async fn run_checked(&self, spec: CommandSpec) -> Result<Output, TransportError> {
        let program = spec.program.clone();
        let command = spec.display();
        let output = self.run(spec).await?;
        check_status(self.host(), &program, &command, output)
    }

    /// Runs a command and fails unless it exits 0 (as [`TransportExt::run_checked`]), writing
    /// its stdout to the local file `file` as it arrives, so memory stays bounded whatever its
    /// size. The returned output's `stdout` is empty; its `stderr` keeps the first 1 MiB.
    async fn run_checked_to_file(
        &self,
        spec: CommandSpec,
        file: &std::path::Path,
    ) -> Result<Output, TransportError> {
        match self
            .run_checked_to_file_within(spec, file, u64::MAX)
            .await?
        {
            Ok(output) => Ok(output),
            Err(_) => unreachable!("no output passes u64::MAX bytes"),
        }
    }

    /// [`TransportExt::run_checked_to_file`] that writes at most `limit` bytes: past them the
    /// command is cancelled, the file removed, and `Ok(Err(seen))` says how many bytes had
    /// arrived by then (the output is at least that long). Disk use is bounded whatever the
    /// command prints.
    async fn run_checked_to_file_within(
        &self,
        spec: CommandSpec,
        file: &std::path::Path,
        limit: u64,
    ) -> Result<Result<Output, u64>, TransportError> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        const STDERR_KEPT: u64 = 1024 * 1024;
        let program = spec.program.clone();
        let command = spec.display();
        let writing = |e| TransportError::io(format!("writing {}", file.display()))(e);
        let mut out = tokio::fs::File::create(file)
            .await
            .map_err(TransportError::io(format!("creating {}", file.display())))?;
        let mut process = self.spawn(spec).await?;
        let mut stdout = std::mem::replace(&mut process.stdout, Box::new(tokio::io::empty()));
        let mut stderr = std::mem::replace(&mut process.stderr, Box::new(tokio::io::empty()));
        let stderr = tokio::spawn(async move {
            let mut kept = Vec::new();
            let _ = (&mut stderr).take(STDERR_KEPT).read_to_end(&mut kept).await;
            // The rest is drained: the command must not block on a full pipe.
            let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
            kept
        });
        let mut buf = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        let copied: Result<Option<u64>, TransportError> = loop {
            let n = match stdout.read(&mut buf).await {
                Ok(0) => break Ok(None),
                Ok(n) => n,
                Err(e) => break Err(TransportError::io(format!("reading `{command}`"))(e)),
            };
            if written.saturating_add(n as u64) > limit {
                break Ok(Some(written.saturating_add(n as u64)));
            }
            if let Err(e) = out.write_all(&buf[..n]).await {
                break Err(writing(e));
            }
            written += n as u64;
        };
        let stopped = match copied {
            Ok(stopped) => stopped,
            Err(e) => {
                let _ = process.cancel().await;
                drop(out);
                let _ = tokio::fs::remove_file(file).await;
                return Err(e);
            }
        };
        if let Some(seen) = stopped {
            // Nothing more is read or written: the command goes, and so does what it wrote.
            drop(stdout);
            let _ = process.cancel().await;
            stderr.abort();
            drop(out);
            tokio::fs::remove_file(file).await.map_err(writing)?;
            return Ok(Err(seen));
        }
        let status = process.wait().await?;
        let stderr = stderr.await.unwrap_or_default();
        out.flush()
            .await
            .and(out.sync_all().await)
            .map_err(writing)?;
        check_status(
            self.host(),
            &program,
            &command,
            Output {
                status,
                stdout: Vec::new(),
                stderr,
            },
        )
        .map(Ok)
    }

    /// Reads a file on the host. `~/` at the start means the host user's home.
    async fn read_file(&self, path: &str) -> Result<Vec<u8>, TransportError> {
        let (cwd, relative) = split_home(path);
        let mut spec = CommandSpec::new("cat").arg("--").arg(relative);
        spec.cwd = cwd;
        Ok(self.run_checked(spec).await?.stdout)
    }

    /// Writes a file on the host atomically: the bytes go to a temporary file beside it, which
    /// is then renamed over the target, so readers see the old file or the new one, never half.
    /// Missing parent directories are created.
    async fn write_file_atomic(&self, path: &str, contents: &[u8]) -> Result<(), TransportError> {
        let (cwd, relative) = split_home(path);
        let mut spec = CommandSpec::script(WRITE_ATOMIC_SCRIPT, &[relative])
            .named(script_names::WRITE_ATOMIC)
            .stdin_bytes(contents.to_vec());
        spec.cwd = cwd;
        self.run_checked(spec).await.map(|_| ())
    }

    /// Checks that the host answers, returning the round-trip time of a trivial command.
    async fn ping(&self) -> Result<Duration, TransportError> {
        let started = Instant::now();
        self.run_checked(CommandSpec::new("true")).await?;
        Ok(started.elapsed())
    }
}

impl<T: Transport + ?Sized> TransportExt for T {}

/// The names of the crate's fixed scripts ([`CommandSpec::name`]), with what each one's
/// positional arguments (after `sh -c BODY sh`) and stdin are, so a fake host can play them.
pub mod script_names {
    /// Writes stdin to `$1` atomically.
    pub const WRITE_ATOMIC: &str = "write-atomic";
    /// Replaces the mirror `$1` with the tar archive on stdin (lock `$2`).
    pub const TAR_PUSH: &str = "tar-push";
    /// Prepares a run tree: mirror `$1`, lock `$2`, trees dir `$3`, project name `$4`, run id
    /// `$5`, excludes after. Leases the lowest free slot `<trees>/<n>` (`<n>.lease/run` holds
    /// the run id), moves `<trees>/<n>/<project>` to the baseline and prints `<n> <baseline>`.
    pub const PREPARE_RUN: &str = "prepare-run";
    /// Prints the run's change: tree `$1`, baseline `$2`, mirror `$3`, slot dir `$4`, run id
    /// `$5` (stderr: `codex-remote-outside: <status line>` per file changed in the mirror); or,
    /// for a run prepared before pooling, run dir `$1`, baseline `$2`.
    pub const RETRIEVE_PATCH: &str = "retrieve-patch";
    /// Returns a run's tree to the pool: mirror `$1`, trees dir `$2`, run id `$3`, agent dir
    /// `$4`, pre-pooling run dir `$5` (removed).
    pub const REMOVE_RUN: &str = "remove-run";
    /// Removes the pool's idle trees: trees dir `$1`, lock `$2`, mirror `$3`; prints the slots.
    pub const PRUNE_TREES: &str = "prune-trees";
    /// Launches the agent detached: agent dir `$1`, agent command `$2`; prints its pid.
    pub const LAUNCH_AGENT: &str = "launch-agent";
    /// Follows the agent's events: agent dir `$1`, byte offset `$2`.
    pub const FOLLOW_AGENT: &str = "follow-agent";
    /// Reports the agent's state: agent dir `$1`.
    pub const PROBE_AGENT: &str = "probe-agent";
    /// Ends a process group: pid `$1`.
    pub const KILL_GROUP: &str = "kill-group";
    /// Ends every process of an agent (its group, its unit, every process carrying its
    /// marker): agent dir `$1`.
    pub const CANCEL_AGENT: &str = "cancel-agent";
    /// Writes 64 KiB beside the agent's files and prints what the host says if it cannot (a
    /// full disk): agent dir `$1`.
    pub const DISK_CHECK: &str = "disk-check";
    /// Reports codex's version and login, the set env names and Codex's config: codex `$1`,
    /// config size limit `$2` (see `prerequisites`).
    pub const PREREQUISITE_PROBE: &str = "prerequisite-probe";
}

/// Writes stdin to "$1" through a temporary sibling and a rename. Constant text: the path comes
/// in as a positional argument, never spliced into the script.
pub(crate) const WRITE_ATOMIC_SCRIPT: &str = r#"set -e
target=$1
case $target in */*) dir=${target%/*}; [ -n "$dir" ] || dir=/ ;; *) dir=. ;; esac
mkdir -p -- "$dir"
tmp=$(mktemp -- "$dir/.codex-remote-tmp.XXXXXXXX")
trap 'rm -f -- "$tmp"' EXIT
cat > "$tmp"
if [ -e "$target" ]; then chmod --reference="$target" -- "$tmp" 2>/dev/null || true; fi
mv -f -- "$tmp" "$target"
trap - EXIT
"#;

/// Writes the host's `env` as `export` lines into a fresh 0600 file in the host's state
/// directory (`<workspace>/.codex-remote/env.<random>`), sent through stdin, for a command whose
/// own stdin is not ours to use (a TTY session): it reads and removes the file (see
/// [`crate::shell::command_script_with_env_file`]). `None` when the host has no env.
pub async fn stage_env_file(transport: &dyn Transport) -> Result<Option<String>, TransportError> {
    let host = transport.host();
    if host.env.is_empty() {
        return Ok(None);
    }
    let exports = crate::shell::export_lines(&host.env)?;
    let file = format!(
        "{}/.codex-remote/env.{:016x}",
        host.workspace.trim_end_matches('/'),
        rand::random::<u64>()
    );
    transport
        .write_file_atomic(&file, exports.as_bytes())
        .await?;
    Ok(Some(file))
}

/// Signals a remote process group: TERM, up to 2 s for it to go, then KILL and up to 2 s more,
/// so that when it returns the group is gone. Constant script; the pid arrives as an argument.
/// `kill -s SIG --` is the form dash's builtin also accepts.
pub(crate) const KILL_GROUP_SCRIPT: &str = r#"pg=$1
gone() { ! kill -s 0 -- "-$pg" 2>/dev/null; }
kill -s TERM -- "-$pg" 2>/dev/null || exit 0
i=0
while ! gone && [ "$i" -lt 20 ]; do sleep 0.1; i=$((i + 1)); done
gone && exit 0
kill -s KILL -- "-$pg" 2>/dev/null
i=0
while ! gone && [ "$i" -lt 20 ]; do sleep 0.1; i=$((i + 1)); done
"#;

/// Splits `~/rel` into (`~`, `rel`) so the home directory is expanded through the working
/// directory rather than by quoting tricks.
pub(super) fn split_home(path: &str) -> (Option<String>, &str) {
    match path.strip_prefix("~/") {
        Some(rest) => (Some("~".to_string()), rest),
        None => (None, path),
    }
}

/// Turns a non-zero exit into an error.
pub(crate) fn check_status(
    host: &HostSpec,
    program: &str,
    command: &str,
    output: Output,
) -> Result<Output, TransportError> {
    match output.status {
        ExitStatus::Code(0) => Ok(output),
        ExitStatus::Code(127) => {
            // A script (`sh -c ...`) exits 127 when a program *it* runs is missing: the shell
            // names that one on stderr, and it is the one to report.
            let stderr = output.stderr_text();
            let program = missing_program(&stderr).unwrap_or(program);
            Err(TransportError::CommandNotFound {
                host: host.name.clone(),
                program: program.to_string(),
                hint: not_found_hint(host, program),
            })
        }
        status => Err(TransportError::CommandFailed {
            host: host.name.clone(),
            command: host.redact(command),
            status,
            stderr: host.redact(output.stderr_text().trim()),
        }),
    }
}

/// The program a shell reported missing on stderr (the last one it reported): `sh: 1: git: not found` (dash), `bash: line 3:
/// git: command not found`, `zsh: command not found: git`. Only a plain program name is taken
/// (the host's words are untrusted: nothing that could carry control characters or spaces).
pub(crate) fn missing_program(stderr: &str) -> Option<&str> {
    let plain = |name: &str| {
        !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._+-/".contains(c))
    };
    // The last such line: the script's exit status is its last command's.
    stderr.lines().rev().find_map(|line| {
        let line = line.trim_end();
        let name = if let Some(rest) = line
            .strip_suffix(": command not found")
            .or_else(|| line.strip_suffix(": not found"))
        {
            rest.rsplit(": ").next()?
        } else {
            line.split_once("command not found: ")?.1
        };
        plain(name).then_some(name)
    })
}

/// Advice for a program that is not on the host's `PATH`.
pub(crate) fn not_found_hint(host: &HostSpec, program: &str) -> String {
    match &host.shell_init {
        None => format!(
            "install it on `{}`, or if it comes from nvm set `shell_init = \"source ~/.config/nvm/nvm.sh\"` under [hosts.{}]",
            host.name, host.name
        ),
        Some(init) => format!("install `{program}` on `{}`, or check that the shell init `{init}` puts it on PATH", host.name),
    }
}

#[cfg(test)]
mod tests {
    use super::missing_program;

    #[test]
    fn the_missing_program_is_the_one_the_shell_names() {
        assert_eq!(missing_program("sh: 1: git: not found\n"), Some("git"));
        assert_eq!(
            missing_program("noise\nbash: line 3: git: command not found\n"),
            Some("git")
        );
        assert_eq!(
            missing_program("sh: 1: exec: codex: not found"),
            Some("codex")
        );
        assert_eq!(
            missing_program("zsh: command not found: rsync"),
            Some("rsync")
        );
        // dash without `source`, then the program itself: the status is the last one's.
        assert_eq!(
            missing_program("sh: 1: source: not found\nsh: 1: codex: not found\n"),
            Some("codex")
        );
        assert_eq!(missing_program("fatal: something else\n"), None);
        assert_eq!(missing_program(""), None);
    }

    #[test]
    fn a_hostile_name_on_stderr_is_not_taken() {
        for said in [
            "sh: 1: \u{1b}[31mgit: not found",
            "sh: 1: rm -rf x: not found",
            "sh: 1: : not found",
            &format!("sh: 1: {}: not found", "a".repeat(65)),
        ] {
            assert_eq!(missing_program(said), None, "{said:?}");
        }
    }
}
