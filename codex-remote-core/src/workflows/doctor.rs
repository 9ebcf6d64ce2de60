//! `doctor`: the usual reasons a run fails, checked one by one, each with its fix.

use std::time::Instant;

use serde::Serialize;

use crate::host::{HostKeyPolicy, HostKind};
use crate::prerequisites::{probe, CodexAuth, PrerequisiteCache, Prerequisites};
use crate::transport::{CommandSpec, Transport, TransportExt};

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// It passed.
    Pass,
    /// It failed; the check's `fix` says what to do.
    Fail,
    /// It was not run: a check it depends on failed (`codex authenticated` without `codex`).
    Skipped,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// Whether it passed (false when it failed or was skipped).
    pub ok: bool,
    /// Passed, failed, or skipped.
    pub status: CheckStatus,
    /// How long it took, in milliseconds.
    pub millis: u64,
    /// What was found.
    pub detail: String,
    /// How to fix a failure.
    pub fix: Option<String>,
}

/// Free space below which the workspace check fails.
const MIN_FREE_KIB: u64 = 1024 * 1024;

fn check(
    name: &'static str,
    started: Instant,
    ok: bool,
    detail: impl Into<String>,
    fix: Option<String>,
) -> Check {
    Check {
        name,
        ok,
        status: if ok {
            CheckStatus::Pass
        } else {
            CheckStatus::Fail
        },
        millis: started.elapsed().as_millis() as u64,
        detail: detail.into(),
        fix: if ok { None } else { fix },
    }
}

/// A check that was not run because `after` failed.
fn skipped(name: &'static str, after: &str) -> Check {
    Check {
        name,
        ok: false,
        status: CheckStatus::Skipped,
        millis: 0,
        detail: format!("skipped: {after}"),
        fix: None,
    }
}

/// Runs every check against the host. Stops after a failed connection (nothing else can pass).
pub async fn diagnose(transport: &dyn Transport) -> Vec<Check> {
    diagnose_learning(transport, &mut None).await
}

/// [`diagnose`], and remembers what it learned about the agent's prerequisites in `cache` (or
/// forgets what was remembered, when they are not met), so the next run need not ask again.
pub async fn diagnose_and_remember(
    transport: &dyn Transport,
    cache: &PrerequisiteCache,
) -> Vec<Check> {
    let mut learned = None;
    let checks = diagnose_learning(transport, &mut learned).await;
    let host = transport.host();
    match learned {
        Some(prerequisites) => cache.remember(host, &prerequisites),
        None => cache.forget(host),
    }
    checks
}

/// The checks of a host made on demand: its engine and image here, then every usual check in a
/// container started for the purpose (and removed after). Remembers what it learns in `cache`.
pub async fn diagnose_on_demand(
    host: &crate::host::HostSpec,
    cache: &PrerequisiteCache,
) -> Vec<Check> {
    use crate::host::ContainerEngine;
    use crate::ondemand::engine_command;
    let Some(spec) = crate::ondemand::spec_of(host) else {
        return Vec::new();
    };
    let program = spec.engine.program();
    let mut checks = Vec::new();
    let started = Instant::now();
    let version: Vec<String> = match spec.engine {
        ContainerEngine::Kubernetes => vec![program.into(), "version".into(), "--client".into()],
        _ => vec![program.into(), "version".into()],
    };
    match engine_command(&version).await {
        Ok(_) => checks.push(check(
            "engine available",
            started,
            true,
            format!("`{program}` runs"),
            None,
        )),
        Err(detail) => {
            checks.push(check(
                "engine available",
                started,
                false,
                detail,
                Some(format!(
                    "install {program} on this machine, or set `engine` under [hosts.{}]",
                    host.name
                )),
            ));
            return checks;
        }
    }
    let started = Instant::now();
    let image = spec.image.clone();
    let exists: Option<Vec<String>> = match spec.engine {
        ContainerEngine::Podman => Some(vec![
            program.into(),
            "image".into(),
            "exists".into(),
            image.clone(),
        ]),
        ContainerEngine::Docker => Some(vec![
            program.into(),
            "image".into(),
            "inspect".into(),
            "--format".into(),
            "{{.Id}}".into(),
            image.clone(),
        ]),
        ContainerEngine::Kubernetes => None,
    };
    match exists {
        None => checks.push(check(
            "image available",
            started,
            true,
            format!("`{image}` is pulled by the cluster when a pod starts (checked by starting one below)"),
            None,
        )),
        Some(argv) => match engine_command(&argv).await {
            Ok(_) => checks.push(check("image available", started, true, format!("`{image}` is here"), None)),
            Err(detail) => {
                checks.push(check(
                    "image available",
                    started,
                    false,
                    format!("`{image}` is not here: {detail}"),
                    Some(format!("`{program} pull {image}` (or build it), or fix `image` under [hosts.{}]", host.name)),
                ));
                return checks;
            }
        },
    }
    let started = Instant::now();
    let probe_id = format!("doctor-{:04x}", rand::random::<u16>());
    let container = match crate::ondemand::start(host, &probe_id, "doctor").await {
        Ok(container) => {
            checks.push(check(
                "container starts",
                started,
                true,
                format!("started `{}` for the checks below", container.target),
                None,
            ));
            container
        }
        Err(e) => {
            checks.push(check(
                "container starts",
                started,
                false,
                e.to_string(),
                Some(format!(
                    "check `run_args` under [hosts.{}]; the image needs `sh` and `sleep`",
                    host.name
                )),
            ));
            return checks;
        }
    };
    let inside = crate::ondemand::container_host(host, &container);
    match crate::transport::container::ContainerTransport::new(inside) {
        Ok(transport) => checks.extend(diagnose_and_remember(&transport, cache).await),
        Err(e) => checks.push(check(
            "host reachable",
            Instant::now(),
            false,
            e.to_string(),
            None,
        )),
    }
    let started = Instant::now();
    match crate::ondemand::remove(&container).await {
        Ok(()) => checks.push(check(
            "container removed",
            started,
            true,
            format!("`{}` is gone", container.target),
            None,
        )),
        Err(e) => checks.push(check(
            "container removed",
            started,
            false,
            e.to_string(),
            None,
        )),
    }
    checks
}

