/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_offline.c - lurk.so without a key server.
 *
 * Key references are made from local keys' public halves, so everything
 * that must work offline is checked against the real key: decoding, public
 * facts (bits, size, group), public export, EVP_PKEY_eq and
 * X509_check_private_key, refusal of private export, digest rejection,
 * size queries.  The key server is "down" (a closed loopback port): signing
 * must fail quickly with an error that names the cause, never hang or crash.
 * A reference whose public key does not match its key id is refused, and
 * ordinary PEM keys still load through the default provider with no errors
 * left behind by our decoders.
 */
#include "prov_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>

static double pt_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A loopback port nobody listens on. */
static int pt_closed_port(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    PT_REQUIRE(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    PT_REQUIRE(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static void pt_write_ref(EVP_PKEY *k, const char *policy, const char *path)
{
    unsigned char *spki = NULL;
    int len = i2d_PUBKEY(k, &spki);
    lurk_keyref ref;

    lurk_keyref_init(&ref);
    PT_REQUIRE(len > 0);
    PT_REQUIRE(lurk_keyref_from_spki(spki, (size_t)len, policy, NULL, 0, &ref) == LURK_OK);
    PT_REQUIRE(lurk_keyref_write_file(&ref, path) == LURK_OK);
    lurk_keyref_clear(&ref);
    OPENSSL_free(spki);
}

static X509 *pt_self_signed(EVP_PKEY *k)
{
    X509 *x = X509_new();

    PT_REQUIRE(x != NULL);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"t", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, k);
    PT_REQUIRE(X509_sign(x, k, EVP_PKEY_is_a(k, "ED25519") ? NULL : EVP_sha256()) > 0);
    return x;
}

static void pt_one_type(OSSL_LIB_CTX *ctx, const char *dir, const char *alg,
                        const char *group, int bits)
{
    char path[512], errs[4096];
    EVP_PKEY *local = NULL, *lk = NULL, *pub = NULL;
    X509 *cert = NULL;
    EVP_MD_CTX *m = NULL;
    EVP_PKEY_CTX *pc = NULL;
    unsigned char *spki_local = NULL, *spki_lurk = NULL;
    int l1, l2;
    size_t siglen = 0;
    unsigned char sig[1024];
    OSSL_PARAM *params = NULL;
    double t0;
    int is_ed = strcmp(alg, "ED25519") == 0;

    if (group != NULL) {
        local = EVP_PKEY_Q_keygen(NULL, NULL, "EC", group);
    } else if (bits > 0) {
        local = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    } else {
        local = EVP_PKEY_Q_keygen(NULL, NULL, alg);
    }
    PT_REQUIRE(local != NULL);
    snprintf(path, sizeof(path), "%s/%s.key", dir, alg);
    pt_write_ref(local, "tls-server", path);

    lk = pt_read_key(ctx, path);
    PT_REQUIRE(lk != NULL);
    PT_CHECK(strcmp(pt_provider_of(lk), "lurk") == 0);
    PT_CHECK(EVP_PKEY_is_a(lk, alg));
    PT_CHECK(EVP_PKEY_get_bits(lk) == EVP_PKEY_get_bits(local));
    PT_CHECK(EVP_PKEY_get_size(lk) == EVP_PKEY_get_size(local));
    PT_CHECK(EVP_PKEY_get_security_bits(lk) == EVP_PKEY_get_security_bits(local));
    if (group != NULL) {
        char g[64] = "";

        PT_CHECK(EVP_PKEY_get_group_name(lk, g, sizeof(g), NULL) == 1);
        PT_CHECK(strcmp(g, group) == 0);
    }

    /* Public export: the same SPKI; the private key never leaves. */
    l1 = i2d_PUBKEY(local, &spki_local);
    l2 = i2d_PUBKEY(lk, &spki_lurk);
    PT_CHECK(l1 > 0 && l1 == l2 && memcmp(spki_local, spki_lurk, (size_t)l1) == 0);
    PT_CHECK(EVP_PKEY_todata(lk, EVP_PKEY_KEYPAIR, &params) != 1);
    ERR_clear_error();

    /* Matching against the certificate, as SSL_CTX_use_PrivateKey does. */
    pub = pt_public_copy(ctx, local);
    PT_CHECK(EVP_PKEY_eq(lk, pub) == 1);
    cert = pt_self_signed(local);
    PT_CHECK(X509_check_private_key(cert, lk) == 1);
    /* A successful match leaves nothing on the error queue (nginx logs a
     * leftover as "ignoring stale global SSL error" on the next handshake). */
    PT_CHECK(ERR_peek_error() == 0);
    ERR_clear_error();

    /* Our keymgmt takes in a public key (that is how the match above works)
     * but never a private one, and an imported key cannot sign. */
    {
        OSSL_PARAM *data = NULL;
        EVP_PKEY *imported = NULL;
        EVP_PKEY_CTX *ic = EVP_PKEY_CTX_new_from_name(ctx, alg, "provider=lurk");
        EVP_PKEY_CTX *sc = NULL;

        PT_REQUIRE(ic != NULL);
        PT_CHECK(EVP_PKEY_todata(local, EVP_PKEY_KEYPAIR, &data) == 1);
        PT_CHECK(EVP_PKEY_fromdata_init(ic) == 1);
        PT_CHECK(EVP_PKEY_fromdata(ic, &imported, EVP_PKEY_KEYPAIR, data) != 1);
        PT_CHECK(imported == NULL);
        OSSL_PARAM_free(data);
        data = NULL;
        PT_CHECK(EVP_PKEY_todata(local, EVP_PKEY_PUBLIC_KEY, &data) == 1);
        PT_CHECK(EVP_PKEY_fromdata(ic, &imported, EVP_PKEY_PUBLIC_KEY, data) == 1);
        PT_REQUIRE(imported != NULL);
        PT_CHECK(strcmp(pt_provider_of(imported), "lurk") == 0);
        PT_CHECK(EVP_PKEY_eq(imported, local) == 1);
        sc = EVP_PKEY_CTX_new_from_pkey(ctx, imported, "provider=lurk");
        PT_CHECK(sc == NULL || EVP_PKEY_sign_init(sc) != 1
                 || EVP_PKEY_sign(sc, NULL, &siglen, (const unsigned char *)"x", 1) != 1);
        EVP_PKEY_CTX_free(sc);
        EVP_PKEY_free(imported);
        OSSL_PARAM_free(data);
        EVP_PKEY_CTX_free(ic);
        ERR_clear_error();
    }

    /* Digest policy and size query, offline. */
    m = EVP_MD_CTX_new();
    if (!is_ed) {
        ERR_set_mark();
        /* SHA-1 and SHA-224 pass the offline probe (libssl drops a whole
         * certificate whose key cannot do TLS 1.2's default SHA-1); the key
         * server decides per key.  MD5 and SHA-3 never leave. */
        PT_CHECK(EVP_DigestSignInit_ex(m, NULL, "SHA1", ctx, NULL, lk, NULL) == 1);
        PT_CHECK(EVP_DigestSignInit_ex(m, NULL, "SHA224", ctx, NULL, lk, NULL) == 1);
        PT_CHECK(EVP_DigestSignInit_ex(m, NULL, "MD5", ctx, NULL, lk, NULL) != 1);
        PT_CHECK(EVP_DigestSignInit_ex(m, NULL, "SHA3-256", ctx, NULL, lk, NULL) != 1);
        ERR_pop_to_mark();
    }
    PT_CHECK(EVP_DigestSignInit_ex(m, &pc, is_ed ? NULL : "SHA256", ctx, NULL, lk, NULL) == 1);
    t0 = pt_now();
    PT_CHECK(EVP_DigestSign(m, NULL, &siglen, (const unsigned char *)"x", 1) == 1);
    PT_CHECK(siglen == (size_t)EVP_PKEY_get_size(local));
    PT_CHECK(ERR_peek_error() == 0);

    /* Key server down: a clear error in bounded time. */
    siglen = sizeof(sig);
    PT_CHECK(EVP_DigestSign(m, sig, &siglen, (const unsigned char *)"x", 1) != 1);
    PT_CHECK(pt_now() - t0 < 5.0);
    pt_errors(errs, sizeof(errs));
    fprintf(stderr, "%s server-down error: %s", alg, errs);
    PT_CHECK(strstr(errs, "no key server could be reached") != NULL
             || strstr(errs, "did not answer in time") != NULL);
    PT_CHECK(strstr(errs, "lurk") != NULL);

    EVP_MD_CTX_free(m);
    X509_free(cert);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(lk);
    EVP_PKEY_free(local);
    OPENSSL_free(spki_local);
    OPENSSL_free(spki_lurk);
}

/* A reference naming one key but carrying another's public key. */
static void pt_mismatch(OSSL_LIB_CTX *ctx, const char *dir)
{
    EVP_PKEY *a = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *b = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    unsigned char *sa = NULL, *sb = NULL, *der = NULL;
    int la = i2d_PUBKEY(a, &sa), lb = i2d_PUBKEY(b, &sb);
    lurk_keyref ra, rb;
    size_t derlen = 0;
    char path[512], errs[4096];
    FILE *f;
    EVP_PKEY *k;

    lurk_keyref_init(&ra);
    lurk_keyref_init(&rb);
    PT_REQUIRE(lurk_keyref_from_spki(sa, (size_t)la, NULL, NULL, 0, &ra) == LURK_OK);
    PT_REQUIRE(lurk_keyref_from_spki(sb, (size_t)lb, NULL, NULL, 0, &rb) == LURK_OK);
    memcpy(ra.key_id, rb.key_id, sizeof(ra.key_id));
    ra.id = rb.id;
    snprintf(path, sizeof(path), "%s/mismatch.key", dir);
    if (lurk_keyref_encode_der(&ra, &der, &derlen) == LURK_OK) {
        f = fopen(path, "w");
        PT_REQUIRE(f != NULL);
        PT_REQUIRE(PEM_write(f, LURK_KEYREF_PEM_LABEL, "", der, (long)derlen) > 0);
        fclose(f);
        k = pt_read_key(ctx, path);
        PT_CHECK(k == NULL);
        pt_errors(errs, sizeof(errs));
        fprintf(stderr, "mismatch error: %s", errs);
        PT_CHECK(strstr(errs, "does not match") != NULL);
        EVP_PKEY_free(k);
    } else {
        fprintf(stderr, "mismatch: the encoder itself refuses (fine)\n");
    }
    free(der);
    lurk_keyref_clear(&ra);
    lurk_keyref_clear(&rb);
    OPENSSL_free(sa);
    OPENSSL_free(sb);
    EVP_PKEY_free(a);
    EVP_PKEY_free(b);
}

/* Foreign keys still load through default; our decoders leave no errors. */
static void pt_foreign(OSSL_LIB_CTX *ctx, const char *dir)
{
    EVP_PKEY *local = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    char path[512];
    FILE *f;
    EVP_PKEY *k;

    snprintf(path, sizeof(path), "%s/plain.pem", dir);
    f = fopen(path, "w");
    PT_REQUIRE(f != NULL && PEM_write_PrivateKey(f, local, NULL, NULL, 0, NULL, NULL) == 1);
    fclose(f);
    ERR_clear_error();
    k = pt_read_key(ctx, path);
    PT_CHECK(k != NULL && strcmp(pt_provider_of(k), "default") == 0);
    PT_CHECK(ERR_peek_error() == 0);
    EVP_PKEY_free(k);
    EVP_PKEY_free(local);
}

/* Credential files the client library accepts (nothing will check them:
 * the server is down). */
static void pt_dummy_creds(const char *dir)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = pt_self_signed(k);
    const char *names[] = { "ca.crt", "client.crt" };
    char path[512];
    FILE *f;

    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        f = fopen(path, "w");
        PT_REQUIRE(f != NULL && PEM_write_X509(f, x) == 1);
        fclose(f);
    }
    snprintf(path, sizeof(path), "%s/client.key", dir);
    f = fopen(path, "w");
    PT_REQUIRE(f != NULL && PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(k);
}

int main(void)
{
    char dir[] = "/tmp/lurk-prov-offline-XXXXXX";
    char cnf[600], servers[64];
    OSSL_LIB_CTX *ctx;

    PT_REQUIRE(mkdtemp(dir) != NULL);
    snprintf(servers, sizeof(servers), "https://127.0.0.1:%d", pt_closed_port());
    snprintf(cnf, sizeof(cnf), "%s/openssl.cnf", dir);
    pt_dummy_creds(dir);
    pt_write_cnf(cnf, servers, dir);
    ctx = pt_libctx(cnf);

    pt_one_type(ctx, dir, "RSA", NULL, 2048);
    pt_one_type(ctx, dir, "EC", "prime256v1", 0);
    pt_one_type(ctx, dir, "EC", "secp384r1", 0);
    pt_one_type(ctx, dir, "ED25519", NULL, 0);
    pt_mismatch(ctx, dir);
    pt_foreign(ctx, dir);

    OSSL_LIB_CTX_free(ctx);
    if (pt_failures == 0) {
        char cmd[600];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0) {
            fprintf(stderr, "could not remove %s\n", dir);
        }
    }
    printf("%s: %d failure(s)\n", "test_offline", pt_failures);
    return pt_failures == 0 ? 0 : 1;
}
