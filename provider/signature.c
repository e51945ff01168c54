/* SPDX-License-Identifier: Apache-2.0 */
/*
 * signature.c - signing with lurk keys: RSA (PKCS#1 v1.5 and PSS), ECDSA,
 * Ed25519.
 *
 * What libssl and the openssl tools need (notes §4.2):
 *  - digest_sign_init is cheap and offline, and refuses every digest the key
 *    server does not know (MD5-SHA1, SHA-3, ...): libssl probes each signature
 *    algorithm with it.  SHA-1 and SHA-224 pass: libssl rejects a certificate
 *    outright when its key cannot do TLS 1.2's default SHA-1, even for static
 *    RSA, which signs nothing.  Whether a key signs them is the key server's
 *    per-key policy (legacy_digests, off by default);
 *  - a size query (sig == NULL) never touches the network;
 *  - one-shot digest_sign hands the whole message to key.c, which decides
 *    whether the server gets the message or its digest (by policy);
 *  - update/final hash locally and sign the digest; dupctx exists because
 *    3.0's EVP_DigestSignFinal duplicates the context;
 *  - pad-mode arrives as an integer (ctrl translation) or a string, the PSS
 *    salt length as "digest"/"max"/"auto"/"auto-digestmax"/a number or an
 *    integer; both are resolved to a number before anything is sent;
 *  - algorithm-id is answered for X.509/CSR signing.
 */
#include "provider.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

#ifndef RSA_PSS_SALTLEN_AUTO_DIGEST_MAX
#define RSA_PSS_SALTLEN_AUTO_DIGEST_MAX -4
#endif

typedef struct {
    LURK_PROV_CTX *prov;
    lurk_key_type type;       /* which algorithm this context implements */
    LURK_KEY *key;
    lurk_sig_alg alg;
    lurk_md md;               /* NONE until set (and always for Ed25519) */
    lurk_md mgf1_md;          /* NONE: same as md */
    int mgf1_bad;             /* a MGF1 digest we cannot do was asked for */
    int saltlen;              /* >= 0 or RSA_PSS_SALTLEN_* */
    EVP_MD_CTX *mdctx;        /* update/final */
} lurk_sig_ctx;

static OSSL_FUNC_signature_freectx_fn lurk_sig_freectx;
static OSSL_FUNC_signature_dupctx_fn lurk_sig_dupctx;
static OSSL_FUNC_signature_set_ctx_params_fn lurk_sig_set_ctx_params;
static OSSL_FUNC_signature_get_ctx_params_fn lurk_sig_get_ctx_params;
static OSSL_FUNC_signature_sign_fn lurk_sig_sign;
static OSSL_FUNC_signature_digest_sign_fn lurk_sig_digest_sign;
static OSSL_FUNC_signature_digest_sign_update_fn lurk_sig_digest_sign_update;
static OSSL_FUNC_signature_digest_sign_final_fn lurk_sig_digest_sign_final;

static void *lurk_sig_newctx_type(void *provctx, lurk_key_type type)
{
    lurk_sig_ctx *ctx = calloc(1, sizeof(*ctx));

    if (ctx == NULL) {
        return NULL;
    }
    ctx->prov = provctx;
    ctx->type = type;
    ctx->alg = type == LURK_KEY_RSA ? LURK_SIG_RSA_PKCS1
               : type == LURK_KEY_EC ? LURK_SIG_ECDSA
                                     : LURK_SIG_ED25519;
    ctx->saltlen = RSA_PSS_SALTLEN_AUTO;   /* OpenSSL's default for signing */
    return ctx;
}

static void *lurk_rsa_sig_newctx(void *provctx, const char *propq)
{
    return lurk_sig_newctx_type(provctx, LURK_KEY_RSA);
}

static void *lurk_ecdsa_sig_newctx(void *provctx, const char *propq)
{
    return lurk_sig_newctx_type(provctx, LURK_KEY_EC);
}

