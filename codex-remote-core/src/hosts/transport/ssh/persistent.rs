//! The persistent remote shell: one small process per SSH session runs every command of the
//! session, so the login shell (and the user's `~/.bashrc`, which Debian's bash sources even for
//! ssh commands) runs once per session instead of once per command.
//!
//! The remote side is `shell_agent.pl`, constant Perl text started as `exec perl -e SCRIPT NONCE`
//! through the login shell (perl-base is on every Debian and Ubuntu host, and on macOS). It
//! announces itself with the nonce on a line of its own, after whatever the rc printed; from then
//! on both directions carry length-prefixed frames (type, command id, length, payload), so no
//! command's output can forge a frame. A command is still argv: the same script as per-command
//! execution, built by [`crate::shell::command_script`], run by `/bin/sh -c` in its own session
//! (process group), with its own stdin, stdout and stderr pipes. Output is flow-controlled per
//! command and stream (at most [`WINDOW`] bytes in flight until we acknowledge them as read, each
//! frame counted with [`FRAME_COST`] bytes on top of its payload), so a slow reader of one command
//! slows that command only, and memory stays bounded. Cancel sends
//! TERM to the command's process group, KILL 2 s later.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use openssh::{Session, Stdio};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

use super::super::{
    BoxReader, BoxWriter, CommandSpec, ExitStatus, ProcessControl, RemoteProcess, Stdin,
    TransportError,
};

/// The agent's Perl text (constant; no data is ever spliced into it).
const AGENT: &str = include_str!("shell_agent.pl");
/// Bytes of one stream the agent sends before waiting for our acknowledgement (as the agent's
/// `$WINDOW`).
pub(super) const WINDOW: usize = 1 << 20;
/// What each stdout or stderr frame costs against the window on top of its payload (as the
/// agent's `$FRAME_COST`): at least what holding one frame costs us (its allocation and its
/// slots in two queues), so a shell sending tiny frames cannot make us hold more than about
/// the window in bookkeeping either.
pub(super) const FRAME_COST: usize = 128;
/// The most a login shell may print before the agent's announcement.
const MAX_NOISE: usize = 1 << 20;
/// Stdin is sent in frames of at most this size.
const CHUNK: usize = 64 * 1024;

enum Event {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
}

/// Bytes of a command's stdout (0) and stderr (1) received and not acknowledged yet, each frame
/// counted as its payload and [`FRAME_COST`]. An honest shell never lets either pass [`WINDOW`]
/// (it waits for our acknowledgements); one that does is broken or hostile, and its session is
/// dropped before it can buffer more.
type Unacked = Arc<[AtomicUsize; 2]>;

/// What the writer sends the agent.
enum Out {
    Frame(Vec<u8>),
    /// Acknowledge what a command's stream (`o`/`e`) has pending then, in one frame. At most one
    /// is queued per stream at a time (queued when its pending count leaves zero), so however
    /// many frames a shell sends while not reading its input, the queue stays bounded.
    Ack(u32, u8, Arc<AtomicUsize>),
}

impl Out {
    fn frame(kind: u8, id: u32, payload: &[u8]) -> Out {
        Out::Frame(frame(kind, id, payload))
    }
}

struct Slot {
    events: mpsc::UnboundedSender<Event>,
    exit: Option<oneshot::Sender<ExitStatus>>,
    unacked: Unacked,
}

type Slots = Arc<Mutex<HashMap<u32, Slot>>>;

/// Why the agent could not be started.
pub(super) enum StartError {
    /// The session itself failed (reconnect and retry).
    Session(openssh::Error),
    /// The host cannot run the agent (no perl, the rc ate the channel...): run per command.
    Unavailable(String),
}

