//! varwatch side by side with its peers, in one criterion run.
//!
//! `cargo bench --bench compare` runs everything; `cargo bench --bench compare
//! -- read` one workload. Set `VARWATCH_BENCH_QUICK=1` for a smoke run with
//! small sizes. Every workload uses the same payload for every peer: a
//! `varwatch::Value` (a small enum holding an `Arc<str>`).
//!
//! Cross-thread latency percentiles (pingpong) and throughput runs (pipe) are
//! in `benches/latency.rs`; memory per idle watch in `benches/memory.rs`.

use std::hint::black_box;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use parking_lot::RwLock;
use varwatch::{SessionOptions, SessionStore, Value, VarDef, VarType, Watch, WatchOptions};

fn quick() -> bool {
    std::env::var_os("VARWATCH_BENCH_QUICK").is_some()
}

fn payload(i: u64) -> Value {
    Value::String(Arc::from(format!("value-{i}")))
}

/// A store with session "s" and a string variable "x".
fn store_with_x() -> SessionStore {
    let store = SessionStore::new();
    store.create_session("s", SessionOptions::new()).unwrap();
    store
        .register("s", VarDef::new("x", VarType::String, payload(0)))
        .unwrap();
    store
}

fn fanout_sizes() -> Vec<usize> {
    if quick() {
        vec![1, 100]
    } else {
        vec![1, 10, 100, 1_000, 10_000]
    }
}

// ----- read -----------------------------------------------------------------

fn read(c: &mut Criterion) {
    let mut g = c.benchmark_group("read");
    let store = store_with_x();
    let reader = store.reader("s", "x").unwrap();
    g.bench_function("varwatch/peek", |b| {
        b.iter(|| reader.with_value(|v| black_box(v.as_str().map(str::len))))
    });
    g.bench_function("varwatch/owned", |b| b.iter(|| black_box(reader.load())));
    g.bench_function("varwatch/get_by_name", |b| {
        b.iter(|| black_box(store.get("s", "x").unwrap()))
    });

    let swap = ArcSwap::from_pointee(payload(0));
    g.bench_function("arc_swap/load", |b| {
        b.iter(|| black_box(swap.load().as_str().map(str::len)))
    });
    g.bench_function("arc_swap/load_full", |b| b.iter(|| black_box(swap.load_full())));

    let (tx, rx) = tokio::sync::watch::channel(payload(0));
    g.bench_function("tokio_watch/borrow", |b| {
        b.iter(|| black_box(rx.borrow().as_str().map(str::len)))
    });
    let lock = RwLock::new(Arc::new(payload(0)));
    g.bench_function("rwlock_arc/read_clone", |b| {
        b.iter(|| black_box(lock.read().clone()))
    });
    drop(tx);
    g.finish();
}

// ----- write0 ---------------------------------------------------------------

fn write0(c: &mut Criterion) {
    let mut g = c.benchmark_group("write0");
    let values: Vec<Value> = (0..1024).map(payload).collect();
    let store = store_with_x();
    let mut i = 0usize;
    let writer = store.writer("s", "x").unwrap();
    g.bench_function("varwatch/set", |b| {
        b.iter(|| {
            i += 1;
            writer.set(values[i & 1023].clone()).unwrap()
        })
    });
    g.bench_function("varwatch/update", |b| {
        b.iter(|| {
            i += 1;
            store.update("s", "x", values[i & 1023].clone()).unwrap()
        })
    });
    let (tx, _rx) = tokio::sync::watch::channel(payload(0));
    g.bench_function("tokio_watch/send_replace", |b| {
        b.iter(|| {
            i += 1;
            black_box(tx.send_replace(values[i & 1023].clone()))
        })
    });
    let swap = ArcSwap::from_pointee(payload(0));
    g.bench_function("arc_swap/store", |b| {
        b.iter(|| {
            i += 1;
            swap.store(Arc::new(values[i & 1023].clone()))
        })
    });
    let lock = RwLock::new(Arc::new(payload(0)));
    g.bench_function("rwlock_arc/write", |b| {
        b.iter(|| {
            i += 1;
            *lock.write() = Arc::new(values[i & 1023].clone())
        })
    });
    g.finish();
}

// ----- fanout: writer cost --------------------------------------------------

