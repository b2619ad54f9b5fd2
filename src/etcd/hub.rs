//! [`Hub`]: one etcd watch per session per client, shared by every
//! etcd watch of that session in the client.
//!
//! A hub's task follows the session's directory in etcd and decodes each
//! write once (`group.rs`); each watch's [`Follower`] turns it into that
//! watch's events, which go into the watch's bounded queue. A hundred
//! watches of a session cost etcd one watch and the client one decode per
//! write, not a hundred.
//!
//! # Joining
//!
//! A watch reads its snapshot at etcd revision R, then joins the session's
//! hub if the hub has not yet delivered anything after R (`delivered ≤ R`):
//! every later write then reaches it through the hub, and those up to R it
//! skips (its snapshot has them). Otherwise (a write slipped in between) it
//! follows alone from R + 1, with its own etcd watch. Either way it gets
//! every change after its snapshot once.
//!
//! # A watch that falls behind
//!
//! The hub never waits for one watch: if a watch's queue is full, the watch
//! leaves the hub and follows alone, with its own etcd watch from where it
//! was, waiting for its user (etcd keeps the history meanwhile). So one
//! slow reader holds up neither the others nor the hub, and loses nothing.
//!
//! # Failures
//!
//! An etcd watch that fails is opened again from the last revision
//! delivered, after a backoff (`max_failures` in a row end every watch with
//! `Disconnected`); one that etcd cancels because the history it needs was
//! compacted makes every watch re-read the session (`Follower::resync`:
//! `Lagged`, then the current state).

use std::collections::HashMap;
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

use tokio::task::AbortHandle;

use super::config::EtcdConfig;
use super::conn::Conn;
use super::cut::{Cut, read_cut};
use super::follow::{Follower, Step};
use super::group::{Decoder, Group};
use super::keys::Keys;
use super::wire::{Broken, EtcdWatch};
use crate::sync::Mutex;
use crate::watch::feed::Feed;
use crate::{CloseReason, EventKind, WatchEvent};

/// Hands one step of a follower (`events`, one group, or the watch's last
/// event) to `feed` without waiting; what does not fit is returned.
fn push(feed: &Mutex<Feed>, events: Vec<WatchEvent>, step: Step) -> Pushed {
    let mut f = feed.lock();
    if f.is_closed() {
        return Pushed::Closed;
    }
    let n = events.len();
    if n > 0 && !f.fits(n) {
        return Pushed::Full(events);
    }
    let wakers = hand(&mut f, events, step);
    drop(f);
    wakers.into_iter().for_each(Waker::wake);
    Pushed::Sent
}

/// Applies a step to the feed: its group, and with `Step::End` the end
/// (`SessionClosed` ends a feed by itself; a `Disconnected` event ends it
/// for that reason; otherwise the last watched variable was deleted).
fn hand(f: &mut Feed, mut events: Vec<WatchEvent>, step: Step) -> Vec<Waker> {
    let mut wakers = Vec::new();
    let last = events
        .last()
        .filter(|e| e.kind() == EventKind::Disconnected)
        .is_some()
        .then(|| events.pop())
        .flatten();
    f.apply_group(events, &mut wakers);
    if step == Step::End {
        let reason = if last.is_some() {
            CloseReason::Disconnected
        } else {
            CloseReason::VariablesDeleted
        };
        wakers.extend(f.finish(last, reason));
    }
    wakers
}

/// A watch's follower has applied a write (that may have brought it
/// nothing): its feed's progress, which a server answering a progress
/// request waits for.
fn progressed(sub: &Sub) {
    let mut wakers = Vec::new();
    sub.feed
        .lock()
        .note_progress(sub.follower.session_revision(), &mut wakers);
    wakers.into_iter().for_each(Waker::wake);
}

/// Delivers a step, waiting for room; `false` once the user is gone.
async fn send(feed: &Mutex<Feed>, events: Vec<WatchEvent>, step: Step) -> bool {
    let n = events.len();
    let room = std::future::poll_fn(|cx| feed.lock().poll_room(n.max(1), cx)).await;
    if !room {
        return false;
    }
    let wakers = hand(&mut feed.lock(), events, step);
    wakers.into_iter().for_each(Waker::wake);
    true
}

/// One watch as a hub feeds it.
pub(super) struct Sub {
    pub(super) id: u64,
    pub(super) follower: Follower,
    pub(super) feed: Arc<Mutex<Feed>>,
    /// Where the task of this watch goes if it has to follow alone (its
    /// watch's hooks abort it when dropped).
    pub(super) alone: Arc<Mutex<Option<AbortHandle>>>,
}

