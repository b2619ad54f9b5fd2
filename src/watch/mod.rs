//! [`Watch`]: a watcher's handle, split by stage.
//!
//! | file | stage |
//! |---|---|
//! | `mod.rs` | the handle: subscribe (the atomic snapshot), the delivery loop, unregister |
//! | `reader.rs` | lossless delivery: reading the event log, and resync after an overflow |
//! | `cut.rs` | the consistent cut a resync or a coalesced delivery starts from |
//! | `coalesce.rs` | coalescing and throttled delivery: the latest state, read as a cut |
//! | `filter.rs` | the user's filter, run on the watcher's side |
//! | `blocking.rs` | blocking receive: spin, then park; the `Iterator` |
//! | `stream.rs` | async receive: `poll_recv`, `recv_async`, [`WatchStream`] |
//! | `event.rs`, `options.rs`, `stats.rs` | what a watch delivers, how it is set up, its counters |
//!
//! # What a watch hands out: groups, each one a cut
//!
//! Events come in *groups*. Every event of a group carries the same session
//! revision ([`WatchEvent::revision`]); groups come in increasing revision
//! order; and when a group has been received whole, the state the watcher
//! holds — the last version it has of each variable it follows — is exactly
//! the session's state at that revision. A group is one of:
//!
//! * the initial snapshot (`Initial` events, at the subscription's revision);
//! * one write (a single update, an atomic batch, a deletion, an import);
//! * a resync after an overflow (`Lagged` markers and current states);
//! * a coalesced or throttled delivery (the latest states).
//!
//! The event log never splits a write's records (see `event_log.rs`), a
//! resync or a coalesced delivery reads one consistent cut of the session
//! (`Session::read_cut`), and a watch resyncs only between groups.
//!
//! A filter hides events by the user's rule; the watcher then holds, for
//! each variable, the last state the filter let through.
//!
//! All user code — the filter, the consumer itself — runs here, on the
//! watcher's side, never under a store lock.
//!
//! # What a watch costs
//!
//! A watch is sized for the common case, one variable, no filter, no
//! throttle: the handle (120 bytes) tracks one variable inline, keeps what
//! only some watches use (filter, throttle, a parked thread's waker, a
//! timer) in one box allocated on first use, and gives back its queue's
//! buffer whenever it goes to sleep. What writers and the registry see
//! (`WatchShared`, 104 bytes) keeps the counters a plain watch never moves
//! (filtered, lagged, skipped, acknowledged) in a box allocated by the
//! first that does. Receiving an event is a pop from the queue plus one
//! plain store of the delivered count; the log's cursor and the backlog
//! are published once per read of the log, not per event.

use std::collections::VecDeque;
use std::fmt;
use std::task::Waker;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

mod blocking;
pub(crate) mod catch_up;
mod coalesce;
mod cut;
mod event;
mod filter;
mod options;
mod reader;
mod stats;
mod stream;

pub use event::{CloseReason, EventKind, RecvTimeoutError, TryRecvError, WatchEvent};
#[cfg(feature = "transport")]
#[cfg(feature = "transport")]
pub(crate) use filter::Screen;
pub(crate) use options::Filter;
pub use options::{MAX_THROTTLE, OverflowPolicy, WatchOptions};
use stats::stats_of;
pub(crate) use stats::watcher_info;
pub use stats::{WatchStats, WatcherInfo};
pub use stream::WatchStream;

use crate::error::Error;
use crate::meta::Slot;
use crate::observer::{Names, WatchShared};
use crate::record::{Record, RecordKind, VarCell};
use crate::session::Session;
use crate::sync::{Arc, Ordering};
use crate::timer::TimerEntry;
use crate::wakeup::Armed;
use catch_up::Held;
use smallvec::SmallVec;

/// The largest queue buffer (in events) a sleeping watch keeps.
const SMALL_QUEUE: usize = 4;

/// A variable the watch follows.
struct Tracked {
    cell: Arc<VarCell>,
    /// The first version not yet accounted for: every version below it has
    /// been queued (lossless), or delivered or counted as skipped
    /// (coalescing).
    next: u64,
    /// Coalescing only: its first event must be `Initial` (the snapshot's,
    /// or a variable the whole-session watch has just found).
    initial_owed: bool,
    /// Which of the signal's waiter-list flags belongs to this variable.
    list: u32,
}

