//! The client's side of one watch on the wire (an *upstream*), shared by
//! every [`RemoteWatch`](super::RemoteWatch) that follows it (its
//! *downstreams*).
//!
//! The connection task applies each complete group the server sends to the
//! upstream's state — the latest event of each variable, as of the last
//! whole group — and hands it to every downstream. It never waits for a
//! downstream: each has a bounded queue, and one that has no room for a
//! group stops receiving and is marked *lagging*. When its user has drained
//! the queue, the downstream applies its overflow policy on its own side,
//! from the state and the versions it holds: a resync (`Lagged` markers for
//! what it skipped, then the current states, as one group at the state's
//! revision), a coalesced delivery (the current states with skip counts), or
//! the markers and the end (`OverflowPolicy::Close`). So a slow or abandoned
//! watch never holds up the connection, another watch or a unary call.
//!
//! Identical subscriptions of one client share one upstream: a new
//! downstream starts from the state (its initial events, one cut at the
//! state's revision) and receives every group after it.
//!
//! Locking: one mutex per upstream guards the state and its downstreams'
//! queues; it is held for a group's push or a receive, never across user
//! code (wakers are called after it is released, filters run on the user's
//! side).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::task::Waker;

use slab::Slab;

use crate::watch::catch_up::{Held, Mode, Now, catch_up as rule};
use crate::{EventKind, WatchEvent};

/// What a downstream does when its queue has no room for a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Overflow {
    /// `Lagged` markers, then the current states (as a local resync).
    Resync,
    /// The current states with skip counts (a coalescing watch).
    Coalesce,
    /// The markers (and deletions), then the end.
    Close,
}

/// How a downstream is set up.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DownConfig {
    pub(crate) capacity: usize,
    pub(crate) overflow: Overflow,
    pub(crate) include_initial: bool,
}

/// The state of one upstream and its downstreams, behind one mutex.
pub(crate) struct Shared {
    /// The latest event of each variable (by id) as of `revision`: its
    /// state, or its deletion (kept until every downstream has it).
    state: HashMap<Arc<str>, WatchEvent>,
    /// The revision of the last whole group applied.
    revision: u64,
    /// Set once the upstream is over; `Some(event)` if its end is an event
    /// of its own (`SessionClosed`, `Disconnected`).
    end: Option<Option<WatchEvent>>,
    downs: Slab<Down>,
    /// Some entry of `state` is a deletion (so `prune` has work; without
    /// this, every group would scan the whole state).
    tombstones: bool,
    /// Streams re-opened for this upstream after a failure.
    pub(crate) reconnects: u64,
}

struct Down {
    queue: VecDeque<WatchEvent>,
    /// The last version queued of each variable (by id).
    seen: HashMap<Arc<str>, u64>,
    config: DownConfig,
    lagging: bool,
    /// The end is queued: nothing follows the queue.
    done: bool,
    waker: Option<Waker>,
    /// One past the revision of the last event its user took.
    taken: u64,
    /// Times its queue overflowed (it resynced on its own side).
    overflows: u64,
}

impl Down {
    fn push(&mut self, e: WatchEvent) {
        match e.kind() {
            EventKind::Deleted => {
                self.seen.remove(e.variable_id());
            }
            EventKind::SessionClosed | EventKind::Disconnected => {}
            _ => set(&mut self.seen, &e, e.version()),
        }
        self.queue.push_back(e);
    }

    fn wake(&mut self, wakers: &mut Vec<Waker>) {
        if let Some(w) = self.waker.take() {
            wakers.push(w);
        }
    }
}

/// `map[e's variable] = v`, without a new key when the variable is there.
fn set<V>(map: &mut HashMap<Arc<str>, V>, e: &WatchEvent, v: V) {
    match map.get_mut(e.variable_id()) {
        Some(slot) => *slot = v,
        None => {
            map.insert(e.variable_id_shared(), v);
        }
    }
}

