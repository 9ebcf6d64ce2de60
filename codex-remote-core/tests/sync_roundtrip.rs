//! Push, change remotely, retrieve, apply: against a real sshd with the real rsync, the tar
//! fallback and the local copy. The local tree must end up byte-for-byte equal to the remote
//! run tree; conflicts and restricted files must leave local bytes untouched.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use codex_remote_core::config::{Config, SyncSettings};
use codex_remote_core::layout::RemoteLayout;
use codex_remote_core::patch::{ApplyError, ParsedPatch, PatchApplier};
use codex_remote_core::policy::RestrictedFiles;
use codex_remote_core::sync::{
    rsync::RsyncSyncer, select_files, syncer_for, tar::TarSyncer, PushRequest, Syncer,
};
use codex_remote_core::transport::for_host;
use codex_remote_core::transport::ssh::SshTransport;
use codex_remote_core::transport::{CommandSpec, SharedTransport, TransportExt};
use codex_remote_core::workspace::{
    prepare_run, prune_idle_trees, remove_run, retrieve_patch, RunTree,
};
use codex_remote_testkit::podman::Podman;
use codex_remote_testkit::Sshd;

/// Awkward but legal names: spaces, quotes, a newline, unicode, a leading dash.
const ODD_NAMES: [&str; 5] = [
    "dir with space/file name.txt",
    "quote's \"both\".md",
    "new\nline.txt",
    "ünïcødé/日本語.ts",
    "-leading-dash.txt",
];

fn write(root: &Path, relative: &str, contents: &[u8]) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

