//! Hosts made on demand: `[hosts.NAME]` with `engine`, `image` and `run_args`. Each run gets a
//! fresh container (or pod) of its own, started before the push, recorded in the run record
//! ([`RunContainer`]) so that `attach`, `pull` and `cancel` reach it, and removed once the run's
//! result is retrieved (kept with `--keep`, and by detached runs until they are retrieved).
//!
//! The container's PID 1 is `sleep infinity`: it keeps the container up between the engine
//! `exec`s that carry every command, and it never reaps orphans (the executor does not need it
//! to). Every container carries the labels [`LABEL_RUN`], [`LABEL_HOST`] and [`LABEL_PROJECT`],
//! so that what a run started can always be found with the engine's own tools.

use std::process::Stdio;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::host::{ContainerEngine, HostKind, HostSpec, OnDemand};
use crate::runs::{RunRecord, RunStore};
use crate::transport::{CommandSpec, RemoteProcess, SharedTransport, Transport, TransportError};

/// Label naming the run a container belongs to.
pub const LABEL_RUN: &str = "codex-remote.run";
/// Label naming the configured host that made the container.
pub const LABEL_HOST: &str = "codex-remote.host";
/// Label naming the project whose run it serves.
pub const LABEL_PROJECT: &str = "codex-remote.project";

/// How long `kubectl wait` waits for a pod to be ready.
const POD_READY_TIMEOUT: &str = "300s";

/// A run's own container (or pod), as recorded in its run record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunContainer {
    /// The engine that started it.
    pub engine: ContainerEngine,
    /// The container's name, or `NAMESPACE/POD` for Kubernetes.
    pub target: String,
    /// Whether it was removed.
    #[serde(default)]
    pub removed: bool,
}

/// The container (or pod) name of a run: `cr-` and the run id, lower-cased, with every
/// character other than letters, digits and `-` made a `-`, and at most 63 characters (the
/// id's end, which holds its time and random part, is kept).
///
/// ```
/// use codex_remote_core::ondemand::container_name;
/// assert_eq!(container_name("Fix_It-20260101-120000-ab12"), "cr-fix-it-20260101-120000-ab12");
/// assert!(container_name(&"x".repeat(100)).len() <= 63);
/// ```
pub fn container_name(run_id: &str) -> String {
    let clean: String = run_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let tail_start = clean.len().saturating_sub(60);
    let tail = clean[tail_start..].trim_matches('-');
    format!("cr-{tail}")
}

