#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The README's test command: installs what is missing, builds lurk and runs
# every test suite (unit, integration, provider, web), then the sanitizer
# lane (tests/sanitize.sh).  Extra arguments go to `meson test` (e.g. --suite
# unit) and skip the lane.  LURK_BUILD_DIR picks the build dir.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${LURK_BUILD_DIR:-$top/build}

bash "$top/tests/deps.sh" || exit 1

if [ -f "$build/build.ninja" ]; then
    meson setup --reconfigure "$build" "$top" >/dev/null || exit 1
else
    meson setup "$build" "$top" >/dev/null || exit 1
fi
ninja -C "$build" || exit 1

meson test -C "$build" --print-errorlogs --num-processes "$(nproc)" "$@"
rc=$?
summary=$build/meson-logs/testlog.json

# The sanitizer lane: an ASan+UBSan build runs the unit, integration and
# provider suites again (tests/sanitize.sh).  Full runs only; LURK_SANITIZE=0
# skips it.  Its results join the closing line.
if [ $# -eq 0 ] && [ "${LURK_SANITIZE:-1}" != 0 ]; then
    bash "$top/tests/sanitize.sh" || rc=1
    cat "$summary" "${LURK_ASAN_BUILD_DIR:-$top/build-asan}/sanitize-testlog.json" \
        > "$build/meson-logs/check-testlog.json"
    summary=$build/meson-logs/check-testlog.json
fi

# One plain closing line, whatever meson's own summary looks like.
python3 - "$summary" <<'PY'
import json, sys
passed = failed = skipped = 0
try:
    with open(sys.argv[1]) as f:
        for line in f:
            r = json.loads(line).get("result")
            if r in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif r == "SKIP":
                skipped += 1
            else:
                failed += 1
except OSError:
    pass
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
exit $rc
