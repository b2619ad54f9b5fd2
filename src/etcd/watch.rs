//! A watch of an [`EtcdStore`](super::EtcdStore) session: a [`Watch`]
//! whose source is fed by the session's hub (`hub.rs`).
//!
//! # The atomic subscribe, on etcd
//!
//! The watch reads the session (`meta` and the watched variables) in one
//! etcd transaction, at etcd revision R: that is its snapshot, a state that
//! existed. It then opens an etcd watch on the session's directory from
//! R + 1, so that every later change reaches it, once, in order: etcd's own
//! consistent cut, as the local store's is its write lock.
//!
//! # The follower's states
//!
//! A task per watch follows the etcd watch (kube-runtime's watcher is the
//! model: one explicit state per step):
//!
//! * **Live**: an etcd watch is open from `etcd_rev + 1`; each etcd
//!   revision's events are one group (etcd never splits a revision across
//!   responses unless asked to fragment, and this client never asks), turned
//!   into `Changed` / `Initial` / `Deleted` / `SessionClosed` events.
//! * **Retry**: the etcd watch failed (etcd restarted, the connection
//!   dropped): after a backoff it is opened again from `etcd_rev + 1`, so
//!   nothing is missed and nothing is seen twice; after
//!   `max_failures` failures in a row the watch ends with `Disconnected`.
//! * **Resync**: etcd compacted its history past `etcd_rev + 1` (the watch
//!   was behind, or away, too long): the watch reads the session again at a
//!   new revision R' and reports, per variable, the versions it cannot have
//!   as `Lagged { first, last }` followed by the current state, exactly as a
//!   local watch reports an overflow, then goes on from R' + 1.
//!
//! Between the hub and the user is a [`Feed`] (`watch/feed.rs`, the same as
//! a remote watch's) with one downstream: a bounded queue (`capacity`) that
//! the hub never waits for — a watch whose queue is full leaves the hub and
//! follows alone, waiting for room, see `hub.rs` —, or for a coalescing
//! watch the latest state of each variable, delivered as one cut per
//! receive.

use std::sync::Arc;
use std::time::Duration;

use crate::sync::Mutex;

use super::client::{Inner, Shared};
use super::codec::id_number;
use super::cut::read_cut;
use super::follow::Follower;
use super::hub::{self, Hub, Sub};
use crate::transport::grpc::proto;
use crate::watch::catch_up::Mode;
use crate::watch::fed::{FedWatch, Hooks};
use crate::watch::feed::{DownConfig, Feed};
use crate::{Error, Result, Watch, WatchOptions, WatchStats};

