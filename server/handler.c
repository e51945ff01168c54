/* SPDX-License-Identifier: Apache-2.0 */
/*
 * handler.c - one request body and peer in, one response body and audit
 * record out.  Pure: no I/O but the private-key operation itself, so the
 * unit tests drive the real code with a fake peer.
 *
 * Order of the decisions (the first that fails answers):
 *   400/413 the body is not a valid request (the codec says why),
 *   401     the peer is not authenticated,
 *   404     the key is not on this server,
 *   403     the peer is not in the key's clients list (least privilege),
 *   403/406 the key's policy (policy.c),
 * then the operation with the server's own library context.
 *
 * Every reply echoes the RequestId once it was read.  TLS premaster
 * decryption of a ciphertext below the modulus always answers 200 with 48
 * bytes: a bad padding or version gets a stand-in derived from the key and
 * the ciphertext, chosen in constant time (implicit rejection, RFC 5246
 * 7.4.7.1; lurk_h_decrypt_premaster).  Length and value against the modulus, public facts, are
 * refused with 400 as a key file refuses them.
 * Secrets (premaster, shared secrets) live in a stack buffer cleansed
 * before return; the audit record never sees payload bytes.
 *
 * Signing reuses ready state.  Setting up a signature (EVP_DigestSignInit_ex:
 * the key's operation context plus fetches of the signature and digest
 * implementations) costs about a tenth of an ECDSA P-256 signature, and
 * OpenSSL 3.0 cannot reinitialise a context after a one-shot sign.  So each
 * key keeps, in its keystore cache, one template per (input kind,
 * algorithm, digest) made on first use and never used to sign; a request
 * signs with a copy (EVP_MD_CTX_copy_ex / EVP_PKEY_CTX_dup only read the
 * source and take references, so threads copy one template concurrently).
 * The slot fixes every parameter the template was made with (rsa-pss: only
 * SaltLength = digest size, what TLS uses, is cached; others set up afresh),
 * so a copy never signs with another request's parameters.  The templates
 * are made with the library context of the first request: a store serves
 * one handler context (the server has one).
 */
#include "lurk_srv.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

/* Largest Value: an RSA-16384 signature or OAEP plaintext. */
#define LURK_SRV_VALUE_MAX 2048
#define LURK_SRV_PREMASTER_LEN 48

/* Copies src to dst as printable ASCII: descriptions go on the wire and
 * into logs, and a codec reason may quote (truncated) client input. */
