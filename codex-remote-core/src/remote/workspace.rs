//! Run workspaces on the host: each run gets its own working tree made from the mirror, with a
//! baseline commit recording exactly what was pushed, so the run's change can be computed
//! precisely afterwards and two runs never see each other's edits.
//!
//! The mirror holds a private git repository (`<mirror>/.git`, never pushed from the local side).
//! Preparing a run commits the mirror as the baseline, pins it with
//! `refs/codex-remote/runs/<id>`, and adds a detached `git worktree` for the run. Retrieving is
//! one command that stages everything in the run's tree and prints the binary diff against the
//! baseline: one round trip, with work proportional to the change (git's index makes unchanged
//! files a stat, not a read).

use crate::layout::{home_relative, RemoteLayout};
use crate::transport::{script_names, CommandSpec, Transport, TransportError, TransportExt};

/// Git options every script uses: no user config, hooks, signing or pager get involved, and
/// paths are printed as they are.
const GIT_PRELUDE: &str = r#"git() { command git -c core.quotePath=false -c core.hooksPath=/dev/null -c commit.gpgSign=false -c user.name=codex-remote -c user.email=codex-remote@localhost -c init.defaultBranch=codex-remote -c core.autocrlf=false -c diff.noprefix=false -c diff.mnemonicPrefix=false -c diff.renames=true "$@"; }
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_TERMINAL_PROMPT=0
"#;

/// Args: mirror, lock, run dir, run id, then the sync excludes. Prints the baseline commit.
const PREPARE_SCRIPT: &str = r#"set -e
mirror=$1; lock=$2; run=$3; id=$4; shift 4
mkdir -p -- "$(dirname -- "$lock")" "$(dirname -- "$run")"
run=$(cd -- "$(dirname -- "$run")" && pwd)/$(basename -- "$run")
if command -v flock >/dev/null 2>&1; then exec 9>"$lock"; flock 9; fi
cd -- "$mirror"
if [ ! -d .git ]; then
  git init -q
  # Retrieval refreshes the run tree's index: cache untracked-directory scans and keep the
  # index compact, so that costs a stat per file and little else.
  git config core.untrackedCache true
  git config index.version 4
fi
printf '%s\n' /.codex-remote/ "$@" > .git/info/exclude
git add -A
git commit -q --allow-empty --no-verify -m "codex-remote baseline for run $id"
base=$(git rev-parse HEAD)
git update-ref "refs/codex-remote/runs/$id" "$base"
git worktree add -q --detach "$run" "$base"
# Settle racily-clean index entries now, at preparation, rather than at retrieval.
(cd -- "$run" && git update-index -q --refresh >/dev/null 2>&1 || true)
printf '%s\n' "$base"
"#;

/// Args: run dir, baseline. Prints the run's change as a binary git patch.
const RETRIEVE_SCRIPT: &str = r#"set -e
cd -- "$1"
git add -A
git diff --cached --binary --full-index --no-color --no-ext-diff --no-textconv --src-prefix=a/ --dst-prefix=b/ "$2" --
"#;

/// Args: mirror, run dir, run id, agent dir. Removes the run's tree, ref and agent files.
const REMOVE_SCRIPT: &str = r#"mirror=$1; run=$2; id=$3; agents=$4
rm -rf -- "$agents"
if [ -d "$run" ]; then run=$(cd -- "$run" && pwd); fi
if [ -d "$mirror/.git" ]; then
  (cd -- "$mirror" && git worktree remove --force "$run" 2>/dev/null; git worktree prune; git update-ref -d "refs/codex-remote/runs/$id" 2>/dev/null)
fi
rm -rf -- "$run"
"#;

/// A prepared run tree.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunTree {
    /// The run's working tree on the host.
    pub dir: String,
    /// The baseline commit (what was pushed).
    pub baseline: String,
}

fn script(name: &'static str, body: &str, args: &[&str]) -> CommandSpec {
    let mut full = String::from(GIT_PRELUDE);
    full.push_str(body);
    CommandSpec::script(&full, args).named(name).cwd("~")
}

/// Commits the mirror as the baseline and creates the run's isolated tree. One round trip.
pub async fn prepare_run(
    transport: &dyn Transport,
    layout: &RemoteLayout,
    run_id: &str,
    excludes: &[String],
) -> Result<RunTree, TransportError> {
    let run_dir = layout.run_dir(run_id);
    let lock = layout.lock();
    let mut args = vec![
        home_relative(&layout.mirror),
        home_relative(&lock),
        home_relative(&run_dir),
        run_id,
    ];
    args.extend(excludes.iter().map(String::as_str));
    let output = transport
        .run_checked(script(script_names::PREPARE_RUN, PREPARE_SCRIPT, &args))
        .await?;
    let baseline = output.stdout_text().trim().to_string();
    if baseline.len() < 40 || !baseline.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(TransportError::CommandFailed {
            host: transport.host().name.clone(),
            command: "prepare run".into(),
            status: output.status,
            stderr: format!("unexpected baseline `{baseline}`"),
        });
    }
    Ok(RunTree {
        dir: run_dir,
        baseline,
    })
}

/// The run's change against its baseline, as a binary git patch. One round trip.
pub async fn retrieve_patch(
    transport: &dyn Transport,
    tree: &RunTree,
) -> Result<Vec<u8>, TransportError> {
    let output = transport
        .run_checked(script(
            script_names::RETRIEVE_PATCH,
            RETRIEVE_SCRIPT,
            &[home_relative(&tree.dir), &tree.baseline],
        ))
        .await?;
    Ok(output.stdout)
}

/// Removes a run's tree and its baseline ref from the host.
pub async fn remove_run(
    transport: &dyn Transport,
    layout: &RemoteLayout,
    run_id: &str,
) -> Result<(), TransportError> {
    let run_dir = layout.run_dir(run_id);
    let agents = format!("{}/agents/{run_id}", layout.state_dir);
    let args = [
        home_relative(&layout.mirror),
        home_relative(&run_dir),
        run_id,
        home_relative(&agents),
    ];
    transport
        .run_checked(script(script_names::REMOVE_RUN, REMOVE_SCRIPT, &args))
        .await?;
    Ok(())
}
