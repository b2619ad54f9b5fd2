//! A session's event log: the most recent changes, shared by every lossless
//! watch of the session.
//!
//! A write appends its records **once**, whatever the number of watchers;
//! each watch keeps its own cursor (a sequence number) and copies records out
//! in batches. A watch whose cursor falls more than its capacity behind the
//! tail has *overflowed*: it never blocks the writer, it resynchronises from
//! a consistent cut of the variables' current states instead (see
//! `watch/resync.rs`).
//!
//! # Groups
//!
//! The records of one write (an atomic batch, an import) form a *group*: they
//! are appended together under the ring's lock, the last one flagged
//! `group_end`, and [`EventLog::read`] never stops inside a group. So a watch
//! either has all of a batch's records or none, and resyncs only between
//! groups.
//!
//! # Memory: allocated as used, given back
//!
//! The log keeps at most `limit` records, the largest capacity any lossless
//! watch of the session asked for ([`EventLog::retain`] /
//! [`EventLog::release`]); with no such watch it keeps none (coalescing
//! watches read cuts, never the log). Its buffer grows as records arrive, and
//! before a large buffer doubles, records that every watch has already read
//! are dropped (the slowest cursor is found by a pass over the watches,
//! amortised over the buffer's size). When the limit drops, the
//! buffer shrinks. An empty session's log owns no buffer at all.
//!
//! # Locking
//!
//! Records are appended only while the session's write lock is held (so
//! appends are serialised and ordered like the revisions), under this log's
//! `RwLock` in write mode; readers copy under the read lock. `tail` mirrors
//! the end so that "is there anything new?" costs one atomic load; it is
//! stored under the write lock after the records are in place. Lock order:
//! the session's write lock, then this ring's, then the observer registry's
//! (taken inside `push` to find the slowest cursor).

use std::collections::VecDeque;

use crate::record::{Record, VarCell};
use crate::sync::{Arc, AtomicU64, Ordering, RwLock};

/// One record as the log holds it.
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) record: Arc<Record>,
    /// For registrations: the new variable's cell, so that a watch of the
    /// whole session can start following it.
    pub(crate) cell: Option<Arc<VarCell>>,
    /// The last record of its write (see "Groups").
    pub(crate) group_end: bool,
}

impl Entry {
    pub(crate) fn new(record: Arc<Record>) -> Entry {
        Entry {
            record,
            cell: None,
            group_end: false,
        }
    }
}

#[derive(Default)]
struct Ring {
    /// The retained records; `entries[0]` has sequence number
    /// `tail - entries.len()`.
    entries: VecDeque<Entry>,
    /// Most records kept: the largest capacity in `capacities`.
    limit: usize,
    /// (capacity, number of lossless watches that asked for it), sorted by
    /// capacity. A vector, not a map: there are few distinct capacities (one
    /// entry per capacity some live watch asked for), and it keeps its
    /// buffer when the last watch goes, so that a watch's subscribe and drop
    /// allocate nothing here.
    capacities: Vec<(usize, usize)>,
}

impl Ring {
    fn head(&self, tail: u64) -> u64 {
        tail - self.entries.len() as u64
    }

    /// Drops the oldest records beyond `limit`, and gives memory back when
    /// the buffer is mostly empty.
    fn trim(&mut self) {
        let excess = self.entries.len().saturating_sub(self.limit);
        self.entries.drain(..excess);
        if self.entries.capacity() > 64 && self.entries.len() < self.entries.capacity() / 4 {
            self.entries.shrink_to(self.entries.len() * 2);
        }
    }
}

/// The outcome of [`EventLog::read`].
pub(crate) enum Read {
    /// Nothing at or after the cursor.
    Empty,
    /// Records were appended to `out`; the new cursor (at a group's end).
    Records(u64),
    /// The cursor is more than its capacity behind, or behind what the log
    /// still holds: the records it needed must be treated as gone.
    Overflow,
}

#[derive(Default)]
pub(crate) struct EventLog {
    ring: RwLock<Ring>,
    /// Sequence number one past the newest record.
    tail: AtomicU64,
}

impl EventLog {
    /// The sequence number the next record will get.
    pub(crate) fn tail(&self) -> u64 {
        self.tail.load(Ordering::Acquire)
    }

    /// A lossless watch of `capacity` joins: the log keeps at least that
    /// many records from now on. Returns the capacity granted (at most
    /// `max`). Caller holds the session's write lock.
    pub(crate) fn retain(&self, capacity: usize, max: usize) -> usize {
        let capacity = capacity.clamp(1, max.max(1));
        let mut ring = self.ring.write();
        match ring.capacities.binary_search_by_key(&capacity, |&(c, _)| c) {
            Ok(i) => ring.capacities[i].1 += 1,
            Err(i) => ring.capacities.insert(i, (capacity, 1)),
        }
        ring.limit = ring.limit.max(capacity);
        capacity
    }

    /// The lossless watch that was granted `capacity` has gone.
    pub(crate) fn release(&self, capacity: usize) {
        let mut ring = self.ring.write();
        if let Ok(i) = ring.capacities.binary_search_by_key(&capacity, |&(c, _)| c) {
            ring.capacities[i].1 -= 1;
            if ring.capacities[i].1 == 0 {
                ring.capacities.remove(i);
            }
        }
        let limit = ring.capacities.last().map_or(0, |&(c, _)| c);
        if limit < ring.limit {
            ring.limit = limit;
            ring.trim();
        }
    }

