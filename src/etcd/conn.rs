//! [`Conn`]: the way to etcd — one client per member, the member calls go
//! to, per-attempt deadlines, which failures may be retried, and how they
//! become varwatch errors.
//!
//! # Members
//!
//! etcd-client's own client balances calls over every endpoint and cannot
//! tell a slow member from a dead one: a frozen member keeps its TCP
//! connection, and each call it gets waits for the caller's whole deadline.
//! So varwatch keeps one client per endpoint (made on first use) and sends
//! every call to one *preferred* member, with a deadline per attempt
//! ([`EtcdConfig::attempt_timeout`](super::EtcdConfig::attempt_timeout)).
//! A member that does not answer within it, or whose connection fails, is
//! left for the next endpoint; the request is tried again there when that
//! is safe ([`Conn::retrying`]), until the operation's deadline
//! ([`EtcdConfig::call_timeout`](super::EtcdConfig::call_timeout)).
//!
//! # What may be retried
//!
//! A read, always. A write, because every write varwatch sends is a
//! transaction that commits at most once however often it is sent: its
//! compare (the session's `meta` still at the `mod_revision` the write was
//! planned on, or a key still absent) fails for every copy after the first
//! commits, and the write id it stores in `meta` lets the sender recognise
//! its own commit in the answer of a later copy (`snapshot.rs`). What
//! cannot be settled by the deadline is [`Error::OutcomeUnknown`].

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, KvClient, Txn, TxnResponse};

use crate::error::ErrorSource;
use crate::{Error, ErrorCode, Result};

tokio::task_local! {
    /// The deadline of the operation running on this task (set by the
    /// store's blocking and async views around each operation).
    static DEADLINE: Instant;
}

/// Runs `f` with `deadline` as its operation's deadline.
pub(super) async fn with_deadline<F: Future>(deadline: Instant, f: F) -> F::Output {
    DEADLINE.scope(deadline, f).await
}

/// One etcd member (endpoint) and its client, connected on first use.
struct Member {
    url: String,
    client: tokio::sync::OnceCell<Client>,
}

/// The way to etcd (see the module docs).
pub(super) struct Conn {
    /// A client over every endpoint (etcd-client's balanced channel): what
    /// [`EtcdStore::client`](super::EtcdStore::client) hands out for what
    /// varwatch does not do itself.
    pub(super) client: Client,
    members: Vec<Member>,
    /// The member calls go to first (an index into `members`).
    preferred: AtomicUsize,
    /// The endpoints, comma-separated (for messages).
    pub(super) endpoints: String,
    options: ConnectOptions,
    pub(super) attempt_timeout: Duration,
    pub(super) call_timeout: Duration,
    pub(super) max_message_bytes: usize,
    /// etcd's `--max-txn-ops`, as configured.
    pub(super) max_txn_ops: usize,
}

/// Why an attempt (or every attempt until the deadline) failed.
#[derive(Debug)]
pub(super) enum Failed {
    /// etcd answered and refused: nothing was changed.
    Refused(Error),
    /// No answer. A write may have been applied, unless `sent` is false
    /// (no connection could be made: it never left).
    Lost { error: Error, sent: bool },
}

impl Failed {
    /// The error of a read (a lost read changed nothing).
    pub(super) fn into_error(self) -> Error {
        match self {
            Failed::Refused(e) | Failed::Lost { error: e, .. } => e,
        }
    }
}

impl Conn {
    pub(super) fn new(
        client: Client,
        urls: &[String],
        options: ConnectOptions,
        config: &super::EtcdConfig,
    ) -> Conn {
        Conn {
            client,
            members: urls
                .iter()
                .map(|u| Member {
                    url: u.clone(),
                    client: tokio::sync::OnceCell::new(),
                })
                .collect(),
            preferred: AtomicUsize::new(0),
            endpoints: urls.join(","),
            options,
            attempt_timeout: config.attempt_timeout,
            call_timeout: config.call_timeout,
            max_message_bytes: config.max_message_bytes,
            max_txn_ops: config.max_txn_ops,
        }
    }

    /// The running operation's deadline (now + the call timeout outside
    /// one).
    pub(super) fn deadline(&self) -> Instant {
        DEADLINE
            .try_with(|d| *d)
            .unwrap_or_else(|_| Instant::now() + self.call_timeout)
    }

    fn transport(&self, reason: String, source: Option<ErrorSource>) -> Error {
        Error::Transport {
            addr: self.endpoints.clone(),
            reason,
            source,
        }
    }

