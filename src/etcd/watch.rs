//! [`EtcdWatch`]: a watch of an [`EtcdStore`](super::EtcdStore) session.
//!
//! # The atomic subscribe, on etcd
//!
//! The watch reads the session (`meta` and the watched variables) in one
//! etcd transaction, at etcd revision R: that is its snapshot, a state that
//! existed. It then opens an etcd watch on the session's directory from
//! R + 1, so that every later change reaches it, once, in order: etcd's own
//! consistent cut, as the local store's is its write lock.
//!
//! # The follower's states
//!
//! A task per watch follows the etcd watch (kube-runtime's watcher is the
//! model: one explicit state per step):
//!
//! * **Live**: an etcd watch is open from `etcd_rev + 1`; each etcd
//!   revision's events are one group (etcd never splits a revision across
//!   responses unless asked to fragment, and this client never asks), turned
//!   into `Changed` / `Initial` / `Deleted` / `SessionClosed` events.
//! * **Retry**: the etcd watch failed (etcd restarted, the connection
//!   dropped): after a backoff it is opened again from `etcd_rev + 1`, so
//!   nothing is missed and nothing is seen twice; after
//!   `max_failures` failures in a row the watch ends with `Disconnected`.
//! * **Resync**: etcd compacted its history past `etcd_rev + 1` (the watch
//!   was behind, or away, too long): the watch reads the session again at a
//!   new revision R' and reports, per variable, the versions it cannot have
//!   as `Lagged { first, last }` followed by the current state, exactly as a
//!   local watch reports an overflow, then goes on from R' + 1.
//!
//! Between the task and the user is a bounded queue (`capacity`): a user
//! who does not read holds up only this watch's etcd stream (HTTP/2 flow
//! control), never the store; etcd keeps what the watch has not read.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use etcd_client::{EventType, Txn, TxnOp, TxnOpResponse, WatchOptions as EtcdWatchOptions};
use futures_core::Stream;
use tokio::sync::mpsc;

use super::codec::{self, decode_meta, decode_var, id_number};
use super::keys::{KeyKind, Keys};
use super::snapshot::prefix;
use super::store::{Inner, Shared};
use crate::meta::VarMeta;
use crate::record::{Record, RecordKind};
use crate::transport::grpc::proto;
use crate::watch::{Filter, Verdict, judge};
use crate::{Error, EventKind, RecvTimeoutError, Result, TryRecvError, WatchEvent, WatchOptions};

/// Counters of an [`EtcdWatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EtcdWatchStats {
    /// Times the etcd watch was opened again after a failure.
    pub reconnects: u64,
    /// `Lagged` markers delivered (etcd had compacted history the watch
    /// still needed).
    pub resyncs: u64,
    /// Events the filter rejected.
    pub events_filtered: u64,
    /// Filter calls that panicked (their events were delivered).
    pub filter_panics: u64,
}

/// A watch of an [`EtcdStore`](super::EtcdStore): the same
/// [`WatchEvent`]s as a local [`Watch`](crate::Watch), from every process
/// that writes the session. Blocking ([`recv`](Self::recv), an
/// [`Iterator`]) or async ([`recv_async`](Self::recv_async),
/// [`into_stream`](Self::into_stream)).
///
/// Its first events are the watched variables' states at one etcd revision
/// (labelled with that cut's session revision), then every change after
/// it, in order, grouped as written (an atomic batch arrives together, at
/// one revision). It is lossless: it never coalesces and never overflows (a
/// user who does not read holds up this watch's etcd stream, and etcd keeps
/// the history meanwhile). Versions it cannot have because etcd compacted
/// them away are reported as [`EventKind::Lagged`], then the current state.
///
/// It ends after `SessionClosed` (the session was deleted, or its lease
/// expired, by any process), after the `Deleted` of its last variable (a
/// named watch), or with [`EventKind::Disconnected`] once etcd has been
/// unreachable for `max_failures` attempts. Dropping it cancels its etcd
/// watch. A variable deleted while the watch was compacted past is reported
/// as `Deleted` without the versions it went through before.
#[must_use = "a watch is cancelled as soon as it is dropped"]
pub struct EtcdWatch {
    /// The snapshot's events (delivered before anything from the task).
    first: VecDeque<WatchEvent>,
    rx: mpsc::Receiver<WatchEvent>,
    filter: Option<Filter>,
    filtered: u64,
    filter_panics: u64,
    resyncs: u64,
    reconnects: Arc<AtomicU64>,
    tasks: Vec<tokio::task::AbortHandle>,
    thread_waker: Option<(thread::ThreadId, Waker)>,
    session: String,
    shared: Arc<Shared>,
    /// The store's runtime lives as long as its watches.
    _inner: Arc<Inner>,
}

