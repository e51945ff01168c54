/* SPDX-License-Identifier: Apache-2.0 */
/*
 * policy.c - what a key's policy lets through.  Pure: no I/O, no key use.
 *
 * The key server is not a signing or decryption oracle (seed 002): a
 * tls-server key signs only the two inputs TLS itself makes a server sign,
 * and decrypts only in the TLS premaster mode with implicit rejection.
 * Anything beyond that is an explicit per-key opt-in (sign, decrypt, agree).
 *
 * Order of the checks, so a client reads the most useful refusal first:
 *   403 the policy forbids the transaction at all,
 *   406 the algorithm or parameter does not fit the key,
 *   400 the request contradicts itself (digest length, missing member),
 *   403 the content is not what the policy allows.
 */
#include "lurk_srv.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/params.h>
#include <openssl/x509.h>

/* ---- TLS 1.3 CertificateVerify (RFC 8446 4.4.3) ------------------------ */

#define LURK_TLS13_PAD 64
static const char lurk_tls13_server_ctx[] = "TLS 1.3, server CertificateVerify";
#define LURK_TLS13_CTX_LEN (sizeof(lurk_tls13_server_ctx) - 1)
#define LURK_TLS13_PREFIX_LEN (LURK_TLS13_PAD + LURK_TLS13_CTX_LEN + 1)

int lurk_srv_is_tls13_server_cv(const unsigned char *d, size_t n)
{
    size_t hash_len;

    if (d == NULL || n <= LURK_TLS13_PREFIX_LEN) {
        return 0;
    }
    /* The transcript hash of a SHA-256 or SHA-384 cipher suite. */
    hash_len = n - LURK_TLS13_PREFIX_LEN;
    if (hash_len != 32 && hash_len != 48) {
        return 0;
    }
    for (size_t i = 0; i < LURK_TLS13_PAD; i++) {
        if (d[i] != 0x20) {
            return 0;
        }
    }
    if (memcmp(d + LURK_TLS13_PAD, lurk_tls13_server_ctx, LURK_TLS13_CTX_LEN) != 0) {
        return 0;
    }
    return d[LURK_TLS13_PAD + LURK_TLS13_CTX_LEN] == 0x00;
}

/* ---- TLS 1.2 ServerKeyExchange, ECDHE (RFC 8422 5.4) ------------------- */

#define LURK_TLS12_RANDOMS 64
#define LURK_TLS12_NAMED_CURVE 3
/* The longest ServerECDHParams: curve_type, NamedCurve, point<1..255>. */
#define LURK_TLS12_ECDHE_MAX (LURK_TLS12_RANDOMS + 4 + 255)

typedef struct {
    unsigned id;       /* NamedCurve (RFC 8422 5.1.1) */
    const char *name;
    int nid;           /* NID_undef: an RFC 7748 curve, any string is a key */
    size_t point_len;
} lurk_tls_curve;

static const lurk_tls_curve lurk_tls_curves[] = {
    { 0x0017, "secp256r1", NID_X9_62_prime256v1, 1 + 2 * 32 },
    { 0x0018, "secp384r1", NID_secp384r1, 1 + 2 * 48 },
    { 0x0019, "secp521r1", NID_secp521r1, 1 + 2 * 66 },
    { 0x001d, "x25519", NID_undef, 32 },
    { 0x001e, "x448", NID_undef, 56 },
};

/* EC groups are costly to build (several microseconds each) and read-only
 * once built, so they are made once per library context and curve and
 * shared by every thread.  A library context must outlive the process's
 * use of this cache (the server's lives as long as the server). */
#define LURK_GROUP_CACHE 12

static struct {
    OSSL_LIB_CTX *libctx;
    int nid;
    EC_GROUP *group;
} lurk_group_cache[LURK_GROUP_CACHE];
static pthread_mutex_t lurk_group_lock = PTHREAD_MUTEX_INITIALIZER;

