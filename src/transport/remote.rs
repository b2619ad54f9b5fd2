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

use super::protocol::{Request, Response, Subscribe, WatchTarget};
use super::remote_watch::RemoteWatch;
use super::transport_trait::Transport;
use crate::{
    BatchUpdate, Error, ErrorCode, GetMany, Result, SessionInfo, SessionOptions, UpdateOptions, Value,
    VarDef, Variable, WatchOptions,
};

/// Settings of a remote client and its watches.
///
/// Every duration and size is kept in a range that works when a client is
/// made ([`RemoteStore::new`]): durations between 1 ms and
/// [`MAX_DURATION`] (a day for the heartbeat interval), `buffer` between 1
/// and [`MAX_BUFFER`], `backoff_max` at least `backoff_initial`. So no
/// setting can make a watch spin, overflow a deadline or allocate without
/// bound.
#[derive(Debug, Clone)]
#[non_exhaustive]
#[must_use = "a configuration does nothing until passed to a client"]
pub struct RemoteConfig {
    /// Time allowed to establish a connection (network transports).
    pub connect_timeout: Duration,
    /// How often a watch sends a heartbeat.
    pub heartbeat_interval: Duration,
    /// Silence after which a watch treats its connection as dead.
    pub heartbeat_timeout: Duration,
    /// First reconnection delay (doubled per failure, with jitter).
    pub backoff_initial: Duration,
    /// Longest reconnection delay.
    pub backoff_max: Duration,
    /// Consecutive failed reconnections after which a watch ends with
    /// [`EventKind::Disconnected`](crate::EventKind::Disconnected); `None`
    /// retries forever.
    pub max_failures: Option<u32>,
    /// Events buffered per watch between the connection and the user.
    pub buffer: usize,
    /// Sent as `authorization: Bearer <token>` on every call (network
    /// transports).
    pub token: Option<String>,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            connect_timeout: Duration::from_secs(3),
            heartbeat_interval: Duration::from_secs(5),
            heartbeat_timeout: Duration::from_secs(15),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            max_failures: None,
            buffer: 1024,
            token: None,
        }
    }
}

/// The longest duration a [`RemoteConfig`] keeps (a year); longer ones
/// are shortened to it.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// The most events a remote watch buffers for its user.
pub const MAX_BUFFER: usize = 1 << 20;

impl RemoteConfig {
    /// The defaults: heartbeats every 5 s, 15 s timeout, backoff 100 ms
    /// doubling to 30 s, retry forever.
    pub fn new() -> Self {
        Self::default()
    }

    /// The configuration with every field in its working range (see the
    /// type's docs).
    pub(crate) fn normalized(mut self) -> Self {
        let ms = Duration::from_millis(1);
        let clamp = |d: Duration| d.clamp(ms, MAX_DURATION);
        self.connect_timeout = clamp(self.connect_timeout);
        self.heartbeat_interval = self.heartbeat_interval.clamp(ms, Duration::from_secs(24 * 3600));
        self.heartbeat_timeout = clamp(self.heartbeat_timeout);
        self.backoff_initial = clamp(self.backoff_initial);
        self.backoff_max = clamp(self.backoff_max).max(self.backoff_initial);
        self.buffer = self.buffer.clamp(1, MAX_BUFFER);
        self
    }
    /// Sets the heartbeat interval (at least 1 ms) and timeout.
    pub fn heartbeats(mut self, interval: Duration, timeout: Duration) -> Self {
        self.heartbeat_interval = interval.max(Duration::from_millis(1));
        self.heartbeat_timeout = timeout;
        self
    }
    /// Sets the reconnection backoff.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial;
        self.backoff_max = max.max(initial);
        self
    }
    /// Sets the bearer token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
    /// Sets how many events a watch buffers for its user (at least 1).
    pub fn buffer(mut self, n: usize) -> Self {
        self.buffer = n.max(1);
        self
    }
    /// Gives up after `n` consecutive failed reconnections.
    pub fn max_failures(mut self, n: u32) -> Self {
        self.max_failures = Some(n);
        self
    }
}

/// What a client's views share.
pub(crate) struct Inner {
    /// Drives the transport and the watches. `Option` only so that `Drop`
    /// can shut it down without blocking (dropping the last handle inside
    /// an async task must not panic).
    rt: Option<tokio::runtime::Runtime>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) config: RemoteConfig,
}

impl Inner {
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

/// A client of a remote store, with blocking methods named like
/// [`SessionStore`](crate::SessionStore)'s.
///
/// It owns a small tokio runtime, so its blocking methods must not be called
/// from inside an async runtime: use [`to_async`](Self::to_async) there.
///
/// ```
/// use varwatch::transport::{MemoryTransport, RemoteConfig, RemoteStore, Service};
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
}

