//! A client for Python: [`NativeClient`] over the library's `RemoteStore`
//! (the same client a Rust program uses: one connection, one watch stream,
//! heartbeats, reconnects, resumes, the catch-up rule, the errors).
//!
//! Every operation goes through the store's operation table: Python names
//! the operation and passes its arguments; [`request`] builds the
//! [`Request`], [`answer`] turns the [`Response`] into Python's shape. A
//! blocking call releases the interpreter lock while it waits; an async one
//! ([`NativeClient::start`], [`NativeClient::poll`]) runs on the client's
//! runtime and wakes the event loop through the notifier.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use parking_lot::Mutex;
use pyo3::conversion::FromPyObjectOwned;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use varwatch::ops::{Request, Response, WatchTarget};
use varwatch::transport::grpc::{Certificate, ClientTlsConfig};
use varwatch::transport::{AsyncRemoteStore, RemoteConfig, RemoteStore};
use varwatch::{AsyncVarStore, Error, ErrorCode, OverflowPolicy, VarStore, Watch, WatchOptions};

use crate::convert::{
    batch_update_from, get_many_to, metadata_from, session_info_to, session_options, update_options,
    value_from, value_to, var_def_from, var_def_to, var_type_from, variable_to,
};
use crate::errors::{exception, to_py};
use crate::notify::{Notifier, TokenWaker};
use crate::watch::NativeWatch;

/// What an operation asks for: a request of the table, or a watch.
enum Call {
    Op(Op, Request),
    Watch(String, WatchTarget, WatchOptions),
}

/// How an operation's answer is shown (several operations share a request).
#[derive(Clone, Copy)]
enum Op {
    Session,
    Done,
    Sessions,
    Registered,
    Variable,
    Value,
    Many,
    Variables,
    Export,
    Version,
    Versions,
    Items,
    Imported,
}

/// What an operation produced.
enum Output {
    Response(Op, Response),
    Watch(Watch),
}

type Pending = Pin<Box<dyn Future<Output = Result<Output, Error>> + Send>>;

fn arg<'py, T: FromPyObjectOwned<'py>>(args: &Bound<'py, PyTuple>, i: usize, what: &str) -> PyResult<T> {
    args.get_item(i)
        .map_err(|_| PyTypeError::new_err(format!("missing argument `{what}`")))?
        .extract::<T>()
        .map_err(|e| {
            let e: PyErr = e.into();
            PyTypeError::new_err(format!("argument `{what}`: {e}"))
        })
}

fn any<'py>(args: &Bound<'py, PyTuple>, i: usize, what: &str) -> PyResult<Bound<'py, PyAny>> {
    args.get_item(i)
        .map_err(|_| PyTypeError::new_err(format!("missing argument `{what}`")))
}

fn each<'py, T>(
    obj: &Bound<'py, PyAny>,
    mut f: impl FnMut(&Bound<'py, PyAny>) -> PyResult<T>,
) -> PyResult<Vec<T>> {
    obj.try_iter()?.map(|x| f(&x?)).collect()
}

