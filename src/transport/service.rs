//! [`Service`]: any store served to remote clients, independent of how bytes
//! move. Every transport's server side is this service behind a codec: it
//! answers [`Request`]s through the store's operation table and runs watch
//! streams over the store's watches.
//!
//! The service is generic over an [`AsyncVarStore`]: the in-process
//! [`SessionStore`] (whose operations never wait), the etcd store's async
//! view, the durable store. Limits are checked here, once, for every store.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use tokio::sync::mpsc;

use super::limits::{Limits, metadata_bytes, value_bytes};
use super::protocol::{ClientMessage, Request, Response, ServerMessage};
use super::server_stream::{self, StreamContext};
use crate::{AsyncVarStore, Error, Result, SessionStore, Value};

/// The message of every refusal of a server that is not serving (see
/// [`Service::set_serving`]); clients given several servers recognise it
/// and move on.
pub(crate) const NOT_SERVING: &str = "not serving: this server cannot reach its store; try another server";

/// The message of a watch stream ended, or refused, because the server is
/// shutting down.
pub(crate) const SHUTTING_DOWN: &str = "the server is shutting down";

/// Whether `e` is a server's refusal to serve at all — not serving, or
/// shutting down — as opposed to an answer of its store: a client given
/// several servers moves to the next on it. A call refused so was never
/// read (the refusal comes before the store), so it may be sent again
/// elsewhere. One rule, for every client (`grpc/client.rs`).
#[cfg_attr(not(feature = "grpc"), allow(dead_code))]
pub(crate) fn refused(e: &Error) -> bool {
    matches!(
        e,
        Error::Remote {
            code: crate::ErrorCode::Unavailable,
            message,
        } if message == NOT_SERVING || message == SHUTTING_DOWN
    )
}

/// A store served to remote clients (by default a [`SessionStore`]; any
/// [`AsyncVarStore`]): the protocol-neutral server side that every
/// [`Transport`](super::Transport) shares.
///
/// Limits (all configurable): values up to 4 MiB, at most 10 000 items per
/// batch, multi-get, watch or resume, 100 000 watches open at once on the
/// whole service and 100 000 on one stream. Watch streams: heartbeats every
/// 5 s, a client silent for 15 s is dropped, at most 256 events and about
/// 4 MiB of values per message. Requests over a limit fail with
/// [`Error::LimitExceeded`] and change nothing; a watch over a limit fails
/// alone (its stream goes on).
///
/// Cloning is cheap; clones serve the same store and share
/// [`close_watches`](Service::close_watches).
#[derive(Clone, Debug)]
#[must_use = "a service does nothing until a transport serves it"]
pub struct Service<S = SessionStore> {
    store: S,
    limits: Limits,
    /// Set by `close_watches` and `set_serving(false)`: every open watch
    /// stream ends, new ones are refused.
    closing: tokio::sync::watch::Receiver<bool>,
    close: Arc<tokio::sync::watch::Sender<bool>>,
    /// `close_watches` was called: for good.
    shut_down: Arc<AtomicBool>,
    /// `set_serving(false)`: calls are refused too, until `set_serving(true)`.
    not_serving: Arc<AtomicBool>,
    /// Open watches, across every stream and clone.
    open_watches: Arc<AtomicUsize>,
    max_watches: usize,
}

