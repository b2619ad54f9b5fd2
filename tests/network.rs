//! The gRPC server and client as a network service: flow control that
//! cannot wedge, deadlines, connection limits and timeouts, oversized
//! requests, TLS, health checking and reflection. Every test runs a real
//! server on loopback; every wait is bounded and waits for a condition.
#![cfg(all(feature = "grpc", not(loom)))]

use std::collections::HashMap;
use std::io::Read;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

mod common;
use common::server::Server;
use common::wait_until;

#[allow(unused_imports)]
use varwatch::VarStore;
use varwatch::transport::grpc::GrpcService;
use varwatch::transport::{RemoteConfig, RemoteStore};
use varwatch::{ErrorCode, EventKind, SessionOptions, SessionStore, Value, VarDef, VarType, WatchOptions};

fn store_with(vars: &[(&str, VarType, Value)]) -> SessionStore {
    let store = SessionStore::new();
    store.create_session("s", SessionOptions::new()).unwrap();
    for (n, t, v) in vars {
        store.register("s", VarDef::new(*n, *t, v.clone())).unwrap();
    }
    store
}

/// The wedge: a client with a buffer of 4 events per watch, three watches
/// that are never read and one that is, and 200 writes of 64 KiB values.
/// With a stream per watch, the three unread streams' windows filled the
/// connection's and everything on it stalled. Now the read watch gets every
/// write (or an explicit `Lagged`), and calls keep answering throughout.
#[test]
fn unread_watches_never_wedge_the_connection() {
    let store = store_with(&[
        ("big", VarType::String, Value::from("")),
        ("other", VarType::Integer, Value::from(0)),
    ]);
    let server = Server::start(GrpcService::new(store.clone()));
    let remote = RemoteStore::connect(&server.addr, RemoteConfig::new().buffer(4)).unwrap();
    // Three different subscriptions, never read.
    let _unread = [
        remote.watch("s", ["big"], WatchOptions::new()).unwrap(),
        remote.watch("s", ["big", "other"], WatchOptions::new()).unwrap(),
        remote.watch_session("s", WatchOptions::new()).unwrap(),
    ];
    let mut read = remote
        .watch(
            "s",
            ["big"],
            WatchOptions::new().include_initial(false).capacity(4096),
        )
        .unwrap();
    let payload = "x".repeat(64 << 10);
    let writer = {
        let store = store.clone();
        thread::spawn(move || {
            for i in 0..200 {
                store.update("s", "big", format!("{i:05}{payload}")).unwrap();
            }
        })
    };
    let mut last = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while last < 200 {
        assert!(
            Instant::now() < deadline,
            "the read watch stalled at version {last}"
        );
        let e = read
            .recv_timeout(Duration::from_secs(20))
            .expect("the read watch stalled");
        match e.kind() {
            EventKind::Changed => assert_eq!(e.version(), last + 1),
            EventKind::Lagged { first, .. } => assert_eq!(first, last + 1),
            k => panic!("unexpected {k:?}"),
        }
        last = e.version();
        if last % 20 == 0 {
            // Calls on the same connection answer meanwhile.
            assert_eq!(remote.session("s").unwrap().id, "s");
        }
    }
    writer.join().unwrap();
    assert_eq!(remote.get("s", "other").unwrap().version(), 0);
    let stats = _unread[0].stats();
    assert!(
        stats.lag_events > 0,
        "the unread watch never overflowed: {stats:?}"
    );
}

