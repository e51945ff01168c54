/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keymgmt.c - key management for lurk keys: RSA, EC and Ed25519.
 *
 * Keys come only from our decoders and store (load of a refcounted
 * LURK_KEY).  Public facts are answered from the cached public key without
 * the network.  Export gives the public part only and fails for any
 * selection that includes the private key, so libcrypto never builds a
 * public-only default-provider copy and signs with it.
 *
 * No gen; new/import only for public keys (see "public-key import" below).
 * Such a key has no key id and can do nothing private.
 */
#include "provider.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/params.h>

static OSSL_FUNC_keymgmt_free_fn lurk_keymgmt_free;
static OSSL_FUNC_keymgmt_has_fn lurk_keymgmt_has;
static OSSL_FUNC_keymgmt_get_params_fn lurk_keymgmt_get_params;
static OSSL_FUNC_keymgmt_export_fn lurk_keymgmt_export;
static OSSL_FUNC_keymgmt_match_fn lurk_keymgmt_match;

static void *lurk_keymgmt_load_type(const void *reference, size_t reference_sz,
                                    lurk_key_type type)
{
    LURK_KEY *key = NULL;

    if (reference == NULL || reference_sz != sizeof(key)) {
        return NULL;
    }
    memcpy(&key, reference, sizeof(key));
    if (key == NULL || lurk_key_type_of(key) != type) {
        return NULL;
    }
    lurk_key_up_ref(key);
    return key;
}

static void *lurk_rsa_keymgmt_load(const void *reference, size_t reference_sz)
{
    return lurk_keymgmt_load_type(reference, reference_sz, LURK_KEY_RSA);
}

static void *lurk_ec_keymgmt_load(const void *reference, size_t reference_sz)
{
    return lurk_keymgmt_load_type(reference, reference_sz, LURK_KEY_EC);
}

static void *lurk_ed25519_keymgmt_load(const void *reference, size_t reference_sz)
{
    return lurk_keymgmt_load_type(reference, reference_sz, LURK_KEY_ED25519);
}

static void lurk_keymgmt_free(void *keydata)
{
    lurk_key_free(keydata);
}

static int lurk_keymgmt_has(const void *keydata, int selection)
{
    const LURK_KEY *key = keydata;

    if (key == NULL) {
        return 0;
    }
    if (selection != 0 && lurk_key_pub(key) == NULL) {
        return 0;   /* made by new() for an import that never happened */
    }
    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0 && !lurk_key_has_private(key)) {
        return 0;
    }
    return 1;   /* public key and domain parameters are always there */
}

static int lurk_keymgmt_get_params(void *keydata, OSSL_PARAM params[])
{
    LURK_KEY *key = keydata;
    OSSL_PARAM *p;

    if (key == NULL || lurk_key_pub(key) == NULL) {
        return 0;
    }
    /* Every public fact comes from the default provider's public key. */
    if (!EVP_PKEY_get_params(lurk_key_pub(key), params)) {
        return 0;
    }
    /* libcrypto caches these three at EVP_PKEY creation; all must be set. */
    p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_BITS);
    if (p != NULL && !OSSL_PARAM_set_int(p, lurk_key_bits(key))) {
        return 0;
    }
    p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_MAX_SIZE);
    if (p != NULL && !OSSL_PARAM_set_int(p, lurk_key_max_size(key))) {
        return 0;
    }
    p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_SECURITY_BITS);
    if (p != NULL && !OSSL_PARAM_set_int(p, EVP_PKEY_get_security_bits(lurk_key_pub(key)))) {
        return 0;
    }
    return 1;
}

#define LURK_COMMON_GETTABLE                                   \
    OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),                \
    OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),       \
    OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL)

static const OSSL_PARAM lurk_rsa_gettable[] = {
    LURK_COMMON_GETTABLE,
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
    OSSL_PARAM_END
};

static const OSSL_PARAM lurk_ec_gettable[] = {
    LURK_COMMON_GETTABLE,
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_ENCODING, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, NULL, 0),
    OSSL_PARAM_END
};

static const OSSL_PARAM lurk_ed25519_gettable[] = {
    LURK_COMMON_GETTABLE,
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_MANDATORY_DIGEST, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, NULL, 0),
    OSSL_PARAM_END
};

static const OSSL_PARAM *lurk_rsa_keymgmt_gettable(void *provctx)
{
    return lurk_rsa_gettable;
}

static const OSSL_PARAM *lurk_ec_keymgmt_gettable(void *provctx)
{
    return lurk_ec_gettable;
}

static const OSSL_PARAM *lurk_ed25519_keymgmt_gettable(void *provctx)
{
    return lurk_ed25519_gettable;
}

