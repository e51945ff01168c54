/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_handler.c - the key server's core end to end without the network:
 * a key store from tests/vectors/server/, JSON bodies through
 * lurk_srv_handle with a fake peer (the handler is pure, so this is the
 * real code), every answer decoded with the codec and every signature
 * verified independently with the default provider.  Also the key store's
 * loading rules and the audit log.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "lurk_encoding.h"
#include "lurk_srv.h"
#include "srv_fixture.h"

#define VEC SRV_FIXTURE_VEC

static OSSL_LIB_CTX *libctx;
static LURK_SRV_KEYSTORE *store;
static srv_fixture fx;
static lurk_srv_handler_ctx hctx;

static const lurk_srv_peer web1 = { "web1", "127.0.0.1:50001", 1 };
static const lurk_srv_peer web3 = { "web3", "127.0.0.1:50003", 1 };
static const lurk_srv_peer anonymous = { NULL, "127.0.0.1:50009", 0 };


/* ---- helpers ----------------------------------------------------------- */

static const LURK_SRV_KEY *key_named(const char *name)
{
    return srv_fixture_key_named(&fx, name);
}

static EVP_PKEY *public_of(const LURK_SRV_KEY *k)
{
    size_t len = 0;
    const unsigned char *p = lurk_srv_key_spki(k, &len);
    EVP_PKEY *pub = d2i_PUBKEY_ex(NULL, &p, (long)len, libctx, NULL);

    ck_assert_ptr_nonnull(pub);
    return pub;
}

static void req_for(lurk_request *req, lurk_tx tx, const char *key)
{
    static int counter;

    lurk_request_init(req);
    req->type = tx;
    snprintf(req->request_id, sizeof(req->request_id), "req-%d", ++counter);
    if (key != NULL) {
        snprintf(req->key_id, sizeof(req->key_id), "%s", lurk_srv_key_id_text(key_named(key)));
    }
}

static void set_buf(lurk_buf *b, const void *d, size_t n)
{
    b->data = (unsigned char *)d;
    b->len = n;
}

/* Body through the handler, answer through the codec. */
static int call_raw(const char *body, size_t len, const lurk_srv_peer *peer, lurk_tx expect,
                    lurk_response *out, lurk_srv_audit_rec *rec)
{
    char *resp = NULL;
    size_t resp_len = 0;
    char why[300] = "";
    lurk_srv_audit_rec local;
    int status;

    status = lurk_srv_handle(&hctx, peer, body, len, &resp, &resp_len,
                             rec != NULL ? rec : &local);
    ck_assert_ptr_nonnull(resp);
    ck_assert_uint_eq(strlen(resp), resp_len);
    ck_assert_msg(lurk_proto_decode_response(resp, resp_len, expect, out, why, sizeof(why))
                      == LURK_OK,
                  "response does not decode (%s): %s", why, resp);
    ck_assert_int_eq(out->status, status);
    ck_assert_int_eq((rec != NULL ? rec : &local)->status, status);
    free(resp);
    return status;
}

static int call(const lurk_request *req, const lurk_srv_peer *peer, lurk_response *out,
                lurk_srv_audit_rec *rec)
{
    char *json = NULL;
    size_t len = 0;
    int status;

    ck_assert_int_eq(lurk_proto_encode_request(req, &json, &len), LURK_OK);
    status = call_raw(json, len, peer, req->type, out, rec);
    ck_assert_str_eq(out->request_id, req->request_id);
    free(json);
    return status;
}

static const char *ossl_md(lurk_md md)
{
    return md == LURK_MD_SHA256 ? "SHA256" : md == LURK_MD_SHA384 ? "SHA384" : "SHA512";
}

/* Independent verification: default provider, ctrl-style API. */
static int verify(const LURK_SRV_KEY *k, const lurk_request *req, const lurk_buf *sig)
{
    EVP_PKEY *pub = public_of(k);
    EVP_MD_CTX *mctx = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    EVP_MD *md = NULL;
    int ok = 0;

    if (req->data.data != NULL) {
        mctx = EVP_MD_CTX_new();
        if (EVP_DigestVerifyInit_ex(mctx, &pctx,
                                    req->sig_alg == LURK_SIG_ED25519 ? NULL : ossl_md(req->md),
                                    libctx, NULL, pub, NULL) != 1) {
            goto end;
        }
    } else {
        md = EVP_MD_fetch(libctx, ossl_md(req->md), NULL);
        pctx = EVP_PKEY_CTX_new_from_pkey(libctx, pub, NULL);
        if (pctx == NULL || EVP_PKEY_verify_init(pctx) != 1
            || EVP_PKEY_CTX_set_signature_md(pctx, md) != 1) {
            goto end;
        }
    }
    if (req->sig_alg == LURK_SIG_RSA_PSS) {
        if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1
            || EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, req->salt_len) != 1
            || EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, ossl_md(req->md), NULL) != 1) {
            goto end;
        }
    } else if (req->sig_alg == LURK_SIG_RSA_PKCS1) {
        if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
            goto end;
        }
    }
    if (req->data.data != NULL) {
        ok = EVP_DigestVerify(mctx, sig->data, sig->len, req->data.data, req->data.len) == 1;
    } else {
        ok = EVP_PKEY_verify(pctx, sig->data, sig->len, req->digest.data, req->digest.len) == 1;
    }
end:
    if (mctx == NULL) {
        EVP_PKEY_CTX_free(pctx);
    }
    EVP_MD_CTX_free(mctx);
    EVP_MD_free(md);
    EVP_PKEY_free(pub);
    return ok;
}

#define SERVER_CV "TLS 1.3, server CertificateVerify"

static size_t make_cv(unsigned char *out, size_t hash_len)
{
    memset(out, 0x20, 64);
    memcpy(out + 64, SERVER_CV, strlen(SERVER_CV));
    out[64 + strlen(SERVER_CV)] = 0;
    RAND_bytes(out + 65 + strlen(SERVER_CV), (int)hash_len);
    return 65 + strlen(SERVER_CV) + hash_len;
}

static size_t make_ske(unsigned char *out)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(libctx, NULL, "EC", "P-256");
    size_t len = 0;

    ck_assert_ptr_nonnull(k);
    RAND_bytes(out, 64);
    out[64] = 3;
    out[65] = 0x00;
    out[66] = 0x17;
    ck_assert(EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, out + 68,
                                              100, &len));
    out[67] = (unsigned char)len;
    EVP_PKEY_free(k);
    return 68 + len;
}

/* An RSA ciphertext under the key's public half. */
static size_t rsa_encrypt(const LURK_SRV_KEY *k, int pad, lurk_md oaep_md, const char *label,
                          const unsigned char *in, size_t inlen, unsigned char *out)
{
    EVP_PKEY *pub = public_of(k);
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_pkey(libctx, pub, NULL);
    size_t outlen = 512;

    ck_assert_ptr_nonnull(pctx);
    ck_assert_int_eq(EVP_PKEY_encrypt_init(pctx), 1);
    ck_assert_int_eq(EVP_PKEY_CTX_set_rsa_padding(pctx, pad), 1);
    if (pad == RSA_PKCS1_OAEP_PADDING) {
        ck_assert_int_eq(EVP_PKEY_CTX_set_rsa_oaep_md_name(pctx, ossl_md(oaep_md), NULL), 1);
        ck_assert_int_eq(EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, ossl_md(oaep_md), NULL), 1);
        if (label != NULL) {
            unsigned char *l = OPENSSL_memdup(label, strlen(label));

            ck_assert_int_eq(EVP_PKEY_CTX_set0_rsa_oaep_label(pctx, l, (int)strlen(label)), 1);
        }
    }
    ck_assert_int_eq(EVP_PKEY_encrypt(pctx, out, &outlen, in, inlen), 1);
    EVP_PKEY_CTX_free(pctx);
    EVP_PKEY_free(pub);
    return outlen;
}

/* ---- Hello, Ping, PublicKey -------------------------------------------- */

START_TEST(test_hello_ping)
{
    lurk_request req;
    lurk_response out;
    lurk_srv_audit_rec rec;
    unsigned char state[16];

    lurk_srv_keystore_state(store, state);
    req_for(&req, LURK_TX_HELLO, NULL);
    ck_assert_int_eq(call(&req, &web1, &out, &rec), 200);
    ck_assert_int_eq(out.type, LURK_TX_HELLO);
    ck_assert_uint_eq(out.hello.major, 1);
    ck_assert_uint_eq(out.hello.minor, 0);
    ck_assert_uint_eq(out.hello.transactions,
                      (1u << LURK_TX_HELLO) | (1u << LURK_TX_PING) | (1u << LURK_TX_PUBLIC_KEY)
                          | (1u << LURK_TX_SIGN) | (1u << LURK_TX_DECRYPT)
                          | (1u << LURK_TX_AGREE));
    ck_assert_uint_eq(out.hello.key_types,
                      (1u << LURK_KEY_RSA) | (1u << LURK_KEY_EC) | (1u << LURK_KEY_ED25519));
    ck_assert(out.hello.sig_algs & (1u << LURK_SIG_RSA_PSS));
    ck_assert(out.hello.sig_algs & (1u << LURK_SIG_ED25519));
    ck_assert(out.hello.dec_modes & (1u << LURK_DEC_TLS_PREMASTER));
    ck_assert(out.hello.digests & (1u << LURK_MD_SHA384));
    ck_assert_uint_eq(out.state.len, 16);
    ck_assert_mem_eq(out.state.data, state, 16);
    ck_assert_str_eq(rec.op, "Hello");
    lurk_response_clear(&out);

    req_for(&req, LURK_TX_PING, NULL);
    ck_assert_int_eq(call(&req, &web1, &out, &rec), 200);
    ck_assert_uint_eq(out.state.len, 16);
    ck_assert_mem_eq(out.state.data, state, 16);
    ck_assert_str_eq(rec.op, "Ping");
    lurk_response_clear(&out);
}
END_TEST

