//! The write path: every change of a session (registration, updates and
//! batches, deletion, closing).
//!
//! Each change follows the same steps:
//!
//! 1. everything that can be checked without the lock is checked (types,
//!    constraints, names: a variable's type and constraints never change);
//! 2. under the session's write lock, what depends on the current state
//!    (liveness, expected versions, names taken) is checked; a failure
//!    returns before anything is touched;
//! 3. the change is published inside one write section of the session's
//!    `SeqCount`: new records stored as the variables' current states, the
//!    revision moved, the records appended to the event log as one group;
//! 4. after the lock is released, the watches asleep on what changed are
//!    woken (`Published::fence`, then `WaiterList::wake_all`: the wake-up
//!    protocol of `wakeup.rs`).
//!
//! # Batches
//!
//! * **Atomic** (`update_atomic`, `import`): every item is checked, and if
//!   any fails, every failure is reported in one [`Error::BatchRejected`]
//!   (in request order) and nothing changes. Otherwise all items are applied
//!   under one revision and reach watchers as one group. An item may not
//!   name a variable another item names ([`Error::DuplicateInBatch`]).
//! * **Best effort** (`update_best_effort`): items are applied in order, each
//!   as its own write (its own revision), each checked against the state the
//!   items before it left: two items expecting version 0 of the same
//!   variable give `[Ok(1), Err(VersionConflict { expected: 0, current: 1 })]`.

use std::collections::HashMap;
use std::time::SystemTime;

use super::{Prepared, Session, WriteState};
use crate::error::Error;
use crate::event_log::Entry;
use crate::ident::{check_var_name, var_id};
use crate::meta::{Slot, VarMeta};
use crate::publish::ArcCell;
use crate::record::{Record, RecordKind, VarCell};
use crate::session::types::{Metadata, UpdateOptions, VarDef};
use crate::sync::{Arc, MutexGuard, Ordering};
use crate::value::{Value, validate};
use crate::wakeup::{Published, WaiterList};

/// Where a change came from, shared by every record of one write.
struct Origin {
    source: Option<Arc<str>>,
    metadata: Option<Arc<Metadata>>,
    timestamp: SystemTime,
}

impl Origin {
    fn of(opts: &UpdateOptions) -> Origin {
        Origin {
            source: opts.source.as_deref().map(Into::into),
            metadata: (!opts.metadata.is_empty()).then(|| Arc::new(opts.metadata.clone())),
            timestamp: SystemTime::now(),
        }
    }

    /// The record of `cell` changing from `cur` to `value` at `revision`.
    fn changed(&self, cell: &VarCell, cur: &Record, value: Value, revision: u64) -> Arc<Record> {
        let mut r = Record::unfilled(cell.meta.clone());
        self.fill(&mut r, cur.version + 1, value, cur.value.clone(), revision);
        Arc::new(r)
    }

    /// Writes the change to `version` (from `old_value` to `value`, at
    /// `revision`) into `r`: every field but `var`.
    fn fill(&self, r: &mut Record, version: u64, value: Value, old_value: Value, revision: u64) {
        r.kind = RecordKind::Changed;
        r.version = version;
        r.revision = revision;
        r.value = value;
        r.old_value = Some(old_value);
        r.source.clone_from(&self.source);
        r.metadata.clone_from(&self.metadata);
        r.timestamp = self.timestamp;
    }
}

