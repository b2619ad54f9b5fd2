//! What an [`EtcdStore`](super::EtcdStore)'s operations and its watches'
//! tasks share ([`Shared`]): the connection, the cache of session
//! snapshots and of resolved ids, and the write protocol of `snapshot.rs`
//! run against etcd; and the runtime they run on ([`Inner`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Txn, TxnOp, TxnResponse};
use parking_lot::Mutex;

use super::codec;
use super::codec::WriteIds;
use super::config::EtcdConfig;
use super::conn::{Conn, Failed};
use super::hub::HubCtx;
use super::keys::Keys;
use super::snapshot::{Cache, Plan, Reads, Snap, Write};
use crate::ident::{MAX_NAME_BYTES, check_session_id, check_var_name, is_var_id};
use crate::{Error, ErrorCode, Result};

/// The runtime, and what its tasks share.
pub(super) struct Inner {
    /// `Option` only so that `Drop` can shut it down without blocking (the
    /// last handle may be dropped inside an async context).
    pub(super) rt: Option<tokio::runtime::Runtime>,
    pub(super) shared: Arc<Shared>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// What the store's operations and its watches' tasks share.
pub(super) struct Shared {
    pub(super) conn: Arc<Conn>,
    pub(super) keys: Keys,
    pub(super) config: EtcdConfig,
    pub(super) cache: Mutex<Cache>,
    /// Open watches of this client, per session (what
    /// [`SessionInfo::watchers`] counts here).
    pub(super) watchers: Mutex<HashMap<String, usize>>,
    /// When each lease was last kept alive by this client.
    pub(super) kept_alive: Mutex<HashMap<i64, Instant>>,
    /// One etcd watch per session followed (see `hub.rs`).
    pub(super) hubs: Arc<HubCtx>,
    pub(super) watch_ids: std::sync::atomic::AtomicU64,
    /// The ids this client's writes mark `meta` with.
    pub(super) write_ids: WriteIds,
}

/// The error of a write whose every copy went unanswered: unknown if one
/// may have left (the operation is named by `Shared::run`), else the
/// transport's error.
pub(super) fn lost(session: &str, error: Error, sent: bool) -> Error {
    if sent {
        Error::OutcomeUnknown {
            session: session.to_string(),
            operation: String::new(),
            reason: error.to_string(),
        }
    } else {
        error
    }
}

/// Writes to one session that lose the race this many times in a row fail
/// (each loss means another client's write to the session went through).
pub(super) const MAX_ATTEMPTS: usize = 256;

impl Shared {
    /// The error of a read past the call deadline.
    pub(super) fn deadline(&self) -> Error {
        Error::Transport {
            addr: self.conn.endpoints.clone(),
            reason: format!("no answer from etcd within {:?}", self.config.call_timeout),
            source: None,
        }
    }

    /// A transaction that only reads (retried on another member if one
    /// does not answer).
    pub(super) async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        self.conn.read_txn(txn).await
    }

    /// The session's `meta` key, or [`Error::SessionNotFound`].
    pub(super) async fn meta_kv(&self, session: &str) -> Result<etcd_client::KeyValue> {
        let key = self.keys.meta(session);
        let mut resp = self
            .conn
            .read(|c| {
                let mut kv = self.conn.kv(&c);
                let key = key.clone();
                async move { kv.get(key, None).await }
            })
            .await?;
        resp.take_kvs()
            .into_iter()
            .next()
            .ok_or_else(|| Self::gone(session))
    }

    /// `Ok` if `session` could name a session; else it cannot exist (and
    /// no key is made of it).
    pub(super) fn existing(session: &str) -> Result<()> {
        check_session_id(session).map_err(|_| Self::gone(session))
    }

    pub(super) fn gone(session: &str) -> Error {
        Error::SessionNotFound {
            session: session.to_string(),
        }
    }

    pub(super) fn not_found(session: &str, ident: &str) -> Error {
        Error::VariableNotFound {
            session: session.to_string(),
            variable: ident.to_string(),
        }
    }

    /// Reads a fresh snapshot (and keeps a copy for later writes).
    pub(super) async fn read(&self, reads: &Reads<'_>) -> Result<Snap> {
        let snap = self.fetch(reads).await?;
        self.cache.lock().keep(reads.session, snap.clone());
        Ok(snap)
    }

    /// Reads a fresh snapshot.
    pub(super) async fn fetch(&self, reads: &Reads<'_>) -> Result<Snap> {
        let resp = self.txn(Txn::new().and_then(reads.ops(&self.keys))).await?;
        let snap = reads.parse(&resp)?.ok_or_else(|| Self::gone(reads.session))?;
        self.touch(reads.session, &snap);
        Ok(snap)
    }

