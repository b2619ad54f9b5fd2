//! [`WatchEvent`] and [`EventKind`]: what a watch delivers; [`CloseReason`]
//! and the receive errors.

use std::fmt;
use std::time::SystemTime;

use crate::meta::Metadata;
use crate::record::{Record, RecordKind};
use crate::sync::Arc;
use crate::value::Value;

/// What an event says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// The variable's state when the watch started (or when it was
    /// registered, for a whole-session watch).
    Initial,
    /// The variable changed to a new version.
    Changed,
    /// The variable was deleted; no more events about it follow.
    Deleted,
    /// The watch fell behind and did not receive versions `first..=last` of
    /// this variable. The variable's current state follows (unless the watch
    /// closes on overflow).
    Lagged {
        /// First version not delivered.
        first: u64,
        /// Last version not delivered.
        last: u64,
    },
    /// The session was deleted or expired, or the store was dropped. This is
    /// the watch's last event.
    SessionClosed,
    /// A remote watch gave up reconnecting (its retry policy was exhausted).
    /// This is the watch's last event; versions after the last one received
    /// were not delivered.
    Disconnected,
}

/// One event received by a [`Watch`](crate::Watch). Cheap to clone (one reference count);
/// values are shared, never copied per watcher.
#[derive(Clone)]
pub struct WatchEvent {
    pub(super) kind: EventKind,
    pub(super) record: Arc<Record>,
    /// The session revision this event is at: the change's own, or for a
    /// subscription's initial events the revision of the snapshot.
    pub(super) revision: u64,
    pub(super) skipped: u64,
}

impl WatchEvent {
    pub(super) fn new(kind: EventKind, record: Arc<Record>) -> WatchEvent {
        WatchEvent {
            kind,
            revision: record.revision,
            record,
            skipped: 0,
        }
    }

    /// Whether `other` is this very event (the same record, seen the same
    /// way), as the watches of one write each hold it: what a server sends
    /// once for several watches.
    #[cfg(feature = "transport")]
    pub(crate) fn same_as(&self, other: &WatchEvent) -> bool {
        Arc::ptr_eq(&self.record, &other.record)
            && self.kind == other.kind
            && self.revision == other.revision
            && self.skipped == other.skipped
    }

    /// The address of the record, a cheap key for [`same_as`](Self::same_as)
    /// candidates.
    #[cfg(feature = "transport")]
    pub(crate) fn record_key(&self) -> usize {
        Arc::as_ptr(&self.record) as usize
    }

    pub(super) fn from_record(record: Arc<Record>) -> WatchEvent {
        let kind = match record.kind {
            RecordKind::Registered => EventKind::Initial,
            RecordKind::Changed => EventKind::Changed,
            RecordKind::Deleted => EventKind::Deleted,
            RecordKind::SessionClosed => EventKind::SessionClosed,
        };
        WatchEvent::new(kind, record)
    }

