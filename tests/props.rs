//! Property tests: the validation and coercion rules, and a model-based test
//! of random operation sequences against a simple reference model (a
//! `BTreeMap` and a log), including a watch that must see the model's log.

use std::collections::BTreeMap;

use proptest::prelude::*;
use varwatch::{
    BatchUpdate, Constraints, Error, EventKind, SessionOptions, SessionStore, Tensor, UpdateOptions, Value,
    VarDef, VarType, WatchOptions,
};

fn session() -> SessionStore {
    let s = SessionStore::new();
    s.create_session("s", SessionOptions::new()).unwrap();
    s
}

/// Registers `def`, then tries `value`: returns whether it was accepted,
/// checking that a rejection changed nothing.
fn try_value(def: VarDef, value: Value) -> Result<Value, Error> {
    let store = session();
    store.register("s", def).unwrap();
    let before = store.get("s", "v").unwrap();
    match store.update("s", "v", value) {
        Ok(_) => Ok(store.value("s", "v").unwrap()),
        Err(e) => {
            let after = store.get("s", "v").unwrap();
            assert_eq!(after.version(), before.version());
            assert!(after.value().is_identical(before.value()));
            assert_eq!(store.session("s").unwrap().revision, 1);
            Err(e)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn float_bounds_are_inclusive_and_nan_never_passes(
        lo in -1e6f64..1e6, span in 0f64..1e6, x in prop_oneof![
            -2e6f64..2e6,
            Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY),
        ],
    ) {
        let hi = lo + span;
        let def = VarDef::new("v", VarType::Float, lo).constraints(Constraints::new().min(lo).max(hi));
        let got = try_value(def, Value::Float(x));
        let inside = x >= lo && x <= hi; // false for NaN
        prop_assert_eq!(got.is_ok(), inside, "{} in [{}, {}]: {:?}", x, lo, hi, got);
        if let Err(e) = got {
            let msg = e.to_string();
            prop_assert!(msg.contains("variable `v` in session `s`"));
            prop_assert!(msg.contains("minimum") || msg.contains("maximum"), "{}", msg);
        }
    }

    #[test]
    fn unconstrained_floats_take_special_values(x in prop_oneof![any::<f64>(), Just(f64::NAN)]) {
        let got = try_value(VarDef::new("v", VarType::Float, 0.0), Value::Float(x)).unwrap();
        prop_assert!(got.is_identical(&Value::Float(x)) || x == 0.0);
    }

    #[test]
    fn integer_bounds_are_exact(lo in any::<i32>(), span in 0u32..u32::MAX, v in any::<i64>()) {
        let hi = lo as i64 + span as i64;
        let def = VarDef::new("v", VarType::Integer, lo as i64)
            .constraints(Constraints::new().min(lo as f64).max(hi as f64));
        let got = try_value(def, Value::Integer(v));
        prop_assert_eq!(got.is_ok(), (lo as i64..=hi).contains(&v));
    }

    #[test]
    fn floats_for_integers_must_be_whole(x in prop_oneof![-1e20f64..1e20, (-1000i64..1000).prop_map(|i| i as f64)]) {
        let got = try_value(VarDef::new("v", VarType::Integer, 0), Value::Float(x));
                // i64's range is [-2^63, 2^63): exactly representable bounds.
        let whole = x.fract() == 0.0 && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&x);
        prop_assert_eq!(got.is_ok(), whole, "{}", x);
        if let Ok(v) = got {
            prop_assert_eq!(v, Value::Integer(x as i64));
        }
    }

    #[test]
    fn integers_for_floats_become_floats(i in any::<i32>()) {
        let got = try_value(VarDef::new("v", VarType::Float, 0.5), Value::Integer(i as i64)).unwrap();
        prop_assert_eq!(got, Value::Float(i as f64));
    }

    #[test]
    fn string_lengths_count_chars(s in "\\PC{0,12}", lo in 0usize..6, span in 0usize..6) {
        let hi = lo + span;
        let def = VarDef::new("v", VarType::String, "x".repeat(lo))
            .constraints(Constraints::new().min_length(lo).max_length(hi));
        let n = s.chars().count();
        let got = try_value(def, Value::from(s.as_str()));
        prop_assert_eq!(got.is_ok(), (lo..=hi).contains(&n));
    }

    #[test]
    fn choices_are_enforced(pick in 0usize..6) {
        let options = ["red", "green", "blue", "cyan", "magenta", "yellow"];
        let def = VarDef::new("v", VarType::Choice, "red").constraints(Constraints::new().choices(options[..3].iter().copied()));
        let got = try_value(def, Value::choice(options[pick]));
        prop_assert_eq!(got.is_ok(), pick < 3);
        if let Err(e) = got {
            prop_assert!(e.to_string().contains("is not one of the choices: \"red\", \"green\", \"blue\""));
        }
    }

    #[test]
    fn embedding_dimensions(n in 0usize..10) {
        let def = VarDef::new("v", VarType::Embedding, vec![0f32; 4]).constraints(Constraints::new().dimensions(4));
        prop_assert_eq!(try_value(def, Value::from(vec![1f32; n])).is_ok(), n == 4);
    }

    #[test]
    fn tensor_data_must_match_shape(shape in prop::collection::vec(0usize..5, 0..4), extra in -2i64..3) {
        let product: usize = shape.iter().product();
        let len = (product as i64 + extra).max(0) as usize;
        let t = Tensor::new(shape.clone(), vec![0f32; len]);
        prop_assert_eq!(t.is_ok(), len == product);
    }

    #[test]
    fn type_mismatches_are_rejected(ty in prop::sample::select(VarType::ALL.to_vec()), v in prop_oneof![
        Just(Value::Float(1.5)), Just(Value::Integer(2)), Just(Value::from("s")), Just(Value::Boolean(true)),
        Just(Value::from(vec![1f32])), Just(Value::Tensor(Tensor::new(vec![1], vec![1.0]).unwrap())),
    ]) {
        let init = match ty {
            VarType::Float => Value::Float(0.0),
            VarType::Integer => Value::Integer(0),
            VarType::String => Value::from("a"),
            VarType::Boolean => Value::Boolean(false),
            VarType::Choice => Value::choice("a"),
            VarType::Module => Value::module("a"),
            VarType::Embedding => Value::from(vec![0f32]),
            VarType::Tensor => Value::Tensor(Tensor::new(vec![1], vec![0.0]).unwrap()),
            other => panic!("a type this test does not know yet: {other}"),
        };
        let compatible = matches!(
            (ty, v.var_type()),
            (VarType::Float, VarType::Float | VarType::Integer)
                | (VarType::Integer, VarType::Integer)
                | (VarType::String | VarType::Choice | VarType::Module, VarType::String)
                | (VarType::Boolean, VarType::Boolean)
                | (VarType::Embedding, VarType::Embedding)
                | (VarType::Tensor, VarType::Tensor)
        );
        let mut def = VarDef::new("v", ty, init);
        if ty == VarType::Choice {
            // A choice needs its choices: every string this test writes.
            def = def.constraints(varwatch::Constraints::new().choices(["a", "s"]));
        }
        let got = try_value(def, v.clone());
        prop_assert_eq!(got.is_ok(), compatible, "{:?} into {}", v, ty);
        if let Err(e) = got {
            let article = if matches!(ty, VarType::Integer | VarType::Embedding) { "an" } else { "a" };
            let want = format!("expected {article} {ty}");
            prop_assert!(e.to_string().contains(&want), "{} lacks {}", e, want);
        }
    }
}

