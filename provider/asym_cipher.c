/* SPDX-License-Identifier: Apache-2.0 */
/*
 * asym_cipher.c - RSA decryption with lurk keys.
 *
 * Two modes only, both done by the key server:
 *  - TLS 1.2 RSA key exchange: libssl sets RSA_PKCS1_WITH_TLS_PADDING (an
 *    integer; there is no string form) and the client version; the result is
 *    always 48 bytes.  The key server checks padding and version and answers
 *    a random premaster when they are wrong (implicit rejection, one reply
 *    shape), so nothing here can tell good input from bad.  The ciphertext's
 *    length and value against the modulus are public facts, settled here as
 *    the default provider settles them with a key file (lurk_dec_tls_input);
 *  - OAEP with SHA-256/384/512 (MGF1 with the same digest), optional label.
 * Every other padding is refused: a raw or PKCS#1 v1.5 decryption oracle is
 * exactly what the key server must not be.  Encryption is not offered (it
 * needs only the public key: the default provider does it).
 */
#include "provider.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

#define LURK_TLS_PREMASTER_LEN 48

typedef struct {
    LURK_PROV_CTX *prov;
    LURK_KEY *key;
    int pad_mode;              /* RSA_*_PADDING; 0 = not set */
    unsigned client_version;
    unsigned alt_version;
    lurk_md oaep_md;           /* NONE = OpenSSL's default, SHA-1: refused */
    lurk_md mgf1_md;           /* NONE = same as oaep_md */
    int md_bad;                /* a digest we cannot do was named */
    unsigned char *label;
    size_t label_len;
} lurk_dec_ctx;

static OSSL_FUNC_asym_cipher_set_ctx_params_fn lurk_dec_set_ctx_params;

static void *lurk_dec_newctx(void *provctx)
{
    lurk_dec_ctx *ctx = calloc(1, sizeof(*ctx));

    if (ctx != NULL) {
        ctx->prov = provctx;
        ctx->pad_mode = RSA_PKCS1_PADDING;   /* OpenSSL's default: refused at decrypt */
    }
    return ctx;
}

static void lurk_dec_freectx(void *vctx)
{
    lurk_dec_ctx *ctx = vctx;

    if (ctx == NULL) {
        return;
    }
    lurk_key_free(ctx->key);
    OPENSSL_clear_free(ctx->label, ctx->label_len);
    free(ctx);
}

static void *lurk_dec_dupctx(void *vctx)
{
    const lurk_dec_ctx *src = vctx;
    lurk_dec_ctx *dst = malloc(sizeof(*dst));

    if (dst == NULL) {
        return NULL;
    }
    *dst = *src;
    dst->label = NULL;
    if (src->label != NULL) {
        dst->label = OPENSSL_memdup(src->label, src->label_len);
        if (dst->label == NULL) {
            free(dst);
            return NULL;
        }
    }
    if (dst->key != NULL) {
        lurk_key_up_ref(dst->key);
    }
    return dst;
}

static int lurk_dec_decrypt_init(void *vctx, void *provkey, const OSSL_PARAM params[])
{
    lurk_dec_ctx *ctx = vctx;
    LURK_KEY *key = provkey;

    if (key == NULL || lurk_key_type_of(key) != LURK_KEY_RSA || !lurk_key_has_private(key)) {
        LURK_PROV_RAISE(ctx->prov, LURK_ERR_INVALID_ARG, "decryption needs a lurk RSA key");
        return 0;
    }
    lurk_key_up_ref(key);
    lurk_key_free(ctx->key);
    ctx->key = key;
    return lurk_dec_set_ctx_params(ctx, params);
}

