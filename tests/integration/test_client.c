/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_client.c - the client library against a real lurk-keyserver over
 * real mutual TLS on 127.0.0.1 (started by client.sh).
 *
 * Every signature is verified with OpenSSL's default provider on the public
 * key read from the key's own PEM file (an independent check: neither the
 * server's answer nor lurk code is trusted for it).  Every refusal is
 * followed by a ping: the server must keep serving.
 *
 * Environment (set by client.sh):
 *   ITEST_DIR       the ks_make_pki dir: ca.crt client.crt client.key
 *                   other-client.* rogue-ca.crt rogue-client.* keys/NAME.pem
 *   ITEST_PORT      the key server's port
 *   ITEST_PID       its pid (the restart test stops it)
 *   ITEST_CONFIG    its config file (the restart test starts it again)
 *   ITEST_PIDFILE   where the pid of a restarted server is written
 *   LURK_KEYSERVER  the server binary
 *
 * Output: one "ok"/"not ok" line per check; exit status 1 if any failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "lurk_client.h"
#include "lurk_encoding.h"
#include "lurk_keyid.h"

#define PROPQ "provider=default"

static int failures;
static int checks;

static void check(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void check(int cond, const char *fmt, ...)
{
    va_list ap;

    checks++;
    if (!cond) {
        failures++;
    }
    printf("%s ", cond ? "ok" : "not ok");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

static void check_err(lurk_err got, lurk_err want, const lurk_detail *d, const char *what)
{
    check(got == want, "%s: %s (want %s)%s%s", what, lurk_err_name(got), lurk_err_name(want),
          d != NULL && d->msg[0] != '\0' ? " -- " : "", d != NULL ? d->msg : "");
}

static const char *env(const char *name)
{
    const char *v = getenv(name);

    if (v == NULL || v[0] == '\0') {
        fprintf(stderr, "test_client: %s is not set\n", name);
        exit(2);
    }
    return v;
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ------------------------------------------------------------------------ */
/* Keys                                                                       */

typedef struct {
    const char *name;     /* keys/NAME.pem; the server config names it NAME */
    const char *policy;
    lurk_key_type type;
    int bits;             /* RSA modulus / EC field size */
    EVP_PKEY *priv;       /* local copy (the test made the key) */
    EVP_PKEY *pub;        /* public only, re-decoded from DER */
    unsigned char *spki;
    size_t spki_len;
    char id[LURK_KEYID_TEXT_MAX];
} test_key;

static test_key keys[] = {
    /* ks_make_pki (tests/lib/keyserver.sh) */
    { "rsa2048", "tls-server", LURK_KEY_RSA, 2048 },
    { "rsa3072", "tls-server", LURK_KEY_RSA, 3072 },
    { "rsa4096", "tls-server", LURK_KEY_RSA, 4096 },
    { "p256", "tls-server", LURK_KEY_EC, 256 },
    { "p384", "tls-server", LURK_KEY_EC, 384 },
    { "p521", "tls-server", LURK_KEY_EC, 521 },
    { "ed25519", "tls-server", LURK_KEY_ED25519, 256 },
    { "p256-enc", "tls-server", LURK_KEY_EC, 256 },        /* encrypted PKCS#8 */
    { "rsa2048-sign", "sign", LURK_KEY_RSA, 2048 },
    { "p256-sign", "sign", LURK_KEY_EC, 256 },
    { "ed25519-sign", "sign", LURK_KEY_ED25519, 256 },
    { "rsa2048-oaep", "decrypt", LURK_KEY_RSA, 2048 },
    { "p256-agree", "agree", LURK_KEY_EC, 256 },
    { "p256-restricted", "tls-server", LURK_KEY_EC, 256 }, /* clients = lurk-other-client */
    /* added by client.sh */
    { "rsa3072-sign", "sign", LURK_KEY_RSA, 3072 },
    { "rsa4096-sign", "sign", LURK_KEY_RSA, 4096 },
    { "p384-sign", "sign", LURK_KEY_EC, 384 },
    { "p521-sign", "sign", LURK_KEY_EC, 521 },
};
#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

static test_key *key(const char *name)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        if (strcmp(keys[i].name, name) == 0) {
            return &keys[i];
        }
    }
    fprintf(stderr, "test_client: no key %s\n", name);
    exit(2);
}

static char passphrase[256];

static int pass_cb(char *buf, int size, int rwflag, void *u)
{
    size_t n = strlen(passphrase);

    (void)rwflag;
    (void)u;
    if (n == 0 || n >= (size_t)size) {
        return -1;
    }
    memcpy(buf, passphrase, n);
    return (int)n;
}

static EVP_PKEY *read_private(const char *path)
{
    FILE *f = fopen(path, "r");
    EVP_PKEY *k;

    if (f == NULL) {
        fprintf(stderr, "test_client: %s: %s\n", path, strerror(errno));
        exit(2);
    }
    k = PEM_read_PrivateKey_ex(f, NULL, pass_cb, NULL, NULL, PROPQ);
    fclose(f);
    if (k == NULL) {
        fprintf(stderr, "test_client: %s: not a private key\n", path);
        exit(2);
    }
    return k;
}

static void load_keys(const char *dir)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/p256-enc.pass", dir);
    f = fopen(path, "r");
    if (f != NULL) {
        if (fgets(passphrase, sizeof(passphrase), f) != NULL) {
            passphrase[strcspn(passphrase, "\r\n")] = '\0';
        }
        fclose(f);
    }
    for (size_t i = 0; i < N_KEYS; i++) {
        test_key *k = &keys[i];
        unsigned char *der = NULL;
        const unsigned char *p;
        int n;
        lurk_keyid id;

        snprintf(path, sizeof(path), "%s/keys/%s.pem", dir, k->name);
        k->priv = read_private(path);
        n = i2d_PUBKEY(k->priv, &der);
        if (n <= 0) {
            exit(2);
        }
        k->spki = der;
        k->spki_len = (size_t)n;
        p = der;
        k->pub = d2i_PUBKEY_ex(NULL, &p, n, NULL, PROPQ);
        if (k->pub == NULL || lurk_keyid_from_spki(der, (size_t)n, 2, &id) != LURK_OK
            || lurk_keyid_format(&id, k->id, sizeof(k->id)) != LURK_OK) {
            exit(2);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Independent verification (default provider)                                */

static const char *md_ossl(lurk_md md)
{
    switch (md) {
    case LURK_MD_SHA256:
        return "SHA256";
    case LURK_MD_SHA384:
        return "SHA384";
    case LURK_MD_SHA512:
        return "SHA512";
    default:
        return NULL;
    }
}

static int set_pss(EVP_PKEY_CTX *pctx, lurk_sig_alg alg, lurk_md md, int salt)
{
    if (alg == LURK_SIG_RSA_PSS) {
        return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0
               && EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salt) > 0
               && EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, md_ossl(md), NULL) > 0;
    }
    if (alg == LURK_SIG_RSA_PKCS1) {
        return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) > 0;
    }
    return 1;
}

