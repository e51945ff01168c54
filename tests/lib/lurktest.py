# SPDX-License-Identifier: Apache-2.0
"""Helpers shared by the Python integration tests (stdlib only).

check() prints "ok: ..." or "FAIL: ..." and counts the failures;
exit_status() is 1 after any failure, else 0.  tls_context() is the
mutual-TLS client context of a tests/lib/keyserver.sh PKI directory;
wait_exit() waits for a process (not necessarily a child) to go away.
"""
import os
import ssl
import time

failures = 0


def check(cond, what):
    global failures
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures += 1


def exit_status():
    return 1 if failures else 0


def tls_context(d):
    ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.crt"))
    ctx.load_cert_chain(os.path.join(d, "client.crt"), os.path.join(d, "client.key"))
    return ctx


def wait_exit(pid, seconds):
    """True once pid no longer exists, False if it still does after `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False
