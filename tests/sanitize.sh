#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The sanitizer lane: lurk built again with AddressSanitizer (leaks
# included) and UndefinedBehaviorSanitizer, then the unit, integration and
# provider suites run on that build.  Called by tests/check.sh; alone:
#
#   bash tests/sanitize.sh [meson test args]   # LURK_ASAN_BUILD_DIR (default build-asan)
#
# It fails when a test fails or when any process left a sanitizer report,
# even one whose exit status no test looks at (a key server stopped by
# SIGTERM, an openssl command expected to fail): every report goes to a
# file under $build/sanitize-logs/, printed at the end.
#
# How the harness is made quiet without hiding findings:
#   - UBSan: -fno-sanitize-recover=undefined, so any finding aborts.
#   - lurk.so in programs that are not instrumented (the openssl CLI, and
#     python3, whose ssl module loads lurk.so when OPENSSL_CONF names a
#     test's provider config): the ASan runtime must be the first library of
#     such a process, so $build/sanitize-bin/ holds wrappers, first in PATH,
#     that exec the real program with LD_PRELOAD of the libasan lurk.so
#     links.  openssl always, with leak checking (leaks of lurk.so inside
#     openssl are ours); python3 only when OPENSSL_CONF is set, with
#     detect_leaks=0, since CPython does not free its heap at exit (and an
#     ASan python3 starts slowly enough to miss the 5 s start-up waits of
#     the fake servers).  Memory errors are caught in both.  Any other
#     program that loads lurk.so unwrapped dies with "ASan runtime does not
#     come first": loud, not hidden.
#   - Check: CK_FORK=no.  A forked Check child runs one test and calls
#     exit() inside srunner_run_all, so it never reaches the code after it
#     that frees what main() set up: test_handler's key-store fixture has a
#     private OSSL_LIB_CTX, the child's keygen (EVP_PKEY_Q_keygen ->
#     RAND_priv_bytes_ex -> EVP_RAND_instantiate) makes DRBGs in it, and
#     OPENSSL_cleanup at exit drops the last pointers to them (3 x 184 bytes
#     per child, "lost").  In one process main() frees the fixture and
#     nothing is reported; each test binary also gets one leak check over
#     all its tests.
#   - LSan suppressions: tests/lsan.supp, narrow, each entry justified there.
#   - Processes that end with _exit() (test_fork's and test_client's
#     children) or by SIGKILL are not leak-checked; their parents are.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${LURK_ASAN_BUILD_DIR:-$top/build-asan}

bash "$top/tests/deps.sh" || exit 1

lane_result() {
    echo "{\"name\": \"lurk:sanitize / no sanitizer reports\", \"result\": \"$1\"}"
}
# Until the lane ends, it has not passed.
mkdir -p "$build" && lane_result FAIL > "$build/sanitize-testlog.json" || exit 1

opts=(-Db_sanitize=address,undefined -Db_lundef=false
      -Dc_args=-fno-sanitize-recover=undefined)
if [ -f "$build/build.ninja" ]; then
    meson setup --reconfigure "${opts[@]}" "$build" "$top" >/dev/null || exit 1
else
    meson setup "${opts[@]}" "$build" "$top" >/dev/null || exit 1
fi
ninja -C "$build" || exit 1

libasan=$(ldd "$build/provider/lurk.so" | awk '$1 ~ /^libasan/ { print $3 }')
if [ ! -f "$libasan" ]; then
    echo "sanitize: lurk.so does not link libasan" >&2
    exit 1
fi

logs=$build/sanitize-logs
rm -rf "$logs" && mkdir -p "$logs" || exit 1

# Wrappers for the uninstrumented programs that load lurk.so.
bin=$build/sanitize-bin
mkdir -p "$bin" || exit 1
wrap() {  # wrap NAME CONDITION [ASAN_OPTIONS additions]
    local real
    real=$(PATH=${PATH#"$bin:"} command -v "$1") || { echo "sanitize: no $1" >&2; exit 1; }
    cat > "$bin/$1" <<EOF
#!/bin/sh
# Written by tests/sanitize.sh: $real with the ASan runtime first (when $2).
if $2; then
    LD_PRELOAD=$libasan\${LD_PRELOAD:+:\$LD_PRELOAD} ASAN_OPTIONS=\$ASAN_OPTIONS${3:+:$3} exec $real "\$@"
fi
exec $real "\$@"
EOF
    chmod 755 "$bin/$1"
}
wrap openssl true
wrap python3 '[ -n "${OPENSSL_CONF:-}" ]' detect_leaks=0
export PATH=$bin:$PATH

# Reports go to files (log_path), whoever reads the process's stderr.
# LURK_ASAN_OPTIONS adds options: libcrypto has no frame pointers, so the
# fast unwinder stops a malloc stack at CRYPTO_malloc; to see the callers of
# a leak inside libcrypto, rerun with LURK_ASAN_OPTIONS=fast_unwind_on_malloc=0
# (exact, but it makes every test several times slower: timeouts).
export ASAN_OPTIONS=detect_leaks=1:log_path=$logs/asan:log_exe_name=1${LURK_ASAN_OPTIONS:+:$LURK_ASAN_OPTIONS}
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$logs/ubsan:log_exe_name=1
export LSAN_OPTIONS=suppressions=$top/tests/lsan.supp:print_suppressions=0
export CK_FORK=no

start=$SECONDS
meson test -C "$build" --print-errorlogs --num-processes "$(nproc)" --timeout-multiplier 2 \
    --suite unit --suite integration --suite provider "$@"
rc=$?

# $build/sanitize-testlog.json: meson's results and one more line, "no
# sanitizer reports", for tests/check.sh's closing line.
reports=$(find "$logs" -type f | sort)
result=OK
if [ -n "$reports" ]; then
    for f in $reports; do
        echo "==== sanitizer report $f"
        cat "$f"
    done
    echo "sanitize: $(echo "$reports" | wc -l) sanitizer report(s)" >&2
    result=FAIL
    rc=1
fi
{
    cat "$build/meson-logs/testlog.json"
    lane_result "$result"
} > "$build/sanitize-testlog.json"
echo "sanitize: lane took $((SECONDS - start)) s, exit $rc"
exit $rc
