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