START_TEST(test_public_key)
{
    for (size_t i = 0; i < srv_fixture_n_keys; i++) {
        const LURK_SRV_KEY *k = key_named(srv_fixture_keys[i].name);
        lurk_request req;
        lurk_response out;
        size_t spki_len = 0;
        const unsigned char *spki = lurk_srv_key_spki(k, &spki_len);
        lurk_keyid id;

        req_for(&req, LURK_TX_PUBLIC_KEY, srv_fixture_keys[i].name);
        ck_assert_int_eq(call(&req, &web1, &out, NULL), 200);
        ck_assert_int_eq(out.key_type, lurk_srv_key_type(k));
        ck_assert_str_eq(out.policy, lurk_policy_name(srv_fixture_keys[i].policy));
        ck_assert_uint_eq(out.spki.len, spki_len);
        ck_assert_mem_eq(out.spki.data, spki, spki_len);
        ck_assert_int_eq(lurk_keyid_parse(req.key_id, &id), LURK_OK);
        ck_assert_int_eq(lurk_keyid_check_spki(&id, out.spki.data, out.spki.len), LURK_OK);
        lurk_response_clear(&out);
    }
}
END_TEST

/* ---- Sign -------------------------------------------------------------- */

typedef enum { IN_CV32, IN_CV48, IN_SKE, IN_MSG, IN_DIGEST } sign_input;

static const struct {
    const char *key;
    lurk_sig_alg alg;
    lurk_md md;
    int salt;
    sign_input in;
    const char *audit_alg;
} signs[] = {
    { "rsa-tls", LURK_SIG_RSA_PKCS1, LURK_MD_SHA256, -1, IN_SKE, "rsa-pkcs1/sha256" },
    { "rsa-tls", LURK_SIG_RSA_PSS, LURK_MD_SHA256, 32, IN_CV32, "rsa-pss/sha256" },
    { "rsa-tls", LURK_SIG_RSA_PSS, LURK_MD_SHA384, 48, IN_CV48, "rsa-pss/sha384" },
    { "rsa-tls", LURK_SIG_RSA_PSS, LURK_MD_SHA512, 64, IN_SKE, "rsa-pss/sha512" },
    { "rsa-sign", LURK_SIG_RSA_PSS, LURK_MD_SHA512, 0, IN_DIGEST, "rsa-pss/sha512" },
    { "rsa-sign", LURK_SIG_RSA_PSS, LURK_MD_SHA256, 222, IN_MSG, "rsa-pss/sha256" },
    { "rsa-sign", LURK_SIG_RSA_PKCS1, LURK_MD_SHA384, -1, IN_DIGEST, "rsa-pkcs1/sha384" },
    { "rsa-sign", LURK_SIG_RSA_PKCS1, LURK_MD_SHA256, -1, IN_MSG, "rsa-pkcs1/sha256" },
    { "p256-tls", LURK_SIG_ECDSA, LURK_MD_SHA256, -1, IN_CV32, "ecdsa/sha256" },
    { "p256-tls", LURK_SIG_ECDSA, LURK_MD_SHA256, -1, IN_SKE, "ecdsa/sha256" },
    { "p384-tls", LURK_SIG_ECDSA, LURK_MD_SHA384, -1, IN_CV48, "ecdsa/sha384" },
    { "p521-tls", LURK_SIG_ECDSA, LURK_MD_SHA512, -1, IN_CV48, "ecdsa/sha512" },
    { "ed-tls", LURK_SIG_ED25519, LURK_MD_NONE, -1, IN_CV32, "ed25519" },
    { "ed-tls", LURK_SIG_ED25519, LURK_MD_NONE, -1, IN_SKE, "ed25519" },
};

START_TEST(test_sign)
{
    const LURK_SRV_KEY *k = key_named(signs[_i].key);
    unsigned char input[300];
    size_t n = 0;
    lurk_request req;
    lurk_response out;
    lurk_srv_audit_rec rec;

    req_for(&req, LURK_TX_SIGN, signs[_i].key);
    req.sig_alg = signs[_i].alg;
    req.md = signs[_i].md;
    req.salt_len = signs[_i].salt;
    switch (signs[_i].in) {
    case IN_CV32:
        n = make_cv(input, 32);
        break;
    case IN_CV48:
        n = make_cv(input, 48);
        break;
    case IN_SKE:
        n = make_ske(input);
        break;
    case IN_MSG:
        n = 77;
        memset(input, 'x', n);
        break;
    case IN_DIGEST:
        n = lurk_md_size(req.md);
        RAND_bytes(input, (int)n);
        break;
    }
    if (signs[_i].in == IN_DIGEST) {
        set_buf(&req.digest, input, n);
    } else {
        set_buf(&req.data, input, n);
    }

    ck_assert_int_eq(call(&req, &web1, &out, &rec), 200);
    ck_assert_int_eq(out.type, LURK_TX_SIGN);
    ck_assert_ptr_nonnull(out.value.data);
    ck_assert_msg(verify(k, &req, &out.value), "row %d: signature does not verify", _i);
    /* the check can fail: one flipped bit */
    out.value.data[out.value.len / 2] ^= 0x04;
    ck_assert_msg(!verify(k, &req, &out.value), "row %d: corrupted signature verifies", _i);

    ck_assert_str_eq(rec.op, "Sign");
    ck_assert_str_eq(rec.alg, signs[_i].audit_alg);
    ck_assert_str_eq(rec.key_name, signs[_i].key);
    ck_assert_str_eq(rec.key_id, lurk_srv_key_id_text(k));
    ck_assert_int_eq(rec.result, LURK_OK);
    lurk_response_clear(&out);
}
END_TEST

/* ---- Sign: the per-key cache of ready signing state ---------------------- */

typedef struct {
    const char *key;
    lurk_sig_alg alg;
    lurk_md md;
    int salt;
    int digest; /* 1: send a Digest instead of Data */
} sign_case;

/* One key, parameters alternating: every cached template must sign with
 * exactly its own parameters (uncached ones, PSS salts other than the
 * digest size, in between). */
static const sign_case alternating[] = {
    { "rsa-sign", LURK_SIG_RSA_PSS, LURK_MD_SHA256, 32, 0 },
    { "rsa-sign", LURK_SIG_RSA_PKCS1, LURK_MD_SHA256, -1, 0 },
    { "rsa-sign", LURK_SIG_RSA_PSS, LURK_MD_SHA384, 48, 0 },
    { "rsa-sign", LURK_SIG_RSA_PSS, LURK_MD_SHA256, 0, 0 },
    { "rsa-sign", LURK_SIG_RSA_PKCS1, LURK_MD_SHA512, -1, 0 },
    { "rsa-sign", LURK_SIG_RSA_PSS, LURK_MD_SHA256, 32, 1 },
    { "rsa-sign", LURK_SIG_RSA_PSS, LURK_MD_SHA512, 64, 0 },
    { "rsa-sign", LURK_SIG_RSA_PKCS1, LURK_MD_SHA256, -1, 1 },
    { "rsa-sign", LURK_SIG_RSA_PSS, LURK_MD_SHA256, 20, 0 },
    { "rsa-sign", LURK_SIG_RSA_PSS, LURK_MD_SHA384, 48, 1 },
    { "rsa-sign", LURK_SIG_RSA_PKCS1, LURK_MD_SHA384, -1, 0 },
};

static const sign_case alternating_ec[] = {
    { "p256-tls", LURK_SIG_ECDSA, LURK_MD_SHA256, -1, 0 },
    { "p256-tls", LURK_SIG_ECDSA, LURK_MD_SHA384, -1, 0 },
    { "p256-tls", LURK_SIG_ECDSA, LURK_MD_SHA512, -1, 0 },
    { "ed-tls", LURK_SIG_ED25519, LURK_MD_NONE, -1, 0 },
};

/* A Sign request for c over fresh random input (a TLS 1.3 CertificateVerify
 * input for tls-server keys); input must hold 200 bytes. */
static void sign_req(lurk_request *req, const sign_case *c, unsigned char *input)
{
    size_t n;

    req_for(req, LURK_TX_SIGN, c->key);
    req->sig_alg = c->alg;
    req->md = c->md;
    req->salt_len = c->salt;
    if (c->digest) {
        n = lurk_md_size(c->md);
        RAND_bytes(input, (int)n);
        set_buf(&req->digest, input, n);
    } else {
        n = make_cv(input, 48);
        set_buf(&req->data, input, n);
    }
}

