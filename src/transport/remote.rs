//! [`RemoteStore`] and [`AsyncRemoteStore`]: a store's operations over any
//! [`Transport`], blocking or async, with watches that survive reconnects.
//!
//! Both are views of one client: one transport (for gRPC, one HTTP/2
//! connection that every call and watch shares as streams), one small tokio
//! runtime that drives the transport and the watches, one configuration.
//! [`RemoteStore::to_async`] and [`AsyncRemoteStore::to_blocking`] switch
//! between them for free.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::client::Inner;
use super::config::RemoteConfig;
use super::mux::Command;
use super::protocol::{Request, Response, Subscribe, WatchTarget};
use super::remote_watch::remote_watch;
use super::transport_trait::Transport;
use crate::watch::catch_up::Mode;
use crate::watch::feed::DownConfig;
use crate::{AsyncVarStore, VarStore};
use crate::{Error, ErrorCode, OverflowPolicy, Result, Watch, WatchOptions};
use std::future::Future;

/// A client of a remote store, with blocking methods named like
/// [`SessionStore`](crate::SessionStore)'s.
///
/// It owns a small tokio runtime, so its blocking methods must not be called
/// from inside an async runtime: use [`to_async`](Self::to_async) there.
///
/// ```
/// use varwatch::transport::{MemoryTransport, RemoteConfig, RemoteStore, Service};
/// use varwatch::VarStore;
/// use varwatch::{SessionOptions, SessionStore, VarDef, VarType};
///
/// let served = SessionStore::new();
/// let remote = RemoteStore::new(MemoryTransport::new(Service::new(served.clone())), RemoteConfig::new())?;
/// remote.create_session("lab", SessionOptions::new())?;
/// remote.register("lab", VarDef::new("t", VarType::Float, 20.0))?;
/// assert_eq!(remote.update("lab", "t", 21.5)?, 1);
/// assert_eq!(served.value("lab", "t")?.as_f64(), Some(21.5));
/// # Ok::<(), varwatch::Error>(())
/// ```
#[derive(Clone)]
pub struct RemoteStore {
    inner: Arc<Inner>,
    /// The deadline of this view's calls (see
    /// [`with_call_timeout`](Self::with_call_timeout)).
    call_timeout: Duration,
}

/// The async view of a [`RemoteStore`]: the same operations as `async fn`s,
/// usable from any async runtime (the work runs on the client's own).
///
/// ```
/// # async fn demo(remote: varwatch::transport::AsyncRemoteStore) -> varwatch::Result<()> {
/// use varwatch::{AsyncVarStore, WatchOptions};
/// let version = remote.update("lab", "t", 22.0).await?;
/// let mut watch = remote.watch("lab", ["t"], WatchOptions::new()).await?;
/// let first = watch.recv_async().await; // or `watch.into_stream()` for a Stream
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AsyncRemoteStore {
    inner: Arc<Inner>,
    call_timeout: Duration,
}

impl std::fmt::Debug for RemoteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStore")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for AsyncRemoteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncRemoteStore")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl RemoteStore {
    /// A client over `transport`. Nothing is sent until the first call.
    /// Settings out of range are brought into it (see [`RemoteConfig`]).
    pub fn new(transport: impl Transport, config: RemoteConfig) -> Result<RemoteStore> {
        let config = config.normalized();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("varwatch-remote")
            .enable_all()
            .build()
            .map_err(|e| Error::Transport {
                addr: String::new(),
                reason: format!("cannot start the client's runtime: {e}"),
                source: Some(crate::ErrorSource::new(e)),
            })?;
        Ok(RemoteStore {
            call_timeout: config.call_timeout,
            inner: Arc::new(Inner::new(rt, Arc::new(transport), config)),
        })
    }

    /// The client's configuration (normalized: every value in its range).
    pub fn config(&self) -> &RemoteConfig {
        &self.inner.config
    }

    /// Closes the client, for every view of it: every watch ends with
    /// [`EventKind::Disconnected`](crate::EventKind::Disconnected)
    /// ([`CloseReason::Disconnected`](crate::CloseReason::Disconnected)),
    /// the watch stream closes (the server cancels what it held), and later
    /// calls and watches fail with [`Error::Transport`]. (Dropping every
    /// handle and watch closes it too.)
    pub fn close(&self) {
        self.inner.close();
    }

    /// The async view of this client (same connection, same watches).
    pub fn to_async(&self) -> AsyncRemoteStore {
        AsyncRemoteStore {
            inner: self.inner.clone(),
            call_timeout: self.call_timeout,
        }
    }

    /// A view of this client (same connection, same watches) whose calls,
    /// and the first snapshots of its watches, have deadline `timeout`
    /// instead of [`RemoteConfig::call_timeout`] (kept in the same range).
    ///
    /// ```
    /// # fn demo(remote: &varwatch::transport::RemoteStore) -> varwatch::Result<()> {
    /// use std::time::Duration;
    /// use varwatch::VarStore;
    /// let quick = remote.with_call_timeout(Duration::from_millis(200));
    /// let sessions = quick.list_sessions()?; // fails after 200 ms, not 30 s
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn with_call_timeout(&self, timeout: Duration) -> RemoteStore {
        RemoteStore {
            inner: self.inner.clone(),
            call_timeout: RemoteConfig::new()
                .call_timeout(timeout)
                .normalized()
                .call_timeout,
        }
    }
}

