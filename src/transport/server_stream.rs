//! The server side of a connection's watch stream, for every transport: one
//! task per stream owns every watch created on it.
//!
//! The task selects over: the client's requests (create, cancel, ack,
//! heartbeat; any request moves the silence deadline), the watches that
//! were woken ([`ReadySet`]: a stream with ten thousand watches polls only
//! those), its heartbeat tick, and the service closing. What the watches
//! produce is packed into messages — several watches' updates per message,
//! within a count and a byte budget — and a group cut by the budget is
//! marked `group_incomplete`.
//!
//! Flow: the outgoing queue is bounded. While it is full the task keeps
//! reading the client (heartbeats and acks are handled, creates and cancels
//! wait their turn), so a slow reader is not taken for a silent one; its
//! watches fall behind and resync, and no writer ever waits. A client silent
//! past the timeout is dropped even while the task waits for room. When the
//! task ends, for whatever reason, every watch it holds is dropped, and
//! their registrations with them.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures_core::Stream;
use tokio::sync::mpsc;
use tokio::time::interval;

use super::limits::{Limits, event_bytes};
use super::protocol::{ClientMessage, ServerMessage, Subscribe, WatchEnd, WatchId, WatchUpdate};
use super::ready::{ReadySet, Wakers};
use super::server_watch::{self, Opened};
use super::silence::Silence;
use crate::ops::{Request, Response};
use crate::trace;
use crate::{AsyncVarStore, Error, ErrorCode, EventKind, Result, Watch, WatchEvent};

/// Requests (creates, cancels, progress) held back while the outgoing queue
/// is full, at most. Past it the server stops reading the client (its
/// sends wait: flow control), and a client that then neither reads its
/// messages nor can be heard for the heartbeat timeout is ended with
/// `RESOURCE_EXHAUSTED` naming this limit — not taken for a silent one.
pub(crate) const MAX_DEFERRED: usize = 1024;

/// The sending side of a watch stream: the messages, and the reason the
/// server ends the stream, delivered whatever the queue holds.
pub(crate) struct Out {
    pub(crate) tx: mpsc::Sender<Result<ServerMessage>>,
    pub(crate) end: Arc<parking_lot::Mutex<Option<Error>>>,
}

impl Out {
    /// Ends the stream with `e`, first in the client's way.
    fn end(&self, e: Error) {
        *self.end.lock() = Some(e);
    }
}

/// What a stream task needs from its service.
pub(crate) struct StreamContext<S> {
    pub(crate) store: S,
    pub(crate) limits: Limits,
    /// Open watches across every stream of the service, and the cap.
    pub(crate) open_watches: Arc<AtomicUsize>,
    pub(crate) max_watches: usize,
}

/// Counts one open watch for as long as it lives.
struct OpenWatch(Arc<AtomicUsize>);

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A watch served on this stream.
struct Served {
    watch: Watch,
    _slot: OpenWatch,
    /// Progress requests to answer, in order: each one's number and the
    /// session revision it must reach first.
    progress: VecDeque<(u64, u64)>,
}

/// What a watch id adds to a message's byte budget (a varint, at most).
const ID_BYTES: usize = 10;

/// Messages being assembled: full ones wait in `ready`, `current` fills up.
///
/// Sharing: when a watch's batch of events is exactly an update already in
/// the current message (the same records, seen the same way: one write
/// that several watches see), the watch's id joins that update instead of
/// the events travelling again. So a write watched by a thousand watches on
/// one stream is encoded, sent and decoded once, plus a thousand ids.
struct Outbox {
    ready: VecDeque<ServerMessage>,
    current: ServerMessage,
    events: usize,
    bytes: usize,
    max_events: usize,
    max_bytes: usize,
    /// Updates of `current` another watch may join: (first event's record,
    /// number of events) to the update's index. A hint only: `share`
    /// compares the whole update before joining it.
    shareable: HashMap<(usize, usize), usize>,
}

