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

/// Which write left a session's `meta`: a field of the stored record that
/// is not part of the API's `SessionInfo` (tag 1000, which that message
/// does not use and its decoders skip). A client whose write's answer was
/// lost recognises its own commit by it (see `conn.rs`).
#[derive(Clone, PartialEq, prost::Message)]
struct WriteMark {
    #[prost(bytes = "vec", tag = "1000")]
    write_id: Vec<u8>,
}

/// A write's id: unique to this client and write.
pub(super) type WriteId = [u8; 16];

/// `meta` encoded with the id of the write that stores it.
pub(super) fn encode_meta(meta: &proto::SessionInfo, write_id: &WriteId) -> Vec<u8> {
    let mut bytes = meta.encode_to_vec();
    WriteMark {
        write_id: write_id.to_vec(),
    }
    .encode(&mut bytes)
    .expect("a Vec grows");
    bytes
}

/// The id of the write that stored `bytes` (a `meta`), if it has one.
pub(super) fn write_id_of(bytes: &[u8]) -> Option<WriteId> {
    WriteMark::decode(bytes).ok()?.write_id.try_into().ok()
}

/// Hands out write ids: a random number of this client, and a counter.
pub(super) struct WriteIds {
    client: u64,
    next: std::sync::atomic::AtomicU64,
}

impl WriteIds {
    pub(super) fn new() -> WriteIds {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_u32(std::process::id());
        WriteIds {
            client: h.finish(),
            next: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub(super) fn next(&self) -> WriteId {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut id = [0; 16];
        id[..8].copy_from_slice(&self.client.to_be_bytes());
        id[8..].copy_from_slice(&n.to_be_bytes());
        id
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_meta_carries_its_write_id_and_decodes_as_before() {
        let meta = proto::SessionInfo {
            session: "s".into(),
            revision: 7,
            ..Default::default()
        };
        let ids = WriteIds::new();
        let (a, b) = (ids.next(), ids.next());
        assert_ne!(a, b);
        let bytes = encode_meta(&meta, &a);
        assert_eq!(
            decode_meta(b"k", &bytes).unwrap(),
            meta,
            "the API's decoder skips the mark"
        );
        assert_eq!(write_id_of(&bytes), Some(a));
        assert_eq!(
            write_id_of(&encode(&meta)),
            None,
            "a meta without a mark has none"
        );
        assert_ne!(WriteIds::new().next(), a, "two clients differ");
    }
}
