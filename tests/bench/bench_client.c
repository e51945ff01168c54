/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_client.c - what a remote signature costs compared with a local one.
 *
 * Phase 1 (latency): for RSA-2048 PSS and P-256 ECDSA, N sequential signs
 * with the key loaded locally from its PEM file (OpenSSL default provider)
 * and N through the client library on one warm connection, both over the
 * same TLS 1.3 CertificateVerify-shaped input (so tls-server keys work and
 * both sides hash the same bytes).  Prints p50/p99 and the p50 difference.
 *
 * Phase 2 (server cost): T threads x M remote signs on one LURK_CLIENT while
 * the key server's CPU time is read from /proc/PID (utime+stime, and the
 * nanosecond schedstat sum of its threads), next to the CPU time of the same
 * signature computed locally by OpenSSL: the difference is what the key
 * server spends per request beyond the cryptography (TLS records, HTTP,
 * JSON, policy, audit).
 *
 * Not a test: run it through tests/bench/run-client.sh.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "lurk_client.h"

#define PROPQ "provider=default"

typedef struct {
    const char *label;
    const char *key_id;
    const char *pem;
    lurk_sig_alg alg;
    lurk_md md;
    int salt;
    EVP_PKEY *pkey;
} bench_op;

typedef struct {
    LURK_CLIENT *c;
    const bench_op *op;
    const unsigned char *in;
    size_t in_len;
    long ops;
    long failed;
    char first_error[sizeof(((lurk_detail *)0)->msg) + 64];
} load_arg;

static double now_ns(clockid_t clk)
{
    struct timespec ts;

    clock_gettime(clk, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    size_t i;

    if (n == 0) {
        return 0;
    }
    i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "bench_client: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* TLS 1.3 server CertificateVerify input with a random "transcript hash". */
static size_t make_input(unsigned char *out)
{
    static const char ctx[] = "TLS 1.3, server CertificateVerify";

    memset(out, 0x20, 64);
    memcpy(out + 64, ctx, sizeof(ctx));
    RAND_bytes(out + 64 + sizeof(ctx), 32);
    return 64 + sizeof(ctx) + 32;
}

static const char *md_ossl(lurk_md md)
{
    return md == LURK_MD_SHA384 ? "SHA384" : md == LURK_MD_SHA512 ? "SHA512" : "SHA256";
}

/* One local signature, the way a TLS server makes it. */
static int local_sign(EVP_MD_CTX *mctx, const bench_op *op, const unsigned char *in,
                      size_t in_len, unsigned char *sig, size_t *sig_len)
{
    EVP_PKEY_CTX *pctx = NULL;
    int ok;

    EVP_MD_CTX_reset(mctx);
    ok = EVP_DigestSignInit_ex(mctx, &pctx, md_ossl(op->md), NULL, PROPQ, op->pkey, NULL) == 1;
    if (ok && op->alg == LURK_SIG_RSA_PSS) {
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0
             && EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, op->salt) > 0;
    }
    return ok && EVP_DigestSign(mctx, sig, sig_len, in, in_len) == 1;
}

static lurk_err remote_sign(LURK_CLIENT *c, const bench_op *op, const unsigned char *in,
                            size_t in_len, unsigned char *sig, size_t *sig_len, lurk_detail *d)
{
    lurk_sign_params p;

    memset(&p, 0, sizeof(p));
    p.key_id = op->key_id;
    p.alg = op->alg;
    p.md = op->md;
    p.salt_len = op->salt;
    p.data = in;
    p.data_len = in_len;
    return lurk_client_sign(c, &p, sig, sig_len, d);
}

static int verify(const bench_op *op, const unsigned char *in, size_t in_len,
                  const unsigned char *sig, size_t sig_len)
{
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    int ok;

    ok = mctx != NULL
         && EVP_DigestVerifyInit_ex(mctx, &pctx, md_ossl(op->md), NULL, PROPQ, op->pkey, NULL)
                == 1;
    if (ok && op->alg == LURK_SIG_RSA_PSS) {
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0
             && EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, op->salt) > 0;
    }
    ok = ok && EVP_DigestVerify(mctx, sig, sig_len, in, in_len) == 1;
    EVP_MD_CTX_free(mctx);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Server CPU time                                                            */

/* utime+stime of PID in seconds (clock-tick resolution). */
static double proc_cpu_ticks(long pid)
{
    char path[64], buf[4096];
    FILE *f;
    size_t n;
    char *p;
    unsigned long utime = 0, stime = 0;

    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* comm may contain spaces */
    if (p == NULL
        || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime)
               != 2) {
        return -1;
    }
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* Sum of the nanosecond run times of PID's threads (schedstat), or -1. */
static double proc_cpu_sched(long pid)
{
    char path[512];
    DIR *dir;
    struct dirent *e;
    double total = 0;

    snprintf(path, sizeof(path), "/proc/%ld/task", pid);
    dir = opendir(path);
    if (dir == NULL) {
        return -1;
    }
    for (;;) {
        unsigned long long run = 0;
        FILE *f;

        e = readdir(dir);
        if (e == NULL) {
            break;
        }
        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof(path), "/proc/%ld/task/%s/schedstat", pid, e->d_name);
        f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }
        if (fscanf(f, "%llu", &run) == 1) {
            total += (double)run;
        }
        fclose(f);
    }
    closedir(dir);
    return total / 1e9;
}

