//! The wake-up protocol (`wakeup.rs`): a watch arms its signal and checks
//! the log again before it sleeps; a writer appends, issues its fence, then
//! wakes. No interleaving may lose a wake-up or a version.
//!
//! The first models check the protocol alone, on a bare `WaiterList` and an
//! atomic standing for the log's tail, written and read `Relaxed` (the
//! weakest a log could use: only the fence pair orders them). The others
//! check it end to end through the store: subscribe, notify, unsubscribe.

use std::future::poll_fn;
use std::sync::Arc as StdArc;
use std::task::{Context, Poll, Wake, Waker};

use loom::sync::atomic::{AtomicBool, AtomicU64};
use loom::thread;

use super::{next, store_with_x};
use crate::sync::{Arc, Ordering};
use crate::wakeup::{Published, Signal, Sleeper, WaiterList};
use crate::{EventKind, VarDef, VarType, WatchOptions};

/// A watch's shared state, reduced to its signal.
struct Sleeping(Signal);

impl Sleeper for Sleeping {
    fn signal(&self) -> &Signal {
        &self.0
    }
}

/// A waker that records that it was woken.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: StdArc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The Dekker pair: after a writer has published and woken, either the
/// watcher's re-check saw the write or its waker was called.
#[test]
fn loom_wakeup_protocol_never_loses_a_wakeup() {
    loom::model(|| {
        let tail = Arc::new(AtomicU64::new(0));
        let list = Arc::new(WaiterList::<Sleeping>::default());
        let writer = {
            let (tail, list) = (tail.clone(), list.clone());
            thread::spawn(move || {
                tail.store(1, Ordering::Relaxed);
                let published = Published::fence();
                list.wake_all(&published);
            })
        };
        let sleeper = Arc::new(Sleeping(Signal::new(1)));
        let flag = StdArc::new(Flag(AtomicBool::new(false)));
        let _armed = list.arm(&sleeper, 0, &Waker::from(flag.clone()));
        let saw = tail.load(Ordering::Relaxed) == 1;
        writer.join().unwrap();
        assert!(saw || flag.0.load(Ordering::Relaxed), "a wake-up was lost");
    });
}

/// A watcher that sleeps, is woken, re-arms and sleeps again, against a
/// writer that writes twice: it sees both writes (a lost wake-up leaves it
/// asleep for good, which loom reports as a deadlock), and the list is left
/// empty of it or holding it exactly once.
#[test]
fn loom_wakeup_protocol_rearms_after_a_wakeup() {
    loom::model(|| {
        let tail = Arc::new(AtomicU64::new(0));
        let list = Arc::new(WaiterList::<Sleeping>::default());
        let writer = {
            let (tail, list) = (tail.clone(), list.clone());
            thread::spawn(move || {
                for v in 1..=2 {
                    tail.store(v, Ordering::Relaxed);
                    let published = Published::fence();
                    list.wake_all(&published);
                }
            })
        };
        let sleeper = Arc::new(Sleeping(Signal::new(1)));
        let mut seen = 0;
        while seen < 2 {
            // Sleeps (as a task of loom's executor) until there is news.
            seen = loom::future::block_on(poll_fn(|cx| {
                let _armed = list.arm(&sleeper, 0, cx.waker());
                match tail.load(Ordering::Relaxed) {
                    now if now > seen => Poll::Ready(now),
                    _ => Poll::Pending,
                }
            }));
        }
        writer.join().unwrap();
        assert!(list.len() <= 1);
    });
}

/// A watch that goes away (removed from the list, waker dropped) while a
/// writer wakes the list: nothing keeps its waker, and the list does not
/// keep it.
#[test]
fn loom_wakeup_protocol_remove_vs_wake() {
    loom::model(|| {
        let list = Arc::new(WaiterList::<Sleeping>::default());
        let sleeper = Arc::new(Sleeping(Signal::new(1)));
        let flag = StdArc::new(Flag(AtomicBool::new(false)));
        let _armed = list.arm(&sleeper, 0, &Waker::from(flag.clone()));
        let writer = {
            let list = list.clone();
            thread::spawn(move || list.wake_all(&Published::fence()))
        };
        list.remove(&sleeper, 0);
        sleeper.0.clear_waker();
        writer.join().unwrap();
        assert_eq!(list.len(), 0);
        assert!(!sleeper.0.has_waker());
        assert_eq!(StdArc::strong_count(&flag), 1, "a waker outlived its watch");
    });
}

