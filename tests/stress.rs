//! Concurrency stress: writers (single and atomic batch writes on overlapping
//! variables) against watchers that keep subscribing, receiving and dropping.
//! Every watch's event sequence is checked against the ground truth the
//! writers recorded:
//!
//! * the first event per variable is `Initial` at some version *s*, with the
//!   value that version really had;
//! * after it, per variable, every version is accounted for exactly once and
//!   in order: delivered as `Changed` (with its true value), or named by a
//!   `Lagged` marker whose range starts right after the last seen version;
//! * `Lagged` appears only in watches that overflowed;
//! * in watches that never overflowed, the events of one atomic batch arrive
//!   together;
//! * at the end the registry is empty.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

mod common;

use common::history::{self, WatchSpec};
use varwatch::{
    EventKind, SessionOptions, SessionStore, UpdateOptions, Value, VarDef, VarType, WatchEvent, WatchOptions,
};

const VARS: usize = 8;
const WRITERS: u64 = 4;
const WATCHERS: u64 = 4;
const WRITES_PER_WRITER: usize = 6_000;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What the writers did: per variable, version → value; per revision, the
/// variables it changed.
#[derive(Default)]
struct Truth {
    values: HashMap<(String, u64), i64>,
    batches: HashMap<u64, Vec<String>>,
}

fn name(i: usize) -> String {
    format!("v{i}")
}

#[test]
fn writers_and_churning_watchers_keep_every_guarantee() {
    let store = SessionStore::new();
    store.create_session("s", SessionOptions::new()).unwrap();
    let truth = Arc::new(Mutex::new(Truth::default()));
    for i in 0..VARS {
        store
            .register("s", VarDef::new(name(i), VarType::Integer, 0))
            .unwrap();
        truth.lock().unwrap().values.insert((name(i), 0), 0);
    }
    let done = Arc::new(AtomicBool::new(false));
    let unique = Arc::new(AtomicU64::new(1));
    // Per finished watch: its events and how often it overflowed.
    type History = (Vec<WatchEvent>, u64);
    let histories: Arc<Mutex<Vec<History>>> = Arc::default();

    let writers: Vec<_> = (0..WRITERS)
        .map(|t| {
            let (store, truth, unique) = (store.clone(), truth.clone(), unique.clone());
            thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t + 1));
                for _ in 0..WRITES_PER_WRITER {
                    if rng.below(4) == 0 {
                        // An atomic batch over 2..=3 distinct variables.
                        let mut idx: Vec<usize> = (0..VARS).collect();
                        let k = 2 + rng.below(2);
                        for j in 0..k {
                            let r = j + rng.below(VARS - j);
                            idx.swap(j, r);
                        }
                        let items: Vec<(String, Value)> = idx[..k]
                            .iter()
                            .map(|&i| {
                                (
                                    name(i),
                                    Value::Integer(unique.fetch_add(1, Ordering::Relaxed) as i64),
                                )
                            })
                            .collect();
                        let versions = store
                            .update_atomic("s", items.clone(), &UpdateOptions::new())
                            .unwrap();
                        // The first item read back at the version this batch
                        // gave it carries the batch's revision.
                        let var0 = store.get("s", &items[0].0).unwrap();
                        let mut t = truth.lock().unwrap();
                        for ((n, v), ver) in items.iter().zip(&versions) {
                            t.values.insert((n.clone(), *ver), v.as_i64().unwrap());
                        }
                        if var0.version() == versions[0] {
                            t.batches
                                .insert(var0.revision(), items.iter().map(|(n, _)| n.clone()).collect());
                        }
                    } else {
                        let n = name(rng.below(VARS));
                        let v = unique.fetch_add(1, Ordering::Relaxed) as i64;
                        let ver = store.update("s", &n, v).unwrap();
                        truth.lock().unwrap().values.insert((n, ver), v);
                    }
                }
            })
        })
        .collect();

    let watchers: Vec<_> = (0..WATCHERS)
        .map(|t| {
            let (store, done, histories) = (store.clone(), done.clone(), histories.clone());
            thread::spawn(move || {
                let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ (t + 7));
                let mut watches = 0;
                while !done.load(Ordering::Acquire) || watches < 20 {
                    watches += 1;
                    let capacity = [2, 8, 64, 1024][rng.below(4)];
                    let opts = WatchOptions::new().capacity(capacity);
                    let mut w = if rng.below(3) == 0 {
                        store.watch_session("s", opts).unwrap()
                    } else {
                        let k = 1 + rng.below(VARS);
                        let names: Vec<String> = (0..k).map(|_| name(rng.below(VARS))).collect();
                        store.watch("s", names, opts).unwrap()
                    };
                    let want = rng.below(3000);
                    let mut events = Vec::new();
                    for _ in 0..want {
                        let e = if rng.below(2) == 0 {
                            w.try_recv().ok()
                        } else {
                            w.recv_timeout(Duration::from_millis(1)).ok()
                        };
                        match e {
                            Some(e) => events.push(e),
                            // Nothing more will come once the writers are done.
                            None if done.load(Ordering::Acquire) => break,
                            None => {}
                        }
                        if rng.below(500) == 0 {
                            thread::sleep(Duration::from_millis(1)); // fall behind
                        }
                    }
                    let lagged = w.stats().lag_events;
                    drop(w);
                    histories.lock().unwrap().push((events, lagged));
                }
            })
        })
        .collect();

    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::Release);
    for w in watchers {
        w.join().unwrap();
    }

    assert_eq!(store.stats().watchers, 0, "registry must be empty");
    assert!(store.list_watchers("s").unwrap().is_empty());

    let truth = truth.lock().unwrap();
    let histories = histories.lock().unwrap();
    let mut checked_events = 0;
    let mut lag_markers = 0;
    for (events, lagged) in histories.iter() {
        check_history(events, *lagged, &truth);
        checked_events += events.len();
        lag_markers += events
            .iter()
            .filter(|e| matches!(e.kind(), EventKind::Lagged { .. }))
            .count();
    }
    // The test must have exercised what it checks.
    assert!(histories.len() >= (WATCHERS * 20) as usize);
    // (A loose floor: how many events the watchers catch depends on the
    // scheduler; typical runs check tens of thousands.)
    assert!(checked_events > 1_000, "only {checked_events} events checked");
    assert!(
        lag_markers > 0,
        "no watch ever overflowed: the resync path went untested"
    );
}

