#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""parity.py - the client side of tests/parity/parity.sh.

Reads the servers parity.sh started ("SERVER KEY VARIANT PORT" lines, VARIANT
file or lurk), runs every matrix row (server, key, client, case) against both
variants with a bounded worker pool, reduces each handshake to what a client
can see, and compares:

  ok PROTOCOL CIPHER sig=TYPE+DIGEST kx=GROUP     handshake done, chain verified
  FAIL alert N (DESCRIPTION)                      the server sent a fatal alert
  FAIL local (REASON)                             the client gave up by itself
  FAIL verify (REASON)                            the chain did not verify
  TIMEOUT                                         no answer within the bound

Rows are named "SERVER KEY CLIENT CASE" (refusals.txt selects them so):
  SERVER  s_server, nginx, haproxy; *-sec0 the same at SECLEVEL 0;
          s_server-legacy at SECLEVEL 0 with a key server allowing SHA-1/SHA-224
  KEY     rsa2048 p256 p384 p521 ed25519
  CLIENT  s_client, gnutls-cli
  CASE    t13-default            TLS 1.3, the client's defaults
          t13-sig-SCHEME         TLS 1.3, only signature scheme SCHEME (IANA name)
          t13-sigs-A-then-B      TLS 1.3, a preference list
          t13-group-GROUP        TLS 1.3, only GROUP (x25519 ... ffdhe3072)
          t12-KX                 TLS 1.2, KX = ecdhe, dhe (ffdhe2048), rsa (static)
          t12-KX-sig-SCHEME      TLS 1.2 ECDHE/DHE, only SCHEME (incl. *_sha1, *_sha224)
          t12-ecdhe-sigs-A-then-B  TLS 1.2, a preference list
          t12-ecdhe-group-GROUP  TLS 1.2 ECDHE, only GROUP
          t12-noext-KX           TLS 1.2 ClientHello without any extension, so
                                 without signature_algorithms (gnutls-cli only)

