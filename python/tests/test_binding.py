"""The package binds the Rust client: the catch-up rule is the Rust one
(replayed from the shared vectors), errors carry their fields from the
server's status detail, and the seams the Rust client closed are closed here
too (read-your-writes on a shared watch, client-side coalescing, resume)."""
import importlib.metadata
import json
import os
import time

import pytest

import varwatch
from varwatch import EventKind, _native

from conftest import wait_until


def test_the_package_is_the_binding_and_needs_nothing_else():
    requires = importlib.metadata.requires("varwatch") or []
    assert all("extra ==" in r for r in requires), requires
    assert varwatch.__version__ == _native.__version__
    for gone in ("varwatch._core", "varwatch._proto", "grpc"):
        with pytest.raises(ImportError):
            __import__(gone)


def test_the_catch_up_rule_matches_the_shared_vectors():
    path = os.environ.get("VARWATCH_VECTORS") or os.path.join(
        os.path.dirname(__file__), "..", "..", "tests", "vectors", "catch_up.json"
    )
    with open(path) as f:
        cases = json.load(f)["cases"]
    assert len(cases) >= 30
    for c in cases:
        got = _native.catch_up(c["mode"], c["whole"], c["held"], c.get("next", 0), c["now"], c["version"])
        if c["event"] == "none":
            assert got is None, c["name"]
            continue
        lagged, event, after = got
        assert lagged == (tuple(c["lagged"]) if c["lagged"] else None), c["name"]
        assert event == (None if c["event"] == "-" else (c["event"], c["skipped"])), c["name"]
        assert after == (None if c["after"] == "gone" else c["after"]), c["name"]


def test_errors_carry_their_fields(client, session_name):
    client.create_session(session_name)
    client.register(session_name, "n", "integer", 0, min=0)
    client.update(session_name, "n", 1)
    client.update(session_name, "n", 2)
    with pytest.raises(varwatch.VersionConflict) as e:
        client.update(session_name, "n", 3, expected_version=0)
    assert (e.value.kind, e.value.session, e.value.variable, e.value.expected, e.value.current) == (
        "VersionConflict",
        session_name,
        "n",
        0,
        2,
    )
    assert e.value.code == "FAILED_PRECONDITION"
    with pytest.raises(varwatch.NotFound) as nf:
        client.watch(session_name, ["nope", "n", "nada"])
    assert (nf.value.kind, nf.value.variables) == ("VariablesNotFound", ["nope", "nada"])
    with pytest.raises(varwatch.InvalidArgument) as bad:
        client.update(session_name, "n", -5)
    assert (bad.value.kind, bad.value.reason) == ("InvalidValue", "-5 is below minimum 0")
    with pytest.raises(varwatch.VarwatchError) as batch:
        client.update_atomic(session_name, [("n", 5), ("n", 6), ("nope", 1)])
    assert batch.value.kind == "BatchRejected"
    failures = [(ident, err.kind) for ident, err in batch.value.failures]
    assert failures == [("n", "DuplicateInBatch"), ("nope", "VariableNotFound")]
    items = client.update_best_effort(session_name, [("n", 7, 0), ("n", 8)])
    assert isinstance(items[0], varwatch.VersionConflict) and items[0].current == 2
    assert items[1] == 3


def test_a_watch_opened_after_a_write_starts_at_or_after_it(client, server, session_name):
    """A watch identical to one the client already has joins its state, and
    still starts at or after a write acknowledged before it was asked for
    (this client's or another's)."""
    client.create_session(session_name)
    client.register(session_name, "x", "integer", 0)
    with varwatch.Client(server.address) as other:
        for opts in ({}, {"coalesce": True}):
            held = client.watch(session_name, ["x"], **opts)
            for i in range(60):
                writer = client if i % 2 else other
                version = writer.update(session_name, "x", i + 1)
                with client.watch(session_name, ["x"], **opts) as w:
                    first = w.next(10)
                    assert first is not None and first.is_initial
                    assert first.version >= version, (i, first.version, version)
            held.close()


def test_a_coalescing_reader_that_falls_behind_gets_one_state(client, session_name):
    client.create_session(session_name)
    client.register(session_name, "x", "integer", 0)
    w = client.watch(session_name, ["x"], coalesce=True, include_initial=False)
    for v in range(1, 6):
        client.update(session_name, "x", 100 + v)
        time.sleep(0.003)
    # An identical watch starts only once the client's copy of their shared
    # state holds every write above: so does `w`'s.
    probe = client.watch(session_name, ["x"], coalesce=True, include_initial=False)
    e = w.next(10)
    assert (e.kind, e.version, e.skipped, e.value) == (EventKind.CHANGED, 5, 4, 105)
    assert w.try_next() is None
    probe.close()
    w.close()


def test_a_lossless_watch_told_to_coalesce_on_overflow(client, session_name):
    client.create_session(session_name)
    client.register(session_name, "x", "integer", 0)
    w = client.watch(session_name, ["x"], include_initial=False, buffer=2, overflow="coalesce")
    for v in range(1, 21):
        client.update(session_name, "x", v)
    wait_until("an overflow", lambda: w.overflows > 0)
    events = []
    while True:
        e = w.next(2)
        if e is None or (events and events[-1].version == 20):
            break
        events.append(e)
        if e.version == 20:
            break
    assert all(e.kind is not EventKind.LAGGED for e in events), events
    assert events[-1].version == 20 and sum(1 + e.skipped for e in events) == 20


def test_blocking_calls_release_the_interpreter_lock(client, session_name):
    """A thread blocked in `next` lets another thread run Python code."""
    import threading

    client.create_session(session_name)
    client.register(session_name, "x", "integer", 0)
    w = client.watch(session_name, ["x"], include_initial=False)
    counted = []

    def count():
        n = 0
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            n += 1
        counted.append(n)

    t = threading.Thread(target=count)
    t.start()
    assert w.next(0.5) is None
    t.join()
    assert counted and counted[0] > 10_000, counted


def test_the_readme_quickstart_runs_as_written(server):
    """examples/quickstart.py (the README's quickstart) prints what the
    README shows."""
    import os
    import subprocess
    import sys

    example = os.path.join(os.path.dirname(__file__), "..", "examples", "quickstart.py")
    out = subprocess.run(
        [sys.executable, example, server.address], capture_output=True, text=True, timeout=60, check=True
    ).stdout.splitlines()
    # The server may hold the session from an earlier test run: the values
    # are the README's when it is fresh, and the shape always.
    assert out[0].startswith("initial  temperature v")
    assert [line.split(" = ")[1] for line in out[1:4]] == ["21.0", "22.5", "24.0"]
    assert out[4] == "refused: variable `temperature` in session `lab`: 150 is above maximum 100"
