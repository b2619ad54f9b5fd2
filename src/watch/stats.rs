//! [`WatchStats`] and [`WatcherInfo`]: a watch's counters, as the watch and
//! the registry show them.

use std::time::SystemTime;

use crate::observer::{Names, RareCounters, WatchShared};
use crate::sync::{AtomicU64, Ordering};

/// Counters of one watch.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WatchStats {
    /// Events handed to the user.
    pub events_delivered: u64,
    /// Events the filter rejected.
    pub events_filtered: u64,
    /// Filter calls that panicked (their events were delivered).
    pub filter_panics: u64,
    /// Times the watch fell behind and caught up: a local watch's overflows
    /// (also those that skipped none of its own versions and so delivered no
    /// [`Lagged`](crate::EventKind::Lagged) marker: see
    /// [`WatchOptions::capacity`](crate::WatchOptions::capacity)); for a
    /// remote or etcd watch, its own buffer's overflows plus the catch-ups
    /// it received (a server-side overflow, a resume past a gap, a
    /// compaction).
    pub lag_events: u64,
    /// Versions passed over by coalescing or throttling.
    pub versions_skipped: u64,
    /// Events waiting: session events not yet read plus events read but not
    /// yet delivered (an upper bound on what the watch is behind).
    pub queue_depth: u64,
    /// When the watch was created (to the millisecond).
    pub created_at: SystemTime,
    /// Remote and etcd watches: streams re-opened after a failure (0 for a
    /// local watch).
    pub reconnects: u64,
    /// Remote watches: heartbeats received on the client's connection (0
    /// for the others).
    pub heartbeats: u64,
    /// Whether the watch follows a subscription shared with other watches
    /// of its client: an identical remote watch (one watch on the wire), or
    /// an etcd watch following its session's shared etcd watch (`false`
    /// once it fell behind and follows alone). Always `false` locally.
    pub shared: bool,
}

/// One live watch, as listed by
/// [`SessionStore::list_watchers`](crate::SessionStore::list_watchers).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WatcherInfo {
    /// The watch's id ([`Watch::id`](crate::Watch::id)).
    pub id: u64,
    /// Names of the watched variables; `None` for a whole-session watch.
    pub variables: Option<Vec<String>>,
    /// Whether it is in coalescing mode.
    pub coalescing: bool,
    /// Its counters.
    pub stats: WatchStats,
    /// For a watch serving a remote client: the session revision of the last
    /// event the client's user has taken, as the client acknowledged it.
    pub acked_revision: Option<u64>,
}

pub(super) fn stats_of(shared: &WatchShared, tail: u64) -> WatchStats {
    let counters = &shared.counters;
    let cursor = counters.cursor.load(Ordering::Relaxed);
    let rare = counters.rare_if_any();
    let rare_count = |f: fn(&RareCounters) -> &AtomicU64| rare.map_or(0, |r| f(r).load(Ordering::Relaxed));
    WatchStats {
        events_delivered: counters.delivered.load(Ordering::Relaxed),
        events_filtered: rare_count(|r| &r.filtered),
        filter_panics: rare_count(|r| &r.filter_panics),
        lag_events: rare_count(|r| &r.lag_events),
        versions_skipped: rare_count(|r| &r.skipped),
        queue_depth: tail.saturating_sub(cursor) + u64::from(shared.local.load(Ordering::Relaxed)),
        created_at: shared.created_at(),
        reconnects: 0,
        heartbeats: 0,
        shared: false,
    }
}

pub(crate) fn watcher_info(reg: &WatchShared, tail: u64) -> WatcherInfo {
    WatcherInfo {
        id: reg.id,
        variables: match &reg.variables {
            Names::Session => None,
            Names::One(meta) => Some(vec![meta.name.to_string()]),
            Names::Many(ns) => Some(ns.iter().map(|n| n.to_string()).collect()),
        },
        coalescing: reg.coalescing,
        stats: stats_of(reg, tail),
        acked_revision: reg
            .counters
            .rare_if_any()
            .and_then(|r| r.acked.load(Ordering::Relaxed).checked_sub(1)),
    }
}
