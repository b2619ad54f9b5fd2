//! A session: its variables, its revision, its event log and its watches,
//! and the reads of it. Every change is made by the write path
//! (`session/write.rs`); the public types are in `session/types.rs`.
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
//! A variable's current state is an `Arc<Record>` in an `ArcCell`
//! (`publish.rs`): replaced under `write` (the cell's own lock for one
//! pointer swap), read under the cell's read lock for one reference-count
//! increment, or from a reader's memory with no lock at all. A replaced
//! record that nobody else holds is kept in `WriteState::spare` and filled
//! in place by the next change (`record::Spare`), so that a session without
//! watchers writes without allocating.
//!
//! # Consistent cuts
//!
//! Every change is also one *write section* of the session's [`SeqCount`]
//! (opened under `write`, closed before `write` is released). A read that
//! hands out several variables at once — a watch's resync or coalesced
//! receive, `get_many`, `list_variables`, `snapshot`, `export` — goes through
//! [`Session::read_cut`]: it reads without a lock and keeps the result only if
//! no write section overlapped it, so what it returns is the session's state
//! between two writes, one revision. After a few overlapped tries it reads
//! under `write` instead (bounded work, never a spin).

mod journal;
mod types;
mod write;

use std::time::{Duration, Instant, SystemTime};

pub use types::{GetMany, Metadata, SessionInfo, SessionOptions, UpdateOptions, VarDef, VarList, Variable};

use crate::error::Error;
use crate::event_log::EventLog;
use crate::ident::is_var_id;
use crate::meta::Slot;
use crate::observer::ObserverManager;
use crate::record::{Spare, VarCell};
use crate::seqcount::SeqCount;
use crate::sync::{Arc, AtomicBool, AtomicU64, Mutex, Ordering, RwLock};
use crate::value::{Value, validate};

/// Hash maps keyed by names and ids: foldhash is several times faster than
/// SipHash on short keys and still seeded per process.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

struct WriteState {
    revision: u64,
    next_slot: Slot,
    /// A record allocation for the next change (see `Spare`).
    spare: Spare,
    /// The latest deletions, for resuming remote watches.
    tombstones: Tombstones,
}

/// The last [`Tombstones::KEEP`] deletions of a session: id → (name,
/// version of the deletion). A remote watch that resumes after a deletion
/// learns from it which versions it missed.
#[derive(Default)]
struct Tombstones {
    by_id: HashMap<Arc<str>, (Arc<str>, u64)>,
    order: std::collections::VecDeque<Arc<str>>,
}

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

impl Index {
    /// An id-form string among ids only, any other among names only.
    fn lookup(&self, ident: &str) -> Option<&Arc<VarCell>> {
        if is_var_id(ident) {
            self.by_id.get(ident)
        } else {
            self.by_name.get(ident)
        }
    }
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
    /// Open while a change is being published (see "Consistent cuts").
    seq: SeqCount,
    index: RwLock<Index>,
    revision: AtomicU64,
    /// Accepted variable changes, for the store's statistics.
    pub(crate) updates: AtomicU64,
    closed: AtomicBool,
    pub(crate) log: EventLog,
    /// The largest capacity a lossless watch may be granted.
    pub(crate) max_log: usize,
    pub(crate) observers: ObserverManager,
    pub(crate) counters: Arc<StoreCounters>,
    /// The journal of a durable store (`journal.rs`); `None` in memory.
    #[cfg(all(feature = "durable", not(loom)))]
    pub(crate) durable: Option<std::sync::Arc<crate::durable::Durable>>,
    /// When the last access was journaled (ms since the Unix epoch).
    #[cfg(all(feature = "durable", not(loom)))]
    journaled_touch: AtomicU64,
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

/// Optimistic tries of a cut before it is read under the write lock.
const CUT_TRIES: u32 = 4;

impl Session {
    pub(crate) fn new(
        id: &str,
        opts: SessionOptions,
        max_log: usize,
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
                spare: Spare::default(),
                tombstones: Tombstones::default(),
            }),
            seq: SeqCount::default(),
            index: RwLock::new(Index::default()),
            revision: AtomicU64::new(0),
            updates: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            log: EventLog::default(),
            max_log,
            observers: ObserverManager::default(),
            counters,
            #[cfg(all(feature = "durable", not(loom)))]
            durable: None,
            #[cfg(all(feature = "durable", not(loom)))]
            journaled_touch: AtomicU64::new(0),
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
            self.journal_touch();
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

    /// Whether the session has been idle past its TTL. A session with open
    /// watches is never idle: an open watch keeps it alive (and the end of
    /// the last watch counts as an access, see `Watch::unregister`).
    pub(crate) fn is_expired(&self) -> bool {
        self.ttl.is_some_and(|ttl| self.idle_for() > ttl) && !self.observers.has_watchers()
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

    /// Finds a variable by id or by name: a string of the id form is looked
    /// up among ids only, any other among names only (see `ident.rs`), so no
    /// string can mean two variables.
    pub(crate) fn resolve(&self, ident: &str) -> Option<Arc<VarCell>> {
        self.index.read().lookup(ident).cloned()
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

    /// The revision of the last change.
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

    /// Runs `read` on a consistent cut of the session (see "Consistent
    /// cuts"): whatever it reads of the session — states, the index, the
    /// revision, the log's tail, the closed flag — is as of one instant
    /// between two writes. `read` may run more than once; only the last
    /// run's result is returned.
    pub(crate) fn read_cut<R>(&self, mut read: impl FnMut() -> R) -> R {
        if let Some(r) = self.seq.read(CUT_TRIES, &mut read) {
            return r;
        }
        let _w = self.write.lock();
        read()
    }

    /// The variables named by `idents` (found ones, with the identifier as
    /// given, and missing ones, both in request order) as one cut.
    pub(crate) fn get_many<S: AsRef<str>>(&self, idents: &[S]) -> GetMany {
        self.read_cut(|| {
            let mut out = GetMany {
                found: Vec::new(),
                missing: Vec::new(),
                revision: self.revision(),
            };
            let index = self.index.read();
            for ident in idents {
                let ident = ident.as_ref();
                match index.lookup(ident) {
                    Some(c) => out.found.push((
                        ident.to_string(),
                        Variable {
                            record: c.current.load_full(),
                        },
                    )),
                    None => out.missing.push(ident.to_string()),
                }
            }
            out
        })
    }

    /// The live variables for which `keep` holds, in registration order,
    /// as one cut.
    pub(crate) fn variables(&self, keep: impl Fn(&VarCell) -> bool) -> Result<VarList, Error> {
        self.read_cut(|| {
            if self.is_closed() {
                return Err(self.gone());
            }
            let variables = self
                .cells()
                .into_iter()
                .filter(|c| keep(c))
                .map(|c| Variable {
                    record: c.current.load_full(),
                })
                .collect();
            Ok(VarList {
                variables,
                revision: self.revision(),
            })
        })
    }
}
