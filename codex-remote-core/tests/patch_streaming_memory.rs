//! A run whose change is an 80 MB patch is retrieved over a real sshd and applied with bounded
//! memory: the patch streams to disk and is applied from disk, so this process's peak RSS
//! (VmHWM from /proc/self/status) stays under 64 MiB. Its own test binary, so no other test's
//! allocations count.

use std::sync::Arc;

use codex_remote_core::config::{Config, ConfigFile};
use codex_remote_core::pipeline::{self, ApplyOptions, Project};
use codex_remote_core::transport::ssh::SshTransport;
use codex_remote_core::transport::{CommandSpec, SharedTransport, TransportExt};
use codex_remote_testkit::Sshd;

/// Lines of `seq`: about 71 MB of text, which the patch carries with a `+` per line (80 MB,
/// more than the whole memory budget).
const LINES: u64 = 9_000_000;

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_80_megabyte_patch_is_retrieved_and_applied_in_bounded_memory() {
    let Some(sshd) = Sshd::start_or_skip() else {
        return;
    };
    let toml = format!(
        "[hosts.testhost]\nworkspace = \"{}\"\n[apply]\nmax_patch_bytes = 50000000\n",
        sshd.dir().join("workspace").display()
    );
    let host = sshd.host_spec(&toml);
    let transport: SharedTransport = Arc::new(SshTransport::new(host, sshd.ssh_options()).unwrap());
    let config = Config::from_files([ConfigFile::parse(&toml, "t").unwrap()]).unwrap();
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("README.md"), "small project\n").unwrap();
    let project = Project::new(local.path(), Some("big")).unwrap();

    pipeline::push(transport.clone(), &config, &project, None)
        .await
        .unwrap();
    let mut record = pipeline::start_run(transport.clone(), &config, &project, "big")
        .await
        .unwrap();
    let tree = record.tree.clone().unwrap();
    // The "agent" writes one large file.
    transport
        .run_checked(
            CommandSpec::new("sh")
                .args(["-c", &format!("seq 1 {LINES} > big.txt")])
                .cwd(tree.dir.clone()),
        )
        .await
        .unwrap();

    let parsed = pipeline::retrieve(transport.clone(), &project, &mut record)
        .await
        .unwrap();
    assert_eq!(parsed.files.len(), 1);
    assert_eq!(parsed.files[0].added, LINES);
    let patch_size = std::fs::metadata(project.runs().patch_path(&record.id))
        .unwrap()
        .len();
    assert!(patch_size > 75_000_000, "patch of {patch_size} bytes");

    // Above the configured size limit: held back, then taken.
    let held = pipeline::apply(&config, &project, &mut record, ApplyOptions::default());
    assert!(
        matches!(
            held,
            Err(codex_remote_core::Error::Apply(
                codex_remote_core::patch::ApplyError::HeldBack(_)
            ))
        ),
        "{held:?}"
    );
    let options = ApplyOptions {
        allow_held_back: true,
        ..ApplyOptions::default()
    };
    let applied = pipeline::apply(&config, &project, &mut record, options).unwrap();
    assert_eq!(applied.warnings[0].kind, "patch-too-large");
    let big = std::fs::metadata(local.path().join("big.txt"))
        .unwrap()
        .len();
    let expected: u64 = (1..=LINES).map(|n| n.to_string().len() as u64 + 1).sum();
    assert_eq!(big, expected);

    let peak_mib = peak_rss_kib() / 1024;
    eprintln!("peak RSS retrieving and applying a {patch_size}-byte patch: {peak_mib} MiB");
    assert!(peak_mib < 64, "peak RSS {peak_mib} MiB is not under 64 MiB");
}
