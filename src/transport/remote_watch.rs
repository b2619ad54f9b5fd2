//! A remote store's watches: a [`Watch`] whose source is one downstream of
//! an upstream's feed (`watch/feed.rs`), and the [`Hooks`] that cancel it
//! on the server when it is dropped.
//!
//! Every watch of a client travels on the client's one watch stream (see
//! `mux.rs`), and identical subscriptions share one watch on the wire. The
//! connection task fills each downstream with whole groups and never waits
//! for it; if it is full, the watch catches up on its own side when its user
//! has drained it, by its overflow policy; a coalescing or throttled watch
//! coalesces on this side too.
//!
//! Across reconnects the user sees a contiguous stream or an explicit
//! `Lagged`, never a silent gap and never a version twice: the connection
//! resumes every watch by variable id from the versions it has, within the
//! same incarnation of the session (a session deleted and created again
//! meanwhile ends the watch with `SessionClosed`), applies what comes back
//! idempotently, and hands a group to watches only whole.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;

use super::client::Inner;
use super::mux::{Attached, Command, ConnCounters};
use super::protocol::WatchId;
use crate::watch::Filter;
use crate::watch::fed::{FedWatch, Hooks};
use crate::{Watch, WatchStats};

/// What a remote watch adds to its source: its place in the mux, and the
/// connection's counters.
struct RemoteHooks {
    id: WatchId,
    down: usize,
    commands: mpsc::UnboundedSender<Command>,
    counters: Arc<ConnCounters>,
    /// The client lives as long as its watches.
    _client: Arc<Inner>,
}

impl Hooks for RemoteHooks {
    fn stats(&self, stats: &mut WatchStats) {
        stats.heartbeats = self.counters.heartbeats.load(Ordering::Relaxed);
    }
}

impl Drop for RemoteHooks {
    fn drop(&mut self) {
        // The connection task detaches it and cancels the watch on the
        // server once no identical watch is left.
        let _ = self.commands.send(Command::Release {
            id: self.id,
            down: self.down,
        });
    }
}

/// The [`Watch`] of a downstream the mux attached.
pub(crate) fn remote_watch(
    session: &str,
    attached: Attached,
    commands: mpsc::UnboundedSender<Command>,
    counters: Arc<ConnCounters>,
    filter: Option<Filter>,
    client: Arc<Inner>,
) -> Watch {
    let hooks = RemoteHooks {
        id: attached.id,
        down: attached.down,
        commands,
        counters,
        _client: client,
    };
    let source = FedWatch::new(attached.feed, attached.down, session, Box::new(hooks));
    Watch::fed(source, filter)
}
