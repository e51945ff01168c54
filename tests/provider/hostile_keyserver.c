/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hostile_keyserver.c - a key server that lies, for tests/provider/verify.sh.
 *
 * A minimal LURK key server: mutual TLS (OpenSSL, blocking, a thread per
 * connection, keep-alive), HTTP/1.1 POSTs with Content-Length, the project
 * codec (lurk_proto.h) both ways.  It knows the PUBLIC half of each key
 * given with --pub and answers Hello, Ping and PublicKey honestly.  Sign is
 * answered with a VALID signature by ANOTHER key of the same type and size
 * (made at start): it verifies with that other key, never with the key that
 * was asked for.  A client that does not check what it gets puts a bad
 * signature on the wire.  Decrypt and Agree are refused (403).
 *
 *   hostile_keyserver --cert FILE --key FILE --ca FILE --pub FILE[:POLICY]...
 *                     [--listen 127.0.0.1:PORT] [--port-file FILE] [--log FILE]
 *
 * --pub takes a certificate or a public key (PEM); POLICY defaults to
 * tls-server.  Listens on 127.0.0.1 only (port 0: the kernel picks one,
 * written to --port-file).  --log gets one line per request:
 *
 *   Sign KEYID ALG/MD answered with another key
 *
 * SIGTERM ends it (default action).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "lurk_keyid.h"
#include "lurk_proto.h"

#define HK_MAX_KEYS 16
#define HK_HEAD_MAX 8192

typedef struct {
    char id[LURK_KEYID_TEXT_MAX];
    char policy[32];
    lurk_key_type type;
    unsigned char *spki;
    size_t spki_len;
    EVP_PKEY *other; /* the key it signs with instead */
} hk_key;

static hk_key hk_keys[HK_MAX_KEYS];
static size_t hk_n_keys;
static FILE *hk_log;
static pthread_mutex_t hk_log_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char hk_state[16];

static void hk_logf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void hk_logf(const char *fmt, ...)
{
    va_list ap;

    if (hk_log == NULL) {
        return;
    }
    pthread_mutex_lock(&hk_log_lock);
    va_start(ap, fmt);
    vfprintf(hk_log, fmt, ap);
    va_end(ap);
    fputc('\n', hk_log);
    fflush(hk_log);
    pthread_mutex_unlock(&hk_log_lock);
}

static EVP_PKEY *hk_read_public(const char *path)
{
    BIO *b = BIO_new_file(path, "r");
    EVP_PKEY *k = NULL;
    X509 *x = NULL;

    if (b == NULL) {
        return NULL;
    }
    x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    if (x != NULL) {
        k = X509_get_pubkey(x);
    } else {
        ERR_clear_error();
        (void)BIO_reset(b);
        k = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
    }
    X509_free(x);
    BIO_free(b);
    return k;
}

/* The key it signs with instead: same type, same size or curve. */
static EVP_PKEY *hk_other_key(EVP_PKEY *pub, lurk_key_type *type)
{
    char group[64];

    if (EVP_PKEY_is_a(pub, "RSA")) {
        *type = LURK_KEY_RSA;
        return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)EVP_PKEY_get_bits(pub));
    }
    if (EVP_PKEY_is_a(pub, "EC")) {
        *type = LURK_KEY_EC;
        if (EVP_PKEY_get_utf8_string_param(pub, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                           sizeof(group), NULL) != 1) {
            return NULL;
        }
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", group);
    }
    if (EVP_PKEY_is_a(pub, "ED25519")) {
        *type = LURK_KEY_ED25519;
        return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    }
    return NULL;
}

