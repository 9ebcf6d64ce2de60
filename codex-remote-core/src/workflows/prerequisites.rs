//! What the agent needs on a host before a run pushes anything: `codex` on the `PATH` after the
//! host's shell init, and a way for Codex to authenticate. One probe (one command, one shell init)
//! learns both; what it learned is remembered per host under the project's `.codex-remote/hosts/`
//! for [`CACHE_TTL`], and forgotten as soon as a check or a run finds it no longer true.
//!
//! Codex authenticates in one of these ways, and any one of them is enough:
//! - a login `codex login status` reports (ChatGPT, or an API key stored with
//!   `codex login --with-api-key`);
//! - `CODEX_API_KEY` in the environment Codex runs in (the host's `env`, or its shell init);
//! - a model provider in `$CODEX_HOME/config.toml` that needs no OpenAI login: a custom
//!   `[model_providers.ID]` without `requires_openai_auth = true` (with its `env_key` variable
//!   set, when it names one), or the built-in local providers `ollama` and `lmstudio`.
//!
//! `OPENAI_API_KEY` alone is *not* enough for `codex exec` 0.169.0 (observed: it sends no
//! credentials then); the check says so and how to turn it into one of the ways above.
//!
//! Everything here reads only variable *names* from the host, never values.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use crate::error::Error;
use crate::host::HostSpec;
use crate::transport::{CommandSpec, Transport, TransportExt};

/// The Codex CLI version codex-remote is built and tested against (CI's pin, the demo's copy).
pub const CODEX_VERSION: &str = "0.169.0";

/// How to install that version, for people to run on a host without Codex.
pub const CODEX_INSTALL: &str = "npm install -g @openai/codex@0.169.0";

/// The `problem` of the [`Error::Prerequisite`] a run fails with when `codex` is not on the
/// host's `PATH`.
pub const CODEX_NOT_FOUND: &str = "codex was not found";

/// How long what a probe learned is trusted before the next run asks the host again.
pub const CACHE_TTL: Duration = Duration::from_secs(60 * 60);

/// Where the remembered prerequisites live, relative to the project root.
pub const HOSTS_DIR: &str = ".codex-remote/hosts";

/// The built-in Codex model providers that talk to a local model server and need no login.
const LOCAL_PROVIDERS: [&str; 2] = ["ollama", "lmstudio"];

/// Longest host answer (version, login status) kept.
const MAX_SAID_CHARS: usize = 300;

/// Largest `config.toml` read back from the host.
const MAX_CONFIG_BYTES: usize = 256 * 1024;

/// How Codex on a host authenticates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum CodexAuth {
    /// `codex login status` succeeded.
    Login {
        /// What it said (e.g. `Logged in using ChatGPT`).
        said: String,
    },
    /// An API key in the environment Codex runs in.
    ApiKeyEnv {
        /// The variable's name.
        var: String,
    },
    /// The configured model provider needs no OpenAI login.
    Provider {
        /// The provider's id in `config.toml`.
        id: String,
        /// The variable holding its key, when it reads one.
        env_key: Option<String>,
    },
}

impl CodexAuth {
    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            CodexAuth::Login { said } => said.clone(),
            CodexAuth::ApiKeyEnv { var } => format!("API key in ${var}"),
            CodexAuth::Provider { id, env_key: None } => {
                format!("model provider `{id}` needs no login")
            }
            CodexAuth::Provider {
                id,
                env_key: Some(var),
            } => format!("model provider `{id}`, its key in ${var}"),
        }
    }
}

/// What the agent needs on a host, as last found there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prerequisites {
    /// `codex --version`.
    pub codex_version: String,
    /// How Codex authenticates.
    pub auth: CodexAuth,
}

/// A prerequisite that is not met: what was found, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmet {
    /// What was found.
    pub detail: String,
    /// How to fix it.
    pub fix: String,
}

