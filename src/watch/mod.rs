//! [`Watch`]: the one handle on a stream of changes, whatever the store.
//!
//! Every store hands out the same `Watch` ([`VarStore::watch`]): the
//! in-process [`SessionStore`], a remote store over any transport, the etcd
//! store. Receiving, filtering, counting and ending are written once, here;
//! what differs is the *source* behind it (crossbeam-channel's flavors are
//! the model):
//!
//! | source | what feeds it |
//! |---|---|
//! | `local/` | the session's event log and its current states, read by the watch itself as it is received from; the writer never waits for it |
//! | `fed.rs` over `feed.rs` (features `transport`, `etcd`) | a task of the client's runtime (a remote connection's, an etcd watch's) that pushes whole groups and never waits for the user: a full buffer lags and catches up on the user's side |
//!
//! | file | stage |
//! |---|---|
//! | `mod.rs` | the handle: one step of delivery, the filter, ids, stats, close reason |
//! | `blocking.rs` | blocking receive: spin, then park; the `Iterator` |
//! | `stream.rs` | async receive: `poll_recv`, `recv_async`, [`WatchStream`] |
//! | `catch_up.rs` | the catch-up rule every source applies when it moves a watcher past versions |
//! | `throttle.rs` | a throttled watch's clock |
//! | `filter.rs` | the user's filter, run on the watcher's side |
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
//! * a catch-up (`Lagged` markers and current states: after an overflow, a
//!   resume, a compaction);
//! * a coalesced or throttled delivery (the latest states).
//!
//! Every source keeps this: the local event log never splits a write's
//! records, a catch-up or a coalesced delivery reads one consistent cut, and
//! a fed watch takes groups whole and catches up only between them.
//!
//! A filter hides events by the user's rule; the watcher then holds, for
//! each variable, the last state the filter let through.
//!
//! All user code — the filter, the consumer itself — runs here, on the
//! watcher's side, never under a store lock.
//!
//! [`VarStore::watch`]: crate::VarStore::watch
//! [`SessionStore`]: crate::SessionStore

use std::fmt;
use std::task::Waker;
use std::thread::ThreadId;
use std::time::Instant;

mod blocking;
pub(crate) mod catch_up;
mod event;
#[cfg(feature = "transport")]
pub(crate) mod fed;
#[cfg(feature = "transport")]
pub(crate) mod feed;
mod filter;
mod local;
mod options;
mod resume;
mod stats;
mod stream;
mod throttle;

pub use event::{CloseReason, EventKind, RecvTimeoutError, TryRecvError, WatchEvent};
pub(crate) use options::Filter;
pub use options::{MAX_THROTTLE, OverflowPolicy, WatchOptions};
pub(crate) use stats::watcher_info;
pub use stats::{WatchStats, WatcherInfo};
pub use stream::WatchStream;

use crate::error::Error;
use crate::record::VarCell;
use crate::session::Session;
use crate::sync::Arc;
use crate::timer::TimerEntry;
use filter::{Verdict, judge};
use local::LocalWatch;

/// What one attempt to receive found.
pub(crate) enum Step {
    Event(WatchEvent),
    Ended,
    /// Nothing now; with a throttle, nothing before this instant.
    Empty(Option<Instant>),
}

/// What feeds a watch (see the module docs).
enum Source {
    Local(LocalWatch),
    #[cfg(feature = "transport")]
    Fed(Box<fed::FedWatch>),
}

/// A watcher's handle: receives every change of what it watches, exactly
/// once, in order, starting from a consistent snapshot — from whichever
/// store it came from ([`VarStore::watch`](crate::VarStore::watch),
/// [`VarReader::watch`](crate::VarReader::watch)).
///
/// Receive with [`recv`](Self::recv), [`recv_timeout`](Self::recv_timeout),
/// [`recv_deadline`](Self::recv_deadline), [`try_recv`](Self::try_recv),
/// [`try_iter`](Self::try_iter) or as an [`Iterator`] (blocking), and with
/// [`recv_async`](Self::recv_async), [`poll_recv`](Self::poll_recv) or
/// [`into_stream`](Self::into_stream) in async code (any runtime). Dropping
/// it unregisters it (a remote or etcd watch is cancelled at once).
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
///   [`EventKind::Deleted`] of its last variable, under
///   [`OverflowPolicy::Close`] the [`EventKind::Lagged`] markers of its
///   overflow, or for a remote or etcd watch [`EventKind::Disconnected`]
///   once its retry policy is spent), after which receiving returns `None`;
///   [`close_reason`](Self::close_reason) says which.
///
/// And across variables: events come in groups, one revision each, and
/// every group received whole leaves the watcher holding a state the session
/// really had at that revision (see [`docs::rules`](crate::docs::rules)).
#[must_use = "a watch unregisters as soon as it is dropped"]
pub struct Watch {
    source: Source,
    /// What only some watches use, allocated when one does.
    rare: Option<Box<Rare>>,
}

