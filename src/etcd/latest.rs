//! [`Latest`]: where a coalescing (or throttled) [`EtcdWatch`](super::EtcdWatch)
//! keeps what it owes its user: the latest state of each variable that
//! changed since the last receive, not every version.
//!
//! The hub merges each write's events into it and never waits (it holds at
//! most one entry per watched variable, whatever the backlog). A receive
//! takes everything at once: the states after the last write merged, so a
//! consistent cut, delivered as one group labelled with that write's
//! revision. `skipped` counts the versions passed over, as locally.

use std::collections::HashMap;
use std::task::Waker;

use parking_lot::Mutex;

use crate::{EventKind, WatchEvent};

/// A variable's entry: the event the user is owed.
struct Entry {
    event: WatchEvent,
    /// Registration order, for delivery.
    slot: u64,
}

#[derive(Default)]
struct State {
    /// By id.
    owed: HashMap<String, Entry>,
    /// By id: the first version the user has not accounted for (absent:
    /// the variable's first event is still owed, or it is not followed).
    base: HashMap<String, u64>,
    /// The watch's last event (`SessionClosed`, `Disconnected`), delivered
    /// after the others.
    last: Option<WatchEvent>,
    /// The watch has ended (after `last`, if any).
    ended: bool,
    /// Whether the whole session is watched (a variable deleted before its
    /// first state was delivered is then not mentioned at all).
    whole: bool,
    /// The session revision of the last write merged.
    revision: u64,
    /// Deletions and the end are not held back by a throttle.
    urgent: bool,
    waker: Option<Waker>,
    /// The user dropped the watch.
    dropped: bool,
}

/// A coalescing watch's owed states, shared by the hub (merging) and the
/// watch (taking).
#[derive(Default)]
pub(super) struct Latest {
    state: Mutex<State>,
}

/// What a receive finds.
pub(super) enum Taken {
    /// The owed states, as one group (possibly followed by the last event).
    Events(Vec<WatchEvent>),
    /// Nothing yet.
    Empty,
    /// Nothing, ever again.
    Ended,
}

impl Latest {
    pub(super) fn new(whole: bool) -> Latest {
        Latest {
            state: Mutex::new(State {
                whole,
                ..State::default()
            }),
        }
    }

    /// A variable followed from its snapshot state at `version`, whose
    /// first event is not owed (no initial states).
    pub(super) fn follow_from(&self, id: &str, version: u64) {
        self.state.lock().base.insert(id.to_string(), version + 1);
    }

    /// Merges a step's events (in order); `end` if the step was the
    /// watch's last. `false` once the user has dropped the watch.
    pub(super) fn merge(&self, events: Vec<WatchEvent>, end: bool) -> bool {
        let mut st = self.state.lock();
        if st.dropped {
            return false;
        }
        for e in events {
            st.revision = st.revision.max(e.revision());
            let id = e.variable_id().to_string();
            match e.kind() {
                // Passed-over versions are counted from versions.
                EventKind::Lagged { .. } => {}
                EventKind::SessionClosed | EventKind::Disconnected => {
                    st.last = Some(e);
                    st.ended = true;
                    st.urgent = true;
                }
                EventKind::Initial => {
                    let slot = e.record().var.slot;
                    let event = WatchEvent::from_parts(EventKind::Initial, e.record().clone(), 0);
                    st.owed.insert(id, Entry { event, slot });
                }
                EventKind::Changed | EventKind::Deleted => {
                    let deleted = e.kind() == EventKind::Deleted;
                    let owed_initial = st
                        .owed
                        .get(&id)
                        .is_some_and(|x| x.event.kind() == EventKind::Initial);
                    if deleted && owed_initial && st.whole {
                        // Never held by the user: nothing to say.
                        st.owed.remove(&id);
                        st.base.remove(&id);
                        continue;
                    }
                    let slot = e.record().var.slot;
                    let event = if owed_initial && !deleted {
                        WatchEvent::from_parts(EventKind::Initial, e.record().clone(), 0)
                    } else {
                        let base = st.base.get(&id).copied().unwrap_or(e.version());
                        let skipped = e.version().saturating_sub(base);
                        WatchEvent::from_parts(e.kind(), e.record().clone(), skipped)
                    };
                    st.urgent |= deleted;
                    st.owed.insert(id, Entry { event, slot });
                }
            }
        }
        if end {
            st.ended = true;
            st.urgent = true;
        }
        if let Some(w) = st.waker.take() {
            drop(st);
            w.wake();
        }
        true
    }

    /// Takes everything owed (unless `held` — a throttle's interval has
    /// not passed — and nothing urgent is owed); registers `waker` if it
    /// takes nothing.
    pub(super) fn take(&self, waker: &Waker, held: bool) -> Taken {
        let mut st = self.state.lock();
        if held && !st.urgent {
            st.waker = Some(waker.clone());
            return Taken::Empty;
        }
        if st.owed.is_empty() {
            return match st.last.take() {
                Some(last) => Taken::Events(vec![last]),
                None if st.ended => Taken::Ended,
                None => {
                    st.waker = Some(waker.clone());
                    Taken::Empty
                }
            };
        }
        let label = st.revision;
        let mut owed: Vec<Entry> = st.owed.drain().map(|(_, e)| e).collect();
        owed.sort_by_key(|e| e.slot);
        let mut out = Vec::with_capacity(owed.len() + 1);
        for Entry { event, .. } in owed {
            let id = event.variable_id().to_string();
            if event.kind() == EventKind::Deleted {
                st.base.remove(&id);
            } else {
                st.base.insert(id, event.version() + 1);
            }
            out.push(event.at_revision(label));
        }
        out.extend(st.last.take());
        st.urgent = false;
        Taken::Events(out)
    }

    /// The user dropped the watch: later merges are refused.
    pub(super) fn drop_watch(&self) {
        let mut st = self.state.lock();
        st.dropped = true;
        st.owed.clear();
    }

    /// Whether the user dropped the watch.
    pub(super) fn is_dropped(&self) -> bool {
        self.state.lock().dropped
    }
}
