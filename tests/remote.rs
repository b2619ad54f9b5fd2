//! RemoteStore and Watch against a real server on loopback, including
//! the fault tests: the server killed and restarted on the same port while
//! writes continue, a retry policy running out, and an old stream's timeout
//! not touching a newer stream's registration.
#![cfg(all(feature = "grpc", not(loom)))]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

mod common;
use common::proxy::Proxy;
use common::{store_with, wait_until};

#[allow(unused_imports)]
use varwatch::VarStore;
use varwatch::transport::grpc::GrpcService;
use varwatch::transport::{RemoteConfig, RemoteStore};
use varwatch::{
    Error, ErrorCode, EventKind, SessionOptions, SessionStore, Value, VarDef, VarType, WatchOptions,
};

/// A server on its own runtime thread, which can be stopped and restarted
/// on the same address.
struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Server {
    fn start(store: &SessionStore, addr: &str, service: fn(SessionStore) -> GrpcService) -> Server {
        let store = store.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let addr = addr.to_string();
        let thread = thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                // The port may still be held for a moment after a stop.
                let deadline = Instant::now() + Duration::from_secs(10);
                let listener = loop {
                    match tokio::net::TcpListener::bind(&addr).await {
                        Ok(l) => break l,
                        Err(e) if Instant::now() < deadline => {
                            let _ = e;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(e) => panic!("cannot bind {addr}: {e}"),
                    }
                };
                ready_tx.send(listener.local_addr().unwrap()).unwrap();
                service(store)
                    .serve(listener, async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = ready
            .recv_timeout(Duration::from_secs(20))
            .expect("server started");
        Server {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn fast() -> RemoteConfig {
    RemoteConfig::new()
        .heartbeats(Duration::from_millis(50), Duration::from_millis(1000))
        .backoff(Duration::from_millis(10), Duration::from_millis(200))
}

fn fast_service(store: SessionStore) -> GrpcService {
    GrpcService::new(store)
        .heartbeat_interval(Duration::from_millis(50))
        .heartbeat_timeout(Duration::from_millis(1000))
}

#[test]
fn remote_store_operations_and_errors() {
    let store = SessionStore::new();
    let server = Server::start(&store, "127.0.0.1:0", GrpcService::new);
    let remote = RemoteStore::connect(&server.addr.to_string(), RemoteConfig::new()).unwrap();
    remote.create_session("s", SessionOptions::new()).unwrap();
    let id = remote
        .register(
            "s",
            VarDef::new("t", VarType::Float, 1.0).constraints(varwatch::Constraints::new().max(10.0)),
        )
        .unwrap();
    assert_eq!(remote.update("s", "t", 2.0).unwrap(), 1);
    let v = remote.get("s", &id).unwrap();
    assert_eq!((v.name(), v.version(), v.value()), ("t", 1, &Value::Float(2.0)));
    assert_eq!(v.constraints().max, Some(10.0));
    // Errors arrive as the store raised them: variant and fields (the
    // status's detail), not a remote code and an English message.
    let err = remote.update("s", "t", 20.0).unwrap_err();
    assert_eq!(
        err,
        Error::InvalidValue {
            session: "s".into(),
            variable: "t".into(),
            reason: "20 is above maximum 10".into()
        }
    );
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert_eq!(
        err.to_string(),
        "variable `t` in session `s`: 20 is above maximum 10"
    );
    assert!(matches!(
        remote.get("s", "nope"),
        Err(Error::VariableNotFound { .. })
    ));
    assert_eq!(remote.list_sessions().unwrap(), ["s"]);
    assert_eq!(remote.list_variables("s", Some("t*")).unwrap().len(), 1);
    remote.delete_variable("s", "t").unwrap();
    remote.delete_session("s").unwrap();
    assert!(store.list_sessions().is_empty());
}

#[test]
fn remote_watch_delivers_like_a_local_one() {
    let store = SessionStore::new();
    let server = Server::start(&store, "127.0.0.1:0", fast_service);
    store.create_session("s", SessionOptions::new()).unwrap();
    store
        .register("s", VarDef::new("x", VarType::Integer, 1))
        .unwrap();
    let remote = RemoteStore::connect(&server.addr.to_string(), fast()).unwrap();
    let mut w = remote.watch("s", ["x"], WatchOptions::new()).unwrap();
    store.update("s", "x", 2).unwrap();
    store.update("s", "x", 3).unwrap();
    let got: Vec<(EventKind, i64)> = (0..3)
        .map(|_| w.recv_timeout(Duration::from_secs(20)).unwrap())
        .map(|e| (e.kind(), e.value().unwrap().as_i64().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (EventKind::Initial, 1),
            (EventKind::Changed, 2),
            (EventKind::Changed, 3)
        ]
    );
    // Without initial values; deletion ends the watch.
    let mut w2 = remote
        .watch("s", ["x"], WatchOptions::new().include_initial(false))
        .unwrap();
    store.update("s", "x", 4).unwrap();
    store.delete_variable("s", "x").unwrap();
    let e = w2.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!((e.kind(), e.version()), (EventKind::Changed, 3));
    assert_eq!(
        w2.recv_timeout(Duration::from_secs(20)).unwrap().kind(),
        EventKind::Deleted
    );
    assert!(w2.recv().is_none());
    // Unknown variables fail at subscription.
    assert_eq!(
        remote.watch("s", ["nope"], WatchOptions::new()).unwrap_err(),
        Error::VariablesNotFound {
            session: "s".into(),
            variables: vec!["nope".into()]
        }
    );
}

/// The server is stopped mid-stream and restarted on the same port while
/// writes continue. The watch resumes by itself and ends on the final state
/// of every variable; per variable, versions never go backwards and every
/// gap is an explicit Lagged.
#[test]
fn watch_survives_a_server_restart() {
    let store = SessionStore::new();
    store.create_session("s", SessionOptions::new()).unwrap();
    for n in ["a", "b"] {
        store.register("s", VarDef::new(n, VarType::Integer, 0)).unwrap();
    }
    let mut server = Server::start(&store, "127.0.0.1:0", fast_service);
    let addr = server.addr;
    let remote = RemoteStore::connect(&addr.to_string(), fast()).unwrap();
    let mut w = remote.watch_session("s", WatchOptions::new()).unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, done) = (store.clone(), done.clone());
        thread::spawn(move || {
            let mut i = 0;
            while !done.load(Ordering::Relaxed) {
                i += 1;
                store.update("s", "a", i).unwrap();
                store.update("s", "b", -i).unwrap();
                thread::sleep(Duration::from_micros(200));
            }
        })
    };
    thread::sleep(Duration::from_millis(200));
    server.stop(); // every stream ends; reconnects fail for a while
    thread::sleep(Duration::from_millis(300));
    let _server = Server::start(&store, &addr.to_string(), fast_service);
    thread::sleep(Duration::from_millis(300));
    done.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let finals: HashMap<String, u64> = ["a", "b"]
        .iter()
        .map(|n| (n.to_string(), store.get("s", n).unwrap().version()))
        .collect();

    let mut last: HashMap<String, u64> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while finals.iter().any(|(n, v)| last.get(n) != Some(v)) {
        assert!(
            Instant::now() < deadline,
            "did not catch up: {last:?} vs {finals:?}"
        );
        let Ok(e) = w.recv_timeout(Duration::from_secs(5)) else {
            continue;
        };
        let name = e.variable_name().to_string();
        let prev = last.get(&name).copied();
        match e.kind() {
            EventKind::Initial => assert!(prev.is_none(), "second Initial for {name}"),
            EventKind::Changed => {
                let p = prev.expect("Changed before Initial");
                assert_eq!(e.version(), p + 1, "silent gap in {name}");
            }
            EventKind::Lagged { first, last: l } => {
                assert_eq!(Some(first - 1), prev, "lag marker does not start after {prev:?}");
                assert!(l >= first);
            }
            k => panic!("unexpected {k:?}"),
        }
        last.insert(name, e.version());
    }
    assert!(w.stats().reconnects >= 1, "{:?}", w.stats());
}

#[test]
fn retry_policy_ends_the_watch_with_disconnected() {
    let store = store_with(&["x"]);
    let mut server = Server::start(&store, "127.0.0.1:0", fast_service);
    let remote = RemoteStore::connect(&server.addr.to_string(), fast().max_failures(3)).unwrap();
    let mut w = remote.watch("s", ["x"], WatchOptions::new()).unwrap();
    assert!(w.recv_timeout(Duration::from_secs(20)).unwrap().is_initial());
    server.stop();
    let e = w.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(e.kind(), EventKind::Disconnected);
    assert!(w.recv().is_none());
}

/// Two streams on the same variable; the first falls silent and is dropped
/// by the server. The second's registration is untouched and keeps working.
#[test]
fn an_old_streams_timeout_does_not_remove_a_newer_registration() {
    let store = store_with(&["x"]);
    let server = Server::start(&store, "127.0.0.1:0", fast_service);
    // The old stream: a client that never heartbeats (huge interval).
    let silent = RemoteStore::connect(
        &server.addr.to_string(),
        RemoteConfig::new()
            .heartbeats(Duration::from_secs(3600), Duration::from_secs(3600))
            .max_failures(0),
    )
    .unwrap();
    let old = silent.watch("s", ["x"], WatchOptions::new()).unwrap();
    let live = RemoteStore::connect(&server.addr.to_string(), fast()).unwrap();
    let mut new = live.watch("s", ["x"], WatchOptions::new()).unwrap();
    assert_eq!(store.list_watchers("s").unwrap().len(), 2);
    // The server drops the silent one after its 1 s timeout.
    wait_until("the silent stream to be dropped", || {
        store.list_watchers("s").unwrap().len() == 1
    });
    assert!(new.recv_timeout(Duration::from_secs(20)).unwrap().is_initial());
    store.update("s", "x", 1).unwrap();
    assert_eq!(new.recv_timeout(Duration::from_secs(20)).unwrap().version(), 1);
    assert_eq!(store.list_watchers("s").unwrap().len(), 1);
    drop(old);
}

#[test]
fn bearer_token_is_required_when_configured() {
    fn with_token(store: SessionStore) -> GrpcService {
        GrpcService::new(store).bearer_token("s3cret")
    }
    let store = store_with(&["x"]);
    let server = Server::start(&store, "127.0.0.1:0", with_token);
    let addr = server.addr.to_string();
    fn code<T>(r: varwatch::Result<T>) -> String {
        match r {
            Err(Error::Remote { code, .. }) => format!("{code:?}"),
            Err(e) => format!("{e}"),
            Ok(_) => "OK".to_string(),
        }
    }
    let none = RemoteStore::connect(&addr, RemoteConfig::new()).unwrap();
    assert_eq!(code(none.list_sessions()), "Unauthenticated");
    assert_eq!(
        code(none.watch("s", ["x"], WatchOptions::new())),
        "Unauthenticated"
    );
    let wrong = RemoteStore::connect(&addr, RemoteConfig::new().token("s3creT")).unwrap();
    assert_eq!(code(wrong.list_sessions()), "Unauthenticated");
    let right = RemoteStore::connect(&addr, RemoteConfig::new().token("s3cret")).unwrap();
    assert_eq!(right.list_sessions().unwrap(), ["s"]);
    let mut w = right.watch("s", ["x"], WatchOptions::new()).unwrap();
    assert!(w.recv_timeout(Duration::from_secs(20)).unwrap().is_initial());
}

/// The client acknowledges what its user took; the server's watcher list
/// shows it, so a remote consumer's lag is visible. Dropping the watch
/// flushes the acknowledgement and frees the registration.
#[test]
fn acks_show_remote_consumers_in_list_watchers() {
    let store = store_with(&["x"]);
    let server = Server::start(&store, "127.0.0.1:0", fast_service);
    let remote = RemoteStore::connect(&server.addr.to_string(), fast()).unwrap();
    let mut w = remote.watch("s", ["x"], WatchOptions::new()).unwrap();
    assert!(w.recv_timeout(Duration::from_secs(20)).unwrap().is_initial());
    for i in 1..=5 {
        store.update("s", "x", i).unwrap();
    }
    let mut last = 0;
    for _ in 0..3 {
        last = w.recv_timeout(Duration::from_secs(20)).unwrap().revision(); // takes 3 of 5
    }
    let acked = || {
        store
            .list_watchers("s")
            .unwrap()
            .first()
            .and_then(|i| i.acked_revision)
    };
    wait_until("the ack of the last event taken", || acked() == Some(last));
    assert!(
        store.session("s").unwrap().revision > last,
        "the consumer is visibly behind"
    );
    drop(w);
    wait_until("the dropped watch's registration to go", || {
        store.list_watchers("s").unwrap().is_empty()
    });
}

/// The connection goes silent (a frozen proxy between client and server):
/// the client notices within its heartbeat timeout, reconnects once the path
/// is back, and resumes without losing or repeating anything.
#[test]
fn client_detects_a_silent_connection() {
    let store = store_with(&["x"]);
    let server = Server::start(&store, "127.0.0.1:0", fast_service);
    let proxy = Proxy::start(server.addr);
    let config = RemoteConfig::new()
        .heartbeats(Duration::from_millis(50), Duration::from_millis(300))
        .backoff(Duration::from_millis(10), Duration::from_millis(50));
    let remote = RemoteStore::connect(&proxy.addr.to_string(), config).unwrap();
    let mut w = remote.watch("s", ["x"], WatchOptions::new()).unwrap();
    assert!(w.recv_timeout(Duration::from_secs(20)).unwrap().is_initial());
    proxy.freeze(true);
    store.update("s", "x", 1).unwrap(); // written while the path is dead
    thread::sleep(Duration::from_millis(800));
    proxy.freeze(false);
    store.update("s", "x", 2).unwrap();
    let mut versions = Vec::new();
    while versions.last() != Some(&2) {
        let e = w
            .recv_timeout(Duration::from_secs(20))
            .expect("the watch came back");
        versions.push(e.version());
    }
    assert_eq!(versions, [1, 2], "nothing lost, nothing repeated");
    assert!(
        w.stats().reconnects >= 1,
        "the silence was never detected: {:?}",
        w.stats()
    );
}