impl Session {
    /// Checks a definition completely, before any lock is taken.
    fn check_def(&self, def: &VarDef) -> Result<Value, Error> {
        check_var_name(&def.name)?;
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

    /// Appends one write's records to the log as one group.
    fn push_log(&self, entries: impl IntoIterator<Item = Entry>) {
        self.log.push(entries, self.observers.count(), || {
            self.observers.slowest_cursor()
        });
    }

    /// Registers variables, all or none, under one revision; returns their
    /// ids. Names must be valid, new and distinct. With `batch` (import)
    /// every failure is reported in one [`Error::BatchRejected`]; a single
    /// registration returns its error as it is.
    pub(crate) fn register(&self, defs: Vec<VarDef>, batch: bool) -> Result<Vec<String>, Error> {
        let mut checked: Vec<Result<Value, Error>> = defs.iter().map(|d| self.check_def(d)).collect();
        // Later uses of a name already used in this batch are duplicates.
        let mut first_use: HashMap<&str, usize> = HashMap::new();
        for (i, def) in defs.iter().enumerate() {
            if *first_use.entry(def.name.as_str()).or_insert(i) != i && checked[i].is_ok() {
                checked[i] = Err(Error::DuplicateInBatch {
                    session: self.id.to_string(),
                    variable: def.name.clone(),
                });
            }
        }
        let mut w = self.write.lock();
        if self.is_closed() {
            return Err(self.gone());
        }
        {
            let index = self.index.read();
            for (def, c) in defs.iter().zip(checked.iter_mut()) {
                if c.is_ok() && index.by_name.contains_key(def.name.as_str()) {
                    *c = Err(Error::VariableExists {
                        session: self.id.to_string(),
                        name: def.name.clone(),
                    });
                }
            }
        }
        if checked.iter().any(Result::is_err) {
            let mut failures: Vec<(String, Error)> = defs
                .iter()
                .zip(checked)
                .filter_map(|(d, c)| c.err().map(|e| (d.name.clone(), e)))
                .collect();
            if !batch && failures.len() == 1 {
                return Err(failures.pop().expect("one failure").1);
            }
            return Err(Error::BatchRejected {
                session: self.id.to_string(),
                failures,
            });
        }
        if defs.is_empty() {
            return Ok(Vec::new()); // nothing to do: no revision
        }
        let now = SystemTime::now();
        let revision = w.revision + 1;
        // The records first (ids handed out), then the journal, then the
        // publication: nothing is seen before it is recorded.
        let mut records = Vec::with_capacity(defs.len());
        for (i, (def, value)) in defs.into_iter().zip(checked).enumerate() {
            let value = value.expect("every definition was checked");
            let n = self.counters.next_var_id.fetch_add(1, Ordering::Relaxed) + 1;
            let meta = Arc::new(VarMeta {
                id: var_id(n).into(),
                name: def.name.into(),
                var_type: def.var_type,
                constraints: def.constraints,
                metadata: Arc::new(def.metadata),
                created_at: now,
                slot: w.next_slot + i as Slot,
            });
            records.push(Arc::new(Record {
                var: meta,
                kind: RecordKind::Registered,
                version: 0,
                revision,
                value,
                old_value: None,
                source: None,
                metadata: None,
                timestamp: now,
            }));
        }
        self.journal_register(&records)?;
        let section = self.seq.write();
        w.revision = revision;
        w.next_slot += records.len() as Slot;
        let mut ids = Vec::with_capacity(records.len());
        let mut entries = Vec::with_capacity(records.len());
        let mut index = self.index.write();
        for record in records {
            let meta = record.var.clone();
            let id = meta.id.clone();
            let cell = Arc::new(VarCell {
                meta: meta.clone(),
                current: ArcCell::new(record.clone()),
                waiters: WaiterList::default(),
            });
            index.by_id.insert(id.clone(), cell.clone());
            index.by_name.insert(meta.name.clone(), cell.clone());
            let mut entry = Entry::new(record);
            entry.cell = Some(cell);
            entries.push(entry);
            ids.push(id.to_string());
        }
        drop(index);
        self.revision.store(revision, Ordering::Release);
        let notify = self.observers.has_watchers();
        if notify {
            self.push_log(entries);
        }
        drop(section);
        drop(w);
        if notify {
            let published = Published::fence();
            self.observers.session_waiters.wake_all(&published);
        }
        Ok(ids)
    }

    /// Applies `items` (identifier, value, expected version); see the
    /// module docs for what atomic and best effort mean. Returns one result
    /// per item, in request order (an atomic batch's are all `Ok`).
    pub(crate) fn update_many(
        &self,
        items: Vec<(String, Value, Option<u64>)>,
        atomic: bool,
        opts: &UpdateOptions,
    ) -> Result<Vec<Result<u64, Error>>, Error> {
        // Resolve and validate outside the lock: a variable's type and
        // constraints never change, so this cannot go stale (a deletion in
        // between is caught under the lock).
        let mut prepared: Vec<Result<Prepared, Error>> = items
            .iter()
            .map(|(ident, value, _)| {
                let cell = self.resolve_or_err(ident)?;
                let value = self.validate_for(&cell, value.clone())?;
                Ok(Prepared { cell, value })
            })
            .collect();
        if atomic {
            let mut first_use: HashMap<Slot, usize> = HashMap::new();
            for (i, p) in prepared.iter_mut().enumerate() {
                if let Ok(ok) = p
                    && *first_use.entry(ok.cell.meta.slot).or_insert(i) != i
                {
                    *p = Err(Error::DuplicateInBatch {
                        session: self.id.to_string(),
                        variable: items[i].0.clone(),
                    });
                }
            }
        }
        let origin = Origin::of(opts);
        let w = self.write.lock();
        if self.is_closed() {
            return Err(self.gone());
        }
        if atomic {
            self.apply_atomic(w, items, prepared, &origin)
        } else {
            Ok(self.apply_in_order(w, items, prepared, &origin))
        }
    }

    /// Checks every item against the current state, then applies all of
    /// them under one revision, or none.
    fn apply_atomic(
        &self,
        mut w: MutexGuard<'_, WriteState>,
        items: Vec<(String, Value, Option<u64>)>,
        prepared: Vec<Result<Prepared, Error>>,
        origin: &Origin,
    ) -> Result<Vec<Result<u64, Error>>, Error> {
        let mut failures = Vec::new();
        let mut ready = Vec::with_capacity(items.len());
        for ((ident, _, expected), p) in items.into_iter().zip(prepared) {
            let checked = p.and_then(|p| {
                let cur = p.cell.current.load_full();
                self.check_current(&p.cell, &cur, &ident, expected)?;
                Ok((p, cur))
            });
            match checked {
                Ok(x) => ready.push(x),
                Err(e) => failures.push((ident, e)),
            }
        }
        if !failures.is_empty() {
            return Err(Error::BatchRejected {
                session: self.id.to_string(),
                failures,
            });
        }
        let mut results = Vec::with_capacity(ready.len());
        let revision = w.revision + 1;
        // The new states first, then the journal, then the publication.
        let mut changes = Vec::new();
        for (p, cur) in ready {
            if cur.value.is_identical(&p.value) {
                results.push(Ok(cur.version)); // the no-op rule
                continue;
            }
            let record = origin.changed(&p.cell, &cur, p.value, revision);
            results.push(Ok(record.version));
            changes.push((p.cell, record));
        }
        if changes.is_empty() {
            return Ok(results);
        }
        let records: Vec<Arc<Record>> = changes.iter().map(|(_, r)| r.clone()).collect();
        self.journal_updates(&[&records])?;
        drop(records);
        let mut entries = Vec::new();
        let mut woken = Vec::new();
        // The states replaced, released after the lock.
        let mut replaced = Vec::with_capacity(changes.len());
        let notify = self.observers.has_watchers();
        let section = self.seq.write();
        let changed = changes.len() as u64;
        for (cell, record) in changes {
            replaced.push(cell.current.swap(record.clone()));
            if notify {
                entries.push(Entry::new(record));
                woken.push(cell);
            }
        }
        w.revision = revision;
        self.revision.store(revision, Ordering::Release);
        if notify {
            self.push_log(entries);
        }
        drop(section);
        self.count_updates(changed);
        drop(w);
        drop(replaced);
        self.wake(&woken);
        Ok(results)
    }

    /// Applies each item as its own write, in order, each checked against
    /// the state the items before it left.
    fn apply_in_order(
        &self,
        mut w: MutexGuard<'_, WriteState>,
        items: Vec<(String, Value, Option<u64>)>,
        prepared: Vec<Result<Prepared, Error>>,
        origin: &Origin,
    ) -> Vec<Result<u64, Error>> {
        // Each item checked against the state the items before it left:
        // their new states are kept here until all are journaled, then
        // published in order.
        let mut results = Vec::with_capacity(items.len());
        let mut changes: Vec<(Arc<VarCell>, Arc<Record>)> = Vec::new();
        let mut changed_at = Vec::new();
        let mut revision = w.revision;
        for ((ident, _, expected), p) in items.into_iter().zip(prepared) {
            let result = p.and_then(|p| {
                let cur = changes
                    .iter()
                    .rev()
                    .find(|(c, _)| Arc::ptr_eq(c, &p.cell))
                    .map_or_else(|| p.cell.current.load_full(), |(_, r)| r.clone());
                self.check_current(&p.cell, &cur, &ident, expected)?;
                if cur.value.is_identical(&p.value) {
                    return Ok(cur.version); // the no-op rule
                }
                revision += 1;
                let record = origin.changed(&p.cell, &cur, p.value, revision);
                let version = record.version;
                changes.push((p.cell, record));
                Ok(version)
            });
            if result.is_ok() && changed_at.len() < changes.len() {
                changed_at.push(results.len());
            }
            results.push(result);
        }
        if changes.is_empty() {
            return results;
        }
        let groups: Vec<[Arc<Record>; 1]> = changes.iter().map(|(_, r)| [r.clone()]).collect();
        let groups: Vec<&[Arc<Record>]> = groups.iter().map(|g| &g[..]).collect();
        if let Err(e) = self.journal_updates(&groups) {
            // Nothing was published: every item that would have changed
            // something fails with the journal's error.
            for i in changed_at {
                results[i] = Err(e.clone());
            }
            return results;
        }
        let notify = self.observers.has_watchers();
        let mut woken: Vec<Arc<VarCell>> = Vec::new();
        let mut replaced = Vec::with_capacity(changes.len()); // released after the lock
        let changed = changes.len() as u64;
        let section = self.seq.write();
        for (cell, record) in changes {
            w.revision = record.revision;
            replaced.push(cell.current.swap(record.clone()));
            self.revision.store(w.revision, Ordering::Release);
            if notify {
                // Each item is its own write: its own group in the log.
                self.push_log([Entry::new(record)]);
                if !woken.iter().any(|c| Arc::ptr_eq(c, &cell)) {
                    woken.push(cell);
                }
            }
        }
        drop(section);
        self.count_updates(changed);
        drop(w);
        drop(replaced);
        self.wake(&woken);
        results
    }

    /// The checks that depend on a variable's current state: it still
    /// exists, and is at the expected version if one was given.
    fn check_current(
        &self,
        cell: &VarCell,
        cur: &Record,
        ident: &str,
        expected: Option<u64>,
    ) -> Result<(), Error> {
        if cur.kind == RecordKind::Deleted {
            return Err(self.not_found(ident));
        }
        match expected {
            Some(exp) if exp != cur.version => Err(Error::VersionConflict {
                session: self.id.to_string(),
                variable: cell.meta.name.to_string(),
                expected: exp,
                current: cur.version,
            }),
            _ => Ok(()),
        }
    }

    /// One update: the hot path, without the batch machinery.
    pub(crate) fn update_one(
        &self,
        cell: &Arc<VarCell>,
        value: Value,
        opts: &UpdateOptions,
    ) -> Result<u64, Error> {
        let value = self.validate_for(cell, value)?;
        let origin = Origin::of(opts);
        let mut w = self.write.lock();
        if self.is_closed() {
            return Err(self.gone());
        }
        // Only writers replace a cell, and they hold this session's write
        // lock: a peek is enough (no reference count taken). What it finds
        // is kept small (errors are built outside).
        enum Prior {
            Change(u64, Value),
            Same(u64),
            Deleted,
            Conflict { expected: u64, current: u64 },
        }
        let prior = cell.current.with(|cur| {
            if cur.kind == RecordKind::Deleted {
                Prior::Deleted
            } else if let Some(expected) = opts.expected_version.filter(|&v| v != cur.version) {
                Prior::Conflict {
                    expected,
                    current: cur.version,
                }
            } else if cur.value.is_identical(&value) {
                Prior::Same(cur.version) // the no-op rule
            } else {
                Prior::Change(cur.version, cur.value.clone())
            }
        });
        let (version, old_value) = match prior {
            Prior::Change(version, old_value) => (version, old_value),
            Prior::Same(version) => return Ok(version),
            Prior::Deleted => return Err(self.not_found(&cell.meta.name)),
            Prior::Conflict { expected, current } => {
                return Err(Error::VersionConflict {
                    session: self.id.to_string(),
                    variable: cell.meta.name.to_string(),
                    expected,
                    current,
                });
            }
        };
        let revision = w.revision + 1;
        let record = w.spare.record(&cell.meta, |r| {
            origin.fill(r, version + 1, value, old_value, revision)
        });
        self.journal_updates(&[std::slice::from_ref(&record)])?;
        let section = self.seq.write();
        w.revision = revision;
        self.revision.store(w.revision, Ordering::Release);
        let notify = self.observers.has_watchers();
        let replaced = if notify {
            let replaced = cell.current.swap(record.clone());
            self.push_log([Entry::new(record)]);
            replaced
        } else {
            cell.current.swap(record)
        };
        drop(section);
        self.count_updates(1);
        let leftovers = w.spare.keep(replaced);
        drop(w);
        // What the previous state held is released here, outside the lock.
        drop(leftovers);
        if notify {
            self.wake(std::slice::from_ref(cell));
        }
        Ok(version + 1)
    }

    /// Adds `n` to the session's count of changes. Called under the write
    /// lock, so a plain load and store (no read-modify-write) is enough.
    fn count_updates(&self, n: u64) {
        let before = self.updates.load(Ordering::Relaxed);
        self.updates.store(before + n, Ordering::Relaxed);
    }

    /// Wakes the watches asleep on `cells` and on the whole session.
    fn wake(&self, cells: &[Arc<VarCell>]) {
        // The log was appended to before this (see `wakeup.rs`).
        let published = Published::fence();
        for c in cells {
            c.waiters.wake_all(&published);
        }
        self.observers.session_waiters.wake_all(&published);
    }

    pub(crate) fn delete_variable(&self, ident: &str) -> Result<(), Error> {
        let mut w = self.write.lock();
        if self.is_closed() {
            return Err(self.gone());
        }
        let cell = self.resolve_or_err(ident)?;
        let cur = cell.current.load_full();
        let record = Arc::new(Record {
            var: cell.meta.clone(),
            kind: RecordKind::Deleted,
            version: cur.version + 1,
            revision: w.revision + 1,
            value: cur.value.clone(),
            old_value: Some(cur.value.clone()),
            source: None,
            metadata: None,
            timestamp: SystemTime::now(),
        });
        self.journal_delete_var(&record)?;
        let section = self.seq.write();
        {
            let mut index = self.index.write();
            index.by_id.remove(&cell.meta.id);
            index.by_name.remove(&cell.meta.name);
        }
        w.revision += 1;
        let replaced = cell.current.swap(record.clone());
        self.revision.store(w.revision, Ordering::Release);
        w.tombstones
            .add(cell.meta.id.clone(), cell.meta.name.clone(), record.version);
        let notify = self.observers.has_watchers();
        if notify {
            self.push_log([Entry::new(record)]);
        }
        drop(section);
        drop(w);
        drop((cur, replaced));
        if notify {
            self.wake(&[cell]);
        }
        Ok(())
    }

    /// The name and deletion version of each of these variables, if it was
    /// deleted recently (see `Tombstones`); one lock for all of them.
    pub(crate) fn tombstones<'a>(&self, ids: impl Iterator<Item = &'a str>) -> Vec<Option<(Arc<str>, u64)>> {
        let w = self.write.lock();
        ids.map(|id| w.tombstones.by_id.get(id).cloned()).collect()
    }

    /// The id and deletion version of the variable last deleted under
    /// `name`, if that was recent (a resume that names it).
    pub(crate) fn tombstone_named(&self, name: &str) -> Option<(Arc<str>, u64)> {
        let w = self.write.lock();
        let t = &w.tombstones;
        t.order.iter().rev().find_map(|id| {
            t.by_id
                .get(id)
                .filter(|(n, _)| &**n == name)
                .map(|(_, v)| (id.clone(), *v))
        })
    }

    /// Closes the session for good: every watch gets `SessionClosed`.
    pub(crate) fn close(&self) {
        let w = self.write.lock();
        let section = self.seq.write();
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
            self.push_log([Entry::new(record)]);
        }
        drop(section);
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
}
