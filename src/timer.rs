//! A small timer for async watches that throttle: wakes a task at a
//! deadline. One lazily started background thread serves the whole process;
//! it exists only if some async throttled watch ever waits, so the default
//! build still pulls in no async runtime.
//!
//! Entries live in a `BTreeMap` keyed by (deadline, id): arming, cancelling
//! and firing cost O(log n), whatever the number of pending entries. A
//! [`TimerEntry`] is the registration: dropping it (or re-arming it)
//! removes its waker from the timer *at once*, so a dropped watch never
//! leaves its task's waker — and with it the task — referenced by the timer.
//! (futures-timer, the usual crate for this, drops a cancelled waker later,
//! on its timer thread; a watch needs the synchronous removal.)

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::task::Waker;
use std::time::Instant;

struct Timer {
    due: Mutex<Due>,
    cv: Condvar,
}

#[derive(Default)]
struct Due {
    entries: BTreeMap<(Instant, u64), Waker>,
    next_id: u64,
}

fn timer() -> &'static Timer {
    static TIMER: OnceLock<&'static Timer> = OnceLock::new();
    TIMER.get_or_init(|| {
        let t: &'static Timer = Box::leak(Box::new(Timer {
            due: Mutex::new(Due::default()),
            cv: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("varwatch-timer".into())
            .spawn(move || t.run())
            .expect("spawn the varwatch timer thread");
        t
    })
}

impl Timer {
    fn lock(&self) -> MutexGuard<'_, Due> {
        // A waker panicking is called outside the lock; poisoning can only
        // come from a bug here, and the map stays consistent regardless.
        self.due.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn run(&self) {
        let mut due = self.lock();
        loop {
            let now = Instant::now();
            let mut ready = Vec::new();
            while let Some(entry) = due.entries.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                ready.push(entry.remove());
            }
            if !ready.is_empty() {
                // Wakers are user code: call them without holding the lock.
                drop(due);
                ready.into_iter().for_each(Waker::wake);
                due = self.lock();
                continue;
            }
            due = match due.entries.first_key_value().map(|((at, _), _)| *at) {
                None => self.cv.wait(due).unwrap_or_else(|e| e.into_inner()),
                Some(next) => {
                    self.cv
                        .wait_timeout(due, next.saturating_duration_since(now))
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }
}

/// A registration with the timer: `waker` is woken at (or soon after) its
/// deadline, unless the entry is dropped first.
#[must_use = "dropping the entry cancels the wake-up"]
pub(crate) struct TimerEntry {
    key: (Instant, u64),
}

impl TimerEntry {
    /// Wakes `waker` at `at`.
    pub(crate) fn new(at: Instant, waker: Waker) -> TimerEntry {
        let t = timer();
        let mut due = t.lock();
        due.next_id += 1;
        let key = (at, due.next_id);
        let earliest = due.entries.first_key_value().is_none_or(|(k, _)| key < *k);
        due.entries.insert(key, waker);
        drop(due);
        if earliest {
            t.cv.notify_one();
        }
        TimerEntry { key }
    }

    /// The deadline.
    pub(crate) fn at(&self) -> Instant {
        self.key.0
    }

    /// Makes `waker` the one woken at the same deadline (no-op if it would
    /// wake the same task). False if the entry has already fired.
    pub(crate) fn set_waker(&self, waker: &Waker) -> bool {
        let mut due = timer().lock();
        match due.entries.get_mut(&self.key) {
            Some(w) => {
                if !w.will_wake(waker) {
                    let old = std::mem::replace(w, waker.clone());
                    drop(due);
                    drop(old); // user code (a waker's drop), outside the lock
                }
                true
            }
            None => false,
        }
    }
}

impl Drop for TimerEntry {
    fn drop(&mut self) {
        let removed = timer().lock().entries.remove(&self.key);
        drop(removed); // outside the lock
    }
}

/// Entries pending in the timer (for tests).
#[cfg(all(test, not(loom)))]
pub(crate) fn pending() -> usize {
    timer().lock().entries.len()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;
    use std::time::Duration;

    use super::*;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn fires_in_order_and_cancels_at_once() {
        let hits = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(hits.clone());
        let far = Instant::now() + Duration::from_secs(3600);
        let entries: Vec<TimerEntry> = (0..500).map(|_| TimerEntry::new(far, waker.clone())).collect();
        assert_eq!(Arc::strong_count(&hits), 502);
        drop(entries);
        // Every waker released by the drop itself, not later.
        assert_eq!(Arc::strong_count(&hits), 2);
        drop(waker);
        // A near deadline fires.
        let soon = TimerEntry::new(
            Instant::now() + Duration::from_millis(5),
            Waker::from(hits.clone()),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while hits.0.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "the timer never fired");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            !soon.set_waker(&Waker::from(hits.clone())),
            "a fired entry is gone"
        );
        assert_eq!(Arc::strong_count(&hits), 1);
    }
}
