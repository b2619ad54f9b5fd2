"""Fixtures: a real varwatch server (the `varwatch-server` binary, started on
a free loopback port), and a TCP proxy that can cut every connection.

The binary is found through $VARWATCH_SERVER_BIN (run_tests.sh builds it
and sets it); without it the tests cannot run and say so.
"""
import os
import socket
import subprocess
import tempfile
import threading
import time
import uuid

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_contiguous(events, start, end):
    """Every version from `start` to `end` exactly once, in order: delivered,
    or named by a LAGGED marker."""
    from varwatch import EventKind

    expected = start
    for e in events:
        if e.kind is EventKind.LAGGED:
            assert e.lag[0] == expected, (e, expected)
            expected = e.lag[1] + 1
        else:
            assert e.version == expected, (e.version, expected)
            expected += 1
    assert expected == end + 1, (expected, end)


def collect_until(watch, last, timeout=30):
    """A watch's CHANGED and LAGGED events up to the state at version `last`
    (a LAGGED marker is followed by the state it covers: wait for it);
    anything else, or a stall of `timeout` seconds, fails."""
    from varwatch import EventKind

    events = []
    while not events or events[-1].kind is EventKind.LAGGED or events[-1].version < last:
        e = watch.next(timeout)
        assert e is not None, f"stalled after {events[-1:]}"
        assert e.kind in (EventKind.CHANGED, EventKind.LAGGED), e
        events.append(e)
    return events


def check_acknowledged(events, acked):
    """Every acknowledged write (`acked`: version -> value) was delivered
    with its value, or lies inside a LAGGED range."""
    from varwatch import EventKind

    seen = {e.version: e.value for e in events if e.kind is EventKind.CHANGED}
    lagged = [e.lag for e in events if e.kind is EventKind.LAGGED]
    for version, value in acked.items():
        if version in seen:
            assert seen[version] == value, (version, seen[version], value)
        else:
            assert any(lo <= version <= hi for lo, hi in lagged), f"v{version} neither seen nor lagged"


def wait_until(what, done, timeout=20.0, interval=0.02):
    """Polls `done` until it holds; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


class Server:
    """A varwatch-server process; `restart()` starts a fresh one (an empty
    store) on the same port."""

    def __init__(self, *args, token=None):
        self.binary = os.environ.get("VARWATCH_SERVER_BIN")
        if not self.binary or not os.path.exists(self.binary):
            pytest.fail("VARWATCH_SERVER_BIN is not set to the varwatch-server binary (run python/run_tests.sh)")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.args = list(args)
        self.token = token
        self.proc = None
        self._dir = tempfile.mkdtemp()
        self.start()

    def start(self):
        cmd = [self.binary, "--listen", self.address, "--log", "warn"] + self.args
        if self.token:
            path = os.path.join(self._dir, "token")
            with open(path, "w") as f:
                f.write(self.token)
            cmd += ["--token-file", path]
        # The server reads VARWATCH_* settings from its environment (the
        # test harness's VARWATCH_ETCD among them): it gets only its flags.
        env = {k: v for k, v in os.environ.items() if not k.startswith("VARWATCH_")}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"varwatch-server exited: {self.proc.stderr.read().decode()}")
                if time.monotonic() > deadline:
                    raise RuntimeError("varwatch-server did not start within 30 s")
                time.sleep(0.05)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restart(self):
        self.kill()
        self.start()

    def stop(self):
        self.kill()


class Proxy:
    """A loopback TCP proxy in front of `target`; `cut()` closes every
    connection and refuses new ones until `restore()` — a network outage
    while the server and its state live on."""

    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.up = True
        self.conns = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.close()
            except OSError:
                pass

    def cut(self):
        self.up = False
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.conns = []

    def restore(self):
        self.up = True

    def close(self):
        self.closed = True
        self.cut()
        self.listener.close()


@pytest.fixture(scope="session")
def server():
    s = Server()
    yield s
    s.stop()


@pytest.fixture
def session_name():
    return f"py-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def client(server):
    import varwatch

    c = varwatch.Client(server.address, heartbeat_interval=0.5, backoff=(0.05, 0.5))
    yield c
    c.close()