/* A shared group (*tmp NULL) or a private one the caller frees (*tmp). */
static const EC_GROUP *lurk_pol_group(OSSL_LIB_CTX *libctx, int nid, EC_GROUP **tmp)
{
    const EC_GROUP *g = NULL;
    EC_GROUP *fresh = NULL;

    *tmp = NULL;
    pthread_mutex_lock(&lurk_group_lock);
    for (size_t i = 0; i < LURK_GROUP_CACHE && lurk_group_cache[i].group != NULL; i++) {
        if (lurk_group_cache[i].libctx == libctx && lurk_group_cache[i].nid == nid) {
            g = lurk_group_cache[i].group;
            break;
        }
    }
    pthread_mutex_unlock(&lurk_group_lock);
    if (g != NULL) {
        return g;
    }

    fresh = EC_GROUP_new_by_curve_name_ex(libctx, NULL, nid);
    if (fresh == NULL) {
        return NULL;
    }
    pthread_mutex_lock(&lurk_group_lock);
    for (size_t i = 0; i < LURK_GROUP_CACHE; i++) {
        if (lurk_group_cache[i].group == NULL) {
            lurk_group_cache[i].libctx = libctx;
            lurk_group_cache[i].nid = nid;
            lurk_group_cache[i].group = fresh;
            g = fresh;
            fresh = NULL;
            break;
        }
        if (lurk_group_cache[i].libctx == libctx && lurk_group_cache[i].nid == nid) {
            g = lurk_group_cache[i].group; /* another thread was quicker */
            break;
        }
    }
    pthread_mutex_unlock(&lurk_group_lock);
    if (g == NULL) {
        g = fresh; /* cache full: use it once */
        *tmp = fresh;
    } else {
        EC_GROUP_free(fresh);
    }
    return g;
}

/* The RFC 7748 u-coordinates of small order (libsodium's has_small_order
 * list): with one of them as the peer share, the shared secret is one of a
 * handful of values whatever the private key, and OpenSSL's derive refuses
 * the all-zero result.  Little-endian, as on the wire.  X25519 ignores the
 * top bit of the last byte (RFC 7748 5), so each one has two encodings;
 * the values p and p + 1 are 0 and 1 in a second, non-canonical encoding. */
static const unsigned char lurk_x25519_low_order[][32] = {
    /* 0 (order 4) */
    { 0 },
    /* 1 (order 1) */
    { 0x01 },
    /* order 8 */
    { 0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4,
      0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
      0xb8, 0x00 },
    /* order 8 */
    { 0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef,
      0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f,
      0x11, 0x57 },
    /* p - 1 (order 2) */
    { 0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
      0xff, 0x7f },
    /* p (= 0) */
    { 0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
      0xff, 0x7f },
    /* p + 1 (= 1) */
    { 0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
      0xff, 0x7f },
};

/* X448 (p = 2^448 - 2^224 - 1) uses all 448 bits: 0, 1, p - 1 (order 2),
 * and p, p + 1 (0 and 1 again). */
static int lurk_pol_x448_low_order(const unsigned char *u)
{
    int zero = 1; /* 0 */
    int one = 1;  /* 1 */
    int pm1 = 1;  /* p - 1: fe, ff x 27, fe, ff x 27 */
    int p0 = 1;   /* p:     ff x 28, fe, ff x 27 */
    int pp1 = 1;  /* p + 1: 00 x 28, ff x 28 */

    for (size_t i = 0; i < 56; i++) {
        unsigned hi = i == 28 ? 0xfe : 0xff;

        zero &= u[i] == 0x00;
        one &= u[i] == (i == 0 ? 0x01 : 0x00);
        pm1 &= u[i] == (i == 0 ? 0xfe : hi);
        p0 &= u[i] == hi;
        pp1 &= u[i] == (i < 28 ? 0x00 : 0xff);
    }
    return zero || one || pm1 || p0 || pp1;
}

static int lurk_pol_x25519_low_order(const unsigned char *u)
{
    for (size_t i = 0; i < sizeof(lurk_x25519_low_order) / sizeof(lurk_x25519_low_order[0]); i++) {
        if (memcmp(u, lurk_x25519_low_order[i], 31) == 0
            && (u[31] & 0x7f) == lurk_x25519_low_order[i][31]) {
            return 1;
        }
    }
    return 0;
}

