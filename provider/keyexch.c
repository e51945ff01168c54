/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keyexch.c - ECDH with lurk EC keys, computed by the key server.
 *
 * TLS never uses it (no static ECDH suites); it exists for keys whose policy
 * is `agree` (openssl pkeyutl -derive and applications).  The peer arrives
 * as a public-only key imported into our EC keymgmt and is sent as its
 * SubjectPublicKeyInfo.  The shared secret is the plain x coordinate (no
 * KDF, no cofactor mode): the same as the default provider's ECDH.
 */
#include "provider.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

typedef struct {
    LURK_PROV_CTX *prov;
    LURK_KEY *key;
    LURK_KEY *peer;
} lurk_ecdh_ctx;

static void *lurk_ecdh_newctx(void *provctx)
{
    lurk_ecdh_ctx *ctx = calloc(1, sizeof(*ctx));

    if (ctx != NULL) {
        ctx->prov = provctx;
    }
    return ctx;
}

static void lurk_ecdh_freectx(void *vctx)
{
    lurk_ecdh_ctx *ctx = vctx;

    if (ctx == NULL) {
        return;
    }
    lurk_key_free(ctx->key);
    lurk_key_free(ctx->peer);
    free(ctx);
}

static void *lurk_ecdh_dupctx(void *vctx)
{
    const lurk_ecdh_ctx *src = vctx;
    lurk_ecdh_ctx *dst = malloc(sizeof(*dst));

    if (dst == NULL) {
        return NULL;
    }
    *dst = *src;
    if (dst->key != NULL) {
        lurk_key_up_ref(dst->key);
    }
    if (dst->peer != NULL) {
        lurk_key_up_ref(dst->peer);
    }
    return dst;
}

static int lurk_ecdh_init(void *vctx, void *provkey, const OSSL_PARAM params[])
{
    lurk_ecdh_ctx *ctx = vctx;
    LURK_KEY *key = provkey;

    if (key == NULL || lurk_key_type_of(key) != LURK_KEY_EC || !lurk_key_has_private(key)) {
        LURK_PROV_RAISE(ctx->prov, LURK_ERR_INVALID_ARG, "ECDH needs a lurk EC private key");
        return 0;
    }
    lurk_key_up_ref(key);
    lurk_key_free(ctx->key);
    ctx->key = key;
    return 1;
}

static int lurk_ecdh_set_peer(void *vctx, void *provkey)
{
    lurk_ecdh_ctx *ctx = vctx;
    LURK_KEY *peer = provkey;
    char g1[64] = "", g2[64] = "";

    if (peer == NULL || lurk_key_pub(peer) == NULL || lurk_key_type_of(peer) != LURK_KEY_EC
        || ctx->key == NULL) {
        return 0;
    }
    if (!EVP_PKEY_get_group_name(lurk_key_pub(peer), g1, sizeof(g1), NULL)
        || !EVP_PKEY_get_group_name(lurk_key_pub(ctx->key), g2, sizeof(g2), NULL)
        || strcmp(g1, g2) != 0) {
        LURK_PROV_RAISE(ctx->prov, LURK_ERR_INVALID_ARG,
                        "key %s: the peer key is on %s, not %s", lurk_key_id(ctx->key), g1, g2);
        return 0;
    }
    lurk_key_up_ref(peer);
    lurk_key_free(ctx->peer);
    ctx->peer = peer;
    return 1;
}

static int lurk_ecdh_derive(void *vctx, unsigned char *secret, size_t *secretlen,
                            size_t outlen)
{
    lurk_ecdh_ctx *ctx = vctx;
    size_t need;

    if (ctx->key == NULL || ctx->peer == NULL) {
        LURK_PROV_RAISE(ctx->prov, LURK_ERR_INVALID_ARG, "ECDH needs a key and a peer key");
        return 0;
    }
    need = ((size_t)lurk_key_bits(ctx->key) + 7) / 8;
    if (secret == NULL) {
        *secretlen = need;
        return 1;
    }
    *secretlen = outlen;
    return lurk_key_derive(ctx->key, ctx->peer, secret, secretlen);
}

static int lurk_ecdh_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    return 1;
}

static const OSSL_PARAM lurk_ecdh_settable[] = {
    OSSL_PARAM_END
};

static const OSSL_PARAM *lurk_ecdh_settable_ctx_params(void *vctx, void *provctx)
{
    return lurk_ecdh_settable;
}

const OSSL_DISPATCH lurk_ecdh_keyexch_functions[] = {
    { OSSL_FUNC_KEYEXCH_NEWCTX, (void (*)(void))lurk_ecdh_newctx },
    { OSSL_FUNC_KEYEXCH_FREECTX, (void (*)(void))lurk_ecdh_freectx },
    { OSSL_FUNC_KEYEXCH_DUPCTX, (void (*)(void))lurk_ecdh_dupctx },
    { OSSL_FUNC_KEYEXCH_INIT, (void (*)(void))lurk_ecdh_init },
    { OSSL_FUNC_KEYEXCH_SET_PEER, (void (*)(void))lurk_ecdh_set_peer },
    { OSSL_FUNC_KEYEXCH_DERIVE, (void (*)(void))lurk_ecdh_derive },
    { OSSL_FUNC_KEYEXCH_SET_CTX_PARAMS, (void (*)(void))lurk_ecdh_set_ctx_params },
    { OSSL_FUNC_KEYEXCH_SETTABLE_CTX_PARAMS, (void (*)(void))lurk_ecdh_settable_ctx_params },
    { 0, NULL }
};
