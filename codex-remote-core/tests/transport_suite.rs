//! The behavioural suite against every transport: fake, local, and SSH to a real sshd.

use std::sync::Arc;

use codex_remote_core::config::Config;
use codex_remote_core::transport::local::LocalTransport;
use codex_remote_core::transport::ssh::{MuxMode, ShellMode, SshTransport};
use codex_remote_core::transport::Transport;
use codex_remote_testkit::{suite, FakeTransport, Sshd};

fn assert_absent(markers: &[String]) {
    for marker in markers {
        assert!(
            !std::path::Path::new(marker).exists(),
            "an injection payload created {marker}"
        );
    }
}

#[tokio::test]
async fn fake_transport_passes_the_suite() {
    let t = FakeTransport::default();
    suite::run_all(&t).await;
    assert!(!t.log().is_empty(), "the fake logs commands");
    assert_eq!(
        t.cancelled().len(),
        1,
        "the timeout test cancelled exactly one command"
    );
}

#[tokio::test]
async fn local_transport_passes_the_suite() {
    let t = LocalTransport::new(Config::builtin().host(None).unwrap());
    let markers = suite::run_all(&t).await;
    assert_absent(&markers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_transport_passes_the_suite_with_native_mux() {
    let Some(sshd) = Sshd::start_or_skip() else {
        return;
    };
    let t: Arc<dyn Transport> =
        Arc::new(SshTransport::new(sshd.host_spec(""), sshd.ssh_options()).unwrap());
    let markers = suite::run_all(t.as_ref()).await;
    assert_absent(&markers);
    t.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_transport_passes_the_suite_with_process_mux() {
    let Some(sshd) = Sshd::start_or_skip() else {
        return;
    };
    let mut options = sshd.ssh_options();
    options.mux = MuxMode::Process;
    let t = SshTransport::new(sshd.host_spec(""), options).unwrap();
    let markers = suite::run_all(&t).await;
    assert_absent(&markers);
    t.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_transport_passes_the_suite_with_one_login_shell_per_command() {
    let Some(sshd) = Sshd::start_or_skip() else {
        return;
    };
    let mut options = sshd.ssh_options();
    options.shell = ShellMode::PerCommand;
    let t = SshTransport::new(sshd.host_spec(""), options).unwrap();
    let markers = suite::run_all(&t).await;
    assert_absent(&markers);
    t.close().await.unwrap();
}
