//! The durable store against the engines it could have been built on, in
//! one run (feature `durable`):
//!
//! ```text
//! cargo bench --features durable --bench durable          # VARWATCH_BENCH_QUICK=1 for a smoke run
//! ```
//!
//! * **engine**: one commit of the same ~120 bytes made durable, p50/p99:
//!   an append of one checked block and `fdatasync` (what varwatch's
//!   journal does) against redb (a B-tree database, one write transaction
//!   per commit, `Durability::Immediate`);
//! * **update**: a durable `update` (`Durability::Always`) against the
//!   append + `fdatasync` of the same bytes;
//! * **group commit**: commits per second with 1, 4 and 16 writers, each
//!   of its own session;
//! * **recovery**: the time to open a store whose journal holds N
//!   records, and the disk bytes per live variable after a snapshot.
//!
//! Everything runs in a temporary directory of `$TMPDIR`, on whatever disk
//! that is: the figures are the disk's as much as the code's, which is why
//! each is set beside a baseline measured on the same disk in the same run.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use varwatch::durable::{Durability, DurableOptions};
use varwatch::{SessionOptions, SessionStore, StoreConfig, VarDef, VarType};

fn quick() -> bool {
    std::env::var_os("VARWATCH_BENCH_QUICK").is_some()
}

struct TempDir(PathBuf);
impl TempDir {
    fn new(what: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("varwatch-bench-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn percentiles(mut xs: Vec<Duration>) -> (Duration, Duration) {
    xs.sort();
    let at = |q: f64| xs[((xs.len() as f64 - 1.0) * q) as usize];
    (at(0.5), at(0.99))
}

/// The bytes one update puts in the journal (about): a record of ~120 B.
const RECORD: usize = 120;

/// Append one block of `RECORD` bytes and `fdatasync`, `n` times.
fn raw_append(n: usize) -> Vec<Duration> {
    let dir = TempDir::new("raw");
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.0.join("log"))
        .unwrap();
    let block = vec![7u8; RECORD + 12];
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f.write_all(&block).unwrap();
            f.sync_data().unwrap();
            t.elapsed()
        })
        .collect()
}

/// One redb write transaction of `RECORD` bytes per commit, `n` times.
fn redb_commit(n: usize) -> Vec<Duration> {
    const T: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("t");
    let dir = TempDir::new("redb");
    let db = redb::Database::create(dir.0.join("db")).unwrap();
    let value = vec![7u8; RECORD];
    (0..n as u64)
        .map(|i| {
            let t = Instant::now();
            let tx = db.begin_write().unwrap();
            {
                let mut table = tx.open_table(T).unwrap();
                table.insert(i % 64, value.as_slice()).unwrap();
            }
            tx.commit().unwrap();
            t.elapsed()
        })
        .collect()
}

fn durable_updates(n: usize) -> Vec<Duration> {
    let dir = TempDir::new("upd");
    let (s, _) = SessionStore::open(&dir.0, StoreConfig::new(), DurableOptions::new()).unwrap();
    s.create_session("s", SessionOptions::new()).unwrap();
    s.register("s", VarDef::new("x", VarType::String, "")).unwrap();
    let value = "x".repeat(40);
    (0..n)
        .map(|i| {
            let v = format!("{value}{i}");
            let t = Instant::now();
            s.update("s", "x", v).unwrap();
            t.elapsed()
        })
        .collect()
}

