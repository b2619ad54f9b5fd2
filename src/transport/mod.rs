//! Exposing a store to other processes.
//!
//! * [`grpc`] (feature `grpc`): a gRPC service over a [`SessionStore`]
//!   (tonic + prost; the protocol is `proto/varwatch/v1/varwatch.proto`).
//!   It serves every session and variable operation as a unary call, with
//!   errors as gRPC statuses a client can act on.
//!
//! Not here yet: remote watches (a bidirectional stream with heartbeats and
//! resume), the `Transport` trait and in-memory transport, and a `RemoteStore`
//! client with the local watch API.
//!
//! [`SessionStore`]: crate::SessionStore

#[cfg(feature = "grpc")]
pub mod grpc;
mod store_api;

pub use store_api::VarStore;
