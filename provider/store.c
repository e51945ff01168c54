/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store.c - the "lurk" OSSL_STORE scheme: keys named by URI.
 *
 *   lurk:KEYID                 the key KEYID on the provider's lurk-servers
 *   lurk://HOST:PORT/KEYID     the key KEYID on https://HOST:PORT only
 *
 * KEYID is the key's strong id (Base32, dashes optional, any case).  open
 * only parses (no network); load asks the key server for the public key
 * (which the client library checks against the id) and returns one private
 * key object by reference.  eof turns true after that object and after any
 * error, so loops like nginx's `while (!OSSL_STORE_eof())` always end.
 * No export_object: a lurk key must never become a public-only copy in
 * another provider.
 */
#include "provider.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/params.h>
#include <openssl/store.h>

#include "lurk_keyid.h"

typedef struct {
    LURK_PROV_CTX *prov;
    char key_id[LURK_KEYID_TEXT_MAX];
    char *servers;      /* NULL: the provider's lurk-servers */
    int eof;
} lurk_store_ctx;

static void lurk_store_free(lurk_store_ctx *ctx)
{
    if (ctx != NULL) {
        free(ctx->servers);
        free(ctx);
    }
}

static void *lurk_store_open(void *provctx, const char *uri)
{
    LURK_PROV_CTX *prov = provctx;
    lurk_store_ctx *ctx = NULL;
    const char *rest = NULL;
    const char *id = NULL;
    lurk_keyid parsed;

    if (strncasecmp(uri, "lurk:", 5) != 0) {
        return NULL;
    }
    ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL) {
        return NULL;
    }
    ctx->prov = prov;
    rest = uri + 5;
    id = rest;
    if (strncmp(rest, "//", 2) == 0) {
        const char *host = rest + 2;
        const char *slash = strchr(host, '/');

        if (slash == NULL) {
            goto bad;
        }
        id = slash + 1;
        if (slash > host) {
            size_t n = (size_t)(slash - host);

            ctx->servers = malloc(n + sizeof("https://"));
            if (ctx->servers == NULL) {
                goto bad;
            }
            memcpy(ctx->servers, "https://", 8);
            memcpy(ctx->servers + 8, host, n);
            ctx->servers[8 + n] = '\0';
        }
    }
    if (strlen(id) >= sizeof(ctx->key_id) || lurk_keyid_parse(id, &parsed) != LURK_OK) {
        goto bad;
    }
    memcpy(ctx->key_id, id, strlen(id) + 1);
    return ctx;

bad:
    LURK_PROV_RAISE(prov, LURK_ERR_INVALID_FORMAT,
                    "%s: expected lurk:KEYID or lurk://HOST:PORT/KEYID", uri);
    lurk_store_free(ctx);
    return NULL;
}

static int lurk_store_load(void *vctx, OSSL_CALLBACK *object_cb, void *object_cbarg,
                           OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    lurk_store_ctx *ctx = vctx;
    LURK_KEY *key = NULL;
    int object_type = OSSL_OBJECT_PKEY;
    OSSL_PARAM params[4];
    int ret = 0;

    if (ctx->eof) {
        return 0;
    }
    ctx->eof = 1;   /* one object, or an error: either way we are done */
    if (!lurk_key_fetch(ctx->prov, ctx->servers, ctx->key_id, &key)) {
        return 0;
    }
    params[0] = OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &object_type);
    params[1] = OSSL_PARAM_construct_utf8_string(
        OSSL_OBJECT_PARAM_DATA_TYPE, (char *)lurk_key_type_name(lurk_key_type_of(key)), 0);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_REFERENCE, &key,
                                                  sizeof(key));
    params[3] = OSSL_PARAM_construct_end();
    ret = object_cb(params, object_cbarg);
    lurk_key_free(key);
    return ret;
}

static int lurk_store_eof(void *vctx)
{
    const lurk_store_ctx *ctx = vctx;

    return ctx->eof;
}

static int lurk_store_close(void *vctx)
{
    lurk_store_free(vctx);
    return 1;
}

/* OpenSSL calls this without a NULL check whenever the application passes
 * parameters (the CLI does with -inform): accept and ignore them. */
static int lurk_store_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    return 1;
}

static const OSSL_PARAM lurk_store_settable[] = {
    OSSL_PARAM_int(OSSL_STORE_PARAM_EXPECT, NULL),
    OSSL_PARAM_utf8_string(OSSL_STORE_PARAM_INPUT_TYPE, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_STORE_PARAM_PROPERTIES, NULL, 0),
    OSSL_PARAM_END
};

static const OSSL_PARAM *lurk_store_settable_ctx_params(void *provctx)
{
    return lurk_store_settable;
}

const OSSL_DISPATCH lurk_store_functions[] = {
    { OSSL_FUNC_STORE_OPEN, (void (*)(void))lurk_store_open },
    { OSSL_FUNC_STORE_SETTABLE_CTX_PARAMS, (void (*)(void))lurk_store_settable_ctx_params },
    { OSSL_FUNC_STORE_SET_CTX_PARAMS, (void (*)(void))lurk_store_set_ctx_params },
    { OSSL_FUNC_STORE_LOAD, (void (*)(void))lurk_store_load },
    { OSSL_FUNC_STORE_EOF, (void (*)(void))lurk_store_eof },
    { OSSL_FUNC_STORE_CLOSE, (void (*)(void))lurk_store_close },
    { 0, NULL }
};
