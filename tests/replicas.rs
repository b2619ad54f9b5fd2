//! Replicas: two `varwatch-server` processes on one etcd serve the same
//! sessions, and a client given both moves between them (features `etcd`
//! and `server`, real etcd, real server processes).
//!
//! * One replica killed (SIGKILL), then the other, under writes: a client's
//!   whole-session and named watches go on through both failovers and pass
//!   the history checker (per-variable contiguity, cuts, true values);
//!   every write the client saw acknowledged through the replicas is there.
//! * A replica cut off from etcd (a frozen proxy between them) turns
//!   `NOT_SERVING`: its calls are refused with `UNAVAILABLE`, its watch
//!   streams end, and a client given both replicas goes on through the
//!   other; when etcd is back, it serves again.
//!
//! Every test is `#[ignore]`d ("needs etcd"); run them with
//! `scripts/with-etcd.sh cargo test --features etcd,server --test replicas
//! -- --include-ignored`.
#![cfg(all(feature = "etcd", feature = "server", unix, not(loom)))]

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::history::{self, WatchSpec};
use common::proxy::Proxy;
use varwatch::etcd::{EtcdConfig, EtcdStore};
use varwatch::transport::{RemoteConfig, RemoteStore};
use varwatch::{Error, ErrorCode, SessionOptions, VarDef, VarStore, VarType, WatchEvent, WatchOptions};

/// A `varwatch-server --etcd` process; killed when dropped.
struct Replica {
    addr: String,
    etcd: String,
    prefix: String,
    child: Option<Child>,
}

impl Replica {
    fn start(etcd: &str, prefix: &str) -> Replica {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = Replica {
            addr: format!("127.0.0.1:{port}"),
            etcd: etcd.to_string(),
            prefix: prefix.to_string(),
            child: None,
        };
        r.run();
        r
    }

