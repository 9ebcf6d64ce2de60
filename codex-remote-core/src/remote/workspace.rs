//! Run workspaces on the host: a small pool of run trees per project, each a plain directory
//! with its own git repository inside it, moved to a run's baseline touching only the files
//! that differ, so the run's change can be computed precisely afterwards and two runs never see
//! each other's edits.
//!
//! The mirror holds a private git repository (`<mirror>/.git`, never pushed from the local side).
//! Preparing a run commits the mirror as the baseline (a parentless commit, pinned by
//! `refs/codex-remote/runs/<id>`, so a baseline is unreachable, and collectable, once its run
//! is removed), takes the lowest free slot of the pool (`<state>/trees/<n>`, leased by an atomic
//! `mkdir <n>.lease`), and moves the slot's tree to the baseline with the mirror's repository and
//! the slot's own index (`<n>.index`, outside the tree): `git read-tree -u --reset` rewrites only
//! the files whose stat differs, `git clean` removes what the last run left. The first run of a
//! slot checks out every file; a reused slot costs a stat per file plus the change.
//!
//! The tree then gets a fresh git repository of its own (`<tree>/.git`: HEAD at the baseline,
//! the slot's index, the mirror's objects borrowed through `objects/info/alternates`), so the
//! agent's `git add`, `git commit`, `git stash` work inside the only directory it may write
//! (the launcher makes that `.git` writable in Codex's sandbox, which otherwise keeps a
//! workspace's top-level `.git` read-only).
//!
//! The agent controls everything inside its tree, that `.git` included (its config, hooks,
//! HEAD, branches). So none of our git commands ever read it: preparation and retrieval run
//! with `GIT_DIR` set to the mirror's repository, `GIT_WORK_TREE` to the tree and
//! `GIT_INDEX_FILE` to the slot's index, and diff the working tree against the baseline commit
//! pinned in the mirror. Whatever the agent committed, stashed or rewrote in its tree's `.git`,
//! the result is exactly its working tree against what was pushed. A nested repository the
//! agent made (`git init sub`) has its `.git` moved beside the slot (`<n>.nested/`) before the
//! diff, so its files come back rather than an empty gitlink. Retrieval also reports files that
//! changed in the mirror itself (outside the tree) during the run.
//!
//! Releasing a run returns its slot to the pool (the tree stays for the next run); pruning
//! removes idle slots. Both run `git gc --auto` in the mirror so its objects do not grow forever.

use crate::layout::{home_relative, RemoteLayout};
use crate::names::Name;
use crate::transport::{script_names, CommandSpec, Transport, TransportError, TransportExt};

/// The `codex exec` option that makes a run tree's own `.git` writable under Codex's
/// `workspace-write` sandbox (which otherwise keeps the top-level `.git` of its working root
/// read-only, so `git add` fails on `index.lock`). A relative root is taken from the working
/// directory; it works for `codex exec` and `codex exec resume` alike.
pub const TREE_GIT_WRITABLE: &str = "sandbox_workspace_write.writable_roots=[\".git\"]";

/// What every script starts with: git options (no user config, hooks, signing or pager get
/// involved, and paths are printed as they are), and the one way a pool slot is emptied.
const GIT_PRELUDE: &str = r#"git() { command git -c core.quotePath=false -c core.hooksPath=/dev/null -c core.fsmonitor=false -c commit.gpgSign=false -c user.name=codex-remote -c user.email=codex-remote@localhost -c init.defaultBranch=codex-remote -c core.autocrlf=false -c diff.noprefix=false -c diff.mnemonicPrefix=false -c diff.renames=true -c advice.addEmbeddedRepo=false "$@"; }
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_TERMINAL_PROMPT=0
# Empties the pool slot `$slot` and what lies beside it. A slot that is a symbolic link (planted
# by an agent with full access) is only unlinked: `chmod -R` would follow it out of our
# directories.
drop_slot() {
  if [ -L "$slot" ]; then rm -f -- "$slot"; else chmod -R u+rwx -- "$slot" 2>/dev/null || true; fi
  rm -rf -- "$slot" "$slot.index" "$slot.nested" "$slot.outside" "$slot.listing"
}
"#;

