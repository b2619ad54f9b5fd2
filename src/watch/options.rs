//! [`WatchOptions`]: how a watch is set up, and [`OverflowPolicy`].

use std::fmt;
use std::time::Duration;

use crate::sync::Arc;
use crate::value::Value;

pub(crate) type Filter = Arc<dyn Fn(Option<&Value>, &Value) -> bool + Send + Sync>;

/// What a watch does when it falls more than its capacity behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverflowPolicy {
    /// Deliver [`EventKind::Lagged`] with the skipped versions, then the
    /// current state of each affected variable, and carry on contiguously.
    #[default]
    Resync,
    /// Deliver the [`EventKind::Lagged`] markers and end the watch.
    Close,
}

/// How a watch is set up. Build with [`WatchOptions::new`] and the builder
/// methods.
///
/// ```
/// use std::time::Duration;
/// use varwatch::{OverflowPolicy, WatchOptions};
/// let opts = WatchOptions::new()
///     .include_initial(true)
///     .capacity(256)
///     .on_overflow(OverflowPolicy::Close)
///     .filter(|old, new| old.is_none() || new.as_f64() > old.and_then(|o| o.as_f64()))
///     .throttle(Duration::from_millis(50));
/// # let _ = opts;
/// ```
#[derive(Clone)]
pub struct WatchOptions {
    pub(super) include_initial: bool,
    pub(super) filter: Option<Filter>,
    pub(super) capacity: usize,
    pub(super) overflow: OverflowPolicy,
    pub(super) coalesce: bool,
    pub(super) throttle: Option<Duration>,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            include_initial: true,
            filter: None,
            capacity: 1024,
            overflow: OverflowPolicy::Resync,
            coalesce: false,
            throttle: None,
        }
    }
}

impl fmt::Debug for WatchOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchOptions")
            .field("include_initial", &self.include_initial)
            .field("filter", &self.filter.is_some())
            .field("capacity", &self.capacity)
            .field("overflow", &self.overflow)
            .field("coalesce", &self.coalesce)
            .field("throttle", &self.throttle)
            .finish()
    }
}

impl WatchOptions {
    /// The defaults: initial values on, no filter, capacity 1024, resync on
    /// overflow, lossless, no throttle.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the first event per variable is its state at subscription
    /// ([`EventKind::Initial`]). Default `true`.
    pub fn include_initial(mut self, yes: bool) -> Self {
        self.include_initial = yes;
        self
    }

    /// Deliver only `Initial`/`Changed` events for which
    /// `filter(old_value, new_value)` is true (`old_value` is `None` for an
    /// initial event). Filtered events still count as seen. The filter runs on
    /// the receiving thread; if it panics the event is delivered and counted
    /// in [`WatchStats::filter_panics`].
    pub fn filter<F>(mut self, filter: F) -> Self
    where
        F: Fn(Option<&Value>, &Value) -> bool + Send + Sync + 'static,
    {
        self.filter = Some(Arc::new(filter));
        self
    }

    /// How many events of its session the watch may fall behind before it
    /// has overflowed (default 1024; at least 1). Events of variables the
    /// watch does not follow count too, since they share the session's log;
    /// an overflow that skipped none of *its* versions is invisible to it.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// What to do on overflow. Default [`OverflowPolicy::Resync`].
    pub fn on_overflow(mut self, policy: OverflowPolicy) -> Self {
        self.overflow = policy;
        self
    }

    /// Coalescing mode: deliver only the latest state of each variable, with
    /// [`WatchEvent::skipped`] counting the versions passed over, like
    /// `tokio::sync::watch`. Overflow is then never an event.
    pub fn coalesce(mut self) -> Self {
        self.coalesce = true;
        self
    }

    /// At most one `Changed` event per variable per `interval`; a change that
    /// comes sooner is held back and replaced by any later one, so the watch
    /// always ends on the latest state.
    pub fn throttle(mut self, interval: Duration) -> Self {
        // Capped at a year so that deadlines never overflow.
        self.throttle = Some(interval.min(Duration::from_secs(365 * 24 * 3600)));
        self
    }
}
