#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# haproxy 2.6 (Debian, unmodified: no ENGINE support) with remote keys
# through lurk.so.  haproxy can only read keys with PEM_read_bio_PrivateKey,
# so every key here is a lurk key reference: in `site.pem.key` next to the
# crt file (rsa2048, p384), or inside the crt file after the certificate
# (p256).  Master-worker mode (-W), nbthread 2, chroot, workers as nobody.
# Checks: the handshake matrix with one Sign/Decrypt audit line per full
# handshake, no key material in reach, resumption without key operations,
# reload (USR2 to the master) under bounded load losing no request, key
# server hung (SIGSTOP: failure within lurk-timeout + 1 s, then recovery), key
# server down (fast failure, plain HTTP and resumed sessions keep working,
# no crash) and back on the same port, a wrong certificate refused at start,
# and the `ssl-provider lurk` / `ssl-provider default` / `ssl-propquery`
# variant with a non-activated lurk section.
. "$(dirname "$0")/lib.sh"

web_require haproxy openssl curl gnutls-cli ss python3 timeout
web_require_build
[ "$(id -u)" -eq 0 ] || web_skip "needs root (chroot, workers drop to nobody)"

web_ks_setup_or_exit

P_RSA=$(web_free_port)
P_P256=$(web_free_port)
P_P384=$(web_free_port)
P_STATIC=$(web_free_port)
P_HTTP=$(web_free_port)

HA=$WEB_WORK/haproxy
CRT=$HA/certs
mkdir -p "$CRT"
# rsa2048, p384: certificate in site.pem, key reference in site.pem.key
for k in rsa2048 p384; do
    cp "$KS_DIR/$k.crt" "$CRT/$k.pem"
    cp "$KS_DIR/$k.key" "$CRT/$k.pem.key"
done
# p256: certificate and key reference in one crt file
cat "$KS_DIR/p256.crt" "$KS_DIR/p256.key" >"$CRT/p256.pem"

CHROOT=/var/lib/haproxy
[ -d "$CHROOT" ] || CHROOT=$HA

# ha_conf OUT [RSA-CRT] [EXTRA-GLOBAL-LINES]
ha_conf() {
    local out=$1 rsa=${2:-$CRT/rsa2048.pem} extra=${3:-}
    cat >"$out" <<EOF
global
    nbthread 2
    user nobody
    group nogroup
    chroot $CHROOT
    log stderr format raw daemon info
    tune.ssl.default-dh-param 2048
$extra

defaults
    mode http
    log global
    option httplog
    error-log-format "%ci:%cp %ft ssl_fc_err=%[ssl_fc_err,hex] %[ssl_fc_err_str]"
    timeout connect 5s
    timeout client 10s
    timeout server 10s
    timeout http-request 10s

frontend fe_rsa
    bind 127.0.0.1:$P_RSA ssl crt $rsa
    http-request return status 200 content-type text/plain string "lurk ok rsa2048"

frontend fe_p256
    bind 127.0.0.1:$P_P256 ssl crt $CRT/p256.pem
    http-request return status 200 content-type text/plain string "lurk ok p256"

frontend fe_p384
    bind 127.0.0.1:$P_P384 ssl crt $CRT/p384.pem
    http-request return status 200 content-type text/plain string "lurk ok p384"

frontend fe_static
    bind 127.0.0.1:$P_STATIC ssl crt $rsa ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.2 ciphers AES128-GCM-SHA256
    http-request return status 200 content-type text/plain string "lurk ok static-rsa"

frontend fe_http
    bind 127.0.0.1:$P_HTTP
    http-request return status 200 content-type text/plain string "lurk ok http"
EOF
}
ha_conf "$HA/haproxy.cfg"

check "haproxy -c with lurk key references" \
    env OPENSSL_CONF="$WEB_OSSL_CNF" haproxy -c -f "$HA/haproxy.cfg"

# ha_start CFG OPENSSL-CNF LOG: master in the foreground (our child).
ha_start() {
    OPENSSL_CONF=$2 haproxy -W -f "$1" -p "$HA/haproxy.pid" >"$3" 2>&1 &
    HA_PID=$!
    web_track "$HA_PID"
}

HA_LOG=$WEB_WORK/haproxy.log
ha_start "$HA/haproxy.cfg" "$WEB_OSSL_CNF" "$HA_LOG"
if ! web_wait_port "$P_HTTP" || ! web_wait_port "$P_P384"; then
    fail "haproxy starts" "$HA_LOG"
    web_finish
    exit 1
fi
sleep 0.3
mapfile -t WORKERS < <(web_children "$HA_PID")
if [ "${#WORKERS[@]}" -eq 1 ]; then
    ok "haproxy started (master $HA_PID, worker ${WORKERS[*]})"
else
    fail "haproxy started with one worker" "children: ${WORKERS[*]:-none}"
