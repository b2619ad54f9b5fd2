"""Blocking watches: the atomic snapshot, order, lag, coalescing, sharing,
whole-session watches, and release of abandoned watches."""
import gc
import threading

import pytest

import varwatch
from varwatch import EventKind

from conftest import wait_until


def watchers(client, session):
    return client.session(session).watchers


def test_stale_read_never_happens(client, session_name):
    """200 rounds: a writer sets 1, 2, 3 while a watch starts. The watch's
    first event is its initial state, and from it every version follows,
    no gap, no duplicate, up to 3."""
    client.create_session(session_name)
    client.register(session_name, "x", "integer", 0)
    for _ in range(200):
        client.update(session_name, "x", 0)
        base = client.get(session_name, "x").version
        writer = threading.Thread(target=lambda: [client.update(session_name, "x", v) for v in (1, 2, 3)])
        writer.start()
        with client.watch(session_name, ["x"]) as w:
            first = w.next(10)
            assert first.kind is EventKind.INITIAL
            seen = [first.value]
            last = first.version
            while seen[-1] != 3:
                e = w.next(10)
                assert e is not None and e.kind is EventKind.CHANGED, e
                assert e.version == last + 1, (e.version, last)
                last = e.version
                seen.append(e.value)
            assert last == base + 3
            assert seen == [0, 1, 2, 3][4 - len(seen):]
        writer.join()


def test_events_carry_everything(client, session_name):
    client.create_session(session_name)
    client.register(session_name, "t", "float", 20.0)
    with client.watch(session_name, ["t"]) as w:
        assert w.next(5).is_initial
        client.update(session_name, "t", 21.0, source="py", metadata={"k": "v"})
        e = w.next(5)
        assert (e.kind, e.name, e.version, e.value, e.old_value, e.source, e.metadata) == (
            EventKind.CHANGED, "t", 1, 21.0, 20.0, "py", {"k": "v"})
        assert e.id.startswith("var_") and e.timestamp is not None
        assert e.revision == client.session(session_name).revision


def test_whole_session_watch_sees_new_variables_deletions_and_the_end(client, session_name):
    client.create_session(session_name)
    client.register(session_name, "a", "integer", 1)
    w = client.watch(session_name)
    assert [(e.kind, e.name) for e in [w.next(5)]] == [(EventKind.INITIAL, "a")]
    client.register(session_name, "b", "integer", 2)
    e = w.next(5)
    assert (e.kind, e.name, e.value) == (EventKind.INITIAL, "b", 2)
    client.delete_variable(session_name, "a")
    e = w.next(5)
    assert (e.kind, e.name) == (EventKind.DELETED, "a")
    client.delete_session(session_name)
    assert w.next(5).kind is EventKind.SESSION_CLOSED
    assert w.next(5) is None  # ended
    assert list(w) == []


def test_an_atomic_batch_arrives_as_one_group(client, session_name):
    client.create_session(session_name)
    for n in "abc":
        client.register(session_name, n, "integer", 0)
    with client.watch(session_name, ["a", "b", "c"], include_initial=False) as w:
        client.update_atomic(session_name, [("a", 1), ("b", 1), ("c", 1)])
        group = [w.next(5) for _ in range(3)]
        assert {e.name for e in group} == {"a", "b", "c"}
        assert len({e.revision for e in group}) == 1


def test_a_full_buffer_lags_explicitly_then_catches_up(client, session_name):
    client.create_session(session_name)
    client.register(session_name, "x", "integer", 0)
    with client.watch(session_name, ["x"], buffer=2, include_initial=False) as w:
        for v in range(1, 51):
            client.update(session_name, "x", v)
        wait_until("the writes to reach the watch", lambda: w.overflows > 0)
        events = []
        while True:
            e = w.next(2)
            events.append(e)
            if e.value == 50:
                break
        lagged = [e for e in events if e.kind is EventKind.LAGGED]
        assert lagged, events
        # Every version accounted for: delivered, or named by a marker.
        covered = set()
        for e in events:
            if e.kind is EventKind.LAGGED:
                covered |= set(range(e.lag[0], e.lag[1] + 1))
            else:
                covered.add(e.version)
        assert covered >= set(range(1, 51))


