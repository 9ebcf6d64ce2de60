//! Hosts made on demand, for real with podman: each run gets a fresh container of the locally
//! built test image (this machine's programs bind-mounted read-only, host networking to reach
//! the scripted model server), whose PID 1 is `sleep infinity` (never reaps), whose user is root
//! and whose `$HOME` is `/`. The real Codex CLI runs inside. What a run started is found by the
//! labels the containers carry (`codex-remote.run`, `codex-remote.host`): nothing may be left
//! after a run, a failure or a cancel, unless kept.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use codex_remote_core::ondemand::{LABEL_HOST, LABEL_RUN};
use codex_remote_testkit::model_server::{codex_binary, write_file_server, FakeModelServer, Reply};
use codex_remote_testkit::podman::{self, Podman};
use common::{stderr, stdout, Env};

struct Setup {
    env: Env,
    host: String,
    server: FakeModelServer,
    _state: tempfile::TempDir,
}

/// A project whose default host is made on demand by podman; `extra` is added to its table.
fn setup_with(server: FakeModelServer, extra: &str) -> Option<Setup> {
    let codex = codex_binary()?;
    if !Podman::available() {
        if codex_remote_testkit::in_ci() {
            panic!("podman is missing or unusable: CI must install it (see .ci/run)");
        }
        eprintln!("skipping: podman is not installed or cannot run containers");
        return None;
    }
    podman::ensure_image().unwrap();
    // The npm package: its bin link points into the package directory, bind it whole.
    let package = codex
        .canonicalize()
        .unwrap()
        .ancestors()
        .find(|p| p.ends_with("node_modules"))
        .unwrap()
        .to_path_buf();
    let state = tempfile::tempdir().unwrap();
    let codex_home = server.write_codex_home(&state.path().join("codex-home"));
    let host = codex_remote_testkit::suite::unique("od");
    let run_args = podman::run_args(&[&package], &[state.path()]);
    let env = Env::new();
    env.write(
        "codex-remote.toml",
        &format!(
            "default_host = \"{host}\"\n[hosts.\"{host}\"]\nengine = \"podman\"\nimage = \"{}\"\nrun_args = {}\nshell_init = \"export PATH={}:$PATH\"\n{extra}\n[hosts.\"{host}\".env]\nCODEX_HOME = \"{}\"\n",
            podman::IMAGE,
            serde_json::to_string(&run_args).unwrap(),
            codex.parent().unwrap().display(),
            codex_home.display()
        ),
    );
    env.write("src/app.ts", "export const a = 1;\n");
    Some(Setup {
        env,
        host,
        server,
        _state: state,
    })
}

fn setup(script: Vec<Reply>) -> Option<Setup> {
    setup_with(FakeModelServer::start(script), "")
}

