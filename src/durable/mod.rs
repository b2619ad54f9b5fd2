//! Durable sessions (feature `durable`): a [`SessionStore`] opened on a
//! directory keeps every accepted change on disk before anyone is told of
//! it, and gets it all back when opened again.
//!
//! ```
//! # fn main() -> Result<(), varwatch::Error> {
//! use varwatch::durable::{Durability, DurableOptions};
//! use varwatch::{SessionOptions, SessionStore, StoreConfig, VarDef, VarStore, VarType};
//!
//! let dir = std::env::temp_dir().join(format!("varwatch-doc-{}", std::process::id()));
//! let (store, _) = SessionStore::open(&dir, StoreConfig::new(), DurableOptions::new())?;
//! store.create_session("lab", SessionOptions::new())?;
//! store.register("lab", VarDef::new("t", VarType::Float, 20.0))?;
//! assert_eq!(store.update("lab", "t", 21.5)?, 1); // on disk when this returns
//! drop(store);
//!
//! // A restart (or a crash: the same), then the same sessions, versions,
//! // ids and revisions.
//! let (store, _) = SessionStore::open(&dir, StoreConfig::new(), DurableOptions::new())?;
//! let t = store.get("lab", "t")?;
//! assert_eq!((t.version(), t.value().as_f64()), (1, Some(21.5)));
//! # drop(store); std::fs::remove_dir_all(&dir).ok();
//! # Ok(()) }
//! ```
//!
//! # What is kept
//!
//! Every session (its id, metadata, TTL, creation time and *incarnation*,
//! which tells a resuming remote watch that it is the same session), every
//! variable (id, name, type, constraints, metadata, value, version, the
//! revision, time, source and metadata of its last change), each session's
//! revision and recent deletions, the store's id counter (no id is ever
//! handed out twice), and each session's last access (written at most every
//! quarter of its TTL, so a TTL goes on from about where it was). What is
//! not kept: the event history (a watch that resumes after a restart gets
//! `Lagged` and the current state for what it missed, as after any
//! disconnection — never a state that did not exist) and open watches.
//!
//! # Durability
//!
//! A change is written to the journal under its session's write lock,
//! *before* it is published: no watcher, reader or writer sees a change
//! that is not in the journal, so a restart never takes back anything
//! anyone saw. How far "in the journal" goes is the [`Durability`]:
//!
//! | policy | a write returns once | a killed process loses | a lost machine loses |
//! |---|---|---|---|
//! | [`Durability::Always`] (default) | synced (`fdatasync`; writers of different sessions share one sync: group commit) | nothing | nothing acknowledged |
//! | [`Durability::Interval`] | written to the file | nothing | up to one interval |
//! | [`Durability::Never`] | written to the file | nothing | what the OS had not written |
//!
//! Accesses (TTL) and expiries are journaled without waiting.
//!
//! # Files
//!
//! `journal-<n>.log` segments of CRC-checked blocks (one block per group
//! commit) and `snapshot-<n>.bin`; a `LOCK` file keeps a second process
//! out. When the journal has grown by [`DurableOptions::compact_after`]
//! bytes since the last snapshot, a background thread writes a new
//! snapshot and removes the segments it replaces, so disk use follows the
//! live state. Opening reads the newest snapshot and the segments after it;
//! a torn tail (a write a crash interrupted) is cut off and reported in
//! [`Recovery`]; damage anywhere else is [`Error::Storage`](crate::Error)
//! naming the file and the byte offset — never a panic, never a silent
//! loss. Why an append-only file of our own and not an embedded database:
//! `docs::internal`.
//!
//! [`SessionStore`]: crate::SessionStore

mod frame;
mod journal;
pub(crate) mod model;
mod recover;
mod snapshot;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

pub use recover::Recovery;

pub(crate) use journal::Journal;
use model::{Change, Entry, Model};

use crate::Error;

/// How far a change is on disk when the write that made it returns (see
/// the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Synced before the write returns; concurrent writers share syncs.
    #[default]
    Always,
    /// Written before the write returns, synced every interval (at least
    /// 1 ms).
    Interval(Duration),
    /// Written before the write returns; synced when the operating system
    /// decides (and when the store is dropped).
    Never,
}

/// The settings of a durable store (see [`SessionStore::open`](crate::SessionStore::open)).
#[derive(Clone, Debug)]
#[non_exhaustive]
#[must_use = "options do nothing until passed to `SessionStore::open`"]
pub struct DurableOptions {
    /// When a write returns, and what a crash can lose.
    pub durability: Durability,
    /// Journal bytes written since the last snapshot that start a new one
    /// (default 64 MiB; at least 4 KiB).
    pub compact_after: u64,
}

impl Default for DurableOptions {
    fn default() -> Self {
        DurableOptions {
            durability: Durability::Always,
            compact_after: 64 << 20,
        }
    }
}

impl DurableOptions {
    /// The defaults: [`Durability::Always`], a snapshot every 64 MiB of
    /// journal.
    pub fn new() -> DurableOptions {
        DurableOptions::default()
    }

    /// Sets the durability policy.
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }

    /// Sets how many journal bytes start a snapshot.
    pub fn compact_after(mut self, bytes: u64) -> Self {
        self.compact_after = bytes;
        self
    }

    fn normalized(mut self) -> Self {
        self.compact_after = self.compact_after.max(4096);
        if let Durability::Interval(d) = &mut self.durability {
            *d = (*d).clamp(Duration::from_millis(1), Duration::from_secs(24 * 3600));
        }
        self
    }
}

