#!/usr/bin/env python3
"""Latency, throughput and caller cost of the Python client's watches.

    bash python/bench/run.sh            # builds what it needs, three runs
    python bench_watch.py --server BIN  # one run, against a binary you built

Starts `varwatch-server` on a free loopback port, then measures, on one
client (the package as installed: the binding of the Rust client):

* write→receive latency: one write at a time of `x`, received by N
  watches (N = 1, 100, 1000), each a distinct subscription (`x` and a
  variable of its own, so each is its own watch on the server; all travel
  on the client's one stream). Per write, the time from just before
  `update` to each watch's receipt: p50 over every receipt, and p50 of the
  last receipt of each write. Two ways to wait: a thread per watch
  (`for event in watch`), and asyncio (a task per watch, `async for`).
* events per second: 100 watches of ten variables each drain 300 atomic
  batches of ten updates (300 000 events), written beforehand by another
  client into buffers large enough to hold them: receipt only, a thread
  per watch and asyncio.
* the caller's own `update` p50, with no watch and with 100 watches
  receiving every write (a thread per watch, and one WatchSet thread).

Latency and throughput are measured for each way to receive: a thread per
watch, a task per watch, one thread over a `WatchSet`, one task over an
`AsyncWatchSet`.

Prints one JSON object per line (scenario, figures); run.sh gathers three
runs into a table with their spread.
"""
import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

import varwatch


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(binary):
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--listen", f"127.0.0.1:{port}", "--log", "warn"],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("the server did not start")
            time.sleep(0.05)


def p50(xs):
    return statistics.median(xs) if xs else float("nan")


def setup(client, session, n):
    """Session `session` with `x` and `p0..p{n-1}`."""
    client.create_session(session)
    client.register(session, "x", "integer", 0)
    for i in range(n):
        client.register(session, f"p{i}", "integer", 0)


def latency_threads(client, session, n, writes):
    """A thread per watch; returns (p50 all, p50 last) in ms."""
    watches = [
        client.watch(session, ["x", f"p{i}"], include_initial=False, buffer=4096) for i in range(n)
    ]
    got = [[0.0] * (writes + 1) for _ in range(n)]
    remaining = [0]
    lock = threading.Lock()
    done = threading.Event()

    def reader(i, w):
        mine = got[i]
        for e in w:
            if e.name != "x":
                continue
            v = e.value
            mine[v] = time.perf_counter()
            with lock:
                remaining[0] -= 1
                if remaining[0] == 0:
                    done.set()
            if v == writes:
                return

    threads = [threading.Thread(target=reader, args=(i, w), daemon=True) for i, w in enumerate(watches)]
    for t in threads:
        t.start()
    sent = [0.0] * (writes + 1)
    for v in range(1, writes + 1):
        with lock:
            remaining[0] = n
            done.clear()
        sent[v] = time.perf_counter()
        client.update(session, "x", v)
        if not done.wait(30):
            raise RuntimeError(f"write {v} not received by every watch")
        time.sleep(0.002)  # quiet between writes: latency, not throughput
    for t in threads:
        t.join(10)
    for w in watches:
        w.close()
    all_ms = [(got[i][v] - sent[v]) * 1e3 for i in range(n) for v in range(1, writes + 1)]
    last_ms = [(max(got[i][v] for i in range(n)) - sent[v]) * 1e3 for v in range(1, writes + 1)]
    return p50(all_ms), p50(last_ms)


def latency_set(client, session, n, writes):
    """One thread receives every watch through a WatchSet."""
    watches = [
        client.watch(session, ["x", f"p{i}"], include_initial=False, buffer=4096) for i in range(n)
    ]
    index = {id(w): i for i, w in enumerate(watches)}
    got = [[0.0] * (writes + 1) for _ in range(n)]
    remaining = [0]
    done = threading.Event()
    ws = varwatch.WatchSet(watches)

    def reader():
        finished = 0
        for w, e in ws:
            if e.name != "x":
                continue
            v = e.value
            got[index[id(w)]][v] = time.perf_counter()
            remaining[0] -= 1
            if remaining[0] == 0:
                done.set()
            if v == writes:
                finished += 1
                if finished == n:
                    return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    sent = [0.0] * (writes + 1)
    for v in range(1, writes + 1):
        remaining[0] = n
        done.clear()
        sent[v] = time.perf_counter()
        client.update(session, "x", v)
        if not done.wait(30):
            raise RuntimeError(f"write {v} not received by every watch")
        time.sleep(0.002)
    t.join(10)
    ws.close()
    all_ms = [(got[i][v] - sent[v]) * 1e3 for i in range(n) for v in range(1, writes + 1)]
    last_ms = [(max(got[i][v] for i in range(n)) - sent[v]) * 1e3 for v in range(1, writes + 1)]
    return p50(all_ms), p50(last_ms)


