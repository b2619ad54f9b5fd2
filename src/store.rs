//! [`SessionStore`]: the root object. Owns the sessions, routes every
//! operation to its session, runs TTL expiry.
//!
//! Locking: the session map is a `RwLock<HashMap>`; lookups take its read
//! lock only long enough to clone the session's `Arc`, so sessions never
//! contend with each other (there is no global lock on the write path).
//! Everything inside a session is described in `session.rs`.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::{Condvar, Mutex as StdMutex, Weak};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::ident::{MAX_NAME_BYTES, check_session_id};
use crate::publish::Cached;
use crate::record::{Record, VarCell};
use crate::session::{
    GetMany, HashMap, Session, SessionInfo, SessionOptions, StoreCounters, UpdateOptions, VarDef, VarList,
    Variable,
};
use crate::sync::{Arc, AtomicUsize, Mutex, Ordering, RwLock};
use crate::value::Value;
use crate::watch::{Watch, WatchOptions, WatcherInfo, watcher_info};

/// Settings of a [`SessionStore`].
///
/// ```
/// use std::time::Duration;
/// use varwatch::{SessionStore, StoreConfig};
/// let store = SessionStore::with_config(
///     StoreConfig::new()
///         .max_sessions(100)
///         .default_ttl(Duration::from_secs(3600))
///         .sweep_interval(Duration::from_secs(60)),
/// );
/// # drop(store);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
#[must_use = "a configuration does nothing until passed to `SessionStore::with_config`"]
pub struct StoreConfig {
    /// Most sessions the store holds at once (`None`: no limit).
    pub max_sessions: Option<usize>,
    /// TTL of sessions created without one (`None`: they never expire).
    pub default_ttl: Option<Duration>,
    /// If set, a background thread removes expired sessions this often (at
    /// least every [`MIN_SWEEP_INTERVAL`]: shorter intervals are raised to
    /// it). It stops when the store is dropped.
    pub sweep_interval: Option<Duration>,
    /// The largest capacity a lossless watch may be granted, in records
    /// (larger requests get this much). A session's event log holds at most
    /// the largest capacity among its lossless watches, allocated as records
    /// arrive, and gives memory back when that watch goes. At least 1, at
    /// most 2^30.
    pub max_event_log: usize,
}

/// The shortest interval the TTL sweeper runs at (see
/// [`StoreConfig::sweep_interval`]).
pub const MIN_SWEEP_INTERVAL: Duration = Duration::from_millis(10);

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            max_sessions: None,
            default_ttl: None,
            sweep_interval: None,
            max_event_log: 1 << 20,
        }
    }
}

impl StoreConfig {
    /// The defaults: no session limit, no TTL, no sweeper, watch capacities
    /// up to 2^20.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets `max_sessions`.
    pub fn max_sessions(mut self, n: usize) -> Self {
        self.max_sessions = Some(n);
        self
    }
    /// Sets `default_ttl`.
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = Some(ttl);
        self
    }
    /// Sets `sweep_interval` (starts the background sweeper).
    pub fn sweep_interval(mut self, every: Duration) -> Self {
        self.sweep_interval = Some(every);
        self
    }
    /// Sets `max_event_log`.
    pub fn max_event_log(mut self, n: usize) -> Self {
        self.max_event_log = n.max(1);
        self
    }
}

/// Store-wide counters, from [`SessionStore::stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Live sessions.
    pub sessions: usize,
    /// Variables across all sessions.
    pub variables: usize,
    /// Live watches across all sessions.
    pub watchers: usize,
    /// Accepted variable changes since the store was created.
    pub updates: u64,
    /// Events delivered to watches since the store was created.
    pub events_sent: u64,
    /// A durable store's journal (feature `durable`): batches of changes
    /// recorded since it was opened. 0 for an in-memory store.
    pub journal_commits: u64,
    /// A durable store's journal: syncs made since it was opened (with
    /// `Durability::Always` (feature `durable`), group commit
    /// shares one among the writers that come together, so
    /// `journal_commits / journal_syncs` is the mean group). 0 for an
    /// in-memory store.
    pub journal_syncs: u64,
}

/// One item of a batch update: identifier, new value, and optionally the
/// version it must be at. `(ident, value)` tuples convert into it.
#[derive(Debug, Clone)]
#[non_exhaustive]
#[must_use = "an update does nothing until passed to a batch"]
pub struct BatchUpdate {
    /// Variable id or name.
    pub ident: String,
    /// The new value.
    pub value: Value,
    /// Apply only at this version.
    pub expected_version: Option<u64>,
}