impl fmt::Debug for EtcdWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdWatch")
            .field("session", &self.session)
            .field("stats", &self.stats())
            .finish()
    }
}

/// A variable a watch follows.
struct Tracked {
    /// The next version it is owed.
    next: u64,
    meta: Arc<VarMeta>,
    /// The value of the last version delivered: the next change's old
    /// value, a deletion's last value (so the etcd watch need not carry
    /// previous values: half the bytes).
    last: crate::Value,
}

/// The session as one etcd transaction read it.
pub(super) struct Cut {
    pub(super) meta: proto::SessionInfo,
    pub(super) incarnation: i64,
    pub(super) lease: i64,
    /// `(key, record)` in registration order.
    pub(super) recs: Vec<(Vec<u8>, proto::Variable)>,
    /// The etcd revision it was read at.
    pub(super) revision: i64,
}

/// Reads the session's `meta` and its variables (`names`, or all) in one
/// transaction; `None` if the session does not exist.
pub(super) async fn read_cut(s: &Shared, session: &str, names: Option<&[String]>) -> Result<Option<Cut>> {
    let mut ops = vec![TxnOp::get(s.keys.meta(session), None)];
    match names {
        None => ops.push(TxnOp::get(s.keys.var_dir(session), prefix())),
        Some(names) => ops.extend(names.iter().map(|n| TxnOp::get(s.keys.var(session, n), None))),
    }
    let resp = s.txn(Txn::new().and_then(ops)).await?;
    let revision = resp.header().map_or(0, |h| h.revision());
    let mut rs = resp.op_responses().into_iter().map(|r| match r {
        TxnOpResponse::Get(g) => g.kvs().to_vec(),
        _ => Vec::new(),
    });
    let Some(kv) = rs.next().and_then(|kvs| kvs.into_iter().next()) else {
        return Ok(None);
    };
    let meta = decode_meta(kv.key(), kv.value())?;
    let mut recs = Vec::new();
    for kvs in rs {
        for kv in kvs {
            recs.push((kv.key().to_vec(), decode_var(kv.key(), kv.value())?));
        }
    }
    recs.sort_by_key(|(_, r)| id_number(&r.id));
    Ok(Some(Cut {
        meta,
        incarnation: kv.create_revision(),
        lease: kv.lease(),
        recs,
        revision,
    }))
}

/// An event of `kind` carrying `rec`'s state.
fn event(
    kind: EventKind,
    key: &[u8],
    meta: &Arc<VarMeta>,
    rec: &proto::Variable,
    old: Option<crate::Value>,
) -> Result<WatchEvent> {
    let record = codec::record(key, meta.clone(), rec, old)?;
    Ok(WatchEvent::from_parts(kind, crate::sync::Arc::new(record), 0))
}

