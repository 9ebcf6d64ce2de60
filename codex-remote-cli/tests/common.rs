//! Running the real binary in a sealed environment: its own HOME, no CODEX_REMOTE_* variables,
//! the working directory a fresh project called `myapp`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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