impl BatchUpdate {
    /// An item with no version expectation.
    pub fn new(ident: impl Into<String>, value: impl Into<Value>) -> Self {
        BatchUpdate {
            ident: ident.into(),
            value: value.into(),
            expected_version: None,
        }
    }
    /// Sets the expected version.
    pub fn expected_version(mut self, v: u64) -> Self {
        self.expected_version = Some(v);
        self
    }
}

impl<I: Into<String>, V: Into<Value>> From<(I, V)> for BatchUpdate {
    fn from((ident, value): (I, V)) -> Self {
        BatchUpdate::new(ident, value)
    }
}

/// A handle for reading one variable's current state, from
/// [`SessionStore::reader`]. It keeps reading the last state once the
/// variable is deleted; see [`VarReader::is_deleted`].
///
/// A reader remembers the state it last returned: while the variable has
/// not changed since, [`load`](Self::load) is one atomic load and one
/// reference-count increment, without touching the variable's lock, so
/// many threads reading one hot variable do not contend on more than the
/// state's reference count. The memory is per handle: clone one for each
/// thread (a clone starts empty). The state it remembers stays allocated
/// until the handle reads a newer one or is dropped.
#[must_use]
pub struct VarReader {
    /// Weak: a reader left alive does not keep a deleted session's memory.
    session: Weak<Session>,
    session_id: Arc<str>,
    cell: Arc<VarCell>,
    cache: Mutex<Cached<Record>>,
}

impl Clone for VarReader {
    fn clone(&self) -> Self {
        VarReader {
            session: self.session.clone(),
            session_id: self.session_id.clone(),
            cell: self.cell.clone(),
            cache: Mutex::new(Cached::default()),
        }
    }
}

impl VarReader {
    fn new(session: &Arc<Session>, cell: Arc<VarCell>) -> VarReader {
        VarReader {
            session: Arc::downgrade(session),
            session_id: session.id.clone(),
            cell,
            cache: Mutex::new(Cached::default()),
        }
    }

    /// The current state (one reference-count increment).
    pub fn load(&self) -> Variable {
        Variable {
            record: self.cell.current.load_cached(&mut self.cache.lock()),
        }
    }
    /// Runs `f` on the current value (the state is held for the call: one
    /// reference-count increment, nothing copied; no lock is held while `f`
    /// runs).
    pub fn with_value<R>(&self, f: impl FnOnce(&Value) -> R) -> R {
        f(self.load().value())
    }
    /// The current version.
    pub fn version(&self) -> u64 {
        self.load().version()
    }
    /// Whether the variable has been deleted (its session closed does not
    /// count; check the session for that).
    pub fn is_deleted(&self) -> bool {
        self.load().record.kind == crate::record::RecordKind::Deleted
    }

    /// Watches this variable: the same as [`SessionStore::watch`] with this
    /// one variable, without looking its session and name up again (the
    /// cheap way to subscribe many times).
    ///
    /// A reader belongs to the variable it was taken for, in the session
    /// that held it then: once either is deleted, the reader is stale for
    /// good — even if a session or a variable of the same name is created
    /// again, which a new reader (from [`SessionStore::reader`]) would follow.
    ///
    /// # Errors
    ///
    /// [`Error::VariablesNotFound`] once the variable has been deleted,
    /// [`Error::SessionNotFound`] once its session has been deleted (both
    /// name the reader's own variable and session), and the errors of
    /// [`WatchOptions`] checks ([`Error::InvalidOption`]).
    ///
    /// ```
    /// use varwatch::{SessionOptions, SessionStore, VarDef, VarType, WatchOptions};
    /// let store = SessionStore::new();
    /// store.create_session("s", SessionOptions::new())?;
    /// store.register("s", VarDef::new("x", VarType::Integer, 1))?;
    /// let reader = store.reader("s", "x")?;
    /// let mut watch = reader.watch(WatchOptions::new())?;
    /// store.update("s", "x", 2)?;
    /// assert_eq!(watch.recv().unwrap().version(), 0); // the initial state
    /// assert_eq!(watch.recv().unwrap().version(), 1);
    /// # Ok::<(), varwatch::Error>(())
    /// ```
    pub fn watch(&self, opts: WatchOptions) -> Result<Watch> {
        let Some(session) = self.session.upgrade() else {
            return Err(Error::SessionNotFound {
                session: self.session_id.to_string(),
            });
        };
        session.touch();
        Watch::subscribe_cell(session, &self.cell, opts)
    }
}

impl fmt::Debug for VarReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("VarReader").field(&self.load()).finish()
    }
}

