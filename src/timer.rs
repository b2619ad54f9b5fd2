//! A minimal timer for async watches that throttle: wakes a task at a
//! deadline. One lazily started background thread serves the whole process;
//! it exists only if some async throttled watch ever waits, so the default
//! build still pulls in no async runtime.

use std::sync::{Condvar, Mutex, OnceLock};
use std::task::Waker;
use std::time::Instant;

struct Timer {
    due: Mutex<Vec<(Instant, Waker)>>,
    cv: Condvar,
}

fn timer() -> &'static Timer {
    static TIMER: OnceLock<&'static Timer> = OnceLock::new();
    TIMER.get_or_init(|| {
        let t: &'static Timer = Box::leak(Box::new(Timer {
            due: Mutex::new(Vec::new()),
            cv: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("varwatch-timer".into())
            .spawn(move || t.run())
            .expect("spawn the varwatch timer thread");
        t
    })
}

/// Wakes `waker` at (or soon after) `at`.
pub(crate) fn wake_at(at: Instant, waker: Waker) {
    let t = timer();
    let mut due = t.due.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(slot) = due.iter_mut().find(|(_, w)| w.will_wake(&waker)) {
        slot.0 = slot.0.min(at);
    } else {
        due.push((at, waker));
    }
    t.cv.notify_one();
}

impl Timer {
    fn run(&self) {
        let mut due = self.due.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let now = Instant::now();
            let mut ready = Vec::new();
            let mut i = 0;
            while i < due.len() {
                if due[i].0 <= now {
                    ready.push(due.swap_remove(i).1);
                } else {
                    i += 1;
                }
            }
            if !ready.is_empty() {
                // Wakers are user code: call them without holding the lock.
                drop(due);
                ready.into_iter().for_each(Waker::wake);
                due = self.due.lock().unwrap_or_else(|e| e.into_inner());
                continue;
            }
            due = match due.iter().map(|(t, _)| *t).min() {
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
