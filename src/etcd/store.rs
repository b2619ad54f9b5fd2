//! [`EtcdStore`]: the store's operations on etcd. Reads are one etcd
//! transaction each (one revision: a cut); writes follow the protocol of
//! `snapshot.rs`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, LeaseGrantOptions, LeaseTimeToLiveOptions, Txn, TxnOp,
};
use parking_lot::Mutex;

use super::client::lost;
use super::client::{Inner, MAX_ATTEMPTS, Shared, distinct, unresolved};
use super::codec::{self, decode_meta, encode};
use super::config::EtcdConfig;
use super::conn::{Conn, Failed, with_deadline};
use super::cut::read_cut;
use super::keys::Keys;
use super::snapshot::{Cache, Plan, Reads, Snap, Stored, Write};
use super::watch;
use crate::error::ErrorSource;
use crate::ident::{check_session_id, check_var_name, is_var_id, var_id};
use crate::ops::{Request, Response, WatchTarget};
use crate::store::{check_pattern, glob_match};
use crate::transport::grpc::convert::{
    constraints_from, constraints_to, metadata_to, time, value_to, var_type_from, var_type_to,
};
use crate::transport::grpc::proto;
use crate::value::validate;
use crate::{
    AsyncVarStore, BatchUpdate, Error, GetMany, Result, SessionInfo, SessionOptions, UpdateOptions, Value,
    VarDef, VarList, VarStore, VarType, Variable, Watch, WatchOptions,
};

/// A store of sessions of versioned variables kept in etcd v3: the one store
/// API, [`VarStore`] (and [`AsyncVarStore`] through
/// [`to_async`](Self::to_async)), shared by every process that
/// connects to the same etcd with the same prefix, and kept when they
/// restart.
///
/// The guarantees are the local ones, on etcd's: a write is checked against
/// the session's current state and applied whole (one etcd transaction, so
/// an atomic batch is one etcd revision); a watch registers atomically with
/// its snapshot (it reads at etcd revision R and watches from R + 1), sees
/// every change in order, resumes after a lost connection from where it
/// was, and reports history compacted away as `Lagged`, as a local watch
/// reports an overflow. How the model maps onto etcd is in
/// [`crate::etcd`]'s documentation.
///
/// It owns a small tokio runtime, so its blocking methods must not be
/// called from inside an async runtime: use [`to_async`](Self::to_async)
/// there.
/// Cloning is cheap and shares the connection.
///
/// ```no_run
/// use varwatch::etcd::{EtcdConfig, EtcdStore};
/// use varwatch::{SessionOptions, VarDef, VarStore, VarType, WatchOptions};
///
/// let store = EtcdStore::connect(["http://127.0.0.1:2379"], EtcdConfig::new())?;
/// store.get_or_create_session("lab", SessionOptions::new())?;
/// store.register("lab", VarDef::new("t", VarType::Float, 20.0))?;
/// let mut watch = store.watch("lab", ["t"], WatchOptions::new())?;
/// store.update("lab", "t", 21.5)?; // from this process or any other
/// # Ok::<(), varwatch::Error>(())
/// ```
#[derive(Clone)]
pub struct EtcdStore {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.inner.shared.conn.endpoints)
            .field("config", &self.inner.shared.config)
            .finish_non_exhaustive()
    }
}

/// The longest lease etcd grants, in seconds.
const MAX_LEASE_SECS: i64 = 9_000_000_000;

/// A definition checked without the session's state: its initial value
/// (coerced to its type).
fn check_def(session: &str, def: &VarDef) -> Result<Value> {
    check_var_name(&def.name)?;
    def.constraints
        .check_for(def.var_type)
        .map_err(|reason| Error::InvalidConstraints {
            session: session.to_string(),
            variable: def.name.clone(),
            reason,
        })?;
    validate(def.var_type, &def.constraints, def.value.clone()).map_err(|reason| Error::InvalidValue {
        session: session.to_string(),
        variable: def.name.clone(),
        reason,
    })
}

/// The stored record's variable, if `ident` names it: an id must match the
/// record's (the name may have been taken by a newer variable).
fn lookup<'a>(snap: &'a Snap, name: Option<&String>, ident: &str) -> Option<&'a Stored> {
    let s = snap.vars.get(name?)?.as_ref()?;
    (!is_var_id(ident) || s.0.id == ident).then_some(s)
}