/// The async view of a [`RemoteStore`]: the same operations as `async fn`s,
/// usable from any async runtime (the work runs on the client's own).
///
/// ```
/// # async fn demo(remote: varwatch::transport::AsyncRemoteStore) -> varwatch::Result<()> {
/// use varwatch::WatchOptions;
/// let version = remote.update("lab", "t", 22.0).await?;
/// let mut watch = remote.watch("lab", ["t"], WatchOptions::new()).await?;
/// let first = watch.recv_async().await; // or `watch.into_stream()` for a Stream
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AsyncRemoteStore {
    inner: Arc<Inner>,
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
            inner: Arc::new(Inner {
                rt: Some(rt),
                transport: Arc::new(transport),
                config,
            }),
        })
    }

    /// The async view of this client (same connection, same watches).
    pub fn to_async(&self) -> AsyncRemoteStore {
        AsyncRemoteStore {
            inner: self.inner.clone(),
        }
    }

    fn request(&self, request: Request) -> Result<Response> {
        self.inner.rt().block_on(self.inner.transport.call(request))
    }

    /// Watches variables of a remote session; see
    /// [`SessionStore::watch`](crate::SessionStore::watch). The first
    /// subscription is made before this returns, so unknown sessions or
    /// variables are reported here.
    ///
    /// Every [`WatchOptions`] setting works as it does locally: the
    /// capacity, coalescing and throttling apply to the server-side watch;
    /// the filter and `OverflowPolicy::Close` run on this side (a resync or
    /// a resume that skipped versions delivers its `Lagged` markers and
    /// ends the watch).
    pub fn watch<S: AsRef<str>>(
        &self,
        session: &str,
        idents: impl IntoIterator<Item = S>,
        opts: WatchOptions,
    ) -> Result<RemoteWatch> {
        let sub = subscription(session, Some(names(idents)), &opts);
        self.inner
            .rt()
            .block_on(RemoteWatch::open(self.inner.clone(), sub, opts))
    }

    /// Watches a whole remote session; see
    /// [`SessionStore::watch_session`](crate::SessionStore::watch_session).
    pub fn watch_session(&self, session: &str, opts: WatchOptions) -> Result<RemoteWatch> {
        let sub = subscription(session, None, &opts);
        self.inner
            .rt()
            .block_on(RemoteWatch::open(self.inner.clone(), sub, opts))
    }
}

impl AsyncRemoteStore {
    /// The blocking view of this client.
    pub fn to_blocking(&self) -> RemoteStore {
        RemoteStore {
            inner: self.inner.clone(),
        }
    }

    async fn request(&self, request: Request) -> Result<Response> {
        let call = self.inner.transport.call(request);
        self.inner.rt().spawn(call).await.map_err(cancelled)?
    }

    /// Watches variables of a remote session (see [`RemoteStore::watch`]).
    pub async fn watch<S: AsRef<str>>(
        &self,
        session: &str,
        idents: impl IntoIterator<Item = S>,
        opts: WatchOptions,
    ) -> Result<RemoteWatch> {
        let sub = subscription(session, Some(names(idents)), &opts);
        let open = RemoteWatch::open(self.inner.clone(), sub, opts);
        self.inner.rt().spawn(open).await.map_err(cancelled)?
    }

    /// Watches a whole remote session (see [`RemoteStore::watch_session`]).
    pub async fn watch_session(&self, session: &str, opts: WatchOptions) -> Result<RemoteWatch> {
        let sub = subscription(session, None, &opts);
        let open = RemoteWatch::open(self.inner.clone(), sub, opts);
        self.inner.rt().spawn(open).await.map_err(cancelled)?
    }
}

fn cancelled(e: tokio::task::JoinError) -> Error {
    Error::Transport {
        addr: String::new(),
        reason: format!("the client's runtime dropped the call: {e}"),
        source: Some(crate::ErrorSource::new(e)),
    }
}

fn names<S: AsRef<str>>(idents: impl IntoIterator<Item = S>) -> Vec<String> {
    idents.into_iter().map(|s| s.as_ref().to_string()).collect()
}

fn batch<U: Into<BatchUpdate>>(updates: impl IntoIterator<Item = U>) -> Vec<BatchUpdate> {
    updates.into_iter().map(Into::into).collect()
}

/// The subscription for `opts`: these variables, or (`None`) the session.
fn subscription(session: &str, idents: Option<Vec<String>>, opts: &WatchOptions) -> Subscribe {
    let target = idents.map_or(WatchTarget::Session, WatchTarget::Variables);
    let mut sub = Subscribe::new(session, target);
    sub.include_initial = opts.include_initial;
    sub.capacity = opts.capacity;
    sub.coalesce = opts.coalesce;
    sub.throttle = opts.throttle;
    sub
}

fn unexpected(r: Response) -> Error {
    Error::Remote {
        code: ErrorCode::Other,
        message: format!("unexpected answer from the server: {r:?}"),
    }
}

macro_rules! answer {
    ($name:ident, $variant:ident($t:ty)) => {
        fn $name(r: Result<Response>) -> Result<$t> {
            match r? {
                Response::$variant(x) => Ok(x),
                other => Err(unexpected(other)),
            }
        }
    };
}
answer!(session_info, Session(SessionInfo));
answer!(sessions, Sessions(Vec<String>));
answer!(registered, Registered(String));
answer!(variable, Variable(Variable));
answer!(many, Many(GetMany));
answer!(variable_list, Variables(Vec<Variable>));
answer!(version, Version(u64));
answer!(item_results, Items(Vec<Result<u64>>));

