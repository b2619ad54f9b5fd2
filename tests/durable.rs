//! The durable store (feature `durable`): a store opened again is the
//! store it was (sessions, variables, ids, versions, revisions, metadata,
//! incarnations, the id counter); a torn journal tail is cut back to the
//! last whole record; damage is an error naming the file and the offset;
//! snapshots keep disk use to the live state; and, with the server binary,
//! a crash loop — SIGKILL at random moments of a write storm, fifty times
//! — loses no acknowledged write while a watch open across every restart
//! resumes each time, never shown a state that was lost.
#![cfg(all(feature = "durable", not(loom)))]

mod common;

use std::path::{Path, PathBuf};

#[allow(unused_imports)]
use varwatch::VarStore;
use varwatch::durable::{Durability, DurableOptions};
use varwatch::{
    Error, EventKind, SessionOptions, SessionStore, StoreConfig, UpdateOptions, Value, VarDef, VarType,
    WatchOptions,
};

/// A fresh directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("varwatch-durable-{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn open(dir: &Path) -> SessionStore {
    SessionStore::open(dir, StoreConfig::new(), DurableOptions::new())
        .unwrap()
        .0
}

/// Every session's variables, as the store answers (each variable in
/// full: id, name, type, constraints, metadata, value, version, revision,
/// times, source).
fn state(s: &SessionStore) -> Vec<(String, u64, Vec<String>)> {
    s.list_sessions()
        .into_iter()
        .map(|id| {
            let list = s.list_variables(&id, None).unwrap();
            let vars = list.iter().map(common::describe).collect();
            (id, list.revision, vars)
        })
        .collect()
}

#[test]
fn a_store_opened_again_is_the_store_it_was() {
    let dir = TempDir::new("reopen");
    let s = open(&dir.0);
    let mut meta = varwatch::Metadata::new();
    meta.insert("owner".into(), "lab".into());
    let meta = meta;
    s.create_session("a", SessionOptions::new().metadata("purpose", "test"))
        .unwrap();
    s.create_session(
        "b",
        SessionOptions::new().ttl(std::time::Duration::from_secs(3600)),
    )
    .unwrap();
    let x = s
        .register(
            "a",
            VarDef::new("x", VarType::Float, 1.5).metadata("owner", "lab"),
        )
        .unwrap();
    s.register("a", VarDef::new("y", VarType::Integer, 0)).unwrap();
    s.import(
        "a",
        vec![
            VarDef::new("e", VarType::Embedding, vec![1.0f32, 2.0]),
            VarDef::new("c", VarType::Choice, "on")
                .constraints(varwatch::Constraints::new().choices(["on", "off"])),
        ],
    )
    .unwrap();
    s.update_with(
        "a",
        "x",
        2.5,
        &UpdateOptions::new().source("me").metadata("why", "test"),
    )
    .unwrap();
    s.update_atomic(
        "a",
        [("y", Value::Integer(7)), ("c", Value::choice("off"))],
        &UpdateOptions::new(),
    )
    .unwrap();
    s.update_best_effort("a", [("y", 8), ("y", 9)], &UpdateOptions::new())
        .unwrap();
    s.register("b", VarDef::new("gone", VarType::String, "bye"))
        .unwrap();
    s.delete_variable("b", "gone").unwrap();
    s.create_session("deleted", SessionOptions::new()).unwrap();
    s.delete_session("deleted").unwrap();
    let incarnation = s
        .watch("a", ["x"], WatchOptions::new())
        .unwrap()
        .session_incarnation();
    let before = state(&s);
    drop(s);

    let (s, recovery) = SessionStore::open(&dir.0, StoreConfig::new(), DurableOptions::new()).unwrap();
    assert!(recovery.entries > 0 && recovery.torn.is_none(), "{recovery:?}");
    assert_eq!(state(&s), before, "every session, variable, version and revision");
    assert_eq!(s.list_sessions(), ["a", "b"]);
    let info = s.session("a").unwrap();
    assert_eq!(info.metadata.get("purpose").map(String::as_str), Some("test"));
    assert_eq!(
        s.session("b").unwrap().ttl,
        Some(std::time::Duration::from_secs(3600))
    );
    let v = s.get("a", &x).unwrap();
    assert_eq!((v.source(), v.metadata()), (Some("me"), &meta));
    assert_eq!(
        s.watch("a", ["x"], WatchOptions::new())
            .unwrap()
            .session_incarnation(),
        incarnation,
        "the same life of the session: a remote watch resumes it"
    );
    // The id counter goes on: no id is handed out twice.
    let z = s.register("a", VarDef::new("z", VarType::Integer, 0)).unwrap();
    let n = |id: &str| id.trim_start_matches("var_").parse::<u64>().unwrap();
    assert!(n(&z) > 5, "{z} after var_1..var_5");
    // And writes go on from the revision it had.
    let r = s.session("a").unwrap().revision;
    s.update("a", "y", 10).unwrap();
    assert_eq!(s.session("a").unwrap().revision, r + 1);
}

