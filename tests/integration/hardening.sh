#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The key server against whoever can reach its port (hardening.py; issue 10):
# unauthenticated sockets have their own budget and a short handshake
# deadline, so idle TCP and stalled TLS cannot keep certified clients out;
# one certificate cannot hold every slot (max_connections_per_client); a
# failed client authentication leaves a log line and an audit line.
# Each phase starts its own server (threads = 1) and stops it by pid.
set -euo pipefail
: "${LURK_SOURCE_ROOT:?}" "${LURK_KEYSERVER:?}"

work=$(mktemp -d "${TMPDIR:-/tmp}/lurk-itest-hardening.XXXXXX")
dir=$work/pki
# shellcheck source=../lib/keyserver.sh
. "$LURK_SOURCE_ROOT/tests/lib/keyserver.sh"
ks_on_exit "[ -n \"${KEEP:-}\" ] || rm -rf '$work'"
py=$LURK_SOURCE_ROOT/tests/integration/hardening.py

ks_make_pki "$dir" >"$work/make-pki.log" 2>&1 || { cat "$work/make-pki.log"; exit 1; }
cp "$dir/keyserver.cnf" "$work/keyserver.cnf.orig"

with_limits() {   # with_limits "key = value"...  (into [keyserver])
    cp "$work/keyserver.cnf.orig" "$dir/keyserver.cnf"
    sed -i 's/^threads = .*/threads = 1/' "$dir/keyserver.cnf"
    for kv in "$@"; do
        sed -i "s/^\[keyserver\]\$/[keyserver]\n$kv/" "$dir/keyserver.cnf"
    done
}
ulimit -n 4096 2>/dev/null || true

with_limits "max_connections = 64" "max_handshakes = 16" "handshake_timeout = 2"
ks_start "$dir" >/dev/null
python3 "$py" preauth "$dir" "$KS_PORT" 64
ks_stop

with_limits "max_connections_per_client = 4"
ks_start "$dir" >/dev/null
python3 "$py" percert "$dir" "$KS_PORT" 4
ks_stop

# A steady load through SIGTERM, three times (the cut it prevents is a race),
# with two event loops.
p256=$(ks_keyid p256 "$dir")
for round in 1 2 3; do
    cp "$work/keyserver.cnf.orig" "$dir/keyserver.cnf"
    sed -i 's/^threads = .*/threads = 2/' "$dir/keyserver.cnf"
    ks_start "$dir" >/dev/null
    echo "SIGTERM round $round"
    python3 "$py" sigterm "$dir" "$KS_PID" "$KS_PORT" "$p256"
    status=0
    ks_stop || status=$?
    [ "$status" = 0 ] || { echo "FAIL: lurk-keyserver exited with status $status"; exit 1; }
done

with_limits
: >"$dir/keyserver.log"
ks_start "$dir" >/dev/null
python3 "$py" authfail "$dir" "$KS_PORT"
ks_stop
echo "hardening: all checks passed"
