//! An in-memory [`Transport`]: files live in a map, commands are answered by handlers.
//!
//! Built-in handlers cover what the core's helpers run (`cat`, `true`, `printf '%s…'`, `sleep`
//! that ends only when cancelled) and the core's fixed scripts, recognised by their
//! [`CommandSpec::name`] (never by their text): `write-atomic`, `tar-push`, the run-tree
//! scripts `prepare-run` (the tree is a copy of the mirror), `retrieve-patch` (prints what a
//! [`FakeExecutor`](crate::FakeExecutor) attempt left in the tree) and `remove-run`, and
//! `prerequisite-probe` (codex present and logged in). Tests add their own with
//! [`FakeTransport::on`] (by program) or [`FakeTransport::on_script`] (by script name). Every
//! command is logged for assertions.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use codex_remote_core::config::Config;
use codex_remote_core::host::HostSpec;
use codex_remote_core::transport::{
    script_names, BoxWriter, CommandSpec, ExitStatus, ProcessControl, RemoteProcess, Stdin,
    Transport, TransportError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// The baseline commit id `prepare-run` reports on the fake host.
pub const FAKE_BASELINE: &str = "0123456789abcdef0123456789abcdef01234567";

/// The home directory of the fake host (what `~` means).
pub const FAKE_HOME: &str = "/home/fake";

/// What a handler answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeOutput {
    /// Bytes on stdout.
    pub stdout: Vec<u8>,
    /// Bytes on stderr.
    pub stderr: Vec<u8>,
    /// Exit code.
    pub code: i32,
}

impl FakeOutput {
    /// Success with this stdout.
    pub fn ok(stdout: impl Into<Vec<u8>>) -> Self {
        Self {
            stdout: stdout.into(),
            ..Self::default()
        }
    }

    /// Failure with this code and stderr.
    pub fn fail(code: i32, stderr: impl Into<Vec<u8>>) -> Self {
        Self {
            code,
            stderr: stderr.into(),
            ..Self::default()
        }
    }
}

/// A handler: the command (with `cwd` resolved), its stdin, and the file system.
pub type Handler = Arc<dyn Fn(&CommandSpec, &[u8], &mut FakeFs) -> FakeOutput + Send + Sync>;

/// The fake host's files: absolute path to contents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeFs {
    /// Files by absolute path.
    pub files: BTreeMap<String, Vec<u8>>,
}

impl FakeFs {
    /// Resolves `path` against `cwd` and `~`.
    pub fn resolve(cwd: Option<&str>, path: &str) -> String {
        let expand = |p: &str| {
            if p == "~" {
                FAKE_HOME.to_string()
            } else if let Some(rest) = p.strip_prefix("~/") {
                format!("{FAKE_HOME}/{rest}")
            } else {
                p.to_string()
            }
        };
        let path = expand(path);
        let joined = if path.starts_with('/') {
            path
        } else {
            format!("{}/{}", expand(cwd.unwrap_or("~")), path)
        };
        let mut parts: Vec<&str> = Vec::new();
        for part in joined.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                p => parts.push(p),
            }
        }
        format!("/{}", parts.join("/"))
    }
}

#[derive(Default)]
struct State {
    fs: FakeFs,
    log: Vec<CommandSpec>,
    cancelled: Vec<CommandSpec>,
    unreachable: bool,
}

/// An in-memory host.
#[derive(Clone)]
pub struct FakeTransport {
    host: HostSpec,
    state: Arc<Mutex<State>>,
    handlers: Arc<Mutex<HashMap<String, Handler>>>,
}

impl Default for FakeTransport {
    fn default() -> Self {
        Self::new(Config::builtin().host(Some("fake")).expect("valid host"))
    }
}

impl FakeTransport {
    /// A fake for this host spec.
    pub fn new(host: HostSpec) -> Self {
        Self {
            host,
            state: Arc::default(),
            handlers: Arc::default(),
        }
    }

