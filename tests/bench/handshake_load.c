/* SPDX-License-Identifier: Apache-2.0 */
/*
 * handshake_load.c - TLS handshake load generator for the web benchmark
 * (tests/bench/run-web.sh).
 *
 * T threads (up to 512) each loop: TCP connect, full TLS handshake, close.  Every
 * handshake is a full one (client session cache off, no tickets, a new SSL
 * per connection), so every handshake costs the server one private-key
 * operation.  The run stops at the duration or at the maximum count,
 * whichever comes first, and prints one line:
 *
 *   handshakes=N errors=E seconds=S hs_per_s=R p50_ms=A p99_ms=B
 *
 * Latency is connect + handshake, measured per connection.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

/* Many connections in flight: nginx workers that each wait one key-server
 * round trip need about 2 x workers of them (run-deploy.sh). */
#define HL_MAX_THREADS 512
#define HL_THREAD_STACK (512 * 1024)
#define HL_DEFAULT_MAX_COUNT 1000000L
#define HL_MAX_SAMPLES 200000L

typedef struct {
    const char *host;
    const char *port;
    const char *server_name;
    const char *ca_file;      /* verify the chain when set */
    int version;              /* TLS1_2_VERSION, TLS1_3_VERSION or 0 */
    const char *sigalgs;
    const char *cipher_list;  /* TLS <= 1.2 */
    const char *ciphersuites; /* TLS 1.3 */
    const char *groups;
    int threads;
    double duration;          /* seconds */
    long max_count;
} hl_opts;

typedef struct {
    const hl_opts *opts;
    struct addrinfo *addr;
    SSL_CTX *ctx;
    double *lat_ms;           /* owned, capacity cap */
    long cap;
    long n;                   /* latency samples kept */
    long ok;                  /* completed handshakes */
    long errors;
    char first_error[256];
} hl_worker;

static atomic_long hl_started;   /* handshakes claimed against max_count */
static double hl_deadline;

static double hl_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void hl_usage(FILE *f)
{
    fprintf(f,
            "usage: handshake_load -p PORT [options]\n"
            "  -H HOST        server address (127.0.0.1)\n"
            "  -p PORT        server port\n"
            "  -S NAME        SNI / name to verify (localhost)\n"
            "  -A CAFILE      verify the server chain against CAFILE\n"
            "  -v 1.2|1.3     TLS version (default: negotiate)\n"
            "  -a SIGALGS     signature algorithms (e.g. RSA-PSS+SHA256)\n"
            "  -c CIPHERS     TLS 1.2 cipher list (e.g. AES128-GCM-SHA256)\n"
            "  -C SUITES      TLS 1.3 cipher suites\n"
            "  -g GROUPS      key exchange groups (e.g. X25519)\n"
            "  -t THREADS     concurrent connections (1, at most %d)\n"
            "  -d SECONDS     duration (5)\n"
            "  -n COUNT       maximum number of handshakes (%ld)\n",
            HL_MAX_THREADS, HL_DEFAULT_MAX_COUNT);
}

static int hl_parse(int argc, char **argv, hl_opts *o)
{
    int c;

    memset(o, 0, sizeof(*o));
    o->host = "127.0.0.1";
    o->server_name = "localhost";
    o->threads = 1;
    o->duration = 5.0;
    o->max_count = HL_DEFAULT_MAX_COUNT;
    while ((c = getopt(argc, argv, "H:p:S:A:v:a:c:C:g:t:d:n:h")) != -1) {
        switch (c) {
        case 'H': o->host = optarg; break;
        case 'p': o->port = optarg; break;
        case 'S': o->server_name = optarg; break;
        case 'A': o->ca_file = optarg; break;
        case 'v':
            if (strcmp(optarg, "1.2") == 0) {
                o->version = TLS1_2_VERSION;
            } else if (strcmp(optarg, "1.3") == 0) {
                o->version = TLS1_3_VERSION;
            } else {
                fprintf(stderr, "handshake_load: -v takes 1.2 or 1.3\n");
                return 0;
            }
            break;
        case 'a': o->sigalgs = optarg; break;
        case 'c': o->cipher_list = optarg; break;
        case 'C': o->ciphersuites = optarg; break;
        case 'g': o->groups = optarg; break;
        case 't': o->threads = atoi(optarg); break;
        case 'd': o->duration = atof(optarg); break;
        case 'n': o->max_count = atol(optarg); break;
        case 'h': hl_usage(stdout); exit(0);
        default: hl_usage(stderr); return 0;
        }
    }
    if (o->port == NULL || o->threads < 1 || o->threads > HL_MAX_THREADS
        || o->duration <= 0 || o->max_count < 1) {
        hl_usage(stderr);
        return 0;
    }
    return 1;
}

