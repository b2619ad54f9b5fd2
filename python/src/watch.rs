//! A watch for Python: [`NativeWatch`] over the library's one [`Watch`]
//! front end (the same code a Rust program receives with), and [`Event`],
//! an event that converts its fields only when they are read.
//!
//! Blocking receives release the interpreter lock and park the thread;
//! `close` from another thread wakes it. Async receives go through
//! [`NativeWatch::arm`]: the watch's waker posts a token to the client's
//! notifier (`notify.rs`), which wakes the event loop.

use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pyo3::basic::CompareOp;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;
use varwatch::{EventKind, Watch, WatchEvent};

use crate::convert::{time_to, value_to};
use crate::notify::{Notifier, TokenWaker};

/// How long a blocked receive sleeps before it looks at the process's
/// signals (Ctrl-C): a receive that waits forever stays interruptible.
const SIGNAL_SLICE: Duration = Duration::from_millis(100);

/// One event of a watch, immutable. Its fields are converted to Python
/// objects when read.
#[pyclass(module = "varwatch._native", name = "Event", frozen)]
pub struct Event(pub(crate) WatchEvent);

/// The `EventKind` members, by the library's kinds.
fn kind_of<'py>(py: Python<'py>, kind: EventKind) -> PyResult<Bound<'py, PyAny>> {
    static KINDS: PyOnceLock<Vec<Py<PyAny>>> = PyOnceLock::new();
    let kinds = KINDS.get_or_try_init(py, || {
        let class = py.import("varwatch.types")?.getattr("EventKind")?;
        [
            "initial",
            "changed",
            "deleted",
            "lagged",
            "session_closed",
            "disconnected",
        ]
        .iter()
        .map(|n| class.call1((*n,)).map(Bound::unbind))
        .collect::<PyResult<Vec<_>>>()
    })?;
    let i = match kind {
        EventKind::Initial => 0,
        EventKind::Changed => 1,
        EventKind::Deleted => 2,
        EventKind::Lagged { .. } => 3,
        EventKind::SessionClosed => 4,
        _ => 5,
    };
    Ok(kinds[i].bind(py).clone())
}

#[pymethods]
impl Event {
    /// What happened (an `EventKind`).
    #[getter]
    fn kind<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        kind_of(py, self.0.kind())
    }
    /// The variable's name.
    #[getter]
    fn name(&self) -> &str {
        self.0.variable_name()
    }
    /// The variable's id.
    #[getter]
    fn id(&self) -> &str {
        self.0.variable_id()
    }
    /// The version this event brings the variable to (for `LAGGED`, the
    /// last version skipped; for `DELETED`, the deletion's).
    #[getter]
    fn version(&self) -> u64 {
        self.0.version()
    }
    /// The session revision of the event's group.
    #[getter]
    fn revision(&self) -> u64 {
        self.0.revision()
    }
    /// The new value (`INITIAL`, `CHANGED`), else `None`.
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self.0.value() {
            Some(v) => value_to(py, v),
            None => Ok(py.None().into_bound(py)),
        }
    }
    /// The previous value (`CHANGED`), or the last one (`DELETED`).
    #[getter]
    fn old_value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self.0.old_value() {
            Some(v) => value_to(py, v),
            None => Ok(py.None().into_bound(py)),
        }
    }
    /// The writer's source, if it named one.
    #[getter]
    fn source(&self) -> Option<&str> {
        self.0.source()
    }
    /// The writer's metadata of the change (a read-only mapping).
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let d = PyDict::new(py);
        if let Some(m) = self.0.metadata() {
            for (k, v) in m {
                d.set_item(k, v)?;
            }
        }
        py.import("types")?.getattr("MappingProxyType")?.call1((d,))
    }
    /// When the change was made (UTC), if known.
    #[getter]
    fn timestamp<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        time_to(py, self.0.timestamp())
    }
    /// For `LAGGED`: the first and last versions not delivered.
    #[getter]
    fn lag(&self) -> Option<(u64, u64)> {
        match self.0.kind() {
            EventKind::Lagged { first, last } => Some((first, last)),
            _ => None,
        }
    }
    /// For a coalescing watch: how many versions this event passed over.
    #[getter]
    fn skipped(&self) -> u64 {
        self.0.skipped()
    }
    /// Whether this is an initial state.
    #[getter]
    fn is_initial(&self) -> bool {
        self.0.is_initial()
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.0)
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> PyResult<bool> {
        let same = match other.cast::<Event>() {
            Ok(o) => {
                let (a, b) = (&self.0, &o.get().0);
                a.kind() == b.kind()
                    && a.variable_id() == b.variable_id()
                    && a.variable_name() == b.variable_name()
                    && a.version() == b.version()
                    && a.revision() == b.revision()
                    && a.value() == b.value()
                    && a.old_value() == b.old_value()
                    && a.skipped() == b.skipped()
            }
            Err(_) => false,
        };
        match op {
            CompareOp::Eq => Ok(same),
            CompareOp::Ne => Ok(!same),
            _ => Err(PyValueError::new_err("events are not ordered")),
        }
    }
}

/// Wakes a parked receiving thread.
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

struct State {
    /// `None` once closed (dropping it cancels it on the server).
    watch: Option<Watch>,
    /// An event an async receive found while arming (handed out next).
    pending: Option<WatchEvent>,
    /// The watch has delivered its last event.
    ended: bool,
    /// A thread blocked in `next` (woken by `close`).
    parked: Option<Thread>,
    /// The waker of the last poll that found nothing (woken by `close`, so
    /// that a set or a task waiting on this watch learns it ended).
    waker: Option<Waker>,
    /// The counters as they were when the watch was closed.
    last_stats: Option<varwatch::WatchStats>,
}

