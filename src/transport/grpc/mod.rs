//! The gRPC transport (feature `grpc`): [`GrpcService`] serves a
//! [`Service`](super::Service) over HTTP/2, [`GrpcTransport`] is the client
//! side that a [`RemoteStore`](super::RemoteStore) uses
//! ([`RemoteStore::connect`](super::RemoteStore::connect)).
//!
//! The protocol is `proto/varwatch/v1/varwatch.proto` (package
//! `varwatch.v1`, service `VarWatch`), compiled at build time by protox, so a
//! fresh machine needs no `protoc`. Every session and variable operation is a
//! unary call; a watch is a bidirectional stream. Errors are statuses a
//! client can act on: `NOT_FOUND`, `INVALID_ARGUMENT` (with the validation
//! message), `ALREADY_EXISTS`, `FAILED_PRECONDITION` (version conflict),
//! `RESOURCE_EXHAUSTED` (limits), `UNAUTHENTICATED`, `UNKNOWN` (a write whose
//! outcome is unknown) — each with the error's fields as the status's
//! detail (`varwatch.v1.ErrorDetail` in the standard `google.rpc.Status`),
//! so that a client gets back the very [`Error`](crate::Error) the store
//! raised, variant and fields (`errors.rs`).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use varwatch::SessionStore;
//! use varwatch::transport::grpc::GrpcService;
//!
//! let store = SessionStore::new();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:50551").await?;
//! GrpcService::new(store).serve(listener, std::future::pending()).await?;
//! # Ok(()) }
//! ```

mod auth;
mod client;
mod conn;
pub(crate) mod convert;
mod errors;
mod server;

/// The code generated from the `.proto` file: messages, the client
/// (`var_watch_client::VarWatchClient`) and the server trait.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("varwatch.v1");
}

pub use auth::{BearerToken, Gate};
pub use client::GrpcTransport;
pub use conn::ConnInfo;
pub use server::{GrpcService, ResponseStream};
#[cfg(feature = "tls")]
pub use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// The encoded descriptor set of `varwatch.proto` (what server reflection
/// serves).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/varwatch_descriptor.bin"));