static void lurk_h_copy_clean(char *dst, size_t dstlen, const char *src)
{
    size_t i = 0;

    if (dstlen == 0) {
        return;
    }
    for (; src != NULL && src[i] != '\0' && i < dstlen - 1; i++) {
        unsigned char c = (unsigned char)src[i];

        dst[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    dst[i] = '\0';
}

/* src (may be NULL) into dst, truncated; the cheap snprintf("%s"). */
static void lurk_h_copy(char *dst, size_t dstlen, const char *src)
{
    size_t n = src != NULL ? strlen(src) : 0;

    if (dstlen == 0) {
        return;
    }
    if (n >= dstlen) {
        n = dstlen - 1;
    }
    memcpy(dst, src != NULL ? src : "", n);
    dst[n] = '\0';
}

/* a, then "/" and b when b is not NULL. */
static void lurk_h_copy2(char *dst, size_t dstlen, const char *a, const char *b)
{
    size_t n;

    lurk_h_copy(dst, dstlen, a);
    n = strlen(dst);
    if (b != NULL && n + 1 < dstlen) {
        dst[n] = '/';
        lurk_h_copy(dst + n + 1, dstlen - n - 1, b);
    }
}

static const char *lurk_h_ossl_md(lurk_md md)
{
    switch (md) {
    case LURK_MD_SHA256:
        return "SHA2-256";
    case LURK_MD_SHA384:
        return "SHA2-384";
    case LURK_MD_SHA512:
        return "SHA2-512";
    case LURK_MD_SHA1:
        return "SHA1";
    case LURK_MD_SHA224:
        return "SHA2-224";
    default:
        return NULL;
    }
}


static void lurk_h_audit_alg(lurk_srv_audit_rec *rec, const lurk_request *req)
{
    const char *a;

    switch (req->type) {
    case LURK_TX_SIGN:
        a = lurk_sig_alg_name(req->sig_alg);
        if (a == NULL) {
            break;
        }
        lurk_h_copy2(rec->alg, sizeof(rec->alg), a,
                     req->md != LURK_MD_NONE ? lurk_md_name(req->md) : NULL);
        break;
    case LURK_TX_DECRYPT:
        a = lurk_dec_mode_name(req->dec_mode);
        if (a == NULL) {
            break;
        }
        lurk_h_copy2(rec->alg, sizeof(rec->alg), a,
                     req->dec_mode == LURK_DEC_OAEP && req->oaep_md != LURK_MD_NONE
                         ? lurk_md_name(req->oaep_md) : NULL);
        break;
    case LURK_TX_AGREE:
        lurk_h_copy(rec->alg, sizeof(rec->alg), "ecdh");
        break;
    default:
        break;
    }
}

/* ---- operations -------------------------------------------------------- */

/* Clears the thread's OpenSSL error queue when there is anything on it
 * (a clear walks every entry; a peek does not). */
static void lurk_h_clear_errors(void)
{
    if (ERR_peek_error() != 0) {
        ERR_clear_error();
    }
}

/* A signing context for req with k, set up from scratch: for Data an
 * EVP_MD_CTX (*mctx), for a Digest an EVP_PKEY_CTX (*pctx).  0 on failure. */
static int lurk_h_sign_setup(OSSL_LIB_CTX *libctx, const char *propq, const LURK_SRV_KEY *k,
                             const lurk_request *req, EVP_MD_CTX **mctx, EVP_PKEY_CTX **pctx)
{
    EVP_PKEY *pkey = lurk_srv_key_pkey(k);
    const char *md = lurk_h_ossl_md(req->md);
    OSSL_PARAM params[5];
    size_t np = 0;
    int saltlen = req->salt_len;

    *mctx = NULL;
    *pctx = NULL;
    if (req->sig_alg == LURK_SIG_RSA_PKCS1) {
        params[np++] = OSSL_PARAM_construct_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE,
                                                        (char *)OSSL_PKEY_RSA_PAD_MODE_PKCSV15, 0);
    } else if (req->sig_alg == LURK_SIG_RSA_PSS) {
        params[np++] = OSSL_PARAM_construct_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE,
                                                        (char *)OSSL_PKEY_RSA_PAD_MODE_PSS, 0);
        params[np++] = OSSL_PARAM_construct_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST,
                                                        (char *)md, 0);
        params[np++] = OSSL_PARAM_construct_int(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, &saltlen);
    }

    if (req->data.data != NULL) {
        params[np] = OSSL_PARAM_construct_end();
        *mctx = EVP_MD_CTX_new();
        if (*mctx == NULL) {
            return 0;
        }
        /* final signs with the context itself, not with a copy of it */
        EVP_MD_CTX_set_flags(*mctx, EVP_MD_CTX_FLAG_FINALISE);
        if (EVP_DigestSignInit_ex(*mctx, NULL, req->sig_alg == LURK_SIG_ED25519 ? NULL : md,
                                  libctx, propq, pkey, params) != 1) {
            EVP_MD_CTX_free(*mctx);
            *mctx = NULL;
            return 0;
        }
        return 1;
    }
    params[np++] = OSSL_PARAM_construct_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, (char *)md, 0);
    params[np] = OSSL_PARAM_construct_end();
    *pctx = EVP_PKEY_CTX_new_from_pkey(libctx, pkey, propq);
    if (*pctx == NULL || EVP_PKEY_sign_init_ex(*pctx, params) != 1) {
        EVP_PKEY_CTX_free(*pctx);
        *pctx = NULL;
        return 0;
    }
    return 1;
}

/* The key cache slot of req's template, or -1 when req is not cached.
 * Every parameter lurk_h_sign_setup reads from req is fixed by the slot:
 * input kind, algorithm, digest, and the salt length (= digest size). */