    /// Answers `program` with `handler` (replacing a built-in).
    pub fn on(
        &self,
        program: &str,
        handler: impl Fn(&CommandSpec, &[u8], &mut FakeFs) -> FakeOutput + Send + Sync + 'static,
    ) {
        self.handlers
            .lock()
            .unwrap()
            .insert(program.to_string(), Arc::new(handler));
    }

    /// Answers the fixed script named `name` with `handler` (replacing a built-in).
    pub fn on_script(
        &self,
        name: &'static str,
        handler: impl Fn(&CommandSpec, &[u8], &mut FakeFs) -> FakeOutput + Send + Sync + 'static,
    ) {
        self.handlers
            .lock()
            .unwrap()
            .insert(format!("script:{name}"), Arc::new(handler));
    }

    /// Whether any file lies under `dir` on the fake host.
    pub fn has_files_under(&self, dir: &str) -> bool {
        let prefix = format!("{}/", FakeFs::resolve(None, dir));
        self.state
            .lock()
            .unwrap()
            .fs
            .files
            .keys()
            .any(|path| path.starts_with(&prefix))
    }

    /// Puts a file on the fake host.
    pub fn put_file(&self, path: &str, contents: impl Into<Vec<u8>>) {
        self.state
            .lock()
            .unwrap()
            .fs
            .files
            .insert(FakeFs::resolve(None, path), contents.into());
    }

    /// A file's contents.
    pub fn file(&self, path: &str) -> Option<Vec<u8>> {
        self.state
            .lock()
            .unwrap()
            .fs
            .files
            .get(&FakeFs::resolve(None, path))
            .cloned()
    }

    /// Every command run so far.
    pub fn log(&self) -> Vec<CommandSpec> {
        self.state.lock().unwrap().log.clone()
    }

    /// Every command cancelled so far.
    pub fn cancelled(&self) -> Vec<CommandSpec> {
        self.state.lock().unwrap().cancelled.clone()
    }

    /// Makes the host unreachable (every spawn fails as a connection error).
    pub fn set_unreachable(&self, unreachable: bool) {
        self.state.lock().unwrap().unreachable = unreachable;
    }