/// The writer's cost per write with N watchers that are idle (not reading).
fn fanout_writer(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout_writer");
    let values: Vec<Value> = (0..1024).map(payload).collect();
    for n in fanout_sizes() {
        let mut i = 0usize;
        let store = store_with_x();
        let watches: Vec<Watch> = (0..n)
            .map(|_| {
                store
                    .watch("s", ["x"], WatchOptions::new().include_initial(false))
                    .unwrap()
            })
            .collect();
        g.bench_with_input(BenchmarkId::new("varwatch", n), &n, |b, _| {
            b.iter(|| {
                i += 1;
                store.update("s", "x", values[i & 1023].clone()).unwrap()
            })
        });
        let coalescing: Vec<Watch> = (0..n)
            .map(|_| {
                store
                    .watch("s", ["x"], WatchOptions::new().coalesce().include_initial(false))
                    .unwrap()
            })
            .collect();
        drop(watches);
        g.bench_with_input(BenchmarkId::new("varwatch_coalescing", n), &n, |b, _| {
            b.iter(|| {
                i += 1;
                store.update("s", "x", values[i & 1023].clone()).unwrap()
            })
        });
        drop(coalescing);

        let (btx, _brx) = tokio::sync::broadcast::channel::<Value>(1024);
        let receivers: Vec<_> = (0..n).map(|_| btx.subscribe()).collect();
        g.bench_with_input(BenchmarkId::new("tokio_broadcast", n), &n, |b, _| {
            b.iter(|| {
                i += 1;
                btx.send(values[i & 1023].clone()).unwrap()
            })
        });
        drop(receivers);

        let (wtx, _wrx) = tokio::sync::watch::channel(payload(0));
        let receivers: Vec<_> = (0..n).map(|_| wtx.subscribe()).collect();
        g.bench_with_input(BenchmarkId::new("tokio_watch", n), &n, |b, _| {
            b.iter(|| {
                i += 1;
                wtx.send_replace(values[i & 1023].clone())
            })
        });
        drop(receivers);

        let pairs: Vec<_> = (0..n).map(|_| crossbeam_channel::bounded::<Value>(16)).collect();
        g.bench_with_input(BenchmarkId::new("crossbeam_vec", n), &n, |b, _| {
            b.iter(|| {
                i += 1;
                for (tx, _) in &pairs {
                    let _ = tx.try_send(values[i & 1023].clone());
                }
            })
        });
    }
    g.finish();
}

// ----- fanout: end to end ---------------------------------------------------

/// Writes per iteration for N watchers, so that an iteration delivers about
/// 100k-1M events.
fn writes_for(n: usize) -> usize {
    (200_000 / n).clamp(16, 1000)
}

/// Runs `drain` for each half of `items` on two threads while `write` runs
/// on this one; returns the elapsed time.
fn two_drainers<T: Send>(items: &mut [T], write: impl FnOnce(), drain: impl Fn(&mut [T]) + Sync) -> Duration {
    let mid = items.len().div_ceil(2);
    let (a, b) = items.split_at_mut(mid);
    let start = Instant::now();
    thread::scope(|s| {
        s.spawn(|| drain(a));
        s.spawn(|| drain(b));
        write();
    });
    start.elapsed()
}

/// Polls every receiver in `items` with `try_one` until each has received
/// `k` values (the count is the tuple's second field).
fn drain_all<T>(items: &mut [(T, usize)], k: usize, mut try_one: impl FnMut(&mut T) -> bool) {
    let mut left = items.len();
    while left > 0 {
        for (rx, got) in items.iter_mut() {
            if *got == k {
                continue;
            }
            while try_one(rx) {
                *got += 1;
            }
            if *got == k {
                left -= 1;
            }
        }
    }
}

