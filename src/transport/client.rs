//! What the views of one remote client share: its runtime, its transport,
//! its configuration, and its watch stream's task (started on first use).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

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
    /// The way to the server; taken by `close` (the connection goes with
    /// the last clone: the watch stream's task and calls in flight hold
    /// theirs until they end).
    transport: parking_lot::RwLock<Option<Arc<dyn Transport>>>,
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
            transport: parking_lot::RwLock::new(Some(transport)),
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
        self.transport.write().take();
    }

    /// The transport, unless the client is closed.
    fn transport(&self) -> Result<Arc<dyn Transport>> {
        self.transport.read().clone().ok_or_else(closed)
    }

    /// The error of a closed client.
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(closed());
        }
        Ok(())
    }

    /// The watch stream's task: its command channel and counters. A closed
    /// client's is one whose task has ended (commands go nowhere; a watch
    /// opened on it ends `Disconnected`).
    pub(crate) fn mux(&self) -> (mpsc::UnboundedSender<Command>, Arc<ConnCounters>) {
        self.mux
            .get_or_init(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                let counters = Arc::new(ConnCounters::default());
                if let Ok(transport) = self.transport() {
                    let mux = Mux::new(transport, self.config.clone(), rx, counters.clone());
                    self.rt().spawn(mux.run());
                }
                (tx, counters)
            })
            .clone()
    }

    /// One unary call, with deadline `timeout`. A write whose answer
    /// is lost after it may have left (the deadline passed, the connection
    /// broke mid-call) fails with [`Error::OutcomeUnknown`]: it may have
    /// been applied. One that certainly never left (no connection could be
    /// made) fails with the transport's error.
    pub(crate) async fn call(&self, request: Request, timeout: Duration) -> Result<Response> {
        self.check_open()?;
        let transport = self.transport()?;
        let write = request.as_write();
        match tokio::time::timeout(timeout, transport.call(request)).await {
            Ok(Err(e)) if write.is_some() && !crate::error::never_sent(&e) && in_flight(&e) => {
                let (session, operation) = write.expect("a write");
                Err(Error::OutcomeUnknown {
                    session,
                    operation,
                    reason: e.to_string(),
                })
            }
            Ok(r) => r,
            Err(_) => match write {
                Some((session, operation)) => Err(Error::OutcomeUnknown {
                    session,
                    operation,
                    reason: format!("no answer within the call deadline of {timeout:?}"),
                }),
                None => Err(Error::Remote {
                    code: ErrorCode::DeadlineExceeded,
                    message: format!("no answer within the call deadline of {timeout:?}"),
                }),
            },
        }
    }

    pub(crate) fn rt(&self) -> &tokio::runtime::Runtime {
        self.rt
            .as_ref()
            .expect("the runtime lives until Inner is dropped")
    }
}

/// The error of a closed client.
fn closed() -> Error {
    Error::Transport {
        addr: String::new(),
        reason: "the client was closed".into(),
        source: None,
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Whether `e` is a failure of the way to the server (the server's own
/// errors are answers: the write did not apply).
fn in_flight(e: &Error) -> bool {
    matches!(e, Error::Transport { .. })
}