/// A handle for writing one variable without resolving its session and name
/// on each write, from [`SessionStore::writer`]. Writes behave exactly like
/// [`SessionStore::update_with`]; once the variable or its session is gone
/// they fail with [`Error::VariableNotFound`] or [`Error::SessionNotFound`].
#[derive(Clone)]
#[must_use]
pub struct VarWriter {
    session: Arc<Session>,
    cell: Arc<VarCell>,
}

impl VarWriter {
    /// Sets the value; returns the new version (see [`SessionStore::update`]).
    pub fn set(&self, value: impl Into<Value>) -> Result<u64> {
        self.set_with(value, &UpdateOptions::default())
    }

    /// Sets the value with options (see [`SessionStore::update_with`]).
    pub fn set_with(&self, value: impl Into<Value>, opts: &UpdateOptions) -> Result<u64> {
        self.session.touch();
        self.session.update_one(&self.cell, value.into(), opts)
    }
}

impl fmt::Debug for VarWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VarWriter")
            .field("session", &&*self.session.id)
            .field("variable", &&*self.cell.meta.name)
            .finish()
    }
}

struct Sweeper {
    stop: std::sync::Arc<(StdMutex<bool>, Condvar)>,
}

/// Sessions, sharded by id so that operations on different sessions do not
/// even share a lock word (a single `RwLock`'s reader count is one cache line
/// that every thread would write).
type Shard = RwLock<HashMap<Arc<str>, Arc<Session>>>;

struct SessionMap {
    shards: Box<[Shard]>,
    hasher: foldhash::fast::RandomState,
    /// Number of sessions, for `max_sessions`.
    count: AtomicUsize,
}

const SHARDS: usize = 32;

impl SessionMap {
    fn new() -> SessionMap {
        SessionMap {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::default())).collect(),
            hasher: Default::default(),
            count: AtomicUsize::new(0),
        }
    }

    fn shard(&self, id: &str) -> &Shard {
        &self.shards[self.hasher.hash_one(id) as usize % SHARDS]
    }

    fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.shard(id).read().get(id).cloned()
    }

    /// Runs `f` on session `id` under its shard's read lock, without
    /// taking a reference to the session (the hot by-name paths). `f` may
    /// take the session's own locks: nothing takes a shard's lock while
    /// holding a session's (lock order: shard, then session).
    fn with<R>(&self, id: &str, f: impl FnOnce(&Session) -> R) -> Option<R> {
        self.shard(id).read().get(id).map(|s| f(s))
    }

    fn all(&self) -> Vec<Arc<Session>> {
        self.shards
            .iter()
            .flat_map(|s| s.read().values().cloned().collect::<Vec<_>>())
            .collect()
    }

    /// Removes every session for which `pred` holds.
    fn remove_where(&self, pred: impl Fn(&Session) -> bool) -> Vec<Arc<Session>> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            shard.write().retain(|_, s| {
                if pred(s) {
                    out.push(s.clone());
                    false
                } else {
                    true
                }
            });
        }
        self.count.fetch_sub(out.len(), Ordering::AcqRel);
        out
    }
}

/// The durable part of a store: its journal and directory lock (none for
/// an in-memory store, and nothing at all without feature `durable`).
#[cfg(all(feature = "durable", not(loom)))]
type DurablePart = Option<std::sync::Arc<crate::durable::Durable>>;
#[cfg(all(feature = "durable", not(loom)))]
const IN_MEMORY: DurablePart = None;
#[cfg(not(all(feature = "durable", not(loom))))]
struct DurablePart;
#[cfg(not(all(feature = "durable", not(loom))))]
const IN_MEMORY: DurablePart = DurablePart;

struct StoreInner {
    sessions: SessionMap,
    config: StoreConfig,
    counters: Arc<StoreCounters>,
    sweeper: Option<Sweeper>,
    /// The journal of a store opened on a directory (`SessionStore::open`),
    /// and the lock that keeps the directory ours.
    #[cfg(all(feature = "durable", not(loom)))]
    durable: DurablePart,
}

impl Drop for StoreInner {
    fn drop(&mut self) {
        if let Some(s) = &self.sweeper {
            *s.stop.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
            s.stop.1.notify_all();
        }
        // Watches outlive the store (they hold their session); tell them.
        for session in self.sessions.remove_where(|_| true) {
            session.close();
        }
    }
}

