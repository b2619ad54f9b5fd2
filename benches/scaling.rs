//! Scaling with threads, side by side with the peers in one run.
//!
//! `cargo bench --bench scaling` (`VARWATCH_BENCH_QUICK=1` for a smoke run;
//! `cargo bench --bench scaling -- own` for the workloads whose name has
//! `own`). For T = 1, 2, 4, … up to the available cores:
//!
//! * `own`: T threads, each writing a variable of its own session
//!   (varwatch through a `VarWriter`; each peer an instance per thread);
//! * `shared`: T threads writing one variable (one peer instance);
//! * `reads`: T threads taking owned snapshots of one variable while one
//!   more thread writes it every few microseconds.
//!
//! Every peer's per-thread cell is cache-padded (128 bytes), so that false
//! sharing flatters no one; varwatch's sessions are separate allocations as
//! they are in use. Each figure is the median of five rounds of a fixed
//! number of operations per thread, started together behind a barrier:
//! operations per second over all threads, and the speed-up over T = 1.

#[path = "common/mod.rs"]
mod common;

use std::hint::black_box;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use parking_lot::RwLock;
use varwatch::{SessionOptions, SessionStore, Value, VarDef, VarType};

fn quick() -> bool {
    std::env::var_os("VARWATCH_BENCH_QUICK").is_some()
}

/// A value on a cache line pair of its own.
#[repr(align(128))]
struct Padded<T>(T);

fn payloads() -> Arc<Vec<Value>> {
    Arc::new(
        (0..1024)
            .map(|i| Value::String(Arc::from(format!("value-{i}"))))
            .collect(),
    )
}

/// Thread counts: powers of two up to the available cores, and the core
/// count itself.
fn thread_counts() -> Vec<usize> {
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let mut ts: Vec<usize> = std::iter::successors(Some(1usize), |t| Some(t * 2))
        .take_while(|&t| t <= cores)
        .collect();
    if *ts.last().unwrap() != cores {
        ts.push(cores);
    }
    if ts.len() == 1 {
        ts.push(2); // on one core, T = 2 at least shows the cost of sharing it
    }
    ts
}

/// Runs `op(thread, i)` for `i` in `0..n` on each of `t` threads, started
/// together; returns operations per second over all threads (median of
/// `rounds`). `setup(thread)` runs before the barrier.
fn measure<S, F>(t: usize, n: usize, rounds: usize, setup: S) -> f64
where
    S: Fn(usize) -> F + Sync,
    F: FnMut(usize) + Send,
{
    let mut rates: Vec<f64> = (0..rounds)
        .map(|_| {
            let barrier = Barrier::new(t + 1);
            let elapsed = thread::scope(|s| {
                let handles: Vec<_> = (0..t)
                    .map(|k| {
                        let mut op = setup(k);
                        let barrier = &barrier;
                        s.spawn(move || {
                            barrier.wait();
                            for i in 0..n {
                                op(i);
                            }
                            Instant::now()
                        })
                    })
                    .collect();
                barrier.wait();
                let start = Instant::now();
                let end = handles.into_iter().map(|h| h.join().unwrap()).max().unwrap();
                end - start
            });
            (t * n) as f64 / elapsed.as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

/// Runs `reads` with one more thread writing every few microseconds.
fn with_writer<W: FnMut(usize) + Send>(mut write: W, reads: impl FnOnce() -> f64) -> f64 {
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                write(i);
                // Sleeps between writes, so that it takes no core from
                // the readers (about 10-20 000 writes a second).
                thread::sleep(Duration::from_micros(50));
            }
        });
        let r = reads();
        stop.store(true, Ordering::Relaxed);
        r
    })
}

struct Row {
    workload: &'static str,
    name: &'static str,
    threads: usize,
    ops_per_s: f64,
}

fn own(t: usize, n: usize, rounds: usize, rows: &mut Vec<Row>) {
    let values = payloads();
    let store = SessionStore::new();
    let writers: Vec<_> = (0..t)
        .map(|k| {
            let s = format!("s{k}");
            store.create_session(&s, SessionOptions::new()).unwrap();
            store
                .register(&s, VarDef::new("x", VarType::String, values[0].clone()))
                .unwrap();
            store.writer(&s, "x").unwrap()
        })
        .collect();
    let mut push = |name, ops_per_s| {
        rows.push(Row {
            workload: "own",
            name,
            threads: t,
            ops_per_s,
        })
    };
    push(
        "varwatch/set",
        measure(t, n, rounds, |k| {
            let w = writers[k].clone();
            let v = values.clone();
            move |i| {
                w.set(v[i & 1023].clone()).unwrap();
            }
        }),
    );
    let chans: Vec<_> = (0..t)
        .map(|_| Padded(tokio::sync::watch::channel(values[0].clone()).0))
        .collect();
    push(
        "tokio_watch/send_replace",
        measure(t, n, rounds, |k| {
            let c = &chans[k].0;
            let v = values.clone();
            move |i| {
                black_box(c.send_replace(v[i & 1023].clone()));
            }
        }),
    );
    let swaps: Vec<_> = (0..t)
        .map(|_| Padded(ArcSwap::from_pointee(values[0].clone())))
        .collect();
    push(
        "arc_swap/store",
        measure(t, n, rounds, |k| {
            let a = &swaps[k].0;
            let v = values.clone();
            move |i| a.store(Arc::new(v[i & 1023].clone()))
        }),
    );
    let locks: Vec<_> = (0..t)
        .map(|_| Padded(RwLock::new(Arc::new(values[0].clone()))))
        .collect();
    push(
        "rwlock_arc/write",
        measure(t, n, rounds, |k| {
            let l = &locks[k].0;
            let v = values.clone();
            move |i| {
                let new = Arc::new(v[i & 1023].clone());
                let old = std::mem::replace(&mut *l.write(), new);
                drop(old);
            }
        }),
    );
}

