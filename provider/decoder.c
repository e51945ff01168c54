/* SPDX-License-Identifier: Apache-2.0 */
/*
 * decoder.c - key reference files (lurk_keyref.h) into lurk keys.
 *
 * Two steps, as OpenSSL chains decoders (notes §2):
 *   "DER" input=pem: takes one PEM block; only the LURK PRIVATE KEY label is
 *     ours, it is passed on as {DATA = DER, DATA_STRUCTURE = "lurk"};
 *   "RSA"/"EC"/"ED25519" input=der,structure=lurk: decodes the reference
 *     and, if the key type is the decoder's, hands on a reference to a
 *     refcounted LURK_KEY that keymgmt load takes its own reference to.
 * These decoders run for every PEM or DER key any code in the process
 * loads, so foreign input returns 1 "empty-handed" and leaves no errors;
 * the password callback is never called (the file holds no secret).
 * Loading needs no network: the public key is inside the file.
 */
#include "provider.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#define LURK_DECODER_MAX_DER (64 * 1024)

typedef struct {
    LURK_PROV_CTX *prov;
    lurk_key_type type;   /* NONE for the PEM step */
} lurk_decoder_ctx;

static void *lurk_decoder_newctx_type(void *provctx, lurk_key_type type)
{
    lurk_decoder_ctx *ctx = calloc(1, sizeof(*ctx));

    if (ctx != NULL) {
        ctx->prov = provctx;
        ctx->type = type;
    }
    return ctx;
}

static void lurk_decoder_freectx(void *vctx)
{
    free(vctx);
}

static void *lurk_pem_decoder_newctx(void *provctx)
{
    return lurk_decoder_newctx_type(provctx, LURK_KEY_NONE);
}

static int lurk_pem_decoder_decode(void *vctx, OSSL_CORE_BIO *cin, int selection,
                                   OSSL_CALLBACK *data_cb, void *data_cbarg,
                                   OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    lurk_decoder_ctx *ctx = vctx;
    BIO *in = NULL;
    char *name = NULL, *header = NULL;
    unsigned char *der = NULL;
    long der_len = 0;
    OSSL_PARAM params[3];
    int ret = 1;   /* empty-handed unless the block is ours */

    in = BIO_new_from_core_bio(lurk_prov_libctx(ctx->prov), cin);
    if (in == NULL) {
        return 0;
    }
    ERR_set_mark();
    if (PEM_read_bio(in, &name, &header, &der, &der_len) != 1) {
        ERR_pop_to_mark();
        goto end;
    }
    ERR_pop_to_mark();
    if (strcmp(name, LURK_KEYREF_PEM_LABEL) != 0) {
        goto end;
    }
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_DATA, der,
                                                  (size_t)der_len);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_STRUCTURE,
                                                 (char *)LURK_DER_STRUCTURE, 0);
    params[2] = OSSL_PARAM_construct_end();
    ret = data_cb(params, data_cbarg);

end:
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(der);
    BIO_free(in);
    return ret;
}

/* Reads the whole DER input; 0 when it is too large to be ours. */
static int lurk_decoder_read_all(lurk_decoder_ctx *ctx, OSSL_CORE_BIO *cin,
                                 unsigned char **out, size_t *outlen)
{
    BIO *in = BIO_new_from_core_bio(lurk_prov_libctx(ctx->prov), cin);
    unsigned char *buf = NULL;
    size_t len = 0;
    int n;
    int ok = 0;

    if (in == NULL) {
        return 0;
    }
    buf = malloc(LURK_DECODER_MAX_DER + 1);
    if (buf == NULL) {
        goto end;
    }
    for (;;) {
        n = BIO_read(in, buf + len, (int)(LURK_DECODER_MAX_DER + 1 - len));
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
        if (len > LURK_DECODER_MAX_DER) {
            goto end;
        }
    }
    *out = buf;
    *outlen = len;
    buf = NULL;
    ok = 1;

end:
    free(buf);
    BIO_free(in);
    return ok;
}

static int lurk_der_decoder_decode(void *vctx, OSSL_CORE_BIO *cin, int selection,
                                   OSSL_CALLBACK *data_cb, void *data_cbarg,
                                   OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    lurk_decoder_ctx *ctx = vctx;
    unsigned char *der = NULL;
    size_t der_len = 0;
    lurk_keyref ref;
    lurk_err err;
    LURK_KEY *key = NULL;
    int object_type = OSSL_OBJECT_PKEY;
    OSSL_PARAM params[4];
    int ret = 1;   /* empty-handed unless the reference is ours and of our type */

    lurk_keyref_init(&ref);
    ERR_set_mark();
    if (!lurk_decoder_read_all(ctx, cin, &der, &der_len)) {
        ERR_pop_to_mark();
        goto end;
    }
    ERR_pop_to_mark();
    err = lurk_keyref_decode_der(der, der_len, &ref);
    if (err == LURK_ERR_KEY_MISMATCH) {
        /* A key reference whose public key is not the key it names. */
        LURK_PROV_RAISE(ctx->prov, err, "key reference %s: refused", ref.key_id[0] != '\0'
                                                                         ? ref.key_id
                                                                         : "(unnamed)");
        ret = 0;
        goto end;
    }
    if (err != LURK_OK || ref.type != ctx->type) {
        goto end;
    }
    key = lurk_key_from_ref(ctx->prov, &ref);
    if (key == NULL) {
        ret = 0;
        goto end;
    }
    params[0] = OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &object_type);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE,
                                                 (char *)lurk_key_type_name(ref.type), 0);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_REFERENCE, &key,
                                                  sizeof(key));
    params[3] = OSSL_PARAM_construct_end();
    ret = data_cb(params, data_cbarg);

end:
    lurk_key_free(key);   /* keymgmt load took its own reference */
    lurk_keyref_clear(&ref);
    free(der);
    return ret;
}

static void *lurk_der_rsa_decoder_newctx(void *provctx)
{
    return lurk_decoder_newctx_type(provctx, LURK_KEY_RSA);
}

static void *lurk_der_ec_decoder_newctx(void *provctx)
{
    return lurk_decoder_newctx_type(provctx, LURK_KEY_EC);
}

static void *lurk_der_ed25519_decoder_newctx(void *provctx)
{
    return lurk_decoder_newctx_type(provctx, LURK_KEY_ED25519);
}

const OSSL_DISPATCH lurk_pem_der_decoder_functions[] = {
    { OSSL_FUNC_DECODER_NEWCTX, (void (*)(void))lurk_pem_decoder_newctx },
    { OSSL_FUNC_DECODER_FREECTX, (void (*)(void))lurk_decoder_freectx },
    { OSSL_FUNC_DECODER_DECODE, (void (*)(void))lurk_pem_decoder_decode },
    { 0, NULL }
};

#define LURK_DER_DECODER(alg)                                                       \
    const OSSL_DISPATCH lurk_der_##alg##_decoder_functions[] = {                    \
        { OSSL_FUNC_DECODER_NEWCTX, (void (*)(void))lurk_der_##alg##_decoder_newctx }, \
        { OSSL_FUNC_DECODER_FREECTX, (void (*)(void))lurk_decoder_freectx },        \
        { OSSL_FUNC_DECODER_DECODE, (void (*)(void))lurk_der_decoder_decode },      \
        { 0, NULL }                                                                 \
    }

LURK_DER_DECODER(rsa);
LURK_DER_DECODER(ec);
LURK_DER_DECODER(ed25519);