/* Verifies over the message (msg) or over a digest (dig). */
static int verify(EVP_PKEY *pub, lurk_sig_alg alg, lurk_md md, int salt,
                  const unsigned char *msg, size_t msg_len, const unsigned char *dig,
                  size_t dig_len, const unsigned char *sig, size_t sig_len)
{
    int ok = 0;

    if (msg != NULL) {
        EVP_MD_CTX *mctx = EVP_MD_CTX_new();
        EVP_PKEY_CTX *pctx = NULL;

        ok = mctx != NULL
             && EVP_DigestVerifyInit_ex(mctx, &pctx, md_ossl(md), NULL, PROPQ, pub, NULL) == 1
             && set_pss(pctx, alg, md, salt)
             && EVP_DigestVerify(mctx, sig, sig_len, msg, msg_len) == 1;
        EVP_MD_CTX_free(mctx);
    } else {
        EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pub, PROPQ);

        ok = pctx != NULL && EVP_PKEY_verify_init(pctx) == 1
             && EVP_PKEY_CTX_set_signature_md(pctx, EVP_get_digestbyname(md_ossl(md))) > 0
             && set_pss(pctx, alg, md, salt)
             && EVP_PKEY_verify(pctx, sig, sig_len, dig, dig_len) == 1;
        EVP_PKEY_CTX_free(pctx);
    }
    ERR_clear_error();
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Clients                                                                    */

static char server_url[128];
static char dir_ca[4096], dir_cert[4096], dir_key[4096];
static char rogue_ca[4096], rogue_cert[4096], rogue_key[4096];
static char other_cert[4096], other_key[4096];

static LURK_CLIENT *new_client_ex(const char *servers, const char *ca, const char *cert,
                                  const char *keyf, long connect_ms, long timeout_ms)
{
    lurk_client_config cfg;
    LURK_CLIENT *c = NULL;
    lurk_detail d;
    lurk_err err;

    memset(&cfg, 0, sizeof(cfg));
    cfg.servers = servers;
    cfg.ca_file = ca;
    cfg.cert_file = cert;
    cfg.key_file = keyf;
    cfg.connect_timeout_ms = connect_ms;
    cfg.timeout_ms = timeout_ms;
    err = lurk_client_new(&cfg, &c, &d);
    if (err != LURK_OK) {
        fprintf(stderr, "test_client: lurk_client_new(%s): %s: %s\n", servers,
                lurk_err_str(err), d.msg);
        exit(2);
    }
    return c;
}

static LURK_CLIENT *new_client(void)
{
    return new_client_ex(server_url, dir_ca, dir_cert, dir_key, 1000, 5000);
}

static void still_serving(LURK_CLIENT *c, const char *after)
{
    lurk_detail d;
    lurk_err err = lurk_client_ping(c, &d);

    check(err == LURK_OK, "server still answers a ping after %s%s%s", after,
          err != LURK_OK ? ": " : "", err != LURK_OK ? d.msg : "");
}

/* A port with nothing listening on it (bound, then closed). */
static int dead_port(void)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0
        || getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
        exit(2);
    }
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* A listening socket that never accepts: connects succeed, TLS never starts. */
static int black_hole(int *port)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 16) != 0
        || getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
        exit(2);
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                      */

static void test_hello_ping(LURK_CLIENT *c)
{
    lurk_hello_info info;
    unsigned char state[64];
    size_t state_len = sizeof(state);
    size_t small = 1;
    lurk_detail d;
    lurk_err err;
    uint32_t want_tx = (1u << LURK_TX_HELLO) | (1u << LURK_TX_PING) | (1u << LURK_TX_PUBLIC_KEY)
                       | (1u << LURK_TX_SIGN) | (1u << LURK_TX_DECRYPT) | (1u << LURK_TX_AGREE);

    memset(&info, 0, sizeof(info));
    err = lurk_client_hello(c, &info, state, &state_len, &d);
    check_err(err, LURK_OK, &d, "hello");
    check(info.major == 1 && info.minor == 0, "hello: version %u.%u", info.major, info.minor);
    check((info.transactions & want_tx) == want_tx, "hello: all six transactions (0x%x)",
          info.transactions);
    check((info.sig_algs & ((1u << LURK_SIG_RSA_PKCS1) | (1u << LURK_SIG_RSA_PSS)
                            | (1u << LURK_SIG_ECDSA) | (1u << LURK_SIG_ED25519)))
              != 0,
          "hello: signature algorithms (0x%x)", info.sig_algs);
    check(state_len > 0, "hello: State of %zu bytes", state_len);
    err = lurk_client_hello(c, &info, state, &small, &d);
    check(err == LURK_ERR_INVALID_ARG && small == state_len,
          "hello: State buffer capacity is checked (%s, needs %zu)", lurk_err_name(err), small);
    err = lurk_client_ping(c, &d);
    check_err(err, LURK_OK, &d, "ping");
}

static void test_public_keys(LURK_CLIENT *c)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        test_key *k = &keys[i];
        unsigned char *spki = NULL;
        size_t spki_len = 0;
        lurk_key_type type = LURK_KEY_NONE;
        char policy[32] = "";
        lurk_detail d;
        lurk_err err;

        err = lurk_client_public_key(c, k->id, &type, policy, &spki, &spki_len, &d);
        if (strcmp(k->name, "p256-restricted") == 0) {
            /* Reserved for another client: even its public key is refused. */
            check(err == LURK_ERR_POLICY_DENIED && d.status == 403,
                  "public key %s (clients = lurk-other-client): %s %d -- %s", k->name,
                  lurk_err_name(err), d.status, d.msg);
            free(spki);
            continue;
        }
        check(err == LURK_OK && spki_len == k->spki_len
                  && memcmp(spki, k->spki, spki_len) == 0 && type == k->type
                  && strcmp(policy, k->policy) == 0,
              "public key %s: %s, same SPKI, type %s, policy %s%s%s", k->name,
              lurk_err_name(err), lurk_key_type_name(type), policy,
              err != LURK_OK ? " -- " : "", err != LURK_OK ? d.msg : "");
        free(spki);
    }
}

