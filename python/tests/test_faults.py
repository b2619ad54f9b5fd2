"""Faults: a network outage while a writer continues (the watch resumes,
no gap, no duplicate), a server that lost its state (SESSION_CLOSED), and
a client that stops heartbeating (dropped by the server)."""
import threading
import time


import varwatch
from varwatch import EventKind

from conftest import Proxy, Server, check_acknowledged, check_contiguous, collect_until, wait_until


def test_a_watch_resumes_through_outages_while_a_writer_continues(server, session_name):
    proxy = Proxy(server.port)
    writes = 3000
    try:
        with varwatch.Client(server.address) as writer_client, varwatch.Client(
            proxy.address, heartbeat_interval=0.2, heartbeat_timeout=1.0, backoff=(0.05, 0.2)
        ) as c:
            writer_client.create_session(session_name)
            writer_client.register(session_name, "x", "integer", 0)
            w = c.watch(session_name, ["x"], include_initial=False)
            done = threading.Event()

            def write():
                for v in range(1, writes + 1):
                    writer_client.update(session_name, "x", v)
                    if v % 200 == 0:
                        time.sleep(0.01)
                done.set()

            def cut():
                while not done.is_set():
                    time.sleep(0.3)
                    proxy.cut()
                    time.sleep(0.2)
                    proxy.restore()

            threads = [threading.Thread(target=write), threading.Thread(target=cut)]
            for t in threads:
                t.start()
            events = []
            # (A LAGGED marker carries the version of the state that follows
            # it: wait for that state.)
            while not events or events[-1].kind is EventKind.LAGGED or events[-1].version < writes:
                e = w.next(30)
                assert e is not None, f"stalled after {events[-1:]}"
                events.append(e)
            for t in threads:
                t.join()
            check_contiguous(events, 1, writes)
            assert w.reconnects > 0, "no outage was noticed"
            # Values match versions (the writer wrote v at version v).
            assert all(e.value == e.version for e in events if e.kind is EventKind.CHANGED)
    finally:
        proxy.close()


def test_a_server_that_lost_its_state_closes_the_watch(session_name):
    srv = Server()
    try:
        with varwatch.Client(srv.address, heartbeat_interval=0.2, heartbeat_timeout=1.0, backoff=(0.05, 0.2)) as c:
            c.create_session(session_name)
            c.register(session_name, "x", "integer", 0)
            w = c.watch(session_name, ["x"])
            assert w.next(5).is_initial
            srv.restart()  # a fresh process: the session is gone
            e = w.next(30)
            assert e is not None and e.kind is EventKind.SESSION_CLOSED, e
            assert w.next(5) is None
    finally:
        srv.stop()


def test_watches_continue_across_a_killed_and_restarted_durable_server(session_name, tmp_path):
    """A server on a data directory is killed (SIGKILL) and restarted three
    times under a writer: a blocking and an async watch go on with no
    SESSION_CLOSED, see every version once (delivered or inside a LAGGED
    range), and every acknowledged write is there with its value."""
    import asyncio

    srv = Server("--data-dir", str(tmp_path / "data"))
    acked = {}  # version -> value
    try:
        opts = dict(heartbeat_interval=0.2, heartbeat_timeout=1.0, backoff=(0.05, 0.2))
        with varwatch.Client(srv.address, **opts) as c:
            c.create_session(session_name)
            c.register(session_name, "x", "integer", 0)
            w = c.watch(session_name, ["x"], include_initial=False)
            stop = threading.Event()

            def write():
                v = 0
                while not stop.is_set():
                    v += 1
                    try:
                        acked[c.update(session_name, "x", v, timeout=2.0)] = v
                    except (varwatch.Unavailable, varwatch.OutcomeUnknown, varwatch.DeadlineExceeded):
                        time.sleep(0.02)

            async_events = []

            def watch_async(until):
                async def run():
                    async with varwatch.AsyncClient(srv.address, **opts) as ac:
                        aw = await ac.watch(session_name, ["x"], include_initial=False)
                        async for e in aw:
                            async_events.append(e)
                            if e.kind is not EventKind.LAGGED and e.version >= until[0]:
                                return

                asyncio.run(run())

            until = [1 << 62]
            writer = threading.Thread(target=write)
            # A daemon: if it stalls, the test fails instead of hanging.
            async_watcher = threading.Thread(target=watch_async, args=(until,), daemon=True)
            async_watcher.start()
            time.sleep(0.3)
            writer.start()
            for _ in range(3):
                time.sleep(0.4)
                srv.kill()  # SIGKILL
                srv.start()
            time.sleep(0.4)
            stop.set()
            writer.join()
            # The async watch stops at the version written after `until` is
            # set (set before the write, so it cannot be missed).
            until[0] = c.get(session_name, "x").version + 1
            last = c.update(session_name, "x", -1)
            assert last == until[0]
            events = collect_until(w, last)
            async_watcher.join(60)
            assert not async_watcher.is_alive(), "the async watch stalled"
            assert len(acked) > 10, acked
            for evs in (events, async_events):
                assert all(e.kind in (EventKind.CHANGED, EventKind.LAGGED) for e in evs), evs[-3:]
                check_contiguous(evs, 1, last)
                check_acknowledged(evs, acked)
            assert c.get(session_name, "x").version == last
    finally:
        srv.stop()


def test_a_client_of_two_replicas_moves_on_when_one_dies(session_name):
    """Two servers on one etcd (run under scripts/with-etcd.sh): a client
    given both keeps writing and watching while one, then the other, is
    killed; its watch sees every version once (or inside a LAGGED range)
    and every acknowledged write is there."""
    import os
    import uuid

    import pytest

    etcd = os.environ.get("VARWATCH_ETCD")
    if not etcd:
        if os.environ.get("VARWATCH_REQUIRE_ETCD"):
            pytest.fail("VARWATCH_REQUIRE_ETCD is set but VARWATCH_ETCD is not (run under scripts/with-etcd.sh)")
        pytest.skip("needs etcd: bash scripts/with-etcd.sh bash python/run_tests.sh")
    prefix = f"pytest/{uuid.uuid4().hex}/"
    args = ("--etcd", etcd, "--etcd-prefix", prefix, "--health-interval", "200ms")
    a, b = Server(*args), Server(*args)
    acked = {}
    try:
        opts = dict(heartbeat_interval=0.2, heartbeat_timeout=1.0, backoff=(0.02, 0.2), timeout=5.0)
        with varwatch.Client([a.address, b.address], **opts) as c:
            c.create_session(session_name)
            c.register(session_name, "x", "integer", 0)
            w = c.watch(session_name, ["x"], include_initial=False)
            stop = threading.Event()

            def write():
                v = 0
                while not stop.is_set():
                    v += 1
                    try:
                        acked[c.update(session_name, "x", v)] = v
                    except (varwatch.Unavailable, varwatch.OutcomeUnknown, varwatch.DeadlineExceeded):
                        pass
                    time.sleep(0.002)

            writer = threading.Thread(target=write)
            writer.start()
            for down, up in ((a, None), (b, a)):
                time.sleep(0.3)
                if up is not None:
                    up.start()
                down.kill()
                before = len(acked)
                wait_until("writes through the other replica", lambda: len(acked) >= before + 10)
            b.start()
            stop.set()
            writer.join()
            last = c.update(session_name, "x", -1)
            events = collect_until(w, last)
            check_contiguous(events, 1, last)
            assert w.reconnects >= 2, w.reconnects
            check_acknowledged(events, acked)
    finally:
        a.stop()
        b.stop()
