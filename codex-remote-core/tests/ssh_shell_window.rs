//! A hostile host replaces the persistent remote shell (its `perl` on PATH, through the login
//! shell's rc, over a real sshd): the impostor announces itself, then floods a command's stdout
//! with 200 MiB of frames without waiting for a single acknowledgement. The client enforces the
//! 1 MiB window itself: the command fails with a `ShellBroken` error naming the host, with a
//! hint, and the client's peak RSS (VmHWM from /proc/self/status) stays under 64 MiB. Its own
//! test binary, so no other test's allocations count.

use std::os::unix::fs::PermissionsExt;

use codex_remote_core::transport::ssh::{ShellMode, SshTransport};
use codex_remote_core::transport::{CommandSpec, Transport, TransportError};
use codex_remote_testkit::sshd::{ensure_user, SshdOptions};
use codex_remote_testkit::Sshd;

const USER: &str = "codex-remote-flood";

/// Stands in for `perl -e AGENT NONCE`: announces itself with the nonce, reads the first
/// spawn frame and answers it with 3200 stdout frames of 64 KiB, never reading an ack.
const IMPOSTOR: &str = r#"#!/bin/sh
exec /usr/bin/perl -e '
binmode STDIN; binmode STDOUT; $| = 1;
my $nonce = shift;
print "\x1ecodex-remote-shell $nonce\n";
my $buf = "";
while (length($buf) < 9 || length($buf) < 9 + unpack("x5N", $buf)) {
    sysread(STDIN, $buf, 65536, length $buf) or exit 0;
}
my (undef, $id) = unpack("aN", $buf);
my $chunk = "x" x 65536;
my $frame = pack("aNN", "O", $id, length $chunk) . $chunk;
for (1 .. 3200) { print $frame or exit 0 }
' "$3"
"#;

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shell_that_ignores_the_window_is_dropped_with_bounded_memory() {
    if Sshd::start_or_skip().is_none() {
        return;
    }
    let rc = "export PATH=\"$HOME/fakebin:$PATH\"\n";
    if !ensure_user(USER, rc) {
        assert!(
            !codex_remote_testkit::in_ci(),
            "cannot create the test user {USER}: CI runs as root"
        );
        eprintln!("skipping: cannot create the test user {USER} (not root)");
        return;
    }
    let bin = format!("/home/{USER}/fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(format!("{bin}/perl"), IMPOSTOR).unwrap();
    std::fs::set_permissions(
        format!("{bin}/perl"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let sshd = Sshd::start(SshdOptions {
        user: Some(USER.into()),
        source_bashrc: true,
    })
    .expect("sshd starts");
    let mut options = sshd.ssh_options();
    options.shell = ShellMode::Persistent;
    let t = SshTransport::new(sshd.host_spec(""), options).unwrap();

    // Nobody reads the command's output: an honest shell would wait at 1 MiB.
    let mut process = t.spawn(CommandSpec::new("true")).await.unwrap();
    let error = process.wait().await.unwrap_err();
    let TransportError::ShellBroken { host, detail } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(host, "testhost");
    assert!(
        detail.contains("without waiting for their acknowledgement"),
        "{detail}"
    );
    assert!(error.to_string().contains("broke its protocol"), "{error}");
    assert!(error.hint().unwrap().contains("perl"), "{error:?}");
    assert!(!error.is_connection());

    let peak_mib = peak_rss_kib() / 1024;
    eprintln!("peak RSS against a shell offering 200 MiB unacknowledged: {peak_mib} MiB");
    assert!(peak_mib < 64, "peak RSS {peak_mib} MiB is not under 64 MiB");
    // Dropped for good: the impostor's channel is closed, so it ends (it cannot write on), and
    // with the session closed nothing of the user is left running on the host.
    let _ = t.close().await;
    let uid = std::process::Command::new("id")
        .args(["-u", USER])
        .output()
        .unwrap();
    let uid = String::from_utf8(uid.stdout).unwrap().trim().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let left: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
                    status.lines().any(|l| {
                        l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some(uid.as_str())
                    }) && !status
                        .lines()
                        .any(|l| l.starts_with("State:") && l.contains('Z'))
                })
            })
            .map(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                    .unwrap_or_default()
                    .replace('\0', " ")
            })
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running on the host: {left:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
