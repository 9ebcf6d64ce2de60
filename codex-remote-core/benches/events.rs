//! Latency from an event written on the host to its arrival in the local process, on the path
//! every run uses: the agent appends to its events.jsonl, `tail -f` (inotify) follows it over our
//! SSH session, and the executor hands each complete line to the display.
//!
//! Run: `cargo bench -p codex-remote-core --bench events` (needs /usr/sbin/sshd).

use std::io::Write;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use codex_remote_core::executor::{CodexExecutor, Executor};
use codex_remote_core::transport::ssh::SshTransport;
use codex_remote_testkit::Sshd;

const EVENTS: usize = 200;

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn main() {
    let Some(sshd) = Sshd::start_or_skip() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let agent = sshd.dir().join("agent");
    std::fs::create_dir_all(&agent).unwrap();
    // A live process stands in for the agent's supervisor.
    let mut supervisor = Command::new("sleep").arg("600").spawn().unwrap();
    std::fs::write(agent.join("pid"), format!("{}\n", supervisor.id())).unwrap();
    std::fs::write(agent.join("events.jsonl"), "").unwrap();
    let transport = SshTransport::new(sshd.host_spec(""), sshd.ssh_options()).unwrap();
    rt.block_on(transport.connect()).unwrap();
    if std::env::var_os("BENCH_PRIME").is_some() {
        use codex_remote_core::transport::Transport;
        let remote = rt.block_on(transport.rsync_remote()).unwrap().unwrap();
        let status = Command::new(&remote.ssh_command[0])
            .args(&remote.ssh_command[1..])
            .arg("-tt")
            .arg(&remote.destination)
            .arg("true")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        eprintln!("primed: {status}");
    }

    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let dir = agent.display().to_string();
    let follow = rt.spawn({
        let transport = std::sync::Arc::new(transport);
        async move { CodexExecutor.follow(transport.as_ref(), &dir, 0, tx).await }
    });
    let writer_path = agent.join("events.jsonl");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let writer = std::thread::spawn(move || {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&writer_path)
            .unwrap();
        // A first line, to know the follow is under way before timing anything.
        writeln!(file, "{{\"type\":\"sync\"}}").unwrap();
        ready_rx.recv().unwrap();
        for i in 0..EVENTS {
            writeln!(
                file,
                "{{\"type\":\"bench\",\"i\":{i},\"t\":{}}}",
                now_nanos()
            )
            .unwrap();
            file.flush().unwrap();
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let mut latencies = Vec::new();
    rt.block_on(async {
        let first = rx.recv().await.expect("the sync line arrives");
        assert!(first.raw.contains("sync"));
        ready_tx.send(()).unwrap();
        while latencies.len() < EVENTS {
            let event = rx.recv().await.expect("events arrive");
            let received = now_nanos();
            let value: serde_json::Value = serde_json::from_str(&event.raw).unwrap();
            let sent = value["t"].as_u64().unwrap() as u128;
            latencies.push(Duration::from_nanos((received - sent) as u64));
        }
    });
    writer.join().unwrap();
    std::fs::write(agent.join("status"), "0\n").unwrap();
    supervisor.kill().unwrap();
    supervisor.wait().unwrap();
    let end = rt.block_on(follow).unwrap().unwrap();
    assert_eq!(
        end.status,
        Some(codex_remote_core::transport::ExitStatus::Code(0))
    );
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("event latency over {EVENTS} events (host write -> local receipt):");
    println!("| median | p95 | max |");
    println!("|---|---|---|");
    println!(
        "| {:.1} ms | {:.1} ms | {:.1} ms |",
        ms(latencies[EVENTS / 2]),
        ms(latencies[EVENTS * 95 / 100]),
        ms(latencies[EVENTS - 1])
    );
}
