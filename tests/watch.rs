//! Watching: the guarantees of DESIGN.md one by one, and every option.
#![cfg(not(loom))] // uses tokio, which is not built under `--cfg loom`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use varwatch::{
    CloseReason, Error, EventKind, OverflowPolicy, RecvTimeoutError, SessionOptions, SessionStore,
    StoreConfig, TryRecvError, UpdateOptions, Value, VarDef, VarType, Watch, WatchEvent, WatchOptions,
};

const LONG: Duration = Duration::from_secs(20);

fn store_with(vars: &[(&str, i64)]) -> SessionStore {
    let store = SessionStore::new();
    store.create_session("s", SessionOptions::new()).unwrap();
    for (name, v) in vars {
        store
            .register("s", VarDef::new(*name, VarType::Integer, *v))
            .unwrap();
    }
    store
}

fn int(e: &WatchEvent) -> i64 {
    e.value().unwrap().as_i64().unwrap()
}

fn next(w: &mut Watch) -> WatchEvent {
    w.recv_timeout(LONG).expect("an event within the time limit")
}

/// The classic check from DESIGN.md, many times over with real threads: the
/// watcher sees exactly [1, 2, 3], the first marked initial, when it
/// subscribes before the writes; and in every interleaving it sees a
/// contiguous run from its snapshot to 3.
#[test]
fn stale_read_race() {
    for _ in 0..2000 {
        let store = store_with(&[("x", 1)]);
        let go = Arc::new(AtomicBool::new(false));
        let writer = {
            let (store, go) = (store.clone(), go.clone());
            thread::spawn(move || {
                while !go.load(Ordering::Acquire) {
                    std::hint::spin_loop();
                }
                store.update("s", "x", 2).unwrap();
                store.update("s", "x", 3).unwrap();
            })
        };
        go.store(true, Ordering::Release);
        let mut w = store.watch("s", ["x"], WatchOptions::new()).unwrap();
        let first = next(&mut w);
        assert_eq!(first.kind(), EventKind::Initial);
        let mut seen = vec![(int(&first), first.version())];
        while seen.last().unwrap().0 != 3 {
            let e = next(&mut w);
            assert_eq!(e.kind(), EventKind::Changed);
            seen.push((int(&e), e.version()));
        }
        writer.join().unwrap();
        // Values and versions are contiguous from the snapshot.
        for pair in seen.windows(2) {
            assert_eq!(pair[1].0, pair[0].0 + 1, "{seen:?}");
            assert_eq!(pair[1].1, pair[0].1 + 1, "{seen:?}");
        }
        assert!(matches!(w.try_recv(), Err(TryRecvError::Empty)));
    }
    // Subscribing before the writes, exactly [1, 2, 3].
    let store = store_with(&[("x", 1)]);
    let mut w = store.watch("s", ["x"], WatchOptions::new()).unwrap();
    store.update("s", "x", 2).unwrap();
    store.update("s", "x", 3).unwrap();
    let got: Vec<(EventKind, i64)> = (0..3)
        .map(|_| next(&mut w))
        .map(|e| (e.kind(), int(&e)))
        .collect();
    assert_eq!(
        got,
        [
            (EventKind::Initial, 1),
            (EventKind::Changed, 2),
            (EventKind::Changed, 3)
        ]
    );
}

