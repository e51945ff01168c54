#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The client's HTTP/1.1 exchange (client/transport.c) against crafted replies.

    client_http.py serve DIR LIFETIME_S   a fake key server: one unix socket
        DIR/NAME.sock per case in CASES, each answering the Ping requests it
        reads with that case's bytes; every request head is checked (request
        line, Host, Content-Type, Content-Length, no Expect, no
        Transfer-Encoding, a PingRequest body); DIR/NAME.log records the
        connections, the requests and anything wrong with them.  Writes
        DIR/ready once listening; exits after LIFETIME_S at the latest.
    client_http.py check DIR LURK         runs `LURK --server unix:DIR/NAME.sock
        ping` for each case and checks the exit status, the error the tool
        names on stderr, the connections and requests the server saw and the
        time it took.

Plain HTTP on a unix socket: no TLS, no PKI, loopback only.  stdlib only.
"""
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time

STATE = "3q2-7wAAAAAAAAAAAAAAAA"
HEAD_MAX = 8192          # LURK_HTTP_HEAD_MAX in transport.c
MAX_RESPONSE = 65536     # LURK_MAX_MESSAGE, the default max_response
TIMEOUT_MS = 3000        # --timeout of the cases that must not time out
SHORT_TIMEOUT_MS = 500   # --timeout of the cases that must time out

PROTOCOL = "the key server's answer is not valid LURK"
UNREACHABLE = "no key server could be reached"
TIMEOUT = "the key server did not answer in time"
UNAVAILABLE = "the key server is overloaded or shutting down"


class BadRequest(Exception):
    pass


# ---------------------------------------------------------------- replies


def ping_body(rid):
    return json.dumps({"PingResponse": {"RequestId": rid, "Status": 200, "State": STATE}},
                      separators=(",", ":")).encode()


def reply(body, version=b"HTTP/1.1", status=b"200 OK", fields=b""):
    """A reply with Content-Type, the given fields and Content-Length."""
    return (version + b" " + status + b"\r\nContent-Type: application/json\r\n" + fields
            + b"Content-Length: %d\r\n\r\n" % len(body) + body)


def ok(rid, **kw):
    return reply(ping_body(rid), **kw)


def padded_head(rid, total):
    """A valid reply whose head (up to and with the empty line) is `total` bytes."""
    b = ping_body(rid)
    pre = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
           b"X-Pad: " % len(b))
    return pre + b"p" * (total - len(pre) - 4) + b"\r\n\r\n" + b


def chunked(rid):
    b = ping_body(rid)
    # Upper- and lower-case hex sizes, extensions (one quoted), whitespace
    # before an extension, a trailer section of two fields.
    parts = [(b[:10], b";ext=1"), (b[10:11], b';name="quoted value"'), (b[11:40], b""),
             (b[40:], b" ;e")]
    r = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    r += b"".join(b"%X%s\r\n%s\r\n" % (len(p), ext, p) for p, ext in parts)
    return r + b"0\r\nX-Trailer: yes\r\nX-Other: 1\r\n\r\n"


# Each respond(c, rid) answers one request on connection c; True: read the
# next request on it, False: close it.

def r_plain(c, rid):
    c.send(ok(rid))
    return True


def r_split(c, rid):
    r = ok(rid)
    h = r.index(b"\r\n\r\n") + 4
    c.send(r[:h], step=1, delay=0.001)      # the head byte by byte
    c.send(r[h:], step=7, delay=0.001)
    return True


def r_chunked(c, rid):
    c.send(chunked(rid), step=5, delay=0.0005)
    return True


def r_interim(c, rid):
    c.send(b"HTTP/1.1 100 Continue\r\n\r\n")
    time.sleep(0.01)
    c.send(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" + ok(rid))
    return True


def r_http10(c, rid):
    c.send(ok(rid, version=b"HTTP/1.0"))
    return True     # the connection stays open: the client must not use it again


def r_close(c, rid):
    c.send(ok(rid, fields=b"Connection: keep-alive, Close\r\n"))
    return True     # idem


def r_idleclose(c, rid):
    c.send(ok(rid))
    return False    # closed after the reply, without Connection: close


def r_idlereset(c, rid):
    c.send(ok(rid))
    c.wait_readable(2)
    return False    # closed with the next request unread


def r_resendonce(c, rid):
    if c.cid == 1:
        c.send(ok(rid))
    return False    # every later connection: closed without a reply


def r_noreply(c, rid):
    return False


def r_silent(c, rid):
    c.wait_eof(10)
    return False


def r_stall(c, rid):
    c.send(ok(rid)[:-10])
    c.wait_eof(10)
    return False


def r_eofmid(c, rid):
    c.send(ok(rid)[:-10])
    return False


def r_stale(c, rid):
    r = ok(rid)
    c.send(r)
    c.wait_readable(2)  # the next request: the client has read this reply
    c.send(r)           # the same reply again, unasked, and nothing else
    c.wait_eof(5)
    return False


def r_max_ok(c, rid):
    b = ping_body(rid)
    c.send(reply(b + b" " * (MAX_RESPONSE - len(b))))
    return True


def r_dupsame(c, rid):
    b = ping_body(rid)
    c.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\ncontent-length: %d\r\n\r\n%s"
           % (len(b), len(b), b))
    return True


def r_head_max(c, rid):
    c.send(padded_head(rid, HEAD_MAX))
    return True


def r_bighead(c, rid):
    c.send(padded_head(rid, HEAD_MAX + 1))
    return True


def r_extra(c, rid):
    c.send(ok(rid) + b"HTTP/1.1 200 OK\r\n")   # one write: read with the reply
    return True


def fixed(data):
    def respond(c, rid):
        c.send(data)
        return True     # kept open: the client has to decide by itself
    return respond


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
BUSY = json.dumps({"LurkResponse": {"Status": 503, "StatusDescription": "busy, try later",
                                    "RetryAfter": 1}}).encode()


class Case:
    def __init__(self, name, respond, what, count=1, errs=(), conns=None, reqs=None,
                 per_conn=None, timeout=TIMEOUT_MS, elapsed=None):
        self.name = name
        self.respond = respond
        self.what = what
        self.count = count          # ping -c
        self.errs = errs            # () success; else substrings of stderr, exit 1
        self.conns = conns          # connections the server must see
        self.reqs = reqs            # requests it must read
        self.per_conn = per_conn    # at most this many requests on one connection
        self.timeout = timeout
        self.elapsed = elapsed or (0.0, 2.0)


def bad(detail):
    return (PROTOCOL, "malformed HTTP reply: " + detail)


CASES = [
    # ---- replies that work
    Case("plain", r_plain, "Content-Length reply, 3 requests on one connection",
         count=3, conns=1, reqs=3),
    Case("split", r_split, "head byte by byte, body in 7-byte writes, with pauses",
         count=2, conns=1, reqs=2),
    Case("chunked", r_chunked, "chunked: 4 chunks, extensions, upper-case hex, trailers, in 5-byte writes",
         count=2, conns=1, reqs=2),
    Case("interim", r_interim, "100 Continue and 103 Early Hints skipped before the 200",
         count=2, conns=1, reqs=2),
    Case("http10", r_http10, "HTTP/1.0 reply: accepted, then a new connection for each request",
         count=3, conns=3, reqs=3, per_conn=1),
    Case("close", r_close, "Connection: keep-alive, Close: a new connection for each request",
         count=3, conns=3, reqs=3, per_conn=1),
    Case("idleclose", r_idleclose, "server closes each kept-alive connection after its reply: "
         "the next request is resent on a new one",
         count=3, conns=3, reqs=3, per_conn=1),
    Case("idlereset", r_idlereset, "server closes with the next request unread (reset): resent",
         count=3, conns=3, reqs=3, per_conn=1),
    Case("dupsame", r_dupsame, "two Content-Length fields that agree"),
    Case("head-max", r_head_max, "a head of exactly %d bytes" % HEAD_MAX),
    Case("max-ok", r_max_ok, "a body of exactly max_response (%d) bytes" % MAX_RESPONSE),
    # ---- connection failures
    Case("resendonce", r_resendonce, "the resend also fails: one resend only",
         count=2, conns=2, reqs=2, errs=(UNREACHABLE, "connection closed without a reply")),
    Case("noreply", r_noreply, "a new connection closed without a reply: no resend",
         conns=1, reqs=1, errs=(UNREACHABLE, "connection closed without a reply")),
    Case("eofmid", r_eofmid, "EOF in the middle of the body",
         conns=1, errs=(UNREACHABLE, "connection closed in the middle of the reply")),
    Case("silent", r_silent, "a server that says nothing: the total timeout",
         conns=1, timeout=SHORT_TIMEOUT_MS, elapsed=(0.45, 1.5),
         errs=(TIMEOUT, "no reply within %d ms" % SHORT_TIMEOUT_MS)),
    Case("stall", r_stall, "a server that stops in the middle of the body: the total timeout",
         conns=1, timeout=SHORT_TIMEOUT_MS, elapsed=(0.45, 1.5),
         errs=(TIMEOUT, "reply incomplete after %d ms" % SHORT_TIMEOUT_MS)),
    # ---- sizes
    Case("oversize", fixed(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_RESPONSE + 1)
                           + b" " * (MAX_RESPONSE + 1)),
         "Content-Length max_response + 1",
         errs=(PROTOCOL, "reply exceeds %d bytes" % MAX_RESPONSE)),
    Case("oversize-chunked", fixed(CHUNKED_HEAD + (b"8000\r\n" + b" " * 0x8000 + b"\r\n") * 3
                                   + b"0\r\n\r\n"),
         "chunks adding up to more than max_response",
         errs=(PROTOCOL, "reply exceeds %d bytes" % MAX_RESPONSE)),
    Case("bigchunk", fixed(CHUNKED_HEAD + b"ffffffffffffffffffff\r\n"),
         "a chunk size of 20 hex digits (overflow)",
         errs=(PROTOCOL, "reply exceeds %d bytes" % MAX_RESPONSE)),
    Case("bighead", r_bighead, "a head of %d bytes" % (HEAD_MAX + 1),
         errs=bad("header block over %d bytes" % HEAD_MAX)),
    Case("chunklong", fixed(CHUNKED_HEAD + b"2;" + b"e" * 9000 + b"\r\n{}\r\n0\r\n\r\n"),
         "a chunk line over %d bytes" % HEAD_MAX,
         errs=bad("chunk size line over %d bytes" % HEAD_MAX)),
    Case("trailerlong", fixed(CHUNKED_HEAD + b"2\r\n{}\r\n0\r\n"
                              + (b"X-T: " + b"t" * 90 + b"\r\n") * 100 + b"\r\n"),
         "trailers over %d bytes" % HEAD_MAX,
         errs=bad("trailer over %d bytes" % HEAD_MAX)),
    # ---- malformed heads
    Case("badstatus", fixed(b"HTTP/2 200 OK\r\nContent-Length: 2\r\n\r\n{}"), "status line HTTP/2",
         errs=bad('bad status line "HTTP/2 200 OK"')),
    Case("nolength", fixed(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{}"),
         "neither Content-Length nor chunked", errs=bad("no Content-Length")),
    Case("conflict", fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"),
         "two Content-Length fields that differ", errs=bad("conflicting Content-Length fields")),
    Case("negcl", fixed(b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\n{}"),
         "Content-Length: -2", errs=bad("bad Content-Length")),
    Case("both", fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"0\r\n\r\n"),
         "Content-Length and Transfer-Encoding", errs=bad("both Content-Length and Transfer-Encoding")),
    Case("gzip", fixed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
         "Transfer-Encoding: gzip, chunked", errs=bad('unsupported Transfer-Encoding "gzip, chunked"')),
    Case("barelf", fixed(b"HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 2\r\n\r\n{}"),
         "a field line ended by a bare LF", errs=bad("bare CR or LF in the header")),
    Case("lfonly", fixed(b"HTTP/1.1 200 OK\nContent-Length: 2\n\n{}"),
         "LF line endings only: refused at once, not at the deadline",
         errs=bad("bare CR or LF in the header")),
    Case("fold", fixed(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\nContent-Length: 2\r\n\r\n{}"),
         "obs-fold", errs=bad('bad header line "  folded"')),
    Case("ctl", fixed(b"HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 2\r\n\r\n{}"),
         "a control character in a field value", errs=bad("control character in X-A")),
    Case("spacecolon", fixed(b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\n{}"),
         "white space before the colon", errs=bad('bad header line "Content-Length : 2"')),
    Case("switch", fixed(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n"),
         "101 Switching Protocols", errs=bad("unexpected 101 Switching Protocols")),
    # ---- malformed bodies
    Case("badchunk", fixed(CHUNKED_HEAD + b"zz\r\n"), "chunk size zz", errs=bad("bad chunk size line")),
    Case("chunkcrlf", fixed(CHUNKED_HEAD + b"2\r\n{}XX0\r\n\r\n"), "chunk data without its CRLF",
         errs=bad("chunk data not followed by CRLF")),
    Case("extra", r_extra, "17 bytes after the reply, in the same write",
         errs=bad("17 bytes after the reply")),
    Case("stale", r_stale, "an unasked second copy of a reply: taken for the next one, "
         "refused by the RequestId echo", count=2, conns=1, reqs=1,
         errs=(PROTOCOL, "RequestId not echoed")),
    # ---- well-formed HTTP, not a LURK answer
    Case("204", fixed(b"HTTP/1.1 204 No Content\r\n\r\n"), "204 No Content (no body)",
         errs=(PROTOCOL, "HTTP 204 with an invalid LURK body: message: invalid JSON")),
    Case("notjson", fixed(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\n"
                          b"hello, world"),
         "200 with a body that is not JSON",
         errs=(PROTOCOL, "HTTP 200 with an invalid LURK body: message: invalid JSON")),
    Case("503", fixed(reply(BUSY, status=b"503 Service Unavailable", fields=b"Retry-After: 1\r\n")),
         "503 with a LurkResponse", errs=(UNAVAILABLE, "busy, try later")),
]


# ---------------------------------------------------------------- server


class Log:
    def __init__(self, path):
        self.f = open(path, "a")
        self.lock = threading.Lock()

    def __call__(self, line):
        with self.lock:
            self.f.write(line + "\n")
            self.f.flush()


class Conn:
    def __init__(self, sock, cid, log):
        self.s = sock
        self.cid = cid
        self.log = log
        self.buf = b""
        self.nreq = 0

    def recv(self):
        d = self.s.recv(65536)
        if not d and self.buf:
            raise BadRequest("connection closed inside a request")
        self.buf += d
        return d

    def read_request(self):
        """The next request's RequestId, after checking the request; None at EOF."""
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > HEAD_MAX:
                raise BadRequest("request head over %d bytes" % HEAD_MAX)
            if not self.recv():
                return None
        head, rest = self.buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        if lines[0] != b"POST /.well-known/lurk HTTP/1.1":
            raise BadRequest("request line %r" % lines[0])
        fields = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if (not sep or not name or any(ch not in TCHAR for ch in name)
                    or any((ch < 0x20 and ch != 9) or ch == 0x7f for ch in value)):
                raise BadRequest("field line %r" % line)
            if name.lower() in fields:
                raise BadRequest("field %r twice" % name)
            fields[name.lower()] = value.strip(b" \t")
        for name, want in ((b"host", b"localhost"), (b"content-type", b"application/json")):
            if fields.get(name) != want:
                raise BadRequest("%s: %r, not %r" % (name.decode(), fields.get(name), want))
        for name in (b"expect", b"transfer-encoding", b"upgrade"):
            if name in fields:
                raise BadRequest("unexpected field %s" % name.decode())
        cl = fields.get(b"content-length", b"")
        if not cl.isdigit():
            raise BadRequest("Content-Length %r" % cl)
        n = int(cl)
        self.buf = rest
        while len(self.buf) < n:
            if not self.recv():
                raise BadRequest("connection closed inside a request body")
        body, self.buf = self.buf[:n], self.buf[n:]
        if self.buf:
            raise BadRequest("%d bytes after the request, before its reply" % len(self.buf))
        try:
            msg = json.loads(body)
            rid = msg["PingRequest"]["RequestId"]
            if len(msg) != 1 or not isinstance(rid, str) or not rid:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise BadRequest("body %r is not a PingRequest" % body[:80])
        self.nreq += 1
        self.log("request %d %d" % (self.cid, self.nreq))
        return rid

    def send(self, data, step=None, delay=0.0):
        if step is None:
            self.s.sendall(data)
            return
        for i in range(0, len(data), step):
            self.s.sendall(data[i:i + step])
            time.sleep(delay)

    def wait_readable(self, seconds):
        select.select([self.s], [], [], seconds)

    def wait_eof(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            r, _, _ = select.select([self.s], [], [], end - time.monotonic())
            if r and not self.s.recv(65536):
                return


TCHAR = set(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def serve_conn(case, sock, cid, log):
    c = Conn(sock, cid, log)
    try:
        while True:
            rid = c.read_request()
            if rid is None or not case.respond(c, rid):
                break
    except BadRequest as e:
        log("BADREQ conn %d: %s" % (cid, e))
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client gave up on a reply it refused
    except Exception as e:  # noqa: BLE001 - reported by the checker
        log("SERVER-ERROR conn %d: %r" % (cid, e))
    finally:
        sock.close()


def serve_case(case, d):
    path = os.path.join(d, case.name + ".sock")
    log = Log(os.path.join(d, case.name + ".log"))
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(16)

    def loop():
        cid = 0
        while True:
            s, _ = ls.accept()
            cid += 1
            log("accept %d" % cid)
            threading.Thread(target=serve_conn, args=(case, s, cid, log), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


def serve(d, lifetime):
    for case in CASES:
        serve_case(case, d)
    with open(os.path.join(d, "ready"), "w") as f:
        f.write("%d\n" % os.getpid())
    time.sleep(lifetime)
    print("client_http.py serve: lifetime of %d s over, exiting" % lifetime, flush=True)
    os._exit(0)


# ---------------------------------------------------------------- checks


def run_case(d, lurk, case):
    sock = os.path.join(d, case.name + ".sock")
    env = dict(os.environ)
    env.pop("OPENSSL_CONF", None)   # nothing but the flags
    argv = [lurk, "--server", "unix:" + sock, "--timeout", str(case.timeout),
            "ping", "-c", str(case.count)]
    t0 = time.monotonic()
    try:
        p = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=20)
        rc, out, err = p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    except subprocess.TimeoutExpired:
        rc, out, err = None, "", "(killed after 20 s)"
    elapsed = time.monotonic() - t0

    with open(os.path.join(d, case.name + ".log")) as f:
        log = f.read().splitlines()
    conns = sum(1 for l in log if l.startswith("accept "))
    per = {}
    for l in log:
        if l.startswith("request "):
            cid = l.split()[1]
            per[cid] = per.get(cid, 0) + 1
    reqs = sum(per.values())

    why = []
    if case.errs:
        if rc != 1:
            why.append("exit status %s, want 1" % rc)
        for e in case.errs:
            if e not in err:
                why.append("stderr lacks %r" % e)
    else:
        if rc != 0:
            why.append("exit status %s, want 0" % rc)
        if err:
            why.append("stderr not empty")
        if out.count("ping: ") != case.count:
            why.append("%d ping lines, want %d" % (out.count("ping: "), case.count))
    if case.conns is not None and conns != case.conns:
        why.append("%d connections, want %d" % (conns, case.conns))
    if case.reqs is not None and reqs != case.reqs:
        why.append("%d requests read, want %d" % (reqs, case.reqs))
    if case.per_conn is not None and per and max(per.values()) > case.per_conn:
        why.append("%d requests on one connection, want at most %d"
                   % (max(per.values()), case.per_conn))
    if reqs == 0 and rc is not None:
        why.append("the server read no request")
    bad_lines = [l for l in log if l.startswith(("BADREQ", "SERVER-ERROR"))]
    if bad_lines:
        why.append("server: " + "; ".join(bad_lines))
    lo, hi = case.elapsed
    if not lo <= elapsed <= hi:
        why.append("took %.2f s, want %.2f..%.2f s" % (elapsed, lo, hi))

    outcome = "ok" if not case.errs else case.errs[-1]
    if why:
        print("FAIL: %s: %s -> %s: %s" % (case.name, case.what, outcome, ", ".join(why)), flush=True)
        for l in err.splitlines():
            print("    stderr: " + l)
        for l in log[:20]:
            print("    server: " + l)
        if len(log) > 20:
            print("    server: ... (%d lines in all)" % len(log))
        return False
    print("ok: %s: %s -> %s (%d conn, %d req, %.2f s)"
          % (case.name, case.what, outcome, conns, reqs, elapsed), flush=True)
    return True


def check(d, lurk):
    t0 = time.monotonic()
    failed = [c.name for c in CASES if not run_case(d, lurk, c)]
    print("%d cases in %.1f s, %d failed%s" % (len(CASES), time.monotonic() - t0, len(failed),
                                             (": " + " ".join(failed)) if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == "check":
        sys.exit(check(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(__doc__)