/// Calls have a deadline: with the server's one stream slot held by the
/// watch stream, a call waits for a slot and fails with DEADLINE_EXCEEDED
/// after the client's call timeout instead of hanging; with a slot free it
/// succeeds.
#[test]
fn calls_fail_fast_or_succeed_never_hang() {
    let store = store_with(&[("x", VarType::Integer, Value::from(0))]);
    // Four watches share the client's one watch stream: calls still get a
    // slot of four.
    let server = Server::start(GrpcService::new(store.clone()).max_concurrent_streams(4));
    let remote = RemoteStore::connect(&server.addr, RemoteConfig::new()).unwrap();
    let _watches: Vec<_> = (0..4)
        .map(|i| {
            remote
                .watch("s", ["x"], WatchOptions::new().capacity(100 + i))
                .unwrap()
        })
        .collect();
    assert_eq!(remote.get("s", "x").unwrap().version(), 0);
    // One slot, taken by the watch stream: a call cannot start.
    let server = Server::start(GrpcService::new(store).max_concurrent_streams(1));
    let config = RemoteConfig::new().call_timeout(Duration::from_millis(300));
    let remote = RemoteStore::connect(&server.addr, config).unwrap();
    let _w = remote.watch("s", ["x"], WatchOptions::new()).unwrap();
    let started = Instant::now();
    let err = remote.get("s", "x").unwrap_err();
    assert!(
        matches!(err.code(), ErrorCode::DeadlineExceeded | ErrorCode::Unavailable),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(20), "the call hung");
}

/// How long until the server closes `c` (reading whatever it sends), at
/// most about 20 s.
fn closed_within(mut c: TcpStream) -> Duration {
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return start.elapsed(),
            Ok(_) => continue, // the server's SETTINGS frames
        }
    }
}

/// A TCP connection that sends nothing, or only the HTTP/2 preface, is
/// closed by the server within its timeouts.
#[test]
fn silent_and_half_made_connections_are_closed() {
    let store = store_with(&[]);
    let service = GrpcService::new(store)
        .handshake_timeout(Duration::from_millis(200))
        .idle_timeout(Duration::from_millis(400));
    let server = Server::start(service);
    let silent = TcpStream::connect(&server.addr).unwrap();
    assert!(
        closed_within(silent) < Duration::from_secs(20),
        "a silent connection stayed open"
    );
    let mut half = TcpStream::connect(&server.addr).unwrap();
    std::io::Write::write_all(&mut half, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    assert!(
        closed_within(half) < Duration::from_secs(20),
        "a preface-only connection stayed open"
    );
}

/// Past the connection limit a client's calls answer RESOURCE_EXHAUSTED;
/// a request larger than the server accepts answers RESOURCE_EXHAUSTED (as
/// the protocol says; tonic says OUT_OF_RANGE).
#[test]
fn limits_answer_resource_exhausted() {
    let store = store_with(&[("text", VarType::String, Value::from(""))]);
    let server = Server::start(GrpcService::new(store).max_connections(1).max_message_bytes(1024));
    let first = RemoteStore::connect(&server.addr, RemoteConfig::new()).unwrap();
    assert_eq!(first.get("s", "text").unwrap().version(), 0);
    let err = first.update("s", "text", "x".repeat(4096)).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ResourceExhausted, "{err}");
    let second = RemoteStore::connect(&server.addr, RemoteConfig::new()).unwrap();
    let err = second.get("s", "text").unwrap_err();
    assert_eq!(err.code(), ErrorCode::ResourceExhausted, "{err}");
    // The first connection is unaffected.
    assert_eq!(first.update("s", "text", "ok").unwrap(), 1);
    // A connection over the limit is closed within a second or so, even
    // one that has started talking (not after the 60 s idle timeout).
    let mut over = TcpStream::connect(&server.addr).unwrap();
    std::io::Write::write_all(&mut over, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    assert!(
        closed_within(over) < Duration::from_secs(15),
        "an over-limit connection stayed open"
    );
}

/// Health checking and reflection answer, so that load balancers and
/// `grpcurl` work out of the box.
#[test]
fn health_and_reflection_answer() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let server = Server::start(GrpcService::new(store_with(&[])));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut health = HealthClient::new(channel.clone());
        for service in ["", "varwatch.v1.VarWatch"] {
            let r = health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(r.status, 1, "{service:?} is not SERVING"); // SERVING
        }
        let mut reflection = ServerReflectionClient::new(channel);
        let requests = [
            MessageRequest::ListServices(String::new()),
            MessageRequest::FileContainingSymbol("varwatch.v1.VarWatch".into()),
        ]
        .map(|m| ServerReflectionRequest {
            host: String::new(),
            message_request: Some(m),
        });
        let mut answers = reflection
            .server_reflection_info(tokio_stream_iter(requests.to_vec()))
            .await
            .unwrap()
            .into_inner();
        let list = answers.message().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = list.message_response else {
            panic!("not a service list: {list:?}")
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        for want in ["varwatch.v1.VarWatch", "grpc.health.v1.Health"] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
        let file = answers.message().await.unwrap().unwrap();
        assert!(
            matches!(file.message_response, Some(MessageResponse::FileDescriptorResponse(ref f)) if !f.file_descriptor_proto.is_empty()),
            "{file:?}"
        );
    });
}

