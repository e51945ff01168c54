#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# parity.sh - "a user who swaps a key file for a lurk key must see no
# difference a client can notice" (issue 9, item 6).
#
# One real lurk-keyserver (tests/lib/keyserver.sh via tests/web/lib.sh) holds
# rsa2048, p256, p384, p521 and ed25519.  Every server under test runs twice
# with the same binary, the same OPENSSL_CONF (lurk.so loaded) and the same
# configuration apart from the key: once with the key FILE (keys/NAME.pem),
# once with the lurk key reference (NAME.key):
#   s_server       openssl s_server -www, one process per key and variant
#   nginx          one nginx, one vhost per key and variant
#   haproxy        one haproxy, one frontend per key and variant
#   *-sec0         the same with 'DEFAULT:@SECLEVEL=0' (rsa2048 and p256), for
#                  the legacy rows: SHA-1/SHA-224 TLS 1.2 signatures and the
#                  TLS 1.2 ClientHello without signature_algorithms
#   s_server-legacy  s_server-sec0 whose lurk keys are served by a second key
#                  server where rsa2048 and p256 have legacy_digests = sha1,
#                  sha224: no refusal applies to its rows
# DHE uses ffdhe2048 parameters (dhparam) everywhere.  parity.py then runs
# the handshake matrix (openssl s_client, gnutls-cli; both verify the chain
# against the test CA) against both variants, compares the outcomes and
# applies the documented policy refusals of tests/parity/refusals.txt.
#
# LURK_KEEP=1 keeps the work dir; PARITY_JOBS sets the client worker pool
# (default 8); PARITY_ONLY=REGEX runs only the matrix rows it matches.
# shellcheck source=../web/lib.sh
. "$(dirname "$0")/../web/lib.sh"

web_require nginx haproxy openssl gnutls-cli python3 timeout
web_require_build
[ "$(id -u)" -eq 0 ] || web_skip "needs root (nginx and haproxy as in the other web tests)"

HERE=$(cd "$(dirname "$0")" && pwd)
KEYS="rsa2048 p256 p384 p521 ed25519"
SEC0_KEYS="rsa2048 p256"
T0=$(date +%s)

web_ks_setup_or_exit
# web_ks_setup makes the rsa2048/p256/p384 key references; add the others
if ks_keyrefs p521 ed25519 >"$WEB_WORK/keyrefs.log" 2>&1; then
    ok "key references for $KEYS"
else
    fail "key references for p521 ed25519" "$WEB_WORK/keyrefs.log"
    web_finish
    exit 1
fi

# The servers' config: web_write_ossl_cnf's, with a lurk-timeout far above any
# handshake's so that a loaded machine cannot turn a slow answer into a
# difference (both variants load the same file).
PARITY_CNF=$WEB_WORK/openssl-parity.cnf
sed -e 's/^ *lurk-timeout *=.*$/lurk-timeout = 10000/' "$WEB_OSSL_CNF" >"$PARITY_CNF"
check "servers' openssl.cnf with lurk-timeout 10000" grep -q '^lurk-timeout = 10000' "$PARITY_CNF"
WEB_OSSL_CNF=$PARITY_CNF

# A second key server with the same keys, where rsa2048 and p256 allow the
# legacy digests (legacy_digests = sha1, sha224): the s_server-legacy rows
# use it, and there lurk must sign SHA-1/SHA-224 exactly as the key file does.
KS_LEGACY_CNF=$KS_DIR/keyserver-legacy.cnf
awk -v audit="$KS_DIR/audit-legacy.log" '
    /^audit_log *=/ { print "audit_log = " audit; next }
    { print }
    /^\[key_(rsa2048|p256)\]$/ { print "legacy_digests = sha1, sha224" }' \
    "$KS_DIR/keyserver.cnf" >"$KS_LEGACY_CNF"
