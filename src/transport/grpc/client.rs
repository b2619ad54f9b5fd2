//! [`RemoteStore`]: a client of a varwatch gRPC server with the store's
//! operations, and remote watches that survive reconnects.
//!
//! One `RemoteStore` holds one HTTP/2 connection (a tonic `Channel`, which
//! reconnects by itself); every call and every watch is a stream on it.
//!
//! A [`RemoteWatch`] runs a task that keeps the stream alive: it sends
//! heartbeats, treats silence past its timeout as a dead connection, and
//! re-subscribes with the last version it delivered of each variable, with
//! exponential backoff and jitter (reset once a stream reaches sync-complete).
//! Events are applied idempotently (anything at or below a version already
//! delivered is dropped), so across reconnects the user sees a contiguous
//! stream or an explicit `Lagged`, never a silent gap, and never a version
//! twice.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use futures_core::Stream;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use super::auth::BearerToken;
use super::convert::{
    constraints_from, constraints_to, metadata_from, value_from, value_to, var_type_from, var_type_to,
};
use super::proto::var_watch_client::VarWatchClient;
use super::proto::{self, watch_request};
use crate::session::{Record, RecordKind, VarMeta};
use crate::{
    Error, EventKind, Metadata, Result, SessionInfo, UpdateOptions, Value, VarDef, VarType, Variable,
    WatchEvent,
};

/// Settings of a [`RemoteStore`] and its watches.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RemoteConfig {
    /// Time allowed to establish a connection.
    pub connect_timeout: Duration,
    /// How often a watch sends a heartbeat.
    pub heartbeat_interval: Duration,
    /// Silence after which a watch treats its connection as dead.
    pub heartbeat_timeout: Duration,
    /// First reconnection delay (doubled per failure, with jitter).
    pub backoff_initial: Duration,
    /// Longest reconnection delay.
    pub backoff_max: Duration,
    /// Consecutive failed reconnections after which a watch ends with
    /// [`EventKind::Disconnected`]; `None` retries forever.
    pub max_failures: Option<u32>,
    /// Events buffered per watch between the connection and the user.
    pub buffer: usize,
    /// Sent as `authorization: Bearer <token>` on every call.
    pub token: Option<String>,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            connect_timeout: Duration::from_secs(3),
            heartbeat_interval: Duration::from_secs(5),
            heartbeat_timeout: Duration::from_secs(15),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            max_failures: None,
            buffer: 1024,
            token: None,
        }
    }
}

impl RemoteConfig {
    /// The defaults: heartbeats every 5 s, 15 s timeout, backoff 100 ms
    /// doubling to 30 s, retry forever.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the heartbeat interval and timeout.
    pub fn heartbeats(mut self, interval: Duration, timeout: Duration) -> Self {
        self.heartbeat_interval = interval.max(Duration::from_millis(1));
        self.heartbeat_timeout = timeout;
        self
    }
    /// Sets the reconnection backoff.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial;
        self.backoff_max = max.max(initial);
        self
    }
    /// Sets the bearer token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Gives up after `n` consecutive failed reconnections.
    pub fn max_failures(mut self, n: u32) -> Self {
        self.max_failures = Some(n);
        self
    }
}

fn remote(status: Status) -> Error {
    Error::Remote {
        code: format!("{:?}", status.code()),
        message: status.message().to_string(),
    }
}

/// A client of a varwatch gRPC server, with blocking methods named like
/// [`SessionStore`](crate::SessionStore)'s.
///
/// It owns a small tokio runtime, so blocking methods must not be called
/// from inside an async runtime (use a `spawn_blocking` there).
#[derive(Clone)]
pub struct RemoteStore {
    rt: Arc<Runtime>,
    client: Client,
    config: RemoteConfig,
}

impl std::fmt::Debug for RemoteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStore")
            .field("config", &self.config)
            .finish()
    }
}

