# SPDX-License-Identifier: Apache-2.0
# tests/lib/keyserver.sh - start a real lurk-keyserver for a test (bash, sourced).
#
#   ks_make_pki DIR   throwaway PKI + keys + DIR/keyserver.cnf + DIR/openssl.cnf
#                     (idempotent: files that exist are kept, so keys are made once per DIR)
#   ks_start DIR      start "$LURK_KEYSERVER" on 127.0.0.1:0 (stderr+stdout -> DIR/keyserver.log),
#                     wait (<= KS_START_TIMEOUT s, default 10) for DIR/port, export
#                     KS_DIR KS_PID KS_PORT KS_URL=https://127.0.0.1:$KS_PORT, and rewrite
#                     DIR/openssl.cnf with lurk-servers = $KS_URL
#   ks_stop           SIGTERM $KS_PID, wait <= 10 s, then SIGKILL; returns the server's exit status
#   ks_reload         SIGHUP $KS_PID
#   ks_keyid NAME [DIR]   key id of DIR/keys/NAME.pem (from --list-keys)
#   ks_keyrefs [NAME...]  after ks_start: KS_DIR/NAME.id (the key id) and KS_DIR/NAME.key, a key
#                     reference file made by `$LURK_CLI keyref` against the running server, for
#                     each NAME (default: every key the test client may use, i.e. all but
#                     p256-restricted); needs LURK_CLI
#   ks_on_exit CMD    run CMD from the EXIT trap (after every started server is stopped)
#   ks_audit_count PATTERN [FILE]   lines of the audit log FILE (default KS_DIR/audit.log)
#                     that match PATTERN (grep; '' = every line)
#   ks_audit_wait PATTERN COUNT [FILE]   wait (<= KS_AUDIT_TIMEOUT s, default 5) until
#                     ks_audit_count is at least COUNT; 1 (with a message) when it is not.
#                     The key server writes a request's audit line just after the reply
#                     (when its event loop goes idle, at most ~50 ms later under load), so
#                     a test that expects a new line waits for it with this.
#
# Every server ks_start starts is also stopped by an EXIT trap, so a failing test never
# leaves one running (a script that sets its own EXIT trap must call _ks_exit_trap from it;
# ks_on_exit is simpler).  Needs: LURK_KEYSERVER, LURK_PROVIDER (tests/meson.build sets them).
#
# DIR after ks_make_pki:
#   ca.crt ca.key                     test CA (P-256)
#   server.crt server.key             key server: CN=localhost, SAN DNS:localhost, IP:127.0.0.1
#   client.crt client.key             CN=lurk-test-client
#   other-client.crt other-client.key CN=lurk-other-client
#   rogue-ca.crt rogue-ca.key         an unrelated CA
#   rogue-client.crt rogue-client.key CN=lurk-test-client, issued by the rogue CA
#   keys/NAME.pem                     private keys (server side), PKCS#8 PEM
#   NAME.crt                          certificate for localhost/127.0.0.1 for each tls-server key
#   openssl.cnf                       default + lurk provider (module $LURK_PROVIDER, this client
#                                     certificate, config_diagnostics on); ks_start sets its
#                                     lurk-servers to the port the server bound
#   p256-enc.pass                     passphrase of keys/p256-enc.pem (encrypted PKCS#8)
# keys (policy):
#   rsa2048 rsa3072 rsa4096 p256 p384 p521 ed25519 p256-enc (tls-server)
#   rsa2048-sign p256-sign ed25519-sign (sign)   rsa2048-oaep (decrypt)   p256-agree (agree)
#   p256-restricted (tls-server, clients = lurk-other-client)

KS_TLS_KEYS="rsa2048 rsa3072 rsa4096 p256 p384 p521 ed25519 p256-restricted p256-enc"
KS_ALL_KEYS="rsa2048 rsa3072 rsa4096 p256 p384 p521 ed25519 rsa2048-sign p256-sign ed25519-sign rsa2048-oaep p256-agree p256-restricted p256-enc"
KS_ALL_PIDS=()
KS_EXIT_CMDS=()

# The openssl CLI as the system installs it: never the lurk provider config of a test.
_ks_openssl() {
    env -u OPENSSL_CONF -u OPENSSL_MODULES openssl "$@"
}

