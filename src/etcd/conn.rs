//! [`Conn`]: the etcd client, and how its failures become varwatch errors.

use etcd_client::{Client, Txn, TxnResponse};

use crate::error::ErrorSource;
use crate::{Error, ErrorCode, Result};

/// The client and the endpoints it dials (for messages).
pub(super) struct Conn {
    pub(super) client: Client,
    pub(super) endpoints: String,
}

impl Conn {
    pub(super) fn etcd_error(&self, e: etcd_client::Error) -> Error {
        // etcd refusing a request (too large, too many operations, over a
        // quota) is not a lost connection: nothing was changed.
        if let etcd_client::Error::GRpcStatus(status) = &e {
            let code = match status.code() {
                tonic::Code::InvalidArgument | tonic::Code::OutOfRange => Some(ErrorCode::InvalidArgument),
                tonic::Code::ResourceExhausted => Some(ErrorCode::ResourceExhausted),
                _ => None,
            };
            if let Some(code) = code {
                return Error::Remote {
                    code,
                    message: format!(
                        "etcd refused the request (nothing was changed): {}",
                        status.message()
                    ),
                };
            }
        }
        Error::Transport {
            addr: self.endpoints.clone(),
            reason: format!("etcd: {e}"),
            source: Some(ErrorSource::new(e)),
        }
    }

    pub(super) async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        self.client
            .kv_client()
            .txn(txn)
            .await
            .map_err(|e| self.etcd_error(e))
    }
}
