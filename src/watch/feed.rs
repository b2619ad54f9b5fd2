//! [`Feed`]: the user's side of a watch that a task feeds — a remote
//! client's watch on the wire (an *upstream*, shared by every identical
//! [`Watch`](super::Watch) of the client), or an etcd watch. Each watch
//! reading it is a *downstream*.
//!
//! The feeding task applies each complete group (one revision) to the
//! feed's state — the latest event of each variable, as of the last whole
//! group — and hands it to every downstream. It never waits for a
//! downstream: each has a bounded queue, and one that has no room for a
//! group stops receiving and is marked *lagging*. When its user has drained
//! the queue, the downstream catches up on its own side, from the state and
//! the versions it holds, by the catch-up rule (`catch_up.rs`): a resync
//! (`Lagged` markers, then the current states, as one group at the state's
//! revision) or, with `OverflowPolicy::Close`, the markers and the end. So a
//! slow or abandoned watch never holds up the connection, another watch or
//! a unary call.
//!
//! A coalescing (or throttled) downstream queues nothing: every group only
//! marks it *dirty*, and each receive that finds it dirty catches up from
//! the state with [`Mode::Coalesce`]: the latest states, with exact skip
//! counts, one cut — as a local coalescing watch does. A throttle holds
//! that catch-up back until its interval has passed, unless a deletion or
//! the end is owed.
//!
//! A feed with *backpressure* (an etcd watch, which has one downstream and
//! a history to wait in) lets its producer ask whether a group fits
//! ([`Feed::fits`]) and wait for room ([`Feed::poll_room`]) instead of
//! letting the downstream lag.
//!
//! Locking: one mutex per feed guards the state and its downstreams'
//! queues; it is held for a group's push or a receive, never across user
//! code (wakers are called after it is released, filters run in the front
//! end).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use slab::Slab;

use super::catch_up::{Held, Mode, Now, catch_up};
use super::options::Resume;
use super::resume::{self, Tombstone};
use super::throttle::Throttle;
use super::{CloseReason, EventKind, Step, WatchEvent};
use crate::ident::id_number;
use crate::record::Record;

/// How a downstream is set up.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DownConfig {
    /// Most events queued before it lags (a group is never split: an empty
    /// queue takes any group).
    pub(crate) capacity: usize,
    /// It queues nothing and catches up at every receive: a coalescing (or
    /// throttled) watch.
    pub(crate) coalescing: bool,
    /// How it catches up: by its overflow policy (`Resync`, `Close`,
    /// `Coalesce`), or `Coalesce` for a coalescing watch.
    pub(crate) mode: Mode,
    /// Its first group is the state of every live variable (`Initial`).
    pub(crate) include_initial: bool,
    /// Coalescing: at most one delivery per interval.
    pub(crate) throttle: Option<Duration>,
}

/// The state of one feed and its downstreams, behind one mutex.
pub(crate) struct Feed {
    /// The latest event of each variable (by id) as of `revision`: its
    /// state, or its deletion (kept until no downstream still holds the
    /// variable).
    state: HashMap<Arc<str>, WatchEvent>,
    /// The revision of the last whole group applied.
    revision: u64,
    /// Set once the feed is over; `Some(event)` if its end is an event of
    /// its own (`SessionClosed`, `Disconnected`).
    end: Option<Option<WatchEvent>>,
    /// Why it ended.
    reason: Option<CloseReason>,
    downs: Slab<Down>,
    /// Some entry of `state` is a deletion (so `prune` has work; without
    /// this, every group would scan the whole state).
    tombstones: bool,
    /// A whole-session watch (the coalescing rule says nothing of a variable
    /// deleted before its first state was delivered).
    whole: bool,
    /// The producer waits for room instead of letting a downstream lag.
    backpressure: bool,
    /// The producer waiting for room.
    room: Option<Waker>,
    /// Streams re-opened for this feed after a failure.
    pub(crate) reconnects: u64,
    /// Which life of the session this feed follows.
    pub(crate) incarnation: u64,
    /// Every write of the session up to this revision has been applied
    /// (also those that changed nothing this feed follows).
    progress: u64,
}

