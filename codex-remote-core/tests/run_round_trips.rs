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

/// The scripted model (one command writing `hi.txt`, then a message), the config of the
/// fixture's host (`shell_init` runs `init` first, then puts Codex on PATH), a one-file project
/// and the task.
fn say_hi(
    sshd: &Sshd,
    codex: &std::path::Path,
    init: &str,
) -> (FakeModelServer, Config, tempfile::TempDir, TaskSpec) {
    let server = FakeModelServer::start(vec![
        Reply::exec("c1", "printf 'hi\\n' > hi.txt"),
        Reply::message("done"),
    ]);
    let codex_home = server.write_codex_home(&sshd.dir().join("codex-home"));
    let config_text = format!(
        "[hosts.{ALIAS}]\nworkspace = \"{}\"\nshell_init = \"{init}export PATH='{}':$PATH\"\n[hosts.{ALIAS}.env]\nCODEX_HOME = \"{}\"\n",
        sshd.dir().join("ws").display(),
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
    (server, config, local, task)
}

/// Runs the task to its end through an engine using `transport`, as the CLI would.
async fn run_to_end(
    config: Config,
    local: &std::path::Path,
    transport: SharedTransport,
    task: TaskSpec,
) -> codex_remote_core::RunSummary {
    let engine = Engine::new(config, local)
        .with_project_name("app")
        .with_transports(move |_host| Ok(transport.clone()));
    let plan = engine.plan(task, &PlanOverrides::on_host(ALIAS)).unwrap();
    engine
        .start(&plan, engine.run_options())
        .await
        .unwrap()
        .wait()
        .await
        .unwrap()
        .summary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_takes_at_most_six_round_trips_and_one_shell_init() {
    let Some(codex) = codex_binary() else { return };
    let Some(sshd) = Sshd::start_or_skip() else {
        return;
    };
    let counter = sshd.dir().join("shell-init-count");
    let (_server, config, local, task) = say_hi(
        &sshd,
        &codex,
        &format!("echo ran >> '{}'; ", counter.display()),
    );
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
    let summary = run_to_end(config, local.path(), counting.clone(), task).await;
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

/// Stands between the engine and the SSH transport: the push's rsync waits (bounded) to see the
/// warm-up of the host's shell begun. Done one after the other, it would wait in vain.
struct MustOverlap {
    inner: SharedTransport,
    warming: tokio::sync::Notify,
    overlapped: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl codex_remote_core::transport::Transport for MustOverlap {
    fn host(&self) -> &codex_remote_core::host::HostSpec {
        self.inner.host()
    }

    async fn spawn(
        &self,
        spec: codex_remote_core::transport::CommandSpec,
    ) -> Result<
        codex_remote_core::transport::RemoteProcess,
        codex_remote_core::transport::TransportError,
    > {
        self.inner.spawn(spec).await
    }

    async fn rsync_remote(
        &self,
    ) -> Result<
        Option<codex_remote_core::transport::RsyncRemote>,
        codex_remote_core::transport::TransportError,
    > {
        let seen =
            tokio::time::timeout(std::time::Duration::from_secs(20), self.warming.notified()).await;
        self.overlapped
            .store(seen.is_ok(), std::sync::atomic::Ordering::SeqCst);
        self.inner.rsync_remote().await
    }

    async fn warm_up(&self) {
        self.warming.notify_one();
        self.inner.warm_up().await
    }

    async fn close(&self) -> Result<(), codex_remote_core::transport::TransportError> {
        self.inner.close().await
    }
}

/// The host's persistent shell starts while rsync pushes, not after: over SSH each is a login,
/// so a heavy `~/.bashrc` is paid in parallel rather than twice in a row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_starts_the_hosts_shell_while_it_pushes() {
    let Some(codex) = codex_binary() else { return };
    let Some(sshd) = Sshd::start_or_skip() else {
        return;
    };
    let (_server, config, local, task) = say_hi(&sshd, &codex, "");
    let host = config.host(Some(ALIAS)).unwrap();
    // The prerequisites are remembered from an earlier connection, as on a second run: the
    // run's own connection has no shell yet when it pushes.
    let earlier = SshTransport::new(host.clone(), sshd.ssh_options()).unwrap();
    ensure(&earlier, &PrerequisiteCache::new(local.path()))
        .await
        .unwrap();
    codex_remote_core::transport::Transport::close(&earlier)
        .await
        .unwrap();
    let watched = Arc::new(MustOverlap {
        inner: Arc::new(SshTransport::new(host, sshd.ssh_options()).unwrap()),
        warming: tokio::sync::Notify::new(),
        overlapped: false.into(),
    });
    let summary = run_to_end(config, local.path(), watched.clone(), task).await;
    assert!(summary.applied);
    assert!(
        watched.overlapped.load(std::sync::atomic::Ordering::SeqCst),
        "the host's shell was not started while rsync pushed"
    );
}
