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
#      then the key server killed (SIGKILL) under 64 paused handshakes: they
#      fail, the log names the lurk reason, haproxy lives, and after a
#      restart on the same port handshakes work again;
#   4. a lying key server (tests/provider/hostile_keyserver) listed first,
#      lurk-verify = all: the paused jobs refuse its signatures and move on
#      to the real one;
#   5. valgrind, key server slowed by the delay proxy: haproxy abandoning
#      paused jobs and s_server -async with clients that leave mid-handshake:
#      no block definitely lost under a lurk frame, no wait fd left open.
# The checks that only an ASYNC lurk.so passes (2, 3's healthy key and
# deadlines) are reported PENDING instead of failed with LURK_TEST_ASYNC=0
# (for a lurk.so built without ASYNC).
. "$(dirname "$0")/lib.sh"

web_require haproxy openssl ss python3 timeout nm
web_require_build
LOAD=$LURK_BUILD_ROOT/tests/web/async_load
DELAY=$LURK_BUILD_ROOT/tests/lib/lurk-delay-proxy
[ -x "$LOAD" ] || web_skip "not built: $LOAD"

# lurk.so has ASYNC since 8d8230c: its checks count unless LURK_TEST_ASYNC=0.
ASYNC=${LURK_TEST_ASYNC:-1}
WEB_PENDING=0
if ! nm -D --undefined-only "$LURK_PROVIDER" 2>/dev/null | grep -cw ASYNC_pause_job >/dev/null; then
    web_log "lurk.so does not import ASYNC_pause_job: no ASYNC support"
fi
[ "$ASYNC" = 1 ] || web_log "LURK_TEST_ASYNC=0: the ASYNC checks are PENDING"

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

# LURK_ASYNC_PARTS: which parts run (default all: 1 2 3 4 5; 3 is the hung
# and the killed key server, 4 the lying one), e.g. LURK_ASYNC_PARTS=35
# while developing.
part() { [[ "${LURK_ASYNC_PARTS:-12345}" == *$1* ]]; }

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

# bg_load NAME PORT ARGS...: async_load in the background, BG_PID BG_OUT.
bg_load() {
    local port=$2
    BG_OUT=$WEB_WORK/bg.$1
    shift 2
    timeout 60 "$LOAD" --port "$port" --ca "$KS_DIR/ca.crt" --name localhost -v "$@" \
        >"$BG_OUT" 2>"$BG_OUT.err" &
    BG_PID=$!
    web_track "$BG_PID"
}
# 64 client connections established to PORT and the stopped key server
# holding unread requests.
paused_64() {
    [ "$(conns_to "$1")" -ge 64 ] && [ "$(recvq_of "$KS_PORT")" -gt 0 ]
}