/// A watch, as the Python package's `Watch` and `AsyncWatch` use it.
#[pyclass(module = "varwatch._native", frozen)]
pub struct NativeWatch {
    state: Mutex<State>,
    notifier: Arc<Notifier>,
}

impl NativeWatch {
    pub(crate) fn new(watch: Watch, notifier: Arc<Notifier>) -> NativeWatch {
        NativeWatch {
            state: Mutex::new(State {
                watch: Some(watch),
                pending: None,
                ended: false,
                parked: None,
                waker: None,
                last_stats: None,
            }),
            notifier,
        }
    }

    /// The notifier of the client this watch belongs to.
    pub(crate) fn notifier(&self) -> &Arc<Notifier> {
        &self.notifier
    }

    /// One look: an event, `Ok(None)` for nothing now, `Err(())` once over.
    pub(crate) fn poll(&self, cx: &mut Context<'_>) -> Result<Option<WatchEvent>, ()> {
        let mut st = self.state.lock();
        if let Some(e) = st.pending.take() {
            return Ok(Some(e));
        }
        let Some(w) = st.watch.as_mut() else {
            return Err(());
        };
        match w.poll_recv(cx) {
            Poll::Ready(Some(e)) => Ok(Some(e)),
            Poll::Ready(None) => {
                st.ended = true;
                Err(())
            }
            Poll::Pending => {
                st.parked = Some(thread::current());
                if !st.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    st.waker = Some(cx.waker().clone());
                }
                Ok(None)
            }
        }
    }

    fn recv_until(&self, deadline: Option<Instant>) -> Result<Option<WatchEvent>, PyErr> {
        let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
        let mut cx = Context::from_waker(&waker);
        loop {
            match self.poll(&mut cx) {
                Ok(Some(e)) => return Ok(Some(e)),
                Err(()) => return Ok(None),
                Ok(None) => {}
            }
            let now = Instant::now();
            let slice = match deadline {
                Some(d) if d <= now => return Ok(None),
                Some(d) => (d - now).min(SIGNAL_SLICE),
                None => SIGNAL_SLICE,
            };
            thread::park_timeout(slice);
            self.state.lock().parked = None;
            Python::attach(|py| py.check_signals())?;
        }
    }
}

#[pymethods]
impl NativeWatch {
    /// The next event, waiting for it (without the interpreter lock);
    /// `None` when the watch has ended or `timeout` seconds passed.
    #[pyo3(signature = (timeout=None))]
    fn next(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Event>> {
        let deadline = match timeout {
            None => None,
            Some(t) if t.is_nan() || t < 0.0 => {
                return Err(PyValueError::new_err(format!(
                    "timeout {t} is not a number of seconds"
                )));
            }
            Some(t) => Instant::now().checked_add(Duration::try_from_secs_f64(t).unwrap_or(Duration::MAX)),
        };
        // An event already queued is taken without letting go of the
        // interpreter lock (a reader that keeps up pays for no hand-over);
        // only a wait releases it.
        match self.poll(&mut Context::from_waker(Waker::noop())) {
            Ok(Some(e)) => return Ok(Some(Event(e))),
            Err(()) => return Ok(None),
            Ok(None) => {}
        }
        Ok(py.detach(|| self.recv_until(deadline))?.map(Event))
    }

    /// The next event if one is ready, else `None`.
    fn try_next(&self) -> Option<Event> {
        self.poll(&mut Context::from_waker(Waker::noop()))
            .ok()
            .flatten()
            .map(Event)
    }

    /// Registers for a wake-up: when an event may be ready, `token` is
    /// posted to the client's notifier. `True` if one is ready now (or the
    /// watch is over): receive again without waiting.
    fn arm(&self, token: u64) -> bool {
        let waker = Waker::from(Arc::new(TokenWaker {
            token,
            notifier: self.notifier.clone(),
        }));
        match self.poll(&mut Context::from_waker(&waker)) {
            Ok(Some(e)) => {
                self.state.lock().pending = Some(e);
                true
            }
            Ok(None) => false,
            Err(()) => true,
        }
    }

    /// Ends the watch: cancelled on the server at once; a thread blocked in
    /// `next` returns `None`.
    fn close(&self) {
        let (watch, parked, waker) = {
            let mut st = self.state.lock();
            st.ended = true;
            st.pending = None;
            st.last_stats = st.watch.as_ref().map(Watch::stats).or(st.last_stats.take());
            (st.watch.take(), st.parked.take(), st.waker.take())
        };
        drop(watch);
        if let Some(t) = parked {
            t.unpark();
        }
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Whether the watch is over: closed, or its last event received.
    #[getter]
    fn ended(&self) -> bool {
        let st = self.state.lock();
        st.pending.is_none() && (st.ended || st.watch.is_none())
    }

    /// The watch's counters, as a dict (`events_delivered`,
    /// `events_filtered`, `lag_events`, `versions_skipped`, `queue_depth`,
    /// `reconnects`, `heartbeats`, `shared`).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        let st = self.state.lock();
        if let Some(s) = st
            .watch
            .as_ref()
            .map(Watch::stats)
            .or_else(|| st.last_stats.clone())
        {
            d.set_item("events_delivered", s.events_delivered)?;
            d.set_item("events_filtered", s.events_filtered)?;
            d.set_item("lag_events", s.lag_events)?;
            d.set_item("versions_skipped", s.versions_skipped)?;
            d.set_item("queue_depth", s.queue_depth)?;
            d.set_item("reconnects", s.reconnects)?;
            d.set_item("heartbeats", s.heartbeats)?;
            d.set_item("shared", s.shared)?;
        }
        Ok(d)
    }
}
