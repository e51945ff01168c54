#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Key-server capacity on ONE core: lurk-keyserver with threads = 1 pinned to
# CPU 1, tests/bench/pipeline_load (one thread, epoll, mutual TLS) on CPU 0.
# For RSA-2048 (PSS) and P-256 (ECDSA) signs: many clients without pipelining
# (CONNS_FLAT connections, 1 request in flight each) and with pipelining
# (CONNS_PIPE connections, DEPTH in flight each), as a fraction of
# `openssl speed` single-core signs/s on the same CPU, measured in the same
# run (right before each case, as this VM's CPU speed drifts).  Then the
# head-of-line check: P-256 sign latency on one connection,
# alone and while another connection streams RSA-4096 signs (DEPTH deep).
# Prints markdown tables.
#
#   tests/bench/run-capacity.sh [BUILD_DIR]
#   env: SECS (per case, default 3), REPEAT (each case, default 3),
#        CONNS_FLAT (64), CONNS_PIPE (16), DEPTH (16),
#        LURK_KEYSERVER (another server binary to measure)
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
repeat=${REPEAT:-3}

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
refsecs=$(( secs > 1 ? secs - 1 : 1 ))
speed() { # ALG -> signs/s
    taskset -c 1 env -u OPENSSL_CONF openssl speed -seconds "$refsecs" "$1" 2>/dev/null |
        awk -v a="$1" '
            a == "rsa2048" && $1 == "rsa" && $2 == "2048" { print $6 }
            a == "ecdsap256" && $1 == "256" && $3 == "ecdsa" { print $(NF-1) }'
}
# at the start and the end, for the record; each case has its own
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

# Each case REPEAT times, each time right after its own openssl speed (the
# server idle): this VM's CPU speed drifts by 10-20 % within a minute.  A
# row gives medians, and the spread of the two ratios over the repeats.
med() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
rows=()
for spec in "RSA-2048 rsa $rsa rsa2048" "P-256 ec $ec ecdsap256"; do
    set -- $spec
    name=$1 op=$2 key=$3 alg=$4
    for shape in "$conns_flat 1 no pipelining" "$conns_pipe $depth pipelined"; do
        set -- $shape
        samples=""
        for ((k = 0; k < repeat; k++)); do
            ref=$(speed "$alg")
            r=$(run "$op" "$key" "$1" "$2")
            samples+="$ref $(field "$r" rps) $(field "$r" srv_cpu_us) $(field "$r" p50_ms) $(field "$r" p99_ms) $(field "$r" shed);"
        done
        rows+=("$name, ${*:3}|$1 x $2|$samples")
    done
done
ping=$(run ping x "$conns_pipe" "$depth")
rsa_speed2=$(speed rsa2048)
ec_speed2=$(speed ecdsap256)

echo
echo "Key-server capacity, one core (threads = 1 on CPU 1; load on CPU 0; ${secs} s per case, median of $repeat)"
echo
echo "| case | connections x in flight | signs/s | openssl speed | of openssl speed (min-max) | server CPU/request | by CPU time (min-max) | p50 | p99 | 503 |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for row in "${rows[@]}"; do
    IFS='|' read -r label shape samples <<<"$row"
    samples=$(tr ';' '\n' <<<"$samples" | sed '/^ *$/d')
    col() { awk -v c="$1" '{ print $c }' <<<"$samples" | med; }
    wall=$(awk '{ print 100 * $2 / $1 }' <<<"$samples")
    bycpu=$(awk '{ print ($3 > 0 ? 100 * 1e6 / $3 / $1 : 0) }' <<<"$samples")
    printf '| %s | %s | %.0f | %.0f | %.0f %% (%.0f-%.0f) | %s us | %.0f %% (%.0f-%.0f) | %s ms | %s ms | %s |\n' \
        "$label" "$shape" "$(col 2)" "$(col 1)" \
        "$(med <<<"$wall")" "$(sort -g <<<"$wall" | head -1)" "$(sort -g <<<"$wall" | tail -1)" \
        "$(col 3)" \
        "$(med <<<"$bycpu")" "$(sort -g <<<"$bycpu" | head -1)" "$(sort -g <<<"$bycpu" | tail -1)" \
        "$(col 4)" "$(col 5)" "$(awk '{ s += $6 } END { print s }' <<<"$samples")"
done
printf '| Ping (front only), pipelined | %s x %s | %.0f | - | - | %s us | - | %s ms | %s ms | %s |\n' \
    "$conns_pipe" "$depth" "$(field "$ping" rps)" "$(field "$ping" srv_cpu_us)" "$(field "$ping" p50_ms)" \
    "$(field "$ping" p99_ms)" "$(field "$ping" shed)"
echo
printf 'openssl speed on CPU 1 (the reference of each repeat: measured right before it, %s s;\n' "$refsecs"
printf 'at the start / end of the run): RSA-2048 %.0f / %.0f signs/s, P-256 %.0f / %.0f signs/s\n' \
    "$rsa_speed1" "$rsa_speed2" "$ec_speed1" "$ec_speed2"
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
