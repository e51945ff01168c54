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
    limits.py framing DIR PORT              pipelined requests are answered in
        order and leave together; ambiguous or malformed heads get a
        LurkResponse 400 and the connection closes; wrong method, path and
        oversize bodies get LurkResponses and the connection stays usable
    limits.py queue DIR PORT KEYID EXPECT   closed-loop and pipelined RSA
        signs at saturation: EXPECT "none" (a bound far above the waits: no
        request is shed) or "some" (a bound below the waits: requests are
        shed with 503 + Retry-After, the others served)
    limits.py drain DIR PID PORT KEYID      SIGTERM while a connection has
        pipelined signs queued: every one is answered, the last with
        Connection: close, then the server exits 0
    limits.py unix DIR SOCKET               the unix socket: pipelined requests
        in order, the peer identity uid:N (SO_PEERCRED) in the audit log
    limits.py fair DIR PORT RSA4096 P256    P-256 signs on one connection
        while another streams pipelined RSA-4096 signs, one loop: a P-256
        sign waits about one RSA-4096 sign, not the other's backlog
    limits.py identfair DIR PORT RSA2048    two clients streaming signs,
        one on 8 connections, one on 1: identities are served in turn, so
        both get about as much done
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
    # never accepted before its first byte (TCP_DEFER_ACCEPT, handshake_timeout
    # = header_timeout here), then handshake_timeout to send a ClientHello
    check(elapsed < 2 * timeout_s + 2, "within the deferred accept and handshake_timeout "
          "(%.1f s, limit %d + %d s)" % (elapsed, timeout_s, timeout_s))
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


def auditbusy(d, port, n_conns=3, pad=200000):
    """The idle event never runs while a socket has data left: a request
    body sent as `pad` one-byte records (max_body raised for it) keeps the
    loop reading a few dozen records per connection and pass, with no audit
    line until the body ends."""
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



class Conn:
    """A blocking TLS connection with a read buffer: replies can be read
    one at a time out of a stream of pipelined ones."""

    def __init__(self, ctx, port, timeout=30):
        self.s = connect(ctx, port, timeout)
        self.buf = b""
        self.reads = 0

    def send(self, data):
        self.s.sendall(data)

    def fill(self):
        chunk = self.s.recv(65536)
        self.reads += 1
        if not chunk:
            raise ConnectionError("closed")
        self.buf += chunk

    def response(self):
        """status, headers, parsed JSON body (or None for a HEAD-like empty body)."""
        while b"\r\n\r\n" not in self.buf:
            self.fill()
        head, rest = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
        n = int(headers.get("content-length", "0"))
        while len(rest) < n:
            self.fill()
            rest = self.buf.split(b"\r\n\r\n", 1)[1]
        self.buf = rest[n:]
        return status, headers, (json.loads(rest[:n]) if n else None)

    def at_eof(self, timeout=5):
        """True when the server closes the connection (after what is buffered)."""
        self.s.settimeout(timeout)
        try:
            while True:
                chunk = self.s.recv(65536)
                if not chunk:
                    return True
        except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()


def lurk_status(body):
    for v in (body or {}).values():
        if isinstance(v, dict):
            return v.get("Status")
    return None