/* One SSL_CTX per thread: no lock contention between threads, and no
 * session can ever be reused. */
static SSL_CTX *hl_ctx_new(const hl_opts *o)
{
    SSL_CTX *ctx = NULL;
    int ok = 0;

    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        goto end;
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    if (o->version != 0
        && (!SSL_CTX_set_min_proto_version(ctx, o->version)
            || !SSL_CTX_set_max_proto_version(ctx, o->version))) {
        goto end;
    }
    if (o->sigalgs != NULL && !SSL_CTX_set1_sigalgs_list(ctx, o->sigalgs)) {
        goto end;
    }
    if (o->cipher_list != NULL && !SSL_CTX_set_cipher_list(ctx, o->cipher_list)) {
        goto end;
    }
    if (o->ciphersuites != NULL && !SSL_CTX_set_ciphersuites(ctx, o->ciphersuites)) {
        goto end;
    }
    if (o->groups != NULL && !SSL_CTX_set1_groups_list(ctx, o->groups)) {
        goto end;
    }
    if (o->ca_file != NULL) {
        if (!SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL)) {
            goto end;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    ok = 1;
end:
    if (!ok) {
        ERR_print_errors_fp(stderr);
        SSL_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}

static void hl_note_error(hl_worker *w, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char buf[160] = "";

    w->errors++;
    if (w->first_error[0] == '\0') {
        if (e != 0) {
            ERR_error_string_n(e, buf, sizeof(buf));
        } else if (errno != 0) {
            snprintf(buf, sizeof(buf), "%s", strerror(errno));
        }
        snprintf(w->first_error, sizeof(w->first_error), "%s: %s", what, buf);
    }
    ERR_clear_error();
}

/* One connection: 1 on a completed handshake. */
static int hl_one(hl_worker *w)
{
    const hl_opts *o = w->opts;
    SSL *ssl = NULL;
    int fd = -1;
    int one = 1;
    int ok = 0;

    errno = 0;
    fd = socket(w->addr->ai_family, SOCK_STREAM, 0);
    if (fd < 0) {
        hl_note_error(w, "socket");
        goto end;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, w->addr->ai_addr, w->addr->ai_addrlen) != 0) {
        hl_note_error(w, "connect");
        goto end;
    }
    ssl = SSL_new(w->ctx);
    if (ssl == NULL || !SSL_set_fd(ssl, fd)
        || !SSL_set_tlsext_host_name(ssl, o->server_name)) {
        hl_note_error(w, "SSL_new");
        goto end;
    }
    if (o->ca_file != NULL && !SSL_set1_host(ssl, o->server_name)) {
        hl_note_error(w, "SSL_set1_host");
        goto end;
    }
    if (SSL_connect(ssl) != 1) {
        hl_note_error(w, "SSL_connect");
        goto end;
    }
    ok = 1;
    SSL_shutdown(ssl);   /* close_notify, without waiting for the peer's */
end:
    SSL_free(ssl);
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

static void *hl_run(void *arg)
{
    hl_worker *w = arg;

    while (hl_now() < hl_deadline) {
        double t0;

        if (atomic_fetch_add(&hl_started, 1) >= w->opts->max_count) {
            break;
        }
        t0 = hl_now();
        if (hl_one(w)) {
            w->ok++;
            if (w->n < w->cap) {
                w->lat_ms[w->n++] = (hl_now() - t0) * 1e3;
            }
        }
    }
    return NULL;
}

static int hl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;

    return (x > y) - (x < y);
}

static double hl_percentile(const double *v, long n, double p)
{
    long i;

    if (n == 0) {
        return 0.0;
    }
    i = (long)(p * (double)(n - 1) + 0.5);
    return v[i];
}

int main(int argc, char **argv)
{
    hl_opts o;
    hl_worker w[HL_MAX_THREADS];
    pthread_t tid[HL_MAX_THREADS];
    pthread_attr_t attr;
    struct addrinfo hints;
    struct addrinfo *addr = NULL;
    double *all = NULL;
    long total = 0;
    long samples = 0;
    long errors = 0;
    double t0;
    double elapsed;
    int started = 0;
    int rc = 1;
    int i;

    memset(w, 0, sizeof(w));
    if (!hl_parse(argc, argv, &o)) {
        return 2;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(o.host, o.port, &hints, &addr) != 0) {
        fprintf(stderr, "handshake_load: cannot resolve %s:%s\n", o.host, o.port);
        goto end;
    }
    for (i = 0; i < o.threads; i++) {
        w[i].opts = &o;
        w[i].addr = addr;
        w[i].cap = o.max_count < HL_MAX_SAMPLES ? o.max_count : HL_MAX_SAMPLES;
        w[i].lat_ms = calloc((size_t)w[i].cap, sizeof(double));
        w[i].ctx = hl_ctx_new(&o);
        if (w[i].lat_ms == NULL || w[i].ctx == NULL) {
            fprintf(stderr, "handshake_load: setup failed\n");
            goto end;
        }
    }
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, HL_THREAD_STACK);
    t0 = hl_now();
    hl_deadline = t0 + o.duration;
    for (i = 0; i < o.threads; i++) {
        if (pthread_create(&tid[i], &attr, hl_run, &w[i]) != 0) {
            hl_deadline = 0;
            break;
        }
        started++;
    }
    for (i = 0; i < started; i++) {
        pthread_join(tid[i], NULL);
    }
    pthread_attr_destroy(&attr);
    elapsed = hl_now() - t0;
    if (started != o.threads) {
        fprintf(stderr, "handshake_load: cannot start threads\n");
        goto end;
    }

    for (i = 0; i < o.threads; i++) {
        total += w[i].ok;
        samples += w[i].n;
        errors += w[i].errors;
        if (w[i].first_error[0] != '\0') {
            fprintf(stderr, "handshake_load: thread %d: %ld errors, first: %s\n", i,
                    w[i].errors, w[i].first_error);
        }
    }
    all = calloc((size_t)samples + 1, sizeof(double));
    if (all == NULL) {
        goto end;
    }
    samples = 0;
    for (i = 0; i < o.threads; i++) {
        memcpy(all + samples, w[i].lat_ms, (size_t)w[i].n * sizeof(double));
        samples += w[i].n;
    }
    qsort(all, (size_t)samples, sizeof(double), hl_cmp);
    printf("handshakes=%ld errors=%ld seconds=%.3f hs_per_s=%.1f p50_ms=%.3f p99_ms=%.3f\n",
           total, errors, elapsed, (double)total / elapsed, hl_percentile(all, samples, 0.50),
           hl_percentile(all, samples, 0.99));
    rc = total > 0 && errors == 0 ? 0 : 1;
end:
    for (i = 0; i < HL_MAX_THREADS; i++) {
        SSL_CTX_free(w[i].ctx);
        free(w[i].lat_ms);
    }
    free(all);
    if (addr != NULL) {
        freeaddrinfo(addr);
    }
    return rc;
}
