#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Integration tests of the client library and the `lurk` tool against a real
# lurk-keyserver over real mutual TLS on 127.0.0.1.
#
#   client.sh lib TEST_BINARY   the C test program (test_client.c)
#   client.sh cli               the `lurk` tool, checked with the openssl CLI
#   client.sh wire              raw bodies with the curl CLI (400, 413, TLS)
#
# Each run makes its own throwaway PKI with tests/lib/keyserver.sh (keys of
# every type and policy, a key reserved for another client, a rogue CA) and
# adds generic signing keys of every size.  The key server runs on port 0
# (ks_start); every process started is stopped by pid from the EXIT trap.
set -euo pipefail

mode=${1:?usage: client.sh lib|cli|wire [TEST_BINARY]}
: "${LURK_SOURCE_ROOT:?}" "${LURK_KEYSERVER:?}" "${LURK_CLI:?}"

work=$(mktemp -d "${TMPDIR:-/tmp}/lurk-itest-$mode.XXXXXX")
dir=$work/pki
extra_pidfile=$work/restarted.pid
passed=0

# shellcheck source=../lib/keyserver.sh
. "$LURK_SOURCE_ROOT/tests/lib/keyserver.sh"

# Runs from keyserver.sh's EXIT trap, which also stops every server ks_start
# started (by pid).  A server the restart test started is stopped here.
cleanup() {
    if [ -s "$extra_pidfile" ]; then
        local pid
        pid=$(cat "$extra_pidfile")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    if [ "$passed" = 1 ]; then
        rm -rf "$work"
    else
        echo "--- key server log ---"
        tail -n 40 "$dir/keyserver.log" 2>/dev/null || true
        echo "(work dir kept: $work)"
    fi
}
ks_on_exit cleanup
trap _ks_exit_trap EXIT
trap 'exit 130' INT TERM

# Plain openssl: default provider, no lurk.
ossl() { env -u OPENSSL_CONF -u OPENSSL_MODULES openssl "$@"; }

# ---- PKI and keys ------------------------------------------------------------

mkdir -p "$dir"
ks_make_pki "$dir" >"$work/make-pki.log" 2>&1 || { cat "$work/make-pki.log"; exit 1; }

# Generic signing keys of every size on top of ks_make_pki's set (NCONF
# reopens a section, so appending to keys_sect works).
extra="rsa3072-sign:RSA:3072 rsa4096-sign:RSA:4096 p384-sign:EC:P-384 p521-sign:EC:P-521"
pids=()
for e in $extra; do
    IFS=: read -r name alg param <<<"$e"
    if [ "$alg" = RSA ]; then
        ossl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:$param" -out "$dir/keys/$name.pem" 2>/dev/null &
    else
        ossl genpkey -algorithm EC -pkeyopt "ec_paramgen_curve:$param" -out "$dir/keys/$name.pem" 2>/dev/null &
    fi
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
{
    echo
    echo "[keys_sect]"
    for e in $extra; do echo "${e%%:*} = key_${e%%:*}"; done
    for e in $extra; do
        printf '\n[key_%s]\nfile = keys/%s.pem\npolicy = sign\n' "${e%%:*}" "${e%%:*}"
    done
} >>"$dir/keyserver.cnf"
if [ "$mode" = cli ]; then
    # Also plain HTTP on a unix socket (access by file permissions).
    printf '\n[keyserver]\nunix_socket = %s\n' "$work/lurk.sock" >>"$dir/keyserver.cnf"
fi
conf=$dir/keyserver.cnf
"$LURK_KEYSERVER" --config "$conf" --check >"$work/check.log" 2>&1 \
    || { cat "$work/check.log"; exit 1; }

# ---- start ------------------------------------------------------------------

ks_start "$dir" >"$work/start.log" 2>&1 || { cat "$work/start.log"; exit 1; }
port=$KS_PORT
url=$KS_URL
cnf=$dir/openssl.cnf   # the lurk provider section, written by ks_start

