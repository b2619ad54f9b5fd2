//! Turning an etcd watch response into [`Group`]s: one per etcd revision,
//! that is one per write of the session, decoded once however many watches
//! of the client follow the session.

use std::collections::HashMap;
use std::sync::Arc;

use etcd_client::{EventType, WatchResponse};

use super::codec::{self, decode_meta, decode_var};
use super::keys::{KeyKind, Keys};
use crate::Value;
use crate::meta::VarMeta;
use crate::record::Record;
use crate::transport::grpc::proto;

/// What one write did to the session's `meta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MetaChange {
    /// Not touched (not a varwatch write, or a write of other keys only).
    None,
    /// Put: the session revision the write moved to, and which life of the
    /// session it is (`create_revision`).
    Put { revision: u64, incarnation: i64 },
    /// Deleted: the session ended (deleted, or its lease expired).
    Deleted,
}

/// A variable's new state, decoded.
pub(super) struct Put {
    pub(super) id: String,
    pub(super) version: u64,
    pub(super) meta: Arc<VarMeta>,
    /// The state as an event carries it; its `old_value` is set when the
    /// decoder saw the version before (then every watch that saw it too can
    /// hand out this very record).
    pub(super) record: crate::sync::Arc<Record>,
    pub(super) value: Value,
}

/// One change of a variable in a write.
pub(super) enum VarChange {
    Put(Put),
    /// Deleted: the key, and the id the decoder knew for it.
    Delete {
        key: Vec<u8>,
        id: Option<String>,
    },
}

/// One etcd revision's events: one write of the session.
pub(super) struct Group {
    pub(super) etcd_rev: i64,
    pub(super) meta: MetaChange,
    pub(super) vars: Vec<VarChange>,
}

/// Decodes a stream's responses, remembering per variable its description
/// (shared by its events), its key and its last value. It only ever holds
/// what the session holds (an entry goes with its variable's deletion).
#[derive(Default)]
pub(super) struct Decoder {
    metas: HashMap<String, Arc<VarMeta>>,
    last: HashMap<String, (u64, Value)>,
    ids: HashMap<Vec<u8>, String>,
}

impl Decoder {
    /// Starts from a cut's states.
    pub(super) fn seed(&mut self, recs: &[(Vec<u8>, proto::Variable)]) {
        self.metas.clear();
        self.last.clear();
        self.ids.clear();
        for (key, rec) in recs {
            if let (Ok(meta), Ok(v)) = (codec::var_meta(key, rec), codec::value(key, &rec.value)) {
                self.metas.insert(rec.id.clone(), meta);
                self.last.insert(rec.id.clone(), (rec.version, v));
                self.ids.insert(key.clone(), rec.id.clone());
            }
        }
    }

    /// The response's groups, in order. Events that are not varwatch's
    /// (a key it cannot decode) are left out.
    pub(super) fn groups(&mut self, dir: &str, resp: &WatchResponse) -> Vec<Group> {
        let mut out: Vec<Group> = Vec::new();
        for e in resp.events() {
            let Some(kv) = e.kv() else { continue };
            let rev = kv.mod_revision();
            if out.last().is_none_or(|g| g.etcd_rev != rev) {
                out.push(Group {
                    etcd_rev: rev,
                    meta: MetaChange::None,
                    vars: Vec::new(),
                });
            }
            let g = out.last_mut().expect("pushed above");
            match (Keys::kind(dir, kv.key()), e.event_type()) {
                (KeyKind::Meta, EventType::Delete) => g.meta = MetaChange::Deleted,
                (KeyKind::Meta, EventType::Put) => {
                    if let Ok(m) = decode_meta(kv.key(), kv.value()) {
                        g.meta = MetaChange::Put {
                            revision: m.revision,
                            incarnation: kv.create_revision(),
                        };
                    }
                }
                (KeyKind::Var, EventType::Put) => {
                    if let Some(p) = self.put(kv) {
                        g.vars.push(VarChange::Put(p));
                    }
                }
                (KeyKind::Var, EventType::Delete) => {
                    let id = self.ids.remove(kv.key());
                    if let Some(id) = &id {
                        self.metas.remove(id);
                        self.last.remove(id);
                    }
                    g.vars.push(VarChange::Delete {
                        key: kv.key().to_vec(),
                        id,
                    });
                }
                _ => {}
            }
        }
        out
    }

    fn put(&mut self, kv: &etcd_client::KeyValue) -> Option<Put> {
        let rec = decode_var(kv.key(), kv.value()).ok()?;
        let value = codec::value(kv.key(), &rec.value).ok()?;
        let meta = match self.metas.get(&rec.id) {
            Some(m) => m.clone(),
            None => {
                let m = codec::var_meta(kv.key(), &rec).ok()?;
                self.metas.insert(rec.id.clone(), m.clone());
                self.ids.insert(kv.key().to_vec(), rec.id.clone());
                m
            }
        };
        let old = match self.last.get(&rec.id) {
            Some((v, old)) if *v + 1 == rec.version => Some(old.clone()),
            _ => None,
        };
        self.last.insert(rec.id.clone(), (rec.version, value.clone()));
        let record = codec::record(kv.key(), meta.clone(), &rec, old).ok()?;
        Some(Put {
            id: rec.id,
            version: rec.version,
            meta,
            record: crate::sync::Arc::new(record),
            value,
        })
    }
}