/// Commits per second of `writers` threads, each writing its own session.
/// Commits per second, and the mean number of commits per sync.
fn group_commit(writers: usize, durability: Durability, run: Duration) -> (f64, f64) {
    let dir = TempDir::new(&format!("group{writers}"));
    let opts = DurableOptions::new().durability(durability);
    let (s, _) = SessionStore::open(&dir.0, StoreConfig::new(), opts).unwrap();
    for w in 0..writers {
        let id = format!("s{w}");
        s.create_session(&id, SessionOptions::new()).unwrap();
        s.register(&id, VarDef::new("x", VarType::Integer, 0)).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let (s, stop, count) = (s.clone(), stop.clone(), count.clone());
            std::thread::spawn(move || {
                let id = format!("s{w}");
                let mut i = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    s.update(&id, "x", i).unwrap();
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let t = Instant::now();
    std::thread::sleep(run);
    stop.store(true, Ordering::Relaxed);
    for th in threads {
        th.join().unwrap();
    }
    let rate = count.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64();
    let stats = s.stats();
    (
        rate,
        stats.journal_commits as f64 / stats.journal_syncs.max(1) as f64,
    )
}

/// Opens a store whose journal holds `records` updates of 1 000 variables;
/// returns the open time and the disk bytes per variable after a snapshot.
fn recovery(records: usize) -> (Duration, f64) {
    let dir = TempDir::new("recovery");
    let opts = || {
        DurableOptions::new()
            .durability(Durability::Never)
            .compact_after(u64::MAX)
    };
    {
        let (s, _) = SessionStore::open(&dir.0, StoreConfig::new(), opts()).unwrap();
        s.create_session("s", SessionOptions::new()).unwrap();
        for i in 0..1000 {
            s.register("s", VarDef::new(format!("v{i}"), VarType::Integer, 0))
                .unwrap();
        }
        for k in 0..records {
            s.update("s", &format!("v{}", k % 1000), k as i64).unwrap();
        }
    }
    let t = Instant::now();
    let (s, r) = SessionStore::open(&dir.0, StoreConfig::new(), opts()).unwrap();
    let took = t.elapsed();
    assert!(r.entries as usize >= records);
    s.compact().unwrap();
    drop(s);
    let bytes: u64 = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    (took, bytes as f64 / 1000.0)
}

fn main() {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if filter.as_deref().is_some_and(|f| !"durable".contains(f)) {
        return;
    }
    let n = if quick() { 20 } else { 3000 };
    let run = if quick() {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(2)
    };
    let show = |d: Duration| format!("{:.1} µs", d.as_secs_f64() * 1e6);

    // In rounds, taking turns: the disk's mood drifts over seconds, and
    // each figure is set against the others.
    let (mut raw, mut redb, mut upd) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..10 {
        raw.extend(raw_append(n / 10));
        redb.extend(redb_commit(n / 10));
        upd.extend(durable_updates(n / 10));
    }
    let (raw50, raw99) = percentiles(raw);
    let (redb50, redb99) = percentiles(redb);
    let (upd50, upd99) = percentiles(upd);
    println!(
        "durable   engine: append+fdatasync p50 {} p99 {}   redb commit p50 {} p99 {}   ratio {:.2}x / {:.2}x",
        show(raw50),
        show(raw99),
        show(redb50),
        show(redb99),
        redb50.as_secs_f64() / raw50.as_secs_f64(),
        redb99.as_secs_f64() / raw99.as_secs_f64()
    );
    println!(
        "durable   update (Always): p50 {} p99 {}   against append+fdatasync: {:.2}x / {:.2}x",
        show(upd50),
        show(upd99),
        upd50.as_secs_f64() / raw50.as_secs_f64(),
        upd99.as_secs_f64() / raw99.as_secs_f64()
    );
    let (one, _) = group_commit(1, Durability::Always, run);
    for w in [4, 16] {
        let (many, group) = group_commit(w, Durability::Always, run);
        // The same writers with no sync at all: what the CPUs allow, the
        // ceiling any sharing of syncs can reach on this machine.
        let (ceiling, _) = group_commit(w, Durability::Never, run);
        println!(
            "durable   group commit: {w:>2} writers {many:>9.0} commits/s   1 writer {one:>9.0}/s   ratio {:.2}x   {group:.1} commits per sync   (no sync at all: {ceiling:.0}/s)",
            many / one,
        );
    }
    let records = if quick() { 10_000 } else { 1_000_000 };
    let (took, per_var) = recovery(records);
    println!(
        "durable   recovery: {records} journal records opened in {:.2} s; after a snapshot {per_var:.0} bytes on disk per live variable",
        took.as_secs_f64()
    );
}
