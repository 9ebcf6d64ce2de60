//! Reading the agent's event log a line at a time with bounded memory: a line longer than
//! [`MAX_EVENT_LINE`] is counted and skipped as it streams past, never held whole (the agent
//! writes the log, and one line of 150 MB once took 750 MB of the client's memory).

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// The longest event line taken whole: 1 MiB (Codex's own events are a few KiB at most; a
/// command's whole output travels in one `item.completed`, which Codex itself truncates).
pub const MAX_EVENT_LINE: usize = 1 << 20;

/// One line of the log as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LogLine {
    /// A line ending in a newline: its bytes (without the newline), or `None` when it was
    /// longer than the limit and skipped.
    Complete {
        /// The line, when within the limit.
        bytes: Option<Vec<u8>>,
        /// Its length without the newline.
        len: u64,
    },
    /// The stream ended inside a line (`len` bytes of it seen): it is read again by the next
    /// follow, once complete.
    Partial {
        /// Bytes seen.
        len: u64,
    },
    /// The stream ended at a line boundary.
    End,
}

impl LogLine {
    /// How many bytes of the log the line takes, its newline included.
    #[cfg(test)]
    pub(crate) fn log_bytes(&self) -> u64 {
        match self {
            LogLine::Complete { len, .. } => len + 1,
            LogLine::Partial { len } => *len,
            LogLine::End => 0,
        }
    }
}

/// Reads the next line from `reader`, keeping at most `limit` bytes of it (plus one read's
/// worth while it finds out that it is longer).
pub(crate) async fn next_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    limit: usize,
) -> std::io::Result<LogLine> {
    let mut kept: Option<Vec<u8>> = Some(Vec::new());
    let mut seen: u64 = 0;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if seen == 0 {
                LogLine::End
            } else {
                LogLine::Partial { len: seen }
            });
        }
        let (chunk, ends) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (&available[..i], true),
            None => (available, false),
        };
        seen += chunk.len() as u64;
        if let Some(line) = kept.as_mut() {
            if line.len() + chunk.len() > limit {
                // Over the limit: from here on only counted.
                kept = None;
            } else {
                line.extend_from_slice(chunk);
            }
        }
        let used = chunk.len() + usize::from(ends);
        reader.consume(used);
        if ends {
            return Ok(LogLine::Complete {
                bytes: kept,
                len: seen,
            });
        }
    }
}

/// The line recorded (and shown) in place of a skipped one: `{"type":
/// "codex-remote.oversized_event","bytes":N,"limit":L}`.
pub(crate) fn oversized_line(len: u64) -> String {
    format!(r#"{{"type":"codex-remote.oversized_event","bytes":{len},"limit":{MAX_EVENT_LINE}}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], limit: usize, capacity: usize) -> Vec<LogLine> {
        let mut reader = tokio::io::BufReader::with_capacity(capacity, input);
        let mut out = Vec::new();
        loop {
            let line = next_line(&mut reader, limit).await.unwrap();
            let done = matches!(line, LogLine::End | LogLine::Partial { .. });
            out.push(line);
            if done {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn long_lines_are_counted_and_skipped_and_the_next_ones_read() {
        let mut input = b"short\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 100));
        input.extend(b"\nexactly10!\nafter\npart");
        for capacity in [1, 7, 64, 4096] {
            let got = lines(&input, 10, capacity).await;
            assert_eq!(
                got,
                vec![
                    LogLine::Complete {
                        bytes: Some(b"short".to_vec()),
                        len: 5
                    },
                    LogLine::Complete {
                        bytes: None,
                        len: 100
                    },
                    LogLine::Complete {
                        bytes: Some(b"exactly10!".to_vec()),
                        len: 10
                    },
                    LogLine::Complete {
                        bytes: Some(b"after".to_vec()),
                        len: 5
                    },
                    LogLine::Partial { len: 4 },
                ],
                "read {capacity} bytes at a time"
            );
            let total: u64 = got.iter().map(LogLine::log_bytes).sum();
            assert_eq!(total, input.len() as u64);
        }
        assert_eq!(lines(b"a\n", 10, 8).await.last(), Some(&LogLine::End));
    }
}
