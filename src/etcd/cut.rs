//! [`Cut`]: a session as read at one etcd revision (its `meta` and
//! variables), the snapshot a watch starts from and what a resync after
//! compaction re-reads; and [`read_range`], every key under a prefix at
//! one revision.
//!
//! # Pages
//!
//! A session may hold more than one message can carry (each value is
//! bounded by what etcd accepts in one write, not the session). So a read
//! asks for at most [`FIRST_PAGE`] keys at a time: the first page fixes the
//! etcd revision R, and every later page is read *at R* (etcd serves any
//! revision it has not compacted), so the pages together are one cut. A
//! page over the client's message limit
//! ([`EtcdConfig::max_message_bytes`](super::EtcdConfig::max_message_bytes))
//! is asked again with half as many keys; only a single key over it fails
//! ([`Error::LimitExceeded`], naming that setting). If R is compacted
//! between pages, the read starts again at the current revision.

use etcd_client::{GetOptions, KeyValue, Txn, TxnOp, TxnOpResponse};

use super::codec::{decode_meta, decode_var, id_number};
use super::conn::Conn;
use super::keys::Keys;
use crate::transport::grpc::proto;
use crate::{Error, Result};

/// Keys asked for in one page, at first.
pub(super) const FIRST_PAGE: usize = 1024;

/// Reads started again because their revision was compacted meanwhile,
/// at most.
const MAX_RESTARTS: usize = 8;

/// The session as one etcd revision holds it.
pub(super) struct Cut {
    pub(super) meta: proto::SessionInfo,
    pub(super) incarnation: i64,
    pub(super) lease: i64,
    /// `(key, record)` in registration order.
    pub(super) recs: Vec<(Vec<u8>, proto::Variable)>,
    /// The etcd revision it was read at.
    pub(super) revision: i64,
}

/// The end of the range of keys starting with `prefix`.
pub(super) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0] // every key: etcd's "from key" end
}

/// The first key after `key`.
fn after(key: &[u8]) -> Vec<u8> {
    let mut k = key.to_vec();
    k.push(0);
    k
}

/// Whether `e` says the revision asked for was compacted.
fn compacted(e: &Error) -> bool {
    matches!(e, Error::Remote { message, .. } if message.contains("compacted"))
}

/// Whether `e` is a page over the client's message limit.
fn too_large(e: &Error) -> bool {
    matches!(e, Error::LimitExceeded { .. })
}