static int lurk_h_sign_slot(const lurk_request *req)
{
    int slot;

    if ((int)req->sig_alg <= LURK_SIG_NONE || req->sig_alg >= LURK_SIG__COUNT
        || (int)req->md < LURK_MD_NONE || req->md >= LURK_MD__COUNT) {
        return -1;
    }
    if (req->sig_alg == LURK_SIG_RSA_PSS
        && (req->salt_len < 0 || (size_t)req->salt_len != lurk_md_size(req->md))) {
        return -1;
    }
    slot = ((req->data.data != NULL ? 0 : 1) * LURK_SIG__COUNT + (int)req->sig_alg)
               * LURK_MD__COUNT
           + (int)req->md;
    return slot;
}

_Static_assert(2 * LURK_SIG__COUNT * LURK_MD__COUNT <= LURK_SRV_KEY_CACHE_SLOTS,
               "a key's cache has a slot for every signing template");

typedef struct {
    const lurk_srv_handler_ctx *ctx;
    const lurk_request *req;
} lurk_h_tmpl_arg;

static void *lurk_h_tmpl_new(const LURK_SRV_KEY *k, const void *arg)
{
    const lurk_h_tmpl_arg *a = arg;
    EVP_MD_CTX *mctx = NULL;
    EVP_PKEY_CTX *pctx = NULL;

    if (!lurk_h_sign_setup(a->ctx->libctx, a->ctx->propq, k, a->req, &mctx, &pctx)) {
        return NULL;
    }
    return mctx != NULL ? (void *)mctx : (void *)pctx;
}

static void lurk_h_tmpl_free_md(void *obj)
{
    EVP_MD_CTX_free(obj);
}

static void lurk_h_tmpl_free_pkey(void *obj)
{
    EVP_PKEY_CTX_free(obj);
}

/* A ready signing context for req: a copy of the key's template for it,
 * or, when there is none (or copying fails), one set up from scratch. */
static int lurk_h_sign_ctx(const lurk_srv_handler_ctx *ctx, const LURK_SRV_KEY *k,
                           const lurk_request *req, EVP_MD_CTX **mctx, EVP_PKEY_CTX **pctx)
{
    int slot = lurk_h_sign_slot(req);
    lurk_h_tmpl_arg arg = { ctx, req };
    const void *tmpl = NULL;

    *mctx = NULL;
    *pctx = NULL;
    if (slot >= 0) {
        tmpl = lurk_srv_key_cache(k, (size_t)slot, lurk_h_tmpl_new,
                                  req->data.data != NULL ? lurk_h_tmpl_free_md
                                                         : lurk_h_tmpl_free_pkey,
                                  &arg);
    }
    if (tmpl != NULL && req->data.data != NULL) {
        *mctx = EVP_MD_CTX_new();
        if (*mctx != NULL && EVP_MD_CTX_copy_ex(*mctx, tmpl) == 1) {
            return 1;
        }
        EVP_MD_CTX_free(*mctx);
        *mctx = NULL;
    } else if (tmpl != NULL) {
        *pctx = EVP_PKEY_CTX_dup(tmpl);
        if (*pctx != NULL) {
            return 1;
        }
    }
    return lurk_h_sign_setup(ctx->libctx, ctx->propq, k, req, mctx, pctx);
}

static lurk_err lurk_h_sign(const lurk_srv_handler_ctx *ctx, const LURK_SRV_KEY *k,
                            const lurk_request *req, unsigned char *out, size_t *outlen,
                            char *why, size_t whylen)
{
    EVP_MD_CTX *mctx = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    size_t siglen = *outlen;
    lurk_err err = LURK_ERR_INTERNAL;

    if ((size_t)EVP_PKEY_get_size(lurk_srv_key_pkey(k)) > siglen) {
        lurk_why(why, whylen, "signature would exceed %zu bytes", siglen);
        goto end;
    }
    if (!lurk_h_sign_ctx(ctx, k, req, &mctx, &pctx)) {
        lurk_why(why, whylen, "signing failed");
        goto end;
    }
    if (mctx != NULL) {
        if (EVP_DigestSign(mctx, out, &siglen, req->data.data, req->data.len) != 1) {
            lurk_why(why, whylen, "signing failed");
            goto end;
        }
    } else if (EVP_PKEY_sign(pctx, out, &siglen, req->digest.data, req->digest.len) != 1) {
        lurk_why(why, whylen, "signing failed");
        goto end;
    }
    *outlen = siglen;
    err = LURK_OK;
end:
    lurk_h_clear_errors();
    EVP_PKEY_CTX_free(pctx);
    EVP_MD_CTX_free(mctx);
    return err;
}

