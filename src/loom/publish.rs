//! A variable's cell (`publish.rs`): the stamp a remembering reader
//! compares, the swap a writer makes, and records held while the writer
//! reuses allocations.

use loom::thread;

use crate::publish::{ArcCell, Cached};
use crate::sync::{Arc, AtomicU64, Ordering};
use crate::{SessionOptions, SessionStore, VarDef, VarType};

/// A remembering reader never returns a state older than a write that had
/// returned before its read began, and ends on the last one.
#[test]
fn loom_a_remembering_reader_never_misses_a_completed_write() {
    loom::model(|| {
        let cell = Arc::new(ArcCell::new(Arc::new(0u64)));
        let done = Arc::new(AtomicU64::new(0));
        let writer = {
            let (cell, done) = (cell.clone(), done.clone());
            thread::spawn(move || {
                for v in 1..=2 {
                    drop(cell.swap(Arc::new(v)));
                    done.store(v, Ordering::Release);
                }
            })
        };
        let mut cache = Cached::default();
        let mut last = 0;
        for _ in 0..2 {
            let finished = done.load(Ordering::Acquire);
            let v = *cell.load_cached(&mut cache);
            assert!(v >= finished, "read {v} after {finished} was written");
            assert!(v >= last, "went back from {last} to {v}");
            last = v;
        }
        writer.join().unwrap();
        assert_eq!(*cell.load_cached(&mut cache), 2);
    });
}

/// Through the store: a reader holds a state while a writer writes twice
/// (the second write could reuse the first's replaced record): what the
/// reader holds is one write's, and stays so.
#[test]
fn loom_a_held_state_is_never_reused() {
    loom::model(|| {
        let store = SessionStore::new();
        store.create_session("s", SessionOptions::new()).unwrap();
        store
            .register("s", VarDef::new("x", VarType::Integer, 0))
            .unwrap();
        let reader = store.reader("s", "x").unwrap();
        let writer = {
            let w = store.writer("s", "x").unwrap();
            thread::spawn(move || {
                for v in 1..=2i64 {
                    assert_eq!(w.set(v * 10).unwrap(), v as u64);
                }
            })
        };
        let held = reader.load();
        let whole = |v: &crate::Variable| v.value().as_i64() == Some(v.version() as i64 * 10);
        assert!(whole(&held), "a torn state: {held:?}");
        writer.join().unwrap();
        assert!(whole(&held), "a held state changed: {held:?}");
        assert_eq!(reader.load().version(), 2);
    });
}
