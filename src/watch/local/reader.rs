//! Lossless delivery: reading the event log, and resync after an overflow.
//!
//! A lossless watch copies whole groups out of its session's event log (see
//! `event_log.rs`) into its queue, keeping the records about what it
//! watches. It reads only when its queue is empty, so a resync never lands
//! inside a group.
//!
//! **Overflow.** A watch more than its capacity behind has overflowed. The
//! writer was never slowed: the watch finds out itself, and reads one
//! consistent cut of what it follows (`cut.rs`). With
//! [`OverflowPolicy::Resync`] (the default) it delivers, as one group at the
//! cut's revision: for every variable that moved on, [`EventKind::Lagged`]
//! with the exact range of versions it skipped (when it skipped any), then
//! the current state (or the deletion); for a whole-session watch, every
//! variable registered meanwhile as a marker for its earlier versions and
//! then `Initial`. Its cursor moves to the cut's position in the log, so it
//! is contiguous from there. With [`OverflowPolicy::Coalesce`] the group is
//! the current states with skip counts instead of markers; with
//! [`OverflowPolicy::Close`] it delivers the markers (and deletions) and
//! ends.

use super::LocalWatch;
use crate::watch::catch_up::{Held, Mode, Now, catch_up};
use crate::watch::{CloseReason, EventKind, OverflowPolicy, WatchEvent};
use smallvec::SmallVec;

use crate::event_log::{Entry, Read};
use crate::record::RecordKind;
use crate::sync::Ordering;

/// Records copied out of the event log per lock acquisition (more when a
/// group is larger: groups are never split).
const READ_BATCH: usize = 64;

impl LocalWatch {
    /// Reads the next groups from the log. Returns whether anything was read
    /// (or the state changed).
    pub(super) fn fill(&mut self) -> bool {
        if self.ended.is_some() {
            return false;
        }
        // On the stack (1.5 KiB for a full batch): no allocation per read,
        // and a kept buffer would pin that much to every watch that ever
        // received anything. (More than a batch only for a large group.)
        let mut scratch: SmallVec<[Entry; READ_BATCH]> = SmallVec::new();
        let read = self
            .session
            .log
            .read(self.cursor, self.capacity as usize, READ_BATCH, &mut scratch);
        match read {
            Read::Empty => false,
            Read::Records(next) => {
                self.cursor = next;
                for entry in scratch {
                    if self.ended.is_some() {
                        break;
                    }
                    self.apply(entry);
                }
                true
            }
            Read::Overflow => {
                self.resync();
                true
            }
        }
    }

    fn apply(&mut self, entry: Entry) {
        let record = entry.record;
        if record.kind == RecordKind::SessionClosed {
            self.finish(
                CloseReason::SessionClosed,
                Some(WatchEvent::new(EventKind::SessionClosed, record)),
            );
            return;
        }
        match self.tracked_index(record.var.slot) {
            Ok(i) => {
                let t = &mut self.tracked[i];
                if record.version < t.next {
                    // Already queued. Cannot happen with exact cursors; kept
                    // so that versions can never repeat.
                    return;
                }
                t.next = record.version + 1;
                let deleted = record.kind == RecordKind::Deleted;
                self.pending.push_back(WatchEvent::from_record(record));
                if deleted {
                    self.untrack(i);
                }
            }
            Err(pos) => {
                if self.whole_session
                    && record.kind == RecordKind::Registered
                    && let Some(cell) = entry.cell
                {
                    self.track_new(pos, cell, Held::after(record.version));
                    self.pending
                        .push_back(WatchEvent::new(EventKind::Initial, record));
                }
            }
        }
    }

    /// The watch fell more than its capacity behind: see the module docs.
    /// Each variable's catch-up is the one rule (`catch_up.rs`).
    fn resync(&mut self) {
        self.shared
            .counters
            .rare()
            .lag_events
            .fetch_add(1, Ordering::Relaxed);
        let cut = self.read_cut();
        crate::trace::debug!(session = %self.session.id, watch = self.shared.id, revision = cut.revision, "watch overflowed: resync");
        self.cursor = cut.tail;
        let label = cut.revision;
        let close = self.overflow == OverflowPolicy::Close;
        let mode = match self.overflow {
            OverflowPolicy::Close => Mode::Close,
            OverflowPolicy::Coalesce => Mode::Coalesce,
            _ => Mode::Resync,
        };
        let mut skipped = 0;
        let mut gone = Vec::new();
        for (i, state) in cut.states.into_iter().enumerate() {
            let t = &mut self.tracked[i];
            let Some(plan) = catch_up(mode, self.whole_session, t.held(), Now::of(&state)) else {
                continue; // nothing missed
            };
            match plan.held {
                Some(held) => t.hold(held),
                None => gone.push(i),
            }
            skipped += plan.event.map_or(0, |(_, s)| s);
            self.pending.extend(plan.events(&state, label));
        }
        if skipped > 0 {
            self.shared
                .counters
                .rare()
                .skipped
                .fetch_add(skipped, Ordering::Relaxed);
        }
        for i in gone.into_iter().rev() {
            self.untrack(i);
            if self.ended.is_some() {
                return; // the last variable of a named watch was deleted
            }
        }
        for (cell, state) in cut.new {
            // Registered while the watch was behind.
            let Some(plan) = catch_up(mode, self.whole_session, Held::Unknown, Now::of(&state)) else {
                continue;
            };
            let pos = self
                .tracked_index(cell.meta.slot)
                .expect_err("new variables are not tracked yet");
            self.track_new(pos, cell, plan.held.unwrap_or(Held::after(state.version)));
            self.pending.extend(plan.events(&state, label));
        }
        if cut.closed {
            let closed = self.closed_event(label);
            self.finish(CloseReason::SessionClosed, Some(closed));
        } else if close {
            self.finish(CloseReason::Overflow, None);
        }
    }
}
