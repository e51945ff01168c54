#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# run-deploy.sh [BUILD_DIR]: a deployment-shaped benchmark (not a test).
#
# The key server (tests/lib/keyserver.sh PKI, mutual TLS on 127.0.0.1, one
# event loop: threads = 1) is pinned to its own core (cpu 1) with the delay
# proxies (tests/lib/lurk-delay-proxy, one per added RTT, each adding RTT/2
# each way); the web server and the load generator (tests/bench/handshake_load,
# full handshakes only) share cpu 0.  The provider reaches the key server
# through `lurk-servers` in an openssl.cnf per RTT (RTT 0: directly).
# Every case measures the local key file and the lurk key reference in the
# same web server, one after the other, and prints markdown tables:
#
#   nginx    per case, RTT and worker count W: handshakes/s local and lurk,
#            the bound min(local rate, W / RTT) a blocking worker can reach,
#            lurk / bound (target >= 0.90), and CPU per full handshake (µs) of
#            nginx alone (master + workers) with each key, of the key server
#            and of the delay proxy (target for nginx's own CPU with lurk:
#            P-256 <= 1.10 x local, RSA-2048 <= 0.70 x local)
#   haproxy  nbthread 2, ssl-mode-async off and on, per case and RTT: the
#            same columns (target: async at 20 ms >= 0.80 x local)
#   targets  a summary, and each delay proxy's own report (late_us_mean is
#            the error of its delay, cpu_us_per_msg its CPU per message)
#
# CPU comes from /proc/PID/task/*/schedstat (ns on cpu, all threads), sampled
# just before and after each measured run: the load generator, warm-up and
# this script are never in a figure.  Results also go to a TSV file
# (BENCH_TSV, default: kept beside nothing, printed path at the end).
#
# Environment (defaults in brackets):
#   BENCH_SECONDS   length of each measured run [3]
#   BENCH_RTTS      added round-trip times in ms ["0 2 20"]
#   BENCH_WORKERS   nginx worker counts ["1 2 8 32"]
#   BENCH_CASES     ["rsa2048-tls13 rsa2048-tls12 p256-tls13 p256-tls12"]
#   BENCH_SERVERS   ["nginx haproxy"]
#   BENCH_HA_ASYNC  haproxy ssl-mode-async settings ["off on"]
#   BENCH_CONC      client connections in flight [nginx: 4W+16; haproxy: 64]
#   BENCH_HA_CONC   client connections in flight for haproxy [64]
#   BENCH_LOAD_ARGS extra handshake_load options, e.g. "-g P-256" [none]
#   BENCH_MAX       handshake cap per run [200000]
#   BENCH_NGINX_EVENTS / BENCH_NGINX_LISTEN   extra nginx events lines / listen
#                   parameters, e.g. "accept_mutex on;" / "deferred" [none]
#   BENCH_WEB_CPU / BENCH_KS_CPU   cores for web+load / key server+proxies [0 / 1]
#   BENCH_PROXY_RT  run the delay proxies SCHED_FIFO (chrt -f 1) [1]
#   BENCH_TSV       write every row here too [$WORK/results.tsv, removed at exit]
#
# A full run (defaults) takes about 10 minutes; one case of each kind:
#   BENCH_SECONDS=2 BENCH_RTTS="0 20" BENCH_WORKERS=8 BENCH_CASES=p256-tls13 \
#       bash tests/bench/run-deploy.sh build
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-${LURK_BUILD_DIR:-$top/build}}
# absolute: OpenSSL resolves a relative module path against its own modules dir
build=$(cd "$build" 2>/dev/null && pwd) || { echo "run-deploy.sh: no build dir ${1:-}" >&2; exit 1; }
export LURK_SOURCE_ROOT=$top LURK_BUILD_ROOT=$build
export LURK_KEYSERVER=$build/server/lurk-keyserver LURK_CLI=$build/client/lurk
export LURK_PROVIDER=$build/provider/lurk.so