_ks_policy() {
    case "$1" in
        *-sign) echo sign ;;
        *-oaep) echo decrypt ;;
        *-agree) echo agree ;;
        *) echo tls-server ;;
    esac
}

# _ks_genkey FILE NAME: private key for a key name (type from the name).
_ks_genkey() {
    local file=$1 name=$2
    case "$name" in
        rsa2048*) _ks_openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$file" ;;
        rsa3072*) _ks_openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out "$file" ;;
        rsa4096*) _ks_openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:4096 -out "$file" ;;
        p256*) _ks_openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$file" ;;
        p384*) _ks_openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$file" ;;
        p521*) _ks_openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-521 -out "$file" ;;
        ed25519*) _ks_openssl genpkey -algorithm ED25519 -out "$file" ;;
        *) echo "ks: no key type for '$name'" >&2; return 1 ;;
    esac 2>/dev/null && chmod 600 "$file"
}

# _ks_cert DIR OUT KEY CN ISSUER EXT [PASSIN]: a certificate signed by ISSUER(.crt/.key).
_ks_cert() {
    local dir=$1 out=$2 key=$3 cn=$4 issuer=$5 ext=$6 passin=${7:-}
    local extfile="$dir/.ext.$$.$RANDOM"
    printf '%b\n' "$ext" > "$extfile"
    _ks_openssl req -new -key "$key" ${passin:+-passin "$passin"} -subj "/CN=$cn" 2>/dev/null |
        _ks_openssl x509 -req -CA "$issuer.crt" -CAkey "$issuer.key" -CAcreateserial \
            -days 30 -sha256 -extfile "$extfile" -out "$out" 2>/dev/null
    local rc=$?
    rm -f "$extfile"
    return $rc
}

_ks_ca() {
    local base=$1 cn=$2
    [ -s "$base.crt" ] && [ -s "$base.key" ] && return 0
    _ks_genkey "$base.key" p256 &&
        _ks_openssl req -new -x509 -key "$base.key" -subj "/CN=$cn" -days 30 -sha256 \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$base.crt" 2>/dev/null
}

_ks_leaf() {  # DIR NAME CN ISSUER EXT
    local dir=$1 name=$2 cn=$3 issuer=$4 ext=$5
    [ -s "$dir/$name.crt" ] && [ -s "$dir/$name.key" ] && return 0
    { [ -s "$dir/$name.key" ] || _ks_genkey "$dir/$name.key" p256; } &&
        _ks_cert "$dir" "$dir/$name.crt" "$dir/$name.key" "$cn" "$issuer" "$ext"
}

KS_EXT_SERVER='basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1'
KS_EXT_CLIENT='basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth'

# _ks_write_openssl_cnf DIR URL: provider config in the COMMON format.
_ks_write_openssl_cnf() {
    local dir=$1 url=$2
    cat > "$dir/openssl.cnf.tmp" <<CNF
# Written by tests/lib/keyserver.sh
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
module = ${LURK_PROVIDER:?LURK_PROVIDER is not set}
activate = 1
lurk-servers = $url
lurk-ca = $dir/ca.crt
lurk-cert = $dir/client.crt
lurk-key = $dir/client.key
lurk-connect-timeout = 1000
lurk-timeout = 3000

[evp_properties]
default_properties = ?provider=default
CNF
    mv -f "$dir/openssl.cnf.tmp" "$dir/openssl.cnf"
}

_ks_write_keyserver_cnf() {
    local dir=$1 name
    {
        echo "# Written by tests/lib/keyserver.sh"
        echo "[keyserver]"
        echo "listen = 127.0.0.1:0"
        echo "tls_cert = server.crt"
        echo "tls_key = server.key"
        echo "client_ca = ca.crt"
        echo "threads = 2"
        echo "audit_log = $dir/audit.log"
        echo "keys = keys_sect"
        echo
        echo "[keys_sect]"
        for name in $KS_ALL_KEYS; do
            echo "$name = key_$name"
        done
        for name in $KS_ALL_KEYS; do
            echo
            echo "[key_$name]"
            echo "file = keys/$name.pem"
            echo "policy = $(_ks_policy "$name")"
            [ "$name" = p256-restricted ] && echo "clients = lurk-other-client"
            [ "$name" = p256-enc ] && echo "passphrase_file = p256-enc.pass"
        done
    } > "$dir/keyserver.cnf.tmp" && mv -f "$dir/keyserver.cnf.tmp" "$dir/keyserver.cnf"
}

