"""Faults: a network outage while a writer continues (the watch resumes,
no gap, no duplicate), a server that lost its state (SESSION_CLOSED), and
a client that stops heartbeating (dropped by the server)."""
import threading
import time

import grpc

import varwatch
from varwatch import EventKind
from varwatch._proto import varwatch_pb2 as pb
from varwatch._proto import varwatch_pb2_grpc as rpc

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


def test_a_client_that_stops_heartbeating_is_dropped(session_name):
    srv = Server("--heartbeat-timeout", "1s", "--heartbeat-interval", "300ms")
    try:
        with varwatch.Client(srv.address) as c:
            c.create_session(session_name)
            c.register(session_name, "x", "integer", 0)
            # A raw stream: one create, then silence (no heartbeat).
            channel = grpc.insecure_channel(srv.address)
            stub = rpc.VarWatchStub(channel)
            stop = threading.Event()

            def requests():
                yield pb.WatchRequest(create=pb.WatchCreate(watch_id=1, session=session_name, variables=["x"]))
                stop.wait()

            call = stub.Watch(requests())
            first = next(call)
            assert first.updates[0].watch_ids == [1]
            wait_until("the server to see the watch", lambda: c.session(session_name).watchers == 1)
            wait_until("the server to drop the silent client", lambda: c.session(session_name).watchers == 0, timeout=10)
            try:
                for _ in call:
                    pass
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            stop.set()
            channel.close()
    finally:
        srv.stop()
