#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The key server against an attacker who can reach its port (issue 10):

    hardening.py preauth DIR PORT MAXCONN     idle TCP sockets and stalled
        TLS handshakes, many more than max_connections and reopened as they
        are closed, cannot keep a client with a certificate out: every one
        of its connections is served, quickly
    hardening.py percert DIR PORT CAP         one certificate with CAP open
        connections (each trickling a request) gets a LurkResponse 503 that
        names max_connections_per_client on the next one; another client
        still connects and is served; the first gets in again once one of
        its connections closes
    hardening.py sigterm DIR PID PORT KEYID   16 connections signing one
        request after another, SIGTERM in the middle: every request sent is
        answered (the last of each connection with Connection: close), none
        is cut, and the server exits 0
    hardening.py authfail DIR PORT            a rogue certificate and no
        certificate: refused, and each leaves a log line naming the cause
        and an audit line (op Connect, status 401)
"""
import base64
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


last_error = ""


def ping(ctx, port, rid, timeout=5):
    """(ok, seconds): one connection, one Ping; last_error says why not."""
    global last_error
    t0 = time.monotonic()
    try:
        s = connect(ctx, port, timeout=timeout)
        s.sendall(request_bytes("Ping", {}, rid))
        status, _, body = read_response(s)
        s.close()
        last_error = "status %d" % status
        return status == 200 and "PingResponse" in body, time.monotonic() - t0
    except (OSError, ConnectionError, ssl.SSLError) as e:
        last_error = repr(e)
        return False, time.monotonic() - t0


# A ClientHello's first bytes: the server has seen TLS start (a stalled
# handshake, not just a TCP connection).
PARTIAL_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"


class Flood:
    """Keeps `n` attacker sockets open, reopening each as the server closes
    it; half idle TCP, half stalled after a ClientHello's first bytes."""

    def __init__(self, port, n):
        self.port, self.n = port, n
        self.stop = threading.Event()
        self.opened = 0
        self.closed_by_server = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def open_one(self, i):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.setblocking(False)
        if i % 2:
            s.send(PARTIAL_HELLO)
        self.opened += 1
        return s

    def run(self):
        socks = []
        for i in range(self.n):
            try:
                socks.append(self.open_one(i))
            except OSError:
                pass
        while not self.stop.is_set():
            for j, s in enumerate(socks):
                try:
                    if s.recv(1) == b"":
                        raise ConnectionError
                except (BlockingIOError, ssl.SSLWantReadError):
                    continue
                except OSError:
                    pass
                except ConnectionError:
                    pass
                s.close()
                self.closed_by_server += 1
                try:
                    socks[j] = self.open_one(j)
                except OSError:
                    pass
            self.stop.wait(0.02)
        for s in socks:
            s.close()


def preauth(d, port, maxconn, attempts=30):
    ctx = tls_context(d)
    flood = Flood(port, 4 * maxconn)
    flood.thread.start()
    # wait until the flood has more sockets open than the server has slots
    end = time.monotonic() + 10
    while flood.opened < 2 * maxconn and time.monotonic() < end:
        time.sleep(0.05)
    ok = 0
    slowest = 0.0
    for i in range(attempts):
        good, secs = ping(ctx, port, "pre-%d" % i)
        if not good:
            print("  attempt %d: %s" % (i, last_error), flush=True)
        ok += good
        slowest = max(slowest, secs)
    flood.stop.set()
    flood.thread.join(10)
    print("flood: %d attacker sockets opened, %d closed by the server; good client: %d of %d "
          "served, slowest %.3f s" % (flood.opened, flood.closed_by_server, ok, attempts, slowest),
          flush=True)
    check(flood.opened >= 2 * maxconn, "the flood held more sockets than max_connections (%d)"
          % maxconn)
    check(ok == attempts, "every connection of the client with a certificate was served "
          "(%d of %d)" % (ok, attempts))
    check(slowest < 2.0, "each within 2 s (slowest %.3f s)" % slowest)


def percert(d, port, cap):
    ctx = tls_context(d)
    held = []
    for i in range(cap):
        s = connect(ctx, port)
        s.sendall(b"POST /.well-known/lurk HTTP/1.1\r\nHost: loc")   # trickling
        held.append(s)
    s = connect(ctx, port)
    s.sendall(request_bytes("Ping", {}, "over-cert-cap"))
    status, headers, body = read_response(s)
    desc = body.get("LurkResponse", {}).get("StatusDescription", "")
    check(status == 503 and "max_connections_per_client = %d" % cap in desc
          and headers.get("connection") == "close" and "retry-after" in headers,
          "connection %d of one certificate: a LurkResponse 503 naming the setting, then close "
          "(%d, %r)" % (cap + 1, status, desc))
    s.close()
    octx = ssl.create_default_context(cafile=os.path.join(d, "ca.crt"))
    octx.load_cert_chain(os.path.join(d, "other-client.crt"), os.path.join(d, "other-client.key"))
    good, _ = ping(octx, port, "other-client")
    check(good, "another client's certificate still connects and is served")
    held[0].close()
    good = False
    end = time.monotonic() + 5
    while not good and time.monotonic() < end:
        good, _ = ping(ctx, port, "cert-again")
        if not good:
            time.sleep(0.05)
    check(good, "once one of its connections closed, the first client gets in again")
    for s in held[1:]:
        s.close()


