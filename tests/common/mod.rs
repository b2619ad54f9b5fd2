//! Helpers shared by the integration tests of the transport layer.
#![allow(dead_code)] // each test file uses its own subset

use std::thread;
use std::time::{Duration, Instant};

use varwatch::{SessionOptions, SessionStore, VarDef, VarType};

/// A store with session `s` holding the integer variables `vars`, all 0.
pub fn store_with(vars: &[&str]) -> SessionStore {
    let store = SessionStore::new();
    store.create_session("s", SessionOptions::new()).unwrap();
    for v in vars {
        store.register("s", VarDef::new(*v, VarType::Integer, 0)).unwrap();
    }
    store
}

/// Polls `done` until it holds; fails the test after 20 s.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(feature = "etcd")]
pub mod etcd;
pub mod history;
#[cfg(feature = "grpc")]
pub mod proxy;
#[cfg(feature = "grpc")]
pub mod server;

/// The output of a future that is ready at once (a `Service` over a local
/// store answers without waiting): polled once, without a runtime.
pub fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => panic!("the future was not ready"),
    }
}

/// Everything a variable holds (id, name, type, value, constraints,
/// version, revision, metadata, times, source, change metadata), as one
/// line: two stores agree on a variable when these lines are equal.
pub fn describe(v: &varwatch::Variable) -> String {
    format!(
        "{} {} {:?} {:?} {:?} v{} r{} {:?} {:?} {:?} {:?} {:?}",
        v.id(),
        v.name(),
        v.var_type(),
        v.value(),
        v.constraints(),
        v.version(),
        v.revision(),
        v.metadata(),
        v.created_at(),
        v.updated_at(),
        v.source(),
        v.change_metadata()
    )
}
