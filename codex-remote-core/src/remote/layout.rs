//! Where things live on a host, in one place.
//!
//! ```text
//! <workspace>/<project>/                         the mirror: what `push` syncs (plus its .git, ours)
//! <workspace>/.codex-remote/<project>/lock       serialises pushes and run preparation
//! <workspace>/.codex-remote/<project>/trees/<n>/<project>/  run tree n of the project's pool
//! <workspace>/.codex-remote/<project>/trees/<n>.lease/       held while a run uses tree n
//! <workspace>/.codex-remote/<project>/trees/<n>.index        our index of tree n (not the agent's)
//! <workspace>/.codex-remote/<project>/trees/<n>.nested/      nested repositories' git dirs, set aside
//! <workspace>/.codex-remote/<project>/agents/<id>/<attempt>/ one agent attempt's pid, events, status
//! ```
//!
//! Paths may start with `~/` (the host user's home). Commands that take them run with the home
//! directory as working directory and receive them with `~/` removed, so no shell expansion is
//! ever needed.

use crate::host::HostSpec;

/// The remote paths of one project on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteLayout {
    /// `<workspace>/<project>`.
    pub mirror: String,
    /// `<workspace>/.codex-remote/<project>`.
    pub state_dir: String,
    /// The project's name (the last component of the mirror and of each run tree).
    pub project: String,
}

impl RemoteLayout {
    /// The layout of `project` on `host`.
    ///
    /// ```
    /// # use codex_remote_core::{config::Config, layout::RemoteLayout};
    /// let host = Config::builtin().host(Some("penguin")).unwrap();
    /// let layout = RemoteLayout::new(&host, "myapp");
    /// assert_eq!(layout.mirror, "~/workspace/myapp");
    /// assert_eq!(layout.tree_dir(0), "~/workspace/.codex-remote/myapp/trees/0/myapp");
    /// ```
    pub fn new(host: &HostSpec, project: &str) -> Self {
        let workspace = host.workspace.trim_end_matches('/');
        Self {
            mirror: format!("{workspace}/{project}"),
            state_dir: format!("{workspace}/.codex-remote/{project}"),
            project: project.to_string(),
        }
    }

    /// The lock file.
    pub fn lock(&self) -> String {
        format!("{}/lock", self.state_dir)
    }

    /// The pool of run trees.
    pub fn trees_dir(&self) -> String {
        format!("{}/trees", self.state_dir)
    }

    /// Run tree `slot` of the pool: where Codex runs (named after the project).
    pub fn tree_dir(&self, slot: u32) -> String {
        format!("{}/{slot}/{}", self.trees_dir(), self.project)
    }

    /// Where runs prepared before run trees were pooled kept their tree (removed on release).
    pub fn runs_dir(&self) -> String {
        format!("{}/runs", self.state_dir)
    }

    /// Where one attempt of a run's agent keeps its files (outside the run's tree, so they never
    /// enter the result): `<state_dir>/agents/<run-id>/<attempt>`.
    pub fn agent_dir(&self, run_id: &str, attempt: u32) -> String {
        format!("{}/agents/{run_id}/{attempt}", self.state_dir)
    }

    /// One run's working tree, as runs prepared before run trees were pooled had it.
    pub fn run_dir(&self, run_id: &str) -> String {
        format!("{}/{run_id}", self.runs_dir())
    }
}

/// A remote path as an argument for a command running in the home directory: `~/x` becomes
/// `x`, `~` becomes `.`, anything else is unchanged.
pub fn home_relative(path: &str) -> &str {
    if path == "~" {
        "."
    } else {
        path.strip_prefix("~/").unwrap_or(path)
    }
}