/// The shared etcd watch of one life of one session.
pub(super) struct Hub {
    ctx: Arc<HubCtx>,
    key: (String, i64),
    dir: String,
    state: Mutex<HubState>,
    /// Its task: aborted when its last watch leaves (a quiet session's
    /// etcd watch would otherwise outlive its watches).
    task: Mutex<Option<AbortHandle>>,
}

struct HubState {
    subs: Vec<Sub>,
    /// Every etcd revision up to this one has been handed to the watches.
    delivered: i64,
    /// No watch left: the task is gone; a new watch makes a new hub.
    ended: bool,
}

/// The registry of a client's hubs, by (session, incarnation). Lock order:
/// the registry, then a hub's state.
pub(super) type Hubs = Mutex<HashMap<(String, i64), Arc<Hub>>>;

/// What a client's hubs share: the connection, the layout, the settings,
/// and the registry of hubs.
pub(super) struct HubCtx {
    pub(super) conn: Arc<Conn>,
    pub(super) keys: Keys,
    pub(super) config: EtcdConfig,
    pub(super) hubs: Hubs,
}

/// What happened to a watch's events.
enum Pushed {
    /// All queued.
    Sent,
    /// Its user is gone.
    Closed,
    /// Its queue is full: these are left.
    Full(Vec<WatchEvent>),
}

/// Joins `sub` to its session's hub (made if there is none), or starts it
/// alone (see the module docs). `cut` is its snapshot. Runs on the store's
/// runtime.
pub(super) fn attach(ctx: &Arc<HubCtx>, session: &str, cut: &Cut, sub: Sub) -> Option<Arc<Hub>> {
    let key = (session.to_string(), cut.incarnation);
    let mut hubs = ctx.hubs.lock();
    if let Some(hub) = hubs.get(&key).cloned() {
        let mut st = hub.state.lock();
        if !st.ended {
            if st.delivered <= sub.follower.etcd_rev {
                st.subs.push(sub);
                drop(st);
                return Some(hub);
            }
            // The hub is past this watch's snapshot: it follows alone.
            drop(st);
            drop(hubs);
            alone(ctx.clone(), sub, Vec::new());
            return None;
        }
    }
    let hub = Arc::new(Hub {
        ctx: ctx.clone(),
        key: key.clone(),
        dir: ctx.keys.dir(session),
        state: Mutex::new(HubState {
            delivered: sub.follower.etcd_rev,
            subs: vec![sub],
            ended: false,
        }),
        task: Mutex::new(None),
    });
    let mut decoder = Decoder::default();
    decoder.seed(&cut.recs);
    hubs.insert(key, hub.clone());
    let task = tokio::spawn(hub.clone().run(decoder));
    *hub.task.lock() = Some(task.abort_handle());
    Some(hub)
}

/// Starts `sub` following alone, with `pending` to deliver first.
fn alone(ctx: Arc<HubCtx>, sub: Sub, pending: Vec<WatchEvent>) {
    let slot = sub.alone.clone();
    let task = tokio::spawn(follow_alone(ctx, sub, pending));
    *slot.lock() = Some(task.abort_handle());
}

/// `d` give or take a quarter, so that many watches that failed together
/// do not retry together.
fn jittered(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    let quarter = d / 4;
    let span = u64::try_from(quarter.as_nanos()).unwrap_or(u64::MAX).max(1);
    d - quarter + Duration::from_nanos(u64::from(nanos) % (2 * span))
}

/// Reconnection bookkeeping: backoff, and when to give up.
///
/// Failures in a row are counted until the watch works: it delivers
/// something, or its etcd watch stays up longer than the longest backoff.
/// Being created is not enough (etcd may create a watch and cancel it at
/// once, say for lack of permission: that must end in `Disconnected`, not
/// retry forever).
struct Retry {
    failures: u32,
    delay: Duration,
    /// When the current etcd watch was created.
    since: Option<std::time::Instant>,
    /// A re-read has stood in for following since the watch last
    /// delivered (one per such stretch: an etcd that answers reads but
    /// never lets the watch through must still end it).
    rescued: bool,
}

impl Retry {
    fn new(ctx: &HubCtx) -> Retry {
        Retry {
            failures: 0,
            delay: ctx.config.backoff_initial,
            since: None,
            rescued: false,
        }
    }
    /// Whether a re-read may stand in for following now (once until the
    /// watch delivers again).
    fn rescue(&mut self) -> bool {
        !std::mem::replace(&mut self.rescued, true)
    }
    /// The etcd watch delivered something: it works.
    fn ok(&mut self, ctx: &HubCtx) {
        self.failures = 0;
        self.delay = ctx.config.backoff_initial;
        self.rescued = false;
    }
    /// The etcd watch was created (or not: `None`).
    fn opened(&mut self) {
        self.since = Some(std::time::Instant::now());
    }
    /// After a failure: `false` to give up, else waits the backoff.
    async fn failed(&mut self, ctx: &HubCtx) -> bool {
        if self
            .since
            .take()
            .is_some_and(|t| t.elapsed() > ctx.config.backoff_max)
        {
            self.ok(ctx); // it was up long enough: a new failure
        }
        self.failures += 1;
        if ctx.config.max_failures.is_some_and(|m| self.failures > m) {
            return false;
        }
        tokio::time::sleep(jittered(self.delay)).await;
        self.delay = (self.delay * 2).min(ctx.config.backoff_max);
        true
    }
}

