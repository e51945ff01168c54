#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Remote versus local signing: makes a throwaway PKI with tests/lib/keyserver.sh,
# starts lurk-keyserver on 127.0.0.1, runs bench_client against it with the
# RSA-2048 sign-policy key and the P-256 key, and stops the server.
#
#   tests/bench/run-client.sh [BUILD_DIR] [bench_client options...]
#   (BUILD_DIR defaults to $LURK_BUILD_DIR or ./build)
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${LURK_BUILD_DIR:-$top/build}
if [ $# -gt 0 ] && [ -d "$1" ]; then
    build=$(cd "$1" && pwd)
    shift
fi
bench=$build/tests/bench/bench_client
export LURK_SOURCE_ROOT=$top
export LURK_KEYSERVER=${LURK_KEYSERVER:-$build/server/lurk-keyserver}
export LURK_PROVIDER=${LURK_PROVIDER:-$build/provider/lurk.so}
[ -x "$bench" ] && [ -x "$LURK_KEYSERVER" ] || {
    echo "run-client.sh: build first: ninja -C $build" >&2
    exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/lurk-bench-client.XXXXXX")
# shellcheck source=../lib/keyserver.sh
. "$top/tests/lib/keyserver.sh"
ks_on_exit "rm -rf '$work'"

ks_make_pki "$work" >"$work/make-pki.log" 2>&1 || { cat "$work/make-pki.log"; exit 1; }
ks_start "$work" >/dev/null
rsa=$(ks_keyid rsa2048-sign "$work")
ec=$(ks_keyid p256 "$work")

echo "key server pid $KS_PID on $KS_URL ($(nproc) CPUs here; server threads: 2)"
"$bench" --conf "$work/openssl.cnf" \
    --rsa-key "$rsa" --rsa-pem "$work/keys/rsa2048-sign.pem" \
    --ec-key "$ec" --ec-pem "$work/keys/p256.pem" \
    --server-pid "$KS_PID" "$@"
ks_stop

# The floor under the key server's cost per request: the same Ping load
# against tests/bench/floor_server, which only answers (no JSON library, no
# key, no audit), on lurk-keyserver's front (libevent evhttp over OpenSSL
# bufferevents) and on bare epoll + OpenSSL.
echo
echo "floor: the same Ping load against tests/bench/floor_server (2 threads), which only answers"
for mode in evhttp raw; do
    rm -f "$work/floor.port"
    "$build/tests/bench/floor_server" "$mode" "$work" "$work/floor.port" 2 &
    fpid=$!
    KS_ALL_PIDS+=("$fpid") # stopped on exit like the key server
    for ((i = 0; i < 100; i++)); do
        [ -s "$work/floor.port" ] && break
        sleep 0.05
    done
    [ -s "$work/floor.port" ] || { echo "floor_server $mode did not start" >&2; exit 1; }
    "$bench" --ping-only --server "https://127.0.0.1:$(cat "$work/floor.port")" \
        --ca "$work/ca.crt" --cert "$work/client.crt" --key "$work/client.key" \
        --server-pid "$fpid" "$@" |
        sed -n "s/^Ping           \(| *[0-9]* | *[0-9]* |\)/$(printf '%-14s' "floor $mode") \1/p"
    kill "$fpid"
    wait "$fpid" 2>/dev/null || true
done
