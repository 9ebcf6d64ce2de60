//! The demo's cache of the pinned Codex CLI: an npm prefix at
//! `$XDG_CACHE_HOME/codex-remote/codex-VERSION` (else `~/.cache/...`; a relative
//! `XDG_CACHE_HOME` is ignored, as the XDG spec says).
//!
//! The cached CLI is checked every time by running `codex --version`: a missing, broken (a
//! dangling `.bin/codex`, a missing platform package) or other-version Codex is fetched again with
//! npm into a partial directory beside it, checked, and swapped in: the bad one renamed aside,
//! the new one renamed in, the old one removed. So a broken cache heals on the next demo.
//!
//! Concurrent demos: a lock file (`.lock` beside the cache) serialises the short steps that
//! touch the cache's names (cleaning up, creating a partial directory, the swap), and each fetch
//! holds a lock on its own partial directory for as long as it runs. A partial directory nobody
//! holds is the leftover of an interrupted fetch, and is removed before the next fetch.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use super::interrupt::Listener;
use crate::error::CliError;

/// The Codex CLI version the demo runs (the same pin as `.ci/run`).
pub const CODEX_VERSION: &str = "0.169.0";

/// The npm package of the Codex CLI.
const CODEX_PACKAGE: &str = "@openai/codex";

/// How long `codex --version` may take before the cached CLI counts as broken.
const VERSION_TIMEOUT: Duration = Duration::from_secs(60);

/// At most this many of npm's `npm error` lines are shown when a fetch fails.
const NPM_ERROR_LINES: usize = 10;

/// Where the pinned Codex CLI is cached: `$XDG_CACHE_HOME/codex-remote/codex-VERSION`, else
/// `~/.cache/codex-remote/codex-VERSION`.
pub fn cache_dir() -> Option<PathBuf> {
    Some(
        codex_remote_core::config::xdg_dir("XDG_CACHE_HOME", ".cache")?
            .join("codex-remote")
            .join(format!("codex-{CODEX_VERSION}")),
    )
}

/// The `codex` of an npm prefix.
fn codex_in(prefix: &Path) -> PathBuf {
    prefix.join("node_modules/.bin/codex")
}

fn prerequisite(detail: String, fix: impl Into<String>) -> CliError {
    CliError::Core(codex_remote_core::Error::Prerequisite {
        host: "local".into(),
        problem: "the demo cannot get the Codex CLI".into(),
        detail,
        fix: fix.into(),
    })
}

const INSTALL_NODE: &str = "install Node.js and npm (https://nodejs.org), then run the demo again";

/// Why a Codex CLI cannot be the demo's.
#[derive(Debug)]
enum Unusable {
    /// `node` is not on PATH: no download would help.
    NoNode,
    /// Broken or the wrong version: fetching again helps.
    Broken(String),
}

/// Runs `codex --version` and compares it with the pin.
async fn check(codex: &Path) -> Result<(), Unusable> {
    if !codex.exists() {
        return Err(Unusable::Broken(match codex.symlink_metadata() {
            Ok(_) => "node_modules/.bin/codex is a dangling link".into(),
            Err(_) => "node_modules/.bin/codex is missing".into(),
        }));
    }
    let output = tokio::process::Command::new(codex)
        .arg("--version")
        .stdin(Stdio::null())
        // Its own process group: a terminal's Ctrl-C is the demo's to act on, not a failure
        // of the cache.
        .process_group(0)
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(VERSION_TIMEOUT, output).await {
        Err(_) => {
            return Err(Unusable::Broken(format!(
                "`codex --version` did not answer within {} s",
                VERSION_TIMEOUT.as_secs()
            )))
        }
        Ok(Err(e)) => {
            return Err(Unusable::Broken(format!(
                "`codex --version` could not be started: {e}"
            )))
        }
        Ok(Ok(output)) => output,
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    // `#!/usr/bin/env node`: env says `node` is missing and exits 127.
    if output.status.code() == Some(127) && stderr.contains("node") {
        return Err(Unusable::NoNode);
    }
    if !output.status.success() {
        // Node's own report of an uncaught error is a stack; its `Error: ...` line says it.
        let said = stderr
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("Error") || l.contains("Error:"))
            .or_else(|| stderr.lines().map(str::trim).find(|l| !l.is_empty()))
            .unwrap_or("");
        return Err(Unusable::Broken(format!(
            "`codex --version` failed ({}){}{}",
            output.status,
            if said.is_empty() { "" } else { ": " },
            bounded(said, 300)
        )));
    }
    let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if version != format!("codex-cli {CODEX_VERSION}") {
        return Err(Unusable::Broken(format!(
            "it reports `{}`, not codex-cli {CODEX_VERSION}",
            bounded(&version, 100)
        )));
    }
    Ok(())
}

