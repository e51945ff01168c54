#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# `lurk-keyserver --dev DIR` with nothing else set up: it makes the dev PKI,
# keys, key references and an openssl.cnf, serves on loopback, and what it
# made works with the lurk tool, the openssl CLI and lurk.so:
#   - lurk hello / ping / sign (demo-sign, verified by OpenSSL's default provider)
#   - openssl s_server with DIR/p256.crt + DIR/p256.key (a key reference)
#     completes TLS 1.3 and 1.2 handshakes with s_client -CAfile DIR/ca.crt
#   - openssl pkeyutl -sign with DIR/p256.key is refused (tls-server policy)
#   - a second run on the same DIR reuses the CA, certificates and keys.
# Every process started is stopped by pid.
set -euo pipefail
: "${LURK_KEYSERVER:?}" "${LURK_CLI:?}"
# ks_audit_wait (no server of this script is started by ks_start)
# shellcheck source=../lib/keyserver.sh
. "$(dirname "$0")/../lib/keyserver.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/lurk-itest-dev.XXXXXX")
dir=$work/dev
pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    if [ "${ok:-0}" = 1 ]; then rm -rf "$work"; else echo "kept $work" >&2; fi
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_dev() {   # start_dev PORT LOG
    "$LURK_KEYSERVER" --dev "$dir" --listen "127.0.0.1:$1" >"$2" 2>&1 &
    ks_pid=$!
    pids+=("$ks_pid")
    for _ in $(seq 1 100); do
        grep -q 'listening on' "$2" && return 0
        kill -0 "$ks_pid" 2>/dev/null || { cat "$2"; fail "lurk-keyserver --dev exited"; }
        sleep 0.1
    done
    cat "$2"
    fail "lurk-keyserver --dev did not start listening within 10 s"
}

stop_pid() {
    kill "$1"
    wait "$1" || fail "pid $1 did not exit cleanly (status $?)"
}

port=$(free_port)
start_dev "$port" "$work/run1.log"

for f in ca.crt openssl.cnf rsa2048.crt rsa2048.key p256.crt p256.key demo-sign.key \
         client.crt client.key; do
    [ -s "$dir/$f" ] || fail "--dev did not make $f"
done
for f in ca.key server.key client.key keys/rsa2048.pem keys/p256.pem sign-keys/demo-sign.pem; do
    mode=$(stat -c %a "$dir/$f")
    [ "$mode" = 600 ] || fail "$f has mode $mode, a private key must be 0600"
done
grep -q 'BEGIN LURK PRIVATE KEY' "$dir/p256.key" || fail "p256.key is not a key reference"
if grep 'BEGIN.*PRIVATE KEY' "$dir/p256.key" | grep -vq LURK; then
    fail "p256.key holds key material"
fi
pass "--dev made the dev PKI, keys, key references and openssl.cnf"

export OPENSSL_CONF=$dir/openssl.cnf
"$LURK_CLI" hello >"$work/hello.out" || fail "lurk hello"
grep -q 'Sign' "$work/hello.out" || fail "lurk hello lists no Sign transaction"
"$LURK_CLI" ping >/dev/null || fail "lurk ping"
pass "lurk hello and ping"

# The printed next steps work as printed, from a fresh shell in another
# directory: the export, the tool's ping and sign lines (the tool named by
# its path when it is not installed), and no clash with the quick start's
# nginx on 8443.
sed -n '/^In another shell:/,/^(the .key files/p' "$work/run1.log" >"$work/steps.txt"
grep -q 'localhost:8443' "$work/steps.txt" && fail "the printed steps use port 8443, the quick start's nginx"
mkdir -p "$work/steps"
grep -E '^  (export OPENSSL_CONF|.*lurk ping|echo hello)' "$work/steps.txt" | sed 's/^  //' \
    >"$work/steps.sh"
[ "$(wc -l <"$work/steps.sh")" = 3 ] || { cat "$work/steps.txt"; fail "the printed steps changed shape"; }
(cd "$work/steps" && env -i PATH=/usr/bin:/bin HOME="$work/steps" bash -e "$work/steps.sh") \
    >"$work/steps.out" 2>&1 || { cat "$work/steps.sh" "$work/steps.out"; fail "the printed steps fail as printed"; }
[ -s "$work/steps/msg.sig" ] || fail "the printed sign step wrote no signature"
pass "the printed next steps (export, ping, sign) work as printed"

# A second --dev on the directory of the running server refuses, naming the
# server, and rewrites nothing.
cp "$dir/openssl.cnf" "$work/openssl.cnf.before"
if "$LURK_KEYSERVER" --dev "$dir" --listen "127.0.0.1:$(free_port)" >"$work/second.log" 2>&1; then
    fail "a second --dev on a running server's directory started"