/* Signs data (or its digest) with key k and checks the signature. */
static void sign_and_verify(LURK_CLIENT *c, test_key *k, lurk_sig_alg alg, lurk_md md,
                            int salt, const unsigned char *msg, size_t msg_len, int as_digest,
                            const char *what)
{
    unsigned char dig[EVP_MAX_MD_SIZE];
    unsigned int dig_len = 0;
    unsigned char sig[1024];
    size_t sig_len = sizeof(sig);
    lurk_sign_params p;
    lurk_detail d;
    lurk_err err;
    int ok;

    memset(&p, 0, sizeof(p));
    p.key_id = k->id;
    p.alg = alg;
    p.md = md;
    p.salt_len = salt;
    if (as_digest) {
        EVP_Digest(msg, msg_len, dig, &dig_len, EVP_get_digestbyname(md_ossl(md)), NULL);
        p.digest = dig;
        p.digest_len = dig_len;
    } else {
        p.data = msg;
        p.data_len = msg_len;
    }
    err = lurk_client_sign(c, &p, sig, &sig_len, &d);
    ok = err == LURK_OK
         && verify(k->pub, alg, md, salt, as_digest ? NULL : msg, msg_len, dig, dig_len, sig,
                   sig_len);
    check(ok, "sign %s %s %s%s %s: %s%s%s", k->name, lurk_sig_alg_name(alg),
          md != LURK_MD_NONE ? lurk_md_name(md) : "-", as_digest ? " (digest)" : "", what,
          err == LURK_OK ? (ok ? "verified" : "DOES NOT VERIFY") : lurk_err_name(err),
          err != LURK_OK ? " -- " : "", err != LURK_OK ? d.msg : "");
}

/* TLS 1.3 server CertificateVerify input (RFC 8446 4.4.3).  The transcript
 * hash is the cipher suite's (SHA-256 or SHA-384), independent of the
 * signature scheme's digest: rsa_pss_rsae_sha512 signs a 32-byte hash too. */
static size_t tls13_cv(lurk_md md, unsigned char *out)
{
    static const char ctx[] = "TLS 1.3, server CertificateVerify";
    size_t n = 0;
    size_t hlen = md == LURK_MD_SHA384 ? 48 : 32;

    memset(out, 0x20, 64);
    n = 64;
    memcpy(out + n, ctx, sizeof(ctx)); /* with its terminating 0x00 */
    n += sizeof(ctx);
    RAND_bytes(out + n, (int)hlen);    /* stands for the transcript hash */
    return n + hlen;
}

/* TLS 1.2 ServerKeyExchange signed input (RFC 8422 5.4) with a real
 * ephemeral point on curve `group`. */
static size_t tls12_ske(const char *group, unsigned curve_id, unsigned char *out)
{
    EVP_PKEY *eph = EVP_PKEY_Q_keygen(NULL, PROPQ, "EC", group);
    unsigned char point[200];
    size_t plen = 0;
    size_t n = 0;

    if (eph == NULL
        || !EVP_PKEY_get_octet_string_param(eph, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point,
                                            sizeof(point), &plen)) {
        exit(2);
    }
    RAND_bytes(out, 64); /* client_random || server_random */
    n = 64;
    out[n++] = 3;        /* named_curve */
    out[n++] = (unsigned char)(curve_id >> 8);
    out[n++] = (unsigned char)curve_id;
    out[n++] = (unsigned char)plen;
    memcpy(out + n, point, plen);
    EVP_PKEY_free(eph);
    return n + plen;
}

static void test_sign(LURK_CLIENT *c)
{
    static const unsigned char msg[] = "a message the key server signs for the integration test";
    static const lurk_md mds[] = { LURK_MD_SHA256, LURK_MD_SHA384, LURK_MD_SHA512 };
    static const char *const rsa_sign[] = { "rsa2048-sign", "rsa3072-sign", "rsa4096-sign" };
    static const char *const rsa_tls[] = { "rsa2048", "rsa3072", "rsa4096" };
    unsigned char in[512];
    size_t n;

    /* Generic signing (policy sign): data and digest, every digest. */
    for (size_t i = 0; i < 3; i++) {
        test_key *k = key(rsa_sign[i]);

        for (size_t j = 0; j < 3; j++) {
            sign_and_verify(c, k, LURK_SIG_RSA_PKCS1, mds[j], -1, msg, sizeof(msg), 0, "msg");
            sign_and_verify(c, k, LURK_SIG_RSA_PKCS1, mds[j], -1, msg, sizeof(msg), 1, "msg");
            sign_and_verify(c, k, LURK_SIG_RSA_PSS, mds[j], (int)lurk_md_size(mds[j]), msg,
                            sizeof(msg), 0, "msg");
            sign_and_verify(c, k, LURK_SIG_RSA_PSS, mds[j], (int)lurk_md_size(mds[j]), msg,
                            sizeof(msg), 1, "msg");
        }
        sign_and_verify(c, k, LURK_SIG_RSA_PSS, LURK_MD_SHA256, 0, msg, sizeof(msg), 0,
                        "msg salt 0");
    }
    /* tls-server RSA keys: the two TLS inputs. */
    for (size_t i = 0; i < 3; i++) {
        test_key *k = key(rsa_tls[i]);

        for (size_t j = 0; j < 3; j++) {
            n = tls13_cv(mds[j], in);
            sign_and_verify(c, k, LURK_SIG_RSA_PSS, mds[j], (int)lurk_md_size(mds[j]), in, n, 0,
                            "TLS 1.3 CertificateVerify");
        }
        n = tls12_ske("P-256", 23, in);
        sign_and_verify(c, k, LURK_SIG_RSA_PKCS1, LURK_MD_SHA256, -1, in, n, 0,
                        "TLS 1.2 ServerKeyExchange");
        sign_and_verify(c, k, LURK_SIG_RSA_PKCS1, LURK_MD_SHA384, -1, in, n, 0,
                        "TLS 1.2 ServerKeyExchange");
        sign_and_verify(c, k, LURK_SIG_RSA_PSS, LURK_MD_SHA256, 32, in, n, 0,
                        "TLS 1.2 ServerKeyExchange");
    }
    /* ECDSA, policy sign. */
    {
        static const char *const ecs[] = { "p256-sign", "p384-sign", "p521-sign" };

        for (size_t i = 0; i < 3; i++) {
            for (size_t j = 0; j < 3; j++) {
                sign_and_verify(c, key(ecs[i]), LURK_SIG_ECDSA, mds[j], -1, msg, sizeof(msg), 0,
                                "msg");
                sign_and_verify(c, key(ecs[i]), LURK_SIG_ECDSA, mds[j], -1, msg, sizeof(msg), 1,
                                "msg");
            }
        }
    }
    /* ECDSA, tls-server: each curve with its own digest, both TLS inputs. */
    {
        static const struct {
            const char *key, *group;
            unsigned curve_id;
            lurk_md md;
        } ec[] = {
            { "p256", "P-256", 23, LURK_MD_SHA256 },
            { "p384", "P-384", 24, LURK_MD_SHA384 },
            { "p521", "P-521", 25, LURK_MD_SHA512 },
            { "p256-enc", "P-256", 23, LURK_MD_SHA256 },
        };

        for (size_t i = 0; i < sizeof(ec) / sizeof(ec[0]); i++) {
            n = tls13_cv(ec[i].md, in);
            sign_and_verify(c, key(ec[i].key), LURK_SIG_ECDSA, ec[i].md, -1, in, n, 0,
                            "TLS 1.3 CertificateVerify");
            n = tls12_ske(ec[i].group, ec[i].curve_id, in);
            sign_and_verify(c, key(ec[i].key), LURK_SIG_ECDSA, ec[i].md, -1, in, n, 0,
                            "TLS 1.2 ServerKeyExchange");
        }
    }
    /* Ed25519: generic, and the TLS 1.3 CertificateVerify of a tls-server key. */
    sign_and_verify(c, key("ed25519-sign"), LURK_SIG_ED25519, LURK_MD_NONE, -1, msg,
                    sizeof(msg), 0, "msg");
    n = tls13_cv(LURK_MD_SHA256, in);
    sign_and_verify(c, key("ed25519"), LURK_SIG_ED25519, LURK_MD_NONE, -1, in, n, 0,
                    "TLS 1.3 CertificateVerify");
}