SECS=${BENCH_SECONDS:-3}
RTTS=${BENCH_RTTS:-0 2 20}
WLIST=${BENCH_WORKERS:-1 2 8 32}
CASES=${BENCH_CASES:-rsa2048-tls13 rsa2048-tls12 p256-tls13 p256-tls12}
SERVERS=${BENCH_SERVERS:-nginx haproxy}
HA_MODES=${BENCH_HA_ASYNC:-off on}
HA_CONC=${BENCH_HA_CONC:-${BENCH_CONC:-64}}
MAX=${BENCH_MAX:-200000}
WEB_CPU=${BENCH_WEB_CPU:-0}
KS_CPU=${BENCH_KS_CPU:-1}
LOAD=$build/tests/bench/handshake_load
PROXY=$build/tests/lib/lurk-delay-proxy
read -r -a EXTRA <<<"${BENCH_LOAD_ARGS:-}"

# shellcheck source=../web/lib.sh
. "$top/tests/web/lib.sh"
web_require openssl python3 taskset awk
web_require_build
for f in "$LOAD" "$PROXY"; do
    [ -x "$f" ] || web_skip "not built: $f (ninja -C $build)"
done
[ "$(id -u)" -eq 0 ] || web_skip "run as root (nginx workers drop to nobody)"
[ "$(nproc)" -gt "$KS_CPU" ] && [ "$(nproc)" -gt "$WEB_CPU" ] ||
    web_skip "needs cpus $WEB_CPU and $KS_CPU ($(nproc) here)"
# Our own work dir: test scripts running beside a benchmark may sweep
# /tmp/lurk-web-* (lib.sh's default); web_cleanup removes this one at exit.
rmdir "$WEB_WORK" 2>/dev/null
WEB_WORK=$(mktemp -d "${TMPDIR:-/tmp}/lurk-deploy.XXXXXX") || exit 1
TSV=${BENCH_TSV:-$WEB_WORK/results.tsv}
: >"$TSV"
NOTES=$WEB_WORK/notes # failed handshakes, printed under each table
: >"$NOTES"
print_notes() {
    if [ -s "$NOTES" ]; then
        echo
        echo "notes:"
        cat "$NOTES"
        : >"$NOTES"
    fi
}

# ---- key server: its own core, one event loop ---------------------------------
# shellcheck source=../lib/keyserver.sh
. "$top/tests/lib/keyserver.sh"
KSD=$WEB_WORK/ks
{
    ks_make_pki "$KSD" &&
        sed -i 's/^threads = .*/threads = 1/' "$KSD/keyserver.cnf" &&
        ks_start "$KSD" && ks_keyrefs rsa2048 p256
} >"$WEB_WORK/setup.log" 2>&1 || { cat "$WEB_WORK/setup.log"; exit 1; }
trap web_cleanup EXIT # ks_start installed its own; ours calls it
taskset -a -cp "$KS_CPU" "$KS_PID" >/dev/null || { echo "taskset failed"; exit 1; }

# ---- one delay proxy per RTT > 0, beside the key server ------------------------
declare -A CNF PXPID
# The proxies stand for the network, which takes no CPU from anyone: they run
# SCHED_FIFO (BENCH_PROXY_RT=0: not) so that a busy cpu 1 does not make the
# delay longer.  They still share cpu 1 with the key server.
PX_PRIO=
if [ "${BENCH_PROXY_RT:-1}" != 0 ] && command -v chrt >/dev/null; then
    PX_PRIO="chrt -f 1"
