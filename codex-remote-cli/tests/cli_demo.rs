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
    // No half-installed leftovers beside it (only the lock concurrent demos share).
    assert_eq!(
        names(&cache.join("codex-remote")),
        vec![".lock".to_string(), format!("codex-{CODEX_VERSION}")]
    );
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
    // Nothing half-installed is left in the cache (only the lock concurrent demos share).
    assert_eq!(
        names(&home.join(".cache/codex-remote")),
        vec![".lock".to_string()]
    );
}

/// A sealed demo: an empty HOME, its own XDG cache, its own TMPDIR (where the demo makes its
/// scratch directory) and a bin directory first on PATH, all under one temporary directory.
struct DemoEnv {
    root: tempfile::TempDir,
}

impl DemoEnv {
    fn new() -> DemoEnv {
        let env = DemoEnv {
            root: tempfile::tempdir().unwrap(),
        };
        for dir in ["home", "cache", "tmp", "bin", "cwd"] {
            std::fs::create_dir_all(env.path(dir)).unwrap();
        }
        env
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative)
    }

    /// Where the demo caches the Codex CLI (under XDG_CACHE_HOME).
    fn cache_dir(&self) -> PathBuf {
        self.path(&format!("cache/codex-remote/codex-{CODEX_VERSION}"))
    }

    fn command(&self, args: &[&str]) -> Command {
        let path = format!(
            "{}:{}",
            self.path("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = sealed(env!("CARGO_BIN_EXE_codex-remote"), &self.path("home"));
        command
            .args(args)
            .current_dir(self.path("cwd"))
            .env("XDG_CACHE_HOME", self.path("cache"))
            .env("TMPDIR", self.path("tmp"))
            .env("PATH", path);
        command
    }

    fn write_script(&self, relative: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// An `npm` that "installs" into its `--prefix` by running `install_body` there (with the
    /// prefix as `$prefix`), logging each call.
    fn fake_npm(&self, install_body: &str) {
        let log = self.path("npm.log");
        self.write_script(
            "bin/npm",
            &format!(
                "prefix=\nwhile [ $# -gt 0 ]; do case $1 in --prefix) prefix=$2; shift ;; esac; shift; done\n\
                 echo \"$prefix\" >> '{}'\n{install_body}",
                log.display()
            ),
        );
    }

    /// An `npm` that installs the real Codex CLI (the test suite's, linked: no download).
    fn npm_linking_the_real_codex(&self, real: &Path) {
        self.fake_npm(&format!(
            "mkdir -p \"$prefix/node_modules/.bin\" && ln -s '{}' \"$prefix/node_modules/.bin/codex\"\n",
            real.display()
        ));
    }

    fn npm_calls(&self) -> usize {
        std::fs::read_to_string(self.path("npm.log"))
            .unwrap_or_default()
            .lines()
            .count()
    }

    /// `TMPDIR=...` as every process the demo starts inherits it.
    fn tmpdir_var(&self) -> String {
        format!("TMPDIR={}", self.path("tmp").display())
    }

    /// The demo's scratch directories still in its TMPDIR.
    fn scratch_dirs_left(&self) -> Vec<String> {
        names(&self.path("tmp"))
            .into_iter()
            .filter(|n| n.starts_with("codex-remote-demo-"))
            .collect()
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The real Codex CLI's entry script (what `node_modules/.bin/codex` links to).
fn real_codex() -> Option<PathBuf> {
    Some(codex_binary()?.canonicalize().unwrap())
}

fn codex_version(codex: &Path) -> String {
    text(
        &Command::new(codex)
            .arg("--version")
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
    .to_string()
}

/// Polls an observable condition until it holds; fails after 60 s.
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn sigint(child: &std::process::Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Live (not zombie) processes whose environment contains `needle`.
fn processes_with_env(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
        if state == Some(Some('Z')) || stat.is_empty() {
            continue;
        }
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        if environ
            .split(|b| *b == 0)
            .any(|var| var == needle.as_bytes())
        {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            found.push(format!("{pid} {}", text(&cmdline).replace('\0', " ")));
        }
    }
    found
}

#[test]
fn ctrl_c_during_the_demo_cancels_its_agent_stops_everything_and_removes_its_scratch_dir() {
    use codex_remote_testkit::model_server::{FakeModelServer, Reply};
    let Some(real) = real_codex() else { return };
    let env = DemoEnv::new();
    // The cached Codex is the real one, pointed at this test's server (held: the agent waits on
    // the model until the test has interrupted the demo) instead of the demo's own.
    let server = FakeModelServer::start(vec![
        Reply::exec("c1", "sleep 300"),
        Reply::message("never"),
    ]);
    server.hold();
    let codex_home = server.write_codex_home(&env.path("test-codex-home"));
    env.write_script(
        &format!("cache/codex-remote/codex-{CODEX_VERSION}/node_modules/.bin/codex"),
        &format!(
            "CODEX_HOME='{}'; export CODEX_HOME\nexec '{}' \"$@\"\n",
            codex_home.display(),
            real.display()
        ),
    );
    let marker = format!("CODEX_HOME={}", codex_home.display());
    let mut child = env
        .command(&["demo"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the demo's agent asks the model", || {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("the demo ended early ({status}): {err}");
        }
        !server.requests().is_empty()
    });
    // What must end: Codex (and anything it runs) is seen running now.
    assert!(!processes_with_env(&marker).is_empty());
    assert_eq!(env.scratch_dirs_left().len(), 1);
    sigint(&child);
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    server.release();
    assert_eq!(out.status.code(), Some(130), "{err}");
    let said: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("interrupted:"))
        .collect();
    assert_eq!(said.len(), 1, "{err}");
    assert!(
        said[0].starts_with("interrupted: the demo stopped; cancelled its run demo-")
            && said[0].contains("its scripted model server stopped")
            && said[0].ends_with(" removed"),
        "{err}"
    );
    let left = processes_with_env(&marker);
    assert!(left.is_empty(), "still running: {left:?}");
    // Nor anything else the demo started (all of it inherits the demo's TMPDIR).
    let left = processes_with_env(&env.tmpdir_var());
    assert!(left.is_empty(), "still running: {left:?}");
    assert_eq!(env.scratch_dirs_left(), Vec::<String>::new());
}

#[test]
fn ctrl_c_during_the_prerequisite_check_stops_the_demo_before_any_agent_starts() {
    let Some(real) = real_codex() else { return };
    let env = DemoEnv::new();
    // The cached Codex is the real one, except that its second `--version` (the run's
    // prerequisite check, after the cache's own) says it has started and waits for the test.
    let (count, started, gate) = (env.path("calls"), env.path("started"), env.path("gate"));
    assert!(Command::new("mkfifo")
        .arg(&gate)
        .status()
        .unwrap()
        .success());
    env.write_script(
        &format!("cache/codex-remote/codex-{CODEX_VERSION}/node_modules/.bin/codex"),
        &format!(
            "if [ \"$1\" = --version ]; then\n\
               n=$(($(cat '{count}' 2>/dev/null || echo 0) + 1)); echo $n > '{count}'\n\
               if [ $n -eq 2 ]; then : > '{started}'; read line < '{gate}'; fi\n\
             fi\nexec '{real}' \"$@\"\n",
            count = count.display(),
            started = started.display(),
            gate = gate.display(),
            real = real.display()
        ),
    );
    let child = env
        .command(&["demo"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the prerequisite check runs", || started.exists());
    assert!(!processes_with_env(&env.tmpdir_var()).is_empty());
    sigint(&child);
    // The check goes on to its end (its commands outlive a dropped future), then the demo stops.
    std::fs::write(&gate, "go\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        err.contains("interrupted: the demo stopped; no agent had started, its scripted model server stopped,"),
        "{err}"
    );
    assert!(
        !text(&out.stdout).contains("checked "),
        "no further step ran"
    );
    let left = processes_with_env(&env.tmpdir_var());
    assert!(left.is_empty(), "still running: {left:?}");
    assert_eq!(env.scratch_dirs_left(), Vec::<String>::new());
}

#[test]
fn ctrl_c_while_fetching_codex_ends_npm_and_leaves_no_partial_download() {
    use std::os::unix::process::CommandExt;
    // To the demo alone (as `kill -INT`), and to its whole process group, npm included (as a
    // terminal's Ctrl-C), where npm may end first.
    for whole_group in [false, true] {
        let env = DemoEnv::new();
        // An npm that starts writing, then hangs (as a slow registry does).
        let started = env.path("npm-started");
        env.fake_npm(&format!(
            "mkdir -p \"$prefix/node_modules\" && echo partial > \"$prefix/node_modules/x\"\n\
             CODEX_REMOTE_TEST_NPM=1 exec sleep 300 > '{}'\n",
            started.display()
        ));
        let child = env
            .command(&["demo"])
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_until("npm runs", || started.exists());
        let npm = format!("TMPDIR={}", env.path("tmp").display());
        assert!(!processes_with_env(&npm).is_empty());
        let target = if whole_group {
            format!("-{}", child.id())
        } else {
            child.id().to_string()
        };
        assert!(Command::new("kill")
            .args(["-INT", "--", &target])
            .status()
            .unwrap()
            .success());
        let out = child.wait_with_output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{err}");
        assert!(
            err.contains("interrupted: the demo stopped while fetching the Codex CLI"),
            "{err}"
        );
        assert!(!err.contains("codex-remote: error"), "{err}");
        let npm_left = processes_with_env(&npm);
        assert!(npm_left.is_empty(), "{npm_left:?}");
        let left: Vec<_> = names(&env.path("cache/codex-remote"))
            .into_iter()
            .filter(|n| n != ".lock")
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}

#[test]
fn a_relative_xdg_cache_home_is_ignored_and_json_says_a_scripted_model_stood_in() {
    let Some(codex) = codex_binary() else { return };
    let prefix = codex_prefix(&codex).expect("codex lives in an npm prefix");
    for relative in ["relcache", "~/.cache"] {
        let env = DemoEnv::new();
        // The cache the demo must use: $HOME/.cache, as with XDG_CACHE_HOME unset.
        let cache = env.path("home/.cache/codex-remote");
        std::fs::create_dir_all(&cache).unwrap();
        std::os::unix::fs::symlink(&prefix, cache.join(format!("codex-{CODEX_VERSION}"))).unwrap();
        let out = env
            .command(&["demo", "--json"])
            .env("XDG_CACHE_HOME", relative)
            .output()
            .unwrap();
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "{relative}: {stderr}");
        assert!(!stderr.contains("fetching"), "{stderr}");
        assert_eq!(names(&env.path("cwd")), Vec::<String>::new(), "{relative}");
        let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        assert_eq!(last["event"], "demo", "{stdout}");
        assert_eq!(last["scripted_model"], true);
        assert_eq!(last["kept"], false);
        assert!(last["model_server"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"));
        let project = last["project"].as_str().unwrap();
        assert!(project.ends_with("/demo-app"), "{project}");
        assert!(!Path::new(project).exists(), "the project was removed");
        assert!(stdout.lines().any(|l| l.contains("\"event\":\"summary\"")));
    }
}

/// The demo's Codex cache, broken by `break_it`, is fetched again (with an npm that links the
/// real Codex in), swapped in, and used; `said` is why the broken one could not be.
fn a_broken_cache_heals(break_it: impl FnOnce(&DemoEnv, &Path), said: &str) -> Option<DemoEnv> {
    let real = real_codex()?;
    let env = DemoEnv::new();
    env.npm_linking_the_real_codex(&real);
    let dir = env.cache_dir();
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    break_it(&env, &real);
    let out = env.command(&["demo"]).output().unwrap();
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "the cached Codex CLI in {} cannot be used ({said}",
            dir.display()
        )) && stderr.contains("fetching it again from npm"),
        "{stderr}"
    );
    assert_demo_worked(&out);
    assert_eq!(env.npm_calls(), 1);
    assert_eq!(
        codex_version(&dir.join("node_modules/.bin/codex")),
        format!("codex-cli {CODEX_VERSION}")
    );
    // Nothing beside it: no partial download, no old cache.
    assert_eq!(
        names(dir.parent().unwrap()),
        vec![".lock".to_string(), format!("codex-{CODEX_VERSION}")]
    );
    Some(env)
}

#[test]
fn a_cache_whose_codex_is_a_dangling_link_is_fetched_again_and_then_used() {
    let Some(env) = a_broken_cache_heals(
        |env, _| {
            let bin = env.cache_dir().join("node_modules/.bin");
            std::fs::create_dir_all(&bin).unwrap();
            std::fs::write(env.cache_dir().join("package.json"), "{}").unwrap();
            std::os::unix::fs::symlink("../@openai/codex/bin/codex.js", bin.join("codex")).unwrap();
        },
        "node_modules/.bin/codex is a dangling link",
    ) else {
        return;
    };
    // Healed for good: the next demo neither fetches nor complains.
    let out = env.command(&["demo"]).output().unwrap();
    assert_demo_worked(&out);
    assert!(!text(&out.stderr).contains("cannot be used"));
    assert_eq!(env.npm_calls(), 1);
}

#[test]
fn a_cache_missing_codexs_platform_package_is_fetched_again() {
    a_broken_cache_heals(
        |env, real| {
            // The launcher package without the platform one (an interrupted or pruned install).
            let package = real.parent().unwrap().parent().unwrap();
            let copy = env.cache_dir().join("node_modules/@openai/codex");
            copy_tree(package, &copy);
            let bin = env.cache_dir().join("node_modules/.bin");
            std::fs::create_dir_all(&bin).unwrap();
            std::os::unix::fs::symlink("../@openai/codex/bin/codex.js", bin.join("codex"))
                .unwrap();
        },
        "`codex --version` failed (exit status: 1): Error: Missing optional dependency @openai/codex-",
    );
}

#[test]
fn a_cache_of_another_codex_version_is_replaced_and_a_linked_install_is_left_alone() {
    let other = tempfile::tempdir().unwrap();
    let other_codex = other.path().join("node_modules/.bin/codex");
    a_broken_cache_heals(
        |env, _| {
            // The cache is a link to someone's own install, of another version.
            std::fs::create_dir_all(other_codex.parent().unwrap()).unwrap();
            std::fs::write(&other_codex, "#!/bin/sh\necho 'codex-cli 0.100.0'\n").unwrap();
            std::fs::set_permissions(
                &other_codex,
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .unwrap();
            std::os::unix::fs::symlink(other.path(), env.cache_dir()).unwrap();
        },
        "it reports `codex-cli 0.100.0`, not codex-cli 0.169.0",
    );
    // The link went; what it pointed to is untouched.
    assert_eq!(codex_version(&other_codex), "codex-cli 0.100.0");
}

#[test]
fn a_fetched_codex_that_does_not_work_fails_naming_the_directory_to_delete() {
    let env = DemoEnv::new();
    env.fake_npm(
        "mkdir -p \"$prefix/node_modules/.bin\" && printf '#!/bin/sh\\necho codex-cli 0.100.0\\n' > \"$prefix/node_modules/.bin/codex\" && chmod +x \"$prefix/node_modules/.bin/codex\"\n",
    );
    let out = env.command(&["demo"]).output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains(
            "the Codex CLI npm just installed does not work: it reports `codex-cli 0.100.0`"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "hint: delete {} and run the demo again",
            env.cache_dir().display()
        )),
        "{stderr}"
    );
    // Nothing half-installed stays: no cache that looks complete, no partial download.
    assert_eq!(
        names(&env.path("cache/codex-remote")),
        vec![".lock".to_string()]
    );
}

#[test]
fn stale_partial_downloads_are_removed_before_a_fetch_and_a_live_one_is_left_alone() {
    let Some(real) = real_codex() else { return };
    let env = DemoEnv::new();
    env.npm_linking_the_real_codex(&real);
    let parent = env.path("cache/codex-remote");
    let dir = |name: &str| {
        let dir = parent.join(name);
        std::fs::create_dir_all(dir.join("node_modules/.bin")).unwrap();
        std::fs::write(dir.join("node_modules/leftover"), "x").unwrap();
        dir
    };
    // Left by fetches that were killed, and by a swap that was.
    dir(&format!(".codex-{CODEX_VERSION}-partial-k1Ll3d"));
    dir(".codex-0.100.0-partial-oLdver");
    dir(&format!(".codex-{CODEX_VERSION}-old-Sw4pEd"));
    // Another demo's fetch, in progress: it holds its directory's lock.
    let live = dir(&format!(".codex-{CODEX_VERSION}-partial-L1veNw"));
    let held = std::fs::File::open(&live).unwrap();
    held.lock().unwrap();
    // Not ours: never touched.
    dir("unrelated");
    let out = env.command(&["demo"]).output().unwrap();
    assert_demo_worked(&out);
    assert_eq!(
        names(&parent),
        vec![
            format!(".codex-{CODEX_VERSION}-partial-L1veNw"),
            ".lock".to_string(),
            format!("codex-{CODEX_VERSION}"),
            "unrelated".to_string(),
        ]
    );
    assert!(live.join("node_modules/leftover").exists());
    drop(held);
}

#[test]
fn two_demos_fetching_at_once_both_work_and_leave_one_cache() {
    let Some(real) = real_codex() else { return };
    let env = DemoEnv::new();
    // Each npm says it has started, then waits for the test, so the two fetches overlap.
    for n in ["1", "2"] {
        assert!(Command::new("mkfifo")
            .arg(env.path(&format!("gate{n}")))
            .status()
            .unwrap()
            .success());
    }
    env.fake_npm(&format!(
        "n=$(wc -l < '{log}' | tr -d ' ')\n: > '{root}/started'$n\nread line < '{root}/gate'$n\n\
         mkdir -p \"$prefix/node_modules/.bin\" && ln -s '{real}' \"$prefix/node_modules/.bin/codex\"\n",
        log = env.path("npm.log").display(),
        root = env.path("").display(),
        real = real.display()
    ));
    let spawn = || {
        env.command(&["demo"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = spawn();
    wait_until("the first fetch runs", || env.path("started1").exists());
    let second = spawn();
    wait_until("the second fetch runs", || env.path("started2").exists());
    // Both partial downloads are live: neither demo removed the other's.
    let partials = || {
        names(&env.path("cache/codex-remote"))
            .into_iter()
            .filter(|n| n.contains("-partial-"))
            .count()
    };
    assert_eq!(partials(), 2);
    std::fs::write(env.path("gate1"), "go\n").unwrap();
    std::fs::write(env.path("gate2"), "go\n").unwrap();
    for child in [first, second] {
        assert_demo_worked(&child.wait_with_output().unwrap());
    }
    assert_eq!(env.npm_calls(), 2);
    assert_eq!(
        names(&env.path("cache/codex-remote")),
        vec![".lock".to_string(), format!("codex-{CODEX_VERSION}")]
    );
}

#[test]
fn a_failing_npm_shows_its_error_lines_and_the_registry_hint_apart() {
    let env = DemoEnv::new();
    // What npm 10 prints when the registry cannot be reached (its stack frames included).
    env.fake_npm(
        "cat >&2 <<'EOF'\n\
npm error code ECONNREFUSED\n\
npm error syscall connect\n\
npm error errno ECONNREFUSED\n\
npm error FetchError: request to http://127.0.0.1:9/@openai%2fcodex failed, reason: connect ECONNREFUSED 127.0.0.1:9\n\
npm error     at ClientRequest.<anonymous> (/usr/lib/node_modules/npm/node_modules/minipass-fetch/lib/index.js:130:14)\n\
npm error     at ClientRequest.emit (node:events:524:28)\n\
npm error\n\
npm error If you are behind a proxy, please make sure that the 'proxy' config is set properly.  See: 'npm help config'\n\
npm error A complete log of this run can be found in: /root/.npm/_logs/2026-11-25T15_38_42_106Z-debug-0.log\n\
EOF\nexit 1\n",
    );
    let out = env.command(&["demo"]).output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("codex-remote: error:"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        error.contains("failed (exit status: 1): code ECONNREFUSED; syscall connect; errno ECONNREFUSED; FetchError: request to http://127.0.0.1:9/@openai%2fcodex failed, reason: connect ECONNREFUSED 127.0.0.1:9; If you are behind a proxy"),
        "{error}"
    );
    assert!(error.contains("(A complete log of this run can be found in: /root/.npm/_logs/"));
    assert!(!error.contains("ClientRequest"), "{error}");
    assert!(!error.contains("npm config get registry"), "{error}");
    assert!(
        stderr.contains("hint: check that the npm registry is reachable"),
        "{stderr}"
    );
}

#[test]
fn without_git_the_demo_says_git_is_missing() {
    let Some(codex) = codex_binary() else { return };
    let prefix = codex_prefix(&codex).expect("codex lives in an npm prefix");
    let env = DemoEnv::new();
    std::fs::create_dir_all(env.cache_dir().parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&prefix, env.cache_dir()).unwrap();
    // Everything on PATH but git.
    let bin = env.path("no-git-bin");
    std::fs::create_dir_all(&bin).unwrap();
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap()) {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name();
            if name != "git" && !bin.join(&name).exists() {
                let _ = std::os::unix::fs::symlink(entry.path(), bin.join(&name));
            }
        }
    }
    let out = env.command(&["demo"]).env("PATH", &bin).output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("codex-remote: error: `git` was not found on host `local`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: install `git` on `local`"),
        "{stderr}"
    );
}

#[test]
fn demo_refuses_a_config_file_it_would_ignore_but_not_codex_remote_config_in_the_env() {
    let env = DemoEnv::new();
    std::fs::write(env.path("cwd/my.toml"), "").unwrap();
    let out = env
        .command(&["demo", "--config", "my.toml"])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`demo` reads no config file") && stderr.contains("--config my.toml"),
        "{stderr}"
    );
    // Set for every command in the environment: not the demo's business, not refused (this
    // demo then stops at the missing npm, with exit 4).
    let out = env
        .command(&["demo"])
        .env("CODEX_REMOTE_CONFIG", "my.toml")
        .env("PATH", env.path("bin"))
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("install Node.js and npm"), "{stderr}");
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap();
    }
}
