/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli.c - `lurk`, the operator's tool: ask a key server what it offers,
 * fetch public keys, write key reference files, and run single operations.
 *
 * Configuration comes from the `lurk` provider section of an openssl.cnf
 * (--conf FILE or $OPENSSL_CONF), the same keys the provider reads; flags
 * override it.  The tool itself never loads the lurk provider: OpenSSL's
 * automatic config loading is switched off before anything else runs, so
 * local work (key ids, PEM) uses the default provider only.
 *
 * Exit status: 0 success, 1 the operation failed, 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "lurk_client.h"
#include "lurk_encoding.h"
#include "lurk_keyid.h"
#include "lurk_keyref.h"

#define LURK_CLI_MAX_FILE (1024 * 1024)
#define LURK_CLI_SERVERS_MAX 4096

enum { LURK_CLI_OK = 0, LURK_CLI_FAIL = 1, LURK_CLI_USAGE = 2 };

typedef struct {
    const char *conf_file;
    char servers[LURK_CLI_SERVERS_MAX];   /* from --server (space separated) */
    const char *ca, *cert, *key;
    long timeout_ms, connect_timeout_ms;

    /* Values read from the openssl.cnf section (owned). */
    lurk_client_cnf cnf;          /* from --conf or $OPENSSL_CONF */
} lurk_cli_opts;

typedef int (*lurk_cli_fn)(lurk_cli_opts *o, int argc, char **argv);

typedef struct {
    const char *name;
    lurk_cli_fn fn;
    const char *usage;
} lurk_cli_command;

static const char *lurk_cli_cmd = "lurk";

static void lurk_cli_error(lurk_err err, const lurk_detail *d)
{
    if (d != NULL && d->msg[0] != '\0') {
        fprintf(stderr, "lurk: %s: %s: %s\n", lurk_cli_cmd, lurk_err_str(err), d->msg);
    } else {
        fprintf(stderr, "lurk: %s: %s\n", lurk_cli_cmd, lurk_err_str(err));
    }
}

static void lurk_cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void lurk_cli_fail(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "lurk: %s: ", lurk_cli_cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ------------------------------------------------------------------------ */
/* Files                                                                      */

static int lurk_cli_read_file(const char *path, unsigned char **out, size_t *outlen)
{
    FILE *f = NULL;
    unsigned char *buf = NULL;
    size_t len = 0, cap = 4096;
    int ok = 0;

    *out = NULL;
    *outlen = 0;
    f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        lurk_cli_fail("%s: %s", path, strerror(errno));
        goto end;
    }
    buf = malloc(cap + 1);
    if (buf == NULL) {
        goto end;
    }
    for (;;) {
        size_t n = fread(buf + len, 1, cap - len, f);

        len += n;
        if (n == 0) {
            break;
        }
        if (len == cap) {
            unsigned char *nb;

            if (cap >= LURK_CLI_MAX_FILE) {
                lurk_cli_fail("%s: larger than %d bytes", path, LURK_CLI_MAX_FILE);
                goto end;
            }
            cap *= 2;
            nb = realloc(buf, cap + 1);
            if (nb == NULL) {
                goto end;
            }
            buf = nb;
        }
    }
    if (ferror(f)) {
        lurk_cli_fail("%s: read error", path);
        goto end;
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    buf = NULL;
    ok = 1;

end:
    if (buf != NULL) {
        OPENSSL_clear_free(buf, cap + 1);
    }
    if (f != NULL && f != stdin) {
        fclose(f);
    }
    return ok;
}

/* Writes to `path`, or stdout when path is NULL or "-". */
static int lurk_cli_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = NULL;
    int ok = 0;

    f = (path == NULL || strcmp(path, "-") == 0) ? stdout : fopen(path, "wb");
    if (f == NULL) {
        lurk_cli_fail("%s: %s", path, strerror(errno));
        goto end;
    }
    if (fwrite(data, 1, len, f) != len || fflush(f) != 0) {
        lurk_cli_fail("%s: write error", path == NULL ? "stdout" : path);
        goto end;
    }
    ok = 1;

end:
    if (f != NULL && f != stdout && fclose(f) != 0) {
        ok = 0;
    }
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Configuration                                                              */

static int lurk_cli_parse_ms(const char *what, const char *s, long *out)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v <= 0 || v > 3600L * 1000) {
        lurk_cli_fail("%s: \"%s\" is not a number of milliseconds", what, s);
        return 0;
    }
    *out = v;
    return 1;
}

/* Reads the lurk provider section of --conf or $OPENSSL_CONF. */
static int lurk_cli_load_conf(lurk_cli_opts *o)
{
    const char *file = o->conf_file;
    lurk_detail d;
    lurk_err err;

    if (file == NULL) {
        file = getenv("OPENSSL_CONF");
    }
    if (file == NULL || file[0] == '\0') {
        return 1;
    }
    err = lurk_client_cnf_load(file, &o->cnf, &d);
    if (err != LURK_OK) {
        lurk_cli_fail("%s", d.msg[0] != '\0' ? d.msg : lurk_err_str(err));
        return 0;
    }
    if (!o->cnf.found && o->conf_file != NULL) {
        lurk_cli_fail("%s: no lurk provider section (openssl_conf -> providers -> lurk)", file);
        return 0;
    }
    return 1; /* $OPENSSL_CONF without lurk: nothing to take from it */
}

