//! One contract, every store: each check here runs against the in-process
//! `SessionStore`, against a `RemoteStore` over the in-memory transport
//! (feature `transport`) and over gRPC on loopback (feature `grpc`), through
//! the `VarStore` trait they all implement. A new transport is checked by
//! calling these functions on a `RemoteStore` over it.
#![cfg(not(loom))]

mod common;

use std::thread;

use varwatch::VarStore;
use varwatch::{
    BatchUpdate, Constraints, Error, EventKind, SessionOptions, UpdateOptions, Value, VarDef, VarType,
    WatchEvent, WatchOptions,
};

/// The kind of an error, local or remote, as the name the tests compare.
fn code(e: &Error) -> String {
    format!("{:?}", e.code())
}

fn message(e: &Error) -> String {
    e.to_string()
}

fn next<W: Iterator<Item = WatchEvent>>(w: &mut W) -> WatchEvent {
    w.next().expect("an event")
}

fn int(e: &WatchEvent) -> i64 {
    e.value().and_then(Value::as_i64).expect("an integer value")
}

/// Sessions, variables, versions and every error a client can act on.
pub fn operations<S: VarStore>(s: &S) {
    s.create_session("c1", SessionOptions::new()).unwrap();
    assert_eq!(
        code(&s.create_session("c1", SessionOptions::new()).unwrap_err()),
        "AlreadyExists"
    );
    s.get_or_create_session("c1", SessionOptions::new()).unwrap();
    let id = s
        .register(
            "c1",
            VarDef::new("t", VarType::Float, 20.0).constraints(Constraints::new().min(0.0).max(100.0)),
        )
        .unwrap();
    assert_eq!(
        code(
            &s.register("c1", VarDef::new("t", VarType::Integer, 1))
                .unwrap_err()
        ),
        "AlreadyExists"
    );
    let err = s
        .update_with("c1", "t", Value::Float(150.0), &UpdateOptions::new())
        .unwrap_err();
    assert_eq!(code(&err), "InvalidArgument");
    assert_eq!(
        message(&err),
        "variable `t` in session `c1`: 150 is above maximum 100"
    );
    assert_eq!(
        s.update_with("c1", &id, Value::Integer(42), &UpdateOptions::new())
            .unwrap(),
        1
    );
    let err = s
        .update_with(
            "c1",
            "t",
            Value::Float(1.0),
            &UpdateOptions::new().expected_version(0),
        )
        .unwrap_err();
    assert_eq!(code(&err), "FailedPrecondition");
    assert!(message(&err).contains("current version is 1"));
    // Same value: no new version.
    assert_eq!(
        s.update_with("c1", "t", Value::Float(42.0), &UpdateOptions::new())
            .unwrap(),
        1
    );
    let v = s.get("c1", "t").unwrap();
    assert_eq!(
        (v.id(), v.version(), v.value()),
        (id.as_str(), 1, &Value::Float(42.0))
    );
    assert_eq!(code(&s.get("c1", "nope").unwrap_err()), "NotFound");
    assert_eq!(code(&s.get("nope", "t").unwrap_err()), "NotFound");
    s.register("c1", VarDef::new("temp_2", VarType::Integer, 0))
        .unwrap();
    let names: Vec<String> = s
        .list_variables("c1", Some("temp_*"))
        .unwrap()
        .iter()
        .map(|v| v.name().to_string())
        .collect();
    assert_eq!(names, ["temp_2"]);
    // Batches: all or nothing, or item by item.
    let err = s
        .update_atomic(
            "c1",
            vec![BatchUpdate::new("temp_2", 5), BatchUpdate::new("t", 500.0)],
            &UpdateOptions::new(),
        )
        .unwrap_err();
    assert_eq!(code(&err), "InvalidArgument");
    assert!(message(&err).contains("nothing was changed"), "{}", message(&err));
    assert_eq!(s.get("c1", "temp_2").unwrap().version(), 0);
    let versions = s
        .update_atomic(
            "c1",
            vec![BatchUpdate::new("temp_2", 5), BatchUpdate::new("t", 50.0)],
            &UpdateOptions::new(),
        )
        .unwrap();
    assert_eq!(versions, [1, 2]);
    let items = s
        .update_best_effort(
            "c1",
            vec![BatchUpdate::new("temp_2", 6), BatchUpdate::new("nope", 1)],
            &UpdateOptions::new(),
        )
        .unwrap();
    assert_eq!(items[0], Ok(2));
    assert_eq!(code(items[1].as_ref().unwrap_err()), "NotFound");
    let got = s.get_many("c1", ["t", "nope", "temp_2"]).unwrap();
    let found: Vec<(&str, u64)> = got
        .found
        .iter()
        .map(|(ident, v)| (ident.as_str(), v.version()))
        .collect();
    assert_eq!(found, [("t", 2), ("temp_2", 2)]);
    assert_eq!(got.missing, ["nope"]);
    s.delete_variable("c1", "temp_2").unwrap();
    assert_eq!(code(&s.delete_variable("c1", "temp_2").unwrap_err()), "NotFound");
    assert!(s.list_sessions().unwrap().contains(&"c1".to_string()));
    assert_eq!(s.session("c1").unwrap().variables, 1);
    s.delete_session("c1").unwrap();
    assert_eq!(code(&s.session("c1").unwrap_err()), "NotFound");
}