static int lurk_pol_point_on_curve(const unsigned char *pt, size_t len, int nid,
                                   OSSL_LIB_CTX *libctx)
{
    EC_GROUP *tmp = NULL;
    const EC_GROUP *g = lurk_pol_group(libctx, nid, &tmp);
    EC_POINT *p = NULL;
    int ok = 0;

    if (g == NULL) {
        goto end;
    }
    p = EC_POINT_new(g);
    if (p == NULL) {
        goto end;
    }
    ok = EC_POINT_oct2point(g, p, pt, len, NULL) == 1;
end:
    ERR_clear_error();
    EC_POINT_free(p);
    EC_GROUP_free(tmp);
    return ok;
}

static int lurk_pol_ske_ecdhe(const unsigned char *d, size_t n, OSSL_LIB_CTX *libctx, char *why,
                              size_t whylen)
{
    const unsigned char *params;
    const lurk_tls_curve *curve = NULL;
    unsigned curve_id;
    size_t point_len;

    params = d + LURK_TLS12_RANDOMS;
    if (params[0] != LURK_TLS12_NAMED_CURVE) {
        lurk_why(why, whylen, "ECCurveType %u is not named_curve(3)", params[0]);
        return 0;
    }
    curve_id = ((unsigned)params[1] << 8) | params[2];
    for (size_t i = 0; i < sizeof(lurk_tls_curves) / sizeof(lurk_tls_curves[0]); i++) {
        if (lurk_tls_curves[i].id == curve_id) {
            curve = &lurk_tls_curves[i];
            break;
        }
    }
    if (curve == NULL) {
        lurk_why(why, whylen, "NamedCurve 0x%04x is not supported", curve_id);
        return 0;
    }
    point_len = params[3];
    if (n != LURK_TLS12_RANDOMS + 4 + point_len) {
        lurk_why(why, whylen, "%s point of %zu bytes but %zu bytes follow it",
                 curve->name, point_len, n - LURK_TLS12_RANDOMS - 4);
        return 0;
    }
    if (point_len != curve->point_len) {
        lurk_why(why, whylen, "%s point of %zu bytes, expected %zu", curve->name,
                 point_len, curve->point_len);
        return 0;
    }
    if (curve->nid != NID_undef) {
        /* TLS 1.2 (RFC 8422 5.1.2) uses only the uncompressed form. */
        if (params[4] != 0x04) {
            lurk_why(why, whylen, "%s point is not in uncompressed form", curve->name);
            return 0;
        }
        if (!lurk_pol_point_on_curve(params + 4, point_len, curve->nid, libctx)) {
            lurk_why(why, whylen, "%s point is not on the curve", curve->name);
            return 0;
        }
    } else if (point_len == 32 ? lurk_pol_x25519_low_order(params + 4)
                               : lurk_pol_x448_low_order(params + 4)) {
        lurk_why(why, whylen, "%s share is a low-order point", curve->name);
        return 0;
    }
    return 1;
}

/* ---- TLS 1.2 ServerKeyExchange, DHE (RFC 5246 7.4.3) -------------------- */

/* The groups a DHE ServerKeyExchange may use: the RFC 7919 ffdhe groups and
 * the RFC 3526 MODP groups of 2048 bits and more, by OpenSSL's names.  Any
 * other group is refused: with p and g free, the signing input would be
 * almost any bytes the requester likes (dh_p alone up to 64 KiB of them),
 * the oracle tls-server exists to deny; and a short or made-up prime puts
 * the handshake itself at risk (Logjam, small subgroups).  With p and g
 * fixed, only the randoms and Ys < p are left to choose. */
static const char *const lurk_dh_group_names[] = {
    "ffdhe2048", "ffdhe3072", "ffdhe4096", "ffdhe6144", "ffdhe8192",
    "modp_2048", "modp_3072", "modp_4096", "modp_6144", "modp_8192",
};
#define LURK_DH_GROUPS (sizeof(lurk_dh_group_names) / sizeof(lurk_dh_group_names[0]))
#define LURK_DH_STD_HINT "RFC 7919 ffdhe2048..8192, RFC 3526 MODP 2048..8192"

/* p and g of each group, big-endian without leading zeros, taken once from
 * OpenSSL (the first library context that asks) and read-only afterwards. */
typedef struct {
    unsigned char *p;
    size_t p_len;
    unsigned char *g;
    size_t g_len;
} lurk_dh_group;