// ----- model-based ----------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Register(usize, i64),
    Update(usize, i64),
    UpdateExpected(usize, i64, u64),
    Delete(usize),
    Batch(Vec<(usize, i64)>),
}

fn op() -> impl Strategy<Value = Op> {
    let n = 0usize..4;
    let v = 0i64..4; // small: same-value no-ops happen often
    prop_oneof![
        2 => (n.clone(), v.clone()).prop_map(|(n, v)| Op::Register(n, v)),
        5 => (n.clone(), v.clone()).prop_map(|(n, v)| Op::Update(n, v)),
        2 => (n.clone(), v.clone(), 0u64..4).prop_map(|(n, v, e)| Op::UpdateExpected(n, v, e)),
        1 => n.clone().prop_map(Op::Delete),
        2 => prop::collection::btree_map(n, v, 1..4).prop_map(|m| Op::Batch(m.into_iter().collect())),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct Logged {
    name: String,
    kind: EventKind,
    version: u64,
    value: Option<i64>,
}

#[derive(Default)]
struct Model {
    vars: BTreeMap<String, (u64, i64)>,
    log: Vec<Logged>,
    revision: u64,
}

impl Model {
    fn changed(&mut self, name: &str, v: i64) -> u64 {
        let e = self.vars.get_mut(name).unwrap();
        e.0 += 1;
        e.1 = v;
        let version = e.0;
        self.log.push(Logged {
            name: name.into(),
            kind: EventKind::Changed,
            version,
            value: Some(v),
        });
        version
    }
}

fn vname(n: usize) -> String {
    format!("var{n}")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn store_follows_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let store = session();
        let mut model = Model::default();
        let mut watch = store.watch_session("s", WatchOptions::new().capacity(1 << 12)).unwrap();
        for op in &ops {
            match op {
                Op::Register(n, v) => {
                    let got = store.register("s", VarDef::new(vname(*n), VarType::Integer, *v));
                    if let std::collections::btree_map::Entry::Vacant(slot) = model.vars.entry(vname(*n)) {
                        prop_assert!(got.is_ok());
                        slot.insert((0, *v));
                        model.revision += 1;
                        model.log.push(Logged { name: vname(*n), kind: EventKind::Initial, version: 0, value: Some(*v) });
                    } else {
                        prop_assert!(matches!(got, Err(Error::VariableExists { .. })), "{:?}", got);
                    }
                }
                Op::Update(n, v) | Op::UpdateExpected(n, v, _) => {
                    let expected = match op { Op::UpdateExpected(_, _, e) => Some(*e), _ => None };
                    let mut opts = UpdateOptions::new();
                    opts.expected_version = expected;
                    let got = store.update_with("s", &vname(*n), *v, &opts);
                    match model.vars.get(&vname(*n)).copied() {
                        None => prop_assert!(matches!(got, Err(Error::VariableNotFound { .. })), "{:?}", got),
                        Some((ver, _)) if expected.is_some_and(|e| e != ver) => {
                            prop_assert_eq!(got, Err(Error::VersionConflict {
                                session: "s".into(), variable: vname(*n), expected: expected.unwrap(), current: ver,
                            }));
                        }
                        Some((ver, cur)) if cur == *v => prop_assert_eq!(got, Ok(ver)),
                        Some(_) => {
                            model.revision += 1;
                            let ver = model.changed(&vname(*n), *v);
                            prop_assert_eq!(got, Ok(ver));
                        }
                    }
                }
                Op::Delete(n) => {
                    let got = store.delete_variable("s", &vname(*n));
                    match model.vars.remove(&vname(*n)) {
                        None => prop_assert!(matches!(got, Err(Error::VariableNotFound { .. })), "{:?}", got),
                        Some((ver, _)) => {
                            prop_assert!(got.is_ok());
                            model.revision += 1;
                            model.log.push(Logged { name: vname(*n), kind: EventKind::Deleted, version: ver + 1, value: None });
                        }
                    }
                }
                Op::Batch(items) => {
                    let updates: Vec<BatchUpdate> = items.iter().map(|(n, v)| BatchUpdate::new(vname(*n), *v)).collect();
                    let got = store.update_atomic("s", updates, &UpdateOptions::new());
                    let missing: Vec<String> = items.iter().map(|(n, _)| vname(*n)).filter(|n| !model.vars.contains_key(n)).collect();
                    if missing.is_empty() {
                        let mut expect = Vec::new();
                        let mut any = false;
                        for (n, v) in items {
                            let (ver, cur) = model.vars[&vname(*n)];
                            if cur == *v {
                                expect.push(ver);
                            } else {
                                any = true;
                                expect.push(model.changed(&vname(*n), *v));
                            }
                        }
                        if any {
                            model.revision += 1;
                        }
                        prop_assert_eq!(got, Ok(expect));
                    } else {
                        let Err(Error::BatchRejected { failures, .. }) = got else {
                            return Err(TestCaseError::fail(format!("expected rejection, got {got:?}")));
                        };
                        let failed: Vec<String> = failures.into_iter().map(|(i, _)| i).collect();
                        prop_assert_eq!(failed, missing);
                    }
                }
            }
            prop_assert_eq!(store.session("s").unwrap().revision, model.revision);
        }
        // The store's state is the model's.
        let state: BTreeMap<String, (u64, i64)> = store
            .list_variables("s", None)
            .unwrap()
            .iter()
            .map(|v| (v.name().to_string(), (v.version(), v.value().as_i64().unwrap())))
            .collect();
        prop_assert_eq!(&state, &model.vars);
        // The watch saw exactly the model's log.
        let seen: Vec<Logged> = watch
            .try_iter()
            .map(|e| Logged {
                name: e.variable_name().to_string(),
                kind: e.kind(),
                version: e.version(),
                value: e.value().and_then(Value::as_i64),
            })
            .collect();
        prop_assert_eq!(seen, model.log);
    }
}

// ----- every parameter at its extremes -----------------------------------------
//
// Each size, count and duration a caller passes, at 0, 1, MAX, empty, huge
// and in between: the call either works or fails with a clear error of the
// right kind whose message stays short; nothing panics, hangs or allocates
// what it was not asked to hold.

fn duration() -> impl Strategy<Value = std::time::Duration> {
    use std::time::Duration;
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_nanos(1)),
        Just(Duration::MAX),
        (0u64..5_000_000).prop_map(Duration::from_micros),
    ]
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        Just(1),
        Just(2),
        Just(usize::MAX),
        Just(usize::MAX / 2),
        0usize..5000
    ]
}