impl Hub {
    /// Removes watch `id` (its watch was dropped); the last one ends
    /// the hub.
    pub(super) fn leave(&self, id: u64) {
        let mut hubs = self.ctx.hubs.lock();
        let mut st = self.state.lock();
        st.subs.retain(|s| s.id != id);
        if st.subs.is_empty() && !st.ended {
            st.ended = true;
            if hubs.get(&self.key).is_some_and(|h| std::ptr::eq(&**h, self)) {
                hubs.remove(&self.key);
            }
            if let Some(t) = self.task.lock().take() {
                t.abort();
            }
        }
    }

    /// Whether the hub has ended (and removes it from the registry if so).
    fn end_if_empty(&self, st: &mut HubState) -> bool {
        if st.subs.is_empty() {
            st.ended = true;
        }
        st.ended
    }

    fn unregister(&self) {
        let mut hubs = self.ctx.hubs.lock();
        if hubs.get(&self.key).is_some_and(|h| std::ptr::eq(&**h, self)) && self.state.lock().ended {
            hubs.remove(&self.key);
        }
    }

    /// Hands each watch its events of `groups`; detaches those whose queue
    /// is full. `true` once no watch is left.
    fn fan_out(&self, groups: &[Group]) -> bool {
        let mut st = self.state.lock();
        for g in groups {
            if g.etcd_rev <= st.delivered {
                continue;
            }
            let mut i = 0;
            while i < st.subs.len() {
                let sub = &mut st.subs[i];
                if g.etcd_rev <= sub.follower.etcd_rev {
                    i += 1; // in its snapshot already
                    continue;
                }
                let (events, step) = sub.follower.apply(g);
                let keep = self.deliver(&mut st.subs, i, events, step);
                if keep {
                    i += 1;
                }
            }
            st.delivered = g.etcd_rev;
        }
        self.end_if_empty(&mut st)
    }

    /// Queues `events` for watch `i`; `false` if it left the hub (ended,
    /// dropped, or detached to follow alone).
    fn deliver(&self, subs: &mut Vec<Sub>, i: usize, events: Vec<WatchEvent>, step: Step) -> bool {
        match push(&subs[i].feed, events, step) {
            Pushed::Sent if step == Step::Go => {
                progressed(&subs[i]);
                true
            }
            Pushed::Sent | Pushed::Closed => {
                subs.swap_remove(i);
                false
            }
            Pushed::Full(rest) => {
                let sub = subs.swap_remove(i);
                if step == Step::Go {
                    alone(self.ctx.clone(), sub, rest);
                } else {
                    // Its last events: delivered by a task that waits.
                    tokio::spawn(async move { send(&sub.feed, rest, step).await });
                }
                false
            }
        }
    }

    /// Every watch re-reads the session after a compaction.
    async fn resync_all(&self, decoder: &mut Decoder) -> bool {
        let Ok(cut) = read_cut(&self.ctx.conn, &self.ctx.keys, &self.key.0, None).await else {
            return false; // retried as a failure
        };
        let mut st = self.state.lock();
        let mut i = 0;
        while i < st.subs.len() {
            let (events, step) = st.subs[i].follower.resync(cut.as_ref());
            if self.deliver(&mut st.subs, i, events, step) {
                i += 1;
            }
        }
        if let Some(cut) = &cut {
            st.delivered = st.delivered.max(cut.revision);
            decoder.seed(&cut.recs);
        } else {
            st.subs.clear();
        }
        true
    }