    fn builtin(spec: &CommandSpec, stdin: &[u8], fs: &mut FakeFs) -> Option<FakeOutput> {
        let args: Vec<&str> = spec.args.iter().map(String::as_str).collect();
        // Fixed scripts are recognised by their name, their data read from the positional
        // arguments after `sh -c BODY sh`.
        let positional: &[&str] = match args.as_slice() {
            ["-c", _, "sh", rest @ ..] => rest,
            _ => &[],
        };
        Some(match (spec.program.as_str(), args.as_slice()) {
            ("true", _) => FakeOutput::ok(""),
            ("false", _) => FakeOutput::fail(1, ""),
            ("cat", []) => FakeOutput::ok(stdin.to_vec()),
            ("cat", ["--", path]) | ("cat", [path]) => {
                let path = FakeFs::resolve(spec.cwd.as_deref(), path);
                match fs.files.get(&path) {
                    Some(data) => FakeOutput::ok(data.clone()),
                    None => {
                        FakeOutput::fail(1, format!("cat: {path}: No such file or directory\n"))
                    }
                }
            }
            ("printf", [format, rest @ ..]) => FakeOutput::ok(printf(format, rest)),
            ("sh", _) if spec.name == Some(script_names::WRITE_ATOMIC) => {
                let [path] = positional else {
                    return Some(FakeOutput::fail(2, "write-atomic: one path\n"));
                };
                fs.files
                    .insert(FakeFs::resolve(spec.cwd.as_deref(), path), stdin.to_vec());
                FakeOutput::ok("")
            }
            ("sh", _) if spec.name == Some(script_names::TAR_PUSH) => {
                let [mirror, _lock] = positional else {
                    return Some(FakeOutput::fail(2, "tar-push: mirror and lock\n"));
                };
                // Replace the mirror with the archive's files, keeping its .git, as the script does.
                let mirror = FakeFs::resolve(spec.cwd.as_deref(), mirror);
                let prefix = format!("{mirror}/");
                fs.files.retain(|path, _| {
                    !path.starts_with(&prefix) || path.starts_with(&format!("{prefix}.git/"))
                });
                let mut archive = tar::Archive::new(stdin);
                let entries = match archive.entries() {
                    Ok(entries) => entries,
                    Err(e) => return Some(FakeOutput::fail(2, format!("tar: {e}\n"))),
                };
                for entry in entries {
                    let mut entry = match entry {
                        Ok(entry) => entry,
                        Err(e) => return Some(FakeOutput::fail(2, format!("tar: {e}\n"))),
                    };
                    if !entry.header().entry_type().is_file() {
                        continue;
                    }
                    let path = entry
                        .path()
                        .map(|p| p.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let mut data = Vec::new();
                    use std::io::Read;
                    if entry.read_to_end(&mut data).is_err() {
                        return Some(FakeOutput::fail(2, "tar: short read\n"));
                    }
                    fs.files.insert(FakeFs::resolve(Some(&mirror), &path), data);
                }
                FakeOutput::ok("")
            }
            ("sh", _) if spec.name == Some(script_names::PREREQUISITE_PROBE) => {
                // A fake host has codex and a login (tests answer otherwise with `on_script`).
                FakeOutput::ok("version 0 codex-cli 0.169.0\nlogin 0 Logged in using ChatGPT\n")
            }
            ("sh", _) if spec.name == Some(script_names::PREPARE_RUN) => {
                // Leases the lowest free slot (`<trees>/<n>.lease/run` holds the run id); its
                // tree becomes a copy of the mirror (without its .git); the baseline is a fixed
                // commit id.
                let [mirror, _lock, trees, name, id, ..] = positional else {
                    return Some(FakeOutput::fail(2, "prepare-run: too few arguments\n"));
                };
                let mirror = format!("{}/", FakeFs::resolve(spec.cwd.as_deref(), mirror));
                let trees = FakeFs::resolve(spec.cwd.as_deref(), trees);
                let slot = (0u32..)
                    .find(|n| !fs.files.contains_key(&format!("{trees}/{n}.lease/run")))
                    .expect("a free slot");
                fs.files.insert(
                    format!("{trees}/{slot}.lease/run"),
                    format!("{id}\n").into(),
                );
                let tree = format!("{trees}/{slot}/{name}");
                fs.files
                    .retain(|path, _| !path.starts_with(&format!("{tree}/")));
                let copies: Vec<(String, Vec<u8>)> = fs
                    .files
                    .iter()
                    .filter_map(|(path, data)| {
                        let relative = path.strip_prefix(&mirror)?;
                        (!relative.starts_with(".git/"))
                            .then(|| (format!("{tree}/{relative}"), data.clone()))
                    })
                    .collect();
                fs.files.extend(copies);
                FakeOutput::ok(format!("{slot} {FAKE_BASELINE}\n"))
            }
            ("sh", _) if spec.name == Some(script_names::RETRIEVE_PATCH) => {
                // Pooled (tree, baseline, mirror, slot, run id) or pre-pooling (run dir, baseline).
                let (tree, lease) = match positional {
                    [tree, _baseline, _mirror, slot, id] => (tree, Some((slot, id))),
                    [tree, _baseline] => (tree, None),
                    _ => {
                        return Some(FakeOutput::fail(
                            2,
                            "retrieve-patch: tree, baseline, mirror, slot, run id\n",
                        ))
                    }
                };
                if let Some((slot, id)) = lease {
                    let lease = format!("{}.lease/run", FakeFs::resolve(spec.cwd.as_deref(), slot));
                    if fs.files.get(&lease).map(Vec::as_slice) != Some(format!("{id}\n").as_bytes())
                    {
                        return Some(FakeOutput::fail(
                            3,
                            "codex-remote: run no longer holds its tree\n",
                        ));
                    }
                }
                let tree = FakeFs::resolve(spec.cwd.as_deref(), tree);
                let patch = format!("{tree}/{}", crate::executor::FAKE_PATCH_FILE);
                FakeOutput::ok(fs.files.get(&patch).cloned().unwrap_or_default())
            }
            ("sh", _) if spec.name == Some(script_names::REMOVE_RUN) => {
                let [_mirror, trees, id, agents, legacy] = positional else {
                    return Some(FakeOutput::fail(2, "remove-run: five arguments\n"));
                };
                let trees = format!("{}/", FakeFs::resolve(spec.cwd.as_deref(), trees));
                let agents = format!("{}/", FakeFs::resolve(spec.cwd.as_deref(), agents));
                let legacy = format!("{}/", FakeFs::resolve(spec.cwd.as_deref(), legacy));
                let held = format!("{id}\n");
                fs.files.retain(|path, data| {
                    let lease = path.starts_with(&trees)
                        && path.ends_with(".lease/run")
                        && *data == held.as_bytes();
                    !lease && !path.starts_with(&agents) && !path.starts_with(&legacy)
                });
                FakeOutput::ok("")
            }
            ("sh", _) if spec.name == Some(script_names::PRUNE_TREES) => {
                let [trees, ..] = positional else {
                    return Some(FakeOutput::fail(2, "prune-trees: too few arguments\n"));
                };
                let trees = FakeFs::resolve(spec.cwd.as_deref(), trees);
                let mut idle: Vec<String> = fs
                    .files
                    .keys()
                    .filter_map(|p| p.strip_prefix(&format!("{trees}/"))?.split('/').next())
                    .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                    .filter(|n| !fs.files.contains_key(&format!("{trees}/{n}.lease/run")))
                    .map(str::to_string)
                    .collect();
                idle.dedup();
                for n in &idle {
                    let slot = format!("{trees}/{n}/");
                    fs.files.retain(|path, _| !path.starts_with(&slot));
                }
                FakeOutput::ok(idle.iter().map(|n| format!("{n}\n")).collect::<String>())
            }
            ("env", []) => {
                let mut out = String::new();
                for (k, v) in &spec.env {
                    out.push_str(&format!("{k}={v}\n"));
                }
                FakeOutput::ok(out)
            }
            ("pwd", []) => {
                FakeOutput::ok(format!("{}\n", FakeFs::resolve(spec.cwd.as_deref(), ".")))
            }
            ("exit", [code]) => FakeOutput::fail(code.parse().unwrap_or(1), ""),
            _ => return None,
        })
    }
}

/// The subset of printf the suite uses: `%s` and the escapes `\n`, `\0`, `\\`, format reused
/// until the arguments run out.
fn printf(format: &str, args: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut args = args.iter();
    loop {
        let mut consumed = false;
        let mut chars = format.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, chars.peek()) {
                ('%', Some('s')) => {
                    chars.next();
                    if let Some(arg) = args.next() {
                        out.extend_from_slice(arg.as_bytes());
                        consumed = true;
                    }
                }
                ('\\', Some('n')) => {
                    chars.next();
                    out.push(b'\n');
                }
                ('\\', Some('0')) => {
                    chars.next();
                    out.push(0);
                }
                ('\\', Some('\\')) => {
                    chars.next();
                    out.push(b'\\');
                }
                (c, _) => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        if !consumed || args.len() == 0 {
            return out;
        }
    }
}

#[async_trait]
impl Transport for FakeTransport {
    fn host(&self) -> &HostSpec {
        &self.host
    }

