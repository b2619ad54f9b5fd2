//! `ObserverManager`: the registry of who watches what in one session, and the
//! wake-up side of the notify path.
//!
//! Two structures live here:
//!
//! * **Registrations** (a `Slab` under a mutex): one entry per live [`Watch`],
//!   with what it watches and its counters. It backs
//!   [`SessionStore::list_watchers`] and the "no watchers, skip the event log"
//!   fast path of the write path. It is touched only on subscribe and drop.
//! * **Waiter lists** ([`WaiterList`]): one per variable and one for the whole
//!   session. A watch that finds nothing to receive *arms* itself: it puts its
//!   [`Signal`] into the lists of what it watches, then checks the event log
//!   once more before it sleeps (register-then-check). A writer appends to the
//!   log first and then empties the lists of the variables it wrote, waking
//!   each signal. Either the watch's second check sees the record, or the
//!   writer sees the signal: a wake-up is never lost. Only watches that are
//!   actually asleep are in a list, so a write costs nothing per watcher that
//!   is busy or has not drained its last wake-up.
//!
//! [`Watch`]: crate::Watch
//! [`SessionStore::list_watchers`]: crate::SessionStore::list_watchers

use std::mem;
use std::task::Waker;
use std::time::SystemTime;

use slab::Slab;

use crate::sync::{Arc, AtomicBool, AtomicU64, AtomicUsize, Mutex, Ordering, fence};

/// Everything about one watch that other threads see, in one allocation:
/// how to wake it, its counters, and what the registry lists about it.
pub(crate) struct WatchShared {
    /// The current waker: a thread unparker for blocking receives, the
    /// task's waker for async ones.
    waker: Mutex<Option<Waker>>,
    /// Per waiter list the watch may sit in (its variables', or the
    /// session's), whether it is in that list now.
    queued: QueuedFlags,
    pub(crate) counters: WatchCounters,
    pub(crate) id: u64,
    pub(crate) created_at: SystemTime,
    pub(crate) coalescing: bool,
    pub(crate) variables: Names,
    /// For a watch serving a remote client: the session revision the client
    /// has acknowledged taking, plus one (0: no acknowledgement yet).
    pub(crate) acked: AtomicU64,
}

/// Names of what a watch follows, as `list_watchers` shows them.
pub(crate) enum Names {
    Session,
    One(Arc<str>),
    Many(Box<[Arc<str>]>),
}

/// One bit per waiter list; the first 64 inline (no allocation).
struct QueuedFlags {
    first: AtomicU64,
    rest: Box<[AtomicU64]>,
}

