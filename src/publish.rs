//! [`ArcCell`]: where a variable's current record is published, and
//! [`Cached`], a reader's memory of it.
//!
//! # The protocol
//!
//! A cell is an `Arc<Record>` behind a read-write lock of its own, and a
//! *stamp*: how many times the record was replaced.
//!
//! * **Writers** are already serialised by their session's write lock. A
//!   writer takes the cell's write lock for one pointer swap and a stamp
//!   increment, and gets the replaced record back to free (or reuse) once it
//!   has released its locks. It never waits for anything but a reader's
//!   in-progress reference-count increment.
//! * **Readers** take the read lock for one reference-count increment
//!   ([`ArcCell::load_full`]), or for a short internal peek
//!   ([`ArcCell::with`]), never across user code.
//! * **A remembering reader** ([`ArcCell::load_cached`], what `VarReader`
//!   does) keeps the record it last read and the stamp it had. While the
//!   stamp is unchanged it returns its copy: one atomic load and one
//!   reference-count increment, no lock, so many threads reading one hot
//!   variable share nothing but that count. The writer stores the new stamp
//!   under the write lock before its swap returns. A read that starts after
//!   a write returned (happens after it) sees that stamp or a later one by
//!   coherence alone, so it misses its memory and takes the lock, which
//!   orders everything else; the stamp is only compared, never used to
//!   reach data, so relaxed accesses are enough. A read racing the write may
//!   return either state, as any read racing a write may.
//!
//! Every state is a whole record (the lock makes the pointer swap atomic to
//! readers), and a record someone holds is never changed: a writer reuses a
//! replaced record only when `Arc::get_mut` says it is the only holder (see
//! `record::Spare`).
//!
//! Why a lock per cell and not arc-swap, or an epoch scheme: measured in
//! `benches/publication.rs` and explained in `docs::internal`. In short, an
//! arc-swap store walks a process-wide list of every thread's debt slots, so
//! writers on different cores slow each other down; the epoch schemes
//! (crossbeam-epoch, seize) defer frees in batches and made each store
//! several times dearer. A cell's own lock is a cache line only its own
//! writers and readers touch; the reader's memory takes the lock off the hot
//! read path.
//!
//! The loom models are in `loom/publish.rs`.

use crate::sync::{Arc, AtomicU64, Ordering, RwLock};

/// A shared, replaceable `Arc<T>`: the publication point of a variable's
/// current record. See the module documentation for the protocol.
pub(crate) struct ArcCell<T> {
    /// Lock: guards only the pointer; held for a swap or a clone.
    value: RwLock<Arc<T>>,
    /// How many times `value` was replaced; changed only under its write
    /// lock, so it matches `value` for anyone holding the lock.
    stamp: AtomicU64,
}

impl<T> ArcCell<T> {
    pub(crate) fn new(value: Arc<T>) -> Self {
        ArcCell {
            value: RwLock::new(value),
            stamp: AtomicU64::new(0),
        }
    }

    /// The current value (the read lock for one reference-count increment).
    pub(crate) fn load_full(&self) -> Arc<T> {
        self.value.read().clone()
    }

    /// The current value, from `cache` while the cell has not been replaced
    /// since the cache was filled: one load of the stamp and one
    /// reference-count increment, no lock.
    pub(crate) fn load_cached(&self, cache: &mut Cached<T>) -> Arc<T> {
        // Relaxed: see the module docs (coherence; the lock orders the rest).
        if let Some(v) = &cache.value
            && cache.stamp == self.stamp.load(Ordering::Relaxed)
        {
            return v.clone();
        }
        let (v, stamp) = {
            let guard = self.value.read();
            (guard.clone(), self.stamp.load(Ordering::Relaxed))
        };
        cache.stamp = stamp;
        cache.value = Some(v.clone());
        v
    }

    /// Runs `f` on the current value under the read lock, without touching
    /// its reference count. `f` must be short and must not call user code
    /// (a writer of this cell waits for it).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&Arc<T>) -> R) -> R {
        f(&self.value.read())
    }

    /// Publishes `value`; returns the value it replaced (for the caller to
    /// release once it holds no lock).
    pub(crate) fn swap(&self, value: Arc<T>) -> Arc<T> {
        let mut guard = self.value.write();
        // Only writers store, one at a time, under the write lock: a
        // relaxed load sees the last stamp, and a plain store (no
        // read-modify-write) is enough. Relaxed: see the module docs.
        let stamp = self.stamp.load(Ordering::Relaxed);
        self.stamp.store(stamp + 1, Ordering::Relaxed);
        std::mem::replace(&mut *guard, value)
    }
}

/// A reader's copy of a cell's value and the stamp it had (empty at first).
pub(crate) struct Cached<T> {
    stamp: u64,
    value: Option<Arc<T>>,
}

impl<T> Default for Cached<T> {
    fn default() -> Self {
        Cached {
            stamp: 0,
            value: None,
        }
    }
}
