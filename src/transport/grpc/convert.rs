//! Conversions between the wire messages and the library's types, and from
//! [`Error`] to gRPC statuses. Malformed input becomes `INVALID_ARGUMENT`;
//! nothing here panics on input.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tonic::Status;

use super::proto;
use crate::meta::VarMeta;
use crate::record::{Record, RecordKind};
use crate::transport::{
    ClientMessage, ServerMessage, Subscribe, SyncComplete, WatchEnd, WatchTarget, WatchUpdate,
};
use crate::{
    Constraints, Error, ErrorCode, EventKind, SessionInfo, Tensor, Value, VarType, Variable, WatchEvent,
};

/// Each kind of error by its gRPC code's canonical name, as
/// `ItemResult.error_code` carries it.
const CODE_NAMES: [(ErrorCode, &str); 10] = [
    (ErrorCode::NotFound, "NOT_FOUND"),
    (ErrorCode::AlreadyExists, "ALREADY_EXISTS"),
    (ErrorCode::InvalidArgument, "INVALID_ARGUMENT"),
    (ErrorCode::FailedPrecondition, "FAILED_PRECONDITION"),
    (ErrorCode::ResourceExhausted, "RESOURCE_EXHAUSTED"),
    (ErrorCode::Unauthenticated, "UNAUTHENTICATED"),
    (ErrorCode::Unavailable, "UNAVAILABLE"),
    (ErrorCode::DeadlineExceeded, "DEADLINE_EXCEEDED"),
    (ErrorCode::OutcomeUnknown, "UNKNOWN"),
    (ErrorCode::Other, "UNKNOWN"),
];

pub(crate) fn code_name(code: ErrorCode) -> &'static str {
    CODE_NAMES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("UNKNOWN", |(_, name)| name)
}

pub(crate) fn code_from_name(name: &str) -> ErrorCode {
    CODE_NAMES
        .iter()
        .find(|(_, n)| *n == name)
        .map_or(ErrorCode::Other, |(code, _)| *code)
}

/// The status a client can act on for each error: its code, its message,
/// and its fields as the status's detail (`errors.rs`).
pub(crate) fn status(err: Error) -> Status {
    super::errors::status(&err)
}

/// A malformed answer from a server.
fn bad_answer(s: Status) -> Error {
    Error::Remote {
        code: ErrorCode::Other,
        message: format!("malformed answer from the server: {}", s.message()),
    }
}

fn invalid(msg: impl Into<String>) -> Status {
    Status::invalid_argument(msg)
}

fn to_usize(n: u64, what: &str) -> Result<usize, Status> {
    usize::try_from(n).map_err(|_| invalid(format!("{what} {n} is too large")))
}

pub(crate) fn var_type_from(raw: i32) -> Result<VarType, Status> {
    use proto::VarType as P;
    Ok(match P::try_from(raw).unwrap_or(P::Unspecified) {
        P::Float => VarType::Float,
        P::Integer => VarType::Integer,
        P::String => VarType::String,
        P::Boolean => VarType::Boolean,
        P::Choice => VarType::Choice,
        P::Module => VarType::Module,
        P::Embedding => VarType::Embedding,
        P::Tensor => VarType::Tensor,
        P::Unspecified => return Err(invalid(format!("unknown or unspecified variable type {raw}"))),
    })
}

pub(crate) fn var_type_to(t: VarType) -> proto::VarType {
    use proto::VarType as P;
    match t {
        VarType::Float => P::Float,
        VarType::Integer => P::Integer,
        VarType::String => P::String,
        VarType::Boolean => P::Boolean,
        VarType::Choice => P::Choice,
        VarType::Module => P::Module,
        VarType::Embedding => P::Embedding,
        VarType::Tensor => P::Tensor,
    }
}

