# SPDX-License-Identifier: Apache-2.0
"""Helpers shared by the Python integration tests (stdlib only).

check() prints "ok: ..." or "FAIL: ..." and counts the failures;
exit_status() is 1 after any failure, else 0.  tls_context() is the
mutual-TLS client context of a tests/lib/keyserver.sh PKI directory;
wait_exit() waits for a process (not necessarily a child) to go away;
connect(), request_bytes() and read_response() speak LURK over HTTP/1.1
to a key server.
"""
import json
import os
import socket
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


def connect(ctx, port, timeout=10):
    """A TLS connection to the key server on 127.0.0.1:port."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return ctx.wrap_socket(s, server_hostname="localhost")


def request_bytes(tx, body, rid):
    """One LURK request as HTTP/1.1 bytes: {"<tx>Request": body + RequestId}."""
    payload = json.dumps({tx + "Request": dict(body, RequestId=rid)}).encode()
    return (b"POST /.well-known/lurk HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(payload)) + payload


def read_response(s):
    """Status, headers (lower-case), JSON body of one HTTP/1.1 response."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside a response")
        rest += chunk
    return status, headers, json.loads(rest[:n])
