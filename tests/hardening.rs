//! Regressions for the kinds of fault the hardening work fixed: reads of
//! several variables that are not cuts, batches that do not mean what their
//! docs say, identifiers that alias, and inputs that make messages huge.
//! Each test failed on the code before the fix (see the closing note of the
//! hardening issue for which were checked by reverting).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use varwatch::{
    BatchUpdate, Constraints, Error, ErrorCode, SessionOptions, SessionStore, StoreConfig, UpdateOptions,
    Value, VarDef, VarType, WatchOptions,
};

fn store_with(vars: &[(&str, i64)]) -> SessionStore {
    let store = SessionStore::new();
    store.create_session("s", SessionOptions::new()).unwrap();
    for (n, v) in vars {
        store
            .register("s", VarDef::new(*n, VarType::Integer, *v))
            .unwrap();
    }
    store
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap()
}

// ----- 1. every multi-variable read is a cut ------------------------------------

/// While a writer sets `a = i, b = -i` in atomic batches, every read that
/// hands out both (`get_many`, `list_variables`, `snapshot`, `export`) sees
/// `a == -b`, and `get_many`'s revision is the revision both are at.
#[test]
fn multi_variable_reads_are_cuts() {
    let store = store_with(&[("a", 0), ("b", 0), ("c", 0)]);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), stop.clone());
        thread::spawn(move || {
            let mut i = 0i64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                store
                    .update_atomic("s", [("a", i), ("b", -i)], &UpdateOptions::new())
                    .unwrap();
                store.update("s", "c", i).unwrap(); // revisions that touch neither
            }
        })
    };
    for round in 0..3_000 {
        let got = store.get_many("s", ["a", "b"]).unwrap();
        let (a, b) = (&got.found[0].1, &got.found[1].1);
        assert_eq!(int(a.value()), -int(b.value()), "get_many, round {round}");
        assert!(a.revision() <= got.revision && b.revision() <= got.revision);
        let vars = store.list_variables("s", Some("?")).unwrap();
        assert_eq!(
            int(vars[0].value()),
            -int(vars[1].value()),
            "list_variables, round {round}"
        );
        let listed = store.list_variables("s", None).unwrap();
        let (rev, vars) = (listed.revision, listed.variables);
        assert_eq!(
            int(vars[0].value()),
            -int(vars[1].value()),
            "list_variables with its revision, round {round}"
        );
        assert!(vars.iter().all(|v| v.revision() <= rev));
        let defs = store.export("s").unwrap();
        assert_eq!(int(&defs[0].value), -int(&defs[1].value), "export, round {round}");
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
}

/// The input: a watch on `a` and `b` with a tiny capacity, against
/// a writer of `update_atomic([a = i, b = -i])`. Every group the watch
/// hands out leaves it holding `a == -b`, and revisions never go back.
#[test]
fn a_resyncing_watch_never_holds_half_a_batch() {
    for capacity in [1, 4] {
        let store = store_with(&[("a", 0), ("b", 0)]);
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (store, stop) = (store.clone(), stop.clone());
            thread::spawn(move || {
                let mut i = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    store
                        .update_atomic("s", [("a", i), ("b", -i)], &UpdateOptions::new())
                        .unwrap();
                }
            })
        };
        let mut w = store
            .watch("s", ["a", "b"], WatchOptions::new().capacity(capacity))
            .unwrap();
        let (mut a, mut b, mut label) = (None, None, 0);
        let mut resyncs = 0;
        for n in 0..20_000 {
            let e = w.recv().unwrap();
            assert!(
                e.revision() >= label,
                "revision went back: {label} then {}",
                e.revision()
            );
            if e.revision() > label && n > 0 {
                assert_eq!(
                    a.map(|a: i64| -a),
                    b,
                    "a group ended on a state that never existed"
                );
            }
            label = e.revision();
            if let Some(v) = e.value() {
                match e.variable_name() {
                    "a" => a = Some(int(v)),
                    _ => b = Some(int(v)),
                }
            }
            if n % 512 == 0 {
                thread::sleep(std::time::Duration::from_millis(1)); // fall behind
            }
            resyncs = w.stats().lag_events;
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        assert!(resyncs > 0, "capacity {capacity}: the watch never resynced");
    }
}

// ----- 2. batches mean what their docs say -----------------------------------------

