//! The journal hooks of the write path (feature `durable`): each change is
//! recorded here, under the session's write lock, *before* it is published
//! (see `durable/mod.rs`). Without the feature, or for an in-memory store,
//! every hook is a no-op the compiler removes.
//!
//! And the two ends of a durable store's life: a session rebuilt from its
//! model when the store opens ([`Session::restore`]), and a session read
//! into its model for a snapshot ([`Session::to_model`]).

#[cfg(all(feature = "durable", not(loom)))]
mod on {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::super::{Index, Session, StoreCounters, Tombstones, WriteState};
    use crate::durable::Durable;
    use crate::durable::model::{Change, Nothing, SessionModel, Tombstone, Vars};
    use crate::error::Error;
    use crate::ident::id_number;
    use crate::publish::ArcCell;
    use crate::record::{Record, Spare, VarCell};
    use crate::session::Variable;
    use crate::session::types::SessionOptions;
    use crate::sync::{Arc, AtomicU64, Ordering};
    use crate::transport::grpc::convert::{
        metadata_from, metadata_to, record_from, time, value_to, var_meta_from, variable_to,
    };
    use crate::transport::grpc::proto;
    use crate::wakeup::WaiterList;

    fn ms(t: SystemTime) -> u64 {
        t.duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// A change as the journal holds it: what `Model::apply` needs.
    fn change_of(r: &Record) -> proto::Variable {
        proto::Variable {
            id: r.var.id.to_string(),
            value: Some(value_to(&r.value)),
            version: r.version,
            revision: r.revision,
            updated_at: Some(time(r.timestamp)),
            source: r.source.as_deref().map(str::to_string),
            change_metadata: r.metadata.as_deref().map(metadata_to).unwrap_or_default(),
            ..Default::default()
        }
    }

    impl Session {
        fn commit(&self, change: Change, wait: bool) -> Result<(), Error> {
            match &self.durable {
                Some(d) => d.commit(&self.id, self.incarnation, change, wait),
                None => Ok(()),
            }
        }

        /// The session was created.
        pub(crate) fn journal_create(&self) -> Result<(), Error> {
            if self.durable.is_none() {
                return Ok(());
            }
            let info = proto::SessionInfo {
                session: self.id.to_string(),
                metadata: metadata_to(&self.metadata),
                created_at: Some(time(self.created_at)),
                ttl_ms: self.ttl.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
                ..Default::default()
            };
            self.commit(Change::Create(info), true)
        }

        /// The session is deleted (`wait`) or expired (not waited for: an
        /// expiry that is lost happens again).
        pub(crate) fn journal_delete(&self, wait: bool) -> Result<(), Error> {
            self.commit(Change::Delete(Nothing {}), wait)
        }

        /// Variables were registered (their first records).
        pub(crate) fn journal_register(&self, records: &[Arc<Record>]) -> Result<(), Error> {
            if self.durable.is_none() {
                return Ok(());
            }
            let vars = records
                .iter()
                .map(|r| variable_to(&Variable { record: r.clone() }))
                .collect();
            self.commit(Change::Register(Vars { vars }), true)
        }

        /// Variables changed: one entry per revision, in order.
        pub(crate) fn journal_updates(&self, groups: &[&[Arc<Record>]]) -> Result<(), Error> {
            let Some(d) = &self.durable else {
                return Ok(());
            };
            let changes: Vec<Change> = groups
                .iter()
                .map(|g| {
                    Change::Update(Vars {
                        vars: g.iter().map(|r| change_of(r)).collect(),
                    })
                })
                .collect();
            d.commit_many(&self.id, self.incarnation, changes)
        }

        /// A variable was deleted (its `Deleted` record).
        pub(crate) fn journal_delete_var(&self, record: &Record) -> Result<(), Error> {
            if self.durable.is_none() {
                return Ok(());
            }
            self.commit(Change::DeleteVar(change_of(record)), true)
        }

        /// The session was accessed: recorded at most every quarter of its
        /// TTL (not waited for).
        pub(crate) fn journal_touch(&self) {
            let (Some(_), Some(ttl)) = (&self.durable, self.ttl) else {
                return;
            };
            let now = ms(SystemTime::now());
            let last = self.journaled_touch.load(Ordering::Relaxed);
            let quarter = u64::try_from((ttl / 4).as_millis()).unwrap_or(u64::MAX);
            if now.saturating_sub(last) < quarter {
                return;
            }
            self.journaled_touch.store(now, Ordering::Relaxed);
            let _ = self.commit(Change::Touch(now), false);
        }

        /// The session as a snapshot holds it, read under its write lock.
        pub(crate) fn to_model(&self) -> Option<SessionModel> {
            let w = self.write.lock();
            if self.is_closed() {
                return None;
            }
            let vars = self
                .cells()
                .iter()
                .map(|c| {
                    variable_to(&Variable {
                        record: c.current.load_full(),
                    })
                })
                .collect();
            let tombstones = w
                .tombstones
                .order
                .iter()
                .filter_map(|id| {
                    w.tombstones.by_id.get(id).map(|(name, version)| Tombstone {
                        id: id.to_string(),
                        name: name.to_string(),
                        version: *version,
                    })
                })
                .collect();
            let last_access = SystemTime::now()
                .checked_sub(self.idle_for())
                .unwrap_or(UNIX_EPOCH);
            Some(SessionModel {
                info: Some(proto::SessionInfo {
                    session: self.id.to_string(),
                    metadata: metadata_to(&self.metadata),
                    created_at: Some(time(self.created_at)),
                    ttl_ms: self.ttl.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
                    revision: w.revision,
                    ..Default::default()
                }),
                incarnation: self.incarnation,
                last_access_ms: ms(last_access),
                vars,
                tombstones,
            })
        }

        /// The session a model describes, as it was.
        pub(crate) fn restore(
            m: SessionModel,
            max_log: usize,
            counters: Arc<StoreCounters>,
            durable: Arc<Durable>,
        ) -> Result<Session, Error> {
            let info = m.info.unwrap_or_default();
            let corrupt = |what: &str| Error::Storage {
                path: String::new(),
                reason: format!(
                    "session `{}` in the snapshot or journal: {what}",
                    crate::error::q(&info.session)
                ),
            };
            let opts = SessionOptions {
                metadata: metadata_from(info.metadata.clone()),
                ttl: info.ttl_ms.map(Duration::from_millis),
            };
            let mut s = Session::new(&info.session, opts, max_log, counters);
            s.incarnation = m.incarnation;
            s.created_at = info
                .created_at
                .and_then(|t| SystemTime::try_from(t).ok())
                .unwrap_or(UNIX_EPOCH);
            // The TTL goes on from the recorded access.
            let idle = SystemTime::now()
                .duration_since(UNIX_EPOCH + Duration::from_millis(m.last_access_ms))
                .unwrap_or_default();
            if let Some(epoch) = s.epoch.checked_sub(idle) {
                s.epoch = epoch;
            }
            s.journaled_touch = AtomicU64::new(m.last_access_ms);
            let mut index = Index::default();
            let mut next_slot = 0;
            for v in &m.vars {
                let slot = id_number(&v.id);
                let meta = var_meta_from(v, slot).map_err(|e| corrupt(&e.to_string()))?;
                let record = record_from(meta.clone(), v, None).map_err(|e| corrupt(&e.to_string()))?;
                let cell = Arc::new(VarCell {
                    meta: meta.clone(),
                    current: ArcCell::new(Arc::new(record)),
                    waiters: WaiterList::default(),
                });
                index.by_id.insert(meta.id.clone(), cell.clone());
                index.by_name.insert(meta.name.clone(), cell);
                next_slot = next_slot.max(slot + 1);
            }
            let mut tombstones = Tombstones::default();
            for t in m.tombstones {
                tombstones.add(t.id.into(), t.name.into(), t.version);
            }
            s.index = crate::sync::RwLock::new(index);
            s.write = crate::sync::Mutex::new(WriteState {
                revision: info.revision,
                next_slot,
                spare: Spare::default(),
                tombstones,
            });
            s.revision = AtomicU64::new(info.revision);
            s.durable = Some(durable);
            Ok(s)
        }
    }
}

#[cfg(not(all(feature = "durable", not(loom))))]
use {super::Session, crate::error::Error, crate::record::Record, crate::sync::Arc};

#[cfg(not(all(feature = "durable", not(loom))))]
impl Session {
    #[inline]
    pub(crate) fn journal_create(&self) -> Result<(), Error> {
        Ok(())
    }
    #[inline]
    pub(crate) fn journal_delete(&self, _wait: bool) -> Result<(), Error> {
        Ok(())
    }
    #[inline]
    pub(crate) fn journal_register(&self, _records: &[Arc<Record>]) -> Result<(), Error> {
        Ok(())
    }
    #[inline]
    pub(crate) fn journal_updates(&self, _groups: &[&[Arc<Record>]]) -> Result<(), Error> {
        Ok(())
    }
    #[inline]
    pub(crate) fn journal_delete_var(&self, _record: &Record) -> Result<(), Error> {
        Ok(())
    }
    #[inline]
    pub(crate) fn journal_touch(&self) {}
}
