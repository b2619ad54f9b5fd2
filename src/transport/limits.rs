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
    pub(crate) max_metadata_bytes: usize,
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
            max_metadata_bytes: 64 << 10,
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

/// Bytes of a metadata map: its keys and values.
pub(crate) fn metadata_bytes(m: &crate::Metadata) -> usize {
    m.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// Roughly the bytes an event takes on the wire: everything it carries of
/// variable size (value, old value, source, metadata, id and name) plus a
/// fixed allowance for the rest. What a watch message's byte budget counts,
/// so that no field can make a message larger than the budget says.
pub(crate) fn event_bytes(e: &crate::WatchEvent) -> usize {
    const FIXED: usize = 48; // kind, version, revision, timestamp, lag, framing
    FIXED
        + e.value().map_or(0, value_bytes)
        + e.old_value().map_or(0, value_bytes)
        + e.source().map_or(0, str::len)
        + e.metadata().map_or(0, metadata_bytes)
        + e.variable_id().len()
        + e.variable_name().len()
}
