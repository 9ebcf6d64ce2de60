//! Configuration: TOML files layered over built-in defaults.
//!
//! Layers, lowest first: built-in defaults, the user file
//! (`$XDG_CONFIG_HOME/codex-remote/config.toml`), the project file (`codex-remote.toml`, found by
//! walking up from the working directory), environment variables, then command-line flags (applied
//! by the caller). A later layer overrides single keys, not whole tables: a project file that sets
//! `hosts.penguin.workspace` keeps the user file's `hosts.penguin.shell_init`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::host::{ContainerEngine, HostKeyPolicy, HostKind, HostSpec, LOCAL_HOST};
use crate::input::{self, InputError};
use crate::model::{ModelEntry, TableModelSelector};
use crate::policy::{RestrictedFiles, DEFAULT_RESTRICTED};
use crate::task::TaskType;

/// The project config file's name.
pub const PROJECT_FILE: &str = "codex-remote.toml";
/// Default remote workspace.
pub const DEFAULT_WORKSPACE: &str = "~/workspace";
/// Default workspace for the built-in `local` host: not `~/workspace`, so a project that already
/// lives in `~/workspace/<name>` is never its own run target.
pub const DEFAULT_LOCAL_WORKSPACE: &str = "~/.local/share/codex-remote/workspace";
/// Default sync excludes, on top of `.gitignore`.
pub const DEFAULT_EXCLUDES: [&str; 7] = [
    "target/",
    "node_modules/",
    ".venv/",
    "__pycache__/",
    ".codex-remote/",
    ".DS_Store",
    "*.swp",
];

/// Environment variable naming the user config file (instead of the XDG path).
pub const ENV_CONFIG: &str = "CODEX_REMOTE_CONFIG";
/// Environment variable overriding `default_host`.
pub const ENV_HOST: &str = "CODEX_REMOTE_HOST";
/// Environment variable overriding `retry.retries`.
pub const ENV_RETRIES: &str = "CODEX_REMOTE_RETRIES";

/// One config file as written: every key optional, unknown keys rejected.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "codex-remote config file")]
pub struct ConfigFile {
    /// Host used when `--host` is not given (default: `local`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_host: Option<String>,
    /// Named hosts: `[hosts.penguin]`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hosts: BTreeMap<String, HostConfigFile>,
    /// Model per task type, overriding the built-in table: `debug = "gpt-5.1-codex-max"` or
    /// `debug = { model = "gpt-5.1-codex-max", reasoning_effort = "high" }`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<TaskType, ModelEntry>,
    /// The restricted-file policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restricted: Option<RestrictedConfig>,
    /// What is pushed to the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncConfig>,
    /// Retrying rate-limited runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryConfig>,
    /// How long a run parked at a usage limit may wait for the limit to reset, in all (a
    /// duration such as `90m` or `6h`; default `6h`). A reset further away fails the run (exit 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wait: Option<String>,
    /// A local command run when a run ends, parks or fails, with the run's summary JSON on
    /// stdin: program and arguments, no shell (e.g. `["notify-send", "codex-remote"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<Vec<String>>,
    /// End a run whose agent shows no progress (no event) for this long: `90s`, `10m`, `1h`;
    /// `0s` never (default `10m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_timeout: Option<String>,
    /// Which results are held back instead of applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply: Option<ApplyConfig>,
}

/// `[hosts.NAME]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostConfigFile {
    /// SSH destination: a `~/.ssh/config` alias, `user@host` or `ssh://user@host:port`
    /// (default: the host's name). Not allowed for `local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub ssh: Option<SshDestination>,
    /// A running podman container, reached by `podman exec -i CONTAINER` (instead of `ssh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub podman: Option<ContainerName>,
    /// A running docker container, reached by `docker exec -i CONTAINER` (instead of `ssh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub docker: Option<ContainerName>,
    /// A Kubernetes pod, `NAMESPACE/POD` or `NAMESPACE/POD/CONTAINER`, reached by
    /// `kubectl exec -i` (instead of `ssh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub kubernetes: Option<PodRef>,
    /// Make the host on demand: each run gets a fresh container or pod of `image`, started by
    /// this engine (`podman`, `docker` or `kubernetes`) before the push and removed once the
    /// result is retrieved (instead of `ssh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<ContainerEngine>,
    /// The image of an on-demand host's containers (with `engine`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub image: Option<ImageName>,
    /// Extra arguments for `podman run` / `docker run` (a list of strings), or for Kubernetes
    /// a pod spec overlay as JSON or YAML text (`kubectl run --overrides`); with `engine`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_args: Option<RunArgs>,
    /// The Kubernetes namespace of an on-demand host's pods (default `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub namespace: Option<ContainerName>,
    /// Directory holding the remote projects (default `~/workspace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// Shell code run before every remote command, e.g. `source ~/.config/nvm/nvm.sh`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell_init: Option<String>,
    /// The Codex binary (default `codex`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codex: Option<String>,
    /// Environment variables set for remote commands.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, String>")]
    pub env: BTreeMap<EnvVarName, String>,
    /// Seconds to wait for the SSH connection (default 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout_secs: Option<u64>,
    /// Accept and remember an unknown host key (`StrictHostKeyChecking=accept-new`); default
    /// false: unknown keys are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_new_host_keys: Option<bool>,
    /// Extra `codex exec` arguments for every run on this host, e.g.
    /// `["-c", "model_verbosity=\"low\"", "--profile", "fast"]` (runs add theirs after).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codex_args: Option<Vec<String>>,
}

impl HostConfigFile {
    /// Whether this table says how the host is reached (`ssh`, `podman`, `docker`, `kubernetes`).
    fn reaches(&self) -> bool {
        !self.ways().is_empty()
    }

    /// The keys naming how the host is reached, with the container each names.
    fn ways(&self) -> Vec<(&'static str, Option<(ContainerEngine, String)>)> {
        let mut ways = Vec::new();
        if self.ssh.is_some() {
            ways.push(("ssh", None));
        }
        if self.engine.is_some() {
            ways.push(("engine", None));
        }
        for (engine, target) in [
            (ContainerEngine::Podman, self.podman.as_ref().map(|t| &t.0)),
            (ContainerEngine::Docker, self.docker.as_ref().map(|t| &t.0)),
            (
                ContainerEngine::Kubernetes,
                self.kubernetes.as_ref().map(|t| &t.0),
            ),
        ] {
            if let Some(target) = target {
                ways.push((engine.key(), Some((engine, target.clone()))));
            }
        }
        ways
    }
}

/// `[restricted]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestrictedConfig {
    /// Patterns of files no run may see or change (default `package.json`, `package-lock.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Vec<String>>")]
    pub files: Option<Vec<GlobPattern>>,
}

