# SPDX-License-Identifier: Apache-2.0
# prov_env.sh - sourced by the provider shell tests: a throwaway PKI, a key
# server holding one key per policy and type, key reference files for all of
# them and an openssl.cnf that activates default + the built lurk.so.
#
#   pv_setup DIR    make everything under DIR and start the key server
#                   (127.0.0.1, port 0, read back from --port-file)
#   pv_stop         stop the key server (by pid)
#   pv_free_port    print a free loopback port
#
# After pv_setup: PV_DIR, PV_PORT, PV_KS_PID, OPENSSL_CONF (exported),
# DIR/NAME.key (key reference), DIR/keys/NAME.pem (the private key, server
# side, used here only to make certificates and to cross-check), DIR/NAME.crt
# (tls-server keys), DIR/NAME.id (key id), DIR/audit.log.
#   rsa2048 p256 p384   policy tls-server
#   rsasign ecsign ed25519   policy sign
#   rsadec              policy decrypt
#   ecagree             policy agree

: "${LURK_KEYSERVER:?}" "${LURK_CLI:?}" "${LURK_PROVIDER:?}"
PV_KEYS="rsa2048:RSA:2048:tls-server p256:EC:P-256:tls-server p384:EC:P-384:tls-server
rsasign:RSA:2048:sign ecsign:EC:P-256:sign ed25519:ED25519::sign
rsadec:RSA:2048:decrypt ecagree:EC:P-256:agree"

pv_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

pv_genkey() { # out type param
    case $2 in
    RSA) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:$3 -out "$1" 2>/dev/null ;;
    EC) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:$3 -out "$1" 2>/dev/null ;;
    *) openssl genpkey -algorithm "$2" -out "$1" 2>/dev/null ;;
    esac
}

pv_cert() { # name key subj ext
    openssl req -new -key "$2" -subj "$3" -out "$PV_DIR/$1.csr" 2>/dev/null &&
        printf '%s\n' "$4" > "$PV_DIR/$1.ext" &&
        openssl x509 -req -in "$PV_DIR/$1.csr" -CA "$PV_DIR/ca.crt" -CAkey "$PV_DIR/ca.key" \
            -CAcreateserial -days 2 -extfile "$PV_DIR/$1.ext" -out "$PV_DIR/$1.crt" 2>/dev/null
}

pv_setup() {
    PV_DIR=$1
    mkdir -p "$PV_DIR/keys" || return 1
    (
        unset OPENSSL_CONF
        set -e
        cd "$PV_DIR"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
            -out ca.crt -subj /CN=lurk-test-ca -days 2 \
            -addext basicConstraints=critical,CA:TRUE -addext keyUsage=keyCertSign 2>/dev/null
        pv_genkey server.key EC P-256
        pv_cert server server.key /CN=localhost "subjectAltName=DNS:localhost,IP:127.0.0.1"
        pv_genkey client.key EC P-256
        pv_cert client client.key /CN=web1 "extendedKeyUsage=clientAuth"
        {
            printf '[keyserver]\nlisten = 127.0.0.1:0\ntls_cert = server.crt\n'
            printf 'tls_key = server.key\nclient_ca = ca.crt\nthreads = 2\n'
            printf 'audit_log = audit.log\nkeys = keys_sect\n[keys_sect]\n'
            for k in $PV_KEYS; do printf '%s = k_%s\n' "${k%%:*}" "${k%%:*}"; done
            for k in $PV_KEYS; do
                IFS=: read -r n t p pol <<EOT
$k
EOT
                printf '[k_%s]\nfile = keys/%s.pem\npolicy = %s\n' "$n" "$n" "$pol"
            done
        } > keyserver.cnf
        for k in $PV_KEYS; do
            IFS=: read -r n t p pol <<EOT
$k
EOT
            pv_genkey "keys/$n.pem" "$t" "$p"
            if [ "$pol" = tls-server ]; then
                pv_cert "$n" "keys/$n.pem" /CN=localhost "subjectAltName=DNS:localhost,IP:127.0.0.1"
            fi
        done
    ) || return 1
    "$LURK_KEYSERVER" --config "$PV_DIR/keyserver.cnf" --port-file "$PV_DIR/port" \
        > "$PV_DIR/keyserver.log" 2>&1 &
    PV_KS_PID=$!
    for _ in $(seq 100); do
        [ -s "$PV_DIR/port" ] && break
        sleep 0.1
    done
    [ -s "$PV_DIR/port" ] || { cat "$PV_DIR/keyserver.log"; return 1; }
    PV_PORT=$(cat "$PV_DIR/port")
    cat > "$PV_DIR/openssl.cnf" <<EOF2
openssl_conf = openssl_init
config_diagnostics = 1
[openssl_init]
providers = provider_sect
alg_section = evp_properties
[provider_sect]
default = default_sect
lurk = lurk_sect
[default_sect]
activate = 1
[lurk_sect]
module = $LURK_PROVIDER
activate = 1
lurk-servers = https://127.0.0.1:$PV_PORT
lurk-ca = $PV_DIR/ca.crt
lurk-cert = $PV_DIR/client.crt
lurk-key = $PV_DIR/client.key
lurk-connect-timeout = 1000
lurk-timeout = 3000
[evp_properties]
default_properties = ?provider=default
EOF2
    export OPENSSL_CONF=$PV_DIR/openssl.cnf
    "$LURK_KEYSERVER" --config "$PV_DIR/keyserver.cnf" --list-keys 2>/dev/null |
        while read -r n id _; do
            printf '%s\n' "$id" > "$PV_DIR/$n.id"
            "$LURK_CLI" keyref "$id" -o "$PV_DIR/$n.key" || return 1
        done
}

pv_stop() {
    if [ -n "${PV_KS_PID:-}" ]; then
        kill "$PV_KS_PID" 2>/dev/null
        wait "$PV_KS_PID" 2>/dev/null
        PV_KS_PID=
    fi
}
