//! Running the real binary in a sealed environment: its own HOME, no CODEX_REMOTE_* variables,
//! the working directory a fresh project called `myapp`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use codex_remote_testkit::model_server::{codex_binary, FakeModelServer, Reply};
use codex_remote_testkit::{sshd::ALIAS, Sshd};

pub struct Env {
    pub home: tempfile::TempDir,
    pub project: PathBuf,
    pub vars: Vec<(String, String)>,
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

impl Env {
    pub fn new() -> Self {
        let home = tempfile::tempdir().unwrap();
        let project = home.path().join("myapp");
        std::fs::create_dir_all(&project).unwrap();
        // Marks the project root, so a stray `.git` or config in a parent directory (/tmp) cannot
        // make an ancestor the project.
        std::fs::write(project.join("codex-remote.toml"), "# test project\n").unwrap();
        Self {
            home,
            project,
            vars: Vec::new(),
        }
    }

    pub fn var(mut self, k: &str, v: impl Into<String>) -> Self {
        self.vars.push((k.to_string(), v.into()));
        self
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_codex-remote"));
        command
            .args(args)
            .current_dir(&self.project)
            .env("HOME", self.home.path())
            .env_remove("XDG_CONFIG_HOME");
        for (k, _) in std::env::vars() {
            if k.starts_with("CODEX_REMOTE_") {
                command.env_remove(k);
            }
        }
        for (k, v) in &self.vars {
            command.env(k, v);
        }
        command.stdin(Stdio::null());
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    pub fn write(&self, relative: &str, contents: &str) -> PathBuf {
        let path = self.project.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }
}

/// A project whose host is a real sshd on loopback whose shell init puts the real Codex CLI on
/// PATH (unless `codex_on_path` is false), talking to a scripted model server.
pub struct Setup {
    pub sshd: Sshd,
    pub env: Env,
    pub server: FakeModelServer,
}

/// `codex_on_path`: whether the host's shell init puts codex on PATH.
pub fn setup(script: Vec<Reply>, codex_on_path: bool) -> Option<Setup> {
    setup_with(FakeModelServer::start(script), codex_on_path)
}

/// [`setup`] with a server already made (e.g. a routed one).
pub fn setup_with(server: FakeModelServer, codex_on_path: bool) -> Option<Setup> {
    let codex = codex_binary()?;
    let sshd = Sshd::start_or_skip()?;
    let codex_home = server.write_codex_home(&sshd.dir().join("codex-home"));
    let path_line = if codex_on_path {
        format!(
            "export PATH=\"{}:$PATH\"\n",
            codex.parent().unwrap().display()
        )
    } else {
        String::new()
    };
    let init = sshd.write_file(
        "nvm.sh",
        &format!("# stands in for ~/.config/nvm/nvm.sh\n{path_line}"),
    );
    let env = Env::new()
        .var(
            "CODEX_REMOTE_SSH_CONFIG",
            sshd.ssh_config().display().to_string(),
        )
        .var("CODEX_REMOTE_HOST", ALIAS);
    env.write(
        "codex-remote.toml",
        &format!(
            "[hosts.{ALIAS}]\nworkspace = \"{}\"\nshell_init = \"source '{}'\"\n[hosts.{ALIAS}.env]\nCODEX_HOME = \"{}\"\n[retry]\ninitial_delay_secs = 0.05\nmax_delay_secs = 0.2\n",
            sshd.dir().join("ws").display(),
            init.display(),
            codex_home.display()
        ),
    );
    env.write("src/app.ts", "export const a = 1;\n");
    env.write("package.json", "{}\n");
    Some(Setup { sshd, env, server })
}

pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .canonicalize()
        .unwrap()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Replaces the sealed environment's paths so snapshots are stable.
pub fn redact(env: &Env, text: &str) -> String {
    text.replace(&examples_dir().display().to_string(), "[examples]")
        .replace(&env.home.path().display().to_string(), "[home]")
}

/// A real terminal: a tmux server of its own (its own socket) running one program in a
/// 200x40 pane that stays after the program exits (so its exit status can be read), torn down
/// on drop.
pub struct Tmux {
    socket: String,
    _conf: tempfile::NamedTempFile,
    /// Where the wrapping shell writes the program's exit status.
    status: tempfile::TempDir,
}

impl Tmux {
    /// Starts `program` in `dir` with only PATH, TERM and `vars` in its environment.
    pub fn start(name: &str, dir: &Path, vars: &[(String, String)], program: &[&str]) -> Tmux {
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let socket = format!("cr-{name}-{}-{n}", std::process::id());
        let conf = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(conf.path(), "set -g remain-on-exit on\n").unwrap();
        let mut command = Command::new("tmux");
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TERM", "xterm-256color")
            .args(["-L", &socket, "-f"])
            .arg(conf.path())
            .args([
                "new-session",
                "-d",
                "-x",
                "200",
                "-y",
                "40",
                "-s",
                "w",
                "-c",
            ])
            .arg(dir);
        for (k, v) in vars {
            command.env(k, v);
        }
        // The program runs under a shell that records its status: tmux itself has been seen
        // leaving an exited program unreaped (a zombie, the pane never dead), and a test must
        // not depend on that.
        let status = tempfile::tempdir().unwrap();
        let status_file = status.path().join("status");
        command
            .args(["sh", "-c", "\"$@\"; echo $? > \"$STATUS_FILE.tmp\" && mv \"$STATUS_FILE.tmp\" \"$STATUS_FILE\"", "sh"])
            .args(program)
            .env("STATUS_FILE", &status_file);
        let out = command.output().expect("tmux runs (install tmux)");
        assert!(out.status.success(), "tmux: {}", stderr(&out));
        Tmux {
            socket,
            _conf: conf,
            status,
        }
    }

