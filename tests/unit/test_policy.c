/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_policy.c - the key server's policy (server/policy.c): the two TLS
 * signing-input recognisers and the policy x operation decision table,
 * with real keys (tests/vectors/server/) in the server's kind of library
 * context (its own, default provider only).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "lurk_srv.h"
#include "srv_fixture.h"


static OSSL_LIB_CTX *libctx;
static LURK_SRV_KEYSTORE *store;
static srv_fixture fx;

/* ---- fixtures built once in main (inherited by forked tests) ----------- */


static const LURK_SRV_KEY *key_named(const char *name)
{
    return srv_fixture_key_named(&fx, name);
}

/* Uncompressed public point of a fresh key on `curve`. */
static size_t ec_point(const char *curve, unsigned char *out, size_t max)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(libctx, NULL, "EC", curve);
    size_t len = 0;

    if (k == NULL || !EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
                                                      out, max, &len)) {
        len = 0;
    }
    EVP_PKEY_free(k);
    return len;
}

/* DER SPKI of a fresh EC key on `curve` (peer keys for Agree). */
static size_t ec_spki(const char *curve, unsigned char *out, size_t max)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(libctx, NULL, "EC", curve);
    unsigned char *der = NULL;
    int len = k != NULL ? i2d_PUBKEY(k, &der) : -1;
    size_t n = 0;

    if (len > 0 && (size_t)len <= max) {
        memcpy(out, der, (size_t)len);
        n = (size_t)len;
    }
    OPENSSL_free(der);
    EVP_PKEY_free(k);
    return n;
}

/* ServerKeyExchange signing input: randoms || curve_type || curve || len || point */
static size_t make_ske(unsigned char *out, unsigned curve_type, unsigned curve,
                       const unsigned char *pt, size_t ptlen)
{
    size_t n = 0;

    for (; n < 64; n++) {
        out[n] = (unsigned char)(n * 7 + 1);
    }
    out[n++] = (unsigned char)curve_type;
    out[n++] = (unsigned char)(curve >> 8);
    out[n++] = (unsigned char)curve;
    out[n++] = (unsigned char)ptlen;
    memcpy(out + n, pt, ptlen);
    return n + ptlen;
}

/* ---- DHE (RFC 5246 7.4.3) inputs ---------------------------------------- */

/* A group's p and g and a fresh key's Ys (as libssl sends them: p and g
 * without leading zeros, Ys left-padded to the length of p). */
typedef struct {
    unsigned char p[1024];
    size_t p_len;
    unsigned char g[4];
    size_t g_len;
    unsigned char ys[1024];
    size_t ys_len;
} dh_share;

static int dh_share_new(const char *group, dh_share *s)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(libctx, "DH", NULL);
    EVP_PKEY *k = NULL;
    BIGNUM *p = NULL;
    BIGNUM *g = NULL;
    BIGNUM *y = NULL;
    OSSL_PARAM params[2];
    int ok = 0;

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)group, 0);
    params[1] = OSSL_PARAM_construct_end();
    if (ctx == NULL || EVP_PKEY_keygen_init(ctx) <= 0 || !EVP_PKEY_CTX_set_params(ctx, params)
        || EVP_PKEY_keygen(ctx, &k) <= 0 || !EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_FFC_P, &p)
        || !EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_FFC_G, &g)
        || !EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_PUB_KEY, &y)) {
        goto end;
    }
    s->p_len = (size_t)BN_bn2bin(p, s->p);
    s->g_len = (size_t)BN_bn2bin(g, s->g);
    s->ys_len = s->p_len;
    ok = BN_bn2binpad(y, s->ys, (int)s->ys_len) == (int)s->ys_len;
end:
    BN_free(p);
    BN_free(g);
    BN_free(y);
    EVP_PKEY_free(k);
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

static size_t put_vec(unsigned char *out, const unsigned char *v, size_t len)
{
    out[0] = (unsigned char)(len >> 8);
    out[1] = (unsigned char)len;
    memcpy(out + 2, v, len);
    return 2 + len;
}

/* DHE ServerKeyExchange signing input: randoms || dh_p || dh_g || dh_Ys */
static size_t make_dhe(unsigned char *out, const unsigned char *p, size_t p_len,
                       const unsigned char *g, size_t g_len, const unsigned char *ys,
                       size_t ys_len)
{
    size_t n = 0;

    for (; n < 64; n++) {
        out[n] = (unsigned char)(n * 5 + 3);
    }
    n += put_vec(out + n, p, p_len);
    n += put_vec(out + n, g, g_len);
    n += put_vec(out + n, ys, ys_len);
    return n;
}

/* a = b + delta (delta -2..+1), same length, big-endian; b odd and large. */
static void be_add(unsigned char *a, const unsigned char *b, size_t len, int delta)
{
    int carry = delta;

    memcpy(a, b, len);
    for (size_t i = len; i-- > 0 && carry != 0;) {
        int v = a[i] + carry;

        a[i] = (unsigned char)(v & 0xff);
        carry = v < 0 ? -1 : v >> 8;
    }
}

static const char *const dh_groups[] = {
    "ffdhe2048", "ffdhe3072", "ffdhe4096", "ffdhe6144", "ffdhe8192",
    "modp_2048", "modp_3072", "modp_4096", "modp_6144", "modp_8192",
};
#define N_DH_GROUPS (sizeof(dh_groups) / sizeof(dh_groups[0]))

/* ---- RFC 7748 low-order points ------------------------------------------ */

/* The X25519 u-coordinates of small order, little-endian (RFC 7748,
 * libsodium's list), top bit clear; each is refused with it set too. */
static const unsigned char x25519_low[][32] = {
    { 0 },
    { 0x01 },
    { 0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4,
      0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
      0xb8, 0x00 },
    { 0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef,
      0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f,
      0x11, 0x57 },
};

