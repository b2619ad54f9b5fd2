//! The async remote client on your own tokio runtime, over the in-memory
//! transport (swap in `RemoteStore::connect(addr, config)` with feature
//! `grpc` to reach a server instead):
//!
//! ```text
//! cargo run --example async_remote --features transport
//! ```
//!
//! A task watches two variables as a `Stream` while another updates them
//! through the same client; the watch ends when the session is deleted.

use varwatch::transport::{MemoryTransport, RemoteConfig, RemoteStore, Service};
use varwatch::{AsyncVarStore, EventKind, SessionOptions, SessionStore, VarDef, VarType, WatchOptions};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), varwatch::Error> {
    let store = SessionStore::new();
    let transport = MemoryTransport::new(Service::new(store));
    let remote = RemoteStore::new(transport, RemoteConfig::new())?.to_async();

    remote.create_session("job", SessionOptions::new()).await?;
    remote
        .register("job", VarDef::new("progress", VarType::Float, 0.0))
        .await?;
    remote
        .register("job", VarDef::new("status", VarType::String, "queued"))
        .await?;

    // Registered with its snapshot once this returns: no update is missed.
    let mut watch = remote
        .watch("job", ["progress", "status"], WatchOptions::new())
        .await?;
    let printer = tokio::spawn(async move {
        // `recv_async` works on any runtime; `watch.into_stream()` gives a
        // `futures_core::Stream` for StreamExt combinators.
        while let Some(e) = watch.recv_async().await {
            match e.kind() {
                EventKind::SessionClosed => println!("session closed; watch over"),
                kind => println!(
                    "{:<9} {:<8} v{} {}",
                    e.variable_name(),
                    format!("{kind:?}"),
                    e.version(),
                    e.value().map(|v| v.to_string()).unwrap_or_default()
                ),
            }
        }
    });

    remote.update("job", "status", "running").await?;
    for step in 1..=4 {
        remote.update("job", "progress", f64::from(step) * 0.25).await?;
    }
    remote.update("job", "status", "done").await?;
    remote.delete_session("job").await?;
    printer.await.expect("the printer task");
    Ok(())
}
