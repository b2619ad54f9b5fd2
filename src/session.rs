//! A session and its variables: the state, the public snapshots of it
//! ([`SessionInfo`], [`Variable`]), and every change, made under the session's
//! one write lock.
//!
//! # Locks of a session (always taken in this order)
//!
//! 1. `write` — serialises every change of the session: the revision counter,
//!    the set of variables, each variable's current record, and the order in
//!    which records enter the event log. Watches register (and take their
//!    snapshot) under it, which is the atomic-subscribe guarantee: no change
//!    can fall between a watch's registration and its snapshot.
//! 2. `index` — name/id → variable, written only while `write` is held, so
//!    lookups (`get`, `watch`) take only its read lock.
//! 3. the event log's ring lock, then the observer registry and waiter lists.
//!
//! A variable's current state is an `Arc<Record>` in an `ArcCell` (arc-swap):
//! replaced under `write`, read with no lock at all.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use crate::error::Error;
use crate::event_log::{Entry, EventLog};
use crate::observer::{ObserverManager, WaiterList};
use crate::sync::{Arc, ArcCell, AtomicBool, AtomicU64, Mutex, Ordering, RwLock, fence};
use crate::value::{Constraints, Value, VarType, validate};

/// Hash maps keyed by names and ids: foldhash is several times faster than
/// SipHash on short keys and still seeded per process.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Free-form string metadata of sessions, variables and changes.
pub type Metadata = BTreeMap<String, String>;

/// A variable's registration number within its session (never reused; 64
/// bits so that no amount of register/delete churn can wrap it).
pub(crate) type Slot = u64;

/// Immutable facts about a variable, shared by all its records.
pub(crate) struct VarMeta {
    pub(crate) id: Arc<str>,
    pub(crate) name: Arc<str>,
    pub(crate) var_type: VarType,
    pub(crate) constraints: Constraints,
    pub(crate) metadata: Arc<Metadata>,
    pub(crate) created_at: SystemTime,
    /// Registration order within the session; watches keep their tracked
    /// variables sorted by it.
    pub(crate) slot: Slot,
}

/// What a record says happened.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum RecordKind {
    Registered,
    Changed,
    Deleted,
    SessionClosed,
}

/// One state of one variable (or the closing of a session), as stored as the
/// variable's current state, appended to the event log and delivered.
pub(crate) struct Record {
    pub(crate) var: Arc<VarMeta>,
    pub(crate) kind: RecordKind,
    pub(crate) version: u64,
    pub(crate) revision: u64,
    /// The value after this change (the last value, for a deletion).
    pub(crate) value: Value,
    pub(crate) old_value: Option<Value>,
    pub(crate) source: Option<Arc<str>>,
    pub(crate) metadata: Option<Arc<Metadata>>,
    pub(crate) timestamp: SystemTime,
}

impl Record {
    /// A record about a variable known only by id and name, with no value
    /// (a session's end, a deletion noticed by a resuming remote watch).
    pub(crate) fn bare(
        kind: RecordKind,
        id: &str,
        name: &str,
        version: u64,
        revision: u64,
        slot: Slot,
    ) -> Record {
        Record {
            var: Arc::new(VarMeta {
                id: id.into(),
                name: name.into(),
                var_type: VarType::Boolean,
                constraints: Constraints::default(),
                metadata: Arc::default(),
                created_at: SystemTime::UNIX_EPOCH,
                slot,
            }),
            kind,
            version,
            revision,
            value: Value::Boolean(false),
            old_value: None,
            source: None,
            metadata: None,
            timestamp: SystemTime::now(),
        }
    }
}

/// A variable in a session: its facts, its current state and the watches
/// asleep on it.
pub(crate) struct VarCell {
    pub(crate) meta: Arc<VarMeta>,
    pub(crate) current: ArcCell<Record>,
    pub(crate) waiters: WaiterList,
}

/// A snapshot of one variable: what it is and its state at one version.
///
/// Cheap to clone (one reference count). Obtained from
/// [`SessionStore::get`](crate::SessionStore::get) and friends.
#[derive(Clone)]
pub struct Variable {
    pub(crate) record: Arc<Record>,
}

