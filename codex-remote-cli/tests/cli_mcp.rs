//! `codex-remote mcp` driven by a real MCP client (rmcp's, over the child's stdio): a real sshd
//! host, the real Codex CLI and the scripted model server behind it.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use codex_remote_testkit::model_server::Reply;
use common::{setup, Env};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientRequest, ReadResourceRequestParams, Request,
    ServerResult,
};
use rmcp::service::{PeerRequestOptions, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{json, Value};

/// A client that counts the progress notifications it receives.
#[derive(Clone, Default)]
struct Client {
    progress: Arc<AtomicUsize>,
}

impl ClientHandler for Client {
    async fn on_progress(
        &self,
        _params: rmcp::model::ProgressNotificationParam,
        _context: rmcp::service::NotificationContext<RoleClient>,
    ) {
        self.progress.fetch_add(1, Ordering::SeqCst);
    }
}

async fn connect(env: &Env) -> (RunningService<RoleClient, Client>, Client) {
    let command = tokio::process::Command::from(env.command(&["mcp"]));
    let transport = TokioChildProcess::new(command).expect("the server starts");
    let client = Client::default();
    let service = client.clone().serve(transport).await.expect("initialises");
    (service, client)
}

fn args(value: Value) -> serde_json::Map<String, Value> {
    value.as_object().unwrap().clone()
}

async fn call(
    service: &RunningService<RoleClient, Client>,
    tool: &'static str,
    arguments: Value,
) -> CallToolResult {
    service
        .call_tool(CallToolRequestParams::new(tool).with_arguments(args(arguments)))
        .await
        .unwrap_or_else(|e| panic!("calling {tool}: {e}"))
}

fn structured(result: &CallToolResult) -> Value {
    assert_ne!(result.is_error, Some(true), "tool failed: {result:?}");
    result
        .structured_content
        .clone()
        .unwrap_or_else(|| panic!("no structured content: {result:?}"))
}

fn failure(result: &CallToolResult) -> Value {
    assert_eq!(
        result.is_error,
        Some(true),
        "expected a tool error: {result:?}"
    );
    let text = result.content[0].as_text().expect("text").text.clone();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_are_listed_with_their_schemas() {
    let env = Env::new();
    let (service, _) = connect(&env).await;
    let tools = service.list_all_tools().await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "apply",
            "cancel",
            "checkpoint",
            "diff",
            "logs",
            "orchestrate",
            "plan",
            "run",
            "status",
            "wait"
        ]
    );
    let run = tools.iter().find(|t| t.name == "run").unwrap();
    let input = serde_json::to_value(&run.input_schema).unwrap();
    // The task object's schema is the task file's own (`codex-remote schema task`).
    let task_schema = codex_remote_core::schema::task_schema();
    let text = input.to_string();
    for key in task_schema["properties"].as_object().unwrap().keys() {
        assert!(
            text.contains(&format!("\"{key}\"")),
            "task key {key} in run's schema"
        );
    }
    assert!(
        tools.iter().all(|t| t.output_schema.is_some()),
        "every tool declares its output schema"
    );
    // plan's output schema is `plan --json`'s object, the same keys the CLI prints.
    let plan = tools.iter().find(|t| t.name == "plan").unwrap();
    let output = serde_json::to_value(plan.output_schema.as_ref().unwrap()).unwrap();
    for key in [
        "schema_version",
        "task_id",
        "type",
        "model",
        "model_source",
        "host",
        "host_kind",
        "remote_dir",
        "restricted",
        "instruction",
        "checkpoint",
    ] {
        assert!(
            output["properties"].get(key).is_some(),
            "plan output schema lacks {key}: {output}"
        );
    }
    service.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_tool_error_classified_like_exit_code_2() {
    let env = Env::new();
    let (service, _) = connect(&env).await;
    let result = call(&service, "plan", json!({"prompt": "x"})).await;
    let error = failure(&result);
    assert_eq!(error["exit_code"], 2, "{error}");
    assert_eq!(error["kind"], "bad-input", "{error}");
    let result = call(
        &service,
        "plan",
        json!({"task": {"id": "t", "title": "T", "type": "feature", "requirements": ["x"], "modle": "m"}}),
    )
    .await;
    let error = failure(&result);
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("modle"), "{error}");
    assert!(message.contains("argument `task`"), "{error}");
    assert!(
        !message.contains("task.json"),
        "no file that does not exist: {error}"
    );
    // A task given as a string: named as the argument, with what to give instead.
    let result = call(&service, "plan", json!({"task": "Fix the login redirect"})).await;
    let error = failure(&result);
    assert_eq!(error["exit_code"], 2, "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(message.starts_with("argument `task`"), "{error}");
    assert!(!message.contains("task.json"), "{error}");
    assert!(
        error["hint"].as_str().unwrap().contains("prompt"),
        "{error}"
    );
    let result = call(&service, "status", json!({"run_id": "no-such-run"})).await;
    assert_eq!(failure(&result)["exit_code"], 2);
    service.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_ticks_only_specs_in_the_project_and_credits_only_a_valid_run_id() {
    let env = Env::new();
    let spec = env.project.join("SPEC.md");
    std::fs::write(&spec, "- [ ] Auth\n").unwrap();
    let outside = env.home.path().join("outside.md");
    std::fs::write(&outside, "- [ ] Auth\n").unwrap();
    std::os::unix::fs::symlink(&outside, env.project.join("link.md")).unwrap();
    let (service, _) = connect(&env).await;
    // The caller is an agent: `..`, an absolute path or a symlink leading out is refused.
    for file in ["../outside.md", outside.to_str().unwrap(), "link.md"] {
        let result = call(
            &service,
            "checkpoint",
            json!({"file": file, "item": "Auth"}),
        )
        .await;
        let error = failure(&result);
        assert_eq!(error["exit_code"], 2, "{file}: {error}");
        assert!(
            error["message"].as_str().unwrap().contains("outside"),
            "{file}: {error}"
        );
    }
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "- [ ] Auth\n");
    // A run id goes into the spec: a line break there would forge another line.
    let result = call(
        &service,
        "checkpoint",
        json!({"file": "SPEC.md", "item": "Auth", "run_id": "r1)\n- [x] Forged (run r1"}),
    )
    .await;
    let error = failure(&result);
    assert_eq!(error["exit_code"], 2, "{error}");
    assert_eq!(std::fs::read_to_string(&spec).unwrap(), "- [ ] Auth\n");
    let done = structured(
        &call(
            &service,
            "checkpoint",
            json!({"file": "SPEC.md", "item": "Auth", "run_id": "r-1"}),
        )
        .await,
    );
    assert_eq!(done["outcome"], "marked", "{done}");
    assert_eq!(
        std::fs::read_to_string(&spec).unwrap(),
        "- [x] Auth ← Completed via Codex (run r-1)\n"
    );
    service.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_wait_diff_apply_through_mcp_on_a_real_host() {
    let Some(s) = setup(
        vec![
            Reply::exec("call_1", "printf 'export const a = 2;\\n' > src/app.ts"),
            Reply::message("Bumped a"),
        ],
        true,
    ) else {
        return;
    };
    let (service, client) = connect(&s.env).await;
    let plan = structured(
        &call(
            &service,
            "plan",
            json!({"prompt": "Bump a", "type": "quick-fix", "files": ["src/app.ts"]}),
        )
        .await,
    );
    assert!(
        plan["instruction"]
            .as_str()
            .unwrap()
            .starts_with("TASK: Bump a"),
        "{plan}"
    );

    let started = structured(
        &call(
            &service,
            "run",
            json!({"prompt": "Bump a", "type": "quick-fix", "files": ["src/app.ts"], "apply": false}),
        )
        .await,
    );
    let run_id = started["run_id"].as_str().unwrap().to_string();

    // wait, with a progress token: notifications arrive while the run goes.
    let handle = service
        .send_cancellable_request(
            ClientRequest::CallToolRequest(Request::new(
                CallToolRequestParams::new("wait")
                    .with_arguments(args(json!({"run_id": run_id, "timeout_secs": 120}))),
            )),
            PeerRequestOptions::no_options(),
        )
        .await
        .unwrap();
    let ServerResult::CallToolResult(waited) = handle.await_response().await.unwrap() else {
        panic!("wait answers with a tool result");
    };
    let waited = structured(&waited);
    assert_eq!(waited["finished"], true, "{waited}");
    assert_eq!(waited["applied"], false, "{waited}");
    assert_eq!(waited["files"][0]["path"], "src/app.ts", "{waited}");
    assert!(
        client.progress.load(Ordering::SeqCst) > 0,
        "progress notifications were sent"
    );
    assert_eq!(
        std::fs::read_to_string(s.env.project.join("src/app.ts")).unwrap(),
        "export const a = 1;\n",
        "apply: false leaves the project alone"
    );

    let status = structured(&call(&service, "status", json!({"run_id": run_id})).await);
    assert_eq!(status["runs"][0]["run_id"], run_id.as_str());
    let logs = structured(&call(&service, "logs", json!({"run_id": run_id})).await);
    assert!(logs["next_offset"].as_u64().unwrap() > 0, "{logs}");
    let later = structured(
        &call(
            &service,
            "logs",
            json!({"run_id": run_id, "offset": logs["next_offset"]}),
        )
        .await,
    );
    assert_eq!(later["events"], json!([]), "nothing past the end");
    let diff = structured(&call(&service, "diff", json!({"run_id": run_id})).await);
    assert!(
        diff["patch"]
            .as_str()
            .unwrap()
            .contains("+export const a = 2;"),
        "{diff}"
    );

    // The run is a resource too: record, patch and events.
    let resource = service
        .read_resource(ReadResourceRequestParams::new(format!(
            "codex-remote://runs/{run_id}"
        )))
        .await
        .unwrap();
    let uris: Vec<String> = resource
        .contents
        .iter()
        .map(|c| match c {
            rmcp::model::ResourceContents::TextResourceContents { uri, .. } => uri.clone(),
            rmcp::model::ResourceContents::BlobResourceContents { uri, .. } => uri.clone(),
            _ => String::new(),
        })
        .collect();
    assert_eq!(uris.len(), 3, "{uris:?}");

    // A local edit to the same file: apply refuses with the conflict, classified as exit 6.
    s.env.write("src/app.ts", "export const a = 100;\n");
    let refused = failure(&call(&service, "apply", json!({"run_id": run_id})).await);
    assert_eq!(refused["exit_code"], 6, "{refused}");
    s.env.write("src/app.ts", "export const a = 1;\n");
    let applied = structured(&call(&service, "apply", json!({"run_id": run_id})).await);
    assert_eq!(applied["files"][0]["path"], "src/app.ts");
    assert_eq!(
        std::fs::read_to_string(s.env.project.join("src/app.ts")).unwrap(),
        "export const a = 2;\n"
    );
    let again = failure(&call(&service, "cancel", json!({"run_id": run_id})).await);
    assert_eq!(
        again["exit_code"], 2,
        "a finished run cannot be cancelled: {again}"
    );
    service.cancel().await.unwrap();
}

/// The orchestrating agent's script: one `exec` (JavaScript) custom tool call that delegates
/// through the MCP tools, as a model would write it.
const ORCHESTRATOR_JS: &str = r#"
const started = await tools.mcp__codex_remote__run({prompt: 'Bump a', type: 'quick-fix', files: ['src/app.ts'], apply: false});
const id = JSON.stringify(started).match(/"run_id\\?":\\?"([^"\\]+)/)[1];
const waited = await tools.mcp__codex_remote__wait({run_id: id, timeout_secs: 120});
const applied = await tools.mcp__codex_remote__apply({run_id: id});
text(JSON.stringify({id, waited, applied}));
"#;

