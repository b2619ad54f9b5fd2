//! `EtcdStore` against etcd's own client doing the same work without
//! varwatch (etcd on loopback): write latency, write→`recv` latency, and
//! the throughput of one writer to 1 and 100 watchers.
//!
//! `scripts/with-etcd.sh cargo bench --features etcd --bench etcd`
//! (`VARWATCH_BENCH_QUICK=1` for a smoke run). Without `VARWATCH_ETCD` it
//! says so and measures nothing.
//!
//! The peer ("raw") is what a program would write with `etcd-client` alone:
//! a `put` of the value under one key, and etcd watches on that key. Both
//! sides run their futures on a two-worker tokio runtime and are driven
//! from a plain thread (the blocking API, and `block_on` for the raw
//! client). Rounds alternate between the two, so that drifts of a shared
//! machine fall on both; the medians of the rounds are reported.

#[path = "common/mod.rs"]
mod common;

use std::io::Write as _;
use std::time::{Duration, Instant};

#[allow(unused_imports)]
use varwatch::VarStore;
use varwatch::Watch;
use varwatch::etcd::etcd_client::{self, Client, EventType, WatchOptions as RawWatchOptions};
use varwatch::etcd::{EtcdConfig, EtcdStore};
use varwatch::{EventKind, SessionOptions, VarDef, VarType, WatchOptions};

