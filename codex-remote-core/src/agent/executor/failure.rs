//! How an agent run fails: [`ExecFailure`], read from Codex's events, its exit and its words
//! (usage limits, stated retry delays), and the backoff between retries.
use std::time::Duration;

use crate::transport::ExitStatus;

/// Why an agent run failed, classified so the caller can act (retry, or tell the user the fix).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ExecFailure {
    /// The model provider answered 429 Too Many Requests (after Codex's own retries).
    RateLimited {
        /// Codex's message.
        message: String,
    },
    /// The account's usage limit was reached, and it does not reset within the run's
    /// `max_wait` (or the thread could not be resumed).
    UsageLimited {
        /// Codex's message.
        message: String,
        /// When the limit resets (Unix seconds), when known.
        resume_at: Option<u64>,
    },
    /// Authentication was refused (401/403): not logged in, or the login expired.
    AuthExpired {
        /// Codex's message.
        message: String,
    },
    /// `codex` is not on the host's PATH.
    CodexNotFound {
        /// What the shell said.
        message: String,
    },
    /// The run's directory does not exist on the host.
    WorkspaceMissing {
        /// What the shell said.
        message: String,
    },
    /// The turn failed for another reason.
    TurnFailed {
        /// Codex's message.
        message: String,
    },
    /// The agent's process disappeared without recording how it ended (killed, host rebooted).
    AgentVanished {
        /// What is known.
        message: String,
    },
    /// The agent showed no progress (no event) for `stall_timeout` and was ended.
    Stalled {
        /// How long it was silent.
        after_secs: u64,
        /// Codex's last notice (such as "Reconnecting... 2/5 (...)"), when it gave one.
        last_notice: Option<String>,
    },
    /// Codex exited unsuccessfully without saying why.
    Exited {
        /// Its exit status.
        code: i32,
        /// The end of its stderr.
        stderr: String,
    },
}

impl ExecFailure {
    /// Classifies a failed turn's message.
    pub fn from_message(message: &str) -> ExecFailure {
        let lower = message.to_ascii_lowercase();
        if is_usage_limit(message) {
            ExecFailure::UsageLimited {
                message: message.to_string(),
                resume_at: None,
            }
        } else if has_status(&lower, "429")
            || lower.contains("too many requests")
            || lower.contains("rate limit")
            || lower.contains("usage limit")
        {
            ExecFailure::RateLimited {
                message: message.to_string(),
            }
        } else if has_status(&lower, "401")
            || has_status(&lower, "403")
            || lower.contains("unauthorized")
            || lower.contains("not logged in")
            || lower.contains("token expired")
        {
            ExecFailure::AuthExpired {
                message: message.to_string(),
            }
        } else {
            ExecFailure::TurnFailed {
                message: message.to_string(),
            }
        }
    }
}

/// Whether `code` stands in `text` as a number of its own: not part of a longer number, a port
/// (`127.0.0.1:44429`) or a path (a message naming `http://127.0.0.1:44429/v1` is no 429).
fn has_status(text: &str, code: &str) -> bool {
    text.match_indices(code).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + code.len()..].chars().next();
        !matches!(before, Some(c) if c.is_ascii_alphanumeric() || c == ':' || c == '/' || c == '.')
            && !matches!(after, Some(c) if c.is_ascii_alphanumeric() || c == '/' || c == '.')
    })
}

/// Whether `text` looks like a Codex thread id (letters, digits and `-`, at most 64): what
/// the host reports as one is untrusted.
pub fn is_thread_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Whether Codex's message says the account's usage limit (not a rate limit) was reached.
pub fn is_usage_limit(message: &str) -> bool {
    let lower = message.to_lowercase();
    lower.contains("usage limit") || lower.contains("usage_limit")
}

/// The delay a failure message states (`Please try again in 1.5s`, `try again in 20ms`,
/// `retry after 3 seconds`, `Retry-After: 2`), if any.
pub fn stated_delay(message: &str) -> Option<Duration> {
    let lower = message.to_ascii_lowercase();
    for marker in [
        "try again in ",
        "retry after ",
        "retry-after: ",
        "retry-after:",
    ] {
        let Some(at) = lower.find(marker) else {
            continue;
        };
        let rest = &lower[at + marker.len()..];
        // A Go-style duration (`1m30s`, `1.5s`, `250ms`) or a number of seconds.
        let token: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '.')
            .collect();
        let token = token.trim_end_matches('.');
        if let Ok(secs) = token.parse::<f64>() {
            return capped(secs);
        }
        let mut total = 0f64;
        let mut number = String::new();
        let mut chars = token.chars().peekable();
        let mut any = false;
        while let Some(c) = chars.next() {
            if c.is_ascii_digit() || c == '.' {
                number.push(c);
                continue;
            }
            let mut unit = c.to_string();
            while let Some(&n) = chars.peek() {
                if n.is_ascii_alphabetic() {
                    unit.push(n);
                    chars.next();
                } else {
                    break;
                }
            }
            let value: f64 = number.parse().ok()?;
            number.clear();
            total += value
                * match unit.as_str() {
                    "ms" => 0.001,
                    "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
                    "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
                    "h" | "hour" | "hours" => 3600.0,
                    _ => return None,
                };
            any = true;
        }
        if any && number.is_empty() {
            return capped(total);
        }
    }
    None
}

/// The longest stated delay honoured as is (the text comes from the host).
pub(super) const MAX_STATED_DELAY: Duration = Duration::from_secs(3600);

pub(super) fn capped(secs: f64) -> Option<Duration> {
    if !(secs.is_finite() && secs >= 0.0) {
        return None;
    }
    Some(Duration::try_from_secs_f64(secs).map_or(MAX_STATED_DELAY, |d| d.min(MAX_STATED_DELAY)))
}

/// Classifies an exit without a `turn.failed` event.
pub(super) fn classify_exit(status: ExitStatus, stderr: &str) -> ExecFailure {
    let tail: String = stderr
        .trim()
        .lines()
        .rev()
        .take(5)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    let lower = stderr.to_ascii_lowercase();
    if status == ExitStatus::Code(127) || lower.contains("command not found") {
        ExecFailure::CodexNotFound { message: tail }
    } else if status == ExitStatus::Code(1)
        && (lower.contains("can't cd")
            || lower.contains("no such file or directory") && lower.contains("cd"))
    {
        ExecFailure::WorkspaceMissing { message: tail }
    } else if lower.contains("not logged in") || has_status(&lower, "401") {
        ExecFailure::AuthExpired { message: tail }
    } else {
        ExecFailure::Exited {
            code: status.code(),
            stderr: tail,
        }
    }
}

/// The delay before retry number `attempt` (0-based): exponential from `initial`, capped at
/// `max`, with jitter in [50%, 100%] so that parallel runs do not retry in lockstep.
pub(crate) fn backoff(attempt: u32, initial: Duration, max: Duration) -> Duration {
    let exponential = initial
        .saturating_mul(2u32.saturating_pow(attempt.min(16)))
        .min(max);
    let jitter: f64 = 0.5 + rand::random::<f64>() * 0.5;
    exponential.mul_f64(jitter)
}
