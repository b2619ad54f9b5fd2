//! What a client is told when the way to the server fails: nothing there
//! (`Error::Transport` naming the address and the cause), or a write whose
//! answer was lost after it left (`Error::OutcomeUnknown`: it may have been
//! applied — and here it was), and how a server ends a stream whatever its
//! outgoing queue holds.
#![cfg(all(not(loom), feature = "transport"))]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use varwatch::ops::{Request, Response};
use varwatch::transport::{
    BoxFuture, ClientMessages, MemoryTransport, RemoteConfig, RemoteStore, ServerMessages, Service, Transport,
};
use varwatch::{Error, ErrorCode, SessionStore, UpdateOptions, VarStore};

/// A transport that delivers every call, then loses the answer: by a broken
/// connection, or (`hang`) by never answering.
struct LosesAnswers {
    inner: MemoryTransport,
    hang: Arc<AtomicBool>,
}

impl Transport for LosesAnswers {
    fn call(&self, request: Request) -> BoxFuture<varwatch::Result<Response>> {
        let call = self.inner.call(request);
        let hang = self.hang.load(Ordering::Relaxed);
        Box::pin(async move {
            let _ = call.await; // the server did it
            if hang {
                std::future::pending::<()>().await;
            }
            Err(Error::Transport {
                addr: "test".into(),
                reason: "connection reset by peer".into(),
                source: None,
            })
        })
    }

    fn watch_stream(&self, outbound: ClientMessages) -> BoxFuture<varwatch::Result<ServerMessages>> {
        self.inner.watch_stream(outbound)
    }
}

#[test]
fn a_write_whose_answer_is_lost_is_an_unknown_outcome_and_a_read_is_not() {
    let store = common::store_with(&["x"]);
    let hang = Arc::new(AtomicBool::new(false));
    let transport = LosesAnswers {
        inner: MemoryTransport::new(Service::new(store.clone())),
        hang: hang.clone(),
    };
    let remote = RemoteStore::new(
        transport,
        RemoteConfig::new().call_timeout(Duration::from_millis(300)),
    )
    .unwrap();
    for hanging in [false, true] {
        hang.store(hanging, Ordering::Relaxed);
        let before = store.get("s", "x").unwrap().version();
        let err = remote.update("s", "x", before as i64 + 1).unwrap_err();
        assert!(
            matches!(&err, Error::OutcomeUnknown { session, operation, .. }
                if session == "s" && operation.contains("`x`")),
            "{err:?}"
        );
        assert_eq!(err.code(), ErrorCode::OutcomeUnknown);
        assert_eq!(
            store.get("s", "x").unwrap().version(),
            before + 1,
            "and it was applied"
        );
        // Every kind of write says so.
        let err = remote
            .update_atomic("s", [("x", 100)], &UpdateOptions::new())
            .unwrap_err();
        assert!(matches!(err, Error::OutcomeUnknown { .. }), "{err:?}");
        // A read has no outcome to lose: it fails as it failed.
        let err = remote.get("s", "x").unwrap_err();
        assert!(
            matches!(err.code(), ErrorCode::Unavailable | ErrorCode::DeadlineExceeded),
            "{err:?}"
        );
    }
}

#[test]
fn a_write_that_never_left_is_a_transport_error() {
    let store = common::store_with(&["x"]);
    let transport = MemoryTransport::new(Service::new(store.clone()));
    let remote = RemoteStore::new(transport.clone(), RemoteConfig::new()).unwrap();
    transport.set_reachable(false);
    let err = remote.update("s", "x", 1).unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert_eq!(store.get("s", "x").unwrap().version(), 0);
}

/// `connect` is lazy; the first call to an address with nothing behind it
/// fails with `Error::Transport` naming the address and the cause — a
/// write included (it never left).
#[cfg(feature = "grpc")]
#[test]
fn connecting_to_nothing_names_the_address_and_the_cause() {
    let remote = RemoteStore::connect("127.0.0.1:1", RemoteConfig::new()).unwrap();
    for err in [
        remote.session("s").unwrap_err(),
        remote.update("s", "x", 1).unwrap_err(),
    ] {
        match &err {
            Error::Transport { addr, reason, .. } => {
                assert!(addr.contains("127.0.0.1:1"), "{err}");
                assert!(reason.to_lowercase().contains("refused"), "{err}");
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    }
}

/// A server ends a watch stream with the status the protocol documents,
/// whatever its outgoing queue holds: a client that neither reads nor sends
/// is dropped with DEADLINE_EXCEEDED (not OK); one that keeps heartbeating
/// but sends more requests than the server holds while it does not read is
/// answered RESOURCE_EXHAUSTED (not dropped as silent).
#[test]
fn a_stream_ends_with_its_reason_whatever_the_queue_holds() {
    use futures_core::Stream;
    use std::pin::Pin;
    use tokio::sync::mpsc;
    use varwatch::transport::{ClientMessage, ServerStream, Subscribe, WatchTarget};

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
    async fn last(mut s: ServerStream) -> varwatch::Result<()> {
        loop {
            match tokio::time::timeout(
                Duration::from_secs(20),
                std::future::poll_fn(|cx| Pin::new(&mut s).poll_next(cx)),
            )
            .await
            .expect("the stream ends")
            {
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    }
    let store = SessionStore::new();
    store.create_session("s", Default::default()).unwrap();
    for i in 0..50 {
        store
            .register(
                "s",
                varwatch::VarDef::new(format!("v{i}"), varwatch::VarType::String, "x".repeat(64 << 10)),
            )
            .unwrap();
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let service = Service::new(store.clone())
        .heartbeat_timeout(Duration::from_millis(300))
        .max_message_value_bytes(64 << 10);
    let sub = || Subscribe::new("s", WatchTarget::Session);
    // Silent, with a full queue: 50 watches of 50 large states each.
    let (tx, rx) = mpsc::unbounded_channel();
    let stream = rt
        .block_on(async { service.watch_stream(ClientSide(rx)) })
        .unwrap();
    for id in 1..=50 {
        tx.send(ClientMessage::Create(id, sub())).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1500)); // silent, never read
    let err = rt.block_on(last(stream)).unwrap_err();
    assert_eq!(err.code(), ErrorCode::DeadlineExceeded, "{err}");
    // Heartbeating, not reading, and too many requests meanwhile.
    let (tx, rx) = mpsc::unbounded_channel();
    let stream = rt
        .block_on(async { service.watch_stream(ClientSide(rx)) })
        .unwrap();
    let beat = {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for n in 0.. {
                if tx.send(ClientMessage::Heartbeat(n)).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    // The queue fills (50 watches of large states, never read) ...
    for id in 1..=50 {
        tx.send(ClientMessage::Create(id, sub())).unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    // ... then more requests than the server holds while it cannot answer.
    for id in 51..=1_600 {
        tx.send(ClientMessage::Create(id, sub())).unwrap();
    }
    // The server stops reading at its limit; the heartbeats queued behind
    // the requests are not heard, and the heartbeat timeout passes.
    std::thread::sleep(Duration::from_millis(1500));
    let err = rt.block_on(last(stream)).unwrap_err();
    assert!(
        matches!(&err, Error::LimitExceeded { limit, .. } if *limit == 1024),
        "{err:?}"
    );
    assert_eq!(err.code(), ErrorCode::ResourceExhausted);
    drop(tx); // the heartbeats stop: their channel's receiver is gone
    beat.join().unwrap();
}
