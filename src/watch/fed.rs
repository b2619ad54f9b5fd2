//! [`FedWatch`]: the source of a [`Watch`](super::Watch) that a task of a
//! client's runtime feeds: one downstream of a [`Feed`] (see `feed.rs`),
//! and the backend's [`Hooks`] — what the remote client or the etcd store
//! does when the watch is dropped, and the counters only it knows.
//!
//! Receiving needs no runtime: a blocking receive parks the thread, an async
//! one registers the task's waker, and the feeding task wakes either.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Waker;
use std::time::SystemTime;

use super::feed::Feed;
use super::{CloseReason, Step, WatchEvent, WatchStats};
use crate::sync::Mutex;

/// What a backend adds to a fed watch. Dropped with the watch: its `Drop`
/// releases what the watch held (a remote client cancels the watch on the
/// server, an etcd watch leaves its hub).
pub(crate) trait Hooks: Send + Sync + 'static {
    /// Adds the counters only the backend knows (heartbeats, sharing).
    fn stats(&self, _stats: &mut WatchStats) {}
}

/// Ids of fed watches: unique in the process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fed watch's source.
pub(crate) struct FedWatch {
    feed: Arc<Mutex<Feed>>,
    down: usize,
    id: u64,
    session: Arc<str>,
    delivered: u64,
    filtered: u64,
    filter_panics: u64,
    created_at: SystemTime,
    hooks: Box<dyn Hooks>,
}

impl fmt::Debug for FedWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FedWatch")
            .field("down", &self.down)
            .field("delivered", &self.delivered)
            .finish()
    }
}

impl FedWatch {
    /// Downstream `down` of `feed`, a watch of `session`.
    pub(crate) fn new(feed: Arc<Mutex<Feed>>, down: usize, session: &str, hooks: Box<dyn Hooks>) -> FedWatch {
        FedWatch {
            feed,
            down,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            session: session.into(),
            delivered: 0,
            filtered: 0,
            filter_panics: 0,
            created_at: SystemTime::now(),
            hooks,
        }
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn session_id(&self) -> &str {
        &self.session
    }

    pub(crate) fn poll(&mut self, waker: Option<&Waker>) -> Step {
        self.feed.lock().recv(self.down, waker)
    }

    pub(crate) fn took(&mut self) {
        self.delivered += 1;
    }

    pub(crate) fn filtered(&mut self, panicked: bool) {
        if panicked {
            self.filter_panics += 1;
        } else {
            self.filtered += 1;
        }
    }

    pub(crate) fn close_reason(&self) -> Option<CloseReason> {
        self.feed.lock().close_reason(self.down)
    }

    pub(crate) fn session_incarnation(&self) -> u64 {
        self.feed.lock().incarnation
    }

    pub(crate) fn take_initial(&mut self) -> (u64, Vec<WatchEvent>) {
        let (revision, events) = self.feed.lock().take_first_group(self.down);
        self.delivered += events.len() as u64;
        (revision, events)
    }

    pub(crate) fn flush(&mut self) {
        self.feed.lock().force(self.down);
    }

    pub(crate) fn caught_up(&mut self, revision: u64, waker: &Waker) -> bool {
        self.feed.lock().caught_up(self.down, revision, waker)
    }

    pub(crate) fn group_continues(&self, last: &WatchEvent) -> bool {
        self.feed.lock().group_continues(self.down, last)
    }

    pub(crate) fn stats(&self) -> WatchStats {
        let (lag_events, versions_skipped, queued, reconnects) = {
            let feed = self.feed.lock();
            let (lag, skipped, queued) = feed.counters(self.down);
            (lag, skipped, queued, feed.reconnects)
        };
        let mut stats = WatchStats {
            events_delivered: self.delivered,
            events_filtered: self.filtered,
            filter_panics: self.filter_panics,
            lag_events,
            versions_skipped,
            queue_depth: queued as u64,
            created_at: self.created_at,
            reconnects,
            heartbeats: 0,
            shared: false,
        };
        self.hooks.stats(&mut stats);
        stats
    }
}