/// Args: mirror, lock, trees dir, project name, run id, then the sync excludes. Prints the slot
/// taken and the baseline commit.
const PREPARE_SCRIPT: &str = r#"set -e
mirror=$1; lock=$2; trees=$3; name=$4; id=$5; shift 5
mkdir -p -- "$(dirname -- "$lock")" "$trees"
trees=$(cd -P -- "$trees" && pwd -P)
if command -v flock >/dev/null 2>&1; then exec 9>"$lock"; flock 9; fi
cd -- "$mirror"
mirror=$(pwd)
[ -d .git ] || git init -q
if [ "$(git config --get codex-remote.layout || true)" != 2 ]; then
  # Retrieval refreshes a run tree's index: cache untracked-directory scans and keep the index
  # compact, so that costs a stat per file and little else. Baselines are parentless commits
  # and no reflog keeps them, so a removed run's baseline can be collected.
  git config core.untrackedCache true
  git config index.version 4
  git config core.logAllRefUpdates false
  git reflog expire --expire=all --all 2>/dev/null || true
  git config codex-remote.layout 2
fi
printf '%s\n' /.codex-remote/ "$@" > .git/info/exclude
# The lowest free slot; mkdir is the atomic lease (no flock needed for that).
n=0
until mkdir -- "$trees/$n.lease" 2>/dev/null; do
  n=$((n + 1))
  if [ "$n" -ge 1000 ]; then echo "codex-remote: cannot lease a run tree in $trees" >&2; exit 1; fi
done
# A preparation that fails gives its tree back.
trap 'rm -rf -- "$trees/$n.lease"' EXIT
printf '%s\n' "$id" > "$trees/$n.lease/run"
slot=$trees/$n; tree=$slot/$name
rm -rf -- "$slot.nested" "$slot.listing"
# A new tree (the slot's first run): the files git would take into the baseline are copied from
# the mirror while git hashes them, rather than checked out of git afterwards; the copy is then
# checked against the baseline, and a checkout replaces it if anything differs. The list is
# git's own (the mirror as untracked files against an empty index): what it ignores, nested
# `.git` files and directories, and anything but files and links stay out, as in a checkout.
copying=
if ! { [ -d "$tree" ] && [ -f "$slot.index" ]; }; then
  drop_slot
  mkdir -p -- "$tree"
  (
    export GIT_INDEX_FILE="$slot.listing"
    git ls-files -z -o --exclude-standard |
      # With the pushed files' own times (as rsync left them, from the project), which git
      # compares against its index: times of the copy would fall in the second the index is
      # written, and git would re-read such "racily clean" files on every later look.
      xargs -0 -r cp --parents -P --preserve=timestamps -t "$tree" -- &&
      # What a checkout gives: the owner may write every file and enter every directory.
      chmod -R u+rwX,ug-s -- "$tree"
  ) 2>/dev/null &
  copying=$!
fi
# The baseline. A mirror's first one (every file new) goes straight into one uncompressed pack
# rather than a loose object file per file: one file written instead of one per project file.
if [ -f .git/index ]; then
  git add -A
else
  git -c core.bigFileThreshold=1 -c pack.compression=0 add -A
