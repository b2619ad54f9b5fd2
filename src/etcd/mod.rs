//! [`EtcdStore`]: the same store on etcd v3, for host programs that
//! outgrow one process (feature `etcd`).
//!
//! A [`SessionStore`](crate::SessionStore) lives in one process: when it
//! restarts, its sessions are gone, and processes on several machines can
//! share sessions only by all talking to one of them. An `EtcdStore` keeps
//! sessions in etcd instead. Every process that connects to the same etcd
//! with the same [`prefix`](EtcdConfig::prefix) sees the same sessions, with
//! the same operations ([`VarStore`](crate::VarStore)), the same
//! errors and the same watch guarantees as a local store; sessions outlive
//! the processes (a TTL still expires them, on etcd's clock).
//!
//! ```no_run
//! use varwatch::etcd::{EtcdConfig, EtcdStore};
//! use varwatch::{SessionOptions, VarDef, VarStore, VarType, WatchOptions};
//!
//! // Process A.
//! let a = EtcdStore::connect(["http://127.0.0.1:2379"], EtcdConfig::new())?;
//! a.get_or_create_session("lab", SessionOptions::new())?;
//! a.register("lab", VarDef::new("t", VarType::Float, 20.0))?;
//! let mut watch = a.watch("lab", ["t"], WatchOptions::new())?;
//!
//! // Process B (here the same one, for brevity).
//! let b = EtcdStore::connect(["http://127.0.0.1:2379"], EtcdConfig::new())?;
//! b.update("lab", "t", 21.5)?;
//!
//! assert!(watch.next().unwrap().is_initial());
//! assert_eq!(watch.next().unwrap().value().and_then(|v| v.as_f64()), Some(21.5));
//! # Ok::<(), varwatch::Error>(())
//! ```
//!
//! # How the model maps onto etcd
//!
//! **Keys.** Under the prefix, one directory per session
//! (`s/<session>/`), holding the session's record (`meta`), one key per
//! variable (`v/<name>`) and an id index (`i/<id>`); a list of sessions
//! (`l/<session>`); the store's id counter (`ids`). Values are the gRPC
//! API's proto messages (`SessionInfo`, `Variable`, whose `Value` is how a
//! value is encoded everywhere in varwatch). Session ids and names are
//! escaped so that no session's directory is a prefix of another's.
//!
//! **Revisions and versions are stored, not borrowed.** etcd's revision is
//! global to the cluster: two sessions' writes share its sequence, so it
//! cannot be a session's revision ("its count of writes", the same in every
//! process, as [`SessionInfo::revision`](crate::SessionInfo) says). So the
//! session revision is kept in `meta` and moved by every write of the
//! session in the same transaction, and each variable's record holds its
//! own version and the session revision of its last change. (The
//! variable's version is also etcd's `version` of its key minus one, since
//! registration is its first put and ids are never reused;
//! `expected_version` is checked on the snapshot and sent as a `version`
//! compare too.) etcd's revisions stay internal: a watch's snapshot
//! revision and where it resumes.
//!
//! **Writes are serializable per session.** Every write puts `meta`, and
//! commits only if `meta`'s `mod_revision` is still the one it was checked
//! against (see `snapshot.rs`): the etcd equivalent of the local session's
//! write lock. An atomic batch or an import is one transaction: one etcd
//! revision, one session revision, delivered to watches as one group. A
//! best-effort batch is one transaction per item. Types, constraints and
//! names are checked by the same code as locally, with the same errors.
//! In the common case (no other client wrote the session since this one
//! last did) a write is one round trip.
//!
//! **Watches** read the snapshot at etcd revision R and watch the session's
//! directory from R + 1; they resume after a failure from the last etcd
//! revision delivered, and report history etcd compacted away as `Lagged`
//! then the current state (see `watch.rs`). A client's watches of one
//! session share one etcd watch, and each write is decoded once for all of
//! them. A watch opened with a resume (a remote client reconnecting to a
//! server over etcd, perhaps another replica) gets what it is missing by
//! the rule every store uses (`Lagged` + state, `Deleted`), with one
//! difference: etcd keeps no record of deletions, so a variable deleted
//! while the watcher was away is reported deleted right after the version
//! it had — without a `Lagged` range for versions it may have had between
//! (the local store remembers recent deletions and is exact).
//!
//! **Reads larger than a message** are made in pages at one etcd revision
//! (`cut.rs`): a session holds what its writes were allowed to build,
//! whatever one message can carry. Watches ask etcd to fragment large
//! responses and join the fragments before decoding (`wire.rs`), so a
//! watch far behind catches up whatever the size of the history; one
//! that cannot (a value larger than
//! [`EtcdConfig::max_message_bytes`]) gets `Lagged`, then the state.
//!
//! **Several members.** Given several endpoints, the store talks to one
//! member at a time, with a deadline per attempt
//! ([`EtcdConfig::attempt_timeout`]); a member that does not answer (frozen,
//! partitioned, down) is left for the next, and the request is sent again
//! there — reads always, writes too, because each write is a transaction
//! that commits at most once however often it is sent (its `meta` compare)
//! and marks `meta` with a write id, so a client whose answer was lost
//! recognises its own commit in the answer of the next copy. A write whose
//! outcome still cannot be learned by the call deadline fails with
//! [`Error::OutcomeUnknown`](crate::Error::OutcomeUnknown); one that never
//! left, with [`Error::Transport`](crate::Error::Transport). Watches check
//! their member for life (a progress request after an attempt timeout of
//! silence) and move on the same way, from where they were.
//!
//! **TTL** is an etcd lease on every key of the session, kept alive by
//! every access (at most one keep-alive per quarter TTL per client) and by
//! open watches. When it expires etcd deletes the session in one revision,
//! and every watch of it, in every process, ends with `SessionClosed`.
//!
//! # What differs from a local store
//!
//! * A lossless watch never overflows: a reader that falls behind leaves
//!   the etcd watch its client shares among its watches of the session and
//!   follows with one of its own, from where it was (etcd keeps the
//!   history meanwhile), so [`WatchOptions::on_overflow`] has nothing to
//!   do; compaction is the only loss, and it is reported as `Lagged`.
//!   Coalescing and throttled watches behave as locally.
//! * [`SessionInfo::watchers`](crate::SessionInfo) counts this client's
//!   watches only; `idle_for` has the lease's one-second resolution. A TTL
//!   is rounded up to whole seconds, and etcd raises very short ones to its
//!   minimum (about 2 s).
//! * etcd's history is etcd's to compact (`--auto-compaction-retention`):
//!   varwatch never compacts it, and its watches report compaction as above.
//! * Each operation is one or more etcd round trips, under
//!   [`EtcdConfig::call_timeout`]; a best-effort batch is one transaction
//!   per item, so a failure of the way to etcd part-way reports the items
//!   that committed, the unknown one, and the rest as not sent.
//!
//! [`WatchOptions::on_overflow`]: crate::WatchOptions::on_overflow

mod client;
mod codec;
mod config;
mod conn;
mod cut;
mod follow;
mod group;
mod hub;
mod keys;
mod snapshot;
mod store;
mod watch;
mod wire;

/// The etcd client crate this store is built on, at the version it uses:
/// for what varwatch does not do itself (compaction, maintenance, auth),
/// through [`EtcdStore::client`].
pub use etcd_client;

pub use config::{EtcdConfig, MAX_ETCD_BUFFER, MAX_ETCD_DURATION, MIN_MESSAGE_BYTES};
pub use store::{AsyncEtcdStore, EtcdStore};