fi
is_zero() { awk -v r="$1" 'BEGIN { exit !(r + 0 == 0) }'; }
for rtt in $RTTS; do
    if is_zero "$rtt"; then
        CNF[$rtt]=$KSD/openssl.cnf
        PXPID[$rtt]=
        continue
    fi
    us=$(awk -v r="$rtt" 'BEGIN { printf "%d", r * 500 }')
    pf=$WEB_WORK/proxy-$rtt.port
    $PX_PRIO taskset -c "$KS_CPU" "$PROXY" --listen 127.0.0.1:0 --to "127.0.0.1:$KS_PORT" \
        --delay-ms 0 --delay-us "$us" --port-file "$pf" 2>"$WEB_WORK/proxy-$rtt.log" &
    PXPID[$rtt]=$!
    web_track "${PXPID[$rtt]}"
    for _ in $(seq 1 100); do
        [ -s "$pf" ] && break
        sleep 0.05
    done
    [ -s "$pf" ] || { echo "delay proxy ($rtt ms) did not start"; cat "$WEB_WORK/proxy-$rtt.log"; exit 1; }
    CNF[$rtt]=$WEB_WORK/openssl-rtt$rtt.cnf
    sed -e "s|^lurk-servers = .*|lurk-servers = https://127.0.0.1:$(cat "$pf")|" \
        "$KSD/openssl.cnf" >"${CNF[$rtt]}"
done

# ---- measuring ----------------------------------------------------------------

