#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Every example file of conf/ is used for real, with only its paths and
# ports replaced (sed) to point at a throwaway key server:
#   openssl-lurk.cnf       openssl lists the lurk provider as active; it is
#                          then the OPENSSL_CONF of nginx and haproxy below
#   nginx-lurk.conf        nginx serves HTTPS with the key reference, HTTP
#                          redirects
#   haproxy-lurk.cfg       haproxy serves HTTPS with site.pem + site.pem.key
#                          in front of a backend
#   lurk-keyserver.cnf     lurk-keyserver --check accepts it
#   lurk-keyserver.service systemd-analyze verify (or a key syntax check)
. "$(dirname "$0")/lib.sh"

web_require openssl curl python3 timeout
web_require_build
CONF=$LURK_SOURCE_ROOT/conf

web_ks_setup_or_exit
# workers of nginx/haproxy run unprivileged: let them walk to their files
chmod 0711 "$WEB_WORK"

# ---- openssl-lurk.cnf -------------------------------------------------------
OSSL=$WEB_WORK/openssl-lurk.cnf.conf
sed -e "s|^#* *module *=.*|module = $LURK_PROVIDER|" \
    -e "s|^lurk-servers *=.*|lurk-servers = https://127.0.0.1:$KS_PORT|" \
    -e "s|/etc/lurk/|$KS_DIR/|g" \
    "$CONF/openssl-lurk.cnf" >"$OSSL"
check "openssl-lurk.cnf: module, servers, credentials substituted" \
    grep -q "^module = $LURK_PROVIDER" "$OSSL"
list_providers() {
    OPENSSL_CONF=$OSSL openssl list -providers >"$WEB_WORK/providers.out" 2>&1 || return 1
    cat "$WEB_WORK/providers.out"
    # "  lurk" then "    name: ..." ... "    status: active"
    awk '/^  [a-z]/ {p=$1} p == "lurk" && /status: active/ {found=1} END {exit !found}' \
        "$WEB_WORK/providers.out" \
        && grep -q '^  default' "$WEB_WORK/providers.out"
}
check "openssl-lurk.cnf: openssl list -providers shows default and lurk active" list_providers
pubkey_via_ref() {
    # the provider decodes the key reference (no network) and exports the public key
    OPENSSL_CONF=$OSSL openssl pkey -in "$KS_DIR/p256.key" -pubout >"$WEB_WORK/pub.pem" \
        && openssl x509 -in "$KS_DIR/p256.crt" -pubkey -noout | cmp - "$WEB_WORK/pub.pem"
}
check "openssl-lurk.cnf: openssl pkey reads a key reference (public key = certificate's)" \
    pubkey_via_ref

# ---- nginx-lurk.conf --------------------------------------------------------
if command -v nginx >/dev/null && [ "$(id -u)" -eq 0 ]; then
    NGX=$WEB_WORK/nginx
    mkdir -p "$NGX/logs" "$NGX/html" "$NGX/tls" && chmod 0755 "$NGX" "$NGX/html"
    echo "lurk ok conf" >"$NGX/html/index.html"
    chmod 0644 "$NGX/html/index.html"
    cp "$KS_DIR/p256.crt" "$NGX/tls/site.crt"
    cp "$KS_DIR/p256.key" "$NGX/tls/site.lurk.key"
    P443=$(web_free_port)
    P80=$(web_free_port)
    sed -e "s|listen 443 ssl;|listen 127.0.0.1:$P443 ssl;|" \
        -e "s|listen 80;|listen 127.0.0.1:$P80;|" \
        -e '/listen \[::\]/d' \
        -e "s|/run/nginx.pid|$NGX/logs/nginx.pid|" \
        -e "s|/var/log/nginx/|$NGX/logs/|g" \
        -e "s|/etc/nginx/tls/|$NGX/tls/|g" \
        -e "s|/var/www/html|$NGX/html|" \
        -e 's|^worker_processes auto;|worker_processes 2;|' \
        "$CONF/nginx-lurk.conf" >"$NGX/nginx.conf"
    check "nginx-lurk.conf: nginx -t" \
        env OPENSSL_CONF="$OSSL" nginx -t -p "$NGX" -c "$NGX/nginx.conf"
    OPENSSL_CONF=$OSSL nginx -p "$NGX" -c "$NGX/nginx.conf" -g 'daemon off;' \
        >"$WEB_WORK/nginx.out" 2>&1 &
    NGX_PID=$!
    web_track "$NGX_PID"
    if web_wait_port "$P443"; then
        s0=$(web_audit_count Sign)
        check "nginx-lurk.conf: HTTPS with the key reference" bash -c "
            curl -sS --max-time 10 --cacert '$KS_DIR/ca.crt' \
                --resolve localhost:$P443:127.0.0.1 https://localhost:$P443/ | grep -q 'lurk ok conf'"
        web_audit_wait Sign $((s0 + 1))
        check "nginx-lurk.conf: the handshake was signed by the key server" \
            test "$(web_audit_count Sign)" -gt "$s0"
        check "nginx-lurk.conf: HTTP redirects to HTTPS" bash -c "
            curl -sS -o /dev/null -w '%{http_code}' --max-time 5 http://127.0.0.1:$P80/ | grep -q 301"
        check "nginx-lurk.conf: workers run as www-data" bash -c "
            for w in $(web_children "$NGX_PID" | tr '\n' ' '); do
                grep -q \"^Uid:.$(id -u www-data)\" /proc/\$w/status || exit 1
            done"
    else
        fail "nginx-lurk.conf: nginx starts" "$NGX/logs/error.log"
    fi
    web_stop_pid "$NGX_PID" QUIT
