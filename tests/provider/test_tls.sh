#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test_tls.sh - openssl s_server with lurk keys, checked by openssl s_client
# (-verify_return_error) and gnutls-cli: TLS 1.3 RSA-PSS, TLS 1.2 ECDHE-RSA
# with PKCS#1 and with PSS, TLS 1.2 static RSA key exchange, P-256 and P-384
# ECDSA, TLS 1.3 Ed25519; each handshake must show up as a remote operation
# in the key server's audit log.  The key server, its keys and certificates
# come from tests/lib/keyserver.sh (key references made with `lurk keyref`).
# Every s_server runs on 127.0.0.1, on a port it picks itself, and is killed
# by pid.
set -u
. "$(dirname "$0")/../lib/keyserver.sh"

FAILS=0
T=$(mktemp -d /tmp/lurk-prov-tls-XXXXXX)
SRV=
ks_on_exit '[ -n "$SRV" ] && kill $SRV 2>/dev/null; [ $FAILS -eq 0 ] && rm -rf "$T"'
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }

{ ks_make_pki "$T" && ks_start "$T" && ks_keyrefs; } > "$T/setup.log" 2>&1 ||
    { cat "$T/setup.log"; echo "setup failed"; exit 1; }
export OPENSSL_CONF=$T/openssl.cnf
cd "$T" || exit 1

# start_server KEY ARGS... : s_server in the background on port 0; waits for
# "ACCEPT 127.0.0.1:PORT" and sets PORT.
start_server() {
    k=$1; shift
    PORT=
    openssl s_server -accept 127.0.0.1:0 -cert $k.crt -key $k.key -www "$@" \
        > s_server.out 2> s_server.err < /dev/null &
    SRV=$!
    for _ in $(seq 50); do
        PORT=$(sed -n 's/^ACCEPT 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' s_server.out 2>/dev/null)
        [ -n "$PORT" ] && return 0
        sleep 0.1
    done
    cat s_server.err
    return 1
}
stop_server() {
    kill $SRV 2>/dev/null
    wait $SRV 2>/dev/null
    SRV=
}

# handshake NAME KEY AUDIT-TEXT S_SERVER-ARGS -- S_CLIENT-ARGS -- GNUTLS-PRIORITY
handshake() {
    name=$1 key=$2 want=$3; shift 3
    sargs=
    while [ "$1" != -- ]; do sargs="$sargs $1"; shift; done
    shift
    cargs=
    while [ "$1" != -- ]; do cargs="$cargs $1"; shift; done
    shift
    prio=$1
    before=$(ks_audit_count '"result":"ok"')
    # shellcheck disable=SC2086
    if ! start_server $key $sargs; then bad "$name: s_server did not start"; return; fi
    # shellcheck disable=SC2086
    if printf 'GET / HTTP/1.0\r\n\r\n' | timeout 15 openssl s_client -connect 127.0.0.1:$PORT \
        -servername localhost -CAfile ca.crt -verify_return_error $cargs -provider default \
        > s_client.out 2>&1 && grep -q 'Verify return code: 0' s_client.out; then
        ok "$name: s_client ($(grep -m1 -oE '^New, TLSv[0-9.]+' s_client.out | cut -c6-))"
    else
        bad "$name: s_client"; tail -5 s_client.out; tail -5 s_server.err
    fi
    if printf 'GET / HTTP/1.0\r\n\r\n' | timeout 15 gnutls-cli --x509cafile=ca.crt \
        --priority="$prio" -p $PORT 127.0.0.1 > gnutls.out 2>&1 \
        && grep -q 'Handshake was completed' gnutls.out; then
        ok "$name: gnutls-cli"
    else
        bad "$name: gnutls-cli"; tail -5 gnutls.out
    fi
    stop_server
    ks_audit_wait '"result":"ok"' $((before + 2)) 2>/dev/null
    after=$(ks_audit_count '"result":"ok"')
    if [ "$after" -ge $((before + 2)) ] && tail -n $((after - before)) audit.log | grep -q "$want"; then
        ok "$name: audit log shows the remote operation ($want)"
    else
        bad "$name: audit log lacks '$want'"
    fi
}

G13="NORMAL:-VERS-ALL:+VERS-TLS1.3"
G12="NORMAL:-VERS-ALL:+VERS-TLS1.2"
handshake "RSA-2048 TLS 1.3 (PSS)" rsa2048 'rsa-pss/sha256' -- -tls1_3 -- "$G13"
handshake "RSA-2048 TLS 1.2 ECDHE-RSA PKCS#1" rsa2048 'rsa-pkcs1/sha256' \
    -sigalgs RSA+SHA256 -- -tls1_2 -sigalgs RSA+SHA256 -- \
    "$G12:-SIGN-ALL:+SIGN-RSA-SHA256:-KX-ALL:+ECDHE-RSA"
handshake "RSA-2048 TLS 1.2 ECDHE-RSA PSS" rsa2048 'rsa-pss/sha256' \
    -sigalgs RSA-PSS+SHA256 -- -tls1_2 -sigalgs RSA-PSS+SHA256 -- \
    "$G12:-SIGN-ALL:+SIGN-RSA-PSS-RSAE-SHA256:-KX-ALL:+ECDHE-RSA"
handshake "RSA-2048 TLS 1.2 static RSA" rsa2048 'tls-premaster' \
    -cipher AES128-GCM-SHA256 -- -tls1_2 -cipher AES128-GCM-SHA256 -- \
    "$G12:-KX-ALL:+RSA"
handshake "P-256 TLS 1.3 ECDSA" p256 'ecdsa/sha256' -- -tls1_3 -- "$G13"
handshake "P-384 TLS 1.3 ECDSA" p384 'ecdsa/sha384' -- -tls1_3 -- "$G13"
handshake "P-256 TLS 1.2 ECDHE-ECDSA" p256 'ecdsa/sha256' -- -tls1_2 -- "$G12"
handshake "Ed25519 TLS 1.3" ed25519 '"alg":"ed25519"' -- -tls1_3 -- "$G13"

echo "test_tls: $FAILS failure(s)"
[ $FAILS -eq 0 ]