impl Variable {
    /// The variable's id: stable, unique in the store, never reused.
    pub fn id(&self) -> &str {
        &self.record.var.id
    }
    /// The variable's name, unique in its session.
    pub fn name(&self) -> &str {
        &self.record.var.name
    }
    /// The variable's type.
    pub fn var_type(&self) -> VarType {
        self.record.var.var_type
    }
    /// The value at [`version`](Self::version).
    pub fn value(&self) -> &Value {
        &self.record.value
    }
    /// The variable's constraints.
    pub fn constraints(&self) -> &Constraints {
        &self.record.var.constraints
    }
    /// The metadata given at registration.
    pub fn metadata(&self) -> &Metadata {
        &self.record.var.metadata
    }
    /// The version: 0 at registration, +1 per accepted change.
    pub fn version(&self) -> u64 {
        self.record.version
    }
    /// The session revision of the last change.
    pub fn revision(&self) -> u64 {
        self.record.revision
    }
    /// When the variable was registered (wall clock).
    pub fn created_at(&self) -> SystemTime {
        self.record.var.created_at
    }
    /// When the variable last changed (wall clock).
    pub fn updated_at(&self) -> SystemTime {
        self.record.timestamp
    }
    /// The source named by the last change, if it named one.
    pub fn source(&self) -> Option<&str> {
        self.record.source.as_deref()
    }
    /// The metadata carried by the last change.
    pub fn change_metadata(&self) -> Option<&Metadata> {
        self.record.metadata.as_deref()
    }
}

impl fmt::Debug for Variable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Variable")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("type", &self.var_type())
            .field("value", self.value())
            .field("version", &self.version())
            .finish()
    }
}

/// Everything needed to register a variable: name, type, initial value,
/// constraints and metadata. Also what [`SessionStore::export`] returns and
/// [`SessionStore::import`] takes.
///
/// ```
/// use varwatch::{Constraints, VarDef, VarType};
/// let def = VarDef::new("temperature", VarType::Float, 0.7)
///     .constraints(Constraints::new().min(0.0).max(2.0))
///     .metadata("unit", "none");
/// assert_eq!(def.name, "temperature");
/// ```
///
/// [`SessionStore::export`]: crate::SessionStore::export
/// [`SessionStore::import`]: crate::SessionStore::import
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct VarDef {
    /// The name, unique in the session.
    pub name: String,
    /// The type.
    pub var_type: VarType,
    /// The initial value (coerced to the type, then checked).
    pub value: Value,
    /// The constraints (must fit the type).
    pub constraints: Constraints,
    /// Free-form metadata.
    pub metadata: Metadata,
}

impl VarDef {
    /// A definition with no constraints and no metadata.
    pub fn new(name: impl Into<String>, var_type: VarType, value: impl Into<Value>) -> VarDef {
        VarDef {
            name: name.into(),
            var_type,
            value: value.into(),
            constraints: Constraints::default(),
            metadata: Metadata::new(),
        }
    }
    /// Sets the constraints.
    pub fn constraints(mut self, c: Constraints) -> VarDef {
        self.constraints = c;
        self
    }
    /// Adds one metadata entry.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> VarDef {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

/// Options of one update: optimistic concurrency, and what watchers are told
/// about where the change came from.
///
/// ```
/// use varwatch::UpdateOptions;
/// let opts = UpdateOptions::new().expected_version(3).source("optimizer").metadata("step", "12");
/// assert_eq!(opts.expected_version, Some(3));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct UpdateOptions {
    /// Apply only if the variable is at this version, else
    /// [`Error::VersionConflict`].
    pub expected_version: Option<u64>,
    /// Who made the change; watchers receive it.
    pub source: Option<String>,
    /// Metadata of the change; watchers receive it.
    pub metadata: Metadata,
}

impl UpdateOptions {
    /// No expectation, no source, no metadata.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets `expected_version`.
    pub fn expected_version(mut self, v: u64) -> Self {
        self.expected_version = Some(v);
        self
    }
    /// Sets `source`.
    pub fn source(mut self, s: impl Into<String>) -> Self {
        self.source = Some(s.into());
        self
    }
    /// Adds one metadata entry.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

/// A snapshot of a session's facts.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The session id.
    pub id: String,
    /// Metadata given at creation.
    pub metadata: Metadata,
    /// When the session was created (wall clock).
    pub created_at: SystemTime,
    /// When the session was last accessed (wall clock).
    pub last_accessed: SystemTime,
    /// Time since the session was last accessed.
    pub idle_for: Duration,
    /// The time-to-live, if any: idle longer than this and it expires.
    pub ttl: Option<Duration>,
    /// Number of accepted writes so far.
    pub revision: u64,
    /// Number of variables.
    pub variables: usize,
    /// Number of live watches.
    pub watchers: usize,
}

