//! Hosts: where a run executes, as resolved from the config.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// The name of the built-in host that runs everything on this machine.
pub const LOCAL_HOST: &str = "local";

/// How the host is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum HostKind {
    /// This machine, through local processes.
    Local,
    /// Another machine, through OpenSSH.
    Ssh {
        /// What one would type after `ssh`: an alias, `user@host` or `ssh://user@host:port`.
        destination: String,
    },
    /// A running container or pod, through its engine's `exec`.
    Container {
        /// The engine whose `exec` reaches it.
        engine: ContainerEngine,
        /// The container (`podman`, `docker`), or `NAMESPACE/POD[/CONTAINER]` (`kubernetes`).
        target: String,
    },
    /// A fresh container or pod for each run, started before the push and removed once the
    /// run's result is retrieved (see [`crate::ondemand`]).
    #[serde(rename = "on-demand")]
    OnDemand(OnDemand),
}

/// How the container or pod of a host made on demand is started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OnDemand {
    /// The engine that starts it.
    pub engine: ContainerEngine,
    /// The image it runs.
    pub image: String,
    /// Extra arguments for `podman run` / `docker run` (empty for Kubernetes).
    pub run_args: Vec<String>,
    /// The pod spec overlay for Kubernetes (`kubectl run --overrides`), as JSON.
    pub pod_overlay: Option<String>,
    /// The Kubernetes namespace its pods go in.
    pub namespace: String,
}

/// A container engine whose `exec -i` runs commands in a container.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ContainerEngine {
    /// `podman exec -i CONTAINER ...`.
    Podman,
    /// `docker exec -i CONTAINER ...`.
    Docker,
    /// `kubectl exec -i -n NAMESPACE POD [-c CONTAINER] -- ...`.
    Kubernetes,
}

impl ContainerEngine {
    /// Every engine, in the order the config keys are documented.
    pub const ALL: [ContainerEngine; 3] = [
        ContainerEngine::Podman,
        ContainerEngine::Docker,
        ContainerEngine::Kubernetes,
    ];

    /// The config key under `[hosts.NAME]` (`podman`, `docker`, `kubernetes`).
    pub fn key(self) -> &'static str {
        match self {
            ContainerEngine::Podman => "podman",
            ContainerEngine::Docker => "docker",
            ContainerEngine::Kubernetes => "kubernetes",
        }
    }

    /// The scheme of a `--host` URL (`podman://`, `docker://`, `k8s://`).
    pub fn scheme(self) -> &'static str {
        match self {
            ContainerEngine::Podman => "podman",
            ContainerEngine::Docker => "docker",
            ContainerEngine::Kubernetes => "k8s",
        }
    }

    /// The engine's command-line program.
    pub fn program(self) -> &'static str {
        match self {
            ContainerEngine::Podman => "podman",
            ContainerEngine::Docker => "docker",
            ContainerEngine::Kubernetes => "kubectl",
        }
    }

    /// Checks a target for this engine: a container name, or `NAMESPACE/POD[/CONTAINER]`.
    /// Nothing that could be read as an option of the engine's command passes.
    pub fn check_target(self, target: &str) -> Result<(), String> {
        let parts: Vec<&str> = target.split('/').collect();
        let expected = match self {
            ContainerEngine::Kubernetes => "NAMESPACE/POD or NAMESPACE/POD/CONTAINER",
            _ => "a container name or id",
        };
        let count_ok = match self {
            ContainerEngine::Kubernetes => parts.len() == 2 || parts.len() == 3,
            _ => parts.len() == 1,
        };
        if !count_ok {
            return Err(format!(
                "`{}` is not {expected} for {}",
                target.escape_debug(),
                self.key()
            ));
        }
        for part in parts {
            let valid = !part.is_empty()
                && !part.starts_with(['-', '.'])
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !valid {
                return Err(format!(
                    "`{}` is not a valid {} name: use letters, digits, `-`, `_` and `.`, not starting with `-` or `.`",
                    part.escape_debug(),
                    if self == ContainerEngine::Kubernetes { "namespace, pod or container" } else { "container" }
                ));
            }
        }
        Ok(())
    }
}

impl std::fmt::Display for ContainerEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

/// What to do with a host key that is not in `known_hosts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyPolicy {
    /// Refuse (`StrictHostKeyChecking=yes`), the default.
    Strict,
    /// Trust and remember it (`StrictHostKeyChecking=accept-new`); opt-in.
    AcceptNew,
}

/// Values of a host's `env` shorter than this are not redacted from messages (a `1` or `true`
/// would garble every message; secrets are longer).
pub const MIN_REDACTED_LEN: usize = 6;

fn serialize_redacted<S: serde::Serializer>(
    env: &BTreeMap<String, String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(env.keys().map(|k| (k, "[redacted]")))
}

/// A fully resolved host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostSpec {
    /// The name it was asked for by (`penguin`, `local`).
    pub name: String,
    /// How it is reached.
    #[serde(flatten)]
    pub kind: HostKind,
    /// Directory holding the projects; may start with `~/`.
    pub workspace: String,
    /// Shell code run before remote commands.
    pub shell_init: Option<String>,
    /// The Codex binary.
    pub codex: String,
    /// Environment for remote commands. Its values are secrets (API keys): serialised as
    /// `[redacted]`, never put on a command line, and removed from recorded messages by
    /// [`HostSpec::redact`].
    #[serde(serialize_with = "serialize_redacted")]
    pub env: BTreeMap<String, String>,
    /// SSH connect timeout.
    #[serde(skip)]
    pub connect_timeout: Duration,
    /// Unknown host keys.
    pub host_key_policy: HostKeyPolicy,
    /// Extra `codex exec` arguments for every run on this host.
    pub codex_args: Vec<String>,
}

impl HostSpec {
    /// The project's directory on the host: `<workspace>/<project>`.
    ///
    /// ```
    /// # use codex_remote_core::config::Config;
    /// let host = Config::builtin().host(Some("penguin")).unwrap();
    /// assert_eq!(host.project_dir("myapp"), "~/workspace/myapp");
    /// ```
    pub fn project_dir(&self, project: &str) -> String {
        format!("{}/{}", self.workspace.trim_end_matches('/'), project)
    }

    /// `text` with every value of the host's `env` that is at least [`MIN_REDACTED_LEN`]
    /// characters long replaced by `[redacted NAME]`: for messages, records, plans and events
    /// that may quote a command, its stderr or the agent's output.
    ///
    /// ```
    /// # use codex_remote_core::config::Config;
    /// let mut host = Config::builtin().host(Some("local")).unwrap();
    /// host.env.insert("OPENAI_API_KEY".into(), "sk-abcdef123456".into());
    /// host.env.insert("N".into(), "1".into());
    /// assert_eq!(host.redact("export OPENAI_API_KEY='sk-abcdef123456' N=1"),
    ///            "export OPENAI_API_KEY='[redacted OPENAI_API_KEY]' N=1");
    /// ```
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_string();
        for (name, value) in &self.env {
            if value.chars().count() >= MIN_REDACTED_LEN && text.contains(value.as_str()) {
                text = text.replace(value.as_str(), &format!("[redacted {name}]"));
            }
        }
        text
    }

    /// Whether this is the built-in local host.
    pub fn is_local(&self) -> bool {
        self.kind == HostKind::Local
    }
}