/* X25519: p - 1, p, p + 1 (p = 2^255 - 19) */
static void x25519_p_plus(unsigned char *u, int delta)
{
    memset(u, 0xff, 32);
    u[0] = (unsigned char)(0xed + delta);
    u[31] = 0x7f;
}

/* X448: 0, 1, p - 1, p, p + 1 (p = 2^448 - 2^224 - 1) */
static void x448_low(unsigned char *u, int which)
{
    memset(u, 0, 56);
    switch (which) {
    case 0:
        break;
    case 1:
        u[0] = 0x01;
        break;
    default: /* 2, 3, 4: p - 1, p, p + 1 */
        memset(u, 0xff, 56);
        u[28] = 0xfe;
        if (which == 2) {
            u[0] = 0xfe;
        } else if (which == 4) {
            memset(u, 0x00, 28);
            u[28] = 0xff;
        }
        break;
    }
}

/* Raw public key of a fresh X25519 / X448 key. */
static size_t ecx_share(const char *alg, unsigned char *out, size_t max)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(libctx, NULL, alg);
    size_t len = max;

    if (k == NULL || !EVP_PKEY_get_raw_public_key(k, out, &len)) {
        len = 0;
    }
    EVP_PKEY_free(k);
    return len;
}

/* 1 when OpenSSL derives a shared secret with this peer share (it refuses
 * the all-zero secret a low-order point gives). */
static int ecx_derives(const char *alg, const unsigned char *u, size_t len)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(libctx, NULL, alg);
    EVP_PKEY *peer = EVP_PKEY_new_raw_public_key_ex(libctx, alg, NULL, u, len);
    EVP_PKEY_CTX *ctx = k != NULL ? EVP_PKEY_CTX_new_from_pkey(libctx, k, NULL) : NULL;
    unsigned char secret[64];
    size_t slen = sizeof(secret);
    int ok = ctx != NULL && peer != NULL && EVP_PKEY_derive_init(ctx) > 0
             && EVP_PKEY_derive_set_peer(ctx, peer) > 0 && EVP_PKEY_derive(ctx, secret, &slen) > 0;

    ERR_clear_error();
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(peer);
    EVP_PKEY_free(k);
    return ok;
}

static size_t make_cv(unsigned char *out, const char *context, size_t hash_len)
{
    size_t n = 0;

    memset(out, 0x20, 64);
    n = 64;
    memcpy(out + n, context, strlen(context));
    n += strlen(context);
    out[n++] = 0x00;
    memset(out + n, 0xab, hash_len);
    return n + hash_len;
}

#define SERVER_CV "TLS 1.3, server CertificateVerify"

/* ---- TLS 1.3 CertificateVerify recogniser ------------------------------ */

START_TEST(test_tls13_cv)
{
    unsigned char buf[256];
    size_t n;

    n = make_cv(buf, SERVER_CV, 32);
    ck_assert_int_eq(n, 130);
    ck_assert_int_eq(lurk_srv_is_tls13_server_cv(buf, n), 1);
    n = make_cv(buf, SERVER_CV, 48);
    ck_assert_int_eq(lurk_srv_is_tls13_server_cv(buf, n), 1);

    /* transcript hashes of other lengths */
    static const size_t bad_lens[] = { 0, 20, 31, 33, 47, 49, 64 };
    for (size_t i = 0; i < sizeof(bad_lens) / sizeof(bad_lens[0]); i++) {
        n = make_cv(buf, SERVER_CV, bad_lens[i]);
        ck_assert_msg(!lurk_srv_is_tls13_server_cv(buf, n), "hash length %zu accepted",
                      bad_lens[i]);
    }
    /* the client's context string, TLS 1.2 wording, case change */
    n = make_cv(buf, "TLS 1.3, client CertificateVerify", 32);
    ck_assert_int_eq(lurk_srv_is_tls13_server_cv(buf, n), 0);
    n = make_cv(buf, "TLS 1.3, Server CertificateVerify", 32);
    ck_assert_int_eq(lurk_srv_is_tls13_server_cv(buf, n), 0);
    /* the padding: each byte matters */
    for (size_t i = 0; i < 64; i += 21) {
        n = make_cv(buf, SERVER_CV, 32);
        buf[i] = 0x00;
        ck_assert_msg(!lurk_srv_is_tls13_server_cv(buf, n), "pad byte %zu not checked", i);
    }
    /* the separator */
    n = make_cv(buf, SERVER_CV, 32);
    buf[64 + strlen(SERVER_CV)] = 0x01;
    ck_assert_int_eq(lurk_srv_is_tls13_server_cv(buf, n), 0);
    /* no padding at all (the context string right away) */
    n = make_cv(buf, SERVER_CV, 32);
    ck_assert_int_eq(lurk_srv_is_tls13_server_cv(buf + 64, n - 64), 0);
    ck_assert_int_eq(lurk_srv_is_tls13_server_cv(NULL, 0), 0);
}
END_TEST

/* ---- TLS 1.2 ServerKeyExchange recogniser ------------------------------ */