impl Tracked {
    /// What the watcher holds of this variable, for the catch-up rule.
    fn held(&self) -> Held {
        Held::Next {
            next: self.next,
            initial_owed: self.initial_owed,
        }
    }

    /// Holds `held` (what the catch-up rule left).
    fn hold(&mut self, held: Held) {
        (self.next, self.initial_owed) = match held {
            Held::Next { next, initial_owed } => (next, initial_owed),
            Held::Unknown => (0, true),
        };
    }
}

/// What one attempt to receive found.
enum Step {
    Event(WatchEvent),
    Ended,
    /// Nothing now; with a throttle, nothing before this instant.
    Empty(Option<Instant>),
}

/// A throttled watch's clock.
#[derive(Clone, Copy)]
struct Throttle {
    interval: Duration,
    /// No changes are delivered before this instant.
    next_due: Option<Instant>,
}

/// A watcher's handle: receives every change of what it watches, exactly
/// once, in order, starting from a consistent snapshot.
///
/// Created by [`SessionStore::watch`](crate::SessionStore::watch) and
/// [`SessionStore::watch_session`](crate::SessionStore::watch_session).
/// Receive with [`recv`](Self::recv), [`recv_timeout`](Self::recv_timeout),
/// [`try_recv`](Self::try_recv) or as an [`Iterator`] (blocking), and with
/// [`recv_async`](Self::recv_async), [`poll_recv`](Self::poll_recv) or
/// [`into_stream`](Self::into_stream) in async code (any runtime). Dropping
/// it unregisters it.
///
/// The guarantees, per variable:
/// * with `include_initial`, the first event is [`EventKind::Initial`] at the
///   version *s* current at subscription (one consistent revision across all
///   watched variables), and the next are *s+1, s+2, …* (a coalescing or
///   throttled watch's `Initial` is instead the state at its first receive,
///   with [`WatchEvent::skipped`] counting the versions since the
///   subscription);
/// * versions strictly increase; a gap is never silent: it is an
///   [`EventKind::Lagged`] naming the skipped versions (or, when coalescing,
///   [`WatchEvent::skipped`]);
/// * the watch ends with an explicit event ([`EventKind::SessionClosed`],
///   [`EventKind::Deleted`] of its last variable, or under
///   [`OverflowPolicy::Close`] the [`EventKind::Lagged`] markers of its
///   overflow), after which receiving returns `None`;
///   [`close_reason`](Self::close_reason) says which.
///
/// And across variables: events come in groups, one revision each, and
/// every group received whole leaves the watcher holding a state the session
/// really had at that revision (see [`docs::rules`](crate::docs::rules)).
#[must_use = "a watch unregisters as soon as it is dropped"]
pub struct Watch {
    // Laid out for the common watch (one variable, no filter, no throttle):
    // what only some watches use lives in `rare`, one variable is tracked
    // inline, and an empty queue holds no buffer while the watch sleeps.
    session: Arc<Session>,
    /// Waker, counters and registry facts, shared with writers and the registry.
    shared: Arc<WatchShared>,
    /// Sorted by slot (registration order).
    tracked: SmallVec<[Tracked; 1]>,
    /// Lossless: the next log record to read. Coalescing: the log's tail at
    /// the last cut (anything since is news).
    cursor: u64,
    /// Whole groups, ready to hand out.
    pending: VecDeque<WatchEvent>,
    /// The session revision of the subscription's snapshot.
    #[cfg_attr(not(feature = "transport"), allow(dead_code))]
    snapshot_revision: u64,
    /// Lossless: the capacity granted by the event log (given back when the
    /// watch unregisters; at most `u32::MAX`). Coalescing: 0.
    capacity: u32,
    /// The registration's key in the session's registry.
    key: u32,
    rare: Option<Box<Rare>>,
    whole_session: bool,
    /// Coalescing or throttled: reads cuts, never the log's records.
    reads_cuts: bool,
    overflow: OverflowPolicy,
    /// Coalescing: a cut is owed even if the log has not moved (the
    /// subscription's initial states).
    cut_owed: bool,
    registered: bool,
    /// Has slept at least once: its signal may be in waiter lists and hold
    /// a waker.
    armed: bool,
    ended: Option<CloseReason>,
}

