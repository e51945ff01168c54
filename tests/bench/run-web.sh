#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Web benchmark: one nginx (1 worker, or BENCH_WORKERS), the same key served two ways side by
# side in the same run: as a local PEM file, and through lurk (a key
# reference; the signature or decryption is made by lurk-keyserver on
# 127.0.0.1).  For RSA-2048 and P-256, TLS 1.3 and TLS 1.2 (ECDHE), full
# handshakes only (tests/bench/handshake_load), it prints:
#
#   case | hs/s local, lurk, ratio | server CPU per handshake local, lurk
#   (nginx worker + key server, from /proc/PID/stat utime+stime), ratio |
#   p50/p99 latency local, lurk
#
# and marks each row against the targets: lurk rate >= 85 % of local, CPU
# per handshake <= 1.2 x local.  Not a test: it never fails on a missed target.
#
#   BENCH_SECONDS   duration of each run (5)
#   BENCH_THREADS   concurrent client connections (4)
#   BENCH_MAX       handshake cap per run (200000)
#   BENCH_WORKERS   nginx worker processes (1)
#   LURK_BUILD_DIR  build dir (build)
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${LURK_BUILD_DIR:-$top/build}
export LURK_SOURCE_ROOT=${LURK_SOURCE_ROOT:-$top}
export LURK_BUILD_ROOT=${LURK_BUILD_ROOT:-$build}
# absolute: OpenSSL resolves a relative module path against its own modules dir
LURK_BUILD_ROOT=$(cd "$LURK_BUILD_ROOT" 2>/dev/null && pwd) ||
    { echo "run-web.sh: no build dir $build" >&2; exit 1; }
LURK_SOURCE_ROOT=$(cd "$LURK_SOURCE_ROOT" && pwd)
SECS=${BENCH_SECONDS:-5}
THREADS=${BENCH_THREADS:-4}
MAX=${BENCH_MAX:-200000}
WORKERS=${BENCH_WORKERS:-1}
LOAD=$LURK_BUILD_ROOT/tests/bench/handshake_load

# shellcheck source=../web/lib.sh
. "$top/tests/web/lib.sh"
web_require nginx openssl python3
web_require_build
[ -x "$LOAD" ] || web_skip "not built: $LOAD"
[ "$(id -u)" -eq 0 ] || web_skip "run as root (nginx workers drop to nobody)"

web_ks_setup >"$WEB_WORK/setup.log" 2>&1 || { cat "$WEB_WORK/setup.log"; exit 1; }
KEYDIR=$KS_DIR/keys
for k in rsa2048 p256; do
    [ -f "$KEYDIR/$k.pem" ] || { echo "no local key $KEYDIR/$k.pem"; exit 1; }
done

NGX=$WEB_WORK/nginx
mkdir -p "$NGX/logs"
declare -A PORT
for k in rsa2048 p256; do
    PORT[$k-local]=$(web_free_port)
    PORT[$k-lurk]=$(web_free_port)
done
{
    cat <<EOF
worker_processes $WORKERS;
pid logs/nginx.pid;
error_log logs/error.log warn;
env OPENSSL_CONF;
events { worker_connections 1024; }
http {
    access_log off;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    keepalive_timeout 0;
EOF
    for k in rsa2048 p256; do
        for m in local lurk; do
            key=$KS_DIR/$k.key
            [ "$m" = local ] && key=$KEYDIR/$k.pem
            cat <<EOF
    server {
        listen 127.0.0.1:${PORT[$k-$m]} ssl backlog=1024;
        ssl_certificate     $KS_DIR/$k.crt;
        ssl_certificate_key $key;
        location / { return 200 "ok\n"; }
    }
EOF
        done
    done
    echo "}"
} >"$NGX/nginx.conf"

OPENSSL_CONF=$WEB_OSSL_CNF nginx -p "$NGX" -c "$NGX/nginx.conf" -g 'daemon off;' \
    >"$WEB_WORK/nginx.out" 2>&1 &
NGX_PID=$!
web_track "$NGX_PID"
for k in rsa2048 p256; do
    web_wait_port "${PORT[$k-lurk]}" || { cat "$NGX/logs/error.log"; exit 1; }
done
sleep 0.3

# utime + stime (clock ticks) of the nginx workers (+ key server).
ticks() {
    local pid sum=0 s
    for pid in "$@"; do
        s=$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}')
        sum=$((sum + ${s:-0}))
    done
    echo "$sum"
}
HZ=$(getconf CLK_TCK)

