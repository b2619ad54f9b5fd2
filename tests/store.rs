//! Every store operation and every error, with the key parts of its message.

use std::time::Duration;

use varwatch::{
    BatchUpdate, Constraints, Error, SessionOptions, SessionStore, StoreConfig, UpdateOptions, Value, VarDef,
    VarType,
};

fn store() -> SessionStore {
    let s = SessionStore::new();
    s.create_session("s1", SessionOptions::new()).unwrap();
    s
}

fn temperature(store: &SessionStore) -> String {
    store
        .register(
            "s1",
            VarDef::new("temperature", VarType::Float, 20.0)
                .constraints(Constraints::new().min(-50.0).max(100.0))
                .metadata("unit", "C"),
        )
        .unwrap()
}

// ----- sessions -------------------------------------------------------------

#[test]
fn handles_are_thread_safe() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<SessionStore>();
    send_sync::<varwatch::Variable>();
    send_sync::<varwatch::VarReader>();
    send_sync::<varwatch::WatchEvent>();
    send::<varwatch::Watch>();
}

#[test]
fn session_lifecycle() {
    let store = SessionStore::new();
    let info = store
        .create_session("s1", SessionOptions::new().metadata("owner", "me"))
        .unwrap();
    assert_eq!(info.id, "s1");
    assert_eq!(info.metadata["owner"], "me");
    assert_eq!(info.revision, 0);
    assert!(store.session_exists("s1"));
    assert!(!store.session_exists("s2"));

    let err = store.create_session("s1", SessionOptions::new()).unwrap_err();
    assert!(matches!(err, Error::SessionExists { .. }));
    assert_eq!(err.to_string(), "session `s1` already exists");

    // get-or-create is idempotent and returns the existing session.
    let again = store.get_or_create_session("s1", SessionOptions::new()).unwrap();
    assert_eq!(again.metadata["owner"], "me");
    store.get_or_create_session("s2", SessionOptions::new()).unwrap();
    assert_eq!(store.list_sessions(), ["s1", "s2"]);

    store.delete_session("s1").unwrap();
    assert!(!store.session_exists("s1"));
    let err = store.session("s1").unwrap_err();
    assert_eq!(err.to_string(), "session `s1` not found");
    assert!(matches!(
        store.delete_session("s1"),
        Err(Error::SessionNotFound { .. })
    ));
    assert_eq!(store.list_sessions(), ["s2"]);
}

#[test]
fn get_or_create_races_to_one_session() {
    let store = SessionStore::new();
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                store
                    .get_or_create_session("shared", SessionOptions::new())
                    .unwrap()
            });
        }
    });
    assert_eq!(store.list_sessions(), ["shared"]);
}

#[test]
fn invalid_session_ids() {
    let store = SessionStore::new();
    for bad in ["", "a\nb", &"x".repeat(300)] {
        let err = store.create_session(bad, SessionOptions::new()).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidName { what, .. } if what == "session id"),
            "{err}"
        );
    }
    assert!(store.list_sessions().is_empty());
}

#[test]
fn session_quota() {
    let store = SessionStore::with_config(StoreConfig::new().max_sessions(2));
    store.create_session("a", SessionOptions::new()).unwrap();
    store.create_session("b", SessionOptions::new()).unwrap();
    let err = store.create_session("c", SessionOptions::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot create session `c`: the store already holds its maximum of 2 sessions"
    );
    // get-or-create of an existing one is still fine at the quota.
    store.get_or_create_session("a", SessionOptions::new()).unwrap();
    store.delete_session("a").unwrap();
    store.create_session("c", SessionOptions::new()).unwrap();
}

#[test]
fn ttl_expiry_and_touch() {
    let store = SessionStore::new();
    store
        .create_session("short", SessionOptions::new().ttl(Duration::from_millis(30)))
        .unwrap();
    store.create_session("forever", SessionOptions::new()).unwrap();
    assert_eq!(store.cleanup_expired(), 0);
    // Keep touching "short": it must not expire while it is being used.
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(10));
        store.session("short").unwrap();
    }
    assert_eq!(store.cleanup_expired(), 0);
    std::thread::sleep(Duration::from_millis(80));
    assert_eq!(store.cleanup_expired(), 1);
    assert_eq!(store.list_sessions(), ["forever"]);
}

