//! The rules varwatch keeps, in full, how it keeps them, and what it costs
//! (documentation only: there is no code in this module).
//!
//! * [`rules`]: what every operation promises: consistent cuts, batches,
//!   identifiers, bounds, TTL and watches, and what dropping a watch frees.
//! * [`internal`]: how it is built: the locks and their order, how a
//!   variable's state is published, cuts, wake-ups, memory.
//! * [`performance`]: what each operation costs, the measurements behind
//!   the design's choices, and how to use the library fast.

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
    //! | [`VarStore::get_many`](crate::VarStore::get_many) | [`GetMany::revision`](crate::GetMany::revision) |
    //! | [`VarStore::list_variables`](crate::VarStore::list_variables) | [`VarList::revision`](crate::VarList::revision) |
    //! | [`VarStore::export`](crate::VarStore::export) | not returned; each variable's own revision is at most it |
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

pub mod internal {
    //! # How varwatch is built
    //!
    //! For contributors, and for users who want to know what a call does.
    //! Each protocol below lives behind one small type, with a loom model
    //! beside it (`src/loom/`, one file per protocol).
    //!
    //! ## The pieces
    //!
    //! | file | what it holds |
    //! |---|---|
    //! | `var_store.rs` | `VarStore` and `AsyncVarStore`, generated from one table: each operation once, as a request and how its answer is read |
    //! | `ops.rs` | the operation table: `Request` (one variant per operation), `Response`, `WatchTarget` |
    //! | `store.rs` | the session map (32 shards, each a `RwLock<HashMap>`), TTL sweeper, the in-process store's methods |
    //! | `store_table.rs` | the in-process store's `VarStore`: each request dispatched to its method |
    //! | `session/mod.rs` | one session: its locks, index, revision, event log, watches; the reads of it |
    //! | `session/write.rs` | the write path: every change (register, update, batch, delete, close) |
    //! | `meta.rs` | a variable's immutable facts (`VarMeta`), shared by all its records; `Metadata` |
    //! | `record.rs` | the record model: one state (`Record`), a variable's cell (`VarCell`), the writer's spare allocation |
    //! | `publish.rs` | `ArcCell`: where a variable's current record is published, and a reader's memory of it |
    //! | `seqcount.rs` | the sequence counter behind consistent cuts |
    //! | `event_log.rs` | the log lossless watches read from |
    //! | `observer.rs` | the watch registry, and what writers and the registry see of a watch (`WatchShared`) |
    //! | `wakeup.rs` | the wake-up protocol: `WaiterList`, a watch's `Signal`, and the `Published` / `Armed` tokens that carry its fence pair |
    //! | `watch/` | the one `Watch` of every store: the front end, the rules every source shares, and the sources (see the table below) |
    //! | `transport/` | the network layer (see its module docs) |
    //! | `etcd/` | `EtcdStore` (feature `etcd`), one concept per file (see below) |
    //!
    //! `etcd/`, the same store on etcd (the mapping is in the `etcd` module's
    //! documentation):
    //!
    //! | file | what it holds |
    //! |---|---|
    //! | `keys.rs` | the key layout under the prefix, and the escaping that keeps sessions apart |
    //! | `codec.rs` | what the keys hold (the proto's `SessionInfo` and `Variable`) and how it becomes the crate's types |
    //! | `conn.rs` | the etcd client, and how its failures become varwatch errors |
    //! | `snapshot.rs` | the write protocol: a `Snap` of a session, a plan, one transaction guarded by `meta`'s `mod_revision`; the client's cache of snapshots |
    //! | `client.rs` | what operations and watch tasks share: the runtime, the cache, id resolution, the write loop against etcd, lease keep-alive |
    //! | `store.rs` | `EtcdStore` and `AsyncEtcdStore`: the operation table as async functions of the connection, and the checks a local write makes |
    //! | `cut.rs` | a session read at one etcd revision: a watch's snapshot, a resync's re-read |
    //! | `watch.rs` | opening a watch: the atomic subscribe (read at R), its feed (`watch/feed.rs`), the hooks that end it |
    //! | `hub.rs` | one etcd watch per session per client, shared by its watches; a slow watch follows alone; reconnect, compaction |
    //! | `group.rs` | an etcd response decoded once into groups (one per write) |
    //! | `follow.rs` | one watch's state, and how a group or a re-read becomes its events |
    //!
    //! `watch/`: one front end over two sources (crossbeam-channel's flavors
    //! are the model), and the rules they share:
    //!
    //! | file | what it holds |
    //! |---|---|
    //! | `mod.rs` | the handle, `Watch`: one step of delivery over its source, the filter, ids, stats, close reason |
    //! | `blocking.rs` | blocking receive: spin, then park; the `Iterator` |
    //! | `stream.rs` | async receive: `poll_recv`, `recv_async`, `WatchStream` |
    //! | `filter.rs` | the user's filter, run on the watcher's side |
    //! | `catch_up.rs` | the catch-up rule: held versions + a cut → `Lagged` marker, state, skip count; one pure function, property-tested, replayed from `tests/vectors/catch_up.json` |
    //! | `resume.rs` | a resumed watch's first group, for every store |
    //! | `throttle.rs` | a throttled watch's clock |
    //! | `local/mod.rs` | the local source: subscribe (the atomic snapshot), one step, the wake-up arm, unregister |
    //! | `local/reader.rs` | lossless delivery: reading the event log, and resync after an overflow |
    //! | `local/cut.rs` | the consistent cut a resync or a coalesced delivery starts from |
    //! | `local/coalesce.rs` | coalescing and throttled delivery (one cut per receive, whatever the backlog) |
    //! | `feed.rs` | the fed source's state (features `transport`, `etcd`): the latest event of each variable, and per watch a bounded queue that lags and catches up on its user's side, or coalesces |
    //! | `fed.rs` | the fed source: one downstream of a feed, and the backend's hooks (a remote client's release, an etcd watch's hub) |
    //! | `event.rs`, `options.rs`, `stats.rs` | what a watch delivers, how it is set up, its counters |
    //!
    //! ## Locks, and the order they are taken in
    //!
    //! A thread that holds one of these may take one further down, never
    //! one above; user code (filters, wakers, a `with_value` closure) runs
    //! with none held.
    //!
    //! 1. **A shard of the session map** (`RwLock`): which sessions exist.
    //!    Read for a lookup, and held across a by-name `update` (so that it
    //!    need not take a reference to the session); written to create or
    //!    delete a session. Nothing takes it while holding a session's lock.
    //! 2. **A session's write lock** (`Mutex<WriteState>`): serialises every
    //!    change of the session: its revision, its set of variables, each
    //!    variable's current record, the order records enter the event log,
    //!    the writer's spare record. Watches register and take their
    //!    snapshot under it: that is the atomic-subscribe guarantee. Every
    //!    change is also one write section of the session's `SeqCount`
    //!    (not a lock: readers validate instead of waiting).
    //! 3. **A session's index** (`RwLock`): name and id to variable; written
    //!    only under the write lock.
    //! 4. **A variable's cell** (`RwLock` in `ArcCell`): its current record.
    //!    Written for one pointer swap under the write lock; read for one
    //!    reference-count increment.
    //! 5. **The event log's ring** (`RwLock`): appended under the write lock,
    //!    copied from by watches under the read lock.
    //! 6. **The watch registry, then a waiter list** (`Mutex`es): taken to
    //!    register or drop a watch, to find the slowest watch when the log
    //!    trims, and to arm or wake a sleeping watch.
    //!
    //! A watch's waker takes no lock (an `AtomicWaker`: registered on arm,
    //! taken by the wake).
    //!
    //! ## Publishing a variable's state
    //!
    //! A variable's current state is an `Arc<Record>`: immutable once
    //! published, shared by the cell, the event log and every watch and
    //! reader holding it; its value is never copied.
    //!
    //! * **The cell** is the `Arc` behind a read-write lock of its own, plus
    //!   a *stamp* counting replacements. A writer (already alone: it holds
    //!   the session's write lock) takes the cell's write lock for one
    //!   pointer swap and a stamp increment. A reader takes the read lock for
    //!   one reference-count increment. So every state read is one whole
    //!   record, and nothing is held across anything else.
    //! * **A `VarReader` remembers** the record it last read and the stamp it
    //!   had. While the stamp is unchanged, a load is one atomic load and one
    //!   reference-count increment, with no lock: readers of one hot
    //!   variable then share nothing but the record's reference count. A read
    //!   that starts after a write returned always sees it: the writer stores
    //!   the new stamp before its swap returns, and coherence does the rest.
    //! * **Records are reused.** The record a write replaces is usually held
    //!   by nobody else (no reader, no watch, no event log: a session without
    //!   watchers). When `Arc::get_mut` confirms that, the writer empties it
    //!   (its values are dropped after the locks are released) and fills it
    //!   in place for the next change, so such a session writes without
    //!   allocating. A record anyone holds is never touched.
    //!
    //! **Why not arc-swap, or an epoch scheme.** arc-swap was the first
    //! choice: lock-free reads. But its `store` walks a process-wide list of
    //! every thread's debt slots, so writers of *different* sessions on
    //! different cores slowed each other: two threads writing their own
    //! sessions got 0.8 to 1.05 times one thread's throughput. The other
    //! candidates were measured side by side in `benches/publication.rs`
    //! (see [`performance`](super::performance)): crossbeam-epoch and seize
    //! (with a domain per store) keep reads lock-free but defer every
    //! replaced record's release in batches, which made a store 2 to 9
    //! times dearer than a lock's; a plain lock per cell stores fastest,
    //! alone and in parallel, and loses only on contended reads, which the
    //! reader's memory takes off the lock.
    //!
    //! ## Consistent cuts
    //!
    //! Every change is one write section of the session's `SeqCount`, opened
    //! under the write lock and closed before it is released. A read of
    //! several variables (a resync, a coalesced receive, `get_many`,
    //! `snapshot`, `list_variables`, `export`) takes no session lock: it
    //! reads, then keeps its result only if no write section overlapped it;
    //! after four overlapped tries it reads under the write lock (bounded
    //! work, never a spin). See [`rules`](super::rules) for what is a cut.
    //!
    //! ## Waking a watch
    //!
    //! A watch that finds nothing to receive *arms* itself
    //! (`WaiterList::arm`): it sets its waker, puts its signal in the waiter
    //! lists of what it watches (raising each list's `nonempty` flag),
    //! issues a `SeqCst` fence, and checks the event log once more before it
    //! sleeps (`arm` returns an `Armed` token that says so). A writer
    //! appends to the log, releases its locks, issues a `SeqCst` fence
    //! (`Published::fence`, the only way to get the token `wake_all` needs),
    //! and empties the waiter lists of what it wrote whose `nonempty` flag
    //! is up. The two fences guarantee that one side sees the other: the
    //! watch finds the record, or the writer finds the signal. Only sleeping
    //! watches are in a list, so a write costs nothing per watcher that is
    //! busy. loom checks the protocol alone (`loom::wakeup`, with the log's
    //! tail read and written `Relaxed`: either fence removed, it fails) and
    //! through the store.
    //!
    //! ## Memory
    //!
    //! An empty session is a few hundred bytes (about 560 with its map
    //! entry: 100 000 empty sessions take about 56 MB). Its event log owns
    //! no buffer until a lossless watch joins; it grows as records arrive,
    //! drops what every watch has read before it doubles, keeps at most the
    //! largest capacity a live watch asked for, and shrinks when that watch
    //! goes.
    //!
    //! ## The durable store's engine
    //!
    //! A durable store (`varwatch::durable`, feature `durable`) needs three
    //! things of its disk: a change recorded before it is published (under
    //! its session's write lock, so entries of a session reach the disk in
    //! revision order), concurrent writers sharing one sync, and a way to
    //! bound the disk to the live state. It is an append-only journal of
    //! CRC32-checked blocks (`durable/frame.rs`, one block per group
    //! commit) plus snapshots written beside it (`durable/snapshot.rs`),
    //! folded into the state on open (`durable/model.rs`, `recover.rs`).
    //!
    //! Chosen by measurement against redb, a well-kept embedded B-tree
    //! database (`cargo bench --features durable --bench durable`, same
    //! run, same disk, ~120-byte commits, three runs on the 2-core VM):
    //! one commit made durable costs the journal's append + `fdatasync`
    //! p50 117–133 µs; redb's `Durability::Immediate` transaction costs
    //! 1.19–1.28× that at p50 and 1.14–1.32× at p99; a whole durable
    //! `update` costs 1.05–1.14× the bare append + sync. Speed alone would
    //! not rule redb out; the rest did:
    //!
    //! * redb has one write transaction at a time and each commit syncs on
    //!   its own: sixteen writers of sixteen sessions would queue behind one
    //!   lock and pay sixteen syncs, where the journal gives them one
    //!   (14.1–14.3 commits per sync measured with 16 writers);
    //! * the store already keeps the whole state in memory and needs the
    //!   changes *in order* (revisions, the cut rule): a key-value B-tree
    //!   would hold a second copy of the state, rewritten page by page,
    //!   where a log holds each change once and a snapshot is the state
    //!   encoded as it is;
    //! * recovery is a fold of the journal over the last snapshot — 1 M
    //!   records in 0.51–0.59 s — with every failure named by file and
    //!   offset, which a database hides behind its own repair.
    //!
    //! fjall (an LSM tree with its own journal) and WAL crates were not
    //! measured: an LSM adds compaction of a second copy for the same
    //! reasons a B-tree does. The cost is ours to keep: about 1 700 lines
    //! with their docs (`src/durable/`, `session/journal.rs`), the torn-tail
    //! and damage rules tested at every offset of a block
    //! (`durable/frame.rs`, `tests/durable.rs`).
    //!
    //! Group commit (`durable/journal.rs`): a lone writer leads its own
    //! sync (no thread hand-off on its path); writers that come during a
    //! sync are handed to a syncer thread that syncs batch after batch
    //! while entries come, waiting briefly (at most a quarter of the last
    //! sync) for the writers it just released. Without that wait a batch
    //! holds only the writers that came during the previous sync — half of
    //! them — and 16 writers reached 4.9× one writer; with it, 14 of 16
    //! share each sync and 16 writers make 5.8–7.3× the commits of one.
    //! The rest of the gap to 16× on the 2-core VM is seventeen threads
    //! taking turns on two cores between syncs (a sync takes longer with
    //! them runnable, and each waiter must be woken and scheduled before it
    //! can write again); with no sync at all the same writers make over
    //! 240 000 commits/s, so it is not the CPU cost of a commit.
}

