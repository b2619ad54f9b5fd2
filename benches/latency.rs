//! Cross-thread workloads, reported as percentiles: on shared virtual
//! machines a thread park/unpark costs tens of microseconds and dominates, so
//! a median alone hides what matters.
//!
//! * `pingpong`: thread A sets, thread B wakes and replies, A wakes: round-trip
//!   time p50/p90/p99.
//! * `pipe`: one writer, one reader, lossless, N updates: updates/s over
//!   several runs (p10/p50/p90 of the runs).
//!
//! `cargo bench --bench latency` (or `-- pingpong` / `-- pipe`);
//! `VARWATCH_BENCH_QUICK=1` for a smoke run. Prints a table, and the same as
//! JSON lines into `varwatch-bench/latency.jsonl` in cargo's target directory for the report script.

#[path = "common/mod.rs"]
mod common;

use std::io::Write;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use varwatch::{SessionOptions, SessionStore, StoreConfig, Value, VarDef, VarType, WatchOptions};

fn quick() -> bool {
    std::env::var_os("VARWATCH_BENCH_QUICK").is_some()
}

fn payload(i: u64) -> Value {
    Value::String(Arc::from(format!("value-{i}")))
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Report {
    /// `None` in quick mode: smoke runs must not overwrite real results.
    out: Option<std::fs::File>,
}

impl Report {
    fn new() -> Report {
        if quick() {
            return Report { out: None };
        }
        let dir = common::out_dir();
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("latency.jsonl"))
            .unwrap();
        Report { out: Some(out) }
    }

    fn row(&mut self, workload: &str, name: &str, unit: &str, mut samples: Vec<f64>) {
        samples.sort_by(f64::total_cmp);
        let (p10, p50, p90, p99) = (
            pct(&samples, 0.10),
            pct(&samples, 0.50),
            pct(&samples, 0.90),
            pct(&samples, 0.99),
        );
        println!(
            "{workload:<9} {name:<18} p10 {p10:>12.1}  p50 {p50:>12.1}  p90 {p90:>12.1}  p99 {p99:>12.1}  {unit}"
        );
        let Some(out) = &mut self.out else { return };
        writeln!(
            out,
            "{{\"workload\":\"{workload}\",\"name\":\"{name}\",\"unit\":\"{unit}\",\"p10\":{p10},\"p50\":{p50},\"p90\":{p90},\"p99\":{p99},\"n\":{}}}",
            samples.len()
        )
        .unwrap();
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

// ----- pingpong -------------------------------------------------------------

/// Runs `warm + rounds` round trips, timing each; returns the last `rounds`
/// in microseconds. `round(i)` does round trip `i` (from 0).
fn timed_rounds(rounds: usize, warm: usize, mut round: impl FnMut(usize)) -> Vec<f64> {
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..rounds + warm {
        let t = Instant::now();
        round(i);
        if i >= warm {
            samples.push(micros(t.elapsed()));
        }
    }
    samples
}

fn pingpong(report: &mut Report) {
    let rounds = if quick() { 2_000 } else { 50_000 };
    let warm = rounds / 10;

    // varwatch: A writes "ping", B watches it and writes "pong", A watches that.
    {
        let store = SessionStore::new();
        store.create_session("s", SessionOptions::new()).unwrap();
        store
            .register("s", VarDef::new("ping", VarType::Integer, 0))
            .unwrap();
        store
            .register("s", VarDef::new("pong", VarType::Integer, 0))
            .unwrap();
        let mut pongs = store
            .watch("s", ["pong"], WatchOptions::new().include_initial(false))
            .unwrap();
        let mut pings = store
            .watch("s", ["ping"], WatchOptions::new().include_initial(false))
            .unwrap();
        let b = {
            let store = store.clone();
            thread::spawn(move || {
                for i in 1..=(rounds + warm) as i64 {
                    let e = pings.recv().unwrap();
                    debug_assert_eq!(e.value().unwrap().as_i64(), Some(i));
                    store.update("s", "pong", i).unwrap();
                }
            })
        };
        let samples = timed_rounds(rounds, warm, |i| {
            store.update("s", "ping", i as i64 + 1).unwrap();
            pongs.recv().unwrap();
        });
        b.join().unwrap();
        report.row("pingpong", "varwatch", "us", samples);
    }

    // crossbeam: two bounded(1) channels.
    {
        let (ptx, prx) = crossbeam_channel::bounded::<Value>(1);
        let (qtx, qrx) = crossbeam_channel::bounded::<Value>(1);
        let b = thread::spawn(move || {
            while let Ok(v) = prx.recv() {
                qtx.send(v).unwrap();
            }
        });
        let samples = timed_rounds(rounds, warm, |i| {
            ptx.send(payload(i as u64)).unwrap();
            qrx.recv().unwrap();
        });
        drop(ptx);
        b.join().unwrap();
        report.row("pingpong", "crossbeam", "us", samples);
    }

    // std mpsc.
    {
        let (ptx, prx) = std::sync::mpsc::channel::<Value>();
        let (qtx, qrx) = std::sync::mpsc::channel::<Value>();
        let b = thread::spawn(move || {
            while let Ok(v) = prx.recv() {
                qtx.send(v).unwrap();
            }
        });
        let samples = timed_rounds(rounds, warm, |i| {
            ptx.send(payload(i as u64)).unwrap();
            qrx.recv().unwrap();
        });
        drop(ptx);
        b.join().unwrap();
        report.row("pingpong", "std_mpsc", "us", samples);
    }

    // tokio watch, each side blocking on its own current-thread runtime.
    {
        let (ptx, mut prx) = tokio::sync::watch::channel(payload(0));
        let (qtx, mut qrx) = tokio::sync::watch::channel(payload(0));
        let total = rounds + warm;
        let b = thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(async {
                for _ in 0..total {
                    prx.changed().await.unwrap();
                    let v = prx.borrow_and_update().clone();
                    qtx.send_replace(v);
                }
            })
        });
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut samples = Vec::with_capacity(rounds);
        rt.block_on(async {
            for i in 0..total {
                let t = Instant::now();
                ptx.send_replace(payload(i as u64 + 1));
                qrx.changed().await.unwrap();
                qrx.borrow_and_update();
                if i >= warm {
                    samples.push(micros(t.elapsed()));
                }
            }
        });
        b.join().unwrap();
        report.row("pingpong", "tokio_watch", "us", samples);
    }
}

