//! loom models of the subscribe / notify / unsubscribe protocol.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release --lib loom_`.
//! Every lock and atomic of the store is loom's (see `sync.rs`), so loom
//! explores the interleavings of a writer against a watch registering,
//! arming its waker, reading the log, resyncing and dropping. A lost wake-up
//! shows as a deadlock of `block_on`; a wrong snapshot as a failed assert.

use std::future::poll_fn;
use std::pin::Pin;

use futures_core::Stream;
use loom::thread;

use crate::{EventKind, SessionOptions, SessionStore, StoreConfig, VarDef, VarType, Watch, WatchOptions};

fn next(w: &mut Watch) -> Option<crate::WatchEvent> {
    loom::future::block_on(poll_fn(|cx| Pin::new(&mut *w).poll_next(cx)))
}

fn store_with_x(log: usize) -> SessionStore {
    let store = SessionStore::with_config(StoreConfig::new().event_log(log));
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
        let store = store_with_x(16);
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
        let store = store_with_x(16);
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
        let store = store_with_x(16);
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
        let store = store_with_x(1);
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
        let store = store_with_x(16);
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
