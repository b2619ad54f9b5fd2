//! `EtcdStore` under pressure (feature `etcd`, real etcd): a watch far
//! behind catching up through fragments, a catch-up too large to decode
//! becoming `Lagged` + the state, a session larger than one message read in
//! pages, a value over the client's limit refused naming the limit, a
//! frozen member of a three-member cluster stalling no writer and no
//! watch, and writes whose answers are lost (learned from a healthy member,
//! or reported as unknown; a best-effort batch reporting what committed).
//!
//! Every test is `#[ignore]`d ("needs etcd"); run them with
//! `scripts/with-etcd.sh cargo test --features etcd --test etcd_faults --
//! --include-ignored`.
#![cfg(all(feature = "etcd", not(loom)))]

mod common;

use std::time::Duration;

use common::proxy::Proxy;
#[allow(unused_imports)]
use varwatch::VarStore;
use varwatch::etcd::{EtcdConfig, EtcdStore};
use varwatch::{
    BatchUpdate, Error, EventKind, SessionOptions, UpdateOptions, Value, VarDef, VarType, WatchEvent,
    WatchOptions,
};

fn next(w: &mut varwatch::Watch) -> WatchEvent {
    w.recv_timeout(Duration::from_secs(60))
        .expect("an event within 60 s")
}

fn store(url: &str, test: &str, config: EtcdConfig) -> EtcdStore {
    EtcdStore::connect([url], config.prefix(common::etcd::fresh_prefix(test))).unwrap()
}

fn text(n: usize, i: usize) -> Value {
    let mut s = format!("{i:08}");
    s.push_str(&"x".repeat(n.saturating_sub(8)));
    Value::from(s)
}

/// Writes `n` values of `bytes` bytes to `s`/`x` (versions 1..=n).
fn write_many(store: &EtcdStore, n: usize, bytes: usize) {
    for i in 1..=n {
        assert_eq!(store.update("s", "x", text(bytes, i)).unwrap(), i as u64);
    }
}

/// A lossless watch whose reader falls 2,500 writes of 5 kB behind (12 MB
/// of history, more than one etcd response of a thousand revisions can
/// carry under a 4 MiB limit) gets every version, in order, with no
/// `Lagged` and no `Disconnected`: etcd fragments its responses, and the
/// fragments are joined before anything is decoded.
#[test]
#[ignore = "needs etcd: scripts/with-etcd.sh cargo test --features etcd --test etcd_faults -- --include-ignored"]
fn a_watch_far_behind_catches_up_through_fragments() {
    let url = common::etcd::endpoint("etcd catch-up");
    let a = store(&url, "catch-up", EtcdConfig::new().max_message_bytes(4 << 20));
    a.create_session("s", SessionOptions::new()).unwrap();
    a.register("s", VarDef::new("x", VarType::String, "")).unwrap();
    let mut w = a.watch("s", ["x"], WatchOptions::new().buffer(16)).unwrap();
    assert!(next(&mut w).is_initial());
    let b = common::etcd::peer(&a, &url);
    write_many(&b, 2_500, 5_000);
    for v in 1..=2_500u64 {
        let e = next(&mut w);
        assert_eq!((e.kind(), e.version()), (EventKind::Changed, v), "{e:?}");
        assert_eq!(e.value(), Some(&text(5_000, v as usize)));
    }
    assert!(w.try_recv().is_err(), "nothing more");
}