static lurk_dh_group lurk_dh_groups[LURK_DH_GROUPS];
static int lurk_dh_groups_ready;
static pthread_mutex_t lurk_dh_lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned char *lurk_pol_bn_bytes(const BIGNUM *bn, size_t *len)
{
    int n = BN_num_bytes(bn);
    unsigned char *out = NULL;

    if (n <= 0) {
        return NULL;
    }
    out = OPENSSL_malloc((size_t)n);
    if (out == NULL || BN_bn2bin(bn, out) != n) {
        OPENSSL_free(out);
        return NULL;
    }
    *len = (size_t)n;
    return out;
}

static int lurk_pol_dh_group_load(OSSL_LIB_CTX *libctx, const char *name, lurk_dh_group *grp)
{
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;
    BIGNUM *p = NULL;
    BIGNUM *g = NULL;
    OSSL_PARAM params[2];
    int ok = 0;

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)name, 0);
    params[1] = OSSL_PARAM_construct_end();
    ctx = EVP_PKEY_CTX_new_from_name(libctx, "DH", NULL);
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0
        || EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEY_PARAMETERS, params) <= 0
        || !EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_FFC_P, &p)
        || !EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_FFC_G, &g)) {
        goto end;
    }
    grp->p = lurk_pol_bn_bytes(p, &grp->p_len);
    grp->g = lurk_pol_bn_bytes(g, &grp->g_len);
    ok = grp->p != NULL && grp->g != NULL;
end:
    ERR_clear_error();
    BN_free(p);
    BN_free(g);
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

/* The table, or NULL when OpenSSL could not give every group (not cached:
 * the next DHE input tries again). */
static const lurk_dh_group *lurk_pol_dh_groups(OSSL_LIB_CTX *libctx)
{
    const lurk_dh_group *groups = NULL;

    pthread_mutex_lock(&lurk_dh_lock);
    if (!lurk_dh_groups_ready) {
        size_t i = 0;

        while (i < LURK_DH_GROUPS
               && lurk_pol_dh_group_load(libctx, lurk_dh_group_names[i], &lurk_dh_groups[i])) {
            i++;
        }
        if (i == LURK_DH_GROUPS) {
            lurk_dh_groups_ready = 1;
        } else {
            for (i = 0; i < LURK_DH_GROUPS; i++) {
                OPENSSL_free(lurk_dh_groups[i].p);
                OPENSSL_free(lurk_dh_groups[i].g);
                memset(&lurk_dh_groups[i], 0, sizeof(lurk_dh_groups[i]));
            }
        }
    }
    if (lurk_dh_groups_ready) {
        groups = lurk_dh_groups;
    }
    pthread_mutex_unlock(&lurk_dh_lock);
    return groups;
}

/* A TLS opaque<1..2^16-1> vector at *off: its body (leading zero bytes
 * skipped, so the number's significant bytes) and full encoded length. */
typedef struct {
    const unsigned char *num;
    size_t num_len;
    size_t enc_len;
} lurk_dh_vec;

static int lurk_pol_dh_vec(const unsigned char *d, size_t n, size_t *off, const char *what,
                           lurk_dh_vec *v, char *why, size_t whylen)
{
    size_t len;

    if (n - *off < 2) {
        lurk_why(why, whylen, "ServerDHParams ends before the length of %s", what);
        return 0;
    }
    len = ((size_t)d[*off] << 8) | d[*off + 1];
    *off += 2;
    if (len == 0) {
        lurk_why(why, whylen, "ServerDHParams has an empty %s", what);
        return 0;
    }
    if (len > n - *off) {
        lurk_why(why, whylen, "ServerDHParams %s of %zu bytes but %zu bytes follow", what, len,
                 n - *off);
        return 0;
    }
    v->num = d + *off;
    v->enc_len = len;
    v->num_len = len;
    while (v->num_len > 0 && v->num[0] == 0x00) {
        v->num++;
        v->num_len--;
    }
    *off += len;
    return 1;
}

/* Big-endian compare of two numbers without leading zeros. */
static int lurk_pol_num_cmp(const unsigned char *a, size_t alen, const unsigned char *b,
                            size_t blen)
{
    if (alen != blen) {
        return alen < blen ? -1 : 1;
    }
    return alen == 0 ? 0 : memcmp(a, b, alen);
}

