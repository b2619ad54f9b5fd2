//! [`EtcdConfig`]: where an [`EtcdStore`](super::EtcdStore) keeps its keys
//! and how it talks to etcd.

use std::time::Duration;

/// The longest duration an [`EtcdConfig`] keeps (a day); longer ones are cut
/// to it, so that no deadline or backoff can overflow.
pub const MAX_ETCD_DURATION: Duration = Duration::from_secs(24 * 3600);

/// The smallest [`EtcdConfig::max_message_bytes`] kept (1 MiB): below it
/// etcd's own messages would not fit.
pub const MIN_MESSAGE_BYTES: usize = 1 << 20;

/// The most events an etcd watch buffers.
pub const MAX_ETCD_BUFFER: usize = 1 << 20;

/// Settings of an [`EtcdStore`](super::EtcdStore).
///
/// Every value is kept in a range that works when the store connects:
/// durations between 1 ms and [`MAX_ETCD_DURATION`], `backoff_max` at least
/// `backoff_initial`, the prefix non-empty and ending in `/`.
#[derive(Clone)]
#[non_exhaustive]
#[must_use = "a configuration does nothing until passed to `EtcdStore::connect`"]
pub struct EtcdConfig {
    /// Every key of the store starts with this (default `varwatch/`). Two
    /// stores with different prefixes on one etcd do not see each other,
    /// unless one prefix begins with the other (`app/` and `app/s/x/`
    /// overlap: keep prefixes disjoint).
    pub prefix: String,
    /// Time allowed to connect to an endpoint.
    pub connect_timeout: Duration,
    /// Deadline of every operation (all its round trips to etcd, and its
    /// retries on other members): past it a read fails with
    /// [`Error::Transport`](crate::Error::Transport) (kind `Unavailable`),
    /// and a write that may have been sent with
    /// [`Error::OutcomeUnknown`](crate::Error::OutcomeUnknown).
    pub call_timeout: Duration,
    /// Deadline of one attempt on one member (default 2 s, at most
    /// `call_timeout`). A member that does not answer within it is left
    /// for the next endpoint, and the request is retried there: reads
    /// always, writes too (each write is a transaction that commits at most
    /// once however often it is sent, see the module docs). So a frozen or
    /// partitioned member costs one attempt, not every call's deadline.
    pub attempt_timeout: Duration,
    /// The largest etcd response the client decodes, in bytes (default
    /// 64 MiB; at least 1 MiB). A session read in one response larger than
    /// this is read in pages at one revision, and a watch's catch-up asks
    /// etcd for fragments, so this bounds the client's memory per message,
    /// not what a session may hold: only a single variable larger than it
    /// is refused, with [`Error::LimitExceeded`](crate::Error::LimitExceeded)
    /// naming this setting.
    pub max_message_bytes: usize,
    /// First delay before a watch re-opens its etcd watch after a failure
    /// (doubled per failure, with jitter).
    pub backoff_initial: Duration,
    /// Longest such delay.
    pub backoff_max: Duration,
    /// Consecutive failed re-opens after which a watch ends with
    /// [`EventKind::Disconnected`](crate::EventKind::Disconnected); `None`
    /// retries forever.
    pub max_failures: Option<u32>,
    /// The most operations the etcd server takes in one transaction (its
    /// `--max-txn-ops`, 128 by default). An atomic batch of n updates is
    /// n + 1 operations, an import of n definitions 2n + 2; larger ones are
    /// refused with [`Error::LimitExceeded`](crate::Error::LimitExceeded)
    /// before anything is sent (at least 4).
    pub max_txn_ops: usize,
    /// etcd-client's own connection options, for what varwatch does not
    /// set itself: a user and password (`with_user`), TLS (`with_tls`, with
    /// feature `tls`), a required leader. varwatch sets its connect timeout
    /// and HTTP/2 keep-alive on top of them.
    pub connect_options: Option<etcd_client::ConnectOptions>,
}

/// Leaves `connect_options` out: they may hold a password.
impl std::fmt::Debug for EtcdConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdConfig")
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("call_timeout", &self.call_timeout)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("backoff_initial", &self.backoff_initial)
            .field("backoff_max", &self.backoff_max)
            .field("max_failures", &self.max_failures)
            .field("max_txn_ops", &self.max_txn_ops)
            .field("connect_options", &self.connect_options.as_ref().map(|_| ".."))
            .finish()
    }
}