/* Signs with c and checks the signature with the default provider, then
 * that it does not verify under the neighbouring parameters `other`. */
static void sign_and_verify(const sign_case *c, const sign_case *other, int round)
{
    const LURK_SRV_KEY *k = key_named(c->key);
    unsigned char input[200];
    lurk_request req;
    lurk_response out;

    sign_req(&req, c, input);
    ck_assert_int_eq(call(&req, &web1, &out, NULL), 200);
    ck_assert_msg(verify(k, &req, &out.value), "round %d: %s %s/%s salt %d%s does not verify",
                  round, c->key, lurk_sig_alg_name(c->alg), lurk_md_name(c->md), c->salt,
                  c->digest ? " (digest)" : "");
    if (other != NULL && strcmp(other->key, c->key) == 0
        && (other->alg != c->alg || other->md != c->md || other->salt != c->salt)) {
        lurk_request as_other = req;

        as_other.sig_alg = other->alg;
        as_other.md = other->md;
        as_other.salt_len = other->salt;
        if (!c->digest) {
            ck_assert_msg(!verify(k, &as_other, &out.value),
                          "round %d: a %s/%s salt %d signature verifies as %s/%s salt %d", round,
                          lurk_sig_alg_name(c->alg), lurk_md_name(c->md), c->salt,
                          lurk_sig_alg_name(other->alg), lurk_md_name(other->md), other->salt);
        }
    }
    lurk_response_clear(&out);
}

START_TEST(test_sign_cache_alternating)
{
    size_t n = sizeof(alternating) / sizeof(alternating[0]);
    size_t m = sizeof(alternating_ec) / sizeof(alternating_ec[0]);

    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < n; i++) {
            sign_and_verify(&alternating[i], &alternating[(i + 1) % n], round);
        }
        for (size_t i = 0; i < m; i++) {
            sign_and_verify(&alternating_ec[i], &alternating_ec[(i + 1) % m], round);
        }
    }
}
END_TEST

START_TEST(test_sign_cache_repeat)
{
    static const sign_case same[] = {
        { "p256-tls", LURK_SIG_ECDSA, LURK_MD_SHA256, -1, 0 },
        { "rsa-tls", LURK_SIG_RSA_PSS, LURK_MD_SHA256, 32, 0 },
        { "ed-tls", LURK_SIG_ED25519, LURK_MD_NONE, -1, 0 },
        { "rsa-sign", LURK_SIG_RSA_PKCS1, LURK_MD_SHA384, -1, 1 },
    };

    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        for (int round = 0; round < 20; round++) {
            sign_and_verify(&same[i], NULL, round);
        }
    }
}
END_TEST

/* The cache belongs to the store: a store that signed (so its keys hold
 * ready signing state) and that a request still holds after a reload keeps
 * signing; when its last reference goes, every private key it held is gone
 * from the secure heap at once. */
static int sign_with(const lurk_srv_handler_ctx *ctx, const LURK_SRV_KEY *k, const sign_case *c)
{
    unsigned char input[200];
    lurk_request req;
    lurk_response out;
    lurk_srv_audit_rec rec;
    char *resp = NULL;
    size_t resp_len = 0;
    char why[300] = "";
    int ok;

    sign_req(&req, c, input);
    snprintf(req.key_id, sizeof(req.key_id), "%s", lurk_srv_key_id_text(k));
    {
        char *json = NULL;
        size_t len = 0;

        ck_assert_int_eq(lurk_proto_encode_request(&req, &json, &len), LURK_OK);
        ck_assert_int_eq(lurk_srv_handle(ctx, &web1, json, len, &resp, &resp_len, &rec), 200);
        free(json);
    }
    ck_assert_int_eq(lurk_proto_decode_response(resp, resp_len, LURK_TX_SIGN, &out, why,
                                                sizeof(why)), LURK_OK);
    ok = verify(k, &req, &out.value);
    lurk_response_clear(&out);
    free(resp);
    return ok;
}

static const LURK_SRV_KEY *key_in(const LURK_SRV_KEYSTORE *ks, const char *name)
{
    for (size_t i = 0; i < lurk_srv_keystore_count(ks); i++) {
        if (strcmp(lurk_srv_key_name(lurk_srv_keystore_get(ks, i)), name) == 0) {
            return lurk_srv_keystore_get(ks, i);
        }
    }
    ck_abort_msg("no key %s", name);
    return NULL;
}

static lurk_err add_key(LURK_SRV_KEYSTORE *ks, const char *name, const char *file,
                        const char *pass, lurk_policy policy, char *why, size_t whylen);

START_TEST(test_sign_cache_lifetime)
{
    static const sign_case cases[] = {
        { "p256-tls", LURK_SIG_ECDSA, LURK_MD_SHA256, -1, 0 },
        { "p256-tls", LURK_SIG_ECDSA, LURK_MD_SHA384, -1, 0 },
        { "rsa-sign", LURK_SIG_RSA_PSS, LURK_MD_SHA256, 32, 0 },
        { "rsa-sign", LURK_SIG_RSA_PKCS1, LURK_MD_SHA256, -1, 1 },
        { "ed-tls", LURK_SIG_ED25519, LURK_MD_NONE, -1, 0 },
    };
    LURK_SRV_KEYSTORE *ks = NULL;
    lurk_srv_handler_ctx ctx = { NULL, libctx, NULL };
    char why[512];
    size_t before;
    size_t loaded;

    /* OpenSSL's own lazily made state (the DRBGs keep theirs in the secure
     * heap) exists before the count starts */
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sign_and_verify(&cases[i], NULL, 0);
    }
    before = CRYPTO_secure_used();
    ck_assert_int_eq(lurk_srv_keystore_new(libctx, NULL, &ks), LURK_OK);
    ck_assert_int_eq(add_key(ks, "p256-tls", "p256-tls.pem", NULL, LURK_POLICY_TLS_SERVER, why,
                             sizeof(why)), LURK_OK);
    ck_assert_int_eq(add_key(ks, "rsa-sign", "rsa2048-sign.p8", NULL, LURK_POLICY_SIGN, why,
                             sizeof(why)), LURK_OK);
    ck_assert_int_eq(add_key(ks, "ed-tls", "ed25519-tls.pem", NULL, LURK_POLICY_TLS_SERVER, why,
                             sizeof(why)), LURK_OK);
    loaded = CRYPTO_secure_used();
    ck_assert_uint_gt(loaded, before);
    ctx.keys = ks;
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            ck_assert(sign_with(&ctx, key_in(ks, cases[i].key), &cases[i]));
        }
    }

    /* a request in flight holds the store across a reload's swap */
    ck_assert_int_eq(lurk_srv_keystore_up_ref(ks), 2);
    lurk_srv_keystore_free(ks);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert(sign_with(&ctx, key_in(ks, cases[i].key), &cases[i]));
    }
    ck_assert_uint_gt(CRYPTO_secure_used(), before);
    /* the request finishes: keys and their cached signing state go now */
    lurk_srv_keystore_free(ks);
    ck_assert_uint_eq(CRYPTO_secure_used(), before);
}
END_TEST

/* Threads signing with one fresh store: the templates are made while other
 * threads want them, then copied concurrently. */
#define CACHE_THREADS 4
#define CACHE_ROUNDS 12

typedef struct {
    const lurk_srv_handler_ctx *ctx;
    int id;
    int ok;
} cache_thread_arg;

static void *cache_thread(void *p)
{
    static const sign_case cases[] = {
        { "p256-tls", LURK_SIG_ECDSA, LURK_MD_SHA256, -1, 0 },
        { "rsa-sign", LURK_SIG_RSA_PSS, LURK_MD_SHA256, 32, 0 },
        { "p256-tls", LURK_SIG_ECDSA, LURK_MD_SHA384, -1, 0 },
        { "rsa-sign", LURK_SIG_RSA_PSS, LURK_MD_SHA384, 48, 1 },
    };
    cache_thread_arg *a = p;

    for (int r = 0; r < CACHE_ROUNDS; r++) {
        const sign_case *c = &cases[(size_t)(r + a->id) % 4];

        a->ok += sign_with(a->ctx, key_in(a->ctx->keys, c->key), c);
    }
    return NULL;
}

START_TEST(test_sign_cache_threads)
{
    LURK_SRV_KEYSTORE *ks = NULL;
    lurk_srv_handler_ctx ctx = { NULL, libctx, NULL };
    pthread_t th[CACHE_THREADS];
    cache_thread_arg args[CACHE_THREADS];
    char why[512];

    ck_assert_int_eq(lurk_srv_keystore_new(libctx, NULL, &ks), LURK_OK);
    ck_assert_int_eq(add_key(ks, "p256-tls", "p256-tls.pem", NULL, LURK_POLICY_TLS_SERVER, why,
                             sizeof(why)), LURK_OK);
    ck_assert_int_eq(add_key(ks, "rsa-sign", "rsa2048-sign.p8", NULL, LURK_POLICY_SIGN, why,
                             sizeof(why)), LURK_OK);
    ctx.keys = ks;
    for (int i = 0; i < CACHE_THREADS; i++) {
        args[i].ctx = &ctx;
        args[i].id = i;
        args[i].ok = 0;
        ck_assert_int_eq(pthread_create(&th[i], NULL, cache_thread, &args[i]), 0);
    }
    for (int i = 0; i < CACHE_THREADS; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_int_eq(args[i].ok, CACHE_ROUNDS);
    }
    lurk_srv_keystore_free(ks);
}
END_TEST