keyid() { "$LURK_CLI" keyid "$dir/keys/$1.pem"; }

fails=0
ok() { echo "ok $*"; }
notok() { echo "not ok $*"; fails=$((fails + 1)); }
expect() { # DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@" >"$work/out" 2>&1; then ok "$what"; else notok "$what"; sed 's/^/    /' "$work/out"; fi
}

# ---- modes ------------------------------------------------------------------

run_lib() {
    local bin=$1
    ITEST_DIR=$dir ITEST_PORT=$port ITEST_PID=$KS_PID ITEST_CONFIG=$conf \
        ITEST_PIDFILE=$extra_pidfile "$bin"
}

run_cli() {
    local lurk="$LURK_CLI --conf $cnf"
    local kid msg=$work/msg.txt sig=$work/sig.bin pub=$work/pub.pem

    printf 'a message signed through the lurk tool\n' >"$msg"

    expect "lurk hello" $lurk hello
    grep -q '^version *1\.0' "$work/out" && grep -q 'Sign' "$work/out" \
        && ok "hello prints version and transactions" || notok "hello output: $(cat "$work/out")"
    expect "lurk ping -c 3" $lurk ping -c 3
    [ "$(grep -c '^ping: [0-9.]* ms$' "$work/out")" = 3 ] \
        && ok "ping prints 3 round-trip times" || notok "ping output: $(cat "$work/out")"
    # The same through $OPENSSL_CONF and through flags only.
    "$LURK_CLI" --version | grep -q "^lurk [0-9][0-9.]* (OpenSSL 3" \
        && ok "lurk --version names the version and OpenSSL" || notok "lurk --version"
    "$LURK_KEYSERVER" --version | grep -q "^lurk-keyserver [0-9][0-9.]* (OpenSSL 3" \
        && ok "lurk-keyserver --version too" || notok "lurk-keyserver --version"
    expect "lurk ping via \$OPENSSL_CONF" env OPENSSL_CONF="$cnf" "$LURK_CLI" ping
    expect "lurk ping via flags" "$LURK_CLI" --server "$url" --ca "$dir/ca.crt" \
        --cert "$dir/client.crt" --key "$dir/client.key" ping

    # unix: servers, alone and as the failover target of a dead https:// one.
    expect "lurk ping over unix:" "$LURK_CLI" --server "unix:$work/lurk.sock" ping
    kid=$(keyid p256-sign)
    expect "sign over unix:" "$LURK_CLI" --server "unix:$work/lurk.sock" sign "$kid" \
        --alg ecdsa --in "$msg" -o "$sig"
    ossl pkey -in "$dir/keys/p256-sign.pem" -pubout -out "$pub"
    expect "openssl verifies the unix: signature" ossl dgst -sha256 -verify "$pub" \
        -signature "$sig" "$msg"
    expect "failover from a dead https:// server to unix:" "$LURK_CLI" \
        --server "https://127.0.0.1:1" --server "unix:$work/lurk.sock" --ca "$dir/ca.crt" \
        --cert "$dir/client.crt" --key "$dir/client.key" ping
    "$LURK_CLI" --server "unix:$work/missing.sock" ping >"$work/out" 2>&1 && rc=0 || rc=$?
    [ "$rc" = 1 ] && grep -q "^lurk: ping: no key server could be reached: unix:" "$work/out" \
        && ok "missing unix socket: unreachable" || notok "missing unix socket: rc=$rc $(cat "$work/out")"

    # pubkey: the same key as the local PEM.
    for name in rsa2048-sign p256-sign ed25519-sign rsa2048; do
        kid=$(keyid "$name")
        expect "pubkey $name" $lurk pubkey "$kid" -o "$pub"
        if cmp -s <(ossl pkey -pubin -in "$pub" -outform DER) \
                  <(ossl pkey -in "$dir/keys/$name.pem" -pubout -outform DER); then
            ok "pubkey $name equals the local public key"
        else
            notok "pubkey $name differs from the local public key"
        fi
        [ "$("$LURK_CLI" keyid "$pub")" = "$kid" ] && ok "keyid of the fetched $name key" \
            || notok "keyid of the fetched $name key"
    done

    # keyref: decodable, carries the id, the servers and the public key.
    kid=$(keyid rsa2048)
    expect "keyref rsa2048" $lurk keyref "$kid" -o "$work/ref.key" --server "$url" \
        --server "https://127.0.0.2:1"
    head -n1 "$work/ref.key" | grep -q -- '-----BEGIN LURK PRIVATE KEY-----' \
        && ok "keyref PEM label" || notok "keyref PEM label: $(head -n1 "$work/ref.key")"
    [ "$("$LURK_CLI" keyid "$work/ref.key")" = "$kid" ] \
        && ok "keyref decodes (lurk_keyref) to the same key id" || notok "keyref key id"
    if ossl asn1parse -in "$work/ref.key" >"$work/asn1" 2>&1; then
        grep -q "UTF8STRING *:$kid" "$work/asn1" && grep -q "UTF8STRING *:RSA" "$work/asn1" \
            && grep -q "UTF8STRING *:tls-server" "$work/asn1" \
            && grep -q "UTF8STRING *:$url" "$work/asn1" \
            && ok "openssl asn1parse: id, type, policy, servers" \
            || { notok "asn1parse content"; cat "$work/asn1"; }
    else
        notok "openssl asn1parse of the key reference"
        cat "$work/asn1"
    fi
    expect "keyref needs -o (usage error)" bash -c "$lurk keyref $kid; [ \$? = 2 ]"

    # sign, verified by openssl with the default provider.
    kid=$(keyid rsa2048-sign)
    ossl pkey -in "$dir/keys/rsa2048-sign.pem" -pubout -out "$pub"
    expect "sign rsa-pss" $lurk sign "$kid" --alg rsa-pss --digest sha256 --in "$msg" -o "$sig"
    expect "openssl dgst -verify rsa-pss" ossl dgst -sha256 -sigopt rsa_padding_mode:pss \
        -sigopt rsa_pss_saltlen:32 -verify "$pub" -signature "$sig" "$msg"
    expect "sign rsa-pkcs1 sha384" $lurk sign "$kid" --alg rsa-pkcs1 --digest sha384 \
        --in "$msg" -o "$sig"
    expect "openssl dgst -verify rsa-pkcs1" ossl dgst -sha384 -verify "$pub" -signature "$sig" "$msg"
    ossl dgst -sha256 -binary "$msg" >"$work/dig.bin"
    expect "sign rsa-pkcs1 --digest-in" $lurk sign "$kid" --alg rsa-pkcs1 --digest-in "$work/dig.bin" \
        -o "$sig"
    expect "openssl pkeyutl -verify (digest)" ossl pkeyutl -verify -pubin -inkey "$pub" \
        -in "$work/dig.bin" -sigfile "$sig" -pkeyopt digest:sha256
    # A large message is hashed locally.
    head -c 100000 /dev/urandom >"$work/big.bin"
    expect "sign a 100000-byte message" $lurk sign "$kid" --alg rsa-pss --in "$work/big.bin" -o "$sig"
    expect "openssl verifies the large message" ossl dgst -sha256 -sigopt rsa_padding_mode:pss \
        -sigopt rsa_pss_saltlen:32 -verify "$pub" -signature "$sig" "$work/big.bin"

    kid=$(keyid p256-sign)
    ossl pkey -in "$dir/keys/p256-sign.pem" -pubout -out "$pub"
    expect "sign ecdsa" $lurk sign "$kid" --alg ecdsa --in "$msg" -o "$sig"
    expect "openssl dgst -verify ecdsa" ossl dgst -sha256 -verify "$pub" -signature "$sig" "$msg"

    kid=$(keyid ed25519-sign)
    ossl pkey -in "$dir/keys/ed25519-sign.pem" -pubout -out "$pub"
    expect "sign ed25519" $lurk sign "$kid" --alg ed25519 --in "$msg" -o "$sig"
    expect "openssl pkeyutl -verify ed25519" ossl pkeyutl -verify -pubin -inkey "$pub" -rawin \
        -in "$msg" -sigfile "$sig"

    # decrypt: OAEP and premaster, encrypted by openssl.
    kid=$(keyid rsa2048-oaep)
    ossl pkey -in "$dir/keys/rsa2048-oaep.pem" -pubout -out "$pub"
    printf 'oaep secret' >"$work/pt"
    ossl pkeyutl -encrypt -pubin -inkey "$pub" -pkeyopt rsa_padding_mode:oaep \
        -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 -in "$work/pt" -out "$work/ct"
    expect "decrypt oaep" $lurk decrypt "$kid" --mode oaep --in "$work/ct" -o "$work/pt2"
    cmp -s "$work/pt" "$work/pt2" && ok "oaep plaintext" || notok "oaep plaintext differs"
    { printf '\003\003'; head -c 46 /dev/urandom; } >"$work/pm"
    ossl pkeyutl -encrypt -pubin -inkey "$pub" -pkeyopt rsa_padding_mode:pkcs1 \
        -in "$work/pm" -out "$work/ct"
    expect "decrypt tls-premaster" $lurk decrypt "$kid" --mode tls-premaster \
        --client-version 0x0303 --in "$work/ct" -o "$work/pm2"
    cmp -s "$work/pm" "$work/pm2" && ok "premaster" || notok "premaster differs"

    # Refusals: message format and exit status 1.
    kid=$(keyid rsa2048)
    $lurk sign "$kid" --alg rsa-pss --in "$msg" -o "$sig" >"$work/out" 2>&1 && rc=0 || rc=$?
    if [ "$rc" = 1 ] && grep -q "^lurk: sign: the key's policy forbids this operation: " "$work/out"; then
        ok "tls-server key refuses a plain message (exit 1, error line)"
    else
        notok "tls-server refusal: rc=$rc $(cat "$work/out")"
    fi
    $lurk pubkey "$("$LURK_CLI" keyid "$dir/client.crt")" >"$work/out" 2>&1 && rc=0 || rc=$?
    [ "$rc" = 1 ] && grep -q "^lurk: pubkey: the key is not known to the key server: " "$work/out" \
        && ok "unknown key: exit 1, error line" || notok "unknown key: rc=$rc $(cat "$work/out")"
    $lurk sign "site.crt" --alg ecdsa --in "$msg" -o "$sig" >"$work/out" 2>&1 && rc=0 || rc=$?
    [ "$rc" = 1 ] && grep -q '^lurk: sign: an argument is invalid: "site.crt" is not a key id' "$work/out" \
        && ok "a file name given as key id: exit 1, names it" || notok "bad key id: rc=$rc $(cat "$work/out")"
    "$LURK_CLI" --server "https://127.0.0.1:1" --ca "$dir/ca.crt" --cert "$dir/client.crt" \
        --key "$dir/client.key" --timeout 1000 ping >"$work/out" 2>&1 && rc=0 || rc=$?
    [ "$rc" = 1 ] && grep -q "^lurk: ping: no key server could be reached: " "$work/out" \
        && ok "server down: exit 1, error line" || notok "server down: rc=$rc $(cat "$work/out")"
    "$LURK_CLI" --server "http://127.0.0.1:$port" ping >"$work/out" 2>&1 && rc=0 || rc=$?
    [ "$rc" = 1 ] && grep -q "only https:// and unix: are allowed" "$work/out" \
        && ok "http:// server refused by configuration" || notok "http:// server: rc=$rc $(cat "$work/out")"
    "$LURK_CLI" frobnicate >"$work/out" 2>&1 && rc=0 || rc=$?
    [ "$rc" = 2 ] && ok "unknown command: exit 2" || notok "unknown command: rc=$rc"
    for c in hello ping pubkey keyref keyid sign decrypt agree; do
        "$LURK_CLI" "$c" --help >"$work/out" 2>&1 && grep -q "^usage: lurk" "$work/out" \
            && ok "$c --help" || notok "$c --help"
    done
}