/// Identifiers: empty, of the id form, with control characters, huge, and
/// ordinary.
fn ident() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "var_[0-9]{1,25}",
        "[a-z]{1,8}\u{0}[a-z]{0,3}",
        (1usize..40_000).prop_map(|n| "ü".repeat(n)),
        "\\PC{1,40}",
    ]
}

fn short(e: &Error) -> bool {
    e.to_string().len() < 4096
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn store_configs_at_their_extremes(
        max_sessions in prop_oneof![Just(None), Just(Some(0usize)), Just(Some(usize::MAX)), (1usize..4).prop_map(Some)],
        max_log in size(),
        ttl in prop::option::of(duration()),
        sweep in prop::option::of(duration()),
    ) {
        let mut config = varwatch::StoreConfig::new();
        config.max_sessions = max_sessions;
        config.max_event_log = max_log;
        config.default_ttl = ttl;
        config.sweep_interval = sweep;
        let store = SessionStore::with_config(config);
        prop_assert!((1..=1 << 30).contains(&store.config().max_event_log));
        prop_assert!(store.config().sweep_interval.is_none_or(|d| d >= varwatch::MIN_SWEEP_INTERVAL));
        for i in 0..3 {
            match store.create_session(&format!("s{i}"), SessionOptions::new()) {
                Ok(_) => {
                    store.register(&format!("s{i}"), VarDef::new("x", VarType::Integer, 0)).unwrap();
                    let mut w = store.watch(&format!("s{i}"), ["x"], WatchOptions::new().capacity(usize::MAX)).unwrap();
                    store.update(&format!("s{i}"), "x", 1).unwrap();
                    prop_assert!(w.try_iter().count() <= 2);
                }
                Err(e) => {
                    prop_assert_eq!(e.code(), varwatch::ErrorCode::ResourceExhausted);
                    prop_assert!(short(&e));
                }
            }
        }
        store.cleanup_expired();
        drop(store); // a sweeper thread stops with it, whatever its interval
    }

    #[test]
    fn watch_options_at_their_extremes(
        capacity in size(),
        throttle in prop::option::of(duration()),
        coalesce in any::<bool>(),
        initial in any::<bool>(),
        close in any::<bool>(),
        writes in 0i64..50,
    ) {
        let store = session();
        store.register("s", VarDef::new("x", VarType::Integer, 0)).unwrap();
        let mut opts = WatchOptions::new().capacity(capacity).include_initial(initial);
        if coalesce { opts = opts.coalesce(); }
        if close { opts = opts.on_overflow(varwatch::OverflowPolicy::Close); }
        if let Some(t) = throttle { opts = opts.throttle(t); }
        match store.watch("s", ["x"], opts) {
            Ok(mut w) => {
                prop_assert!(capacity > 0 && throttle != Some(std::time::Duration::ZERO));
                for i in 1..=writes {
                    store.update("s", "x", i).unwrap();
                }
                // Whatever the settings, a receive never blocks here and the
                // versions it hands out only go up.
                let mut last = None;
                for e in w.try_iter() {
                    if let Some(l) = last { prop_assert!(e.version() > l); }
                    last = Some(e.version());
                }
                let _ = w.recv_timeout(std::time::Duration::from_millis(1));
            }
            Err(e) => {
                prop_assert!(capacity == 0 || throttle == Some(std::time::Duration::ZERO));
                prop_assert_eq!(e.code(), varwatch::ErrorCode::InvalidArgument);
            }
        }
        prop_assert_eq!(store.list_watchers("s").unwrap().len(), 0);
    }

    #[test]
    fn identifiers_at_their_extremes(session_id in ident(), name in ident()) {
        let store = SessionStore::new();
        let created = store.create_session(&session_id, SessionOptions::new());
        if let Err(e) = &created {
            prop_assert_eq!(e.code(), varwatch::ErrorCode::InvalidArgument, "{}", e);
            prop_assert!(short(e));
            return Ok(());
        }
        match store.register(&session_id, VarDef::new(name.as_str(), VarType::Integer, 0)) {
            Ok(id) => {
                prop_assert!(!name.starts_with("var_") || !name[4..].bytes().all(|b| b.is_ascii_digit()));
                let by_name = store.get(&session_id, &name).unwrap();
                prop_assert_eq!(by_name.id(), id.as_str());
                let by_id = store.get(&session_id, &id).unwrap();
                prop_assert_eq!(by_id.name(), name.as_str());
            }
            Err(e) => {
                prop_assert_eq!(e.code(), varwatch::ErrorCode::InvalidArgument, "{}", e);
                prop_assert!(short(&e));
                let e = store.get(&session_id, &name).unwrap_err();
                prop_assert_eq!(e.code(), varwatch::ErrorCode::NotFound);
                prop_assert!(short(&e));
                let e = store.watch(&session_id, [&name], WatchOptions::new()).unwrap_err();
                prop_assert!(short(&e));
            }
        }
        let e = store.session(&format!("{session_id}{name}!")).unwrap_err();
        prop_assert!(short(&e));
    }

    #[test]
    fn patterns_at_their_extremes(pattern in prop_oneof![
        Just(String::new()), "[*?]{0,300}", "[a*?]{0,64}", (0usize..2000).prop_map(|n| "*a".repeat(n)), "\\PC{0,40}",
    ]) {
        let store = session();
        for n in ["a", "aa", "ab", "ba", "ü", "temp_1"] {
            store.register("s", VarDef::new(n, VarType::Integer, 0)).unwrap();
        }
        match store.list_variables("s", Some(&pattern)) {
            Ok(vars) => prop_assert!(pattern.len() <= varwatch::MAX_PATTERN_BYTES && vars.len() <= 6),
            Err(e) => {
                prop_assert!(pattern.len() > varwatch::MAX_PATTERN_BYTES);
                let invalid_pattern = matches!(e, Error::InvalidPattern { .. });
                prop_assert!(invalid_pattern, "{}", e);
                prop_assert!(short(&e));
            }
        }
    }

    #[test]
    fn metadata_and_values_at_their_extremes(
        entries in 0usize..300,
        key_len in prop_oneof![Just(0usize), Just(1), 0usize..5000],
        text_len in prop_oneof![Just(0usize), Just(1 << 20), 0usize..5000],
        dims in prop::collection::vec(prop_oneof![Just(0usize), Just(1), Just(usize::MAX), 0usize..4], 0..6),
    ) {
        let store = SessionStore::new();
        let mut opts = SessionOptions::new();
        for i in 0..entries {
            opts = opts.metadata(format!("{}{i}", "k".repeat(key_len)), "v");
        }
        store.create_session("s", opts).unwrap();
        prop_assert_eq!(store.session("s").unwrap().metadata.len(), entries);
        let text = "t".repeat(text_len);
        store.register("s", VarDef::new("text", VarType::String, text.as_str())).unwrap();
        let mut u = UpdateOptions::new();
        for i in 0..entries {
            u = u.metadata(format!("{i}"), "x".repeat(key_len));
        }
        store.update_with("s", "text", format!("{text}!"), &u).unwrap();
        match Tensor::new(dims.clone(), vec![0.0; 3]) {
            Ok(t) => prop_assert_eq!(t.data().len(), 3),
            Err(e) => prop_assert!(short(&e)),
        }
    }
}