/// The `Deleted` event of a variable (`last`: its last value, if known).
fn deleted(meta: &Arc<VarMeta>, last: Option<&crate::Value>, version: u64, revision: u64) -> WatchEvent {
    let record = match last {
        Some(value) => Record {
            var: meta.clone(),
            kind: RecordKind::Deleted,
            version,
            revision,
            old_value: Some(value.clone()),
            value: value.clone(),
            source: None,
            metadata: None,
            timestamp: std::time::SystemTime::now(),
        },
        None => Record::bare(
            RecordKind::Deleted,
            &meta.id,
            &meta.name,
            version,
            revision,
            meta.slot,
        ),
    };
    WatchEvent::from_parts(EventKind::Deleted, crate::sync::Arc::new(record), 0)
}

/// How a step of the follower ended.
enum Step {
    /// Keep following.
    Go,
    /// The watch is over (its last event was queued, or its user left).
    End,
}

/// The task that follows one etcd watch: see the module docs.
struct Follower {
    shared: Arc<Shared>,
    session: String,
    dir: String,
    whole: bool,
    /// The followed variables, by id.
    tracked: BTreeMap<String, Tracked>,
    incarnation: i64,
    /// Every etcd revision up to this one has been delivered.
    etcd_rev: i64,
    /// The session revision of the last group delivered.
    session_rev: u64,
    tx: mpsc::Sender<WatchEvent>,
    reconnects: Arc<AtomicU64>,
}

impl EtcdWatch {
    pub(super) async fn open(
        inner: Arc<Inner>,
        shared: Arc<Shared>,
        handle: tokio::runtime::Handle,
        session: String,
        idents: Option<Vec<String>>,
        opts: WatchOptions,
    ) -> Result<EtcdWatch> {
        let s = &*shared;
        let names = match &idents {
            None => None,
            Some(idents) => {
                let refs: Vec<&str> = idents.iter().map(String::as_str).collect();
                Some(s.names_of(&session, &refs).await?)
            }
        };
        let wanted: Option<Vec<String>> = names.as_ref().map(|n| {
            let mut w: Vec<String> = n.iter().flatten().cloned().collect();
            w.sort();
            w.dedup();
            w
        });
        let cut = read_cut(s, &session, wanted.as_deref())
            .await?
            .ok_or_else(|| Error::SessionNotFound {
                session: session.clone(),
            })?;
        let mut tracked = BTreeMap::new();
        let mut first = VecDeque::new();
        let label = cut.meta.revision;
        let mut states: Vec<(&Vec<u8>, &proto::Variable)> = Vec::new();
        match (&idents, &names) {
            (Some(idents), Some(names)) => {
                let mut missing = Vec::new();
                for (ident, name) in idents.iter().zip(names) {
                    let found = name.as_ref().and_then(|n| {
                        cut.recs.iter().find(|(_, r)| {
                            &r.name == n && (!crate::ident::is_var_id(ident) || &r.id == ident)
                        })
                    });
                    match found {
                        Some((k, r)) => {
                            if !states.iter().any(|(_, x)| x.id == r.id) {
                                states.push((k, r));
                            }
                        }
                        None => missing.push(ident.clone()),
                    }
                }
                if !missing.is_empty() {
                    return Err(Error::VariablesNotFound {
                        session: session.clone(),
                        variables: missing,
                    });
                }
                states.sort_by_key(|(_, r)| id_number(&r.id));
            }
            _ => states.extend(cut.recs.iter().map(|(k, r)| (k, r))),
        }
        for (key, rec) in states {
            let meta = codec::var_meta(key, rec)?;
            if opts.include_initial {
                first.push_back(event(EventKind::Initial, key, &meta, rec, None)?.at_revision(label));
            }
            tracked.insert(
                rec.id.clone(),
                Tracked {
                    next: rec.version + 1,
                    last: codec::value(key, &rec.value)?,
                    meta,
                },
            );
        }
        let (tx, rx) = mpsc::channel(opts.capacity.clamp(1, super::config::MAX_ETCD_BUFFER));
        let reconnects = Arc::new(AtomicU64::new(0));
        let follower = Follower {
            shared: shared.clone(),
            dir: s.keys.dir(&session),
            session: session.clone(),
            whole: idents.is_none(),
            tracked,
            incarnation: cut.incarnation,
            etcd_rev: cut.revision,
            session_rev: label,
            tx,
            reconnects: reconnects.clone(),
        };
        let mut tasks = vec![handle.spawn(follower.run()).abort_handle()];
        if let (lease, Some(ttl)) = (cut.lease, cut.meta.ttl_ms)
            && lease != 0
        {
            // An open watch keeps its session alive, as locally.
            let ttl = Duration::from_millis(ttl);
            let keeper = shared.clone();
            tasks.push(
                handle
                    .spawn(async move {
                        loop {
                            keeper.keep_alive(lease, ttl);
                            tokio::time::sleep(ttl / 3).await;
                        }
                    })
                    .abort_handle(),
            );
        }
        shared.watch_opened(&session);
        Ok(EtcdWatch {
            first,
            rx,
            filter: opts.filter,
            filtered: 0,
            filter_panics: 0,
            resyncs: 0,
            reconnects,
            tasks,
            thread_waker: None,
            session,
            shared,
            _inner: inner,
        })
    }

