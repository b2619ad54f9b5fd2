//! [`RemoteWatch`]: a watch of a remote store that survives reconnects.
//!
//! Every watch of a client travels on the client's one watch stream (see
//! `mux.rs`), and identical subscriptions share one watch on the wire (see
//! `upstream.rs`). A `RemoteWatch` is a handle on its own bounded queue:
//! the connection task fills it with whole groups and never waits for it;
//! if it is full, the watch catches up on its own side when its user has
//! drained it, by its overflow policy. Receiving needs no runtime: a
//! blocking receive parks the thread, an async one registers the task's
//! waker.
//!
//! Across reconnects the user sees a contiguous stream or an explicit
//! `Lagged`, never a silent gap and never a version twice: the connection
//! resumes every watch by variable id from the versions it has, within the
//! same incarnation of the session (a session deleted and created again
//! meanwhile ends the watch with `SessionClosed`), applies what comes back
//! idempotently, and hands a group to watches only whole.

use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;
use tokio::sync::mpsc;

use super::client::Inner;
use super::mux::{Attached, Command, ConnCounters};
use super::parker::{self, Parker};
use super::protocol::WatchId;
use super::upstream::{Recv, Shared};
use crate::sync::Mutex;
use crate::watch::{Filter, Screen};
use crate::{RecvTimeoutError, TryRecvError, WatchEvent};

/// Counters of a [`RemoteWatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteWatchStats {
    /// Streams re-opened for this watch after a failure.
    pub reconnects: u64,
    /// `Lagged` markers delivered (the server-side watch fell behind, a
    /// resume found versions the client never had, or this watch's own
    /// buffer overflowed and it caught up).
    pub resyncs: u64,
    /// Times this watch's buffer overflowed (it caught up on its own side).
    pub overflows: u64,
    /// Heartbeats received from the server on the connection (its own and
    /// echoes).
    pub heartbeats: u64,
    /// Events the filter rejected.
    pub events_filtered: u64,
    /// Filter calls that panicked (their events were delivered).
    pub filter_panics: u64,
}

/// A watch of a remote store: the same [`WatchEvent`]s as a local
/// [`Watch`](crate::Watch), delivered across reconnects with nothing missed
/// silently and nothing twice, and in groups that are each a consistent cut.
/// Blocking ([`recv`](Self::recv), an [`Iterator`]) or async
/// ([`recv_async`](Self::recv_async), [`into_stream`](Self::into_stream)).
///
/// One exception to exactness: a variable deleted while the watch was
/// disconnected, if more than 4 096 other deletions happened in its session
/// since, is reported as `Deleted` without the versions it went through
/// before (the session no longer remembers them).
///
/// It ends after `SessionClosed`, after the `Deleted` of its last variable,
/// with [`EventKind::Disconnected`](crate::EventKind::Disconnected) once the retry policy is spent, or (with
/// `OverflowPolicy::Close`) after the `Lagged` markers of its first
/// overflow. Dropping it cancels it on the server (unless another identical
/// watch of the client still follows the same subscription).
#[must_use = "a watch is cancelled as soon as it is dropped"]
pub struct RemoteWatch {
    id: WatchId,
    shared: Arc<Mutex<Shared>>,
    down: usize,
    commands: mpsc::UnboundedSender<Command>,
    counters: Arc<ConnCounters>,
    /// The user's filter, run here, on the user's side, and its counts.
    screen: Screen,
    parker: Parker,
    /// The client lives as long as its watches.
    _client: Arc<Inner>,
}

impl fmt::Debug for RemoteWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteWatch")
            .field("id", &self.id)
            .field("stats", &self.stats())
            .finish()
    }
}

impl RemoteWatch {
    pub(crate) fn new(
        attached: Attached,
        commands: mpsc::UnboundedSender<Command>,
        counters: Arc<ConnCounters>,
        filter: Option<Filter>,
        client: Arc<Inner>,
    ) -> RemoteWatch {
        RemoteWatch {
            id: attached.id,
            shared: attached.shared,
            down: attached.down,
            commands,
            counters,
            screen: Screen::new(filter),
            parker: Parker::default(),
            _client: client,
        }
    }

    /// Polls for the next event: `Ready(None)` once the watch has ended.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<WatchEvent>> {
        loop {
            let got = self.shared.lock().recv(self.down, cx.waker());
            match got {
                Recv::Event(e) => {
                    if let Some(e) = self.screen.took(e) {
                        return Poll::Ready(Some(e));
                    }
                }
                Recv::Empty => return Poll::Pending,
                Recv::Ended => return Poll::Ready(None),
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
    /// [`RemoteWatchStream::into_inner`].
    pub fn into_stream(self) -> RemoteWatchStream {
        RemoteWatchStream(self)
    }

    /// Its counters.
    pub fn stats(&self) -> RemoteWatchStats {
        let shared = self.shared.lock();
        RemoteWatchStats {
            reconnects: shared.reconnects,
            resyncs: self.screen.resyncs,
            overflows: shared.overflows(self.down),
            heartbeats: self.counters.heartbeats.load(Ordering::Relaxed),
            events_filtered: self.screen.filtered,
            filter_panics: self.screen.panics,
        }
    }
}

impl Drop for RemoteWatch {
    fn drop(&mut self) {
        // The connection task detaches it and cancels the watch on the
        // server once no identical watch is left.
        let _ = self.commands.send(Command::Release {
            id: self.id,
            down: self.down,
        });
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