/* ---- Decrypt ----------------------------------------------------------- */

static int decrypt_premaster(const char *key, const unsigned char *ct, size_t ctlen,
                             unsigned client_version, unsigned alt, lurk_response *out)
{
    lurk_request req;

    req_for(&req, LURK_TX_DECRYPT, key);
    req.dec_mode = LURK_DEC_TLS_PREMASTER;
    req.client_version = client_version;
    req.alt_version = alt;
    set_buf(&req.ciphertext, ct, ctlen);
    return call(&req, &web1, out, NULL);
}

/* Decisions on the ciphertext's public facts (issue 9): with a key file,
 * OpenSSL 3.0 fails on a number >= n and on more than k bytes, and decrypts
 * anything below n.  The provider left-pads shorter ciphertexts, so the wire
 * carries exactly k bytes: other lengths are a malformed request (400). */
static void premaster_modulus_cases(const char *key, const LURK_SRV_KEY *k, size_t klen)
{
    BIGNUM *n = NULL;
    unsigned char ct[513];
    lurk_response out;

    ck_assert_int_eq(EVP_PKEY_get_bn_param(lurk_srv_key_pkey(k), OSSL_PKEY_PARAM_RSA_N, &n), 1);
    ck_assert_int_eq(BN_bn2binpad(n, ct, (int)klen), (int)klen);

    /* exactly n */
    ck_assert_int_eq(decrypt_premaster(key, ct, klen, 0x0303, 0, &out), 400);
    ck_assert_uint_eq(out.value.len, 0);
    ck_assert_str_eq(out.description, "Data is not below the key's modulus");
    lurk_response_clear(&out);

    /* n - 1: below, implicit rejection, 200 + 48 bytes */
    ck_assert_int_eq(BN_sub_word(n, 1), 1);
    ck_assert_int_eq(BN_bn2binpad(n, ct, (int)klen), (int)klen);
    ck_assert_int_eq(decrypt_premaster(key, ct, klen, 0x0303, 0, &out), 200);
    ck_assert_uint_eq(out.value.len, 48);
    lurk_response_clear(&out);

    /* n + 1 */
    ck_assert_int_eq(BN_add_word(n, 2), 1);
    ck_assert_int_eq(BN_bn2binpad(n, ct, (int)klen), (int)klen);
    ck_assert_int_eq(decrypt_premaster(key, ct, klen, 0x0303, 0, &out), 400);
    ck_assert_str_eq(out.description, "Data is not below the key's modulus");
    lurk_response_clear(&out);

    /* all ones */
    memset(ct, 0xff, klen);
    ck_assert_int_eq(decrypt_premaster(key, ct, klen, 0x0303, 0, &out), 400);
    lurk_response_clear(&out);

    /* k + 1 and k - 1 bytes: not on the wire's contract */
    memset(ct, 0, sizeof(ct));
    ct[klen] = 0x01;
    ck_assert_int_eq(decrypt_premaster(key, ct, klen + 1, 0x0303, 0, &out), 400);
    ck_assert_uint_eq(out.value.len, 0);
    lurk_response_clear(&out);
    ck_assert_int_eq(decrypt_premaster(key, ct + 2, klen - 1, 0x0303, 0, &out), 400);
    ck_assert_uint_eq(out.value.len, 0);
    lurk_response_clear(&out);
    BN_free(n);
}

START_TEST(test_decrypt_premaster)
{
    static const char *const keys[] = { "rsa-tls", "rsa-dec" };

    for (size_t i = 0; i < 2; i++) {
        const LURK_SRV_KEY *k = key_named(keys[i]);
        unsigned char pms[48];
        unsigned char ct[512];
        unsigned char first[48];
        size_t ctlen;
        lurk_response out;

        RAND_bytes(pms, sizeof(pms));
        pms[0] = 0x03;
        pms[1] = 0x03;
        ctlen = rsa_encrypt(k, RSA_PKCS1_PADDING, LURK_MD_NONE, NULL, pms, 48, ct);

        /* good: the premaster itself */
        ck_assert_int_eq(decrypt_premaster(keys[i], ct, ctlen, 0x0303, 0, &out), 200);
        ck_assert_uint_eq(out.value.len, 48);
        ck_assert_mem_eq(out.value.data, pms, 48);
        lurk_response_clear(&out);

        /* wrong version: same shape, a stand-in, the same one again */
        ck_assert_int_eq(decrypt_premaster(keys[i], ct, ctlen, 0x0302, 0, &out), 200);
        ck_assert_uint_eq(out.value.len, 48);
        ck_assert(memcmp(out.value.data, pms, 48) != 0);
        memcpy(first, out.value.data, 48);
        lurk_response_clear(&out);
        ck_assert_int_eq(decrypt_premaster(keys[i], ct, ctlen, 0x0302, 0, &out), 200);
        ck_assert_mem_eq(out.value.data, first, 48);
        lurk_response_clear(&out);

        /* the alternative (negotiated) version is accepted too */
        ck_assert_int_eq(decrypt_premaster(keys[i], ct, ctlen, 0x0302, 0x0303, &out), 200);
        ck_assert_mem_eq(out.value.data, pms, 48);
        lurk_response_clear(&out);

        /* bad padding: same shape, a stand-in that depends on the key and
         * the ciphertext only (issue 10: a replay must not tell valid from
         * invalid padding), different for another ciphertext and from the
         * bad-version stand-in above */
        ct[ctlen - 1] ^= 0x01;
        ck_assert_int_eq(decrypt_premaster(keys[i], ct, ctlen, 0x0303, 0, &out), 200);
        ck_assert_uint_eq(out.value.len, 48);
        ck_assert(memcmp(out.value.data, pms, 48) != 0);
        ck_assert(memcmp(out.value.data, first, 48) != 0);
        memcpy(first, out.value.data, 48);
        lurk_response_clear(&out);
        ck_assert_int_eq(decrypt_premaster(keys[i], ct, ctlen, 0x0303, 0, &out), 200);
        ck_assert_uint_eq(out.value.len, 48);
        ck_assert_mem_eq(out.value.data, first, 48);
        lurk_response_clear(&out);
        ct[ctlen - 1] ^= 0x03;
        ck_assert_int_eq(decrypt_premaster(keys[i], ct, ctlen, 0x0303, 0, &out), 200);
        ck_assert(memcmp(out.value.data, first, 48) != 0);
        lurk_response_clear(&out);
        /* another load of the same key (a restart, another key server of a
         * fleet) derives the same rejection key; another key does not */
        {
            srv_fixture again;

            ck_assert_int_eq(srv_fixture_open(&again, "test_handler", NULL), 0);
            ck_assert_ptr_nonnull(lurk_srv_key_reject_key(k));
            ck_assert_mem_eq(lurk_srv_key_reject_key(srv_fixture_key_named(&again, keys[i])),
                             lurk_srv_key_reject_key(k), LURK_SRV_REJECT_KEY_LEN);
            ck_assert(memcmp(lurk_srv_key_reject_key(key_named(keys[1 - i])),
                             lurk_srv_key_reject_key(k), LURK_SRV_REJECT_KEY_LEN) != 0);
            ck_assert_ptr_null(lurk_srv_key_reject_key(key_named("p256-tls")));
            srv_fixture_close(&again);
        }

        /* the modulus and above: 400, as the default provider fails with a
         * key file (public facts); n - 1: below, so 200 + 48 random bytes */
        premaster_modulus_cases(keys[i], k, ctlen);
    }
}
END_TEST


START_TEST(test_decrypt_oaep)
{
    const LURK_SRV_KEY *k = key_named("rsa-dec");
    static const char secret[] = "an OAEP-wrapped secret";
    unsigned char ct[512];
    size_t ctlen;
    lurk_request req;
    lurk_response out;
    lurk_srv_audit_rec rec;

    /* with a label, SHA-256 */
    ctlen = rsa_encrypt(k, RSA_PKCS1_OAEP_PADDING, LURK_MD_SHA256, "lbl",
                        (const unsigned char *)secret, strlen(secret), ct);
    req_for(&req, LURK_TX_DECRYPT, "rsa-dec");
    req.dec_mode = LURK_DEC_OAEP;
    req.oaep_md = LURK_MD_SHA256;
    set_buf(&req.label, "lbl", 3);
    set_buf(&req.ciphertext, ct, ctlen);
    ck_assert_int_eq(call(&req, &web1, &out, &rec), 200);
    ck_assert_uint_eq(out.value.len, strlen(secret));
    ck_assert_mem_eq(out.value.data, secret, strlen(secret));
    ck_assert_str_eq(rec.alg, "oaep/sha256");
    lurk_response_clear(&out);

    /* wrong label: 400 decryption failed */
    set_buf(&req.label, "LBL", 3);
    ck_assert_int_eq(call(&req, &web1, &out, NULL), 400);
    ck_assert_str_eq(out.description, "decryption failed");
    lurk_response_clear(&out);

    /* no label, SHA-384 */
    ctlen = rsa_encrypt(k, RSA_PKCS1_OAEP_PADDING, LURK_MD_SHA384, NULL,
                        (const unsigned char *)secret, strlen(secret), ct);
    req_for(&req, LURK_TX_DECRYPT, "rsa-dec");
    req.dec_mode = LURK_DEC_OAEP;
    req.oaep_md = LURK_MD_SHA384;
    set_buf(&req.ciphertext, ct, ctlen);
    ck_assert_int_eq(call(&req, &web1, &out, NULL), 200);
    ck_assert_mem_eq(out.value.data, secret, strlen(secret));
    lurk_response_clear(&out);

    /* OAEP on a tls-server key: 403 */
    req_for(&req, LURK_TX_DECRYPT, "rsa-tls");
    req.dec_mode = LURK_DEC_OAEP;
    req.oaep_md = LURK_MD_SHA384;
    set_buf(&req.ciphertext, ct, ctlen);
    ck_assert_int_eq(call(&req, &web1, &out, NULL), 403);
    lurk_response_clear(&out);
}
END_TEST