/// A running agent on one session.
pub(super) struct ShellAgent {
    host: String,
    frames: mpsc::UnboundedSender<Out>,
    slots: Slots,
    next_id: AtomicU32,
    alive: Arc<AtomicBool>,
    /// Why the shell was dropped, when it broke its protocol.
    broken: Arc<Mutex<Option<String>>>,
    shutdown: Arc<tokio::sync::Notify>,
    ended: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

fn frame(kind: u8, id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + payload.len());
    out.push(kind);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

impl ShellAgent {
    /// Starts the agent on `session` and waits for its announcement (after the login shell and
    /// its rc ran, once).
    pub(super) async fn start(
        host: &str,
        session: Arc<Session>,
        wait: Duration,
    ) -> Result<Arc<ShellAgent>, StartError> {
        let nonce = format!(
            "{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        );
        let line = format!(
            "exec perl -e {} {}",
            crate::shell::quote(AGENT),
            crate::shell::quote(&nonce)
        );
        let mut command = session.clone().arc_raw_command(line);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().await.map_err(StartError::Session)?;
        let mut stdin = child.stdin().take().expect("piped");
        let stdout = child.stdout().take().expect("piped");
        let mut stderr = child.stderr().take().expect("piped");
        // What the rc prints on stderr is of no use to anyone; keep the pipe drained.
        let stderr_text = Arc::new(Mutex::new(Vec::new()));
        let kept = stderr_text.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let mut kept = kept.lock().expect("not poisoned");
                if kept.len() < 4096 {
                    kept.extend_from_slice(&buf[..n]);
                }
            }
        });
        let mut stdout = BufReader::with_capacity(64 * 1024, stdout);
        let announce = format!("\u{1e}codex-remote-shell {nonce}\n").into_bytes();
        let handshake = async {
            let mut noise = 0usize;
            let mut line = Vec::new();
            loop {
                line.clear();
                // Never more than the noise allowed left, even on one endless line.
                let n = (&mut stdout)
                    .take((MAX_NOISE - noise + announce.len()) as u64)
                    .read_until(b'\n', &mut line)
                    .await
                    .unwrap_or(0);
                if n == 0 {
                    return false;
                }
                // The rc may print without a newline before it: match the end of the line.
                if line.ends_with(&announce) {
                    return true;
                }
                noise += n;
                if noise > MAX_NOISE {
                    return false;
                }
            }
        };
        let ok = tokio::time::timeout(wait, handshake).await.unwrap_or(false);
        if !ok {
            let _ = stdin.shutdown().await;
            drop(stdin);
            let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
            let said = String::from_utf8_lossy(&stderr_text.lock().expect("not poisoned"))
                .trim()
                .to_string();
            return Err(StartError::Unavailable(if said.is_empty() {
                "it did not announce itself".into()
            } else {
                said
            }));
        }