/* ------------------------------------------------------------------------ */
/* Phases                                                                     */

typedef struct {
    double local_p50, local_p99, remote_p50, remote_p99;
    double client_cpu;      /* microseconds of this thread's CPU per remote op */
    size_t n_local, n_remote;
} latency_result;

static void latency(LURK_CLIENT *c, const bench_op *op, long iters, double max_s,
                    latency_result *r)
{
    double *lt = calloc((size_t)iters, sizeof(double));
    double *rt = calloc((size_t)iters, sizeof(double));
    unsigned char in[256], sig[1024];
    size_t in_len = make_input(in);
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    lurk_detail d;
    double t_end, cpu = 0;
    long i;

    if (lt == NULL || rt == NULL || mctx == NULL) {
        die("out of memory");
    }
    /* Warm up both paths (connection, TLS, caches) and check the answer. */
    for (i = 0; i < 50; i++) {
        size_t sl = sizeof(sig);
        lurk_err err = remote_sign(c, op, in, in_len, sig, &sl, &d);

        if (err != LURK_OK) {
            die("%s: remote sign: %s: %s", op->label, lurk_err_str(err), d.msg);
        }
        if (i == 0 && !verify(op, in, in_len, sig, sl)) {
            die("%s: the remote signature does not verify with the local key", op->label);
        }
        sl = sizeof(sig);
        if (!local_sign(mctx, op, in, in_len, sig, &sl)) {
            die("%s: local sign failed", op->label);
        }
    }

    /* Interleaved, so both see the same machine state. */
    t_end = now_ns(CLOCK_MONOTONIC) + max_s * 1e9;
    for (i = 0; i < iters && now_ns(CLOCK_MONOTONIC) < t_end; i++) {
        size_t sl = sizeof(sig);
        double t0, t1, t2, c0, c1;
        lurk_err err;

        t0 = now_ns(CLOCK_MONOTONIC);
        if (!local_sign(mctx, op, in, in_len, sig, &sl)) {
            die("%s: local sign failed", op->label);
        }
        t1 = now_ns(CLOCK_MONOTONIC);
        sl = sizeof(sig);
        c0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
        err = remote_sign(c, op, in, in_len, sig, &sl, &d);
        c1 = now_ns(CLOCK_THREAD_CPUTIME_ID);
        t2 = now_ns(CLOCK_MONOTONIC);
        cpu += c1 - c0;
        if (err != LURK_OK) {
            die("%s: remote sign: %s: %s", op->label, lurk_err_str(err), d.msg);
        }
        lt[i] = (t1 - t0) / 1e3;
        rt[i] = (t2 - t1) / 1e3;
    }
    qsort(lt, (size_t)i, sizeof(double), cmp_double);
    qsort(rt, (size_t)i, sizeof(double), cmp_double);
    r->n_local = r->n_remote = (size_t)i;
    r->client_cpu = i > 0 ? cpu / 1e3 / (double)i : 0;
    r->local_p50 = pct(lt, (size_t)i, 0.50);
    r->local_p99 = pct(lt, (size_t)i, 0.99);
    r->remote_p50 = pct(rt, (size_t)i, 0.50);
    r->remote_p99 = pct(rt, (size_t)i, 0.99);
    EVP_MD_CTX_free(mctx);
    free(lt);
    free(rt);
}

