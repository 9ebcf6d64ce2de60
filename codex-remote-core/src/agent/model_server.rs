//! A scripted model server on 127.0.0.1 speaking enough of the OpenAI Responses API streaming
//! format to drive the real Codex CLI offline: what `codex-remote demo` runs Codex against, and
//! what the test suite drives the real Codex CLI with.
//!
//! Codex is pointed at it through its own config ([`ScriptedModelServer::write_codex_home`]):
//! `model_provider = "fake"` with `base_url`, `wire_api = "responses"` and
//! `requires_openai_auth = false`. Each `POST /v1/responses` takes the next [`Reply`] of the
//! script (the last one repeats): a stream of output items (`response.created`, one
//! `response.output_item.done` per item, `response.completed`), or an HTTP error status. A
//! `function_call` to Codex's `exec_command` tool makes Codex run a shell command and call back
//! with its output. Every request body is recorded, so tests can check what Codex sent.
//!
//! It listens on loopback only and answers nothing but this script: it is a stand-in for
//! OpenAI, never a fallback for a real run.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

/// One answer of the scripted model.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A successful streamed response with these output items.
    Items(Vec<Value>),
    /// An HTTP error status with this body.
    Status(u16, String),
    /// The account's usage limit, as the ChatGPT backend answers it: HTTP 429 with a
    /// `usage_limit_reached` error (`resets_at`, `resets_in_seconds`) and the
    /// `x-codex-primary-*` rate-limit headers (100 % used, resetting then).
    UsageLimit {
        /// Seconds until the limit resets, counted from the reply.
        resets_in_seconds: u64,
    },
    /// A stream that fails with `rate_limit_exceeded` and this message (as the Responses API
    /// reports a rate limit mid-stream, e.g. "... Please try again in 1.5s.").
    RateLimitFailed(String),
}

impl Reply {
    /// A response that asks Codex to run `cmd` in its shell.
    pub fn exec(call_id: &str, cmd: &str) -> Reply {
        Reply::Items(vec![exec_command(call_id, cmd)])
    }

    /// A final assistant message.
    pub fn message(text: &str) -> Reply {
        Reply::Items(vec![message(text)])
    }
}

/// An `exec_command` function call item.
pub fn exec_command(call_id: &str, cmd: &str) -> Value {
    json!({
        "type": "function_call",
        "id": format!("fc_{call_id}"),
        "call_id": call_id,
        "name": "exec_command",
        "arguments": json!({ "cmd": cmd, "login": false }).to_string(),
    })
}

/// An assistant message item.
pub fn message(text: &str) -> Value {
    json!({
        "type": "message",
        "role": "assistant",
        "id": "msg_1",
        "content": [{ "type": "output_text", "text": text }],
    })
}

/// Decides the reply from the request body (for servers shared by concurrent runs).
pub type Router = Arc<dyn Fn(&Value) -> Reply + Send + Sync>;

struct State {
    router: Option<Router>,
    script: VecDeque<Reply>,
    last: Option<Reply>,
    requests: Vec<Value>,
    delay: Duration,
}

/// The running server; stops when dropped.
pub struct ScriptedModelServer {
    port: u16,
    state: Arc<Mutex<State>>,
    gate: Arc<Gate>,
    listener: TcpListener,
}

/// Replies wait while the gate is held (tests hold the model to freeze a run at a known point).
#[derive(Default)]
struct Gate {
    held: Mutex<bool>,
    changed: std::sync::Condvar,
}

impl Gate {
    fn pass(&self) {
        let mut held = self.held.lock().unwrap();
        while *held {
            held = self.changed.wait(held).unwrap();
        }
    }
}

impl ScriptedModelServer {
    /// Starts serving `script` on a free port of 127.0.0.1.
    pub fn start(script: Vec<Reply>) -> ScriptedModelServer {
        Self::start_inner(script, None)
    }

    /// Starts a server whose replies are chosen by `router` from each request, so concurrent
    /// Codex runs each get their own conversation.
    pub fn start_routed(
        router: impl Fn(&Value) -> Reply + Send + Sync + 'static,
    ) -> ScriptedModelServer {
        Self::start_inner(Vec::new(), Some(Arc::new(router)))
    }