        let (frames, mut frames_rx) = mpsc::unbounded_channel::<Out>();
        let shutdown = Arc::new(tokio::sync::Notify::new());
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    out = frames_rx.recv() => {
                        let frame = match out {
                            Some(Out::Frame(frame)) => frame,
                            Some(Out::Ack(id, stream, pending)) => {
                                // Only an honest shell's window (bounded) ever needs the whole.
                                let n = pending.swap(0, Ordering::SeqCst).min(u32::MAX as usize);
                                let mut ack = vec![stream];
                                ack.extend_from_slice(&(n as u32).to_be_bytes());
                                frame(b'A', id, &ack)
                            }
                            None => break,
                        };
                        if stdin.write_all(&frame).await.is_err() {
                            break;
                        }
                    }
                    _ = stop.notified() => break,
                }
            }
            let _ = stdin.shutdown().await;
        });
        let slots: Slots = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        let broken = Arc::new(Mutex::new(None));
        let reader = {
            let slots = slots.clone();
            let alive = alive.clone();
            let broken = broken.clone();
            let host = host.to_string();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let end = read_frames(&mut stdout, &slots).await;
                let hostile = matches!(end, Err(FrameError::Protocol(_)));
                match end {
                    Err(FrameError::Protocol(why)) => {
                        *broken.lock().expect("not poisoned") = Some(why);
                    }
                    Err(FrameError::Io(e)) => {
                        tracing::debug!(host = %host, error = %e, "the remote shell's channel ended");
                    }
                    Ok(()) => {}
                }
                alive.store(false, Ordering::SeqCst);
                // The agent is gone: every command still open ends without a status.
                slots.lock().expect("not poisoned").clear();
                if hostile {
                    // Nothing more of it is read: its channel is closed, not waited on (it need
                    // not ever exit).
                    shutdown.notify_one();
                    drop(stdout);
                    let _ = child.disconnect().await;
                } else {
                    let _ = child.wait().await;
                }
            })
        };
        Ok(Arc::new(ShellAgent {
            host: host.to_string(),
            frames,
            slots,
            next_id: AtomicU32::new(1),
            alive,
            broken,
            shutdown,
            ended: Mutex::new(Some(reader)),
        }))
    }

    /// Whether the agent still runs.
    pub(super) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst) && !self.frames.is_closed()
    }

    /// Ends the agent (its input closes, so it exits, ending its commands) and waits for its
    /// channel to close, so the session can be closed after it.
    pub(super) async fn stop(&self) {
        self.alive.store(false, Ordering::SeqCst);
        self.shutdown.notify_one();
        let reader = self.ended.lock().expect("not poisoned").take();
        if let Some(mut reader) = reader {
            if tokio::time::timeout(Duration::from_secs(5), &mut reader)
                .await
                .is_err()
            {
                reader.abort();
            }
        }
    }

    /// Runs one command through the agent.
    pub(super) fn spawn(
        self: &Arc<Self>,
        spec: &CommandSpec,
        script: String,
    ) -> Result<RemoteProcess, TransportError> {
        if !self.is_alive() {
            return Err(self.lost());
        }
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let (events_tx, mut events_rx) = mpsc::unbounded_channel();
        let (exit_tx, exit_rx) = oneshot::channel();
        let unacked: Unacked = Arc::default();
        self.slots.lock().expect("not poisoned").insert(
            id,
            Slot {
                events: events_tx,
                exit: Some(exit_tx),
                unacked: unacked.clone(),
            },
        );
        // As with a login shell per command, a script longer than one exec argument may be
        // travels on stdin ahead of the command's own input.
        let (script, prefix) = if script.len() > super::MAX_INLINE_SCRIPT {
            (
                crate::shell::stdin_bootstrap(script.len()),
                Some(script.into_bytes()),
            )
        } else {
            (script, None)
        };
        let piped = prefix.is_some() || spec.stdin != Stdin::Null;
        let mut payload = Vec::with_capacity(script.len() + 1);
        payload.push(if piped { b'1' } else { b'0' });
        payload.extend_from_slice(script.as_bytes());
        if self.frames.send(Out::frame(b'S', id, &payload)).is_err() {
            self.slots.lock().expect("not poisoned").remove(&id);
            return Err(self.lost());
        }

        // Output: one pipe per stream, fed in order, each chunk acknowledged once the reader
        // took it (which lets the agent read more of that stream).
        let (out_w, out_r) = tokio::io::duplex(CHUNK);
        let (err_w, err_r) = tokio::io::duplex(CHUNK);
        let frames = self.frames.clone();
        tokio::spawn(async move {
            let (out_tx, out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
            let (err_tx, err_rx) = mpsc::unbounded_channel::<Vec<u8>>();
            let feed_out = feed(out_rx, out_w, frames.clone(), id, (b'o', &unacked[0]));
            let feed_err = feed(err_rx, err_w, frames, id, (b'e', &unacked[1]));
            let split = async move {
                while let Some(event) = events_rx.recv().await {
                    let _ = match event {
                        Event::Stdout(data) => out_tx.send(data),
                        Event::Stderr(data) => err_tx.send(data),
                    };
                }
            };
            tokio::join!(split, feed_out, feed_err);
        });

        for chunk in prefix.iter().flat_map(|p| p.chunks(CHUNK)) {
            let _ = self.frames.send(Out::frame(b'I', id, chunk));
        }
        let stdin: Option<BoxWriter> = match &spec.stdin {
            Stdin::Null => {
                if piped {
                    let _ = self.frames.send(Out::frame(b'E', id, &[]));
                }
                None
            }
            Stdin::Bytes(bytes) => {
                for chunk in bytes.chunks(CHUNK) {
                    let _ = self.frames.send(Out::frame(b'I', id, chunk));
                }
                let _ = self.frames.send(Out::frame(b'E', id, &[]));
                None
            }
            Stdin::Piped => {
                let (writer, mut reader) = tokio::io::duplex(CHUNK);
                let frames = self.frames.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; CHUNK];
                    loop {
                        match reader.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if frames.send(Out::frame(b'I', id, &buf[..n])).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    let _ = frames.send(Out::frame(b'E', id, &[]));
                });
                Some(Box::new(writer))
            }
        };
        let control = AgentControl {
            agent: self.clone(),
            id,
            exit: Some(exit_rx),
            finished: None,
        };
        Ok(RemoteProcess::new(
            spec.display(),
            stdin,
            Box::new(out_r) as BoxReader,
            Box::new(err_r) as BoxReader,
            Box::new(control),
            spec.timeout,
        ))
    }

    fn lost(&self) -> TransportError {
        if let Some(detail) = self.broken.lock().expect("not poisoned").clone() {
            return TransportError::ShellBroken {
                host: self.host.clone(),
                detail,
            };
        }
        TransportError::Disconnected {
            host: self.host.clone(),
            detail: "the session's remote shell ended".into(),
        }
    }
}