fn shared(t: usize, n: usize, rounds: usize, rows: &mut Vec<Row>) {
    let values = payloads();
    let store = SessionStore::new();
    store.create_session("s", SessionOptions::new()).unwrap();
    store
        .register("s", VarDef::new("x", VarType::String, values[0].clone()))
        .unwrap();
    let writer = store.writer("s", "x").unwrap();
    let mut push = |name, ops_per_s| {
        rows.push(Row {
            workload: "shared",
            name,
            threads: t,
            ops_per_s,
        })
    };
    push(
        "varwatch/set",
        measure(t, n, rounds, |_| {
            let w = writer.clone();
            let v = values.clone();
            move |i| {
                w.set(v[i & 1023].clone()).unwrap();
            }
        }),
    );
    let chan = Padded(tokio::sync::watch::channel(values[0].clone()).0);
    push(
        "tokio_watch/send_replace",
        measure(t, n, rounds, |_| {
            let c = &chan.0;
            let v = values.clone();
            move |i| {
                black_box(c.send_replace(v[i & 1023].clone()));
            }
        }),
    );
    let swap = Padded(ArcSwap::from_pointee(values[0].clone()));
    push(
        "arc_swap/store",
        measure(t, n, rounds, |_| {
            let a = &swap.0;
            let v = values.clone();
            move |i| a.store(Arc::new(v[i & 1023].clone()))
        }),
    );
    let lock = Padded(RwLock::new(Arc::new(values[0].clone())));
    push(
        "rwlock_arc/write",
        measure(t, n, rounds, |_| {
            let l = &lock.0;
            let v = values.clone();
            move |i| {
                let new = Arc::new(v[i & 1023].clone());
                let old = std::mem::replace(&mut *l.write(), new);
                drop(old);
            }
        }),
    );
}

fn reads(t: usize, n: usize, rounds: usize, rows: &mut Vec<Row>) {
    let values = payloads();
    let mut push = |name, ops_per_s| {
        rows.push(Row {
            workload: "reads",
            name,
            threads: t,
            ops_per_s,
        })
    };
    let store = SessionStore::new();
    store.create_session("s", SessionOptions::new()).unwrap();
    store
        .register("s", VarDef::new("x", VarType::String, values[0].clone()))
        .unwrap();
    let writer = store.writer("s", "x").unwrap();
    let reader = store.reader("s", "x").unwrap();
    let v = values.clone();
    push(
        "varwatch/load",
        with_writer(
            |i| {
                writer.set(v[i & 1023].clone()).unwrap();
            },
            || {
                measure(t, n, rounds, |_| {
                    let r = reader.clone();
                    move |_| {
                        black_box(r.load());
                    }
                })
            },
        ),
    );
    let (tx, rx) = tokio::sync::watch::channel(values[0].clone());
    let chan = Padded(tx);
    let v = values.clone();
    push(
        "tokio_watch/borrow_clone",
        with_writer(
            |i| {
                chan.0.send_replace(v[i & 1023].clone());
            },
            || {
                measure(t, n, rounds, |_| {
                    let r = rx.clone();
                    move |_| {
                        black_box(r.borrow().clone());
                    }
                })
            },
        ),
    );
    let swap = Padded(ArcSwap::from_pointee(values[0].clone()));
    let v = values.clone();
    push(
        "arc_swap/load_full",
        with_writer(
            |i| swap.0.store(Arc::new(v[i & 1023].clone())),
            || {
                measure(t, n, rounds, |_| {
                    let a = &swap.0;
                    move |_| {
                        black_box(a.load_full());
                    }
                })
            },
        ),
    );
    let lock = Padded(RwLock::new(Arc::new(values[0].clone())));
    let v = values.clone();
    push(
        "rwlock_arc/read_clone",
        with_writer(
            |i| {
                let new = Arc::new(v[i & 1023].clone());
                let old = std::mem::replace(&mut *lock.0.write(), new);
                drop(old);
            },
            || {
                measure(t, n, rounds, |_| {
                    let l = &lock.0;
                    move |_| {
                        black_box(l.read().clone());
                    }
                })
            },
        ),
    );
}

