"""The asyncio client: operations, watches, heartbeats, and release of
abandoned watches."""
import asyncio
import gc

import pytest

import varwatch
from varwatch import EventKind

from conftest import Server, wait_until


def run(coro):
    return asyncio.run(coro)


def test_async_operations_and_watch(server, session_name):
    async def main():
        async with varwatch.AsyncClient(server.address) as c:
            await c.create_session(session_name)
            await c.register(session_name, "t", "float", 20.0, max=100.0)
            with pytest.raises(varwatch.InvalidArgument):
                await c.update(session_name, "t", 500.0)
            got = []
            async with c.watch(session_name, ["t"]) as w:
                await c.update(session_name, "t", 21.0)
                await c.update_atomic(session_name, [("t", 22.0)])
                async for e in w:
                    got.append((e.kind, e.value))
                    if e.value == 22.0:
                        break
            assert got == [(EventKind.INITIAL, 20.0), (EventKind.CHANGED, 21.0), (EventKind.CHANGED, 22.0)]
            assert (await c.get_many(session_name, ["t"])).found["t"].version == 2
            assert [d.name for d in await c.export(session_name)] == ["t"]

    run(main())


def test_async_stale_read(server, session_name):
    async def main():
        async with varwatch.AsyncClient(server.address) as c:
            await c.create_session(session_name)
            await c.register(session_name, "x", "integer", 0)
            for _ in range(50):
                await c.update(session_name, "x", 0)

                async def write():
                    for v in (1, 2, 3):
                        await c.update(session_name, "x", v)

                task = asyncio.create_task(write())
                w = await c.watch(session_name, ["x"]).open()
                first = await w.next(10)
                assert first.kind is EventKind.INITIAL
                last, value = first.version, first.value
                while value != 3:
                    e = await w.next(10)
                    assert e.version == last + 1
                    last, value = e.version, e.value
                await w.aclose()
                await task

    run(main())


def test_async_watch_heartbeats_keep_it_alive(session_name):
    """A server that drops a silent client after 1 s: an async watch that
    receives nothing for 3 s is still there, and gets the next change."""
    srv = Server("--heartbeat-timeout", "1s", "--heartbeat-interval", "500ms")

    async def main():
        async with varwatch.AsyncClient(srv.address, heartbeat_interval=0.2, heartbeat_timeout=3) as c:
            await c.create_session(session_name)
            await c.register(session_name, "x", "integer", 0)
            async with c.watch(session_name, ["x"], include_initial=False) as w:
                await asyncio.sleep(3)
                assert (await c.session(session_name)).watchers == 1
                await c.update(session_name, "x", 1)
                e = await w.next(5)
                assert e.value == 1 and w.overflows == 0
                assert w.reconnects == 0, "the server dropped the stream: no heartbeats"

    try:
        run(main())
    finally:
        srv.stop()


def test_an_abandoned_async_watch_is_released(server, session_name):
    async def main():
        async with varwatch.AsyncClient(server.address) as c:
            await c.create_session(session_name)
            await c.register(session_name, "x", "integer", 0)

            async def consume():
                async for _ in c.watch(session_name, ["x"]):
                    await asyncio.sleep(3600)

            task = asyncio.create_task(consume())
            await asyncio.sleep(0.5)
            assert (await c.session(session_name)).watchers == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            del task
            gc.collect()
            for _ in range(250):
                if (await c.session(session_name)).watchers == 0:
                    break
                await asyncio.sleep(0.02)
            assert (await c.session(session_name)).watchers == 0

    run(main())


def test_a_cancelled_open_leaves_nothing_behind(server, session_name):
    async def main():
        async with varwatch.AsyncClient(server.address) as c:
            await c.create_session(session_name)
            await c.register(session_name, "x", "integer", 0)
            for _ in range(20):
                task = asyncio.create_task(c.watch(session_name, ["x"]).open())
                await asyncio.sleep(0)  # the create is on its way
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
                else:
                    await task.result().aclose()  # it won the race
            # A fence: a watch opened after all that gets its snapshot only
            # once the server has handled every create and cancel sent
            # before it (one stream, in order; a half-closed stream ends
            # before the next starts). Counted before it, the server could
            # still have a create and its cancel to come: 0, then 1, then 0.
            await c.create_session(session_name + "-fence")
            await c.register(session_name + "-fence", "y", "integer", 0)
            async with c.watch(session_name + "-fence", ["y"]) as fence:
                assert (await fence.next(10)).kind == varwatch.EventKind.INITIAL
            for _ in range(250):
                if (await c.session(session_name)).watchers == 0:
                    break
                await asyncio.sleep(0.02)
            assert (await c.session(session_name)).watchers == 0

    run(main())


def test_closing_a_watch_wakes_the_task_waiting_on_it(server, session_name):
    async def main():
        async with varwatch.AsyncClient(server.address) as c:
            await c.create_session(session_name)
            await c.register(session_name, "x", "integer", 0)
            w = await c.watch(session_name, ["x"], include_initial=False)
            waiter = asyncio.create_task(w.next())
            await asyncio.sleep(0.2)
            await w.aclose()
            assert await asyncio.wait_for(waiter, 5) is None
            assert w.ended

    run(main())


def test_a_loop_that_ends_without_closing_the_client_ends(server, session_name):
    """asyncio.run returning with a watch open and the client not closed:
    the stream's task is cancelled with the loop and the program ends."""
    import subprocess
    import sys

    code = f"""
import asyncio, varwatch
async def main():
    c = varwatch.AsyncClient({server.address!r})
    await c.get_or_create_session({session_name!r})
    try:
        await c.register({session_name!r}, "x", "integer", 0)
    except varwatch.AlreadyExists:
        pass
    w = await c.watch({session_name!r}, ["x"])
    print((await w.next(5)).kind)
asyncio.run(main())
print("done")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["initial", "done"]
