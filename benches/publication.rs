//! The candidates for publishing a variable's current record, side by side:
//! the evidence behind the choice `docs::internal` explains.
//!
//! `cargo bench --bench publication` (`VARWATCH_BENCH_QUICK=1` for a smoke
//! run). Each candidate holds an `Arc<T>` that writers replace and readers
//! clone (an owned snapshot), as a variable's cell does:
//!
//! * `arc_swap`: `ArcSwap` (a process-wide list of debt slots that every
//!   store walks);
//! * `rwlock`: `parking_lot::RwLock<Arc<T>>` per cell;
//! * `epoch`: an `AtomicPtr` from `Arc::into_raw`, readers pinned with
//!   crossbeam-epoch, replaced pointers dropped when the epoch allows
//!   (one process-wide collector);
//! * `seize`: the same with seize (a collector per store: a domain of its
//!   own).
//!
//! Workloads, for T = 1, 2, … up to the available cores (cells padded to
//! 128 bytes): `store_own` (T threads, a cell each: does a write on one core
//! slow a write on another?), `store_shared` (T threads, one cell), `load`
//! (T threads cloning one cell while another thread replaces it every 50 µs or so).
//! Median of five rounds; nanoseconds per operation per thread.

#[path = "common/mod.rs"]
mod common;

use std::hint::black_box;
use std::io::Write;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use parking_lot::RwLock;
use seize::{Collector, Guard};

type V = String;

/// What a variable's cell needs: replace the value, clone it.
trait Cell: Sync {
    fn load(&self) -> Arc<V>;
    fn store(&self, v: Arc<V>);
}

struct ArcSwapCell(ArcSwap<V>);
impl Cell for ArcSwapCell {
    fn load(&self) -> Arc<V> {
        self.0.load_full()
    }
    fn store(&self, v: Arc<V>) {
        self.0.store(v)
    }
}

struct LockCell(RwLock<Arc<V>>);
impl Cell for LockCell {
    fn load(&self) -> Arc<V> {
        self.0.read().clone()
    }
    fn store(&self, v: Arc<V>) {
        let old = std::mem::replace(&mut *self.0.write(), v);
        drop(old); // outside the lock
    }
}

/// `ptr` always holds one strong count of an `Arc<V>` (from `into_raw`).
struct EpochCell(AtomicPtr<V>);
impl EpochCell {
    fn new(v: Arc<V>) -> Self {
        EpochCell(AtomicPtr::new(Arc::into_raw(v).cast_mut()))
    }
}
impl Cell for EpochCell {
    fn load(&self) -> Arc<V> {
        let _guard = crossbeam_epoch::pin();
        let p = self.0.load(Ordering::Acquire);
        // SAFETY: `p` came from `Arc::into_raw` and its count is released
        // only by a deferred drop, which cannot run while we are pinned.
        unsafe {
            Arc::increment_strong_count(p);
            Arc::from_raw(p)
        }
    }
    fn store(&self, v: Arc<V>) {
        let guard = crossbeam_epoch::pin();
        let old = self.0.swap(Arc::into_raw(v).cast_mut(), Ordering::AcqRel) as usize;
        // SAFETY: `old` is no longer reachable from the cell; readers that
        // loaded it are pinned, so the drop waits for them.
        unsafe { guard.defer_unchecked(move || drop(Arc::from_raw(old as *const V))) };
    }
}
impl Drop for EpochCell {
    fn drop(&mut self) {
        // SAFETY: no reader remains (we have `&mut self`).
        unsafe { drop(Arc::from_raw(*self.0.get_mut())) }
    }
}

/// As `EpochCell`, with a seize collector shared by a store's cells.
struct SeizeCell {
    ptr: AtomicPtr<V>,
    collector: Arc<Collector>,
}
impl SeizeCell {
    fn new(v: Arc<V>, collector: Arc<Collector>) -> Self {
        SeizeCell {
            ptr: AtomicPtr::new(Arc::into_raw(v).cast_mut()),
            collector,
        }
    }
}
unsafe fn drop_arc(p: *mut V, _: &Collector) {
    // SAFETY: called by seize once no guard can see `p`, which holds one
    // strong count (see `SeizeCell`).
    unsafe { drop(Arc::from_raw(p)) }
}
impl Cell for SeizeCell {
    fn load(&self) -> Arc<V> {
        let guard = self.collector.enter();
        let p = guard.protect(&self.ptr, Ordering::Acquire);
        // SAFETY: protected by the guard; see `drop_arc`.
        unsafe {
            Arc::increment_strong_count(p);
            Arc::from_raw(p)
        }
    }
    fn store(&self, v: Arc<V>) {
        let guard = self.collector.enter();
        let old = guard.swap(&self.ptr, Arc::into_raw(v).cast_mut(), Ordering::AcqRel);
        // SAFETY: unreachable from the cell from now on.
        unsafe { guard.defer_retire(old, drop_arc) };
    }
}
impl Drop for SeizeCell {
    fn drop(&mut self) {
        let p = std::mem::replace(self.ptr.get_mut(), ptr::null_mut());
        // SAFETY: no reader remains (we have `&mut self`).
        unsafe { drop(Arc::from_raw(p)) }
    }
}

