//! [`VarStore`]: the operations the in-process [`SessionStore`] and a remote
//! store share, so that code can be written once and given either.
//!
//! ```
//! use varwatch::transport::VarStore;
//! use varwatch::{SessionOptions, SessionStore, VarDef, VarType, Value};
//!
//! /// Works on a local store or, with the `grpc` feature, a `RemoteStore`.
//! fn setup<S: VarStore>(store: &S) -> varwatch::Result<u64> {
//!     store.get_or_create_session("lab", SessionOptions::new())?;
//!     store.register("lab", VarDef::new("t", VarType::Float, 20.0))?;
//!     store.update_with("lab", "t", Value::Float(21.0), &Default::default())
//! }
//! assert_eq!(setup(&SessionStore::new())?, 1);
//! # Ok::<(), varwatch::Error>(())
//! ```
//!
//! [`SessionStore`]: crate::SessionStore

use crate::{
    BatchUpdate, GetMany, Result, SessionInfo, SessionOptions, SessionStore, UpdateOptions, Value, VarDef,
    Variable, Watch, WatchEvent, WatchOptions,
};

/// A store of sessions of versioned variables that can be watched: the
/// in-process [`SessionStore`] and the gRPC `RemoteStore` both implement it.
///
/// Watches of either kind deliver the same [`WatchEvent`]s, blocking (as an
/// [`Iterator`]) or async (as a [`Stream`](futures_core::Stream)).
pub trait VarStore {
    /// The store's watch handle.
    type Watch: Iterator<Item = WatchEvent>
        + futures_core::Stream<Item = WatchEvent>
        + Send
        + Unpin
        + std::fmt::Debug;

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
    /// Sets the variable; returns its new version.
    fn update_with(&self, session: &str, ident: &str, value: Value, opts: &UpdateOptions) -> Result<u64>;
    /// Deletes the variable; its watchers receive `Deleted`.
    fn delete_variable(&self, session: &str, ident: &str) -> Result<()>;
    /// Several variables at once: those found, and the identifiers missing.
    fn get_many(&self, session: &str, idents: &[&str]) -> Result<GetMany>;
    /// Applies every update or none, at one revision.
    fn update_atomic(&self, session: &str, items: Vec<BatchUpdate>, opts: &UpdateOptions)
    -> Result<Vec<u64>>;
    /// Applies each update on its own; one result per item.
    fn update_best_effort(
        &self,
        session: &str,
        items: Vec<BatchUpdate>,
        opts: &UpdateOptions,
    ) -> Result<Vec<Result<u64>>>;
    /// The session's variables, optionally filtered by an anchored glob.
    fn list_variables(&self, session: &str, pattern: Option<&str>) -> Result<Vec<Variable>>;
    /// Watches the named variables (ids or names).
    fn watch_variables(&self, session: &str, idents: &[&str], include_initial: bool) -> Result<Self::Watch>;
    /// Watches every variable of the session, including later ones.
    fn watch_whole_session(&self, session: &str, include_initial: bool) -> Result<Self::Watch>;
}

impl VarStore for SessionStore {
    type Watch = Watch;

