"""Blocking watches: the atomic snapshot, order, lag, coalescing, sharing,
whole-session watches, and release of abandoned watches."""
import gc
import threading

import pytest

import varwatch
from varwatch import EventKind

from conftest import check_contiguous, wait_until


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
            # A LAGGED marker carries the state that follows it (here
            # possibly 50): stop at the state itself.
            if e.kind is not EventKind.LAGGED and e.value == 50:
                break
        lagged = [e for e in events if e.kind is EventKind.LAGGED]
        assert lagged, events
        # Every version exactly once, in order: delivered, or named by a
        # marker.
        check_contiguous(events, 1, 50)


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
    assert w.next(5).kind is EventKind.DISCONNECTED
    assert w.next(5) is None and w.ended


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


def test_a_lagging_watch_still_gets_the_gap_and_the_end(client, session_name):
    """The session is deleted while a watch is behind: it receives the
    markers for what it missed, the last state, then SESSION_CLOSED."""
    client.create_session(session_name)
    client.register(session_name, "x", "integer", 0)
    w = client.watch(session_name, ["x"], buffer=2, include_initial=False)
    for v in range(1, 21):
        client.update(session_name, "x", v)
    wait_until("an overflow", lambda: w.overflows > 0)
    client.delete_session(session_name)
    events = list(w)
    assert events[-1].kind is EventKind.SESSION_CLOSED, events
    check_contiguous([e for e in events if e.kind is not EventKind.SESSION_CLOSED], 1, 20)


def test_closing_a_watch_from_another_thread_wakes_its_reader(client, session_name):
    client.create_session(session_name)
    client.register(session_name, "x", "integer", 0)
    twin = client.watch(session_name, ["x"])  # shares its upstream
    w = client.watch(session_name, ["x"], include_initial=False)
    got = []
    reader = threading.Thread(target=lambda: got.append(w.next()))
    reader.start()
    threading.Timer(0.3, w.close).start()
    reader.join(10)
    assert not reader.is_alive() and got == [None] and w.ended
    assert w.next() is None  # after close, at once, although the twin is open
    assert twin.next(5).is_initial


def test_groups_cut_across_messages_arrive_whole(session_name):
    """A server with a tiny message budget cuts every atomic batch across
    messages: each group still arrives whole, in order, one revision."""
    from conftest import Server

    srv = Server("--max-watch-message-bytes", "200")
    try:
        with varwatch.Client(srv.address) as c:
            c.create_session(session_name)
            names = [f"v{i}" for i in range(12)]
            for n in names:
                c.register(session_name, n, "string", "")
            with c.watch(session_name, names, include_initial=False) as w:
                for round_ in range(1, 11):
                    c.update_atomic(session_name, [(n, f"{round_}" * 40) for n in names])
                for round_ in range(1, 11):
                    group = [w.next(5) for _ in names]
                    assert len({e.revision for e in group}) == 1, group
                    assert {e.name for e in group} == set(names)
                    assert all(e.value == f"{round_}" * 40 for e in group)
    finally:
        srv.stop()


def test_a_watch_dropped_inside_a_reference_cycle_never_deadlocks(server, client, session_name):
    """A watch in a cycle is collected by the cycle collector, which runs in
    whichever thread allocates — also the client's stream thread, inside
    the client's lock. Its release must not take that lock. (Before the
    fix this deadlocked within a few hundred cycles.)"""
    client.create_session(session_name)
    client.register(session_name, "x", "integer", 0)
    keep = client.watch(session_name, ["x"], include_initial=False)
    stop = threading.Event()

    def write():
        with varwatch.Client(server.address) as wc:
            v = 0
            while not stop.is_set():
                v += 1
                wc.update(session_name, "x", v)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    old = gc.get_threshold()
    gc.set_threshold(100)
    stalled = []

    def churn():
        for _ in range(2000):
            w = client.watch(session_name, ["x"])
            w.me = w  # a cycle: only the cycle collector frees it
            del w
            if keep.next(10) is None:
                stalled.append(True)
                return

    try:
        # In a thread, so that a deadlock fails the test instead of hanging it.
        t = threading.Thread(target=churn, daemon=True)
        t.start()
        t.join(120)
        assert not t.is_alive() and not stalled, "the client deadlocked"
    finally:
        gc.set_threshold(*old)
        stop.set()
        writer.join(10)
    gc.collect()
    wait_until("the collected watches to be released", lambda: watchers(client, session_name) == 1)


def test_events_are_immutable(client, session_name):
    client.create_session(session_name)
    client.register(session_name, "e", "embedding", [1.0, 2.0])
    a = client.watch(session_name, ["e"])
    b = client.watch(session_name, ["e"])
    ea = a.next(5)
    assert isinstance(ea.value, tuple)
    with pytest.raises(Exception):
        ea.value = None
    with pytest.raises(TypeError):
        ea.metadata["k"] = "v"
    assert b.next(5).value == (1.0, 2.0)
