"""The blocking client: :class:`Client` and its :class:`Watch`.

Both are thin layers over the Rust client (``varwatch._native``, the same
``RemoteStore`` a Rust program uses): one connection, one watch stream for
every watch, heartbeats, reconnection with backoff and jitter, resume, the
catch-up rule, typed errors. Blocking calls and receives release the
interpreter lock.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from . import _native
from .errors import VarwatchError
from .types import BatchUpdate, Constraints, Event, GetMany, SessionInfo, VarDef, Variable, VarType

__all__ = ["Client", "Watch"]

#: The keyword arguments :class:`Client` and :class:`AsyncClient` take.
_CONSTRAINT_FIELDS = (
    "min",
    "max",
    "min_length",
    "max_length",
    "allowed_values",
    "choices",
    "allowed_modules",
    "dimensions",
    "shape",
)

BatchItem = Union[BatchUpdate, Tuple[str, Any], Tuple[str, Any, Optional[int]]]


def _native_client(
    address: Union[str, Sequence[str]],
    token: Optional[str],
    tls: bool,
    root_certificates: Optional[bytes],
    timeout: float,
    buffer: int,
    heartbeat_interval: float,
    heartbeat_timeout: float,
    backoff: Sequence[float],
    max_failures: Optional[int],
) -> _native.NativeClient:
    if buffer < 1:
        raise ValueError("buffer must be at least 1")
    if len(backoff) != 2:
        raise ValueError("backoff is (first, most) delay in seconds")
    first, most = float(backoff[0]), float(backoff[1])
    addresses = [address] if isinstance(address, str) else [str(a) for a in address]
    if not addresses:
        raise ValueError("address: give at least one host:port")
    return _native.NativeClient(
        addresses,
        token,
        tls,
        root_certificates,
        float(timeout),
        int(buffer),
        float(heartbeat_interval),
        float(max(heartbeat_timeout, heartbeat_interval)),
        first,
        max(first, most),
        max_failures,
    )


def _constraints(constraints: Optional[Constraints], fields: Dict[str, Any]) -> Optional[Constraints]:
    """Constraints given as a :class:`Constraints` or as keywords."""
    unknown = set(fields) - set(_CONSTRAINT_FIELDS)
    if unknown:
        raise TypeError(f"unknown constraint(s) {sorted(unknown)}; one of {list(_CONSTRAINT_FIELDS)}")
    if fields:
        if constraints is not None:
            raise TypeError("give constraints either as a Constraints or as keywords, not both")
        return Constraints(**fields)
    return constraints


def _watch_args(
    variables: Optional[Iterable[str]],
    include_initial: bool,
    capacity: int,
    coalesce: bool,
    throttle: Optional[float],
    overflow: str,
    buffer: Optional[int],
) -> Tuple[Any, ...]:
    if isinstance(variables, str):
        variables = [variables]
    names = None if variables is None else list(variables)
    if names is not None and not names:
        raise ValueError("a watch needs at least one variable (or None for the whole session)")
    if buffer is not None and buffer < 1:
        raise ValueError("a watch's buffer holds at least 1 event")
    return (names, bool(include_initial), max(0, int(capacity)), bool(coalesce), throttle, overflow, buffer)


class Client:
    """A blocking client of a varwatch server.

    ::

        with varwatch.Client("127.0.0.1:50551", token=...) as client:
            client.create_session("lab")
            client.register("lab", "t", "float", 20.0)
            client.update("lab", "t", 21.5)
            with client.watch("lab", ["t"]) as w:
                for event in w:
                    print(event.kind, event.name, event.value)

    Every call has a deadline (the client's ``timeout``, 30 s, or the
    call's own ``timeout=`` keyword, in seconds) and raises a
    :class:`~varwatch.VarwatchError` subclass on failure: ``Unavailable``
    (naming the address) when the server cannot be reached,
    ``DeadlineExceeded`` past the deadline, and for a write whose answer was
    lost after it was sent, ``OutcomeUnknown`` (it may have been applied).
    Nothing is sent until the first call: the connection is made then, and
    again whenever it is lost. Watches of one client share one stream; they
    heartbeat, reconnect with backoff and jitter, and resume from the last
    versions seen (see :class:`Watch`).

    :param address: ``host:port``, or several: replicas of the server over
        one etcd, used one at a time; when the one in use dies, shuts down or
        reports that it is not serving, the client moves to the next and
        every watch resumes there without a gap.
    :param token: a bearer token, sent with every call.
    :param tls: connect over TLS (checking the server against the public web
        roots, or ``root_certificates`` in PEM).
    :param root_certificates: PEM certificates to check the server against
        (implies ``tls``).
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

    def __init__(
        self,
        address: Union[str, Sequence[str]],
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
        self.address = address
        self.timeout = timeout
        self._native = _native_client(
            address,
            token,
            tls,
            root_certificates,
            timeout,
            buffer,
            heartbeat_interval,
            heartbeat_timeout,
            backoff,
            max_failures,
        )

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Closes the client: every watch ends with ``DISCONNECTED``, and
        later calls raise :class:`~varwatch.Cancelled`."""
        self._native.close()

    # ----- sessions --------------------------------------------------------

    def create_session(
        self, session: str, *, ttl: Optional[float] = None, metadata: Optional[Dict[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> SessionInfo:
        """Creates a session (``AlreadyExists`` if it exists). ``ttl``: seconds
        without access after which it expires."""
        result: SessionInfo = self._native.call("create_session", timeout, session, ttl, metadata)
        return result

    def get_or_create_session(
        self, session: str, *, ttl: Optional[float] = None, metadata: Optional[Dict[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> SessionInfo:
        """The session, created if needed."""
        result: SessionInfo = self._native.call("get_or_create_session", timeout, session, ttl, metadata)
        return result

    def session(self, session: str, *, timeout: Optional[float] = None) -> SessionInfo:
        """The session's facts (``NotFound`` if it does not exist)."""
        result: SessionInfo = self._native.call("session", timeout, session)
        return result

    def delete_session(self, session: str, *, timeout: Optional[float] = None) -> None:
        """Deletes the session; its watches end with ``SESSION_CLOSED``."""
        self._native.call("delete_session", timeout, session)

    def list_sessions(self, *, timeout: Optional[float] = None) -> List[str]:
        """The ids of every session, sorted."""
        result: List[str] = self._native.call("list_sessions", timeout)
        return result

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
        min: Optional[float] = None,
        max: Optional[float] = None,
        min_length: Optional[int] = None,
        max_length: Optional[int] = None,
        allowed_values: Optional[List[str]] = None,
        choices: Optional[List[str]] = None,
        allowed_modules: Optional[List[str]] = None,
        dimensions: Optional[int] = None,
        shape: Optional[List[int]] = None,
        timeout: Optional[float] = None,
    ) -> str:
        """Registers a variable; returns its id. Constraints are given as a
        :class:`~varwatch.Constraints` or as keywords
        (``register("lab", "t", "float", 20.0, min=0.0, max=100.0)``); the
        server checks them (a ``choice`` needs ``choices``)."""
        fields = {
            k: v
            for k, v in (
                ("min", min),
                ("max", max),
                ("min_length", min_length),
                ("max_length", max_length),
                ("allowed_values", allowed_values),
                ("choices", choices),
                ("allowed_modules", allowed_modules),
                ("dimensions", dimensions),
                ("shape", shape),
            )
            if v is not None
        }
        c = _constraints(constraints, fields)
        result: str = self._native.call("register", timeout, session, name, type, value, c, metadata)
        return result

    def get(self, session: str, variable: str, *, timeout: Optional[float] = None) -> Variable:
        """One variable, by name or id."""
        result: Variable = self._native.call("get", timeout, session, variable)
        return result

    def value(self, session: str, variable: str, *, timeout: Optional[float] = None) -> Any:
        """One variable's current value."""
        return self._native.call("value", timeout, session, variable)

    def get_many(self, session: str, variables: Iterable[str], *, timeout: Optional[float] = None) -> GetMany:
        """Several variables as one consistent cut (see :class:`~varwatch.GetMany`)."""
        result: GetMany = self._native.call("get_many", timeout, session, list(variables))
        return result

    def list_variables(self, session: str, pattern: Optional[str] = None, *, timeout: Optional[float] = None) -> List[Variable]:
        """The session's variables, or those whose name matches an anchored
        glob (``*``, ``?``), as one consistent cut."""
        result: List[Variable] = self._native.call("list_variables", timeout, session, pattern)
        return result

    def update(
        self,
        session: str,
        variable: str,
        value: Any,
        *,
        expected_version: Optional[int] = None,
        source: Optional[str] = None,
        metadata: Optional[Dict[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> int:
        """Sets a variable; returns its new version. With ``expected_version``
        the update applies only at that version (else ``VersionConflict``).
        ``OutcomeUnknown`` if the answer was lost after it was sent."""
        result: int = self._native.call("update", timeout, session, variable, value, expected_version, source, metadata)
        return result

    def update_atomic(
        self,
        session: str,
        updates: Iterable[BatchItem],
        *,
        source: Optional[str] = None,
        metadata: Optional[Dict[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> List[int]:
        """Applies every update or none, under one revision (watchers see one
        group); returns the new versions. A rejected batch raises with every
        failing item in ``failures``."""
        result: List[int] = self._native.call("update_atomic", timeout, session, list(updates), source, metadata)
        return result

    def update_best_effort(
        self,
        session: str,
        updates: Iterable[BatchItem],
        *,
        source: Optional[str] = None,
        metadata: Optional[Dict[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> List[Union[int, VarwatchError]]:
        """Applies each update on its own, in order; one result per item:
        the new version, or the item's error (not raised). The batch is one
        call: if its answer is lost, the call raises ``OutcomeUnknown``.
        On a server over etcd, where each item is its own transaction, a
        failure of the way to etcd part-way leaves the items before it
        reported as applied, the one in flight ``OutcomeUnknown``, and the
        rest ``Unavailable`` (not sent)."""
        result: List[Union[int, VarwatchError]] = self._native.call(
            "update_best_effort", timeout, session, list(updates), source, metadata
        )
        return result

    def delete_variable(self, session: str, variable: str, *, timeout: Optional[float] = None) -> None:
        """Deletes a variable; its watchers receive ``DELETED``."""
        self._native.call("delete_variable", timeout, session, variable)

    def export(self, session: str, *, timeout: Optional[float] = None) -> List[VarDef]:
        """The session's variables as definitions (current value,
        constraints, metadata), from one consistent cut."""
        result: List[VarDef] = self._native.call("export", timeout, session)
        return result

    def import_variables(self, session: str, definitions: Iterable[VarDef], *, timeout: Optional[float] = None) -> List[str]:
        """Registers every definition under one revision, or none (the error
        names every failing definition). Returns the new ids in order."""
        result: List[str] = self._native.call("import_variables", timeout, session, list(definitions))
        return result

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
        timeout: Optional[float] = None,
    ) -> "Watch":
        """Watches variables (names or ids), or with ``variables=None`` the
        whole session (including variables registered later). Returns once
        the server has registered the watch with its snapshot: no change can
        fall between the two, and a watch opened after a write returned
        starts at or after that write (also one identical to a watch this
        client already has, which shares it).

        :param include_initial: start with each variable's current state
            (``INITIAL``).
        :param capacity: how far the server-side watch may fall behind
            before it resyncs (0: the server's default).
        :param coalesce: deliver the latest state of each variable, with
            ``skipped`` counting the versions passed over (never ``LAGGED``);
            a reader that falls behind gets one state per variable.
        :param throttle: at most one delivery per this many seconds
            (coalesced).
        :param overflow: when this watch's buffer is full: ``"resync"``
            (``LAGGED`` markers, then the current states), ``"coalesce"``
            (the current states, with ``skipped`` counts) or ``"close"``
            (the markers, then the end).
        :param buffer: events held for the user (default: the client's).
        :param timeout: seconds to wait for the snapshot (default: the
            client's ``timeout``).
        """
        args = _watch_args(variables, include_initial, capacity, coalesce, throttle, overflow, buffer)
        return Watch(self._native.call("watch", timeout, session, *args))


class Watch:
    """A watch of a :class:`Client`: iterate it (blocking), or call
    :meth:`next`. It ends with its last event (``SESSION_CLOSED``,
    ``DISCONNECTED``, or the ``DELETED`` of its last variable), after which
    iteration stops.

    Per variable, versions arrive in order with no gap and no duplicate; a
    gap is never silent (``LAGGED`` names it): through a disconnection the
    watch reconnects and resumes from the versions it has, and what it
    missed meanwhile arrives as one ``LAGGED`` marker per variable and its
    latest state (a coalescing watch: the latest state, with ``skipped``).
    Close it (``with``, :meth:`close`), or just drop it: the server forgets
    it at once either way."""

    def __init__(self, native: _native.NativeWatch):
        self._native = native

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        e = self._native.next(None)
        if e is None:
            raise StopIteration
        return e

    def next(self, timeout: Optional[float] = None) -> Optional[Event]:
        """The next event, waiting for it (without holding the interpreter
        lock); ``None`` when the watch has ended (see :attr:`ended`) or, with
        ``timeout``, when that many seconds passed without one."""
        return self._native.next(timeout)

    def try_next(self) -> Optional[Event]:
        """The next event if one is ready, else ``None``."""
        return self._native.try_next()

    @property
    def ended(self) -> bool:
        """Whether the watch is over: closed, or its last event received."""
        return self._native.ended

    @property
    def overflows(self) -> int:
        """Times this watch fell behind and caught up: its buffer overflowed,
        or the server sent a catch-up (a ``LAGGED`` group)."""
        return int(self._native.stats().get("lag_events", 0))

    @property
    def reconnects(self) -> int:
        """Times the stream was reopened under this watch."""
        return int(self._native.stats().get("reconnects", 0))

    def stats(self) -> Dict[str, Any]:
        """The watch's counters (the Rust ``WatchStats``)."""
        return self._native.stats()

    def close(self) -> None:
        """Ends the watch: the server is told at once, and a thread blocked
        in :meth:`next` returns ``None``."""
        self._native.close()


class WatchSet:
    """Many watches received together, by one thread: ``for watch, event in
    watch_set``. The way to follow hundreds or thousands of watches without
    a thread per watch (each thread costs a hand-over of the interpreter
    lock per event; the set takes every ready event in one call).

    Each event comes with the :class:`Watch` it belongs to; per watch the
    order and guarantees are the watch's own. Members that become ready are
    served in turn (a busy watch does not starve the others). A member is
    received only through the set from then on; closing a member ends it in
    the set, and iteration stops once every member has ended.

    ::

        watches = [client.watch("lab", [name]) for name in names]
        for watch, event in varwatch.WatchSet(watches):
            print(event.name, event.value)
    """

    def __init__(self, watches: Iterable[Watch]):
        self.watches: List[Watch] = list(watches)
        """The members, in the order given."""
        self._native = _native.NativeWatchSet([w._native for w in self.watches])
        self._batch: List[Tuple[int, Event]] = []
        self._at = 0

    def __enter__(self) -> "WatchSet":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self.watches)

    def __iter__(self) -> Iterator[Tuple[Watch, Event]]:
        return self

    def __next__(self) -> Tuple[Watch, Event]:
        if self._at == len(self._batch):
            self._batch = self._native.next_batch(1024, None)
            self._at = 0
            if not self._batch:
                raise StopIteration
        i, e = self._batch[self._at]
        self._at += 1
        return self.watches[i], e

    def next_batch(self, max: int = 1024, timeout: Optional[float] = None) -> List[Tuple[Watch, Event]]:
        """Up to ``max`` events, waiting (without holding the interpreter
        lock) until there is one; an empty list once every member has ended
        or, with ``timeout``, when that many seconds passed without one."""
        rest = [(self.watches[i], e) for i, e in self._batch[self._at :]]
        self._batch, self._at = [], 0
        if rest:
            return rest
        return [(self.watches[i], e) for i, e in self._native.next_batch(max, timeout)]

    @property
    def ended(self) -> bool:
        """Whether every member has ended."""
        return self._at == len(self._batch) and self._native.ended

    def close(self) -> None:
        """Closes every member (each is cancelled on the server)."""
        for w in self.watches:
            w.close()