#[test]
fn default_ttl_applies() {
    let store = SessionStore::with_config(StoreConfig::new().default_ttl(Duration::from_millis(1)));
    let info = store.create_session("a", SessionOptions::new()).unwrap();
    assert_eq!(info.ttl, Some(Duration::from_millis(1)));
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(store.cleanup_expired(), 1);
}

#[test]
fn background_sweeper_removes_expired_and_stops_with_store() {
    let store = SessionStore::with_config(StoreConfig::new().sweep_interval(Duration::from_millis(5)));
    store
        .create_session("a", SessionOptions::new().ttl(Duration::from_millis(1)))
        .unwrap();
    // Wait for the condition, not for a fixed time.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.session_exists("a") {
        assert!(
            std::time::Instant::now() < deadline,
            "sweeper never removed the session"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    // Dropping the store stops the thread: find it by name in /proc.
    drop(store);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sweeper_threads() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "sweeper thread outlived its store"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn sweeper_threads() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0; // not Linux: nothing to check
    };
    dir.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|c| c.trim() == "varwatch-sweepe" || c.trim() == "varwatch-sweeper")
        .count()
}

// ----- variables ------------------------------------------------------------

#[test]
fn register_get_update() {
    let store = store();
    let id = temperature(&store);
    assert!(id.starts_with("var_"));
    let v = store.get("s1", "temperature").unwrap();
    assert_eq!(v.id(), id);
    assert_eq!(v.name(), "temperature");
    assert_eq!(v.var_type(), VarType::Float);
    assert_eq!(v.value(), &Value::Float(20.0));
    assert_eq!(v.version(), 0);
    assert_eq!(v.metadata()["unit"], "C");
    assert_eq!(v.constraints().max, Some(100.0));
    assert_eq!(v.created_at(), v.updated_at());
    // By id, too.
    assert_eq!(store.get("s1", &id).unwrap().name(), "temperature");

    assert_eq!(store.update("s1", "temperature", 42.0).unwrap(), 1);
    assert_eq!(store.update("s1", &id, 50).unwrap(), 2); // integer coerced to float
    let v = store.get("s1", "temperature").unwrap();
    assert_eq!(v.value(), &Value::Float(50.0));
    assert_eq!(v.version(), 2);
    assert!(v.updated_at() >= v.created_at());
    assert_eq!(store.session("s1").unwrap().revision, 3);
}

#[test]
fn constraint_violation_changes_nothing() {
    let store = store();
    temperature(&store);
    let err = store.update("s1", "temperature", 150.0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "variable `temperature` in session `s1`: 150 is above maximum 100"
    );
    let err = store.update("s1", "temperature", -51).unwrap_err();
    assert!(err.to_string().contains("-51 is below minimum -50"), "{err}");
    let err = store.update("s1", "temperature", "hot").unwrap_err();
    assert!(
        err.to_string().contains("expected a float, got \"hot\" (string)"),
        "{err}"
    );
    let v = store.get("s1", "temperature").unwrap();
    assert_eq!((v.value(), v.version()), (&Value::Float(20.0), 0));
    assert_eq!(store.session("s1").unwrap().revision, 1);
}

#[test]
fn unique_names() {
    let store = store();
    temperature(&store);
    let err = store
        .register("s1", VarDef::new("temperature", VarType::Integer, 1))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "variable `temperature` already exists in session `s1`"
    );
    assert_eq!(store.get("s1", "temperature").unwrap().var_type(), VarType::Float);
}

#[test]
fn register_checks_constraints_against_type() {
    let store = store();
    let err = store
        .register(
            "s1",
            VarDef::new("name", VarType::String, "x").constraints(Constraints::new().min(1.0)),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "variable `name` in session `s1`: invalid constraints: `min` does not apply to a string variable"
    );
    let err = store
        .register(
            "s1",
            VarDef::new("n", VarType::Integer, 5).constraints(Constraints::new().min(10.0).max(1.0)),
        )
        .unwrap_err();
    assert!(err.to_string().contains("`min` 10 is above `max` 1"), "{err}");
    let err = store
        .register(
            "s1",
            VarDef::new("c", VarType::Choice, "a")
                .constraints(Constraints::new().choices(Vec::<String>::new())),
        )
        .unwrap_err();
    assert!(err.to_string().contains("`choices` must not be empty"), "{err}");
    // The initial value is checked too.
    let err = store
        .register(
            "s1",
            VarDef::new("t", VarType::Float, 1.5).constraints(Constraints::new().max(1.0)),
        )
        .unwrap_err();
    assert!(err.to_string().contains("1.5 is above maximum 1"), "{err}");
    assert!(store.list_variables("s1", None).unwrap().is_empty());
}

