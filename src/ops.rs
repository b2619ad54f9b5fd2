//! The operation table: one [`Request`] variant per store operation, one
//! [`Response`] variant per kind of answer.
//!
//! Every store runs the same table ([`VarStore::call`](crate::VarStore::call)):
//! the in-process [`SessionStore`](crate::SessionStore) dispatches each
//! variant to its method, a remote store sends it over its transport, the
//! etcd store runs it as etcd transactions. The service that serves a store
//! (`transport::Service`) answers requests by calling the store's table, the
//! gRPC transport maps each variant onto one RPC, and the typed methods of
//! [`VarStore`](crate::VarStore) and [`AsyncVarStore`](crate::AsyncVarStore)
//! are written once over it. So a new operation is one variant here, one
//! typed method, one arm per store and one RPC mapping.

use crate::{
    BatchUpdate, GetMany, Result, SessionInfo, SessionOptions, UpdateOptions, Value, VarDef, VarList,
    Variable,
};

/// One store operation. Each variant is the
/// [`VarStore`](crate::VarStore) method of the same name.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Request {
    /// [`VarStore::create_session`](crate::VarStore::create_session).
    CreateSession {
        /// The session id.
        session: String,
        /// Its TTL and metadata.
        options: SessionOptions,
    },
    /// [`VarStore::get_or_create_session`](crate::VarStore::get_or_create_session).
    GetOrCreateSession {
        /// The session id.
        session: String,
        /// Its TTL and metadata, if it is created.
        options: SessionOptions,
    },
    /// [`VarStore::session`](crate::VarStore::session).
    GetSession {
        /// The session id.
        session: String,
    },
    /// [`VarStore::delete_session`](crate::VarStore::delete_session).
    DeleteSession {
        /// The session id.
        session: String,
    },
    /// [`VarStore::list_sessions`](crate::VarStore::list_sessions).
    ListSessions,
    /// [`VarStore::register`](crate::VarStore::register).
    Register {
        /// The session id.
        session: String,
        /// The variable's name, type, value, constraints and metadata.
        def: VarDef,
    },
    /// [`VarStore::get`](crate::VarStore::get).
    Get {
        /// The session id.
        session: String,
        /// The variable's id or name.
        variable: String,
    },
    /// [`VarStore::get_many`](crate::VarStore::get_many).
    GetMany {
        /// The session id.
        session: String,
        /// Ids or names.
        variables: Vec<String>,
    },
    /// [`VarStore::list_variables`](crate::VarStore::list_variables).
    ListVariables {
        /// The session id.
        session: String,
        /// An anchored glob over names (`*` and `?`), or all.
        pattern: Option<String>,
    },
    /// [`VarStore::update_with`](crate::VarStore::update_with).
    Update {
        /// The session id.
        session: String,
        /// The variable's id or name.
        variable: String,
        /// The new value.
        value: Value,
        /// Expected version, source and metadata.
        options: UpdateOptions,
    },
    /// [`VarStore::update_atomic`](crate::VarStore::update_atomic)
    /// or [`update_best_effort`](crate::VarStore::update_best_effort).
    UpdateMany {
        /// The session id.
        session: String,
        /// The updates, applied in order.
        items: Vec<BatchUpdate>,
        /// Source and metadata of every change.
        options: UpdateOptions,
        /// All or nothing (one revision), or each item on its own.
        atomic: bool,
    },
    /// [`VarStore::delete_variable`](crate::VarStore::delete_variable).
    DeleteVariable {
        /// The session id.
        session: String,
        /// The variable's id or name.
        variable: String,
    },
    /// [`VarStore::import`](crate::VarStore::import): every
    /// definition under one revision, or none.
    Import {
        /// The session id.
        session: String,
        /// The definitions, in order.
        defs: Vec<VarDef>,
    },
}

/// The answer to a [`Request`]. Each request has exactly one kind of answer
/// (named in its variant's documentation); any other is a protocol error.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Response {
    /// To `CreateSession`, `GetOrCreateSession`, `GetSession`.
    Session(SessionInfo),
    /// To `ListSessions`: the ids, sorted.
    Sessions(Vec<String>),
    /// To `Register`: the new variable's id.
    Registered(String),
    /// To `Import`: the new variables' ids, in order.
    Imported(Vec<String>),
    /// To `Get`.
    Variable(Variable),
    /// To `GetMany`.
    Many(GetMany),
    /// To `ListVariables`.
    Variables(VarList),
    /// To `Update`: the new version.
    Version(u64),
    /// To `UpdateMany`: each item's new version or error, in order (an
    /// atomic batch either succeeds whole or fails as a request).
    Items(Vec<Result<u64>>),
    /// To `DeleteSession` and `DeleteVariable`.
    Done,
}

/// What a remote watch follows.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WatchTarget {
    /// These variables (ids or names).
    Variables(Vec<String>),
    /// Every variable of the session, including later ones.
    Session,
}

impl Request {
    /// The session and a description of the request, if it changes the
    /// store: what an [`Error::OutcomeUnknown`](crate::Error::OutcomeUnknown)
    /// names when its answer is lost (the rule for every client and store).
    #[cfg(feature = "transport")]
    pub(crate) fn as_write(&self) -> Option<(String, String)> {
        let q = crate::error::q;
        Some(match self {
            Request::CreateSession { session, .. } => (session.clone(), "the creation of the session".into()),
            Request::GetOrCreateSession { session, .. } => (session.clone(), "get_or_create_session".into()),
            Request::DeleteSession { session } => (session.clone(), "the deletion of the session".into()),
            Request::Register { session, def } => {
                (session.clone(), format!("the registration of `{}`", q(&def.name)))
            }
            Request::Update {
                session, variable, ..
            } => (session.clone(), format!("an update of `{}`", q(variable))),
            Request::UpdateMany {
                session,
                items,
                atomic,
                ..
            } => {
                let kind = if *atomic {
                    "an atomic batch"
                } else {
                    "a best-effort batch"
                };
                (session.clone(), format!("{kind} of {} items", items.len()))
            }
            Request::DeleteVariable { session, variable } => {
                (session.clone(), format!("the deletion of `{}`", q(variable)))
            }
            Request::Import { session, defs } => {
                (session.clone(), format!("an import of {} variables", defs.len()))
            }
            _ => return None,
        })
    }
}