# cpu_ns PID...: ns on cpu so far, all threads of the processes
cpu_ns() {
    local p files=()
    for p in "$@"; do
        [ -n "$p" ] && files+=(/proc/"$p"/task/*/schedstat)
    done
    if [ "${#files[@]}" -eq 0 ]; then
        echo 0
        return
    fi
    awk '{ s += $1 } END { printf "%.0f", s }' "${files[@]}" 2>/dev/null || echo 0
}

case_args() { # CASE -> C_KEY C_NAME C_ARGS
    case $1 in
        rsa2048-tls13) C_KEY=rsa2048 C_NAME="RSA-2048 TLS1.3" C_ARGS="-v 1.3" ;;
        rsa2048-tls12) C_KEY=rsa2048 C_NAME="RSA-2048 TLS1.2 ECDHE" C_ARGS="-v 1.2 -c ECDHE-RSA-AES128-GCM-SHA256" ;;
        p256-tls13) C_KEY=p256 C_NAME="P-256 TLS1.3" C_ARGS="-v 1.3" ;;
        p256-tls12) C_KEY=p256 C_NAME="P-256 TLS1.2 ECDHE" C_ARGS="-v 1.2 -c ECDHE-ECDSA-AES128-GCM-SHA256" ;;
        *) echo "run-deploy.sh: unknown case '$1' (BENCH_CASES)" >&2; exit 2 ;;
    esac
}

# measure PORT CONC WARM PXPID -> M_RATE M_ERR M_CPU_WEB M_CPU_KS M_CPU_PX
# (CPU in µs per handshake; the web server's pids in SRV_PIDS; C_ARGS set)
measure() {
    local port=$1 conc=$2 warm=$3 px=$4 out w0 w1 k0 k1 p0 p1 hs
    [ -d "$KSD" ] || { echo "run-deploy.sh: $WEB_WORK was removed under us" >&2; exit 1; }
    # shellcheck disable=SC2086
    timeout 60 taskset -c "$WEB_CPU" "$LOAD" -p "$port" -t "$conc" -d "$warm" -n "$MAX" \
        $C_ARGS "${EXTRA[@]}" >/dev/null 2>&1
    w0=$(cpu_ns "${SRV_PIDS[@]}")
    k0=$(cpu_ns "$KS_PID")
    p0=$(cpu_ns "$px")
    # shellcheck disable=SC2086
    out=$(timeout $((${SECS%.*} + 60)) taskset -c "$WEB_CPU" "$LOAD" -p "$port" -t "$conc" \
        -d "$SECS" -n "$MAX" $C_ARGS "${EXTRA[@]}" 2>"$WEB_WORK/load.err")
    w1=$(cpu_ns "${SRV_PIDS[@]}")
    k1=$(cpu_ns "$KS_PID")
    p1=$(cpu_ns "$px")
    hs=$(sed -n 's/.*handshakes=\([0-9]*\).*/\1/p' <<<"$out")
    hs=${hs:-0}
    M_ERR=$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' <<<"$out")
    M_ERR=${M_ERR:-?}
    M_RATE=$(sed -n 's/.*hs_per_s=\([0-9.]*\).*/\1/p' <<<"$out")
    M_RATE=${M_RATE:-0}
    per_hs() { awk -v d="$1" -v n="$hs" 'BEGIN { printf "%.0f", (n > 0 ? d / 1000 / n : 0) }'; }
    M_CPU_WEB=$(per_hs $((w1 - w0)))
    M_CPU_KS=$(per_hs $((k1 - k0)))
    M_CPU_PX=-
    [ -n "$px" ] && M_CPU_PX=$(per_hs $((p1 - p0)))
    if [ "$M_ERR" != 0 ]; then
        printf -- '- %s, port %s: %s errors; first: %s\n' "$C_NAME" "$port" "$M_ERR" \
            "$(sed -n 's/.*first: //p' "$WEB_WORK/load.err" | head -n 1 | cut -c1-120)" >>"$NOTES"
        # the server's own reason, when it logged one
        [ -n "${SRV_LOG:-}" ] && grep -a -i 'lurk' "$SRV_LOG" 2>/dev/null | tail -n 1 |
            cut -c1-240 | sed 's/^/  server log: /' >>"$NOTES"
    fi
}

warm_for() { awk -v r="$1" 'BEGIN { printf "%.2f", 0.5 + r * 0.05 }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
rate_cell() { # RATE ERRORS
    if [ "$2" = 0 ]; then printf '%.0f' "$1"; else printf '%.0f (%s err)' "$1" "$2"; fi
}
cpu_target() { # KEY RATIO -> ok / MISS against the product's target
    awk -v k="$1" -v r="$2" 'BEGIN {
        t = (k == "p256" ? 1.10 : 0.70)
        printf "%s (<= %.2f)", (r > 0 && r <= t ? "ok" : "MISS"), t }'
}

# ---- nginx ----------------------------------------------------------------------
NGX=$WEB_WORK/nginx
declare -A NP
ngx_start() { # WORKERS CNF -> NGX_PID SRV_PIDS NP[key-local|lurk]
    local w=$1 cnf=$2 k m key i
    mkdir -p "$NGX/logs"
    for k in rsa2048 p256; do
        NP[$k-local]=$(web_free_port)
        NP[$k-lurk]=$(web_free_port)
    done
    {
        cat <<EOF
worker_processes $w;
pid logs/nginx.pid;
error_log logs/error.log warn;
env OPENSSL_CONF;
events { worker_connections 4096; ${BENCH_NGINX_EVENTS:-} }
http {
    access_log off;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    keepalive_timeout 0;
EOF
        for k in rsa2048 p256; do
            for m in local lurk; do
                key=$KSD/$k.key
                [ "$m" = local ] && key=$KSD/keys/$k.pem
                cat <<EOF
    server {
        listen 127.0.0.1:${NP[$k-$m]} ssl backlog=4096 ${BENCH_NGINX_LISTEN:-};
        ssl_certificate     $KSD/$k.crt;
        ssl_certificate_key $key;
        location / { return 200 "ok\n"; }
    }
EOF
            done
        done
        echo "}"
    } >"$NGX/nginx.conf"
    OPENSSL_CONF=$cnf taskset -c "$WEB_CPU" nginx -p "$NGX" -c "$NGX/nginx.conf" \
        -g 'daemon off;' >"$WEB_WORK/nginx.out" 2>&1 &
    NGX_PID=$!
    web_track "$NGX_PID"
    for k in rsa2048 p256; do
        web_wait_port "${NP[$k-lurk]}" || { cat "$NGX/logs/error.log"; exit 1; }
    done
    for i in $(seq 1 100); do
        mapfile -t SRV_PIDS < <(web_children "$NGX_PID")
        [ "${#SRV_PIDS[@]}" -ge "$w" ] && break
        sleep 0.05
    done
    SRV_PIDS+=("$NGX_PID")
    SRV_LOG=$NGX/logs/error.log
}

run_nginx() {
    local w rtt c conc bound lr
    echo
    echo "### nginx $(nginx -v 2>&1 | sed 's|.*/||'): full handshakes, local key file vs lurk"
    echo
    echo "| case | RTT ms | W | conns | local hs/s | lurk hs/s | lurk/local | bound min(local, W/RTT) | lurk/bound | nginx CPU µs/hs local | nginx CPU µs/hs lurk | CPU lurk/local | key server µs/hs | proxy µs/hs | targets |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    for w in $WLIST; do
        # connections a blocked worker has accepted wait for it: keep enough
        # in flight that an idle worker always finds one in the listen queue
        conc=${BENCH_CONC:-$((4 * w + 16))}
        for rtt in $RTTS; do
            ngx_start "$w" "${CNF[$rtt]}"
            sleep 0.3
            for c in $CASES; do
                case_args "$c"
                # a worker that died was replaced by the master: count the new one
                mapfile -t SRV_PIDS < <(web_children "$NGX_PID")
                SRV_PIDS+=("$NGX_PID")
                measure "${NP[$C_KEY-local]}" "$conc" 0.5 ""
                local L_RATE=$M_RATE L_ERR=$M_ERR L_CPU=$M_CPU_WEB
                measure "${NP[$C_KEY-lurk]}" "$conc" "$(warm_for "$rtt")" "${PXPID[$rtt]}"
                bound=$(awk -v l="$L_RATE" -v w="$w" -v r="$rtt" \
                    'BEGIN { b = l; if (r > 0 && w * 1000 / r < b) b = w * 1000 / r; printf "%.0f", b }')
                lr=$(div "$M_RATE" "$bound")
                local cr
                cr=$(div "$M_CPU_WEB" "$L_CPU")
                printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s, cpu %s |\n' \
                    "$C_NAME" "$rtt" "$w" "$conc" "$(rate_cell "$L_RATE" "$L_ERR")" \
                    "$(rate_cell "$M_RATE" "$M_ERR")" "$(div "$M_RATE" "$L_RATE")" "$bound" "$lr" \
                    "$L_CPU" "$M_CPU_WEB" "$cr" "$M_CPU_KS" "$M_CPU_PX" \
                    "$(awk -v r="$lr" 'BEGIN { print (r >= 0.90 ? "rate ok" : "rate MISS") }')" \
                    "$(cpu_target "$C_KEY" "$cr")"
                printf 'nginx\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$rtt" "$w" \
                    "$conc" "$L_RATE" "$M_RATE" "$bound" "$L_CPU" "$M_CPU_WEB" "$M_CPU_KS" \
                    "$M_CPU_PX" "$C_KEY" >>"$TSV"
            done
            web_stop_pid "$NGX_PID" TERM
        done
    done
    print_notes
}

# ---- haproxy --------------------------------------------------------------------
HA=$WEB_WORK/haproxy
declare -A HP
ha_start() { # ASYNC(on|off) CNF -> HA_PID SRV_PIDS HP[key-local|lurk]
    local async=$1 cnf=$2 k m
    mkdir -p "$HA"
    for k in rsa2048 p256; do
        cat "$KSD/$k.crt" "$KSD/keys/$k.pem" >"$HA/$k-local.pem"
        cat "$KSD/$k.crt" "$KSD/$k.key" >"$HA/$k-lurk.pem"
        HP[$k-local]=$(web_free_port)
        HP[$k-lurk]=$(web_free_port)
    done
    {
        cat <<EOF
global
    nbthread 2
    maxconn 4096
    tune.ssl.cachesize 0
    tune.ssl.default-dh-param 2048
$([ "$async" = on ] && echo "    ssl-mode-async")

defaults
    mode http
    timeout connect 5s
    timeout client 20s
    timeout server 20s
    timeout http-request 20s
EOF
        for k in rsa2048 p256; do
            for m in local lurk; do
                cat <<EOF

frontend fe_${k}_$m
    bind 127.0.0.1:${HP[$k-$m]} ssl crt $HA/$k-$m.pem no-tls-tickets
    http-request return status 200 content-type text/plain string "ok"
EOF
            done
        done
    } >"$HA/haproxy.cfg"
    OPENSSL_CONF=$cnf taskset -c "$WEB_CPU" haproxy -db -f "$HA/haproxy.cfg" \
        >"$WEB_WORK/haproxy.log" 2>&1 &
    HA_PID=$!
    web_track "$HA_PID"
    for k in rsa2048 p256; do
        web_wait_port "${HP[$k-lurk]}" || { cat "$WEB_WORK/haproxy.log"; exit 1; }
    done
    SRV_PIDS=("$HA_PID")
    SRV_LOG=$WEB_WORK/haproxy.log
}

# A web server that died in a case (e.g. a provider bug) is started again
# for the next one; the row says so.
ha_alive_or_restart() { # ASYNC CNF
    web_alive "$HA_PID" && return 0
    wait "$HA_PID" 2>/dev/null
    ha_start "$1" "$2"
    sleep 0.3
}

run_haproxy() {
    local mode rtt c
    echo
    echo "### haproxy $(haproxy -v 2>/dev/null | sed -n '1s/.*version \([^ ]*\).*/\1/p'), nbthread 2: full handshakes, local key file vs lurk"
    echo
    echo "| case | RTT ms | ssl-mode-async | conns | local hs/s | lurk hs/s | lurk/local | haproxy CPU µs/hs local | haproxy CPU µs/hs lurk | CPU lurk/local | key server µs/hs | proxy µs/hs | target |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    for mode in $HA_MODES; do
        for rtt in $RTTS; do
            ha_start "$mode" "${CNF[$rtt]}"
            sleep 0.3
            for c in $CASES; do
                case_args "$c"
                ha_alive_or_restart "$mode" "${CNF[$rtt]}"
                measure "${HP[$C_KEY-local]}" "$HA_CONC" 0.5 ""
                local L_RATE=$M_RATE L_ERR=$M_ERR L_CPU=$M_CPU_WEB ratio tgt=-
                measure "${HP[$C_KEY-lurk]}" "$HA_CONC" "$(warm_for "$rtt")" "${PXPID[$rtt]}"
                ratio=$(div "$M_RATE" "$L_RATE")
                if ! web_alive "$HA_PID"; then
                    M_ERR="$M_ERR, haproxy died: $(grep -a -m1 -i -E 'segmentation|abort|fatal|alert' \
                        "$WEB_WORK/haproxy.log" | cut -c1-80)"
                    cp "$WEB_WORK/haproxy.log" "$WEB_WORK/haproxy-died-$mode-$rtt-$c.log"
                fi
                if [ "$mode" = on ]; then
                    tgt=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.80 ? "ok" : "MISS") " (>= 0.80)" }')
                fi
                printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
                    "$C_NAME" "$rtt" "$mode" "$HA_CONC" "$(rate_cell "$L_RATE" "$L_ERR")" \
                    "$(rate_cell "$M_RATE" "$M_ERR")" "$ratio" "$L_CPU" "$M_CPU_WEB" \
                    "$(div "$M_CPU_WEB" "$L_CPU")" "$M_CPU_KS" "$M_CPU_PX" "$tgt"
                printf 'haproxy-async-%s\t%s\t%s\t2\t%s\t%s\t%s\t-\t%s\t%s\t%s\t%s\t%s\n' "$mode" \
                    "$c" "$rtt" "$HA_CONC" "$L_RATE" "$M_RATE" "$L_CPU" "$M_CPU_WEB" \
                    "$M_CPU_KS" "$M_CPU_PX" "$C_KEY" >>"$TSV"
            done
            web_stop_pid "$HA_PID" TERM
        done
    done
    print_notes
}