#[test]
fn missing_session_and_variable() {
    let store = store();
    let err = store.get("nope", "x").unwrap_err();
    assert_eq!(err.to_string(), "session `nope` not found");
    assert!(matches!(
        store.register("nope", VarDef::new("x", VarType::Integer, 1)),
        Err(Error::SessionNotFound { .. })
    ));
    assert!(matches!(
        store.update("nope", "x", 1),
        Err(Error::SessionNotFound { .. })
    ));
    assert!(matches!(
        store.list_variables("nope", None),
        Err(Error::SessionNotFound { .. })
    ));
    let err = store.get("s1", "x").unwrap_err();
    assert_eq!(err.to_string(), "variable `x` not found in session `s1`");
    assert!(matches!(
        store.update("s1", "x", 1),
        Err(Error::VariableNotFound { .. })
    ));
    assert!(matches!(
        store.delete_variable("s1", "x"),
        Err(Error::VariableNotFound { .. })
    ));
}

#[test]
fn expected_version() {
    let store = store();
    temperature(&store);
    let opts = UpdateOptions::new().expected_version(0);
    assert_eq!(store.update_with("s1", "temperature", 21.0, &opts).unwrap(), 1);
    let err = store.update_with("s1", "temperature", 22.0, &opts).unwrap_err();
    assert_eq!(
        err,
        Error::VersionConflict {
            session: "s1".into(),
            variable: "temperature".into(),
            expected: 0,
            current: 1
        }
    );
    assert!(
        err.to_string()
            .contains("expected version 0, current version is 1")
    );
    assert_eq!(
        store.get("s1", "temperature").unwrap().value(),
        &Value::Float(21.0)
    );
}

#[test]
fn same_value_is_a_no_op() {
    let store = store();
    temperature(&store);
    assert_eq!(store.update("s1", "temperature", 20.0).unwrap(), 0);
    assert_eq!(store.session("s1").unwrap().revision, 1);
    assert_eq!(store.update("s1", "temperature", 21.0).unwrap(), 1);
    assert_eq!(store.update("s1", "temperature", 21.0).unwrap(), 1);
    assert_eq!(store.stats().updates, 1);
    // NaN is identical to the same NaN: no new version either.
    store
        .register("s1", VarDef::new("f", VarType::Float, f64::NAN))
        .unwrap();
    assert_eq!(store.update("s1", "f", f64::NAN).unwrap(), 0);
}

#[test]
fn source_and_metadata_are_kept() {
    let store = store();
    temperature(&store);
    let opts = UpdateOptions::new().source("optimizer").metadata("step", "7");
    store.update_with("s1", "temperature", 30.0, &opts).unwrap();
    let v = store.get("s1", "temperature").unwrap();
    assert_eq!(v.source(), Some("optimizer"));
    assert_eq!(v.change_metadata().unwrap()["step"], "7");
}

#[test]
fn delete_variable_by_name_and_id() {
    let store = store();
    let id = temperature(&store);
    store
        .register("s1", VarDef::new("b", VarType::Boolean, true))
        .unwrap();
    store.delete_variable("s1", &id).unwrap();
    store.delete_variable("s1", "b").unwrap();
    assert!(store.list_variables("s1", None).unwrap().is_empty());
    // The name is free again; the new variable has a new id.
    let id2 = temperature(&store);
    assert_ne!(id, id2);
}

#[test]
fn list_with_anchored_glob() {
    let store = store();
    for name in ["temp_a", "temp_b", "my_temp", "other"] {
        store
            .register("s1", VarDef::new(name, VarType::Integer, 0))
            .unwrap();
    }
    let names = |p: Option<&str>| -> Vec<String> {
        store
            .list_variables("s1", p)
            .unwrap()
            .iter()
            .map(|v| v.name().to_string())
            .collect()
    };
    assert_eq!(names(None), ["temp_a", "temp_b", "my_temp", "other"]);
    assert_eq!(names(Some("temp_*")), ["temp_a", "temp_b"]);
    assert_eq!(names(Some("*temp*")), ["temp_a", "temp_b", "my_temp"]);
    assert_eq!(names(Some("temp_?")), ["temp_a", "temp_b"]);
    assert_eq!(names(Some("temp.*")), Vec::<String>::new());
}

