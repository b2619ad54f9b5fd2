//! The protocol-neutral messages between a remote client and a
//! [`Service`](super::Service): the store's operation table
//! ([`Request`], [`Response`], from [`ops`](crate::ops)), and the messages of
//! the watch stream that carries every watch of a connection
//! ([`ClientMessage`], [`ServerMessage`] with [`WatchUpdate`]s).
//!
//! A [`Transport`](super::Transport) moves these; it does not interpret them.
//! The gRPC transport maps each one onto a message of
//! `proto/varwatch/v1/varwatch.proto`; the in-memory transport hands them
//! over as they are.

use std::collections::HashMap;

use crate::WatchEvent;
pub use crate::ops::{Request, Response, WatchTarget};

/// What a watch follows and how: the content of [`ClientMessage::Create`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Subscribe {
    /// The session id.
    pub session: String,
    /// What to follow.
    pub target: WatchTarget,
    /// Send each variable's current state first (as `Initial`).
    pub include_initial: bool,
    /// On reconnect: the last version the client has of each variable (by
    /// id). The server then sends only what is newer (after a `Lagged`
    /// marker for any versions skipped), `Deleted` at its version for what
    /// was deleted (the session remembers its last 4 096 deletions; for an
    /// older one the version is unknown and `Deleted` says only that it is
    /// gone), and, for a whole-session watch, each variable registered
    /// meanwhile as `Initial` after a `Lagged` marker for its earlier
    /// versions.
    pub resume: HashMap<String, u64>,
    /// The server-side watch's capacity (0: the server's default).
    pub capacity: usize,
    /// The server-side watch coalesces: it sends the latest state of each
    /// variable, with `skipped` counts, rather than every version.
    pub coalesce: bool,
    /// The server-side watch is throttled to one delivery per interval
    /// (implies `coalesce`).
    pub throttle: Option<std::time::Duration>,
    /// On reconnect: the session incarnation of the last `sync_complete`.
    /// If the session of that name is another one now (deleted and created
    /// again, or a server that lost its state), the server answers with
    /// `SessionClosed` instead of resuming into it.
    pub session_incarnation: Option<u64>,
}

impl Subscribe {
    /// A subscription to `target` in `session`, with the initial states.
    pub fn new(session: impl Into<String>, target: WatchTarget) -> Subscribe {
        Subscribe {
            session: session.into(),
            target,
            include_initial: true,
            resume: HashMap::new(),
            capacity: 0,
            coalesce: false,
            throttle: None,
            session_incarnation: None,
        }
    }
}

/// A watch's id on a watch stream: chosen by the client, unique among the
/// stream's open watches.
pub type WatchId = u64;

/// A message from the client on the watch stream (one stream carries every
/// watch of a connection; see the `.proto` for the stream's whole life).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientMessage {
    /// Open a watch: register it with its snapshot (or resume) and stream
    /// its changes as [`WatchUpdate`]s with this id.
    Create(WatchId, Subscribe),
    /// End a watch (its last update says `Cancelled`).
    Cancel(WatchId),
    /// The user has taken everything of this watch up to this session
    /// revision (idempotent; shown as the watch's acked revision in
    /// [`list_watchers`](crate::SessionStore::list_watchers)).
    Ack(WatchId, u64),
    /// "I am alive"; the server echoes it.
    Heartbeat(u64),
    /// Bring this watch up to date: the server answers with a
    /// [`WatchUpdate::progress`] carrying this request's number (increasing
    /// per watch) once it has sent every change of the watch up to the
    /// session's revision when the request arrived.
    Progress(WatchId, u64),
}

/// A message from the server on the watch stream: updates of any number of
/// watches, and maybe a heartbeat.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ServerMessage {
    /// Updates, each watch's in order.
    pub updates: Vec<WatchUpdate>,
    /// A heartbeat's sequence number (the server's own, or an echo).
    pub heartbeat: Option<u64>,
}

/// Part of one watch's output, or the same part of several watches'.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WatchUpdate {
    /// The watches this update is for: one, or several whose updates in
    /// this message are the same (a write that many watches see travels
    /// once). Each of them applies it as its own; the order of a watch's
    /// updates is the order of the updates naming it.
    pub ids: Vec<WatchId>,
    /// Events, oldest first. The events of one revision (a group: an atomic
    /// batch, a resync, a snapshot) come together; an update ends inside a
    /// group only when the group is too large for one message, and then
    /// says so with `group_incomplete`.
    pub events: Vec<WatchEvent>,
    /// The last group of `events` continues in a later update of this
    /// watch: a client holds it back until it is complete (and drops it if
    /// the stream breaks first), so that its user never holds half a group.
    pub group_incomplete: bool,
    /// Set on the update that ends the snapshot (or resume). Changes follow.
    pub sync_complete: Option<SyncComplete>,
    /// Set on the watch's last update.
    pub end: Option<WatchEnd>,
    /// The answer to [`ClientMessage::Progress`] requests: every request of
    /// the watch up to this number is answered.
    pub progress: Option<u64>,
}

impl WatchUpdate {
    /// An update of `id` with nothing in it yet.
    pub fn new(id: WatchId) -> WatchUpdate {
        WatchUpdate {
            ids: vec![id],
            events: Vec::new(),
            group_incomplete: false,
            sync_complete: None,
            end: None,
            progress: None,
        }
    }
}

/// Why a watch ended.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum WatchEnd {
    /// Its last event was delivered (`SessionClosed`, or the `Deleted` of
    /// its last variable).
    Done,
    /// The client cancelled it.
    Cancelled,
    /// It could not be created or could not go on: the error says why (its
    /// [`code`](crate::Error::code) says whether to retry).
    Failed(crate::Error),
}

/// The end of a watch stream's snapshot (or resume).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncComplete {
    /// The session revision the snapshot was taken at.
    pub revision: u64,
    /// Which incarnation of the session this is (send it back in
    /// [`Subscribe::session_incarnation`] when resuming).
    pub session_incarnation: u64,
}

impl SyncComplete {
    /// The end of a snapshot taken at `revision` of that incarnation.
    pub fn new(revision: u64, session_incarnation: u64) -> SyncComplete {
        SyncComplete {
            revision,
            session_incarnation,
        }
    }
}