impl Outbox {
    fn new(limits: &Limits) -> Outbox {
        Outbox {
            ready: VecDeque::new(),
            current: ServerMessage::default(),
            events: 0,
            bytes: 0,
            max_events: limits.max_events_per_message,
            max_bytes: limits.max_message_value_bytes,
            shareable: HashMap::new(),
        }
    }

    /// The update of `id` alone at the end of the current message (a new
    /// one if the last is another watch's, or shared).
    fn update(&mut self, id: WatchId) -> &mut WatchUpdate {
        if self.current.updates.last().is_none_or(|u| u.ids != [id]) {
            self.current.updates.push(WatchUpdate::new(id));
        }
        self.current.updates.last_mut().expect("just pushed")
    }

    /// Whether the current message has no room for an event of `n` bytes.
    fn full(&self, n: usize) -> bool {
        self.events > 0 && (self.events >= self.max_events || self.bytes + n > self.max_bytes)
    }

    /// Adds an event of watch `id` (the caller has sealed a full message).
    fn push(&mut self, id: WatchId, e: WatchEvent, n: usize) {
        self.events += 1;
        self.bytes += n;
        self.update(id).events.push(e);
    }

    /// Joins watch `id` to an update of the current message that holds
    /// exactly `batch` and nothing else; false if there is none (or no
    /// room for one more id).
    fn share(&mut self, id: WatchId, batch: &[WatchEvent]) -> bool {
        let Some(first) = batch.first() else {
            return false;
        };
        if self.bytes + ID_BYTES > self.max_bytes {
            return false;
        }
        let Some(&i) = self.shareable.get(&(first.record_key(), batch.len())) else {
            return false;
        };
        let u = &mut self.current.updates[i];
        let same = u.sync_complete.is_none()
            && u.end.is_none()
            && u.events.len() == batch.len()
            && u.events.iter().zip(batch).all(|(a, b)| a.same_as(b));
        if same {
            u.ids.push(id);
            self.bytes += ID_BYTES;
        }
        same
    }

    /// Offers the last update for sharing if it holds just the `n` events
    /// of one watch's batch.
    fn offer_last(&mut self, n: usize) {
        let i = self.current.updates.len().wrapping_sub(1);
        if let Some(u) = self.current.updates.get(i)
            && u.ids.len() == 1
            && u.events.len() == n
        {
            self.shareable.insert((u.events[0].record_key(), n), i);
        }
    }

    fn end(&mut self, id: WatchId, end: WatchEnd) {
        self.update(id).end = Some(end);
    }

    fn seal(&mut self) {
        if !self.current.updates.is_empty() || self.current.heartbeat.is_some() {
            self.ready.push_back(std::mem::take(&mut self.current));
        }
        self.shareable.clear();
        self.events = 0;
        self.bytes = 0;
    }
}

/// Whether `next` belongs to the group of `last` (so that a message
/// boundary between them would split it).
fn same_group(last: &WatchEvent, next: &WatchEvent) -> bool {
    last.revision() == next.revision()
        && last.kind() != EventKind::SessionClosed
        && next.kind() != EventKind::SessionClosed
}

/// A watch being opened by a task of its own (the store may wait, as
/// etcd's does: the stream goes on meanwhile); its result comes back on
/// `opened`.
type OpenResult = (WatchId, Result<(OpenWatch, Opened)>);

/// A stream's state while it runs.
struct Conn<S> {
    ctx: Arc<StreamContext<S>>,
    watches: HashMap<WatchId, Served>,
    /// Watches being opened: a cancel before the open completes drops it
    /// when it does.
    opening: HashSet<WatchId>,
    opened: mpsc::UnboundedSender<OpenResult>,
    /// Progress requests that came while their watch was opening (their
    /// numbers): answered once it has opened.
    progress_after_open: HashMap<WatchId, Vec<u64>>,
    /// The session revision each progress request must reach, read by a
    /// task of its own (the store may wait): (watch, request, revision).
    revisions: mpsc::UnboundedSender<(WatchId, u64, u64)>,
    ready: Arc<ReadySet>,
    wakers: Wakers,
    out: Outbox,
    beat: u64,
    /// One watch's events taken in `poll_watches` (kept for its capacity).
    batch: Vec<WatchEvent>,
    /// The number of the current `poll_watches` turn (see `ReadySet`).
    turn: u64,
}

