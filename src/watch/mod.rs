//! [`Watch`]: a watcher's handle, its options, its events and its statistics.
//!
//! # How a watch receives
//!
//! A watch owns a cursor into its session's event log and copies records out
//! in batches, keeping those about what it watches. All user code — the
//! filter, throttling, the consumer itself — runs here, on the watcher's side,
//! never under a store lock.
//!
//! Per variable the watch remembers the last version it has seen. A record at
//! or below it is a duplicate (possible only right after a resync) and is
//! dropped; so versions delivered per variable strictly increase.
//!
//! **Overflow.** A watch more than `capacity` session events behind has
//! overflowed. The writer was never slowed: the watch finds out itself. With
//! [`OverflowPolicy::Resync`] (the default) it moves its cursor to the log's
//! tail, then reads each watched variable's current state; for every variable
//! that moved on it delivers [`EventKind::Lagged`] with the exact range of
//! versions it skipped (when it skipped any), then the current state, and is
//! contiguous from there (records after the new cursor that it has already
//! seen in the current state are dropped as duplicates). With
//! [`OverflowPolicy::Close`] it delivers the `Lagged` markers and ends. In
//! coalescing mode overflow is not an event at all: the watch only ever
//! promised the latest state.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread, ThreadId};
use std::time::{Duration, Instant};

use futures_core::Stream;

mod event;
mod options;
mod stats;

pub use event::{CloseReason, EventKind, RecvTimeoutError, TryRecvError, WatchEvent};
pub use options::{OverflowPolicy, WatchOptions};
use stats::stats_of;
pub(crate) use stats::watcher_info;
pub use stats::{WatchStats, WatcherInfo};

use crate::error::Error;
use crate::event_log::{Entry, Read};
use crate::observer::{Names, WatchShared};
use crate::record::{Record, RecordKind, Slot, VarCell};
use crate::session::Session;
use crate::sync::{Arc, Ordering};

/// Records copied out of the event log per lock acquisition.
const READ_BATCH: usize = 64;

/// Attempts before a blocking receive parks: 6 rounds of exponential spinning,
/// then yields.
const SPIN_ROUNDS: u32 = 16;

/// A variable the watch follows, and the last version it has seen of it.
struct Tracked {
    cell: Arc<VarCell>,
    version: u64,
    /// Which of the signal's waiter-list flags belongs to this variable.
    list: u32,
}

struct Throttle {
    interval: Duration,
    /// Per variable slot: when its last event was delivered.
    last: HashMap<Slot, Instant>,
    /// Held-back events per slot, with the time they become due.
    held: BTreeMap<Slot, (Instant, WatchEvent)>,
}

impl Throttle {
    fn take_due(&mut self, now: Instant) -> Option<WatchEvent> {
        let slot = self
            .held
            .iter()
            .filter(|(_, (due, _))| *due <= now)
            .min_by_key(|(_, (due, _))| *due)
            .map(|(s, _)| *s)?;
        let (_, ev) = self.held.remove(&slot)?;
        self.last.insert(slot, now);
        Some(ev)
    }

    fn next_due(&self) -> Option<Instant> {
        self.held.values().map(|(d, _)| *d).min()
    }
}

enum Step {
    Event(WatchEvent),
    Ended,
    Empty(Option<Instant>),
}

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.0.unpark();
    }
}

