//! The write protocol: every write of a session is checked against a
//! [`Snap`] of the session (its `meta` record and the variables the write
//! names, all read at one etcd revision) and committed by one etcd
//! transaction guarded by `meta`'s `mod_revision`.
//!
//! # Why this is serializable
//!
//! Every write of a session, whatever keys it touches, also puts the
//! session's `meta` key (its revision + 1). So "`meta`'s `mod_revision` is
//! still the one in my snapshot" means "nothing of this session changed
//! since my snapshot was read": a write whose transaction passes that
//! compare was checked against the current state, exactly as a local write
//! is checked under the session's write lock. Writes to different sessions
//! never conflict. (Deleting the session or its lease expiring deletes
//! `meta`, which fails the compare too.)
//!
//! # Round trips
//!
//! A client keeps the last snapshot it saw of each session (bounded, see
//! [`Cache`]). A write first plans against that cached snapshot and sends
//! its transaction right away: one round trip when no other client wrote
//! the session meanwhile. If one did, the compare fails and the
//! transaction's `else` branch reads the session back in the same round
//! trip; the write is planned again against that. A write that would do
//! nothing (an update to the value the variable has, an error that depends
//! on the state) is only trusted from a snapshot read fresh, never from the
//! cache, so a stale cache can cost a round trip but never change an
//! answer.

use std::collections::HashMap;

use etcd_client::{Compare, CompareOp, PutOptions, TxnOp, TxnOpResponse, TxnResponse};

use super::codec::{decode_meta, decode_var};
use super::keys::Keys;
use crate::Error;
use crate::transport::grpc::proto;

/// A variable's stored record and its etcd `version` (what a compare on its
/// key checks).
pub(super) type Stored = (proto::Variable, i64);

/// A session's state at one etcd revision: what a write is checked against.
#[derive(Debug, Clone)]
pub(super) struct Snap {
    pub(super) meta: proto::SessionInfo,
    /// `meta`'s `mod_revision`: the compare every write of the session makes.
    pub(super) meta_mod: i64,
    /// `meta`'s `create_revision`: which life of the session this is.
    pub(super) incarnation: i64,
    /// The session's lease (0: none).
    pub(super) lease: i64,
    /// By name: the variables read (`None`: no variable of that name).
    pub(super) vars: HashMap<String, Option<Stored>>,
    /// The store's id counter and its `mod_revision`, when read.
    pub(super) ids: Option<(u64, i64)>,
    /// Read from etcd for this operation (not taken from the cache).
    pub(super) fresh: bool,
    /// The id of the write that left `meta` (see `codec::WriteMark`).
    pub(super) write_id: Option<super::codec::WriteId>,
    /// `(id, name)` of unresolved ids that do name a variable at this
    /// revision (registered since they were resolved): the operation must
    /// resolve its identifiers again.
    pub(super) late: Vec<(String, String)>,
}

/// What a write plans from a snapshot.
pub(super) enum Plan<T> {
    /// Nothing to write: the answer stands as read.
    Done(T),
    /// Write this; the answer once committed.
    Write(Box<Write>, T),
}

/// The keys one write puts or deletes, besides `meta`.
pub(super) struct Write {
    /// Extra compares (an expected version).
    pub(super) compares: Vec<Compare>,
    pub(super) ops: Vec<TxnOp>,
    /// The session's record after the write (its revision moved on).
    pub(super) meta: proto::SessionInfo,
    /// The variables' states after the write, for the cached snapshot.
    pub(super) vars: Vec<(String, Option<Stored>)>,
    /// The new value of the id counter, when the write takes ids.
    pub(super) ids: Option<u64>,
}

/// Which keys a snapshot holds.
pub(super) struct Reads<'a> {
    pub(super) session: &'a str,
    pub(super) names: &'a [String],
    pub(super) with_ids: bool,
    /// Variable ids that named no variable when they were resolved: their
    /// index keys are read too, so that "not found" is true of the same
    /// revision (an id registered in between makes the operation resolve
    /// again, see [`Snap::late`]).
    pub(super) unresolved: &'a [String],
}

impl Reads<'_> {
    /// The read operations, in the order [`Reads::parse`] expects.
    pub(super) fn ops(&self, keys: &Keys) -> Vec<TxnOp> {
        let mut ops = Vec::with_capacity(self.names.len() + 2);
        ops.push(TxnOp::get(keys.meta(self.session), None));
        if self.with_ids {
            ops.push(TxnOp::get(keys.ids(), None));
        }
        for n in self.names {
            ops.push(TxnOp::get(keys.var(self.session, n), None));
        }
        for id in self.unresolved {
            ops.push(TxnOp::get(keys.index(self.session, id), None));
        }
        ops
    }

    /// How many reads [`ops`](Self::ops) makes.
    pub(super) fn len(&self) -> usize {
        1 + usize::from(self.with_ids) + self.names.len() + self.unresolved.len()
    }

    /// The snapshot in `resp`'s responses (those of [`ops`](Self::ops));
    /// `None` if the session does not exist.
    pub(super) fn parse(&self, resp: &TxnResponse) -> Result<Option<Snap>, Error> {
        let mut got = resp.op_responses().into_iter().map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().cloned(),
            _ => None,
        });
        let Some(meta_kv) = got.next().flatten() else {
            return Ok(None);
        };
        let ids = if self.with_ids {
            match got.next().flatten() {
                Some(kv) => {
                    let n = std::str::from_utf8(kv.value())
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| super::codec::corrupt(kv.key(), "id counter"))?;
                    Some((n, kv.mod_revision()))
                }
                None => Some((0, 0)),
            }
        } else {
            None
        };
        let mut vars = HashMap::with_capacity(self.names.len());
        for name in self.names {
            let v = match got.next().flatten() {
                Some(kv) => Some((decode_var(kv.key(), kv.value())?, kv.version())),
                None => None,
            };
            vars.insert(name.clone(), v);
        }
        let mut late = Vec::new();
        for id in self.unresolved {
            if let Some(kv) = got.next().flatten() {
                let name = std::str::from_utf8(kv.value())
                    .map_err(|_| super::codec::corrupt(kv.key(), "name index"))?;
                late.push((id.clone(), name.to_string()));
            }
        }
        Ok(Some(Snap {
            meta: decode_meta(meta_kv.key(), meta_kv.value())?,
            meta_mod: meta_kv.mod_revision(),
            incarnation: meta_kv.create_revision(),
            lease: meta_kv.lease(),
            vars,
            ids,
            fresh: true,
            write_id: super::codec::write_id_of(meta_kv.value()),
            late,
        }))
    }
}

