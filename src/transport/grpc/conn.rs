//! The server's connections: each accepted TCP stream is wrapped so that it
//! cannot hold a descriptor forever, and counted against the server's limit.
//!
//! * A connection that sends no byte within the *handshake timeout* is
//!   closed (its reads fail, and hyper drops it).
//! * A connection with no open watch stream that has started no call within
//!   the *idle timeout* is closed: one that sent only the HTTP/2 preface,
//!   or that went quiet. (HTTP/2 pings do not count as calls; a client's
//!   channel reconnects by itself on its next call.)
//! * Past the connection limit a connection is still accepted, but every
//!   call on it answers RESOURCE_EXHAUSTED, and it closes once idle (a TCP
//!   refusal would tell the client nothing).
//!
//! The state of each connection ([`ConnInfo`]) reaches every request through
//! tonic's connect info; the server's interceptor records calls in it, and
//! each watch stream holds it open for as long as it lives.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tonic::transport::server::{Connected, TcpIncoming};

use crate::trace;

/// The server's connection limits and timeouts.
#[derive(Clone, Debug)]
pub(crate) struct ConnLimits {
    pub(crate) max_connections: usize,
    pub(crate) handshake_timeout: Duration,
    pub(crate) idle_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: 10_000,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// What a connection's requests can see of it.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub(crate) state: Arc<ConnState>,
    /// The client's address.
    pub remote_addr: Option<SocketAddr>,
}

#[derive(Debug)]
pub(crate) struct ConnState {
    /// The connection's number, from 1 in the order accepted: its log
    /// lines, and those of its watch streams, carry it.
    pub(crate) id: u64,
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))] // for the log
    remote_addr: Option<SocketAddr>,
    /// Accepted past the connection limit: every call is refused.
    pub(crate) over_limit: bool,
    epoch: Instant,
    /// Milliseconds since `epoch` of the last call started.
    last_call: AtomicU64,
    /// Watch streams open on this connection.
    streams: AtomicUsize,
    /// Open connections of the server (this one included until dropped).
    open: Arc<AtomicUsize>,
}

impl Drop for ConnState {
    fn drop(&mut self) {
        let _open = self.open.fetch_sub(1, Ordering::Relaxed) - 1;
        trace::debug!(conn = self.id, remote = ?self.remote_addr, open = _open, lived_ms = self.now_ms(), "connection closed");
    }
}

impl ConnState {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A call started on this connection.
    pub(crate) fn call(&self) {
        self.last_call.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A watch stream opened; the guard closes it.
    pub(crate) fn stream(self: &Arc<Self>) -> StreamGuard {
        self.streams.fetch_add(1, Ordering::Relaxed);
        StreamGuard(self.clone())
    }

    /// Whether the connection has been idle for `timeout`.
    fn idle(&self, timeout: Duration) -> bool {
        let quiet = self
            .now_ms()
            .saturating_sub(self.last_call.load(Ordering::Relaxed));
        self.streams.load(Ordering::Relaxed) == 0 && Duration::from_millis(quiet) >= timeout
    }
}

/// Holds a connection's watch stream open (see [`ConnState::stream`]).
#[derive(Debug)]
pub(crate) struct StreamGuard(Arc<ConnState>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
        self.0.call(); // the end of a stream counts as activity
    }
}

/// An accepted connection, with its deadline.
pub(crate) struct Io {
    inner: TcpStream,
    info: ConnInfo,
    limits: ConnLimits,
    /// Whether any byte has arrived (the handshake has started).
    started: bool,
    check: Pin<Box<Sleep>>,
}

impl Io {
    /// How long the connection may go on: the idle timeout, or for one over
    /// the connection limit a second at most (time to hear why, then gone,
    /// whatever it does meanwhile).
    fn grace(&self) -> Duration {
        if self.info.state.over_limit {
            self.limits.idle_timeout.min(OVER_LIMIT_GRACE)
        } else {
            self.limits.idle_timeout
        }
    }

    /// Whether the connection must be closed now; re-arms the check.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        while self.check.as_mut().poll(cx).is_ready() {
            let state = &self.info.state;
            let grace = self.grace();
            let over = !self.started || state.over_limit || state.idle(grace);
            if over {
                trace::debug!(conn = state.id, remote = ?self.info.remote_addr, started = self.started, over_limit = state.over_limit, "closing a silent, idle or over-limit connection");
                return true;
            }
            self.check.as_mut().reset(Instant::now() + grace);
        }
        false
    }
}

impl AsyncRead for Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.expired(cx) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle past the server's timeout",
            )));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if !self.started && buf.filled().len() > before {
            self.started = true;
            // From now on, the idle rule (measured from the last call).
            let grace = self.grace();
            self.check.as_mut().reset(Instant::now() + grace);
        }
        r
    }
}

impl AsyncWrite for Io {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl Connected for Io {
    type ConnectInfo = ConnInfo;
    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

/// How long a connection over the limit is kept: time for its first calls
/// to hear RESOURCE_EXHAUSTED, not time to use.
const OVER_LIMIT_GRACE: Duration = Duration::from_secs(1);

/// Accepted connections, wrapped and counted.
pub(crate) struct Incoming {
    inner: TcpIncoming,
    limits: ConnLimits,
    open: Arc<AtomicUsize>,
    /// The number the next connection gets.
    next_id: u64,
}

impl Incoming {
    pub(crate) fn new(listener: tokio::net::TcpListener, limits: ConnLimits) -> Incoming {
        Incoming {
            inner: TcpIncoming::from(listener).with_nodelay(Some(true)),
            limits,
            open: Arc::default(),
            next_id: 1,
        }
    }
}

impl Stream for Incoming {
    type Item = io::Result<Io>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let next = match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(tcp))) => tcp,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        let open = this.open.fetch_add(1, Ordering::Relaxed) + 1;
        let over_limit = open > this.limits.max_connections;
        let remote_addr = next.peer_addr().ok();
        let id = this.next_id;
        this.next_id += 1;
        trace::debug!(conn = id, remote = ?remote_addr, open, over_limit, "connection opened");
        let state = Arc::new(ConnState {
            id,
            remote_addr,
            over_limit,
            epoch: Instant::now(),
            last_call: AtomicU64::new(0),
            streams: AtomicUsize::new(0),
            open: this.open.clone(),
        });
        Poll::Ready(Some(Ok(Io {
            inner: next,
            info: ConnInfo { state, remote_addr },
            limits: this.limits.clone(),
            started: false,
            check: Box::pin(tokio::time::sleep(if over_limit {
                this.limits.handshake_timeout.min(OVER_LIMIT_GRACE)
            } else {
                this.limits.handshake_timeout
            })),
        })))
    }
}