fn bounded(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}

/// The cached Codex CLI, checked; fetched from npm first when it is missing or unusable.
/// `None` when Ctrl-C stopped the fetch (npm ended, its partial directory removed).
pub async fn ensure(quiet: bool, interrupt: &mut Listener) -> Result<Option<PathBuf>, CliError> {
    let dir = cache_dir().ok_or_else(|| {
        prerequisite(
            "HOME is not set (and XDG_CACHE_HOME is not an absolute path)".into(),
            "set HOME (the Codex CLI is cached under ~/.cache/codex-remote)",
        )
    })?;
    let codex = codex_in(&dir);
    let present = dir.symlink_metadata().is_ok();
    if present {
        let checked = check(&codex).await;
        if interrupt.was_heard().await {
            return Ok(None);
        }
        match checked {
            Ok(()) => return Ok(Some(codex)),
            Err(Unusable::NoNode) => return Err(no_node()),
            Err(Unusable::Broken(why)) => {
                if !quiet {
                    eprintln!(
                        "the cached Codex CLI in {} cannot be used ({why}); fetching it again from npm...",
                        dir.display()
                    );
                }
            }
        }
    } else if !quiet {
        eprintln!(
            "fetching the Codex CLI {CODEX_VERSION} from npm into {} (first run only)...",
            dir.display()
        );
    }
    let started = Instant::now();
    let parent = dir.parent().expect("the cache dir has a parent");
    std::fs::create_dir_all(parent).map_err(CliError::io(format!(
        "creating the cache directory {}",
        parent.display()
    )))?;
    let Some(partial) = fetch(parent, interrupt).await? else {
        return Ok(None);
    };
    match check(&codex_in(partial.path())).await {
        Ok(()) => {}
        Err(Unusable::NoNode) => return Err(no_node()),
        Err(Unusable::Broken(why)) => {
            return Err(prerequisite(
                format!("the Codex CLI npm just installed does not work: {why}"),
                format!(
                    "delete {} and run the demo again; if it fails the same way, try `npm install {CODEX_PACKAGE}@{CODEX_VERSION}` by hand",
                    dir.display()
                ),
            ))
        }
    }
    install(partial, &dir).await?;
    if !quiet {
        eprintln!(
            "fetched the Codex CLI {CODEX_VERSION} in {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(Some(codex))
}

fn no_node() -> CliError {
    prerequisite(
        "`node` was not found on PATH (the Codex CLI from npm runs on Node.js)".into(),
        INSTALL_NODE,
    )
}

/// The lock that serialises changes to the cache's names; held until dropped (the file is
/// kept only for its lock).
struct CacheLock(#[allow(dead_code)] File);

impl CacheLock {
    fn take(parent: &Path) -> Result<CacheLock, CliError> {
        let path = parent.join(".lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(CliError::io(format!("opening {}", path.display())))?;
        // Held by another demo only for a moment (a clean-up, a rename, a removal).
        file.lock()
            .map_err(CliError::io(format!("locking {}", path.display())))?;
        Ok(CacheLock(file))
    }
}

/// A fetch's directory beside the cache, locked while it lives, removed unless installed.
struct Partial {
    dir: tempfile::TempDir,
    _lock: File,
}

impl Partial {
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Whether `name` is one of the names a fetch or a swap uses beside the cache.
fn is_scratch_name(name: &str) -> bool {
    name.starts_with(".codex-") && (name.contains("-partial-") || name.contains("-old-"))
}

/// Removes what interrupted fetches and swaps left beside the cache: partial directories no live
/// fetch holds, and bad caches renamed aside (a swap removes its own under the cache lock, so
/// any still here was interrupted). Called with the cache lock held.
fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str().filter(|n| is_scratch_name(n)) else {
            continue;
        };
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if !is_dir {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        if name.contains("-partial-") {
            let Ok(handle) = File::open(&path) else {
                continue;
            };
            // Held: a fetch in progress (another demo's). Ours to remove otherwise.
            if handle.try_lock().is_err() {
                continue;
            }
            let _ = std::fs::remove_dir_all(&path);
        } else {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// `npm install`s the pinned Codex CLI into a new partial directory beside the cache.
async fn fetch(parent: &Path, interrupt: &mut Listener) -> Result<Option<Partial>, CliError> {
    let partial = {
        let _lock = CacheLock::take(parent)?;
        remove_stale(parent);
        let dir = tempfile::Builder::new()
            .prefix(&format!(".codex-{CODEX_VERSION}-partial-"))
            .tempdir_in(parent)
            .map_err(CliError::io("creating the download directory"))?;
        let lock = File::open(dir.path())
            .and_then(|f| f.try_lock().map_err(std::io::Error::other).map(|()| f))
            .map_err(CliError::io("locking the download directory"))?;
        Partial { dir, _lock: lock }
    };
    let mut npm = tokio::process::Command::new("npm")
        .args(["install", "--prefix"])
        .arg(partial.path())
        .args(["--no-audit", "--no-fund", "--loglevel=error"])
        .arg(format!("{CODEX_PACKAGE}@{CODEX_VERSION}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own process group: a terminal's Ctrl-C reaches the demo only, which ends npm
        // itself (an npm ended by the same Ctrl-C could be seen failing before the Ctrl-C).
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| prerequisite(format!("`npm` could not be started: {e}"), INSTALL_NODE))?;
    let mut stderr = npm.stderr.take().expect("stderr is piped");
    let said = tokio::spawn(async move {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text).await;
        String::from_utf8_lossy(&text).into_owned()
    });
    let status = tokio::select! {
        status = npm.wait() => status.map_err(CliError::io("waiting for npm"))?,
        _ = interrupt.heard() => {
            // npm ends before its directory goes, so nothing is written there afterwards.
            let _ = npm.kill().await;
            drop(partial);
            return Ok(None);
        }
    };
    let said = said.await.unwrap_or_default();
    if interrupt.was_heard().await {
        drop(partial);
        return Ok(None);
    }
    if !status.success() {
        return Err(prerequisite(
            format!(
                "`npm install {CODEX_PACKAGE}@{CODEX_VERSION}` failed ({status}): {}",
                npm_errors(&said)
            ),
            "check that the npm registry is reachable (`npm config get registry`; a proxy needs npm's `proxy` setting), then run the demo again",
        ));
    }
    Ok(Some(partial))
}

/// What npm said about its failure, on one line: its `npm error` lines (at most
/// [`NPM_ERROR_LINES`], without stack frames and blank ones), then where its full log is.
fn npm_errors(stderr: &str) -> String {
    let mut log = None;
    let mut lines = Vec::new();
    let mut more = 0;
    for line in stderr.lines() {
        let Some(said) = line
            .strip_prefix("npm error")
            .or_else(|| line.strip_prefix("npm ERR!"))
        else {
            continue;
        };
        let said = said.trim();
        if said.is_empty() || said.starts_with("at ") {
            continue;
        }
        if said.starts_with("A complete log of this run can be found in") {
            log = Some(said.to_string());
        } else if lines.len() < NPM_ERROR_LINES {
            lines.push(said.to_string());
        } else {
            more += 1;
        }
    }
    if lines.is_empty() {
        // Not npm's usual words: its last line, whatever it is.
        lines.extend(
            stderr
                .lines()
                .map(str::trim)
                .rfind(|l| !l.is_empty())
                .map(str::to_string),
        );
    }
    let mut text = lines.join("; ");
    if more > 0 {
        text.push_str(&format!(" ({more} more npm error lines)"));
    }
    if let Some(log) = log {
        text.push_str(&format!(" ({log})"));
    }
    text
}

/// Swaps the fetched Codex in: unless a concurrent demo has put a working one there meanwhile,
/// the bad one (if any) is renamed aside, the new one renamed in, and the old one removed.
async fn install(partial: Partial, dir: &Path) -> Result<(), CliError> {
    let parent = dir.parent().expect("the cache dir has a parent");
    let _lock = CacheLock::take(parent)?;
    let present = dir.symlink_metadata().is_ok();
    if present && check(&codex_in(dir)).await.is_ok() {
        // Another demo healed it while this one fetched: theirs is as good.
        return Ok(());
    }
    let delete_it = || {
        format!(
            "delete {} (and anything named .codex-*-partial-* beside it), then run the demo again",
            dir.display()
        )
    };
    let aside = if present {
        let old = tempfile::Builder::new()
            .prefix(&format!(".codex-{CODEX_VERSION}-old-"))
            .tempdir_in(parent)
            .map_err(CliError::io(
                "creating a directory to move the old Codex CLI into",
            ))?
            .keep();
        std::fs::rename(dir, old.join("codex")).map_err(|e| {
            let _ = std::fs::remove_dir(&old);
            CliError::Hinted {
                source: Box::new(CliError::io(format!(
                    "moving the unusable Codex CLI in {} aside",
                    dir.display()
                ))(e)),
                hint: delete_it(),
            }
        })?;
        Some(old)
    } else {
        None
    };
    if let Err(e) = std::fs::rename(partial.path(), dir) {
        if let Some(old) = &aside {
            let _ = std::fs::rename(old.join("codex"), dir);
        }
        return Err(CliError::Hinted {
            source: Box::new(CliError::io(format!(
                "moving the fetched Codex CLI into {}",
                dir.display()
            ))(e)),
            hint: delete_it(),
        });
    }
    // Installed: its directory is the cache now, not a partial one to remove.
    let _ = partial.dir.keep();
    if let Some(old) = aside {
        // The old one may be a link (to an install elsewhere): the link goes, never its target.
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pin_is_the_one_ci_installs() {
        let ci = include_str!("../../../.ci/run");
        assert!(
            ci.contains(&format!("CODEX_VERSION={CODEX_VERSION}\n")),
            "the demo's Codex pin ({CODEX_VERSION}) differs from .ci/run's"
        );
    }

    #[test]
    fn npm_errors_are_its_error_lines_bounded_and_its_log() {
        let mut stderr = String::from(
            "npm warn deprecated x\nnpm error code ECONNREFUSED\nnpm error syscall connect\nnpm error FetchError: request to http://127.0.0.1:9/@openai%2fcodex failed\nnpm error     at ClientRequest.<anonymous> (/usr/lib/node_modules/npm/x.js:130:14)\nnpm error\n",
        );
        for i in 0..20 {
            stderr.push_str(&format!("npm error line {i}\n"));
        }
        stderr.push_str("npm error A complete log of this run can be found in: /root/.npm/_logs/x-debug-0.log\n");
        let text = npm_errors(&stderr);
        assert!(
            text.starts_with("code ECONNREFUSED; syscall connect; FetchError: request to http://127.0.0.1:9/@openai%2fcodex failed; line 0;"),
            "{text}"
        );
        assert!(!text.contains("ClientRequest"), "{text}");
        assert!(!text.contains("line 7"), "{text}");
        assert!(text.contains("(13 more npm error lines)"), "{text}");
        assert!(
            text.ends_with(
                "(A complete log of this run can be found in: /root/.npm/_logs/x-debug-0.log)"
            ),
            "{text}"
        );
        assert_eq!(npm_errors("something else\nlast words\n\n"), "last words");
    }

    #[test]
    fn only_partial_and_old_names_are_ever_cleaned_up() {
        assert!(is_scratch_name(".codex-0.169.0-partial-aB3"));
        assert!(is_scratch_name(".codex-0.169.0-old-aB3"));
        assert!(!is_scratch_name("codex-0.169.0"));
        assert!(!is_scratch_name(".lock"));
        assert!(!is_scratch_name("codex-0.169.0-partial-x"));
    }
}
