//! The scripted model server (it lives in core, where `codex-remote demo` uses it) under the
//! name the tests know, plus what only tests need: finding the real Codex CLI, and a routed
//! server for concurrent runs.

use std::path::PathBuf;

pub use codex_remote_core::model_server::{
    exec_command, has_tool_output, message, request_user_texts, Reply, Router,
    ScriptedModelServer as FakeModelServer,
};

/// Finds the real Codex CLI for tests: `$CODEX_REMOTE_TEST_CODEX`, else `codex` on PATH. Under CI
/// a missing Codex panics (CI installs it with npm; see .ci/run); elsewhere the caller skips.
pub fn codex_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CODEX_REMOTE_TEST_CODEX")
        .map(PathBuf::from)
        .filter(|p| p.exists())
    {
        return Some(path);
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("codex"))
                .find(|p| p.is_file())
        })
        .unwrap_or(None);
    if on_path.is_none() {
        if crate::in_ci() {
            panic!("the Codex CLI is missing: CI must install it (npm install @openai/codex; see .ci/run) and set CODEX_REMOTE_TEST_CODEX");
        }
        eprintln!("skipping: the Codex CLI is not installed (set CODEX_REMOTE_TEST_CODEX)");
    }
    on_path
}

/// A server for concurrent runs: a request whose instruction says `WRITE <file>` gets a command
/// writing `<file>` (its content: the file's name and a newline), the call-back after it a final
/// message, and an instruction containing `FAIL` an HTTP 401.
pub fn write_file_server() -> FakeModelServer {
    FakeModelServer::start_routed(|request| {
        let text = request_user_texts(request).join("\n");
        if text.contains("FAIL") {
            return Reply::Status(401, "{\"error\":{\"message\":\"bad key\"}}".into());
        }
        if has_tool_output(request) {
            return Reply::message("done");
        }
        let file = text
            .split_whitespace()
            .skip_while(|w| *w != "WRITE")
            .nth(1)
            .unwrap_or("none.txt")
            .to_string();
        Reply::exec("c1", &format!("printf '%s\\n' {file} > {file}"))
    })
}