#[test]
fn best_effort_items_are_checked_in_order() {
    let store = SessionStore::new();
    store.create_session("s", SessionOptions::new()).unwrap();
    store
        .register("s", VarDef::new("t", VarType::Float, 0.0))
        .unwrap();
    let r = store
        .update_best_effort(
            "s",
            [
                BatchUpdate::new("t", 1.0).expected_version(0),
                BatchUpdate::new("t", 2.0).expected_version(0),
                BatchUpdate::new("t", 3.0).expected_version(1),
            ],
            &UpdateOptions::new(),
        )
        .unwrap();
    assert_eq!(r[0], Ok(1));
    assert!(
        matches!(
            &r[1],
            Err(Error::VersionConflict {
                expected: 0,
                current: 1,
                ..
            })
        ),
        "{:?}",
        r[1]
    );
    assert_eq!(r[2], Ok(2));
    assert_eq!(store.value("s", "t").unwrap().as_f64(), Some(3.0));
    // Each applied item is its own write.
    assert_eq!(store.session("s").unwrap().revision, 3);
}

#[test]
fn an_atomic_batch_reports_every_failure() {
    let store = store_with(&[("a", 0), ("b", 0)]);
    store
        .register(
            "s",
            VarDef::new("small", VarType::Integer, 0).constraints(Constraints::new().max(10.0)),
        )
        .unwrap();
    let before = store.session("s").unwrap().revision;
    let err = store
        .update_atomic(
            "s",
            [
                BatchUpdate::new("a", 1),
                BatchUpdate::new("a", 2),
                BatchUpdate::new("nope", 3),
                BatchUpdate::new("small", 11),
                BatchUpdate::new("b", 1).expected_version(7),
            ],
            &UpdateOptions::new(),
        )
        .unwrap_err();
    let Error::BatchRejected { failures, .. } = &err else {
        panic!("{err:?}")
    };
    let got: Vec<(&str, ErrorCode)> = failures.iter().map(|(i, e)| (i.as_str(), e.code())).collect();
    assert_eq!(
        got,
        [
            ("a", ErrorCode::InvalidArgument),
            ("nope", ErrorCode::NotFound),
            ("small", ErrorCode::InvalidArgument),
            ("b", ErrorCode::FailedPrecondition),
        ],
        "{err}"
    );
    assert!(matches!(failures[0].1, Error::DuplicateInBatch { .. }));
    // Nothing changed.
    assert_eq!(store.session("s").unwrap().revision, before);
    assert_eq!(store.value("s", "a").unwrap(), Value::Integer(0));
    // An empty batch, or one of no-ops, makes no revision.
    assert_eq!(
        store
            .update_atomic("s", Vec::<BatchUpdate>::new(), &UpdateOptions::new())
            .unwrap(),
        Vec::<u64>::new()
    );
    assert_eq!(
        store
            .update_atomic("s", [("a", 0), ("b", 0)], &UpdateOptions::new())
            .unwrap(),
        [0, 0]
    );
    assert_eq!(store.session("s").unwrap().revision, before);
}

#[test]
fn an_import_reports_every_failure_and_registers_nothing() {
    let store = store_with(&[("taken", 0)]);
    let before = store.session("s").unwrap().revision;
    let err = store
        .import(
            "s",
            vec![
                VarDef::new("fine", VarType::Integer, 1),
                VarDef::new("taken", VarType::Integer, 1),
                VarDef::new("twice", VarType::Integer, 1),
                VarDef::new("twice", VarType::Integer, 2),
                VarDef::new("", VarType::Integer, 1),
                VarDef::new("var_12", VarType::Integer, 1),
                VarDef::new("bad", VarType::String, 1),
                VarDef::new("odd", VarType::String, "x").constraints(Constraints::new().min(1.0)),
            ],
        )
        .unwrap_err();
    let Error::BatchRejected { failures, .. } = &err else {
        panic!("{err:?}")
    };
    let names: Vec<&str> = failures.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["taken", "twice", "", "var_12", "bad", "odd"], "{err}");
    assert!(matches!(failures[0].1, Error::VariableExists { .. }));
    assert!(matches!(failures[1].1, Error::DuplicateInBatch { .. }));
    assert!(matches!(failures[4].1, Error::InvalidValue { .. }));
    assert!(matches!(failures[5].1, Error::InvalidConstraints { .. }));
    assert!(
        !store
            .list_variables("s", None)
            .unwrap()
            .iter()
            .any(|v| v.name() == "fine")
    );
    assert_eq!(store.session("s").unwrap().revision, before);
    assert_eq!(store.import("s", vec![]).unwrap(), Vec::<String>::new());
    assert_eq!(store.session("s").unwrap().revision, before);
}

// ----- 3. identifiers never alias --------------------------------------------------

