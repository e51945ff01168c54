#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# verify.sh - lurk.so checks the signatures a key server returns.
#
# tests/provider/hostile_keyserver answers every Sign with a valid
# signature by ANOTHER key of the same type (Hello, Ping, PublicKey
# honestly).  It is put first in lurk-servers, the real key server second.
# The provider must refuse the hostile answer (LURK_ERR_BAD_SIGNATURE: "the
# signature from the key server does not verify" in the OpenSSL error queue)
# and move on to the real server; what it checks is set by lurk-verify:
#   rsa (default)  every RSA signature; ECDSA/Ed25519 signatures over TLS
#                  handshake inputs are passed through: the TLS client
#                  verifies them, and a bad one fails that handshake only
#   all            every signature
#   none           no tls-server signature
# and every signature of a key whose policy is not tls-server, always.
# TLS keys are used through openssl s_server (lurk) + s_client (default
# provider, -verify_return_error); the `sign`-policy key through openssl
# dgst -sign, verified with the default provider.
#
# The checks that need lurk-verify and the failover on a bad signature
# (`want` below) print PENDING instead of FAIL with LURK_TEST_VERIFY=0 (for
# a lurk.so without them).
set -u
. "$(dirname "$0")/../lib/keyserver.sh"

HOSTILE=${LURK_BUILD_ROOT:?}/tests/provider/hostile_keyserver
FAILS=0
PASSES=0
PENDING=0
T=$(mktemp -d /tmp/lurk-prov-verify-XXXXXX)
SRV=
HK_PID=
ks_on_exit '[ -n "$SRV" ] && kill $SRV 2>/dev/null; [ -n "$HK_PID" ] && kill $HK_PID 2>/dev/null; [ $FAILS -eq 0 ] && [ "${LURK_KEEP:-0}" != 1 ] && rm -rf "$T"'
ok() { echo "ok   $*"; PASSES=$((PASSES + 1)); }
bad() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }

# lurk.so has lurk-verify since 8d8230c: every check counts unless
# LURK_TEST_VERIFY=0.
VERIFY=${LURK_TEST_VERIFY:-1}
grep -aq 'lurk-verify' "$LURK_PROVIDER" 2>/dev/null ||
    echo "verify: lurk.so does not know the lurk-verify setting"
[ "$VERIFY" = 1 ] || echo "verify: LURK_TEST_VERIFY=0: the lurk-verify checks are PENDING"

# want NAME RESULT [DETAIL-FILE]: RESULT 0 passes; otherwise a failure,
# or PENDING when the check waits on lurk-verify.
want() {
    if [ "$2" = 0 ]; then
        ok "$1"
    elif [ "$VERIFY" = 1 ]; then
        bad "$1"
        [ -n "${3:-}" ] && [ -f "$3" ] && tail -n 8 "$3" | sed -e 's/^/     | /'
    else
        PENDING=$((PENDING + 1))
        echo "PENDING $1 (waits on lurk-verify / failover on a bad signature)"
    fi
}
# must NAME RESULT [DETAIL-FILE]: holds with or without lurk-verify.
must() {
    if [ "$2" = 0 ]; then
        ok "$1"
    else
        bad "$1"
        [ -n "${3:-}" ] && [ -f "$3" ] && tail -n 8 "$3" | sed -e 's/^/     | /'
    fi
}

[ -x "$HOSTILE" ] || { echo "not built: $HOSTILE"; exit 77; }
{ ks_make_pki "$T" && ks_start "$T" && ks_keyrefs rsa2048 p256 p256-sign; } >"$T/setup.log" 2>&1 ||
    { cat "$T/setup.log"; echo "setup failed"; exit 1; }
cd "$T" || exit 1
REAL=$KS_URL
_ks_openssl pkey -in keys/p256-sign.pem -pubout -out p256-sign.pub 2>/dev/null || exit 1

rm -f hostile.port
"$HOSTILE" --cert server.crt --key server.key --ca ca.crt \
    --pub rsa2048.crt:tls-server --pub p256.crt:tls-server --pub p256-sign.pub:sign \
    --port-file hostile.port --log hostile.log 2>hostile.err &
HK_PID=$!
for _ in $(seq 600); do
    [ -s hostile.port ] && break
    sleep 0.05
done
[ -s hostile.port ] || { cat hostile.err; echo "hostile key server did not start"; exit 1; }
HOSTILE_URL=https://127.0.0.1:$(cat hostile.port)
touch hostile.log
echo "verify: real key server $REAL, hostile key server $HOSTILE_URL"

