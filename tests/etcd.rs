//! `EtcdStore` on a real etcd (feature `etcd`): two clients as two
//! processes would be, the history checker of the stress test, and faults
//! (etcd restarted under a watch, history compacted past a watch, leases).
//!
//! Run with `scripts/with-etcd.sh cargo test --features etcd,server --test
//! etcd -- --include-ignored`: the script starts etcd and says where
//! (`VARWATCH_ETCD`, `VARWATCH_ETCD_BIN`). Every test here is `#[ignore]`d
//! ("needs etcd"), so that a run without etcd reports them ignored, never
//! passed; run without the script, they fail saying how to run them. The
//! contract suite runs on `EtcdStore` in tests/contract.rs.
#![cfg(all(feature = "etcd", not(loom)))]

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::history::{self, WatchSpec};
#[allow(unused_imports)]
use varwatch::VarStore;
use varwatch::Watch;
use varwatch::etcd::{EtcdConfig, EtcdStore};
use varwatch::{
    Error, EventKind, RecvTimeoutError, SessionOptions, UpdateOptions, Value, VarDef, VarType, WatchEvent,
    WatchOptions,
};

/// Everything the watch delivers until it has been quiet for `quiet`.
fn drain(w: &mut Watch, quiet: Duration) -> Vec<WatchEvent> {
    let mut out = Vec::new();
    while let Ok(e) = w.recv_timeout(quiet) {
        out.push(e);
    }
    out
}

fn next(w: &mut Watch) -> WatchEvent {
    w.recv_timeout(Duration::from_secs(30))
        .expect("an event within 30 s")
}

fn int(e: &WatchEvent) -> i64 {
    e.value().and_then(Value::as_i64).expect("an integer")
}

