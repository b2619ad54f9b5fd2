#!/usr/bin/env bash
# Runs a command with an etcd server of its own:
#
#   scripts/with-etcd.sh cargo test --features etcd,server --test etcd -- --include-ignored
#   scripts/with-etcd.sh --install     # only install what is missing
#
# Installs Debian's etcd-server (and protobuf-compiler, which the `etcd`
# feature's client needs to build) when they are missing -- `apt-get update`
# first; CI and developer machines run this as root --, starts etcd on a free
# loopback port with a temporary data directory, runs the command with
#
#   VARWATCH_ETCD      the client URL, e.g. http://127.0.0.1:40123
#   VARWATCH_ETCD_BIN  the etcd binary (tests that restart a server of
#                      their own use it)
#
# and stops etcd afterwards (also when the command fails).
set -euo pipefail

need=()
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
if ((${#need[@]})); then
    echo "with-etcd: installing ${need[*]} (apt-get)" >&2
    if [ "$(id -u)" -ne 0 ]; then
        echo "with-etcd: ${need[*]} missing and not root: install them, or run as root" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ "${1:-}" = "--install" ]; then
    exit 0
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

data="$(mktemp -d)"
client_port="$(free_port)"
peer_port="$(free_port)"
while [ "$peer_port" = "$client_port" ]; do peer_port="$(free_port)"; done
url="http://127.0.0.1:${client_port}"
etcd --name with-etcd --data-dir "$data/etcd" \
    --listen-client-urls "$url" --advertise-client-urls "$url" \
    --listen-peer-urls "http://127.0.0.1:${peer_port}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${peer_port}" \
    --initial-cluster "with-etcd=http://127.0.0.1:${peer_port}" \
    --log-level error >"$data/etcd.log" 2>&1 &
etcd_pid=$!
cleanup() {
    kill "$etcd_pid" 2>/dev/null || true
    wait "$etcd_pid" 2>/dev/null || true
    rm -rf "$data"
}
trap cleanup EXIT

# Ready when it answers its health endpoint (at most 20 s).
ready=0
for _ in $(seq 1 200); do
    if python3 -c "import urllib.request,sys; sys.exit(0 if b'true' in urllib.request.urlopen('${url}/health', timeout=1).read() else 1)" 2>/dev/null; then
        ready=1
        break
    fi
    if ! kill -0 "$etcd_pid" 2>/dev/null; then
        echo "with-etcd: etcd exited; its log:" >&2
        cat "$data/etcd.log" >&2
        exit 1
    fi
    sleep 0.1
done
if [ "$ready" != 1 ]; then
    echo "with-etcd: etcd did not become healthy within 20 s; its log:" >&2
    cat "$data/etcd.log" >&2
    exit 1
fi
echo "with-etcd: etcd $(etcd --version | head -n1 | awk '{print $3}') at ${url}" >&2

export VARWATCH_ETCD="$url"
VARWATCH_ETCD_BIN="$(command -v etcd)"
export VARWATCH_ETCD_BIN
"$@"
