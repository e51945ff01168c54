#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# nginx 1.22 (Debian, unmodified) with remote keys through lurk.so.
#
# A key server with rsa2048, p256 and p384 keys; nginx (2 workers, master as
# root, workers as nobody) with one vhost per key reference, a static-RSA
# vhost (TLS 1.2, AES128-GCM-SHA256) and a plain-HTTP server.  Checks:
#  - every handshake of the matrix (TLS 1.3/1.2, PKCS#1 and PSS, ECDSA P-256
#    and P-384, static RSA; openssl s_client, curl, gnutls-cli) succeeds, the
#    client verifies the chain, and the audit log gains exactly one Sign (or
#    Decrypt) per full handshake, none for a resumed one;
#  - no private key material under nginx's prefix or mapped by nginx;
#  - both workers serve and each has its own connection to the key server,
#    the master none;
#  - reload under bounded load loses no request;
#  - key server hung (SIGSTOP): handshakes fail within lurk-timeout + 1 s,
#    and work again once it runs;
#  - key server down: handshakes fail fast with a lurk reason in error.log,
#    plain HTTP and resumed sessions still work, no worker dies; key server
#    back on the same port: handshakes work again without touching nginx;
#  - a certificate that does not match its key reference (same key type)
#    fails `nginx -t` with "key values mismatch"; a key of another type is
#    treated exactly as the local private key would be;
#  - error.log has no [alert]/[emerg] (e.g. errors a provider left queued).
. "$(dirname "$0")/lib.sh"

web_require nginx openssl curl gnutls-cli ss python3 timeout
web_require_build
[ "$(id -u)" -eq 0 ] || web_skip "needs root (workers drop to nobody)"

web_ks_setup_or_exit

P_RSA=$(web_free_port)
P_P256=$(web_free_port)
P_P384=$(web_free_port)
P_STATIC=$(web_free_port)
P_HTTP=$(web_free_port)

NGX=$WEB_WORK/nginx
mkdir -p "$NGX/logs" "$NGX/conf"

# nginx.conf: key reference files stay where the dev PKI wrote them (outside
# the prefix); the prefix holds only certificates' paths, logs and temp dirs.
ngx_conf() {
    local out=$1 rsa_crt=${2:-$KS_DIR/rsa2048.crt}
    cat >"$out" <<EOF
user nobody nogroup;
worker_processes 2;
pid logs/nginx.pid;
error_log logs/error.log info;
env OPENSSL_CONF;
events { worker_connections 256; }
http {
    log_format lurk '\$pid \$server_port \$ssl_protocol \$ssl_cipher \$ssl_session_reused';
    access_log logs/access.log lurk;
    # nginx < 1.23.4 enables only TLS <= 1.2 by default
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:1m;
    ssl_session_timeout 10m;
    default_type text/plain;
    server {
        listen 127.0.0.1:$P_RSA ssl reuseport;
        ssl_certificate     $rsa_crt;
        ssl_certificate_key $KS_DIR/rsa2048.key;
        location / { return 200 "lurk ok rsa2048\n"; }
    }
    server {
        listen 127.0.0.1:$P_P256 ssl reuseport;
        ssl_certificate     $KS_DIR/p256.crt;
        ssl_certificate_key $KS_DIR/p256.key;
        location / { return 200 "lurk ok p256\n"; }
    }
    server {
        listen 127.0.0.1:$P_P384 ssl reuseport;
        ssl_certificate     $KS_DIR/p384.crt;
        ssl_certificate_key $KS_DIR/p384.key;
        location / { return 200 "lurk ok p384\n"; }
    }
    server {
        listen 127.0.0.1:$P_STATIC ssl reuseport;
        ssl_protocols TLSv1.2;
        ssl_ciphers AES128-GCM-SHA256;
        ssl_certificate     $rsa_crt;
        ssl_certificate_key $KS_DIR/rsa2048.key;
        location / { return 200 "lurk ok static-rsa\n"; }
    }
    server {
        listen 127.0.0.1:$P_HTTP reuseport;
        location / { return 200 "lurk ok http\n"; }
    }
}
EOF
}
ngx_conf "$NGX/conf/nginx.conf"

ngx() { OPENSSL_CONF=$WEB_OSSL_CNF nginx -p "$NGX" -c "$NGX/conf/nginx.conf" "$@"; }