/// One writer, N watchers drained by two threads: the time per delivered
/// event (per watcher per write).
fn fanout_e2e(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout_e2e");
    g.sample_size(10);
    for n in fanout_sizes() {
        let k = writes_for(n);
        let values: Vec<Value> = (1..=k as u64).map(payload).collect();
        let per_event = |d: Duration| d / (n * k) as u32;

        g.bench_with_input(BenchmarkId::new("varwatch", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let store = store_with_x();
                    let mut watches: Vec<(Watch, usize)> = (0..n)
                        .map(|_| {
                            let w = store
                                .watch("s", ["x"], WatchOptions::new().include_initial(false).capacity(k))
                                .unwrap();
                            (w, 0)
                        })
                        .collect();
                    let d = two_drainers(
                        &mut watches,
                        || {
                            for v in &values {
                                store.update("s", "x", v.clone()).unwrap();
                            }
                        },
                        |items| drain_all(items, k, |w| w.try_recv().map(black_box).is_ok()),
                    );
                    total += per_event(d);
                }
                total
            })
        });

        g.bench_with_input(BenchmarkId::new("tokio_broadcast", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (tx, _) = tokio::sync::broadcast::channel::<Value>(k.next_power_of_two());
                    let mut rxs: Vec<_> = (0..n).map(|_| (tx.subscribe(), 0usize)).collect();
                    let d = two_drainers(
                        &mut rxs,
                        || {
                            for v in &values {
                                tx.send(v.clone()).unwrap();
                            }
                        },
                        |items| drain_all(items, k, |rx| rx.try_recv().map(black_box).is_ok()),
                    );
                    total += per_event(d);
                }
                total
            })
        });

        g.bench_with_input(BenchmarkId::new("crossbeam_vec", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (txs, mut rxs): (Vec<_>, Vec<_>) = (0..n)
                        .map(|_| {
                            let (tx, rx) = crossbeam_channel::bounded::<Value>(k);
                            (tx, (rx, 0usize))
                        })
                        .unzip();
                    let d = two_drainers(
                        &mut rxs,
                        || {
                            for v in &values {
                                for tx in &txs {
                                    tx.send(v.clone()).unwrap();
                                }
                            }
                        },
                        |items| drain_all(items, k, |rx| rx.try_recv().map(black_box).is_ok()),
                    );
                    total += per_event(d);
                }
                total
            })
        });
    }
    g.finish();
}

// ----- fanout: async tasks --------------------------------------------------

/// N watchers as parked tasks on a 2-worker tokio runtime; the writer writes
/// K values; time until every task has seen all K, per delivered event.
fn fanout_async(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout_async");
    g.sample_size(10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    for n in fanout_sizes() {
        let k = writes_for(n).min(100);
        let values: Vec<Value> = (1..=k as u64).map(payload).collect();
        let per_event = |d: Duration| d / (n * k) as u32;

        g.bench_with_input(BenchmarkId::new("varwatch", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let store = store_with_x();
                    let tasks: Vec<_> = (0..n)
                        .map(|_| {
                            let mut w = store
                                .watch("s", ["x"], WatchOptions::new().include_initial(false).capacity(k))
                                .unwrap();
                            rt.spawn(async move {
                                for _ in 0..k {
                                    let e = w.recv_async().await;
                                    black_box(e.unwrap());
                                }
                            })
                        })
                        .collect();
                    let start = Instant::now();
                    for v in &values {
                        store.update("s", "x", v.clone()).unwrap();
                    }
                    rt.block_on(async {
                        for t in tasks {
                            t.await.unwrap();
                        }
                    });
                    total += per_event(start.elapsed());
                }
                total
            })
        });

        g.bench_with_input(BenchmarkId::new("tokio_broadcast", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (tx, _) = tokio::sync::broadcast::channel::<Value>(k.next_power_of_two());
                    let tasks: Vec<_> = (0..n)
                        .map(|_| {
                            let mut rx = tx.subscribe();
                            rt.spawn(async move {
                                for _ in 0..k {
                                    black_box(rx.recv().await.unwrap());
                                }
                            })
                        })
                        .collect();
                    let start = Instant::now();
                    for v in &values {
                        tx.send(v.clone()).unwrap();
                    }
                    rt.block_on(async {
                        for t in tasks {
                            t.await.unwrap();
                        }
                    });
                    total += per_event(start.elapsed());
                }
                total
            })
        });

        // Coalescing consumers, like tokio watch's below: each waits until
        // it has seen the final value, however many it skipped.
        g.bench_with_input(BenchmarkId::new("varwatch_coalescing", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let store = store_with_x();
                    let last = values.last().unwrap().clone();
                    let tasks: Vec<_> = (0..n)
                        .map(|_| {
                            let mut w = store
                                .watch("s", ["x"], WatchOptions::new().coalesce().include_initial(false))
                                .unwrap();
                            let last = last.clone();
                            rt.spawn(async move {
                                loop {
                                    let e = w.recv_async().await.unwrap();
                                    if e.value() == Some(&last) {
                                        break;
                                    }
                                }
                            })
                        })
                        .collect();
                    let start = Instant::now();
                    for v in &values {
                        store.update("s", "x", v.clone()).unwrap();
                    }
                    rt.block_on(async {
                        for t in tasks {
                            t.await.unwrap();
                        }
                    });
                    total += per_event(start.elapsed());
                }
                total
            })
        });

        g.bench_with_input(BenchmarkId::new("tokio_watch", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (tx, _) = tokio::sync::watch::channel(payload(0));
                    let last = values.last().unwrap().clone();
                    let tasks: Vec<_> = (0..n)
                        .map(|_| {
                            let mut rx = tx.subscribe();
                            let last = last.clone();
                            rt.spawn(async move {
                                // Coalescing: wait until the final value is seen.
                                loop {
                                    rx.changed().await.unwrap();
                                    if *rx.borrow_and_update() == last {
                                        break;
                                    }
                                }
                            })
                        })
                        .collect();
                    let start = Instant::now();
                    for v in &values {
                        tx.send_replace(v.clone());
                    }
                    rt.block_on(async {
                        for t in tasks {
                            t.await.unwrap();
                        }
                    });
                    total += per_event(start.elapsed());
                }
                total
            })
        });
    }
    g.finish();
}

