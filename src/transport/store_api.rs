//! [`VarStore`]: the operations the in-process [`SessionStore`] and a remote
//! store share, with the same names and argument shapes, so that code can be
//! written once and given either; and [`WatchHandle`], what their watches
//! share.
//!
//! ```
//! use varwatch::transport::VarStore;
//! use varwatch::{SessionOptions, SessionStore, VarDef, VarType};
//!
//! /// Works on a local store or, with the `transport` feature, a `RemoteStore`.
//! fn setup<S: VarStore>(store: &S) -> varwatch::Result<u64> {
//!     store.get_or_create_session("lab", SessionOptions::new())?;
//!     store.register("lab", VarDef::new("t", VarType::Float, 20.0))?;
//!     store.update("lab", "t", 21.0)
//! }
//! assert_eq!(setup(&SessionStore::new())?, 1);
//! # Ok::<(), varwatch::Error>(())
//! ```
//!
//! [`SessionStore`]: crate::SessionStore

use std::fmt::Debug;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;

use crate::{
    BatchUpdate, GetMany, RecvTimeoutError, Result, SessionInfo, SessionOptions, SessionStore, TryRecvError,
    UpdateOptions, Value, VarDef, Variable, Watch, WatchEvent, WatchOptions, WatchStream,
};

/// What a watch of any store offers: [`Watch`] and, with the `transport`
/// feature, `RemoteWatch`. Blocking receive (and [`Iterator`], whose `next`
/// blocks), async receive, and conversion into a [`Stream`].
pub trait WatchHandle: Iterator<Item = WatchEvent> + Send + Unpin + Debug {
    /// The watch as a [`Stream`] (see [`into_stream`](Self::into_stream)).
    type Stream: Stream<Item = WatchEvent> + Send + Unpin + Debug;

    /// Blocks until the next event or until `timeout` has passed.
    fn recv_timeout(&mut self, timeout: Duration) -> Result<WatchEvent, RecvTimeoutError>;
    /// The next event if one is ready, without blocking.
    fn try_recv(&mut self) -> Result<WatchEvent, TryRecvError>;
    /// Polls for the next event (`Ready(None)` once the watch has ended).
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<WatchEvent>>;
    /// The watch as a [`Stream`].
    fn into_stream(self) -> Self::Stream;
}

impl WatchHandle for Watch {
    type Stream = WatchStream;

    fn recv_timeout(&mut self, timeout: Duration) -> Result<WatchEvent, RecvTimeoutError> {
        Watch::recv_timeout(self, timeout)
    }
    fn try_recv(&mut self) -> Result<WatchEvent, TryRecvError> {
        Watch::try_recv(self)
    }
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<WatchEvent>> {
        Watch::poll_recv(self, cx)
    }
    fn into_stream(self) -> WatchStream {
        Watch::into_stream(self)
    }
}

/// A store of sessions of versioned variables that can be watched: the
/// in-process [`SessionStore`] and the remote `RemoteStore` both implement
/// it, with the names and argument shapes of [`SessionStore`]'s methods (so
/// the same call compiles against either). Operations that cannot fail
/// locally return a `Result` here, since a remote call can.
pub trait VarStore {
    /// The store's watch handle.
    type Watch: WatchHandle;

    /// Creates a session (an error if it exists).
    fn create_session(&self, id: &str, opts: SessionOptions) -> Result<SessionInfo>;
    /// Returns the session, creating it if needed.
    fn get_or_create_session(&self, id: &str, opts: SessionOptions) -> Result<SessionInfo>;
    /// The session's facts.
    fn session(&self, id: &str) -> Result<SessionInfo>;
    /// Deletes the session; its watches end with `SessionClosed`.
    fn delete_session(&self, id: &str) -> Result<()>;
    /// The ids of all sessions, sorted.
    fn list_sessions(&self) -> Result<Vec<String>>;
    /// Registers a variable; returns its id.
    fn register(&self, session: &str, def: VarDef) -> Result<String>;
    /// The variable, by id or name.
    fn get(&self, session: &str, ident: &str) -> Result<Variable>;
    /// The variable's current value.
    fn value(&self, session: &str, ident: &str) -> Result<Value>;
    /// Several variables at once, as one consistent cut.
    fn get_many<S: AsRef<str>>(&self, session: &str, idents: impl IntoIterator<Item = S>) -> Result<GetMany>;
    /// The session's variables, optionally filtered by an anchored glob, as
    /// one consistent cut.
    fn list_variables(&self, session: &str, pattern: Option<&str>) -> Result<Vec<Variable>>;
    /// Sets the variable; returns its new version.
    fn update(&self, session: &str, ident: &str, value: impl Into<Value>) -> Result<u64>;
    /// Sets the variable with options; returns its new version.
    fn update_with(
        &self,
        session: &str,
        ident: &str,
        value: impl Into<Value>,
        opts: &UpdateOptions,
    ) -> Result<u64>;
    /// Applies every update or none, at one revision.
    fn update_atomic<U: Into<BatchUpdate>>(
        &self,
        session: &str,
        updates: impl IntoIterator<Item = U>,
        opts: &UpdateOptions,
    ) -> Result<Vec<u64>>;
    /// Applies each update on its own, in order; one result per item.
    fn update_best_effort<U: Into<BatchUpdate>>(
        &self,
        session: &str,
        updates: impl IntoIterator<Item = U>,
        opts: &UpdateOptions,
    ) -> Result<Vec<Result<u64>>>;
    /// Deletes the variable; its watchers receive `Deleted`.
    fn delete_variable(&self, session: &str, ident: &str) -> Result<()>;
    /// The session's variables as definitions, from one consistent cut.
    fn export(&self, session: &str) -> Result<Vec<VarDef>>;
    /// Registers every definition under one revision, or none.
    fn import(&self, session: &str, defs: Vec<VarDef>) -> Result<Vec<String>>;
    /// Watches the named variables (ids or names).
    fn watch<S: AsRef<str>>(
        &self,
        session: &str,
        idents: impl IntoIterator<Item = S>,
        opts: WatchOptions,
    ) -> Result<Self::Watch>;
    /// Watches every variable of the session, including later ones.
    fn watch_session(&self, session: &str, opts: WatchOptions) -> Result<Self::Watch>;
}