impl RemoteStore {
    /// A client of the server at `addr` (`host:port`). The connection is
    /// made on first use and re-made whenever it breaks.
    pub fn connect(addr: &str, config: RemoteConfig) -> Result<RemoteStore> {
        let transport = |reason: String| Error::Transport {
            addr: addr.to_string(),
            reason,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("varwatch-remote")
            .enable_all()
            .build()
            .map_err(|e| transport(e.to_string()))?;
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| transport(e.to_string()))?
            .connect_timeout(config.connect_timeout)
            .http2_keep_alive_interval(config.heartbeat_interval)
            .keep_alive_timeout(config.heartbeat_timeout)
            .keep_alive_while_idle(true);
        let channel = {
            let _guard = rt.enter();
            endpoint.connect_lazy()
        };
        let header = match &config.token {
            Some(t) => Some(
                format!("Bearer {t}")
                    .parse()
                    .map_err(|_| transport("the token is not valid in an HTTP header".into()))?,
            ),
            None => None,
        };
        let client = VarWatchClient::with_interceptor(channel, BearerToken(header))
            .max_decoding_message_size(usize::MAX);
        Ok(RemoteStore {
            rt: Arc::new(rt),
            client,
            config,
        })
    }

    fn call<T, F>(&self, f: impl FnOnce(Client) -> F) -> Result<T>
    where
        F: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        self.rt
            .block_on(f(self.client.clone()))
            .map(tonic::Response::into_inner)
            .map_err(remote)
    }

    /// See [`SessionStore::create_session`](crate::SessionStore::create_session).
    pub fn create_session(&self, id: &str, opts: crate::SessionOptions) -> Result<SessionInfo> {
        let req = session_request(id, opts);
        self.call(|mut c| async move { c.create_session(req).await })
            .map(session_from)
    }

    /// See [`SessionStore::get_or_create_session`](crate::SessionStore::get_or_create_session).
    pub fn get_or_create_session(&self, id: &str, opts: crate::SessionOptions) -> Result<SessionInfo> {
        let req = session_request(id, opts);
        self.call(|mut c| async move { c.get_or_create_session(req).await })
            .map(session_from)
    }

    /// See [`SessionStore::session`](crate::SessionStore::session).
    pub fn session(&self, id: &str) -> Result<SessionInfo> {
        let req = proto::SessionRequest { session: id.into() };
        self.call(|mut c| async move { c.get_session(req).await })
            .map(session_from)
    }

    /// See [`SessionStore::delete_session`](crate::SessionStore::delete_session).
    pub fn delete_session(&self, id: &str) -> Result<()> {
        let req = proto::SessionRequest { session: id.into() };
        self.call(|mut c| async move { c.delete_session(req).await })
            .map(drop)
    }

    /// See [`SessionStore::list_sessions`](crate::SessionStore::list_sessions).
    pub fn list_sessions(&self) -> Result<Vec<String>> {
        self.call(|mut c| async move { c.list_sessions(proto::Empty {}).await })
            .map(|r| r.sessions)
    }

    /// See [`SessionStore::register`](crate::SessionStore::register).
    pub fn register(&self, session: &str, def: VarDef) -> Result<String> {
        let req = proto::RegisterVariableRequest {
            session: session.into(),
            name: def.name,
            r#type: var_type_to(def.var_type) as i32,
            value: Some(value_to(&def.value)),
            constraints: Some(constraints_to(&def.constraints)),
            metadata: def.metadata.into_iter().collect(),
        };
        self.call(|mut c| async move { c.register_variable(req).await })
            .map(|r| r.id)
    }

    /// See [`SessionStore::get`](crate::SessionStore::get).
    pub fn get(&self, session: &str, ident: &str) -> Result<Variable> {
        let req = proto::VariableRequest {
            session: session.into(),
            variable: ident.into(),
        };
        let v = self.call(|mut c| async move { c.get_variable(req).await })?;
        variable_from(v)
    }

    /// See [`SessionStore::value`](crate::SessionStore::value).
    pub fn value(&self, session: &str, ident: &str) -> Result<Value> {
        Ok(self.get(session, ident)?.value().clone())
    }

    /// See [`SessionStore::update`](crate::SessionStore::update).
    pub fn update(&self, session: &str, ident: &str, value: impl Into<Value>) -> Result<u64> {
        self.update_with(session, ident, value, &UpdateOptions::default())
    }

    /// See [`SessionStore::update_with`](crate::SessionStore::update_with).
    pub fn update_with(
        &self,
        session: &str,
        ident: &str,
        value: impl Into<Value>,
        opts: &UpdateOptions,
    ) -> Result<u64> {
        let req = proto::UpdateVariableRequest {
            session: session.into(),
            variable: ident.into(),
            value: Some(value_to(&value.into())),
            expected_version: opts.expected_version,
            source: opts.source.clone(),
            metadata: opts.metadata.clone().into_iter().collect(),
        };
        self.call(|mut c| async move { c.update_variable(req).await })
            .map(|r| r.version)
    }

    /// See [`SessionStore::delete_variable`](crate::SessionStore::delete_variable).
    pub fn delete_variable(&self, session: &str, ident: &str) -> Result<()> {
        let req = proto::VariableRequest {
            session: session.into(),
            variable: ident.into(),
        };
        self.call(|mut c| async move { c.delete_variable(req).await })
            .map(drop)
    }

    /// See [`SessionStore::list_variables`](crate::SessionStore::list_variables).
    pub fn list_variables(&self, session: &str, pattern: Option<&str>) -> Result<Vec<Variable>> {
        let req = proto::ListVariablesRequest {
            session: session.into(),
            pattern: pattern.unwrap_or_default().into(),
        };
        let r = self.call(|mut c| async move { c.list_variables(req).await })?;
        r.variables.into_iter().map(variable_from).collect()
    }

    /// Watches variables of a remote session; see
    /// [`SessionStore::watch`](crate::SessionStore::watch). The first
    /// subscription is made before this returns, so unknown sessions or
    /// variables are reported here.
    pub fn watch<S: AsRef<str>>(
        &self,
        session: &str,
        idents: impl IntoIterator<Item = S>,
        include_initial: bool,
    ) -> Result<RemoteWatch> {
        let sub = proto::Subscribe {
            session: session.into(),
            variables: idents.into_iter().map(|s| s.as_ref().to_string()).collect(),
            whole_session: false,
            include_initial,
            resume_versions: HashMap::new(),
            capacity: 0,
        };
        RemoteWatch::open(self, sub)
    }

    /// Watches a whole remote session; see
    /// [`SessionStore::watch_session`](crate::SessionStore::watch_session).
    pub fn watch_session(&self, session: &str, include_initial: bool) -> Result<RemoteWatch> {
        let sub = proto::Subscribe {
            session: session.into(),
            variables: Vec::new(),
            whole_session: true,
            include_initial,
            resume_versions: HashMap::new(),
            capacity: 0,
        };
        RemoteWatch::open(self, sub)
    }
}

