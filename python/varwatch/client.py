"""The blocking client: :class:`Client` and its :class:`Watch`."""
from __future__ import annotations

import logging
import queue
import threading
import time
import weakref
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Union

import grpc

from . import _convert
from ._core import ENDED, Config, Core, Down, Overflow, Subscription
from ._proto import varwatch_pb2 as pb
from ._proto import varwatch_pb2_grpc as rpc
from .errors import DeadlineExceeded, Unavailable, VarwatchError, from_code_name, from_rpc_error
from .types import BatchUpdate, Constraints, Event, GetMany, SessionInfo, VarDef, Variable, VarType

__all__ = ["Client", "Watch", "channel_options"]


def channel_options() -> list:
    """The channel options varwatch's clients use: no limit on received
    messages (an event carries its value and its old value, so one can be
    twice the server's value limit, over grpcio's default 4 MiB)."""
    return [("grpc.max_receive_message_length", -1)]


class _Base:
    """What both clients share: settings, request building, answers."""

    def __init__(
        self,
        address: str,
        *,
        token: Optional[str] = None,
        tls: bool = False,
        root_certificates: Optional[bytes] = None,
        timeout: float = 30.0,
        buffer: int = 1024,
        heartbeat_interval: float = 5.0,
        heartbeat_timeout: float = 15.0,
        backoff: Sequence[float] = (0.1, 30.0),
        max_failures: Optional[int] = None,
    ):
        if timeout <= 0 or heartbeat_interval <= 0 or heartbeat_timeout <= 0:
            raise ValueError("timeouts and intervals must be positive")
        if buffer < 1:
            raise ValueError("buffer must be at least 1")
        self.address = address
        self.timeout = timeout
        self._metadata = [("authorization", f"Bearer {token}")] if token else []
        self._tls = tls or root_certificates is not None
        self._root_certificates = root_certificates
        self._config = Config(
            buffer=buffer,
            heartbeat_interval=heartbeat_interval,
            heartbeat_timeout=max(heartbeat_timeout, heartbeat_interval),
            backoff_initial=max(0.001, float(backoff[0])),
            backoff_max=max(float(backoff[0]), float(backoff[1])),
            max_failures=max_failures,
        )

    def _credentials(self):
        return grpc.ssl_channel_credentials(root_certificates=self._root_certificates)


def _sub(session: str, variables: Optional[Iterable[str]], capacity: int, coalesce: bool, throttle: Optional[float]):
    if isinstance(variables, str):
        variables = [variables]
    names = None if variables is None else tuple(variables)
    if names is not None and not names:
        raise ValueError("a watch needs at least one variable (or None for the whole session)")
    throttle_ms = None if throttle is None else max(1, int(throttle * 1000))
    return Subscription(session, names, max(0, int(capacity)), bool(coalesce or throttle_ms), throttle_ms)


def _overflow(policy: str, coalescing: bool) -> Overflow:
    if coalescing:
        return Overflow.COALESCE
    try:
        return Overflow(policy)
    except ValueError:
        raise ValueError(f"overflow must be 'resync', 'coalesce' or 'close', not {policy!r}") from None


def _buffer(buffer: Optional[int], default: int) -> int:
    if buffer is None:
        return default
    if buffer < 1:
        raise ValueError("a watch's buffer holds at least 1 event")
    return buffer


