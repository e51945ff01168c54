# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
# lib.sh - what the web tests (nginx.sh, haproxy.sh, quickstart.sh,
# conf.sh) share: a work dir, process bookkeeping (every process started is
# stopped by its pid on exit), result counting, free ports, a key server
# with the demo keys plus a P-384 key, TLS clients (openssl s_client, curl,
# gnutls-cli) that check the chain, and audit-log counting.
#
# Environment (set by tests/meson.build): LURK_SOURCE_ROOT LURK_BUILD_ROOT
# LURK_KEYSERVER LURK_CLI LURK_PROVIDER.  LURK_KEEP=1 keeps the work dir.

set -u
set -o pipefail

: "${LURK_SOURCE_ROOT:?LURK_SOURCE_ROOT is not set}"
: "${LURK_BUILD_ROOT:?LURK_BUILD_ROOT is not set}"
: "${LURK_KEYSERVER:=$LURK_BUILD_ROOT/server/lurk-keyserver}"
: "${LURK_CLI:=$LURK_BUILD_ROOT/client/lurk}"
: "${LURK_PROVIDER:=$LURK_BUILD_ROOT/provider/lurk.so}"
export LURK_SOURCE_ROOT LURK_BUILD_ROOT LURK_KEYSERVER LURK_CLI LURK_PROVIDER

# Clients and tools run with the system OpenSSL config: only the servers
# under test get the lurk provider (through their own environment).
unset OPENSSL_CONF OPENSSL_MODULES

WEB_NAME=$(basename "$0" .sh)
WEB_WORK=$(mktemp -d "/tmp/lurk-web-$WEB_NAME.XXXXXX")
WEB_PIDS=()
WEB_PASS=0
WEB_FAIL=0

web_log() { printf '%s: %s\n' "$WEB_NAME" "$*"; }

web_skip() {
    web_log "SKIP: $*"
    exit 77
}

ok() {
    WEB_PASS=$((WEB_PASS + 1))
    printf 'ok   %s\n' "$1"
}