/// Options for creating a session.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SessionOptions {
    /// Expire after this long without access (default: the store's
    /// `default_ttl`, which is none).
    pub ttl: Option<Duration>,
    /// Metadata of the session.
    pub metadata: Metadata,
}

impl SessionOptions {
    /// Default options.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the TTL.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
    /// Adds one metadata entry.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

/// Checks a session id or variable name.
pub(crate) fn check_name(what: &'static str, name: &str) -> Result<(), Error> {
    let reason = if name.is_empty() {
        "must not be empty"
    } else if name.len() > 256 {
        "must be at most 256 bytes long"
    } else if name.chars().any(char::is_control) {
        "must not contain control characters"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        what,
        name: name.escape_debug().take(64).collect(),
        reason,
    })
}

struct WriteState {
    revision: u64,
    next_slot: Slot,
    /// The latest deletions, for resuming remote watches.
    #[cfg(feature = "transport")]
    tombstones: Tombstones,
}

/// The last [`Tombstones::KEEP`] deletions of a session: id → (name,
/// version of the deletion). A remote watch that resumes after a deletion
/// learns from it which versions it missed.
#[cfg(feature = "transport")]
#[derive(Default)]
struct Tombstones {
    by_id: HashMap<Arc<str>, (Arc<str>, u64)>,
    order: std::collections::VecDeque<Arc<str>>,
}

#[cfg(feature = "transport")]
impl Tombstones {
    const KEEP: usize = 4096;

    fn add(&mut self, id: Arc<str>, name: Arc<str>, version: u64) {
        if self.order.len() == Self::KEEP
            && let Some(old) = self.order.pop_front()
        {
            self.by_id.remove(&old);
        }
        self.order.push_back(id.clone());
        self.by_id.insert(id, (name, version));
    }
}

#[derive(Default)]
struct Index {
    by_id: HashMap<Arc<str>, Arc<VarCell>>,
    by_name: HashMap<Arc<str>, Arc<VarCell>>,
}

/// Counters and id source shared by all sessions of a store.
#[derive(Default)]
pub(crate) struct StoreCounters {
    pub(crate) next_var_id: AtomicU64,
    pub(crate) next_watch_id: AtomicU64,
    /// Updates and deliveries of sessions and watches that are gone (live
    /// ones keep their own counters, so that the hot paths never touch a
    /// store-wide cache line).
    pub(crate) retired_updates: AtomicU64,
    pub(crate) retired_events: AtomicU64,
}

/// One item of a batch, after resolution and validation.
struct Prepared {
    cell: Arc<VarCell>,
    value: Value,
}

pub(crate) struct Session {
    pub(crate) id: Arc<str>,
    pub(crate) metadata: Metadata,
    pub(crate) created_at: SystemTime,
    pub(crate) ttl: Option<Duration>,
    /// Random, and different for every session ever created (in this
    /// process or another): tells a resuming remote watch whether the
    /// session it followed is still the one of that name.
    #[cfg_attr(not(feature = "transport"), allow(dead_code))]
    pub(crate) incarnation: u64,
    epoch: Instant,
    /// Milliseconds since `epoch` of the last access.
    last_access: AtomicU64,
    write: Mutex<WriteState>,
    index: RwLock<Index>,
    revision: AtomicU64,
    /// Accepted variable changes, for the store's statistics.
    pub(crate) updates: AtomicU64,
    closed: AtomicBool,
    pub(crate) log: EventLog,
    pub(crate) observers: ObserverManager,
    pub(crate) counters: Arc<StoreCounters>,
}

/// A number no other session has had: a process-wide counter, hashed with
/// the process's random seed.
fn new_incarnation() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // Not a loom atomic: a process-wide id source, outside every model.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

