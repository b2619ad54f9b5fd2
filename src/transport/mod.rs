//! Exposing any store to other processes, and the remote client.
//!
//! The layers, from the store outwards:
//!
//! * [`Service`] (feature `transport`): a store — any
//!   [`AsyncVarStore`](crate::AsyncVarStore): the in-process one, the etcd
//!   store — served to remote clients, independent of how bytes move. It
//!   answers the operation table's [`Request`]s ([`Service::call`], limits
//!   checked once for every store) and runs a
//!   connection's watch stream ([`Service::watch_stream`]): every watch of
//!   the connection is created, acknowledged, fed and cancelled on that one
//!   stream ([`ClientMessage`]s in, [`ServerMessage`]s out, each tagged with
//!   a [`WatchId`]), with atomic registration and snapshot, resume,
//!   `sync_complete`, batching, heartbeats, acks and limits per watch.
//! * [`Transport`]: how a client reaches a service: one unary call per
//!   request and one multiplexed stream per connection. It moves messages;
//!   it does not interpret them. Two implementations: [`MemoryTransport`]
//!   (in the same process, no socket: for tests and for embedding) and,
//!   with feature `grpc`, [`grpc::GrpcTransport`] over
//!   `proto/varwatch/v1/varwatch.proto` (served by [`grpc::GrpcService`]).
//! * [`RemoteStore`] and [`AsyncRemoteStore`]: the store API
//!   ([`VarStore`](crate::VarStore), [`AsyncVarStore`](crate::AsyncVarStore))
//!   over any transport, blocking or async, with [`Watch`](crate::Watch)es
//!   that reconnect and resume by themselves (heartbeats, silence timeout,
//!   backoff with jitter, idempotent apply) and deliver the same
//!   [`WatchEvent`]s as a local one. Identical subscriptions of one client
//!   share one watch on the wire; each watch has its own bounded queue, so
//!   one that is not read never holds up the others.
//!
//! A third transport implements [`Transport`] on the client side and feeds
//! [`Service::call`] and [`Service::watch_stream`] on the server side; the
//! contract suite in `tests/contract.rs` then checks it like the other two.
//!
//! | file | what it holds |
//! |---|---|
//! | `protocol.rs` | the watch stream's messages (the operation table is `crate::ops`) |
//! | `service.rs` | `Service`: limits, the table, and a connection's watch stream |
//! | `server_stream.rs` | one watch stream's task on the server: creates (each opened on a task of its own), cancels, acks, progress requests, heartbeats; messages packed within a budget, shared updates |
//! | `server_watch.rs` | one remote watch opened on any store: options, resume, the first group |
//! | `ready.rs`, `silence.rs`, `limits.rs` | which watches to poll; silence deadlines; sizes |
//! | `client.rs`, `config.rs` | what a client's views share; its settings |
//! | `remote.rs` | `RemoteStore`, `AsyncRemoteStore`: the store API over a transport |
//! | `mux.rs` | the client's watch stream: one task, every watch, reconnects, resumes, fences of joining watches |
//! | `remote_watch.rs` | a remote watch: a fed `Watch` over its upstream's feed, released on drop |
//! | `memory.rs`, `grpc/` | the transports |
//!
//! [`WatchEvent`]: crate::WatchEvent

// Without the `grpc` feature some of what the text above links to is
// not built; the links resolve in the documentation built with it (as on
// docs.rs, see Cargo.toml).
#![cfg_attr(not(feature = "grpc"), allow(rustdoc::broken_intra_doc_links))]

#[cfg(feature = "transport")]
mod client;
#[cfg(feature = "transport")]
mod config;
#[cfg(feature = "grpc")]
pub mod grpc;
#[cfg(feature = "transport")]
mod limits;
#[cfg(feature = "transport")]
mod memory;
#[cfg(feature = "transport")]
mod mux;
#[cfg(feature = "transport")]
mod protocol;
#[cfg(feature = "transport")]
mod ready;
#[cfg(feature = "transport")]
mod remote;
#[cfg(feature = "transport")]
mod remote_watch;
#[cfg(feature = "transport")]
mod server_stream;
#[cfg(feature = "transport")]
mod server_watch;
#[cfg(feature = "transport")]
mod service;
#[cfg(feature = "transport")]
mod silence;

#[cfg(feature = "transport")]
pub use config::{MAX_BUFFER, MAX_DURATION, RemoteConfig};
#[cfg(feature = "transport")]
pub use memory::MemoryTransport;
#[cfg(feature = "transport")]
pub use protocol::{
    ClientMessage, Request, Response, ServerMessage, Subscribe, SyncComplete, WatchEnd, WatchId, WatchTarget,
    WatchUpdate,
};
#[cfg(feature = "transport")]
pub use remote::{AsyncRemoteStore, RemoteStore};
#[cfg(feature = "transport")]
pub use service::{ServerStream, Service};

#[cfg(feature = "transport")]
pub use transport_trait::{BoxFuture, ClientMessages, ServerMessages, Transport};

#[cfg(feature = "transport")]
mod transport_trait {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures_core::Stream;
    use tokio::sync::mpsc;

    use super::protocol::{ClientMessage, Request, Response, ServerMessage};
    use crate::Result;

    /// A boxed, sendable future (what [`Transport`] methods return).
    pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

    /// The server's side of a connection's watch stream, as a client's
    /// transport delivers it. An `Err` item or the end of the stream means
    /// the stream is over (the client then reconnects and resumes every
    /// watch).
    pub type ServerMessages = Pin<Box<dyn Stream<Item = Result<ServerMessage>> + Send + 'static>>;

    /// The client's side of a connection's watch stream: creates, cancels,
    /// acks and heartbeats, in order. It ends when the client has no watch
    /// left or abandons the stream; the transport then closes its side.
    #[derive(Debug)]
    pub struct ClientMessages(pub(crate) mpsc::UnboundedReceiver<ClientMessage>);

    impl Stream for ClientMessages {
        type Item = ClientMessage;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ClientMessage>> {
            self.0.poll_recv(cx)
        }
    }

    /// How a remote client reaches a [`Service`](super::Service): one call
    /// per request, and one bidirectional stream that carries every watch
    /// of the connection.
    ///
    /// Implementations move messages and report failures; they never
    /// interpret requests, retry, or reorder. Errors the service returned
    /// come back as they were (or, over a network, as
    /// [`Error::Remote`](crate::Error::Remote) with the same
    /// [`ErrorCode`](crate::ErrorCode)); a failure to reach the service is
    /// [`Error::Transport`](crate::Error::Transport). Futures run on the
    /// [`RemoteStore`](super::RemoteStore)'s tokio runtime.
    pub trait Transport: Send + Sync + 'static {
        /// Sends one request and returns the service's answer.
        fn call(&self, request: Request) -> BoxFuture<Result<Response>>;

        /// Opens the connection's watch stream: forwards `outbound` until it
        /// ends, and returns the server's messages. Resolves once the service
        /// has accepted or refused the stream (not each watch: a watch that
        /// fails ends on its own, with a [`WatchUpdate`](super::WatchUpdate)).
        fn watch_stream(&self, outbound: ClientMessages) -> BoxFuture<Result<ServerMessages>>;
    }
}