/// What only some watches use, allocated when one does.
#[derive(Default)]
struct Rare {
    filter: Option<Filter>,
    throttle: Option<Throttle>,
    /// The receiving thread's waker (blocking receives that parked).
    thread_waker: Option<(ThreadId, Waker)>,
    /// An async throttled watch's wake-up; dropped (cancelled) with it.
    timer: Option<TimerEntry>,
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
        opts.check()?;
        if idents.is_some_and(<[S]>::is_empty) {
            return Err(Error::InvalidOption("a watch needs at least one variable".into()));
        }
        Watch::register(
            session,
            |session| match idents {
                None => Ok(session.cells().into()),
                Some(idents) => {
                    let mut cells = SmallVec::with_capacity(idents.len());
                    let mut missing = Vec::new();
                    for ident in idents {
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
                    Ok(cells)
                }
            },
            idents.is_none(),
            opts,
        )
    }

    /// Registers a watch on one variable whose cell the caller holds (a
    /// reader's handle: no name lookup), and takes its snapshot, atomically.
    pub(crate) fn subscribe_cell(
        session: Arc<Session>,
        cell: &Arc<VarCell>,
        opts: WatchOptions,
    ) -> Result<Watch, Error> {
        opts.check()?;
        // A deleted variable is refused under the write lock (in
        // `register`), where it cannot be deleted meanwhile.
        Watch::register(session, |_| Ok(smallvec::smallvec![cell.clone()]), false, opts)
    }

    /// The atomic subscribe: under the session's write lock no change can
    /// happen, so the variables `find` returns, the registration, the log
    /// position and the snapshot are one consistent cut, and every change
    /// after it is in the log at or after the watch's cursor.
    fn register(
        session: Arc<Session>,
        find: impl FnOnce(&Session) -> Result<SmallVec<[Arc<VarCell>; 1]>, Error>,
        whole_session: bool,
        opts: WatchOptions,
    ) -> Result<Watch, Error> {
        let coalescing = opts.reads_cuts();
        let include_initial = opts.include_initial;
        // A coalescing watch owes its first states as `Initial` events of
        // its first cut; a lossless one queues them now.
        let owed = include_initial && coalescing;
        // Sized when the snapshot is known: exactly its events (a queue
        // grown by pushes would round up to four).
        let mut pending = VecDeque::new();
        let (tracked, revision, capacity, cursor, key, shared) = session.with_write_lock(|| {
            let mut cells = find(&session)?;
            if cells.len() > 1 {
                cells.sort_by_key(|c| c.meta.slot);
                cells.dedup_by_key(|c| c.meta.slot);
            }
            // The snapshot, in `cells` order (sorted, distinct).
            let snapshot: SmallVec<[Arc<Record>; 1]> = cells.iter().map(|c| c.current.load_full()).collect();
            if let Some(i) = snapshot.iter().position(|r| r.kind == RecordKind::Deleted) {
                // A handle's variable, deleted since (names resolve only to
                // live variables).
                return Err(Error::VariablesNotFound {
                    session: session.id.to_string(),
                    variables: vec![cells[i].meta.name.to_string()],
                });
            }
            // A coalescing watch reads cuts, never the log: it asks the log
            // to keep nothing for it.
            let capacity = if coalescing {
                0
            } else {
                let asked = opts.capacity.min(u32::MAX as usize);
                session.log.retain(asked, session.max_log) as u32
            };
            let cursor = session.log.tail();
            let revision = session.revision();
            let names = match &cells[..] {
                _ if whole_session => Names::Session,
                [one] => Names::One(one.meta.clone()),
                many => Names::Many(Box::new(many.iter().map(|c| c.meta.name.clone()).collect())),
            };
            let lists = if whole_session { 1 } else { cells.len() };
            // Store-wide (shared by every session): a read-modify-write.
            let id = session.counters.next_watch_id.fetch_add(1, Ordering::Relaxed) + 1;
            let shared = Arc::new(WatchShared::new(lists, id, coalescing, names));
            shared.counters.cursor.store(cursor, Ordering::Relaxed);
            let mut tracked = SmallVec::with_capacity(cells.len());
            if include_initial && !coalescing {
                pending.reserve_exact(cells.len());
            }
            for (i, (cell, record)) in cells.into_iter().zip(snapshot).enumerate() {
                // With initial values, the snapshot's version is owed to the
                // user; without, it counts as seen.
                tracked.push(Tracked {
                    next: if owed { record.version } else { record.version + 1 },
                    initial_owed: owed,
                    list: if whole_session { 0 } else { i as u32 },
                    cell,
                });
                if include_initial && !coalescing {
                    // The first group: the snapshot, at its revision.
                    let mut ev = WatchEvent::new(EventKind::Initial, record);
                    ev.revision = revision;
                    pending.push_back(ev);
                }
            }
            let key = match session.observers.register(shared.clone()) {
                Ok(key) => key,
                Err(e) => {
                    if capacity > 0 {
                        session.log.release(capacity as usize);
                    }
                    return Err(e);
                }
            };
            Ok((tracked, revision, capacity, cursor, key, shared))
        })?;

        let rare = (opts.filter.is_some() || opts.throttle.is_some()).then(|| {
            Box::new(Rare {
                filter: opts.filter,
                throttle: opts.throttle.map(|interval| Throttle {
                    interval,
                    next_due: None,
                }),
                ..Rare::default()
            })
        });
        let watch = Watch {
            session,
            shared,
            tracked,
            cursor,
            pending,
            snapshot_revision: revision,
            capacity,
            rare,
            key,
            whole_session,
            reads_cuts: coalescing,
            overflow: opts.overflow,
            cut_owed: owed,
            registered: true,
            armed: false,
            ended: None,
        };
        watch.publish_backlog();
        Ok(watch)
    }