    fn create_session(&self, id: &str, opts: SessionOptions) -> Result<SessionInfo> {
        SessionStore::create_session(self, id, opts)
    }
    fn get_or_create_session(&self, id: &str, opts: SessionOptions) -> Result<SessionInfo> {
        SessionStore::get_or_create_session(self, id, opts)
    }
    fn session(&self, id: &str) -> Result<SessionInfo> {
        SessionStore::session(self, id)
    }
    fn delete_session(&self, id: &str) -> Result<()> {
        SessionStore::delete_session(self, id)
    }
    fn list_sessions(&self) -> Result<Vec<String>> {
        Ok(SessionStore::list_sessions(self))
    }
    fn register(&self, session: &str, def: VarDef) -> Result<String> {
        SessionStore::register(self, session, def)
    }
    fn get(&self, session: &str, ident: &str) -> Result<Variable> {
        SessionStore::get(self, session, ident)
    }
    fn update_with(&self, session: &str, ident: &str, value: Value, opts: &UpdateOptions) -> Result<u64> {
        SessionStore::update_with(self, session, ident, value, opts)
    }
    fn delete_variable(&self, session: &str, ident: &str) -> Result<()> {
        SessionStore::delete_variable(self, session, ident)
    }
    fn get_many(&self, session: &str, idents: &[&str]) -> Result<GetMany> {
        SessionStore::get_many(self, session, idents)
    }
    fn update_atomic(
        &self,
        session: &str,
        items: Vec<BatchUpdate>,
        opts: &UpdateOptions,
    ) -> Result<Vec<u64>> {
        SessionStore::update_atomic(self, session, items, opts)
    }
    fn update_best_effort(
        &self,
        session: &str,
        items: Vec<BatchUpdate>,
        opts: &UpdateOptions,
    ) -> Result<Vec<Result<u64>>> {
        SessionStore::update_best_effort(self, session, items, opts)
    }
    fn list_variables(&self, session: &str, pattern: Option<&str>) -> Result<Vec<Variable>> {
        SessionStore::list_variables(self, session, pattern)
    }
    fn watch_variables(&self, session: &str, idents: &[&str], include_initial: bool) -> Result<Watch> {
        SessionStore::watch(
            self,
            session,
            idents,
            WatchOptions::new().include_initial(include_initial),
        )
    }
    fn watch_whole_session(&self, session: &str, include_initial: bool) -> Result<Watch> {
        SessionStore::watch_session(
            self,
            session,
            WatchOptions::new().include_initial(include_initial),
        )
    }
}

#[cfg(feature = "transport")]
impl VarStore for super::RemoteStore {
    type Watch = super::RemoteWatch;

    fn create_session(&self, id: &str, opts: SessionOptions) -> Result<SessionInfo> {
        super::RemoteStore::create_session(self, id, opts)
    }
    fn get_or_create_session(&self, id: &str, opts: SessionOptions) -> Result<SessionInfo> {
        super::RemoteStore::get_or_create_session(self, id, opts)
    }
    fn session(&self, id: &str) -> Result<SessionInfo> {
        super::RemoteStore::session(self, id)
    }
    fn delete_session(&self, id: &str) -> Result<()> {
        super::RemoteStore::delete_session(self, id)
    }
    fn list_sessions(&self) -> Result<Vec<String>> {
        super::RemoteStore::list_sessions(self)
    }
    fn register(&self, session: &str, def: VarDef) -> Result<String> {
        super::RemoteStore::register(self, session, def)
    }
    fn get(&self, session: &str, ident: &str) -> Result<Variable> {
        super::RemoteStore::get(self, session, ident)
    }
    fn update_with(&self, session: &str, ident: &str, value: Value, opts: &UpdateOptions) -> Result<u64> {
        super::RemoteStore::update_with(self, session, ident, value, opts)
    }
    fn delete_variable(&self, session: &str, ident: &str) -> Result<()> {
        super::RemoteStore::delete_variable(self, session, ident)
    }
    fn get_many(&self, session: &str, idents: &[&str]) -> Result<GetMany> {
        super::RemoteStore::get_many(self, session, idents)
    }
    fn update_atomic(
        &self,
        session: &str,
        items: Vec<BatchUpdate>,
        opts: &UpdateOptions,
    ) -> Result<Vec<u64>> {
        super::RemoteStore::update_atomic(self, session, items, opts)
    }
    fn update_best_effort(
        &self,
        session: &str,
        items: Vec<BatchUpdate>,
        opts: &UpdateOptions,
    ) -> Result<Vec<Result<u64>>> {
        super::RemoteStore::update_best_effort(self, session, items, opts)
    }
    fn list_variables(&self, session: &str, pattern: Option<&str>) -> Result<Vec<Variable>> {
        super::RemoteStore::list_variables(self, session, pattern)
    }
    fn watch_variables(&self, session: &str, idents: &[&str], include_initial: bool) -> Result<Self::Watch> {
        super::RemoteStore::watch(self, session, idents, include_initial)
    }
    fn watch_whole_session(&self, session: &str, include_initial: bool) -> Result<Self::Watch> {
        super::RemoteStore::watch_session(self, session, include_initial)
    }
}