/// What a receive found.
pub(crate) enum Recv {
    Event(WatchEvent),
    /// Nothing now; the waker is registered.
    Empty,
    /// The downstream is over and drained.
    Ended,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            state: HashMap::new(),
            revision: 0,
            end: None,
            downs: Slab::new(),
            tombstones: false,
            reconnects: 0,
        }
    }
}

/// `e` presented as a state of kind `kind` at `revision`, with `skipped`.
fn as_state(e: &WatchEvent, kind: EventKind, revision: u64, skipped: u64) -> WatchEvent {
    WatchEvent::from_parts(kind, e.record().clone(), skipped).at_revision(revision)
}

impl Shared {
    /// The versions of the variables the upstream has (a resume asks to
    /// continue from them).
    pub(crate) fn resume_versions(&self) -> HashMap<String, u64> {
        self.state
            .iter()
            .filter(|(_, e)| e.kind() != EventKind::Deleted)
            .map(|(id, e)| (id.to_string(), e.version()))
            .collect()
    }

    /// Whether `e` is news to the upstream (idempotent apply: anything at
    /// or below a version it has is dropped).
    pub(crate) fn is_news(&self, e: &WatchEvent) -> bool {
        match e.kind() {
            EventKind::SessionClosed | EventKind::Disconnected => true,
            _ => self
                .state
                .get(e.variable_id())
                .is_none_or(|s| e.version() > s.version()),
        }
    }

    pub(crate) fn is_over(&self) -> bool {
        self.end.is_some()
    }

    /// Applies one whole group (already filtered by [`is_news`]) and hands
    /// it to every downstream that has room; the others start lagging.
    /// Adds the wakers to call once the lock is released to `wakers`.
    pub(crate) fn apply_group(&mut self, group: Vec<WatchEvent>, wakers: &mut Vec<Waker>) {
        let Some(first) = group.first() else {
            return;
        };
        let closing = group
            .iter()
            .find(|e| e.kind() == EventKind::SessionClosed)
            .cloned();
        self.revision = self.revision.max(first.revision());
        for e in &group {
            match e.kind() {
                // The state that follows a marker is what counts.
                EventKind::Lagged { .. } | EventKind::SessionClosed => continue,
                EventKind::Deleted => self.tombstones = true,
                _ => {}
            }
            set(&mut self.state, e, e.clone());
        }
        let states = || group.iter().filter(|e| e.kind() != EventKind::SessionClosed);
        let n = states().count();
        for (_, d) in self.downs.iter_mut() {
            if d.lagging || d.done {
                continue;
            }
            if d.queue.is_empty() || d.queue.len() + n <= d.config.capacity {
                for e in states() {
                    d.push(e.clone());
                }
            } else {
                d.lagging = true;
                d.overflows += 1;
            }
            d.wake(wakers);
        }
        self.prune();
        if let Some(closed) = closing {
            wakers.extend(self.finish(Some(closed)));
        }
    }

    /// Drops deleted variables that no downstream still has.
    fn prune(&mut self) {
        if !self.tombstones {
            return;
        }
        let downs = &self.downs;
        let mut kept = false;
        self.state.retain(|id, e| {
            let keep = e.kind() != EventKind::Deleted || downs.iter().any(|(_, d)| d.seen.contains_key(id));
            kept |= keep && e.kind() == EventKind::Deleted;
            keep
        });
        self.tombstones = kept;
    }

    /// The upstream is over: every downstream gets `last` (if any) after
    /// what it has (a lagging one after its catch-up) and then ends.
    pub(crate) fn finish(&mut self, last: Option<WatchEvent>) -> Vec<Waker> {
        let mut wakers = Vec::new();
        if self.end.is_some() {
            return wakers;
        }
        for (_, d) in self.downs.iter_mut() {
            if !d.lagging && !d.done {
                d.queue.extend(last.clone());
                d.done = true;
            }
            d.wake(&mut wakers);
        }
        self.end = Some(last);
        wakers
    }

