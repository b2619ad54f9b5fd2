//! [`WatchOptions`]: how a watch is set up, and [`OverflowPolicy`].

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use crate::error::Error;
use crate::sync::Arc;
use crate::value::Value;

pub(crate) type Filter = Arc<dyn Fn(Option<&Value>, &Value) -> bool + Send + Sync>;

/// Where a resumed watch starts (see [`WatchOptions::resume_from`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Resume {
    /// The last version the watcher has of each variable, by id or name.
    pub(crate) versions: HashMap<String, u64>,
    /// The incarnation of the session the watcher followed.
    pub(crate) incarnation: Option<u64>,
}

/// The longest throttle interval: longer ones are shortened to it, so that
/// deadlines never overflow.
pub const MAX_THROTTLE: Duration = Duration::from_secs(365 * 24 * 3600);

/// What a watch does when it falls more than its capacity behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// Deliver [`EventKind::Lagged`] with the skipped versions, then the
    /// current state of each affected variable (one consistent cut), and
    /// carry on contiguously.
    ///
    /// [`EventKind::Lagged`]: crate::EventKind::Lagged
    #[default]
    Resync,
    /// Deliver the [`EventKind::Lagged`] markers and end the watch
    /// (`close_reason` [`Overflow`](crate::CloseReason::Overflow)). A
    /// deletion among what was missed is still delivered as
    /// [`EventKind::Deleted`](crate::EventKind::Deleted); when it was the
    /// watch's last variable, the watch ends for that reason instead
    /// ([`VariablesDeleted`](crate::CloseReason::VariablesDeleted)).
    ///
    /// [`EventKind::Lagged`]: crate::EventKind::Lagged
    Close,
    /// Deliver the current state of each affected variable (one consistent
    /// cut) with [`WatchEvent::skipped`](crate::WatchEvent::skipped)
    /// counting the versions passed over, as a coalescing watch would, and
    /// carry on losslessly: no `Lagged` markers.
    Coalesce,
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
///     .filter(|old, new| old.is_none() || new.as_f64() > old.and_then(|o| o.as_f64()));
/// let ui = WatchOptions::new().throttle(Duration::from_millis(50)); // at most 20 updates a second
/// # let _ = (opts, ui);
/// ```
#[derive(Clone)]
#[must_use = "options do nothing until passed to `watch`"]
pub struct WatchOptions {
    pub(crate) include_initial: bool,
    pub(crate) filter: Option<Filter>,
    pub(crate) capacity: usize,
    pub(crate) overflow: OverflowPolicy,
    pub(crate) coalesce: bool,
    pub(crate) throttle: Option<Duration>,
    pub(crate) resume: Option<Arc<Resume>>,
    pub(crate) buffer: Option<usize>,
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
            resume: None,
            buffer: None,
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
            .field("resume", &self.resume)
            .field("buffer", &self.buffer)
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
    /// ([`EventKind::Initial`](crate::EventKind::Initial)). Default `true`.
    pub fn include_initial(mut self, yes: bool) -> Self {
        self.include_initial = yes;
        self
    }

    /// Deliver only `Initial`/`Changed` events for which
    /// `filter(old_value, new_value)` is true (`old_value` is `None` for an
    /// initial event, otherwise the value of the version before). Filtered
    /// events still count as seen. The filter runs on the receiving thread;
    /// if it panics the event is delivered and counted in
    /// [`WatchStats::filter_panics`](crate::WatchStats::filter_panics). (The
    /// panic is caught, but the process's panic hook still runs first: by
    /// default it prints the panic to stderr.)
    pub fn filter<F>(mut self, filter: F) -> Self
    where
        F: Fn(Option<&Value>, &Value) -> bool + Send + Sync + 'static,
    {
        self.filter = Some(Arc::new(filter));
        self
    }

    /// How many events of its session a lossless watch may fall behind
    /// before it has overflowed (default 1024; at least 1, at most the
    /// store's [`max_event_log`](crate::StoreConfig::max_event_log), to which
    /// larger values are lowered). Events of variables the watch does not
    /// follow count too, since they share the session's log; an overflow
    /// that skipped none of *its* versions shows only as a resync of the
    /// states. A write's records are never split: one atomic batch larger
    /// than the capacity does not overflow a watch that was up to date, the
    /// next write does. The session's log keeps this many records for as long as the
    /// watch lives (allocated as they arrive). Coalescing and throttled
    /// watches never overflow and ignore it.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// A remote watch's buffer: how many events it holds on the client for
    /// its user before it falls behind and catches up by its overflow
    /// policy (default: the client's `RemoteConfig::buffer`; at least 1).
    /// The server-side watch's is [`capacity`](Self::capacity). Local and
    /// etcd watches have one buffer, their capacity, and ignore this.
    pub fn buffer(mut self, events: usize) -> Self {
        self.buffer = Some(events);
        self
    }