/// A small but realistic project.
fn make_project(root: &Path) {
    write(
        root,
        "src/main.ts",
        b"export function main() {\n  return 1;\n}\n",
    );
    write(root, "src/util.ts", b"export const util = 'u';\n");
    write(root, "src/old-name.ts", b"export const renamed = true;\n// keep enough lines for rename detection\n// line 3\n// line 4\n");
    write(root, "src/delete-me.ts", b"gone soon\n");
    write(
        root,
        "assets/logo.bin",
        &(0..=255u8).cycle().take(5000).collect::<Vec<_>>(),
    );
    write(root, "scripts/run.sh", b"#!/bin/sh\necho run\n");
    std::fs::set_permissions(
        root.join("scripts/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    write(root, "package.json", b"{\"name\":\"app\"}\n");
    write(root, ".gitignore", b"*.log\ndist/\n");
    write(root, "debug.log", b"ignored\n");
    write(root, "dist/bundle.js", b"ignored\n");
    write(root, "node_modules/dep/index.js", b"excluded\n");
    // The user's config, with another host's secret: never pushed.
    write(
        root,
        "codex-remote.toml",
        b"[hosts.other.env]\nTOKEN = \"s3cret\"\n",
    );
    for name in ODD_NAMES {
        write(root, name, format!("content of {name}\n").as_bytes());
    }
    std::os::unix::fs::symlink("main.ts", root.join("src/link-to-main")).unwrap();
}

/// What an agent might do: edit, add, delete, rename, binary change, chmod, odd names.
const AGENT_SCRIPT: &str = r#"set -e
printf 'export function main() {\n  return 2;\n}\n' > src/main.ts
printf 'export const added = true;\n' > src/added.ts
rm src/delete-me.ts
mv src/old-name.ts src/new-name.ts
head -c 3000 /dev/urandom > assets/logo.bin
printf '\000\001\002binary\377' > assets/new.bin
chmod 755 src/util.ts
printf 'changed\n' >> 'dir with space/file name.txt'
printf 'edited\n' >> 'ünïcødé/日本語.ts'
mkdir -p "odd 'dir'"
printf 'x\n' > "odd 'dir'/tab	name.txt"
printf 'log\n' > build.log
"#;

fn settings() -> SyncSettings {
    Config::builtin().sync()
}

/// Every selected file of a tree: path -> (bytes or link target, mode).
fn snapshot(root: &Path) -> Vec<(String, Vec<u8>, u32)> {
    select_files(root, &settings())
        .unwrap()
        .into_iter()
        .map(|f| {
            let path = root.join(&f.relative);
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let content = if f.symlink {
                std::fs::read_link(&path)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else {
                std::fs::read(&path).unwrap()
            };
            (
                f.relative,
                content,
                meta.permissions().mode() & 0o777 | if f.symlink { 0o120000 } else { 0 },
            )
        })
        .collect()
}

/// Compares two trees, naming the paths that differ instead of dumping bytes.
fn assert_same_tree(actual: &Path, expected: &Path, what: &str) {
    let (a, b) = (snapshot(actual), snapshot(expected));
    let names = |s: &[(String, Vec<u8>, u32)]| s.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b), "{what}: file lists differ");
    for (x, y) in a.iter().zip(&b) {
        assert!(x.1 == y.1, "{what}: content of {:?} differs", x.0);
        assert_eq!(x.2, y.2, "{what}: mode of {:?} differs", x.0);
    }
}

struct Fixture {
    /// What keeps the host alive (an sshd, a container).
    _host: Box<dyn std::any::Any>,
    transport: SharedTransport,
    layout: RemoteLayout,
    local: tempfile::TempDir,
    workspace: PathBuf,
}

fn fixture() -> Option<Fixture> {
    let sshd = Sshd::start_or_skip()?;
    let workspace = sshd.dir().join("workspace");
    let host = sshd.host_spec(&format!(
        "[hosts.testhost]\nworkspace = \"{}\"\n",
        workspace.display()
    ));
    let layout = RemoteLayout::new(&host, "my app");
    let transport: SharedTransport = Arc::new(SshTransport::new(host, sshd.ssh_options()).unwrap());
    let local = tempfile::tempdir().unwrap();
    make_project(local.path());
    Some(Fixture {
        _host: Box::new(sshd),
        transport,
        layout,
        local,
        workspace,
    })
}

impl Fixture {
    fn request(&self) -> PushRequest {
        PushRequest {
            local_root: self.local.path().to_path_buf(),
            remote_dir: self.layout.mirror.clone(),
            lock: self.layout.lock(),
            settings: settings(),
        }
    }

    async fn run_agent(&self, tree: &RunTree, script: &str) {
        self.transport
            .run_checked(
                CommandSpec::new("sh")
                    .args(["-c", script])
                    .cwd(tree.dir.clone()),
            )
            .await
            .unwrap();
    }
}

async fn round_trip_with(syncer: &dyn Syncer, f: &Fixture) {
    let report = syncer.push(&f.request(), None).await.unwrap();
    assert_eq!(report.method, syncer.name());
    let mirror = f.workspace.join("my app");
    assert_same_tree(
        &mirror,
        f.local.path(),
        "the mirror equals the selected local files",
    );
    assert!(
        !mirror.join("node_modules").exists() && !mirror.join("debug.log").exists(),
        "excludes and .gitignore are honoured"
    );
    assert!(
        !mirror.join("codex-remote.toml").exists(),
        "the user's config (other hosts' secrets) stays here"
    );

    let tree = prepare_run(
        f.transport.as_ref(),
        &f.layout,
        "run-1",
        &settings().exclude,
    )
    .await
    .unwrap();
    f.run_agent(&tree, AGENT_SCRIPT).await;
    let patch = retrieve_patch(f.transport.as_ref(), &tree).await.unwrap();
    let parsed = ParsedPatch::parse(&patch).unwrap();
    let kinds: Vec<(&str, &str)> = parsed.files.iter().map(|c| (c.path(), c.kind())).collect();
    for expected in [
        ("src/new-name.ts", "renamed"),
        ("src/delete-me.ts", "deleted"),
        ("src/added.ts", "added"),
        ("src/util.ts", "mode"),
        ("assets/new.bin", "added"),
    ] {
        assert!(kinds.contains(&expected), "{expected:?} in {kinds:?}");
    }
    assert!(
        !kinds.iter().any(|(p, _)| *p == "build.log"),
        "ignored output is not retrieved"
    );

    PatchApplier::new(f.local.path(), RestrictedFiles::default(), false)
        .apply(&patch)
        .unwrap();
    let remote_tree = f.workspace.join(".codex-remote/my app/trees/0/my app");
    assert_eq!(tree.dir, f.layout.tree_dir(0));
    assert_same_tree(
        f.local.path(),
        &remote_tree,
        "local equals the remote run tree byte for byte",
    );

    // Released, the tree goes back to the pool; pruning removes idle trees.
    remove_run(f.transport.as_ref(), &f.layout, &"run-1".parse().unwrap())
        .await
        .unwrap();
    assert!(
        remote_tree.exists()
            && !f
                .workspace
                .join(".codex-remote/my app/trees/0.lease")
                .exists()
    );
    let pruned = prune_idle_trees(f.transport.as_ref(), &f.layout)
        .await
        .unwrap();
    assert_eq!(pruned, vec![0]);
    assert!(!remote_tree.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsync_round_trip_is_byte_exact() {
    let Some(f) = fixture() else { return };
    round_trip_with(&RsyncSyncer::new(f.transport.clone()), &f).await;
    // The applied change goes up on the next push; a push after that has nothing to send.
    let syncer = RsyncSyncer::new(f.transport.clone());
    let changed = syncer.push(&f.request(), None).await.unwrap();
    assert!(changed.files_transferred > 0, "{changed:?}");
    let again = syncer.push(&f.request(), None).await.unwrap();
    assert_eq!(again.files_transferred, 0, "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tar_fallback_round_trip_is_byte_exact() {
    let Some(f) = fixture() else { return };
    round_trip_with(&TarSyncer::new(f.transport.clone()), &f).await;
}

/// A podman container as the host; its workspace is a directory of this machine bind-mounted
/// read-write at the same path, so the trees can be compared here.
fn podman_fixture() -> Option<Fixture> {
    let workspace = tempfile::tempdir().unwrap().keep();
    let container = Podman::start_with_or_skip(&[], &[&workspace])?;
    let host = Config::from_files([codex_remote_core::config::ConfigFile::parse(
        &format!(
            "[hosts.box]\npodman = \"{}\"\nworkspace = \"{}\"\n",
            container.name(),
            workspace.display()
        ),
        "test.toml",
    )
    .unwrap()])
    .unwrap()
    .host(Some("box"))
    .unwrap();
    let layout = RemoteLayout::new(&host, "my app");
    let transport = for_host(host, Default::default()).unwrap();
    let local = tempfile::tempdir().unwrap();
    make_project(local.path());
    Some(Fixture {
        _host: Box::new(container),
        transport,
        layout,
        local,
        workspace,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_rsync_round_trip_is_byte_exact() {
    let Some(f) = podman_fixture() else { return };
    assert!(
        f.transport.rsync_remote().await.unwrap().is_some(),
        "the container has rsync (this machine's /usr), so rsync rides podman exec"
    );
    round_trip_with(&RsyncSyncer::new(f.transport.clone()), &f).await;
    let again = RsyncSyncer::new(f.transport.clone())
        .push(&f.request(), None)
        .await
        .unwrap();
    assert!(
        again.files_transferred > 0,
        "the applied change goes up: {again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_tar_fallback_round_trip_is_byte_exact() {
    let Some(f) = podman_fixture() else { return };
    round_trip_with(&TarSyncer::new(f.transport.clone()), &f).await;
}

/// The built-in `local` host with its workspace in a fresh temporary directory.
fn local_host(project: &str) -> (tempfile::TempDir, RemoteLayout, SharedTransport) {
    let workspace = tempfile::tempdir().unwrap();
    let config = format!(
        "[hosts.local]\nworkspace = \"{}\"\n",
        workspace.path().display()
    );
    let file = codex_remote_core::config::ConfigFile::parse(&config, "t").unwrap();
    let host = Config::from_files([file]).unwrap().host(None).unwrap();
    let layout = RemoteLayout::new(&host, project);
    let transport: SharedTransport = Arc::new(
        codex_remote_core::transport::local::LocalTransport::new(host),
    );
    (workspace, layout, transport)
}

/// Prepares run `run_id`, lets the "agent" change its tree, and returns the retrieved patch and
/// the tree.
async fn agent_patch(
    transport: &SharedTransport,
    layout: &RemoteLayout,
    run_id: &str,
) -> (Vec<u8>, RunTree) {
    let tree = prepare_run(transport.as_ref(), layout, run_id, &settings().exclude)
        .await
        .unwrap();
    transport
        .run_checked(
            CommandSpec::new("sh")
                .args(["-c", AGENT_SCRIPT])
                .cwd(tree.dir.clone()),
        )
        .await
        .unwrap();
    (
        retrieve_patch(transport.as_ref(), &tree).await.unwrap(),
        tree,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_host_round_trip_is_byte_exact() {
    let (workspace, layout, transport) = local_host("my app");
    let local = tempfile::tempdir().unwrap();
    make_project(local.path());
    let syncer = syncer_for(transport.clone());
    assert_eq!(syncer.name(), "local-copy");
    let request = PushRequest {
        local_root: local.path().into(),
        remote_dir: layout.mirror.clone(),
        lock: layout.lock(),
        settings: settings(),
    };
    let first = syncer.push(&request, None).await.unwrap();
    assert!(first.files_transferred > 0);
    let again = syncer.push(&request, None).await.unwrap();
    assert_eq!(again.files_transferred, 0, "unchanged files are skipped");
    let (patch, tree) = agent_patch(&transport, &layout, "r").await;
    PatchApplier::new(local.path(), RestrictedFiles::default(), false)
        .apply(&patch)
        .unwrap();
    assert_eq!(tree.dir, layout.tree_dir(0));
    assert_same_tree(
        local.path(),
        &workspace.path().join(".codex-remote/my app/trees/0/my app"),
        "local host round trip",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locally_changed_file_is_a_conflict_and_nothing_is_written() {
    let Some(f) = fixture() else { return };
    RsyncSyncer::new(f.transport.clone())
        .push(&f.request(), None)
        .await
        .unwrap();
    let tree = prepare_run(f.transport.as_ref(), &f.layout, "run-c", &[])
        .await
        .unwrap();
    f.run_agent(&tree, AGENT_SCRIPT).await;
    let patch = retrieve_patch(f.transport.as_ref(), &tree).await.unwrap();
    // The user edits a file the agent also changed, after the push.
    write(f.local.path(), "src/main.ts", b"// my local work\n");
    let before = snapshot(f.local.path());
    match PatchApplier::new(f.local.path(), RestrictedFiles::default(), false).apply(&patch) {
        Err(ApplyError::Conflicts(conflicts)) => {
            assert_eq!(conflicts.len(), 1, "{conflicts:?}");
            assert_eq!(conflicts[0].path, "src/main.ts");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(snapshot(f.local.path()) == before, "no local byte changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restricted_files_are_refused_unless_allowed() {
    let Some(f) = fixture() else { return };
    RsyncSyncer::new(f.transport.clone())
        .push(&f.request(), None)
        .await
        .unwrap();
    let tree = prepare_run(f.transport.as_ref(), &f.layout, "run-r", &[])
        .await
        .unwrap();
    f.run_agent(&tree, "printf '{\"name\":\"app\",\"dependencies\":{\"left-pad\":\"1\"}}\\n' > package.json; echo ok > src/ok.ts").await;
    let patch = retrieve_patch(f.transport.as_ref(), &tree).await.unwrap();
    let before = snapshot(f.local.path());
    match PatchApplier::new(f.local.path(), RestrictedFiles::default(), false).apply(&patch) {
        Err(ApplyError::Restricted(paths)) => assert_eq!(paths, vec!["package.json"]),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(snapshot(f.local.path()) == before, "no local byte changed");
    PatchApplier::new(f.local.path(), RestrictedFiles::default(), true)
        .apply(&patch)
        .unwrap();
    assert!(std::fs::read_to_string(f.local.path().join("package.json"))
        .unwrap()
        .contains("left-pad"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_runs_of_one_project_are_isolated() {
    let Some(f) = fixture() else { return };
    RsyncSyncer::new(f.transport.clone())
        .push(&f.request(), None)
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        prepare_run(f.transport.as_ref(), &f.layout, "run-a", &[]),
        prepare_run(f.transport.as_ref(), &f.layout, "run-b", &[])
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.dir, b.dir);
    tokio::join!(
        f.run_agent(&a, "echo a > src/main.ts; echo a > only-a.txt"),
        f.run_agent(&b, "echo b > src/main.ts")
    );
    let patch_a =
        ParsedPatch::parse(&retrieve_patch(f.transport.as_ref(), &a).await.unwrap()).unwrap();
    let patch_b =
        ParsedPatch::parse(&retrieve_patch(f.transport.as_ref(), &b).await.unwrap()).unwrap();
    let paths = |p: &ParsedPatch| {
        p.files
            .iter()
            .map(|c| c.path().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(paths(&patch_a), vec!["only-a.txt", "src/main.ts"]);
    assert_eq!(
        paths(&patch_b),
        vec!["src/main.ts"],
        "run b does not see run a's changes"
    );
}

#[test]
fn odd_names_survive_the_patch_format() {
    // Covered end to end above; here the parser alone on git's quoting of every odd name.
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    run(&["init", "-q"]);
    for name in ODD_NAMES {
        write(dir.path(), name, b"x\n");
    }
    run(&["add", "-A"]);
    let out = run(&[
        "diff",
        "--cached",
        "--binary",
        "--full-index",
        "--src-prefix=a/",
        "--dst-prefix=b/",
    ]);
    let parsed = ParsedPatch::parse(&out.stdout).unwrap();
    let mut paths: Vec<&str> = parsed.files.iter().map(|c| c.path()).collect();
    paths.sort();
    let mut expected = ODD_NAMES.to_vec();
    expected.sort();
    assert_eq!(paths, expected);
}

#[tokio::test]
async fn tar_fallback_works_over_the_fake_transport() {
    let fake = codex_remote_testkit::FakeTransport::default();
    fake.put_file("~/workspace/app/stale.txt", "gone after the push");
    fake.put_file("~/workspace/app/.git/HEAD", "kept");
    let transport: SharedTransport = Arc::new(fake.clone());
    let local = tempfile::tempdir().unwrap();
    make_project(local.path());
    let layout = RemoteLayout::new(transport.host(), "app");
    let request = PushRequest {
        local_root: local.path().into(),
        remote_dir: layout.mirror.clone(),
        lock: layout.lock(),
        settings: settings(),
    };
    let report = TarSyncer::new(transport)
        .push(&request, None)
        .await
        .unwrap();
    assert_eq!(report.method, "tar");
    assert_eq!(
        fake.file("~/workspace/app/src/main.ts").unwrap(),
        b"export function main() {\n  return 1;\n}\n"
    );
    assert_eq!(
        fake.file("~/workspace/app/new\nline.txt").unwrap(),
        b"content of new\nline.txt\n"
    );
    assert!(
        fake.file("~/workspace/app/stale.txt").is_none(),
        "files gone locally are gone from the mirror"
    );
    assert_eq!(
        fake.file("~/workspace/app/.git/HEAD").unwrap(),
        b"kept",
        "the mirror's .git is kept"
    );
    assert!(
        fake.file("~/workspace/app/node_modules/dep/index.js")
            .is_none(),
        "excludes apply"
    );
    assert_eq!(
        fake.log().len(),
        1,
        "one command: the push is one round trip"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_works_in_a_git_repository_and_leaves_its_index_alone() {
    let (workspace, layout, transport) = local_host("repo");
    let local = tempfile::tempdir().unwrap();
    make_project(local.path());
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(local.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    git(&["init", "-q"]);
    git(&["-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"]);
    git(&[
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-q",
        "-m",
        "base",
    ]);
    let request = PushRequest {
        local_root: local.path().into(),
        remote_dir: layout.mirror.clone(),
        lock: layout.lock(),
        settings: settings(),
    };
    syncer_for(transport.clone())
        .push(&request, None)
        .await
        .unwrap();
    let (patch, _) = agent_patch(&transport, &layout, "g").await;
    PatchApplier::new(local.path(), RestrictedFiles::default(), false)
        .apply(&patch)
        .unwrap();
    assert_same_tree(
        local.path(),
        &workspace.path().join(".codex-remote/repo/trees/0/repo"),
        "git project round trip",
    );
    assert_eq!(
        git(&["diff", "--cached", "--name-only"]),
        "",
        "the index is not touched"
    );
    assert!(
        git(&["status", "--porcelain"]).contains("src/main.ts"),
        "the change shows as a working-tree change"
    );
}

/// (inode, ctime in ns) of every file the syncers would select: a file rewritten, recreated or
/// chmod-ed changes one of them.
fn stamps(root: &Path) -> std::collections::BTreeMap<String, (u64, i128)> {
    use std::os::unix::fs::MetadataExt;
    select_files(root, &settings())
        .unwrap()
        .into_iter()
        .map(|f| {
            let meta = std::fs::symlink_metadata(root.join(&f.relative)).unwrap();
            let ctime = meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128;
            (f.relative, (meta.ino(), ctime))
        })
        .collect()
}

fn git_in(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_tree_moves_to_the_new_baseline_touching_only_changed_files() {
    let Some(f) = fixture() else { return };
    let syncer = RsyncSyncer::new(f.transport.clone());
    syncer.push(&f.request(), None).await.unwrap();
    let first = prepare_run(f.transport.as_ref(), &f.layout, "r1", &settings().exclude)
        .await
        .unwrap();
    assert_eq!(first.slot, Some(0));
    let dir = f.workspace.join(".codex-remote/my app/trees/0/my app");
    // The tree's own repository shows the agent a clean checkout of the baseline.
    assert_eq!(git_in(&dir, &["status", "--porcelain"]), "");
    assert_eq!(git_in(&dir, &["rev-parse", "HEAD"]).trim(), first.baseline);
    // The agent edits, adds, deletes, leaves ignored output and a nested repository, commits.
    f.run_agent(
        &first,
        "set -e; printf 'agent\\n' > src/main.ts; printf 'junk\\n' > junk.txt; rm src/util.ts; \
         printf 'log\\n' > build.log; mkdir -p dist && printf 'x\\n' > dist/out.js; \
         mkdir nested && cd nested && git init -q && printf 'n\\n' > n.txt && cd ..; \
         git add -A src junk.txt && git -c user.name=a -c user.email=a@a commit -qm agent",
    )
    .await;
    retrieve_patch(f.transport.as_ref(), &first).await.unwrap();
    remove_run(f.transport.as_ref(), &f.layout, &"r1".parse().unwrap())
        .await
        .unwrap();

    // Locally one file changes and one is added; the next run reuses the tree.
    write(f.local.path(), "src/delete-me.ts", b"changed locally\n");
    write(f.local.path(), "src/fresh.ts", b"fresh\n");
    let before = stamps(&dir);
    syncer.push(&f.request(), None).await.unwrap();
    let second = prepare_run(f.transport.as_ref(), &f.layout, "r2", &settings().exclude)
        .await
        .unwrap();
    assert_eq!(second.dir, first.dir, "the free tree is reused");
    let stale = retrieve_patch(f.transport.as_ref(), &first)
        .await
        .unwrap_err();
    assert!(
        stale.to_string().contains("no longer holds its tree"),
        "a released run never reads another run's tree: {stale}"
    );
    assert_ne!(second.baseline, first.baseline);
    assert_same_tree(&dir, f.local.path(), "the reused tree is the new baseline");
    for gone in ["junk.txt", "build.log", "dist", "nested"] {
        assert!(!dir.join(gone).exists(), "{gone} is left over");
    }
    let after = stamps(&dir);
    let touched: Vec<&String> = after
        .iter()
        .filter(|(path, stamp)| before.get(*path) != Some(stamp))
        .map(|(path, _)| path)
        .collect();
    assert_eq!(
        touched,
        [
            "src/delete-me.ts",
            "src/fresh.ts",
            "src/main.ts",
            "src/util.ts"
        ],
        "only files that differ from what the tree held are written"
    );
    assert_eq!(git_in(&dir, &["status", "--porcelain"]), "");
    assert_eq!(git_in(&dir, &["rev-parse", "HEAD"]).trim(), second.baseline);

    // A second run in flight gets a tree of its own; pruning keeps held trees.
    let third = prepare_run(f.transport.as_ref(), &f.layout, "r3", &[])
        .await
        .unwrap();
    assert_eq!(third.slot, Some(1));
    remove_run(f.transport.as_ref(), &f.layout, &"r3".parse().unwrap())
        .await
        .unwrap();
    let pruned = prune_idle_trees(f.transport.as_ref(), &f.layout)
        .await
        .unwrap();
    assert_eq!(pruned, vec![1], "tree 0 is still held by r2");
    assert!(dir.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrieval_ignores_what_the_agent_did_to_its_trees_git() {
    let Some(f) = fixture() else { return };
    RsyncSyncer::new(f.transport.clone())
        .push(&f.request(), None)
        .await
        .unwrap();
    let tree = prepare_run(f.transport.as_ref(), &f.layout, "rh", &[])
        .await
        .unwrap();
    let marker = f.workspace.join("pwned");
    let marker = marker.display();
    // Commits, branches, a moved HEAD, a stash, then a .git set to run code and hide files
    // if we ever used it: fsmonitor, hooks, an exclude-everything, a filter, a bogus index.
    f.run_agent(
        &tree,
        &format!(
            "set -e; G='git -c user.name=a -c user.email=a@a'
printf 'committed\\n' > src/main.ts; $G add -A; $G commit -qm one
$G checkout -q -b elsewhere; printf 'stashed\\n' > src/util.ts; $G stash -q
$G checkout -q --orphan empty; $G rm -rfq --cached .; $G commit -q --allow-empty -m nothing
printf 'after\\n' > after.txt
printf '[core]\\n\\tfsmonitor = \"touch {marker}\"\\n\\thooksPath = hooks\\n[filter \"x\"]\\n\\tclean = \"touch {marker}\"\\n' >> .git/config
mkdir -p hooks; printf '#!/bin/sh\\ntouch {marker}\\n' > hooks/pre-commit; chmod +x hooks/pre-commit
printf '*\\n' > .git/info/exclude; printf '* filter=x\\n' > .git/info/attributes
printf 'garbage' > .git/index"
        ),
    )
    .await;
    let patch = retrieve_patch(f.transport.as_ref(), &tree).await.unwrap();
    let parsed = ParsedPatch::parse(&patch).unwrap();
    let paths: Vec<&str> = parsed.files.iter().map(|c| c.path()).collect();
    assert_eq!(paths, ["after.txt", "hooks/pre-commit", "src/main.ts"]);
    assert!(
        !f.workspace.join("pwned").exists(),
        "nothing in the agent's .git ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_repository_comes_back_as_files_and_mirror_changes_are_reported() {
    let (workspace, layout, transport) = local_host("nest");
    let local = tempfile::tempdir().unwrap();
    write(local.path(), "README.md", b"# nest\n");
    let request = PushRequest {
        local_root: local.path().into(),
        remote_dir: layout.mirror.clone(),
        lock: layout.lock(),
        settings: settings(),
    };
    syncer_for(transport.clone())
        .push(&request, None)
        .await
        .unwrap();
    let tree = prepare_run(transport.as_ref(), &layout, "n", &[])
        .await
        .unwrap();
    transport
        .run_checked(
            CommandSpec::new("sh")
                .args([
                    "-c",
                    "set -e; G='git -c user.name=a -c user.email=a@a'
mkdir -p lib/inner; cd lib; git init -q; printf 'a\\n' > a.txt; $G add a.txt; $G commit -qm a
cd inner; git init -q; printf 'b\\n' > b.txt; cd ../..
mkdir empty; cd empty; git init -q; cd ..
printf 'leak\\n' > ../../../../../nest/leak.txt",
                ])
                .cwd(tree.dir.clone()),
        )
        .await
        .unwrap();
    // While the agent lives (an attempt with a live pid and no status), nothing in its tree is
    // moved: it could swap a directory for a symlink under our feet.
    let attempt = workspace.path().join(".codex-remote/nest/agents/n/1");
    std::fs::create_dir_all(&attempt).unwrap();
    std::fs::write(attempt.join("pid"), std::process::id().to_string()).unwrap();
    let _ = codex_remote_core::workspace::retrieve(transport.as_ref(), &tree).await;
    let nested_git = workspace
        .path()
        .join(".codex-remote/nest/trees/0/nest/lib/.git");
    assert!(nested_git.exists(), "a live agent's tree is left alone");
    std::fs::write(attempt.join("status"), "0\n").unwrap();
    let retrieved = codex_remote_core::workspace::retrieve(transport.as_ref(), &tree)
        .await
        .unwrap();
    assert!(!nested_git.exists());
    let parsed = ParsedPatch::parse(&retrieved.patch).unwrap();
    let kinds: Vec<(&str, &str)> = parsed.files.iter().map(|c| (c.path(), c.kind())).collect();
    assert_eq!(
        kinds,
        [("lib/a.txt", "added"), ("lib/inner/b.txt", "added")],
        "the nested repositories' files, not gitlinks"
    );
    assert_eq!(retrieved.outside, ["?? leak.txt"]);
    assert!(workspace.path().join("nest/leak.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_runs_baseline_is_collected_from_the_mirror() {
    let (workspace, layout, transport) = local_host("gc");
    let local = tempfile::tempdir().unwrap();
    // Enough objects that `git gc --auto` (with gc.auto=1 below) finds loose ones to pack once
    // every file changes: it samples objects/17/. (A mirror's first baseline goes into a pack.)
    for i in 0..1200 {
        write(
            local.path(),
            &format!("f/{i}.txt"),
            format!("file {i}\n").as_bytes(),
        );
    }
    let request = PushRequest {
        local_root: local.path().into(),
        remote_dir: layout.mirror.clone(),
        lock: layout.lock(),
        settings: settings(),
    };
    let syncer = syncer_for(transport.clone());
    syncer.push(&request, None).await.unwrap();
    let first = prepare_run(transport.as_ref(), &layout, "g1", &[])
        .await
        .unwrap();
    remove_run(transport.as_ref(), &layout, &"g1".parse().unwrap())
        .await
        .unwrap();
    // Collect at once (and in the foreground) from now on.
    let mirror = workspace.path().join("gc");
    for (key, value) in [
        ("gc.auto", "1"),
        ("gc.autoDetach", "false"),
        ("gc.pruneExpire", "now"),
    ] {
        git_in(&mirror, &["config", key, value]);
    }
    for i in 0..1200 {
        write(
            local.path(),
            &format!("f/{i}.txt"),
            format!("changed {i}\n").as_bytes(),
        );
    }
    syncer.push(&request, None).await.unwrap();
    let second = prepare_run(transport.as_ref(), &layout, "g2", &[])
        .await
        .unwrap();
    assert_ne!(first.baseline, second.baseline);
    remove_run(transport.as_ref(), &layout, &"g2".parse().unwrap())
        .await
        .unwrap();
    let exists = |object: &str| {
        std::process::Command::new("git")
            .args(["cat-file", "-e", object])
            .current_dir(&mirror)
            .status()
            .unwrap()
            .success()
    };
    assert!(!exists(&first.baseline), "the first baseline was collected");
    assert!(exists(&second.baseline), "the mirror's HEAD stays");
    assert!(
        std::fs::read_dir(mirror.join(".git/objects/pack"))
            .unwrap()
            .count()
            > 0,
        "loose objects were packed"
    );
}

/// A new tree is copied from the mirror while its baseline is hashed: it must still hold exactly
/// the baseline. What git ignores in the mirror (a host-side `node_modules`, a build log) stays
/// out, and a mirror holding a nested repository (a gitlink in the baseline) gets the checkout,
/// an empty directory, not the nested repository's files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_tree_holds_exactly_the_baseline_whatever_else_the_mirror_holds() {
    let (workspace, layout, transport) = local_host("app");
    let local = tempfile::tempdir().unwrap();
    make_project(local.path());
    write(local.path(), ".gitignore", b"*.log\nnode_modules/\n");
    let syncer = syncer_for(transport.clone());
    let request = PushRequest {
        local_root: local.path().into(),
        remote_dir: layout.mirror.clone(),
        lock: layout.lock(),
        settings: settings(),
    };
    syncer.push(&request, None).await.unwrap();
    // Made on the host, in the mirror: ignored there, so never part of a baseline; and what a
    // checkout never makes: a submodule's `.git` file, an empty `.git` directory, a fifo.
    let mirror = workspace.path().join("app");
    write(&mirror, "node_modules/dep/index.js", b"dep\n");
    write(&mirror, "web/node_modules/dep/index.js", b"dep\n");
    write(&mirror, "src/debug.log", b"log\n");
    write(&mirror, "mod/.git", b"gitdir: ../.git/modules/mod\n");
    write(&mirror, "mod/m.txt", b"m\n");
    std::fs::create_dir_all(mirror.join("empty/.git")).unwrap();
    write(&mirror, "empty/e.txt", b"e\n");
    assert!(std::process::Command::new("mkfifo")
        .arg(mirror.join("fifo"))
        .status()
        .unwrap()
        .success());
    // Read-only in the project: a checkout gives the agent files it may write.
    write(&mirror, "ro/f.txt", b"f\n");
    std::fs::set_permissions(
        mirror.join("ro/f.txt"),
        std::fs::Permissions::from_mode(0o444),
    )
    .unwrap();
    std::fs::set_permissions(mirror.join("ro"), std::fs::Permissions::from_mode(0o555)).unwrap();
    let tree = prepare_run(transport.as_ref(), &layout, "n1", &settings().exclude)
        .await
        .unwrap();
    let dir = workspace.path().join(".codex-remote/app/trees/0/app");
    assert_eq!(tree.dir, layout.tree_dir(0));
    for left_out in [
        "node_modules",
        "web/node_modules",
        "src/debug.log",
        "mod/.git",
        "empty/.git",
        "fifo",
    ] {
        assert!(
            std::fs::symlink_metadata(dir.join(left_out)).is_err(),
            "{left_out} is in the new tree"
        );
    }
    assert_eq!(std::fs::read(dir.join("mod/m.txt")).unwrap(), b"m\n");
    for writable in ["ro", "ro/f.txt"] {
        let mode = std::fs::metadata(dir.join(writable))
            .unwrap()
            .permissions()
            .mode();
        assert!(mode & 0o200 != 0, "{writable} is not writable: {mode:o}");
    }
    // What the host added to the mirror is part of the baseline; the rest is the project.
    for (file, text) in [
        ("mod/m.txt", "m\n"),
        ("empty/e.txt", "e\n"),
        ("ro/f.txt", "f\n"),
    ] {
        write(local.path(), file, text.as_bytes());
    }
    assert_same_tree(&dir, local.path(), "a new tree");
    assert_eq!(git_in(&dir, &["status", "--porcelain"]), "");
    assert_eq!(git_in(&dir, &["rev-parse", "HEAD"]).trim(), tree.baseline);
    let (patch, _) = agent_patch(&transport, &layout, "n2").await;
    assert!(!patch.is_empty(), "a second new tree's run has its change");

    // A nested repository in a fresh mirror: recorded as a gitlink, checked out as an empty
    // directory, as a checkout of the baseline would.
    let (workspace, layout, transport) = local_host("nest");
    let local = tempfile::tempdir().unwrap();
    write(local.path(), "top.txt", b"top\n");
    let syncer = syncer_for(transport.clone());
    syncer
        .push(
            &PushRequest {
                local_root: local.path().into(),
                remote_dir: layout.mirror.clone(),
                lock: layout.lock(),
                settings: settings(),
            },
            None,
        )
        .await
        .unwrap();
    let sub = workspace.path().join("nest/sub");
    write(&sub, "inner.txt", b"inner\n");
    git_in(&sub, &["init", "-q"]);
    git_in(&sub, &["add", "-A"]);
    git_in(
        &sub,
        &[
            "-c",
            "user.name=a",
            "-c",
            "user.email=a@a",
            "commit",
            "-qm",
            "x",
        ],
    );
    prepare_run(transport.as_ref(), &layout, "g1", &[])
        .await
        .unwrap();
    let dir = workspace.path().join(".codex-remote/nest/trees/0/nest");
    assert!(dir.join("top.txt").exists());
    assert!(dir.join("sub").is_dir(), "the gitlink's directory is there");
    assert!(
        !dir.join("sub/inner.txt").exists() && !dir.join("sub/.git").exists(),
        "the nested repository's files were copied into the tree"
    );
}

/// A slot of the pool replaced by a symbolic link (an agent with full access can do that) is
/// only unlinked, by preparation and by pruning alike: nothing it points to is changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_that_is_a_link_is_unlinked_and_what_it_points_to_is_left_alone() {
    let (workspace, layout, transport) = local_host("app");
    let local = tempfile::tempdir().unwrap();
    make_project(local.path());
    syncer_for(transport.clone())
        .push(
            &PushRequest {
                local_root: local.path().into(),
                remote_dir: layout.mirror.clone(),
                lock: layout.lock(),
                settings: settings(),
            },
            None,
        )
        .await
        .unwrap();
    let victim = tempfile::tempdir().unwrap();
    write(victim.path(), "keep/f.txt", b"keep\n");
    std::fs::set_permissions(
        victim.path().join("keep/f.txt"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let trees = workspace.path().join(".codex-remote/app/trees");
    std::fs::create_dir_all(&trees).unwrap();
    for slot in ["0", "5"] {
        std::os::unix::fs::symlink(victim.path().join("keep"), trees.join(slot)).unwrap();
    }
    let intact = || {
        let file = victim.path().join("keep/f.txt");
        assert_eq!(std::fs::read(&file).unwrap(), b"keep\n");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "the link's target was changed");
    };
    let tree = prepare_run(transport.as_ref(), &layout, "l1", &settings().exclude)
        .await
        .unwrap();
    assert_eq!(tree.slot, Some(0));
    assert!(trees.join("0").is_dir() && !trees.join("0").is_symlink());
    intact();
    remove_run(transport.as_ref(), &layout, &"l1".parse().unwrap())
        .await
        .unwrap();
    prune_idle_trees(transport.as_ref(), &layout).await.unwrap();
    assert!(
        std::fs::symlink_metadata(trees.join("5")).is_err(),
        "the link is gone"
    );
    intact();
}

/// A record of a run prepared before run trees were pooled names its tree alone: retrieval
/// follows it only into a run directory of ours, never into another repository (whose index
/// our `git add -A` would change).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpooled_tree_outside_our_run_directories_is_not_retrieved() {
    let (_workspace, _layout, transport) = local_host("app");
    let victim = tempfile::tempdir().unwrap();
    write(victim.path(), "tracked.txt", b"t\n");
    git_in(victim.path(), &["init", "-q"]);
    git_in(victim.path(), &["add", "tracked.txt"]);
    git_in(
        victim.path(),
        &[
            "-c",
            "user.name=a",
            "-c",
            "user.email=a@a",
            "commit",
            "-qm",
            "x",
        ],
    );
    write(victim.path(), "untracked.txt", b"u\n");
    let head = git_in(victim.path(), &["rev-parse", "HEAD"])
        .trim()
        .to_string();
    let planted = RunTree {
        dir: victim.path().display().to_string(),
        baseline: head,
        slot: None,
        mirror: None,
        run_id: None,
    };
    let refused = retrieve_patch(transport.as_ref(), &planted)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("not a run tree of ours"),
        "{refused}"
    );
    assert_eq!(
        git_in(victim.path(), &["status", "--porcelain"]),
        "?? untracked.txt\n",
        "the other repository's index was changed"
    );
}