/// Implements [`VarStore`] by calling the inherent methods of the same
/// names (`$wrap` turns an infallible answer into a `Result`).
macro_rules! var_store {
    ($store:ty, $watch:ty, |$x:ident| $wrap:expr) => {
        impl VarStore for $store {
            type Watch = $watch;

            fn create_session(&self, id: &str, opts: SessionOptions) -> Result<SessionInfo> {
                <$store>::create_session(self, id, opts)
            }
            fn get_or_create_session(&self, id: &str, opts: SessionOptions) -> Result<SessionInfo> {
                <$store>::get_or_create_session(self, id, opts)
            }
            fn session(&self, id: &str) -> Result<SessionInfo> {
                <$store>::session(self, id)
            }
            fn delete_session(&self, id: &str) -> Result<()> {
                <$store>::delete_session(self, id)
            }
            fn list_sessions(&self) -> Result<Vec<String>> {
                let $x = <$store>::list_sessions(self);
                $wrap
            }
            fn register(&self, session: &str, def: VarDef) -> Result<String> {
                <$store>::register(self, session, def)
            }
            fn get(&self, session: &str, ident: &str) -> Result<Variable> {
                <$store>::get(self, session, ident)
            }
            fn value(&self, session: &str, ident: &str) -> Result<Value> {
                <$store>::value(self, session, ident)
            }
            fn get_many<S: AsRef<str>>(
                &self,
                session: &str,
                idents: impl IntoIterator<Item = S>,
            ) -> Result<GetMany> {
                <$store>::get_many(self, session, idents)
            }
            fn list_variables(&self, session: &str, pattern: Option<&str>) -> Result<Vec<Variable>> {
                <$store>::list_variables(self, session, pattern)
            }
            fn update(&self, session: &str, ident: &str, value: impl Into<Value>) -> Result<u64> {
                <$store>::update(self, session, ident, value)
            }
            fn update_with(
                &self,
                session: &str,
                ident: &str,
                value: impl Into<Value>,
                opts: &UpdateOptions,
            ) -> Result<u64> {
                <$store>::update_with(self, session, ident, value, opts)
            }
            fn update_atomic<U: Into<BatchUpdate>>(
                &self,
                session: &str,
                updates: impl IntoIterator<Item = U>,
                opts: &UpdateOptions,
            ) -> Result<Vec<u64>> {
                <$store>::update_atomic(self, session, updates, opts)
            }
            fn update_best_effort<U: Into<BatchUpdate>>(
                &self,
                session: &str,
                updates: impl IntoIterator<Item = U>,
                opts: &UpdateOptions,
            ) -> Result<Vec<Result<u64>>> {
                <$store>::update_best_effort(self, session, updates, opts)
            }
            fn delete_variable(&self, session: &str, ident: &str) -> Result<()> {
                <$store>::delete_variable(self, session, ident)
            }
            fn export(&self, session: &str) -> Result<Vec<VarDef>> {
                <$store>::export(self, session)
            }
            fn import(&self, session: &str, defs: Vec<VarDef>) -> Result<Vec<String>> {
                <$store>::import(self, session, defs)
            }
            fn watch<S: AsRef<str>>(
                &self,
                session: &str,
                idents: impl IntoIterator<Item = S>,
                opts: WatchOptions,
            ) -> Result<$watch> {
                <$store>::watch(self, session, idents, opts)
            }
            fn watch_session(&self, session: &str, opts: WatchOptions) -> Result<$watch> {
                <$store>::watch_session(self, session, opts)
            }
        }
    };
}

var_store!(SessionStore, Watch, |x| Ok(x));

#[cfg(feature = "transport")]
var_store!(super::RemoteStore, super::RemoteWatch, |x| x);

#[cfg(feature = "transport")]
impl WatchHandle for super::RemoteWatch {
    type Stream = super::RemoteWatchStream;

    fn recv_timeout(&mut self, timeout: Duration) -> Result<WatchEvent, RecvTimeoutError> {
        super::RemoteWatch::recv_timeout(self, timeout)
    }
    fn try_recv(&mut self) -> Result<WatchEvent, TryRecvError> {
        super::RemoteWatch::try_recv(self)
    }
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<WatchEvent>> {
        super::RemoteWatch::poll_recv(self, cx)
    }
    fn into_stream(self) -> super::RemoteWatchStream {
        super::RemoteWatch::into_stream(self)
    }
}

#[cfg(feature = "etcd")]
var_store!(crate::etcd::EtcdStore, crate::etcd::EtcdWatch, |x| x);

#[cfg(feature = "etcd")]
impl WatchHandle for crate::etcd::EtcdWatch {
    type Stream = crate::etcd::EtcdWatchStream;

    fn recv_timeout(&mut self, timeout: Duration) -> Result<WatchEvent, RecvTimeoutError> {
        crate::etcd::EtcdWatch::recv_timeout(self, timeout)
    }
    fn try_recv(&mut self) -> Result<WatchEvent, TryRecvError> {
        crate::etcd::EtcdWatch::try_recv(self)
    }
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<WatchEvent>> {
        crate::etcd::EtcdWatch::poll_recv(self, cx)
    }
    fn into_stream(self) -> crate::etcd::EtcdWatchStream {
        crate::etcd::EtcdWatch::into_stream(self)
    }
}
