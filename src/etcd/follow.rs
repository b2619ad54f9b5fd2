//! [`Follower`]: what one watch knows (the variables it follows and the
//! version each is owed, where it is in etcd's history) and how a write of
//! the session, or a re-read after compaction, becomes its events. No I/O:
//! the hub that feeds it (`hub.rs`) does that.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::codec::{self, id_number};
use super::cut::Cut;
use super::group::{Group, MetaChange, VarChange};
use super::keys::Keys;
use crate::meta::VarMeta;
use crate::record::{Record, RecordKind};
use crate::transport::grpc::proto;
use crate::watch::catch_up::{Held, Mode, Now, catch_up as rule};
use crate::{EventKind, Result, Value, WatchEvent};

/// Whether a watch goes on after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    Go,
    /// Its last event is in the step's output.
    End,
}

/// A variable a watch follows.
struct Tracked {
    /// The next version it is owed.
    next: u64,
    meta: Arc<VarMeta>,
    /// The value of the last version delivered: the next change's old
    /// value, a deletion's last value (so the etcd watch need not carry
    /// previous values: half the bytes).
    last: Value,
}

/// One watch's position and state.
pub(super) struct Follower {
    keys: Keys,
    session: String,
    whole: bool,
    /// By id.
    tracked: BTreeMap<String, Tracked>,
    /// Which life of the session it follows (`meta`'s `create_revision`).
    pub(super) incarnation: i64,
    /// Every etcd revision up to this one is in its events.
    pub(super) etcd_rev: i64,
    /// The session revision of its last group.
    session_rev: u64,
}

/// An event of `kind` carrying `rec`'s state.
fn event(kind: EventKind, key: &[u8], meta: &Arc<VarMeta>, rec: &proto::Variable) -> Result<WatchEvent> {
    let record = codec::record(key, meta.clone(), rec, None)?;
    Ok(WatchEvent::from_parts(kind, crate::sync::Arc::new(record), 0))
}

/// The `Deleted` event of a variable whose last value was `last`.
fn deleted(meta: &Arc<VarMeta>, last: &Value, version: u64, revision: u64) -> WatchEvent {
    let record = Record {
        var: meta.clone(),
        kind: RecordKind::Deleted,
        version,
        revision,
        old_value: Some(last.clone()),
        value: last.clone(),
        source: None,
        metadata: None,
        timestamp: std::time::SystemTime::now(),
    };
    WatchEvent::from_parts(EventKind::Deleted, crate::sync::Arc::new(record), 0)
}

/// `record` with another old value (a watch that saw a version the decoder
/// did not).
fn with_old_value(record: &Record, old: Option<Value>) -> Record {
    Record {
        var: record.var.clone(),
        kind: record.kind,
        version: record.version,
        revision: record.revision,
        value: record.value.clone(),
        old_value: old,
        source: record.source.clone(),
        metadata: record.metadata.clone(),
        timestamp: record.timestamp,
    }
}

impl Follower {
    /// A watch of `states` (in registration order), read in `cut`; its
    /// initial events if `initial`.
    pub(super) fn new(
        keys: Keys,
        session: String,
        whole: bool,
        cut: &Cut,
        states: &[(&Vec<u8>, &proto::Variable)],
        initial: bool,
    ) -> Result<(Follower, Vec<WatchEvent>)> {
        let label = cut.meta.revision;
        let mut tracked = BTreeMap::new();
        let mut first = Vec::new();
        for (key, rec) in states {
            let meta = codec::var_meta(key, rec)?;
            if initial {
                first.push(event(EventKind::Initial, key, &meta, rec)?.at_revision(label));
            }
            tracked.insert(
                rec.id.clone(),
                Tracked {
                    next: rec.version + 1,
                    last: codec::value(key, &rec.value)?,
                    meta,
                },
            );
        }
        let f = Follower {
            keys,
            session,
            whole,
            tracked,
            incarnation: cut.incarnation,
            etcd_rev: cut.revision,
            session_rev: label,
        };
        Ok((f, first))
    }

    /// The session revision of its last group: every write of the session
    /// up to it has been applied.
    pub(super) fn session_revision(&self) -> u64 {
        self.session_rev
    }

    /// The session this watch follows.
    pub(super) fn session(&self) -> &str {
        &self.session
    }

    /// The last event of a watch that gave up reconnecting.
    pub(super) fn disconnected(&self) -> WatchEvent {
        WatchEvent::bare(EventKind::Disconnected, "", "", 0, self.session_rev)
    }