/// `[sync]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// Patterns never pushed (gitignore syntax), replacing the default list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<Vec<String>>,
    /// Also leave out what `.gitignore` ignores (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respect_gitignore: Option<bool>,
    /// A push of more files than this is refused unless confirmed with `--confirm-push`
    /// (default 20000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_push_files: Option<u64>,
    /// A push of more bytes than this is refused unless confirmed with `--confirm-push`
    /// (default 209715200, 200 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_push_bytes: Option<u64>,
}

/// The default `max_wait`: long enough for a 5-hour usage window to reset.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(6 * 3600);

/// Parses a `max_wait` / `--max-wait` duration (`90m`, `6h`, `0s`).
pub fn parse_max_wait(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration like 90m or 6h: {e}"))
}

/// `[retry]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// How many times a rate-limited run is retried (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Delay before the first retry, in seconds (default 20); doubles each time, with jitter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay_secs: Option<f64>,
    /// Upper bound of one delay, in seconds (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delay_secs: Option<f64>,
}

/// `[apply]`: results that look destructive are held back (not applied) unless the user passes
/// `--allow-held-back`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyConfig {
    /// Hold back a patch larger than this many bytes (default 104857600, 100 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_patch_bytes: Option<u64>,
    /// Stop retrieving a patch past this many bytes: it is not stored at all (default
    /// 1073741824, 1 GiB; never below `max_patch_bytes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_stored_patch_bytes: Option<u64>,
    /// Hold back a result that deletes more than this share of the project's files (default
    /// 0.5; 1.0 turns the rule off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_deleted_share: Option<f64>,
    /// Hold back changes to `.gitignore` files, which change what the next push sends (default
    /// true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_back_ignore_files: Option<bool>,
    /// Hold back symlinks that point outside the project (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_back_outside_symlinks: Option<bool>,
    /// Hold back changes to files that make the user's own tools run code or steer the user's
    /// own agents (`.codex/`, `.claude/`, `.vscode/`, `.mcp.json`, `.envrc`, `AGENTS.md`, ...;
    /// default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_back_agent_config: Option<bool>,
    /// More files held back as agent config: globs as in `restricted.files` (default none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_config_files: Option<Vec<String>>,
}

/// An SSH destination checked so that it can never be taken for an `ssh` option.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SshDestination(String);

impl SshDestination {
    /// The destination as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SshDestination {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        if value.is_empty() {
            Err("an ssh destination must not be empty".into())
        } else if value.starts_with('-') {
            Err(format!(
                "ssh destination `{value}` starts with `-` and would be read as an ssh option"
            ))
        } else if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            Err(format!(
                "ssh destination `{}` contains whitespace or control characters",
                value.escape_debug()
            ))
        } else {
            Ok(Self(value))
        }
    }
}

impl From<SshDestination> for String {
    fn from(value: SshDestination) -> Self {
        value.0
    }
}

/// A podman or docker container name or id, checked so that it cannot be read as an option.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContainerName(String);

impl TryFrom<String> for ContainerName {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        ContainerEngine::Podman.check_target(&value)?;
        Ok(Self(value))
    }
}

impl From<ContainerName> for String {
    fn from(value: ContainerName) -> Self {
        value.0
    }
}

/// A container image reference, checked so that it cannot be read as an option.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageName(String);

impl TryFrom<String> for ImageName {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let valid = !value.is_empty()
            && !value.starts_with('-')
            && !value.chars().any(|c| c.is_whitespace() || c.is_control());
        if !valid {
            return Err(format!(
                "`{}` is not an image reference: no spaces, not starting with `-`",
                value.escape_debug()
            ));
        }
        Ok(Self(value))
    }
}

impl From<ImageName> for String {
    fn from(value: ImageName) -> Self {
        value.0
    }
}

/// `run_args` of an on-demand host: arguments for `podman run` / `docker run`, or a pod spec
/// overlay (JSON or YAML text) for Kubernetes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RunArgs {
    /// Extra arguments for `podman run` / `docker run`.
    Args(Vec<String>),
    /// A pod spec overlay for `kubectl run --overrides`, as JSON or YAML.
    Overlay(String),
}

/// A Kubernetes pod, `NAMESPACE/POD` or `NAMESPACE/POD/CONTAINER`, each part checked.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PodRef(String);

impl TryFrom<String> for PodRef {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        ContainerEngine::Kubernetes.check_target(&value)?;
        Ok(Self(value))
    }
}

impl From<PodRef> for String {
    fn from(value: PodRef) -> Self {
        value.0
    }
}

/// A glob checked when the config is parsed, so a bad one is reported with its line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GlobPattern(String);

impl TryFrom<String> for GlobPattern {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        globset::Glob::new(&value)
            .map(|_| Self(value.clone()))
            .map_err(|e| format!("`{value}` is not a valid glob: {}", e.kind()))
    }
}

impl From<GlobPattern> for String {
    fn from(value: GlobPattern) -> Self {
        value.0
    }
}

/// An environment variable name that is a valid POSIX shell identifier.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EnvVarName(String);

impl EnvVarName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EnvVarName {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        if crate::shell::is_identifier(&value) {
            Ok(Self(value))
        } else {
            Err(format!(
                "`{}` is not a valid environment variable name (use letters, digits and `_`, not starting with a digit)",
                value.escape_debug()
            ))
        }
    }
}

impl From<EnvVarName> for String {
    fn from(value: EnvVarName) -> Self {
        value.0
    }
}

/// Sync settings after layering.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncSettings {
    /// Exclude patterns.
    pub exclude: Vec<String>,
    /// Whether `.gitignore` is honoured.
    pub respect_gitignore: bool,
}

/// Default `sync.max_push_files`.
pub const DEFAULT_MAX_PUSH_FILES: u64 = 20_000;
/// Default `sync.max_push_bytes` (200 MiB).
pub const DEFAULT_MAX_PUSH_BYTES: u64 = 200 * 1024 * 1024;

/// The largest push made without confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PushLimits {
    /// Files.
    pub max_files: u64,
    /// Bytes of file content.
    pub max_bytes: u64,
}

/// Retry policy after layering.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    /// First delay.
    pub initial_delay: Duration,
    /// Largest delay.
    pub max_delay: Duration,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    merged: ConfigFile,
    /// The files that were read, lowest layer first.
    pub sources: Vec<PathBuf>,
    /// Where each environment override came from, for error messages.
    env_host: Option<String>,
}

/// Where configuration is looked for. Built from the real environment by
/// [`ConfigLoader::from_env`]; tests build it by hand.
#[derive(Debug, Clone, Default)]
pub struct ConfigLoader {
    /// The user file; `None` skips it.
    pub user_file: Option<PathBuf>,
    /// Where the search for `codex-remote.toml` starts.
    pub start_dir: PathBuf,
    /// Environment variables (only the `CODEX_REMOTE_*` ones matter).
    pub env: BTreeMap<String, String>,
}

