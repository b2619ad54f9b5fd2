//! The write path: every change of a session (registration, updates and
//! batches, deletion, closing), each made under the session's write lock.

use std::time::SystemTime;

use super::{Prepared, Session};
use crate::error::Error;
use crate::event_log::Entry;
use crate::observer::WaiterList;
use crate::record::{Record, RecordKind, Slot, VarCell, VarMeta};
use crate::session::types::{UpdateOptions, VarDef, check_name};
use crate::sync::{Arc, ArcCell, Ordering, fence};
use crate::value::{Value, validate};

impl Session {
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
}