fn session_request(id: &str, opts: crate::SessionOptions) -> proto::CreateSessionRequest {
    proto::CreateSessionRequest {
        session: id.into(),
        ttl_ms: opts.ttl.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        metadata: opts.metadata.into_iter().collect(),
    }
}

fn when(t: Option<prost_types::Timestamp>) -> SystemTime {
    t.and_then(|t| SystemTime::try_from(t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

fn session_from(s: proto::SessionInfo) -> SessionInfo {
    let last_accessed = when(s.last_accessed);
    SessionInfo {
        id: s.session,
        metadata: metadata_from(s.metadata),
        created_at: when(s.created_at),
        last_accessed,
        idle_for: SystemTime::now()
            .duration_since(last_accessed)
            .unwrap_or_default(),
        ttl: s.ttl_ms.map(Duration::from_millis),
        revision: s.revision,
        variables: s.variables as usize,
        watchers: s.watchers as usize,
    }
}

fn variable_from(v: proto::Variable) -> Result<Variable> {
    let bad = |s: Status| Error::Remote {
        code: "InvalidResponse".into(),
        message: s.message().to_string(),
    };
    let var_type = var_type_from(v.r#type).map_err(bad)?;
    let meta = Arc::new(VarMeta {
        id: v.id.into(),
        name: v.name.into(),
        var_type,
        constraints: constraints_from(v.constraints).map_err(bad)?,
        metadata: Arc::new(metadata_from(v.metadata)),
        created_at: when(v.created_at),
        slot: 0,
    });
    Ok(Variable {
        record: Arc::new(Record {
            var: meta,
            kind: if v.version == 0 {
                RecordKind::Registered
            } else {
                RecordKind::Changed
            },
            version: v.version,
            revision: v.revision,
            value: value_from(v.value, usize::MAX).map_err(bad)?,
            old_value: None,
            source: v.source.map(Into::into),
            metadata: (!v.change_metadata.is_empty()).then(|| Arc::new(metadata_from(v.change_metadata))),
            timestamp: when(v.updated_at),
        }),
    })
}

/// Counters of a remote watch.
#[derive(Debug, Default)]
struct RemoteCounters {
    reconnects: AtomicU64,
    resyncs: AtomicU64,
    heartbeats: AtomicU64,
}

/// Counters of a [`RemoteWatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteWatchStats {
    /// Streams re-opened after a failure.
    pub reconnects: u64,
    /// Lag markers received (the server-side watch fell behind, or a resume
    /// found versions the client had missed).
    pub resyncs: u64,
    /// Heartbeats received from the server.
    pub heartbeats: u64,
}

/// A watch on a remote store: the same [`WatchEvent`]s as a local watch,
/// through disconnects. Receive with [`recv`](Self::recv),
/// [`recv_timeout`](Self::recv_timeout), [`try_recv`](Self::try_recv), as an
/// [`Iterator`], or as a [`Stream`]. Dropping it closes the stream.
pub struct RemoteWatch {
    rx: mpsc::Receiver<WatchEvent>,
    taken: Arc<AtomicU64>,
    rt: Arc<Runtime>,
    counters: Arc<RemoteCounters>,
}

impl std::fmt::Debug for RemoteWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteWatch")
            .field("stats", &self.stats())
            .finish()
    }
}

impl Drop for RemoteWatch {
    fn drop(&mut self) {
        // Closing the channel tells the task to flush its acknowledgement
        // and end the stream (it never waits on anything else for long).
        self.rx.close();
    }
}

/// Why a stream ended.
enum StreamEnd {
    /// The watch is over (its final event was delivered) or its user left.
    Done,
    /// The stream broke; `synced` says whether it had reached sync-complete.
    Broken { synced: bool },
}

/// The client side of one watch, across streams.
struct Follower {
    client: Client,
    sub: proto::Subscribe,
    config: RemoteConfig,
    tx: mpsc::Sender<WatchEvent>,
    counters: Arc<RemoteCounters>,
    /// Last version delivered per variable id: the resume point, and the
    /// filter that makes applying an event idempotent.
    seen: HashMap<String, u64>,
    metas: HashMap<String, Arc<VarMeta>>,
    /// Whether the user asked for initial states. The wire always asks (so
    /// that the client knows every watched variable's id and version from
    /// the start); unwanted ones are recorded, not delivered.
    user_initial: bool,
    /// Whether a first snapshot has been completed.
    synced_once: bool,
    /// Session revision of the last event the user took, plus one (0: none);
    /// written by the `RemoteWatch`, read here to send acks.
    taken: Arc<AtomicU64>,
    /// The last value acknowledged to the current stream.
    acked: u64,
}

type Outbound = mpsc::UnboundedSender<proto::WatchRequest>;

/// The generated client, with the bearer-token header added to each call.
type Client = VarWatchClient<InterceptedService<Channel, BearerToken>>;

struct OutStream(mpsc::UnboundedReceiver<proto::WatchRequest>);
impl Stream for OutStream {
    type Item = proto::WatchRequest;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

impl Follower {
    /// Opens a stream, subscribing with the versions seen so far.
    async fn subscribe(
        &mut self,
    ) -> std::result::Result<(tonic::Streaming<proto::WatchResponse>, Outbound), Status> {
        let mut sub = self.sub.clone();
        sub.resume_versions = self.seen.clone();
        sub.include_initial = true;
        let (out, rx) = mpsc::unbounded_channel();
        let _ = out.send(proto::WatchRequest {
            kind: Some(watch_request::Kind::Subscribe(sub)),
        });
        let inbound = tokio::time::timeout(self.config.heartbeat_timeout, self.client.watch(OutStream(rx)))
            .await
            .map_err(|_| Status::deadline_exceeded("no answer to the subscription"))??
            .into_inner();
        Ok((inbound, out))
    }

    fn event(&mut self, e: proto::WatchEvent) -> Option<WatchEvent> {
        use proto::EventKind as K;
        let kind = match K::try_from(e.kind).ok()? {
            K::Initial => EventKind::Initial,
            K::Changed => EventKind::Changed,
            K::Deleted => EventKind::Deleted,
            K::Lagged => EventKind::Lagged {
                first: e.lag_first,
                last: e.lag_last,
            },
            K::SessionClosed => EventKind::SessionClosed,
            K::Unspecified => return None,
        };
        // Idempotent apply: nothing at or below what was delivered.
        if kind != EventKind::SessionClosed {
            let seen = self.seen.get(&e.variable_id).copied();
            let newest = match kind {
                EventKind::Lagged { last, .. } => last,
                _ => e.version,
            };
            if seen.is_some_and(|s| newest <= s) {
                return None;
            }
            match kind {
                EventKind::Deleted => {
                    self.seen.remove(&e.variable_id);
                }
                _ => {
                    self.seen.insert(e.variable_id.clone(), newest);
                }
            }
        }
        if matches!(kind, EventKind::Lagged { .. }) {
            self.counters.resyncs.fetch_add(1, Ordering::Relaxed);
        }
        if kind == EventKind::Initial && !self.user_initial && !self.synced_once {
            return None; // recorded above, not wanted by the user
        }
        let value = e.value.and_then(|v| value_from(Some(v), usize::MAX).ok());
        let old_value = e.old_value.and_then(|v| value_from(Some(v), usize::MAX).ok());
        let meta = self
            .metas
            .entry(e.variable_id.clone())
            .or_insert_with(|| {
                Arc::new(VarMeta {
                    id: e.variable_id.as_str().into(),
                    name: e.variable_name.as_str().into(),
                    var_type: value.as_ref().map_or(VarType::Boolean, Value::var_type),
                    constraints: Default::default(),
                    metadata: Arc::default(),
                    created_at: SystemTime::UNIX_EPOCH,
                    slot: 0,
                })
            })
            .clone();
        if kind == EventKind::Deleted {
            self.metas.remove(&e.variable_id);
        }
        let record = Record {
            var: meta,
            kind: match kind {
                EventKind::Deleted => RecordKind::Deleted,
                EventKind::SessionClosed => RecordKind::SessionClosed,
                EventKind::Initial => RecordKind::Registered,
                _ => RecordKind::Changed,
            },
            version: e.version,
            revision: e.revision,
            value: value
                .or_else(|| old_value.clone())
                .unwrap_or(Value::Boolean(false)),
            old_value,
            source: e.source.map(Into::into),
            metadata: (!e.metadata.is_empty())
                .then(|| Arc::new(e.metadata.into_iter().collect::<Metadata>())),
            timestamp: when(e.timestamp),
        };
        Some(WatchEvent::from_parts(kind, Arc::new(record), e.skipped))
    }

    /// Delivers a stream's messages until it ends or breaks.
    async fn follow(
        &mut self,
        mut inbound: tonic::Streaming<proto::WatchResponse>,
        out: Outbound,
    ) -> StreamEnd {
        let mut synced = false;
        self.acked = 0; // a new stream: its server-side watch knows nothing yet
        let mut beat = tokio::time::interval(self.config.heartbeat_interval);
        beat.reset();
        let mut sequence = 0u64;
        // Silence past the timeout means a dead connection. The deadline
        // moves only when the server says something (our own heartbeats must
        // not reset it).
        let mut deadline = tokio::time::Instant::now() + self.config.heartbeat_timeout;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return StreamEnd::Broken { synced },
                msg = inbound.message() => {
                    let msg = match msg {
                        Ok(Some(m)) => m,
                        Err(_) | Ok(None) => return StreamEnd::Broken { synced },
                    };
                    deadline = tokio::time::Instant::now() + self.config.heartbeat_timeout;
                    if msg.heartbeat.is_some() {
                        self.counters.heartbeats.fetch_add(1, Ordering::Relaxed);
                    }
                                        for e in msg.events {
                        let Some(ev) = self.event(e) else { continue };
                        // The last event: the session is gone, or every
                        // variable of a named watch was deleted.
                        let last = ev.kind() == EventKind::SessionClosed
                            || (ev.kind() == EventKind::Deleted && !self.sub.whole_session && self.seen.is_empty());
                        if self.tx.send(ev).await.is_err() {
                            return StreamEnd::Done; // the user dropped the watch
                        }
                        if last {
                            return StreamEnd::Done;
                        }
                    }
                    if msg.sync_complete.is_some() {
                        synced = true;
                        self.synced_once = true;
                    }
                }
                                _ = beat.tick() => {
                    sequence += 1;
                    let hb = proto::WatchRequest { kind: Some(watch_request::Kind::Heartbeat(proto::Heartbeat { sequence })) };
                    if out.send(hb).is_err() {
                        return StreamEnd::Broken { synced };
                    }
                    self.ack(&out);
                }
                _ = self.tx.closed() => {
                    // The user dropped the watch: flush the acknowledgement
                    // (the request stream then closes with `out`).
                    self.ack(&out);
                    return StreamEnd::Done;
                }
            }
        }
    }

    /// Tells the server what the user has taken, if that moved.
    fn ack(&mut self, out: &Outbound) {
        let taken = self.taken.load(Ordering::Relaxed);
        if taken > self.acked {
            self.acked = taken;
            let ack = proto::WatchRequest {
                kind: Some(watch_request::Kind::Ack(proto::Ack {
                    versions: Default::default(),
                    revision: taken - 1,
                })),
            };
            let _ = out.send(ack);
        }
    }

    /// Follows streams, reconnecting with backoff, until the watch is over.
    async fn run(mut self, first: (tonic::Streaming<proto::WatchResponse>, Outbound)) {
        let mut stream = Some(first);
        let mut failures = 0u32;
        let mut backoff = self.config.backoff_initial;
        loop {
            let (inbound, out) = match stream.take() {
                Some(s) => s,
                None => match self.subscribe().await {
                    Ok(s) => {
                        self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                        s
                    }
                    Err(e) if matches!(e.code(), Code::NotFound) => {
                        // The session is gone: nothing to come back to.
                        let _ = self.tx.send(self.final_event(EventKind::SessionClosed)).await;
                        return;
                    }
                    Err(_) => {
                        if !self.wait(&mut failures, &mut backoff).await {
                            return;
                        }
                        continue;
                    }
                },
            };
            match self.follow(inbound, out).await {
                StreamEnd::Done => return,
                StreamEnd::Broken { synced, .. } => {
                    if synced {
                        failures = 0;
                        backoff = self.config.backoff_initial;
                    }
                    if !self.wait(&mut failures, &mut backoff).await {
                        return;
                    }
                }
            }
        }
    }

    /// Sleeps before the next attempt; false once the retry policy is spent
    /// (after delivering `Disconnected`).
    async fn wait(&mut self, failures: &mut u32, backoff: &mut Duration) -> bool {
        *failures += 1;
        if self.config.max_failures.is_some_and(|max| *failures > max) {
            let _ = self.tx.send(self.final_event(EventKind::Disconnected)).await;
            return false;
        }
        // Full jitter in [backoff/2, backoff].
        let nanos = backoff.as_nanos() as u64;
        let jitter = nanos / 2 + jitter_below(nanos / 2 + 1);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_nanos(jitter)) => {}
            _ = self.tx.closed() => return false,
        }
        *backoff = (*backoff * 2).min(self.config.backoff_max);
        true
    }

    /// A watch's last event when it has no variable to speak of.
    fn final_event(&self, kind: EventKind) -> WatchEvent {
        let record = Record {
            var: Arc::new(VarMeta {
                id: "".into(),
                name: "".into(),
                var_type: VarType::Boolean,
                constraints: Default::default(),
                metadata: Arc::default(),
                created_at: SystemTime::UNIX_EPOCH,
                slot: 0,
            }),
            kind: RecordKind::SessionClosed,
            version: 0,
            revision: 0,
            value: Value::Boolean(false),
            old_value: None,
            source: None,
            metadata: None,
            timestamp: SystemTime::now(),
        };
        WatchEvent::from_parts(kind, Arc::new(record), 0)
    }
}