/// Opens a watch of `session` (`idents`, or the whole session): reads its
/// snapshot in one etcd transaction and joins (or starts) the session's hub.
pub(super) async fn open(
    inner: Arc<Inner>,
    shared: Arc<Shared>,
    session: String,
    idents: Option<Vec<String>>,
    opts: WatchOptions,
) -> Result<Watch> {
    let s = &*shared;
    let names = match &idents {
        None => None,
        Some(idents) => {
            let refs: Vec<&str> = idents.iter().map(String::as_str).collect();
            Some(s.names_of(&session, &refs).await?)
        }
    };
    // The named variables, or (for ids not resolved yet, which may
    // have been registered since, or more names than etcd reads in one
    // transaction) the whole session, where ids resolve too.
    let wanted: Option<Vec<String>> = match (&idents, &names) {
        (Some(idents), Some(names)) => {
            let unresolved = idents
                .iter()
                .zip(names)
                .any(|(i, n)| n.is_none() && crate::ident::is_var_id(i));
            let mut w: Vec<String> = names.iter().flatten().cloned().collect();
            w.sort();
            w.dedup();
            (!unresolved && w.len() < s.config.max_txn_ops).then_some(w)
        }
        _ => None,
    };
    let cut = read_cut(&s.conn, &s.keys, &session, wanted.as_deref())
        .await?
        .ok_or_else(|| Error::SessionNotFound {
            session: session.clone(),
        })?;
    let mut states: Vec<(&Vec<u8>, &proto::Variable)> = Vec::new();
    match (&idents, &names) {
        (Some(idents), Some(names)) => {
            let mut missing = Vec::new();
            for (ident, name) in idents.iter().zip(names) {
                let found = name.as_ref().and_then(|n| {
                    cut.recs
                        .iter()
                        .find(|(_, r)| &r.name == n && (!crate::ident::is_var_id(ident) || &r.id == ident))
                });
                match found {
                    Some((k, r)) => {
                        if !states.iter().any(|(_, x)| x.id == r.id) {
                            states.push((k, r));
                        }
                    }
                    None => missing.push(ident.clone()),
                }
            }
            // A resume names what the watcher had: what no longer
            // resolves is reported as deleted (`resume.rs`), not refused.
            if !missing.is_empty() && opts.resume.is_none() {
                return Err(Error::VariablesNotFound {
                    session: session.clone(),
                    variables: missing,
                });
            }
            states.sort_by_key(|(_, r)| id_number(&r.id));
        }
        _ => states.extend(cut.recs.iter().map(|(k, r)| (k, r))),
    }
    let (follower, first) = Follower::new(
        s.keys.clone(),
        session.clone(),
        idents.is_none(),
        &cut,
        &states,
        true,
    )?;
    // The feed starts from the snapshot; the user's first group is its
    // states (or, coalescing, the latest states at the first receive).
    let whole = idents.is_none();
    let feed = Arc::new(Mutex::new(Feed::new(whole, true)));
    let mode = if opts.reads_cuts() {
        Mode::Coalesce
    } else {
        Mode::Resync
    };
    let down = {
        let mut f = feed.lock();
        f.incarnation = cut.incarnation as u64;
        f.apply_group(first, &mut Vec::new());
        let config = DownConfig {
            coalescing: opts.reads_cuts(),
            capacity: opts.capacity.clamp(1, super::config::MAX_ETCD_BUFFER),
            mode,
            include_initial: opts.include_initial,
            throttle: opts.throttle,
        };
        match opts.resume.as_deref() {
            // What the watcher is missing, by the rule every store runs.
            // etcd keeps no record of deletions: a variable deleted since is
            // said deleted right after the version the watcher had.
            Some(resume) => f.attach_resumed(config, resume, |_| None),
            None => f.attach(config),
        }
    };
    let alone = Arc::new(Mutex::new(None));
    let id = s.next_watch_id();
    let sub = Sub {
        id,
        follower,
        feed: feed.clone(),
        alone: alone.clone(),
    };
    let hub = hub::attach(&shared.hubs, &session, &cut, sub);
    let mut keepalive = None;
    if let (lease, Some(ttl)) = (cut.lease, cut.meta.ttl_ms)
        && lease != 0
    {
        // An open watch keeps its session alive, as locally.
        let ttl = Duration::from_millis(ttl);
        let keeper = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                keeper.keep_alive(lease, ttl);
                tokio::time::sleep(ttl / 3).await;
            }
        });
        keepalive = Some(task.abort_handle());
    }
    shared.watch_opened(&session);
    let hooks = EtcdHooks {
        feed: feed.clone(),
        down,
        hub: hub.map(|h| (h, id)),
        alone,
        keepalive,
        session: session.clone(),
        shared,
        _inner: inner,
    };
    let source = FedWatch::new(feed, down, &session, Box::new(hooks));
    Ok(Watch::fed(source, opts.filter))
}

/// What an etcd watch adds to its source: its place in the hub (or its
/// own task), the keep-alive of its session's lease.
struct EtcdHooks {
    feed: Arc<Mutex<Feed>>,
    down: usize,
    /// The hub it joined, and its id there.
    hub: Option<(Arc<Hub>, u64)>,
    /// Its own task, once it follows alone.
    alone: Arc<Mutex<Option<tokio::task::AbortHandle>>>,
    keepalive: Option<tokio::task::AbortHandle>,
    session: String,
    shared: Arc<Shared>,
    /// The store's runtime lives as long as its watches.
    _inner: Arc<Inner>,
}

impl Hooks for EtcdHooks {
    fn stats(&self, stats: &mut WatchStats) {
        stats.shared = self.hub.is_some() && self.alone.lock().is_none();
    }
}

impl Drop for EtcdHooks {
    fn drop(&mut self) {
        // A hub drops its etcd watch with its last watch; a task of its
        // own sees the feed closed (or is aborted), and etcd cancels the
        // watch.
        self.feed.lock().detach(self.down);
        if let Some((hub, id)) = &self.hub {
            hub.leave(*id);
        }
        if let Some(t) = self.alone.lock().take() {
            t.abort();
        }
        if let Some(t) = &self.keepalive {
            t.abort();
        }
        self.shared.watch_closed(&self.session);
    }
}
