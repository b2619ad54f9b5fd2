//! A session's event log: a bounded ring of the most recent changes, shared by
//! every watch of the session.
//!
//! A write appends its record **once**, whatever the number of watchers; each
//! watch keeps its own cursor (a sequence number) and copies records out in
//! batches. A watch whose cursor falls more than its capacity behind the tail
//! has *overflowed*: it never blocks the writer, it resynchronises from the
//! variables' current states instead (see `watch.rs`).
//!
//! Locking: records are pushed only while the session's write lock is held
//! (so pushes are already serialised and ordered like the revisions), under
//! this log's `RwLock` in write mode; readers copy under the read lock. `tail`
//! mirrors the ring's end so that "is there anything new?" costs one atomic
//! load; it is stored under the write lock after the slots are filled.

use crate::record::{Record, VarCell};
use crate::sync::{Arc, AtomicU64, AtomicUsize, Ordering, RwLock};

/// One slot: the record, and for registrations the new variable's cell (so a
/// watch of the whole session can start tracking it).
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) record: Arc<Record>,
    pub(crate) cell: Option<Arc<VarCell>>,
}

struct Ring {
    slots: Box<[Option<Entry>]>,
    /// `slots.len() - 1`; the length is a power of two.
    mask: u64,
}

pub(crate) struct EventLog {
    ring: RwLock<Ring>,
    /// Sequence number one past the newest record.
    tail: AtomicU64,
    /// Largest capacity the ring may grow to.
    max_capacity: usize,
    /// The ring's size, readable without its lock.
    capacity: AtomicUsize,
}

/// The outcome of [`EventLog::read`].
pub(crate) enum Read {
    /// Nothing at or after the cursor.
    Empty,
    /// Records were appended to `out`; the new cursor.
    Records(u64),
    /// The cursor is more than `capacity` records behind: the records it
    /// needed are gone or must be treated as gone.
    Overflow,
}

impl EventLog {
    pub(crate) fn new(capacity: usize, max_capacity: usize) -> EventLog {
        let cap = capacity.clamp(1, max_capacity).next_power_of_two();
        EventLog {
            ring: RwLock::new(Ring {
                slots: (0..cap).map(|_| None).collect(),
                mask: cap as u64 - 1,
            }),
            tail: AtomicU64::new(0),
            max_capacity: max_capacity.next_power_of_two(),
            capacity: AtomicUsize::new(cap),
        }
    }

    /// The sequence number the next record will get.
    pub(crate) fn tail(&self) -> u64 {
        self.tail.load(Ordering::Acquire)
    }

    /// Grows the ring so that a watch may lag `capacity` records behind.
    /// Returns the capacity that watch actually gets (bounded by the log's
    /// maximum). Caller holds the session's write lock.
    pub(crate) fn reserve(&self, capacity: usize) -> usize {
        let want = capacity.min(self.max_capacity);
        if self.capacity.load(Ordering::Relaxed) >= want {
            return want; // the common case: no need for the ring's lock
        }
        let mut ring = self.ring.write();
        if ring.slots.len() < want {
            let new_len = want.next_power_of_two();
            let tail = self.tail.load(Ordering::Relaxed);
            let old_len = ring.slots.len() as u64;
            let mut slots: Box<[Option<Entry>]> = (0..new_len).map(|_| None).collect();
            let new_mask = new_len as u64 - 1;
            let old_mask = ring.mask;
            for seq in tail.saturating_sub(old_len)..tail {
                slots[(seq & new_mask) as usize] = ring.slots[(seq & old_mask) as usize].take();
            }
            ring.slots = slots;
            ring.mask = new_mask;
            self.capacity.store(new_len, Ordering::Relaxed);
        }
        want
    }

    /// Appends `entries` as one unit: a reader sees all of them or none.
    /// Caller holds the session's write lock.
    pub(crate) fn push(&self, entries: impl IntoIterator<Item = Entry>) {
        let mut ring = self.ring.write();
        let mut tail = self.tail.load(Ordering::Relaxed);
        let mask = ring.mask;
        for e in entries {
            // Replacing the oldest entry drops it here, under the lock; it is
            // a few reference-count decrements unless it was the last owner.
            ring.slots[(tail & mask) as usize] = Some(e);
            tail += 1;
        }
        // Release: a reader that loads this tail and then takes the read lock
        // finds every slot below it filled (the lock alone also orders it).
        self.tail.store(tail, Ordering::Release);
    }

    /// Copies up to `max` entries from `cursor` into `out`. A cursor more than
    /// `capacity` behind the tail (or behind the ring itself) has overflowed.
    pub(crate) fn read(&self, cursor: u64, capacity: usize, max: usize, out: &mut Vec<Entry>) -> Read {
        if self.tail() == cursor {
            return Read::Empty;
        }
        let ring = self.ring.read();
        let tail = self.tail.load(Ordering::Relaxed);
        let retained = (ring.slots.len() as u64).min(capacity as u64);
        if tail - cursor > retained {
            return Read::Overflow;
        }
        let end = tail.min(cursor + max as u64);
        out.reserve((end - cursor) as usize);
        for seq in cursor..end {
            let e = ring.slots[(seq & ring.mask) as usize]
                .as_ref()
                .expect("slots between cursor and tail are filled");
            out.push(e.clone());
        }
        Read::Records(end)
    }
}