    /// Polls for the next event: `Ready(None)` once the watch has ended.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<WatchEvent>> {
        loop {
            let e = match self.first.pop_front() {
                Some(e) => e,
                None => match self.rx.poll_recv(cx) {
                    Poll::Ready(Some(e)) => e,
                    Poll::Ready(None) => return Poll::Ready(None),
                    Poll::Pending => return Poll::Pending,
                },
            };
            if let Some(e) = self.took(e) {
                return Poll::Ready(Some(e));
            }
        }
    }

    /// Counts and filters an event its user is about to get.
    fn took(&mut self, e: WatchEvent) -> Option<WatchEvent> {
        if matches!(e.kind(), EventKind::Lagged { .. }) {
            self.resyncs += 1;
        }
        let Some(filter) = &self.filter else {
            return Some(e);
        };
        match judge(filter, &e) {
            Verdict::Pass => Some(e),
            Verdict::Reject => {
                self.filtered += 1;
                None
            }
            Verdict::Panicked => {
                self.filter_panics += 1;
                Some(e)
            }
        }
    }

    fn thread_waker(&mut self) -> Waker {
        let me = thread::current();
        match &self.thread_waker {
            Some((id, w)) if *id == me.id() => w.clone(),
            _ => {
                let id = me.id();
                let w = Waker::from(Arc::new(ThreadWaker(me)));
                self.thread_waker = Some((id, w.clone()));
                w
            }
        }
    }

    fn recv_until(&mut self, deadline: Option<Instant>) -> Result<WatchEvent, RecvTimeoutError> {
        let waker = self.thread_waker();
        let mut cx = Context::from_waker(&waker);
        loop {
            match self.poll_recv(&mut cx) {
                Poll::Ready(Some(e)) => return Ok(e),
                Poll::Ready(None) => return Err(RecvTimeoutError::Closed),
                Poll::Pending => {}
            }
            match deadline {
                None => thread::park(),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Err(RecvTimeoutError::Timeout);
                    }
                    thread::park_timeout(d - now);
                }
            }
        }
    }

    /// Blocks until the next event; `None` once the watch has ended. (It
    /// parks the thread: in async code use [`recv_async`](Self::recv_async).)
    pub fn recv(&mut self) -> Option<WatchEvent> {
        self.recv_until(None).ok()
    }

    /// Blocks until the next event or until `timeout` has passed (a timeout
    /// too large to represent means no deadline).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<WatchEvent, RecvTimeoutError> {
        self.recv_until(Instant::now().checked_add(timeout))
    }

    /// The next event if one is ready, without blocking.
    pub fn try_recv(&mut self) -> Result<WatchEvent, TryRecvError> {
        match self.poll_recv(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Some(e)) => Ok(e),
            Poll::Ready(None) => Err(TryRecvError::Closed),
            Poll::Pending => Err(TryRecvError::Empty),
        }
    }

    /// Waits for the next event; `None` once the watch has ended. Works on
    /// any async runtime.
    pub async fn recv_async(&mut self) -> Option<WatchEvent> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The watch as a [`Stream`]; get it back with
    /// [`EtcdWatchStream::into_inner`].
    pub fn into_stream(self) -> EtcdWatchStream {
        EtcdWatchStream(self)
    }

    /// Its counters.
    pub fn stats(&self) -> EtcdWatchStats {
        EtcdWatchStats {
            reconnects: self.reconnects.load(Ordering::Relaxed),
            resyncs: self.resyncs,
            events_filtered: self.filtered,
            filter_panics: self.filter_panics,
        }
    }
}