# run PORT LOADARGS... -> sets R_HS R_RATE R_P50 R_P99, R_CPU_NGX and R_CPU_KS
# (CPU ms per handshake of the nginx worker and of the key server)
run() {
    local port=$1
    shift
    local workers t0 t1 k0 k1 out
    mapfile -t workers < <(web_children "$NGX_PID")
    # warm up: the worker's connection to the key server, caches
    "$LOAD" -p "$port" -t 2 -d 0.5 -n 200 "$@" >/dev/null 2>&1
    t0=$(ticks "${workers[@]}")
    k0=$(ticks "$KS_PID")
    out=$("$LOAD" -p "$port" -t "$THREADS" -d "$SECS" -n "$MAX" "$@" 2>"$WEB_WORK/load.err")
    t1=$(ticks "${workers[@]}")
    k1=$(ticks "$KS_PID")
    R_HS=$(sed -n 's/.*handshakes=\([0-9]*\).*/\1/p' <<<"$out")
    R_ERR=$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' <<<"$out")
    R_RATE=$(sed -n 's/.*hs_per_s=\([0-9.]*\).*/\1/p' <<<"$out")
    R_P50=$(sed -n 's/.*p50_ms=\([0-9.]*\).*/\1/p' <<<"$out")
    R_P99=$(sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p' <<<"$out")
    R_CPU_NGX=$(awk -v d=$((t1 - t0)) -v n="${R_HS:-0}" -v hz="$HZ" \
        'BEGIN {printf "%.3f", (n > 0 ? d * 1000 / hz / n : 0)}')
    R_CPU_KS=$(awk -v d=$((k1 - k0)) -v n="${R_HS:-0}" -v hz="$HZ" \
        'BEGIN {printf "%.3f", (n > 0 ? d * 1000 / hz / n : 0)}')
    if [ "${R_ERR:-1}" != 0 ]; then
        echo "  ($port: ${R_ERR:-?} errors: $(head -c 300 "$WEB_WORK/load.err"))" >&2
    fi
}

printf '\nnginx %s, %s worker(s); handshake_load: %s threads, %s s per run, full handshakes only\n' \
    "$(nginx -v 2>&1 | sed 's|.*/||')" "$WORKERS" "$THREADS" "$SECS"
printf 'CPU = utime+stime per handshake (ms): local = nginx worker; lurk = nginx worker + lurk-keyserver\n'
printf 'latency = connect + handshake (ms), client side\n\n'
fmt='%-22s | %10s | %9s | %5s | %9s | %-21s | %5s | %-15s | %-15s | %s\n'
printf "$fmt" case "local hs/s" "lurk hs/s" ratio "CPU local" "CPU lurk (nginx+ks)" ratio \
    "p50/p99 local" "p50/p99 lurk" targets
printf "$fmt" ---------------------- ---------- --------- ----- --------- --------------------- ----- \
    --------------- --------------- -------
for spec in "RSA-2048 TLS1.3|rsa2048|-v 1.3" \
    "RSA-2048 TLS1.2 ECDHE|rsa2048|-v 1.2 -c ECDHE-RSA-AES128-GCM-SHA256" \
    "P-256 TLS1.3|p256|-v 1.3" \
    "P-256 TLS1.2 ECDHE|p256|-v 1.2 -c ECDHE-ECDSA-AES128-GCM-SHA256"; do
    IFS='|' read -r name key args <<<"$spec"
    # shellcheck disable=SC2086
    run "${PORT[$key-local]}" $args
    L_RATE=$R_RATE
    L_CPU=$R_CPU_NGX
    L_P="$R_P50/$R_P99"
    # shellcheck disable=SC2086
    run "${PORT[$key-lurk]}" $args
    R_CPU=$(awk -v a="$R_CPU_NGX" -v b="$R_CPU_KS" 'BEGIN {printf "%.3f", a + b}')
    rr=$(awk -v a="$R_RATE" -v b="$L_RATE" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')
    cr=$(awk -v a="$R_CPU" -v b="$L_CPU" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')
    verdict=$(awk -v r="$rr" -v c="$cr" 'BEGIN {
        printf "%s %s", (r >= 0.85 ? "rate ok" : "rate MISS"), (c <= 1.2 ? "cpu ok" : "cpu MISS")}')
    printf "$fmt" "$name" "$L_RATE" "$R_RATE" "$rr" "$L_CPU" \
        "$R_CPU ($R_CPU_NGX+$R_CPU_KS)" "$cr" "$L_P" "$R_P50/$R_P99" "$verdict"
done
echo
web_stop_pid "$NGX_PID" QUIT