/* ServerDHParams { dh_p, dh_g, dh_Ys } exactly, on a standard group, with
 * 1 < Ys < p - 1 (the check RFC 7919 5.1 makes each peer do).  Numbers are
 * compared by value: Ys may be left-padded with zeros up to the length of
 * dh_p (libssl pads it so, for old Microsoft peers), p and g likewise. */
static int lurk_pol_ske_dhe(const unsigned char *d, size_t n, OSSL_LIB_CTX *libctx, char *why,
                            size_t whylen)
{
    const lurk_dh_group *groups;
    const lurk_dh_group *grp = NULL;
    const char *name = NULL;
    lurk_dh_vec p;
    lurk_dh_vec g;
    lurk_dh_vec ys;
    size_t off = LURK_TLS12_RANDOMS;
    size_t bits;
    unsigned last;

    if (!lurk_pol_dh_vec(d, n, &off, "dh_p", &p, why, whylen)
        || !lurk_pol_dh_vec(d, n, &off, "dh_g", &g, why, whylen)
        || !lurk_pol_dh_vec(d, n, &off, "dh_Ys", &ys, why, whylen)) {
        return 0;
    }
    if (off != n) {
        lurk_why(why, whylen, "%zu bytes after ServerDHParams", n - off);
        return 0;
    }
    bits = p.num_len * 8;
    for (unsigned char top = p.num_len > 0 ? p.num[0] : 0; top != 0 && top < 0x80; top <<= 1) {
        bits--;
    }
    groups = lurk_pol_dh_groups(libctx);
    if (groups == NULL) {
        lurk_why(why, whylen, "the standard DHE groups are unavailable in this OpenSSL");
        return 0;
    }
    for (size_t i = 0; i < LURK_DH_GROUPS; i++) {
        if (lurk_pol_num_cmp(p.num, p.num_len, groups[i].p, groups[i].p_len) == 0) {
            grp = &groups[i];
            name = lurk_dh_group_names[i];
            break;
        }
    }
    if (grp == NULL) {
        lurk_why(why, whylen,
                 "DHE group of %zu bits is not a standard group (" LURK_DH_STD_HINT ")", bits);
        return 0;
    }
    if (lurk_pol_num_cmp(g.num, g.num_len, grp->g, grp->g_len) != 0) {
        lurk_why(why, whylen, "DHE group %s: dh_g is not the group's generator (2)", name);
        return 0;
    }
    if (ys.enc_len > p.enc_len) {
        lurk_why(why, whylen, "DHE %s dh_Ys of %zu bytes is longer than dh_p", name, ys.enc_len);
        return 0;
    }
    /* p is odd, so p - 1 is p with its last byte one less: Ys <= p - 2 is
     * Ys < p - 1, a compare of the leading bytes then the last one. */
    if (ys.num_len < 1 || (ys.num_len == 1 && ys.num[0] < 2)) {
        lurk_why(why, whylen, "DHE %s dh_Ys out of range (below 2)", name);
        return 0;
    }
    if (ys.num_len == grp->p_len) {
        int cmp = memcmp(ys.num, grp->p, grp->p_len - 1);

        last = grp->p[grp->p_len - 1];
        if (cmp > 0 || (cmp == 0 && (unsigned)ys.num[grp->p_len - 1] + 1 >= last)) {
            lurk_why(why, whylen, "DHE %s dh_Ys out of range (above p - 2)", name);
            return 0;
        }
    } else if (ys.num_len > grp->p_len) {
        lurk_why(why, whylen, "DHE %s dh_Ys out of range (above p - 2)", name);
        return 0;
    }
    return 1;
}

/* ServerECDHParams begin with ECCurveType (1, 2 or 3) and are at most 323
 * bytes with the randoms; ServerDHParams begin with the 2-byte length of p,
 * so a p of 256 bytes or more (first byte 1 to 4) makes them 328 bytes or
 * more.  The two forms cannot be mistaken for each other. */