/// What one page of a cut asks for.
enum Page<'a> {
    /// Keys of the range `[from, end)`, at most `limit`.
    Range { from: Vec<u8>, end: &'a [u8] },
    /// These keys.
    Keys(&'a [String]),
}

/// Reads a page (with `meta` first if `with_meta`), at `revision` (0: the
/// current one), halving the page until it fits a message. Returns the
/// txn's results: `meta`'s (if asked), the page's keys, whether more keys
/// follow in the range, the revision read, and how many keys were asked.
async fn page(
    conn: &Conn,
    meta: Option<&str>,
    page: &Page<'_>,
    revision: i64,
    mut limit: usize,
) -> Result<(Option<KeyValue>, Vec<KeyValue>, bool, i64, usize)> {
    loop {
        let at = |o: GetOptions| {
            if revision > 0 {
                o.with_revision(revision)
            } else {
                o
            }
        };
        let mut ops = Vec::new();
        if let Some(m) = meta {
            ops.push(TxnOp::get(m, Some(at(GetOptions::new()))));
        }
        let asked = match page {
            Page::Range { from, end } => {
                let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                ops.push(TxnOp::get(
                    from.clone(),
                    Some(at(GetOptions::new().with_range(end.to_vec()).with_limit(limit))),
                ));
                limit as usize
            }
            Page::Keys(names) => {
                let n = names.len().min(limit);
                ops.extend(
                    names[..n]
                        .iter()
                        .map(|k| TxnOp::get(k.as_str(), Some(at(GetOptions::new())))),
                );
                n
            }
        };
        match conn.read_txn(Txn::new().and_then(ops)).await {
            Ok(resp) => {
                let read_at = resp.header().map_or(0, |h| h.revision());
                let read_at = if revision > 0 { revision } else { read_at };
                let mut gets = resp.op_responses().into_iter().filter_map(|r| match r {
                    TxnOpResponse::Get(g) => Some(g),
                    _ => None,
                });
                let meta_kv = match meta {
                    Some(_) => gets.next().and_then(|g| g.kvs().first().cloned()),
                    None => None,
                };
                let mut kvs = Vec::new();
                let mut more = false;
                for g in gets {
                    more |= g.more();
                    kvs.extend(g.kvs().iter().cloned());
                }
                return Ok((meta_kv, kvs, more, read_at, asked));
            }
            Err(e) if too_large(&e) && limit > 1 => limit /= 2,
            Err(e) => return Err(e),
        }
    }
}

/// Reads the session's `meta` and its variables (`names`, or all) at one
/// etcd revision, in pages; `None` if the session does not exist.
pub(super) async fn read_cut(
    conn: &Conn,
    keys: &Keys,
    session: &str,
    names: Option<&[String]>,
) -> Result<Option<Cut>> {
    let mut restarts = 0;
    loop {
        match read_cut_once(conn, keys, session, names).await {
            Err(e) if compacted(&e) && restarts < MAX_RESTARTS => restarts += 1,
            r => return r,
        }
    }
}

async fn read_cut_once(
    conn: &Conn,
    keys: &Keys,
    session: &str,
    names: Option<&[String]>,
) -> Result<Option<Cut>> {
    let meta_key = keys.meta(session);
    let dir = keys.var_dir(session).into_bytes();
    let end = prefix_end(&dir);
    let var_keys: Vec<String> = names
        .unwrap_or_default()
        .iter()
        .map(|n| keys.var(session, n))
        .collect();
    // One key of a transaction is `meta`'s.
    let most = FIRST_PAGE.min(conn.max_txn_ops.saturating_sub(1).max(1));
    let mut limit = most;
    let mut kvs = Vec::new();
    let mut next = match names {
        None => Page::Range {
            from: dir.clone(),
            end: &end,
        },
        Some(_) => Page::Keys(&var_keys),
    };
    let (meta_kv, first, mut more, revision, asked) = page(conn, Some(&meta_key), &next, 0, limit).await?;
    let Some(meta_kv) = meta_kv else {
        return Ok(None);
    };
    limit = asked.max(1);
    let mut done = asked;
    let mut last = first.last().map(|kv| kv.key().to_vec());
    kvs.extend(first);
    loop {
        next = match (&next, names) {
            (Page::Range { .. }, _) if more => Page::Range {
                from: after(last.as_deref().unwrap_or(&dir)),
                end: &end,
            },
            (Page::Keys(_), Some(_)) if done < var_keys.len() => Page::Keys(&var_keys[done..]),
            _ => break,
        };
        let (_, got, m, _, asked) = page(conn, None, &next, revision, limit).await?;
        more = m;
        done += asked;
        limit = (asked * 2).clamp(1, most);
        if let Some(kv) = got.last() {
            last = Some(kv.key().to_vec());
        }
        kvs.extend(got);
    }
    let meta = decode_meta(meta_kv.key(), meta_kv.value())?;
    let mut recs = Vec::with_capacity(kvs.len());
    for kv in kvs {
        recs.push((kv.key().to_vec(), decode_var(kv.key(), kv.value())?));
    }
    recs.sort_by_key(|(_, r)| id_number(&r.id));
    Ok(Some(Cut {
        meta,
        incarnation: meta_kv.create_revision(),
        lease: meta_kv.lease(),
        recs,
        revision,
    }))
}

/// Every key under `prefix` (values too unless `keys_only`), at one etcd
/// revision, in pages.
pub(super) async fn read_range(conn: &Conn, prefix: Vec<u8>, keys_only: bool) -> Result<Vec<KeyValue>> {
    let end = prefix_end(&prefix);
    let mut restarts = 0;
    'read: loop {
        let mut out: Vec<KeyValue> = Vec::new();
        let mut revision = 0;
        let mut limit = FIRST_PAGE;
        let mut from = prefix.clone();
        loop {
            let mut opts = GetOptions::new()
                .with_range(end.clone())
                .with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
            if keys_only {
                opts = opts.with_keys_only();
            }
            if revision > 0 {
                opts = opts.with_revision(revision);
            }
            let got = conn
                .read(|c| {
                    let mut kv = conn.kv(&c);
                    let (from, opts) = (from.clone(), opts.clone());
                    async move { kv.get(from, Some(opts)).await }
                })
                .await;
            match got {
                Ok(resp) => {
                    if revision == 0 {
                        revision = resp.header().map_or(0, |h| h.revision());
                    }
                    let more = resp.more();
                    out.extend(resp.kvs().iter().cloned());
                    match out.last() {
                        Some(kv) if more => from = after(kv.key()),
                        _ => return Ok(out),
                    }
                }
                Err(e) if too_large(&e) && limit > 1 => limit /= 2,
                Err(e) if compacted(&e) && restarts < MAX_RESTARTS => {
                    restarts += 1;
                    continue 'read;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_range_ends_after_every_key_that_starts_with_it() {
        assert_eq!(prefix_end(b"a/"), b"a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(after(b"k"), b"k\0".to_vec());
    }
}
