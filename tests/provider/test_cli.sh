#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test_cli.sh - lurk.so through the openssl CLI against a real key server
# (tests/lib/keyserver.sh; key references made with `lurk keyref`):
# pkey/pkeyutl/req/x509 with key reference files and lurk: URIs, policy
# refusals, OAEP decryption, ECDH, and the error when the server is down.
# Every signature is verified with the default provider and the server's own
# copy of the key material.
set -u
. "$(dirname "$0")/../lib/keyserver.sh"

FAILS=0
T=$(mktemp -d /tmp/lurk-prov-cli-XXXXXX)
ks_on_exit '[ $FAILS -eq 0 ] && rm -rf "$T"'
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }
check() { # description command...
    d=$1; shift
    if "$@" > "$T/out" 2> "$T/err"; then ok "$d"; else bad "$d"; cat "$T/err"; fi
}
refuse() { # description expected-stderr-text command...
    d=$1; want=$2; shift 2
    if "$@" > "$T/out" 2> "$T/err"; then
        bad "$d (succeeded)"
    elif grep -q "$want" "$T/err"; then
        ok "$d"
    else
        bad "$d (stderr lacks '$want')"; cat "$T/err"
    fi
}
DEF="-provider default"   # verification side: OpenSSL's own implementation

{ ks_make_pki "$T" && ks_start "$T" && ks_keyrefs; } > "$T/setup.log" 2>&1 ||
    { cat "$T/setup.log"; echo "setup failed"; exit 1; }
export OPENSSL_CONF=$T/openssl.cnf
cd "$T" || exit 1
echo "lurk test message" > msg

# Public key: offline from the reference file, and through the store.
for k in rsa2048 p256 ed25519-sign; do
    openssl pkey -in keys/$k.pem -pubout $DEF > $k.pub.local 2>/dev/null
    check "pkey -pubout $k (reference file)" openssl pkey -in $k.key -pubout -out $k.pub
    check "pkey -pubout $k = server key" cmp $k.pub $k.pub.local
    "$LURK_CLI" pubkey "$(cat $k.id)" > $k.pub.server 2>/dev/null
    check "pkey -pubout $k = lurk pubkey" cmp $k.pub $k.pub.server
done
check "pkey lurk:KEYID" openssl pkey -in "lurk:$(cat p256.id)" -pubout -out p256.pub.store
check "lurk:KEYID public key" cmp p256.pub.store p256.pub.local
check "pkey lurk://HOST:PORT/KEYID" openssl pkey -in "lurk://127.0.0.1:$KS_PORT/$(cat rsa2048.id)" \
    -pubout -out rsa.pub.store
check "lurk://… public key" cmp rsa.pub.store rsa2048.pub.local
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out stranger.pem $DEF 2>/dev/null
refuse "pkey lurk: key unknown to the server" "not known" openssl pkey -pubout \
    -in "lurk:$("$LURK_CLI" keyid stranger.pem | awk '{print $1}')"
refuse "pkey lurk: malformed id" "expected lurk:KEYID" openssl pkey -pubout -in "lurk:nonsense"

# pkeyutl -sign with sign-policy keys, verified by the default provider.
openssl pkey -in keys/rsa2048-sign.pem -pubout -out rsa2048-sign.pub $DEF 2>/dev/null
openssl pkey -in keys/p256-sign.pem -pubout -out p256-sign.pub $DEF 2>/dev/null
openssl pkey -in keys/ed25519-sign.pem -pubout -out ed25519-sign.pub.v $DEF 2>/dev/null
openssl dgst -sha256 -binary msg > msg.sha256
check "pkeyutl -sign RSA PKCS#1 (digest)" openssl pkeyutl -sign -inkey rsa2048-sign.key -in msg.sha256 \
    -pkeyopt digest:sha256 -out s1
check "  verify" openssl pkeyutl -verify -pubin -inkey rsa2048-sign.pub -in msg.sha256 \
    -pkeyopt digest:sha256 -sigfile s1 $DEF
check "pkeyutl -sign RSA-PSS (digest)" openssl pkeyutl -sign -inkey rsa2048-sign.key -in msg.sha256 \
    -pkeyopt digest:sha256 -pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:digest -out s2