int lurk_srv_is_tls12_ske(const unsigned char *d, size_t n, OSSL_LIB_CTX *libctx, char *why,
                          size_t whylen)
{
    unsigned first;

    if (d == NULL || n < LURK_TLS12_RANDOMS + 4) {
        lurk_why(why, whylen, "too short for two randoms and ServerECDHParams/ServerDHParams");
        return 0;
    }
    first = d[LURK_TLS12_RANDOMS];
    if (first >= 1 && first <= LURK_TLS12_NAMED_CURVE && n <= LURK_TLS12_ECDHE_MAX) {
        return lurk_pol_ske_ecdhe(d, n, libctx, why, whylen);
    }
    return lurk_pol_ske_dhe(d, n, libctx, why, whylen);
}

/* ---- Sign -------------------------------------------------------------- */

static int lurk_pol_alg_fits(lurk_key_type t, lurk_sig_alg a)
{
    switch (t) {
    case LURK_KEY_RSA:
        return a == LURK_SIG_RSA_PKCS1 || a == LURK_SIG_RSA_PSS;
    case LURK_KEY_EC:
        return a == LURK_SIG_ECDSA;
    case LURK_KEY_ED25519:
        return a == LURK_SIG_ED25519;
    default:
        return 0;
    }
}

lurk_err lurk_srv_policy_check_sign(const LURK_SRV_KEY *k, const lurk_request *req,
                                    OSSL_LIB_CTX *libctx, char *why, size_t whylen)
{
    lurk_policy pol = lurk_srv_key_policy(k);
    lurk_key_type type = lurk_srv_key_type(k);
    const char *alg = lurk_sig_alg_name(req->sig_alg);
    int has_data = req->data.data != NULL;
    int has_digest = req->digest.data != NULL;
    size_t hlen = lurk_md_size(req->md);
    char ske_why[160] = "";

    if (pol != LURK_POLICY_TLS_SERVER && pol != LURK_POLICY_SIGN) {
        lurk_why(why, whylen, "policy %s does not allow Sign", lurk_policy_name(pol));
        return LURK_ERR_POLICY_DENIED;
    }
    if (alg == NULL) {
        lurk_why(why, whylen, "Algorithm is missing or unknown");
        return LURK_ERR_NOT_ACCEPTABLE;
    }
    if (!lurk_pol_alg_fits(type, req->sig_alg)) {
        lurk_why(why, whylen, "algorithm %s does not fit a %s key", alg,
                 lurk_key_type_name(type));
        return LURK_ERR_NOT_ACCEPTABLE;
    }
    if (req->sig_alg == LURK_SIG_ED25519) {
        if (req->md != LURK_MD_NONE) {
            lurk_why(why, whylen, "ed25519 takes no DigestAlg");
            return LURK_ERR_NOT_ACCEPTABLE;
        }
        if (has_digest) {
            lurk_why(why, whylen, "ed25519 signs the message itself; send Data, not a Digest");
            return LURK_ERR_NOT_ACCEPTABLE;
        }
    } else if (hlen == 0) {
        lurk_why(why, whylen, "DigestAlg must be sha256, sha384, sha512, sha1 or sha224 for %s",
                 alg);
        return LURK_ERR_NOT_ACCEPTABLE;
    }
    if (has_data == has_digest) {
        lurk_why(why, whylen, "send exactly one of Data or Digest");
        return LURK_ERR_INVALID_FORMAT;
    }
    if (has_digest && req->digest.len != hlen) {
        lurk_why(why, whylen, "Digest has %zu bytes, %s needs %zu", req->digest.len,
                 lurk_md_name(req->md), hlen);
        return LURK_ERR_INVALID_FORMAT;
    }
    if (req->sig_alg == LURK_SIG_RSA_PSS) {
        /* RFC 8017 9.1.1: emLen >= hLen + sLen + 2, emLen = ceil((modBits - 1) / 8). */
        long em_len = (lurk_srv_key_bits(k) - 1 + 7) / 8;
        long max_salt = em_len - (long)hlen - 2;

        if (req->salt_len < 0) {
            lurk_why(why, whylen, "rsa-pss needs SaltLength");
            return LURK_ERR_INVALID_FORMAT;
        }
        if (req->salt_len > max_salt) {
            lurk_why(why, whylen, "SaltLength %d is too large for this key and %s (at most %ld)",
                     req->salt_len, lurk_md_name(req->md), max_salt);
            return LURK_ERR_NOT_ACCEPTABLE;
        }
    } else if (req->salt_len >= 0) {
        lurk_why(why, whylen, "SaltLength is only for rsa-pss");
        return LURK_ERR_INVALID_FORMAT;
    }
    if (lurk_md_is_legacy(req->md) && !(lurk_srv_key_legacy_digests(k) & (1u << req->md))) {
        lurk_why(why, whylen,
                 "%s signatures are off for this key (the key server's legacy_digests setting "
                 "of the key allows them)", lurk_md_name(req->md));
        return LURK_ERR_POLICY_DENIED;
    }

    if (pol == LURK_POLICY_SIGN) {
        return LURK_OK;
    }

    /* tls-server */
    if (has_digest) {
        lurk_why(why, whylen,
                 "policy tls-server signs only TLS handshake messages; send Data, not a digest");
        return LURK_ERR_POLICY_DENIED;
    }
    if (req->sig_alg == LURK_SIG_RSA_PSS && (size_t)req->salt_len != hlen) {
        lurk_why(why, whylen,
                 "policy tls-server needs rsa-pss SaltLength = digest size (%zu), not %d",
                 hlen, req->salt_len);
        return LURK_ERR_POLICY_DENIED;
    }
    if (lurk_srv_is_tls13_server_cv(req->data.data, req->data.len)) {
        /* RFC 8446 4.2.3: RSA signatures in TLS 1.3 are RSASSA-PSS only. */
        if (req->sig_alg == LURK_SIG_RSA_PKCS1) {
            lurk_why(why, whylen,
                     "policy tls-server: TLS 1.3 CertificateVerify is never signed with rsa-pkcs1");
            return LURK_ERR_POLICY_DENIED;
        }
        if (lurk_md_is_legacy(req->md)) {
            lurk_why(why, whylen, "policy tls-server: TLS 1.3 CertificateVerify is never signed "
                     "with %s", lurk_md_name(req->md));
            return LURK_ERR_POLICY_DENIED;
        }
        return LURK_OK;
    }
    if (lurk_srv_is_tls12_ske(req->data.data, req->data.len, libctx, ske_why,
                              sizeof(ske_why))) {
        return LURK_OK;
    }
    lurk_why(why, whylen,
             "policy tls-server: Data is not a TLS 1.3 server CertificateVerify or TLS 1.2 "
             "ServerKeyExchange input (as ServerKeyExchange: %s)", ske_why);
    return LURK_ERR_POLICY_DENIED;
}