fi
u=$(awk '/^Uid:/ {print $2}' "/proc/${WORKERS[0]}/status" 2>/dev/null)
[ "$u" = "$(id -u nobody)" ] && ok "worker runs as nobody" || fail "worker runs as nobody" "uid $u"
threads=$(awk '/^Threads:/ {print $2}' "/proc/${WORKERS[0]}/status" 2>/dev/null)
[ "${threads:-0}" -ge 2 ] && ok "worker has $threads threads" || fail "worker has 2 threads" "$threads"

# ---- the handshake matrix ---------------------------------------------------
web_matrix_rsa "rsa2048" "$P_RSA" rsa2048
web_matrix_ec "p256 (key in crt)" "$P_P256" p256 SHA256
web_matrix_ec "p384" "$P_P384" p384 SHA384
web_matrix_static_rsa "static-RSA" "$P_STATIC" rsa2048
check "plain HTTP" bash -c "curl -sS --max-time 5 http://127.0.0.1:$P_HTTP/ | grep -q 'lurk ok http'"

# ---- bulk count and concurrency (both threads serve) ------------------------
N=40
s0=$(web_audit_count Sign)
timeout 60 bash -c '
    for i in $(seq 1 '"$((N / 4))"'); do
        for j in 1 2 3 4; do
            curl -s --max-time 5 --cacert "$1" --resolve "localhost:$2:127.0.0.1" \
                "https://localhost:$2/" | grep -q "lurk ok" && echo ok &
        done
        wait
    done' _ "$KS_DIR/ca.crt" "$P_P256" >"$WEB_WORK/bulk.out"
nok=$(grep -c '^ok' "$WEB_WORK/bulk.out")
web_audit_wait Sign $((s0 + N))
sleep 0.2
ds=$(($(web_audit_count Sign) - s0))
if [ "$nok" -eq "$N" ] && [ "$ds" -eq "$N" ]; then
    ok "$N handshakes, 4 at a time: $N Sign audit lines"
else
    fail "$N handshakes 4 at a time: $nok succeeded, $ds Sign audit lines"
fi

# ---- resumption costs no key operation --------------------------------------
SESS=$WEB_WORK/sess.pem   # used by resume_first / resume_again (lib.sh)
resume_check "rsa2048 TLS1.2 resumption" "$P_RSA" -tls1_2
resume_check "p256 TLS1.3 resumption" "$P_P256" -tls1_3

# ---- key material, connections ----------------------------------------------
check "no private key under haproxy's files, none mapped or open" \
    web_no_key_material "$HA" "$HA_PID" "${WORKERS[@]}"
conns() {
    local lines
    lines=$(ss -Htnp state established "( dport = :$KS_PORT )")
    echo "$lines"
    echo "$lines" | grep -q "pid=${WORKERS[0]}," || { echo "worker has no connection"; return 1; }
    ! echo "$lines" | grep -q "pid=$HA_PID," || { echo "master holds a connection"; return 1; }
    ! echo "$lines" | grep -q 'pid=.*pid=' || { echo "a connection is shared"; return 1; }
    [ "$(echo "$lines" | grep -c "pid=${WORKERS[0]},")" -le 2 ] \
        || { echo "more connections than threads"; return 1; }
}
check "the worker (not the master) holds the key-server connections (<= 1 per thread)" conns

# ---- reload under load ------------------------------------------------------
web_reload_under_load "USR2" "$P_RSA" "$HA_PID" 1 "$HA_LOG" kill -USR2 "$HA_PID"
hs "after reload: p384 TLS1.3" Sign p384 '' web_s_client "$P_P384" -tls1_3

# ---- key server hung (SIGSTOP): the request times out ----------------------
web_check_ks_hung "$P_P256"

