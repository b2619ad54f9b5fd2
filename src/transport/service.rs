//! [`Service`]: a [`SessionStore`] served to remote clients, independent of
//! how bytes move. Every transport's server side is this service behind a
//! codec: it answers [`Request`]s and runs watch streams.
//!
//! Store operations never block on I/O and hold their locks briefly, so
//! [`Service::call`] is a plain function that async transports may call on
//! their workers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use tokio::sync::mpsc;

use super::protocol::{ClientMessage, Request, Response, ServerMessage, Subscribe};
use super::server_watch;
use crate::{Error, Result, SessionStore, Value};

/// Limits and timings of a [`Service`].
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    pub(crate) max_value_bytes: usize,
    pub(crate) max_items: usize,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) heartbeat_timeout: Duration,
    pub(crate) max_events_per_message: usize,
    pub(crate) max_message_value_bytes: usize,
}

/// A [`SessionStore`] served to remote clients: the protocol-neutral server
/// side that every [`Transport`](super::Transport) shares.
///
/// Limits (all configurable): values up to 4 MiB, at most 10 000 items per
/// batch, multi-get or watch, 100 000 watch streams open at once. Remote watches: heartbeats every 5 s, a client
/// silent for 15 s is dropped, at most 256 events and about 4 MiB of values
/// per message. Requests over a limit fail with
/// [`Error::LimitExceeded`] and change nothing.
///
/// Cloning is cheap; clones serve the same store and share
/// [`close_watches`](Service::close_watches).
#[derive(Clone, Debug)]
#[must_use = "a service does nothing until a transport serves it"]
pub struct Service {
    store: SessionStore,
    limits: Limits,
    /// Set by `close_watches`: every open watch stream ends.
    closing: tokio::sync::watch::Receiver<bool>,
    close: Arc<tokio::sync::watch::Sender<bool>>,
    /// Open watch streams, across every connection and clone.
    open_watches: Arc<AtomicUsize>,
    max_watches: usize,
}

