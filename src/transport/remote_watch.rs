//! [`RemoteWatch`]: a watch of a remote store that survives reconnects.
//!
//! A task (the "follower") keeps the stream alive: it sends heartbeats,
//! treats silence past its timeout as a dead connection, and re-subscribes
//! with the last version it delivered of each variable, with exponential
//! backoff and jitter (reset once a stream reaches `sync_complete`). Events
//! are applied idempotently (anything at or below a version already
//! delivered is dropped), so across reconnects the user sees a contiguous
//! stream or an explicit `Lagged`, never a silent gap and never a version
//! twice. It resumes by variable id, within the same incarnation of the
//! session (a session deleted and created again meanwhile ends the watch
//! with `SessionClosed`). The follower and the user meet in a bounded queue;
//! while the user is slow, the follower keeps heartbeating, so a slow
//! reader is not mistaken for a dead one (its server-side watch falls
//! behind and resyncs instead).

use std::collections::HashMap;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use futures_core::Stream;
use tokio::sync::mpsc;

use super::WatchTarget;
use super::protocol::{ClientMessage, Request, Subscribe};
use super::remote::{Inner, RemoteConfig};
use super::server_watch::Silence;
use super::transport_trait::{ClientMessages, ServerMessages, Transport};
use crate::watch::{Filter, Verdict, judge};
use crate::{
    Error, ErrorCode, EventKind, OverflowPolicy, RecvTimeoutError, Result, TryRecvError, WatchEvent,
    WatchOptions,
};

/// Counters of a remote watch, shared with its follower.
#[derive(Debug, Default)]
struct RemoteCounters {
    reconnects: AtomicU64,
    resyncs: AtomicU64,
    heartbeats: AtomicU64,
    filtered: AtomicU64,
    filter_panics: AtomicU64,
}

/// Counters of a [`RemoteWatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteWatchStats {
    /// Streams re-opened after a failure.
    pub reconnects: u64,
    /// Lag markers received (the server-side watch fell behind, or a resume
    /// found versions the client never saw).
    pub resyncs: u64,
    /// Heartbeats received from the server (its own and echoes).
    pub heartbeats: u64,
    /// Events the filter rejected.
    pub events_filtered: u64,
    /// Filter calls that panicked (their events were delivered).
    pub filter_panics: u64,
}

/// A watch of a remote store: the same [`WatchEvent`]s as a local
/// [`Watch`](crate::Watch), delivered across reconnects with nothing missed
/// silently and nothing twice. Blocking ([`recv`](Self::recv), an
/// [`Iterator`]) or async (a [`Stream`]).
///
/// One exception to exactness: a variable deleted while the watch was
/// disconnected, if more than 4 096 other deletions happened in its session
/// since, is reported as `Deleted` without the versions it went through
/// before (the session no longer remembers them).
///
/// It ends after `SessionClosed`, after the `Deleted` of its last variable,
/// or with [`EventKind::Disconnected`] once the retry policy is spent.
/// Dropping it closes the stream (after flushing the acknowledgement).
#[must_use = "a watch closes its stream as soon as it is dropped"]
pub struct RemoteWatch {
    rx: mpsc::Receiver<WatchEvent>,
    /// One past the highest revision the user has taken (0: none).
    taken: Arc<AtomicU64>,
    inner: Arc<Inner>,
    counters: Arc<RemoteCounters>,
    /// The user's filter, run here, on the user's side.
    filter: Option<Filter>,
}

impl std::fmt::Debug for RemoteWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteWatch")
            .field("stats", &self.stats())
            .finish()
    }
}

/// How one stream ended.
enum StreamEnd {
    /// The watch is over (user gone, session closed, last variable deleted).
    Done,
    /// The stream broke; reconnect. `synced`: it had reached sync-complete.
    Broken { synced: bool },
}