START_TEST(test_tls12_ske)
{
    unsigned char pt[200];
    unsigned char buf[400];
    char why[128];
    size_t ptlen;
    size_t n;

    static const struct {
        const char *curve;
        unsigned id;
    } nist[] = { { "P-256", 0x0017 }, { "P-384", 0x0018 }, { "P-521", 0x0019 } };

    for (size_t i = 0; i < 3; i++) {
        ptlen = ec_point(nist[i].curve, pt, sizeof(pt));
        ck_assert_uint_gt(ptlen, 0);
        n = make_ske(buf, 3, nist[i].id, pt, ptlen);
        why[0] = '\0';
        ck_assert_msg(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)),
                      "%s point refused: %s", nist[i].curve, why);

        /* Y changed: the point leaves the curve */
        buf[n - 1] ^= 0x01;
        ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), 0);
        ck_assert_ptr_nonnull(strstr(why, "not on the curve"));
        buf[n - 1] ^= 0x01;

        /* trailing byte */
        buf[n] = 0;
        ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n + 1, libctx, why, sizeof(why)), 0);
        /* truncated */
        ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n - 1, libctx, why, sizeof(why)), 0);
    }

    /* P-256 point announced as P-384: wrong length for that curve */
    ptlen = ec_point("P-256", pt, sizeof(pt));
    n = make_ske(buf, 3, 0x0018, pt, ptlen);
    ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), 0);

    /* compressed form (33 bytes) is not TLS 1.2's */
    pt[0] = 0x02;
    n = make_ske(buf, 3, 0x0017, pt, 33);
    ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), 0);
    /* right length but not 0x04 */
    n = make_ske(buf, 3, 0x0017, pt, 65);
    ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), 0);
    ck_assert_ptr_nonnull(strstr(why, "uncompressed"));

    /* x25519 / x448: 32 / 56 bytes (random ones are not low-order) */
    RAND_bytes(pt, 56);
    n = make_ske(buf, 3, 0x001d, pt, 32);
    ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), 1);
    n = make_ske(buf, 3, 0x001e, pt, 56);
    ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), 1);
    n = make_ske(buf, 3, 0x001d, pt, 31);
    ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), 0);
    n = make_ske(buf, 3, 0x001d, pt, 32);
    ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n - 1, libctx, why, sizeof(why)), 0);

    /* curve types explicit_prime(1), explicit_char2(2) */
    n = make_ske(buf, 1, 0x001d, pt, 32);
    ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), 0);
    ck_assert_ptr_nonnull(strstr(why, "named_curve"));
    n = make_ske(buf, 2, 0x001d, pt, 32);
    ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), 0);

    /* unknown / unsupported named curves: secp224r1 (0x0015), brainpool, ffdhe2048 */
    static const unsigned others[] = { 0x0015, 0x0016, 0x001a, 0x0100 };
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        n = make_ske(buf, 3, others[i], pt, 32);
        ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), 0);
    }

    /* too short for the header; a TLS 1.3 CV is not a SKE */
    ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, 67, libctx, why, sizeof(why)), 0);
    ck_assert_int_eq(lurk_srv_is_tls12_ske(NULL, 0, libctx, why, sizeof(why)), 0);
    n = make_cv(buf, SERVER_CV, 32);
    ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), 0);
}
END_TEST

START_TEST(test_tls12_ske_dhe)
{
    static unsigned char buf[64 + 6 + 3 * 1024 + 8];
    static unsigned char v[1024 + 2];
    static dh_share sh;
    const char *group = dh_groups[_i];
    char why[160];
    size_t n;
    size_t pl;
    size_t yl;

    ck_assert_msg(dh_share_new(group, &sh), "no %s key from OpenSSL", group);
    pl = sh.p_len;

    /* as libssl sends it: Ys padded to the length of p */
    n = make_dhe(buf, sh.p, pl, sh.g, sh.g_len, sh.ys, sh.ys_len);
    why[0] = '\0';
    ck_assert_msg(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), "%s refused: %s",
                  group, why);

    /* and without the padding (Ys as its significant bytes) */
    yl = sh.ys_len;
    while (yl > 1 && sh.ys[sh.ys_len - yl] == 0) {
        yl--;
    }
    n = make_dhe(buf, sh.p, pl, sh.g, sh.g_len, sh.ys + sh.ys_len - yl, yl);
    ck_assert_msg(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), "%s unpadded: %s",
                  group, why);

    /* the edges of 2 <= Ys <= p - 2 */
    v[0] = 2;
    n = make_dhe(buf, sh.p, pl, sh.g, sh.g_len, v, 1);
    ck_assert_msg(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), "%s Ys=2: %s",
                  group, why);
    be_add(v, sh.p, pl, -2);
    n = make_dhe(buf, sh.p, pl, sh.g, sh.g_len, v, pl);
    ck_assert_msg(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), "%s Ys=p-2: %s",
                  group, why);

    /* Ys = 0, 1 (one byte and padded to p), p - 1, p, p + 1 */
    for (int y = 0; y <= 1; y++) {
        memset(v, 0, pl);
        v[pl - 1] = (unsigned char)y;
        n = make_dhe(buf, sh.p, pl, sh.g, sh.g_len, v + pl - 1, 1);
        ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), 0);
        ck_assert_msg(strstr(why, "out of range") != NULL && strstr(why, group) != NULL,
                      "%s Ys=%d: %s", group, y, why);
        n = make_dhe(buf, sh.p, pl, sh.g, sh.g_len, v, pl);
        ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), 0);
        ck_assert_ptr_nonnull(strstr(why, "out of range"));
    }
    for (int d = -1; d <= 1; d++) {
        be_add(v, sh.p, pl, d);
        n = make_dhe(buf, sh.p, pl, sh.g, sh.g_len, v, pl);
        ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), 0);
        ck_assert_msg(strstr(why, "out of range") != NULL, "%s Ys=p%+d: %s", group, d, why);
    }
    /* Ys padded beyond the length of p; an empty Ys */
    v[0] = 0;
    memcpy(v + 1, sh.ys, sh.ys_len);
    n = make_dhe(buf, sh.p, pl, sh.g, sh.g_len, v, sh.ys_len + 1);
    ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), 0);
    n = make_dhe(buf, sh.p, pl, sh.g, sh.g_len, v, 0);
    ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), 0);

    /* g other than the group's 2: 5, 0, 1, 3, then p - 1 */
    static const unsigned char gs[][1] = { { 5 }, { 0 }, { 1 }, { 3 } };
    for (size_t i = 0; i < sizeof(gs) / sizeof(gs[0]); i++) {
        n = make_dhe(buf, sh.p, pl, gs[i], 1, sh.ys, sh.ys_len);
        ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), 0);
        ck_assert_msg(strstr(why, group) != NULL && strstr(why, "dh_g") != NULL, "%s g=%u: %s",
                      group, gs[i][0], why);
    }
    be_add(v, sh.p, pl, -1);
    n = make_dhe(buf, sh.p, pl, v, pl, sh.ys, sh.ys_len);
    ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), 0);

    /* p one off: not the group any more */
    be_add(v, sh.p, pl, -2);
    n = make_dhe(buf, v, pl, sh.g, sh.g_len, sh.ys, sh.ys_len);
    ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), 0);
    ck_assert_msg(strstr(why, "not a standard group") != NULL, "%s p-2: %s", group, why);

    /* trailing bytes */
    n = make_dhe(buf, sh.p, pl, sh.g, sh.g_len, sh.ys, sh.ys_len);
    buf[n] = 0;
    buf[n + 1] = 0;
    ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n + 1, libctx, why, sizeof(why)), 0);
    ck_assert_ptr_nonnull(strstr(why, "after ServerDHParams"));
    ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n + 2, libctx, why, sizeof(why)), 0);

    /* every proper prefix (truncated anywhere) */
    for (size_t cut = 0; cut < n; cut++) {
        ck_assert_msg(!lurk_srv_is_tls12_ske(buf, cut, libctx, why, sizeof(why)),
                      "%s cut at %zu accepted", group, cut);
    }
    /* each length field one too long / one too short */
    static const size_t len_at[] = { 0, 1, 2 };
    for (size_t i = 0; i < 3; i++) {
        size_t at = 64;

        n = make_dhe(buf, sh.p, pl, sh.g, sh.g_len, sh.ys, sh.ys_len);
        for (size_t j = 0; j < len_at[i]; j++) {
            at += 2 + (((size_t)buf[at] << 8) | buf[at + 1]);
        }
        for (int d = -1; d <= 1; d += 2) {
            unsigned len;

            n = make_dhe(buf, sh.p, pl, sh.g, sh.g_len, sh.ys, sh.ys_len);
            len = (((unsigned)buf[at] << 8) | buf[at + 1]) + (unsigned)d;
            buf[at] = (unsigned char)(len >> 8);
            buf[at + 1] = (unsigned char)len;
            ck_assert_msg(!lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)),
                          "%s length %zu %+d accepted", group, i, d);
        }
    }
}
END_TEST