/// What the host said to the probe.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProbeReport {
    /// `codex --version`'s exit code and first line of output.
    pub version: (i32, String),
    /// `codex login status`'s exit code and output (absent when codex is missing).
    pub login: Option<(i32, String)>,
    /// Names of the non-empty environment variables Codex would see.
    pub env: BTreeSet<String>,
    /// `$CODEX_HOME/config.toml`, when there is one.
    pub config: Option<String>,
}

/// The probe: after the shell init and with the host's env, report codex's version, its login
/// status, the *names* of the set environment variables, and Codex's config file. Its arguments:
/// the codex program and the largest config size to read.
const PROBE_SCRIPT: &str = r#"codex=$1
t=$(mktemp -d) || exit 1
"$codex" --version >"$t/v" 2>&1 </dev/null & v=$!
"$codex" login status >"$t/l" 2>&1 </dev/null & l=$!
wait "$v"; st=$?
wait "$l"; lst=$?
printf 'version %s %s\n' "$st" "$(grep -v '^WARNING' "$t/v" | head -n 1)"
if [ "$st" -eq 0 ]; then
  printf 'login %s %s\n' "$lst" "$(grep -v '^WARNING' "$t/l" | tr '\n' ' ' | cut -c 1-300)"
fi
rm -rf -- "$t"
[ "$st" -eq 0 ] || exit 0
awk 'BEGIN { for (k in ENVIRON) if (ENVIRON[k] != "") print "env " k }' </dev/null
cfg="${CODEX_HOME:-$HOME/.codex}/config.toml"
if [ -f "$cfg" ]; then echo config; head -c "$2" -- "$cfg"; fi
exit 0
"#;

/// Asks the host, in one command. A probe that cannot run to its end (the shell init exits,
/// no temporary directory) is a prerequisite failure too.
pub async fn probe(transport: &dyn Transport) -> Result<ProbeReport, Error> {
    let host = transport.host();
    let limit = MAX_CONFIG_BYTES.to_string();
    let out = transport
        .run(
            CommandSpec::script(PROBE_SCRIPT, &[&host.codex, &limit])
                .named(crate::transport::script_names::PREREQUISITE_PROBE)
                .with_shell_init(),
        )
        .await?;
    if !out.status.success() {
        let said = out.stderr_text();
        return Err(Error::Prerequisite {
            host: host.name.clone(),
            problem: "codex could not be looked for".into(),
            detail: format!(
                "the check ended with {}: {}",
                out.status,
                said.trim().lines().last().unwrap_or_default()
            ),
            fix: format!(
                "check `shell_init` under [hosts.{}] and that the host can make temporary directories",
                host.name
            ),
        });
    }
    Ok(ProbeReport::parse(&out.stdout_text()))
}

