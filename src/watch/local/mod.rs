//! The local source of a [`Watch`](super::Watch): a watch of an
//! in-process [`SessionStore`](crate::SessionStore) session, split by stage.
//!
//! | file | stage |
//! |---|---|
//! | `mod.rs` | subscribe (the atomic snapshot), one step of delivery, the wake-up arm, unregister |
//! | `reader.rs` | lossless delivery: reading the event log, and resync after an overflow |
//! | `cut.rs` | the consistent cut a resync or a coalesced delivery starts from |
//! | `coalesce.rs` | coalescing and throttled delivery: the latest state, read as a cut |
//! | `resume.rs` | a watch opened with [`WatchOptions::resume`]: its first group |
//!
//! # What a watch costs
//!
//! A watch is sized for the common case, one variable, no filter, no
//! throttle: the source tracks one variable inline, keeps a throttle (which
//! only some watches use) in a box, and gives back its queue's buffer
//! whenever it goes to sleep. What writers and the registry see
//! (`WatchShared`, 104 bytes) keeps the counters a plain watch never moves
//! (filtered, lagged, skipped, acknowledged) in a box allocated by the
//! first that does. Receiving an event is a pop from the queue plus one
//! plain store of the delivered count; the log's cursor and the backlog
//! are published once per read of the log, not per event.

use std::collections::VecDeque;
use std::fmt;
use std::task::Waker;

mod coalesce;
mod cut;
mod reader;

use smallvec::SmallVec;

use super::catch_up::{Held, Mode};
use super::options::Resume;
use super::resume;
use super::stats::stats_of;
use super::throttle::Throttle;
use super::{CloseReason, EventKind, OverflowPolicy, Step, WatchEvent, WatchOptions, WatchStats};
use crate::error::Error;
use crate::ident::is_var_id;
use crate::meta::Slot;
use crate::observer::{Names, WatchShared};
use crate::record::{Record, RecordKind, VarCell};
use crate::session::Session;
use crate::sync::{Arc, Ordering};
use crate::wakeup::Armed;

/// The largest queue buffer (in events) a sleeping watch keeps.
pub(super) const SMALL_QUEUE: usize = 4;

/// A variable the watch follows.
pub(super) struct Tracked {
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

/// A watch of a local session: the source behind a [`Watch`](super::Watch)
/// from [`SessionStore::watch`](crate::SessionStore::watch). It registers
/// and reads its snapshot under the session's write lock (see
/// [`register`](Self::register)), then reads the session's event log (or
/// cuts of the latest states, when coalescing) as it is received from.
pub(crate) struct LocalWatch {
    // Laid out for the common watch (one variable, no throttle): a
    // throttle lives in a box, one variable is tracked inline, and an empty
    // queue holds no buffer while the watch sleeps.
    pub(super) session: Arc<Session>,
    /// Waker, counters and registry facts, shared with writers and the registry.
    pub(super) shared: Arc<WatchShared>,
    /// Sorted by slot (registration order).
    pub(super) tracked: SmallVec<[Tracked; 1]>,
    /// Lossless: the next log record to read. Coalescing: the log's tail at
    /// the last cut (anything since is news).
    cursor: u64,
    /// Whole groups, ready to hand out.
    pub(super) pending: VecDeque<WatchEvent>,
    /// The session revision of the subscription's snapshot.
    #[cfg_attr(not(feature = "transport"), allow(dead_code))]
    snapshot_revision: u64,
    /// Lossless: the capacity granted by the event log (given back when the
    /// watch unregisters; at most `u32::MAX`). Coalescing: 0.
    capacity: u32,
    /// The registration's key in the session's registry.
    key: u32,
    /// A throttled watch's clock.
    throttle: Option<Box<Throttle>>,
    whole_session: bool,
    /// Coalescing or throttled: reads cuts, never the log's records.
    reads_cuts: bool,
    overflow: OverflowPolicy,
    /// Coalescing: a cut is owed even if the log has not moved (the
    /// subscription's initial states).
    cut_owed: bool,
    /// Coalescing: the next cut is read whatever a throttle says (`flush`).
    forced: bool,
    registered: bool,
    /// Has slept at least once: its signal may be in waiter lists and hold
    /// a waker.
    armed: bool,
    ended: Option<CloseReason>,
}

impl fmt::Debug for LocalWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalWatch")
            .field("id", &self.shared.id)
            .field("session", &&*self.session.id)
            .field("variables", &self.tracked.len())
            .field("whole_session", &self.whole_session)
            .field("ended", &self.ended)
            .finish()
    }
}