impl Session {
    pub(crate) fn new(
        id: &str,
        opts: SessionOptions,
        log_capacity: usize,
        max_log_capacity: usize,
        counters: Arc<StoreCounters>,
    ) -> Session {
        let epoch = Instant::now();
        Session {
            id: id.into(),
            metadata: opts.metadata,
            created_at: SystemTime::now(),
            ttl: opts.ttl,
            incarnation: new_incarnation(),
            epoch,
            last_access: AtomicU64::new(0),
            write: Mutex::new(WriteState {
                revision: 0,
                next_slot: 0,
                #[cfg(feature = "transport")]
                tombstones: Tombstones::default(),
            }),
            index: RwLock::new(Index::default()),
            revision: AtomicU64::new(0),
            updates: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            log: EventLog::new(log_capacity, max_log_capacity),
            observers: ObserverManager::default(),
            counters,
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Marks the session as accessed now (resets its TTL clock). Without a
    /// TTL nothing depends on it, so the clock is not even read.
    pub(crate) fn touch(&self) {
        if self.ttl.is_some() {
            self.last_access.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    pub(crate) fn idle_for(&self) -> Duration {
        if self.ttl.is_none() {
            // Not tracked without a TTL (see `touch`): report the age.
            return self.epoch.elapsed();
        }
        Duration::from_millis(
            self.now_ms()
                .saturating_sub(self.last_access.load(Ordering::Relaxed)),
        )
    }

    pub(crate) fn is_expired(&self) -> bool {
        self.ttl.is_some_and(|ttl| self.idle_for() > ttl)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn info(&self) -> SessionInfo {
        SessionInfo {
            id: self.id.to_string(),
            metadata: self.metadata.clone(),
            created_at: self.created_at,
            last_accessed: SystemTime::now()
                .checked_sub(self.idle_for())
                .unwrap_or(SystemTime::UNIX_EPOCH),
            idle_for: self.idle_for(),
            ttl: self.ttl,
            revision: self.revision.load(Ordering::Acquire),
            variables: self.index.read().by_id.len(),
            watchers: self.observers.count(),
        }
    }

    pub(crate) fn variable_count(&self) -> usize {
        self.index.read().by_id.len()
    }

    fn not_found(&self, ident: &str) -> Error {
        Error::VariableNotFound {
            session: self.id.to_string(),
            variable: ident.to_string(),
        }
    }

    fn gone(&self) -> Error {
        Error::SessionNotFound {
            session: self.id.to_string(),
        }
    }

    /// Finds a variable by id, else by name (an id wins over an equal name).
    /// Whether a variable with this id (not name) exists.
    #[cfg(feature = "transport")]
    pub(crate) fn has_id(&self, id: &str) -> bool {
        self.index.read().by_id.contains_key(id)
    }

    pub(crate) fn resolve(&self, ident: &str) -> Option<Arc<VarCell>> {
        let index = self.index.read();
        // Ids all start with `var_`; anything else can only be a name.
        let by_id = if ident.starts_with("var_") {
            index.by_id.get(ident)
        } else {
            None
        };
        by_id.or_else(|| index.by_name.get(ident)).cloned()
    }

    pub(crate) fn resolve_or_err(&self, ident: &str) -> Result<Arc<VarCell>, Error> {
        self.resolve(ident).ok_or_else(|| self.not_found(ident))
    }

    /// Every live variable, in registration order.
    pub(crate) fn cells(&self) -> Vec<Arc<VarCell>> {
        let mut cells: Vec<_> = self.index.read().by_id.values().cloned().collect();
        cells.sort_by_key(|c| c.meta.slot);
        cells
    }

    fn invalid(&self, cell: &VarCell, reason: String) -> Error {
        Error::InvalidValue {
            session: self.id.to_string(),
            variable: cell.meta.name.to_string(),
            reason,
        }
    }

    fn validate_for(&self, cell: &VarCell, value: Value) -> Result<Value, Error> {
        validate(cell.meta.var_type, &cell.meta.constraints, value).map_err(|r| self.invalid(cell, r))
    }

    /// Checks a definition completely, before any lock is taken.
    fn check_def(&self, def: &VarDef) -> Result<Value, Error> {
        check_name("variable name", &def.name)?;
        def.constraints
            .check_for(def.var_type)
            .map_err(|reason| Error::InvalidConstraints {
                session: self.id.to_string(),
                variable: def.name.clone(),
                reason,
            })?;
        validate(def.var_type, &def.constraints, def.value.clone()).map_err(|reason| Error::InvalidValue {
            session: self.id.to_string(),
            variable: def.name.clone(),
            reason,
        })
    }

    /// Registers variables, all or none. Names must be new and distinct.
    pub(crate) fn register(&self, defs: Vec<VarDef>) -> Result<Vec<String>, Error> {
        let mut checked = Vec::with_capacity(defs.len());
        for def in &defs {
            checked.push(self.check_def(def)?);
        }
        let mut w = self.write.lock();
        if self.is_closed() {
            return Err(self.gone());
        }
        {
            let index = self.index.read();
            let mut seen = std::collections::HashSet::new();
            for def in &defs {
                if index.by_name.contains_key(def.name.as_str()) || !seen.insert(def.name.as_str()) {
                    return Err(Error::VariableExists {
                        session: self.id.to_string(),
                        name: def.name.clone(),
                    });
                }
            }
        }
        let now = SystemTime::now();
        w.revision += 1;
        let revision = w.revision;
        let mut ids = Vec::with_capacity(defs.len());
        let mut entries = Vec::with_capacity(defs.len());
        let mut index = self.index.write();
        for (def, value) in defs.into_iter().zip(checked) {
            let n = self.counters.next_var_id.fetch_add(1, Ordering::Relaxed) + 1;
            let id: Arc<str> = format!("var_{n}").into();
            let meta = Arc::new(VarMeta {
                id: id.clone(),
                name: def.name.into(),
                var_type: def.var_type,
                constraints: def.constraints,
                metadata: Arc::new(def.metadata),
                created_at: now,
                slot: w.next_slot,
            });
            w.next_slot += 1;
            let record = Arc::new(Record {
                var: meta.clone(),
                kind: RecordKind::Registered,
                version: 0,
                revision,
                value,
                old_value: None,
                source: None,
                metadata: None,
                timestamp: now,
            });
            let cell = Arc::new(VarCell {
                meta: meta.clone(),
                current: ArcCell::new(record.clone()),
                waiters: WaiterList::default(),
            });
            index.by_id.insert(id.clone(), cell.clone());
            index.by_name.insert(meta.name.clone(), cell.clone());
            entries.push(Entry {
                record,
                cell: Some(cell),
            });
            ids.push(id.to_string());
        }
        drop(index);
        self.revision.store(revision, Ordering::Release);
        let notify = self.observers.has_watchers();
        if notify {
            self.log.push(entries);
        }
        drop(w);
        if notify {
            fence(Ordering::SeqCst); // pairs with WaiterList::enqueue
            self.observers.session_waiters.wake_all_after_fence();
        }
        Ok(ids)
    }

    /// Applies `items` in order. Atomic: all are checked first and either all
    /// are applied under one revision or none is. Best-effort: each item is
    /// its own write (its own revision) and gets its own result.
    pub(crate) fn update_many(
        &self,
        items: Vec<(String, Value, Option<u64>)>,
        atomic: bool,
        opts: &UpdateOptions,
    ) -> Result<Vec<Result<u64, Error>>, Error> {
        // Resolve and validate outside the lock: a variable's type and
        // constraints never change, so this cannot go stale (a deletion in
        // between is caught under the lock).
        let mut prepared: Vec<Result<Prepared, Error>> = Vec::with_capacity(items.len());
        for (ident, value, _) in &items {
            prepared.push(self.resolve_or_err(ident).and_then(|cell| {
                self.validate_for(&cell, value.clone())
                    .map(|value| Prepared { cell, value })
            }));
        }
        if atomic {
            let mut seen = std::collections::HashSet::new();
            for p in prepared.iter().flatten() {
                if !seen.insert(p.cell.meta.slot) {
                    return Err(Error::DuplicateInBatch {
                        session: self.id.to_string(),
                        variable: p.cell.meta.name.to_string(),
                    });
                }
            }
        }
        let source: Option<Arc<str>> = opts.source.as_deref().map(Into::into);
        let metadata = (!opts.metadata.is_empty()).then(|| Arc::new(opts.metadata.clone()));
        let now = SystemTime::now();

        let mut w = self.write.lock();
        if self.is_closed() {
            return Err(self.gone());
        }
        // Under the lock: check liveness and expected versions.
        let mut results: Vec<Result<u64, Error>> = Vec::with_capacity(items.len());
        let mut changes: Vec<(Arc<VarCell>, Arc<Record>, Value)> = Vec::new();
        for ((ident, _, expected), p) in items.iter().zip(prepared) {
            let checked = p.and_then(|p| {
                let cur = p.cell.current.load_full();
                if cur.kind == RecordKind::Deleted {
                    return Err(self.not_found(ident));
                }
                if let Some(exp) = *expected {
                    if exp != cur.version {
                        return Err(Error::VersionConflict {
                            session: self.id.to_string(),
                            variable: p.cell.meta.name.to_string(),
                            expected: exp,
                            current: cur.version,
                        });
                    }
                }
                Ok((p, cur))
            });
            match checked {
                Ok((p, cur)) => {
                    results.push(Ok(cur.version));
                    changes.push((p.cell, cur, p.value));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        if atomic && results.iter().any(Result::is_err) {
            let failures = items
                .iter()
                .zip(results)
                .filter_map(|((ident, _, _), r)| r.err().map(|e| (ident.clone(), e)))
                .collect();
            return Err(Error::BatchRejected {
                session: self.id.to_string(),
                failures,
            });
        }

        let notify = self.observers.has_watchers();
        let mut entries = Vec::new();
        let mut woken = Vec::new();
        let mut revision = w.revision;
        let mut batch_revision = None;
        let mut changed = 0u64;
        let mut change_iter = changes.into_iter();
        for r in results.iter_mut() {
            let Ok(version) = r else { continue };
            let (cell, _, value) = change_iter.next().expect("one change per successful item");
            // Read again: in a best-effort batch an earlier item may have
            // changed the same variable.
            let cur = cell.current.load_full();
            if cur.value.is_identical(&value) {
                // The no-op rule: same value, no new version, no event.
                *version = cur.version;
                continue;
            }
            let rev = if atomic {
                *batch_revision.get_or_insert_with(|| {
                    revision += 1;
                    revision
                })
            } else {
                revision += 1;
                revision
            };
            let record = Arc::new(Record {
                var: cell.meta.clone(),
                kind: RecordKind::Changed,
                version: cur.version + 1,
                revision: rev,
                value,
                old_value: Some(cur.value.clone()),
                source: source.clone(),
                metadata: metadata.clone(),
                timestamp: now,
            });
            *version = record.version;
            changed += 1;
            cell.current.store(record.clone());
            if notify {
                entries.push(Entry { record, cell: None });
                woken.push(cell);
            }
        }
        w.revision = revision;
        self.revision.store(revision, Ordering::Release);
        if notify && !entries.is_empty() {
            self.log.push(entries);
        }
        drop(w);
        self.updates.fetch_add(changed, Ordering::Relaxed);
        if !woken.is_empty() {
            self.wake(&woken);
        }
        Ok(results)
    }

    /// One update: the hot path, without the batch machinery.
    pub(crate) fn update_one(
        &self,
        cell: &Arc<VarCell>,
        value: Value,
        opts: &UpdateOptions,
    ) -> Result<u64, Error> {
        let value = self.validate_for(cell, value)?;
        let now = SystemTime::now();
        let mut w = self.write.lock();
        let cur = cell.current.load_full();
        if cur.kind == RecordKind::Deleted || self.is_closed() {
            drop(w);
            return Err(if self.is_closed() {
                self.gone()
            } else {
                self.not_found(&cell.meta.name)
            });
        }
        if let Some(expected) = opts.expected_version {
            if expected != cur.version {
                return Err(Error::VersionConflict {
                    session: self.id.to_string(),
                    variable: cell.meta.name.to_string(),
                    expected,
                    current: cur.version,
                });
            }
        }
        if cur.value.is_identical(&value) {
            return Ok(cur.version); // the no-op rule
        }
        w.revision += 1;
        let record = Arc::new(Record {
            var: cell.meta.clone(),
            kind: RecordKind::Changed,
            version: cur.version + 1,
            revision: w.revision,
            value,
            old_value: Some(cur.value.clone()),
            source: opts.source.as_deref().map(Into::into),
            metadata: (!opts.metadata.is_empty()).then(|| Arc::new(opts.metadata.clone())),
            timestamp: now,
        });
        let version = record.version;
        self.revision.store(w.revision, Ordering::Release);
        let notify = self.observers.has_watchers();
        if notify {
            cell.current.store(record.clone());
            self.log.push([Entry { record, cell: None }]);
        } else {
            cell.current.store(record);
        }
        drop(w);
        // `cur` (the previous state) is released here, outside the lock.
        drop(cur);
        self.updates.fetch_add(1, Ordering::Relaxed);
        if notify {
            self.wake(std::slice::from_ref(cell));
        }
        Ok(version)
    }

    /// Wakes the watches asleep on `cells` and on the whole session.
    fn wake(&self, cells: &[Arc<VarCell>]) {
        // The log was appended to before this; the fence pairs with the one
        // in `WaiterList::enqueue` (see there).
        fence(Ordering::SeqCst);
        for c in cells {
            c.waiters.wake_all_after_fence();
        }
        self.observers.session_waiters.wake_all_after_fence();
    }

    pub(crate) fn delete_variable(&self, ident: &str) -> Result<(), Error> {
        let mut w = self.write.lock();
        if self.is_closed() {
            return Err(self.gone());
        }
        let cell = self.resolve_or_err(ident)?;
        {
            let mut index = self.index.write();
            index.by_id.remove(&cell.meta.id);
            index.by_name.remove(&cell.meta.name);
        }
        w.revision += 1;
        let cur = cell.current.load_full();
        let record = Arc::new(Record {
            var: cell.meta.clone(),
            kind: RecordKind::Deleted,
            version: cur.version + 1,
            revision: w.revision,
            value: cur.value.clone(),
            old_value: Some(cur.value.clone()),
            source: None,
            metadata: None,
            timestamp: SystemTime::now(),
        });
        cell.current.store(record.clone());
        self.revision.store(w.revision, Ordering::Release);
        #[cfg(feature = "transport")]
        w.tombstones
            .add(cell.meta.id.clone(), cell.meta.name.clone(), record.version);
        let notify = self.observers.has_watchers();
        if notify {
            self.log.push([Entry { record, cell: None }]);
        }
        drop(w);
        if notify {
            self.wake(&[cell]);
        }
        Ok(())
    }

    /// The name and deletion version of a variable deleted recently (see
    /// [`Tombstones`]).
    #[cfg(feature = "transport")]
    pub(crate) fn tombstone(&self, id: &str) -> Option<(Arc<str>, u64)> {
        self.write.lock().tombstones.by_id.get(id).cloned()
    }

    /// Closes the session for good: every watch gets `SessionClosed`.
    pub(crate) fn close(&self) {
        let w = self.write.lock();
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        // No write can follow (writers check `closed` under this lock): the
        // session's count is final and moves to the store's retired total.
        self.counters
            .retired_updates
            .fetch_add(self.updates.load(Ordering::Relaxed), Ordering::Relaxed);
        let cells = self.cells();
        if self.observers.has_watchers() {
            let record = self.closed_record(w.revision);
            self.log.push([Entry { record, cell: None }]);
        }
        drop(w);
        self.wake(&cells);
    }

    /// The record that tells watches the session is gone.
    pub(crate) fn closed_record(&self, revision: u64) -> Arc<Record> {
        Arc::new(Record::bare(
            RecordKind::SessionClosed,
            "",
            "",
            0,
            revision,
            Slot::MAX,
        ))
    }

    pub(crate) fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }

    /// Runs `f` under the write lock, so that nothing changes meanwhile; used
    /// by watch registration to take its snapshot.
    pub(crate) fn with_write_lock<R>(&self, f: impl FnOnce() -> Result<R, Error>) -> Result<R, Error> {
        let _w = self.write.lock();
        if self.is_closed() {
            return Err(self.gone());
        }
        f()
    }

    /// A consistent snapshot of every variable (one revision).
    pub(crate) fn snapshot(&self) -> Result<(u64, Vec<Variable>), Error> {
        let w = self.write.lock();
        if self.is_closed() {
            return Err(self.gone());
        }
        let vars = self
            .cells()
            .iter()
            .map(|c| Variable {
                record: c.current.load_full(),
            })
            .collect();
        Ok((w.revision, vars))
    }
}