/* Groups that are not the standard ones, by size in the reason. */
START_TEST(test_tls12_ske_dhe_nonstandard)
{
    static unsigned char buf[64 + 6 + 3 * 1024];
    static unsigned char p[1024];
    static dh_share sh;
    unsigned char two = 2;
    BIGNUM *bn = BN_new();
    BN_CTX *bnctx = BN_CTX_new_ex(libctx);
    char why[160];
    size_t n;

    /* a real 2048-bit prime that is no standard group's */
    ck_assert_int_eq(BN_generate_prime_ex2(bn, 2048, 0, NULL, NULL, NULL, bnctx), 1);
    ck_assert_int_eq(BN_bn2bin(bn, p), 256);
    n = make_dhe(buf, p, 256, &two, 1, p + 128, 128);
    ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), 0);
    ck_assert_str_eq(why, "DHE group of 2048 bits is not a standard group (RFC 7919 "
                          "ffdhe2048..8192, RFC 3526 MODP 2048..8192)");

    /* a 1024-bit prime, as `openssl dhparam 1024` would give */
    ck_assert_int_eq(BN_generate_prime_ex2(bn, 1024, 0, NULL, NULL, NULL, bnctx), 1);
    ck_assert_int_eq(BN_bn2bin(bn, p), 128);
    n = make_dhe(buf, p, 128, &two, 1, p + 64, 64);
    ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), 0);
    ck_assert_ptr_nonnull(strstr(why, "DHE group of 1024 bits is not a standard group"));

    /* the standard but small RFC 3526 MODP 1536 group */
    ck_assert(dh_share_new("modp_1536", &sh));
    n = make_dhe(buf, sh.p, sh.p_len, sh.g, sh.g_len, sh.ys, sh.ys_len);
    ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), 0);
    ck_assert_ptr_nonnull(strstr(why, "DHE group of 1536 bits is not a standard group"));

    /* a standard p with a leading zero byte is still that p */
    ck_assert(dh_share_new("ffdhe2048", &sh));
    p[0] = 0;
    memcpy(p + 1, sh.p, sh.p_len);
    n = make_dhe(buf, p, sh.p_len + 1, sh.g, sh.g_len, sh.ys, sh.ys_len);
    ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), 1);
    BN_CTX_free(bnctx);
    BN_free(bn);
}
END_TEST

