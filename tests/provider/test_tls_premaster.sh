#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test_tls_premaster.sh - TLS 1.2 static RSA (AES128-GCM-SHA256) through
# cke_proxy.py, which rewrites the client's encrypted premaster: openssl
# s_server with the lurk key must answer what it answers with the key file
# (issue 9).  With a key file, OpenSSL 3.0 fails a ciphertext longer than the
# modulus or not below it (alert decrypt_error, 51) and carries on with a
# random premaster otherwise (bad padding, one byte short: the client's
# Finished then fails, bad_record_mac, 20).  Every server runs on 127.0.0.1
# and is stopped by pid.
set -u
. "$(dirname "$0")/../lib/keyserver.sh"
PROXY=$(cd "$(dirname "$0")" && pwd)/cke_proxy.py

FAILS=0
T=$(mktemp -d /tmp/lurk-prov-cke-XXXXXX)
SRV=
PRX=
ks_on_exit '[ -n "$SRV" ] && kill $SRV 2>/dev/null; [ -n "$PRX" ] && kill $PRX 2>/dev/null;
            [ $FAILS -eq 0 ] && rm -rf "$T"'
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }

{ ks_make_pki "$T" && ks_start "$T" && ks_keyrefs rsa2048; } > "$T/setup.log" 2>&1 ||
    { cat "$T/setup.log"; echo "setup failed"; exit 1; }
export OPENSSL_CONF=$T/openssl.cnf
cd "$T" || exit 1

# wait_for FILE PATTERN: the first line of FILE matching the sed pattern's group.
wait_for() {
    for _ in $(seq 100); do
        v=$(sed -n "$2" "$1" 2>/dev/null | head -1)
        [ -n "$v" ] && { echo "$v"; return 0; }
        sleep 0.1
    done
    return 1
}

# answer KEYFILE MODE: the server's answer ("alert N", "ccs") to one handshake.
answer() {
    openssl s_server -accept 127.0.0.1:0 -cert rsa2048.crt -key "$1" -www -tls1_2 \
        -cipher AES128-GCM-SHA256 > s_server.out 2> s_server.err < /dev/null &
    SRV=$!
    port=$(wait_for s_server.out 's/^ACCEPT 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p') ||
        { echo "no s_server"; cat s_server.err >&2; kill $SRV; SRV=; return; }
    python3 "$PROXY" "$2" "$port" > proxy.out 2> proxy.err &
    PRX=$!
    pport=$(wait_for proxy.out 's/^PORT \([0-9][0-9]*\)$/\1/p') ||
        { echo "no proxy"; cat proxy.err >&2; kill $SRV $PRX; SRV= PRX=; return; }
    timeout 15 openssl s_client -connect 127.0.0.1:$pport -tls1_2 -cipher AES128-GCM-SHA256 \
        -provider default < /dev/null > s_client.out 2>&1
    wait $PRX 2>/dev/null
    PRX=
    kill $SRV 2>/dev/null
    wait $SRV 2>/dev/null
    SRV=
    sed -n 2p proxy.out
}

for c in "keep ccs" "badpad alert 20" "short alert 20" "long alert 51" "ge-n alert 51"; do
    mode=${c%% *} want=${c#* }
    file=$(answer keys/rsa2048.pem "$mode")
    lurk=$(answer rsa2048.key "$mode")
    if [ "$file" = "$want" ] && [ "$lurk" = "$file" ]; then
        ok "premaster $mode: key file and lurk both answer $lurk"
    else
        bad "premaster $mode: key file '$file' (want '$want'), lurk '$lurk'"
    fi
done
[ $FAILS -eq 0 ] && echo "all passed" || echo "$FAILS failed"
exit $((FAILS != 0))
