/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_premaster.c - TLS 1.2 RSA premaster decryption through lurk.so gives
 * the outcome the default provider gives with the key file, for every shape
 * of ciphertext a client can send (issue 9).
 *
 * Run by with_server.sh (argv[1] = the directory tests/lib/keyserver.sh made:
 * keys/NAME.pem the key files, NAME.key the lurk references).  Each case runs
 * EVP_PKEY_decrypt with RSA_PKCS1_WITH_TLS_PADDING (as libssl does) once with
 * the lurk key and once with the key file, and asserts the same class: either
 * both fail (libssl: decrypt_error) or both succeed with 48 bytes (libssl
 * carries on; a random premaster makes the client see bad_record_mac).  When
 * the ciphertext holds a real premaster both must return it.  OpenSSL 3.0
 * with a key file: more bytes than the modulus or a number >= n fail; fewer
 * bytes are the same number with leading zeros.
 */
#include "prov_test.h"

#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/rand.h>

#define PT_PMS 48

typedef struct {
    int ok;
    size_t len;
    unsigned char out[512];
} pt_result;

static pt_result pt_decrypt(OSSL_LIB_CTX *ctx, EVP_PKEY *key, unsigned version,
                            const unsigned char *in, size_t inlen)
{
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(ctx, key, NULL);
    OSSL_PARAM params[2];
    pt_result r = { 0, 0, { 0 } };

    params[0] = OSSL_PARAM_construct_uint(OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION, &version);
    params[1] = OSSL_PARAM_construct_end();
    r.len = sizeof(r.out);
    if (pc != NULL && EVP_PKEY_decrypt_init(pc) == 1
        && EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_WITH_TLS_PADDING) == 1
        && EVP_PKEY_CTX_set_params(pc, params) == 1
        && EVP_PKEY_decrypt(pc, r.out, &r.len, in, inlen) == 1) {
        r.ok = 1;
    } else {
        r.len = 0;
    }
    ERR_clear_error();
    EVP_PKEY_CTX_free(pc);
    return r;
}

/* One case: lurk and the key file agree; `expect` is 1 (48 bytes) or 0
 * (failure), `pms` the premaster both must return, or NULL. */
static void pt_case(OSSL_LIB_CTX *ctx, const char *name, EVP_PKEY *lurk, EVP_PKEY *file,
                    unsigned version, const unsigned char *in, size_t inlen, int expect,
                    const unsigned char *pms)
{
    pt_result a = pt_decrypt(ctx, lurk, version, in, inlen);
    pt_result b = pt_decrypt(ctx, file, version, in, inlen);

    printf("%-34s %3zu bytes: key file %s, lurk %s\n", name, inlen,
           b.ok ? "48 bytes" : "fails", a.ok ? "48 bytes" : "fails");
    PT_CHECK(b.ok == expect);
    PT_CHECK(a.ok == b.ok);
    if (expect) {
        PT_CHECK(a.len == PT_PMS && b.len == PT_PMS);
    }
    if (pms != NULL) {
        PT_CHECK(memcmp(a.out, pms, PT_PMS) == 0 && memcmp(b.out, pms, PT_PMS) == 0);
    } else if (expect) {
        /* random premasters: not the same on both sides */
        PT_CHECK(memcmp(a.out, b.out, PT_PMS) != 0);
    }
}

static size_t pt_encrypt(OSSL_LIB_CTX *ctx, EVP_PKEY *pub, const unsigned char *pms,
                         unsigned char *ct, size_t ctsize)
{
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(ctx, pub, "provider=default");
    size_t len = ctsize;

    PT_REQUIRE(pc != NULL && EVP_PKEY_encrypt_init(pc) == 1
               && EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1
               && EVP_PKEY_encrypt(pc, ct, &len, pms, PT_PMS) == 1);
    EVP_PKEY_CTX_free(pc);
    return len;
}

