//! Watches a session of a running varwatch gRPC server and prints every
//! event, surviving server restarts (start `grpc_server` first):
//!
//! ```text
//! cargo run --release --example grpc_watch --features grpc                    # 127.0.0.1:50551, session `demo`
//! cargo run --release --example grpc_watch --features grpc -- 127.0.0.1:6000 demo
//! ```

#[allow(unused_imports)]
use varwatch::VarStore;
use varwatch::transport::{RemoteConfig, RemoteStore};
use varwatch::{EventKind, WatchOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:50551".into());
    let session = args.next().unwrap_or_else(|| "demo".into());
    let remote = RemoteStore::connect(&addr, RemoteConfig::new())?;
    let mut watch = remote.watch_session(&session, WatchOptions::new())?;
    println!("watching session `{session}` on {addr}; Ctrl-C to stop");
    for e in watch.by_ref() {
        match e.kind() {
            EventKind::Lagged { first, last } => {
                println!("{:<12} skipped versions {first}..={last}", e.variable_name())
            }
            kind => println!(
                "{:<12} {:<13} v{:<4} rev {:<5} {}",
                e.variable_name(),
                format!("{kind:?}"),
                e.version(),
                e.revision(),
                e.value().map(|v| v.to_string()).unwrap_or_default()
            ),
        }
    }
    println!("watch ended; stats: {:?}", watch.stats());
    Ok(())
}
