//! The container transport against a real podman container (PID 1 `sleep infinity`, root,
//! `$HOME` = `/`), and the kubectl backend through a stand-in `kubectl` that checks the argv it
//! is given and runs the command here.

use std::time::Duration;

use codex_remote_core::config::Config;
use codex_remote_core::transport::container::ContainerTransport;
use codex_remote_core::transport::{CommandSpec, Transport, TransportError, TransportExt};
use codex_remote_testkit::podman::Podman;
use codex_remote_testkit::suite;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podman_transport_passes_the_suite() {
    let Some(container) = Podman::start_or_skip(&[]) else {
        return;
    };
    let t = ContainerTransport::new(container.host_spec()).unwrap();
    let markers = suite::run_all(&t).await;
    // The payloads would have run in the container: look for them there.
    let found = container.sh(&format!(
        "for f in {}; do [ -e \"$f\" ] && echo \"$f\"; done; true",
        markers.join(" ")
    ));
    assert!(found.trim().is_empty(), "injection payloads ran: {found}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_ends_the_whole_process_tree_in_the_container() {
    let Some(container) = Podman::start_or_skip(&[]) else {
        return;
    };
    let t = ContainerTransport::new(container.host_spec()).unwrap();
    let mut process = t
        .spawn(CommandSpec::script(
            "sleep 301 & sleep 302 & echo started; wait",
            &[],
        ))
        .await
        .unwrap();
    let mut line = String::new();
    {
        use tokio::io::AsyncBufReadExt;
        let mut out = tokio::io::BufReader::new(&mut process.stdout);
        out.read_line(&mut line).await.unwrap();
    }
    assert_eq!(line, "started\n");
    process.cancel().await.unwrap();
    // PID 1 never reaps: killed children stay as zombies (state Z), which are gone for our
    // purposes; anything still sleeping is a leak.
    let left = container.sh(
        "for p in /proc/[0-9]*; do c=$(cat $p/cmdline 2>/dev/null | tr '\\0' ' '); \
         s=$(awk '{print $3}' $p/stat 2>/dev/null); case \"$c\" in 'sleep 301 '|'sleep 302 ') [ \"$s\" != Z ] && echo \"$c $s\";; esac; done; true",
    );
    assert!(left.trim().is_empty(), "processes left behind: {left}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_end_the_command_in_the_container() {
    let Some(container) = Podman::start_or_skip(&[]) else {
        return;
    };
    let t = ContainerTransport::new(container.host_spec()).unwrap();
    let started = std::time::Instant::now();
    let e = t
        .run(
            CommandSpec::new("sleep")
                .arg("30")
                .timeout(Duration::from_millis(500)),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, TransportError::TimedOut { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn a_missing_container_is_a_connection_error_with_a_fix() {
    if !Podman::available() {
        assert!(!codex_remote_testkit::in_ci(), "CI must install podman");
        return;
    }
    let host = Config::builtin()
        .host(Some("podman://codex-remote-no-such-container"))
        .unwrap();
    let t = ContainerTransport::new(host).unwrap();
    let e = t.run(CommandSpec::new("true")).await.unwrap_err();
    assert!(e.is_connection(), "{e}");
    let text = e.to_string();
    assert!(text.contains("codex-remote-no-such-container"), "{text}");
    let hint = e.hint().unwrap_or_default();
    assert!(hint.contains("podman start"), "{hint}");
}

#[tokio::test]
async fn a_missing_engine_program_is_reported() {
    let host = Config::builtin().host(Some("docker://web")).unwrap();
    let t = ContainerTransport::new(host)
        .unwrap()
        .with_program("/nonexistent/docker");
    let e = t.run(CommandSpec::new("true")).await.unwrap_err();
    assert!(e.is_connection(), "{e}");
    assert!(e.to_string().contains("not installed here"), "{e}");
}

/// A stand-in `kubectl` that accepts exactly `exec -i -n NS POD [-c C] -- sh -c TEXT`, logs its
/// argv (one word per line) and runs the command on this machine.
fn fake_kubectl(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("kubectl");
    std::fs::write(
        &path,
        r#"#!/bin/sh
log="$(dirname "$0")/argv.log"
for a in "$@"; do printf '%s\n' "$a" >> "$log"; done
printf '%s\n' ---- >> "$log"
[ "$1" = exec ] && [ "$2" = -i ] && [ "$3" = -n ] || { echo "bad kubectl argv: $*" >&2; exit 1; }
shift 5
if [ "$1" = -c ]; then shift 2; fi
[ "$1" = -- ] || { echo "no -- before the command" >&2; exit 1; }
shift
exec "$@"
"#,
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test]
async fn kubectl_backend_passes_the_suite_through_its_argv() {
    let dir = tempfile::tempdir().unwrap();
    let kubectl = fake_kubectl(dir.path());
    let host = Config::builtin()
        .host(Some("k8s://team-a/agent-0/main"))
        .unwrap();
    let t = ContainerTransport::new(host)
        .unwrap()
        .with_program(kubectl.display().to_string());
    let markers = suite::run_all(&t).await;
    for marker in &markers {
        assert!(!std::path::Path::new(marker).exists(), "{marker}");
    }
    let log = std::fs::read_to_string(dir.path().join("argv.log")).unwrap();
    let first: Vec<&str> = log.split("----\n").next().unwrap().lines().collect();
    assert_eq!(
        first[..9],
        ["exec", "-i", "-n", "team-a", "agent-0", "-c", "main", "--", "sh"],
        "{log}"
    );
    assert!(
        !log.contains("touch /tmp/pwned"),
        "hostile arguments travel on stdin, never in kubectl's argv"
    );
}

#[test]
fn container_hosts_resolve_from_urls_and_config() {
    use codex_remote_core::host::{ContainerEngine, HostKind};
    let config = Config::builtin();
    for (url, engine, target) in [
        ("podman://web", ContainerEngine::Podman, "web"),
        (
            "docker://ci-runner_1",
            ContainerEngine::Docker,
            "ci-runner_1",
        ),
        ("k8s://ns/pod", ContainerEngine::Kubernetes, "ns/pod"),
        ("k8s://ns/pod/c", ContainerEngine::Kubernetes, "ns/pod/c"),
    ] {
        let host = config.host(Some(url)).unwrap();
        assert_eq!(
            host.kind,
            HostKind::Container {
                engine,
                target: target.into()
            },
            "{url}"
        );
    }
    for bad in [
        "podman://-it",
        "podman://a/b",
        "docker://",
        "k8s://ns",
        "k8s://ns/pod/c/d",
        "k8s://ns/--all/c",
        "podman://a b",
    ] {
        let e = config.host(Some(bad)).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("host"), "{bad}: {e}");
    }
    let file = codex_remote_core::config::ConfigFile::parse(
        "[hosts.box]\npodman = \"dev\"\nworkspace = \"/work\"\n[hosts.pod]\nkubernetes = \"ns/p\"\n",
        "c.toml",
    )
    .unwrap();
    let config = Config::from_files([file]).unwrap();
    assert_eq!(
        config.host(Some("box")).unwrap().kind,
        HostKind::Container {
            engine: ContainerEngine::Podman,
            target: "dev".into()
        }
    );
    let e =
        codex_remote_core::config::ConfigFile::parse("[hosts.box]\ndocker = \"-v\"\n", "c.toml")
            .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("hosts.box.docker"), "{e}");
    let both = codex_remote_core::config::ConfigFile::parse(
        "[hosts.box]\nssh = \"box\"\npodman = \"dev\"\n",
        "c.toml",
    )
    .unwrap();
    let e = Config::from_files([both]).unwrap_err();
    assert!(e.message.contains("more than one way"), "{e}");
}