#[test]
fn codex_as_the_orchestrator_delegates_a_task_through_mcp() {
    use codex_remote_testkit::model_server::{codex_binary, FakeModelServer};
    // The delegated agent: Codex on the sshd host, driven by its own scripted server.
    let Some(s) = setup(
        vec![
            Reply::exec("call_1", "printf 'export const a = 2;\\n' > src/app.ts"),
            Reply::message("Bumped a"),
        ],
        true,
    ) else {
        return;
    };
    let codex = codex_binary().expect("setup found it");
    // The orchestrator: the real Codex CLI here, with codex-remote as its MCP server.
    let orchestrator = FakeModelServer::start(vec![
        Reply::Items(vec![json!({
            "type": "custom_tool_call",
            "id": "ct_1",
            "call_id": "call_orch",
            "name": "exec",
            "input": ORCHESTRATOR_JS,
        })]),
        Reply::message("Delegated to codex-remote; the change is applied."),
    ]);
    let home = s.env.home.path().join("orchestrator-codex-home");
    orchestrator.write_codex_home(&home);
    let env_table: Vec<String> = s
        .env
        .vars
        .iter()
        .map(|(k, v)| format!("{k} = {}", toml_string(v)))
        .chain([format!(
            "HOME = {}",
            toml_string(&s.env.home.path().display().to_string())
        )])
        .collect();
    let mut config = std::fs::read_to_string(home.join("config.toml")).unwrap();
    config.push_str(&format!(
        "\n[mcp_servers.codex-remote]\ncommand = {}\nargs = [\"mcp\"]\ndefault_tools_approval_mode = \"approve\"\ntool_timeout_sec = 300\n\n[mcp_servers.codex-remote.env]\n{}\n",
        toml_string(env!("CARGO_BIN_EXE_codex-remote")),
        env_table.join("\n")
    ));
    std::fs::write(home.join("config.toml"), config).unwrap();
    let out = std::process::Command::new(&codex)
        .args([
            "exec",
            "--json",
            "--skip-git-repo-check",
            "-s",
            "workspace-write",
            "Delegate bumping a to codex-remote",
        ])
        .current_dir(&s.env.project)
        .env("CODEX_HOME", &home)
        .env("HOME", s.env.home.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    // `CODEX_REMOTE_TRANSCRIPT=FILE` keeps the orchestrator's JSON Lines (docs/agents.md).
    if let Some(path) = std::env::var_os("CODEX_REMOTE_TRANSCRIPT") {
        std::fs::write(path, &stdout).unwrap();
    }
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["item"]["type"] == "mcp_tool_call")
        .filter(|e| e["type"] == "item.completed")
        .map(|e| e["item"].clone())
        .collect();
    let tools: Vec<&str> = calls.iter().filter_map(|c| c["tool"].as_str()).collect();
    assert_eq!(tools, ["run", "wait", "apply"], "{stdout}");
    assert!(
        calls
            .iter()
            .all(|c| c["status"] == "completed" && c["server"] == "codex-remote"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(s.env.project.join("src/app.ts")).unwrap(),
        "export const a = 2;\n",
        "the delegated change landed in the orchestrator's project"
    );
}

fn toml_string(value: &str) -> String {
    serde_json::to_string(value).unwrap()
}

#[test]
fn skill_install_writes_the_printed_skill() {
    let env = Env::new();
    let printed = env.run(&["skill"]);
    assert!(printed.status.success());
    let out = env.run(&["skill", "--install"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let written = std::fs::read(env.project.join(".agent/skills/codex-remote/SKILL.md")).unwrap();
    assert_eq!(written, printed.stdout);
    let out = env.run(&["skill", "--install", "--dir", ".claude/skills"]);
    assert!(out.status.success());
    assert!(env
        .project
        .join(".claude/skills/codex-remote/SKILL.md")
        .exists());
}

#[test]
fn the_workflow_document_s_task_sketch_plans_with_its_standards() {
    let env = Env::new();
    env.write(".agent/standards/typescript.md", "- strict types\n");
    env.write("src/util.ts", "export const u = 1;\n");
    let sketch = env.write(
        "sketch.yaml",
        "task:\n  type: test-gen\n  model: gpt-5.3-codex\n  scope:\n    - files: [src/util.ts]\n  standards:\n    - .agent/standards/typescript.md\n",
    );
    let out = env.run(&[
        "plan",
        "--json",
        sketch.to_str().unwrap(),
        "--prompt",
        "Cover util.ts with tests",
    ]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let instruction = plan["instruction"].as_str().unwrap();
    assert!(
        instruction.starts_with("TASK: Cover util.ts with tests\n"),
        "{instruction}"
    );
    assert!(
        instruction
            .contains("Follow the standards in .agent/standards/typescript.md (in the project)"),
        "{instruction}"
    );
    assert!(instruction.contains("src/util.ts"), "{instruction}");
    assert_eq!(plan["model"], "gpt-5.3-codex");
}