/// Retries `f` while etcd is unreachable (just restarted), up to 30 s.
fn retry<T>(mut f: impl FnMut() -> varwatch::Result<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match f() {
            Ok(x) => return x,
            Err(e @ Error::Transport { .. }) => {
                assert!(Instant::now() < deadline, "etcd did not come back: {e}");
                thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
#[ignore = "needs etcd: scripts/with-etcd.sh cargo test --features etcd,server --test etcd -- --include-ignored"]
fn a_watch_sees_every_write_of_another_client_and_every_state_it_holds_existed() {
    let url = common::etcd::endpoint("etcd history");
    let a = EtcdStore::connect(
        [&url],
        EtcdConfig::new().prefix(common::etcd::fresh_prefix("history")),
    )
    .unwrap();
    let b = common::etcd::peer(&a, &url);
    history_of_two_clients(a, b);
}

/// The same history, through two gRPC servers over one etcd (replicas):
/// each client writes and watches through its own server.
#[test]
#[ignore = "needs etcd: scripts/with-etcd.sh cargo test --features etcd,server --test etcd -- --include-ignored"]
fn grpc_over_etcd_keeps_every_history_through_two_replicas() {
    use varwatch::transport::grpc::GrpcService;
    use varwatch::transport::{RemoteConfig, RemoteStore};
    let url = common::etcd::endpoint("grpc over etcd history");
    let etcd_a = EtcdStore::connect(
        [&url],
        EtcdConfig::new().prefix(common::etcd::fresh_prefix("replicas")),
    )
    .unwrap();
    let etcd_b = common::etcd::peer(&etcd_a, &url);
    let server_a = common::server::Server::start(GrpcService::new(etcd_a.to_async()));
    let server_b = common::server::Server::start(GrpcService::new(etcd_b.to_async()));
    let a = RemoteStore::connect(&server_a.addr, RemoteConfig::new()).unwrap();
    let b = RemoteStore::connect(&server_b.addr, RemoteConfig::new()).unwrap();
    history_of_two_clients(a, b);
}

/// Watches of every kind on two clients record while both write; every
/// history passes the checker (per-variable contiguity and cuts).
fn history_of_two_clients<S: VarStore + Clone + Send + Sync + 'static>(a: S, b: S) {
    a.create_session("s", SessionOptions::new()).unwrap();
    // Whole-session watches on both clients from the empty session, named
    // ones once the variables exist: all record while two clients write.
    let specs_and_watches: Vec<(WatchSpec, Watch)> = vec![
        (
            WatchSpec {
                names: None,
                coalescing: false,
                overflowed: false,
            },
            a.watch_session("s", WatchOptions::new()).unwrap(),
        ),
        (
            WatchSpec {
                names: None,
                coalescing: false,
                overflowed: false,
            },
            b.watch_session("s", WatchOptions::new().capacity(1)).unwrap(),
        ),
        // Coalescing and throttled: latest states only, each receive a cut.
        (
            WatchSpec {
                names: None,
                coalescing: true,
                overflowed: false,
            },
            b.watch_session("s", WatchOptions::new().coalesce()).unwrap(),
        ),
        (
            WatchSpec {
                names: None,
                coalescing: true,
                overflowed: false,
            },
            a.watch_session("s", WatchOptions::new().throttle(Duration::from_millis(3)))
                .unwrap(),
        ),
    ];
    let workload = history::Workload::start_on(&[a.clone(), b.clone()], 4, 2, 120, None);
    // A named watch opened in the middle of the run, on the other client.
    let named = ["v0", "v2", "v3"];
    let mut late = loop {
        match b.watch("s", named, WatchOptions::new()) {
            Ok(w) => break w,
            Err(Error::VariablesNotFound { .. }) => thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("{e}"),
        }
    };
    let collectors: Vec<_> = specs_and_watches
        .into_iter()
        .map(|(spec, mut w)| {
            thread::spawn(move || {
                // Coalescing watches read slowly, so that they coalesce.
                let slow = spec.coalescing;
                let mut out = Vec::new();
                while let Ok(e) = w.recv_timeout(Duration::from_secs(3)) {
                    out.push(e);
                    if slow && out.len() % 8 == 0 {
                        thread::sleep(Duration::from_millis(2));
                    }
                }
                (spec, out)
            })
        })
        .collect();
    let late_events = drain(&mut late, Duration::from_secs(3));
    let truth = workload.finish();
    let mut boundaries = history::check(
        &late_events,
        &WatchSpec {
            names: Some(named.iter().map(|s| s.to_string()).collect()),
            coalescing: false,
            overflowed: false,
        },
        &truth,
    );
    for c in collectors {
        let (spec, events) = c.join().unwrap();
        assert!(
            events.iter().any(|e| e.revision() == truth.revisions()),
            "a whole-session watch did not reach the last revision ({} events)",
            events.len()
        );
        boundaries += history::check(&events, &spec, &truth);
    }
    assert!(boundaries > 100, "only {boundaries} group boundaries checked");
}

#[test]
#[ignore = "needs etcd: scripts/with-etcd.sh cargo test --features etcd,server --test etcd -- --include-ignored"]
fn an_atomic_batch_is_one_group_at_one_revision_for_another_client() {
    let url = common::etcd::endpoint("etcd batch");
    let a = EtcdStore::connect(
        [&url],
        EtcdConfig::new().prefix(common::etcd::fresh_prefix("batch")),
    )
    .unwrap();
    let b = common::etcd::peer(&a, &url);
    a.create_session("s", SessionOptions::new()).unwrap();
    for n in ["x", "y"] {
        a.register("s", VarDef::new(n, VarType::Integer, 0)).unwrap();
    }
    let mut w = b.watch("s", ["x", "y"], WatchOptions::new()).unwrap();
    assert_eq!(
        (next(&mut w).kind(), next(&mut w).kind()),
        (EventKind::Initial, EventKind::Initial)
    );
    a.update_atomic("s", [("x", 1), ("y", 2)], &UpdateOptions::new())
        .unwrap();
    let (e1, e2) = (next(&mut w), next(&mut w));
    assert_eq!((int(&e1), int(&e2)), (1, 2));
    assert_eq!(e1.revision(), e2.revision());
    assert_eq!(e1.revision(), b.session("s").unwrap().revision);
    // Contending writers on two clients, every value distinct: every
    // write lands once (each one a version), and the watch sees each.
    let writers: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .enumerate()
        .map(|(t, s)| {
            thread::spawn(move || {
                for i in 0..40 {
                    s.update("s", "x", 1000 * (t as i64 + 1) + i).unwrap();
                }
            })
        })
        .collect();
    for t in writers {
        t.join().unwrap();
    }
    assert_eq!(a.get("s", "x").unwrap().version(), 81, "writes were lost");
    let mut last = 1;
    for e in drain(&mut w, Duration::from_millis(500)) {
        if e.variable_name() == "x" {
            assert_eq!(e.version(), last + 1, "a version was skipped or repeated");
            last = e.version();
        }
    }
    assert_eq!(last, a.get("s", "x").unwrap().version());
    // A deletion carries the last value, at the deletion's revision.
    a.delete_variable("s", "y").unwrap();
    let d = next(&mut w);
    assert_eq!(
        (
            d.kind(),
            d.variable_name(),
            d.version(),
            d.old_value().and_then(Value::as_i64)
        ),
        (EventKind::Deleted, "y", 2, Some(2))
    );
    assert_eq!(d.revision(), a.session("s").unwrap().revision);
}

#[test]
#[ignore = "needs etcd: scripts/with-etcd.sh cargo test --features etcd,server --test etcd -- --include-ignored"]
fn a_slow_watch_holds_up_no_other_and_loses_nothing() {
    let a = common::etcd::store("etcd slow");
    a.create_session("s", SessionOptions::new()).unwrap();
    a.register("s", VarDef::new("x", VarType::Integer, 0)).unwrap();
    // Three watches of one session in one client: one etcd watch.
    let opts = || WatchOptions::new().include_initial(false).capacity(2);
    let mut fast: Vec<Watch> = (0..2).map(|_| a.watch("s", ["x"], opts()).unwrap()).collect();
    let mut slow = a.watch("s", ["x"], opts()).unwrap();
    assert!(fast.iter().chain([&slow]).all(|w| w.stats().shared));
    for i in 1..=50 {
        a.update("s", "x", i).unwrap();
        for w in &mut fast {
            assert_eq!(int(&next(w)), i, "a fast watch was held up");
        }
    }
    // The slow one left the shared watch when its queue filled, and has
    // every version waiting for it.
    assert!(!slow.stats().shared);
    assert!(fast.iter().all(|w| w.stats().shared));
    for i in 1..=50 {
        let e = next(&mut slow);
        assert_eq!(
            (e.kind(), e.version(), int(&e)),
            (EventKind::Changed, i as u64, i)
        );
    }
    a.update("s", "x", 51).unwrap();
    assert_eq!(int(&next(&mut slow)), 51);
}

#[test]
#[ignore = "needs etcd: scripts/with-etcd.sh cargo test --features etcd,server --test etcd -- --include-ignored"]
fn etcd_restarted_under_a_watch_resumes_it_with_no_gap() {
    let mut server = common::etcd::EtcdServer::start("etcd restart");
    let config = EtcdConfig::new()
        .prefix("restart/")
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
        .max_failures(None);
    let store = EtcdStore::connect([&server.url], config).unwrap();
    store.create_session("s", SessionOptions::new()).unwrap();
    store
        .register("s", VarDef::new("x", VarType::Integer, 0))
        .unwrap();
    let mut w = store.watch("s", ["x"], WatchOptions::new()).unwrap();
    assert!(next(&mut w).is_initial());
    for i in 1..=20 {
        store.update("s", "x", i).unwrap();
    }
    server.stop();
    assert!(
        store.update("s", "x", 999).is_err(),
        "a write succeeded with etcd down"
    );
    server.run();
    for i in 21..=40 {
        retry(|| store.update("s", "x", i));
    }
    let mut seen = Vec::new();
    while seen.last() != Some(&40) {
        let e = next(&mut w);
        assert_eq!(e.kind(), EventKind::Changed, "{e:?}");
        assert_eq!(e.version() as i64, int(&e), "a version was skipped or repeated");
        assert_eq!(e.old_value().and_then(Value::as_i64), Some(int(&e) - 1), "{e:?}");
        seen.push(int(&e));
    }
    assert_eq!(seen, (1..=40).collect::<Vec<_>>());
    assert!(w.stats().reconnects >= 1);
}

#[test]
#[ignore = "needs etcd: scripts/with-etcd.sh cargo test --features etcd,server --test etcd -- --include-ignored"]
fn history_compacted_past_a_watch_is_reported_as_lagged_then_the_state() {
    let mut server = common::etcd::EtcdServer::start("etcd compaction");
    // The watch waits ~10 s before it opens its etcd watch again, so the
    // test can write and compact meanwhile.
    let config = EtcdConfig::new()
        .prefix("compact/")
        .backoff(Duration::from_secs(10), Duration::from_secs(10))
        .max_failures(None);
    let store = EtcdStore::connect([&server.url], config).unwrap();
    store.create_session("s", SessionOptions::new()).unwrap();
    for n in ["x", "y"] {
        store.register("s", VarDef::new(n, VarType::Integer, 0)).unwrap();
    }
    let mut w = store.watch("s", ["x", "y"], WatchOptions::new()).unwrap();
    assert!(next(&mut w).is_initial() && next(&mut w).is_initial());
    for i in 1..=5 {
        store.update("s", "x", i).unwrap();
        assert_eq!(int(&next(&mut w)), i);
    }
    server.stop();
    server.run();
    for i in 6..=30 {
        retry(|| store.update("s", "x", i));
    }
    let mut client = store.client().clone();
    store
        .block_on(async move {
            let rev = client.get("compact/", None).await?.header().unwrap().revision();
            client
                .compact(
                    rev,
                    Some(varwatch::etcd::etcd_client::CompactionOptions::new().with_physical()),
                )
                .await
        })
        .unwrap();
    let lag = next(&mut w);
    assert_eq!(lag.kind(), EventKind::Lagged { first: 6, last: 29 }, "{lag:?}");
    let state = next(&mut w);
    assert_eq!(
        (state.kind(), state.version(), int(&state)),
        (EventKind::Changed, 30, 30)
    );
    assert_eq!(lag.revision(), state.revision());
    assert_eq!(w.stats().lag_events, 1);
    // And it goes on from there, y untouched (nothing missed there).
    store.update("s", "y", 7).unwrap();
    let e = next(&mut w);
    assert_eq!((e.variable_name(), e.version(), int(&e)), ("y", 1, 7));
}

#[test]
#[ignore = "needs etcd: scripts/with-etcd.sh cargo test --features etcd,server --test etcd -- --include-ignored"]
fn an_idle_session_expires_for_every_client() {
    let url = common::etcd::endpoint("etcd ttl");
    let a = EtcdStore::connect(
        [&url],
        EtcdConfig::new().prefix(common::etcd::fresh_prefix("ttl")),
    )
    .unwrap();
    let b = common::etcd::peer(&a, &url);
    let info = a
        .create_session("s", SessionOptions::new().ttl(Duration::from_secs(1)))
        .unwrap();
    assert_eq!(info.ttl, Some(Duration::from_secs(1)));
    a.register("s", VarDef::new("x", VarType::Integer, 0)).unwrap();
    assert_eq!(b.list_sessions().unwrap(), ["s"]);
    // Nobody touches it (listing is not an access): etcd's clock ends it.
    common::wait_until("the session to expire", || b.list_sessions().unwrap().is_empty());
    assert!(matches!(b.session("s"), Err(Error::SessionNotFound { .. })));
    assert!(matches!(a.get("s", "x"), Err(Error::SessionNotFound { .. })));
}

#[test]
#[ignore = "needs etcd: scripts/with-etcd.sh cargo test --features etcd,server --test etcd -- --include-ignored"]
fn a_watch_keeps_its_session_alive_and_ends_with_it() {
    let url = common::etcd::endpoint("etcd lease");
    let a = EtcdStore::connect(
        [&url],
        EtcdConfig::new().prefix(common::etcd::fresh_prefix("lease")),
    )
    .unwrap();
    let b = common::etcd::peer(&a, &url);
    a.create_session("s", SessionOptions::new().ttl(Duration::from_secs(1)))
        .unwrap();
    a.register("s", VarDef::new("x", VarType::Integer, 0)).unwrap();
    let mut w = b.watch("s", ["x"], WatchOptions::new()).unwrap();
    assert!(next(&mut w).is_initial());
    assert_eq!(b.session("s").unwrap().watchers, 1);
    // Several TTLs with no access but the open watch.
    thread::sleep(Duration::from_secs(4));
    assert_eq!(
        a.session("s").unwrap().revision,
        1,
        "the session expired under an open watch"
    );
    // The lease ends (as when it expires): the watch ends with the session.
    let mut client = a.client().clone();
    let meta = format!("{}s/s/meta", a.config().prefix);
    a.block_on(async move {
        let lease = client.get(meta, None).await?.kvs()[0].lease();
        client.lease_revoke(lease).await
    })
    .unwrap();
    let e = next(&mut w);
    assert_eq!(e.kind(), EventKind::SessionClosed);
    assert!(matches!(
        w.recv_timeout(Duration::from_secs(5)),
        Err(RecvTimeoutError::Closed)
    ));
}

#[test]
#[ignore = "needs etcd: scripts/with-etcd.sh cargo test --features etcd,server --test etcd -- --include-ignored"]
fn a_deleted_session_ends_every_clients_watches() {
    let url = common::etcd::endpoint("etcd delete");
    let a = EtcdStore::connect(
        [&url],
        EtcdConfig::new().prefix(common::etcd::fresh_prefix("delete")),
    )
    .unwrap();
    let b = common::etcd::peer(&a, &url);
    a.create_session("s", SessionOptions::new()).unwrap();
    a.register("s", VarDef::new("x", VarType::Integer, 0)).unwrap();
    let mut named = b.watch("s", ["x"], WatchOptions::new()).unwrap();
    let mut whole = b.watch_session("s", WatchOptions::new()).unwrap();
    a.delete_session("s").unwrap();
    // Created again at once: still the end for the watches of the old one.
    a.create_session("s", SessionOptions::new()).unwrap();
    for w in [&mut named, &mut whole] {
        assert!(next(w).is_initial());
        assert_eq!(next(w).kind(), EventKind::SessionClosed);
        assert!(w.next().is_none());
    }
}

#[test]
#[ignore = "needs etcd: scripts/with-etcd.sh cargo test --features etcd,server --test etcd -- --include-ignored"]
fn a_coalescing_watch_gets_the_latest_states_as_one_cut() {
    let a = common::etcd::store("etcd coalesce");
    a.create_session("s", SessionOptions::new()).unwrap();
    for n in ["x", "y", "z"] {
        a.register("s", VarDef::new(n, VarType::Integer, 0)).unwrap();
    }
    let mut w = a
        .watch("s", ["x", "y", "z"], WatchOptions::new().coalesce())
        .unwrap();
    let first: Vec<WatchEvent> = (0..3).map(|_| next(&mut w)).collect();
    assert!(first.iter().all(|e| e.is_initial() && e.skipped() == 0));
    assert_eq!(first.iter().map(int).collect::<Vec<_>>(), [0, 0, 0]);
    assert!(first.iter().all(|e| e.revision() == first[0].revision()));
    // Ten writes unread: one event per variable that changed, the versions
    // passed over counted, all at the last write's revision.
    for i in 2..=10 {
        a.update_atomic(
            "s",
            [("x", Value::Integer(i)), ("y", Value::Integer(i))],
            &UpdateOptions::new(),
        )
        .unwrap();
    }
    // Each receive holds x and y from one cut (they change together).
    let mut e = next(&mut w);
    let mut accounted = 0;
    loop {
        let (x, y) = (e, next(&mut w));
        assert_eq!((x.variable_name(), y.variable_name()), ("x", "y"));
        assert_eq!((x.revision(), int(&x)), (y.revision(), int(&y)), "not one cut");
        assert_eq!(x.skipped(), y.skipped());
        accounted += 1 + x.skipped();
        if int(&x) == 10 {
            assert_eq!((x.version(), y.version()), (9, 9));
            assert_eq!(x.revision(), a.session("s").unwrap().revision);
            break;
        }
        e = next(&mut w);
    }
    assert_eq!(accounted, 9, "a version was lost or counted twice");
    assert!(matches!(w.try_recv(), Err(varwatch::TryRecvError::Empty)));
    // A deletion is delivered as itself; the session's end ends the watch.
    a.delete_variable("s", "z").unwrap();
    assert_eq!(next(&mut w).kind(), EventKind::Deleted);
    a.delete_session("s").unwrap();
    assert_eq!(next(&mut w).kind(), EventKind::SessionClosed);
    assert!(w.next().is_none());
}

#[test]
#[ignore = "needs etcd: scripts/with-etcd.sh cargo test --features etcd,server --test etcd -- --include-ignored"]
fn a_throttled_watch_delivers_at_most_once_per_interval_and_ends_on_the_latest_state() {
    let a = common::etcd::store("etcd throttle");
    a.create_session("s", SessionOptions::new()).unwrap();
    a.register("s", VarDef::new("x", VarType::Integer, 0)).unwrap();
    let interval = Duration::from_millis(300);
    let mut w = a
        .watch(
            "s",
            ["x"],
            WatchOptions::new().include_initial(false).throttle(interval),
        )
        .unwrap();
    let writer = {
        let a = a.clone();
        thread::spawn(move || {
            for i in 1..=40 {
                a.update("s", "x", i).unwrap();
                thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let mut got = Vec::new();
    while got.last().map(int) != Some(40) {
        got.push(next(&mut w));
    }
    writer.join().unwrap();
    // Every version accounted for, once: delivered or counted as skipped.
    let accounted: u64 = got.iter().map(|e| 1 + e.skipped()).sum();
    assert_eq!(accounted, 40, "{got:?}");
    assert!(got.len() < 40, "nothing was coalesced: {} deliveries", got.len());
    // (How often it delivered is timing, which tests leave to benchmarks.)
}

#[test]
#[ignore = "needs etcd: scripts/with-etcd.sh cargo test --features etcd,server --test etcd -- --include-ignored"]
fn hostile_input_gets_a_clear_error_and_changes_nothing() {
    let a = common::etcd::store("etcd hostile");
    a.create_session("s", SessionOptions::new()).unwrap();
    a.register("s", VarDef::new("x", VarType::Integer, 0)).unwrap();
    let long = "n".repeat(20_000);
    let long_id = format!("var_{}", "9".repeat(20_000));
    // Identifiers no session or variable can have: not found, and no key is
    // made of them.
    assert!(matches!(a.get(&long, "x"), Err(Error::SessionNotFound { .. })));
    assert!(matches!(a.session("a\u{0}b"), Err(Error::SessionNotFound { .. })));
    for ident in [long.as_str(), long_id.as_str(), "", "x\n"] {
        assert!(
            matches!(a.get("s", ident), Err(Error::VariableNotFound { .. })),
            "{}",
            ident.len()
        );
        assert!(matches!(
            a.update("s", ident, 1),
            Err(Error::VariableNotFound { .. })
        ));
    }
    assert!(matches!(
        a.watch("s", [long.as_str()], WatchOptions::new()),
        Err(Error::VariablesNotFound { .. })
    ));
    assert!(matches!(
        a.create_session(&long, SessionOptions::new()),
        Err(Error::InvalidName { .. })
    ));
    // A batch larger than etcd takes in one transaction: refused before
    // anything is sent.
    let defs: Vec<VarDef> = (0..100)
        .map(|i| VarDef::new(format!("b{i}"), VarType::Integer, 0))
        .collect();
    assert!(matches!(
        a.import("s", defs),
        Err(Error::LimitExceeded { limit: 128, .. })
    ));
    assert_eq!(a.list_variables("s", None).unwrap().len(), 1);
    // A value larger than etcd takes (1.5 MiB requests): etcd refuses it,
    // nothing changes, and the store goes on.
    let huge = "v".repeat(4 << 20);
    a.register("s", VarDef::new("text", VarType::String, "")).unwrap();
    let err = a.update("s", "text", huge.as_str()).unwrap_err();
    assert!(
        matches!(
            err.code(),
            varwatch::ErrorCode::InvalidArgument | varwatch::ErrorCode::ResourceExhausted
        ),
        "{err}"
    );
    assert!(err.to_string().len() < 1_000, "{err}");
    assert_eq!(a.get("s", "text").unwrap().version(), 0);
    assert_eq!(a.update("s", "x", 5).unwrap(), 1);
    // Watch capacities at their extremes (0 is refused, as locally).
    assert!(matches!(
        a.watch("s", ["x"], WatchOptions::new().capacity(0)),
        Err(Error::InvalidOption(_))
    ));
    for cap in [1, usize::MAX] {
        let mut w = a.watch("s", ["x"], WatchOptions::new().capacity(cap)).unwrap();
        assert!(next(&mut w).is_initial());
    }
}

/// etcd's count of open watchers (its `/metrics`), from a private server.
fn etcd_watchers(url: &str) -> u64 {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    write!(conn, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut body = String::new();
    conn.read_to_string(&mut body).unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix("etcd_debugging_mvcc_watcher_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .expect("the watcher gauge") as u64
}

#[test]
#[ignore = "needs etcd: scripts/with-etcd.sh cargo test --features etcd,server --test etcd -- --include-ignored"]
fn a_clients_watches_of_a_session_share_one_etcd_watch_that_goes_with_them() {
    let server = common::etcd::EtcdServer::start("etcd sharing");
    let a = EtcdStore::connect([&server.url], EtcdConfig::new()).unwrap();
    a.create_session("s", SessionOptions::new()).unwrap();
    a.register("s", VarDef::new("x", VarType::Integer, 0)).unwrap();
    let watches: Vec<Watch> = (0..10)
        .map(|_| a.watch("s", ["x"], WatchOptions::new()).unwrap())
        .collect();
    assert!(watches.iter().all(|w| w.stats().shared));
    assert_eq!(etcd_watchers(&server.url), 1);
    // On a quiet session, the last watch dropped takes the etcd watch with
    // it.
    drop(watches);
    common::wait_until("the etcd watch to go", || etcd_watchers(&server.url) == 0);
}

#[test]
#[ignore = "needs etcd: scripts/with-etcd.sh cargo test --features etcd,server --test etcd -- --include-ignored"]
fn more_identifiers_than_etcd_reads_in_one_transaction() {
    let a = common::etcd::store("etcd many");
    a.create_session("s", SessionOptions::new()).unwrap();
    let defs: Vec<VarDef> = (0..300)
        .map(|i| VarDef::new(format!("v{i}"), VarType::Integer, i))
        .collect();
    let mut ids = Vec::new();
    for chunk in defs.chunks(50) {
        ids.extend(a.import("s", chunk.to_vec()).unwrap());
    }
    let mut idents: Vec<String> = (0..300).map(|i| format!("v{i}")).collect();
    idents.extend(ids.iter().cloned());
    idents.push("nope".into());
    let got = a.get_many("s", &idents).unwrap();
    assert_eq!(
        (got.found.len(), got.missing, got.revision),
        (600, vec!["nope".to_string()], 6)
    );
    // A fresh client, which has resolved no id yet.
    let b = EtcdStore::connect([common::etcd::endpoint("etcd many")], a.config().clone()).unwrap();
    assert_eq!(b.get_many("s", &ids).unwrap().found.len(), 300);
    let mut w = b.watch("s", &ids, WatchOptions::new()).unwrap();
    let first: Vec<WatchEvent> = (0..300).map(|_| next(&mut w)).collect();
    assert!(
        first
            .iter()
            .enumerate()
            .all(|(i, e)| e.is_initial() && int(e) == i as i64)
    );
}

#[test]
#[ignore = "needs etcd: scripts/with-etcd.sh cargo test --features etcd,server --test etcd -- --include-ignored"]
fn a_store_on_an_etcd_with_authentication() {
    use varwatch::etcd::etcd_client::{ConnectOptions, Permission};
    let server = common::etcd::EtcdServer::start("etcd auth");
    // Turn authentication on, through the client the store exposes.
    let admin = EtcdStore::connect([&server.url], EtcdConfig::new()).unwrap();
    let mut c = admin.client().clone();
    admin
        .block_on(async move {
            c.user_add("root", "rootpw", None).await?;
            c.user_grant_role("root", "root").await?;
            c.role_add("app").await?;
            c.role_grant_permission("app", Permission::read_write("auth/").with_prefix())
                .await?;
            c.user_add("app", "s3cret", None).await?;
            c.user_grant_role("app", "app").await?;
            c.auth_enable().await
        })
        .unwrap();
    let config = EtcdConfig::new()
        .prefix("auth/")
        .connect_options(ConnectOptions::new().with_user("app", "s3cret"));
    assert!(
        !format!("{config:?}").contains("s3cret"),
        "a password in Debug output"
    );
    let store = EtcdStore::connect([&server.url], config).unwrap();
    store.create_session("s", SessionOptions::new()).unwrap();
    store
        .register("s", VarDef::new("x", VarType::Integer, 0))
        .unwrap();
    let mut w = store.watch("s", ["x"], WatchOptions::new()).unwrap();
    assert!(next(&mut w).is_initial());
    store.update("s", "x", 1).unwrap();
    assert_eq!(int(&next(&mut w)), 1);
    // Without the credentials: refused, with a message that says so.
    let anonymous = EtcdStore::connect([&server.url], EtcdConfig::new().prefix("auth/")).unwrap();
    let err = anonymous.get("s", "x").unwrap_err();
    assert!(err.to_string().contains("etcd"), "{err}");
}

#[test]
#[ignore = "needs etcd: scripts/with-etcd.sh cargo test --features etcd,server --test etcd -- --include-ignored"]
fn an_etcd_watch_filters_on_the_client_and_counts_what_it_screened() {
    let a = common::etcd::store("etcd filter");
    a.create_session("s", SessionOptions::new()).unwrap();
    a.register("s", VarDef::new("x", VarType::Integer, 0)).unwrap();
    let mut w = a
        .watch(
            "s",
            ["x"],
            WatchOptions::new().include_initial(false).filter(|_, v| {
                let n = v.as_i64().unwrap();
                assert!(n != 3, "the filter panics on 3");
                n % 2 == 0
            }),
        )
        .unwrap();
    for i in 1..=4 {
        a.update("s", "x", i).unwrap();
    }
    let got: Vec<i64> = (0..3).map(|_| int(&next(&mut w))).collect();
    assert_eq!(got, [2, 3, 4], "3 is delivered: its filter call panicked");
    let stats = w.stats();
    assert_eq!((stats.events_filtered, stats.filter_panics), (1, 1));
}
