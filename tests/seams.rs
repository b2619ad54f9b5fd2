//! The seams where remote and local watches used to disagree, checked on
//! every transport (in-memory, gRPC) and, with feature `etcd`, on the etcd
//! store and gRPC over it:
//!
//! * read-your-writes: a watch opened after a write returned starts at or
//!   after that write, also when it joins a subscription the client
//!   already shares;
//! * coalescing: a remote coalescing watch whose reader wakes after five
//!   writes gets one state with `skipped = 4`, as locally;
//! * resume: a create that names variables by name and resumes with
//!   versions keyed by id (or by name) resumes them, as locally.
#![cfg(all(not(loom), feature = "transport"))]

mod common;

use std::pin::Pin;
use std::time::Duration;

use futures_core::Stream;
use tokio::sync::mpsc;
use varwatch::transport::{
    ClientMessage, MemoryTransport, RemoteConfig, RemoteStore, ServerMessage, Service, Subscribe, WatchTarget,
};
use varwatch::{
    EventKind, SessionOptions, SessionStore, TryRecvError, VarDef, VarStore, VarType, WatchOptions,
};

fn memory_client(store: &SessionStore) -> RemoteStore {
    RemoteStore::new(
        MemoryTransport::new(Service::new(store.clone())),
        RemoteConfig::new(),
    )
    .unwrap()
}

fn setup<S: VarStore>(s: &S, session: &str) {
    s.create_session(session, SessionOptions::new()).unwrap();
    s.register(session, VarDef::new("x", VarType::Integer, 0))
        .unwrap();
}

/// `update` returns version N; a watch opened right after, identical to one
/// the client already has open (so it joins that one's state), starts at N
/// or later — for the client's own writes and for another writer's.
fn read_your_writes<S: VarStore, W: VarStore>(client: &S, other: &W, session: &str) {
    setup(client, session);
    for opts in [WatchOptions::new(), WatchOptions::new().coalesce()] {
        let _held = client.watch(session, ["x"], opts.clone()).unwrap();
        for round in 0..100i64 {
            let version = if round % 2 == 0 {
                client.update(session, "x", round + 1).unwrap()
            } else {
                other.update(session, "x", round + 1).unwrap()
            };
            let mut w = client.watch(session, ["x"], opts.clone()).unwrap();
            let first = w.recv_timeout(Duration::from_secs(20)).unwrap();
            assert!(first.is_initial(), "{first:?}");
            assert!(
                first.version() >= version,
                "round {round}: a watch opened after version {version} was acknowledged starts at version {}",
                first.version()
            );
        }
    }
    client.delete_session(session).unwrap();
}

/// A coalescing watch whose reader wakes after five writes (spaced a few
/// milliseconds apart, so that each reaches the client on its own) gets one
/// state, with the four it passed over counted.
fn coalescing<S: VarStore>(client: &S, session: &str) {
    setup(client, session);
    for opts in [
        WatchOptions::new().coalesce().include_initial(false),
        WatchOptions::new()
            .throttle(Duration::from_millis(1))
            .include_initial(false),
    ] {
        let mut w = client.watch(session, ["x"], opts.clone()).unwrap();
        let start = client.get(session, "x").unwrap().version();
        for i in 1..=5 {
            client.update(session, "x", 1000 + i).unwrap();
            std::thread::sleep(Duration::from_millis(3));
        }
        // A watch identical to `w` starts only once the client's copy of
        // their shared state holds every write above: so does `w`'s.
        let probe = client.watch(session, ["x"], opts).unwrap();
        std::thread::sleep(Duration::from_millis(5)); // a throttle's interval
        let e = w.recv_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(
            (e.kind(), e.version(), e.skipped()),
            (EventKind::Changed, start + 5, 4),
            "{e:?}"
        );
        assert_eq!(w.try_recv().unwrap_err(), TryRecvError::Empty);
        assert_eq!(w.stats().versions_skipped, 4);
        drop(probe);
    }
    client.delete_session(session).unwrap();
}

#[test]
fn the_memory_transport_closes_the_seams() {
    let store = SessionStore::new();
    let client = memory_client(&store);
    read_your_writes(&client, &store, "ryw");
    coalescing(&client, "coalescing");
}

#[cfg(feature = "grpc")]
#[test]
fn grpc_closes_the_seams() {
    use varwatch::transport::grpc::GrpcService;
    let store = SessionStore::new();
    let server = common::server::Server::start(GrpcService::new(store.clone()));
    let client = RemoteStore::connect(&server.addr, RemoteConfig::new()).unwrap();
    read_your_writes(&client, &store, "ryw");
    coalescing(&client, "coalescing");
}

