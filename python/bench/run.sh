#!/usr/bin/env bash
# The Python client's benchmark, as BENCHMARKS.md reports it: the wheel
# built in release and installed in a fresh venv, the server in release,
# then bench_watch.py three times; prints each run's figures and a table of
# medians with their spread (min–max).
#
#   bash python/bench/run.sh          # three runs
#   RUNS=1 QUICK=1 bash python/bench/run.sh   # a smoke run
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [ ! -x "$root/.venv/bin/python" ]; then
    python3 -m venv "$root/.venv"
fi
"$root/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/python/requirements-dev.txt"
"$root/.venv/bin/maturin" build --quiet --release --manifest-path "$root/python/Cargo.toml" -o "$work/dist" >/dev/null
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "$work"/dist/*.whl
cargo build --quiet --release --features server --bin varwatch-server --manifest-path "$root/Cargo.toml"
target="$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"

quick=()
[ -n "${QUICK:-}" ] && quick=(--quick)
for run in $(seq 1 "${RUNS:-3}"); do
    echo "== run $run" >&2
    (cd "$work" && "$work/venv/bin/python" "$here/bench_watch.py" --server "$target/release/varwatch-server" \
        --json "$work/figures.jsonl" "${quick[@]}")
done

python3 - "$work/figures.jsonl" <<'PY'
import collections, json, statistics, sys
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    r = json.loads(line)
    key = tuple((k, r[k]) for k in ("scenario", "mode", "watches") if k in r)
    for k, v in r.items():
        if isinstance(v, float):
            rows.setdefault(key, collections.OrderedDict()).setdefault(k, []).append(v)
print("\n| scenario | figure | median | min–max |\n|---|---|---|---|")
for key, figures in rows.items():
    name = " ".join(str(v) for _, v in key)
    for k, vs in figures.items():
        fmt = (lambda x: f"{x:,.0f}") if "per_s" in k else (lambda x: f"{x:.2f}")
        print(f"| {name} | {k} | {fmt(statistics.median(vs))} | {fmt(min(vs))}–{fmt(max(vs))} |")
PY