#[repr(align(128))]
struct Padded<T>(T);

fn quick() -> bool {
    std::env::var_os("VARWATCH_BENCH_QUICK").is_some()
}

fn thread_counts() -> Vec<usize> {
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let mut ts: Vec<usize> = std::iter::successors(Some(1usize), |t| Some(t * 2))
        .take_while(|&t| t <= cores)
        .collect();
    if *ts.last().unwrap() != cores {
        ts.push(cores);
    }
    ts
}

/// ns per operation per thread: T threads running `op` n times each
/// (median of `rounds`).
fn run<F: Fn(usize, usize) + Sync>(t: usize, n: usize, rounds: usize, op: F) -> f64 {
    let mut ns: Vec<f64> = (0..rounds)
        .map(|_| {
            let barrier = Barrier::new(t + 1);
            let (op, barrier) = (&op, &barrier);
            thread::scope(|s| {
                let hs: Vec<_> = (0..t)
                    .map(|k| {
                        s.spawn(move || {
                            barrier.wait();
                            let start = Instant::now();
                            for i in 0..n {
                                op(k, i);
                            }
                            start.elapsed()
                        })
                    })
                    .collect();
                barrier.wait();
                let worst = hs.into_iter().map(|h| h.join().unwrap()).max().unwrap();
                worst.as_nanos() as f64 / n as f64
            })
        })
        .collect();
    ns.sort_by(f64::total_cmp);
    ns[ns.len() / 2]
}

type Make = fn(Arc<V>, &Arc<Collector>) -> Box<dyn Cell + Send>;

fn candidates() -> [(&'static str, Make); 4] {
    [
        ("arc_swap", |v, _| Box::new(ArcSwapCell(ArcSwap::new(v)))),
        ("rwlock", |v, _| Box::new(LockCell(RwLock::new(v)))),
        ("epoch", |v, _| Box::new(EpochCell::new(v))),
        ("seize", |v, c| Box::new(SeizeCell::new(v, c.clone()))),
    ]
}

fn main() {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if filter
        .as_deref()
        .is_some_and(|f| !"publication".contains(f) && !f.contains("publication"))
    {
        return;
    }
    let (n, rounds) = if quick() { (20_000, 1) } else { (1_000_000, 5) };
    let values: Arc<Vec<Arc<V>>> = Arc::new((0..1024).map(|i| Arc::new(format!("value-{i}"))).collect());
    let mut out =
        (!quick()).then(|| std::fs::File::create(common::out_dir().join("publication.jsonl")).unwrap());
    let mut report = |workload: &str, name: &str, t: usize, ns: f64| {
        println!("publication {workload:<13} {name:<9} T={t:<3} {ns:>8.1} ns/op");
        if let Some(f) = &mut out {
            writeln!(
                f,
                "{{\"workload\":\"publication_{workload}\",\"name\":\"{name}\",\"threads\":{t},\"ns_per_op\":{ns}}}"
            )
            .unwrap();
        }
    };
    for t in thread_counts() {
        for (name, make) in candidates() {
            let collector = Arc::new(Collector::new());
            // Writes to a cell of its own per thread; each store makes a
            // new `Arc` and lets the old one go, as a write does.
            let cells: Vec<Padded<Box<dyn Cell + Send>>> = (0..t)
                .map(|_| Padded(make(values[0].clone(), &collector)))
                .collect();
            let ns = run(t, n, rounds, |k, i| {
                cells[k].0.store(Arc::new(values[i & 1023].as_str().to_owned()))
            });
            report("store_own", name, t, ns);
            drop(cells);
            let one = Padded(make(values[0].clone(), &collector));
            let ns = run(t, n, rounds, |_, i| {
                one.0.store(Arc::new(values[i & 1023].as_str().to_owned()))
            });
            report("store_shared", name, t, ns);
            // Loads of one cell while another thread replaces it.
            let stop = AtomicBool::new(false);
            let ns = thread::scope(|s| {
                s.spawn(|| {
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        one.0.store(Arc::new(values[i & 1023].as_str().to_owned()));
                        thread::sleep(Duration::from_micros(50));
                    }
                });
                let ns = run(t, n * 4, rounds, |_, _| {
                    black_box(one.0.load());
                });
                stop.store(true, Ordering::Relaxed);
                ns
            });
            report("load", name, t, ns);
        }
    }
}