static void lurk_cli_opts_clear(lurk_cli_opts *o)
{
    lurk_client_cnf_clear(&o->cnf);
}

/* Builds the client from config + flags; prints the error itself. */
static int lurk_cli_client(lurk_cli_opts *o, LURK_CLIENT **out)
{
    lurk_client_config cfg;
    lurk_detail d;
    lurk_err err;

    if (!lurk_cli_load_conf(o)) {
        return LURK_CLI_USAGE;
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg.servers = o->servers[0] != '\0' ? o->servers : o->cnf.servers;
    cfg.ca_file = o->ca != NULL ? o->ca : o->cnf.ca_file;
    cfg.cert_file = o->cert != NULL ? o->cert : o->cnf.cert_file;
    cfg.key_file = o->key != NULL ? o->key : o->cnf.key_file;
    cfg.timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : o->cnf.timeout_ms;
    cfg.connect_timeout_ms =
        o->connect_timeout_ms > 0 ? o->connect_timeout_ms : o->cnf.connect_timeout_ms;
    if (cfg.servers == NULL) {
        lurk_cli_fail("no key server: use --server URL or --conf FILE (or $OPENSSL_CONF)");
        return LURK_CLI_USAGE;
    }
    err = lurk_client_new(&cfg, out, &d);
    if (err != LURK_OK) {
        lurk_cli_error(err, &d);
        return LURK_CLI_FAIL;
    }
    return LURK_CLI_OK;
}

/* ------------------------------------------------------------------------ */
/* Command line helpers                                                       */

static int lurk_cli_usage(const char *usage, FILE *f, int code)
{
    fprintf(f, "%s", usage);
    return code;
}

static int lurk_cli_bad(const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int lurk_cli_bad(const char *usage, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "lurk: %s: ", lurk_cli_cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", usage);
    return LURK_CLI_USAGE;
}

static int lurk_cli_parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end = NULL;
    unsigned long v;

    if (s[0] == '-') {
        return 0;
    }
    errno = 0;
    v = strtoul(s, &end, 0);
    if (errno != 0 || end == s || *end != '\0' || v > max) {
        return 0;
    }
    *out = v;
    return 1;
}

static double lurk_cli_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ------------------------------------------------------------------------ */
/* hello                                                                      */

static const char lurk_cli_hello_usage[] =
    "usage: lurk [GLOBAL OPTIONS] hello\n"
    "Asks the key server for its protocol version and capabilities and prints them.\n";

static void lurk_cli_print_set(const char *label, uint32_t bits, const char *(*name)(int),
                               int count)
{
    printf("%-14s", label);
    for (int i = 0; i < count; i++) {
        const char *n = name(i);

        if ((bits & (1u << i)) != 0 && n != NULL) {
            printf(" %s", n);
        }
    }
    printf("\n");
}

static const char *lurk_cli_tx_name(int i) { return lurk_tx_name((lurk_tx)i); }
static const char *lurk_cli_alg_name(int i) { return i == 0 ? NULL : lurk_sig_alg_name((lurk_sig_alg)i); }
static const char *lurk_cli_mode_name(int i) { return i == 0 ? NULL : lurk_dec_mode_name((lurk_dec_mode)i); }
static const char *lurk_cli_md_name(int i) { return i == 0 ? NULL : lurk_md_name((lurk_md)i); }
static const char *lurk_cli_kt_name(int i) { return i == 0 ? NULL : lurk_key_type_name((lurk_key_type)i); }

static int lurk_cli_hello(lurk_cli_opts *o, int argc, char **argv)
{
    LURK_CLIENT *c = NULL;
    lurk_hello_info info;
    unsigned char state[64];
    size_t state_len = sizeof(state);
    char state_text[128];
    lurk_detail d;
    lurk_err err;
    int rc;

    if (argc > 1) {
        return lurk_cli_bad(lurk_cli_hello_usage, "unexpected argument \"%s\"", argv[1]);
    }
    rc = lurk_cli_client(o, &c);
    if (rc != LURK_CLI_OK) {
        goto end;
    }
    err = lurk_client_hello(c, &info, state, &state_len, &d);
    if (err != LURK_OK) {
        lurk_cli_error(err, &d);
        rc = LURK_CLI_FAIL;
        goto end;
    }
    printf("%-14s %u.%u\n", "version", info.major, info.minor);
    lurk_cli_print_set("transactions", info.transactions, lurk_cli_tx_name, LURK_TX__COUNT);
    lurk_cli_print_set("algorithms", info.sig_algs, lurk_cli_alg_name, LURK_SIG__COUNT);
    lurk_cli_print_set("decrypt-modes", info.dec_modes, lurk_cli_mode_name, LURK_DEC__COUNT);
    lurk_cli_print_set("digests", info.digests, lurk_cli_md_name, LURK_MD__COUNT);
    lurk_cli_print_set("key-types", info.key_types, lurk_cli_kt_name, LURK_KEY__COUNT);
    if (state_len > 0
        && lurk_b64url_encode(state, state_len, state_text, sizeof(state_text)) == LURK_OK) {
        printf("%-14s %s\n", "state", state_text);
    }

end:
    lurk_client_free(c);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* ping                                                                       */

static const char lurk_cli_ping_usage[] =
    "usage: lurk [GLOBAL OPTIONS] ping [-c COUNT]\n"
    "Sends COUNT (default 1, at most 1000) Ping requests on one connection and prints\n"
    "each round-trip time; the first includes connecting.\n";

static int lurk_cli_ping(lurk_cli_opts *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        { "count", required_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    LURK_CLIENT *c = NULL;
    unsigned long count = 1;
    lurk_detail d;
    lurk_err err;
    int rc, opt;

    optind = 0;
    for (;;) {
        opt = getopt_long(argc, argv, "c:h", longopts, NULL);
        if (opt == -1) {
            break;
        }
        switch (opt) {
        case 'c':
            if (!lurk_cli_parse_uint(optarg, 1000, &count) || count == 0) {
                return lurk_cli_bad(lurk_cli_ping_usage, "bad count \"%s\"", optarg);
            }
            break;
        case 'h':
            return lurk_cli_usage(lurk_cli_ping_usage, stdout, LURK_CLI_OK);
        default:
            return lurk_cli_usage(lurk_cli_ping_usage, stderr, LURK_CLI_USAGE);
        }
    }
    if (optind < argc) {
        return lurk_cli_bad(lurk_cli_ping_usage, "unexpected argument \"%s\"", argv[optind]);
    }
    rc = lurk_cli_client(o, &c);
    if (rc != LURK_CLI_OK) {
        goto end;
    }
    for (unsigned long i = 0; i < count; i++) {
        double t0 = lurk_cli_now_ms();

        err = lurk_client_ping(c, &d);
        if (err != LURK_OK) {
            lurk_cli_error(err, &d);
            rc = LURK_CLI_FAIL;
            goto end;
        }
        printf("ping: %.3f ms\n", lurk_cli_now_ms() - t0);
    }

end:
    lurk_client_free(c);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* pubkey / keyref                                                            */

static const char lurk_cli_pubkey_usage[] =
    "usage: lurk [GLOBAL OPTIONS] pubkey KEYID [-o FILE]\n"
    "Fetches the public key of KEYID, checks that it is the key the id names, and\n"
    "writes it as PEM (SubjectPublicKeyInfo) to FILE or stdout.\n";

static int lurk_cli_pubkey(lurk_cli_opts *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        { "out", required_argument, NULL, 'o' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    LURK_CLIENT *c = NULL;
    const char *out = NULL;
    const char *key_id;
    unsigned char *spki = NULL;
    size_t spki_len = 0;
    BIO *bio = NULL;
    char *pem = NULL;
    long pem_len;
    lurk_detail d;
    lurk_err err;
    int rc, opt;

    optind = 0;
    for (;;) {
        opt = getopt_long(argc, argv, "o:h", longopts, NULL);
        if (opt == -1) {
            break;
        }
        switch (opt) {
        case 'o':
            out = optarg;
            break;
        case 'h':
            return lurk_cli_usage(lurk_cli_pubkey_usage, stdout, LURK_CLI_OK);
        default:
            return lurk_cli_usage(lurk_cli_pubkey_usage, stderr, LURK_CLI_USAGE);
        }
    }
    if (argc - optind != 1) {
        return lurk_cli_bad(lurk_cli_pubkey_usage, "one KEYID is needed");
    }
    key_id = argv[optind];
    rc = lurk_cli_client(o, &c);
    if (rc != LURK_CLI_OK) {
        goto end;
    }
    err = lurk_client_public_key(c, key_id, NULL, NULL, &spki, &spki_len, &d);
    if (err != LURK_OK) {
        lurk_cli_error(err, &d);
        rc = LURK_CLI_FAIL;
        goto end;
    }
    rc = LURK_CLI_FAIL;
    bio = BIO_new(BIO_s_mem());
    if (bio == NULL || PEM_write_bio(bio, "PUBLIC KEY", "", spki, (long)spki_len) <= 0) {
        lurk_cli_fail("cannot write PEM");
        goto end;
    }
    pem_len = BIO_get_mem_data(bio, &pem);
    if (!lurk_cli_write_file(out, pem, (size_t)pem_len)) {
        goto end;
    }
    rc = LURK_CLI_OK;

end:
    BIO_free(bio);
    free(spki);
    lurk_client_free(c);
    return rc;
}

static const char lurk_cli_keyref_usage[] =
    "usage: lurk [GLOBAL OPTIONS] keyref KEYID -o FILE [--server URL]...\n"
    "Fetches the public key of KEYID, checks it against the id, and writes a key\n"
    "reference file (PEM \"LURK PRIVATE KEY\", no secret inside) that nginx, haproxy\n"
    "and openssl load through the lurk provider.  Each --server URL given after the\n"
    "command is recorded in the file, in order (at most 16).\n";

static int lurk_cli_keyref(lurk_cli_opts *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        { "out", required_argument, NULL, 'o' },
        { "server", required_argument, NULL, 's' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    LURK_CLIENT *c = NULL;
    const char *out = NULL;
    const char *servers[LURK_KEYREF_MAX_SERVERS];
    size_t n_servers = 0;
    const char *key_id;
    unsigned char *spki = NULL;
    size_t spki_len = 0;
    char policy[32];
    lurk_keyref ref;
    lurk_detail d;
    lurk_err err;
    int rc, opt;

    lurk_keyref_init(&ref);
    optind = 0;
    for (;;) {
        opt = getopt_long(argc, argv, "o:h", longopts, NULL);
        if (opt == -1) {
            break;
        }
        switch (opt) {
        case 'o':
            out = optarg;
            break;
        case 's':
            if (n_servers == LURK_KEYREF_MAX_SERVERS) {
                return lurk_cli_bad(lurk_cli_keyref_usage, "more than %d servers",
                                    LURK_KEYREF_MAX_SERVERS);
            }
            servers[n_servers++] = optarg;
            break;
        case 'h':
            return lurk_cli_usage(lurk_cli_keyref_usage, stdout, LURK_CLI_OK);
        default:
            return lurk_cli_usage(lurk_cli_keyref_usage, stderr, LURK_CLI_USAGE);
        }
    }
    if (argc - optind != 1) {
        return lurk_cli_bad(lurk_cli_keyref_usage, "one KEYID is needed");
    }
    if (out == NULL) {
        return lurk_cli_bad(lurk_cli_keyref_usage, "-o FILE is needed");
    }
    key_id = argv[optind];
    rc = lurk_cli_client(o, &c);
    if (rc != LURK_CLI_OK) {
        goto end;
    }
    rc = LURK_CLI_FAIL;
    err = lurk_client_public_key(c, key_id, NULL, policy, &spki, &spki_len, &d);
    if (err != LURK_OK) {
        lurk_cli_error(err, &d);
        goto end;
    }
    err = lurk_keyref_from_spki(spki, spki_len, policy[0] != '\0' ? policy : NULL,
                                n_servers > 0 ? servers : NULL, n_servers, &ref);
    if (err != LURK_OK) {
        lurk_cli_fail("%s: cannot build the reference", lurk_err_str(err));
        goto end;
    }
    err = lurk_keyref_write_file(&ref, out);
    if (err != LURK_OK) {
        lurk_cli_fail("%s: %s", out, lurk_err_str(err));
        goto end;
    }
    printf("%s %s %s\n", ref.key_id, lurk_key_type_name(ref.type), out);
    rc = LURK_CLI_OK;

end:
    lurk_keyref_clear(&ref);
    free(spki);
    lurk_client_free(c);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* keyid (local)                                                              */

static const char lurk_cli_keyid_usage[] =
    "usage: lurk keyid FILE\n"
    "Prints the key id of a PEM public key, private key, certificate or lurk key\n"
    "reference.  Local only: no key server is contacted.\n";

static int lurk_cli_no_pass(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

static EVP_PKEY *lurk_cli_pem_pubkey(const unsigned char *pem, size_t len)
{
    EVP_PKEY *pkey = NULL;
    X509 *x = NULL;
    BIO *bio;

    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio != NULL) {
        x = PEM_read_bio_X509(bio, NULL, lurk_cli_no_pass, NULL);
        BIO_free(bio);
    }
    if (x != NULL) {
        pkey = X509_get_pubkey(x);
        X509_free(x);
        return pkey;
    }
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio != NULL) {
        pkey = PEM_read_bio_PUBKEY(bio, NULL, lurk_cli_no_pass, NULL);
        BIO_free(bio);
    }
    if (pkey != NULL) {
        return pkey;
    }
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio != NULL) {
        pkey = PEM_read_bio_PrivateKey(bio, NULL, lurk_cli_no_pass, NULL);
        BIO_free(bio);
    }
    return pkey;
}

static int lurk_cli_keyid(lurk_cli_opts *o, int argc, char **argv)
{
    unsigned char *pem = NULL;
    size_t pem_len = 0;
    EVP_PKEY *pkey = NULL;
    unsigned char *spki = NULL;
    int spki_len;
    lurk_keyid id;
    char text[LURK_KEYID_TEXT_MAX];
    lurk_keyref ref;
    lurk_err err;
    int rc = LURK_CLI_FAIL;

    (void)o;
    lurk_keyref_init(&ref);
    if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        return lurk_cli_usage(lurk_cli_keyid_usage, stdout, LURK_CLI_OK);
    }
    if (argc != 2) {
        return lurk_cli_bad(lurk_cli_keyid_usage, "one FILE is needed");
    }
    if (!lurk_cli_read_file(argv[1], &pem, &pem_len)) {
        goto end;
    }
    if (strstr((const char *)pem, "-----BEGIN " LURK_KEYREF_PEM_LABEL "-----") != NULL) {
        err = lurk_keyref_read_file(argv[1], &ref);
        if (err != LURK_OK) {
            lurk_cli_fail("%s: %s", argv[1], lurk_err_str(err));
            goto end;
        }
        printf("%s\n", ref.key_id);
        rc = LURK_CLI_OK;
        goto end;
    }
    pkey = lurk_cli_pem_pubkey(pem, pem_len);
    ERR_clear_error();
    if (pkey == NULL) {
        lurk_cli_fail("%s: no PEM certificate, public key or (unencrypted) private key",
                      argv[1]);
        goto end;
    }
    spki_len = i2d_PUBKEY(pkey, &spki);
    if (spki_len <= 0) {
        lurk_cli_fail("%s: cannot encode the public key", argv[1]);
        goto end;
    }
    err = lurk_keyid_from_spki(spki, (size_t)spki_len, LURK_KEYID_ALG_DEFAULT, &id);
    if (err == LURK_OK) {
        err = lurk_keyid_format(&id, text, sizeof(text));
    }
    if (err != LURK_OK) {
        lurk_cli_fail("%s: %s", argv[1], lurk_err_str(err));
        goto end;
    }
    printf("%s\n", text);
    rc = LURK_CLI_OK;

end:
    lurk_keyref_clear(&ref);
    OPENSSL_free(spki);
    EVP_PKEY_free(pkey);
    if (pem != NULL) {
        OPENSSL_clear_free(pem, pem_len);
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* sign                                                                       */

static const char lurk_cli_sign_usage[] =
    "usage: lurk [GLOBAL OPTIONS] sign KEYID --alg ALG [--digest MD] [--saltlen N]\n"
    "                                (--in FILE | --digest-in FILE) [-o FILE]\n"
    "Signs with the remote key and writes the binary signature to FILE or stdout.\n"
    "  --alg ALG         rsa-pss | rsa-pkcs1 | ecdsa | ed25519\n"
    "  --digest MD       sha256 (default) | sha384 | sha512; not for ed25519\n"
    "  --saltlen N       rsa-pss salt length (default: the digest length)\n"
    "  --in FILE         the message; the key server hashes it (a message larger\n"
    "                    than 16384 bytes is hashed here and its digest sent)\n"
    "  --digest-in FILE  a precomputed digest (raw bytes, the digest's length)\n"
    "Keys with the tls-server policy sign only TLS handshake inputs.\n";

static int lurk_cli_sign(lurk_cli_opts *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        { "alg", required_argument, NULL, 'a' },
        { "digest", required_argument, NULL, 'd' },
        { "saltlen", required_argument, NULL, 's' },
        { "in", required_argument, NULL, 'i' },
        { "digest-in", required_argument, NULL, 'D' },
        { "out", required_argument, NULL, 'o' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    LURK_CLIENT *c = NULL;
    lurk_sign_params p;
    const char *in = NULL, *digest_in = NULL, *out = NULL, *md_name = NULL;
    unsigned long salt = 0;
    int have_salt = 0;
    unsigned char *msg = NULL;
    size_t msg_len = 0;
    unsigned char md_buf[EVP_MAX_MD_SIZE];
    unsigned char sig[LURK_MAX_DATA];
    size_t sig_len = sizeof(sig);
    lurk_detail d;
    lurk_err err;
    int rc, opt;

    memset(&p, 0, sizeof(p));
    optind = 0;
    for (;;) {
        opt = getopt_long(argc, argv, "o:h", longopts, NULL);
        if (opt == -1) {
            break;
        }
        switch (opt) {
        case 'a':
            p.alg = lurk_sig_alg_from_name(optarg);
            if (p.alg == LURK_SIG_NONE) {
                return lurk_cli_bad(lurk_cli_sign_usage, "unknown algorithm \"%s\"", optarg);
            }
            break;
        case 'd':
            md_name = optarg;
            break;
        case 's':
            if (!lurk_cli_parse_uint(optarg, INT_MAX, &salt)) {
                return lurk_cli_bad(lurk_cli_sign_usage, "bad salt length \"%s\"", optarg);
            }
            have_salt = 1;
            break;
        case 'i':
            in = optarg;
            break;
        case 'D':
            digest_in = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'h':
            return lurk_cli_usage(lurk_cli_sign_usage, stdout, LURK_CLI_OK);
        default:
            return lurk_cli_usage(lurk_cli_sign_usage, stderr, LURK_CLI_USAGE);
        }
    }
    if (argc - optind != 1) {
        return lurk_cli_bad(lurk_cli_sign_usage, "one KEYID is needed");
    }
    if (p.alg == LURK_SIG_NONE) {
        return lurk_cli_bad(lurk_cli_sign_usage, "--alg is needed");
    }
    if ((in == NULL) == (digest_in == NULL)) {
        return lurk_cli_bad(lurk_cli_sign_usage, "exactly one of --in and --digest-in");
    }
    if (p.alg == LURK_SIG_ED25519) {
        if (md_name != NULL || digest_in != NULL) {
            return lurk_cli_bad(lurk_cli_sign_usage,
                                "ed25519 signs the message: no --digest / --digest-in");
        }
        p.md = LURK_MD_NONE;
    } else {
        p.md = lurk_md_from_name(md_name != NULL ? md_name : "sha256");
        if (p.md == LURK_MD_NONE) {
            return lurk_cli_bad(lurk_cli_sign_usage, "unknown digest \"%s\"", md_name);
        }
    }
    if (have_salt && p.alg != LURK_SIG_RSA_PSS) {
        return lurk_cli_bad(lurk_cli_sign_usage, "--saltlen is for rsa-pss only");
    }
    p.salt_len = have_salt ? (int)salt : (int)lurk_md_size(p.md);
    p.key_id = argv[optind];

    rc = LURK_CLI_FAIL;
    if (!lurk_cli_read_file(in != NULL ? in : digest_in, &msg, &msg_len)) {
        goto end;
    }
    if (digest_in != NULL) {
        if (msg_len != lurk_md_size(p.md)) {
            lurk_cli_fail("%s: %zu bytes, a %s digest has %zu", digest_in, msg_len,
                          lurk_md_name(p.md), lurk_md_size(p.md));
            rc = LURK_CLI_USAGE;
            goto end;
        }
        p.digest = msg;
        p.digest_len = msg_len;
    } else if (msg_len > LURK_MAX_DATA && p.alg != LURK_SIG_ED25519) {
        unsigned int n = 0;

        if (!EVP_Digest(msg, msg_len, md_buf, &n, EVP_get_digestbyname(lurk_md_name(p.md)),
                        NULL)) {
            lurk_cli_fail("cannot hash %s", in);
            goto end;
        }
        p.digest = md_buf;
        p.digest_len = n;
    } else {
        p.data = msg;
        p.data_len = msg_len;
    }
    rc = lurk_cli_client(o, &c);
    if (rc != LURK_CLI_OK) {
        goto end;
    }
    rc = LURK_CLI_FAIL;
    err = lurk_client_sign(c, &p, sig, &sig_len, &d);
    if (err != LURK_OK) {
        lurk_cli_error(err, &d);
        goto end;
    }
    if (!lurk_cli_write_file(out, sig, sig_len)) {
        goto end;
    }
    rc = LURK_CLI_OK;

end:
    free(msg);
    lurk_client_free(c);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* decrypt                                                                    */

static const char lurk_cli_decrypt_usage[] =
    "usage: lurk [GLOBAL OPTIONS] decrypt KEYID --mode MODE --in FILE [-o FILE]\n"
    "                                   [--oaep-digest MD] [--label-in FILE]\n"
    "                                   [--client-version V] [--alt-version V]\n"
    "Decrypts a ciphertext with the remote RSA key; writes the plaintext (a secret)\n"
    "to FILE or stdout.\n"
    "  --mode MODE         oaep | tls-premaster\n"
    "  --oaep-digest MD    oaep: sha256 (default) | sha384 | sha512 (MGF1 the same)\n"
    "  --label-in FILE     oaep: the label\n"
    "  --client-version V  tls-premaster: ClientHello version (default 0x0303)\n"
    "  --alt-version V     tls-premaster: a second accepted version\n"
    "tls-premaster always answers 48 bytes: random ones when the padding or version\n"
    "is wrong (implicit rejection).\n";

static int lurk_cli_decrypt(lurk_cli_opts *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        { "mode", required_argument, NULL, 'm' },
        { "oaep-digest", required_argument, NULL, 'd' },
        { "label-in", required_argument, NULL, 'l' },
        { "client-version", required_argument, NULL, 'v' },
        { "alt-version", required_argument, NULL, 'V' },
        { "in", required_argument, NULL, 'i' },
        { "out", required_argument, NULL, 'o' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    LURK_CLIENT *c = NULL;
    lurk_decrypt_params p;
    const char *in = NULL, *out = NULL, *md_name = NULL, *label_in = NULL;
    unsigned long v;
    unsigned char *ct = NULL, *label = NULL;
    size_t ct_len = 0, label_len = 0;
    unsigned char pt[LURK_MAX_DATA];
    size_t pt_len = sizeof(pt);
    lurk_detail d;
    lurk_err err;
    int rc, opt;

    memset(&p, 0, sizeof(p));
    p.client_version = 0x0303;
    optind = 0;
    for (;;) {
        opt = getopt_long(argc, argv, "o:h", longopts, NULL);
        if (opt == -1) {
            break;
        }
        switch (opt) {
        case 'm':
            p.mode = lurk_dec_mode_from_name(optarg);
            if (p.mode == LURK_DEC_NONE) {
                return lurk_cli_bad(lurk_cli_decrypt_usage, "unknown mode \"%s\"", optarg);
            }
            break;
        case 'd':
            md_name = optarg;
            break;
        case 'l':
            label_in = optarg;
            break;
        case 'v':
        case 'V':
            if (!lurk_cli_parse_uint(optarg, 0xffff, &v)) {
                return lurk_cli_bad(lurk_cli_decrypt_usage, "bad version \"%s\"", optarg);
            }
            if (opt == 'v') {
                p.client_version = (unsigned)v;
            } else {
                p.alt_version = (unsigned)v;
            }
            break;
        case 'i':
            in = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'h':
            return lurk_cli_usage(lurk_cli_decrypt_usage, stdout, LURK_CLI_OK);
        default:
            return lurk_cli_usage(lurk_cli_decrypt_usage, stderr, LURK_CLI_USAGE);
        }
    }
    if (argc - optind != 1) {
        return lurk_cli_bad(lurk_cli_decrypt_usage, "one KEYID is needed");
    }
    if (p.mode == LURK_DEC_NONE) {
        return lurk_cli_bad(lurk_cli_decrypt_usage, "--mode is needed");
    }
    if (in == NULL) {
        return lurk_cli_bad(lurk_cli_decrypt_usage, "--in FILE is needed");
    }
    if (p.mode == LURK_DEC_OAEP) {
        p.oaep_md = lurk_md_from_name(md_name != NULL ? md_name : "sha256");
        if (p.oaep_md == LURK_MD_NONE) {
            return lurk_cli_bad(lurk_cli_decrypt_usage, "unknown digest \"%s\"", md_name);
        }
    } else if (md_name != NULL || label_in != NULL) {
        return lurk_cli_bad(lurk_cli_decrypt_usage, "--oaep-digest / --label-in: oaep only");
    }
    p.key_id = argv[optind];
    rc = LURK_CLI_FAIL;
    if (!lurk_cli_read_file(in, &ct, &ct_len)) {
        goto end;
    }
    if (label_in != NULL && !lurk_cli_read_file(label_in, &label, &label_len)) {
        goto end;
    }
    p.in = ct;
    p.in_len = ct_len;
    p.label = label_len > 0 ? label : NULL;
    p.label_len = label_len;
    rc = lurk_cli_client(o, &c);
    if (rc != LURK_CLI_OK) {
        goto end;
    }
    rc = LURK_CLI_FAIL;
    err = lurk_client_decrypt(c, &p, pt, &pt_len, &d);
    if (err != LURK_OK) {
        lurk_cli_error(err, &d);
        goto end;
    }
    if (!lurk_cli_write_file(out, pt, pt_len)) {
        goto end;
    }
    rc = LURK_CLI_OK;

end:
    OPENSSL_cleanse(pt, sizeof(pt));
    free(ct);
    free(label);
    lurk_client_free(c);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* agree                                                                      */

static const char lurk_cli_agree_usage[] =
    "usage: lurk [GLOBAL OPTIONS] agree KEYID --peer FILE [-o FILE]\n"
    "ECDH between the remote key (policy agree) and the PEM public key in FILE;\n"
    "writes the shared secret to FILE or stdout.\n";

static int lurk_cli_agree(lurk_cli_opts *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        { "peer", required_argument, NULL, 'p' },
        { "out", required_argument, NULL, 'o' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    LURK_CLIENT *c = NULL;
    const char *peer = NULL, *out = NULL;
    unsigned char *pem = NULL, *spki = NULL;
    size_t pem_len = 0;
    int spki_len;
    EVP_PKEY *pkey = NULL;
    unsigned char secret[1024];
    size_t secret_len = sizeof(secret);
    lurk_detail d;
    lurk_err err;
    int rc, opt;

    optind = 0;
    for (;;) {
        opt = getopt_long(argc, argv, "o:h", longopts, NULL);
        if (opt == -1) {
            break;
        }
        switch (opt) {
        case 'p':
            peer = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'h':
            return lurk_cli_usage(lurk_cli_agree_usage, stdout, LURK_CLI_OK);
        default:
            return lurk_cli_usage(lurk_cli_agree_usage, stderr, LURK_CLI_USAGE);
        }
    }
    if (argc - optind != 1 || peer == NULL) {
        return lurk_cli_bad(lurk_cli_agree_usage, "KEYID and --peer FILE are needed");
    }
    rc = LURK_CLI_FAIL;
    if (!lurk_cli_read_file(peer, &pem, &pem_len)) {
        goto end;
    }
    pkey = lurk_cli_pem_pubkey(pem, pem_len);
    ERR_clear_error();
    spki_len = pkey != NULL ? i2d_PUBKEY(pkey, &spki) : 0;
    if (spki_len <= 0) {
        lurk_cli_fail("%s: no PEM public key", peer);
        goto end;
    }
    rc = lurk_cli_client(o, &c);
    if (rc != LURK_CLI_OK) {
        goto end;
    }
    rc = LURK_CLI_FAIL;
    err = lurk_client_agree(c, argv[optind], spki, (size_t)spki_len, secret, &secret_len, &d);
    if (err != LURK_OK) {
        lurk_cli_error(err, &d);
        goto end;
    }
    if (!lurk_cli_write_file(out, secret, secret_len)) {
        goto end;
    }
    rc = LURK_CLI_OK;

end:
    OPENSSL_cleanse(secret, sizeof(secret));
    OPENSSL_free(spki);
    EVP_PKEY_free(pkey);
    if (pem != NULL) {
        OPENSSL_clear_free(pem, pem_len);
    }
    lurk_client_free(c);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* main                                                                       */

static const lurk_cli_command lurk_cli_commands[] = {
    { "hello", lurk_cli_hello, lurk_cli_hello_usage },
    { "ping", lurk_cli_ping, lurk_cli_ping_usage },
    { "pubkey", lurk_cli_pubkey, lurk_cli_pubkey_usage },
    { "keyref", lurk_cli_keyref, lurk_cli_keyref_usage },
    { "keyid", lurk_cli_keyid, lurk_cli_keyid_usage },
    { "sign", lurk_cli_sign, lurk_cli_sign_usage },
    { "decrypt", lurk_cli_decrypt, lurk_cli_decrypt_usage },
    { "agree", lurk_cli_agree, lurk_cli_agree_usage },
};

static const char lurk_cli_main_usage[] =
    "usage: lurk [GLOBAL OPTIONS] COMMAND [ARGS]\n"
    "Talks to a LURK key server (lurk-keyserver).\n"
    "\n"
    "Global options (override the lurk provider section of the openssl.cnf):\n"
    "  --conf FILE            openssl.cnf with a lurk provider section\n"
    "                         (default: $OPENSSL_CONF)\n"
    "  --server URL           key server, https://HOST:PORT or unix:/PATH (repeatable)\n"
    "  --ca FILE              CA of the key server's certificate (lurk-ca)\n"
    "  --cert FILE            client certificate (lurk-cert)\n"
    "  --key FILE             client private key (lurk-key)\n"
    "  --timeout MS           whole-call timeout (lurk-timeout)\n"
    "  --connect-timeout MS   connect timeout (lurk-connect-timeout)\n"
    "  -h, --help             this text; `lurk COMMAND --help` for a command\n"
    "  -V, --version          the version\n"
    "\n"
    "Commands:\n"
    "  hello      print the server's capabilities\n"
    "  ping       measure the round-trip time\n"
    "  pubkey     fetch a public key (PEM)\n"
    "  keyref     write a key reference file for nginx/haproxy/openssl\n"
    "  keyid      print the key id of a local PEM key or certificate\n"
    "  sign       sign a message or digest\n"
    "  decrypt    decrypt (RSA OAEP or TLS premaster)\n"
    "  agree      ECDH with a peer public key\n"
    "\n"
    "Exit status: 0 success, 1 failure, 2 usage error.\n";

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "conf", required_argument, NULL, 'C' },
        { "server", required_argument, NULL, 's' },
        { "ca", required_argument, NULL, 'a' },
        { "cert", required_argument, NULL, 'c' },
        { "key", required_argument, NULL, 'k' },
        { "timeout", required_argument, NULL, 't' },
        { "connect-timeout", required_argument, NULL, 'T' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    lurk_cli_opts o;
    int rc = LURK_CLI_USAGE;
    int opt;

    /* Never load the lurk provider into this tool via $OPENSSL_CONF. */
    OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
    memset(&o, 0, sizeof(o));
    for (;;) {
        opt = getopt_long(argc, argv, "+hV", longopts, NULL);
        if (opt == -1) {
            break;
        }
        switch (opt) {
        case 'C':
            o.conf_file = optarg;
            break;
        case 's': {
            size_t used = strlen(o.servers);

            if (used + strlen(optarg) + 2 > sizeof(o.servers)) {
                fprintf(stderr, "lurk: too many --server\n");
                goto end;
            }
            snprintf(o.servers + used, sizeof(o.servers) - used, "%s%s", used > 0 ? " " : "",
                     optarg);
            break;
        }
        case 'a':
            o.ca = optarg;
            break;
        case 'c':
            o.cert = optarg;
            break;
        case 'k':
            o.key = optarg;
            break;
        case 't':
            if (!lurk_cli_parse_ms("--timeout", optarg, &o.timeout_ms)) {
                goto end;
            }
            break;
        case 'T':
            if (!lurk_cli_parse_ms("--connect-timeout", optarg, &o.connect_timeout_ms)) {
                goto end;
            }
            break;
        case 'V':
            printf("lurk %s (%s)\n", LURK_VERSION, OpenSSL_version(OPENSSL_VERSION));
            rc = LURK_CLI_OK;
            goto end;
        case 'h':
            rc = lurk_cli_usage(lurk_cli_main_usage, stdout, LURK_CLI_OK);
            goto end;
        default:
            rc = lurk_cli_usage(lurk_cli_main_usage, stderr, LURK_CLI_USAGE);
            goto end;
        }
    }
    if (optind >= argc) {
        rc = lurk_cli_usage(lurk_cli_main_usage, stderr, LURK_CLI_USAGE);
        goto end;
    }
    if (strcmp(argv[optind], "help") == 0) {
        rc = lurk_cli_usage(lurk_cli_main_usage, stdout, LURK_CLI_OK);
        for (size_t i = 0; optind + 1 < argc && i < sizeof(lurk_cli_commands) / sizeof(lurk_cli_commands[0]); i++) {
            if (strcmp(argv[optind + 1], lurk_cli_commands[i].name) == 0) {
                rc = lurk_cli_usage(lurk_cli_commands[i].usage, stdout, LURK_CLI_OK);
            }
        }
        goto end;
    }
    for (size_t i = 0; i < sizeof(lurk_cli_commands) / sizeof(lurk_cli_commands[0]); i++) {
        if (strcmp(argv[optind], lurk_cli_commands[i].name) == 0) {
            lurk_cli_cmd = lurk_cli_commands[i].name;
            if (argc - optind == 2
                && (strcmp(argv[optind + 1], "--help") == 0
                    || strcmp(argv[optind + 1], "-h") == 0)) {
                rc = lurk_cli_usage(lurk_cli_commands[i].usage, stdout, LURK_CLI_OK);
            } else {
                rc = lurk_cli_commands[i].fn(&o, argc - optind, argv + optind);
            }
            goto end;
        }
    }
    fprintf(stderr, "lurk: unknown command \"%s\"\n%s", argv[optind], lurk_cli_main_usage);

end:
    lurk_cli_opts_clear(&o);
    return rc;
}