def framing(d, port, n_pipe=20):
    ctx = tls_context(d)
    ping = lambda rid: request_bytes("Ping", {}, rid)

    # Pipelined: answered in order, in one or two TLS records.
    c = Conn(ctx, port)
    c.send(b"".join(ping("pipe-%d" % i) for i in range(n_pipe)))
    ids = []
    for _ in range(n_pipe):
        status, _, body = c.response()
        ids.append(body.get("PingResponse", {}).get("RequestId") if status == 200 else status)
    check(ids == ["pipe-%d" % i for i in range(n_pipe)],
          "%d pipelined requests answered in order" % n_pipe)
    check(c.reads <= 2, "their replies left together (%d TLS record(s) read for %d replies)"
          % (c.reads, n_pipe))

    # A wrong method, a wrong path, an oversize body: refused, the connection kept.
    c.send(b"GET /.well-known/lurk HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = c.response()
    check(status == 400 and lurk_status(body) == 400 and headers.get("allow") == "POST",
          "GET: a LurkResponse 400 with Allow: POST (%d %s)" % (status, headers.get("allow")))
    c.send(b"POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
    status, _, body = c.response()
    check(status == 404 and lurk_status(body) == 404, "another path: a LurkResponse 404")
    big = b"x" * 70000
    c.send(b"POST /.well-known/lurk HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(big)
           + big + ping("after-big"))
    status, _, body = c.response()
    check(status == 413 and lurk_status(body) == 413, "a body over max_body: a LurkResponse 413")
    status, _, body = c.response()
    check(status == 200 and body["PingResponse"]["RequestId"] == "after-big",
          "the request after the oversize body is served on the same connection")

    # Expect: 100-continue
    payload = b'{"PingRequest":{"RequestId":"expect"}}'
    c.send(b"POST /.well-known/lurk HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
           b"Content-Length: %d\r\n\r\n" % len(payload))
    status, _, _ = c.response()
    check(status == 100, "Expect: 100-continue gets 100 Continue (%d)" % status)
    c.send(payload)
    status, _, body = c.response()
    check(status == 200 and body["PingResponse"]["RequestId"] == "expect",
          "then the request is served")
    c.close()

    # Ambiguous or malformed heads: 400, a LurkResponse, Connection: close, EOF.
    bad = {
        "Content-Length twice": b"Content-Length: 2\r\nContent-Length: 2\r\n",
        "two Content-Lengths": b"Content-Length: 2\r\nContent-Length: 3\r\n",
        "Content-Length +2": b"Content-Length: +2\r\n",
        "Transfer-Encoding gzip, chunked": b"Transfer-Encoding: gzip, chunked\r\n",
        "Transfer-Encoding twice": b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding and Content-Length": b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
        "chunked body that is not chunked": b"Transfer-Encoding: chunked\r\n",
        "white space before the colon": b"Content-Length : 2\r\n",
        "obs-fold": b"X-A: a\r\n b\r\nContent-Length: 2\r\n",
    }
    for name, fields in bad.items():
        c = Conn(ctx, port)
        c.send(ping("before") + b"POST /.well-known/lurk HTTP/1.1\r\nHost: x\r\n" + fields
               + b"\r\n{}" + ping("after"))
        s1, _, b1 = c.response()
        s2, h2, b2 = c.response()
        check(s1 == 200 and s2 == 400 and lurk_status(b2) == 400
              and h2.get("connection") == "close" and c.at_eof(),
              "%s: the request before it served, then a LurkResponse 400 and close "
              "(%d, %d, %s)" % (name, s1, s2, (b2 or {}).get("LurkResponse", {}).get("StatusDescription")))
        c.close()

    # A chunked body with extensions and trailer fields is valid HTTP/1.1:
    # served, and the connection keeps serving what follows it.
    body = json.dumps({"PingRequest": {"RequestId": "chunked"}}).encode()
    enc = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7])
                   for i in range(0, len(body), 7)) + b"0;last\r\nX-Trailer: t\r\n\r\n"
    c = Conn(ctx, port)
    c.send(b"POST /.well-known/lurk HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           + enc + ping("after-chunked"))
    s1, _, b1 = c.response()
    s2, _, b2 = c.response()
    check(s1 == 200 and b1.get("PingResponse", {}).get("RequestId") == "chunked"
          and s2 == 200 and b2.get("PingResponse", {}).get("RequestId") == "after-chunked",
          "a chunked body with extensions and trailers is served, and the next request too")
    c.close()

    # Every refusal the front made above is audited, as the handler's are,
    # with its reason and without the request's bytes.
    want = {400: "Transfer-Encoding other than chunked", 404: "no such resource",
            413: "request body too large"}
    seen = {}
    end = time.monotonic() + 5
    while time.monotonic() < end and len(seen) < len(want):
        with open(os.path.join(d, "audit.log")) as f:
            for line in f:
                rec = json.loads(line)
                for st, text in want.items():
                    if rec.get("status") == st and text in rec.get("detail", ""):
                        seen[st] = rec
        time.sleep(0.05)
    check(sorted(seen) == sorted(want),
          "the front's own refusals (400, 404, 413) have audit lines with their reasons (%s)"
          % sorted(seen))
    check(all('{"PingRequest"' not in json.dumps(r) for r in seen.values()),
          "and no request bytes in them")

    # HTTP/1.0 without keep-alive: one reply, then close.
    c = Conn(ctx, port)
    c.send(b"POST /.well-known/lurk HTTP/1.0\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload)
    status, headers, _ = c.response()
    check(status == 200 and headers.get("connection") == "close" and c.at_eof(),
          "HTTP/1.0: served, then closed")
    c.close()


def sign_body(keyid, alg="rsa-pss"):
    if alg == "rsa-pss":
        return {"KeyId": keyid, "Algorithm": "rsa-pss", "DigestAlg": "sha256", "SaltLength": 32,
                "Data": b64url(tls13_cv_input())}
    return {"KeyId": keyid, "Algorithm": "ecdsa", "DigestAlg": "sha256",
            "Data": b64url(tls13_cv_input())}


def queue(d, port, keyid, expect, threads=4, per_thread=150, rounds=6):
    """Closed-loop clients (one request in flight each) then pipelining
    clients (depth in flight each); counts 200 and 503 replies."""
    ctx = tls_context(d)
    # under the bound: 4 x 4 in flight (a few ms of wait); over it: 8 x 16
    pipes, depth = (4, 4) if expect == "none" else (8, 16)
    counts = {"ok": 0, "shed": 0, "other": 0, "retry_after": True}
    lock = threading.Lock()
    errors = []

    def tally(status, headers, body):
        with lock:
            if status == 200 and lurk_status(body) == 200:
                counts["ok"] += 1
            elif status == 503 and lurk_status(body) == 503:
                counts["shed"] += 1
                counts["retry_after"] &= "retry-after" in headers
            else:
                counts["other"] += 1

    def closed_loop(t):
        try:
            c = Conn(ctx, port)
            for i in range(per_thread):
                c.send(request_bytes("Sign", sign_body(keyid), "q-%d-%d" % (t, i)))
                tally(*c.response())
            c.close()
        except (OSError, ConnectionError, ssl.SSLError) as e:
            errors.append(repr(e))

    def pipelined(t):
        try:
            c = Conn(ctx, port)
            for r in range(rounds):
                c.send(b"".join(request_bytes("Sign", sign_body(keyid), "p-%d-%d-%d" % (t, r, i))
                                for i in range(depth)))
                for _ in range(depth):
                    tally(*c.response())
            c.close()
        except (OSError, ConnectionError, ssl.SSLError) as e:
            errors.append(repr(e))

    t0 = time.monotonic()
    for target, n in ((closed_loop, threads), (pipelined, pipes)):
        ths = [threading.Thread(target=target, args=(i,)) for i in range(n)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
    total = threads * per_thread + pipes * rounds * depth
    print("%d RSA signs (%d closed-loop clients, then %d clients %d deep): %d answered 200, "
          "%d answered 503, %d other, in %.2f s"
          % (total, threads, pipes, depth, counts["ok"], counts["shed"], counts["other"],
             time.monotonic() - t0), flush=True)
    check(not errors and counts["ok"] + counts["shed"] == total and counts["other"] == 0,
          "every request got 200 or 503 (errors: %s)" % errors[:3])
    if expect == "none":
        check(counts["shed"] == 0, "no request shed while the waits stay under the bound")
    else:
        check(counts["shed"] > 0 and counts["ok"] > 0,
              "requests shed once the waits exceed the bound, the others served")
        check(counts["retry_after"], "each 503 carries Retry-After")


def fair(d, port, rsa4096, p256, depth=16, samples=40):
    """A P-256 sign on one connection while another keeps `depth` RSA-4096
    signs in flight: its latency stays about one RSA-4096 sign."""
    ctx = tls_context(d)
    # what one RSA-4096 and one P-256 sign take here, alone
    c = Conn(ctx, port)
    def timed(body, rid):
        t = time.monotonic()
        c.send(request_bytes("Sign", body, rid))
        st = c.response()[0]
        return time.monotonic() - t, st
    alone = sorted(timed(sign_body(rsa4096), "alone-%d" % i)[0] for i in range(10))
    t4096 = alone[len(alone) // 2]
    stop = threading.Event()
    streamed = [0]

    def stream():
        s = Conn(ctx, port)
        inflight = 0
        i = 0
        while not stop.is_set() or inflight > 0:
            while inflight < depth and not stop.is_set():
                s.send(request_bytes("Sign", sign_body(rsa4096), "s-%d" % i))
                i += 1
                inflight += 1
            s.response()
            inflight -= 1
            streamed[0] += 1
        s.close()

    th = threading.Thread(target=stream)
    th.start()
    t0 = time.monotonic()
    while streamed[0] < depth and time.monotonic() - t0 < 10:
        time.sleep(0.01)   # until the stream runs at full depth
    lat = []
    statuses = set()
    for i in range(samples):
        dt, st = timed(sign_body(p256, "ecdsa"), "p-%d" % i)
        lat.append(dt)
        statuses.add(st)
    stop.set()
    th.join()
    c.close()
    lat.sort()
    p50, p90 = lat[len(lat) // 2], lat[int(len(lat) * 0.9)]
    print("RSA-4096 sign alone: %.1f ms; P-256 sign behind a stream of RSA-4096 signs %d deep: "
          "p50 %.1f ms, p90 %.1f ms, max %.1f ms (%d RSA-4096 signs streamed)"
          % (t4096 * 1000, depth, p50 * 1000, p90 * 1000, lat[-1] * 1000, streamed[0]), flush=True)
    check(statuses == {200}, "the P-256 signs were served (%s)" % sorted(statuses))
    check(p50 < 1.5 * t4096 + 0.003,
          "a P-256 sign waits about one RSA-4096 sign, not the backlog (p50 %.1f ms, one "
          "RSA-4096 sign %.1f ms, backlog %d signs)" % (p50 * 1000, t4096 * 1000, depth))


def identfair(d, port, rsa2048, n_conns=8, depth=4, seconds=3.0):
    """One client streams RSA-2048 signs on n_conns connections, another on
    one connection, both with depth signs in flight, one loop: identities
    are served in turn, so the second gets about as many signs done as the
    first (served connection by connection it would get 1 / (n_conns + 1))."""
    ctx = tls_context(d)
    octx = ssl.create_default_context(cafile=os.path.join(d, "ca.crt"))
    octx.load_cert_chain(os.path.join(d, "other-client.crt"), os.path.join(d, "other-client.key"))
    stop = threading.Event()
    done = {"busy": 0, "other": 0}
    counts = {}
    lock = threading.Lock()

    def stream(who, cx, k):
        s = Conn(cx, port)
        inflight = 0
        i = 0
        while not stop.is_set() or inflight > 0:
            while inflight < depth and not stop.is_set():
                s.send(request_bytes("Sign", sign_body(rsa2048), "%s-%d-%d" % (who, k, i)))
                i += 1
                inflight += 1
            st = s.response()[0]
            inflight -= 1
            with lock:
                if st == 200 and not stop.is_set():
                    counts[who] = counts.get(who, 0) + 1
                elif st == 503:
                    done["busy"] += 1
                elif st != 200:
                    done["other"] += 1
        s.close()

    ths = [threading.Thread(target=stream, args=("busy", ctx, k)) for k in range(n_conns)]
    ths.append(threading.Thread(target=stream, args=("other", octx, 0)))
    for th in ths:
        th.start()
    time.sleep(0.5)         # warm up; then count over a fixed window
    with lock:
        counts.clear()
    time.sleep(seconds)
    with lock:
        a, b = counts.get("busy", 0), counts.get("other", 0)
    stop.set()
    for th in ths:
        th.join()
    print("in %.1f s: the client with %d connections got %d RSA-2048 signs, the client with "
          "one connection %d (ratio %.2f); 503: %d" % (seconds, n_conns, a, b,
                                                       b / a if a else 0, done["busy"]),
          flush=True)
    check(a > 0 and b > 0 and done["other"] == 0, "both clients were served")
    check(b >= 0.6 * a, "the client with one connection gets about as much done as the one "
          "with %d (%d against %d; connection by connection it would be 1/%d)"
          % (n_conns, b, a, n_conns + 1))


def drain(d, pid, port, keyid, n=40):
    ctx = tls_context(d)
    c = Conn(ctx, port)
    c.send(b"".join(request_bytes("Sign", sign_body(keyid), "drain-%d" % i) for i in range(n)))
    first = c.response()
    os.kill(pid, signal.SIGTERM)   # the others are queued on the server by now
    replies = [first] + [c.response() for _ in range(n - 1)]
    ids = [b.get("SignResponse", {}).get("RequestId") for _, _, b in replies]
    check(all(st == 200 for st, _, _ in replies) and ids == ["drain-%d" % i for i in range(n)],
          "SIGTERM with %d pipelined signs queued: all answered, in order" % n)
    check(replies[-1][1].get("connection") == "close"
          and all(h.get("connection") != "close" for _, h, _ in replies[:-1]),
          "the last reply carries Connection: close, the others not")
    check(c.at_eof(), "then the server closes the connection")
    c.close()
    check(wait_exit(pid, 10), "and exits")


def unix(d, path, n=10):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    c = Conn.__new__(Conn)
    c.s, c.buf, c.reads = s, b"", 0
    c.send(b"".join(request_bytes("Ping", {}, "unix-%d" % i) for i in range(n)))
    ids = [c.response()[2]["PingResponse"]["RequestId"] for _ in range(n)]
    check(ids == ["unix-%d" % i for i in range(n)], "unix socket: %d pipelined requests in order" % n)
    c.close()
    want = "uid:%d" % os.getuid()
    peers = set()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 5:
        with open(os.path.join(d, "audit.log")) as f:
            peers = {json.loads(l).get("peer") for l in f if '"unix-' in l}
        if len(peers) == 1 and sum(1 for _ in open(os.path.join(d, "audit.log"))) >= n:
            break
        time.sleep(0.02)
    check(peers == {want}, "their audit lines name the peer %s (%s)" % (want, sorted(peers)))


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
elif mode == "framing":
    framing(sys.argv[2], int(sys.argv[3]))
elif mode == "queue":
    queue(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
elif mode == "drain":
    drain(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
elif mode == "unix":
    unix(sys.argv[2], sys.argv[3])
elif mode == "identfair":
    identfair(sys.argv[2], int(sys.argv[3]), sys.argv[4])
elif mode == "fair":
    fair(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
sys.exit(exit_status())