/* Constant-time helpers (masks of all ones or all zeros). */
static unsigned int lurk_ct_is_zero(unsigned int a)
{
    return 0u - ((~a & (a - 1)) >> (sizeof(a) * 8 - 1));
}

static unsigned int lurk_ct_eq(unsigned int a, unsigned int b)
{
    return lurk_ct_is_zero(a ^ b);
}

/*
 * TLS 1.2 premaster decryption with deterministic implicit rejection.
 *
 * A ciphertext (exactly k bytes: policy.c) not below the modulus is refused
 * (400), as the default provider refuses it with a key file
 * (RSA_R_DATA_TOO_LARGE_FOR_MODULUS: libssl answers decrypt_error).  Only
 * the public key and the ciphertext decide, before any private-key step.
 *
 * Below the modulus the answer is always 200 with 48 bytes: the raw RSA
 * result's PKCS#1 v1.5 type 2 padding, its 48-byte length and its version
 * bytes (client_version, or alt_version when given, as libssl's
 * ossl_rsa_padding_check_PKCS1_type_2_TLS) are checked without a branch or
 * an index that depends on them, and the 48 bytes are the premaster or, in
 * the same constant time, HMAC-SHA384(key's rejection key, ciphertext).
 * That stand-in is a function of the key and the ciphertext only (the
 * rejection key comes from d: keystore.c), so asking twice, or asking
 * another key server with the same key, tells nothing about the padding:
 * OpenSSL 3.0's own TLS padding mode answers a bad ciphertext with fresh
 * random bytes each time, which made replays an oracle.  The HMAC is
 * computed for every ciphertext.
 */
