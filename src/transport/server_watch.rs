//! The server side of a remote watch, for every transport.
//!
//! One task per stream owns a local [`Watch`] and selects over: the client's
//! messages (heartbeats are echoed, acks recorded; any message moves the
//! silence deadline), the watch's events (sent in batches: one message
//! carries every event ready, up to a count and a byte budget), its own
//! heartbeat tick, and the service closing. When the task ends, for whatever
//! reason, the local watch is dropped and its registration with it. The
//! outgoing queue is bounded: a client that stops reading makes the local
//! watch fall behind and resync (a writer never waits), and a client that
//! stops sending is dropped at its heartbeat timeout, even while the task is
//! waiting for room in the queue.

use std::collections::HashSet;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;

use futures_core::Stream;
use tokio::sync::mpsc;
use tokio::time::{Instant, interval, sleep_until};

use super::WatchTarget;
use super::protocol::{ClientMessage, ServerMessage, Subscribe, SyncComplete};
use super::service::{Limits, value_bytes};
use crate::session::Session;
use crate::{Error, ErrorCode, EventKind, Result, SessionStore, Watch, WatchEvent, WatchOptions};

/// A subscribed remote watch, before its stream starts.
pub(crate) struct Opened {
    /// `None` when everything the client watched is gone.
    watch: Option<Watch>,
    /// What the client must receive before `sync_complete`.
    snapshot: Vec<WatchEvent>,
    /// The snapshot's revision and the session's incarnation.
    sync: SyncComplete,
}

