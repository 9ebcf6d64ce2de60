//! The fallback push: a tar stream through the [`Transport`], needing only a POSIX shell and
//! `tar` on the host. Not a delta transfer: every push sends the whole selected tree.

use std::process::Stdio;
use std::time::Instant;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::{select_files, PushProgress, PushReport, PushRequest, SyncError, Syncer};
use crate::layout::home_relative;
use crate::transport::{CommandSpec, SharedTransport};

/// Unpacks a tar stream from stdin into a fresh directory and swaps it in for the mirror,
/// keeping the mirror's `.git`. Under the project lock when the host has flock. Constant text:
/// paths arrive as arguments.
pub(crate) const TAR_PUSH_SCRIPT: &str = r#"set -e
mirror=$1
lock=$2
mkdir -p -- "$mirror" "$(dirname -- "$lock")"
if command -v flock >/dev/null 2>&1; then exec 9>"$lock"; flock 9; fi
staging=$(mktemp -d -- "$mirror.push.XXXXXXXX")
trap 'rm -rf -- "$staging"' EXIT
tar -x -f - -C "$staging"
if [ -d "$mirror/.git" ]; then mv -- "$mirror/.git" "$staging/.git"; fi
old=$(mktemp -d -- "$mirror.old.XXXXXXXX")
mv -- "$mirror" "$old/tree"
mv -- "$staging" "$mirror"
trap - EXIT
rm -rf -- "$old"
"#;

/// Pushes with tar over any transport.
pub struct TarSyncer {
    transport: SharedTransport,
}

impl TarSyncer {
    /// A tar syncer over this transport.
    pub fn new(transport: SharedTransport) -> Self {
        Self { transport }
    }
}

#[async_trait]
impl Syncer for TarSyncer {
    fn name(&self) -> &'static str {
        "tar"
    }

    async fn push(
        &self,
        request: &PushRequest,
        progress: Option<mpsc::Sender<PushProgress>>,
    ) -> Result<PushReport, SyncError> {
        let started = Instant::now();
        let files = select_files(&request.local_root, &request.settings)?;
        let total_bytes: u64 = files.iter().map(|f| f.size).sum();
        // GNU tar reads the NUL-separated list; --no-recursion: directories are implied.
        let mut list = Vec::new();
        for file in &files {
            list.extend_from_slice(file.relative.as_bytes());
            list.push(0);
        }
        let mut tar = tokio::process::Command::new("tar")
            .args(["-c", "-f", "-", "-C"])
            .arg(&request.local_root)
            .args(["--null", "--no-recursion", "-T", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => SyncError::MissingProgram {
                    program: "tar".into(),
                    place: "on this machine".into(),
                    hint: "install tar or rsync".into(),
                },
                _ => SyncError::io("starting tar")(e),
            })?;
        let mut tar_stdin = tar.stdin.take().expect("piped");
        tokio::spawn(async move {
            let _ = tar_stdin.write_all(&list).await;
        });
        let mut archive = tar.stdout.take().expect("piped");
        let spec = CommandSpec::script(
            TAR_PUSH_SCRIPT,
            &[
                home_relative(&request.remote_dir),
                home_relative(&request.lock),
            ],
        )
        .named(crate::transport::script_names::TAR_PUSH)
        .cwd("~")
        .stdin_piped();
        let mut remote = self.transport.spawn(spec).await?;
        let mut remote_stdin = remote.stdin.take().expect("piped stdin");
        let copy = async {
            let mut sent = 0u64;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                use tokio::io::AsyncReadExt;
                let n = archive.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                remote_stdin.write_all(&buf[..n]).await?;
                sent += n as u64;
                if let Some(tx) = &progress {
                    let percent = (total_bytes > 0)
                        .then(|| ((sent.min(total_bytes) * 100) / total_bytes) as u8);
                    let _ = tx.try_send(PushProgress {
                        bytes: sent,
                        percent,
                    });
                }
            }
            remote_stdin.shutdown().await?;
            drop(remote_stdin);
            Ok::<_, std::io::Error>(())
        };
        let (copied, output) = tokio::join!(copy, remote.output());
        let output = output?;
        copied.map_err(SyncError::io("streaming the tar archive"))?;
        let tar_output = tar
            .wait_with_output()
            .await
            .map_err(SyncError::io("waiting for tar"))?;
        if !tar_output.status.success() {
            return Err(SyncError::Failed {
                program: "tar (local)".into(),
                code: tar_output.status.code().unwrap_or(-1),
                stderr: String::from_utf8_lossy(&tar_output.stderr)
                    .trim()
                    .to_string(),
            });
        }
        if !output.status.success() {
            return Err(SyncError::Failed {
                program: "tar (remote)".into(),
                code: output.status.code(),
                stderr: output.stderr_text().trim().to_string(),
            });
        }
        Ok(PushReport {
            remote_dir: request.remote_dir.clone(),
            method: "tar",
            files: files.len() as u64,
            files_transferred: files.len() as u64,
            total_bytes,
            duration: started.elapsed(),
        })
    }
}