START_TEST(test_tls12_ske_ecx)
{
    unsigned char u[56];
    unsigned char buf[200];
    char why[160];
    size_t n;

    /* a real share of each curve is accepted and derives */
    ck_assert_uint_eq(ecx_share("X25519", u, sizeof(u)), 32);
    ck_assert(ecx_derives("X25519", u, 32));
    n = make_ske(buf, 3, 0x001d, u, 32);
    ck_assert_msg(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), "x25519: %s", why);
    ck_assert_uint_eq(ecx_share("X448", u, sizeof(u)), 56);
    ck_assert(ecx_derives("X448", u, 56));
    n = make_ske(buf, 3, 0x001e, u, 56);
    ck_assert_msg(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), "x448: %s", why);

    /* X25519: 0, 1, the two order-8 points, p - 1, p, p + 1, each with the
     * top bit clear and set; OpenSSL's derive refuses each one too */
    for (int i = 0; i < 7; i++) {
        for (int top = 0; top <= 1; top++) {
            if (i < 4) {
                memcpy(u, x25519_low[i], 32);
            } else {
                x25519_p_plus(u, i - 5);
            }
            u[31] = (unsigned char)(u[31] | (top ? 0x80 : 0));
            ck_assert_msg(!ecx_derives("X25519", u, 32), "x25519 point %d/%d derives", i, top);
            n = make_ske(buf, 3, 0x001d, u, 32);
            ck_assert_msg(!lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)),
                          "x25519 low-order point %d (top bit %d) accepted", i, top);
            ck_assert_str_eq(why, "x25519 share is a low-order point");
        }
    }
    /* X448: 0, 1, p - 1, p, p + 1 */
    for (int i = 0; i < 5; i++) {
        x448_low(u, i);
        ck_assert_msg(!ecx_derives("X448", u, 56), "x448 point %d derives", i);
        n = make_ske(buf, 3, 0x001e, u, 56);
        ck_assert_msg(!lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)),
                      "x448 low-order point %d accepted", i);
        ck_assert_str_eq(why, "x448 share is a low-order point");
    }
    /* neighbours of the refused values are ordinary shares */
    x448_low(u, 1);
    u[0] = 2;
    n = make_ske(buf, 3, 0x001e, u, 56);
    ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), 1);
    memcpy(u, x25519_low[1], 32);
    u[0] = 9; /* the base point */
    n = make_ske(buf, 3, 0x001d, u, 32);
    ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), 1);

    /* lengths: a 56-byte x25519 share, a 32-byte x448 one */
    ecx_share("X448", u, sizeof(u));
    n = make_ske(buf, 3, 0x001d, u, 56);
    ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), 0);
    ck_assert_ptr_nonnull(strstr(why, "expected 32"));
    n = make_ske(buf, 3, 0x001e, u, 32);
    ck_assert_int_eq(lurk_srv_is_tls12_ske(buf, n, libctx, why, sizeof(why)), 0);
    ck_assert_ptr_nonnull(strstr(why, "expected 56"));
}
END_TEST

/* ---- decision table ---------------------------------------------------- */

typedef enum { OP_SIGN, OP_DECRYPT, OP_AGREE } test_op;

typedef enum {
    IN_NONE,
    IN_CV32,     /* TLS 1.3 CV, SHA-256 transcript */
    IN_CV48,     /* TLS 1.3 CV, SHA-384 transcript */
    IN_SKE,      /* TLS 1.2 SKE, P-256 */
    IN_DHE,      /* TLS 1.2 SKE, DHE on ffdhe2048 */
    IN_DHE1024,  /* TLS 1.2 SKE, DHE on a 1024-bit group */
    IN_ANY,      /* an arbitrary message */
    IN_DIGEST,   /* a digest of the right size */
    IN_CIPHER,   /* ciphertext of the modulus size */
    IN_SHORTCT,  /* ciphertext one byte short */
    IN_P256,     /* peer SPKI on P-256 */
    IN_P384,     /* peer SPKI on P-384 */
    IN_JUNK,     /* peer "SPKI" that is not one */
} test_input;

typedef struct {
    const char *key;
    test_op op;
    int alg;        /* lurk_sig_alg or lurk_dec_mode */
    lurk_md md;
    int salt;
    test_input in;
    lurk_err want;
} decision;

#define S256 LURK_MD_SHA256
#define S384 LURK_MD_SHA384
#define S512 LURK_MD_SHA512
#define S1 LURK_MD_SHA1
#define S224 LURK_MD_SHA224
#define NOMD LURK_MD_NONE
#define PKCS1 LURK_SIG_RSA_PKCS1
#define PSS LURK_SIG_RSA_PSS
#define ECDSA LURK_SIG_ECDSA
#define ED LURK_SIG_ED25519
#define PMS LURK_DEC_TLS_PREMASTER
#define OAEP LURK_DEC_OAEP
#define OK LURK_OK
#define E400 LURK_ERR_INVALID_FORMAT
#define E403 LURK_ERR_POLICY_DENIED
#define E406 LURK_ERR_NOT_ACCEPTABLE