/// The task behind a [`RemoteWatch`].
struct Follower {
    /// Not the whole client: a task of the client's runtime must not own
    /// the runtime.
    transport: Arc<dyn Transport>,
    config: RemoteConfig,
    /// The user's subscription.
    sub: Subscribe,
    /// Whether a stream has reached sync-complete (initial events after
    /// that are resume states, delivered whatever the user asked).
    synced_once: bool,
    tx: mpsc::Sender<WatchEvent>,
    counters: Arc<RemoteCounters>,
    /// The last version delivered (or skipped as unwanted initial state) of
    /// each variable, by id: what a resume asks to continue from.
    seen: HashMap<String, u64>,
    /// Written by the `RemoteWatch`, read here to send acks.
    taken: Arc<AtomicU64>,
    /// The last value acknowledged to the current stream.
    acked: u64,
    /// The session incarnation of the last `sync_complete`: a resume must
    /// continue the same session, not a new one of the same name.
    incarnation: Option<u64>,
    /// The start of a group whose end is still on the wire (the last
    /// message said `group_incomplete`): not applied, not delivered, dropped
    /// if the stream breaks, so that the user never holds half a group.
    held: Vec<WatchEvent>,
    /// `OverflowPolicy::Close`: the first group with a `Lagged` marker
    /// delivers its markers and deletions, then ends the watch.
    close_on_overflow: bool,
}

type Outbound = mpsc::UnboundedSender<ClientMessage>;

/// The complete groups among `held` and `events`; the rest (the last group,
/// when the message said `incomplete`) stays in `held` until its end
/// arrives.
fn complete_groups(held: &mut Vec<WatchEvent>, events: Vec<WatchEvent>, incomplete: bool) -> Vec<WatchEvent> {
    if events.is_empty() {
        // A heartbeat (or a bare sync marker) between two parts of a group
        // says nothing about the group: keep holding it.
        return events;
    }
    let mut all = std::mem::take(held);
    all.extend(events);
    if incomplete && let Some(label) = all.last().map(WatchEvent::revision) {
        let keep = all
            .iter()
            .rposition(|e| e.revision() != label)
            .map_or(0, |i| i + 1);
        *held = all.split_off(keep);
    }
    all
}

impl Follower {
    /// Opens a stream, subscribing with the versions seen so far.
    async fn subscribe(&mut self) -> Result<(ServerMessages, Outbound)> {
        let mut sub = self.sub.clone();
        if self.synced_once {
            // Resume by id, never by name: a name may now be another
            // variable's, and a deleted one must come back as deleted.
            if let WatchTarget::Variables(v) = &mut sub.target {
                *v = self.seen.keys().cloned().collect();
                v.sort();
            }
            sub.resume = self.seen.clone();
            sub.session_incarnation = self.incarnation;
        }
        sub.include_initial = true; // the follower needs every version
        let (out, rx) = mpsc::unbounded_channel();
        let timeout = self.config.heartbeat_timeout;
        let opened = tokio::time::timeout(timeout, self.transport.watch(sub, ClientMessages(rx)))
            .await
            .map_err(|_| Error::Remote {
                code: ErrorCode::DeadlineExceeded,
                message: format!("no answer to the subscription within {timeout:?}"),
            })??;
        Ok((opened, out))
    }

    /// Whether the watched session still exists (a `NotFound` answer to a
    /// resubscription may also mean a variable; ask).
    async fn session_exists(&self) -> bool {
        let ask = Request::GetSession {
            session: self.sub.session.clone(),
        };
        // No answer in time: assume it does, and let the backoff retry.
        let answer = tokio::time::timeout(self.config.heartbeat_timeout, self.transport.call(ask)).await;
        !matches!(answer, Ok(Err(e)) if e.code() == ErrorCode::NotFound)
    }

    /// Idempotent apply: `Some` if `e` is news to the user.
    fn apply(&mut self, e: WatchEvent) -> Option<WatchEvent> {
        let kind = e.kind();
        if kind != EventKind::SessionClosed {
            // `version()` is a Lagged marker's last skipped version.
            let newest = e.version();
            if self.seen.get(e.variable_id()).is_some_and(|&s| newest <= s) {
                return None;
            }
            if kind == EventKind::Deleted {
                self.seen.remove(e.variable_id());
            } else if let Some(v) = self.seen.get_mut(e.variable_id()) {
                *v = newest; // the common case: no allocation
            } else {
                self.seen.insert(e.variable_id().to_string(), newest);
            }
        }
        if matches!(kind, EventKind::Lagged { .. }) {
            self.counters.resyncs.fetch_add(1, Ordering::Relaxed);
        }
        if kind == EventKind::Initial && !self.sub.include_initial && !self.synced_once {
            return None; // recorded above, not wanted by the user
        }
        Some(e)
    }