/// Writes one stream's chunks to its pipe, acknowledging each once written (acknowledgements
/// not sent yet are merged into one).
async fn feed(
    mut chunks: mpsc::UnboundedReceiver<Vec<u8>>,
    mut pipe: tokio::io::DuplexStream,
    frames: mpsc::UnboundedSender<Out>,
    id: u32,
    (stream, unacked): (u8, &AtomicUsize),
) {
    let pending = Arc::new(AtomicUsize::new(0));
    let mut open = true;
    while let Some(chunk) = chunks.recv().await {
        // A reader that went away still gets its window back, so the command can finish.
        if open && pipe.write_all(&chunk).await.is_err() {
            open = false;
        }
        let cost = chunk.len() + FRAME_COST;
        // Counted as acknowledged before the shell can know it, so an honest shell never
        // appears to exceed its window.
        unacked.fetch_sub(cost, Ordering::SeqCst);
        if pending.fetch_add(cost, Ordering::SeqCst) == 0 {
            let _ = frames.send(Out::Ack(id, stream, pending.clone()));
        }
    }
}

/// Why reading the agent's frames stopped.
#[derive(Debug)]
enum FrameError {
    /// The channel ended or failed (the shell exited, the connection dropped).
    Io(std::io::Error),
    /// The shell broke the protocol (a frame over the window, an empty output frame, more
    /// unacknowledged output than the window, an unknown frame type): it is dropped, whatever it sends next unread.
    Protocol(String),
}

/// Dispatches the agent's frames until its output ends. Never holds more than [`WINDOW`]
/// unacknowledged bytes per command and stream, each frame counted with [`FRAME_COST`].
async fn read_frames<R: tokio::io::AsyncRead + Unpin>(
    stdout: &mut R,
    slots: &Slots,
) -> Result<(), FrameError> {
    let mut header = [0u8; 9];
    loop {
        stdout
            .read_exact(&mut header)
            .await
            .map_err(FrameError::Io)?;
        let kind = header[0];
        let id = u32::from_be_bytes(header[1..5].try_into().expect("4 bytes"));
        let len = u32::from_be_bytes(header[5..9].try_into().expect("4 bytes")) as usize;
        if len > WINDOW {
            return Err(FrameError::Protocol(format!(
                "it sent a frame of {len} bytes, over the {WINDOW}-byte window"
            )));
        }
        if !matches!(kind, b'O' | b'R' | b'X') {
            return Err(FrameError::Protocol(format!(
                "it sent a frame of unknown type {:?}",
                char::from(kind)
            )));
        }
        if len == 0 && kind != b'X' {
            // The agent sends output only after reading some: an empty frame would cost us a
            // queue slot and an acknowledgement while counting nothing against the window.
            return Err(FrameError::Protocol(format!(
                "it sent an empty {} frame",
                if kind == b'O' { "stdout" } else { "stderr" }
            )));
        }
        let mut payload = vec![0u8; len];
        stdout
            .read_exact(&mut payload)
            .await
            .map_err(FrameError::Io)?;
        let mut slots = slots.lock().expect("not poisoned");
        match kind {
            b'O' | b'R' => {
                if let Some(slot) = slots.get(&id) {
                    let stream = usize::from(kind == b'R');
                    let cost = len + FRAME_COST;
                    let unacked = slot.unacked[stream].fetch_add(cost, Ordering::SeqCst) + cost;
                    if unacked > WINDOW {
                        return Err(FrameError::Protocol(format!(
                            "it sent {unacked} bytes (with {FRAME_COST} per frame) of a command's {} without waiting for their acknowledgement, over the {WINDOW}-byte window",
                            if stream == 0 { "stdout" } else { "stderr" }
                        )));
                    }
                    let event = if kind == b'O' {
                        Event::Stdout(payload)
                    } else {
                        Event::Stderr(payload)
                    };
                    let _ = slot.events.send(event);
                }
            }
            _ => {
                if let Some(mut slot) = slots.remove(&id) {
                    if let Some(exit) = slot.exit.take() {
                        let _ = exit.send(parse_status(&payload));
                    }
                }
            }
        }
    }
}