static void *lurk_ed25519_sig_newctx(void *provctx, const char *propq)
{
    return lurk_sig_newctx_type(provctx, LURK_KEY_ED25519);
}

static void lurk_sig_freectx(void *vctx)
{
    lurk_sig_ctx *ctx = vctx;

    if (ctx == NULL) {
        return;
    }
    lurk_key_free(ctx->key);
    EVP_MD_CTX_free(ctx->mdctx);
    free(ctx);
}

static void *lurk_sig_dupctx(void *vctx)
{
    const lurk_sig_ctx *src = vctx;
    lurk_sig_ctx *dst = NULL;

    dst = malloc(sizeof(*dst));
    if (dst == NULL) {
        return NULL;
    }
    *dst = *src;
    dst->mdctx = NULL;
    if (dst->key != NULL) {
        lurk_key_up_ref(dst->key);
    }
    if (src->mdctx != NULL) {
        dst->mdctx = EVP_MD_CTX_new();
        if (dst->mdctx == NULL || !EVP_MD_CTX_copy_ex(dst->mdctx, src->mdctx)) {
            lurk_sig_freectx(dst);
            return NULL;
        }
    }
    return dst;
}

/* Shared by sign_init and digest_sign_init: offline checks only. */
static int lurk_sig_init(lurk_sig_ctx *ctx, void *provkey, const OSSL_PARAM params[])
{
    LURK_KEY *key = provkey;

    if (key != NULL) {
        if (lurk_key_type_of(key) != ctx->type || !lurk_key_has_private(key)) {
            LURK_PROV_RAISE(ctx->prov, LURK_ERR_INVALID_ARG,
                            "this signature needs a lurk %s private key",
                            lurk_key_type_name(ctx->type));
            return 0;
        }
        lurk_key_up_ref(key);
        lurk_key_free(ctx->key);
        ctx->key = key;
    }
    if (ctx->key == NULL) {
        LURK_PROV_RAISE(ctx->prov, LURK_ERR_INVALID_ARG, "no key");
        return 0;
    }
    EVP_MD_CTX_free(ctx->mdctx);
    ctx->mdctx = NULL;
    return lurk_sig_set_ctx_params(ctx, params);
}

static int lurk_sig_sign_init(void *vctx, void *provkey, const OSSL_PARAM params[])
{
    return lurk_sig_init(vctx, provkey, params);
}

static int lurk_sig_set_md(lurk_sig_ctx *ctx, const char *mdname)
{
    lurk_md md;

    if (ctx->type == LURK_KEY_ED25519) {
        if (mdname != NULL && mdname[0] != '\0') {
            LURK_PROV_RAISE(ctx->prov, LURK_ERR_NOT_ACCEPTABLE,
                            "Ed25519 signs the message itself, not a %s digest", mdname);
            return 0;
        }
        return 1;
    }
    md = lurk_md_from_name(mdname);
    if (md == LURK_MD_NONE) {
        LURK_PROV_RAISE(ctx->prov, LURK_ERR_NOT_ACCEPTABLE,
                        "digest %s: the key server signs SHA-256, SHA-384, SHA-512, and "
                        "SHA-1 or SHA-224 for keys that allow them",
                        mdname != NULL ? mdname : "(none)");
        return 0;
    }
    ctx->md = md;
    return 1;
}

static int lurk_sig_digest_sign_init(void *vctx, const char *mdname, void *provkey,
                                     const OSSL_PARAM params[])
{
    lurk_sig_ctx *ctx = vctx;

    if (!lurk_sig_init(ctx, provkey, params)) {
        return 0;
    }
    if (ctx->type != LURK_KEY_ED25519 && (mdname == NULL || mdname[0] == '\0')) {
        mdname = ctx->md != LURK_MD_NONE ? lurk_md_ossl_name(ctx->md) : "SHA2-256";
    }
    return lurk_sig_set_md(ctx, mdname);
}