async def latency_asyncio_set(address, session, n, writes):
    """One task receives every watch through an AsyncWatchSet."""
    async with varwatch.AsyncClient(address) as client:
        watches = [
            await client.watch(session, ["x", f"p{i}"], include_initial=False, buffer=4096) for i in range(n)
        ]
        index = {id(w): i for i, w in enumerate(watches)}
        got = [[0.0] * (writes + 1) for _ in range(n)]
        remaining = [0]
        done = asyncio.Event()
        ws = varwatch.AsyncWatchSet(watches)

        async def reader():
            finished = 0
            async for w, e in ws:
                if e.name != "x":
                    continue
                v = e.value
                got[index[id(w)]][v] = time.perf_counter()
                remaining[0] -= 1
                if remaining[0] == 0:
                    done.set()
                if v == writes:
                    finished += 1
                    if finished == n:
                        return

        task = asyncio.create_task(reader())
        sent = [0.0] * (writes + 1)
        for v in range(1, writes + 1):
            remaining[0] = n
            done.clear()
            sent[v] = time.perf_counter()
            await client.update(session, "x", v)
            await asyncio.wait_for(done.wait(), 30)
            await asyncio.sleep(0.002)
        await asyncio.wait_for(task, 10)
        await ws.aclose()
    all_ms = [(got[i][v] - sent[v]) * 1e3 for i in range(n) for v in range(1, writes + 1)]
    last_ms = [(max(got[i][v] for i in range(n)) - sent[v]) * 1e3 for v in range(1, writes + 1)]
    return p50(all_ms), p50(last_ms)


async def latency_asyncio(address, session, n, writes):
    """A task per watch; returns (p50 all, p50 last) in ms."""
    async with varwatch.AsyncClient(address) as client:
        watches = [
            await client.watch(session, ["x", f"p{i}"], include_initial=False, buffer=4096) for i in range(n)
        ]
        got = [[0.0] * (writes + 1) for _ in range(n)]
        remaining = [0]
        done = asyncio.Event()

        async def reader(i, w):
            mine = got[i]
            async for e in w:
                if e.name != "x":
                    continue
                v = e.value
                mine[v] = time.perf_counter()
                remaining[0] -= 1
                if remaining[0] == 0:
                    done.set()
                if v == writes:
                    return

        tasks = [asyncio.create_task(reader(i, w)) for i, w in enumerate(watches)]
        sent = [0.0] * (writes + 1)
        for v in range(1, writes + 1):
            remaining[0] = n
            done.clear()
            sent[v] = time.perf_counter()
            await client.update(session, "x", v)
            await asyncio.wait_for(done.wait(), 30)
            await asyncio.sleep(0.002)
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        for w in watches:
            await w.aclose()
    all_ms = [(got[i][v] - sent[v]) * 1e3 for i in range(n) for v in range(1, writes + 1)]
    last_ms = [(max(got[i][v] for i in range(n)) - sent[v]) * 1e3 for v in range(1, writes + 1)]
    return p50(all_ms), p50(last_ms)


VARS = 10
BATCHES = 300


def prepare_throughput(address, session, n):
    """Opens `n` watches of `t0..t9`, then another client writes BATCHES
    atomic batches of all ten; returns once every write is in."""
    with varwatch.Client(address) as c:
        c.create_session(session)
        for j in range(VARS):
            c.register(session, f"t{j}", "integer", 0)


def write_batches(address, session):
    with varwatch.Client(address) as w:
        for k in range(1, BATCHES + 1):
            w.update_atomic(session, [(f"t{j}", k) for j in range(VARS)])