#[test]
fn snapshot_of_several_variables_is_one_revision() {
    let store = store_with(&[("a", 0), ("b", 0)]);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), stop.clone());
        thread::spawn(move || {
            let mut i = 1;
            while !stop.load(Ordering::Relaxed) {
                store
                    .update_atomic("s", [("a", i), ("b", i)], &UpdateOptions::new())
                    .unwrap();
                i += 1;
            }
        })
    };
    for _ in 0..500 {
        let mut w = store.watch("s", ["a", "b"], WatchOptions::new()).unwrap();
        let a = next(&mut w);
        let b = next(&mut w);
        assert!(a.is_initial() && b.is_initial());
        assert_eq!(a.revision(), b.revision());
        assert_eq!(int(&a), int(&b));
        // After the snapshot, each batch arrives together (a then b).
        assert_eq!(a.version(), int(&a) as u64);
        let after: Vec<WatchEvent> = (0..6).map(|_| next(&mut w)).collect();
        if w.stats().lag_events > 0 {
            continue; // this round fell behind the writer; checked elsewhere
        }
        for k in 1..=3i64 {
            let (a2, b2) = (&after[2 * k as usize - 2], &after[2 * k as usize - 1]);
            assert_eq!((a2.variable_name(), b2.variable_name()), ("a", "b"));
            assert_eq!(a2.revision(), b2.revision());
            assert_eq!((int(a2), int(b2)), (int(&a) + k, int(&a) + k));
            assert_eq!(a2.version(), a.version() + k as u64);
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
}

#[test]
fn events_carry_everything() {
    let store = store_with(&[("x", 1)]);
    let id = store.get("s", "x").unwrap().id().to_string();
    let mut w = store.watch("s", [&id], WatchOptions::new()).unwrap();
    let init = next(&mut w);
    assert_eq!((init.variable_id(), init.variable_name()), (id.as_str(), "x"));
    assert_eq!(init.old_value(), None);
    store
        .update_with(
            "s",
            "x",
            5,
            &UpdateOptions::new().source("tuner").metadata("why", "test"),
        )
        .unwrap();
    let e = next(&mut w);
    assert_eq!(e.kind(), EventKind::Changed);
    assert_eq!(e.version(), 1);
    assert_eq!(e.revision(), 2);
    assert_eq!(e.value(), Some(&Value::Integer(5)));
    assert_eq!(e.old_value(), Some(&Value::Integer(1)));
    assert_eq!(e.source(), Some("tuner"));
    assert_eq!(e.metadata().unwrap()["why"], "test");
    assert!(e.timestamp() >= init.timestamp());
    assert_eq!(e.skipped(), 0);
}

#[test]
fn unknown_identifiers_are_listed() {
    let store = store_with(&[("x", 1)]);
    let err = store
        .watch("s", ["x", "nope", "ghost"], WatchOptions::new())
        .unwrap_err();
    assert_eq!(
        err,
        Error::VariablesNotFound {
            session: "s".into(),
            variables: vec!["nope".into(), "ghost".into()]
        }
    );
    assert_eq!(
        err.to_string(),
        "variables not found in session `s`: `nope`, `ghost`"
    );
    assert_eq!(store.stats().watchers, 0);
    assert!(matches!(
        store.watch("s", ["x"], WatchOptions::new().capacity(0)),
        Err(Error::InvalidOption(_))
    ));
    assert!(matches!(
        store.watch("s", Vec::<String>::new(), WatchOptions::new()),
        Err(Error::InvalidOption(_))
    ));
}

#[test]
fn without_initial_values() {
    let store = store_with(&[("x", 1)]);
    let mut w = store
        .watch("s", ["x"], WatchOptions::new().include_initial(false))
        .unwrap();
    assert_eq!(w.try_recv().unwrap_err(), TryRecvError::Empty);
    store.update("s", "x", 2).unwrap();
    let e = next(&mut w);
    assert_eq!((e.kind(), int(&e)), (EventKind::Changed, 2));
}

#[test]
fn the_same_variable_twice_is_one_subscription() {
    let store = store_with(&[("x", 1)]);
    let id = store.get("s", "x").unwrap().id().to_string();
    let mut w = store.watch("s", ["x", &id], WatchOptions::new()).unwrap();
    store.update("s", "x", 2).unwrap();
    assert!(next(&mut w).is_initial());
    assert_eq!(int(&next(&mut w)), 2);
    assert_eq!(w.try_recv().unwrap_err(), TryRecvError::Empty);
}

/// Identifiers in any order, some repeated: each variable's initial event
/// carries its own state (the snapshot is taken in the order the watch
/// keeps, after duplicates are merged).
#[test]
fn identifiers_out_of_order_and_repeated_get_their_own_initial_states() {
    let store = store_with(&[("a", 10), ("b", 20), ("c", 30)]);
    let mut w = store
        .watch("s", ["c", "a", "c", "b", "a"], WatchOptions::new())
        .unwrap();
    let initial: Vec<(String, i64)> = (0..3)
        .map(|_| {
            let e = next(&mut w);
            assert!(e.is_initial());
            (e.variable_name().to_string(), int(&e))
        })
        .collect();
    assert_eq!(
        initial,
        [
            ("a".to_string(), 10),
            ("b".to_string(), 20),
            ("c".to_string(), 30)
        ]
    );
    assert_eq!(w.try_recv().unwrap_err(), TryRecvError::Empty);
    store.update("s", "b", 21).unwrap();
    let e = next(&mut w);
    assert_eq!((e.variable_name(), int(&e)), ("b", 21));
}

#[test]
fn recv_timeout_times_out_without_events() {
    let store = store_with(&[("x", 1)]);
    let mut w = store
        .watch("s", ["x"], WatchOptions::new().include_initial(false))
        .unwrap();
    assert_eq!(
        w.recv_timeout(Duration::from_millis(20)).unwrap_err(),
        RecvTimeoutError::Timeout
    );
}

#[test]
fn blocking_recv_wakes_on_write_from_another_thread() {
    let store = store_with(&[("x", 0)]);
    let mut w = store
        .watch("s", ["x"], WatchOptions::new().include_initial(false))
        .unwrap();
    let reader = thread::spawn(move || (1..=100).map(|_| int(&w.recv().unwrap())).collect::<Vec<_>>());
    for i in 1..=100 {
        store.update("s", "x", i).unwrap();
    }
    assert_eq!(reader.join().unwrap(), (1..=100).collect::<Vec<_>>());
}

#[test]
fn delete_variable_ends_watch_with_deleted() {
    let store = store_with(&[("x", 1), ("y", 1)]);
    let mut w = store
        .watch("s", ["x", "y"], WatchOptions::new().include_initial(false))
        .unwrap();
    store.update("s", "x", 2).unwrap();
    store.delete_variable("s", "x").unwrap();
    assert_eq!(int(&next(&mut w)), 2);
    let d = next(&mut w);
    assert_eq!(
        (d.kind(), d.variable_name(), d.version()),
        (EventKind::Deleted, "x", 2)
    );
    assert_eq!(d.old_value(), Some(&Value::Integer(2)));
    // Still watching y.
    store.update("s", "y", 5).unwrap();
    assert_eq!(int(&next(&mut w)), 5);
    store.delete_variable("s", "y").unwrap();
    assert_eq!(next(&mut w).kind(), EventKind::Deleted);
    assert!(w.recv().is_none());
    assert_eq!(w.close_reason(), Some(CloseReason::VariablesDeleted));
    assert_eq!(store.list_watchers("s").unwrap().len(), 0);
}

#[test]
fn delete_session_ends_watch_with_session_closed() {
    let store = store_with(&[("x", 1)]);
    let mut w = store.watch("s", ["x"], WatchOptions::new()).unwrap();
    let mut ws = store
        .watch_session("s", WatchOptions::new().include_initial(false))
        .unwrap();
    store.update("s", "x", 2).unwrap();
    store.delete_session("s").unwrap();
    let kinds: Vec<EventKind> = w.by_ref().map(|e| e.kind()).collect();
    assert_eq!(
        kinds,
        [EventKind::Initial, EventKind::Changed, EventKind::SessionClosed]
    );
    assert_eq!(w.close_reason(), Some(CloseReason::SessionClosed));
    assert_eq!(w.try_recv().unwrap_err(), TryRecvError::Closed);
    let kinds: Vec<EventKind> = ws.by_ref().map(|e| e.kind()).collect();
    assert_eq!(kinds, [EventKind::Changed, EventKind::SessionClosed]);
}

/// The TTL rule: an open watch keeps its session alive (it is an access
/// that lasts), and the end of the last watch counts as an access.
#[test]
fn an_open_watch_keeps_its_session_alive() {
    let ttl = Duration::from_millis(30);
    let store = SessionStore::new();
    store.create_session("t", SessionOptions::new().ttl(ttl)).unwrap();
    store
        .register("t", VarDef::new("x", VarType::Integer, 1))
        .unwrap();
    let mut w = store
        .watch("t", ["x"], WatchOptions::new().include_initial(false))
        .unwrap();
    thread::sleep(ttl * 3);
    assert_eq!(store.cleanup_expired(), 0, "a watched session expired");
    store.update("t", "x", 2).unwrap();
    assert_eq!(next(&mut w).version(), 1);
    drop(w);
    // Idle from the watch's end, it expires once a TTL has passed.
    thread::sleep(ttl * 3);
    assert_eq!(store.cleanup_expired(), 1);
    assert!(!store.session_exists("t"));
}

#[test]
fn store_drop_closes_watches() {
    let store = store_with(&[("x", 1)]);
    let mut w = store
        .watch("s", ["x"], WatchOptions::new().include_initial(false))
        .unwrap();
    let waiter = thread::spawn(move || w.recv().map(|e| e.kind()));
    thread::sleep(Duration::from_millis(10));
    drop(store);
    assert_eq!(waiter.join().unwrap(), Some(EventKind::SessionClosed));
}

#[test]
fn dropping_watches_empties_the_registry() {
    let store = store_with(&[("x", 1), ("y", 2)]);
    let watches: Vec<Watch> = (0..50)
        .map(|i| {
            if i % 2 == 0 {
                store.watch("s", ["x", "y"], WatchOptions::new()).unwrap()
            } else {
                store.watch_session("s", WatchOptions::new()).unwrap()
            }
        })
        .collect();
    assert_eq!(store.list_watchers("s").unwrap().len(), 50);
    assert_eq!(store.session("s").unwrap().watchers, 50);
    // Some of them asleep on a thread at the time they are dropped.
    let handles: Vec<_> = watches
        .into_iter()
        .map(|mut w| {
            thread::spawn(move || {
                let _ = w.recv_timeout(Duration::from_millis(1));
                let _ = w.recv_timeout(Duration::from_millis(1));
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(store.list_watchers("s").unwrap().len(), 0);
    assert_eq!(store.stats().watchers, 0);
    store.update("s", "x", 10).unwrap();
}

#[test]
fn list_watchers_shows_lag() {
    let store = store_with(&[("x", 1)]);
    let mut w = store.watch("s", ["x"], WatchOptions::new()).unwrap();
    for i in 2..=5 {
        store.update("s", "x", i).unwrap();
    }
    let info = &store.list_watchers("s").unwrap()[0];
    assert_eq!(info.id, w.id());
    assert_eq!(info.variables.as_deref(), Some(&["x".to_string()][..]));
    assert_eq!(info.stats.queue_depth, 5); // 1 initial + 4 changes
    for _ in 0..5 {
        next(&mut w);
    }
    let s = w.stats();
    assert_eq!((s.queue_depth, s.events_delivered), (0, 5));
    assert_eq!(store.stats().events_sent, 5);
}

#[test]
fn overflow_resyncs_with_lag_marker() {
    let store = store_with(&[("x", 0), ("y", 0)]);
    let mut w = store
        .watch("s", ["x", "y"], WatchOptions::new().capacity(4))
        .unwrap();
    for i in 1..=10 {
        store.update("s", "x", i).unwrap();
    }
    let events: Vec<WatchEvent> = w.try_iter().collect();
    let summary: Vec<(String, EventKind, u64)> = events
        .iter()
        .map(|e| (e.variable_name().to_string(), e.kind(), e.version()))
        .collect();
    // Initial states, then the lag marker naming x's versions 1..=9, then x
    // at 10. y did not move: no marker for it.
    assert_eq!(
        summary,
        [
            ("x".into(), EventKind::Initial, 0),
            ("y".into(), EventKind::Initial, 0),
            ("x".into(), EventKind::Lagged { first: 1, last: 9 }, 9),
            ("x".into(), EventKind::Changed, 10),
        ]
    );
    assert_eq!(w.stats().lag_events, 1);
    // And contiguous again.
    store.update("s", "x", 11).unwrap();
    store.update("s", "y", 1).unwrap();
    assert_eq!(next(&mut w).version(), 11);
    assert_eq!(next(&mut w).variable_name(), "y");
}

#[test]
fn overflow_where_nothing_of_ours_was_lost_is_invisible() {
    let store = store_with(&[("x", 0), ("noise", 0)]);
    let mut w = store
        .watch("s", ["x"], WatchOptions::new().capacity(2).include_initial(false))
        .unwrap();
    store.update("s", "x", 1).unwrap();
    for i in 1..=20 {
        store.update("s", "noise", i).unwrap();
    }
    // x's change was pushed out of the window but is still x's current
    // state: it is delivered as the plain Changed event it was.
    let e = next(&mut w);
    assert_eq!((e.kind(), e.version(), int(&e)), (EventKind::Changed, 1, 1));
    assert_eq!(w.try_recv().unwrap_err(), TryRecvError::Empty);
}

#[test]
fn overflow_close_policy() {
    let store = store_with(&[("x", 0)]);
    let mut w = store
        .watch(
            "s",
            ["x"],
            WatchOptions::new().capacity(2).on_overflow(OverflowPolicy::Close),
        )
        .unwrap();
    for i in 1..=5 {
        store.update("s", "x", i).unwrap();
    }
    let kinds: Vec<EventKind> = w.by_ref().map(|e| e.kind()).collect();
    assert_eq!(
        kinds,
        [EventKind::Initial, EventKind::Lagged { first: 1, last: 5 }]
    );
    assert_eq!(w.close_reason(), Some(CloseReason::Overflow));
    assert_eq!(store.stats().watchers, 0);
}

#[test]
fn a_slow_watcher_does_not_hold_up_the_writer_or_others() {
    let store = store_with(&[("x", 0)]);
    let _sleeper = store.watch("s", ["x"], WatchOptions::new().capacity(8)).unwrap();
    let mut fast = store
        .watch("s", ["x"], WatchOptions::new().capacity(100_000))
        .unwrap();
    // 50k writes with a watcher that never reads: none blocks, memory stays
    // bounded by the log (checked by the writes completing at all).
    for i in 1..=50_000 {
        store.update("s", "x", i).unwrap();
    }
    let mut last = next(&mut fast).version();
    let mut count = 1;
    while last < 50_000 {
        let e = next(&mut fast);
        assert_eq!(e.version(), last + 1);
        last = e.version();
        count += 1;
    }
    assert_eq!(count, 50_001);
}

#[test]
fn coalescing_delivers_latest_with_skip_count() {
    let store = store_with(&[("x", 0), ("y", 0)]);
    let mut w = store
        .watch("s", ["x", "y"], WatchOptions::new().coalesce())
        .unwrap();
    for i in 1..=100 {
        store.update("s", "x", i).unwrap();
    }
    store.update("s", "y", 1).unwrap();
    let events: Vec<WatchEvent> = w.try_iter().collect();
    let summary: Vec<(&str, EventKind, i64, u64)> = events
        .iter()
        .map(|e| (e.variable_name(), e.kind(), int(e), e.skipped()))
        .collect();
    // The undelivered initial of x is replaced by its latest state.
    assert_eq!(
        summary,
        [
            ("x", EventKind::Initial, 100, 100),
            ("y", EventKind::Initial, 1, 1)
        ]
    );
    // Coalescing across an overflow: no Lagged, only the latest.
    let mut w = store
        .watch(
            "s",
            ["x"],
            WatchOptions::new().coalesce().capacity(4).include_initial(false),
        )
        .unwrap();
    for i in 101..=200 {
        store.update("s", "x", i).unwrap();
    }
    let events: Vec<WatchEvent> = w.try_iter().collect();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].kind(), int(&events[0]), events[0].skipped()),
        (EventKind::Changed, 200, 99)
    );
    assert_eq!(w.stats().versions_skipped, 99);
}

#[test]
fn filter_runs_on_the_watcher_and_advances_versions() {
    let store = store_with(&[("x", 0)]);
    let mut w = store
        .watch(
            "s",
            ["x"],
            WatchOptions::new().filter(|_, new| new.as_i64().is_some_and(|v| v % 2 == 0)),
        )
        .unwrap();
    for i in 1..=10 {
        store.update("s", "x", i).unwrap();
    }
    let got: Vec<i64> = w.try_iter().map(|e| int(&e)).collect();
    assert_eq!(got, [0, 2, 4, 6, 8, 10]);
    assert_eq!(w.stats().events_filtered, 5);
}

#[test]
fn filter_sees_old_and_new() {
    let store = SessionStore::new();
    store.create_session("s", SessionOptions::new()).unwrap();
    store
        .register("s", VarDef::new("t", VarType::Float, 20.0))
        .unwrap();
    let mut w = store
        .watch(
            "s",
            ["t"],
            WatchOptions::new().include_initial(false).filter(|old, new| {
                (new.as_f64().unwrap() - old.and_then(Value::as_f64).unwrap_or(f64::NAN)).abs() > 1.0
            }),
        )
        .unwrap();
    store.update("s", "t", 20.5).unwrap();
    store.update("s", "t", 22.0).unwrap();
    let got: Vec<f64> = w
        .try_iter()
        .map(|e| e.value().unwrap().as_f64().unwrap())
        .collect();
    assert_eq!(got, [22.0]);
}

#[test]
fn panicking_filter_is_contained() {
    let store = store_with(&[("x", 0)]);
    let mut w = store
        .watch(
            "s",
            ["x"],
            WatchOptions::new().include_initial(false).filter(|_, new| {
                if new.as_i64() == Some(2) {
                    panic!("filter bug");
                }
                true
            }),
        )
        .unwrap();
    for i in 1..=3 {
        store.update("s", "x", i).unwrap();
    }
    let got: Vec<i64> = w.try_iter().map(|e| int(&e)).collect();
    assert_eq!(got, [1, 2, 3]);
    assert_eq!(w.stats().filter_panics, 1);
    // The writer and the store are unaffected.
    assert_eq!(store.update("s", "x", 4).unwrap(), 4);
}

#[test]
fn throttle_limits_rate_and_ends_on_latest() {
    let store = store_with(&[("x", 0)]);
    let interval = Duration::from_millis(50);
    let mut w = store
        .watch(
            "s",
            ["x"],
            WatchOptions::new().include_initial(false).throttle(interval),
        )
        .unwrap();
    let writer = {
        let store = store.clone();
        thread::spawn(move || {
            for i in 1..=200 {
                store.update("s", "x", i).unwrap();
                thread::sleep(Duration::from_micros(500));
            }
        })
    };
    let mut got = Vec::new();
    let mut times = Vec::new();
    while got.last() != Some(&200) {
        let e = next(&mut w);
        got.push(int(&e));
        times.push(Instant::now());
    }
    writer.join().unwrap();
    // Strictly increasing, ends on the latest, far fewer than 200.
    assert!(got.windows(2).all(|p| p[0] < p[1]), "{got:?}");
    assert!(got.len() < 100, "throttle let {} events through", got.len());
    // Skip counts account for every version: delivered + skipped = 200.
    assert_eq!(w.stats().versions_skipped + got.len() as u64, 200);
}

#[test]
fn watch_session_follows_new_and_deleted_variables() {
    let store = store_with(&[("a", 1)]);
    let mut w = store.watch_session("s", WatchOptions::new()).unwrap();
    store
        .register("s", VarDef::new("b", VarType::Integer, 10))
        .unwrap();
    store.update("s", "b", 11).unwrap();
    store.update("s", "a", 2).unwrap();
    store.delete_variable("s", "a").unwrap();
    let got: Vec<(String, EventKind, u64)> = w
        .try_iter()
        .map(|e| (e.variable_name().to_string(), e.kind(), e.version()))
        .collect();
    assert_eq!(
        got,
        [
            ("a".into(), EventKind::Initial, 0),
            ("b".into(), EventKind::Initial, 0),
            ("b".into(), EventKind::Changed, 1),
            ("a".into(), EventKind::Changed, 1),
            ("a".into(), EventKind::Deleted, 2),
        ]
    );
    // The watch goes on with no variables left; a new one appears.
    store
        .register("s", VarDef::new("c", VarType::Integer, 0))
        .unwrap();
    assert_eq!(next(&mut w).variable_name(), "c");
}

#[test]
fn watch_session_resync_finds_new_and_deleted_variables() {
    let store = store_with(&[("a", 1), ("gone", 0)]);
    let mut w = store.watch_session("s", WatchOptions::new().capacity(2)).unwrap();
    assert_eq!(w.try_iter().count(), 2);
    store.delete_variable("s", "gone").unwrap();
    store
        .register("s", VarDef::new("new", VarType::Integer, 5))
        .unwrap();
    for i in 2..=10 {
        store.update("s", "a", i).unwrap();
    }
    let got: Vec<(String, EventKind)> = w
        .try_iter()
        .map(|e| (e.variable_name().to_string(), e.kind()))
        .collect();
    assert!(got.contains(&("new".into(), EventKind::Initial)), "{got:?}");
    assert!(got.contains(&("gone".into(), EventKind::Deleted)), "{got:?}");
    assert!(
        got.contains(&("a".into(), EventKind::Lagged { first: 1, last: 8 })),
        "{got:?}"
    );
    let last_a = got.iter().rev().find(|(n, _)| n == "a").unwrap();
    assert_eq!(last_a.1, EventKind::Changed);
}

#[test]
fn watch_capacity_beyond_log_grows_it() {
    let store = SessionStore::new();
    store.create_session("s", SessionOptions::new()).unwrap();
    store
        .register("s", VarDef::new("x", VarType::Integer, 0))
        .unwrap();
    let mut w = store
        .watch("s", ["x"], WatchOptions::new().capacity(100))
        .unwrap();
    for i in 1..=100 {
        store.update("s", "x", i).unwrap();
    }
    let kinds: Vec<EventKind> = w.try_iter().map(|e| e.kind()).collect();
    assert_eq!(kinds.len(), 101);
    assert!(!kinds.iter().any(|k| matches!(k, EventKind::Lagged { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_stream_under_tokio() {
    let store = store_with(&[("x", 0)]);
    let mut w = store.watch("s", ["x"], WatchOptions::new()).unwrap();
    let task = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(e) = w.recv_async().await {
            match e.value() {
                Some(v) => got.push(v.as_i64().unwrap()),
                None => assert_eq!(e.kind(), EventKind::SessionClosed),
            }
        }
        got
    });
    let writer = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            for i in 1..=500 {
                store.update("s", "x", i).unwrap();
            }
            store.delete_session("s").unwrap();
        })
    };
    writer.await.unwrap();
    let got = tokio::time::timeout(LONG, task).await.unwrap().unwrap();
    assert_eq!(got, (0..=500).collect::<Vec<_>>());
}

#[tokio::test]
async fn async_throttled_watch_is_woken_by_the_timer() {
    let store = store_with(&[("x", 0)]);
    let mut w = store
        .watch(
            "s",
            ["x"],
            WatchOptions::new()
                .include_initial(false)
                .throttle(Duration::from_millis(30)),
        )
        .unwrap();
    store.update("s", "x", 1).unwrap();
    let first = tokio::time::timeout(LONG, w.recv_async()).await.unwrap().unwrap();
    assert_eq!(int(&first), 1); // the first change goes through; the interval starts
    store.update("s", "x", 2).unwrap(); // held back until the interval passes
    // Nothing wakes the task but the timer.
    let second = tokio::time::timeout(LONG, w.recv_async()).await.unwrap().unwrap();
    assert_eq!((int(&second), second.skipped()), (2, 0));
}

// ----- regressions from review ----------------------------------------------

/// Coalescing across resyncs with a concurrent writer: every version is
/// either delivered or counted as skipped, exactly once.
#[test]
fn coalescing_skip_counts_add_up_under_overflow() {
    let store = store_with(&[("x", 0)]);
    let mut w = store
        .watch("s", ["x"], WatchOptions::new().coalesce().capacity(4))
        .unwrap();
    const N: i64 = 20_000;
    let writer = {
        let store = store.clone();
        thread::spawn(move || {
            for i in 1..=N {
                store.update("s", "x", i).unwrap();
            }
        })
    };
    let mut accounted = 0u64;
    let mut skipped = 0u64;
    loop {
        let e = next(&mut w);
        accounted += 1 + e.skipped();
        skipped += e.skipped();
        if e.version() == N as u64 {
            break;
        }
    }
    writer.join().unwrap();
    // Versions 0..=N: each delivered once or passed over once.
    assert_eq!(accounted, N as u64 + 1);
    assert_eq!(w.stats().versions_skipped, skipped);
}

#[test]
fn huge_timeouts_and_intervals_do_not_overflow() {
    let store = store_with(&[("x", 0)]);
    let mut w = store.watch("s", ["x"], WatchOptions::new()).unwrap();
    assert!(w.recv_timeout(Duration::MAX).unwrap().is_initial());
    let mut t = store
        .watch(
            "s",
            ["x"],
            WatchOptions::new().include_initial(false).throttle(Duration::MAX),
        )
        .unwrap();
    store.update("s", "x", 1).unwrap();
    assert_eq!(int(&t.try_recv().unwrap()), 1);
    store.update("s", "x", 2).unwrap();
    assert_eq!(t.try_recv().unwrap_err(), TryRecvError::Empty); // held back
}

#[test]
fn out_of_range_log_sizes_are_clamped() {
    let mut config = StoreConfig::new();
    config.max_event_log = 0;
    let store = SessionStore::with_config(config);
    store.create_session("s", SessionOptions::new()).unwrap();
    store
        .register("s", VarDef::new("x", VarType::Integer, 0))
        .unwrap();
    let mut w = store
        .watch("s", ["x"], WatchOptions::new().capacity(usize::MAX))
        .unwrap();
    store.update("s", "x", 1).unwrap();
    assert!(next(&mut w).is_initial());
    assert_eq!(int(&next(&mut w)), 1);
}

/// A waker that polls the watch again from inside `wake` (as some executors
/// do) must not deadlock on the watch's signal lock.
#[test]
fn reentrant_waker_does_not_deadlock() {
    use std::sync::Mutex;
    use std::task::{Context, Wake, Waker};

    struct Repoll(Mutex<Option<Arc<Mutex<Watch>>>>);
    impl Wake for Repoll {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            let watch = self.0.lock().unwrap().clone();
            if let Some(w) = watch {
                let waker = Waker::from(self.clone());
                let mut cx = Context::from_waker(&waker);
                // Take what is there, then poll once more so that the watch
                // arms itself again, from inside `wake`.
                let mut w = w.lock().unwrap();
                while w.poll_recv(&mut cx).is_ready() {}
            }
        }
    }

    let store = store_with(&[("x", 0)]);
    let watch = Arc::new(Mutex::new(
        store
            .watch("s", ["x"], WatchOptions::new().include_initial(false))
            .unwrap(),
    ));
    let repoll = Arc::new(Repoll(Mutex::new(Some(watch.clone()))));
    let waker = Waker::from(repoll.clone());
    let mut cx = Context::from_waker(&waker);
    assert!(watch.lock().unwrap().poll_recv(&mut cx).is_pending());
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let writer = {
        let store = store.clone();
        thread::spawn(move || {
            store.update("s", "x", 1).unwrap(); // wakes the waker, which re-polls
            done_tx.send(()).unwrap();
        })
    };
    done_rx
        .recv_timeout(LONG)
        .expect("the write deadlocked inside the waker");
    writer.join().unwrap();
    *repoll.0.lock().unwrap() = None;
}