    fn run(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_varwatch-server"))
            .args(["--listen", &self.addr, "--log", "error", "--etcd", &self.etcd])
            .args(["--etcd-prefix", &self.prefix, "--health-interval", "200ms"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let addr = self.addr.clone();
        common::wait_until("the replica to listen", || {
            std::net::TcpStream::connect(&addr).is_ok()
        });
    }

    /// SIGKILL.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

fn client_config() -> RemoteConfig {
    RemoteConfig::new()
        .call_timeout(Duration::from_secs(5))
        .heartbeats(Duration::from_millis(200), Duration::from_secs(1))
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
        .max_failures(u32::MAX)
}

/// Everything `w` delivers until it has been quiet for `quiet`.
fn drain(w: &mut varwatch::Watch, quiet: Duration) -> Vec<WatchEvent> {
    let mut out = Vec::new();
    while let Ok(e) = w.recv_timeout(quiet) {
        out.push(e);
    }
    out
}

#[test]
#[ignore = "needs etcd: scripts/with-etcd.sh cargo test --features etcd,server --test replicas -- --include-ignored"]
fn a_client_moves_between_replicas_and_its_watches_pass_the_history_checker() {
    let url = common::etcd::endpoint("replicas");
    let prefix = common::etcd::fresh_prefix("replicas");
    let direct = EtcdStore::connect([&url], EtcdConfig::new().prefix(prefix.clone())).unwrap();
    direct.create_session("s", SessionOptions::new()).unwrap();
    direct.create_session("w", SessionOptions::new()).unwrap();
    direct
        .register("w", VarDef::new("x", VarType::Integer, 0))
        .unwrap();
    let mut a = Replica::start(&url, &prefix);
    let mut b = Replica::start(&url, &prefix);
    let client = RemoteStore::connect_any([&a.addr, &b.addr], client_config()).unwrap();

    // The truth is written straight to etcd; the watches go through the
    // replicas.
    let workload = history::Workload::start(&direct, 4, 2, 400, Some(4));
    let named = ["v0", "v2", "v3"];
    let mut whole = client
        .watch_session("s", WatchOptions::new().buffer(1 << 16))
        .unwrap();
    let mut part = loop {
        match client.watch("s", named, WatchOptions::new().buffer(1 << 16)) {
            Ok(w) => break w,
            Err(Error::VariablesNotFound { .. }) => thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("{e}"),
        }
    };

    // Writes through the replicas: what was acknowledged must be there.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<BTreeMap<u64, i64>>> = Arc::default();
    let writer = {
        let (client, stop, acked) = (client.clone(), stop.clone(), acked.clone());
        thread::spawn(move || {
            let mut v = 0;
            while !stop.load(Ordering::Relaxed) {
                v += 1;
                match client.update("w", "x", v) {
                    Ok(version) => {
                        acked.lock().unwrap().insert(version, v);
                    }
                    Err(Error::Transport { .. } | Error::OutcomeUnknown { .. }) => {}
                    Err(Error::Remote {
                        code: ErrorCode::Unavailable | ErrorCode::DeadlineExceeded,
                        ..
                    }) => {}
                    Err(e) => panic!("{e}"),
                }
                thread::sleep(Duration::from_millis(2));
            }
        })
    };

    // The client is on `a` (the first given): kill it; writes must go on
    // through `b` while `a` is down. Then the same the other way.
    let acks = || acked.lock().unwrap().len();
    let goes_on = |what: &str| {
        let before = acks();
        common::wait_until(what, || acks() >= before + 10);
    };
    thread::sleep(Duration::from_millis(300));
    a.kill();
    goes_on("writes through b while a is down");
    a.run();
    b.kill();
    goes_on("writes through a while b is down");
    b.run();
    let truth = workload.finish();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();

    let whole_events = drain(&mut whole, Duration::from_secs(3));
    // Both failovers were noticed (the stream was re-opened elsewhere).
    assert!(
        whole.stats().reconnects >= 2,
        "reconnects: {}",
        whole.stats().reconnects
    );
    let part_events = drain(&mut part, Duration::from_secs(3));
    assert!(
        whole_events.iter().any(|e| e.revision() == truth.revisions()),
        "the whole-session watch did not reach the last revision ({} events)",
        whole_events.len()
    );
    let mut boundaries = history::check(
        &whole_events,
        &WatchSpec {
            names: None,
            coalescing: false,
            // A failover resumes: what was missed meanwhile is `Lagged`
            // (starting right after what the watch held; checked).
            overflowed: true,
        },
        &truth,
    );
    boundaries += history::check(
        &part_events,
        &WatchSpec {
            names: Some(named.iter().map(|s| s.to_string()).collect()),
            coalescing: false,
            // A failover resumes: what was missed meanwhile is `Lagged`
            // (starting right after what the watch held; checked).
            overflowed: true,
        },
        &truth,
    );
    assert!(boundaries > 50, "only {boundaries} group boundaries checked");

    let acked = acked.lock().unwrap();
    assert!(acked.len() > 20, "only {} writes acknowledged", acked.len());
    let (last_version, last_value) = acked.iter().next_back().map(|(k, v)| (*k, *v)).unwrap();
    let x = direct.get("w", "x").unwrap();
    assert!(
        x.version() >= last_version,
        "v{} < acknowledged v{last_version}",
        x.version()
    );
    if x.version() == last_version {
        assert_eq!(x.value().as_i64(), Some(last_value));
    }
}

#[test]
#[ignore = "needs etcd: scripts/with-etcd.sh cargo test --features etcd,server --test replicas -- --include-ignored"]
fn a_replica_cut_off_from_etcd_stops_serving_and_clients_move_on() {
    let url = common::etcd::endpoint("replicas-cut");
    let prefix = common::etcd::fresh_prefix("replicas-cut");
    let direct = EtcdStore::connect([&url], EtcdConfig::new().prefix(prefix.clone())).unwrap();
    direct.create_session("s", SessionOptions::new()).unwrap();
    direct
        .register("s", VarDef::new("x", VarType::Integer, 0))
        .unwrap();
    let etcd_addr: std::net::SocketAddr = url
        .trim_start_matches("http://")
        .parse()
        .expect("a host:port etcd URL");
    let proxy = Proxy::start(etcd_addr);
    let a = Replica::start(&format!("http://{}", proxy.addr), &prefix);
    let b = Replica::start(&url, &prefix);
    let both = RemoteStore::connect_any([&a.addr, &b.addr], client_config()).unwrap();
    let only_a = RemoteStore::connect(&a.addr, client_config()).unwrap();
    assert_eq!(only_a.get("s", "x").unwrap().version(), 0);

    let mut w = both
        .watch("s", ["x"], WatchOptions::new().include_initial(false))
        .unwrap();
    direct.update("s", "x", 1).unwrap();
    assert_eq!(w.recv_timeout(Duration::from_secs(10)).unwrap().version(), 1);

    // `a` loses etcd: within a few probes it refuses, naming why.
    proxy.freeze(true);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match only_a.get("s", "x") {
            Err(Error::Remote {
                code: ErrorCode::Unavailable,
                message,
            }) if message.contains("not serving") => break,
            other => {
                assert!(Instant::now() < deadline, "still serving: {other:?}");
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
    // The watch moved to `b`: it sees every later write, in order.
    for v in 2..=20 {
        assert_eq!(direct.update("s", "x", v).unwrap(), v as u64);
    }
    let mut seen = Vec::new();
    while seen.last() != Some(&20) {
        let e = w
            .recv_timeout(Duration::from_secs(20))
            .expect("the watch moved to the other replica");
        match e.kind() {
            varwatch::EventKind::Changed => seen.push(e.version()),
            varwatch::EventKind::Lagged { first, last } => seen.extend(first..=last),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen, (2..=20).collect::<Vec<u64>>());
    // Calls through the pair work; `a` serves again once etcd is back.
    assert_eq!(both.get("s", "x").unwrap().version(), 20);
    proxy.freeze(false);
    common::wait_until("the replica to serve again", || only_a.get("s", "x").is_ok());
}
