//! Remote watches on loopback: latency from a write to the remote client's
//! `recv` at 1 to 1 000 watchers, and updates/s delivered to 1, 100 and
//! 1 000 remote watchers.
//!
//! `cargo bench --features grpc --bench remote` (`VARWATCH_BENCH_QUICK=1` for
//! a smoke run). Server and clients are in this process, on 127.0.0.1; all
//! watches of one run are on one `RemoteStore`, so on one connection and
//! its one watch stream. Two kinds of subscription:
//!
//! * `distinct`: every watch differs (its capacity), so each is its own
//!   watch on the server and each write is one event per watch on the wire
//!   (batched into shared messages): the cost of multiplexing.
//! * `shared`: identical subscriptions, which the client serves from one
//!   watch on the wire: the cost of the client's fan-out.

#[path = "common/mod.rs"]
mod common;

use std::io::Write;
use std::time::{Duration, Instant};

#[allow(unused_imports)]
use varwatch::VarStore;
use varwatch::Watch;
use varwatch::transport::grpc::GrpcService;
use varwatch::transport::{RemoteConfig, RemoteStore};
use varwatch::{SessionOptions, SessionStore, VarDef, VarType, WatchOptions};

fn quick() -> bool {
    std::env::var_os("VARWATCH_BENCH_QUICK").is_some()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Starts a server for `store` on a loopback port on its own runtime.
fn serve(store: &SessionStore) -> (String, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-server")
        .enable_all()
        .build()
        .unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let svc = GrpcService::new(store.clone());
    rt.spawn(async move { svc.serve(listener, std::future::pending()).await.unwrap() });
    (addr, rt)
}

/// Drains `watches` on a runtime until each has seen version `until`;
/// each task returns its watch and the number of changes it received.
fn drain_async(
    rt: &tokio::runtime::Runtime,
    watches: Vec<Watch>,
    until: u64,
) -> Vec<tokio::task::JoinHandle<(Watch, u64)>> {
    watches
        .into_iter()
        .map(|mut w| {
            rt.spawn(async move {
                let mut changes = 0;
                loop {
                    let e = w.recv_async().await;
                    match e {
                        Some(e) => {
                            if e.kind() == varwatch::EventKind::Changed {
                                changes += 1;
                            }
                            if e.version() >= until {
                                return (w, changes);
                            }
                        }
                        None => panic!("watch ended"),
                    }
                }
            })
        })
        .collect()
}

/// Waits until the server holds no watch (a dropped remote watch is
/// cancelled asynchronously), so that one case's leftovers do not load the
/// next.
fn settle(store: &SessionStore) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !store.list_watchers("s").unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "server-side watches were not cancelled"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Server-side watches may fall 64k events behind before resyncing, so that
/// throughput counts deliveries, not skips. Watch `i` of a `distinct` run
/// differs from the others by its capacity; in a `shared` run all are alike.
fn lossless(i: usize, kind: Kind) -> WatchOptions {
    let extra = match kind {
        Kind::Distinct => i,
        Kind::Shared => 0,
    };
    WatchOptions::new()
        .include_initial(false)
        .capacity((1 << 16) + extra)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Distinct,
    Shared,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Distinct => "distinct",
            Kind::Shared => "shared",
        }
    }
}

