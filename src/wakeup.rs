//! The wake-up protocol between writers and sleeping watches, behind one
//! small set of types whose methods state the ordering contract (tokio's
//! `watch::state` is the model).
//!
//! # The protocol
//!
//! A watch that finds nothing to receive must not sleep through a write that
//! lands while it is deciding to sleep, and a writer must not pay for
//! watches that are busy. The two sides:
//!
//! * **Watcher** ([`WaiterList::arm`]): sets its [`Signal`]'s waker, puts the
//!   signal into the waiter list of each thing it watches (setting the
//!   list's `nonempty` flag), issues `fence(SeqCst)` and then — the caller's
//!   duty, which the [`Armed`] token it gets back reminds it of — checks the
//!   event log once more before it sleeps.
//! * **Writer** ([`Published::fence`], then [`WaiterList::wake_all`]): appends
//!   its records to the event log (and swaps the cells), issues
//!   `fence(SeqCst)`, then loads each written list's `nonempty` flag; only a
//!   list that is not empty is locked, emptied and its signals woken.
//!
//! The two fences make a Dekker pair over (log tail, `nonempty`): in the
//! single total order of SeqCst fences one comes first, and the side whose
//! fence comes second sees the other's store. So either the watcher's
//! re-check finds the record, or the writer finds the flag and wakes it; a
//! wake-up is never lost. `Published` can only be made by issuing the
//! writer's fence, so [`WaiterList::wake_all`] cannot be called without one;
//! that the fence comes *after* the append is the writer's duty (the token
//! is made right before the wake-ups, in `session/write.rs`).
//!
//! A signal sits in a list at most once (one bit per list in
//! [`QueuedFlags`]); a writer that empties a list clears the bit *before* it
//! wakes, so a watch woken re-arms into a list that no longer holds it.
//!
//! The loom models: `loom::wakeup` (this protocol alone, with the weakest
//! orderings a log could use, and the store's subscribe/notify/unsubscribe
//! end to end).

use std::mem;
use std::task::Waker;

use crate::sync::{Arc, AtomicBool, AtomicU64, AtomicWaker, Mutex, Ordering, fence};

/// Proof that a writer has issued its half of the fence pair *after*
/// publishing its records. Only [`Published::fence`] makes one.
#[must_use = "wake the lists of what was written with it"]
pub(crate) struct Published(());

impl Published {
    /// The writer's fence: call it after appending to the event log, then
    /// pass the token to [`WaiterList::wake_all`] for each list written.
    /// Pairs with the fence in [`WaiterList::arm`].
    #[inline]
    pub(crate) fn fence() -> Published {
        fence(Ordering::SeqCst);
        Published(())
    }
}

/// What [`WaiterList::arm`] hands back: the watcher is armed and must now
/// check the event log once more before it sleeps (anything published before
/// that check is seen by it; anything after wakes it).
#[must_use = "check the event log once more before sleeping"]
pub(crate) struct Armed(());

/// How a sleeping watch is woken: its current waker, and which lists hold it.
pub(crate) struct Signal {
    /// A thread unparker for blocking receives, the task's waker for async
    /// ones. Registered before the signal is queued, so a writer that finds
    /// the signal finds the waker: on the slow path the list's mutex orders
    /// them; on the fast path (the signal still queued from an earlier arm)
    /// the queued flag does — a writer clears it (`Release`) before it
    /// wakes, so a watch that still sees it set (`Acquire`, after its
    /// registration) registered before that wake, which then wakes the new
    /// waker. A wake unregisters the waker, and the watch registers again
    /// when it next sleeps; a wake racing with a registration wakes the new
    /// waker.
    waker: AtomicWaker,
    queued: QueuedFlags,
}

impl Signal {
    /// A signal that can sit in `lists` waiter lists (list numbers
    /// `0..lists`).
    pub(crate) fn new(lists: usize) -> Signal {
        Signal {
            waker: AtomicWaker::default(),
            queued: QueuedFlags::new(lists),
        }
    }

