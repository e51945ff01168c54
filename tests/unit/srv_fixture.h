/* SPDX-License-Identifier: Apache-2.0 */
/*
 * srv_fixture.h - the key store the key-server unit tests share: the fixed
 * keys of tests/vectors/server/ with their policies, loaded into the
 * server's kind of library context (default provider only).
 */
#ifndef LURK_SRV_FIXTURE_H
#define LURK_SRV_FIXTURE_H

#include <stddef.h>

#include <openssl/provider.h>

#include "lurk_srv.h"

#define SRV_FIXTURE_VEC LURK_VECTORS "/server/"

typedef struct {
    const char *name;
    const char *file;   /* under SRV_FIXTURE_VEC */
    const char *pass;   /* passphrase file, or NULL */
    lurk_policy policy;
    uint32_t legacy_digests; /* legacy_digests = ... (1u << LURK_MD_SHA1 ...) */
} srv_fixture_key;

extern const srv_fixture_key srv_fixture_keys[];
extern const size_t srv_fixture_n_keys;

/* The clients a restricted key allows (see srv_fixture_open). */
extern const char *const srv_fixture_clients[2];

typedef struct {
    OSSL_LIB_CTX *libctx;
    OSSL_PROVIDER *prov;
    LURK_SRV_KEYSTORE *store;
} srv_fixture;

/* Loads every fixture key; `restricted` (or NULL) names the key limited to
 * srv_fixture_clients.  0 on success; else prints why as PROG and returns -1. */
int srv_fixture_open(srv_fixture *f, const char *prog, const char *restricted);
void srv_fixture_close(srv_fixture *f);

/* The key of that name (a Check failure when there is none). */
const LURK_SRV_KEY *srv_fixture_key_named(const srv_fixture *f, const char *name);

#endif /* LURK_SRV_FIXTURE_H */