/// A stream of the given items (the reflection call takes a request stream).
fn tokio_stream_iter<T: Send + 'static>(
    items: Vec<T>,
) -> impl futures_core::Stream<Item = T> + Send + 'static {
    struct Iter<T>(std::vec::IntoIter<T>);
    impl<T> futures_core::Stream for Iter<T> {
        type Item = T;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<T>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    impl<T> Unpin for Iter<T> {}
    Iter(items.into_iter())
}

/// Everything over TLS with a certificate made for the test: calls, a watch,
/// and a client that does not trust the certificate is refused.
#[cfg(feature = "tls")]
#[test]
fn a_tls_round_trip() {
    use varwatch::transport::grpc::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    let store = store_with(&[("x", VarType::Integer, Value::from(0))]);
    let tls = ServerTlsConfig::new().identity(Identity::from_pem(&cert_pem, &key_pem));
    let server = Server::start(GrpcService::new(store.clone()).tls(tls));
    let port = server.addr.rsplit(':').next().unwrap();
    let addr = format!("localhost:{port}");
    let trusted = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&cert_pem))
        .domain_name("localhost");
    let remote = RemoteStore::connect_tls(&addr, trusted, RemoteConfig::new()).unwrap();
    let mut w = remote.watch("s", ["x"], WatchOptions::new()).unwrap();
    assert!(w.recv().unwrap().is_initial());
    assert_eq!(remote.update("s", "x", 7).unwrap(), 1);
    assert_eq!(w.recv().unwrap().value(), Some(&Value::Integer(7)));
    // Plain text, or a client that trusts another CA, gets nowhere.
    let plain =
        RemoteStore::connect(&addr, RemoteConfig::new().call_timeout(Duration::from_secs(5))).unwrap();
    assert!(plain.get("s", "x").is_err());
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let untrusted = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(other.cert.pem()))
        .domain_name("localhost");
    let stranger = RemoteStore::connect_tls(&addr, untrusted, RemoteConfig::new()).unwrap();
    let err = stranger.get("s", "x").unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unavailable, "{err}");
}

/// Identical subscriptions of one client share one watch on the wire; each
/// still gets its own initial state and every change.
#[test]
fn identical_watches_share_one_watch_on_the_wire() {
    let store = store_with(&[("x", VarType::Integer, Value::from(0))]);
    let server = Server::start(GrpcService::new(store.clone()));
    let remote = RemoteStore::connect(&server.addr, RemoteConfig::new()).unwrap();
    let mut watches: Vec<_> = (0..50)
        .map(|_| remote.watch("s", ["x"], WatchOptions::new()).unwrap())
        .collect();
    assert_eq!(
        store.list_watchers("s").unwrap().len(),
        1,
        "one watch on the server"
    );
    for i in 1..=10 {
        store.update("s", "x", i).unwrap();
    }
    let mut got: HashMap<usize, Vec<u64>> = HashMap::new();
    for (i, w) in watches.iter_mut().enumerate() {
        let first = w.recv().unwrap();
        assert!(first.is_initial());
        let mut versions = vec![first.version()];
        while versions.last() != Some(&10) {
            versions.push(w.recv().unwrap().version());
        }
        got.insert(i, versions);
    }
    assert!(got.values().all(|v| v == &(0..=10).collect::<Vec<u64>>()));
    drop(watches);
    wait_until("the shared watch to be cancelled", || {
        store.list_watchers("s").unwrap().is_empty()
    });
}