/// The same catch-up with a client that decodes at most 1 MiB per message
/// (smaller than etcd's fragments): the history cannot be followed, so the
/// watch is told exactly what it missed (`Lagged`) and gets the latest
/// state — never `Disconnected` while etcd answers.
#[test]
#[ignore = "needs etcd: scripts/with-etcd.sh cargo test --features etcd --test etcd_faults -- --include-ignored"]
fn a_catch_up_too_large_to_decode_is_lagged_then_the_state() {
    let url = common::etcd::endpoint("etcd unservable");
    let a = store(&url, "unservable", EtcdConfig::new().max_message_bytes(1 << 20));
    a.create_session("s", SessionOptions::new()).unwrap();
    a.register("s", VarDef::new("x", VarType::String, "")).unwrap();
    let mut w = a.watch("s", ["x"], WatchOptions::new().buffer(16)).unwrap();
    assert!(next(&mut w).is_initial());
    let b = common::etcd::peer(&a, &url);
    write_many(&b, 2_500, 5_000);
    let mut held = 0u64;
    let mut lagged = false;
    while held < 2_500 {
        let e = next(&mut w);
        match e.kind() {
            EventKind::Changed => {
                assert_eq!(e.version(), held + 1, "contiguous between markers");
                held = e.version();
            }
            EventKind::Lagged { first, last } => {
                assert_eq!(first, held + 1, "the marker starts where the watch was");
                lagged = true;
                let state = next(&mut w);
                assert_eq!(state.version(), last + 1, "then the state after what it skipped");
                assert_eq!(state.value(), Some(&text(5_000, last as usize + 1)));
                held = last + 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(lagged, "1 MiB cannot carry the catch-up: it must have lagged");
}

/// Four values of 1.4 MB — each accepted by etcd — make a session larger
/// than a 4 MiB message: every read still works, in pages at one revision.
#[test]
#[ignore = "needs etcd: scripts/with-etcd.sh cargo test --features etcd --test etcd_faults -- --include-ignored"]
fn a_session_larger_than_one_message_is_read_in_pages() {
    let url = common::etcd::endpoint("etcd pages");
    let a = store(&url, "pages", EtcdConfig::new().max_message_bytes(4 << 20));
    a.create_session("s", SessionOptions::new()).unwrap();
    let names: Vec<String> = (0..4).map(|i| format!("v{i}")).collect();
    for (i, n) in names.iter().enumerate() {
        a.register("s", VarDef::new(n.as_str(), VarType::String, text(1_400_000, i)))
            .unwrap();
    }
    let list = a.list_variables("s", None).unwrap();
    assert_eq!(list.len(), 4);
    assert_eq!(list.revision, 4);
    let got = a.get_many("s", &names).unwrap();
    assert_eq!(got.found.len(), 4, "{:?}", got.missing);
    assert_eq!(a.export("s").unwrap().len(), 4);
    let mut ws = a.watch_session("s", WatchOptions::new()).unwrap();
    let mut w = a.watch("s", &names, WatchOptions::new()).unwrap();
    for w in [&mut ws, &mut w] {
        for (i, n) in names.iter().enumerate() {
            let e = next(w);
            assert!(e.is_initial());
            assert_eq!(e.variable_name(), n);
            assert_eq!(e.value(), Some(&text(1_400_000, i)));
        }
    }
}

/// A single value larger than the client decodes is refused with the
/// client's limit named (not blamed on etcd).
#[test]
#[ignore = "needs etcd: scripts/with-etcd.sh cargo test --features etcd --test etcd_faults -- --include-ignored"]
fn a_value_over_the_clients_limit_names_the_limit() {
    let url = common::etcd::endpoint("etcd limit");
    let a = store(&url, "limit", EtcdConfig::new());
    a.create_session("s", SessionOptions::new()).unwrap();
    a.register("s", VarDef::new("big", VarType::String, text(1_200_000, 0)))
        .unwrap();
    let small = EtcdStore::connect([url.as_str()], a.config().clone().max_message_bytes(1 << 20)).unwrap();
    for err in [
        small.get("s", "big").unwrap_err(),
        small.list_variables("s", None).unwrap_err(),
    ] {
        assert!(
            matches!(&err, Error::LimitExceeded { what, limit, .. }
                if what.contains("EtcdConfig::max_message_bytes") && *limit == 1 << 20),
            "{err:?}"
        );
    }
}

/// Three members; the one the client talks to first is frozen (SIGSTOP):
/// every write still succeeds through the others, and a watch opened before
/// the freeze receives them all.
#[test]
#[ignore = "needs etcd: scripts/with-etcd.sh cargo test --features etcd --test etcd_faults -- --include-ignored"]
fn one_frozen_member_stalls_no_writer_and_no_watch() {
    let cluster = common::etcd::EtcdCluster::start("etcd frozen member", 3);
    let config = EtcdConfig::new().prefix(common::etcd::fresh_prefix("frozen"));
    let a = EtcdStore::connect(&cluster.urls, config).unwrap();
    a.create_session("s", SessionOptions::new()).unwrap();
    a.register("s", VarDef::new("x", VarType::Integer, 0)).unwrap();
    let mut w = a.watch("s", ["x"], WatchOptions::new()).unwrap();
    assert!(next(&mut w).is_initial());
    cluster.freeze(0);
    for i in 1..=30i64 {
        let v = a.update("s", "x", i).unwrap_or_else(|e| panic!("write {i}: {e}"));
        assert_eq!(v, i as u64);
    }
    for i in 1..=30u64 {
        let e = next(&mut w);
        assert_eq!((e.kind(), e.version()), (EventKind::Changed, i), "{e:?}");
    }
    cluster.thaw(0);
}

/// The answer to a write is lost on its way back (a proxy in front of the
/// first endpoint passes requests, not answers): the client sends it again
/// to the next member, sees that its own write committed, and answers with
/// its version — applied once, reported once.
#[test]
#[ignore = "needs etcd: scripts/with-etcd.sh cargo test --features etcd --test etcd_faults -- --include-ignored"]
fn a_lost_answer_is_learned_from_another_member() {
    let url = common::etcd::endpoint("etcd lost answer");
    let target = url.trim_start_matches("http://").parse().unwrap();
    let proxy = Proxy::start(target);
    let via = format!("http://{}", proxy.addr);
    let config = EtcdConfig::new()
        .prefix(common::etcd::fresh_prefix("lost-answer"))
        .attempt_timeout(Duration::from_millis(500));
    let a = EtcdStore::connect([via.as_str(), url.as_str()], config).unwrap();
    a.create_session("s", SessionOptions::new()).unwrap();
    a.register("s", VarDef::new("x", VarType::Integer, 0)).unwrap();
    proxy.freeze_answers(true);
    // Writes that could not be applied twice without an error: a second
    // copy planned afresh would meet version 1 (or an existing `y`).
    let at_zero = UpdateOptions::new().expected_version(0);
    assert_eq!(a.update_with("s", "x", 1, &at_zero).unwrap(), 1);
    assert!(a.register("s", VarDef::new("y", VarType::Integer, 0)).is_ok());
    let other = common::etcd::peer(&a, &url);
    let x = other.get("s", "x").unwrap();
    assert_eq!((x.version(), x.value()), (1, &Value::Integer(1)), "applied once");
    proxy.freeze_answers(false);
}

/// With no member to ask, a write whose answer never comes is
/// `OutcomeUnknown` — and here it was applied. A best-effort batch cut
/// short the same way reports the items that committed, the unknown one,
/// and the ones never sent.
#[test]
#[ignore = "needs etcd: scripts/with-etcd.sh cargo test --features etcd --test etcd_faults -- --include-ignored"]
fn a_write_whose_answer_never_comes_is_an_unknown_outcome() {
    let url = common::etcd::endpoint("etcd unknown outcome");
    let target = url.trim_start_matches("http://").parse().unwrap();
    let proxy = Proxy::start(target);
    let via = format!("http://{}", proxy.addr);
    let config = EtcdConfig::new()
        .prefix(common::etcd::fresh_prefix("unknown"))
        .call_timeout(Duration::from_secs(4))
        .attempt_timeout(Duration::from_millis(500));
    let a = EtcdStore::connect([via.as_str()], config).unwrap();
    a.create_session("s", SessionOptions::new()).unwrap();
    for v in ["x", "y"] {
        a.register("s", VarDef::new(v, VarType::Integer, 0)).unwrap();
    }
    let other = common::etcd::peer(&a, &url);

    // Written once with answers, so that the client holds the session's
    // snapshot and the next write is sent at once (a read first would be
    // lost, and nothing sent: a transport error, rightly).
    assert_eq!(a.update("s", "x", 1).unwrap(), 1);
    proxy.freeze_answers(true);
    let err = a.update("s", "x", 7).unwrap_err();
    assert!(
        matches!(&err, Error::OutcomeUnknown { session, operation, .. }
            if session == "s" && operation.contains("`x`")),
        "{err:?}"
    );
    assert_eq!(other.get("s", "x").unwrap().version(), 2, "and it was applied");
    proxy.freeze_answers(false);

    // A long batch cut short: answers stop once five of its items have
    // committed (the rest of it would take longer than that).
    let batch: Vec<BatchUpdate> = (1..=800).map(|i| BatchUpdate::new("y", i)).collect();
    let results = std::thread::scope(|scope| {
        let run = scope.spawn(|| a.update_best_effort("s", batch, &UpdateOptions::new()));
        common::wait_until("five items committed", || {
            other.get("s", "y").unwrap().version() >= 5
        });
        proxy.freeze_answers(true);
        run.join().unwrap()
    })
    .expect("a batch reports per item");
    proxy.freeze_answers(false);
    assert_eq!(results.len(), 800);
    let ok = results.iter().take_while(|r| r.is_ok()).count();
    assert!(
        (5..800).contains(&ok),
        "what committed before the failure is reported: {ok}"
    );
    let applied = other.get("s", "y").unwrap().version() as usize;
    assert!(
        applied == ok || applied == ok + 1,
        "{applied} applied, {ok} reported"
    );
    for (i, r) in results.iter().enumerate() {
        match r {
            Ok(v) => assert_eq!(*v as usize, i + 1, "item {i}"),
            Err(Error::OutcomeUnknown { operation, .. }) => {
                assert_eq!(i, ok, "only the item in flight is unknown");
                assert!(operation.contains(&format!("item {i}")), "{operation}");
            }
            Err(e @ Error::Transport { .. }) => assert!(i > ok, "item {i}: {e}"),
            Err(e) => panic!("item {i}: {e:?}"),
        }
    }
}