/* The PSS salt length to send: the special values resolved for this key. */
static int lurk_sig_resolve_saltlen(const lurk_sig_ctx *ctx, int *out)
{
    int hlen = (int)lurk_md_size(ctx->md);
    int em_len = (lurk_key_bits(ctx->key) - 1 + 7) / 8;
    int max = em_len - hlen - 2;

    if (max < 0) {
        return 0;
    }
    switch (ctx->saltlen) {
    case RSA_PSS_SALTLEN_DIGEST:
        *out = hlen;
        break;
    case RSA_PSS_SALTLEN_AUTO:
    case RSA_PSS_SALTLEN_MAX:
        *out = max;
        break;
    case RSA_PSS_SALTLEN_AUTO_DIGEST_MAX:
        *out = hlen < max ? hlen : max;
        break;
    default:
        if (ctx->saltlen < 0 || ctx->saltlen > max) {
            return 0;
        }
        *out = ctx->saltlen;
        break;
    }
    return hlen <= max;
}

/* Checks everything that can be checked before a request is sent. */
static int lurk_sig_prepare(lurk_sig_ctx *ctx, lurk_key_sign_op *op)
{
    memset(op, 0, sizeof(*op));
    if (ctx->key == NULL) {
        LURK_PROV_RAISE(ctx->prov, LURK_ERR_INVALID_ARG, "not initialised");
        return 0;
    }
    op->alg = ctx->alg;
    op->md = ctx->md;
    if (ctx->alg == LURK_SIG_RSA_PSS) {
        if (ctx->mgf1_bad || (ctx->mgf1_md != LURK_MD_NONE && ctx->mgf1_md != ctx->md)) {
            LURK_PROV_RAISE(ctx->prov, LURK_ERR_NOT_ACCEPTABLE,
                            "key %s: RSA-PSS with a MGF1 digest other than the signature "
                            "digest (%s) is not supported", lurk_key_id(ctx->key),
                            lurk_md_name(ctx->md));
            return 0;
        }
        if (!lurk_sig_resolve_saltlen(ctx, &op->salt_len)) {
            LURK_PROV_RAISE(ctx->prov, LURK_ERR_INVALID_ARG,
                            "key %s: PSS salt length %d does not fit a %d-bit key with %s",
                            lurk_key_id(ctx->key), ctx->saltlen, lurk_key_bits(ctx->key),
                            lurk_md_name(ctx->md));
            return 0;
        }
    }
    return 1;
}

static int lurk_sig_sign(void *vctx, unsigned char *sig, size_t *siglen, size_t sigsize,
                         const unsigned char *tbs, size_t tbslen)
{
    lurk_sig_ctx *ctx = vctx;
    lurk_key_sign_op op;

    if (ctx->key == NULL) {
        LURK_PROV_RAISE(ctx->prov, LURK_ERR_INVALID_ARG, "not initialised");
        return 0;
    }
    if (sig == NULL) {
        *siglen = (size_t)lurk_key_max_size(ctx->key);
        return 1;
    }
    if (ctx->md == LURK_MD_NONE) {
        /* EVP_PKEY_sign without a digest set: name it by the input size. */
        ctx->md = tbslen == 32 ? LURK_MD_SHA256
                  : tbslen == 48 ? LURK_MD_SHA384
                  : tbslen == 64 ? LURK_MD_SHA512
                  : tbslen == 20 ? LURK_MD_SHA1
                  : tbslen == 28 ? LURK_MD_SHA224
                                 : LURK_MD_NONE;
        if (ctx->md == LURK_MD_NONE) {
            LURK_PROV_RAISE(ctx->prov, LURK_ERR_NOT_ACCEPTABLE,
                            "key %s: the input (%zu bytes) is not a SHA-1/224/256/384/512 digest; "
                            "raw signing is not offered", lurk_key_id(ctx->key), tbslen);
            return 0;
        }
    }
    if (!lurk_sig_prepare(ctx, &op)) {
        return 0;
    }
    op.digest = tbs;
    op.digest_len = tbslen;
    *siglen = sigsize;
    return lurk_key_sign(ctx->key, &op, sig, siglen);
}