    /// Reads a new stream up to its `sync_complete`, and returns the events
    /// the user must get first. Done before [`RemoteWatch::open`] returns,
    /// so that the watch's starting point is the server's snapshot: a
    /// change made after `watch` returned is never taken for initial state.
    async fn first_sync(&mut self, inbound: &mut ServerMessages, out: &Outbound) -> Result<Vec<WatchEvent>> {
        let timeout = self.config.heartbeat_timeout;
        // Progress is a message with events or the sync: a snapshot may
        // take many messages, but a server that only heartbeats is stuck.
        let mut silence = Silence::new(timeout);
        let mut beat = self.heartbeat_interval();
        let mut sequence = 0u64;
        let mut first = Vec::new();
        loop {
            let msg = tokio::select! {
                _ = silence.expired() => {
                    return Err(Error::Remote {
                        code: ErrorCode::DeadlineExceeded,
                        message: format!("the snapshot made no progress for {timeout:?}"),
                    });
                }
                _ = beat.tick() => {
                    // The server must not take us for silent meanwhile.
                    sequence += 1;
                    let _ = out.send(ClientMessage::Heartbeat(sequence));
                    continue;
                }
                msg = poll_fn(|cx| inbound.as_mut().poll_next(cx)) => msg,
            };
            let msg = msg.unwrap_or_else(|| {
                Err(Error::Remote {
                    code: ErrorCode::Unavailable,
                    message: "the watch stream ended before its snapshot".into(),
                })
            })?;
            if !msg.events.is_empty() {
                silence.heard();
            }
            let events = complete_groups(&mut self.held, msg.events, msg.group_incomplete);
            first.extend(events.into_iter().filter_map(|e| self.apply(e)));
            if let Some(sync) = msg.sync_complete {
                self.synced_once = true;
                self.incarnation = Some(sync.session_incarnation);
                return Ok(first);
            }
        }
    }

    /// The heartbeat timer of a stream (one tick after a long wait, not a
    /// burst).
    fn heartbeat_interval(&self) -> tokio::time::Interval {
        let mut beat = tokio::time::interval(self.config.heartbeat_interval.max(Duration::from_millis(1)));
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        beat.reset();
        beat
    }

    /// Whether `e` (just applied) is the watch's last event: the session is
    /// gone, or every variable of a named watch was deleted.
    fn is_last(&self, e: &WatchEvent) -> bool {
        e.kind() == EventKind::SessionClosed
            || (e.kind() == EventKind::Deleted
                && self.sub.target != WatchTarget::Session
                && self.seen.is_empty())
    }

    /// Hands `e` to the user, waiting for room as long as it takes (the
    /// user may be slow) while still heartbeating and acking, so that the
    /// server does not take a slow reader for a dead one. False: the user
    /// dropped the watch.
    async fn deliver(
        &mut self,
        e: WatchEvent,
        out: &Outbound,
        beat: &mut tokio::time::Interval,
        sequence: &mut u64,
    ) -> bool {
        // The common case: room in the queue, no timer involved.
        let e = match self.tx.try_reserve() {
            Ok(permit) => {
                permit.send(e);
                return true;
            }
            Err(mpsc::error::TrySendError::Closed(())) => return false,
            Err(mpsc::error::TrySendError::Full(())) => e,
        };
        let tx = self.tx.clone();
        loop {
            tokio::select! {
                permit = tx.reserve() => {
                    let Ok(permit) = permit else { return false };
                    permit.send(e);
                    return true;
                }
                _ = beat.tick() => {
                    *sequence += 1;
                    let _ = out.send(ClientMessage::Heartbeat(*sequence));
                    self.ack(out);
                }
            }
        }
    }