fn parse_status(payload: &[u8]) -> ExitStatus {
    let text = String::from_utf8_lossy(payload);
    let number = |s: &str| s.trim().parse::<i32>().unwrap_or(0);
    match text.split_once(' ') {
        Some(("c", code)) => ExitStatus::Code(number(code)),
        Some(("s", signal)) => ExitStatus::Signal(number(signal)),
        _ => ExitStatus::Signal(0),
    }
}

struct AgentControl {
    agent: Arc<ShellAgent>,
    id: u32,
    exit: Option<oneshot::Receiver<ExitStatus>>,
    finished: Option<ExitStatus>,
}

#[async_trait]
impl ProcessControl for AgentControl {
    async fn wait(&mut self) -> Result<ExitStatus, TransportError> {
        if let Some(status) = self.finished {
            return Ok(status);
        }
        let Some(exit) = self.exit.take() else {
            return Err(self.agent.lost());
        };
        match exit.await {
            Ok(status) => {
                self.finished = Some(status);
                Ok(status)
            }
            Err(_) => Err(self.agent.lost()),
        }
    }

    async fn cancel(&mut self) -> Result<(), TransportError> {
        if self.finished.is_some() {
            return Ok(());
        }
        if self
            .agent
            .frames
            .send(Out::frame(b'K', self.id, &[]))
            .is_err()
        {
            return Err(self.agent.lost());
        }
        // TERM, then KILL after 2 s: the group is gone well within this.
        let _ = tokio::time::timeout(Duration::from_secs(10), self.wait()).await;
        self.finished.get_or_insert(ExitStatus::Signal(15));
        Ok(())
    }
}

impl Drop for ShellAgent {
    fn drop(&mut self) {
        // The writer then closes the agent's input; the agent exits and the reader ends.
        self.shutdown.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slot for command 1, and the receiver of its output.
    fn one_command() -> (Slots, mpsc::UnboundedReceiver<Event>) {
        let (events, rx) = mpsc::unbounded_channel();
        let slots: Slots = Arc::default();
        slots.lock().unwrap().insert(
            1,
            Slot {
                events,
                exit: None,
                unacked: Arc::default(),
            },
        );
        (slots, rx)
    }

    fn held(rx: &mut mpsc::UnboundedReceiver<Event>) -> usize {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| match e {
                Event::Stdout(d) | Event::Stderr(d) => d.len(),
            })
            .sum()
    }

    #[tokio::test]
    async fn a_shell_that_ignores_the_window_is_refused_before_more_is_held() {
        // Exactly the window (payloads and the cost of each frame), unacknowledged: allowed
        // (the stream then just ends).
        let (slots, mut rx) = one_command();
        let mut input = Vec::new();
        for _ in 0..16 {
            input.extend(frame(b'O', 1, &[b'x'; WINDOW / 16 - FRAME_COST]));
        }
        input.extend(frame(b'R', 1, &[b'y'; WINDOW - FRAME_COST]));
        let end = read_frames(&mut input.as_slice(), &slots).await;
        assert!(matches!(end, Err(FrameError::Io(_))), "{end:?}");
        assert_eq!(held(&mut rx), 2 * WINDOW - 17 * FRAME_COST);

        // One byte more than the window on a stream, before any acknowledgement: refused, and
        // what was held stays within the window.
        let (slots, mut rx) = one_command();
        let mut flood = Vec::new();
        for _ in 0..64 {
            flood.extend(frame(b'O', 1, &[b'x'; 64 * 1024]));
        }
        let end = read_frames(&mut flood.as_slice(), &slots).await;
        let Err(FrameError::Protocol(why)) = end else {
            panic!("{end:?}")
        };
        assert!(
            why.contains("without waiting for their acknowledgement"),
            "{why}"
        );
        assert!(held(&mut rx) <= WINDOW);

        // Acknowledged bytes make room again (what `feed` does as the reader takes them).
        let (slots, mut rx) = one_command();
        let unacked = slots.lock().unwrap()[&1].unacked.clone();
        let mut input = frame(b'O', 1, &[b'x'; WINDOW - FRAME_COST]);
        input.extend(frame(b'O', 1, b"more"));
        let (first, rest) = input.split_at(9 + WINDOW - FRAME_COST);
        let end = read_frames(&mut &first[..], &slots).await;
        assert!(matches!(end, Err(FrameError::Io(_))), "{end:?}");
        unacked[0].fetch_sub(WINDOW, Ordering::SeqCst);
        let end = read_frames(&mut &rest[..], &slots).await;
        assert!(matches!(end, Err(FrameError::Io(_))), "{end:?}");
        assert_eq!(held(&mut rx), WINDOW - FRAME_COST + 4);
    }

