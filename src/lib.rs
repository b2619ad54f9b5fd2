//! # varwatch
//!
//! Live, versioned shared state for Rust programs: a [`SessionStore`] holds
//! sessions of typed, versioned variables, and any number of [`Watch`]es
//! follow them, on threads or async tasks.
//!
//! The promise: **a watcher sees every state of every variable it watches,
//! exactly once, in order, starting from a consistent snapshot — or it is
//! told, precisely, where it was moved past.**
//!
//! * **Atomic subscribe.** A watch registers and reads its initial values
//!   under one lock of its session, so no write falls between its snapshot
//!   and its stream: with initial values on, the first event per variable is
//!   its state at version *s* and the next are *s+1, s+2, …*. The snapshot of
//!   several variables is one consistent cut (one session revision).
//! * **Order and cuts.** Per variable, versions strictly increase. Events
//!   come in groups of one revision each (a write, an atomic batch, a
//!   resync), and every group received whole leaves the watcher holding a
//!   state the session really had: **every multi-variable state handed out
//!   existed**. `get_many`, `snapshot`, `list_variables` and `export` are
//!   cuts too ([`docs::rules`]).
//! * **Slow watchers cost writers nothing.** A write appends one record to its
//!   session's bounded event log, whatever the number of watchers. A watch
//!   that falls too far behind gets an [`EventKind::Lagged`] marker with the
//!   exact versions it missed, then the current state (one cut), and is
//!   contiguous again ([`OverflowPolicy`]); or it can coalesce to the latest
//!   state.
//! * **No leaks.** Dropping a watch unregisters it and releases its waker at
//!   once; deleting a variable or a session ends the affected watches with an
//!   explicit event. An open watch keeps its session alive.
//! * **User code never runs under a store lock.** Filters run on the
//!   watcher's side; a panicking filter is contained.
//! * **Writes are checked**: types and constraints, expected versions, unique
//!   names, batches that report every failure (atomic) or apply in order
//!   (best effort). An error changes nothing. No identifier can mean two
//!   variables.
//! * **Bounded under hostile input**: every size, count and duration is
//!   refused with a clear error or kept in range, and messages quote input
//!   cut short.
//!
//! The full rules, and how they are kept, are in [`docs::rules`].
//!
//! # Example: the stale-read race, solved
//!
//! A watcher subscribes with initial values while another thread writes 2
//! then 3 to a variable holding 1. Where its snapshot falls depends on the
//! interleaving — at 1, 2 or 3 — but from there on it sees every later
//! value once: `[1, 2, 3]`, `[2, 3]` or `[3]`, the first marked initial;
//! never `[1, 3]` (a missed 2) nor `[2, 2, 3]` (a duplicated one).
//!
//! ```
//! use std::thread;
//! use varwatch::{EventKind, SessionOptions, SessionStore, VarDef, VarType, WatchOptions};
//!
//! let store = SessionStore::new();
//! store.create_session("s1", SessionOptions::new())?;
//! store.register("s1", VarDef::new("x", VarType::Integer, 1))?;
//!
//! let writer = {
//!     let store = store.clone();
//!     thread::spawn(move || {
//!         store.update("s1", "x", 2).unwrap();
//!         store.update("s1", "x", 3).unwrap();
//!     })
//! };
//! let mut watch = store.watch("s1", ["x"], WatchOptions::new())?;
//! writer.join().unwrap();
//!
//! let first = watch.recv().unwrap();
//! assert_eq!(first.kind(), EventKind::Initial);
//! let mut seen = vec![first.value().unwrap().as_i64().unwrap()];
//! while seen.last() != Some(&3) {
//!     let event = watch.recv().unwrap();
//!     assert_eq!(event.kind(), EventKind::Changed);
//!     seen.push(event.value().unwrap().as_i64().unwrap());
//! }
//! // The snapshot may have been taken at 1, 2 or 3; from there on, nothing
//! // is missed and nothing repeats.
//! assert!(seen == [1, 2, 3] || seen == [2, 3] || seen == [3]);
//! # Ok::<(), varwatch::Error>(())
//! ```
//!
//! # Receiving
//!
//! One obvious way per world. Blocking: [`Watch::recv`],
//! [`Watch::recv_timeout`], [`Watch::try_recv`], and a `Watch` is an
//! [`Iterator`]. Async, on any runtime (the library itself depends on none):
//! [`Watch::recv_async`], [`Watch::poll_recv`], or
//! [`Watch::into_stream`] for a [`futures_core::Stream`]. (A `Watch` is not
//! itself a `Stream`, so `watch.next()` is never ambiguous.)
//!
//! # Where things are
//!
//! | module | concept |
//! |---|---|
//! | [`VarStore`], [`AsyncVarStore`], [`ops`] | *the* store API, the same on every store (local, remote, etcd), over one operation table |
//! | [`SessionStore`] | the in-process store: sessions, variables, writes, TTL |
//! | [`Value`], [`VarType`], [`Constraints`] | values and their validation rules |
//! | [`Watch`], [`WatchOptions`], [`WatchEvent`], [`VarReader::watch`] | watching, one handle for every store; the code is one concept per file under `src/watch/` (the front end, blocking and async receive, the catch-up rule, resume, the local source split by stage, the fed source of remote and etcd watches), with the wake-up protocol in `src/wakeup.rs` — the map is in [`docs::internal`] |
//! | [`docs`] | the rules in full ([`docs::rules`]), how it is built ([`docs::internal`]: locks, publication, cuts, wake-ups) and what it costs ([`docs::performance`]) |
//! | [`Error`], [`ErrorCode`] | the one error type, and its kind (the same locally and remotely) |
//! | [`transport`] | serving any store to other processes, and the remote client (features `transport`, `grpc`) |
//! | `etcd` (feature `etcd`) | `EtcdStore`: the same API and guarantees on an etcd v3 cluster, shared by many processes and outliving them |
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod docs;
#[cfg(all(feature = "durable", not(loom)))]
pub mod durable;
mod error;
#[cfg(feature = "etcd")]
pub mod etcd;
mod event_log;
mod ident;
mod meta;
mod observer;
pub mod ops;
mod publish;
mod record;
mod seqcount;
mod session;
mod store;
mod store_table;
mod sync;
mod timer;
mod trace;
pub mod transport;
mod value;
mod var_store;
mod wakeup;
mod watch;

#[cfg(all(test, loom))]
mod loom;

/// The catch-up rule for the Python package's tests (they replay
/// `tests/vectors/catch_up.json` through the binding, which runs this
/// crate's code). Not part of the API.
#[doc(hidden)]
pub mod testing {
    pub use crate::watch::catch_up::vector as catch_up;
}

/// The README's example, compiled and run as a doc test so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use error::{Error, ErrorCode, ErrorSource, LIST_ITEMS, QUOTE_CHARS, Result};
pub use session::{GetMany, Metadata, SessionInfo, SessionOptions, UpdateOptions, VarDef, VarList, Variable};
pub use store::{
    BatchUpdate, MAX_PATTERN_BYTES, MIN_SWEEP_INTERVAL, SessionStore, StoreConfig, StoreStats, VarReader,
    VarWriter,
};
pub use value::{Constraints, Tensor, Value, VarType};
pub use var_store::{AsyncVarStore, VarStore};
pub use watch::{
    CloseReason, EventKind, MAX_THROTTLE, OverflowPolicy, RecvTimeoutError, TryRecvError, Watch, WatchEvent,
    WatchOptions, WatchStats, WatchStream, WatcherInfo,
};