# The wire seen by a foreign client (curl CLI): status + StatusDescription.
run_wire() {
    local ep=$url/.well-known/lurk
    local tls=(--cacert "$dir/ca.crt" --cert "$dir/client.crt" --key "$dir/client.key")
    local code body

    post() { # BODYFILE -> $code, $body
        code=$(curl -sS -o "$work/body" -w '%{http_code}' --max-time 10 "${tls[@]}" \
            -H 'Content-Type: application/json' --data-binary "@$1" "$ep" 2>"$work/curl.err") \
            || code=curl-failed
        body=$(cat "$work/body" 2>/dev/null || true)
    }
    ping_ok() {
        printf '{"PingRequest":{"RequestId":"wire-ping"}}' >"$work/ping.json"
        post "$work/ping.json"
        [ "$code" = 200 ] && ok "server still answers after $1" \
            || notok "server after $1: $code $body"
    }

    printf '{"PingRequest":{"RequestId":"wire-1"}}' >"$work/req.json"
    post "$work/req.json"
    [ "$code" = 200 ] && printf '%s' "$body" | grep -q '"PingResponse"' \
        && ok "curl ping: 200 PingResponse" || notok "curl ping: $code $body"

    printf '{"PingRequest": {"RequestId": "wire-2",' >"$work/bad.json"
    post "$work/bad.json"
    [ "$code" = 400 ] && printf '%s' "$body" | grep -q '"Status": *400' \
        && printf '%s' "$body" | grep -q '"StatusDescription": *"[^"]' \
        && ok "malformed JSON: 400 with a StatusDescription ($body)" \
        || notok "malformed JSON: $code $body"
    ping_ok "malformed JSON"

    printf '{"PingRequest":{"RequestId":"wire-3","Bogus":1}}' >"$work/bad.json"
    post "$work/bad.json"
    [ "$code" = 400 ] && printf '%s' "$body" | grep -q 'Bogus' \
        && ok "unknown member: 400 naming it ($body)" || notok "unknown member: $code $body"
    ping_ok "an unknown member"

    { printf '{"SignRequest":{"RequestId":"wire-4","KeyId":"x","Algorithm":"ecdsa","DigestAlg":"sha256","Data":"'
      head -c 70000 /dev/zero | tr '\0' 'A'
      printf '"}}'; } >"$work/big.json"
    post "$work/big.json"
    [ "$code" = 413 ] && printf '%s' "$body" | grep -q '"StatusDescription": *"[^"]' \
        && ok "oversize body: 413 with a StatusDescription ($body)" \
        || notok "oversize body: $code $body"
    ping_ok "an oversize body"

    # No client certificate: the TLS handshake (or the first read) fails.
    if curl -sS -o /dev/null --max-time 10 --cacert "$dir/ca.crt" \
        -H 'Content-Type: application/json' --data-binary "@$work/req.json" "$ep" \
        >"$work/out" 2>&1; then
        notok "no client certificate was accepted"
    else
        ok "no client certificate: TLS failure ($(tr '\n' ' ' <"$work/out"))"
    fi
    ping_ok "a client without a certificate"
    if curl -sS -o /dev/null --max-time 10 --cacert "$dir/ca.crt" \
        --cert "$dir/rogue-client.crt" --key "$dir/rogue-client.key" \
        -H 'Content-Type: application/json' --data-binary "@$work/req.json" "$ep" \
        >"$work/out" 2>&1; then
        notok "rogue client certificate was accepted"
    else
        ok "rogue CA client certificate: TLS failure ($(tr '\n' ' ' <"$work/out"))"
    fi
    ping_ok "a rogue client certificate"
}

case $mode in
    lib) run_lib "${2:?test binary}" ;;
    cli) run_cli ;;
    wire) run_wire ;;
    *) echo "unknown mode $mode"; exit 2 ;;
esac

echo "$fails shell checks failed"
[ "$fails" = 0 ]
passed=1
