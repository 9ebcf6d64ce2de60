//! The run pipeline and orchestration through the [`Engine`], over the fake transport and the
//! fake executor: milliseconds, no sshd, no Codex. (The real-sshd / real-Codex round trips live
//! in the CLI's tests and `run_round_trips.rs`.)

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use codex_remote_core::orchestrate::{OrchestrateOptions, TaskOutcome};
use codex_remote_core::runs::Phase;
use codex_remote_core::sync::{PushProgress, PushReport, PushRequest, SyncError, Syncer};
use codex_remote_core::transport::SharedTransport;
use codex_remote_core::{
    Config, Engine, Error, ErrorKind, Event, EventKind, PlanOverrides, RunOptions, RunResult,
    TaskSpec,
};
use codex_remote_testkit::{AgentEnd, FakeAttempt, FakeExecutor, FakeTransport, Gate};
use sha1::{Digest, Sha1};
use tokio::sync::mpsc;

/// A syncer that pushes nothing and counts: the engine takes it instead of rsync.
#[derive(Clone, Default)]
struct CountingSyncer(Arc<AtomicU32>);

#[async_trait]
impl Syncer for CountingSyncer {
    fn name(&self) -> &'static str {
        "counting"
    }

    async fn push(
        &self,
        request: &PushRequest,
        _progress: Option<mpsc::Sender<PushProgress>>,
    ) -> Result<PushReport, SyncError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(PushReport {
            remote_dir: request.remote_dir.clone(),
            method: "counting",
            files: 0,
            files_transferred: 0,
            total_bytes: 0,
            duration: Duration::ZERO,
        })
    }
}

struct Setup {
    project: tempfile::TempDir,
    fake: FakeTransport,
    executor: FakeExecutor,
    pushes: Arc<AtomicU32>,
    engine: Engine,
}

fn setup(executor: FakeExecutor) -> Setup {
    let project = tempfile::tempdir().unwrap();
    let fake = FakeTransport::default();
    let syncer = CountingSyncer::default();
    let pushes = syncer.0.clone();
    let transport = fake.clone();
    let engine = Engine::new(Config::builtin(), project.path())
        .with_transports(move |_host| Ok(Arc::new(transport.clone()) as SharedTransport))
        .with_syncers(move |_t: SharedTransport| Arc::new(syncer.clone()) as Arc<dyn Syncer>)
        .with_executor(executor.clone());
    Setup {
        project,
        fake,
        executor,
        pushes,
        engine,
    }
}

fn blob(contents: &str) -> String {
    let mut hash = Sha1::new();
    hash.update(format!("blob {}\0", contents.len()).as_bytes());
    hash.update(contents.as_bytes());
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A git patch creating `path` with one line.
fn new_file(path: &str, line: &str) -> String {
    format!(
        "diff --git a/{path} b/{path}\nnew file mode 100644\nindex {}..{}\n--- /dev/null\n+++ b/{path}\n@@ -0,0 +1 @@\n+{line}\n",
        "0".repeat(40),
        blob(&format!("{line}\n"))
    )
}

/// A git patch changing the one line of `path`.
fn modify(path: &str, old: &str, new: &str) -> String {
    format!(
        "diff --git a/{path} b/{path}\nindex {}..{} 100644\n--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-{old}\n+{new}\n",
        blob(&format!("{old}\n")),
        blob(&format!("{new}\n"))
    )
}

fn task(id: &str) -> TaskSpec {
    TaskSpec::parse_str(
        &format!("id: {id}\ntitle: T\ntype: quick-fix\nrequirements: [Do it]\n"),
        "t.yaml",
    )
    .unwrap()
}

fn fast(mut options: RunOptions) -> RunOptions {
    options.initial_delay = Duration::from_millis(1);
    options.max_delay = Duration::from_millis(2);
    options
}

const HOST: PlanOverrides<'static> = PlanOverrides {
    host: Some("fake"),
    model: None,
};

/// Plans task `t1` on the fake host, runs it and waits.
async fn run(s: &Setup, options: RunOptions) -> Result<RunResult, Error> {
    let plan = s.engine.plan(task("t1"), &HOST).unwrap();
    s.engine.start(&plan, options).await?.wait().await
}

async fn collect(mut rx: mpsc::Receiver<Event>) -> Vec<Event> {
    let mut events = Vec::new();
    while let Some(event) = rx.recv().await {
        events.push(event);
    }
    events
}