check "  verify" openssl pkeyutl -verify -pubin -inkey rsa2048-sign.pub -in msg.sha256 \
    -pkeyopt digest:sha256 -pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:digest \
    -sigfile s2 $DEF
check "pkeyutl -sign RSA-PSS sha384 max salt (message)" openssl pkeyutl -sign -inkey rsa2048-sign.key \
    -rawin -in msg -digest sha384 -pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:max -out s3
check "  verify" openssl pkeyutl -verify -pubin -inkey rsa2048-sign.pub -rawin -in msg -digest sha384 \
    -pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:auto -sigfile s3 $DEF
check "pkeyutl -sign ECDSA" openssl pkeyutl -sign -inkey p256-sign.key -in msg.sha256 -out s4
check "  verify" openssl pkeyutl -verify -pubin -inkey p256-sign.pub -in msg.sha256 -sigfile s4 $DEF
check "pkeyutl -sign Ed25519" openssl pkeyutl -sign -inkey ed25519-sign.key -rawin -in msg -out s5
check "  verify" openssl pkeyutl -verify -pubin -inkey ed25519-sign.pub.v -rawin -in msg -sigfile s5 $DEF
check "dgst -sign (update/final) ECDSA sha512" openssl dgst -sha512 -sign p256-sign.key -out s6 msg
check "  verify" openssl dgst -sha512 -verify p256-sign.pub -signature s6 $DEF msg
refuse "pkeyutl -sign MD5 refused offline" "the key server signs SHA-256, SHA-384, SHA-512" \
    openssl pkeyutl -sign -inkey rsa2048-sign.key -rawin -in msg -digest md5
refuse "pkeyutl -sign SHA-1 refused by the key's policy" "sha1 signatures are off for this key" \
    openssl pkeyutl -sign -inkey rsa2048-sign.key -rawin -in msg -digest sha1

# CSR and self-signed certificates with sign-policy keys.
for k in rsa2048-sign p256-sign ed25519-sign; do
    check "req -new $k" openssl req -new -key $k.key -subj /CN=lurk-$k -out $k.csr
    check "  req -verify" openssl req -verify -in $k.csr -noout $DEF
    check "req -x509 $k" openssl req -x509 -new -key $k.key -subj /CN=lurk-$k -days 1 -out $k.self.crt
    check "  verify self-signed" openssl verify -CAfile $k.self.crt $k.self.crt
done
check "req -x509 RSA-PSS" openssl req -x509 -new -key rsa2048-sign.key -subj /CN=pss -days 1 \
    -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest -out pss.crt
check "  verify self-signed" openssl verify -CAfile pss.crt pss.crt

# tls-server keys refuse generic signing: the reason reaches stderr.
refuse "pkeyutl -sign tls-server key" "policy forbids" \
    openssl pkeyutl -sign -inkey p256.key -in msg.sha256
refuse "req -new tls-server key" "policy forbids" \
    openssl req -new -key rsa2048.key -subj /CN=x -out x.csr
refuse "req -x509 tls-server key" "policy forbids" \
    openssl req -x509 -new -key p256.key -subj /CN=x -days 1 -out x.crt

# RSA decryption: OAEP with the decrypt key; SHA-1 OAEP and PKCS#1 refused.
openssl pkey -in keys/rsa2048-oaep.pem -pubout -out rsa2048-oaep.pub $DEF 2>/dev/null
head -c 32 /dev/urandom > secret
openssl pkeyutl -encrypt -pubin -inkey rsa2048-oaep.pub -in secret -out secret.enc $DEF \
    -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256
check "pkeyutl -decrypt OAEP sha256" openssl pkeyutl -decrypt -inkey rsa2048-oaep.key -in secret.enc \
    -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 -out secret.dec
check "  plaintext" cmp secret secret.dec
refuse "pkeyutl -decrypt OAEP sha1" "OAEP needs" openssl pkeyutl -decrypt -inkey rsa2048-oaep.key \
    -in secret.enc -pkeyopt rsa_padding_mode:oaep
refuse "pkeyutl -decrypt PKCS#1" "only OAEP and TLS premaster" openssl pkeyutl -decrypt \
    -inkey rsa2048-oaep.key -in secret.enc
refuse "pkeyutl -decrypt with a tls-server key" "policy forbids" openssl pkeyutl -decrypt \
    -inkey rsa2048.key -in secret.enc -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256

