//! The client's watch stream: every watch of a client on one stream (watch
//! ids, etcd's design), driven by one task, the *mux*.
//!
//! The connection is an explicit state machine ([`Conn`]):
//!
//! ```text
//!            first watch                 stream accepted
//!   Idle ─────────────────▶ Connecting ─────────────────▶ Open
//!    ▲                          │  refused                  │ broken, silent,
//!    │ last watch gone          ▼                           │ or ended
//!    └──────────────────── Backoff ◀──────────────────────────┘
//!                    (then Connecting; after `max_failures`, every watch
//!                     ends with `Disconnected`)
//! ```
//!
//! Each upstream (one watch on the wire, shared by identical subscriptions;
//! see `upstream.rs`) has a phase of its own ([`Phase`]): `Creating` until
//! its first `sync_complete`, `Live` after; on every new stream it is
//! created again with the versions it has (a resume), and a resume the
//! server refuses for a passing reason is retried on its own after a
//! backoff (`Retry`), without touching the other watches.
//!
//! The mux always reads the stream: it hands each complete group to the
//! upstream's downstreams without ever waiting for one (a full one lags and
//! catches up on its own side), so a slow or abandoned watch cannot wedge
//! the connection. Heartbeats are per connection: the client sends one every
//! interval (with the acknowledgements of what users have taken); silence
//! from the server past the timeout is a dead connection.

use std::collections::HashMap;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, Interval, Sleep, sleep_until};

use super::config::RemoteConfig;
use super::protocol::{ClientMessage, ServerMessage, Subscribe, WatchEnd, WatchId, WatchTarget, WatchUpdate};
use super::silence::{Silence, after};
use super::transport_trait::{ClientMessages, ServerMessages, Transport};
use crate::sync::Mutex;
use crate::trace;
use crate::watch::feed::{DownConfig, Feed};
use crate::{CloseReason, Error, ErrorCode, EventKind, Result, WatchEvent};

/// What a client asks of its mux.
pub(crate) enum Command {
    /// A new watch: share an identical upstream, or create one.
    Watch {
        sub: Subscribe,
        down: DownConfig,
        reply: oneshot::Sender<Result<Attached>>,
    },
    /// A watch was dropped.
    Release { id: WatchId, down: usize },
    /// The client was closed: every watch ends with `Disconnected`.
    Close,
}

/// A watch's place in the mux: its upstream's feed and its key there.
pub(crate) struct Attached {
    pub(crate) id: WatchId,
    pub(crate) feed: Arc<Mutex<Feed>>,
    pub(crate) down: usize,
}

/// Counters of a connection, shared with its watches.
#[derive(Debug, Default)]
pub(crate) struct ConnCounters {
    pub(crate) heartbeats: AtomicU64,
}

/// The parts of a subscription that make two watches identical on the wire
/// (what a watch filters or does on overflow is its own, on this side).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    session: String,
    /// Sorted and deduplicated; `None` for the whole session.
    variables: Option<Vec<String>>,
    capacity: usize,
    coalesce: bool,
    throttle: Option<Duration>,
}

impl Key {
    fn of(sub: &Subscribe) -> Key {
        Key {
            session: sub.session.clone(),
            variables: match &sub.target {
                WatchTarget::Variables(v) => {
                    let mut v = v.clone();
                    v.sort();
                    v.dedup();
                    Some(v)
                }
                _ => None,
            },
            capacity: sub.capacity,
            coalesce: sub.coalesce,
            throttle: sub.throttle,
        }
    }
}

/// When a watch waiting to join an upstream may start from its state: the
/// state must be at least as new as the session was when the watch was
/// asked for (a watch opened after a write returned starts at or after that
/// write).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fence {
    /// At the upstream's next `sync_complete`: its create (or resume) was
    /// sent after this watch was asked for, so its snapshot is new enough.
    Sync,
    /// After the next `sync_complete`, a progress request is owed: the
    /// create on the wire was sent before this watch was asked for.
    AfterSync,
    /// At the answer to the upstream's `n`th progress request on this
    /// stream.
    Progress(u64),
}

