"""The asyncio client: :class:`AsyncClient` and its :class:`AsyncWatch`.

The same Rust client as :class:`~varwatch.Client`'s. Operations run on the
client's own runtime; when one completes, or a watch may have an event, its
waker posts a token that the event loop reads from a socket
(``loop.add_reader``): no thread per watch or per call, and the interpreter
lock is taken only by the loop.
"""
from __future__ import annotations

import asyncio
import itertools
from typing import Any, Dict, Generator, Iterable, List, Optional, Sequence, Tuple, Union

from . import _native
from .client import BatchItem, _constraints, _native_client, _watch_args
from .errors import VarwatchError
from .types import Constraints, Event, GetMany, SessionInfo, VarDef, Variable, VarType

__all__ = ["AsyncClient", "AsyncWatch"]


class AsyncClient:
    """The asyncio client: the same operations as :class:`~varwatch.Client`,
    as coroutines, and watches as async iterators::

        async with varwatch.AsyncClient("127.0.0.1:50551") as client:
            await client.update("lab", "t", 21.5)
            async for event in client.watch("lab", ["t"]):
                print(event.kind, event.value)

    Use it from one event loop (the one it was first used on). The keyword
    arguments are :class:`~varwatch.Client`'s; the same errors are raised.
    A task cancelled while it awaits a call or a watch's next event cancels
    that call, or closes that watch on the server, at once."""

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
        self._tokens = itertools.count(1)
        self._waiting: Dict[int, "asyncio.Future[None]"] = {}
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the client: every watch ends with ``DISCONNECTED``, and
        later calls raise :class:`~varwatch.Cancelled`."""
        self._native.close()
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._native.notifier_fd())
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_result(None)
        self._waiting.clear()

    # ----- waking the loop ---------------------------------------------------

    def _attach(self) -> asyncio.AbstractEventLoop:
        """The running loop, which reads the client's notifier."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._native.notifier_fd())
            loop.add_reader(self._native.notifier_fd(), self._on_ready)
            self._loop = loop
        return loop

    def _on_ready(self) -> None:
        for token in self._native.take_ready():
            fut = self._waiting.pop(token, None)
            if fut is not None and not fut.done():
                fut.set_result(None)

    def _wait_for(self, token: int) -> "asyncio.Future[None]":
        """A future resolved when `token` is posted (registered before the
        caller looks, so that no post is missed)."""
        fut: "asyncio.Future[None]" = self._attach().create_future()
        self._waiting[token] = fut
        return fut

    async def _call(self, op: str, timeout: Optional[float], *args: Any) -> Any:
        token = next(self._tokens)
        fut = self._wait_for(token)
        self._native.start(token, op, timeout, *args)
        try:
            while True:
                done, result = self._native.poll(token)
                if done:
                    return result
                await fut
                fut = self._wait_for(token)
        except asyncio.CancelledError:
            self._native.cancel(token)
            raise
        finally:
            self._waiting.pop(token, None)

    # ----- sessions --------------------------------------------------------

    async def create_session(
        self, session: str, *, ttl: Optional[float] = None, metadata: Optional[Dict[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> SessionInfo:
        """See :meth:`Client.create_session <varwatch.Client.create_session>`."""
        result: SessionInfo = await self._call("create_session", timeout, session, ttl, metadata)
        return result

    async def get_or_create_session(
        self, session: str, *, ttl: Optional[float] = None, metadata: Optional[Dict[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> SessionInfo:
        """See :meth:`Client.get_or_create_session <varwatch.Client.get_or_create_session>`."""
        result: SessionInfo = await self._call("get_or_create_session", timeout, session, ttl, metadata)
        return result

    async def session(self, session: str, *, timeout: Optional[float] = None) -> SessionInfo:
        """See :meth:`Client.session <varwatch.Client.session>`."""
        result: SessionInfo = await self._call("session", timeout, session)
        return result

    async def delete_session(self, session: str, *, timeout: Optional[float] = None) -> None:
        """See :meth:`Client.delete_session <varwatch.Client.delete_session>`."""
        await self._call("delete_session", timeout, session)

    async def list_sessions(self, *, timeout: Optional[float] = None) -> List[str]:
        """See :meth:`Client.list_sessions <varwatch.Client.list_sessions>`."""
        result: List[str] = await self._call("list_sessions", timeout)
        return result

    # ----- variables -------------------------------------------------------

    async def register(
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
        """See :meth:`Client.register <varwatch.Client.register>`."""
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
        result: str = await self._call("register", timeout, session, name, type, value, c, metadata)
        return result

    async def get(self, session: str, variable: str, *, timeout: Optional[float] = None) -> Variable:
        """See :meth:`Client.get <varwatch.Client.get>`."""
        result: Variable = await self._call("get", timeout, session, variable)
        return result

    async def value(self, session: str, variable: str, *, timeout: Optional[float] = None) -> Any:
        """See :meth:`Client.value <varwatch.Client.value>`."""
        return await self._call("value", timeout, session, variable)

    async def get_many(self, session: str, variables: Iterable[str], *, timeout: Optional[float] = None) -> GetMany:
        """See :meth:`Client.get_many <varwatch.Client.get_many>`."""
        result: GetMany = await self._call("get_many", timeout, session, list(variables))
        return result

    async def list_variables(self, session: str, pattern: Optional[str] = None, *, timeout: Optional[float] = None) -> List[Variable]:
        """See :meth:`Client.list_variables <varwatch.Client.list_variables>`."""
        result: List[Variable] = await self._call("list_variables", timeout, session, pattern)
        return result

    async def update(
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
        """See :meth:`Client.update <varwatch.Client.update>`."""
        result: int = await self._call("update", timeout, session, variable, value, expected_version, source, metadata)
        return result

    async def update_atomic(
        self,
        session: str,
        updates: Iterable[BatchItem],
        *,
        source: Optional[str] = None,
        metadata: Optional[Dict[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> List[int]:
        """See :meth:`Client.update_atomic <varwatch.Client.update_atomic>`."""
        result: List[int] = await self._call("update_atomic", timeout, session, list(updates), source, metadata)
        return result

    async def update_best_effort(
        self,
        session: str,
        updates: Iterable[BatchItem],
        *,
        source: Optional[str] = None,
        metadata: Optional[Dict[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> List[Union[int, VarwatchError]]:
        """See :meth:`Client.update_best_effort <varwatch.Client.update_best_effort>`."""
        result: List[Union[int, VarwatchError]] = await self._call(
            "update_best_effort", timeout, session, list(updates), source, metadata
        )
        return result

    async def delete_variable(self, session: str, variable: str, *, timeout: Optional[float] = None) -> None:
        """See :meth:`Client.delete_variable <varwatch.Client.delete_variable>`."""
        await self._call("delete_variable", timeout, session, variable)

    async def export(self, session: str, *, timeout: Optional[float] = None) -> List[VarDef]:
        """See :meth:`Client.export <varwatch.Client.export>`."""
        result: List[VarDef] = await self._call("export", timeout, session)
        return result

    async def import_variables(self, session: str, definitions: Iterable[VarDef], *, timeout: Optional[float] = None) -> List[str]:
        """See :meth:`Client.import_variables <varwatch.Client.import_variables>`."""
        result: List[str] = await self._call("import_variables", timeout, session, list(definitions))
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
    ) -> "AsyncWatch":
        """A watch, registered on first use (``await client.watch(...)``,
        ``async with``, ``async for``, or :meth:`AsyncWatch.open`); the
        arguments are :meth:`Client.watch <varwatch.Client.watch>`'s."""
        args = _watch_args(variables, include_initial, capacity, coalesce, throttle, overflow, buffer)
        return AsyncWatch(self, session, args, timeout)


class AsyncWatch:
    """A watch of an :class:`AsyncClient`: ``async for event in watch``, or
    ``await watch.next()``. The same guarantees as :class:`~varwatch.Watch`.

    It is registered with its snapshot on the server when first used
    (``await client.watch(...)``, ``async with``, the first ``async for``, or
    :meth:`open`): changes before that are part of its initial states, not
    events. Closed by ``async with``, :meth:`aclose`, when the task waiting
    on it is cancelled, or when collected."""

    def __init__(self, client: AsyncClient, session: str, args: Tuple[Any, ...], timeout: Optional[float] = None):
        self._client = client
        self._session = session
        self._args = args
        self._timeout = timeout
        self._native: Optional[_native.NativeWatch] = None
        self._closed = False
        self._token = next(client._tokens)

    async def open(self) -> "AsyncWatch":
        """Registers the watch with its snapshot on the server (done by the
        first use otherwise). Returns the watch."""
        if self._native is None and not self._closed:
            self._native = await self._client._call("watch", self._timeout, self._session, *self._args)
        return self

    def __await__(self) -> Generator[Any, None, "AsyncWatch"]:
        return self.open().__await__()

    async def __aenter__(self) -> "AsyncWatch":
        return await self.open()

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def __aiter__(self) -> "AsyncWatch":
        return self

    async def __anext__(self) -> Event:
        e = await self.next()
        if e is None:
            raise StopAsyncIteration
        return e

    async def next(self, timeout: Optional[float] = None) -> Optional[Event]:
        """The next event; ``None`` when the watch has ended (see
        :attr:`ended`) or, with ``timeout``, when that many seconds passed
        without one."""
        await self.open()
        native = self._native
        if native is None:
            return None
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            while True:
                e = native.try_next()
                if e is not None or native.ended:
                    return e
                fut = self._client._wait_for(self._token)
                if native.arm(self._token):
                    self._client._waiting.pop(self._token, None)
                    continue
                if deadline is None:
                    await fut
                else:
                    left = deadline - loop.time()
                    if left <= 0:
                        return None
                    done, _ = await asyncio.wait({fut}, timeout=left)
                    if not done:
                        return None
        except asyncio.CancelledError:
            # The task was cancelled: its watch goes at once (its frame, and
            # the watch with it, may live on in an unretrieved exception).
            self._close_now()
            raise
        finally:
            self._client._waiting.pop(self._token, None)

    @property
    def ended(self) -> bool:
        """Whether the watch is over: closed, or its last event received."""
        return self._closed or (self._native is not None and self._native.ended)

    @property
    def overflows(self) -> int:
        """Times this watch fell behind and caught up."""
        return 0 if self._native is None else int(self._native.stats().get("lag_events", 0))

    @property
    def reconnects(self) -> int:
        """Times the stream was reopened under this watch."""
        return 0 if self._native is None else int(self._native.stats().get("reconnects", 0))

    def stats(self) -> Dict[str, Any]:
        """The watch's counters (the Rust ``WatchStats``)."""
        return {} if self._native is None else self._native.stats()

    def _close_now(self) -> None:
        self._closed = True
        if self._native is not None:
            self._native.close()

    async def aclose(self) -> None:
        """Ends the watch: the server is told at once, and a task waiting
        in :meth:`next` gets ``None``."""
        self._close_now()
        fut = self._client._waiting.pop(self._token, None)
        if fut is not None and not fut.done():
            fut.set_result(None)


class AsyncWatchSet:
    """Many watches of one :class:`AsyncClient` received together, by one
    task: ``async for watch, event in watch_set`` (see
    :class:`~varwatch.WatchSet`; a task per watch costs a task switch per
    event, the set one per batch). The members are opened, if they are not
    yet, on first use."""

    def __init__(self, watches: Iterable[AsyncWatch]):
        self.watches: List[AsyncWatch] = list(watches)
        """The members, in the order given."""
        self._native: Optional[_native.NativeWatchSet] = None
        self._batch: List[Tuple[int, Event]] = []
        self._at = 0
        self._token = -1

    async def open(self) -> "AsyncWatchSet":
        """Opens every member that is not yet open. Returns the set."""
        if self._native is None:
            for w in self.watches:
                await w.open()
            members = [w._native for w in self.watches if w._native is not None]
            if len(members) != len(self.watches):
                raise ValueError("a member of the set was closed before it opened")
            self._native = _native.NativeWatchSet(members)
            if self.watches:
                self._token = next(self.watches[0]._client._tokens)
        return self

    async def __aenter__(self) -> "AsyncWatchSet":
        return await self.open()

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def __len__(self) -> int:
        return len(self.watches)

    def __aiter__(self) -> "AsyncWatchSet":
        return self

    async def __anext__(self) -> Tuple[AsyncWatch, Event]:
        if self._at == len(self._batch):
            self._batch = await self._next_native(1024, None)
            self._at = 0
            if not self._batch:
                raise StopAsyncIteration
        i, e = self._batch[self._at]
        self._at += 1
        return self.watches[i], e

    async def next_batch(self, max: int = 1024, timeout: Optional[float] = None) -> List[Tuple[AsyncWatch, Event]]:
        """Up to ``max`` events; an empty list once every member has ended
        or, with ``timeout``, when that many seconds passed without one."""
        rest = [(self.watches[i], e) for i, e in self._batch[self._at :]]
        self._batch, self._at = [], 0
        if rest:
            return rest
        return [(self.watches[i], e) for i, e in await self._next_native(max, timeout)]

    async def _next_native(self, max: int, timeout: Optional[float]) -> List[Tuple[int, Event]]:
        await self.open()
        native = self._native
        if native is None or not self.watches:
            return []
        client = self.watches[0]._client
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            while True:
                batch = native.try_batch(max)
                if batch or native.ended:
                    return batch
                fut = client._wait_for(self._token)
                if native.arm(self._token):
                    client._waiting.pop(self._token, None)
                    continue
                if deadline is None:
                    await fut
                else:
                    left = deadline - loop.time()
                    if left <= 0:
                        return []
                    done, _ = await asyncio.wait({fut}, timeout=left)
                    if not done:
                        return []
        finally:
            client._waiting.pop(self._token, None)

    @property
    def ended(self) -> bool:
        """Whether every member has ended."""
        return self._native is not None and self._at == len(self._batch) and self._native.ended

    async def aclose(self) -> None:
        """Closes every member (each is cancelled on the server)."""
        for w in self.watches:
            await w.aclose()
