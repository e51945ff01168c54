#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# with_server.sh PROGRAM: runs a provider test program against a fresh key
# server (prov_env.sh); the program gets the directory as its argument.
set -u
. "$(dirname "$0")/prov_env.sh"
T=$(mktemp -d /tmp/lurk-prov-run-XXXXXX)
trap 'pv_stop' EXIT
pv_setup "$T" > "$T/setup.log" 2>&1 || { cat "$T/setup.log"; echo "setup failed"; exit 1; }
"$1" "$T"
rc=$?
[ $rc -eq 0 ] && rm -rf "$T"
exit $rc
