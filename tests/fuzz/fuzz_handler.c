/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_handler.c - the key server's request handler (lurk_srv_handle,
 * server/handler.c) on any request body, with the fixed keys of
 * tests/vectors/server/ and their policies.  The first byte picks the peer
 * (an allowed client, another client, an unauthenticated one); the rest is
 * the body.  Never crashes; the reply is always a LURK response that
 * decodes, with the status returned and recorded; a 200 answers the
 * request's own transaction.
 */
#include <string.h>

#include <openssl/provider.h>

#include "fuzz.h"
#include "lurk_srv.h"

static const struct {
    const char *name;
    const char *file;
    const char *pass;
    lurk_policy policy;
    uint32_t legacy;
} keys[] = {
    {"rsa-tls", "rsa2048-tls.pem", NULL, LURK_POLICY_TLS_SERVER, 0},
    {"rsa-sign", "rsa2048-sign.p8", NULL, LURK_POLICY_SIGN, 0},
    {"rsa-dec", "rsa2048-decrypt.p8", "rsa2048-decrypt.pass", LURK_POLICY_DECRYPT, 0},
    {"p256-tls", "p256-tls.pem", NULL, LURK_POLICY_TLS_SERVER, 0},
    {"p384-tls", "p384-tls.p8", NULL, LURK_POLICY_TLS_SERVER, 0},
    {"p521-tls", "p521-tls.pem", NULL, LURK_POLICY_TLS_SERVER, 0},
    {"p256-agree", "p256-agree.pem", NULL, LURK_POLICY_AGREE, 0},
    {"ed-tls", "ed25519-tls.pem", NULL, LURK_POLICY_TLS_SERVER, 0},
    {"p256-tls-legacy", "p256-tls-legacy.pem", NULL, LURK_POLICY_TLS_SERVER,
     (1u << LURK_MD_SHA1) | (1u << LURK_MD_SHA224)},
};
static const char *const clients[] = {"web1", "web2"};
static const lurk_srv_peer peers[] = {
    {"web1", "127.0.0.1:50001", 1},
    {"web3", "127.0.0.1:50003", 1},
    {NULL, "127.0.0.1:50009", 0},
};

static lurk_srv_handler_ctx hctx;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    OSSL_LIB_CTX *libctx = OSSL_LIB_CTX_new();
    OSSL_PROVIDER *prov = libctx != NULL ? OSSL_PROVIDER_load(libctx, "default") : NULL;
    LURK_SRV_KEYSTORE *ks = NULL;

    FUZZ_CHECK(prov != NULL);
    FUZZ_CHECK(lurk_srv_keystore_new(libctx, NULL, &ks) == LURK_OK);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char file[1024];
        char pass[1024];
        char why[512] = "";
        lurk_srv_key_conf kc = {0};

        snprintf(file, sizeof(file), "%s/server/%s", LURK_VECTORS, keys[i].file);
        snprintf(pass, sizeof(pass), "%s/server/%s", LURK_VECTORS,
                 keys[i].pass != NULL ? keys[i].pass : "");
        kc.name = keys[i].name;
        kc.file = file;
        kc.passphrase_file = keys[i].pass != NULL ? pass : NULL;
        kc.policy = keys[i].policy;
        kc.legacy_digests = keys[i].legacy;
        if (strcmp(keys[i].name, "rsa-sign") == 0) {
            kc.clients = clients;
            kc.n_clients = 2;
        }
        if (lurk_srv_keystore_add(ks, &kc, why, sizeof(why)) != LURK_OK) {
            fprintf(stderr, "fuzz_handler: %s\n", why);
            abort();
        }
    }
    hctx.keys = ks;
    hctx.libctx = libctx;
    hctx.propq = NULL;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const lurk_srv_peer *peer;
    lurk_srv_audit_rec rec;
    lurk_request req;
    lurk_response resp;
    char why[LURK_DESCRIPTION_MAX + 1];
    char *out = NULL;
    size_t out_len = 0;
    lurk_err req_err;
    int status;

    if (size < 1) {
        return 0;
    }
    peer = &peers[data[0] % (sizeof(peers) / sizeof(peers[0]))];
    data++;
    size--;
    memset(&rec, 0, sizeof(rec));
    status = lurk_srv_handle(&hctx, peer, (const char *) data, size, &out, &out_len, &rec);
    FUZZ_CHECK(status == 200 || status == 400 || status == 401 || status == 403 || status == 404
               || status == 406 || status == 413 || status == 500);
    FUZZ_CHECK(rec.status == status);
    FUZZ_CHECK(out != NULL && strlen(out) == out_len);
    FUZZ_CHECK(memchr(rec.detail, '\0', sizeof(rec.detail)) != NULL);
    FUZZ_CHECK(memchr(rec.request_id, '\0', sizeof(rec.request_id)) != NULL);
    FUZZ_CHECK(memchr(rec.key_id, '\0', sizeof(rec.key_id)) != NULL);
    if (lurk_proto_decode_response(out, out_len, LURK_TX__COUNT, &resp, why, sizeof(why))
        != LURK_OK) {
        fprintf(stderr, "the reply does not decode: %s\n%s\n", why, out);
        FUZZ_CHECK(0);
    }
    FUZZ_CHECK(resp.status == status);
    req_err = lurk_proto_decode_request((const char *) data, size, &req, why, sizeof(why));
    if (status == 200) {
        FUZZ_CHECK(req_err == LURK_OK && resp.type == req.type);
    }
    if (req_err == LURK_OK) {
        FUZZ_CHECK(resp.type == req.type || resp.type == LURK_TX__COUNT);
        FUZZ_CHECK(strcmp(resp.request_id, req.request_id) == 0);
    }
    lurk_request_clear(&req);
    lurk_response_clear(&resp);
    OPENSSL_clear_free(out, out_len);
    return 0;
}