impl LocalWatch {
    /// Registers a watch on `idents` (or, with `None`, the whole session) and
    /// takes its snapshot, atomically.
    pub(crate) fn subscribe<S: AsRef<str>>(
        session: Arc<Session>,
        idents: Option<&[S]>,
        opts: WatchOptions,
    ) -> Result<LocalWatch, Error> {
        opts.check()?;
        if idents.is_some_and(<[S]>::is_empty) {
            return Err(Error::InvalidOption("a watch needs at least one variable".into()));
        }
        // A resume names what the watcher had: what no longer resolves is
        // reported as deleted, not refused (`resume.rs`).
        let resuming = opts.resume.is_some();
        LocalWatch::register(
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
                    if !missing.is_empty() && !resuming {
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
    ) -> Result<LocalWatch, Error> {
        opts.check()?;
        // A deleted variable is refused under the write lock (in
        // `register`), where it cannot be deleted meanwhile.
        LocalWatch::register(session, |_| Ok(smallvec::smallvec![cell.clone()]), false, opts)
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
    ) -> Result<LocalWatch, Error> {
        let coalescing = opts.reads_cuts();
        // A resumed watch's first group is computed from the snapshot
        // (`resume.rs`), outside the lock.
        let resuming = opts.resume.is_some();
        let include_initial = opts.include_initial && !resuming;
        // A coalescing watch owes its first states as `Initial` events of
        // its first cut; a lossless one queues them now.
        let owed = include_initial && coalescing;
        // Sized when the snapshot is known: exactly its events (a queue
        // grown by pushes would round up to four).
        let mut pending = VecDeque::new();
        let (tracked, revision, capacity, cursor, key, shared, kept) = session.with_write_lock(|| {
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
            let kept = resuming.then(|| snapshot.clone());
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
            Ok((tracked, revision, capacity, cursor, key, shared, kept))
        })?;

        let throttle = opts.throttle.map(|interval| Box::new(Throttle::new(interval)));
        let mut watch = LocalWatch {
            session,
            shared,
            tracked,
            cursor,
            pending,
            snapshot_revision: revision,
            capacity,
            throttle,
            key,
            whole_session,
            reads_cuts: coalescing,
            overflow: opts.overflow,
            cut_owed: owed,
            forced: false,
            registered: true,
            armed: false,
            ended: None,
        };
        if let (Some(resume), Some(snapshot)) = (opts.resume.as_deref(), kept) {
            watch.resume(resume, &snapshot);
        }
        watch.publish_backlog();
        Ok(watch)
    }

    /// Replaces the first group with what a watcher holding `resume` is
    /// missing (`watch/resume.rs`). `snapshot` is the state of each tracked
    /// variable at the subscription, in `tracked` order.
    fn resume(&mut self, resume: &Resume, snapshot: &[Arc<Record>]) {
        let revision = self.snapshot_revision;
        self.pending.clear();
        self.cut_owed = false;
        if resume.incarnation.is_some_and(|i| i != self.session.incarnation) {
            // The session the watcher followed is gone; this one is another.
            let closed = self.closed_event(revision);
            self.finish(CloseReason::SessionClosed, Some(closed));
            return;
        }
        let mode = if self.reads_cuts {
            Mode::Coalesce
        } else {
            Mode::Resync
        };
        let session = &self.session;
        let tombstone = |key: &str| {
            if is_var_id(key) {
                let (name, version) = session.tombstones(std::iter::once(key)).pop().flatten()?;
                Some((Arc::from(key), name, version))
            } else {
                let (id, version) = session.tombstone_named(key)?;
                Some((id, Arc::from(key), version))
            }
        };
        let group = resume::first_group(resume, snapshot, mode, self.whole_session, revision, tombstone);
        self.pending.extend(group);
        for (t, record) in self.tracked.iter_mut().zip(snapshot) {
            t.next = record.version.saturating_add(1);
            t.initial_owed = false;
        }
        if !self.whole_session && self.tracked.is_empty() {
            // Everything it named is gone: its deletions, and the end.
            self.finish(CloseReason::VariablesDeleted, None);
        }
    }

    /// This watch's id, as shown by `list_watchers`.
    pub(crate) fn id(&self) -> u64 {
        self.shared.id
    }

    /// The id of the session watched.
    pub(crate) fn session_id(&self) -> &str {
        &self.session.id
    }

    /// Why the watch ended, once it has.
    pub(crate) fn close_reason(&self) -> Option<CloseReason> {
        self.ended
    }

    /// The incarnation of the watched session (see `Session::incarnation`).
    pub(crate) fn session_incarnation(&self) -> u64 {
        self.session.incarnation
    }

    /// Brings out what a throttle holds back: the next receive reads a cut
    /// whatever the throttle's clock says.
    #[cfg(feature = "transport")]
    pub(crate) fn flush(&mut self) {
        if self.reads_cuts {
            self.cut_owed = true;
            self.forced = true;
        }
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
    pub(crate) fn stats(&self) -> WatchStats {
        stats_of(&self.shared, self.session.log.tail())
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

    /// One attempt to produce the next event, without blocking; with a
    /// waker, if there is none, arms the watch with it and looks once more
    /// (register-then-check: anything written before the arm is seen now,
    /// anything after it wakes the waker). The event is not counted as
    /// delivered until [`took`](Self::took).
    pub(crate) fn poll(&mut self, waker: Option<&Waker>) -> Step {
        let step = self.step();
        match (step, waker) {
            (Step::Empty(_), Some(waker)) => {
                let _armed = self.arm(waker);
                self.step()
            }
            (step, _) => step,
        }
    }

    /// The event just produced was handed to the user (it passed the
    /// filter).
    pub(crate) fn took(&self) {
        self.count_delivered(1);
        if !self.registered {
            // Unregistered (ended): counted by the store directly.
            self.session
                .counters
                .retired_events
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The event just produced was rejected by the filter (`panicked`: the
    /// filter panicked, and the event was handed out anyway).
    pub(crate) fn filtered(&self, panicked: bool) {
        let rare = self.shared.counters.rare();
        if panicked {
            rare.filter_panics.fetch_add(1, Ordering::Relaxed);
        } else {
            rare.filtered.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn step(&mut self) -> Step {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                if self.pending.is_empty() {
                    // The backlog is published when events are queued (an
                    // upper bound until then); it is zero again once they
                    // are taken.
                    self.shared.local.store(0, Ordering::Relaxed);
                }
                return Step::Event(ev);
            }
            if self.ended.is_some() {
                return Step::Ended;
            }
            let progressed = if self.reads_cuts {
                match self.coalesce() {
                    Ok(progressed) => progressed,
                    Err(due) => {
                        self.publish_backlog();
                        return Step::Empty(Some(due));
                    }
                }
            } else {
                self.fill()
            };
            // The cursor may have moved without queueing anything (a
            // coalesced cut with no news): publish where the watch stands.
            self.publish_backlog();
            if !progressed {
                return Step::Empty(None);
            }
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
        self.session.touch();
    }
}

impl Drop for LocalWatch {
    fn drop(&mut self) {
        self.unregister();
    }
}