static int hk_add_key(const char *arg)
{
    char path[4096];
    const char *colon = strrchr(arg, ':');
    hk_key *k = &hk_keys[hk_n_keys];
    EVP_PKEY *pub = NULL;
    unsigned char *der = NULL;
    lurk_keyid id;
    int len, ok = 0;

    if (hk_n_keys >= HK_MAX_KEYS) {
        return 0;
    }
    snprintf(path, sizeof(path), "%.*s", colon != NULL ? (int)(colon - arg) : (int)strlen(arg),
             arg);
    snprintf(k->policy, sizeof(k->policy), "%s", colon != NULL ? colon + 1 : "tls-server");
    pub = hk_read_public(path);
    if (pub == NULL) {
        fprintf(stderr, "hostile_keyserver: no public key in %s\n", path);
        goto end;
    }
    len = i2d_PUBKEY(pub, &der);
    if (len <= 0 || lurk_keyid_from_spki(der, (size_t)len, LURK_KEYID_ALG_DEFAULT, &id) != LURK_OK
        || lurk_keyid_format(&id, k->id, sizeof(k->id)) != LURK_OK) {
        goto end;
    }
    k->other = hk_other_key(pub, &k->type);
    if (k->other == NULL) {
        fprintf(stderr, "hostile_keyserver: cannot make a key like the one in %s\n", path);
        goto end;
    }
    k->spki = malloc((size_t)len);
    if (k->spki == NULL) {
        goto end;
    }
    memcpy(k->spki, der, (size_t)len);
    k->spki_len = (size_t)len;
    hk_n_keys++;
    ok = 1;

end:
    OPENSSL_free(der);
    EVP_PKEY_free(pub);
    return ok;
}

static hk_key *hk_find(const char *id_text)
{
    lurk_keyid want, have;

    if (lurk_keyid_parse(id_text, &want) != LURK_OK) {
        return NULL;
    }
    for (size_t i = 0; i < hk_n_keys; i++) {
        if (lurk_keyid_parse(hk_keys[i].id, &have) == LURK_OK && lurk_keyid_equal(&want, &have)) {
            return &hk_keys[i];
        }
    }
    return NULL;
}

static const EVP_MD *hk_md(lurk_md md)
{
    switch (md) {
    case LURK_MD_SHA256: return EVP_sha256();
    case LURK_MD_SHA384: return EVP_sha384();
    case LURK_MD_SHA512: return EVP_sha512();
    default: return NULL;
    }
}

/* Signs the request's input with the other key; 200 or an error status. */
static int hk_sign(const hk_key *k, const lurk_request *req, unsigned char *sig, size_t *siglen,
                   char *why, size_t whylen)
{
    unsigned char dg[EVP_MAX_MD_SIZE];
    unsigned int dglen = 0;
    const unsigned char *digest = req->digest.data;
    size_t digest_len = req->digest.len;
    const EVP_MD *md = hk_md(req->md);
    EVP_PKEY_CTX *pc = NULL;
    EVP_MD_CTX *mc = NULL;
    int status = 500;

    if (req->sig_alg == LURK_SIG_ED25519) {
        mc = EVP_MD_CTX_new();
        if (k->type != LURK_KEY_ED25519 || req->data.data == NULL || mc == NULL
            || EVP_DigestSignInit(mc, NULL, NULL, NULL, k->other) != 1
            || EVP_DigestSign(mc, sig, siglen, req->data.data, req->data.len) != 1) {
            snprintf(why, whylen, "ed25519 signing failed");
            status = 406;
            goto end;
        }
        status = 200;
        goto end;
    }
    if (md == NULL) {
        snprintf(why, whylen, "no digest");
        status = 406;
        goto end;
    }
    if (digest == NULL) {
        if (EVP_Digest(req->data.data, req->data.len, dg, &dglen, md, NULL) != 1) {
            goto end;
        }
        digest = dg;
        digest_len = dglen;
    }
    pc = EVP_PKEY_CTX_new(k->other, NULL);
    if (pc == NULL || EVP_PKEY_sign_init(pc) != 1 || EVP_PKEY_CTX_set_signature_md(pc, md) != 1) {
        goto end;
    }
    if ((req->sig_alg == LURK_SIG_RSA_PKCS1 || req->sig_alg == LURK_SIG_RSA_PSS)
        && k->type != LURK_KEY_RSA) {
        snprintf(why, whylen, "algorithm does not fit the key");
        status = 406;
        goto end;
    }
    if (req->sig_alg == LURK_SIG_ECDSA && k->type != LURK_KEY_EC) {
        snprintf(why, whylen, "algorithm does not fit the key");
        status = 406;
        goto end;
    }
    if (req->sig_alg == LURK_SIG_RSA_PKCS1
        && EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) != 1) {
        goto end;
    }
    if (req->sig_alg == LURK_SIG_RSA_PSS
        && (EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) != 1
            || EVP_PKEY_CTX_set_rsa_mgf1_md(pc, md) != 1
            || EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, req->salt_len) != 1)) {
        goto end;
    }
    if (EVP_PKEY_sign(pc, sig, siglen, digest, digest_len) != 1) {
        goto end;
    }
    status = 200;

