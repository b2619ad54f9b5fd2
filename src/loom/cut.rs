//! Write sections and consistent cuts: the session's `SeqCount` (writers
//! open a section under the write lock; readers validate), and a watch that
//! resyncs from cuts.

use loom::thread;

use super::{next, store_with_x};
use crate::seqcount::SeqCount;
use crate::sync::{Arc, AtomicU64, Mutex, Ordering};
use crate::{UpdateOptions, VarDef, VarType, WatchOptions};

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
