#!/usr/bin/env python3
"""Latency and throughput of the Python client's watches.

    cargo build --release --features server --bin varwatch-server
    .venv/bin/python python/bench/bench_watch.py

The binary is found where cargo builds (`cargo metadata`, so
CARGO_TARGET_DIR is respected), unless --server or VARWATCH_SERVER_BIN
names it.

Starts the server on a free loopback port (or uses --address), then:

* latency: p50/p99 from an update to the timed watch's receipt, with 1
  and 100 watches on one client (the others drained by a thread); the
  100 watches are distinct subscriptions (each its own watch on the
  server, all on the client's one stream);
* throughput: events received per second by one process, 100 watches of
  one variable while another process writes it.

Prints a table and, with --json, writes the figures as JSON lines.
"""
import argparse
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
    proc = subprocess.Popen([binary, "--listen", f"127.0.0.1:{port}", "--log", "warn"])
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            if time.monotonic() > deadline:
                sys.exit("the server did not start")
            time.sleep(0.05)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]


def drain(watches, stop):
    """Keeps the other watches read, from one thread."""
    n = 0
    while not stop.is_set():
        busy = False
        for w in watches:
            while w.try_next() is not None:
                n += 1
                busy = True
        if not busy:
            time.sleep(0.0005)
    return n


def latency(client, session, n_watches, rounds):
    client.register(session, f"lat{n_watches}", "integer", 0)
    var = f"lat{n_watches}"
    # Distinct subscriptions (their capacities differ).
    watches = [client.watch(session, [var], include_initial=False, capacity=1024 + i) for i in range(n_watches)]
    timed, others = watches[0], watches[1:]
    stop = threading.Event()
    t = threading.Thread(target=drain, args=(others, stop), daemon=True)
    t.start()
    samples = []
    for v in range(1, rounds + 1):
        start = time.perf_counter()
        client.update(session, var, v)
        while True:
            e = timed.next(10)
            if e is None:
                sys.exit("the timed watch stalled")
            if e.version >= v:
                break
        samples.append((time.perf_counter() - start) * 1e3)
    stop.set()
    t.join()
    for w in watches:
        w.close()
    return pct(samples, 0.5), pct(samples, 0.99)


WRITER = """
import sys, varwatch
address, session, var, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with varwatch.Client(address) as c:
    for v in range(1, n + 1):
        c.update(session, var, v)
"""


def throughput(client, address, session, n_watches, writes):
    var = "tput"
    client.register(session, var, "integer", 0)
    watches = [client.watch(session, [var], include_initial=False, capacity=1 << 16, buffer=1 << 16)
               for _ in range(n_watches)]
    writer = subprocess.Popen([sys.executable, "-c", WRITER, address, session, var, str(writes)])
    received = 0
    start = time.perf_counter()
    done = [False] * n_watches
    while not all(done):
        busy = False
        for i, w in enumerate(watches):
            if done[i]:
                continue
            while True:
                e = w.try_next()
                if e is None:
                    break
                busy = True
                received += 1
                if e.version >= writes:
                    done[i] = True
                    break
        if not busy:
            time.sleep(0.0002)
    elapsed = time.perf_counter() - start
    writer.wait()
    for w in watches:
        w.close()
    return received / elapsed, received


def built_server():
    """The release varwatch-server binary where cargo builds, if it is there."""
    try:
        meta = subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--no-deps"],
            check=True, capture_output=True, text=True,
            cwd=os.path.dirname(os.path.abspath(__file__)),
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    path = os.path.join(json.loads(meta.stdout)["target_directory"], "release", "varwatch-server")
    return path if os.path.exists(path) else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", default=os.environ.get("VARWATCH_SERVER_BIN"), help="the varwatch-server binary")
    ap.add_argument("--address", help="use a running server instead")
    ap.add_argument("--rounds", type=int, default=1000)
    ap.add_argument("--writes", type=int, default=2000)
    ap.add_argument("--json", help="write JSON lines here")
    args = ap.parse_args()
    proc = None
    address = args.address
    if address is None:
        args.server = args.server or built_server()
        if not args.server:
            sys.exit("build varwatch-server (cargo build --release --features server --bin varwatch-server), "
                     "or give --server or --address")
        proc, address = start_server(args.server)
    rows = []
    try:
        with varwatch.Client(address) as client:
            session = f"bench-{os.getpid()}"
            client.create_session(session)
            for n in (1, 100):
                p50, p99 = latency(client, session, n, args.rounds)
                print(f"python  latency, {n:>3} watches   p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   ({args.rounds} writes)")
                rows.append({"workload": "python_latency", "watches": n, "p50_ms": p50, "p99_ms": p99})
            rate, received = throughput(client, address, session, 100, args.writes)
            print(f"python  throughput, 100 watches   {rate:10.0f} events/s received ({received} events)")
            rows.append({"workload": "python_throughput", "watches": 100, "events_per_s": rate, "received": received})
            client.delete_session(session)
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
    if args.json:
        with open(args.json, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