/// A required value; `max_bytes` bounds strings and vectors.
pub(crate) fn value_from(v: Option<proto::Value>, max_bytes: usize) -> Result<Value, Status> {
    use proto::value::Kind;
    let kind = v
        .and_then(|v| v.kind)
        .ok_or_else(|| invalid("a value is required"))?;
    let too_big = |n: usize| {
        Status::resource_exhausted(format!(
            "value of {n} bytes is larger than the server's limit of {max_bytes} bytes"
        ))
    };
    Ok(match kind {
        Kind::FloatValue(x) => Value::Float(x),
        Kind::IntegerValue(i) => Value::Integer(i),
        Kind::BooleanValue(b) => Value::Boolean(b),
        Kind::StringValue(s) | Kind::ChoiceValue(s) | Kind::ModuleValue(s) if s.len() > max_bytes => {
            return Err(too_big(s.len()));
        }
        Kind::StringValue(s) => Value::String(s.into()),
        Kind::ChoiceValue(s) => Value::Choice(s.into()),
        Kind::ModuleValue(s) => Value::Module(s.into()),
        Kind::EmbeddingValue(e) => {
            if e.values.len() * 4 > max_bytes {
                return Err(too_big(e.values.len() * 4));
            }
            Value::Embedding(e.values.into())
        }
        Kind::TensorValue(t) => {
            if t.data.len() * 4 > max_bytes {
                return Err(too_big(t.data.len() * 4));
            }
            let shape = t
                .shape
                .iter()
                .map(|&d| to_usize(d, "tensor dimension"))
                .collect::<Result<Vec<_>, _>>()?;
            Value::Tensor(Tensor::new(shape, t.data).map_err(status)?)
        }
    })
}

pub(crate) fn value_to(v: &Value) -> proto::Value {
    use proto::value::Kind;
    let kind = match v {
        Value::Float(x) => Kind::FloatValue(*x),
        Value::Integer(i) => Kind::IntegerValue(*i),
        Value::String(s) => Kind::StringValue(s.to_string()),
        Value::Boolean(b) => Kind::BooleanValue(*b),
        Value::Choice(s) => Kind::ChoiceValue(s.to_string()),
        Value::Module(s) => Kind::ModuleValue(s.to_string()),
        Value::Embedding(e) => Kind::EmbeddingValue(proto::FloatVector { values: e.to_vec() }),
        Value::Tensor(t) => Kind::TensorValue(proto::Tensor {
            shape: t.shape().iter().map(|&d| d as u64).collect(),
            data: t.data().to_vec(),
        }),
    };
    proto::Value { kind: Some(kind) }
}

/// A list constraint: set if its flag says so, or (from a client that sets
/// no flags) if it has items.
fn list(v: Vec<String>, has: bool) -> Option<Vec<String>> {
    (has || !v.is_empty()).then_some(v)
}

pub(crate) fn constraints_from(c: Option<proto::Constraints>) -> Result<Constraints, Status> {
    let Some(c) = c else {
        return Ok(Constraints::default());
    };
    let shape = if c.has_shape || !c.shape.is_empty() {
        Some(
            c.shape
                .iter()
                .map(|&d| to_usize(d, "shape dimension"))
                .collect::<Result<_, _>>()?,
        )
    } else {
        None
    };
    Ok(Constraints {
        min: c.min,
        max: c.max,
        min_length: c.min_length.map(|n| to_usize(n, "min_length")).transpose()?,
        max_length: c.max_length.map(|n| to_usize(n, "max_length")).transpose()?,
        allowed_values: list(c.allowed_values, c.has_allowed_values),
        choices: list(c.choices, c.has_choices),
        allowed_modules: list(c.allowed_modules, c.has_allowed_modules),
        dimensions: c.dimensions.map(|n| to_usize(n, "dimensions")).transpose()?,
        shape,
    })
}