fn names(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            serde_json::to_value(e).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn a_run_brings_back_its_patch_applies_it_and_leaves_nothing_on_the_host() {
    let patch = new_file("hello.txt", "hi");
    let s = setup(FakeExecutor::new([
        FakeAttempt::succeeds().with_patch(patch.clone())
    ]));
    let plan = s.engine.plan(task("t1"), &HOST).unwrap();
    let mut handle = s
        .engine
        .start(&plan, fast(s.engine.run_options()))
        .await
        .unwrap();
    let events = tokio::spawn(collect(handle.events().unwrap()));
    let run_id = handle.id().to_string();
    let done = handle.wait().await.unwrap();
    let events = events.await.unwrap();

    assert_eq!(
        done.patch,
        patch.as_bytes(),
        "the summary carries the patch bytes"
    );
    assert_eq!(done.summary.files.len(), 1);
    assert_eq!(done.summary.files[0].path(), "hello.txt");
    assert!(done.summary.applied);
    assert_eq!(done.summary.last_message.as_deref(), Some("done"));
    assert_eq!(
        std::fs::read_to_string(s.project.path().join("hello.txt")).unwrap(),
        "hi\n"
    );
    assert_eq!(
        s.pushes.load(Ordering::SeqCst),
        1,
        "the injected syncer pushed"
    );
    let record = s.engine.list().unwrap().pop().unwrap();
    assert_eq!(record.id, run_id);
    assert_eq!(record.phase, Phase::Completed);
    assert!(record.remote_removed);
    assert_released(&s, &record);
    let names = names(&events);
    for expected in ["phase", "pushed", "started", "launched", "codex"] {
        assert!(
            names.contains(&expected.to_string()),
            "{expected} in {names:?}"
        );
    }
    assert!(events.contains(&Event::from(EventKind::Phase {
        phase: Phase::Completed
    })));
}

#[tokio::test]
async fn without_apply_the_host_is_still_cleaned_and_the_patch_returned() {
    let patch = new_file("hello.txt", "hi");
    let s = setup(FakeExecutor::new([
        FakeAttempt::succeeds().with_patch(patch.clone())
    ]));
    let mut options = fast(s.engine.run_options());
    options.apply = false;
    // Nobody takes the events: the run must not wait for a reader.
    let done = run(&s, options).await.unwrap();
    assert_eq!(done.patch, patch.as_bytes());
    assert!(!done.summary.applied);
    assert!(!s.project.path().join("hello.txt").exists());
    let record = s.engine.list().unwrap().pop().unwrap();
    assert!(
        record.remote_removed,
        "host cleanup does not depend on applying"
    );
    assert_released(&s, &record);
    // Applied later from the local record alone.
    let applied = s
        .engine
        .apply(&record.id, &Default::default())
        .await
        .unwrap();
    assert_eq!(applied.files[0].path(), "hello.txt");
    assert!(
        applied.remote_removed,
        "the tree went when the run ended: reported as gone, whoever removed it"
    );
    assert!(s.project.path().join("hello.txt").exists());
    let again = s.engine.apply(&record.id, &Default::default()).await;
    assert_eq!(
        again.unwrap_err().kind(),
        ErrorKind::BadInput,
        "applied once"
    );
}

#[tokio::test]
async fn rate_limits_are_retried_within_the_budget() {
    let s = setup(FakeExecutor::new([
        FakeAttempt::rate_limited(),
        FakeAttempt::rate_limited(),
        FakeAttempt::succeeds(),
    ]));
    let plan = s.engine.plan(task("t1"), &HOST).unwrap();
    let mut options = fast(s.engine.run_options());
    options.retries = 2;
    let mut handle = s.engine.start(&plan, options).await.unwrap();
    let events = tokio::spawn(collect(handle.events().unwrap()));
    let done = handle.wait().await.unwrap();
    assert_eq!(done.summary.attempts, 3);
    let retries = events
        .await
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::Retrying { .. }))
        .count();
    assert_eq!(retries, 2);
    assert_eq!(s.executor.launches().len(), 3);
}

#[tokio::test]
async fn a_rate_limit_past_the_budget_fails_as_rate_limited() {
    let s = setup(FakeExecutor::new([
        FakeAttempt::rate_limited(),
        FakeAttempt::rate_limited(),
    ]));
    let mut options = fast(s.engine.run_options());
    options.retries = 1;
    let error = run(&s, options).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::RateLimited, "{error}");
    assert_eq!(s.engine.list().unwrap()[0].phase, Phase::Failed);
}

