//! A scripted [`Executor`]: each launch plays the next [`FakeAttempt`] (its Codex events, its
//! change, how it ends), so the run pipeline and `orchestrate` can be tested in milliseconds
//! with no sshd and no Codex. Pair it with [`FakeTransport`](crate::FakeTransport), whose
//! `prepare-run` / `retrieve-patch` / `remove-run` scripts it cooperates with: an attempt's
//! patch is written to [`FAKE_PATCH_FILE`] in the run's tree, and retrieving prints it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use codex_remote_core::events::CodexEvent;
use codex_remote_core::executor::{AgentState, ExecEvent, ExecRequest, Executor, FollowEnd};
use codex_remote_core::transport::{ExitStatus, Transport, TransportError, TransportExt};
use tokio::sync::{mpsc, Notify};

/// Where, in a run's tree on the fake host, an attempt leaves its change for `retrieve-patch`.
pub const FAKE_PATCH_FILE: &str = ".codex-remote-fake.patch";

/// How a fake agent ends.
#[derive(Debug, Clone)]
pub enum AgentEnd {
    /// It exits with this code after its events.
    Exit(i32),
    /// Its process disappears without a status.
    Vanish,
    /// It never ends on its own (until cancelled).
    Hang,
    /// The first follow's stream breaks after the events (the agent goes on); the next follow
    /// finds it exited with this code.
    DisconnectThenExit(i32),
}

/// Opens when the test says so: an attempt with a gate ends only after [`Gate::open`].
#[derive(Debug, Clone, Default)]
pub struct Gate(Arc<Notify>);

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets the attempt end.
    pub fn open(&self) {
        self.0.notify_one();
    }
}

/// One scripted agent attempt.
#[derive(Debug, Clone)]
pub struct FakeAttempt {
    /// Codex's JSON Lines, in order.
    pub events: Vec<String>,
    /// The run's change (written to the run's tree at launch).
    pub patch: Option<Vec<u8>>,
    /// How it ends.
    pub end: AgentEnd,
    /// Its stderr.
    pub stderr: String,
    /// Ends only once opened.
    pub gate: Option<Gate>,
}

impl FakeAttempt {
    /// A turn that completes with a message, exit 0.
    pub fn succeeds() -> Self {
        Self {
            events: vec![
                r#"{"type":"thread.started","thread_id":"fake-thread"}"#.into(),
                r#"{"type":"turn.started"}"#.into(),
                r#"{"type":"item.completed","item":{"id":"item_0","type":"agent_message","text":"done"}}"#.into(),
                r#"{"type":"turn.completed","usage":{"input_tokens":10,"cached_input_tokens":0,"output_tokens":5}}"#.into(),
            ],
            patch: None,
            end: AgentEnd::Exit(0),
            stderr: String::new(),
            gate: None,
        }
    }

    /// A turn that fails with this message, exit 1.
    pub fn fails(message: &str) -> Self {
        Self {
            events: vec![
                r#"{"type":"thread.started","thread_id":"fake-thread"}"#.into(),
                serde_json::json!({"type": "turn.failed", "error": {"message": message}})
                    .to_string(),
            ],
            patch: None,
            end: AgentEnd::Exit(1),
            stderr: String::new(),
            gate: None,
        }
    }

    /// A turn refused with 429 Too Many Requests.
    pub fn rate_limited() -> Self {
        Self::fails("exceeded retry limit, last status: 429 Too Many Requests")
    }

