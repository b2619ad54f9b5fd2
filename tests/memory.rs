//! The transport layer without a network: the `Service` on its own, and a
//! `RemoteStore` over the `MemoryTransport`, whose "connection" the tests
//! cut and restore at will. Everything here is bounded in time and waits for
//! conditions, not for fixed sleeps.
#![cfg(all(feature = "transport", not(loom)))]

use std::collections::HashMap;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use futures_core::Stream;
use tokio::sync::mpsc;
use varwatch::transport::{
    ClientMessage, MemoryTransport, RemoteConfig, RemoteStore, Request, ServerMessage, ServerStream, Service,
    Subscribe, WatchEnd, WatchTarget,
};
#[allow(unused_imports)]
use varwatch::{AsyncVarStore, VarStore};
mod common;
use common::{store_with, wait_until};

use varwatch::{
    BatchUpdate, ErrorCode, EventKind, SessionOptions, SessionStore, UpdateOptions, Value, VarDef, VarType,
    WatchOptions,
};

fn fast() -> RemoteConfig {
    RemoteConfig::new()
        .heartbeats(Duration::from_millis(20), Duration::from_millis(500))
        .backoff(Duration::from_millis(5), Duration::from_millis(50))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A server message with its updates' parts put together (these tests
/// open one watch per raw stream).
#[derive(Debug)]
struct Flat {
    events: Vec<varwatch::WatchEvent>,
    sync_complete: Option<varwatch::transport::SyncComplete>,
    heartbeat: Option<u64>,
    end: Option<WatchEnd>,
}

async fn next_msg(s: &mut ServerStream) -> Option<varwatch::Result<ServerMessage>> {
    tokio::time::timeout(
        Duration::from_secs(20),
        poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)),
    )
    .await
    .expect("a server message within 20 s")
}

async fn next(s: &mut ServerStream) -> Option<varwatch::Result<Flat>> {
    let m = next_msg(s).await?;
    Some(m.map(|m: ServerMessage| {
        let mut flat = Flat {
            events: Vec::new(),
            sync_complete: None,
            heartbeat: m.heartbeat,
            end: None,
        };
        for u in m.updates {
            flat.events.extend(u.events);
            flat.sync_complete = flat.sync_complete.or(u.sync_complete);
            flat.end = flat.end.or(u.end);
        }
        flat
    }))
}

/// A raw watch stream on `service` with one watch (id 1) of `sub` on it.
fn open_raw(
    service: &Service,
    sub: Subscribe,
) -> varwatch::Result<(mpsc::UnboundedSender<ClientMessage>, ServerStream)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let stream = service.watch_stream(ClientSide(rx))?;
    tx.send(ClientMessage::Create(1, sub)).unwrap();
    Ok((tx, stream))
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

fn raw_watch(service: &Service, vars: &[&str]) -> (mpsc::UnboundedSender<ClientMessage>, ServerStream) {
    let target = WatchTarget::Variables(vars.iter().map(|v| v.to_string()).collect());
    open_raw(service, Subscribe::new("s", target)).unwrap()
}