# ---- the run ----------------------------------------------------------------------
echo "## run-deploy.sh: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cpus, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "key server pid $KS_PID (threads = 1) and delay proxies on cpu $KS_CPU; web server and handshake_load on cpu $WEB_CPU;"
echo "$SECS s per measured run, full handshakes only (no session cache, no tickets); CPU = schedstat ns of all threads, per handshake."
echo
echo "| added RTT ms | key server reached at | lurk ping p50 µs (10 pings) |"
echo "|---|---|---|"
for rtt in $RTTS; do
    # "ping: 0.046 ms" per ping; the first one includes connecting
    p50=$("$LURK_CLI" --conf "${CNF[$rtt]}" ping -c 11 2>/dev/null |
        sed -n 's/^ping: \([0-9.]*\) ms$/\1/p' | tail -n +2 | sort -g |
        awk '{ a[NR] = $1 * 1000 } END { if (NR) printf "%.0f", a[int((NR + 1) / 2)]; else print "?" }')
    echo "| $rtt | $(sed -n 's/^lurk-servers = //p' "${CNF[$rtt]}") | $p50 |"
done

for s in $SERVERS; do
    case $s in
        nginx) web_require nginx; run_nginx ;;
        haproxy) web_require haproxy; run_haproxy ;;
        *) echo "run-deploy.sh: unknown server '$s' (BENCH_SERVERS)" >&2; exit 2 ;;
    esac