/// A watcher's handle: receives every change of what it watches, exactly
/// once, in order, starting from a consistent snapshot.
///
/// Created by [`SessionStore::watch`](crate::SessionStore::watch) and
/// [`SessionStore::watch_session`](crate::SessionStore::watch_session).
/// Receive with [`recv`](Self::recv), [`recv_timeout`](Self::recv_timeout),
/// [`try_recv`](Self::try_recv), as an [`Iterator`] (blocking), or as a
/// [`Stream`](futures_core::Stream) (async, any runtime). Dropping it
/// unregisters it.
///
/// The guarantees, per variable:
/// * with `include_initial`, the first event is [`EventKind::Initial`] at the
///   version *s* current at subscription (one consistent revision across all
///   watched variables), and the next are *s+1, s+2, …*;
/// * versions strictly increase; an atomic batch's events arrive together;
/// * a gap is never silent: it is an [`EventKind::Lagged`] naming the
///   skipped versions;
/// * the watch ends with an explicit event ([`EventKind::SessionClosed`], or
///   [`EventKind::Deleted`] of its last variable), after which receiving
///   returns `None`.
pub struct Watch {
    session: Arc<Session>,
    key: usize,
    /// Waker, counters and registry facts, shared with writers and the registry.
    shared: Arc<WatchShared>,
    whole_session: bool,
    /// The session revision of the subscription's snapshot.
    #[cfg_attr(not(feature = "transport"), allow(dead_code))]
    snapshot_revision: u64,
    tracked: Vec<Tracked>,
    cursor: u64,
    capacity: usize,
    pending: VecDeque<WatchEvent>,
    opts: WatchOptions,
    /// Coalescing only: slot → absolute position (in `popped` units) of its
    /// undelivered event in `pending`. Boxed, like everything a plain watch
    /// does not use, to keep an idle watch small.
    #[expect(clippy::box_collection, reason = "8 bytes inline instead of a 48-byte map")]
    coalesce_pos: Option<Box<HashMap<Slot, u64>>>,
    popped: u64,
    throttle: Option<Box<Throttle>>,
    ended: Option<CloseReason>,
    registered: bool,
    delivered: u64,
    thread_waker: Option<Box<(ThreadId, Waker)>>,
}

impl fmt::Debug for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch")
            .field("id", &self.shared.id)
            .field("session", &&*self.session.id)
            .field("variables", &self.tracked.len())
            .field("whole_session", &self.whole_session)
            .field("ended", &self.ended)
            .finish()
    }
}

impl Watch {
    /// Registers a watch on `idents` (or, with `None`, the whole session) and
    /// takes its snapshot, atomically.
    pub(crate) fn subscribe<S: AsRef<str>>(
        session: Arc<Session>,
        idents: Option<&[S]>,
        opts: WatchOptions,
    ) -> Result<Watch, Error> {
        if opts.capacity == 0 {
            return Err(Error::InvalidOption("capacity must be at least 1".into()));
        }
        if opts.throttle == Some(Duration::ZERO) {
            return Err(Error::InvalidOption(
                "throttle interval must be greater than zero".into(),
            ));
        }
        if idents.is_some_and(<[S]>::is_empty) {
            return Err(Error::InvalidOption("a watch needs at least one variable".into()));
        }
        let whole_session = idents.is_none();
        let id = session.counters.next_watch_id.fetch_add(1, Ordering::Relaxed) + 1;

        // The atomic subscribe: under the session's write lock no change can
        // happen, so the registration, the log position and the snapshot
        // below are one consistent cut, and every change after it is in the
        // log at or after `cursor`.
        let (cells, snapshot, revision, capacity, cursor, key, shared) = session.with_write_lock(|| {
            let mut cells = match &idents {
                None => session.cells(),
                Some(idents) => {
                    let mut cells = Vec::with_capacity(idents.len());
                    let mut missing = Vec::new();
                    for ident in *idents {
                        match session.resolve(ident.as_ref()) {
                            Some(c) => cells.push(c),
                            None => missing.push(ident.as_ref().to_string()),
                        }
                    }
                    if !missing.is_empty() {
                        return Err(Error::VariablesNotFound {
                            session: session.id.to_string(),
                            variables: missing,
                        });
                    }
                    cells.sort_by_key(|c| c.meta.slot);
                    cells.dedup_by_key(|c| c.meta.slot);
                    cells
                }
            };
            cells.shrink_to_fit();
            let capacity = session.log.reserve(opts.capacity);
            let cursor = session.log.tail();
            let revision = session.revision();
            let snapshot: Vec<Arc<Record>> = cells.iter().map(|c| c.current.load_full()).collect();
            let names = match &cells[..] {
                _ if whole_session => Names::Session,
                [one] => Names::One(one.meta.name.clone()),
                many => Names::Many(many.iter().map(|c| c.meta.name.clone()).collect()),
            };
            let lists = if whole_session { 1 } else { cells.len() };
            let shared = Arc::new(WatchShared::new(lists, id, opts.coalesce, names));
            shared.counters.cursor.store(cursor, Ordering::Relaxed);
            let key = session.observers.register(shared.clone());
            Ok((cells, snapshot, revision, capacity, cursor, key, shared))
        })?;

        let mut watch = Watch {
            key,
            shared,
            whole_session,
            snapshot_revision: revision,
            tracked: Vec::with_capacity(cells.len()),
            cursor,
            capacity,
            pending: VecDeque::new(),
            throttle: opts.throttle.map(|interval| {
                Box::new(Throttle {
                    interval,
                    last: HashMap::new(),
                    held: BTreeMap::new(),
                })
            }),
            coalesce_pos: opts.coalesce.then(Box::default),
            opts,
            popped: 0,
            ended: None,
            registered: true,
            delivered: 0,
            thread_waker: None,
            session,
        };
        for (i, (cell, record)) in cells.into_iter().zip(snapshot).enumerate() {
            watch.tracked.push(Tracked {
                cell,
                version: record.version,
                list: if whole_session { 0 } else { i as u32 },
            });
            if watch.opts.include_initial {
                let mut ev = WatchEvent::new(EventKind::Initial, record);
                ev.revision = revision;
                watch.push(ev);
            }
        }
        watch
            .shared
            .counters
            .local
            .store(watch.pending.len(), Ordering::Relaxed);
        Ok(watch)
    }