    /// Delivers a stream's messages until it ends or breaks.
    async fn follow(
        &mut self,
        mut inbound: ServerMessages,
        out: Outbound,
        mut synced: bool,
        ready: Vec<WatchEvent>,
    ) -> StreamEnd {
        self.acked = 0; // a new stream: its server-side watch knows nothing yet
        let timeout = self.config.heartbeat_timeout;
        let mut beat = self.heartbeat_interval();
        let mut sequence = 0u64;
        // The first stream's snapshot, read before `watch` returned.
        for e in ready {
            let last = self.is_last(&e);
            if !self.deliver(e, &out, &mut beat, &mut sequence).await || last {
                return StreamEnd::Done;
            }
        }
        // Silence past the timeout means a dead connection. The deadline
        // moves only when the server has said something and it has been
        // handed to the user (our own heartbeats must not move it, and time
        // spent waiting for a slow user is not silence).
        let mut silence = Silence::new(timeout);
        loop {
            tokio::select! {
                _ = silence.expired() => return StreamEnd::Broken { synced },
                msg = poll_fn(|cx| inbound.as_mut().poll_next(cx)) => {
                    let Some(Ok(msg)) = msg else { return StreamEnd::Broken { synced } };
                    if msg.heartbeat.is_some() {
                        self.counters.heartbeats.fetch_add(1, Ordering::Relaxed);
                    }
                    let mut events = complete_groups(&mut self.held, msg.events, msg.group_incomplete).into_iter().peekable();
                    while let Some(first) = events.next() {
                        // One group at a time (the events of one revision).
                        let label = first.revision();
                        let mut group = vec![first];
                        group.extend(std::iter::from_fn(|| events.next_if(|e| e.revision() == label)));
                        let mut group: Vec<WatchEvent> = group.into_iter().filter_map(|e| self.apply(e)).collect();
                        let overflowed = self.close_on_overflow
                            && group.iter().any(|e| matches!(e.kind(), EventKind::Lagged { .. }));
                        if overflowed {
                            // `OverflowPolicy::Close`: the markers and the
                            // deletions, then the end.
                            group.retain(|e| matches!(e.kind(), EventKind::Lagged { .. } | EventKind::Deleted));
                        }
                        for e in group {
                            let last = self.is_last(&e);
                            if !self.deliver(e, &out, &mut beat, &mut sequence).await || last {
                                return StreamEnd::Done; // the user dropped the watch, or it is over
                            }
                        }
                        if overflowed {
                            return StreamEnd::Done;
                        }
                    }
                    if let Some(sync) = msg.sync_complete {
                        synced = true;
                        self.synced_once = true;
                        self.incarnation = Some(sync.session_incarnation);
                    }
                    silence.heard();
                }
                _ = beat.tick() => {
                    sequence += 1;
                    if out.send(ClientMessage::Heartbeat(sequence)).is_err() {
                        return StreamEnd::Broken { synced };
                    }
                    self.ack(&out);
                }
                _ = self.tx.closed() => {
                    // The user dropped the watch: flush the acknowledgement
                    // (the client's side then closes with `out`).
                    self.ack(&out);
                    return StreamEnd::Done;
                }
            }
        }
    }

    /// Tells the server what the user has taken, if that moved.
    fn ack(&mut self, out: &Outbound) {
        let taken = self.taken.load(Ordering::Relaxed);
        if taken > self.acked {
            self.acked = taken;
            let _ = out.send(ClientMessage::Ack(taken - 1));
        }
    }

    /// Follows streams, reconnecting with backoff, until the watch is over.
    async fn run(mut self, first: (ServerMessages, Outbound), ready: Vec<WatchEvent>) {
        let mut ready = Some(ready);
        let mut stream = Some(first);
        let mut synced = true; // the first stream was read up to its sync
        let mut failures = 0u32;
        let mut backoff = self.config.backoff_initial;
        loop {
            let (inbound, out) = match stream.take() {
                Some(s) => s,
                None => match self.subscribe().await {
                    Ok(s) => {
                        synced = false;
                        self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                        s
                    }
                    Err(e) if e.code() == ErrorCode::NotFound && !self.session_exists().await => {
                        // The session is gone: nothing to come back to.
                        let closed = WatchEvent::bare(EventKind::SessionClosed, "", "", 0, 0);
                        let _ = self.tx.send(closed).await;
                        return;
                    }
                    Err(e) if matches!(e.code(), ErrorCode::InvalidArgument | ErrorCode::Unauthenticated) => {
                        // Asking again will not help (a token revoked, a
                        // server that refuses this subscription).
                        let gone = WatchEvent::bare(EventKind::Disconnected, "", "", 0, 0);
                        let _ = self.tx.send(gone).await;
                        return;
                    }
                    Err(_) => {
                        if !self.wait(&mut failures, &mut backoff).await {
                            return;
                        }
                        continue;
                    }
                },
            };
            match self
                .follow(inbound, out, synced, ready.take().unwrap_or_default())
                .await
            {
                StreamEnd::Done => return,
                StreamEnd::Broken { synced } => {
                    self.held.clear(); // half a group: its end was lost with the stream
                    if synced {
                        failures = 0;
                        backoff = self.config.backoff_initial;
                    }
                    if !self.wait(&mut failures, &mut backoff).await {
                        return;
                    }
                }
            }
        }
    }