/// While a writer keeps updating two variables, the connection is cut and
/// restored three times. The watch must end on the final versions, and each
/// variable's stream must be contiguous or explicit: every version is
/// delivered or named by a `Lagged` marker; no silent gap, no duplicate.
#[test]
fn a_watch_survives_cuts_while_writes_continue() {
    let store = store_with(&["x", "y"]);
    let transport = MemoryTransport::new(Service::new(store.clone()));
    let remote = RemoteStore::new(transport.clone(), fast()).unwrap();
    let mut w = remote.watch("s", ["x", "y"], WatchOptions::new()).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let final_version = Arc::new(AtomicU64::new(0));
    let writer = {
        let (store, done, final_version) = (store.clone(), done.clone(), final_version.clone());
        thread::spawn(move || {
            let mut i: i64 = 0;
            while !done.load(Ordering::Relaxed) || i < 1000 {
                i += 1;
                store.update("s", "x", i).unwrap();
                store.update("s", "y", -i).unwrap();
                if i % 20 == 0 {
                    thread::sleep(Duration::from_millis(1));
                }
            }
            final_version.store(i as u64, Ordering::Relaxed);
        })
    };
    let cutter = {
        let done = done.clone();
        thread::spawn(move || {
            for _ in 0..3 {
                thread::sleep(Duration::from_millis(30));
                transport.set_reachable(false);
                thread::sleep(Duration::from_millis(30));
                transport.set_reachable(true);
            }
            done.store(true, Ordering::Relaxed);
        })
    };
    let mut last: HashMap<String, u64> = HashMap::new();
    let (mut lagged, mut changed) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = final_version.load(Ordering::Relaxed);
        if n > 0 && last.get("x") == Some(&n) && last.get("y") == Some(&n) {
            break;
        }
        assert!(Instant::now() < deadline, "not caught up: {last:?}");
        // Short waits: the final version is known only once the writer stops.
        let Ok(e) = w.recv_timeout(Duration::from_millis(50)) else {
            continue;
        };
        let name = e.variable_name().to_string();
        let prev = last.get(&name).copied();
        match e.kind() {
            EventKind::Initial => assert_eq!(prev, None, "a second initial state for {name}"),
            EventKind::Changed => {
                changed += 1;
                assert_eq!(Some(e.version() - 1), prev, "{name}: silent gap or duplicate");
            }
            EventKind::Lagged { first, .. } => {
                lagged += 1;
                assert_eq!(
                    Some(first - 1),
                    prev,
                    "{name}: a lag marker not after the last version"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        last.insert(name, e.version()); // a Lagged marker's version is its last
    }
    writer.join().unwrap();
    cutter.join().unwrap();
    assert!(w.stats().reconnects >= 1, "{:?}", w.stats());
    assert!(changed > 0, "{lagged} lag markers and no change");
    // Nothing more: no duplicate arrives after the final versions.
    store.update("s", "x", 0).unwrap();
    let e = w.recv_timeout(Duration::from_secs(20)).unwrap();
    let n = final_version.load(Ordering::Relaxed);
    assert_eq!((e.variable_name(), e.version()), ("x", n + 1));
}

/// A client that neither reads nor heartbeats is dropped at the server's
/// timeout even while the server waits for room to send, and its
/// registration is gone.
#[test]
fn a_client_that_stops_reading_and_heartbeating_is_dropped() {
    let store = store_with(&["x"]);
    let service = Service::new(store.clone()).heartbeat_timeout(Duration::from_millis(300));
    let rt = rt();
    let (_client, stream) = rt.block_on(async { raw_watch(&service, &["x"]) });
    // The stream's task registers the watch when it runs.
    rt.block_on(async {
        while store.list_watchers("s").unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    // Many separate messages, far more than the server's queue holds; the
    // stream is never read.
    rt.block_on(async {
        for i in 1..=200 {
            store.update("s", "x", i).unwrap();
            tokio::task::yield_now().await;
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !store.list_watchers("s").unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the silent client's registration is still there"
        );
        rt.block_on(async { tokio::time::sleep(Duration::from_millis(10)).await });
    }
    drop(stream);
}

/// A client that heartbeats is kept past the timeout; one that goes silent
/// is told why its stream ended.
#[test]
fn heartbeats_keep_a_stream_and_silence_ends_it() {
    let store = store_with(&["x"]);
    let service = Service::new(store.clone())
        .heartbeat_interval(Duration::from_secs(60))
        .heartbeat_timeout(Duration::from_millis(200));
    rt().block_on(async {
        let (client, mut stream) = raw_watch(&service, &["x"]);
        let sync = next(&mut stream).await.unwrap().unwrap();
        assert_eq!(
            sync.sync_complete.map(|s| s.revision),
            Some(store.session("s").unwrap().revision)
        );
        assert_eq!(sync.events.len(), 1);
        for seq in 1..=6 {
            tokio::time::sleep(Duration::from_millis(80)).await;
            client.send(ClientMessage::Heartbeat(seq)).unwrap();
            let echo = next(&mut stream).await.unwrap().unwrap();
            assert_eq!(echo.heartbeat, Some(seq));
        }
        assert_eq!(
            store.list_watchers("s").unwrap().len(),
            1,
            "dropped despite heartbeats"
        );
        // Acks are recorded (and an older one changes nothing).
        client.send(ClientMessage::Ack(1, 5)).unwrap();
        client.send(ClientMessage::Ack(1, 3)).unwrap();
        client.send(ClientMessage::Heartbeat(7)).unwrap();
        next(&mut stream).await.unwrap().unwrap();
        assert_eq!(store.list_watchers("s").unwrap()[0].acked_revision, Some(5));
        // Silence.
        let end = next(&mut stream).await.unwrap().unwrap_err();
        assert_eq!(end.code(), ErrorCode::DeadlineExceeded, "{end}");
        assert!(next(&mut stream).await.is_none());
        assert!(store.list_watchers("s").unwrap().is_empty());
    });
}

/// Under load several events share a message, within the count and the
/// byte budget; the stream stays in order.
#[test]
fn bursts_are_batched_within_the_byte_budget() {
    let store = SessionStore::new();
    store.create_session("s", SessionOptions::new()).unwrap();
    store
        .register("s", VarDef::new("x", VarType::String, ""))
        .unwrap();
    let service = Service::new(store.clone()).max_message_value_bytes(2000);
    rt().block_on(async {
        let (_client, mut stream) = raw_watch(&service, &["x"]);
        next(&mut stream).await.unwrap().unwrap(); // the snapshot
        // All written before the server's task runs (one thread): one burst.
        for i in 1..=10 {
            store.update("s", "x", format!("{i:0>400}")).unwrap();
        }
        let mut sizes = Vec::new();
        let mut version = 0;
        while version < 10 {
            let m = next(&mut stream).await.unwrap().unwrap();
            for e in &m.events {
                assert_eq!(e.version(), version + 1);
                version = e.version();
            }
            sizes.push(m.events.len());
        }
        // Each event carries a 400-byte value and its 400-byte old value
        // (plus id, name and a fixed allowance): with a 2000-byte budget, two
        // per message (the budget is strict; a single event larger than it
        // goes alone).
        assert_eq!(sizes, [2, 2, 2, 2, 2]);
    });
}

/// Requests over the service's limits fail with `LimitExceeded`
/// (RESOURCE_EXHAUSTED on the wire) and change nothing.
#[test]
fn limits_refuse_and_change_nothing() {
    let store = store_with(&["a", "b", "c"]);
    store
        .register("s", VarDef::new("text", VarType::String, ""))
        .unwrap();
    let service = Service::new(store.clone()).max_batch_items(2).max_value_bytes(16);
    let items = vec![
        BatchUpdate::new("a", 1),
        BatchUpdate::new("b", 1),
        BatchUpdate::new("c", 1),
    ];
    let err = common::ready(service.call(Request::UpdateMany {
        session: "s".into(),
        items,
        options: UpdateOptions::new(),
        atomic: false,
    }))
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ResourceExhausted);
    assert_eq!(
        err.to_string(),
        "items in one batch: 3 is over the server's limit of 2"
    );
    let err = common::ready(service.call(Request::Update {
        session: "s".into(),
        variable: "text".into(),
        value: Value::from("x".repeat(17)),
        options: UpdateOptions::new(),
    }))
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ResourceExhausted);
    assert!(err.to_string().contains("`text`"), "{err}");
    for v in ["a", "b", "c", "text"] {
        assert_eq!(store.get("s", v).unwrap().version(), 0);
    }
    let target = WatchTarget::Variables(vec!["a".into(), "b".into(), "c".into()]);
    rt().block_on(async {
        let (_tx, mut stream) = open_raw(&service, Subscribe::new("s", target)).unwrap();
        let m = next(&mut stream).await.unwrap().unwrap();
        let Some(WatchEnd::Failed(err)) = m.end else {
            panic!("the watch must fail alone")
        };
        assert_eq!(err.code(), ErrorCode::ResourceExhausted);
    });
    assert!(store.list_watchers("s").unwrap().is_empty());
}

/// Calls fail with `Unavailable` while the transport is cut, and a watch
/// opened before resumes once it is back.
#[test]
fn calls_fail_while_cut_and_work_again_after() {
    let store = store_with(&["x"]);
    let transport = MemoryTransport::new(Service::new(store.clone()));
    let remote = RemoteStore::new(transport.clone(), fast().call_timeout(Duration::from_secs(1))).unwrap();
    let mut w = remote
        .watch("s", ["x"], WatchOptions::new().include_initial(false))
        .unwrap();
    transport.set_reachable(false);
    assert_eq!(
        remote.update("s", "x", 1).unwrap_err().code(),
        ErrorCode::Unavailable
    );
    // A new subscription needs the server; so does an identical one, which
    // shares the watch already on the wire but starts from the client's
    // state only once the server has confirmed it is as new as the session
    // (read-your-writes): while cut off, both fail by their deadline.
    assert_eq!(
        remote.watch_session("s", WatchOptions::new()).unwrap_err().code(),
        ErrorCode::Unavailable
    );
    let twin = remote.watch("s", ["x"], WatchOptions::new()).unwrap_err();
    assert!(
        matches!(twin.code(), ErrorCode::Unavailable | ErrorCode::DeadlineExceeded),
        "{twin}"
    );
    store.update("s", "x", 2).unwrap(); // written while the watch is cut off
    transport.set_reachable(true);
    let e = w
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e:?} {:?}", w.stats()));
    assert_eq!(
        (e.kind(), e.version(), e.value()),
        (EventKind::Changed, 1, Some(&Value::Integer(2)))
    );
    assert!(w.stats().reconnects >= 1);
}

/// A watch whose session is deleted while it is cut off ends with
/// `SessionClosed` when it comes back.
#[test]
fn a_session_deleted_while_away_closes_the_watch() {
    let store = store_with(&["x"]);
    let transport = MemoryTransport::new(Service::new(store.clone()));
    let remote = RemoteStore::new(transport.clone(), fast()).unwrap();
    let mut w = remote
        .watch("s", ["x"], WatchOptions::new().include_initial(false))
        .unwrap();
    transport.set_reachable(false);
    // The cut stream is gone on the server's side too.
    wait_until("the cut stream's registration to go", || {
        store.list_watchers("s").unwrap().is_empty()
    });
    store.delete_session("s").unwrap();
    transport.set_reachable(true);
    let e = w.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(e.kind(), EventKind::SessionClosed);
    assert!(w.recv_timeout(Duration::from_secs(20)).is_err());
}

/// The retry policy: a watch cut off for good ends with `Disconnected`.
#[test]
fn a_watch_cut_off_for_good_ends_with_disconnected() {
    let store = store_with(&["x"]);
    let transport = MemoryTransport::new(Service::new(store));
    let remote = RemoteStore::new(transport.clone(), fast().max_failures(3)).unwrap();
    let mut w = remote
        .watch("s", ["x"], WatchOptions::new().include_initial(false))
        .unwrap();
    transport.set_reachable(false);
    let e = w.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(e.kind(), EventKind::Disconnected);
    assert!(matches!(
        w.recv_timeout(Duration::from_secs(20)),
        Err(varwatch::RecvTimeoutError::Closed)
    ));
}

async fn next_event(w: &mut varwatch::Watch) -> varwatch::WatchEvent {
    w.recv_async().await.expect("an event")
}

/// The async view from an application's own runtime: the same operations,
/// a watch as a `Stream`, and dropping the last handle inside async code.
#[test]
fn the_async_client_works_from_another_runtime() {
    let store = store_with(&[]);
    let remote = RemoteStore::new(MemoryTransport::new(Service::new(store.clone())), fast())
        .unwrap()
        .to_async();
    rt().block_on(async move {
        remote
            .register("s", VarDef::new("x", VarType::Integer, 1))
            .await
            .unwrap();
        let mut w = remote.watch("s", ["x"], WatchOptions::new()).await.unwrap();
        assert_eq!(remote.update("s", "x", 2).await.unwrap(), 1);
        assert!(next_event(&mut w).await.is_initial());
        assert_eq!(next_event(&mut w).await.value(), Some(&Value::Integer(2)));
        assert_eq!(
            remote.get_many("s", &["x", "nope"]).await.unwrap().missing,
            ["nope"]
        );
        assert_eq!(
            remote.session("nope").await.unwrap_err().code(),
            ErrorCode::NotFound
        );
        let blocking = remote.to_blocking();
        drop(remote);
        drop(w);
        drop(blocking); // the last handle, dropped inside a runtime: no panic
    });
    assert_eq!(store.value("s", "x").unwrap(), Value::Integer(2));
}

/// A subscription's capacity bounds how far its server-side watch may fall
/// behind: past it, the client gets an exact `Lagged` marker, then the state.
#[test]
fn a_small_capacity_resyncs_with_an_exact_lag_marker() {
    let store = store_with(&["x"]);
    let service = Service::new(store.clone());
    rt().block_on(async {
        let mut sub = Subscribe::new("s", WatchTarget::Variables(vec!["x".into()]));
        sub.capacity = 2;
        let (_tx, mut stream) = open_raw(&service, sub).unwrap();
        next(&mut stream).await.unwrap().unwrap(); // the snapshot
        for i in 1..=10 {
            store.update("s", "x", i).unwrap(); // before the server's task runs
        }
        let m = next(&mut stream).await.unwrap().unwrap();
        let got: Vec<(EventKind, u64)> = m.events.iter().map(|e| (e.kind(), e.version())).collect();
        assert_eq!(
            got,
            [
                (EventKind::Lagged { first: 1, last: 9 }, 9),
                (EventKind::Changed, 10)
            ]
        );
    });
}

fn fast_service(store: &SessionStore) -> Service {
    Service::new(store.clone())
        .heartbeat_interval(Duration::from_millis(20))
        .heartbeat_timeout(Duration::from_millis(500))
}

/// Cuts the transport and waits until the server has dropped the cut
/// stream (its registration gone), so that what follows happens "while
/// away"; then the caller changes things and restores it.
fn cut(transport: &MemoryTransport, store: &SessionStore, session: &str) {
    transport.set_reachable(false);
    wait_until("the cut stream's registration to go", || {
        store.list_watchers(session).map_or(true, |w| w.is_empty())
    });
}

fn recv(w: &mut varwatch::Watch) -> varwatch::WatchEvent {
    w.recv_timeout(Duration::from_secs(20)).expect("an event")
}

/// A named watch goes on with its other variables after one is deleted and
/// the connection blips (it resumes by id, and the deleted one is not an
/// error).
#[test]
fn a_named_watch_survives_a_deletion_then_a_reconnect() {
    let store = store_with(&["x", "y"]);
    let transport = MemoryTransport::new(fast_service(&store));
    let remote = RemoteStore::new(transport.clone(), fast()).unwrap();
    let mut w = remote
        .watch("s", ["x", "y"], WatchOptions::new().include_initial(false))
        .unwrap();
    store.delete_variable("s", "x").unwrap();
    assert_eq!(recv(&mut w).kind(), EventKind::Deleted);
    cut(&transport, &store, "s");
    transport.set_reachable(true);
    store.update("s", "y", 1).unwrap();
    let e = recv(&mut w);
    assert_eq!(
        (e.kind(), e.variable_name(), e.version()),
        (EventKind::Changed, "y", 1)
    );
}

/// While a watch is away, its variable is updated twice and deleted, and a
/// new variable takes its name: the watch learns exactly that (the skipped
/// versions, then the deletion at its version) and does not follow the
/// newcomer.
#[test]
fn a_deletion_while_away_is_reported_exactly() {
    let store = store_with(&["x", "y"]);
    let transport = MemoryTransport::new(fast_service(&store));
    let remote = RemoteStore::new(transport.clone(), fast()).unwrap();
    let mut w = remote
        .watch("s", ["x", "y"], WatchOptions::new().include_initial(false))
        .unwrap();
    store.update("s", "x", 1).unwrap();
    assert_eq!(recv(&mut w).version(), 1);
    cut(&transport, &store, "s");
    store.update("s", "x", 2).unwrap();
    store.update("s", "x", 3).unwrap();
    store.delete_variable("s", "x").unwrap(); // version 4
    store
        .register("s", VarDef::new("x", VarType::Integer, 100))
        .unwrap();
    transport.set_reachable(true);
    let e = recv(&mut w);
    assert_eq!(
        (e.kind(), e.variable_name()),
        (EventKind::Lagged { first: 2, last: 3 }, "x")
    );
    let e = recv(&mut w);
    assert_eq!(
        (e.kind(), e.variable_name(), e.version()),
        (EventKind::Deleted, "x", 4)
    );
    store.update("s", "x", 101).unwrap(); // the newcomer: not watched
    store.update("s", "y", 1).unwrap();
    let e = recv(&mut w);
    assert_eq!((e.variable_name(), e.version()), ("y", 1));
}

/// A variable registered while a whole-session watch was away arrives with
/// a marker for the versions it never saw, then its state.
#[test]
fn a_variable_registered_while_away_is_announced() {
    let store = store_with(&["x"]);
    let transport = MemoryTransport::new(fast_service(&store));
    let remote = RemoteStore::new(transport.clone(), fast()).unwrap();
    let mut w = remote
        .watch_session("s", WatchOptions::new().include_initial(false))
        .unwrap();
    cut(&transport, &store, "s");
    store
        .register("s", VarDef::new("n", VarType::Integer, 0))
        .unwrap();
    store.update("s", "n", 1).unwrap();
    store.update("s", "n", 2).unwrap();
    transport.set_reachable(true);
    let e = recv(&mut w);
    assert_eq!(
        (e.kind(), e.variable_name()),
        (EventKind::Lagged { first: 0, last: 1 }, "n")
    );
    let e = recv(&mut w);
    assert_eq!(
        (e.kind(), e.version(), e.value()),
        (EventKind::Initial, 2, Some(&Value::Integer(2)))
    );
}

/// A session deleted and created again under the same id while a watch was
/// away is another session: the watch ends with `SessionClosed` instead of
/// resuming into it.
#[test]
fn a_session_recreated_while_away_closes_the_watch() {
    let store = store_with(&["x"]);
    let transport = MemoryTransport::new(fast_service(&store));
    let remote = RemoteStore::new(transport.clone(), fast()).unwrap();
    let mut w = remote
        .watch("s", ["x"], WatchOptions::new().include_initial(false))
        .unwrap();
    cut(&transport, &store, "s");
    store.delete_session("s").unwrap();
    store.create_session("s", SessionOptions::new()).unwrap();
    store
        .register("s", VarDef::new("x", VarType::Integer, 0))
        .unwrap();
    transport.set_reachable(true);
    assert_eq!(recv(&mut w).kind(), EventKind::SessionClosed);
    assert!(w.recv_timeout(Duration::from_secs(20)).is_err());
    assert!(store.list_watchers("s").unwrap().is_empty());
}

/// A snapshot larger than a message is cut into several; `sync_complete`
/// comes with the last part only.
#[test]
fn a_large_snapshot_comes_in_parts() {
    let store = store_with(&["a", "b", "c", "d", "e"]);
    let service = Service::new(store).max_events_per_message(2);
    rt().block_on(async {
        let (_tx, mut stream) = open_raw(&service, Subscribe::new("s", WatchTarget::Session)).unwrap();
        let mut parts = Vec::new();
        loop {
            let m = next(&mut stream).await.unwrap().unwrap();
            parts.push((m.events.len(), m.sync_complete.is_some()));
            if m.sync_complete.is_some() {
                break;
            }
        }
        assert_eq!(parts, [(2, false), (2, false), (1, true)]);
    });
}

/// A user slower than the heartbeat timeout is not taken for a dead
/// connection: the follower heartbeats while it waits, the server reads
/// them while its queue is full, and the watch falls behind and resyncs
/// instead of reconnecting.
#[test]
fn a_slow_reader_is_not_disconnected() {
    let store = store_with(&["x"]);
    let service = Service::new(store.clone())
        .heartbeat_interval(Duration::from_millis(20))
        .heartbeat_timeout(Duration::from_millis(200));
    let config = fast()
        .heartbeats(Duration::from_millis(20), Duration::from_millis(200))
        .buffer(4);
    let remote = RemoteStore::new(MemoryTransport::new(service), config).unwrap();
    let mut w = remote
        .watch("s", ["x"], WatchOptions::new().include_initial(false))
        .unwrap();
    for i in 1..=3000 {
        store.update("s", "x", i).unwrap();
    }
    thread::sleep(Duration::from_millis(800)); // the user is busy: 4 timeouts
    let mut last = 0;
    while last < 3000 {
        let e = recv(&mut w);
        match e.kind() {
            EventKind::Changed => assert_eq!(e.version(), last + 1),
            EventKind::Lagged { first, .. } => assert_eq!(first, last + 1),
            other => panic!("unexpected {other:?}"),
        }
        last = e.version();
    }
    assert_eq!(w.stats().reconnects, 0, "a slow reader was disconnected");
}

/// After `close_watches`, open streams end and new ones are refused.
#[test]
fn a_closed_service_refuses_new_watches() {
    let store = store_with(&["x"]);
    let service = Service::new(store);
    rt().block_on(async {
        let (_tx, mut open) = open_raw(&service, Subscribe::new("s", WatchTarget::Session)).unwrap();
        next(&mut open).await.unwrap().unwrap();
        service.close_watches();
        let end = next(&mut open).await.unwrap().unwrap_err();
        assert_eq!(end.code(), ErrorCode::Unavailable);
        let err = open_raw(&service, Subscribe::new("s", WatchTarget::Session)).unwrap_err();
        assert_eq!(err.code(), ErrorCode::Unavailable);
    });
}

/// Hostile subscriptions (absurd versions, unknown ids, a huge capacity)
/// get an answer, never a panic, and leave nothing registered once the
/// client goes.
#[test]
fn hostile_subscriptions_are_answered_without_panicking() {
    let store = store_with(&["x"]);
    let id = store.get("s", "x").unwrap().id().to_string();
    store.update("s", "x", 1).unwrap();
    let service = Service::new(store.clone());
    rt().block_on(async {
        for (resume, incarnation) in [
            (
                vec![(id.clone(), u64::MAX), ("bogus".to_string(), u64::MAX)],
                None,
            ),
            (vec![(id.clone(), 0), ("".to_string(), 0)], Some(u64::MAX)),
            (vec![("bogus".to_string(), 3)], Some(0)),
        ] {
            let mut sub = Subscribe::new("s", WatchTarget::Variables(vec![id.clone(), "bogus".into()]));
            sub.resume = resume.into_iter().collect();
            sub.session_incarnation = incarnation;
            sub.capacity = usize::MAX;
            let (tx, mut stream) = open_raw(&service, sub).unwrap();
            let m = next(&mut stream).await.unwrap().unwrap();
            match m.end {
                Some(WatchEnd::Failed(e)) => assert_eq!(e.code(), ErrorCode::NotFound, "{e}"),
                _ => assert!(m.sync_complete.is_some()),
            }
            drop(tx);
            while next(&mut stream).await.is_some() {}
        }
    });
    wait_until("every hostile stream's registration to go", || {
        store.list_watchers("s").unwrap().is_empty()
    });
}

/// Many threads at once: four writers (single updates and atomic batches
/// over eight variables), six remote watches on two clients (named subsets
/// and whole-session), consumers on their own threads, and the connection
/// cut five times. Every watch must end on the store's final versions, with
/// each variable's stream contiguous or explicitly `Lagged`.
#[test]
fn stress_many_writers_and_remote_watches_through_cuts() {
    const VARS: usize = 8;
    let names: Vec<String> = (0..VARS).map(|i| format!("v{i}")).collect();
    let store = store_with(&names.iter().map(String::as_str).collect::<Vec<_>>());
    let transport = MemoryTransport::new(fast_service(&store));
    let clients = [
        RemoteStore::new(transport.clone(), fast()).unwrap(),
        RemoteStore::new(transport.clone(), fast()).unwrap(),
    ];
    let subsets: Vec<Option<Vec<&str>>> = vec![
        Some(vec!["v0", "v1", "v2"]),
        Some(vec!["v3"]),
        Some(vec!["v4", "v5", "v6", "v7"]),
        None,
        None,
        Some(vec!["v0", "v7"]),
    ];
    let watches: Vec<_> = subsets
        .iter()
        .enumerate()
        .map(|(i, subset)| {
            let client = &clients[i % 2];
            match subset {
                Some(vars) => client
                    .watch("s", vars.iter().copied(), WatchOptions::new())
                    .unwrap(),
                None => client.watch_session("s", WatchOptions::new()).unwrap(),
            }
        })
        .collect();
    let writers: Vec<_> = (0..4u64)
        .map(|t| {
            let store = store.clone();
            thread::spawn(move || {
                let mut x = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                for i in 0..600i64 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let a = (x % VARS as u64) as usize;
                    if x % 3 == 0 {
                        let batch: Vec<BatchUpdate> = (0..3)
                            .map(|k| BatchUpdate::new(format!("v{}", (a + k) % VARS), i))
                            .collect();
                        store.update_atomic("s", batch, &UpdateOptions::new()).unwrap();
                    } else {
                        store.update("s", &format!("v{a}"), i * 10 + t as i64).unwrap();
                    }
                    if i % 10 == 0 {
                        thread::sleep(Duration::from_millis(1));
                    }
                }
            })
        })
        .collect();
    let cutter = {
        let transport = transport.clone();
        thread::spawn(move || {
            for _ in 0..5 {
                thread::sleep(Duration::from_millis(15));
                transport.set_reachable(false);
                thread::sleep(Duration::from_millis(10));
                transport.set_reachable(true);
            }
        })
    };
    // Consumers run while the writers and the cutter do; they learn the
    // final versions once the writers are done.
    let finals: Arc<std::sync::OnceLock<HashMap<String, u64>>> = Arc::default();
    let consumers: Vec<_> = watches
        .into_iter()
        .zip(subsets)
        .map(|(mut w, subset)| {
            let finals = finals.clone();
            let subset: Option<Vec<String>> = subset.map(|v| v.iter().map(|s| s.to_string()).collect());
            thread::spawn(move || {
                let mut last: HashMap<String, u64> = HashMap::new();
                let deadline = Instant::now() + Duration::from_secs(60);
                let done = |last: &HashMap<String, u64>| {
                    finals.get().is_some_and(|f| {
                        f.iter()
                            .filter(|(n, _)| subset.as_ref().is_none_or(|s| s.contains(n)))
                            .all(|(n, v)| last.get(n) == Some(v))
                    })
                };
                while !done(&last) {
                    assert!(Instant::now() < deadline, "not caught up: {last:?}");
                    let Ok(e) = w.recv_timeout(Duration::from_millis(50)) else {
                        continue;
                    };
                    let name = e.variable_name().to_string();
                    if let Some(s) = &subset {
                        assert!(s.contains(&name), "an event for unwatched `{name}`");
                    }
                    let prev = last.get(&name).copied();
                    match e.kind() {
                        EventKind::Initial => assert_eq!(prev, None, "{name}: second initial"),
                        EventKind::Changed => {
                            assert_eq!(Some(e.version() - 1), prev, "{name}: gap or repeat")
                        }
                        EventKind::Lagged { first, .. } => {
                            assert_eq!(Some(first - 1), prev, "{name}: bad marker")
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                    last.insert(name, e.version());
                }
                w.stats()
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    cutter.join().unwrap();
    let _ = finals.set(
        names
            .iter()
            .map(|n| (n.clone(), store.get("s", n).unwrap().version()))
            .collect(),
    );
    let mut reconnects = 0;
    for c in consumers {
        reconnects += c.join().unwrap().reconnects;
    }
    assert!(reconnects > 0, "no watch noticed a cut");
    wait_until(
        "no remote watch left registered after the watches are dropped",
        || store.list_watchers("s").unwrap().is_empty(),
    );
}

/// A resume looks ids up strictly: a variable *named* like the deleted
/// one's id cannot even exist (names of the id form are refused), and a
/// newcomer taking the deleted one's name is not followed.
#[test]
fn a_resume_never_takes_a_name_for_an_id() {
    let store = store_with(&["x"]);
    let id = store.get("s", "x").unwrap().id().to_string();
    let transport = MemoryTransport::new(fast_service(&store));
    let remote = RemoteStore::new(transport.clone(), fast()).unwrap();
    let mut w = remote
        .watch("s", ["x"], WatchOptions::new().include_initial(false))
        .unwrap();
    cut(&transport, &store, "s");
    store.delete_variable("s", "x").unwrap();
    let err = store
        .register("s", VarDef::new(id.as_str(), VarType::Integer, 5))
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument, "{err}");
    store
        .register("s", VarDef::new("x", VarType::Integer, 5))
        .unwrap();
    transport.set_reachable(true);
    let e = recv(&mut w);
    assert_eq!((e.kind(), e.variable_id()), (EventKind::Deleted, id.as_str()));
    // Its only variable is gone: the watch is over, whatever is named `x` now.
    assert!(matches!(
        w.recv_timeout(Duration::from_secs(20)),
        Err(varwatch::RecvTimeoutError::Closed)
    ));
}

/// `close_watches` ends a stream even while the server is waiting for a
/// slow (but heartbeating) client to make room.
#[test]
fn closing_the_service_ends_a_stream_stuck_on_a_slow_client() {
    let store = store_with(&["x"]);
    let service = Service::new(store.clone())
        .heartbeat_interval(Duration::from_millis(20))
        .heartbeat_timeout(Duration::from_secs(30));
    let config = fast()
        .heartbeats(Duration::from_millis(20), Duration::from_secs(30))
        .buffer(1);
    let remote = RemoteStore::new(MemoryTransport::new(service.clone()), config).unwrap();
    let _w = remote
        .watch("s", ["x"], WatchOptions::new().include_initial(false))
        .unwrap(); // never read
    for i in 1..=5000 {
        store.update("s", "x", i).unwrap();
        if i % 100 == 0 {
            thread::sleep(Duration::from_millis(1)); // separate messages
        }
    }
    service.close_watches();
    wait_until("the stuck stream's registration to go", || {
        store.list_watchers("s").unwrap().is_empty()
    });
}

/// The service caps open watches over all streams, a watch over the cap
/// fails alone (its stream goes on), and a watch's slot is freed when it
/// ends.
#[test]
fn open_watches_are_capped_and_freed() {
    let store = store_with(&["x"]);
    let service = Service::new(store).max_watches(2);
    rt().block_on(async {
        let sub = || Subscribe::new("s", WatchTarget::Session);
        let (tx, mut stream) = open_raw(&service, sub()).unwrap();
        tx.send(ClientMessage::Create(2, sub())).unwrap();
        tx.send(ClientMessage::Create(3, sub())).unwrap();
        // id -> synced, or the error it failed with
        let mut outcome: HashMap<u64, Result<(), varwatch::Error>> = HashMap::new();
        while outcome.len() < 3 {
            for u in next_msg(&mut stream).await.unwrap().unwrap().updates {
                for &id in &u.ids {
                    if u.sync_complete.is_some() {
                        outcome.insert(id, Ok(()));
                    }
                    if let Some(WatchEnd::Failed(e)) = &u.end {
                        outcome.insert(id, Err(e.clone()));
                    }
                }
            }
        }
        assert!(outcome[&1].is_ok() && outcome[&2].is_ok());
        let err = outcome[&3].as_ref().unwrap_err();
        assert_eq!(err.code(), ErrorCode::ResourceExhausted);
        assert_eq!(
            err.to_string(),
            "open watches on the server: 3 is over the server's limit of 2"
        );
        // A watch ends: its slot comes back, on this stream or another.
        tx.send(ClientMessage::Cancel(1)).unwrap();
        let mut cancelled = false;
        while !cancelled {
            for u in next_msg(&mut stream).await.unwrap().unwrap().updates {
                cancelled |= u.ids.contains(&1) && u.end == Some(WatchEnd::Cancelled);
            }
        }
        let (_tx2, mut other) = open_raw(&service, sub()).unwrap();
        let m = next(&mut other).await.unwrap().unwrap();
        assert!(m.sync_complete.is_some() && m.end.is_none());
        assert_eq!(service.open_watches(), 2);
    });
}

/// Remote watches keep the cut guarantee end to end: server-side watches
/// that resync (capacities 1..=8) or coalesce, messages of at most three
/// events (so that groups are cut across messages and held back until
/// whole), and the connection cut now and then (so that resumes happen,
/// and half-received groups are dropped and resumed). Every history is
/// checked against the writers' truth at every group boundary.
#[test]
fn remote_watches_hold_only_states_that_existed() {
    use common::history::{self, WatchSpec};
    let store = SessionStore::new();
    store.create_session("s", SessionOptions::new()).unwrap();
    // Heartbeats every 2 ms, so that some fall between two parts of a group.
    let service = fast_service(&store)
        .max_events_per_message(3)
        .heartbeat_interval(Duration::from_millis(2));
    let transport = MemoryTransport::new(service);
    let client = RemoteStore::new(transport.clone(), fast().buffer(4)).unwrap();
    let workload = history::Workload::start(&store, 5, 2, 3_000, Some(10));
    let done = workload.done.clone();
    let cutter = {
        let (transport, done) = (transport.clone(), done.clone());
        thread::spawn(move || {
            while !done.load(Ordering::Acquire) {
                thread::sleep(Duration::from_millis(40));
                transport.set_reachable(false);
                thread::sleep(Duration::from_millis(5));
                transport.set_reachable(true);
            }
        })
    };
    let specs: Vec<(Option<Vec<String>>, WatchOptions, bool)> = vec![
        (
            Some(vec!["v0".into(), "v1".into()]),
            WatchOptions::new().capacity(1),
            false,
        ),
        (
            Some(vec!["v2".into(), "v3".into(), "v4".into()]),
            WatchOptions::new().capacity(4),
            false,
        ),
        (None, WatchOptions::new().capacity(2), false),
        (None, WatchOptions::new().capacity(8), false),
        (None, WatchOptions::new().coalesce(), true),
        (
            Some(vec!["v0".into(), "v4".into()]),
            WatchOptions::new().coalesce(),
            true,
        ),
        (None, WatchOptions::new(), false),
        // The first variables of the session: its batches often equal the
        // first part of a whole-session watch's cut group, so updates are
        // shared and then split where only one of them goes on.
        (
            Some(vec!["v0".into(), "v1".into(), "v2".into()]),
            WatchOptions::new().capacity(64),
            false,
        ),
    ];
    let consumers: Vec<_> = specs
        .into_iter()
        .enumerate()
        .map(|(i, (names, opts, coalescing))| {
            let (client, done) = (client.clone(), done.clone());
            thread::spawn(move || {
                let mut w = match &names {
                    Some(n) => client.watch("s", n, opts).unwrap(),
                    None => client.watch_session("s", opts).unwrap(),
                };
                let mut events = Vec::new();
                let mut k = 0u64;
                while !done.load(Ordering::Acquire) {
                    k += 1;
                    if let Ok(e) = w.recv_timeout(Duration::from_millis(5)) {
                        events.push(e);
                    }
                    if (k + i as u64).is_multiple_of(64) {
                        thread::sleep(Duration::from_millis(3)); // fall behind
                    }
                }
                while let Ok(e) = w.try_recv() {
                    events.push(e);
                }
                let spec = WatchSpec {
                    names,
                    coalescing,
                    overflowed: true, // resumes may skip versions at any time
                };
                (events, spec, w.stats().reconnects)
            })
        })
        .collect();
    let truth = workload.finish();
    cutter.join().unwrap();
    let (mut events, mut boundaries, mut reconnects, mut lags) = (0, 0, 0, 0);
    for c in consumers {
        let (h, spec, r) = c.join().unwrap();
        boundaries += history::check(&h, &spec, &truth);
        events += h.len();
        reconnects += r;
        lags += h
            .iter()
            .filter(|e| matches!(e.kind(), EventKind::Lagged { .. }))
            .count();
    }
    eprintln!("remote cuts: {events} events, {boundaries} boundaries, {reconnects} reconnects, {lags} lags");
    assert!(events > 500, "only {events} events checked");
    assert!(boundaries > 100, "only {boundaries} group boundaries checked");
    assert!(reconnects > 0, "no watch noticed a cut");
    assert!(lags > 0, "no remote watch resynced");
    wait_until("every server-side watch to go", || {
        store.list_watchers("s").unwrap().is_empty()
    });
}

/// The TTL rule over the wire: a remote watch (its server-side watch, kept
/// open by heartbeats) keeps its session alive; once it is gone, the
/// session expires like any idle one.
#[test]
fn a_remote_watch_keeps_its_session_alive() {
    let ttl = Duration::from_millis(40);
    let store = SessionStore::new();
    store.create_session("t", SessionOptions::new().ttl(ttl)).unwrap();
    store
        .register("t", VarDef::new("x", VarType::Integer, 0))
        .unwrap();
    let transport = MemoryTransport::new(fast_service(&store));
    let remote = RemoteStore::new(transport, fast()).unwrap();
    let w = remote.watch("t", ["x"], WatchOptions::new()).unwrap();
    thread::sleep(ttl * 4);
    assert_eq!(store.cleanup_expired(), 0, "a watched session expired");
    drop(w);
    wait_until("the server-side watch to go", || {
        store.list_watchers("t").unwrap().is_empty()
    });
    thread::sleep(ttl * 4);
    assert_eq!(store.cleanup_expired(), 1);
}

/// Client and service settings at their extremes (zero, one nanosecond,
/// `Duration::MAX`, buffers of 0 and `usize::MAX`): a client is made, a
/// call answers, a watch receives; nothing panics, overflows or spins.
#[test]
fn remote_settings_at_their_extremes() {
    let extremes = [
        Duration::ZERO,
        Duration::from_nanos(1),
        Duration::from_millis(30),
        Duration::MAX,
    ];
    let store = store_with(&["x"]);
    for (i, d) in extremes.iter().enumerate() {
        let service = Service::new(store.clone())
            .heartbeat_interval(*d)
            .heartbeat_timeout(Duration::MAX)
            .max_events_per_message(0)
            .max_message_value_bytes(0);
        let mut config = RemoteConfig::new();
        config.connect_timeout = *d;
        config.heartbeat_interval = *d;
        config.heartbeat_timeout = Duration::MAX;
        config.backoff_initial = *d;
        config.backoff_max = extremes[3 - i];
        config.buffer = [0, 1, usize::MAX, 7][i];
        let remote = RemoteStore::new(MemoryTransport::new(service), config).unwrap();
        assert_eq!(remote.get("s", "x").unwrap().name(), "x");
        let mut w = remote.watch("s", ["x"], WatchOptions::new()).unwrap();
        assert!(recv(&mut w).is_initial());
        store.update("s", "x", i as i64 + 1).unwrap();
        assert_eq!(recv(&mut w).version(), i as u64 + 1);
    }
    // A silence timeout of zero on either side (raised to 1 ms): streams
    // keep breaking and the watch keeps resubscribing, with backoff. It never
    // panics, and never spins: in 200 ms, a loop without backoff would
    // reconnect many thousands of times (a bound that only a spin can break,
    // however slow the machine).
    let mut config = fast().backoff(Duration::ZERO, Duration::ZERO);
    config.heartbeat_timeout = Duration::ZERO;
    let service = fast_service(&store).heartbeat_timeout(Duration::ZERO);
    let remote = RemoteStore::new(MemoryTransport::new(service), config).unwrap();
    match remote.watch("s", ["x"], WatchOptions::new()) {
        Ok(mut w) => {
            let end = Instant::now() + Duration::from_millis(200);
            while Instant::now() < end {
                let _ = w.recv_timeout(Duration::from_millis(20));
            }
            eprintln!("zero timeouts: {:?}", w.stats());
            assert!(w.stats().reconnects < 1000, "{:?}", w.stats());
        }
        Err(e) => panic!("{e}"),
    }
}

/// The updates of a raw stream, flattened to (watch id, update) pairs as a
/// client applies them: a shared update once for each of its watches.
async fn updates_until(
    stream: &mut ServerStream,
    mut done: impl FnMut(&[(u64, varwatch::transport::WatchUpdate)]) -> bool,
) -> (Vec<(u64, varwatch::transport::WatchUpdate)>, Vec<ServerMessage>) {
    let mut seen = Vec::new();
    let mut messages = Vec::new();
    while !done(&seen) {
        let m = next_msg(stream).await.unwrap().unwrap();
        for u in &m.updates {
            for &id in &u.ids {
                seen.push((id, u.clone()));
            }
        }
        messages.push(m);
    }
    (seen, messages)
}

/// One write seen by many different watches on one stream travels once:
/// one update naming every watch (and each watch applies it as its own).
#[test]
fn a_write_seen_by_many_watches_is_sent_once() {
    let store = store_with(&["x"]);
    let service = Service::new(store.clone());
    rt().block_on(async {
        // Twenty watches that differ (their capacity), so twenty watches on
        // the server.
        let sub = |i: usize| {
            let mut s = Subscribe::new("s", WatchTarget::Variables(vec!["x".into()]));
            s.include_initial = false;
            s.capacity = 100 + i;
            s
        };
        let (tx, mut stream) = open_raw(&service, sub(0)).unwrap();
        for i in 1..20 {
            tx.send(ClientMessage::Create(i as u64 + 1, sub(i))).unwrap();
        }
        updates_until(&mut stream, |seen| {
            seen.iter().filter(|(_, u)| u.sync_complete.is_some()).count() == 20
        })
        .await;
        store.update("s", "x", 7).unwrap();
        let (seen, messages) = updates_until(&mut stream, |seen| seen.len() == 20).await;
        let ids: std::collections::BTreeSet<u64> = seen.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, (1..=20).collect(), "every watch got the write");
        for (_, u) in &seen {
            assert_eq!(u.events.len(), 1);
            assert_eq!(u.events[0].value(), Some(&Value::Integer(7)));
            assert!(!u.group_incomplete);
        }
        let sent: usize = messages
            .iter()
            .flat_map(|m| &m.updates)
            .map(|u| u.events.len())
            .sum();
        assert_eq!(sent, 1, "the event travelled {sent} times: {messages:?}");
    });
}

/// A shared update is split where its watches differ on whether the group
/// goes on: with one event per message, an atomic write of `x` and `y` is
/// `x` then `y` for a watch of both (its `x` part is `group_incomplete`) and
/// just `x` for a watch of `x` (complete).
#[test]
fn a_shared_update_splits_where_groups_differ() {
    let store = store_with(&["x", "y"]);
    let service = Service::new(store.clone()).max_events_per_message(1);
    rt().block_on(async {
        let sub = |vars: &[&str]| {
            let mut s = Subscribe::new(
                "s",
                WatchTarget::Variables(vars.iter().map(|v| v.to_string()).collect()),
            );
            s.include_initial = false;
            s
        };
        let (tx, mut stream) = open_raw(&service, sub(&["x", "y"])).unwrap();
        tx.send(ClientMessage::Create(2, sub(&["x"]))).unwrap();
        updates_until(&mut stream, |seen| {
            seen.iter().filter(|(_, u)| u.sync_complete.is_some()).count() == 2
        })
        .await;
        store
            .update_atomic(
                "s",
                [BatchUpdate::new("x", 1), BatchUpdate::new("y", 2)],
                &UpdateOptions::new(),
            )
            .unwrap();
        let (seen, _) = updates_until(&mut stream, |seen| {
            let of = |id| {
                seen.iter()
                    .filter(|(i, _)| *i == id)
                    .flat_map(|(_, u)| &u.events)
                    .count()
            };
            of(1) == 2 && of(2) == 1
        })
        .await;
        let parts = |id: u64| -> Vec<(String, bool)> {
            seen.iter()
                .filter(|(i, _)| *i == id)
                .flat_map(|(_, u)| {
                    u.events
                        .iter()
                        .map(|e| (e.variable_name().to_string(), u.group_incomplete))
                })
                .collect()
        };
        assert_eq!(parts(1), [("x".to_string(), true), ("y".to_string(), false)]);
        assert_eq!(parts(2), [("x".to_string(), false)]);
    });
}

/// Everything an event carries counts against a watch message's byte
/// budget, not only its value: a batch whose change metadata is large is
/// spread over messages like one with large values. And metadata past the
/// service's limit is refused, changing nothing.
#[test]
fn change_metadata_counts_and_is_bounded() {
    let names: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
    let store = store_with(&names.iter().map(String::as_str).collect::<Vec<_>>());
    let service = Service::new(store.clone()).max_message_value_bytes(64 << 10);
    let meta = |bytes: usize| {
        let mut o = UpdateOptions::new();
        o.metadata.insert("note".into(), "m".repeat(bytes));
        o
    };
    rt().block_on(async {
        let mut sub = Subscribe::new("s", WatchTarget::Session);
        sub.include_initial = false;
        let (_tx, mut stream) = open_raw(&service, sub).unwrap();
        next(&mut stream).await.unwrap().unwrap(); // sync
        // 20 small values, each event carrying 30 KiB of change metadata.
        let batch: Vec<Request> = vec![Request::UpdateMany {
            session: "s".into(),
            items: names.iter().map(|n| BatchUpdate::new(n.clone(), 1)).collect(),
            options: meta(30 << 10),
            atomic: true,
        }];
        for r in batch {
            common::ready(service.call(r)).unwrap();
        }
        let mut sizes = Vec::new();
        while sizes.iter().sum::<usize>() < 20 {
            sizes.push(next(&mut stream).await.unwrap().unwrap().events.len());
        }
        assert!(
            sizes.iter().all(|&n| n <= 2),
            "messages over the budget: {sizes:?}"
        );
    });
    let before = store.get("s", "v0").unwrap().version();
    let err = common::ready(service.call(Request::Update {
        session: "s".into(),
        variable: "v0".into(),
        value: Value::from(2),
        options: meta(100 << 10),
    }))
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ResourceExhausted, "{err}");
    assert!(err.to_string().contains("metadata"), "{err}");
    assert_eq!(store.get("s", "v0").unwrap().version(), before);
}

/// A whole-session watch resumes however many variables the session holds:
/// its resume names each of them, which the per-request item limit does not
/// apply to (it bounds only what a client chooses to ask for).
#[test]
fn a_whole_session_watch_larger_than_the_item_limit_resumes() {
    let names: Vec<String> = (0..12).map(|i| format!("v{i}")).collect();
    let store = store_with(&names.iter().map(String::as_str).collect::<Vec<_>>());
    let transport = MemoryTransport::new(fast_service(&store).max_batch_items(5));
    let remote = RemoteStore::new(transport.clone(), fast()).unwrap();
    let mut w = remote.watch_session("s", WatchOptions::new()).unwrap();
    for _ in 0..12 {
        assert!(recv(&mut w).is_initial());
    }
    cut(&transport, &store, "s");
    store.update("s", "v7", 1).unwrap();
    transport.set_reachable(true);
    let e = recv(&mut w);
    assert_eq!(
        (e.variable_name(), e.version(), e.kind()),
        ("v7", 1, EventKind::Changed)
    );
}

/// A resume refused again and again for a passing reason (here the
/// server's watch limit, taken by another client while this one was away)
/// is retried on its own, and after the retry limit the watch ends with
/// `Disconnected` rather than going quiet for good.
#[test]
fn a_resume_refused_past_the_retry_limit_ends_the_watch() {
    let store = store_with(&["x"]);
    let service = fast_service(&store).max_watches(1);
    let transport = MemoryTransport::new(service.clone());
    let remote = RemoteStore::new(transport.clone(), fast().max_failures(2)).unwrap();
    let mut w = remote.watch("s", ["x"], WatchOptions::new()).unwrap();
    assert!(recv(&mut w).is_initial());
    cut(&transport, &store, "s");
    // Another client takes the only slot through its own transport.
    let other = RemoteStore::new(MemoryTransport::new(service), fast()).unwrap();
    let _taken = other.watch("s", ["x"], WatchOptions::new()).unwrap();
    transport.set_reachable(true);
    let e = recv(&mut w);
    assert_eq!(e.kind(), EventKind::Disconnected, "{e:?}");
    assert!(w.recv_timeout(Duration::from_millis(100)).is_err());
}

/// A client that reads, however slowly, is alive: every message it takes
/// counts as hearing from it, also while the server has a backlog of its
/// creates to serve and nothing new to read from it. It is not dropped as
/// silent while the backlog lasts.
#[test]
fn a_slow_reader_with_a_backlog_of_creates_is_not_taken_for_silent() {
    let names: Vec<String> = (0..40).map(|i| format!("v{i}")).collect();
    let store = store_with(&names.iter().map(String::as_str).collect::<Vec<_>>());
    let service = Service::new(store)
        .heartbeat_interval(Duration::from_secs(60))
        .heartbeat_timeout(Duration::from_millis(300));
    rt().block_on(async {
        let (tx, mut stream) = open_raw(&service, Subscribe::new("s", WatchTarget::Session)).unwrap();
        for id in 2..=200 {
            tx.send(ClientMessage::Create(
                id,
                Subscribe::new("s", WatchTarget::Session),
            ))
            .unwrap();
        }
        // No heartbeat from here on; one message taken every 50 ms, for
        // 2 s: many times the silence timeout.
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let m = next_msg(&mut stream).await.expect("the stream is open");
            assert!(m.is_ok(), "dropped as silent while reading: {m:?}");
        }
    });
}

/// A transport whose watch stream opens and then never says anything: the
/// server's snapshot never comes.
struct Mute;

impl varwatch::transport::Transport for Mute {
    fn call(
        &self,
        _: Request,
    ) -> varwatch::transport::BoxFuture<varwatch::Result<varwatch::transport::Response>> {
        Box::pin(async {
            Err(varwatch::Error::Remote {
                code: ErrorCode::Unavailable,
                message: "mute".into(),
            })
        })
    }
    fn watch_stream(
        &self,
        _: varwatch::transport::ClientMessages,
    ) -> varwatch::transport::BoxFuture<varwatch::Result<varwatch::transport::ServerMessages>> {
        Box::pin(async {
            let never: varwatch::transport::ServerMessages = Box::pin(futures_util::stream::pending());
            Ok(never)
        })
    }
}

/// Opening a watch is bounded like a call: with no snapshot by
/// `call_timeout`, `watch` fails with `DeadlineExceeded` instead of hanging.
#[test]
fn a_watch_whose_snapshot_never_comes_fails_by_its_deadline() {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let remote = RemoteStore::new(Mute, fast().call_timeout(Duration::from_millis(200))).unwrap();
        let _ = tx.send(remote.watch("s", ["x"], WatchOptions::new()).map(|_| ()));
    });
    let got = rx.recv_timeout(Duration::from_secs(20)).expect("watch() hung");
    let err = got.unwrap_err();
    assert_eq!(err.code(), ErrorCode::DeadlineExceeded, "{err}");
}

/// A watch of named variables that lost one (deleted) is not shared with a
/// new identical watch: that one is created on the server, and is told
/// that a name is unknown.
#[test]
fn a_watch_that_lost_a_variable_is_not_shared() {
    let store = store_with(&["a", "b"]);
    let remote = RemoteStore::new(MemoryTransport::new(fast_service(&store)), fast()).unwrap();
    let mut first = remote.watch("s", ["a", "b"], WatchOptions::new()).unwrap();
    assert!(recv(&mut first).is_initial());
    assert!(recv(&mut first).is_initial());
    store.delete_variable("s", "a").unwrap();
    assert_eq!(recv(&mut first).kind(), EventKind::Deleted);
    let err = remote.watch("s", ["a", "b"], WatchOptions::new()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound, "{err}");
}

/// A remote watch's filter runs on the client, and its counters say what it
/// screened: rejected events, a panicking filter's events (delivered).
#[test]
fn a_remote_watch_filters_on_the_client_and_counts_what_it_screened() {
    let store = common::store_with(&["x"]);
    let remote = RemoteStore::new(MemoryTransport::new(Service::new(store.clone())), fast()).unwrap();
    let mut w = remote
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
        store.update("s", "x", i).unwrap();
    }
    let got: Vec<i64> = (0..2)
        .map(|_| {
            w.recv_timeout(Duration::from_secs(10))
                .unwrap()
                .value()
                .unwrap()
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(got, [2, 3], "3 is delivered: its filter call panicked");
    assert_eq!(
        w.recv_timeout(Duration::from_secs(10))
            .unwrap()
            .value()
            .unwrap()
            .as_i64(),
        Some(4)
    );
    let stats = w.stats();
    assert_eq!((stats.events_filtered, stats.filter_panics), (1, 1));
}