static int lurk_sig_digest_sign(void *vctx, unsigned char *sig, size_t *siglen,
                                size_t sigsize, const unsigned char *tbs, size_t tbslen)
{
    lurk_sig_ctx *ctx = vctx;
    lurk_key_sign_op op;

    if (ctx->key == NULL) {
        LURK_PROV_RAISE(ctx->prov, LURK_ERR_INVALID_ARG, "not initialised");
        return 0;
    }
    if (sig == NULL) {
        *siglen = (size_t)lurk_key_max_size(ctx->key);
        return 1;
    }
    if (!lurk_sig_prepare(ctx, &op)) {
        return 0;
    }
    op.msg = tbs;
    op.msg_len = tbslen;
    *siglen = sigsize;
    return lurk_key_sign(ctx->key, &op, sig, siglen);
}

static int lurk_sig_digest_sign_update(void *vctx, const unsigned char *data, size_t datalen)
{
    lurk_sig_ctx *ctx = vctx;

    if (ctx->key == NULL || ctx->md == LURK_MD_NONE) {
        return 0;
    }
    if (ctx->mdctx == NULL) {
        ctx->mdctx = EVP_MD_CTX_new();
        if (ctx->mdctx == NULL
            || !EVP_DigestInit_ex(ctx->mdctx, lurk_prov_evp_md(ctx->prov, ctx->md), NULL)) {
            EVP_MD_CTX_free(ctx->mdctx);
            ctx->mdctx = NULL;
            return 0;
        }
    }
    return EVP_DigestUpdate(ctx->mdctx, data, datalen);
}

static int lurk_sig_digest_sign_final(void *vctx, unsigned char *sig, size_t *siglen,
                                      size_t sigsize)
{
    lurk_sig_ctx *ctx = vctx;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    lurk_key_sign_op op;

    if (ctx->key == NULL) {
        return 0;
    }
    if (sig == NULL) {
        *siglen = (size_t)lurk_key_max_size(ctx->key);
        return 1;
    }
    if (ctx->mdctx == NULL && !lurk_sig_digest_sign_update(ctx, NULL, 0)) {
        return 0;
    }
    if (!EVP_DigestFinal_ex(ctx->mdctx, digest, &dlen) || !lurk_sig_prepare(ctx, &op)) {
        return 0;
    }
    op.digest = digest;
    op.digest_len = dlen;
    *siglen = sigsize;
    return lurk_key_sign(ctx->key, &op, sig, siglen);
}

/* ---- parameters ---------------------------------------------------------- */

static int lurk_sig_set_pad_mode(lurk_sig_ctx *ctx, const OSSL_PARAM *p)
{
    int mode = 0;

    if (p->data_type == OSSL_PARAM_UTF8_STRING) {
        if (strcmp(p->data, OSSL_PKEY_RSA_PAD_MODE_PKCSV15) == 0) {
            mode = RSA_PKCS1_PADDING;
        } else if (strcmp(p->data, OSSL_PKEY_RSA_PAD_MODE_PSS) == 0) {
            mode = RSA_PKCS1_PSS_PADDING;
        }
    } else if (!OSSL_PARAM_get_int(p, &mode)) {
        return 0;
    }
    switch (mode) {
    case RSA_PKCS1_PADDING:
        ctx->alg = LURK_SIG_RSA_PKCS1;
        return 1;
    case RSA_PKCS1_PSS_PADDING:
        ctx->alg = LURK_SIG_RSA_PSS;
        return 1;
    default:
        LURK_PROV_RAISE(ctx->prov, LURK_ERR_NOT_ACCEPTABLE,
                        "RSA padding mode %d: only PKCS#1 v1.5 and PSS signatures are offered",
                        mode);
        return 0;
    }
}

