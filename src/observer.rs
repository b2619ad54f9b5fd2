//! `ObserverManager`: the registry of who watches what in one session, and the
//! wake-up side of the notify path.
//!
//! Two structures live here:
//!
//! * **Registrations** (a `Slab` under a mutex): one entry per live [`Watch`],
//!   with what it watches and its counters. It backs
//!   [`SessionStore::list_watchers`] and the "no watchers, skip the event log"
//!   fast path of the write path. It is touched only on subscribe and drop.
//! * **Shared watch state** ([`WatchShared`]): what writers and the registry
//!   see of a watch — its wake-up [`Signal`](crate::wakeup::Signal), its
//!   counters, what it follows. Watches sleep in waiter lists (one per
//!   variable, and the session's [`ObserverManager::session_waiters`]); the
//!   protocol between a sleeping watch and a writer is in `wakeup.rs`. Only
//!   watches that are actually asleep are in a list, so a write costs
//!   nothing per watcher that is busy or has not drained its last wake-up.
//!
//! [`Watch`]: crate::Watch
//! [`SessionStore::list_watchers`]: crate::SessionStore::list_watchers

use std::time::{Duration, SystemTime};

use once_cell::race::OnceBox;

use slab::Slab;

use crate::error::Error;
use crate::meta::VarMeta;
use crate::sync::{Arc, AtomicU32, AtomicU64, AtomicUsize, Mutex, Ordering};
use crate::wakeup::{Signal, Sleeper, WaiterList};

/// Everything about one watch that other threads see, in one allocation:
/// how to wake it, the counters writers and the registry read, and what the
/// registry lists about it. Sized for the common watch: counters a plain
/// watch never moves live in [`RareCounters`], allocated on first use.
pub(crate) struct WatchShared {
    /// How writers wake it (see `wakeup.rs`).
    signal: Signal,
    pub(crate) counters: WatchCounters,
    pub(crate) id: u64,
    /// Milliseconds since the Unix epoch (see [`WatchShared::created_at`]).
    created_ms: u64,
    pub(crate) variables: Names,
    /// Events read but not yet delivered, for queue depth (published when
    /// the watch reads, so an upper bound; saturates).
    pub(crate) local: AtomicU32,
    pub(crate) coalescing: bool,
}

impl Sleeper for WatchShared {
    fn signal(&self) -> &Signal {
        &self.signal
    }
}

/// What a watch follows, as `list_watchers` shows it (a thin pointer: the
/// one-variable case shares the variable's facts).
pub(crate) enum Names {
    Session,
    One(Arc<VarMeta>),
    Many(Box<Box<[Arc<str>]>>),
}

impl WatchShared {
    pub(crate) fn new(lists: usize, id: u64, coalescing: bool, variables: Names) -> WatchShared {
        let created_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        WatchShared {
            signal: Signal::new(lists),
            counters: WatchCounters::default(),
            id,
            created_ms,
            variables,
            local: AtomicU32::new(0),
            coalescing,
        }
    }

    /// When the watch was created (to the millisecond).
    pub(crate) fn created_at(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(self.created_ms)
    }

    /// Drops the waker (the watch has gone).
    pub(crate) fn clear_waker(&self) {
        self.signal.clear_waker();
    }
}

/// Counters of one watch, shared between the watch and the registry. Only
/// the watch writes them (plain stores of its own counts, no shared
/// read-modify-write on the receive path).
#[derive(Default)]
pub(crate) struct WatchCounters {
    pub(crate) delivered: AtomicU64,
    /// The watch's event-log cursor (read by writers trimming the log).
    pub(crate) cursor: AtomicU64,
    rare: OnceBox<RareCounters>,
}

/// Counters most watches never move: allocated by the first event that
/// does (a filter, an overflow, a coalesced skip, a remote acknowledgement).
#[derive(Default)]
pub(crate) struct RareCounters {
    pub(crate) filtered: AtomicU64,
    pub(crate) filter_panics: AtomicU64,
    pub(crate) lag_events: AtomicU64,
    pub(crate) skipped: AtomicU64,
    /// For a watch serving a remote client: the session revision the client
    /// has acknowledged taking, plus one (0: no acknowledgement yet).
    pub(crate) acked: AtomicU64,
}

impl WatchCounters {
    /// The rare counters, allocated on first use.
    pub(crate) fn rare(&self) -> &RareCounters {
        self.rare.get_or_init(Box::default)
    }

    /// The rare counters if any has moved.
    pub(crate) fn rare_if_any(&self) -> Option<&RareCounters> {
        self.rare.get()
    }
}

/// Who watches what in one session.
#[derive(Default)]
pub(crate) struct ObserverManager {
    registrations: Mutex<Slab<Arc<WatchShared>>>,
    /// `registrations.len()`, readable without the lock. Stored only under
    /// the registry's mutex; a registration also holds the session's write
    /// lock, so a writer (which holds it too) never misses one.
    count: AtomicUsize,
    /// Watches of the whole session sleep here.
    pub(crate) session_waiters: WaiterList<WatchShared>,
}

impl ObserverManager {
    /// Adds a registration. The caller holds the session's write lock, so no
    /// write can happen between this and the watch's snapshot.
    pub(crate) fn register(&self, reg: Arc<WatchShared>) -> Result<u32, Error> {
        let mut regs = self.registrations.lock();
        // Keys are `u32` (a watch's handle is smaller for it): four billion
        // watches of one session would take a terabyte anyway.
        if regs.len() >= u32::MAX as usize {
            return Err(Error::LimitExceeded {
                what: "watches of one session".into(),
                limit: u32::MAX as usize,
                actual: regs.len(),
            });
        }
        let key = regs.insert(reg) as u32;
        // `count` changes only under the registry's mutex: a load and a
        // store, no read-modify-write.
        self.count.store(regs.len(), Ordering::Release);
        Ok(key)
    }

    pub(crate) fn unregister(&self, key: u32) {
        let mut regs = self.registrations.lock();
        let gone = regs.try_remove(key as usize);
        self.count.store(regs.len(), Ordering::Release);
        drop(regs);
        drop(gone); // the last reference may be this one: freed outside the lock
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