# cnf NAME SERVERS [VERIFY]: openssl.cnf with these lurk-servers and lurk-verify.
cnf() {
    sed -e "s|^lurk-servers = .*|lurk-servers = $2|" \
        -e "s|^\(\[lurk_sect\]\)$|\1${3:+\nlurk-verify = $3}|" openssl.cnf >"$1.cnf"
}
cnf hostile-only "$HOSTILE_URL"
cnf both "$HOSTILE_URL $REAL"
cnf both-all "$HOSTILE_URL $REAL" all
cnf hostile-all "$HOSTILE_URL" all
cnf both-none "$HOSTILE_URL $REAL" none
cnf real-all "$REAL" all
grep -q '^lurk-verify = all' both-all.cnf || { echo "cnf: no lurk-verify line"; exit 1; }

REASON='signature from the key server does not verify|bad.signature'
hostile_signs() { grep -c "^Sign $(cat "$1.id") " hostile.log; }
real_signs() { ks_audit_count "\"Sign\".*$(cat "$1.id")"; }

# handshake CNF KEY S_CLIENT-ARGS...: s_server (lurk, -naccept 1) and one
# s_client handshake (default provider, chain and name verified).  Leaves
# s_server.err / s_client.out; returns s_client's verdict.
handshake() {
    local conf=$1 key=$2 port="" rc
    shift 2
    OPENSSL_CONF=$T/$conf.cnf openssl s_server -accept 127.0.0.1:0 -naccept 1 \
        -cert "$key.crt" -key "$key.key" -www >s_server.out 2>s_server.err </dev/null &
    SRV=$!
    for _ in $(seq 600); do # at most 30 s: a loaded CI machine starts openssl slowly
        port=$(sed -n 's/^ACCEPT 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' s_server.out 2>/dev/null)
        [ -n "$port" ] && break
        sleep 0.05
    done
    if [ -z "$port" ]; then
        cat s_server.err
        kill "$SRV" 2>/dev/null
        SRV=
        return 2
    fi
    printf 'GET / HTTP/1.0\r\n\r\n' | timeout 15 env -u OPENSSL_CONF openssl s_client \
        -connect "127.0.0.1:$port" -servername localhost -CAfile ca.crt -verify_return_error \
        -verify_hostname localhost -ign_eof "$@" >s_client.out 2>&1
    rc=$?
    [ $rc -eq 0 ] && grep -q 'Verify return code: 0 (ok)' s_client.out && grep -q '^HTTP/1.0 200' s_client.out
    rc=$?
    for _ in $(seq 100); do
        kill -0 "$SRV" 2>/dev/null || break
        sleep 0.05
    done
    kill "$SRV" 2>/dev/null
    wait "$SRV" 2>/dev/null
    SRV=
    return $rc
}

# case_tls LABEL CNF KEY EXPECT S_CLIENT-ARGS...
#   EXPECT refused:     the provider refuses the hostile signature and, with no
#                       other server, the handshake fails with the reason
#   failover:           refused, then the real server signs: handshake ok
#   passthrough:        not checked by the provider: the client rejects it
# CHECK is `must` (holds today) or `want` (waits on lurk-verify).
case_tls() {
    local label=$1 conf=$2 key=$3 expect=$4 check=$5 h0 r0 h1 r1 hs=0 r
    shift 5
    h0=$(hostile_signs "$key")
    r0=$(real_signs "$key")
    handshake "$conf" "$key" "$@" && hs=1
    # the key server writes its audit line just after the reply
    [ $hs = 1 ] && ks_audit_wait "\"Sign\".*$(cat "$key.id")" $((r0 + 1)) >/dev/null 2>&1
    h1=$(hostile_signs "$key")
    r1=$(real_signs "$key")
    case $expect in
    refused)
        r=1
        [ $hs = 0 ] && [ $((h1 - h0)) -ge 1 ] && grep -Eq "$REASON" s_server.err && r=0
        $check "$label: hostile answer refused, error queue: $(grep -Eo -m1 "$REASON" s_server.err)" \
            $r s_server.err
        ;;
    failover)
        r=1
        [ $hs = 1 ] && [ $((h1 - h0)) -ge 1 ] && [ $((r1 - r0)) -ge 1 ] && r=0
        $check "$label: hostile answer refused, real server signed, client verified (hostile +$((h1 - h0)), real +$((r1 - r0)))" \
            $r s_client.out
        if grep -Eq "$REASON" s_server.err; then
            echo "     note: the refusal shows on s_server's stderr: $(grep -Eo -m1 "$REASON" s_server.err)"
        fi
        ;;
    passthrough)
        r=1
        [ $hs = 0 ] && [ $((h1 - h0)) -ge 1 ] && [ $((r1 - r0)) -eq 0 ] \
            && grep -qi 'bad signature' s_client.out && ! grep -Eq "$REASON" s_server.err && r=0
        $check "$label: passed through unchecked, the TLS client rejects it (bad signature)" \
            $r s_client.out
        ;;
    esac
}