static size_t rsa_encrypt(EVP_PKEY *pub, int padding, lurk_md oaep_md,
                          const unsigned char *label, size_t label_len,
                          const unsigned char *pt, size_t pt_len, unsigned char *out)
{
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pub, PROPQ);
    size_t out_len = 1024;
    int ok;

    ok = pctx != NULL && EVP_PKEY_encrypt_init(pctx) == 1
         && EVP_PKEY_CTX_set_rsa_padding(pctx, padding) > 0;
    if (ok && padding == RSA_PKCS1_OAEP_PADDING) {
        unsigned char *l = NULL;

        ok = EVP_PKEY_CTX_set_rsa_oaep_md_name(pctx, md_ossl(oaep_md), NULL) > 0
             && EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, md_ossl(oaep_md), NULL) > 0;
        if (ok && label != NULL) {
            l = OPENSSL_memdup(label, label_len);
            ok = l != NULL && EVP_PKEY_CTX_set0_rsa_oaep_label(pctx, l, (int)label_len) > 0;
        }
    }
    ok = ok && EVP_PKEY_encrypt(pctx, out, &out_len, pt, pt_len) == 1;
    EVP_PKEY_CTX_free(pctx);
    if (!ok) {
        fprintf(stderr, "test_client: local RSA encryption failed\n");
        exit(2);
    }
    return out_len;
}

static void test_decrypt(LURK_CLIENT *c)
{
    static const char *const names[] = { "rsa2048", "rsa2048-oaep" };
    unsigned char pm[48], ct[1024], out[512];
    size_t ct_len, out_len;
    lurk_decrypt_params p;
    lurk_detail d;
    lurk_err err;

    for (size_t i = 0; i < 2; i++) {
        test_key *k = key(names[i]);

        pm[0] = 0x03;
        pm[1] = 0x03;
        RAND_bytes(pm + 2, 46);
        ct_len = rsa_encrypt(k->pub, RSA_PKCS1_PADDING, LURK_MD_NONE, NULL, 0, pm, 48, ct);
        memset(&p, 0, sizeof(p));
        p.key_id = k->id;
        p.mode = LURK_DEC_TLS_PREMASTER;
        p.client_version = 0x0303;
        p.in = ct;
        p.in_len = ct_len;
        out_len = sizeof(out);
        err = lurk_client_decrypt(c, &p, out, &out_len, &d);
        check(err == LURK_OK && out_len == 48 && memcmp(out, pm, 48) == 0,
              "decrypt %s tls-premaster: %s, %zu bytes, %s", k->name, lurk_err_name(err),
              out_len, err == LURK_OK && memcmp(out, pm, 48) == 0 ? "the premaster" : d.msg);

        /* Implicit rejection: corrupted ciphertext, same reply shape. */
        ct[ct_len / 2] ^= 0x5a;
        out_len = sizeof(out);
        err = lurk_client_decrypt(c, &p, out, &out_len, &d);
        check(err == LURK_OK && out_len == 48 && memcmp(out, pm, 48) != 0,
              "decrypt %s corrupted premaster: %s, %zu random bytes", k->name,
              lurk_err_name(err), out_len);
        ct[ct_len / 2] ^= 0x5a;

        /* Version rollback: the right ciphertext with another ClientVersion. */
        p.client_version = 0x0302;
        out_len = sizeof(out);
        err = lurk_client_decrypt(c, &p, out, &out_len, &d);
        check(err == LURK_OK && out_len == 48 && memcmp(out, pm, 48) != 0,
              "decrypt %s premaster with a wrong version: %s, %zu random bytes", k->name,
              lurk_err_name(err), out_len);
    }

    /* OAEP on the decrypt key, with and without a label. */
    {
        test_key *k = key("rsa2048-oaep");
        static const unsigned char secret[] = "an OAEP-wrapped secret";
        static const unsigned char label[] = "lurk label";
        static const lurk_md mds[] = { LURK_MD_SHA256, LURK_MD_SHA384, LURK_MD_SHA512 };

        for (size_t j = 0; j < 3; j++) {
            for (int with_label = 0; with_label < 2; with_label++) {
                ct_len = rsa_encrypt(k->pub, RSA_PKCS1_OAEP_PADDING, mds[j],
                                     with_label ? label : NULL, sizeof(label), secret,
                                     sizeof(secret), ct);
                memset(&p, 0, sizeof(p));
                p.key_id = k->id;
                p.mode = LURK_DEC_OAEP;
                p.oaep_md = mds[j];
                p.label = with_label ? label : NULL;
                p.label_len = with_label ? sizeof(label) : 0;
                p.in = ct;
                p.in_len = ct_len;
                out_len = sizeof(out);
                err = lurk_client_decrypt(c, &p, out, &out_len, &d);
                check(err == LURK_OK && out_len == sizeof(secret)
                          && memcmp(out, secret, out_len) == 0,
                      "decrypt %s oaep %s%s: %s%s%s", k->name, lurk_md_name(mds[j]),
                      with_label ? " with label" : "", lurk_err_name(err),
                      err != LURK_OK ? " -- " : "", err != LURK_OK ? d.msg : "");
            }
        }
        /* Output capacity is checked. */
        out_len = 4;
        err = lurk_client_decrypt(c, &p, out, &out_len, &d);
        check(err == LURK_ERR_INVALID_ARG, "decrypt into a 4-byte buffer: %s",
              lurk_err_name(err));
    }
}

static void test_agree(LURK_CLIENT *c)
{
    test_key *k = key("p256-agree");
    EVP_PKEY *eph = EVP_PKEY_Q_keygen(NULL, PROPQ, "EC", "P-256");
    EVP_PKEY_CTX *dctx = NULL;
    unsigned char *eph_spki = NULL;
    int eph_len;
    unsigned char local[128], remote[128];
    size_t local_len = sizeof(local), remote_len = sizeof(remote);
    lurk_detail d;
    lurk_err err;
    int ok;

    eph_len = i2d_PUBKEY(eph, &eph_spki);
    dctx = EVP_PKEY_CTX_new_from_pkey(NULL, eph, PROPQ);
    ok = eph_len > 0 && dctx != NULL && EVP_PKEY_derive_init(dctx) == 1
         && EVP_PKEY_derive_set_peer(dctx, k->pub) == 1
         && EVP_PKEY_derive(dctx, local, &local_len) == 1;
    if (!ok) {
        fprintf(stderr, "test_client: local ECDH failed\n");
        exit(2);
    }
    err = lurk_client_agree(c, k->id, eph_spki, (size_t)eph_len, remote, &remote_len, &d);
    check(err == LURK_OK && remote_len == local_len && memcmp(local, remote, local_len) == 0,
          "agree %s: %s, %zu bytes, %s", k->name, lurk_err_name(err), remote_len,
          err == LURK_OK ? (memcmp(local, remote, local_len) == 0 ? "same as a local derive"
                                                                  : "DIFFERENT")
                         : d.msg);
    OPENSSL_cleanse(local, sizeof(local));
    OPENSSL_cleanse(remote, sizeof(remote));
    OPENSSL_free(eph_spki);
    EVP_PKEY_CTX_free(dctx);
    EVP_PKEY_free(eph);
}