/// The newest journal segment of `dir`.
fn last_segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segs.sort();
    segs.pop().expect("a journal segment")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "LOCK" {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn a_torn_tail_is_cut_back_to_the_last_whole_record() {
    let dir = TempDir::new("torn");
    let s = open(&dir.0);
    s.create_session("s", SessionOptions::new()).unwrap();
    s.register("s", VarDef::new("x", VarType::String, "")).unwrap();
    for i in 1..=20 {
        s.update("s", "x", format!("value {i}")).unwrap();
    }
    let seg = last_segment(&dir.0);
    let before_last = std::fs::metadata(&seg).unwrap().len();
    s.update("s", "x", "the last one".to_string()).unwrap();
    let after_last = std::fs::metadata(&seg).unwrap().len();
    drop(s);
    // Every cut inside the last record (or 200 of them).
    let span = after_last - before_last;
    let step = (span / 200).max(1);
    let mut cut = before_last + 1;
    while cut < after_last {
        let copy = TempDir::new("torn-copy");
        copy_dir(&dir.0, &copy.0);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(copy.0.join(seg.file_name().unwrap()))
            .unwrap();
        f.set_len(cut).unwrap();
        drop(f);
        let (s, recovery) = SessionStore::open(&copy.0, StoreConfig::new(), DurableOptions::new())
            .unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        let x = s.get("s", "x").unwrap();
        assert_eq!(
            (x.version(), x.value()),
            (20, &Value::from("value 20")),
            "cut at {cut}"
        );
        assert_eq!(recovery.torn.as_ref().map(|(_, b)| *b), Some(cut - before_last));
        // It goes on from there.
        assert_eq!(s.update("s", "x", "after".to_string()).unwrap(), 21);
        cut += step;
    }
}

#[test]
fn damage_is_an_error_naming_the_file_and_the_offset() {
    let dir = TempDir::new("damage");
    let s = open(&dir.0);
    s.create_session("s", SessionOptions::new()).unwrap();
    s.register("s", VarDef::new("x", VarType::Integer, 0)).unwrap();
    for i in 1..=10 {
        s.update("s", "x", i).unwrap();
    }
    drop(s);
    let seg = last_segment(&dir.0);
    let bytes = std::fs::read(&seg).unwrap();
    // A flipped byte in the middle of the journal: records follow it.
    let mut damaged = bytes.clone();
    let at = bytes.len() / 2;
    damaged[at] ^= 0x5a;
    std::fs::write(&seg, &damaged).unwrap();
    let err = SessionStore::open(&dir.0, StoreConfig::new(), DurableOptions::new()).unwrap_err();
    match &err {
        Error::Storage { reason, .. } => {
            assert!(
                reason.contains(&seg.file_name().unwrap().to_string_lossy().to_string()),
                "{reason}"
            );
            assert!(reason.contains("byte offset"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.code(), varwatch::ErrorCode::Unavailable);
    // Put back, it opens with everything.
    std::fs::write(&seg, &bytes).unwrap();
    assert_eq!(open(&dir.0).get("s", "x").unwrap().version(), 10);

    // A damaged snapshot too.
    let s = open(&dir.0);
    s.compact().unwrap();
    drop(s);
    let snap = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "bin"))
        .expect("a snapshot");
    let mut b = std::fs::read(&snap).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 1;
    std::fs::write(&snap, &b).unwrap();
    match SessionStore::open(&dir.0, StoreConfig::new(), DurableOptions::new()).unwrap_err() {
        Error::Storage { reason, .. } => assert!(reason.contains("snapshot-"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn snapshots_keep_disk_use_to_the_live_state() {
    let dir = TempDir::new("compact");
    let (s, _) = SessionStore::open(
        &dir.0,
        StoreConfig::new(),
        DurableOptions::new()
            .durability(Durability::Never)
            .compact_after(64 << 10),
    )
    .unwrap();
    s.create_session("s", SessionOptions::new()).unwrap();
    for i in 0..10 {
        s.register("s", VarDef::new(format!("v{i}"), VarType::Integer, 0))
            .unwrap();
    }
    for k in 0..20_000i64 {
        s.update("s", &format!("v{}", k % 10), k).unwrap();
    }
    s.compact().unwrap();
    let used: u64 = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    // 20 000 writes would be ~1.5 MB of journal; the live state is ten
    // variables.
    assert!(used < 16 << 10, "{used} bytes on disk for ten variables");
    let before = state(&s);
    drop(s);
    assert_eq!(state(&open(&dir.0)), before);
}

/// A store dropped while its background compaction runs loses nothing:
/// the compaction writes no snapshot once the store is gone (an empty one
/// would replace the whole journal), and the directory stays locked until
/// it has finished (opening again meanwhile is refused, then works).
#[test]
fn dropping_a_store_while_it_compacts_loses_nothing() {
    let dir = TempDir::new("drop-compact");
    let opts = || {
        DurableOptions::new()
            .durability(Durability::Never)
            .compact_after(4096)
    };
    let mut expected = 0u64;
    for round in 0..64 {
        let s = loop {
            match SessionStore::open(&dir.0, StoreConfig::new(), opts()) {
                Ok((s, _)) => break s,
                Err(Error::Storage { reason, .. }) if reason.contains("in use") => {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(e) => panic!("round {round}: {e}"),
            }
        };
        if round == 0 {
            s.create_session("s", SessionOptions::new()).unwrap();
            s.register("s", VarDef::new("x", VarType::String, "")).unwrap();
        }
        assert_eq!(s.get("s", "x").unwrap().version(), expected, "round {round}");
        // About 4 KiB of journal: a compaction starts near the end, in
        // some round right as the store is dropped.
        for i in 0..12 + round % 8 {
            expected = s
                .update("s", "x", format!("{round}-{i}-{}", "y".repeat(200)))
                .unwrap();
        }
        drop(s);
    }
}

#[test]
fn one_directory_one_store() {
    let dir = TempDir::new("lock");
    let s = open(&dir.0);
    match SessionStore::open(&dir.0, StoreConfig::new(), DurableOptions::new()).unwrap_err() {
        Error::Storage { reason, .. } => assert!(reason.contains("LOCK"), "{reason}"),
        other => panic!("{other:?}"),
    }
    drop(s);
    drop(open(&dir.0)); // free again once the first is gone
}

/// SIGKILL of the server binary at random moments of a write storm, fifty
/// times (bounded by time too): every acknowledged write survives, with
/// its version; ids are never reused; and a watch open through every
/// restart resumes each time (no `SessionClosed`), every version of every
/// variable accounted for once — delivered or inside a `Lagged` range —
/// and never ahead of the store after a restart (it was never shown a
/// change that a crash took back).
#[cfg(all(feature = "server", unix))]
#[test]
fn a_crash_loop_loses_no_acknowledged_write_and_a_watch_resumes_through_it() {
    use std::collections::{BTreeMap, HashMap};
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    use varwatch::transport::{RemoteConfig, RemoteStore};

    let dir = TempDir::new("crash");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    /// Kills its server when dropped, so a failing assertion leaves no
    /// process behind.
    struct Server(Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let start = |durability: &str| -> Server {
        let child = Command::new(env!("CARGO_BIN_EXE_varwatch-server"))
            .args(["--listen", &addr, "--log", "error", "--durability", durability])
            .arg("--data-dir")
            .arg(&dir.0)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        common::wait_until("the server to listen", || {
            std::net::TcpStream::connect(&addr).is_ok()
        });
        Server(child)
    };
    let mut server = start("always");
    let config = RemoteConfig::new()
        .call_timeout(Duration::from_secs(2))
        .backoff(Duration::from_millis(10), Duration::from_millis(100))
        .max_failures(u32::MAX);
    let client = RemoteStore::connect(&addr, config).unwrap();
    client.create_session("s", SessionOptions::new()).unwrap();
    let statics: Vec<String> = (0..8).map(|i| format!("v{i}")).collect();
    let mut ids: HashMap<String, String> = HashMap::new();
    for n in &statics {
        ids.insert(
            client
                .register("s", VarDef::new(n.as_str(), VarType::Integer, 0))
                .unwrap(),
            n.clone(),
        );
    }
    let mut watch = client
        .watch_session("s", WatchOptions::new().buffer(1 << 16))
        .unwrap();

    // What was acknowledged: per variable, (version, value) of each write.
    let acked: Arc<Mutex<BTreeMap<(String, u64), i64>>> = Arc::default();
    // Deletions tried: (name, acknowledged). One whose answer was lost may
    // or may not have happened.
    let deleted: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
    let registered: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let unique = Arc::new(AtomicI64::new(1));
    // The watch's view: per variable, the last version it holds.
    let mut held: HashMap<String, u64> = HashMap::new();
    let drain = |watch: &mut varwatch::Watch,
                 held: &mut HashMap<String, u64>,
                 acked: &BTreeMap<(String, u64), i64>| {
        while let Ok(e) = watch.try_recv() {
            let name = e.variable_name().to_string();
            match e.kind() {
                EventKind::Initial => {
                    held.insert(name, e.version());
                }
                EventKind::Changed => {
                    let last = held.get(&name).copied();
                    assert!(
                        last.is_none_or(|l| e.version() == l + 1),
                        "{name}: {last:?} then {}",
                        e.version()
                    );
                    if let (Some(want), Some(got)) = (acked.get(&(name.clone(), e.version())), e.value()) {
                        assert_eq!(got.as_i64(), Some(*want), "{name} v{}", e.version());
                    }
                    held.insert(name, e.version());
                }
                EventKind::Lagged { first, last } => {
                    let l = held.get(&name).copied();
                    assert!(
                        l.is_none_or(|l| first == l + 1),
                        "{name}: lag from {first} after {l:?}"
                    );
                    held.insert(name, last);
                }
                EventKind::Deleted => {
                    held.remove(&name);
                }
                other => panic!("the watch ended: {other:?}"),
            }
        }
    };

    let began = Instant::now();
    let mut rounds = 0;
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut rand = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    while rounds < 50 && began.elapsed() < Duration::from_secs(150) {
        rounds += 1;
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..3u64)
            .map(|t| {
                let (client, stop, acked, deleted, registered, unique, statics) = (
                    client.clone(),
                    stop.clone(),
                    acked.clone(),
                    deleted.clone(),
                    registered.clone(),
                    unique.clone(),
                    statics.clone(),
                );
                std::thread::spawn(move || {
                    let mut k = 0u64;
                    let mut mine: Vec<String> = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        k += 1;
                        let v = unique.fetch_add(1, Ordering::Relaxed);
                        let name = &statics[((k * 7 + t) % 8) as usize];
                        match k % 10 {
                            0 => {
                                let n = format!("d{t}-{rounds}-{k}");
                                if let Ok(id) =
                                    client.register("s", VarDef::new(n.as_str(), VarType::Integer, v))
                                {
                                    acked.lock().unwrap().insert((n.clone(), 0), v);
                                    registered.lock().unwrap().push((id, n.clone()));
                                    mine.push(n);
                                }
                            }
                            1 if !mine.is_empty() => {
                                let n = mine.remove(0);
                                let done = client.delete_variable("s", &n).is_ok();
                                deleted.lock().unwrap().push((n, done));
                            }
                            2 | 3 => {
                                let other = &statics[((k * 3 + t + 1) % 8) as usize];
                                if other != name {
                                    let items = [
                                        (name.clone(), Value::Integer(v)),
                                        (other.clone(), Value::Integer(v + 1)),
                                    ];
                                    if let Ok(vs) =
                                        client.update_atomic("s", items.clone(), &UpdateOptions::new())
                                    {
                                        let mut a = acked.lock().unwrap();
                                        for ((n, val), ver) in items.iter().zip(vs) {
                                            a.insert((n.clone(), ver), val.as_i64().unwrap());
                                        }
                                    }
                                    unique.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            4 => {
                                let items = [(name.clone(), v)];
                                if let Ok(rs) = client.update_best_effort("s", items, &UpdateOptions::new())
                                    && let Ok(ver) = rs[0]
                                {
                                    acked.lock().unwrap().insert((name.clone(), ver), v);
                                }
                            }
                            _ => {
                                if let Ok(ver) = client.update("s", name, v) {
                                    acked.lock().unwrap().insert((name.clone(), ver), v);
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(30 + rand(200)));
        drop(server);
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().unwrap();
        }
        // Now and then the weaker policy: a killed process loses nothing
        // under it either (the OS has every write).
        server = start(if rounds % 5 == 0 { "never" } else { "always" });
        common::wait_until("the server to answer", || client.session("s").is_ok());

        // Every acknowledged write is there (or a later version of its
        // variable is); every acknowledged deletion too.
        let a = acked.lock().unwrap().clone();
        let mut last: HashMap<&str, (u64, i64)> = HashMap::new();
        for ((n, ver), val) in &a {
            last.insert(n, (*ver, *val));
        }
        let gone = deleted.lock().unwrap().clone();
        for (n, (ver, val)) in &last {
            if let Some((_, done)) = gone.iter().find(|(g, _)| g == n) {
                if *done {
                    assert!(client.get("s", n).is_err(), "{n} was deleted");
                }
                continue;
            }
            let got = client
                .get("s", n)
                .unwrap_or_else(|e| panic!("round {rounds}: {n}: {e}"));
            assert!(
                got.version() >= *ver,
                "round {rounds}: {n} v{} < acknowledged v{ver}",
                got.version()
            );
            if got.version() == *ver {
                assert_eq!(got.value().as_i64(), Some(*val), "round {rounds}: {n} v{ver}");
            }
        }
        // An id names one variable for ever.
        for (id, n) in registered.lock().unwrap().iter() {
            assert!(
                ids.insert(id.clone(), n.clone()).is_none_or(|old| &old == n),
                "{id} reused"
            );
        }
        // The watch resumes: what it held is never ahead of the store.
        let until = Instant::now() + Duration::from_millis(300);
        while Instant::now() < until {
            drain(&mut watch, &mut held, &a);
            std::thread::sleep(Duration::from_millis(20));
        }
        for (n, v) in &held {
            if let Ok(got) = client.get("s", n) {
                assert!(
                    got.version() >= *v,
                    "round {rounds}: the watch held {n} v{v}, the store has v{}",
                    got.version()
                );
            }
        }
    }
    assert!(rounds >= 10, "only {rounds} rounds");
    // A last write reaches the watch: it is alive.
    let v = client.update("s", "v0", -1).unwrap();
    common::wait_until("the watch to see the last write", || {
        drain(&mut watch, &mut held, &acked.lock().unwrap());
        held.get("v0") == Some(&v)
    });
    let max_id = ids
        .keys()
        .map(|id| id.trim_start_matches("var_").parse::<u64>().unwrap())
        .max()
        .unwrap();
    let fresh = client
        .register("s", VarDef::new("fresh", VarType::Integer, 0))
        .unwrap();
    assert!(
        fresh.trim_start_matches("var_").parse::<u64>().unwrap() > max_id,
        "{fresh} after var_{max_id}"
    );
    drop(server);
    eprintln!(
        "{rounds} rounds, {} acknowledged writes",
        acked.lock().unwrap().len()
    );
}