static const decision decisions[] = {
    /* tls-server RSA: TLS inputs only, PSS salt = hash size, premaster only */
    { "rsa-tls", OP_SIGN, PSS, S256, 32, IN_CV32, OK },
    { "rsa-tls", OP_SIGN, PSS, S384, 48, IN_CV48, OK },
    { "rsa-tls", OP_SIGN, PSS, S256, 32, IN_SKE, OK },
    { "rsa-tls", OP_SIGN, PKCS1, S256, -1, IN_SKE, OK },
    { "rsa-tls", OP_SIGN, PKCS1, S512, -1, IN_SKE, OK },
    { "rsa-tls", OP_SIGN, PKCS1, S256, -1, IN_DHE, OK },
    { "rsa-tls", OP_SIGN, PSS, S256, 32, IN_DHE, OK },
    { "rsa-tls", OP_SIGN, PKCS1, S256, -1, IN_DHE1024, E403 },
    { "rsa-tls", OP_SIGN, PSS, S384, 48, IN_DHE1024, E403 },
    { "rsa-tls", OP_SIGN, PKCS1, S256, -1, IN_CV32, E403 }, /* TLS 1.3 is PSS only */
    { "rsa-tls", OP_SIGN, PSS, S256, 20, IN_CV32, E403 },
    { "rsa-tls", OP_SIGN, PSS, S256, 0, IN_CV32, E403 },
    { "rsa-tls", OP_SIGN, PSS, S256, 32, IN_ANY, E403 },
    { "rsa-tls", OP_SIGN, PKCS1, S256, -1, IN_DIGEST, E403 },
    { "rsa-tls", OP_SIGN, PSS, S256, 32, IN_DIGEST, E403 },
    { "rsa-tls", OP_SIGN, ECDSA, S256, -1, IN_CV32, E406 },
    { "rsa-tls", OP_SIGN, ED, NOMD, -1, IN_CV32, E406 },
    { "rsa-tls", OP_DECRYPT, PMS, NOMD, -1, IN_CIPHER, OK },
    { "rsa-tls", OP_DECRYPT, PMS, NOMD, -1, IN_SHORTCT, E400 },
    { "rsa-tls", OP_DECRYPT, OAEP, S256, -1, IN_CIPHER, E403 },
    { "rsa-tls", OP_AGREE, 0, NOMD, -1, IN_P256, E403 },
    /* tls-server EC / Ed25519 */
    { "p256-tls", OP_SIGN, ECDSA, S256, -1, IN_CV32, OK },
    { "p256-tls", OP_SIGN, ECDSA, S256, -1, IN_SKE, OK },
    { "p384-tls", OP_SIGN, ECDSA, S384, -1, IN_CV48, OK },
    { "p521-tls", OP_SIGN, ECDSA, S512, -1, IN_CV48, OK },
    { "p256-tls", OP_SIGN, ECDSA, S256, -1, IN_ANY, E403 },
    { "p256-tls", OP_SIGN, ECDSA, S256, -1, IN_DIGEST, E403 },
    { "p256-tls", OP_SIGN, PSS, S256, 32, IN_CV32, E406 },
    { "p256-tls", OP_SIGN, PKCS1, S256, -1, IN_CV32, E406 },
    { "p256-tls", OP_SIGN, ED, NOMD, -1, IN_CV32, E406 },
    { "p256-tls", OP_DECRYPT, PMS, NOMD, -1, IN_CIPHER, E403 },
    { "p256-tls", OP_AGREE, 0, NOMD, -1, IN_P256, E403 },
    { "ed-tls", OP_SIGN, ED, NOMD, -1, IN_CV32, OK },
    { "ed-tls", OP_SIGN, ED, NOMD, -1, IN_SKE, OK },
    { "ed-tls", OP_SIGN, ED, NOMD, -1, IN_ANY, E403 },
    { "ed-tls", OP_SIGN, ECDSA, S256, -1, IN_CV32, E406 },
    { "ed-tls", OP_DECRYPT, PMS, NOMD, -1, IN_CIPHER, E403 },
    /* sign: anything, any digest; PSS salt up to emLen - hLen - 2 */
    { "rsa-sign", OP_SIGN, PSS, S256, 32, IN_ANY, OK },
    { "rsa-sign", OP_SIGN, PSS, S256, 0, IN_DIGEST, OK },
    { "rsa-sign", OP_SIGN, PSS, S256, 256 - 32 - 2, IN_DIGEST, OK },
    { "rsa-sign", OP_SIGN, PSS, S256, 256 - 32 - 1, IN_DIGEST, E406 },
    { "rsa-sign", OP_SIGN, PSS, S512, 256 - 64 - 2, IN_ANY, OK },
    { "rsa-sign", OP_SIGN, PSS, S512, 256 - 64 - 1, IN_ANY, E406 },
    { "rsa-sign", OP_SIGN, PKCS1, S384, -1, IN_DIGEST, OK },
    { "rsa-sign", OP_SIGN, PKCS1, S512, -1, IN_CV32, OK },
    { "rsa-sign", OP_SIGN, PKCS1, S256, -1, IN_DHE1024, OK },
    { "rsa-sign", OP_SIGN, ECDSA, S256, -1, IN_ANY, E406 },
    { "rsa-sign", OP_DECRYPT, PMS, NOMD, -1, IN_CIPHER, E403 },
    { "rsa-sign", OP_DECRYPT, OAEP, S256, -1, IN_CIPHER, E403 },
    { "rsa-sign", OP_AGREE, 0, NOMD, -1, IN_P256, E403 },
    /* decrypt: OAEP and premaster, nothing else */
    { "rsa-dec", OP_DECRYPT, PMS, NOMD, -1, IN_CIPHER, OK },
    { "rsa-dec", OP_DECRYPT, OAEP, S256, -1, IN_CIPHER, OK },
    { "rsa-dec", OP_DECRYPT, OAEP, S512, -1, IN_CIPHER, OK },
    { "rsa-dec", OP_DECRYPT, OAEP, S256, -1, IN_SHORTCT, E400 },
    { "rsa-dec", OP_SIGN, PSS, S256, 32, IN_CV32, E403 },
    { "rsa-dec", OP_SIGN, PKCS1, S256, -1, IN_DIGEST, E403 },
    { "rsa-dec", OP_AGREE, 0, NOMD, -1, IN_P256, E403 },
    /* agree: ECDH with a peer on the same curve */
    { "p256-agree", OP_AGREE, 0, NOMD, -1, IN_P256, OK },
    { "p256-agree", OP_AGREE, 0, NOMD, -1, IN_P384, E406 },
    { "p256-agree", OP_AGREE, 0, NOMD, -1, IN_JUNK, E406 },
    { "p256-agree", OP_SIGN, ECDSA, S256, -1, IN_CV32, E403 },
    { "p256-agree", OP_SIGN, ECDSA, S256, -1, IN_DIGEST, E403 },
    { "p256-agree", OP_DECRYPT, PMS, NOMD, -1, IN_CIPHER, E403 },
    /* SHA-1 and SHA-224: only where the key's legacy_digests allow, and
     * never in TLS 1.3 or for OAEP */
    { "rsa-tls", OP_SIGN, PKCS1, S1, -1, IN_SKE, E403 },
    { "rsa-tls", OP_SIGN, PKCS1, S1, -1, IN_DHE, E403 },
    { "rsa-tls", OP_SIGN, PKCS1, S224, -1, IN_SKE, E403 },
    { "rsa-tls-legacy", OP_SIGN, PKCS1, S1, -1, IN_SKE, OK },
    { "rsa-tls-legacy", OP_SIGN, PKCS1, S1, -1, IN_DHE, OK },
    { "rsa-tls-legacy", OP_SIGN, PSS, S1, 20, IN_SKE, OK },
    { "rsa-tls-legacy", OP_SIGN, PKCS1, S224, -1, IN_SKE, E403 },
    { "rsa-tls-legacy", OP_SIGN, PSS, S1, 20, IN_CV32, E403 },
    { "rsa-tls-legacy", OP_SIGN, PKCS1, S1, -1, IN_ANY, E403 },
    { "p256-tls", OP_SIGN, ECDSA, S1, -1, IN_SKE, E403 },
    { "p256-tls", OP_SIGN, ECDSA, S224, -1, IN_SKE, E403 },
    { "p256-tls-legacy", OP_SIGN, ECDSA, S1, -1, IN_SKE, OK },
    { "p256-tls-legacy", OP_SIGN, ECDSA, S224, -1, IN_SKE, OK },
    { "p256-tls-legacy", OP_SIGN, ECDSA, S1, -1, IN_CV32, E403 },
    { "p256-tls-legacy", OP_SIGN, ECDSA, S224, -1, IN_DIGEST, E403 },
    { "rsa-sign", OP_SIGN, PKCS1, S1, -1, IN_DIGEST, E403 },
    { "rsa-sign", OP_SIGN, PSS, S224, 28, IN_ANY, E403 },
    { "rsa-dec", OP_DECRYPT, OAEP, S1, -1, IN_CIPHER, E406 },
};