impl<S: AsyncVarStore + Send + Sync + 'static> Conn<S> {
    /// Handles a create, a cancel or an ack.
    fn request(&mut self, msg: ClientMessage) {
        match msg {
            ClientMessage::Create(id, sub) => self.create(id, sub),
            ClientMessage::Cancel(id) => {
                self.progress_after_open.remove(&id);
                if self.remove(id) || self.opening.remove(&id) {
                    trace::debug!(watch = id, "watch cancelled");
                    self.out.end(id, WatchEnd::Cancelled);
                }
            }
            ClientMessage::Ack(id, revision) => {
                if let Some(s) = self.watches.get(&id) {
                    s.watch.acknowledge(revision);
                }
            }
            ClientMessage::Heartbeat(h) => self.out.current.heartbeat = Some(h),
            ClientMessage::Progress(id, request) => self.progress(id, request),
        }
    }

    /// A progress request: read the session's revision now, then answer
    /// once the watch has sent everything up to it (see `poll_watches`).
    fn progress(&mut self, id: WatchId, request: u64) {
        if self.opening.contains(&id) {
            self.progress_after_open.entry(id).or_default().push(request);
            return;
        }
        let Some(served) = self.watches.get(&id) else {
            return; // cancelled or ended: its end says all
        };
        let session = served.watch.session_id().to_string();
        let ctx = self.ctx.clone();
        let tx = self.revisions.clone();
        tokio::spawn(trace::in_current_span(async move {
            // A session that is gone ends the watch: its end answers.
            let revision = match ctx.store.call(Request::GetSession { session }).await {
                Ok(Response::Session(info)) => info.revision,
                _ => 0,
            };
            let _ = tx.send((id, request, revision));
        }));
    }

    /// The revision a progress request must reach is known: the watch is
    /// polled (it forces out what a throttle holds) and answers.
    fn progress_due(&mut self, id: WatchId, request: u64, revision: u64) {
        if let Some(served) = self.watches.get_mut(&id) {
            served.progress.push_back((request, revision));
            served.watch.flush();
            self.wakers.requeue(id);
        }
    }

    fn remove(&mut self, id: WatchId) -> bool {
        self.wakers.remove(id);
        self.watches.remove(&id).is_some()
    }

    fn create(&mut self, id: WatchId, sub: Subscribe) {
        if self.remove(id) | self.opening.remove(&id) {
            // A client bug: the id is open. Both are over.
            let e = Error::InvalidOption(format!("watch id {id} is already open on this stream"));
            self.out.end(id, WatchEnd::Failed(e));
            return;
        }
        let slot = match self.admit(&sub) {
            Ok(slot) => slot,
            Err(e) => {
                trace::debug!(watch = id, error = %e, "watch refused");
                self.out.end(id, WatchEnd::Failed(e));
                return;
            }
        };
        self.opening.insert(id);
        let ctx = self.ctx.clone();
        let tx = self.opened.clone();
        tokio::spawn(trace::in_current_span(async move {
            let opened = server_watch::open(&ctx.store, sub).await;
            let _ = tx.send((id, opened.map(|o| (slot, o))));
        }));
    }

    /// A watch's open completed: its snapshot, then its stream.
    fn opened(&mut self, id: WatchId, opened: Result<(OpenWatch, Opened)>) {
        if !self.opening.remove(&id) {
            return; // cancelled meanwhile: dropping it unregisters it
        }
        if opened.is_err() {
            self.progress_after_open.remove(&id);
        }
        let (slot, opened) = match opened {
            Ok(x) => x,
            Err(e) => {
                trace::debug!(watch = id, error = %e, "watch refused");
                self.out.end(id, WatchEnd::Failed(e));
                return;
            }
        };
        trace::debug!(watch = id, events = opened.snapshot.len(), "watch created");
        for e in opened.snapshot {
            self.event(id, e);
        }
        self.out.update(id).sync_complete = Some(opened.sync);
        // Progress asked for while it opened: its snapshot is at least as
        // new as the session was when the request came.
        let progress = self
            .progress_after_open
            .remove(&id)
            .unwrap_or_default()
            .into_iter()
            .map(|request| (request, opened.sync.revision))
            .collect();
        // Polled on the next turn (a new waker starts in the set), which
        // arms it; a watch whose end is its first group ends there.
        self.ready.waker(&mut self.wakers, id);
        self.watches.insert(
            id,
            Served {
                watch: opened.watch,
                _slot: slot,
                progress,
            },
        );
    }

    /// Checks the limits for a new watch, and counts it.
    fn admit(&self, sub: &Subscribe) -> Result<OpenWatch> {
        let limits = &self.ctx.limits;
        let open = self.watches.len() + self.opening.len();
        if open >= limits.max_watches_per_stream {
            return Err(Error::LimitExceeded {
                what: "watches on one stream".into(),
                limit: limits.max_watches_per_stream,
                actual: open + 1,
            });
        }
        // A whole-session resume names every variable the client has, as
        // many as the session holds: only the request size bounds it (a
        // session larger than `max_items` must still resume).
        let (items, resumed) = match &sub.target {
            super::WatchTarget::Variables(v) => (v.len(), sub.resume.len()),
            super::WatchTarget::Session => (0, 0),
        };
        for (what, n) in [
            ("variables in one watch", items),
            ("versions in one resume", resumed),
        ] {
            if n > limits.max_items {
                return Err(Error::LimitExceeded {
                    what: what.into(),
                    limit: limits.max_items,
                    actual: n,
                });
            }
        }
        // Count first, so that concurrent creates cannot overshoot.
        let open = self.ctx.open_watches.fetch_add(1, Ordering::Relaxed);
        let slot = OpenWatch(self.ctx.open_watches.clone());
        if open >= self.ctx.max_watches {
            return Err(Error::LimitExceeded {
                what: "open watches on the server".into(),
                limit: self.ctx.max_watches,
                actual: open + 1,
            });
        }
        Ok(slot)
    }

    /// Polls the watches that were woken, each for at most one message's
    /// worth of events per turn. A watch's events are sent as one batch:
    /// shared with an identical update in the message, or as its own.
    fn poll_watches(&mut self, ids: &[WatchId]) {
        let budget = self.ctx.limits.max_events_per_message.max(1);
        self.turn += 1;
        let mut batch = std::mem::take(&mut self.batch);
        for &id in ids {
            let Some(waker) = self.wakers.take_for_poll(id, self.turn).cloned() else {
                continue;
            };
            let mut cx = Context::from_waker(&waker);
            let mut ended = false;
            let mut drained = false;
            while let Some(served) = self.watches.get_mut(&id) {
                if batch.len() == budget {
                    self.wakers.requeue(id);
                    break;
                }
                match served.watch.poll_recv(&mut cx) {
                    Poll::Ready(Some(e)) => batch.push(e),
                    Poll::Ready(None) => {
                        ended = true;
                        break;
                    }
                    Poll::Pending => {
                        drained = true;
                        break;
                    }
                }
            }
            if !batch.is_empty() && !self.out.share(id, &batch) {
                let n = batch.len();
                for e in batch.drain(..) {
                    self.event(id, e);
                }
                self.out.offer_last(n);
            }
            batch.clear();
            if drained {
                // Everything it had is in this message or before.
                self.answer_progress(id, &waker);
            }
            if ended {
                trace::debug!(watch = id, "watch ended");
                self.remove(id);
                self.out.end(id, WatchEnd::Done);
            }
        }
        self.batch = batch;
    }

    /// Answers the progress requests of watch `id` whose revision it has
    /// reached (everything up to it was taken above); the others wait for
    /// its waker.
    fn answer_progress(&mut self, id: WatchId, waker: &std::task::Waker) {
        let Some(served) = self.watches.get_mut(&id) else {
            return;
        };
        let mut answered = None;
        while let Some(&(request, revision)) = served.progress.front() {
            if !served.watch.caught_up(revision, waker) {
                break;
            }
            served.progress.pop_front();
            // The revisions are read by tasks of their own, so requests may
            // queue out of order; an answer covers every request up to its
            // number (each revision was read after every earlier request
            // was sent), so the highest answered is the one to send.
            answered = answered.max(Some(request));
        }
        if let Some(request) = answered {
            self.out.update(id).progress = Some(request);
        }
    }

    /// Adds an event of watch `id`, sealing the current message first if
    /// it is full.
    fn event(&mut self, id: WatchId, e: WatchEvent) {
        let n = event_bytes(&e);
        if self.out.full(n) {
            self.seal(Some((id, &e)));
        }
        self.out.push(id, e, n);
    }

    /// Seals the current message. Each watch's update in it says whether
    /// its last group goes on: for the watch whose event `next` is in hand,
    /// whether that event continues it; for the others, whether the next
    /// event they have queued does. A shared update whose watches differ on
    /// that is split in two.
    fn seal(&mut self, next: Option<(WatchId, &WatchEvent)>) {
        let goes_on = |id: WatchId, last: &WatchEvent| match next {
            Some((n, e)) if n == id => same_group(last, e),
            _ => self
                .watches
                .get(&id)
                .is_some_and(|served| served.watch.group_continues(last)),
        };
        let mut splits = Vec::new();
        for (i, u) in self.out.current.updates.iter_mut().enumerate() {
            let Some(last) = u.events.last() else { continue };
            if let [id] = u.ids[..] {
                u.group_incomplete |= goes_on(id, last);
                continue;
            }
            let (on, off): (Vec<WatchId>, Vec<WatchId>) = u.ids.iter().partition(|&&id| goes_on(id, last));
            if off.is_empty() {
                u.group_incomplete = true;
            } else if !on.is_empty() {
                let mut continuing = u.clone();
                continuing.ids = on;
                continuing.group_incomplete = true;
                u.ids = off;
                splits.push((i + 1, continuing));
            }
        }
        for (i, u) in splits.into_iter().rev() {
            self.out.current.updates.insert(i, u);
        }
        self.out.seal();
    }
}

