#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Key-server capacity on ONE core: lurk-keyserver with threads = 1 pinned to
# CPU 1, tests/bench/pipeline_load (one thread, epoll, mutual TLS) on CPU 0.
# For RSA-2048 (PSS) and P-256 (ECDSA) signs: many clients without pipelining
# (CONNS_FLAT connections, 1 request in flight each) and with pipelining
# (CONNS_PIPE connections, DEPTH in flight each), as a fraction of
# `openssl speed` single-core signs/s on the same CPU, measured in the same
# run.  Then the head-of-line check: P-256 sign latency on one connection,
# alone and while another connection streams RSA-4096 signs (DEPTH deep).
# Prints markdown tables.
#
#   tests/bench/run-capacity.sh [BUILD_DIR]
#   env: SECS (per case, default 3), CONNS_FLAT (64), CONNS_PIPE (16),
#        DEPTH (16), LURK_KEYSERVER (another server binary to measure)
#
# queue_max_ms is set to 60000 so that the capacity is measured, not the
# shedding (at 16 x 16 RSA-2048 requests in flight a request waits ~80 ms).
# Each case is bounded (SECS plus a 0.5 s warm-up); every process started
# here is stopped by pid.  On a shared machine the numbers are only as quiet
# as the machine: the script prints the load average before and after.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${LURK_BUILD_DIR:-$top/build}
if [ $# -gt 0 ] && [ -d "$1" ]; then
    build=$(cd "$1" && pwd)
    shift
fi
load=$build/tests/bench/pipeline_load
export LURK_SOURCE_ROOT=$top
export LURK_KEYSERVER=${LURK_KEYSERVER:-$build/server/lurk-keyserver}
export LURK_PROVIDER=${LURK_PROVIDER:-$build/provider/lurk.so}
[ -x "$load" ] && [ -x "$LURK_KEYSERVER" ] || {
    echo "run-capacity.sh: build first: ninja -C $build" >&2
    exit 1
}
[ "$(nproc)" -ge 2 ] || { echo "run-capacity.sh: needs 2 CPUs (server on 1, load on 0)" >&2; exit 1; }
secs=${SECS:-3}
conns_flat=${CONNS_FLAT:-64}
conns_pipe=${CONNS_PIPE:-16}
depth=${DEPTH:-16}

work=$(mktemp -d "${TMPDIR:-/tmp}/lurk-bench-capacity.XXXXXX")
# shellcheck source=../lib/keyserver.sh
. "$top/tests/lib/keyserver.sh"
ks_on_exit "rm -rf '$work'"
ks_make_pki "$work" >"$work/make-pki.log" 2>&1 || { cat "$work/make-pki.log"; exit 1; }
sed -i 's/^threads = .*/threads = 1/' "$work/keyserver.cnf"
sed -i 's/^\[keyserver\]$/[keyserver]\nqueue_max_ms = 60000/' "$work/keyserver.cnf"
if ! "$LURK_KEYSERVER" --config "$work/keyserver.cnf" --check >/dev/null 2>&1; then
    sed -i '/^queue_max_ms/d' "$work/keyserver.cnf" # a server from before queue_max_ms
fi

echo "uptime before: $(uptime)"
# openssl speed on the server's CPU: the single-core ceiling
speed() { # ALG -> signs/s
    taskset -c 1 env -u OPENSSL_CONF openssl speed -seconds "$secs" "$1" 2>/dev/null |
        awk -v a="$1" '
            a == "rsa2048" && $1 == "rsa" && $2 == "2048" { print $6 }
            a == "ecdsap256" && $1 == "256" && $3 == "ecdsa" { print $(NF-1) }'
}
# measured before and after the cases; the mean is the reference
rsa_speed1=$(speed rsa2048)
ec_speed1=$(speed ecdsap256)

ks_start "$work" >/dev/null
taskset -pc 1 "$KS_PID" >/dev/null
rsa=$(ks_keyid rsa2048 "$work")
rsa4096=$(ks_keyid rsa4096 "$work")
ec=$(ks_keyid p256 "$work")

run() { # OP KEYID CONNS DEPTH [SECONDS] -> RESULT line
    taskset -c 0 "$load" --port "$KS_PORT" --dir "$work" --op "$1" --key-id "$2" \
        --conns "$3" --depth "$4" --seconds "${5:-$secs}" --server-pid "$KS_PID"
}
field() { # RESULT-LINE NAME
    sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"
}

# the cases, then the second openssl speed (the server idle), then the table
rows=()
for spec in "RSA-2048 rsa $rsa" "P-256 ec $ec"; do
    set -- $spec
    name=$1 op=$2 key=$3
    for shape in "$conns_flat 1 no pipelining" "$conns_pipe $depth pipelined"; do
        set -- $shape
        rows+=("$name|$op|${*:3}|$1|$2|$(run "$op" "$key" "$1" "$2")")
    done
done
ping=$(run ping x "$conns_pipe" "$depth")
rsa_speed2=$(speed rsa2048)
ec_speed2=$(speed ecdsap256)
rsa_speed=$(awk -v a="$rsa_speed1" -v b="$rsa_speed2" 'BEGIN { print (a + b) / 2 }')
ec_speed=$(awk -v a="$ec_speed1" -v b="$ec_speed2" 'BEGIN { print (a + b) / 2 }')

echo
echo "Key-server capacity, one core (threads = 1 on CPU 1; load on CPU 0; ${secs} s per case)"
echo
echo "| case | connections x in flight | signs/s | of openssl speed | server CPU/request | by CPU time | p50 | p99 | 503 |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
for row in "${rows[@]}"; do
    IFS='|' read -r name op shape conns dep r <<<"$row"
    ref=$rsa_speed
    [ "$op" = ec ] && ref=$ec_speed
    rps=$(field "$r" rps)
    cpu=$(field "$r" srv_cpu_us)
    printf '| %s, %s | %s x %s | %.0f | %.0f %% | %s us | %.0f %% | %s ms | %s ms | %s |\n' \
        "$name" "$shape" "$conns" "$dep" "$rps" "$(awk -v a="$rps" -v b="$ref" 'BEGIN { print 100 * a / b }')" \
        "$cpu" "$(awk -v c="$cpu" -v b="$ref" 'BEGIN { print (c > 0 ? 100 * 1e6 / c / b : 0) }')" \
        "$(field "$r" p50_ms)" "$(field "$r" p99_ms)" "$(field "$r" shed)"
done
printf '| Ping (front only), pipelined | %s x %s | %.0f | - | %s us | - | %s ms | %s ms | %s |\n' \
    "$conns_pipe" "$depth" "$(field "$ping" rps)" "$(field "$ping" srv_cpu_us)" "$(field "$ping" p50_ms)" \
    "$(field "$ping" p99_ms)" "$(field "$ping" shed)"
echo
printf 'openssl speed on CPU 1 (before / after the cases; the mean is the reference):\n'
printf '  RSA-2048 %.0f / %.0f signs/s, P-256 %.0f / %.0f signs/s\n' "$rsa_speed1" "$rsa_speed2" \
    "$ec_speed1" "$ec_speed2"
echo "(openssl speed counts its own CPU time; \"of openssl speed\" is signs/s by the wall"
echo "clock, \"by CPU time\" is 1 s / server CPU per request against it: the two agree when"
echo "the server had CPU 1 to itself, the second is what to compare when it did not)"

# Head of line: P-256 latency, one connection, 1 in flight.
echo
echo "P-256 sign latency on one connection while another streams RSA-4096 signs ($depth deep), one loop"
echo
echo "| P-256 latency | p50 | p99 |"
echo "|---|---:|---:|"
r=$(run rsa "$rsa4096" 1 1 2)
printf '| (one RSA-4096 sign alone, for scale) | %s ms | %s ms |\n' "$(field "$r" p50_ms)" "$(field "$r" p99_ms)"
r=$(run ec "$ec" 1 1 2)
printf '| alone | %s ms | %s ms |\n' "$(field "$r" p50_ms)" "$(field "$r" p99_ms)"
taskset -c 0 "$load" --port "$KS_PORT" --dir "$work" --op rsa --key-id "$rsa4096" \
    --conns 1 --depth "$depth" --seconds 4 --server-pid "$KS_PID" >"$work/stream.out" &
stream=$!
r=$(run ec "$ec" 1 1 2)
wait "$stream" || true
printf '| behind the RSA-4096 stream | %s ms | %s ms |\n' "$(field "$r" p50_ms)" "$(field "$r" p99_ms)"
ks_stop
echo
echo "uptime after: $(uptime)"