fn jitter_below(n: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64,
    );
    h.finish() % n.max(1)
}

impl RemoteWatch {
    fn open(store: &RemoteStore, sub: proto::Subscribe) -> Result<RemoteWatch> {
        let (tx, rx) = mpsc::channel(store.config.buffer.max(1));
        let counters = Arc::new(RemoteCounters::default());
        let user_initial = sub.include_initial;
        let taken = Arc::new(AtomicU64::new(0));
        let mut follower = Follower {
            taken: taken.clone(),
            acked: 0,
            client: store.client.clone(),
            user_initial,
            synced_once: false,
            sub,
            config: store.config.clone(),
            tx,
            counters: counters.clone(),
            seen: HashMap::new(),
            metas: HashMap::new(),
        };
        let first = store.rt.block_on(follower.subscribe()).map_err(remote)?;
        // The task ends by itself once this watch is dropped (see Drop).
        store.rt.spawn(follower.run(first));
        Ok(RemoteWatch {
            rx,
            taken,
            rt: store.rt.clone(),
            counters,
        })
    }

    /// Notes that the user took `e` (acknowledged to the server).
    fn took(&self, e: WatchEvent) -> WatchEvent {
        self.taken.fetch_max(e.revision() + 1, Ordering::Relaxed);
        e
    }