impl ProbeReport {
    /// Reads the probe's output.
    pub fn parse(text: &str) -> ProbeReport {
        let mut report = ProbeReport {
            version: (127, String::new()),
            ..ProbeReport::default()
        };
        let mut rest = text;
        while let Some((line, after)) = rest.split_once('\n') {
            rest = after;
            if line == "config" {
                report.config = Some(rest.to_string());
                break;
            }
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            let status = |value: &str| {
                let (code, said) = value.split_once(' ').unwrap_or((value, ""));
                // Host output is shown to the user: no control characters, bounded.
                let said: String = said
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_SAID_CHARS)
                    .collect();
                (code.parse().unwrap_or(1), said.trim().to_string())
            };
            match key {
                "version" => report.version = status(value),
                "login" => report.login = Some(status(value)),
                "env" => {
                    report.env.insert(value.to_string());
                }
                _ => {}
            }
        }
        report
    }

    /// Whether codex was found (its version), and how it authenticates.
    pub fn checks(&self, host: &HostSpec) -> (Result<String, Unmet>, Result<CodexAuth, Unmet>) {
        let (code, said) = &self.version;
        if *code != 0 {
            let unmet = Unmet {
                detail: format!("`{} --version`: {said}", host.codex),
                fix: codex_not_found_hint(host),
            };
            let skipped = Unmet {
                detail: "skipped: codex not found".into(),
                fix: "install codex first".into(),
            };
            return (Err(unmet), Err(skipped));
        }
        let login = self.login.clone().unwrap_or((1, String::new()));
        let from_args = provider_from_args(&host.codex_args);
        let auth = judge_auth_with(
            &host.name,
            (login.0 == 0, &login.1),
            &self.env,
            self.config.as_deref(),
            from_args.as_deref(),
        );
        (Ok(said.clone()), auth)
    }

    /// The prerequisites, or the first one not met as the error a run fails with.
    pub fn prerequisites(&self, host: &HostSpec) -> Result<Prerequisites, Error> {
        let failed = |problem: &str, unmet: Unmet| Error::Prerequisite {
            host: host.name.clone(),
            problem: problem.to_string(),
            detail: unmet.detail,
            fix: unmet.fix,
        };
        match self.checks(host) {
            (Err(unmet), _) => Err(failed(CODEX_NOT_FOUND, unmet)),
            (Ok(_), Err(unmet)) => Err(failed("codex cannot authenticate", unmet)),
            (Ok(codex_version), Ok(auth)) => Ok(Prerequisites {
                codex_version,
                auth,
            }),
        }
    }
}

/// Advice for a host whose `codex` is not on its `PATH`: the install command for the supported
/// version, or the shell init that would find it.
pub fn codex_not_found_hint(host: &HostSpec) -> String {
    let install = format!(
        "install it on `{}` with `{CODEX_INSTALL}` (the version codex-remote supports)",
        host.name
    );
    match &host.shell_init {
        None => format!(
            "{install}, or if it comes from nvm set `shell_init = \"source ~/.config/nvm/nvm.sh\"` under [hosts.{}]",
            host.name
        ),
        Some(init) => format!(
            "{install}, or check that the shell init `{init}` puts `{}` on PATH",
            host.codex
        ),
    }
}

/// Decides how Codex authenticates from what the host reported: `codex login status`, the names
/// of the set environment variables, and `$CODEX_HOME/config.toml`.
#[cfg(test)]
pub fn judge_auth(
    host: &str,
    login: (bool, &str),
    env: &BTreeSet<String>,
    config: Option<&str>,
) -> Result<CodexAuth, Unmet> {
    judge_auth_with(host, login, env, config, None)
}

/// The `model_provider` a host's `codex_args` set (`-c model_provider="ID"`), which wins over
/// Codex's config file.
pub fn provider_from_args(args: &[String]) -> Option<String> {
    let mut values: Vec<&str> = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "-c" || arg == "--config" {
            values.extend(args.next().map(String::as_str));
        } else if let Some(value) = arg.strip_prefix("--config=") {
            values.push(value);
        }
    }
    values.iter().rev().find_map(|v| {
        let raw = v.strip_prefix("model_provider=")?.trim();
        // Codex parses the value as TOML, and takes it literally when that fails.
        let parsed = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|t| t.get("v")?.as_str().map(str::to_string));
        Some(parsed.unwrap_or_else(|| raw.to_string()))
    })
}