impl Drop for EtcdWatch {
    fn drop(&mut self) {
        // Dropping the follower drops its etcd stream: etcd cancels the
        // watch when the stream closes.
        for t in &self.tasks {
            t.abort();
        }
        self.shared.watch_closed(&self.session);
    }
}

/// Wakes a parked receiving thread.
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Blocking iteration: each `next` is an [`EtcdWatch::recv`].
impl Iterator for EtcdWatch {
    type Item = WatchEvent;
    fn next(&mut self) -> Option<WatchEvent> {
        self.recv()
    }
}

/// An [`EtcdWatch`] as a [`Stream`] of events, from
/// [`EtcdWatch::into_stream`].
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct EtcdWatchStream(EtcdWatch);

impl EtcdWatchStream {
    /// The watch (for its statistics, say).
    pub fn get_ref(&self) -> &EtcdWatch {
        &self.0
    }

    /// The watch back.
    pub fn into_inner(self) -> EtcdWatch {
        self.0
    }
}

impl Stream for EtcdWatchStream {
    type Item = WatchEvent;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchEvent>> {
        self.get_mut().0.poll_recv(cx)
    }
}

impl Follower {
    async fn run(mut self) {
        let mut failures = 0u32;
        let mut delay = self.shared.config.backoff_initial;
        loop {
            let opts = EtcdWatchOptions::new()
                .with_prefix()
                .with_progress_notify()
                .with_start_revision(self.etcd_rev + 1);
            let mut stream = match self
                .shared
                .client
                .watch_client()
                .watch(self.dir.clone(), Some(opts))
                .await
            {
                Ok(s) => Some(s),
                Err(_) => None,
            };
            while let Some(st) = stream.as_mut() {
                let resp = match st.message().await {
                    Ok(Some(r)) => r,
                    Ok(None) | Err(_) => break,
                };
                if resp.canceled() {
                    if resp.compact_revision() > 0 {
                        // History the watch needs is gone: read it again.
                        match self.resync().await {
                            Ok(Step::Go) => {
                                failures = 0;
                                delay = self.shared.config.backoff_initial;
                            }
                            Ok(Step::End) => return,
                            Err(_) => {}
                        }
                    }
                    break;
                }
                failures = 0;
                delay = self.shared.config.backoff_initial;
                if let Step::End = self.apply(resp).await {
                    return;
                }
            }
            // The etcd watch failed or was cancelled: open it again from
            // where it was, after a backoff.
            failures += 1;
            if self.shared.config.max_failures.is_some_and(|m| failures > m) {
                let ev = WatchEvent::bare(EventKind::Disconnected, "", "", 0, self.session_rev);
                let _ = self.tx.send(ev).await;
                return;
            }
            self.reconnects.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(jittered(delay)).await;
            delay = (delay * 2).min(self.shared.config.backoff_max);
            if self.tx.is_closed() {
                return;
            }
        }
    }

    async fn send(&self, events: Vec<WatchEvent>) -> Step {
        for e in events {
            if self.tx.send(e).await.is_err() {
                return Step::End; // the user dropped the watch
            }
        }
        Step::Go
    }