pub(crate) fn constraints_to(c: &Constraints) -> proto::Constraints {
    proto::Constraints {
        min: c.min,
        max: c.max,
        min_length: c.min_length.map(|n| n as u64),
        max_length: c.max_length.map(|n| n as u64),
        allowed_values: c.allowed_values.clone().unwrap_or_default(),
        choices: c.choices.clone().unwrap_or_default(),
        allowed_modules: c.allowed_modules.clone().unwrap_or_default(),
        dimensions: c.dimensions.map(|n| n as u64),
        shape: c.shape.iter().flatten().map(|&d| d as u64).collect(),
        has_shape: c.shape.is_some(),
        has_allowed_values: c.allowed_values.is_some(),
        has_choices: c.choices.is_some(),
        has_allowed_modules: c.allowed_modules.is_some(),
    }
}

pub(crate) fn metadata_from(m: std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    m.into_iter().collect()
}

pub(crate) fn metadata_to(m: &BTreeMap<String, String>) -> std::collections::HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub(crate) fn time(t: SystemTime) -> prost_types::Timestamp {
    prost_types::Timestamp::from(t)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(crate) fn variable_to(v: &Variable) -> proto::Variable {
    proto::Variable {
        id: v.id().to_string(),
        name: v.name().to_string(),
        r#type: var_type_to(v.var_type()) as i32,
        value: Some(value_to(v.value())),
        constraints: Some(constraints_to(v.constraints())),
        metadata: metadata_to(v.metadata()),
        version: v.version(),
        revision: v.revision(),
        created_at: Some(time(v.created_at())),
        updated_at: Some(time(v.updated_at())),
        source: v.source().map(str::to_string),
        change_metadata: v.change_metadata().map(metadata_to).unwrap_or_default(),
    }
}

pub(crate) fn session_to(s: &SessionInfo) -> proto::SessionInfo {
    proto::SessionInfo {
        session: s.id.clone(),
        metadata: metadata_to(&s.metadata),
        created_at: Some(time(s.created_at)),
        last_accessed: Some(time(s.last_accessed)),
        ttl_ms: s.ttl.map(millis),
        revision: s.revision,
        variables: s.variables as u64,
        watchers: s.watchers as u64,
    }
}

fn when(t: Option<prost_types::Timestamp>) -> SystemTime {
    t.and_then(|t| SystemTime::try_from(t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

pub(crate) fn session_from(s: proto::SessionInfo) -> SessionInfo {
    let last_accessed = when(s.last_accessed);
    SessionInfo {
        id: s.session,
        metadata: metadata_from(s.metadata),
        created_at: when(s.created_at),
        last_accessed,
        idle_for: SystemTime::now()
            .duration_since(last_accessed)
            .unwrap_or_default(),
        ttl: s.ttl_ms.map(Duration::from_millis),
        revision: s.revision,
        variables: usize::try_from(s.variables).unwrap_or(usize::MAX),
        watchers: usize::try_from(s.watchers).unwrap_or(usize::MAX),
    }
}

/// A variable's description, from a proto `Variable` (shared by all its
/// records; `slot` orders it among its session's variables).
pub(crate) fn var_meta_from(v: &proto::Variable, slot: crate::meta::Slot) -> Result<Arc<VarMeta>, Status> {
    Ok(Arc::new(VarMeta {
        id: v.id.as_str().into(),
        name: v.name.as_str().into(),
        var_type: var_type_from(v.r#type)?,
        constraints: constraints_from(v.constraints.clone())?,
        metadata: Arc::new(metadata_from(v.metadata.clone())),
        created_at: when(v.created_at),
        slot,
    }))
}

/// The state a proto `Variable` describes, as a record of `meta`.
pub(crate) fn record_from(
    meta: Arc<VarMeta>,
    v: &proto::Variable,
    old_value: Option<Value>,
) -> Result<Record, Status> {
    Ok(Record {
        var: meta,
        kind: if v.version == 0 {
            RecordKind::Registered
        } else {
            RecordKind::Changed
        },
        version: v.version,
        revision: v.revision,
        value: value_from(v.value.clone(), usize::MAX)?,
        old_value,
        source: v.source.as_deref().map(Into::into),
        metadata: (!v.change_metadata.is_empty()).then(|| Arc::new(metadata_from(v.change_metadata.clone()))),
        timestamp: when(v.updated_at),
    })
}

pub(crate) fn variable_from(v: proto::Variable) -> Result<Variable, Error> {
    let meta = var_meta_from(&v, 0).map_err(bad_answer)?;
    Ok(Variable {
        record: Arc::new(record_from(meta, &v, None).map_err(bad_answer)?),
    })
}

pub(crate) fn event_to(e: &WatchEvent) -> proto::WatchEvent {
    use proto::EventKind as K;
    let (kind, lag) = match e.kind() {
        EventKind::Initial => (K::Initial, (0, 0)),
        EventKind::Changed => (K::Changed, (0, 0)),
        EventKind::Deleted => (K::Deleted, (0, 0)),
        EventKind::Lagged { first, last } => (K::Lagged, (first, last)),
        EventKind::SessionClosed => (K::SessionClosed, (0, 0)),
        EventKind::Disconnected => (K::Unspecified, (0, 0)), // client-side only
    };
    proto::WatchEvent {
        kind: kind as i32,
        variable_id: e.variable_id().to_string(),
        variable_name: e.variable_name().to_string(),
        version: e.version(),
        revision: e.revision(),
        value: e.value().map(value_to),
        old_value: e.old_value().map(value_to),
        source: e.source().map(str::to_string),
        metadata: e.metadata().map(metadata_to).unwrap_or_default(),
        timestamp: Some(time(e.timestamp())),
        lag_first: lag.0,
        lag_last: lag.1,
        skipped: e.skipped(),
    }
}

/// Turns one stream's wire events back into [`WatchEvent`]s, sharing one
/// description per variable across its events.
///
/// The cache is only a saving: an entry goes with its variable's deletion,
/// and the whole cache is dropped when it reaches [`Self::MAX_CACHED`]
/// entries, so that a long-lived client of many short-lived sessions does
/// not grow without bound.
#[derive(Default)]
pub(crate) struct EventDecoder {
    metas: HashMap<String, Arc<VarMeta>>,
}

impl EventDecoder {
    const MAX_CACHED: usize = 65_536;

    /// `None` for an event of a kind this client does not know (a newer
    /// server's), which is skipped.
    pub(crate) fn decode(&mut self, e: proto::WatchEvent) -> Option<WatchEvent> {
        use proto::EventKind as K;
        let kind = match K::try_from(e.kind).ok()? {
            K::Initial => EventKind::Initial,
            K::Changed => EventKind::Changed,
            K::Deleted => EventKind::Deleted,
            K::Lagged => EventKind::Lagged {
                first: e.lag_first,
                last: e.lag_last,
            },
            K::SessionClosed => EventKind::SessionClosed,
            K::Unspecified => return None,
        };
        let value = e.value.and_then(|v| value_from(Some(v), usize::MAX).ok());
        let old_value = e.old_value.and_then(|v| value_from(Some(v), usize::MAX).ok());
        let meta = match self.metas.get(&e.variable_id) {
            Some(m) => m.clone(), // the common case: no allocation
            None => {
                let m = Arc::new(VarMeta {
                    id: e.variable_id.as_str().into(),
                    name: e.variable_name.as_str().into(),
                    var_type: value.as_ref().map_or(VarType::Boolean, Value::var_type),
                    constraints: Constraints::default(),
                    metadata: Arc::default(),
                    created_at: SystemTime::UNIX_EPOCH,
                    slot: 0,
                });
                if self.metas.len() >= Self::MAX_CACHED {
                    self.metas.clear();
                }
                self.metas.insert(e.variable_id.clone(), m.clone());
                m
            }
        };
        if kind == EventKind::Deleted {
            self.metas.remove(&e.variable_id);
        }
        let record = Record {
            var: meta,
            kind: match kind {
                EventKind::Deleted => RecordKind::Deleted,
                EventKind::SessionClosed => RecordKind::SessionClosed,
                EventKind::Initial => RecordKind::Registered,
                _ => RecordKind::Changed,
            },
            version: e.version,
            revision: e.revision,
            value: value
                .or_else(|| old_value.clone())
                .unwrap_or(Value::Boolean(false)),
            old_value,
            source: e.source.map(Into::into),
            metadata: (!e.metadata.is_empty()).then(|| Arc::new(metadata_from(e.metadata))),
            timestamp: when(e.timestamp),
        };
        Some(WatchEvent::from_parts(kind, Arc::new(record), e.skipped))
    }
}

// ----- the watch stream ---------------------------------------------------

/// A client's request as it travels.
pub(crate) fn request_to(m: ClientMessage) -> proto::WatchRequest {
    use proto::watch_request::Kind;
    let kind = match m {
        ClientMessage::Create(watch_id, sub) => {
            let (variables, whole_session) = match sub.target {
                WatchTarget::Variables(v) => (v, false),
                _ => (Vec::new(), true),
            };
            Kind::Create(proto::WatchCreate {
                watch_id,
                session: sub.session,
                variables,
                whole_session,
                include_initial: sub.include_initial,
                resume_versions: sub.resume,
                session_incarnation: sub.session_incarnation,
                capacity: u32::try_from(sub.capacity).unwrap_or(u32::MAX),
                coalesce: sub.coalesce,
                throttle_ms: sub
                    .throttle
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)),
            })
        }
        ClientMessage::Cancel(watch_id) => Kind::Cancel(proto::WatchCancel { watch_id }),
        ClientMessage::Ack(watch_id, revision) => Kind::Ack(proto::WatchAck { watch_id, revision }),
        ClientMessage::Heartbeat(sequence) => Kind::Heartbeat(proto::Heartbeat { sequence }),
        ClientMessage::Progress(watch_id, request) => {
            Kind::Progress(proto::WatchProgress { watch_id, request })
        }
    };
    proto::WatchRequest { kind: Some(kind) }
}

/// A client's request as the service takes it; `None` for a kind this
/// server does not know (a newer client's), which is skipped.
pub(crate) fn request_from(m: proto::WatchRequest) -> Option<ClientMessage> {
    use proto::watch_request::Kind;
    Some(match m.kind? {
        Kind::Create(c) => {
            let target = if c.whole_session {
                WatchTarget::Session
            } else {
                WatchTarget::Variables(c.variables)
            };
            let mut sub = Subscribe::new(c.session, target);
            sub.include_initial = c.include_initial;
            sub.resume = c.resume_versions;
            sub.capacity = c.capacity as usize;
            sub.session_incarnation = c.session_incarnation;
            sub.coalesce = c.coalesce;
            sub.throttle = c.throttle_ms.filter(|&ms| ms > 0).map(Duration::from_millis);
            ClientMessage::Create(c.watch_id, sub)
        }
        Kind::Cancel(c) => ClientMessage::Cancel(c.watch_id),
        Kind::Ack(a) => ClientMessage::Ack(a.watch_id, a.revision),
        Kind::Heartbeat(h) => ClientMessage::Heartbeat(h.sequence),
        Kind::Progress(p) => ClientMessage::Progress(p.watch_id, p.request),
    })
}

fn end_to(end: &WatchEnd) -> proto::WatchEnd {
    let (code, message) = match end {
        WatchEnd::Done => ("OK", String::new()),
        WatchEnd::Cancelled => ("CANCELLED", String::new()),
        WatchEnd::Failed(e) => (
            code_name(e.code()),
            match e {
                Error::Remote { message, .. } => message.clone(),
                other => other.to_string(),
            },
        ),
    };
    let detail = match end {
        WatchEnd::Failed(e) => super::errors::detail(e),
        _ => None,
    };
    proto::WatchEnd {
        code: code.into(),
        message,
        detail,
    }
}

fn end_from(e: proto::WatchEnd) -> WatchEnd {
    match e.code.as_str() {
        "OK" => WatchEnd::Done,
        "CANCELLED" => WatchEnd::Cancelled,
        name => WatchEnd::Failed(e.detail.and_then(super::errors::error).unwrap_or(Error::Remote {
            code: code_from_name(name),
            message: e.message,
        })),
    }
}

/// The server's message as it travels.
pub(crate) fn response_to(m: &ServerMessage) -> proto::WatchResponse {
    proto::WatchResponse {
        updates: m
            .updates
            .iter()
            .map(|u| proto::WatchUpdate {
                watch_ids: u.ids.clone(),
                events: u.events.iter().map(event_to).collect(),
                group_incomplete: u.group_incomplete,
                sync_complete: u.sync_complete.map(|s| proto::SyncComplete {
                    revision: s.revision,
                    session_incarnation: s.session_incarnation,
                }),
                end: u.end.as_ref().map(end_to),
                progress: u.progress,
            })
            .collect(),
        heartbeat: m.heartbeat.map(|sequence| proto::Heartbeat { sequence }),
    }
}

/// The server's message as the client takes it.
pub(crate) fn response_from(m: proto::WatchResponse, decoder: &mut EventDecoder) -> ServerMessage {
    ServerMessage {
        heartbeat: m.heartbeat.map(|h| h.sequence),
        updates: m
            .updates
            .into_iter()
            .map(|u| {
                let mut update = WatchUpdate::new(0);
                update.ids = u.watch_ids;
                update.events = u.events.into_iter().filter_map(|e| decoder.decode(e)).collect();
                update.group_incomplete = u.group_incomplete;
                update.sync_complete = u
                    .sync_complete
                    .map(|s| SyncComplete::new(s.revision, s.session_incarnation));
                update.end = u.end.map(end_from);
                update.progress = u.progress;
                update
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn values_round_trip() {
        let t = Tensor::new(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        for v in [
            Value::Float(f64::NAN),
            Value::Float(-0.0),
            Value::Integer(i64::MIN),
            Value::String("Hello, 世界".into()),
            Value::Boolean(true),
            Value::choice("a"),
            Value::module("Predict"),
            Value::Embedding(vec![0.5f32; 4096].into()),
            Value::Tensor(t),
        ] {
            let back = value_from(Some(value_to(&v)), 1 << 20).unwrap();
            assert!(back.is_identical(&v), "{v:?} became {back:?}");
        }
    }

    #[test]
    fn malformed_values_are_invalid_arguments() {
        assert_eq!(value_from(None, 100).unwrap_err().code(), Code::InvalidArgument);
        let bad_tensor = proto::Value {
            kind: Some(proto::value::Kind::TensorValue(proto::Tensor {
                shape: vec![2, 3],
                data: vec![0.0; 5],
            })),
        };
        assert_eq!(
            value_from(Some(bad_tensor), 100).unwrap_err().code(),
            Code::InvalidArgument
        );
        let huge = proto::Value {
            kind: Some(proto::value::Kind::StringValue("x".repeat(101))),
        };
        let err = value_from(Some(huge), 100).unwrap_err();
        assert!(
            err.message().contains("larger than the server's limit"),
            "{}",
            err.message()
        );
        assert_eq!(var_type_from(0).unwrap_err().code(), Code::InvalidArgument);
        assert_eq!(var_type_from(99).unwrap_err().code(), Code::InvalidArgument);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn value() -> impl Strategy<Value = crate::Value> {
            prop_oneof![
                any::<f64>().prop_map(Value::Float),
                any::<i64>().prop_map(Value::Integer),
                ".{0,40}".prop_map(|s: String| Value::String(s.into())),
                any::<bool>().prop_map(Value::Boolean),
                "[a-z]{0,8}".prop_map(Value::choice),
                "[A-Za-z]{0,8}".prop_map(Value::module),
                prop::collection::vec(any::<f32>(), 0..64).prop_map(|v| Value::Embedding(v.into())),
                (1usize..4, 1usize..4).prop_flat_map(|(a, b)| {
                    prop::collection::vec(any::<f32>(), a * b)
                        .prop_map(move |d| Value::Tensor(Tensor::new(vec![a, b], d).unwrap()))
                }),
            ]
        }

        fn kind() -> impl Strategy<Value = EventKind> {
            prop_oneof![
                Just(EventKind::Initial),
                Just(EventKind::Changed),
                Just(EventKind::Deleted),
                Just(EventKind::SessionClosed),
                (any::<u64>(), any::<u64>()).prop_map(|(first, last)| EventKind::Lagged { first, last }),
            ]
        }

        proptest! {
            #[test]
            fn any_value_round_trips(v in value()) {
                let back = value_from(Some(value_to(&v)), usize::MAX).unwrap();
                prop_assert!(back.is_identical(&v), "{:?} became {:?}", v, back);
            }

            /// What the server encodes, the client decodes to the same event.
            #[test]
            fn any_event_round_trips(
                kind in kind(),
                value in value(),
                old in value(),
                version in any::<u64>(),
                revision in any::<u64>(),
                skipped in any::<u64>(),
                source in proptest::option::of("[a-z]{1,8}"),
            ) {
                let record = Record {
                    var: Arc::new(VarMeta {
                        id: "var_7".into(),
                        name: "t".into(),
                        var_type: value.var_type(),
                        constraints: Constraints::default(),
                        metadata: Arc::default(),
                        created_at: SystemTime::UNIX_EPOCH,
                        slot: 0,
                    }),
                    kind: RecordKind::Changed,
                    version,
                    revision,
                    value,
                    old_value: Some(old),
                    source: source.map(Into::into),
                    metadata: None,
                    timestamp: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
                };
                let e = WatchEvent::from_parts(kind, Arc::new(record), skipped);
                let back = EventDecoder::default().decode(event_to(&e)).expect("a known kind");
                prop_assert_eq!(back.kind(), e.kind());
                prop_assert_eq!((back.version(), back.revision(), back.skipped()), (e.version(), e.revision(), e.skipped()));
                prop_assert_eq!((back.variable_id(), back.variable_name()), (e.variable_id(), e.variable_name()));
                prop_assert_eq!(back.source(), e.source());
                prop_assert_eq!(back.timestamp(), e.timestamp());
                let same = |a: Option<&Value>, b: Option<&Value>| match (a, b) {
                    (Some(a), Some(b)) => a.is_identical(b),
                    (None, None) => true,
                    _ => false,
                };
                prop_assert!(same(back.value(), e.value()));
                prop_assert!(same(back.old_value(), e.old_value()));
            }

            /// Whatever a (misbehaving) server sends, decoding never panics.
            #[test]
            fn decoding_arbitrary_events_never_panics(
                kind in any::<i32>(),
                id in ".{0,8}",
                version in any::<u64>(),
                revision in any::<u64>(),
                lag in (any::<u64>(), any::<u64>()),
                shape in prop::collection::vec(any::<u64>(), 0..4),
                data in prop::collection::vec(any::<f32>(), 0..8),
                seconds in any::<i64>(),
                nanos in any::<i32>(),
            ) {
                let mut decoder = EventDecoder::default();
                let e = proto::WatchEvent {
                    kind,
                    variable_id: id,
                    version,
                    revision,
                    lag_first: lag.0,
                    lag_last: lag.1,
                    value: Some(proto::Value {
                        kind: Some(proto::value::Kind::TensorValue(proto::Tensor { shape, data })),
                    }),
                    timestamp: Some(prost_types::Timestamp { seconds, nanos }),
                    ..Default::default()
                };
                if let Some(e) = decoder.decode(e) {
                    let _ = (e.version(), e.value(), e.timestamp(), format!("{e:?}"));
                }
            }
        }
    }
}
