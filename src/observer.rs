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

/// How a sleeping watch is woken: its current waker (a thread unparker for
/// blocking receives, the task's waker for async ones) and, per waiter list it
/// may sit in, whether it is in that list now.
pub(crate) struct Signal {
    waker: Mutex<Option<Waker>>,
    queued: Box<[AtomicBool]>,
}

impl Signal {
    pub(crate) fn new(lists: usize) -> Signal {
        Signal {
            waker: Mutex::new(None),
            queued: (0..lists).map(|_| AtomicBool::new(false)).collect(),
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
    list: Mutex<Vec<(Arc<Signal>, u32)>>,
    nonempty: AtomicBool,
}

impl WaiterList {
    /// Puts `signal` into this list (as its list number `idx`) unless it is
    /// already there.
    pub(crate) fn enqueue(&self, signal: &Arc<Signal>, idx: u32) {
        let flag = &signal.queued[idx as usize];
        // Already queued (or being woken right now by a writer that took the
        // list and will clear the flag and then wake us): nothing to do.
        if flag.load(Ordering::Acquire) {
            return;
        }
        {
            let mut list = self.list.lock();
            if !flag.load(Ordering::Relaxed) {
                flag.store(true, Ordering::Relaxed);
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
            signal.queued[*idx as usize].store(false, Ordering::Release);
            signal.wake();
        }
    }

    /// Removes `signal` (a dropped watch) if it is queued here.
    pub(crate) fn remove(&self, signal: &Arc<Signal>, idx: u32) {
        if signal.queued[idx as usize].load(Ordering::Acquire) {
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

/// What one registration records.
pub(crate) struct Registration {
    pub(crate) id: u64,
    /// Names of the watched variables; `None` for a whole-session watch.
    pub(crate) variables: Option<Vec<Arc<str>>>,
    pub(crate) created_at: SystemTime,
    pub(crate) coalescing: bool,
    pub(crate) counters: Arc<WatchCounters>,
}

/// Who watches what in one session.
#[derive(Default)]
pub(crate) struct ObserverManager {
    registrations: Mutex<Slab<Registration>>,
    /// `registrations.len()`, readable without the lock. Incremented only
    /// while the session's write lock is held (see `store.rs`).
    count: AtomicUsize,
    /// Watches of the whole session sleep here.
    pub(crate) session_waiters: WaiterList,
}

impl ObserverManager {
    /// Adds a registration. The caller holds the session's write lock, so no
    /// write can happen between this and the watch's snapshot.
    pub(crate) fn register(&self, reg: Registration) -> usize {
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

    /// Runs `f` on every registration.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Registration)) {
        for (_, r) in self.registrations.lock().iter() {
            f(r);
        }
    }
}