// ----- subscribe ------------------------------------------------------------

fn subscribe(c: &mut Criterion) {
    let mut g = c.benchmark_group("subscribe");
    let store = store_with_x();
    g.bench_function("varwatch/with_initial", |b| {
        b.iter(|| drop(black_box(store.watch("s", ["x"], WatchOptions::new()).unwrap())))
    });
    // The like-for-like row: tokio subscribes on a handle it holds; so does
    // a `VarReader` (no session or name lookup).
    let reader = store.reader("s", "x").unwrap();
    let plain = WatchOptions::new().include_initial(false);
    g.bench_function("varwatch/reader", |b| {
        b.iter(|| drop(black_box(reader.watch(plain.clone()).unwrap())))
    });
    let (btx, _) = tokio::sync::broadcast::channel::<Value>(1024);
    g.bench_function("tokio_broadcast", |b| b.iter(|| drop(black_box(btx.subscribe()))));
    let (wtx, _) = tokio::sync::watch::channel(payload(0));
    g.bench_function("tokio_watch", |b| b.iter(|| drop(black_box(wtx.subscribe()))));
    g.finish();
}

// ----- sessions -------------------------------------------------------------

/// Writes on one session from one thread vs on two sessions from two
/// threads: the second should take about as long for twice the writes.
fn sessions(c: &mut Criterion) {
    let mut g = c.benchmark_group("sessions");
    let m = if quick() { 10_000 } else { 200_000 };
    let store = SessionStore::new();
    for s in ["a", "b"] {
        store.create_session(s, SessionOptions::new()).unwrap();
        store.register(s, VarDef::new("x", VarType::Integer, 0)).unwrap();
    }
    let run = |session: &str, base: i64| {
        for i in 1..=m {
            store.update(session, "x", base + i).unwrap();
        }
    };
    let mut base = 0i64;
    g.bench_function("1_thread", |b| {
        b.iter(|| {
            base += m;
            run("a", base);
        })
    });
    g.bench_function("2_threads", |b| {
        b.iter(|| {
            base += m;
            thread::scope(|s| {
                s.spawn(|| run("a", base));
                s.spawn(|| run("b", base));
            });
        })
    });
    g.finish();
}

fn config() -> Criterion {
    let c = Criterion::default();
    if quick() {
        c.warm_up_time(Duration::from_millis(50))
            .measurement_time(Duration::from_millis(200))
            .sample_size(10)
    } else {
        c.warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
    }
}

criterion_group! {
    name = benches;
    config = config();
    targets = read, write0, fanout_writer, fanout_e2e, fanout_async, subscribe, sessions
}
criterion_main!(benches);