impl Default for EtcdConfig {
    fn default() -> Self {
        EtcdConfig {
            prefix: "varwatch/".to_string(),
            connect_timeout: Duration::from_secs(3),
            call_timeout: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(2),
            max_message_bytes: 64 << 20,
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            max_failures: Some(60),
            max_txn_ops: 128,
            connect_options: None,
        }
    }
}

fn clamp(d: Duration) -> Duration {
    d.clamp(Duration::from_millis(1), MAX_ETCD_DURATION)
}

impl EtcdConfig {
    /// The defaults: prefix `varwatch/`, connect 3 s, calls 10 s, attempts
    /// 2 s, messages up to 64 MiB, backoff
    /// 50 ms to 2 s, a watch gives up after 60 failed re-opens in a row
    /// (about two minutes).
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the key prefix (a `/` is appended if missing; an empty prefix
    /// becomes `varwatch/`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }
    /// Sets the deadline of every operation.
    pub fn call_timeout(mut self, d: Duration) -> Self {
        self.call_timeout = d;
        self
    }
    /// Sets the deadline of one attempt on one member.
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.attempt_timeout = d;
        self
    }
    /// Sets the largest etcd response the client decodes, in bytes.
    pub fn max_message_bytes(mut self, n: usize) -> Self {
        self.max_message_bytes = n;
        self
    }
    /// Sets the reconnection backoff of watches.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial;
        self.backoff_max = max;
        self
    }
    /// Sets how many failed re-opens in a row end a watch (`None`: never).
    pub fn max_failures(mut self, n: Option<u32>) -> Self {
        self.max_failures = n;
        self
    }

    /// Sets the most operations per etcd transaction (etcd's
    /// `--max-txn-ops`).
    pub fn max_txn_ops(mut self, n: usize) -> Self {
        self.max_txn_ops = n;
        self
    }

    /// Sets etcd-client's connection options (authentication, TLS).
    pub fn connect_options(mut self, opts: etcd_client::ConnectOptions) -> Self {
        self.connect_options = Some(opts);
        self
    }

    /// The configuration with every value in its range.
    pub(super) fn normalized(mut self) -> EtcdConfig {
        if self.prefix.is_empty() {
            self.prefix = "varwatch/".to_string();
        } else if !self.prefix.ends_with('/') {
            self.prefix.push('/');
        }
        self.connect_timeout = clamp(self.connect_timeout);
        self.call_timeout = clamp(self.call_timeout);
        self.attempt_timeout = clamp(self.attempt_timeout).min(self.call_timeout);
        self.max_message_bytes = self.max_message_bytes.clamp(MIN_MESSAGE_BYTES, i32::MAX as usize);
        self.backoff_initial = clamp(self.backoff_initial);
        self.backoff_max = clamp(self.backoff_max).max(self.backoff_initial);
        self.max_txn_ops = self.max_txn_ops.max(4);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_is_kept_in_range() {
        let c = EtcdConfig::new()
            .prefix("")
            .connect_timeout(Duration::ZERO)
            .call_timeout(Duration::MAX)
            .backoff(Duration::from_secs(5), Duration::ZERO)
            .normalized();
        assert_eq!(c.prefix, "varwatch/");
        assert_eq!(c.connect_timeout, Duration::from_millis(1));
        assert_eq!(c.call_timeout, MAX_ETCD_DURATION);
        assert_eq!(c.backoff_max, c.backoff_initial);
        let c = EtcdConfig::new()
            .call_timeout(Duration::from_secs(1))
            .attempt_timeout(Duration::MAX)
            .max_message_bytes(0)
            .normalized();
        assert_eq!(
            c.attempt_timeout,
            Duration::from_secs(1),
            "never past the call deadline"
        );
        assert_eq!(c.max_message_bytes, MIN_MESSAGE_BYTES);
        let c = EtcdConfig::new()
            .max_message_bytes(usize::MAX)
            .attempt_timeout(Duration::ZERO)
            .normalized();
        assert_eq!(c.max_message_bytes, i32::MAX as usize);
        assert_eq!(c.attempt_timeout, Duration::from_millis(1));
        assert_eq!(EtcdConfig::new().max_txn_ops(0).normalized().max_txn_ops, 4);
        assert_eq!(
            EtcdConfig::new().max_txn_ops(usize::MAX).normalized().max_txn_ops,
            usize::MAX
        );
        assert_eq!(EtcdConfig::new().prefix("app").normalized().prefix, "app/");
    }
}