end:
    if (status == 500) {
        snprintf(why, whylen, "signing failed");
    }
    ERR_clear_error();
    EVP_PKEY_CTX_free(pc);
    EVP_MD_CTX_free(mc);
    return status;
}

/* Answers one decoded request into `resp` (which may point into `sig`). */
static void hk_answer(const lurk_request *req, lurk_response *resp, unsigned char *sig,
                      size_t sigcap)
{
    hk_key *k = NULL;
    size_t siglen = sigcap;

    resp->type = req->type;
    snprintf(resp->request_id, sizeof(resp->request_id), "%s", req->request_id);
    resp->status = 200;
    switch (req->type) {
    case LURK_TX_HELLO:
        resp->hello.major = LURK_PROTO_VERSION_MAJOR;
        resp->hello.minor = LURK_PROTO_VERSION_MINOR;
        resp->hello.transactions = (1u << LURK_TX_HELLO) | (1u << LURK_TX_PING)
                                   | (1u << LURK_TX_PUBLIC_KEY) | (1u << LURK_TX_SIGN);
        resp->hello.sig_algs = (1u << LURK_SIG_RSA_PKCS1) | (1u << LURK_SIG_RSA_PSS)
                               | (1u << LURK_SIG_ECDSA) | (1u << LURK_SIG_ED25519);
        resp->hello.dec_modes = 0;
        resp->hello.key_types = (1u << LURK_KEY_RSA) | (1u << LURK_KEY_EC)
                                | (1u << LURK_KEY_ED25519);
        resp->hello.digests = (1u << LURK_MD_SHA256) | (1u << LURK_MD_SHA384)
                              | (1u << LURK_MD_SHA512);
        /* fall through */
    case LURK_TX_PING:
        resp->state.data = hk_state;
        resp->state.len = sizeof(hk_state);
        hk_logf("%s", lurk_tx_name(req->type));
        return;
    default:
        break;
    }
    k = hk_find(req->key_id);
    if (k == NULL) {
        resp->status = 404;
        snprintf(resp->description, sizeof(resp->description), "no such key here");
        hk_logf("%s %s: not found", lurk_tx_name(req->type), req->key_id);
        return;
    }
    switch (req->type) {
    case LURK_TX_PUBLIC_KEY:
        resp->key_type = k->type;
        snprintf(resp->policy, sizeof(resp->policy), "%s", k->policy);
        resp->spki.data = k->spki;
        resp->spki.len = k->spki_len;
        hk_logf("PublicKey %s", k->id);
        return;
    case LURK_TX_SIGN:
        resp->status = hk_sign(k, req, sig, &siglen, resp->description,
                               sizeof(resp->description));
        if (resp->status == 200) {
            resp->value.data = sig;
            resp->value.len = siglen;
            hk_logf("Sign %s %s/%s answered with another key", k->id,
                    lurk_sig_alg_name(req->sig_alg),
                    req->sig_alg == LURK_SIG_ED25519 ? "-" : lurk_md_name(req->md));
        } else {
            hk_logf("Sign %s: status %d %s", k->id, resp->status, resp->description);
        }
        return;
    default:
        resp->status = 403;
        snprintf(resp->description, sizeof(resp->description),
                 "this server only signs");
        hk_logf("%s %s: refused", lurk_tx_name(req->type), k->id);
        return;
    }
}

