//! A hostile host replaces the persistent remote shell (its `perl` on PATH, through the login
//! shell's rc, over a real sshd): the impostor announces itself, then floods a command's stdout
//! with 200 MiB of frames without waiting for a single acknowledgement, or with millions of
//! empty frames, or of one-byte frames. The client enforces the 1 MiB window itself (each frame
//! counted with its cost on top of its payload, an empty one refused): the command fails with a
//! `ShellBroken` error naming the host, with a hint, and the client's peak RSS (VmHWM from
//! /proc/self/status) stays under 64 MiB. Its own test binary, so no other test's allocations
//! count.

use std::os::unix::fs::PermissionsExt;

use tokio::io::AsyncReadExt;

use codex_remote_core::transport::ssh::{ShellMode, SshTransport};
use codex_remote_core::transport::{CommandSpec, Transport, TransportError};
use codex_remote_testkit::sshd::{ensure_user, SshdOptions};
use codex_remote_testkit::Sshd;

const USER: &str = "codex-remote-flood";
const EMPTY_USER: &str = "codex-remote-empty";
const TINY_USER: &str = "codex-remote-tiny";

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

/// Stands in for `perl -e AGENT NONCE`: announces itself, reads the first spawn frame and, by
/// the command it asks for, answers with one stdout frame and then 7 million empty ones (63 MB,
/// while a child of it reads every acknowledgement), or with 4.2 million one-byte frames on
/// stdout and stderr (42 MB) while reading nothing; then exits the command with status 0.
const TINY_IMPOSTOR: &str = r#"#!/bin/sh
exec /usr/bin/perl -e '
binmode STDIN; binmode STDOUT; $| = 1;
my $nonce = shift;
print "codex-remote-shell $nonce
";
my $buf = "";
while (length($buf) < 9 || length($buf) < 9 + unpack("x5N", $buf)) {
    sysread(STDIN, $buf, 65536, length $buf) or exit 0;
}
my (undef, $id, $len) = unpack("aNN", $buf);
my $block;
if (substr($buf, 9, $len) =~ /empty-frames/) {
    if (!fork) { close STDOUT; 1 while sysread(STDIN, my $d, 65536); exit 0 }
    print pack("aNN", "O", $id, 2) . "hi" or exit 0;
    $block = pack("aNN", "O", $id, 0) x 7000;
} else {
    $block = (pack("aNN", "O", $id, 1) . "x" . pack("aNN", "R", $id, 1) . "y") x 3000;
}
for (1 .. 700) { print $block or exit 0 }
print pack("aNN", "X", $id, 3) . "c 0";
sleep 5;
' "$3"
"#;

/// Runs `user`'s login shell with `impostor` as its `perl`, over a real sshd.
fn hostile_host(user: &str, impostor: &str) -> Option<(Sshd, SshTransport)> {
    Sshd::start_or_skip()?;
    let rc = "export PATH=\"$HOME/fakebin:$PATH\"\n";
    if !ensure_user(user, rc) {
        assert!(
            !codex_remote_testkit::in_ci(),
            "cannot create the test user {user}: CI runs as root"
        );
        eprintln!("skipping: cannot create the test user {user} (not root)");
        return None;
    }
    let bin = format!("/home/{user}/fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(format!("{bin}/perl"), impostor).unwrap();
    std::fs::set_permissions(
        format!("{bin}/perl"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let sshd = Sshd::start(SshdOptions {
        user: Some(user.into()),
        source_bashrc: true,
    })
    .expect("sshd starts");
    let mut options = sshd.ssh_options();
    options.shell = ShellMode::Persistent;
    let t = SshTransport::new(sshd.host_spec(""), options).unwrap();
    Some((sshd, t))
}

fn assert_broken(error: &TransportError, why: &str) {
    let TransportError::ShellBroken { host, detail } = error else {
        panic!("{error:?}")
    };
    assert_eq!(host, "testhost");
    assert!(detail.contains(why), "{detail}");
    assert!(error.to_string().contains("broke its protocol"), "{error}");
    assert!(error.hint().unwrap().contains("perl"), "{error:?}");
    assert!(!error.is_connection());
}

fn assert_peak_rss_under_64_mib(against: &str) {
    let peak_mib = peak_rss_kib() / 1024;
    eprintln!("peak RSS against a shell sending {against}: {peak_mib} MiB");
    assert!(peak_mib < 64, "peak RSS {peak_mib} MiB is not under 64 MiB");
}

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
    let Some((_sshd, t)) = hostile_host(USER, IMPOSTOR) else {
        return;
    };

    // Nobody reads the command's output: an honest shell would wait at 1 MiB.
    let mut process = t.spawn(CommandSpec::new("true")).await.unwrap();
    let error = process.wait().await.unwrap_err();
    assert_broken(&error, "without waiting for their acknowledgement");
    assert_peak_rss_under_64_mib("200 MiB unacknowledged");
    // Dropped for good: the impostor's channel is closed, so it ends (it cannot write on), and
    // with the session closed nothing of the user is left running on the host.
    let _ = t.close().await;
    assert_nothing_left_of(USER).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_frames_are_refused_with_bounded_memory() {
    let Some((_sshd, t)) = hostile_host(EMPTY_USER, TINY_IMPOSTOR) else {
        return;
    };
    // Empty frames count nothing against the window: the first one drops the shell, though it
    // reads every acknowledgement and ends the command with status 0. The output before it was
    // delivered.
    let mut process = t
        .spawn(CommandSpec::new("echo").arg("empty-frames"))
        .await
        .unwrap();
    let mut stdout = std::mem::replace(&mut process.stdout, Box::new(tokio::io::empty()));
    let mut out = Vec::new();
    stdout.read_to_end(&mut out).await.unwrap();
    assert_eq!(out, b"hi");
    let error = process.wait().await.unwrap_err();
    assert_broken(&error, "it sent an empty stdout frame");
    assert_peak_rss_under_64_mib("7 million empty frames");
    let _ = t.close().await;
    assert_nothing_left_of(EMPTY_USER).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_byte_frames_are_refused_with_bounded_memory() {
    // One-byte frames, nobody reading: each costs its byte and the frame's cost, so the shell is
    // dropped after about 8000 of them per stream, with as little held.
    let Some((_sshd, t)) = hostile_host(TINY_USER, TINY_IMPOSTOR) else {
        return;
    };
    let mut process = t
        .spawn(CommandSpec::new("echo").arg("one-byte-frames"))
        .await
        .unwrap();
    let error = process.wait().await.unwrap_err();
    assert_broken(&error, "without waiting for their acknowledgement");
    assert_peak_rss_under_64_mib("4.2 million one-byte frames");
    let _ = t.close().await;
    assert_nothing_left_of(TINY_USER).await;
}

/// Waits (up to 30 s) until no process of `user` is left running on the host.
async fn assert_nothing_left_of(user: &str) {
    let uid = std::process::Command::new("id")
        .args(["-u", user])
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
