//! Two processes share one session through etcd: this one watches, a child
//! process it starts writes.
//!
//! ```text
//! scripts/with-etcd.sh cargo run --example etcd_shared --features etcd
//! # or, with an etcd of your own:
//! cargo run --example etcd_shared --features etcd -- http://127.0.0.1:2379
//! ```
//!
//! The watcher creates the session and its variables, opens a watch on the
//! whole session, and starts the writer: the same program run again with
//! `writer` as its first argument. The writer connects on its own (nothing
//! is shared with the watcher but etcd), publishes progress as atomic
//! batches, and says `done`. Every batch reaches the watcher whole, at one
//! revision.

use std::process::Command;
use std::time::Duration;

#[allow(unused_imports)]
use varwatch::VarStore;
use varwatch::etcd::{EtcdConfig, EtcdStore};
use varwatch::{EventKind, SessionOptions, UpdateOptions, Value, VarDef, VarType, WatchOptions};

fn endpoint(arg: Option<String>) -> String {
    arg.or_else(|| std::env::var("VARWATCH_ETCD").ok())
        .unwrap_or_else(|| "http://127.0.0.1:2379".to_string())
}

fn main() -> varwatch::Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("writer") => {
            let session = args.next().expect("writer <session> <endpoint>");
            writer(&session, &endpoint(args.next()))
        }
        first => watcher(&endpoint(first.map(str::to_string))),
    }
}

/// The child process: connects on its own and writes.
fn writer(session: &str, endpoint: &str) -> varwatch::Result<()> {
    let store = EtcdStore::connect([endpoint], EtcdConfig::new())?;
    let opts = UpdateOptions::new().source(format!("writer pid {}", std::process::id()));
    for step in 1..=5 {
        // Both variables change together, or neither.
        store.update_atomic(
            session,
            [
                ("step", Value::Integer(step)),
                ("status", Value::from(format!("working on step {step}"))),
            ],
            &opts,
        )?;
        std::thread::sleep(Duration::from_millis(100));
    }
    store.update_with(session, "status", "done", &opts)?;
    Ok(())
}

/// The parent process: sets up, watches, starts the writer.
fn watcher(endpoint: &str) -> varwatch::Result<()> {
    let store = EtcdStore::connect([endpoint], EtcdConfig::new())?;
    let session = format!("demo-{}", std::process::id());
    // A TTL: if this process dies, etcd removes the session after a minute.
    store.create_session(&session, SessionOptions::new().ttl(Duration::from_secs(60)))?;
    store.register(&session, VarDef::new("step", VarType::Integer, 0))?;
    store.register(&session, VarDef::new("status", VarType::String, "idle"))?;
    let watch = store.watch_session(&session, WatchOptions::new())?;
    println!("watching session {session} on {endpoint}");

    let exe = std::env::current_exe().expect("this program's path");
    let mut child = Command::new(exe)
        .args(["writer", &session, endpoint])
        .spawn()
        .expect("start the writer process");

    let mut events = 0;
    for e in watch {
        events += 1;
        let who = e.source().unwrap_or("-");
        let value = e.value().map(|v| format!("{v:?}")).unwrap_or_default();
        println!(
            "rev {:>2}  {:<8} {:<7} v{}  {value}  ({who})",
            e.revision(),
            format!("{:?}", e.kind()),
            e.variable_name(),
            e.version()
        );
        if e.kind() == EventKind::Changed && e.value().and_then(|v| v.as_str()) == Some("done") {
            break;
        }
    }
    let status = child.wait().expect("the writer process");
    assert!(status.success(), "the writer failed: {status}");
    store.delete_session(&session)?;
    println!("done: {events} events from another process");
    Ok(())
}