A row whose two outcomes differ is a difference unless an entry of the
refusal file (see its header) selects it and the lurk outcome is a failure;
rows of a *-legacy server (its key server allows SHA-1/SHA-224 for the key)
are never refused.
Exit status 0 when there is no difference and no stale refusal entry.
Python 3 standard library only.
"""

import argparse
import concurrent.futures
import fnmatch
import os
import re
import subprocess
import sys
import time

CLIENT_TIMEOUT = 15  # seconds, per client process

# ---- the matrix ------------------------------------------------------------

FAMILY = {"rsa2048": "rsa", "p256": "ec", "p384": "ec", "p521": "ec", "ed25519": "ed"}

# TLS 1.3 signature schemes: OpenSSL name -> gnutls name
SIG13 = [
    ("rsa_pkcs1_sha256", "RSA-SHA256"),
    ("rsa_pss_rsae_sha256", "RSA-PSS-RSAE-SHA256"),
    ("rsa_pss_rsae_sha384", "RSA-PSS-RSAE-SHA384"),
    ("rsa_pss_rsae_sha512", "RSA-PSS-RSAE-SHA512"),
    ("rsa_pss_pss_sha256", "RSA-PSS-SHA256"),
    ("ecdsa_secp256r1_sha256", "ECDSA-SECP256R1-SHA256"),
    ("ecdsa_secp384r1_sha384", "ECDSA-SECP384R1-SHA384"),
    ("ecdsa_secp521r1_sha512", "ECDSA-SECP521R1-SHA512"),
    ("ed25519", "EdDSA-Ed25519"),
    ("ed448", "EdDSA-Ed448"),
]
# TLS 1.2 signature algorithms: case name, OpenSSL -sigalgs, gnutls name
# (None: gnutls cannot offer it), legacy (SHA-1/SHA-224: SECLEVEL 0 clients)
SIG12 = [
    ("rsa_pkcs1_sha1", "RSA+SHA1", "RSA-SHA1", True),
    ("rsa_pkcs1_sha224", "RSA+SHA224", None, True),
    ("rsa_pkcs1_sha256", "rsa_pkcs1_sha256", "RSA-SHA256", False),
    ("rsa_pkcs1_sha384", "rsa_pkcs1_sha384", "RSA-SHA384", False),
    ("rsa_pkcs1_sha512", "rsa_pkcs1_sha512", "RSA-SHA512", False),
    ("rsa_pss_rsae_sha256", "rsa_pss_rsae_sha256", "RSA-PSS-RSAE-SHA256", False),
    ("rsa_pss_rsae_sha384", "rsa_pss_rsae_sha384", "RSA-PSS-RSAE-SHA384", False),
    ("rsa_pss_rsae_sha512", "rsa_pss_rsae_sha512", "RSA-PSS-RSAE-SHA512", False),
    ("rsa_pss_pss_sha256", "rsa_pss_pss_sha256", "RSA-PSS-SHA256", False),
    ("ecdsa_sha1", "ECDSA+SHA1", "ECDSA-SHA1", True),
    ("ecdsa_sha224", "ECDSA+SHA224", None, True),
    ("ecdsa_secp256r1_sha256", "ecdsa_secp256r1_sha256", "ECDSA-SHA256", False),
    ("ecdsa_secp384r1_sha384", "ecdsa_secp384r1_sha384", "ECDSA-SHA384", False),
    ("ecdsa_secp521r1_sha512", "ecdsa_secp521r1_sha512", "ECDSA-SHA512", False),
    ("ed25519", "ed25519", "EdDSA-Ed25519", False),
]
# client preference lists whose first entry the server cannot or should not
# use: case name, OpenSSL -sigalgs, gnutls SIGN list, legacy
SIGLISTS13 = [
    ("pss_pss-then-rsae", "rsa_pss_pss_sha256:rsa_pss_rsae_sha256",
     ["RSA-PSS-SHA256", "RSA-PSS-RSAE-SHA256"], False),
    ("secp384r1-then-secp256r1", "ecdsa_secp384r1_sha384:ecdsa_secp256r1_sha256",
     ["ECDSA-SECP384R1-SHA384", "ECDSA-SECP256R1-SHA256"], False),
]
SIGLISTS12 = [
    ("pss_pss-then-pkcs1", "rsa_pss_pss_sha256:rsa_pkcs1_sha256",
     ["RSA-PSS-SHA256", "RSA-SHA256"], False),
    ("sha1-then-sha256", "RSA+SHA1:ECDSA+SHA1:RSA+SHA256:ECDSA+SHA256",
     ["RSA-SHA1", "ECDSA-SHA1", "RSA-SHA256", "ECDSA-SHA256"], True),
    # SHA-224 is allowed at SECLEVEL 2: this one reaches the default servers
    ("sha224-then-sha256", "RSA+SHA224:ECDSA+SHA224:RSA+SHA256:ECDSA+SHA256", None, False),
]
# groups: case name, OpenSSL -groups, gnutls name, TLS 1.2 ECDHE too
GROUPS = [
    ("x25519", "X25519", "X25519", True),
    ("x448", "X448", "X448", True),
    ("secp256r1", "P-256", "SECP256R1", True),
    ("secp384r1", "P-384", "SECP384R1", True),
    ("secp521r1", "P-521", "SECP521R1", True),
    ("ffdhe2048", "ffdhe2048", "FFDHE2048", False),
    ("ffdhe3072", "ffdhe3072", "FFDHE3072", False),
]
# TLS 1.2 key exchanges: case name, OpenSSL -cipher, gnutls KX
KX12 = [
    ("ecdhe", "kECDHE", "+ECDHE-RSA:+ECDHE-ECDSA"),
    ("dhe", "kDHE", "+DHE-RSA"),
    ("rsa", "AES128-GCM-SHA256", "+RSA"),
]
# the ClientHello without any extension (so without signature_algorithms):
# only gnutls-cli can send it
NOEXT = [("rsa", "+RSA"), ("dhe", "+DHE-RSA"), ("ecdhe", "+ECDHE-RSA:+ECDHE-ECDSA")]

G13 = "NORMAL:-VERS-ALL:+VERS-TLS1.3"
G12 = "NORMAL:-VERS-ALL:+VERS-TLS1.2"
SEC0 = ":@SECLEVEL=0"
# Full coverage of the orthogonal dimensions (groups; every TLS 1.2 signature
# algorithm, most of them mismatches) for one key of each of the two families
# with many schemes; the other keys get their own family's TLS 1.2 schemes and
# one mismatch.  Every key gets every TLS 1.3 scheme.
FULL_KEYS = {"rsa2048", "p256"}


def sig12_for(key, name):
    if key in FULL_KEYS:
        return True
    return name.startswith(("ecdsa_", "ed25519")) or name == "rsa_pss_rsae_sha256"


def cases(key):
    """(client, case, argv-tail or priority, legacy) for one key."""
    fam = FAMILY[key]
    out = []
    # TLS 1.3
    out.append(("s_client", "t13-default", ["-tls1_3"], False))
    out.append(("gnutls-cli", "t13-default", G13, False))
    for ossl, gtls in SIG13:
        out.append(("s_client", "t13-sig-" + ossl, ["-tls1_3", "-sigalgs", ossl], False))
        out.append(("gnutls-cli", "t13-sig-" + ossl, G13 + ":-SIGN-ALL:+SIGN-" + gtls, False))
    for name, ossl, gtls, _ in GROUPS:
        if key not in FULL_KEYS:
            continue
        out.append(("s_client", "t13-group-" + name, ["-tls1_3", "-groups", ossl], False))
        out.append(("gnutls-cli", "t13-group-" + name, G13 + ":-GROUP-ALL:+GROUP-" + gtls, False))
    for name, ossl, gtls, _ in SIGLISTS13:
        out.append(("s_client", "t13-sigs-" + name, ["-tls1_3", "-sigalgs", ossl], False))
        out.append(("gnutls-cli", "t13-sigs-" + name,
                    G13 + ":-SIGN-ALL" + "".join(":+SIGN-" + g for g in gtls), False))
    # TLS 1.2, per key exchange
    for kx, ciph, gkx in KX12:
        out.append(("s_client", "t12-" + kx, ["-tls1_2", "-cipher", ciph], False))
        out.append(("gnutls-cli", "t12-" + kx, G12 + ":-KX-ALL:" + gkx, False))
    # TLS 1.2 signature algorithms: ECDHE for every key, DHE for RSA
    for kx, ciph, gkx in KX12[:2]:
        if kx == "dhe" and fam != "rsa":
            continue
        for name, ossl, gtls, legacy in SIG12:
            if not sig12_for(key, name) or (kx == "dhe" and not name.startswith("rsa_")):
                continue
            c = ciph + (SEC0 if legacy else "")
            out.append(("s_client", "t12-%s-sig-%s" % (kx, name),
                        ["-tls1_2", "-cipher", c, "-sigalgs", ossl], legacy))
            if gtls:
                out.append(("gnutls-cli", "t12-%s-sig-%s" % (kx, name),
                            G12 + ":-KX-ALL:" + gkx + ":-SIGN-ALL:+SIGN-" + gtls, legacy))
    for name, ossl, gtls, legacy in SIGLISTS12:
        c = "kECDHE" + (SEC0 if legacy else "")
        out.append(("s_client", "t12-ecdhe-sigs-" + name,
                    ["-tls1_2", "-cipher", c, "-sigalgs", ossl], legacy))
        if gtls:
            out.append(("gnutls-cli", "t12-ecdhe-sigs-" + name,
                        G12 + ":-KX-ALL:+ECDHE-RSA:+ECDHE-ECDSA:-SIGN-ALL"
                        + "".join(":+SIGN-" + g for g in gtls), legacy))
    for name, ossl, gtls, t12 in GROUPS:
        if not t12 or key not in FULL_KEYS:
            continue
        out.append(("s_client", "t12-ecdhe-group-" + name,
                    ["-tls1_2", "-cipher", "kECDHE", "-groups", ossl], False))
        out.append(("gnutls-cli", "t12-ecdhe-group-" + name,
                    G12 + ":-KX-ALL:+ECDHE-RSA:+ECDHE-ECDSA:-GROUP-ALL:+GROUP-" + gtls, False))
    for kx, gkx in NOEXT:
        out.append(("gnutls-cli", "t12-noext-" + kx,
                    G12 + ":%NO_EXTENSIONS:-KX-ALL:" + gkx, True))
    return out


# the SECLEVEL=0 servers exist for the legacy rows; these show they work at all
SEC0_BASIC = {"t13-default", "t12-ecdhe", "t12-dhe", "t12-rsa"}
# rows that must succeed with both variants on every server and key
ANCHORS = {"t13-default", "t12-ecdhe"}


def sig_family(name):
    return "rsa" if name.startswith("rsa_") else "ec" if name.startswith("ecdsa_") else "ed"


def rows(servers):
    """Matrix rows: (server, key, client, case, spec) for the servers present."""
    out = []
    for (server, key) in sorted(servers):
        for client, case, spec, legacy in cases(key):
            if server.endswith(("-sec0", "-legacy")) and not legacy and case not in SEC0_BASIC:
                continue
            # the key takes no part in (EC)DHE, and nginx/haproxy leave the
            # groups to libssl's defaults: the group rows run on s_server
            if "-group-" in case and not server.startswith("s_server"):
                continue
            # a scheme of another key type fails in libssl's certificate
            # choice, before the key is used: s_server covers those
            # mismatches for every key; nginx/haproxy run their key's own
            if "-sig-" in case and not server.startswith("s_server") \
                    and sig_family(case.split("-sig-")[1]) != FAMILY[key]:
                continue
            out.append((server, key, client, case, spec))
    return out


# ---- clients and outcomes --------------------------------------------------

ERR_RE = re.compile(r"error:[0-9A-F]{8}:[^:]*:[^:]*:([^:\n]+)")


def s_client_outcome(rc, text):
    done = re.search(r"^(?:New|Reused), (\S+), Cipher is (\S+)", text, re.M)
    if done and done.group(2) not in ("(NONE)", "0000"):
        vr = re.search(r"Verify return code: (\d+) \(([^)]*)\)", text)
        if not vr or vr.group(1) != "0":
            return "FAIL verify (%s)" % (vr.group(2) if vr else "no verify result")
        proto = re.search(r"^\s*Protocol\s*:\s*(\S+)", text, re.M)
        stype = re.search(r"^Peer signature type: (\S+)", text, re.M)
        sdig = re.search(r"^Peer signing digest: (\S+)", text, re.M)
        tmp = re.search(r"^Server Temp Key: (.+)$", text, re.M)
        sig = (stype.group(1) if stype else "-") + "+" + (sdig.group(1) if sdig else "-")
        return "ok %s %s sig=%s kx=%s" % (
            proto.group(1) if proto else done.group(1), done.group(2), sig,
            tmp.group(1).replace(" ", "") if tmp else "-")
    alert = re.search(r"SSL alert number (\d+)", text)
    reasons = ERR_RE.findall(text)
    if alert:
        return "FAIL alert %s (%s)" % (alert.group(1), reasons[0] if reasons else "?")
    if reasons:
        return "FAIL local (%s)" % reasons[0]
    m = re.search(r"(write:errno=\d+|connect:errno=\d+)", text)
    return "FAIL local (%s, rc %d)" % (m.group(1) if m else "no handshake", rc)


def gnutls_outcome(rc, text):
    if "Handshake was completed" in text:
        if "The certificate is trusted" not in text:
            m = re.search(r"- Status: (.*)", text)
            return "FAIL verify (%s)" % (m.group(1).strip() if m else "not trusted")
        m = re.search(r"^- Description: (.*)$", text, re.M)
        return "ok " + (m.group(1).strip() if m else "?")
    alert = re.search(r"\*\*\* Received alert \[(\d+)\]: (.*)", text)
    if alert:
        return "FAIL alert %s (%s)" % (alert.group(1), alert.group(2).strip())
    m = re.search(r"\*\*\* (?:Handshake has failed|Fatal error): (.*)", text)
    if m:
        return "FAIL local (%s)" % m.group(1).strip()
    m = re.search(r"(Error in priorities.*|Could not connect.*|Connecting to .* failed.*)", text)
    return "FAIL local (%s, rc %d)" % (m.group(1).strip() if m else "no handshake", rc)


def run_client(client, spec, port, ca):
    if client == "s_client":
        argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                "-servername", "localhost", "-verify_return_error",
                "-verify_hostname", "localhost", "-CAfile", ca] + spec
    else:
        argv = ["gnutls-cli", "--x509cafile", ca, "--priority", spec,
                "--sni-hostname", "localhost", "--verify-hostname", "localhost",
                "-p", str(port), "127.0.0.1"]
    env = {k: v for k, v in os.environ.items() if k not in ("OPENSSL_CONF", "OPENSSL_MODULES")}
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, env=env, timeout=CLIENT_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode("utf-8", "replace") if e.stdout else ""
        return "TIMEOUT", " ".join(argv) + "\n" + out
    text = p.stdout.decode("utf-8", "replace")
    parse = s_client_outcome if client == "s_client" else gnutls_outcome
    return parse(p.returncode, text), " ".join(argv) + "\n" + text


# ---- refusals ---------------------------------------------------------------

def load_refusals(path):
    """[(lineno, [4 globs], reason)] from the refusal file."""
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 4)
            if len(parts) < 5:
                raise SystemExit("%s:%d: want SERVER KEY CLIENT CASE REASON" % (path, n))
            out.append((n, parts[:4], parts[4]))
    return out


def matches(entry, row):
    return all(fnmatch.fnmatchcase(v, g) for v, g in zip(row, entry[1]))


# ---- main ------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--servers", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--refusals", required=True)
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--only", default="", help="regex on 'server key client case'")
    ap.add_argument("--work", default="")
    a = ap.parse_args()

    ports = {}
    with open(a.servers) as f:
        for line in f:
            if line.strip():
                server, key, var, port = line.split()
                ports[(server, key, var)] = int(port)
    servers = {(s, k) for (s, k, _) in ports}
    refusals = load_refusals(a.refusals)
    matrix = rows(servers)
    if a.only:
        matrix = [r for r in matrix if re.search(a.only, " ".join(r[:4]))]
    if a.work:
        os.makedirs(a.work, exist_ok=True)

    t0 = time.time()
    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=a.jobs) as pool:
        futs = {}
        for r in matrix:
            server, key, client, case, spec = r
            for var in ("file", "lurk"):
                fut = pool.submit(run_client, client, spec, ports[(server, key, var)], a.ca)
                futs[fut] = (r[:4], var)
        for fut in concurrent.futures.as_completed(futs):
            row, var = futs[fut]
            results[(row, var)] = fut.result()
    elapsed = time.time() - t0

    used = {n: 0 for n, _, _ in refusals}
    groups = {}
    diffs, refused, broken = [], [], []
    dump = open(os.path.join(a.work, "rows.tsv"), "w") if a.work else None
    for r in matrix:
        row = r[:4]
        fo, ftext = results[(row, "file")]
        lo, ltext = results[(row, "lurk")]
        if dump:
            dump.write("\t".join(list(row) + [fo, lo]) + "\n")
        # anchors: the plain handshakes must work, or the matrix proves nothing
        if row[3] in ANCHORS and not (fo.startswith("ok") and lo.startswith("ok")):
            broken.append((row, fo, lo))
        g = groups.setdefault(row[:3], [0, 0, 0, 0, 0])
        g[0] += 1
        if fo == lo:
            g[1] += 1
            g[4] += fo.startswith("ok")
            continue
        # the key server of a *-legacy server allows SHA-1/SHA-224: no refusal
        entry = None
        if not row[0].endswith("-legacy"):
            entry = next((e for e in refusals if matches(e, row)), None)
        if entry and lo.startswith(("FAIL", "TIMEOUT")):
            used[entry[0]] += 1
            g[2] += 1
            refused.append((row, fo, lo, entry))
        else:
            g[3] += 1
            diffs.append((row, fo, lo))
        if a.work:
            base = os.path.join(a.work, "-".join(row))
            for var, text in (("file", ftext), ("lurk", ltext)):
                with open("%s.%s.out" % (base, var), "w") as f:
                    f.write(text)

    if dump:
        dump.close()
    for (server, key, client), (n, same, ref, diff, nok) in sorted(groups.items()):
        print("%-14s %-8s %-10s %3d rows: %3d identical (%2d ok, %2d fail), %2d refused, "
              "%2d different%s" % (server, key, client, n, same, nok, same - nok, ref, diff,
                                   "  <--" if diff else ""))

    def table(title, items):
        print("\n%s (%d):" % (title, len(items)))
        print("  %-58s | %-50s | %s" % ("row (server key client case)", "key file", "lurk"))
        for it in items:
            print("  %-58s | %-50s | %s" % (" ".join(it[0]), it[1], it[2]))

    if refused:
        table("documented refusals", refused)
    if diffs:
        table("DIFFERENCES", diffs)
    if broken:
        table("BROKEN: plain handshakes (%s) that did not succeed" % ", ".join(sorted(ANCHORS)),
              broken)
    stale = [(n, g, why) for n, g, why in refusals if used[n] == 0]
    if stale and not a.only:
        print("\nSTALE refusal entries (%s: they excuse no difference):" % a.refusals)
        for n, g, why in stale:
            nrows = sum(1 for r in matrix if matches((n, g), r[:4]))
            print("  line %d: %s  (%s; matches %d rows)" % (n, " ".join(g), why, nrows))
    else:
        stale = []
    print("\nparity: %d rows, %d identical, %d documented refusals, %d differences"
          "%s (%d handshakes in %.1f s, %d workers)" % (
              len(matrix), len(matrix) - len(diffs) - len(refused), len(refused), len(diffs),
              ", %d stale refusal entries" % len(stale) if stale else "",
              2 * len(matrix), elapsed, a.jobs))
    return 1 if diffs or stale or broken or not matrix else 0


if __name__ == "__main__":
    sys.exit(main())