static unsigned char in_cv32[160], in_cv48[160], in_ske[200], in_any[100], in_digest[64];
static unsigned char in_cipher[256], in_p256[200], in_p384[200], in_junk[40];
static unsigned char in_dhe[64 + 6 + 3 * 256], in_dhe1024[64 + 6 + 3 * 128];
static size_t in_cv32_len, in_cv48_len, in_ske_len, in_p256_len, in_p384_len;
static size_t in_dhe_len, in_dhe1024_len;

static void build_inputs(void)
{
    static dh_share dh;
    unsigned char pt[100];
    size_t ptlen;

    in_cv32_len = make_cv(in_cv32, SERVER_CV, 32);
    in_cv48_len = make_cv(in_cv48, SERVER_CV, 48);
    ptlen = ec_point("P-256", pt, sizeof(pt));
    in_ske_len = make_ske(in_ske, 3, 0x0017, pt, ptlen);
    if (dh_share_new("ffdhe2048", &dh)) {
        in_dhe_len = make_dhe(in_dhe, dh.p, dh.p_len, dh.g, dh.g_len, dh.ys, dh.ys_len);
        /* the top half of that prime: a 1024-bit p no standard group has */
        in_dhe1024_len = make_dhe(in_dhe1024, dh.p, 128, dh.g, dh.g_len, dh.ys + 128, 128);
    }
    memset(in_any, 'm', sizeof(in_any));
    memset(in_digest, 0x5a, sizeof(in_digest));
    memset(in_cipher, 0x11, sizeof(in_cipher));
    in_p256_len = ec_spki("P-256", in_p256, sizeof(in_p256));
    in_p384_len = ec_spki("P-384", in_p384, sizeof(in_p384));
    memset(in_junk, 0x30, sizeof(in_junk));
}

static void set_buf(lurk_buf *b, unsigned char *d, size_t n)
{
    b->data = d;
    b->len = n;
}

START_TEST(test_decision_table)
{
    const decision *t = &decisions[_i];
    const LURK_SRV_KEY *k = key_named(t->key);
    lurk_request req;
    char why[300] = "";
    lurk_err got;

    lurk_request_init(&req);
    snprintf(req.request_id, sizeof(req.request_id), "row%d", _i);
    switch (t->in) {
    case IN_CV32:
        set_buf(&req.data, in_cv32, in_cv32_len);
        break;
    case IN_CV48:
        set_buf(&req.data, in_cv48, in_cv48_len);
        break;
    case IN_SKE:
        set_buf(&req.data, in_ske, in_ske_len);
        break;
    case IN_DHE:
        set_buf(&req.data, in_dhe, in_dhe_len);
        break;
    case IN_DHE1024:
        set_buf(&req.data, in_dhe1024, in_dhe1024_len);
        break;
    case IN_ANY:
        set_buf(&req.data, in_any, sizeof(in_any));
        break;
    case IN_DIGEST:
        set_buf(&req.digest, in_digest, lurk_md_size(t->md));
        break;
    case IN_CIPHER:
        set_buf(&req.ciphertext, in_cipher, sizeof(in_cipher));
        break;
    case IN_SHORTCT:
        set_buf(&req.ciphertext, in_cipher, sizeof(in_cipher) - 1);
        break;
    case IN_P256:
        set_buf(&req.peer_key, in_p256, in_p256_len);
        break;
    case IN_P384:
        set_buf(&req.peer_key, in_p384, in_p384_len);
        break;
    case IN_JUNK:
        set_buf(&req.peer_key, in_junk, sizeof(in_junk));
        break;
    default:
        break;
    }
    switch (t->op) {
    case OP_SIGN:
        req.type = LURK_TX_SIGN;
        req.sig_alg = (lurk_sig_alg)t->alg;
        req.md = t->md;
        req.salt_len = t->salt;
        got = lurk_srv_policy_check_sign(k, &req, libctx, why, sizeof(why));
        break;
    case OP_DECRYPT:
        req.type = LURK_TX_DECRYPT;
        req.dec_mode = (lurk_dec_mode)t->alg;
        if (req.dec_mode == LURK_DEC_TLS_PREMASTER) {
            req.client_version = 0x0303;
        } else {
            req.oaep_md = t->md;
        }
        got = lurk_srv_policy_check_decrypt(k, &req, why, sizeof(why));
        break;
    default:
        req.type = LURK_TX_AGREE;
        got = lurk_srv_policy_check_agree(k, &req, why, sizeof(why));
        break;
    }
    ck_assert_msg(got == t->want, "row %d (%s): got %s (%d, \"%s\"), want %s", _i, t->key,
                  lurk_err_name(got), lurk_err_status(got), why, lurk_err_name(t->want));
    if (got != LURK_OK) {
        ck_assert_msg(why[0] != '\0', "row %d: a refusal without a reason", _i);
    }
    /* the request buffers are the test's own: no lurk_request_clear */
}
END_TEST