    /// A new downstream, starting from the state: with initial values, its
    /// first group is the state of every live variable, one cut at the
    /// state's revision. Returns its key.
    pub(crate) fn attach(&mut self, config: DownConfig) -> usize {
        let mut d = Down {
            queue: VecDeque::new(),
            seen: HashMap::new(),
            config,
            lagging: false,
            done: false,
            waker: None,
            taken: 0,
            overflows: 0,
        };
        let mut live: Vec<&WatchEvent> = self
            .state
            .values()
            .filter(|e| e.kind() != EventKind::Deleted)
            .collect();
        live.sort_by(|a, b| a.variable_id().cmp(b.variable_id()));
        for e in live {
            if config.include_initial {
                d.push(as_state(e, EventKind::Initial, self.revision, 0));
            } else {
                d.seen.insert(e.variable_id_shared(), e.version());
            }
        }
        if let Some(last) = &self.end {
            d.queue.extend(last.clone());
            d.done = true;
        }
        self.downs.insert(d)
    }

    /// Removes a downstream; returns how many are left.
    pub(crate) fn detach(&mut self, key: usize) -> usize {
        self.downs.try_remove(key);
        self.prune();
        self.downs.len()
    }

    /// One past the revision every downstream's user has taken (0: some
    /// has taken nothing): what the upstream acknowledges.
    pub(crate) fn taken(&self) -> u64 {
        self.downs.iter().map(|(_, d)| d.taken).min().unwrap_or(0)
    }

    /// Times the downstream's queue overflowed.
    pub(crate) fn overflows(&self, key: usize) -> u64 {
        self.downs.get(key).map_or(0, |d| d.overflows)
    }

    /// The next event of downstream `key`, or registers `waker`.
    pub(crate) fn recv(&mut self, key: usize, waker: &Waker) -> Recv {
        let revision = self.revision;
        let end = self.end.clone();
        let Some(d) = self.downs.get_mut(key) else {
            return Recv::Ended;
        };
        if d.queue.is_empty() && d.lagging {
            catch_up(d, &self.state, revision);
            d.lagging = false;
            if let Some(last) = end {
                d.queue.extend(last);
                d.done = true;
            }
        }
        match d.queue.pop_front() {
            Some(e) => {
                d.taken = d.taken.max(e.revision().saturating_add(1));
                Recv::Event(e)
            }
            None if d.done => Recv::Ended,
            None => {
                match &d.waker {
                    Some(w) if w.will_wake(waker) => {}
                    _ => d.waker = Some(waker.clone()),
                }
                Recv::Empty
            }
        }
    }
}

