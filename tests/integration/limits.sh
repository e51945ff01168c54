#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The key server's limits against real clients (limits.py): a flood that
# exceeds the queue limit of one event loop is answered 503 + Retry-After
# instead of queueing, past max_connections new connections get no service,
# and a connection that never starts TLS is closed after header_timeout.
# The HTTP/1.1 front: pipelined requests answered in order and together,
# ambiguous heads refused with a LurkResponse 400.  Shedding by queueing
# delay: no 503 at saturation while the waits stay under queue_max_ms, 503s
# once they exceed it; a P-256 sign is not held up by another connection's
# backlog of RSA-4096 signs.  The unix socket serves pipelined requests
# with the SO_PEERCRED identity; SIGTERM answers what is queued, then exits.
# Each phase starts its own server (threads = 1) and stops it by pid.
# The audit log gets a request's line promptly even while its loop never
# goes idle (bodies trickling in as one-byte TLS records).  Last, with two
# loops: the audit log gets a request's line promptly, and after SIGTERM
# exactly one line for each of many concurrent requests (each loop batches
# its lines and writes them when idle, when old, and on exit).
set -euo pipefail
: "${LURK_SOURCE_ROOT:?}" "${LURK_KEYSERVER:?}"

work=$(mktemp -d "${TMPDIR:-/tmp}/lurk-itest-limits.XXXXXX")
dir=$work/pki
# shellcheck source=../lib/keyserver.sh
. "$LURK_SOURCE_ROOT/tests/lib/keyserver.sh"
ks_on_exit "rm -rf '$work'"
py=$LURK_SOURCE_ROOT/tests/integration/limits.py

ks_make_pki "$dir" >"$work/make-pki.log" 2>&1 || { cat "$work/make-pki.log"; exit 1; }
cp "$dir/keyserver.cnf" "$work/keyserver.cnf.orig"
rsa=$(ks_keyid rsa4096 "$dir")

with_limits() {   # with_limits "key = value"...  (into [keyserver])
    cp "$work/keyserver.cnf.orig" "$dir/keyserver.cnf"
    sed -i 's/^threads = .*/threads = 1/' "$dir/keyserver.cnf"
    for kv in "$@"; do
        sed -i "s/^\[keyserver\]\$/[keyserver]\n$kv/" "$dir/keyserver.cnf"
    done
}

with_limits "max_connections = 1024" "header_timeout = 60"   # 300 handshakes first
ulimit -n 4096 2>/dev/null || true
ks_start "$dir" >/dev/null
python3 "$py" overload "$dir" "$KS_PID" "$KS_PORT" "$rsa"
ks_stop

with_limits "max_connections = 3" "max_connections_per_client = 3"
ks_start "$dir" >/dev/null
python3 "$py" conncap "$dir" "$KS_PORT" 3
ks_stop

with_limits "header_timeout = 1"
ks_start "$dir" >/dev/null
python3 "$py" header "$KS_PORT" 1
ks_stop

with_limits "header_timeout = 60" "max_body = 262144"
ks_start "$dir" >/dev/null
python3 "$py" auditbusy "$dir" "$KS_PORT"
ks_stop

with_limits "header_timeout = 60"
ks_start "$dir" >/dev/null
python3 "$py" framing "$dir" "$KS_PORT"
ks_stop

# Shedding by queueing delay: none while the waits stay under queue_max_ms
# (the default, 100 ms), some once they exceed it (1 ms).
rsa2048=$(ks_keyid rsa2048 "$dir")
p256=$(ks_keyid p256 "$dir")
with_limits "queue_max_ms = 100"
ks_start "$dir" >/dev/null
python3 "$py" queue "$dir" "$KS_PORT" "$rsa2048" none
ks_stop
with_limits "queue_max_ms = 1"
ks_start "$dir" >/dev/null
python3 "$py" queue "$dir" "$KS_PORT" "$rsa2048" some
ks_stop

with_limits "queue_max_ms = 10000"
ks_start "$dir" >/dev/null
python3 "$py" fair "$dir" "$KS_PORT" "$rsa" "$p256"
python3 "$py" identfair "$dir" "$KS_PORT" "$rsa2048"
ks_stop

with_limits
sed -i "s|^\[keyserver\]\$|[keyserver]\nunix_socket = $work/lurk.sock|" "$dir/keyserver.cnf"
ks_start "$dir" >/dev/null
python3 "$py" unix "$dir" "$work/lurk.sock"
python3 "$py" drain "$dir" "$KS_PID" "$KS_PORT" "$rsa2048"
status=0
ks_stop || status=$?
[ "$status" = 0 ] || { echo "FAIL: lurk-keyserver exited with status $status after the drain"; exit 1; }

cp "$work/keyserver.cnf.orig" "$dir/keyserver.cnf"   # threads = 2
ks_start "$dir" >/dev/null
python3 "$py" audit "$dir" "$KS_PID" "$KS_PORT"
status=0
ks_stop || status=$?
[ "$status" = 0 ] || { echo "FAIL: lurk-keyserver exited with status $status after SIGTERM"; exit 1; }
echo "limits: all checks passed"
