//! Serves a small live demo store over gRPC.
//!
//! ```text
//! cargo run --release --example grpc_server --features grpc            # 127.0.0.1:50551
//! cargo run --release --example grpc_server --features grpc -- 127.0.0.1:6000
//! ```
//!
//! Session `demo` holds `temperature` (float, 0..100, changing every half
//! second), `fan` (choice) and `embedding` (8 floats). Stop with Ctrl-C.
//! With `VARWATCH_TOKEN` set, every call must carry that bearer token.

use std::time::Duration;

use varwatch::transport::grpc::GrpcService;
use varwatch::{Constraints, SessionOptions, SessionStore, Value, VarDef, VarType};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:50551".into());
    let store = SessionStore::new();
    store.create_session("demo", SessionOptions::new())?;
    store.register(
        "demo",
        VarDef::new("temperature", VarType::Float, 20.0).constraints(Constraints::new().min(0.0).max(100.0)),
    )?;
    store.register(
        "demo",
        VarDef::new("fan", VarType::Choice, "off")
            .constraints(Constraints::new().choices(["off", "low", "high"])),
    )?;
    store.register(
        "demo",
        VarDef::new("embedding", VarType::Embedding, vec![0.0f32; 8]),
    )?;

    // A writer, so that there is something to see.
    let writer = store.clone();
    std::thread::spawn(move || {
        for step in 0u64.. {
            std::thread::sleep(Duration::from_millis(500));
            let t = 20.0 + 10.0 * ((step as f64) / 10.0).sin();
            let fan = if t > 25.0 {
                "high"
            } else if t > 18.0 {
                "low"
            } else {
                "off"
            };
            let ok = writer.update("demo", "temperature", t).is_ok()
                && writer.update("demo", "fan", Value::choice(fan)).is_ok();
            if !ok {
                break; // the session was deleted by a client
            }
        }
    });

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "varwatch gRPC server on {} (session `demo`); Ctrl-C to stop",
        listener.local_addr()?
    );
    let mut service = GrpcService::new(store);
    if let Ok(token) = std::env::var("VARWATCH_TOKEN") {
        println!("clients must send `authorization: Bearer <VARWATCH_TOKEN>`");
        service = service.bearer_token(token);
    }
    service
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