    /// Appends one write's records as one group: a reader sees all of them
    /// or none. Caller holds the session's write lock, inside its write
    /// section. `watchers` is the number of watches of the session and
    /// `slowest` finds the smallest cursor among its lossless ones; it is
    /// called only when the buffer is full, large, and large against the
    /// number of watchers, so that its cost (one pass over the watchers) is
    /// amortised to a small constant per record.
    pub(crate) fn push(
        &self,
        entries: impl IntoIterator<Item = Entry>,
        watchers: usize,
        slowest: impl FnOnce() -> Option<u64>,
    ) {
        let mut ring = self.ring.write();
        let mut tail = self.tail.load(Ordering::Relaxed);
        let mut slowest = Some(slowest);
        let mut last = None;
        for mut e in entries {
            e.group_end = false;
            tail += 1;
            if ring.limit == 0 {
                continue; // no lossless watch: nothing to keep
            }
            let (len, cap) = (ring.entries.len(), ring.entries.capacity());
            if len == cap && len < ring.limit && cap >= 64 && cap >= watchers.saturating_mul(2) {
                // About to grow: first drop what every watch has read.
                if let Some(min) = slowest.take().and_then(|f| f()) {
                    let head = ring.head(tail - 1);
                    let read = min.saturating_sub(head).min(len as u64) as usize;
                    ring.entries.drain(..read);
                    if ring.entries.len() < cap / 4 {
                        let keep = ring.entries.len() * 2;
                        ring.entries.shrink_to(keep);
                    }
                }
            }
            if ring.entries.len() >= ring.limit {
                ring.entries.pop_front();
            }
            ring.entries.push_back(e);
            last = Some(ring.entries.len() - 1);
        }
        if let Some(i) = last {
            ring.entries[i].group_end = true;
        }
        // Release: a reader that loads this tail and then takes the read lock
        // finds every record below it in place (the lock alone also orders it).
        self.tail.store(tail, Ordering::Release);
    }

    /// Copies records from `cursor` into `out`: at least one group, whole
    /// groups only, and no more than about `max` records unless one group is
    /// larger. A cursor more than `capacity` behind the tail, or behind what
    /// the log still holds, has overflowed.
    pub(crate) fn read(
        &self,
        cursor: u64,
        capacity: usize,
        max: usize,
        out: &mut impl Extend<Entry>,
    ) -> Read {
        if self.tail() == cursor {
            return Read::Empty;
        }
        let ring = self.ring.read();
        let tail = self.tail.load(Ordering::Relaxed);
        let head = ring.head(tail);
        if cursor < head || tail - cursor > capacity as u64 {
            return Read::Overflow;
        }
        let start = (cursor - head) as usize;
        let mut end = (start + max.max(1)).min(ring.entries.len());
        // Never stop inside a group.
        while end < ring.entries.len() && !ring.entries[end - 1].group_end {
            end += 1;
        }
        out.extend(ring.entries.range(start..end).cloned());
        Read::Records(cursor + (end - start) as u64)
    }

    /// Records held and the buffer's size, in records (for tests and stats).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn footprint(&self) -> (usize, usize) {
        let ring = self.ring.read();
        (ring.entries.len(), ring.entries.capacity())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::record::{Record, RecordKind};

    fn entry(revision: u64) -> Entry {
        Entry::new(Arc::new(Record::bare(
            RecordKind::Changed,
            "var_1",
            "x",
            revision,
            revision,
            0,
        )))
    }

    fn revisions(out: &[Entry]) -> Vec<u64> {
        out.iter().map(|e| e.record.revision).collect()
    }

    #[test]
    fn reads_never_split_a_group() {
        let log = EventLog::default();
        log.retain(100, 100);
        log.push([entry(1)], 1, || None);
        log.push([entry(2), entry(2), entry(2)], 1, || None);
        log.push([entry(3)], 1, || None);
        let mut out = Vec::new();
        // Asked for 2 records: gets the first group and the whole second one.
        let Read::Records(next) = log.read(0, 100, 2, &mut out) else {
            panic!("records expected")
        };
        assert_eq!((next, revisions(&out)), (4, vec![1, 2, 2, 2]));
        assert!(matches!(log.read(4, 100, 2, &mut out), Read::Records(5)));
        assert!(matches!(log.read(5, 100, 2, &mut out), Read::Empty));
        // A batch bigger than a watch's capacity overflows it.
        assert!(matches!(log.read(1, 2, 64, &mut out), Read::Overflow));
    }

    #[test]
    fn memory_follows_the_watches() {
        let log = EventLog::default();
        // No lossless watch: nothing is kept, the tail still moves.
        for r in 1..=1000 {
            log.push([entry(r)], 0, || None);
        }
        assert_eq!((log.tail(), log.footprint()), (1000, (0, 0)));
        // A huge capacity allocates nothing up front.
        let granted = log.retain(usize::MAX, 1 << 30);
        assert_eq!(granted, 1 << 30);
        assert_eq!(log.footprint(), (0, 0));
        for r in 1..=5000 {
            log.push([entry(r)], 1, || None); // a watch that never reads
        }
        assert_eq!(log.footprint().0, 5000);
        // It leaves: the log shrinks back.
        log.release(granted);
        assert_eq!(log.footprint(), (0, 0));
        // A watch that keeps up: what it has read is dropped before growing.
        log.retain(1 << 20, 1 << 30);
        for r in 1..=100_000u64 {
            let tail = log.tail();
            log.push([entry(r)], 1, || Some(tail));
        }
        assert!(log.footprint().1 <= 256, "buffer grew to {:?}", log.footprint());
    }
}