/// What only some watches use.
#[derive(Default)]
struct Rare {
    filter: Option<Filter>,
    /// The receiving thread's waker (blocking receives that parked).
    thread_waker: Option<(ThreadId, Waker)>,
    /// An async throttled watch's wake-up; dropped (cancelled) with it.
    timer: Option<TimerEntry>,
}

impl fmt::Debug for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Watch");
        d.field("id", &self.id()).field("session", &self.session_id());
        match &self.source {
            Source::Local(w) => d.field("source", w),
            #[cfg(feature = "transport")]
            Source::Fed(w) => d.field("source", w),
        };
        d.field("ended", &self.close_reason()).finish()
    }
}

impl Watch {
    fn new(source: Source, filter: Option<Filter>) -> Watch {
        Watch {
            source,
            rare: filter.map(|filter| {
                Box::new(Rare {
                    filter: Some(filter),
                    ..Rare::default()
                })
            }),
        }
    }

    /// Registers a local watch on `idents` (or, with `None`, the whole
    /// session) and takes its snapshot, atomically.
    pub(crate) fn subscribe<S: AsRef<str>>(
        session: Arc<Session>,
        idents: Option<&[S]>,
        mut opts: WatchOptions,
    ) -> Result<Watch, Error> {
        let filter = opts.filter.take();
        let w = LocalWatch::subscribe(session, idents, opts)?;
        Ok(Watch::new(Source::Local(w), filter))
    }

    /// Registers a local watch on one variable whose cell the caller holds
    /// (a reader's handle: no name lookup), and takes its snapshot,
    /// atomically.
    pub(crate) fn subscribe_cell(
        session: Arc<Session>,
        cell: &Arc<VarCell>,
        mut opts: WatchOptions,
    ) -> Result<Watch, Error> {
        let filter = opts.filter.take();
        let w = LocalWatch::subscribe_cell(session, cell, opts)?;
        Ok(Watch::new(Source::Local(w), filter))
    }

    /// A watch fed by a task of a client's runtime (remote, etcd).
    #[cfg(feature = "transport")]
    pub(crate) fn fed(source: fed::FedWatch, filter: Option<Filter>) -> Watch {
        Watch::new(Source::Fed(Box::new(source)), filter)
    }

    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// This watch's id: unique among the watches of its store (for a local
    /// store, the id [`list_watchers`](crate::SessionStore::list_watchers)
    /// shows).
    pub fn id(&self) -> u64 {
        match &self.source {
            Source::Local(w) => w.id(),
            #[cfg(feature = "transport")]
            Source::Fed(w) => w.id(),
        }
    }

    /// The id of the session watched.
    pub fn session_id(&self) -> &str {
        match &self.source {
            Source::Local(w) => w.session_id(),
            #[cfg(feature = "transport")]
            Source::Fed(w) => w.session_id(),
        }
    }

    /// Why the watch ended, once it has (its last event delivered or not).
    pub fn close_reason(&self) -> Option<CloseReason> {
        match &self.source {
            Source::Local(w) => w.close_reason(),
            #[cfg(feature = "transport")]
            Source::Fed(w) => w.close_reason(),
        }
    }

    /// This watch's counters.
    pub fn stats(&self) -> WatchStats {
        match &self.source {
            Source::Local(w) => w.stats(),
            #[cfg(feature = "transport")]
            Source::Fed(w) => w.stats(),
        }
    }

    /// Returns the next event if one is ready, without blocking.
    pub fn try_recv(&mut self) -> Result<WatchEvent, TryRecvError> {
        match self.step(None) {
            Step::Event(e) => Ok(e),
            Step::Ended => Err(TryRecvError::Closed),
            Step::Empty(_) => Err(TryRecvError::Empty),
        }
    }