fn check_history(events: &[WatchEvent], lagged: u64, truth: &Truth) {
    let mut last: HashMap<&str, u64> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        let var = e.variable_name();
        match e.kind() {
            EventKind::Initial => {
                assert!(!last.contains_key(var), "second Initial for {var}");
                assert_eq!(
                    truth.values.get(&(var.to_string(), e.version())),
                    Some(&e.value().unwrap().as_i64().unwrap()),
                    "initial value of {var} at version {} is not what was written",
                    e.version()
                );
                last.insert(var, e.version());
            }
            EventKind::Changed => {
                let prev = *last
                    .get(var)
                    .unwrap_or_else(|| panic!("Changed before Initial for {var}"));
                assert_eq!(
                    e.version(),
                    prev + 1,
                    "gap or duplicate in {var}: {prev} then {}",
                    e.version()
                );
                assert_eq!(
                    truth.values.get(&(var.to_string(), e.version())),
                    Some(&e.value().unwrap().as_i64().unwrap()),
                    "value of {var} at version {} is not what was written",
                    e.version()
                );
                last.insert(var, e.version());
            }
            EventKind::Lagged { first, last: l } => {
                assert!(lagged > 0, "Lagged in a watch that never overflowed");
                let prev = last[var];
                assert_eq!(
                    first,
                    prev + 1,
                    "lag marker for {var} does not start after {prev}"
                );
                assert!(l >= first);
                last.insert(var, l);
            }
            k => panic!("unexpected {k:?}"),
        }
        // Atomic batches arrive together (checked where no resync happened).
        if lagged == 0
            && e.kind() == EventKind::Changed
            && let Some(batch) = truth.batches.get(&e.revision())
        {
            let starts_here = i == 0 || events[i - 1].revision() != e.revision();
            if starts_here {
                let watched: Vec<&String> = batch.iter().filter(|n| last.contains_key(n.as_str())).collect();
                let run = events[i..]
                    .iter()
                    .take_while(|x| x.revision() == e.revision())
                    .count();
                // The run may be cut short only by the end of what was received.
                assert!(
                    run >= watched.len() || i + run == events.len(),
                    "batch at revision {} split: {run} of {}",
                    e.revision(),
                    watched.len()
                );
            }
        }
    }
}

/// A whole-session watch that keeps overflowing while variables are
/// registered, changed and deleted: every variable it has announced is
/// eventually announced deleted, and nothing about it follows its deletion.
#[test]
fn session_watch_sees_every_deletion_through_resyncs() {
    let store = SessionStore::new();
    store.create_session("s", SessionOptions::new()).unwrap();
    store
        .register("s", VarDef::new("noise", VarType::Integer, 0))
        .unwrap();
    // Many live variables make each resync's pass over the session long, so
    // deletions land in the middle of it.
    for i in 0..500 {
        store
            .register("s", VarDef::new(format!("static{i}"), VarType::Integer, 0))
            .unwrap();
    }
    let mut w = store.watch_session("s", WatchOptions::new().capacity(2)).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let churn = {
        let (store, done) = (store.clone(), done.clone());
        thread::spawn(move || {
            for k in 0..3_000 {
                let n = format!("t{k}");
                store
                    .register("s", VarDef::new(n.as_str(), VarType::Integer, 0))
                    .unwrap();
                store.update("s", &n, 1).unwrap();
                store.update("s", "noise", k + 1).unwrap();
                store.delete_variable("s", &n).unwrap();
            }
            done.store(true, Ordering::Release);
        })
    };
    // name -> deleted?
    let mut seen: HashMap<String, bool> = HashMap::new();
    let mut handle = |e: WatchEvent| {
        let name = e.variable_name().to_string();
        if name == "noise" || name.starts_with("static") {
            return;
        }
        let deleted = seen.entry(name.clone()).or_insert(false);
        assert!(!*deleted, "event {:?} after {name} was deleted", e.kind());
        match e.kind() {
            EventKind::Deleted => *deleted = true,
            EventKind::Initial | EventKind::Changed | EventKind::Lagged { .. } => {}
            k => panic!("unexpected {k:?}"),
        }
    };
    while !done.load(Ordering::Acquire) {
        if let Ok(e) = w.recv_timeout(Duration::from_millis(1)) {
            handle(e);
        }
    }
    churn.join().unwrap();
    while let Ok(e) = w.try_recv() {
        handle(e);
    }
    assert!(w.stats().lag_events > 0, "the watch never overflowed");
    let undeleted: Vec<&String> = seen.iter().filter(|(_, d)| !**d).map(|(n, _)| n).collect();
    assert!(undeleted.is_empty(), "announced but never deleted: {undeleted:?}");
}

