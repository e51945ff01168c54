#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""cke_proxy.py MODE SERVER_PORT: a one-connection TCP proxy on 127.0.0.1
(port printed as "PORT n") between a TLS 1.2 client and server that
rewrites the encrypted premaster in the client's ClientKeyExchange (static
RSA) and prints what the server answered: "alert N" (its first plaintext
alert, N the AlertDescription: 20 bad_record_mac, 51 decrypt_error) or
"ccs" (it went on to ChangeCipherSpec).  MODE: keep, badpad (last byte
flipped), short (first byte dropped), long (a zero byte prepended),
ge-n (every byte 0xff)."""
import select
import socket
import struct
import sys


def rewrite(mode, ct):
    if mode == "badpad":
        return ct[:-1] + bytes([ct[-1] ^ 1])
    if mode == "short":
        return ct[1:]
    if mode == "long":
        return b"\x00" + ct
    if mode == "ge-n":
        return b"\xff" * len(ct)
    return ct


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    print("PORT %d" % lst.getsockname()[1], flush=True)
    lst.settimeout(20)
    cli, _ = lst.accept()
    srv = socket.create_connection(("127.0.0.1", port), timeout=20)
    cli.settimeout(20)
    cbuf = b""
    sbuf = b""
    client_ccs = False
    result = None
    while result is None:
        r, _, _ = select.select([cli, srv], [], [], 20)
        if not r:
            result = "timeout"
            break
        if cli in r:
            data = cli.recv(65536)
            if not data:
                result = "client closed"
                break
            cbuf += data
            while len(cbuf) >= 5:
                typ, ver, ln = struct.unpack(">BHH", cbuf[:5])
                if len(cbuf) < 5 + ln:
                    break
                body, cbuf = cbuf[5:5 + ln], cbuf[5 + ln:]
                if typ == 20:
                    client_ccs = True
                if typ == 22 and not client_ccs and body[0] == 0x10:
                    (ctlen,) = struct.unpack(">H", body[4:6])
                    ct = rewrite(mode, body[6:6 + ctlen])
                    hs = struct.pack(">H", len(ct)) + ct
                    body = b"\x10" + struct.pack(">I", len(hs))[1:] + hs
                srv.sendall(struct.pack(">BHH", typ, ver, len(body)) + body)
        if srv in r:
            data = srv.recv(65536)
            if not data:
                result = "server closed"
                break
            cli.sendall(data)
            sbuf += data
            while result is None and len(sbuf) >= 5:
                typ, _, ln = struct.unpack(">BHH", sbuf[:5])
                if len(sbuf) < 5 + ln:
                    break
                body, sbuf = sbuf[5:5 + ln], sbuf[5 + ln:]
                if typ == 21:
                    result = "alert %d" % body[1]
                elif typ == 20:
                    result = "ccs"
    print(result, flush=True)
    cli.close()
    srv.close()


if __name__ == "__main__":
    main()