check "nginx -t with lurk key references" ngx -t

# -g "daemon off;" keeps the master our child: stopped by its pid on exit.
OPENSSL_CONF=$WEB_OSSL_CNF nginx -p "$NGX" -c "$NGX/conf/nginx.conf" -g 'daemon off;' \
    >"$WEB_WORK/nginx.stdout" 2>&1 &
NGX_PID=$!
web_track "$NGX_PID"
if ! web_wait_port "$P_HTTP" || ! web_wait_port "$P_P384"; then
    fail "nginx starts" "$NGX/logs/error.log"
    web_finish
    exit 1
fi
ok "nginx started (master $NGX_PID)"
sleep 0.3
mapfile -t WORKERS < <(web_children "$NGX_PID")
if [ "${#WORKERS[@]}" -eq 2 ]; then
    ok "2 workers: ${WORKERS[*]}"
else
    fail "2 workers" "children of $NGX_PID: ${WORKERS[*]:-none}"
fi
for w in "${WORKERS[@]}"; do
    u=$(awk '/^Uid:/ {print $2}' "/proc/$w/status")
    if [ "$u" != "$(id -u nobody)" ]; then
        fail "worker $w runs as nobody" "uid $u"
    fi
done

# ---- the handshake matrix ---------------------------------------------------
web_matrix_rsa "rsa2048" "$P_RSA" rsa2048
web_matrix_ec "p256" "$P_P256" p256 SHA256
web_matrix_ec "p384" "$P_P384" p384 SHA384
web_matrix_static_rsa "static-RSA" "$P_STATIC" rsa2048
check "plain HTTP" bash -c "curl -sS --max-time 5 http://127.0.0.1:$P_HTTP/ | grep -q 'lurk ok http'"

# ---- bulk count: N full handshakes = N Sign lines ---------------------------
N=40
s0=$(web_audit_count Sign)
nok=0
for i in $(seq 1 $N); do
    if curl -s --max-time 5 --cacert "$KS_DIR/ca.crt" --resolve "localhost:$P_P256:127.0.0.1" \
        "https://localhost:$P_P256/" | grep -q 'lurk ok p256'; then
        nok=$((nok + 1))
    fi
done
web_audit_wait Sign $((s0 + N))
sleep 0.2
ds=$(($(web_audit_count Sign) - s0))
if [ "$nok" -eq "$N" ] && [ "$ds" -eq "$N" ]; then
    ok "$N curl handshakes: $N Sign audit lines"
else
    fail "$N curl handshakes: $nok succeeded, $ds Sign audit lines"
fi

# ---- resumption costs no key operation --------------------------------------
SESS=$WEB_WORK/sess.pem   # used by resume_first / resume_again (lib.sh)
resume_check "rsa2048 TLS1.2 resumption" "$P_RSA" -tls1_2
resume_check "p256 TLS1.3 resumption" "$P_P256" -tls1_3

# ---- no private key material in nginx's reach -------------------------------
check "no private key under the prefix, none mapped or open in master/workers" \
    web_no_key_material "$NGX" "$NGX_PID" "${WORKERS[@]}"
keyrefs_only() {
    local k
    for k in rsa2048 p256 p384; do
        grep -q 'BEGIN LURK PRIVATE KEY' "$KS_DIR/$k.key" || { echo "$k.key"; return 1; }
        grep -E 'BEGIN (RSA |EC |ENCRYPTED )?PRIVATE KEY' "$KS_DIR/$k.key" && return 1
    done
    return 0
}
check "ssl_certificate_key files are lurk key references only" keyrefs_only

# ---- both workers serve, each with its own key-server connection ------------
# both_workers: new TLS requests (after the access log's current end) until
# every current worker has served one (at most 60 requests).
both_workers() {
    local i w from
    from=$(($(wc -l <"$NGX/logs/access.log") + 1))
    served() {
        tail -n +"$from" "$NGX/logs/access.log" \
            | awk -v p="$P_RSA" -v w="$1" '$1 == w && $2 == p && $3 != "-" {f=1} END {exit !f}'
    }
    for i in $(seq 1 60); do
        curl -s --max-time 5 --cacert "$KS_DIR/ca.crt" --resolve "localhost:$P_RSA:127.0.0.1" \
            "https://localhost:$P_RSA/" >/dev/null
        served "${WORKERS[0]}" && served "${WORKERS[1]}" && return 0
    done
    for w in "${WORKERS[@]}"; do
        served "$w" || echo "worker $w served no TLS request in 60"
    done
    return 1
}
check "both workers served TLS requests" both_workers