// ----- pipe -----------------------------------------------------------------

fn pipe(report: &mut Report) {
    let n: usize = if quick() { 50_000 } else { 1_000_000 };
    let runs = if quick() { 3 } else { 11 };
    let values: Arc<Vec<Value>> = Arc::new((0..1024).map(payload).collect());
    let rate = |d: Duration| n as f64 / d.as_secs_f64();

    let mut samples = Vec::new();
    for _ in 0..runs {
        // The watch's log holds the whole run: the writer never waits, and
        // the watch never needs to resync, so every update is delivered.
        let store = SessionStore::with_config(StoreConfig::new().max_event_log(n.next_power_of_two()));
        store.create_session("s", SessionOptions::new()).unwrap();
        store
            .register("s", VarDef::new("x", VarType::Integer, 0))
            .unwrap();
        let mut w = store
            .watch("s", ["x"], WatchOptions::new().include_initial(false).capacity(n))
            .unwrap();
        let t = Instant::now();
        let reader = thread::spawn(move || {
            for i in 1..=n as i64 {
                let e = w.recv().unwrap();
                assert_eq!(e.version(), i as u64, "lost an update");
            }
        });
        for i in 1..=n as i64 {
            store.update("s", "x", i).unwrap();
        }
        reader.join().unwrap();
        samples.push(rate(t.elapsed()));
    }
    report.row("pipe", "varwatch", "updates/s", samples);

    let mut samples = Vec::new();
    for _ in 0..runs {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Value>(1024);
        let t = Instant::now();
        let reader = thread::spawn(move || {
            for _ in 0..n {
                rx.recv().unwrap();
            }
        });
        for i in 0..n {
            tx.send(values[i & 1023].clone()).unwrap();
        }
        reader.join().unwrap();
        samples.push(rate(t.elapsed()));
    }
    report.row("pipe", "std_sync_channel", "updates/s", samples);

    let mut samples = Vec::new();
    for _ in 0..runs {
        let (tx, rx) = crossbeam_channel::bounded::<Value>(1024);
        let t = Instant::now();
        let reader = thread::spawn(move || {
            for _ in 0..n {
                rx.recv().unwrap();
            }
        });
        for i in 0..n {
            tx.send(values[i & 1023].clone()).unwrap();
        }
        reader.join().unwrap();
        samples.push(rate(t.elapsed()));
    }
    report.row("pipe", "crossbeam_bounded", "updates/s", samples);

    let mut samples = Vec::new();
    for _ in 0..runs {
        let (tx, mut rx) = tokio::sync::broadcast::channel::<Value>(1024);
        let t = Instant::now();
        let reader = thread::spawn(move || {
            for _ in 0..n {
                rx.blocking_recv().unwrap();
            }
        });
        for i in 0..n {
            // Lossless: wait for room (broadcast itself never waits).
            while tx.len() >= 1023 {
                std::hint::spin_loop();
            }
            tx.send(values[i & 1023].clone()).unwrap();
        }
        reader.join().unwrap();
        samples.push(rate(t.elapsed()));
    }
    report.row("pipe", "tokio_broadcast", "updates/s", samples);
}

fn main() {
    // `cargo bench -- <filter>`: run the workloads whose name contains it.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let selected = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let mut report = Report::new();
    if selected("pingpong") {
        pingpong(&mut report);
    }
    if selected("pipe") {
        pipe(&mut report);
    }
}
