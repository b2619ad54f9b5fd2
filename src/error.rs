//! The one error type of varwatch.
//!
//! Every message names what it is about (the session, the variable, the value
//! and the rule it broke) so that it can be shown to a user as it is. An
//! operation that returns an error has changed nothing.
//!
//! **Messages are bounded.** Whatever a caller passed, a message quotes at
//! most [`QUOTE_CHARS`] characters of each string it names (control
//! characters escaped, a cut marked with `…`) and lists at most
//! [`LIST_ITEMS`] items of a list (then "and N more"). The error's fields
//! keep the whole input for programs; only the text is cut, so that an
//! identifier of 20 000 characters, or a batch with 10 000 failures, cannot
//! make a message (or a gRPC status carrying it) huge.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// How many characters of a user-given string a message quotes.
pub const QUOTE_CHARS: usize = 64;

/// How many items of a list a message shows.
pub const LIST_ITEMS: usize = 10;

/// A user-given string as a message shows it: control characters escaped,
/// cut after [`QUOTE_CHARS`] characters with `…`.
pub(crate) struct Quoted<'a>(pub(crate) &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.0.chars();
        for c in chars.by_ref().take(QUOTE_CHARS) {
            if c.is_control() {
                write!(f, "{}", c.escape_debug())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        if chars.next().is_some() {
            f.write_str("…")?;
        }
        Ok(())
    }
}

pub(crate) fn q(s: &str) -> Quoted<'_> {
    Quoted(s)
}

/// Everything that can go wrong in a varwatch operation.
///
/// Messages are written to be shown to a user as they are, for example
/// ``variable `temperature` in session `s1`: 150 is above maximum 100``.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No session has this id (it was never created, was deleted, or expired).
    #[error("session `{}` not found", q(session))]
    SessionNotFound {
        /// The session id that was asked for.
        session: String,
    },

    /// `create_session` was asked for an id that is already in use.
    #[error("session `{}` already exists", q(session))]
    SessionExists {
        /// The session id that is taken.
        session: String,
    },

    /// The store already holds its configured maximum number of sessions.
    #[error(
        "cannot create session `{}`: the store already holds its maximum of {max} sessions",
        q(session)
    )]
    SessionQuotaExceeded {
        /// The session that could not be created.
        session: String,
        /// The configured `max_sessions`.
        max: usize,
    },

    /// A session id or variable name is not acceptable (empty, too long, or
    /// containing control characters).
    #[error("invalid {what} `{}`: {reason}", q(name))]
    InvalidName {
        /// `"session id"` or `"variable name"`.
        what: Cow<'static, str>,
        /// The rejected name, as given.
        name: String,
        /// Why it was rejected.
        reason: Cow<'static, str>,
    },

    /// No variable with this id or name exists in the session.
    #[error("variable `{}` not found in session `{}`", q(variable), q(session))]
    VariableNotFound {
        /// The session that was searched.
        session: String,
        /// The identifier (id or name) that was asked for.
        variable: String,
    },

    /// Several identifiers passed to a watch were unknown; all are listed.
    #[error("variables not found in session `{}`: {}", q(session), list(.variables))]
    VariablesNotFound {
        /// The session that was searched.
        session: String,
        /// Every unknown identifier, in request order.
        variables: Vec<String>,
    },

    /// A variable with this name is already registered in the session.
    #[error("variable `{}` already exists in session `{}`", q(name), q(session))]
    VariableExists {
        /// The session.
        session: String,
        /// The name that is taken.
        name: String,
    },

    /// A value does not have the variable's type, or breaks one of its
    /// constraints. `reason` names the value and the rule.
    #[error("variable `{}` in session `{}`: {reason}", q(variable), q(session))]
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
    #[error(
        "variable `{}` in session `{}`: invalid constraints: {reason}",
        q(variable),
        q(session)
    )]
    InvalidConstraints {
        /// The session.
        session: String,
        /// The variable's name.
        variable: String,
        /// What is wrong with the constraints.
        reason: String,
    },

    /// A tensor whose data length is not the product of its shape.
    #[error("invalid tensor: shape {} needs {expected} elements but data has {actual}", shape_list(.shape))]
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
        "variable `{}` in session `{}`: version conflict: expected version {expected}, current version is {current}",
        q(variable),
        q(session)
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
    #[error("batch rejected in session `{}`, nothing was changed: {}", q(session), failures_list(.failures))]
    BatchRejected {
        /// The session.
        session: String,
        /// `(identifier, error)` for every item that failed, in request order.
        failures: Vec<(String, Error)>,
    },

    /// The same variable appears twice in one atomic batch or import (the
    /// repeats are the failing items of a [`Error::BatchRejected`]).
    #[error(
        "variable `{}` appears more than once in one batch in session `{}`",
        q(variable),
        q(session)
    )]
    DuplicateInBatch {
        /// The session.
        session: String,
        /// The repeated identifier.
        variable: String,
    },

    /// A watch option is out of range (for example a capacity of zero).
    #[error("invalid watch option: {}", q(.0))]
    InvalidOption(String),

    /// A request went over a limit of the server that serves the store
    /// (items per request, bytes per value): nothing was changed.
    #[error("{}: {actual} is over the server's limit of {limit}", q(what))]
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
    #[error("server refused ({code:?}): {}", Long(message))]
    Remote {
        /// The kind of error.
        code: ErrorCode,
        /// The server's message.
        message: String,
    },

    /// A list-variables pattern is not acceptable (too long).
    #[error("invalid pattern `{}`: {reason}", q(pattern))]
    InvalidPattern {
        /// The pattern, as given.
        pattern: String,
        /// Why it was rejected.
        reason: Cow<'static, str>,
    },

    /// A write was sent, but no answer came back: the connection to the
    /// server (or to etcd) failed, or the deadline passed, after the request
    /// left. It may or may not have been applied. Read the state to learn
    /// which (or retry with an `expected_version`, which cannot apply
    /// twice). A best-effort batch reports this for the item that met the
    /// failure and the items after it; the items before it have their own
    /// results.
    #[error(
        "the outcome of {operation} in session `{}` is unknown: {reason}; it may or may not have been applied",
        q(session)
    )]
    OutcomeUnknown {
        /// The session written to.
        session: String,
        /// What was sent (`update of `x``, `atomic batch of 3 items`, …).
        operation: String,
        /// What went wrong after it was sent.
        reason: String,
    },

    /// The connection to a remote server failed.
    #[error("cannot reach the server at {}: {reason}", q(addr))]
    Transport {
        /// The address dialled.
        addr: String,
        /// What went wrong.
        reason: String,
        /// The underlying error (an I/O or HTTP/2 error), when there is one.
        #[source]
        source: Option<ErrorSource>,
    },

    /// A durable store's files cannot be read or written (a full or failed
    /// disk, a damaged journal or snapshot, a directory another store has
    /// open): nothing was changed. The reason names the file, and for
    /// damage the byte offset.
    #[error("the store's files in {} cannot be used: {reason}", q(path))]
    Storage {
        /// The store's directory.
        path: String,
        /// What is wrong, naming the file.
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
    /// A write was sent but its outcome is unknown
    /// ([`Error::OutcomeUnknown`]).
    OutcomeUnknown,
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
            Error::Transport { .. } | Error::Storage { .. } => ErrorCode::Unavailable,
            Error::OutcomeUnknown { .. } => ErrorCode::OutcomeUnknown,
            Error::InvalidName { .. }
            | Error::InvalidValue { .. }
            | Error::InvalidConstraints { .. }
            | Error::InvalidTensor { .. }
            | Error::DuplicateInBatch { .. }
            | Error::InvalidOption(_)
            | Error::InvalidPattern { .. } => ErrorCode::InvalidArgument,
        }
    }
}

