//! [`RemoteStore`] and [`AsyncRemoteStore`]: a store's operations over any
//! [`Transport`], blocking or async, with watches that survive reconnects.
//!
//! Both are views of one client: one transport (for gRPC, one HTTP/2
//! connection that every call and watch shares as streams), one small tokio
//! runtime that drives the transport and the watches, one configuration.
//! [`RemoteStore::to_async`] and [`AsyncRemoteStore::to_blocking`] switch
//! between them for free.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::client::Inner;
use super::config::RemoteConfig;
use super::mux::Command;
use super::protocol::{Request, Response, Subscribe, WatchTarget};
use super::remote_watch::RemoteWatch;
use super::transport_trait::Transport;
use super::upstream::{DownConfig, Overflow};
use crate::{
    BatchUpdate, Error, ErrorCode, GetMany, OverflowPolicy, Result, SessionInfo, SessionOptions,
    UpdateOptions, Value, VarDef, Variable, WatchOptions,
};

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
            inner: Arc::new(Inner::new(rt, Arc::new(transport), config)),
        })
    }

    /// The async view of this client (same connection, same watches).
    pub fn to_async(&self) -> AsyncRemoteStore {
        AsyncRemoteStore {
            inner: self.inner.clone(),
        }
    }

    fn request(&self, request: Request) -> Result<Response> {
        self.inner.rt().block_on(self.inner.call(request))
    }

    /// Watches variables of a remote session; see
    /// [`SessionStore::watch`](crate::SessionStore::watch). The subscription
    /// is made before this returns (its snapshot is here), so unknown
    /// sessions or variables are reported here.
    ///
    /// Every watch of a client travels on one stream of its connection, and
    /// identical subscriptions (same session, variables and server-side
    /// options) share one watch on the wire: a watch identical to one the
    /// client already follows starts from the client's copy of its state
    /// (one cut, as of the last group received) without a round trip, even
    /// while the connection is down; any other waits for the server's
    /// snapshot for at most [`RemoteConfig::call_timeout`], and fails with
    /// `Unavailable` if the server cannot be reached (or `DeadlineExceeded`
    /// at the deadline; nothing is left behind). Every [`WatchOptions`] setting
    /// works as it does locally: the capacity, coalescing and throttling
    /// apply to the server-side watch; the filter and the overflow policy
    /// run on this side, where each watch has a buffer of
    /// [`RemoteConfig::buffer`] events (a watch whose user falls further
    /// behind resyncs, or with `OverflowPolicy::Close` delivers its `Lagged`
    /// markers and ends, without holding up anything else).
    pub fn watch<S: AsRef<str>>(
        &self,
        session: &str,
        idents: impl IntoIterator<Item = S>,
        opts: WatchOptions,
    ) -> Result<RemoteWatch> {
        let sub = subscription(session, Some(names(idents)), &opts);
        self.inner
            .rt()
            .block_on(open_watch(self.inner.clone(), sub, opts))
    }

    /// Watches a whole remote session; see
    /// [`SessionStore::watch_session`](crate::SessionStore::watch_session).
    pub fn watch_session(&self, session: &str, opts: WatchOptions) -> Result<RemoteWatch> {
        let sub = subscription(session, None, &opts);
        self.inner
            .rt()
            .block_on(open_watch(self.inner.clone(), sub, opts))
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
        let inner = self.inner.clone();
        let call = async move { inner.call(request).await };
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
        let open = open_watch(self.inner.clone(), sub, opts);
        self.inner.rt().spawn(open).await.map_err(cancelled)?
    }

    /// Watches a whole remote session (see [`RemoteStore::watch_session`]).
    pub async fn watch_session(&self, session: &str, opts: WatchOptions) -> Result<RemoteWatch> {
        let sub = subscription(session, None, &opts);
        let open = open_watch(self.inner.clone(), sub, opts);
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

/// Opens a watch on the client's watch stream: attached to an identical
/// subscription's upstream, or to a new one once it has its snapshot.
async fn open_watch(inner: Arc<Inner>, sub: Subscribe, opts: WatchOptions) -> Result<RemoteWatch> {
    opts.check()?;
    let (commands, counters) = inner.mux();
    let overflow = if opts.reads_cuts() {
        Overflow::Coalesce
    } else if opts.overflow == OverflowPolicy::Close {
        Overflow::Close
    } else {
        Overflow::Resync
    };
    let down = DownConfig {
        capacity: inner.config.buffer,
        overflow,
        include_initial: opts.include_initial,
    };
    let (reply, answer) = oneshot::channel();
    let gone = || Error::Remote {
        code: ErrorCode::Unavailable,
        message: "the client's connection task has stopped".into(),
    };
    commands
        .send(Command::Watch { sub, down, reply })
        .map_err(|_| gone())?;
    // Bounded like a call: the first snapshot within `call_timeout`. A
    // caller that gives up leaves nothing behind (the mux releases what it
    // would have attached, and forgets an upstream nobody waits for).
    let timeout = inner.config.call_timeout;
    let attached = tokio::time::timeout(timeout, answer)
        .await
        .map_err(|_| Error::Remote {
            code: ErrorCode::DeadlineExceeded,
            message: format!("no snapshot from the server within {timeout:?} (RemoteConfig::call_timeout)"),
        })?
        .map_err(|_| gone())??;
    Ok(RemoteWatch::new(attached, commands, counters, opts.filter, inner))
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
answer!(imported, Imported(Vec<String>));
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
    /// See [`SessionStore::import`](crate::SessionStore::import).
    fn import(session: &str, defs: Vec<VarDef>) -> Vec<String> =
        Request::Import { session: session.into(), defs } => imported;
}

impl RemoteStore {
    /// See [`SessionStore::value`](crate::SessionStore::value).
    pub fn value(&self, session: &str, ident: &str) -> Result<Value> {
        Ok(self.get(session, ident)?.value().clone())
    }

    /// See [`SessionStore::export`](crate::SessionStore::export): the
    /// session's variables as definitions, from one consistent cut.
    pub fn export(&self, session: &str) -> Result<Vec<VarDef>> {
        Ok(self
            .list_variables(session, None)?
            .iter()
            .map(VarDef::of)
            .collect())
    }
}

impl AsyncRemoteStore {
    /// See [`SessionStore::value`](crate::SessionStore::value).
    pub async fn value(&self, session: &str, ident: &str) -> Result<Value> {
        Ok(self.get(session, ident).await?.value().clone())
    }

    /// See [`SessionStore::export`](crate::SessionStore::export).
    pub async fn export(&self, session: &str) -> Result<Vec<VarDef>> {
        Ok(self
            .list_variables(session, None)
            .await?
            .iter()
            .map(VarDef::of)
            .collect())
    }
}