/// A label value every engine accepts (Kubernetes is the strictest: at most 63 of letters,
/// digits, `-`, `_`, `.`, starting and ending with a letter or digit).
pub fn label_value(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    clean
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// The commands that start a run's container, in order: `podman run -d …` / `docker run -d …`,
/// or `kubectl run …` then `kubectl wait … --for=condition=Ready`. `labels` are `(key, value)`.
///
/// ```
/// use codex_remote_core::host::{ContainerEngine, OnDemand};
/// use codex_remote_core::ondemand::start_argvs;
/// let spec = OnDemand {
///     engine: ContainerEngine::Podman,
///     image: "node:20".into(),
///     run_args: vec!["--network".into(), "host".into()],
///     pod_overlay: None,
///     namespace: "default".into(),
/// };
/// assert_eq!(
///     start_argvs(&spec, "cr-t-1", &[("codex-remote.run", "t-1")]),
///     [["podman", "run", "-d", "--name", "cr-t-1", "--label", "codex-remote.run=t-1",
///       "--network", "host", "node:20", "sleep", "infinity"]]
/// );
/// ```
pub fn start_argvs(spec: &OnDemand, name: &str, labels: &[(&str, &str)]) -> Vec<Vec<String>> {
    let program = spec.engine.program().to_string();
    match spec.engine {
        ContainerEngine::Podman | ContainerEngine::Docker => {
            let mut argv = vec![
                program,
                "run".into(),
                "-d".into(),
                "--name".into(),
                name.into(),
            ];
            for (key, value) in labels {
                argv.push("--label".into());
                argv.push(format!("{key}={value}"));
            }
            argv.extend(spec.run_args.iter().cloned());
            // The image ends the options: nothing after it is read as one.
            argv.extend([spec.image.clone(), "sleep".into(), "infinity".into()]);
            vec![argv]
        }
        ContainerEngine::Kubernetes => {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let mut run = vec![
                program.clone(),
                "run".into(),
                name.into(),
                "-n".into(),
                spec.namespace.clone(),
                format!("--image={}", spec.image),
                "--restart=Never".into(),
                format!("--labels={}", labels.join(",")),
            ];
            if let Some(overlay) = &spec.pod_overlay {
                run.push(format!("--overrides={}", with_api_version(overlay)));
            }
            run.extend([
                "--command".into(),
                "--".into(),
                "sleep".into(),
                "infinity".into(),
            ]);
            let wait = vec![
                program,
                "wait".into(),
                "-n".into(),
                spec.namespace.clone(),
                "--for=condition=Ready".into(),
                format!("--timeout={POD_READY_TIMEOUT}"),
                format!("pod/{name}"),
            ];
            vec![run, wait]
        }
    }
}

/// `kubectl run --overrides` needs the overlay to name its `apiVersion`.
fn with_api_version(overlay: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(overlay) {
        Ok(serde_json::Value::Object(mut map)) => {
            map.entry("apiVersion").or_insert_with(|| "v1".into());
            serde_json::Value::Object(map).to_string()
        }
        _ => overlay.to_string(),
    }
}

/// The command that removes a run's container at once (its processes killed, not asked).
///
/// ```
/// use codex_remote_core::host::ContainerEngine;
/// use codex_remote_core::ondemand::remove_argv;
/// assert_eq!(remove_argv(ContainerEngine::Podman, "cr-1"), ["podman", "rm", "-f", "-t", "0", "cr-1"]);
/// assert_eq!(
///     remove_argv(ContainerEngine::Kubernetes, "team/cr-1"),
///     ["kubectl", "delete", "pod", "-n", "team", "cr-1", "--ignore-not-found", "--grace-period=0", "--force"]
/// );
/// ```
pub fn remove_argv(engine: ContainerEngine, target: &str) -> Vec<String> {
    let program = engine.program().to_string();
    match engine {
        ContainerEngine::Podman => {
            vec![
                program,
                "rm".into(),
                "-f".into(),
                "-t".into(),
                "0".into(),
                target.into(),
            ]
        }
        ContainerEngine::Docker => vec![program, "rm".into(), "-f".into(), target.into()],
        ContainerEngine::Kubernetes => {
            let (namespace, pod) = target.split_once('/').unwrap_or(("default", target));
            vec![
                program,
                "delete".into(),
                "pod".into(),
                "-n".into(),
                namespace.into(),
                pod.into(),
                "--ignore-not-found".into(),
                "--grace-period=0".into(),
                "--force".into(),
            ]
        }
    }
}

/// Runs an engine command here; its stdout on success, else what it said.
pub(crate) async fn engine_command(argv: &[String]) -> Result<String, String> {
    let output = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("`{}` could not be run: {e}", argv[0]))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr: String = stderr.trim().chars().take(4096).collect();
        Err(format!("`{} {}` failed: {stderr}", argv[0], argv[1]))
    }
}

fn unavailable(host: &HostSpec, detail: String, hint: String) -> Error {
    TransportError::ContainerUnavailable {
        host: host.name.clone(),
        detail,
        hint,
    }
    .into()
}

/// The on-demand settings of a host, when it is made on demand.
pub fn spec_of(host: &HostSpec) -> Option<&OnDemand> {
    match &host.kind {
        HostKind::OnDemand(spec) => Some(spec),
        _ => None,
    }
}

/// Starts the container of run `run_id` of `project` on the on-demand `host`.
pub async fn start(host: &HostSpec, run_id: &str, project: &str) -> Result<RunContainer, Error> {
    let spec = spec_of(host).ok_or_else(|| {
        unavailable(
            host,
            "the host is not made on demand".into(),
            "give it `engine` and `image`".into(),
        )
    })?;
    let name = container_name(run_id);
    let labels = [
        (LABEL_RUN, label_value(run_id)),
        (LABEL_HOST, label_value(&host.name)),
        (LABEL_PROJECT, label_value(project)),
    ];
    let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let container = RunContainer {
        engine: spec.engine,
        target: match spec.engine {
            ContainerEngine::Kubernetes => format!("{}/{name}", spec.namespace),
            _ => name.clone(),
        },
        removed: false,
    };
    for argv in start_argvs(spec, &name, &labels) {
        if let Err(detail) = engine_command(&argv).await {
            // Whatever half-started goes.
            let _ = remove(&container).await;
            return Err(unavailable(
                host,
                format!("starting a container from `{}`: {detail}", spec.image),
                format!(
                    "check the engine and the image with `codex-remote doctor --host {}`",
                    host.name
                ),
            ));
        }
    }
    Ok(container)
}