/* ---- Agree ------------------------------------------------------------- */

START_TEST(test_agree)
{
    const LURK_SRV_KEY *k = key_named("p256-agree");
    EVP_PKEY *peer = EVP_PKEY_Q_keygen(libctx, NULL, "EC", "P-256");
    EVP_PKEY *other = EVP_PKEY_Q_keygen(libctx, NULL, "EC", "P-384");
    EVP_PKEY *server_pub = public_of(k);
    EVP_PKEY_CTX *dctx = NULL;
    unsigned char *spki = NULL;
    unsigned char *spki384 = NULL;
    int spki_len = i2d_PUBKEY(peer, &spki);
    int spki384_len = i2d_PUBKEY(other, &spki384);
    unsigned char expect[66];
    size_t expect_len = sizeof(expect);
    lurk_request req;
    lurk_response out;
    lurk_srv_audit_rec rec;

    ck_assert_int_gt(spki_len, 0);
    dctx = EVP_PKEY_CTX_new_from_pkey(libctx, peer, NULL);
    ck_assert_int_eq(EVP_PKEY_derive_init(dctx), 1);
    ck_assert_int_eq(EVP_PKEY_derive_set_peer(dctx, server_pub), 1);
    ck_assert_int_eq(EVP_PKEY_derive(dctx, expect, &expect_len), 1);

    req_for(&req, LURK_TX_AGREE, "p256-agree");
    set_buf(&req.peer_key, spki, (size_t)spki_len);
    ck_assert_int_eq(call(&req, &web1, &out, &rec), 200);
    ck_assert_uint_eq(out.value.len, expect_len);
    ck_assert_mem_eq(out.value.data, expect, expect_len);
    ck_assert_str_eq(rec.alg, "ecdh");
    lurk_response_clear(&out);

    /* a peer on another curve: 406 */
    set_buf(&req.peer_key, spki384, (size_t)spki384_len);
    ck_assert_int_eq(call(&req, &web1, &out, NULL), 406);
    lurk_response_clear(&out);

    /* a point off the curve: 406 */
    spki[spki_len - 1] ^= 0x01;
    set_buf(&req.peer_key, spki, (size_t)spki_len);
    ck_assert_int_eq(call(&req, &web1, &out, NULL), 406);
    lurk_response_clear(&out);
    spki[spki_len - 1] ^= 0x01;

    /* Agree with a tls-server EC key: 403 */
    req_for(&req, LURK_TX_AGREE, "p256-tls");
    set_buf(&req.peer_key, spki, (size_t)spki_len);
    ck_assert_int_eq(call(&req, &web1, &out, NULL), 403);
    lurk_response_clear(&out);

    OPENSSL_cleanse(expect, sizeof(expect));
    EVP_PKEY_CTX_free(dctx);
    OPENSSL_free(spki);
    OPENSSL_free(spki384);
    EVP_PKEY_free(peer);
    EVP_PKEY_free(other);
    EVP_PKEY_free(server_pub);
}
END_TEST

/* ---- refusals ---------------------------------------------------------- */

START_TEST(test_malformed)
{
    static const char bad_json[] = "{not json";
    static const char bad_field[] =
        "{\"SignRequest\":{\"RequestId\":\"r-1\",\"KeyId\":\"AAAA\",\"Algorithm\":7,"
        "\"DigestAlg\":\"sha256\",\"Data\":\"AAAA\"}}";
    lurk_response out;
    lurk_srv_audit_rec rec;
    char *big = NULL;
    size_t big_len;
    char *b64 = NULL;
    size_t b64_len = lurk_b64url_encoded_len(LURK_MAX_DATA + 1);
    unsigned char *raw = calloc(1, LURK_MAX_DATA + 1);

    ck_assert_int_eq(call_raw(bad_json, strlen(bad_json), &web1, LURK_TX_SIGN, &out, &rec),
                     400);
    ck_assert_int_eq(out.type, LURK_TX__COUNT);
    ck_assert_str_eq(out.request_id, "");
    ck_assert_str_ne(out.description, "");
    ck_assert_int_eq(rec.result, LURK_ERR_INVALID_FORMAT);
    lurk_response_clear(&out);

    /* decoded far enough to know the transaction and the request id */
    ck_assert_int_eq(call_raw(bad_field, strlen(bad_field), &web1, LURK_TX_SIGN, &out, &rec),
                     400);
    ck_assert_str_eq(out.request_id, "r-1");
    ck_assert_ptr_nonnull(strstr(out.description, "Algorithm"));
    ck_assert_str_eq(rec.request_id, "r-1");
    ck_assert_str_eq(rec.op, "Sign");
    lurk_response_clear(&out);

    /* a binary field over the limit: 413 */
    b64 = malloc(b64_len + 1);
    ck_assert_int_eq(lurk_b64url_encode(raw, LURK_MAX_DATA + 1, b64, b64_len + 1), LURK_OK);
    big_len = b64_len + 200;
    big = malloc(big_len);
    snprintf(big, big_len,
             "{\"SignRequest\":{\"RequestId\":\"r-2\",\"KeyId\":\"%s\",\"Algorithm\":\"ecdsa\","
             "\"DigestAlg\":\"sha256\",\"Data\":\"%s\"}}",
             lurk_srv_key_id_text(key_named("p256-tls")), b64);
    ck_assert_int_eq(call_raw(big, strlen(big), &web1, LURK_TX_SIGN, &out, &rec), 413);
    lurk_response_clear(&out);
    free(big);
    free(b64);
    free(raw);

    /* KeyId that is not a key id */
    static const char bad_id[] = "{\"PublicKeyRequest\":{\"RequestId\":\"r-3\",\"KeyId\":\"nope\"}}";
    ck_assert_int_eq(call_raw(bad_id, strlen(bad_id), &web1, LURK_TX_PUBLIC_KEY, &out, &rec),
                     400);
    ck_assert_str_eq(out.request_id, "r-3");
    lurk_response_clear(&out);
}
END_TEST