    /// What etcd-client's error `e` means (see [`Failed`]).
    pub(super) fn classify(&self, e: etcd_client::Error) -> Failed {
        if let etcd_client::Error::GRpcStatus(status) = &e {
            // The client's own decoding limit, not etcd refusing anything.
            if status.message().contains("message length too large") {
                let actual = status
                    .message()
                    .split("found ")
                    .nth(1)
                    .and_then(|r| r.split(' ').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                return Failed::Refused(Error::LimitExceeded {
                    what: "bytes in one etcd response decoded by this client (EtcdConfig::max_message_bytes)"
                        .into(),
                    limit: self.max_message_bytes,
                    actual,
                });
            }
            // etcd refusing a request (too large, too many operations, over
            // a quota, not allowed) is an answer: nothing was changed.
            let code = match status.code() {
                tonic::Code::InvalidArgument | tonic::Code::OutOfRange => Some(ErrorCode::InvalidArgument),
                tonic::Code::ResourceExhausted => Some(ErrorCode::ResourceExhausted),
                tonic::Code::FailedPrecondition => Some(ErrorCode::FailedPrecondition),
                tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => {
                    Some(ErrorCode::Unauthenticated)
                }
                _ => None,
            };
            if let Some(code) = code {
                return Failed::Refused(Error::Remote {
                    code,
                    message: format!(
                        "etcd refused the request (nothing was changed): {}",
                        status.message()
                    ),
                });
            }
        }
        let error = self.transport(format!("etcd: {e}"), Some(ErrorSource::new(e)));
        let sent = !crate::error::never_sent(&error);
        Failed::Lost { error, sent }
    }

    /// The client of member `i`, connected on first use.
    async fn member(&self, i: usize) -> std::result::Result<Client, Failed> {
        let m = &self.members[i];
        let connect = m.client.get_or_try_init(|| async {
            let mut opts = self.options.clone();
            // etcd-client's own per-request timeout stays off: the attempt
            // deadline is ours (and a watch must not time out).
            // A member cut off from its leader refuses at once rather than
            // serving watches that never advance.
            opts = opts
                .with_connect_timeout(self.attempt_timeout)
                .with_require_leader(true);
            Client::connect([m.url.as_str()], Some(opts)).await
        });
        match tokio::time::timeout(self.attempt_timeout, connect).await {
            Ok(Ok(c)) => Ok(c.clone()),
            Ok(Err(e)) => match self.classify(e) {
                Failed::Lost { error, .. } => Err(Failed::Lost { error, sent: false }),
                refused => Err(refused),
            },
            Err(_) => Err(Failed::Lost {
                error: self.transport(
                    format!(
                        "etcd member {} did not connect within {:?}",
                        m.url, self.attempt_timeout
                    ),
                    None,
                ),
                sent: false,
            }),
        }
    }

    /// The preferred member: its index and client (the next member is
    /// preferred if it cannot be reached).
    pub(super) async fn preferred(&self) -> std::result::Result<(usize, Client), Failed> {
        let i = self.preferred.load(Ordering::Relaxed) % self.members.len();
        match self.member(i).await {
            Ok(c) => Ok((i, c)),
            Err(f) => {
                self.move_off(i);
                Err(f)
            }
        }
    }

    /// Member `i` did not answer: calls go to the next one (unless another
    /// task moved on already).
    pub(super) fn move_off(&self, i: usize) {
        let next = (i + 1) % self.members.len();
        let _ = self
            .preferred
            .compare_exchange(i, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The url of member `i`.
    pub(super) fn url(&self, i: usize) -> &str {
        &self.members[i].url
    }

    /// One attempt of `f` on the preferred member, within the attempt
    /// deadline (and the operation's).
    pub(super) async fn attempt<T, F, Fut>(&self, f: &F) -> std::result::Result<T, Failed>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let (i, client) = self.preferred().await?;
        let left = self.deadline().saturating_duration_since(Instant::now());
        let limit = self.attempt_timeout.min(left);
        match tokio::time::timeout(limit, f(client)).await {
            Ok(Ok(t)) => Ok(t),
            Ok(Err(e)) => {
                let failed = self.classify(e);
                if matches!(failed, Failed::Lost { .. }) {
                    self.move_off(i);
                }
                Err(failed)
            }
            Err(_) => {
                self.move_off(i);
                Err(Failed::Lost {
                    error: self.transport(
                        format!(
                            "etcd member {} did not answer within {limit:?}",
                            self.members[i].url
                        ),
                        None,
                    ),
                    sent: true,
                })
            }
        }
    }

    /// `f` until an attempt is answered or the operation's deadline
    /// passes, moving from member to member; for requests safe to repeat
    /// (see the module docs). With the answer: whether an earlier attempt
    /// went unanswered after it may have left. A loss is `sent` if any
    /// attempt may have left.
    pub(super) async fn retrying<T, F, Fut>(&self, f: F) -> std::result::Result<(T, bool), Failed>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let deadline = self.deadline();
        let mut sent = false;
        let mut tries = 0usize;
        let mut pause = Duration::from_millis(20);
        loop {
            match self.attempt(&f).await {
                Err(Failed::Lost { error, sent: s }) => {
                    sent |= s;
                    tries += 1;
                    // After a round of every member, a pause (a leader
                    // election takes about a second).
                    if tries.is_multiple_of(self.members.len()) {
                        if Instant::now() + pause >= deadline {
                            return Err(Failed::Lost { error, sent });
                        }
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_millis(500));
                    }
                    if Instant::now() >= deadline {
                        return Err(Failed::Lost { error, sent });
                    }
                }
                Ok(t) => return Ok((t, sent)),
                Err(refused) => return Err(refused),
            }
        }
    }

    /// A read: [`retrying`](Self::retrying), its failure as an error.
    pub(super) async fn read<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        self.retrying(f).await.map(|(t, _)| t).map_err(Failed::into_error)
    }

    /// `c`'s KV client, decoding messages up to the configured size.
    pub(super) fn kv(&self, c: &Client) -> KvClient {
        c.kv_client().max_decoding_message_size(self.max_message_bytes)
    }

    /// A transaction that only reads.
    pub(super) async fn read_txn(&self, txn: Txn) -> Result<TxnResponse> {
        self.read(|c| {
            let mut kv = self.kv(&c);
            let txn = txn.clone();
            async move { kv.txn(txn).await }
        })
        .await
    }

    /// A transaction that may write, sent until answered (it must commit at
    /// most once however often it is sent; see the module docs); with the
    /// answer, whether an earlier copy may have been applied.
    pub(super) async fn write_txn(&self, txn: Txn) -> std::result::Result<(TxnResponse, bool), Failed> {
        self.retrying(|c| {
            let mut kv = self.kv(&c);
            let txn = txn.clone();
            async move { kv.txn(txn).await }
        })
        .await
    }
}