    /// Blocks until the next event; `None` once the watch has ended.
    pub fn recv(&mut self) -> Option<WatchEvent> {
        let e = self.rt.block_on(self.rx.recv())?;
        Some(self.took(e))
    }

    /// Blocks until the next event or until `timeout` has passed.
    pub fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> std::result::Result<WatchEvent, crate::RecvTimeoutError> {
        // The timer must be created inside the runtime.
        let rx = &mut self.rx;
        match self
            .rt
            .block_on(async move { tokio::time::timeout(timeout, rx.recv()).await })
        {
            Ok(Some(e)) => Ok(self.took(e)),
            Ok(None) => Err(crate::RecvTimeoutError::Closed),
            Err(_) => Err(crate::RecvTimeoutError::Timeout),
        }
    }

    /// The next event if one is ready.
    pub fn try_recv(&mut self) -> std::result::Result<WatchEvent, crate::TryRecvError> {
        self.rx.try_recv().map(|e| self.took(e)).map_err(|e| match e {
            mpsc::error::TryRecvError::Empty => crate::TryRecvError::Empty,
            mpsc::error::TryRecvError::Disconnected => crate::TryRecvError::Closed,
        })
    }

    /// Reconnects, resyncs and heartbeats so far.
    pub fn stats(&self) -> RemoteWatchStats {
        RemoteWatchStats {
            reconnects: self.counters.reconnects.load(Ordering::Relaxed),
            resyncs: self.counters.resyncs.load(Ordering::Relaxed),
            heartbeats: self.counters.heartbeats.load(Ordering::Relaxed),
        }
    }
}

impl Iterator for RemoteWatch {
    type Item = WatchEvent;
    fn next(&mut self) -> Option<WatchEvent> {
        self.recv()
    }
}

impl Stream for RemoteWatch {
    type Item = WatchEvent;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchEvent>> {
        self.rx.poll_recv(cx).map(|e| e.map(|e| self.took(e)))
    }
}
