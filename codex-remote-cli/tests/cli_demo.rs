//! The README's first command, run exactly as the README writes it, from a fresh clone with an
//! empty HOME: the demo shows the whole workflow working. And the demo's own fetch of the pinned
//! Codex CLI from npm into an empty cache.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use codex_remote_testkit::in_ci;
use codex_remote_testkit::model_server::codex_binary;

const CODEX_VERSION: &str = "0.169.0";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// The first command of the README's set-up section (the first line of its first `sh` block
/// that is not a comment).
fn readme_first_command() -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Set up"))
        .expect("the README has a set-up section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .expect("the set-up section has a sh block");
    block
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .expect("the block has a command")
        .to_string()
}

/// The npm prefix the test suite's Codex CLI was installed into (`PREFIX/node_modules/.bin/codex`).
fn codex_prefix(codex: &Path) -> Option<PathBuf> {
    let codex = codex.canonicalize().ok()?;
    codex
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "node_modules"))
        .and_then(Path::parent)
        .map(Path::to_path_buf)
}

/// A command with an empty HOME and none of the variables that could set codex-remote or Codex
/// up behind the test's back.
fn sealed(program: &str, home: &Path) -> Command {
    let mut command = Command::new(program);
    command
        .env("HOME", home)
        .env_remove("XDG_CACHE_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("CODEX_HOME")
        .env_remove("OPENAI_API_KEY")
        .env_remove("CODEX_API_KEY")
        .stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("CODEX_REMOTE_") {
            command.env_remove(k);
        }
    }
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_demo_worked(out: &Output) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // Said on screen: a scripted model server stands in for OpenAI.
    assert!(
        stdout.contains("A scripted model server on 127.0.0.1 stands in for OpenAI"),
        "{stdout}"
    );
    // The prerequisite check ran, and found the scripted provider needs no login.
    assert!(
        stdout.contains("codex-cli 0.169.0 found on `local`; model provider `fake` needs no login"),
        "{stdout}"
    );
    // The real pipeline ran and the change landed in the throwaway project.
    assert!(stdout.contains("(applied)"), "{stdout}");
    assert!(stdout.contains("src/greet.ts   | added"), "{stdout}");
    assert!(stdout.contains("return `Hello, ${name}!`;"), "{stdout}");
    assert!(stderr.contains("pushed 3 files"), "{stderr}");
    assert!(stderr.contains("agent: Added src/greet.ts"), "{stderr}");
}

#[test]
fn the_readmes_first_command_runs_the_demo_from_a_fresh_clone_with_an_empty_home() {
    let command = readme_first_command();
    assert_eq!(command, "cargo run -q -p codex-remote-cli -- demo");
    let Some(codex) = codex_binary() else { return };
    let prefix = codex_prefix(&codex).expect("codex lives in an npm prefix");
    let scratch = tempfile::tempdir().unwrap();
    let clone = scratch.path().join("codex-remote");
    let status = Command::new("git")
        .args(["clone", "-q"])
        .arg(repo_root())
        .arg(&clone)
        .status()
        .unwrap();
    assert!(status.success(), "git clone failed");
    let home = scratch.path().join("home");
    // The Codex CLI is already in the cache the demo uses (as after its first run), so the
    // test needs no network; the fetch itself is the next test's.
    let cache = home.join(".cache/codex-remote");
    std::fs::create_dir_all(&cache).unwrap();
    std::os::unix::fs::symlink(&prefix, cache.join(format!("codex-{CODEX_VERSION}"))).unwrap();
    let target = seeded_target_dir();
    let real_home = PathBuf::from(std::env::var_os("HOME").expect("HOME is set"));
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| real_home.join(".cargo"));
    let rustup_home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| real_home.join(".rustup"));
    let out = sealed("sh", &home)
        .arg("-c")
        .arg(&command)
        .current_dir(&clone)
        .env("CARGO_TARGET_DIR", target.path())
        .env("CARGO_HOME", cargo_home)
        .env("RUSTUP_HOME", rustup_home)
        .env("CARGO_NET_OFFLINE", "true")
        .output()
        .unwrap();
    assert_demo_worked(&out);
    assert!(
        !text(&out.stderr).contains("fetching"),
        "{}",
        text(&out.stderr)
    );
    // Nothing but the Codex cache was written to the HOME (the project was a throwaway).
    let entries: Vec<_> = std::fs::read_dir(&home)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, vec![std::ffi::OsString::from(".cache")]);
}