/// Removes a run's container (a container already gone counts as removed). A target that is
/// not a plain name (a record edited to name `--all`, say) is refused, not run.
pub async fn remove(container: &RunContainer) -> Result<(), Error> {
    if let Err(detail) = container.engine.check_target(&container.target) {
        return Err(TransportError::ContainerUnavailable {
            host: container.target.escape_debug().to_string(),
            detail: format!("the run record names no container of ours: {detail}"),
            hint: "leave the run records under .codex-remote/runs as codex-remote writes them"
                .into(),
        }
        .into());
    }
    match engine_command(&remove_argv(container.engine, &container.target)).await {
        Ok(_) => Ok(()),
        Err(detail)
            if detail.contains("no such container") || detail.contains("No such container") =>
        {
            Ok(())
        }
        Err(detail) => Err(TransportError::ContainerUnavailable {
            host: container.target.clone(),
            detail: format!("removing the run's container: {detail}"),
            hint: format!(
                "remove it by hand: `{}`",
                remove_argv(container.engine, &container.target).join(" ")
            ),
        }
        .into()),
    }
}

/// The host a run's container is reached as: the on-demand host's settings (workspace, shell
/// init, env, codex), reached through the engine's `exec` into the container.
pub fn container_host(host: &HostSpec, container: &RunContainer) -> HostSpec {
    HostSpec {
        kind: HostKind::Container {
            engine: container.engine,
            target: container.target.clone(),
        },
        ..host.clone()
    }
}

/// The transport that reaches a run: its own container when the run has one, else `transport`.
pub fn for_run(record: &RunRecord, transport: SharedTransport) -> Result<SharedTransport, Error> {
    let Some(container) = &record.container else {
        return Ok(transport);
    };
    if matches!(transport.host().kind, HostKind::Container { .. }) {
        return Ok(transport);
    }
    if container.removed {
        return Err(unavailable(
            transport.host(),
            format!(
                "run `{}` was made on demand, and its container `{}` was removed",
                record.id, container.target
            ),
            "its recorded result stays: `codex-remote diff RUN`; `--keep` keeps a run's container"
                .into(),
        ));
    }
    let host = container_host(transport.host(), container);
    Ok(Arc::new(
        crate::transport::container::ContainerTransport::new(host)?,
    ))
}

/// Removes the run's container, if it has one still there, and records it (its tree went
/// with it).
pub async fn release(store: &RunStore, record: &mut RunRecord) -> Result<(), Error> {
    let Some(container) = record.container.as_mut().filter(|c| !c.removed) else {
        return Ok(());
    };
    // Only the container this run's id names: a record planted or edited to name another
    // container (`postgres`) never has it removed.
    let ours = container_name(&record.id);
    let named = container.target.rsplit('/').next().unwrap_or_default();
    if named != ours {
        return Err(TransportError::ContainerUnavailable {
            host: container.target.escape_debug().to_string(),
            detail: format!(
                "the run record of `{}` names a container that is not its own (`{ours}`)",
                record.id
            ),
            hint: "leave the run records under .codex-remote/runs as codex-remote writes them"
                .into(),
        }
        .into());
    }
    remove(container).await?;
    container.removed = true;
    record.remote_removed = true;
    record.updated_at = crate::runs::now();
    store.save(record)?;
    Ok(())
}

/// Stands for an on-demand host where a transport is asked for before a run has its
/// container: it runs nothing, and says why.
#[derive(Debug)]
pub struct OnDemandHost {
    host: HostSpec,
}

impl OnDemandHost {
    /// The stand-in for this on-demand host.
    pub fn new(host: HostSpec) -> Self {
        Self { host }
    }
}

#[async_trait]
impl Transport for OnDemandHost {
    fn host(&self) -> &HostSpec {
        &self.host
    }