    /// Sleeps before the next attempt; false once the retry policy is spent
    /// (after delivering `Disconnected`) or the user has gone.
    async fn wait(&mut self, failures: &mut u32, backoff: &mut Duration) -> bool {
        *failures += 1;
        if self.config.max_failures.is_some_and(|max| *failures > max) {
            let gone = WatchEvent::bare(EventKind::Disconnected, "", "", 0, 0);
            let _ = self.tx.send(gone).await;
            return false;
        }
        // Jitter: a delay drawn from [backoff/2, backoff] (at least 1 ms,
        // so that a zero setting cannot make a reconnection loop spin).
        let nanos = u64::try_from(backoff.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1_000_000);
        let delay = nanos / 2 + jitter_below(nanos / 2 + 1);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_nanos(delay)) => {}
            _ = self.tx.closed() => return false,
        }
        *backoff = backoff.saturating_mul(2).min(self.config.backoff_max);
        true
    }
}

/// A number below `n`, different for every call (no RNG dependency).
fn jitter_below(n: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64,
    );
    h.finish() % n.max(1)
}

impl RemoteWatch {
    /// Makes the first subscription (so that its errors reach the caller),
    /// then starts the follower on the client's runtime.
    pub(crate) async fn open(inner: Arc<Inner>, sub: Subscribe, opts: WatchOptions) -> Result<RemoteWatch> {
        opts.check()?;
        let (tx, rx) = mpsc::channel(inner.config.buffer.max(1));
        let counters = Arc::new(RemoteCounters::default());
        let taken = Arc::new(AtomicU64::new(0));
        let mut follower = Follower {
            transport: inner.transport.clone(),
            config: inner.config.clone(),
            sub,
            synced_once: false,
            tx,
            counters: counters.clone(),
            seen: HashMap::new(),
            taken: taken.clone(),
            acked: 0,
            incarnation: None,
            held: Vec::new(),
            close_on_overflow: opts.overflow == OverflowPolicy::Close && !opts.reads_cuts(),
        };
        let (mut inbound, out) = follower.subscribe().await?;
        let ready = follower.first_sync(&mut inbound, &out).await?;
        // The task ends by itself once this watch is dropped (`tx.closed`).
        inner.rt().spawn(follower.run((inbound, out), ready));
        Ok(RemoteWatch {
            rx,
            taken,
            inner,
            counters,
            filter: opts.filter,
        })
    }

    /// Notes that the user took `e` (acknowledged to the server), and runs
    /// the filter: `None` if it rejects `e`.
    fn took(&self, e: WatchEvent) -> Option<WatchEvent> {
        self.taken
            .fetch_max(e.revision().saturating_add(1), Ordering::Relaxed);
        let Some(filter) = &self.filter else {
            return Some(e);
        };
        match judge(filter, &e) {
            Verdict::Pass => Some(e),
            Verdict::Reject => {
                self.counters.filtered.fetch_add(1, Ordering::Relaxed);
                None
            }
            Verdict::Panicked => {
                self.counters.filter_panics.fetch_add(1, Ordering::Relaxed);
                Some(e)
            }
        }
    }

    /// Blocks until the next event; `None` once the watch has ended. Not
    /// for use inside an async runtime (use [`recv_async`](Self::recv_async)
    /// there).
    pub fn recv(&mut self) -> Option<WatchEvent> {
        loop {
            let e = self.inner.rt().block_on(self.rx.recv())?;
            if let Some(e) = self.took(e) {
                return Some(e);
            }
        }
    }