impl QueuedFlags {
    fn new(lists: usize) -> QueuedFlags {
        QueuedFlags {
            first: AtomicU64::new(0),
            rest: (0..lists.saturating_sub(64).div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    fn word(&self, idx: u32) -> (&AtomicU64, u64) {
        match idx.checked_sub(64) {
            None => (&self.first, 1 << idx),
            Some(i) => (&self.rest[(i / 64) as usize], 1 << (i % 64)),
        }
    }

    fn is_set(&self, idx: u32, order: Ordering) -> bool {
        let (word, bit) = self.word(idx);
        word.load(order) & bit != 0
    }

    fn set(&self, idx: u32) {
        let (word, bit) = self.word(idx);
        word.fetch_or(bit, Ordering::Relaxed);
    }

    fn clear(&self, idx: u32) {
        let (word, bit) = self.word(idx);
        word.fetch_and(!bit, Ordering::Release);
    }
}

impl WatchShared {
    pub(crate) fn new(lists: usize, id: u64, coalescing: bool, variables: Names) -> WatchShared {
        WatchShared {
            waker: Mutex::new(None),
            queued: QueuedFlags::new(lists),
            counters: WatchCounters::default(),
            id,
            created_at: SystemTime::now(),
            coalescing,
            variables,
            acked: AtomicU64::new(0),
        }
    }

    /// Makes `waker` the one to wake. The waker mutex also orders this store
    /// before any wake that could miss the watch's re-check of the log.
    pub(crate) fn set_waker(&self, waker: &Waker) {
        let mut w = self.waker.lock();
        match &*w {
            Some(cur) if cur.will_wake(waker) => {}
            _ => *w = Some(waker.clone()),
        }
    }

    /// Drops the waker (the watch has gone): nothing it references stays
    /// reachable through a waiter list that still holds this signal.
    pub(crate) fn clear_waker(&self) {
        let old = self.waker.lock().take();
        drop(old); // a waker's drop is user code: outside the lock
    }

    fn wake(&self) {
        // Wake outside the lock: a waker is user code (an executor may poll
        // the watch, and so re-enter `set_waker`, from inside `wake`).
        let waker = self.waker.lock().clone();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Signals of the watches asleep on one variable (or on a whole session).
///
/// `nonempty` lets a writer skip the lock when nobody sleeps here. It is a
/// Dekker pair with the event log's tail: the writer appends (stores the
/// tail), issues a SeqCst fence, then loads `nonempty`; a watch stores
/// `nonempty`, issues a SeqCst fence, then loads the tail again. The fences
/// guarantee that at least one of them sees the other's store: either the
/// writer finds the signal, or the watch finds the record. (loom checks it.)
#[derive(Default)]
pub(crate) struct WaiterList {
    list: Mutex<Vec<(Arc<WatchShared>, u32)>>,
    nonempty: AtomicBool,
}

impl WaiterList {
    /// Puts `signal` into this list (as its list number `idx`) unless it is
    /// already there.
    pub(crate) fn enqueue(&self, signal: &Arc<WatchShared>, idx: u32) {
        let flags = &signal.queued;
        // Already queued (or being woken right now by a writer that took the
        // list and will clear the flag and then wake us): nothing to do.
        if flags.is_set(idx, Ordering::Acquire) {
            return;
        }
        {
            let mut list = self.list.lock();
            if !flags.is_set(idx, Ordering::Relaxed) {
                flags.set(idx);
                list.push((signal.clone(), idx));
                self.nonempty.store(true, Ordering::Relaxed);
            }
        }
        // Pairs with the writer's fence (see the type's docs); the caller
        // re-checks the log after this.
        fence(Ordering::SeqCst);
    }

    /// Wakes and removes every signal. Called by a writer after it appended
    /// to the event log and issued `fence(SeqCst)` (see the type's docs).
    pub(crate) fn wake_all_after_fence(&self) {
        if !self.nonempty.load(Ordering::Relaxed) {
            return;
        }
        let taken = {
            let mut list = self.list.lock();
            self.nonempty.store(false, Ordering::Relaxed);
            if list.is_empty() {
                return;
            }
            mem::take(&mut *list)
        };
        for (signal, idx) in &taken {
            signal.queued.clear(*idx);
            signal.wake();
        }
    }

    /// Removes `signal` (a dropped watch) if it is queued here.
    pub(crate) fn remove(&self, signal: &Arc<WatchShared>, idx: u32) {
        if signal.queued.is_set(idx, Ordering::Acquire) {
            self.list.lock().retain(|(s, _)| !Arc::ptr_eq(s, signal));
        }
    }
}

/// Counters of one watch, shared between the watch and the registry.
#[derive(Default)]
pub(crate) struct WatchCounters {
    pub(crate) delivered: AtomicU64,
    pub(crate) filtered: AtomicU64,
    pub(crate) filter_panics: AtomicU64,
    pub(crate) lag_events: AtomicU64,
    pub(crate) skipped: AtomicU64,
    /// The watch's event-log cursor and its local backlog, for queue depth.
    pub(crate) cursor: AtomicU64,
    pub(crate) local: AtomicUsize,
}

/// Who watches what in one session.
#[derive(Default)]
pub(crate) struct ObserverManager {
    registrations: Mutex<Slab<Arc<WatchShared>>>,
    /// `registrations.len()`, readable without the lock. Incremented only
    /// while the session's write lock is held (see `store.rs`).
    count: AtomicUsize,
    /// Watches of the whole session sleep here.
    pub(crate) session_waiters: WaiterList,
}

impl ObserverManager {
    /// Adds a registration. The caller holds the session's write lock, so no
    /// write can happen between this and the watch's snapshot.
    pub(crate) fn register(&self, reg: Arc<WatchShared>) -> usize {
        let key = self.registrations.lock().insert(reg);
        self.count.fetch_add(1, Ordering::AcqRel);
        key
    }

    pub(crate) fn unregister(&self, key: usize) {
        let mut regs = self.registrations.lock();
        if regs.try_remove(key).is_some() {
            self.count.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Whether any watch is registered. Read by writers under the session's
    /// write lock: a watch registered before the lock was taken is counted.
    pub(crate) fn has_watchers(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// The smallest event-log cursor among the watches that read the log
    /// (coalescing watches read cuts instead). Called by a writer inside
    /// `EventLog::push`, under the ring's lock: registrations come after it
    /// in the lock order, and nothing takes the ring's lock while holding
    /// them.
    pub(crate) fn slowest_cursor(&self) -> Option<u64> {
        self.registrations
            .lock()
            .iter()
            .filter(|(_, r)| !r.coalescing)
            .map(|(_, r)| r.counters.cursor.load(Ordering::Relaxed))
            .min()
    }

    /// Runs `f` on every registration.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&WatchShared)) {
        for (_, r) in self.registrations.lock().iter() {
            f(r);
        }
    }
}