"$LURK_KEYSERVER" --config "$KS_LEGACY_CNF" --listen 127.0.0.1:0 \
    --port-file "$KS_DIR/port-legacy" >"$WEB_WORK/keyserver-legacy.log" 2>&1 &
KS_LEGACY_PID=$!
web_track "$KS_LEGACY_PID"
for _ in $(seq 1 100); do
    [ -s "$KS_DIR/port-legacy" ] && break
    web_alive "$KS_LEGACY_PID" || break
    sleep 0.1
done
if [ -s "$KS_DIR/port-legacy" ]; then
    ok "key server with legacy_digests on 127.0.0.1:$(cat "$KS_DIR/port-legacy") (pid $KS_LEGACY_PID)"
else
    fail "key server with legacy_digests starts" "$WEB_WORK/keyserver-legacy.log"
    web_finish
    exit 1
fi
LEGACY_CNF=$WEB_WORK/openssl-parity-legacy.cnf
sed -e "s|^ *lurk-servers *=.*$|lurk-servers = https://127.0.0.1:$(cat "$KS_DIR/port-legacy")|" \
    "$PARITY_CNF" >"$LEGACY_CNF"

DH=$WEB_WORK/ffdhe2048.pem
check "ffdhe2048 parameters" \
    openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdhe2048 -out "$DH"

# key_path KEY VARIANT: the key file or the lurk key reference.
key_path() {
    if [ "$2" = file ]; then
        echo "$KS_DIR/keys/$1.pem"
    else
        echo "$KS_DIR/$1.key"
    fi
}