# ---- 1a. openssl s_server -async --------------------------------------------
# s_server serves one connection at a time: the 64 clients queue in its
# backlog, and each handshake runs its key operation in an ASYNC job.  Not
# -www (nor -rev): its www_body sleeps one second (ossl_sleep(1000), "read R
# BLOCK") each time a read returns for an async retry, and rev_body's
# BIO_do_handshake takes WANT_ASYNC for a failure; the default mode's accept
# loop retries SSL_accept while SSL_waiting_for_async (a busy loop).  So
# the client only makes the handshake (chain and name verified).
SS_PID=
# s_server's stdin: a FIFO we hold open for reading and writing, so it
# never reads EOF (that ends s_server) and is never readable.
mkfifo "$WEB_WORK/s_server.stdin"
exec {SS_STDIN}<>"$WEB_WORK/s_server.stdin"
# ss_start KEY OPENSSL-CNF [WRAPPER...]: s_server -async on a port it picks
# (WRAPPER: e.g. valgrind and its options), SS_PID SS_PORT SS_OUT; it exits
# by itself after SS_NACCEPT connections.
ss_start() {
    local key=$1 cnf=$2 i
    shift 2
    SS_OUT=$WEB_WORK/s_server.$key.out
    OPENSSL_CONF=$cnf "$@" openssl s_server -async -accept 127.0.0.1:0 -naccept "${SS_NACCEPT:-100000}" \
        -cert "$KS_DIR/$key.crt" -key "$KS_DIR/$key.key" \
        <&"$SS_STDIN" >"$SS_OUT" 2>"$SS_OUT.err" &
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
# once, each verified by the client (then, unless EXPECT is "", a GET whose
# answer has EXPECT), and 64 more Sign lines in the audit log.
matrix_run() {
    local label=$1 port=$2 expect=$3 key=$4 ver=$5 s0 ds
    local -a req=()
    [ -n "$expect" ] && req=(--request $'GET / HTTP/1.0\r\n\r\n' --expect "$expect")
    s0=$(web_audit_count Sign)
    # shellcheck disable=SC2046
    load "$port" --count 64 --concurrency 64 --timeout-ms 20000 $(load_opts "$key" "$ver") \
        "${req[@]}"
    web_audit_wait Sign $((s0 + 64))
    ds=$(($(web_audit_count Sign) - s0))
    if [ "$LOAD_RC" -eq 0 ] && [ "$L_OK" -eq 64 ] && [ "$ds" -eq 64 ]; then
        ok "$label $key TLS$ver: 64 in flight, all verified, 64 Sign lines ($L_MS ms)"
    else
        fail "$label $key TLS$ver: 64 in flight: $LOAD_OUT, $ds Sign lines" "$LOAD_ERR"
    fi
}

if part 1; then
    for key in rsa2048 p256; do
        if ! ss_start "$key" "$WEB_OSSL_CNF"; then
            fail "s_server -async with $key starts" "$SS_OUT.err"
            continue
        fi
        for ver in 1.3 1.2; do
            matrix_run "s_server -async" "$SS_PORT" "" "$key" "$ver"
        done
        if web_alive "$SS_PID" && ! grep -qi 'error' "$SS_OUT.err"; then
            ok "s_server -async $key: alive, no error on its stderr"
        else
            fail "s_server -async $key: alive, no error on its stderr" "$SS_OUT.err"
        fi
        ss_stop
    done
fi

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

if part 1; then
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
fi

# ---- 2. key server 200 ms away: one haproxy thread, 64 handshakes ----------
# lurk-delay-proxy adds 100 ms each way: every Sign takes >= 200 ms.  A
# blocking provider serves them one after another (64 x 200 ms = 12.8 s);
# with ASYNC the 64 jobs pause together on one thread.
if part 2; then
    DP_PID=
    if [ -x "$DELAY" ]; then
        rm -f "$WEB_WORK/dp.port"
        "$DELAY" --listen 127.0.0.1:0 --to "127.0.0.1:$KS_PORT" --delay-ms 100 \
            --port-file "$WEB_WORK/dp.port" >"$WEB_WORK/dp.log" 2>&1 &
        DP_PID=$!
        web_track "$DP_PID"
        wait_until 100 test -s "$WEB_WORK/dp.port"
        DP_PORT=$(cat "$WEB_WORK/dp.port" 2>/dev/null)
    fi
    if [ -n "$DP_PID" ] && [ -n "${DP_PORT:-}" ]; then
        ok "delay proxy 127.0.0.1:$DP_PORT -> key server, 100 ms each way"
        write_cnf "$WEB_WORK/ossl-delay.cnf" 5000 "https://127.0.0.1:$DP_PORT"
        P_RSA=$(web_free_port)
        P_P256=$(web_free_port)
        P_HTTP=$(web_free_port)
        ha_conf "$HA/ha-delay.cfg" 1 "$P_RSA" "$P_P256"
        HA_LOG=$WEB_WORK/haproxy-delay.log
        if ha_start "$HA/ha-delay.cfg" "$WEB_WORK/ossl-delay.cnf" "$HA_LOG"; then
            ok "haproxy nbthread 1 ssl-mode-async, key server behind the delay proxy"
            for kv in "rsa2048 1.3 $P_RSA" "p256 1.2 $P_P256"; do
                read -r key ver port <<<"$kv"
                # one handshake first: the provider's connection to the key server
                # (TCP + TLS through the proxy) is not what is measured
                # shellcheck disable=SC2046
                load "$port" --count 1 --timeout-ms 10000 $(load_opts "$key" "$ver")
                [ "$L_OK" = 1 ] || fail "delay: $key first handshake" "$LOAD_ERR"
                s0=$(web_audit_count Sign)
                # shellcheck disable=SC2046
                load "$port" --count 64 --concurrency 64 --timeout-ms 4500 \
                    $(load_opts "$key" "$ver") --request $'GET / HTTP/1.0\r\n\r\n' \
                    --expect "lurk ok $key"
                r=1
                [ "$L_OK" -eq 64 ] && [ "$L_MS" -lt 4000 ] && r=0
                async_check "delay 200 ms, one thread: 64 concurrent $key TLS$ver handshakes in $L_MS ms (< 4000; blocking needs ~12800)" \
                    "$r" "$LOAD_OUT"
                web_audit_wait Sign $((s0 + 64))
            done
            web_alive "$HA_PID" && ok "haproxy (delay): alive" || fail "haproxy (delay): alive" "$HA_LOG"
        else
            fail "haproxy nbthread 1 ssl-mode-async (delay) starts" "$HA_LOG"
        fi
        web_stop_pid "$HA_PID"
        web_stop_pid "$DP_PID"
    else
        WEB_PENDING=$((WEB_PENDING + 1))
        printf 'PENDING delay 200 ms checks: %s is not built\n' "$DELAY"
    fi
fi

# ---- 3. key server hung, a healthy key server beside it ---------------------
# A second key server (same keys, its own audit log) serves the p256 key: its
# key reference names it.  rsa2048 uses lurk-servers (the first one), which
# is stopped.  One haproxy thread serves both frontends.
if part 3; then
    sed -e "s|^ *audit_log *=.*|audit_log = $KS_DIR/audit2.log|" \
        -e "s|^ *listen *=.*|listen = 127.0.0.1:0|" "$KS_DIR/keyserver.cnf" >"$KS_DIR/keyserver2.cnf"
    rm -f "$WEB_WORK/ks2.port"
    "$LURK_KEYSERVER" --config "$KS_DIR/keyserver2.cnf" --listen 127.0.0.1:0 \
        --port-file "$WEB_WORK/ks2.port" >"$WEB_WORK/ks2.log" 2>&1 &
    KS2_PID=$!
    web_track "$KS2_PID"
    wait_until 100 test -s "$WEB_WORK/ks2.port"
    KS2_PORT=$(cat "$WEB_WORK/ks2.port" 2>/dev/null)
    if [ -n "$KS2_PORT" ] && "$LURK_CLI" --conf "$WEB_OSSL_CNF" keyref "$(web_keyid p256)" \
        -o "$HA/p256-ks2.key" --server "https://127.0.0.1:$KS2_PORT" >"$WEB_WORK/keyref2.log" 2>&1; then
        ok "second key server on 127.0.0.1:$KS2_PORT; p256 key reference names it"
    else
        fail "second key server and its p256 key reference" \
            "$(cat "$WEB_WORK/ks2.log" "$WEB_WORK/keyref2.log" 2>/dev/null)"
    fi
    cat "$KS_DIR/p256.crt" "$HA/p256-ks2.key" >"$HA/p256-ks2.pem"
    write_cnf "$WEB_WORK/ossl-hung.cnf" 1500 "https://127.0.0.1:$KS_PORT"
    P_RSA=$(web_free_port)
    P_P256=$(web_free_port)
    P_HTTP=$(web_free_port)
    ha_conf "$HA/ha-hung.cfg" 1 "$P_RSA" "$P_P256" "$HA/rsa2048.pem" "$HA/p256-ks2.pem"
    HA_LOG=$WEB_WORK/haproxy-hung.log
    if ! ha_start "$HA/ha-hung.cfg" "$WEB_WORK/ossl-hung.cnf" "$HA_LOG"; then
        fail "haproxy nbthread 1 ssl-mode-async (hung key server) starts" "$HA_LOG"
        web_finish
        exit 1
    fi
    ok "haproxy nbthread 1 ssl-mode-async, lurk-timeout 1500 ms (pid $HA_PID)"
    # both key-server connections exist before the hang
    load "$P_RSA" --count 2 --tls1.3
    load_rsa_ok=$L_OK
    load "$P_P256" --count 2 --tls1.3
    if [ "$load_rsa_ok" = 2 ] && [ "$L_OK" = 2 ] \
        && ks_audit_wait '"Sign"' 2 "$KS_DIR/audit2.log" 2>/dev/null; then
        ok "rsa2048 (key server 1) and p256 (key server 2) handshakes; key server 2 logs its Signs"
    else
        fail "rsa2048 and p256 handshakes before the hang" "$LOAD_OUT"
    fi

    kill -STOP "$KS_PID"
    t0=$(date +%s%N)
    bg_load hung "$P_RSA" --count 64 --concurrency 64 --tls1.3 --timeout-ms 8000 --expect-fail
    wait_until 50 paused_64 "$P_RSA" \
        || web_log "note: $(conns_to "$P_RSA") connections, key server Recv-Q $(recvq_of "$KS_PORT")"
    # the same thread must keep serving the key on the healthy key server
    s2=$(ks_audit_count '"Sign"' "$KS_DIR/audit2.log")
    load "$P_P256" --count 8 --concurrency 1 --tls1.3 --timeout-ms 2000 --max-failures 1 \
        --request $'GET / HTTP/1.0\r\n\r\n' --expect "lurk ok p256"
    still=1
    web_alive "$BG_PID" && still=0
    ks_audit_wait '"Sign"' $((s2 + 8)) "$KS_DIR/audit2.log" 2>/dev/null
    d2=$(($(ks_audit_count '"Sign"' "$KS_DIR/audit2.log") - s2))
    r=1
    [ "$L_OK" -eq 8 ] && [ "$L_MAX" -lt 1000 ] && [ "$still" -eq 0 ] && [ "$d2" -eq 8 ] && r=0
    async_check "key server 1 hung: 8 p256 handshakes via key server 2 served meanwhile (slowest $L_MAX ms, < 1000; $d2 Sign lines there)" \
        "$r" "$LOAD_OUT (64 paused still pending: $([ $still = 0 ] && echo yes || echo no))"
    wait "$BG_PID" 2>/dev/null
    load_parse "$BG_OUT"
    ms=$((($(date +%s%N) - t0) / 1000000))
    if [ "$L_FAILED" -eq 64 ] && [ "$L_OK" -eq 0 ]; then
        ok "key server 1 hung: the 64 rsa2048 handshakes fail ($LOAD_OUT)"
    else
        fail "key server 1 hung: the 64 rsa2048 handshakes fail" "$LOAD_OUT"
    fi
    r=1
    [ "$L_MS" -lt 3000 ] && ! grep -q 'timeout:' <<<"$LOAD_OUT" && r=0
    async_check "key server 1 hung: each paused handshake fails at lurk-timeout (all 64 in $L_MS ms, < 1500 + 1500)" \
        "$r" "$LOAD_OUT"
    kill -CONT "$KS_PID"
    # after the hang: the late replies to abandoned requests must not confuse
    # the next ones (same connection or a new one)
    s1=$(web_audit_count Sign)
    load "$P_RSA" --count 16 --concurrency 16 --tls1.3 --timeout-ms 5000 \
        --request $'GET / HTTP/1.0\r\n\r\n' --expect "lurk ok rsa2048"
    if [ "$L_OK" -eq 16 ]; then
        ok "key server 1 resumed: 16 rsa2048 handshakes ($L_MS ms)"
    else
        fail "key server 1 resumed: 16 rsa2048 handshakes" "$LOAD_OUT"
    fi
    if web_alive "$HA_PID"; then
        ok "haproxy alive after the hang"
    else
        fail "haproxy alive after the hang" "$HA_LOG"
    fi

    # ---- 3b. key server killed under 64 paused handshakes ------------------
    log_lines=$(wc -l <"$HA_LOG")
    kill -STOP "$KS_PID"
    bg_load killed "$P_RSA" --count 64 --concurrency 64 --tls1.3 --timeout-ms 8000 --expect-fail
    wait_until 50 paused_64 "$P_RSA" \
        || web_log "note: $(conns_to "$P_RSA") connections, key server Recv-Q $(recvq_of "$KS_PORT")"
    t0=$(date +%s%N)
    {
        kill -KILL "$KS_PID"
        wait "$KS_PID"
    } 2>/dev/null
    wait "$BG_PID" 2>/dev/null
    ms=$((($(date +%s%N) - t0) / 1000000))
    load_parse "$BG_OUT"
    if [ "$L_FAILED" -eq 64 ] && ! grep -q 'timeout:' <<<"$LOAD_OUT"; then
        ok "key server killed: the 64 paused handshakes fail, $ms ms after the kill ($LOAD_OUT)"
    else
        fail "key server killed: the 64 paused handshakes fail (not by client timeout)" "$LOAD_OUT"
    fi
    new_log() { tail -n +"$((log_lines + 1))" "$HA_LOG"; }
    has_lurk_line() { [[ "$(new_log)" == *lurk* ]]; }
    wait_until 20 has_lurk_line
    if has_lurk_line; then
        ok "key server killed: haproxy's log names the lurk reason: $(tail -n +"$((log_lines + 1))" "$HA_LOG" | grep -i -m1 lurk | cut -c1-200)"
    else
        fail "key server killed: a lurk reason in haproxy's log" "$(tail -n +"$((log_lines + 1))" "$HA_LOG")"
    fi
    if web_alive "$HA_PID" && [[ "$(curl -s --max-time 5 "http://127.0.0.1:$P_HTTP/")" == *"lurk ok http"* ]]; then
        ok "key server killed: haproxy alive and serving plain HTTP"
    else
        fail "key server killed: haproxy alive and serving" "$HA_LOG"
    fi
    load "$P_P256" --count 8 --concurrency 8 --tls1.3
    if [ "$L_OK" -eq 8 ]; then
        ok "key server killed: p256 via key server 2 still works"
    else
        fail "key server killed: p256 via key server 2 still works" "$LOAD_OUT"
    fi
    web_wait_port_closed "$KS_PORT"
    if web_ks_restart; then
        ok "key server restarted on port $KS_PORT (pid $KS_PID)"
    else
        fail "key server restart" "$WEB_WORK/ks-restart.log"
    fi
    s1=$(web_audit_count Sign)
    load "$P_RSA" --count 64 --concurrency 64 --tls1.3 --timeout-ms 10000 \
        --request $'GET / HTTP/1.0\r\n\r\n' --expect "lurk ok rsa2048"
    web_audit_wait Sign $((s1 + 64))
    ds=$(($(web_audit_count Sign) - s1))
    if [ "$L_OK" -eq 64 ] && [ "$ds" -eq 64 ]; then
        ok "key server back: 64 rsa2048 handshakes in flight, 64 Sign lines ($L_MS ms)"
    else
        fail "key server back: 64 rsa2048 handshakes: $LOAD_OUT, $ds Sign lines" "$LOAD_ERR"
    fi
    if web_alive "$HA_PID"; then
        ok "haproxy (nbthread 1) alive over the hang, the kill and the restart"
    else
        fail "haproxy (nbthread 1) alive over the hang, the kill and the restart" "$HA_LOG"
    fi
    web_stop_pid "$HA_PID"
fi

# ---- 4. a lying key server first, inside ASYNC jobs -------------------------
# tests/provider/hostile_keyserver answers every Sign with a valid signature
# by another key of the same type.  Listed before the real key server, its
# answers must be refused by the paused jobs (lurk-verify = all: RSA and
# ECDSA) and the jobs moved on to the real server: 64 concurrent
# handshakes on one haproxy thread, all verified by the client.  A fresh
# haproxy per key: the client prefers the server that answered last.
HOSTILE=$LURK_BUILD_ROOT/tests/provider/hostile_keyserver
if part 4 && [ -x "$HOSTILE" ]; then
    rm -f "$WEB_WORK/hostile.port"
    "$HOSTILE" --cert "$KS_DIR/server.crt" --key "$KS_DIR/server.key" --ca "$KS_DIR/ca.crt" \
        --pub "$KS_DIR/rsa2048.crt" --pub "$KS_DIR/p256.crt" \
        --port-file "$WEB_WORK/hostile.port" --log "$WEB_WORK/hostile.log" \
        2>"$WEB_WORK/hostile.err" &
    HK_PID=$!
    web_track "$HK_PID"
    wait_until 100 test -s "$WEB_WORK/hostile.port"
    HK_PORT=$(cat "$WEB_WORK/hostile.port" 2>/dev/null)
    touch "$WEB_WORK/hostile.log"
    if [ -n "$HK_PORT" ] \
        && write_cnf "$WEB_WORK/ossl-hostile.cnf" 3000 \
            "https://127.0.0.1:$HK_PORT https://127.0.0.1:$KS_PORT" \
        && sed -i 's/^\(\[ *lurk_sect *\]\)$/\1\nlurk-verify = all/' "$WEB_WORK/ossl-hostile.cnf" \
        && grep -q '^lurk-verify = all' "$WEB_WORK/ossl-hostile.cnf"; then
        ok "hostile key server on 127.0.0.1:$HK_PORT, listed first; lurk-verify = all"
        for kv in "rsa2048 1.3" "p256 1.2"; do
            read -r key ver <<<"$kv"
            P_RSA=$(web_free_port)
            P_P256=$(web_free_port)
            P_HTTP=$(web_free_port)
            port=$P_RSA
            [ "$key" = p256 ] && port=$P_P256
            ha_conf "$HA/ha-hostile.cfg" 1 "$P_RSA" "$P_P256"
            HA_LOG=$WEB_WORK/haproxy-hostile-$key.log
            if ! ha_start "$HA/ha-hostile.cfg" "$WEB_WORK/ossl-hostile.cnf" "$HA_LOG"; then
                fail "haproxy (hostile key server first) starts" "$HA_LOG"
                continue
            fi
            h0=$(grep -c "^Sign $(web_keyid "$key") " "$WEB_WORK/hostile.log")
            s0=$(web_audit_count Sign)
            # shellcheck disable=SC2046
            load "$port" --count 64 --concurrency 64 --timeout-ms 10000 \
                $(load_opts "$key" "$ver") --request $'GET / HTTP/1.0\r\n\r\n' \
                --expect "lurk ok $key"
            web_audit_wait Sign $((s0 + 64))
            dh=$(($(grep -c "^Sign $(web_keyid "$key") " "$WEB_WORK/hostile.log") - h0))
            ds=$(($(web_audit_count Sign) - s0))
            if [ "$L_OK" -eq 64 ] && [ "$dh" -ge 1 ] && [ "$ds" -eq 64 ]; then
                ok "hostile first, ASYNC: 64 concurrent $key TLS$ver handshakes verified; $dh lying answers refused, 64 Signs by the real server ($L_MS ms)"
            else
                fail "hostile first, ASYNC: $key TLS$ver: $LOAD_OUT; $dh lying answers, $ds real Signs" \
                    "$LOAD_ERR"
            fi
            web_alive "$HA_PID" || fail "haproxy (hostile key server first) alive" "$HA_LOG"
            web_stop_pid "$HA_PID"
        done
    else
        fail "hostile key server starts" "$WEB_WORK/hostile.err"
    fi
    web_stop_pid "$HK_PID"
elif part 4; then
    WEB_PENDING=$((WEB_PENDING + 1))
    printf 'PENDING lying key server checks: %s is not built\n' "$HOSTILE"
fi

# ---- 5. valgrind: abandoned and interrupted jobs leak nothing ---------------
# The key server sits behind the delay proxy (>= 200 ms a Sign), so jobs
# are paused when their connection goes away:
#   haproxy (nbthread 1): frontend fe_abandon has `timeout client 150ms`:
#     haproxy kills each embryonic connection while its job is paused, and
#     (ssl_sock_close, ssl_async_fd_free) SSL_frees it when the wait fd fires,
#     without resuming the job: an abandoned job.  Clients also leave
#     mid-handshake on fe_ok (100 ms after connect).  Then 8 handshakes on
#     fe_ok must work on the same key-server connection.
#   s_server -async -naccept 12: 8 clients leave mid-handshake, 4 complete.
# An abandoned job's own ASYNC_JOB and fiber stack (32 KiB) are OpenSSL's: a
# paused job that is never resumed cannot be freed by anyone, nor what its
# stack holds (the handshake's EVP contexts, ~46 KB a job here); they are
# reported, not counted (see vg_verdict).
# shellcheck disable=SC2054
VG_OPTS=(valgrind --leak-check=full --show-leak-kinds=definite,indirect
    --errors-for-leak-kinds=definite --track-fds=yes --num-callers=40)

# vg_summary LOG: one line of counts from a valgrind log.
vg_summary() {
    awk '
    function flush(  first, bytes, n, i, fn) {
        if (rec == "") return
        n = split(rec, lines, "\n")
        first = lines[1]
        for (i = 1; i <= n; i++) {
            if (lines[i] ~ /^Open (file descriptor|AF_|socket)/ && lines[i + 1] !~ /inherited from parent/) {
                if (lines[i] ~ /^Open (AF_|socket)/) {
                    socks++
                } else {
                    fds++
                    if (fdex == "") fdex = lines[i] " " lines[i + 1]
                }
            }
        }
        lurk = (rec ~ /lurk_|lurk\.so/)
        if (first ~ /are (definitely|indirectly) lost/) {
            bytes = first
            sub(/ bytes.*/, "", bytes)
            sub(/ *\(.*/, "", bytes)
            gsub(/,/, "", bytes)
            if (lurk && first ~ /definitely/) { lurk_leaks++; lurk_bytes += bytes; if (ex == "") ex = first }
            else if (lurk) { lurk_indirect++; lurk_ibytes += bytes }
            else {
                other_leaks++
                other_bytes += bytes
                if (bytes + 0 > obest + 0) {
                    obest = bytes
                    oex = first
                    if (match(rec, /by 0x[0-9A-F]+: (ASYNC_[a-z_]+|SSL_[a-z_]+)/)) {
                        fn = substr(rec, RSTART, RLENGTH)
                        sub(/.*: /, "", fn)
                        oex = oex ", from " fn
                    }
                }
            }
        } else if (first ~ /^(Invalid|Conditional jump|Use of uninitialised|Syscall param|Mismatched|Source and destination)/) {
            if (lurk) { lurk_errors++; if (ex == "") ex = first } else { other_errors++ }
        } else if (first ~ /HEAP SUMMARY/) {
            heap = 1
        }
        rec = ""
    }
    { sub(/^==[0-9]+== ?/, "") }
    /^ *$/ { flush(); next }
    { rec = rec $0 "\n" }
    END {
        flush()
        printf "heap=%d lurk_leaks=%d lurk_bytes=%d lurk_errors=%d fds=%d sockets=%d lurk_indirect=%d lurk_indirect_bytes=%d other_leaks=%d other_bytes=%d other_errors=%d first=\"%s%s\" other=\"%s\"\n", \
            heap, lurk_leaks, lurk_bytes, lurk_errors, fds, socks, lurk_indirect, lurk_ibytes, \
            other_leaks, other_bytes, \
            other_errors, ex, (ex != "" && fdex != "" ? "; " : "") fdex, oex
    }' "$1"
}
vg_field() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" <<<"$2"; }

# vg_verdict LABEL LOG EXIT-STATUS SOCKETS-COUNT(0|1)
# Fails on a definitely lost block allocated under a lurk frame, a memory
# error with a lurk frame, an fd other than a socket left open at exit (a
# wait fd: eventfd, epoll, timerfd), and with SOCKETS-COUNT=1 a socket too.
# Reported only: blocks lost indirectly under lurk frames and sockets left
# open when jobs were abandoned: an abandoned job's fiber stack still holds
# the handshake's EVP contexts and so a reference to the lurk key (its
# client, its connections, the provider's public-key context), which OpenSSL
# can then never release.
vg_verdict() {
    local label=$1 log=$2 rc=$3 strict=$4 sum socks_bad=0
    sum=$(vg_summary "$log")
    [ "$strict" = 1 ] && [ "$(vg_field sockets "$sum")" != 0 ] && socks_bad=1
    if [ "$rc" -eq 0 ] && [ "$(vg_field heap "$sum")" = 1 ] \
        && [ "$(vg_field lurk_leaks "$sum")" = 0 ] && [ "$(vg_field lurk_errors "$sum")" = 0 ] \
        && [ "$(vg_field fds "$sum")" = 0 ] && [ "$socks_bad" = 0 ]; then
        ok "valgrind $label: no block definitely lost under lurk, no memory error in lurk, no wait fd left open"
    else
        fail "valgrind $label: exit $rc; $sum" "$log"
    fi
    web_log "valgrind $label: $(vg_field other_leaks "$sum") loss records not lurk's ($(vg_field other_bytes "$sum") bytes), $(vg_field lurk_indirect "$sum") indirectly lost under lurk frames ($(vg_field lurk_indirect_bytes "$sum") bytes), $(vg_field sockets "$sum") sockets open at exit"
    if [ "$(vg_field other_leaks "$sum")" != 0 ] || [ "$(vg_field other_errors "$sum")" != 0 ]; then
        web_log "valgrind $label, the largest not lurk's: $(sed -n 's/.*other="\(.*\)"$/\1/p' <<<"$sum")"
    fi
}

if ! command -v valgrind >/dev/null 2>&1; then
    WEB_PENDING=$((WEB_PENDING + 1))
    printf 'PENDING valgrind checks: valgrind is not installed\n'
elif ! part 5; then
    :
elif [ ! -x "$DELAY" ]; then
    WEB_PENDING=$((WEB_PENDING + 1))
    printf 'PENDING valgrind checks: no delay proxy (%s)\n' "$DELAY"
else
    # the delay proxy again (stopped after section 2), to the restarted key server
    rm -f "$WEB_WORK/dp.port"
    "$DELAY" --listen 127.0.0.1:0 --to "127.0.0.1:$KS_PORT" --delay-ms 100 \
        --port-file "$WEB_WORK/dp.port" >>"$WEB_WORK/dp.log" 2>&1 &
    DP_PID=$!
    web_track "$DP_PID"
    wait_until 100 test -s "$WEB_WORK/dp.port"
    DP_PORT=$(cat "$WEB_WORK/dp.port" 2>/dev/null)
    write_cnf "$WEB_WORK/ossl-vg.cnf" 5000 "https://127.0.0.1:$DP_PORT"

    # 5a. haproxy
    P_OK=$(web_free_port)
    P_AB=$(web_free_port)
    P_HTTP=$(web_free_port)
    cat >"$HA/ha-vg.cfg" <<EOF
global
    nbthread 1
    ssl-mode-async
    log stderr format raw daemon info

defaults
    mode http
    log global
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-request 30s

frontend fe_ok
    bind 127.0.0.1:$P_OK ssl crt $HA/rsa2048.pem
    http-request return status 200 content-type text/plain string "lurk ok rsa2048"

frontend fe_abandon
    timeout client 150ms
    bind 127.0.0.1:$P_AB ssl crt $HA/rsa2048.pem
    http-request return status 200 content-type text/plain string "lurk ok abandon"

frontend fe_http
    bind 127.0.0.1:$P_HTTP
    http-request return status 200 content-type text/plain string "lurk ok http"
EOF
    OPENSSL_CONF=$WEB_WORK/ossl-vg.cnf "${VG_OPTS[@]}" --log-file="$WEB_WORK/vg-haproxy.log" \
        haproxy -db -f "$HA/ha-vg.cfg" >"$WEB_WORK/haproxy-vg.log" 2>&1 &
    HA_PID=$!
    web_track "$HA_PID"
    if web_wait_port "$P_HTTP" 600; then
        load "$P_OK" --count 1 --tls1.3 --timeout-ms 30000
        [ "$L_OK" = 1 ] || fail "valgrind haproxy: first handshake" "$LOAD_ERR"
        load "$P_AB" --count 16 --concurrency 16 --tls1.3 --timeout-ms 30000 --expect-fail
        ab=$LOAD_OUT
        load "$P_OK" --count 16 --concurrency 16 --tls1.3 --abort-ms 100 --timeout-ms 30000
        cl=$LOAD_OUT
        load "$P_OK" --count 8 --concurrency 8 --tls1.3 --timeout-ms 30000 \
            --request $'GET / HTTP/1.0\r\n\r\n' --expect "lurk ok rsa2048"
        if [ "$L_OK" -eq 8 ]; then
            ok "valgrind haproxy: 16 killed by haproxy while paused ($ab), 16 left by the client ($cl), then 8 handshakes work"
        else
            fail "valgrind haproxy: 8 handshakes after the abandoned ones" "$LOAD_OUT; $ab; $cl"
        fi
        kill -USR1 "$HA_PID"
        rc=0
        for i in $(seq 1 300); do
            web_alive "$HA_PID" || break
            sleep 0.1
        done
        wait "$HA_PID"
        rc=$?
        vg_verdict "haproxy ssl-mode-async (abandoned jobs)" "$WEB_WORK/vg-haproxy.log" "$rc" 0
    else
        fail "valgrind haproxy starts" "$WEB_WORK/haproxy-vg.log"
    fi
    web_stop_pid "$HA_PID"

    # 5b. s_server -async
    if SS_NACCEPT=12 ss_start rsa2048 "$WEB_WORK/ossl-vg.cnf" "${VG_OPTS[@]}" \
        --log-file="$WEB_WORK/vg-s_server.log"; then
        load "$SS_PORT" --count 8 --concurrency 8 --tls1.3 --abort-ms 100 --timeout-ms 30000
        cl=$LOAD_OUT
        load "$SS_PORT" --count 4 --concurrency 4 --tls1.3 --timeout-ms 60000
        if [ "$L_OK" -eq 4 ]; then
            ok "valgrind s_server -async: 8 clients left mid-handshake ($cl), then 4 handshakes work"
        else
            fail "valgrind s_server -async: 4 handshakes after the interrupted ones" "$LOAD_OUT; $cl"
        fi
        # -naccept 12: s_server exits by itself after the 12th connection
        for i in $(seq 1 300); do
            web_alive "$SS_PID" || break
            sleep 0.1
        done
        wait "$SS_PID"
        rc=$?
        vg_verdict "s_server -async (interrupted jobs)" "$WEB_WORK/vg-s_server.log" "$rc" 1
    else
        fail "valgrind s_server -async starts" "$SS_OUT.err"
    fi
    ss_stop
    web_stop_pid "$DP_PID"
fi

[ "$WEB_PENDING" -gt 0 ] && web_log "$WEB_PENDING check(s) PENDING on lurk.so's ASYNC support"
web_finish