/// The root object: sessions of typed, versioned variables, and watches on
/// them.
///
/// Cheap to clone (an `Arc`); clones share the same sessions. Every method
/// takes `&self` and is safe to call from any number of threads. Dropping the
/// last clone closes every session (watches receive
/// [`EventKind::SessionClosed`](crate::EventKind::SessionClosed)).
///
/// ```
/// use varwatch::{SessionStore, SessionOptions, VarDef, VarType};
/// let store = SessionStore::new();
/// store.create_session("s1", SessionOptions::new())?;
/// store.register("s1", VarDef::new("temperature", VarType::Float, 0.7))?;
/// assert_eq!(store.update("s1", "temperature", 0.9)?, 1);
/// assert_eq!(store.value("s1", "temperature")?.as_f64(), Some(0.9));
/// # Ok::<(), varwatch::Error>(())
/// ```
#[derive(Clone)]
pub struct SessionStore {
    inner: Arc<StoreInner>,
}

impl Default for SessionStore {
    fn default() -> Self {
        SessionStore::new()
    }
}

impl fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStore")
            .field("sessions", &self.inner.sessions.count.load(Ordering::Relaxed))
            .finish()
    }
}

impl SessionStore {
    /// A store with the default [`StoreConfig`].
    pub fn new() -> SessionStore {
        SessionStore::with_config(StoreConfig::default())
    }

    /// A store with `config`; starts the sweeper thread if
    /// `config.sweep_interval` is set.
    pub fn with_config(config: StoreConfig) -> SessionStore {
        SessionStore::build(config, IN_MEMORY)
    }

    /// A store with `config` and, for a durable one, its journal.
    fn build(mut config: StoreConfig, durable: DurablePart) -> SessionStore {
        // The fields are public: keep them in range here.
        config.max_event_log = config.max_event_log.clamp(1, 1 << 30);
        config.sweep_interval = config.sweep_interval.map(|d| d.max(MIN_SWEEP_INTERVAL));
        let interval = config.sweep_interval;
        let stop = std::sync::Arc::new((StdMutex::new(false), Condvar::new()));
        let inner = Arc::new(StoreInner {
            sessions: SessionMap::new(),
            config,
            counters: Arc::new(StoreCounters::default()),
            sweeper: interval.map(|_| Sweeper { stop: stop.clone() }),
            #[cfg(all(feature = "durable", not(loom)))]
            durable,
        });
        #[cfg(not(all(feature = "durable", not(loom))))]
        let DurablePart = durable;
        if let Some(every) = interval {
            let weak = Arc::downgrade(&inner);
            std::thread::Builder::new()
                .name("varwatch-sweeper".into())
                .spawn(move || sweep_loop(weak, stop, every))
                .expect("spawn the varwatch sweeper thread");
        }
        SessionStore { inner }
    }

    /// The store's settings (as clamped by [`with_config`](Self::with_config)).
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    fn lookup(&self, id: &str) -> Result<Arc<Session>> {
        self.inner.sessions.get(id).ok_or_else(|| Error::SessionNotFound {
            session: id.to_string(),
        })
    }

    /// Looks a session up and marks it accessed.
    fn session_touched(&self, id: &str) -> Result<Arc<Session>> {
        let s = self.lookup(id)?;
        s.touch();
        Ok(s)
    }

    // ----- sessions -------------------------------------------------------

    /// Creates a session; [`Error::SessionExists`] if the id is taken,
    /// [`Error::SessionQuotaExceeded`] if the store is full.
    pub fn create_session(&self, id: &str, opts: SessionOptions) -> Result<SessionInfo> {
        self.create(id, opts, false)
    }

    /// Returns the session, creating it if it does not exist (idempotent,
    /// race-free: concurrent callers all get the same session).
    pub fn get_or_create_session(&self, id: &str, opts: SessionOptions) -> Result<SessionInfo> {
        self.create(id, opts, true)
    }

    fn create(&self, id: &str, mut opts: SessionOptions, existing_ok: bool) -> Result<SessionInfo> {
        check_session_id(id)?;
        let map = &self.inner.sessions;
        let mut sessions = map.shard(id).write();
        if let Some(s) = sessions.get(id) {
            return if existing_ok {
                s.touch();
                Ok(s.info())
            } else {
                Err(Error::SessionExists {
                    session: id.to_string(),
                })
            };
        }
        // Reserve a place under the quota (other shards create concurrently).
        let max = self.inner.config.max_sessions.unwrap_or(usize::MAX);
        if map
            .count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_err()
        {
            return Err(Error::SessionQuotaExceeded {
                session: id.to_string(),
                max,
            });
        }
        if opts.ttl.is_none() {
            opts.ttl = self.inner.config.default_ttl;
        }
        #[allow(unused_mut)]
        let mut session = Session::new(
            id,
            opts,
            self.inner.config.max_event_log,
            self.inner.counters.clone(),
        );
        #[cfg(all(feature = "durable", not(loom)))]
        {
            session.durable = self.inner.durable.clone();
        }
        // Recorded before anyone can see it (durable stores).
        if let Err(e) = session.journal_create() {
            map.count.fetch_sub(1, Ordering::AcqRel);
            return Err(e);
        }
        let session = Arc::new(session);
        sessions.insert(session.id.clone(), session.clone());
        Ok(session.info())
    }

