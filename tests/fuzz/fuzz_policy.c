/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_policy.c - the TLS structure checks of a tls-server key's signing
 * policy (server/policy.c): the TLS 1.3 server CertificateVerify input and
 * the TLS 1.2 ServerKeyExchange input (ECDHE on P-256/384/521, X25519 and
 * X448; DHE on the standard groups).  Attacker-chosen bytes of a Sign
 * request reach them.  Never crash; a refusal always says why; the two
 * forms never both match; and what is accepted is checked again another
 * way: a P-curve share with OpenSSL's own public key check, a DHE input with
 * BIGNUMs (a prime of a standard size, generator 2, 1 < Ys < p - 1).
 */
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "fuzz.h"
#include "lurk_srv.h"

#define RANDOMS 64

static void check_ecdhe(const uint8_t *d, size_t n)
{
    unsigned curve = ((unsigned) d[RANDOMS + 1] << 8) | d[RANDOMS + 2];
    const char *group = curve == 0x17   ? "P-256"
                        : curve == 0x18 ? "P-384"
                        : curve == 0x19 ? "P-521"
                                        : NULL;
    size_t len = d[RANDOMS + 3];
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM params[3];

    FUZZ_CHECK(d[RANDOMS] == 3 && n == RANDOMS + 4 + len);
    if (group == NULL) {
        FUZZ_CHECK((curve == 0x1d && len == 32) || (curve == 0x1e && len == 56));
        return;
    }
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *) group, 0);
    params[1] =
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *) (d + RANDOMS + 4), len);
    params[2] = OSSL_PARAM_construct_end();
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    FUZZ_CHECK(ctx != NULL && EVP_PKEY_fromdata_init(ctx) == 1);
    FUZZ_CHECK(EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1);
    EVP_PKEY_CTX_free(ctx);
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    FUZZ_CHECK(ctx != NULL && EVP_PKEY_public_check(ctx) == 1);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pkey);
}

static BIGNUM *vec(const uint8_t *d, size_t n, size_t *off)
{
    size_t len;
    BIGNUM *bn;

    FUZZ_CHECK(n - *off >= 2);
    len = ((size_t) d[*off] << 8) | d[*off + 1];
    FUZZ_CHECK(len > 0 && len <= n - *off - 2);
    bn = BN_bin2bn(d + *off + 2, (int) len, NULL);
    FUZZ_CHECK(bn != NULL);
    *off += 2 + len;
    return bn;
}

static void check_dhe(const uint8_t *d, size_t n)
{
    size_t off = RANDOMS;
    BIGNUM *p = vec(d, n, &off);
    BIGNUM *g = vec(d, n, &off);
    BIGNUM *ys = vec(d, n, &off);
    BIGNUM *pm1 = BN_dup(p);
    int bits = BN_num_bits(p);

    FUZZ_CHECK(off == n && pm1 != NULL);
    FUZZ_CHECK(bits == 2048 || bits == 3072 || bits == 4096 || bits == 6144 || bits == 8192);
    FUZZ_CHECK(BN_is_odd(p) && BN_is_word(g, 2));
    FUZZ_CHECK(BN_sub_word(pm1, 1) == 1);
    FUZZ_CHECK(BN_cmp(ys, BN_value_one()) > 0 && BN_cmp(ys, pm1) < 0);
    BN_free(p);
    BN_free(g);
    BN_free(ys);
    BN_free(pm1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[256];
    int cv, ske;

    cv = lurk_srv_is_tls13_server_cv(data, size);
    why[0] = '\0';
    ske = lurk_srv_is_tls12_ske(data, size, NULL, why, sizeof(why));
    FUZZ_CHECK(cv == 0 || cv == 1);
    FUZZ_CHECK(ske == 0 || ske == 1);
    FUZZ_CHECK(!(cv && ske));
    FUZZ_CHECK(ske || why[0] != '\0');
    FUZZ_CHECK(strlen(why) < sizeof(why));
    if (ske) {
        if (data[RANDOMS] >= 1 && data[RANDOMS] <= 3 && size <= RANDOMS + 4 + 255) {
            check_ecdhe(data, size);
        } else {
            check_dhe(data, size);
        }
    }
    return 0;
}