    async fn spawn(&self, spec: CommandSpec) -> Result<RemoteProcess, TransportError> {
        if self.state.lock().unwrap().unreachable {
            return Err(TransportError::HostUnreachable {
                host: self.host.name.clone(),
                detail: "fake host is unreachable".into(),
            });
        }
        spec.validate()?;
        self.state.lock().unwrap().log.push(spec.clone());
        let (stdin_writer, mut stdin_reader) = tokio::io::duplex(64 * 1024);
        let (mut out_w, out_r) = tokio::io::duplex(64 * 1024);
        let (mut err_w, err_r) = tokio::io::duplex(64 * 1024);
        let (status_tx, status_rx) = watch::channel(None::<ExitStatus>);
        let (cancel_tx, mut cancel_rx) = watch::channel(false);
        let mut stdin_writer = Some(stdin_writer);
        match &spec.stdin {
            Stdin::Null => drop(stdin_writer.take()),
            Stdin::Bytes(bytes) => {
                let mut w = stdin_writer.take().expect("present");
                let bytes = bytes.clone();
                tokio::spawn(async move {
                    let _ = w.write_all(&bytes).await;
                    let _ = w.shutdown().await;
                });
            }
            Stdin::Piped => {}
        }
        let state = self.state.clone();
        let handler = {
            let handlers = self.handlers.lock().unwrap();
            spec.name
                .and_then(|name| handlers.get(&format!("script:{name}")))
                .or_else(|| handlers.get(&spec.program))
                .cloned()
        };
        let task_spec = spec.clone();
        tokio::spawn(async move {
            if task_spec.program == "sleep" && handler.is_none() {
                // Runs until cancelled: the fake's long-running command.
                let _ = cancel_rx.wait_for(|c| *c).await;
                let _ = status_tx.send(Some(ExitStatus::Signal(15)));
                return;
            }
            let mut stdin = Vec::new();
            let _ = stdin_reader.read_to_end(&mut stdin).await;
            let output = {
                let mut state = state.lock().unwrap();
                match &handler {
                    Some(handler) => handler(&task_spec, &stdin, &mut state.fs),
                    None => FakeTransport::builtin(&task_spec, &stdin, &mut state.fs)
                        .unwrap_or_else(|| {
                            FakeOutput::fail(
                                127,
                                format!("sh: 1: {}: not found\n", task_spec.program),
                            )
                        }),
                }
            };
            let (a, b) = tokio::join!(
                out_w.write_all(&output.stdout),
                err_w.write_all(&output.stderr)
            );
            let _ = (a, b);
            drop((out_w, err_w));
            let _ = status_tx.send(Some(ExitStatus::Code(output.code)));
        });
        let control = FakeControl {
            status: status_rx,
            cancel: cancel_tx,
            state: self.state.clone(),
            spec: spec.clone(),
        };
        Ok(RemoteProcess::new(
            spec.display(),
            stdin_writer.map(|w| Box::new(w) as BoxWriter),
            Box::new(out_r),
            Box::new(err_r),
            Box::new(control),
            spec.timeout,
        ))
    }
}

struct FakeControl {
    status: watch::Receiver<Option<ExitStatus>>,
    cancel: watch::Sender<bool>,
    state: Arc<Mutex<State>>,
    spec: CommandSpec,
}

#[async_trait]
impl ProcessControl for FakeControl {
    async fn wait(&mut self) -> Result<ExitStatus, TransportError> {
        let status = self.status.wait_for(Option::is_some).await.map_err(|_| {
            TransportError::Disconnected {
                host: "fake".into(),
                detail: "the fake command vanished".into(),
            }
        })?;
        Ok(status.expect("checked"))
    }

    async fn cancel(&mut self) -> Result<(), TransportError> {
        self.state.lock().unwrap().cancelled.push(self.spec.clone());
        let _ = self.cancel.send(true);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_paths() {
        assert_eq!(FakeFs::resolve(None, "~/a/../b"), "/home/fake/b");
        assert_eq!(FakeFs::resolve(Some("~/w"), "x"), "/home/fake/w/x");
        assert_eq!(FakeFs::resolve(Some("/tmp"), "/abs"), "/abs");
    }

    #[test]
    fn printf_subset() {
        assert_eq!(printf("%s\\0", &["a", "b"]), b"a\0b\0");
        assert_eq!(printf("x\\n", &[]), b"x\n");
    }
}