static void expect_sign_status(LURK_CLIENT *c, test_key *k, const char *kid, lurk_sig_alg alg,
                               lurk_md md, int salt, const unsigned char *data, size_t data_len,
                               const unsigned char *dig, size_t dig_len, lurk_err want,
                               int want_status, const char *what)
{
    unsigned char sig[1024];
    size_t sig_len = sizeof(sig);
    lurk_sign_params p;
    lurk_detail d;
    lurk_err err;

    memset(&p, 0, sizeof(p));
    p.key_id = kid != NULL ? kid : k->id;
    p.alg = alg;
    p.md = md;
    p.salt_len = salt;
    p.data = data;
    p.data_len = data_len;
    p.digest = dig;
    p.digest_len = dig_len;
    err = lurk_client_sign(c, &p, sig, &sig_len, &d);
    check(err == want && d.status == want_status && d.msg[0] != '\0',
          "%s: %s, status %d (want %s %d) -- %s", what, lurk_err_name(err), d.status,
          lurk_err_name(want), want_status, d.msg);
    still_serving(c, what);
}

static void test_refusals(LURK_CLIENT *c)
{
    static const unsigned char msg[] = "not a TLS handshake message";
    unsigned char dig[32];
    unsigned char buf[64];
    size_t buf_len;
    lurk_detail d;
    lurk_err err;
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, PROPQ, "EC", "P-256");
    unsigned char *spki = NULL;
    int spki_len = i2d_PUBKEY(other, &spki);
    lurk_keyid id;
    char unknown[LURK_KEYID_TEXT_MAX];

    memset(dig, 0x42, sizeof(dig));
    if (spki_len <= 0 || lurk_keyid_from_spki(spki, (size_t)spki_len, 2, &id) != LURK_OK
        || lurk_keyid_format(&id, unknown, sizeof(unknown)) != LURK_OK) {
        exit(2);
    }

    /* 404: a well-formed id of a key the server does not have. */
    expect_sign_status(c, key("p256-sign"), unknown, LURK_SIG_ECDSA, LURK_MD_SHA256, -1, msg,
                       sizeof(msg), NULL, 0, LURK_ERR_KEY_NOT_FOUND, 404, "sign with an unknown key");
    {
        unsigned char *pk = NULL;
        size_t pk_len = 0;

        err = lurk_client_public_key(c, unknown, NULL, NULL, &pk, &pk_len, &d);
        check(err == LURK_ERR_KEY_NOT_FOUND && d.status == 404,
              "public key of an unknown key: %s %d -- %s", lurk_err_name(err), d.status, d.msg);
        free(pk);
        err = lurk_client_public_key(c, "not-a-key-id!", NULL, NULL, &pk, &pk_len, &d);
        check(err == LURK_ERR_INVALID_ARG && d.status == 0,
              "public key with a malformed id fails locally: %s", lurk_err_name(err));
        free(pk);
    }

    /* 403: tls-server keys are not oracles. */
    expect_sign_status(c, key("rsa2048"), NULL, LURK_SIG_RSA_PSS, LURK_MD_SHA256, 32, NULL,
                       0, dig, sizeof(dig), LURK_ERR_POLICY_DENIED, 403,
                       "arbitrary digest to a tls-server RSA key");
    expect_sign_status(c, key("p256"), NULL, LURK_SIG_ECDSA, LURK_MD_SHA256, -1, NULL, 0,
                       dig, sizeof(dig), LURK_ERR_POLICY_DENIED, 403,
                       "arbitrary digest to a tls-server EC key");
    expect_sign_status(c, key("rsa2048"), NULL, LURK_SIG_RSA_PKCS1, LURK_MD_SHA256, -1, msg,
                       sizeof(msg), NULL, 0, LURK_ERR_POLICY_DENIED, 403,
                       "non-TLS message to a tls-server RSA key");
    expect_sign_status(c, key("p256"), NULL, LURK_SIG_ECDSA, LURK_MD_SHA256, -1, msg,
                       sizeof(msg), NULL, 0, LURK_ERR_POLICY_DENIED, 403,
                       "non-TLS message to a tls-server EC key");
    {
        /* A TLS 1.2 input whose point is not on the curve. */
        unsigned char in[512];
        size_t n = tls12_ske("P-256", 23, in);

        in[n - 1] ^= 1;
        expect_sign_status(c, key("p256"), NULL, LURK_SIG_ECDSA, LURK_MD_SHA256, -1, in, n,
                           NULL, 0, LURK_ERR_POLICY_DENIED, 403,
                           "ServerKeyExchange with a point off the curve");
    }

    /* 403: operations the policy does not name. */
    expect_sign_status(c, key("rsa2048-oaep"), NULL, LURK_SIG_RSA_PSS, LURK_MD_SHA256, 32, msg,
                       sizeof(msg), NULL, 0, LURK_ERR_POLICY_DENIED, 403,
                       "sign with a decrypt key");
    expect_sign_status(c, key("p256-agree"), NULL, LURK_SIG_ECDSA, LURK_MD_SHA256, -1, msg,
                       sizeof(msg), NULL, 0, LURK_ERR_POLICY_DENIED, 403,
                       "sign with an agree key");
    {
        lurk_decrypt_params p;
        unsigned char ct[512];

        memset(&p, 0, sizeof(p));
        memset(ct, 1, sizeof(ct));
        p.key_id = key("rsa2048-sign")->id;
        p.mode = LURK_DEC_TLS_PREMASTER;
        p.client_version = 0x0303;
        p.in = ct;
        p.in_len = 256;
        buf_len = sizeof(buf);
        err = lurk_client_decrypt(c, &p, buf, &buf_len, &d);
        check(err == LURK_ERR_POLICY_DENIED && d.status == 403,
              "decrypt with a sign key: %s %d -- %s", lurk_err_name(err), d.status, d.msg);
        still_serving(c, "decrypt with a sign key");

        p.key_id = key("rsa2048")->id;
        p.mode = LURK_DEC_OAEP;
        p.oaep_md = LURK_MD_SHA256;
        p.client_version = 0;
        buf_len = sizeof(buf);
        err = lurk_client_decrypt(c, &p, buf, &buf_len, &d);
        check(err == LURK_ERR_POLICY_DENIED && d.status == 403,
              "oaep with a tls-server key: %s %d -- %s", lurk_err_name(err), d.status, d.msg);
        still_serving(c, "oaep with a tls-server key");
    }
    buf_len = sizeof(buf);
    err = lurk_client_agree(c, key("p256-sign")->id, spki, (size_t)spki_len, buf, &buf_len, &d);
    check(err == LURK_ERR_POLICY_DENIED && d.status == 403, "agree with a sign key: %s %d -- %s",
          lurk_err_name(err), d.status, d.msg);
    still_serving(c, "agree with a sign key");

    /* 403: this client is not in the key's clients list; the listed one is served. */
    {
        unsigned char cv[256];
        size_t n = tls13_cv(LURK_MD_SHA256, cv);
        LURK_CLIENT *reserved;

        expect_sign_status(c, key("p256-restricted"), NULL, LURK_SIG_ECDSA, LURK_MD_SHA256, -1,
                           cv, n, NULL, 0, LURK_ERR_POLICY_DENIED, 403,
                           "sign with a key reserved for another client");
        reserved = new_client_ex(server_url, dir_ca, other_cert, other_key, 1000, 5000);
        sign_and_verify(reserved, key("p256-restricted"), LURK_SIG_ECDSA, LURK_MD_SHA256, -1, cv, n,
                        0, "by the client it is reserved for");
        lurk_client_free(reserved);
    }

    /* Wrong algorithm for the key type: 406. */
    expect_sign_status(c, key("p256-sign"), NULL, LURK_SIG_RSA_PSS, LURK_MD_SHA256, 32, msg,
                       sizeof(msg), NULL, 0, LURK_ERR_NOT_ACCEPTABLE, 406,
                       "rsa-pss with an EC key");

    /* Signature buffer capacity is checked locally. */
    {
        lurk_sign_params p;
        unsigned char sig[8];
        size_t sig_len = sizeof(sig);

        memset(&p, 0, sizeof(p));
        p.key_id = key("p256-sign")->id;
        p.alg = LURK_SIG_ECDSA;
        p.md = LURK_MD_SHA256;
        p.data = msg;
        p.data_len = sizeof(msg);
        err = lurk_client_sign(c, &p, sig, &sig_len, &d);
        check(err == LURK_ERR_INVALID_ARG && sig_len > sizeof(sig),
              "sign into an 8-byte buffer: %s (needs %zu)", lurk_err_name(err), sig_len);
    }
    OPENSSL_free(spki);
    EVP_PKEY_free(other);
}