/// The call that `op` with `args` (positional, in the order the Python
/// client passes them) stands for.
fn request(op: &str, args: &Bound<'_, PyTuple>) -> PyResult<Call> {
    let s = |i| arg::<String>(args, i, "session");
    Ok(match op {
        "create_session" | "get_or_create_session" => {
            let options = session_options(arg(args, 1, "ttl")?, Some(&any(args, 2, "metadata")?))?;
            let session = s(0)?;
            let r = if op == "create_session" {
                Request::CreateSession { session, options }
            } else {
                Request::GetOrCreateSession { session, options }
            };
            Call::Op(Op::Session, r)
        }
        "session" => Call::Op(Op::Session, Request::GetSession { session: s(0)? }),
        "delete_session" => Call::Op(Op::Done, Request::DeleteSession { session: s(0)? }),
        "list_sessions" => Call::Op(Op::Sessions, Request::ListSessions),
        "register" => {
            let ty = var_type_from(&any(args, 2, "type")?)?;
            let mut def = varwatch::VarDef::new(
                arg::<String>(args, 1, "name")?,
                ty,
                value_from(&any(args, 3, "value")?)?,
            )
            .constraints(crate::convert::constraints_from(Some(&any(
                args,
                4,
                "constraints",
            )?))?);
            def.metadata = metadata_from(Some(&any(args, 5, "metadata")?))?;
            Call::Op(Op::Registered, Request::Register { session: s(0)?, def })
        }
        "get" | "value" => {
            let r = Request::Get {
                session: s(0)?,
                variable: arg(args, 1, "variable")?,
            };
            Call::Op(if op == "get" { Op::Variable } else { Op::Value }, r)
        }
        "get_many" => {
            let variables = each(&any(args, 1, "variables")?, |v| v.extract::<String>())?;
            Call::Op(
                Op::Many,
                Request::GetMany {
                    session: s(0)?,
                    variables,
                },
            )
        }
        "list_variables" | "export" => {
            let pattern = if op == "export" {
                None
            } else {
                arg(args, 1, "pattern")?
            };
            let r = Request::ListVariables {
                session: s(0)?,
                pattern,
            };
            Call::Op(if op == "export" { Op::Export } else { Op::Variables }, r)
        }
        "update" => Call::Op(
            Op::Version,
            Request::Update {
                session: s(0)?,
                variable: arg(args, 1, "variable")?,
                value: value_from(&any(args, 2, "value")?)?,
                options: update_options(
                    arg(args, 3, "expected_version")?,
                    arg(args, 4, "source")?,
                    Some(&any(args, 5, "metadata")?),
                )?,
            },
        ),
        "update_atomic" | "update_best_effort" => {
            let atomic = op == "update_atomic";
            let r = Request::UpdateMany {
                session: s(0)?,
                items: each(&any(args, 1, "updates")?, batch_update_from)?,
                options: update_options(None, arg(args, 2, "source")?, Some(&any(args, 3, "metadata")?))?,
                atomic,
            };
            Call::Op(if atomic { Op::Versions } else { Op::Items }, r)
        }
        "delete_variable" => Call::Op(
            Op::Done,
            Request::DeleteVariable {
                session: s(0)?,
                variable: arg(args, 1, "variable")?,
            },
        ),
        "import_variables" => Call::Op(
            Op::Imported,
            Request::Import {
                session: s(0)?,
                defs: each(&any(args, 1, "definitions")?, var_def_from)?,
            },
        ),
        "watch" => {
            let variables = any(args, 1, "variables")?;
            let target = if variables.is_none() {
                WatchTarget::Session
            } else {
                WatchTarget::Variables(each(&variables, |v| v.extract::<String>())?)
            };
            let mut opts = WatchOptions::new().include_initial(arg(args, 2, "include_initial")?);
            let capacity: usize = arg(args, 3, "capacity")?;
            if capacity > 0 {
                opts = opts.capacity(capacity);
            }
            if arg::<bool>(args, 4, "coalesce")? {
                opts = opts.coalesce();
            }
            if let Some(t) = arg::<Option<f64>>(args, 5, "throttle")? {
                let d = Duration::try_from_secs_f64(t).map_err(|_| {
                    PyValueError::new_err(format!("throttle {t} is not a duration in seconds"))
                })?;
                opts = opts.throttle(d.max(Duration::from_millis(1)));
            }
            opts = opts.on_overflow(match arg::<String>(args, 6, "overflow")?.as_str() {
                "resync" => OverflowPolicy::Resync,
                "coalesce" => OverflowPolicy::Coalesce,
                "close" => OverflowPolicy::Close,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "overflow must be 'resync', 'coalesce' or 'close', not {other:?}"
                    )));
                }
            });
            if let Some(n) = arg::<Option<usize>>(args, 7, "buffer")? {
                opts = opts.buffer(n);
            }
            Call::Watch(s(0)?, target, opts)
        }
        other => return Err(PyValueError::new_err(format!("no operation {other:?}"))),
    })
}

/// A response of the wrong kind (a broken server).
fn unexpected(r: Response) -> Error {
    Error::Remote {
        code: ErrorCode::Other,
        message: format!("unexpected answer from the server: {r:?}"),
    }
}

/// The answer in Python's shape.
fn answer<'py>(py: Python<'py>, op: Op, r: Response) -> PyResult<Bound<'py, PyAny>> {
    Ok(match (op, r) {
        (Op::Session, Response::Session(s)) => session_info_to(py, &s)?,
        (Op::Done, Response::Done) => py.None().into_bound(py),
        (Op::Sessions, Response::Sessions(ids)) => PyList::new(py, ids)?.into_any(),
        (Op::Registered, Response::Registered(id)) => id.into_pyobject(py)?.into_any(),
        (Op::Imported, Response::Imported(ids)) => PyList::new(py, ids)?.into_any(),
        (Op::Variable, Response::Variable(v)) => variable_to(py, &v)?,
        (Op::Value, Response::Variable(v)) => value_to(py, v.value())?,
        (Op::Many, Response::Many(g)) => get_many_to(py, &g)?,
        (Op::Variables, Response::Variables(l)) => PyList::new(
            py,
            l.iter()
                .map(|v| variable_to(py, v))
                .collect::<PyResult<Vec<_>>>()?,
        )?
        .into_any(),
        (Op::Export, Response::Variables(l)) => PyList::new(
            py,
            l.iter()
                .map(|v| var_def_to(py, &varwatch::VarDef::from(v)))
                .collect::<PyResult<Vec<_>>>()?,
        )?
        .into_any(),
        (Op::Version, Response::Version(v)) => v.into_pyobject(py)?.into_any(),
        (Op::Versions, Response::Items(items)) => {
            let versions: Result<Vec<u64>, Error> = items.into_iter().collect();
            PyList::new(py, versions.map_err(to_py)?)?.into_any()
        }
        (Op::Items, Response::Items(items)) => {
            let list = PyList::empty(py);
            for item in items {
                match item {
                    Ok(v) => list.append(v)?,
                    Err(e) => list.append(exception(py, &e)?)?,
                }
            }
            list.into_any()
        }
        (_, other) => return Err(to_py(unexpected(other))),
    })
}

