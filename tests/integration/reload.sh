#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# SIGHUP reloads keys and config without dropping connections, a bad config
# keeps the previous keys serving, SIGTERM exits 0 (reload.py drives one
# kept-alive mutual-TLS connection through it; this script edits the config
# between its steps).  The server is stopped by pid from the harness's trap.
set -euo pipefail
: "${LURK_SOURCE_ROOT:?}" "${LURK_KEYSERVER:?}"

work=$(mktemp -d "${TMPDIR:-/tmp}/lurk-itest-reload.XXXXXX")
dir=$work/pki
# shellcheck source=../lib/keyserver.sh
. "$LURK_SOURCE_ROOT/tests/lib/keyserver.sh"
ks_on_exit "rm -rf '$work'"

ks_make_pki "$dir" >"$work/make-pki.log" 2>&1 || { cat "$work/make-pki.log"; exit 1; }
kept=$(ks_keyid p256 "$dir")
# A key that is not in the config yet: only its id is known.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/keys/added.pem" 2>/dev/null
chmod 600 "$dir/keys/added.pem"
added=$("$LURK_CLI" keyid "$dir/keys/added.pem")
cp "$dir/keyserver.cnf" "$work/keyserver.cnf.orig"

ks_start "$dir" >/dev/null
coproc RELOAD { python3 "$LURK_SOURCE_ROOT/tests/integration/reload.py" \
    "$dir" "$KS_PID" "$KS_PORT" "$kept" "$added" 2>&1; }
# bash unsets RELOAD_PID when the coprocess ends: keep it for the wait below
reload_pid=$RELOAD_PID
rc=1
while IFS= read -r -u "${RELOAD[0]}" line; do
    case $line in
    READY-add)
        sed -i 's/^\[keys_sect\]$/[keys_sect]\nadded = key_added/' "$dir/keyserver.cnf"
        printf '\n[key_added]\nfile = keys/added.pem\npolicy = sign\n' >>"$dir/keyserver.cnf"
        echo go >&"${RELOAD[1]}"
        ;;
    READY-break)
        sed -i 's/^\[keyserver\]$/[keyserver]\nno_such_setting = 1/' "$dir/keyserver.cnf"
        echo go >&"${RELOAD[1]}"
        ;;
    *)
        echo "$line"
        ;;
    esac
done
wait "$reload_pid" && rc=0 || rc=$?
if [ "$rc" -ne 0 ]; then
    echo "--- keyserver.log" >&2
    cat "$dir/keyserver.log" >&2
    exit 1
fi
# SIGTERM was sent by reload.py; the harness's ks_stop reports the exit status.
status=0
ks_stop || status=$?
[ "$status" = 0 ] || { echo "FAIL: lurk-keyserver exited with status $status after SIGTERM"; exit 1; }
echo "ok: lurk-keyserver exited 0 after SIGTERM"
grep -q "reload failed, still serving the previous keys: .*no_such_setting" "$dir/keyserver.log" \
    && echo "ok: the failed reload's log line names the bad setting" \
    || { echo "FAIL: reload failure not explained:"; grep -i reload "$dir/keyserver.log"; exit 1; }
echo "reload: all checks passed"