static void test_tls_refusals(LURK_CLIENT *good)
{
    LURK_CLIENT *c;
    lurk_detail d;
    lurk_err err;

    /* A client certificate from a CA the server does not trust. */
    c = new_client_ex(server_url, dir_ca, rogue_cert, rogue_key, 1000, 3000);
    err = lurk_client_ping(c, &d);
    check_err(err, LURK_ERR_TLS, &d, "client certificate from the rogue CA");
    lurk_client_free(c);
    still_serving(good, "a rogue client certificate");

    /* A server certificate the client does not trust. */
    c = new_client_ex(server_url, rogue_ca, dir_cert, dir_key, 1000, 3000);
    err = lurk_client_ping(c, &d);
    check_err(err, LURK_ERR_TLS, &d, "server certificate not from the configured CA");
    lurk_client_free(c);
    still_serving(good, "an untrusted server certificate");
}

static void test_failover_and_down(void)
{
    char servers[256];
    LURK_CLIENT *c;
    lurk_detail d;
    lurk_err err;
    double t0, dt;
    int hole_port, hole;

    /* First entry dead: the second answers. */
    snprintf(servers, sizeof(servers), "https://127.0.0.1:%d, %s", dead_port(), server_url);
    c = new_client_ex(servers, dir_ca, dir_cert, dir_key, 500, 3000);
    err = lurk_client_ping(c, &d);
    check_err(err, LURK_OK, &d, "failover past a dead first server");
    t0 = now_ms();
    for (int i = 0; i < 20 && err == LURK_OK; i++) {
        err = lurk_client_ping(c, &d);
    }
    dt = now_ms() - t0;
    check(err == LURK_OK && dt < 200, "20 more pings stay on the live server (%.1f ms)", dt);
    lurk_client_free(c);

    /* Every server down: unreachable, quickly. */
    snprintf(servers, sizeof(servers), "https://127.0.0.1:%d https://127.0.0.1:%d", dead_port(),
             dead_port());
    c = new_client_ex(servers, dir_ca, dir_cert, dir_key, 500, 1500);
    t0 = now_ms();
    err = lurk_client_ping(c, &d);
    dt = now_ms() - t0;
    check(err == LURK_ERR_UNREACHABLE && dt < 1500,
          "all servers down: %s in %.1f ms (bound 1500) -- %s", lurk_err_name(err), dt, d.msg);
    lurk_client_free(c);

    /* A server that accepts TCP but never answers: timeout within the bound. */
    hole = black_hole(&hole_port);
    snprintf(servers, sizeof(servers), "https://127.0.0.1:%d", hole_port);
    c = new_client_ex(servers, dir_ca, dir_cert, dir_key, 300, 600);
    t0 = now_ms();
    err = lurk_client_ping(c, &d);
    dt = now_ms() - t0;
    check(err == LURK_ERR_TIMEOUT && dt >= 250 && dt < 1100,
          "silent server: %s after %.1f ms (connect timeout 300, call 600) -- %s",
          lurk_err_name(err), dt, d.msg);
    lurk_client_free(c);

    /* Silent first, live second: the call still succeeds. */
    snprintf(servers, sizeof(servers), "https://127.0.0.1:%d %s", hole_port, server_url);
    c = new_client_ex(servers, dir_ca, dir_cert, dir_key, 300, 3000);
    t0 = now_ms();
    err = lurk_client_ping(c, &d);
    dt = now_ms() - t0;
    check(err == LURK_OK && dt < 1500, "failover past a silent server: %s in %.1f ms -- %s",
          lurk_err_name(err), dt, d.msg);
    lurk_client_free(c);
    close(hole);
}

/* Stops the running key server and starts it again on the same port. */
static pid_t restart_server(pid_t old)
{
    char listen_arg[64];
    const char *pidfile = env("ITEST_PIDFILE");
    pid_t pid;
    FILE *f;

    kill(old, SIGTERM);
    for (int i = 0; i < 100 && kill(old, 0) == 0; i++) {
        usleep(50 * 1000);
    }
    if (kill(old, 0) == 0) {
        kill(old, SIGKILL);
        usleep(100 * 1000);
    }
    snprintf(listen_arg, sizeof(listen_arg), "127.0.0.1:%s", env("ITEST_PORT"));
    pid = fork();
    if (pid == 0) {
        char log[4096];
        int fd;

        snprintf(log, sizeof(log), "%s/restarted.log", env("ITEST_DIR"));
        fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(env("LURK_KEYSERVER"), "lurk-keyserver", "--config", env("ITEST_CONFIG"),
              "--listen", listen_arg, (char *)NULL);
        _exit(127);
    }
    f = fopen(pidfile, "w");
    if (f != NULL) {
        fprintf(f, "%d\n", (int)pid);
        fclose(f);
    }
    return pid;
}

