//! How soon a follow ends after the agent does (issue 12 item 5): the time from the agent's exit
//! to the follow's return, after which retrieval starts. Over our SSH session to a real sshd, as
//! every run follows.
//!
//! The stand-in supervisor is a child of this process that is killed and **not reaped** (a
//! zombie, as under a PID 1 that reaps late or never). Two cases:
//! - recorded: the supervisor recorded the exit status (the normal end);
//! - fallback: no status recorded, only the process is gone (liveness fallback).
//!
//! Run: `cargo bench -p codex-remote-core --bench follow_end` (needs /usr/sbin/sshd).

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use codex_remote_core::executor::{CodexExecutor, Executor};
use codex_remote_core::transport::ssh::SshTransport;
use codex_remote_testkit::Sshd;

const ROUNDS: usize = 20;

fn main() {
    let Some(sshd) = Sshd::start_or_skip() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let transport = Arc::new(SshTransport::new(sshd.host_spec(""), sshd.ssh_options()).unwrap());
    rt.block_on(transport.connect()).unwrap();
    for (case, record_status) in [("recorded status", true), ("liveness fallback", false)] {
        let mut ends = Vec::new();
        for round in 0..ROUNDS {
            let agent = sshd.dir().join(format!("agent-{record_status}-{round}"));
            std::fs::create_dir_all(&agent).unwrap();
            let mut supervisor = Command::new("sleep").arg("600").spawn().unwrap();
            std::fs::write(agent.join("pid"), format!("{}\n", supervisor.id())).unwrap();
            std::fs::write(agent.join("events.jsonl"), "{\"type\":\"sync\"}\n").unwrap();
            let (tx, mut rx) = tokio::sync::mpsc::channel(16);
            let dir = agent.display().to_string();
            let follow = rt.spawn({
                let transport = transport.clone();
                async move { CodexExecutor.follow(transport.as_ref(), &dir, 0, tx).await }
            });
            // The follow is under way once the first line came through.
            rt.block_on(rx.recv()).expect("the sync line arrives");
            let exited = Instant::now();
            if record_status {
                std::fs::write(agent.join("status.tmp"), "0\n").unwrap();
                std::fs::rename(agent.join("status.tmp"), agent.join("status")).unwrap();
            }
            supervisor.kill().unwrap(); // not reaped: a zombie until the follow has ended
            let end = rt.block_on(follow).unwrap().unwrap();
            ends.push(exited.elapsed());
            assert_eq!(end.vanished, !record_status, "{end:?}");
            supervisor.wait().unwrap();
        }
        ends.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{case}: agent exit -> follow returned over {ROUNDS} rounds: median {:.1} ms, p95 {:.1} ms, max {:.1} ms",
            ms(ends[ROUNDS / 2]),
            ms(ends[ROUNDS * 95 / 100]),
            ms(ends[ROUNDS - 1])
        );
    }
}