/// The Python package's client: one `RemoteStore`, its async view, and the
/// notifier that wakes the event loop of an `AsyncClient`.
#[pyclass(module = "varwatch._native", frozen)]
pub struct NativeClient {
    store: RemoteStore,
    aio: AsyncRemoteStore,
    notifier: Arc<Notifier>,
    /// Async operations in flight, by token.
    pending: Mutex<HashMap<u64, Pending>>,
    closed: AtomicBool,
}

impl NativeClient {
    fn check_open(&self, py: Python<'_>) -> PyResult<()> {
        if self.closed.load(Ordering::Acquire) {
            let cancelled = py.import("varwatch.errors")?.getattr("Cancelled")?;
            return Err(PyErr::from_value(cancelled.call1(("the client is closed",))?));
        }
        Ok(())
    }

    fn output<'py>(&self, py: Python<'py>, out: Output) -> PyResult<Bound<'py, PyAny>> {
        match out {
            Output::Response(op, r) => answer(py, op, r),
            Output::Watch(w) => Ok(Bound::new(py, NativeWatch::new(w, self.notifier.clone()))?.into_any()),
        }
    }
}

/// `s` seconds as a duration: positive and finite, or a `ValueError`
/// naming `what`.
fn secs(what: &str, s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| PyValueError::new_err(format!("{what} must be a positive number of seconds, not {s}")))
}

