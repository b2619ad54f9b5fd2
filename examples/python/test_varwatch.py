"""The Python client against a real varwatch gRPC server (run_tests.sh starts
one and sets VARWATCH_ADDR)."""

import asyncio
import os
import threading
import uuid

import grpc
import pytest

from varwatch_client import Client, watch_async

ADDR = os.environ.get("VARWATCH_ADDR", "127.0.0.1:50551")
TOKEN = os.environ.get("VARWATCH_TOKEN")


@pytest.fixture
def client():
    c = Client(ADDR, TOKEN)
    yield c
    c.close()


@pytest.fixture
def session(client):
    name = f"py-{uuid.uuid4().hex[:8]}"
    client.create_session(name)
    return name


def test_stale_read_over_the_wire(client, session):
    # Subscribed first: exactly [1, 2, 3], the first marked initial.
    client.register(session, "x", "integer", 1)
    watch = client.watch(session, ["x"])
    snapshot = watch.wait_synced()
    assert [(e.kind, e.value) for e in snapshot] == [("initial", 1)]
    client.update(session, "x", "integer", 2)
    client.update(session, "x", "integer", 3)
    rest = [next(watch), next(watch)]
    assert [(e.kind, e.value, e.version) for e in rest] == [("changed", 2, 1), ("changed", 3, 2)]
    watch.close()


def test_stale_read_race(client, session):
    # A writer racing the subscription: contiguous from the snapshot to 3.
    client.register(session, "x", "integer", 1)
    for _ in range(20):
        client.update(session, "x", "integer", 1)
        writer = threading.Thread(
            target=lambda: [client.update(session, "x", "integer", v) for v in (2, 3)]
        )
        writer.start()
        watch = client.watch(session, ["x"])
        events = []
        for e in watch:
            events.append(e)
            if e.value == 3:
                break
        writer.join()
        watch.close()
        assert events[0].kind == "initial"
        for a, b in zip(events, events[1:]):
            assert b.kind == "changed"
            assert (b.version, b.value) == (a.version + 1, a.value + 1)


def test_all_eight_types_round_trip(client, session):
    embedding = [i * 0.25 for i in range(4096)]
    cases = [
        ("f", "float", -1.5),
        ("i", "integer", -(2**63)),
        ("s", "string", "Hello, 世界"),
        ("b", "boolean", True),
        ("c", "choice", "red"),
        ("m", "module", "ChainOfThought"),
        ("e", "embedding", embedding),
        ("t", "tensor", ([2, 3], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])),
    ]
    for name, var_type, value in cases:
        client.register(session, name, var_type, value)
    for name, var_type, value in cases:
        var = client.get(session, name)
        assert client.value(session, name) == value, name
        assert var.version == 0


def test_constraint_errors_are_invalid_argument(client, session):
    client.register(session, "temperature", "float", 20.0, min=0.0, max=100.0)
    with pytest.raises(grpc.RpcError) as err:
        client.update(session, "temperature", "float", 150.0)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == f"variable `temperature` in session `{session}`: 150 is above maximum 100"
    assert client.value(session, "temperature") == 20.0
    with pytest.raises(grpc.RpcError) as err:
        client.update(session, "temperature", "float", 30.0, expected_version=7)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as err:
        client.get(session, "nope")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_sessions_are_isolated(client):
    a, b = f"iso-a-{uuid.uuid4().hex[:6]}", f"iso-b-{uuid.uuid4().hex[:6]}"
    for s in (a, b):
        client.create_session(s)
        client.register(s, "shared_name", "integer", 0)
    client.update(a, "shared_name", "integer", 42)
    assert client.value(a, "shared_name") == 42
    assert client.value(b, "shared_name") == 0


def test_async_watch(client, session):
    client.register(session, "x", "integer", 5)
    events = asyncio.run(watch_async(ADDR, session, ["x"], 1, TOKEN))
    assert [(e.kind, e.value) for e in events] == [("initial", 5)]


@pytest.mark.skipif(not TOKEN, reason="the server was started without a token")
def test_bearer_token_is_required():
    for token in (None, TOKEN + "-wrong"):
        c = Client(ADDR, token)
        with pytest.raises(grpc.RpcError) as err:
            c.create_session(f"nope-{uuid.uuid4().hex[:6]}")
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        c.close()
