#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# run-provider.sh [BUILD_DIR] [ITERATIONS]: starts a key server with the
# shared test harness (tests/lib/keyserver.sh; key references made with
# `lurk keyref`) and runs bench_provider against it.
set -u
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$SRC/build}
# absolute: OpenSSL resolves a relative module path against its own modules dir
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "run-provider.sh: no build dir ${1:-$SRC/build}" >&2; exit 1; }
export LURK_KEYSERVER=$BUILD/server/lurk-keyserver LURK_CLI=$BUILD/client/lurk
export LURK_PROVIDER=$BUILD/provider/lurk.so
. "$SRC/tests/lib/keyserver.sh"
T=$(mktemp -d /tmp/lurk-bench-prov-XXXXXX)
ks_on_exit "rm -rf '$T'"
{ ks_make_pki "$T" && ks_start "$T" && ks_keyrefs rsa2048-sign p256-sign; } > "$T/setup.log" 2>&1 ||
    { cat "$T/setup.log"; exit 1; }
"$BUILD/tests/bench/bench_provider" "$T" "${2:-500}"