static lurk_err lurk_h_decrypt_premaster(const lurk_srv_handler_ctx *ctx, const LURK_SRV_KEY *k,
                                         const lurk_request *req, unsigned char *out,
                                         size_t *outlen, char *why, size_t whylen)
{
    BIGNUM *n = NULL;
    BIGNUM *c = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    OSSL_PARAM params[2];
    int pad = RSA_NO_PADDING;
    unsigned int client_version = req->client_version;
    unsigned int alt_version = req->alt_version;
    const unsigned char *rkey = lurk_srv_key_reject_key(k);
    unsigned char em[LURK_SRV_VALUE_MAX];
    unsigned char stand_in[LURK_SRV_PREMASTER_LEN];
    size_t klen = req->ciphertext.len;
    size_t emlen = sizeof(em);
    size_t maclen = 0;
    size_t at = klen - LURK_SRV_PREMASTER_LEN; /* policy.c: klen >= 256 */
    unsigned int good;
    unsigned int version_good;
    unsigned int alt_good;
    lurk_err err = LURK_OK;

    params[0] = OSSL_PARAM_construct_int(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, &pad);
    params[1] = OSSL_PARAM_construct_end();

    c = BN_bin2bn(req->ciphertext.data, (int)klen, NULL);
    if (rkey == NULL || klen > sizeof(em) || klen < LURK_SRV_PREMASTER_LEN + 11 || c == NULL
        || EVP_PKEY_get_bn_param(lurk_srv_key_pkey(k), OSSL_PKEY_PARAM_RSA_N, &n) != 1) {
        err = LURK_ERR_INTERNAL;
        goto end;
    }
    if (BN_ucmp(c, n) >= 0) {
        lurk_why(why, whylen, "Data is not below the key's modulus");
        err = LURK_ERR_INVALID_FORMAT;
        goto end;
    }

    /* the stand-in first, for every ciphertext */
    if (EVP_Q_mac(ctx->libctx, "HMAC", ctx->propq, "SHA2-384", NULL, rkey,
                  LURK_SRV_REJECT_KEY_LEN, req->ciphertext.data, klen, stand_in,
                  sizeof(stand_in), &maclen) == NULL
        || maclen != sizeof(stand_in)) {
        err = LURK_ERR_INTERNAL;
        goto end;
    }
    pctx = EVP_PKEY_CTX_new_from_pkey(ctx->libctx, lurk_srv_key_pkey(k), ctx->propq);
    if (pctx == NULL || EVP_PKEY_decrypt_init_ex(pctx, params) != 1
        || EVP_PKEY_decrypt(pctx, em, &emlen, req->ciphertext.data, klen) != 1
        || emlen != klen) {
        /* the raw operation itself failed (not a padding fact): the
         * stand-in, one reply shape */
        memcpy(out, stand_in, sizeof(stand_in));
        *outlen = LURK_SRV_PREMASTER_LEN;
        goto end;
    }
    good = lurk_ct_is_zero(em[0]) & lurk_ct_eq(em[1], 2);
    for (size_t i = 2; i < at - 1; i++) {
        good &= ~lurk_ct_is_zero(em[i]);
    }
    good &= lurk_ct_is_zero(em[at - 1]);
    version_good = lurk_ct_eq(em[at], (client_version >> 8) & 0xff)
                   & lurk_ct_eq(em[at + 1], client_version & 0xff);
    alt_good = lurk_ct_eq(em[at], (alt_version >> 8) & 0xff)
               & lurk_ct_eq(em[at + 1], alt_version & 0xff) & ~lurk_ct_is_zero(alt_version);
    good &= version_good | alt_good;
    for (size_t i = 0; i < LURK_SRV_PREMASTER_LEN; i++) {
        out[i] = (unsigned char)((good & em[at + i]) | (~good & stand_in[i]));
    }
    *outlen = LURK_SRV_PREMASTER_LEN;
end:
    OPENSSL_cleanse(em, sizeof(em));
    OPENSSL_cleanse(stand_in, sizeof(stand_in));
    ERR_clear_error();
    EVP_PKEY_CTX_free(pctx);
    BN_free(c);
    BN_free(n);
    return err;
}

static lurk_err lurk_h_decrypt_oaep(const lurk_srv_handler_ctx *ctx, const LURK_SRV_KEY *k,
                                    const lurk_request *req, unsigned char *out,
                                    size_t *outlen, char *why, size_t whylen)
{
    EVP_PKEY *pkey = lurk_srv_key_pkey(k);
    EVP_PKEY_CTX *pctx = NULL;
    OSSL_PARAM params[5];
    size_t np = 0;
    int pad = RSA_PKCS1_OAEP_PADDING;
    const char *md = lurk_h_ossl_md(req->oaep_md);
    size_t len = *outlen;
    lurk_err err = LURK_ERR_INTERNAL;

    if ((size_t)EVP_PKEY_get_size(pkey) > len) {
        lurk_why(why, whylen, "plaintext could exceed %zu bytes", len);
        goto end;
    }
    params[np++] = OSSL_PARAM_construct_int(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, &pad);
    params[np++] = OSSL_PARAM_construct_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST,
                                                    (char *)md, 0);
    params[np++] = OSSL_PARAM_construct_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST,
                                                    (char *)md, 0);
    if (req->label.data != NULL && req->label.len > 0) {
        params[np++] = OSSL_PARAM_construct_octet_string(OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL,
                                                         req->label.data, req->label.len);
    }
    params[np] = OSSL_PARAM_construct_end();

    pctx = EVP_PKEY_CTX_new_from_pkey(ctx->libctx, pkey, ctx->propq);
    if (pctx == NULL || EVP_PKEY_decrypt_init_ex(pctx, params) != 1) {
        lurk_why(why, whylen, "OAEP setup failed");
        goto end;
    }
    if (EVP_PKEY_decrypt(pctx, out, &len, req->ciphertext.data, req->ciphertext.len) != 1) {
        lurk_why(why, whylen, "decryption failed");
        err = LURK_ERR_INVALID_FORMAT;
        goto end;
    }
    *outlen = len;
    err = LURK_OK;
