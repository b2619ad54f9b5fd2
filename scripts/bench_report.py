#!/usr/bin/env python3
"""Summarise a benchmark run: medians and ratios against the peers, the
fan-out plot (docs/fanout.svg) and the speed-up plot (docs/scaling.svg).

Reads criterion's output (<target>/criterion/*/*/new/{benchmark,estimates}.json)
and the JSON lines of benches/latency.rs and benches/memory.rs
(<target>/varwatch-bench/*.jsonl, or $VARWATCH_BENCH_OUT), where <target> is
cargo's target directory as `cargo metadata` reports it (so CARGO_TARGET_DIR
is honoured). Standard library only.

    cargo bench && python3 scripts/bench_report.py
"""
import json
import math
import os
import sys

import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def target_dir():
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(meta)["target_directory"]


TARGET = target_dir()
CRIT = os.path.join(TARGET, "criterion")
EXTRA = os.environ.get("VARWATCH_BENCH_OUT") or os.path.join(TARGET, "varwatch-bench")


def load_criterion():
    """{(group, function, value): median_ns}"""
    out = {}
    for dirpath, _, files in os.walk(CRIT):
        if os.path.basename(dirpath) != "new" or "estimates.json" not in files:
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            b = json.load(f)
        with open(os.path.join(dirpath, "estimates.json")) as f:
            e = json.load(f)
        key = (b["group_id"], b.get("function_id") or "", b.get("value_str") or "")
        out[key] = e["median"]["point_estimate"]
    return out


def load_jsonl(name, key=("workload", "name")):
    path = os.path.join(EXTRA, name)
    rows = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                rows[tuple(r[k] for k in key)] = r  # last run wins
    return rows


def fmt_ns(ns):
    if ns is None:
        return "—"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}×"


