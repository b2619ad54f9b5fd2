//! Blocking receive, for every source: spin briefly (a local watch), then
//! park the thread until a writer, a feeding task or a throttle's deadline
//! wakes it; and the blocking [`Iterator`].

use std::sync::Arc as StdArc;
use std::task::{Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use super::{RecvTimeoutError, Step, Watch, WatchEvent};

/// Attempts before a blocking receive parks: 6 rounds of exponential
/// spinning, then yields.
const SPIN_ROUNDS: u32 = 16;

/// Wakes a parked receiving thread.
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: StdArc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &StdArc<Self>) {
        self.0.unpark();
    }
}

impl Watch {
    /// Blocks until the next event; `None` once the watch has ended (after
    /// its final event). (It parks the thread: in async code use
    /// [`recv_async`](Self::recv_async).)
    pub fn recv(&mut self) -> Option<WatchEvent> {
        self.recv_until(None).ok()
    }

    /// Blocks until the next event or until `timeout` has passed (a timeout
    /// too large to represent, such as `Duration::MAX`, means no deadline).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<WatchEvent, RecvTimeoutError> {
        self.recv_until(Instant::now().checked_add(timeout))
    }

    /// Blocks until the next event or until `deadline`.
    pub fn recv_deadline(&mut self, deadline: Instant) -> Result<WatchEvent, RecvTimeoutError> {
        self.recv_until(Some(deadline))
    }

    fn recv_until(&mut self, deadline: Option<Instant>) -> Result<WatchEvent, RecvTimeoutError> {
        // Spin, then yield, before sleeping: a park/unpark pair costs tens of
        // microseconds on virtual machines, far more than the usual wait for
        // a writer that is already running (crossbeam's backoff, in short).
        // A fed watch's events come from a task that is rarely that close.
        if self.spins() {
            for round in 0..SPIN_ROUNDS {
                if let Some(r) = self.step_result(None) {
                    return r;
                }
                if round < 6 {
                    for _ in 0..(1 << round) {
                        std::hint::spin_loop();
                    }
                } else {
                    thread::yield_now();
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
            }
        }
        loop {
            let waker = self.thread_waker();
            // Register-then-check (inside `step`): anything that arrived
            // before the waker was registered is seen now; anything after
            // wakes this thread.
            let now = Instant::now();
            let due = match self.step(Some(&waker)) {
                Step::Event(e) => return Ok(e),
                Step::Ended => return Err(RecvTimeoutError::Closed),
                Step::Empty(due) => due,
            };
            let wake_at = match (deadline, due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match wake_at {
                None => thread::park(),
                Some(t) if t > now => thread::park_timeout(t - now),
                Some(_) => {}
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return match self.step(None) {
                    Step::Event(e) => Ok(e),
                    Step::Ended => Err(RecvTimeoutError::Closed),
                    Step::Empty(_) => Err(RecvTimeoutError::Timeout),
                };
            }
        }
    }

    fn step_result(&mut self, waker: Option<&Waker>) -> Option<Result<WatchEvent, RecvTimeoutError>> {
        match self.step(waker) {
            Step::Event(e) => Some(Ok(e)),
            Step::Ended => Some(Err(RecvTimeoutError::Closed)),
            Step::Empty(_) => None,
        }
    }

    /// This thread's waker (made once per receiving thread).
    fn thread_waker(&mut self) -> Waker {
        let me = thread::current();
        let rare = self.rare();
        match &rare.thread_waker {
            Some((id, w)) if *id == me.id() => w.clone(),
            _ => {
                let id = me.id();
                let w = Waker::from(StdArc::new(ThreadWaker(me)));
                rare.thread_waker = Some((id, w.clone()));
                w
            }
        }
    }
}

/// Blocking iteration: each `next` is a [`Watch::recv`]. (In async code use
/// [`Watch::recv_async`] or [`Watch::into_stream`].)
impl Iterator for Watch {
    type Item = WatchEvent;
    fn next(&mut self) -> Option<WatchEvent> {
        self.recv()
    }
}
