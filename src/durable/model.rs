//! What the journal and the snapshots hold, and the one rule that turns
//! them back into a store's state: [`Model::apply`].
//!
//! A [`Model`] is a store's whole state as plain data — each session's
//! facts, incarnation, revision, last access, variables (as the gRPC API's
//! `Variable` messages, the encoding of values everywhere in varwatch) and
//! recent deletions — and a snapshot is a model written down. Each
//! [`Entry`] of the journal is one accepted change. Recovery is a fold:
//! the last snapshot, then every entry after it, applied in order.
//!
//! # Replay is idempotent
//!
//! A snapshot is taken while writes go on (see `snapshot.rs`), so the
//! journal after it may hold changes the snapshot already has. `apply`
//! skips them: an entry applies only to the session of its id *and
//! incarnation*, and only if its revision is past the session's; a
//! creation of a session that exists (with that incarnation) and a
//! deletion of one that does not are no-ops. So applying an entry twice,
//! or an entry older than the state, changes nothing.

use prost::Message;

use crate::ident::id_number;
use crate::transport::grpc::proto;

/// How many recent deletions a session remembers (as the live store does,
/// for resuming remote watches).
pub(crate) const TOMBSTONES: usize = 4096;

/// A deleted variable: its id, name and the version of its deletion.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Tombstone {
    #[prost(string, tag = "1")]
    pub(crate) id: String,
    #[prost(string, tag = "2")]
    pub(crate) name: String,
    #[prost(uint64, tag = "3")]
    pub(crate) version: u64,
}

/// One session, as a snapshot holds it.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct SessionModel {
    /// Id, metadata, creation time, TTL and revision (`variables`,
    /// `watchers` and `last_accessed` unused).
    #[prost(message, optional, tag = "1")]
    pub(crate) info: Option<proto::SessionInfo>,
    #[prost(uint64, tag = "2")]
    pub(crate) incarnation: u64,
    /// Milliseconds since the Unix epoch of the last recorded access.
    #[prost(uint64, tag = "3")]
    pub(crate) last_access_ms: u64,
    /// Its variables, in registration (id) order.
    #[prost(message, repeated, tag = "4")]
    pub(crate) vars: Vec<proto::Variable>,
    /// Its latest deletions, oldest first.
    #[prost(message, repeated, tag = "5")]
    pub(crate) tombstones: Vec<Tombstone>,
}

impl SessionModel {
    pub(crate) fn revision(&self) -> u64 {
        self.info.as_ref().map_or(0, |i| i.revision)
    }

    fn set_revision(&mut self, r: u64) {
        if let Some(i) = &mut self.info {
            i.revision = r;
        }
    }

    fn var_mut(&mut self, id: &str) -> Option<&mut proto::Variable> {
        let n = id_number(id);
        // Registration order is id order: a binary search finds it.
        match self.vars.binary_search_by_key(&n, |v| id_number(&v.id)) {
            Ok(i) => Some(&mut self.vars[i]),
            Err(_) => None,
        }
    }
}

/// A store's whole state (see the module docs).
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Model {
    #[prost(message, repeated, tag = "1")]
    pub(crate) sessions: Vec<SessionModel>,
    /// The last variable id handed out (`var_<n>`): ids are never reused.
    #[prost(uint64, tag = "2")]
    pub(crate) last_var_id: u64,
    /// The journal segment a snapshot's replay starts from.
    #[prost(uint64, tag = "3")]
    pub(crate) start_segment: u64,
}

/// One accepted change: of session `session` in its life `incarnation`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Entry {
    #[prost(string, tag = "1")]
    pub(crate) session: String,
    #[prost(uint64, tag = "2")]
    pub(crate) incarnation: u64,
    #[prost(oneof = "Change", tags = "3, 4, 5, 6, 7, 8")]
    pub(crate) change: Option<Change>,
}

/// What an entry changed.
// An entry lives for one commit (built, encoded, dropped): boxing the large
// `Create` would add an allocation to the rare case and save nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, PartialEq, prost::Oneof)]
pub(crate) enum Change {
    /// The session was created (its facts, revision 0).
    #[prost(message, tag = "3")]
    Create(proto::SessionInfo),
    /// The session was deleted or expired.
    #[prost(message, tag = "4")]
    Delete(Nothing),
    /// Variables were registered, in full, at one revision.
    #[prost(message, tag = "5")]
    Register(Vars),
    /// Variables changed at one revision: each `Variable` holds its id,
    /// new value, version, revision, time, source and change metadata.
    #[prost(message, tag = "6")]
    Update(Vars),
    /// A variable was deleted: its id, and the deletion's version and
    /// revision.
    #[prost(message, tag = "7")]
    DeleteVar(proto::Variable),
    /// The session was accessed at this time (ms since the Unix epoch).
    #[prost(uint64, tag = "8")]
    Touch(u64),
}

