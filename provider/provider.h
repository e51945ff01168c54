/* SPDX-License-Identifier: Apache-2.0 */
/*
 * provider.h - what the files of lurk.so share.
 *
 * provider.c owns the provider context (LURK_PROV_CTX): the core handle and
 * the core's error functions, the provider configuration read from
 * openssl.cnf, a private library context holding OpenSSL's default provider
 * (public-key work: decoding SPKIs, checking the key server's signatures,
 * local hashing) and the LURK clients, one per distinct server list.
 *
 * key.c owns LURK_KEY, the refcounted key object every operation works on,
 * and is the only file that calls the client library.
 *
 * Everything that faces OpenSSL returns 1/0; below that, lurk_err.  Errors
 * are raised once, at the cause, with LURK_PROV_RAISE; the reason code is
 * the lurk_err itself.
 */
#ifndef LURK_PROVIDER_H
#define LURK_PROVIDER_H

#include <stddef.h>

#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/evp.h>

#include "lurk_client.h"
#include "lurk_err.h"
#include "lurk_keyref.h"
#include "lurk_proto.h"

#define LURK_PROV_NAME "lurk"
#define LURK_PROV_PROPS "provider=lurk"

/* Algorithm names: exactly the default provider's name lists. */
#define LURK_NAMES_RSA "RSA:rsaEncryption:1.2.840.113549.1.1.1"
#define LURK_NAMES_EC "EC:id-ecPublicKey:1.2.840.10045.2.1"
#define LURK_NAMES_ED25519 "ED25519:1.3.101.112"
#define LURK_NAMES_ECDSA "ECDSA"
#define LURK_NAMES_ECDH "ECDH"

/* DATA_STRUCTURE announced by the PEM decoder for key reference DER. */
#define LURK_DER_STRUCTURE "lurk"

typedef struct lurk_prov_ctx_st LURK_PROV_CTX;
typedef struct lurk_key_st LURK_KEY;

/* ---- provider.c ---------------------------------------------------------- */

/* lurk-verify: which signatures from the key server over TLS handshake
 * inputs are checked before use (those of other policies always are). */
typedef enum {
    LURK_PROV_VERIFY_RSA = 0, /* default: RSA (a faulty RSA-CRT signature leaks the key) */
    LURK_PROV_VERIFY_ALL,
    LURK_PROV_VERIFY_NONE
} lurk_prov_verify;

lurk_prov_verify lurk_prov_verify_mode(const LURK_PROV_CTX *prov);

/* The library context made from the core dispatch (BIO_new_from_core_bio). */
OSSL_LIB_CTX *lurk_prov_libctx(const LURK_PROV_CTX *prov);

/* A library context with only OpenSSL's default provider, loaded on first
 * use; NULL (error raised) when that fails. */
OSSL_LIB_CTX *lurk_prov_pubctx(LURK_PROV_CTX *prov);

/* The digest implementation (from the default provider) for an lurk_md. */
const EVP_MD *lurk_prov_evp_md(LURK_PROV_CTX *prov, lurk_md md);

/* Digest names: lurk_md_from_name and lurk_md_ossl_name (client/proto.c). */

/* 0, with the reason raised, when a lurk-* setting of openssl.cnf was bad:
 * then no key loads (lurk_key_from_ref, lurk_key_fetch). */
int lurk_prov_config_ok(LURK_PROV_CTX *prov);

/* The client for a server list (NULL: the provider's lurk-servers), created
 * on first use with the provider's credentials and timeouts.  On failure
 * returns an error and fills d. */
lurk_err lurk_prov_client(LURK_PROV_CTX *prov, const char *servers, LURK_CLIENT **out,
                          lurk_detail *d);

/* Raises reason `err` (a lurk_err) on OpenSSL's error queue through the
 * core, with printf-style detail. */