def svg_fanout(crit, path):
    series = {}
    for (g, f, v), ns in crit.items():
        if g == "fanout_e2e" and v:
            series.setdefault(f, []).append((int(v), ns))
    if not series:
        return False
    colors = {"varwatch": "#d62728", "tokio_broadcast": "#1f77b4", "crossbeam_vec": "#2ca02c"}
    W, H, L, B, T, R = 640, 400, 70, 50, 30, 170
    xs = sorted({n for s in series.values() for n, _ in s})
    ys = [ns for s in series.values() for _, ns in s]
    lx0, lx1 = math.log10(min(xs)), math.log10(max(xs))
    ly0, ly1 = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
    if lx1 == lx0:
        lx1 += 1
    if ly1 == ly0:
        ly1 += 1

    def px(n):
        return L + (math.log10(n) - lx0) / (lx1 - lx0) * (W - L - R)

    def py(ns):
        return H - B - (math.log10(ns) - ly0) / (ly1 - ly0) * (H - B - T)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{L}" y="18" font-size="14">Fan-out, end to end: time per delivered event (log-log, lower is better)</text>']
    for n in xs:
        out.append(f'<line x1="{px(n):.1f}" y1="{T}" x2="{px(n):.1f}" y2="{H - B}" stroke="#eee"/>')
        out.append(f'<text x="{px(n):.1f}" y="{H - B + 16}" text-anchor="middle">{n}</text>')
    for e in range(ly0, ly1 + 1):
        y = py(10 ** e)
        out.append(f'<line x1="{L}" y1="{y:.1f}" x2="{W - R}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{L - 6}" y="{y + 4:.1f}" text-anchor="end">{fmt_ns(10 ** e)}</text>')
    out.append(f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">watchers (N)</text>')
    for i, (name, pts) in enumerate(sorted(series.items())):
        pts.sort()
        c = colors.get(name, "#555")
        d = " ".join(f"{px(n):.1f},{py(ns):.1f}" for n, ns in pts)
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{d}"/>')
        for n, ns in pts:
            out.append(f'<circle cx="{px(n):.1f}" cy="{py(ns):.1f}" r="3" fill="{c}"/>')
        out.append(f'<rect x="{W - R + 15}" y="{T + 20 * i}" width="12" height="12" fill="{c}"/>')
        out.append(f'<text x="{W - R + 32}" y="{T + 20 * i + 11}">{name}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    return True


def svg_scaling(scaling, path):
    """Speed-up over one thread vs threads, one panel per workload."""
    workloads = [w for w in ("scaling_own", "scaling_shared", "scaling_reads")
                 if any(k[0] == w for k in scaling)]
    if not workloads:
        return False
    colors = {"varwatch": "#d62728", "tokio_watch": "#1f77b4", "arc_swap": "#2ca02c", "rwlock_arc": "#9467bd"}
    titles = {"scaling_own": "own sessions (writes)", "scaling_shared": "one variable (writes)",
              "scaling_reads": "one hot variable (owned reads)"}
    PW, H, L, B, T = 300, 300, 50, 45, 40
    W = PW * len(workloads) + 20
    threads = sorted({k[2] for k in scaling})
    ymax = max(2.0, max(r["speedup"] for r in scaling.values()) * 1.1)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           '<text x="10" y="18" font-size="14">Speed-up over one thread (operations per second, all threads); 1 = no gain</text>']
    for i, w in enumerate(workloads):
        x0 = i * PW + L
        x1 = (i + 1) * PW - 10

        def px(t):
            if len(threads) == 1:
                return x0
            return x0 + (math.log2(t) - math.log2(threads[0])) / (math.log2(threads[-1]) - math.log2(threads[0])) * (x1 - x0)

        def py(v):
            return H - B - v / ymax * (H - B - T)

        out.append(f'<text x="{x0}" y="{T - 8}">{titles[w]}</text>')
        for v in [0, 1, 2, 4, 8, 16]:
            if v <= ymax:
                out.append(f'<line x1="{x0}" y1="{py(v):.1f}" x2="{x1}" y2="{py(v):.1f}" stroke="{"#bbb" if v == 1 else "#eee"}"/>')
                out.append(f'<text x="{x0 - 6}" y="{py(v) + 4:.1f}" text-anchor="end">{v}</text>')
        for t in threads:
            out.append(f'<text x="{px(t):.1f}" y="{H - B + 16}" text-anchor="middle">{t}</text>')
        out.append(f'<text x="{(x0 + x1) / 2}" y="{H - 12}" text-anchor="middle">threads</text>')
        names = sorted({k[1] for k in scaling if k[0] == w})
        for name in names:
            pts = sorted((k[2], r["speedup"]) for k, r in scaling.items() if k[0] == w and k[1] == name)
            c = colors.get(name.split("/")[0], "#555")
            d = " ".join(f"{px(t):.1f},{py(v):.1f}" for t, v in pts)
            out.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{d}"/>')
            for t, v in pts:
                out.append(f'<circle cx="{px(t):.1f}" cy="{py(v):.1f}" r="3" fill="{c}"/>')
    for j, (n, c) in enumerate(colors.items()):
        out.append(f'<rect x="{10 + 120 * j}" y="{H - 14}" width="10" height="10" fill="{c}"/>')
        out.append(f'<text x="{24 + 120 * j}" y="{H - 5}">{n}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    return True


def main():
    crit = load_criterion()
    lat = load_jsonl("latency.jsonl")
    mem = load_jsonl("memory.jsonl")
    scaling = load_jsonl("scaling.jsonl", ("workload", "name", "threads"))
    publication = load_jsonl("publication.jsonl", ("workload", "name", "threads"))
    c = lambda g, f, v="": crit.get((g, f, v))

    rows = []
    def row(target, ours, peer, peer_name, goal, lower_is_better=True):
        r = None if ours is None or peer is None else ours / peer
        met = None if r is None else (r <= goal if lower_is_better else r >= goal)
        rows.append((target, fmt_ns(ours), fmt_ns(peer), peer_name, ratio(ours, peer),
                     ("≤ " if lower_is_better else "≥ ") + f"{goal}×", "—" if met is None else ("met" if met else "missed")))

    print("## Criterion medians\n")
    print("| group | benchmark | N | median |")
    print("|---|---|---|---|")
    for (g, f, v), ns in sorted(crit.items()):
        print(f"| {g} | {f} | {v} | {fmt_ns(ns)} |")

    row("read (owned)", c("read", "varwatch/owned"), c("read", "arc_swap/load_full"), "arc-swap load_full", 1.1)
    # Single-thread write ratios from the paired run (alternating blocks, so
    # that the machine's drift falls on both sides; see benches/scaling.rs),
    # falling back to criterion's medians.
    def paired_ns(name):
        r = scaling.get(("scaling_paired", name, 1))
        return 1e9 / r["ops_per_s"] if r else None
    w = lambda name: paired_ns(name) or c("write0", name)
    row("write0 (VarWriter::set)", w("varwatch/set"), w("tokio_watch/send_replace"), "tokio watch send_replace", 0.5)
    row("write0 (VarWriter::set)", w("varwatch/set"), w("rwlock_arc/write"), "RwLock<Arc> write", 2.0)
    row("write by name (update)", w("varwatch/update"), w("varwatch/set"), "the handle's set", 1.3)
    row("fanout writer N=10k", c("fanout_writer", "varwatch", "10000"), c("fanout_writer", "tokio_broadcast", "10000"), "tokio broadcast", 2.0)
    for n in ("1000", "10000"):
        row(f"fanout e2e N={n}", c("fanout_e2e", "varwatch", n), c("fanout_e2e", "tokio_broadcast", n), "tokio broadcast", 1.0)
        row(f"fanout async N={n}", c("fanout_async", "varwatch", n), c("fanout_async", "tokio_broadcast", n), "tokio broadcast", 1.0)
    for n in ("1", "10", "100", "1000", "10000"):
        row(f"coalescing drain per write N={n}", c("fanout_async", "varwatch_coalescing", n), c("fanout_async", "tokio_watch", n), "tokio watch (async)", 1.5)
    for n in ("1", "10", "100", "1000", "10000"):
        row(f"coalescing writer N={n}", c("fanout_writer", "varwatch_coalescing", n), c("fanout_writer", "tokio_watch", n), "tokio watch send_replace", 1.5)
    row("subscribe + drop (VarReader::watch)", c("subscribe", "varwatch/reader"), c("subscribe", "tokio_broadcast"), "tokio broadcast", 2.0)
    row("subscribe + drop (by name, initial)", c("subscribe", "varwatch/with_initial"), c("subscribe", "tokio_broadcast"), "tokio broadcast", 2.0)
    one, two = c("sessions", "1_thread"), c("sessions", "2_threads")
    if one and two:
        rows.append(("sessions (2 threads / 1)", fmt_ns(one), fmt_ns(two), "same code, 1 thread", f"{2 * one / two:.2f}×", "≥ 1.7×",
                     "met" if 2 * one / two >= 1.7 else "missed"))
    sc = lambda w, n, t: scaling.get((w, n, t))
    ts = sorted({k[2] for k in scaling})
    for t in ts:
        if t == 1:
            continue
        a = sc("scaling_own", "varwatch/set", t)
        if a:
            rows.append((f"own sessions, T={t} (speed-up)", f"{a['speedup']:.2f}×", "—", "one thread", f"{a['speedup']:.2f}×",
                         "≥ 1.7×" if t == 2 else "—", ("met" if a["speedup"] >= 1.7 else "missed") if t == 2 else "—"))
    for t in ts:
        a, b = sc("scaling_shared", "varwatch/set", t), sc("scaling_shared", "tokio_watch/send_replace", t)
        if a and b:
            r = a["ops_per_s"] / b["ops_per_s"]
            rows.append((f"one variable, T={t} writers", f"{a['ops_per_s'] / 1e6:.2f} M/s", f"{b['ops_per_s'] / 1e6:.2f} M/s",
                         "tokio watch send_replace", f"{r:.2f}×", "≥ 1.0×", "met" if r >= 1.0 else "missed"))
    for t in ts:
        a, b = sc("scaling_reads", "varwatch/load", t), sc("scaling_reads", "arc_swap/load_full", t)
        if a and b:
            r = a["ops_per_s"] / b["ops_per_s"]
            goal = 1.0 / 1.1 if t == 1 else 1.0
            rows.append((f"hot reads, T={t} readers", f"{a['ops_per_s'] / 1e6:.1f} M/s", f"{b['ops_per_s'] / 1e6:.1f} M/s",
                         "arc-swap load_full", f"{r:.2f}×", f"≥ {goal:.2f}×", "met" if r >= goal else "missed"))

    def lat_row(target, name, peer, field, goal, lower=True):
        a, b = lat.get(("pingpong" if "pingpong" in target else "pipe", name)), lat.get(("pingpong" if "pingpong" in target else "pipe", peer))
        if not a or not b:
            return
        r = a[field] / b[field]
        met = r <= goal if lower else r >= goal
        rows.append((target, f"{a[field]:.1f} {a['unit']}", f"{b[field]:.1f} {b['unit']}", peer, f"{r:.2f}×",
                     ("≤ " if lower else "≥ ") + f"{goal}×", "met" if met else "missed"))

    lat_row("pingpong p50", "varwatch", "crossbeam", "p50", 1.0)
    lat_row("pingpong p99", "varwatch", "std_mpsc", "p99", 1.0)
    lat_row("pipe (median updates/s)", "varwatch", "crossbeam_bounded", "p50", 1.0, lower=False)
    lat_row("pipe stretch", "varwatch", "std_sync_channel", "p50", 1.0, lower=False)
    e = mem.get(("memory", "empty_session"))
    if e:
        per = e["bytes_per_watcher"]
        rows.append(("empty session", f"{per:.0f} B", "—", "(absolute)", "—", "≤ 1 KiB", "met" if per <= 1024 else "missed"))
        total = per * 100_000 / 1e6
        rows.append(("100k empty sessions", f"{total:.0f} MB", "—", "(absolute)", "—", "≤ 200 MB", "met" if total <= 200 else "missed"))
    m = mem.get(("memory", "varwatch"))
    if m:
        rows.append(("memory per idle watch", f"{m['bytes_per_watcher']:.0f} B", "—", "(absolute)", "—", "≤ 128 B",
                     "met" if m["bytes_per_watcher"] <= 128 else "missed"))

    print("\n## Targets\n")
    print("| target | varwatch | peer | peer is | ratio | goal | |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")

    if lat:
        print("\n## Cross-thread percentiles\n")
        print("| workload | name | p10 | p50 | p90 | p99 | unit |")
        print("|---|---|---|---|---|---|---|")
        for (w, n), r in sorted(lat.items()):
            print(f"| {w} | {n} | {r['p10']:.1f} | {r['p50']:.1f} | {r['p90']:.1f} | {r['p99']:.1f} | {r['unit']} |")
    if scaling:
        print("\n## Scaling (operations per second over all threads; speed-up over T = 1)\n")
        print("| workload | name | T | ops/s | speed-up |")
        print("|---|---|---|---|---|")
        for (w, n, t), r in sorted(scaling.items()):
            print(f"| {w.removeprefix('scaling_')} | {n} | {t} | {r['ops_per_s'] / 1e6:.2f} M | {r['speedup']:.2f}× |")
    if publication:
        print("\n## Publication candidates (ns per operation per thread)\n")
        print("| workload | candidate | T | ns/op |")
        print("|---|---|---|---|")
        for (w, n, t), r in sorted(publication.items()):
            print(f"| {w.removeprefix('publication_')} | {n} | {t} | {r['ns_per_op']:.1f} |")
    if mem:
        print("\n## Memory per idle watcher\n")
        print("| kind | bytes |")
        print("|---|---|")
        for (_, n), r in mem.items():
            print(f"| {n} | {r['bytes_per_watcher']:.0f} |")

    svg = os.path.join(ROOT, "docs", "fanout.svg")
    if svg_fanout(crit, svg):
        print(f"\n(wrote {os.path.relpath(svg, ROOT)})", file=sys.stderr)
    svg = os.path.join(ROOT, "docs", "scaling.svg")
    if svg_scaling(scaling, svg):
        print(f"(wrote {os.path.relpath(svg, ROOT)})", file=sys.stderr)


if __name__ == "__main__":
    main()