own_connections() {
    local lines w bad=0
    lines=$(ss -Htnp state established "( dport = :$KS_PORT )")
    echo "$lines"
    for w in "${WORKERS[@]}"; do
        # a line naming this worker and no other process: its own socket
        if ! echo "$lines" | grep "pid=$w," | grep -vq 'pid=.*pid='; then
            echo "worker $w has no connection of its own to the key server"
            bad=1
        fi
    done
    if echo "$lines" | grep -q 'pid=.*pid='; then
        echo "a key-server connection is shared between processes"
        bad=1
    fi
    if echo "$lines" | grep -q "pid=$NGX_PID,"; then
        echo "the master holds a key-server connection"
        bad=1
    fi
    return $bad
}
check "each worker has its own key-server connection, the master none" own_connections

# ---- reload under load ------------------------------------------------------
web_reload_under_load "nginx -s reload" "$P_P256" "$NGX_PID" 2 "$WEB_WORK/reload.out" ngx -s reload
hs "after reload: p384 TLS1.3" Sign p384 '' web_s_client "$P_P384" -tls1_3

# ---- key server hung (SIGSTOP): the request times out ----------------------
web_check_ks_hung "$P_P256"

# ---- key server down --------------------------------------------------------
resume_first "$P_RSA" -tls1_2 || fail "session before key-server stop" "$WEB_WORK/client.out"
cp "$SESS" "$WEB_WORK/sess12.pem"
web_ks_kill
ok "key server stopped"
err_lines=$(wc -l <"$NGX/logs/error.log")

t0=$(date +%s%N)
if web_s_client "$P_P256" -tls1_3; then
    fail "key server down: handshake fails"
else
    ok "key server down: TLS 1.3 handshake fails"
fi
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
# lurk-connect-timeout is 1000 ms in WEB_OSSL_CNF; refused connections fail at once
if [ "$ms" -lt 2000 ]; then
    ok "key server down: failure took $ms ms (< connect timeout + 1 s)"
else
    fail "key server down: failure took $ms ms (>= 2000)"
fi
t0=$(date +%s%N)
web_s_client "$P_STATIC" -tls1_2 -cipher AES128-GCM-SHA256 \
    && fail "key server down: static RSA handshake fails"
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -lt 2000 ] && ok "key server down: static RSA fails in $ms ms" \
    || fail "key server down: static RSA failure took $ms ms"
sleep 0.2
if tail -n +"$((err_lines + 1))" "$NGX/logs/error.log" | grep -i 'lurk' >"$WEB_WORK/err.out"; then
    ok "key server down: error.log names the lurk reason: $(head -c 300 "$WEB_WORK/err.out" | head -n 1)"
else
    fail "key server down: a lurk reason in error.log" \
        "$(tail -n +"$((err_lines + 1))" "$NGX/logs/error.log")"
fi
check "key server down: plain HTTP works" \
    bash -c "curl -sS --max-time 5 http://127.0.0.1:$P_HTTP/ | grep -q 'lurk ok http'"
cp "$WEB_WORK/sess12.pem" "$SESS"
check "key server down: resumed TLS 1.2 session works" resume_again "$P_RSA" -tls1_2
mapfile -t NOW < <(web_children "$NGX_PID")
if [ "${NOW[*]}" = "${WORKERS[*]}" ] && ! grep -q 'exited on signal' "$NGX/logs/error.log"; then
    ok "key server down: no worker died (${NOW[*]})"
else
    fail "key server down: no worker died" \
        "before ${WORKERS[*]} now ${NOW[*]:-}; $(grep 'exited on signal' "$NGX/logs/error.log")"
fi

# ---- key server back on the same port --------------------------------------
if web_ks_restart; then
    ok "key server restarted on port $KS_PORT (pid $KS_PID)"
else
    fail "key server restart" "$WEB_WORK/ks-restart.log"