async fn diagnose_learning(
    transport: &dyn Transport,
    learned: &mut Option<Prerequisites>,
) -> Vec<Check> {
    let host = transport.host().clone();
    let name = host.name.clone();
    let mut checks = Vec::new();

    let started = Instant::now();
    // The first check names how the host is reached, and its fix is a command to try.
    let (reachable, try_it) = match &host.kind {
        HostKind::Ssh { .. } => ("ssh reachable", format!("try `ssh {name} true`")),
        HostKind::Container { engine, target }
        | HostKind::OnDemand(crate::host::OnDemand {
            engine,
            image: target,
            ..
        }) => (
            "host reachable",
            format!(
                "check that `{}` runs here and that `{target}` exists (e.g. `{} ps`)",
                engine.key(),
                engine.key()
            ),
        ),
        HostKind::Local => (
            "host reachable",
            "check that `sh` runs on this machine".to_string(),
        ),
    };
    match transport.ping().await {
        Ok(rtt) => checks.push(check(
            reachable,
            started,
            true,
            format!("round trip {} ms", rtt.as_millis()),
            None,
        )),
        Err(e) => {
            checks.push(check(
                reachable,
                started,
                false,
                e.to_string(),
                Some(try_it),
            ));
            return checks;
        }
    }
    let started = Instant::now();
    let key_detail = if host.is_local() {
        "this machine".to_string()
    } else {
        match host.host_key_policy {
            HostKeyPolicy::Strict => "verified against known_hosts (strict)".to_string(),
            HostKeyPolicy::AcceptNew => {
                "known, or accepted on first use (accept_new_host_keys)".to_string()
            }
        }
    };
    checks.push(check("host key known", started, true, key_detail, None));

    let started = Instant::now();
    let init = host.shell_init.clone().unwrap_or_default();
    match transport.run(CommandSpec::new("true").with_shell_init()).await {
        Ok(out) if out.status.success() => {
            let detail = if init.is_empty() { "no shell_init configured".to_string() } else { format!("`{init}` ran cleanly") };
            checks.push(check("shell init works", started, true, detail, None));
        }
        Ok(out) => checks.push(check(
            "shell init works",
            started,
            false,
            format!("`{init}` failed ({}): {}", out.status, out.stderr_text().trim()),
            Some(format!("fix `shell_init` under [hosts.{name}]; it runs before codex (e.g. `source ~/.config/nvm/nvm.sh`)")),
        )),
        Err(e) => checks.push(check("shell init works", started, false, e.to_string(), None)),
    }

    let started = Instant::now();
    match probe(transport).await {
        Ok(report) => {
            let (found, authenticated) = report.checks(&host);
            checks.push(check(
                "codex found",
                started,
                found.is_ok(),
                found
                    .as_ref()
                    .map_or_else(|p| p.detail.clone(), Clone::clone),
                found.as_ref().err().map(|p| p.fix.clone()),
            ));
            if found.is_err() {
                checks.push(skipped("codex authenticated", "codex not found"));
            } else {
                checks.push(check(
                    "codex authenticated",
                    started,
                    authenticated.is_ok(),
                    authenticated
                        .as_ref()
                        .map_or_else(|p| p.detail.clone(), CodexAuth::describe),
                    authenticated.as_ref().err().map(|p| p.fix.clone()),
                ));
            }
            *learned = report.prerequisites(&host).ok();
        }
        Err(e) => {
            checks.push(check("codex found", started, false, e.to_string(), None));
            checks.push(skipped(
                "codex authenticated",
                "codex could not be looked for",
            ));
        }
    }

    let workspace = crate::layout::home_relative(&host.workspace).to_string();
    let started = Instant::now();
    let probe = "mkdir -p -- \"$1\" && t=$(mktemp -- \"$1/.codex-remote-doctor.XXXXXX\") && rm -f -- \"$t\" && df -Pk -- \"$1\" | awk 'NR==2 {print $4}'";
    match transport
        .run(
            CommandSpec::new("sh")
                .args(["-c", probe, "sh", &workspace])
                .cwd("~"),
        )
        .await
    {
        Ok(out) if out.status.success() => {
            checks.push(check(
                "workspace writable",
                started,
                true,
                host.workspace.clone(),
                None,
            ));
            let free: u64 = out.stdout_text().trim().parse().unwrap_or(0);
            let ok = free >= MIN_FREE_KIB;
            checks.push(check(
                "free disk",
                started,
                ok,
                format!(
                    "{:.1} GiB free in the workspace",
                    free as f64 / (1024.0 * 1024.0)
                ),
                Some(format!("free space on {name}: runs need at least 1 GiB")),
            ));
        }
        Ok(out) => checks.push(check(
            "workspace writable",
            started,
            false,
            format!("{}: {}", host.workspace, out.stderr_text().trim()),
            Some(format!(
                "create it or set `workspace` under [hosts.{name}] to a writable directory"
            )),
        )),
        Err(e) => checks.push(check(
            "workspace writable",
            started,
            false,
            e.to_string(),
            None,
        )),
    }

    for (tool, why) in [
        ("git", "run trees and results are git-based"),
        ("rsync", "fast delta pushes (tar is the slower fallback)"),
    ] {
        let started = Instant::now();
        let found = transport
            .run(CommandSpec::new("sh").args(["-c", "command -v \"$1\"", "sh", tool]))
            .await;
        match found {
            Ok(out) if out.status.success() => checks.push(check(
                if tool == "git" {
                    "git present"
                } else {
                    "rsync present"
                },
                started,
                true,
                out.stdout_text().trim().to_string(),
                None,
            )),
            _ => checks.push(check(
                if tool == "git" {
                    "git present"
                } else {
                    "rsync present"
                },
                started,
                false,
                format!("`{tool}` is not on PATH"),
                Some(format!("install {tool} on {name} ({why})")),
            )),
        }
    }

    let started = Instant::now();
    let survival = r#"if command -v loginctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  linger=$(loginctl show-user "$(id -un)" -p Linger --value 2>/dev/null)
  kill=$(grep -Ei '^[[:space:]]*KillUserProcesses' /etc/systemd/logind.conf /etc/systemd/logind.conf.d/*.conf 2>/dev/null | tail -n 1 | cut -d= -f2 | tr -d ' ')
  if [ "$linger" = yes ]; then echo "ok systemd-run --user with lingering enabled"
  elif [ "$kill" = yes ]; then echo "fail KillUserProcesses=yes and lingering is off: detached agents die at logout"
  else echo "ok systemd-run --user; KillUserProcesses is off"; fi
else echo "ok setsid nohup (no systemd-logind to end it at logout)"; fi"#;
    match transport
        .run(CommandSpec::new("sh").args(["-c", survival]))
        .await
    {
        Ok(out) => {
            let text = out.stdout_text();
            let (verdict, detail) = text
                .trim()
                .split_once(' ')
                .unwrap_or(("fail", "could not tell"));
            checks.push(check(
                "detached runs survive logout",
                started,
                verdict == "ok",
                detail.to_string(),
                Some(format!("run `loginctl enable-linger` on {name} so detached agents outlive the ssh session")),
            ));
        }
        Err(e) => checks.push(check(
            "detached runs survive logout",
            started,
            false,
            e.to_string(),
            None,
        )),
    }
    checks
}
