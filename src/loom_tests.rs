//! loom models of the subscribe / notify / unsubscribe protocol and of the
//! publication protocol (write sections and consistent cuts).
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release --lib loom_`.
//! Every lock and atomic of the store is loom's (see `sync.rs`), so loom
//! explores the interleavings of a writer against a watch registering,
//! arming its waker, reading the log, resyncing and dropping. A lost wake-up
//! shows as a deadlock of `block_on`; a wrong snapshot or a torn cut as a
//! failed assert.

use std::future::poll_fn;

use loom::thread;

use crate::seqcount::SeqCount;
use crate::sync::{Arc, AtomicU64, Mutex, Ordering};
use crate::{EventKind, SessionOptions, SessionStore, UpdateOptions, VarDef, VarType, Watch, WatchOptions};

fn next(w: &mut Watch) -> Option<crate::WatchEvent> {
    loom::future::block_on(poll_fn(|cx| w.poll_recv(cx)))
}

fn store_with_x() -> SessionStore {
    let store = SessionStore::new();
    store.create_session("s", SessionOptions::new()).unwrap();
    store
        .register("s", VarDef::new("x", VarType::Integer, 1))
        .unwrap();
    store
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
        // Arm the waker (may or may not find the change), then drop.
        let _ = w.try_recv();
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

/// The publication protocol itself: a writer changes two cells inside one
/// write section (under the writers' lock); a reader that validates its read
/// never sees one cell changed without the other.
#[test]
fn loom_seqcount_never_hands_out_a_torn_cut() {
    loom::model(|| {
        let seq = Arc::new(SeqCount::default());
        let cells = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        let lock = Arc::new(Mutex::new(()));
        let writer = {
            let (seq, cells, lock) = (seq.clone(), cells.clone(), lock.clone());
            thread::spawn(move || {
                for v in 1..=2 {
                    let _w = lock.lock();
                    let _section = seq.write();
                    cells.0.store(v, Ordering::Relaxed);
                    cells.1.store(v, Ordering::Relaxed);
                }
            })
        };
        let read = || (cells.0.load(Ordering::Relaxed), cells.1.load(Ordering::Relaxed));
        if let Some((a, b)) = seq.read(2, read) {
            assert_eq!(a, b, "a torn cut passed validation");
        }
        writer.join().unwrap();
        assert_eq!(seq.read(1, read), Some((2, 2)));
    });
}

/// A watch of two variables that a writer changes together in atomic
/// batches, with a capacity of one so that it resyncs: at every group
/// boundary the two values it holds are equal (a state that existed).
#[test]
fn loom_resync_delivers_a_cut() {
    loom::model(|| {
        let store = store_with_x();
        store
            .register("s", VarDef::new("y", VarType::Integer, 1))
            .unwrap();
        let writer = {
            let store = store.clone();
            thread::spawn(move || {
                for v in 2..=3 {
                    store
                        .update_atomic("s", [("x", v), ("y", v)], &UpdateOptions::new())
                        .unwrap();
                }
            })
        };
        let mut w = store
            .watch("s", ["x", "y"], WatchOptions::new().capacity(1))
            .unwrap();
        let (mut x, mut y) = (0, 0);
        let mut label = None;
        while !(x == 3 && y == 3) {
            let e = next(&mut w).unwrap();
            if label.is_some_and(|l| l != e.revision()) {
                assert_eq!(x, y, "a group ended on a state that never existed");
            }
            label = Some(e.revision());
            if let Some(v) = e.value() {
                let v = v.as_i64().unwrap();
                match e.variable_name() {
                    "x" => x = v,
                    _ => y = v,
                }
            }
        }
        writer.join().unwrap();
    });
}
