"""The watch protocol's client side (`varwatch._core`), without a network:
synthetic server messages in, what the watches receive and what the client
sends out."""
from varwatch import EventKind
from varwatch._core import ENDED, Config, Core, Down, Overflow, Subscription
from varwatch._proto import varwatch_pb2 as pb

KIND = {
    "initial": pb.EVENT_KIND_INITIAL,
    "changed": pb.EVENT_KIND_CHANGED,
    "deleted": pb.EVENT_KIND_DELETED,
    "lagged": pb.EVENT_KIND_LAGGED,
    "closed": pb.EVENT_KIND_SESSION_CLOSED,
}


def ev(kind, var, version, revision, value=None, lag=None):
    e = pb.WatchEvent(kind=KIND[kind], variable_id=var, variable_name=var, version=version, revision=revision)
    if value is not None:
        e.value.integer_value = value
    if lag:
        e.lag_first, e.lag_last = lag
    return e


def msg(ids, events=(), incomplete=False, sync=None, end=None):
    r = pb.WatchResponse()
    u = r.updates.add()
    u.watch_ids.extend(ids)
    u.events.extend(events)
    u.group_incomplete = incomplete
    if sync is not None:
        u.sync_complete.revision, u.sync_complete.session_incarnation = sync
    if end is not None:
        u.end.code, u.end.message = end
    return r


def drain(core, d):
    out = []
    while True:
        e = core.recv(d)
        if e is None or e is ENDED:
            return out
        out.append((e.kind.value, e.id, e.version, e.revision))


def setup(variables=("a",), buffer=64, overflow=Overflow.RESYNC, initial=True):
    core = Core(Config())
    core.on_connect()
    d = Down(buffer, overflow, initial, lambda: None)
    out = core.watch(Subscription("s", variables), d)
    return core, d, out


def test_a_snapshot_then_changes():
    core, d, out = setup()
    assert out[0].create.variables == ["a"] and out[0].create.include_initial
    core.on_response(msg([1], [ev("initial", "a", 0, 5, 0)], sync=(5, 77)))
    assert d.upstream == 1
    core.on_response(msg([1], [ev("changed", "a", 1, 6, 1)]))
    assert drain(core, d) == [("initial", "a", 0, 5), ("changed", "a", 1, 6)]


def test_a_group_cut_across_messages_is_held_until_whole():
    core, d, _ = setup(("a", "b"))
    core.on_response(msg([1], [ev("initial", "a", 0, 1), ev("initial", "b", 0, 1)], sync=(1, 1)))
    drain(core, d)
    core.on_response(msg([1], [ev("changed", "a", 1, 2)], incomplete=True))
    assert drain(core, d) == []  # half a group is never handed out
    core.on_response(msg([1], [ev("changed", "b", 1, 2)]))
    assert drain(core, d) == [("changed", "a", 1, 2), ("changed", "b", 1, 2)]


def test_a_shared_update_reaches_every_watch_it_names():
    core = Core(Config())
    core.on_connect()
    downs = []
    for cap in (10, 20):
        d = Down(64, Overflow.RESYNC, True, lambda: None)
        core.watch(Subscription("s", ("a",), capacity=cap), d)
        downs.append(d)
    core.on_response(msg([1, 2], [ev("initial", "a", 0, 1)], sync=(1, 1)))
    core.on_response(msg([1, 2], [ev("changed", "a", 1, 2)]))
    for d in downs:
        assert drain(core, d) == [("initial", "a", 0, 1), ("changed", "a", 1, 2)]


def test_apply_is_idempotent_and_resume_asks_by_id_from_the_versions_held():
    core, d, _ = setup(("a", "b"))
    core.on_response(msg([1], [ev("initial", "a", 3, 9), ev("initial", "b", 1, 9)], sync=(9, 42)))
    core.on_response(msg([1], [ev("changed", "a", 4, 10)]))
    drain(core, d)
    assert core.on_broken(None) is not None  # reconnect after a delay
    out = core.on_connect()
    c = out[0].create
    assert sorted(c.variables) == ["a", "b"] and dict(c.resume_versions) == {"a": 4, "b": 1}
    assert c.session_incarnation == 42
    # The server resends what the client has: dropped. Then news.
    core.on_response(msg([1], [ev("changed", "a", 4, 10)], sync=(10, 42)))
    core.on_response(msg([1], [ev("lagged", "b", 3, 12, lag=(2, 3)), ev("changed", "b", 4, 12)]))
    assert drain(core, d) == [("lagged", "b", 3, 12), ("changed", "b", 4, 12)]
    assert core.reconnects(d) == 1


