//! The one error type of varwatch.
//!
//! Every message names what it is about (the session, the variable, the value
//! and the rule it broke) so that it can be shown to a user as it is. An
//! operation that returns an error has changed nothing.

use std::fmt;

/// Everything that can go wrong in a varwatch operation.
///
/// Messages are written to be shown to a user as they are, for example
/// ``variable `temperature` in session `s1`: 150 is above maximum 100``.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No session has this id (it was never created, was deleted, or expired).
    #[error("session `{session}` not found")]
    SessionNotFound {
        /// The session id that was asked for.
        session: String,
    },

    /// `create_session` was asked for an id that is already in use.
    #[error("session `{session}` already exists")]
    SessionExists {
        /// The session id that is taken.
        session: String,
    },

    /// The store already holds its configured maximum number of sessions.
    #[error("cannot create session `{session}`: the store already holds its maximum of {max} sessions")]
    SessionQuotaExceeded {
        /// The session that could not be created.
        session: String,
        /// The configured `max_sessions`.
        max: usize,
    },

    /// A session id or variable name is not acceptable (empty, too long, or
    /// containing control characters).
    #[error("invalid {what} `{name}`: {reason}")]
    InvalidName {
        /// `"session id"` or `"variable name"`.
        what: &'static str,
        /// The rejected name (escaped for display).
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// No variable with this id or name exists in the session.
    #[error("variable `{variable}` not found in session `{session}`")]
    VariableNotFound {
        /// The session that was searched.
        session: String,
        /// The identifier (id or name) that was asked for.
        variable: String,
    },

    /// Several identifiers passed to a watch were unknown; all are listed.
    #[error("variables not found in session `{session}`: {}", list(.variables))]
    VariablesNotFound {
        /// The session that was searched.
        session: String,
        /// Every unknown identifier, in request order.
        variables: Vec<String>,
    },

    /// A variable with this name is already registered in the session.
    #[error("variable `{name}` already exists in session `{session}`")]
    VariableExists {
        /// The session.
        session: String,
        /// The name that is taken.
        name: String,
    },

    /// A value does not have the variable's type, or breaks one of its
    /// constraints. `reason` names the value and the rule.
    #[error("variable `{variable}` in session `{session}`: {reason}")]
    InvalidValue {
        /// The session.
        session: String,
        /// The variable's name.
        variable: String,
        /// The value and the rule it broke, e.g. `150 is above maximum 100`.
        reason: String,
    },

    /// Constraints that do not fit the variable's type (a `min` on a string)
    /// or that contradict each other (`min` above `max`).
    #[error("variable `{variable}` in session `{session}`: invalid constraints: {reason}")]
    InvalidConstraints {
        /// The session.
        session: String,
        /// The variable's name.
        variable: String,
        /// What is wrong with the constraints.
        reason: String,
    },

    /// A tensor whose data length is not the product of its shape.
    #[error("invalid tensor: shape {shape:?} needs {expected} elements but data has {actual}")]
    InvalidTensor {
        /// The shape given.
        shape: Vec<usize>,
        /// The product of the shape (`None` shown as an overflow).
        expected: u128,
        /// The number of data elements given.
        actual: usize,
    },

    /// An update carried an `expected_version` that is no longer current.
    #[error(
        "variable `{variable}` in session `{session}`: version conflict: expected version {expected}, current version is {current}"
    )]
    VersionConflict {
        /// The session.
        session: String,
        /// The variable's name.
        variable: String,
        /// The version the caller expected.
        expected: u64,
        /// The variable's current version.
        current: u64,
    },

    /// An atomic batch was rejected; nothing was applied. Every failing item
    /// is listed with its own error.
    #[error("batch rejected in session `{session}`, nothing was changed: {}", failures_list(.failures))]
    BatchRejected {
        /// The session.
        session: String,
        /// `(identifier, error)` for every item that failed, in request order.
        failures: Vec<(String, Error)>,
    },

    /// The same variable appears twice in one atomic batch or import.
    #[error("variable `{variable}` appears more than once in one batch in session `{session}`")]
    DuplicateInBatch {
        /// The session.
        session: String,
        /// The repeated identifier.
        variable: String,
    },

    /// A watch option is out of range (for example a capacity of zero).
    #[error("invalid watch option: {0}")]
    InvalidOption(String),

    /// A request went over a limit of the server that serves the store
    /// (items per request, bytes per value): nothing was changed.
    #[error("{what}: {actual} is over the server's limit of {limit}")]
    LimitExceeded {
        /// What was measured (for example "items in one request").
        what: String,
        /// The server's limit.
        limit: usize,
        /// What the request had.
        actual: usize,
    },

    /// A remote server refused the request. `code` says what kind of error
    /// it was (the same [`Error::code`] a local error has), `message` is the
    /// server's own message, which names the session, variable and rule.
    #[error("server refused ({code:?}): {message}")]
    Remote {
        /// The kind of error.
        code: ErrorCode,
        /// The server's message.
        message: String,
    },

    /// The connection to a remote server failed.
    #[error("cannot reach the server at {addr}: {reason}")]
    Transport {
        /// The address dialled.
        addr: String,
        /// What went wrong.
        reason: String,
    },
}

/// The kind of an [`Error`], the same for a local store and a remote one
/// (where it travels as a gRPC status code): code that must work on either
/// matches on this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// A session or variable does not exist.
    NotFound,
    /// A session or variable of that name exists already.
    AlreadyExists,
    /// The input was rejected: a value's type or a constraint, a name, a
    /// tensor's shape, an option, a malformed message.
    InvalidArgument,
    /// The variable was not at the expected version.
    FailedPrecondition,
    /// A quota or limit was reached (sessions, items, bytes, streams).
    ResourceExhausted,
    /// The server wants a (different) bearer token.
    Unauthenticated,
    /// The server could not be reached, or is shutting down.
    Unavailable,
    /// A deadline passed before the server answered.
    DeadlineExceeded,
    /// Anything else a remote server reported.
    Other,
}

impl Error {
    /// The kind of this error, for code that handles local and remote
    /// errors alike. A rejected batch has the kind of its first failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::SessionNotFound { .. }
            | Error::VariableNotFound { .. }
            | Error::VariablesNotFound { .. } => ErrorCode::NotFound,
            Error::SessionExists { .. } | Error::VariableExists { .. } => ErrorCode::AlreadyExists,
            Error::SessionQuotaExceeded { .. } | Error::LimitExceeded { .. } => ErrorCode::ResourceExhausted,
            Error::VersionConflict { .. } => ErrorCode::FailedPrecondition,
            Error::BatchRejected { failures, .. } => failures
                .first()
                .map_or(ErrorCode::InvalidArgument, |(_, first)| first.code()),
            Error::Remote { code, .. } => *code,
            Error::Transport { .. } => ErrorCode::Unavailable,
            Error::InvalidName { .. }
            | Error::InvalidValue { .. }
            | Error::InvalidConstraints { .. }
            | Error::InvalidTensor { .. }
            | Error::DuplicateInBatch { .. }
            | Error::InvalidOption(_) => ErrorCode::InvalidArgument,
        }
    }
}

fn list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn failures_list(items: &[(String, Error)]) -> String {
    let mut out = String::new();
    for (i, (ident, err)) in items.iter().enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        fmt::write(&mut out, format_args!("`{ident}`: {err}")).ok();
    }
    out
}

/// `Result` with varwatch's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