fn var_type(key: &str, rec: &proto::Variable) -> Result<VarType> {
    var_type_from(rec.r#type).map_err(|_| codec::corrupt(key.as_bytes(), "variable"))
}

/// The one answer of a batch of one, or the batch's rejection.
fn failed(session: &str, mut failures: Vec<(String, Error)>, batch: bool) -> Error {
    if !batch && failures.len() == 1 {
        return failures.pop().expect("one failure").1;
    }
    Error::BatchRejected {
        session: session.to_string(),
        failures,
    }
}

/// The session revision a write of `snap` moves to.
fn next_revision(snap: &Snap) -> Result<u64> {
    snap.meta
        .revision
        .checked_add(1)
        .ok_or_else(|| codec::corrupt(snap.meta.session.as_bytes(), "session"))
}

impl EtcdStore {
    /// Connects to etcd at `endpoints` (such as `http://127.0.0.1:2379`;
    /// several for a cluster).
    ///
    /// # Errors
    ///
    /// [`Error::Transport`] if no endpoint answers within
    /// `config.connect_timeout`; [`Error::InvalidOption`] for no endpoints.
    pub fn connect<E: AsRef<str>>(
        endpoints: impl IntoIterator<Item = E>,
        config: EtcdConfig,
    ) -> Result<EtcdStore> {
        let config = config.normalized();
        let endpoints: Vec<String> = endpoints.into_iter().map(|e| e.as_ref().to_string()).collect();
        if endpoints.is_empty() {
            return Err(Error::InvalidOption(
                "EtcdStore::connect needs at least one endpoint".into(),
            ));
        }
        let joined = endpoints.join(",");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("varwatch-etcd")
            .enable_all()
            .build()
            .map_err(|e| Error::Transport {
                addr: joined.clone(),
                reason: format!("cannot start the client's runtime: {e}"),
                source: Some(ErrorSource::new(e)),
            })?;
        let opts = config
            .connect_options
            .clone()
            .unwrap_or_default()
            .with_connect_timeout(config.connect_timeout)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        let timeout = config.connect_timeout;
        let client = rt
            .block_on(async {
                tokio::time::timeout(timeout, Client::connect(endpoints.clone(), Some(opts.clone()))).await
            })
            .map_err(|_| Error::Transport {
                addr: joined.clone(),
                reason: format!("no etcd answered within {timeout:?}"),
                source: None,
            })?
            .map_err(|e| Error::Transport {
                addr: joined.clone(),
                reason: format!("etcd: {e}"),
                source: Some(ErrorSource::new(e)),
            })?;
        let conn = Arc::new(Conn::new(client, &endpoints, opts, &config));
        let hubs = Arc::new(super::hub::HubCtx {
            conn: conn.clone(),
            keys: Keys::new(&config.prefix),
            config: config.clone(),
            hubs: Mutex::new(HashMap::new()),
        });
        Ok(EtcdStore {
            inner: Arc::new(Inner {
                rt: Some(rt),
                shared: Arc::new(Shared {
                    conn,
                    keys: Keys::new(&config.prefix),
                    config,
                    cache: Mutex::new(Cache::default()),
                    watchers: Mutex::new(HashMap::new()),
                    kept_alive: Mutex::new(HashMap::new()),
                    hubs,
                    watch_ids: std::sync::atomic::AtomicU64::new(0),
                    write_ids: codec::WriteIds::new(),
                }),
            }),
        })
    }

    /// The etcd client the store uses (cheap to clone): for what varwatch
    /// does not do itself, such as compacting etcd's history or reading
    /// cluster status. Writing under the store's prefix with it breaks the
    /// store's guarantees.
    pub fn client(&self) -> &etcd_client::Client {
        &self.inner.shared.conn.client
    }

    /// Runs `f` on the store's runtime (where the client's futures must
    /// run), blocking until it completes.
    ///
    /// ```no_run
    /// # let store: varwatch::etcd::EtcdStore = unimplemented!();
    /// let mut client = store.client().clone();
    /// let revision = store.block_on(async move { client.status().await })?.header().unwrap().revision();
    /// # Ok::<(), varwatch::etcd::etcd_client::Error>(())
    /// ```
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt().block_on(f)
    }

    /// The configuration in use (normalized).
    pub fn config(&self) -> &EtcdConfig {
        &self.inner.shared.config
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        self.inner.rt.as_ref().expect("the runtime lives until drop")
    }

    /// The async view of this store (same connection, same watches).
    pub fn to_async(&self) -> AsyncEtcdStore {
        AsyncEtcdStore {
            inner: self.inner.clone(),
        }
    }

    /// Runs `f` on the store's runtime within the call deadline.
    fn block<T>(&self, f: impl Future<Output = Result<T>>) -> Result<T> {
        let shared = &self.inner.shared;
        let limit = shared.config.call_timeout;
        self.rt().block_on(async {
            tokio::time::timeout(limit, with_deadline(Instant::now() + limit, f))
                .await
                .unwrap_or_else(|_| Err(shared.deadline()))
        })
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }
}

/// The operation table on etcd: each request as one or more etcd
/// transactions, under [`EtcdConfig::call_timeout`].
impl VarStore for EtcdStore {
    fn call(&self, request: Request) -> Result<Response> {
        // `run` keeps the deadline (and names a write's unknown outcome).
        self.rt().block_on(self.shared().run(request))
    }

    fn open_watch(&self, session: &str, target: WatchTarget, opts: WatchOptions) -> Result<Watch> {
        let open =
            self.inner
                .shared
                .clone()
                .open_watch(self.inner.clone(), session.to_string(), target, opts);
        self.block(open)
    }
}

/// The async view of an [`EtcdStore`] ([`EtcdStore::to_async`]): the same
/// operations as `async fn`s, usable from any async runtime (the work runs
/// on the store's own).
#[derive(Clone)]
pub struct AsyncEtcdStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AsyncEtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncEtcdStore")
            .field("endpoints", &self.inner.shared.conn.endpoints)
            .finish_non_exhaustive()
    }
}