#[cfg(feature = "etcd")]
#[test]
#[ignore = "needs etcd: scripts/with-etcd.sh cargo test --features etcd,server --test etcd -- --include-ignored"]
fn etcd_and_grpc_over_etcd_close_the_seams() {
    use varwatch::transport::grpc::GrpcService;
    let etcd = common::etcd::store("seams");
    let other = common::etcd::peer(&etcd, &common::etcd::endpoint("seams"));
    read_your_writes(&etcd, &other, "ryw-etcd");
    coalescing(&etcd, "coalescing-etcd");
    let server = common::server::Server::start(GrpcService::new(etcd.to_async()));
    let client = RemoteStore::connect(&server.addr, RemoteConfig::new()).unwrap();
    read_your_writes(&client, &other, "ryw-grpc-etcd");
    coalescing(&client, "coalescing-grpc-etcd");
}

/// Watches that join one shared subscription, each asked for and given up
/// at once (the async caller's future dropped, as a cancelled task drops
/// it), in bursts: every one is released, and the server holds no watch
/// afterwards. (Two joins answered by one progress message once left one
/// waiting forever.)
#[test]
fn joins_given_up_at_once_leave_nothing_behind() {
    use varwatch::AsyncVarStore;
    let store = SessionStore::new();
    setup(&store, "s");
    let client = memory_client(&store);
    let aio = client.to_async();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Busy threads beside it make the server's progress reads finish out
    // of order (they run on tasks of their own): an answer must still
    // cover every request up to its number, or a joiner waits for ever
    // and its upstream is never released.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    for round in 0..200 {
        rt.block_on(async {
            for _ in 0..20 {
                let fut = aio.watch("s", ["x"], WatchOptions::new());
                let mut fut = std::pin::pin!(fut);
                // Started, then dropped.
                let _ = std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx))).await;
                tokio::task::yield_now().await;
            }
        });
        common::wait_until("the server to drop every watch", || {
            store.session("s").unwrap().watchers == 0
        });
        let _ = round;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    busy.into_iter().for_each(|t| t.join().unwrap());
}

/// The client's half of a raw watch stream.
struct ClientSide(mpsc::UnboundedReceiver<ClientMessage>);

impl Stream for ClientSide {
    type Item = ClientMessage;
    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<ClientMessage>> {
        self.0.poll_recv(cx)
    }
}

/// The events of watch 1 on a raw stream until its `sync_complete`.
async fn first_group(stream: &mut varwatch::transport::ServerStream) -> Vec<(EventKind, String, u64)> {
    let mut out = Vec::new();
    loop {
        let m: ServerMessage = tokio::time::timeout(
            Duration::from_secs(20),
            std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)),
        )
        .await
        .expect("a message")
        .expect("the stream goes on")
        .expect("no stream error");
        for u in m.updates {
            assert!(u.end.is_none(), "the resume ended the watch: {u:?}");
            out.extend(
                u.events
                    .iter()
                    .map(|e| (e.kind(), e.variable_name().to_string(), e.version())),
            );
            if u.sync_complete.is_some() {
                return out;
            }
        }
    }
}

/// A resume accepts every identifier form a create accepts: targets by name
/// with versions keyed by id, or both by name; a variable deleted since is
/// reported with its deletion's version.
#[test]
fn a_resume_accepts_names_and_ids() {
    let store = SessionStore::new();
    store.create_session("s", SessionOptions::new()).unwrap();
    let x = store
        .register("s", VarDef::new("x", VarType::Integer, 0))
        .unwrap();
    let y = store
        .register("s", VarDef::new("y", VarType::Integer, 0))
        .unwrap();
    for v in 1..=3 {
        store.update("s", "x", v).unwrap();
    }
    store.delete_variable("s", "y").unwrap();
    let service = Service::new(store.clone());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cases = [
        ("names, versions by id", [x.clone(), y.clone()]),
        ("names, versions by name", ["x".to_string(), "y".to_string()]),
    ];
    for (case, keys) in cases {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut stream = rt
            .block_on(async { service.watch_stream(ClientSide(rx)) })
            .unwrap();
        let mut sub = Subscribe::new("s", WatchTarget::Variables(vec!["x".into(), "y".into()]));
        sub.resume = keys.iter().map(|k| (k.clone(), 0)).collect();
        tx.send(ClientMessage::Create(1, sub)).unwrap();
        let got = rt.block_on(first_group(&mut stream));
        assert_eq!(
            got,
            [
                (EventKind::Deleted, "y".to_string(), 1),
                (EventKind::Lagged { first: 1, last: 2 }, "x".to_string(), 2),
                (EventKind::Changed, "x".to_string(), 3),
            ],
            "{case}"
        );
    }
    // The same through the store API: a watch resumed by name.
    let mut w = store
        .watch("s", ["x"], WatchOptions::new().resume_from([("x", 2)]))
        .unwrap();
    let e = w.try_recv().unwrap();
    assert_eq!((e.kind(), e.version()), (EventKind::Changed, 3));
    assert_eq!(w.try_recv().unwrap_err(), TryRecvError::Empty);
}