/// The containers (running or not) carrying `label=value`.
fn containers(label: &str, value: &str) -> Vec<String> {
    let out = Command::new("podman")
        .args([
            "ps",
            "-a",
            "--filter",
            &format!("label={label}={value}"),
            "--format",
            "{{.Names}}",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// `sh -c SCRIPT` in a container, its stdout.
fn sh_in(container: &str, script: &str) -> String {
    let out = Command::new("podman")
        .args(["exec", "-i", container, "sh", "-c", script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn record(env: &Env, run_id: &str) -> serde_json::Value {
    let path = env
        .project
        .join(format!(".codex-remote/runs/{run_id}/run.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn the_run_id(env: &Env) -> String {
    let runs: Vec<PathBuf> = std::fs::read_dir(env.project.join(".codex-remote/runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].file_name().unwrap().to_str().unwrap().to_string()
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn bump(s: &Setup, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "run",
        "--prompt",
        "Bump a",
        "--type",
        "quick-fix",
        "--file",
        "src/app.ts",
    ];
    args.extend_from_slice(extra);
    s.env.run(&args)
}

fn bump_script() -> Vec<Reply> {
    vec![
        Reply::exec("call_1", "printf 'export const a = 2;\\n' > src/app.ts"),
        Reply::message("Bumped a"),
    ]
}

fn assert_bumped(env: &Env) {
    assert_eq!(
        std::fs::read_to_string(env.project.join("src/app.ts")).unwrap(),
        "export const a = 2;\n"
    );
}

#[test]
fn each_run_gets_a_fresh_container_that_goes_once_its_result_is_back() {
    let Some(s) = setup(bump_script()) else {
        return;
    };
    let out = bump(&s, &[]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_bumped(&s.env);
    let run_id = the_run_id(&s.env);
    let record = record(&s.env, &run_id);
    assert_eq!(record["host"], s.host.as_str());
    assert_eq!(record["container"]["engine"], "podman");
    assert!(
        record["container"]["target"]
            .as_str()
            .unwrap()
            .starts_with("cr-"),
        "{record}"
    );
    assert_eq!(record["container"]["removed"], true, "{record}");
    assert_eq!(containers(LABEL_HOST, &s.host), Vec::<String>::new());
}

#[test]
fn a_run_that_fails_in_its_container_leaves_nothing() {
    let Some(s) = setup_with(
        FakeModelServer::start(bump_script()),
        "codex = \"/nonexistent/codex\"",
    ) else {
        return;
    };
    let out = bump(&s, &[]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(stderr(&out).contains("codex"), "{}", stderr(&out));
    assert_eq!(containers(LABEL_HOST, &s.host), Vec::<String>::new());
    // Recorded, with why it never ran.
    let record = record(&s.env, &the_run_id(&s.env));
    assert_eq!(record["phase"], "failed", "{record}");
    assert_eq!(record["container"]["removed"], true, "{record}");
}

#[test]
fn keep_keeps_the_container_until_prune_removes_it() {
    let Some(s) = setup(bump_script()) else {
        return;
    };
    let out = bump(&s, &["--keep"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_bumped(&s.env);
    let run_id = the_run_id(&s.env);
    let kept = containers(LABEL_RUN, &run_id);
    assert_eq!(kept.len(), 1, "{kept:?}");
    // The run's tree is still there, in its container.
    let trees = sh_in(&kept[0], "ls -A /workspace/.codex-remote/myapp/trees");
    assert!(trees.contains(".lease"), "no run tree held: {trees}");
    let out = s.env.run(&["runs", "--prune"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(containers(LABEL_RUN, &run_id), Vec::<String>::new());
    assert_eq!(record(&s.env, &run_id)["container"]["removed"], true);
}

#[test]
fn a_detached_run_in_a_harsh_container_is_attached_and_then_removed() {
    let Some(s) = setup(vec![
        Reply::exec("c1", "printf 'one\\n' > one.txt"),
        Reply::exec("c2", "printf 'two\\n' > two.txt"),
        Reply::message("two files written"),
    ]) else {
        return;
    };
    s.server.hold();
    let out = s.env.run(&[
        "run",
        "--detach",
        "--prompt",
        "write two files",
        "--type",
        "scaffold",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run_id = stdout(&out).trim().to_string();
    // The detached run keeps its container; it is the harsh host: PID 1 `sleep infinity`,
    // root, `$HOME` = `/`.
    let kept = containers(LABEL_RUN, &run_id);
    assert_eq!(kept.len(), 1, "{kept:?}");
    let inside = sh_in(
        &kept[0],
        "tr '\\0' ' ' < /proc/1/cmdline; echo; id -u; echo $HOME",
    );
    assert_eq!(inside, "sleep infinity \n0\n/\n");
    s.server.release();
    let out = s.env.run(&["attach", &run_id]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    for (name, text) in [("one.txt", "one\n"), ("two.txt", "two\n")] {
        assert_eq!(
            std::fs::read_to_string(s.env.project.join(name)).unwrap(),
            text
        );
    }
    assert_eq!(containers(LABEL_RUN, &run_id), Vec::<String>::new());
    assert_eq!(record(&s.env, &run_id)["phase"], "completed");
}

/// Live (not zombie) processes in the container other than PID 1 and the probe itself, as
/// `(pid, comm)`.
fn live_processes(container: &str) -> Vec<(u32, String)> {
    let out = sh_in(
        container,
        "echo self $$; for f in /proc/[0-9]*/stat; do { read -r line < \"$f\"; } 2>/dev/null && echo \"$line\"; done",
    );
    let mut lines = out.lines();
    let me: u32 = lines
        .next()
        .and_then(|l| l.strip_prefix("self "))
        .and_then(|p| p.trim().parse().ok())
        .expect("the probe names itself");
    lines
        .filter_map(|line| {
            let (head, rest) = line.rsplit_once(')')?;
            let (pid, comm) = head.split_once(" (")?;
            let pid: u32 = pid.trim().parse().ok()?;
            let state = rest.split_whitespace().next()?;
            (pid != 1 && pid != me && state != "Z").then(|| (pid, comm.to_string()))
        })
        .collect()
}

#[test]
fn cancel_in_a_harsh_container_ends_every_agent_process_and_prune_removes_it() {
    let Some(s) = setup(vec![
        Reply::exec("c1", "sleep 300"),
        Reply::message("never"),
    ]) else {
        return;
    };
    let out = s.env.run(&[
        "run", "--detach", "--keep", "--prompt", "sleep", "--type", "debug",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run_id = stdout(&out).trim().to_string();
    let container = containers(LABEL_RUN, &run_id).pop().expect("its container");
    let events = format!("/workspace/.codex-remote/myapp/agents/{run_id}/1/events.jsonl");
    wait_until("codex runs the sleep", || {
        sh_in(&container, &format!("cat {events} 2>/dev/null")).contains("sleep 300")
    });
    assert!(
        live_processes(&container)
            .iter()
            .any(|(_, comm)| comm == "sleep"),
        "the agent's sleep runs"
    );
    let out = s.env.run(&["cancel", &run_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Kept (`--keep`): nothing of the agent lives on in it, though PID 1 never reaps.
    let left = live_processes(&container);
    assert!(
        left.is_empty(),
        "agent processes survived the cancel: {left:?}"
    );
    assert_eq!(record(&s.env, &run_id)["phase"], "cancelled");
    let out = s.env.run(&["runs", "--prune"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(containers(LABEL_RUN, &run_id), Vec::<String>::new());
}

#[test]
fn cancel_removes_the_container_of_a_run_not_kept() {
    let Some(s) = setup(vec![
        Reply::exec("c1", "sleep 300"),
        Reply::message("never"),
    ]) else {
        return;
    };
    s.server.hold();
    let out = s
        .env
        .run(&["run", "--detach", "--prompt", "sleep", "--type", "debug"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run_id = stdout(&out).trim().to_string();
    assert_eq!(containers(LABEL_RUN, &run_id).len(), 1);
    let out = s.env.run(&["cancel", &run_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    s.server.release();
    assert_eq!(containers(LABEL_RUN, &run_id), Vec::<String>::new());
    let out = s.env.run(&["attach", &run_id]);
    assert!(!out.status.success(), "a cancelled run is not attached");
}

#[test]
fn orchestrate_runs_each_task_in_its_own_container_at_once() {
    let server = write_file_server();
    let Some(s) = setup_with(server, "") else {
        return;
    };
    let plan = s.env.write(
        "task_plan.json",
        &serde_json::to_string_pretty(&serde_json::json!({ "tasks": [
            { "task_id": "t1", "executor": "codex-remote", "instruction": "TASK: WRITE one.txt", "status": "pending" },
            { "task_id": "t2", "executor": "codex-remote", "instruction": "TASK: WRITE two.txt", "status": "pending" },
        ]}))
        .unwrap(),
    );
    s.server.hold();
    let child = s
        .env
        .command(&["orchestrate", plan.to_str().unwrap(), "--parallel", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Both agents wait on the model, each in its own container.
    wait_until("two containers run at once", || {
        containers(LABEL_HOST, &s.host).len() == 2
    });
    s.server.release();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    for name in ["one.txt", "two.txt"] {
        assert_eq!(
            std::fs::read_to_string(s.env.project.join(name)).unwrap(),
            format!("{name}\n")
        );
    }
    assert_eq!(containers(LABEL_HOST, &s.host), Vec::<String>::new());
}

#[test]
fn doctor_checks_the_engine_the_image_and_the_host_inside_a_container() {
    let Some(s) = setup(vec![Reply::message("unused")]) else {
        return;
    };
    let out = s.env.run(&["doctor", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for name in [
        "engine available",
        "image available",
        "container starts",
        "codex found",
        "container removed",
    ] {
        assert!(names.contains(&name), "no check {name}: {v}");
    }
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(containers(LABEL_HOST, &s.host), Vec::<String>::new());

    // A missing image is found before any container is started, with its fix.
    let config = std::fs::read_to_string(s.env.project.join("codex-remote.toml")).unwrap();
    s.env.write(
        "codex-remote.toml",
        &config.replace(podman::IMAGE, "localhost/codex-remote-no-such-image:1"),
    );
    let out = s.env.run(&["doctor", "--json"]);
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let last = v["checks"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["name"], "image available", "{v}");
    assert_eq!(last["ok"], false);
    assert!(last["fix"].as_str().unwrap().contains("podman pull"), "{v}");
}

#[test]
fn a_run_whose_agent_fails_leaves_nothing() {
    let Some(s) = setup(vec![Reply::Status(
        401,
        "{\"error\":{\"message\":\"bad key\"}}".into(),
    )]) else {
        return;
    };
    let out = bump(&s, &[]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let run_id = the_run_id(&s.env);
    let record = record(&s.env, &run_id);
    assert_eq!(record["phase"], "failed", "{record}");
    assert_eq!(record["container"]["removed"], true, "{record}");
    assert_eq!(containers(LABEL_HOST, &s.host), Vec::<String>::new());
}

#[test]
fn pull_leaves_the_container_of_an_agent_still_working() {
    let Some(s) = setup(vec![
        Reply::exec("c1", "sleep 300"),
        Reply::message("never"),
    ]) else {
        return;
    };
    let out = s
        .env
        .run(&["run", "--detach", "--prompt", "sleep", "--type", "debug"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run_id = stdout(&out).trim().to_string();
    let container = containers(LABEL_RUN, &run_id).pop().expect("its container");
    let events = format!("/workspace/.codex-remote/myapp/agents/{run_id}/1/events.jsonl");
    wait_until("codex runs the sleep", || {
        sh_in(&container, &format!("cat {events} 2>/dev/null")).contains("sleep 300")
    });
    // Whatever it takes now, the agent's container stays while the agent works.
    let _ = s.env.run(&["pull", &run_id, "--apply"]);
    assert_eq!(containers(LABEL_RUN, &run_id), vec![container]);
    let out = s.env.run(&["cancel", &run_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(containers(LABEL_RUN, &run_id), Vec::<String>::new());
}

/// Kubernetes cannot run here: a stand-in `kubectl` records its argv and refuses to start the
/// pod, so the real start-then-clean-up path runs and its commands are checked word for word.
#[test]
fn kubernetes_pods_are_started_with_the_overlay_and_deleted_when_the_start_fails() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let bin = env.home.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = env.home.path().join("kubectl.log");
    let kubectl = bin.join("kubectl");
    std::fs::write(
        &kubectl,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done >> '{}'\necho --- >> '{}'\n[ \"$1\" = run ] && {{ echo 'error: pods is forbidden' >&2; exit 1; }}\nexit 0\n",
            log.display(),
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&kubectl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let env = env.var(
        "PATH",
        format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
    );
    env.write(
        "codex-remote.toml",
        "[hosts.cluster]\nengine = \"kubernetes\"\nimage = \"ghcr.io/acme/agent:1\"\nnamespace = \"team\"\nrun_args = \"\"\"\nspec:\n  nodeSelector:\n    pool: agents\n\"\"\"\n",
    );
    let out = env.run(&[
        "run",
        "--prompt",
        "x",
        "--type",
        "quick-fix",
        "--host",
        "cluster",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("pods is forbidden"),
        "{}",
        stderr(&out)
    );
    let log = std::fs::read_to_string(&log).unwrap();
    let calls: Vec<Vec<&str>> = log
        .split("---\n")
        .filter(|c| !c.is_empty())
        .map(|c| c.lines().collect())
        .collect();
    assert_eq!(calls.len(), 2, "{log}");
    let pod = calls[0][1];
    assert!(pod.starts_with("cr-x-"), "{log}");
    let run_id = &pod["cr-".len()..];
    assert_eq!(
        calls[0],
        [
            "run",
            pod,
            "-n",
            "team",
            "--image=ghcr.io/acme/agent:1",
            "--restart=Never",
            &format!("--labels=codex-remote.run={run_id},codex-remote.host=cluster,codex-remote.project=myapp"),
            r#"--overrides={"spec":{"nodeSelector":{"pool":"agents"}},"apiVersion":"v1"}"#,
            "--command",
            "--",
            "sleep",
            "infinity"
        ]
    );
    assert_eq!(
        calls[1],
        [
            "delete",
            "pod",
            "-n",
            "team",
            pod,
            "--ignore-not-found",
            "--grace-period=0",
            "--force"
        ]
    );
}

#[test]
fn a_host_made_on_demand_plans_as_one_and_cannot_be_pushed_to_outside_a_run() {
    let env = Env::new();
    env.write(
        "codex-remote.toml",
        "[hosts.fresh]\nengine = \"docker\"\nimage = \"node:20\"\nrun_args = [\"--cpus\", \"2\"]\n",
    );
    let out = env.run(&[
        "plan",
        "--json",
        "--prompt",
        "x",
        "--type",
        "quick-fix",
        "--host",
        "fresh",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["host_kind"], "on-demand");
    assert_eq!(plan["remote_dir"], "~/workspace/myapp");
    let out = env.run(&[
        "plan",
        "--prompt",
        "x",
        "--type",
        "quick-fix",
        "--host",
        "fresh",
    ]);
    assert!(
        stdout(&out).contains("fresh (a fresh docker container of node:20 per run)"),
        "{}",
        stdout(&out)
    );
    // No container outside a run: a push is refused with what to do instead.
    let out = env.run(&["push", "--host", "fresh"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("made on demand"), "{}", stderr(&out));
}
