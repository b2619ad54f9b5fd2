#!/usr/bin/env bash
# The Python package's tests, as a user gets the package: a wheel built by
# maturin (the Rust binding, in release), installed into a fresh venv with
# the pinned test tools, `mypy --strict` over the package and the typing
# checks, then pytest against real varwatch-server binaries (built by cargo,
# wherever CARGO_TARGET_DIR points).
#
#   bash python/run_tests.sh            # everything
#   bash python/run_tests.sh -k watch   # pytest's arguments pass through
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The build tools live in the repository's .venv (kept between runs).
if [ ! -x "$root/.venv/bin/python" ]; then
    python3 -m venv "$root/.venv"
fi
tools="$root/.venv/bin/python"
"$tools" -m pip install --quiet --disable-pip-version-check -r "$here/requirements-dev.txt"

# 1. The wheel (the extension in release, as pip would build it).
start=$(date +%s)
if ! "$root/.venv/bin/maturin" build --release --manifest-path "$here/Cargo.toml" -o "$work/dist" >"$work/maturin.log" 2>&1; then
    cat "$work/maturin.log" >&2
    exit 1
fi
echo "python: wheel built in $(( $(date +%s) - start )) s: $(ls "$work/dist")"

# 2. A fresh venv with the wheel and the test tools only.
python3 -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install --quiet --disable-pip-version-check "$work"/dist/*.whl -r "$here/requirements-dev.txt"
# The package brings no dependency of its own (no grpcio, no protobuf).
"$py" - <<'PY'
import importlib.metadata as m
requires = m.requires("varwatch") or []
assert all("extra ==" in r for r in requires), f"the package depends on {requires}"
PY

# 3. Types: the installed package under mypy --strict, and code that
#    misuses it rejected (a mistyped keyword). From a directory without the
#    sources, so that mypy reads the installed package.
cd "$work"
"$py" -m mypy --strict --no-incremental -p varwatch
"$py" -m mypy --strict --no-incremental "$here/tests/typing_ok.py"
if "$py" -m mypy --strict --no-incremental "$here/tests/typing_bad.py" >"$work/mypy_bad.txt" 2>&1; then
    echo "python: mypy accepted tests/typing_bad.py, which misuses the API" >&2
    exit 1
fi
grep -q 'heartbeat_intreval' "$work/mypy_bad.txt"
# API.md is the installed package's docstrings (regenerate with
# `python tools/gen_api.py` under a venv holding the wheel).
"$py" "$here/tools/gen_api.py" --check

# 4. The tests, against servers built by cargo.
# Under scripts/with-etcd.sh (VARWATCH_ETCD set), the server can keep its
# sessions on etcd too: the replica tests run (CI requires them).
features=server
if [ -n "${VARWATCH_ETCD:-}" ]; then features=server,etcd; fi
cargo build --quiet --bin varwatch-server --features "$features" --manifest-path "$root/Cargo.toml"
cargo_out="$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
    "$py" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
export VARWATCH_SERVER_BIN="$cargo_out/debug/varwatch-server"
export VARWATCH_VECTORS="$root/tests/vectors/catch_up.json"
# From a directory without the sources, so that `import varwatch` is the
# installed wheel. Bounded: a regression that deadlocks must fail, not hang.
cd "$work"
timeout 900 "$py" -m pytest -q -p no:cacheprovider --rootdir "$here/tests" "$here/tests" "$@"