class Client(_Base):
    """A blocking client of a varwatch server.

    ::

        with varwatch.Client("127.0.0.1:50551", token=...) as client:
            client.create_session("lab")
            client.register("lab", "t", "float", 20.0)
            client.update("lab", "t", 21.5)
            with client.watch("lab", ["t"]) as w:
                for event in w:
                    print(event.kind, event.name, event.value)

    Every call has a deadline (``timeout``, 30 s) and raises a
    :class:`~varwatch.VarwatchError` subclass on failure. Watches of one
    client share one stream (a background thread while any is open); they
    heartbeat, reconnect with backoff and jitter, and resume from the last
    versions seen (see :class:`Watch`).

    :param address: ``host:port``.
    :param token: a bearer token, sent with every call.
    :param tls: connect over TLS (with the system's roots, or
        ``root_certificates`` in PEM).
    :param timeout: the deadline of every call, in seconds, and of a watch's
        first snapshot.
    :param buffer: events each watch holds for its user before it falls
        behind (and later catches up by its overflow policy).
    :param heartbeat_interval: seconds between the client's heartbeats.
    :param heartbeat_timeout: seconds of silence after which the stream is
        taken for dead and reopened.
    :param backoff: (first, most) delay in seconds between reconnections
        (doubled each time, with jitter).
    :param max_failures: reconnections to try before watches end with
        ``DISCONNECTED`` (``None``: forever).
    """

    def __init__(self, address: str, **kwargs: Any):
        super().__init__(address, **kwargs)
        if self._tls:
            self._channel = grpc.secure_channel(address, self._credentials(), options=channel_options())
        else:
            self._channel = grpc.insecure_channel(address, options=channel_options())
        self._stub = rpc.VarWatchStub(self._channel)
        self._mux = _ThreadMux(self)
        self._closed = False

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Ends every watch and closes the connection."""
        if self._closed:
            return
        self._closed = True
        self._mux.shutdown()
        self._channel.close()

    def _call(self, method: str, request: Any) -> Any:
        try:
            return getattr(self._stub, method)(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    # ----- sessions --------------------------------------------------------

    def create_session(
        self, session: str, *, ttl: Optional[float] = None, metadata: Optional[Dict[str, str]] = None
    ) -> SessionInfo:
        """Creates a session (``AlreadyExists`` if it exists). ``ttl``: seconds
        without access after which it expires."""
        return _convert.session_from(self._call("CreateSession", _session_request(session, ttl, metadata)))

    def get_or_create_session(
        self, session: str, *, ttl: Optional[float] = None, metadata: Optional[Dict[str, str]] = None
    ) -> SessionInfo:
        """The session, created if needed."""
        return _convert.session_from(self._call("GetOrCreateSession", _session_request(session, ttl, metadata)))

    def session(self, session: str) -> SessionInfo:
        """The session's facts (``NotFound`` if it does not exist)."""
        return _convert.session_from(self._call("GetSession", pb.SessionRequest(session=session)))

    def delete_session(self, session: str) -> None:
        """Deletes the session; its watches end with ``SESSION_CLOSED``."""
        self._call("DeleteSession", pb.SessionRequest(session=session))

    def list_sessions(self) -> List[str]:
        """The ids of every session, sorted."""
        return list(self._call("ListSessions", pb.Empty()).sessions)

    # ----- variables -------------------------------------------------------

    def register(
        self,
        session: str,
        name: str,
        type: Union[VarType, str],
        value: Any,
        *,
        constraints: Optional[Constraints] = None,
        metadata: Optional[Dict[str, str]] = None,
        **constraint_fields: Any,
    ) -> str:
        """Registers a variable; returns its id. Constraints are given as a
        :class:`~varwatch.Constraints` or as keywords
        (``register("lab", "t", "float", 20.0, min=0.0, max=100.0)``)."""
        return self._call("RegisterVariable", _register_request(session, name, type, value, constraints, metadata, constraint_fields)).id

    def get(self, session: str, variable: str) -> Variable:
        """One variable, by name or id."""
        return _convert.variable_from(self._call("GetVariable", pb.VariableRequest(session=session, variable=variable)))

    def value(self, session: str, variable: str) -> Any:
        """One variable's current value."""
        return self.get(session, variable).value

    def get_many(self, session: str, variables: Iterable[str]) -> GetMany:
        """Several variables as one consistent cut (see :class:`~varwatch.GetMany`)."""
        return _get_many_from(self._call("GetVariables", pb.GetVariablesRequest(session=session, variables=list(variables))))

    def list_variables(self, session: str, pattern: Optional[str] = None) -> List[Variable]:
        """The session's variables, or those whose name matches an anchored
        glob (``*``, ``?``), as one consistent cut."""
        r = self._call("ListVariables", pb.ListVariablesRequest(session=session, pattern=pattern or ""))
        return [_convert.variable_from(v) for v in r.variables]

    def update(
        self,
        session: str,
        variable: str,
        value: Any,
        *,
        expected_version: Optional[int] = None,
        source: Optional[str] = None,
        metadata: Optional[Dict[str, str]] = None,
    ) -> int:
        """Sets a variable; returns its new version. With ``expected_version``
        the update applies only at that version (else ``VersionConflict``)."""
        return self._call("UpdateVariable", _update_request(session, variable, value, expected_version, source, metadata)).version

    def update_atomic(
        self,
        session: str,
        updates: Iterable[Union[BatchUpdate, tuple]],
        *,
        source: Optional[str] = None,
        metadata: Optional[Dict[str, str]] = None,
    ) -> List[int]:
        """Applies every update or none, under one revision (watchers see one
        group); returns the new versions. A rejected batch raises with every
        failing item in the message."""
        r = self._call("UpdateVariables", _batch_request(session, updates, True, source, metadata))
        return [x.version for x in r.results]

    def update_best_effort(
        self,
        session: str,
        updates: Iterable[Union[BatchUpdate, tuple]],
        *,
        source: Optional[str] = None,
        metadata: Optional[Dict[str, str]] = None,
    ) -> List[Union[int, VarwatchError]]:
        """Applies each update on its own, in order; one result per item:
        the new version, or the item's error (not raised)."""
        r = self._call("UpdateVariables", _batch_request(session, updates, False, source, metadata))
        return [_item_result(x) for x in r.results]

    def delete_variable(self, session: str, variable: str) -> None:
        """Deletes a variable; its watchers receive ``DELETED``."""
        self._call("DeleteVariable", pb.VariableRequest(session=session, variable=variable))

    def export(self, session: str) -> List[VarDef]:
        """The session's variables as definitions (current value,
        constraints, metadata), from one consistent cut."""
        return [_convert.definition_of(v) for v in self.list_variables(session)]

    def import_variables(self, session: str, definitions: Iterable[VarDef]) -> List[str]:
        """Registers every definition under one revision, or none (the error
        names every failing definition). Returns the new ids in order."""
        req = pb.ImportVariablesRequest(session=session, variables=[_convert.definition_to(d) for d in definitions])
        return list(self._call("ImportVariables", req).ids)

    # ----- watching ----------------------------------------------------------

    def watch(
        self,
        session: str,
        variables: Optional[Iterable[str]] = None,
        *,
        include_initial: bool = True,
        capacity: int = 0,
        coalesce: bool = False,
        throttle: Optional[float] = None,
        overflow: str = "resync",
        buffer: Optional[int] = None,
    ) -> "Watch":
        """Watches variables (names or ids), or with ``variables=None`` the
        whole session (including variables registered later). Returns once
        the server has registered the watch with its snapshot: no change can
        fall between the two. (A watch identical to one this client already
        has shares it, and starts from the client's copy of its state
        without a round trip, even while the connection is down.)

        :param include_initial: start with each variable's current state
            (``INITIAL``).
        :param capacity: how far the server-side watch may fall behind
            before it resyncs (0: the server's default).
        :param coalesce: deliver the latest state of each variable, with
            ``skipped`` counting the versions passed over (never ``LAGGED``).
        :param throttle: at most one delivery per this many seconds
            (coalesced).
        :param overflow: when this watch's buffer is full: ``"resync"``
            (``LAGGED`` markers, then the current states), ``"coalesce"``
            (the current states, with ``skipped`` counts) or ``"close"``
            (the markers, then the end).
        :param buffer: events held for the user (default: the client's).
        """
        sub = _sub(session, variables, capacity, coalesce, throttle)
        return self._mux.open(sub, include_initial, _overflow(overflow, sub.coalesce), _buffer(buffer, self._config.buffer))