#[test]
fn get_many_found_and_missing_in_order() {
    let store = store();
    let a = store
        .register("s1", VarDef::new("a", VarType::Integer, 1))
        .unwrap();
    store
        .register("s1", VarDef::new("b", VarType::Integer, 2))
        .unwrap();
    let r = store.get_many("s1", ["zz", "b", &a, "nonexistent"]).unwrap();
    let found: Vec<(&str, i64)> = r
        .found
        .iter()
        .map(|(k, v)| (k.as_str(), v.value().as_i64().unwrap()))
        .collect();
    assert_eq!(found, [("b", 2), (a.as_str(), 1)]);
    assert_eq!(r.missing, ["zz", "nonexistent"]);
}

#[test]
fn atomic_batch_all_or_nothing() {
    let store = store();
    temperature(&store);
    store
        .register(
            "s1",
            VarDef::new("mode", VarType::Choice, "a").constraints(Constraints::new().choices(["a", "b"])),
        )
        .unwrap();
    let err = store
        .update_atomic(
            "s1",
            [
                BatchUpdate::new("temperature", 30.0),
                BatchUpdate::new("mode", Value::choice("z")),
                BatchUpdate::new("ghost", 1),
            ],
            &UpdateOptions::new(),
        )
        .unwrap_err();
    let Error::BatchRejected { failures, .. } = &err else {
        panic!("{err}")
    };
    let idents: Vec<&str> = failures.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(idents, ["mode", "ghost"]);
    let msg = err.to_string();
    assert!(msg.contains("nothing was changed"), "{msg}");
    assert!(
        msg.contains("\"z\" is not one of the choices: \"a\", \"b\""),
        "{msg}"
    );
    assert!(msg.contains("variable `ghost` not found"), "{msg}");
    assert_eq!(store.get("s1", "temperature").unwrap().version(), 0);
    assert_eq!(store.session("s1").unwrap().revision, 2);

    let versions = store
        .update_atomic(
            "s1",
            [("temperature", Value::from(30.0)), ("mode", Value::choice("b"))],
            &UpdateOptions::new(),
        )
        .unwrap();
    assert_eq!(versions, [1, 1]);
    let listed = store.list_variables("s1", None).unwrap();
    let (rev, vars) = (listed.revision, listed.variables);
    assert_eq!(rev, 3);
    assert!(vars.iter().all(|v| v.revision() == 3));

    // Version expectations are checked as a whole too.
    let err = store
        .update_atomic(
            "s1",
            [
                BatchUpdate::new("temperature", 31.0).expected_version(0),
                BatchUpdate::new("mode", "a"),
            ],
            &UpdateOptions::new(),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("expected version 0, current version is 1"),
        "{err}"
    );
    assert_eq!(store.value("s1", "mode").unwrap(), Value::choice("b"));

    let err = store
        .update_atomic("s1", [("mode", "a"), ("mode", "b")], &UpdateOptions::new())
        .unwrap_err();
    let Error::BatchRejected { failures, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(failures.len(), 1, "{err}");
    assert_eq!(failures[0].0, "mode");
    assert!(matches!(failures[0].1, Error::DuplicateInBatch { .. }), "{err}");
}

#[test]
fn best_effort_batch_reports_per_item() {
    let store = store();
    temperature(&store);
    store
        .register("s1", VarDef::new("b", VarType::Boolean, false))
        .unwrap();
    let r = store
        .update_best_effort(
            "s1",
            [
                ("temperature", Value::from(30.0)),
                ("b", Value::from(1)),
                ("b", Value::from(true)),
                ("nope", Value::from(1)),
            ],
            &UpdateOptions::new(),
        )
        .unwrap();
    assert_eq!(r[0], Ok(1));
    assert!(
        r[1].as_ref()
            .unwrap_err()
            .to_string()
            .contains("expected a boolean, got 1 (integer)")
    );
    assert_eq!(r[2], Ok(1));
    assert!(matches!(r[3], Err(Error::VariableNotFound { .. })));
    assert_eq!(store.value("s1", "temperature").unwrap(), Value::Float(30.0));
    // Each accepted item is its own write.
    assert_eq!(store.session("s1").unwrap().revision, 4);
}

#[test]
fn export_import_round_trip_and_validation() {
    let store = store();
    temperature(&store);
    store
        .register("s1", VarDef::new("e", VarType::Embedding, vec![0.5f32; 8]))
        .unwrap();
    store.update("s1", "temperature", 33.0).unwrap();
    let defs = store.export("s1").unwrap();
    assert_eq!(defs.len(), 2);
    store.create_session("s2", SessionOptions::new()).unwrap();
    let ids = store.import("s2", defs.clone()).unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(store.value("s2", "temperature").unwrap(), Value::Float(33.0));
    assert_eq!(
        store.get("s2", "temperature").unwrap().constraints().max,
        Some(100.0)
    );
    assert_eq!(
        store
            .get("s2", "e")
            .unwrap()
            .value()
            .as_embedding()
            .unwrap()
            .len(),
        8
    );

    // Import validates, and is all-or-nothing.
    let mut bad = defs;
    bad[0].name = "fresh".into();
    bad[1].value = Value::Integer(3);
    bad[1].name = "e2".into();
    store.create_session("s3", SessionOptions::new()).unwrap();
    let err = store.import("s3", bad).unwrap_err();
    assert!(err.to_string().contains("expected an embedding"), "{err}");
    assert!(store.list_variables("s3", None).unwrap().is_empty());
}

#[test]
fn all_eight_types() {
    let store = store();
    let t = varwatch::Tensor::new(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    let defs = [
        VarDef::new("f", VarType::Float, 0.5),
        VarDef::new("i", VarType::Integer, 3),
        VarDef::new("s", VarType::String, "hi").constraints(Constraints::new().min_length(1).max_length(4)),
        VarDef::new("b", VarType::Boolean, true),
        VarDef::new("c", VarType::Choice, "x").constraints(Constraints::new().choices(["x", "y"])),
        VarDef::new("m", VarType::Module, "Predict")
            .constraints(Constraints::new().allowed_modules(["Predict", "ChainOfThought"])),
        VarDef::new("e", VarType::Embedding, vec![0.0f32; 3]).constraints(Constraints::new().dimensions(3)),
        VarDef::new("t", VarType::Tensor, t).constraints(Constraints::new().shape(vec![2, 2])),
    ];
    for d in defs {
        store.register("s1", d).unwrap();
    }
    let msg = |name: &str, v: Value| store.update("s1", name, v).unwrap_err().to_string();
    assert!(msg("s", "hello".into()).contains("5 characters, more than the maximum length 4"));
    assert!(msg("s", "".into()).contains("0 characters, fewer than the minimum length 1"));
    assert!(msg("c", "z".into()).contains("is not one of the choices"));
    assert!(msg("m", Value::module("Other")).contains("is not one of the allowed modules"));
    assert!(msg("e", vec![0.0f32; 4].into()).contains("does not have exactly 3 dimensions"));
    let t23 = Value::tensor(vec![2, 3], vec![0.0; 6]).unwrap();
    assert!(msg("t", t23).contains("does not have the required shape [2, 2]"));
    assert!(msg("i", 2.5.into()).contains("not a whole number"));
    assert_eq!(store.update("s1", "i", 4.0).unwrap(), 1);
    assert_eq!(
        store.update("s1", "m", Value::module("ChainOfThought")).unwrap(),
        1
    );
    assert_eq!(store.update("s1", "c", "y").unwrap(), 1);
    assert_eq!(store.value("s1", "c").unwrap(), Value::choice("y"));
}

#[test]
fn reader_is_lock_free_view_of_current_state() {
    let store = store();
    temperature(&store);
    let r = store.reader("s1", "temperature").unwrap();
    assert_eq!(r.version(), 0);
    store.update("s1", "temperature", 1.0).unwrap();
    assert_eq!(r.load().value(), &Value::Float(1.0));
    assert_eq!(r.with_value(|v| v.as_f64()), Some(1.0));
    assert!(!r.is_deleted());
    store.delete_variable("s1", "temperature").unwrap();
    assert!(r.is_deleted());
}

#[test]
fn store_stats() {
    let store = store();
    temperature(&store);
    store.update("s1", "temperature", 1.0).unwrap();
    let _w = store.watch("s1", ["temperature"], Default::default()).unwrap();
    let s = store.stats();
    assert_eq!((s.sessions, s.variables, s.watchers, s.updates), (1, 1, 1, 1));
}

#[test]
fn large_values_are_shared_not_copied() {
    let store = store();
    let data: std::sync::Arc<[f32]> = vec![1.0f32; 4096].into();
    store
        .register(
            "s1",
            VarDef::new("e", VarType::Embedding, Value::Embedding(data.clone())),
        )
        .unwrap();
    let got = store.value("s1", "e").unwrap();
    assert!(std::ptr::eq(got.as_embedding().unwrap(), &*data));
}