START_TEST(test_refusals)
{
    unsigned char cv[200];
    unsigned char digest[32] = { 1, 2, 3 };
    unsigned char msg[50];
    size_t cvlen = make_cv(cv, 32);
    lurk_request req;
    lurk_response out;
    lurk_srv_audit_rec rec;
    EVP_PKEY *stranger = EVP_PKEY_Q_keygen(libctx, NULL, "EC", "P-256");
    unsigned char *spki = NULL;
    int spki_len = i2d_PUBKEY(stranger, &spki);
    lurk_keyid id;

    /* 404: a key id of a key this server does not have */
    ck_assert_int_eq(lurk_keyid_from_spki(spki, (size_t)spki_len, LURK_KEYID_ALG_DEFAULT, &id),
                     LURK_OK);
    req_for(&req, LURK_TX_SIGN, NULL);
    ck_assert_int_eq(lurk_keyid_format(&id, req.key_id, sizeof(req.key_id)), LURK_OK);
    req.sig_alg = LURK_SIG_ECDSA;
    req.md = LURK_MD_SHA256;
    set_buf(&req.data, cv, cvlen);
    ck_assert_int_eq(call(&req, &web1, &out, &rec), 404);
    ck_assert_ptr_nonnull(strstr(out.description, req.key_id));
    ck_assert_ptr_nonnull(strstr(out.description, "is not on this key server"));
    ck_assert_int_eq(rec.result, LURK_ERR_KEY_NOT_FOUND);
    lurk_response_clear(&out);

    /* 403: a digest to a tls-server key */
    req_for(&req, LURK_TX_SIGN, "rsa-tls");
    req.sig_alg = LURK_SIG_RSA_PSS;
    req.md = LURK_MD_SHA256;
    req.salt_len = 32;
    set_buf(&req.digest, digest, sizeof(digest));
    ck_assert_int_eq(call(&req, &web1, &out, &rec), 403);
    ck_assert_str_eq(out.description,
                     "policy tls-server signs only TLS handshake messages; send Data, not a digest");
    ck_assert_str_eq(rec.detail, out.description);
    lurk_response_clear(&out);

    /* 403: an arbitrary message to a tls-server key */
    memset(msg, 'A', sizeof(msg));
    req_for(&req, LURK_TX_SIGN, "p256-tls");
    req.sig_alg = LURK_SIG_ECDSA;
    req.md = LURK_MD_SHA256;
    set_buf(&req.data, msg, sizeof(msg));
    ck_assert_int_eq(call(&req, &web1, &out, NULL), 403);
    ck_assert_ptr_nonnull(strstr(out.description, "not a TLS 1.3 server CertificateVerify"));
    lurk_response_clear(&out);

    /* 403: the peer is not in the key's clients list (Sign and PublicKey) */
    req_for(&req, LURK_TX_SIGN, "p521-tls");
    req.sig_alg = LURK_SIG_ECDSA;
    req.md = LURK_MD_SHA512;
    set_buf(&req.data, cv, cvlen);
    ck_assert_int_eq(call(&req, &web3, &out, &rec), 403);
    ck_assert_str_eq(rec.peer, "web3");
    lurk_response_clear(&out);
    ck_assert_int_eq(call(&req, &web1, &out, NULL), 200);
    lurk_response_clear(&out);
    req_for(&req, LURK_TX_PUBLIC_KEY, "p521-tls");
    ck_assert_int_eq(call(&req, &web3, &out, NULL), 403);
    lurk_response_clear(&out);

    /* 401: no authenticated peer, for key operations and Hello alike */
    req_for(&req, LURK_TX_SIGN, "p256-tls");
    req.sig_alg = LURK_SIG_ECDSA;
    req.md = LURK_MD_SHA256;
    set_buf(&req.data, cv, cvlen);
    ck_assert_int_eq(call(&req, &anonymous, &out, &rec), 401);
    ck_assert_int_eq(rec.result, LURK_ERR_UNAUTHORIZED);
    lurk_response_clear(&out);
    req_for(&req, LURK_TX_HELLO, NULL);
    ck_assert_int_eq(call(&req, &anonymous, &out, NULL), 401);
    lurk_response_clear(&out);

    /* 406: algorithm does not fit the key */
    req_for(&req, LURK_TX_SIGN, "rsa-tls");
    req.sig_alg = LURK_SIG_ECDSA;
    req.md = LURK_MD_SHA256;
    set_buf(&req.data, cv, cvlen);
    ck_assert_int_eq(call(&req, &web1, &out, NULL), 406);
    lurk_response_clear(&out);

    /* 406: Create and Dispose are reserved */
    req_for(&req, LURK_TX_CREATE, NULL);
    req.key_type = LURK_KEY_EC;
    snprintf(req.policy, sizeof(req.policy), "tls-server");
    ck_assert_int_eq(call(&req, &web1, &out, &rec), 406);
    ck_assert_str_eq(out.description, "Create is reserved and not implemented by this server");
    ck_assert_str_eq(rec.op, "Create");
    lurk_response_clear(&out);
    req_for(&req, LURK_TX_DISPOSE, "rsa-tls");
    ck_assert_int_eq(call(&req, &web1, &out, NULL), 406);
    lurk_response_clear(&out);

    OPENSSL_free(spki);
    EVP_PKEY_free(stranger);
}
END_TEST

START_TEST(test_error_response)
{
    char *resp = NULL;
    size_t len = 0;
    lurk_response out;
    char why[200];

    ck_assert_int_eq(lurk_srv_error_response(LURK_ERR_UNAVAILABLE, "draining", 1500, &resp, &len),
                     503);
    ck_assert_int_eq(lurk_proto_decode_response(resp, len, LURK_TX_SIGN, &out, why, sizeof(why)),
                     LURK_OK);
    ck_assert_int_eq(out.type, LURK_TX__COUNT);
    ck_assert_int_eq(out.status, 503);
    ck_assert_uint_eq(out.retry_after_ms, 1500);
    ck_assert_str_eq(out.description, "draining");
    lurk_response_clear(&out);
    free(resp);

    ck_assert_int_eq(lurk_srv_error_response(LURK_ERR_TOO_LARGE, NULL, 0, &resp, &len), 413);
    ck_assert_int_eq(lurk_proto_decode_response(resp, len, LURK_TX__COUNT, &out, why,
                                                sizeof(why)), LURK_OK);
    ck_assert_int_eq(out.status, 413);
    lurk_response_clear(&out);
    free(resp);
}
END_TEST

/* ---- audit ------------------------------------------------------------- */

static int rec_contains(const lurk_srv_audit_rec *rec, const char *needle)
{
    const char *fields[] = { rec->time, rec->request_id, rec->peer, rec->address, rec->key_id,
                             rec->key_name, rec->op, rec->alg, rec->detail };

    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (strstr(fields[i], needle) != NULL) {
            return 1;
        }
    }
    return 0;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = calloc(1, 65536);
    size_t n;

    ck_assert_ptr_nonnull(f);
    n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

START_TEST(test_audit)
{
    static const char payload[] = "SECRETPAYLOAD-0123456789-SECRETPAYLOAD";
    char b64[200];
    char sig_b64[400];
    char dir[] = "/tmp/lurk-audit-XXXXXX";
    char path[300];
    char rotated[300];
    lurk_request req;
    lurk_response out;
    lurk_srv_audit_rec rec;
    lurk_srv_audit_rec denied;
    LURK_SRV_AUDIT *audit = NULL;
    LURK_SRV_AUDIT_BUF *batch = NULL;
    char many[300];
    char why[300] = "";
    char *text = NULL;
    json_t *line = NULL;
    json_error_t jerr;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/audit.log", dir);
    snprintf(rotated, sizeof(rotated), "%s/audit.log.1", dir);
    ck_assert_int_eq(lurk_b64url_encode((const unsigned char *)payload, strlen(payload), b64,
                                        sizeof(b64)), LURK_OK);

    req_for(&req, LURK_TX_SIGN, "rsa-sign");
    req.sig_alg = LURK_SIG_RSA_PSS;
    req.md = LURK_MD_SHA256;
    req.salt_len = 32;
    set_buf(&req.data, payload, strlen(payload));
    ck_assert_int_eq(call(&req, &web1, &out, &rec), 200);
    ck_assert_int_eq(lurk_b64url_encode(out.value.data, out.value.len, sig_b64, sizeof(sig_b64)),
                     LURK_OK);
    lurk_response_clear(&out);

    /* the record */
    ck_assert_uint_eq(strlen(rec.time), 24); /* 2025-01-02T03:04:05.678Z */
    ck_assert_int_eq(rec.time[4], '-');
    ck_assert_int_eq(rec.time[10], 'T');
    ck_assert_int_eq(rec.time[19], '.');
    ck_assert_int_eq(rec.time[23], 'Z');
    ck_assert_str_eq(rec.request_id, req.request_id);
    ck_assert_str_eq(rec.peer, "web1");
    ck_assert_str_eq(rec.address, "127.0.0.1:50001");
    ck_assert_str_eq(rec.key_id, lurk_srv_key_id_text(key_named("rsa-sign")));
    ck_assert_str_eq(rec.key_name, "rsa-sign");
    ck_assert_str_eq(rec.op, "Sign");
    ck_assert_str_eq(rec.alg, "rsa-pss/sha256");
    ck_assert_int_eq(rec.status, 200);
    ck_assert_int_eq(rec.result, LURK_OK);
    ck_assert_str_eq(rec.detail, "message of 38 bytes");
    ck_assert(!rec_contains(&rec, "SECRETPAYLOAD"));
    ck_assert(!rec_contains(&rec, b64));
    ck_assert(!rec_contains(&rec, sig_b64));

    /* a refusal of the same payload */
    req_for(&req, LURK_TX_SIGN, "rsa-tls");
    req.sig_alg = LURK_SIG_RSA_PSS;
    req.md = LURK_MD_SHA256;
    req.salt_len = 32;
    set_buf(&req.data, payload, strlen(payload));
    ck_assert_int_eq(call(&req, &web1, &out, &denied), 403);
    lurk_response_clear(&out);
    ck_assert_int_eq(denied.result, LURK_ERR_POLICY_DENIED);
    ck_assert(!rec_contains(&denied, "SECRETPAYLOAD"));
    ck_assert(!rec_contains(&denied, b64));

    /* the log: one JSON line per record, rotation by reopen */
    ck_assert_int_eq(lurk_srv_audit_open(path, &audit, why, sizeof(why)), LURK_OK);
    batch = lurk_srv_audit_buf_new(audit);
    ck_assert_ptr_nonnull(batch);
    ck_assert_uint_eq(lurk_srv_audit_buf_append(batch, &rec), 0);
    ck_assert_uint_eq(lurk_srv_audit_buf_append(batch, &denied), 0);
    ck_assert(lurk_srv_audit_buf_pending(batch));
    ck_assert_uint_eq(lurk_srv_audit_buf_flush(batch), 0);
    ck_assert(!lurk_srv_audit_buf_pending(batch));
    ck_assert_int_eq(rename(path, rotated), 0);
    ck_assert_uint_eq(lurk_srv_audit_buf_append(batch, &rec), 0);
    ck_assert_uint_eq(lurk_srv_audit_buf_flush(batch), 0); /* still into the renamed file */
    ck_assert_uint_eq(lurk_srv_audit_buf_append(batch, &denied), 0);
    ck_assert_int_eq(lurk_srv_audit_reopen(audit), LURK_OK); /* buffered: the new file */
    lurk_srv_audit_buf_free(batch);
    batch = NULL;

    /* a batch nobody flushes: full, then written by append, no line lost */
    snprintf(many, sizeof(many), "%s/many.log", dir);
    {
        LURK_SRV_AUDIT *a = NULL;
        FILE *f;
        int full = 0;
        int lines = 0;
        int ch;

        ck_assert_int_eq(lurk_srv_audit_open(many, &a, why, sizeof(why)), LURK_OK);
        batch = lurk_srv_audit_buf_new(a);
        ck_assert_ptr_nonnull(batch);
        for (int i = 0; i < 2000; i++) {
            ck_assert_uint_eq(lurk_srv_audit_buf_append(batch, &rec), 0);
            full |= lurk_srv_audit_buf_full(batch);
        }
        ck_assert(full);
        lurk_srv_audit_buf_free(batch);
        batch = NULL;
        lurk_srv_audit_close(a);
        f = fopen(many, "r");
        ck_assert_ptr_nonnull(f);
        for (ch = getc(f); ch != EOF; ch = getc(f)) {
            lines += ch == '\n';
        }
        fclose(f);
        ck_assert_int_eq(lines, 2000);
        unlink(many);
    }
    lurk_srv_audit_close(audit);

    text = read_file(rotated);
    ck_assert_ptr_null(strstr(text, "SECRETPAYLOAD"));
    ck_assert_ptr_null(strstr(text, b64));
    ck_assert_ptr_null(strstr(text, sig_b64));
    {
        char *nl = strchr(text, '\n');
        int lines = 0;

        ck_assert_ptr_nonnull(nl);
        *nl = '\0';
        line = json_loads(text, 0, &jerr);
        ck_assert_msg(line != NULL, "audit line is not JSON: %s", jerr.text);
        ck_assert_str_eq(json_string_value(json_object_get(line, "op")), "Sign");
        ck_assert_str_eq(json_string_value(json_object_get(line, "alg")), "rsa-pss/sha256");
        ck_assert_str_eq(json_string_value(json_object_get(line, "key_name")), "rsa-sign");
        ck_assert_str_eq(json_string_value(json_object_get(line, "peer")), "web1");
        ck_assert_str_eq(json_string_value(json_object_get(line, "result")), "ok");
        ck_assert_str_eq(json_string_value(json_object_get(line, "time")), rec.time);
        ck_assert_int_eq(json_integer_value(json_object_get(line, "status")), 200);
        json_decref(line);
        *nl = '\n';
        for (char *p = text; *p != '\0'; p++) {
            lines += *p == '\n';
        }
        ck_assert_int_eq(lines, 3);
    }
    free(text);
    text = read_file(path);
    line = json_loads(text, JSON_DISABLE_EOF_CHECK, &jerr);
    ck_assert_ptr_nonnull(line);
    ck_assert_str_eq(json_string_value(json_object_get(line, "result")), "policy-denied");
    ck_assert_int_eq(json_integer_value(json_object_get(line, "status")), 403);
    json_decref(line);
    free(text);

    unlink(path);
    unlink(rotated);
    rmdir(dir);

    /* an unwritable path is refused with a reason */
    ck_assert_int_eq(lurk_srv_audit_open("/nonexistent-dir/audit.log", &audit, why,
                                         sizeof(why)), LURK_ERR_IO);
    ck_assert_ptr_nonnull(strstr(why, "/nonexistent-dir/audit.log"));
}
END_TEST

