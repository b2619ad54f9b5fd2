//! [`Throttle`]: a throttled watch's clock, the one rule for when a
//! throttled watch may deliver, shared by local watches (`local/coalesce.rs`)
//! and fed ones (`feed.rs`).
//!
//! After delivering a group of states, a throttled watch delivers nothing
//! more until `interval` has passed, unless something urgent is owed (a
//! deletion of a watched variable, the end of the session): those are never
//! held back, and the group that carries them also carries the latest
//! states.

use std::time::{Duration, Instant};

/// When a throttled watch may deliver next.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Throttle {
    interval: Duration,
    /// No changes are delivered before this instant.
    next_due: Option<Instant>,
}

impl Throttle {
    /// A clock that lets the first delivery through at once.
    pub(crate) fn new(interval: Duration) -> Throttle {
        Throttle {
            interval,
            next_due: None,
        }
    }

    /// `Some(due)` while changes must wait (nothing `urgent` is owed and the
    /// interval since the last delivery has not passed).
    pub(crate) fn holds(&self, urgent: bool) -> Option<Instant> {
        let due = self.next_due?;
        (!urgent && Instant::now() < due).then_some(due)
    }

    /// A group was delivered now: the next waits `interval`. (`interval` is
    /// at most [`MAX_THROTTLE`](super::MAX_THROTTLE): the sum cannot
    /// overflow.)
    pub(crate) fn delivered(&mut self) {
        self.next_due = Some(Instant::now() + self.interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_after_a_delivery_unless_urgent() {
        let mut t = Throttle::new(Duration::from_secs(3600));
        assert_eq!(t.holds(false), None, "the first delivery is not held");
        t.delivered();
        assert!(t.holds(false).is_some());
        assert_eq!(t.holds(true), None, "urgent news is never held");
        let mut quick = Throttle::new(Duration::from_nanos(1));
        quick.delivered();
        std::thread::sleep(Duration::from_millis(1));
        assert_eq!(quick.holds(false), None, "the interval has passed");
    }
}