fi
grep -q "in use by a running lurk-keyserver --dev (pid $ks_pid)" "$work/second.log" \
    || { cat "$work/second.log"; fail "the second --dev does not name the running server"; }
cmp -s "$dir/openssl.cnf" "$work/openssl.cnf.before" || fail "the second --dev rewrote openssl.cnf"
pass "a second --dev on a running server's directory is refused and changes nothing"

sign_id=$(awk '$1 == "demo-sign" { print $2 }' "$work/run1.log")
[ -n "$sign_id" ] || fail "--dev did not print the demo-sign key id"
printf 'a message to sign\n' >"$work/msg"
"$LURK_CLI" sign "$sign_id" --alg ecdsa --digest sha256 --in "$work/msg" -o "$work/msg.sig" \
    || fail "lurk sign with demo-sign"
"$LURK_CLI" pubkey "$sign_id" -o "$work/sign.pub" || fail "lurk pubkey"
OPENSSL_CONF=/dev/null openssl dgst -sha256 -verify "$work/sign.pub" \
    -signature "$work/msg.sig" "$work/msg" >/dev/null \
    || fail "the signature from lurk sign does not verify with the default provider"
pass "lurk sign (demo-sign) verified by OpenSSL's default provider"

# A tls-server key refuses generic signing, with the reason.
openssl dgst -sha256 -binary "$work/msg" >"$work/msg.sha256"
if openssl pkeyutl -sign -inkey "$dir/p256.key" -in "$work/msg.sha256" \
        -out "$work/bad.sig" 2>"$work/pkeyutl.err"; then
    fail "pkeyutl -sign with the tls-server key p256.key succeeded"
fi
grep -q "policy" "$work/pkeyutl.err" || { cat "$work/pkeyutl.err"; fail "refusal does not name the policy"; }
pass "pkeyutl -sign with p256.key refused: $(grep -o 'policy[^(]*' "$work/pkeyutl.err" | head -1)"

# s_server with the remote key against s_client, TLS 1.3 and 1.2.
for key in p256 rsa2048; do
    sport=$(free_port)
    openssl s_server -accept "127.0.0.1:$sport" -naccept 2 -www -quiet \
        -cert "$dir/$key.crt" -key "$dir/$key.key" >"$work/s_server.$key.log" 2>&1 &
    spid=$!
    pids+=("$spid")
    for _ in $(seq 1 50); do
        ss -Hltn "sport = :$sport" | grep -q LISTEN && break
        sleep 0.1
    done
    for v in tls1_3 tls1_2; do
        out=$(OPENSSL_CONF=/dev/null timeout 10 openssl s_client -connect "127.0.0.1:$sport" \
            -servername localhost -"$v" -CAfile "$dir/ca.crt" -verify_return_error \
            </dev/null 2>&1) || { echo "$out"; cat "$work/s_server.$key.log"; fail "s_client -$v to s_server with $key.key"; }
        echo "$out" | grep -q 'Verify return code: 0 (ok)' || fail "chain not verified ($key, $v)"
    done
    wait "$spid" 2>/dev/null || true
    pass "s_server with $key.crt + $key.key: TLS 1.3 and TLS 1.2 handshakes verified"
done
ks_audit_wait '"op":"Sign"' 1 "$dir/audit.log" || fail "no Sign in the key server's audit log"
unset OPENSSL_CONF

stop_pid "$ks_pid"
sum1=$(cd "$dir" && sha256sum ca.crt ca.key client.crt server.crt p256.crt rsa2048.crt \
    keys/p256.pem keys/rsa2048.pem sign-keys/demo-sign.pem)
port2=$(free_port)
start_dev "$port2" "$work/run2.log"
sum2=$(cd "$dir" && sha256sum ca.crt ca.key client.crt server.crt p256.crt rsa2048.crt \
    keys/p256.pem keys/rsa2048.pem sign-keys/demo-sign.pem)
[ "$sum1" = "$sum2" ] || fail "a second --dev run on the same DIR changed the PKI or keys"
grep -q "127.0.0.1:$port2" "$dir/openssl.cnf" || fail "openssl.cnf not updated to the new port"
OPENSSL_CONF=$dir/openssl.cnf "$LURK_CLI" ping >/dev/null || fail "lurk ping after the second run"
stop_pid "$ks_pid"
pass "a second run on the same DIR reuses the PKI and keys and follows the new port"

ok=1
echo "dev: all checks passed"