/* ---- key store --------------------------------------------------------- */

static lurk_err add_key(LURK_SRV_KEYSTORE *ks, const char *name, const char *file,
                        const char *pass, lurk_policy policy, char *why, size_t whylen)
{
    char path[1024];
    char pass_path[1024];
    lurk_srv_key_conf kc = { 0 };

    snprintf(path, sizeof(path), "%s%s", VEC, file);
    snprintf(pass_path, sizeof(pass_path), "%s%s", VEC, pass != NULL ? pass : "");
    kc.name = name;
    kc.file = path;
    kc.passphrase_file = pass != NULL ? pass_path : NULL;
    kc.policy = policy;
    why[0] = '\0';
    return lurk_srv_keystore_add(ks, &kc, why, whylen);
}

START_TEST(test_keystore_rules)
{
    LURK_SRV_KEYSTORE *ks = NULL;
    char why[512];
    lurk_srv_key_conf kc = { 0 };
    char uri[1024];

    ck_assert_int_eq(lurk_srv_keystore_new(libctx, NULL, &ks), LURK_OK);

    /* private components land in the secure heap */
    {
        size_t before = CRYPTO_secure_used();

        ck_assert_int_eq(add_key(ks, "rsa", "rsa2048-sign.p8", NULL, LURK_POLICY_SIGN, why,
                                 sizeof(why)), LURK_OK);
        ck_assert_uint_gt(CRYPTO_secure_used(), before);
    }

    /* encrypted PKCS#8 without / with a wrong passphrase */
    ck_assert_int_ne(add_key(ks, "enc", "rsa2048-decrypt.p8", NULL, LURK_POLICY_DECRYPT, why,
                             sizeof(why)), LURK_OK);
    ck_assert_ptr_nonnull(strstr(why, "passphrase_file"));
    ck_assert_ptr_nonnull(strstr(why, "enc"));
    ck_assert_int_ne(add_key(ks, "enc", "rsa2048-decrypt.p8", "README", LURK_POLICY_DECRYPT, why,
                             sizeof(why)), LURK_OK);
    ck_assert_int_eq(add_key(ks, "enc", "rsa2048-decrypt.p8", "no-such.pass",
                             LURK_POLICY_DECRYPT, why, sizeof(why)), LURK_ERR_IO);
    ck_assert_ptr_nonnull(strstr(why, "no-such.pass"));
    /* weak RSA, unsupported curve */
    ck_assert_int_eq(add_key(ks, "weak", "rsa1024.pem", NULL, LURK_POLICY_TLS_SERVER, why,
                             sizeof(why)), LURK_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(why, "1024 bits is too weak"));
    ck_assert_int_eq(add_key(ks, "k1", "secp256k1.pem", NULL, LURK_POLICY_TLS_SERVER, why,
                             sizeof(why)), LURK_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(why, "secp256k1"));
    /* RSA-PSS keys (id-RSASSA-PSS), without and with parameters: refused
     * at load, with the way out */
    ck_assert_int_eq(add_key(ks, "pss", "rsapss.pem", NULL, LURK_POLICY_TLS_SERVER, why,
                             sizeof(why)), LURK_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(why, "key pss: RSA-PSS keys (id-RSASSA-PSS) are not served"));
    ck_assert_ptr_nonnull(strstr(why, "rsaEncryption"));
    ck_assert_int_eq(add_key(ks, "pss", "rsapss-sha256.pem", NULL, LURK_POLICY_SIGN, why,
                             sizeof(why)), LURK_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(why, "key pss: RSA-PSS keys (id-RSASSA-PSS) are not served"));
    /* policy sanity */
    ck_assert_int_eq(add_key(ks, "x", "rsa2048-tls.pem", NULL, LURK_POLICY_AGREE, why,
                             sizeof(why)), LURK_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(why, "agree"));
    ck_assert_int_eq(add_key(ks, "x", "p256-tls.pem", NULL, LURK_POLICY_DECRYPT, why,
                             sizeof(why)), LURK_ERR_CONFIG);
    ck_assert_int_eq(add_key(ks, "x", "ed25519-tls.pem", NULL, LURK_POLICY_SIGN, why,
                             sizeof(why)), LURK_OK);
    /* missing file */
    ck_assert_int_eq(add_key(ks, "gone", "no-such-key.pem", NULL, LURK_POLICY_TLS_SERVER, why,
                             sizeof(why)), LURK_ERR_IO);
    ck_assert_ptr_nonnull(strstr(why, "no-such-key.pem"));
    /* duplicates: the same key twice, the same name twice */
    ck_assert_int_eq(add_key(ks, "first", "p256-tls.pem", NULL, LURK_POLICY_TLS_SERVER, why,
                             sizeof(why)), LURK_OK);
    ck_assert_int_eq(add_key(ks, "second", "p256-tls.pem", NULL, LURK_POLICY_SIGN, why,
                             sizeof(why)), LURK_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(why, "first"));
    ck_assert_ptr_nonnull(strstr(why, "second"));
    ck_assert_int_eq(add_key(ks, "first", "p384-tls.p8", NULL, LURK_POLICY_TLS_SERVER, why,
                             sizeof(why)), LURK_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(why, "first"));
    /* an OSSL_STORE URI */
    snprintf(uri, sizeof(uri), "file:%s%s", VEC, "p384-tls.p8");
    kc.name = "by-uri";
    kc.uri = uri;
    kc.policy = LURK_POLICY_TLS_SERVER;
    ck_assert_int_eq(lurk_srv_keystore_add(ks, &kc, why, sizeof(why)), LURK_OK);
    kc.file = uri;
    ck_assert_int_eq(lurk_srv_keystore_add(ks, &kc, why, sizeof(why)), LURK_ERR_CONFIG);

    ck_assert_uint_eq(lurk_srv_keystore_count(ks), 4);
    ck_assert_int_eq(lurk_srv_key_bits(key_named("rsa-tls")), 2048);
    ck_assert_int_eq(lurk_srv_key_type(key_named("p384-tls")), LURK_KEY_EC);
    /* refcount: the store outlives the first free */
    ck_assert_int_eq(lurk_srv_keystore_up_ref(ks), 2);
    lurk_srv_keystore_free(ks);
    ck_assert_uint_eq(lurk_srv_keystore_count(ks), 4);
    lurk_srv_keystore_free(ks);
}
END_TEST