static int hk_write_all(SSL *ssl, const char *p, size_t n)
{
    while (n > 0) {
        int w = SSL_write(ssl, p, n > 65536 ? 65536 : (int)n);

        if (w <= 0) {
            return 0;
        }
        p += w;
        n -= (size_t)w;
    }
    return 1;
}

/* Serves requests on one connection until the peer closes it. */
static void hk_serve(SSL *ssl)
{
    char *buf = malloc(HK_HEAD_MAX + LURK_MAX_MESSAGE + 1);
    size_t have = 0;

    if (buf == NULL) {
        return;
    }
    for (;;) {
        char *end = NULL, *p, head[256];
        size_t head_len, body_len = 0, need;
        int close_after = 0;
        lurk_request req;
        lurk_response resp;
        char why[LURK_DESCRIPTION_MAX + 1];
        unsigned char sig[2048];
        char *json = NULL;
        size_t json_len = 0;
        lurk_err err;
        int n;

        /* the head */
        for (;;) {
            buf[have] = '\0';
            end = strstr(buf, "\r\n\r\n");
            if (end != NULL) {
                break;
            }
            if (have >= HK_HEAD_MAX) {
                goto out;
            }
            n = SSL_read(ssl, buf + have, (int)(HK_HEAD_MAX - have));
            if (n <= 0) {
                goto out;
            }
            have += (size_t)n;
        }
        head_len = (size_t)(end - buf) + 4;
        if (strncmp(buf, "POST ", 5) != 0) {
            goto out;
        }
        for (p = strstr(buf, "\r\n"); p != NULL && p < end; p = strstr(p + 2, "\r\n")) {
            if (strncasecmp(p + 2, "Content-Length:", 15) == 0) {
                body_len = strtoul(p + 17, NULL, 10);
            } else if (strncasecmp(p + 2, "Connection:", 11) == 0
                       && strncasecmp(p + 13, " close", 6) == 0) {
                close_after = 1;
            }
        }
        if (body_len > LURK_MAX_MESSAGE) {
            goto out;
        }
        /* the body */
        need = head_len + body_len;
        while (have < need) {
            n = SSL_read(ssl, buf + have, (int)(need - have));
            if (n <= 0) {
                goto out;
            }
            have += (size_t)n;
        }

        lurk_request_init(&req);
        lurk_response_init(&resp);
        why[0] = '\0';
        err = lurk_proto_decode_request(buf + head_len, body_len, &req, why, sizeof(why));
        if (err != LURK_OK) {
            resp.type = req.type;
            snprintf(resp.request_id, sizeof(resp.request_id), "%s", req.request_id);
            resp.status = lurk_err_status(err);
            snprintf(resp.description, sizeof(resp.description), "%s", why);
            hk_logf("undecodable request: %s", why);
        } else {
            hk_answer(&req, &resp, sig, sizeof(sig));
        }
        err = lurk_proto_encode_response(&resp, &json, &json_len);
        /* resp's buffers point at our statics and at sig: not freed */
        lurk_request_clear(&req);
        if (err != LURK_OK) {
            free(json);
            goto out;
        }
        snprintf(head, sizeof(head),
                 "HTTP/1.1 %d Lurk\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\n\r\n",
                 resp.status, json_len);
        if (!hk_write_all(ssl, head, strlen(head)) || !hk_write_all(ssl, json, json_len)) {
            free(json);
            goto out;
        }
        free(json);
        memmove(buf, buf + need, have - need);
        have -= need;
        if (close_after) {
            goto out;
        }
    }
out:
    free(buf);
}