impl AsyncEtcdStore {
    /// Whether the cluster can serve this store: a linearizable read (a
    /// quorum answers) within the call deadline, through any member. What
    /// `varwatch-server --etcd` reports as its health (see
    /// [`GrpcService::health_probe`](crate::transport::grpc::GrpcService::health_probe)).
    ///
    /// # Errors
    ///
    /// The read's: [`Error::Remote`](crate::Error) with `Unavailable` or
    /// `DeadlineExceeded` when no member answers.
    pub async fn check(&self) -> Result<()> {
        let shared = self.inner.shared.clone();
        self.spawn(async move {
            let key = format!("{}health", shared.config.prefix);
            shared
                .conn
                .read(|c| {
                    let mut kv = shared.conn.kv(&c);
                    let key = key.clone();
                    async move {
                        kv.get(key, Some(etcd_client::GetOptions::new().with_count_only()))
                            .await
                    }
                })
                .await
                .map(drop)
        })
        .await
    }

    /// The blocking view of this store.
    pub fn to_blocking(&self) -> EtcdStore {
        EtcdStore {
            inner: self.inner.clone(),
        }
    }

    /// Runs `f` on the store's runtime within the call deadline.
    fn spawn<T: Send + 'static>(
        &self,
        f: impl Future<Output = Result<T>> + Send + 'static,
    ) -> impl Future<Output = Result<T>> + Send + 'static {
        let shared = self.inner.shared.clone();
        let limit = shared.config.call_timeout;
        self.spawn_bounded(async move {
            tokio::time::timeout(limit, with_deadline(Instant::now() + limit, f))
                .await
                .unwrap_or_else(|_| Err(shared.deadline()))
        })
    }

    /// Runs `f`, which keeps its own deadline, on the store's runtime.
    fn spawn_bounded<T: Send + 'static>(
        &self,
        f: impl Future<Output = Result<T>> + Send + 'static,
    ) -> impl Future<Output = Result<T>> + Send + 'static {
        let task = self
            .inner
            .rt
            .as_ref()
            .expect("the runtime lives until drop")
            .spawn(f);
        async move {
            task.await.unwrap_or_else(|e| {
                Err(Error::Transport {
                    addr: String::new(),
                    reason: format!("the store's runtime dropped the call: {e}"),
                    source: Some(ErrorSource::new(e)),
                })
            })
        }
    }
}

impl AsyncVarStore for AsyncEtcdStore {
    fn call(&self, request: Request) -> impl Future<Output = Result<Response>> + Send {
        let shared = self.inner.shared.clone();
        // `run` keeps the deadline (and names a write's unknown outcome).
        self.spawn_bounded(async move { shared.run(request).await })
    }

    fn open_watch(
        &self,
        session: &str,
        target: WatchTarget,
        opts: WatchOptions,
    ) -> impl Future<Output = Result<Watch>> + Send {
        let open =
            self.inner
                .shared
                .clone()
                .open_watch(self.inner.clone(), session.to_string(), target, opts);
        self.spawn(open)
    }
}

/// The operations, as async functions of the connection they use.
impl Shared {
    /// Creates a session. With a TTL, the session and all its keys are
    /// attached to an etcd lease of that many seconds (rounded up; etcd
    /// raises very short ones to its minimum, about 2 s), kept alive by
    /// every access of any client and by open watches: a session no one
    /// touches for its TTL is deleted by etcd, and its watches, in every
    /// process, end with `SessionClosed`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], [`Error::SessionExists`], [`Error::Transport`].
    pub(super) async fn create_session(&self, id: &str, opts: SessionOptions) -> Result<SessionInfo> {
        check_session_id(id)?;
        let s = self;
        let mut lease = 0;
        if let Some(ttl) = opts.ttl {
            let secs = i64::try_from(ttl.as_secs())
                .unwrap_or(i64::MAX)
                .saturating_add(i64::from(ttl.subsec_nanos() > 0))
                .clamp(1, MAX_LEASE_SECS);
            // Retried like a read: a lease granted by a lost attempt is
            // never used, and expires with its TTL.
            lease = s
                .conn
                .read(|mut c| async move { c.lease_grant(secs, None::<LeaseGrantOptions>).await })
                .await?
                .id();
        }
        let now = SystemTime::now();
        let meta = proto::SessionInfo {
            session: id.to_string(),
            metadata: metadata_to(&opts.metadata),
            created_at: Some(time(now)),
            last_accessed: None,
            ttl_ms: opts.ttl.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
            revision: 0,
            variables: 0,
            watchers: 0,
        };
        let put = (lease != 0).then(|| etcd_client::PutOptions::new().with_lease(lease));
        let mark = s.write_ids.next();
        let txn = Txn::new()
            .when([Compare::create_revision(s.keys.meta(id), CompareOp::Equal, 0)])
            .and_then([
                TxnOp::put(s.keys.meta(id), codec::encode_meta(&meta, &mark), put.clone()),
                TxnOp::put(s.keys.list(id), "", put),
            ])
            .or_else([TxnOp::get(s.keys.meta(id), None)]);
        let resp = match s.conn.write_txn(txn).await {
            Ok((resp, _)) => resp,
            Err(Failed::Refused(e)) => {
                s.revoke(lease);
                return Err(e);
            }
            Err(Failed::Lost { error, sent }) => return Err(lost(id, error, sent)),
        };
        // Not created by this copy: by an earlier one whose answer was lost
        // (the session bears its mark), or by someone else.
        let ours = || {
            resp.op_responses().into_iter().any(|r| {
                matches!(r, etcd_client::TxnOpResponse::Get(g)
                    if g.kvs().first().is_some_and(|kv| codec::write_id_of(kv.value()) == Some(mark)))
            })
        };
        if !resp.succeeded() && !ours() {
            s.revoke(lease);
            return Err(Error::SessionExists {
                session: id.to_string(),
            });
        }
        s.cache.lock().forget(id);
        Ok(codec::session_info(&meta, 0, Duration::ZERO))
    }