    /// Delivers one etcd watch response: each etcd revision in it is one
    /// group.
    async fn apply(&mut self, resp: etcd_client::WatchResponse) -> Step {
        let events = resp.events();
        if events.is_empty() {
            // A progress notification says every revision up to its
            // header's has been sent; a creation's header says nothing.
            if !resp.created()
                && let Some(h) = resp.header()
            {
                self.etcd_rev = self.etcd_rev.max(h.revision());
            }
            return Step::Go;
        }
        let mut start = 0;
        while start < events.len() {
            let rev = events[start].kv().map_or(0, |kv| kv.mod_revision());
            let mut end = start + 1;
            while end < events.len() && events[end].kv().map_or(0, |kv| kv.mod_revision()) == rev {
                end += 1;
            }
            if rev > self.etcd_rev {
                let (out, step) = self.group(&events[start..end]);
                self.etcd_rev = rev;
                if let Step::End = self.send(out).await {
                    return Step::End;
                }
                if let Step::End = step {
                    return Step::End;
                }
            }
            start = end;
        }
        Step::Go
    }

    /// The events of one etcd revision (one write of the session).
    fn group(&mut self, evs: &[etcd_client::Event]) -> (Vec<WatchEvent>, Step) {
        let mut out = Vec::new();
        let mut closed = false;
        let mut label = None;
        for e in evs {
            let Some(kv) = e.kv() else { continue };
            if Keys::kind(&self.dir, kv.key()) != KeyKind::Meta {
                continue;
            }
            match e.event_type() {
                EventType::Delete => closed = true,
                EventType::Put => {
                    if kv.create_revision() != self.incarnation {
                        closed = true; // another life of the session
                    } else if let Ok(m) = decode_meta(kv.key(), kv.value()) {
                        label = Some(m.revision);
                    }
                }
            }
        }
        let revision = label.unwrap_or(self.session_rev);
        if !closed {
            for e in evs {
                let Some(kv) = e.kv() else { continue };
                if Keys::kind(&self.dir, kv.key()) != KeyKind::Var {
                    continue;
                }
                match e.event_type() {
                    EventType::Put => self.put(kv, &mut out),
                    EventType::Delete => self.delete(kv.key(), revision, &mut out),
                }
            }
        }
        self.session_rev = revision;
        if closed {
            out.push(WatchEvent::bare(EventKind::SessionClosed, "", "", 0, revision));
            return (out, Step::End);
        }
        if !self.whole && self.tracked.is_empty() {
            return (out, Step::End); // the last watched variable is gone
        }
        (out, Step::Go)
    }

    fn put(&mut self, kv: &etcd_client::KeyValue, out: &mut Vec<WatchEvent>) {
        let Ok(rec) = decode_var(kv.key(), kv.value()) else {
            return; // not varwatch's: nothing a watch can say about it
        };
        let Ok(value) = codec::value(kv.key(), &rec.value) else {
            return;
        };
        if let Some(t) = self.tracked.get_mut(&rec.id) {
            if rec.version < t.next {
                return; // already delivered
            }
            let mut old = Some(t.last.clone());
            if rec.version > t.next {
                old = None; // the value before this version was never seen
                let lag = EventKind::Lagged {
                    first: t.next,
                    last: rec.version - 1,
                };
                if let Ok(e) = event(lag, kv.key(), &t.meta, &rec, None) {
                    out.push(e);
                }
            }
            t.next = rec.version + 1;
            t.last = value;
            if let Ok(e) = event(EventKind::Changed, kv.key(), &t.meta, &rec, old) {
                out.push(e);
            }
        } else if self.whole
            && let Ok(meta) = codec::var_meta(kv.key(), &rec)
        {
            // Registered after the watch started: its first event is its
            // state, as locally.
            if rec.version > 0 {
                let lag = EventKind::Lagged {
                    first: 0,
                    last: rec.version - 1,
                };
                if let Ok(e) = event(lag, kv.key(), &meta, &rec, None) {
                    out.push(e);
                }
            }
            if let Ok(e) = event(EventKind::Initial, kv.key(), &meta, &rec, None) {
                out.push(e);
            }
            self.tracked.insert(
                rec.id.clone(),
                Tracked {
                    next: rec.version + 1,
                    meta,
                    last: value,
                },
            );
        }
    }

