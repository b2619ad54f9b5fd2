//! [`VarStore`] and [`AsyncVarStore`]: the one store API, generated from
//! one operation table (see the traits' docs).

use std::future::Future;

use crate::ops::{Request, Response, WatchTarget};
use crate::{
    BatchUpdate, Error, ErrorCode, GetMany, Result, SessionInfo, SessionOptions, UpdateOptions, Value,
    VarDef, VarList, Variable, Watch, WatchOptions,
};

fn names<S: AsRef<str>>(idents: impl IntoIterator<Item = S>) -> Vec<String> {
    idents.into_iter().map(|s| s.as_ref().to_string()).collect()
}

fn batch<U: Into<BatchUpdate>>(updates: impl IntoIterator<Item = U>) -> Vec<BatchUpdate> {
    updates.into_iter().map(Into::into).collect()
}

/// An answer of the wrong kind: a broken or hostile server.
fn unexpected(r: Response) -> Error {
    Error::Remote {
        code: ErrorCode::Other,
        message: format!("unexpected answer from the server: {r:?}"),
    }
}

/// How each operation's answer is read.
mod answer {
    use super::*;

    macro_rules! answer {
        ($name:ident, $variant:ident($t:ty)) => {
            pub(super) fn $name(r: Result<Response>) -> Result<$t> {
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
    answer!(variable_list, Variables(VarList));
    answer!(version, Version(u64));
    answer!(item_results, Items(Vec<Result<u64>>));

    pub(super) fn done(r: Result<Response>) -> Result<()> {
        match r? {
            Response::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    pub(super) fn atomic_versions(r: Result<Response>) -> Result<Vec<u64>> {
        item_results(r)?.into_iter().collect()
    }

    pub(super) fn value(r: Result<Response>) -> Result<Value> {
        variable(r).map(|v| v.value().clone())
    }

    pub(super) fn definitions(r: Result<Response>) -> Result<Vec<VarDef>> {
        variable_list(r).map(|l| l.iter().map(VarDef::from).collect())
    }
}

/// Defines the two traits from one table: each operation once, as a
/// provided method of [`VarStore`] (blocking) and of [`AsyncVarStore`]
/// (async), built from the request it sends and how its answer is read.
macro_rules! operations {
    ($(
        $(#[$doc:meta])*
        fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $req:expr => $read:path;
    )*) => {
        /// *The* way to program against a store,
        /// whichever it is — the in-process [`SessionStore`], a remote store over
        /// any transport, the etcd store. Code written against them runs unchanged
        /// on any store, with the same results and the same errors (the contract
        /// suite, `tests/contract.rs`, checks every store against one set of
        /// expectations).
        ///
        /// ```
        /// use varwatch::{SessionOptions, SessionStore, VarDef, VarStore, VarType};
        ///
        /// /// Works on a local store, a `RemoteStore`, an `EtcdStore`.
        /// fn setup<S: VarStore>(store: &S) -> varwatch::Result<u64> {
        ///     store.get_or_create_session("lab", SessionOptions::new())?;
        ///     store.register("lab", VarDef::new("t", VarType::Float, 20.0))?;
        ///     store.update("lab", "t", 21.0)
        /// }
        /// assert_eq!(setup(&SessionStore::new())?, 1);
        /// # Ok::<(), varwatch::Error>(())
        /// ```
        ///
        /// Every method returns the same [`Error`] variants with the same
        /// fields on every store. A write whose outcome is unknown (a remote
        /// or etcd store that lost its connection after sending it) fails
        /// with [`Error::OutcomeUnknown`]: it may or may not have been
        /// applied.
        ///
        /// # One table, two traits
        ///
        /// A store implements two methods: [`call`](VarStore::call), which runs one
        /// [`Request`] of the operation table ([`ops`](crate::ops)), and
        /// [`open_watch`](VarStore::open_watch). Every named operation
        /// (`create_session`, `update`, `update_atomic`, …) is a provided method
        /// written once, below, over `call`; the blocking [`VarStore`] and the async
        /// [`AsyncVarStore`] are generated from the same table, so they cannot
        /// drift. Every store's watch is the same [`Watch`].
        ///
        /// # Which operation for what
        ///
        /// Each operation has one meaning; where two look alike, this is the
        /// difference:
        ///
        /// * [`update`](VarStore::update) is [`update_with`](VarStore::update_with)
        ///   with default [`UpdateOptions`]; a [`VarWriter`](crate::VarWriter)
        ///   (local only) is the same write through a handle that skips the name
        ///   lookup, for a hot loop.
        /// * [`get_many`](VarStore::get_many) reads named variables, reporting the
        ///   missing ones; [`list_variables`](VarStore::list_variables) reads the
        ///   variables whose names match a pattern (or all) — both one consistent
        ///   cut, with its revision; [`export`](VarStore::export) is
        ///   `list_variables(None)` turned into [`VarDef`]s for
        ///   [`import`](VarStore::import) into another session or store.
        /// * [`value`](VarStore::value) is [`get`](VarStore::get) without the
        ///   variable's facts.
        ///
        /// The in-process [`SessionStore`] also has inherent methods of the same
        /// names and shapes (they are its implementation, and take no allocation
        /// for the request), plus what only a local store can offer (readers and
        /// writers, `list_watchers`, `stats`).
        ///
        /// [`SessionStore`]: crate::SessionStore
        pub trait VarStore {
            /// Runs one operation of the table ([`ops`](crate::ops)).
            fn call(&self, request: Request) -> Result<Response>;

            /// Opens a watch of `target` in `session`: registered with its
            /// snapshot (one consistent cut) when this returns.
            fn open_watch(&self, session: &str, target: WatchTarget, opts: WatchOptions) -> Result<Watch>;

            $(
                $(#[$doc])*
                fn $name(&self, $($arg: $ty),*) -> Result<$ret> {
                    $read(self.call($req))
                }
            )*

            /// Watches the named variables (ids or names); see [`Watch`].
            fn watch<S: AsRef<str>>(
                &self,
                session: &str,
                idents: impl IntoIterator<Item = S>,
                opts: WatchOptions,
            ) -> Result<Watch> {
                self.open_watch(session, WatchTarget::Variables(names(idents)), opts)
            }

            /// Watches every variable of the session, including those
            /// registered later.
            fn watch_session(&self, session: &str, opts: WatchOptions) -> Result<Watch> {
                self.open_watch(session, WatchTarget::Session, opts)
            }
        }

        /// [`VarStore`]'s operations as `async fn`s, usable from any async
        /// runtime: `AsyncRemoteStore`, `AsyncEtcdStore`, and the in-process
        /// [`SessionStore`](crate::SessionStore) (whose operations never
        /// wait).
        pub trait AsyncVarStore: Sync {
            /// Runs one operation of the table ([`ops`](crate::ops)).
            fn call(&self, request: Request) -> impl Future<Output = Result<Response>> + Send;

            /// Opens a watch of `target` in `session` (see
            /// [`VarStore::open_watch`]).
            fn open_watch(
                &self,
                session: &str,
                target: WatchTarget,
                opts: WatchOptions,
            ) -> impl Future<Output = Result<Watch>> + Send;

            $(
                $(#[$doc])*
                fn $name(&self, $($arg: $ty),*) -> impl Future<Output = Result<$ret>> + Send {
                    let call = self.call($req);
                    async move { $read(call.await) }
                }
            )*

            /// Watches the named variables (see [`VarStore::watch`]).
            fn watch<S: AsRef<str>>(
                &self,
                session: &str,
                idents: impl IntoIterator<Item = S>,
                opts: WatchOptions,
            ) -> impl Future<Output = Result<Watch>> + Send {
                self.open_watch(session, WatchTarget::Variables(names(idents)), opts)
            }

            /// Watches a whole session (see [`VarStore::watch_session`]).
            fn watch_session(&self, session: &str, opts: WatchOptions) -> impl Future<Output = Result<Watch>> + Send {
                self.open_watch(session, WatchTarget::Session, opts)
            }
        }
    };
}

operations! {
    /// Creates a session; [`Error::SessionExists`] if the id is taken.
    ///
    /// A write: on a remote or etcd store, an answer lost after the request
    /// may have left is [`Error::OutcomeUnknown`] (it may have been applied;
    /// read to find out before writing again).
    fn create_session(id: &str, options: SessionOptions) -> SessionInfo =
        Request::CreateSession { session: id.into(), options } => answer::session_info;
    /// Returns the session, creating it (with `options`) if needed.
    ///
    /// A write: on a remote or etcd store, an answer lost after the request
    /// may have left is [`Error::OutcomeUnknown`] (it may have been applied;
    /// read to find out before writing again).
    fn get_or_create_session(id: &str, options: SessionOptions) -> SessionInfo =
        Request::GetOrCreateSession { session: id.into(), options } => answer::session_info;
    /// The session's facts (an access: it moves the TTL).
    fn session(id: &str) -> SessionInfo = Request::GetSession { session: id.into() } => answer::session_info;
    /// Deletes the session; its watches end with `SessionClosed`.
    ///
    /// A write: on a remote or etcd store, an answer lost after the request
    /// may have left is [`Error::OutcomeUnknown`] (it may have been applied;
    /// read to find out before writing again).
    fn delete_session(id: &str) -> () = Request::DeleteSession { session: id.into() } => answer::done;
    /// The ids of all sessions, sorted.
    fn list_sessions() -> Vec<String> = Request::ListSessions => answer::sessions;
    /// Registers a variable; returns its id (of the form `var_<n>`, never
    /// reused).
    ///
    /// A write: on a remote or etcd store, an answer lost after the request
    /// may have left is [`Error::OutcomeUnknown`] (it may have been applied;
    /// read to find out before writing again).
    fn register(session: &str, def: VarDef) -> String =
        Request::Register { session: session.into(), def } => answer::registered;
    /// The variable, by id or name.
    fn get(session: &str, ident: &str) -> Variable =
        Request::Get { session: session.into(), variable: ident.into() } => answer::variable;
    /// The variable's current value, by id or name.
    fn value(session: &str, ident: &str) -> Value =
        Request::Get { session: session.into(), variable: ident.into() } => answer::value;
    /// Several variables at once, as one consistent cut; unknown
    /// identifiers are listed in [`GetMany::missing`].
    fn get_many(session: &str, idents: impl IntoIterator<Item = impl AsRef<str>>) -> GetMany =
        Request::GetMany { session: session.into(), variables: names(idents) } => answer::many;
    /// The session's variables whose names match `pattern` (an anchored
    /// glob of `*` and `?`), or all, as one consistent cut.
    fn list_variables(session: &str, pattern: Option<&str>) -> VarList =
        Request::ListVariables { session: session.into(), pattern: pattern.map(Into::into) } => answer::variable_list;
    /// Sets the variable; returns its new version (the same version if the
    /// value is the one it holds: no change).
    ///
    /// A write: on a remote or etcd store, an answer lost after the request
    /// may have left is [`Error::OutcomeUnknown`] (it may have been applied;
    /// read to find out before writing again).
    fn update(session: &str, ident: &str, value: impl Into<Value>) -> u64 =
        Request::Update { session: session.into(), variable: ident.into(), value: value.into(), options: UpdateOptions::new() } => answer::version;
    /// Sets the variable with options (expected version, source,
    /// metadata); returns its new version.
    ///
    /// A write: on a remote or etcd store, an answer lost after the request
    /// may have left is [`Error::OutcomeUnknown`] (it may have been applied;
    /// read to find out before writing again).
    fn update_with(session: &str, ident: &str, value: impl Into<Value>, options: &UpdateOptions) -> u64 =
        Request::Update { session: session.into(), variable: ident.into(), value: value.into(), options: options.clone() } => answer::version;
    /// Applies every update or none, at one revision; every failure is
    /// reported in one [`Error::BatchRejected`].
    ///
    /// A write: on a remote or etcd store, an answer lost after the request
    /// may have left is [`Error::OutcomeUnknown`] (it may have been applied;
    /// read to find out before writing again).
    fn update_atomic(session: &str, updates: impl IntoIterator<Item = impl Into<BatchUpdate>>, options: &UpdateOptions) -> Vec<u64> =
        Request::UpdateMany { session: session.into(), items: batch(updates), options: options.clone(), atomic: true } => answer::atomic_versions;
    /// Applies each update on its own, in order, each checked against the
    /// state the items before it left; one result per item. On an etcd
    /// store, where each item is its own transaction, a failure of the way
    /// to etcd ends the batch: the items before it are reported as
    /// committed, the one in flight as [`Error::OutcomeUnknown`] (or
    /// [`Error::Transport`] if it never left), and the rest as
    /// [`Error::Transport`] (not sent). A remote store's batch is one call:
    /// a lost answer makes the whole call [`Error::OutcomeUnknown`].
    ///
    /// A write: on a remote or etcd store, an answer lost after the request
    /// may have left is [`Error::OutcomeUnknown`] (it may have been applied;
    /// read to find out before writing again).
    fn update_best_effort(session: &str, updates: impl IntoIterator<Item = impl Into<BatchUpdate>>, options: &UpdateOptions) -> Vec<Result<u64>> =
        Request::UpdateMany { session: session.into(), items: batch(updates), options: options.clone(), atomic: false } => answer::item_results;
    /// Deletes the variable; its watchers receive `Deleted`.
    ///
    /// A write: on a remote or etcd store, an answer lost after the request
    /// may have left is [`Error::OutcomeUnknown`] (it may have been applied;
    /// read to find out before writing again).
    fn delete_variable(session: &str, ident: &str) -> () =
        Request::DeleteVariable { session: session.into(), variable: ident.into() } => answer::done;
    /// The session's variables as definitions (for
    /// [`import`](VarStore::import)), from one consistent cut.
    fn export(session: &str) -> Vec<VarDef> =
        Request::ListVariables { session: session.into(), pattern: None } => answer::definitions;
    /// Registers every definition under one revision, or none (every
    /// failure reported); returns the new ids in order.
    ///
    /// A write: on a remote or etcd store, an answer lost after the request
    /// may have left is [`Error::OutcomeUnknown`] (it may have been applied;
    /// read to find out before writing again).
    fn import(session: &str, defs: Vec<VarDef>) -> Vec<String> =
        Request::Import { session: session.into(), defs } => answer::imported;
}