/// A watch waiting to be attached to an upstream.
struct Waiting {
    down: DownConfig,
    reply: oneshot::Sender<Result<Attached>>,
    fence: Fence,
}

/// Where an upstream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Its create is on the wire; no `sync_complete` on this stream yet.
    Creating,
    /// Synced on this stream.
    Live,
    /// Refused for a passing reason; created again at this instant.
    Retry(Instant),
}

struct Upstream {
    key: Key,
    /// The user's subscription (a resume rewrites targets to ids).
    sub: Subscribe,
    feed: Arc<Mutex<Feed>>,
    phase: Phase,
    /// Whether any stream has reached this upstream's `sync_complete`.
    synced_once: bool,
    incarnation: Option<u64>,
    /// The start of a group whose end is still on the wire.
    held: Vec<WatchEvent>,
    /// Watches waiting to be attached (see [`Fence`]).
    waiting: Vec<Waiting>,
    /// Progress requests sent on this stream (each numbered), and the last
    /// number answered.
    progress_sent: u64,
    progress_answered: u64,
    /// The last acknowledgement sent on this stream.
    acked: u64,
    backoff: Duration,
    /// Resumes refused in a row for a passing reason (see `ended`).
    refusals: u32,
}

impl Upstream {
    /// The create (or resume) of this upstream is about to be sent: every
    /// watch waiting now is served by its `sync_complete`, and progress
    /// counts start again.
    fn creating(&mut self) {
        self.phase = Phase::Creating;
        self.progress_sent = 0;
        self.progress_answered = 0;
        for w in &mut self.waiting {
            w.fence = Fence::Sync;
        }
    }

    /// Asks the server for progress (the upstream is live on `out`).
    fn ask_progress(&mut self, id: WatchId, out: &mpsc::UnboundedSender<ClientMessage>) -> u64 {
        self.progress_sent += 1;
        let _ = out.send(ClientMessage::Progress(id, self.progress_sent));
        self.progress_sent
    }

    /// Attaches a watch (`down`) to this synced upstream and hands it to the
    /// caller waiting on `reply`. Returns the attachment's key if the caller
    /// has gone (the attachment is then the caller's to release).
    fn hand_over(
        &self,
        id: WatchId,
        down: DownConfig,
        reply: oneshot::Sender<Result<Attached>>,
    ) -> Option<usize> {
        let key = self.feed.lock().attach(down);
        let attached = Attached {
            id,
            feed: self.feed.clone(),
            down: key,
        };
        reply.send(Ok(attached)).is_err().then_some(key)
    }
}

/// The connection's state machine (see the module docs).
enum Conn {
    Idle,
    Connecting {
        opening: Pin<Box<dyn std::future::Future<Output = Result<ServerMessages>> + Send>>,
        out: mpsc::UnboundedSender<ClientMessage>,
    },
    Open {
        out: mpsc::UnboundedSender<ClientMessage>,
        inbound: ServerMessages,
        silence: Silence,
        beat: Interval,
        sequence: u64,
        /// Some upstream synced on this stream: it proved healthy.
        healthy: bool,
    },
    Backoff(Pin<Box<Sleep>>),
}

/// What woke the mux.
enum Event {
    Command(Option<Command>),
    Opened(Result<ServerMessages>),
    Message(Option<Result<ServerMessage>>),
    Silent,
    Beat,
    BackoffOver,
    RetryDue,
}

/// The mux task's state.
pub(crate) struct Mux {
    transport: Arc<dyn Transport>,
    config: RemoteConfig,
    commands: mpsc::UnboundedReceiver<Command>,
    upstreams: HashMap<WatchId, Upstream>,
    by_key: HashMap<Key, WatchId>,
    next_id: WatchId,
    conn: Conn,
    failures: u32,
    backoff: Duration,
    counters: Arc<ConnCounters>,
}

/// A delay drawn from `[d/2, d]` (at least 1 ms).
fn jittered(d: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1_000_000);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    Duration::from_nanos(nanos / 2 + h.finish() % (nanos / 2 + 1))
}

