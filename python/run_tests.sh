#!/usr/bin/env bash
# The Python package's tests against real servers: a venv at the
# repository's .venv with pinned versions, the package installed from
# ./python (as a user would), the varwatch-server binary built by cargo
# (wherever CARGO_TARGET_DIR points), pytest.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"

if [ ! -x "$root/.venv/bin/python" ]; then
    python3 -m venv "$root/.venv"
fi
py="$root/.venv/bin/python"
"$py" -m pip install --quiet --disable-pip-version-check -r "$here/requirements-dev.txt"
"$py" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$here"

cargo build --quiet --bin varwatch-server --features server --manifest-path "$root/Cargo.toml"
cargo_out="$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
    "$py" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
export VARWATCH_SERVER_BIN="$cargo_out/debug/varwatch-server"

# From the repository root, so that `import varwatch` finds the installed
# package, not the source tree.
cd "$root"
# Bounded: a regression that deadlocks must fail, not hang CI.
timeout 900 "$py" -m pytest -q -p no:cacheprovider python/tests "$@"