def throughput_threads(address, session, n):
    """Events/s received by `n` watches (a thread each) draining a backlog."""
    prepare_throughput(address, session, n)
    with varwatch.Client(address, buffer=VARS * BATCHES + 16) as client:
        names = [f"t{j}" for j in range(VARS)]
        watches = [
            client.watch(session, names, include_initial=False, capacity=VARS * BATCHES + 16)
            for _ in range(n)
        ]
        # Distinct subscriptions share a server watch when identical; the
        # client side still delivers to each watch its own events.
        write_batches(address, session)
        time.sleep(0.5)  # the backlog is in the client's buffers
        total = VARS * BATCHES
        counts = [0] * n

        def reader(i, w):
            c = 0
            for e in w:
                c += 1
                if c == total:
                    break
            counts[i] = c

        threads = [threading.Thread(target=reader, args=(i, w)) for i, w in enumerate(watches)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        for w in watches:
            w.close()
    return sum(counts) / elapsed


def throughput_set(address, session, n):
    """Events/s received by `n` watches through one WatchSet (one thread)."""
    prepare_throughput(address, session, n)
    with varwatch.Client(address, buffer=VARS * BATCHES + 16) as client:
        names = [f"t{j}" for j in range(VARS)]
        watches = [
            client.watch(session, names, include_initial=False, capacity=VARS * BATCHES + 16)
            for _ in range(n)
        ]
        write_batches(address, session)
        time.sleep(0.5)
        total = VARS * BATCHES * n
        ws = varwatch.WatchSet(watches)
        count = 0
        start = time.perf_counter()
        while count < total:
            count += len(ws.next_batch(4096))
        elapsed = time.perf_counter() - start
        ws.close()
    return count / elapsed


async def throughput_asyncio(address, session, n):
    prepare_throughput(address, session, n)
    async with varwatch.AsyncClient(address, buffer=VARS * BATCHES + 16) as client:
        names = [f"t{j}" for j in range(VARS)]
        watches = [
            await client.watch(session, names, include_initial=False, capacity=VARS * BATCHES + 16)
            for _ in range(n)
        ]
        await asyncio.get_running_loop().run_in_executor(None, write_batches, address, session)
        await asyncio.sleep(0.5)
        total = VARS * BATCHES

        async def reader(w):
            c = 0
            async for _ in w:
                c += 1
                if c == total:
                    break
            return c

        start = time.perf_counter()
        counts = await asyncio.gather(*(reader(w) for w in watches))
        elapsed = time.perf_counter() - start
        for w in watches:
            await w.aclose()
    return sum(counts) / elapsed


def update_cost(client, session, n, writes, use_set=False):
    """p50 of the caller's `update`, in ms, with `n` watches receiving (a
    thread each, or one thread for all through a WatchSet)."""
    watches = [client.watch(session, ["x", f"p{i}"], include_initial=False, buffer=4096) for i in range(n)]

    def reader(w):
        for e in w:
            if e.name == "x" and e.value == -1:
                return

    def set_reader(ws):
        ended = 0
        for _, e in ws:
            if e.name == "x" and e.value == -1:
                ended += 1
                if ended == n:
                    return

    if use_set and watches:
        threads = [threading.Thread(target=set_reader, args=(varwatch.WatchSet(watches),), daemon=True)]
    else:
        threads = [threading.Thread(target=reader, args=(w,), daemon=True) for w in watches]
    for t in threads:
        t.start()
    took = []
    for v in range(1, writes + 1):
        start = time.perf_counter()
        client.update(session, "x", v)
        took.append((time.perf_counter() - start) * 1e3)
        time.sleep(0.002)
    client.update(session, "x", -1)
    for t in threads:
        t.join(10)
    for w in watches:
        w.close()
    return p50(took)


def emit(out, scenario, **figures):
    line = json.dumps({"scenario": scenario, **figures})
    print(line, flush=True)
    if out:
        out.write(line + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", default=os.environ.get("VARWATCH_SERVER_BIN"), help="the varwatch-server binary")
    ap.add_argument("--json", help="append the figures to this file")
    ap.add_argument("--quick", action="store_true", help="few writes (a smoke run)")
    args = ap.parse_args()
    if not args.server:
        sys.exit("--server (or VARWATCH_SERVER_BIN) must name the varwatch-server binary")
    writes = 20 if args.quick else 200
    out = open(args.json, "a") if args.json else None
    proc, address = start_server(args.server)
    try:
        with varwatch.Client(address) as client:
            setup(client, "lat", 1000)
            for n in (1, 100, 1000):
                w = writes if n < 1000 else max(writes // 4, 10)
                a, last = latency_threads(client, "lat", n, w)
                emit(out, "latency", mode="threads", watches=n, p50_ms=a, p50_last_ms=last)
                a, last = asyncio.run(latency_asyncio(address, "lat", n, w))
                emit(out, "latency", mode="asyncio", watches=n, p50_ms=a, p50_last_ms=last)
                if n > 1:
                    a, last = latency_set(client, "lat", n, w)
                    emit(out, "latency", mode="WatchSet", watches=n, p50_ms=a, p50_last_ms=last)
                    a, last = asyncio.run(latency_asyncio_set(address, "lat", n, w))
                    emit(out, "latency", mode="AsyncWatchSet", watches=n, p50_ms=a, p50_last_ms=last)
            setup(client, "cost", 100)
            alone = update_cost(client, "cost", 0, writes)
            busy = update_cost(client, "cost", 100, writes)
            emit(out, "update_cost", mode="threads", p50_ms_no_watch=alone, p50_ms_100_watches=busy, ratio=busy / alone)
            alone = update_cost(client, "cost", 0, writes)
            busy = update_cost(client, "cost", 100, writes, use_set=True)
            emit(out, "update_cost", mode="WatchSet", p50_ms_no_watch=alone, p50_ms_100_watches=busy, ratio=busy / alone)
        eps = throughput_threads(address, "tput-threads", 100)
        emit(out, "throughput", mode="threads", watches=100, events_per_s=eps)
        eps = asyncio.run(throughput_asyncio(address, "tput-asyncio", 100))
        emit(out, "throughput", mode="asyncio", watches=100, events_per_s=eps)
        eps = throughput_set(address, "tput-set", 100)
        emit(out, "throughput", mode="WatchSet", watches=100, events_per_s=eps)
    finally:
        proc.terminate()
        proc.wait(10)
        if out:
            out.close()


if __name__ == "__main__":
    main()