fn done(r: Result<Response>) -> Result<()> {
    match r? {
        Response::Done => Ok(()),
        other => Err(unexpected(other)),
    }
}

fn atomic_versions(r: Result<Response>) -> Result<Vec<u64>> {
    item_results(r)?.into_iter().collect()
}

/// Defines each operation once, as a blocking method of [`RemoteStore`]
/// and an `async` one of [`AsyncRemoteStore`]: the request it sends and how
/// its answer is read.
macro_rules! operations {
    ($(
        $(#[$doc:meta])*
        fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $req:expr => $read:path;
    )*) => {
        impl RemoteStore {
            $(
                $(#[$doc])*
                pub fn $name(&self, $($arg: $ty),*) -> Result<$ret> {
                    $read(self.request($req))
                }
            )*
        }
        impl AsyncRemoteStore {
            $(
                $(#[$doc])*
                pub async fn $name(&self, $($arg: $ty),*) -> Result<$ret> {
                    $read(self.request($req).await)
                }
            )*
        }
    };
}

operations! {
    /// See [`SessionStore::create_session`](crate::SessionStore::create_session).
    fn create_session(id: &str, options: SessionOptions) -> SessionInfo =
        Request::CreateSession { session: id.into(), options } => session_info;
    /// See [`SessionStore::get_or_create_session`](crate::SessionStore::get_or_create_session).
    fn get_or_create_session(id: &str, options: SessionOptions) -> SessionInfo =
        Request::GetOrCreateSession { session: id.into(), options } => session_info;
    /// See [`SessionStore::session`](crate::SessionStore::session).
    fn session(id: &str) -> SessionInfo = Request::GetSession { session: id.into() } => session_info;
    /// See [`SessionStore::delete_session`](crate::SessionStore::delete_session).
    fn delete_session(id: &str) -> () = Request::DeleteSession { session: id.into() } => done;
    /// See [`SessionStore::list_sessions`](crate::SessionStore::list_sessions).
    fn list_sessions() -> Vec<String> = Request::ListSessions => sessions;
    /// See [`SessionStore::register`](crate::SessionStore::register).
    fn register(session: &str, def: VarDef) -> String =
        Request::Register { session: session.into(), def } => registered;
    /// See [`SessionStore::get`](crate::SessionStore::get).
    fn get(session: &str, ident: &str) -> Variable =
        Request::Get { session: session.into(), variable: ident.into() } => variable;
    /// See [`SessionStore::get_many`](crate::SessionStore::get_many).
    fn get_many(session: &str, idents: impl IntoIterator<Item = impl AsRef<str>>) -> GetMany =
        Request::GetMany { session: session.into(), variables: names(idents) } => many;
    /// See [`SessionStore::list_variables`](crate::SessionStore::list_variables).
    fn list_variables(session: &str, pattern: Option<&str>) -> Vec<Variable> =
        Request::ListVariables { session: session.into(), pattern: pattern.map(Into::into) } => variable_list;
    /// See [`SessionStore::update`](crate::SessionStore::update).
    fn update(session: &str, ident: &str, value: impl Into<Value>) -> u64 =
        Request::Update { session: session.into(), variable: ident.into(), value: value.into(), options: UpdateOptions::new() } => version;
    /// See [`SessionStore::update_with`](crate::SessionStore::update_with).
    fn update_with(session: &str, ident: &str, value: impl Into<Value>, options: &UpdateOptions) -> u64 =
        Request::Update { session: session.into(), variable: ident.into(), value: value.into(), options: options.clone() } => version;
    /// See [`SessionStore::update_atomic`](crate::SessionStore::update_atomic).
    fn update_atomic(session: &str, updates: impl IntoIterator<Item = impl Into<BatchUpdate>>, options: &UpdateOptions) -> Vec<u64> =
        Request::UpdateMany { session: session.into(), items: batch(updates), options: options.clone(), atomic: true } => atomic_versions;
    /// See [`SessionStore::update_best_effort`](crate::SessionStore::update_best_effort).
    /// Over gRPC, an item's error arrives as [`Error::Remote`] with its message.
    fn update_best_effort(session: &str, updates: impl IntoIterator<Item = impl Into<BatchUpdate>>, options: &UpdateOptions) -> Vec<Result<u64>> =
        Request::UpdateMany { session: session.into(), items: batch(updates), options: options.clone(), atomic: false } => item_results;
    /// See [`SessionStore::delete_variable`](crate::SessionStore::delete_variable).
    fn delete_variable(session: &str, ident: &str) -> () =
        Request::DeleteVariable { session: session.into(), variable: ident.into() } => done;
}

impl RemoteStore {
    /// See [`SessionStore::value`](crate::SessionStore::value).
    pub fn value(&self, session: &str, ident: &str) -> Result<Value> {
        Ok(self.get(session, ident)?.value().clone())
    }
}

impl AsyncRemoteStore {
    /// See [`SessionStore::value`](crate::SessionStore::value).
    pub async fn value(&self, session: &str, ident: &str) -> Result<Value> {
        Ok(self.get(session, ident).await?.value().clone())
    }
}