    /// Makes `waker` the one to wake (kept if it would wake the same task).
    fn set_waker(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    /// Drops the waker (the watch has gone): nothing it references stays
    /// reachable through a list that still holds this signal.
    pub(crate) fn clear_waker(&self) {
        drop(self.waker.take());
    }

    /// Whether a waker is held (tests; puts it back).
    #[cfg(test)]
    pub(crate) fn has_waker(&self) -> bool {
        match self.waker.take() {
            Some(w) => {
                self.waker.register(&w);
                true
            }
            None => false,
        }
    }

    /// Wakes the registered waker (no lock is held: a waker is user code,
    /// and an executor may poll the watch, and so re-arm it, from inside).
    fn wake(&self) {
        self.waker.wake();
    }
}

/// Whatever owns a [`Signal`] (a watch's shared state): what a waiter list
/// holds a reference to.
pub(crate) trait Sleeper: Send + Sync {
    fn signal(&self) -> &Signal;
}

/// One bit per waiter list a signal may sit in: the first 64 inline, more
/// (a watch of more than 64 variables) in one extra allocation, behind a
/// thin pointer (the common signal pays 8 bytes for it, not 16).
struct QueuedFlags {
    first: AtomicU64,
    rest: Option<Box<Box<[AtomicU64]>>>,
}

impl QueuedFlags {
    fn new(lists: usize) -> QueuedFlags {
        let words = lists.saturating_sub(64).div_ceil(64);
        QueuedFlags {
            first: AtomicU64::new(0),
            rest: (words > 0).then(|| Box::new((0..words).map(|_| AtomicU64::new(0)).collect())),
        }
    }

    fn word(&self, idx: u32) -> (&AtomicU64, u64) {
        match idx.checked_sub(64) {
            None => (&self.first, 1 << idx),
            Some(i) => {
                let rest = self
                    .rest
                    .as_deref()
                    .expect("a list number beyond the signal's lists");
                (&rest[(i / 64) as usize], 1 << (i % 64))
            }
        }
    }

    fn is_set(&self, idx: u32, order: Ordering) -> bool {
        let (word, bit) = self.word(idx);
        word.load(order) & bit != 0
    }

    /// Set under the list's lock (so `Relaxed`: the lock orders it).
    fn set(&self, idx: u32) {
        let (word, bit) = self.word(idx);
        word.fetch_or(bit, Ordering::Relaxed);
    }

    /// Cleared by a writer before it wakes; `Release` pairs with the
    /// `Acquire` fast-path check in `arm`, so a watch that sees the bit clear
    /// also sees the list emptied.
    fn clear(&self, idx: u32) {
        let (word, bit) = self.word(idx);
        word.fetch_and(!bit, Ordering::Release);
    }
}

/// The signals of the watches asleep on one variable (or on a whole
/// session). The list's mutex protects the vector; `nonempty` lets a writer
/// skip the lock when nobody sleeps here (see the module docs for why that
/// is safe).
pub(crate) struct WaiterList<S> {
    list: Mutex<Vec<(Arc<S>, u32)>>,
    nonempty: AtomicBool,
}

impl<S> Default for WaiterList<S> {
    fn default() -> Self {
        WaiterList {
            list: Mutex::new(Vec::new()),
            nonempty: AtomicBool::new(false),
        }
    }
}

impl<S: Sleeper> WaiterList<S> {
    /// Watcher side: makes `waker` the signal's waker and puts the signal
    /// into this list as its list number `idx` (unless it is there already),
    /// then issues the watcher's fence. The caller must check the event log
    /// once more before sleeping (see [`Armed`]).
    pub(crate) fn arm(&self, sleeper: &Arc<S>, idx: u32, waker: &Waker) -> Armed {
        let signal = sleeper.signal();
        signal.set_waker(waker);
        let flags = &signal.queued;
        // Already queued (or being woken right now by a writer that took the
        // list and will clear the flag and then wake us): nothing to add.
        if !flags.is_set(idx, Ordering::Acquire) {
            let mut list = self.list.lock();
            if !flags.is_set(idx, Ordering::Relaxed) {
                flags.set(idx);
                list.push((sleeper.clone(), idx));
                self.nonempty.store(true, Ordering::Relaxed);
            }
        }
        // The watcher's half of the pair (see the module docs).
        fence(Ordering::SeqCst);
        Armed(())
    }