    /// The name each identifier stands for (`None`: an id no variable of
    /// the session has). Ids this client has seen are resolved without a
    /// round trip.
    pub(super) async fn names_of(&self, session: &str, idents: &[&str]) -> Result<Vec<Option<String>>> {
        let mut out: Vec<Option<String>> = Vec::with_capacity(idents.len());
        let mut unknown = Vec::new();
        {
            let cache = self.cache.lock();
            for (i, ident) in idents.iter().enumerate() {
                if ident.len() > MAX_NAME_BYTES || (!is_var_id(ident) && check_var_name(ident).is_err()) {
                    out.push(None); // no variable has it: no key made of it
                } else if !is_var_id(ident) {
                    out.push(Some(ident.to_string()));
                } else if let Some(n) = cache.name_of(session, ident) {
                    out.push(Some(n));
                } else {
                    out.push(None);
                    unknown.push(i);
                }
            }
        }
        if unknown.is_empty() {
            return Ok(out);
        }
        // In transactions etcd takes (an id's name never changes, so
        // several reads need not be one cut).
        for chunk in unknown.chunks(self.config.max_txn_ops) {
            let ops: Vec<TxnOp> = chunk
                .iter()
                .map(|&i| TxnOp::get(self.keys.index(session, idents[i]), None))
                .collect();
            let resp = self.txn(Txn::new().and_then(ops)).await?;
            let mut cache = self.cache.lock();
            for (&i, r) in chunk.iter().zip(resp.op_responses()) {
                if let etcd_client::TxnOpResponse::Get(g) = r
                    && let Some(kv) = g.kvs().first()
                {
                    let name = std::str::from_utf8(kv.value())
                        .map_err(|_| codec::corrupt(kv.key(), "name index"))?
                        .to_string();
                    cache.learn_name(session, idents[i], &name);
                    out[i] = Some(name);
                }
            }
        }
        Ok(out)
    }

    /// Runs one write of `session` (see `snapshot.rs`): `plan` is called
    /// with a snapshot holding `reads` until its transaction commits.
    /// `Ok(None)`: an unresolved id turned out to name a variable at the
    /// snapshot's revision; the caller resolves its identifiers again.
    pub(super) async fn write<T>(
        &self,
        reads: &Reads<'_>,
        mut plan: impl FnMut(&Snap) -> Result<Plan<T>>,
    ) -> Result<Option<T>> {
        self.check_reads(reads)?;
        let cached = self.cache.lock().take(reads);
        let mut snap = match cached {
            Some(s) => s,
            None => self.fetch(reads).await?,
        };
        for _ in 0..MAX_ATTEMPTS {
            if !snap.late.is_empty() {
                self.learn(reads.session, &snap.late);
                return Ok(None);
            }
            let (mut w, answer) = match plan(&snap) {
                // Answers that write nothing are only trusted fresh.
                Ok(Plan::Done(_)) | Err(_) if !snap.fresh => {
                    snap = self.fetch(reads).await?;
                    continue;
                }
                Ok(Plan::Done(answer)) => {
                    self.cache.lock().keep(reads.session, snap);
                    return Ok(Some(answer));
                }
                Err(e) => {
                    self.cache.lock().keep(reads.session, snap);
                    return Err(e);
                }
                Ok(Plan::Write(w, answer)) => (w, answer),
            };
            self.check_txn_size(reads, &w)?;
            let id = self.write_ids.next();
            let txn = snap.transaction(&self.keys, reads, &mut w, &id);
            let (resp, maybe_applied) = match self.conn.write_txn(txn).await {
                Ok(r) => r,
                Err(Failed::Refused(e)) => return Err(e),
                Err(Failed::Lost { error, sent }) => return Err(lost(reads.session, error, sent)),
            };
            if resp.succeeded() {
                let revision = resp.header().map_or(0, |h| h.revision());
                let next = snap.after(*w, revision, id);
                self.touch(reads.session, &next);
                self.cache.lock().keep(reads.session, next);
                return Ok(Some(answer));
            }
            // Someone else wrote the session, or an earlier copy of this
            // transaction whose answer was lost committed: its mark says.
            match reads.parse(&resp)? {
                Some(fresh) if fresh.write_id == Some(id) => {
                    self.touch(reads.session, &fresh);
                    self.cache.lock().keep(reads.session, fresh);
                    return Ok(Some(answer));
                }
                Some(fresh) => snap = fresh,
                None if maybe_applied => {
                    return Err(Error::OutcomeUnknown {
                        session: reads.session.to_string(),
                        operation: String::new(),
                        reason: "an answer from etcd was lost, and the session was gone when the write was sent again".into(),
                    });
                }
                None => return Err(Self::gone(reads.session)),
            }
        }
        Err(self.contention(reads.session))
    }

    pub(super) fn contention(&self, session: &str) -> Error {
        Error::Remote {
            code: ErrorCode::Unavailable,
            message: format!(
                "session `{}`: other clients' writes won {MAX_ATTEMPTS} times in a row; try again",
                crate::error::q(session)
            ),
        }
    }

    /// Remembers the names of ids found late.
    pub(super) fn learn(&self, session: &str, found: &[(String, String)]) {
        let mut cache = self.cache.lock();
        for (id, name) in found {
            cache.learn_name(session, id, name);
        }
    }