# free_ports N: N distinct ports free now on 127.0.0.1 (one python start, not N).
free_ports() {
    python3 -c 'import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}
read -r -a PORTS <<<"$(free_ports 40)"
next_port() { port=${PORTS[0]}; PORTS=("${PORTS[@]:1}"); }

# SERVERS lists "SERVER KEY VARIANT PORT" for parity.py.
SERVERS=$WEB_WORK/servers.txt
: >"$SERVERS"

# ---- openssl s_server -------------------------------------------------------
# One process per key, variant (file|lurk) and level; each binds port 0 and
# prints "ACCEPT 127.0.0.1:PORT".
SS_DIR=$WEB_WORK/s_server
mkdir -p "$SS_DIR"
SS_LIST=()
ss_start() { # NAME KEY VARIANT ARGS...
    local name=$1 key=$2 var=$3 out cnf=$WEB_OSSL_CNF
    shift 3
    out=$SS_DIR/$name-$key-$var
    [ "$name" = s_server-legacy ] && cnf=$LEGACY_CNF
    OPENSSL_CONF=$cnf openssl s_server -accept 127.0.0.1:0 -www \
        -cert "$KS_DIR/$key.crt" -key "$(key_path "$key" "$var")" -dhparam "$DH" "$@" \
        >"$out.out" 2>"$out.err" </dev/null &
    web_track $!
    SS_LIST+=("$name $key $var $!")
}
for key in $KEYS; do
    for var in file lurk; do
        ss_start s_server "$key" "$var"
    done
done
for key in $SEC0_KEYS; do
    for var in file lurk; do
        ss_start s_server-sec0 "$key" "$var" -cipher 'DEFAULT:@SECLEVEL=0'
        ss_start s_server-legacy "$key" "$var" -cipher 'DEFAULT:@SECLEVEL=0'
    done
done
ss_ok=1
for entry in "${SS_LIST[@]}"; do
    read -r name key var pid <<<"$entry"
    out=$SS_DIR/$name-$key-$var
    port=
    for _ in $(seq 1 100); do
        port=$(sed -n 's/^ACCEPT 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$out.out" 2>/dev/null)
        [ -n "$port" ] && break
        web_alive "$pid" || break
        sleep 0.1
    done
    if [ -n "$port" ]; then
        echo "$name $key $var $port" >>"$SERVERS"
    else
        ss_ok=0
        fail "s_server $name $key $var starts" "$out.err"
    fi
done
[ $ss_ok = 1 ] && ok "${#SS_LIST[@]} s_server processes"

# ---- nginx ------------------------------------------------------------------
NGX=$WEB_WORK/nginx
mkdir -p "$NGX/logs" "$NGX/conf"
NGX_PORTS=()
{
    cat <<EOF
worker_processes 1;
pid logs/nginx.pid;
error_log logs/error.log info;
env OPENSSL_CONF;
events { worker_connections 256; }
http {
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_dhparam $DH;
    default_type text/plain;
EOF
    for name in nginx nginx-sec0; do
        keys=$KEYS
        [ $name = nginx-sec0 ] && keys=$SEC0_KEYS
        for key in $keys; do
            for var in file lurk; do
                next_port
                NGX_PORTS+=("$port")
                echo "$name $key $var $port" >>"$SERVERS"
                echo "    server {"
                echo "        listen 127.0.0.1:$port ssl;"
                echo "        ssl_certificate     $KS_DIR/$key.crt;"
                echo "        ssl_certificate_key $(key_path "$key" "$var");"
                [ $name = nginx-sec0 ] && echo "        ssl_ciphers DEFAULT:@SECLEVEL=0;"
                # shellcheck disable=SC2028 # nginx reads the \n
                echo "        location / { return 200 \"parity $key $var\n\"; }"
                echo "    }"
            done
        done
    done
    echo "}"
} >"$NGX/conf/nginx.conf"
# -g "daemon off;" keeps the master our child: stopped by its pid on exit.
OPENSSL_CONF=$WEB_OSSL_CNF nginx -p "$NGX" -c "$NGX/conf/nginx.conf" -g 'daemon off;' \
    >"$WEB_WORK/nginx.stdout" 2>&1 &
NGX_PID=$!
web_track "$NGX_PID"

# ---- haproxy ----------------------------------------------------------------
HA=$WEB_WORK/haproxy
mkdir -p "$HA/certs"
HA_PORTS=()
{
    cat <<EOF
global
    nbthread 2
    log stderr format raw daemon info
    ssl-dh-param-file $DH

defaults
    mode http
    log global
    timeout connect 5s
    timeout client 10s
    timeout server 10s
    timeout http-request 10s
EOF
    for name in haproxy haproxy-sec0; do
        keys=$KEYS
        [ $name = haproxy-sec0 ] && keys=$SEC0_KEYS
        for key in $keys; do
            for var in file lurk; do
                next_port
                HA_PORTS+=("$port")
                echo "$name $key $var $port" >>"$SERVERS"
                # certificate and key (file or reference) in one crt file
                cat "$KS_DIR/$key.crt" "$(key_path "$key" "$var")" >"$HA/certs/$key-$var.pem"
                extra=
                [ $name = haproxy-sec0 ] && extra=" ciphers DEFAULT:@SECLEVEL=0"
                echo
                echo "frontend fe_${name//-/_}_${key}_$var"
                echo "    bind 127.0.0.1:$port ssl crt $HA/certs/$key-$var.pem$extra"
                echo "    http-request return status 200 content-type text/plain string \"parity $key $var\""
            done
        done
    done
} >"$HA/haproxy.cfg"
OPENSSL_CONF=$WEB_OSSL_CNF haproxy -W -f "$HA/haproxy.cfg" >"$WEB_WORK/haproxy.log" 2>&1 &
HA_PID=$!
web_track "$HA_PID"

up=1
for port in "${NGX_PORTS[@]}"; do
    web_wait_port "$port" || { up=0; fail "nginx listens on $port" "$NGX/logs/error.log"; break; }
done
[ $up = 1 ] && ok "nginx (master $NGX_PID): ${#NGX_PORTS[@]} vhosts"
up=1
for port in "${HA_PORTS[@]}"; do
    web_wait_port "$port" || { up=0; fail "haproxy listens on $port" "$WEB_WORK/haproxy.log"; break; }
done
[ $up = 1 ] && ok "haproxy (master $HA_PID): ${#HA_PORTS[@]} frontends"
if [ "$WEB_FAIL" -ne 0 ]; then
    web_finish
    exit 1
fi
ok "setup in $(($(date +%s) - T0)) s"

# ---- the matrix -------------------------------------------------------------
s0=$(web_audit_count Sign)
d0=$(web_audit_count Decrypt)
# in the background, so that a signal stops it (by its pid) at once
python3 "$HERE/parity.py" --servers "$SERVERS" --ca "$KS_DIR/ca.crt" \
    --refusals "$HERE/refusals.txt" --jobs "${PARITY_JOBS:-8}" --only "${PARITY_ONLY:-}" \
    --work "$WEB_WORK/rows" &
PY_PID=$!
web_track "$PY_PID"
if wait "$PY_PID"; then
    ok "parity matrix"
else
    fail "parity matrix"
fi
# the lurk rows really went to the key server
sleep 0.2
ds=$(($(web_audit_count Sign) - s0))
dd=$(($(web_audit_count Decrypt) - d0))
if [ -n "${PARITY_ONLY:-}" ] || { [ "$ds" -gt 0 ] && [ "$dd" -gt 0 ]; }; then
    ok "the key server logged $ds Sign and $dd Decrypt operations"
else
    fail "the key server logged the lurk rows' operations" "$ds Sign, $dd Decrypt"
fi

# The refused rows were refused by the key server's policy (403, the
# legacy_digests setting), and the s_server-legacy rows were signed by its own
# key server (200).
legacy_audit() { # FILE DIGEST STATUS: audit lines of DIGEST signatures with STATUS
    grep -c "/$2\",\"status\":$3," "$1" 2>/dev/null || true
}
if [ -z "${PARITY_ONLY:-}" ]; then
    for dg in sha1 sha224; do
        n403=$(legacy_audit "$KS_AUDIT" $dg 403)
        n200=$(legacy_audit "$KS_AUDIT" $dg 200)
        l200=$(legacy_audit "$KS_DIR/audit-legacy.log" $dg 200)
        if [ "$n403" -gt 0 ] && [ "$n200" -eq 0 ] && [ "$l200" -gt 0 ]; then
            ok "$dg signatures: $n403 refused (403) by the default key server, $l200 signed by the legacy_digests one"
        else
            fail "$dg signatures: 403 by the default key server ($n403, and $n200 signed), 200 by the legacy_digests one ($l200)"
        fi
    done
fi

# ---- every server survived --------------------------------------------------
dead=
for entry in "${SS_LIST[@]}"; do
    read -r name key var pid <<<"$entry"
    web_alive "$pid" || dead="$dead $name/$key/$var"
done
web_alive "$NGX_PID" || dead="$dead nginx"
web_alive "$HA_PID" || dead="$dead haproxy"
web_alive "$KS_LEGACY_PID" || dead="$dead keyserver-legacy"
if [ -z "$dead" ]; then
    ok "every server is still running"
else
    fail "servers died:$dead"
fi
if grep -E 'exited on signal|\[(alert|emerg)\]' "$NGX/logs/error.log" >"$WEB_WORK/ngx-alerts.out"; then
    fail "nginx error.log has no alert/emerg or crashed worker" "$WEB_WORK/ngx-alerts.out"
else
    ok "nginx error.log has no alert/emerg or crashed worker"
fi
if grep -Ei 'exited with code|killed|segfault|ALERT' "$WEB_WORK/haproxy.log" >"$WEB_WORK/ha-alerts.out"; then
    fail "haproxy log has no crash or alert" "$WEB_WORK/ha-alerts.out"
else
    ok "haproxy log has no crash or alert"
fi
web_log "total $(($(date +%s) - T0)) s"
web_finish
