//! The library's errors as the Python exceptions of `varwatch/errors.py`:
//! the class by the error's kind, the fields as typed attributes (from the
//! error itself — over gRPC, from the status's detail — never from its
//! message's text).

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList};
use varwatch::{Error, ErrorCode};

/// The `varwatch.errors` module, imported once.
fn module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    static CELL: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    CELL.get_or_try_init(py, || Ok::<_, PyErr>(py.import("varwatch.errors")?.unbind()))
        .map(|m| m.bind(py))
}

/// The exception class and status code name of an error kind.
fn class_of(e: &Error) -> (&'static str, &'static str) {
    match e.code() {
        ErrorCode::NotFound => ("NotFound", "NOT_FOUND"),
        ErrorCode::AlreadyExists => ("AlreadyExists", "ALREADY_EXISTS"),
        ErrorCode::InvalidArgument => ("InvalidArgument", "INVALID_ARGUMENT"),
        ErrorCode::FailedPrecondition => ("VersionConflict", "FAILED_PRECONDITION"),
        ErrorCode::ResourceExhausted => ("ResourceExhausted", "RESOURCE_EXHAUSTED"),
        ErrorCode::Unauthenticated => ("Unauthenticated", "UNAUTHENTICATED"),
        ErrorCode::Unavailable => ("Unavailable", "UNAVAILABLE"),
        ErrorCode::DeadlineExceeded => ("DeadlineExceeded", "DEADLINE_EXCEEDED"),
        ErrorCode::OutcomeUnknown => ("OutcomeUnknown", "UNKNOWN"),
        _ => ("VarwatchError", "UNKNOWN"),
    }
}

/// The name of the error's variant, as `e.kind` shows it.
fn kind(e: &Error) -> &'static str {
    match e {
        Error::SessionNotFound { .. } => "SessionNotFound",
        Error::SessionExists { .. } => "SessionExists",
        Error::SessionQuotaExceeded { .. } => "SessionQuotaExceeded",
        Error::InvalidName { .. } => "InvalidName",
        Error::VariableNotFound { .. } => "VariableNotFound",
        Error::VariablesNotFound { .. } => "VariablesNotFound",
        Error::VariableExists { .. } => "VariableExists",
        Error::InvalidValue { .. } => "InvalidValue",
        Error::InvalidConstraints { .. } => "InvalidConstraints",
        Error::InvalidTensor { .. } => "InvalidTensor",
        Error::VersionConflict { .. } => "VersionConflict",
        Error::BatchRejected { .. } => "BatchRejected",
        Error::DuplicateInBatch { .. } => "DuplicateInBatch",
        Error::InvalidOption(_) => "InvalidOption",
        Error::LimitExceeded { .. } => "LimitExceeded",
        Error::InvalidPattern { .. } => "InvalidPattern",
        Error::OutcomeUnknown { .. } => "OutcomeUnknown",
        Error::Transport { .. } => "Transport",
        Error::Storage { .. } => "Storage",
        Error::Remote { .. } => "Remote",
        _ => "Other",
    }
}

/// The error as its Python exception object.
pub(crate) fn exception<'py>(py: Python<'py>, e: &Error) -> PyResult<Bound<'py, PyAny>> {
    let (class, code) = class_of(e);
    let message = match e {
        Error::Remote { message, .. } => message.clone(),
        other => other.to_string(),
    };
    let kw = PyDict::new(py);
    kw.set_item("code", code)?;
    kw.set_item("kind", kind(e))?;
    match e {
        Error::SessionNotFound { session } | Error::SessionExists { session } => {
            kw.set_item("session", session)?;
        }
        Error::SessionQuotaExceeded { session, max } => {
            kw.set_item("session", session)?;
            kw.set_item("limit", max)?;
        }
        Error::InvalidName { what, name, reason } => {
            kw.set_item("what", what.as_ref())?;
            kw.set_item("name", name)?;
            kw.set_item("reason", reason.as_ref())?;
        }
        Error::VariableNotFound { session, variable } | Error::DuplicateInBatch { session, variable } => {
            kw.set_item("session", session)?;
            kw.set_item("variable", variable)?;
        }
        Error::VariablesNotFound { session, variables } => {
            kw.set_item("session", session)?;
            kw.set_item("variables", variables.clone())?;
        }
        Error::VariableExists { session, name } => {
            kw.set_item("session", session)?;
            kw.set_item("variable", name)?;
        }
        Error::InvalidValue {
            session,
            variable,
            reason,
        }
        | Error::InvalidConstraints {
            session,
            variable,
            reason,
        } => {
            kw.set_item("session", session)?;
            kw.set_item("variable", variable)?;
            kw.set_item("reason", reason)?;
        }
        Error::VersionConflict {
            session,
            variable,
            expected,
            current,
        } => {
            kw.set_item("session", session)?;
            kw.set_item("variable", variable)?;
            kw.set_item("expected", expected)?;
            kw.set_item("current", current)?;
        }
        Error::BatchRejected { session, failures } => {
            kw.set_item("session", session)?;
            let list = PyList::empty(py);
            for (ident, err) in failures {
                list.append((ident, exception(py, err)?))?;
            }
            kw.set_item("failures", list)?;
        }
        Error::InvalidOption(reason) => kw.set_item("reason", reason)?,
        Error::LimitExceeded { what, limit, actual } => {
            kw.set_item("what", what)?;
            kw.set_item("limit", limit)?;
            kw.set_item("actual", actual)?;
        }
        Error::InvalidPattern { pattern, reason } => {
            kw.set_item("pattern", pattern)?;
            kw.set_item("reason", reason.as_ref())?;
        }
        Error::OutcomeUnknown {
            session,
            operation,
            reason,
        } => {
            kw.set_item("session", session)?;
            kw.set_item("operation", operation)?;
            kw.set_item("reason", reason)?;
        }
        Error::Transport { addr, reason, .. } => {
            kw.set_item("address", addr)?;
            kw.set_item("reason", reason)?;
        }
        Error::Storage { path, reason } => {
            kw.set_item("path", path)?;
            kw.set_item("reason", reason)?;
        }
        _ => {}
    }
    module(py)?.getattr(class)?.call((message,), Some(&kw))
}

/// The error as the exception to raise.
pub(crate) fn to_py(e: Error) -> PyErr {
    Python::attach(|py| match exception(py, &e) {
        Ok(exc) => PyErr::from_value(exc),
        Err(err) => err,
    })
}