/* ---- Decrypt ----------------------------------------------------------- */

lurk_err lurk_srv_policy_check_decrypt(const LURK_SRV_KEY *k, const lurk_request *req,
                                       char *why, size_t whylen)
{
    lurk_policy pol = lurk_srv_key_policy(k);
    lurk_key_type type = lurk_srv_key_type(k);
    size_t mod_len;

    if (type != LURK_KEY_RSA || (pol != LURK_POLICY_TLS_SERVER && pol != LURK_POLICY_DECRYPT)) {
        lurk_why(why, whylen, "policy %s of this %s key does not allow Decrypt",
                 lurk_policy_name(pol), lurk_key_type_name(type));
        return LURK_ERR_POLICY_DENIED;
    }
    if (req->dec_mode != LURK_DEC_TLS_PREMASTER && req->dec_mode != LURK_DEC_OAEP) {
        lurk_why(why, whylen, "Mode is missing or unknown");
        return LURK_ERR_NOT_ACCEPTABLE;
    }
    if (pol == LURK_POLICY_TLS_SERVER && req->dec_mode != LURK_DEC_TLS_PREMASTER) {
        lurk_why(why, whylen, "policy tls-server decrypts only in mode tls-premaster");
        return LURK_ERR_POLICY_DENIED;
    }
    mod_len = ((size_t)lurk_srv_key_bits(k) + 7) / 8;
    if (req->ciphertext.data == NULL || req->ciphertext.len != mod_len) {
        lurk_why(why, whylen, "Data has %zu bytes, the key's modulus %zu",
                 req->ciphertext.len, mod_len);
        return LURK_ERR_INVALID_FORMAT;
    }
    if (req->dec_mode == LURK_DEC_TLS_PREMASTER) {
        if (req->client_version == 0 || req->client_version > 0xffff
            || req->alt_version > 0xffff) {
            lurk_why(why, whylen, "ClientVersion must be a TLS version such as 771 (0x0303)");
            return LURK_ERR_INVALID_FORMAT;
        }
    } else if (lurk_md_size(req->oaep_md) == 0 || lurk_md_is_legacy(req->oaep_md)) {
        lurk_why(why, whylen, "oaep needs OaepDigest sha256, sha384 or sha512");
        return LURK_ERR_NOT_ACCEPTABLE;
    }
    return LURK_OK;
}

