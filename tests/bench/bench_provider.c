/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_provider.c - signing latency through lurk.so next to the same key
 * loaded locally from its PEM, and the memory lurk.so and one key add.
 *
 *   bench_provider DIR [ITERATIONS]
 * DIR is what tests/lib/keyserver.sh makes (run-provider.sh does it):
 * DIR/openssl.cnf, DIR/rsa2048-sign.key + DIR/keys/rsa2048-sign.pem,
 * DIR/p256-sign.key + DIR/keys/p256-sign.pem (policy sign, so EVP_PKEY_sign
 * on a digest is allowed).
 * Prints p50/p99 in microseconds for EVP_PKEY_sign and EVP_DigestSign,
 * RSA-2048 PSS and P-256 ECDSA, then VmRSS before/after.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>

#define BENCH_MAX_ITER 100000

/* A field of /proc/self/status ("VmRSS") or /proc/self/smaps_rollup
 * ("Private_Dirty"), in KiB; -1 when absent. */
static long bench_proc_kib(const char *file, const char *field)
{
    FILE *f = fopen(file, "r");
    char line[256];
    size_t n = strlen(field);
    long kib = -1;

    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            kib = strtol(line + n + 1, NULL, 10);
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return kib;
}

/* VmRSS counts the shared, file-backed pages of every library lurk.so
 * brings in (libcurl and its dependency chain); Private_Dirty is what each
 * process really adds, since nginx workers share the rest. */
static long bench_rss_kib(void)
{
    return bench_proc_kib("/proc/self/status", "VmRSS");
}

static long bench_private_kib(void)
{
    return bench_proc_kib("/proc/self/smaps_rollup", "Private_Dirty");
}

static double bench_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int bench_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static EVP_PKEY *bench_read(OSSL_LIB_CTX *ctx, const char *dir, const char *name)
{
    char path[600];
    BIO *b;
    EVP_PKEY *k = NULL;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    b = BIO_new_file(path, "r");
    if (b != NULL) {
        k = PEM_read_bio_PrivateKey_ex(b, NULL, NULL, NULL, ctx, NULL);
    }
    BIO_free(b);
    if (k == NULL) {
        fprintf(stderr, "cannot load %s\n", path);
        ERR_print_errors_fp(stderr);
        exit(1);
    }
    return k;
}

/* One signature; digest_sign selects EVP_DigestSign over EVP_PKEY_sign. */
static int bench_sign_once(OSSL_LIB_CTX *ctx, EVP_PKEY *k, int pss, int digest_sign)
{
    static const unsigned char msg[] = "benchmark message";
    unsigned char dgst[32], sig[512];
    size_t siglen = sizeof(sig);
    EVP_PKEY_CTX *pc = NULL;
    EVP_MD_CTX *m = NULL;
    int ok = 0;

    if (digest_sign) {
        m = EVP_MD_CTX_new();
        ok = m != NULL && EVP_DigestSignInit_ex(m, &pc, "SHA256", ctx, NULL, k, NULL) == 1
             && (!pss || (EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) == 1
                          && EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) == 1))
             && EVP_DigestSign(m, sig, &siglen, msg, sizeof(msg)) == 1;
        EVP_MD_CTX_free(m);
        return ok;
    }
    memset(dgst, 0x5a, sizeof(dgst));
    pc = EVP_PKEY_CTX_new_from_pkey(ctx, k, NULL);
    ok = pc != NULL && EVP_PKEY_sign_init(pc) == 1
         && EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) == 1
         && (!pss || (EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) == 1
                      && EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) == 1))
         && EVP_PKEY_sign(pc, sig, &siglen, dgst, sizeof(dgst)) == 1;
    EVP_PKEY_CTX_free(pc);
    return ok;
}