def test_overflow_close_ends_the_watch(client, session_name):
    client.create_session(session_name)
    client.register(session_name, "x", "integer", 0)
    w = client.watch(session_name, ["x"], buffer=1, include_initial=False, overflow="close")
    for v in range(1, 20):
        client.update(session_name, "x", v)
    wait_until("an overflow", lambda: w.overflows > 0)
    events = list(w)
    assert events[-1].kind is EventKind.LAGGED


def test_coalescing_watch_counts_what_it_skipped(client, session_name):
    client.create_session(session_name)
    client.register(session_name, "x", "integer", 0)
    with client.watch(session_name, ["x"], coalesce=True, include_initial=False) as w:
        for v in range(1, 11):
            client.update(session_name, "x", v)
        total = 0
        last = None
        while last is None or last.value != 10:
            last = w.next(5)
            assert last.kind is EventKind.CHANGED
            total += last.skipped + 1
        assert total == 10


def test_identical_watches_share_one_watch_on_the_server(client, session_name):
    client.create_session(session_name)
    client.register(session_name, "x", "integer", 0)
    ws = [client.watch(session_name, ["x"]) for _ in range(20)]
    assert watchers(client, session_name) == 1
    client.update(session_name, "x", 1)
    for w in ws:
        assert w.next(5).is_initial
        assert w.next(5).value == 1
    for w in ws:
        w.close()
    wait_until("the shared watch to go", lambda: watchers(client, session_name) == 0)


def test_an_abandoned_watch_is_released_and_leaves_no_thread(server, session_name):
    with varwatch.Client(server.address) as client:
        client.create_session(session_name)
        client.register(session_name, "x", "integer", 0)
        gc.collect()
        baseline = threading.active_count()
        # A loop left with `break`, no close(): the watch object is dropped.
        for e in client.watch(session_name, ["x"]):
            assert e.is_initial
            break
        wait_until("the server to forget the watch", lambda: watchers(client, session_name) == 0, timeout=5)
        # And one merely dropped.
        w = client.watch(session_name, ["x"])
        assert watchers(client, session_name) == 1
        del w
        wait_until("the server to forget the watch", lambda: watchers(client, session_name) == 0, timeout=5)
        wait_until("the client's threads to end", lambda: threading.active_count() <= baseline, timeout=10)


def test_closing_the_client_ends_its_watches(server, session_name):
    client = varwatch.Client(server.address)
    client.create_session(session_name)
    client.register(session_name, "x", "integer", 0)
    w = client.watch(session_name, ["x"])
    assert w.next(5).is_initial
    client.close()
    assert w.next(5) is None


def test_opening_a_watch_on_an_unknown_session_fails(client):
    with pytest.raises(varwatch.NotFound):
        client.watch("no-such-session", ["x"])
    with pytest.raises(ValueError):
        client.watch("s", [])


def test_heartbeats_keep_a_quiet_watch_alive(session_name):
    """A server that drops a silent client after 1 s: a watch that receives
    nothing for 3 s keeps its stream (no reconnect)."""
    from conftest import Server

    srv = Server("--heartbeat-timeout", "1s", "--heartbeat-interval", "500ms")
    try:
        with varwatch.Client(srv.address, heartbeat_interval=0.2, heartbeat_timeout=3) as c:
            c.create_session(session_name)
            c.register(session_name, "x", "integer", 0)
            with c.watch(session_name, ["x"], include_initial=False) as w:
                assert w.next(3) is None
                c.update(session_name, "x", 1)
                assert w.next(5).value == 1
                assert w.reconnects == 0, "the server dropped the stream: no heartbeats"
    finally:
        srv.stop()