static int lurk_sig_set_saltlen(lurk_sig_ctx *ctx, const OSSL_PARAM *p)
{
    int saltlen = 0;

    if (p->data_type == OSSL_PARAM_UTF8_STRING) {
        const char *s = p->data;
        char *end = NULL;

        if (strcmp(s, OSSL_PKEY_RSA_PSS_SALT_LEN_DIGEST) == 0) {
            saltlen = RSA_PSS_SALTLEN_DIGEST;
        } else if (strcmp(s, OSSL_PKEY_RSA_PSS_SALT_LEN_MAX) == 0) {
            saltlen = RSA_PSS_SALTLEN_MAX;
        } else if (strcmp(s, OSSL_PKEY_RSA_PSS_SALT_LEN_AUTO) == 0) {
            saltlen = RSA_PSS_SALTLEN_AUTO;
        } else if (strcmp(s, "auto-digestmax") == 0) {
            saltlen = RSA_PSS_SALTLEN_AUTO_DIGEST_MAX;
        } else {
            long v = strtol(s, &end, 10);

            if (end == s || *end != '\0' || v < 0 || v > 4096) {
                return 0;
            }
            saltlen = (int)v;
        }
    } else if (!OSSL_PARAM_get_int(p, &saltlen)) {
        return 0;
    }
    if (saltlen < RSA_PSS_SALTLEN_AUTO_DIGEST_MAX) {
        return 0;
    }
    ctx->saltlen = saltlen;
    return 1;
}

static int lurk_sig_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    lurk_sig_ctx *ctx = vctx;
    const OSSL_PARAM *p;

    if (params == NULL) {
        return 1;
    }
    p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_DIGEST);
    if (p != NULL) {
        const char *name = NULL;

        if (!OSSL_PARAM_get_utf8_string_ptr(p, &name) || !lurk_sig_set_md(ctx, name)) {
            return 0;
        }
    }
    if (ctx->type != LURK_KEY_RSA) {
        return 1;
    }
    p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PAD_MODE);
    if (p != NULL && !lurk_sig_set_pad_mode(ctx, p)) {
        return 0;
    }
    p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN);
    if (p != NULL && !lurk_sig_set_saltlen(ctx, p)) {
        return 0;
    }
    p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_MGF1_DIGEST);
    if (p != NULL) {
        const char *name = NULL;

        if (!OSSL_PARAM_get_utf8_string_ptr(p, &name)) {
            return 0;
        }
        ctx->mgf1_md = lurk_md_from_name(name);
        ctx->mgf1_bad = ctx->mgf1_md == LURK_MD_NONE;
    }
    return 1;
}

static const OSSL_PARAM lurk_rsa_sig_settable[] = {
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PROPERTIES, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_PROPERTIES, NULL, 0),
    OSSL_PARAM_END
};

static const OSSL_PARAM lurk_ecdsa_sig_settable[] = {
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PROPERTIES, NULL, 0),
    OSSL_PARAM_END
};

static const OSSL_PARAM lurk_ed25519_sig_settable[] = {
    OSSL_PARAM_END
};

static const OSSL_PARAM *lurk_rsa_sig_settable_ctx_params(void *vctx, void *provctx)
{
    return lurk_rsa_sig_settable;
}

static const OSSL_PARAM *lurk_ecdsa_sig_settable_ctx_params(void *vctx, void *provctx)
{
    return lurk_ecdsa_sig_settable;
}

static const OSSL_PARAM *lurk_ed25519_sig_settable_ctx_params(void *vctx, void *provctx)
{
    return lurk_ed25519_sig_settable;
}

/* DER writer for AlgorithmIdentifiers: short definite lengths suffice. */
typedef struct {
    unsigned char buf[128];
    size_t len;
    int ok;
} lurk_der;

static void lurk_der_put(lurk_der *d, const void *bytes, size_t n)
{
    if (!d->ok || d->len + n > sizeof(d->buf)) {
        d->ok = 0;
        return;
    }
    memcpy(d->buf + d->len, bytes, n);
    d->len += n;
}