    /// The events `g` (a later write of the session) brings this watch.
    pub(super) fn apply(&mut self, g: &Group) -> (Vec<WatchEvent>, Step) {
        let mut out = Vec::new();
        self.etcd_rev = self.etcd_rev.max(g.etcd_rev);
        let (closed, revision) = match g.meta {
            MetaChange::Deleted => (true, self.session_rev),
            MetaChange::Put { incarnation, .. } if incarnation != self.incarnation => {
                (true, self.session_rev)
            }
            MetaChange::Put { revision, .. } => (false, revision),
            MetaChange::None => (false, self.session_rev),
        };
        if closed {
            out.push(WatchEvent::bare(EventKind::SessionClosed, "", "", 0, revision));
            return (out, Step::End);
        }
        for change in &g.vars {
            match change {
                VarChange::Put(p) => {
                    // A gap (versions etcd delivered to no one, or a
                    // variable met for the first time) by the catch-up rule.
                    let tracked = self.tracked.get(&p.id);
                    let held = match tracked {
                        Some(t) => Held::Next {
                            next: t.next,
                            initial_owed: false,
                        },
                        None if self.whole => Held::Unknown,
                        None => continue,
                    };
                    let Some(plan) = rule(Mode::Resync, self.whole, held, Now::Live(p.version)) else {
                        continue; // already delivered
                    };
                    let record = match (tracked, &p.record.old_value, plan.lagged) {
                        // The decoder's old value is this watch's.
                        (Some(_), Some(_), None) => p.record.clone(),
                        (Some(t), None, None) => {
                            crate::sync::Arc::new(with_old_value(&p.record, Some(t.last.clone())))
                        }
                        // After a gap, or first met: no old value.
                        _ => crate::sync::Arc::new(with_old_value(&p.record, None)),
                    };
                    out.extend(plan.events(&record, record.revision));
                    let t = self.tracked.entry(p.id.clone()).or_insert_with(|| Tracked {
                        next: 0,
                        meta: p.meta.clone(),
                        last: p.value.clone(),
                    });
                    t.next = p.version + 1;
                    t.last = p.value.clone();
                }
                VarChange::Delete { key, id } => {
                    let id = match id {
                        Some(id) => Some(id.clone()),
                        // The decoder did not know the key: find it by name.
                        None => self
                            .tracked
                            .iter()
                            .find(|(_, t)| {
                                self.keys.var(&self.session, &t.meta.name).as_bytes() == key.as_slice()
                            })
                            .map(|(id, _)| id.clone()),
                    };
                    if let Some(t) = id.and_then(|id| self.tracked.remove(&id)) {
                        out.push(deleted(&t.meta, &t.last, t.next, revision));
                    }
                }
            }
        }
        self.session_rev = revision;
        if !self.whole && self.tracked.is_empty() {
            return (out, Step::End); // the last watched variable is gone
        }
        (out, Step::Go)
    }

    /// etcd compacted history this watch still needed; `cut` is the whole
    /// session read again (`None`: it no longer exists). Per variable, the
    /// versions it cannot have as `Lagged`, then the current state, as a
    /// local watch reports an overflow.
    ///
    /// A cut no newer than what the watch has (it joined its hub after the
    /// cut was read) brings nothing. A record that does not decode (not
    /// written by varwatch) is passed over, its variable left as it was.
    pub(super) fn resync(&mut self, cut: Option<&Cut>) -> (Vec<WatchEvent>, Step) {
        let mut out = Vec::new();
        let Some(cut) = cut.filter(|c| c.incarnation == self.incarnation) else {
            out.push(WatchEvent::bare(
                EventKind::SessionClosed,
                "",
                "",
                0,
                self.session_rev,
            ));
            return (out, Step::End);
        };
        if cut.revision <= self.etcd_rev {
            return (out, Step::Go);
        }
        let label = cut.meta.revision;
        let by_id: BTreeMap<&str, &(Vec<u8>, proto::Variable)> =
            cut.recs.iter().map(|kr| (kr.1.id.as_str(), kr)).collect();
        let mut order: Vec<(&String, &mut Tracked)> = self.tracked.iter_mut().collect();
        order.sort_by_key(|(_, t)| t.meta.slot);
        let mut gone = Vec::new();
        // Each variable by the catch-up rule (`watch/catch_up.rs`).
        for (id, t) in order {
            match by_id.get(id.as_str()) {
                Some((key, rec)) => {
                    let held = Held::Next {
                        next: t.next,
                        initial_owed: false,
                    };
                    let Some(plan) = rule(Mode::Resync, self.whole, held, Now::Live(rec.version)) else {
                        continue; // nothing missed
                    };
                    let caught_up = (|| -> Result<(Vec<WatchEvent>, Value)> {
                        let state = event(EventKind::Changed, key, &t.meta, rec)?;
                        Ok((
                            plan.events(state.record(), label).collect(),
                            codec::value(key, &rec.value)?,
                        ))
                    })();
                    if let Ok((evs, last)) = caught_up {
                        out.extend(evs);
                        t.next = rec.version.saturating_add(1);
                        t.last = last;
                    }
                }
                None => {
                    // Deleted meanwhile: how many versions it went through
                    // before is gone with the history (the deletion counts
                    // as the next version).
                    out.push(deleted(&t.meta, &t.last, t.next, label));
                    gone.push(id.clone());
                }
            }
        }
        for id in gone {
            self.tracked.remove(&id);
        }
        if self.whole {
            let mut new: Vec<&(Vec<u8>, proto::Variable)> = cut
                .recs
                .iter()
                .filter(|(_, r)| !self.tracked.contains_key(&r.id))
                .collect();
            new.sort_by_key(|(_, r)| id_number(&r.id));
            for (key, rec) in new {
                let Some(plan) = rule(Mode::Resync, true, Held::Unknown, Now::Live(rec.version)) else {
                    continue;
                };
                let first = (|| -> Result<(Vec<WatchEvent>, Tracked)> {
                    let meta = codec::var_meta(key, rec)?;
                    let state = event(EventKind::Initial, key, &meta, rec)?;
                    let t = Tracked {
                        next: rec.version.saturating_add(1),
                        last: codec::value(key, &rec.value)?,
                        meta,
                    };
                    Ok((plan.events(state.record(), label).collect(), t))
                })();
                if let Ok((evs, t)) = first {
                    out.extend(evs);
                    self.tracked.insert(rec.id.clone(), t);
                }
            }
        }
        self.etcd_rev = self.etcd_rev.max(cut.revision);
        self.session_rev = label;
        if !self.whole && self.tracked.is_empty() {
            return (out, Step::End);
        }
        (out, Step::Go)
    }
}