    /// [`ScriptedModelServer::start`], returning an error instead of panicking when no
    /// loopback port can be had.
    pub fn try_start(script: Vec<Reply>) -> std::io::Result<ScriptedModelServer> {
        Self::try_start_inner(script, None)
    }

    fn start_inner(script: Vec<Reply>, router: Option<Router>) -> ScriptedModelServer {
        Self::try_start_inner(script, router).expect("bind 127.0.0.1")
    }

    fn try_start_inner(
        script: Vec<Reply>,
        router: Option<Router>,
    ) -> std::io::Result<ScriptedModelServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(Mutex::new(State {
            router,
            script: script.into(),
            last: None,
            requests: Vec::new(),
            delay: Duration::ZERO,
        }));
        let accept = listener.try_clone()?;
        let shared = state.clone();
        let gate = Arc::new(Gate::default());
        let shared_gate = gate.clone();
        std::thread::spawn(move || {
            for stream in accept.incoming() {
                let Ok(stream) = stream else { break };
                // The listener is shut down by a connection carrying this marker.
                let shared = shared.clone();
                let gate = shared_gate.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &shared, &gate);
                });
            }
        });
        Ok(ScriptedModelServer {
            port,
            state,
            gate,
            listener,
        })
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// Adds a fixed delay before every reply (to make runs take measurable time).
    pub fn set_delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    /// Holds every reply not yet sent until [`ScriptedModelServer::release`]: the agents wait
    /// on the model, so a run stays where it is.
    pub fn hold(&self) {
        *self.gate.held.lock().unwrap() = true;
    }

    /// Lets held replies (and all later ones) go.
    pub fn release(&self) {
        *self.gate.held.lock().unwrap() = false;
        self.gate.changed.notify_all();
    }

    /// Every request body received, parsed.
    pub fn requests(&self) -> Vec<Value> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Every user-message text of every request (what Codex was told).
    pub fn user_texts(&self) -> Vec<String> {
        self.requests()
            .iter()
            .flat_map(request_user_texts)
            .collect()
    }

    /// Writes a `CODEX_HOME` whose config points Codex at this server; returns its path.
    pub fn write_codex_home(&self, dir: &Path) -> PathBuf {
        self.try_write_codex_home(dir).expect("write CODEX_HOME")
    }

    /// [`ScriptedModelServer::write_codex_home`], returning an error instead of panicking.
    pub fn try_write_codex_home(&self, dir: &Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("config.toml"), self.codex_config())?;
        Ok(dir.to_path_buf())
    }

    /// The Codex `config.toml` that points Codex at this server (a provider needing no login).
    pub fn codex_config(&self) -> String {
        format!(
            "model_provider = \"fake\"\n\n[model_providers.fake]\nname = \"fake\"\nbase_url = \"{}\"\nwire_api = \"responses\"\nrequires_openai_auth = false\n",
            self.base_url()
        )
    }
}