    fn delete(&mut self, key: &[u8], revision: u64, out: &mut Vec<WatchEvent>) {
        // The followed variable under this key (a deleted key holds no
        // record to read its id from).
        let found = self
            .tracked
            .iter()
            .find(|(_, t)| self.shared.keys.var(&self.session, &t.meta.name).as_bytes() == key)
            .map(|(id, _)| id.clone());
        let Some(t) = found.and_then(|id| self.tracked.remove(&id)) else {
            return;
        };
        out.push(deleted(&t.meta, Some(&t.last), t.next, revision));
    }

    /// Etcd compacted history this watch still needed: read the session
    /// again and report what was missed (see the module docs).
    async fn resync(&mut self) -> Result<Step> {
        let names: Option<Vec<String>> = (!self.whole).then(|| {
            let mut n: Vec<String> = self.tracked.values().map(|t| t.meta.name.to_string()).collect();
            n.sort();
            n.dedup();
            n
        });
        let cut = read_cut(&self.shared, &self.session, names.as_deref()).await?;
        let mut out = Vec::new();
        let Some(cut) = cut.filter(|c| c.incarnation == self.incarnation) else {
            out.push(WatchEvent::bare(
                EventKind::SessionClosed,
                "",
                "",
                0,
                self.session_rev,
            ));
            let _ = self.send(out).await;
            return Ok(Step::End);
        };
        let label = cut.meta.revision;
        let by_id: BTreeMap<&str, &(Vec<u8>, proto::Variable)> =
            cut.recs.iter().map(|kr| (kr.1.id.as_str(), kr)).collect();
        let mut gone = Vec::new();
        let mut order: Vec<(&String, &mut Tracked)> = self.tracked.iter_mut().collect();
        order.sort_by_key(|(_, t)| t.meta.slot);
        for (id, t) in order {
            match by_id.get(id.as_str()) {
                Some((key, rec)) => {
                    if rec.version < t.next {
                        continue; // nothing missed
                    }
                    if rec.version > t.next {
                        out.push(
                            event(
                                EventKind::Lagged {
                                    first: t.next,
                                    last: rec.version - 1,
                                },
                                key,
                                &t.meta,
                                rec,
                                None,
                            )?
                            .at_revision(label),
                        );
                    }
                    out.push(event(EventKind::Changed, key, &t.meta, rec, None)?.at_revision(label));
                    t.next = rec.version + 1;
                    t.last = codec::value(key, &rec.value)?;
                }
                None => {
                    out.push(deleted(&t.meta, Some(&t.last), t.next, label));
                    gone.push(id.clone());
                }
            }
        }
        for id in gone {
            self.tracked.remove(&id);
        }
        if self.whole {
            for (key, rec) in &cut.recs {
                if self.tracked.contains_key(&rec.id) {
                    continue;
                }
                let meta = codec::var_meta(key, rec)?;
                if rec.version > 0 {
                    out.push(
                        event(
                            EventKind::Lagged {
                                first: 0,
                                last: rec.version - 1,
                            },
                            key,
                            &meta,
                            rec,
                            None,
                        )?
                        .at_revision(label),
                    );
                }
                out.push(event(EventKind::Initial, key, &meta, rec, None)?.at_revision(label));
                self.tracked.insert(
                    rec.id.clone(),
                    Tracked {
                        next: rec.version + 1,
                        last: codec::value(key, &rec.value)?,
                        meta,
                    },
                );
            }
        }
        self.etcd_rev = cut.revision;
        self.session_rev = label;
        if let Step::End = self.send(out).await {
            return Ok(Step::End);
        }
        if !self.whole && self.tracked.is_empty() {
            return Ok(Step::End);
        }
        Ok(Step::Go)
    }
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