impl ConfigLoader {
    /// Reads locations from the process environment.
    pub fn from_env(start_dir: PathBuf) -> Self {
        let env: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("CODEX_REMOTE_"))
            .collect();
        let user_file = env
            .get(ENV_CONFIG)
            .map(PathBuf::from)
            .or_else(user_config_path);
        Self {
            user_file,
            start_dir,
            env,
        }
    }

    /// Loads and layers every source.
    pub fn load(&self) -> Result<Config, InputError> {
        let mut merged = ConfigFile::default();
        let mut sources = Vec::new();
        let project_file = find_upwards(&self.start_dir, PROJECT_FILE);
        for path in self.user_file.iter().chain(project_file.iter()) {
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    let file = ConfigFile::parse(&text, &path.display().to_string())?;
                    merged.overlay(file);
                    sources.push(path.clone());
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::NotFound
                        && Some(path) != project_file.as_ref() => {}
                Err(e) => {
                    return Err(InputError::new(
                        path.display().to_string(),
                        format!("cannot read the config file: {e}"),
                    ))
                }
            }
        }
        let env_host = self.env.get(ENV_HOST).filter(|h| !h.is_empty()).cloned();
        if let Some(host) = &env_host {
            merged.default_host = Some(host.clone());
        }
        if let Some(retries) = self.env.get(ENV_RETRIES) {
            let retries = retries.parse::<u32>().map_err(|_| {
                InputError::new(
                    format!("environment variable {ENV_RETRIES}"),
                    format!("`{retries}` is not a whole number"),
                )
                .hint("set it to the number of retries, such as 2")
            })?;
            merged.retry.get_or_insert_with(Default::default).retries = Some(retries);
        }
        let config = Config {
            merged,
            sources,
            env_host,
        };
        config.validate()?;
        Ok(config)
    }
}

impl ConfigFile {
    /// Parses one config file strictly.
    pub fn parse(text: &str, source_name: &str) -> Result<Self, InputError> {
        let deserializer =
            toml::Deserializer::parse(text).map_err(|e| toml_error(text, source_name, "", &e))?;
        let file: ConfigFile = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            toml_error(text, source_name, &path, e.inner())
        })?;
        file.check_durations(text, source_name)?;
        Ok(file)
    }

    /// The durations (strings to the deserializer) checked here too, where the file, line and
    /// column of a bad one are known.
    fn check_durations(&self, text: &str, source_name: &str) -> Result<(), InputError> {
        let checks = [
            (
                "max_wait",
                self.max_wait
                    .as_deref()
                    .and_then(|t| parse_max_wait(t).err()),
                "write a duration such as `90m`, `6h` or `0s` (never wait)",
            ),
            (
                "stall_timeout",
                self.stall_timeout.as_deref().and_then(|t| {
                    humantime::parse_duration(t)
                        .err()
                        .map(|e| format!("`{t}` is not a duration like 90s, 10m or 1h: {e}"))
                }),
                "write it as a string, such as `stall_timeout = \"10m\"`; `0s` turns it off",
            ),
        ];
        for (key, problem, hint) in checks {
            if let Some(message) = problem {
                return Err(InputError::new(source_name, message)
                    .field(key)
                    .at_opt(top_level_value_position(text, key))
                    .hint(hint));
            }
        }
        Ok(())
    }

    /// Lays `other` over `self`, key by key.
    fn overlay(&mut self, other: ConfigFile) {
        if other.default_host.is_some() {
            self.default_host = other.default_host;
        }
        if other.max_wait.is_some() {
            self.max_wait = other.max_wait;
        }
        if other.notify.is_some() {
            self.notify = other.notify;
        }
        if other.stall_timeout.is_some() {
            self.stall_timeout = other.stall_timeout;
        }
        for (name, host) in other.hosts {
            let mine = self.hosts.entry(name).or_default();
            // How a host is reached is one choice: a later file that names another way replaces it.
            if host.reaches() {
                mine.ssh = None;
                mine.podman = None;
                mine.docker = None;
                mine.kubernetes = None;
                mine.engine = None;
            }
            macro_rules! take {
                ($($field:ident),*) => { $( if host.$field.is_some() { mine.$field = host.$field; } )* };
            }
            take!(
                ssh,
                podman,
                docker,
                kubernetes,
                engine,
                image,
                run_args,
                namespace,
                workspace,
                shell_init,
                codex,
                connect_timeout_secs,
                accept_new_host_keys,
                codex_args
            );
            mine.env.extend(host.env);
        }
        self.models.extend(other.models);
        if let Some(restricted) = other.restricted {
            let mine = self.restricted.get_or_insert_with(Default::default);
            if restricted.files.is_some() {
                mine.files = restricted.files;
            }
        }
        if let Some(sync) = other.sync {
            let mine = self.sync.get_or_insert_with(Default::default);
            if sync.exclude.is_some() {
                mine.exclude = sync.exclude;
            }
            if sync.respect_gitignore.is_some() {
                mine.respect_gitignore = sync.respect_gitignore;
            }
            if sync.max_push_files.is_some() {
                mine.max_push_files = sync.max_push_files;
            }
            if sync.max_push_bytes.is_some() {
                mine.max_push_bytes = sync.max_push_bytes;
            }
        }
        if let Some(retry) = other.retry {
            let mine = self.retry.get_or_insert_with(Default::default);
            if retry.retries.is_some() {
                mine.retries = retry.retries;
            }
            if retry.initial_delay_secs.is_some() {
                mine.initial_delay_secs = retry.initial_delay_secs;
            }
            if retry.max_delay_secs.is_some() {
                mine.max_delay_secs = retry.max_delay_secs;
            }
        }
        if let Some(apply) = other.apply {
            let mine = self.apply.get_or_insert_with(Default::default);
            macro_rules! take {
                ($($field:ident),*) => { $( if apply.$field.is_some() { mine.$field = apply.$field; } )* };
            }
            take!(
                max_patch_bytes,
                max_stored_patch_bytes,
                max_deleted_share,
                hold_back_ignore_files,
                hold_back_outside_symlinks,
                hold_back_agent_config,
                agent_config_files
            );
        }
    }
}

/// Where the value of top-level `key` starts in `text` (line, column), when it is there.
fn top_level_value_position(text: &str, key: &str) -> Option<(usize, usize)> {
    let table = toml::de::DeTable::parse(text).ok()?;
    let (_, value) = table
        .get_ref()
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)?;
    Some(input::line_column(text, value.span().start))
}