    /// An iterator over the events ready now; it stops when none is ready.
    pub fn try_iter(&mut self) -> impl Iterator<Item = WatchEvent> + '_ {
        std::iter::from_fn(move || self.try_recv().ok())
    }

    /// One attempt to produce the next event the user gets (the filter
    /// applied), without blocking; with a waker, registers it if there is
    /// none.
    pub(crate) fn step(&mut self, waker: Option<&Waker>) -> Step {
        loop {
            let step = match &mut self.source {
                Source::Local(w) => w.poll(waker),
                #[cfg(feature = "transport")]
                Source::Fed(w) => w.poll(waker),
            };
            let Step::Event(e) = step else {
                return step;
            };
            let verdict = match self.rare.as_deref().and_then(|r| r.filter.as_ref()) {
                None => Verdict::Pass,
                Some(filter) => judge(filter, &e),
            };
            match verdict {
                Verdict::Pass => {}
                Verdict::Reject => {
                    self.filtered(false);
                    continue;
                }
                Verdict::Panicked => self.filtered(true),
            }
            match &mut self.source {
                Source::Local(w) => w.took(),
                #[cfg(feature = "transport")]
                Source::Fed(w) => w.took(),
            }
            return Step::Event(e);
        }
    }

    fn filtered(&mut self, panicked: bool) {
        match &mut self.source {
            Source::Local(w) => w.filtered(panicked),
            #[cfg(feature = "transport")]
            Source::Fed(w) => w.filtered(panicked),
        }
    }

    /// Which life of its session this watch follows: a session deleted and
    /// created again under the same id is another incarnation. Pass it to
    /// [`WatchOptions::within_incarnation`] to resume only within it.
    pub fn session_incarnation(&self) -> u64 {
        match &self.source {
            Source::Local(w) => w.session_incarnation(),
            #[cfg(feature = "transport")]
            Source::Fed(w) => w.session_incarnation(),
        }
    }

    /// The subscription's first group, taken right after subscribing (for a
    /// remote watch's snapshot): the initial states (or a resume's
    /// catch-up), and the revision they are at.
    #[cfg(feature = "transport")]
    pub(crate) fn take_initial(&mut self) -> (u64, Vec<WatchEvent>) {
        match &mut self.source {
            Source::Local(w) => w.take_initial(),
            Source::Fed(w) => w.take_initial(),
        }
    }

    /// Whether the next queued event belongs to the group of the event just
    /// received (so that a message boundary placed here would split it).
    #[cfg(feature = "transport")]
    pub(crate) fn group_continues(&self, last: &WatchEvent) -> bool {
        match &self.source {
            Source::Local(w) => w.group_continues(last),
            Source::Fed(w) => w.group_continues(last),
        }
    }

    /// Records a remote client's acknowledgement (monotonic: an older one
    /// changes nothing). Shown by `list_watchers` for a local watch.
    #[cfg(feature = "transport")]
    pub(crate) fn acknowledge(&self, revision: u64) {
        if let Source::Local(w) = &self.source {
            w.acknowledge(revision);
        }
    }

    /// Brings out what a throttle holds back, once (a server answering a
    /// progress request: the client wants the latest states now).
    #[cfg(feature = "transport")]
    pub(crate) fn flush(&mut self) {
        match &mut self.source {
            Source::Local(w) => w.flush(),
            Source::Fed(w) => w.flush(),
        }
    }

    /// Whether every change up to session revision `revision` has been
    /// handed out, for a caller that has just received everything ready
    /// (so that the next receive would wait); if not, `waker` is woken when
    /// that may have changed.
    #[cfg(feature = "transport")]
    pub(crate) fn caught_up(&mut self, revision: u64, waker: &Waker) -> bool {
        match &mut self.source {
            // Every write that returned is in the session's log or cells,
            // which the last receive read to their end.
            Source::Local(_) => true,
            Source::Fed(w) => w.caught_up(revision, waker),
        }
    }

    /// Whether blocking receives should spin before they park: a local
    /// watch's writer is usually already running on another core.
    fn spins(&self) -> bool {
        matches!(self.source, Source::Local(_))
    }

    #[cfg(test)]
    fn local(&self) -> &LocalWatch {
        match &self.source {
            Source::Local(w) => w,
            #[cfg(feature = "transport")]
            Source::Fed(_) => panic!("not a local watch"),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc as StdArc;
    use std::task::{Context, Poll, Wake};

    use std::time::Duration;

    use super::local::SMALL_QUEUE;
    use super::*;
    use crate::observer::WatchShared;
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
        let shared = w.local().shared.clone();
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
        assert!(size_of::<Watch>() <= 128, "Watch is {} bytes", size_of::<Watch>());
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
            w.local().tracked.len() == 1 && !w.local().tracked.spilled(),
            "one variable is tracked inline"
        );
        assert!(matches!(w.poll_recv(&mut cx), Poll::Ready(Some(_))));
        assert!(w.poll_recv(&mut cx).is_pending());
        assert!(
            w.local().pending.capacity() <= SMALL_QUEUE,
            "a sleeping watch keeps a small queue at most"
        );
        assert!(
            w.local().shared.counters.rare_if_any().is_none(),
            "no rare counter moved"
        );
        for i in 1..=100 {
            store.update("s", "x", i).unwrap();
        }
        assert_eq!(w.try_recv().unwrap().version(), 1);
        assert!(
            w.local().pending.capacity() > SMALL_QUEUE,
            "a burst grew the queue"
        );
        while w.try_recv().is_ok() {}
        assert!(w.poll_recv(&mut cx).is_pending());
        assert_eq!(
            w.local().pending.capacity(),
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