else
    web_log "nginx-lurk.conf: not tested (no nginx or not root)"
fi

# ---- haproxy-lurk.cfg -------------------------------------------------------
if command -v haproxy >/dev/null && [ "$(id -u)" -eq 0 ]; then
    HA=$WEB_WORK/haproxy
    mkdir -p "$HA/certs" "$HA/www" && chmod 0755 "$HA" "$HA/certs" "$HA/www"
    cp "$KS_DIR/rsa2048.crt" "$HA/certs/site.pem"
    cp "$KS_DIR/rsa2048.key" "$HA/certs/site.pem.key"
    echo "lurk ok backend" >"$HA/www/index.html"
    chmod 0644 "$HA/www/index.html"
    P443=$(web_free_port)
    P80=$(web_free_port)
    PB=$(web_free_port)
    (cd "$HA/www" && exec python3 -m http.server --bind 127.0.0.1 "$PB") \
        >"$WEB_WORK/backend.out" 2>&1 &
    web_track $!
    sed -e "s|^\( *log\) /dev/log local0|\1 stderr format raw daemon|" \
        -e "s|/run/haproxy/admin.sock|$HA/admin.sock|" \
        -e "s|bind :443 |bind 127.0.0.1:$P443 |" \
        -e "s|bind :80$|bind 127.0.0.1:$P80|" \
        -e "s|/etc/haproxy/certs/|$HA/certs/|g" \
        -e "s|127.0.0.1:8080|127.0.0.1:$PB|" \
        "$CONF/haproxy-lurk.cfg" >"$HA/haproxy.cfg"
    check "haproxy-lurk.cfg: haproxy -c" env OPENSSL_CONF="$OSSL" haproxy -c -f "$HA/haproxy.cfg"
    OPENSSL_CONF=$OSSL haproxy -W -f "$HA/haproxy.cfg" >"$WEB_WORK/haproxy.out" 2>&1 &
    HA_PID=$!
    web_track "$HA_PID"
    if web_wait_port "$P443" && web_wait_port "$PB"; then
        s0=$(web_audit_count Sign)
        for v in 1.3 1.2; do
            check "haproxy-lurk.cfg: HTTPS TLS $v through to the backend" bash -c "
                curl -sS --max-time 10 --tlsv$v --tls-max $v --cacert '$KS_DIR/ca.crt' \
                    --resolve localhost:$P443:127.0.0.1 https://localhost:$P443/ \
                    | grep -q 'lurk ok backend'"
        done
        web_audit_wait Sign $((s0 + 2))
        check "haproxy-lurk.cfg: both handshakes signed by the key server" \
            test "$(web_audit_count Sign)" -eq $((s0 + 2))
        check "haproxy-lurk.cfg: HTTP redirects to HTTPS" bash -c "
            curl -sS -o /dev/null -w '%{http_code}' --max-time 5 http://127.0.0.1:$P80/ | grep -q 302"
    else
        fail "haproxy-lurk.cfg: haproxy starts" "$WEB_WORK/haproxy.out"
    fi
    web_stop_pid "$HA_PID"
else
    web_log "haproxy-lurk.cfg: not tested (no haproxy or not root)"
fi