fn main() {
    // `cargo bench --bench remote -- latency/distinct` runs the cases whose
    // name (`remote/latency/distinct/100`) contains the filter, and writes
    // no report; `cargo bench -- <another bench's workload>` runs none.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let all = filter.as_deref().is_none_or(|f| "remote".contains(f));
    let wanted = |case: &str| all || filter.as_deref().is_some_and(|f| case.contains(f));
    // (workload, kind, watchers); shared at 1 watcher is distinct at 1.
    let cases: Vec<(&str, Kind, usize)> = ["latency", "throughput"]
        .into_iter()
        .flat_map(|w| [Kind::Distinct, Kind::Shared].map(|k| (w, k)))
        .flat_map(|(w, k)| {
            let sizes: &[usize] = if w == "latency" {
                &[1, 10, 100, 1000]
            } else {
                &[1, 100, 1000]
            };
            sizes.iter().map(move |&n| (w, k, n))
        })
        .filter(|&(w, k, n)| {
            !(k == Kind::Shared && n == 1) && wanted(&format!("remote/{w}/{}/{n}", k.name()))
        })
        .collect();
    if cases.is_empty() {
        return;
    }
    let mut out = (!quick() && all).then(|| {
        let dir = common::out_dir();
        std::fs::File::create(dir.join("remote.jsonl")).unwrap()
    });
    let store = SessionStore::new();
    store.create_session("s", SessionOptions::new()).unwrap();
    store
        .register("s", VarDef::new("x", VarType::Integer, 0))
        .unwrap();
    let (addr, _server_rt) = serve(&store);
    // Client queues as deep as the server's, so that throughput counts
    // deliveries, not resyncs.
    let remote = RemoteStore::connect(&addr, RemoteConfig::new().buffer(1 << 16)).unwrap();
    let drain_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-drain")
        .enable_all()
        .build()
        .unwrap();
    let mut version = 0u64;

    // Latency at 1 to 1 000 watchers: one is timed, the others are drained
    // by tasks.
    for &(_, kind, watchers) in cases.iter().filter(|c| c.0 == "latency") {
        settle(&store);
        let rounds = if quick() { 200 } else { 5_000 };
        let mut timed = remote.watch("s", ["x"], lossless(0, kind)).unwrap();
        let others: Vec<Watch> = (1..watchers)
            .map(|i| remote.watch("s", ["x"], lossless(i, kind)).unwrap())
            .collect();
        let drains = drain_async(&drain_rt, others, version + rounds as u64);
        let mut samples = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            version += 1;
            let t = Instant::now();
            store.update("s", "x", version as i64).unwrap();
            loop {
                let e = timed.recv_timeout(Duration::from_secs(10)).expect("event");
                if e.version() >= version {
                    break;
                }
            }
            samples.push(t.elapsed().as_secs_f64() * 1e6);
        }
        drain_rt.block_on(async {
            for d in drains {
                drop(d.await.unwrap());
            }
        });
        drop(timed);
        samples.sort_by(f64::total_cmp);
        let (p50, p99) = (pct(&samples, 0.5), pct(&samples, 0.99));
        let k = kind.name();
        println!(
            "remote    latency, {watchers:>4} {k:<8} watchers  p50 {p50:>8.1} us   p99 {p99:>8.1} us   ({rounds} writes)"
        );
        if let Some(f) = &mut out {
            writeln!(
                f,
                "{{\"workload\":\"remote_latency\",\"kind\":\"{k}\",\"watchers\":{watchers},\"p50_us\":{p50},\"p99_us\":{p99}}}"
            )
            .unwrap();
        }
    }

    // Throughput: K updates, time until every watcher has all of them.
    for &(_, kind, n) in cases.iter().filter(|c| c.0 == "throughput") {
        settle(&store);
        let k: u64 = if quick() { 200 } else { 20_000 / (n as u64).min(20) };
        let watches: Vec<Watch> = (0..n)
            .map(|i| remote.watch("s", ["x"], lossless(i, kind)).unwrap())
            .collect();
        let start = Instant::now();
        let drains = drain_async(&drain_rt, watches, version + k);
        for _ in 0..k {
            version += 1;
            store.update("s", "x", version as i64).unwrap();
        }
        let received: u64 = drain_rt.block_on(async {
            let mut total = 0;
            for d in drains {
                total += d.await.unwrap().1;
            }
            total
        });
        let secs = start.elapsed().as_secs_f64();
        let delivered = received as f64 / secs;
        // Fewer than k * n means some watches resynced (Lagged) instead of
        // receiving every version: the writer never waits for them.
        let name = kind.name();
        println!(
            "remote    throughput, {n:>4} {name:<8} watchers  {delivered:>12.0} updates/s delivered ({received} of {} versions)",
            k * n as u64
        );
        if let Some(f) = &mut out {
            writeln!(
                f,
                "{{\"workload\":\"remote_throughput\",\"kind\":\"{name}\",\"watchers\":{n},\"updates_per_s\":{delivered},\"received\":{received},\"written\":{}}}",
                k * n as u64
            )
            .unwrap();
        }
    }
}