/// Single-thread writes, measured in alternating blocks (see the module
/// docs): `set` through a `VarWriter`, `update` by name, and the peers.
fn paired(rows: &mut Vec<Row>) {
    let values = payloads();
    let store = SessionStore::new();
    store.create_session("s", SessionOptions::new()).unwrap();
    store
        .register("s", VarDef::new("x", VarType::String, values[0].clone()))
        .unwrap();
    let writer = store.writer("s", "x").unwrap();
    let chan = Padded(tokio::sync::watch::channel(values[0].clone()).0);
    let swap = Padded(ArcSwap::from_pointee(values[0].clone()));
    let lock = Padded(RwLock::new(Arc::new(values[0].clone())));
    let (block, rounds) = if quick() { (2_000, 3) } else { (20_000, 21) };
    type Op<'a> = Box<dyn FnMut(usize) + 'a>;
    let mut ops: Vec<(&'static str, Op)> = vec![
        (
            "varwatch/set",
            Box::new(|i| {
                writer.set(values[i & 1023].clone()).unwrap();
            }),
        ),
        (
            "varwatch/update",
            Box::new(|i| {
                store.update("s", "x", values[i & 1023].clone()).unwrap();
            }),
        ),
        (
            "tokio_watch/send_replace",
            Box::new(|i| {
                black_box(chan.0.send_replace(values[i & 1023].clone()));
            }),
        ),
        (
            "arc_swap/store",
            Box::new(|i| swap.0.store(Arc::new(values[i & 1023].clone()))),
        ),
        (
            "rwlock_arc/write",
            Box::new(|i| {
                let old = std::mem::replace(&mut *lock.0.write(), Arc::new(values[i & 1023].clone()));
                drop(old);
            }),
        ),
    ];
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); ops.len()];
    let mut i = 0usize;
    for _ in 0..rounds {
        for (k, (_, op)) in ops.iter_mut().enumerate() {
            let start = Instant::now();
            for _ in 0..block {
                i += 1;
                op(i);
            }
            ns[k].push(start.elapsed().as_nanos() as f64 / block as f64);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let per_round_ratio = |a: usize, b: usize| {
        let mut r: Vec<f64> = ns[a].iter().zip(&ns[b]).map(|(x, y)| x / y).collect();
        median(&mut r)
    };
    let ratios = [
        ("update / set", per_round_ratio(1, 0)),
        ("set / tokio_watch send_replace", per_round_ratio(0, 2)),
        ("set / rwlock_arc write", per_round_ratio(0, 4)),
        ("set / arc_swap store", per_round_ratio(0, 3)),
    ];
    for (k, (name, _)) in ops.iter().enumerate() {
        let m = median(&mut ns[k].clone());
        rows.push(Row {
            workload: "paired",
            name,
            threads: 1,
            ops_per_s: 1e9 / m,
        });
    }
    for (what, r) in ratios {
        println!("scaling   paired  ratio {what:<34} {r:>6.2}x (median of per-round ratios)");
    }
}

/// A threaded workload: (threads, operations per thread, rounds, rows).
type Workload = fn(usize, usize, usize, &mut Vec<Row>);
/// A workload with its sizes bound.
type Run = Box<dyn Fn(&mut Vec<Row>)>;

fn main() {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |w: &str| {
        filter
            .as_deref()
            .is_none_or(|f| "scaling".contains(f) || w.contains(f) || f.contains(w))
    };
    let workloads: [(&str, Workload, usize); 3] = [
        ("own", own, 200_000),
        ("shared", shared, 100_000),
        ("reads", reads, 2_000_000),
    ];
    if !workloads.iter().any(|(w, ..)| wanted(w)) && !wanted("paired") {
        return;
    }
    let (scale, rounds) = if quick() { (50, 1) } else { (1, 5) };
    let all = filter.as_deref().is_none_or(|f| "scaling".contains(f));
    let mut out =
        (!quick() && all).then(|| std::fs::File::create(common::out_dir().join("scaling.jsonl")).unwrap());
    let mut runs: Vec<(&str, Run)> = vec![("paired", Box::new(paired))];
    for (workload, run, n) in workloads {
        runs.push((
            workload,
            Box::new(move |rows: &mut Vec<Row>| {
                for t in thread_counts() {
                    run(t, n / scale, rounds, rows);
                }
            }),
        ));
    }
    for (workload, run) in runs {
        if !wanted(workload) {
            continue;
        }
        let mut rows = Vec::new();
        run(&mut rows);
        for r in &rows {
            let base = rows
                .iter()
                .find(|b| b.name == r.name && b.threads == 1)
                .map_or(f64::NAN, |b| b.ops_per_s);
            let speedup = r.ops_per_s / base;
            println!(
                "scaling   {:<7} {:<26} T={:<3} {:>14.0} ops/s ({:>6.1} ns)  speed-up {:>5.2}x",
                r.workload,
                r.name,
                r.threads,
                r.ops_per_s,
                1e9 / r.ops_per_s * r.threads as f64,
                speedup
            );
            if let Some(f) = &mut out {
                writeln!(
                    f,
                    "{{\"workload\":\"scaling_{}\",\"name\":\"{}\",\"threads\":{},\"ops_per_s\":{},\"speedup\":{}}}",
                    r.workload, r.name, r.threads, r.ops_per_s, speedup
                )
                .unwrap();
            }
        }
    }
}
