#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# tests/fuzz/run.sh - builds the libFuzzer targets of tests/fuzz in their own
# clang build (-Dfuzzing=true, ASan + UBSan), replays every seed corpus, then
# fuzzes each target for a bounded time.  Any crash, leak, sanitizer report,
# timeout or broken property fails the run and prints the reproducer.
#
#   bash tests/fuzz/run.sh [TARGET...]      (default: every target)
#
# LURK_FUZZ_TIME   seconds of fuzzing per target (default 20; 0: replay only)
# LURK_FUZZ_JOBS   targets fuzzed at once (default: the number of CPUs)
# LURK_FUZZ_BUILD  the clang build dir (default: <build dir>-fuzz, i.e. build-fuzz)
# LURK_FUZZ_OUT    where logs, new inputs and crashes go (default: a new temp dir)
#
# New inputs found while fuzzing stay in LURK_FUZZ_OUT/new/TARGET; the
# committed corpus (tests/fuzz/corpus/TARGET) is only read.  Exit 77 (skip)
# when clang or libFuzzer is missing (tests/deps.sh installs them).
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
here=$top/tests/fuzz
build=${LURK_FUZZ_BUILD:-${LURK_BUILD_ROOT:-$top/build}-fuzz}
fuzz_time=${LURK_FUZZ_TIME:-20}
jobs=${LURK_FUZZ_JOBS:-$(nproc)}
out=${LURK_FUZZ_OUT:-$(mktemp -d /tmp/lurk-fuzz.XXXXXX)}
all_targets=(request response json base64url base32 keyref_der keyref_pem policy handler http_reply
             http1 config)
if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=("${all_targets[@]}")
fi

say() { echo "fuzz: $*"; }

if ! command -v clang >/dev/null; then
    say "SKIP: no clang (tests/deps.sh installs it)"
    exit 77
fi
if ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' \
        | clang -x c -fsanitize=fuzzer -o /dev/null - 2>/dev/null; then
    say "SKIP: clang cannot link libFuzzer (package libclang-rt-14-dev)"
    exit 77
fi

# ---- build ----------------------------------------------------------------
t0=$(date +%s)
if [ -f "$build/build.ninja" ]; then
    meson setup --reconfigure "$build" "$top" >"$out/setup.log" 2>&1
else
    CC=clang meson setup "$build" "$top" -Dfuzzing=true -Dtests=disabled \
        -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized \
        >"$out/setup.log" 2>&1
fi || { cat "$out/setup.log"; say "FAIL: meson setup $build"; exit 1; }
ninja_targets=()
for t in "${targets[@]}"; do
    ninja_targets+=("tests/fuzz/fuzz_$t")
done
if ! ninja -C "$build" "${ninja_targets[@]}" >"$out/build.log" 2>&1; then
    tail -n 40 "$out/build.log"
    say "FAIL: build"
    exit 1
fi
say "built ${#targets[@]} targets in $(( $(date +%s) - t0 )) s ($build)"

# Sanitizers: stop at the first report, with a symbolized stack.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:symbolize=1}
if ! command -v llvm-symbolizer >/dev/null && command -v llvm-symbolizer-14 >/dev/null; then
    export ASAN_SYMBOLIZER_PATH=$(command -v llvm-symbolizer-14)
fi

dict_for() {
    case $1 in
    request | response | json | handler) echo "-dict=$here/lurk-json.dict" ;;
    esac
}

# ---- replay: every committed input, one by one -----------------------------
failed=0
for t in "${targets[@]}"; do
    seeds=("$here/corpus/$t"/*)
    if [ ! -e "${seeds[0]}" ]; then
        say "FAIL: $t: no corpus in tests/fuzz/corpus/$t"
        failed=1
        continue
    fi
    if ! "$build/tests/fuzz/fuzz_$t" -timeout=10 "${seeds[@]}" >"$out/replay-$t.log" 2>&1; then
        tail -n 40 "$out/replay-$t.log"
        say "FAIL: $t: a corpus input fails (log: $out/replay-$t.log)"
        failed=1
    fi
done
[ $failed -eq 0 ] && say "replayed the corpus of ${#targets[@]} targets"
if [ "$fuzz_time" -le 0 ] || [ $failed -ne 0 ]; then
    [ $failed -eq 0 ] && say "PASS (replay only)"
    exit $failed
fi

# ---- fuzz: each target for fuzz_time seconds, jobs at a time ---------------
fuzz_one() {
    local t=$1
    mkdir -p "$out/new/$t" "$out/crashes"
    # shellcheck disable=SC2046
    "$build/tests/fuzz/fuzz_$t" -max_total_time="$fuzz_time" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$out/crashes/$t-" $(dict_for "$t") \
        "$out/new/$t" "$here/corpus/$t" >"$out/fuzz-$t.log" 2>&1
    echo $? >"$out/fuzz-$t.rc"
}
export -f fuzz_one dict_for
export build out here fuzz_time
t0=$(date +%s)
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'fuzz_one {}'
for t in "${targets[@]}"; do
    rc=$(cat "$out/fuzz-$t.rc" 2>/dev/null || echo 1)
    stats=$(grep -E '^#[0-9]+.*DONE' "$out/fuzz-$t.log" | tail -n 1 \
            | sed -E 's/.*(cov: [0-9]+).*(corp: [^ ]+).*(exec\/s: [0-9]+).*/\1 \2 \3/')
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/fuzz-$t.log")
    if [ "$rc" != 0 ]; then
        failed=1
        grep -E 'ERROR|runtime error|property broken|SUMMARY' "$out/fuzz-$t.log" | head -n 5
        for a in "$out/crashes/$t-"*; do
            [ -e "$a" ] || continue
            say "FAIL: $t: reproducer $a"
            say "      rerun: $build/tests/fuzz/fuzz_$t $a"
            if [ "$(stat -c %s "$a")" -le 4096 ]; then
                say "      the input, base64: $(base64 -w0 "$a")"
            fi
        done
        say "FAIL: $t (log: $out/fuzz-$t.log)"
    else
        say "ok   $t: ${runs:-?} runs, $stats"
    fi
done
say "fuzzed ${#targets[@]} targets x ${fuzz_time} s, $jobs at a time, in $(( $(date +%s) - t0 )) s"
if [ $failed -ne 0 ]; then
    say "FAIL (logs and reproducers in $out)"
    exit 1
fi
say "PASS"
[ -z "${LURK_FUZZ_OUT:-}" ] && rm -rf "$out"
exit 0
