//! A small live demo: one session of typed variables, two watchers on their
//! own threads, two writers, every event printed, and a final line of counts.
//!
//! Run it with `cargo run --release --example quickstart`.

use std::thread;
use std::time::Duration;

use varwatch::{
    Constraints, EventKind, SessionOptions, SessionStore, UpdateOptions, Value, VarDef, VarType, WatchOptions,
};

fn main() -> Result<(), varwatch::Error> {
    let store = SessionStore::new();
    store.create_session("lab", SessionOptions::new().metadata("purpose", "demo"))?;

    // Typed variables with constraints.
    store.register(
        "lab",
        VarDef::new("temperature", VarType::Float, 20.0)
            .constraints(Constraints::new().min(-40.0).max(120.0)),
    )?;
    store.register(
        "lab",
        VarDef::new("fan", VarType::Choice, "off")
            .constraints(Constraints::new().choices(["off", "low", "high"])),
    )?;
    store.register(
        "lab",
        VarDef::new("embedding", VarType::Embedding, vec![0.0f32; 4]),
    )?;

    // A bad write is refused with a message that says why, and changes nothing.
    let err = store.update("lab", "temperature", 500.0).unwrap_err();
    println!("refused: {err}");

    // Watcher 1: the temperature, from its current value on.
    let mut temps = store.watch("lab", ["temperature"], WatchOptions::new())?;
    // Watcher 2: the whole session, only values that changed by more than 5 degrees
    // (the filter runs on the watcher's thread, never under a store lock).
    let mut big_moves = store.watch_session(
        "lab",
        WatchOptions::new().filter(|old, new| match (old.and_then(Value::as_f64), new.as_f64()) {
            (Some(o), Some(n)) => (n - o).abs() > 5.0,
            _ => true, // not a number, or an initial value: keep it
        }),
    )?;

    let t1 = thread::spawn(move || {
        let mut n = 0;
        for e in temps.by_ref() {
            println!(
                "[temps] {:<9?} v{:<2} rev {:<3} {}",
                e.kind(),
                e.version(),
                e.revision(),
                show(&e)
            );
            n += 1;
        }
        println!("[temps] ended: {:?}", temps.close_reason());
        n
    });
    let t2 = thread::spawn(move || {
        let mut n = 0;
        while let Some(e) = big_moves.recv() {
            println!(
                "[big  ] {:<9?} {:<11} v{:<2} {}",
                e.kind(),
                e.variable_name(),
                e.version(),
                show(&e)
            );
            n += 1;
        }
        n
    });

    // Two writers: a heater ramps the temperature one degree at a time, with
    // two jumps of more than 5 degrees (sunlight, then the door opened) that
    // watcher 2 reports; a controller switches the fan and the embedding
    // together, in one atomic batch.
    let heater = {
        let store = store.clone();
        thread::spawn(move || {
            for t in [21.0, 22.0, 23.0, 31.0, 32.0, 33.0, 24.0, 25.0, 26.0, 27.0] {
                let opts = UpdateOptions::new().source("heater");
                store.update_with("lab", "temperature", t, &opts).unwrap();
                thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let controller = {
        let store = store.clone();
        thread::spawn(move || {
            for (i, fan) in ["low", "high", "off"].into_iter().enumerate() {
                thread::sleep(Duration::from_millis(15));
                let e = vec![(i + 1) as f32; 4];
                let opts = UpdateOptions::new().source("controller");
                store
                    .update_atomic(
                        "lab",
                        [("fan", Value::choice(fan)), ("embedding", Value::from(e))],
                        &opts,
                    )
                    .unwrap();
            }
        })
    };
    heater.join().unwrap();
    controller.join().unwrap();

    // Deleting the session ends both watches with an explicit event.
    let temperature = store.value("lab", "temperature")?;
    store.delete_session("lab")?;
    let (n1, n2) = (t1.join().unwrap(), t2.join().unwrap());

    let stats = store.stats();
    println!(
        "done: final temperature {temperature}, watcher events {n1} + {n2}, store updates {}, events sent {}",
        stats.updates, stats.events_sent
    );
    Ok(())
}

fn show(e: &varwatch::WatchEvent) -> String {
    match (e.kind(), e.value()) {
        (EventKind::SessionClosed, _) => "session closed".into(),
        (_, Some(v)) => match e.source() {
            Some(src) => format!("{v}  (from {src})"),
            None => v.to_string(),
        },
        (_, None) => String::new(),
    }
}