/// Opens the local watch for `sub` and computes what the client must be
/// sent before `sync_complete`. Errors (unknown session, unknown variables
/// not explained by a resume) are returned before anything is registered.
///
/// On resume (`sub.resume` names what the client has, by id):
/// * a variable with a newer version comes as `Changed`, after a `Lagged`
///   marker if versions were skipped;
/// * one deleted meanwhile comes as `Deleted` at its deletion version, after
///   a `Lagged` marker for the versions skipped before it (deletions come
///   first, so that a variable registered again under the same name follows
///   its predecessor's end);
/// * one the client never saw (registered meanwhile, in a whole-session
///   watch) comes as `Initial` at its current version, after a `Lagged`
///   marker for the versions before it;
/// * if the session is another incarnation than the client's, the answer is
///   `SessionClosed`.
pub(crate) fn open(store: &SessionStore, sub: Subscribe) -> Result<Opened> {
    let mut opts = WatchOptions::new().include_initial(true);
    if sub.capacity > 0 {
        opts = opts.capacity(sub.capacity);
    }
    if sub.coalesce {
        opts = opts.coalesce();
    }
    if let Some(interval) = sub.throttle {
        opts = opts.throttle(interval);
    }
    let resume = &sub.resume;
    let resuming = !resume.is_empty() || sub.session_incarnation.is_some();
    // A coalescing watch never sends `Lagged`: what a resume passed over is
    // counted in `skipped` instead.
    let coalescing = sub.coalesce || sub.throttle.is_some();
    let catch_up = |first: u64, e: &WatchEvent, kind: EventKind, revision: u64| -> Vec<WatchEvent> {
        let mut out = Vec::with_capacity(2);
        let passed = e.version().saturating_sub(first);
        if coalescing {
            out.push(WatchEvent::from_parts(kind, e.record().clone(), passed).at_revision(revision));
            return out;
        }
        if passed > 0 {
            let lag = EventKind::Lagged {
                first,
                last: e.version() - 1,
            };
            out.push(WatchEvent::from_parts(lag, e.record().clone(), 0).at_revision(revision));
        }
        out.push(WatchEvent::from_parts(kind, e.record().clone(), 0).at_revision(revision));
        out
    };
    // One lookup: the incarnation, ids and tombstones all come from it.
    let session = store.session_handle(&sub.session)?;
    let watch = match &sub.target {
        WatchTarget::Session => Some(store.watch_session(&sub.session, opts)?),
        WatchTarget::Variables(idents) => {
            if idents.is_empty() {
                return Err(Error::InvalidOption(
                    "a watch needs at least one variable, or the whole session".into(),
                ));
            }
            if resuming {
                resume_variables(store, &session, &sub.session, idents, opts)?
            } else {
                Some(store.watch(&sub.session, idents, opts)?)
            }
        }
    };
    let incarnation = session.incarnation;
    if watch
        .as_ref()
        .is_some_and(|w| w.session_incarnation() != incarnation)
    {
        // The session was deleted and created again while this ran.
        return Err(Error::Remote {
            code: ErrorCode::Unavailable,
            message: format!(
                "session `{}` was replaced during the subscription; try again",
                sub.session
            ),
        });
    }
    if sub.session_incarnation.is_some_and(|i| i != incarnation) {
        // The session the client followed is gone; this one is another.
        return Ok(Opened {
            watch: None,
            snapshot: vec![WatchEvent::bare(EventKind::SessionClosed, "", "", 0, 0)],
            sync: SyncComplete {
                revision: 0,
                session_incarnation: incarnation,
            },
        });
    }
    let mut deletions = Vec::new();
    let mut snapshot = Vec::new();
    let mut current = HashSet::new();
    let mut watch = watch;
    let revision = match watch.as_mut() {
        Some(w) => {
            // The subscription's first group: every event of the resume is
            // labelled with its revision, so that the client receives it as
            // one cut. Anything later stays in the watch and follows
            // `sync_complete`.
            let (revision, initial) = w.take_initial();
            for e in initial {
                current.insert(e.variable_id().to_string());
                match resume.get(e.variable_id()) {
                    None if !resuming => {
                        if sub.include_initial {
                            snapshot.push(e);
                        }
                    }
                    None => {
                        // New to the client: registered while it was away.
                        snapshot.extend(catch_up(0, &e, EventKind::Initial, revision));
                    }
                    Some(&seen) if e.version() <= seen => {} // the client has it
                    Some(&seen) => {
                        // The state is new to the client: a change (with
                        // its own old value, source and metadata).
                        snapshot.extend(catch_up(seen + 1, &e, EventKind::Changed, revision));
                    }
                }
            }
            revision
        }
        None => session.revision(),
    };
    let gone: Vec<(&String, u64)> = resume
        .iter()
        .filter(|(id, _)| !current.contains(*id))
        .map(|(id, &seen)| (id, seen))
        .collect();
    let tombs = session.tombstones(gone.iter().map(|(id, _)| id.as_str()));
    for ((id, seen), tomb) in gone.into_iter().zip(tombs) {
        let (name, deleted_at) = match tomb {
            Some((name, version)) => (name, version),
            // Deleted too long ago to remember (or never existed): the end
            // is all that can be said.
            None => (Arc::from(""), seen.saturating_add(1)),
        };
        if deleted_at <= seen {
            continue; // the client has seen the deletion
        }
        let deletion = WatchEvent::bare(EventKind::Deleted, id, &name, deleted_at, revision);
        deletions.extend(catch_up(seen + 1, &deletion, EventKind::Deleted, revision));
    }
    deletions.append(&mut snapshot);
    Ok(Opened {
        watch,
        snapshot: deletions,
        sync: SyncComplete {
            revision,
            session_incarnation: incarnation,
        },
    })
}

