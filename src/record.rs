//! The record model: one state of a variable ([`Record`], pointing at its
//! immutable facts, `meta.rs`), and the cell that holds its current state
//! and the watches asleep on it ([`VarCell`]). A record is shared (`Arc`) by the
//! cell, the event log and every watch that delivers it; it is never copied.

use std::time::SystemTime;

use crate::meta::{Metadata, Slot, VarMeta};
use crate::observer::WatchShared;
use crate::publish::ArcCell;
use crate::sync::Arc;
use crate::value::{Constraints, Value, VarType};
use crate::wakeup::WaiterList;

/// What a record says happened.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum RecordKind {
    Registered,
    Changed,
    Deleted,
    SessionClosed,
}

/// One state of one variable (or the closing of a session), as stored as the
/// variable's current state, appended to the event log and delivered.
pub(crate) struct Record {
    pub(crate) var: Arc<VarMeta>,
    pub(crate) kind: RecordKind,
    pub(crate) version: u64,
    pub(crate) revision: u64,
    /// The value after this change (the last value, for a deletion).
    pub(crate) value: Value,
    pub(crate) old_value: Option<Value>,
    pub(crate) source: Option<Arc<str>>,
    pub(crate) metadata: Option<Arc<Metadata>>,
    pub(crate) timestamp: SystemTime,
}

impl Record {
    /// A record of `var` whose other fields its writer is about to set
    /// (the allocation a change fills in).
    pub(crate) fn unfilled(var: Arc<VarMeta>) -> Record {
        Record {
            var,
            kind: RecordKind::Changed,
            version: 0,
            revision: 0,
            value: Value::Boolean(false),
            old_value: None,
            source: None,
            metadata: None,
            timestamp: SystemTime::UNIX_EPOCH,
        }
    }

    /// A record about a variable known only by id and name, with no value
    /// (a session's end, a deletion noticed by a resuming remote watch).
    pub(crate) fn bare(
        kind: RecordKind,
        id: &str,
        name: &str,
        version: u64,
        revision: u64,
        slot: Slot,
    ) -> Record {
        Record {
            var: Arc::new(VarMeta {
                id: id.into(),
                name: name.into(),
                var_type: VarType::Boolean,
                constraints: Constraints::default(),
                metadata: Arc::default(),
                created_at: SystemTime::UNIX_EPOCH,
                slot,
            }),
            kind,
            version,
            revision,
            value: Value::Boolean(false),
            old_value: None,
            source: None,
            metadata: None,
            timestamp: SystemTime::now(),
        }
    }
}

/// A variable in a session: its facts, its current state and the watches
/// asleep on it.
pub(crate) struct VarCell {
    pub(crate) meta: Arc<VarMeta>,
    pub(crate) current: ArcCell<Record>,
    pub(crate) waiters: WaiterList<WatchShared>,
}

/// One record allocation a session's writer keeps for its next change
/// (guarded by the session's write lock, like the rest of `WriteState`).
///
/// A write replaces a variable's current record; when nothing else holds
/// the replaced one (no reader, no watch, no event log: the common case
/// without watchers), its allocation is kept here, emptied, and the next
/// write fills it in place instead of allocating. Uniqueness is
/// `Arc::get_mut`'s, so a record anyone can still see is never reused.
#[derive(Default)]
pub(crate) struct Spare(Option<Arc<Record>>);

/// What a replaced record held, for the caller to drop once it has
/// released its locks (a value can be large).
pub(crate) enum Leftovers {
    /// The record was kept as the spare; these were its contents.
    Contents(
        #[allow(dead_code)] Value,
        #[allow(dead_code)] Option<Value>,
        #[allow(dead_code)] Option<Arc<str>>,
        #[allow(dead_code)] Option<Arc<Metadata>>,
    ),
    /// Someone else holds the record: only our reference goes.
    Shared(#[allow(dead_code)] Arc<Record>),
}

impl Spare {
    /// A record of `var`, written by `fill` (which sets every field but
    /// `var`) into the kept allocation, or into a new one. A kept record
    /// of the same variable keeps its `var` (no reference count moves).
    pub(crate) fn record(&mut self, var: &Arc<VarMeta>, fill: impl FnOnce(&mut Record)) -> Arc<Record> {
        if let Some(mut kept) = self.0.take()
            && let Some(r) = Arc::get_mut(&mut kept)
        {
            if !Arc::ptr_eq(&r.var, var) {
                r.var = var.clone();
            }
            fill(r);
            return kept;
        }
        let mut r = Record::unfilled(var.clone());
        fill(&mut r);
        Arc::new(r)
    }

    /// Keeps `replaced` for the next write if nothing else holds it.
    pub(crate) fn keep(&mut self, mut replaced: Arc<Record>) -> Leftovers {
        match Arc::get_mut(&mut replaced) {
            Some(r) => {
                let contents = Leftovers::Contents(
                    std::mem::replace(&mut r.value, Value::Boolean(false)),
                    r.old_value.take(),
                    r.source.take(),
                    r.metadata.take(),
                );
                self.0 = Some(replaced);
                contents
            }
            None => Leftovers::Shared(replaced),
        }
    }
}