    /// Blocks until the next event or until `timeout` has passed.
    pub fn recv_timeout(&mut self, timeout: Duration) -> std::result::Result<WatchEvent, RecvTimeoutError> {
        let deadline = tokio::time::Instant::now().checked_add(timeout);
        loop {
            let rx = &mut self.rx;
            // The timer must be created inside the runtime.
            let got = self.inner.rt().block_on(async move {
                match deadline {
                    Some(d) => tokio::time::timeout_at(d, rx.recv()).await,
                    None => Ok(rx.recv().await),
                }
            });
            match got {
                Ok(Some(e)) => {
                    if let Some(e) = self.took(e) {
                        return Ok(e);
                    }
                }
                Ok(None) => return Err(RecvTimeoutError::Closed),
                Err(_) => return Err(RecvTimeoutError::Timeout),
            }
        }
    }

    /// The next event if one is ready.
    pub fn try_recv(&mut self) -> std::result::Result<WatchEvent, TryRecvError> {
        loop {
            let e = self.rx.try_recv().map_err(|e| match e {
                mpsc::error::TryRecvError::Empty => TryRecvError::Empty,
                mpsc::error::TryRecvError::Disconnected => TryRecvError::Closed,
            })?;
            if let Some(e) = self.took(e) {
                return Ok(e);
            }
        }
    }

    /// Polls for the next event: `Ready(None)` once the watch has ended.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<WatchEvent>> {
        loop {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(e)) => {
                    if let Some(e) = self.took(e) {
                        return Poll::Ready(Some(e));
                    }
                }
                other => return other,
            }
        }
    }

    /// Waits for the next event; `None` once the watch has ended. Works on
    /// any async runtime.
    pub async fn recv_async(&mut self) -> Option<WatchEvent> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The watch as a [`Stream`]; get it back with
    /// [`RemoteWatchStream::into_inner`].
    pub fn into_stream(self) -> RemoteWatchStream {
        RemoteWatchStream(self)
    }

    /// Reconnects, resyncs and heartbeats so far.
    pub fn stats(&self) -> RemoteWatchStats {
        RemoteWatchStats {
            reconnects: self.counters.reconnects.load(Ordering::Relaxed),
            resyncs: self.counters.resyncs.load(Ordering::Relaxed),
            heartbeats: self.counters.heartbeats.load(Ordering::Relaxed),
            events_filtered: self.counters.filtered.load(Ordering::Relaxed),
            filter_panics: self.counters.filter_panics.load(Ordering::Relaxed),
        }
    }
}

/// Blocking iteration: each `next` is a [`RemoteWatch::recv`].
impl Iterator for RemoteWatch {
    type Item = WatchEvent;
    fn next(&mut self) -> Option<WatchEvent> {
        self.recv()
    }
}

/// A [`RemoteWatch`] as a [`Stream`] of events, from
/// [`RemoteWatch::into_stream`].
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct RemoteWatchStream(RemoteWatch);

impl RemoteWatchStream {
    /// The watch (for its statistics, say).
    pub fn get_ref(&self) -> &RemoteWatch {
        &self.0
    }

    /// The watch back.
    pub fn into_inner(self) -> RemoteWatch {
        self.0
    }
}

impl Stream for RemoteWatchStream {
    type Item = WatchEvent;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchEvent>> {
        self.get_mut().0.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(revision: u64) -> WatchEvent {
        WatchEvent::bare(EventKind::Changed, "var_1", "x", revision, revision)
    }

    fn revisions(events: &[WatchEvent]) -> Vec<u64> {
        events.iter().map(WatchEvent::revision).collect()
    }

    #[test]
    fn a_group_is_held_until_whole() {
        let mut held = Vec::new();
        // Two whole groups and the start of a third.
        let out = complete_groups(&mut held, vec![at(1), at(2), at(2), at(3)], true);
        assert_eq!((revisions(&out), revisions(&held)), (vec![1, 2, 2], vec![3]));
        // A heartbeat in between changes nothing.
        assert!(complete_groups(&mut held, vec![], false).is_empty());
        assert_eq!(revisions(&held), [3]);
        // More of the third group, still not its end.
        assert!(complete_groups(&mut held, vec![at(3)], true).is_empty());
        // Its end.
        let out = complete_groups(&mut held, vec![at(3), at(4)], false);
        assert_eq!(revisions(&out), [3, 3, 3, 4]);
        assert!(held.is_empty());
    }
}