impl Drop for ScriptedModelServer {
    fn drop(&mut self) {
        // Unblock the accept loop so its thread ends.
        let _ = self.listener.set_nonblocking(true);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// The largest request body the server reads (Codex's requests are far smaller); a larger
/// `Content-Length` gets 413 and the connection is closed.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

fn serve(stream: TcpStream, state: &Arc<Mutex<State>>, gate: &Gate) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut content_length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 {
                return Ok(());
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    content_length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        if content_length > MAX_BODY {
            // The length is the client's word: refused before anything is allocated for it.
            let body =
                format!("{{\"error\":{{\"message\":\"request body over {MAX_BODY} bytes\"}}}}");
            write!(
                writer,
                "HTTP/1.1 413 Payload Too Large\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )?;
            return writer.flush();
        }
        let mut body = vec![0u8; content_length];
        reader.read_exact(&mut body)?;
        let (reply, delay) = {
            let mut state = state.lock().unwrap();
            let value = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
            state.requests.push(value.clone());
            let routed = state.router.clone().map(|router| router(&value));
            let reply = match routed.or_else(|| state.script.pop_front()) {
                Some(reply) => {
                    state.last = Some(reply.clone());
                    reply
                }
                None => state.last.clone().unwrap_or_else(|| Reply::message("done")),
            };
            (reply, state.delay)
        };
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        gate.pass();
        let response = match reply {
            Reply::UsageLimit { resets_in_seconds } => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("clock after 1970")
                    .as_secs();
                let resets_at = now + resets_in_seconds;
                let body = json!({ "error": {
                    "type": "usage_limit_reached",
                    "message": "The usage limit has been reached",
                    "plan_type": "plus",
                    "resets_at": resets_at,
                    "resets_in_seconds": resets_in_seconds,
                } })
                .to_string();
                format!(
                    "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nx-codex-primary-used-percent: 100\r\nx-codex-primary-window-minutes: 300\r\nx-codex-primary-reset-at: {resets_at}\r\nx-codex-primary-reset-after-seconds: {resets_in_seconds}\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )
            }
            Reply::RateLimitFailed(message) => {
                let mut sse = String::new();
                for (name, data) in [
                    ("response.created", json!({ "type": "response.created", "response": { "id": "resp_1" } })),
                    ("response.failed", json!({ "type": "response.failed", "response": { "id": "resp_1", "error": { "code": "rate_limit_exceeded", "message": message } } })),
                ] {
                    sse.push_str(&format!("event: {name}\ndata: {data}\n\n"));
                }
                format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n{sse}", sse.len())
            }
            Reply::Status(code, body) => format!(
                "HTTP/1.1 {code} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                reason(code),
                body.len()
            ),
            Reply::Items(items) => {
                let mut sse = String::new();
                let mut event = |name: &str, data: Value| sse.push_str(&format!("event: {name}\ndata: {data}\n\n"));
                event("response.created", json!({ "type": "response.created", "response": { "id": "resp_1" } }));
                for item in items {
                    event("response.output_item.done", json!({ "type": "response.output_item.done", "item": item }));
                }
                event(
                    "response.completed",
                    json!({ "type": "response.completed", "response": { "id": "resp_1", "usage": { "input_tokens": 100, "output_tokens": 20, "total_tokens": 120 } } }),
                );
                format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n{sse}", sse.len())
            }
        };
        writer.write_all(response.as_bytes())?;
        writer.flush()?;
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        401 => "Unauthorized",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        _ => "Error",
    }
}

/// The user-message texts of one request.
pub fn request_user_texts(request: &Value) -> Vec<String> {
    request["input"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m["role"] == "user")
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["text"].as_str().map(str::to_string))
        .collect()
}

/// Whether the request carries a tool result (Codex calling back after running a command).
pub fn has_tool_output(request: &Value) -> bool {
    request["input"]
        .as_array()
        .is_some_and(|items| items.iter().any(|i| i["type"] == "function_call_output"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(server: &ScriptedModelServer, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        stream.write_all(request).unwrap();
        let mut reader = BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        status
    }

    #[test]
    fn a_huge_content_length_is_refused_with_413_before_any_allocation() {
        let server = ScriptedModelServer::start(vec![Reply::message("hi")]);
        // An allocation of this size would abort the process, not fail.
        for length in [MAX_BODY + 1, usize::MAX / 2, usize::MAX] {
            let request =
                format!("POST /v1/responses HTTP/1.1\r\ncontent-length: {length}\r\n\r\n");
            let status = exchange(&server, request.as_bytes());
            assert!(status.starts_with("HTTP/1.1 413 "), "{length}: {status}");
        }
        assert!(server.requests().is_empty());
        // Still serving, and a body at the limit's side is read.
        let body = "{\"input\":[]}";
        let request = format!(
            "POST /v1/responses HTTP/1.1\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        assert!(exchange(&server, request.as_bytes()).starts_with("HTTP/1.1 200 "));
        assert_eq!(server.requests().len(), 1);
    }
}