fn toml_error(text: &str, source_name: &str, path: &str, error: &toml::de::Error) -> InputError {
    let position = error
        .span()
        .map(|span| input::line_column(text, span.start));
    let message = error.message().trim().to_string();
    let mut e = InputError::new(source_name, message.clone())
        .field(path)
        .at_opt(position);
    if message.starts_with("unknown field") {
        e = e.hint(match input::nearest_expected_field(&message) {
            Some(near) => format!("did you mean `{near}`? the config schema lists every key"),
            None => {
                "remove it or check its spelling; the config schema lists every key".to_string()
            }
        });
    }
    e
}

/// The configured host a bare name (no `user@`, domain or port) is a misspelling of: one within
/// two edits (one for short names) of it, when the name is not a `Host` of the user's ssh config.
fn misspelt_host<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    if name.contains(['@', '.', ':', '/']) {
        return None;
    }
    let allowed = if name.chars().count() < 5 { 1 } else { 2 };
    let near = known
        .map(|k| (strsim::osa_distance(name, k), k))
        .filter(|(d, _)| *d > 0 && *d <= allowed)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)?;
    (!ssh_config_names(name)).then_some(near)
}

/// Whether the user's ssh config (`$CODEX_REMOTE_SSH_CONFIG`, else `~/.ssh/config`) names this
/// host on a `Host` line.
fn ssh_config_names(name: &str) -> bool {
    let path = std::env::var_os("CODEX_REMOTE_SSH_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ssh/config")));
    let Some(text) = path.and_then(|p| std::fs::read_to_string(p).ok()) else {
        return false;
    };
    text.lines().any(|line| {
        let mut words = line.split_whitespace();
        words.next().is_some_and(|k| k.eq_ignore_ascii_case("host")) && words.any(|w| w == name)
    })
}

impl Config {
    /// The built-in defaults alone.
    pub fn builtin() -> Self {
        Self {
            merged: ConfigFile::default(),
            sources: Vec::new(),
            env_host: None,
        }
    }

    /// Builds from already-parsed files, lowest layer first (for embedders and tests).
    pub fn from_files(files: impl IntoIterator<Item = ConfigFile>) -> Result<Self, InputError> {
        let mut merged = ConfigFile::default();
        for file in files {
            merged.overlay(file);
        }
        let config = Self {
            merged,
            sources: Vec::new(),
            env_host: None,
        };
        config.validate()?;
        Ok(config)
    }

    /// The merged file, as layered (for `config show`-style output).
    pub fn merged(&self) -> &ConfigFile {
        &self.merged
    }