static void *load_thread(void *p)
{
    load_arg *a = p;
    unsigned char sig[1024];

    for (long i = 0; i < a->ops; i++) {
        size_t sl = sizeof(sig);
        lurk_detail d;

        lurk_err e = a->op != NULL ? remote_sign(a->c, a->op, a->in, a->in_len, sig, &sl, &d)
                                   : lurk_client_ping(a->c, &d);

        if (e != LURK_OK) {
            if (a->failed == 0) {
                snprintf(a->first_error, sizeof(a->first_error), "%s: %s", lurk_err_str(e),
                         d.msg);
            }
            a->failed++;
        }
    }
    return NULL;
}

/* CPU seconds per local signature (this thread's CPU clock). */
static double local_cpu_per_op(const bench_op *op, long n)
{
    unsigned char in[256], sig[1024];
    size_t in_len = make_input(in);
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    double t0, t1;

    t0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
    for (long i = 0; i < n; i++) {
        size_t sl = sizeof(sig);

        if (!local_sign(mctx, op, in, in_len, sig, &sl)) {
            die("%s: local sign failed", op->label);
        }
    }
    t1 = now_ns(CLOCK_THREAD_CPUTIME_ID);
    EVP_MD_CTX_free(mctx);
    return (t1 - t0) / 1e9 / (double)n;
}

/* One row of the load table; op NULL: Ping, the cost of a request with no
 * key operation (its "overhead" is the whole of its server CPU). */
