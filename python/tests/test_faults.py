"""Faults: a network outage while a writer continues (the watch resumes,
no gap, no duplicate), a server that lost its state (SESSION_CLOSED), and
a client that stops heartbeating (dropped by the server)."""
import threading
import time


import varwatch
from varwatch import EventKind

from conftest import Proxy, Server, check_contiguous, wait_until


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