# ks_with_settings ORIG DIR [SETTING...]: DIR/keyserver.cnf made from ORIG
# with threads = 1 and each "key = value" added to [keyserver].
ks_with_settings() {
    local orig=${1:?usage: ks_with_settings ORIG DIR [SETTING...]} dir=${2:?} kv
    shift 2
    cp "$orig" "$dir/keyserver.cnf" || return 1
    sed -i 's/^threads = .*/threads = 1/' "$dir/keyserver.cnf"
    for kv in "$@"; do
        sed -i "s|^\\[keyserver\\]\$|[keyserver]\\n$kv|" "$dir/keyserver.cnf"
    done
}

ks_make_pki() {
    local dir=${1:?usage: ks_make_pki DIR} name pids=() rc=0
    if [ -z "${LURK_PROVIDER:-}" ]; then
        echo "ks_make_pki: LURK_PROVIDER is not set" >&2
        return 1
    fi
    mkdir -p "$dir/keys" || return 1
    dir=$(cd "$dir" && pwd) || return 1
    chmod 700 "$dir/keys"

    # keys first, in parallel (rsa4096 dominates)
    for name in $KS_ALL_KEYS; do
        [ "$name" = p256-enc ] && continue
        [ -s "$dir/keys/$name.pem" ] && continue
        _ks_genkey "$dir/keys/$name.pem" "$name" &
        pids+=($!)
    done
    _ks_ca "$dir/ca" "lurk test CA" || rc=1
    _ks_ca "$dir/rogue-ca" "lurk rogue CA" || rc=1
    _ks_leaf "$dir" server localhost "$dir/ca" "$KS_EXT_SERVER" || rc=1
    _ks_leaf "$dir" client lurk-test-client "$dir/ca" "$KS_EXT_CLIENT" || rc=1
    _ks_leaf "$dir" other-client lurk-other-client "$dir/ca" "$KS_EXT_CLIENT" || rc=1
    _ks_leaf "$dir" rogue-client lurk-test-client "$dir/rogue-ca" "$KS_EXT_CLIENT" || rc=1
    if [ ! -s "$dir/keys/p256-enc.pem" ]; then
        [ -s "$dir/p256-enc.pass" ] || (umask 077 && echo "lurk-test-passphrase" > "$dir/p256-enc.pass")
        _ks_genkey "$dir/keys/p256-enc.plain" p256 &&
            _ks_openssl pkcs8 -topk8 -v2 aes-256-cbc -in "$dir/keys/p256-enc.plain" \
                -passout "file:$dir/p256-enc.pass" -out "$dir/keys/p256-enc.pem" 2>/dev/null &&
            chmod 600 "$dir/keys/p256-enc.pem" || rc=1
        rm -f "$dir/keys/p256-enc.plain"
    fi
    for pid in "${pids[@]}"; do
        wait "$pid" || rc=1
    done
    for name in $KS_TLS_KEYS; do
        [ -s "$dir/$name.crt" ] && continue
        if [ "$name" = p256-enc ]; then
            _ks_cert "$dir" "$dir/$name.crt" "$dir/keys/$name.pem" localhost "$dir/ca" \
                "$KS_EXT_SERVER" "file:$dir/p256-enc.pass" || rc=1
        else
            _ks_cert "$dir" "$dir/$name.crt" "$dir/keys/$name.pem" localhost "$dir/ca" \
                "$KS_EXT_SERVER" || rc=1
        fi
    done
    _ks_write_keyserver_cnf "$dir" || rc=1
    [ -s "$dir/openssl.cnf" ] || _ks_write_openssl_cnf "$dir" "https://127.0.0.1:7443" || rc=1
    KS_DIR=$dir
    export KS_DIR
    [ $rc = 0 ] || echo "ks_make_pki: failed in $dir" >&2
    return $rc
}

_ks_exit_trap() {
    local pid cmd
    for cmd in "${KS_EXIT_CMDS[@]}"; do
        eval "$cmd" || true
    done
    for pid in "${KS_ALL_PIDS[@]}"; do
        _ks_kill "$pid" >/dev/null 2>&1 || true
    done
}

