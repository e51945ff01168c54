#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# with_server.sh PROGRAM: runs a provider test program against a fresh key
# server (tests/lib/keyserver.sh, key references made with `lurk keyref`);
# the program gets the directory as its argument.
set -u
. "$(dirname "$0")/../lib/keyserver.sh"
T=$(mktemp -d /tmp/lurk-prov-run-XXXXXX)
rc=1
ks_on_exit '[ $rc -eq 0 ] && rm -rf "$T"'
{ ks_make_pki "$T" && ks_start "$T" && ks_keyrefs; } > "$T/setup.log" 2>&1 ||
    { cat "$T/setup.log"; echo "setup failed"; exit 1; }
"$1" "$T"
rc=$?
exit $rc
