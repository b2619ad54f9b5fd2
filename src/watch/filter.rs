//! The user's filter, run on the watcher's side as events are handed out
//! (for remote watches too, on the client).

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::options::Filter;
use super::{EventKind, Watch, WatchEvent};
use crate::sync::Ordering;

/// What a filter said about one event.
pub(crate) enum Verdict {
    Pass,
    Reject,
    /// The filter panicked: the event goes through, and is counted.
    Panicked,
}

/// Runs `filter` on `ev`. Only `Initial` and `Changed` events are filtered;
/// a panic is contained.
pub(crate) fn judge(filter: &Filter, ev: &WatchEvent) -> Verdict {
    if !matches!(ev.kind, EventKind::Initial | EventKind::Changed) {
        return Verdict::Pass;
    }
    match catch_unwind(AssertUnwindSafe(|| filter(ev.old_value(), &ev.record.value))) {
        Ok(true) => Verdict::Pass,
        Ok(false) => Verdict::Reject,
        Err(_) => Verdict::Panicked,
    }
}

/// The user's side of a watch fed from elsewhere (a remote or an etcd
/// watch): its filter, and the counts of what it screened.
#[cfg(feature = "transport")]
#[derive(Default)]
pub(crate) struct Screen {
    pub(crate) filter: Option<Filter>,
    /// Events the filter rejected.
    pub(crate) filtered: u64,
    /// Filter calls that panicked (their events were delivered).
    pub(crate) panics: u64,
    /// `Lagged` markers handed out.
    pub(crate) resyncs: u64,
}

#[cfg(feature = "transport")]
impl Screen {
    pub(crate) fn new(filter: Option<Filter>) -> Screen {
        Screen {
            filter,
            ..Screen::default()
        }
    }

    /// Counts and filters an event its user is about to get: `None` if the
    /// filter rejects it.
    pub(crate) fn took(&mut self, e: WatchEvent) -> Option<WatchEvent> {
        if matches!(e.kind(), EventKind::Lagged { .. }) {
            self.resyncs += 1;
        }
        let Some(filter) = &self.filter else {
            return Some(e);
        };
        match judge(filter, &e) {
            Verdict::Pass => Some(e),
            Verdict::Reject => {
                self.filtered += 1;
                None
            }
            Verdict::Panicked => {
                self.panics += 1;
                Some(e)
            }
        }
    }
}

impl Watch {
    /// Applies the filter to an event about to be delivered: `None` if the
    /// filter rejects it (it still counts as seen).
    pub(super) fn apply_filter(&self, ev: WatchEvent) -> Option<WatchEvent> {
        let Some(filter) = self.rare.as_deref().and_then(|r| r.filter.as_ref()) else {
            return Some(ev);
        };
        match judge(filter, &ev) {
            Verdict::Pass => Some(ev),
            Verdict::Reject => {
                let rare = self.shared.counters.rare();
                rare.filtered.fetch_add(1, Ordering::Relaxed);
                None
            }
            Verdict::Panicked => {
                let rare = self.shared.counters.rare();
                rare.filter_panics.fetch_add(1, Ordering::Relaxed);
                Some(ev)
            }
        }
    }
}