/// The watch guarantees: the stale-read case, order, deletion, whole-session
/// watches and session close.
pub fn watching<S: VarStore + Sync>(s: &S) {
    s.create_session("c2", SessionOptions::new()).unwrap();
    s.register("c2", VarDef::new("x", VarType::Integer, 1)).unwrap();
    // Subscribed first: exactly [1, 2, 3], the first initial.
    let mut w = s.watch("c2", ["x"], WatchOptions::new()).unwrap();
    for v in [2, 3] {
        s.update_with("c2", "x", Value::Integer(v), &UpdateOptions::new())
            .unwrap();
    }
    let got: Vec<(EventKind, i64, u64)> = (0..3)
        .map(|_| next(&mut w))
        .map(|e| (e.kind(), int(&e), e.version()))
        .collect();
    assert_eq!(
        got,
        [
            (EventKind::Initial, 1, 0),
            (EventKind::Changed, 2, 1),
            (EventKind::Changed, 3, 2)
        ]
    );
    // A writer racing the subscription: contiguous from the snapshot.
    for _ in 0..20 {
        s.update_with("c2", "x", Value::Integer(1), &UpdateOptions::new())
            .unwrap();
        thread::scope(|scope| {
            scope.spawn(|| {
                for v in [2, 3] {
                    s.update_with("c2", "x", Value::Integer(v), &UpdateOptions::new())
                        .unwrap();
                }
            });
            let mut w = s.watch("c2", ["x"], WatchOptions::new()).unwrap();
            let first = next(&mut w);
            assert!(first.is_initial());
            let (mut value, mut version) = (int(&first), first.version());
            while value != 3 {
                let e = next(&mut w);
                assert_eq!(
                    (e.kind(), e.version(), int(&e)),
                    (EventKind::Changed, version + 1, value + 1)
                );
                (value, version) = (int(&e), e.version());
            }
        });
    }
    // Whole session: a new variable's first event is its initial state.
    let mut all = s
        .watch_session("c2", WatchOptions::new().include_initial(false))
        .unwrap();
    s.register("c2", VarDef::new("y", VarType::Integer, 7)).unwrap();
    let e = next(&mut all);
    assert_eq!(
        (e.kind(), e.variable_name(), int(&e)),
        (EventKind::Initial, "y", 7)
    );
    // An atomic batch arrives whole, at one revision, in order.
    s.update_atomic(
        "c2",
        vec![BatchUpdate::new("x", 10), BatchUpdate::new("y", 70)],
        &UpdateOptions::new(),
    )
    .unwrap();
    let (a, b) = (next(&mut all), next(&mut all));
    assert_eq!((a.variable_name(), int(&a)), ("x", 10));
    assert_eq!((b.variable_name(), int(&b)), ("y", 70));
    assert_eq!(a.revision(), b.revision());
    // Unknown sessions and variables are refused when the watch is made.
    assert_eq!(
        code(&s.watch("c2", ["nope"], WatchOptions::new()).unwrap_err()),
        "NotFound"
    );
    assert_eq!(
        code(&s.watch_session("nope", WatchOptions::new()).unwrap_err()),
        "NotFound"
    );
    // Deleting the only watched variable ends a watch.
    let mut wy = s
        .watch("c2", ["y"], WatchOptions::new().include_initial(false))
        .unwrap();
    s.delete_variable("c2", "y").unwrap();
    assert_eq!(next(&mut wy).kind(), EventKind::Deleted);
    assert!(wy.next().is_none());
    assert_eq!(next(&mut all).kind(), EventKind::Deleted);
    // Deleting the session ends the rest.
    s.delete_session("c2").unwrap();
    assert_eq!(next(&mut all).kind(), EventKind::SessionClosed);
    assert!(all.next().is_none());
    let last = w.find(|e| e.kind() == EventKind::SessionClosed);
    assert!(last.is_some());
}