    /// Returns the session, creating it if needed (`opts` apply only then).
    ///
    /// # Errors
    ///
    /// As [`create_session`](Self::create_session), without `SessionExists`.
    pub(super) async fn get_or_create_session(&self, id: &str, opts: SessionOptions) -> Result<SessionInfo> {
        match self.create_session(id, opts).await {
            Err(Error::SessionExists { .. }) => self.session(id).await,
            other => other,
        }
    }

    /// The session's facts: `revision` is its count of writes (the same in
    /// every process), `idle_for` the time since its lease was last kept
    /// alive (zero without a TTL), `watchers` this client's open watches of
    /// it.
    ///
    /// # Errors
    ///
    /// [`Error::SessionNotFound`], [`Error::Transport`].
    pub(super) async fn session(&self, id: &str) -> Result<SessionInfo> {
        Shared::existing(id)?;
        let s = self;
        let kv = s.meta_kv(id).await?;
        let meta = decode_meta(kv.key(), kv.value())?;
        let mut idle = Duration::ZERO;
        if kv.lease() != 0 {
            let lease = kv.lease();
            let ttl = s
                .conn
                .read(
                    |mut c| async move { c.lease_time_to_live(lease, None::<LeaseTimeToLiveOptions>).await },
                )
                .await?;
            let gone = ttl.granted_ttl().saturating_sub(ttl.ttl()).max(0);
            idle = Duration::from_secs(u64::try_from(gone).unwrap_or(0));
            if let Some(ttl) = meta.ttl_ms {
                // Reading it is an access, as locally (after the idle
                // time was read: it is the time before this access).
                s.keep_alive(kv.lease(), Duration::from_millis(ttl));
            }
        }
        let watchers = s.watchers.lock().get(id).copied().unwrap_or(0);
        Ok(codec::session_info(&meta, watchers, idle))
    }

    /// Deletes the session and everything in it, in one etcd revision; its
    /// watches, in every process, end with `SessionClosed`.
    ///
    /// # Errors
    ///
    /// [`Error::SessionNotFound`], [`Error::Transport`].
    pub(super) async fn delete_session(&self, id: &str) -> Result<()> {
        Shared::existing(id)?;
        let s = self;
        let kv = s.meta_kv(id).await?;
        let (incarnation, lease) = (kv.create_revision(), kv.lease());
        let txn = Txn::new()
            .when([Compare::create_revision(
                s.keys.meta(id),
                CompareOp::Equal,
                incarnation,
            )])
            .and_then([
                TxnOp::delete(s.keys.dir(id), Some(DeleteOptions::new().with_prefix())),
                TxnOp::delete(s.keys.list(id), None),
            ]);
        let result = s.conn.write_txn(txn).await;
        s.cache.lock().forget(id);
        match result {
            Ok((resp, _)) if resp.succeeded() => {}
            // Gone after a copy whose answer was lost: that copy deleted it,
            // or someone else did — either way what was asked is done.
            Ok((_, true)) => {}
            Ok((_, false)) => return Err(Shared::gone(id)), // deleted (and perhaps created again) meanwhile
            Err(Failed::Refused(e)) => return Err(e),
            Err(Failed::Lost { error, sent }) => return Err(lost(id, error, sent)),
        }
        s.revoke(lease);
        Ok(())
    }

