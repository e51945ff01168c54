#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# run-provider.sh [BUILD_DIR] [ITERATIONS]: starts a key server with the
# provider test environment (tests/provider/prov_env.sh) and runs
# bench_provider against it.
set -u
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$SRC/build}
export LURK_KEYSERVER=$BUILD/server/lurk-keyserver LURK_CLI=$BUILD/client/lurk
export LURK_PROVIDER=$BUILD/provider/lurk.so
. "$SRC/tests/provider/prov_env.sh"
T=$(mktemp -d /tmp/lurk-bench-prov-XXXXXX)
trap 'pv_stop; rm -rf "$T"' EXIT
pv_setup "$T" > "$T/setup.log" 2>&1 || { cat "$T/setup.log"; exit 1; }
"$BUILD/tests/bench/bench_provider" "$T" "${2:-500}"