struct Down {
    queue: VecDeque<WatchEvent>,
    /// What its user holds of each variable (by id).
    held: HashMap<Arc<str>, Held>,
    config: DownConfig,
    /// Lossless: it had no room for a group; it takes nothing more until
    /// its user has drained the queue, then catches up.
    lagging: bool,
    /// Coalescing: the state moved since its last catch-up.
    dirty: bool,
    /// Coalescing: a deletion of a variable it holds (or the end) is owed,
    /// which a throttle does not hold back.
    urgent: bool,
    throttle: Option<Throttle>,
    /// The end is queued: nothing follows the queue.
    done: bool,
    /// Its own reason to end (an overflow under `OverflowPolicy::Close`),
    /// before the feed's.
    reason: Option<CloseReason>,
    waker: Option<Waker>,
    /// One past the revision of the last event its user took.
    taken: u64,
    /// The revision of its first group.
    start: u64,
    /// Times it lagged, or received a group with `Lagged` markers.
    lag_events: u64,
    /// Coalescing: the next receive catches up whatever a throttle says.
    forced: bool,
    /// Woken once the feed's progress reaches this revision.
    progress_waiter: Option<(u64, Waker)>,
    /// Versions passed over by coalescing.
    skipped: u64,
}

impl Down {
    /// Queues `e`, and notes what its user then holds.
    fn push(&mut self, e: WatchEvent) {
        match e.kind() {
            EventKind::Deleted => {
                self.held.remove(e.variable_id());
            }
            EventKind::SessionClosed | EventKind::Disconnected | EventKind::Lagged { .. } => {}
            _ => set(&mut self.held, &e, Held::after(e.version())),
        }
        self.queue.push_back(e);
    }

    fn wake(&mut self, wakers: &mut Vec<Waker>) {
        if let Some(w) = self.waker.take() {
            wakers.push(w);
        }
    }

    fn coalescing(&self) -> bool {
        self.config.coalescing
    }

