//! The whole workflow with a podman container as the host: the real Codex CLI runs inside the
//! container (this machine's programs bind-mounted read-only, host networking to reach the
//! scripted model server on 127.0.0.1), PID 1 is `sleep infinity` (never reaps), the user is
//! root and `$HOME` is `/`.

mod common;

use codex_remote_testkit::model_server::{codex_binary, FakeModelServer, Reply};
use codex_remote_testkit::podman::Podman;
use common::{stderr, stdout, Env};

struct Setup {
    env: Env,
    container: Podman,
    _server: FakeModelServer,
    _state: tempfile::TempDir,
}

fn setup(script: Vec<Reply>) -> Option<Setup> {
    let codex = codex_binary()?;
    // The npm package: its bin link points into the package directory, bind it whole.
    let package = codex
        .canonicalize()
        .unwrap()
        .ancestors()
        .find(|p| p.ends_with("node_modules"))
        .unwrap()
        .to_path_buf();
    let state = tempfile::tempdir().unwrap();
    let container = Podman::start_with_or_skip(&[&package], &[state.path()])?;
    let server = FakeModelServer::start(script);
    let codex_home = server.write_codex_home(&state.path().join("codex-home"));
    let env = Env::new();
    env.write(
        "codex-remote.toml",
        &format!(
            "[hosts.box]\npodman = \"{}\"\nshell_init = \"export PATH={}:$PATH\"\n[hosts.box.env]\nCODEX_HOME = \"{}\"\n",
            container.name(),
            codex.parent().unwrap().display(),
            codex_home.display()
        ),
    );
    env.write("src/app.ts", "export const a = 1;\n");
    Some(Setup {
        env,
        container,
        _server: server,
        _state: state,
    })
}

#[test]
fn a_run_in_a_podman_container_comes_back_applied() {
    let Some(s) = setup(vec![
        Reply::exec("call_1", "printf 'export const a = 2;\\n' > src/app.ts"),
        Reply::message("Bumped a"),
    ]) else {
        return;
    };
    let out = s.env.run(&[
        "run",
        "--prompt",
        "Bump a",
        "--type",
        "quick-fix",
        "--file",
        "src/app.ts",
        "--host",
        "box",
    ]);
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(s.env.project.join("src/app.ts")).unwrap(),
        "export const a = 2;\n"
    );
    // The run's tree is gone from the container; the mirror stays for the next push.
    let left = s
        .container
        .sh("ls -A /workspace/.codex-remote/myapp/runs 2>/dev/null; true");
    assert!(left.trim().is_empty(), "run trees left: {left}");
}

#[test]
fn the_same_host_by_url_plans_and_reports_the_container() {
    let env = Env::new();
    let out = env.run(&[
        "plan",
        "--json",
        "--prompt",
        "x",
        "--type",
        "quick-fix",
        "--host",
        "k8s://team/agent-0/main",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["host_kind"], "kubernetes");
    assert_eq!(plan["container"], "team/agent-0/main");
    assert_eq!(plan["ssh_destination"], serde_json::Value::Null);
}