/* The sentences a client sees for the two most common tls-server refusals. */
START_TEST(test_refusal_sentences)
{
    const LURK_SRV_KEY *k = key_named("rsa-tls");
    lurk_request req;
    char why[300] = "";

    lurk_request_init(&req);
    req.type = LURK_TX_SIGN;
    req.sig_alg = LURK_SIG_RSA_PSS;
    req.md = LURK_MD_SHA256;
    req.salt_len = 32;
    set_buf(&req.digest, in_digest, 32);
    ck_assert_int_eq(lurk_srv_policy_check_sign(k, &req, libctx, why, sizeof(why)), E403);
    ck_assert_str_eq(why,
                     "policy tls-server signs only TLS handshake messages; send Data, not a digest");

    lurk_request_init(&req);
    req.type = LURK_TX_SIGN;
    req.sig_alg = LURK_SIG_RSA_PSS;
    req.md = LURK_MD_SHA256;
    req.salt_len = 32;
    set_buf(&req.data, in_any, sizeof(in_any));
    ck_assert_int_eq(lurk_srv_policy_check_sign(k, &req, libctx, why, sizeof(why)), E403);
    ck_assert_ptr_nonnull(strstr(why, "not a TLS 1.3 server CertificateVerify or TLS 1.2 "
                                      "ServerKeyExchange input"));

    /* a DHE group nginx's `ssl_dhparam` could hold: the reason names its size */
    set_buf(&req.data, in_dhe1024, in_dhe1024_len);
    ck_assert_int_eq(lurk_srv_policy_check_sign(k, &req, libctx, why, sizeof(why)), E403);
    ck_assert_ptr_nonnull(strstr(why, "(as ServerKeyExchange: DHE group of 1024 bits is not a "
                                      "standard group (RFC 7919 ffdhe2048..8192, RFC 3526 MODP "
                                      "2048..8192))"));
    ck_assert_uint_lt(strlen(why), LURK_DESCRIPTION_MAX);

    /* SHA-1 off by default: the reason names the setting */
    lurk_request_init(&req);
    req.type = LURK_TX_SIGN;
    req.sig_alg = LURK_SIG_RSA_PKCS1;
    req.md = LURK_MD_SHA1;
    set_buf(&req.data, in_ske, in_ske_len);
    ck_assert_int_eq(lurk_srv_policy_check_sign(k, &req, libctx, why, sizeof(why)), E403);
    ck_assert_str_eq(why, "sha1 signatures are off for this key (the key server's "
                          "legacy_digests setting of the key allows them)");

    lurk_request_init(&req);
    req.type = LURK_TX_DECRYPT;
    req.dec_mode = LURK_DEC_OAEP;
    req.oaep_md = LURK_MD_SHA256;
    set_buf(&req.ciphertext, in_cipher, sizeof(in_cipher));
    ck_assert_int_eq(lurk_srv_policy_check_decrypt(k, &req, why, sizeof(why)), E403);
    ck_assert_ptr_nonnull(strstr(why, "tls-premaster"));
}
END_TEST

START_TEST(test_policy_names)
{
    lurk_policy p;

    for (int i = 0; i < LURK_POLICY__COUNT; i++) {
        ck_assert_int_eq(lurk_policy_from_name(lurk_policy_name((lurk_policy)i), &p), LURK_OK);
        ck_assert_int_eq(p, i);
    }
    ck_assert_str_eq(lurk_policy_name(LURK_POLICY_TLS_SERVER), "tls-server");
    ck_assert_int_eq(lurk_policy_from_name("TLS-SERVER", &p), LURK_ERR_CONFIG);
    ck_assert_int_eq(lurk_policy_from_name("oracle", &p), LURK_ERR_CONFIG);
    ck_assert_int_eq(lurk_policy_from_name(NULL, &p), LURK_ERR_CONFIG);
}
END_TEST

static Suite *policy_suite(void)
{
    Suite *s = suite_create("policy");
    TCase *tc = tcase_create("recognisers");

    tcase_add_test(tc, test_tls13_cv);
    tcase_add_test(tc, test_tls12_ske);
    tcase_add_test(tc, test_tls12_ske_ecx);
    tcase_add_test(tc, test_tls12_ske_dhe_nonstandard);
    suite_add_tcase(s, tc);

    /* One per group: the 8192-bit keys take a moment each. */
    tc = tcase_create("dhe");
    tcase_add_loop_test(tc, test_tls12_ske_dhe, 0, (int)N_DH_GROUPS);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("decisions");
    tcase_add_loop_test(tc, test_decision_table, 0,
                        (int)(sizeof(decisions) / sizeof(decisions[0])));
    tcase_add_test(tc, test_refusal_sentences);
    tcase_add_test(tc, test_policy_names);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = NULL;
    int failed;

    if (srv_fixture_open(&fx, "test_policy", NULL) != 0) {
        return 99;
    }
    libctx = fx.libctx;
    store = fx.store;
    build_inputs();

    sr = srunner_create(policy_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    srv_fixture_close(&fx);
    return failed == 0 ? 0 : 1;
}