/// Counts one open watch stream for as long as it lives.
struct OpenWatch(Arc<AtomicUsize>);

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Service {
    /// Serves `store` with the default limits.
    pub fn new(store: SessionStore) -> Service {
        let (close, closing) = tokio::sync::watch::channel(false);
        Service {
            store,
            limits: Limits {
                max_value_bytes: 4 << 20,
                max_items: 10_000,
                heartbeat_interval: Duration::from_secs(5),
                heartbeat_timeout: Duration::from_secs(15),
                max_events_per_message: 256,
                max_message_value_bytes: 4 << 20,
            },
            closing,
            close: Arc::new(close),
            open_watches: Arc::default(),
            max_watches: 100_000,
        }
    }

    /// Most watch streams open at once, over every connection (default
    /// 100 000); past it, new ones fail with [`Error::LimitExceeded`].
    pub fn max_watches(mut self, n: usize) -> Self {
        self.max_watches = n;
        self
    }

    /// The store served.
    pub fn store(&self) -> &SessionStore {
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

    /// Roughly how many bytes of values one watch message may carry before
    /// the rest goes into the next message (a single event larger than this
    /// is still sent, alone). Snapshots are cut the same way; the last part
    /// carries `sync_complete`.
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
        let _ = self.close.send(true);
    }

    /// Resolves once [`close_watches`](Self::close_watches) was called.
    pub(crate) fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.closing.clone();
        async move {
            loop {
                if *rx.borrow_and_update() {
                    return;
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

    /// Answers one request. A request over a limit, or one the store
    /// rejects, changes nothing.
    pub fn call(&self, request: Request) -> Result<Response> {
        let s = &self.store;
        Ok(match request {
            Request::CreateSession { session, options } => {
                Response::Session(s.create_session(&session, options)?)
            }
            Request::GetOrCreateSession { session, options } => {
                Response::Session(s.get_or_create_session(&session, options)?)
            }
            Request::GetSession { session } => Response::Session(s.session(&session)?),
            Request::DeleteSession { session } => {
                s.delete_session(&session)?;
                Response::Done
            }
            Request::ListSessions => Response::Sessions(s.list_sessions()),
            Request::Register { session, def } => {
                self.check_value(&def.name, &def.value)?;
                Response::Registered(s.register(&session, def)?)
            }
            Request::Get { session, variable } => Response::Variable(s.get(&session, &variable)?),
            Request::GetMany { session, variables } => {
                self.check_items("variables in one request", variables.len())?;
                Response::Many(s.get_many(&session, &variables)?)
            }
            Request::ListVariables { session, pattern } => {
                Response::Variables(s.list_variables(&session, pattern.as_deref())?)
            }
            Request::Update {
                session,
                variable,
                value,
                options,
            } => {
                self.check_value(&variable, &value)?;
                Response::Version(s.update_with(&session, &variable, value, &options)?)
            }
            Request::UpdateMany {
                session,
                items,
                options,
                atomic,
            } => {
                self.check_items("items in one batch", items.len())?;
                for item in &items {
                    self.check_value(&item.ident, &item.value)?;
                }
                if atomic {
                    Response::Items(
                        s.update_atomic(&session, items, &options)?
                            .into_iter()
                            .map(Ok)
                            .collect(),
                    )
                } else {
                    Response::Items(s.update_best_effort(&session, items, &options)?)
                }
            }
            Request::DeleteVariable { session, variable } => {
                s.delete_variable(&session, &variable)?;
                Response::Done
            }
        })
    }

    /// Opens a watch stream: registers the watch atomically with its
    /// snapshot (or resume), and returns the server's messages: the snapshot
    /// ending in `sync_complete`, then changes in batches, heartbeats, and
    /// echoes of the client's heartbeats. `inbound` is the client's side
    /// after its [`Subscribe`]; its end (or a silence longer than the
    /// heartbeat timeout) ends the stream and frees the registration.
    ///
    /// Errors (unknown session, unknown variables, limits) are returned
    /// before anything is registered. Must be called inside a tokio runtime:
    /// the stream is driven by a task of its own.
    pub fn watch<I>(&self, subscribe: Subscribe, inbound: I) -> Result<ServerStream>
    where
        I: Stream<Item = ClientMessage> + Send + Unpin + 'static,
    {
        if *self.closing.borrow() {
            return Err(Error::Remote {
                code: crate::ErrorCode::Unavailable,
                message: "the server is shutting down".into(),
            });
        }
        if let super::WatchTarget::Variables(v) = &subscribe.target {
            self.check_items("variables in one watch", v.len())?;
        }
        self.check_items("versions in one resume", subscribe.resume.len())?;
        // Count first, so that concurrent subscriptions cannot overshoot.
        let open = self.open_watches.fetch_add(1, Ordering::Relaxed);
        let slot = OpenWatch(self.open_watches.clone());
        if open >= self.max_watches {
            return Err(Error::LimitExceeded {
                what: "open watch streams".into(),
                limit: self.max_watches,
                actual: open + 1,
            });
        }
        let opened = server_watch::open(&self.store, subscribe)?;
        let (tx, rx) = mpsc::channel(16);
        let run = server_watch::run(opened, inbound, tx, self.limits.clone(), self.closed());
        tokio::spawn(async move {
            run.await;
            drop(slot);
        });
        Ok(ServerStream(rx))
    }
}

/// The server's messages on one watch stream (see [`Service::watch`]). It
/// ends when the watch is over, or when the server ends the stream (the
/// client silent past the timeout, the service closing), in which case its
/// last item is the reason as an error, if there was room to queue it.
#[derive(Debug)]
pub struct ServerStream(mpsc::Receiver<Result<ServerMessage>>);

impl Stream for ServerStream {
    type Item = Result<ServerMessage>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// Bytes of a value's contents, as they travel (4-byte floats on the wire).
pub(crate) fn value_bytes(v: &Value) -> usize {
    match v {
        Value::Float(_) | Value::Integer(_) | Value::Boolean(_) => 8,
        Value::String(s) | Value::Choice(s) | Value::Module(s) => s.len(),
        Value::Embedding(e) => e.len() * 4,
        Value::Tensor(t) => t.data().len() * 4 + t.shape().len() * 8,
    }
}