typedef struct {
    SSL_CTX *ctx;
    int fd;
} hk_conn;

static void *hk_thread(void *arg)
{
    hk_conn *c = arg;
    SSL *ssl = SSL_new(c->ctx);

    if (ssl != NULL && SSL_set_fd(ssl, c->fd) == 1 && SSL_accept(ssl) == 1) {
        hk_serve(ssl);
        SSL_shutdown(ssl);
    }
    ERR_clear_error();
    SSL_free(ssl);
    close(c->fd);
    free(c);
    return NULL;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "cert", required_argument, NULL, 'c' },
        { "key", required_argument, NULL, 'k' },
        { "ca", required_argument, NULL, 'a' },
        { "pub", required_argument, NULL, 'p' },
        { "listen", required_argument, NULL, 'l' },
        { "port-file", required_argument, NULL, 'P' },
        { "log", required_argument, NULL, 'L' },
        { NULL, 0, NULL, 0 },
    };
    const char *cert = NULL, *key = NULL, *ca = NULL, *listen_at = "127.0.0.1:0";
    const char *port_file = NULL;
    struct sockaddr_in sa;
    socklen_t salen = sizeof(sa);
    SSL_CTX *ctx = NULL;
    int opt, lfd = -1, one = 1;
    const char *colon;

    signal(SIGPIPE, SIG_IGN);
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': cert = optarg; break;
        case 'k': key = optarg; break;
        case 'a': ca = optarg; break;
        case 'p':
            if (!hk_add_key(optarg)) {
                return 1;
            }
            break;
        case 'l': listen_at = optarg; break;
        case 'P': port_file = optarg; break;
        case 'L':
            hk_log = fopen(optarg, "a");
            if (hk_log == NULL) {
                perror(optarg);
                return 1;
            }
            break;
        default:
            fprintf(stderr, "usage: hostile_keyserver --cert F --key F --ca F --pub F[:POLICY]... "
                            "[--listen 127.0.0.1:PORT] [--port-file F] [--log F]\n");
            return 2;
        }
    }
    if (cert == NULL || key == NULL || ca == NULL || hk_n_keys == 0) {
        fprintf(stderr, "hostile_keyserver: --cert, --key, --ca and --pub are required\n");
        return 2;
    }
    if (RAND_bytes(hk_state, sizeof(hk_state)) != 1) {
        return 1;
    }

    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL || SSL_CTX_use_certificate_chain_file(ctx, cert) != 1
        || SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1
        || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1
        || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);

    colon = strrchr(listen_at, ':');
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    if (colon == NULL || strncmp(listen_at, "127.", 4) != 0) {
        fprintf(stderr, "hostile_keyserver: --listen 127.x.y.z:PORT only\n");
        return 2;
    }
    {
        char host[64];

        snprintf(host, sizeof(host), "%.*s", (int)(colon - listen_at), listen_at);
        if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
            return 2;
        }
    }
    sa.sin_port = htons((unsigned short)atoi(colon + 1));
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0
        || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 64) != 0
        || getsockname(lfd, (struct sockaddr *)&sa, &salen) != 0) {
        perror("hostile_keyserver: listen");
        return 1;
    }
    if (port_file != NULL) {
        char tmp[4096];
        FILE *f;

        snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
        f = fopen(tmp, "w");
        if (f == NULL || fprintf(f, "%u\n", ntohs(sa.sin_port)) < 0 || fclose(f) != 0
            || rename(tmp, port_file) != 0) {
            perror(port_file);
            return 1;
        }
    }
    for (;;) {
        pthread_t t;
        hk_conn *c;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EINTR) {
                continue;
            }
            perror("hostile_keyserver: accept");
            return 1;
        }
        c = malloc(sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->ctx = ctx;
        c->fd = fd;
        if (pthread_create(&t, NULL, hk_thread, c) != 0) {
            close(fd);
            free(c);
            continue;
        }
        pthread_detach(t);
    }
}