fi
copied=
if [ -n "$copying" ] && wait "$copying"; then copied=1; fi
base=$(git commit-tree -m "codex-remote baseline for run $id" "$(git write-tree)")
git update-ref "refs/codex-remote/runs/$id" "$base"
git update-ref HEAD "$base"
exec 9>&-
export GIT_DIR="$mirror/.git" GIT_WORK_TREE="$tree" GIT_INDEX_FILE="$slot.index"
# Removes each nested `.git` only from inside its directory, entered physically and checked to
# be inside the tree: a lingering agent process swapping a parent directory for a symlink
# between `find` and `rm` cannot point the removal at another directory's `.git`.
confined_rm='tree=$1; shift
for g do
  (cd -P -- "${g%/.git}" 2>/dev/null && case $(pwd -P) in "$tree"/*) rm -rf -- .git ;; esac) || true
done'
if [ -n "$copied" ]; then
  # The copy's index: hashing only, every blob is already in the mirror. It is the tree only if
  # it records exactly the baseline and no nested repository (a checkout leaves those empty).
  if git add -A 2>/dev/null &&
    [ "$(git write-tree)" = "$(git rev-parse "$base^{tree}")" ] &&
    ! git ls-files -s | grep -q '^160000' &&
    git clean -ffdxq 2>/dev/null; then
    :
  else
    drop_slot
    mkdir -p -- "$tree"
    git read-tree -u --reset "$base"
  fi
# A reused tree: drop its git directory and nested ones (the agent's), what the index does not
# track, then rewrite only the files whose stat or content differs from the new baseline.
elif [ -d "$tree" ] && [ -f "$slot.index" ] &&
  rm -rf -- "$tree/.git" &&
  git clean -ffdxq 2>/dev/null &&
  find "$tree" -mindepth 2 -name .git -prune -exec sh -c "$confined_rm" sh "$tree" {} + &&
  git read-tree -u --reset "$base" 2>/dev/null; then
  :
else
  drop_slot
  mkdir -p -- "$tree"
  git read-tree -u --reset "$base"
fi
# Settle racily-clean index entries now, at preparation, rather than at retrieval.
git update-index -q --refresh >/dev/null 2>&1 || true
# The tree's own repository, for the agent: HEAD at the baseline, the same index, the
# mirror's objects borrowed (read-only) rather than copied.
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE
git init -q -- "$tree"
printf '%s\n' "$mirror/.git/objects" > "$tree/.git/objects/info/alternates"
cp -- "$slot.index" "$tree/.git/index"
cp -- .git/info/exclude "$tree/.git/info/exclude"
git --git-dir="$tree/.git" update-ref refs/heads/codex-remote "$base"
git --git-dir="$tree/.git" config user.name Codex
git --git-dir="$tree/.git" config user.email codex@localhost
trap - EXIT
printf '%s %s\n' "$n" "$base"
"#;

/// Args: tree, baseline, mirror, slot, run id. Prints the run's change as a binary git patch on
/// stdout, and on stderr one `codex-remote-outside: <status>` line per file changed in the mirror.
const RETRIEVE_SCRIPT: &str = r#"set -e
tree=$(cd -P -- "$1" && pwd -P); base=$2; mirror=$(cd -- "$3" && pwd); slot=$4; id=$5
slot=$(cd -P -- "$(dirname -- "$slot")" && pwd -P)/$(basename -- "$slot")
if [ "$(cat -- "$slot.lease/run" 2>/dev/null)" != "$id" ]; then
  echo "codex-remote: run $id no longer holds its tree $tree (it was returned to the pool)" >&2
  exit 3
fi
# Files changed in the mirror since the last baseline (outside the tree), looked up meanwhile.
(cd -- "$mirror" && git --no-optional-locks status --porcelain --untracked-files=all 2>/dev/null | head -n 50 > "$slot.outside") &
outside=$!
export GIT_DIR="$mirror/.git" GIT_WORK_TREE="$tree" GIT_INDEX_FILE="$slot.index"
if ! git cat-file -e "$base^{commit}" 2>/dev/null; then
  echo "codex-remote: the run's baseline $base is missing from the host's mirror $mirror" >&2
  exit 3
fi
# Nested repositories the agent made: their git directories go beside the slot, so their
# files come back as files (git would otherwise record an empty gitlink, or refuse). Only once
# the agent is gone: a live agent could swap a directory for a symlink under our `mv`.
live=0
for attempt in "$(dirname -- "$(dirname -- "$slot")")/agents/$id"/*; do
  [ -e "$attempt/status" ] && continue
  if [ -s "$attempt/pid" ] && kill -0 "$(cat -- "$attempt/pid")" 2>/dev/null; then live=1; fi
done
mkdir -p -- "$slot.nested"
pass=0
[ "$live" = 0 ] || pass=32
while [ "$pass" -lt 32 ]; do
  pass=$((pass + 1)); moved=0
  git ls-files -o --exclude-standard > "$slot.nested/list"
  while IFS= read -r entry; do
    case $entry in \"*) continue ;; */) ;; *) continue ;; esac
    if [ -e "$tree/$entry.git" ] || [ -L "$tree/$entry.git" ]; then
      n=0; while [ -e "$slot.nested/$n" ]; do n=$((n + 1)); done
      # From inside the directory, entered physically and checked to be inside the tree: a
      # directory swapped for a symlink to elsewhere is never followed (its `.git` stays put).
      if (cd -P -- "$tree/$entry" 2>/dev/null && case $(pwd -P) in "$tree"/*) ;; *) exit 1 ;; esac &&
        mv -- .git "$slot.nested/$n"); then
        moved=1
      fi
    fi
  done < "$slot.nested/list"
  [ "$moved" = 1 ] || break
done
rm -f -- "$slot.nested/list"
git add -A
git diff --cached --binary --full-index --no-color --no-ext-diff --no-textconv --src-prefix=a/ --dst-prefix=b/ "$base" --
wait "$outside" || true
sed 's/^/codex-remote-outside: /' "$slot.outside" >&2 || true
rm -f -- "$slot.outside"
"#;

/// Args: run dir, baseline. The retrieval of a run prepared before run trees were pooled (a
/// `git worktree` of the mirror).
const LEGACY_RETRIEVE_SCRIPT: &str = r#"set -e
# Such a tree was `<state>/runs/<id>`: a record naming any other directory is not followed (our
# `git add -A` would write that directory's index).
dir=$(cd -P -- "$1" && pwd -P)
case $dir in
  */.codex-remote/*/runs/*) ;;
  *) echo "codex-remote: $1 is not a run tree of ours" >&2; exit 3 ;;
esac
cd -- "$dir"
git add -A
git diff --cached --binary --full-index --no-color --no-ext-diff --no-textconv --src-prefix=a/ --dst-prefix=b/ "$2" --
"#;

/// Args: mirror, trees dir, run id, agent dir, legacy run dir. Returns the run's slot to the
/// pool and drops its baseline ref and agent files.
const RELEASE_SCRIPT: &str = r#"mirror=$1; trees=$2; id=$3; agents=$4; legacy=$5
rm -rf -- "$agents"
for lease in "$trees"/*.lease; do
  if [ -f "$lease/run" ] && [ "$(cat -- "$lease/run")" = "$id" ]; then rm -rf -- "$lease"; fi
done
if [ -d "$legacy" ]; then
  legacy=$(cd -- "$legacy" && pwd)
  if [ -d "$mirror/.git" ]; then (cd -- "$mirror" && git worktree remove --force "$legacy" 2>/dev/null; git worktree prune); fi
  rm -rf -- "$legacy"
fi
if [ -d "$mirror/.git" ]; then
  (cd -- "$mirror" && git update-ref -d "refs/codex-remote/runs/$id" 2>/dev/null; git gc --auto --quiet 2>/dev/null)
fi
exit 0
"#;

/// Args: trees dir, lock, mirror. Removes every slot no run holds; prints their numbers.
const PRUNE_SCRIPT: &str = r#"trees=$1; lock=$2; mirror=$3
[ -d "$trees" ] || exit 0
if command -v flock >/dev/null 2>&1; then exec 9>"$lock"; flock 9; fi
for slot in "$trees"/*; do
  n=$(basename -- "$slot")
  case $n in ''|*[!0-9]*) continue ;; esac
  [ -d "$slot.lease" ] && continue
  drop_slot
  printf '%s\n' "$n"
done
if [ -d "$mirror/.git" ]; then (cd -- "$mirror" && git gc --auto --quiet 2>/dev/null); fi
exit 0
"#;

/// A prepared run tree.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunTree {
    /// The run's working tree on the host.
    pub dir: String,
    /// The baseline commit (what was pushed).
    pub baseline: String,
    /// The pool slot holding the tree (`<state>/trees/<slot>`); absent for runs prepared before
    /// run trees were pooled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u32>,
    /// The host's mirror, whose repository holds the baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    /// The run holding the tree (its lease names it; retrieval checks it still does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

/// What retrieval found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "test-internals"), allow(dead_code))] // for tests and benches
pub struct Retrieved {
    /// The run's change against its baseline, as a binary git patch.
    pub patch: Vec<u8>,
    /// Files that differ in the host's mirror from what was last pushed (`git status --porcelain`
    /// lines, at most 50): changed outside the run's tree, so not part of its result.
    pub outside: Vec<String>,
}

fn script(name: &'static str, body: &str, args: &[&str]) -> CommandSpec {
    let mut full = String::from(GIT_PRELUDE);
    full.push_str(body);
    CommandSpec::script(&full, args).named(name).cwd("~")
}

fn unexpected(
    transport: &dyn Transport,
    what: &str,
    status: crate::transport::ExitStatus,
) -> TransportError {
    TransportError::CommandFailed {
        host: transport.host().name.clone(),
        command: "prepare run".into(),
        status,
        stderr: what.to_string(),
    }
}

/// Commits the mirror as the baseline and moves a free tree of the pool to it. One round trip.
pub async fn prepare_run(
    transport: &dyn Transport,
    layout: &RemoteLayout,
    run_id: &str,
    excludes: &[String],
) -> Result<RunTree, TransportError> {
    let lock = layout.lock();
    let trees = layout.trees_dir();
    let mut args = vec![
        home_relative(&layout.mirror),
        home_relative(&lock),
        home_relative(&trees),
        layout.project.as_str(),
        run_id,
    ];
    args.extend(excludes.iter().map(String::as_str));
    let output = transport
        .run_checked(script(script_names::PREPARE_RUN, PREPARE_SCRIPT, &args))
        .await?;
    let text = output.stdout_text();
    let (slot, baseline) = text.trim().split_once(' ').unwrap_or_default();
    let slot: u32 = slot.parse().map_err(|_| {
        unexpected(
            transport,
            &format!("unexpected slot `{slot}`"),
            output.status,
        )
    })?;
    if baseline.len() < 40 || !baseline.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(unexpected(
            transport,
            &format!("unexpected baseline `{baseline}`"),
            output.status,
        ));
    }
    Ok(RunTree {
        dir: layout.tree_dir(slot),
        baseline: baseline.to_string(),
        slot: Some(slot),
        mirror: Some(layout.mirror.clone()),
        run_id: Some(run_id.to_string()),
    })
}

/// The run's change against its baseline, and what changed outside its tree. One round trip.
#[cfg_attr(not(feature = "test-internals"), allow(dead_code))] // for tests and benches
pub async fn retrieve(
    transport: &dyn Transport,
    tree: &RunTree,
) -> Result<Retrieved, TransportError> {
    let output = transport.run_checked(retrieve_spec(tree)).await?;
    Ok(Retrieved {
        outside: outside_lines(&output),
        patch: output.stdout,
    })
}

/// Fetches a run's change like [`retrieve`], streaming the patch into the local file `file`
/// (memory stays bounded whatever the patch's size), and stops past `limit` bytes of it:
/// `Ok(Err(seen))`, the file removed (so disk use is bounded too). Returns what changed outside
/// the tree.
pub async fn retrieve_patch_to_file_within(
    transport: &dyn Transport,
    tree: &RunTree,
    file: &std::path::Path,
    limit: u64,
) -> Result<Result<Vec<String>, u64>, TransportError> {
    Ok(transport
        .run_checked_to_file_within(retrieve_spec(tree), file, limit)
        .await?
        .map(|output| outside_lines(&output)))
}

/// The one retrieval command: the pooled tree's script, or the plain one for a tree prepared
/// before pooling.
fn retrieve_spec(tree: &RunTree) -> CommandSpec {
    let (Some(_), Some(mirror), Some(run_id)) = (tree.slot, &tree.mirror, &tree.run_id) else {
        return script(
            script_names::RETRIEVE_PATCH,
            LEGACY_RETRIEVE_SCRIPT,
            &[home_relative(&tree.dir), &tree.baseline],
        );
    };
    let slot = tree
        .dir
        .rsplit_once('/')
        .map(|(slot, _)| slot)
        .unwrap_or(&tree.dir);
    script(
        script_names::RETRIEVE_PATCH,
        RETRIEVE_SCRIPT,
        &[
            home_relative(&tree.dir),
            &tree.baseline,
            home_relative(mirror),
            home_relative(slot),
            run_id,
        ],
    )
}

fn outside_lines(output: &crate::transport::Output) -> Vec<String> {
    output
        .stderr_text()
        .lines()
        .filter_map(|l| l.strip_prefix("codex-remote-outside: "))
        .map(str::to_string)
        .collect()
}

/// The run's change against its baseline, as a binary git patch. One round trip.
#[cfg_attr(not(feature = "test-internals"), allow(dead_code))] // for tests and benches
pub async fn retrieve_patch(
    transport: &dyn Transport,
    tree: &RunTree,
) -> Result<Vec<u8>, TransportError> {
    Ok(retrieve(transport, tree).await?.patch)
}

/// Returns a run's tree to the pool and removes its baseline ref and agent files (a tree
/// prepared before pooling is removed). One round trip. `run_id` is a validated [`Name`], so
/// what is removed stays under the layout's state directory.
pub async fn remove_run(
    transport: &dyn Transport,
    layout: &RemoteLayout,
    run_id: &Name,
) -> Result<(), TransportError> {
    let agents = format!("{}/agents/{run_id}", layout.state_dir);
    let legacy = layout.run_dir(run_id);
    let trees = layout.trees_dir();
    let args = [
        home_relative(&layout.mirror),
        home_relative(&trees),
        run_id,
        home_relative(&agents),
        home_relative(&legacy),
    ];
    transport
        .run_checked(script(script_names::REMOVE_RUN, RELEASE_SCRIPT, &args))
        .await?;
    Ok(())
}

/// Removes the pool's idle trees (those no run holds) and lets git collect the mirror's
/// unreachable objects. Returns the slots removed. One round trip.
pub async fn prune_idle_trees(
    transport: &dyn Transport,
    layout: &RemoteLayout,
) -> Result<Vec<u32>, TransportError> {
    let trees = layout.trees_dir();
    let lock = layout.lock();
    let args = [
        home_relative(&trees),
        home_relative(&lock),
        home_relative(&layout.mirror),
    ];
    let output = transport
        .run_checked(script(script_names::PRUNE_TREES, PRUNE_SCRIPT, &args))
        .await?;
    Ok(output
        .stdout_text()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    /// Runs one of our scripts as the host would (`sh -c`, the git prelude first), with
    /// `bin` first on PATH.
    fn run(body: &str, args: &[&str], bin: &Path) -> String {
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let output = Command::new("sh")
            .arg("-c")
            .arg(format!("{GIT_PRELUDE}{body}"))
            .arg("sh")
            .args(args)
            .env("PATH", path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn git_init(dir: &Path) {
        let status = Command::new("git")
            .args(["init", "-q"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// A lingering agent process swaps a directory holding a nested repository for a symlink to
    /// another repository (outside the tree) between our listing and our move: retrieval moves
    /// nothing of it, so the next preparation cannot delete it. Preparation's removal of nested
    /// `.git` directories is confined the same way.
    #[test]
    fn nested_git_moves_and_removals_never_follow_a_swapped_in_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let (mirror, trees, bin) = (root.join("mirror"), root.join("trees"), root.join("bin"));
        let victim = root.join("victim");
        std::fs::create_dir_all(&mirror).unwrap();
        std::fs::write(mirror.join("a.txt"), "a\n").unwrap();
        git_init(&victim);
        std::fs::write(victim.join("keep.txt"), "mine\n").unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        let s = |p: &Path| p.display().to_string();
        let prepare = |bin: &Path| {
            let out = run(
                PREPARE_SCRIPT,
                &[
                    &s(&mirror),
                    &s(&root.join("lock")),
                    &s(&trees),
                    "proj",
                    "r1",
                ],
                bin,
            );
            out.split_whitespace().nth(1).unwrap().to_string()
        };
        let base = prepare(&bin);
        let tree = trees.join("0/proj");
        // The agent's nested repository, and a stand-in git that, right after the listing,
        // swaps its directory for a symlink to the victim (what the racing process does).
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        git_init(&tree.join("sub"));
        std::fs::write(tree.join("sub/file.txt"), "hi\n").unwrap();
        let real_git = String::from_utf8(
            Command::new("sh")
                .args(["-c", "command -v git"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let wrapper = bin.join("git");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\n{} \"$@\"; rc=$?\ncase \" $* \" in *\" ls-files \"*)\n  if [ ! -L '{t}/sub' ]; then rm -rf '{t}/sub' && ln -s '{v}' '{t}/sub'; fi ;;\nesac\nexit $rc\n",
                real_git.trim(),
                t = s(&tree),
                v = s(&victim),
            ),
        )
        .unwrap();
        std::fs::set_permissions(
            &wrapper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let slot = trees.join("0");
        run(
            RETRIEVE_SCRIPT,
            &[&s(&tree), &base, &s(&mirror), &s(&slot), "r1"],
            &bin,
        );
        assert!(tree.join("sub").is_symlink(), "the swap happened");
        assert!(
            victim.join(".git/HEAD").is_file(),
            "the victim's .git was moved"
        );
        assert_eq!(
            std::fs::read_dir(trees.join("0.nested")).unwrap().count(),
            0,
            "nothing of the victim is in the nested slot"
        );

        // The next preparation (the lease given back) empties the slot's nested store and the
        // tree's nested repositories, never the victim's; a removal handed a path through the
        // swapped-in symlink (a swap between `find` and `rm`) removes nothing.
        std::fs::remove_dir_all(trees.join("0.lease")).unwrap();
        std::fs::remove_file(&wrapper).unwrap();
        prepare(&bin);
        assert!(
            victim.join(".git/HEAD").is_file(),
            "the victim's .git was removed"
        );
        assert_eq!(
            std::fs::read_to_string(victim.join("keep.txt")).unwrap(),
            "mine\n"
        );
        let start = PREPARE_SCRIPT.find("confined_rm='").unwrap() + "confined_rm='".len();
        let confined_rm =
            &PREPARE_SCRIPT[start..start + PREPARE_SCRIPT[start..].find("'\n").unwrap()];
        std::os::unix::fs::symlink(&victim, tree.join("lnk")).unwrap();
        std::fs::create_dir_all(tree.join("in/.git")).unwrap();
        let status = Command::new("sh")
            .args(["-c", confined_rm, "sh"])
            .arg(&tree)
            .arg(tree.join("lnk/.git"))
            .arg(tree.join("in/.git"))
            .status()
            .unwrap();
        assert!(status.success());
        assert!(
            victim.join(".git/HEAD").is_file(),
            "removed through the symlink"
        );
        assert!(
            !tree.join("in/.git").exists(),
            "a nested .git inside is removed"
        );
    }
}
