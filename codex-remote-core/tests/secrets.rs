//! A host's `env` values never ride on a command line and never come back in an error: the
//! launch of an agent, observed through the fake transport (the same spec goes to ssh and local).

use codex_remote_core::config::Config;
use codex_remote_core::executor::{CodexExecutor, ExecRequest, Executor};
use codex_remote_core::model::{ModelChoice, ModelSource};
use codex_remote_testkit::{FakeOutput, FakeTransport};

const SECRET: &str = "sk-unit-SECRET-0123456789";

fn fake() -> FakeTransport {
    let mut host = Config::builtin().host(Some("fake")).unwrap();
    host.env.insert("OPENAI_API_KEY".into(), SECRET.into());
    host.env.insert("SHORT".into(), "1".into());
    FakeTransport::new(host)
}

fn request() -> ExecRequest {
    ExecRequest {
        dir: "~/w/.codex-remote/app/runs/r1".into(),
        instruction: "TASK: x".into(),
        model: ModelChoice {
            model: "gpt-5.3-codex".into(),
            source: ModelSource::Default,
            reasoning_effort: None,
        },
        sandbox: "workspace-write".into(),
        extra_args: Vec::new(),
        timeout: None,
        stall_timeout: None,
        max_wait_secs: None,
        resume_thread: None,
    }
}

#[tokio::test]
async fn the_agents_launch_carries_env_names_never_values() {
    let fake = fake();
    fake.on("sh", |_, _, _| FakeOutput::ok("4242\n"));
    let pid = CodexExecutor
        .launch(&fake, "~/w/.codex-remote/app/agents/r1/1", &request())
        .await
        .unwrap();
    assert_eq!(pid, 4242);
    let log = fake.log();
    let launch = log.last().unwrap();
    let words: Vec<&String> = std::iter::once(&launch.program)
        .chain(&launch.args)
        .collect();
    assert!(
        !words.iter().any(|w| w.contains(SECRET)),
        "the secret is on the command line: {words:?}"
    );
    // The host's variables are never exported by a script (the fixed launch script exports
    // only the attempt's own marker, `CODEX_REMOTE_AGENT`).
    for name in ["OPENAI_API_KEY", "SHORT"] {
        assert!(
            !words
                .iter()
                .any(|w| w.contains(&format!("{name}=")) || w.contains(&format!("export {name}"))),
            "a script sets {name}: {words:?}"
        );
    }
    // Names only, for systemd-run's --setenv=NAME.
    assert!(words.iter().any(|w| *w == "OPENAI_API_KEY"), "{words:?}");
    assert!(launch.env.values().all(|v| !v.contains(SECRET)));
}

#[tokio::test]
async fn a_failed_launch_names_no_secret() {
    let fake = fake();
    fake.on("sh", |_, _, _| {
        FakeOutput::fail(1, format!("mkdir: cannot create OPENAI_API_KEY={SECRET}"))
    });
    let error = CodexExecutor
        .launch(&fake, "~/w/.codex-remote/app/agents/r1/1", &request())
        .await
        .unwrap_err()
        .to_string();
    assert!(!error.contains(SECRET), "{error}");
    assert!(
        error.contains("OPENAI_API_KEY=[redacted OPENAI_API_KEY]"),
        "{error}"
    );
}