/// An empty message.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Nothing {}

/// Variables changed by one entry.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Vars {
    #[prost(message, repeated, tag = "1")]
    pub(crate) vars: Vec<proto::Variable>,
}

/// The entries of one journal block.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Block {
    #[prost(message, repeated, tag = "1")]
    pub(crate) entries: Vec<Entry>,
}

impl Model {
    fn session_mut(&mut self, id: &str, incarnation: u64) -> Option<&mut SessionModel> {
        let i = self.position(id)?;
        let s = &mut self.sessions[i];
        (s.incarnation == incarnation).then_some(s)
    }

    fn position(&self, id: &str) -> Option<usize> {
        self.sessions
            .binary_search_by(|s| s.info.as_ref().map_or("", |i| i.session.as_str()).cmp(id))
            .ok()
    }

    /// Applies one entry (see the module docs for what is skipped).
    pub(crate) fn apply(&mut self, e: Entry) {
        let Some(change) = e.change else { return };
        match change {
            Change::Create(info) => {
                let at = self
                    .sessions
                    .binary_search_by(|s| s.info.as_ref().map_or("", |i| i.session.as_str()).cmp(&e.session));
                match at {
                    Ok(i) if self.sessions[i].incarnation == e.incarnation => {}
                    // Another life of the id (its deletion was in a lost
                    // write of the old one): the newer one stands.
                    Ok(i) => self.sessions[i] = new_session(info, e.incarnation),
                    Err(i) => self.sessions.insert(i, new_session(info, e.incarnation)),
                }
            }
            Change::Delete(_) => {
                if let Some(i) = self.position(&e.session)
                    && self.sessions[i].incarnation == e.incarnation
                {
                    self.sessions.remove(i);
                }
            }
            Change::Touch(ms) => {
                if let Some(s) = self.session_mut(&e.session, e.incarnation) {
                    s.last_access_ms = s.last_access_ms.max(ms);
                }
            }
            Change::Register(Vars { vars }) => {
                let last = vars.iter().map(|v| id_number(&v.id)).max().unwrap_or(0);
                self.last_var_id = self.last_var_id.max(last);
                let Some(s) = self.session_mut(&e.session, e.incarnation) else {
                    return;
                };
                let Some(revision) = vars.first().map(|v| v.revision) else {
                    return;
                };
                if revision <= s.revision() {
                    return; // the snapshot has it
                }
                for v in vars {
                    let n = id_number(&v.id);
                    let at = s.vars.partition_point(|x| id_number(&x.id) < n);
                    s.vars.insert(at, v);
                }
                s.set_revision(revision);
            }
            Change::Update(Vars { vars }) => {
                let Some(s) = self.session_mut(&e.session, e.incarnation) else {
                    return;
                };
                let Some(revision) = vars.first().map(|v| v.revision) else {
                    return;
                };
                if revision <= s.revision() {
                    return;
                }
                for c in vars {
                    if let Some(v) = s.var_mut(&c.id) {
                        v.value = c.value;
                        v.version = c.version;
                        v.revision = c.revision;
                        v.updated_at = c.updated_at;
                        v.source = c.source;
                        v.change_metadata = c.change_metadata;
                    }
                }
                s.set_revision(revision);
            }
            Change::DeleteVar(d) => {
                let Some(s) = self.session_mut(&e.session, e.incarnation) else {
                    return;
                };
                if d.revision <= s.revision() {
                    return;
                }
                let n = id_number(&d.id);
                if let Ok(i) = s.vars.binary_search_by_key(&n, |v| id_number(&v.id)) {
                    let gone = s.vars.remove(i);
                    if s.tombstones.len() == TOMBSTONES {
                        s.tombstones.remove(0);
                    }
                    s.tombstones.push(Tombstone {
                        id: gone.id,
                        name: gone.name,
                        version: d.version,
                    });
                }
                s.set_revision(d.revision);
            }
        }
    }
}