/* ---- Agree ------------------------------------------------------------- */

/* The named curve of a DER SubjectPublicKeyInfo, by structure only
 * (SEQUENCE { AlgorithmIdentifier, BIT STRING }); the point itself is
 * checked when the handler decodes the key. */
static int lurk_pol_spki_curve(const unsigned char *der, size_t len)
{
    const unsigned char *p = der;
    const unsigned char *end = der + len;
    const unsigned char *q;
    long clen = 0;
    int tag = 0;
    int xclass = 0;
    X509_ALGOR *a = NULL;
    const ASN1_OBJECT *alg = NULL;
    const void *pval = NULL;
    int ptype = 0;
    int nid = NID_undef;

    if (len > LURK_MAX_DATA) {
        goto end;
    }
    if (ASN1_get_object(&p, &clen, &tag, &xclass, (long)len) & 0x80
        || tag != V_ASN1_SEQUENCE || p + clen != end) {
        goto end;
    }
    q = p;
    a = d2i_X509_ALGOR(NULL, &q, clen);
    if (a == NULL) {
        goto end;
    }
    clen = end - q;
    if (ASN1_get_object(&q, &clen, &tag, &xclass, clen) & 0x80 || tag != V_ASN1_BIT_STRING
        || q + clen != end) {
        goto end;
    }
    X509_ALGOR_get0(&alg, &ptype, &pval, a);
    if (OBJ_obj2nid(alg) != NID_X9_62_id_ecPublicKey || ptype != V_ASN1_OBJECT) {
        goto end;
    }
    nid = OBJ_obj2nid(pval);
end:
    ERR_clear_error();
    X509_ALGOR_free(a);
    return nid;
}

lurk_err lurk_srv_policy_check_agree(const LURK_SRV_KEY *k, const lurk_request *req,
                                     char *why, size_t whylen)
{
    lurk_policy pol = lurk_srv_key_policy(k);
    char group[64] = "";
    int key_nid;
    int peer_nid;

    if (pol != LURK_POLICY_AGREE || lurk_srv_key_type(k) != LURK_KEY_EC) {
        lurk_why(why, whylen, "policy %s of this %s key does not allow Agree",
                 lurk_policy_name(pol), lurk_key_type_name(lurk_srv_key_type(k)));
        return LURK_ERR_POLICY_DENIED;
    }
    if (req->peer_key.data == NULL || req->peer_key.len == 0) {
        lurk_why(why, whylen, "PeerKey is missing");
        return LURK_ERR_INVALID_FORMAT;
    }
    if (!EVP_PKEY_get_group_name(lurk_srv_key_pkey(k), group, sizeof(group), NULL)) {
        ERR_clear_error();
        lurk_why(why, whylen, "the key's curve is unknown");
        return LURK_ERR_INTERNAL;
    }
    key_nid = OBJ_sn2nid(group);
    peer_nid = lurk_pol_spki_curve(req->peer_key.data, req->peer_key.len);
    if (peer_nid == NID_undef) {
        lurk_why(why, whylen, "PeerKey is not an EC SubjectPublicKeyInfo on a named curve");
        return LURK_ERR_NOT_ACCEPTABLE;
    }
    if (peer_nid != key_nid) {
        lurk_why(why, whylen, "PeerKey is on curve %s, the key on %s", OBJ_nid2sn(peer_nid),
                 group);
        return LURK_ERR_NOT_ACCEPTABLE;
    }
    return LURK_OK;
}