/* Wraps d->buf[from..] in a tag with a short-form length. */
static void lurk_der_wrap(lurk_der *d, size_t from, unsigned char tag)
{
    size_t n = d->len - from;

    if (!d->ok || n > 127 || d->len + 2 > sizeof(d->buf)) {
        d->ok = 0;
        return;
    }
    memmove(d->buf + from + 2, d->buf + from, n);
    d->buf[from] = tag;
    d->buf[from + 1] = (unsigned char)n;
    d->len += 2;
}

static const unsigned char lurk_oid_sha2[] = { 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
                                               0x03, 0x04, 0x02, 0x00 };
static const unsigned char lurk_oid_pkcs1[] = { 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7,
                                                0x0d, 0x01, 0x01, 0x00 };
static const unsigned char lurk_oid_ecdsa_sha2[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
                                                     0x3d, 0x04, 0x03, 0x00 };
/* ecdsa-with-SHA1 = 1.2.840.10045.4.1 */
static const unsigned char lurk_oid_ecdsa_sha1[] = { 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce,
                                                     0x3d, 0x04, 0x01 };
static const unsigned char lurk_oid_ed25519[] = { 0x06, 0x03, 0x2b, 0x65, 0x70 };
static const unsigned char lurk_der_null[] = { 0x05, 0x00 };

/* Writes an OID from a template whose last arc is `last`. */
static void lurk_der_oid(lurk_der *d, const unsigned char *tmpl, size_t n, unsigned char last)
{
    size_t at = d->len;

    lurk_der_put(d, tmpl, n);
    if (d->ok) {
        d->buf[at + n - 1] = last;
    }
}

static void lurk_der_hash_alg(lurk_der *d, lurk_md md)
{
    size_t at = d->len;

    lurk_der_oid(d, lurk_oid_sha2, sizeof(lurk_oid_sha2),
                 md == LURK_MD_SHA256   ? 1
                 : md == LURK_MD_SHA384 ? 2
                 : md == LURK_MD_SHA224 ? 4
                                        : 3);
    lurk_der_put(d, lurk_der_null, sizeof(lurk_der_null));
    lurk_der_wrap(d, at, 0x30);
}