def authfail(d, port):
    log = os.path.join(d, "keyserver.log")
    audit = os.path.join(d, "audit.log")
    rogue = ssl.create_default_context(cafile=os.path.join(d, "ca.crt"))
    rogue.load_cert_chain(os.path.join(d, "rogue-client.crt"), os.path.join(d, "rogue-client.key"))
    nocert = ssl.create_default_context(cafile=os.path.join(d, "ca.crt"))
    for name, ctx in (("rogue", rogue), ("none", nocert)):
        good, _ = ping(ctx, port, "authfail-" + name)
        check(not good, "a client with %s certificate is not served" % (
            "a rogue" if name == "rogue" else "no"))
    want_log = ["client certificate not accepted", "peer did not return a certificate"]
    found_log, lines = [], []
    end = time.monotonic() + 5
    while time.monotonic() < end:
        with open(log) as f:
            text = f.read()
        found_log = [w for w in want_log if w in text]
        lines = []
        if os.path.exists(audit):
            with open(audit) as f:
                lines = [json.loads(l) for l in f if '"Connect"' in l]
        if len(found_log) == 2 and len(lines) >= 2:
            break
        time.sleep(0.05)
    check("client certificate not accepted" in "".join(found_log) and "client_ca" in text,
          "the log names the rogue certificate's cause and the setting (client_ca)")
    check("peer did not return a certificate" in found_log,
          "the log names the missing certificate")
    check(len(lines) >= 2 and all(l.get("status") == 401 and
                                  l.get("detail", "").startswith("TLS handshake failed:")
                                  for l in lines),
          "each failed authentication has an audit line (op Connect, 401): %d" % len(lines))


def sign_body(keyid):
    cv = b" " * 64 + b"TLS 1.3, server CertificateVerify\x00" + bytes(range(32))
    return {"KeyId": keyid, "Algorithm": "ecdsa", "DigestAlg": "sha256",
            "Data": base64.urlsafe_b64encode(cv).rstrip(b"=").decode()}


def sigterm(d, pid, port, keyid, n_conns=16, before=400):
    ctx = tls_context(d)
    lock = threading.Lock()
    stats = {"ok": 0, "busy": 0, "closing": 0, "lost": 0, "refused": 0, "other": 0}
    lost_detail = []
    stop = threading.Event()
    body = sign_body(keyid)

    def worker(w):
        i = 0
        s = None
        while not stop.is_set():
            if s is None:
                try:
                    s = connect(ctx, port, timeout=10)
                except (OSError, ssl.SSLError):
                    with lock:
                        stats["refused"] += 1
                    return            # the server stopped listening: done
            rid = "term-%d-%d" % (w, i)
            i += 1
            try:
                s.sendall(request_bytes("Sign", body, rid))
            except (OSError, ssl.SSLError):
                # closed before we could send: nothing was asked
                s.close()
                s = None
                continue
            try:
                status, headers, resp = read_response(s)
            except (OSError, ConnectionError, ssl.SSLError) as e:
                with lock:
                    stats["lost"] += 1
                    lost_detail.append("%s: %r" % (rid, e))
                s.close()
                s = None
                continue
            with lock:
                if status == 200 and resp.get("SignResponse", {}).get("RequestId") == rid:
                    stats["ok"] += 1
                elif status == 503:
                    stats["busy"] += 1
                else:
                    stats["other"] += 1
                if headers.get("connection") == "close":
                    stats["closing"] += 1
            if headers.get("connection") == "close":
                s.close()
                s = None

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(n_conns)]
    for t in threads:
        t.start()
    end = time.monotonic() + 20
    while stats["ok"] < before and time.monotonic() < end:
        time.sleep(0.01)
    sent_at = stats["ok"]
    os.kill(pid, signal.SIGTERM)
    exited = wait_exit(pid, 15)
    stop.set()
    for t in threads:
        t.join(10)
    print("SIGTERM after %d signs: %s" % (sent_at, stats), flush=True)
    for line in lost_detail[:5]:
        print("  cut: " + line, flush=True)
    check(sent_at >= before, "a steady load was running (%d signs before SIGTERM)" % sent_at)
    check(stats["lost"] == 0, "no request was cut: every one sent got a reply (%d cut)"
          % stats["lost"])
    check(stats["other"] == 0, "every reply was 200 or 503")
    check(stats["closing"] > 0, "connections were told Connection: close")
    check(exited, "the server exited")


mode = sys.argv[1]
if mode == "preauth":
    preauth(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
elif mode == "percert":
    percert(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
elif mode == "sigterm":
    sigterm(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
elif mode == "authfail":
    authfail(sys.argv[2], int(sys.argv[3]))
sys.exit(exit_status())