    /// An agent that is gone without a status after starting its turn.
    pub fn vanishes() -> Self {
        Self {
            end: AgentEnd::Vanish,
            ..Self::fails("unused")
        }
        .with_events(vec![r#"{"type":"turn.started"}"#.into()])
    }

    /// An agent that works until cancelled.
    pub fn hangs() -> Self {
        Self {
            end: AgentEnd::Hang,
            ..Self::succeeds()
        }
        .with_events(vec![r#"{"type":"turn.started"}"#.into()])
    }

    /// Leaves this change in the run's tree.
    pub fn with_patch(mut self, patch: impl Into<Vec<u8>>) -> Self {
        self.patch = Some(patch.into());
        self
    }

    /// Prints these events instead.
    pub fn with_events(mut self, events: Vec<String>) -> Self {
        self.events = events;
        self
    }

    /// Ends this way instead.
    pub fn ending(mut self, end: AgentEnd) -> Self {
        self.end = end;
        self
    }

    /// Ends only once `gate` is opened.
    pub fn gated(mut self, gate: &Gate) -> Self {
        self.gate = Some(gate.clone());
        self
    }
}

struct Agent {
    attempt: FakeAttempt,
    pid: u32,
    follows: u32,
    cancelled: Arc<Notify>,
    state: AgentState,
}

#[derive(Default)]
struct State {
    default: VecDeque<FakeAttempt>,
    by_task: HashMap<String, VecDeque<FakeAttempt>>,
    agents: HashMap<String, Agent>,
    launches: Vec<(String, ExecRequest)>,
    cancels: Vec<String>,
    next_pid: u32,
}

/// A scripted agent. Clones share their script and log.
#[derive(Clone, Default)]
pub struct FakeExecutor {
    state: Arc<Mutex<State>>,
}

impl FakeExecutor {
    /// An executor playing these attempts in launch order (for any task without its own).
    pub fn new(attempts: impl IntoIterator<Item = FakeAttempt>) -> Self {
        let executor = Self::default();
        executor.state.lock().unwrap().default = attempts.into_iter().collect();
        executor
    }

    /// Plays these attempts for the runs of task `task_id` (run ids start with the task id).
    pub fn for_task(self, task_id: &str, attempts: impl IntoIterator<Item = FakeAttempt>) -> Self {
        self.state
            .lock()
            .unwrap()
            .by_task
            .insert(task_id.to_string(), attempts.into_iter().collect());
        self
    }

    /// Every launch: the agent directory and the request.
    pub fn launches(&self) -> Vec<(String, ExecRequest)> {
        self.state.lock().unwrap().launches.clone()
    }

    /// The agent directories cancelled.
    pub fn cancels(&self) -> Vec<String> {
        self.state.lock().unwrap().cancels.clone()
    }

    fn next_attempt(state: &mut State, agent_dir: &str) -> Option<FakeAttempt> {
        // `<state>/agents/<run-id>/<attempt>`, run id `<task-id>-<date>-<time>-<rand>`.
        let run_id = agent_dir.rsplit('/').nth(1).unwrap_or_default();
        let task = state
            .by_task
            .keys()
            .filter(|task| run_id.starts_with(&format!("{task}-")))
            .max_by_key(|task| task.len())
            .cloned();
        match task {
            Some(task) => state.by_task.get_mut(&task)?.pop_front(),
            None => state.default.pop_front(),
        }
    }
}

#[async_trait]
impl Executor for FakeExecutor {
    async fn launch(
        &self,
        transport: &dyn Transport,
        agent_dir: &str,
        request: &ExecRequest,
    ) -> Result<u32, TransportError> {
        let attempt = {
            let mut state = self.state.lock().unwrap();
            state
                .launches
                .push((agent_dir.to_string(), request.clone()));
            if state.agents.contains_key(agent_dir) {
                return Err(TransportError::CommandFailed {
                    host: transport.host().name.clone(),
                    command: "launch the agent".into(),
                    status: ExitStatus::Code(75),
                    stderr: "this run's agent was already launched".into(),
                });
            }
            Self::next_attempt(&mut state, agent_dir).unwrap_or_else(|| {
                panic!("the fake executor has no attempt scripted for {agent_dir}")
            })
        };
        if let Some(patch) = &attempt.patch {
            transport
                .write_file_atomic(&format!("{}/{FAKE_PATCH_FILE}", request.dir), patch)
                .await?;
        }
        let mut state = self.state.lock().unwrap();
        state.next_pid += 1;
        let pid = 1000 + state.next_pid;
        state.agents.insert(
            agent_dir.to_string(),
            Agent {
                attempt,
                pid,
                follows: 0,
                cancelled: Arc::new(Notify::new()),
                state: AgentState::Running { pid },
            },
        );
        Ok(pid)
    }

    async fn follow(
        &self,
        _transport: &dyn Transport,
        agent_dir: &str,
        offset: u64,
        events: mpsc::Sender<ExecEvent>,
    ) -> Result<FollowEnd, TransportError> {
        let (attempt, follows, cancelled) = {
            let mut state = self.state.lock().unwrap();
            let agent = state.agents.get_mut(agent_dir).expect("launched first");
            agent.follows += 1;
            (
                agent.attempt.clone(),
                agent.follows,
                agent.cancelled.clone(),
            )
        };
        let mut position = 0u64;
        for line in &attempt.events {
            let end = position + line.len() as u64 + 1;
            if end > offset {
                let event = CodexEvent::parse(line);
                let _ = events
                    .send(ExecEvent {
                        raw: line.clone(),
                        event,
                        log_bytes: line.len() as u64 + 1,
                    })
                    .await;
            }
            position = end;
        }
        if let Some(gate) = &attempt.gate {
            gate.0.notified().await;
        }
        let (status, vanished) = match attempt.end {
            AgentEnd::Exit(code) => (Some(ExitStatus::Code(code)), false),
            AgentEnd::Vanish => (None, true),
            AgentEnd::DisconnectThenExit(_) if follows == 1 => {
                return Ok(FollowEnd {
                    status: None,
                    vanished: false,
                    stderr: String::new(),
                })
            }
            AgentEnd::DisconnectThenExit(code) => (Some(ExitStatus::Code(code)), false),
            AgentEnd::Hang => {
                cancelled.notified().await;
                (Some(ExitStatus::Signal(15)), false)
            }
        };
        let mut state = self.state.lock().unwrap();
        if let Some(agent) = state.agents.get_mut(agent_dir) {
            agent.state = match status {
                Some(status) => AgentState::Finished {
                    code: status.code(),
                },
                None => AgentState::Vanished,
            };
        }
        Ok(FollowEnd {
            status,
            vanished,
            stderr: attempt.stderr.clone(),
        })
    }

    async fn probe(
        &self,
        _transport: &dyn Transport,
        agent_dir: &str,
    ) -> Result<AgentState, TransportError> {
        let state = self.state.lock().unwrap();
        Ok(state
            .agents
            .get(agent_dir)
            .map(|a| a.state.clone())
            .unwrap_or(AgentState::NotStarted))
    }

    async fn cancel(
        &self,
        _transport: &dyn Transport,
        agent_dir: &str,
    ) -> Result<(), TransportError> {
        let mut state = self.state.lock().unwrap();
        state.cancels.push(agent_dir.to_string());
        if let Some(agent) = state.agents.get_mut(agent_dir) {
            if let AgentState::Running { pid } = agent.state {
                debug_assert_eq!(pid, agent.pid);
                agent.state = AgentState::Finished { code: 143 };
            }
            agent.cancelled.notify_one();
        }
        Ok(())
    }
}

/// An agent that runs one shell command in the run's tree (through the transport, so over a
/// real sshd too) when launched, and is finished at once: a stand-in for Codex when only the
/// change matters.
#[derive(Debug, Clone)]
pub struct ShellAgent {
    script: String,
}

impl ShellAgent {
    /// The agent that runs `script` with `sh -c`.
    pub fn new(script: &str) -> Self {
        Self {
            script: script.to_string(),
        }
    }
}

#[async_trait]
impl Executor for ShellAgent {
    async fn launch(
        &self,
        transport: &dyn Transport,
        _agent_dir: &str,
        request: &ExecRequest,
    ) -> Result<u32, TransportError> {
        let spec = codex_remote_core::transport::CommandSpec::new("sh")
            .args(["-c", &self.script])
            .cwd(request.dir.clone());
        transport.run_checked(spec).await?;
        Ok(1)
    }

    async fn follow(
        &self,
        _transport: &dyn Transport,
        _agent_dir: &str,
        _offset: u64,
        _events: mpsc::Sender<ExecEvent>,
    ) -> Result<FollowEnd, TransportError> {
        Ok(FollowEnd {
            status: Some(ExitStatus::Code(0)),
            vanished: false,
            stderr: String::new(),
        })
    }

    async fn probe(
        &self,
        _transport: &dyn Transport,
        _agent_dir: &str,
    ) -> Result<AgentState, TransportError> {
        Ok(AgentState::Finished { code: 0 })
    }

    async fn cancel(
        &self,
        _transport: &dyn Transport,
        _agent_dir: &str,
    ) -> Result<(), TransportError> {
        Ok(())
    }
}
