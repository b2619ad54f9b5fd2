//! Exposing a store to other processes, and code that works on either kind
//! of store.
//!
//! * [`VarStore`]: the operations the in-process
//!   [`SessionStore`](crate::SessionStore) and a remote store share
//!   (sessions, variables, watches yielding the same
//!   [`WatchEvent`](crate::WatchEvent)s), so that code can take either.
//! * [`grpc`] (feature `grpc`): a gRPC service over a store
//!   ([`grpc::GrpcService`]: every operation as a unary call, and remote
//!   watches as a bidirectional stream with snapshot, resume, heartbeats and
//!   batching), and its client ([`grpc::RemoteStore`], whose watches
//!   reconnect and resume by themselves). The protocol is
//!   `proto/varwatch/v1/varwatch.proto`.
//!
//! Not here yet: a `Transport` trait below the service (requests and
//! responses independent of protobuf) with an in-memory transport.

#[cfg(feature = "grpc")]
pub mod grpc;
mod store_api;

pub use store_api::VarStore;