    /// Writer side: wakes and removes every signal. `Published` proves the
    /// writer's fence was issued after its records were published.
    pub(crate) fn wake_all(&self, _: &Published) {
        if !self.nonempty.load(Ordering::Relaxed) {
            return;
        }
        let mut taken = {
            let mut list = self.list.lock();
            self.nonempty.store(false, Ordering::Relaxed);
            if list.is_empty() {
                return;
            }
            mem::take(&mut *list)
        };
        for (sleeper, idx) in &taken {
            let signal = sleeper.signal();
            signal.queued.clear(*idx);
            signal.wake();
        }
        // Give the buffer back for the next sleepers (they would otherwise
        // allocate it again, and regrow it, on every write that wakes them),
        // unless new sleepers have already started another.
        taken.clear();
        let mut list = self.list.lock();
        if list.capacity() == 0 {
            mem::swap(&mut *list, &mut taken);
        }
    }

    /// Removes the signal (a dropped watch, a variable it stops following)
    /// if it is queued here, and clears its flag, so that a later `arm`
    /// queues it again.
    pub(crate) fn remove(&self, sleeper: &Arc<S>, idx: u32) {
        let flags = &sleeper.signal().queued;
        if flags.is_set(idx, Ordering::Acquire) {
            let mut list = self.list.lock();
            let before = list.len();
            list.retain(|(s, _)| !Arc::ptr_eq(s, sleeper));
            if list.len() < before {
                // Under the lock: a writer that took the list already
                // cleared it (and will wake).
                flags.clear(idx);
            }
            if list.is_empty() {
                self.nonempty.store(false, Ordering::Relaxed);
            }
        }
    }

    /// How many signals are queued (tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.list.lock().len()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc as StdArc;
    use std::sync::atomic::AtomicUsize;
    use std::task::{Wake, Waker};

    use super::*;

    struct Sleeping(Signal);
    impl Sleeper for Sleeping {
        fn signal(&self) -> &Signal {
            &self.0
        }
    }

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: StdArc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Arming twice queues once; a wake empties the list, wakes once and
    /// lets the signal be queued again; the 65th list of a signal works.
    #[test]
    fn a_signal_sits_in_a_list_once_and_is_woken_once() {
        for (lists, idx) in [(1, 0), (130, 64), (130, 129)] {
            let list = WaiterList::<Sleeping>::default();
            let sleeper = Arc::new(Sleeping(Signal::new(lists)));
            let count = StdArc::new(Count(AtomicUsize::new(0)));
            let waker = Waker::from(count.clone());
            let _ = list.arm(&sleeper, idx, &waker);
            let _ = list.arm(&sleeper, idx, &waker);
            assert_eq!(list.len(), 1);
            list.wake_all(&Published::fence());
            assert_eq!((list.len(), count.0.load(Ordering::Relaxed)), (0, 1));
            list.wake_all(&Published::fence());
            assert_eq!(count.0.load(Ordering::Relaxed), 1, "woken by an empty list");
            let _ = list.arm(&sleeper, idx, &waker);
            assert_eq!(list.len(), 1, "a woken signal can be queued again");
            list.remove(&sleeper, idx);
            assert_eq!(list.len(), 0);
            let _ = list.arm(&sleeper, idx, &waker);
            assert_eq!(list.len(), 1, "a removed signal can be queued again");
            list.remove(&sleeper, idx);
            sleeper.0.clear_waker();
            assert!(!sleeper.0.has_waker());
            assert_eq!(StdArc::strong_count(&count), 2, "only the test's waker is left");
        }
    }
}
