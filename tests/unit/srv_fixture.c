/* SPDX-License-Identifier: Apache-2.0 */
/* srv_fixture.c - the key store shared by test_policy and test_handler. */
#include "srv_fixture.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

const srv_fixture_key srv_fixture_keys[] = {
    { "rsa-tls", "rsa2048-tls.pem", NULL, LURK_POLICY_TLS_SERVER },
    { "rsa-sign", "rsa2048-sign.p8", NULL, LURK_POLICY_SIGN },
    { "rsa-dec", "rsa2048-decrypt.p8", "rsa2048-decrypt.pass", LURK_POLICY_DECRYPT },
    { "p256-tls", "p256-tls.pem", NULL, LURK_POLICY_TLS_SERVER },
    { "p384-tls", "p384-tls.p8", NULL, LURK_POLICY_TLS_SERVER },
    { "p521-tls", "p521-tls.pem", NULL, LURK_POLICY_TLS_SERVER },
    { "p256-agree", "p256-agree.pem", NULL, LURK_POLICY_AGREE },
    { "ed-tls", "ed25519-tls.pem", NULL, LURK_POLICY_TLS_SERVER },
    { "rsa-tls-legacy", "rsa2048-tls-legacy.pem", NULL, LURK_POLICY_TLS_SERVER,
      1u << LURK_MD_SHA1 },
    { "p256-tls-legacy", "p256-tls-legacy.pem", NULL, LURK_POLICY_TLS_SERVER,
      (1u << LURK_MD_SHA1) | (1u << LURK_MD_SHA224) },
};
const size_t srv_fixture_n_keys = sizeof(srv_fixture_keys) / sizeof(srv_fixture_keys[0]);

const char *const srv_fixture_clients[2] = { "web1", "web2" };

int srv_fixture_open(srv_fixture *f, const char *prog, const char *restricted)
{
    memset(f, 0, sizeof(*f));
    f->libctx = OSSL_LIB_CTX_new();
    f->prov = f->libctx != NULL ? OSSL_PROVIDER_load(f->libctx, "default") : NULL;
    if (f->prov == NULL || lurk_srv_keystore_new(f->libctx, NULL, &f->store) != LURK_OK) {
        fprintf(stderr, "%s: cannot set up OpenSSL\n", prog);
        return -1;
    }
    for (size_t i = 0; i < srv_fixture_n_keys; i++) {
        const srv_fixture_key *k = &srv_fixture_keys[i];
        char file[1024];
        char pass[1024];
        char why[512] = "";
        lurk_srv_key_conf kc = { 0 };

        snprintf(file, sizeof(file), "%s%s", SRV_FIXTURE_VEC, k->file);
        snprintf(pass, sizeof(pass), "%s%s", SRV_FIXTURE_VEC, k->pass != NULL ? k->pass : "");
        kc.name = k->name;
        kc.file = file;
        kc.passphrase_file = k->pass != NULL ? pass : NULL;
        kc.policy = k->policy;
        kc.legacy_digests = k->legacy_digests;
        if (restricted != NULL && strcmp(k->name, restricted) == 0) {
            kc.clients = srv_fixture_clients;
            kc.n_clients = 2;
        }
        if (lurk_srv_keystore_add(f->store, &kc, why, sizeof(why)) != LURK_OK) {
            fprintf(stderr, "%s: %s\n", prog, why);
            return -1;
        }
    }
    return 0;
}

void srv_fixture_close(srv_fixture *f)
{
    lurk_srv_keystore_free(f->store);
    OSSL_PROVIDER_unload(f->prov);
    OSSL_LIB_CTX_free(f->libctx);
    memset(f, 0, sizeof(*f));
}

const LURK_SRV_KEY *srv_fixture_key_named(const srv_fixture *f, const char *name)
{
    for (size_t i = 0; i < lurk_srv_keystore_count(f->store); i++) {
        const LURK_SRV_KEY *k = lurk_srv_keystore_get(f->store, i);

        if (strcmp(lurk_srv_key_name(k), name) == 0) {
            return k;
        }
    }
    ck_abort_msg("no key %s in the test store", name);
    return NULL;
}
