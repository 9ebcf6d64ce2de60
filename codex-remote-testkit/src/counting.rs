//! A transport decorator that counts what crosses to the host: commands (each one an SSH channel
//! and a login shell), commands that ran the host's shell init, and rsync connections.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use codex_remote_core::host::HostSpec;
use codex_remote_core::transport::{
    CommandSpec, RemoteProcess, RsyncRemote, SharedTransport, Transport, TransportError,
};

/// Counts round trips through an inner transport.
pub struct CountingTransport {
    inner: SharedTransport,
    commands: AtomicU32,
    shell_inits: AtomicU32,
    rsyncs: AtomicU32,
    log: std::sync::Mutex<Vec<String>>,
}

impl CountingTransport {
    /// Wraps `inner`.
    pub fn new(inner: SharedTransport) -> Arc<Self> {
        Arc::new(Self {
            inner,
            commands: AtomicU32::new(0),
            shell_inits: AtomicU32::new(0),
            rsyncs: AtomicU32::new(0),
            log: Default::default(),
        })
    }

    /// Commands started (each a channel to the host).
    pub fn commands(&self) -> u32 {
        self.commands.load(Ordering::SeqCst)
    }

    /// Commands that ran the host's shell init.
    pub fn shell_inits(&self) -> u32 {
        self.shell_inits.load(Ordering::SeqCst)
    }

    /// rsync connections handed out.
    pub fn rsyncs(&self) -> u32 {
        self.rsyncs.load(Ordering::SeqCst)
    }

    /// What each command was, in order (program and first argument).
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

#[async_trait]
impl Transport for CountingTransport {
    fn host(&self) -> &HostSpec {
        self.inner.host()
    }

    async fn spawn(&self, spec: CommandSpec) -> Result<RemoteProcess, TransportError> {
        self.commands.fetch_add(1, Ordering::SeqCst);
        if spec.shell_init && self.inner.host().shell_init.is_some() {
            self.shell_inits.fetch_add(1, Ordering::SeqCst);
        }
        self.log.lock().unwrap().push(format!(
            "{} {}",
            spec.program,
            spec.args.first().map(String::as_str).unwrap_or("")
        ));
        self.inner.spawn(spec).await
    }

    async fn rsync_remote(&self) -> Result<Option<RsyncRemote>, TransportError> {
        let remote = self.inner.rsync_remote().await?;
        if remote.is_some() {
            self.rsyncs.fetch_add(1, Ordering::SeqCst);
        }
        Ok(remote)
    }

    async fn warm_up(&self) {
        self.inner.warm_up().await
    }

    async fn close(&self) -> Result<(), TransportError> {
        self.inner.close().await
    }
}