    async fn run(self: Arc<Self>, mut decoder: Decoder) {
        let ctx = self.ctx.clone();
        let mut retry = Retry::new(&ctx);
        loop {
            let from = self.state.lock().delivered + 1;
            let mut resynced = false;
            let mut unservable = false;
            if let Ok(mut watch) = EtcdWatch::open(&ctx.conn, &self.dir, from).await {
                loop {
                    let resp = match watch.next().await {
                        Ok(resp) => resp,
                        Err(broken) => {
                            unservable = matches!(broken, Broken::Unservable);
                            break;
                        }
                    };
                    if resp.canceled() {
                        if resp.compact_revision() > 0 && self.resync_all(&mut decoder).await {
                            retry.ok(&ctx);
                            resynced = true;
                        }
                        break;
                    }
                    if resp.created() {
                        retry.opened();
                        continue;
                    }
                    retry.ok(&ctx);
                    if resp.events().is_empty() {
                        // etcd's progress notification: every revision up
                        // to its header's was sent (a creation's says
                        // nothing).
                        if let Some(h) = resp.header() {
                            let mut st = self.state.lock();
                            st.delivered = st.delivered.max(h.revision());
                        }
                        continue;
                    }
                    let groups = decoder.groups(&self.dir, &resp);
                    if self.fan_out(&groups) {
                        self.unregister();
                        return;
                    }
                }
            }
            {
                let mut st = self.state.lock();
                if self.end_if_empty(&mut st) {
                    drop(st);
                    self.unregister();
                    return;
                }
                if resynced {
                    continue; // from the re-read revision, at once
                }
                for s in &st.subs {
                    s.feed.lock().reconnects += 1;
                }
            }
            // A history that cannot be followed (too large to decode), or
            // an etcd that answers reads but never lets the watch through:
            // the session is re-read (`Lagged`, then the state) rather
            // than the watches ended, while etcd is reachable.
            if unservable && retry.rescue() && self.resync_all(&mut decoder).await {
                continue;
            }
            if !retry.failed(&ctx).await {
                if retry.rescue() && self.resync_all(&mut decoder).await {
                    continue;
                }
                let mut st = self.state.lock();
                for s in st.subs.drain(..) {
                    // Waits for room: a full queue must not lose the reason.
                    tokio::spawn(
                        async move { send(&s.feed, vec![s.follower.disconnected()], Step::End).await },
                    );
                }
                st.ended = true;
                drop(st);
                self.unregister();
                return;
            }
        }
    }
}

/// A watch following alone: its own etcd watch, and it waits for its user
/// (`pending` first).
async fn follow_alone(ctx: Arc<HubCtx>, mut sub: Sub, pending: Vec<WatchEvent>) {
    if !pending.is_empty() && !send(&sub.feed, pending, Step::Go).await {
        return;
    }
    let session = sub.follower.session().to_string();
    let dir = ctx.keys.dir(&session);
    let mut decoder = Decoder::default();
    let mut retry = Retry::new(&ctx);
    loop {
        let from = sub.follower.etcd_rev + 1;
        let mut resync = false;
        let mut resynced = false;
        if let Ok(mut watch) = EtcdWatch::open(&ctx.conn, &dir, from).await {
            loop {
                let resp = match watch.next().await {
                    Ok(resp) => resp,
                    Err(broken) => {
                        resync = matches!(broken, Broken::Unservable) && retry.rescue();
                        break;
                    }
                };
                if resp.canceled() {
                    resync = resp.compact_revision() > 0;
                    break;
                }
                if resp.created() {
                    retry.opened();
                    continue;
                }
                retry.ok(&ctx);
                for g in decoder.groups(&dir, &resp) {
                    if g.etcd_rev <= sub.follower.etcd_rev {
                        continue;
                    }
                    let (events, step) = sub.follower.apply(&g);
                    let end = step == Step::End;
                    // A write that brings this watch nothing is not sent.
                    if (!events.is_empty() || end) && !send(&sub.feed, events, step).await {
                        return; // its user is gone
                    }
                    if end {
                        return;
                    }
                    progressed(&sub);
                }
            }
        }
        if sub.feed.lock().is_closed() {
            return;
        }
        if !resync {
            sub.feed.lock().reconnects += 1;
            if !retry.failed(&ctx).await {
                // Given up following: re-read while etcd answers (see
                // `Hub::run`), else the end.
                resync = retry.rescue();
                if !resync {
                    let last = vec![sub.follower.disconnected()];
                    let _ = send(&sub.feed, last, Step::End).await;
                    return;
                }
            }
        }
        if resync && let Ok(cut) = read_cut(&ctx.conn, &ctx.keys, &session, None).await {
            retry.ok(&ctx);
            if let Some(c) = &cut {
                decoder.seed(&c.recs);
            }
            let (events, step) = sub.follower.resync(cut.as_ref());
            if !send(&sub.feed, events, step).await || step == Step::End {
                return;
            }
            progressed(&sub);
            resynced = true;
        }
        if resynced {
            continue;
        }
        if resync {
            // The re-read failed: a failure like any other.
            sub.feed.lock().reconnects += 1;
            if !retry.failed(&ctx).await {
                let last = vec![sub.follower.disconnected()];
                let _ = send(&sub.feed, last, Step::End).await;
                return;
            }
        }
    }
}