/// `judge_auth` with the provider a host's `codex_args` choose, if any.
pub fn judge_auth_with(
    host: &str,
    login: (bool, &str),
    env: &BTreeSet<String>,
    config: Option<&str>,
    provider_override: Option<&str>,
) -> Result<CodexAuth, Unmet> {
    let config_fix =
        format!("fix $CODEX_HOME/config.toml (default ~/.codex/config.toml) on {host}");
    let config: toml::Table = match config.map(str::parse::<toml::Table>) {
        None => toml::Table::new(),
        Some(Ok(table)) => table,
        Some(Err(e)) => {
            return Err(Unmet {
                detail: format!("Codex's config.toml does not parse: {}", e.message().trim()),
                fix: config_fix,
            })
        }
    };
    let profile = config
        .get("profile")
        .and_then(|p| p.as_str())
        .and_then(|p| config.get("profiles")?.get(p)?.get("model_provider"));
    let provider = provider_override
        .or_else(|| {
            profile
                .or_else(|| config.get("model_provider"))
                .and_then(|p| p.as_str())
        })
        .unwrap_or("openai")
        .to_string();
    // From the host's file, shown to the user: printable only.
    let clean = |text: &str| -> String {
        text.chars()
            .filter(|c| !c.is_control())
            .take(MAX_SAID_CHARS)
            .collect()
    };
    let shown = clean(&provider);
    if LOCAL_PROVIDERS.contains(&provider.as_str()) {
        return Ok(CodexAuth::Provider {
            id: shown,
            env_key: None,
        });
    }
    if provider != "openai" {
        let Some(info) = config.get("model_providers").and_then(|p| p.get(&provider)) else {
            return Err(Unmet {
                detail: format!("model_provider `{shown}` is not defined in Codex's config.toml"),
                fix: format!(
                    "define [model_providers.{shown}] or remove `model_provider` ({config_fix})"
                ),
            });
        };
        // Codex's default for a custom provider is no OpenAI login.
        if info.get("requires_openai_auth").and_then(|v| v.as_bool()) != Some(true) {
            let env_key = info.get("env_key").and_then(|v| v.as_str()).map(clean);
            if let Some(var) = &env_key {
                if !env.contains(var) {
                    return Err(Unmet {
                        detail: format!("model provider `{shown}` reads its key from ${var}, which is not set on {host}"),
                        fix: format!("set {var} under [hosts.{host}.env], or export it in the host's shell_init"),
                    });
                }
            }
            return Ok(CodexAuth::Provider { id: shown, env_key });
        }
    }
    // The OpenAI provider, or one that requires OpenAI's authentication.
    if login.0 {
        return Ok(CodexAuth::Login {
            said: login.1.trim().to_string(),
        });
    }
    if env.contains("CODEX_API_KEY") {
        return Ok(CodexAuth::ApiKeyEnv {
            var: "CODEX_API_KEY".into(),
        });
    }
    let said = if login.1.trim().is_empty() {
        "not logged in".to_string()
    } else {
        login.1.trim().to_string()
    };
    if env.contains("OPENAI_API_KEY") {
        return Err(Unmet {
            detail: format!("{said}; OPENAI_API_KEY is set, but `codex exec` reads an API key from CODEX_API_KEY, not OPENAI_API_KEY"),
            fix: format!("run `printenv OPENAI_API_KEY | codex login --with-api-key` on {host} once, or set CODEX_API_KEY under [hosts.{host}.env] (or `export CODEX_API_KEY=\"$OPENAI_API_KEY\"` in its shell_init)"),
        });
    }
    Err(Unmet {
        detail: said,
        fix: format!("run `codex login` on {host}, or set CODEX_API_KEY under [hosts.{host}.env] or in its shell_init"),
    })
}

/// What is remembered about one host.
#[derive(Debug, Serialize, Deserialize)]
struct Remembered {
    host: String,
    /// A digest of the host's config when this was learned.
    config: String,
    /// Seconds since the epoch.
    checked_at: u64,
    prerequisites: Prerequisites,
}

/// The per-host memory of met prerequisites, under a project's `.codex-remote/hosts/`.
#[derive(Debug, Clone)]
pub struct PrerequisiteCache {
    dir: PathBuf,
    ttl: Duration,
}