# ---- key server down --------------------------------------------------------
resume_first "$P_RSA" -tls1_2 || fail "session before key-server stop" "$WEB_WORK/client.out"
cp "$SESS" "$WEB_WORK/sess12.pem"
web_ks_kill
ok "key server stopped"
log_lines=$(wc -l <"$HA_LOG")
for spec in "p256 TLS1.3:$P_P256:-tls1_3" "rsa2048 TLS1.2:$P_RSA:-tls1_2" \
    "static RSA:$P_STATIC:-tls1_2"; do
    label=${spec%%:*}
    rest=${spec#*:}
    port=${rest%%:*}
    opt=${rest#*:}
    t0=$(date +%s%N)
    if web_s_client "$port" "$opt"; then
        fail "key server down: $label handshake fails"
        continue
    fi
    ms=$((($(date +%s%N) - t0) / 1000000))
    if [ "$ms" -lt 2000 ]; then
        ok "key server down: $label handshake fails in $ms ms"
    else
        fail "key server down: $label failure took $ms ms (>= connect timeout + 1 s)"
    fi
done
sleep 0.3
tail -n +"$((log_lines + 1))" "$HA_LOG" >"$WEB_WORK/err.out"
if grep -qi 'lurk' "$WEB_WORK/err.out"; then
    ok "key server down: haproxy log names the lurk reason: $(grep -i -m1 lurk "$WEB_WORK/err.out" | cut -c1-240)"
else
    fail "key server down: a lurk reason in haproxy's log" "$WEB_WORK/err.out"
fi
check "key server down: plain HTTP works" \
    bash -c "curl -sS --max-time 5 http://127.0.0.1:$P_HTTP/ | grep -q 'lurk ok http'"
cp "$WEB_WORK/sess12.pem" "$SESS"
check "key server down: resumed TLS 1.2 session works" resume_again "$P_RSA" -tls1_2
mapfile -t NOW < <(web_children "$HA_PID")
[ "${NOW[*]}" = "${WORKERS[*]}" ] && ok "key server down: worker alive (${NOW[*]})" \
    || fail "key server down: worker alive" "before ${WORKERS[*]} now ${NOW[*]:-}"

if web_ks_restart; then
    ok "key server restarted on port $KS_PORT (pid $KS_PID)"
else
    fail "key server restart" "$WEB_WORK/ks-restart.log"
fi
hs "key server back: p256 TLS1.3" Sign p256 '' web_s_client "$P_P256" -tls1_3
hs "key server back: rsa2048 TLS1.2" Sign rsa2048 '' web_curl "$P_RSA" --tlsv1.2 --tls-max 1.2
hs "key server back: static RSA" Decrypt rsa2048 '' web_s_client "$P_STATIC" -tls1_2 \
    -cipher AES128-GCM-SHA256
check "key server back: 8 parallel handshakes (both threads reconnect)" bash -c '
    for j in 1 2 3 4 5 6 7 8; do
        curl -s --max-time 5 --cacert "$1" --resolve "localhost:$2:127.0.0.1" \
            "https://localhost:$2/" | grep -q "lurk ok" || echo FAIL &
    done | (! grep -q FAIL)' _ "$KS_DIR/ca.crt" "$P_P384"
mapfile -t NOW < <(web_children "$HA_PID")
[ "${NOW[*]}" = "${WORKERS[*]}" ] && ok "worker alive over the whole run" \
    || fail "worker alive over the whole run" "before ${WORKERS[*]} now ${NOW[*]:-}"

web_stop_pid "$HA_PID" USR1
web_stop_pid "$HA_PID"

# ---- wrong certificate ------------------------------------------------------
cp "$KS_DIR/p256.crt" "$CRT/wrong.pem"
cp "$KS_DIR/rsa2048.key" "$CRT/wrong.pem.key"
ha_conf "$HA/bad.cfg" "$CRT/wrong.pem"
if OPENSSL_CONF=$WEB_OSSL_CNF timeout 20 haproxy -c -f "$HA/bad.cfg" >"$WEB_WORK/bad.out" 2>&1; then
    fail "haproxy -c refuses p256.crt with the rsa2048 key reference" "$WEB_WORK/bad.out"
elif grep -qiE 'inconsisten|mismatch' "$WEB_WORK/bad.out"; then
    ok "haproxy -c refuses a wrong certificate: $(grep -iE -m1 'inconsisten|mismatch' "$WEB_WORK/bad.out" | cut -c1-200)"
else
    fail "haproxy -c names the key/certificate mismatch" "$WEB_WORK/bad.out"
fi
BAD_LOG=$WEB_WORK/haproxy-bad.log
ha_start "$HA/bad.cfg" "$WEB_OSSL_CNF" "$BAD_LOG"
for i in $(seq 1 100); do
    web_alive "$HA_PID" || break
    sleep 0.1
done
if web_alive "$HA_PID"; then
    fail "haproxy refuses to start with a wrong certificate" "$BAD_LOG"
    web_stop_pid "$HA_PID"
elif grep -qiE 'inconsisten|mismatch' "$BAD_LOG"; then
    ok "haproxy refuses to start with a wrong certificate"
else
    fail "haproxy start names the mismatch" "$BAD_LOG"
fi

# ---- ssl-provider variant ---------------------------------------------------
# lurk_sect without `activate`: haproxy loads it by name (its parameters come
# from the section), and default explicitly.
PROV_CNF=$WEB_WORK/openssl-lurk-noactivate.cnf
awk '/^\[/ {sect=$0} !(sect ~ /lurk_sect/ && $1 == "activate") {print}' \
    "$WEB_OSSL_CNF" >"$PROV_CNF"
ha_conf "$HA/provider.cfg" "" "    ssl-provider default
    ssl-provider lurk
    ssl-propquery ?provider=default"
ha_start "$HA/provider.cfg" "$PROV_CNF" "$WEB_WORK/haproxy-provider.log"
if web_wait_port "$P_P384"; then
    ok "haproxy with ssl-provider lurk/default + ssl-propquery starts"
    hs "ssl-provider: p384 TLS1.3" Sign p384 '' web_s_client "$P_P384" -tls1_3
    hs "ssl-provider: rsa2048 TLS1.2 PSS" Sign rsa2048 'RSA-PSS' web_s_client "$P_RSA" -tls1_2 \
        -sigalgs RSA-PSS+SHA256
else
    fail "haproxy with ssl-provider lurk/default + ssl-propquery starts" \
        "$WEB_WORK/haproxy-provider.log"
fi
web_stop_pid "$HA_PID"

web_finish