    fn source_name(&self) -> String {
        match self.sources.as_slice() {
            [] => "<config>".to_string(),
            sources => sources
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" + "),
        }
    }

    fn validate(&self) -> Result<(), InputError> {
        self.restricted()?;
        if let Some(local) = self.merged.hosts.get(LOCAL_HOST) {
            if let Some((key, _)) = local.ways().first() {
                return Err(InputError::new(
                    self.source_name(),
                    format!("the built-in host `local` cannot have an {key} destination"),
                )
                .field(format!("hosts.local.{key}"))
                .hint("give the remote host another name, such as `[hosts.penguin]`"));
            }
        }
        if let Some(max_wait) = &self.merged.max_wait {
            parse_max_wait(max_wait).map_err(|message| {
                InputError::new(self.source_name(), message)
                    .field("max_wait")
                    .hint("write a duration such as `90m`, `6h` or `0s` (never wait)")
            })?;
        }
        if self
            .merged
            .notify
            .as_ref()
            .is_some_and(|n| n.is_empty() || n[0].is_empty())
        {
            return Err(InputError::new(self.source_name(), "names no program")
                .field("notify")
                .hint("write the program and its arguments, such as `[\"notify-send\", \"codex-remote\"]`"));
        }
        if let Some(text) = &self.merged.stall_timeout {
            humantime::parse_duration(text).map_err(|e| {
                InputError::new(
                    self.source_name(),
                    format!("`{text}` is not a duration like 90s, 10m or 1h: {e}"),
                )
                .field("stall_timeout")
                .hint("write it as a string, such as `stall_timeout = \"10m\"`; `0s` turns it off")
            })?;
        }
        for (name, host) in &self.merged.hosts {
            let ways = host.ways();
            if ways.len() > 1 {
                let keys: Vec<&str> = ways.iter().map(|(key, _)| *key).collect();
                return Err(InputError::new(
                    self.source_name(),
                    format!(
                        "host `{name}` is reached in more than one way: {}",
                        keys.join(", ")
                    ),
                )
                .field(format!("hosts.{name}"))
                .hint("keep exactly one of `ssh`, `podman`, `docker`, `kubernetes` and `engine` (a host made on demand)"));
            }
        }
        for (name, host) in &self.merged.hosts {
            on_demand(name, host).map_err(|(field, message, hint)| {
                InputError::new(self.source_name(), message)
                    .field(format!("hosts.{name}.{field}"))
                    .hint(hint)
            })?;
        }
        if let Some(retry) = &self.merged.retry {
            for (key, value) in [
                ("retry.initial_delay_secs", retry.initial_delay_secs),
                ("retry.max_delay_secs", retry.max_delay_secs),
            ] {
                if value.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
                    return Err(InputError::new(
                        self.source_name(),
                        "must be a non-negative number of seconds",
                    )
                    .field(key));
                }
            }
        }
        if let Some(patterns) = self
            .merged
            .apply
            .as_ref()
            .and_then(|a| a.agent_config_files.as_ref())
        {
            RestrictedFiles::from_config(
                patterns,
                &self.source_name(),
                "apply.agent_config_files",
            )?;
        }
        if let Some(share) = self.merged.apply.as_ref().and_then(|a| a.max_deleted_share) {
            if !(share.is_finite() && (0.0..=1.0).contains(&share)) {
                return Err(InputError::new(
                    self.source_name(),
                    "must be a share between 0.0 and 1.0, such as 0.5",
                )
                .field("apply.max_deleted_share"));
            }
        }
        Ok(())
    }

    /// The most bytes of a result patch that are retrieved and stored (`apply.max_stored_patch_bytes`,
    /// never below `apply.max_patch_bytes`).
    pub fn max_stored_patch_bytes(&self) -> u64 {
        self.stored_patch_limit().bytes
    }

    /// [`Config::max_stored_patch_bytes`], with the configured value when it was raised.
    pub fn stored_patch_limit(&self) -> crate::patch::StoredPatchLimit {
        let apply = self.merged.apply.clone().unwrap_or_default();
        let configured = apply
            .max_stored_patch_bytes
            .unwrap_or(crate::patch::DEFAULT_MAX_STORED_PATCH_BYTES);
        let floor = self.hold_back().max_patch_bytes;
        crate::patch::StoredPatchLimit {
            bytes: configured.max(floor),
            configured: (configured < floor).then_some(configured),
        }
    }

    /// What makes a result held back instead of applied.
    pub fn hold_back(&self) -> crate::patch::HoldBackPolicy {
        let apply = self.merged.apply.clone().unwrap_or_default();
        let defaults = crate::patch::HoldBackPolicy::default();
        crate::patch::HoldBackPolicy {
            max_patch_bytes: apply.max_patch_bytes.unwrap_or(defaults.max_patch_bytes),
            max_deleted_share: apply
                .max_deleted_share
                .unwrap_or(defaults.max_deleted_share),
            ignore_files: apply
                .hold_back_ignore_files
                .unwrap_or(defaults.ignore_files),
            outside_symlinks: apply
                .hold_back_outside_symlinks
                .unwrap_or(defaults.outside_symlinks),
            agent_config: apply
                .hold_back_agent_config
                .unwrap_or(defaults.agent_config),
            // Checked when the config was loaded.
            agent_config_files: apply
                .agent_config_files
                .and_then(|patterns| RestrictedFiles::new(patterns).ok())
                .unwrap_or(defaults.agent_config_files),
        }
    }

    /// The restricted-file policy.
    pub fn restricted(&self) -> Result<RestrictedFiles, InputError> {
        match self
            .merged
            .restricted
            .as_ref()
            .and_then(|r| r.files.as_ref())
        {
            Some(files) => {
                let files: Vec<String> = files.iter().map(|g| g.0.clone()).collect();
                RestrictedFiles::from_config(&files, &self.source_name(), "restricted.files")
            }
            None => Ok(
                RestrictedFiles::new(DEFAULT_RESTRICTED.iter().map(|s| s.to_string()))
                    .expect("valid defaults"),
            ),
        }
    }

    /// The model selector built from the `[models]` table.
    pub fn model_selector(&self) -> TableModelSelector {
        TableModelSelector::with_table(self.merged.models.clone())
    }

    /// Sync settings.
    pub fn sync(&self) -> SyncSettings {
        let sync = self.merged.sync.clone().unwrap_or_default();
        SyncSettings {
            exclude: sync
                .exclude
                .unwrap_or_else(|| DEFAULT_EXCLUDES.iter().map(|s| s.to_string()).collect()),
            respect_gitignore: sync.respect_gitignore.unwrap_or(true),
        }
    }

    /// How long a run may stay parked at a usage limit, in all (`max_wait`, default 6 h).
    pub fn max_wait(&self) -> Duration {
        self.merged
            .max_wait
            .as_deref()
            .and_then(|s| parse_max_wait(s).ok())
            .unwrap_or(DEFAULT_MAX_WAIT)
    }

    /// The `notify` command (program and arguments), if any.
    pub fn notify(&self) -> Option<Vec<String>> {
        self.merged.notify.clone().filter(|n| !n.is_empty())
    }

    /// The largest push made without confirmation: (files, bytes).
    pub fn push_limits(&self) -> PushLimits {
        let sync = self.merged.sync.clone().unwrap_or_default();
        PushLimits {
            max_files: sync.max_push_files.unwrap_or(DEFAULT_MAX_PUSH_FILES),
            max_bytes: sync.max_push_bytes.unwrap_or(DEFAULT_MAX_PUSH_BYTES),
        }
    }

    /// How long a run's agent may show no progress before the run is ended (`None`: never).
    pub fn stall_timeout(&self) -> Option<std::time::Duration> {
        let configured = self
            .merged
            .stall_timeout
            .as_deref()
            .and_then(|text| humantime::parse_duration(text).ok())
            .unwrap_or(crate::executor::DEFAULT_STALL_TIMEOUT);
        (!configured.is_zero()).then_some(configured)
    }

    /// Retry policy.
    pub fn retry(&self) -> RetryPolicy {
        let retry = self.merged.retry.clone().unwrap_or_default();
        let initial = retry.initial_delay_secs.unwrap_or(20.0);
        let max = retry.max_delay_secs.unwrap_or(300.0).max(initial);
        RetryPolicy {
            retries: retry.retries.unwrap_or(2),
            initial_delay: Duration::from_secs_f64(initial),
            max_delay: Duration::from_secs_f64(max),
        }
    }

    /// The host named by `--host`, else `default_host`, else `local`.
    ///
    /// A name that is not configured is used as an ssh destination with default settings, so
    /// `--host penguin` works with only `~/.ssh/config`.
    pub fn host(&self, flag: Option<&str>) -> Result<HostSpec, InputError> {
        let name = flag
            .or(self.merged.default_host.as_deref())
            .unwrap_or(LOCAL_HOST);
        let origin = if flag.is_some() {
            "--host".to_string()
        } else if self.env_host.is_some() {
            format!("environment variable {ENV_HOST}")
        } else {
            self.source_name()
        };
        if name.is_empty() {
            return Err(InputError::new(origin, "the host name is empty"));
        }
        if !self.merged.hosts.contains_key(name) && name != LOCAL_HOST {
            let known = self
                .merged
                .hosts
                .keys()
                .map(String::as_str)
                .chain([LOCAL_HOST]);
            if let Some(near) = misspelt_host(name, known) {
                return Err(InputError::new(origin, format!("unknown host `{name}`"))
                    .hint(format!(
                        "did you mean `{near}`? A name close to a configured host, and neither in the config nor a `Host` of your ssh config, is taken for a misspelling; to reach an ssh host called `{name}`, add [hosts.{name}] to the config or write `user@{name}`"
                    )));
            }
        }
        let configured = self.merged.hosts.get(name).cloned().unwrap_or_default();
        let container = match configured.ways().into_iter().find_map(|(_, c)| c) {
            Some(found) => Some(found),
            None => container_url(name).transpose().map_err(|m| {
                InputError::new(origin.clone(), m)
                    .field("host")
                    .hint("write `podman://CONTAINER`, `docker://CONTAINER`, `k8s://NAMESPACE/POD` or `k8s://NAMESPACE/POD/CONTAINER`")
            })?,
        };
        let kind = if name == LOCAL_HOST {
            HostKind::Local
        } else if let Some(made) =
            on_demand(name, &configured).map_err(|(field, message, hint)| {
                InputError::new(self.source_name(), message)
                    .field(format!("hosts.{name}.{field}"))
                    .hint(hint)
            })?
        {
            HostKind::OnDemand(made)
        } else if let Some((engine, target)) = container {
            HostKind::Container { engine, target }
        } else {
            let destination = match configured.ssh {
                Some(d) => d,
                None => SshDestination::try_from(name.to_string()).map_err(|m| {
                    InputError::new(origin, m)
                        .field("host")
                        .hint("name a host from the config or an ssh destination")
                })?,
            };
            HostKind::Ssh {
                destination: destination.0,
            }
        };
        let default_workspace = if name == LOCAL_HOST {
            DEFAULT_LOCAL_WORKSPACE
        } else {
            DEFAULT_WORKSPACE
        };
        Ok(HostSpec {
            name: name.to_string(),
            kind,
            workspace: configured
                .workspace
                .unwrap_or_else(|| default_workspace.to_string()),
            shell_init: configured.shell_init.filter(|s| !s.trim().is_empty()),
            codex: configured.codex.unwrap_or_else(|| "codex".to_string()),
            env: configured.env.into_iter().map(|(k, v)| (k.0, v)).collect(),
            connect_timeout: Duration::from_secs(configured.connect_timeout_secs.unwrap_or(15)),
            codex_args: configured.codex_args.unwrap_or_default(),
            host_key_policy: if configured.accept_new_host_keys.unwrap_or(false) {
                HostKeyPolicy::AcceptNew
            } else {
                HostKeyPolicy::Strict
            },
        })
    }
}