    /// This watch's id, as shown by `list_watchers`.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The id of the session watched.
    pub fn session_id(&self) -> &str {
        &self.session.id
    }

    /// Why the watch ended, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.ended
    }

    /// The incarnation of the watched session (see `Session::incarnation`).
    #[cfg(feature = "transport")]
    pub(crate) fn session_incarnation(&self) -> u64 {
        self.session.incarnation
    }

    /// The session revision of the subscription's snapshot.
    #[cfg(feature = "transport")]
    pub(crate) fn snapshot_revision(&self) -> u64 {
        self.snapshot_revision
    }

    /// The ids of the variables a named watch follows.
    #[cfg(feature = "transport")]
    pub(crate) fn tracked_ids(&self) -> impl Iterator<Item = &str> {
        self.tracked.iter().map(|t| &*t.cell.meta.id)
    }

    /// How many events are queued before any is received: right after
    /// subscribing, exactly the snapshot's initial events.
    #[cfg(feature = "transport")]
    pub(crate) fn queued_initial(&self) -> usize {
        self.pending.len()
    }

    /// Records a remote client's acknowledgement (monotonic: an older one
    /// changes nothing).
    #[cfg(feature = "transport")]
    pub(crate) fn acknowledge(&self, revision: u64) {
        self.shared
            .acked
            .fetch_max(revision.saturating_add(1), Ordering::Relaxed);
    }

    /// This watch's counters.
    pub fn stats(&self) -> WatchStats {
        stats_of(&self.shared, self.session.log.tail())
    }

    /// Blocks until the next event; `None` once the watch has ended (after
    /// its final event).
    pub fn recv(&mut self) -> Option<WatchEvent> {
        self.recv_until(None).ok()
    }

    /// Blocks until the next event or until `timeout` has passed.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<WatchEvent, RecvTimeoutError> {
        // A timeout too large to represent (Duration::MAX) means no deadline.
        self.recv_until(Instant::now().checked_add(timeout))
    }

    /// Blocks until the next event or until `deadline`.
    pub fn recv_deadline(&mut self, deadline: Instant) -> Result<WatchEvent, RecvTimeoutError> {
        self.recv_until(Some(deadline))
    }

    /// Returns the next event if one is ready, without blocking.
    pub fn try_recv(&mut self) -> Result<WatchEvent, TryRecvError> {
        match self.step() {
            Step::Event(e) => Ok(e),
            Step::Ended => Err(TryRecvError::Closed),
            Step::Empty(_) => Err(TryRecvError::Empty),
        }
    }

    /// An iterator over the events ready now; it stops when none is ready.
    pub fn try_iter(&mut self) -> impl Iterator<Item = WatchEvent> + '_ {
        std::iter::from_fn(move || self.try_recv().ok())
    }

    fn recv_until(&mut self, deadline: Option<Instant>) -> Result<WatchEvent, RecvTimeoutError> {
        // Spin, then yield, before sleeping: a park/unpark pair costs tens of
        // microseconds on virtual machines, far more than the usual wait for
        // a writer that is already running (crossbeam's backoff, in short).
        for round in 0..SPIN_ROUNDS {
            if let Some(r) = self.step_result() {
                return r;
            }
            if round < 6 {
                for _ in 0..(1 << round) {
                    std::hint::spin_loop();
                }
            } else {
                thread::yield_now();
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
        }
        loop {
            if let Some(r) = self.step_result() {
                return r;
            }
            let waker = self.thread_waker();
            self.arm(&waker);
            // Register-then-check: anything written before the arm is seen
            // now; anything after it wakes this thread.
            let now = Instant::now();
            let due = match self.step() {
                Step::Event(e) => return Ok(e),
                Step::Ended => return Err(RecvTimeoutError::Closed),
                Step::Empty(due) => due,
            };
            let wake_at = match (deadline, due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match wake_at {
                None => thread::park(),
                Some(t) if t > now => thread::park_timeout(t - now),
                Some(_) => {}
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return match self.step() {
                    Step::Event(e) => Ok(e),
                    Step::Ended => Err(RecvTimeoutError::Closed),
                    Step::Empty(_) => Err(RecvTimeoutError::Timeout),
                };
            }
        }
    }

    fn step_result(&mut self) -> Option<Result<WatchEvent, RecvTimeoutError>> {
        match self.step() {
            Step::Event(e) => Some(Ok(e)),
            Step::Ended => Some(Err(RecvTimeoutError::Closed)),
            Step::Empty(_) => None,
        }
    }

    fn thread_waker(&mut self) -> Waker {
        let me = thread::current();
        match self.thread_waker.as_deref() {
            Some((id, w)) if *id == me.id() => w.clone(),
            _ => {
                let id = me.id();
                let w = Waker::from(std::sync::Arc::new(ThreadWaker(me)));
                self.thread_waker = Some(Box::new((id, w.clone())));
                w
            }
        }
    }

    /// Puts this watch's signal where writers of what it watches will find it.
    fn arm(&self, waker: &Waker) {
        self.shared.set_waker(waker);
        if self.whole_session {
            self.session.observers.session_waiters.enqueue(&self.shared, 0);
        } else {
            for t in &self.tracked {
                t.cell.waiters.enqueue(&self.shared, t.list);
            }
        }
    }

    /// One attempt to produce the next event, without blocking.
    fn step(&mut self) -> Step {
        // Only throttling needs the time; reading a clock costs as much as
        // delivering an event.
        let now = self.throttle.is_some().then(Instant::now);
        let step = self.step_inner(now);
        self.shared
            .counters
            .local
            .store(self.pending.len(), Ordering::Relaxed);
        if let Step::Event(_) = step {
            // Only this watch writes its count: a plain store, no shared RMW.
            self.delivered += 1;
            self.shared
                .counters
                .delivered
                .store(self.delivered, Ordering::Relaxed);
            if !self.registered {
                // Unregistered (ended): counted by the store directly.
                self.session
                    .counters
                    .retired_events
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        step
    }

    fn step_inner(&mut self, now: Option<Instant>) -> Step {
        loop {
            if let (Some(t), Some(now)) = (self.throttle.as_mut(), now) {
                if let Some(ev) = t.take_due(now) {
                    return Step::Event(ev);
                }
            }
            if self.opts.coalesce && self.ended.is_none() {
                // Read all that is there (bounded) so that only the latest
                // state of each variable is delivered.
                for _ in 0..self.capacity.div_ceil(READ_BATCH) {
                    if !self.fill() {
                        break;
                    }
                }
            }
            if let Some(ev) = self.pending.pop_front() {
                self.popped += 1;
                if let Some(ev) = self.admit(ev, now) {
                    return Step::Event(ev);
                }
                continue;
            }
            if self.ended.is_some() {
                if let Some(t) = &mut self.throttle {
                    if let Some(slot) = t.held.keys().next().copied() {
                        return Step::Event(t.held.remove(&slot).expect("present").1);
                    }
                }
                return Step::Ended;
            }
            if !self.fill() {
                return Step::Empty(self.throttle.as_deref().and_then(Throttle::next_due));
            }
        }
    }

    /// Applies the filter and the throttle to an event about to be delivered.
    fn admit(&mut self, ev: WatchEvent, now: Option<Instant>) -> Option<WatchEvent> {
        match ev.kind {
            EventKind::Initial | EventKind::Changed => {
                if let Some(filter) = &self.opts.filter {
                    let old = ev.old_value();
                    match catch_unwind(AssertUnwindSafe(|| filter(old, &ev.record.value))) {
                        Ok(true) => {}
                        Ok(false) => {
                            self.shared.counters.filtered.fetch_add(1, Ordering::Relaxed);
                            return None;
                        }
                        Err(_) => {
                            self.shared.counters.filter_panics.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                let (Some(t), Some(now)) = (&mut self.throttle, now) else {
                    return Some(ev);
                };
                let slot = ev.record.var.slot;
                if ev.kind == EventKind::Changed {
                    if let Some(last) = t.last.get(&slot) {
                        let due = *last + t.interval;
                        if now < due {
                            let mut ev = ev;
                            if let Some((_, held)) = t.held.remove(&slot) {
                                // The held event and everything between it and
                                // this one are passed over; `ev.skipped` (from
                                // coalescing) is already counted.
                                let total = held.skipped + (ev.record.version - held.record.version);
                                self.shared
                                    .counters
                                    .skipped
                                    .fetch_add(total - held.skipped - ev.skipped, Ordering::Relaxed);
                                ev.skipped = total;
                            }
                            t.held.insert(slot, (due, ev));
                            return None;
                        }
                    }
                }
                // An event that passes supersedes anything held for its variable.
                t.held.remove(&slot);
                t.last.insert(slot, now);
                Some(ev)
            }
            _ => {
                // Deleted, Lagged, SessionClosed are never held back; anything
                // held for the same variable (for SessionClosed, any variable)
                // goes out first.
                if let Some(t) = &mut self.throttle {
                    let slot = if ev.kind == EventKind::SessionClosed {
                        t.held.keys().next().copied()
                    } else {
                        Some(ev.record.var.slot).filter(|s| t.held.contains_key(s))
                    };
                    if let Some((_, held)) = slot.and_then(|s| t.held.remove(&s)) {
                        self.pending.push_front(ev);
                        self.popped -= 1;
                        return Some(held);
                    }
                }
                Some(ev)
            }
        }
    }

    fn push(&mut self, ev: WatchEvent) {
        if let Some(coalesce_pos) = self.coalesce_pos.as_deref_mut() {
            let slot = ev.record.var.slot;
            if matches!(ev.kind, EventKind::Changed | EventKind::Initial) {
                // A newer state replaces an undelivered one (keeping its
                // place in the queue, and its kind if it was the initial).
                if let Some(&pos) = coalesce_pos.get(&slot) {
                    if pos >= self.popped && ev.kind == EventKind::Changed {
                        let prev = &mut self.pending[(pos - self.popped) as usize];
                        // `prev` and every version between it and `ev` are
                        // passed over; `ev.skipped` (set by a resync) counts
                        // some of those already.
                        let passed = ev.record.version - prev.record.version;
                        self.shared
                            .counters
                            .skipped
                            .fetch_add(passed - ev.skipped, Ordering::Relaxed);
                        prev.skipped += passed;
                        prev.revision = ev.revision;
                        prev.record = ev.record;
                        return;
                    }
                }
                coalesce_pos.insert(slot, self.popped + self.pending.len() as u64);
            } else {
                coalesce_pos.remove(&slot);
            }
        }
        self.pending.push_back(ev);
    }

    fn tracked_index(&self, slot: Slot) -> Result<usize, usize> {
        self.tracked.binary_search_by_key(&slot, |t| t.cell.meta.slot)
    }

    /// Reads the next batch from the log. Returns whether anything was read
    /// (or the state changed).
    fn fill(&mut self) -> bool {
        if self.ended.is_some() {
            return false;
        }
        // A fresh buffer per batch: keeping one would pin a kilobyte to every
        // watch that ever received anything.
        let mut scratch = Vec::new();
        let read = self
            .session
            .log
            .read(self.cursor, self.capacity, READ_BATCH, &mut scratch);
        let progressed = match read {
            Read::Empty => false,
            Read::Records(next) => {
                self.cursor = next;
                for entry in scratch {
                    if self.ended.is_some() {
                        break;
                    }
                    self.apply(entry);
                }
                true
            }
            Read::Overflow => {
                self.overflow();
                true
            }
        };
        self.shared.counters.cursor.store(self.cursor, Ordering::Relaxed);
        progressed
    }

    fn apply(&mut self, entry: Entry) {
        let record = entry.record;
        if record.kind == RecordKind::SessionClosed {
            self.finish(
                CloseReason::SessionClosed,
                Some(WatchEvent::new(EventKind::SessionClosed, record)),
            );
            return;
        }
        match self.tracked_index(record.var.slot) {
            Ok(i) => {
                let t = &mut self.tracked[i];
                if record.version <= t.version {
                    return; // already seen (through a resync snapshot)
                }
                t.version = record.version;
                let deleted = record.kind == RecordKind::Deleted;
                self.push(WatchEvent::from_record(record));
                if deleted {
                    self.untrack(i);
                }
            }
            Err(pos) => {
                if self.whole_session && record.kind == RecordKind::Registered {
                    if let Some(cell) = entry.cell {
                        self.track_new(pos, cell, record.version);
                        self.push(WatchEvent::new(EventKind::Initial, record));
                    }
                }
            }
        }
    }

    /// A whole-session watch starts following a variable it has just found.
    fn track_new(&mut self, pos: usize, cell: Arc<VarCell>, version: u64) {
        debug_assert!(self.whole_session);
        // Whole-session watches sleep on the session's one waiter list.
        self.tracked.insert(
            pos,
            Tracked {
                cell,
                version,
                list: 0,
            },
        );
    }

    fn untrack(&mut self, i: usize) {
        let t = self.tracked.remove(i);
        if !self.whole_session {
            t.cell.waiters.remove(&self.shared, t.list);
            if self.tracked.is_empty() {
                self.finish(CloseReason::VariablesDeleted, None);
            }
        }
    }

    /// The watch fell more than `capacity` behind: see the module docs.
    fn overflow(&mut self) {
        self.shared.counters.lag_events.fetch_add(1, Ordering::Relaxed);
        // Cut first, then read the states: a change after the cut is both in
        // the states read below and in the log after `cursor`; the log copy
        // is then dropped as a duplicate. No change can fall in between.
        self.cursor = self.session.log.tail();
        if self.session.is_closed() {
            let closed = self.closed_record();
            self.finish(CloseReason::SessionClosed, Some(closed));
            return;
        }
        let close = !self.opts.coalesce && self.opts.overflow == OverflowPolicy::Close;
        if self.whole_session {
            for cell in self.session.cells() {
                if let Err(pos) = self.tracked_index(cell.meta.slot) {
                    let record = cell.current.load_full();
                    if record.kind == RecordKind::Deleted {
                        // Registered and deleted within the gap: listed by
                        // the index a moment ago, gone now. Nothing to report.
                        continue;
                    }
                    self.track_new(pos, cell, record.version);
                    if !close {
                        self.push(WatchEvent::new(EventKind::Initial, record));
                    }
                }
            }
        }
        let mut i = 0;
        while i < self.tracked.len() {
            let cur = self.tracked[i].cell.current.load_full();
            let seen = self.tracked[i].version;
            if cur.version <= seen {
                i += 1;
                continue;
            }
            self.tracked[i].version = cur.version;
            let deleted = cur.kind == RecordKind::Deleted;
            if close {
                // Report the skipped versions, and a deletion as itself.
                let last = if deleted { cur.version - 1 } else { cur.version };
                if last > seen {
                    self.push(WatchEvent::new(
                        EventKind::Lagged {
                            first: seen + 1,
                            last,
                        },
                        cur.clone(),
                    ));
                }
                if deleted {
                    self.push(WatchEvent::from_record(cur));
                }
            } else if self.opts.coalesce {
                let mut ev = WatchEvent::from_record(cur);
                ev.skipped = ev.record.version - seen - 1;
                self.shared
                    .counters
                    .skipped
                    .fetch_add(ev.skipped, Ordering::Relaxed);
                self.push(ev);
            } else {
                if cur.version > seen + 1 {
                    self.push(WatchEvent::new(
                        EventKind::Lagged {
                            first: seen + 1,
                            last: cur.version - 1,
                        },
                        cur.clone(),
                    ));
                }
                self.push(WatchEvent::from_record(cur));
            }
            if deleted {
                self.untrack(i);
                if self.ended.is_some() {
                    return;
                }
            } else {
                i += 1;
            }
        }
        if close {
            self.finish(CloseReason::Overflow, None);
        }
    }

    fn closed_record(&self) -> WatchEvent {
        let record = self.session.closed_record(self.session.revision());
        WatchEvent::new(EventKind::SessionClosed, record)
    }

    /// Queues the final event (if any) and stops reading; unregisters.
    fn finish(&mut self, reason: CloseReason, last: Option<WatchEvent>) {
        if self.ended.is_some() {
            return;
        }
        if let Some(ev) = last {
            self.push(ev);
        }
        self.ended = Some(reason);
        self.unregister();
    }

    fn unregister(&mut self) {
        if !self.registered {
            return;
        }
        self.registered = false;
        self.session.observers.unregister(self.key);
        self.session
            .counters
            .retired_events
            .fetch_add(self.delivered, Ordering::Relaxed);
        if self.whole_session {
            self.session.observers.session_waiters.remove(&self.shared, 0);
        } else {
            for t in &self.tracked {
                t.cell.waiters.remove(&self.shared, t.list);
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.unregister();
    }
}

/// Blocking iteration: each `next` is a [`Watch::recv`].
impl Iterator for Watch {
    type Item = WatchEvent;
    fn next(&mut self) -> Option<WatchEvent> {
        self.recv()
    }
}

/// Async iteration, on any executor: the watch wakes the task when an event
/// arrives (a throttled watch waiting for its interval is woken by a small
/// shared timer thread).
impl Stream for Watch {
    type Item = WatchEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchEvent>> {
        let this = self.get_mut();
        match this.step() {
            Step::Event(e) => return Poll::Ready(Some(e)),
            Step::Ended => return Poll::Ready(None),
            Step::Empty(_) => {}
        }
        this.arm(cx.waker());
        match this.step() {
            Step::Event(e) => Poll::Ready(Some(e)),
            Step::Ended => Poll::Ready(None),
            Step::Empty(due) => {
                if let Some(due) = due {
                    crate::timer::wake_at(due, cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::{SessionOptions, SessionStore, StoreConfig, VarDef, VarType};

    /// An undelivered coalesced event replaced during a resync: every
    /// version passed over is counted once (here v1..=v9 before v10).
    #[test]
    fn coalesced_resync_counts_each_skipped_version_once() {
        let store = SessionStore::with_config(StoreConfig::new().event_log(4));
        store.create_session("s", SessionOptions::new()).unwrap();
        store
            .register("s", VarDef::new("x", VarType::Integer, 0))
            .unwrap();
        let opts = WatchOptions::new().coalesce().capacity(4).include_initial(false);
        let mut w = store.watch("s", ["x"], opts).unwrap();
        store.update("s", "x", 1).unwrap();
        assert!(w.fill()); // v1 queued, not yet delivered
        for i in 2..=10 {
            store.update("s", "x", i).unwrap(); // more than the capacity: overflow
        }
        assert!(w.fill()); // resync: v10 replaces the queued v1
        let e = w.try_recv().unwrap();
        assert_eq!((e.version(), e.skipped()), (10, 9));
        assert_eq!(w.stats().versions_skipped, 9);
        assert_eq!(w.try_recv().unwrap_err(), TryRecvError::Empty);
    }
}