    /// A write of the variables `idents` name: resolves them, runs
    /// [`write`](Self::write) with `plan(snapshot, names)`, and resolves
    /// again if an id was registered meanwhile.
    pub(super) async fn write_resolving<T>(
        &self,
        session: &str,
        idents: &[&str],
        mut plan: impl FnMut(&Snap, &[Option<String>]) -> Result<Plan<T>>,
    ) -> Result<T> {
        for _ in 0..MAX_ATTEMPTS {
            let names = self.names_of(session, idents).await?;
            let wanted = distinct(&names);
            let unresolved = unresolved(idents, &names);
            let reads = Reads {
                session,
                names: &wanted,
                with_ids: false,
                unresolved: &unresolved,
            };
            if let Some(answer) = self.write(&reads, |snap| plan(snap, &names)).await? {
                return Ok(answer);
            }
        }
        Err(self.contention(session))
    }

    /// Refuses reads etcd would refuse in one transaction.
    pub(super) fn check_reads(&self, reads: &Reads<'_>) -> Result<()> {
        let limit = self.config.max_txn_ops;
        if reads.len() > limit {
            return Err(Error::LimitExceeded {
                what: "operations in one etcd transaction (etcd's --max-txn-ops; raise it there and in EtcdConfig::max_txn_ops)".into(),
                limit,
                actual: reads.len(),
            });
        }
        Ok(())
    }

    /// Refuses a transaction etcd would refuse for its number of operations
    /// (`--max-txn-ops`, 128 by default), before sending it.
    pub(super) fn check_txn_size(&self, reads: &Reads<'_>, w: &Write) -> Result<()> {
        let ids = usize::from(w.ids.is_some());
        let actual = (w.ops.len() + 1 + ids)
            .max(1 + w.compares.len() + ids)
            .max(reads.len());
        let limit = self.config.max_txn_ops;
        if actual > limit {
            return Err(Error::LimitExceeded {
                what: "operations in one etcd transaction (etcd's --max-txn-ops; raise it there and in EtcdConfig::max_txn_ops)".into(),
                limit,
                actual,
            });
        }
        Ok(())
    }

    /// Revokes `lease` (0: none) in the background; a lost revoke leaves
    /// it to expire with its TTL.
    pub(super) fn revoke(&self, lease: i64) {
        if lease == 0 {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let conn = self.conn.clone();
        handle.spawn(async move {
            let _ = conn
                .read(|mut c| async move { c.lease_revoke(lease).await })
                .await;
        });
    }

    /// Keeps the session's lease alive: an access, as locally. At most one
    /// keep-alive per lease per quarter of its TTL, sent in the background.
    pub(super) fn touch(&self, _session: &str, snap: &Snap) {
        let (lease, Some(ttl_ms)) = (snap.lease, snap.meta.ttl_ms) else {
            return;
        };
        if lease == 0 {
            return;
        }
        self.keep_alive(lease, Duration::from_millis(ttl_ms));
    }

    pub(super) fn keep_alive(&self, lease: i64, ttl: Duration) {
        let now = Instant::now();
        {
            let mut kept = self.kept_alive.lock();
            if kept.get(&lease).is_some_and(|&t| now.duration_since(t) < ttl / 4) {
                return;
            }
            if kept.len() >= 4096 {
                kept.clear();
            }
            kept.insert(lease, now);
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let conn = self.conn.clone();
        handle.spawn(async move {
            // Opening the keep-alive stream sends the first keep-alive
            // (retried on another member; a lost one is harmless).
            let _ = conn
                .read(|mut c| async move {
                    let (_keeper, mut stream) = c.lease_keep_alive(lease).await?;
                    stream.message().await
                })
                .await;
        });
    }

    pub(super) fn next_watch_id(&self) -> u64 {
        self.watch_ids.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    pub(super) fn watch_opened(&self, session: &str) {
        *self.watchers.lock().entry(session.to_string()).or_insert(0) += 1;
    }

    pub(super) fn watch_closed(&self, session: &str) {
        let mut w = self.watchers.lock();
        if let Some(n) = w.get_mut(session) {
            *n -= 1;
            if *n == 0 {
                w.remove(session);
            }
        }
    }
}

/// The identifiers of the id form that resolved to no name.
pub(super) fn unresolved(idents: &[&str], names: &[Option<String>]) -> Vec<String> {
    let mut out: Vec<String> = idents
        .iter()
        .zip(names)
        .filter(|(i, n)| n.is_none() && is_var_id(i) && i.len() <= MAX_NAME_BYTES)
        .map(|(i, _)| i.to_string())
        .collect();
    out.sort();
    out.dedup();
    out
}

pub(super) fn distinct(names: &[Option<String>]) -> Vec<String> {
    let mut out: Vec<String> = names.iter().flatten().cloned().collect();
    out.sort();
    out.dedup();
    out
}
