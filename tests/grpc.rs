//! The gRPC service on loopback, driven by the generated client: every
//! operation, the status codes, all eight types, and bad input.
#![cfg(all(feature = "grpc", not(loom)))]

use std::collections::HashMap;

use tonic::Code;
use tonic::transport::Channel;
use varwatch::SessionStore;
use varwatch::transport::grpc::GrpcService;
use varwatch::transport::grpc::proto::value::Kind;
use varwatch::transport::grpc::proto::var_watch_client::VarWatchClient;
use varwatch::transport::grpc::proto::{self, VarType};

struct Server {
    client: VarWatchClient<Channel>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    store: SessionStore,
}

async fn start(service: impl FnOnce(SessionStore) -> GrpcService) -> Server {
    let store = SessionStore::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let svc = service(store.clone());
    tokio::spawn(async move {
        svc.serve(listener, async {
            let _ = stopped.await;
        })
        .await
        .unwrap()
    });
    let client = VarWatchClient::connect(format!("http://{addr}")).await.unwrap();
    Server {
        client,
        stop: Some(stop),
        store,
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn v(kind: Kind) -> Option<proto::Value> {
    Some(proto::Value { kind: Some(kind) })
}

fn session(name: &str) -> proto::CreateSessionRequest {
    proto::CreateSessionRequest {
        session: name.into(),
        ttl_ms: None,
        metadata: HashMap::new(),
    }
}

fn register(session: &str, name: &str, ty: VarType, value: Kind) -> proto::RegisterVariableRequest {
    proto::RegisterVariableRequest {
        session: session.into(),
        name: name.into(),
        r#type: ty as i32,
        value: v(value),
        constraints: None,
        metadata: HashMap::new(),
    }
}

fn update(session: &str, var: &str, value: Kind) -> proto::UpdateVariableRequest {
    proto::UpdateVariableRequest {
        session: session.into(),
        variable: var.into(),
        value: v(value),
        expected_version: None,
        source: None,
        metadata: HashMap::new(),
    }
}

#[tokio::test]
async fn sessions_and_variables_over_the_wire() {
    let mut s = start(GrpcService::new).await;
    let c = &mut s.client;
    let info = c.create_session(session("s1")).await.unwrap().into_inner();
    assert_eq!((info.session.as_str(), info.revision), ("s1", 0));
    let err = c.create_session(session("s1")).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(err.message(), "session `s1` already exists");
    c.get_or_create_session(session("s1")).await.unwrap();

    let mut req = register("s1", "temperature", VarType::Float, Kind::FloatValue(20.0));
    req.constraints = Some(proto::Constraints {
        min: Some(0.0),
        max: Some(100.0),
        ..Default::default()
    });
    let id = c.register_variable(req).await.unwrap().into_inner().id;
    assert!(id.starts_with("var_"));

    // Constraint violation: INVALID_ARGUMENT with the validation message.
    let err = c
        .update_variable(update("s1", "temperature", Kind::FloatValue(150.0)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "variable `temperature` in session `s1`: 150 is above maximum 100"
    );
    let version = c
        .update_variable(update("s1", &id, Kind::FloatValue(42.0)))
        .await
        .unwrap()
        .into_inner()
        .version;
    assert_eq!(version, 1);

    // Version conflict: FAILED_PRECONDITION naming the current version.
    let mut stale = update("s1", "temperature", Kind::FloatValue(43.0));
    stale.expected_version = Some(0);
    let err = c.update_variable(stale).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("current version is 1"),
        "{}",
        err.message()
    );

    let var = c
        .get_variable(proto::VariableRequest {
            session: "s1".into(),
            variable: "temperature".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((var.version, var.r#type), (1, VarType::Float as i32));
    assert_eq!(var.value.unwrap().kind, Some(Kind::FloatValue(42.0)));
    assert_eq!(var.constraints.unwrap().max, Some(100.0));

    // Not found: session and variable.
    let err = c
        .get_variable(proto::VariableRequest {
            session: "nope".into(),
            variable: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::NotFound, "session `nope` not found")
    );
    let err = c
        .delete_variable(proto::VariableRequest {
            session: "s1".into(),
            variable: "ghost".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Multi-get: found and missing in request order.
    let got = c
        .get_variables(proto::GetVariablesRequest {
            session: "s1".into(),
            variables: vec!["ghost".into(), "temperature".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.missing, ["ghost"]);
    assert_eq!(got.found[0].identifier, "temperature");

    let names: Vec<String> = c
        .list_variables(proto::ListVariablesRequest {
            session: "s1".into(),
            pattern: "temp*".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .variables
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(names, ["temperature"]);

    c.delete_session(proto::SessionRequest { session: "s1".into() })
        .await
        .unwrap();
    let sessions = c
        .list_sessions(proto::Empty {})
        .await
        .unwrap()
        .into_inner()
        .sessions;
    assert!(sessions.is_empty());
}

#[tokio::test]
async fn all_eight_types_round_trip() {
    let mut s = start(GrpcService::new).await;
    let c = &mut s.client;
    c.create_session(session("t")).await.unwrap();
    let embedding: Vec<f32> = (0..4096).map(|i| i as f32 * 0.5).collect();
    let cases = [
        ("f", VarType::Float, Kind::FloatValue(-0.0)),
        ("i", VarType::Integer, Kind::IntegerValue(i64::MIN)),
        ("s", VarType::String, Kind::StringValue("Hello, 世界".into())),
        ("b", VarType::Boolean, Kind::BooleanValue(true)),
        ("c", VarType::Choice, Kind::ChoiceValue("a".into())),
        ("m", VarType::Module, Kind::ModuleValue("Predict".into())),
        (
            "e",
            VarType::Embedding,
            Kind::EmbeddingValue(proto::FloatVector { values: embedding }),
        ),
        (
            "t",
            VarType::Tensor,
            Kind::TensorValue(proto::Tensor {
                shape: vec![2, 3],
                data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            }),
        ),
    ];
    for (name, ty, value) in cases.clone() {
        let mut r = register("t", name, ty, value);
        if ty == VarType::Choice {
            // A choice needs its choices.
            r.constraints = Some(proto::Constraints {
                choices: vec!["a".into(), "b".into()],
                has_choices: true,
                ..Default::default()
            });
        }
        c.register_variable(r).await.unwrap();
    }
    for (name, ty, value) in cases {
        let var = c
            .get_variable(proto::VariableRequest {
                session: "t".into(),
                variable: name.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(var.r#type, ty as i32, "{name}");
        assert_eq!(var.value.unwrap().kind, Some(value), "{name}");
    }
    // And the store holds the real types.
    let e = s.store.get("t", "e").unwrap();
    assert_eq!(e.value().as_embedding().unwrap().len(), 4096);
}

#[tokio::test]
async fn batches_and_isolated_sessions() {
    let mut s = start(GrpcService::new).await;
    let c = &mut s.client;
    for name in ["a", "b"] {
        c.create_session(session(name)).await.unwrap();
        c.register_variable(register(name, "x", VarType::Integer, Kind::IntegerValue(0)))
            .await
            .unwrap();
    }
    c.update_variable(update("a", "x", Kind::IntegerValue(5)))
        .await
        .unwrap();
    let b = s.store.value("b", "x").unwrap();
    assert_eq!(b.as_i64(), Some(0), "sessions must stay isolated");

    let item = |var: &str, value: Kind| proto::BatchItem {
        variable: var.into(),
        value: v(value),
        expected_version: None,
    };
    // Atomic: one bad item rejects all, with the first failure's code.
    let err = c
        .update_variables(proto::UpdateVariablesRequest {
            session: "a".into(),
            items: vec![
                item("x", Kind::IntegerValue(6)),
                item("ghost", Kind::IntegerValue(1)),
            ],
            atomic: true,
            source: None,
            metadata: HashMap::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("nothing was changed"), "{}", err.message());
    assert_eq!(s.store.value("a", "x").unwrap().as_i64(), Some(5));
    // Best effort: per-item results.
    let res = c
        .update_variables(proto::UpdateVariablesRequest {
            session: "a".into(),
            items: vec![
                item("x", Kind::IntegerValue(6)),
                item("ghost", Kind::IntegerValue(1)),
            ],
            atomic: false,
            source: Some("py".into()),
            metadata: HashMap::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(res[0].result, Some(proto::item_result::Result::Version(2)));
    assert!(matches!(&res[1].result, Some(proto::item_result::Result::Error(e)) if e.contains("not found")));
    assert_eq!(s.store.get("a", "x").unwrap().source(), Some("py"));
}

#[tokio::test]
async fn malformed_and_oversized_input_is_rejected_and_changes_nothing() {
    let mut s = start(|store| GrpcService::new(store).max_value_bytes(1024).max_batch_items(2)).await;
    let c = &mut s.client;
    c.create_session(session("s")).await.unwrap();
    // Unknown type, missing value, bad tensor, empty name, oversized value.
    let mut bad_type = register("s", "x", VarType::Float, Kind::FloatValue(1.0));
    bad_type.r#type = 42;
    let mut no_value = register("s", "x", VarType::Float, Kind::FloatValue(1.0));
    no_value.value = None;
    let bad_tensor = register(
        "s",
        "x",
        VarType::Tensor,
        Kind::TensorValue(proto::Tensor {
            shape: vec![u64::MAX, 2],
            data: vec![0.0; 3],
        }),
    );
    let empty_name = register("s", "", VarType::Float, Kind::FloatValue(1.0));
    let too_big = register(
        "s",
        "x",
        VarType::Embedding,
        Kind::EmbeddingValue(proto::FloatVector {
            values: vec![0.0; 1000],
        }),
    );
    for req in [bad_type, no_value, bad_tensor, empty_name] {
        let err = c.register_variable(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    }
    // Over a limit: RESOURCE_EXHAUSTED.
    let err = c.register_variable(too_big).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());
    assert!(s.store.list_variables("s", None).unwrap().is_empty());
    // Too many items: RESOURCE_EXHAUSTED.
    let err = c
        .get_variables(proto::GetVariablesRequest {
            session: "s".into(),
            variables: vec!["a".into(), "b".into(), "c".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    // Wrong value type for the variable: INVALID_ARGUMENT, value unchanged.
    c.register_variable(register("s", "n", VarType::Integer, Kind::IntegerValue(1)))
        .await
        .unwrap();
    let err = c
        .update_variable(update("s", "n", Kind::StringValue("one".into())))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("expected an integer"), "{}", err.message());
    assert_eq!(s.store.get("s", "n").unwrap().version(), 0);
}

// ----- remote watches ---------------------------------------------------------

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use proto::watch_request::Kind as Req;
use proto::{EventKind, WatchRequest, WatchResponse};
use varwatch::{VarDef, VarType as LocalType};

/// The client's half of a watch stream: messages pushed through a channel.
struct Outbound(tokio::sync::mpsc::UnboundedReceiver<WatchRequest>);
impl futures_core::Stream for Outbound {
    type Item = WatchRequest;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchRequest>> {
        self.0.poll_recv(cx)
    }
}

/// One watch stream on the wire, with its updates sorted by watch id.
struct Wire {
    send: tokio::sync::mpsc::UnboundedSender<WatchRequest>,
    recv: tonic::Streaming<WatchResponse>,
    updates: HashMap<u64, std::collections::VecDeque<proto::WatchUpdate>>,
    /// Heartbeat sequences received, in order.
    heartbeats: Vec<u64>,
    /// Messages that carried events.
    messages: usize,
}

impl Wire {
    async fn open(c: &mut VarWatchClient<Channel>) -> Wire {
        let (send, rx) = tokio::sync::mpsc::unbounded_channel();
        let recv = c.watch(Outbound(rx)).await.unwrap().into_inner();
        Wire {
            send,
            recv,
            updates: HashMap::new(),
            heartbeats: Vec::new(),
            messages: 0,
        }
    }

    fn request(&self, kind: Req) {
        self.send.send(WatchRequest { kind: Some(kind) }).unwrap();
    }

    fn create(&self, id: u64, mut c: proto::WatchCreate) {
        c.watch_id = id;
        self.request(Req::Create(c));
    }

    /// Reads one message from the stream.
    async fn read(&mut self) -> Result<(), tonic::Status> {
        let msg = tokio::time::timeout(Duration::from_secs(20), self.recv.message())
            .await
            .expect("a message within 20 s")?
            .expect("the stream is open");
        if msg.updates.iter().any(|u| !u.events.is_empty()) {
            self.messages += 1;
        }
        self.heartbeats.extend(msg.heartbeat.map(|h| h.sequence));
        for u in msg.updates {
            // A shared update is each of its watches' own.
            for &id in &u.watch_ids {
                self.updates.entry(id).or_default().push_back(u.clone());
            }
        }
        Ok(())
    }

    /// The next update of watch `id`.
    async fn next(&mut self, id: u64) -> proto::WatchUpdate {
        loop {
            if let Some(u) = self.updates.get_mut(&id).and_then(|q| q.pop_front()) {
                return u;
            }
            self.read().await.unwrap();
        }
    }
}

fn create(session: &str, vars: &[&str]) -> proto::WatchCreate {
    proto::WatchCreate {
        session: session.into(),
        variables: vars.iter().map(|v| v.to_string()).collect(),
        whole_session: vars.is_empty(),
        include_initial: true,
        ..Default::default()
    }
}

/// Receives watch `id`'s updates until `stop` says so; returns its events,
/// whether it synced, and its end if it ended.
async fn collect_until(
    w: &mut Wire,
    id: u64,
    mut stop: impl FnMut(&[proto::WatchEvent], bool) -> bool,
) -> (Vec<proto::WatchEvent>, bool, Option<proto::WatchEnd>) {
    let mut events = Vec::new();
    let mut synced = false;
    while !stop(&events, synced) {
        let u = w.next(id).await;
        events.extend(u.events);
        synced |= u.sync_complete.is_some();
        if u.end.is_some() {
            return (events, synced, u.end);
        }
    }
    (events, synced, None)
}

fn int_of(e: &proto::WatchEvent) -> i64 {
    match e.value.as_ref().and_then(|v| v.kind.clone()) {
        Some(Kind::IntegerValue(i)) => i,
        other => panic!("not an integer: {other:?}"),
    }
}

fn local(store: &SessionStore, session: &str, vars: &[(&str, i64)]) {
    store
        .create_session(session, varwatch::SessionOptions::new())
        .unwrap();
    for (n, v) in vars {
        store
            .register(session, VarDef::new(*n, LocalType::Integer, *v))
            .unwrap();
    }
}

async fn wait_registry(store: &SessionStore, session: &str, n: usize, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while store.list_watchers(session).unwrap().len() != n {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_watch_stale_read_and_order() {
    let mut s = start(GrpcService::new).await;
    local(&s.store, "s", &[("x", 1)]);
    let mut wire = Wire::open(&mut s.client).await;
    for round in 0..20 {
        s.store.update("s", "x", 1).unwrap();
        let writer = {
            let store = s.store.clone();
            std::thread::spawn(move || {
                store.update("s", "x", 2).unwrap();
                store.update("s", "x", 3).unwrap();
            })
        };
        wire.create(round, create("s", &["x"]));
        let (events, synced, _) = collect_until(&mut wire, round, |ev, synced| {
            synced && ev.last().is_some_and(|e| int_of(e) == 3)
        })
        .await;
        writer.join().unwrap();
        assert!(synced);
        assert_eq!(events[0].kind, EventKind::Initial as i32);
        for pair in events.windows(2) {
            assert_eq!(pair[1].kind, EventKind::Changed as i32);
            assert_eq!(pair[1].version, pair[0].version + 1);
            assert_eq!(int_of(&pair[1]), int_of(&pair[0]) + 1);
        }
        wire.request(Req::Cancel(proto::WatchCancel { watch_id: round }));
        let (_, _, end) = collect_until(&mut wire, round, |_, _| false).await;
        assert_eq!(end.unwrap().code, "CANCELLED");
    }
    // Every watch of the stream was cancelled: nothing left registered.
    wait_registry(&s.store, "s", 0, "cancelled watches stayed registered").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_watch_batches_a_burst() {
    let mut s = start(GrpcService::new).await;
    local(&s.store, "s", &[("x", 0)]);
    let mut w = Wire::open(&mut s.client).await;
    // Room for the whole burst on the server, so that the watch is lossless
    // whatever the timing, and the burst is written before anything is
    // read: then batching is not a matter of who runs first.
    let mut c = create("s", &["x"]);
    c.capacity = 16_384;
    w.create(1, c);
    collect_until(&mut w, 1, |_, synced| synced).await;
    for i in 1..=10_000 {
        s.store.update("s", "x", i).unwrap();
    }
    let before = w.messages;
    let (events, _, _) =
        collect_until(&mut w, 1, |ev, _| ev.last().is_some_and(|e| e.version >= 10_000)).await;
    let messages = w.messages - before;
    // Every version, once, in order.
    let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
    assert_eq!(versions, (1..=10_000).collect::<Vec<u64>>());
    assert!(
        messages * 4 < events.len(),
        "{} events came in {messages} messages: not batched",
        events.len()
    );
}

#[tokio::test]
async fn remote_watch_resumes_from_versions() {
    let mut s = start(GrpcService::new).await;
    local(&s.store, "s", &[("x", 0), ("y", 0), ("same", 0)]);
    let ids: HashMap<String, String> = s
        .store
        .list_variables("s", None)
        .unwrap()
        .iter()
        .map(|v| (v.name().to_string(), v.id().to_string()))
        .collect();
    // The client saw x at 1, y at 0 and `same` at 0; then it went away.
    s.store.update("s", "x", 1).unwrap();
    s.store.update("s", "x", 2).unwrap();
    s.store.update("s", "x", 3).unwrap(); // x now at version 3
    s.store.delete_variable("s", "y").unwrap();
    s.store
        .register("s", VarDef::new("z", LocalType::Integer, 9))
        .unwrap();
    let mut resume = create("s", &[]);
    resume.resume_versions = [
        (ids["x"].clone(), 1),
        (ids["y"].clone(), 0),
        (ids["same"].clone(), 0),
    ]
    .into();
    let mut w = Wire::open(&mut s.client).await;
    w.create(7, resume);
    let (events, _, _) = collect_until(&mut w, 7, |_, synced| synced).await;
    let mut got: Vec<(String, i32, u64)> = events
        .iter()
        .map(|e| {
            let who = if e.variable_name.is_empty() {
                e.variable_id.clone()
            } else {
                e.variable_name.clone()
            };
            (who, e.kind, e.version)
        })
        .collect();
    got.sort();
    let mut want = vec![
        ("x".to_string(), EventKind::Lagged as i32, 2), // version 2 was missed
        ("x".to_string(), EventKind::Changed as i32, 3),
        ("y".to_string(), EventKind::Deleted as i32, 1), // named, from its tombstone
        ("z".to_string(), EventKind::Initial as i32, 0),
    ];
    want.sort();
    assert_eq!(got, want, "`same` is unchanged and must not be sent");
    // All one cut: the same revision on every event.
    assert!(events.iter().all(|e| e.revision == events[0].revision));
    // Then it is live.
    s.store.update("s", "same", 5).unwrap();
    let (events, _, _) = collect_until(&mut w, 7, |ev, _| !ev.is_empty()).await;
    assert_eq!((events[0].variable_name.as_str(), events[0].version), ("same", 1));
}

#[tokio::test]
async fn heartbeats_are_answered_and_silent_clients_dropped() {
    let mut s = start(|store| {
        GrpcService::new(store)
            .heartbeat_interval(Duration::from_millis(50))
            .heartbeat_timeout(Duration::from_millis(300))
    })
    .await;
    local(&s.store, "s", &[("x", 0)]);
    let mut w = Wire::open(&mut s.client).await;
    w.create(1, create("s", &["x"]));
    w.request(Req::Heartbeat(proto::Heartbeat { sequence: 77 }));
    // The echo, and the server's own heartbeats.
    while !(w.heartbeats.contains(&77) && w.heartbeats.iter().filter(|&&h| h != 77).count() >= 2) {
        w.read().await.unwrap();
    }
    assert_eq!(s.store.list_watchers("s").unwrap().len(), 1);
    // Now silence: the server closes the stream and frees the watch.
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match w.recv.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => return None,
                Err(status) => return Some(status.code()),
            }
        }
    })
    .await
    .expect("the server must drop a silent client");
    assert_eq!(end, Some(Code::DeadlineExceeded));
    wait_registry(&s.store, "s", 0, "registration outlived the stream").await;
}

/// Ten thousand watches on one stream: created, fed, every one receiving in
/// order, updates of many watches sharing messages; then cancelled, with
/// the server's registry empty afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_watches_on_one_stream() {
    const N: u64 = 10_000;
    const WRITES: i64 = 5;
    let mut s = start(GrpcService::new).await;
    local(&s.store, "s", &[("x", 0)]);
    let mut w = Wire::open(&mut s.client).await;
    for id in 0..N {
        w.create(id, create("s", &["x"]));
    }
    let mut synced = 0;
    while synced < N {
        w.read().await.unwrap();
        synced = w
            .updates
            .values()
            .filter(|q| q.iter().any(|u| u.sync_complete.is_some()))
            .count() as u64;
    }
    assert_eq!(s.store.list_watchers("s").unwrap().len(), N as usize);
    for i in 1..=WRITES {
        s.store.update("s", "x", i).unwrap();
    }
    let before = w.messages;
    let mut got: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut done = 0;
    while done < N {
        w.read().await.unwrap();
        for (id, q) in w.updates.iter_mut() {
            for u in q.drain(..) {
                let versions = got.entry(*id).or_default();
                let before = versions.len();
                versions.extend(
                    u.events
                        .iter()
                        .filter(|e| e.kind == EventKind::Changed as i32)
                        .map(|e| e.version),
                );
                if before < WRITES as usize && versions.len() == WRITES as usize {
                    done += 1;
                }
            }
        }
    }
    for (id, versions) in &got {
        assert_eq!(versions, &(1..=WRITES as u64).collect::<Vec<_>>(), "watch {id}");
    }
    let messages = w.messages - before;
    assert!(
        (messages as u64) * 10 < N * WRITES as u64,
        "{} events came in {messages} messages: one message per event and watch",
        N * WRITES as u64
    );
    for id in 0..N {
        w.request(Req::Cancel(proto::WatchCancel { watch_id: id }));
    }
    wait_registry(&s.store, "s", 0, "cancelled watches stayed registered").await;
}

/// A create that fails ends alone: the stream and its other watches go on.
#[tokio::test]
async fn bad_watch_requests_fail_alone() {
    let mut s = start(GrpcService::new).await;
    local(&s.store, "s", &[("x", 0)]);
    let mut w = Wire::open(&mut s.client).await;
    w.create(1, create("s", &["x", "nope"]));
    w.create(2, create("missing", &[]));
    w.create(3, create("s", &["x"]));
    let (_, _, end) = collect_until(&mut w, 1, |_, _| false).await;
    assert_eq!(end.unwrap().code, "NOT_FOUND");
    let (_, _, end) = collect_until(&mut w, 2, |_, _| false).await;
    assert_eq!(end.unwrap().code, "NOT_FOUND");
    let (_, synced, end) = collect_until(&mut w, 3, |_, synced| synced).await;
    assert!(synced && end.is_none());
    // An id that is open already: both are over.
    w.create(3, create("s", &["x"]));
    let (_, _, end) = collect_until(&mut w, 3, |_, _| false).await;
    assert_eq!(end.unwrap().code, "INVALID_ARGUMENT");
    // The stream is still good.
    w.create(4, create("s", &["x"]));
    let (_, synced, _) = collect_until(&mut w, 4, |_, synced| synced).await;
    assert!(synced);
    wait_registry(&s.store, "s", 1, "one watch left").await;
}

/// A client that closes its sending side has finished: the server ends
/// every watch and closes the stream.
#[tokio::test]
async fn half_close_ends_the_stream() {
    let mut s = start(GrpcService::new).await;
    local(&s.store, "s", &[("x", 0)]);
    let mut w = Wire::open(&mut s.client).await;
    w.create(1, create("s", &["x"]));
    collect_until(&mut w, 1, |_, synced| synced).await;
    let Wire { send, mut recv, .. } = w;
    drop(send);
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match recv.message().await {
                Ok(Some(_)) => continue,
                other => return other.map(|_| ()),
            }
        }
    })
    .await
    .expect("the stream must end");
    assert!(end.is_ok(), "{end:?}");
    wait_registry(&s.store, "s", 0, "a watch outlived its stream").await;
}