static int lurk_sig_algorithm_id(const lurk_sig_ctx *ctx, lurk_der *d)
{
    size_t at = 0, params_at, mgf_at, salt_at;
    int salt = 0;
    unsigned char sb[3];

    d->len = 0;
    d->ok = 1;
    switch (ctx->alg) {
    case LURK_SIG_ED25519:
        lurk_der_put(d, lurk_oid_ed25519, sizeof(lurk_oid_ed25519));
        break;
    case LURK_SIG_ECDSA:
        if (ctx->md == LURK_MD_SHA1) {
            lurk_der_put(d, lurk_oid_ecdsa_sha1, sizeof(lurk_oid_ecdsa_sha1));
            break;
        }
        /* ecdsa-with-SHA224/256/384/512 = 1.2.840.10045.4.3.1/2/3/4 */
        lurk_der_oid(d, lurk_oid_ecdsa_sha2, sizeof(lurk_oid_ecdsa_sha2),
                     ctx->md == LURK_MD_SHA256   ? 2
                     : ctx->md == LURK_MD_SHA384 ? 3
                     : ctx->md == LURK_MD_SHA224 ? 1
                                                 : 4);
        break;
    case LURK_SIG_RSA_PKCS1:
        /* sha1/256/384/512/224WithRSAEncryption = 1.2.840.113549.1.1.5/11/12/13/14 */
        lurk_der_oid(d, lurk_oid_pkcs1, sizeof(lurk_oid_pkcs1),
                     ctx->md == LURK_MD_SHA256   ? 11
                     : ctx->md == LURK_MD_SHA384 ? 12
                     : ctx->md == LURK_MD_SHA1   ? 5
                     : ctx->md == LURK_MD_SHA224 ? 14
                                                 : 13);
        lurk_der_put(d, lurk_der_null, sizeof(lurk_der_null));
        break;
    case LURK_SIG_RSA_PSS:
        /* RSASSA-PSS (…1.1.10) with RSASSA-PSS-params (RFC 4055); SHA-1,
         * the params' default, is not written here: no identifier. */
        if (ctx->md == LURK_MD_SHA1 || !lurk_sig_resolve_saltlen(ctx, &salt)) {
            return 0;
        }
        lurk_der_oid(d, lurk_oid_pkcs1, sizeof(lurk_oid_pkcs1), 10);
        params_at = d->len;
        at = d->len;
        lurk_der_hash_alg(d, ctx->md);
        lurk_der_wrap(d, at, 0xa0);
        mgf_at = d->len;
        lurk_der_oid(d, lurk_oid_pkcs1, sizeof(lurk_oid_pkcs1), 8);   /* id-mgf1 */
        lurk_der_hash_alg(d, ctx->md);
        lurk_der_wrap(d, mgf_at, 0x30);
        lurk_der_wrap(d, mgf_at, 0xa1);
        salt_at = d->len;
        if (salt > 127) {
            sb[0] = 0x02, sb[1] = 0x02, sb[2] = 0;
            lurk_der_put(d, sb, 2);
            sb[0] = (unsigned char)(salt >> 8);
            sb[1] = (unsigned char)salt;
            lurk_der_put(d, sb, 2);
        } else {
            sb[0] = 0x02, sb[1] = 0x01, sb[2] = (unsigned char)salt;
            lurk_der_put(d, sb, 3);
        }
        lurk_der_wrap(d, salt_at, 0xa2);
        lurk_der_wrap(d, params_at, 0x30);
        break;
    default:
        return 0;
    }
    lurk_der_wrap(d, 0, 0x30);
    return d->ok;
}

static int lurk_sig_get_ctx_params(void *vctx, OSSL_PARAM params[])
{
    lurk_sig_ctx *ctx = vctx;
    OSSL_PARAM *p;
    lurk_der der;

    p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_ALGORITHM_ID);
    if (p != NULL) {
        if ((ctx->type != LURK_KEY_ED25519 && ctx->md == LURK_MD_NONE) || ctx->key == NULL
            || !lurk_sig_algorithm_id(ctx, &der)
            || !OSSL_PARAM_set_octet_string(p, der.buf, der.len)) {
            return 0;
        }
    }
    p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_DIGEST);
    if (p != NULL && ctx->md != LURK_MD_NONE
        && !OSSL_PARAM_set_utf8_string(p, lurk_md_ossl_name(ctx->md))) {
        return 0;
    }
    if (ctx->type != LURK_KEY_RSA) {
        return 1;
    }
    p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_PAD_MODE);
    if (p != NULL) {
        int mode = ctx->alg == LURK_SIG_RSA_PSS ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING;
        const char *name = ctx->alg == LURK_SIG_RSA_PSS ? OSSL_PKEY_RSA_PAD_MODE_PSS
                                                         : OSSL_PKEY_RSA_PAD_MODE_PKCSV15;

        if (p->data_type == OSSL_PARAM_UTF8_STRING ? !OSSL_PARAM_set_utf8_string(p, name)
                                                   : !OSSL_PARAM_set_int(p, mode)) {
            return 0;
        }
    }
    p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN);
    if (p != NULL) {
        if (p->data_type == OSSL_PARAM_UTF8_STRING) {
            char buf[32];
            const char *s = buf;

            switch (ctx->saltlen) {
            case RSA_PSS_SALTLEN_DIGEST:
                s = OSSL_PKEY_RSA_PSS_SALT_LEN_DIGEST;
                break;
            case RSA_PSS_SALTLEN_MAX:
                s = OSSL_PKEY_RSA_PSS_SALT_LEN_MAX;
                break;
            case RSA_PSS_SALTLEN_AUTO:
                s = OSSL_PKEY_RSA_PSS_SALT_LEN_AUTO;
                break;
            case RSA_PSS_SALTLEN_AUTO_DIGEST_MAX:
                s = "auto-digestmax";
                break;
            default:
                snprintf(buf, sizeof(buf), "%d", ctx->saltlen);
                break;
            }
            if (!OSSL_PARAM_set_utf8_string(p, s)) {
                return 0;
            }
        } else if (!OSSL_PARAM_set_int(p, ctx->saltlen)) {
            return 0;
        }
    }
    p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_MGF1_DIGEST);
    if (p != NULL && ctx->md != LURK_MD_NONE
        && !OSSL_PARAM_set_utf8_string(p, lurk_md_ossl_name(ctx->md))) {
        return 0;
    }
    return 1;
}