    pub fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "tmux {args:?}: {}", stderr(&out));
        stdout(&out)
    }

    /// The program's pid (the pane runs it under a shell that records its status).
    pub fn program_pid(&self) -> String {
        let shell = self.tmux(&["display", "-p", "-t", "w", "#{pane_pid}"]);
        let shell = shell.trim();
        std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
            .ok()
            .and_then(|c| c.split_whitespace().next().map(str::to_string))
            .expect("the program runs under the pane's shell")
    }

    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "w"])
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "w"];
        args.extend(keys);
        self.tmux(&args);
    }

    /// Types `text` literally (no key names).
    pub fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "w", "-l", text]);
    }

    /// Pastes `text` as a bracketed paste (so a program that tells typing from pasting by the
    /// keys' pace, as Codex's TUI does, knows a following Enter is typed).
    pub fn paste(&self, text: &str) {
        self.tmux(&["set-buffer", "-b", "typed", "--", text]);
        self.tmux(&["paste-buffer", "-p", "-d", "-b", "typed", "-t", "w"]);
    }

    /// The program's exit status once it has exited (128 + the signal when one ended it), `None`
    /// while it runs.
    pub fn exit_status(&self) -> Option<i32> {
        if let Ok(text) = std::fs::read_to_string(self.status.path().join("status")) {
            return text.trim().parse().ok();
        }
        let out = self.tmux(&[
            "display",
            "-p",
            "-t",
            "w",
            "#{pane_dead}:#{pane_dead_status}:#{pane_dead_signal}",
        ]);
        // tmux calls a pane dead only once nothing holds its terminal open any more, which a
        // process the program left behind can delay; the program's own status is recorded as
        // soon as it exits, so that is what counts (what it left behind is each test's check).
        let mut parts = out.trim().split(':');
        let _dead = parts.next();
        // A status, or 128 + the signal that ended it, as a shell says.
        let status = parts.next().and_then(|s| s.parse().ok());
        let signal = parts.next().and_then(|s| s.parse::<i32>().ok());
        // (Neither yet: tmux has not recorded how it ended; ask again.)
        status.or(signal.map(|s| 128 + s))
    }

    /// Waits for the program to exit (at most `secs` seconds) and returns its exit status.
    pub fn wait_exit(&self, secs: u64) -> i32 {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            if let Some(status) = self.exit_status() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the program did not end; screen:\n{}",
                self.screen()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Polls the screen until `pred` holds; fails (showing the screen) after `secs` seconds.
    pub fn wait_for_within(&self, secs: u64, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let screen = self.screen();
            if pred(&screen) {
                return screen;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// [`Tmux::wait_for_within`] 30 seconds.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait_for_within(30, what, pred)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}