# ECDH with the agree key; the same secret as the default provider computes.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out peer.pem $DEF 2>/dev/null
openssl pkey -in peer.pem -pubout -out peer.pub $DEF 2>/dev/null
openssl pkey -in keys/p256-agree.pem -pubout -out p256-agree.pub $DEF 2>/dev/null
openssl pkeyutl -derive -inkey peer.pem -peerkey p256-agree.pub -out z.local $DEF 2>/dev/null
check "pkeyutl -derive ECDH" openssl pkeyutl -derive -inkey p256-agree.key -peerkey peer.pub -out z.lurk
check "  same secret" cmp z.local z.lurk
refuse "pkeyutl -derive with a sign key" "policy forbids" openssl pkeyutl -derive \
    -inkey p256-sign.key -peerkey peer.pub

# The audit log saw the remote operations (written just after the replies).
check "audit log has Sign" ks_audit_wait '"op":"Sign"' 1
check "audit log has Decrypt" ks_audit_wait '"op":"Decrypt"' 1
check "audit log has Agree" ks_audit_wait '"op":"Agree"' 1

# The lurk-* settings: one reader for lurk.so and the tool.  Durations take
# units (2s, 500ms, a bare number is ms); a bad value or an unknown lurk-*
# key stops the provider from loading and the tool from starting, naming the
# key and the file.
settings_variant() { # NAME SED-EXPR: openssl.cnf with one edit
    sed -e "$2" "$T/openssl.cnf" > "$T/$1.cnf"
}
settings_variant seconds 's/^lurk-timeout = .*/lurk-timeout = 3s/'
check "lurk-timeout = 3s: lurk.so signs" env OPENSSL_CONF="$T/seconds.cnf" \
    openssl pkeyutl -sign -inkey p256-sign.key -in msg.sha256 -out s-seconds
check "  verify" openssl pkeyutl -verify -pubin -inkey p256-sign.pub -in msg.sha256 \
    -sigfile s-seconds $DEF
check "lurk-timeout = 3s: the tool pings" "$LURK_CLI" --conf "$T/seconds.cnf" ping
settings_variant badunit 's/^lurk-timeout = .*/lurk-timeout = 3x/'
refuse "lurk-timeout = 3x: lurk.so does not load" "lurk-timeout = \"3x\": write milliseconds" \
    env OPENSSL_CONF="$T/badunit.cnf" openssl pkeyutl -sign -inkey p256-sign.key -in msg.sha256
refuse "lurk-timeout = 3x: the tool says the same" "badunit.cnf.*lurk-timeout = \"3x\"" \
    "$LURK_CLI" --conf "$T/badunit.cnf" ping
settings_variant typo 's/^lurk-timeout = /lurk-timout = /'
refuse "lurk-timout (a typo): lurk.so does not load, naming key and file" \
    "typo.cnf.*unknown setting lurk-timout" \
    env OPENSSL_CONF="$T/typo.cnf" openssl pkeyutl -sign -inkey p256-sign.key -in msg.sha256
refuse "lurk-timout (a typo): the tool says the same" "typo.cnf.*unknown setting lurk-timout" \
    "$LURK_CLI" --conf "$T/typo.cnf" ping
# An unreadable client key is named at start, with the user, not at the
# first handshake (run as nobody: root reads anything).
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
    chmod 755 "$T"
    chmod 644 "$T/openssl.cnf"
    chmod 600 "$T/client.key"
    refuse "lurk-key unreadable: named with the user at provider start" \
        "lurk-key $T/client.key: user nobody (uid [0-9]*) cannot read it" \
        setpriv --reuid=nobody --regid=nogroup --clear-groups env OPENSSL_CONF="$T/openssl.cnf" \
        openssl pkey -pubout -in "lurk:$(cat p256.id)"
fi

# Key server down: a clear error, quickly.
ks_stop
start=$(date +%s)
refuse "sign with the key server down" "no key server could be reached" \
    openssl pkeyutl -sign -inkey rsa2048-sign.key -in msg.sha256 -pkeyopt digest:sha256
[ $(( $(date +%s) - start )) -le 5 ] && ok "  failed within 5 s" || bad "  took too long"
check "pkey -pubout still works offline" openssl pkey -in p256.key -pubout

echo "test_cli: $FAILS failure(s)"
[ $FAILS -eq 0 ]
