//! The limits and timings a [`Service`](super::Service) enforces, shared by
//! the service and its per-connection watch streams.

use std::time::Duration;

/// Limits and timings of a service (set through `Service`'s builder
/// methods, which document each).
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    pub(crate) max_value_bytes: usize,
    pub(crate) max_items: usize,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) heartbeat_timeout: Duration,
    pub(crate) max_events_per_message: usize,
    pub(crate) max_message_value_bytes: usize,
    pub(crate) max_watches_per_stream: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_value_bytes: 4 << 20,
            max_items: 10_000,
            heartbeat_interval: Duration::from_secs(5),
            heartbeat_timeout: Duration::from_secs(15),
            max_events_per_message: 256,
            max_message_value_bytes: 4 << 20,
            max_watches_per_stream: 100_000,
        }
    }
}

/// Bytes of a value's contents, as they travel (4-byte floats on the wire).
pub(crate) fn value_bytes(v: &crate::Value) -> usize {
    use crate::Value;
    match v {
        Value::Float(_) | Value::Integer(_) | Value::Boolean(_) => 8,
        Value::String(s) | Value::Choice(s) | Value::Module(s) => s.len(),
        Value::Embedding(e) => e.len() * 4,
        Value::Tensor(t) => t.data().len() * 4 + t.shape().len() * 8,
    }
}