fn new_session(info: proto::SessionInfo, incarnation: u64) -> SessionModel {
    let created_ms = info.created_at.map_or(0, |t| {
        u64::try_from(t.seconds).unwrap_or(0) * 1000 + u64::try_from(t.nanos / 1_000_000).unwrap_or(0)
    });
    SessionModel {
        info: Some(proto::SessionInfo {
            revision: 0,
            variables: 0,
            watchers: 0,
            last_accessed: None,
            ..info
        }),
        incarnation,
        last_access_ms: created_ms,
        vars: Vec::new(),
        tombstones: Vec::new(),
    }
}

/// Encodes `m` (a message of this module) to bytes.
pub(crate) fn encode<M: Message>(m: &M) -> Vec<u8> {
    m.encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str) -> proto::SessionInfo {
        proto::SessionInfo {
            session: id.into(),
            ..Default::default()
        }
    }

    fn var(id: u64, name: &str, version: u64, revision: u64, value: i64) -> proto::Variable {
        proto::Variable {
            id: format!("var_{id}"),
            name: name.into(),
            version,
            revision,
            value: Some(proto::Value {
                kind: Some(proto::value::Kind::IntegerValue(value)),
            }),
            ..Default::default()
        }
    }

    fn entry(session: &str, incarnation: u64, change: Change) -> Entry {
        Entry {
            session: session.into(),
            incarnation,
            change: Some(change),
        }
    }

    fn history() -> Vec<Entry> {
        vec![
            entry("a", 1, Change::Create(info("a"))),
            entry(
                "a",
                1,
                Change::Register(Vars {
                    vars: vec![var(1, "x", 0, 1, 0), var(2, "y", 0, 1, 0)],
                }),
            ),
            entry(
                "a",
                1,
                Change::Update(Vars {
                    vars: vec![var(1, "", 1, 2, 5)],
                }),
            ),
            entry("b", 7, Change::Create(info("b"))),
            entry("a", 1, Change::DeleteVar(var(2, "", 1, 3, 0))),
            entry("a", 1, Change::Touch(99)),
            entry("b", 7, Change::Delete(Nothing {})),
            entry("b", 8, Change::Create(info("b"))),
            entry(
                "b",
                8,
                Change::Register(Vars {
                    vars: vec![var(3, "z", 0, 1, 1)],
                }),
            ),
        ]
    }

    fn fold(entries: impl IntoIterator<Item = Entry>) -> Model {
        let mut m = Model::default();
        for e in entries {
            m.apply(e);
        }
        m
    }

    #[test]
    fn a_fold_of_the_history_is_the_state() {
        let m = fold(history());
        assert_eq!(m.last_var_id, 3);
        let ids: Vec<(&str, u64)> = m
            .sessions
            .iter()
            .map(|s| (s.info.as_ref().unwrap().session.as_str(), s.incarnation))
            .collect();
        assert_eq!(ids, [("a", 1), ("b", 8)], "b's second life");
        let a = &m.sessions[0];
        assert_eq!(a.revision(), 3);
        assert_eq!(a.vars.len(), 1);
        assert_eq!((a.vars[0].name.as_str(), a.vars[0].version), ("x", 1));
        assert_eq!(
            a.tombstones,
            [Tombstone {
                id: "var_2".into(),
                name: "y".into(),
                version: 1
            }]
        );
        assert_eq!(a.last_access_ms, 99);
        assert_eq!(m.sessions[1].vars[0].name, "z");
    }

    #[test]
    fn replaying_over_a_later_state_changes_nothing() {
        // A snapshot taken at any point, then the whole journal again (a
        // snapshot races with the writes it follows): the same state.
        let all = history();
        let end = fold(all.clone());
        for cut in 0..=all.len() {
            let mut m = fold(all[..cut].iter().cloned());
            let snapshot = Model::decode(&*encode(&m)).unwrap();
            assert_eq!(snapshot, m);
            for e in all.iter().cloned() {
                m.apply(e);
            }
            assert_eq!(m, end, "snapshot after {cut} entries, then all of them");
        }
    }

    #[test]
    fn entries_of_another_life_are_ignored() {
        let mut m = fold(history());
        let before = m.clone();
        m.apply(entry(
            "b",
            7,
            Change::Update(Vars {
                vars: vec![var(3, "", 1, 9, 9)],
            }),
        ));
        m.apply(entry("zzz", 1, Change::Delete(Nothing {})));
        assert_eq!(m, before);
    }
}