/*
 * The TLS premaster ciphertext as OpenSSL reads it with a key file (3.0:
 * rsa_enc.c rsa_decrypt -> rsa_ossl_private_decrypt, RSA_NO_PADDING, then the
 * constant-time TLS padding check):
 *  - longer than the modulus: an error (RSA_R_DATA_GREATER_THAN_MOD_LEN);
 *  - shorter: the same number with leading zeros (BN_bin2bn), decrypted as
 *    usual: a real premaster when it is one, else a random one.  Clients that
 *    drop a leading zero byte send such ciphertexts;
 *  - a number not below the modulus: an error (RSA_R_DATA_TOO_LARGE_FOR_MODULUS).
 * libssl answers decrypt_error to the errors and carries on with the random
 * premaster otherwise (bad_record_mac at Finished).  All three depend on the
 * public key only, so deciding them here opens no oracle; the key server gets
 * exactly k bytes below n, and everything that depends on the private key
 * stays on its side, in one reply shape.  *padded is k bytes, the caller's.
 */
static int lurk_dec_tls_input(lurk_dec_ctx *ctx, const unsigned char *in, size_t inlen,
                              unsigned char **padded, size_t *padded_len)
{
    size_t k = (size_t)lurk_key_max_size(ctx->key);
    EVP_PKEY *pub = lurk_key_pub(ctx->key);
    BIGNUM *n = NULL;
    unsigned char *buf = NULL;
    unsigned char *nbuf = NULL;
    int ok = 0;

    if (inlen > k) {
        LURK_PROV_RAISE(ctx->prov, LURK_ERR_INVALID_FORMAT,
                        "key %s: TLS premaster ciphertext has %zu bytes, the modulus %zu",
                        lurk_key_id(ctx->key), inlen, k);
        goto end;
    }
    buf = OPENSSL_zalloc(k);
    nbuf = OPENSSL_malloc(k);
    if (buf == NULL || nbuf == NULL || pub == NULL
        || EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_RSA_N, &n) != 1
        || BN_bn2binpad(n, nbuf, (int)k) != (int)k) {
        LURK_PROV_RAISE(ctx->prov, LURK_ERR_INTERNAL, "key %s: no RSA modulus",
                        lurk_key_id(ctx->key));
        goto end;
    }
    if (inlen > 0) {
        memcpy(buf + (k - inlen), in, inlen);
    }
    /* equal-length big-endian: memcmp orders them as numbers (public data) */
    if (memcmp(buf, nbuf, k) >= 0) {
        LURK_PROV_RAISE(ctx->prov, LURK_ERR_INVALID_FORMAT,
                        "key %s: TLS premaster ciphertext is not below the modulus",
                        lurk_key_id(ctx->key));
        goto end;
    }
    *padded = buf;
    *padded_len = k;
    buf = NULL;
    ok = 1;
end:
    OPENSSL_free(buf);
    OPENSSL_free(nbuf);
    BN_free(n);
    return ok;
}