// ----- every delivered state existed ------------------------------------------

/// Named and whole-session watches, lossless with capacities 1..=8 (they
/// resync all the time) and larger, coalescing and throttled, against two
/// writers mixing single updates, atomic batches, registrations and
/// deletions. Every history is checked by `common::history::check`: values,
/// per-variable contiguity, revisions that never go backwards, and at every
/// group boundary a state that existed at that revision.
#[test]
fn every_state_a_watch_holds_existed() {
    const STATIC: usize = 6;
    let store = SessionStore::new();
    store.create_session("s", SessionOptions::new()).unwrap();
    // Paced (a millisecond's pause every 8 writes), so that the writers run
    // for a while whatever the machine's speed, and watchers see them.
    let workload = history::Workload::start(&store, STATIC, 2, 6_000, Some(8));
    let done = workload.done.clone();

    type Recorded = (Vec<WatchEvent>, WatchSpec);
    let histories: Arc<Mutex<Vec<Recorded>>> = Arc::default();
    let watchers: Vec<_> = (0..3u64)
        .map(|t| {
            let (store, done, histories) = (store.clone(), done.clone(), histories.clone());
            thread::spawn(move || {
                let mut rng = Rng(0xE703_7ED1_A0B4_28DB ^ (t + 3));
                while !done.load(Ordering::Acquire) {
                    let mode = rng.below(10);
                    let capacity = [1, 2, 3, 4, 5, 6, 7, 8, 64, 1024][rng.below(10)];
                    let mut opts = WatchOptions::new().capacity(capacity);
                    let coalescing = match mode {
                        0 | 1 => {
                            opts = opts.coalesce();
                            true
                        }
                        2 => {
                            opts = opts.throttle(Duration::from_micros(200));
                            true
                        }
                        _ => false,
                    };
                    let names = if rng.below(3) == 0 {
                        None
                    } else {
                        let k = 1 + rng.below(STATIC);
                        let mut names: Vec<String> = (0..k).map(|_| name(rng.below(STATIC))).collect();
                        names.sort();
                        names.dedup();
                        Some(names)
                    };
                    let mut w = match &names {
                        None => store.watch_session("s", opts).unwrap(),
                        Some(names) => store.watch("s", names, opts).unwrap(),
                    };
                    let want = rng.below(500);
                    let mut events = Vec::new();
                    for _ in 0..want {
                        if done.load(Ordering::Acquire) {
                            break;
                        }
                        let e = if rng.below(2) == 0 {
                            w.try_recv().ok()
                        } else {
                            w.recv_timeout(Duration::from_millis(1)).ok()
                        };
                        events.extend(e);
                        if rng.below(200) == 0 {
                            thread::sleep(Duration::from_millis(1)); // fall behind
                        }
                    }
                    let overflowed = w.stats().lag_events > 0;
                    drop(w);
                    let spec = WatchSpec {
                        names,
                        coalescing,
                        overflowed,
                    };
                    histories.lock().unwrap().push((events, spec));
                }
            })
        })
        .collect();

    let truth = workload.finish();
    for w in watchers {
        w.join().unwrap();
    }
    assert_eq!(store.stats().watchers, 0, "registry must be empty");

    let histories = histories.lock().unwrap();
    let (mut boundaries, mut events, mut lags) = (0, 0, 0);
    for (h, spec) in histories.iter() {
        boundaries += history::check(h, spec, &truth);
        events += h.len();
        lags += h
            .iter()
            .filter(|e| matches!(e.kind(), EventKind::Lagged { .. }))
            .count();
    }
    // The test must have exercised what it checks.
    eprintln!(
        "cuts: {} watches, {events} events, {boundaries} boundaries, {lags} lag markers",
        histories.len()
    );
    assert!(events > 1_000, "only {events} events checked");
    assert!(boundaries > 100, "only {boundaries} group boundaries checked");
    assert!(lags > 0, "no watch ever resynced");
}
