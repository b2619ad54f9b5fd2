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
//! Between the hub and the user is a bounded queue (`capacity`), or for a
//! coalescing watch the latest state of each variable (`latest.rs`): a user
//! who does not read holds up no one (see `hub.rs`).

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::client::{Inner, Shared};
use super::codec::id_number;
use super::cut::read_cut;
use super::follow::Follower;
use super::hub::{self, Hub, Sink, Sub};
use super::latest::{Latest, Taken};
use crate::transport::grpc::proto;
use crate::transport::parker::{self, Parker};
use crate::watch::Screen;
use crate::{Error, RecvTimeoutError, Result, TryRecvError, WatchEvent, WatchOptions};

/// Where a watch's user takes its events from.
enum Source {
    Queue(mpsc::Receiver<WatchEvent>),
    /// Coalescing: everything owed at once, at most once per `throttle`.
    Latest {
        latest: Arc<Latest>,
        throttle: Option<Duration>,
        /// Not before this (throttled).
        next_take: Option<Instant>,
        /// The wake-up at `next_take`.
        timer: Option<tokio::task::AbortHandle>,
    },
}

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
    /// Whether it follows its session through the etcd watch the client
    /// shares among its watches of the session; `false` once it fell behind
    /// (its queue filled) and follows with an etcd watch of its own, or
    /// when it started after the shared one had moved past its snapshot.
    pub shared: bool,
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
/// one revision). A lossless watch never overflows: a user who does not
/// read holds up only this watch (it then follows with an etcd watch of
/// its own, and etcd keeps the history meanwhile). A coalescing or
/// throttled watch delivers the latest states, one cut per receive, as
/// locally. Versions a watch cannot have because etcd compacted them away
/// are reported as [`EventKind::Lagged`](crate::EventKind::Lagged), then the current state.
///
/// It ends after `SessionClosed` (the session was deleted, or its lease
/// expired, by any process), after the `Deleted` of its last variable (a
/// named watch), or with [`EventKind::Disconnected`](crate::EventKind::Disconnected) once etcd has been
/// unreachable for `max_failures` attempts. Dropping it cancels its etcd
/// watch. A variable deleted while the watch was compacted past is reported
/// as `Deleted` without the versions it went through before.
#[must_use = "a watch is cancelled as soon as it is dropped"]
pub struct EtcdWatch {
    /// The snapshot's events (delivered before anything from the task).
    first: VecDeque<WatchEvent>,
    source: Source,
    /// The user's filter and its counts.
    screen: Screen,
    reconnects: Arc<AtomicU64>,
    /// The hub it joined, and its id there.
    hub: Option<(Arc<Hub>, u64)>,
    /// Its own task, once it follows alone.
    alone: Arc<Mutex<Option<tokio::task::AbortHandle>>>,
    keepalive: Option<tokio::task::AbortHandle>,
    parker: Parker,
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

impl EtcdWatch {
    pub(super) async fn open(
        inner: Arc<Inner>,
        shared: Arc<Shared>,
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
        // The named variables, or (for ids not resolved yet, which may
        // have been registered since, or more names than etcd reads in one
        // transaction) the whole session, where ids resolve too.
        let wanted: Option<Vec<String>> = match (&idents, &names) {
            (Some(idents), Some(names)) => {
                let unresolved = idents
                    .iter()
                    .zip(names)
                    .any(|(i, n)| n.is_none() && crate::ident::is_var_id(i));
                let mut w: Vec<String> = names.iter().flatten().cloned().collect();
                w.sort();
                w.dedup();
                (!unresolved && w.len() < s.config.max_txn_ops).then_some(w)
            }
            _ => None,
        };
        let cut = read_cut(&s.conn, &s.keys, &session, wanted.as_deref())
            .await?
            .ok_or_else(|| Error::SessionNotFound {
                session: session.clone(),
            })?;
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
        let (follower, first) = Follower::new(
            s.keys.clone(),
            session.clone(),
            idents.is_none(),
            &cut,
            &states,
            opts.include_initial,
        )?;
        let (sink, source, first) = if opts.coalesce || opts.throttle.is_some() {
            // Coalescing: the initial states are owed like any other.
            let latest = Arc::new(Latest::new(idents.is_none()));
            if opts.include_initial {
                latest.merge(first, false);
            } else {
                for (_, rec) in &states {
                    latest.follow_from(&rec.id, rec.version);
                }
            }
            let source = Source::Latest {
                latest: latest.clone(),
                throttle: opts.throttle,
                next_take: None,
                timer: None,
            };
            (Sink::Latest(latest), source, Vec::new())
        } else {
            let (tx, rx) = mpsc::channel(opts.capacity.clamp(1, super::config::MAX_ETCD_BUFFER));
            (Sink::Queue(tx), Source::Queue(rx), first)
        };
        let reconnects = Arc::new(AtomicU64::new(0));
        let alone = Arc::new(Mutex::new(None));
        let id = s.next_watch_id();
        let sub = Sub {
            id,
            follower,
            sink,
            reconnects: reconnects.clone(),
            alone: alone.clone(),
        };
        let hub = hub::attach(&shared.hubs, &session, &cut, sub);
        let mut keepalive = None;
        if let (lease, Some(ttl)) = (cut.lease, cut.meta.ttl_ms)
            && lease != 0
        {
            // An open watch keeps its session alive, as locally.
            let ttl = Duration::from_millis(ttl);
            let keeper = shared.clone();
            let task = tokio::spawn(async move {
                loop {
                    keeper.keep_alive(lease, ttl);
                    tokio::time::sleep(ttl / 3).await;
                }
            });
            keepalive = Some(task.abort_handle());
        }
        shared.watch_opened(&session);
        Ok(EtcdWatch {
            first: first.into(),
            source,
            screen: Screen::new(opts.filter),
            reconnects,
            hub: hub.map(|h| (h, id)),
            alone,
            keepalive,
            parker: Parker::default(),
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
                None => match &mut self.source {
                    Source::Queue(rx) => match rx.poll_recv(cx) {
                        Poll::Ready(Some(e)) => e,
                        Poll::Ready(None) => return Poll::Ready(None),
                        Poll::Pending => return Poll::Pending,
                    },
                    Source::Latest {
                        latest,
                        throttle,
                        next_take,
                        timer,
                    } => {
                        let now = Instant::now();
                        let held = next_take.is_some_and(|t| now < t);
                        match latest.take(cx.waker(), held) {
                            Taken::Events(events) => {
                                self.first.extend(events);
                                *next_take = throttle.and_then(|d| now.checked_add(d));
                                continue;
                            }
                            Taken::Ended => return Poll::Ready(None),
                            Taken::Empty => {
                                if held && let Some(t) = *next_take {
                                    // Woken when the interval has passed
                                    // (or by a deletion, sooner).
                                    let waker = cx.waker().clone();
                                    if let Some(old) = timer.replace(
                                        self._inner
                                            .handle()
                                            .spawn(async move {
                                                tokio::time::sleep_until(t.into()).await;
                                                waker.wake();
                                            })
                                            .abort_handle(),
                                    ) {
                                        old.abort();
                                    }
                                }
                                return Poll::Pending;
                            }
                        }
                    }
                },
            };
            if let Some(e) = self.screen.took(e) {
                return Poll::Ready(Some(e));
            }
        }
    }

    fn recv_until(&mut self, deadline: Option<Instant>) -> Result<WatchEvent, RecvTimeoutError> {
        let mut parker = std::mem::take(&mut self.parker);
        let got = parker.recv_until(deadline, |cx| self.poll_recv(cx));
        self.parker = parker;
        got
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
        parker::try_recv(|cx| self.poll_recv(cx))
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
            resyncs: self.screen.resyncs,
            events_filtered: self.screen.filtered,
            filter_panics: self.screen.panics,
            shared: self.hub.is_some() && self.alone.lock().is_none(),
        }
    }
}

impl Drop for EtcdWatch {
    fn drop(&mut self) {
        // A hub drops its etcd watch with its last watch; a task of its
        // own drops its stream, and etcd cancels the watch.
        if let Some((hub, id)) = &self.hub {
            hub.leave(*id);
        }
        if let Some(t) = self.alone.lock().take() {
            t.abort();
        }
        if let Some(t) = &self.keepalive {
            t.abort();
        }
        if let Source::Latest { latest, timer, .. } = &mut self.source {
            latest.drop_watch();
            if let Some(t) = timer.take() {
                t.abort();
            }
        }
        self.shared.watch_closed(&self.session);
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