/// Runs one watch stream until the client leaves, falls silent, the service
/// closes or the receiving side is dropped. Returns when everything it held
/// is released.
pub(crate) async fn run<S, I>(
    ctx: StreamContext<S>,
    mut inbound: I,
    out: Out,
    closing: impl Future<Output = &'static str> + Send,
) where
    S: AsyncVarStore + Send + Sync + 'static,
    I: Stream<Item = ClientMessage> + Send + Unpin,
{
    let limits = ctx.limits.clone();
    let tx = out.tx.clone();
    let (opened_tx, mut opened_rx) = mpsc::unbounded_channel();
    let (revisions_tx, mut revisions_rx) = mpsc::unbounded_channel();
    let mut conn = Conn {
        out: Outbox::new(&limits),
        ctx: Arc::new(ctx),
        watches: HashMap::new(),
        opening: HashSet::new(),
        opened: opened_tx,
        progress_after_open: HashMap::new(),
        revisions: revisions_tx,
        ready: Arc::new(ReadySet::default()),
        wakers: Wakers::default(),
        beat: 0,
        batch: Vec::new(),
        turn: 0,
    };
    let mut silence = Silence::new(limits.heartbeat_timeout);
    let mut tick = interval(limits.heartbeat_interval);
    // After a long blocked send, one heartbeat, not a burst of them.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.reset();
    let mut closing = std::pin::pin!(closing);
    let mut deferred: VecDeque<ClientMessage> = VecDeque::new();
    let mut ids = Vec::new();
    let silent = || Error::Remote {
        code: ErrorCode::DeadlineExceeded,
        message: format!(
            "no message from the client for {:?}; closing the stream",
            limits.heartbeat_timeout
        ),
    };
    let shutting_down = |why: &str| Error::Remote {
        code: ErrorCode::Unavailable,
        message: why.into(),
    };
    loop {
        // 1. Send what is assembled, waiting for room if need be.
        conn.seal(None);
        let sent = !conn.out.ready.is_empty();
        while let Some(msg) = conn.out.ready.pop_front() {
            let permit = match tx.try_reserve() {
                Ok(p) => p,
                Err(mpsc::error::TrySendError::Closed(())) => return,
                Err(mpsc::error::TrySendError::Full(())) => loop {
                    // While the client reads slowly: keep hearing it (a
                    // heartbeat proves it alive and is echoed with the next
                    // message; acks are applied), keep its creates, cancels
                    // and progress requests for later (at most MAX_DEFERRED,
                    // then stop reading it).
                    let reading = deferred.len() < MAX_DEFERRED;
                    tokio::select! {
                        permit = tx.reserve() => match permit {
                            // The transport took a message, which it does
                            // only when the client's flow-control window has
                            // room: the client is reading, so it is alive
                            // even if we have stopped reading it.
                            Ok(p) => {
                                silence.heard();
                                break p;
                            }
                            Err(_) => return,
                        },
                        m = poll_fn(|c| std::pin::Pin::new(&mut inbound).poll_next(c)), if reading => {
                            let Some(m) = m else { return };
                            silence.heard();
                            match m {
                                ClientMessage::Heartbeat(_) | ClientMessage::Ack(..) => conn.request(m),
                                other => deferred.push_back(other),
                            }
                        }
                        _ = silence.expired() => {
                            if reading {
                                trace::debug!(watches = conn.watches.len(), "dropping a silent client");
                                out.end(silent());
                            } else {
                                // Not heard because not read: the limit is why.
                                trace::debug!(watches = conn.watches.len(), "dropping a client that sent too much without reading");
                                out.end(Error::LimitExceeded {
                                    what: "requests waiting while the client does not read its watch stream".into(),
                                    limit: MAX_DEFERRED,
                                    actual: deferred.len(),
                                });
                            }
                            return;
                        }
                        why = closing.as_mut() => {
                            out.end(shutting_down(why));
                            return;
                        }
                    }
                },
            };
            permit.send(Ok(msg));
        }
        if sent {
            // The server's own heartbeat is for when it has sent nothing.
            tick.reset();
        }
        // 2. What waited while the queue was full.
        if let Some(m) = deferred.pop_front() {
            conn.request(m);
            continue;
        }
        // 3. Wait for something to do.
        tokio::select! {
            m = poll_fn(|c| std::pin::Pin::new(&mut inbound).poll_next(c)) => {
                let Some(m) = m else {
                    return; // the client closed its side, or the connection broke
                };
                silence.heard();
                conn.request(m);
            }
            Some((id, opened)) = opened_rx.recv() => conn.opened(id, opened),
            Some((id, request, revision)) = revisions_rx.recv() => conn.progress_due(id, request, revision),
            () = poll_fn(|c| conn.ready.poll_take(c, &mut ids)) => {
                let woken = std::mem::take(&mut ids);
                conn.poll_watches(&woken);
                ids = woken;
                ids.clear();
            }
            _ = tick.tick() => {
                conn.beat += 1;
                conn.out.current.heartbeat = Some(conn.beat);
            }
            _ = silence.expired() => {
                trace::debug!(watches = conn.watches.len(), "dropping a silent client");
                out.end(silent());
                return;
            }
            _ = tx.closed() => return,
            why = closing.as_mut() => {
                out.end(shutting_down(why));
                return;
            }
        }
    }
}
