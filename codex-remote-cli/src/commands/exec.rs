//! `codex-remote exec [--host H] [--cd DIR] -- PROGRAM [ARGS...]`.

use std::io::IsTerminal;
use std::time::Duration;

use codex_remote_core::transport::{for_host, Chunking, CommandSpec, StreamKind};
use tokio::io::AsyncWriteExt;

use super::Context;
use crate::cli::ExecArgs;
use crate::error::CliError;

pub async fn run(ctx: &Context, args: ExecArgs) -> Result<i32, CliError> {
    let config = ctx.config()?;
    let host = config.host(args.host.as_deref())?;
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| CliError::Usage("give the program to run after `--`".into()))?;
    let mut spec = CommandSpec::new(program.clone())
        .args(rest.iter().cloned())
        .with_shell_init();
    if let Some(dir) = &args.cd {
        let dir = if dir.starts_with('/') || dir.starts_with('~') {
            dir.clone()
        } else {
            host.project_dir(dir)
        };
        spec = spec.cwd(dir);
    }
    if let Some(secs) = args.timeout {
        if !(secs.is_finite() && secs > 0.0) {
            return Err(CliError::Usage(format!(
                "--timeout must be a positive number of seconds, not {secs}"
            )));
        }
        spec = spec.timeout(Duration::from_secs_f64(secs));
    }
    let forward_stdin = !std::io::stdin().is_terminal();
    if forward_stdin {
        spec = spec.stdin_piped();
    }
    let transport = for_host(host, ctx.ssh_options())?;
    let mut process = transport.spawn(spec).await?;
    if let Some(mut remote_stdin) = process.stdin.take() {
        tokio::spawn(async move {
            let mut stdin = tokio::io::stdin();
            let _ = tokio::io::copy(&mut stdin, &mut remote_stdin).await;
            let _ = remote_stdin.shutdown().await;
        });
    }
    let (mut chunks, status) = process.stream(Chunking::Bytes);
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    while let Some(chunk) = chunks.recv().await {
        let written = match chunk.stream {
            StreamKind::Stdout => stdout
                .write_all(&chunk.data)
                .await
                .and(stdout.flush().await),
            StreamKind::Stderr => stderr
                .write_all(&chunk.data)
                .await
                .and(stderr.flush().await),
        };
        if let Err(e) = written {
            // A closed pipe downstream (`| head`) ends us quietly, as it would end `ssh`.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(crate::exit::OK);
            }
            return Err(CliError::Io {
                context: "writing output".into(),
                source: e,
            });
        }
    }
    let status = status
        .await
        .map_err(|e| CliError::Usage(format!("output task failed: {e}")))??;
    let _ = transport.close().await;
    Ok(status.code())
}