ks_on_exit() {
    KS_EXIT_CMDS+=("$*")
}

# _ks_kill PID: TERM, wait <= 10 s, KILL; prints nothing, returns the exit status.
_ks_kill() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return $?; }
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "ks: server $pid ignored SIGTERM for 10 s, killing it" >&2
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
}

ks_start() {
    local dir=${1:?usage: ks_start DIR} i timeout=${KS_START_TIMEOUT:-10}
    dir=$(cd "$dir" && pwd) || return 1
    : "${LURK_KEYSERVER:?LURK_KEYSERVER is not set}"
    rm -f "$dir/port"
    trap _ks_exit_trap EXIT
    "$LURK_KEYSERVER" --config "$dir/keyserver.cnf" --listen 127.0.0.1:0 \
        --port-file "$dir/port" ${KS_EXTRA_ARGS:-} >>"$dir/keyserver.log" 2>&1 &
    KS_PID=$!
    KS_ALL_PIDS+=("$KS_PID")
    for ((i = 0; i < timeout * 20; i++)); do
        [ -s "$dir/port" ] && break
        if ! kill -0 "$KS_PID" 2>/dev/null; then
            break
        fi
        sleep 0.05
    done
    if [ ! -s "$dir/port" ]; then
        echo "ks_start: key server did not start; $dir/keyserver.log:" >&2
        tail -n 20 "$dir/keyserver.log" >&2
        _ks_kill "$KS_PID" || true
        return 1
    fi
    KS_DIR=$dir
    KS_PORT=$(cat "$dir/port")
    KS_URL=https://127.0.0.1:$KS_PORT
    export KS_DIR KS_PID KS_PORT KS_URL
    _ks_write_openssl_cnf "$dir" "$KS_URL"
}

ks_stop() {
    local rc
    [ -n "${KS_PID:-}" ] || return 0
    _ks_kill "$KS_PID" && rc=0 || rc=$?
    KS_PID=
    return $rc
}

ks_reload() {
    kill -HUP "${KS_PID:?no key server started}"
}

ks_audit_count() {
    local pat=${1?usage: ks_audit_count PATTERN [FILE]} file=${2:-${KS_DIR:-.}/audit.log}
    [ -f "$file" ] || { echo 0; return 0; }
    grep -c -e "$pat" "$file" || true
}

ks_audit_wait() {
    local pat=${1?usage: ks_audit_wait PATTERN COUNT [FILE]} want=${2:?usage: ks_audit_wait PATTERN COUNT [FILE]}
    local file=${3:-${KS_DIR:-.}/audit.log} i
    for ((i = 0; i < ${KS_AUDIT_TIMEOUT:-5} * 20; i++)); do
        [ "$(ks_audit_count "$pat" "$file")" -ge "$want" ] && return 0
        sleep 0.05
    done
    echo "ks_audit_wait: $file: $(ks_audit_count "$pat" "$file") line(s) match '$pat', want $want" >&2
    return 1
}

ks_keyid() {
    local name=${1:?usage: ks_keyid NAME [DIR]} dir=${2:-${KS_DIR:?no DIR}} id
    id=$("$LURK_KEYSERVER" --config "$dir/keyserver.cnf" --list-keys 2>/dev/null |
        awk -v n="$name" '$1 == n { print $2 }')
    [ -n "$id" ] || { echo "ks_keyid: no key '$name' in $dir/keyserver.cnf" >&2; return 1; }
    echo "$id"
}

ks_keyrefs() {
    local dir=${KS_DIR:?no key server started} name id names
    : "${LURK_CLI:?LURK_CLI is not set}"
    names=${*:-$(echo " $KS_ALL_KEYS " | sed 's/ p256-restricted / /')}
    for name in $names; do
        id=$(ks_keyid "$name" "$dir") || return 1
        echo "$id" > "$dir/$name.id" || return 1
        "$LURK_CLI" --conf "$dir/openssl.cnf" keyref "$id" -o "$dir/$name.key" >/dev/null ||
            { echo "ks_keyrefs: lurk keyref $name failed" >&2; return 1; }
    done
}