/// The rules the hardening work made true, the same on every store: batch
/// semantics, identifiers that cannot alias, bounded messages, cuts.
pub fn hardening<S: VarStore>(s: &S) {
    s.create_session("h", SessionOptions::new()).unwrap();
    let id_a = s.register("h", VarDef::new("a", VarType::Integer, 0)).unwrap();
    s.register("h", VarDef::new("b", VarType::Integer, 0)).unwrap();
    // Best effort: each item checked against the state the items before it
    // left.
    let r = s
        .update_best_effort(
            "h",
            [
                BatchUpdate::new("a", 1).expected_version(0),
                BatchUpdate::new("a", 2).expected_version(0),
            ],
            &UpdateOptions::new(),
        )
        .unwrap();
    assert_eq!(r[0].as_ref().ok(), Some(&1));
    let e = r[1].as_ref().unwrap_err();
    assert_eq!(code(e), "FailedPrecondition");
    assert!(
        message(e).contains("expected version 0, current version is 1"),
        "{e}"
    );
    // Atomic: every failure in one rejection, nothing applied.
    let err = s
        .update_atomic(
            "h",
            [
                BatchUpdate::new("a", 5),
                BatchUpdate::new("a", 6),
                BatchUpdate::new("nope", 7),
            ],
            &UpdateOptions::new(),
        )
        .unwrap_err();
    let text = message(&err);
    assert!(
        text.contains("more than once") && text.contains("`nope`"),
        "{text}"
    );
    assert_eq!(s.value("h", "a").unwrap(), Value::Integer(1));
    // Identifiers: a name of the id form is refused; an id reaches only its
    // variable.
    let err = s
        .register("h", VarDef::new("var_3", VarType::Integer, 0))
        .unwrap_err();
    assert_eq!(code(&err), "InvalidArgument");
    assert_eq!(s.update("h", &id_a, 9).unwrap(), 2);
    assert_eq!(s.value("h", "a").unwrap(), Value::Integer(9));
    assert_eq!(code(&s.get("h", "var_987654").unwrap_err()), "NotFound");
    // A huge identifier is not found, with a short message (over gRPC a long
    // one would not fit a client's header limit: RESOURCE_EXHAUSTED).
    let huge = "x".repeat(20_000);
    for err in [s.get("h", &huge).unwrap_err(), s.session(&huge).unwrap_err()] {
        assert_eq!(code(&err), "NotFound", "{err}");
        assert!(message(&err).len() < 1024);
    }
    // A multi-get is a cut, and says at which revision.
    s.update_atomic("h", [("a", 10), ("b", -10)], &UpdateOptions::new())
        .unwrap();
    let got = s.get_many("h", ["a", "b", "nope"]).unwrap();
    assert_eq!(got.missing, ["nope"]);
    assert_eq!(got.revision, s.session("h").unwrap().revision);
    assert!(got.found.iter().all(|(_, v)| v.revision() == got.revision));
    // Export, then import into another session: same names, types, values,
    // constraints and metadata, under one revision; an import with a bad
    // definition registers nothing and names every failure.
    s.register(
        "h",
        VarDef::new("t", VarType::Float, 20.5)
            .constraints(Constraints::new().min(0.0).max(100.0))
            .metadata("unit", "C"),
    )
    .unwrap();
    let defs = s.export("h").unwrap();
    assert_eq!(
        defs.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
        ["a", "b", "t"]
    );
    s.create_session("h2", SessionOptions::new()).unwrap();
    let before = s.session("h2").unwrap().revision;
    let ids = s.import("h2", defs.clone()).unwrap();
    assert_eq!(ids.len(), 3);
    assert_eq!(s.session("h2").unwrap().revision, before + 1);
    let t = s.get("h2", "t").unwrap();
    assert_eq!(t.value(), &Value::Float(20.5));
    assert_eq!(t.constraints().max, Some(100.0));
    assert_eq!(t.metadata().get("unit").map(String::as_str), Some("C"));
    let mut bad = defs;
    bad.push(VarDef::new("t", VarType::Float, 500.0));
    bad.push(VarDef::new("u", VarType::Integer, "x"));
    let err = s.import("h2", bad).unwrap_err();
    let text = message(&err);
    assert!(text.contains("`t`") && text.contains("`u`"), "{text}");
    assert_eq!(
        s.list_variables("h2", None).unwrap().len(),
        3,
        "a failed import registered something"
    );
    s.delete_session("h2").unwrap();
    s.delete_session("h").unwrap();
}

