#!/usr/bin/env bash
# Runs the Python client's tests against a real server:
# venv + grpcio (pinned), stubs generated from the .proto, the
# `varwatch-server` binary started on a free loopback port with a token file,
# pytest, server stopped.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"

if [ ! -x "$root/.venv/bin/python" ]; then
    python3 -m venv "$root/.venv"
fi
py="$root/.venv/bin/python"
"$py" -m pip install --quiet --disable-pip-version-check -r requirements.txt

rm -rf gen && mkdir -p gen
"$py" -m grpc_tools.protoc -I "$root/proto" --python_out=gen --pyi_out=gen --grpc_python_out=gen \
    "$root/proto/varwatch/v1/varwatch.proto"

cargo build --quiet --bin varwatch-server --features server --manifest-path "$root/Cargo.toml"
# Wherever cargo builds (CARGO_TARGET_DIR may point anywhere): ask it.
target="$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
    "$py" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
scratch="$(mktemp -d)"
log="$scratch/server.log"
port="$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
# The server requires a bearer token; the tests pass it (and check that
# calls without it are refused).
export VARWATCH_TOKEN="test-token-$$"
printf '%s\n' "$VARWATCH_TOKEN" > "$scratch/token"
"$target/debug/varwatch-server" --listen "127.0.0.1:$port" --token-file "$scratch/token" > "$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$scratch"' EXIT

# Wait for the server to accept connections (bounded).
"$py" - "$port" <<'PY'
import sys, grpc
ch = grpc.insecure_channel(f"127.0.0.1:{sys.argv[1]}")
grpc.channel_ready_future(ch).result(timeout=60)
PY

VARWATCH_ADDR="127.0.0.1:$port" "$py" -m pytest -q -p no:cacheprovider test_varwatch.py || {
    echo "--- server log ---"; cat "$log"; exit 1
}