/// The last event of a watch that cannot go on.
fn disconnected() -> WatchEvent {
    WatchEvent::bare(EventKind::Disconnected, "", "", 0, 0)
}

impl Mux {
    pub(crate) fn new(
        transport: Arc<dyn Transport>,
        config: RemoteConfig,
        commands: mpsc::UnboundedReceiver<Command>,
        counters: Arc<ConnCounters>,
    ) -> Mux {
        Mux {
            transport,
            backoff: config.backoff_initial,
            config,
            commands,
            upstreams: HashMap::new(),
            by_key: HashMap::new(),
            next_id: 1,
            conn: Conn::Idle,
            failures: 0,
            counters,
        }
    }

    /// Runs until every handle of the client is gone, or it is closed.
    pub(crate) async fn run(mut self) {
        loop {
            match self.next_event().await {
                Event::Command(None) => return,
                Event::Command(Some(Command::Close)) => {
                    // Its watches end; the task goes, and with it its
                    // clone of the transport (the connection closes).
                    self.close();
                    return;
                }
                Event::Command(Some(c)) => self.command(c),
                Event::Opened(Ok(inbound)) => self.opened(inbound),
                Event::Opened(Err(e)) => self.refused(e),
                Event::Message(Some(Ok(m))) => self.message(m),
                Event::Message(_) | Event::Silent => self.broken(),
                Event::Beat => self.beat(),
                Event::BackoffOver => self.connect(),
                Event::RetryDue => self.retry_due(),
            }
        }
    }