# ---- lurk-keyserver.cnf -----------------------------------------------------
# The example names files relative to its own directory (server.crt,
# server.key, ca.crt, keys/site-rsa.pem, keys/site-ec.pem) and absolute
# /var/log/lurk, /run/lurk paths: a copy of the dev PKI provides the files.
KSC=$WEB_WORK/etc-lurk
mkdir -p "$KSC/keys"
cp "$KS_DIR/server.crt" "$KS_DIR/server.key" "$KS_DIR/ca.crt" "$KSC/"
cp "$KS_DIR/keys/rsa2048.pem" "$KSC/keys/site-rsa.pem"
cp "$KS_DIR/keys/p256.pem" "$KSC/keys/site-ec.pem"
sed -e "s|/etc/lurk/|$KSC/|g" -e "s|/var/log/lurk/|$KSC/|g" -e "s|/run/lurk/|$KSC/|g" \
    -e "s|/var/lib/lurk/|$KSC/|g" \
    "$CONF/lurk-keyserver.cnf" >"$KSC/lurk-keyserver.cnf"
check "lurk-keyserver.cnf: lurk-keyserver --check accepts it" \
    "$LURK_KEYSERVER" --config "$KSC/lurk-keyserver.cnf" --check
list_site_keys() {
    "$LURK_KEYSERVER" --config "$KSC/lurk-keyserver.cnf" --list-keys >"$KSC/list.out" 2>&1
    cat "$KSC/list.out"
    awk '$1 == "site-rsa" && $3 == "RSA" && $5 == "tls-server" {r=1}
         $1 == "site-ec" && $3 == "EC" && $5 == "tls-server" {e=1}
         END {exit !(r && e)}' "$KSC/list.out"
}
check "lurk-keyserver.cnf: --list-keys shows site-rsa and site-ec (tls-server)" list_site_keys
broken_ks_conf() {
    sed -e 's|^\( *tls_cert *=\).*|\1 /nonexistent/server.crt|' "$KSC/lurk-keyserver.cnf" \
        >"$KSC/broken.cnf"
    ! "$LURK_KEYSERVER" --config "$KSC/broken.cnf" --check >"$KSC/broken.out" 2>&1 \
        && grep -q /nonexistent/server.crt "$KSC/broken.out"
}
check "lurk-keyserver.cnf: --check refuses a missing tls_cert and names it" broken_ks_conf
# A key setting the example documents, with a value it does not take, and an
# RSA-PSS key (id-RSASSA-PSS), which lurk does not serve: both named.
bad_legacy_digests() {
    sed -e 's|^#\{0,1\}legacy_digests *=.*|legacy_digests = md5|' "$KSC/lurk-keyserver.cnf" \
        >"$KSC/broken.cnf"
    ! "$LURK_KEYSERVER" --config "$KSC/broken.cnf" --check >"$KSC/broken.out" 2>&1 \
        && grep -q "legacy_digests: 'md5' is not a list of sha1, sha224" "$KSC/broken.out"
}
check "lurk-keyserver.cnf: --check refuses legacy_digests = md5 and names the setting" \
    bad_legacy_digests
