/* SPDX-License-Identifier: Apache-2.0 */
/*
 * prov_test.h - small helpers shared by the provider test programs: checks
 * that print where they failed, a private OSSL_LIB_CTX with lurk.so loaded
 * from an openssl.cnf, key reference files made from local public keys, and
 * verification with OpenSSL's default provider.
 */
#ifndef LURK_PROV_TEST_H
#define LURK_PROV_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "lurk_keyref.h"

static int pt_failures;

#define PT_CHECK(cond)                                                           \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);      \
            ERR_print_errors_fp(stderr);                                         \
            pt_failures++;                                                       \
        }                                                                        \
    } while (0)

#define PT_REQUIRE(cond)                                                         \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "FATAL %s:%d: %s\n", __FILE__, __LINE__, #cond);     \
            ERR_print_errors_fp(stderr);                                         \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

/* A private library context configured by `cnf` (default + lurk active). */
static inline OSSL_LIB_CTX *pt_libctx(const char *cnf)
{
    OSSL_LIB_CTX *ctx = OSSL_LIB_CTX_new();

    PT_REQUIRE(ctx != NULL);
    PT_REQUIRE(OSSL_LIB_CTX_load_config(ctx, cnf) == 1);
    PT_REQUIRE(OSSL_PROVIDER_available(ctx, "lurk") == 1);
    PT_REQUIRE(OSSL_PROVIDER_available(ctx, "default") == 1);
    return ctx;
}

/* Writes an openssl.cnf that loads the built lurk.so with these settings. */
static inline void pt_write_cnf(const char *path, const char *servers, const char *dir)
{
    const char *module = getenv("LURK_PROVIDER");
    FILE *f = fopen(path, "w");

    PT_REQUIRE(module != NULL && f != NULL);
    fprintf(f,
            "openssl_conf = openssl_init\n[openssl_init]\nproviders = provider_sect\n"
            "alg_section = evp_properties\n[provider_sect]\ndefault = default_sect\n"
            "lurk = lurk_sect\n[default_sect]\nactivate = 1\n[lurk_sect]\nmodule = %s\n"
            "activate = 1\nlurk-servers = %s\n",
            module, servers);
    if (dir != NULL) {
        fprintf(f, "lurk-ca = %s/ca.crt\nlurk-cert = %s/client.crt\nlurk-key = %s/client.key\n",
                dir, dir, dir);
    }
    fprintf(f, "lurk-connect-timeout = 500\nlurk-timeout = 2000\n"
               "[evp_properties]\ndefault_properties = ?provider=default\n");
    PT_REQUIRE(fclose(f) == 0);
}

/* Reads a key reference or any PEM private key into `ctx`. */
static inline EVP_PKEY *pt_read_key(OSSL_LIB_CTX *ctx, const char *path)
{
    BIO *b = BIO_new_file(path, "r");
    EVP_PKEY *k = NULL;

    if (b != NULL) {
        k = PEM_read_bio_PrivateKey_ex(b, NULL, NULL, NULL, ctx, NULL);
    }
    BIO_free(b);
    return k;
}

/* The public half of `k` as a default-provider key in `ctx`. */
static inline EVP_PKEY *pt_public_copy(OSSL_LIB_CTX *ctx, EVP_PKEY *k)
{
    unsigned char *der = NULL;
    const unsigned char *p;
    int len = i2d_PUBKEY(k, &der);
    EVP_PKEY *pub = NULL;

    PT_REQUIRE(len > 0);
    p = der;
    pub = d2i_PUBKEY_ex(NULL, &p, len, ctx, "provider=default");
    OPENSSL_free(der);
    PT_REQUIRE(pub != NULL);
    return pub;
}

static inline const char *pt_provider_of(const EVP_PKEY *k)
{
    const OSSL_PROVIDER *p = EVP_PKEY_get0_provider(k);

    return p != NULL ? OSSL_PROVIDER_get0_name(p) : "(legacy)";
}

/* Collects the error queue into one string (and clears it). */
static inline void pt_errors(char *out, size_t outlen)
{
    unsigned long e;
    const char *data = NULL;
    int flags = 0;
    size_t used = 0;

    out[0] = '\0';
    while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        char buf[256];
        int n;

        ERR_error_string_n(e, buf, sizeof(buf));
        n = snprintf(out + used, outlen - used, "%s:%s\n", buf,
                     (flags & ERR_TXT_STRING) ? data : "");
        if (n < 0 || (size_t)n >= outlen - used) {
            break;
        }
        used += (size_t)n;
    }
}

/* Digest-signs `msg` with `key` and verifies with `pub` (default provider). */
static inline int pt_sign_verify(OSSL_LIB_CTX *ctx, EVP_PKEY *key, EVP_PKEY *pub,
                                 const char *md, int pss, const unsigned char *msg,
                                 size_t msglen)
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    unsigned char sig[1024];
    size_t siglen = 0;
    int ok = 0;

    if (EVP_DigestSignInit_ex(m, &pc, md, ctx, NULL, key, NULL) != 1) {
        goto end;
    }
    if (pss && (EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) != 1
                || EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) != 1)) {
        goto end;
    }
    if (EVP_DigestSign(m, NULL, &siglen, msg, msglen) != 1 || siglen > sizeof(sig)) {
        goto end;
    }
    if (EVP_DigestSign(m, sig, &siglen, msg, msglen) != 1) {
        goto end;
    }
    EVP_MD_CTX_free(m);
    m = EVP_MD_CTX_new();
    pc = NULL;
    if (EVP_DigestVerifyInit_ex(m, &pc, md, ctx, "provider=default", pub, NULL) != 1) {
        goto end;
    }
    if (pss && (EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) != 1
                || EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) != 1)) {
        goto end;
    }
    ok = EVP_DigestVerify(m, sig, siglen, msg, msglen) == 1;

end:
    EVP_MD_CTX_free(m);
    return ok;
}

#endif /* LURK_PROV_TEST_H */