impl PrerequisiteCache {
    /// The cache of the project at `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            dir: root.join(HOSTS_DIR),
            ttl: CACHE_TTL,
        }
    }

    /// The same cache trusting entries for `ttl`.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The file for a host: its name made safe, and a digest of the name (so two names that
    /// are made safe alike never share a file).
    fn file(&self, host: &HostSpec) -> PathBuf {
        let safe: String = host
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        let digest = hex_digest(host.name.as_bytes());
        self.dir.join(format!("{safe}-{}.json", &digest[..12]))
    }

    /// What is remembered about the host, unless older than the TTL or learned while the host
    /// was configured otherwise (destination, shell init, codex, env).
    pub fn recall(&self, host: &HostSpec) -> Option<Prerequisites> {
        let bytes = std::fs::read(self.file(host)).ok()?;
        let remembered: Remembered = serde_json::from_slice(&bytes).ok()?;
        let age = now_secs().saturating_sub(remembered.checked_at);
        (remembered.host == host.name
            && remembered.config == fingerprint(host)
            && age < self.ttl.as_secs())
        .then_some(remembered.prerequisites)
    }

    /// Remembers the host's prerequisites as met now. Best effort: a cache that cannot be
    /// written only costs the next run a probe.
    pub fn remember(&self, host: &HostSpec, prerequisites: &Prerequisites) {
        let remembered = Remembered {
            host: host.name.clone(),
            config: fingerprint(host),
            checked_at: now_secs(),
            prerequisites: prerequisites.clone(),
        };
        let json = serde_json::to_vec_pretty(&remembered).expect("serialises");
        let _ = crate::atomic::write_atomic(&self.file(host), &json);
    }

    /// Forgets the host (its prerequisites are no longer known to be met).
    pub fn forget(&self, host: &HostSpec) {
        let _ = std::fs::remove_file(self.file(host));
    }

    /// Forgets the host when `error` says one of its prerequisites failed (codex missing, login
    /// refused), so the next run checks again before pushing.
    pub fn forget_on(&self, host: &HostSpec, error: &Error) {
        if error.kind() == crate::ErrorKind::Prerequisite {
            self.forget(host);
        }
    }
}