/// Watches the variables a resuming client names by id. Ids are looked up
/// strictly (a name that happens to look like an id is never taken for
/// one); those gone are left out (the caller reports them deleted). If a
/// deletion races the watch, or the watch resolved to anything but these
/// ids, look again (bounded).
fn resume_variables(
    store: &SessionStore,
    session: &Session,
    id: &str,
    ids: &[String],
    opts: WatchOptions,
) -> Result<Option<Watch>> {
    for _ in 0..8 {
        let present: Vec<&str> = ids
            .iter()
            .map(String::as_str)
            .filter(|i| session.has_id(i))
            .collect();
        if present.is_empty() {
            return Ok(None);
        }
        match store.watch(id, &present, opts.clone()) {
            Ok(w) if w.tracked_ids().all(|t| present.contains(&t)) => return Ok(Some(w)),
            Ok(_) | Err(Error::VariablesNotFound { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::Remote {
        code: ErrorCode::Unavailable,
        message: format!("session `{id}` keeps changing under the resume; try again"),
    })
}

fn ended(code: ErrorCode, message: String) -> Error {
    Error::Remote { code, message }
}

/// `now + d`, or a far future if that does not fit in an `Instant`.
pub(crate) fn after(d: std::time::Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + std::time::Duration::from_secs(100 * 365 * 24 * 3600))
}

/// A silence timer that is cheap to restart: hearing something only
/// records the time; the timer is re-armed when it fires early. (Re-arming
/// a tokio timer on every message would cost a timer-wheel update per
/// message.)
pub(crate) struct Silence {
    timeout: std::time::Duration,
    last: Instant,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Silence {
    pub(crate) fn new(timeout: std::time::Duration) -> Silence {
        Silence {
            timeout,
            last: Instant::now(),
            sleep: Box::pin(sleep_until(after(timeout))),
        }
    }

    /// Something was heard: the silence starts again now.
    pub(crate) fn heard(&mut self) {
        self.last = Instant::now();
    }

    /// Resolves once nothing has been heard for the timeout.
    pub(crate) async fn expired(&mut self) {
        loop {
            self.sleep.as_mut().await;
            let due = self
                .last
                .checked_add(self.timeout)
                .unwrap_or_else(|| after(self.timeout));
            if Instant::now() >= due {
                return;
            }
            self.sleep.as_mut().reset(due);
        }
    }
}

/// Cuts `events` into messages of at most `max_events` events and about
/// `max_bytes` bytes of values (at least one event each).
fn chunks(events: Vec<WatchEvent>, limits: &Limits) -> Vec<Vec<WatchEvent>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut bytes = 0;
    for e in events {
        let n = e.value().map_or(0, value_bytes);
        if !cur.is_empty()
            && (cur.len() >= limits.max_events_per_message || bytes + n > limits.max_message_value_bytes)
        {
            out.push(std::mem::take(&mut cur));
            bytes = 0;
        }
        bytes += n;
        cur.push(e);
    }
    out.push(cur); // the last one, possibly empty, carries sync_complete
    out
}

/// The server's side of one stream while it runs: what it reads, what it
/// writes, and when the client counts as silent.
struct Stream_<'a, I> {
    inbound: &'a mut I,
    tx: &'a mpsc::Sender<Result<ServerMessage>>,
    silence: Silence,
    limits: &'a Limits,
    /// Resolves when the service closes; polled only until it has.
    closing: Pin<Box<dyn Future<Output = ()> + Send + 'a>>,
}

impl<I: Stream<Item = ClientMessage> + Send + Unpin> Stream_<'_, I> {
    fn closed(&self) {
        let _ = self.tx.try_send(Err(ended(
            ErrorCode::Unavailable,
            "the server is shutting down".into(),
        )));
    }

    fn silent(&self) -> Error {
        ended(
            ErrorCode::DeadlineExceeded,
            format!(
                "no message from the client for {:?}; closing the watch",
                self.limits.heartbeat_timeout
            ),
        )
    }

    /// Handles one client message; false if the client has gone.
    fn client(&mut self, msg: Option<ClientMessage>, w: Option<&Watch>, echo: &mut Option<u64>) -> bool {
        let Some(msg) = msg else { return false };
        self.silence.heard();
        match msg {
            ClientMessage::Heartbeat(h) => *echo = Some(h),
            ClientMessage::Ack(revision) => {
                if let Some(w) = w {
                    w.acknowledge(revision);
                }
            }
        }
        true
    }

    /// Sends one message. While the queue is full it keeps reading the
    /// client (a slow reader that still heartbeats is not "silent"), and it
    /// gives up at the silence deadline, so that a client that neither reads
    /// nor heartbeats cannot pin the registration. False: the stream is over.
    async fn send(&mut self, msg: ServerMessage, w: Option<&Watch>) -> bool {
        // The common case: room in the queue, no timer involved.
        let msg = match self.tx.try_reserve() {
            Ok(permit) => {
                permit.send(Ok(msg));
                return true;
            }
            Err(mpsc::error::TrySendError::Closed(())) => return false,
            Err(mpsc::error::TrySendError::Full(())) => msg,
        };
        let mut echo = None;
        loop {
            tokio::select! {
                permit = self.tx.reserve() => {
                    let Ok(permit) = permit else { return false };
                    permit.send(Ok(msg));
                    return true;
                }
                m = poll_fn(|cx| Pin::new(&mut *self.inbound).poll_next(cx)) => {
                    // An echo cannot be sent while the queue is full; the
                    // heartbeat still proves the client alive.
                    if !self.client(m, w, &mut echo) {
                        return false;
                    }
                }
                _ = self.silence.expired() => {
                    let _ = self.tx.try_send(Err(self.silent()));
                    return false;
                }
                _ = self.closing.as_mut() => {
                    self.closed();
                    return false;
                }
            }
        }
    }
}