static void bench_run(OSSL_LIB_CTX *ctx, EVP_PKEY *k, int pss, int digest_sign, int iter,
                      double *p50, double *p99)
{
    double *t = calloc((size_t)iter, sizeof(double));

    if (t == NULL) {
        exit(1);
    }
    for (int i = 0; i < 3; i++) {   /* warm-up: connection, caches */
        bench_sign_once(ctx, k, pss, digest_sign);
    }
    for (int i = 0; i < iter; i++) {
        double t0 = bench_now_us();

        if (!bench_sign_once(ctx, k, pss, digest_sign)) {
            ERR_print_errors_fp(stderr);
            exit(1);
        }
        t[i] = bench_now_us() - t0;
    }
    qsort(t, (size_t)iter, sizeof(double), bench_cmp);
    *p50 = t[iter / 2];
    *p99 = t[(iter * 99) / 100];
    free(t);
}

int main(int argc, char **argv)
{
    char cnf[600];
    OSSL_LIB_CTX *ctx = NULL;
    OSSL_PROVIDER *dflt = NULL;
    EVP_PKEY *lurk_rsa, *lurk_ec, *local_rsa, *local_ec;
    long rss0, rss1, rss2, priv0, priv1, priv2;
    int iter = argc > 2 ? atoi(argv[2]) : 500;
    static const char *const ops[] = { "EVP_PKEY_sign", "EVP_DigestSign" };

    if (argc < 2 || iter < 10 || iter > BENCH_MAX_ITER) {
        fprintf(stderr, "usage: bench_provider DIR [ITERATIONS 10..%d]\n", BENCH_MAX_ITER);
        return 2;
    }
    ctx = OSSL_LIB_CTX_new();
    dflt = OSSL_PROVIDER_load(ctx, "default");
    local_ec = bench_read(ctx, argv[1], "keys/p256-sign.pem");
    local_rsa = bench_read(ctx, argv[1], "keys/rsa2048-sign.pem");
    bench_sign_once(ctx, local_ec, 0, 1);

    rss0 = bench_rss_kib();
    priv0 = bench_private_kib();
    snprintf(cnf, sizeof(cnf), "%s/openssl.cnf", argv[1]);
    if (dflt == NULL || OSSL_LIB_CTX_load_config(ctx, cnf) != 1) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    lurk_ec = bench_read(ctx, argv[1], "p256-sign.key");
    rss1 = bench_rss_kib();
    priv1 = bench_private_kib();
    lurk_rsa = bench_read(ctx, argv[1], "rsa2048-sign.key");
    bench_sign_once(ctx, lurk_ec, 0, 1);
    rss2 = bench_rss_kib();
    priv2 = bench_private_kib();

    printf("%-16s %-14s %10s %10s %10s %10s\n", "operation", "key", "lurk p50", "lurk p99",
           "local p50", "local p99");
    for (int op = 0; op < 2; op++) {
        double lp50, lp99, cp50, cp99;

        bench_run(ctx, lurk_rsa, 1, op, iter, &lp50, &lp99);
        bench_run(ctx, local_rsa, 1, op, iter, &cp50, &cp99);
        printf("%-16s %-14s %10.1f %10.1f %10.1f %10.1f  (us)\n", ops[op], "RSA-2048 PSS",
               lp50, lp99, cp50, cp99);
        bench_run(ctx, lurk_ec, 0, op, iter, &lp50, &lp99);
        bench_run(ctx, local_ec, 0, op, iter, &cp50, &cp99);
        printf("%-16s %-14s %10.1f %10.1f %10.1f %10.1f  (us)  delta p50 %.1f us\n", ops[op],
               "P-256 ECDSA", lp50, lp99, cp50, cp99, lp50 - cp50);
    }
    printf("VmRSS: %ld KiB before lurk.so; +%ld KiB after loading it and one key; "
           "+%ld KiB after the first remote signature (client, TLS session)\n",
           rss0, rss1 - rss0, rss2 - rss0);
    printf("Private_Dirty: %ld KiB before lurk.so; +%ld KiB after loading it and one key; "
           "+%ld KiB after the first remote signature\n",
           priv0, priv1 - priv0, priv2 - priv0);

    EVP_PKEY_free(lurk_rsa);
    EVP_PKEY_free(lurk_ec);
    EVP_PKEY_free(local_rsa);
    EVP_PKEY_free(local_ec);
    OSSL_PROVIDER_unload(dflt);
    OSSL_LIB_CTX_free(ctx);
    return 0;
}
