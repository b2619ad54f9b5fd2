"""The asyncio client: :class:`AsyncClient` and its :class:`AsyncWatch`."""
from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any, Dict, Iterable, List, Optional, Union

import grpc
import grpc.aio

from . import _convert
from ._core import ENDED, Core, Down, Overflow, Subscription
from ._proto import varwatch_pb2 as pb
from ._proto import varwatch_pb2_grpc as rpc
from .client import (
    _Base,
    _batch_request,
    _get_many_from,
    _item_result,
    _buffer,
    _overflow,
    _register_request,
    _session_request,
    _sub,
    _update_request,
    channel_options,
)
from .errors import DeadlineExceeded, Unavailable, VarwatchError, from_rpc_error
from .types import BatchUpdate, Constraints, Event, GetMany, SessionInfo, VarDef, Variable, VarType

__all__ = ["AsyncClient", "AsyncWatch"]


class AsyncClient(_Base):
    """The asyncio client: the same operations as :class:`~varwatch.Client`,
    as coroutines, and watches as async iterators::

        async with varwatch.AsyncClient("127.0.0.1:50551") as client:
            await client.update("lab", "t", 21.5)
            async for event in client.watch("lab", ["t"]):
                print(event.kind, event.value)

    Use it from one event loop (the one it was first used on). The
    keyword arguments are :class:`~varwatch.Client`'s."""

    def __init__(self, address: str, **kwargs: Any):
        super().__init__(address, **kwargs)
        if self._tls:
            self._channel = grpc.aio.secure_channel(address, self._credentials(), options=channel_options())
        else:
            self._channel = grpc.aio.insecure_channel(address, options=channel_options())
        self._stub = rpc.VarWatchStub(self._channel)
        self._mux = _AioMux(self)
        self._closed = False

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        """Ends every watch and closes the connection."""
        if self._closed:
            return
        self._closed = True
        await self._mux.shutdown()
        await self._channel.close()

    async def _call(self, method: str, request: Any) -> Any:
        try:
            return await getattr(self._stub, method)(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as e:
            raise from_rpc_error(e) from None

    async def create_session(
        self, session: str, *, ttl: Optional[float] = None, metadata: Optional[Dict[str, str]] = None
    ) -> SessionInfo:
        """See :meth:`Client.create_session <varwatch.Client.create_session>`."""
        return _convert.session_from(await self._call("CreateSession", _session_request(session, ttl, metadata)))

    async def get_or_create_session(
        self, session: str, *, ttl: Optional[float] = None, metadata: Optional[Dict[str, str]] = None
    ) -> SessionInfo:
        """See :meth:`Client.get_or_create_session <varwatch.Client.get_or_create_session>`."""
        return _convert.session_from(await self._call("GetOrCreateSession", _session_request(session, ttl, metadata)))

    async def session(self, session: str) -> SessionInfo:
        """See :meth:`Client.session <varwatch.Client.session>`."""
        return _convert.session_from(await self._call("GetSession", pb.SessionRequest(session=session)))

    async def delete_session(self, session: str) -> None:
        """See :meth:`Client.delete_session <varwatch.Client.delete_session>`."""
        await self._call("DeleteSession", pb.SessionRequest(session=session))

    async def list_sessions(self) -> List[str]:
        """See :meth:`Client.list_sessions <varwatch.Client.list_sessions>`."""
        return list((await self._call("ListSessions", pb.Empty())).sessions)

    async def register(
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
        """See :meth:`Client.register <varwatch.Client.register>`."""
        req = _register_request(session, name, type, value, constraints, metadata, constraint_fields)
        return (await self._call("RegisterVariable", req)).id

    async def get(self, session: str, variable: str) -> Variable:
        """See :meth:`Client.get <varwatch.Client.get>`."""
        return _convert.variable_from(await self._call("GetVariable", pb.VariableRequest(session=session, variable=variable)))

    async def value(self, session: str, variable: str) -> Any:
        """See :meth:`Client.value <varwatch.Client.value>`."""
        return (await self.get(session, variable)).value

    async def get_many(self, session: str, variables: Iterable[str]) -> GetMany:
        """See :meth:`Client.get_many <varwatch.Client.get_many>`."""
        req = pb.GetVariablesRequest(session=session, variables=list(variables))
        return _get_many_from(await self._call("GetVariables", req))

    async def list_variables(self, session: str, pattern: Optional[str] = None) -> List[Variable]:
        """See :meth:`Client.list_variables <varwatch.Client.list_variables>`."""
        r = await self._call("ListVariables", pb.ListVariablesRequest(session=session, pattern=pattern or ""))
        return [_convert.variable_from(v) for v in r.variables]

    async def update(
        self,
        session: str,
        variable: str,
        value: Any,
        *,
        expected_version: Optional[int] = None,
        source: Optional[str] = None,
        metadata: Optional[Dict[str, str]] = None,
    ) -> int:
        """See :meth:`Client.update <varwatch.Client.update>`."""
        req = _update_request(session, variable, value, expected_version, source, metadata)
        return (await self._call("UpdateVariable", req)).version

    async def update_atomic(
        self,
        session: str,
        updates: Iterable[Union[BatchUpdate, tuple]],
        *,
        source: Optional[str] = None,
        metadata: Optional[Dict[str, str]] = None,
    ) -> List[int]:
        """See :meth:`Client.update_atomic <varwatch.Client.update_atomic>`."""
        r = await self._call("UpdateVariables", _batch_request(session, updates, True, source, metadata))
        return [x.version for x in r.results]

    async def update_best_effort(
        self,
        session: str,
        updates: Iterable[Union[BatchUpdate, tuple]],
        *,
        source: Optional[str] = None,
        metadata: Optional[Dict[str, str]] = None,
    ) -> List[Union[int, VarwatchError]]:
        """See :meth:`Client.update_best_effort <varwatch.Client.update_best_effort>`."""
        r = await self._call("UpdateVariables", _batch_request(session, updates, False, source, metadata))
        return [_item_result(x) for x in r.results]

    async def delete_variable(self, session: str, variable: str) -> None:
        """See :meth:`Client.delete_variable <varwatch.Client.delete_variable>`."""
        await self._call("DeleteVariable", pb.VariableRequest(session=session, variable=variable))

    async def export(self, session: str) -> List[VarDef]:
        """See :meth:`Client.export <varwatch.Client.export>`."""
        return [_convert.definition_of(v) for v in await self.list_variables(session)]

    async def import_variables(self, session: str, definitions: Iterable[VarDef]) -> List[str]:
        """See :meth:`Client.import_variables <varwatch.Client.import_variables>`."""
        req = pb.ImportVariablesRequest(session=session, variables=[_convert.definition_to(d) for d in definitions])
        return list((await self._call("ImportVariables", req)).ids)

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
    ) -> "AsyncWatch":
        """A watch, registered on first use (``await client.watch(...)``,
        ``async with``, ``async for``, or :meth:`AsyncWatch.open`); the
        arguments are :meth:`Client.watch <varwatch.Client.watch>`'s."""
        sub = _sub(session, variables, capacity, coalesce, throttle)
        return AsyncWatch(self._mux, sub, include_initial, _overflow(overflow, sub.coalesce), _buffer(buffer, self._config.buffer))


class AsyncWatch:
    """A watch of an :class:`AsyncClient`: ``async for event in watch``, or
    ``await watch.next()``. The same guarantees as :class:`~varwatch.Watch`.

    It is registered with its snapshot on the server when first used
    (``await client.watch(...)``, ``async with``, the first ``async for``, or
    :meth:`open`): changes before that are part of its initial states, not
    events. Closed by ``async with``, :meth:`aclose`, or when collected (a
    task cancelled, a loop left)."""

    def __init__(self, mux: "_AioMux", sub: Subscription, include_initial: bool, overflow: Overflow, buffer: int):
        self._mux = mux
        self._args = (sub, include_initial, overflow, buffer)
        self._down: Optional[Down] = None
        self._finalizer: Optional[weakref.finalize] = None

    async def open(self) -> "AsyncWatch":
        """Registers the watch with its snapshot on the server (done by the
        first use otherwise). Returns the watch."""
        if self._down is None:
            self._down = await self._mux.open(*self._args)
            loop = asyncio.get_running_loop()
            self._finalizer = weakref.finalize(self, _release, weakref.ref(self._mux), self._down, loop)
        return self

    def __await__(self):
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
        assert self._down is not None
        return await self._mux.recv(self._down, timeout)

    @property
    def ended(self) -> bool:
        """Whether the watch is over: closed, or its last event received."""
        return self._down is not None and self._mux.core.ended(self._down)

    @property
    def overflows(self) -> int:
        """Times this watch's buffer overflowed."""
        return self._down.overflows if self._down is not None else 0

    @property
    def reconnects(self) -> int:
        """Times the stream was reopened under this watch."""
        return self._mux.core.reconnects(self._down) if self._down is not None else 0

    async def aclose(self) -> None:
        """Ends the watch: the server is told at once, and a task waiting
        in :meth:`next` gets ``None``."""
        if self._finalizer is not None and self._finalizer.alive:
            self._finalizer.detach()
            assert self._down is not None
            self._mux.release(self._down)


def _release(mux_ref: "weakref.ref[_AioMux]", down: Down, loop: asyncio.AbstractEventLoop) -> None:
    """A collected watch's release, run on its loop (a collection may run
    in any thread, in the middle of the client's own code)."""
    mux = mux_ref()
    if mux is None or loop.is_closed():
        return
    try:
        loop.call_soon_threadsafe(mux.release, down)
    except RuntimeError:
        pass  # the loop closed meanwhile: nothing left to tell


log = logging.getLogger("varwatch")


class _AioMux:
    """Drives a :class:`Core` with one task while any watch is open (all on
    one event loop: no lock)."""

    def __init__(self, client: AsyncClient):
        self._stub = client._stub
        self._metadata = client._metadata
        self._timeout = client.timeout
        self.core = Core(client._config)
        self._outbox: Optional[asyncio.Queue] = None
        self._call: Any = None
        self._task: Optional[asyncio.Task] = None
        self._wakeup: Optional[asyncio.Event] = None
        self._stopped = False
        # Set when this client cancels the call itself (silence, close), so
        # that the task tells that from its own cancellation.
        self._cancelling = False

    async def open(self, sub: Subscription, include_initial: bool, overflow: Overflow, buffer: int) -> Down:
        if self._stopped:
            raise Unavailable("the client is closed")
        ready = asyncio.Event()
        down = Down(buffer, overflow, include_initial, ready.set)
        down.ready = ready  # type: ignore[attr-defined]
        self._send(self.core.watch(sub, down))
        self._ensure_running()
        if self._wakeup is not None:
            self._wakeup.set()  # a reconnection waiting out its backoff goes now
        deadline = time.monotonic() + self._timeout
        try:
            while down.upstream is None and down.error is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DeadlineExceeded(f"no snapshot from the server within {self._timeout} s")
                ready.clear()
                if down.upstream is not None or down.error is not None:
                    break
                try:
                    await asyncio.wait_for(ready.wait(), left)
                except asyncio.TimeoutError:
                    pass
        except BaseException:
            # A deadline, a cancelled task: leave nothing behind.
            self.release(down)
            raise
        if down.error is not None:
            raise down.error
        return down

    async def recv(self, down: Down, timeout: Optional[float]) -> Optional[Event]:
        deadline = None if timeout is None else time.monotonic() + timeout
        ready: asyncio.Event = down.ready  # type: ignore[attr-defined]
        while True:
            e = self.core.recv(down)
            if e is ENDED:
                return None
            if e is not None:
                return e
            ready.clear()
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            down.waiting = True
            try:
                await asyncio.wait_for(ready.wait(), left)
            except asyncio.TimeoutError:
                return None

    def release(self, down: Down) -> None:
        self._send(self.core.release(down.upstream, down.key, down))
        if self.core.is_idle() and self._outbox is not None:
            self._outbox.put_nowait(None)  # half-close: the server ends the stream
            self._outbox = None
            self.core.connected = False
        if self._wakeup is not None:
            self._wakeup.set()

    async def shutdown(self) -> None:
        self._stopped = True
        self.core.close_all(Unavailable("the client was closed"))
        if self._outbox is not None:
            self._outbox.put_nowait(None)
        if self._call is not None:
            self._cancelling = True
            self._call.cancel()
        if self._wakeup is not None:
            self._wakeup.set()
        task = self._task
        if task is not None and task is not asyncio.current_task():
            try:
                await asyncio.wait_for(asyncio.shield(task), 5)
            except (asyncio.TimeoutError, asyncio.CancelledError, Exception):
                task.cancel()

    def _send(self, requests: List[pb.WatchRequest]) -> None:
        if self._outbox is not None:
            for r in requests:
                self._outbox.put_nowait(r)

    def _ensure_running(self) -> None:
        if self._task is None and not self.core.is_idle():
            self._wakeup = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _write(self, call: Any, outbox: asyncio.Queue) -> None:
        """What the stream sends (see the blocking client's ``_requests``).
        A write to a stream that has ended stops it quietly: the reader
        sees the end and reconnects."""
        try:
            await self._write_until_done(call, outbox)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError, grpc.aio.UsageError):
            pass

    async def _write_until_done(self, call: Any, outbox: asyncio.Queue) -> None:
        interval = self.core.config.heartbeat_interval
        last_beat = time.monotonic()
        while True:
            retry = self.core.next_retry()
            now = time.monotonic()
            wait = last_beat + interval - now
            if retry is not None:
                wait = min(wait, retry - now)
            try:
                req = await asyncio.wait_for(outbox.get(), max(0.0, wait))
            except asyncio.TimeoutError:
                if self.core.silent():
                    self._cancelling = True
                    call.cancel()
                    return
                out = self.core.retry_due()
                if time.monotonic() >= last_beat + interval:
                    out += self.core.heartbeat()
                    last_beat = time.monotonic()
                for r in out:
                    await call.write(r)
                continue
            if req is None:
                await call.done_writing()
                return
            await call.write(req)

    async def _run(self) -> None:
        try:
            while not self.core.is_idle() and not self._stopped:
                outbox: asyncio.Queue = asyncio.Queue()
                self._outbox = outbox
                for r in self.core.on_connect():
                    outbox.put_nowait(r)
                self._cancelling = False
                call = self._stub.Watch(metadata=self._metadata)
                self._call = call
                writer = asyncio.get_running_loop().create_task(self._write(call, outbox))
                error: Optional[VarwatchError] = None
                try:
                    async for resp in call:
                        for r in self.core.apply(Core.decode(resp)) + self.core.retry_due():
                            outbox.put_nowait(r)
                        if self.core.is_idle():
                            outbox.put_nowait(None)
                except grpc.aio.AioRpcError as e:
                    error = from_rpc_error(e)
                except asyncio.CancelledError:
                    if not self._cancelling:
                        # This task is being cancelled (its loop shutting
                        # down): end the watches and go.
                        self.core.close_all(Unavailable("the watch stream's task was cancelled"))
                        raise
                    error = Unavailable("the watch stream was cancelled")
                except Exception as e:  # a bug: reconnect rather than hang every watch
                    log.exception("varwatch: the watch stream failed; reconnecting")
                    error = VarwatchError(f"internal error in the watch stream: {e!r}")
                    call.cancel()
                finally:
                    writer.cancel()
                    self._call = None
                    if self._outbox is outbox:
                        self._outbox = None
                if self._stopped:
                    return
                delay = self.core.on_broken(error)
                if delay is None:
                    return
                assert self._wakeup is not None
                self._wakeup.clear()
                until = time.monotonic() + delay
                while not self.core.is_idle() and not self._stopped:
                    left = until - time.monotonic()
                    if left <= 0:
                        break
                    try:
                        await asyncio.wait_for(self._wakeup.wait(), left)
                    except asyncio.TimeoutError:
                        break
                    self._wakeup.clear()
                    if any(u.waiting for u in self.core.upstreams.values()):
                        break
        finally:
            self._task = None
            if not self._stopped and not self.core.is_idle():
                # A watch opened while the task was leaving gets a new one.
                try:
                    self._ensure_running()
                except RuntimeError:
                    pass