class Watch:
    """A watch of a :class:`Client`: iterate it (blocking), or call
    :meth:`next`. It ends with its last event (``SESSION_CLOSED``,
    ``DISCONNECTED``, or the ``DELETED`` of its last variable), after which
    iteration stops.

    Per variable, versions arrive in order with no gap and no duplicate; a
    gap is never silent (``LAGGED`` names it). Through disconnections the
    watch reconnects and resumes from the versions it has. Close it (``with``,
    :meth:`close`), or just drop it: the server forgets it promptly either
    way, and no thread outlives the client's last watch."""

    def __init__(self, mux: "_ThreadMux", down: Down):
        self._mux = mux
        self._down = down
        # Run when closed or collected, whichever comes first. It only
        # queues the release (a collection may run inside the client's own
        # lock, in any thread); the stream's thread, or the next call,
        # carries it out.
        self._finalizer = weakref.finalize(self, _release, weakref.ref(mux), down)

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        e = self.next()
        if e is None:
            raise StopIteration
        return e

    def next(self, timeout: Optional[float] = None) -> Optional[Event]:
        """The next event, waiting for it; ``None`` when the watch has
        ended (see :attr:`ended`) or, with ``timeout``, when that many
        seconds passed without one."""
        return self._mux.recv(self._down, timeout)

    def try_next(self) -> Optional[Event]:
        """The next event if one is ready, else ``None``."""
        return self._mux.recv(self._down, 0.0)

    @property
    def ended(self) -> bool:
        """Whether the watch is over: closed, or its last event received."""
        return self._mux.ended(self._down)

    @property
    def overflows(self) -> int:
        """Times this watch's buffer overflowed (it then caught up by its
        overflow policy)."""
        return self._down.overflows

    @property
    def reconnects(self) -> int:
        """Times the stream was reopened under this watch."""
        return self._mux.reconnects(self._down)

    def close(self) -> None:
        """Ends the watch: the server is told at once, and a thread blocked
        in :meth:`next` returns ``None``."""
        self._finalizer()
        self._mux.process_releases()


