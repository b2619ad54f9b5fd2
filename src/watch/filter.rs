//! The user's filter, run on the watcher's side as events are handed out
//! (for remote and etcd watches too, on the client): one judge for every
//! source, called by the front end (`mod.rs`).

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::options::Filter;
use super::{EventKind, WatchEvent};

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