    /// The ids of all sessions, sorted.
    ///
    /// # Errors
    ///
    /// [`Error::Transport`].
    pub(super) async fn list_sessions(&self) -> Result<Vec<String>> {
        let s = self;
        let kvs = super::cut::read_range(&s.conn, s.keys.list_dir().into_bytes(), true).await?;
        let mut ids: Vec<String> = kvs
            .iter()
            .filter_map(|kv| s.keys.session_of_list_key(kv.key()))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Registers a variable; returns its id (`var_` and a number unique in
    /// the store, never reused).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], [`Error::InvalidConstraints`],
    /// [`Error::InvalidValue`], [`Error::VariableExists`],
    /// [`Error::SessionNotFound`], [`Error::Transport`].
    pub(super) async fn register(&self, session: &str, def: VarDef) -> Result<String> {
        Ok(self
            .register_all(session, vec![def], false)
            .await?
            .pop()
            .expect("one id per definition"))
    }

    /// Registers every definition under one revision, or none (every
    /// failure is listed in one [`Error::BatchRejected`]).
    ///
    /// # Errors
    ///
    /// [`Error::BatchRejected`], [`Error::SessionNotFound`],
    /// [`Error::Transport`].
    pub(super) async fn import(&self, session: &str, defs: Vec<VarDef>) -> Result<Vec<String>> {
        self.register_all(session, defs, true).await
    }

    async fn register_all(&self, session: &str, defs: Vec<VarDef>, batch: bool) -> Result<Vec<String>> {
        Shared::existing(session)?;
        let names: Vec<String> = {
            let mut n: Vec<String> = defs
                .iter()
                .filter(|d| check_var_name(&d.name).is_ok())
                .map(|d| d.name.clone())
                .collect();
            n.sort();
            n.dedup();
            n
        };
        let s = self;
        let reads = Reads {
            session,
            names: &names,
            with_ids: true,
            unresolved: &[],
        };
        let registered = s
            .write(&reads, |snap| {
                // The checks and their order are the local store's
                // (`Session::register`).
                let mut checked: Vec<Result<Value>> = defs.iter().map(|d| check_def(session, d)).collect();
                let mut first_use = HashMap::new();
                for (i, def) in defs.iter().enumerate() {
                    if *first_use.entry(def.name.as_str()).or_insert(i) != i && checked[i].is_ok() {
                        checked[i] = Err(Error::DuplicateInBatch {
                            session: session.to_string(),
                            variable: def.name.clone(),
                        });
                    }
                }
                for (def, c) in defs.iter().zip(checked.iter_mut()) {
                    if c.is_ok() && matches!(snap.vars.get(&def.name), Some(Some(_))) {
                        *c = Err(Error::VariableExists {
                            session: session.to_string(),
                            name: def.name.clone(),
                        });
                    }
                }
                let failures: Vec<(String, Error)> = defs
                    .iter()
                    .zip(checked.iter())
                    .filter_map(|(d, c)| c.as_ref().err().map(|e| (d.name.clone(), e.clone())))
                    .collect();
                if !failures.is_empty() {
                    return Err(failed(session, failures, batch));
                }
                if defs.is_empty() {
                    return Ok(Plan::Done(Vec::new()));
                }
                let (counter, _) = snap.ids.expect("read with ids");
                let revision = next_revision(snap)?;
                let last_id = counter
                    .checked_add(defs.len() as u64)
                    .ok_or_else(|| codec::corrupt(s.keys.ids().as_bytes(), "id counter"))?;
                let now = Some(time(SystemTime::now()));
                let put = snap.put_options();
                let mut w = Write {
                    compares: Vec::new(),
                    ops: Vec::with_capacity(defs.len() * 2),
                    meta: proto::SessionInfo {
                        revision,
                        variables: snap.meta.variables + defs.len() as u64,
                        ..snap.meta.clone()
                    },
                    vars: Vec::with_capacity(defs.len()),
                    ids: Some(last_id),
                };
                let mut ids = Vec::with_capacity(defs.len());
                for (i, (def, value)) in defs.iter().zip(checked).enumerate() {
                    let id = var_id(counter + 1 + i as u64);
                    let rec = proto::Variable {
                        id: id.clone(),
                        name: def.name.clone(),
                        r#type: var_type_to(def.var_type) as i32,
                        value: Some(value_to(&value.expect("checked"))),
                        constraints: Some(constraints_to(&def.constraints)),
                        metadata: metadata_to(&def.metadata),
                        version: 0,
                        revision,
                        created_at: now,
                        updated_at: now,
                        source: None,
                        change_metadata: Default::default(),
                    };
                    w.ops.push(TxnOp::put(
                        s.keys.var(session, &def.name),
                        encode(&rec),
                        put.clone(),
                    ));
                    w.ops.push(TxnOp::put(
                        s.keys.index(session, &id),
                        def.name.clone(),
                        put.clone(),
                    ));
                    w.vars.push((def.name.clone(), Some((rec, 1))));
                    ids.push(id);
                }
                Ok(Plan::Write(Box::new(w), ids))
            })
            .await?;
        // No ids to resolve here, so never `None`.
        registered.ok_or_else(|| s.contention(session))
    }

    /// The variable, by id or name, read at one revision.
    ///
    /// # Errors
    ///
    /// [`Error::SessionNotFound`], [`Error::VariableNotFound`],
    /// [`Error::Transport`].
    pub(super) async fn get(&self, session: &str, ident: &str) -> Result<Variable> {
        let mut got = self.get_many(session, &[ident]).await?;
        match got.found.pop() {
            Some((_, v)) => Ok(v),
            None => Err(Shared::not_found(session, ident)),
        }
    }

    /// Several variables at once, read in one etcd transaction: one
    /// consistent cut, at [`GetMany::revision`].
    ///
    /// # Errors
    ///
    /// [`Error::SessionNotFound`], [`Error::Transport`].
    pub(super) async fn get_many<S: AsRef<str>>(&self, session: &str, idents: &[S]) -> Result<GetMany> {
        Shared::existing(session)?;
        let idents: Vec<&str> = idents.iter().map(AsRef::as_ref).collect();
        let s = self;
        for _ in 0..MAX_ATTEMPTS {
            let names = s.names_of(session, &idents).await?;
            let wanted = distinct(&names);
            let unresolved = unresolved(&idents, &names);
            let reads = Reads {
                session,
                names: &wanted,
                with_ids: false,
                unresolved: &unresolved,
            };
            let snap = if reads.len() > s.config.max_txn_ops {
                None
            } else {
                match s.read(&reads).await {
                    Ok(snap) => Some(snap),
                    // More than one message: the paged read below.
                    Err(Error::LimitExceeded { .. }) => None,
                    Err(e) => return Err(e),
                }
            };
            let Some(snap) = snap else {
                // More than etcd reads in one transaction or sends in one
                // message: the whole session, in pages at one revision,
                // where ids and names both resolve.
                let cut = read_cut(&s.conn, &s.keys, session, None)
                    .await?
                    .ok_or_else(|| Shared::gone(session))?;
                let mut got = GetMany {
                    found: Vec::new(),
                    missing: Vec::new(),
                    revision: cut.meta.revision,
                };
                for ident in &idents {
                    let rec = cut.recs.iter().find(|(_, r)| {
                        if is_var_id(ident) {
                            r.id == *ident
                        } else {
                            r.name == *ident
                        }
                    });
                    match rec {
                        Some((key, r)) => got.found.push((ident.to_string(), codec::variable(key, r)?)),
                        None => got.missing.push(ident.to_string()),
                    }
                }
                return Ok(got);
            };
            if !snap.late.is_empty() {
                s.learn(session, &snap.late);
                continue; // an id registered since it was resolved
            }
            let mut found = Vec::new();
            let mut missing = Vec::new();
            for (ident, name) in idents.iter().zip(&names) {
                match lookup(&snap, name.as_ref(), ident) {
                    Some((rec, _)) => {
                        let key = s.keys.var(session, &rec.name);
                        found.push((ident.to_string(), codec::variable(key.as_bytes(), rec)?));
                    }
                    None => missing.push(ident.to_string()),
                }
            }
            return Ok(GetMany {
                found,
                missing,
                revision: snap.meta.revision,
            });
        }
        Err(s.contention(session))
    }

    /// The session's variables whose names match `pattern` (an anchored
    /// glob: `*`, `?`), in registration order, read at one etcd revision
    /// (with the session revision of that cut).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPattern`], [`Error::SessionNotFound`],
    /// [`Error::Transport`].
    pub(super) async fn list_variables(&self, session: &str, pattern: Option<&str>) -> Result<VarList> {
        if let Some(p) = pattern {
            check_pattern(p)?;
        }
        Shared::existing(session)?;
        let s = self;
        let cut = read_cut(&s.conn, &s.keys, session, None)
            .await?
            .ok_or_else(|| Shared::gone(session))?;
        if let (lease, Some(ttl)) = (cut.lease, cut.meta.ttl_ms)
            && lease != 0
        {
            s.keep_alive(lease, Duration::from_millis(ttl));
        }
        let mut vars = Vec::with_capacity(cut.recs.len());
        for (key, rec) in &cut.recs {
            if pattern.is_none_or(|p| glob_match(p, &rec.name)) {
                vars.push(codec::variable(key, rec)?);
            }
        }
        Ok(VarList::new(vars, cut.meta.revision))
    }

    /// Sets the variable with options; returns its new version. An
    /// `expected_version` is also a compare of the etcd transaction.
    ///
    /// # Errors
    ///
    /// [`Error::SessionNotFound`], [`Error::VariableNotFound`],
    /// [`Error::InvalidValue`], [`Error::VersionConflict`],
    /// [`Error::Transport`].
    pub(super) async fn update_with(
        &self,
        session: &str,
        ident: &str,
        value: Value,
        opts: &UpdateOptions,
    ) -> Result<u64> {
        let items = vec![(ident.to_string(), value, opts.expected_version)];
        Ok(self.update_items(session, items, opts, false).await?[0])
    }

    /// Applies every update or none, as one etcd transaction (one etcd
    /// revision, one session revision).
    ///
    /// # Errors
    ///
    /// [`Error::BatchRejected`] listing every failing item,
    /// [`Error::SessionNotFound`], [`Error::Transport`].
    pub(super) async fn update_atomic(
        &self,
        session: &str,
        updates: Vec<BatchUpdate>,
        opts: &UpdateOptions,
    ) -> Result<Vec<u64>> {
        let items = updates
            .into_iter()
            .map(|u| (u.ident, u.value, u.expected_version))
            .collect();
        self.update_items(session, items, opts, true).await
    }

    /// Applies each update on its own, in order (each its own transaction
    /// and revision, checked against what the items before it left).
    ///
    /// # Errors
    ///
    /// [`Error::SessionNotFound`] (the items' own errors are in the list),
    /// [`Error::Transport`].
    pub(super) async fn update_best_effort(
        &self,
        session: &str,
        updates: Vec<BatchUpdate>,
        opts: &UpdateOptions,
    ) -> Result<Vec<Result<u64>>> {
        let mut out = Vec::with_capacity(updates.len());
        let n = updates.len();
        for (i, u) in updates.into_iter().enumerate() {
            let what = format!(
                "item {i} of a best-effort batch, an update of `{}`",
                crate::error::q(&u.ident)
            );
            let result = self
                .update_items(session, vec![(u.ident, u.value, u.expected_version)], opts, false)
                .await
                .map_err(|e| match e {
                    Error::OutcomeUnknown { session, reason, .. } => Error::OutcomeUnknown {
                        session,
                        operation: what,
                        reason,
                    },
                    e => e,
                });
            match result {
                Ok(v) => out.push(Ok(v[0])),
                Err(e @ Error::SessionNotFound { .. }) => return Err(e),
                // The way to etcd failed: what committed before stands and
                // is reported; this item's outcome is as its error says
                // (unknown, or never sent); the rest are not sent.
                Err(e @ (Error::Transport { .. } | Error::OutcomeUnknown { .. })) => {
                    let reason = e.to_string();
                    out.push(Err(e));
                    for _ in i + 1..n {
                        out.push(Err(Error::Transport {
                            addr: self.conn.endpoints.clone(),
                            reason: format!("not sent: item {i} of the batch failed first ({reason})"),
                            source: None,
                        }));
                    }
                    break;
                }
                Err(e) => out.push(Err(e)),
            }
        }
        Ok(out)
    }

    async fn update_items(
        &self,
        session: &str,
        items: Vec<(String, Value, Option<u64>)>,
        opts: &UpdateOptions,
        batch: bool,
    ) -> Result<Vec<u64>> {
        Shared::existing(session)?;
        let s = self;
        let idents: Vec<&str> = items.iter().map(|(i, _, _)| i.as_str()).collect();
        s.write_resolving(session, &idents, |snap, names| {
            plan_updates(s, snap, session, &items, names, opts, batch)
        })
        .await
    }

    /// Deletes the variable; its watchers receive `Deleted`.
    ///
    /// # Errors
    ///
    /// [`Error::SessionNotFound`], [`Error::VariableNotFound`],
    /// [`Error::Transport`].
    pub(super) async fn delete_variable(&self, session: &str, ident: &str) -> Result<()> {
        Shared::existing(session)?;
        let s = self;
        s.write_resolving(session, &[ident], |snap, names| {
            let (rec, _) =
                lookup(snap, names[0].as_ref(), ident).ok_or_else(|| Shared::not_found(session, ident))?;
            let w = Write {
                compares: Vec::new(),
                ops: vec![
                    TxnOp::delete(s.keys.var(session, &rec.name), None),
                    TxnOp::delete(s.keys.index(session, &rec.id), None),
                ],
                meta: proto::SessionInfo {
                    revision: next_revision(snap)?,
                    variables: snap.meta.variables.saturating_sub(1),
                    ..snap.meta.clone()
                },
                vars: vec![(rec.name.clone(), None)],
                ids: None,
            };
            Ok(Plan::Write(Box::new(w), ()))
        })
        .await
    }

    /// Opens a watch: its states at one etcd revision R (unless
    /// `include_initial` is off), then every change after R, in order (see
    /// `watch.rs`).
    ///
    /// # Errors
    ///
    /// [`Error::SessionNotFound`], [`Error::VariablesNotFound`] (every
    /// unknown identifier), [`Error::InvalidOption`] (no identifiers, a
    /// capacity of 0, a zero throttle), [`Error::Transport`].
    async fn open_watch(
        self: Arc<Self>,
        inner: Arc<Inner>,
        session: String,
        target: WatchTarget,
        opts: WatchOptions,
    ) -> Result<Watch> {
        opts.check()?;
        Shared::existing(&session)?;
        let idents = match target {
            WatchTarget::Variables(idents) if idents.is_empty() => {
                return Err(Error::InvalidOption("a watch needs at least one variable".into()));
            }
            WatchTarget::Variables(idents) => Some(idents),
            WatchTarget::Session => None,
        };
        watch::open(inner, self, session, idents, opts).await
    }

    /// Runs one request of the operation table.
    /// Runs `request` within its deadline; a write whose outcome is
    /// unknown is named after the request (the rule every client uses).
    async fn run(&self, request: Request) -> Result<Response> {
        let write = request.as_write();
        let deadline = Instant::now() + self.config.call_timeout;
        // A safety net past the deadline every round trip keeps.
        let limit = self.config.call_timeout + self.config.attempt_timeout;
        let result = tokio::time::timeout(limit, with_deadline(deadline, self.run_op(request))).await;
        match (result, write) {
            (Ok(Err(Error::OutcomeUnknown { session, reason, .. })), Some((_, operation))) => {
                Err(Error::OutcomeUnknown {
                    session,
                    operation,
                    reason,
                })
            }
            (Ok(r), _) => r,
            (Err(_), Some((session, operation))) => Err(Error::OutcomeUnknown {
                session,
                operation,
                reason: format!("no answer from etcd within {:?}", self.config.call_timeout),
            }),
            (Err(_), None) => Err(self.deadline()),
        }
    }

    async fn run_op(&self, request: Request) -> Result<Response> {
        Ok(match request {
            Request::CreateSession { session, options } => {
                Response::Session(self.create_session(&session, options).await?)
            }
            Request::GetOrCreateSession { session, options } => {
                Response::Session(self.get_or_create_session(&session, options).await?)
            }
            Request::GetSession { session } => Response::Session(self.session(&session).await?),
            Request::DeleteSession { session } => {
                self.delete_session(&session).await?;
                Response::Done
            }
            Request::ListSessions => Response::Sessions(self.list_sessions().await?),
            Request::Register { session, def } => Response::Registered(self.register(&session, def).await?),
            Request::Get { session, variable } => Response::Variable(self.get(&session, &variable).await?),
            Request::GetMany { session, variables } => {
                Response::Many(self.get_many(&session, &variables).await?)
            }
            Request::ListVariables { session, pattern } => {
                Response::Variables(self.list_variables(&session, pattern.as_deref()).await?)
            }
            Request::Update {
                session,
                variable,
                value,
                options,
            } => Response::Version(self.update_with(&session, &variable, value, &options).await?),
            Request::UpdateMany {
                session,
                items,
                options,
                atomic: true,
            } => Response::Items(
                self.update_atomic(&session, items, &options)
                    .await?
                    .into_iter()
                    .map(Ok)
                    .collect(),
            ),
            Request::UpdateMany {
                session,
                items,
                options,
                atomic: false,
            } => Response::Items(self.update_best_effort(&session, items, &options).await?),
            Request::DeleteVariable { session, variable } => {
                self.delete_variable(&session, &variable).await?;
                Response::Done
            }
            Request::Import { session, defs } => Response::Imported(self.import(&session, defs).await?),
        })
    }
}

/// Plans a batch of updates (see `Shared::update_items`): every item
/// checked against `snap` as a local write checks it under the session's
/// lock.
fn plan_updates(
    s: &Shared,
    snap: &Snap,
    session: &str,
    items: &[(String, Value, Option<u64>)],
    names: &[Option<String>],
    opts: &UpdateOptions,
    batch: bool,
) -> Result<Plan<Vec<u64>>> {
    let revision = next_revision(snap)?;
    let mut failures = Vec::new();
    let mut results = Vec::with_capacity(items.len());
    let mut changes: Vec<(&Stored, Value)> = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut compares = Vec::new();
    for (i, ((ident, value, expected), name)) in items.iter().zip(names).enumerate() {
        let checked = (|| {
            let stored =
                lookup(snap, name.as_ref(), ident).ok_or_else(|| Shared::not_found(session, ident))?;
            let rec = &stored.0;
            let key = s.keys.var(session, &rec.name);
            let ty = var_type(&key, rec)?;
            let constraints = constraints_from(rec.constraints.clone())
                .map_err(|_| codec::corrupt(key.as_bytes(), "variable"))?;
            let value = validate(ty, &constraints, value.clone()).map_err(|reason| Error::InvalidValue {
                session: session.to_string(),
                variable: rec.name.clone(),
                reason,
            })?;
            if batch && *seen.entry(rec.id.as_str()).or_insert(i) != i {
                return Err(Error::DuplicateInBatch {
                    session: session.to_string(),
                    variable: ident.clone(),
                });
            }
            if let Some(exp) = expected.filter(|&e| e != rec.version) {
                return Err(Error::VersionConflict {
                    session: session.to_string(),
                    variable: rec.name.clone(),
                    expected: exp,
                    current: rec.version,
                });
            }
            if expected.is_some() {
                compares.push(Compare::version(key, CompareOp::Equal, stored.1));
            }
            Ok((stored, value))
        })();
        match checked {
            Err(e) => failures.push((ident.clone(), e)),
            Ok((stored, value)) => {
                let current = codec::value(b"", &stored.0.value)?;
                if current.is_identical(&value) {
                    results.push(stored.0.version); // the no-op rule
                } else {
                    let key = s.keys.var(session, &stored.0.name);
                    let next = stored
                        .0
                        .version
                        .checked_add(1)
                        .ok_or_else(|| codec::corrupt(key.as_bytes(), "variable"))?;
                    results.push(next);
                    changes.push((stored, value));
                }
            }
        }
    }
    if !failures.is_empty() {
        return Err(failed(session, failures, batch));
    }
    if changes.is_empty() {
        return Ok(Plan::Done(results));
    }
    let now = Some(time(SystemTime::now()));
    let put = snap.put_options();
    let mut w = Write {
        compares,
        ops: Vec::with_capacity(changes.len()),
        meta: proto::SessionInfo {
            revision,
            ..snap.meta.clone()
        },
        vars: Vec::with_capacity(changes.len()),
        ids: None,
    };
    for ((old, version), value) in changes {
        let rec = proto::Variable {
            value: Some(value_to(&value)),
            version: old.version + 1,
            revision,
            updated_at: now,
            source: opts.source.clone(),
            change_metadata: metadata_to(&opts.metadata),
            ..old.clone()
        };
        w.ops.push(TxnOp::put(
            s.keys.var(session, &rec.name),
            encode(&rec),
            put.clone(),
        ));
        w.vars.push((rec.name.clone(), Some((rec, version + 1))));
    }
    Ok(Plan::Write(Box::new(w), results))
}