#[tokio::test]
async fn a_vanished_agent_is_relaunched_once_then_the_run_fails() {
    let s = setup(FakeExecutor::new([
        FakeAttempt::vanishes(),
        FakeAttempt::succeeds().with_patch(new_file("a.txt", "a")),
    ]));
    let done = run(&s, fast(s.engine.run_options())).await.unwrap();
    assert_eq!(done.summary.attempts, 2);
    assert!(s.project.path().join("a.txt").exists());

    let s = setup(FakeExecutor::new([
        FakeAttempt::vanishes(),
        FakeAttempt::vanishes(),
    ]));
    let error = run(&s, fast(s.engine.run_options())).await.unwrap_err();
    assert!(
        matches!(
            &error,
            Error::Exec {
                failure: codex_remote_core::executor::ExecFailure::AgentVanished { .. },
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(s.executor.launches().len(), 2, "relaunched once, not more");
}

#[tokio::test]
async fn a_run_past_its_timeout_is_cancelled_on_the_host() {
    let s = setup(FakeExecutor::new([FakeAttempt::hangs()]));
    let mut options = fast(s.engine.run_options());
    options.timeout = Some(Duration::from_millis(20));
    let error = run(&s, options).await.unwrap_err();
    assert!(
        error.to_string().contains("did not finish within"),
        "{error}"
    );
    assert_eq!(s.executor.cancels().len(), 1, "the agent was cancelled");
    assert_eq!(s.engine.list().unwrap()[0].phase, Phase::Failed);
}

#[tokio::test]
async fn cancelling_a_handle_ends_the_agent_and_reports_cancelled() {
    let s = setup(FakeExecutor::new([FakeAttempt::hangs()]));
    let plan = s.engine.plan(task("t1"), &HOST).unwrap();
    let mut handle = s
        .engine
        .start(&plan, fast(s.engine.run_options()))
        .await
        .unwrap();
    let mut events = handle.events().unwrap();
    // Cancel once the agent is known to be working.
    while let Some(event) = events.recv().await {
        if matches!(event.kind, EventKind::Codex { .. }) {
            break;
        }
    }
    handle.cancel();
    let error = handle.wait().await.unwrap_err();
    assert!(matches!(error, Error::Cancelled { .. }), "{error}");
    assert_eq!(error.kind(), ErrorKind::Cancelled);
    assert_eq!(s.executor.cancels().len(), 1);
    assert_eq!(s.engine.list().unwrap()[0].phase, Phase::Cancelled);
}

fn write_plan(dir: &Path, ids: &[&str]) -> std::path::PathBuf {
    let tasks: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| {
            serde_json::json!({
                "task_id": id, "executor": "codex-remote", "instruction": format!("do {id}"),
                "status": "pending"
            })
        })
        .collect();
    let path = dir.join("task_plan.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&serde_json::json!({ "tasks": tasks })).unwrap(),
    )
    .unwrap();
    path
}

fn statuses(path: &Path) -> Vec<String> {
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    plan["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_lost_stream_is_followed_again_and_the_run_finishes_once() {
    let s = setup(FakeExecutor::new([FakeAttempt::succeeds()
        .with_patch(new_file("a.txt", "a"))
        .ending(AgentEnd::DisconnectThenExit(0))]));
    let plan_path = write_plan(s.project.path(), &["t1"]);
    let plan = s.engine.plan_entry(&plan_path, "t1", &HOST).unwrap();
    assert_eq!(
        plan.instruction.text, "do t1",
        "a plan entry's instruction is sent as written"
    );
    let mut options = fast(s.engine.run_options());
    options.task_plan = Some((plan_path.clone(), "t1".into()));
    let handle = s.engine.start(&plan, options).await.unwrap();
    let run_id = handle.id().to_string();
    // The agent lives on after the stream breaks: the follow picks it up again (never a second
    // agent), and the run finishes once.
    let done = handle.wait().await.unwrap();
    assert!(done.summary.applied);
    assert_eq!(statuses(&plan_path), ["completed"]);
    let events = std::fs::read_to_string(
        s.project
            .path()
            .join(".codex-remote/runs")
            .join(&run_id)
            .join("events.jsonl"),
    )
    .unwrap();
    assert_eq!(
        events.lines().count(),
        4,
        "each event recorded once:\n{events}"
    );
    let error = s.engine.attach(&run_id).await.unwrap_err();
    assert!(matches!(error, Error::NotRunning { .. }), "{error}");
}

#[tokio::test]
async fn orchestration_applies_in_plan_order_around_a_failing_task() {
    let gate = Gate::new();
    // t3 changes what t1 creates, so it applies only after t1, whichever finishes first.
    let executor = FakeExecutor::default()
        .for_task(
            "t1",
            [FakeAttempt::succeeds()
                .with_patch(new_file("a.txt", "one"))
                .gated(&gate)],
        )
        .for_task("t2", [FakeAttempt::fails("the build is broken")])
        .for_task(
            "t3",
            [FakeAttempt::succeeds().with_patch(modify("a.txt", "one", "two"))],
        );
    let s = setup(executor);
    let plan_path = write_plan(s.project.path(), &["t1", "t2", "t3"]);
    let mut run = fast(s.engine.run_options());
    run.retries = 0;
    let options = OrchestrateOptions {
        parallel: 3,
        fail_fast: false,
        run,
    };
    let (tx, mut rx) = mpsc::channel(1024);
    let engine = s.engine.clone();
    let path = plan_path.clone();
    let orchestration = tokio::spawn(async move {
        engine
            .orchestrate(&path, &["fake".to_string()], options, Some(tx))
            .await
    });
    let mut finished = Vec::new();
    while let Some(event) = rx.recv().await {
        let task = event.task_id.clone().unwrap();
        match &event.kind {
            // t3's result is in: only now may t1 finish.
            EventKind::Phase {
                phase: Phase::Completed,
            } if task == "t3" => gate.open(),
            EventKind::Finished { outcome, .. } => finished.push((task, *outcome)),
            _ => {}
        }
    }
    let summary = orchestration.await.unwrap().unwrap();
    assert_eq!(summary.completed, ["t1", "t3"]);
    assert_eq!(summary.failed.len(), 1);
    assert_eq!(summary.failed[0].0, "t2");
    assert!(summary.failed[0].1.contains("the build is broken"));
    assert_eq!(
        finished,
        [
            ("t1".to_string(), TaskOutcome::Completed),
            ("t2".to_string(), TaskOutcome::Failed),
            ("t3".to_string(), TaskOutcome::Completed)
        ],
        "settled in plan order"
    );
    assert_eq!(
        std::fs::read_to_string(s.project.path().join("a.txt")).unwrap(),
        "two\n"
    );
    assert_eq!(statuses(&plan_path), ["completed", "failed", "completed"]);
    assert_eq!(s.pushes.load(Ordering::SeqCst), 1, "one push per host");
}

#[tokio::test]
async fn fail_fast_skips_the_rest_with_a_typed_outcome() {
    let executor = FakeExecutor::default()
        .for_task("t1", [FakeAttempt::fails("no")])
        .for_task("t2", [FakeAttempt::succeeds()]);
    let s = setup(executor);
    let plan_path = write_plan(s.project.path(), &["t1", "t2"]);
    let options = OrchestrateOptions {
        parallel: 1,
        fail_fast: true,
        run: fast(s.engine.run_options()),
    };
    let summary = s
        .engine
        .orchestrate(&plan_path, &["fake".to_string()], options, None)
        .await
        .unwrap();
    assert_eq!(summary.skipped, ["t2"]);
    assert_eq!(s.executor.launches().len(), 1, "t2 never started");
}

#[tokio::test]
async fn orchestrating_with_no_hosts_is_an_error_not_a_panic() {
    let s = setup(FakeExecutor::default());
    let plan_path = write_plan(s.project.path(), &["t1"]);
    let options = OrchestrateOptions {
        parallel: 1,
        fail_fast: false,
        run: s.engine.run_options(),
    };
    let error = s
        .engine
        .orchestrate(&plan_path, &[], options, None)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::BadInput);
    assert!(error.to_string().contains("no hosts"), "{error}");
}

/// The run gave its tree back to the host's pool: the lease naming it is gone, the tree stays
/// for the next run.
fn assert_released(s: &Setup, record: &codex_remote_core::runs::RunRecord) {
    let dir = &record.tree.as_ref().unwrap().dir;
    let slot = dir.rsplit_once('/').unwrap().0;
    assert!(s.fake.has_files_under(dir), "the tree stays in the pool");
    assert!(
        !s.fake.has_files_under(&format!("{slot}.lease")),
        "the run no longer holds its tree"
    );
}
