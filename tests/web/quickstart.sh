#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The README's first command, tests/quickstart.sh, run as a user would: it
# must print the page fetched through nginx with the remote key and the
# pids of the two processes it leaves running; those pids are then stopped
# (and must stop).  Runs with LURK_DEV_DIR in a temp dir, free ports, and
# this build dir (LURK_BUILD_DIR), so it touches nothing else.
. "$(dirname "$0")/lib.sh"

web_require nginx curl openssl python3 timeout
web_require_build
[ "$(id -u)" -eq 0 ] || web_skip "needs root (as the README says)"

# nginx workers (nobody) read html/ under the dev dir: make the path walkable.
chmod 0711 "$WEB_WORK"
DEV=$WEB_WORK/dev
mkdir -m 0755 "$DEV"
KS_PORT_Q=$(web_free_port)
HTTPS_PORT_Q=$(web_free_port)

# Whatever happens, stop what it started (by the pid files it writes).
cleanup_quickstart() {
    web_stop_pid "$(cat "$DEV/nginx/nginx.pid" 2>/dev/null)"
    web_stop_pid "$(cat "$DEV/keyserver.pid" 2>/dev/null)"
}
trap 'cleanup_quickstart; web_cleanup' EXIT

OUT=$WEB_WORK/quickstart.out
LURK_DEV_DIR=$DEV LURK_KS_PORT=$KS_PORT_Q LURK_HTTPS_PORT=$HTTPS_PORT_Q \
    LURK_BUILD_DIR=$LURK_BUILD_ROOT timeout 300 bash "$LURK_SOURCE_ROOT/tests/quickstart.sh" \
    >"$OUT" 2>&1
rc=$?

KS_Q_PID=$(cat "$DEV/keyserver.pid" 2>/dev/null)
NGX_Q_PID=$(cat "$DEV/nginx/nginx.pid" 2>/dev/null)

if [ "$rc" -eq 0 ]; then
    ok "tests/quickstart.sh exits 0"
else
    fail "tests/quickstart.sh exits 0 (rc $rc)" "$OUT"
fi
check "the page came through nginx" grep -q 'Hello over TLS from nginx' "$OUT"
check "nginx listened on the port asked for" grep -q "https://localhost:$HTTPS_PORT_Q/" "$OUT"
check "the key server listened on the port asked for" grep -q "127.0.0.1:$KS_PORT_Q" "$OUT"
check "the audit log line shows a Sign" bash -c "grep -A1 'audit log' '$OUT' | grep -q Sign"

# The pids it printed.
ks_printed=$(sed -n 's/^ *key server *pid \([0-9]*\).*/\1/p' "$OUT")
ngx_printed=$(sed -n 's/^ *nginx *pid \([0-9]*\).*/\1/p' "$OUT")
if [ -n "$ks_printed" ] && [ "$ks_printed" = "$KS_Q_PID" ] \
    && [ -n "$ngx_printed" ] && [ "$ngx_printed" = "$NGX_Q_PID" ]; then
    ok "printed pids: key server $ks_printed, nginx $ngx_printed"
else
    fail "printed pids match the running processes" \
        "printed ks=$ks_printed nginx=$ngx_printed; pid files ks=$KS_Q_PID nginx=$NGX_Q_PID"
fi
check "key server alive" web_alive "$ks_printed"
check "nginx alive" web_alive "$ngx_printed"
check "HTTPS answers with the dev CA" bash -c "curl -sS --max-time 5 --cacert '$DEV/ca.crt' \
    --resolve localhost:$HTTPS_PORT_Q:127.0.0.1 https://localhost:$HTTPS_PORT_Q/ | grep -q Hello"

# Stop both with the printed kill line's pids, as the user would.
for p in "$ngx_printed" "$ks_printed"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null
done
gone() {
    local i
    [ -n "$1" ] || return 1
    for i in $(seq 1 50); do
        web_alive "$1" || return 0
        sleep 0.1
    done
    return 1
}
check "nginx stopped by its printed pid" gone "$ngx_printed"
check "key server stopped by its printed pid" gone "$ks_printed"
check "HTTPS port closed" web_wait_port_closed "$HTTPS_PORT_Q" 20
check "key server port closed" web_wait_port_closed "$KS_PORT_Q" 20

# A busy nginx port: nothing is left running, and the message names the port
# and the setting.
DEV2=$WEB_WORK/dev2
mkdir -m 0755 "$DEV2"
BUSY=$(web_free_port)
python3 -c 'import socket,sys,time; s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1]))); s.listen(); time.sleep(120)' "$BUSY" &
busy_pid=$!
web_track "$busy_pid"
web_wait_port "$BUSY"
KS_PORT_2=$(web_free_port)
LURK_DEV_DIR=$DEV2 LURK_KS_PORT=$KS_PORT_2 LURK_HTTPS_PORT=$BUSY \
    LURK_BUILD_DIR=$LURK_BUILD_ROOT timeout 120 bash "$LURK_SOURCE_ROOT/tests/quickstart.sh" \
    >"$WEB_WORK/busy.out" 2>&1
rc=$?
check "a busy HTTPS port: the quick start fails" test "$rc" -ne 0
check "  and names the port and LURK_HTTPS_PORT" \
    grep -q "127.0.0.1:$BUSY is in use by another program: set LURK_HTTPS_PORT" "$WEB_WORK/busy.out"
check "  and leaves no key server running" bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$KS_PORT_2) 2>/dev/null"
web_stop_pid "$busy_pid"
web_finish
