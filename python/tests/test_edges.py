"""The Python user's edges that a session of trying the package found:
numpy scalars, choices, cancelled tasks, a frozen server, the backoff
setting, a closed client, reopening a watch, the value limit."""
import asyncio
import os
import signal
import time

import numpy as np
import pytest

import varwatch

from conftest import Server, wait_until


def test_numpy_scalars_are_the_scalars_they_hold(client, session_name):
    client.create_session(session_name)
    client.register(session_name, "f", "float", 0.0)
    client.register(session_name, "i", "integer", 0)
    client.register(session_name, "b", "boolean", False)
    client.update(session_name, "f", np.float64(2.25))
    assert client.value(session_name, "f") == 2.25
    client.update(session_name, "f", np.arange(4.0).mean())
    assert client.value(session_name, "f") == 1.5
    client.update(session_name, "f", np.float32(0.5))
    assert client.value(session_name, "f") == 0.5
    client.update(session_name, "i", np.int64(3))
    assert client.value(session_name, "i") == 3
    client.update(session_name, "b", np.bool_(True))
    assert client.value(session_name, "b") is True


def test_a_choice_needs_its_choices(client, session_name):
    """The server's validation is the one source of truth: the client sends
    what it was given, an empty list included."""
    client.create_session(session_name)
    for kw in ({}, {"choices": []}):
        with pytest.raises(varwatch.InvalidArgument) as e:
            client.register(session_name, "c", "choice", "a", **kw)
        assert e.value.kind == "InvalidConstraints"
    client.register(session_name, "c", "choice", "a", choices=["a", "b"])
    with pytest.raises(varwatch.InvalidArgument):
        client.update(session_name, "c", "z")
    with pytest.raises(varwatch.InvalidArgument) as e:
        client.register(session_name, "s", "string", "a", allowed_values=[])
    assert "must not be empty" in str(e.value)


def test_cancelled_tasks_release_their_watches_at_once(server, session_name):
    """A task iterating a watch with `async for`, cancelled: the watch is
    cancelled on the server at once, although the Task objects (and their
    unretrieved CancelledError) live on."""

    async def main():
        async with varwatch.AsyncClient(server.address) as c:
            await c.create_session(session_name)
            await c.register(session_name, "x", "integer", 0)
            started = asyncio.Event()
            opened = []

            async def consume(i):
                # Distinct capacities: a hundred watches on the server.
                w = c.watch(session_name, ["x"], capacity=i + 1)
                await w.open()
                opened.append(i)
                if len(opened) == 100:
                    started.set()
                async for _ in w:
                    pass

            tasks = [asyncio.create_task(consume(i)) for i in range(100)]
            await asyncio.wait_for(started.wait(), 30)
            assert (await c.session(session_name)).watchers == 100
            for t in tasks:
                t.cancel()
            await asyncio.sleep(0)  # the tasks see their cancellation
            for _ in range(250):
                if (await c.session(session_name)).watchers == 0:
                    break
                await asyncio.sleep(0.02)
            assert (await c.session(session_name)).watchers == 0
            assert all(t.cancelled() for t in tasks)  # kept, never awaited

    asyncio.run(main())


def test_a_frozen_server_is_a_deadline_not_a_cancellation(session_name):
    srv = Server()
    try:
        with varwatch.Client(srv.address, timeout=1.5) as c:
            c.create_session(session_name)
            c.register(session_name, "x", "integer", 0)
            os.kill(srv.proc.pid, signal.SIGSTOP)
            try:
                with pytest.raises((varwatch.DeadlineExceeded, varwatch.Unavailable)):
                    c.watch(session_name, ["y"])
                with pytest.raises((varwatch.DeadlineExceeded, varwatch.Unavailable, varwatch.OutcomeUnknown)):
                    c.update(session_name, "x", 1)
            finally:
                os.kill(srv.proc.pid, signal.SIGCONT)
    finally:
        srv.stop()


