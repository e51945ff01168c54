#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""SIGHUP and SIGTERM of a running lurk-keyserver, seen from one kept-alive
mutual-TLS connection (Python's ssl + http.client: an independent client).

    reload.py DIR PID PORT KEYID_KEPT KEYID_ADDED

DIR is a tests/lib/keyserver.sh PKI whose keyserver.cnf the caller edits
between the phases this script waits for (it prints READY-n and reads a
line from stdin to go on).  Exit 0 when every check passed.
"""
import http.client
import json
import os
import signal
import sys
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from lurktest import check, exit_status, tls_context, wait_exit  # noqa: E402

d, pid, port, kept, added = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
n = 0


def call(conn, tx, body):
    global n
    n += 1
    body = dict(body, RequestId="reload-%d" % n)
    conn.request("POST", "/.well-known/lurk", json.dumps({tx + "Request": body}),
                 {"Content-Type": "application/json"})
    r = conn.getresponse()
    data = json.loads(r.read())
    return r.status, data.get(tx + "Response") or data.get("LurkResponse")


def wait_log(text, after, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        with open(os.path.join(d, "keyserver.log")) as f:
            if f.read().count(text) > after:
                return True
        time.sleep(0.05)
    return False


def log_count(text):
    with open(os.path.join(d, "keyserver.log")) as f:
        return f.read().count(text)


def sock_id(conn):
    return (conn.sock.fileno(), conn.sock.getsockname())


def step(name):
    print("READY-" + name, flush=True)
    sys.stdin.readline()


conn = http.client.HTTPSConnection("127.0.0.1", port, context=tls_context(d), timeout=10)

status, r = call(conn, "Ping", {})
check(status == 200 and r["Status"] == 200, "Ping before reload")
state0 = r.get("State")
status, r = call(conn, "PublicKey", {"KeyId": added})
check(status == 404, "the key to be added is not served yet (404)")
first = sock_id(conn)

# The caller adds a key to keyserver.cnf; SIGHUP reloads it.
step("add")
reloads = log_count("reloaded:")
os.kill(pid, signal.SIGHUP)
check(wait_log("reloaded:", reloads), "the server logs the reload")
status, r = call(conn, "PublicKey", {"KeyId": added})
check(status == 200 and r.get("PublicKey"), "the added key is served after SIGHUP")
check(sock_id(conn) == first, "on the same keep-alive connection (not dropped by the reload)")
status, r = call(conn, "Ping", {})
check(status == 200 and r.get("State") != state0, "State changed with the key set")
status, r = call(conn, "PublicKey", {"KeyId": kept})
check(status == 200, "the other keys are still served")

# The caller breaks keyserver.cnf; a failed reload keeps the previous keys.
step("break")
failed = log_count("reload failed")
os.kill(pid, signal.SIGHUP)
check(wait_log("reload failed", failed), "a bad config is refused with a log line")
status, r = call(conn, "PublicKey", {"KeyId": added})
check(status == 200, "the previous keys keep serving after a failed reload")
check(sock_id(conn) == first, "still the same connection")

# SIGTERM with this idle keep-alive connection open: the server exits.
os.kill(pid, signal.SIGTERM)
if not wait_exit(pid, 10):
    check(False, "the server exits within 10 s of SIGTERM")
print("done", flush=True)
sys.exit(exit_status())