static int lurk_dec_decrypt(void *vctx, unsigned char *out, size_t *outlen, size_t outsize,
                            const unsigned char *in, size_t inlen)
{
    lurk_dec_ctx *ctx = vctx;
    lurk_decrypt_params p = { 0 };
    unsigned char *padded = NULL;   /* a ciphertext: public */
    size_t padded_len = 0;
    size_t need;
    int ok;

    if (ctx->key == NULL) {
        return 0;
    }
    if (ctx->pad_mode == RSA_PKCS1_WITH_TLS_PADDING) {
        p.mode = LURK_DEC_TLS_PREMASTER;
        need = LURK_TLS_PREMASTER_LEN;
    } else if (ctx->pad_mode == RSA_PKCS1_OAEP_PADDING) {
        p.mode = LURK_DEC_OAEP;
        need = (size_t)lurk_key_max_size(ctx->key);
    } else {
        LURK_PROV_RAISE(ctx->prov, LURK_ERR_NOT_ACCEPTABLE,
                        "key %s: RSA padding mode %d: only OAEP and TLS premaster decryption "
                        "are offered", lurk_key_id(ctx->key), ctx->pad_mode);
        return 0;
    }
    if (out == NULL) {
        *outlen = need;
        return 1;
    }
    if (p.mode == LURK_DEC_TLS_PREMASTER) {
        if (ctx->client_version == 0) {
            LURK_PROV_RAISE(ctx->prov, LURK_ERR_INVALID_ARG,
                            "key %s: TLS premaster decryption needs tls-client-version",
                            lurk_key_id(ctx->key));
            return 0;
        }
        if (outsize < need) {
            LURK_PROV_RAISE(ctx->prov, LURK_ERR_INVALID_ARG, "output buffer too small");
            return 0;
        }
        if (!lurk_dec_tls_input(ctx, in, inlen, &padded, &padded_len)) {
            return 0;
        }
        in = padded;
        inlen = padded_len;
        p.client_version = ctx->client_version;
        p.alt_version = ctx->alt_version;
    } else {
        if (ctx->md_bad || ctx->oaep_md == LURK_MD_NONE
            || (ctx->mgf1_md != LURK_MD_NONE && ctx->mgf1_md != ctx->oaep_md)) {
            LURK_PROV_RAISE(ctx->prov, LURK_ERR_NOT_ACCEPTABLE,
                            "key %s: OAEP needs SHA-256, SHA-384 or SHA-512 for both the OAEP "
                            "and the MGF1 digest (OpenSSL's default is SHA-1)",
                            lurk_key_id(ctx->key));
            return 0;
        }
        p.oaep_md = ctx->oaep_md;
        p.label = ctx->label;
        p.label_len = ctx->label_len;
    }
    p.in = in;
    p.in_len = inlen;
    *outlen = outsize;
    ok = lurk_key_decrypt(ctx->key, &p, out, outlen);
    OPENSSL_free(padded);
    return ok;
}

static int lurk_dec_set_md(lurk_dec_ctx *ctx, const OSSL_PARAM *p, lurk_md *out)
{
    const char *name = NULL;

    if (!OSSL_PARAM_get_utf8_string_ptr(p, &name)) {
        return 0;
    }
    *out = lurk_md_from_name(name);
    if (*out == LURK_MD_NONE || lurk_md_is_legacy(*out)) {
        *out = LURK_MD_NONE;
        ctx->md_bad = 1;   /* refused at decrypt, with the reason */
    }
    return 1;
}

static int lurk_dec_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    lurk_dec_ctx *ctx = vctx;
    const OSSL_PARAM *p;

    if (params == NULL) {
        return 1;
    }
    p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_PAD_MODE);
    if (p != NULL) {
        if (p->data_type == OSSL_PARAM_UTF8_STRING) {
            if (strcmp(p->data, OSSL_PKEY_RSA_PAD_MODE_OAEP) == 0) {
                ctx->pad_mode = RSA_PKCS1_OAEP_PADDING;
            } else if (strcmp(p->data, OSSL_PKEY_RSA_PAD_MODE_PKCSV15) == 0) {
                ctx->pad_mode = RSA_PKCS1_PADDING;
            } else {
                ctx->pad_mode = -1;
            }
        } else if (!OSSL_PARAM_get_int(p, &ctx->pad_mode)) {
            return 0;
        }
    }
    p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION);
    if (p != NULL && !OSSL_PARAM_get_uint(p, &ctx->client_version)) {
        return 0;
    }
    p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_TLS_NEGOTIATED_VERSION);
    if (p != NULL && !OSSL_PARAM_get_uint(p, &ctx->alt_version)) {
        return 0;
    }
    p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST);
    if (p != NULL && !lurk_dec_set_md(ctx, p, &ctx->oaep_md)) {
        return 0;
    }
    p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST);
    if (p != NULL && !lurk_dec_set_md(ctx, p, &ctx->mgf1_md)) {
        return 0;
    }
    p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL);
    if (p != NULL) {
        void *label = NULL;
        size_t len = 0;

        if (!OSSL_PARAM_get_octet_string(p, &label, 0, &len)) {
            return 0;
        }
        OPENSSL_clear_free(ctx->label, ctx->label_len);
        ctx->label = label;
        ctx->label_len = len;
    }
    return 1;
}