fn hex_digest(bytes: &[u8]) -> String {
    Sha1::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A digest of everything about the host that changes the answer (a digest, so the env's
/// values are never written down).
fn fingerprint(host: &HostSpec) -> String {
    hex_digest(&serde_json::to_vec(host).expect("hosts serialise"))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Makes sure the agent's prerequisites are met on the transport's host, before anything is
/// pushed: from the cache when it is fresh, else with one probe (remembered when it passes).
/// A missing codex or a missing login is an [`ErrorKind::Prerequisite`](crate::ErrorKind) error
/// carrying the fix.
pub async fn ensure(
    transport: &dyn Transport,
    cache: &PrerequisiteCache,
) -> Result<Prerequisites, Error> {
    let host = transport.host();
    if let Some(known) = cache.recall(host) {
        return Ok(known);
    }
    let report = probe(transport).await?;
    match report.prerequisites(host) {
        Ok(prerequisites) => {
            cache.remember(host, &prerequisites);
            Ok(prerequisites)
        }
        Err(e) => {
            cache.forget(host);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    const NOT_LOGGED_IN: (bool, &str) = (false, "Not logged in");

    #[test]
    fn a_chatgpt_login_is_enough() {
        let auth = judge_auth("h", (true, "Logged in using ChatGPT"), &env(&[]), None);
        assert_eq!(
            auth.unwrap(),
            CodexAuth::Login {
                said: "Logged in using ChatGPT".into()
            }
        );
    }

    #[test]
    fn codex_api_key_in_the_env_is_enough() {
        let auth = judge_auth("h", NOT_LOGGED_IN, &env(&["CODEX_API_KEY"]), None).unwrap();
        assert_eq!(auth.describe(), "API key in $CODEX_API_KEY");
    }

    #[test]
    fn openai_api_key_alone_fails_with_the_way_to_use_it() {
        let unmet =
            judge_auth("penguin", NOT_LOGGED_IN, &env(&["OPENAI_API_KEY"]), None).unwrap_err();
        assert!(
            unmet.detail.contains("reads an API key from CODEX_API_KEY"),
            "{unmet:?}"
        );
        assert!(
            unmet.fix.contains("codex login --with-api-key"),
            "{unmet:?}"
        );
        assert!(unmet.fix.contains("[hosts.penguin.env]"), "{unmet:?}");
    }

    #[test]
    fn nothing_fails_with_codex_login_as_the_fix() {
        let unmet = judge_auth("penguin", NOT_LOGGED_IN, &env(&["HOME"]), None).unwrap_err();
        assert_eq!(unmet.detail, "Not logged in");
        assert!(
            unmet.fix.starts_with("run `codex login` on penguin"),
            "{unmet:?}"
        );
    }

    #[test]
    fn a_provider_that_needs_no_login_is_enough() {
        let config = "model_provider = \"fake\"\n[model_providers.fake]\nname = \"fake\"\nbase_url = \"http://127.0.0.1:1/v1\"\nrequires_openai_auth = false\n";
        let auth = judge_auth("h", NOT_LOGGED_IN, &env(&[]), Some(config)).unwrap();
        assert_eq!(auth.describe(), "model provider `fake` needs no login");
        // Codex's default for a custom provider is no OpenAI login too.
        let config = "model_provider = \"corp\"\n[model_providers.corp]\nname = \"corp\"\n";
        assert!(judge_auth("h", NOT_LOGGED_IN, &env(&[]), Some(config)).is_ok());
        for local in ["ollama", "lmstudio"] {
            let config = format!("model_provider = \"{local}\"\n");
            assert!(judge_auth("h", NOT_LOGGED_IN, &env(&[]), Some(&config)).is_ok());
        }
    }

    #[test]
    fn a_provider_reading_a_key_needs_that_key() {
        let config = "model_provider = \"corp\"\n[model_providers.corp]\nname = \"corp\"\nenv_key = \"CORP_KEY\"\n";
        let unmet = judge_auth("h", NOT_LOGGED_IN, &env(&[]), Some(config)).unwrap_err();
        assert!(unmet.detail.contains("$CORP_KEY"), "{unmet:?}");
        assert!(
            unmet.fix.contains("CORP_KEY under [hosts.h.env]"),
            "{unmet:?}"
        );
        let auth = judge_auth("h", NOT_LOGGED_IN, &env(&["CORP_KEY"]), Some(config)).unwrap();
        assert_eq!(
            auth.describe(),
            "model provider `corp`, its key in $CORP_KEY"
        );
    }

    #[test]
    fn a_provider_requiring_openai_auth_needs_a_login() {
        let config = "model_provider = \"p\"\n[model_providers.p]\nname = \"p\"\nrequires_openai_auth = true\n";
        assert!(judge_auth("h", NOT_LOGGED_IN, &env(&[]), Some(config)).is_err());
        assert!(judge_auth("h", NOT_LOGGED_IN, &env(&["CODEX_API_KEY"]), Some(config)).is_ok());
    }

    #[test]
    fn the_hosts_codex_args_choose_the_provider() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            provider_from_args(&args(&[
                "-c",
                "model_provider=\"ollama\"",
                "--skip-git-repo-check"
            ])),
            Some("ollama".into())
        );
        assert_eq!(
            provider_from_args(&args(&["--config=model_provider=corp"])),
            Some("corp".into())
        );
        assert_eq!(provider_from_args(&args(&["-c", "model=\"o3\""])), None);
        let config = "model_provider = \"fake\"\n[model_providers.fake]\nname = \"fake\"\n";
        // The file's provider needs no login, but the args switch to OpenAI's.
        assert!(
            judge_auth_with("h", NOT_LOGGED_IN, &env(&[]), Some(config), Some("openai")).is_err()
        );
        assert!(judge_auth_with("h", NOT_LOGGED_IN, &env(&[]), None, Some("ollama")).is_ok());
    }

    #[test]
    fn the_active_profile_chooses_the_provider() {
        let config = "profile = \"offline\"\n[profiles.offline]\nmodel_provider = \"ollama\"\n";
        assert!(judge_auth("h", NOT_LOGGED_IN, &env(&[]), Some(config)).is_ok());
    }

    #[test]
    fn an_undefined_provider_or_a_broken_config_is_reported() {
        let unmet = judge_auth(
            "h",
            NOT_LOGGED_IN,
            &env(&[]),
            Some("model_provider = \"nosuch\"\n"),
        )
        .unwrap_err();
        assert!(
            unmet.detail.contains("`nosuch` is not defined"),
            "{unmet:?}"
        );
        let unmet = judge_auth(
            "h",
            (true, "Logged in"),
            &env(&[]),
            Some("model_provider = ["),
        )
        .unwrap_err();
        assert!(unmet.detail.contains("does not parse"), "{unmet:?}");
    }

    #[test]
    fn the_probe_output_is_read_back_hostile_lines_included() {
        let text = "version 0 codex-cli 0.169.0\nlogin 1 Not logged in \nenv HOME\nenv CODEX_API_KEY\nnonsense\nconfig\nmodel_provider = \"x\"\nenv FAKE\n";
        let report = ProbeReport::parse(text);
        assert_eq!(report.version, (0, "codex-cli 0.169.0".into()));
        assert_eq!(report.login, Some((1, "Not logged in".into())));
        assert_eq!(report.env, env(&["HOME", "CODEX_API_KEY"]));
        assert_eq!(
            report.config.as_deref(),
            Some("model_provider = \"x\"\nenv FAKE\n")
        );
        // A hostile host's answer cannot paint the terminal or flood it.
        let hostile = format!("version 0 \x1b]0;pwned\x07codex {}\n", "x".repeat(10_000));
        let said = ProbeReport::parse(&hostile).version.1;
        assert!(!said.contains('\x1b') && !said.contains('\x07'), "{said:?}");
        assert!(said.len() <= MAX_SAID_CHARS, "{}", said.len());
        let missing = ProbeReport::parse("version 127 sh: 1: codex: not found\n");
        let host = crate::config::Config::builtin()
            .host(Some("penguin"))
            .unwrap();
        let (found, auth) = missing.checks(&host);
        assert!(found.unwrap_err().detail.contains("not found"));
        assert!(auth.is_err());
        let err = missing.prerequisites(&host).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Prerequisite);
    }

    use crate::executor::ExecFailure;

    #[test]
    fn the_cache_remembers_expires_and_forgets() {
        let dir = tempfile::tempdir().unwrap();
        let host = crate::config::Config::builtin()
            .host(Some("user@box:22"))
            .unwrap();
        let cache = PrerequisiteCache::new(dir.path());
        assert_eq!(cache.recall(&host), None);
        let known = Prerequisites {
            codex_version: "codex-cli 0.169.0".into(),
            auth: CodexAuth::ApiKeyEnv {
                var: "CODEX_API_KEY".into(),
            },
        };
        cache.remember(&host, &known);
        assert_eq!(cache.recall(&host), Some(known.clone()));
        let file = cache.file(&host);
        assert!(file.starts_with(dir.path().join(HOSTS_DIR)), "{file:?}");
        assert!(!file.file_name().unwrap().to_str().unwrap().contains('@'));
        // Another shell init is another host as far as the answer goes.
        let mut changed = host.clone();
        changed.shell_init = Some("source ~/.nvm/nvm.sh".into());
        assert_eq!(cache.recall(&changed), None);
        assert_eq!(cache.clone().with_ttl(Duration::ZERO).recall(&host), None);
        let failure = Error::Exec {
            failure: ExecFailure::AuthExpired {
                message: "401".into(),
            },
            host: host.name.clone(),
            attempts: 1,
        };
        cache.forget_on(&host, &failure);
        assert_eq!(cache.recall(&host), None);
    }
}