START_TEST(test_keystore_lookup_state)
{
    LURK_SRV_KEYSTORE *a = NULL;
    LURK_SRV_KEYSTORE *b = NULL;
    unsigned char sa[16];
    unsigned char sb[16];
    char why[512];
    lurk_keyid other;

    /* find: every key by its id, in sorted order */
    for (size_t i = 0; i < lurk_srv_keystore_count(store); i++) {
        const LURK_SRV_KEY *k = lurk_srv_keystore_get(store, i);
        lurk_keyid id;

        ck_assert_ptr_eq(lurk_srv_keystore_find(store, lurk_srv_key_id(k)), k);
        ck_assert_int_eq(lurk_keyid_parse(lurk_srv_key_id_text(k), &id), LURK_OK);
        ck_assert_ptr_eq(lurk_srv_keystore_find(store, &id), k);
        /* the handler's parse-free lookup by the canonical text */
        ck_assert_ptr_eq(lurk_srv_keystore_find_text(store, lurk_srv_key_id_text(k)), k);
        other = id;
    }
    {
        char text[LURK_KEYID_TEXT_MAX];

        ck_assert_int_eq(lurk_keyid_format(&other, text, sizeof(text)), LURK_OK);
        ck_assert_ptr_nonnull(lurk_srv_keystore_find_text(store, text));
        text[strlen(text) - 1] = text[strlen(text) - 1] == 'A' ? 'B' : 'A';
        ck_assert_ptr_null(lurk_srv_keystore_find_text(store, text));
        ck_assert_ptr_null(lurk_srv_keystore_find_text(store, ""));
    }
    other.bin[other.len - 1] ^= 1;
    ck_assert_ptr_null(lurk_srv_keystore_find(store, &other));

    /* state: same set in another order -> same; a policy change -> different */
    ck_assert_int_eq(lurk_srv_keystore_new(libctx, NULL, &a), LURK_OK);
    ck_assert_int_eq(lurk_srv_keystore_new(libctx, NULL, &b), LURK_OK);
    ck_assert_int_eq(add_key(a, "r", "rsa2048-tls.pem", NULL, LURK_POLICY_TLS_SERVER, why,
                             sizeof(why)), LURK_OK);
    ck_assert_int_eq(add_key(a, "e", "p256-tls.pem", NULL, LURK_POLICY_TLS_SERVER, why,
                             sizeof(why)), LURK_OK);
    ck_assert_int_eq(add_key(b, "e", "p256-tls.pem", NULL, LURK_POLICY_TLS_SERVER, why,
                             sizeof(why)), LURK_OK);
    lurk_srv_keystore_state(b, sb);
    ck_assert_int_eq(add_key(b, "r", "rsa2048-tls.pem", NULL, LURK_POLICY_TLS_SERVER, why,
                             sizeof(why)), LURK_OK);
    lurk_srv_keystore_state(a, sa);
    ck_assert_mem_ne(sa, sb, 16);
    lurk_srv_keystore_state(b, sb);
    ck_assert_mem_eq(sa, sb, 16);
    lurk_srv_keystore_free(b);
    ck_assert_int_eq(lurk_srv_keystore_new(libctx, NULL, &b), LURK_OK);
    ck_assert_int_eq(add_key(b, "e", "p256-tls.pem", NULL, LURK_POLICY_SIGN, why, sizeof(why)),
                     LURK_OK);
    ck_assert_int_eq(add_key(b, "r", "rsa2048-tls.pem", NULL, LURK_POLICY_TLS_SERVER, why,
                             sizeof(why)), LURK_OK);
    lurk_srv_keystore_state(b, sb);
    ck_assert_mem_ne(sa, sb, 16);
    lurk_srv_keystore_free(a);
    lurk_srv_keystore_free(b);

    /* clients */
    ck_assert(lurk_srv_key_allows_client(key_named("p521-tls"), "web1"));
    ck_assert(lurk_srv_key_allows_client(key_named("p521-tls"), "web2"));
    ck_assert(!lurk_srv_key_allows_client(key_named("p521-tls"), "web3"));
    ck_assert(!lurk_srv_key_allows_client(key_named("p521-tls"), NULL));
    ck_assert(lurk_srv_key_allows_client(key_named("p256-tls"), "anyone"));
}
END_TEST

START_TEST(test_keystore_dir)
{
    LURK_SRV_KEYSTORE *ks = NULL;
    char why[512] = "";
    static const char *const loaded[] = { "ed25519-tls", "p256-agree", "p256-tls", "p384-tls",
                                          "p521-tls", "rsa2048-decrypt", "rsa2048-sign",
                                          "rsa2048-tls", "p256-tls-legacy",
                                          "rsa2048-tls-legacy" };
    const size_t n_loaded = sizeof(loaded) / sizeof(loaded[0]);

    ck_assert_int_eq(lurk_srv_keystore_new(libctx, NULL, &ks), LURK_OK);
    /* rsa1024.pem, rsapss*.pem and secp256k1.pem fail; the first is named,
     * the rest load */
    ck_assert_int_eq(lurk_srv_keystore_add_dir(ks, VEC, VEC "rsa2048-decrypt.pass", why,
                                               sizeof(why)), LURK_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(why, "rsa1024.pem"));
    ck_assert_ptr_nonnull(strstr(why, "and 3 more"));
    ck_assert_uint_eq(lurk_srv_keystore_count(ks), n_loaded);
    for (size_t i = 0; i < n_loaded; i++) {
        int found = 0;

        for (size_t j = 0; j < lurk_srv_keystore_count(ks); j++) {
            const LURK_SRV_KEY *k = lurk_srv_keystore_get(ks, j);

            if (strcmp(lurk_srv_key_name(k), loaded[i]) == 0) {
                found = 1;
                ck_assert_int_eq(lurk_srv_key_policy(k), LURK_POLICY_TLS_SERVER);
            }
        }
        ck_assert_msg(found, "%s not loaded from the directory", loaded[i]);
    }
    lurk_srv_keystore_free(ks);

    ck_assert_int_eq(lurk_srv_keystore_new(libctx, NULL, &ks), LURK_OK);
    ck_assert_int_eq(lurk_srv_keystore_add_dir(ks, "/nonexistent-key-dir", NULL, why,
                                               sizeof(why)), LURK_ERR_IO);
    ck_assert_ptr_nonnull(strstr(why, "/nonexistent-key-dir"));
    lurk_srv_keystore_free(ks);
}
END_TEST

static Suite *handler_suite(void)
{
    Suite *s = suite_create("handler");
    TCase *tc = tcase_create("operations");

    tcase_add_test(tc, test_hello_ping);
    tcase_add_test(tc, test_public_key);
    tcase_add_loop_test(tc, test_sign, 0, (int)(sizeof(signs) / sizeof(signs[0])));
    tcase_add_test(tc, test_sign_cache_alternating);
    tcase_add_test(tc, test_sign_cache_repeat);
    tcase_add_test(tc, test_sign_cache_lifetime);
    tcase_add_test(tc, test_sign_cache_threads);
    tcase_add_test(tc, test_decrypt_premaster);
    tcase_add_test(tc, test_decrypt_oaep);
    tcase_add_test(tc, test_agree);
    suite_add_tcase(s, tc);

    tc = tcase_create("refusals");
    tcase_add_test(tc, test_malformed);
    tcase_add_test(tc, test_refusals);
    tcase_add_test(tc, test_error_response);
    tcase_add_test(tc, test_audit);
    suite_add_tcase(s, tc);

    tc = tcase_create("keystore");
    tcase_add_test(tc, test_keystore_rules);
    tcase_add_test(tc, test_keystore_lookup_state);
    tcase_add_test(tc, test_keystore_dir);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = NULL;
    int failed;

    /* as the server does: private keys in the secure heap */
    CRYPTO_secure_malloc_init(1 << 16, 32);
    if (srv_fixture_open(&fx, "test_handler", "p521-tls") != 0) {
        return 99;
    }
    libctx = fx.libctx;
    store = fx.store;
    hctx.keys = store;
    hctx.libctx = libctx;
    hctx.propq = NULL;

    sr = srunner_create(handler_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    srv_fixture_close(&fx);
    CRYPTO_secure_malloc_done();
    return failed == 0 ? 0 : 1;
}