/// Every error a user can provoke through the store API is the same
/// variant with the same fields on every store: code written against
/// `VarStore` can match on them whichever store it is given (over gRPC they
/// travel as the status's detail).
pub fn errors<S: VarStore>(s: &S) {
    let str = String::from;
    s.create_session("e", SessionOptions::new()).unwrap();
    s.register(
        "e",
        VarDef::new("t", VarType::Float, 20.0).constraints(Constraints::new().min(0.0).max(100.0)),
    )
    .unwrap();
    s.register("e", VarDef::new("n", VarType::Integer, 0)).unwrap();
    let same = |got: Error, want: Error| assert_eq!(got, want, "{got}");
    same(
        s.create_session("e", SessionOptions::new()).unwrap_err(),
        Error::SessionExists { session: str("e") },
    );
    same(
        s.session("nope").unwrap_err(),
        Error::SessionNotFound { session: str("nope") },
    );
    same(
        s.update("nope", "t", 1.0).unwrap_err(),
        Error::SessionNotFound { session: str("nope") },
    );
    same(
        s.create_session("", SessionOptions::new()).unwrap_err(),
        Error::InvalidName {
            what: "session id".into(),
            name: str(""),
            reason: "must not be empty".into(),
        },
    );
    same(
        s.register("e", VarDef::new("var_9", VarType::Integer, 0))
            .unwrap_err(),
        Error::InvalidName {
            what: "variable name".into(),
            name: str("var_9"),
            reason: "has the form of a variable id (`var_` followed by digits), which names may not take"
                .into(),
        },
    );
    same(
        s.get("e", "nope").unwrap_err(),
        Error::VariableNotFound {
            session: str("e"),
            variable: str("nope"),
        },
    );
    same(
        s.watch("e", ["nope", "t", "nada"], WatchOptions::new())
            .unwrap_err(),
        Error::VariablesNotFound {
            session: str("e"),
            variables: vec![str("nope"), str("nada")],
        },
    );
    same(
        s.register("e", VarDef::new("t", VarType::Integer, 1))
            .unwrap_err(),
        Error::VariableExists {
            session: str("e"),
            name: str("t"),
        },
    );
    same(
        s.update("e", "t", 150.0).unwrap_err(),
        Error::InvalidValue {
            session: str("e"),
            variable: str("t"),
            reason: str("150 is above maximum 100"),
        },
    );
    same(
        s.update("e", "t", "warm").unwrap_err(),
        Error::InvalidValue {
            session: str("e"),
            variable: str("t"),
            reason: str("expected a float, got \"warm\" (string)"),
        },
    );
    same(
        s.register(
            "e",
            VarDef::new("c", VarType::Integer, 5).constraints(Constraints::new().min(10.0).max(1.0)),
        )
        .unwrap_err(),
        Error::InvalidConstraints {
            session: str("e"),
            variable: str("c"),
            reason: str("`min` 10 is above `max` 1"),
        },
    );
    s.update("e", "n", 1).unwrap();
    s.update("e", "n", 2).unwrap();
    same(
        s.update_with("e", "n", 3, &UpdateOptions::new().expected_version(0))
            .unwrap_err(),
        Error::VersionConflict {
            session: str("e"),
            variable: str("n"),
            expected: 0,
            current: 2,
        },
    );
    same(
        s.update_atomic(
            "e",
            [
                BatchUpdate::new("n", 5),
                BatchUpdate::new("n", 6),
                BatchUpdate::new("nope", 7),
                BatchUpdate::new("t", 500.0),
            ],
            &UpdateOptions::new(),
        )
        .unwrap_err(),
        Error::BatchRejected {
            session: str("e"),
            failures: vec![
                (
                    str("n"),
                    Error::DuplicateInBatch {
                        session: str("e"),
                        variable: str("n"),
                    },
                ),
                (
                    str("nope"),
                    Error::VariableNotFound {
                        session: str("e"),
                        variable: str("nope"),
                    },
                ),
                (
                    str("t"),
                    Error::InvalidValue {
                        session: str("e"),
                        variable: str("t"),
                        reason: str("500 is above maximum 100"),
                    },
                ),
            ],
        },
    );
    let items = s
        .update_best_effort(
            "e",
            [
                BatchUpdate::new("n", 3).expected_version(1),
                BatchUpdate::new("t", -1.0),
            ],
            &UpdateOptions::new(),
        )
        .unwrap();
    assert_eq!(
        items,
        [
            Err(Error::VersionConflict {
                session: str("e"),
                variable: str("n"),
                expected: 1,
                current: 2,
            }),
            Err(Error::InvalidValue {
                session: str("e"),
                variable: str("t"),
                reason: str("-1 is below minimum 0"),
            }),
        ]
    );
    same(
        s.watch("e", ["t"], WatchOptions::new().capacity(0)).unwrap_err(),
        Error::InvalidOption(str("capacity must be at least 1")),
    );
    let long = "*".repeat(300);
    same(
        s.list_variables("e", Some(&long)).unwrap_err(),
        Error::InvalidPattern {
            pattern: long.clone(),
            reason: "must be at most 256 bytes long".into(),
        },
    );
    s.delete_session("e").unwrap();
}

