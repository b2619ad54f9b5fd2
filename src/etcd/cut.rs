//! [`Cut`]: a session as one etcd transaction reads it (its `meta` and
//! variables at one etcd revision), the snapshot a watch starts from and
//! what a resync after compaction re-reads.

use etcd_client::{Txn, TxnOp, TxnOpResponse};

use super::codec::{decode_meta, decode_var, id_number};
use super::conn::Conn;
use super::keys::Keys;
use super::snapshot::prefix;
use crate::Result;
use crate::transport::grpc::proto;

/// The session as one etcd transaction read it.
pub(super) struct Cut {
    pub(super) meta: proto::SessionInfo,
    pub(super) incarnation: i64,
    pub(super) lease: i64,
    /// `(key, record)` in registration order.
    pub(super) recs: Vec<(Vec<u8>, proto::Variable)>,
    /// The etcd revision it was read at.
    pub(super) revision: i64,
}

/// Reads the session's `meta` and its variables (`names`, or all) in one
/// transaction; `None` if the session does not exist.
pub(super) async fn read_cut(
    conn: &Conn,
    keys: &Keys,
    session: &str,
    names: Option<&[String]>,
) -> Result<Option<Cut>> {
    let mut ops = vec![TxnOp::get(keys.meta(session), None)];
    match names {
        None => ops.push(TxnOp::get(keys.var_dir(session), prefix())),
        Some(names) => ops.extend(names.iter().map(|n| TxnOp::get(keys.var(session, n), None))),
    }
    let resp = conn.txn(Txn::new().and_then(ops)).await?;
    let revision = resp.header().map_or(0, |h| h.revision());
    let mut rs = resp.op_responses().into_iter().map(|r| match r {
        TxnOpResponse::Get(g) => g.kvs().to_vec(),
        _ => Vec::new(),
    });
    let Some(kv) = rs.next().and_then(|kvs| kvs.into_iter().next()) else {
        return Ok(None);
    };
    let meta = decode_meta(kv.key(), kv.value())?;
    let mut recs = Vec::new();
    for kvs in rs {
        for kv in kvs {
            recs.push((kv.key().to_vec(), decode_var(kv.key(), kv.value())?));
        }
    }
    recs.sort_by_key(|(_, r)| id_number(&r.id));
    Ok(Some(Cut {
        meta,
        incarnation: kv.create_revision(),
        lease: kv.lease(),
        recs,
        revision,
    }))
}