end:
    ERR_clear_error();
    EVP_PKEY_CTX_free(pctx);
    return err;
}

static lurk_err lurk_h_agree(const lurk_srv_handler_ctx *ctx, const LURK_SRV_KEY *k,
                             const lurk_request *req, unsigned char *out, size_t *outlen,
                             char *why, size_t whylen)
{
    const unsigned char *p = req->peer_key.data;
    EVP_PKEY *peer = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    size_t len = *outlen;
    lurk_err err = LURK_ERR_NOT_ACCEPTABLE;

    peer = d2i_PUBKEY_ex(NULL, &p, (long)req->peer_key.len, ctx->libctx, ctx->propq);
    if (peer == NULL || p != req->peer_key.data + req->peer_key.len) {
        lurk_why(why, whylen, "PeerKey is not a valid public key");
        goto end;
    }
    pctx = EVP_PKEY_CTX_new_from_pkey(ctx->libctx, lurk_srv_key_pkey(k), ctx->propq);
    if (pctx == NULL || EVP_PKEY_derive_init(pctx) != 1) {
        lurk_why(why, whylen, "key agreement setup failed");
        err = LURK_ERR_INTERNAL;
        goto end;
    }
    if (EVP_PKEY_derive_set_peer_ex(pctx, peer, 1) != 1) {
        lurk_why(why, whylen, "PeerKey does not fit the key (curve or point)");
        goto end;
    }
    if (EVP_PKEY_derive(pctx, out, &len) != 1) {
        lurk_why(why, whylen, "key agreement failed");
        err = LURK_ERR_INTERNAL;
        goto end;
    }
    *outlen = len;
    err = LURK_OK;
end:
    ERR_clear_error();
    EVP_PKEY_CTX_free(pctx);
    EVP_PKEY_free(peer);
    return err;
}

static void lurk_h_hello(const lurk_srv_handler_ctx *ctx, lurk_response *out)
{
    lurk_hello_info *h = &out->hello;
    size_t n = lurk_srv_keystore_count(ctx->keys);

    h->major = LURK_PROTO_VERSION_MAJOR;
    h->minor = LURK_PROTO_VERSION_MINOR;
    h->transactions = (1u << LURK_TX_HELLO) | (1u << LURK_TX_PING) | (1u << LURK_TX_PUBLIC_KEY)
                      | (1u << LURK_TX_SIGN) | (1u << LURK_TX_DECRYPT) | (1u << LURK_TX_AGREE);
    h->sig_algs = (1u << LURK_SIG_RSA_PKCS1) | (1u << LURK_SIG_RSA_PSS) | (1u << LURK_SIG_ECDSA)
                  | (1u << LURK_SIG_ED25519);
    h->dec_modes = (1u << LURK_DEC_TLS_PREMASTER) | (1u << LURK_DEC_OAEP);
    h->digests = (1u << LURK_MD_SHA256) | (1u << LURK_MD_SHA384) | (1u << LURK_MD_SHA512)
                 | (1u << LURK_MD_SHA1) | (1u << LURK_MD_SHA224);
    h->key_types = 0;
    for (size_t i = 0; i < n; i++) {
        h->key_types |= 1u << lurk_srv_key_type(lurk_srv_keystore_get(ctx->keys, i));
    }
}

/* What a successful Sign signed, for the audit log (no payload bytes). */
static void lurk_h_sign_detail(const LURK_SRV_KEY *k, const lurk_request *req, char *detail,
                               size_t len)
{
    if (req->digest.data != NULL) {
        lurk_h_copy(detail, len, "digest");
    } else if (lurk_srv_key_policy(k) != LURK_POLICY_TLS_SERVER) {
        snprintf(detail, len, "message of %zu bytes", req->data.len);
    } else if (lurk_srv_is_tls13_server_cv(req->data.data, req->data.len)) {
        lurk_h_copy(detail, len, "TLS 1.3 server CertificateVerify");
    } else {
        lurk_h_copy(detail, len, "TLS 1.2 ServerKeyExchange");
    }
}