# fail NAME [DETAIL-FILE-OR-TEXT]
fail() {
    WEB_FAIL=$((WEB_FAIL + 1))
    printf 'FAIL %s\n' "$1"
    if [ $# -gt 1 ]; then
        if [ -f "$2" ]; then
            sed -e 's/^/     | /' "$2" | tail -n 25
        else
            printf '%s\n' "$2" | sed -e 's/^/     | /'
        fi
    fi
}

# check NAME COMMAND...: ok when COMMAND succeeds.
check() {
    local name=$1
    shift
    if "$@" >"$WEB_WORK/check.out" 2>&1; then
        ok "$name"
    else
        fail "$name" "$WEB_WORK/check.out"
    fi
}

web_finish() {
    printf '%s: %d passed, %d failed\n' "$WEB_NAME" "$WEB_PASS" "$WEB_FAIL"
    [ "$WEB_FAIL" -eq 0 ] && [ "$WEB_PASS" -gt 0 ]
}

# ---- processes --------------------------------------------------------------

web_track() { WEB_PIDS+=("$1"); }

web_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# web_stop_pid PID [SIGNAL]: signal, wait up to 5 s, then SIGKILL.
web_stop_pid() {
    local pid=$1 sig=${2:-TERM} i
    web_alive "$pid" || return 0
    kill "-$sig" "$pid" 2>/dev/null
    for i in $(seq 1 50); do
        web_alive "$pid" || return 0
        # reap our own children so kill -0 stops seeing zombies
        wait "$pid" 2>/dev/null && return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    return 0
}

web_cleanup() {
    local i
    for ((i = ${#WEB_PIDS[@]} - 1; i >= 0; i--)); do
        web_stop_pid "${WEB_PIDS[$i]}"
    done
    # tests/lib/keyserver.sh: stops every key server ks_start started
    if declare -F _ks_exit_trap >/dev/null; then
        _ks_exit_trap >/dev/null 2>&1
    elif declare -F ks_stop >/dev/null; then
        ks_stop >/dev/null 2>&1
    fi
    if [ "${LURK_KEEP:-0}" = 1 ]; then
        web_log "work dir kept: $WEB_WORK"
    else
        rm -rf "$WEB_WORK"
    fi
}
trap web_cleanup EXIT
trap 'exit 1' INT TERM

# Children of a process (e.g. nginx/haproxy workers of a master).
web_children() {
    local ppid=$1 d
    for d in /proc/[0-9]*; do
        [ -r "$d/stat" ] || continue
        # field 4 of stat is the parent pid; the comm field may hold spaces
        if [ "$(sed -e 's/^.*) //' "$d/stat" 2>/dev/null | cut -d' ' -f2)" = "$ppid" ]; then
            basename "$d"
        fi
    done | sort -n
}

# ---- ports ------------------------------------------------------------------

# A port that is free now on 127.0.0.1 (the kernel picks it).
web_free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

web_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# web_wait_port PORT [TENTHS]: up to 10 s by default.
web_wait_port() {
    local port=$1 n=${2:-100} i
    for i in $(seq 1 "$n"); do
        web_port_open "$port" && return 0
        sleep 0.1
    done
    return 1
}

web_wait_port_closed() {
    local port=$1 n=${2:-100} i
    for i in $(seq 1 "$n"); do
        web_port_open "$port" || return 0
        sleep 0.1
    done
    return 1
}

# ---- prerequisites ----------------------------------------------------------

web_require() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 || web_skip "$t is not installed"
    done
}

web_require_build() {
    local f
    for f in "$LURK_KEYSERVER" "$LURK_CLI" "$LURK_PROVIDER"; do
        [ -e "$f" ] || web_skip "not built: $f"
    done
    [ -f "$LURK_SOURCE_ROOT/tests/lib/keyserver.sh" ] \
        || web_skip "tests/lib/keyserver.sh is missing"
}

# ---- key server -------------------------------------------------------------
#
# After web_ks_setup: KS_DIR (the dev dir: ca.crt, client.*, rsa2048/p256/p384
# .crt + .key reference files, keyserver.cnf, openssl.cnf, audit.log), KS_PORT,
# KS_PID, WEB_OSSL_CNF (openssl.cnf for the servers under test).

web_ks_pid() {
    if [ -n "${KS_PID:-}" ]; then
        echo "$KS_PID"
    elif [ -f "$KS_DIR/keyserver.pid" ]; then
        cat "$KS_DIR/keyserver.pid"
    fi
}

web_ks_port() {
    if [ -n "${KS_PORT:-}" ]; then
        echo "$KS_PORT"
    elif [ -f "$KS_DIR/port" ]; then
        cat "$KS_DIR/port"
    fi
}

# Adds a P-384 key to the key server's key dir and a certificate for it
# signed by the dev CA (before the key server starts).
web_add_p384() {
    local d=$1 keys
    keys=$(sed -n 's/^ *key_dir *= *\([^ #]*\).*/\1/p' "$d/keyserver.cnf" | head -n 1)
    keys=${keys:-keys}
    case $keys in /*) ;; *) keys=$d/$keys ;; esac
    mkdir -p "$keys"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 \
        -out "$keys/p384.pem" 2>/dev/null || return 1
    web_issue_cert "$d" "$keys/p384.pem" "$d/p384.crt"
}

# web_issue_cert DIR KEY OUT: a localhost/127.0.0.1 server certificate from
# the dev CA of DIR for KEY (any public or private key file).
web_issue_cert() {
    local d=$1 key=$2 out=$3
    openssl req -new -key "$key" -subj "/CN=localhost" -out "$out.csr" 2>/dev/null || return 1
    printf '%s\n' \
        "basicConstraints=CA:FALSE" \
        "keyUsage=digitalSignature,keyEncipherment" \
        "extendedKeyUsage=serverAuth" \
        "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$out.ext"
    openssl x509 -req -in "$out.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
        -CAcreateserial -days 30 -sha256 -extfile "$out.ext" -out "$out" 2>/dev/null
    local rc=$?
    rm -f "$out.csr" "$out.ext"
    return $rc
}

# The openssl.cnf the servers under test use: the dev one with short
# timeouts (so a dead key server fails handshakes fast).
web_write_ossl_cnf() {
    WEB_OSSL_CNF=$WEB_WORK/openssl-lurk.cnf
    sed -e '/^ *lurk-connect-timeout/d' -e '/^ *lurk-timeout/d' \
        -e 's/^\( *\[ *lurk_sect *\] *\)$/\1\nlurk-connect-timeout = 1000\nlurk-timeout = 2000/' \
        "$KS_DIR/openssl.cnf" >"$WEB_OSSL_CNF"
    grep -q '^ *lurk-timeout = 2000' "$WEB_OSSL_CNF"
}

web_ks_setup() {
    local k
    # shellcheck source=../lib/keyserver.sh
    . "$LURK_SOURCE_ROOT/tests/lib/keyserver.sh"
    KS_DIR=$WEB_WORK/ks
    mkdir -p "$KS_DIR"
    ks_make_pki "$KS_DIR" >"$WEB_WORK/ks-make.log" 2>&1 \
        || { cat "$WEB_WORK/ks-make.log"; return 1; }
    if [ ! -f "$KS_DIR/p384.crt" ]; then
        web_add_p384 "$KS_DIR" || return 1
    fi
    ks_start "$KS_DIR" >"$WEB_WORK/ks-start.log" 2>&1 \
        || { cat "$WEB_WORK/ks-start.log"; return 1; }
    # ks_start installs its own EXIT trap; ours calls it (web_cleanup)
    trap web_cleanup EXIT
    KS_PORT=$(web_ks_port)
    KS_PID=$(web_ks_pid)
    [ -n "$KS_PORT" ] && [ -n "$KS_PID" ] || { echo "no key server port/pid"; return 1; }
    # Key reference files (no secret) for the web servers: KS_DIR/NAME.key
    for k in rsa2048 p256 p384; do
        [ -s "$KS_DIR/$k.key" ] && continue
        "$LURK_CLI" --conf "$KS_DIR/openssl.cnf" keyref \
            "$("$LURK_CLI" keyid "$KS_DIR/$k.crt" | awk '{print $1}')" \
            -o "$KS_DIR/$k.key" || return 1
        grep -q 'BEGIN LURK PRIVATE KEY' "$KS_DIR/$k.key" || return 1
    done
    KS_AUDIT=$KS_DIR/audit.log
    web_write_ossl_cnf
}

# web_ks_setup for a test script: a failure fails the test and exits.
web_ks_setup_or_exit() {
    if ! web_ks_setup >"$WEB_WORK/setup.log" 2>&1; then
        fail "key server setup" "$WEB_WORK/setup.log"
        web_finish
        exit 1
    fi
    ok "key server on 127.0.0.1:$KS_PORT (pid $KS_PID)"
}

# Restarts the key server on the same port (after web_ks_kill).
web_ks_restart() {
    "$LURK_KEYSERVER" --config "$KS_DIR/keyserver.cnf" --listen "127.0.0.1:$KS_PORT" \
        >>"$WEB_WORK/ks-restart.log" 2>&1 &
    KS_PID=$!
    web_track "$KS_PID"
    web_wait_port "$KS_PORT"
}

web_ks_kill() {
    web_stop_pid "$KS_PID"
    web_wait_port_closed "$KS_PORT"
}

# ---- audit log --------------------------------------------------------------

# Lines of the audit log for private-key operations: OP is Sign or Decrypt.
web_audit_count() {
    ks_audit_count "\"$1\"" "$KS_AUDIT"
}

# web_audit_wait OP COUNT: the key server appends just after replying.
web_audit_wait() {
    ks_audit_wait "\"$1\"" "$2" "$KS_AUDIT" 2>/dev/null
}

# ---- reload under load -----------------------------------------------------

# web_reload_under_load LABEL PORT MASTER_PID N_WORKERS DIAG_FILE RELOAD_CMD...
# 200 curl requests to PORT, one after another, while RELOAD_CMD runs twice
# (after the 50th and the 120th answer): none may fail and the key server
# must log one Sign per request.  Then waits for MASTER_PID's N_WORKERS new
# workers and sets WORKERS to them.  DIAG_FILE's tail goes with a failure.
web_reload_under_load() {
    local label=$1 port=$2 master=$3 nworkers=$4 diag=$5
    shift 5
    local n=200 out=$WEB_WORK/load.out s0 load_pid reloads=0 at i got ds
    local -a new=()
    : >"$out"
    s0=$(web_audit_count Sign)
    timeout 120 bash -c '
        for i in $(seq 1 '"$n"'); do
            if curl -s --max-time 5 --cacert "$1" --resolve "localhost:$2:127.0.0.1" \
                "https://localhost:$2/" | grep -q "lurk ok"; then
                echo ok
            else
                echo "fail $i"
            fi
        done >>"$3"' _ "$KS_DIR/ca.crt" "$port" "$out" &
    load_pid=$!
    web_track "$load_pid"
    for at in 50 120; do
        for i in $(seq 1 300); do
            [ "$(wc -l <"$out")" -ge "$at" ] && break
            web_alive "$load_pid" || break
            sleep 0.05
        done
        if "$@" >>"$WEB_WORK/reload.out" 2>&1; then
            reloads=$((reloads + 1))
        fi
    done
    wait "$load_pid"
    got=$(grep -c '^ok' "$out")
    web_audit_wait Sign $((s0 + n))
    sleep 0.2
    ds=$(($(web_audit_count Sign) - s0))
    if [ "$reloads" -eq 2 ] && [ "$got" -eq "$n" ] && [ "$ds" -eq "$n" ]; then
        ok "2 reloads ($label) under $n requests: none lost, $ds Sign lines"
    else
        fail "2 reloads under load: $reloads reloads, $got/$n requests ok, $ds Sign lines" \
            "$(grep -v '^ok' "$out" | head -n 5; tail -n 5 "$diag")"
    fi
    # wait for the old workers to leave, then take the new ones
    for i in $(seq 1 100); do
        mapfile -t new < <(web_children "$master")
        [ "${#new[@]}" -eq "$nworkers" ] && break
        sleep 0.1
    done
    if [ "${#new[@]}" -eq "$nworkers" ] && [ "${new[*]}" != "${WORKERS[*]}" ]; then
        ok "reload replaced the workers: ${new[*]}"
    else
        fail "reload replaced the workers" "before: ${WORKERS[*]} after: ${new[*]:-}"
    fi
    WORKERS=("${new[@]}")
}

# ---- TLS clients ------------------------------------------------------------
# Each takes PORT then client options, makes one full handshake, verifies the
# chain against the dev CA and the name localhost, and leaves its output in
# $WEB_WORK/client.out.

WEB_CLIENT_OUT=

# s_client PORT OPTS... : Verify return code 0, handshake done.
web_s_client() {
    local port=$1
    shift
    WEB_CLIENT_OUT=$WEB_WORK/client.out
    timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername localhost \
        -verify_return_error -verify_hostname localhost -CAfile "$KS_DIR/ca.crt" \
        "$@" </dev/null >"$WEB_CLIENT_OUT" 2>&1 || return 1
    grep -q 'Verify return code: 0 (ok)' "$WEB_CLIENT_OUT"
}

# curl PORT OPTS... : the page says "lurk ok".
web_curl() {
    local port=$1
    shift
    WEB_CLIENT_OUT=$WEB_WORK/client.out
    curl -sS --max-time 10 --cacert "$KS_DIR/ca.crt" \
        --resolve "localhost:$port:127.0.0.1" "$@" "https://localhost:$port/" \
        >"$WEB_CLIENT_OUT" 2>&1 || return 1
    grep -q 'lurk ok' "$WEB_CLIENT_OUT"
}

# gnutls-cli PORT PRIORITY : certificate trusted, handshake completed.
web_gnutls() {
    local port=$1 prio=$2
    WEB_CLIENT_OUT=$WEB_WORK/client.out
    timeout 10 gnutls-cli --x509cafile "$KS_DIR/ca.crt" --priority "$prio" \
        --sni-hostname localhost --verify-hostname localhost -p "$port" 127.0.0.1 \
        </dev/null >"$WEB_CLIENT_OUT" 2>&1 || return 1
    grep -q 'Handshake was completed' "$WEB_CLIENT_OUT" \
        && grep -q 'The certificate is trusted' "$WEB_CLIENT_OUT"
}

# hs NAME OP KEYNAME EXPECT-REGEX CLIENT PORT ARGS...
# One handshake with CLIENT (web_s_client/web_curl/web_gnutls); the client
# output must match EXPECT-REGEX (grep -E; "" = anything) and the audit log
# must grow by exactly one OP line (Sign or Decrypt) and no line of the other op.
hs() {
    local name=$1 op=$2 key=$3 expect=$4 client=$5
    shift 5
    local other=Sign sign0 dec0 n_op n_other
    [ "$op" = Sign ] && other=Decrypt
    sign0=$(web_audit_count "$op")
    dec0=$(web_audit_count "$other")
    if ! "$client" "$@"; then
        fail "$name: handshake" "$WEB_CLIENT_OUT"
        return 1
    fi
    if [ -n "$expect" ] && ! grep -Eq "$expect" "$WEB_CLIENT_OUT"; then
        fail "$name: expected /$expect/ in the client output" "$WEB_CLIENT_OUT"
        return 1
    fi
    web_audit_wait "$op" $((sign0 + 1))
    sleep 0.05
    n_op=$(($(web_audit_count "$op") - sign0))
    n_other=$(($(web_audit_count "$other") - dec0))
    if [ "$n_op" -ne 1 ] || [ "$n_other" -ne 0 ]; then
        fail "$name: audit log: $n_op $op and $n_other $other lines for one handshake (want 1, 0)" \
            "$(tail -n 3 "$KS_AUDIT" 2>/dev/null)"
        return 1
    fi
    if [ -n "$key" ] && ! tail -n 1 "$KS_AUDIT" | grep -q "$key"; then
        # the record names the key (by name or id)
        if ! tail -n 1 "$KS_AUDIT" | grep -q "$(web_keyid "$key")"; then
            fail "$name: audit record does not name key $key" "$(tail -n 1 "$KS_AUDIT")"
            return 1
        fi
    fi
    ok "$name"
}

declare -A WEB_KEYIDS=()
web_keyid() {
    local name=$1
    if [ -z "${WEB_KEYIDS[$name]:-}" ]; then
        WEB_KEYIDS[$name]=$("$LURK_CLI" keyid "$KS_DIR/$name.crt" 2>/dev/null | awk '{print $1}')
    fi
    echo "${WEB_KEYIDS[$name]}"
}

# The standard matrix for one signing vhost (RSA or ECDSA) on PORT.
#   web_matrix_rsa  LABEL PORT KEYNAME
#   web_matrix_ec   LABEL PORT KEYNAME DIGEST (SHA256|SHA384)
web_matrix_rsa() {
    local l=$1 p=$2 k=$3
    hs "$l TLS1.3 s_client RSA-PSS" Sign "$k" 'Peer signature type: RSA-PSS' \
        web_s_client "$p" -tls1_3
    hs "$l TLS1.2 s_client ECDHE RSA+SHA256 (PKCS#1)" Sign "$k" \
        'Peer signature type: RSA$' web_s_client "$p" -tls1_2 -sigalgs RSA+SHA256 \
        -cipher 'ECDHE-RSA-AES128-GCM-SHA256'
    hs "$l TLS1.2 s_client ECDHE RSA-PSS+SHA256" Sign "$k" \
        'Peer signature type: RSA-PSS' web_s_client "$p" -tls1_2 -sigalgs RSA-PSS+SHA256 \
        -cipher 'ECDHE-RSA-AES128-GCM-SHA256'
    hs "$l TLS1.3 curl" Sign "$k" '' web_curl "$p" --tlsv1.3
    hs "$l TLS1.2 curl" Sign "$k" '' web_curl "$p" --tlsv1.2 --tls-max 1.2
    hs "$l TLS1.3 gnutls-cli" Sign "$k" 'TLS1.3' web_gnutls "$p" \
        'NORMAL:-VERS-ALL:+VERS-TLS1.3'
    hs "$l TLS1.2 gnutls-cli RSA-SHA256 (PKCS#1)" Sign "$k" 'TLS1.2' web_gnutls "$p" \
        'NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+ECDHE-RSA:-SIGN-ALL:+SIGN-RSA-SHA256'
    hs "$l TLS1.2 gnutls-cli RSA-PSS-SHA256" Sign "$k" 'TLS1.2' web_gnutls "$p" \
        'NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+ECDHE-RSA:-SIGN-ALL:+SIGN-RSA-PSS-RSAE-SHA256'
}

web_matrix_ec() {
    local l=$1 p=$2 k=$3 dg=$4 gsig
    gsig=SIGN-ECDSA-SECP256R1-SHA256
    [ "$dg" = SHA384 ] && gsig=SIGN-ECDSA-SECP384R1-SHA384
    hs "$l TLS1.3 s_client ECDSA" Sign "$k" "Peer signing digest: $dg" \
        web_s_client "$p" -tls1_3
    hs "$l TLS1.2 s_client ECDHE-ECDSA" Sign "$k" 'Peer signature type: ECDSA' \
        web_s_client "$p" -tls1_2 -cipher 'ECDHE-ECDSA-AES128-GCM-SHA256'
    hs "$l TLS1.3 curl" Sign "$k" '' web_curl "$p" --tlsv1.3
    hs "$l TLS1.2 curl" Sign "$k" '' web_curl "$p" --tlsv1.2 --tls-max 1.2
    hs "$l TLS1.3 gnutls-cli" Sign "$k" 'TLS1.3' web_gnutls "$p" \
        "NORMAL:-VERS-ALL:+VERS-TLS1.3:-SIGN-ALL:+$gsig"
    hs "$l TLS1.2 gnutls-cli ECDHE-ECDSA" Sign "$k" 'TLS1.2' web_gnutls "$p" \
        'NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+ECDHE-ECDSA'
}

# Static RSA key exchange (TLS 1.2, AES128-GCM-SHA256): one Decrypt each.
web_matrix_static_rsa() {
    local l=$1 p=$2 k=$3
    hs "$l s_client AES128-GCM-SHA256" Decrypt "$k" 'Cipher *: AES128-GCM-SHA256' \
        web_s_client "$p" -tls1_2 -cipher AES128-GCM-SHA256
    hs "$l curl AES128-GCM-SHA256" Decrypt "$k" '' web_curl "$p" --tlsv1.2 --tls-max 1.2 \
        --ciphers AES128-GCM-SHA256
    hs "$l gnutls-cli RSA kx" Decrypt "$k" 'TLS1.2' web_gnutls "$p" \
        'NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+RSA'
}

# ---- private key material ---------------------------------------------------

# web_no_key_material DIR PID...: no PEM private key under DIR, and no
# process maps or holds open a file of the key server's key dir.
web_no_key_material() {
    local dir=$1 pid bad=0
    shift
    if grep -rlE 'BEGIN (RSA |EC |ENCRYPTED )?PRIVATE KEY' "$dir" 2>/dev/null; then
        echo "private key PEM under $dir"
        bad=1
    fi
    for pid in "$@"; do
        if grep -E "$KS_DIR/keys/|\.pem$" "/proc/$pid/maps" 2>/dev/null; then
            echo "pid $pid maps a key file"
            bad=1
        fi
        local fd
        for fd in /proc/"$pid"/fd/*; do
            case $(readlink "$fd" 2>/dev/null) in
            "$KS_DIR/keys/"*)
                echo "pid $pid holds a key file open: $fd"
                bad=1
                ;;
            esac
        done
    done
    return $bad
}

# Pids of the processes with an established TCP connection to the key server.
web_ks_client_pids() {
    ss -Htnp state established "( dport = :$KS_PORT )" 2>/dev/null \
        | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -n | uniq
}

# web_check_ks_hung PORT
# The key server hung (SIGSTOP): a TLS 1.3 handshake to PORT (a P-256 key)
# must fail within lurk-timeout (2000 ms in WEB_OSSL_CNF) + 1 s, and once
# the key server runs again the next handshakes must work (the timed-out
# connection to the key server is not reused).
web_check_ks_hung() {
    local port=$1 t0 ms
    kill -STOP "$KS_PID"
    t0=$(date +%s%N)
    if web_s_client "$port" -tls1_3; then
        fail "key server hung: handshake fails"
    else
        ms=$((($(date +%s%N) - t0) / 1000000))
        if [ "$ms" -lt 3000 ]; then
            ok "key server hung: handshake fails in $ms ms (lurk-timeout 2000 ms)"
        else
            fail "key server hung: failure took $ms ms (>= lurk-timeout + 1 s)"
        fi
    fi
    kill -CONT "$KS_PID"
    sleep 0.5 # the key server answers the abandoned request (audit line) now
    hs "key server resumed: p256 TLS1.3" Sign p256 '' web_s_client "$port" -tls1_3
    hs "key server resumed: p256 TLS1.2" Sign p256 '' web_s_client "$port" -tls1_2
}

# Session resumption through the web server on PORT, with the session kept
# in $SESS: resume_first makes a session, resume_again resumes it, and
# resume_check LABEL PORT ARGS... checks that the resumed handshake made no
# Sign request to the key server.
resume_first() {
    rm -f "$SESS"
    # keep stdin open a little so a TLS 1.3 ticket can arrive
    (sleep 0.5) | timeout 10 openssl s_client -connect "127.0.0.1:$1" -servername localhost \
        -CAfile "$KS_DIR/ca.crt" -verify_return_error "${@:2}" -sess_out "$SESS" \
        >"$WEB_WORK/client.out" 2>&1 && [ -s "$SESS" ]
}
resume_again() {
    WEB_CLIENT_OUT=$WEB_WORK/client.out
    (sleep 0.3) | timeout 10 openssl s_client -connect "127.0.0.1:$1" -servername localhost \
        -CAfile "$KS_DIR/ca.crt" -verify_return_error "${@:2}" -sess_in "$SESS" \
        >"$WEB_CLIENT_OUT" 2>&1 && grep -q '^Reused' "$WEB_CLIENT_OUT"
}
resume_check() {
    local label=$1 port=$2
    shift 2
    local s0
    if ! resume_first "$port" "$@"; then
        fail "$label: first session" "$WEB_WORK/client.out"
        return
    fi
    web_audit_wait Sign 1
    sleep 0.1
    s0=$(web_audit_count Sign)
    if ! resume_again "$port" "$@"; then
        fail "$label: resumed" "$WEB_WORK/client.out"
        return
    fi
    sleep 0.2
    if [ "$(web_audit_count Sign)" -ne "$s0" ]; then
        fail "$label: resumed handshake made a Sign request"
        return
    fi
    ok "$label: resumed without a key operation"
}