    /// Whether a group of `n` events fits its queue.
    fn fits(&self, n: usize) -> bool {
        self.queue.is_empty() || self.queue.len() + n <= self.config.capacity
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

/// `e` presented as a state of kind `kind` at `revision`.
fn as_state(e: &WatchEvent, kind: EventKind, revision: u64) -> WatchEvent {
    WatchEvent::from_parts(kind, e.record().clone(), 0).at_revision(revision)
}

impl Feed {
    /// An empty feed; `whole` for a whole-session watch, `backpressure` for
    /// a producer that waits for room.
    pub(crate) fn new(whole: bool, backpressure: bool) -> Feed {
        Feed {
            state: HashMap::new(),
            revision: 0,
            end: None,
            reason: None,
            downs: Slab::new(),
            tombstones: false,
            whole,
            backpressure,
            room: None,
            reconnects: 0,
            incarnation: 0,
            progress: 0,
        }
    }

    /// Every write up to `revision` has been applied (a write that brought
    /// this feed nothing, or a server's progress answer): wakes the
    /// downstreams waiting for it.
    pub(crate) fn note_progress(&mut self, revision: u64, wakers: &mut Vec<Waker>) {
        self.progress = self.progress.max(revision);
        for (_, d) in self.downs.iter_mut() {
            if d.progress_waiter
                .as_ref()
                .is_some_and(|(r, _)| *r <= self.progress)
            {
                wakers.extend(d.progress_waiter.take().map(|(_, w)| w));
            }
        }
    }

    /// Whether downstream `key` has been handed everything up to `revision`
    /// (its queue drained, the feed's progress past it); if not, `waker` is
    /// woken when the progress gets there.
    pub(crate) fn caught_up(&mut self, key: usize, revision: u64, waker: &Waker) -> bool {
        let progress = self.progress;
        let Some(d) = self.downs.get_mut(key) else {
            return true;
        };
        if d.done || (progress >= revision && d.queue.is_empty() && !d.dirty && !d.lagging) {
            return true;
        }
        if progress < revision {
            d.progress_waiter = Some((revision, waker.clone()));
        }
        false
    }

    /// Downstream `key`'s next receive catches up whatever its throttle
    /// says (a server answering a progress request).
    pub(crate) fn force(&mut self, key: usize) {
        if let Some(d) = self.downs.get_mut(key) {
            d.forced = true;
        }
    }

    /// The versions of the variables the feed has (a resume asks to
    /// continue from them).
    pub(crate) fn resume_versions(&self) -> HashMap<String, u64> {
        self.state
            .iter()
            .filter(|(_, e)| e.kind() != EventKind::Deleted)
            .map(|(id, e)| (id.to_string(), e.version()))
            .collect()
    }

    /// Whether `e` is news to the feed (idempotent apply: anything at or
    /// below a version it has is dropped).
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

    /// No downstream is left (every user has dropped its watch).
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub(crate) fn is_closed(&self) -> bool {
        self.downs.is_empty()
    }

    /// With backpressure: whether a group of `n` events fits every
    /// lossless downstream now.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub(crate) fn fits(&self, n: usize) -> bool {
        self.downs
            .iter()
            .all(|(_, d)| d.done || d.coalescing() || d.fits(n))
    }

    /// With backpressure: ready once a group of `n` events fits
    /// (`Ready(false)`: no downstream is left).
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub(crate) fn poll_room(&mut self, n: usize, cx: &mut Context<'_>) -> Poll<bool> {
        if self.is_closed() {
            return Poll::Ready(false);
        }
        if self.fits(n) {
            return Poll::Ready(true);
        }
        self.room = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Applies one whole group (already filtered by [`is_news`]) and hands
    /// it to every downstream that has room; the others start lagging.
    /// Adds the wakers to call once the lock is released to `wakers`.
    ///
    /// [`is_news`]: Self::is_news
    pub(crate) fn apply_group(&mut self, group: Vec<WatchEvent>, wakers: &mut Vec<Waker>) {
        let group: Vec<WatchEvent> = group.into_iter().map(|e| self.named(e)).collect();
        let Some(first) = group.first() else {
            return;
        };
        let closing = group
            .iter()
            .find(|e| e.kind() == EventKind::SessionClosed)
            .cloned();
        self.revision = self.revision.max(first.revision());
        let mut marked = false;
        self.note_progress(first.revision(), wakers);
        for e in &group {
            match e.kind() {
                // The state that follows a marker is what counts.
                EventKind::Lagged { .. } => {
                    marked = true;
                    continue;
                }
                EventKind::SessionClosed | EventKind::Disconnected => continue,
                EventKind::Deleted => self.tombstones = true,
                _ => {}
            }
            set(&mut self.state, e, e.clone());
        }
        let states = || {
            group
                .iter()
                .filter(|e| !matches!(e.kind(), EventKind::SessionClosed | EventKind::Disconnected))
        };
        let n = states().count();
        for (_, d) in self.downs.iter_mut() {
            if d.done {
                continue;
            }
            if d.coalescing() {
                d.dirty = true;
                d.urgent |=
                    states().any(|e| e.kind() == EventKind::Deleted && d.held.contains_key(e.variable_id()));
                d.wake(wakers);
                continue;
            }
            if d.lagging {
                continue;
            }
            if d.fits(n) {
                for e in states() {
                    d.push(e.clone());
                }
                d.lag_events += u64::from(marked);
            } else {
                d.lagging = true;
                d.lag_events += 1;
            }
            d.wake(wakers);
        }
        self.prune();
        if let Some(closed) = closing {
            wakers.extend(self.finish(Some(closed), CloseReason::SessionClosed));
        }
    }

    /// Drops deleted variables that no downstream still holds.
    fn prune(&mut self) {
        if !self.tombstones {
            return;
        }
        let downs = &self.downs;
        let mut kept = false;
        self.state.retain(|id, e| {
            let keep = e.kind() != EventKind::Deleted || downs.iter().any(|(_, d)| d.held.contains_key(id));
            kept |= keep && e.kind() == EventKind::Deleted;
            keep
        });
        self.tombstones = kept;
    }

    /// The feed is over: every downstream gets `last` (if any) after what it
    /// has (a lagging or coalescing one after its catch-up) and then ends.
    pub(crate) fn finish(&mut self, last: Option<WatchEvent>, reason: CloseReason) -> Vec<Waker> {
        let mut wakers = Vec::new();
        if self.end.is_some() {
            return wakers;
        }
        for (_, d) in self.downs.iter_mut() {
            if d.coalescing() {
                d.urgent = true;
            } else if !d.lagging && !d.done {
                d.queue.extend(last.clone());
                d.done = true;
            }
            d.wake(&mut wakers);
        }
        if let Some(w) = self.room.take() {
            wakers.push(w);
        }
        self.end = Some(last);
        self.reason = Some(reason);
        wakers
    }

    /// A new downstream, starting from the state: with initial values, its
    /// first group is the state of every live variable, one cut at the
    /// state's revision (for a coalescing one, at its first receive).
    /// Returns its key.
    pub(crate) fn attach(&mut self, config: DownConfig) -> usize {
        let mut d = Down {
            queue: VecDeque::new(),
            held: HashMap::new(),
            config,
            lagging: false,
            dirty: false,
            urgent: false,
            throttle: config.throttle.map(Throttle::new),
            done: false,
            reason: None,
            waker: None,
            taken: 0,
            start: self.revision,
            lag_events: 0,
            skipped: 0,
            forced: false,
            progress_waiter: None,
        };
        let mut live: Vec<&WatchEvent> = self
            .state
            .values()
            .filter(|e| e.kind() != EventKind::Deleted)
            .collect();
        live.sort_by_key(|e| (id_number(e.variable_id()), e.variable_id_shared()));
        for e in live {
            match (config.include_initial, d.coalescing()) {
                (true, true) => {
                    // Owed as an `Initial` at the first receive.
                    d.held.insert(
                        e.variable_id_shared(),
                        Held::Next {
                            next: e.version(),
                            initial_owed: true,
                        },
                    );
                    d.dirty = true;
                }
                (true, false) => d.push(as_state(e, EventKind::Initial, self.revision)),
                (false, _) => {
                    d.held.insert(e.variable_id_shared(), Held::after(e.version()));
                }
            }
        }
        if let Some(last) = &self.end {
            if d.coalescing() {
                d.urgent = true;
            } else {
                d.queue.extend(last.clone());
                d.done = true;
            }
        }
        self.downs.insert(d)
    }

    /// A new downstream of a watch resumed from `resume` (a remote client
    /// reconnecting with the versions it holds, or a watch opened with
    /// [`WatchOptions::resume_from`](crate::WatchOptions::resume_from)):
    /// its first group is what that watcher is missing, by the resume rule
    /// the local store runs too (`resume.rs`), at the state's revision —
    /// not the initial states. A resume within another incarnation of the
    /// session gets `SessionClosed`. `tombstone` names a deleted variable
    /// the state no longer holds (`None`: the deletion is said to follow
    /// the version the watcher had). Returns its key.
    // The etcd store's (a remote client's upstream resumes on its server).
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    pub(crate) fn attach_resumed(
        &mut self,
        config: DownConfig,
        resume: &Resume,
        tombstone: impl Fn(&str) -> Option<Tombstone>,
    ) -> usize {
        let revision = self.revision;
        if resume.incarnation.is_some_and(|i| i != self.incarnation) {
            // The session the watcher followed is gone; this is another.
            let key = self.attach(DownConfig {
                include_initial: false,
                ..config
            });
            let d = &mut self.downs[key];
            d.queue.clear();
            d.held.clear();
            d.queue
                .push_back(WatchEvent::bare(EventKind::SessionClosed, "", "", 0, revision));
            d.done = true;
            d.reason = Some(CloseReason::SessionClosed);
            return key;
        }
        let mut live: Vec<&WatchEvent> = self
            .state
            .values()
            .filter(|e| e.kind() != EventKind::Deleted)
            .collect();
        live.sort_by_key(|e| (id_number(e.variable_id()), e.variable_id_shared()));
        let snapshot: Vec<Arc<Record>> = live.iter().map(|e| e.record().clone()).collect();
        // Deletions the state still holds come first.
        let held_deletion = |key: &str| {
            self.state
                .values()
                .find(|e| {
                    e.kind() == EventKind::Deleted && (e.variable_id() == key || e.variable_name() == key)
                })
                .map(|e| (e.variable_id_shared(), Arc::from(e.variable_name()), e.version()))
        };
        let group = resume::first_group(resume, &snapshot, config.mode, self.whole, revision, |key| {
            held_deletion(key).or_else(|| tombstone(key))
        });
        // It holds every live variable at its current version once the
        // group is delivered (what `attach` without initial states notes);
        // the group's events note the rest.
        let key = self.attach(DownConfig {
            include_initial: false,
            ..config
        });
        let d = &mut self.downs[key];
        if group.iter().any(|e| matches!(e.kind(), EventKind::Lagged { .. })) {
            d.lag_events += 1;
        }
        for e in group {
            d.skipped += e.skipped();
            d.push(e);
        }
        if !self.whole && d.held.is_empty() && !d.done {
            // Everything it named is gone: its deletions, and the end.
            d.done = true;
            d.reason = Some(CloseReason::VariablesDeleted);
        }
        key
    }

    /// `e`, and for a deletion that names only its id, the name the feed
    /// knew: a store that keeps no record of deleted variables (etcd)
    /// answers a resume with the id the watcher gave it, and the watcher's
    /// user is owed the name it knows the variable by.
    fn named(&self, e: WatchEvent) -> WatchEvent {
        if e.kind() == EventKind::Deleted
            && e.variable_name().is_empty()
            && let Some(known) = self.state.get(e.variable_id())
        {
            let record = Record::bare(
                crate::record::RecordKind::Deleted,
                e.variable_id(),
                known.variable_name(),
                e.version(),
                e.revision(),
                0,
            );
            return WatchEvent::from_parts(EventKind::Deleted, Arc::new(record), e.skipped());
        }
        e
    }

    /// Removes a downstream; returns how many are left.
    pub(crate) fn detach(&mut self, key: usize) -> usize {
        self.downs.try_remove(key);
        self.prune();
        if let Some(w) = self.room.take() {
            w.wake(); // the producer learns that the user has gone
        }
        self.downs.len()
    }

    /// One past the revision every downstream's user has taken (0: some
    /// has taken nothing): what the feed acknowledges.
    pub(crate) fn taken(&self) -> u64 {
        self.downs.iter().map(|(_, d)| d.taken).min().unwrap_or(0)
    }

    /// The next event of downstream `key`; with a waker, registers it if
    /// there is none.
    pub(crate) fn recv(&mut self, key: usize, waker: Option<&Waker>) -> Step {
        let revision = self.revision;
        let whole = self.whole;
        let Some(d) = self.downs.get_mut(key) else {
            return Step::Ended;
        };
        if d.queue.is_empty() && !d.done {
            let over = self.end.is_some();
            if d.coalescing() && (d.dirty || over) {
                if let Some(due) = d
                    .throttle
                    .as_ref()
                    .and_then(|t| t.holds(d.urgent || over || d.forced))
                {
                    if let Some(w) = waker {
                        register(&mut d.waker, w);
                    }
                    return Step::Empty(Some(due));
                }
                let before = d.queue.len();
                catch_up_down(d, &self.state, revision, whole);
                if d.queue.len() > before
                    && let Some(t) = d.throttle.as_mut()
                {
                    t.delivered();
                }
                d.dirty = false;
                d.urgent = false;
                d.forced = false;
                if let Some(last) = &self.end {
                    d.queue.extend(last.clone());
                    d.done = true;
                }
            } else if d.lagging {
                catch_up_down(d, &self.state, revision, whole);
                d.lagging = false;
                if d.config.mode == Mode::Close {
                    d.done = true;
                    d.reason = Some(CloseReason::Overflow);
                } else if let Some(last) = &self.end {
                    d.queue.extend(last.clone());
                    d.done = true;
                }
            }
        }
        match d.queue.pop_front() {
            Some(e) => {
                d.taken = d.taken.max(e.revision().saturating_add(1));
                if self.backpressure
                    && let Some(w) = self.room.take()
                {
                    w.wake();
                }
                Step::Event(e)
            }
            None if d.done => Step::Ended,
            None => {
                if let Some(w) = waker {
                    register(&mut d.waker, w);
                }
                Step::Empty(None)
            }
        }
    }

    /// Why downstream `key` ended, once it has.
    pub(crate) fn close_reason(&self, key: usize) -> Option<CloseReason> {
        let d = self.downs.get(key)?;
        if !d.done {
            return None;
        }
        d.reason.or(self.reason)
    }

    /// The first group of downstream `key`, right after it attached (a
    /// server's snapshot of a watch it serves): its events and revision.
    pub(crate) fn take_first_group(&mut self, key: usize) -> (u64, Vec<WatchEvent>) {
        let start = self.downs.get(key).map_or(self.revision, |d| d.start);
        let mut out = Vec::new();
        while let Step::Event(e) = self.recv(key, None) {
            let revision = e.revision();
            out.push(e);
            let d = &self.downs[key];
            if d.queue.front().is_none_or(|n| n.revision() != revision) {
                break;
            }
        }
        let revision = out.first().map_or(start, WatchEvent::revision);
        (revision, out)
    }

    /// Whether the next queued event of downstream `key` belongs to the
    /// group of `last`.
    pub(crate) fn group_continues(&self, key: usize, last: &WatchEvent) -> bool {
        self.downs.get(key).is_some_and(|d| {
            d.queue.front().is_some_and(|next| {
                next.revision() == last.revision()
                    && next.kind() != EventKind::SessionClosed
                    && last.kind() != EventKind::SessionClosed
            })
        })
    }

    /// Counters of downstream `key`: (lag events, versions skipped, queued).
    pub(crate) fn counters(&self, key: usize) -> (u64, u64, usize) {
        self.downs
            .get(key)
            .map_or((0, 0, 0), |d| (d.lag_events, d.skipped, d.queue.len()))
    }
}

/// Registers `waker` unless it would wake the same task already.
fn register(slot: &mut Option<Waker>, waker: &Waker) {
    match slot {
        Some(w) if w.will_wake(waker) => {}
        _ => *slot = Some(waker.clone()),
    }
}

/// Queues, as one group at `revision`, what downstream `d` is owed from the
/// feed's state, each variable by the catch-up rule in the downstream's
/// mode.
fn catch_up_down(d: &mut Down, state: &HashMap<Arc<str>, WatchEvent>, revision: u64, whole: bool) {
    // In registration order (ids are handed out in it).
    let mut ids: Vec<&Arc<str>> = state.keys().collect();
    ids.sort_by_key(|id| (id_number(id), *id));
    for id in ids {
        let e = &state[id];
        let held = d.held.get(id).copied().unwrap_or(Held::Unknown);
        let now = if e.kind() == EventKind::Deleted {
            Now::Deleted(e.version())
        } else {
            Now::Live(e.version())
        };
        let Some(plan) = catch_up(d.config.mode, whole, held, now) else {
            continue;
        };
        d.skipped += plan.event.map_or(0, |(_, skipped)| skipped);
        match plan.held {
            Some(h) => {
                set(&mut d.held, e, h);
            }
            None => {
                d.held.remove(id);
            }
        }
        d.queue.extend(plan.events(e.record(), revision));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind, id: &str, version: u64, revision: u64) -> WatchEvent {
        WatchEvent::bare(kind, id, id, version, revision)
    }

    fn drain(f: &mut Feed, key: usize) -> Vec<(EventKind, u64, u64)> {
        let mut out = Vec::new();
        while let Step::Event(e) = f.recv(key, None) {
            out.push((e.kind(), e.version(), e.revision()));
        }
        out
    }

    fn apply(f: &mut Feed, group: Vec<WatchEvent>) {
        f.apply_group(group, &mut Vec::new());
    }

    fn config(capacity: usize, mode: Mode) -> DownConfig {
        DownConfig {
            capacity,
            coalescing: mode == Mode::Coalesce,
            mode,
            include_initial: true,
            throttle: None,
        }
    }

    /// A resumed downstream's first group is what its watcher is missing
    /// (the resume rule), then it follows the feed like any other: no
    /// `Initial` of what it holds, `Lagged` + state for what moved, the
    /// state of what it never met, `Deleted` for what is gone; and
    /// another incarnation is `SessionClosed`.
    #[test]
    fn a_resumed_downstream_starts_with_what_it_is_missing() {
        use EventKind::*;
        let mut f = Feed::new(true, false);
        f.incarnation = 7;
        apply(
            &mut f,
            vec![
                ev(Initial, "a", 3, 10),
                ev(Initial, "b", 5, 10),
                ev(Initial, "c", 0, 10),
            ],
        );
        let resume = Resume {
            versions: [
                ("a".to_string(), 3),
                ("b".to_string(), 2),
                ("gone".to_string(), 4),
            ]
            .into(),
            incarnation: Some(7),
        };
        let key = f.attach_resumed(config(100, Mode::Resync), &resume, |_| None);
        assert_eq!(
            drain(&mut f, key),
            [
                (Deleted, 5, 10),
                (Lagged { first: 3, last: 4 }, 4, 10),
                (Changed, 5, 10),
                (Initial, 0, 10),
            ]
        );
        apply(&mut f, vec![ev(Changed, "a", 4, 11)]);
        assert_eq!(drain(&mut f, key), [(Changed, 4, 11)]);

        let other = Resume {
            versions: [("a".to_string(), 3)].into(),
            incarnation: Some(6),
        };
        let key = f.attach_resumed(config(100, Mode::Resync), &other, |_| None);
        assert_eq!(drain(&mut f, key), [(SessionClosed, 0, 11)]);
        assert_eq!(f.close_reason(key), Some(CloseReason::SessionClosed));
    }

    /// A deletion that names only its id (an etcd store's answer to a
    /// resume) reaches the watcher with the name the feed knew.
    #[test]
    fn a_deletion_by_id_gets_the_name_the_feed_knew() {
        let mut f = Feed::new(true, false);
        apply(
            &mut f,
            vec![WatchEvent::bare(EventKind::Initial, "var_1", "alpha", 0, 1)],
        );
        let key = f.attach(config(100, Mode::Resync));
        let _ = f.recv(key, None);
        apply(
            &mut f,
            vec![WatchEvent::bare(EventKind::Deleted, "var_1", "", 1, 2)],
        );
        match f.recv(key, None) {
            Step::Event(e) => {
                assert_eq!(
                    (e.kind(), e.variable_id(), e.variable_name()),
                    (EventKind::Deleted, "var_1", "alpha")
                );
            }
            _ => panic!("no deletion"),
        }
    }

    #[test]
    fn a_full_downstream_lags_and_catches_up_from_the_state() {
        let mut f = Feed::new(false, false);
        apply(
            &mut f,
            vec![
                ev(EventKind::Initial, "a", 0, 1),
                ev(EventKind::Initial, "b", 0, 1),
            ],
        );
        let fast = f.attach(config(100, Mode::Resync));
        let slow = f.attach(config(2, Mode::Resync));
        assert_eq!(drain(&mut f, fast).len(), 2);
        // The slow one's queue holds its two initial events: no room.
        for r in 2..=5 {
            apply(
                &mut f,
                vec![
                    ev(EventKind::Changed, "a", r - 1, r),
                    ev(EventKind::Changed, "b", r - 1, r),
                ],
            );
        }
        assert_eq!(drain(&mut f, fast).len(), 8, "the fast one got everything");
        let got = drain(&mut f, slow);
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
        assert_eq!(f.counters(slow).0, 1);
    }

    #[test]
    fn close_policy_and_coalescing() {
        use EventKind::*;
        let mut f = Feed::new(false, false);
        apply(&mut f, vec![ev(Initial, "a", 0, 1)]);
        let close = f.attach(config(1, Mode::Close));
        let coalesce = f.attach(config(1, Mode::Coalesce));
        for r in 2..=4 {
            apply(&mut f, vec![ev(Changed, "a", r - 1, r)]);
        }
        assert_eq!(
            drain(&mut f, close),
            [(Initial, 0, 1), (Lagged { first: 1, last: 3 }, 3, 4)]
        );
        assert!(matches!(f.recv(close, None), Step::Ended));
        assert_eq!(f.close_reason(close), Some(CloseReason::Overflow));
        // Coalescing: one state, whatever the backlog, and the initial
        // state it was owed is an `Initial` with the versions passed over.
        let mut got = Vec::new();
        while let Step::Event(e) = f.recv(coalesce, None) {
            got.push((e.kind(), e.version(), e.skipped()));
        }
        assert_eq!(got, [(Initial, 3, 3)]);
        apply(&mut f, vec![ev(Changed, "a", 4, 5)]);
        apply(&mut f, vec![ev(Changed, "a", 5, 6)]);
        let Step::Event(e) = f.recv(coalesce, None) else {
            panic!("a coalesced state")
        };
        assert_eq!((e.kind(), e.version(), e.skipped()), (Changed, 5, 1));
        assert_eq!(f.counters(coalesce).1, 4);
    }

    #[test]
    fn a_late_downstream_starts_from_the_state_and_deletions_are_kept_until_seen() {
        use EventKind::*;
        let mut f = Feed::new(false, false);
        apply(&mut f, vec![ev(Initial, "a", 0, 1), ev(Initial, "b", 0, 1)]);
        let d = f.attach(config(10, Mode::Resync));
        apply(&mut f, vec![ev(Deleted, "a", 1, 2)]);
        // `a`'s deletion stays until `d` has taken it.
        let late = f.attach(config(10, Mode::Resync));
        assert_eq!(drain(&mut f, late), [(Initial, 0, 2)]);
        assert_eq!(
            drain(&mut f, d),
            [(Initial, 0, 1), (Initial, 0, 1), (Deleted, 1, 2)]
        );
        apply(&mut f, vec![ev(Changed, "b", 1, 3)]);
        // Every downstream has the deletion: the tombstone is gone.
        assert!(!f.state.contains_key("a") && !f.tombstones);
        assert!(!f.resume_versions().contains_key("a"));
        assert_eq!(f.resume_versions()["b"], 1);
        // The end reaches both, after what they have.
        f.finish(Some(ev(SessionClosed, "", 0, 3)), CloseReason::SessionClosed);
        assert_eq!(drain(&mut f, d), [(Changed, 1, 3), (SessionClosed, 0, 3)]);
        assert!(matches!(f.recv(d, None), Step::Ended));
        assert_eq!(f.close_reason(d), Some(CloseReason::SessionClosed));
    }

    #[test]
    fn backpressure_reports_room() {
        use EventKind::*;
        let mut f = Feed::new(false, true);
        apply(&mut f, vec![ev(Initial, "a", 0, 1)]);
        let d = f.attach(config(2, Mode::Resync));
        apply(&mut f, vec![ev(Changed, "a", 1, 2)]);
        assert!(!f.fits(1), "two queued, capacity two");
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(f.poll_room(1, &mut cx).is_pending());
        let _ = f.recv(d, None);
        assert_eq!(f.poll_room(1, &mut cx), Poll::Ready(true));
        f.detach(d);
        assert_eq!(f.poll_room(1, &mut cx), Poll::Ready(false));
    }
}