/// The stale-read race: a watch with initial values sees a contiguous run
/// ending at 3, starting from its snapshot, whatever the interleaving.
#[test]
fn loom_subscribe_vs_writes() {
    loom::model(|| {
        let store = store_with_x();
        let writer = {
            let store = store.clone();
            thread::spawn(move || {
                store.update("s", "x", 2).unwrap();
                store.update("s", "x", 3).unwrap();
            })
        };
        let mut w = store.watch("s", ["x"], WatchOptions::new()).unwrap();
        let first = next(&mut w).unwrap();
        assert_eq!(first.kind(), EventKind::Initial);
        let mut last = first.version();
        let mut value = first.value().unwrap().as_i64().unwrap();
        assert_eq!(value as u64, last + 1);
        while value != 3 {
            // Blocks until the writer's next change: a lost wake-up deadlocks.
            let e = next(&mut w).unwrap();
            assert_eq!(e.kind(), EventKind::Changed);
            assert_eq!(e.version(), last + 1);
            last = e.version();
            value = e.value().unwrap().as_i64().unwrap();
        }
        writer.join().unwrap();
    });
}

/// A watch dropped while a writer runs leaves nothing registered.
#[test]
fn loom_drop_vs_write() {
    loom::model(|| {
        let store = store_with_x();
        let writer = {
            let store = store.clone();
            thread::spawn(move || {
                store.update("s", "x", 2).unwrap();
            })
        };
        let mut w = store
            .watch("s", ["x"], WatchOptions::new().include_initial(false))
            .unwrap();
        // Arm (may or may not find the change), then drop: the drop must
        // take the watch out of the waiter list and release the waker.
        let _ = w.poll_recv(&mut Context::from_waker(Waker::noop()));
        drop(w);
        writer.join().unwrap();
        assert_eq!(store.list_watchers("s").unwrap().len(), 0);
        assert_eq!(store.stats().watchers, 0);
    });
}

/// A whole-session watch and a concurrent registration: the new variable's
/// first event is its initial state, delivered exactly once.
#[test]
fn loom_watch_session_vs_register() {
    loom::model(|| {
        let store = store_with_x();
        let writer = {
            let store = store.clone();
            thread::spawn(move || {
                store
                    .register("s", VarDef::new("y", VarType::Integer, 7))
                    .unwrap();
                store.update("s", "y", 8).unwrap();
            })
        };
        let mut w = store.watch_session("s", WatchOptions::new()).unwrap();
        let mut y = Vec::new();
        while y.last() != Some(&8) {
            let e = next(&mut w).unwrap();
            if e.variable_name() == "y" {
                y.push(e.value().unwrap().as_i64().unwrap());
                if y.len() == 1 {
                    assert_eq!(e.kind(), EventKind::Initial);
                }
            }
        }
        assert!(y == [7, 8] || y == [8], "{y:?}");
        writer.join().unwrap();
    });
}

/// A watch whose log is a single slot overflows while the writer runs; it
/// must still account for every version: delivered, or named by `Lagged`.
#[test]
fn loom_overflow_resync() {
    loom::model(|| {
        let store = store_with_x();
        let writer = {
            let store = store.clone();
            thread::spawn(move || {
                for v in 2..=4 {
                    store.update("s", "x", v).unwrap();
                }
            })
        };
        let mut w = store.watch("s", ["x"], WatchOptions::new().capacity(1)).unwrap();
        let first = next(&mut w).unwrap();
        let mut expect = first.version() + 1;
        let mut value = first.value().unwrap().as_i64().unwrap();
        while value != 4 {
            let e = next(&mut w).unwrap();
            match e.kind() {
                EventKind::Lagged { first, last } => {
                    assert_eq!(first, expect);
                    expect = last + 1;
                }
                EventKind::Changed => {
                    assert_eq!(e.version(), expect);
                    expect += 1;
                    value = e.value().unwrap().as_i64().unwrap();
                }
                k => panic!("unexpected {k:?}"),
            }
        }
        writer.join().unwrap();
    });
}

/// Deleting the session wakes a sleeping watch, which ends with
/// `SessionClosed`.
#[test]
fn loom_close_wakes_watch() {
    loom::model(|| {
        let store = store_with_x();
        let mut w = store
            .watch("s", ["x"], WatchOptions::new().include_initial(false))
            .unwrap();
        let closer = {
            let store = store.clone();
            thread::spawn(move || store.delete_session("s").unwrap())
        };
        let e = next(&mut w).unwrap();
        assert_eq!(e.kind(), EventKind::SessionClosed);
        assert!(next(&mut w).is_none());
        closer.join().unwrap();
    });
}
