//! The record model: a variable's immutable facts ([`VarMeta`]), one state
//! of it ([`Record`]), and the cell that holds its current state and the
//! watches asleep on it ([`VarCell`]). A record is shared (`Arc`) by the
//! cell, the event log and every watch that delivers it; it is never copied.

use std::time::SystemTime;

use crate::observer::WaiterList;
use crate::sync::{Arc, ArcCell};
use crate::value::{Constraints, Value, VarType};

/// Free-form string metadata of sessions, variables and changes.
pub type Metadata = std::collections::BTreeMap<String, String>;

/// A variable's registration number within its session (never reused; 64
/// bits so that no amount of register/delete churn can wrap it).
pub(crate) type Slot = u64;

/// Immutable facts about a variable, shared by all its records.
pub(crate) struct VarMeta {
    pub(crate) id: Arc<str>,
    pub(crate) name: Arc<str>,
    pub(crate) var_type: VarType,
    pub(crate) constraints: Constraints,
    pub(crate) metadata: Arc<Metadata>,
    pub(crate) created_at: SystemTime,
    /// Registration order within the session; watches keep their tracked
    /// variables sorted by it.
    pub(crate) slot: Slot,
}

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
    pub(crate) waiters: WaiterList,
}