/// Runs one watch stream until the client leaves, falls silent, the watch
/// ends, or `closing` resolves. Returns when everything it held is released.
pub(crate) async fn run<I>(
    opened: Opened,
    mut inbound: I,
    tx: mpsc::Sender<Result<ServerMessage>>,
    limits: Limits,
    closing: impl Future<Output = ()> + Send + 'static,
) where
    I: Stream<Item = ClientMessage> + Send + Unpin,
{
    let mut s = Stream_ {
        inbound: &mut inbound,
        tx: &tx,
        silence: Silence::new(limits.heartbeat_timeout),
        limits: &limits,
        closing: Box::pin(closing),
    };
    // The snapshot (or resume) is one group: every part but the last says
    // that it continues.
    let parts = chunks(opened.snapshot, &limits);
    let last = parts.len() - 1;
    for (i, events) in parts.into_iter().enumerate() {
        let msg = ServerMessage {
            events,
            group_incomplete: i != last,
            sync_complete: (i == last).then_some(opened.sync),
            heartbeat: None,
        };
        if !s.send(msg, opened.watch.as_ref()).await {
            return;
        }
    }
    let Some(mut w) = opened.watch else {
        return; // everything watched was gone: the snapshot said so
    };
    let mut tick = interval(limits.heartbeat_interval);
    // After a long blocked send, one heartbeat, not a burst of them.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.reset();
    let mut beat = 0u64;
    loop {
        let msg = tokio::select! {
            m = poll_fn(|cx| Pin::new(&mut *s.inbound).poll_next(cx)) => {
                let mut echo = None;
                if !s.client(m, Some(&w), &mut echo) {
                    return; // the client closed its side, or the connection broke
                }
                match echo {
                    Some(h) => ServerMessage { heartbeat: Some(h), ..Default::default() },
                    None => continue,
                }
            }
            _ = s.silence.expired() => {
                let _ = tx.try_send(Err(s.silent()));
                return;
            }
            _ = tick.tick() => {
                beat += 1;
                ServerMessage { heartbeat: Some(beat), ..Default::default() }
            }
            first = poll_fn(|cx| w.poll_recv(cx)) => {
                let Some(first) = first else { return };
                // Batch what is ready: one message, not one per event, within
                // a count and a byte budget. A group cut by the budget is
                // marked as continuing.
                let mut bytes = first.value().map_or(0, value_bytes);
                let mut events = vec![first];
                while events.len() < limits.max_events_per_message && bytes < limits.max_message_value_bytes {
                    match w.try_recv() {
                        Ok(e) => {
                            bytes += e.value().map_or(0, value_bytes);
                            events.push(e);
                        }
                        Err(_) => break,
                    }
                }
                let group_incomplete = events.last().is_some_and(|e| w.group_continues(e));
                ServerMessage { events, group_incomplete, ..Default::default() }
            }
            _ = tx.closed() => return,
            _ = s.closing.as_mut() => {
                s.closed();
                return;
            }
        };
        if !s.send(msg, Some(&w)).await {
            return;
        }
    }
}
