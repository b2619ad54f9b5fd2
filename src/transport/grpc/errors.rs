//! Errors across the wire, with their fields: every [`Error`] becomes a
//! gRPC status whose details carry an [`proto::ErrorDetail`] (the standard
//! rich error model: `grpc-status-details-bin` holds a `google.rpc.Status`
//! with one `google.protobuf.Any`), and a client turns it back into the very
//! same `Error` — variant and fields — that the store raised. A status
//! without a detail (from another server, or a transport failure) becomes
//! [`Error::Remote`] with its code and message.
//!
//! The same detail travels in a best-effort batch's per-item results and in
//! a failed watch's end.

use prost::Message;
use tonic::{Code, Status};

use super::proto::{self, error_detail::Error as D};
use crate::{Error, ErrorCode};

/// The type URL of the detail in a status's `google.rpc.Status`.
pub(crate) const DETAIL_TYPE_URL: &str = "type.googleapis.com/varwatch.v1.ErrorDetail";

/// `google.rpc.Status` (google/rpc/status.proto), the standard container
/// of a status's details.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

/// How deep a rejected batch's failures may nest (a detail from a hostile
/// peer must not recurse without bound).
const MAX_DEPTH: usize = 4;

/// The longest string a detail carries, in bytes (longer ones are cut at a
/// character boundary): a detail travels in a trailer, and an identifier of
/// 20 000 characters must not push it past a client's header limit.
pub(crate) const MAX_DETAIL_STRING: usize = 1024;

/// The most items of a list (failures of a batch, unknown identifiers) a
/// detail carries.
pub(crate) const MAX_DETAIL_ITEMS: usize = 100;

/// `s`, cut to [`MAX_DETAIL_STRING`] bytes.
fn cut(s: &str) -> String {
    if s.len() <= MAX_DETAIL_STRING {
        return s.to_string();
    }
    let mut end = MAX_DETAIL_STRING;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The status code of each kind of error.
pub(crate) fn tonic_code(code: ErrorCode) -> Code {
    match code {
        ErrorCode::NotFound => Code::NotFound,
        ErrorCode::AlreadyExists => Code::AlreadyExists,
        ErrorCode::InvalidArgument => Code::InvalidArgument,
        ErrorCode::FailedPrecondition => Code::FailedPrecondition,
        ErrorCode::ResourceExhausted => Code::ResourceExhausted,
        ErrorCode::Unauthenticated => Code::Unauthenticated,
        ErrorCode::Unavailable => Code::Unavailable,
        ErrorCode::DeadlineExceeded => Code::DeadlineExceeded,
        _ => Code::Unknown,
    }
}

/// The kind of error a status code stands for.
pub(crate) fn error_code(code: Code) -> ErrorCode {
    match code {
        Code::NotFound => ErrorCode::NotFound,
        Code::AlreadyExists => ErrorCode::AlreadyExists,
        Code::InvalidArgument | Code::OutOfRange => ErrorCode::InvalidArgument,
        Code::FailedPrecondition | Code::Aborted => ErrorCode::FailedPrecondition,
        Code::ResourceExhausted => ErrorCode::ResourceExhausted,
        Code::Unauthenticated | Code::PermissionDenied => ErrorCode::Unauthenticated,
        Code::Unavailable | Code::Cancelled => ErrorCode::Unavailable,
        Code::DeadlineExceeded => ErrorCode::DeadlineExceeded,
        _ => ErrorCode::Other,
    }
}

/// The status for `err`: its code, its message, and its detail.
pub(crate) fn status(err: &Error) -> Status {
    let code = tonic_code(err.code());
    let message = match err {
        Error::Remote { message, .. } => message.clone(),
        other => other.to_string(),
    };
    let Some(detail) = detail(err) else {
        return Status::new(code, message);
    };
    let rpc = RpcStatus {
        code: code as i32,
        message: message.clone(),
        details: vec![prost_types::Any {
            type_url: DETAIL_TYPE_URL.to_string(),
            value: detail.encode_to_vec(),
        }],
    };
    Status::with_details(code, message, rpc.encode_to_vec().into())
}

/// The error a status received from the server at `addr` stands for: the
/// store's own, from the detail; [`Error::Transport`] naming `addr` and the
/// cause when the status was made on this side because the server could
/// not be reached (tonic sets its source: a connection or HTTP/2 error);
/// else [`Error::Remote`].
pub(crate) fn error_of_status_from(addr: &str, s: Status) -> Error {
    if s.details().is_empty()
        && let Some(source) = std::error::Error::source(&s)
    {
        let mut reason = s.message().to_string();
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source);
        while let Some(c) = cause {
            let text = c.to_string();
            if !text.is_empty() && !reason.contains(&text) {
                reason = format!("{reason}: {text}");
            }
            cause = c.source();
        }
        return Error::Transport {
            addr: addr.to_string(),
            reason,
            source: Some(crate::ErrorSource::new(s)),
        };
    }
    error_from_status(&s)
}