rsa_pss_key() {
    env -u OPENSSL_CONF -u OPENSSL_MODULES openssl genpkey -algorithm RSA-PSS \
        -pkeyopt rsa_keygen_bits:2048 -pkeyopt rsa_pss_keygen_md:sha256 \
        -out "$KSC/keys/site-pss.pem" 2>/dev/null || return 1
    sed -e 's|keys/site-ec.pem|keys/site-pss.pem|' "$KSC/lurk-keyserver.cnf" >"$KSC/broken.cnf"
    ! "$LURK_KEYSERVER" --config "$KSC/broken.cnf" --check >"$KSC/broken.out" 2>&1 \
        && grep -q "RSA-PSS keys (id-RSASSA-PSS) are not served; use an RSA key" \
            "$KSC/broken.out"
}
check "lurk-keyserver.cnf: --check refuses an RSA-PSS key with the way out" rsa_pss_key
# --check also looks at what serving needs: the listen address free, the
# audit log writable.
busy_port_check() {
    local port pid rc=1
    port=$(web_free_port)
    sed -e "s|^listen *=.*|listen = 127.0.0.1:$port|" "$KSC/lurk-keyserver.cnf" >"$KSC/busy.cnf"
    python3 -c 'import socket,sys,time; s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1]))); s.listen(); time.sleep(30)' "$port" &
    pid=$!
    web_track "$pid"
    web_wait_port "$port" && ! "$LURK_KEYSERVER" --config "$KSC/busy.cnf" --check \
        >"$KSC/busy.out" 2>&1 && grep -q "127.0.0.1:$port.*in use.*already running" "$KSC/busy.out" \
        && rc=0
    web_stop_pid "$pid"
    return $rc
}
check "lurk-keyserver.cnf: --check names a listen address in use" busy_port_check
audit_dir_check() {
    sed -e "s|^audit_log *=.*|audit_log = /proc/lurk-nowhere/audit.log|" \
        "$KSC/lurk-keyserver.cnf" >"$KSC/audit.cnf"
    ! "$LURK_KEYSERVER" --config "$KSC/audit.cnf" --check >"$KSC/audit.out" 2>&1 \
        && grep -q "audit_log /proc/lurk-nowhere/audit.log: cannot write it" "$KSC/audit.out"
}
check "lurk-keyserver.cnf: --check names an audit log it cannot write" audit_dir_check
serve_example() {
    local pid port i rc=1
    rm -f "$KSC/port"
    "$LURK_KEYSERVER" --config "$KSC/lurk-keyserver.cnf" --listen 127.0.0.1:0 \
        --port-file "$KSC/port" >"$KSC/serve.log" 2>&1 &
    pid=$!
    web_track "$pid"
    for i in $(seq 1 100); do
        [ -s "$KSC/port" ] && break
        sleep 0.1
    done
    port=$(cat "$KSC/port" 2>/dev/null)
    if [ -n "$port" ]; then
        "$LURK_CLI" --conf "$WEB_OSSL_CNF" --server "https://127.0.0.1:$port" ping && rc=0
    fi
    web_stop_pid "$pid"
    cat "$KSC/serve.log"
    return $rc
}
check "lurk-keyserver.cnf: serves (lurk ping over mutual TLS)" serve_example

# ---- lurk-keyserver.service -------------------------------------------------
UNIT_DIR=$WEB_WORK/unit
mkdir -p "$UNIT_DIR"
sed -e "s|/usr/sbin/lurk-keyserver|$LURK_KEYSERVER|g" "$CONF/lurk-keyserver.service" \
    >"$UNIT_DIR/lurk-keyserver.service"
unit_required_keys() {
    local k f=$CONF/lurk-keyserver.service
    for k in 'User=lurk' 'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' \
        'NoNewPrivileges=yes' 'CapabilityBoundingSet=' \
        'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' 'MemoryDenyWriteExecute=yes' \
        'LockPersonality=yes' 'SystemCallFilter=@system-service' 'StateDirectory=lurk' \
        'LogsDirectory=lurk' 'ConfigurationDirectory=lurk' \
        'ExecReload=/bin/kill -HUP $MAINPID'; do
        grep -qxF "$k" "$f" || { echo "missing: $k"; return 1; }
    done
}
check "lurk-keyserver.service: hardening keys present" unit_required_keys
if command -v systemd-analyze >/dev/null; then
    verify_unit() {
        systemd-analyze verify "$UNIT_DIR/lurk-keyserver.service" >"$WEB_WORK/verify.out" 2>&1
        local rc=$?
        cat "$WEB_WORK/verify.out"
        # unknown keys and bad values are only warnings: treat them as errors
        [ "$rc" -eq 0 ] && ! grep -qiE 'unknown|ignoring|invalid|failed' "$WEB_WORK/verify.out"
    }
    check "lurk-keyserver.service: systemd-analyze verify" verify_unit
    exposure() {
        systemd-analyze security --offline=true "$UNIT_DIR/lurk-keyserver.service" \
            >"$WEB_WORK/security.out" 2>&1 || true
        local e
        e=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$WEB_WORK/security.out")
        echo "exposure ${e:-?}"
        [ -n "$e" ] && awk -v e="$e" 'BEGIN {exit !(e <= 2.0)}'
    }
    if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
        check "lurk-keyserver.service: systemd-analyze security exposure <= 2.0" exposure
    fi
else
    unit_syntax() {
        awk '/^[[:space:]]*(#|$)/ {next}
             /^\[(Unit|Service|Install)\]$/ {next}
             /^[A-Za-z]+=/ {next}
             {print "bad line " NR ": " $0; bad=1}
             END {exit bad}' "$CONF/lurk-keyserver.service"
    }
    check "lurk-keyserver.service: key=value syntax" unit_syntax
fi

web_finish