static void load(LURK_CLIENT *c, const bench_op *op, int threads, long ops, long server_pid)
{
    pthread_t tid[64];
    load_arg args[64];
    unsigned char in[256];
    size_t in_len = make_input(in);
    double w0, w1, tick0 = -1, tick1 = -1, sch0 = -1, sch1 = -1;
    double raw;
    long total = 0, failed = 0;

    /* Warm one connection per thread. */
    for (int i = 0; i < threads; i++) {
        args[i].c = c;
        args[i].op = op;
        args[i].in = in;
        args[i].in_len = in_len;
        args[i].ops = 20;
        args[i].failed = 0;
        pthread_create(&tid[i], NULL, load_thread, &args[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
    }
    if (server_pid > 0) {
        tick0 = proc_cpu_ticks(server_pid);
        sch0 = proc_cpu_sched(server_pid);
    }
    w0 = now_ns(CLOCK_MONOTONIC);
    for (int i = 0; i < threads; i++) {
        args[i].ops = ops;
        args[i].failed = 0;
        args[i].first_error[0] = '\0';
        pthread_create(&tid[i], NULL, load_thread, &args[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
        total += args[i].ops;
        failed += args[i].failed;
    }
    w1 = now_ns(CLOCK_MONOTONIC);
    if (server_pid > 0) {
        tick1 = proc_cpu_ticks(server_pid);
        sch1 = proc_cpu_sched(server_pid);
    }
    raw = op != NULL ? local_cpu_per_op(op, ops < 2000 ? ops : 2000) : 0;

    printf("%-14s | %7d | %8ld | %6ld | %9.0f |", op != NULL ? op->label : "Ping", threads,
           total, failed,
           (double)total / ((w1 - w0) / 1e9));
    if (server_pid > 0 && tick0 >= 0 && tick1 >= 0) {
        double per_tick = (tick1 - tick0) / (double)total * 1e6;
        double per_sch = sch0 >= 0 && sch1 >= 0 ? (sch1 - sch0) / (double)total * 1e6 : -1;
        double server = per_sch >= 0 ? per_sch : per_tick;

        printf(" %10.1f | %11.1f | %9.1f | %9.1f\n", per_tick, per_sch, raw * 1e6,
               server - raw * 1e6);
    } else {
        printf(" %10s | %11s | %9.1f | %9s\n", "-", "-", raw * 1e6, "-");
    }
    for (int i = 0; i < threads; i++) {
        if (args[i].failed > 0) {
            printf("  (thread %d: %ld failed, the first: %s)\n", i, args[i].failed,
                   args[i].first_error);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Configuration                                                              */

static EVP_PKEY *read_pem(const char *path)
{
    FILE *f = fopen(path, "r");
    EVP_PKEY *k;

    if (f == NULL) {
        die("%s: %s", path, strerror(errno));
    }
    k = PEM_read_PrivateKey_ex(f, NULL, NULL, NULL, NULL, PROPQ);
    fclose(f);
    if (k == NULL) {
        die("%s: not an unencrypted private key", path);
    }
    return k;
}

static const char usage[] =
    "usage: bench_client [--conf OPENSSL_CNF] [--server URL --ca F --cert F --key F]\n"
    "                    --rsa-key KEYID --rsa-pem FILE --ec-key KEYID --ec-pem FILE\n"
    "                    [--iterations N] [--seconds S] [--threads T] [--ops M]\n"
    "                    [--server-pid PID] [--ping-only]\n"
    "  --rsa-key/--rsa-pem   an RSA-2048 key on the server and its private PEM (local baseline)\n"
    "  --ec-key/--ec-pem     a P-256 key on the server and its private PEM\n"
    "  --iterations N        latency samples per operation (default 2000)\n"
    "  --seconds S           at most S seconds per latency run (default 20)\n"
    "  --threads T --ops M   load phase: T threads x M signs (default 4 x 2000)\n"
    "  --server-pid PID      the key server, for its CPU time per operation\n"
    "  --ping-only           only the Ping rows (no keys needed): a server's floor\n"
    "Config defaults to the lurk section of $OPENSSL_CONF.\n";

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "conf", required_argument, NULL, 'C' },
        { "server", required_argument, NULL, 's' },
        { "ca", required_argument, NULL, 'a' },
        { "cert", required_argument, NULL, 'c' },
        { "key", required_argument, NULL, 'k' },
        { "rsa-key", required_argument, NULL, 'r' },
        { "rsa-pem", required_argument, NULL, 'R' },
        { "ec-key", required_argument, NULL, 'e' },
        { "ec-pem", required_argument, NULL, 'E' },
        { "iterations", required_argument, NULL, 'n' },
        { "seconds", required_argument, NULL, 't' },
        { "threads", required_argument, NULL, 'T' },
        { "ops", required_argument, NULL, 'm' },
        { "server-pid", required_argument, NULL, 'p' },
        { "ping-only", no_argument, NULL, 'P' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    bench_op ops[2] = {
        { "RSA-2048 PSS", NULL, NULL, LURK_SIG_RSA_PSS, LURK_MD_SHA256, 32, NULL },
        { "P-256 ECDSA", NULL, NULL, LURK_SIG_ECDSA, LURK_MD_SHA256, -1, NULL },
    };
    const char *conf_file = NULL;
    lurk_client_config cfg;
    LURK_CLIENT *c = NULL;
    lurk_client_cnf cnf = { 0 };
    lurk_detail d;
    lurk_err err;
    long iters = 2000, threads = 4, load_ops = 2000, server_pid = 0;
    double seconds = 20;
    int opt;
    int ping_only = 0;

    OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
    memset(&cfg, 0, sizeof(cfg));
    for (;;) {
        opt = getopt_long(argc, argv, "h", longopts, NULL);
        if (opt == -1) {
            break;
        }
        switch (opt) {
        case 'C': conf_file = optarg; break;
        case 's': cfg.servers = optarg; break;
        case 'a': cfg.ca_file = optarg; break;
        case 'c': cfg.cert_file = optarg; break;
        case 'k': cfg.key_file = optarg; break;
        case 'r': ops[0].key_id = optarg; break;
        case 'R': ops[0].pem = optarg; break;
        case 'e': ops[1].key_id = optarg; break;
        case 'E': ops[1].pem = optarg; break;
        case 'n': iters = strtol(optarg, NULL, 10); break;
        case 't': seconds = strtod(optarg, NULL); break;
        case 'T': threads = strtol(optarg, NULL, 10); break;
        case 'm': load_ops = strtol(optarg, NULL, 10); break;
        case 'p': server_pid = strtol(optarg, NULL, 10); break;
        case 'P': ping_only = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if ((!ping_only && (ops[0].key_id == NULL || ops[0].pem == NULL || ops[1].key_id == NULL
                        || ops[1].pem == NULL))
        || iters < 1 || threads < 1 || threads > 64 || load_ops < 1
        || seconds <= 0) {
        fputs(usage, stderr);
        return 2;
    }
    if (conf_file == NULL) {
        conf_file = getenv("OPENSSL_CONF");
    }
    if (conf_file != NULL) {
        err = lurk_client_cnf_load(conf_file, &cnf, &d);
        if (err != LURK_OK) {
            die("%s: %s", lurk_err_str(err), d.msg);
        }
        if (cfg.servers == NULL) {
            cfg.servers = cnf.servers;
        }
        if (cfg.ca_file == NULL) {
            cfg.ca_file = cnf.ca_file;
        }
        if (cfg.cert_file == NULL) {
            cfg.cert_file = cnf.cert_file;
        }
        if (cfg.key_file == NULL) {
            cfg.key_file = cnf.key_file;
        }
        cfg.connect_timeout_ms = cnf.connect_timeout_ms;
        cfg.timeout_ms = cnf.timeout_ms;
    }
    err = lurk_client_new(&cfg, &c, &d);
    if (err != LURK_OK) {
        die("%s: %s", lurk_err_str(err), d.msg);
    }
    if (!ping_only) {
        for (int i = 0; i < 2; i++) {
            ops[i].pkey = read_pem(ops[i].pem);
        }

        printf("latency: %ld sequential signs per operation (at most %.0f s), one connection, "
               "times in microseconds\n", iters, seconds);
        printf("%-14s | %9s | %9s | %10s | %10s | %9s | %10s\n", "operation", "local p50",
               "local p99", "remote p50", "remote p99", "delta p50", "client CPU");
        for (int i = 0; i < 2; i++) {
            latency_result r;

            latency(c, &ops[i], iters, seconds, &r);
            printf("%-14s | %9.1f | %9.1f | %10.1f | %10.1f | %9.1f | %10.1f   (n=%zu)\n",
                   ops[i].label, r.local_p50, r.local_p99, r.remote_p50, r.remote_p99,
                   r.remote_p50 - r.local_p50, r.client_cpu, r.n_remote);
        }
    } else {
        printf("latency: %ld sequential Pings, one connection, times in microseconds\n", iters);
        printf("%-14s | %9s | %9s | %10s | %10s | %9s | %10s\n", "operation", "local p50",
               "local p99", "remote p50", "remote p99", "delta p50", "client CPU");
    }
    {
        /* The floor: a Ping (no key operation) on the same connection. */
        double *pt = calloc((size_t)iters, sizeof(double));
        long n;

        for (n = 0; pt != NULL && n < iters; n++) {
            double t0 = now_ns(CLOCK_MONOTONIC);

            if (lurk_client_ping(c, &d) != LURK_OK) {
                die("ping: %s", d.msg);
            }
            pt[n] = (now_ns(CLOCK_MONOTONIC) - t0) / 1e3;
        }
        qsort(pt, (size_t)n, sizeof(double), cmp_double);
        printf("%-14s | %9s | %9s | %10.1f | %10.1f |           |            (n=%ld)\n",
               "Ping", "-", "-", pct(pt, (size_t)n, 0.5), pct(pt, (size_t)n, 0.99), n);
        free(pt);
    }

    printf("\nload: %ld threads x %ld requests on one client; CPU in microseconds per op\n",
           threads, load_ops);
    printf("%-14s | %7s | %8s | %6s | %9s | %10s | %11s | %9s | %9s\n", "operation", "threads",
           "ops", "failed", "ops/s", "server CPU", "server(ns)", "raw sign", "overhead");
    for (int i = 0; !ping_only && i < 2; i++) {
        load(c, &ops[i], (int)threads, load_ops, server_pid);
    }
    load(c, NULL, (int)threads, load_ops, server_pid);
    printf("(server CPU: /proc/PID/stat utime+stime, tick resolution; server(ns): sum of the\n"
           " server threads' schedstat run time; raw sign: OpenSSL default provider, this\n"
           " process, same input; overhead = server(ns) - raw sign; a Ping has no key\n"
           " operation, so all of its server CPU is overhead)\n");

    for (int i = 0; i < 2; i++) {
        EVP_PKEY_free(ops[i].pkey);
    }
    lurk_client_free(c);
    lurk_client_cnf_clear(&cnf);
    return 0;
}