    /// What only some watches use, allocated on first use.
    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
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

    /// The ids of the variables a named watch follows.
    #[cfg(feature = "transport")]
    pub(crate) fn tracked_ids(&self) -> impl Iterator<Item = &str> {
        self.tracked.iter().map(|t| &*t.cell.meta.id)
    }

    /// The subscription's first group, taken right after subscribing (for a
    /// remote watch's snapshot): the initial states, and the revision they
    /// are at. A coalescing watch reads its first cut now.
    #[cfg(feature = "transport")]
    pub(crate) fn take_initial(&mut self) -> (u64, Vec<WatchEvent>) {
        if self.cut_owed {
            self.cut_owed = false;
            self.deliver_cut();
        }
        let revision = self
            .pending
            .front()
            .map_or(self.snapshot_revision, |e| e.revision);
        let n = self
            .pending
            .iter()
            .take_while(|e| e.revision == revision && e.kind != EventKind::SessionClosed)
            .count();
        let events: Vec<WatchEvent> = self.pending.drain(..n).collect();
        self.count_delivered(events.len() as u64);
        self.publish_backlog();
        (revision, events)
    }

    /// Whether the next queued event belongs to the group of the event just
    /// received (so that a message boundary placed here would split it).
    #[cfg(feature = "transport")]
    pub(crate) fn group_continues(&self, last: &WatchEvent) -> bool {
        self.pending.front().is_some_and(|next| {
            next.revision == last.revision
                && next.kind != EventKind::SessionClosed
                && last.kind != EventKind::SessionClosed
        })
    }

    /// Records a remote client's acknowledgement (monotonic: an older one
    /// changes nothing).
    #[cfg(feature = "transport")]
    pub(crate) fn acknowledge(&self, revision: u64) {
        self.shared
            .counters
            .rare()
            .acked
            .fetch_max(revision.saturating_add(1), Ordering::Relaxed);
    }

