//! [`ReadySet`]: which of a stream's watches may have something to send, so
//! that a stream with ten thousand watches polls only those that were woken
//! (as `FuturesUnordered` does for futures).
//!
//! Each watch is polled with its own [`Waker`] ([`ReadySet::waker`]). Waking
//! it puts the watch's id in the set (once, however often it is woken) and
//! wakes the stream's task. The task takes the ids ([`ReadySet::poll_take`])
//! and, for each, clears its flag *before* polling the watch: a wake-up
//! during or after the poll queues it again, so none is lost.
//!
//! A watch is polled at most once per turn ([`Wakers::take_for_poll`] with
//! the turn's number), even when its id is in the taken list twice (an id
//! cancelled and created again before the list was taken leaves a stale
//! entry beside the new one); a second poll in one turn could put its
//! later events before earlier ones in the message being built.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use super::protocol::WatchId;

/// See the module documentation.
#[derive(Default)]
pub(crate) struct ReadySet {
    /// The woken ids and the stream task's waker. A std mutex: held for a
    /// push or a swap, never across user code (wakers are called outside).
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    ids: Vec<WatchId>,
    task: Option<Waker>,
}

/// One watch's waker.
struct WatchWaker {
    id: WatchId,
    queued: AtomicBool,
    /// The turn it was last polled in (only the stream's task touches it).
    turn: AtomicU64,
    set: Arc<ReadySet>,
}

impl Wake for WatchWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return; // already in the set
        }
        let task = {
            let mut inner = self.set.inner.lock().unwrap_or_else(|e| e.into_inner());
            inner.ids.push(self.id);
            inner.task.take()
        };
        if let Some(t) = task {
            t.wake();
        }
    }
}

/// The wakers of a stream's watches, by id (kept to clear their flags).
#[derive(Default)]
pub(crate) struct Wakers(HashMap<WatchId, (Arc<WatchWaker>, Waker)>);

impl ReadySet {
    /// The waker to poll watch `id` with; the watch starts in the set (so
    /// that it is polled once, which arms it).
    pub(crate) fn waker(self: &Arc<Self>, wakers: &mut Wakers, id: WatchId) -> Waker {
        let w = Arc::new(WatchWaker {
            id,
            queued: AtomicBool::new(false),
            turn: AtomicU64::new(0),
            set: self.clone(),
        });
        let waker = Waker::from(w.clone());
        waker.wake_by_ref();
        wakers.0.insert(id, (w, waker.clone()));
        waker
    }

    /// Takes the woken ids, or registers the task to be woken.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>, out: &mut Vec<WatchId>) -> Poll<()> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.ids.is_empty() {
            match &inner.task {
                Some(t) if t.will_wake(cx.waker()) => {}
                _ => inner.task = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        std::mem::swap(&mut inner.ids, out);
        Poll::Ready(())
    }
}

impl Wakers {
    /// The waker of `id`, its flag cleared: call just before polling it.
    /// `None` if it is gone, or was already polled in `turn` (numbered by
    /// the caller from 1).
    pub(crate) fn take_for_poll(&self, id: WatchId, turn: u64) -> Option<&Waker> {
        let (w, waker) = self.0.get(&id)?;
        if w.turn.swap(turn, Ordering::Relaxed) == turn {
            return None;
        }
        w.queued.store(false, Ordering::Release);
        Some(waker)
    }

    /// Queues `id` again (it had more to send than one turn allows).
    pub(crate) fn requeue(&self, id: WatchId) {
        if let Some((_, waker)) = self.0.get(&id) {
            waker.wake_by_ref();
        }
    }

    pub(crate) fn remove(&mut self, id: WatchId) {
        self.0.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_woken_watch_is_taken_once() {
        let set = Arc::new(ReadySet::default());
        let mut wakers = Wakers::default();
        let a = set.waker(&mut wakers, 1);
        let b = set.waker(&mut wakers, 2);
        let noop = Waker::noop();
        let mut cx = Context::from_waker(noop);
        let mut ids = Vec::new();
        assert!(set.poll_take(&mut cx, &mut ids).is_ready());
        assert_eq!(ids, [1, 2]); // both start in the set
        ids.clear();
        assert!(set.poll_take(&mut cx, &mut ids).is_pending());
        // Woken while still flagged: not queued twice.
        a.wake_by_ref();
        assert!(
            set.poll_take(&mut cx, &mut ids).is_pending(),
            "flag not cleared yet"
        );
        wakers.take_for_poll(1, 1);
        a.wake_by_ref();
        a.wake_by_ref();
        wakers.take_for_poll(2, 1);
        b.wake_by_ref();
        assert!(set.poll_take(&mut cx, &mut ids).is_ready());
        assert_eq!(ids, [1, 2]);
    }

    #[test]
    fn a_watch_is_polled_once_per_turn_even_if_listed_twice() {
        let set = Arc::new(ReadySet::default());
        let mut wakers = Wakers::default();
        let _old = set.waker(&mut wakers, 7);
        // Cancelled and created again before the list is taken: its id is
        // in the list twice.
        wakers.remove(7);
        let _new = set.waker(&mut wakers, 7);
        let mut cx = Context::from_waker(Waker::noop());
        let mut ids = Vec::new();
        assert!(set.poll_take(&mut cx, &mut ids).is_ready());
        assert_eq!(ids, [7, 7]);
        let polled = ids
            .iter()
            .filter(|&&id| wakers.take_for_poll(id, 1).is_some())
            .count();
        assert_eq!(polled, 1);
        // Next turn, polled again.
        assert!(wakers.take_for_poll(7, 2).is_some());
    }
}