    /// The session's facts; marks it accessed.
    pub fn session(&self, id: &str) -> Result<SessionInfo> {
        Ok(self.session_touched(id)?.info())
    }

    /// Whether the session exists (does not count as an access).
    pub fn session_exists(&self, id: &str) -> bool {
        self.inner.sessions.shard(id).read().contains_key(id)
    }

    /// Deletes the session and its variables; its watches receive
    /// [`EventKind::SessionClosed`](crate::EventKind::SessionClosed) and end.
    pub fn delete_session(&self, id: &str) -> Result<()> {
        let map = &self.inner.sessions;
        let removed = {
            let mut sessions = map.shard(id).write();
            let Some(s) = sessions.get(id) else {
                return Err(Error::SessionNotFound {
                    session: id.to_string(),
                });
            };
            // Recorded before anyone can see it (durable stores).
            s.journal_delete(true)?;
            let s = sessions.remove(id).expect("looked up above");
            map.count.fetch_sub(1, Ordering::AcqRel);
            s
        };
        removed.close();
        Ok(())
    }

    /// The ids of all sessions, sorted.
    pub fn list_sessions(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .inner
            .sessions
            .all()
            .iter()
            .map(|s| s.id.to_string())
            .collect();
        ids.sort();
        ids
    }

    /// Removes every session idle for longer than its TTL, closing its
    /// watches. Returns how many were removed.
    pub fn cleanup_expired(&self) -> usize {
        cleanup(&self.inner)
    }

    // ----- variables ------------------------------------------------------

    /// Registers a variable and returns its id. The name must be valid and
    /// new in the session ([`Error::InvalidName`], [`Error::VariableExists`];
    /// a name may not have the form of an id, see [`VarDef::name`]); the
    /// constraints must fit the type and the value must satisfy them.
    pub fn register(&self, session: &str, def: VarDef) -> Result<String> {
        let mut ids = self.session_touched(session)?.register(vec![def], false)?;
        Ok(ids.pop().expect("one id per definition"))
    }

    /// The variable, by id or by name (an identifier of the form `var_<n>`
    /// is an id, any other a name: see [`VarDef::name`]); marks the session
    /// accessed.
    pub fn get(&self, session: &str, ident: &str) -> Result<Variable> {
        let cell = self.session_touched(session)?.resolve_or_err(ident)?;
        Ok(Variable {
            record: cell.current.load_full(),
        })
    }

    /// The variable's current value.
    pub fn value(&self, session: &str, ident: &str) -> Result<Value> {
        let cell = self.session_touched(session)?.resolve_or_err(ident)?;
        Ok(cell.current.with(|r| r.value.clone()))
    }

    /// A handle that writes the variable without looking it up each time.
    pub fn writer(&self, session: &str, ident: &str) -> Result<VarWriter> {
        let s = self.session_touched(session)?;
        let cell = s.resolve_or_err(ident)?;
        Ok(VarWriter { session: s, cell })
    }

    /// A handle that reads the variable's current state with no lock.
    pub fn reader(&self, session: &str, ident: &str) -> Result<VarReader> {
        let session = self.session_touched(session)?;
        let cell = session.resolve_or_err(ident)?;
        Ok(VarReader::new(&session, cell))
    }

    /// Sets the variable to `value`; returns its new version. Setting the
    /// value it already has (see [`Value::is_identical`]) is a no-op: no new
    /// version, no event; the current version is returned.
    pub fn update(&self, session: &str, ident: &str, value: impl Into<Value>) -> Result<u64> {
        self.update_with(session, ident, value, &UpdateOptions::default())
    }

    /// [`update`](Self::update) with options: an expected version
    /// ([`Error::VersionConflict`] if it is not current), a source and
    /// metadata for watchers.
    pub fn update_with(
        &self,
        session: &str,
        ident: &str,
        value: impl Into<Value>,
        opts: &UpdateOptions,
    ) -> Result<u64> {
        let value = value.into();
        self.inner
            .sessions
            .with(session, |s| {
                s.touch();
                let cell = s.resolve_or_err(ident)?;
                s.update_one(&cell, value, opts)
            })
            .unwrap_or_else(|| {
                Err(Error::SessionNotFound {
                    session: session.to_string(),
                })
            })
    }

