//! Coalescing and throttled delivery: the latest state, read as a cut.
//!
//! A coalescing watch never reads the event log's records; it only compares
//! the log's tail with the one it saw last ("has anything happened?"). When
//! something has and its queue is empty, it reads one consistent cut of what
//! it follows (`cut.rs`) and queues, as one group at the cut's revision, the
//! latest state of every variable that moved: `Changed` (or `Initial` for a
//! first state) with [`WatchEvent::skipped`] counting the versions passed
//! over, `Deleted` for a deletion, and for a whole-session watch every
//! variable met for the first time. A whole-session watch with initial
//! states is not told of the deletion of a variable whose initial state it
//! still owed (deleted between the subscription and the first receive): at
//! the cut's revision the variable does not exist, and the watcher never
//! held it. A named watch is told; so is a watch without initial states
//! (it follows the variables it was not shown). So a receive costs one cut of the
//! watched variables whatever the backlog, and the skip counts stay exact.
//!
//! A throttled watch is a coalescing one with a clock: after delivering a
//! group of states it reads nothing more until `interval` has passed,
//! unless a watched variable was deleted or the session closed (those are
//! never held back; the group that carries them also carries the latest
//! states).

use std::time::Instant;

use super::LocalWatch;
use crate::record::RecordKind;
use crate::sync::Ordering;
use crate::watch::CloseReason;
use crate::watch::catch_up::{Held, Mode, Now, catch_up};

impl LocalWatch {
    /// Queues the news as one group, if there is any. `Ok(progressed)`;
    /// `Err(due)` when a throttle holds changes back until `due`.
    pub(super) fn coalesce(&mut self) -> Result<bool, Instant> {
        if self.ended.is_some() {
            return Ok(false);
        }
        let moved = self.cut_owed || self.session.log.tail() != self.cursor;
        if !moved {
            return Ok(false);
        }
        if let Some(t) = self.throttle.as_deref()
            && let Some(due) = t.holds(false)
            && !self.forced
            && !self.urgent()
        {
            return Err(due);
        }
        self.forced = false;
        self.cut_owed = false;
        Ok(self.deliver_cut())
    }

    /// Whether something that is never held back has happened: the session
    /// closed, or a watched variable deleted.
    fn urgent(&self) -> bool {
        self.session.is_closed()
            || self
                .tracked
                .iter()
                .any(|t| t.cell.current.with(|r| r.kind == RecordKind::Deleted))
    }

    /// Reads a cut and queues what is new in it as one group (each
    /// variable by the catch-up rule, `catch_up.rs`).
    pub(super) fn deliver_cut(&mut self) -> bool {
        let cut = self.read_cut();
        self.cursor = cut.tail;
        let label = cut.revision;
        let before = self.pending.len();
        let mut skipped_total = 0;
        let mut gone = Vec::new();
        for (i, state) in cut.states.into_iter().enumerate() {
            let t = &mut self.tracked[i];
            let Some(plan) = catch_up(Mode::Coalesce, self.whole_session, t.held(), Now::of(&state)) else {
                continue; // nothing new
            };
            match plan.held {
                Some(held) => t.hold(held),
                None => gone.push(i),
            }
            skipped_total += plan.event.map_or(0, |(_, skipped)| skipped);
            self.pending.extend(plan.events(&state, label));
        }
        for i in gone.into_iter().rev() {
            self.untrack(i);
        }
        if self.ended.is_none() {
            for (cell, state) in cut.new {
                // Met for the first time.
                let Some(plan) = catch_up(Mode::Coalesce, self.whole_session, Held::Unknown, Now::of(&state))
                else {
                    continue;
                };
                let pos = self
                    .tracked_index(cell.meta.slot)
                    .expect_err("new variables are not tracked yet");
                self.track_new(pos, cell, plan.held.unwrap_or(Held::after(state.version)));
                skipped_total += plan.event.map_or(0, |(_, skipped)| skipped);
                self.pending.extend(plan.events(&state, label));
            }
        }
        if skipped_total > 0 {
            self.shared
                .counters
                .rare()
                .skipped
                .fetch_add(skipped_total, Ordering::Relaxed);
        }
        let delivered = self.pending.len() > before;
        if let Some(t) = self.throttle.as_deref_mut()
            && delivered
        {
            t.delivered();
        }
        if cut.closed {
            let closed = self.closed_event(label);
            self.finish(CloseReason::SessionClosed, Some(closed));
            return true;
        }
        delivered || self.ended.is_some()
    }
}