/// The error a status stands for: the store's own, from the detail, or
/// [`Error::Remote`] when it has none.
pub(crate) fn error_from_status(s: &Status) -> Error {
    if !s.details().is_empty()
        && let Ok(rpc) = RpcStatus::decode(s.details())
        && let Some(any) = rpc.details.iter().find(|a| a.type_url == DETAIL_TYPE_URL)
        && let Ok(d) = proto::ErrorDetail::decode(any.value.as_slice())
        && let Some(e) = error(d)
    {
        return e;
    }
    Error::Remote {
        code: error_code(s.code()),
        message: s.message().to_string(),
    }
}

fn session_ref(session: &str) -> proto::SessionRef {
    proto::SessionRef {
        session: cut(session),
    }
}

fn variable_ref(session: &str, variable: &str) -> proto::VariableRef {
    proto::VariableRef {
        session: cut(session),
        variable: cut(variable),
    }
}

fn variable_reason(session: &str, variable: &str, reason: &str) -> proto::VariableReason {
    proto::VariableReason {
        session: cut(session),
        variable: cut(variable),
        reason: cut(reason),
    }
}

/// The detail of `err` (`None` for [`Error::Remote`], which has none of its
/// own). Bounded: strings longer than [`MAX_DETAIL_STRING`] bytes are cut,
/// lists keep their first [`MAX_DETAIL_ITEMS`] items.
pub(crate) fn detail(err: &Error) -> Option<proto::ErrorDetail> {
    let d = match err {
        Error::SessionNotFound { session } => D::SessionNotFound(session_ref(session)),
        Error::SessionExists { session } => D::SessionExists(session_ref(session)),
        Error::SessionQuotaExceeded { session, max } => {
            D::SessionQuotaExceeded(proto::SessionQuotaExceeded {
                session: cut(session),
                max: *max as u64,
            })
        }
        Error::InvalidName { what, name, reason } => D::InvalidName(proto::InvalidName {
            what: cut(what),
            name: cut(name),
            reason: cut(reason),
        }),
        Error::VariableNotFound { session, variable } => D::VariableNotFound(variable_ref(session, variable)),
        Error::VariablesNotFound { session, variables } => D::VariablesNotFound(proto::VariablesNotFound {
            session: cut(session),
            variables: variables
                .iter()
                .take(MAX_DETAIL_ITEMS)
                .map(|v| cut(v))
                .collect::<Vec<_>>(),
        }),
        Error::VariableExists { session, name } => D::VariableExists(variable_ref(session, name)),
        Error::InvalidValue {
            session,
            variable,
            reason,
        } => D::InvalidValue(variable_reason(session, variable, reason)),
        Error::InvalidConstraints {
            session,
            variable,
            reason,
        } => D::InvalidConstraints(variable_reason(session, variable, reason)),
        Error::InvalidTensor {
            shape,
            expected,
            actual,
        } => D::InvalidTensor(proto::InvalidTensor {
            shape: shape.iter().take(MAX_DETAIL_ITEMS).map(|&d| d as u64).collect(),
            expected: expected.to_string(),
            actual: *actual as u64,
        }),
        Error::VersionConflict {
            session,
            variable,
            expected,
            current,
        } => D::VersionConflict(proto::VersionConflict {
            session: cut(session),
            variable: cut(variable),
            expected: *expected,
            current: *current,
        }),
        Error::BatchRejected { session, failures } => D::BatchRejected(proto::BatchRejected {
            session: cut(session),
            failures: failures
                .iter()
                .take(MAX_DETAIL_ITEMS)
                .map(|(variable, e)| proto::BatchFailure {
                    variable: cut(variable),
                    error: detail(e),
                })
                .collect(),
        }),
        Error::DuplicateInBatch { session, variable } => D::DuplicateInBatch(variable_ref(session, variable)),
        Error::InvalidOption(message) => D::InvalidOption(proto::Message {
            message: cut(message),
        }),
        Error::LimitExceeded { what, limit, actual } => D::LimitExceeded(proto::LimitExceeded {
            what: cut(what),
            limit: *limit as u64,
            actual: *actual as u64,
        }),
        Error::InvalidPattern { pattern, reason } => D::InvalidPattern(proto::InvalidPattern {
            pattern: cut(pattern),
            reason: cut(reason),
        }),
        Error::OutcomeUnknown {
            session,
            operation,
            reason,
        } => D::OutcomeUnknown(proto::OutcomeUnknown {
            session: cut(session),
            operation: cut(operation),
            reason: cut(reason),
        }),
        Error::Transport { addr, reason, .. } => D::Transport(proto::Transport {
            address: cut(addr),
            reason: cut(reason),
        }),
        Error::Storage { path, reason } => D::Storage(proto::Storage {
            path: cut(path),
            reason: cut(reason),
        }),
        Error::Remote { .. } => return None,
    };
    Some(proto::ErrorDetail { error: Some(d) })
}