    /// Applies every update or none, under one session revision; watchers
    /// receive the changes together. Every item is checked (type,
    /// constraints, existence, expected version; no variable named twice);
    /// if any fails, returns [`Error::BatchRejected`] listing every failing
    /// item with its own error, and nothing changes. Returns the new versions
    /// in request order (an item that sets the value a variable already has
    /// keeps its version, and an empty batch changes nothing).
    pub fn update_atomic<U: Into<BatchUpdate>>(
        &self,
        session: &str,
        updates: impl IntoIterator<Item = U>,
        opts: &UpdateOptions,
    ) -> Result<Vec<u64>> {
        let s = self.session_touched(session)?;
        let items = batch_items(updates);
        let results = s.update_many(items, true, opts)?;
        Ok(results
            .into_iter()
            .map(|r| r.expect("atomic batch succeeded"))
            .collect())
    }

    /// Applies each update on its own, in order: each is its own write (its
    /// own revision), checked against the state the items before it left
    /// (so two items expecting version 0 of the same variable give
    /// `[Ok(1), Err(VersionConflict { expected: 0, current: 1 })]`).
    /// Returns one result per item, in request order; the call itself fails
    /// only if the session is unknown.
    pub fn update_best_effort<U: Into<BatchUpdate>>(
        &self,
        session: &str,
        updates: impl IntoIterator<Item = U>,
        opts: &UpdateOptions,
    ) -> Result<Vec<Result<u64>>> {
        let s = self.session_touched(session)?;
        s.update_many(batch_items(updates), false, opts)
    }

    /// Deletes the variable; its watchers receive
    /// [`EventKind::Deleted`](crate::EventKind::Deleted).
    pub fn delete_variable(&self, session: &str, ident: &str) -> Result<()> {
        self.session_touched(session)?.delete_variable(ident)
    }

    /// The session's variables in registration order, optionally only those
    /// whose name matches `pattern`: an anchored glob where `*` matches any
    /// run of characters and `?` any one character (`temp_*`), at most
    /// [`MAX_PATTERN_BYTES`] long ([`Error::InvalidPattern`]). One
    /// consistent cut of the session.
    pub fn list_variables(&self, session: &str, pattern: Option<&str>) -> Result<VarList> {
        if let Some(p) = pattern {
            check_pattern(p)?;
        }
        let s = self.session_touched(session)?;
        s.variables(|c| pattern.is_none_or(|p| glob_match(p, &c.meta.name)))
    }

    /// Several variables at once, as one consistent cut (see
    /// [`GetMany::revision`]): those found (keyed by the identifier as given)
    /// and those missing, both in request order.
    pub fn get_many<S: AsRef<str>>(
        &self,
        session: &str,
        idents: impl IntoIterator<Item = S>,
    ) -> Result<GetMany> {
        let s = self.session_touched(session)?;
        let idents: Vec<S> = idents.into_iter().collect();
        Ok(s.get_many(&idents))
    }

    /// The session's variables as definitions (current value, constraints,
    /// metadata), for [`import`](Self::import) elsewhere.
    pub fn export(&self, session: &str) -> Result<Vec<VarDef>> {
        Ok(self
            .list_variables(session, None)?
            .iter()
            .map(VarDef::from)
            .collect())
    }

    /// Registers all `defs` (each validated like
    /// [`register`](Self::register); names distinct) under one revision, or
    /// none: if any fails, [`Error::BatchRejected`] lists every failing
    /// definition by name with its own error. Returns the new ids in order.
    pub fn import(&self, session: &str, defs: Vec<VarDef>) -> Result<Vec<String>> {
        self.session_touched(session)?.register(defs, true)
    }

    // ----- watching -------------------------------------------------------

    /// Watches the given variables (ids or names). Unknown identifiers are
    /// one [`Error::VariablesNotFound`] listing them all.
    ///
    /// Registration and the initial snapshot are atomic: see [`Watch`].
    pub fn watch<S: AsRef<str>>(
        &self,
        session: &str,
        idents: impl IntoIterator<Item = S>,
        opts: WatchOptions,
    ) -> Result<Watch> {
        let s = self.session_touched(session)?;
        let idents: Vec<S> = idents.into_iter().collect();
        Watch::subscribe(s, Some(&idents), opts)
    }