fi
hs "key server back: p256 TLS1.3" Sign p256 '' web_s_client "$P_P256" -tls1_3
hs "key server back: rsa2048 TLS1.2" Sign rsa2048 '' web_curl "$P_RSA" --tlsv1.2 --tls-max 1.2
hs "key server back: static RSA" Decrypt rsa2048 '' web_s_client "$P_STATIC" -tls1_2 \
    -cipher AES128-GCM-SHA256
# both workers again (each must reconnect on its own)
check "key server back: both workers serve" both_workers
mapfile -t NOW < <(web_children "$NGX_PID")
if [ "${NOW[*]}" = "${WORKERS[*]}" ] && ! grep -q 'exited on signal' "$NGX/logs/error.log"; then
    ok "no worker died over the whole run"
else
    fail "no worker died over the whole run" "$(grep 'exited on signal' "$NGX/logs/error.log")"
fi

# ---- wrong certificate for a key reference ---------------------------------
# nginx 1.22 calls SSL_CTX_use_PrivateKey after the certificate; OpenSSL then
# compares the key with the certificate of the same type slot.  A key of
# the certificate's type that is not its key must fail `nginx -t` with
# "key values mismatch".  A key of another type lands in another slot and
# is not compared (nginx + OpenSSL behave so with local PEM keys too): for
# p256.crt with the rsa2048 reference, lurk must do exactly what the local
# rsa2048 private key does.
BAD=$WEB_WORK/nginx-bad
mkdir -p "$BAD/logs"
bad_conf() {
    cat >"$BAD/nginx.conf" <<EOF
pid logs/nginx.pid;
error_log logs/error.log;
events { }
http {
    server {
        listen 127.0.0.1:$(web_free_port) ssl;
        ssl_certificate     $1;
        ssl_certificate_key $2;
    }
}
EOF
}
ngx_t_bad() {
    bad_conf "$1" "$2"
    OPENSSL_CONF=$WEB_OSSL_CNF nginx -t -p "$BAD" -c "$BAD/nginx.conf" >"$WEB_WORK/bad.out" 2>&1
}
for pair in "p384.crt p256" "rsa3072.crt rsa2048" "p256.crt p384"; do
    read -r crt key <<<"$pair"
    [ -f "$KS_DIR/$crt" ] || { fail "wrong certificate: $KS_DIR/$crt missing"; continue; }
    if ngx_t_bad "$KS_DIR/$crt" "$KS_DIR/$key.key"; then
        fail "nginx -t refuses $crt with the $key key reference" "$WEB_WORK/bad.out"
    elif grep -q 'key values mismatch' "$WEB_WORK/bad.out"; then
        ok "nginx -t refuses $crt with the $key key reference: $(grep -m1 -o 'SSL_CTX_use_PrivateKey.*mismatch' "$WEB_WORK/bad.out" | sed "s|$KS_DIR/||")"
    else
        fail "nginx -t names the mismatch of $crt and the $key key reference" "$WEB_WORK/bad.out"
    fi
done
ngx_t_bad "$KS_DIR/p256.crt" "$KS_DIR/keys/rsa2048.pem"
local_rc=$?
cp "$WEB_WORK/bad.out" "$WEB_WORK/bad-local.out"
ngx_t_bad "$KS_DIR/p256.crt" "$KS_DIR/rsa2048.key"
lurk_rc=$?
if [ "$local_rc" -eq "$lurk_rc" ]; then
    ok "p256.crt with rsa2048: nginx -t gives the same result (rc $lurk_rc) for the key reference as for the local key"
else
    fail "p256.crt with rsa2048: nginx -t rc $lurk_rc with the key reference, $local_rc with the local key" \
        "$(cat "$WEB_WORK/bad-local.out" "$WEB_WORK/bad.out")"
fi

# ---- stop -------------------------------------------------------------------
web_stop_pid "$NGX_PID" QUIT
check "nginx stopped" bash -c "! kill -0 $NGX_PID 2>/dev/null"
if grep -E '\[(alert|emerg)\]' "$NGX/logs/error.log" >"$WEB_WORK/alerts.out"; then
    fail "no alert/emerg in error.log" "$WEB_WORK/alerts.out"
else
    ok "no alert/emerg in error.log"
fi
web_finish