impl<S: AsyncVarStore + Clone + Send + Sync + 'static> Service<S> {
    /// Serves `store` with the default limits.
    pub fn new(store: S) -> Service<S> {
        let (close, closing) = tokio::sync::watch::channel(false);
        Service {
            store,
            limits: Limits::default(),
            closing,
            close: Arc::new(close),
            shut_down: Arc::default(),
            not_serving: Arc::default(),
            open_watches: Arc::default(),
            max_watches: 100_000,
        }
    }

    /// Most watches open at once, over every stream (default 100 000);
    /// past it, a new watch fails with [`Error::LimitExceeded`]
    /// (RESOURCE_EXHAUSTED), alone.
    pub fn max_watches(mut self, n: usize) -> Self {
        self.max_watches = n;
        self
    }

    /// Most watches open at once on one stream, that is one connection
    /// (default 100 000).
    pub fn max_watches_per_stream(mut self, n: usize) -> Self {
        self.limits.max_watches_per_stream = n;
        self
    }

    /// Watches open now, over every stream.
    pub fn open_watches(&self) -> usize {
        self.open_watches.load(Ordering::Relaxed)
    }

    /// The store served.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// How often a remote watch sends a heartbeat (between 1 ms and a day).
    pub fn heartbeat_interval(mut self, d: Duration) -> Self {
        self.limits.heartbeat_interval = d.clamp(Duration::from_millis(1), Duration::from_secs(24 * 3600));
        self
    }

    /// How long a remote watch may hear nothing from its client before the
    /// server closes it and frees everything it held (between 1 ms and a
    /// year).
    pub fn heartbeat_timeout(mut self, d: Duration) -> Self {
        self.limits.heartbeat_timeout = d.clamp(Duration::from_millis(1), super::MAX_DURATION);
        self
    }

    /// Largest string or vector value accepted, in bytes (4-byte floats).
    pub fn max_value_bytes(mut self, n: usize) -> Self {
        self.limits.max_value_bytes = n;
        self
    }

    /// Most items in one batch update or multi-get, and most variables in
    /// one watch.
    pub fn max_batch_items(mut self, n: usize) -> Self {
        self.limits.max_items = n;
        self
    }

    /// Most events packed into one watch message (at least 1).
    pub fn max_events_per_message(mut self, n: usize) -> Self {
        self.limits.max_events_per_message = n.max(1);
        self
    }

    /// Most bytes of metadata (keys and values) plus source in one request's
    /// session, variable or change (default 64 KiB). A change's metadata
    /// travels with every event of the change, so it is bounded apart from
    /// values.
    pub fn max_metadata_bytes(mut self, n: usize) -> Self {
        self.limits.max_metadata_bytes = n;
        self
    }

    /// Roughly how many bytes of events one watch message may carry before
    /// the rest goes into the next message: values, old values, metadata,
    /// sources, ids and names, plus a small allowance per event (a single
    /// event larger than this is still sent, alone). Snapshots are cut the
    /// same way; the last part carries `sync_complete`.
    pub fn max_message_value_bytes(mut self, n: usize) -> Self {
        self.limits.max_message_value_bytes = n;
        self
    }

    #[cfg(feature = "grpc")]
    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Ends every open watch stream (with [`ErrorCode::Unavailable`], so
    /// that clients reconnect later or elsewhere) and refuses new ones, for
    /// good: servers call this when they shut down. Calls still work.
    ///
    /// [`ErrorCode::Unavailable`]: crate::ErrorCode::Unavailable
    pub fn close_watches(&self) {
        // Under the channel's lock, as `set_serving`: a probe turning the
        // service back on cannot undo a shutdown.
        self.close.send_modify(|closing| {
            self.shut_down.store(true, Ordering::SeqCst);
            *closing = true;
        });
    }

    /// Whether this server can serve: a replica whose store became
    /// unreachable (its etcd cluster lost) calls `set_serving(false)`; it
    /// then ends every open watch stream and refuses every call and new
    /// stream with [`ErrorCode::Unavailable`] ("not serving"), so that
    /// clients given several servers move to another one, where their
    /// watches resume. `set_serving(true)` takes it back (not after
    /// [`close_watches`](Self::close_watches)). Servers built by
    /// [`GrpcService::serve`](crate::transport::grpc::GrpcService::serve)
    /// do this from their health probe.
    ///
    /// [`ErrorCode::Unavailable`]: crate::ErrorCode::Unavailable
    pub fn set_serving(&self, serving: bool) {
        self.close.send_modify(|closing| {
            self.not_serving.store(!serving, Ordering::SeqCst);
            *closing = !serving || self.shut_down.load(Ordering::SeqCst);
        });
    }

    /// The refusal of a server that is not serving.
    fn refuse_not_serving(&self) -> Result<()> {
        if self.not_serving.load(Ordering::SeqCst) {
            return Err(Error::Remote {
                code: crate::ErrorCode::Unavailable,
                message: NOT_SERVING.into(),
            });
        }
        Ok(())
    }

    /// Resolves once [`close_watches`](Self::close_watches) was called,
    /// or the service stopped serving, with the message a stream ends with
    /// ([`SHUTTING_DOWN`] or [`NOT_SERVING`]).
    pub(crate) fn closed(&self) -> impl Future<Output = &'static str> + Send + 'static {
        let mut rx = self.closing.clone();
        let (shut_down, not_serving) = (self.shut_down.clone(), self.not_serving.clone());
        async move {
            loop {
                if *rx.borrow_and_update() {
                    return if not_serving.load(Ordering::SeqCst) && !shut_down.load(Ordering::SeqCst) {
                        NOT_SERVING
                    } else {
                        SHUTTING_DOWN
                    };
                }
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    /// `LimitExceeded` if `n` items are more than one request may carry.
    pub(crate) fn check_items(&self, what: &str, n: usize) -> Result<()> {
        if n > self.limits.max_items {
            return Err(Error::LimitExceeded {
                what: what.into(),
                limit: self.limits.max_items,
                actual: n,
            });
        }
        Ok(())
    }

    fn check_value(&self, variable: &str, v: &Value) -> Result<()> {
        let n = value_bytes(v);
        if n > self.limits.max_value_bytes {
            return Err(Error::LimitExceeded {
                what: format!("bytes in the value of `{variable}`"),
                limit: self.limits.max_value_bytes,
                actual: n,
            });
        }
        Ok(())
    }

    fn check_metadata(&self, of: &str, metadata: &crate::Metadata, source: Option<&str>) -> Result<()> {
        let n = metadata_bytes(metadata) + source.map_or(0, str::len);
        if n > self.limits.max_metadata_bytes {
            return Err(Error::LimitExceeded {
                what: format!("bytes of metadata and source of {of}"),
                limit: self.limits.max_metadata_bytes,
                actual: n,
            });
        }
        Ok(())
    }

    /// Refuses a request over a limit (sizes, counts); changes nothing.
    fn check(&self, request: &Request) -> Result<()> {
        match request {
            Request::CreateSession { options, .. } | Request::GetOrCreateSession { options, .. } => {
                self.check_metadata("a session", &options.metadata, None)
            }
            Request::Register { def, .. } => {
                self.check_value(&def.name, &def.value)?;
                self.check_metadata("a variable", &def.metadata, None)
            }
            Request::GetMany { variables, .. } => {
                self.check_items("variables in one request", variables.len())
            }
            Request::Update {
                variable,
                value,
                options,
                ..
            } => {
                self.check_value(variable, value)?;
                self.check_metadata("a change", &options.metadata, options.source.as_deref())
            }
            Request::UpdateMany { items, options, .. } => {
                self.check_items("items in one batch", items.len())?;
                self.check_metadata("a change", &options.metadata, options.source.as_deref())?;
                items
                    .iter()
                    .try_for_each(|item| self.check_value(&item.ident, &item.value))
            }
            Request::Import { defs, .. } => {
                self.check_items("variables in one import", defs.len())?;
                defs.iter().try_for_each(|def| {
                    self.check_value(&def.name, &def.value)?;
                    self.check_metadata("a variable", &def.metadata, None)
                })
            }
            Request::GetSession { .. }
            | Request::DeleteSession { .. }
            | Request::ListSessions
            | Request::Get { .. }
            | Request::ListVariables { .. }
            | Request::DeleteVariable { .. } => Ok(()),
        }
    }

    /// Answers one request through the store's operation table. A request
    /// over a limit, or one the store rejects, changes nothing.
    pub async fn call(&self, request: Request) -> Result<Response> {
        self.refuse_not_serving()?;
        self.check(&request)?;
        self.store.call(request).await
    }

    /// Runs a connection's watch stream: `inbound` is what the client sends
    /// (creates, cancels, acks, heartbeats); the returned stream is what the
    /// server sends (updates of every watch, heartbeats). Each watch is
    /// registered atomically with its snapshot (or resume); a watch that
    /// cannot be created fails alone, with its own end. The stream ends when
    /// `inbound` ends (the client has finished), when the client falls
    /// silent past the heartbeat timeout (its last item is then that
    /// error), or when the service closes. Must be called inside a tokio
    /// runtime: the stream is driven by a task of its own.
    pub fn watch_stream<I>(&self, inbound: I) -> Result<ServerStream>
    where
        I: Stream<Item = ClientMessage> + Send + Unpin + 'static,
    {
        self.watch_stream_on(None, inbound)
    }

    /// [`Service::watch_stream`] for the connection numbered `conn` (its
    /// log lines carry the number).
    pub(crate) fn watch_stream_on<I>(&self, conn: Option<u64>, inbound: I) -> Result<ServerStream>
    where
        I: Stream<Item = ClientMessage> + Send + Unpin + 'static,
    {
        self.refuse_not_serving()?;
        if *self.closing.borrow() {
            return Err(Error::Remote {
                code: crate::ErrorCode::Unavailable,
                message: SHUTTING_DOWN.into(),
            });
        }
        let ctx = StreamContext {
            store: self.store.clone(),
            limits: self.limits.clone(),
            open_watches: self.open_watches.clone(),
            max_watches: self.max_watches,
        };
        let (tx, rx) = mpsc::channel(16);
        let end = Arc::new(parking_lot::Mutex::new(None));
        let out = server_stream::Out { tx, end: end.clone() };
        tokio::spawn(crate::trace::in_connection(
            conn,
            server_stream::run(ctx, inbound, out, self.closed()),
        ));
        Ok(ServerStream { rx, end, over: false })
    }
}

/// The server's messages on one watch stream (see
/// [`Service::watch_stream`]). It ends when the client has finished (after
/// every message queued), or when the server ends the stream: then its last
/// item is the reason, as an error, at once, whatever is still queued (a
/// client silent past the timeout: `DEADLINE_EXCEEDED`; the service
/// closing: `UNAVAILABLE`; more requests than the server holds while the
/// client does not read: `RESOURCE_EXHAUSTED`).
#[derive(Debug)]
pub struct ServerStream {
    rx: mpsc::Receiver<Result<ServerMessage>>,
    /// Why the server ended the stream, if it did.
    end: Arc<parking_lot::Mutex<Option<Error>>>,
    over: bool,
}

impl Stream for ServerStream {
    type Item = Result<ServerMessage>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.over {
            return Poll::Ready(None);
        }
        let ended = self.end.lock().take();
        if let Some(e) = ended {
            // The messages still queued are for a client the server has
            // given up on: the reason goes first, and last.
            self.over = true;
            return Poll::Ready(Some(Err(e)));
        }
        let item = self.rx.poll_recv(cx);
        if let Poll::Ready(None) = item {
            let ended = self.end.lock().take();
            if let Some(e) = ended {
                self.over = true;
                return Poll::Ready(Some(Err(e)));
            }
        }
        item
    }
}