    /// Watches every variable of the session, including those registered
    /// later (their first event is [`EventKind::Initial`]) and deleted
    /// ones ([`EventKind::Deleted`]). Same guarantees as [`watch`](Self::watch).
    /// (A coalescing watch with initial states says nothing of a variable
    /// deleted before its initial state was delivered: see
    /// [`WatchOptions::coalesce`](crate::WatchOptions::coalesce).)
    ///
    /// [`EventKind::Initial`]: crate::EventKind::Initial
    /// [`EventKind::Deleted`]: crate::EventKind::Deleted
    pub fn watch_session(&self, session: &str, opts: WatchOptions) -> Result<Watch> {
        let s = self.session_touched(session)?;
        Watch::subscribe::<&str>(s, None, opts)
    }

    /// The live watches of a session and their counters.
    pub fn list_watchers(&self, session: &str) -> Result<Vec<WatcherInfo>> {
        let s = self.lookup(session)?;
        let tail = s.log.tail();
        let mut out = Vec::new();
        s.observers.for_each(|r| out.push(watcher_info(r, tail)));
        out.sort_by_key(|w| w.id);
        Ok(out)
    }

    /// Store-wide counters.
    pub fn stats(&self) -> StoreStats {
        let sessions = self.inner.sessions.all();
        let counters = &self.inner.counters;
        let mut events_sent = counters.retired_events.load(Ordering::Relaxed);
        for s in &sessions {
            s.observers
                .for_each(|r| events_sent += r.counters.delivered.load(Ordering::Relaxed));
        }
        StoreStats {
            sessions: sessions.len(),
            variables: sessions.iter().map(|s| s.variable_count()).sum(),
            watchers: sessions.iter().map(|s| s.observers.count()).sum(),
            updates: counters.retired_updates.load(Ordering::Relaxed)
                + sessions
                    .iter()
                    .map(|s| s.updates.load(Ordering::Relaxed))
                    .sum::<u64>(),
            events_sent,
            journal_commits: self.journal_counts().0,
            journal_syncs: self.journal_counts().1,
        }
    }

    /// Whether this store is on disk (its writes wait for the disk).
    #[cfg(all(feature = "durable", not(loom)))]
    pub(crate) fn is_durable(&self) -> bool {
        self.inner.durable.is_some()
    }

    /// The journal's (commits, syncs); zeros for an in-memory store.
    fn journal_counts(&self) -> (u64, u64) {
        #[cfg(all(feature = "durable", not(loom)))]
        if let Some(d) = &self.inner.durable {
            return d.counts();
        }
        (0, 0)
    }
}

/// A store on disk (feature `durable`, see [`crate::durable`]).
#[cfg(all(feature = "durable", not(loom)))]
impl SessionStore {
    /// Opens the durable store in `dir` (created if it does not exist):
    /// every session, variable, id, version and revision as it was when the
    /// last change was recorded, and from now on every accepted change
    /// recorded before anyone is told of it, as `options` say. Returns the
    /// store and what opening found (a torn tail cut off is reported there
    /// and logged).
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] naming the file (and byte offset) for a directory
    /// that cannot be read or written, one already open in another store
    /// (its `LOCK`), or a damaged snapshot or journal.
    pub fn open(
        dir: impl AsRef<std::path::Path>,
        config: StoreConfig,
        options: crate::durable::DurableOptions,
    ) -> Result<(SessionStore, crate::durable::Recovery)> {
        let dir = dir.as_ref();
        let (model, durable, recovery) = crate::durable::open(dir, options)?;
        if let Some((_file, _bytes)) = &recovery.torn {
            crate::trace::warning!(file = %_file.display(), bytes = _bytes, "cut off a torn journal tail (a write a crash interrupted)");
        }
        let store = SessionStore::build(config, Some(durable.clone()));
        let inner = &store.inner;
        inner
            .counters
            .next_var_id
            .store(model.last_var_id, Ordering::Relaxed);
        for m in model.sessions {
            let s = Arc::new(Session::restore(
                m,
                inner.config.max_event_log,
                inner.counters.clone(),
                durable.clone(),
            )?);
            inner.sessions.shard(&s.id).write().insert(s.id.clone(), s);
            inner.sessions.count.fetch_add(1, Ordering::AcqRel);
        }
        let weak = Arc::downgrade(&store.inner);
        // `None` once the store is gone: a compaction then writes nothing
        // (an empty snapshot would replace the whole journal).
        durable.set_state(Box::new(move || {
            let mut model = crate::durable::model::Model::default();
            let inner = weak.upgrade()?;
            {
                let mut sessions: Vec<_> = inner.sessions.all().iter().filter_map(|s| s.to_model()).collect();
                sessions.sort_by(|a, b| {
                    let id =
                        |m: &crate::durable::model::SessionModel| m.info.as_ref().map(|i| i.session.clone());
                    id(a).cmp(&id(b))
                });
                model.sessions = sessions;
                // Read after every session: no id in them is above it.
                model.last_var_id = inner.counters.next_var_id.load(Ordering::Relaxed);
            }
            Some(model)
        }));
        Ok((store, recovery))
    }

    /// Writes a snapshot of the whole store now and removes the journal it
    /// replaces (a durable store does this by itself every
    /// [`DurableOptions::compact_after`](crate::durable::DurableOptions)
    /// bytes; this is for a clean shutdown, or a test). Does nothing for a
    /// store in memory.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] if the snapshot cannot be written (the journal
    /// still holds everything).
    pub fn compact(&self) -> Result<()> {
        match &self.inner.durable {
            Some(d) => d.compact(),
            None => Ok(()),
        }
    }
}