    /// What to do on overflow. Default [`OverflowPolicy::Resync`].
    pub fn on_overflow(mut self, policy: OverflowPolicy) -> Self {
        self.overflow = policy;
        self
    }

    /// Coalescing mode: deliver only the latest state of each variable, with
    /// [`WatchEvent::skipped`](crate::WatchEvent::skipped) counting the
    /// versions passed over, like `tokio::sync::watch`. Each receive that
    /// finds news reads one consistent cut of the watched variables (a cost
    /// in the number of variables watched, not in the backlog). Overflow is
    /// never an event. With initial states, a whole-session watch says
    /// nothing of a variable deleted before its initial state was delivered
    /// (at the revision of the delivery it does not exist, and the watcher
    /// never held it); a watch that names it gets its
    /// [`EventKind::Deleted`](crate::EventKind::Deleted).
    pub fn coalesce(mut self) -> Self {
        self.coalesce = true;
        self
    }

    /// At most one delivery of changes per `interval`: changes that come
    /// sooner are coalesced (the latest state of each variable, with
    /// [`WatchEvent::skipped`](crate::WatchEvent::skipped) counting the
    /// versions passed over) and delivered together, as one consistent cut,
    /// once the interval has passed; so the watch always ends on the latest
    /// state. A deletion or the session's end is not held back: it is
    /// delivered at once, with the latest states of the other variables.
    /// Implies [`coalesce`](Self::coalesce). Zero is refused at `watch`
    /// ([`Error::InvalidOption`]); intervals above [`MAX_THROTTLE`] are
    /// shortened to it.
    pub fn throttle(mut self, interval: Duration) -> Self {
        self.throttle = Some(interval.min(MAX_THROTTLE));
        self
    }

    /// Resumes a watch: the watcher already has these versions of these
    /// variables (keyed by id or by name; a name means the variable that
    /// has it now). Instead of initial states, the first group is what the
    /// watcher is missing, each variable by the catch-up rule: a variable
    /// with a newer version comes as `Changed` (after an
    /// [`EventKind::Lagged`](crate::EventKind::Lagged) marker if versions
    /// were skipped; a coalescing watch counts them in `skipped` instead);
    /// one deleted meanwhile as `Deleted` at its deletion version (the
    /// session remembers its last 4 096 deletions; an older one is reported
    /// as deleted right after the version the watcher has); one the watcher
    /// does not have (a whole-session watch's variable registered meanwhile)
    /// as `Initial` after a marker for its earlier versions. Deletions come
    /// first, so that a variable registered again under the same name
    /// follows its predecessor's end. Named targets that no longer resolve
    /// are not an error when resuming: their deletion is reported, and a
    /// named watch left with nothing ends.
    ///
    /// This is how a remote client resumes its watches after a reconnect;
    /// it also lets a program that kept what it last received pick up from
    /// there.
    pub fn resume_from<K: Into<String>>(mut self, versions: impl IntoIterator<Item = (K, u64)>) -> Self {
        let r = Arc::make_mut(self.resume.get_or_insert_with(Arc::default));
        r.versions = versions.into_iter().map(|(k, v)| (k.into(), v)).collect();
        self
    }

    /// Resumes only within this incarnation of the session
    /// ([`Watch::session_incarnation`](crate::Watch::session_incarnation)):
    /// if the session of that id was deleted and created again since, the
    /// watch's only event is [`EventKind::SessionClosed`](crate::EventKind::SessionClosed).
    pub fn within_incarnation(mut self, incarnation: u64) -> Self {
        Arc::make_mut(self.resume.get_or_insert_with(Arc::default)).incarnation = Some(incarnation);
        self
    }

    /// Whether the watch reads consistent cuts of the latest states
    /// (coalescing or throttled) rather than every record of the log.
    pub(crate) fn reads_cuts(&self) -> bool {
        self.coalesce || self.throttle.is_some()
    }

    /// Refuses settings that cannot work, before anything is registered.
    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.capacity == 0 {
            return Err(Error::InvalidOption("capacity must be at least 1".into()));
        }
        if self.buffer == Some(0) {
            return Err(Error::InvalidOption("buffer must be at least 1".into()));
        }
        if self.throttle == Some(Duration::ZERO) {
            return Err(Error::InvalidOption(
                "throttle interval must be greater than zero".into(),
            ));
        }
        Ok(())
    }
}
