//! The publication of a variable's current state under concurrency: what
//! readers hold never changes under them (records are reused only when
//! nobody holds them), every state read is whole (its version and value are
//! one write's), a read that starts after a write returned sees it (also
//! through a `VarReader`'s remembered state), and versions a reader sees
//! never go backwards. Checked while writers run flat out.
#![cfg(not(loom))]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

use varwatch::{SessionOptions, SessionStore, Value, VarDef, VarType, Variable};

const VARS: usize = 4;
const WRITES: u64 = 20_000;

/// The value a writer gives `var` at `version`: so any state can be checked
/// for wholeness on its own.
fn value_of(var: usize, version: u64) -> String {
    format!("v{var}@{version}")
}

fn check_whole(var: usize, v: &Variable) {
    let expected = if v.version() == 0 {
        "initial".to_string()
    } else {
        value_of(var, v.version())
    };
    assert_eq!(
        v.value().as_str(),
        Some(expected.as_str()),
        "a torn or reused state: {v:?}"
    );
}

#[test]
fn readers_hold_whole_states_that_never_change_and_see_every_completed_write() {
    let store = SessionStore::new();
    store.create_session("s", SessionOptions::new()).unwrap();
    for i in 0..VARS {
        store
            .register("s", VarDef::new(format!("x{i}"), VarType::String, "initial"))
            .unwrap();
    }
    // The version each writer has finished writing (published after `set`
    // returned).
    let done: Arc<Vec<AtomicU64>> = Arc::new((0..VARS).map(|_| AtomicU64::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..VARS)
        .map(|i| {
            let (w, done) = (store.writer("s", &format!("x{i}")).unwrap(), done.clone());
            thread::spawn(move || {
                for version in 1..=WRITES {
                    assert_eq!(w.set(value_of(i, version)).unwrap(), version);
                    done[i].store(version, Ordering::Release);
                }
            })
        })
        .collect();
    // A reader shared by two threads, and one per thread (clones).
    let shared: Vec<_> = (0..VARS)
        .map(|i| store.reader("s", &format!("x{i}")).unwrap())
        .collect();
    let shared = Arc::new(shared);
    let readers: Vec<_> = (0..3)
        .map(|k| {
            let (store, done, stop, shared) = (store.clone(), done.clone(), stop.clone(), shared.clone());
            thread::spawn(move || {
                let own: Vec<_> = shared.iter().map(Clone::clone).collect();
                let mut held: Vec<(usize, Variable)> = Vec::new();
                let mut last_seen = [0u64; VARS];
                let mut reads = 0u64;
                while !stop.load(Ordering::Acquire) {
                    for i in 0..VARS {
                        let finished = done[i].load(Ordering::Acquire);
                        let v = match (k + reads as usize) % 3 {
                            0 => shared[i].load(),
                            1 => own[i].load(),
                            _ => store.get("s", &format!("x{i}")).unwrap(),
                        };
                        reads += 1;
                        check_whole(i, &v);
                        assert!(
                            v.version() >= finished,
                            "x{i}: read version {} after version {finished} was written",
                            v.version()
                        );
                        // Per handle, versions never go backwards (the
                        // shared handle is read by others too, so only ours).
                        if (k + reads as usize - 1) % 3 == 1 {
                            assert!(v.version() >= last_seen[i], "x{i} went backwards");
                            last_seen[i] = v.version();
                        }
                        // Hold some states across many writes; they must not
                        // change under us.
                        if reads.is_multiple_of(7) {
                            held.push((i, v));
                        }
                        if held.len() > 64 {
                            let (j, old) = held.remove(0);
                            check_whole(j, &old);
                        }
                    }
                }
                for (j, old) in &held {
                    check_whole(*j, old);
                }
                reads
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Release);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(reads > 1_000, "only {reads} reads");
    for i in 0..VARS {
        let v = store.get("s", &format!("x{i}")).unwrap();
        assert_eq!(v.version(), WRITES);
        check_whole(i, &v);
        assert_eq!(shared[i].load().version(), WRITES);
    }
}

/// A reader that remembers a state learns of a deletion, and of a value
/// written by another handle, as soon as the write has returned.
#[test]
fn a_remembering_reader_sees_deletions_and_other_writers() {
    let store = SessionStore::new();
    store.create_session("s", SessionOptions::new()).unwrap();
    store
        .register("s", VarDef::new("x", VarType::Integer, 0))
        .unwrap();
    let reader = store.reader("s", "x").unwrap();
    assert_eq!(reader.load().version(), 0);
    assert_eq!(reader.load().version(), 0); // from its memory
    store.update("s", "x", 5).unwrap();
    assert_eq!(reader.load().value(), &Value::Integer(5));
    assert_eq!(reader.with_value(|v| v.as_i64()), Some(5));
    assert_eq!(reader.version(), 1);
    store.delete_variable("s", "x").unwrap();
    assert!(reader.is_deleted());
    // A clone starts without memory and reads the same.
    assert!(reader.clone().is_deleted());
}