/// Queues, as one group at `revision`, what downstream `d` missed while it
/// was lagging, from the upstream's state, by its overflow policy: each
/// variable by the catch-up rule (`watch/catch_up.rs`).
fn catch_up(d: &mut Down, state: &HashMap<Arc<str>, WatchEvent>, revision: u64) {
    let mode = match d.config.overflow {
        Overflow::Coalesce => Mode::Coalesce,
        Overflow::Resync => Mode::Resync,
        Overflow::Close => Mode::Close,
    };
    let mut ids: Vec<&Arc<str>> = state.keys().collect();
    ids.sort();
    let mut group = Vec::new();
    for id in ids {
        let e = &state[id];
        let held = d.seen.get(id).map_or(Held::Unknown, |&v| Held::after(v));
        let now = if e.kind() == EventKind::Deleted {
            Now::Deleted(e.version())
        } else {
            Now::Live(e.version())
        };
        if let Some(plan) = rule(mode, false, held, now) {
            group.extend(plan.events(e.record(), revision));
        }
    }
    for e in group {
        d.push(e);
    }
    if d.config.overflow == Overflow::Close {
        d.done = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind, id: &str, version: u64, revision: u64) -> WatchEvent {
        WatchEvent::bare(kind, id, id, version, revision)
    }

    fn drain(s: &mut Shared, key: usize) -> Vec<(EventKind, u64, u64)> {
        let mut out = Vec::new();
        while let Recv::Event(e) = s.recv(key, Waker::noop()) {
            out.push((e.kind(), e.version(), e.revision()));
        }
        out
    }

    fn apply(s: &mut Shared, group: Vec<WatchEvent>) {
        s.apply_group(group, &mut Vec::new());
    }

    fn config(capacity: usize, overflow: Overflow) -> DownConfig {
        DownConfig {
            capacity,
            overflow,
            include_initial: true,
        }
    }

    #[test]
    fn a_full_downstream_lags_and_catches_up_from_the_state() {
        let mut s = Shared::default();
        apply(
            &mut s,
            vec![
                ev(EventKind::Initial, "a", 0, 1),
                ev(EventKind::Initial, "b", 0, 1),
            ],
        );
        let fast = s.attach(config(100, Overflow::Resync));
        let slow = s.attach(config(2, Overflow::Resync));
        assert_eq!(drain(&mut s, fast).len(), 2);
        // The slow one's queue holds its two initial events: no room.
        for r in 2..=5 {
            apply(
                &mut s,
                vec![
                    ev(EventKind::Changed, "a", r - 1, r),
                    ev(EventKind::Changed, "b", r - 1, r),
                ],
            );
        }
        assert_eq!(drain(&mut s, fast).len(), 8, "the fast one got everything");
        let got = drain(&mut s, slow);
        use EventKind::*;
        assert_eq!(
            got,
            [
                (Initial, 0, 1),
                (Initial, 0, 1),
                (Lagged { first: 1, last: 3 }, 3, 5),
                (Changed, 4, 5),
                (Lagged { first: 1, last: 3 }, 3, 5),
                (Changed, 4, 5),
            ]
        );
        assert_eq!(s.overflows(slow), 1);
    }

    #[test]
    fn close_and_coalesce_policies() {
        use EventKind::*;
        let mut s = Shared::default();
        apply(&mut s, vec![ev(Initial, "a", 0, 1)]);
        let close = s.attach(config(1, Overflow::Close));
        let coalesce = s.attach(config(1, Overflow::Coalesce));
        for r in 2..=4 {
            apply(&mut s, vec![ev(Changed, "a", r - 1, r)]);
        }
        assert_eq!(
            drain(&mut s, close),
            [(Initial, 0, 1), (Lagged { first: 1, last: 3 }, 3, 4)]
        );
        assert!(matches!(s.recv(close, Waker::noop()), Recv::Ended));
        let got: Vec<(EventKind, u64)> = {
            let mut out = Vec::new();
            while let Recv::Event(e) = s.recv(coalesce, Waker::noop()) {
                out.push((e.kind(), e.skipped()));
            }
            out
        };
        assert_eq!(got, [(Initial, 0), (Changed, 2)]);
    }

    #[test]
    fn a_late_downstream_starts_from_the_state_and_deletions_are_kept_until_seen() {
        use EventKind::*;
        let mut s = Shared::default();
        apply(&mut s, vec![ev(Initial, "a", 0, 1), ev(Initial, "b", 0, 1)]);
        let d = s.attach(config(10, Overflow::Resync));
        apply(&mut s, vec![ev(Deleted, "a", 1, 2)]);
        // `a`'s deletion stays until `d` has taken it.
        let late = s.attach(config(10, Overflow::Resync));
        assert_eq!(drain(&mut s, late), [(Initial, 0, 2)]);
        assert_eq!(
            drain(&mut s, d),
            [(Initial, 0, 1), (Initial, 0, 1), (Deleted, 1, 2)]
        );
        apply(&mut s, vec![ev(Changed, "b", 1, 3)]);
        // Every downstream has the deletion: the tombstone is gone.
        assert!(!s.state.contains_key("a") && !s.tombstones);
        assert!(!s.resume_versions().contains_key("a"));
        assert_eq!(s.resume_versions()["b"], 1);
        // The end reaches both, after what they have.
        s.finish(Some(ev(SessionClosed, "", 0, 3)));
        assert_eq!(drain(&mut s, d), [(Changed, 1, 3), (SessionClosed, 0, 3)]);
        assert!(matches!(s.recv(d, Waker::noop()), Recv::Ended));
    }
}
