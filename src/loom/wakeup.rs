//! The wake-up protocol: a watch registers, arms its waker and checks the
//! log again before it sleeps; a writer appends, then wakes (see
//! `observer.rs`). No interleaving may lose a wake-up or a version.

use loom::thread;

use super::{next, store_with_x};
use crate::{EventKind, VarDef, VarType, WatchOptions};

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