/// What a durable store's sessions share: the journal, and the means to
/// compact it.
pub(crate) struct Durable {
    pub(crate) journal: Arc<Journal>,
    compact_after: u64,
    compacting: AtomicBool,
    /// Reads the live state for a snapshot (set once the store exists; it
    /// holds a weak reference to the store, and reads `None` once the store
    /// is gone).
    state: OnceLock<StateReader>,
    me: Weak<Durable>,
    /// The directory's `LOCK`, held while anything can still write to it:
    /// the store, a session or writer handle outliving it, a compaction
    /// thread.
    _lock: std::fs::File,
}

/// Reads the live state for a snapshot.
type StateReader = Box<dyn Fn() -> Option<Model> + Send + Sync>;

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durable")
            .field("journal", &self.journal)
            .finish_non_exhaustive()
    }
}

/// Opens (or creates) the store in `dir`: its state as a model, and the
/// durable part of the store that will hold it.
pub(crate) fn open(dir: &Path, opts: DurableOptions) -> Result<(Model, Arc<Durable>, Recovery), Error> {
    let opts = opts.normalized();
    std::fs::create_dir_all(dir)
        .map_err(|e| journal::storage(dir, format!("cannot create the directory: {e}")))?;
    // One process at a time: a second would interleave its segments.
    let lock_path = dir.join("LOCK");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| journal::storage(dir, format!("cannot open {}: {e}", lock_path.display())))?;
    // `File::try_lock` is Rust 1.89: feature `durable` needs 1.89, the
    // rest of the crate keeps `rust-version` (1.88). Said in Cargo.toml.
    #[allow(clippy::incompatible_msrv)]
    let locked = lock.try_lock();
    locked.map_err(|e| {
        journal::storage(
            dir,
            format!("the directory is in use by another store (its LOCK is held: {e})"),
        )
    })?;
    let (model, next, recovery) = recover::recover(dir)?;
    let journal = Arc::new(Journal::create(dir, next, opts.durability)?);
    if let Durability::Interval(every) = opts.durability {
        journal::start_interval_sync(&journal, every);
    }
    let durable = Arc::new_cyclic(|me| Durable {
        journal,
        compact_after: opts.compact_after,
        compacting: AtomicBool::new(false),
        state: OnceLock::new(),
        me: me.clone(),
        _lock: lock,
    });
    Ok((model, durable, recovery))
}

impl Durable {
    /// The journal's (commits, syncs) since open.
    pub(crate) fn counts(&self) -> (u64, u64) {
        self.journal.counts()
    }

    /// Sets how a snapshot reads the live state.
    pub(crate) fn set_state(&self, read: StateReader) {
        let _ = self.state.set(read);
    }

    /// Records `change` of session `session` (life `incarnation`), waiting
    /// as the policy says (`wait: false` for accesses and expiries); starts
    /// a snapshot when one is due.
    pub(crate) fn commit(
        &self,
        session: &str,
        incarnation: u64,
        change: Change,
        wait: bool,
    ) -> Result<(), Error> {
        self.commit_all(session, incarnation, vec![change], wait)
    }

    /// Records several changes of one session, in order, with one wait.
    pub(crate) fn commit_many(
        &self,
        session: &str,
        incarnation: u64,
        changes: Vec<Change>,
    ) -> Result<(), Error> {
        self.commit_all(session, incarnation, changes, true)
    }

    fn commit_all(
        &self,
        session: &str,
        incarnation: u64,
        changes: Vec<Change>,
        wait: bool,
    ) -> Result<(), Error> {
        if changes.is_empty() {
            return Ok(());
        }
        let entries = changes
            .into_iter()
            .map(|change| Entry {
                session: session.to_string(),
                incarnation,
                change: Some(change),
            })
            .collect();
        let r = self.journal.commit(entries, wait);
        if self.journal.since_snapshot() >= self.compact_after
            && !self.compacting.swap(true, Ordering::AcqRel)
        {
            let me = self.me.clone();
            let spawned = std::thread::Builder::new()
                .name("varwatch-snapshot".into())
                .spawn(move || {
                    if let Some(d) = me.upgrade() {
                        let _ = d.compact();
                        d.compacting.store(false, Ordering::Release);
                    }
                });
            if spawned.is_err() {
                self.compacting.store(false, Ordering::Release);
            }
        }
        r.map_err(|e| match e {
            // The journal's error names no session: this one does.
            Error::OutcomeUnknown { reason, .. } => Error::OutcomeUnknown {
                session: session.to_string(),
                operation: "a write".into(),
                reason,
            },
            e => e,
        })
    }

    /// Writes a snapshot of the live state and removes the journal it
    /// replaces (see `snapshot.rs`).
    pub(crate) fn compact(&self) -> Result<(), Error> {
        let n = self.journal.roll()?;
        let Some(read) = self.state.get() else {
            return Ok(());
        };
        // The store is gone: nothing to snapshot (never an empty state).
        let Some(mut model) = read() else {
            return Ok(());
        };
        model.start_segment = n;
        snapshot::write(self.journal.dir(), &model)
    }
}