/// A target directory for the clone's build holding the already-built dependencies, so only
/// the clone's own crates are compiled. Cargo names a workspace crate's artifacts by its path
/// *relative to the workspace*, so building the clone in this checkout's own target directory
/// would replace this checkout's binary and libraries with the clone's (and make the next build
/// here start over). Instead the dependencies' artifacts are hard-linked into a directory of
/// their own beside them (cargo never rewrites a fresh artifact; the workspace's crates, which
/// it does build, are left out), removed with the test.
fn seeded_target_dir() -> tempfile::TempDir {
    let built = Path::new(env!("CARGO_BIN_EXE_codex-remote"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf();
    let target = tempfile::Builder::new()
        .prefix("readme-clone-target-")
        .tempdir_in(&built)
        .unwrap();
    for dir in ["deps", "build", ".fingerprint"] {
        let from = built.join("debug").join(dir);
        let to = target.path().join("debug").join(dir);
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(&from).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = name.contains("codex_remote") || name.contains("codex-remote");
            if !ours {
                link_tree(&entry.path(), &to.join(&name));
            }
        }
    }
    target
}

fn link_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            link_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else if std::fs::hard_link(from, to).is_err() {
        // A file that vanished meanwhile, or a file system without hard links: copy.
        let _ = std::fs::copy(from, to);
    }
}

#[test]
fn the_demo_fetches_the_pinned_codex_from_npm_into_an_empty_cache() {
    let npm_works = Command::new("npm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !npm_works {
        assert!(!in_ci(), "npm is missing: CI must have it (see .ci/run)");
        eprintln!("skipping: npm is not installed");
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let home = scratch.path().join("home");
    let cache = scratch.path().join("xdg-cache");
    std::fs::create_dir_all(&home).unwrap();
    // npm's own download cache is the user's (so CI's earlier install of the same version
    // serves it); the demo's cache, where Codex is installed, starts empty.
    let npm_cache = text(
        &Command::new("npm")
            .args(["config", "get", "cache"])
            .output()
            .unwrap()
            .stdout,
    );
    let out = sealed(env!("CARGO_BIN_EXE_codex-remote"), &home)
        .arg("demo")
        .current_dir(scratch.path())
        .env("XDG_CACHE_HOME", &cache)
        .env("npm_config_cache", npm_cache.trim())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "fetching the Codex CLI {CODEX_VERSION} from npm into {}",
            cache
                .join(format!("codex-remote/codex-{CODEX_VERSION}"))
                .display()
        )),
        "{stderr}"
    );
    assert_demo_worked(&out);
    let installed = cache.join(format!(
        "codex-remote/codex-{CODEX_VERSION}/node_modules/.bin/codex"
    ));
    let version = Command::new(&installed).arg("--version").output().unwrap();
    assert!(text(&version.stdout).contains(CODEX_VERSION));
    // No half-installed leftovers beside it.
    let leftovers: Vec<_> = std::fs::read_dir(cache.join("codex-remote"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}

#[test]
fn without_npm_the_demo_exits_4_with_the_fix() {
    let scratch = tempfile::tempdir().unwrap();
    let home = scratch.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let out = sealed(env!("CARGO_BIN_EXE_codex-remote"), &home)
        .arg("demo")
        .current_dir(scratch.path())
        .env("PATH", scratch.path().join("no-such-bin"))
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("fetching the Codex CLI"), "{stderr}");
    assert!(stderr.contains("install Node.js and npm"), "{stderr}");
    // Nothing half-installed is left in the cache.
    let cache = home.join(".cache/codex-remote");
    let left: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