    async fn next_event(&mut self) -> Event {
        let retry = self
            .upstreams
            .values()
            .filter_map(|u| match u.phase {
                Phase::Retry(at) => Some(at),
                _ => None,
            })
            .min();
        let retry_due = async move {
            match retry {
                Some(at) => sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let commands = &mut self.commands;
        match &mut self.conn {
            Conn::Idle => Event::Command(commands.recv().await),
            Conn::Connecting { opening, .. } => tokio::select! {
                c = commands.recv() => Event::Command(c),
                r = opening.as_mut() => Event::Opened(r),
            },
            Conn::Open {
                inbound,
                silence,
                beat,
                ..
            } => tokio::select! {
                c = commands.recv() => Event::Command(c),
                m = poll_fn(|cx| inbound.as_mut().poll_next(cx)) => Event::Message(m),
                _ = silence.expired() => Event::Silent,
                _ = beat.tick() => Event::Beat,
                _ = retry_due => Event::RetryDue,
            },
            Conn::Backoff(sleep) => tokio::select! {
                c = commands.recv() => Event::Command(c),
                _ = sleep.as_mut() => Event::BackoffOver,
            },
        }
    }

    fn command(&mut self, c: Command) {
        match c {
            Command::Watch { sub, down, reply } => self.watch(sub, down, reply),
            Command::Release { id, down } => self.release(id, down),
            Command::Close => self.close(),
        }
    }

    fn watch(&mut self, sub: Subscribe, down: DownConfig, reply: oneshot::Sender<Result<Attached>>) {
        let key = Key::of(&sub);
        if let Some(&id) = self.by_key.get(&key)
            && let Some(u) = self.upstreams.get_mut(&id)
            && !u.feed.lock().is_over()
        {
            // Joins once the upstream's state is as new as the session is
            // now (see `Fence`).
            let fence = match (&self.conn, u.phase) {
                (Conn::Open { out, .. }, Phase::Live) => Fence::Progress(u.ask_progress(id, out)),
                (Conn::Connecting { .. } | Conn::Open { .. }, Phase::Creating) => Fence::AfterSync,
                _ => Fence::Sync, // its next create is sent after now
            };
            u.waiting.push(Waiting { down, reply, fence });
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        let whole = matches!(sub.target, WatchTarget::Session);
        let u = Upstream {
            key: key.clone(),
            sub,
            feed: Arc::new(Mutex::new(Feed::new(whole, false))),
            phase: Phase::Creating,
            synced_once: false,
            incarnation: None,
            held: Vec::new(),
            waiting: vec![Waiting {
                down,
                reply,
                fence: Fence::Sync,
            }],
            progress_sent: 0,
            progress_answered: 0,
            acked: 0,
            backoff: self.config.backoff_initial,
            refusals: 0,
        };
        self.by_key.insert(key, id);
        self.upstreams.insert(id, u);
        match &self.conn {
            Conn::Idle => self.connect(),
            Conn::Connecting { out, .. } | Conn::Open { out, .. } => {
                let u = &self.upstreams[&id];
                let _ = out.send(ClientMessage::Create(id, create_for(u)));
            }
            Conn::Backoff(_) => {} // created when the next stream opens
        }
    }

    /// The client was closed: every watch ends with `Disconnected` and the
    /// stream closes (the server cancels what it held).
    fn close(&mut self) {
        let ids: Vec<WatchId> = self.upstreams.keys().copied().collect();
        for id in ids {
            let closed = Error::Transport {
                addr: String::new(),
                reason: "the client was closed".into(),
                source: None,
            };
            self.end_upstream(id, Some(disconnected()), Some(closed), CloseReason::Disconnected);
        }
        self.conn = Conn::Idle;
    }

    fn release(&mut self, id: WatchId, down: usize) {
        let Some(u) = self.upstreams.get(&id) else {
            return;
        };
        let left = u.feed.lock().detach(down);
        if left > 0 || !u.waiting.is_empty() {
            return;
        }
        self.remove(id);
        if let Conn::Connecting { out, .. } | Conn::Open { out, .. } = &self.conn {
            let _ = out.send(ClientMessage::Cancel(id));
        }
        if self.upstreams.is_empty() {
            // No watch left: the stream closes (the server sees its end).
            self.conn = Conn::Idle;
        }
    }

    fn remove(&mut self, id: WatchId) {
        if let Some(u) = self.upstreams.remove(&id)
            && self.by_key.get(&u.key) == Some(&id)
        {
            self.by_key.remove(&u.key);
        }
    }

    /// Opens a stream and creates every upstream on it (resuming those that
    /// have synced before).
    fn connect(&mut self) {
        if self.upstreams.is_empty() {
            self.conn = Conn::Idle;
            return;
        }
        let (out, rx) = mpsc::unbounded_channel();
        for (&id, u) in self.upstreams.iter_mut() {
            u.held.clear();
            if u.synced_once {
                u.feed.lock().reconnects += 1;
            }
            u.creating();
            u.acked = 0;
            let _ = out.send(ClientMessage::Create(id, create_for(u)));
        }
        let timeout = self.config.heartbeat_timeout;
        let opening = self.transport.watch_stream(ClientMessages(rx));
        let opening = async move {
            tokio::time::timeout(timeout, opening)
                .await
                .map_err(|_| Error::Remote {
                    code: ErrorCode::DeadlineExceeded,
                    message: format!("no answer to the watch stream within {timeout:?}"),
                })?
        };
        self.conn = Conn::Connecting {
            opening: Box::pin(opening),
            out,
        };
    }

    fn opened(&mut self, inbound: ServerMessages) {
        trace::debug!(watches = self.upstreams.len(), "watch stream open");
        let Conn::Connecting { out, .. } = std::mem::replace(&mut self.conn, Conn::Idle) else {
            return;
        };
        let mut beat = tokio::time::interval(self.config.heartbeat_interval);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.conn = Conn::Open {
            out,
            inbound,
            silence: Silence::new(self.config.heartbeat_timeout),
            beat,
            sequence: 0,
            healthy: false,
        };
    }

    /// The stream could not be opened. Watches that never synced learn why
    /// (their `watch` call fails with it); the rest wait for the next try.
    fn refused(&mut self, e: Error) {
        trace::debug!(error = %e, "watch stream refused");
        let never: Vec<WatchId> = self
            .upstreams
            .iter()
            .filter(|(_, u)| !u.synced_once)
            .map(|(&id, _)| id)
            .collect();
        for id in never {
            if let Some(mut u) = self.upstreams.remove(&id) {
                for w in u.waiting.drain(..) {
                    let _ = w.reply.send(Err(e.clone()));
                }
                if self.by_key.get(&u.key) == Some(&id) {
                    self.by_key.remove(&u.key);
                }
            }
        }
        self.conn = Conn::Idle;
        self.backoff_or_give_up();
    }

    /// The stream broke or went silent: every upstream resumes on the next.
    fn broken(&mut self) {
        let healthy = matches!(self.conn, Conn::Open { healthy: true, .. });
        trace::debug!(healthy, watches = self.upstreams.len(), "watch stream broken");
        self.conn = Conn::Idle;
        if healthy {
            self.failures = 0;
            self.backoff = self.config.backoff_initial;
        }
        self.backoff_or_give_up();
    }

    /// Forgets the upstreams that never synced and that nobody waits for
    /// any more (every `watch` call on them gave up, by its deadline or by
    /// being dropped): they would otherwise keep the client reconnecting.
    fn forget_abandoned(&mut self) {
        let abandoned: Vec<WatchId> = self
            .upstreams
            .iter_mut()
            .filter_map(|(&id, u)| {
                u.waiting.retain(|w| !w.reply.is_closed());
                (!u.synced_once && u.waiting.is_empty()).then_some(id)
            })
            .collect();
        for id in abandoned {
            self.remove(id);
        }
    }

    fn backoff_or_give_up(&mut self) {
        self.forget_abandoned();
        if self.upstreams.is_empty() {
            self.conn = Conn::Idle;
            return;
        }
        self.failures += 1;
        if self.config.max_failures.is_some_and(|max| self.failures > max) {
            // The retry policy is spent: every watch ends.
            let ids: Vec<WatchId> = self.upstreams.keys().copied().collect();
            for id in ids {
                self.end_upstream(id, Some(disconnected()), None, CloseReason::Disconnected);
            }
            self.failures = 0;
            self.conn = Conn::Idle;
            return;
        }
        let delay = jittered(self.backoff);
        trace::debug!(?delay, failures = self.failures, "reconnecting after a delay");
        self.backoff = self.backoff.saturating_mul(2).min(self.config.backoff_max);
        self.conn = Conn::Backoff(Box::pin(sleep_until(after(delay))));
    }

    /// Ends an upstream: its watches get `last` (if any) and end for
    /// `reason`; watches still waiting for its first sync get `error`.
    fn end_upstream(
        &mut self,
        id: WatchId,
        last: Option<WatchEvent>,
        error: Option<Error>,
        reason: CloseReason,
    ) {
        let Some(mut u) = self.upstreams.remove(&id) else {
            return;
        };
        if self.by_key.get(&u.key) == Some(&id) {
            self.by_key.remove(&u.key);
        }
        let err = error.unwrap_or_else(|| Error::Remote {
            code: ErrorCode::Unavailable,
            message: "the watch ended before its first snapshot".into(),
        });
        for w in u.waiting.drain(..) {
            let _ = w.reply.send(Err(err.clone()));
        }
        let wakers = u.feed.lock().finish(last, reason);
        wakers.into_iter().for_each(std::task::Waker::wake);
        if self.upstreams.is_empty() {
            self.conn = Conn::Idle;
        }
    }

    fn message(&mut self, m: ServerMessage) {
        if let Conn::Open { silence, .. } = &mut self.conn {
            silence.heard();
        }
        if m.heartbeat.is_some() {
            self.counters.heartbeats.fetch_add(1, Ordering::Relaxed);
        }
        let mut wakers = Vec::new();
        for update in &m.updates {
            // A shared update is the same for each of its watches.
            for &id in &update.ids {
                self.update(id, update, &mut wakers);
            }
        }
    }

    /// Applies `update` to upstream `id`. `wakers` is scratch space (kept
    /// for its capacity).
    fn update(&mut self, id: WatchId, update: &WatchUpdate, wakers: &mut Vec<std::task::Waker>) {
        let Some(u) = self.upstreams.get_mut(&id) else {
            return; // a late update of a cancelled watch
        };
        // The common case borrows the update's events; a group that spans
        // updates is put together first.
        let joined;
        let events: &[WatchEvent] = if u.held.is_empty() && !update.group_incomplete {
            &update.events
        } else {
            joined = complete_groups(&mut u.held, update.events.clone(), update.group_incomplete);
            &joined
        };
        let mut lost_one = false;
        {
            let mut feed = u.feed.lock();
            // One group at a time (the events of one revision).
            for group in events.chunk_by(|a, b| a.revision() == b.revision()) {
                let news: Vec<WatchEvent> = group.iter().filter(|e| feed.is_news(e)).cloned().collect();
                lost_one |= news.iter().any(|e| e.kind() == EventKind::Deleted);
                feed.apply_group(news, wakers);
            }
        }
        wakers.drain(..).for_each(std::task::Waker::wake);
        if lost_one
            && matches!(u.sub.target, WatchTarget::Variables(_))
            && self.by_key.get(&u.key) == Some(&id)
        {
            // It now follows fewer variables than its subscription names: a
            // new identical watch must not join it (it would not be told
            // that a name is unknown, nor follow a variable registered again
            // under it).
            self.by_key.remove(&u.key);
        }
        let mut abandoned = Vec::new();
        if let Some(sync) = update.sync_complete {
            u.synced_once = true;
            u.refusals = 0;
            u.incarnation = Some(sync.session_incarnation);
            {
                let mut feed = u.feed.lock();
                feed.incarnation = sync.session_incarnation;
                feed.note_progress(sync.revision, wakers);
            }
            u.phase = Phase::Live;
            u.backoff = self.config.backoff_initial;
            if let Conn::Open { healthy, out, .. } = &mut self.conn {
                *healthy = true;
                for w in &mut u.waiting {
                    if w.fence == Fence::AfterSync {
                        w.fence = Fence::Progress(0); // numbered below
                    }
                }
                if u.waiting.iter().any(|w| w.fence == Fence::Progress(0)) {
                    let n = u.ask_progress(id, out);
                    for w in &mut u.waiting {
                        if w.fence == Fence::Progress(0) {
                            w.fence = Fence::Progress(n);
                        }
                    }
                }
            }
        }
        if let Some(request) = update.progress {
            // Answers cover every request up to their number.
            u.progress_answered = u.progress_answered.max(request.min(u.progress_sent));
        }
        // Hand over every watch whose fence is passed; its caller may have
        // given up waiting.
        let synced = update.sync_complete.is_some();
        let answered = u.progress_answered;
        let (ready, waiting): (Vec<Waiting>, Vec<Waiting>) = std::mem::take(&mut u.waiting)
            .into_iter()
            .partition(|w| match w.fence {
                Fence::Sync => synced,
                Fence::AfterSync => false,
                Fence::Progress(n) => n > 0 && n <= answered,
            });
        u.waiting = waiting;
        for w in ready {
            abandoned.extend(u.hand_over(id, w.down, w.reply));
        }
        wakers.drain(..).for_each(std::task::Waker::wake);
        for key in abandoned {
            self.release(id, key);
        }
        let Some(u) = self.upstreams.get_mut(&id) else {
            return; // released: nobody wanted it any more
        };
        if u.feed.lock().is_over() {
            // Its last event came (`SessionClosed`): nothing more to follow.
            self.end_upstream(id, None, None, CloseReason::SessionClosed);
            if let Conn::Open { out, .. } = &self.conn {
                let _ = out.send(ClientMessage::Cancel(id));
            }
            return;
        }
        if let Some(end) = &update.end {
            self.ended(id, end.clone());
        }
    }

    /// The server ended upstream `id`.
    fn ended(&mut self, id: WatchId, end: WatchEnd) {
        let Some(u) = self.upstreams.get_mut(&id) else {
            return;
        };
        match end {
            // Its last event was delivered (the `Deleted` of its last
            // variable), or we cancelled it.
            WatchEnd::Done | WatchEnd::Cancelled => {
                self.end_upstream(id, None, None, CloseReason::VariablesDeleted)
            }
            WatchEnd::Failed(e) if !u.synced_once => {
                self.end_upstream(id, None, Some(e), CloseReason::Disconnected)
            }
            WatchEnd::Failed(e) => match e.code() {
                // A resume refused because the session is gone.
                ErrorCode::NotFound => {
                    let closed = WatchEvent::bare(EventKind::SessionClosed, "", "", 0, 0);
                    self.end_upstream(id, Some(closed), None, CloseReason::SessionClosed);
                }
                // Asking again will not help (a token revoked, a server that
                // refuses this subscription).
                ErrorCode::InvalidArgument | ErrorCode::Unauthenticated => {
                    self.end_upstream(id, Some(disconnected()), None, CloseReason::Disconnected)
                }
                // A passing refusal (a limit, a session being replaced):
                // this upstream alone tries again later, up to the retry
                // limit (then its watches end with `Disconnected`, as for a
                // connection that cannot be made).
                _ => {
                    u.refusals += 1;
                    if self.config.max_failures.is_some_and(|max| u.refusals > max) {
                        trace::debug!(watch = id, error = %e, "resume refused too often; giving up");
                        self.end_upstream(id, Some(disconnected()), None, CloseReason::Disconnected);
                        return;
                    }
                    trace::debug!(watch = id, error = %e, refusals = u.refusals, "resume refused; retrying");
                    let delay = jittered(u.backoff);
                    u.backoff = u.backoff.saturating_mul(2).min(self.config.backoff_max);
                    u.phase = Phase::Retry(Instant::now() + delay);
                    u.held.clear();
                }
            },
        }
    }

    fn retry_due(&mut self) {
        let now = Instant::now();
        let Conn::Open { out, .. } = &self.conn else {
            return;
        };
        for (&id, u) in self.upstreams.iter_mut() {
            if matches!(u.phase, Phase::Retry(at) if at <= now) {
                u.creating();
                let _ = out.send(ClientMessage::Create(id, create_for(u)));
            }
        }
    }

    /// A heartbeat, with the acknowledgements that moved.
    fn beat(&mut self) {
        let Conn::Open { out, sequence, .. } = &mut self.conn else {
            return;
        };
        *sequence += 1;
        if out.send(ClientMessage::Heartbeat(*sequence)).is_err() {
            return;
        }
        for (&id, u) in self.upstreams.iter_mut() {
            let taken = u.feed.lock().taken();
            if taken > u.acked && u.phase == Phase::Live {
                u.acked = taken;
                let _ = out.send(ClientMessage::Ack(id, taken - 1));
            }
        }
    }
}

/// The create message of an upstream: the user's subscription, or, once it
/// has synced, a resume by id from the versions it has, within the same
/// incarnation of the session.
fn create_for(u: &Upstream) -> Subscribe {
    let mut sub = u.sub.clone();
    sub.include_initial = true; // the upstream's state needs every variable
    if u.synced_once {
        let resume = u.feed.lock().resume_versions();
        // Resume by id, never by name: a name may now be another variable's,
        // and a deleted one must come back as deleted.
        if let WatchTarget::Variables(v) = &mut sub.target {
            *v = resume.keys().cloned().collect();
            v.sort();
        }
        sub.resume = resume;
        sub.session_incarnation = u.incarnation;
    }
    sub
}

/// The complete groups among `held` and `events`; the rest (the last group,
/// when the update said `incomplete`) stays in `held` until its end
/// arrives.
pub(crate) fn complete_groups(
    held: &mut Vec<WatchEvent>,
    events: Vec<WatchEvent>,
    incomplete: bool,
) -> Vec<WatchEvent> {
    if events.is_empty() {
        // An update with no events (a sync marker, an end) says nothing
        // about the group: keep holding it.
        return events;
    }
    let mut all = if held.is_empty() {
        events
    } else {
        let mut all = std::mem::take(held);
        all.extend(events);
        all
    };
    if incomplete && let Some(label) = all.last().map(WatchEvent::revision) {
        let keep = all
            .iter()
            .rposition(|e| e.revision() != label)
            .map_or(0, |i| i + 1);
        *held = all.split_off(keep);
    }
    all
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
        // An update without events in between changes nothing.
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