/// Both ways: a name cannot take the form of an id, and an id-form string
/// only ever finds the variable with that id.
#[test]
fn no_string_means_two_variables() {
    let store = store_with(&[("a", 1), ("b", 2)]);
    let id_a = store.get("s", "a").unwrap().id().to_string();
    let id_b = store.get("s", "b").unwrap().id().to_string();
    // A name of the id form is refused, whatever id it would shadow.
    for name in [id_b.as_str(), "var_3", "var_007", "var_99999999999999999999"] {
        let err = store
            .register("s", VarDef::new(name, VarType::Integer, 99))
            .unwrap_err();
        assert!(matches!(err, Error::InvalidName { .. }), "{name}: {err}");
        assert!(err.to_string().contains("form of a variable id"), "{err}");
    }
    // Names that only look a bit like ids are names.
    for name in ["var_", "var_x", "var_1a", "Var_1"] {
        store
            .register("s", VarDef::new(name, VarType::Integer, 5))
            .unwrap();
        assert_eq!(store.get("s", name).unwrap().name(), name);
    }
    // An id reaches exactly its variable, for every operation.
    assert_eq!(store.update("s", &id_b, 20).unwrap(), 1);
    assert_eq!(store.value("s", "b").unwrap(), Value::Integer(20));
    assert_eq!(store.value("s", "a").unwrap(), Value::Integer(1));
    assert_eq!(store.get("s", &id_a).unwrap().name(), "a");
    // An id that no variable has is not found, even if some name ends the same.
    let err = store.update("s", "var_424242", 1).unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
    // Deleting by id deletes that variable.
    store.delete_variable("s", &id_a).unwrap();
    assert!(store.get("s", "a").is_err());
    assert!(store.get("s", "b").is_ok());
    // Import follows the same rule.
    assert!(
        store
            .import("s", vec![VarDef::new("var_5", VarType::Integer, 0)])
            .is_err()
    );
}

// ----- 4. hostile or degenerate inputs ------------------------------------------------

/// Messages quote at most a bounded part of what the caller passed.
#[test]
fn messages_quote_user_input_bounded() {
    let store = store_with(&[("x", 0)]);
    let huge = "é".repeat(20_000);
    let errors = vec![
        store.session(&huge).unwrap_err(),
        store.get("s", &huge).unwrap_err(),
        store.update("s", &huge, 1).unwrap_err(),
        store
            .watch("s", [huge.as_str(), huge.as_str()], WatchOptions::new())
            .unwrap_err(),
        store.create_session(&huge, SessionOptions::new()).unwrap_err(),
        store
            .register("s", VarDef::new(huge.as_str(), VarType::Integer, 0))
            .unwrap_err(),
        store.list_variables("s", Some(&huge)).unwrap_err(),
        store
            .register(
                "s",
                VarDef::new("c", VarType::Choice, huge.as_str())
                    .constraints(Constraints::new().choices((0..5_000).map(|i| format!("{huge}{i}")))),
            )
            .unwrap_err(),
        store
            .update_atomic(
                "s",
                (0..10_000).map(|i| BatchUpdate::new(format!("{huge}{i}"), 1)),
                &UpdateOptions::new(),
            )
            .unwrap_err(),
        store
            .register(
                "s",
                VarDef::new(
                    "t",
                    VarType::Tensor,
                    Value::tensor(vec![1; 100_000], vec![0.0]).unwrap(),
                )
                .constraints(Constraints::new().shape(vec![2])),
            )
            .unwrap_err(),
        Value::tensor(vec![usize::MAX; 50_000], vec![]).unwrap_err(),
    ];
    for e in errors {
        let msg = e.to_string();
        let start: String = msg.chars().take(100).collect();
        assert!(msg.len() < 8 * 1024, "{} bytes: {start}…", msg.len());
    }
}

/// Sizes at their extremes: refused with a clear error, or handled with
/// memory allocated as it is used (the process would abort otherwise).
#[test]
fn extreme_sizes_are_refused_or_bounded() {
    let store = SessionStore::with_config(StoreConfig::new().max_event_log(usize::MAX));
    assert_eq!(store.config().max_event_log, 1 << 30);
    store.create_session("s", SessionOptions::new()).unwrap();
    store
        .register("s", VarDef::new("x", VarType::Integer, 0))
        .unwrap();
    let mut w = store
        .watch("s", ["x"], WatchOptions::new().capacity(usize::MAX))
        .unwrap();
    for i in 1..=100 {
        store.update("s", "x", i).unwrap();
    }
    assert_eq!(w.try_iter().count(), 101);
    drop(w);
    // Zero is refused where it cannot mean anything.
    let err = store
        .watch("s", ["x"], WatchOptions::new().capacity(0))
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    let err = store
        .watch(
            "s",
            ["x"],
            WatchOptions::new().throttle(std::time::Duration::ZERO),
        )
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    let err = store
        .watch("s", Vec::<String>::new(), WatchOptions::new())
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    // A sweeper cannot be made to spin.
    let swept = SessionStore::with_config(StoreConfig::new().sweep_interval(std::time::Duration::ZERO));
    assert_eq!(swept.config().sweep_interval, Some(varwatch::MIN_SWEEP_INTERVAL));
    // No sessions allowed: a clear error.
    let none = SessionStore::with_config(StoreConfig::new().max_sessions(0));
    let err = none.create_session("s", SessionOptions::new()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ResourceExhausted);
}