fn batch_items<U: Into<BatchUpdate>>(
    updates: impl IntoIterator<Item = U>,
) -> Vec<(String, Value, Option<u64>)> {
    updates
        .into_iter()
        .map(|u| {
            let u = u.into();
            (u.ident, u.value, u.expected_version)
        })
        .collect()
}

fn cleanup(inner: &StoreInner) -> usize {
    let expired = inner.sessions.remove_where(Session::is_expired);
    for s in &expired {
        // Not waited for: an expiry the journal loses happens again.
        let _ = s.journal_delete(false);
        s.close();
    }
    expired.len()
}

fn sweep_loop(store: Weak<StoreInner>, stop: std::sync::Arc<(StdMutex<bool>, Condvar)>, every: Duration) {
    let (lock, cv) = &*stop;
    let mut stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        stopped = cv
            .wait_timeout(stopped, every)
            .unwrap_or_else(|e| e.into_inner())
            .0;
        if *stopped {
            return;
        }
        // Hold the store only while sweeping, so dropping it is never delayed.
        match store.upgrade() {
            Some(inner) => {
                drop(stopped);
                cleanup(&inner);
                drop(inner);
                stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
            }
            None => return,
        }
    }
}

/// The longest pattern [`SessionStore::list_variables`] accepts, in bytes
/// (the longest name, 256). Matching costs at most the
/// pattern's length times the name's per variable.
pub const MAX_PATTERN_BYTES: usize = MAX_NAME_BYTES;

pub(crate) fn check_pattern(pattern: &str) -> Result<()> {
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(Error::InvalidPattern {
            pattern: pattern.to_string(),
            reason: "must be at most 256 bytes long".into(),
        });
    }
    Ok(())
}

/// Anchored glob: `*` any run (possibly empty), `?` exactly one character;
/// everything else literal. Greedy, remembering only the last `*` (which is
/// enough for globs): O(pattern × name) at worst, no allocation.
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    // Where to resume after the last `*`: (pattern index after it, name
    // index it has absorbed up to).
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    star = Some((pi + 1, ni));
                    pi += 1;
                    continue;
                }
                b'?' => {
                    pi += 1;
                    ni += utf8_len(n[ni]);
                    continue;
                }
                _ => {
                    // Whole characters: both strings are UTF-8 and both
                    // indices sit on character boundaries.
                    let w = utf8_len(p[pi]);
                    if n[ni..].starts_with(&p[pi..pi + w]) {
                        pi += w;
                        ni += w;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, sn)) => {
                let sn = sn + utf8_len(n[sn]);
                star = Some((sp, sn));
                pi = sp;
                ni = sn;
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// The length of the UTF-8 character that starts with `lead`.
fn utf8_len(lead: u8) -> usize {
    match lead {
        0..0x80 => 1,
        0xC0..0xE0 => 2,
        0xE0..0xF0 => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn glob() {
        assert!(glob_match("temp_*", "temp_a"));
        assert!(glob_match("temp_*", "temp_"));
        assert!(!glob_match("temp_*", "my_temp_a"));
        assert!(glob_match("*temp*", "my_temp_a"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("a.c", "a.c"));
        assert!(!glob_match("a.c", "abc"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXbYbZc"));
        assert!(!glob_match("a*b*c", "aXbYbZ"));
        // Characters, not bytes.
        assert!(glob_match("?é?", "aéb"));
        assert!(glob_match("t°*", "t°C"));
        assert!(!glob_match("?", "é?"));
        assert!(glob_match("*ü", "über-ü"));
        assert!(!glob_match("", "a"));
        assert!(glob_match("", ""));
    }
}
