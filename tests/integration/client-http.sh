#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The client's HTTP/1.1 exchange (client/transport.c) against crafted
# replies: client_http.py serves each case on its own unix socket (plain
# HTTP, no TLS) and drives `lurk ping` against it, checking that good replies
# work (split, chunked, interim, HTTP/1.0, Connection: close, a kept-alive
# connection closed by the server) and that each malformed, oversized or
# missing reply fails with the error that names it, in bounded time.  The
# fake server is stopped by pid on exit and stops itself after 120 s anyway.
set -euo pipefail
: "${LURK_SOURCE_ROOT:?}" "${LURK_CLI:?}"

py=$LURK_SOURCE_ROOT/tests/integration/client_http.py
base=${TMPDIR:-/tmp}
[ ${#base} -le 60 ] || base=/tmp   # unix socket paths are short
work=$(mktemp -d "$base/lurk-itest-http.XXXXXX")
server_pid=
passed=0

cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ "$passed" = 1 ]; then
        rm -rf "$work"
    else
        echo "(work dir kept: $work)"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

python3 "$py" serve "$work" 120 >"$work/server.out" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
    [ -s "$work/ready" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
done
if [ ! -s "$work/ready" ]; then
    echo "FAIL: the fake server did not start"
    cat "$work/server.out"
    exit 1
fi

python3 "$py" check "$work" "$LURK_CLI"
if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "FAIL: the fake server died during the test"
    cat "$work/server.out"
    exit 1
fi
passed=1
echo "client-http: all checks passed"