static const OSSL_PARAM lurk_rsa_sig_gettable[] = {
    OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, NULL, 0),
    OSSL_PARAM_END
};

static const OSSL_PARAM lurk_other_sig_gettable[] = {
    OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
    OSSL_PARAM_END
};

static const OSSL_PARAM *lurk_rsa_sig_gettable_ctx_params(void *vctx, void *provctx)
{
    return lurk_rsa_sig_gettable;
}

static const OSSL_PARAM *lurk_other_sig_gettable_ctx_params(void *vctx, void *provctx)
{
    return lurk_other_sig_gettable;
}

/* ---- dispatch tables ----------------------------------------------------- */

#define LURK_SIG_COMMON                                                                 \
    { OSSL_FUNC_SIGNATURE_FREECTX, (void (*)(void))lurk_sig_freectx },                   \
    { OSSL_FUNC_SIGNATURE_DUPCTX, (void (*)(void))lurk_sig_dupctx },                     \
    { OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, (void (*)(void))lurk_sig_digest_sign_init }, \
    { OSSL_FUNC_SIGNATURE_DIGEST_SIGN, (void (*)(void))lurk_sig_digest_sign },           \
    { OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, (void (*)(void))lurk_sig_set_ctx_params },     \
    { OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, (void (*)(void))lurk_sig_get_ctx_params }

#define LURK_SIG_DIGEST                                                                 \
    { OSSL_FUNC_SIGNATURE_SIGN_INIT, (void (*)(void))lurk_sig_sign_init },               \
    { OSSL_FUNC_SIGNATURE_SIGN, (void (*)(void))lurk_sig_sign },                         \
    { OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, (void (*)(void))lurk_sig_digest_sign_update }, \
    { OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, (void (*)(void))lurk_sig_digest_sign_final }

const OSSL_DISPATCH lurk_rsa_signature_functions[] = {
    { OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))lurk_rsa_sig_newctx },
    LURK_SIG_COMMON,
    LURK_SIG_DIGEST,
    { OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, (void (*)(void))lurk_rsa_sig_settable_ctx_params },
    { OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS, (void (*)(void))lurk_rsa_sig_gettable_ctx_params },
    { 0, NULL }
};

const OSSL_DISPATCH lurk_ecdsa_signature_functions[] = {
    { OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))lurk_ecdsa_sig_newctx },
    LURK_SIG_COMMON,
    LURK_SIG_DIGEST,
    { OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS,
      (void (*)(void))lurk_ecdsa_sig_settable_ctx_params },
    { OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS,
      (void (*)(void))lurk_other_sig_gettable_ctx_params },
    { 0, NULL }
};

const OSSL_DISPATCH lurk_ed25519_signature_functions[] = {
    { OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))lurk_ed25519_sig_newctx },
    LURK_SIG_COMMON,
    { OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS,
      (void (*)(void))lurk_ed25519_sig_settable_ctx_params },
    { OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS,
      (void (*)(void))lurk_other_sig_gettable_ctx_params },
    { 0, NULL }
};
