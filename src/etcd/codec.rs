//! What the keys hold: a session is a proto `SessionInfo`, a variable a
//! proto `Variable` (the gRPC API's own messages, so a value is encoded one
//! way everywhere), and how they become the crate's types.
//!
//! In the stored `SessionInfo`, `revision` is the session revision (its
//! count of writes) and `variables` its number of variables; `watchers` and
//! `last_accessed` are not stored (they are per client and per access). In
//! the stored `Variable`, `version` and `revision` are the variable's own.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prost::Message;

use crate::meta::VarMeta;
use crate::record::Record;
use crate::transport::grpc::convert::{metadata_from, record_from, value_from, var_meta_from, variable_from};
use crate::transport::grpc::proto;
use crate::{Error, ErrorCode, SessionInfo, Value, Variable};

/// The error for a key whose value is not what varwatch wrote there.
pub(super) fn corrupt(key: &[u8], what: &str) -> Error {
    Error::Remote {
        code: ErrorCode::Other,
        message: format!(
            "etcd key `{}` does not hold a varwatch {what} (was it written by something else?)",
            String::from_utf8_lossy(key)
        ),
    }
}

pub(super) fn decode_meta(key: &[u8], bytes: &[u8]) -> Result<proto::SessionInfo, Error> {
    proto::SessionInfo::decode(bytes).map_err(|_| corrupt(key, "session"))
}

pub(super) fn decode_var(key: &[u8], bytes: &[u8]) -> Result<proto::Variable, Error> {
    proto::Variable::decode(bytes).map_err(|_| corrupt(key, "variable"))
}

pub(super) fn encode<M: Message>(m: &M) -> Vec<u8> {
    m.encode_to_vec()
}

pub(super) use crate::ident::id_number;

/// The session's facts, from its stored record.
pub(super) fn session_info(meta: &proto::SessionInfo, watchers: usize, idle_for: Duration) -> SessionInfo {
    let created_at = meta
        .created_at
        .and_then(|t| SystemTime::try_from(t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let now = SystemTime::now();
    SessionInfo {
        id: meta.session.clone(),
        metadata: metadata_from(meta.metadata.clone()),
        created_at,
        last_accessed: now.checked_sub(idle_for).unwrap_or(now),
        idle_for,
        ttl: meta.ttl_ms.map(Duration::from_millis),
        revision: meta.revision,
        variables: usize::try_from(meta.variables).unwrap_or(usize::MAX),
        watchers,
    }
}

/// The variable a stored record describes.
pub(super) fn variable(key: &[u8], rec: &proto::Variable) -> Result<Variable, Error> {
    variable_from(rec.clone()).map_err(|_| corrupt(key, "variable"))
}

/// The immutable description of a variable, shared by its events.
pub(super) fn var_meta(key: &[u8], rec: &proto::Variable) -> Result<Arc<VarMeta>, Error> {
    var_meta_from(rec, id_number(&rec.id)).map_err(|_| corrupt(key, "variable"))
}

pub(super) fn value(key: &[u8], v: &Option<proto::Value>) -> Result<Value, Error> {
    value_from(v.clone(), usize::MAX).map_err(|_| corrupt(key, "variable"))
}

/// The record of `rec`'s state, as an event carries it.
pub(super) fn record(
    key: &[u8],
    meta: Arc<VarMeta>,
    rec: &proto::Variable,
    old_value: Option<Value>,
) -> Result<Record, Error> {
    record_from(meta, rec, old_value).map_err(|_| corrupt(key, "variable"))
}
