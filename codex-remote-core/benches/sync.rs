//! Push and retrieval against plain rsync, measured in one run over the same sshd.
//!
//! - First push and no-op re-push of a 10,000-file, 100 MiB tree: our push (rsync riding the
//!   transport's master connection, including opening that connection) against plain
//!   `rsync -a -e ssh` with the same excludes.
//! - Retrieval of a 5-file change from a 100-file tree and from a 10,000-file tree: retrieval
//!   must scale with the change, not the repository.
//! - Run preparation in a new tree (every file checked out) and in a reused tree of the pool
//!   after a 5-file change was pushed (only those files rewritten).
//!
//! Run: `cargo bench -p codex-remote-core --bench sync` (as root: it creates a login user with an
//! empty ~/.bashrc so the developer's rc files are not measured). `BENCH_REPEAT` sets repetitions.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use codex_remote_core::config::{Config, ConfigFile};
use codex_remote_core::layout::RemoteLayout;
use codex_remote_core::sync::{rsync::rsync_filter_args, syncer_for, PushRequest};
use codex_remote_core::transport::ssh::SshTransport;
use codex_remote_core::transport::{CommandSpec, SharedTransport, TransportExt};
use codex_remote_core::workspace::{prepare_run, remove_run, retrieve_patch};
use codex_remote_testkit::sshd::{ensure_user, SshdOptions, ALIAS};
use codex_remote_testkit::Sshd;

const USER: &str = "codex-remote-light";