def test_a_call_has_its_own_timeout_and_a_lost_write_is_an_unknown_outcome(session_name):
    """Each call takes ``timeout=`` (seconds), shorter than the client's;
    against a frozen server a read raises ``DeadlineExceeded`` and a write
    ``OutcomeUnknown`` (sent, its answer never came: it may apply later),
    in both clients."""
    srv = Server()
    try:
        with varwatch.Client(srv.address, timeout=30.0) as c:
            c.create_session(session_name)
            c.register(session_name, "x", "integer", 0)
            os.kill(srv.proc.pid, signal.SIGSTOP)
            try:
                start = time.monotonic()
                with pytest.raises(varwatch.DeadlineExceeded):
                    c.get(session_name, "x", timeout=0.5)
                with pytest.raises(varwatch.OutcomeUnknown) as lost:
                    c.update(session_name, "x", 1, timeout=0.5)
                assert lost.value.session == session_name

                async def aio() -> None:
                    async with varwatch.AsyncClient(srv.address, timeout=30.0) as a:
                        with pytest.raises(varwatch.DeadlineExceeded):
                            await a.session(session_name, timeout=0.5)

                asyncio.run(aio())
                # Bounded by the calls' deadlines, not the clients' 30 s.
                assert time.monotonic() - start < 20
            finally:
                os.kill(srv.proc.pid, signal.SIGCONT)
        with varwatch.Client(srv.address) as c:
            # Unknown means unknown: the server, thawed, may run the write
            # (its request arrived) or drop it (the client's cancellation
            # arrived with it, and HTTP/2 processed both before the handler
            # ran). Either way at most once, never another value.
            try:
                wait_until("the lost write applied", lambda: c.get(session_name, "x").version == 1, timeout=3.0)
            except AssertionError:
                pass
            x = c.get(session_name, "x")
            assert (x.version, x.value) in ((0, 0), (1, 1)), (x.version, x.value)
            with pytest.raises(ValueError):
                c.get(session_name, "x", timeout=0)
    finally:
        srv.stop()


def test_the_backoff_setting_governs_reconnection(server):
    """The Rust client reconnects by the client's backoff (its mux is tested
    in Rust); the setting reaches it as given."""
    with varwatch.Client(server.address, backoff=(0.05, 0.5), heartbeat_interval=0.5, heartbeat_timeout=2.0) as c:
        cfg = c._native.config()
        assert cfg["backoff"] == (0.05, 0.5)
        assert (cfg["heartbeat_interval"], cfg["heartbeat_timeout"]) == (0.5, 2.0)


def test_calls_after_close_raise_a_varwatch_error(server, session_name):
    c = varwatch.Client(server.address)
    c.create_session(session_name)
    c.close()
    with pytest.raises(varwatch.Cancelled):
        c.session(session_name)
    with pytest.raises(varwatch.VarwatchError):
        c.watch(session_name, ["x"])

    async def main():
        a = varwatch.AsyncClient(server.address)
        await a.close()
        with pytest.raises(varwatch.Cancelled):
            await a.session(session_name)

    asyncio.run(main())


def test_a_watch_opened_after_the_last_one_closed_waits_for_no_backoff(client, session_name):
    """The connection goes idle with its last watch; the next one connects
    at once (a hundred milliseconds each, before, spent sleeping a
    reconnection backoff)."""
    client.create_session(session_name)
    client.register(session_name, "x", "integer", 0)
    start = time.monotonic()
    for _ in range(30):
        with client.watch(session_name, ["x"]) as w:
            assert w.next(10).is_initial
    # 30 opens at a backoff each would take 3 s; they take milliseconds.
    assert time.monotonic() - start < 3.0


def test_a_value_at_the_documented_limit_is_accepted(client, session_name):
    client.create_session(session_name)
    limit = 4 << 20
    client.register(session_name, "s", "string", "")
    client.update(session_name, "s", "x" * limit)
    assert len(client.value(session_name, "s")) == limit
    with pytest.raises(varwatch.ResourceExhausted) as e:
        client.update(session_name, "s", "y" * (limit + 1))
    assert (e.value.kind, e.value.limit, e.value.actual) == ("LimitExceeded", limit, limit + 1)