static const OSSL_PARAM lurk_dec_settable[] = {
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, NULL, 0),
    OSSL_PARAM_uint(OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION, NULL),
    OSSL_PARAM_uint(OSSL_ASYM_CIPHER_PARAM_TLS_NEGOTIATED_VERSION, NULL),
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST_PROPS, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST_PROPS, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL, NULL, 0),
    OSSL_PARAM_END
};

static const OSSL_PARAM *lurk_dec_settable_ctx_params(void *vctx, void *provctx)
{
    return lurk_dec_settable;
}

static int lurk_dec_get_ctx_params(void *vctx, OSSL_PARAM params[])
{
    lurk_dec_ctx *ctx = vctx;
    OSSL_PARAM *p;

    p = OSSL_PARAM_locate(params, OSSL_ASYM_CIPHER_PARAM_PAD_MODE);
    if (p != NULL) {
        if (p->data_type == OSSL_PARAM_UTF8_STRING) {
            const char *name = ctx->pad_mode == RSA_PKCS1_OAEP_PADDING
                                   ? OSSL_PKEY_RSA_PAD_MODE_OAEP
                                   : OSSL_PKEY_RSA_PAD_MODE_PKCSV15;

            if (!OSSL_PARAM_set_utf8_string(p, name)) {
                return 0;
            }
        } else if (!OSSL_PARAM_set_int(p, ctx->pad_mode)) {
            return 0;
        }
    }
    p = OSSL_PARAM_locate(params, OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST);
    if (p != NULL && ctx->oaep_md != LURK_MD_NONE
        && !OSSL_PARAM_set_utf8_string(p, lurk_md_ossl_name(ctx->oaep_md))) {
        return 0;
    }
    p = OSSL_PARAM_locate(params, OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION);
    if (p != NULL && !OSSL_PARAM_set_uint(p, ctx->client_version)) {
        return 0;
    }
    p = OSSL_PARAM_locate(params, OSSL_ASYM_CIPHER_PARAM_TLS_NEGOTIATED_VERSION);
    if (p != NULL && !OSSL_PARAM_set_uint(p, ctx->alt_version)) {
        return 0;
    }
    return 1;
}

static const OSSL_PARAM lurk_dec_gettable[] = {
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, NULL, 0),
    OSSL_PARAM_uint(OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION, NULL),
    OSSL_PARAM_uint(OSSL_ASYM_CIPHER_PARAM_TLS_NEGOTIATED_VERSION, NULL),
    OSSL_PARAM_END
};

static const OSSL_PARAM *lurk_dec_gettable_ctx_params(void *vctx, void *provctx)
{
    return lurk_dec_gettable;
}

const OSSL_DISPATCH lurk_rsa_asym_cipher_functions[] = {
    { OSSL_FUNC_ASYM_CIPHER_NEWCTX, (void (*)(void))lurk_dec_newctx },
    { OSSL_FUNC_ASYM_CIPHER_FREECTX, (void (*)(void))lurk_dec_freectx },
    { OSSL_FUNC_ASYM_CIPHER_DUPCTX, (void (*)(void))lurk_dec_dupctx },
    { OSSL_FUNC_ASYM_CIPHER_DECRYPT_INIT, (void (*)(void))lurk_dec_decrypt_init },
    { OSSL_FUNC_ASYM_CIPHER_DECRYPT, (void (*)(void))lurk_dec_decrypt },
    { OSSL_FUNC_ASYM_CIPHER_SET_CTX_PARAMS, (void (*)(void))lurk_dec_set_ctx_params },
    { OSSL_FUNC_ASYM_CIPHER_SETTABLE_CTX_PARAMS, (void (*)(void))lurk_dec_settable_ctx_params },
    { OSSL_FUNC_ASYM_CIPHER_GET_CTX_PARAMS, (void (*)(void))lurk_dec_get_ctx_params },
    { OSSL_FUNC_ASYM_CIPHER_GETTABLE_CTX_PARAMS, (void (*)(void))lurk_dec_gettable_ctx_params },
    { 0, NULL }
};