fn repeat() -> usize {
    std::env::var("BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

/// `dirs` x `per_dir` files of `size` pseudo-random bytes, plus an excluded node_modules.
fn make_tree(root: &Path, dirs: usize, per_dir: usize, size: usize) {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut bytes = vec![0u8; size];
    for d in 0..dirs {
        let dir = root.join(format!("src/module{d:03}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..per_dir {
            for chunk in bytes.chunks_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
            }
            std::fs::write(dir.join(format!("file{f:03}.ts")), &bytes).unwrap();
        }
    }
    std::fs::create_dir_all(root.join("node_modules/dep")).unwrap();
    std::fs::write(root.join("node_modules/dep/index.js"), "excluded\n").unwrap();
    std::fs::write(root.join(".gitignore"), "*.log\n").unwrap();
}

fn chmod_world_readable(path: &Path) {
    Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(path)
        .status()
        .unwrap();
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn plain_rsync(
    sshd: &Sshd,
    src: &Path,
    dest: &str,
    settings: &codex_remote_core::config::SyncSettings,
) -> Duration {
    let request = PushRequest {
        local_root: src.into(),
        remote_dir: String::new(),
        lock: String::new(),
        settings: settings.clone(),
    };
    // The same filters, minus our own bookkeeping flags.
    let filters: Vec<String> = rsync_filter_args(&request)
        .into_iter()
        .filter(|a| a.starts_with("--exclude") || a.starts_with("--filter"))
        .collect();
    let started = Instant::now();
    let status = Command::new("rsync")
        .args(["-a", "--delete"])
        .args(&filters)
        .arg("-e")
        .arg(format!("ssh -F {}", sshd.ssh_config().display()))
        .arg(format!("{}/", src.display()))
        .arg(format!("{ALIAS}:{dest}/"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    started.elapsed()
}

fn main() {
    if Sshd::start_or_skip().is_none() {
        return;
    }
    if !ensure_user(USER, "") {
        eprintln!("needs root to create {USER}");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sshd = Sshd::start(SshdOptions {
        user: Some(USER.into()),
        source_bashrc: true,
    })
    .unwrap();
    let home = format!("/home/{USER}");
    Command::new("rm")
        .args(["-rf", &format!("{home}/bench")])
        .status()
        .unwrap();
    let config_text = format!("[hosts.{ALIAS}]\nworkspace = \"~/bench/ws\"\n");
    let config = Config::from_files([ConfigFile::parse(&config_text, "bench").unwrap()]).unwrap();
    let settings = config.sync();
    let host = config.host(Some(ALIAS)).unwrap();
    let big = tempfile::tempdir().unwrap();
    make_tree(big.path(), 100, 100, 10 * 1024);
    let small = tempfile::tempdir().unwrap();
    make_tree(small.path(), 10, 10, 10 * 1024);
    chmod_world_readable(big.path());
    chmod_world_readable(small.path());

    let new_transport = || -> SharedTransport {
        Arc::new(SshTransport::new(host.clone(), sshd.ssh_options()).unwrap())
    };
    let push = |tree: &Path, project: &str| -> Duration {
        let transport = new_transport();
        let layout = RemoteLayout::new(transport.host(), project);
        let request = PushRequest {
            local_root: tree.into(),
            remote_dir: layout.mirror.clone(),
            lock: layout.lock(),
            settings: settings.clone(),
        };
        let started = Instant::now();
        rt.block_on(syncer_for(transport.clone()).push(&request, None))
            .unwrap();
        let elapsed = started.elapsed();
        rt.block_on(transport.close()).unwrap();
        elapsed
    };

    let n = repeat();
    let mut ours_first = Vec::new();
    let mut plain_first = Vec::new();
    for i in 0..n.min(3) {
        ours_first.push(push(big.path(), &format!("ours{i}")));
        plain_first.push(plain_rsync(
            &sshd,
            big.path(),
            &format!("bench/plain{i}"),
            &settings,
        ));
    }
    let mut ours_again = Vec::new();
    let mut plain_again = Vec::new();
    for _ in 0..n {
        ours_again.push(push(big.path(), "ours0"));
        plain_again.push(plain_rsync(&sshd, big.path(), "bench/plain0", &settings));
    }

    // Retrieval: a 5-file change in the small and the big tree.
    let mut retrieval = Vec::new();
    let mut retrieval_e2e = Vec::new();
    let mut prepare = Vec::new();
    let mut prepare_reused = Vec::new();
    for (label, tree, project) in [
        ("100 files", small.path(), "small"),
        ("10,000 files", big.path(), "ours0"),
    ] {
        push(tree, project);
        let transport = new_transport();
        let layout = RemoteLayout::new(transport.host(), project);
        let started = Instant::now();
        let run = rt
            .block_on(prepare_run(
                transport.as_ref(),
                &layout,
                &format!("bench-{project}"),
                &settings.exclude,
            ))
            .unwrap();
        prepare.push((label, started.elapsed()));
        let mut samples = Vec::new();
        let mut end_to_end = Vec::new();
        for i in 0..n {
            let script = format!("for d in 000 001 002 003 004; do printf 'change {i}\\n' >> src/module$d/file000.ts 2>/dev/null || printf 'change {i}\\n' >> src/module00${{d#00}}/file000.ts; done");
            rt.block_on(
                transport.run_checked(
                    CommandSpec::new("sh")
                        .args(["-c", &script])
                        .cwd(run.dir.clone()),
                ),
            )
            .unwrap();
            let started = Instant::now();
            let patch = rt
                .block_on(retrieve_patch(transport.as_ref(), &run))
                .unwrap();
            samples.push(started.elapsed());
            if std::env::var_os("BENCH_VERBOSE").is_some() {
                eprintln!("{label} sample {i}: {:?}", started.elapsed());
            }
            assert!(patch.len() > 100);
            // What `codex-remote pull` does in a fresh process: connect, retrieve, store.
            rt.block_on(
                transport.run_checked(
                    CommandSpec::new("sh")
                        .args(["-c", &script])
                        .cwd(run.dir.clone()),
                ),
            )
            .unwrap();
            let started = Instant::now();
            let fresh = new_transport();
            let patch = rt.block_on(retrieve_patch(fresh.as_ref(), &run)).unwrap();
            let record = tempfile::tempdir().unwrap();
            codex_remote_core::atomic::write_atomic(&record.path().join("result.patch"), &patch)
                .unwrap();
            rt.block_on(fresh.close()).unwrap();
            end_to_end.push(started.elapsed());
        }
        retrieval.push((label, median(samples)));
        retrieval_e2e.push((label, median(end_to_end)));
        // The next run reuses the released tree after a 5-file change is pushed.
        let mut reused = Vec::new();
        let mut previous = format!("bench-{project}");
        for i in 0..n {
            rt.block_on(remove_run(
                transport.as_ref(),
                &layout,
                &codex_remote_core::Name::parse(&previous).unwrap(),
            ))
            .unwrap();
            for d in 0..5 {
                let file = tree.join(format!("src/module{d:03}/file001.ts"));
                if file.exists() {
                    std::fs::write(&file, format!("reuse {i}\n")).unwrap();
                }
            }
            push(tree, project);
            previous = format!("bench-{project}-reuse{i}");
            let started = Instant::now();
            let again = rt
                .block_on(prepare_run(
                    transport.as_ref(),
                    &layout,
                    &previous,
                    &settings.exclude,
                ))
                .unwrap();
            reused.push(started.elapsed());
            assert_eq!(again.dir, run.dir, "the tree is reused");
        }
        prepare_reused.push((label, median(reused)));
        rt.block_on(transport.close()).unwrap();
    }

    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    let (of, pf, oa, pa) = (
        median(ours_first),
        median(plain_first),
        median(ours_again),
        median(plain_again),
    );
    println!(
        "10,000 files, 100 MiB; medians of {} (first) and {n} (re-push, retrieval) runs\n",
        n.min(3)
    );
    println!("| operation | codex-remote | plain `rsync -a -e ssh` | ratio (ours / plain) |");
    println!("|---|---|---|---|");
    println!(
        "| first push | {} | {} | {:.2} |",
        ms(of),
        ms(pf),
        of.as_secs_f64() / pf.as_secs_f64()
    );
    println!(
        "| no-op re-push | {} | {} | {:.2} |",
        ms(oa),
        ms(pa),
        oa.as_secs_f64() / pa.as_secs_f64()
    );
    println!();
    println!("| retrieval of a 5-file change | 100-file tree | 10,000-file tree | ratio |");
    println!("|---|---|---|---|");
    for (what, rows) in [
        (
            "`retrieve_patch` on an open connection (one round trip)",
            &retrieval,
        ),
        (
            "as `pull` does it: connect, retrieve, store the patch",
            &retrieval_e2e,
        ),
    ] {
        println!(
            "| {what} | {} | {} | {:.2} |",
            ms(rows[0].1),
            ms(rows[1].1),
            rows[1].1.as_secs_f64() / rows[0].1.as_secs_f64()
        );
    }
    println!();
    println!("| run preparation (one round trip) | 100-file tree | 10,000-file tree |");
    println!("|---|---|---|");
    println!(
        "| first run: baseline commit + new tree checked out | {} | {} |",
        ms(prepare[0].1),
        ms(prepare[1].1)
    );
    println!(
        "| reused tree after a 5-file change (median) | {} | {} |",
        ms(prepare_reused[0].1),
        ms(prepare_reused[1].1)
    );
}