/// The on-demand settings of a host table (`None` without `engine`), checked: `image` given,
/// `run_args` of the engine's shape. Errors are `(key, message, hint)`.
fn on_demand(
    name: &str,
    host: &HostConfigFile,
) -> Result<Option<crate::host::OnDemand>, (&'static str, String, String)> {
    let Some(engine) = host.engine else {
        for (key, set) in [
            ("image", host.image.is_some()),
            ("run_args", host.run_args.is_some()),
            ("namespace", host.namespace.is_some()),
        ] {
            if set {
                return Err((
                    key,
                    format!("`{key}` is only for hosts made on demand, and host `{name}` has no `engine`"),
                    "add `engine = \"podman\"` (or `docker`, `kubernetes`), or remove the key".into(),
                ));
            }
        }
        return Ok(None);
    };
    let Some(image) = &host.image else {
        return Err((
            "image",
            format!("host `{name}` is made on demand by {engine} but has no `image`"),
            "add `image = \"IMAGE\"`, the image each run's container starts from".into(),
        ));
    };
    let (mut run_args, mut pod_overlay) = (Vec::new(), None);
    match (&host.run_args, engine) {
        (None, _) => {}
        (Some(RunArgs::Args(args)), ContainerEngine::Podman | ContainerEngine::Docker) => {
            run_args = args.clone();
        }
        (Some(RunArgs::Overlay(text)), ContainerEngine::Kubernetes) => {
            let value: serde_json::Value = serde_yaml_ng::from_str(text).map_err(|e| {
                (
                    "run_args",
                    format!("the pod spec overlay is not JSON or YAML: {e}"),
                    "write a pod spec fragment such as `{ \"spec\": { \"nodeSelector\": { \"gpu\": \"yes\" } } }`".into(),
                )
            })?;
            if !value.is_object() {
                return Err((
                    "run_args",
                    "the pod spec overlay must be a mapping".into(),
                    "write a pod spec fragment such as `{ \"spec\": { ... } }`".into(),
                ));
            }
            pod_overlay = Some(value.to_string());
        }
        (Some(RunArgs::Args(_)), ContainerEngine::Kubernetes) => {
            return Err((
                "run_args",
                "for kubernetes, `run_args` is a pod spec overlay (JSON or YAML text), not a list"
                    .into(),
                "write `run_args = '{ \"spec\": { ... } }'`".into(),
            ))
        }
        (Some(RunArgs::Overlay(_)), _) => {
            return Err((
                "run_args",
                format!(
                    "for {engine}, `run_args` is a list of `{} run` arguments",
                    engine.program()
                ),
                "write `run_args = [\"--network\", \"host\"]`".into(),
            ))
        }
    }
    if host.namespace.is_some() && engine != ContainerEngine::Kubernetes {
        return Err((
            "namespace",
            format!("`namespace` is for kubernetes, and host `{name}` uses {engine}"),
            "remove it".into(),
        ));
    }
    Ok(Some(crate::host::OnDemand {
        engine,
        image: image.0.clone(),
        run_args,
        pod_overlay,
        namespace: host
            .namespace
            .as_ref()
            .map(|n| n.0.clone())
            .unwrap_or_else(|| "default".into()),
    }))
}

/// A `--host` written as a container URL: `podman://CONTAINER`, `docker://CONTAINER`,
/// `k8s://NAMESPACE/POD[/CONTAINER]`. `None` when `name` is not such a URL.
fn container_url(name: &str) -> Option<Result<(ContainerEngine, String), String>> {
    ContainerEngine::ALL.into_iter().find_map(|engine| {
        let target = name.strip_prefix(engine.scheme())?.strip_prefix("://")?;
        Some(
            engine
                .check_target(target)
                .map(|()| (engine, target.to_string())),
        )
    })
}

/// `$XDG_CONFIG_HOME/codex-remote/config.toml`, falling back to `~/.config`.
pub fn user_config_path() -> Option<PathBuf> {
    Some(
        xdg_dir("XDG_CONFIG_HOME", ".config")?
            .join("codex-remote")
            .join("config.toml"),
    )
}

/// An XDG base directory: `$VAR` when it is an absolute path, else `$HOME/FALLBACK` (e.g.
/// `xdg_dir("XDG_CACHE_HOME", ".cache")`). The XDG Base Directory spec says a relative value
/// (`relcache`, or a `~/.cache` no shell expanded) is invalid and must be ignored; using it would
/// write into whatever the current directory happens to be.
pub fn xdg_dir(var: &str, fallback: &str) -> Option<PathBuf> {
    xdg_dir_from(std::env::var_os(var), std::env::var_os("HOME"), fallback)
}

fn xdg_dir_from(
    value: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
    fallback: &str,
) -> Option<PathBuf> {
    value
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            home.filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(fallback))
        })
}