static void test_restart(LURK_CLIENT *c)
{
    pid_t old = (pid_t)atoi(env("ITEST_PID"));
    pid_t pid;
    lurk_detail d;
    lurk_err err = LURK_ERR_UNREACHABLE;
    int tries = 0;

    err = lurk_client_ping(c, &d);
    check_err(err, LURK_OK, &d, "ping before the restart (a warm connection)");
    pid = restart_server(old);
    /* The server needs a moment to listen; the client must reconnect by itself. */
    for (tries = 1; tries <= 50; tries++) {
        err = lurk_client_ping(c, &d);
        if (err == LURK_OK) {
            break;
        }
        usleep(100 * 1000);
    }
    check(err == LURK_OK, "same client works after a server restart (attempt %d) -- %s", tries,
          d.msg);
    /* Once up, the very next call on a connection the restart broke succeeds:
     * restart again and call once, after the port is open. */
    old = pid;
    pid = restart_server(old);
    for (int i = 0; i < 50; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a;
        int up;

        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons((unsigned short)atoi(env("ITEST_PORT")));
        up = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        close(fd);
        if (up) {
            break;
        }
        usleep(100 * 1000);
    }
    err = lurk_client_ping(c, &d);
    check_err(err, LURK_OK, &d, "first call after a second restart reconnects");
    {
        test_key *k = key("p256-sign");
        static const unsigned char msg[] = "after restart";

        sign_and_verify(c, k, LURK_SIG_ECDSA, LURK_MD_SHA256, -1, msg, sizeof(msg), 0,
                        "after restart");
    }
    (void)pid;
}

typedef struct {
    LURK_CLIENT *c;
    int ok;
} thread_arg;

static void *sign_thread(void *p)
{
    thread_arg *a = p;
    test_key *k = key("p256-sign");
    unsigned char msg[32];
    unsigned char sig[256];

    a->ok = 0;
    for (int i = 0; i < 50; i++) {
        lurk_sign_params sp;
        size_t sig_len = sizeof(sig);
        lurk_detail d;

        RAND_bytes(msg, sizeof(msg));
        memset(&sp, 0, sizeof(sp));
        sp.key_id = k->id;
        sp.alg = LURK_SIG_ECDSA;
        sp.md = LURK_MD_SHA256;
        sp.data = msg;
        sp.data_len = sizeof(msg);
        if (lurk_client_sign(a->c, &sp, sig, &sig_len, &d) != LURK_OK
            || !verify(k->pub, LURK_SIG_ECDSA, LURK_MD_SHA256, -1, msg, sizeof(msg), NULL, 0,
                       sig, sig_len)) {
            return NULL;
        }
        a->ok++;
    }
    return NULL;
}

