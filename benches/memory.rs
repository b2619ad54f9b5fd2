//! Bytes per idle watcher at 100k watchers, and per empty session at 100k
//! sessions, as the resident-set growth divided by N, each measured in a
//! fresh process.
//!
//! `cargo bench --bench memory` (Linux: reads `/proc/self/statm`).
//! `VARWATCH_BENCH_QUICK=1` uses 10k watchers.

#[path = "common/mod.rs"]
mod common;

use std::hint::black_box;
use std::io::Write;
use std::process::Command;
use std::sync::Arc;

use varwatch::{SessionOptions, SessionStore, Value, VarDef, VarType, WatchOptions};

const KINDS: [&str; 7] = [
    "empty_session",
    "varwatch",
    "varwatch_drained",
    "tokio_broadcast",
    "tokio_watch",
    "crossbeam_bounded16",
    "crossbeam_unbounded",
];

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn payload() -> Value {
    Value::String(Arc::from("value"))
}

/// Creates `n` idle watchers of one value and returns the RSS growth.
fn measure(kind: &str, n: usize) -> usize {
    match kind {
        "empty_session" => {
            let store = SessionStore::new();
            let ids: Vec<String> = (0..n).map(|i| format!("session-{i:06}")).collect();
            let before = rss_bytes();
            for id in &ids {
                store.create_session(id, SessionOptions::new()).unwrap();
            }
            let after = rss_bytes();
            black_box(&store);
            after - before
        }
        "varwatch" | "varwatch_drained" => {
            let store = SessionStore::new();
            store.create_session("s", SessionOptions::new()).unwrap();
            store
                .register("s", VarDef::new("x", VarType::String, payload()))
                .unwrap();
            let drained = kind == "varwatch_drained";
            let before = rss_bytes();
            let mut ws: Vec<_> = (0..n)
                .map(|_| {
                    store
                        .watch("s", ["x"], WatchOptions::new().include_initial(drained))
                        .unwrap()
                })
                .collect();
            if drained {
                for w in &mut ws {
                    black_box(w.try_recv().unwrap());
                }
            }
            let after = rss_bytes();
            black_box(&ws);
            after - before
        }
        "tokio_broadcast" => {
            let (tx, _) = tokio::sync::broadcast::channel::<Value>(1024);
            let before = rss_bytes();
            let rs: Vec<_> = (0..n).map(|_| tx.subscribe()).collect();
            let after = rss_bytes();
            black_box(&rs);
            after - before
        }
        "tokio_watch" => {
            let (tx, _) = tokio::sync::watch::channel(payload());
            let before = rss_bytes();
            let rs: Vec<_> = (0..n).map(|_| tx.subscribe()).collect();
            let after = rss_bytes();
            black_box(&rs);
            after - before
        }
        "crossbeam_bounded16" => {
            let before = rss_bytes();
            let cs: Vec<_> = (0..n).map(|_| crossbeam_channel::bounded::<Value>(16)).collect();
            let after = rss_bytes();
            black_box(&cs);
            after - before
        }
        "crossbeam_unbounded" => {
            let before = rss_bytes();
            let cs: Vec<_> = (0..n).map(|_| crossbeam_channel::unbounded::<Value>()).collect();
            let after = rss_bytes();
            black_box(&cs);
            after - before
        }
        other => panic!("unknown kind {other}"),
    }
}

fn main() {
    let n = if std::env::var_os("VARWATCH_BENCH_QUICK").is_some() {
        10_000
    } else {
        100_000
    };
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let grown = measure(&args[i + 1], n);
        println!("{grown}");
        return;
    }
    let filter: Option<&String> = args.iter().skip(1).find(|a| !a.starts_with('-'));
    if filter.is_some_and(|f| !"memory".contains(f.as_str()) && !KINDS.iter().any(|k| k.contains(f.as_str())))
    {
        return;
    }
    let dir = common::out_dir();
    // Smoke runs (quick mode) must not overwrite real results.
    let name = if n == 100_000 {
        "memory.jsonl"
    } else {
        "memory-quick.jsonl"
    };
    let mut out = std::fs::File::create(dir.join(name)).unwrap();
    let exe = std::env::current_exe().unwrap();
    for kind in KINDS {
        let child = Command::new(&exe).args(["--child", kind]).output().unwrap();
        let grown: usize = String::from_utf8_lossy(&child.stdout).trim().parse().unwrap_or(0);
        let per = grown as f64 / n as f64;
        if kind == "empty_session" {
            println!(
                "memory    {kind:<20} {per:>8.1} bytes per empty session ({n} sessions: {:.1} MB)",
                grown as f64 / 1e6
            );
        } else {
            println!("memory    {kind:<20} {per:>8.1} bytes per idle watcher ({n} watchers)");
        }
        writeln!(
            out,
            "{{\"workload\":\"memory\",\"name\":\"{kind}\",\"bytes_per_watcher\":{per},\"n\":{n}}}"
        )
        .unwrap();
    }
}
