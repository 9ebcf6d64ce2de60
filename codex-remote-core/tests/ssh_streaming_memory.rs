//! A remote command printing 200 MiB is streamed with bounded memory: the client's peak RSS
//! (VmHWM from /proc/self/status) stays under 64 MiB. Its own test binary, so no other test's
//! allocations count.

use codex_remote_core::transport::ssh::SshTransport;
use codex_remote_core::transport::{Chunking, CommandSpec, StreamKind, Transport};
use codex_remote_testkit::Sshd;

const TOTAL: u64 = 200 * 1024 * 1024;

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_mebibytes_stream_in_bounded_memory() {
    let Some(sshd) = Sshd::start_or_skip() else {
        return;
    };
    let t = SshTransport::new(sshd.host_spec(""), sshd.ssh_options()).unwrap();
    let process = t
        .spawn(CommandSpec::new("head").args(["-c", &TOTAL.to_string(), "/dev/zero"]))
        .await
        .unwrap();
    let (mut chunks, status) = process.stream(Chunking::Bytes);
    let mut received = 0u64;
    while let Some(chunk) = chunks.recv().await {
        assert_eq!(chunk.stream, StreamKind::Stdout);
        assert!(chunk.data.iter().all(|b| *b == 0));
        received += chunk.data.len() as u64;
    }
    assert!(status.await.unwrap().unwrap().success());
    assert_eq!(received, TOTAL);
    let peak_mib = peak_rss_kib() / 1024;
    eprintln!("peak RSS while streaming 200 MiB: {peak_mib} MiB");
    assert!(peak_mib < 64, "peak RSS {peak_mib} MiB is not under 64 MiB");
}