done

# ---- targets ----------------------------------------------------------------------
echo
echo "### targets"
echo
max_rtt=$(for r in $RTTS; do echo "$r"; done | sort -g | tail -n 1)
awk -F'\t' -v maxrtt="$max_rtt" '
    function med(arr, n,   i, j, t) {
        for (i = 2; i <= n; i++) for (j = i; j > 1 && arr[j - 1] > arr[j]; j--) {
            t = arr[j]; arr[j] = arr[j - 1]; arr[j - 1] = t }
        return n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
    }
    $1 == "nginx" {
        n++; r = ($8 > 0 ? $7 / $8 : 0)
        if (r >= 0.90) ok++; else miss = miss sprintf(" %s@%sms/W%s=%.2f", $2, $3, $4, r)
        if ($9 > 0) { k = $13; nc[k]++; cr[k, nc[k]] = $10 / $9 }
        if ($9 > 0 && $3 + 0 == 0) { k = $13; nz[k]++; cz[k, nz[k]] = $10 / $9 }
    }
    $1 == "haproxy-async-on" && $3 + 0 == maxrtt + 0 {
        ha = ha sprintf(" %s=%.2f%s", $2, ($6 > 0 ? $7 / $6 : 0), ($6 > 0 && $7 / $6 >= 0.80 ? "" : " (MISS)"))
    }
    END {
        if (n) printf "- nginx lurk >= 0.90 x min(local, W/RTT): %d of %d rows%s\n", ok, n,
            (miss != "" ? "; missed:" miss : "")
        for (k in nc) {
            m = nc[k]; for (i = 1; i <= m; i++) v[i] = cr[k, i]
            t = (k == "p256" ? 1.10 : 0.70)
            printf "- nginx CPU per full handshake, lurk / local, %s: median %.2f over all %d rows (target <= %.2f): %s",
                k, med(v, m), m, t, (med(v, m) <= t ? "met" : "not met")
            delete v
            m = nz[k]; for (i = 1; i <= m; i++) v[i] = cz[k, i]
            if (m) printf "; busy workers (RTT 0 rows): median %.2f over %d rows: %s",
                med(v, m), m, (med(v, m) <= t ? "met" : "not met")
            printf "\n"
            delete v
        }
        if (ha != "") printf "- haproxy nbthread 2 ssl-mode-async at %s ms, lurk / local (target >= 0.80):%s\n", maxrtt, ha
    }' "$TSV"
n=0
for rtt in $RTTS; do
    [ -n "${PXPID[$rtt]}" ] || continue
    kill -USR1 "${PXPID[$rtt]}" 2>/dev/null
    n=$((n + 1))
done
[ "$n" -gt 0 ] && sleep 0.2 && echo &&
    echo "delay proxies (late_us_mean: mean error of the one-way delay; cpu_us_per_msg: proxy CPU per relayed chunk):"
for rtt in $RTTS; do
    [ -n "${PXPID[$rtt]}" ] || continue
    echo "- RTT $rtt ms: $(tail -n 1 "$WEB_WORK/proxy-$rtt.log" | sed 's/^lurk-delay-proxy: //')"
done
[ -n "${BENCH_TSV:-}" ] && echo "rows: $TSV"
exit 0