static void test_threads(LURK_CLIENT *c)
{
    pthread_t t[8];
    thread_arg a[8];
    int total = 0;

    for (int i = 0; i < 8; i++) {
        a[i].c = c;
        pthread_create(&t[i], NULL, sign_thread, &a[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        total += a[i].ok;
    }
    check(total == 400, "8 threads x 50 signs on one client: %d verified", total);
}

/* The non-blocking calls: 32 signatures started on one thread are pipelined
 * on one connection and finish in any order; one abandoned in flight does
 * not disturb the others.  Only one operation at a time polls the socket;
 * the others learn of their reply through the wake callback. */
#define PIPE_N 32

static void pipe_wake(void *arg)
{
    (*(int *)arg)++;
}

/* kill(SIGSTOP) returns before the process has stopped: wait (bounded)
 * until /proc says it has, so that it answers nothing sent afterwards. */
static int wait_stopped(pid_t pid)
{
    char path[64];

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    for (int i = 0; i < 1000; i++) {
        char buf[512];
        FILE *f = fopen(path, "r");
        size_t n = f != NULL ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
        const char *close_paren;

        if (f != NULL) {
            fclose(f);
        }
        buf[n] = '\0';
        /* "pid (comm) S ...": the state follows the last ')' */
        close_paren = strrchr(buf, ')');
        if (close_paren != NULL && close_paren[1] == ' '
            && (close_paren[2] == 'T' || close_paren[2] == 't')) {
            return 1;
        }
        usleep(10000);
    }
    return 0;
}

static void test_pipelined(LURK_CLIENT *c)
{
    LURK_CLIENT_OP *op[PIPE_N] = { NULL };
    unsigned char dig[PIPE_N][32];
    int woken[PIPE_N] = { 0 };
    int done[PIPE_N] = { 0 };
    int lastfd[PIPE_N];
    int verified = 0, left = PIPE_N, max_readers = 0, fds_differ = 0, errors = 0;
    int sock = -1, abandoned = -1, polls = 0, waits = 0, frozen_waits = 0, frozen_polls = 0;
    pid_t server = (pid_t)atoi(env("ITEST_PID"));
    const test_key *k = key("p256-sign");
    time_t give_up = time(NULL) + 20;
    lurk_detail d;
    lurk_err err;

    /* A warm connection first, then the key server is frozen (SIGSTOP) while
     * the requests are written and every operation is stepped once: none can
     * have its reply, whatever the speed of the machine, so each must wait,
     * and only one of them on the socket. */
    err = lurk_client_ping(c, &d);
    check_err(err, LURK_OK, &d, "ping before the pipelined run (a warm connection)");
    if (kill(server, SIGSTOP) != 0 || !wait_stopped(server)) {
        kill(server, SIGCONT);
        check(0, "SIGSTOP the key server (pid %ld): not stopped within 10 s", (long)server);
        return;
    }
    for (int i = 0; i < PIPE_N; i++) {
        lurk_sign_params p;

        RAND_bytes(dig[i], sizeof(dig[i]));
        memset(&p, 0, sizeof(p));
        p.key_id = k->id;
        p.alg = LURK_SIG_ECDSA;
        p.md = LURK_MD_SHA256;
        p.digest = dig[i];
        p.digest_len = sizeof(dig[i]);
        err = lurk_client_sign_start(c, &p, &op[i], &d);
        if (err != LURK_OK) {
            kill(server, SIGCONT);
            check_err(err, LURK_OK, &d, "sign_start");
            return;
        }
        lurk_client_op_set_wake(op[i], pipe_wake, &woken[i]);
    }
    for (int i = 0; i < PIPE_N; i++) {
        lurk_client_wait w;

        if (lurk_client_op_step(op[i], &w)) {
            continue; /* impossible while frozen; counted below as not waiting */
        }
        frozen_waits++;
        frozen_polls += w.fd >= 0;
    }
    /* Abandoned in flight: its request is on the wire, its reply will be read
     * and dropped without disturbing the others. */
    abandoned = PIPE_N / 2;
    lurk_client_op_free(op[abandoned]);
    op[abandoned] = NULL;
    left--;
    kill(server, SIGCONT);
    check(frozen_waits == PIPE_N && frozen_polls == 1,
          "key server frozen: all %d operations wait, %d of them on the socket (want %d, 1)",
          frozen_waits, frozen_polls, PIPE_N);
    while (left > 0 && time(NULL) < give_up) {
        struct pollfd pfd;
        int readers = 0;

        pfd.fd = -1;
        pfd.events = POLLIN;
        for (int i = 0; i < PIPE_N; i++) {
            lastfd[i] = -1;
        }
        for (int i = 0; i < PIPE_N; i++) {
            lurk_client_wait w;
            unsigned char sig[256];
            size_t sig_len = sizeof(sig);

            if (done[i] || op[i] == NULL) {
                continue;
            }
            if (!lurk_client_op_step(op[i], &w)) {
                lastfd[i] = w.fd;
                waits++;
                polls += w.fd >= 0;
                if (w.fd >= 0) {
                    fds_differ |= sock >= 0 && w.fd != sock;
                    sock = w.fd;
                    pfd.fd = w.fd;
                }
                continue;
            }
            err = lurk_client_op_finish(op[i], sig, &sig_len, &d);
            if (err == LURK_OK && verify(k->pub, LURK_SIG_ECDSA, LURK_MD_SHA256, -1, NULL, 0,
                                         dig[i], sizeof(dig[i]), sig, sig_len)) {
                verified++;
            } else {
                errors++;
                check_err(err, LURK_OK, &d, "pipelined sign");
            }
            lurk_client_op_free(op[i]);
            op[i] = NULL;
            done[i] = 1;
            left--;
        }
        for (int i = 0; i < PIPE_N; i++) {
            /* still waiting at the end of the round, and polling */
            readers += op[i] != NULL && !done[i] && lastfd[i] >= 0;
        }
        if (readers > max_readers) {
            max_readers = readers;
        }
        if (left > 0) {
            (void)poll(&pfd, pfd.fd >= 0 ? 1 : 0, 100);
        }
    }
    for (int i = 0; i < PIPE_N; i++) {
        if (op[i] != NULL) {
            lurk_client_op_free(op[i]);
        }
    }
    check(left == 0 && errors == 0 && abandoned >= 0 && verified == PIPE_N - 1,
          "%d signatures pipelined on one thread, one abandoned: %d verified, %d errors, "
          "%d unfinished", PIPE_N, verified, errors, left);
    /* Within one round the operation that polls may get its reply and hand
     * polling to the next before the test steps it again (a chain of them
     * when the machine is slow), so after the thaw count over the whole run:
     * no other socket, and most waits are for the wake callback. */
    check(!fds_differ && polls <= waits && max_readers <= 1 + PIPE_N / 4,
          "one connection, one operation polls it, the others wait to be woken "
          "(after the thaw %d of %d waits on the socket, same fd: %s; %d per round at most)",
          polls, waits, fds_differ ? "no" : "yes", max_readers);
    {
        int woke = 0;

        for (int i = 0; i < PIPE_N; i++) {
            woke += woken[i] > 0;
        }
        check(woke > 0, "operations whose reply another one read were woken (%d)", woke);
    }
    err = lurk_client_ping(c, &d);
    check_err(err, LURK_OK, &d, "ping after the pipelined run (the abandoned reply dropped)");
}

/* Request ids: 22 characters of base64url over 16 bytes, never the same
 * twice (a per-thread random prefix and a counter). */
static void test_request_ids(void)
{
    char a[LURK_REQUEST_ID_MAX + 1];
    char b[LURK_REQUEST_ID_MAX + 1];
    unsigned char *bin = NULL;
    size_t len = 0;
    int ok;

    ok = lurk_client_new_request_id(a) == LURK_OK && lurk_client_new_request_id(b) == LURK_OK
         && strlen(a) == 22 && strcmp(a, b) != 0
         && lurk_b64url_decode(a, strlen(a), 16, &bin, &len) == LURK_OK && len == 16;
    free(bin);
    check(ok, "request ids: 22 base64url characters over 16 bytes, two in a row differ (%s, %s)",
          a, b);
}

static void test_fork(LURK_CLIENT *c)
{
    lurk_detail d;
    lurk_err err;
    pid_t pid;
    int status = 0;

    err = lurk_client_ping(c, &d);
    check_err(err, LURK_OK, &d, "ping before fork (pooled connection)");
    pid = fork();
    if (pid == 0) {
        /* The child must not touch the parent's connection. */
        int ok = 1;

        for (int i = 0; i < 5; i++) {
            ok &= lurk_client_ping(c, &d) == LURK_OK;
        }
        lurk_client_free(c);
        _exit(ok ? 0 : 1);
    }
    waitpid(pid, &status, 0);
    check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child of fork() uses its own connection");
    err = lurk_client_ping(c, &d);
    check_err(err, LURK_OK, &d, "parent's connection still works after the child exited");
    for (int i = 0; i < 5 && err == LURK_OK; i++) {
        err = lurk_client_ping(c, &d);
    }
    check_err(err, LURK_OK, &d, "parent keeps working after fork");
}

int main(void)
{
    const char *dir = env("ITEST_DIR");
    LURK_CLIENT *c;

    OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
    snprintf(server_url, sizeof(server_url), "https://127.0.0.1:%s", env("ITEST_PORT"));
    snprintf(dir_ca, sizeof(dir_ca), "%s/ca.crt", dir);
    snprintf(dir_cert, sizeof(dir_cert), "%s/client.crt", dir);
    snprintf(dir_key, sizeof(dir_key), "%s/client.key", dir);
    snprintf(rogue_ca, sizeof(rogue_ca), "%s/rogue-ca.crt", dir);
    snprintf(rogue_cert, sizeof(rogue_cert), "%s/rogue-client.crt", dir);
    snprintf(rogue_key, sizeof(rogue_key), "%s/rogue-client.key", dir);
    snprintf(other_cert, sizeof(other_cert), "%s/other-client.crt", dir);
    snprintf(other_key, sizeof(other_key), "%s/other-client.key", dir);
    load_keys(dir);

    c = new_client();
    test_hello_ping(c);
    test_public_keys(c);
    test_sign(c);
    test_decrypt(c);
    test_agree(c);
    test_refusals(c);
    test_tls_refusals(c);
    test_threads(c);
    test_pipelined(c);
    test_request_ids();
    test_fork(c);
    test_failover_and_down();
    test_restart(c);
    lurk_client_free(c);

    for (size_t i = 0; i < N_KEYS; i++) {
        EVP_PKEY_free(keys[i].priv);
        EVP_PKEY_free(keys[i].pub);
        OPENSSL_free(keys[i].spki);
    }
    printf("%d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