fn quick() -> bool {
    std::env::var_os("VARWATCH_BENCH_QUICK").is_some()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The raw peer: a client, its runtime, and one key.
struct Raw {
    rt: tokio::runtime::Runtime,
    client: Client,
    key: String,
}

impl Raw {
    fn put(&self, v: i64) {
        let mut c = self.client.clone();
        let key = self.key.clone();
        self.rt
            .block_on(async move { c.put(key, v.to_string(), None).await.unwrap() });
    }

    fn watch(&self) -> etcd_client::WatchStream {
        let mut c = self.client.clone();
        let key = self.key.clone();
        self.rt.block_on(async move {
            let mut w = c.watch(key, None::<RawWatchOptions>).await.unwrap();
            // The creation response: the watch is registered from here on.
            w.message().await.unwrap();
            w
        })
    }
}

/// p50 and p99 of samples in µs.
#[derive(Clone, Copy)]
struct Lat {
    p50: f64,
    p99: f64,
}

fn lat(mut samples: Vec<f64>) -> Lat {
    samples.sort_by(f64::total_cmp);
    Lat {
        p50: pct(&samples, 0.5),
        p99: pct(&samples, 0.99),
    }
}

/// Times `rounds` calls of `f` (µs).
fn time(rounds: usize, mut f: impl FnMut()) -> Lat {
    lat((0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect())
}

/// etcd-client sending the transaction an `EtcdStore` update sends (a
/// compare on the session's `meta`, the variable's record and `meta` put,
/// the reads back on a failed compare), with records of the same sizes:
/// the etcd side of the cost, without varwatch's client work.
fn raw_txn_latency(raw: &Raw, rounds: usize) -> Lat {
    use etcd_client::{Compare, CompareOp, Txn, TxnOp};
    // A stored `Variable` of an integer is ~60 bytes, `meta` ~30.
    let (record, meta) = (vec![b'r'; 60], vec![b'm'; 30]);
    let (kv, km) = (format!("{}/txn/v/x", raw.key), format!("{}/txn/meta", raw.key));
    let mut c = raw.client.clone();
    let mut last = raw.rt.block_on(async {
        c.put(km.clone(), meta.clone(), None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision()
    });
    time(rounds, || {
        let txn = Txn::new()
            .when([Compare::mod_revision(km.clone(), CompareOp::Equal, last)])
            .and_then([
                TxnOp::put(kv.clone(), record.clone(), None),
                TxnOp::put(km.clone(), meta.clone(), None),
            ])
            .or_else([TxnOp::get(km.clone(), None), TxnOp::get(kv.clone(), None)]);
        let mut c = raw.client.clone();
        let resp = raw.rt.block_on(async move { c.txn(txn).await.unwrap() });
        assert!(resp.succeeded());
        last = resp.header().unwrap().revision();
    })
}

/// Write latency, no watch open.
fn ours_write(store: &impl VarStore, rounds: usize, version: &mut i64) -> Lat {
    time(rounds, || {
        *version += 1;
        store.update("s", "x", *version).unwrap();
    })
}

fn raw_write(raw: &Raw, rounds: usize, version: &mut i64) -> Lat {
    time(rounds, || {
        *version += 1;
        raw.put(*version);
    })
}

/// Write→receive latency with one watch.
fn ours_recv(store: &impl VarStore, rounds: usize, version: &mut i64) -> Lat {
    let mut w = store
        .watch("s", ["x"], WatchOptions::new().include_initial(false))
        .unwrap();
    time(rounds, || {
        *version += 1;
        store.update("s", "x", *version).unwrap();
        let e = w.recv_timeout(Duration::from_secs(10)).expect("event");
        assert_eq!(e.kind(), EventKind::Changed);
    })
}

fn raw_recv(raw: &Raw, rounds: usize, version: &mut i64) -> Lat {
    let mut w = raw.watch();
    time(rounds, || {
        *version += 1;
        raw.put(*version);
        let got = raw.rt.block_on(async { w.message().await.unwrap().unwrap() });
        assert_eq!(got.events()[0].event_type(), EventType::Put);
    })
}

/// Events/s delivered: `k` writes, until each of `n` watchers has them all.
fn ours_throughput(
    store: &EtcdStore,
    drain: &tokio::runtime::Runtime,
    n: usize,
    k: u64,
    version: &mut i64,
) -> f64 {
    let watches: Vec<Watch> = (0..n)
        .map(|_| {
            store
                .watch("s", ["x"], WatchOptions::new().include_initial(false))
                .unwrap()
        })
        .collect();
    let start = Instant::now();
    let until = *version + k as i64;
    let tasks: Vec<_> = watches
        .into_iter()
        .map(|mut w| {
            drain.spawn(async move {
                let mut got = 0u64;
                while let Some(e) = w.recv_async().await {
                    got += 1;
                    if e.value().and_then(|v| v.as_i64()) == Some(until) {
                        break;
                    }
                }
                got
            })
        })
        .collect();
    for _ in 0..k {
        *version += 1;
        store.update("s", "x", *version).unwrap();
    }
    let got: u64 = drain.block_on(async {
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total
    });
    assert_eq!(got, k * n as u64);
    got as f64 / start.elapsed().as_secs_f64()
}

fn raw_throughput(raw: &Raw, drain: &tokio::runtime::Runtime, n: usize, k: u64, version: &mut i64) -> f64 {
    let watches: Vec<etcd_client::WatchStream> = (0..n).map(|_| raw.watch()).collect();
    let start = Instant::now();
    let until = (*version + k as i64).to_string();
    let tasks: Vec<_> = watches
        .into_iter()
        .map(|mut w| {
            let until = until.clone();
            drain.spawn(async move {
                let mut got = 0u64;
                loop {
                    let r = w.message().await.unwrap().unwrap();
                    for e in r.events() {
                        got += 1;
                        if e.kv().map(|kv| kv.value()) == Some(until.as_bytes()) {
                            return got;
                        }
                    }
                }
            })
        })
        .collect();
    for _ in 0..k {
        *version += 1;
        raw.put(*version);
    }
    let got: u64 = drain.block_on(async {
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total
    });
    assert_eq!(got, k * n as u64);
    got as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if filter.as_deref().is_some_and(|f| !"etcd".contains(f)) {
        return;
    }
    let Ok(url) = std::env::var("VARWATCH_ETCD") else {
        println!("etcd      skipped: VARWATCH_ETCD is not set (run through scripts/with-etcd.sh)");
        return;
    };
    let prefix = format!("bench/{}/", std::process::id());
    let store = EtcdStore::connect([&url], EtcdConfig::new().prefix(&prefix)).unwrap();
    store.create_session("s", SessionOptions::new()).unwrap();
    store
        .register("s", VarDef::new("x", VarType::Integer, 0))
        .unwrap();
    let rt = runtime();
    let client = rt.block_on(Client::connect([&url], None)).unwrap();
    let raw = Raw {
        rt,
        client,
        key: format!("{prefix}raw/x"),
    };
    let drain = runtime();
    let mut out = (!quick()).then(|| {
        let dir = common::out_dir();
        std::fs::File::create(dir.join("etcd.jsonl")).unwrap()
    });
    let rounds = if quick() { 1 } else { 5 };
    let writes = if quick() { 50 } else { 1_000 };
    let (mut ours_v, mut raw_v) = (0i64, 0i64);

    // Rounds alternate the sides; each figure is the median of the rounds.
    let mut rows: Vec<(&str, Vec<Lat>, Vec<Lat>)> = vec![
        ("write", Vec::new(), Vec::new()),
        ("write, txn shape", Vec::new(), Vec::new()),
        ("write->recv", Vec::new(), Vec::new()),
    ];
    for _ in 0..rounds {
        rows[0].2.push(raw_write(&raw, writes, &mut raw_v));
        let write = ours_write(&store, writes, &mut ours_v);
        rows[0].1.push(write);
        rows[1].2.push(raw_txn_latency(&raw, writes));
        rows[1].1.push(write);
        rows[2].2.push(raw_recv(&raw, writes, &mut raw_v));
        rows[2].1.push(ours_recv(&store, writes, &mut ours_v));
    }
    for (name, ours, theirs) in &rows {
        let o50 = median(ours.iter().map(|l| l.p50).collect());
        let o99 = median(ours.iter().map(|l| l.p99).collect());
        let r50 = median(theirs.iter().map(|l| l.p50).collect());
        let r99 = median(theirs.iter().map(|l| l.p99).collect());
        let peer = if *name == "write, txn shape" {
            "etcd-client txn"
        } else {
            "etcd-client"
        };
        println!(
            "etcd      {name:<17} p50 varwatch {o50:>7.1} us  {peer} {r50:>7.1} us  {:>5.2}x   p99 {o99:>7.1} vs {r99:>7.1}  {:>5.2}x   ({rounds} rounds of {writes})",
            o50 / r50,
            o99 / r99
        );
        if let Some(f) = &mut out {
            writeln!(
                f,
                "{{\"workload\":\"etcd_latency\",\"case\":\"{name}\",\"varwatch_p50_us\":{o50},\"peer_p50_us\":{r50},\"varwatch_p99_us\":{o99},\"peer_p99_us\":{r99}}}"
            )
            .unwrap();
        }
    }

    for n in [1usize, 100] {
        let k: u64 = if quick() {
            20
        } else if n == 1 {
            2_000
        } else {
            500
        };
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            theirs.push(raw_throughput(&raw, &drain, n, k, &mut raw_v));
            ours.push(ours_throughput(&store, &drain, n, k, &mut ours_v));
        }
        let (o, r) = (median(ours), median(theirs));
        println!(
            "etcd      throughput, {n:>3} watchers  varwatch {o:>10.0}/s   etcd-client {r:>10.0}/s   ratio {:>5.2}x   ({rounds} rounds of {k} writes)",
            r / o
        );
        if let Some(f) = &mut out {
            writeln!(
                f,
                "{{\"workload\":\"etcd_throughput\",\"watchers\":{n},\"varwatch_per_s\":{o},\"etcd_client_per_s\":{r}}}"
            )
            .unwrap();
        }
    }
    replica(&store, rounds, writes, &mut ours_v, &mut out);

    let _ = store.delete_session("s");
    let mut c = raw.client.clone();
    let key = raw.key.clone();
    raw.rt.block_on(async move {
        c.delete(key, Some(etcd_client::DeleteOptions::new().with_prefix()))
            .await
            .unwrap()
    });
}

/// A replica: `varwatch-server`'s service over the etcd store, in this
/// process on loopback, and a `RemoteStore` client of it, against the
/// `EtcdStore` used directly — the same writes, rounds alternating.
fn replica(
    store: &EtcdStore,
    rounds: usize,
    writes: usize,
    version: &mut i64,
    out: &mut Option<std::fs::File>,
) {
    use varwatch::transport::grpc::GrpcService;
    use varwatch::transport::{RemoteConfig, RemoteStore};
    let rt = runtime();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = GrpcService::new(store.to_async());
    let server = rt.spawn(async move {
        service
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await
    });
    let remote = RemoteStore::connect(&addr, RemoteConfig::new()).unwrap();
    remote.get("s", "x").unwrap(); // connected
    let (mut write, mut recv) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let direct = ours_write(store, writes, version);
        let through = ours_write(&remote, writes, version);
        write.push((direct, through));
        let direct = ours_recv(store, writes, version);
        let through = ours_recv(&remote, writes, version);
        recv.push((direct, through));
    }
    for (name, pairs) in [("write", &write), ("write->recv", &recv)] {
        let d50 = median(pairs.iter().map(|(d, _)| d.p50).collect());
        let t50 = median(pairs.iter().map(|(_, t)| t.p50).collect());
        println!(
            "etcd      replica {name:<12} p50 through a server {t50:>7.1} us  EtcdStore directly {d50:>7.1} us  {:>5.2}x   ({rounds} rounds of {writes})",
            t50 / d50
        );
        if let Some(f) = out {
            writeln!(
                f,
                "{{\"workload\":\"etcd_replica\",\"case\":\"{name}\",\"replica_p50_us\":{t50},\"direct_p50_us\":{d50}}}"
            )
            .unwrap();
        }
    }
    drop(remote);
    let _ = stop.send(());
    let _ = rt.block_on(server);
}
