#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The README's first command: installs what is missing, builds lurk, starts
# `lurk-keyserver --dev` and an unmodified nginx serving HTTPS on
# 127.0.0.1:8443 with a key that stays on the key server, and shows a
# successful request.  Both keep running; the script prints how to stop them.
#
#   LURK_DEV_DIR      where the dev PKI, keys and configs go (/var/tmp/lurk-dev)
#   LURK_KS_PORT      key server port (7443)
#   LURK_HTTPS_PORT   nginx port (8443)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${LURK_BUILD_DIR:-$top/build}
dir=${LURK_DEV_DIR:-/var/tmp/lurk-dev}
ks_port=${LURK_KS_PORT:-7443}
https_port=${LURK_HTTPS_PORT:-8443}

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
# shellcheck source=lib/keyserver.sh
. "$top/tests/lib/keyserver.sh" # ks_audit_count, ks_audit_wait

say "installing missing packages and building"
bash "$top/tests/deps.sh"
if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" "$top" >/dev/null
fi
ninja -C "$build" >/dev/null

mkdir -p "$dir"
ks_pid_file=$dir/keyserver.pid
ngx=$dir/nginx
started_ks=

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ours() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
# On a failure, stop what this run started, and say so.
give_up() {
    say "$*"
    if [ -n "$started_ks" ]; then
        kill "$started_ks" 2>/dev/null && say "stopped the lurk-keyserver this run started (pid $started_ks)"
        rm -f "$ks_pid_file"
    fi
    exit 1
}
# Both ports first: nothing is started when either is taken by another program.
if ! ours "$ks_pid_file" && port_busy "$ks_port"; then
    give_up "127.0.0.1:$ks_port is in use by another program: set LURK_KS_PORT to a free port"
fi
if ! ours "$ngx/nginx.pid" && port_busy "$https_port"; then
    give_up "127.0.0.1:$https_port is in use by another program: set LURK_HTTPS_PORT to a free port"
fi

if ours "$ks_pid_file"; then
    say "lurk-keyserver already running (pid $(cat "$ks_pid_file"))"
else
    say "starting lurk-keyserver --dev $dir on 127.0.0.1:$ks_port"
    "$build/server/lurk-keyserver" --dev "$dir" --listen "127.0.0.1:$ks_port" \
        >"$dir/keyserver.log" 2>&1 &
    echo $! >"$ks_pid_file"
    started_ks=$!
    for _ in $(seq 1 100); do
        grep -q 'listening on' "$dir/keyserver.log" 2>/dev/null && break
        kill -0 "$started_ks" 2>/dev/null || { cat "$dir/keyserver.log"; started_ks=; give_up "lurk-keyserver did not start"; }
        sleep 0.1
    done
    grep -q 'listening on' "$dir/keyserver.log" || give_up "lurk-keyserver did not listen within 10 s"
    sed -n '1,40p' "$dir/keyserver.log"
fi

say "checking the key server with the lurk tool"
OPENSSL_CONF=$dir/openssl.cnf "$build/client/lurk" ping || give_up "the key server does not answer"

mkdir -p "$ngx/html" "$ngx/logs"
cat >"$ngx/html/index.html" <<HTML
<!doctype html><title>lurk</title>
<h1>Hello over TLS from nginx</h1>
<p>This page was served by an unmodified nginx whose private key never left lurk-keyserver.</p>
HTML
sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$https_port|g" \
    "$top/conf/nginx-lurk-quickstart.conf" >"$ngx/nginx.conf"

if [ -f "$ngx/nginx.pid" ] && kill -0 "$(cat "$ngx/nginx.pid")" 2>/dev/null; then
    say "reloading nginx (pid $(cat "$ngx/nginx.pid"))"
    OPENSSL_CONF=$dir/openssl.cnf nginx -p "$ngx" -c "$ngx/nginx.conf" -s reload \
        || give_up "nginx did not reload (see $ngx/logs/error.log)"
else
    say "starting nginx on https://localhost:$https_port with the remote P-256 key"
    OPENSSL_CONF=$dir/openssl.cnf nginx -p "$ngx" -c "$ngx/nginx.conf" \
        || give_up "nginx did not start (see $ngx/logs/error.log)"
fi
for _ in $(seq 1 100); do
    port_busy "$https_port" && break
    sleep 0.1
done

say "curl --cacert $dir/ca.crt https://localhost:$https_port/"
signs=$(ks_audit_count '"op":"Sign"' "$dir/audit.log")
curl -sS --fail --cacert "$dir/ca.crt" "https://localhost:$https_port/"
echo
say "the handshake signature was made by the key server (audit log):"
# the key server writes the line just after its reply
ks_audit_wait '"op":"Sign"' $((signs + 1)) "$dir/audit.log" 2>/dev/null || true
tail -n 1 "$dir/audit.log"

cat <<EOT

lurk is running:
  key server  pid $(cat "$ks_pid_file"), log $dir/keyserver.log, audit $dir/audit.log
  nginx       pid $(cat "$ngx/nginx.pid"), https://localhost:$https_port/ (config $ngx/nginx.conf)
Stop both with:
  kill \$(cat $ngx/nginx.pid) \$(cat $ks_pid_file)
EOT