/// The one watch front end behaves the same whatever the store: ids,
/// sessions, receiving with and without waiting, the filter and its
/// counters, async receive and the stream, and why the watch ended.
pub fn front_end<S: VarStore>(s: &S) {
    use std::time::{Duration, Instant};
    use varwatch::{CloseReason, RecvTimeoutError, TryRecvError};

    s.create_session("f", SessionOptions::new()).unwrap();
    s.register("f", VarDef::new("x", VarType::Integer, 0)).unwrap();
    s.register("f", VarDef::new("y", VarType::Integer, 0)).unwrap();
    let mut a = s
        .watch("f", ["x"], WatchOptions::new().include_initial(false))
        .unwrap();
    let b = s.watch_session("f", WatchOptions::new()).unwrap();
    assert_ne!(a.id(), b.id());
    assert_eq!((a.session_id(), b.session_id()), ("f", "f"));
    assert_eq!(a.session_incarnation(), b.session_incarnation());
    assert_eq!(a.close_reason(), None);
    // Nothing to receive: each way of asking says so.
    assert_eq!(a.try_recv().unwrap_err(), TryRecvError::Empty);
    assert_eq!(
        a.recv_timeout(Duration::from_millis(20)).unwrap_err(),
        RecvTimeoutError::Timeout
    );
    let deadline = Instant::now() + Duration::from_millis(20);
    assert_eq!(a.recv_deadline(deadline).unwrap_err(), RecvTimeoutError::Timeout);
    assert!(Instant::now() >= deadline);
    // Three writes: received blocking, then what is ready at once.
    for v in 1..=3 {
        s.update("f", "x", v).unwrap();
    }
    assert_eq!(next(&mut a).version(), 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while a.stats().events_delivered < 3 && Instant::now() < deadline {
        a.extend_from_ready();
    }
    assert_eq!(a.stats().events_delivered, 3);
    // A filter runs on the receiving side and counts what it rejects; a
    // panicking one lets its event through and counts the panic.
    let mut even = s
        .watch(
            "f",
            ["y"],
            WatchOptions::new()
                .include_initial(false)
                .filter(|_, new| new.as_i64().is_some_and(|v| v % 2 == 0)),
        )
        .unwrap();
    let mut panicky = s
        .watch(
            "f",
            ["y"],
            WatchOptions::new()
                .include_initial(false)
                .filter(|_, _| panic!("a filter's bug")),
        )
        .unwrap();
    for v in 1..=4 {
        s.update("f", "y", v).unwrap();
    }
    assert_eq!(int(&next(&mut even)), 2);
    assert_eq!(int(&next(&mut even)), 4);
    assert_eq!(even.stats().events_filtered, 2);
    for v in 1..=4 {
        assert_eq!(int(&next(&mut panicky)), v);
    }
    assert_eq!(panicky.stats().filter_panics, 4);
    // Async: `recv_async`, and the watch as a stream.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    s.update("f", "y", 5).unwrap(); // odd: filtered out
    s.update("f", "y", 6).unwrap();
    let e = rt.block_on(even.recv_async()).unwrap();
    assert_eq!((e.version(), int(&e)), (6, 6));
    s.update("f", "x", 10).unwrap();
    let mut stream = a.into_stream();
    let e = rt.block_on(futures_util::StreamExt::next(&mut stream)).unwrap();
    assert_eq!((e.variable_name(), int(&e)), ("x", 10));
    let mut a = stream.into_inner();
    // Why it ended: its only variable deleted, then the session.
    s.delete_variable("f", "x").unwrap();
    assert_eq!(next(&mut a).kind(), EventKind::Deleted);
    assert!(a.next().is_none());
    assert_eq!(a.close_reason(), Some(CloseReason::VariablesDeleted));
    s.delete_session("f").unwrap();
    let mut b = b;
    let last = (&mut b).last().unwrap();
    assert_eq!(last.kind(), EventKind::SessionClosed);
    assert_eq!(b.close_reason(), Some(CloseReason::SessionClosed));
    assert_eq!(b.try_recv().unwrap_err(), TryRecvError::Closed);
}

/// Receives what is ready now (a helper for the front-end contract).
trait ExtendFromReady {
    fn extend_from_ready(&mut self);
}

impl ExtendFromReady for varwatch::Watch {
    fn extend_from_ready(&mut self) {
        let _ = self.try_iter().count();
    }
}

#[test]
fn local_store_keeps_the_contract() {
    let s = varwatch::SessionStore::new();
    operations(&s);
    watching(&s);
    hardening(&s);
    errors(&s);
    front_end(&s);
}

#[cfg(feature = "transport")]
#[test]
fn remote_store_over_the_memory_transport_keeps_the_contract() {
    use varwatch::transport::{MemoryTransport, RemoteConfig, RemoteStore, Service};

    let store = varwatch::SessionStore::new();
    let remote = RemoteStore::new(MemoryTransport::new(Service::new(store)), RemoteConfig::new()).unwrap();
    operations(&remote);
    watching(&remote);
    hardening(&remote);
    errors(&remote);
    front_end(&remote);
}

#[cfg(feature = "grpc")]
#[test]
fn remote_store_over_grpc_keeps_the_contract() {
    use varwatch::transport::grpc::GrpcService;
    use varwatch::transport::{RemoteConfig, RemoteStore};

    let server = common::server::Server::start(GrpcService::new(varwatch::SessionStore::new()));
    let remote = RemoteStore::connect(&server.addr, RemoteConfig::new()).unwrap();
    operations(&remote);
    watching(&remote);
    hardening(&remote);
    errors(&remote);
    front_end(&remote);
}

#[cfg(feature = "durable")]
#[test]
fn durable_store_keeps_the_contract_and_the_same_after_a_reopen() {
    use varwatch::durable::DurableOptions;
    let dir = std::env::temp_dir().join(format!("varwatch-contract-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (s, _) =
        varwatch::SessionStore::open(&dir, varwatch::StoreConfig::new(), DurableOptions::new()).unwrap();
    operations(&s);
    watching(&s);
    hardening(&s);
    errors(&s);
    front_end(&s);
    // What the suite left, read back from disk, is what it left.
    let dump = |s: &varwatch::SessionStore, id: &str| -> Vec<String> {
        s.list_variables(id, None)
            .unwrap()
            .iter()
            .map(common::describe)
            .collect()
    };
    let before: Vec<(String, Vec<String>)> = s
        .list_sessions()
        .into_iter()
        .map(|id| {
            let vars = dump(&s, &id);
            (id, vars)
        })
        .collect();
    drop(s);
    let (s, _) =
        varwatch::SessionStore::open(&dir, varwatch::StoreConfig::new(), DurableOptions::new()).unwrap();
    for (id, vars) in &before {
        assert_eq!(&dump(&s, id), vars, "session {id}");
    }
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(feature = "etcd")]
#[test]
#[ignore = "needs etcd: scripts/with-etcd.sh cargo test --features etcd,server --test etcd -- --include-ignored"]
fn etcd_store_keeps_the_contract() {
    let s = common::etcd::store("contract");
    operations(&s);
    watching(&s);
    hardening(&s);
    errors(&s);
    front_end(&s);
}

#[cfg(feature = "etcd")]
#[test]
#[ignore = "needs etcd: scripts/with-etcd.sh cargo test --features etcd,server --test etcd -- --include-ignored"]
fn remote_store_over_grpc_over_etcd_keeps_the_contract() {
    use varwatch::transport::grpc::GrpcService;
    use varwatch::transport::{RemoteConfig, RemoteStore};

    let etcd = common::etcd::store("contract over gRPC");
    let server = common::server::Server::start(GrpcService::new(etcd.to_async()));
    let remote = RemoteStore::connect(&server.addr, RemoteConfig::new()).unwrap();
    operations(&remote);
    watching(&remote);
    hardening(&remote);
    errors(&remote);
    front_end(&remote);
}
