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
