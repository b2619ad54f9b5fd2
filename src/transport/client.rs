//! What the views of one remote client share: its runtime, its transport,
//! its configuration, and its watch stream's task (started on first use).

use std::sync::{Arc, OnceLock};

use tokio::sync::mpsc;

use super::config::RemoteConfig;
use super::mux::{Command, ConnCounters, Mux};
use super::protocol::{Request, Response};
use super::transport_trait::Transport;
use crate::{Error, ErrorCode, Result};

/// What a client's views share.
pub(crate) struct Inner {
    /// The watch stream's task, started by the first watch.
    mux: OnceLock<(mpsc::UnboundedSender<Command>, Arc<ConnCounters>)>,
    /// Drives the transport and the watches. `Option` only so that `Drop`
    /// can shut it down without blocking (dropping the last handle inside
    /// an async task must not panic).
    rt: Option<tokio::runtime::Runtime>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) config: RemoteConfig,
    /// Set by `RemoteStore::close`: calls and new watches are refused.
    closed: std::sync::atomic::AtomicBool,
}

impl Inner {
    pub(crate) fn new(
        rt: tokio::runtime::Runtime,
        transport: Arc<dyn Transport>,
        config: RemoteConfig,
    ) -> Inner {
        Inner {
            mux: OnceLock::new(),
            rt: Some(rt),
            transport,
            config,
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Closes the client: every watch ends with `Disconnected`, later calls
    /// and watches fail.
    pub(crate) fn close(&self) {
        use std::sync::atomic::Ordering;
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some((tx, _)) = self.mux.get() {
            let _ = tx.send(Command::Close);
        }
    }

    /// The error of a closed client.
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::Transport {
                addr: String::new(),
                reason: "the client was closed".into(),
                source: None,
            });
        }
        Ok(())
    }

    /// The watch stream's task: its command channel and counters.
    pub(crate) fn mux(&self) -> (mpsc::UnboundedSender<Command>, Arc<ConnCounters>) {
        self.mux
            .get_or_init(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                let counters = Arc::new(ConnCounters::default());
                let mux = Mux::new(self.transport.clone(), self.config.clone(), rx, counters.clone());
                self.rt().spawn(mux.run());
                (tx, counters)
            })
            .clone()
    }

    /// One unary call, with the client's deadline.
    pub(crate) async fn call(&self, request: Request) -> Result<Response> {
        self.check_open()?;
        let timeout = self.config.call_timeout;
        match tokio::time::timeout(timeout, self.transport.call(request)).await {
            Ok(r) => r,
            Err(_) => Err(Error::Remote {
                code: ErrorCode::DeadlineExceeded,
                message: format!("no answer within the call deadline of {timeout:?}"),
            }),
        }
    }

    pub(crate) fn rt(&self) -> &tokio::runtime::Runtime {
        self.rt
            .as_ref()
            .expect("the runtime lives until Inner is dropped")
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