/// A server's message: long ones are cut (a hostile or broken server must
/// not make a client's error huge), far later than user input is.
struct Long<'a>(&'a str);

impl fmt::Display for Long<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 4096;
        match self.0.char_indices().nth(MAX) {
            Some((cut, _)) => write!(f, "{}…", &self.0[..cut]),
            None => f.write_str(self.0),
        }
    }
}

/// Up to [`LIST_ITEMS`] items, then how many more there are.
fn bounded<T>(items: &[T], sep: &str, mut item: impl FnMut(&mut String, &T)) -> String {
    let mut out = String::new();
    for (i, x) in items.iter().take(LIST_ITEMS).enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        item(&mut out, x);
    }
    if items.len() > LIST_ITEMS {
        fmt::write(
            &mut out,
            format_args!("{sep}and {} more", items.len() - LIST_ITEMS),
        )
        .ok();
    }
    out
}

fn list(items: &[String]) -> String {
    bounded(items, ", ", |out, s| {
        fmt::write(out, format_args!("`{}`", q(s))).ok();
    })
}

pub(crate) fn shape_list(shape: &[usize]) -> String {
    format!(
        "[{}]",
        bounded(shape, ", ", |out, d| out.push_str(&d.to_string()))
    )
}

fn failures_list(items: &[(String, Error)]) -> String {
    bounded(items, "; ", |out, (ident, err)| {
        fmt::write(out, format_args!("`{}`: {err}", q(ident))).ok();
    })
}

/// The underlying cause of an [`Error::Transport`]: an I/O or HTTP/2
/// error, shared so that errors stay cheap to clone. Two sources are equal
/// when their messages are.
#[derive(Clone)]
pub struct ErrorSource(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl ErrorSource {
    /// Wraps an error.
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> ErrorSource {
        ErrorSource(Arc::new(e))
    }

    /// The wrapped error itself (its `source` is the next in the chain).
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl fmt::Debug for ErrorSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for ErrorSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl std::error::Error for ErrorSource {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for ErrorSource {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

/// `Result` with varwatch's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether the failure `e` certainly happened before the request left: no
/// connection could be made (refused, unreachable).
#[cfg(feature = "transport")]
pub(crate) fn never_sent(e: &Error) -> bool {
    use std::io::ErrorKind::*;
    let Error::Transport { source, .. } = e else {
        return false;
    };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = match source {
        Some(s) => Some(s.get()),
        None => None,
    };
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ConnectionRefused
                    | AddrNotAvailable
                    | NotConnected
                    | HostUnreachable
                    | NetworkUnreachable
                    | AddrInUse
            )
        {
            return true;
        }
        cause = c.source();
    }
    false
}