    #[tokio::test]
    async fn tiny_frames_count_their_cost_and_empty_ones_are_refused() {
        // One-byte frames: the window runs out after WINDOW / (1 + FRAME_COST) of them, so the
        // frames held (each an allocation and queue slots) stay bounded by the window too.
        let (slots, mut rx) = one_command();
        let mut flood = Vec::new();
        for _ in 0..10_000 {
            flood.extend(frame(b'O', 1, b"x"));
        }
        let end = read_frames(&mut flood.as_slice(), &slots).await;
        assert!(
            matches!(&end, Err(FrameError::Protocol(why)) if why.contains("without waiting")),
            "{end:?}"
        );
        assert_eq!(held(&mut rx), WINDOW / (1 + FRAME_COST));

        // An empty output frame counts nothing against the window: refused at once.
        for kind in [b'O', b'R'] {
            let (slots, mut rx) = one_command();
            let mut input = frame(kind, 1, b"ok");
            input.extend(frame(kind, 1, b""));
            input.extend(frame(kind, 1, b"never"));
            let end = read_frames(&mut input.as_slice(), &slots).await;
            let Err(FrameError::Protocol(why)) = end else {
                panic!("{end:?}")
            };
            assert!(why.contains("an empty std"), "{why}");
            assert_eq!(held(&mut rx), 2);
        }
    }

    #[tokio::test]
    async fn acknowledgements_not_sent_yet_are_merged() {
        // The writer is not draining (a shell that does not read its input): however many
        // chunks are fed, one acknowledgement per stream is queued, carrying them all.
        let (frames, mut frames_rx) = mpsc::unbounded_channel();
        let (chunks_tx, chunks_rx) = mpsc::unbounded_channel();
        let (pipe, mut reader) = tokio::io::duplex(CHUNK);
        let unacked = AtomicUsize::new(1000 * (10 + FRAME_COST));
        let drain = tokio::spawn(async move {
            let mut all = Vec::new();
            reader.read_to_end(&mut all).await.unwrap();
            all.len()
        });
        for _ in 0..1000 {
            chunks_tx.send(vec![b'x'; 10]).unwrap();
        }
        drop(chunks_tx);
        feed(chunks_rx, pipe, frames, 7, (b'o', &unacked)).await;
        assert_eq!(drain.await.unwrap(), 10_000);
        assert_eq!(unacked.load(Ordering::SeqCst), 0);
        let Ok(Out::Ack(7, b'o', pending)) = frames_rx.try_recv() else {
            panic!("one acknowledgement")
        };
        assert!(frames_rx.try_recv().is_err(), "more than one queued");
        assert_eq!(pending.swap(0, Ordering::SeqCst), 1000 * (10 + FRAME_COST));
    }

    #[tokio::test]
    async fn oversized_and_unknown_frames_are_refused_unread() {
        let (slots, mut rx) = one_command();
        let mut header = vec![b'O'];
        header.extend(1u32.to_be_bytes());
        header.extend((WINDOW as u32 + 1).to_be_bytes());
        let end = read_frames(&mut header.as_slice(), &slots).await;
        assert!(
            matches!(&end, Err(FrameError::Protocol(why)) if why.contains("a frame of 1048577 bytes")),
            "{end:?}"
        );
        let unknown = frame(b'Z', 1, b"?");
        let end = read_frames(&mut unknown.as_slice(), &slots).await;
        assert!(
            matches!(&end, Err(FrameError::Protocol(why)) if why.contains("unknown type 'Z'")),
            "{end:?}"
        );
        assert_eq!(held(&mut rx), 0);
    }
}