    /// This watch's counters.
    pub fn stats(&self) -> WatchStats {
        stats_of(&self.shared, self.session.log.tail())
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

    /// Puts this watch's signal where writers of what it watches will find
    /// it (the watcher's half of the wake-up protocol, `wakeup.rs`). The
    /// caller must check for news once more before it sleeps. (`None` only
    /// for a watch that follows nothing, which has ended.)
    fn arm(&mut self, waker: &Waker) -> Option<Armed> {
        // Nothing is queued while the watch sleeps: give back a queue buffer
        // that a burst grew, so that an idle watch holds at most a small one
        // (the first allocation holds four events; keeping it spares a watch
        // that sleeps between single events an allocation per event).
        if self.pending.capacity() > SMALL_QUEUE {
            self.pending = VecDeque::new();
        }
        self.armed = true;
        if self.whole_session {
            let waiters = &self.session.observers.session_waiters;
            return Some(waiters.arm(&self.shared, 0, waker));
        }
        let mut armed = None;
        for t in &self.tracked {
            armed = Some(t.cell.waiters.arm(&self.shared, t.list, waker));
        }
        armed
    }

    /// One attempt to produce the next event, without blocking.
    fn step(&mut self) -> Step {
        let step = self.step_inner();
        if let Step::Event(_) = step {
            if self.pending.is_empty() {
                // The backlog is published when events are queued (an upper
                // bound until then); it is zero again once they are taken.
                self.shared.local.store(0, Ordering::Relaxed);
            }
            self.count_delivered(1);
            if !self.registered {
                // Unregistered (ended): counted by the store directly.
                self.session
                    .counters
                    .retired_events
                    .fetch_add(1, Ordering::Relaxed);
            }
        } else {
            // Nothing left: the cursor may have moved without queueing
            // anything (a coalesced cut with no news, events the filter
            // took): publish where the watch stands.
            self.publish_backlog();
        }
        step
    }

    fn step_inner(&mut self) -> Step {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                if let Some(ev) = self.apply_filter(ev) {
                    return Step::Event(ev);
                }
                continue;
            }
            if self.ended.is_some() {
                return Step::Ended;
            }
            let progressed = if self.reads_cuts {
                match self.coalesce() {
                    Ok(progressed) => progressed,
                    Err(due) => return Step::Empty(Some(due)),
                }
            } else {
                self.fill()
            };
            if !progressed {
                return Step::Empty(None);
            }
            self.publish_backlog();
        }
    }

    /// Counts `n` events handed out. Only this watch writes the count: a
    /// load and a store of its own atomic, no read-modify-write.
    fn count_delivered(&self, n: u64) {
        let delivered = &self.shared.counters.delivered;
        delivered.store(delivered.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }

    /// Shows how far behind the watch is, for `stats`, `list_watchers` and
    /// the writers that trim the log: called when the watch has read (its
    /// cursor moved, events were queued), not per event.
    fn publish_backlog(&self) {
        let counters = &self.shared.counters;
        let local = u32::try_from(self.pending.len()).unwrap_or(u32::MAX);
        self.shared.local.store(local, Ordering::Relaxed);
        counters.cursor.store(self.cursor, Ordering::Relaxed);
    }

    fn tracked_index(&self, slot: Slot) -> Result<usize, usize> {
        self.tracked.binary_search_by_key(&slot, |t| t.cell.meta.slot)
    }

    /// A whole-session watch starts following a variable it has just found.
    fn track_new(&mut self, pos: usize, cell: Arc<VarCell>, held: Held) {
        debug_assert!(self.whole_session);
        // Whole-session watches sleep on the session's one waiter list.
        let mut t = Tracked {
            cell,
            next: 0,
            initial_owed: false,
            list: 0,
        };
        t.hold(held);
        self.tracked.insert(pos, t);
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

    /// The event that ends the watch because its session is gone.
    fn closed_event(&self, revision: u64) -> WatchEvent {
        let record = self.session.closed_record(revision);
        WatchEvent::new(EventKind::SessionClosed, record)
    }

    /// Queues the final event (if any) and stops reading; unregisters.
    fn finish(&mut self, reason: CloseReason, last: Option<WatchEvent>) {
        if self.ended.is_some() {
            return;
        }
        if let Some(ev) = last {
            self.pending.push_back(ev);
        }
        self.ended = Some(reason);
        self.unregister();
    }

    /// Removes every trace of this watch from its session: the registration,
    /// the waiter-list entries, the event log's capacity, the waker. The end
    /// of the last watch counts as an access of the session (an open watch
    /// keeps its session alive; see `Session::is_expired`).
    fn unregister(&mut self) {
        if !self.registered {
            return;
        }
        self.registered = false;
        self.session.observers.unregister(self.key);
        if self.capacity > 0 {
            self.session.log.release(self.capacity as usize);
        }
        let delivered = self.shared.counters.delivered.load(Ordering::Relaxed);
        if delivered > 0 {
            self.session
                .counters
                .retired_events
                .fetch_add(delivered, Ordering::Relaxed);
        }
        // A watch that never slept is in no waiter list and holds no waker.
        if self.armed {
            if self.whole_session {
                self.session.observers.session_waiters.remove(&self.shared, 0);
            } else {
                for t in &self.tracked {
                    t.cell.waiters.remove(&self.shared, t.list);
                }
            }
            self.shared.clear_waker();
        }
        if let Some(rare) = self.rare.as_deref_mut() {
            rare.timer = None;
        }
        self.session.touch();
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.unregister();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc as StdArc;
    use std::task::{Context, Poll, Wake};

    use super::*;
    use crate::{SessionOptions, SessionStore, VarDef, VarType};

    struct Noop;
    impl Wake for Noop {
        fn wake(self: StdArc<Self>) {}
    }

    fn store_with_x() -> SessionStore {
        let store = SessionStore::new();
        store.create_session("s", SessionOptions::new()).unwrap();
        store
            .register("s", VarDef::new("x", VarType::Integer, 0))
            .unwrap();
        store
    }

    /// Everything that registered the task's waker — the waiter list, the
    /// watch's signal, the timer of a throttle — lets go of it as soon as
    /// the watch is dropped, even with an hour left on the throttle.
    #[test]
    fn dropping_a_waiting_watch_releases_its_waker_at_once() {
        let store = store_with_x();
        let task = StdArc::new(Noop);
        let waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&waker);
        let before = crate::timer::pending();
        let mut watches = Vec::new();
        for _ in 0..50 {
            let opts = WatchOptions::new()
                .include_initial(false)
                .throttle(Duration::from_secs(3600));
            let mut w = store.watch("s", ["x"], opts).unwrap();
            store
                .update("s", "x", store.value("s", "x").unwrap().as_i64().unwrap() + 1)
                .unwrap();
            assert!(matches!(w.poll_recv(&mut cx), Poll::Ready(Some(_))));
            store
                .update("s", "x", store.value("s", "x").unwrap().as_i64().unwrap() + 1)
                .unwrap();
            assert!(w.poll_recv(&mut cx).is_pending()); // held by the throttle
            watches.push(w);
        }
        assert!(StdArc::strong_count(&task) > 50, "the watches hold the waker");
        assert!(crate::timer::pending() >= before + 50);
        drop(watches);
        assert_eq!(StdArc::strong_count(&task), 2, "a waker outlived its watch");
        assert_eq!(store.list_watchers("s").unwrap().len(), 0);
    }

    /// Polling again with another task's waker releases the first one (in
    /// the watch's signal and in the timer of a throttle).
    #[test]
    fn a_replaced_waker_is_released() {
        let store = store_with_x();
        let (a, b) = (StdArc::new(Noop), StdArc::new(Noop));
        let (wa, wb) = (Waker::from(a.clone()), Waker::from(b.clone()));
        let opts = WatchOptions::new()
            .include_initial(false)
            .throttle(Duration::from_secs(3600));
        let mut w = store.watch("s", ["x"], opts).unwrap();
        store.update("s", "x", 1).unwrap();
        assert!(w.poll_recv(&mut Context::from_waker(&wa)).is_ready());
        store.update("s", "x", 2).unwrap();
        assert!(w.poll_recv(&mut Context::from_waker(&wa)).is_pending());
        assert!(StdArc::strong_count(&a) > 2);
        assert!(w.poll_recv(&mut Context::from_waker(&wb)).is_pending());
        assert_eq!(
            StdArc::strong_count(&a),
            2,
            "the first task's waker is still held"
        );
        assert!(StdArc::strong_count(&b) > 2);
        drop(w);
        assert_eq!(StdArc::strong_count(&b), 2);
    }

    /// A plain watch parked on a variable: dropping it empties the
    /// variable's waiter list and the registry.
    #[test]
    fn dropping_a_parked_watch_empties_the_waiter_list() {
        let store = store_with_x();
        let task = StdArc::new(Noop);
        let waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&waker);
        let mut w = store
            .watch("s", ["x"], WatchOptions::new().include_initial(false))
            .unwrap();
        assert!(w.poll_recv(&mut cx).is_pending());
        assert_eq!(StdArc::strong_count(&task), 3);
        let shared = w.shared.clone();
        drop(w);
        assert_eq!(StdArc::strong_count(&task), 2);
        assert_eq!(
            Arc::strong_count(&shared),
            1,
            "a waiter list or the registry still holds the watch"
        );
        assert!(store.list_watchers("s").unwrap().is_empty());
    }

    /// A coalescing watch that has queued nothing reads one cut when it is
    /// received from: every version passed over is counted once (v1..=v9
    /// before v10).
    #[test]
    fn coalesced_receive_counts_each_skipped_version_once() {
        let store = SessionStore::new();
        store.create_session("s", SessionOptions::new()).unwrap();
        store
            .register("s", VarDef::new("x", VarType::Integer, 0))
            .unwrap();
        let opts = WatchOptions::new().coalesce().include_initial(false);
        let mut w = store.watch("s", ["x"], opts).unwrap();
        for i in 1..=10 {
            store.update("s", "x", i).unwrap();
        }
        let e = w.try_recv().unwrap();
        assert_eq!((e.version(), e.skipped()), (10, 9));
        assert_eq!(w.stats().versions_skipped, 9);
        assert_eq!(w.try_recv().unwrap_err(), TryRecvError::Empty);
    }

    /// The per-watch layout the memory figures rest on (BENCHMARKS.md,
    /// "memory per idle watch"): a regression here is a regression there.
    #[test]
    fn an_idle_watch_is_small() {
        use std::mem::size_of;
        assert!(size_of::<Watch>() <= 120, "Watch is {} bytes", size_of::<Watch>());
        assert!(
            size_of::<WatchShared>() <= 104,
            "WatchShared is {} bytes",
            size_of::<WatchShared>()
        );
        let store = store_with_x();
        let task = StdArc::new(Noop);
        let waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&waker);
        let mut w = store.watch("s", ["x"], WatchOptions::new()).unwrap();
        assert!(w.rare.is_none(), "a plain watch allocates nothing rare");
        assert!(
            w.tracked.len() == 1 && !w.tracked.spilled(),
            "one variable is tracked inline"
        );
        assert!(matches!(w.poll_recv(&mut cx), Poll::Ready(Some(_))));
        assert!(w.poll_recv(&mut cx).is_pending());
        assert!(
            w.pending.capacity() <= SMALL_QUEUE,
            "a sleeping watch keeps a small queue at most"
        );
        assert!(w.shared.counters.rare_if_any().is_none(), "no rare counter moved");
        for i in 1..=100 {
            store.update("s", "x", i).unwrap();
        }
        assert_eq!(w.try_recv().unwrap().version(), 1);
        assert!(w.pending.capacity() > SMALL_QUEUE, "a burst grew the queue");
        while w.try_recv().is_ok() {}
        assert!(w.poll_recv(&mut cx).is_pending());
        assert_eq!(
            w.pending.capacity(),
            0,
            "the burst's buffer is given back on sleeping"
        );
        assert_eq!(w.stats().queue_depth, 0);
    }

    /// A reader's handle subscribes without a name lookup, with the same
    /// snapshot and errors as the store's `watch`.
    #[test]
    fn a_reader_subscribes_to_its_variable() {
        let store = store_with_x();
        let reader = store.reader("s", "x").unwrap();
        let mut w = reader.watch(WatchOptions::new()).unwrap();
        assert_eq!(w.try_recv().unwrap().kind(), EventKind::Initial);
        store.update("s", "x", 3).unwrap();
        assert_eq!(w.try_recv().unwrap().version(), 1);
        assert_eq!(
            store.list_watchers("s").unwrap()[0].variables,
            Some(vec!["x".to_string()])
        );
        let bad = WatchOptions::new().capacity(0);
        assert!(matches!(reader.watch(bad), Err(Error::InvalidOption(_))));
        store.delete_variable("s", "x").unwrap();
        assert!(matches!(
            reader.watch(WatchOptions::new()),
            Err(Error::VariablesNotFound { .. })
        ));
        store.delete_session("s").unwrap();
        assert!(matches!(
            reader.watch(WatchOptions::new()),
            Err(Error::SessionNotFound { .. })
        ));
    }

    /// A coalescing watch of the whole session whose variable is deleted
    /// before its first receive: that variable is never shown (at the cut's
    /// revision it does not exist); a named coalescing watch is told.
    #[test]
    fn a_variable_deleted_before_a_coalesced_first_receive() {
        let store = store_with_x();
        store
            .register("s", VarDef::new("y", VarType::Integer, 0))
            .unwrap();
        let opts = WatchOptions::new().coalesce();
        let mut whole = store.watch_session("s", opts.clone()).unwrap();
        let mut named = store.watch("s", ["x", "y"], opts).unwrap();
        store.delete_variable("s", "y").unwrap();
        let e = whole.try_recv().unwrap();
        assert_eq!((e.kind(), e.variable_name()), (EventKind::Initial, "x"));
        assert_eq!(whole.try_recv().unwrap_err(), TryRecvError::Empty);
        let kinds: Vec<_> = named
            .try_iter()
            .map(|e| (e.kind(), e.variable_name().to_string()))
            .collect();
        assert_eq!(
            kinds,
            [
                (EventKind::Initial, "x".to_string()),
                (EventKind::Deleted, "y".to_string())
            ]
        );
    }

    /// Queue depth goes back to zero once a watch has taken everything,
    /// also when what it read brought it nothing (a coalescing watch whose
    /// variable did not move, events its filter rejected).
    #[test]
    fn queue_depth_returns_to_zero() {
        let store = store_with_x();
        store
            .register("s", VarDef::new("y", VarType::Integer, 0))
            .unwrap();
        let mut coalescing = store
            .watch("s", ["x"], WatchOptions::new().coalesce().include_initial(false))
            .unwrap();
        let mut filtered = store
            .watch(
                "s",
                ["y"],
                WatchOptions::new().include_initial(false).filter(|_, _| false),
            )
            .unwrap();
        for i in 1..=3 {
            store.update("s", "y", i).unwrap();
        }
        assert_eq!(coalescing.try_recv().unwrap_err(), TryRecvError::Empty);
        assert_eq!(filtered.try_recv().unwrap_err(), TryRecvError::Empty);
        assert_eq!(coalescing.stats().queue_depth, 0);
        assert_eq!(filtered.stats().queue_depth, 0);
        assert_eq!(filtered.stats().events_filtered, 3);
    }

    /// Watch ids are unique across the sessions of a store, also when
    /// sessions subscribe concurrently.
    #[test]
    fn watch_ids_are_unique_across_sessions() {
        let store = SessionStore::new();
        for s in ["a", "b"] {
            store.create_session(s, SessionOptions::new()).unwrap();
            store.register(s, VarDef::new("x", VarType::Integer, 0)).unwrap();
        }
        let ids: Vec<Vec<u64>> = std::thread::scope(|scope| {
            let hs: Vec<_> = ["a", "b"]
                .into_iter()
                .map(|s| {
                    let store = &store;
                    scope.spawn(move || {
                        (0..2000)
                            .map(|_| store.watch(s, ["x"], WatchOptions::new()).unwrap().id())
                            .collect()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut all: Vec<u64> = ids.concat();
        all.sort_unstable();
        let n = all.len();
        all.dedup();
        assert_eq!(all.len(), n, "a watch id was handed out twice");
    }
}