pub mod performance {
    //! # What things cost
    //!
    //! Figures from a 2-vCPU virtual machine (noisy: single runs vary by
    //! 10-20 %, so ratios come from runs that alternate the two sides); the
    //! full tables, with the commands that produced them, are in
    //! `BENCHMARKS.md`.
    //!
    //! ## A write
    //!
    //! A `VarWriter::set` with no watcher: validation (a value of the
    //! variable's own type and no constraint skips every check), one clock
    //! read for the timestamp, the session's write lock, a peek at the
    //! current record under the cell's read lock, a record filled in the
    //! spare allocation, the cell's write lock for the swap, and the
    //! replaced record's values released after the locks. About eleven
    //! atomic read-modify-writes on cache lines of its own session, none on
    //! a process-wide one, and no allocation: about 190 ns here, 0.93 times
    //! `tokio::sync::watch::Sender::send_replace` and 3.5 times a bare
    //! `parking_lot::RwLock<Arc<_>>` write (which validates, versions and
    //! timestamps nothing, and keeps no old value). With watchers the
    //! record is also appended to the event log, and their waiter lists
    //! are emptied.
    //!
    //! A write by name (`SessionStore::update`) adds two hash lookups under
    //! two read locks (the shard, the session's index): about 1.3 times a
    //! handle's write. Keep a [`VarWriter`](crate::VarWriter) for a variable
    //! written often.
    //!
    //! Writers of different sessions share no cache line: two threads on
    //! their own sessions do 1.85 times the writes of one (tokio watch
    //! 2.05, `RwLock<Arc>` 1.92, arc-swap 0.84). Writers of one variable
    //! serialise on its session, as with any peer (one variable, two
    //! writers: 1.08 times tokio watch's throughput).
    //!
    //! ## A read
    //!
    //! A [`VarReader::load`](crate::VarReader::load) of an unchanged variable
    //! is one atomic load and one reference-count increment: 29 ns alone
    //! (arc-swap's `load_full` 32 ns); two threads on one hot variable while
    //! a third writes it: 23.5 million loads a second (arc-swap 22.9, a
    //! plain `RwLock<Arc>` 12.1, tokio watch's `borrow().clone()` 13.4).
    //! Keep one reader per thread: a clone starts with its own memory. A
    //! read by name (`SessionStore::get`) takes three read locks (shard,
    //! index, cell).
    //!
    //! ## The publication candidates
    //!
    //! `cargo bench --bench publication`, nanoseconds per operation per
    //! thread (each store makes a new `Arc` and drops the old one, as a
    //! write does; loads run while another thread stores every 50 µs):
    //!
    //! | candidate | store, own cell, T=1 | T=2 | store, one cell, T=2 | load, one cell, T=1 | T=2 |
    //! |---|---|---|---|---|---|
    //! | arc-swap | 101 | 344 | 449 | 33 | 92 |
    //! | `RwLock<Arc>` per cell | 67 | 114 | 230 | 26 | 122 |
    //! | crossbeam-epoch | 177 | 310 | 372 | 25 | 69 |
    //! | seize, a domain per store | 120 | 913 | 933 | 24 | 75 |
    //!
    //! The lock per cell wins every store column; its contended load is the
    //! worst, which is why `VarReader` remembers (above).
    //!
    //! ## A watch
    //!
    //! * **Subscribe + drop**: the session's write lock (the atomic
    //!   subscribe), the event log's retention for the watch's capacity, a
    //!   registry entry, the snapshot's read and one allocation for what
    //!   writers see of the watch: about 300 ns on a
    //!   [`VarReader`](crate::VarReader::watch) (no name lookup), 4 to 5
    //!   times tokio broadcast's subscribe; by name with the initial event,
    //!   about 1.5 times that.
    //! * **Receiving an event**: a pop from the watch's queue, the version
    //!   check against the one it holds for that variable, and one plain
    //!   store of its delivered count; records are copied out of the log in
    //!   batches of up to 64 under one read lock, onto the stack. Per
    //!   watcher with two consumer threads: about tokio broadcast's cost
    //!   (0.8 to 1.1 times).
    //! * **A coalesced receive** reads one consistent cut of the watched
    //!   variables, whatever the backlog: 1.0 to 1.6 times tokio watch.
    //! * **Going to sleep** (async or blocking, after spinning): the waker is
    //!   registered (an `AtomicWaker`, no lock) and the watch joins each
    //!   watched variable's waiter list (a mutex and a reference count); the
    //!   writer empties the list and wakes each watch. A list keeps its
    //!   buffer for the next sleepers: at most 16 bytes per watch that slept
    //!   on it at once, kept until the variable goes.
    //! * **A write with watchers** adds the record's trip through the event
    //!   log (it cannot be reused: watches may hold it) and nothing per idle
    //!   watcher: about 250 to 340 ns at every N up to 10 000.
    //!
    //! ## Memory
    //!
    //! An empty session: about 560 bytes. An idle watch of one variable:
    //! about 264 bytes — the handle (120: its session, the variable and the
    //! version it expects next, its log cursor, its queue, its capacity and
    //! registry key, flags), what writers and the registry see (104, 128
    //! with its reference counts: waker, waiter-list flags, delivered count
    //! and cursor, backlog, id, creation time, names) and a registry slot.
    //! Filter, throttle, a parked thread's waker, a timer and the counters a
    //! plain watch never moves are allocated by the first watch that uses
    //! them. A watch that has received keeps a queue buffer of four events
    //! while it sleeps (328 bytes in all); a burst's larger buffer is given
    //! back when it next sleeps. A session's event log: one `Arc` and two
    //! flags per retained record, at most the largest capacity a live
    //! lossless watch asked for.
    //!
    //! ## Using it fast
    //!
    //! * Write through a [`VarWriter`](crate::VarWriter), read through a
    //!   [`VarReader`](crate::VarReader) per thread.
    //! * A batch (`update_atomic`) costs one lock and one revision for all
    //!   its items.
    //! * A watch that only needs the latest state should coalesce
    //!   ([`WatchOptions::coalesce`](crate::WatchOptions::coalesce)): it
    //!   never overflows and reads only the variables it follows.
}