def test_a_full_buffer_resyncs_from_the_state():
    core, d, _ = setup(buffer=2, initial=False)
    core.on_response(msg([1], [ev("initial", "a", 0, 1)], sync=(1, 1)))
    for v in range(1, 10):
        core.on_response(msg([1], [ev("changed", "a", v, v + 1)]))
    assert d.overflows == 1
    got = drain(core, d)
    assert got[:2] == [("changed", "a", 1, 2), ("changed", "a", 2, 3)]
    assert got[2:] == [("lagged", "a", 8, 10), ("changed", "a", 9, 10)]


def test_overflow_close_ends_with_the_markers():
    core, d, _ = setup(buffer=1, overflow=Overflow.CLOSE, initial=False)
    core.on_response(msg([1], [ev("initial", "a", 0, 1)], sync=(1, 1)))
    for v in range(1, 5):
        core.on_response(msg([1], [ev("changed", "a", v, v + 1)]))
    assert drain(core, d) == [("changed", "a", 1, 2), ("lagged", "a", 4, 5)]
    assert core.recv(d) is ENDED


def test_a_lagging_watch_gets_the_gap_and_the_end_after_its_upstream_is_gone():
    core, d, _ = setup(buffer=1, initial=False)
    core.on_response(msg([1], [ev("initial", "a", 0, 1)], sync=(1, 1)))
    for v in range(1, 5):
        core.on_response(msg([1], [ev("changed", "a", v, v + 1)]))
    out = core.on_response(msg([1], [ev("closed", "", 0, 6)]))
    assert out[0].HasField("cancel") and core.is_idle()
    got = drain(core, d)
    # The catch-up is a cut at the last revision seen (6: the state of `a`
    # is the same there), then the end.
    assert got == [("changed", "a", 1, 2), ("lagged", "a", 3, 6), ("changed", "a", 4, 6), ("session_closed", "", 0, 6)]
    assert core.recv(d) is ENDED


def test_a_deleted_variable_is_not_shared_with_a_new_identical_watch():
    core, d, _ = setup(("a", "b"))
    core.on_response(msg([1], [ev("initial", "a", 0, 1), ev("initial", "b", 0, 1)], sync=(1, 1)))
    core.on_response(msg([1], [ev("deleted", "a", 1, 2)]))
    d2 = Down(64, Overflow.RESYNC, True, lambda: None)
    out = core.watch(Subscription("s", ("a", "b")), d2)
    assert out and out[0].create.watch_id == 2  # a new watch on the wire
    assert d2.upstream is None


def test_a_refused_resume_is_retried_then_given_up():
    core = Core(Config(max_failures=1, backoff_initial=0.0))
    core.on_connect()
    d = Down(64, Overflow.RESYNC, True, lambda: None)
    core.watch(Subscription("s", ("a",)), d)
    core.on_response(msg([1], [ev("initial", "a", 0, 1)], sync=(1, 1)))
    drain(core, d)
    core.on_response(msg([1], end=("RESOURCE_EXHAUSTED", "limit")))
    assert [r.create.watch_id for r in core.retry_due()] == [1]
    core.on_response(msg([1], end=("RESOURCE_EXHAUSTED", "limit")))
    assert drain(core, d) == [("disconnected", "", 0, 0)]
    assert core.recv(d) is ENDED


def test_a_failed_create_fails_the_waiting_watch():
    core, d, _ = setup()
    core.on_response(msg([1], end=("NOT_FOUND", "session `s` not found")))
    assert d.error is not None and d.error.code == "NOT_FOUND"
    assert core.is_idle()


def test_release_sends_the_cancel_only_for_the_last_watch_and_wakes_a_reader():
    core = Core(Config())
    core.on_connect()
    woken = []
    a = Down(64, Overflow.RESYNC, True, lambda: woken.append("a"))
    b = Down(64, Overflow.RESYNC, True, lambda: None)
    core.watch(Subscription("s", ("x",)), a)
    core.watch(Subscription("s", ("x",)), b)
    core.on_response(msg([1], [ev("initial", "x", 0, 1)], sync=(1, 1)))
    woken.clear()
    assert core.release(a.upstream, a.key, a) == []
    assert woken and core.recv(a) is ENDED
    out = core.release(b.upstream, b.key, b)
    assert out[0].cancel.watch_id == 1 and core.is_idle()


def test_acks_follow_what_the_user_took():
    core, d, _ = setup()
    core.on_response(msg([1], [ev("initial", "a", 0, 5)], sync=(5, 1)))
    assert [r for r in core.heartbeat() if r.HasField("ack")] == []
    drain(core, d)
    acks = [r.ack for r in core.heartbeat() if r.HasField("ack")]
    assert [(a.watch_id, a.revision) for a in acks] == [(1, 5)]
