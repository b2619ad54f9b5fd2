//! API hygiene that a compiler checks: one obvious way to receive in each
//! world. A `Watch` (of any store) is an `Iterator`; async code uses
//! `recv_async` or `into_stream`. With `futures::StreamExt` in scope,
//! `watch.next()` still means the iterator's (no E0034 ambiguity), and the
//! stream's `next().await` works on the converted watch.
#![cfg(not(loom))]

use futures_util::StreamExt;
use varwatch::VarStore;
use varwatch::{EventKind, SessionOptions, SessionStore, VarDef, VarType, WatchOptions};

fn store() -> SessionStore {
    let store = SessionStore::new();
    store.create_session("s", SessionOptions::new()).unwrap();
    store
        .register("s", VarDef::new("x", VarType::Integer, 0))
        .unwrap();
    store
}

#[tokio::test]
async fn iterator_and_stream_do_not_collide() {
    let store = store();
    let mut watch = store.watch("s", ["x"], WatchOptions::new()).unwrap();
    // `Iterator::next` (blocking), even with `StreamExt` imported.
    let first = watch.next().unwrap();
    assert_eq!(first.kind(), EventKind::Initial);
    store.update("s", "x", 1).unwrap();
    assert_eq!(watch.recv_async().await.unwrap().version(), 1);
    // The stream, with StreamExt's combinators.
    let mut stream = watch.into_stream();
    store.update("s", "x", 2).unwrap();
    let versions: Vec<u64> = (&mut stream).take(1).map(|e| e.version()).collect().await;
    assert_eq!(versions, [2]);
    let watch = stream.into_inner();
    assert_eq!(watch.stats().events_delivered, 3);
}

/// Generic code over any store: one `Watch` type for all.
fn first_version<S: VarStore>(store: &S) -> u64 {
    let mut w = store.watch("s", ["x"], WatchOptions::new()).unwrap();
    let e = w.next().unwrap();
    let _stream: varwatch::WatchStream = w.into_stream();
    e.version()
}

#[test]
fn generic_code_takes_either_store() {
    assert_eq!(first_version(&store()), 0);
    #[cfg(feature = "transport")]
    {
        use varwatch::transport::{MemoryTransport, RemoteConfig, RemoteStore, Service};
        let remote =
            RemoteStore::new(MemoryTransport::new(Service::new(store())), RemoteConfig::new()).unwrap();
        assert_eq!(first_version(&remote), 0);
    }
}
