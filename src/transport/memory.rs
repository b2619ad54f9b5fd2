//! [`MemoryTransport`]: a client and a [`Service`] in the same process, with
//! no socket and no encoding: requests, events and errors are handed over as
//! they are.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use tokio::sync::watch;

use super::protocol::{Request, Response, ServerMessage};
use super::service::{ServerStream, Service};
use super::transport_trait::{BoxFuture, ClientMessages, ServerMessages, Transport};
use crate::{AsyncVarStore, Error, Result, SessionStore};

/// A [`Transport`] to a [`Service`] in the same process.
///
/// Useful to embed a store behind the remote API without a socket, and to
/// test code (or a remote watch's recovery) against
/// a connection that can be cut at will with
/// [`set_reachable`](Self::set_reachable).
///
/// ```
/// use varwatch::transport::{MemoryTransport, RemoteConfig, RemoteStore, Service};
/// use varwatch::VarStore;
/// use varwatch::{SessionOptions, SessionStore, VarDef, VarType, WatchOptions};
///
/// let store = SessionStore::new();
/// let remote = RemoteStore::new(MemoryTransport::new(Service::new(store.clone())), RemoteConfig::new())?;
/// remote.create_session("s", SessionOptions::new())?;
/// remote.register("s", VarDef::new("x", VarType::Integer, 0))?;
/// let mut watch = remote.watch("s", ["x"], WatchOptions::new())?;
/// store.update("s", "x", 1)?;
/// assert_eq!(watch.recv().unwrap().version(), 0); // initial
/// assert_eq!(watch.recv().unwrap().version(), 1);
/// # Ok::<(), varwatch::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct MemoryTransport<S = SessionStore> {
    service: Service<S>,
    /// Whether the service can be reached, and how many cuts there have
    /// been; every open stream watches it and ends at the first cut after
    /// it was opened (even one already healed).
    state: Arc<watch::Sender<(bool, u64)>>,
}

impl<S: AsyncVarStore + Clone + Send + Sync + 'static> MemoryTransport<S> {
    /// A transport to `service`.
    pub fn new(service: Service<S>) -> MemoryTransport<S> {
        MemoryTransport {
            service,
            state: Arc::new(watch::channel((true, 0)).0),
        }
    }

    /// The service this transport reaches.
    pub fn service(&self) -> &Service<S> {
        &self.service
    }

    /// Cuts the "connection" (`false`): open watch streams end with an
    /// error and calls fail with [`Error::Transport`] until it is restored
    /// (`true`). For fault tests.
    pub fn set_reachable(&self, reachable: bool) {
        self.state.send_modify(|(up, cuts)| {
            if *up && !reachable {
                *cuts += 1;
            }
            *up = reachable;
        });
    }

    fn check(&self) -> Result<()> {
        if self.state.borrow().0 {
            Ok(())
        } else {
            Err(unreachable())
        }
    }
}

/// The transport is cut: nothing reaches the service (a refused
/// connection, so that a write is known not to have left).
fn unreachable() -> Error {
    Error::Transport {
        addr: "memory".into(),
        reason: "the in-memory service was made unreachable".into(),
        source: Some(crate::ErrorSource::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        ))),
    }
}

impl<S: AsyncVarStore + Clone + Send + Sync + 'static> Transport for MemoryTransport<S> {
    fn call(&self, request: Request) -> BoxFuture<Result<Response>> {
        let checked = self.check();
        let service = self.service.clone();
        Box::pin(async move {
            checked?;
            service.call(request).await
        })
    }

    fn watch_stream(&self, outbound: ClientMessages) -> BoxFuture<Result<ServerMessages>> {
        let opened = self.check().and_then(|()| self.service.watch_stream(outbound));
        let mut rx = self.state.subscribe();
        let cuts_before = rx.borrow().1;
        let result = opened.map(|inner| -> ServerMessages {
            let cut = async move {
                if rx.wait_for(|&(_, cuts)| cuts != cuts_before).await.is_err() {
                    std::future::pending::<()>().await; // the transport is gone
                }
            };
            Box::pin(Cuttable {
                inner: Some(inner),
                cut: Box::pin(cut),
            })
        });
        Box::pin(std::future::ready(result))
    }
}

/// A server stream that ends with an error once the transport is cut.
struct Cuttable {
    /// Dropped when cut, which ends the server's side too.
    inner: Option<ServerStream>,
    cut: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Stream for Cuttable {
    type Item = Result<ServerMessage>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.cut.as_mut().poll(cx).is_ready() && self.inner.take().is_some() {
            return Poll::Ready(Some(Err(unreachable())));
        }
        match self.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_next(cx),
            None => Poll::Ready(None),
        }
    }
}