/// The nearest `name` in `start` or one of its ancestors.
pub(crate) fn find_upwards(start: &Path, name: &str) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The commented starter file `codex-remote init` writes.
pub const STARTER_CONFIG: &str = include_str!("starter-config.toml");

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ConfigFile, InputError> {
        ConfigFile::parse(text, "c.toml")
    }

    #[test]
    fn relative_xdg_values_are_ignored_as_the_spec_says() {
        let dir = |value: Option<&str>, home: Option<&str>| {
            xdg_dir_from(value.map(Into::into), home.map(Into::into), ".cache")
        };
        assert_eq!(
            dir(Some("/x/cache"), Some("/home/u")),
            Some(PathBuf::from("/x/cache"))
        );
        for relative in ["relcache", "~/.cache", "./c", ""] {
            assert_eq!(
                dir(Some(relative), Some("/home/u")),
                Some(PathBuf::from("/home/u/.cache")),
                "{relative:?}"
            );
        }
        assert_eq!(dir(Some("relcache"), None), None);
        assert_eq!(dir(None, Some("")), None);
    }

    #[test]
    fn max_wait_and_notify_are_checked() {
        let config = |text: &str| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(PROJECT_FILE), text).unwrap();
            ConfigLoader {
                user_file: None,
                start_dir: dir.path().to_path_buf(),
                env: BTreeMap::new(),
            }
            .load()
        };
        let e = config("max_wait = \"soon\"\n").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("max_wait"), "{e}");
        let e = config("notify = []\n").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("notify"), "{e}");
        let ok = config("max_wait = \"90m\"\nnotify = [\"notify-send\", \"x y\"]\n").unwrap();
        assert_eq!(ok.max_wait(), Duration::from_secs(5400));
        assert_eq!(ok.notify().unwrap(), ["notify-send", "x y"]);
        assert_eq!(Config::builtin().max_wait(), DEFAULT_MAX_WAIT);
    }

    #[test]
    fn starter_file_parses_to_the_defaults() {
        let file = parse(STARTER_CONFIG).unwrap();
        let config = Config::from_files([file]).unwrap();
        assert_eq!(config.sync(), Config::builtin().sync());
        assert_eq!(config.retry(), Config::builtin().retry());
        assert_eq!(config.restricted().unwrap(), RestrictedFiles::default());
        assert_eq!(config.hold_back(), Config::builtin().hold_back());
        // The commented `[apply]` values are the real defaults.
        let apply: String = STARTER_CONFIG
            .lines()
            .skip_while(|l| *l != "# [apply]")
            .map(|l| format!("{}\n", l.trim_start_matches("# ")))
            .collect();
        let file = parse(&apply).unwrap();
        assert!(file.apply.as_ref().unwrap().max_patch_bytes.is_some());
        let config = Config::from_files([file]).unwrap();
        assert_eq!(config.hold_back(), crate::patch::HoldBackPolicy::default());
    }

    #[test]
    fn a_stored_patch_limit_below_the_held_back_one_is_raised_and_the_error_says_both() {
        let file =
            parse("[apply]\nmax_patch_bytes = 100000\nmax_stored_patch_bytes = 10\n").unwrap();
        let limit = Config::from_files([file]).unwrap().stored_patch_limit();
        assert_eq!(
            limit,
            crate::patch::StoredPatchLimit {
                bytes: 100_000,
                configured: Some(10)
            }
        );
        let e = crate::patch::ApplyError::NotStored {
            at_least: 100_001,
            limit: limit.bytes,
            configured: limit.configured,
        };
        assert_eq!(
            e.to_string(),
            "the result patch is at least 100001 bytes, above apply.max_stored_patch_bytes (10 \
             configured, raised to apply.max_patch_bytes: 100000); it was not stored and nothing \
             was applied"
        );
        let file = parse("[apply]\nmax_stored_patch_bytes = 200000000\n").unwrap();
        let limit = Config::from_files([file]).unwrap().stored_patch_limit();
        assert_eq!(limit, crate::patch::StoredPatchLimit::of(200_000_000));
        assert!(crate::patch::ApplyError::NotStored {
            at_least: 1,
            limit: limit.bytes,
            configured: None,
        }
        .to_string()
        .contains("above apply.max_stored_patch_bytes (200000000);"));
    }

    #[test]
    fn agent_config_keys_are_read_and_bad_globs_named() {
        let file = parse(
            "[apply]\nhold_back_agent_config = false\nagent_config_files = [\"tools/*.sh\"]\n",
        )
        .unwrap();
        let policy = Config::from_files([file]).unwrap().hold_back();
        assert!(!policy.agent_config);
        assert!(policy.is_agent_config("tools/run.sh"));
        assert!(!policy.is_agent_config("src/run.sh"));
        let file = parse("[apply]\nagent_config_files = [\"a[\"]\n").unwrap();
        let e = Config::from_files([file]).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("apply.agent_config_files[0]"));
    }

    #[test]
    fn a_deleted_share_above_one_is_refused() {
        let file = parse("[apply]\nmax_deleted_share = 1.5\n").unwrap();
        let e = Config::from_files([file]).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("apply.max_deleted_share"));
    }

    #[test]
    fn unknown_keys_name_the_file_key_and_line() {
        let e = parse("default_host = \"a\"\n[hosts.penguin]\nworkspac = \"~/w\"\n").unwrap_err();
        assert_eq!(e.source_name, "c.toml");
        assert_eq!(e.field.as_deref(), Some("hosts.penguin.workspac"));
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("workspac"), "{e}");
    }

    #[test]
    fn misspelt_host_names_are_caught_and_real_destinations_are_not() {
        let known = ["penguin", "gpu-box", "local"];
        assert_eq!(misspelt_host("pengiun", known.into_iter()), Some("penguin"));
        assert_eq!(misspelt_host("gpubox", known.into_iter()), Some("gpu-box"));
        assert_eq!(misspelt_host("locl", known.into_iter()), Some("local"));
        // Far from every name, or not a bare name: an ssh destination as written.
        assert_eq!(misspelt_host("buildfarm", known.into_iter()), None);
        assert_eq!(misspelt_host("me@pengiun", known.into_iter()), None);
        assert_eq!(misspelt_host("pengiun.lan", known.into_iter()), None);
    }

    #[test]
    fn wrong_types_name_the_key() {
        let e = parse("[retry]\nretries = \"three\"\n").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("retry.retries"), "{e}");
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn hostile_destinations_and_env_names_are_refused() {
        let e = parse("[hosts.x]\nssh = \"-oProxyCommand=touch /tmp/pwned\"\n").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("hosts.x.ssh"), "{e}");
        assert!(e.message.contains("ssh option"), "{e}");
        let e = parse("[hosts.x.env]\n\"A;B\" = \"1\"\n").unwrap_err();
        assert!(
            e.message.contains("not a valid environment variable name"),
            "{e}"
        );
    }

    #[test]
    fn layers_override_key_by_key() {
        let user = parse("default_host = \"penguin\"\n[hosts.penguin]\nshell_init = \"source nvm\"\nworkspace = \"~/w1\"\n[hosts.penguin.env]\nA = \"1\"\n").unwrap();
        let project = parse("[hosts.penguin]\nworkspace = \"~/w2\"\n[hosts.penguin.env]\nB = \"2\"\n[models]\ndebug = \"m\"\n").unwrap();
        let config = Config::from_files([user, project]).unwrap();
        let host = config.host(None).unwrap();
        assert_eq!(host.name, "penguin");
        assert_eq!(host.workspace, "~/w2");
        assert_eq!(host.shell_init.as_deref(), Some("source nvm"));
        assert_eq!(host.env.len(), 2);
        assert_eq!(
            host.kind,
            HostKind::Ssh {
                destination: "penguin".into()
            }
        );
    }

    #[test]
    fn unconfigured_names_are_ssh_destinations_and_local_is_built_in() {
        let config = Config::builtin();
        assert_eq!(config.host(None).unwrap().kind, HostKind::Local);
        let host = config.host(Some("ssh://me@box:2222")).unwrap();
        assert_eq!(
            host.kind,
            HostKind::Ssh {
                destination: "ssh://me@box:2222".into()
            }
        );
        assert_eq!(host.workspace, DEFAULT_WORKSPACE);
        assert_eq!(host.host_key_policy, HostKeyPolicy::Strict);
        let e = config.host(Some("-oProxyCommand=x")).unwrap_err();
        assert_eq!(e.source_name, "--host");
    }

    #[test]
    fn hosts_made_on_demand_are_checked_and_resolved() {
        let config = |text: &str| Config::from_files([parse(text)?]);
        let host = config(
            "[hosts.box]\nengine = \"podman\"\nimage = \"node:20\"\nrun_args = [\"--network\", \"host\"]\n",
        )
        .unwrap()
        .host(Some("box"))
        .unwrap();
        let HostKind::OnDemand(made) = &host.kind else {
            panic!("{host:?}")
        };
        assert_eq!(made.engine, ContainerEngine::Podman);
        assert_eq!(made.image, "node:20");
        assert_eq!(made.run_args, ["--network", "host"]);
        assert_eq!(host.workspace, DEFAULT_WORKSPACE);
        // A YAML overlay for Kubernetes becomes JSON for `--overrides`.
        let host = config("[hosts.k]\nengine = \"kubernetes\"\nimage = \"node:20\"\nnamespace = \"team\"\nrun_args = \"\"\"\nspec:\n  nodeSelector:\n    gpu: \"yes\"\n\"\"\"\n")
            .unwrap()
            .host(Some("k"))
            .unwrap();
        let HostKind::OnDemand(made) = &host.kind else {
            panic!("{host:?}")
        };
        assert_eq!(made.namespace, "team");
        assert_eq!(
            made.pod_overlay.as_deref(),
            Some(r#"{"spec":{"nodeSelector":{"gpu":"yes"}}}"#)
        );
        for (text, field, words) in [
            (
                "[hosts.b]\nengine = \"docker\"\n",
                "hosts.b.image",
                "no `image`",
            ),
            ("[hosts.b]\nimage = \"x\"\n", "hosts.b.image", "no `engine`"),
            (
                "[hosts.b]\nengine = \"docker\"\nimage = \"x\"\nrun_args = \"{}\"\n",
                "hosts.b.run_args",
                "list of `docker run`",
            ),
            (
                "[hosts.b]\nengine = \"kubernetes\"\nimage = \"x\"\nrun_args = [\"-v\"]\n",
                "hosts.b.run_args",
                "pod spec overlay",
            ),
            (
                "[hosts.b]\nengine = \"kubernetes\"\nimage = \"x\"\nrun_args = \"[1, 2]\"\n",
                "hosts.b.run_args",
                "mapping",
            ),
            (
                "[hosts.b]\nengine = \"podman\"\nimage = \"x\"\nnamespace = \"n\"\n",
                "hosts.b.namespace",
                "for kubernetes",
            ),
            (
                "[hosts.b]\nengine = \"podman\"\nssh = \"b\"\nimage = \"x\"\n",
                "hosts.b",
                "more than one way",
            ),
        ] {
            let e = config(text).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{text}: {e}");
            assert!(e.message.contains(words), "{text}: {e}");
        }
        // Nothing that `podman run` could read as an option passes as the image.
        let e = parse("[hosts.b]\nengine = \"podman\"\nimage = \"--privileged\"\n").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("hosts.b.image"), "{e}");
        let e = parse("[hosts.b]\nengine = \"lxc\"\n").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("hosts.b.engine"), "{e}");
    }

    #[test]
    fn local_may_not_have_an_ssh_destination() {
        let e = Config::from_files([parse("[hosts.local]\nssh = \"x\"\n").unwrap()]).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("hosts.local.ssh"));
    }

    #[test]
    fn loader_reads_user_then_project_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("user.toml");
        std::fs::write(&user, "default_host = \"a\"\n[retry]\nretries = 1\n").unwrap();
        let project = dir.path().join("proj");
        std::fs::create_dir_all(project.join("sub")).unwrap();
        std::fs::write(project.join(PROJECT_FILE), "default_host = \"b\"\n").unwrap();
        let mut loader = ConfigLoader {
            user_file: Some(user),
            start_dir: project.join("sub"),
            env: BTreeMap::new(),
        };
        let config = loader.load().unwrap();
        assert_eq!(config.host(None).unwrap().name, "b");
        assert_eq!(config.retry().retries, 1);
        assert_eq!(config.sources.len(), 2);
        loader.env.insert(ENV_HOST.into(), "c".into());
        loader.env.insert(ENV_RETRIES.into(), "4".into());
        let config = loader.load().unwrap();
        assert_eq!(config.host(None).unwrap().name, "c");
        assert_eq!(config.retry().retries, 4);
        assert_eq!(config.host(Some("d")).unwrap().name, "d");
        loader.env.insert(ENV_RETRIES.into(), "many".into());
        assert!(loader.load().unwrap_err().to_string().contains(ENV_RETRIES));
    }

    #[test]
    fn a_missing_user_file_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let loader = ConfigLoader {
            user_file: Some(dir.path().join("nope.toml")),
            start_dir: dir.path().into(),
            env: BTreeMap::new(),
        };
        assert!(loader.load().unwrap().sources.is_empty());
    }

    #[test]
    fn stall_timeout_defaults_to_ten_minutes_and_zero_turns_it_off() {
        let config = |text: &str| Config::from_files([parse(text).unwrap()]);
        assert_eq!(
            Config::builtin().stall_timeout(),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            config("stall_timeout = \"90s\"\n").unwrap().stall_timeout(),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            config("stall_timeout = \"0s\"\n").unwrap().stall_timeout(),
            None
        );
        let e = parse("stall_timeout = \"soon\"\n").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("stall_timeout"));
        assert!(e.message.contains("`soon` is not a duration"), "{e}");
    }

    /// A bad duration in a config file says the file, line and column of its value, as the
    /// docs promise for every config error.
    #[test]
    fn a_bad_duration_names_the_file_line_and_column() {
        let text = "# mine\ndefault_host = \"local\"\n\nstall_timeout = \"ten\"\n";
        let e = ConfigFile::parse(text, "codex-remote.toml").unwrap_err();
        assert_eq!(e.source_name, "codex-remote.toml");
        assert_eq!(e.field.as_deref(), Some("stall_timeout"));
        assert_eq!((e.line, e.column), (Some(4), Some(17)), "{e}");
        assert!(e.message.contains("`ten` is not a duration"), "{e}");
        assert!(e.hint.is_some());
        let e = ConfigFile::parse("max_wait = \"later\"\n", "c.toml").unwrap_err();
        assert_eq!(
            (e.field.as_deref(), e.line, e.column),
            (Some("max_wait"), Some(1), Some(12)),
            "{e}"
        );
    }
}