def _release(mux_ref: "weakref.ref[_ThreadMux]", down: Down) -> None:
    # No lock here: see `Watch.__init__`.
    mux = mux_ref()
    if mux is not None:
        mux.releases.put(down)
        outbox = mux.outbox
        if outbox is not None:
            outbox.put(_WAKE)


_WAKE = object()
"""Put in the outbox to make the request iterator look at released watches."""

log = logging.getLogger("varwatch")


class _ThreadMux:
    """Drives a :class:`Core` with one thread while any watch is open.

    Lock: ``lock`` guards the core and the driver's state. It is never held
    while calling grpc, and what may run at any moment (a garbage
    collection's finalizer) never takes it: released watches go through
    ``releases`` (a ``SimpleQueue``, whose ``put`` is safe anywhere)."""

    def __init__(self, client: Client):
        self._stub = client._stub
        self._metadata = client._metadata
        self._timeout = client.timeout
        self.core = Core(client._config)
        self.lock = threading.Lock()
        self.releases: queue.SimpleQueue = queue.SimpleQueue()
        self.outbox: Optional[queue.SimpleQueue] = None
        self._call: Any = None
        self._thread: Optional[threading.Thread] = None
        self._wakeup = threading.Condition(self.lock)
        self._stopped = False

    # ----- the user's side -------------------------------------------------

    def open(self, sub: Subscription, include_initial: bool, overflow: Overflow, buffer: int) -> Watch:
        cond = threading.Condition(self.lock)
        down = Down(buffer, overflow, include_initial, cond.notify_all)
        down.cond = cond  # type: ignore[attr-defined]
        with self.lock:
            self._drain_releases()
            if self._stopped:
                raise Unavailable("the client is closed")
            self._send(self.core.watch(sub, down))
            self._ensure_running()
            self._wakeup.notify_all()  # a reconnection waiting out its backoff goes now
            deadline = time.monotonic() + self._timeout
            try:
                while down.upstream is None and down.error is None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise DeadlineExceeded(f"no snapshot from the server within {self._timeout} s")
                    cond.wait(left)
            except BaseException:
                # A deadline, an interrupt: the watch must not be left
                # behind, attached to nobody.
                self._send(self.core.abandon(down))
                self._after_release()
                raise
            if down.error is not None:
                raise down.error
        return Watch(self, down)

    def recv(self, down: Down, timeout: Optional[float]) -> Optional[Event]:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.lock:
            self._drain_releases()
            while True:
                e = self.core.recv(down)
                if e is ENDED:
                    return None
                if e is not None:
                    return e
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                down.waiting = True
                down.cond.wait(left)  # type: ignore[attr-defined]

    def ended(self, down: Down) -> bool:
        with self.lock:
            return self.core.ended(down)

    def process_releases(self) -> None:
        with self.lock:
            self._drain_releases()

    def _drain_releases(self) -> None:
        """Carries out queued releases (the lock is held)."""
        released = False
        while True:
            try:
                down = self.releases.get_nowait()
            except queue.Empty:
                break
            self._send(self.core.release(down.upstream, down.key, down))
            released = True
        if released:
            self._after_release()

    def _after_release(self) -> None:
        if self.core.is_idle() and self.outbox is not None:
            # Half-close: the server drops the stream's watches and ends it,
            # and the thread goes. A watch opened meanwhile waits for the
            # next stream.
            self.outbox.put(None)
            self.outbox = None
            self.core.connected = False
        self._wakeup.notify_all()

    def reconnects(self, down: Down) -> int:
        with self.lock:
            return self.core.reconnects(down)

    def shutdown(self) -> None:
        with self.lock:
            self._stopped = True
            self.core.close_all(Unavailable("the client was closed"))
            if self.outbox is not None:
                self.outbox.put(None)
            if self._call is not None:
                self._call.cancel()
            self._wakeup.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    # ----- the stream's side -----------------------------------------------

    def _send(self, requests: List[pb.WatchRequest]) -> None:
        if self.outbox is not None:
            for r in requests:
                self.outbox.put(r)

    def _ensure_running(self) -> None:
        if self._thread is None and not self.core.is_idle():
            self._thread = threading.Thread(target=self._run, name="varwatch-watch-stream", daemon=True)
            self._thread.start()

    def _requests(self, outbox: queue.SimpleQueue) -> Iterator[pb.WatchRequest]:
        """What the stream sends: queued requests; released watches'
        cancels; every heartbeat interval a heartbeat (with the acks that
        moved); refused creates again when their retry is due; and, once the
        server has been silent past the timeout, the end (the stream is
        taken for dead and cancelled)."""
        interval = self.core.config.heartbeat_interval
        last_beat = time.monotonic()
        while True:
            with self.lock:
                retry = self.core.next_retry()
            now = time.monotonic()
            wait = last_beat + interval - now
            if retry is not None:
                wait = min(wait, retry - now)
            try:
                req = outbox.get(timeout=max(0.0, wait))
            except queue.Empty:
                with self.lock:
                    if self.core.silent():
                        if self._call is not None:
                            self._call.cancel()
                        return
                    out = self.core.retry_due()
                    if time.monotonic() >= last_beat + interval:
                        out += self.core.heartbeat()
                        last_beat = time.monotonic()
                yield from out
                continue
            if req is _WAKE:
                with self.lock:
                    self._drain_releases()
                continue
            if req is None:
                return
            yield req

    def _run(self) -> None:
        try:
            self._serve()
        finally:
            with self.lock:
                self._thread = None
                self.outbox = None
                # A watch opened while the thread was leaving gets a new one.
                if not self._stopped:
                    self._ensure_running()

    def _serve(self) -> None:
        while True:
            with self.lock:
                self._drain_releases()
                if self.core.is_idle() or self._stopped:
                    return
                outbox: queue.SimpleQueue = queue.SimpleQueue()
                self.outbox = outbox
                for r in self.core.on_connect():
                    outbox.put(r)
                call = self._stub.Watch(self._requests(outbox), metadata=self._metadata)
                self._call = call
            error: Optional[VarwatchError] = None
            try:
                for resp in call:
                    decoded = Core.decode(resp)  # outside the lock
                    with self.lock:
                        for r in self.core.apply(decoded) + self.core.retry_due():
                            outbox.put(r)
                        self._drain_releases()
                        if self.core.is_idle():
                            outbox.put(None)
            except grpc.RpcError as e:
                error = from_rpc_error(e)
            except Exception as e:  # a bug: reconnect rather than hang every watch
                log.exception("varwatch: the watch stream failed; reconnecting")
                error = VarwatchError(f"internal error in the watch stream: {e!r}")
                call.cancel()
            with self.lock:
                self._call = None
                if self.outbox is outbox:
                    self.outbox = None
                outbox.put(None)  # ends the request iterator
                if self._stopped:
                    return
                delay = self.core.on_broken(error)
                if delay is None:
                    return
                # Wait out the backoff, unless every watch goes (or a new
                # one comes) meanwhile.
                until = time.monotonic() + delay
                while not self.core.is_idle() and not self._stopped:
                    left = until - time.monotonic()
                    if left <= 0:
                        break
                    if not self._wakeup.wait(left):
                        break
                    self._drain_releases()
                    if any(u.waiting for u in self.core.upstreams.values()):
                        break