void lurk_prov_raise(const LURK_PROV_CTX *prov, const char *file, int line, const char *func,
                     lurk_err err, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
#define LURK_PROV_RAISE(prov, err, ...) \
    lurk_prov_raise((prov), OPENSSL_FILE, OPENSSL_LINE, OPENSSL_FUNC, (err), __VA_ARGS__)

/* ---- key.c --------------------------------------------------------------- */

/* A key from a decoded key reference (no network).  NULL + error on failure. */
LURK_KEY *lurk_key_from_ref(LURK_PROV_CTX *prov, const lurk_keyref *ref);

/* A key named by id, its public key fetched from the key server (`servers`
 * overrides the provider's list when non-NULL).  1 / 0 with error raised. */
int lurk_key_fetch(LURK_PROV_CTX *prov, const char *servers, const char *key_id,
                   LURK_KEY **out);

/* An empty public-only key (keymgmt new), filled once by
 * lurk_key_import_public (an ECDH peer handed to our key exchange): no key
 * id, no private operations. */
LURK_KEY *lurk_key_new_empty(LURK_PROV_CTX *prov, lurk_key_type type);
int lurk_key_import_public(LURK_KEY *key, const OSSL_PARAM params[]);

int lurk_key_up_ref(LURK_KEY *key);
void lurk_key_free(LURK_KEY *key);

LURK_PROV_CTX *lurk_key_prov(const LURK_KEY *key);
lurk_key_type lurk_key_type_of(const LURK_KEY *key);
int lurk_key_has_private(const LURK_KEY *key);
EVP_PKEY *lurk_key_pub(const LURK_KEY *key);        /* default-provider public key;
                                                       NULL for an empty peer key */
int lurk_key_bits(const LURK_KEY *key);
int lurk_key_max_size(const LURK_KEY *key);         /* signature / ciphertext bytes */
const char *lurk_key_id(const LURK_KEY *key);        /* "" for a public-only key */
const char *lurk_key_policy(const LURK_KEY *key);    /* "" when unknown */
/* 1 when both keys have the same public key. */
int lurk_key_same_public(const LURK_KEY *a, const LURK_KEY *b);
/* DER SubjectPublicKeyInfo of the key. */
const unsigned char *lurk_key_spki(const LURK_KEY *key, size_t *len);

typedef struct {
    lurk_sig_alg alg;
    lurk_md md;                    /* NONE for ed25519 */
    int salt_len;                  /* rsa-pss: resolved, >= 0 */
    const unsigned char *msg;      /* the whole message (one-shot), or NULL */
    size_t msg_len;
    const unsigned char *digest;   /* else its digest */
    size_t digest_len;
} lurk_key_sign_op;

/* Signs remotely; the result is verified with the cached public key before
 * it is returned as lurk-verify and the key's policy say.  Inside an
 * OpenSSL ASYNC job this and the two below pause the job instead of
 * blocking the thread.  *siglen: in = capacity, out = length.  1 / 0 (raised). */
int lurk_key_sign(LURK_KEY *key, const lurk_key_sign_op *op, unsigned char *sig,
                  size_t *siglen);

/* Remote RSA decryption (p->key_id is filled in here).  1 / 0 (raised). */
int lurk_key_decrypt(LURK_KEY *key, lurk_decrypt_params *p, unsigned char *out,
                     size_t *outlen);

/* Remote ECDH with a peer public key.  1 / 0 (raised). */
int lurk_key_derive(LURK_KEY *key, const LURK_KEY *peer, unsigned char *out, size_t *outlen);

/* ---- dispatch tables ----------------------------------------------------- */

extern const OSSL_DISPATCH lurk_rsa_keymgmt_functions[];
extern const OSSL_DISPATCH lurk_ec_keymgmt_functions[];
extern const OSSL_DISPATCH lurk_ed25519_keymgmt_functions[];

extern const OSSL_DISPATCH lurk_rsa_signature_functions[];
extern const OSSL_DISPATCH lurk_ecdsa_signature_functions[];
extern const OSSL_DISPATCH lurk_ed25519_signature_functions[];

extern const OSSL_DISPATCH lurk_rsa_asym_cipher_functions[];
extern const OSSL_DISPATCH lurk_ecdh_keyexch_functions[];

extern const OSSL_DISPATCH lurk_pem_der_decoder_functions[];
extern const OSSL_DISPATCH lurk_der_rsa_decoder_functions[];
extern const OSSL_DISPATCH lurk_der_ec_decoder_functions[];
extern const OSSL_DISPATCH lurk_der_ed25519_decoder_functions[];

extern const OSSL_DISPATCH lurk_store_functions[];

#endif /* LURK_PROVIDER_H */
