//! Pushing with the real `rsync`, over the transport's existing SSH master connection.

use std::process::Stdio;
use std::time::Instant;

use async_trait::async_trait;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::{PushProgress, PushReport, PushRequest, SyncError, Syncer};
use crate::layout::home_relative;
use crate::shell::{exec_rsync_lock_words, rsync_e_word, rsync_path_with_lock};
use crate::transport::SharedTransport;

/// rsync over SSH, with the tar fallback when rsync is missing on either side.
pub struct RsyncSyncer {
    transport: SharedTransport,
}

impl RsyncSyncer {
    /// A syncer for this (SSH) transport.
    pub fn new(transport: SharedTransport) -> Self {
        Self { transport }
    }
}

/// The rsync arguments, without the remote shell and the source/destination.
pub fn rsync_filter_args(request: &PushRequest) -> Vec<String> {
    let mut args = vec![
        // Recursive, links as links, permissions, times; not owners (the remote user owns them).
        "-rlpt".to_string(),
        "--delete".to_string(),
        "--safe-links".to_string(),
        "--protect-args".to_string(),
        "--mkpath".to_string(),
        "--stats".to_string(),
        "--info=progress2".to_string(),
        // The mirror's .git is the runs' baseline repository; the local one is never pushed.
        "--exclude=/.git".to_string(),
        "--exclude=/.codex-remote/".to_string(),
        // Our config is the user's, not the agent's: it may hold other hosts' env secrets.
        "--exclude=/codex-remote.toml".to_string(),
    ];
    if request.settings.respect_gitignore {
        args.push("--filter=:- .gitignore".to_string());
    }
    args.extend(
        request
            .settings
            .exclude
            .iter()
            .map(|pattern| format!("--exclude={pattern}")),
    );
    args
}

#[async_trait]
impl Syncer for RsyncSyncer {
    fn name(&self) -> &'static str {
        "rsync"
    }

    async fn push(
        &self,
        request: &PushRequest,
        progress: Option<mpsc::Sender<PushProgress>>,
    ) -> Result<PushReport, SyncError> {
        let Some(remote) = self.transport.rsync_remote().await? else {
            return super::tar::TarSyncer::new(self.transport.clone())
                .push(request, progress)
                .await;
        };
        let started = Instant::now();
        let mut remote_shell = remote.ssh_command.clone();
        if !remote.via_shell {
            remote_shell.extend(exec_rsync_lock_words(home_relative(&request.lock)));
        }
        let remote_shell = remote_shell
            .iter()
            .map(|w| rsync_e_word(w))
            .collect::<Result<Vec<_>, _>>()
            .map_err(crate::transport::TransportError::from)?;
        let mut command = tokio::process::Command::new("rsync");
        command
            .args(rsync_filter_args(request))
            .arg("-e")
            .arg(remote_shell.join(" "));
        if remote.via_shell {
            command
                .arg("--rsync-path")
                .arg(rsync_path_with_lock(home_relative(&request.lock)));
        } else {
            // An engine's exec pipe is not a socket: rsync must not rely on non-blocking I/O.
            command.arg("--blocking-io");
        }
        command
            .arg(format!("{}/", request.local_root.display()))
            .arg(format!(
                "{}:{}/",
                remote.destination,
                home_relative(&request.remote_dir)
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::info!("rsync is not installed here; pushing with tar");
                return super::tar::TarSyncer::new(self.transport.clone())
                    .push(request, progress)
                    .await;
            }
            Err(e) => return Err(SyncError::io("starting rsync")(e)),
        };
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let read_stdout = async {
            let mut all = Vec::new();
            let mut buf = vec![0u8; 16 * 1024];
            let mut pending = Vec::new();
            loop {
                let n = stdout.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                all.extend_from_slice(&buf[..n]);
                pending.extend_from_slice(&buf[..n]);
                // progress2 rewrites its line with \r; take the newest complete one.
                while let Some(end) = pending.iter().position(|b| *b == b'\r' || *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    if let (Some(tx), Some(p)) =
                        (&progress, parse_progress(&String::from_utf8_lossy(&line)))
                    {
                        let _ = tx.try_send(p);
                    }
                }
            }
            Ok::<_, std::io::Error>(all)
        };
        let read_stderr = async {
            let mut all = Vec::new();
            stderr.read_to_end(&mut all).await.map(|_| all)
        };
        let (out, err) = tokio::join!(read_stdout, read_stderr);
        let out = String::from_utf8_lossy(&out.map_err(SyncError::io("reading rsync output"))?)
            .into_owned();
        let err = String::from_utf8_lossy(&err.map_err(SyncError::io("reading rsync errors"))?)
            .into_owned();
        let status = child
            .wait()
            .await
            .map_err(SyncError::io("waiting for rsync"))?;
        if !status.success() {
            if err.contains("rsync: not found") || err.contains("rsync: command not found") {
                tracing::info!(host = %self.transport.host().name, "rsync is missing on the host; pushing with tar");
                return super::tar::TarSyncer::new(self.transport.clone())
                    .push(request, progress)
                    .await;
            }
            return Err(SyncError::Failed {
                program: "rsync".into(),
                code: status.code().unwrap_or(-1),
                stderr: err.trim().to_string(),
            });
        }
        let stat = |label: &str| -> u64 {
            out.lines()
                .find_map(|l| l.trim().strip_prefix(label))
                .and_then(|rest| rest.split_whitespace().next())
                .map(|n| n.replace(',', ""))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        // "Number of files: 10,001 (reg: 10,000, dir: 1)"
        let files = out
            .lines()
            .find_map(|l| l.split_once("(reg: "))
            .map(|(_, rest)| {
                rest.chars()
                    .take_while(|c| c.is_ascii_digit() || *c == ',')
                    .filter(char::is_ascii_digit)
                    .collect::<String>()
            })
            .and_then(|digits| digits.parse().ok())
            .unwrap_or(0);
        Ok(PushReport {
            remote_dir: request.remote_dir.clone(),
            method: "rsync",
            files,
            files_transferred: stat("Number of regular files transferred:"),
            total_bytes: stat("Total file size:"),
            duration: started.elapsed(),
        })
    }
}

/// Parses an `--info=progress2` line such as `  1,234,567  45%  1.2MB/s  0:00:01 (xfr#3, ...)`.
fn parse_progress(line: &str) -> Option<PushProgress> {
    let mut words = line.split_whitespace();
    let bytes: u64 = words.next()?.replace(',', "").parse().ok()?;
    let percent = words.next()?.strip_suffix('%')?.parse().ok();
    Some(PushProgress { bytes, percent })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_progress_lines() {
        assert_eq!(
            parse_progress("      1,234,567  45%    1.20MB/s    0:00:01 (xfr#3, to-chk=0/9)"),
            Some(PushProgress {
                bytes: 1_234_567,
                percent: Some(45)
            })
        );
        assert_eq!(parse_progress("Number of files: 3"), None);
    }
}
