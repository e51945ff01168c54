/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_fork.c - lurk keys across fork(), as nginx and haproxy use them.
 *
 * Run by with_server.sh (argv[1] = the directory tests/lib/keyserver.sh
 * made, with NAME.key and NAME.id for every key).  The sign-policy keys
 * rsa2048-sign and p256-sign are loaded before any fork, from a reference
 * file (PEM_read_bio_PrivateKey_ex) and from a lurk: URI (OSSL_STORE); the
 * parent signs, forks two children that each sign several times on their
 * own connections, then signs again.  Every signature is verified with the
 * default provider.  alarm() bounds everything: a deadlock fails the test
 * instead of hanging.
 */
#include "prov_test.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/store.h>

#define PT_CHILD_SIGNS 5

static EVP_PKEY *pt_store_key(OSSL_LIB_CTX *ctx, const char *uri)
{
    OSSL_STORE_CTX *s = OSSL_STORE_open_ex(uri, ctx, NULL, NULL, NULL, NULL, NULL, NULL);
    EVP_PKEY *k = NULL;

    while (s != NULL && k == NULL && !OSSL_STORE_eof(s)) {
        OSSL_STORE_INFO *info = OSSL_STORE_load(s);

        if (info != NULL && OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY) {
            k = OSSL_STORE_INFO_get1_PKEY(info);
        }
        OSSL_STORE_INFO_free(info);
    }
    OSSL_STORE_close(s);
    return k;
}

static int pt_round(OSSL_LIB_CTX *ctx, EVP_PKEY *rsa, EVP_PKEY *rsa_pub, EVP_PKEY *ec,
                    EVP_PKEY *ec_pub)
{
    static const unsigned char msg[] = "fork test";

    return pt_sign_verify(ctx, rsa, rsa_pub, "SHA256", 1, msg, sizeof(msg))
           && pt_sign_verify(ctx, ec, ec_pub, "SHA384", 0, msg, sizeof(msg));
}

int main(int argc, char **argv)
{
    char path[600], id[200] = "";
    OSSL_LIB_CTX *ctx;
    EVP_PKEY *rsa, *ec, *rsa_pub, *ec_pub;
    pid_t kids[2];
    FILE *f;

    PT_REQUIRE(argc == 2);
    alarm(60);
    snprintf(path, sizeof(path), "%s/openssl.cnf", argv[1]);
    ctx = pt_libctx(path);

    snprintf(path, sizeof(path), "%s/rsa2048-sign.key", argv[1]);
    rsa = pt_read_key(ctx, path);
    PT_REQUIRE(rsa != NULL && strcmp(pt_provider_of(rsa), "lurk") == 0);
    snprintf(path, sizeof(path), "%s/p256-sign.id", argv[1]);
    f = fopen(path, "r");
    PT_REQUIRE(f != NULL && fgets(id, sizeof(id), f) != NULL);
    fclose(f);
    id[strcspn(id, "\n")] = '\0';
    snprintf(path, sizeof(path), "lurk:%s", id);
    ec = pt_store_key(ctx, path);
    PT_REQUIRE(ec != NULL && strcmp(pt_provider_of(ec), "lurk") == 0);
    rsa_pub = pt_public_copy(ctx, rsa);
    ec_pub = pt_public_copy(ctx, ec);

    PT_CHECK(pt_round(ctx, rsa, rsa_pub, ec, ec_pub));
    for (int i = 0; i < 2; i++) {
        kids[i] = fork();
        PT_REQUIRE(kids[i] >= 0);
        if (kids[i] == 0) {
            int ok = 1;

            alarm(30);
            for (int j = 0; j < PT_CHILD_SIGNS; j++) {
                ok = ok && pt_round(ctx, rsa, rsa_pub, ec, ec_pub);
            }
            if (!ok) {
                ERR_print_errors_fp(stderr);
            }
            _exit(ok ? 0 : 1);
        }
    }
    for (int i = 0; i < 2; i++) {
        int st = 0;

        PT_CHECK(waitpid(kids[i], &st, 0) == kids[i]);
        PT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    PT_CHECK(pt_round(ctx, rsa, rsa_pub, ec, ec_pub));

    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(rsa_pub);
    EVP_PKEY_free(ec_pub);
    OSSL_LIB_CTX_free(ctx);
    printf("test_fork: %d failure(s)\n", pt_failures);
    return pt_failures == 0 ? 0 : 1;
}