static int lurk_keymgmt_export(void *keydata, int selection, OSSL_CALLBACK *param_cb,
                               void *cbarg)
{
    LURK_KEY *key = keydata;

    /* Be strict: the private key never leaves, and nothing pretends to. */
    if (key == NULL || lurk_key_pub(key) == NULL
        || (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0) {
        return 0;
    }
    return EVP_PKEY_export(lurk_key_pub(key), selection, param_cb, cbarg);
}

static const OSSL_PARAM lurk_rsa_export_list[] = {
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
    OSSL_PARAM_END
};

static const OSSL_PARAM lurk_ec_export_list[] = {
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_ENCODING, NULL, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
    OSSL_PARAM_END
};

static const OSSL_PARAM lurk_ed25519_export_list[] = {
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
    OSSL_PARAM_END
};

static const OSSL_PARAM *lurk_rsa_keymgmt_export_types(int selection)
{
    return (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0 ? NULL : lurk_rsa_export_list;
}

static const OSSL_PARAM *lurk_ec_keymgmt_export_types(int selection)
{
    return (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0 ? NULL : lurk_ec_export_list;
}

static const OSSL_PARAM *lurk_ed25519_keymgmt_export_types(int selection)
{
    return (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0 ? NULL : lurk_ed25519_export_list;
}

static int lurk_keymgmt_match(const void *keydata1, const void *keydata2, int selection)
{
    const LURK_KEY *a = keydata1;
    const LURK_KEY *b = keydata2;
    char ga[64] = "", gb[64] = "";

    if (a == NULL || b == NULL || lurk_key_pub(a) == NULL || lurk_key_pub(b) == NULL) {
        return 0;
    }
    if ((selection & OSSL_KEYMGMT_SELECT_KEYPAIR) != 0) {
        /* The public key names the key (and for EC includes the group). */
        return lurk_key_same_public(a, b);
    }
    if ((selection & OSSL_KEYMGMT_SELECT_DOMAIN_PARAMETERS) != 0
        && lurk_key_type_of(a) == LURK_KEY_EC) {
        if (!EVP_PKEY_get_group_name(lurk_key_pub(a), ga, sizeof(ga), NULL)
            || !EVP_PKEY_get_group_name(lurk_key_pub(b), gb, sizeof(gb), NULL)) {
            return 0;
        }
        return strcmp(ga, gb) == 0;
    }
    return 1;
}

static const char *lurk_rsa_keymgmt_query_name(int operation_id)
{
    return "RSA";
}

static const char *lurk_ec_keymgmt_query_name(int operation_id)
{
    switch (operation_id) {
    case OSSL_OP_SIGNATURE:
        return "ECDSA";
    case OSSL_OP_KEYEXCH:
        return "ECDH";
    default:
        return "EC";
    }
}

static const char *lurk_ed25519_keymgmt_query_name(int operation_id)
{
    return "ED25519";
}

/* ---- public-key import ---------------------------------------------------- */

/*
 * A public key from another provider can be imported, never a private one.
 * EVP_PKEY_derive_set_peer() hands an ECDH peer to our key exchange that
 * way, and EVP_PKEY_eq() / X509_check_private_key() (SSL_CTX_use_PrivateKey,
 * haproxy, nginx -t) first try to import the certificate's key into the
 * private key's keymgmt: without an import libcrypto falls back to exporting
 * ours but leaves a "malloc failure" on the error queue, which nginx then
 * logs as a stale error on the next handshake.
 *
 * libcrypto exports with OSSL_KEYMGMT_SELECT_ALL even for public keys, so
 * what decides is the data: any private component refuses the import.
 */
typedef struct {
    const char *pub[2];   /* the public parameters, all required */
    const char *priv;     /* the parameter whose presence means a private key */
} lurk_import_shape;

static const lurk_import_shape lurk_rsa_import_shape = {
    { OSSL_PKEY_PARAM_RSA_N, OSSL_PKEY_PARAM_RSA_E }, OSSL_PKEY_PARAM_RSA_D
};
static const lurk_import_shape lurk_ec_import_shape = {
    { OSSL_PKEY_PARAM_GROUP_NAME, OSSL_PKEY_PARAM_PUB_KEY }, OSSL_PKEY_PARAM_PRIV_KEY
};
static const lurk_import_shape lurk_ed25519_import_shape = {
    { OSSL_PKEY_PARAM_PUB_KEY, NULL }, OSSL_PKEY_PARAM_PRIV_KEY
};

static int lurk_keymgmt_import_shape(void *keydata, int selection, const OSSL_PARAM params[],
                                     const lurk_import_shape *shape)
{
    OSSL_PARAM pub_only[3];
    size_t n = 0;

    if (keydata == NULL || (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) == 0
        || OSSL_PARAM_locate_const(params, shape->priv) != NULL) {
        return 0;
    }
    for (size_t i = 0; i < 2 && shape->pub[i] != NULL; i++) {
        const OSSL_PARAM *p = OSSL_PARAM_locate_const(params, shape->pub[i]);

        if (p == NULL) {
            return 0;
        }
        pub_only[n++] = *p;
    }
    pub_only[n] = OSSL_PARAM_construct_end();
    return lurk_key_import_public(keydata, pub_only);
}

#define LURK_KEYMGMT_IMPORT(alg, type)                                                  \
    static void *lurk_##alg##_keymgmt_new(void *provctx)                                  \
    {                                                                                     \
        return lurk_key_new_empty(provctx, type);                                         \
    }                                                                                     \
    static int lurk_##alg##_keymgmt_import(void *keydata, int selection,                  \
                                           const OSSL_PARAM params[])                     \
    {                                                                                     \
        return lurk_keymgmt_import_shape(keydata, selection, params,                      \
                                         &lurk_##alg##_import_shape);                     \
    }                                                                                     \
    static const OSSL_PARAM *lurk_##alg##_keymgmt_import_types(int selection)             \
    {                                                                                     \
        return (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0                         \
                   ? NULL                                                                 \
                   : lurk_##alg##_import_list;                                            \
    }

static const OSSL_PARAM lurk_rsa_import_list[] = {
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
    OSSL_PARAM_END
};
static const OSSL_PARAM lurk_ec_import_list[] = {
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
    OSSL_PARAM_END
};
static const OSSL_PARAM lurk_ed25519_import_list[] = {
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
    OSSL_PARAM_END
};

static OSSL_FUNC_keymgmt_new_fn lurk_rsa_keymgmt_new, lurk_ec_keymgmt_new,
    lurk_ed25519_keymgmt_new;
static OSSL_FUNC_keymgmt_import_fn lurk_rsa_keymgmt_import, lurk_ec_keymgmt_import,
    lurk_ed25519_keymgmt_import;
static OSSL_FUNC_keymgmt_import_types_fn lurk_rsa_keymgmt_import_types,
    lurk_ec_keymgmt_import_types, lurk_ed25519_keymgmt_import_types;

LURK_KEYMGMT_IMPORT(rsa, LURK_KEY_RSA)
LURK_KEYMGMT_IMPORT(ec, LURK_KEY_EC)
LURK_KEYMGMT_IMPORT(ed25519, LURK_KEY_ED25519)

/* ---- dispatch tables ----------------------------------------------------- */

#define LURK_KEYMGMT_COMMON(alg)                                                          \
    { OSSL_FUNC_KEYMGMT_LOAD, (void (*)(void))lurk_##alg##_keymgmt_load },                \
    { OSSL_FUNC_KEYMGMT_FREE, (void (*)(void))lurk_keymgmt_free },                        \
    { OSSL_FUNC_KEYMGMT_HAS, (void (*)(void))lurk_keymgmt_has },                          \
    { OSSL_FUNC_KEYMGMT_GET_PARAMS, (void (*)(void))lurk_keymgmt_get_params },            \
    { OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, (void (*)(void))lurk_##alg##_keymgmt_gettable }, \
    { OSSL_FUNC_KEYMGMT_MATCH, (void (*)(void))lurk_keymgmt_match },                      \
    { OSSL_FUNC_KEYMGMT_EXPORT, (void (*)(void))lurk_keymgmt_export },                    \
    { OSSL_FUNC_KEYMGMT_EXPORT_TYPES, (void (*)(void))lurk_##alg##_keymgmt_export_types }, \
    { OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, (void (*)(void))lurk_##alg##_keymgmt_query_name }

#define LURK_KEYMGMT_TABLE(alg)                                                             \
    const OSSL_DISPATCH lurk_##alg##_keymgmt_functions[] = {                                \
        { OSSL_FUNC_KEYMGMT_NEW, (void (*)(void))lurk_##alg##_keymgmt_new },                \
        LURK_KEYMGMT_COMMON(alg),                                                           \
        { OSSL_FUNC_KEYMGMT_IMPORT, (void (*)(void))lurk_##alg##_keymgmt_import },          \
        { OSSL_FUNC_KEYMGMT_IMPORT_TYPES, (void (*)(void))lurk_##alg##_keymgmt_import_types }, \
        { 0, NULL }                                                                         \
    };

LURK_KEYMGMT_TABLE(rsa)
LURK_KEYMGMT_TABLE(ec)
LURK_KEYMGMT_TABLE(ed25519)
