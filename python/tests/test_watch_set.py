"""WatchSet and AsyncWatchSet: many watches received by one thread or one
task, each with its own order and guarantees, served in turn, ending when
every member has ended."""
import asyncio
import collections
import threading

import varwatch
from varwatch import EventKind

from conftest import wait_until


def setup(client, session, n):
    client.create_session(session)
    for i in range(n):
        client.register(session, f"v{i}", "integer", 0)


def test_a_set_receives_every_members_events_in_order(client, session_name):
    setup(client, session_name, 50)
    watches = [client.watch(session_name, [f"v{i}"]) for i in range(50)]
    ws = varwatch.WatchSet(watches)
    writer = threading.Thread(
        target=lambda: [client.update(session_name, f"v{i}", k) for k in range(1, 11) for i in range(50)]
    )
    writer.start()
    got = collections.defaultdict(list)
    for watch, event in ws:
        assert event.name == f"v{watches.index(watch)}", "each event with its own watch"
        got[event.name].append(event.version)
        if sum(len(v) for v in got.values()) == 50 * 11:
            break
    writer.join()
    for i in range(50):
        assert got[f"v{i}"] == list(range(11)), "initial, then every version once, in order"
    # Every member ends: iteration stops.
    client.delete_session(session_name)
    rest = [e.kind for _, e in ws]
    assert rest == [EventKind.SESSION_CLOSED] * 50
    assert ws.ended


def test_a_busy_member_does_not_starve_the_others(client, session_name):
    setup(client, session_name, 2)
    busy = client.watch(session_name, ["v0"], include_initial=False)
    quiet = client.watch(session_name, ["v1"], include_initial=False)
    client.update_best_effort(session_name, [("v0", k) for k in range(1, 501)])
    client.update(session_name, "v1", 1)
    # Both hold their events before the set looks: what follows is the
    # set's order, not the order of arrival.
    wait_until("the events in", lambda: busy.stats()["queue_depth"] >= 500 and quiet.stats()["queue_depth"] >= 1)
    ws = varwatch.WatchSet([busy, quiet])
    seen_quiet_after = None
    taken = 0
    while seen_quiet_after is None:
        batch = ws.next_batch(max=8, timeout=10)
        assert batch, "events are waiting"
        for w, _ in batch:
            taken += 1
            if w is quiet:
                seen_quiet_after = taken
    assert seen_quiet_after <= 16, f"the quiet watch waited behind {seen_quiet_after} events"


def test_closing_a_member_ends_it_in_the_set(client, session_name):
    setup(client, session_name, 2)
    a = client.watch(session_name, ["v0"])
    b = client.watch(session_name, ["v1"])
    ws = varwatch.WatchSet([a, b])
    assert ws.next_batch(timeout=10), "the initial states"
    a.close()
    b.close()
    assert ws.next_batch(timeout=10) == []
    assert ws.ended
    assert len(ws) == 2


def test_an_async_set_receives_in_one_task(server, session_name):
    async def main():
        async with varwatch.AsyncClient(server.address) as c:
            await c.create_session(session_name)
            for i in range(20):
                await c.register(session_name, f"v{i}", "integer", 0)
            watches = [c.watch(session_name, [f"v{i}"]) for i in range(20)]
            async with varwatch.AsyncWatchSet(watches) as ws:
                for k in range(1, 6):
                    await c.update_atomic(session_name, [(f"v{i}", k) for i in range(20)])
                got = collections.defaultdict(list)
                async for watch, event in ws:
                    assert event.name == f"v{watches.index(watch)}"
                    got[event.name].append(event.value)
                    if sum(len(v) for v in got.values()) == 20 * 6:
                        break
                assert all(got[f"v{i}"] == [0, 1, 2, 3, 4, 5] for i in range(20))
                assert await ws.next_batch(timeout=0.2) == []
            assert ws.ended or all(w.ended for w in watches)

    asyncio.run(main())
