//! The rules varwatch keeps, in full, and how it keeps them (documentation
//! only: there is no code in this module).
//!
//! * [`rules`]: what every operation promises: consistent cuts, batches,
//!   identifiers, bounds, TTL and watches, and what dropping a watch frees.

pub mod rules {
    //! # The rules
    //!
    //! ## Every state a watcher holds existed (consistent cuts)
    //!
    //! A *cut* is the state of several variables as of one session revision:
    //! no write is half in it. These hand out cuts:
    //!
    //! | read | the cut's revision |
    //! |---|---|
    //! | a watch's initial events (`include_initial`) | the subscription's, on every event |
    //! | every group of events a watch delivers (below) | [`WatchEvent::revision`](crate::WatchEvent::revision), the same on every event of the group |
    //! | [`SessionStore::get_many`](crate::SessionStore::get_many) | [`GetMany::revision`](crate::GetMany::revision) |
    //! | [`SessionStore::snapshot`](crate::SessionStore::snapshot) | returned with the variables |
    //! | [`SessionStore::list_variables`](crate::SessionStore::list_variables), [`SessionStore::export`](crate::SessionStore::export) | not returned; each variable's own revision is at most it |
    //!
    //! Separate calls (`get`, `value`, a [`VarReader`](crate::VarReader)) read
    //! one variable each, at its latest state: two of them are not a cut.
    //!
    //! **What a watch delivers.** Events come in *groups*: all events of a
    //! group carry the same revision, groups come in increasing revision
    //! order, and once a group has been received whole, the state the
    //! watcher holds — the last version it has of each variable it follows,
    //! and for a whole-session watch the set of variables — is the session's
    //! state at that revision. A group is the initial snapshot, one write
    //! (a single update, an atomic batch, an import, a deletion), a resync
    //! after an overflow (`Lagged` markers and the current states), or one
    //! coalesced or throttled delivery (the latest states). Revisions a
    //! watch delivers never go backwards, and a batch is never split.
    //!
    //! A filter hides the changes it rejects, by the user's choice: the
    //! watcher then holds, for each variable, the last state the filter let
    //! through.
    //!
    //! **Remote watches** keep the same rule across the wire and across
    //! reconnections: a server message that ends inside a group says so, the
    //! client hands a group to its user only whole (and drops half a group
    //! if the connection breaks, to resume it), and a resume is one group at
    //! the server's cut.
    //!
    //! **How.** Every change of a session is one *write section* of a
    //! sequence counter, under the session's write lock. A read of several
    //! variables takes no lock: it keeps its result only if no write section
    //! overlapped it, and after a few overlapped tries it reads under the
    //! write lock instead (briefly: one pass over what it reads). The event
    //! log never splits a write's records, and a watch resyncs only between
    //! groups. The protocol has a loom model, and `tests/stress.rs` checks
    //! every watch's history against the writers' revisions.
    //!
    //! ## Batches
    //!
    //! * [`update_atomic`](crate::SessionStore::update_atomic): every item is
    //!   checked (type, constraints, existence, expected version, and no
    //!   variable named twice); if any fails, [`Error::BatchRejected`]
    //!   lists **every** failing item with its own error, in request order,
    //!   and nothing changes. Otherwise all items apply under one revision
    //!   and reach watchers as one group. Items that set the value a
    //!   variable already has keep its version; a batch of only such items
    //!   (or none) makes no revision.
    //! * [`update_best_effort`](crate::SessionStore::update_best_effort):
    //!   items apply **in order**, each its own write (its own revision),
    //!   each checked against the state the items before it left. Two items
    //!   expecting version 0 of one variable give
    //!   `[Ok(1), Err(VersionConflict { expected: 0, current: 1 })]`.
    //! * [`import`](crate::SessionStore::import): every definition is checked
    //!   (name, constraints, value, names new and distinct); all register
    //!   under one revision, or none, with every failure listed by name in
    //!   one [`Error::BatchRejected`].
    //!
    //! The same holds over every transport: the server runs the same code.
    //!
    //! ## Identifiers
    //!
    //! A variable has an id, given by the store, of the form `var_<n>`, and a
    //! name, given by its user. Wherever an identifier is taken, a string of
    //! the form `var_` followed by digits is looked up among ids only, and
    //! any other string among names only; names of the id form are refused
    //! at registration ([`Error::InvalidName`]). So no string can mean two
    //! variables, locally, over every transport and in the wire protocol.
    //! Session ids and names are 1 to 256 bytes without control characters.
    //!
    //! ## Bounds
    //!
    //! Every size, count and duration a caller passes is refused with a
    //! clear error or kept in a range that bounds memory and CPU:
    //!
    //! | what | bound |
    //! |---|---|
    //! | error messages | at most [`QUOTE_CHARS`](crate::QUOTE_CHARS) characters of each string quoted and [`LIST_ITEMS`](crate::LIST_ITEMS) items of each list shown; the error's fields keep the input |
    //! | session ids, variable names | 1 to 256 bytes, else [`Error::InvalidName`] |
    //! | `list_variables` patterns | at most [`MAX_PATTERN_BYTES`](crate::MAX_PATTERN_BYTES), else [`Error::InvalidPattern`]; matching costs at most pattern × name per variable |
    //! | watch capacity | 1 to [`StoreConfig::max_event_log`](crate::StoreConfig::max_event_log) (at most 2^30); 0 is [`Error::InvalidOption`] |
    //! | event log memory | allocated as records arrive, at most the largest capacity among live lossless watches, given back when that watch goes; none for a session without one |
    //! | throttle interval | 0 is refused; above [`MAX_THROTTLE`](crate::MAX_THROTTLE) (a year) it is shortened |
    //! | timeouts and deadlines | `Duration::MAX` means "no deadline"; nothing overflows |
    //! | TTL sweeper interval | at least [`MIN_SWEEP_INTERVAL`](crate::MIN_SWEEP_INTERVAL) |
    //! | remote client settings | kept in range when the client is made (see `RemoteConfig`): durations from 1 ms, reconnection backoff at least 1 ms, buffers of 1 to 2^20 events |
    //! | served requests | values, items per batch, multi-get, watch or resume, open watches, message sizes: each has a limit (`Service`), `LimitExceeded` past it |
    //!
    //! A value, a metadata map or a list of identifiers a caller passes in
    //! process is the caller's own memory: it is held (shared, not copied per
    //! watcher), never multiplied.
    //!
    //! ## TTL and watches
    //!
    //! A session with a TTL expires once it has been idle longer than it.
    //! Every operation on it is an access; **an open watch keeps its session
    //! alive** (it is an access that lasts), whether local or remote (a
    //! remote watch's server-side watch is kept open by its heartbeats), and
    //! the end of its last watch counts as an access. Deleting or expiring a
    //! session, or dropping the store, ends its watches with
    //! `SessionClosed`.
    //!
    //! ## What dropping a watch frees
    //!
    //! Dropping a [`Watch`](crate::Watch) (or the thread or task owning it
    //! ending) removes at once, before `drop` returns: its registration, its
    //! entries in the waiter lists, the waker it holds (so the task it would
    //! have woken is no longer referenced), a throttle's timer entry, and its
    //! share of the event log. Dropping a remote watch detaches it from its
    //! connection's watch stream; when it was the last watch of its
    //! subscription, the client cancels it and the server frees its
    //! server-side watch.
    //!
    //! [`Error::BatchRejected`]: crate::Error::BatchRejected
    //! [`Error::InvalidName`]: crate::Error::InvalidName
    //! [`Error::InvalidPattern`]: crate::Error::InvalidPattern
    //! [`Error::InvalidOption`]: crate::Error::InvalidOption
}
