//! A whole `run` over SSH with the real Codex CLI: how many times we cross to the host, and how
//! many times the host's shell init runs (it can cost 0.2–0.5 s when it sources nvm).

use std::sync::Arc;

use codex_remote_core::config::{Config, ConfigFile};
use codex_remote_core::prerequisites::{ensure, PrerequisiteCache};
use codex_remote_core::transport::ssh::SshTransport;
use codex_remote_core::transport::SharedTransport;
use codex_remote_core::{Engine, PlanOverrides, TaskSpec};
use codex_remote_testkit::counting::CountingTransport;
use codex_remote_testkit::model_server::{codex_binary, FakeModelServer, Reply};
use codex_remote_testkit::{sshd::ALIAS, Sshd};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_takes_at_most_six_round_trips_and_one_shell_init() {
    let Some(codex) = codex_binary() else { return };
    let Some(sshd) = Sshd::start_or_skip() else {
        return;
    };
    let server = FakeModelServer::start(vec![
        Reply::exec("c1", "printf 'hi\\n' > hi.txt"),
        Reply::message("done"),
    ]);
    let codex_home = server.write_codex_home(&sshd.dir().join("codex-home"));
    let counter = sshd.dir().join("shell-init-count");
    let config_text = format!(
        "[hosts.{ALIAS}]\nworkspace = \"{}\"\nshell_init = \"echo ran >> '{}'; export PATH='{}':$PATH\"\n[hosts.{ALIAS}.env]\nCODEX_HOME = \"{}\"\n",
        sshd.dir().join("ws").display(),
        counter.display(),
        codex.parent().unwrap().display(),
        codex_home.display()
    );
    let config = Config::from_files([ConfigFile::parse(&config_text, "t").unwrap()]).unwrap();
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("README.md"), "# app\n").unwrap();
    let task = TaskSpec::parse_str(
        "id: rt\ntitle: Say hi\ntype: quick-fix\nrequirements: [Write hi.txt]\n",
        "t.yaml",
    )
    .unwrap();
    let host = config.host(Some(ALIAS)).unwrap();
    let ssh = Arc::new(SshTransport::new(host, sshd.ssh_options()).unwrap());
    let counting = CountingTransport::new(ssh);
    // The agent's prerequisites are checked once per host (one crossing, one shell init) and
    // remembered: the run itself then does not ask again.
    let cache = PrerequisiteCache::new(local.path());
    ensure(counting.as_ref(), &cache).await.unwrap();
    assert_eq!(counting.commands(), 1, "{:?}", counting.log());
    assert_eq!(
        std::fs::read_to_string(&counter).unwrap().lines().count(),
        1
    );
    std::fs::remove_file(&counter).unwrap();
    let before = counting.commands();
    let transport: SharedTransport = counting.clone();
    let engine = Engine::new(config, local.path())
        .with_project_name("app")
        .with_transports(move |_host| Ok(transport.clone()));
    let plan = engine.plan(task, &PlanOverrides::on_host(ALIAS)).unwrap();
    let summary = engine
        .start(&plan, engine.run_options())
        .await
        .unwrap()
        .wait()
        .await
        .unwrap()
        .summary;
    assert!(summary.applied);
    assert_eq!(
        std::fs::read_to_string(local.path().join("hi.txt")).unwrap(),
        "hi\n"
    );
    let crossings = counting.commands() - before + counting.rsyncs();
    eprintln!(
        "round trips: {crossings} ({:?} + {} rsync)",
        counting.log(),
        counting.rsyncs()
    );
    assert!(
        crossings <= 6,
        "{crossings} round trips: {:?}",
        counting.log()
    );
    let inits = std::fs::read_to_string(&counter).unwrap().lines().count();
    assert_eq!(inits, 1, "the shell init ran {inits} times");
}
