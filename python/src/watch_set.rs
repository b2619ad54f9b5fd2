//! [`NativeWatchSet`]: many watches received together, by one thread or
//! one task — the way to follow hundreds or thousands of watches from
//! Python without a thread or a task per watch.
//!
//! Each member's waker marks the member ready (once) and wakes whoever
//! waits on the set: a parked thread, or, once armed, the client's
//! notifier (the asyncio loop). A receive takes the ready members in the
//! order they became ready and polls each for what it holds, up to the
//! batch's size; a member that still holds more goes back to the end of
//! the line, so one busy watch cannot starve the others.
//!
//! Lock order: the set's `ready`, never held while a member is polled (a
//! member's waker may run inside its poll and takes `ready`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::notify::Notifier;
use crate::watch::{Event, NativeWatch};

/// How long a blocked receive sleeps before it looks at the process's
/// signals (as `NativeWatch::next`).
const SIGNAL_SLICE: Duration = Duration::from_millis(100);

/// The members ready to be polled, and who waits for them.
struct Ready {
    /// Indices of ready members, each at most once.
    queue: VecDeque<usize>,
    queued: Vec<bool>,
    /// Members that have ended (their last event handed out).
    ended: Vec<bool>,
    ended_count: usize,
    /// A thread blocked in `next_batch`.
    parked: Option<Thread>,
    /// An async receive's token, posted to the notifier at the next
    /// readiness (then cleared).
    armed: Option<u64>,
}

struct Shared {
    ready: Mutex<Ready>,
    notifier: Option<Arc<Notifier>>,
}

impl Shared {
    /// Member `i` may have something: queue it, wake the waiter.
    fn mark(&self, i: usize) {
        let mut r = self.ready.lock();
        if r.queued[i] || r.ended[i] {
            return;
        }
        r.queued[i] = true;
        r.queue.push_back(i);
        let parked = r.parked.take();
        let armed = r.armed.take();
        drop(r);
        if let Some(t) = parked {
            t.unpark();
        }
        if let (Some(token), Some(n)) = (armed, &self.notifier) {
            n.post(token);
        }
    }
}

/// A member's waker: marks it ready in its set.
struct MemberWaker {
    set: Arc<Shared>,
    index: usize,
}

impl Wake for MemberWaker {
    fn wake(self: Arc<Self>) {
        self.set.mark(self.index);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.set.mark(self.index);
    }
}

/// Several watches received together (see the module docs).
#[pyclass(module = "varwatch._native", frozen)]
pub struct NativeWatchSet {
    members: Vec<Py<NativeWatch>>,
    wakers: Vec<Waker>,
    shared: Arc<Shared>,
}

impl NativeWatchSet {
    /// Takes up to `max` events from the ready members: `(index, event)`.
    fn drain(&self, py: Python<'_>, max: usize, out: &mut Vec<(usize, Event)>) {
        while out.len() < max {
            let i = {
                let mut r = self.shared.ready.lock();
                let Some(i) = r.queue.pop_front() else {
                    return;
                };
                r.queued[i] = false; // polled below: a wake-up from now queues it again
                i
            };
            let member = self.members[i].bind(py).get();
            let mut cx = Context::from_waker(&self.wakers[i]);
            loop {
                if out.len() == max {
                    // More may be there: back in line, behind the others.
                    self.shared.mark(i);
                    return;
                }
                match member.poll(&mut cx) {
                    Ok(Some(e)) => out.push((i, Event(e))),
                    Ok(None) => break, // its waker will queue it again
                    Err(()) => {
                        let mut r = self.shared.ready.lock();
                        if !r.ended[i] {
                            r.ended[i] = true;
                            r.ended_count += 1;
                        }
                        break;
                    }
                }
            }
        }
    }

    fn all_ended(&self) -> bool {
        let r = self.shared.ready.lock();
        r.ended_count == self.members.len()
    }
}

#[pymethods]
impl NativeWatchSet {
    /// A set of `watches` (each received only through the set from now on).
    #[new]
    fn new(py: Python<'_>, watches: Vec<Py<NativeWatch>>) -> NativeWatchSet {
        let n = watches.len();
        let notifier = watches.first().map(|w| w.bind(py).get().notifier().clone());
        let shared = Arc::new(Shared {
            ready: Mutex::new(Ready {
                // Every member is polled once, which registers its waker.
                queue: (0..n).collect(),
                queued: vec![true; n],
                ended: vec![false; n],
                ended_count: 0,
                parked: None,
                armed: None,
            }),
            notifier,
        });
        let wakers = (0..n)
            .map(|index| {
                Waker::from(Arc::new(MemberWaker {
                    set: shared.clone(),
                    index,
                }))
            })
            .collect();
        NativeWatchSet {
            members: watches,
            wakers,
            shared,
        }
    }

    /// Up to `max` events of the members, `(index, event)`, waiting (without
    /// the interpreter lock) until there is one; an empty list once every
    /// member has ended or, with `timeout`, when that many seconds passed.
    #[pyo3(signature = (max=1024, timeout=None))]
    fn next_batch(&self, py: Python<'_>, max: usize, timeout: Option<f64>) -> PyResult<Vec<(usize, Event)>> {
        let deadline = match timeout {
            None => None,
            Some(t) if t.is_nan() || t < 0.0 => {
                return Err(PyValueError::new_err(format!(
                    "timeout {t} is not a number of seconds"
                )));
            }
            Some(t) => Instant::now().checked_add(Duration::try_from_secs_f64(t).unwrap_or(Duration::MAX)),
        };
        let max = max.max(1);
        let mut out = Vec::new();
        loop {
            self.drain(py, max, &mut out);
            if !out.is_empty() || self.all_ended() {
                return Ok(out);
            }
            let now = Instant::now();
            let slice = match deadline {
                Some(d) if d <= now => return Ok(out),
                Some(d) => (d - now).min(SIGNAL_SLICE),
                None => SIGNAL_SLICE,
            };
            {
                let mut r = self.shared.ready.lock();
                if !r.queue.is_empty() {
                    continue;
                }
                r.parked = Some(thread::current());
            }
            py.detach(|| thread::park_timeout(slice));
            self.shared.ready.lock().parked = None;
            py.check_signals()?;
        }
    }

    /// Up to `max` events that are ready now (never waits).
    #[pyo3(signature = (max=1024))]
    fn try_batch(&self, py: Python<'_>, max: usize) -> Vec<(usize, Event)> {
        let mut out = Vec::new();
        self.drain(py, max.max(1), &mut out);
        out
    }

    /// Registers for a wake-up: when a member may be ready, `token` is
    /// posted to the client's notifier. `True` if one is ready now (or
    /// every member has ended): receive again without waiting.
    fn arm(&self, token: u64) -> bool {
        let mut r = self.shared.ready.lock();
        if !r.queue.is_empty() || r.ended_count == self.members.len() {
            return true;
        }
        r.armed = Some(token);
        false
    }

    /// Whether every member has ended.
    #[getter]
    fn ended(&self) -> bool {
        self.all_ended()
    }

    /// The number of members.
    fn __len__(&self) -> usize {
        self.members.len()
    }
}