#[pymethods]
impl NativeClient {
    /// A client of the server at `address` (one `host:port`, or several
    /// replicas used one at a time: `RemoteStore::connect_any`). Nothing is
    /// sent until the first call (the connection is made then, and again
    /// whenever it is lost).
    #[new]
    #[pyo3(signature = (address, token, tls, root_certificates, timeout, buffer, heartbeat_interval, heartbeat_timeout, backoff_initial, backoff_max, max_failures))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        address: Vec<String>,
        token: Option<String>,
        tls: bool,
        root_certificates: Option<Vec<u8>>,
        timeout: f64,
        buffer: usize,
        heartbeat_interval: f64,
        heartbeat_timeout: f64,
        backoff_initial: f64,
        backoff_max: f64,
        max_failures: Option<u32>,
    ) -> PyResult<NativeClient> {
        let mut config = RemoteConfig::new()
            .call_timeout(secs("timeout", timeout)?)
            .buffer(buffer)
            .heartbeats(
                secs("heartbeat_interval", heartbeat_interval)?,
                secs("heartbeat_timeout", heartbeat_timeout)?,
            )
            .backoff(secs("backoff", backoff_initial)?, secs("backoff", backoff_max)?);
        if let Some(t) = token {
            config = config.token(t);
        }
        if let Some(n) = max_failures {
            config = config.max_failures(n);
        }
        let store = if tls || root_certificates.is_some() {
            let tls = match root_certificates {
                Some(pem) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
                None => ClientTlsConfig::new().with_webpki_roots(),
            };
            RemoteStore::connect_tls_any(&address, tls, config)
        } else {
            RemoteStore::connect_any(&address, config)
        }
        .map_err(to_py)?;
        let notifier = Notifier::new()
            .map_err(|e| PyValueError::new_err(format!("cannot make the client's notifier: {e}")))?;
        Ok(NativeClient {
            aio: store.to_async(),
            store,
            notifier: Arc::new(notifier),
            pending: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
        })
    }

    /// Runs operation `op` (blocking, without the interpreter lock).
    /// `timeout`: this call's deadline in seconds (`None`: the client's).
    #[pyo3(signature = (op, timeout, *args))]
    fn call<'py>(
        &self,
        py: Python<'py>,
        op: &str,
        timeout: Option<f64>,
        args: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.check_open(py)?;
        let store = match timeout {
            Some(t) => self.store.with_call_timeout(secs("timeout", t)?),
            None => self.store.clone(),
        };
        let out = match request(op, args)? {
            Call::Op(op, r) => py
                .detach(|| VarStore::call(&store, r))
                .map(|r| Output::Response(op, r)),
            Call::Watch(session, target, opts) => py
                .detach(|| VarStore::open_watch(&store, &session, target, opts))
                .map(Output::Watch),
        };
        self.output(py, out.map_err(to_py)?)
    }

    /// Starts operation `op` on the client's runtime; its progress posts
    /// `token` to the notifier. Take its result with [`poll`](Self::poll).
    /// `timeout`: this call's deadline in seconds (`None`: the client's).
    #[pyo3(signature = (token, op, timeout, *args))]
    fn start(&self, token: u64, op: &str, timeout: Option<f64>, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.check_open(args.py())?;
        let aio = match timeout {
            Some(t) => self.aio.with_call_timeout(secs("timeout", t)?),
            None => self.aio.clone(),
        };
        let fut: Pending = match request(op, args)? {
            Call::Op(op, r) => Box::pin(async move {
                AsyncVarStore::call(&aio, r)
                    .await
                    .map(|r| Output::Response(op, r))
            }),
            Call::Watch(session, target, opts) => Box::pin(async move {
                AsyncVarStore::open_watch(&aio, &session, target, opts)
                    .await
                    .map(Output::Watch)
            }),
        };
        self.pending.lock().insert(token, fut);
        Ok(())
    }

    /// Polls the operation of `token`: `(True, result)` once it is done
    /// (its error raised), `(False, None)` while it runs (its progress
    /// posts `token` again).
    fn poll<'py>(&self, py: Python<'py>, token: u64) -> PyResult<(bool, Bound<'py, PyAny>)> {
        let Some(mut fut) = self.pending.lock().remove(&token) else {
            return Err(PyValueError::new_err(format!("no operation {token} in flight")));
        };
        let waker = Waker::from(Arc::new(TokenWaker {
            token,
            notifier: self.notifier.clone(),
        }));
        match fut.as_mut().poll(&mut Context::from_waker(&waker)) {
            Poll::Ready(out) => Ok((true, self.output(py, out.map_err(to_py)?)?)),
            Poll::Pending => {
                self.pending.lock().insert(token, fut);
                Ok((false, py.None().into_bound(py)))
            }
        }
    }

    /// Forgets the operation of `token` (its awaiting task was cancelled):
    /// a watch it was opening is released.
    fn cancel(&self, token: u64) {
        let fut = self.pending.lock().remove(&token);
        drop(fut);
    }

    /// The descriptor an event loop reads to learn that tokens were posted
    /// (`loop.add_reader`).
    fn notifier_fd(&self) -> i32 {
        self.notifier.fd()
    }

    /// The tokens posted since the last call.
    fn take_ready(&self) -> Vec<u64> {
        self.notifier.take()
    }

    /// Closes the client: every watch ends with `DISCONNECTED`, later
    /// calls raise `Cancelled`, operations in flight are dropped.
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.pending.lock().clear();
        self.store.close();
    }

    /// The client's settings, as the Rust client holds them (seconds for
    /// durations): `timeout`, `buffer`, `heartbeat_interval`,
    /// `heartbeat_timeout`, `backoff` (first, most), `max_failures`.
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let c = self.store.config();
        let d = pyo3::types::PyDict::new(py);
        d.set_item("timeout", c.call_timeout.as_secs_f64())?;
        d.set_item("buffer", c.buffer)?;
        d.set_item("heartbeat_interval", c.heartbeat_interval.as_secs_f64())?;
        d.set_item("heartbeat_timeout", c.heartbeat_timeout.as_secs_f64())?;
        d.set_item(
            "backoff",
            (c.backoff_initial.as_secs_f64(), c.backoff_max.as_secs_f64()),
        )?;
        d.set_item("max_failures", c.max_failures)?;
        Ok(d)
    }

    /// Whether `close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// The catch-up rule, as the shared test vectors exercise it (the Python
/// package runs the same code as the Rust client; its tests replay the
/// vectors through this).
#[pyfunction]
#[pyo3(signature = (mode, whole_session, held, next, now, version))]
#[allow(clippy::type_complexity)]
pub fn catch_up(
    mode: &str,
    whole_session: bool,
    held: &str,
    next: u64,
    now: &str,
    version: u64,
) -> PyResult<Option<(Option<(u64, u64)>, Option<(String, u64)>, Option<u64>)>> {
    varwatch::testing::catch_up(mode, whole_session, held, next, now, version).map_err(PyValueError::new_err)
}