impl Snap {
    /// Whether this snapshot holds everything `reads` needs.
    pub(super) fn covers(&self, reads: &Reads<'_>) -> bool {
        (!reads.with_ids || self.ids.is_some()) && reads.names.iter().all(|n| self.vars.contains_key(n))
    }

    /// Options for a put of a key of this session (its lease).
    pub(super) fn put_options(&self) -> Option<PutOptions> {
        (self.lease != 0).then(|| PutOptions::new().with_lease(self.lease))
    }

    /// The transaction of `w` against this snapshot: if nothing changed in
    /// the session, `w` and the new `meta` (marked with `write_id`); else
    /// read `reads` back. It commits at most once however often it is sent
    /// (the `meta` compare fails for every copy after the first).
    pub(super) fn transaction(
        &self,
        keys: &Keys,
        reads: &Reads<'_>,
        w: &mut Write,
        write_id: &super::codec::WriteId,
    ) -> etcd_client::Txn {
        let mut compares = vec![Compare::mod_revision(
            keys.meta(reads.session),
            CompareOp::Equal,
            self.meta_mod,
        )];
        compares.append(&mut w.compares);
        let mut ops = std::mem::take(&mut w.ops);
        if let Some(n) = w.ids {
            let seen = self.ids.map_or(0, |(_, m)| m);
            compares.push(Compare::mod_revision(keys.ids(), CompareOp::Equal, seen));
            ops.push(TxnOp::put(keys.ids(), n.to_string(), None));
        }
        ops.push(TxnOp::put(
            keys.meta(reads.session),
            super::codec::encode_meta(&w.meta, write_id),
            self.put_options(),
        ));
        etcd_client::Txn::new()
            .when(compares)
            .and_then(ops)
            .or_else(reads.ops(keys))
    }

    /// This snapshot after `w` (write `write_id`) committed at etcd
    /// revision `revision`.
    pub(super) fn after(mut self, w: Write, revision: i64, write_id: super::codec::WriteId) -> Snap {
        self.meta = w.meta;
        self.write_id = Some(write_id);
        self.meta_mod = revision;
        for (name, v) in w.vars {
            self.vars.insert(name, v);
        }
        if let Some(n) = w.ids {
            self.ids = Some((n, revision));
        }
        self.fresh = false;
        self
    }
}

/// The snapshots a client keeps, one per session, and the names of the
/// variable ids it has resolved (an id always names the same variable, so
/// those never go stale; a deleted one is caught by comparing the record's
/// id). Bounded: cleared when full.
#[derive(Default)]
pub(super) struct Cache {
    sessions: HashMap<String, Snap>,
    names: HashMap<(String, String), String>,
}

impl Cache {
    const MAX_SESSIONS: usize = 1024;
    const MAX_VARS: usize = 4096;
    const MAX_NAMES: usize = 65_536;

    /// Takes the session's snapshot out (a write puts its successor back),
    /// if it holds everything `reads` needs: no copy on the write path.
    pub(super) fn take(&mut self, reads: &Reads<'_>) -> Option<Snap> {
        if !self.sessions.get(reads.session)?.covers(reads) {
            return None;
        }
        let mut s = self.sessions.remove(reads.session)?;
        s.fresh = false;
        Some(s)
    }

    /// Keeps `snap` as the session's latest; merged with the one kept if
    /// both are of the same revision.
    pub(super) fn keep(&mut self, session: &str, mut snap: Snap) {
        if let Some(old) = self.sessions.get_mut(session)
            && old.meta_mod == snap.meta_mod
            && old.incarnation == snap.incarnation
        {
            if old.vars.len() + snap.vars.len() > Self::MAX_VARS {
                old.vars.clear();
            }
            old.vars.extend(snap.vars);
            if snap.ids.is_some() {
                old.ids = snap.ids;
            }
            return;
        }
        if snap.vars.len() > Self::MAX_VARS {
            snap.vars.clear();
        }
        if self.sessions.len() >= Self::MAX_SESSIONS && !self.sessions.contains_key(session) {
            self.sessions.clear();
        }
        self.sessions.insert(session.to_string(), snap);
    }

    pub(super) fn forget(&mut self, session: &str) {
        self.sessions.remove(session);
    }

    pub(super) fn name_of(&self, session: &str, id: &str) -> Option<String> {
        self.names.get(&(session.to_string(), id.to_string())).cloned()
    }

    pub(super) fn learn_name(&mut self, session: &str, id: &str, name: &str) {
        if self.names.len() >= Self::MAX_NAMES {
            self.names.clear();
        }
        self.names
            .insert((session.to_string(), id.to_string()), name.to_string());
    }
}