/* ---- entry points ------------------------------------------------------ */

/* Encodes out; on failure a bare 500 LurkResponse.  Returns the status. */
static int lurk_h_encode(lurk_response *out, char **resp, size_t *resp_len)
{
    static const char fallback[] =
        "{\"LurkResponse\":{\"Status\":500,\"StatusDescription\":"
        "\"the key server failed to encode its response\"}}";
    size_t len = 0;

    *resp = NULL;
    if (lurk_proto_encode_response(out, resp, &len) == LURK_OK) {
        *resp_len = len;
        return out->status;
    }
    *resp = strdup(fallback);
    *resp_len = *resp != NULL ? sizeof(fallback) - 1 : 0;
    return 500;
}

int lurk_srv_handle(const lurk_srv_handler_ctx *ctx, const lurk_srv_peer *peer,
                    const char *body, size_t len, char **resp, size_t *resp_len,
                    lurk_srv_audit_rec *rec)
{
    lurk_request req;
    lurk_response out;
    lurk_keyid id;
    const LURK_SRV_KEY *k = NULL;
    unsigned char value[LURK_SRV_VALUE_MAX];
    size_t value_len = 0;
    unsigned char state[16];
    char why[LURK_DESCRIPTION_MAX + 1];
    lurk_err err;
    int status;

    why[0] = '\0';
    memset(rec, 0, sizeof(*rec));
    lurk_srv_audit_time(rec);
    if (peer != NULL) {
        lurk_h_copy_clean(rec->peer, sizeof(rec->peer), peer->identity);
        lurk_h_copy_clean(rec->address, sizeof(rec->address), peer->address);
    }
    lurk_response_init(&out);

    err = lurk_proto_decode_request(body, len, &req, why, sizeof(why));
    out.type = req.type;
    memcpy(out.request_id, req.request_id, sizeof(out.request_id));
    memcpy(rec->request_id, req.request_id, sizeof(rec->request_id));
    lurk_h_copy(rec->op, sizeof(rec->op), lurk_tx_name(req.type));
    if (err != LURK_OK) {
        goto reply;
    }
    lurk_h_audit_alg(rec, &req);

    if (peer == NULL || !peer->authenticated) {
        err = LURK_ERR_UNAUTHORIZED;
        lurk_why(why, sizeof(why), "the client is not authenticated");
        goto reply;
    }

    switch (req.type) {
    case LURK_TX_HELLO:
        lurk_h_hello(ctx, &out);
        /* fall through */
    case LURK_TX_PING:
        lurk_srv_keystore_state(ctx->keys, state);
        out.state.data = state;
        out.state.len = sizeof(state);
        goto reply;
    case LURK_TX_CREATE:
    case LURK_TX_DISPOSE:
        err = LURK_ERR_NOT_ACCEPTABLE;
        lurk_why(why, sizeof(why), "%s is reserved and not implemented by this server",
                 lurk_tx_name(req.type));
        goto reply;
    default:
        break;
    }

    /* PublicKey, Sign, Decrypt, Agree: the key and who may use it. */
    /* the canonical spelling first: no parse */
    k = lurk_srv_keystore_find_text(ctx->keys, req.key_id);
    if (k == NULL) {
        lurk_h_copy_clean(rec->key_id, sizeof(rec->key_id), req.key_id);
        if (lurk_keyid_parse(req.key_id, &id) != LURK_OK) {
            err = LURK_ERR_INVALID_FORMAT;
            lurk_why(why, sizeof(why), "KeyId: not a key id");
            goto reply;
        }
        k = lurk_srv_keystore_find(ctx->keys, &id);
    }
    if (k == NULL) {
        err = LURK_ERR_KEY_NOT_FOUND;
        lurk_why(why, sizeof(why), "key %s is not on this key server", req.key_id);
        goto reply;
    }
    lurk_h_copy(rec->key_id, sizeof(rec->key_id), lurk_srv_key_id_text(k));
    lurk_h_copy_clean(rec->key_name, sizeof(rec->key_name), lurk_srv_key_name(k));
    if (!lurk_srv_key_allows_client(k, peer->identity)) {
        err = LURK_ERR_POLICY_DENIED;
        lurk_why(why, sizeof(why), "client %s is not allowed to use this key", rec->peer);
        goto reply;
    }

    value_len = sizeof(value);
    switch (req.type) {
    case LURK_TX_PUBLIC_KEY:
        out.key_type = lurk_srv_key_type(k);
        lurk_h_copy(out.policy, sizeof(out.policy), lurk_policy_name(lurk_srv_key_policy(k)));
        out.spki.data = (unsigned char *)lurk_srv_key_spki(k, &out.spki.len);
        break;
    case LURK_TX_SIGN:
        err = lurk_srv_policy_check_sign(k, &req, ctx->libctx, why, sizeof(why));
        if (err == LURK_OK) {
            err = lurk_h_sign(ctx, k, &req, value, &value_len, why, sizeof(why));
        }
        if (err == LURK_OK) {
            lurk_h_sign_detail(k, &req, rec->detail, sizeof(rec->detail));
        }
        break;
    case LURK_TX_DECRYPT:
        err = lurk_srv_policy_check_decrypt(k, &req, why, sizeof(why));
        if (err == LURK_OK && req.dec_mode == LURK_DEC_TLS_PREMASTER) {
            err = lurk_h_decrypt_premaster(ctx, k, &req, value, &value_len, why,
                                           sizeof(why));
        } else if (err == LURK_OK) {
            err = lurk_h_decrypt_oaep(ctx, k, &req, value, &value_len, why, sizeof(why));
        }
        break;
    case LURK_TX_AGREE:
        err = lurk_srv_policy_check_agree(k, &req, why, sizeof(why));
        if (err == LURK_OK) {
            err = lurk_h_agree(ctx, k, &req, value, &value_len, why, sizeof(why));
        }
        break;
    default:
        err = LURK_ERR_INTERNAL;
        lurk_why(why, sizeof(why), "unexpected transaction");
        break;
    }
    if (err == LURK_OK && req.type != LURK_TX_PUBLIC_KEY) {
        out.value.data = value;
        out.value.len = value_len;
    }

reply:
    out.status = lurk_err_status(err);
    if (err != LURK_OK) {
        if (why[0] == '\0') {
            lurk_h_copy(why, sizeof(why), lurk_err_str(err));
        }
        lurk_h_copy_clean(out.description, sizeof(out.description), why);
        memcpy(rec->detail, out.description, sizeof(rec->detail));
        out.value.data = NULL;
        out.value.len = 0;
        out.spki.data = NULL;
        out.spki.len = 0;
        out.state.data = NULL;
        out.state.len = 0;
    }
    status = lurk_h_encode(&out, resp, resp_len);
    rec->status = status;
    rec->result = status == out.status ? err : LURK_ERR_INTERNAL;
    if (status != out.status) {
        lurk_h_copy(rec->detail, sizeof(rec->detail), "the response could not be encoded");
    }
    /* plaintexts and shared secrets; a signature is public */
    if (req.type == LURK_TX_DECRYPT || req.type == LURK_TX_AGREE) {
        OPENSSL_cleanse(value, sizeof(value));
    }
    lurk_request_clear(&req);
    /* out points into value, state and the key: nothing of its own to free. */
    return status;
}

int lurk_srv_error_response(lurk_err err, const char *description, unsigned retry_after_ms,
                            char **resp, size_t *resp_len)
{
    lurk_response out;

    lurk_response_init(&out);
    out.type = LURK_TX__COUNT;
    out.status = lurk_err_status(err);
    if (err == LURK_OK) {
        out.status = 500; /* an error reply without an error */
    }
    lurk_h_copy_clean(out.description, sizeof(out.description),
                      description != NULL ? description : lurk_err_str(err));
    out.retry_after_ms = retry_after_ms;
    return lurk_h_encode(&out, resp, resp_len);
}