/// The error a detail describes (`None` for an empty or unknown one: a
/// newer server's).
pub(crate) fn error(d: proto::ErrorDetail) -> Option<Error> {
    error_at(d, 0)
}

fn size(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn error_at(d: proto::ErrorDetail, depth: usize) -> Option<Error> {
    Some(match d.error? {
        D::SessionNotFound(r) => Error::SessionNotFound { session: r.session },
        D::SessionExists(r) => Error::SessionExists { session: r.session },
        D::SessionQuotaExceeded(q) => Error::SessionQuotaExceeded {
            session: q.session,
            max: size(q.max),
        },
        D::InvalidName(n) => Error::InvalidName {
            what: n.what.into(),
            name: n.name,
            reason: n.reason.into(),
        },
        D::VariableNotFound(r) => Error::VariableNotFound {
            session: r.session,
            variable: r.variable,
        },
        D::VariablesNotFound(v) => Error::VariablesNotFound {
            session: v.session,
            variables: v.variables,
        },
        D::VariableExists(r) => Error::VariableExists {
            session: r.session,
            name: r.variable,
        },
        D::InvalidValue(v) => Error::InvalidValue {
            session: v.session,
            variable: v.variable,
            reason: v.reason,
        },
        D::InvalidConstraints(v) => Error::InvalidConstraints {
            session: v.session,
            variable: v.variable,
            reason: v.reason,
        },
        D::InvalidTensor(t) => Error::InvalidTensor {
            shape: t.shape.into_iter().map(size).collect(),
            expected: t.expected.parse().unwrap_or(u128::MAX),
            actual: size(t.actual),
        },
        D::VersionConflict(v) => Error::VersionConflict {
            session: v.session,
            variable: v.variable,
            expected: v.expected,
            current: v.current,
        },
        D::BatchRejected(b) => Error::BatchRejected {
            session: b.session,
            failures: b
                .failures
                .into_iter()
                .map(|f| {
                    let e = f
                        .error
                        .filter(|_| depth < MAX_DEPTH)
                        .and_then(|d| error_at(d, depth + 1))
                        .unwrap_or_else(|| Error::Remote {
                            code: ErrorCode::Other,
                            message: "an error this client does not know".into(),
                        });
                    (f.variable, e)
                })
                .collect(),
        },
        D::DuplicateInBatch(r) => Error::DuplicateInBatch {
            session: r.session,
            variable: r.variable,
        },
        D::InvalidOption(m) => Error::InvalidOption(m.message),
        D::LimitExceeded(l) => Error::LimitExceeded {
            what: l.what,
            limit: size(l.limit),
            actual: size(l.actual),
        },
        D::InvalidPattern(p) => Error::InvalidPattern {
            pattern: p.pattern,
            reason: p.reason.into(),
        },
        D::OutcomeUnknown(o) => Error::OutcomeUnknown {
            session: o.session,
            operation: o.operation,
            reason: o.reason,
        },
        D::Transport(t) => Error::Transport {
            addr: t.address,
            reason: t.reason,
            source: None,
        },
        D::Storage(t) => Error::Storage {
            path: t.path,
            reason: t.reason,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant crosses a status and comes back equal: the same
    /// variant, the same fields.
    #[test]
    fn every_error_survives_a_status() {
        let s = "s".to_string();
        let v = "x".to_string();
        let errors = vec![
            Error::SessionNotFound { session: s.clone() },
            Error::SessionExists { session: s.clone() },
            Error::SessionQuotaExceeded {
                session: s.clone(),
                max: 7,
            },
            Error::InvalidName {
                what: "variable name".into(),
                name: "var_1".into(),
                reason: "has the form of a variable id".into(),
            },
            Error::VariableNotFound {
                session: s.clone(),
                variable: v.clone(),
            },
            Error::VariablesNotFound {
                session: s.clone(),
                variables: vec!["a".into(), "b".into()],
            },
            Error::VariableExists {
                session: s.clone(),
                name: v.clone(),
            },
            Error::InvalidValue {
                session: s.clone(),
                variable: v.clone(),
                reason: "150 is above maximum 100".into(),
            },
            Error::InvalidConstraints {
                session: s.clone(),
                variable: v.clone(),
                reason: "min above max".into(),
            },
            Error::InvalidTensor {
                shape: vec![2, 3],
                expected: 6,
                actual: 5,
            },
            Error::VersionConflict {
                session: s.clone(),
                variable: v.clone(),
                expected: 0,
                current: 2,
            },
            Error::BatchRejected {
                session: s.clone(),
                failures: vec![
                    (
                        "a".into(),
                        Error::VariableNotFound {
                            session: s.clone(),
                            variable: "a".into(),
                        },
                    ),
                    (
                        "b".into(),
                        Error::DuplicateInBatch {
                            session: s.clone(),
                            variable: "b".into(),
                        },
                    ),
                ],
            },
            Error::InvalidOption("capacity must be at least 1".into()),
            Error::LimitExceeded {
                what: "items in one batch".into(),
                limit: 10,
                actual: 11,
            },
            Error::InvalidPattern {
                pattern: "*".repeat(300),
                reason: "must be at most 256 bytes long".into(),
            },
            Error::OutcomeUnknown {
                session: s.clone(),
                operation: "update of `x`".into(),
                reason: "etcd did not answer".into(),
            },
            Error::Transport {
                addr: "127.0.0.1:2379".into(),
                reason: "connection refused".into(),
                source: None,
            },
            Error::Storage {
                path: "/var/lib/varwatch".into(),
                reason: "journal-0000000000000002.log is damaged at byte offset 4096".into(),
            },
        ];
        for e in errors {
            let status = status(&e);
            assert_eq!(status.code(), tonic_code(e.code()), "{e:?}");
            assert_eq!(error_from_status(&status), e);
        }
    }

    /// A detail stays small whatever the input: a 20 000-character
    /// identifier, a batch of 10 000 failures.
    #[test]
    fn details_are_bounded() {
        let huge = "é".repeat(10_000);
        let e = Error::SessionNotFound {
            session: huge.clone(),
        };
        let back = error_from_status(&status(&e));
        let Error::SessionNotFound { session } = back else {
            panic!("{back:?}")
        };
        assert!(session.len() <= MAX_DETAIL_STRING && huge.starts_with(&session));
        let failures = (0..10_000)
            .map(|i| {
                (
                    format!("v{i}"),
                    Error::VariableNotFound {
                        session: "s".into(),
                        variable: format!("v{i}"),
                    },
                )
            })
            .collect();
        let e = Error::BatchRejected {
            session: "s".into(),
            failures,
        };
        let status = status(&e);
        assert!(
            status.details().len() < 16 << 10,
            "{} bytes",
            status.details().len()
        );
        let Error::BatchRejected { failures, .. } = error_from_status(&status) else {
            panic!()
        };
        assert_eq!(failures.len(), MAX_DETAIL_ITEMS);
    }

    /// A status without a detail, or with garbage for one, is a remote
    /// error with its code and message; nothing panics on hostile bytes.
    #[test]
    fn statuses_without_a_valid_detail_are_remote_errors() {
        let plain = Status::unavailable("down");
        assert_eq!(
            error_from_status(&plain),
            Error::Remote {
                code: ErrorCode::Unavailable,
                message: "down".into()
            }
        );
        for junk in [&b"\xff\xff\xff"[..], b"", b"\x1a\x02\x0a\x00"] {
            let s = Status::with_details(Code::NotFound, "gone", junk.to_vec().into());
            assert_eq!(error_from_status(&s).code(), ErrorCode::NotFound);
        }
        // Batches nested deeper than a peer may send are cut, not followed.
        let mut d = proto::ErrorDetail {
            error: Some(D::SessionNotFound(session_ref("s"))),
        };
        for _ in 0..100 {
            d = proto::ErrorDetail {
                error: Some(D::BatchRejected(proto::BatchRejected {
                    session: "s".into(),
                    failures: vec![proto::BatchFailure {
                        variable: "x".into(),
                        error: Some(d),
                    }],
                })),
            };
        }
        assert!(matches!(error(d), Some(Error::BatchRejected { .. })));
    }
}