/// Every operation is one request to the server, under the client's call
/// deadline.
///
/// [`open_watch`](VarStore::open_watch): the subscription is made before it
/// returns (its snapshot is here), so unknown sessions or variables are
/// reported here. Every watch of a client travels on one stream of its
/// connection, and identical subscriptions (same session, variables and
/// server-side options) share one watch on the wire: a watch identical to
/// one the client already follows starts from the client's copy of its
/// state, once the server has confirmed that copy is as new as the
/// session was when the watch was asked for (so a watch opened after a
/// write returned starts at or after that write); any other waits for the
/// server's snapshot. Either waits at most [`RemoteConfig::call_timeout`],
/// and fails with `Unavailable` if the server cannot be reached (or
/// `DeadlineExceeded` at the deadline; nothing is left behind). Every
/// [`WatchOptions`] setting works as it does locally: the capacity applies
/// to the server-side watch, coalescing and throttling to both sides (the
/// server sends less, and a reader that falls behind still gets the latest
/// states with exact skip counts); the filter and the overflow policy run
/// on this side, where each watch has a buffer of [`RemoteConfig::buffer`]
/// events (a watch whose user falls further behind resyncs, or with
/// `OverflowPolicy::Close` delivers its `Lagged` markers and ends, without
/// holding up anything else).
impl VarStore for RemoteStore {
    fn call(&self, request: Request) -> Result<Response> {
        self.inner
            .rt()
            .block_on(self.inner.call(request, self.call_timeout))
    }

    fn open_watch(&self, session: &str, target: WatchTarget, opts: WatchOptions) -> Result<Watch> {
        let sub = subscription(session, target, &opts);
        self.inner
            .rt()
            .block_on(open_watch(self.inner.clone(), sub, opts, self.call_timeout))
    }
}

/// The same operations as [`RemoteStore`]'s, as `async fn`s: the work runs
/// on the client's own runtime, so they may be awaited on any.
impl AsyncVarStore for AsyncRemoteStore {
    fn call(&self, request: Request) -> impl Future<Output = Result<Response>> + Send {
        let inner = self.inner.clone();
        let timeout = self.call_timeout;
        let call = self
            .inner
            .rt()
            .spawn(async move { inner.call(request, timeout).await });
        async move { call.await.map_err(cancelled)? }
    }

    fn open_watch(
        &self,
        session: &str,
        target: WatchTarget,
        opts: WatchOptions,
    ) -> impl Future<Output = Result<Watch>> + Send {
        let sub = subscription(session, target, &opts);
        let open = self
            .inner
            .rt()
            .spawn(open_watch(self.inner.clone(), sub, opts, self.call_timeout));
        async move { open.await.map_err(cancelled)? }
    }
}

impl AsyncRemoteStore {
    /// The blocking view of this client.
    pub fn to_blocking(&self) -> RemoteStore {
        RemoteStore {
            inner: self.inner.clone(),
            call_timeout: self.call_timeout,
        }
    }

    /// A view whose calls have deadline `timeout` (see
    /// [`RemoteStore::with_call_timeout`]).
    #[must_use]
    pub fn with_call_timeout(&self, timeout: Duration) -> AsyncRemoteStore {
        self.to_blocking().with_call_timeout(timeout).to_async()
    }
}

fn cancelled(e: tokio::task::JoinError) -> Error {
    Error::Transport {
        addr: String::new(),
        reason: format!("the client's runtime dropped the call: {e}"),
        source: Some(crate::ErrorSource::new(e)),
    }
}

/// Opens a watch on the client's watch stream: attached to an identical
/// subscription's upstream, or to a new one once it has its snapshot.
async fn open_watch(
    inner: Arc<Inner>,
    sub: Subscribe,
    opts: WatchOptions,
    timeout: Duration,
) -> Result<Watch> {
    opts.check()?;
    inner.check_open()?;
    let (commands, counters) = inner.mux();
    let mode = match opts.overflow {
        _ if opts.reads_cuts() => Mode::Coalesce,
        OverflowPolicy::Close => Mode::Close,
        OverflowPolicy::Coalesce => Mode::Coalesce,
        _ => Mode::Resync,
    };
    let down = DownConfig {
        coalescing: opts.reads_cuts(),
        capacity: opts
            .buffer
            .unwrap_or(inner.config.buffer)
            .clamp(1, super::MAX_BUFFER),
        mode,
        include_initial: opts.include_initial,
        throttle: opts.throttle,
    };
    let session = sub.session.clone();
    let (reply, answer) = oneshot::channel();
    // The task stops only when the client is closed (then that is the error).
    let gone = || {
        inner.check_open().err().unwrap_or_else(|| Error::Remote {
            code: ErrorCode::Unavailable,
            message: "the client's connection task has stopped".into(),
        })
    };
    commands
        .send(Command::Watch { sub, down, reply })
        .map_err(|_| gone())?;
    // Bounded like a call: the first snapshot within `call_timeout`. A
    // caller that gives up leaves nothing behind (the mux releases what it
    // would have attached, and forgets an upstream nobody waits for).
    let attached = tokio::time::timeout(timeout, answer)
        .await
        .map_err(|_| Error::Remote {
            code: ErrorCode::DeadlineExceeded,
            message: format!("no snapshot from the server within {timeout:?} (RemoteConfig::call_timeout)"),
        })?
        .map_err(|_| gone())??;
    Ok(remote_watch(
        &session,
        attached,
        commands,
        counters,
        opts.filter,
        inner,
    ))
}

/// The subscription for `opts`.
fn subscription(session: &str, target: WatchTarget, opts: &WatchOptions) -> Subscribe {
    let mut sub = Subscribe::new(session, target);
    sub.include_initial = opts.include_initial;
    sub.capacity = opts.capacity;
    sub.coalesce = opts.coalesce;
    sub.throttle = opts.throttle;
    sub
}