def _session_request(session: str, ttl: Optional[float], metadata: Optional[Dict[str, str]]) -> pb.CreateSessionRequest:
    req = pb.CreateSessionRequest(session=session, metadata=_convert.metadata(metadata))
    if ttl is not None:
        req.ttl_ms = max(1, int(ttl * 1000))
    return req


def _register_request(session, name, type, value, constraints, metadata, fields) -> pb.RegisterVariableRequest:
    if constraints is None:
        constraints = Constraints(**fields)
    elif fields:
        raise TypeError("give constraints either as a Constraints or as keywords, not both")
    return pb.RegisterVariableRequest(
        session=session,
        name=name,
        type=_convert.var_type_to(type),
        value=_convert.value_to(value),
        constraints=_convert.constraints_to(constraints),
        metadata=_convert.metadata(metadata),
    )


def _update_request(session, variable, value, expected_version, source, metadata) -> pb.UpdateVariableRequest:
    req = pb.UpdateVariableRequest(
        session=session, variable=variable, value=_convert.value_to(value), metadata=_convert.metadata(metadata)
    )
    if expected_version is not None:
        req.expected_version = expected_version
    if source is not None:
        req.source = source
    return req


def _batch_request(session, updates, atomic, source, metadata) -> pb.UpdateVariablesRequest:
    req = pb.UpdateVariablesRequest(
        session=session,
        items=[_convert.batch_item(u) for u in updates],
        atomic=atomic,
        metadata=_convert.metadata(metadata),
    )
    if source is not None:
        req.source = source
    return req


def _item_result(r: pb.ItemResult) -> Union[int, VarwatchError]:
    if r.WhichOneof("result") == "error":
        return from_code_name(r.error_code or "UNKNOWN", r.error)
    return r.version


def _get_many_from(r: pb.GetVariablesResponse) -> GetMany:
    return GetMany(
        found={f.identifier: _convert.variable_from(f.variable) for f in r.found},
        missing=list(r.missing),
        revision=r.revision,
    )
