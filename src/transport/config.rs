//! [`RemoteConfig`]: the settings of a remote client and its watches.

use std::time::Duration;

/// Settings of a remote client and its watches.
///
/// Every duration and size is kept in a range that works when a client is
/// made ([`RemoteStore::new`](super::RemoteStore::new)): durations between 1 ms and
/// [`MAX_DURATION`] (a day for the heartbeat interval), `buffer` between 1
/// and [`MAX_BUFFER`], `backoff_max` at least `backoff_initial`. So no
/// setting can make a watch spin, overflow a deadline or allocate without
/// bound.
#[derive(Debug, Clone)]
#[non_exhaustive]
#[must_use = "a configuration does nothing until passed to a client"]
pub struct RemoteConfig {
    /// Time allowed to establish a connection (network transports).
    pub connect_timeout: Duration,
    /// How often a watch sends a heartbeat.
    pub heartbeat_interval: Duration,
    /// Silence after which a watch treats its connection as dead.
    pub heartbeat_timeout: Duration,
    /// First reconnection delay (doubled per failure, with jitter).
    pub backoff_initial: Duration,
    /// Longest reconnection delay.
    pub backoff_max: Duration,
    /// Consecutive failed reconnections after which a watch ends with
    /// [`EventKind::Disconnected`](crate::EventKind::Disconnected); `None`
    /// retries forever.
    pub max_failures: Option<u32>,
    /// Events buffered per watch between the connection and the user.
    /// A watch whose user falls further behind catches up on its own side
    /// by its overflow policy (a resync, as locally), without ever holding
    /// up the connection.
    pub buffer: usize,
    /// Deadline of every unary call (0 is raised to 1 ms): past it the call
    /// fails with [`ErrorCode::DeadlineExceeded`](crate::ErrorCode).
    pub call_timeout: Duration,
    /// Sent as `authorization: Bearer <token>` on every call (network
    /// transports).
    pub token: Option<String>,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            connect_timeout: Duration::from_secs(3),
            heartbeat_interval: Duration::from_secs(5),
            heartbeat_timeout: Duration::from_secs(15),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            max_failures: None,
            buffer: 1024,
            call_timeout: Duration::from_secs(30),
            token: None,
        }
    }
}

/// The longest duration a [`RemoteConfig`] keeps (a year); longer ones
/// are shortened to it.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// The most events a remote watch buffers for its user.
pub const MAX_BUFFER: usize = 1 << 20;

impl RemoteConfig {
    /// The defaults: heartbeats every 5 s, 15 s timeout, backoff 100 ms
    /// doubling to 30 s, retry forever, 1024 events buffered per watch,
    /// calls with a 30 s deadline.
    pub fn new() -> Self {
        Self::default()
    }

    /// The configuration with every field in its working range (see the
    /// type's docs).
    pub(crate) fn normalized(mut self) -> Self {
        let ms = Duration::from_millis(1);
        let clamp = |d: Duration| d.clamp(ms, MAX_DURATION);
        self.connect_timeout = clamp(self.connect_timeout);
        self.heartbeat_interval = self.heartbeat_interval.clamp(ms, Duration::from_secs(24 * 3600));
        self.heartbeat_timeout = clamp(self.heartbeat_timeout);
        self.backoff_initial = clamp(self.backoff_initial);
        self.backoff_max = clamp(self.backoff_max).max(self.backoff_initial);
        self.buffer = self.buffer.clamp(1, MAX_BUFFER);
        self.call_timeout = clamp(self.call_timeout);
        self
    }
    /// Sets the heartbeat interval (at least 1 ms) and timeout.
    pub fn heartbeats(mut self, interval: Duration, timeout: Duration) -> Self {
        self.heartbeat_interval = interval.max(Duration::from_millis(1));
        self.heartbeat_timeout = timeout;
        self
    }
    /// Sets the reconnection backoff.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial;
        self.backoff_max = max.max(initial);
        self
    }
    /// Sets the bearer token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
    /// Sets how many events a watch buffers for its user (at least 1).
    pub fn buffer(mut self, n: usize) -> Self {
        self.buffer = n.max(1);
        self
    }
    /// Sets the deadline of unary calls.
    pub fn call_timeout(mut self, d: Duration) -> Self {
        self.call_timeout = d;
        self
    }
    /// Gives up after `n` consecutive failed reconnections.
    pub fn max_failures(mut self, n: u32) -> Self {
        self.max_failures = Some(n);
        self
    }
}