# case_dgst LABEL CNF KEY EXPECT CHECK: openssl dgst -sign with the sign-policy
# key through lurk, verified with the default provider.
case_dgst() {
    local label=$1 conf=$2 key=$3 expect=$4 check=$5 h0 r0 h1 r1 signed=0 verified=0 r
    h0=$(hostile_signs "$key")
    r0=$(real_signs "$key")
    head -c 1000 /dev/urandom >msg.bin
    rm -f msg.sig
    OPENSSL_CONF=$T/$conf.cnf openssl dgst -sha256 -sign "$key.key" -out msg.sig msg.bin \
        >dgst.out 2>&1 && [ -s msg.sig ] && signed=1
    [ $signed = 1 ] && _ks_openssl dgst -sha256 -verify "$key.pub" -signature msg.sig msg.bin \
        >>dgst.out 2>&1 && verified=1
    [ $signed = 1 ] && ks_audit_wait "\"Sign\".*$(cat "$key.id")" $((r0 + 1)) >/dev/null 2>&1
    h1=$(hostile_signs "$key")
    r1=$(real_signs "$key")
    r=1
    case $expect in
    refused)
        [ $signed = 0 ] && [ $((h1 - h0)) -ge 1 ] && grep -Eq "$REASON" dgst.out && r=0
        $check "$label: hostile answer refused, error queue: $(grep -Eo -m1 "$REASON" dgst.out)" \
            $r dgst.out
        ;;
    failover)
        [ $verified = 1 ] && [ $((h1 - h0)) -ge 1 ] && [ $((r1 - r0)) -ge 1 ] && r=0
        $check "$label: hostile answer refused, real server signed, default provider verifies (hostile +$((h1 - h0)), real +$((r1 - r0)))" \
            $r dgst.out
        ;;
    esac
}

# Control: with the real server alone, everything works (lurk-verify = all).
handshake real-all rsa2048 -tls1_3
must "control: RSA-2048 TLS 1.3 handshake with the real server only" $? s_client.out
handshake real-all p256 -tls1_3
must "control: P-256 TLS 1.3 handshake with the real server only" $? s_client.out

# RSA-2048 tls-server key, default lurk-verify (rsa)
case_tls "RSA-2048 TLS 1.3, hostile server only" hostile-only rsa2048 refused must -tls1_3
case_tls "RSA-2048 TLS 1.3, hostile then real" both rsa2048 failover want -tls1_3
case_tls "RSA-2048 TLS 1.2 ECDHE PKCS#1, hostile then real" both rsa2048 failover want -tls1_2 \
    -sigalgs RSA+SHA256 -cipher ECDHE-RSA-AES128-GCM-SHA256

# P-256 tls-server key
case_tls "P-256 TLS 1.3, lurk-verify = all, hostile server only" hostile-all p256 refused must -tls1_3
case_tls "P-256 TLS 1.3, lurk-verify = all, hostile then real" both-all p256 failover want -tls1_3
case_tls "P-256 TLS 1.2 ECDHE-ECDSA, lurk-verify = all, hostile then real" both-all p256 failover \
    want -tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256
# the default does not check ECDSA over handshake inputs: s_client does
case_tls "P-256 TLS 1.3, lurk-verify default (rsa), hostile then real" both p256 passthrough want \
    -tls1_3

# lurk-verify = none: RSA over handshake inputs is not checked either
case_tls "RSA-2048 TLS 1.3, lurk-verify = none, hostile then real" both-none rsa2048 passthrough \
    want -tls1_3

# P-256 `sign`-policy key: always checked, whatever lurk-verify says
case_dgst "P-256 sign policy, default, hostile server only" hostile-only p256-sign refused must
case_dgst "P-256 sign policy, default, hostile then real" both p256-sign failover want
case_dgst "P-256 sign policy, lurk-verify = none, hostile then real" both-none p256-sign failover want

if kill -0 "$HK_PID" 2>/dev/null; then
    ok "hostile key server alive; it answered $(grep -c '^Sign .* answered with another key' hostile.log) Sign requests with another key"
else
    bad "hostile key server died"
    cat hostile.err
fi
kill "$HK_PID" 2>/dev/null
wait "$HK_PID" 2>/dev/null
HK_PID=

[ $PENDING -gt 0 ] && echo "verify: $PENDING check(s) PENDING on lurk-verify"
echo "verify: $PASSES passed, $FAILS failed"
[ $FAILS -eq 0 ]
