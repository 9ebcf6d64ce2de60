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
//! A run's paths come from the workspace it started in, saved in its record ([`RemoteLayout::of_run`]),
//! never from the host's `workspace` setting of the day: a run started before that setting
//! changed (or by `demo`, or with another `--config`) is still found, cancelled and released
//! where it runs.
//!
//! Paths may start with `~/` (the host user's home). Commands that take them run with the home
//! directory as working directory and receive them with `~/` removed, so no shell expansion is
//! ever needed.

use crate::host::HostSpec;
use crate::runs::RunRecord;

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
        Self::in_workspace(&host.workspace, project)
    }

    /// The layout run `record` started in: under the workspace its record saved (its
    /// `remote_mirror` is `<workspace>/<project>`), whatever the host's `workspace` setting says
    /// now. A record whose mirror is not of that shape, or whose saved workspace has a `.` or
    /// `..` component or a control character, gets the host's configured layout (what every
    /// run got before the workspace was read from the record). Either way every path is
    /// `<workspace>/.codex-remote/<project>/...` with the record's validated project name, so
    /// what is removed or signalled stays in a state directory of ours.
    ///
    /// ```
    /// # use codex_remote_core::{config::Config, layout::RemoteLayout};
    /// # let record = |mirror: &str| serde_json::from_value(serde_json::json!({
    /// #     "id": "r", "task_id": "t", "host": "penguin", "project": "myapp",
    /// #     "remote_mirror": mirror, "tree": null, "phase": "running",
    /// #     "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"})).unwrap();
    /// let host = Config::builtin().host(Some("penguin")).unwrap(); // workspace ~/workspace
    /// let started = RemoteLayout::of_run(&host, &record("/srv/old/myapp"));
    /// assert_eq!(started.agent_dir("r", 1), "/srv/old/.codex-remote/myapp/agents/r/1");
    /// let climbing = RemoteLayout::of_run(&host, &record("/srv/../etc/myapp"));
    /// assert_eq!(climbing, RemoteLayout::new(&host, "myapp"));
    /// ```
    pub fn of_run(host: &HostSpec, record: &RunRecord) -> Self {
        match saved_workspace(&record.remote_mirror, &record.project) {
            Some(workspace) => Self::in_workspace(workspace, &record.project),
            None => Self::new(host, &record.project),
        }
    }

    fn in_workspace(workspace: &str, project: &str) -> Self {
        let workspace = workspace.trim_end_matches('/');
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

/// The workspace of a mirror path `<workspace>/<project>`, when it is one and holds no `.` or
/// `..` component and no control character.
fn saved_workspace<'a>(mirror: &'a str, project: &str) -> Option<&'a str> {
    let workspace = mirror.strip_suffix(project)?.strip_suffix('/')?;
    let plain = !workspace.chars().any(char::is_control)
        && workspace.split('/').all(|part| part != "." && part != "..");
    plain.then_some(workspace)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_workspace_is_read_from_the_mirror_and_only_when_plain() {
        for (mirror, workspace) in [
            ("~/workspace/app", Some("~/workspace")),
            ("/tmp/w s/app", Some("/tmp/w s")),
            ("/app", Some("")),
            ("ws/app", Some("ws")),
            // Not `<workspace>/<project>`: the configured layout instead.
            ("~/workspace/other", None),
            ("~/workspace/xapp", None),
            ("app", None),
            ("m", None),
            // Climbing or odd: the configured layout instead.
            ("~/workspace/../../etc/app", None),
            ("/srv/./app", None),
            ("..//app", None),
            ("/srv\n/app", None),
            ("/srv\u{1b}[2J/app", None),
        ] {
            assert_eq!(saved_workspace(mirror, "app"), workspace, "{mirror:?}");
        }
    }
}
