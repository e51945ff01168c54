#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The key server's limits, from independent clients (Python ssl):

    limits.py overload DIR PID PORT KEYID   one loop flooded at once: the
        requests served after the queue limit get 503 + Retry-After quickly,
        every connection gets an answer, and the server keeps serving
    limits.py conncap DIR PORT MAX          past max_connections a new
        connection gets no service; closing one lets a new one in
    limits.py header PORT TIMEOUT_S         a TCP connection that never
        starts TLS is closed after header_timeout
    limits.py audit DIR PID PORT            a request's audit line is
        written promptly while the server runs; requests over several
        connections at once, then SIGTERM: one line per request, none lost
    limits.py auditbusy DIR PORT            a request's audit line is
        written promptly while its loop stays busy with work that writes
        no line (so that the loop is never idle)
"""
import json
import os
import signal
import socket
import ssl
import sys
import threading
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from lurktest import check, exit_status, tls_context, wait_exit  # noqa: E402


def connect(ctx, port, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return ctx.wrap_socket(s, server_hostname="localhost")


def request_bytes(tx, body, rid):
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


def tls13_cv_input():
    return b" " * 64 + b"TLS 1.3, server CertificateVerify\x00" + bytes(range(32))


def b64url(b):
    import base64
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def overload(d, pid, port, keyid, n=300):
    ctx = tls_context(d)
    conns = [connect(ctx, port) for _ in range(n)]
    sign = {"KeyId": keyid, "Algorithm": "rsa-pss", "DigestAlg": "sha256", "SaltLength": 32,
            "Data": b64url(tls13_cv_input())}
    # Every request is ready when the loop wakes: stop the server, write all, resume.
    os.kill(pid, signal.SIGSTOP)
    try:
        for i, s in enumerate(conns):
            s.sendall(request_bytes("Sign", sign, "flood-%d" % i))
    finally:
        os.kill(pid, signal.SIGCONT)
    t0 = time.monotonic()
    ok = busy = other = 0
    retry_after = True
    slowest_503 = 0.0
    for s in conns:
        status, headers, body = read_response(s)
        resp = body.get("SignResponse") or body.get("LurkResponse") or {}
        if status == 200 and resp.get("Status") == 200:
            ok += 1
        elif status == 503 and resp.get("Status") == 503:
            busy += 1
            retry_after = retry_after and "retry-after" in headers and resp.get("RetryAfter", 0) > 0
            slowest_503 = max(slowest_503, time.monotonic() - t0)
        else:
            other += 1
    elapsed = time.monotonic() - t0
    print("flood of %d signs: %d answered 200, %d answered 503, %d other, in %.2f s"
          % (n, ok, busy, other, elapsed), flush=True)
    check(ok + busy == n and other == 0, "every flooded request got 200 or 503")
    check(ok > 0, "the requests inside the queue limit were served")
    check(busy > 0, "the requests past the queue limit were answered 503")
    check(retry_after, "each 503 carries Retry-After and RetryAfter")
    check(elapsed < 10, "the flood was answered in bounded time")
    for s in conns:
        s.close()
    s = connect(ctx, port)
    s.sendall(request_bytes("Ping", {}, "after-flood"))
    status, _, _ = read_response(s)
    check(status == 200, "the server serves normally after the flood")
    s.close()


def conncap(d, port, cap):
    ctx = tls_context(d)
    conns = []
    for i in range(cap):
        s = connect(ctx, port)
        s.sendall(request_bytes("Ping", {}, "cap-%d" % i))
        conns.append((s, read_response(s)[0]))
    check(all(st == 200 for _, st in conns), "%d connections (the cap) are served" % cap)
    served = False
    t0 = time.monotonic()
    try:
        s = connect(ctx, port, timeout=5)
        s.sendall(request_bytes("Ping", {}, "over-cap"))
        served = read_response(s)[0] == 200
        s.close()
    except (OSError, ConnectionError, ssl.SSLError):
        pass
    check(not served and time.monotonic() - t0 < 5,
          "connection %d past max_connections gets no service, quickly" % (cap + 1))
    for s, _ in conns:
        s.sendall(request_bytes("Ping", {}, "still"))
    check(all(read_response(s)[0] == 200 for s, _ in conns), "the admitted connections keep working")
    conns[0][0].close()
    ok = False
    for _ in range(50):
        time.sleep(0.1)
        try:
            s = connect(ctx, port, timeout=5)
            s.sendall(request_bytes("Ping", {}, "after-close"))
            ok = read_response(s)[0] == 200
            s.close()
        except (OSError, ConnectionError, ssl.SSLError):
            ok = False
        if ok:
            break
    check(ok, "after one connection closes a new one is served")
    for s, _ in conns[1:]:
        s.close()


def header(port, timeout_s):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout_s + 5)
    t0 = time.monotonic()
    try:
        data = s.recv(1)
    except (ConnectionResetError, socket.timeout):
        data = None
    elapsed = time.monotonic() - t0
    check(data == b"" or data is None, "a connection that never starts TLS is closed")
    check(elapsed < timeout_s + 2, "within header_timeout (%.1f s, limit %d s)" % (elapsed, timeout_s))
    s.close()


def audit_ids(d, prefix):
    """Request ids of the audit lines whose id starts with prefix, in order."""
    ids = []
    with open(os.path.join(d, "audit.log")) as f:
        for line in f:
            rid = json.loads(line).get("request_id", "")
            if rid.startswith(prefix):
                ids.append(rid)
    return ids


def audit(d, pid, port, n_conns=8, per_conn=50):
    ctx = tls_context(d)
    # One request while the server stays up: its line follows the reply.
    s = connect(ctx, port)
    s.sendall(request_bytes("Ping", {}, "audit-one"))
    status = read_response(s)[0]
    t0 = time.monotonic()
    while not audit_ids(d, "audit-one") and time.monotonic() - t0 < 2:
        time.sleep(0.01)
    ms = (time.monotonic() - t0) * 1000
    check(status == 200 and audit_ids(d, "audit-one") == ["audit-one"] and ms < 1000,
          "one request's audit line is written promptly (%.0f ms after the reply)" % ms)
    s.close()

    # K requests over n_conns connections at once, then SIGTERM.
    replies = []
    errors = []

    def client(c):
        try:
            t = connect(ctx, port)
            for i in range(per_conn):
                rid = "audit-par-%d-%d" % (c, i)
                t.sendall(request_bytes("Ping", {}, rid))
                if read_response(t)[0] == 200:
                    replies.append(rid)
            t.close()
        except (OSError, ConnectionError, ssl.SSLError) as e:
            errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(n_conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    k = n_conns * per_conn
    check(len(replies) == k and not errors,
          "%d requests over %d connections at once answered (%d, errors: %s)"
          % (k, n_conns, len(replies), errors[:3]))
    os.kill(pid, signal.SIGTERM)
    if not wait_exit(pid, 10):
        check(False, "the server exits within 10 s of SIGTERM")
    ids = audit_ids(d, "audit-par-")
    check(len(ids) == k and sorted(ids) == sorted(replies),
          "after SIGTERM the audit log has exactly one line per request (%d lines, %d requests)"
          % (len(ids), k))


class RecordConn:
    """A TLS connection whose records are made in memory: each write() is one
    record, so data can be queued as many tiny records at once."""

    def __init__(self, ctx, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.out, server_hostname="localhost")
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.sock.sendall(self.out.read())
                self.feed()
        self.sock.sendall(self.out.read())

    def feed(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        self.inc.write(data)

    def records(self, chunks):
        for c in chunks:
            self.tls.write(c)
        return self.out.read()

    def recv(self, n):   # for read_response
        while True:
            try:
                return self.tls.read(n)
            except ssl.SSLWantReadError:
                self.feed()
            except ssl.SSLZeroReturnError:
                return b""


def auditbusy(d, port, n_conns=3, pad=50000):
    """The idle event never runs while a socket has data left: a request
    body sent as `pad` one-byte records keeps the loop reading a record or
    two per connection and pass, with no audit line until the body ends."""
    ctx = tls_context(d)
    s = connect(ctx, port)
    ping = b'{"PingRequest":{"RequestId":"busy-end"}}'
    head = (b"POST /.well-known/lurk HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (pad + len(ping)))
    conns = [RecordConn(ctx, port) for _ in range(n_conns)]
    wires = [c.records([head] + [b" "] * pad + [ping]) for c in conns]
    started = [threading.Event() for _ in conns]
    done = []

    def flood(i):
        c, wire = conns[i], wires[i]
        c.sock.sendall(wire[:65536])
        started[i].set()
        c.sock.sendall(wire[65536:])
        read_response(c)
        done.append(time.monotonic())

    threads = [threading.Thread(target=flood, args=(i,)) for i in range(n_conns)]
    for t in threads:
        t.start()
    for e in started:
        e.wait(30)
    s.sendall(request_bytes("Ping", {}, "audit-busy"))
    status = read_response(s)[0]
    t0 = time.monotonic()
    busy = not done
    while not audit_ids(d, "audit-busy") and time.monotonic() - t0 < 5:
        time.sleep(0.005)
    t_line = time.monotonic()
    line_while_busy = not done
    for t in threads:
        t.join()
    check(status == 200 and busy, "a request is answered while its loop is busy")
    check(audit_ids(d, "audit-busy") == ["audit-busy"] and line_while_busy
          and t_line - t0 < 0.5,
          "its audit line is written while the loop stays busy (%.0f ms after the reply; "
          "busy for %.0f ms more)" % ((t_line - t0) * 1000, ((min(done) if done else t0) - t0) * 1000))
    check(len(done) == n_conns, "the busy connections are answered")
    s.close()
    for c in conns:
        c.sock.close()


mode = sys.argv[1]
if mode == "overload":
    overload(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
elif mode == "conncap":
    conncap(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
elif mode == "header":
    header(int(sys.argv[2]), int(sys.argv[3]))
elif mode == "audit":
    audit(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
elif mode == "auditbusy":
    auditbusy(sys.argv[2], int(sys.argv[3]))
sys.exit(exit_status())