    async fn spawn(&self, _spec: CommandSpec) -> Result<RemoteProcess, TransportError> {
        Err(TransportError::ContainerUnavailable {
            host: self.host.name.clone(),
            detail: "the host is made on demand: only a run has a container to run commands in"
                .into(),
            hint: "run a task on it (each run starts its own container), or reach a running container with `--host podman://NAME`".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(engine: ContainerEngine) -> OnDemand {
        OnDemand {
            engine,
            image: "ghcr.io/acme/agent:1".into(),
            run_args: Vec::new(),
            pod_overlay: Some(r#"{"spec":{"nodeSelector":{"gpu":"yes"}}}"#.into()),
            namespace: "team".into(),
        }
    }

    #[test]
    fn kubernetes_pods_are_run_with_the_overlay_then_awaited() {
        let argvs = start_argvs(
            &spec(ContainerEngine::Kubernetes),
            "cr-t-1",
            &[(LABEL_RUN, "t-1"), (LABEL_HOST, "k")],
        );
        assert_eq!(
            argvs,
            [
                vec![
                    "kubectl",
                    "run",
                    "cr-t-1",
                    "-n",
                    "team",
                    "--image=ghcr.io/acme/agent:1",
                    "--restart=Never",
                    "--labels=codex-remote.run=t-1,codex-remote.host=k",
                    r#"--overrides={"spec":{"nodeSelector":{"gpu":"yes"}},"apiVersion":"v1"}"#,
                    "--command",
                    "--",
                    "sleep",
                    "infinity"
                ],
                vec![
                    "kubectl",
                    "wait",
                    "-n",
                    "team",
                    "--for=condition=Ready",
                    "--timeout=300s",
                    "pod/cr-t-1"
                ]
            ]
        );
        assert_eq!(
            remove_argv(ContainerEngine::Kubernetes, "team/cr-t-1")[..6],
            ["kubectl", "delete", "pod", "-n", "team", "cr-t-1"]
        );
    }

    #[test]
    fn docker_runs_the_image_after_the_user_arguments() {
        let mut spec = spec(ContainerEngine::Docker);
        spec.run_args = vec!["--cpus".into(), "2".into()];
        let argv = &start_argvs(&spec, "cr-x", &[(LABEL_RUN, "x")])[0];
        assert_eq!(argv[..3], ["docker", "run", "-d"]);
        let image = argv
            .iter()
            .position(|a| a == "ghcr.io/acme/agent:1")
            .unwrap();
        assert_eq!(argv[image - 2..image], ["--cpus", "2"]);
        assert_eq!(argv[image + 1..], ["sleep", "infinity"]);
        assert_eq!(
            remove_argv(ContainerEngine::Docker, "cr-x"),
            ["docker", "rm", "-f", "cr-x"]
        );
    }

    #[tokio::test]
    async fn a_record_naming_another_container_never_has_it_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = RunStore::new(dir.path());
        let mut record: RunRecord = serde_json::from_value(serde_json::json!({
            "id": "t-20260101-000000-abcd", "task_id": "t", "host": "h", "project": "p",
            "remote_mirror": "/x", "tree": null, "phase": "completed",
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            "remote_removed": false,
            "container": {"engine": "docker", "target": "postgres", "removed": false}
        }))
        .unwrap();
        let e = release(&store, &mut record).await.unwrap_err();
        assert!(e.to_string().contains("not its own"), "{e}");
        assert!(!record.container.as_ref().unwrap().removed);
    }

    #[tokio::test]
    async fn a_record_naming_an_option_removes_nothing() {
        // `podman rm -f -t 0 --all` would remove every container: refused before running.
        for target in ["--all", "-a", "x y", "team/--all"] {
            let container = RunContainer {
                engine: if target.contains('/') {
                    ContainerEngine::Kubernetes
                } else {
                    ContainerEngine::Podman
                },
                target: target.into(),
                removed: false,
            };
            let e = remove(&container).await.unwrap_err();
            assert!(e.to_string().contains("names no container of ours"), "{e}");
        }
    }

    #[test]
    fn hostile_names_make_plain_container_names_and_labels() {
        assert_eq!(container_name("--rm;x"), "cr-rm-x");
        assert_eq!(label_value("-a b/c-"), "a-b-c");
        assert_eq!(label_value(&"y".repeat(80)).len(), 63);
    }
}