static void pt_key(OSSL_LIB_CTX *ctx, const char *dir, const char *name)
{
    char path[600];
    EVP_PKEY *lurk, *file, *pub;
    unsigned char pms[PT_PMS], ct[513], buf[513];
    BIGNUM *n = NULL;
    size_t k;
    int tries;

    printf("-- %s\n", name);
    snprintf(path, sizeof(path), "%s/%s.key", dir, name);
    lurk = pt_read_key(ctx, path);
    PT_REQUIRE(lurk != NULL && strcmp(pt_provider_of(lurk), "lurk") == 0);
    snprintf(path, sizeof(path), "%s/keys/%s.pem", dir, name);
    file = pt_read_key(ctx, path);
    PT_REQUIRE(file != NULL && strcmp(pt_provider_of(file), "default") == 0);
    pub = pt_public_copy(ctx, lurk);
    PT_REQUIRE(EVP_PKEY_eq(pub, file) == 1);
    PT_REQUIRE(EVP_PKEY_get_bn_param(file, OSSL_PKEY_PARAM_RSA_N, &n) == 1);

    PT_REQUIRE(RAND_bytes(pms, PT_PMS) == 1);
    pms[0] = 0x03;
    pms[1] = 0x03;
    k = pt_encrypt(ctx, pub, pms, ct, sizeof(ct));
    PT_REQUIRE(k == (size_t)EVP_PKEY_get_size(file) && k + 1 <= sizeof(buf));

    pt_case(ctx, "valid", lurk, file, 0x0303, ct, k, 1, pms);
    pt_case(ctx, "wrong client version", lurk, file, 0x0302, ct, k, 1, NULL);
    memcpy(buf, ct, k);
    buf[k - 1] ^= 0x01;
    pt_case(ctx, "bad padding", lurk, file, 0x0303, buf, k, 1, NULL);
    pt_case(ctx, "1 byte short (last dropped)", lurk, file, 0x0303, ct, k - 1, 1, NULL);
    pt_case(ctx, "1 byte short (first dropped)", lurk, file, 0x0303, ct + 1, k - 1, 1, NULL);
    pt_case(ctx, "much shorter (16 bytes)", lurk, file, 0x0303, ct, 16, 1, NULL);
    pt_case(ctx, "empty", lurk, file, 0x0303, ct, 0, 1, NULL);
    buf[0] = 0x00;
    memcpy(buf + 1, ct, k);
    pt_case(ctx, "1 byte long (leading zero)", lurk, file, 0x0303, buf, k + 1, 0, NULL);
    memcpy(buf, ct, k);
    buf[k] = 0x00;
    pt_case(ctx, "1 byte long (trailing zero)", lurk, file, 0x0303, buf, k + 1, 0, NULL);
    PT_REQUIRE(BN_bn2binpad(n, buf, (int)k) == (int)k);
    pt_case(ctx, "k bytes, == n", lurk, file, 0x0303, buf, k, 0, NULL);
    memset(buf, 0xff, k);
    pt_case(ctx, "k bytes, 0xff..ff (> n)", lurk, file, 0x0303, buf, k, 0, NULL);
    PT_REQUIRE(BN_sub_word(n, 1) == 1 && BN_bn2binpad(n, buf, (int)k) == (int)k);
    pt_case(ctx, "k bytes, n - 1", lurk, file, 0x0303, buf, k, 1, NULL);

    /* a real premaster whose ciphertext starts with 0x00, sent without it
     * (clients that strip leading zeros): both decrypt it */
    for (tries = 0; tries < 5000; tries++) {
        k = pt_encrypt(ctx, pub, pms, ct, sizeof(ct));
        if (ct[0] == 0x00) {
            break;
        }
    }
    PT_CHECK(tries < 5000);
    if (tries < 5000) {
        pt_case(ctx, "valid, leading zero stripped", lurk, file, 0x0303, ct + 1, k - 1, 1,
                pms);
    }

    BN_free(n);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(file);
    EVP_PKEY_free(lurk);
}

int main(int argc, char **argv)
{
    char path[600];
    OSSL_LIB_CTX *ctx;

    PT_REQUIRE(argc == 2);
    alarm(120);
    snprintf(path, sizeof(path), "%s/openssl.cnf", argv[1]);
    ctx = pt_libctx(path);
    pt_key(ctx, argv[1], "rsa2048");
    pt_key(ctx, argv[1], "rsa3072");
    OSSL_LIB_CTX_free(ctx);
    if (pt_failures != 0) {
        fprintf(stderr, "%d check(s) failed\n", pt_failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
