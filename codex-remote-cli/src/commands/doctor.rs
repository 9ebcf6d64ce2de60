//! `doctor` and `interactive`.

use codex_remote_core::host::HostKind;

use super::Context;
use crate::cli::HostArgs;
use crate::error::CliError;
use crate::{exit, output};

pub async fn doctor(ctx: &Context, args: HostArgs) -> Result<i32, CliError> {
    let config = ctx.config()?;
    let host = config.host(args.host.as_deref())?;
    let transport = ctx.transport(host.clone())?;
    let checks = codex_remote_core::doctor::diagnose(transport.as_ref()).await;
    let _ = transport.close().await;
    let ok = checks.iter().all(|c| c.ok);
    let connected = checks.first().is_some_and(|c| c.ok);
    if ctx.json {
        output::print_json(&serde_json::json!({ "host": host.name, "ok": ok, "checks": checks }))?;
    } else {
        let mut text = String::new();
        for c in &checks {
            let mark = if c.ok { "ok  " } else { "FAIL" };
            text.push_str(&format!(
                "{mark} {:<30} {:>5} ms  {}\n",
                c.name, c.millis, c.detail
            ));
            if let Some(fix) = &c.fix {
                text.push_str(&format!("     fix: {fix}\n"));
            }
        }
        output::print_text(&text)?;
    }
    Ok(if ok {
        exit::OK
    } else if !connected {
        exit::CONNECTION
    } else {
        exit::PREREQUISITE
    })
}

pub async fn interactive(ctx: &Context, args: HostArgs) -> Result<i32, CliError> {
    let config = ctx.config()?;
    let host = config.host(args.host.as_deref())?;
    let project = ctx.project(None)?;
    let dir = host.project_dir(&project.name);
    let spec = codex_remote_core::transport::CommandSpec::new(host.codex.clone())
        .cwd(dir)
        .with_shell_init();
    // The command line comes from the one quoting function; the TTY needs a real `ssh -t`.
    // The host's env values (secrets) never go on that command line: locally they are the
    // shell's environment; over ssh they go first, through stdin, into a 0600 file in the
    // host's state directory that the session reads and removes.
    let no_env = Default::default();
    let parts = codex_remote_core::shell::ScriptParts {
        program: &spec.program,
        args: &spec.args,
        env: &no_env,
        cwd: spec.cwd.as_deref(),
        shell_init: host.shell_init.as_deref(),
        announce_pid: false,
    };
    let mut command = match &host.kind {
        HostKind::Local => {
            let script = codex_remote_core::shell::command_script(&parts)
                .map_err(codex_remote_core::transport::TransportError::from)?;
            let mut c = std::process::Command::new(
                std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into()),
            );
            c.arg("-c").arg(&script).envs(&host.env);
            c
        }
        HostKind::Ssh { destination } => {
            let transport = ctx.transport(host.clone())?;
            let staged = codex_remote_core::transport::stage_env_file(transport.as_ref()).await;
            let _ = transport.close().await;
            let script = match staged? {
                None => codex_remote_core::shell::command_script(&parts),
                Some(file) => codex_remote_core::shell::command_script_with_env_file(&parts, &file),
            }
            .map_err(codex_remote_core::transport::TransportError::from)?;
            let mut c = std::process::Command::new("ssh");
            if let Some(file) = ctx.ssh_options().config_file {
                c.arg("-F").arg(file);
            }
            c.arg("-t").arg("--").arg(destination).arg(&script);
            c
        }
    };
    let status = command.status().map_err(CliError::io("starting ssh"))?;
    Ok(status.code().unwrap_or(exit::INTERRUPTED))
}