    /// What happened.
    pub fn kind(&self) -> EventKind {
        self.kind
    }
    /// Whether this is the initial state ([`EventKind::Initial`]).
    pub fn is_initial(&self) -> bool {
        self.kind == EventKind::Initial
    }
    /// The variable's id (empty for `SessionClosed`).
    pub fn variable_id(&self) -> &str {
        &self.record.var.id
    }
    /// The variable's id as the shared string the record holds (a key
    /// without an allocation).
    #[cfg(feature = "transport")]
    pub(crate) fn variable_id_shared(&self) -> Arc<str> {
        self.record.var.id.clone()
    }
    /// The variable's name (empty for `SessionClosed`).
    pub fn variable_name(&self) -> &str {
        &self.record.var.name
    }
    /// The version this event brings the variable to. For `Lagged`, the last
    /// skipped version; for `Deleted`, the deletion's version (one past the
    /// last value's); 0 for `SessionClosed`.
    pub fn version(&self) -> u64 {
        match self.kind {
            EventKind::Lagged { last, .. } => last,
            _ => self.record.version,
        }
    }
    /// The session revision of the change (for `Lagged`, of the state that
    /// follows it). The initial events of one subscription all carry the
    /// revision of its snapshot: one consistent cut.
    pub fn revision(&self) -> u64 {
        self.revision
    }
    /// The new value, for `Initial` and `Changed`.
    pub fn value(&self) -> Option<&Value> {
        match self.kind {
            EventKind::Initial | EventKind::Changed => Some(&self.record.value),
            _ => None,
        }
    }
    /// The value before the change: for `Changed` the previous version's
    /// value, for `Deleted` the last value.
    pub fn old_value(&self) -> Option<&Value> {
        match self.kind {
            EventKind::Changed | EventKind::Deleted => self.record.old_value.as_ref(),
            _ => None,
        }
    }
    /// The source the writer named, if any.
    pub fn source(&self) -> Option<&str> {
        match self.kind {
            EventKind::Changed => self.record.source.as_deref(),
            _ => None,
        }
    }
    /// The metadata the writer attached to the change, if any.
    pub fn metadata(&self) -> Option<&Metadata> {
        match self.kind {
            EventKind::Changed => self.record.metadata.as_deref(),
            _ => None,
        }
    }
    /// When the change was made (wall clock).
    pub fn timestamp(&self) -> SystemTime {
        self.record.timestamp
    }
    /// Versions of this variable passed over just before this event by
    /// coalescing or throttling (0 in lossless delivery).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// An event of `kind` about `record`, with `skipped`.
    pub(crate) fn from_parts(kind: EventKind, record: Arc<Record>, skipped: u64) -> WatchEvent {
        WatchEvent {
            kind,
            revision: record.revision,
            record,
            skipped,
        }
    }

    /// The record behind this event.
    pub(crate) fn record(&self) -> &Arc<Record> {
        &self.record
    }

    /// An event about a variable known only by id and name (a deletion
    /// noticed on resume, a remote watch's last event).
    pub(crate) fn bare(kind: EventKind, id: &str, name: &str, version: u64, revision: u64) -> WatchEvent {
        let record_kind = match kind {
            EventKind::Deleted => RecordKind::Deleted,
            EventKind::SessionClosed | EventKind::Disconnected => RecordKind::SessionClosed,
            EventKind::Initial => RecordKind::Registered,
            _ => RecordKind::Changed,
        };
        let record = Record::bare(record_kind, id, name, version, revision, 0);
        WatchEvent::from_parts(kind, Arc::new(record), 0)
    }

    /// This event, labelled with the revision of the group it belongs to.
    pub(crate) fn at_revision(mut self, revision: u64) -> WatchEvent {
        self.revision = revision;
        self
    }
}

impl fmt::Debug for WatchEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("WatchEvent");
        d.field("kind", &self.kind)
            .field("variable", &self.variable_name())
            .field("version", &self.version())
            .field("revision", &self.revision());
        if let Some(v) = self.value() {
            d.field("value", v);
        }
        if self.skipped > 0 {
            d.field("skipped", &self.skipped);
        }
        d.finish()
    }
}

/// Why a watch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// Its session was deleted or expired, or the store was dropped.
    SessionClosed,
    /// Every variable it watched was deleted.
    VariablesDeleted,
    /// It overflowed under [`OverflowPolicy::Close`](crate::OverflowPolicy::Close).
    Overflow,
    /// A remote or etcd watch could not reach its server (its retry policy
    /// was spent, or the server refused to go on); its last event was
    /// [`EventKind::Disconnected`].
    Disconnected,
}

/// `try_recv` found no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TryRecvError {
    /// Nothing to receive now; the watch is still open.
    #[error("no event is ready")]
    Empty,
    /// The watch has ended and delivered its last event.
    #[error("the watch has ended")]
    Closed,
}

/// `recv_timeout` found no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecvTimeoutError {
    /// No event arrived in time; the watch is still open.
    #[error("timed out waiting for an event")]
    Timeout,
    /// The watch has ended and delivered its last event.
    #[error("the watch has ended")]
    Closed,
}
